/* Tests for storage/sketch: the 1% relative-error guarantee against exact (sorted) quantiles on
 * the shapes fleet metrics take, exact merging (bin for bin, compared through the canonical
 * encoding), the fleet p95 of time-to-first-token over 1000 device sketches, encoded sizes, the
 * bin limit under adversarial input, and a decoder that survives every truncation and thousands
 * of seeded byte flips. Also a usage example: build, merge, encode, decode, query. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"
#include "test.h"

/* Quantiles checked on every distribution: the ones dashboards ask for, plus both ends. */
static const double qs[] = {0.0,  0.001, 0.01, 0.05, 0.1,   0.25, 0.5,
                            0.75, 0.9,   0.95, 0.99, 0.999, 1.0};
#define N_QS (sizeof(qs) / sizeof(qs[0]))

/* 1% plus room for double rounding at bin edges (the answer is exactly 1% off at an edge). */
#define TOL (FP_SKETCH_ALPHA * (1 + 1e-9))

/* --- deterministic random numbers (splitmix64): failures reproduce from the seed -------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() of it is finite. */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());
}

/* Lognormal with the given median and log-space sigma. */
static double rng_lognormal(double median, double sigma)
{
    return median * exp(sigma * rng_normal());
}

/* --- helpers ---------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The value of rank floor(q (n - 1)) in sorted: what fp_sketch_quantile estimates. */
static double exact_quantile(const double *sorted, size_t n, double q)
{
    return sorted[(size_t)floor(q * (double)(n - 1))];
}

static fp_sketch *sketch_of(const double *v, size_t n)
{
    fp_sketch *s = NULL;

    fp_assert(fp_sketch_new(&s) == 0);
    for (size_t i = 0; i < n; i++)
        fp_assert(fp_sketch_add(s, v[i]) == 0);
    return s;
}

/* Encodes s into a new buffer (caller frees). */
static uint8_t *encode(const fp_sketch *s, size_t *ret_len)
{
    uint8_t *buf;
    size_t len = 0;

    check_int(fp_sketch_encode(s, NULL, 0, &len), -ENOBUFS);
    fp_assert(len >= 1 && len <= FP_SKETCH_ENCODED_MAX);
    buf = malloc(len);
    fp_assert(buf);
    fp_assert(fp_sketch_encode(s, buf, len, ret_len) == 0);
    check_int(*ret_len, len);
    return buf;
}

/* Bin for bin equality: the encoding is canonical, so equal bytes mean equal sketches. */
static int same_sketch(const fp_sketch *a, const fp_sketch *b)
{
    size_t la, lb;
    uint8_t *ea = encode(a, &la), *eb = encode(b, &lb);
    int same = la == lb && memcmp(ea, eb, la) == 0;

    free(ea);
    free(eb);
    return same && fp_sketch_count(a) == fp_sketch_count(b);
}

/* Checks every quantile in qs against the exact one; returns the worst relative error seen. */
static double check_quantiles(const char *name, const fp_sketch *s, const double *v, size_t n)
{
    double *sorted = malloc(n * sizeof(*sorted)), worst = 0;

    fp_assert(sorted);
    memcpy(sorted, v, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_double);
    check_int(fp_sketch_count(s), n);
    for (size_t i = 0; i < N_QS; i++) {
        double exact = exact_quantile(sorted, n, qs[i]), est = NAN, err;

        check_int(fp_sketch_quantile(s, qs[i], &est), 0);
        if (exact == 0) {
            check(est == 0);
            continue;
        }
        err = fabs(est - exact) / fabs(exact);
        if (!(err <= TOL))
            FP_TEST_FAIL("%s: q=%g estimate %.17g exact %.17g rel.err %g", name, qs[i], est, exact,
                         err);
        if (err > worst)
            worst = err;
    }
    free(sorted);
    if (n < 100)
        return worst; /* the small-sample runs would only fill the log */
    printf("# %-22s n=%zu bins=%zu worst rel.err %.5f%%\n", name, n, fp_sketch_bins(s),
           100 * worst);
    return worst;
}

/* --- distributions ---------------------------------------------------------------------------- */

enum dist { UNIFORM, TTFT, BIMODAL, WIDE, SIGNED, NEGATIVE, PARETO, CONSTANT, N_DIST };

