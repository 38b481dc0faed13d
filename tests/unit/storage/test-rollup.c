/* One-hour rollups against the raw samples they summarise: after live writes, out-of-order and
 * duplicate samples, a restart in the middle of an hour, map growth from a tiny map (aborted and
 * redone transactions), NaN and infinities, every stored record equals what the raw samples up
 * to its "through" say, every closed hour has one, its sketch's quantiles are within 1% of the exact ones, and retention
 * deletes old records. */
#include "test.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "sketch.h"
#include "store.h"

#define T0 INT64_C(1732406400000) /* 2024-11-24T00:00:00Z */
#define HOUR INT64_C(3600000)

static char dir[64];

static void rm_store(void)
{
    char p[128];
    (void)snprintf(p, sizeof(p), "%s/data.mdb", dir);
    (void)unlink(p);
    (void)snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    (void)unlink(p);
}

static struct fp_store *open_store(uint64_t initial_map, int64_t rollup_retention_ms)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    char err[256];
    fp_store_options_default(&o);
    o.raw_retention_ms = 0;
    o.ooo_window_ms = 24 * HOUR;
    o.rollup_retention_ms = rollup_retention_ms;
    if (initial_map != 0)
        o.initial_map_bytes = initial_map;
    if (fp_store_open(dir, 0, &o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return s;
}

/* Writes n samples of series "m" (device "d"), optionally also n of "m2", in one batch. */
static void put(struct fp_store *s, uint64_t seq, int64_t now, const int64_t *ts, const double *v,
                size_t n)
{
    struct fp_series_in in = {"m", FP_SERIES_GAUGE, NULL, 0, ts, v, n};
    struct fp_write_batch b = {.device = "d", .epoch = 1, .seq = seq, .received_ms = now,
                               .series = &in, .n_series = 1};
    struct fp_write_result res;
    int rc = fp_store_write(s, &b, 1, &res);
    if (rc != 0)
        FP_TEST_FAIL("write seq %" PRIu64 ": %s", seq, fp_store_strerror(rc));
    check_int(res.samples_written, (long long)n);
}

struct vals {
    int64_t *ts;
    double *v;
    size_t n, cap;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct vals *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 512;
        p->ts = realloc(p->ts, p->cap * sizeof(*p->ts));
        p->v = realloc(p->v, p->cap * sizeof(*p->v));
        fp_assert(p->ts != NULL && p->v != NULL);
    }
    p->ts[p->n] = ts;
    p->v[p->n] = v;
    p->n++;
    return 0;
}

struct got {
    struct fp_rollup r[64];
    uint8_t sk[64][4096];
    size_t n;
};

