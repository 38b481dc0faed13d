/* Storage API: writes come back exactly, matchers select the right series, a batch is applied
 * once, the map grows, and foreign or incompatible stores are refused with a clear reason. */
#include "test.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-internal.h" /* the LMDB environment's flags */
#include "store.h"

static char dir[64];

static void rm_store(const char *d)
{
    char p[128];
    (void)snprintf(p, sizeof(p), "%s/data.mdb", d);
    (void)unlink(p);
    (void)snprintf(p, sizeof(p), "%s/lock.mdb", d);
    (void)unlink(p);
}

struct points {
    int64_t ts[64];
    double v[64];
    size_t n;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct points *p = ud;
    if (p->n < 64) {
        p->ts[p->n] = ts;
        p->v[p->n] = v;
    }
    p->n++;
    return 0;
}

static uint64_t select_one(struct fp_store_reader *r, const struct fp_matcher *m, size_t n)
{
    uint64_t *ids, id = 0;
    size_t nids;
    int rc = fp_store_select(r, m, n, &ids, &nids);
    check_int(rc, 0);
    check_int(nids, 1);
    if (nids >= 1)
        id = ids[0];
    free(ids);
    return id;
}

static size_t select_count(struct fp_store_reader *r, const struct fp_matcher *m, size_t n)
{
    uint64_t *ids;
    size_t nids = 0;
    int rc = fp_store_select(r, m, n, &ids, &nids);
    check_int(rc, 0);
    free(ids);
    return nids;
}

struct strs {
    char joined[512];
};

static int collect_str(void *ud, const char *str)
{
    struct strs *s = ud;
    strncat(s->joined, str, sizeof(s->joined) - strlen(s->joined) - 2);
    strcat(s->joined, ",");
    return 0;
}

static int count_device(void *ud, const struct fp_device_desc *d)
{
    (*(int *)ud)++;
    return 0;
}

static int first_event(void *ud, const struct fp_event_desc *e)
{
    struct fp_event_desc *out = ud;
    *out = *e;
    return 1;
}

