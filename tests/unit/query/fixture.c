/* Writes the query tests' fixture store (see fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

int fixture_write(const char *dir, int64_t now_ms, size_t big_points, char *err, size_t err_size)
{
    /* Labels deliberately unsorted: the store sorts them, and the API must show them sorted. */
    static const struct fp_label zone0[] = {
        {"zone", "thermal_zone0"}, {"type", "x86_pkg_temp"}, {"source", "thermal"}};
    static const struct fp_label zone1[] = {
        {"zone", "thermal_zone1"}, {"type", "acpitz"}, {"source", "thermal"}};
    static const struct fp_label info1[] = {{"hostname", "edge-01.lan"},
                                            {"model", "llama-3.2-1b-q4"}};
    static const struct fp_label info2[] = {{"hostname", "edge-02.lan"},
                                            {"model", "qwen2.5-0.5b-q8"}};
    const int64_t t0 = FIXTURE_T0_MS;

    const int64_t z0_ts[] = {t0 - 1000, t0};
    const double z0_v[] = {50.5, 51.234};
    const int64_t z1_ts[] = {t0};
    const double z1_v[] = {40};
    const int64_t mem_ts[] = {t0};
    const double mem_v[] = {123456789};
    const struct fp_series_in b1_series[] = {
        {"temperature_celsius", FP_SERIES_GAUGE, zone0, N(zone0), z0_ts, z0_v, N(z0_ts)},
        {"temperature_celsius", FP_SERIES_GAUGE, zone1, N(zone1), z1_ts, z1_v, N(z1_ts)},
        {"memory_available_bytes", FP_SERIES_GAUGE, NULL, 0, mem_ts, mem_v, N(mem_ts)},
    };

    /* volatile: computed at run time, so the value is the sum's double, 0.30000000000000004. */
    volatile double a = 0.1, b = 0.2;
    const int64_t tps_ts[] = {t0 + 10000};
    const double tps_v[] = {a + b};
    const int64_t up_ts[] = {now_ms - 2 * 3600 * 1000, now_ms - 60 * 1000};
    const double up_v[] = {6, 7};
    const struct fp_series_in b2_series[] = {
        {"llama_tokens_per_second", FP_SERIES_GAUGE, NULL, 0, tps_ts, tps_v, N(tps_ts)},
        {"probe_up", FP_SERIES_GAUGE, NULL, 0, up_ts, up_v, N(up_ts)},
    };

    const int64_t e2_ts[] = {t0 + 1000};
    const double e2_v[] = {60.5};
    const struct fp_series_in b3_series[] = {
        {"temperature_celsius", FP_SERIES_GAUGE, zone0, N(zone0), e2_ts, e2_v, N(e2_ts)},
    };

    struct fp_series_in big = {"bench_big", FP_SERIES_GAUGE, NULL, 0, NULL, NULL, big_points};
    int64_t *big_ts = NULL;
    double *big_v = NULL;

    struct fp_write_batch batches[] = {
        {.device = "edge-01",
         .epoch = 1,
         .seq = 1,
         .received_ms = t0 + 500,
         .info = info1,
         .n_info = N(info1),
         .series = b1_series,
         .n_series = N(b1_series)},
        {.device = "edge-01",
         .epoch = 1,
         .seq = 2,
         .received_ms = t0 + 10500,
         .series = b2_series,
         .n_series = N(b2_series)},
        {.device = "edge-02",
         .epoch = 5,
         .seq = 1,
         .received_ms = t0 + 2000,
         .info = info2,
         .n_info = N(info2),
         .series = b3_series,
         .n_series = N(b3_series)},
        {.device = "edge-03",
         .epoch = 1,
         .seq = 1,
         .received_ms = FIXTURE_BIG0_MS,
         .series = &big,
         .n_series = 1},
    };
    struct fp_write_result results[N(batches)];
    size_t n_batches = big_points > 0 ? N(batches) : N(batches) - 1;
    struct fp_store *store = NULL;
    struct fp_store_options opts;
    int r;

    if (big_points > 0) {
        big_ts = calloc(big_points, sizeof(*big_ts));
        big_v = calloc(big_points, sizeof(*big_v));
        if (big_ts == NULL || big_v == NULL) {
            r = -ENOMEM;
            snprintf(err, err_size, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < big_points; i++) {
            big_ts[i] = FIXTURE_BIG0_MS + (int64_t)i * 1000;
            big_v[i] = (double)i / 2;
        }
        big.ts_ms = big_ts;
        big.values = big_v;
    }

    /* The fixture's times are fixed dates in the past: keep them whatever today's date. */
    fp_store_options_default(&opts);
    opts.raw_retention_ms = 0;
    r = fp_store_open(dir, 0, &opts, &store, err, err_size);
    if (r != 0)
        goto out;
    r = fp_store_write(store, batches, n_batches, results);
    if (r != 0) {
        snprintf(err, err_size, "fp_store_write: %s", fp_store_strerror(r));
        goto out;
    }
    for (size_t i = 0; i < n_batches; i++) {
        if (results[i].status != 0 || results[i].samples_refused != 0) {
            snprintf(err, err_size, "batch %zu: status %d, %llu samples refused", i,
                     results[i].status, (unsigned long long)results[i].samples_refused);
            r = -EIO;
            goto out;
        }
    }
out:
    fp_store_close(&store);
    free(big_ts);
    free(big_v);
    return r;
}

