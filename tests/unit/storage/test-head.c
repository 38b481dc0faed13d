/* The device head (storage/head.c) against a model: random batches for several series of a few
 * devices (every value mode: integers, 1-6 decimals, arbitrary doubles, NaN, -0.0, +-Inf; mode
 * changes mid-series; steady and jittered cadence, big jumps, day boundaries; out-of-order and
 * duplicate samples; more series than a head holds) are read back bit-identical, the newest as
 * fp_store_latest too, from the writer,
 * from a read-only opener of the same directory, after a reopen, and after compaction. */
#include "test.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-internal.h" /* the head_tail database, for its value sizes */
#include "store.h"

#define T0 INT64_C(1732406400000) /* a day boundary */
#define DEVICES 3
#define SERIES 24 /* per device: more than one head value holds before sealing */
#define MAXPTS 40000

static char dir[64];

struct model {
    int64_t ts[MAXPTS];
    uint64_t bits[MAXPTS];
    size_t n;
    int64_t newest;
};

static struct model *models; /* [DEVICES * SERIES] */

static uint64_t rng = 7;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

/* Inserts or replaces (the later write wins) one sample of the model. */
static void model_put(struct model *m, int64_t ts, double v)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->ts[mid] < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n && m->ts[lo] == ts) {
        m->bits[lo] = dbits(v);
        return;
    }
    fp_assert(m->n < MAXPTS);
    memmove(&m->ts[lo + 1], &m->ts[lo], (m->n - lo) * sizeof(m->ts[0]));
    memmove(&m->bits[lo + 1], &m->bits[lo], (m->n - lo) * sizeof(m->bits[0]));
    m->ts[lo] = ts;
    m->bits[lo] = dbits(v);
    m->n++;
    if (ts > m->newest)
        m->newest = ts;
}

static double value_of(unsigned series, uint64_t r)
{
    static const double p10[] = {1, 10, 100, 1000, 1e4, 1e5, 1e6};
    unsigned kind = series % 9;
    int64_t m = (int64_t)(r % 2000001) - 1000000;

    switch (kind) {
    case 7: /* arbitrary doubles and the odd special */
        switch (r % 17) {
        case 0:
            return NAN;
        case 1:
            return -0.0;
        case 2:
            return INFINITY;
        case 3:
            return -INFINITY;
        default:
            return (double)(int64_t)r / 3.0e9;
        }
    case 8: /* decimal, now and then a value that is not */
        return r % 23 == 0 ? 1.0 / 3.0 : (double)m / 100;
    default: /* 0..6 decimals, and the odd huge integer */
        if (kind == 0 && r % 31 == 0)
            return (double)(INT64_C(1) << 52) + (double)(r % 1000);
        return (double)m / p10[kind];
    }
}

static struct fp_store *open_rw(void)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    char err[256];
    fp_store_options_default(&o);
    o.raw_retention_ms = 0;
    o.ooo_window_ms = 30 * INT64_C(86400000);
    if (fp_store_open(dir, 0, &o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return s;
}

struct got {
    int64_t *ts;
    uint64_t *bits;
    size_t n, cap;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct got *g = ud;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4096;
        g->ts = realloc(g->ts, g->cap * sizeof(*g->ts));
        g->bits = realloc(g->bits, g->cap * sizeof(*g->bits));
        fp_assert(g->ts != NULL && g->bits != NULL);
    }
    g->ts[g->n] = ts;
    g->bits[g->n] = dbits(v);
    g->n++;
    return 0;
}

/* Samples of all of ids, read whole through r (each read must succeed). */
static size_t count_samples(struct fp_store_reader *r, const uint64_t *ids, size_t n_ids)
{
    size_t total = 0;

    for (size_t i = 0; i < n_ids; i++) {
        struct got g = {0};
        check_int(fp_store_read_range(r, ids[i], INT64_MIN, INT64_MAX, collect, &g), 0);
        total += g.n;
        free(g.ts);
        free(g.bits);
    }
    return total;
}