static void test_roundtrip(void)
{
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256];
    const struct fp_label zone0[] = {{"zone", "thermal_zone0"}, {"type", "x86_pkg_temp"}};
    const struct fp_label zone1[] = {{"type", "acpitz"}, {"zone", "thermal_zone1"}};
    const int64_t ts[] = {1732412345123, 1732412355123, 1732412350123};
    const double temp0[] = {51.234, 52.5, 51.9};
    const double temp1[] = {-5.0, -4.5, -4.75};
    const double mem[] = {8.0e9};
    const struct fp_series_in series[] = {
        {"temperature_celsius", FP_SERIES_GAUGE, zone0, 2, ts, temp0, 3},
        {"temperature_celsius", FP_SERIES_GAUGE, zone1, 2, ts, temp1, 3},
        {"memory_available_bytes", FP_SERIES_GAUGE, NULL, 0, ts, mem, 1},
    };
    const struct fp_label info[] = {{"hostname", "kiosk-7"}, {"model", "qwen2.5-1.5b"}};
    const struct fp_label attrs[] = {{"source", "pressure"}};
    const struct fp_event_in ev = {1732412345000, "source_missing", 2, "no PSI", attrs, 1};
    struct fp_write_batch b[2] = {
        {.device = "dev-a", .epoch = 7, .seq = 1, .received_ms = 1732412400000, .info = info,
         .n_info = 2, .series = series, .n_series = 3, .events = &ev, .n_events = 1},
        {.device = "dev-b", .epoch = 9, .seq = 1, .received_ms = 1732412401000,
         .series = series + 2, .n_series = 1},
    };
    struct fp_write_result res[2];
    struct points pts = {0};
    struct fp_series_desc d;
    struct fp_device_desc dd;
    struct fp_event_desc ed;
    int64_t lts;
    double lv;
    uint64_t id;
    int n = 0;

    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    check_int(fp_store_write(s, b, 2, res), 0);
    check_int(res[0].status, 0);
    check_int(res[0].samples_written, 7);
    check_int(res[1].samples_written, 1);

    /* Delivered again (a retransmission): nothing is written twice. */
    check_int(fp_store_write(s, b, 1, res), 0);
    check_int(res[0].status, FP_STORE_E_DUP);
    check_int(res[0].samples_written, 0);

    fp_assert(fp_store_reader_open(s, &r) == 0);
    {
        const struct fp_matcher m[] = {{"__name__", "temperature_celsius", FP_MATCH_EQ},
                                       {"device", "dev-a", FP_MATCH_EQ},
                                       {"zone", "thermal_zone0", FP_MATCH_EQ}};
        id = select_one(r, m, 3);
    }
    check_int(fp_store_series_get(r, id, &d), 0);
    check_str(d.metric, "temperature_celsius");
    /* The device's identity label "model" is stamped on; "hostname" is not identity. */
    check_int(d.n_labels, 4);
    check_str(d.labels[0].name, "device"); /* sorted by name */
    check_str(d.labels[0].value, "dev-a");
    check_str(d.labels[1].name, "model");
    check_str(d.labels[1].value, "qwen2.5-1.5b");
    check_str(d.labels[2].name, "type");
    check_str(d.labels[3].value, "thermal_zone0");

    /* Out of order on the way in, in order on the way out, bit for bit. */
    check_int(fp_store_read_range(r, id, 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, 3);
    check_int(pts.ts[0], 1732412345123);
    check_double(pts.v[0], 51.234);
    check_int(pts.ts[1], 1732412350123);
    check_double(pts.v[1], 51.9);
    check_int(pts.ts[2], 1732412355123);
    pts.n = 0;
    check_int(fp_store_read_range(r, id, 1732412350123, 1732412350123, collect, &pts), 0);
    check_int(pts.n, 1);
    check_int(fp_store_latest(r, id, &lts, &lv), 0);
    check_int(lts, 1732412355123);
    check_double(lv, 52.5);

    {
        const struct fp_matcher m[] = {{"__name__", "temperature_celsius", FP_MATCH_EQ}};
        check_int(select_count(r, m, 1), 2);
        const struct fp_matcher ne[] = {{"__name__", "temperature_celsius", FP_MATCH_EQ},
                                        {"zone", "thermal_zone0", FP_MATCH_NE}};
        check_int(select_count(r, ne, 2), 1);
        const struct fp_matcher re[] = {{"zone", "thermal_zone[01]", FP_MATCH_RE}};
        check_int(select_count(r, re, 1), 2);
        const struct fp_matcher nre[] = {{"device", "dev-.", FP_MATCH_NRE}};
        check_int(select_count(r, nre, 1), 0);
        const struct fp_matcher absent[] = {{"zone", "", FP_MATCH_EQ}};
        check_int(select_count(r, absent, 1), 2); /* the two memory series */
        const struct fp_matcher none[] = {{"device", "nope", FP_MATCH_EQ}};
        check_int(select_count(r, none, 1), 0);
        check_int(select_count(r, NULL, 0), 4);
        uint64_t *ids;
        size_t nids;
        const struct fp_matcher bad[] = {{"zone", "(", FP_MATCH_RE}};
        check_int(fp_store_select(r, bad, 1, &ids, &nids), -EINVAL);
    }

    {
        struct strs got = {0};
        check_int(fp_store_label_names(r, collect_str, &got), 0);
        check_str(got.joined, "__name__,device,model,type,zone,");
        got.joined[0] = '\0';
        check_int(fp_store_label_values(r, "zone", collect_str, &got), 0);
        check_str(got.joined, "thermal_zone0,thermal_zone1,");
        got.joined[0] = '\0';
        check_int(fp_store_label_values(r, "__name__", collect_str, &got), 0);
        check_str(got.joined, "memory_available_bytes,temperature_celsius,");
        got.joined[0] = '\0';
        check_int(fp_store_label_values(r, "nope", collect_str, &got), 0);
        check_str(got.joined, "");
    }

    check_int(fp_store_devices(r, count_device, &n), 0);
    check_int(n, 2);
    check_int(fp_store_device_get(r, "dev-a", &dd), 0);
    check_int(dd.last_seen_ms, 1732412400000);
    check_int(dd.batches, 1);
    check_int(dd.samples, 7);
    check_int(dd.duplicates, 1);
    check_int(dd.last_epoch, 7);
    check_int(dd.n_info, 2);
    check_str(dd.info[1].value, "qwen2.5-1.5b");
    /* The 10 s step inside the batch (the later, out-of-order sample does not count). */
    check_int(dd.interval_ms, 10000);
    check_int(dd.last_sample_ms, 1732412355123);
    check_int(dd.ingest_lag_ms, 1732412400000 - 1732412355123);
    check_int(fp_store_device_get(r, "dev-z", &dd), FP_STORE_E_NOTFOUND);

    check_int(fp_store_events(r, NULL, 0, INT64_MAX, first_event, &ed), 1);
    check_str(ed.kind, "source_missing");
    check_str(ed.device, "dev-a");
    check_str(ed.message, "no PSI");
    check_int(ed.severity, 2);
    check_int(ed.n_attrs, 1);
    check_str(ed.attrs[0].value, "pressure");
    check_int(fp_store_events(r, "dev-b", 0, INT64_MAX, first_event, &ed), 0);
    fp_store_reader_close(&r);
    check(r == NULL);

    /* Seq 4 stored before seq 3 (3 was lost, then resent): both are applied, each once. */
    {
        const int64_t t3[] = {1732412500000};
        const double v3[] = {3};
        const struct fp_series_in s3 = {"seq_probe", FP_SERIES_GAUGE, NULL, 0, t3, v3, 1};
        struct fp_write_batch w = {.device = "dev-b", .epoch = 9, .received_ms = 1732412402000,
                                   .series = &s3, .n_series = 1};
        uint64_t *ids;
        size_t nids;
        w.seq = 4;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, 0);
        w.seq = 3;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, 0);
        check_int(res[0].samples_written, 1);
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, FP_STORE_E_DUP);
        w.seq = 4;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, FP_STORE_E_DUP);
        /* Far past the window: 300 ahead, then 3 again is long settled. */
        w.seq = 304;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, 0);
        w.seq = 200;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, 0);
        w.seq = 3;
        check_int(fp_store_write(s, &w, 1, res), 0);
        check_int(res[0].status, FP_STORE_E_DUP);
        /* Two deliveries of one batch inside one group commit: applied once. */
        struct fp_write_batch two[2] = {w, w};
        two[0].seq = two[1].seq = 305;
        struct fp_write_result rr[2];
        check_int(fp_store_write(s, two, 2, rr), 0);
        check_int(rr[0].status, 0);
        check_int(rr[1].status, FP_STORE_E_DUP);
        fp_assert(fp_store_reader_open(s, &r) == 0);
        const struct fp_matcher m[] = {{"__name__", "seq_probe", FP_MATCH_EQ}};
        check_int(fp_store_select(r, m, 1, &ids, &nids), 0);
        check_int(nids, 1);
        check_int(fp_store_device_get(r, "dev-b", &dd), 0);
        check_int(dd.last_seq, 305);
        check_int(dd.duplicates, 4);
        free(ids);
        fp_store_reader_close(&r);
    }

    /* A second batch of the same epoch adds; info not resent is kept. */
    b[0].seq = 2;
    b[0].n_info = 0;
    b[0].n_events = 0;
    b[0].received_ms = 1732412410000;
    check_int(fp_store_write(s, b, 1, res), 0);
    check_int(res[0].status, 0);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(fp_store_device_get(r, "dev-a", &dd), 0);
    check_int(dd.n_info, 2);
    check_int(dd.batches, 2);
    check_int(dd.last_seen_ms, 1732412410000);
    fp_store_reader_close(&r);
    fp_store_close(&s);
    check(s == NULL);
    fp_store_close(&s); /* idempotent */

    /* A separate read-only opener sees the same data. */
    fp_assert(fp_store_open(dir, FP_STORE_READONLY, NULL, &s, err, sizeof(err)) == 0);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(select_count(r, NULL, 0), 5);
    fp_store_reader_close(&r);
    check_int(fp_store_write(s, b, 1, res), -EROFS);
    fp_store_close(&s);
}

