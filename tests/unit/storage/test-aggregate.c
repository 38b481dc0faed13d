/* Aggregated reads (storage/aggregate.c) against a small store written through fp_store_write:
 * every reduction with values computed by hand, group-by on one and two labels, bucket edges,
 * counter resets, regex matchers, empty results, the max_points refusal and bad queries, and a
 * pooled quantile over 4000 samples in 50 series within 1% of the exact value.
 *
 * The hand-made fleet (T = 1700000000000 ms, buckets of 10 s from T):
 *
 *   ttft_seconds (gauge)      T+0   T+1s  T+2s  T+5s  T+9.999s | T+10s T+12s T+15s | T+25s T+29.999s
 *     dev-a model=m1 eu       1                 3              | 5                  |       7
 *     dev-b model=m1 us             2                 4        |                    |           (100 at T+30s)
 *     dev-c model=m2 eu             10                         |       20           | 30
 *     dev-d model=m2 (none)                                    |             40     |     (1000 at T-1ms)
 *
 * so over [T, T+30s) bucket 0 holds {1, 3, 2, 4, 10}, bucket 1 {5, 20, 40}, bucket 2 {7, 30}. */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "store.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define T INT64_C(1700000000000)
#define STEP 10000

static struct fp_store *store;
static uint64_t seq;

/* One batch holding one series of device. */
static void write_series(const char *device, const char *metric, enum fp_series_type type,
                         const struct fp_label *labels, size_t n_labels, const int64_t *ts,
                         const double *v, size_t n)
{
    struct fp_series_in s = {metric, type, labels, n_labels, ts, v, n};
    struct fp_write_batch b = {.device = device,
                               .epoch = 1,
                               .seq = ++seq,
                               .received_ms = T,
                               .series = &s,
                               .n_series = 1};
    struct fp_write_result res;

    fp_assert(fp_store_write(store, &b, 1, &res) == 0);
    fp_assert(res.status == 0 && res.samples_written == n);
}

static void write_fixture(void)
{
    static const struct fp_label a_l[] = {{"model", "m1"}, {"region", "eu"}};
    static const struct fp_label b_l[] = {{"region", "us"}, {"model", "m1"}};
    static const struct fp_label c_l[] = {{"model", "m2"}, {"region", "eu"}};
    static const struct fp_label d_l[] = {{"model", "m2"}};
    const int64_t a_ts[] = {T, T + 5000, T + 10000, T + 29999};
    const double a_v[] = {1, 3, 5, 7};
    const int64_t b_ts[] = {T + 2000, T + 9999, T + 30000};
    const double b_v[] = {2, 4, 100};
    const int64_t c_ts[] = {T + 1000, T + 12000, T + 25000};
    const double c_v[] = {10, 20, 30};
    const int64_t d_ts[] = {T - 1, T + 15000};
    const double d_v[] = {1000, 40};

    /* Counters: dev-a resets twice in bucket 0 (10 15 3 8: +5, +3 (reset), +5 = 13) and has
     * 20 22 26 in bucket 1 (+6; the 8 -> 20 step crosses the bucket edge and is not counted);
     * dev-b rises 100 -> 110 in bucket 0 and has a lone 5 in bucket 1. */
    const int64_t ca_ts[] = {T, T + 3000, T + 6000, T + 9000, T + 10000, T + 14000, T + 19999};
    const double ca_v[] = {10, 15, 3, 8, 20, 22, 26};
    const int64_t cb_ts[] = {T + 1000, T + 8000, T + 12000};
    const double cb_v[] = {100, 110, 5};

    /* Equal newest times in two series; a NaN that every reduction skips. */
    const int64_t tie_ts[] = {T + 100};
    const double tie_a[] = {1}, tie_b[] = {2};
    const int64_t nan_ts[] = {T, T + 1000, T + 2000};
    const double nan_v[] = {NAN, 2, INFINITY};

    write_series("dev-a", "ttft_seconds", FP_SERIES_GAUGE, a_l, N(a_l), a_ts, a_v, N(a_ts));
    write_series("dev-b", "ttft_seconds", FP_SERIES_GAUGE, b_l, N(b_l), b_ts, b_v, N(b_ts));
    write_series("dev-c", "ttft_seconds", FP_SERIES_GAUGE, c_l, N(c_l), c_ts, c_v, N(c_ts));
    write_series("dev-d", "ttft_seconds", FP_SERIES_GAUGE, d_l, N(d_l), d_ts, d_v, N(d_ts));
    write_series("dev-a", "requests_total", FP_SERIES_COUNTER, NULL, 0, ca_ts, ca_v, N(ca_ts));
    write_series("dev-b", "requests_total", FP_SERIES_COUNTER, NULL, 0, cb_ts, cb_v, N(cb_ts));
    write_series("dev-a", "tie", FP_SERIES_GAUGE, NULL, 0, tie_ts, tie_a, 1);
    write_series("dev-b", "tie", FP_SERIES_GAUGE, NULL, 0, tie_ts, tie_b, 1);
    write_series("dev-a", "gaps", FP_SERIES_GAUGE, NULL, 0, nan_ts, nan_v, N(nan_ts));
}