/* Every series of every device reads back as the model says. */
static void verify(struct fp_store *s, const char *when)
{
    struct fp_store_reader *r;
    size_t bad = 0;

    fp_assert(fp_store_reader_open(s, &r) == 0);
    for (unsigned d = 0; d < DEVICES; d++) {
        for (unsigned k = 0; k < SERIES; k++) {
            struct model *m = &models[d * SERIES + k];
            char dev[16], name[16];
            struct fp_matcher mt[2];
            struct got g = {0};
            uint64_t *ids = NULL;
            size_t n_ids = 0;
            (void)snprintf(dev, sizeof(dev), "dev%u", d);
            (void)snprintf(name, sizeof(name), "s%u", k);
            mt[0] = (struct fp_matcher){"__name__", name, FP_MATCH_EQ};
            mt[1] = (struct fp_matcher){"device", dev, FP_MATCH_EQ};
            fp_assert(fp_store_select(r, mt, 2, &ids, &n_ids) == 0);
            if (m->n == 0) {
                free(ids);
                continue;
            }
            fp_assert(n_ids == 1);
            check_int(fp_store_read_range(r, ids[0], INT64_MIN, INT64_MAX, collect, &g), 0);
            {
                int64_t lts = 0;
                double lv = 0;
                check_int(fp_store_latest(r, ids[0], &lts, &lv), 0);
                if (lts != m->ts[m->n - 1] || dbits(lv) != m->bits[m->n - 1])
                    FP_TEST_FAIL("%s: %s %s latest %" PRId64 "/%016" PRIx64 ", expected %" PRId64
                                 "/%016" PRIx64, when, dev, name, lts, dbits(lv),
                                 m->ts[m->n - 1], m->bits[m->n - 1]);
            }
            if (g.n != m->n) {
                FP_TEST_FAIL("%s: %s %s: %zu samples, expected %zu", when, dev, name, g.n, m->n);
                bad++;
            } else {
                for (size_t i = 0; i < g.n; i++) {
                    if (g.ts[i] != m->ts[i] || g.bits[i] != m->bits[i]) {
                        FP_TEST_FAIL("%s: %s %s sample %zu: %" PRId64 "/%016" PRIx64
                                     ", expected %" PRId64 "/%016" PRIx64,
                                     when, dev, name, i, g.ts[i], g.bits[i], m->ts[i], m->bits[i]);
                        bad++;
                        break;
                    }
                }
            }
            /* A window in the middle, to exercise range cuts inside the head and chunks. */
            if (m->n > 4) {
                int64_t from = m->ts[m->n / 3], to = m->ts[m->n - 2];
                size_t want = 0;
                for (size_t i = 0; i < m->n; i++)
                    want += m->ts[i] >= from && m->ts[i] <= to;
                g.n = 0;
                check_int(fp_store_read_range(r, ids[0], from, to, collect, &g), 0);
                check_int(g.n, (long long)want);
            }
            free(g.ts);
            free(g.bits);
            free(ids);
            if (bad > 5) {
                fp_store_reader_close(&r);
                return;
            }
        }
    }
    fp_store_reader_close(&r);
}

/* One round: each device sends a batch with some of its series, a few samples each. */
static void round_of_writes(struct fp_store *s, uint64_t *seq, int64_t *clock)
{
    for (unsigned d = 0; d < DEVICES; d++) {
        struct fp_series_in in[SERIES];
        int64_t ts[SERIES][8];
        double v[SERIES][8];
        char dev[16];
        static char names[SERIES][16];
        size_t n_in = 0;
        struct fp_write_batch b;
        struct fp_write_result res;

        (void)snprintf(dev, sizeof(dev), "dev%u", d);
        for (unsigned k = 0; k < SERIES; k++) {
            struct model *m = &models[d * SERIES + k];
            size_t n = 1 + rnd() % 6;
            int64_t t = m->newest > clock[d] ? m->newest : clock[d];
            if (rnd() % 4 == 0)
                continue; /* not every series in every batch */
            (void)snprintf(names[k], sizeof(names[k]), "s%u", k);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rnd();
                if (m->n > 10 && r % 13 == 0) {
                    /* out of order: a new time or an existing one again, maybe changed */
                    t = m->ts[r % m->n] + (int64_t)(r % 2);
                    ts[n_in][i] = t;
                    t = m->newest;
                } else {
                    t += r % 11 == 0 ? 3600000 * (int64_t)(1 + r % 5) : 10000 + (int64_t)(r % 3);
                    ts[n_in][i] = t;
                }
                v[n_in][i] = value_of(k, rnd());
            }
            /* the model applies them in order: within a batch the later of equal times wins */
            for (size_t i = 0; i < n; i++)
                model_put(m, ts[n_in][i], v[n_in][i]);
            in[n_in] = (struct fp_series_in){names[k], FP_SERIES_GAUGE, NULL, 0, ts[n_in],
                                             v[n_in], n};
            n_in++;
        }
        clock[d] += 10000;
        b = (struct fp_write_batch){.device = dev, .epoch = 1, .seq = ++*seq,
                                    .received_ms = T0, .series = in, .n_series = n_in};
        check_int(fp_store_write(s, &b, 1, &res), 0);
    }
}