/* Live traffic: one sample per series per batch; the interval comes from the step between
 * batches, follows a change of cadence, and ignores an outage and a replayed older batch. */
static void test_device_timing(void)
{
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    struct fp_device_desc dd;
    struct fp_write_result res;
    char err[256];
    int64_t t = 1732412400000, ts[1];
    double v[1] = {1};
    const struct fp_series_in in = {"up", FP_SERIES_GAUGE, NULL, 0, ts, v, 1};
    struct fp_write_batch b = {.device = "live", .epoch = 1, .series = &in, .n_series = 1};
    /* Steps between batches, in seconds; 0 replays the sample before the newest. */
    const int steps[] = {10, 10, 10, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 7200, 5, 0};
    int64_t newest = 0, expect = 0;

    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        ts[0] = steps[i] == 0 ? newest - 5000 : t + steps[i] * 1000;
        if (steps[i] != 0)
            t = ts[0];
        b.seq = i + 1;
        b.received_ms = ts[0] + 250;
        check_int(fp_store_write(s, &b, 1, &res), 0);
        if (newest > 0 && ts[0] > newest && ts[0] - newest <= 3600 * 1000)
            expect = expect == 0 ? ts[0] - newest : expect + (ts[0] - newest - expect) / 4;
        if (ts[0] > newest)
            newest = ts[0];
    }
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(fp_store_device_get(r, "live", &dd), 0);
    /* The first batch has no step; then 10 s, and thirteen 5 s steps pull it to within 3%
     * of 5 s; the two-hour outage is not a step. */
    check_int(dd.interval_ms, expect);
    check(dd.interval_ms >= 5000 && dd.interval_ms < 5150);
    check_int(dd.last_sample_ms, newest);
    /* The lag is the last batch's own: the replayed one arrived 250 ms after its sample. */
    check_int(dd.ingest_lag_ms, 250);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