/* A query over metric plus extra matchers, [T, T + 30 s) in 10 s buckets, no group-by. */
struct query {
    struct fp_agg_query q;
    struct fp_matcher m[4];
};

static struct fp_agg_query *query(struct query *b, const char *metric, enum fp_agg_fn fn)
{
    memset(b, 0, sizeof(*b));
    b->m[0] = (struct fp_matcher){"__name__", metric, FP_MATCH_EQ};
    b->q = (struct fp_agg_query){.matchers = b->m,
                                 .n_matchers = 1,
                                 .from_ms = T,
                                 .to_ms = T + 30000,
                                 .step_ms = STEP,
                                 .fn = fn,
                                 .max_points = 1000};
    return &b->q;
}

/* Runs q and expects success; the caller destroys the result. */
static struct fp_agg_result *run(const struct fp_agg_query *q)
{
    struct fp_store_reader *rd = NULL;
    struct fp_agg_result *res = NULL;
    int r;

    fp_assert(fp_store_reader_open(store, &rd) == 0);
    r = fp_store_aggregate(rd, q, &res);
    fp_store_reader_close(&rd);
    if (r != 0) {
        FP_TEST_FAIL("fp_store_aggregate: %d", r);
        exit(1);
    }
    fp_assert(res != NULL);
    return res;
}

/* Runs q and returns its status (no result is left over). */
static int run_status(const struct fp_agg_query *q)
{
    struct fp_store_reader *rd = NULL;
    static struct fp_agg_result sentinel;
    struct fp_agg_result *res = &sentinel; /* must stay untouched on failure */
    int r;

    fp_assert(fp_store_reader_open(store, &rd) == 0);
    r = fp_store_aggregate(rd, q, &res);
    fp_store_reader_close(&rd);
    if (r == 0)
        fp_agg_result_destroy(&res);
    else
        check(res == &sentinel);
    return r;
}

