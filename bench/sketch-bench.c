/* Benchmark driver for storage/sketch, run by bench/sketch. Workload: the fleet p95 of time to
 * first token over one hour, 1000 devices, one sample every 10 s (360 per device). Each device
 * has its own lognormal (median around 0.4 s, a tenth of devices overloaded), so the pooled p95
 * differs from any per-device figure. Measured, as medians over repeated runs:
 *   - add: ns per value, building the 1000 one-hour sketches from raw samples;
 *   - merge: us to merge the 1000 one-hour sketches, in memory, from their encodings
 *     (fp_sketch_merge_encoded, the query path over stored rollups), and decode-then-merge;
 *   - quantile: us per p95 query on the merged fleet sketch;
 *   - encoded bytes of 1-minute (6 values) and 1-hour (360 values) sketches;
 *   - the exact method in the same run: gather the 360000 raw values, sort, take p95 (and,
 *     the fastest exact way, quickselect the rank), so the figures read as ratios on whatever
 *     machine runs them. Neither counts reading 360000 raw samples from disk, which the
 *     sketches avoid.
 * Prints a human summary, then one JSON object as the last line. Usage: sketch-bench [--quick] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sketch.h"

enum { DEVICES = 1000, PER_HOUR = 360, PER_MINUTE = 6, MINUTES = 10000 };

static uint64_t rng_state = 42;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_lognormal(double median, double sigma)
{
    double n = sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());

    return median * exp(sigma * n);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The k-th smallest of v[0..n), reordering v (Hoare's quickselect, middle pivot): the fastest
 * exact method, O(n), as a second baseline beside the sort. */
static double select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;

    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;

        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                double x = v[i];

                v[i] = v[j];
                v[j] = x;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

