/* The chunked sample store: live single-sample writes compact into full chunks, out-of-order
 * samples inside the window are stored and older ones refused and counted, duplicates come back
 * once, day partitions split and retention drops them, and a writer killed mid-ingest loses
 * nothing it acknowledged and doubles nothing. */
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunk.h"
#include "store-internal.h" /* the decoded-chunk cache counters */
#include "store.h"

#define T0 INT64_C(1732406400000) /* 2024-11-24T00:00:00Z, a day boundary */
#define DAY INT64_C(86400000)

static char dir[64];

static void rm_store(void)
{
    char p[128];
    (void)snprintf(p, sizeof(p), "%s/data.mdb", dir);
    (void)unlink(p);
    (void)snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    (void)unlink(p);
}

struct points {
    int64_t *ts;
    double *v;
    size_t n, cap;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct points *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->ts = realloc(p->ts, p->cap * sizeof(*p->ts));
        p->v = realloc(p->v, p->cap * sizeof(*p->v));
        fp_assert(p->ts != NULL && p->v != NULL);
    }
    p->ts[p->n] = ts;
    p->v[p->n] = v;
    p->n++;
    return 0;
}

static void points_free(struct points *p)
{
    free(p->ts);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

static struct fp_store *open_store(int64_t ooo_ms, int64_t retention_ms)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    char err[256];
    fp_store_options_default(&o);
    o.ooo_window_ms = ooo_ms;
    o.raw_retention_ms = retention_ms;
    if (fp_store_open(dir, 0, &o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return s;
}

/* Writes n samples of series "m" for device "d" in one batch. */
static struct fp_write_result put(struct fp_store *s, uint64_t seq, int64_t now,
                                  const int64_t *ts, const double *v, size_t n)
{
    struct fp_series_in in = {"m", FP_SERIES_GAUGE, NULL, 0, ts, v, n};
    struct fp_write_batch b = {.device = "d", .epoch = 1, .seq = seq, .received_ms = now,
                               .series = &in, .n_series = 1};
    struct fp_write_result res;
    int rc = fp_store_write(s, &b, 1, &res);
    if (rc != 0)
        FP_TEST_FAIL("write seq %" PRIu64 ": %s", seq, fp_store_strerror(rc));
    return res;
}

static void read_all(struct fp_store *s, int64_t from, int64_t to, struct points *out)
{
    struct fp_store_reader *r;
    const struct fp_matcher m[] = {{"__name__", "m", FP_MATCH_EQ}};
    uint64_t *ids;
    size_t n;
    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, m, 1, &ids, &n) == 0);
    if (n == 1)
        check_int(fp_store_read_range(r, ids[0], from, to, collect, out), 0);
    free(ids);
    fp_store_reader_close(&r);
}

/* Entries (chunks) in the partition of day, read straight from LMDB. */
/* The chunks in one day's partition, and in *ret_bytes (unless NULL) the bytes of their values
 * (each with its 8-byte last time). */