/* Checks group gi: labels as "name=value,..." and points as (bucket index from T, value). */
static void expect_group(const struct fp_agg_result *res, size_t gi, const char *labels,
                         size_t n, const int *buckets, const double *values, int line)
{
    const struct fp_agg_group *g;
    char got[256] = "";

    if (gi >= res->n_groups) {
        FP_TEST_FAIL("line %d: no group %zu (%zu groups)", line, gi, res->n_groups);
        return;
    }
    g = &res->groups[gi];
    for (size_t i = 0; i < g->n_labels; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s=%s", i ? "," : "",
                 g->labels[i].name, g->labels[i].value);
    if (strcmp(got, labels) != 0)
        FP_TEST_FAIL("line %d: group %zu labels \"%s\", expected \"%s\"", line, gi, got, labels);
    if (g->n_points != n) {
        FP_TEST_FAIL("line %d: group %zu has %zu points, expected %zu", line, gi, g->n_points, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (g->points[i].ts_ms != T + (int64_t)buckets[i] * STEP)
            FP_TEST_FAIL("line %d: group %zu point %zu at T%+lld ms, expected bucket %d", line, gi,
                         i, (long long)(g->points[i].ts_ms - T), buckets[i]);
        if (!(g->points[i].value == values[i]))
            FP_TEST_FAIL("line %d: group %zu point %zu = %.17g, expected %.17g", line, gi, i,
                         g->points[i].value, values[i]);
    }
}

#define EXPECT_GROUP(res, gi, labels, buckets, ...)                                                \
    do {                                                                                           \
        static const int b_[] = buckets;                                                           \
        const double v_[] = {__VA_ARGS__};                                                         \
        fp_assert(N(b_) == N(v_));                                                                 \
        expect_group(res, gi, labels, N(b_), b_, v_, __LINE__);                                    \
    } while (0)

#define B(...) {__VA_ARGS__}

/* The sketch's guarantee, |estimate - x| <= 1% of |x|, with room for double rounding at a bin
 * edge. */
#define check_rel(a, x) check_near(a, x, 0.01 * fabs((double)(x)) * (1 + 1e-9))

/* One group over everything: each reduction over {1,3,2,4,10}, {5,20,40}, {7,30}. The samples
 * at T-1 ms and at T+30 s (= to) lie outside; T+10 s (a bucket start) opens bucket 1; T+9.999 s
 * and T+29.999 s close buckets 0 and 2. */
static void test_every_agg(void)
{
    struct query b;
    struct fp_agg_result *res;
    static const struct {
        enum fp_agg_fn fn;
        double v[3];
    } cases[] = {
        {FP_AGG_AVG, {4, 65.0 / 3, 18.5}}, {FP_AGG_MIN, {1, 5, 7}},  {FP_AGG_MAX, {10, 40, 30}},
        {FP_AGG_SUM, {20, 65, 37}},        {FP_AGG_COUNT, {5, 3, 2}}, {FP_AGG_LAST, {4, 40, 7}},
    };

    for (size_t i = 0; i < N(cases); i++) {
        res = run(query(&b, "ttft_seconds", cases[i].fn));
        check_int(res->n_groups, 1);
        check_int(res->n_points, 3);
        EXPECT_GROUP(res, 0, "", B(0, 1, 2), cases[i].v[0], cases[i].v[1], cases[i].v[2]);
        fp_agg_result_destroy(&res);
        check(res == NULL);
        fp_agg_result_destroy(&res); /* idempotent */
    }

    /* Quantiles, within 1%: bucket 0 sorted {1,2,3,4,10}; rank floor(q * (n - 1)). */
    query(&b, "ttft_seconds", FP_AGG_QUANTILE);
    b.q.q = 0.5;
    res = run(&b.q);
    fp_assert(res->n_groups == 1 && res->groups[0].n_points == 3);
    check_rel(res->groups[0].points[0].value, 3);
    check_rel(res->groups[0].points[1].value, 20);
    check_rel(res->groups[0].points[2].value, 7);
    fp_agg_result_destroy(&res);
    /* q = 0 and q = 1 are the exact minimum and maximum. */
    b.q.q = 1;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1, 2), 10, 40, 30);
    fp_agg_result_destroy(&res);
    b.q.q = 0;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1, 2), 1, 5, 7);
    fp_agg_result_destroy(&res);

    /* Ties on the newest time go to the larger value, whatever the read order. */
    res = run(query(&b, "tie", FP_AGG_LAST));
    EXPECT_GROUP(res, 0, "", B(0), 2);
    fp_agg_result_destroy(&res);

    /* NaN is skipped everywhere; +Inf counts, except for a quantile. */
    res = run(query(&b, "gaps", FP_AGG_COUNT));
    EXPECT_GROUP(res, 0, "", B(0), 2);
    fp_agg_result_destroy(&res);
    res = run(query(&b, "gaps", FP_AGG_MIN));
    EXPECT_GROUP(res, 0, "", B(0), 2);
    fp_agg_result_destroy(&res);
    query(&b, "gaps", FP_AGG_QUANTILE);
    b.q.q = 0.5;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0), 2); /* one value: exact, by the clamp */
    fp_agg_result_destroy(&res);
}