static void test_refusals(void)
{
    struct fp_store *s = NULL;
    char err[256];
    char longval[600];
    const int64_t ts[] = {1732412345123};
    const double v[] = {1};
    struct fp_label lbl[] = {{"x", longval}};
    const struct fp_label dupl[] = {{"a", "1"}, {"a", "2"}};
    const struct fp_series_in series[] = {
        {"too_long", FP_SERIES_GAUGE, lbl, 1, ts, v, 1},
        {"dup_labels", FP_SERIES_GAUGE, dupl, 2, ts, v, 1},
        {"fine", FP_SERIES_GAUGE, NULL, 0, ts, v, 1},
    };
    struct fp_write_batch b = {.device = "d", .epoch = 1, .seq = 1, .received_ms = 1,
                               .series = series, .n_series = 3};
    struct fp_write_result res;

    memset(longval, 'x', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    rm_store(dir);
    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.samples_written, 1);
    check_int(res.samples_refused, 2);
    fp_store_close(&s);
}

static void test_growth(void)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256];
    int64_t ts[1000];
    double v[1000];
    struct fp_series_in series = {"grow", FP_SERIES_GAUGE, NULL, 0, ts, v, 1000};
    struct fp_write_batch b = {.device = "d", .epoch = 1, .received_ms = 1, .series = &series,
                               .n_series = 1};
    struct fp_write_result res;
    struct points pts = {0};
    uint64_t x = 42, *ids;
    size_t nids;
    int rc = 0, round;

    rm_store(dir);
    fp_store_options_default(&o);
    o.initial_map_bytes = 64 * 1024;
    o.max_map_bytes = 2 * 1024 * 1024;
    fp_assert(fp_store_open(dir, 0, &o, &s, err, sizeof(err)) == 0);
    /* Random doubles do not compress (about 8 bytes each): 1000 a round makes the 64 KiB map
     * grow several times, then reach the cap and say so instead of failing some other way. */
    for (round = 0; round < 1000 && rc == 0; round++) {
        b.seq = (uint64_t)round + 1;
        for (int i = 0; i < 1000; i++) {
            ts[i] = 1732412345000 + (int64_t)round * 1000 + i;
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            v[i] = (double)(x >> 11) / 9007199254740992.0;
        }
        rc = fp_store_write(s, &b, 1, &res);
        if (round < 20)
            check_int(rc, 0);
    }
    check_int(rc, FP_STORE_E_FULL);
    /* Everything acknowledged before the cap is there, and nothing of the refused write. */
    fp_assert(fp_store_reader_open(s, &r) == 0);
    const struct fp_matcher m[] = {{"__name__", "grow", FP_MATCH_EQ}};
    fp_assert(fp_store_select(r, m, 1, &ids, &nids) == 0 && nids == 1);
    check_int(fp_store_read_range(r, ids[0], 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, (round - 1) * 1000);
    free(ids);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

/* A transaction that grows the map is aborted and redone: series created in the aborted attempt
 * must not survive in the writer's memory with ids that were never committed. */
static void test_abort_keeps_ids_consistent(void)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256], names[400][16];
    struct fp_series_in in[400];
    const int64_t ts[] = {1732412345000};
    const double v[] = {1};
    struct fp_write_batch b = {.device = "d", .epoch = 1, .received_ms = 1, .series = in};
    struct fp_write_result res;
    uint64_t *ids, seen = 0;
    size_t nids;

    rm_store(dir);
    fp_store_options_default(&o);
    o.initial_map_bytes = 32 * 1024; /* far too small for 400 new series: the first try aborts */
    fp_assert(fp_store_open(dir, 0, &o, &s, err, sizeof(err)) == 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 200; i++) {
            int k = round * 200 + i;
            (void)snprintf(names[k], sizeof(names[k]), "m%d", k);
            in[i] = (struct fp_series_in){names[k], FP_SERIES_GAUGE, NULL, 0, ts, v, 1};
        }
        b.series = in;
        b.n_series = 200;
        b.seq = (uint64_t)round + 1;
        check_int(fp_store_write(s, &b, 1, &res), 0);
        check_int(res.samples_written, 200);
        /* the second round reuses round one's names too: known series through the cache */
        for (int i = 0; i < 200; i++)
            in[i].metric = names[i];
        b.seq = (uint64_t)round + 10;
        check_int(fp_store_write(s, &b, 1, &res), 0);
    }
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(fp_store_select(r, NULL, 0, &ids, &nids), 0);
    check_int(nids, 400);
    for (size_t i = 0; i < nids; i++) {
        struct fp_series_desc d;
        check_int(fp_store_series_get(r, ids[i], &d), 0);
        seen |= i < 64 && ids[i] == i + 1 ? UINT64_C(1) << i : 0;
    }
    check(seen == UINT64_MAX); /* ids 1..64 dense: nothing handed out twice or skipped */
    free(ids);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