static const char *const dist_names[N_DIST] = {
    "uniform 0..100",    "lognormal ttft", "bimodal",      "log-uniform 1e-6..1e6",
    "signed with zeros", "negative only",  "pareto a=1.2", "constant",
};

static double draw(enum dist d)
{
    switch (d) {
    case UNIFORM:
        return 100 * rng_unit();
    case TTFT:
        /* time to first token: median 0.4 s, a long right tail */
        return rng_lognormal(0.4, 0.6);
    case BIMODAL:
        /* cache hits vs. cold prompt processing */
        return rng_unit() < 0.7 ? rng_lognormal(0.15, 0.1) : rng_lognormal(2.5, 0.2);
    case WIDE:
        return pow(10, -6 + 12 * rng_unit());
    case SIGNED: {
        /* temperature deltas, clock offsets: both signs, many exact zeros, a -0.0 or two */
        double u = rng_unit();

        if (u < 0.1)
            return 0.0;
        if (u < 0.11)
            return -0.0;
        return 10 * rng_normal();
    }
    case NEGATIVE:
        return -rng_lognormal(50, 1.0);
    case PARETO:
        return pow(rng_unit(), -1 / 1.2);
    case CONSTANT:
        return 42.0;
    case N_DIST:
        break;
    }
    return 0;
}