/* Writes n points of each of the series names[0..nser) for device dev in one batch. */
static void put_dev(struct fp_store *s, const char *dev, uint64_t seq, char (*names)[16],
                    int nser, const int64_t *ts, const double *v, size_t n)
{
    struct fp_series_in in[16];
    struct fp_write_batch b;
    struct fp_write_result res;
    for (int k = 0; k < nser; k++)
        in[k] = (struct fp_series_in){names[k], FP_SERIES_GAUGE, NULL, 0, ts, v, n};
    b = (struct fp_write_batch){.device = dev, .epoch = 1, .seq = seq, .received_ms = T0,
                                .series = in, .n_series = (size_t)nser};
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.samples_written, (long long)(nser * n));
}

/* After a restart the writer knows no series; a batch that overfills a head seals series it
 * has not seen yet, adding writer states mid-batch (a use-after-free under AddressSanitizer
 * once). Every sample must still read back. */
static void test_many_series(void)
{
    enum { NDEV = 300, NSER = 5, NPTS = 470, NEW_PTS = 150 };
    struct fp_store *s = open_rw();
    struct fp_store_reader *r;
    static int64_t ts[NPTS];
    static double v[NPTS], big[NPTS];
    static char names[NSER + 1][16];
    uint64_t seq = 0, *ids = NULL;
    size_t n_ids = 0, total = 0;

    for (int i = 0; i < NPTS; i++) {
        ts[i] = T0 + INT64_C(86400000) * 40 + i * 10000; /* clear of the model's data */
        v[i] = (double)(i % 50) / 10;               /* ~2 bytes a sample in a head */
        big[i] = (double)((i * 7919) % 100003) * 977; /* ~5 */
    }
    for (int k = 0; k <= NSER; k++)
        (void)snprintf(names[k], sizeof(names[k]), "m%d", k);
    for (int d = 0; d < NDEV; d++) {
        char dev[16];
        (void)snprintf(dev, sizeof(dev), "many%d", d);
        put_dev(s, dev, ++seq, names, NSER, ts, big, NPTS); /* heads of ~12 KiB, none sealed */
    }
    fp_store_close(&s);
    s = open_rw();
    /* One writer state first, so the table's growth (at the 513th state) falls on a sealed
     * series rather than on the batch's own. */
    put_dev(s, "warm", ++seq, names, 1, ts, v, 1);
    for (int d = 0; d < NDEV; d++) {
        char dev[16];
        (void)snprintf(dev, sizeof(dev), "many%d", d);
        /* Overfills the head: the biggest stream, a series this writer has not seen since
         * the restart, is sealed. 600 new writer states in all, so the table grows. */
        put_dev(s, dev, ++seq, names + NSER, 1, ts, v, NEW_PTS);
    }
    fp_assert(fp_store_reader_open(s, &r) == 0);
    {
        const struct fp_matcher m[] = {{"device", "many.*", FP_MATCH_RE}};
        fp_assert(fp_store_select(r, m, 1, &ids, &n_ids) == 0);
    }
    check_int(n_ids, NDEV * (NSER + 1)); /* "warm" is not many.* */
    total = count_samples(r, ids, n_ids);
    check_int(total, (long long)NDEV * (NSER * NPTS + NEW_PTS));
    free(ids);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

/* Reads every sample of series name of device dev through a fresh reader of s into g. */
static void read_series(struct fp_store *s, const char *dev, const char *name, struct got *g,
                        int64_t *ret_lts, double *ret_lv)
{
    struct fp_store_reader *r;
    struct fp_matcher mt[2] = {{"__name__", name, FP_MATCH_EQ}, {"device", dev, FP_MATCH_EQ}};
    uint64_t *ids = NULL;
    size_t n_ids = 0;

    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, mt, 2, &ids, &n_ids) == 0);
    fp_assert(n_ids == 1);
    check_int(fp_store_read_range(r, ids[0], INT64_MIN, INT64_MAX, collect, g), 0);
    check_int(fp_store_latest(r, ids[0], ret_lts, ret_lv), 0);
    free(ids);
    fp_store_reader_close(&r);
}