static size_t day_chunks(int64_t day, size_t *ret_bytes)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0, bytes = 0;
    char name[48];
    fp_assert(mdb_env_create(&env) == 0);
    (void)mdb_env_set_maxdbs(env, 256);
    fp_assert(mdb_env_open(env, dir, MDB_RDONLY, 0644) == 0);
    fp_assert(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    (void)snprintf(name, sizeof(name), "raw.%" PRId64, day);
    if (mdb_dbi_open(txn, name, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            n++;
            bytes += v.mv_size;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    if (ret_bytes != NULL)
        *ret_bytes = bytes;
    return n;
}

static size_t chunks_in_day(int64_t day)
{
    return day_chunks(day, NULL);
}

static size_t chunk_bytes_in_day(int64_t day)
{
    size_t bytes;
    (void)day_chunks(day, &bytes);
    return bytes;
}

/* The length of one chunk holding ts/v, as the store's encoder (default options) writes it. */
static size_t encoded_len(const int64_t *ts, const double *v, size_t n)
{
    struct fp_chunk_enc *e = NULL;
    uint8_t buf[FP_CHUNK_MAX_BYTES];
    size_t len = 0;

    fp_assert(fp_chunk_enc_new(NULL, &e) == 0);
    for (size_t i = 0; i < n; i++)
        fp_assert(fp_chunk_enc_append(e, ts[i], v[i]) == 0);
    fp_assert(fp_chunk_enc_finish(e, buf, sizeof(buf), &len) == 0);
    fp_chunk_enc_destroy(&e);
    return len;
}

static void test_live_compaction(void)
{
    struct fp_store *s;
    struct points p = {0};
    const size_t N = 2000;
    int64_t ts;
    double v;
    bool exact = true;

    rm_store();
    s = open_store(3600000, 0);
    /* The edge shape: one sample per series per batch, 10 s apart. */
    for (size_t i = 0; i < N; i++) {
        ts = T0 + (int64_t)i * 10000;
        v = 40.0 + (double)(i % 97) / 1000.0;
        struct fp_write_result r = put(s, i + 1, ts, &ts, &v, 1);
        check_int(r.samples_written, 1);
    }
    /* Compaction ran as it went: far fewer chunks than writes. */
    check(chunks_in_day(T0 / DAY) < 150); /* at most 128 small chunks wait for a merge */
    /* Compaction leaves chunks of at least three quarters of the maximum (hours here). The first
     * value, 40.0, is an integer and the next, 40.001, is not: the head widens its stream
     * rather than leaving a one-sample chunk behind. */
    check_int(fp_store_compact(s), 0);
    check(chunks_in_day(T0 / DAY) <= N / (FP_CHUNK_MAX_SAMPLES * 3 / 4) + 1);
    read_all(s, 0, INT64_MAX, &p);
    check_int(p.n, N);
    for (size_t i = 0; i < p.n && i < N; i++)
        exact = exact && p.ts[i] == T0 + (int64_t)i * 10000 &&
                p.v[i] == 40.0 + (double)(i % 97) / 1000.0;
    check(exact);
    points_free(&p);
    /* A narrow range inside a chunk. */
    read_all(s, T0 + 10000 * 500, T0 + 10000 * 502, &p);
    check_int(p.n, 3);
    if (p.n == 3)
        check_double(p.v[0], 40.0 + (double)(500 % 97) / 1000.0);
    points_free(&p);
    fp_store_close(&s);

    /* Reopened (state lost), it still reads and keeps compacting correctly. */
    s = open_store(3600000, 0);
    for (size_t i = N; i < N + 600; i++) {
        ts = T0 + (int64_t)i * 10000;
        v = 1.5;
        (void)put(s, i + 1, ts, &ts, &v, 1);
    }
    read_all(s, 0, INT64_MAX, &p);
    check_int(p.n, N + 600);
    points_free(&p);
    fp_store_close(&s);
}

static void test_out_of_order(void)
{
    struct fp_store *s;
    struct points p = {0};
    int64_t ts[100];
    double v[100];
    struct fp_write_result r;

    rm_store();
    s = open_store(3600000, 0);
    for (int i = 0; i < 100; i++) {
        ts[i] = T0 + 3600000 + i * 1000; /* 01:00:00 .. 01:01:39 */
        v[i] = i;
    }
    r = put(s, 1, T0, ts, v, 100);
    check_int(r.samples_written, 100);
    /* Late but inside the window (30 min back), interleaved, in reverse order. */
    for (int i = 0; i < 50; i++) {
        ts[i] = T0 + 3600000 + 99500 - i * 2000 - 1800000;
        v[i] = 1000 + i;
    }
    r = put(s, 2, T0, ts, v, 50);
    check_int(r.samples_written, 50);
    check_int(r.samples_refused, 0);
    /* Samples more than an hour behind the newest: refused, counted, the rest of the batch kept. */
    ts[0] = T0 + 3600000 + 99000 - 3600001;
    ts[1] = T0 + 3600000 + 99999;
    v[0] = v[1] = 7;
    r = put(s, 3, T0, ts, v, 2);
    check_int(r.samples_written, 1);
    check_int(r.samples_refused, 1);
    check_int(r.samples_too_old, 1);

    read_all(s, 0, INT64_MAX, &p);
    check_int(p.n, 151);
    for (size_t i = 1; i < p.n; i++)
        if (!(p.ts[i - 1] < p.ts[i])) {
            FP_TEST_FAIL("not in order at %zu", i);
            break;
        }
    points_free(&p);

    /* The same timestamps again: same values are idempotent, a new value replaces the old. */
    ts[0] = T0 + 3600000 + 5000;
    v[0] = 5;
    ts[1] = T0 + 3600000 + 6000;
    v[1] = 66;
    r = put(s, 4, T0, ts, v, 2);
    check_int(r.samples_written, 2);
    read_all(s, T0 + 3600000 + 5000, T0 + 3600000 + 6000, &p);
    check_int(p.n, 2);
    if (p.n == 2) {
        check_double(p.v[0], 5);
        check_double(p.v[1], 66);
    }
    points_free(&p);
    check_int(fp_store_compact(s), 0);
    read_all(s, 0, INT64_MAX, &p);
    check_int(p.n, 151);
    points_free(&p);
    /* Equal timestamps inside one batch: the last one wins. */
    ts[0] = ts[1] = T0 + 3600000 + 7000;
    v[0] = 1;
    v[1] = 2;
    r = put(s, 5, T0, ts, v, 2);
    read_all(s, T0 + 3600000 + 7000, T0 + 3600000 + 7000, &p);
    check_int(p.n, 1);
    if (p.n == 1)
        check_double(p.v[0], 2);
    points_free(&p);
    fp_store_close(&s);
}

/* A read-only opener keeping decoded chunks: a chunk read again comes from its cache, and a
 * chunk rewritten under the same key (an out-of-order point merged into it) is decoded anew,
 * never served stale. */
static void test_decoded_cache(void)
{
    struct fp_store *s, *ro = NULL;
    struct fp_store_options o;
    struct points p = {0};
    int64_t ts[100];
    double v[100];
    char err[256];
    uint64_t hits, misses;

    rm_store();
    s = open_store(3600000, 0);
    for (int i = 0; i < 100; i++) {
        ts[i] = T0 + 3600000 + i * 10000;
        v[i] = i;
    }
    put(s, 1, T0, ts, v, 100);
    check_int(fp_store_compact(s), 0); /* the samples now in one chunk */
    fp_store_options_default(&o);
    o.decoded_cache_chunks = 16;
    fp_assert(fp_store_open(dir, FP_STORE_READONLY, &o, &ro, err, sizeof(err)) == 0);
    read_all(ro, 0, INT64_MAX, &p);
    check_int(p.n, 100);
    points_free(&p);
    misses = ro->decoded.misses;
    check(misses >= 1);
    check_int(ro->decoded.hits, 0);
    read_all(ro, 0, INT64_MAX, &p);
    check_int(p.n, 100);
    if (p.n == 100)
        check_double(p.v[42], 42);
    points_free(&p);
    check(ro->decoded.hits >= 1);
    check_int(ro->decoded.misses, misses);
    hits = ro->decoded.hits;
    {
        uint64_t h, m;
        fp_store_chunk_cache_counts(ro, &h, &m);
        check_int(h, hits);
        check_int(m, misses);
    }

    /* A new value for an old timestamp: the chunk keeps its key, its bytes change. */
    ts[0] = T0 + 3600000 + 10 * 10000;
    v[0] = 999;
    put(s, 2, T0, ts, v, 1);
    check_int(fp_store_compact(s), 0);
    read_all(ro, 0, INT64_MAX, &p);
    check_int(p.n, 100);
    if (p.n == 100) {
        check_double(p.v[10], 999);
        check_double(p.v[11], 11);
    }
    points_free(&p);
    check(ro->decoded.misses > misses);
    check_int(ro->decoded.hits, hits);
    fp_store_close(&ro);
    fp_store_close(&s);

    /* Again with a new value whose chunk is exactly as long as the old one: only the bytes tell
     * them apart, or the chunk generation a rewrite bumps (samples.c). */
    rm_store();
    s = open_store(3600000, 0);
    for (int i = 0; i < 100; i++) { /* residuals of all sizes, so some other value fits */
        ts[i] = T0 + 3600000 + i * 10000;
        v[i] = (double)((i * i * 31 + i * 7919) % 1000);
    }
    {
        size_t len0 = encoded_len(ts, v, 100), before;
        double x = 0, v10 = v[10], v11 = v[11];

        for (int c = 1; c < 1000 && x == 0; c++) {
            v[10] = v10 + (c % 2 ? c / 2 + 1 : -(c / 2)); /* +1, -1, +2, -2, ... */
            if (encoded_len(ts, v, 100) == len0)
                x = v[10];
        }
        v[10] = v10;
        fp_assert(x != 0);
        put(s, 1, T0, ts, v, 100);
        check_int(fp_store_compact(s), 0);
        before = chunk_bytes_in_day(T0 / DAY);
        fp_assert(fp_store_open(dir, FP_STORE_READONLY, &o, &ro, err, sizeof(err)) == 0);
        read_all(ro, 0, INT64_MAX, &p);
        read_all(ro, 0, INT64_MAX, &p); /* the second read from the cache */
        points_free(&p);
        check(ro->decoded.hits >= 1);
        misses = ro->decoded.misses;
        ts[0] = T0 + 3600000 + 10 * 10000;
        v[0] = x;
        put(s, 2, T0, ts, v, 1);
        check_int(fp_store_compact(s), 0);
        check_int(chunks_in_day(T0 / DAY), 1);
        check_int(chunk_bytes_in_day(T0 / DAY), before); /* same length, other bytes */
        read_all(ro, 0, INT64_MAX, &p);
        check_int(p.n, 100);
        if (p.n == 100) {
            check_double(p.v[10], x);
            check_double(p.v[11], v11);
        }
        points_free(&p);
        check(ro->decoded.misses > misses);
        fp_store_close(&ro);
    }
    fp_store_close(&s);
}

static void test_days_and_retention(void)
{
    struct fp_store *s;
    struct points p = {0};
    int64_t ts[4] = {T0 - 1000, T0, T0 + DAY - 1, T0 + DAY};
    double v[4] = {1, 2, 3, 4};
    struct fp_write_result r;

    rm_store();
    s = open_store(10 * DAY, 15 * DAY);
    r = put(s, 1, T0, ts, v, 4);
    check_int(r.samples_written, 4);
    /* The newest sample waits in the device's head (head.c) until sealed. */
    check_int(chunks_in_day(T0 / DAY + 1), 0);
    check_int(fp_store_compact(s), 0);
    check_int(chunks_in_day(T0 / DAY - 1), 1);
    check_int(chunks_in_day(T0 / DAY), 2); /* 24 h apart: no chunk spans more than 2 h */
    check_int(chunks_in_day(T0 / DAY + 1), 1);
    read_all(s, T0 - 1000, T0 + DAY, &p);
    check_int(p.n, 4);
    points_free(&p);

    /* 16 days later by the collector's clock: everything before T0 + 1 day is past the 15-day
     * retention; those days are dropped on the next write and a sample that old is refused and
     * counted. */
    ts[0] = T0 + 16 * DAY - 5;
    r = put(s, 2, T0 + 16 * DAY, ts, v, 1);
    check_int(r.samples_written, 1);
    ts[0] = T0 - 500;
    r = put(s, 3, T0 + 16 * DAY + 61000, ts, v, 1);
    check_int(r.samples_too_old, 1);
    check_int(chunks_in_day(T0 / DAY - 1), 0);
    check_int(chunks_in_day(T0 / DAY), 0);
    check_int(chunks_in_day(T0 / DAY + 1), 1);
    read_all(s, 0, INT64_MAX, &p);
    check_int(p.n, 2); /* T0 + DAY, and the new one */
    if (p.n == 2)
        check_int(p.ts[0], T0 + DAY);
    points_free(&p);
    fp_store_close(&s);
}

/* Puts a chunk of samples t0, t0 + step, ... (values v0, v0 + 1, ...) of series id straight
 * into the day's partition, bypassing the store: only a damaged store has such chunks. */
static void inject_chunk(uint64_t id, int64_t t0, int64_t step, size_t n, double v0)
{
    struct fp_chunk_enc *enc;
    uint8_t chunk[FP_CHUNK_MAX_BYTES], kb[16], vb[8 + FP_CHUNK_MAX_BYTES];
    size_t len;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    char name[48];
    MDB_val k = {16, kb}, v;

    fp_assert(fp_chunk_enc_new(NULL, &enc) == 0);
    for (size_t i = 0; i < n; i++)
        fp_assert(fp_chunk_enc_append(enc, t0 + (int64_t)i * step, v0 + (double)i) == 0);
    fp_assert(fp_chunk_enc_finish(enc, chunk, sizeof(chunk), &len) == 0);
    fp_chunk_enc_destroy(&enc);
    for (int i = 0; i < 8; i++) {
        kb[i] = (uint8_t)(id >> (56 - 8 * i));
        kb[8 + i] = (uint8_t)(((uint64_t)t0 ^ (UINT64_C(1) << 63)) >> (56 - 8 * i));
        vb[i] = (uint8_t)(((uint64_t)(t0 + (int64_t)(n - 1) * step) ^ (UINT64_C(1) << 63)) >>
                          (56 - 8 * i));
    }
    memcpy(vb + 8, chunk, len);
    v = (MDB_val){8 + len, vb};
    fp_assert(mdb_env_create(&env) == 0);
    (void)mdb_env_set_maxdbs(env, 256);
    fp_assert(mdb_env_open(env, dir, 0, 0644) == 0);
    fp_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    (void)snprintf(name, sizeof(name), "raw.%" PRId64, t0 / DAY);
    fp_assert(mdb_dbi_open(txn, name, MDB_CREATE, &dbi) == 0);
    fp_assert(mdb_put(txn, dbi, &k, &v, 0) == 0);
    fp_assert(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

/* Chunks that overlap (never written by the store, but a damaged one may hold them) still read
 * back sorted, each timestamp once, the later chunk in key order winning. */
static void test_overlapping_chunks(void)
{
    struct fp_store *s;
    struct fp_store_reader *r;
    struct points p = {0};
    const struct fp_matcher m[] = {{"__name__", "m", FP_MATCH_EQ}};
    uint64_t *ids;
    size_t n;
    int64_t ts = T0;
    double v = 0;

    rm_store();
    s = open_store(3600000, 0);
    (void)put(s, 1, T0, &ts, &v, 1);
    check_int(fp_store_compact(s), 0); /* the sample into a chunk: [T0] */
    fp_assert(fp_store_reader_open(s, &r) == 0);
    fp_assert(fp_store_select(r, m, 1, &ids, &n) == 0 && n == 1);
    fp_store_reader_close(&r);
    fp_store_close(&s);
    inject_chunk(ids[0], T0 + 10000, 20000, 5, 100); /* T0+10 s .. T0+90 s, every 20 s */
    inject_chunk(ids[0], T0 + 30000, 10000, 3, 200); /* T0+30 s .. T0+50 s: overlaps it */
    free(ids);
    s = open_store(3600000, 0);
    read_all(s, 0, INT64_MAX, &p);
    {
        static const int64_t want_ts[] = {0, 10000, 30000, 40000, 50000, 70000, 90000};
        static const double want_v[] = {0, 100, 200, 201, 202, 103, 104};
        check_int(p.n, 7);
        for (size_t i = 0; i < p.n && i < 7; i++) {
            check_int(p.ts[i], T0 + want_ts[i]);
            check_double(p.v[i], want_v[i]);
        }
    }
    points_free(&p);
    fp_store_close(&s);
}

/* A child ingests batch after batch and reports each acknowledged seq on a pipe; it is killed
 * with SIGKILL mid-stream. Reopened, the store must hold every acknowledged batch exactly once. */
static void test_crash_recovery(void)
{
    int fds[2];
    pid_t pid;
    uint64_t acked = 0, seq;
    struct fp_store *s;
    struct points p = {0};
    bool ok = true;

    rm_store();
    fp_assert(pipe(fds) == 0);
    pid = fork();
    fp_assert(pid >= 0);
    if (pid == 0) {
        struct fp_store *w;
        close(fds[0]);
        w = open_store(3600000, 0);
        for (seq = 1;; seq++) {
            int64_t ts[10];
            double v[10];
            for (int i = 0; i < 10; i++) {
                ts[i] = T0 + (int64_t)(seq * 10 + (uint64_t)i) * 1000;
                v[i] = (double)(seq * 10 + (uint64_t)i);
            }
            (void)put(w, seq, T0, ts, v, 10);
            if (write(fds[1], &seq, sizeof(seq)) != sizeof(seq))
                _exit(1);
        }
    }
    close(fds[1]);
    while (acked < 300 && read(fds[0], &seq, sizeof(seq)) == sizeof(seq))
        acked = seq;
    kill(pid, SIGKILL);
    /* Acks written before the kill are still in the pipe. */
    while (read(fds[0], &seq, sizeof(seq)) == sizeof(seq))
        acked = seq;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    check(acked >= 300);

    s = open_store(3600000, 0);
    read_all(s, 0, INT64_MAX, &p);
    /* Every acknowledged batch, and at most the one in flight when it died. */
    check(p.n >= acked * 10 && p.n <= (acked + 1) * 10);
    for (size_t i = 0; i < p.n && ok; i++)
        ok = p.ts[i] == T0 + (int64_t)(10 + i) * 1000 && p.v[i] == (double)(10 + i);
    check(ok);
    points_free(&p);
    /* Delivering the acknowledged batches again stores nothing twice. */
    for (seq = acked - 5; seq <= acked; seq++) {
        int64_t ts[10];
        double v[10];
        for (int i = 0; i < 10; i++) {
            ts[i] = T0 + (int64_t)(seq * 10 + (uint64_t)i) * 1000;
            v[i] = (double)(seq * 10 + (uint64_t)i);
        }
        struct fp_write_result r = put(s, seq, T0, ts, v, 10);
        check_int(r.status, FP_STORE_E_DUP);
    }
    fp_store_close(&s);
}

int main(void)
{
    (void)snprintf(dir, sizeof(dir), "/tmp/fp-test-samples-XXXXXX");
    fp_assert(mkdtemp(dir) != NULL);
    test_live_compaction();
    test_out_of_order();
    test_decoded_cache();
    test_days_and_retention();
    test_crash_recovery();
    test_overlapping_chunks();
    rm_store();
    (void)rmdir(dir);
    fp_test_end();
}
