/* Writes the query tests' fixture store (see fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One device's batch k of the state fleet (see fixture.h). */
struct state_dev {
    const char *id;
    char kind; /**< 'a', 'b', 'q', 'n' */
    int index; /**< i or j; q-00 is 0, q-01 is 1 */
};

static int write_state_batch(struct fp_store *store, const struct state_dev *dev, int k, int64_t ts,
                             uint64_t seq, char *err, size_t err_size)
{
    static const struct fp_label info_a[] = {{"model", "llama"},   {"model_version", "v1"},
                                             {"quant", "Q4_K_M"},  {"site", "lab"},
                                             {"hw_class", "orin"}, {"cohort", "stable"}};
    static const struct fp_label info_b[] = {{"model", "llama"},   {"model_version", "v2"},
                                             {"quant", "Q4_K_M"},  {"site", "home"},
                                             {"hw_class", "orin"}, {"cohort", "canary"}};
    static const struct fp_label info_q[] = {{"model", "qwen"},
                                             {"model_version", "v1"},
                                             {"quant", "Q8_0"},
                                             {"site", "lab"},
                                             {"hw_class", "pi5"}};
    static const struct fp_label ok[] = {{"outcome", "ok"}}, error[] = {{"outcome", "error"}},
                                 fallback[] = {{"outcome", "fallback"}};
    static const struct fp_label z0[] = {{"source", "thermal"}, {"zone", "thermal_zone0"}};
    static const struct fp_label z1[] = {{"source", "thermal"}, {"zone", "thermal_zone1"}};
    static const int64_t b03_ok[] = {0, 10, 20, 5, 15, 25};
    const int i = dev->index;
    double tps = 0, ttft = 0, v_ok = 10.0 * k, v_err = 0, v_fb = 0, pressure = 0, temp = 0;
    struct fp_series_in series[8];
    size_t n = 0;
    struct fp_write_batch b = {.device = dev->id, .epoch = 1, .seq = seq, .received_ms = ts + 500};
    struct fp_write_result res;
    int r;

    switch (dev->kind) {
    case 'a':
        tps = 20 + i;
        ttft = 0.5;
        v_err = k;
        pressure = i + 0.1 * k;
        temp = 40 + i;
        b.info = info_a;
        b.n_info = N(info_a);
        break;
    case 'b':
        tps = 16 + i;
        ttft = 0.8;
        v_err = 3.0 * k;
        v_fb = k;
        if (i == 3)
            v_ok = (double)b03_ok[k];
        pressure = 10 + i + 0.1 * k;
        temp = 50 + i;
        b.info = info_b;
        b.n_info = N(info_b);
        break;
    case 'q':
        tps = i == 0 ? 9 : 7;
        ttft = 1.5;
        pressure = 1;
        temp = i == 0 ? 70 : 30;
        b.info = info_q;
        b.n_info = N(info_q);
        break;
    default:
        temp = 35;
        break;
    }
    const double temp1 = temp - 5;

#define SERIES(metric, type, labels, n_labels, value)                                              \
    series[n++] = (struct fp_series_in)                                                            \
    {                                                                                              \
        metric, type, labels, n_labels, &ts, value, 1                                              \
    }
    if (dev->kind != 'n') {
        SERIES("llamacpp_generation_tokens_per_second", FP_SERIES_GAUGE, NULL, 0, &tps);
        SERIES("gen_ai_server_time_to_first_token_seconds", FP_SERIES_GAUGE, NULL, 0, &ttft);
        SERIES("memory_pressure_some_avg10", FP_SERIES_GAUGE, NULL, 0, &pressure);
        SERIES("temperature_celsius", FP_SERIES_GAUGE, z1, N(z1), &temp1);
    }
    if (dev->kind == 'a' || dev->kind == 'b') {
        SERIES("gen_ai_server_requests_total", FP_SERIES_COUNTER, ok, N(ok), &v_ok);
        SERIES("gen_ai_server_requests_total", FP_SERIES_COUNTER, error, N(error), &v_err);
        SERIES("gen_ai_server_requests_total", FP_SERIES_COUNTER, fallback, N(fallback), &v_fb);
    }
    SERIES("temperature_celsius", FP_SERIES_GAUGE, z0, N(z0), &temp);
#undef SERIES
    b.series = series;
    b.n_series = n;

    /* Events: a-00 one per batch; n-00 105 in its one batch, 100 ms apart, so a device page's
     * newest-100 cut shows. */
    struct fp_event_in events[105];
    char messages[105][16];
    if (strcmp(dev->id, "a-00") == 0 || dev->kind == 'n') {
        size_t ne = dev->kind == 'n' ? 105 : 1;
        for (size_t e = 0; e < ne; e++) {
            snprintf(messages[e], sizeof(messages[e]), "e%zu", dev->kind == 'n' ? e : (size_t)k);
            events[e] =
                (struct fp_event_in){.ts_ms = dev->kind == 'n' ? ts - 20000 + 100 * (int64_t)e : ts,
                                     .kind = "canary",
                                     .severity = 1,
                                     .message = messages[e]};
        }
        b.events = events;
        b.n_events = ne;
    }

    r = fp_store_write(store, &b, 1, &res);
    if (r != 0) {
        snprintf(err, err_size, "fp_store_write: %s", fp_store_strerror(r));
        return r;
    }
    if (res.status != 0 || res.samples_written != n) {
        snprintf(err, err_size, "%s batch %d: status %d, %llu of %zu samples written", dev->id, k,
                 res.status, (unsigned long long)res.samples_written, n);
        return -EIO;
    }
    return 0;
}