static void test_group_by(void)
{
    static const char *const by_model[] = {"model"};
    static const char *const by_region[] = {"region"};
    static const char *const by_model_region[] = {"model", "region"};
    static const char *const by_region_model[] = {"region", "model"};
    static const char *const by_name[] = {"__name__"};
    struct query b;
    struct fp_agg_result *res;

    /* m1 = dev-a + dev-b, m2 = dev-c + dev-d. */
    query(&b, "ttft_seconds", FP_AGG_AVG);
    b.q.by = by_model;
    b.q.n_by = 1;
    res = run(&b.q);
    check_int(res->n_groups, 2);
    check_int(res->n_points, 6);
    EXPECT_GROUP(res, 0, "model=m1", B(0, 1, 2), 2.5, 5, 7);
    EXPECT_GROUP(res, 1, "model=m2", B(0, 1, 2), 10, 30, 30);
    fp_agg_result_destroy(&res);

    b.q.fn = FP_AGG_LAST;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "model=m1", B(0, 1, 2), 4, 5, 7);
    EXPECT_GROUP(res, 1, "model=m2", B(0, 1, 2), 10, 40, 30);
    fp_agg_result_destroy(&res);

    /* dev-d has no region: its group has no labels and sorts first (as ""). Buckets without
     * samples are left out. */
    b.q.fn = FP_AGG_SUM;
    b.q.by = by_region;
    res = run(&b.q);
    check_int(res->n_groups, 3);
    EXPECT_GROUP(res, 0, "", B(1), 40);
    EXPECT_GROUP(res, 1, "region=eu", B(0, 1, 2), 14, 25, 37);
    EXPECT_GROUP(res, 2, "region=us", B(0), 6);
    check_int(res->n_points, 5);
    fp_agg_result_destroy(&res);

    /* Two labels: sorted by model, then region; labels listed in `by` order. */
    b.q.fn = FP_AGG_COUNT;
    b.q.by = by_model_region;
    b.q.n_by = 2;
    res = run(&b.q);
    check_int(res->n_groups, 4);
    EXPECT_GROUP(res, 0, "model=m1,region=eu", B(0, 1, 2), 2, 1, 1);
    EXPECT_GROUP(res, 1, "model=m1,region=us", B(0), 2);
    EXPECT_GROUP(res, 2, "model=m2", B(1), 1);
    EXPECT_GROUP(res, 3, "model=m2,region=eu", B(0, 1, 2), 1, 1, 1);
    fp_agg_result_destroy(&res);

    b.q.by = by_region_model;
    res = run(&b.q);
    check_int(res->n_groups, 4);
    EXPECT_GROUP(res, 0, "model=m2", B(1), 1);
    EXPECT_GROUP(res, 1, "region=eu,model=m1", B(0, 1, 2), 2, 1, 1);
    EXPECT_GROUP(res, 2, "region=eu,model=m2", B(0, 1, 2), 1, 1, 1);
    EXPECT_GROUP(res, 3, "region=us,model=m1", B(0), 2);
    fp_agg_result_destroy(&res);

    /* The metric name groups as "__name__"; a label no series has makes one unlabelled group. */
    b.m[0].op = FP_MATCH_RE;
    b.m[0].value = "ttft_seconds|tie";
    b.q.by = by_name;
    b.q.n_by = 1;
    res = run(&b.q);
    check_int(res->n_groups, 2);
    EXPECT_GROUP(res, 0, "__name__=tie", B(0), 2);
    EXPECT_GROUP(res, 1, "__name__=ttft_seconds", B(0, 1, 2), 5, 3, 2);
    fp_agg_result_destroy(&res);
}