static int take(void *ud, const struct fp_rollup *r)
{
    struct got *g = ud;
    fp_assert(g->n < 64 && r->sketch_len <= sizeof(g->sk[0]));
    memcpy(g->sk[g->n], r->sketch, r->sketch_len);
    g->r[g->n] = *r;
    g->r[g->n].sketch = g->sk[g->n];
    g->n++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Checks every record of series "m" in [from, to) against its raw samples; returns how many
 * records there were. complete: every hour with samples must have a record through its last. */
static size_t verify(struct fp_store *s, int64_t from, int64_t to, bool complete)
{
    const struct fp_matcher m[] = {{"__name__", "m", FP_MATCH_EQ}};
    struct fp_store_reader *r;
    struct got *g = calloc(1, sizeof(*g));
    uint64_t *ids;
    size_t n_ids, records;

    fp_assert(g != NULL);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, m, 1, &ids, &n_ids) == 0 && n_ids == 1);
    check_int(fp_store_read_rollups(r, ids[0], from, to, take, g), 0);
    for (int64_t h = from; h < to; h += HOUR) {
        struct vals raw = {0};
        const struct fp_rollup *ro = NULL;
        double sum = 0, mn = INFINITY, mx = -INFINITY, last = NAN, *fin;
        uint64_t count = 0;
        size_t n_fin = 0;

        check_int(fp_store_read_range(r, ids[0], h, h + HOUR - 1, collect, &raw), 0);
        for (size_t i = 0; i < g->n; i++)
            if (g->r[i].start_ms == h)
                ro = &g->r[i];
        if (ro == NULL) {
            if (complete && raw.n > 0)
                FP_TEST_FAIL("hour %" PRId64 ": %zu samples, no rollup", (h - T0) / HOUR, raw.n);
            free(raw.ts);
            free(raw.v);
            continue;
        }
        fin = calloc(raw.n + 1, sizeof(*fin));
        fp_assert(fin != NULL);
        for (size_t i = 0; i < raw.n && raw.ts[i] <= ro->through_ms; i++) {
            double v = raw.v[i];
            if (isnan(v))
                continue;
            count++;
            sum += v;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            last = v;
            if (isfinite(v))
                fin[n_fin++] = v;
        }
        if (complete)
            check_int(ro->through_ms, raw.n > 0 ? raw.ts[raw.n - 1] : INT64_MIN);
        check_int(ro->count, (long long)count);
        if (count > 0) {
            if (isnan(sum)) /* +Inf and -Inf in one hour */
                check(isnan(ro->sum));
            else
                check_near(ro->sum, sum, 1e-9 * fabs(sum) + 1e-9);
            check_double(ro->min, mn);
            check_double(ro->max, mx);
            check_double(ro->last, last);
        }
        if (n_fin > 0) {
            static const double qs[] = {0.0, 0.5, 0.95, 0.99, 1.0};
            fp_sketch *sk = NULL;
            check_int(fp_sketch_decode(ro->sketch, ro->sketch_len, &sk), 0);
            check_int(fp_sketch_count(sk), (long long)n_fin);
            qsort(fin, n_fin, sizeof(*fin), cmp_double);
            for (size_t q = 0; q < sizeof(qs) / sizeof(qs[0]); q++) {
                double want = fin[(size_t)floor(qs[q] * (double)(n_fin - 1))], est = 0;
                check_int(fp_sketch_quantile(sk, qs[q], &est), 0);
                if (fabs(est - want) > 0.01 * fabs(want) + 1e-12)
                    FP_TEST_FAIL("hour %" PRId64 " q%.2f: sketch %.6g, exact %.6g",
                                 (h - T0) / HOUR, qs[q], est, want);
            }
            fp_sketch_destroy(&sk);
        }
        free(fin);
        free(raw.ts);
        free(raw.v);
    }
    records = g->n;
    free(ids);
    free(g);
    fp_store_reader_close(&r);
    return records;
}

/* Whether the record of the hour at h says it is complete; -1 when there is none. */
static int complete_flag(struct fp_store *s, int64_t h)
{
    const struct fp_matcher m[] = {{"__name__", "m", FP_MATCH_EQ}};
    struct fp_store_reader *r;
    struct got *g = calloc(1, sizeof(*g));
    uint64_t *ids;
    size_t n_ids;
    int flag = -1;

    fp_assert(g != NULL);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, m, 1, &ids, &n_ids) == 0 && n_ids == 1);
    check_int(fp_store_read_rollups(r, ids[0], h, h + HOUR, take, g), 0);
    if (g->n == 1)
        flag = g->r[0].complete;
    free(ids);
    free(g);
    fp_store_reader_close(&r);
    return flag;
}