static void die(const char *what, int r)
{
    fprintf(stderr, "sketch-bench: %s failed: %d\n", what, r);
    exit(1);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int reps = quick ? 5 : 31, sort_reps = quick ? 3 : 11, queries = quick ? 2000 : 20000;
    size_t total = (size_t)DEVICES * PER_HOUR;
    double *raw = malloc(total * sizeof(*raw)), *scratch = malloc(total * sizeof(*scratch));
    double *t = malloc((size_t)(reps > sort_reps ? reps : sort_reps) * sizeof(*t));
    fp_sketch *dev[DEVICES], *fleet = NULL, *minute = NULL;
    uint8_t *enc[DEVICES], buf[FP_SKETCH_ENCODED_MAX];
    size_t enc_len[DEVICES], bytes_hour = 0, bytes_minute = 0, len;
    double add_ns, merge_us, decode_merge_us, merge_enc_us, query_us, exact_us, select_us;
    double exact_p95 = 0;
    double est_p95 = 0, select_p95 = 0;
    volatile double sink = 0;
    int r;

    if (!raw || !scratch || !t)
        die("malloc", -1);

    /* The raw samples: device d's hour is raw[d * 360 ..]. */
    for (int d = 0; d < DEVICES; d++) {
        double med = rng_lognormal(0.4, 0.5), sigma = rng_next() % 10 == 0 ? 1.0 : 0.4;

        for (int i = 0; i < PER_HOUR; i++)
            raw[(size_t)d * PER_HOUR + i] = rng_lognormal(med, sigma);
        r = fp_sketch_new(&dev[d]);
        if (r)
            die("fp_sketch_new", r);
    }

    /* add: rebuild every device's hour sketch from its samples */
    for (int k = 0; k < reps; k++) {
        double t0 = now_ns();

        for (int d = 0; d < DEVICES; d++) {
            fp_sketch_reset(dev[d]);
            for (int i = 0; i < PER_HOUR; i++)
                fp_sketch_add(dev[d], raw[(size_t)d * PER_HOUR + i]);
        }
        t[k] = (now_ns() - t0) / (double)total;
    }
    add_ns = median(t, reps);

    for (int d = 0; d < DEVICES; d++) {
        r = fp_sketch_encode(dev[d], buf, sizeof(buf), &enc_len[d]);
        if (r)
            die("fp_sketch_encode", r);
        enc[d] = malloc(enc_len[d]);
        if (!enc[d])
            die("malloc", -1);
        memcpy(enc[d], buf, enc_len[d]);
        bytes_hour += enc_len[d];
    }

    /* merge in memory: the per-device rollups already loaded */
    r = fp_sketch_new(&fleet);
    if (r)
        die("fp_sketch_new", r);
    for (int k = 0; k < reps; k++) {
        double t0;

        fp_sketch_destroy(&fleet);
        if (fp_sketch_new(&fleet))
            die("fp_sketch_new", -1);
        t0 = now_ns();
        for (int d = 0; d < DEVICES; d++) {
            r = fp_sketch_merge(fleet, dev[d]);
            if (r)
                die("fp_sketch_merge", r);
        }
        t[k] = (now_ns() - t0) / 1e3;
    }
    merge_us = median(t, reps);

    /* merge from encodings, as a query over stored rollups would */
    for (int k = 0; k < reps; k++) {
        double t0;

        fp_sketch_reset(fleet);
        t0 = now_ns();
        for (int d = 0; d < DEVICES; d++) {
            fp_sketch *s = NULL;

            r = fp_sketch_decode(enc[d], enc_len[d], &s);
            if (r)
                die("fp_sketch_decode", r);
            r = fp_sketch_merge(fleet, s);
            if (r)
                die("fp_sketch_merge", r);
            fp_sketch_destroy(&s);
        }
        t[k] = (now_ns() - t0) / 1e3;
    }
    decode_merge_us = median(t, reps);

    /* merge straight from encodings, no intermediate sketch */
    for (int k = 0; k < reps; k++) {
        double t0;

        fp_sketch_reset(fleet);
        t0 = now_ns();
        for (int d = 0; d < DEVICES; d++) {
            r = fp_sketch_merge_encoded(fleet, enc[d], enc_len[d]);
            if (r)
                die("fp_sketch_merge_encoded", r);
        }
        t[k] = (now_ns() - t0) / 1e3;
    }
    merge_enc_us = median(t, reps);

    /* quantile: p95 of the fleet sketch */
    for (int k = 0; k < reps; k++) {
        double t0 = now_ns(), v = 0;

        for (int i = 0; i < queries; i++) {
            fp_sketch_quantile(fleet, 0.95, &v);
            sink += v;
        }
        t[k] = (now_ns() - t0) / 1e3 / queries;
    }
    query_us = median(t, reps);
    fp_sketch_quantile(fleet, 0.95, &est_p95);

    /* exact: gather the raw values, sort, index */
    for (int k = 0; k < sort_reps; k++) {
        double t0 = now_ns();

        memcpy(scratch, raw, total * sizeof(*raw));
        qsort(scratch, total, sizeof(*scratch), cmp_double);
        exact_p95 = scratch[(size_t)floor(0.95 * (double)(total - 1))];
        t[k] = (now_ns() - t0) / 1e3;
    }
    exact_us = median(t, sort_reps);

    /* exact by selection: gather, quickselect the rank */
    for (int k = 0; k < sort_reps; k++) {
        double t0 = now_ns();

        memcpy(scratch, raw, total * sizeof(*raw));
        select_p95 = select_kth(scratch, total, (size_t)floor(0.95 * (double)(total - 1)));
        t[k] = (now_ns() - t0) / 1e3;
    }
    select_us = median(t, sort_reps);
    if (select_p95 != exact_p95)
        die("quickselect disagrees with sort", -1);

    /* 1-minute sketches: 6 samples of one device-minute each */
    r = fp_sketch_new(&minute);
    if (r)
        die("fp_sketch_new", r);
    for (int m = 0; m < MINUTES; m++) {
        const double *v = raw + (size_t)(m % DEVICES) * PER_HOUR + (size_t)(m / DEVICES) * 6;

        fp_sketch_reset(minute);
        for (int i = 0; i < PER_MINUTE; i++)
            fp_sketch_add(minute, v[i]);
        fp_sketch_encode(minute, buf, sizeof(buf), &len);
        bytes_minute += len;
    }
    fp_sketch_encode(fleet, buf, sizeof(buf), &len);

    {
        double b1m = (double)bytes_minute / MINUTES, b1h = (double)bytes_hour / DEVICES;
        double err = (est_p95 - exact_p95) / exact_p95;
        /* the query as it would run over stored rollups: merge their encodings, ask p95 */
        double sketch_us = merge_enc_us + query_us;

        printf("add                   %9.1f ns/value\n", add_ns);
        printf("merge 1000 x 1h       %9.1f us in memory, %.1f us from encodings "
               "(decode then merge: %.1f us)\n",
               merge_us, merge_enc_us, decode_merge_us);
        printf("p95 query             %9.3f us\n", query_us);
        printf("exact: sort 360k      %9.1f us = %.0fx merge-from-encodings + query\n", exact_us,
               exact_us / sketch_us);
        printf("exact: select 360k    %9.1f us = %.1fx merge-from-encodings + query\n", select_us,
               select_us / sketch_us);
        printf("bytes 1-min sketch    %9.2f (%.2f per sample)\n", b1m, b1m / PER_MINUTE);
        printf("bytes 1-h sketch      %9.2f (%.2f per sample); merged fleet sketch %zu\n", b1h,
               b1h / PER_HOUR, len);
        printf("fleet p95             exact %.5f s, sketch %.5f s (%+.3f%%)\n", exact_p95, est_p95,
               100 * err);
        printf("{\"bench\":\"sketch\",\"quick\":%s,\"reps\":%d,\"alpha\":%g,\"max_bins\":%d,"
               "\"devices\":%d,\"values_per_hour\":%d,\"add_ns_per_value\":%.2f,"
               "\"merge_1000_hour_us\":%.1f,\"merge_encoded_1000_hour_us\":%.1f,"
               "\"decode_then_merge_1000_hour_us\":%.1f,\"quantile_us\":%.4f,"
               "\"bytes_1min_6v\":%.2f,\"bytes_1h_360v\":%.2f,\"bytes_per_sample_1min\":%.3f,"
               "\"bytes_per_sample_1h\":%.3f,\"bytes_fleet_sketch\":%zu,"
               "\"exact_sort_p95_us\":%.1f,\"exact_select_p95_us\":%.1f,"
               "\"ratio_sort_vs_sketch\":%.1f,\"ratio_select_vs_sketch\":%.2f,"
               "\"p95_rel_err\":%.5f}\n",
               quick ? "true" : "false", reps, FP_SKETCH_ALPHA, FP_SKETCH_MAX_BINS, DEVICES,
               PER_HOUR, add_ns, merge_us, merge_enc_us, decode_merge_us, query_us, b1m, b1h,
               b1m / PER_MINUTE, b1h / PER_HOUR, len, exact_us, select_us, exact_us / sketch_us,
               select_us / sketch_us, err);
    }

    (void)sink;
    for (int d = 0; d < DEVICES; d++) {
        fp_sketch_destroy(&dev[d]);
        free(enc[d]);
    }
    fp_sketch_destroy(&fleet);
    fp_sketch_destroy(&minute);
    free(raw);
    free(scratch);
    free(t);
    return 0;
}