static void test_counters(void)
{
    static const char *const by_device[] = {"device"};
    struct query b;
    struct fp_agg_result *res;

    query(&b, "requests_total", FP_AGG_INCREASE);
    b.q.to_ms = T + 20000;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1), 23, 6);
    fp_agg_result_destroy(&res);

    b.q.by = by_device;
    b.q.n_by = 1;
    res = run(&b.q);
    check_int(res->n_groups, 2);
    EXPECT_GROUP(res, 0, "device=dev-a", B(0, 1), 13, 6);
    /* A lone sample in a bucket is a point, with no increase. */
    EXPECT_GROUP(res, 1, "device=dev-b", B(0, 1), 10, 0);
    fp_agg_result_destroy(&res);

    b.q.fn = FP_AGG_RATE;
    b.q.n_by = 0;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1), 23.0 / 10, 6.0 / 10);
    fp_agg_result_destroy(&res);

    /* The last bucket clipped at to = T + 15 s: 20 -> 22 in 5 s. */
    b.q.to_ms = T + 15000;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1), 23.0 / 10, 2.0 / 5);
    fp_agg_result_destroy(&res);

    /* One bucket over both: the pair across the old edge now counts (dev-a 8 -> 20: +12), and
     * so does dev-b's reset (110 -> 5: +5). */
    b.q.fn = FP_AGG_INCREASE;
    b.q.to_ms = T + 20000;
    b.q.step_ms = 20000;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0), 13 + 12 + 6 + 10 + 5);
    fp_agg_result_destroy(&res);
}

static void test_matchers(void)
{
    struct query b;
    struct fp_agg_result *res;

    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.m[1] = (struct fp_matcher){"device", "dev-[ab]", FP_MATCH_RE};
    b.q.n_matchers = 2;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1, 2), 10, 5, 7);
    fp_agg_result_destroy(&res);

    /* Anchored: "dev-" alone matches nothing. */
    b.m[1].value = "dev-";
    res = run(&b.q);
    check_int(res->n_groups, 0);
    check_int(res->n_points, 0);
    fp_agg_result_destroy(&res);

    b.m[1] = (struct fp_matcher){"device", "dev-[ab]", FP_MATCH_NRE};
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1, 2), 10, 60, 30);
    fp_agg_result_destroy(&res);

    /* A missing label counts as "": dev-d passes region != eu. */
    b.m[1] = (struct fp_matcher){"region", "eu", FP_MATCH_NE};
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1), 6, 40);
    fp_agg_result_destroy(&res);

    b.m[1] = (struct fp_matcher){"model", "m2", FP_MATCH_EQ};
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1, 2), 10, 60, 30);
    fp_agg_result_destroy(&res);
}