/* Bytes of device's value in head_tail (0: none). */
static size_t tail_value_size(struct fp_store *s, const char *device)
{
    MDB_txn *txn;
    MDB_val k = {strlen(device), (void *)device}, v = {0, NULL};

    fp_assert(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0);
    if (mdb_get(txn, s->head_tail_db, &k, &v) != 0)
        v.mv_size = 0;
    mdb_txn_abort(txn);
    return v.mv_size;
}

/* Steady in-order batches never seal, so each writes only its head's tail (the bytes appended
 * since the base) until the tail is folded into the base; readers join the two. Checked after
 * every batch, through another reader and a read-only opener, across several folds: raw
 * doubles, decimals and integers. */
static void test_tail(void)
{
    enum { NSER = 3, BATCHES = 300 };
    struct fp_store *s = open_rw(), *ro = NULL;
    static char names[NSER][16] = {"raw", "dec", "int"};
    static int64_t ts[BATCHES];
    static double v[NSER][BATCHES];
    char err[256];

    for (int i = 0; i < BATCHES; i++) {
        ts[i] = T0 + INT64_C(86400000) * 50 + i * 10000; /* 3000 s: inside one hour */
        v[0][i] = (double)(i * 7919 % 100003) / 3.0;
        v[1][i] = (double)(i * 31 % 977) / 100;
        v[2][i] = (double)(INT64_C(1) << 40) + i * 4096;
    }
    for (int i = 0; i < BATCHES; i++) {
        struct fp_series_in in[NSER];
        struct fp_write_batch b;
        struct fp_write_result res;
        for (int k = 0; k < NSER; k++)
            in[k] = (struct fp_series_in){names[k], FP_SERIES_GAUGE, NULL, 0, &ts[i], &v[k][i], 1};
        b = (struct fp_write_batch){.device = "tail", .epoch = 1, .seq = (uint64_t)i + 1,
                                    .received_ms = T0, .series = in, .n_series = NSER};
        check_int(fp_store_write(s, &b, 1, &res), 0);
        if (i == 0) {
            /* A tail is mostly its entries' headers, one per grown series per batch: as
             * varints they take ~20 bytes where fixed fields took 49 (3 + 3 * 49 + the 15
             * stream bytes here would be 165). */
            size_t tail = tail_value_size(s, "tail");
            check(tail > 3 + 15);
            check(tail <= 3 + 15 + NSER * 25);
        }
        for (int k = 0; k < NSER; k++) {
            struct got g = {0};
            int64_t lts = 0;
            double lv = 0;
            int bad = 0;
            read_series(s, "tail", names[k], &g, &lts, &lv);
            if (g.n != (size_t)i + 1)
                FP_TEST_FAIL("after batch %d: %s: %zu samples, expected %d", i, names[k], g.n,
                             i + 1);
            for (size_t j = 0; j < g.n && j <= (size_t)i && bad < 3; j++)
                if (g.ts[j] != ts[j] || g.bits[j] != dbits(v[k][j])) {
                    FP_TEST_FAIL("after batch %d: %s sample %zu differs", i, names[k], j);
                    bad++;
                }
            check_int(lts, ts[i]);
            check_int(dbits(lv), dbits(v[k][i]));
            free(g.ts);
            free(g.bits);
        }
    }
    fp_assert(fp_store_open(dir, FP_STORE_READONLY, NULL, &ro, err, sizeof(err)) == 0);
    for (int k = 0; k < NSER; k++) {
        struct got g = {0};
        int64_t lts = 0;
        double lv = 0;
        read_series(ro, "tail", names[k], &g, &lts, &lv);
        check_int(g.n, BATCHES);
        check_int(lts, ts[BATCHES - 1]);
        free(g.ts);
        free(g.bits);
    }
    fp_store_close(&ro);
    fp_store_close(&s);
}

/* A damaged tail value (cut short anywhere, its varint headers included) reads as the entries
 * that are whole, never past its end (ASan checks the last), and the whole value reads again
 * once restored. */