static void test_foreign(void)
{
    struct fp_store *s = NULL;
    char err[256], path[128];
    FILE *f;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, (void *)"format"}, v = {4, (void *)"\0\0\0\x63"};

    err[0] = '\0';
    check_int(fp_store_open("/nonexistent/fleetpulse", 0, NULL, &s, err, sizeof(err)), -ENOENT);
    check(strstr(err, "/nonexistent/fleetpulse") != NULL);

    rm_store(dir);
    check_int(fp_store_open(dir, FP_STORE_READONLY, NULL, &s, err, sizeof(err)), -ENOENT);
    check(strstr(err, "has the collector run") != NULL);

    /* Garbage where the store should be. */
    (void)snprintf(path, sizeof(path), "%s/data.mdb", dir);
    f = fopen(path, "w");
    fp_assert(f != NULL);
    for (int i = 0; i < 4096; i++)
        fputc('g', f);
    fclose(f);
    check_int(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)), FP_STORE_E_FORMAT);
    check(strstr(err, "does not hold a fleetpulse store") != NULL);
    check(s == NULL);

    /* A store of another format version: refused, naming both versions. */
    rm_store(dir);
    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    fp_store_close(&s);
    fp_assert(mdb_env_create(&env) == 0);
    (void)mdb_env_set_maxdbs(env, 16);
    fp_assert(mdb_env_open(env, dir, 0, 0644) == 0);
    fp_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    fp_assert(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
    fp_assert(mdb_put(txn, dbi, &k, &v, 0) == 0);
    fp_assert(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    check_int(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)), FP_STORE_E_FORMAT);
    check(strstr(err, "format version 99") != NULL);
    check_int(fp_store_open(dir, FP_STORE_READONLY, NULL, &s, err, sizeof(err)),
              FP_STORE_E_FORMAT);
}

/* The writer remembers each device's series in the order it sent them (and its record and dedup
 * state). Series sent in another order, a changed label value in the same slot, new identity
 * labels, a store reopened, and batches of an older epoch in between must all still land on the
 * right series and be deduplicated as before. */