static void test_empty_and_bounds(void)
{
    static const char *const by_model[] = {"model"};
    static const char *const by_twice[] = {"model", "model"};
    struct query b;
    struct fp_agg_result *res;

    res = run(query(&b, "no_such_metric", FP_AGG_SUM));
    check_int(res->n_groups, 0);
    check(res->groups == NULL || res->n_groups == 0);
    fp_agg_result_destroy(&res);

    /* A range without samples; from == to. */
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.q.from_ms = T + 40000;
    b.q.to_ms = T + 50000;
    res = run(&b.q);
    check_int(res->n_groups, 0);
    fp_agg_result_destroy(&res);
    b.q.from_ms = b.q.to_ms = T;
    res = run(&b.q);
    check_int(res->n_groups, 0);
    fp_agg_result_destroy(&res);

    /* max_points: 3 fit exactly, 2 do not; 6 with group-by, 5 do not. */
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.q.max_points = 3;
    res = run(&b.q);
    check_int(res->n_points, 3);
    fp_agg_result_destroy(&res);
    b.q.max_points = 2;
    check_int(run_status(&b.q), FP_AGG_E_TOO_MANY);
    b.q.by = by_model;
    b.q.n_by = 1;
    b.q.max_points = 5;
    check_int(run_status(&b.q), FP_AGG_E_TOO_MANY);
    b.q.fn = FP_AGG_QUANTILE;
    b.q.q = 0.5;
    check_int(run_status(&b.q), FP_AGG_E_TOO_MANY);
    b.q.max_points = 0;
    check_int(run_status(&b.q), FP_AGG_E_TOO_MANY);
    b.q.max_points = 6;
    check_int(run_status(&b.q), 0);

    /* Bad queries. */
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.q.step_ms = 0;
    check_int(run_status(&b.q), -EINVAL);
    b.q.step_ms = -5;
    check_int(run_status(&b.q), -EINVAL);
    query(&b, "ttft_seconds", (enum fp_agg_fn)0);
    check_int(run_status(&b.q), -EINVAL);
    query(&b, "ttft_seconds", FP_AGG_QUANTILE);
    b.q.q = 1.5;
    check_int(run_status(&b.q), -EINVAL);
    b.q.q = NAN;
    check_int(run_status(&b.q), -EINVAL);
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.q.by = by_twice;
    b.q.n_by = 2;
    check_int(run_status(&b.q), -EINVAL);
    b.q.n_by = FP_AGG_BY_MAX + 1;
    check_int(run_status(&b.q), -EINVAL);
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.m[1] = (struct fp_matcher){"device", "dev-(", FP_MATCH_RE};
    b.q.n_matchers = 2;
    check_int(run_status(&b.q), -EINVAL);
    query(&b, "ttft_seconds", FP_AGG_SUM);
    b.q.step_ms = 1;
    b.q.to_ms = T + FP_AGG_BUCKETS_MAX;
    check_int(run_status(&b.q), 0);
    b.q.to_ms++;
    check_int(run_status(&b.q), -ERANGE);
    /* A span wider than INT64_MAX does not overflow the bucket arithmetic: three buckets of
     * 2^62 ms from -3 * 2^61, and every sample in the middle one, which starts at -2^61. */
    b.q.from_ms = -3 * (INT64_C(1) << 61);
    b.q.to_ms = 3 * (INT64_C(1) << 61);
    b.q.step_ms = INT64_C(1) << 62;
    res = run(&b.q);
    fp_assert(res->n_groups == 1 && res->groups[0].n_points == 1);
    check_int(res->groups[0].points[0].ts_ms, -(INT64_C(1) << 61));
    check_double(res->groups[0].points[0].value, 16 + 106 + 60 + 1040);
    fp_agg_result_destroy(&res);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* xorshift64*: deterministic, so a failure reproduces. Returns a double in (0, 1). */
static double uniform(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return ((double)((rng * 0x2545f4914f6cdd1du) >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 50 devices with 80 latency samples each, lognormal-ish around 0.3 s with a per-device scale
 * (a few slow devices), in two 10 s buckets. The pooled quantile must be within 1% of the exact
 * pooled value per bucket; a p95 of per-device p95s would not be. */
static void test_pooled_quantile(void)
{
    enum { DEVICES = 50, PER = 80 };
    static double pooled[2][DEVICES * PER / 2 + DEVICES];
    static const double qs[] = {0, 0.5, 0.9, 0.95, 0.99, 1};
    size_t n_pooled[2] = {0, 0};
    struct query b;
    struct fp_agg_result *res;

    for (int d = 0; d < DEVICES; d++) {
        int64_t ts[PER];
        double v[PER];
        char dev[16];
        double scale = d % 10 == 0 ? 4.0 : 1.0;

        for (int i = 0; i < PER; i++) {
            /* 40 samples in each bucket; devices offset by 1 ms so no two samples coincide. */
            ts[i] = T + (int64_t)i * 250 + d;
            v[i] = 0.3 * scale * exp(0.5 * sqrt(-2 * log(uniform())) * cos(6.283185307 * uniform()));
            pooled[ts[i] >= T + STEP][n_pooled[ts[i] >= T + STEP]++] = v[i];
        }
        snprintf(dev, sizeof(dev), "q-%02d", d);
        write_series(dev, "lat_seconds", FP_SERIES_GAUGE, NULL, 0, ts, v, PER);
    }
    check_int(n_pooled[0] + n_pooled[1], DEVICES * PER);
    qsort(pooled[0], n_pooled[0], sizeof(double), cmp_double);
    qsort(pooled[1], n_pooled[1], sizeof(double), cmp_double);

    query(&b, "lat_seconds", FP_AGG_QUANTILE);
    b.q.to_ms = T + 2 * STEP;
    for (size_t i = 0; i < N(qs); i++) {
        b.q.q = qs[i];
        res = run(&b.q);
        fp_assert(res->n_groups == 1 && res->groups[0].n_points == 2);
        for (int k = 0; k < 2; k++) {
            double exact = pooled[k][(size_t)floor(qs[i] * (double)(n_pooled[k] - 1))];
            check_rel(res->groups[0].points[k].value, exact);
        }
        fp_agg_result_destroy(&res);
    }

    /* Count and sum pool the same samples. */
    b.q.fn = FP_AGG_COUNT;
    res = run(&b.q);
    EXPECT_GROUP(res, 0, "", B(0, 1), (double)n_pooled[0], (double)n_pooled[1]);
    fp_agg_result_destroy(&res);
}

/* More buckets than one window (4096 plain, 256 for a quantile): results must not depend on
 * where a window ends. */
static void test_windows(void)
{
    enum { SAMPLES = 10000 };
    static int64_t ts[SAMPLES];
    static double v[SAMPLES];
    struct query b;
    struct fp_agg_result *res;

    for (int i = 0; i < SAMPLES; i++) {
        ts[i] = T + (int64_t)i * 500; /* two samples per 1 s bucket */
        v[i] = i + 1;
    }
    write_series("w-1", "windowed", FP_SERIES_COUNTER, NULL, 0, ts, v, SAMPLES);

    query(&b, "windowed", FP_AGG_INCREASE);
    b.q.step_ms = 1000;
    b.q.to_ms = T + SAMPLES * 500;
    b.q.max_points = SAMPLES;
    res = run(&b.q);
    fp_assert(res->n_groups == 1);
    check_int(res->groups[0].n_points, SAMPLES / 2);
    for (size_t i = 0; i < res->groups[0].n_points; i++) {
        check_int(res->groups[0].points[i].ts_ms, T + (int64_t)i * 1000);
        check_double(res->groups[0].points[i].value, 1);
    }
    fp_agg_result_destroy(&res);

    b.q.fn = FP_AGG_QUANTILE;
    b.q.q = 1;
    res = run(&b.q);
    fp_assert(res->n_groups == 1);
    check_int(res->groups[0].n_points, SAMPLES / 2);
    for (size_t i = 0; i < res->groups[0].n_points; i++)
        check_double(res->groups[0].points[i].value, 2.0 * (double)i + 2);
    fp_agg_result_destroy(&res);
}

int main(void)
{
    char dir[] = "/tmp/fp-agg-test-XXXXXX";
    char err[256], p[128];

    struct fp_store_options opts;

    fp_assert(mkdtemp(dir) != NULL);
    fp_store_options_default(&opts);
    opts.raw_retention_ms = 0; /* T is in 2023: keep it whatever today's date */
    if (fp_store_open(dir, 0, &opts, &store, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fp_store_open: %s", err);
        return 1;
    }
    write_fixture();

    test_every_agg();
    test_group_by();
    test_counters();
    test_matchers();
    test_empty_and_bounds();
    test_pooled_quantile();
    test_windows();
    /* Again with every head sealed into chunks: chunks reach the reductions a run of samples
     * at a time (fp_store_read_range_blocks), the heads one sample at a time. */
    check_int(fp_store_compact(store), 0);
    test_every_agg();
    test_group_by();
    test_counters();
    test_empty_and_bounds();

    fp_store_close(&store);
    (void)snprintf(p, sizeof(p), "%s/data.mdb", dir);
    (void)unlink(p);
    (void)snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    (void)unlink(p);
    (void)rmdir(dir);
    fp_test_end();
}