static uint64_t rng = 42;
static double noise(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Live shape: one sample per batch at 10 s for 3.5 hours; closed hours are stored complete
 * without any flush, the open one is not stored until compact. */
static void test_live(void)
{
    struct fp_store *s;
    uint64_t seq = 0;
    size_t i;

    rm_store();
    s = open_store(0, 0);
    for (i = 0; i < 3 * 360 + 200; i++) {
        int64_t ts = T0 + (int64_t)i * 10000;
        double v = round((0.2 + noise() * noise() * 3.0) * 10000) / 10000; /* a TTFT-like skew */
        put(s, ++seq, ts, &ts, &v, 1);
    }
    check_int(verify(s, T0, T0 + 3 * HOUR, true), 3);
    /* The open hour: computed when it closes. */
    check_int(verify(s, T0 + 3 * HOUR, T0 + 4 * HOUR, false), 0);
    check_int(fp_store_compact(s), 0);
    check_int(verify(s, T0, T0 + 4 * HOUR, true), 4);
    /* Closed hours are complete; the open one, stored by compact, may still grow. */
    check_int(complete_flag(s, T0 + 2 * HOUR), 1);
    check_int(complete_flag(s, T0 + 3 * HOUR), 0);
    {
        int64_t ts = T0 + 3 * HOUR + 1; /* a later sample in the open hour: read raw */
        double v = 1e6;
        put(s, 100000, ts + 2000 * 10000, &ts, &v, 1);
        ts = T0 + 4 * HOUR; /* and the hour closes */
        put(s, 100001, ts, &ts, &v, 1);
    }
    check_int(complete_flag(s, T0 + 3 * HOUR), 1);
    check_int(verify(s, T0, T0 + 4 * HOUR, true), 4);
    fp_store_close(&s);
}

/* Out of order and duplicates: a sample inserted into a closed hour, one replacing a stored
 * value with another, an exact duplicate, and a whole earlier batch again (new seq). */
static void test_out_of_order(void)
{
    struct fp_store *s;
    int64_t ts[360];
    double v[360];
    uint64_t seq = 0;

    rm_store();
    s = open_store(0, 0);
    for (int h = 0; h < 2; h++) {
        for (int i = 0; i < 360; i++) {
            ts[i] = T0 + h * HOUR + i * 10000 + 5000; /* leaves :00 of each 10 s free */
            v[i] = 20.0 + (double)((i * 37 + h) % 101) / 100.0;
        }
        put(s, ++seq, ts[359], ts, v, 360);
    }
    check_int(verify(s, T0, T0 + HOUR, true), 1);
    check_int(verify(s, T0 + HOUR, T0 + 2 * HOUR, false), 0); /* hour 1 is open */
    /* New timestamp inside hour 0 (closed), a changed value in hour 1 (open), a value far
     * outside the others so min and max move. */
    {
        int64_t t2[3] = {T0 + 20000, T0 + HOUR + 15000, T0 + HOUR + 25000};
        double v2[3] = {-5.5, 99.25, 20.0};
        put(s, ++seq, t2[2], t2, v2, 3);
    }
    check_int(verify(s, T0, T0 + HOUR, true), 1);
    /* The first hour's batch again, as a new batch: idempotent. */
    for (int i = 0; i < 360; i++) {
        ts[i] = T0 + i * 10000 + 5000;
        v[i] = 20.0 + (double)((i * 37) % 101) / 100.0;
    }
    put(s, ++seq, ts[359], ts, v, 360);
    check_int(fp_store_compact(s), 0);
    check_int(verify(s, T0, T0 + 2 * HOUR, true), 2);
    fp_store_close(&s);
}

/* Live batches of 6 samples, a late point in the middle of hour 0 (it seals the head's stream,
 * so the hour's first part is in a chunk and the rest in a stream begun mid-hour), the rest of
 * the hour, then hour 1 whole, then hour 2 opens: both records equal raw. A shortcut that took
 * an hour's record from the stream sealed at the hour's end alone would get hour 0 wrong. */
static void test_seal_mid_hour(void)
{
    struct fp_store *s;
    int64_t ts[6];
    double v[6];
    uint64_t seq = 0;

    rm_store();
    s = open_store(0, 0);
    for (int h = 0; h < 2; h++) {
        for (int b = 0; b < 60; b++) {
            for (int i = 0; i < 6; i++) {
                int k = b * 6 + i;
                ts[i] = T0 + h * HOUR + k * 10000 + 5000;
                v[i] = 30.0 + (double)((k * 53 + h) % 97) / 100.0;
            }
            put(s, ++seq, ts[5], ts, v, 6);
            if (h == 0 && b == 30) {
                int64_t late = T0 + 1000; /* before the newest: seals hour 0's stream */
                double lv = -7.25;
                put(s, ++seq, late, &late, &lv, 1);
            }
        }
    }
    ts[0] = T0 + 2 * HOUR + 5000;
    v[0] = 1;
    put(s, ++seq, ts[0], ts, v, 1);
    check_int(verify(s, T0, T0 + HOUR, true), 1);
    check_int(verify(s, T0 + HOUR, T0 + 2 * HOUR, true), 1);
    fp_store_close(&s);
}

/* A restart in the middle of an hour: memory is gone, the hour goes on from what raw holds. */
static void test_restart(void)
{
    struct fp_store *s;
    uint64_t seq = 0;
    int64_t ts;
    double v;

    rm_store();
    s = open_store(0, 0);
    for (int i = 0; i < 250; i++) { /* 190 unstored at the restart */
        ts = T0 + i * 10000;
        v = 50 + i % 7;
        put(s, ++seq, ts, &ts, &v, 1);
    }
    fp_store_close(&s);
    s = open_store(0, 0);
    for (int i = 250; i < 360 + 30; i++) {
        ts = T0 + i * 10000;
        v = 50 + i % 7;
        put(s, ++seq, ts, &ts, &v, 1);
    }
    check_int(verify(s, T0, T0 + HOUR, true), 1);
    /* And a restart right at an hour's end: the next hour's first write completes it. */
    fp_store_close(&s);
    s = open_store(0, 0);
    for (int i = 390; i < 2 * 360 + 1; i++) {
        ts = T0 + i * 10000;
        v = 50 + i % 7;
        put(s, ++seq, ts, &ts, &v, 1);
    }
    fp_store_close(&s);
    s = open_store(0, 0);
    ts = T0 + 3 * HOUR;
    v = 1;
    put(s, ++seq, ts, &ts, &v, 1);
    check_int(verify(s, T0, T0 + 3 * HOUR, true), 3);
    fp_store_close(&s);
}

/* From a 64 KiB map, transactions fail with MDB_MAP_FULL and are redone in a bigger map: the
 * writer's memory of the aborted attempt must not leak into the records. NaN and +-Inf too. */
static void test_map_growth_and_specials(void)
{
    struct fp_store *s;
    uint64_t seq = 0;

    rm_store();
    s = open_store(64 * 1024, 0);
    for (int b = 0; b < 120; b++) {
        int64_t ts[30];
        double v[30];
        for (int i = 0; i < 30; i++) {
            int k = b * 30 + i;
            ts[i] = T0 + (int64_t)k * 1000;
            v[i] = k % 97 == 0 ? NAN : k % 89 == 0 ? INFINITY : k % 83 == 0 ? -INFINITY
                                                                          : noise() * 100;
        }
        put(s, ++seq, ts[29], ts, v, 30);
    }
    check_int(fp_store_compact(s), 0);
    check_int(verify(s, T0, T0 + HOUR, true), 1);
    fp_store_close(&s);
}

/* Records older than the rollup retention go, a bounded number per pass. */
static void test_retention(void)
{
    struct fp_store *s;
    uint64_t seq = 0;
    int64_t ts;
    double v = 1;

    rm_store();
    s = open_store(0, 2 * HOUR);
    for (int h = 0; h < 5; h++) {
        ts = T0 + h * HOUR;
        put(s, ++seq, T0, &ts, &v, 1); /* received at T0: nothing is old yet */
    }
    check_int(fp_store_compact(s), 0);
    check_int(verify(s, T0, T0 + 5 * HOUR, true), 5);
    /* Received at hour 5 + a bit: hours 0..2 are older than 2 h. Raw stays (retention 0). */
    ts = T0 + 5 * HOUR + 60000;
    put(s, ++seq, ts, &ts, &v, 1);
    check_int(verify(s, T0, T0 + 3 * HOUR, false), 0);
    /* Hours 3 and 4; hour 5's one sample is still only in memory. */
    check_int(verify(s, T0 + 3 * HOUR, T0 + 6 * HOUR, false), 2);
    fp_store_close(&s);
}

/* fp_store_aggregate's answers with whole-hour buckets against the raw samples of each hour
 * (quantiles within 1%); npts buckets expected in [T0, to). */
static void check_aggregate(struct fp_store *s, int64_t to, size_t npts)
{
    static const enum fp_agg_fn fns[] = {FP_AGG_AVG, FP_AGG_SUM, FP_AGG_COUNT, FP_AGG_MIN,
                                         FP_AGG_MAX, FP_AGG_QUANTILE, FP_AGG_QUANTILE};
    static const double qs[] = {0, 0, 0, 0, 0, 0.95, 1.0};
    const struct fp_matcher m[] = {{"__name__", "m", FP_MATCH_EQ}};
    struct fp_store_reader *r;
    uint64_t *ids;
    size_t n_ids;

    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, m, 1, &ids, &n_ids) == 0 && n_ids == 1);
    for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
        struct fp_agg_query q = {.matchers = m, .n_matchers = 1, .from_ms = T0, .to_ms = to,
                                 .step_ms = HOUR, .fn = fns[f], .q = qs[f], .max_points = 100};
        struct fp_agg_result *res = NULL;
        check_int(fp_store_aggregate(r, &q, &res), 0);
        fp_assert(res != NULL && res->n_groups == 1);
        check_int(res->groups[0].n_points, (long long)npts);
        for (size_t k = 0; k < res->groups[0].n_points; k++) {
            const struct fp_agg_point *pt = &res->groups[0].points[k];
            int64_t h = T0 + (int64_t)k * HOUR, end = h + HOUR < to ? h + HOUR : to;
            struct vals raw = {0};
            double sum = 0, mn = INFINITY, mx = -INFINITY, want = 0, *fin;
            size_t nf = 0;
            check_int(pt->ts_ms, h);
            check_int(fp_store_read_range(r, ids[0], h, end - 1, collect, &raw), 0);
            fin = calloc(raw.n + 1, sizeof(*fin));
            fp_assert(fin != NULL);
            for (size_t i = 0; i < raw.n; i++) {
                sum += raw.v[i];
                mn = fmin(mn, raw.v[i]);
                mx = fmax(mx, raw.v[i]);
                if (isfinite(raw.v[i]))
                    fin[nf++] = raw.v[i];
            }
            switch (fns[f]) {
            case FP_AGG_AVG:
                want = sum / (double)raw.n;
                break;
            case FP_AGG_SUM:
                want = sum;
                break;
            case FP_AGG_COUNT:
                want = (double)raw.n;
                break;
            case FP_AGG_MIN:
                want = mn;
                break;
            case FP_AGG_MAX:
                want = mx;
                break;
            default:
                qsort(fin, nf, sizeof(*fin), cmp_double);
                want = fin[(size_t)floor(qs[f] * (double)(nf - 1))];
                break;
            }
            if (isinf(want))
                check(pt->value == want);
            else if (fabs(pt->value - want) > (fns[f] == FP_AGG_QUANTILE ? 0.01 : 1e-12) * fabs(want))
                FP_TEST_FAIL("fn %d hour %zu: %.17g, from raw %.17g", (int)fns[f], k, pt->value,
                             want);
            free(fin);
            free(raw.ts);
            free(raw.v);
        }
        fp_agg_result_destroy(&res);
    }
    free(ids);
    fp_store_reader_close(&r);
}