int fixture_write_states(const char *dir, char *err, size_t err_size)
{
    static const struct state_dev devs[] = {
        {"a-00", 'a', 0}, {"a-01", 'a', 1}, {"a-02", 'a', 2}, {"a-03", 'a', 3}, {"a-04", 'a', 4},
        {"a-05", 'a', 5}, {"b-00", 'b', 0}, {"b-01", 'b', 1}, {"b-02", 'b', 2}, {"b-03", 'b', 3},
        {"q-00", 'q', 0}, {"q-01", 'q', 1}, {"n-00", 'n', 0},
    };
    const int64_t s0 = FIXTURE_S0_MS;
    struct fp_store_options opts;
    struct fp_store *store = NULL;
    int r;

    fp_store_options_default(&opts);
    opts.raw_retention_ms = 0;
    r = fp_store_open(dir, 0, &opts, &store, err, err_size);
    for (size_t d = 0; r == 0 && d < N(devs); d++) {
        int batches = devs[d].kind == 'q' ? (devs[d].index == 0 ? 3 : 1) : 6;
        for (int k = 0; r == 0 && k < batches; k++) {
            int64_t ts = s0 + 10000 * k;
            if (devs[d].kind == 'q' && devs[d].index == 1)
                ts = s0 - 600000;
            if (devs[d].kind == 'n')
                ts = s0 + 50000;
            if (devs[d].kind == 'n' && k > 0)
                break;
            r = write_state_batch(store, &devs[d], k, ts, (uint64_t)k + 1, err, err_size);
        }
    }
    if (r == 0) {
        const int64_t ts = s0 + 50000;
        const double v = 1;
        const struct fp_series_in s = {
            "fleetpulse_collector_batches_applied_total", FP_SERIES_COUNTER, NULL, 0, &ts, &v, 1};
        struct fp_write_batch b = {
            .device = "@collector", .received_ms = ts, .series = &s, .n_series = 1};
        struct fp_write_result res;
        r = fp_store_write(store, &b, 1, &res);
        if (r != 0)
            snprintf(err, err_size, "fp_store_write: %s", fp_store_strerror(r));
    }
    fp_store_close(&store);
    return r;
}