static void test_device_cache(void)
{
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256];
    int64_t ts[1] = {1732412400000};
    const double v1[1] = {1}, v2[1] = {2};
    const struct fp_label za[] = {{"zone", "a"}}, zb[] = {{"zone", "b"}}, zc[] = {{"zone", "c"}};
    const struct fp_label m1[] = {{"model", "m1"}}, m2[] = {{"model", "m2"}};
    struct fp_series_in in[2] = {{"temp", FP_SERIES_GAUGE, za, 1, ts, v1, 1},
                                 {"temp", FP_SERIES_GAUGE, zb, 1, ts, v2, 1}};
    struct fp_write_batch b = {.device = "dc", .epoch = 1, .seq = 1, .received_ms = 1,
                               .info = m1, .n_info = 1, .series = in, .n_series = 2};
    struct fp_write_result res;
    struct fp_series_desc d;
    struct points pts = {0};
    uint64_t ida, idb;

    rm_store(dir);
    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.samples_written, 2);

    /* Swapped order, no info: the same two series, one more point each. */
    b.n_info = 0;
    b.seq = 2;
    ts[0] += 10000;
    in[0].labels = zb;
    in[0].values = v2;
    in[1].labels = za;
    in[1].values = v1;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.samples_written, 2);

    /* Same slot, another value of the label: a third series, not the one cached there. */
    b.seq = 3;
    ts[0] += 10000;
    in[1].labels = zc;
    check_int(fp_store_write(s, &b, 1, &res), 0);

    /* An older epoch's batch (a spool replayed after a restart) between two of the newest. */
    b.epoch = 0;
    b.seq = 3;
    ts[0] += 10000;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.status, 0);
    b.epoch = 1;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.status, FP_STORE_E_DUP); /* epoch 1 seq 3 was applied above */
    b.seq = 2;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.status, FP_STORE_E_DUP);

    /* The same identity sent again (a probe restarted): still the same series. */
    b.seq = 4;
    b.n_info = 1;
    ts[0] += 10000;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.samples_written, 2);
    b.n_info = 0;

    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(select_count(r, NULL, 0), 3);
    {
        const struct fp_matcher ma[] = {{"zone", "a", FP_MATCH_EQ}};
        const struct fp_matcher mb[] = {{"zone", "b", FP_MATCH_EQ}};
        ida = select_one(r, ma, 1);
        idb = select_one(r, mb, 1);
    }
    check_int(fp_store_read_range(r, ida, 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, 2);
    check_double(pts.v[0], 1);
    check_double(pts.v[1], 1);
    pts.n = 0;
    check_int(fp_store_read_range(r, idb, 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, 5); /* slot 0 held zone b from the second batch on */
    check_double(pts.v[0], 2);
    fp_store_reader_close(&r);

    /* New identity: new series, labelled with it, also for the batches after it without info. */
    b.epoch = 2;
    b.seq = 1;
    b.info = m2;
    b.n_info = 1;
    ts[0] += 10000;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    b.n_info = 0;
    b.seq = 2;
    ts[0] += 10000;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    fp_store_close(&s);

    /* Reopened: nothing cached, everything as stored. */
    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    b.seq = 2;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.status, FP_STORE_E_DUP);
    b.seq = 3;
    ts[0] += 10000;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    check_int(res.status, 0);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(select_count(r, NULL, 0), 5);
    {
        const struct fp_matcher m[] = {{"model", "m2", FP_MATCH_EQ}, {"zone", "b", FP_MATCH_EQ}};
        uint64_t id = select_one(r, m, 2);
        check_int(fp_store_series_get(r, id, &d), 0);
        check_int(d.n_labels, 3);
        pts.n = 0;
        check_int(fp_store_read_range(r, id, 0, INT64_MAX, collect, &pts), 0);
        check_int(pts.n, 3);
    }
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

/* background_sync: a write returns committed and visible; fp_store_wait_durable says when it is
 * on disk; the next write waits for that sync; closing syncs what is left. */
static void test_background_sync(void)
{
    struct fp_store_options o;
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256];
    int64_t ts[1];
    double v[1];
    const struct fp_series_in in = {"up", FP_SERIES_GAUGE, NULL, 0, ts, v, 1};
    struct fp_write_batch b = {.device = "bg", .epoch = 1, .series = &in, .n_series = 1};
    struct fp_write_result res;
    struct points pts = {0};
    uint64_t before;

    rm_store(dir);
    fp_store_options_default(&o);
    o.background_sync = true;
    fp_assert(fp_store_open(dir, 0, &o, &s, err, sizeof(err)) == 0);
    {
        /* Data pages synced inside the commit, before the meta page that points at them is
         * written: MDB_NOSYNC would let a power cut leave that meta page without its pages. */
        unsigned flags = 0;
        fp_assert(mdb_env_get_flags(s->env, &flags) == 0);
        check((flags & MDB_NOMETASYNC) != 0);
        check((flags & MDB_NOSYNC) == 0);
    }
    before = fp_store_committed(s);
    for (int i = 0; i < 40; i++) {
        ts[0] = 1732412400000 + i * 10000;
        v[0] = i;
        b.seq = (uint64_t)i + 1;
        b.received_ms = ts[0];
        check_int(fp_store_write(s, &b, 1, &res), 0);
        check_int(res.samples_written, 1);
        /* at most the newest commit is still waiting for its sync */
        check_int(fp_store_wait_durable(s, fp_store_committed(s) - 1, 0), 0);
    }
    check_int(fp_store_committed(s) - before, 40);
    check_int(fp_store_wait_durable(s, fp_store_committed(s), 5000), 0);
    check_int(fp_store_wait_durable(s, fp_store_committed(s) + 1, 10), -ETIMEDOUT);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(fp_store_read_range(r, select_one(r, NULL, 0), 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, 40);
    fp_store_reader_close(&r);
    /* the last write is not waited for: close syncs it */
    ts[0] += 10000;
    b.seq = 41;
    check_int(fp_store_write(s, &b, 1, &res), 0);
    fp_store_close(&s);

    fp_assert(fp_store_open(dir, FP_STORE_READONLY, NULL, &s, err, sizeof(err)) == 0);
    check_int(fp_store_committed(s), 0);
    check_int(fp_store_wait_durable(s, 1, 0), 0); /* nothing in the background here */
    fp_assert(fp_store_reader_open(s, &r) == 0);
    pts.n = 0;
    check_int(fp_store_read_range(r, select_one(r, NULL, 0), 0, INT64_MAX, collect, &pts), 0);
    check_int(pts.n, 41);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

/* A call that creates more series than one transaction may (a fleet's first batches) commits in
 * several, and every batch lands once, with dense ids. */
static void test_many_new_series(void)
{
    enum { DEVICES = 12, PER = 500 };
    struct fp_store *s = NULL;
    struct fp_store_reader *r = NULL;
    char err[256], dev[DEVICES][16];
    static char names[PER][16];
    static struct fp_series_in in[PER];
    const int64_t ts[] = {1732412345000};
    const double v[] = {1};
    struct fp_write_batch b[DEVICES];
    struct fp_write_result res[DEVICES];
    uint64_t before, *ids, max_id = 0;
    size_t nids;

    rm_store(dir);
    fp_assert(fp_store_open(dir, 0, NULL, &s, err, sizeof(err)) == 0);
    for (int i = 0; i < PER; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "m%d", i);
        in[i] = (struct fp_series_in){names[i], FP_SERIES_GAUGE, NULL, 0, ts, v, 1};
    }
    for (int d = 0; d < DEVICES; d++) {
        (void)snprintf(dev[d], sizeof(dev[d]), "d%02d", d);
        b[d] = (struct fp_write_batch){.device = dev[d], .epoch = 1, .seq = 1, .received_ms = 1,
                                       .series = in, .n_series = PER};
    }
    before = fp_store_committed(s);
    check_int(fp_store_write(s, b, DEVICES, res), 0);
    check(fp_store_committed(s) - before >= 2); /* 6000 new series: more than one commit */
    for (int d = 0; d < DEVICES; d++) {
        check_int(res[d].status, 0);
        check_int(res[d].samples_written, PER);
    }
    /* written again: every batch is a duplicate, nothing twice */
    check_int(fp_store_write(s, b, DEVICES, res), 0);
    for (int d = 0; d < DEVICES; d++)
        check_int(res[d].status, FP_STORE_E_DUP);
    fp_assert(fp_store_reader_open(s, &r) == 0);
    check_int(fp_store_select(r, NULL, 0, &ids, &nids), 0);
    check_int(nids, DEVICES * PER);
    for (size_t i = 0; i < nids; i++)
        max_id = ids[i] > max_id ? ids[i] : max_id;
    check_int(max_id, DEVICES * PER);
    free(ids);
    fp_store_reader_close(&r);
    fp_store_close(&s);
}

int main(void)
{
    (void)snprintf(dir, sizeof(dir), "/tmp/fp-test-store-XXXXXX");
    fp_assert(mkdtemp(dir) != NULL);
    test_roundtrip();
    test_device_timing();
    test_device_cache();
    test_background_sync();
    test_many_new_series();
    test_refusals();
    test_growth();
    test_abort_keeps_ids_consistent();
    test_foreign();
    rm_store(dir);
    (void)rmdir(dir);
    fp_test_end();
}