static void test_tail_cut(void)
{
    static char names[2][16] = {"cut_a", "cut_b"};
    struct fp_store *s = open_rw();
    struct fp_store_reader *r;
    int64_t ts[2] = {T0 + INT64_C(86400000) * 60, T0 + INT64_C(86400000) * 60 + 10000};
    double v[2] = {1234.5678, 0.1};
    uint8_t saved[512];
    size_t len;
    MDB_val k = {3, (void *)"cut"}, val;
    MDB_txn *txn;
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    const struct fp_matcher mt[] = {{"device", "cut", FP_MATCH_EQ}};

    for (int i = 0; i < 2; i++) {
        struct fp_series_in in[2] = {{names[0], FP_SERIES_GAUGE, NULL, 0, &ts[i], &v[i], 1},
                                     {names[1], FP_SERIES_GAUGE, NULL, 0, &ts[i], &v[1 - i], 1}};
        struct fp_write_batch b = {.device = "cut", .epoch = 1, .seq = (uint64_t)i + 1,
                                   .received_ms = T0, .series = in, .n_series = 2};
        struct fp_write_result res;
        check_int(fp_store_write(s, &b, 1, &res), 0);
    }
    fp_assert(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0);
    fp_assert(mdb_get(txn, s->head_tail_db, &k, &val) == 0);
    len = val.mv_size;
    fp_assert(len <= sizeof(saved));
    memcpy(saved, val.mv_data, len);
    mdb_txn_abort(txn);
    for (size_t cut = 0; cut <= len; cut++) {
        size_t total;

        fp_assert(mdb_txn_begin(s->env, NULL, 0, &txn) == 0);
        val = (MDB_val){cut, saved};
        fp_assert(mdb_put(txn, s->head_tail_db, &k, &val, 0) == 0);
        fp_assert(mdb_txn_commit(txn) == 0);
        fp_assert(fp_store_reader_open(s, &r) == 0);
        fp_assert(fp_store_select(r, mt, 1, &ids, &n_ids) == 0);
        check_int(n_ids, 2);
        total = count_samples(r, ids, n_ids);
        free(ids);
        fp_store_reader_close(&r);
        if (cut < len)
            check(total < 4); /* the last entry, at least, is cut */
        else
            check_int(total, 4);
    }
    fp_store_close(&s);
}

int main(void)
{
    struct fp_store *s, *ro = NULL;
    int64_t clock[DEVICES];
    uint64_t seq = 0;
    char err[256];

    (void)snprintf(dir, sizeof(dir), "/tmp/fp-test-head-XXXXXX");
    fp_assert(mkdtemp(dir) != NULL);
    models = calloc(DEVICES * SERIES, sizeof(*models));
    fp_assert(models != NULL);
    for (unsigned i = 0; i < DEVICES * SERIES; i++)
        models[i].newest = INT64_MIN;
    for (unsigned d = 0; d < DEVICES; d++)
        clock[d] = T0 - 3600000 * 3; /* the first hours cross a day boundary */

    s = open_rw();
    for (int i = 0; i < 300; i++) {
        round_of_writes(s, &seq, clock);
        if (i % 60 == 59)
            verify(s, "writer");
    }
    /* Another opener of the same directory reads the heads the writer committed. */
    fp_assert(fp_store_open(dir, FP_STORE_READONLY, NULL, &ro, err, sizeof(err)) == 0);
    verify(ro, "read-only opener");
    fp_store_close(&ro);
    fp_store_close(&s);
    s = open_rw();
    verify(s, "reopened");
    for (int i = 0; i < 200; i++)
        round_of_writes(s, &seq, clock);
    verify(s, "after more writes");
    check_int(fp_store_compact(s), 0);
    verify(s, "compacted");
    for (int i = 0; i < 50; i++)
        round_of_writes(s, &seq, clock);
    verify(s, "writes after compaction");
    fp_store_close(&s);
    test_many_series();
    test_tail();
    test_tail_cut();

    {
        char p[128];
        (void)snprintf(p, sizeof(p), "%s/data.mdb", dir);
        (void)unlink(p);
        (void)snprintf(p, sizeof(p), "%s/lock.mdb", dir);
        (void)unlink(p);
        (void)rmdir(dir);
    }
    free(models);
    fp_test_end();
}