static double *fill(enum dist d, size_t n)
{
    double *v = malloc(n * sizeof(*v));

    fp_assert(v);
    for (size_t i = 0; i < n; i++)
        v[i] = draw(d);
    return v;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_accuracy(void)
{
    const size_t n = 100000;

    for (int d = 0; d < N_DIST; d++) {
        double *v;
        fp_sketch *s;

        rng_state = 1000 + (uint64_t)d;
        v = fill((enum dist)d, n);
        s = sketch_of(v, n);
        check_quantiles(dist_names[d], s, v, n);
        /* Small samples too: a one-minute rollup holds 6 values. */
        for (size_t small = 1; small <= 6; small++) {
            fp_sketch *t = sketch_of(v, small);

            check_quantiles(dist_names[d], t, v, small);
            fp_sketch_destroy(&t);
        }
        fp_sketch_destroy(&s);
        free(v);
    }
}

/* The sketch of A u B equals merge(sketch A, sketch B) whatever the split and order. */
static void check_merge_equivalence(const char *name, const double *v, size_t n)
{
    enum { PARTS = 7 };
    fp_sketch *whole = sketch_of(v, n), *part[PARTS], *fold = NULL, *rfold = NULL, *rev = NULL;

    for (int p = 0; p < PARTS; p++)
        fp_assert(fp_sketch_new(&part[p]) == 0);
    for (size_t i = 0; i < n; i++)
        fp_assert(fp_sketch_add(part[rng_next() % PARTS], v[i]) == 0);

    /* left fold 0..6 */
    fp_assert(fp_sketch_new(&fold) == 0);
    for (int p = 0; p < PARTS; p++)
        check_int(fp_sketch_merge(fold, part[p]), 0);
    if (!same_sketch(whole, fold))
        FP_TEST_FAIL("%s: left-fold merge differs from the sketch of the union", name);

    /* right fold into a non-empty sketch, 6..0 */
    fp_assert(fp_sketch_new(&rfold) == 0);
    check_int(fp_sketch_merge(rfold, part[PARTS - 1]), 0);
    for (int p = PARTS - 2; p >= 0; p--)
        check_int(fp_sketch_merge(rfold, part[p]), 0);
    if (!same_sketch(whole, rfold))
        FP_TEST_FAIL("%s: right-fold merge differs from the sketch of the union", name);

    /* tree: (0+1) + (2+3) + ((4+5)+6), merging into the parts themselves */
    check_int(fp_sketch_merge(part[0], part[1]), 0);
    check_int(fp_sketch_merge(part[2], part[3]), 0);
    check_int(fp_sketch_merge(part[4], part[5]), 0);
    check_int(fp_sketch_merge(part[4], part[6]), 0);
    check_int(fp_sketch_merge(part[2], part[4]), 0);
    check_int(fp_sketch_merge(part[0], part[2]), 0);
    if (!same_sketch(whole, part[0]))
        FP_TEST_FAIL("%s: tree merge differs from the sketch of the union", name);

    /* insertion order: reversed */
    fp_assert(fp_sketch_new(&rev) == 0);
    for (size_t i = n; i-- > 0;)
        fp_assert(fp_sketch_add(rev, v[i]) == 0);
    if (!same_sketch(whole, rev))
        FP_TEST_FAIL("%s: reversed insertion differs", name);

    for (int p = 0; p < PARTS; p++)
        fp_sketch_destroy(&part[p]);
    fp_sketch_destroy(&whole);
    fp_sketch_destroy(&fold);
    fp_sketch_destroy(&rfold);
    fp_sketch_destroy(&rev);
}

static double adversarial(void)
{
    /* log-uniform over 1e-300..1e300, either sign: 34k bins' worth of range per sign */
    double x = pow(10, -300 + 600 * rng_unit());

    return rng_next() & 1 ? x : -x;
}

static void test_merge(void)
{
    const size_t n = 50000;

    for (int d = 0; d < N_DIST; d++) {
        double *v;

        rng_state = 2000 + (uint64_t)d;
        v = fill((enum dist)d, n);
        check_merge_equivalence(dist_names[d], v, n);
        free(v);
    }

    /* With collapsing in play: the parts each collapse at their own level, the union at its. */
    {
        double *v = malloc(n * sizeof(*v));

        fp_assert(v);
        rng_state = 2100;
        for (size_t i = 0; i < n; i++)
            v[i] = adversarial();
        check_merge_equivalence("adversarial", v, n);
        /* ascending: the top bin keeps rising, so collapsing happens on nearly every add */
        qsort(v, n, sizeof(*v), cmp_double);
        check_merge_equivalence("adversarial sorted", v, n);
        free(v);
    }

    /* add_n(v, k) is k adds; merging an empty sketch changes nothing; self-merge refused. */
    {
        fp_sketch *a = NULL, *b = NULL, *empty = NULL;

        fp_assert(fp_sketch_new(&a) == 0 && fp_sketch_new(&b) == 0 && fp_sketch_new(&empty) == 0);
        rng_state = 2200;
        for (int i = 0; i < 100; i++) {
            double x = draw(SIGNED);
            uint64_t k = rng_next() % 5;

            check_int(fp_sketch_add_n(a, x, k), 0);
            for (uint64_t j = 0; j < k; j++)
                check_int(fp_sketch_add(b, x), 0);
        }
        check(same_sketch(a, b));
        check_int(fp_sketch_merge(a, empty), 0);
        check(same_sketch(a, b));
        check_int(fp_sketch_merge(empty, a), 0);
        check(same_sketch(a, empty));
        check_int(fp_sketch_merge(a, a), -EINVAL);
        check(same_sketch(a, b));

        /* reset gives an empty sketch that behaves like a new one */
        fp_sketch_reset(a);
        check_int(fp_sketch_count(a), 0);
        check_int(fp_sketch_bins(a), 0);
        rng_state = 2201;
        fp_sketch_reset(b);
        for (int i = 0; i < 1000; i++) {
            double x = draw(TTFT);

            check_int(fp_sketch_add(a, x * 1e6), 0);
            check_int(fp_sketch_add(b, x * 1e6), 0);
        }
        check(same_sketch(a, b));
        fp_sketch_destroy(&a);
        fp_sketch_destroy(&b);
        fp_sketch_destroy(&empty);
    }
}

/* The query this exists for: fleet p95 of time to first token, pooled over 1000 devices' one-hour
 * rollups. Devices differ (hardware, model, load), so a p95 of p95s is wrong; the merged sketch
 * must give the pooled p95 within 1%, also after the rollups went through encode/decode. */
static void test_fleet_p95(void)
{
    enum { DEVICES = 1000, PER_HOUR = 360 };
    double *all = malloc((size_t)DEVICES * PER_HOUR * sizeof(*all));
    double *dev_p95 = malloc(DEVICES * sizeof(*dev_p95));
    fp_sketch *fleet = NULL, *fleet_decoded = NULL, *fleet_encoded = NULL;
    double exact, est, naive, worst;
    size_t bytes = 0;

    fp_assert(all && dev_p95);
    fp_assert(fp_sketch_new(&fleet) == 0 && fp_sketch_new(&fleet_decoded) == 0 &&
              fp_sketch_new(&fleet_encoded) == 0);
    rng_state = 3000;
    for (int d = 0; d < DEVICES; d++) {
        /* per-device median from 0.1 s to a few s; a tenth of devices are overloaded */
        double median = rng_lognormal(0.4, 0.5), sigma = rng_next() % 10 == 0 ? 1.0 : 0.4;
        double *v = all + (size_t)d * PER_HOUR;
        fp_sketch *s, *back = NULL;
        uint8_t *enc;
        size_t len;

        for (int i = 0; i < PER_HOUR; i++)
            v[i] = rng_lognormal(median, sigma);
        s = sketch_of(v, PER_HOUR);
        check_int(fp_sketch_quantile(s, 0.95, &dev_p95[d]), 0);
        enc = encode(s, &len);
        bytes += len;
        check_int(fp_sketch_decode(enc, len, &back), 0);
        check_int(fp_sketch_merge(fleet, s), 0);
        check_int(fp_sketch_merge(fleet_decoded, back), 0);
        check_int(fp_sketch_merge_encoded(fleet_encoded, enc, len), 0);
        free(enc);
        fp_sketch_destroy(&back);
        fp_sketch_destroy(&s);
    }

    worst = check_quantiles("fleet ttft (merged)", fleet, all, (size_t)DEVICES * PER_HOUR);
    check(worst <= TOL);
    check(same_sketch(fleet, fleet_decoded));
    check(same_sketch(fleet, fleet_encoded));

    qsort(all, (size_t)DEVICES * PER_HOUR, sizeof(*all), cmp_double);
    exact = exact_quantile(all, (size_t)DEVICES * PER_HOUR, 0.95);
    check_int(fp_sketch_quantile(fleet, 0.95, &est), 0);
    check_near(est, exact, FP_SKETCH_ALPHA * exact);
    qsort(dev_p95, DEVICES, sizeof(*dev_p95), cmp_double);
    naive = exact_quantile(dev_p95, DEVICES, 0.95);
    printf("# fleet p95 ttft: exact %.4f s, merged sketch %.4f s (%+.3f%%), p95 of device p95s "
           "%.4f s (%+.1f%%); %.1f bytes per 1-hour sketch\n",
           exact, est, 100 * (est - exact) / exact, naive, 100 * (naive - exact) / exact,
           (double)bytes / DEVICES);
    /* The naive answer must be visibly wrong on this data, or the test shows nothing. */
    check(fabs(naive - exact) / exact > 0.10);

    fp_sketch_destroy(&fleet);
    fp_sketch_destroy(&fleet_decoded);
    fp_sketch_destroy(&fleet_encoded);
    free(dev_p95);
    free(all);
}

static void check_round_trip(const char *name, const fp_sketch *s)
{
    size_t len, len2;
    uint8_t *enc = encode(s, &len), *enc2;
    fp_sketch *back = NULL;

    check_int(fp_sketch_decode(enc, len, &back), 0);
    fp_assert(back);
    check_int(fp_sketch_count(back), fp_sketch_count(s));
    check_int(fp_sketch_bins(back), fp_sketch_bins(s));
    enc2 = encode(back, &len2);
    if (len != len2 || memcmp(enc, enc2, len) != 0)
        FP_TEST_FAIL("%s: re-encoding differs", name);
    for (size_t i = 0; i < N_QS && fp_sketch_count(s) > 0; i++) {
        double a = NAN, b = NAN;

        check_int(fp_sketch_quantile(s, qs[i], &a), 0);
        check_int(fp_sketch_quantile(back, qs[i], &b), 0);
        check_double(a, b);
    }
    free(enc);
    free(enc2);
    fp_sketch_destroy(&back);
}

static void test_round_trip(void)
{
    fp_sketch *s = NULL;

    fp_assert(fp_sketch_new(&s) == 0);
    check_round_trip("empty", s);
    for (int d = 0; d < N_DIST; d++) {
        double *v;
        fp_sketch *t;

        rng_state = 4000 + (uint64_t)d;
        v = fill((enum dist)d, 20000);
        t = sketch_of(v, 20000);
        check_round_trip(dist_names[d], t);
        fp_sketch_destroy(&t);
        free(v);
    }

    /* Extremes: the top and bottom bins (decode checks the index range), subnormals and huge
     * counts (10-byte varints). */
    check_int(fp_sketch_add(s, DBL_MAX), 0);
    check_int(fp_sketch_add(s, -DBL_MAX), 0);
    check_int(fp_sketch_add(s, DBL_MIN), 0);
    check_int(fp_sketch_add(s, -DBL_MIN), 0);
    check_int(fp_sketch_add(s, nextafter(DBL_MIN, 0)), 0);
    check_int(fp_sketch_add(s, 5e-324), 0);
    check_round_trip("extremes", s);
    {
        double v;

        check_int(fp_sketch_quantile(s, 1.0, &v), 0);
        check(v <= DBL_MAX && v >= DBL_MAX * (1 - TOL));
        check_int(fp_sketch_quantile(s, 0.0, &v), 0);
        check(v >= -DBL_MAX && v <= -DBL_MAX * (1 - TOL));
        /* rank 2 of 6 is a subnormal, counted as zero */
        check_int(fp_sketch_quantile(s, 0.5, &v), 0);
        check_double(v, 0.0);
    }
    fp_sketch_reset(s);
    check_int(fp_sketch_add_n(s, 1.0, UINT64_MAX - 2), 0);
    check_int(fp_sketch_add_n(s, 0.0, 1), 0);
    check_int(fp_sketch_add_n(s, -1.0, 1), 0);
    check_round_trip("huge counts", s);
    fp_sketch_destroy(&s);
}

static void test_sizes(void)
{
    static const double six[] = {0.41, 0.39, 0.40, 0.43, 0.38, 0.42};
    fp_sketch *s = NULL;
    size_t len, total = 0, worst = 0;
    uint8_t buf[64];

    fp_assert(fp_sketch_new(&s) == 0);
    check_int(fp_sketch_encode(s, buf, sizeof(buf), &len), 0);
    check_int(len, 1);

    check_int(fp_sketch_add(s, 0.4), 0);
    check_int(fp_sketch_encode(s, buf, sizeof(buf), &len), 0);
    check(len <= 4);

    fp_sketch_reset(s);
    for (size_t i = 0; i < 6; i++)
        check_int(fp_sketch_add(s, six[i]), 0);
    check_int(fp_sketch_encode(s, buf, sizeof(buf), &len), 0);
    printf("# 6 similar values: %zu bytes\n", len);
    check(len <= 16);
    /* too small a buffer: refused, and the needed length reported */
    {
        size_t need = len, got = 0;

        check_int(fp_sketch_encode(s, buf, need - 1, &got), -ENOBUFS);
        check_int(got, need);
    }

    /* One minute of a 10 s series, 1000 times over, on the ttft shape. */
    rng_state = 5000;
    for (int m = 0; m < 1000; m++) {
        fp_sketch_reset(s);
        for (int i = 0; i < 6; i++)
            check_int(fp_sketch_add(s, rng_lognormal(0.4, 0.6)), 0);
        check_int(fp_sketch_encode(s, buf, sizeof(buf), &len), 0);
        total += len;
        if (len > worst)
            worst = len;
    }
    printf("# 1-minute ttft sketches (6 values): mean %.2f bytes, worst %zu\n",
           (double)total / 1000, worst);
    check(total <= 1000 * 16);
    /* header, start index (2 bytes above e^1.28 or below e^-1.28), bin count, first count, and
     * five tokens of 1 byte (gap < 64 bins, a factor 3.6) or 2 */
    check(worst <= 1 + 2 + 1 + 1 + 5 * 2);
    fp_sketch_destroy(&s);
}

static void test_bin_limit(void)
{
    const size_t n = 200000;
    fp_sketch *s = NULL, *pos = NULL;
    double *pv = malloc(n * sizeof(*pv)), v, exact;
    size_t np = 0, len;
    uint8_t *enc;

    fp_assert(pv);
    fp_assert(fp_sketch_new(&s) == 0 && fp_sketch_new(&pos) == 0);
    rng_state = 6000;
    for (size_t i = 0; i < n; i++) {
        double x = adversarial();

        check_int(fp_sketch_add(s, x), 0);
        if (x > 0) {
            check_int(fp_sketch_add(pos, x), 0);
            pv[np++] = x;
        }
    }
    printf("# adversarial 1e-300..1e300: %zu bins (limit %d), positives only %zu bins\n",
           fp_sketch_bins(s), 2 * FP_SKETCH_MAX_BINS + 1, fp_sketch_bins(pos));
    check(fp_sketch_bins(s) <= 2 * FP_SKETCH_MAX_BINS + 1);
    check(fp_sketch_bins(pos) <= FP_SKETCH_MAX_BINS);
    enc = encode(s, &len);
    printf("# adversarial encoding: %zu bytes (bound %d)\n", len, FP_SKETCH_ENCODED_MAX);
    check(len <= FP_SKETCH_ENCODED_MAX);
    free(enc);
    check_round_trip("adversarial", s);

    /* The high end keeps its guarantee: the retained 2048 bins reach down ~17.8 decades from the
     * top, i.e. to about 1e282, the p97 of a log-uniform 1e-300..1e300; test from p98. */
    qsort(pv, np, sizeof(*pv), cmp_double);
    for (double q = 0.98; q <= 1.0; q += 0.002) {
        exact = exact_quantile(pv, np, q);
        check_int(fp_sketch_quantile(pos, q, &v), 0);
        check(fabs(v - exact) <= TOL * exact);
    }
    /* Below, collapsed values read high, never low. */
    for (double q = 0.0; q < 0.9; q += 0.1) {
        exact = exact_quantile(pv, np, q);
        check_int(fp_sketch_quantile(pos, q, &v), 0);
        check(v >= exact);
    }
    fp_sketch_destroy(&s);
    fp_sketch_destroy(&pos);
    free(pv);

    /* One value in the middle of each of 5000 consecutive bins: exactly the limit is kept, and the
     * answer for the lowest retained bin is its own value (only lower ones were folded in). */
    {
        const double gamma = (1 + FP_SKETCH_ALPHA) / (1 - FP_SKETCH_ALPHA);
        const int bins = 5000;
        double lowest_kept = 0;

        fp_assert(fp_sketch_new(&s) == 0);
        for (int k = 0; k < bins; k++) {
            double x = 1e-40 * pow(gamma, k + 0.5);

            check_int(fp_sketch_add(s, x), 0);
            if (k == bins - FP_SKETCH_MAX_BINS)
                lowest_kept = x;
        }
        check_int(fp_sketch_bins(s), FP_SKETCH_MAX_BINS);
        check_int(fp_sketch_quantile(s, 0.0, &v), 0);
        check_near(v, lowest_kept, TOL * lowest_kept);
        check_int(fp_sketch_quantile(s, 1.0, &v), 0);
        check_near(v, 1e-40 * pow(gamma, bins - 0.5), TOL * 1e-40 * pow(gamma, bins - 0.5));
        fp_sketch_destroy(&s);
    }
}

static void test_errors(void)
{
    fp_sketch *s = NULL, *t = NULL;
    double v = 123;
    size_t len1, len2;
    uint8_t *e1, *e2;

    fp_sketch_destroy(NULL);
    fp_sketch_destroy(&s);
    fp_assert(fp_sketch_new(&s) == 0 && fp_sketch_new(&t) == 0);

    check_int(fp_sketch_quantile(s, 0.5, &v), FP_SKETCH_E_EMPTY);
    check_double(v, 123);
    check_int(fp_sketch_add(s, NAN), FP_SKETCH_E_NONFINITE);
    check_int(fp_sketch_add(s, INFINITY), FP_SKETCH_E_NONFINITE);
    check_int(fp_sketch_add_n(s, -INFINITY, 3), FP_SKETCH_E_NONFINITE);
    check_int(fp_sketch_add_n(s, 1.0, 0), 0);
    check_int(fp_sketch_count(s), 0);
    check_int(fp_sketch_quantile(s, 0.5, &v), FP_SKETCH_E_EMPTY);

    check_int(fp_sketch_add(s, 2.0), 0);
    check_int(fp_sketch_quantile(s, -0.01, &v), -EINVAL);
    check_int(fp_sketch_quantile(s, 1.01, &v), -EINVAL);
    check_int(fp_sketch_quantile(s, NAN, &v), -EINVAL);
    check_int(fp_sketch_quantile(s, 0.5, &v), 0);
    check_near(v, 2.0, 2.0 * TOL);

    /* count overflow: refused, nothing changed */
    check_int(fp_sketch_add_n(s, 3.0, UINT64_MAX - 1), 0);
    e1 = encode(s, &len1);
    check_int(fp_sketch_add(s, 4.0), -EOVERFLOW);
    check_int(fp_sketch_add(t, -4.0), 0);
    check_int(fp_sketch_merge(s, t), -EOVERFLOW);
    e2 = encode(s, &len2);
    check(len1 == len2 && memcmp(e1, e2, len1) == 0);
    check_int(fp_sketch_count(s), UINT64_MAX);
    check_int(fp_sketch_quantile(s, 1.0, &v), 0);
    check_near(v, 3.0, 3.0 * TOL);
    free(e1);
    free(e2);

    check_int(fp_sketch_decode(NULL, 0, &t), FP_SKETCH_E_CORRUPT);
    check(t != NULL); /* untouched on failure */
    fp_sketch_destroy(&s);
    fp_sketch_destroy(&t);
    check(s == NULL && t == NULL);
}

/* A non-empty sketch that fp_sketch_merge_encoded merges untrusted input into. */
static fp_sketch *merge_base;

/* Decodes a heap copy of exactly len bytes, so that ASan sees any read past the end. An accepted
 * input must be a sketch that re-encodes to the same bytes (decode accepts canonical encodings
 * only) and answers queries. fp_sketch_merge_encoded must agree: the same verdict, the same
 * result as merging the decoded sketch, and the base unchanged on refusal. Returns the decode
 * result. */
static int decode_untrusted(const uint8_t *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    fp_sketch *s = NULL, *a = NULL, *b = NULL;
    int r;

    fp_assert(copy);
    memcpy(copy, data, len);
    r = fp_sketch_decode(copy, len, &s);

    fp_assert(fp_sketch_new(&a) == 0 && fp_sketch_new(&b) == 0);
    fp_assert(fp_sketch_merge(a, merge_base) == 0 && fp_sketch_merge(b, merge_base) == 0);
    if (r == 0 && fp_sketch_count(s) > UINT64_MAX - fp_sketch_count(merge_base)) {
        /* a mutated count near 2^64: valid alone, too many beside the base */
        check_int(fp_sketch_merge_encoded(a, copy, len), -EOVERFLOW);
        check_int(fp_sketch_merge(b, s), -EOVERFLOW);
    } else {
        check_int(fp_sketch_merge_encoded(a, copy, len), r);
        if (r == 0)
            check_int(fp_sketch_merge(b, s), 0);
    }
    check(same_sketch(a, b));
    fp_sketch_destroy(&a);
    fp_sketch_destroy(&b);

    if (r == 0) {
        size_t len2;
        uint8_t *again = encode(s, &len2);
        double v;

        if (len2 != len || memcmp(again, copy, len) != 0)
            FP_TEST_FAIL("accepted a non-canonical encoding of %zu bytes", len);
        check(fp_sketch_bins(s) <= 2 * FP_SKETCH_MAX_BINS + 1);
        if (fp_sketch_count(s) > 0) {
            check_int(fp_sketch_quantile(s, 0.5, &v), 0);
            check(isfinite(v));
        }
        free(again);
        fp_sketch_destroy(&s);
    } else {
        check_int(r, FP_SKETCH_E_CORRUPT);
        check(s == NULL);
    }
    free(copy);
    return r;
}

static void test_corruption(void)
{
    enum { SAMPLES = 5, FLIPS = 4000 };
    fp_sketch *samples[SAMPLES];
    int accepted = 0, refused = 0;

    /* a spread of valid encodings: tiny, one hour of ttft, signed with zeros, collapsed,
     * huge counts */
    rng_state = 7000;
    fp_assert(fp_sketch_new(&merge_base) == 0);
    for (int i = 0; i < 300; i++)
        check_int(fp_sketch_add(merge_base, draw(SIGNED) * 1e3), 0);
    for (int i = 0; i < SAMPLES; i++)
        fp_assert(fp_sketch_new(&samples[i]) == 0);
    for (int i = 0; i < 6; i++)
        check_int(fp_sketch_add(samples[0], draw(TTFT)), 0);
    for (int i = 0; i < 360; i++)
        check_int(fp_sketch_add(samples[1], draw(TTFT)), 0);
    for (int i = 0; i < 2000; i++)
        check_int(fp_sketch_add(samples[2], draw(SIGNED)), 0);
    for (int i = 0; i < 20000; i++)
        check_int(fp_sketch_add(samples[3], adversarial()), 0);
    check_int(fp_sketch_add_n(samples[4], 1e-3, UINT64_MAX / 3), 0);
    check_int(fp_sketch_add_n(samples[4], -7.0, UINT64_MAX / 3), 0);
    check_int(fp_sketch_add_n(samples[4], 0.0, 5), 0);

    for (int i = 0; i < SAMPLES; i++) {
        size_t len;
        uint8_t *enc = encode(samples[i], &len), *mut = malloc(len + 2);

        fp_assert(mut);
        check_int(decode_untrusted(enc, len), 0);

        /* Every strict prefix is refused: lengths are declared up front, so none can pass. */
        for (size_t cut = 0; cut < len; cut++)
            check_int(decode_untrusted(enc, cut), FP_SKETCH_E_CORRUPT);
        /* A trailing byte is refused. */
        memcpy(mut, enc, len);
        mut[len] = 0;
        check_int(decode_untrusted(mut, len + 1), FP_SKETCH_E_CORRUPT);

        /* Seeded flips: 1-3 random bytes replaced or single bits flipped, at random lengths. */
        for (int f = 0; f < FLIPS; f++) {
            size_t mlen = len, k = 1 + rng_next() % 3;

            memcpy(mut, enc, len);
            for (size_t j = 0; j < k; j++) {
                size_t at = rng_next() % len;

                if (rng_next() & 1)
                    mut[at] = (uint8_t)rng_next();
                else
                    mut[at] ^= (uint8_t)(1u << (rng_next() % 8));
            }
            if (rng_next() % 8 == 0)
                mlen = rng_next() % (len + 1);
            if (decode_untrusted(mut, mlen) == 0)
                accepted++;
            else
                refused++;
        }
        free(mut);
        free(enc);
    }

    /* Pure noise, short buffers: the header byte is where most of it dies. */
    for (int f = 0; f < 2000; f++) {
        uint8_t noise[24];
        size_t nlen = rng_next() % sizeof(noise);

        for (size_t j = 0; j < nlen; j++)
            noise[j] = (uint8_t)rng_next();
        if (nlen > 0 && (rng_next() & 1))
            noise[0] = (uint8_t)((FP_SKETCH_FORMAT << 5) | (noise[0] & 0x07));
        if (decode_untrusted(noise, nlen) == 0)
            accepted++;
        else
            refused++;
    }
    printf("# corruption: %d mutated inputs accepted (as valid sketches), %d refused\n", accepted,
           refused);
    check(refused > 0 && accepted > 0);

    for (int i = 0; i < SAMPLES; i++)
        fp_sketch_destroy(&samples[i]);
    fp_sketch_destroy(&merge_base);
}

/* Usage, as a rollup would do it: per-minute sketches merged into the hour, stored, read back. */
static void test_example(void)
{
    fp_sketch *minute = NULL, *hour = NULL, *read_back = NULL;
    uint8_t buf[FP_SKETCH_ENCODED_MAX];
    size_t len;
    double p99;

    fp_assert(fp_sketch_new(&minute) == 0 && fp_sketch_new(&hour) == 0);
    rng_state = 8000;
    for (int m = 0; m < 60; m++) {
        fp_sketch_reset(minute);
        for (int i = 0; i < 6; i++)
            check_int(fp_sketch_add(minute, rng_lognormal(0.4, 0.6)), 0);
        check_int(fp_sketch_merge(hour, minute), 0);
    }
    check_int(fp_sketch_encode(hour, buf, sizeof(buf), &len), 0);
    check_int(fp_sketch_decode(buf, len, &read_back), 0);
    check_int(fp_sketch_quantile(read_back, 0.99, &p99), 0);
    check_int(fp_sketch_count(read_back), 360);
    check(p99 > 0.4);
    fp_sketch_destroy(&minute);
    fp_sketch_destroy(&hour);
    fp_sketch_destroy(&read_back);
}

int main(void)
{
    test_errors();
    test_accuracy();
    test_merge();
    test_fleet_p95();
    test_round_trip();
    test_sizes();
    test_bin_limit();
    test_corruption();
    test_example();
    fp_test_end();
}