/* One batch per series: the fleet's series are few and the batch layout is not under test. */
static int write_one(struct fp_store *store, const char *device, uint64_t seq,
                     const struct fp_series_in *series, char *err, size_t err_size)
{
    struct fp_write_batch b = {.device = device,
                               .epoch = 1,
                               .seq = seq,
                               .received_ms = FIXTURE_F0_MS,
                               .series = series,
                               .n_series = 1};
    struct fp_write_result res;
    int r = fp_store_write(store, &b, 1, &res);

    if (r != 0) {
        snprintf(err, err_size, "fp_store_write: %s", fp_store_strerror(r));
        return r;
    }
    if (res.status != 0 || res.samples_written != series->n) {
        snprintf(err, err_size, "%s %s: status %d, %llu of %zu samples written", device,
                 series->metric, res.status, (unsigned long long)res.samples_written, series->n);
        return -EIO;
    }
    return 0;
}

int fixture_write_fleet(const char *dir, char *err, size_t err_size)
{
    static const struct fp_label a_l[] = {{"model", "llama"}, {"site", "lab"}};
    static const struct fp_label b_l[] = {{"model", "llama"}, {"site", "home"}};
    static const struct fp_label c_l[] = {{"site", "lab"}, {"model", "qwen"}};
    static const struct fp_label d_l[] = {{"model", "qwen"}};
    const int64_t f0 = FIXTURE_F0_MS;
    const int64_t a_ts[] = {f0, f0 + 30000, f0 + 60000};
    const double a_v[] = {0.5, 1.5, 2.5};
    const int64_t b_ts[] = {f0 + 10000, f0 + 59999};
    const double b_v[] = {1, 3};
    const int64_t c_ts[] = {f0 + 20000, f0 + 90000};
    const double c_v[] = {4, 6};
    const int64_t d_ts[] = {f0 + 100000};
    const double d_v[] = {8};
    const int64_t ra_ts[] = {f0, f0 + 20000, f0 + 40000, f0 + 70000, f0 + 110000};
    const double ra_v[] = {100, 130, 10, 50, 80};
    const int64_t rb_ts[] = {f0 + 5000, f0 + 50000};
    const double rb_v[] = {7, 9};
    const struct {
        const char *device;
        struct fp_series_in s;
    } series[] = {
        {"edge-a", {"ttft_seconds", FP_SERIES_GAUGE, a_l, N(a_l), a_ts, a_v, N(a_ts)}},
        {"edge-b", {"ttft_seconds", FP_SERIES_GAUGE, b_l, N(b_l), b_ts, b_v, N(b_ts)}},
        {"edge-c", {"ttft_seconds", FP_SERIES_GAUGE, c_l, N(c_l), c_ts, c_v, N(c_ts)}},
        {"edge-d", {"ttft_seconds", FP_SERIES_GAUGE, d_l, N(d_l), d_ts, d_v, N(d_ts)}},
        {"edge-a", {"requests_total", FP_SERIES_COUNTER, NULL, 0, ra_ts, ra_v, N(ra_ts)}},
        {"edge-b", {"requests_total", FP_SERIES_COUNTER, NULL, 0, rb_ts, rb_v, N(rb_ts)}},
    };
    struct fp_store_options opts;
    struct fp_store *store = NULL;
    uint64_t seq = 0;
    int r;

    fp_store_options_default(&opts);
    opts.raw_retention_ms = 0;
    r = fp_store_open(dir, 0, &opts, &store, err, err_size);
    for (size_t i = 0; r == 0 && i < N(series); i++)
        r = write_one(store, series[i].device, ++seq, &series[i].s, err, err_size);
    for (int d = 0; r == 0 && d < 20; d++) {
        int64_t ts[50];
        double v[50];
        char device[16];
        struct fp_series_in s = {"lat_seconds", FP_SERIES_GAUGE, NULL, 0, ts, v, 50};

        for (int j = 0; j < 50; j++) {
            ts[j] = f0 + j * 1000 + d;
            v[j] = d == 19 ? 10.0 * (j + 1) : 0.1 * (j + 1);
        }
        snprintf(device, sizeof(device), "lat-%02d", d);
        r = write_one(store, device, ++seq, &s, err, err_size);
    }
    fp_store_close(&store);
    return r;
}