/* Whole-hour buckets merge the stored hours and read the rest raw: complete hours, an hour
 * holding +Inf (the sketch cannot merge it: raw), the open hour without a record, the open hour
 * stored by compact and grown since (record, then raw after its "through"), a clipped bucket. */
static void test_aggregate_from_rollups(void)
{
    struct fp_store *s;
    uint64_t seq = 0;
    int64_t ts;

    rm_store();
    s = open_store(0, 0);
    for (int i = 0; i < 4 * 360 - 60; i++) {
        double v = round((1 + noise() * 9) * 1000) / 1000;
        ts = T0 + i * 10000;
        if (i == 2 * 360 + 17)
            v = INFINITY;
        put(s, ++seq, ts, &ts, &v, 1);
    }
    check_aggregate(s, T0 + 3 * HOUR + 30 * 60000, 4); /* hour 3: open, no record, clipped */
    check_aggregate(s, T0 + 4 * HOUR, 4);
    check_int(fp_store_compact(s), 0);
    check_int(complete_flag(s, T0 + 3 * HOUR), 0);
    for (int i = 4 * 360 - 60; i < 4 * 360; i++) { /* the rest of hour 3, after "through" */
        double v = 42.5 + i;
        ts = T0 + i * 10000;
        put(s, ++seq, ts, &ts, &v, 1);
    }
    check_int(complete_flag(s, T0 + 3 * HOUR), 0);
    check_aggregate(s, T0 + 4 * HOUR, 4);
    check_aggregate(s, T0 + 5 * HOUR, 4);
    check_aggregate(s, T0 + 3 * HOUR + 30 * 60000, 4); /* hour 3's record covers more */
    fp_store_close(&s);
}

int main(void)
{
    (void)snprintf(dir, sizeof(dir), "/tmp/fp-test-rollup-XXXXXX");
    fp_assert(mkdtemp(dir) != NULL);
    test_live();
    test_out_of_order();
    test_seal_mid_hour();
    test_restart();
    test_map_growth_and_specials();
    test_retention();
    test_aggregate_from_rollups();
    rm_store();
    (void)rmdir(dir);
    fp_test_end();
}
