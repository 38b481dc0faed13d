/* One-hour rollups: per series and hour, count, sum, min, max and last of the samples, and a
 * quantile sketch (sketch.h), kept up to date by the writer so long-range and fleet-wide reads
 * (p95 over a day of 1000 devices) merge a few hundred bytes per series and hour instead of
 * decoding every sample.
 *
 * Layout: database "rollup_1h", key (hour start, series id), big-endian, so the hours sort in
 * time and retention deletes from the front of one B-tree without scanning. Value: version byte,
 * the newest sample included ("through"), the count as a varint, sum, min, max and last as
 * doubles, then the sketch's own encoding. NaN samples count nowhere (a NaN marks staleness);
 * +-Inf count in count/sum/min/max but not in the sketch, which cannot hold them.
 *
 * The writer keeps the newest hour of each series in memory and stores it (a) when the series
 * moves on to a later hour, (b) after FLUSH_SAMPLES new samples, so a stored hour lags memory by
 * at most ten minutes at a 10 s cadence, and (c) on fp_store_compact. A reader uses a record for
 * the samples up to its "through" and reads the rest of that hour raw. Memory is never trusted
 * across trouble: after an aborted transaction, a restart, or a sample that lands at or before
 * the series' newest (out of order, or a duplicate whose value may differ), the hour is rebuilt
 * from the raw samples in the same transaction, so a record always equals what raw holds. */
#include <math.h>

#include "sketch.h"
#include "store-internal.h"

#define HOUR_MS INT64_C(3600000)
#define RECORD_VERSION 1
#define RECORD_FIXED (1 + 8 + 8 * 4) /* version, through, sum/min/max/last; plus the count */
/* Samples added in memory before the record is rewritten: 10 minutes at 10 s. */
#define FLUSH_SAMPLES 60
/* Oldest records deleted per retention pass: bounded work per write transaction. */
#define RETENTION_BATCH 20000

static int64_t hour_of(int64_t ts_ms)
{
    return (ts_ms / HOUR_MS - (ts_ms % HOUR_MS < 0)) * HOUR_MS;
}

/* --- record encoding ------------------------------------------------------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return 0;
        }
    }
    return -1;
}

int fp_rollup_decode(const uint8_t *p, size_t len, int64_t hour_ms, struct fp_rollup *ret)
{
    size_t pos = 9;
    uint64_t count;

    if (len < RECORD_FIXED + 1 || p[0] != RECORD_VERSION)
        return FP_STORE_E_FORMAT;
    if (get_varint(p, len, &pos, &count) != 0 || len - pos < 32)
        return FP_STORE_E_FORMAT;
    *ret = (struct fp_rollup){
        .start_ms = hour_ms,
        .through_ms = get_ts(p + 1),
        .count = count,
        .sum = get_double(p + pos),
        .min = get_double(p + pos + 8),
        .max = get_double(p + pos + 16),
        .last = get_double(p + pos + 24),
        .sketch = p + pos + 32,
        .sketch_len = len - pos - 32,
    };
    return 0;
}

/* --- the open hour in memory ---------------------------------------------------------------- */

static void open_reset(struct fp_rollup_open *o, int64_t hour)
{
    o->hour = hour;
    o->stale = false;
    o->unflushed = 0;
    o->count = 0;
    o->sum = 0;
    o->min = INFINITY;
    o->max = -INFINITY;
    o->last = NAN;
    o->through = INT64_MIN;
    if (o->sketch != NULL)
        fp_sketch_reset(o->sketch);
}

static int open_add(struct fp_rollup_open *o, int64_t ts, double v)
{
    int r;

    if (ts > o->through)
        o->through = ts;
    o->unflushed++;
    if (isnan(v))
        return 0;
    if (o->sketch == NULL) {
        r = fp_sketch_new(&o->sketch);
        if (r < 0)
            return ENOMEM;
    }
    o->count++;
    o->sum += v;
    if (v < o->min)
        o->min = v;
    if (v > o->max)
        o->max = v;
    o->last = v;
    if (isfinite(v)) {
        r = fp_sketch_add(o->sketch, v);
        if (r < 0)
            return r == -ENOMEM ? ENOMEM : EOVERFLOW;
    }
    return 0;
}

static int open_add_cb(void *userdata, int64_t ts, double v)
{
    return open_add(userdata, ts, v);
}

/* Refills o with hour's samples as the transaction sees them. Returns an LMDB rc or errno. */
static int open_rebuild(MDB_txn *txn, struct fp_store *s, uint64_t id, struct fp_rollup_open *o,
                        int64_t hour)
{
    int rc;

    open_reset(o, hour);
    rc = fp_samples_read_txn(txn, s, id, hour, hour + HOUR_MS - 1, open_add_cb, o);
    if (rc < 0)
        return -rc;
    return rc;
}

static int open_store(MDB_txn *txn, struct fp_store *s, uint64_t id, struct fp_rollup_open *o)
{
    uint8_t kb[16], head[RECORD_FIXED + 10], *vb;
    MDB_val k = {16, kb}, v;
    size_t hl = 1 + 8, sk_len = 0;
    int rc;

    put_ts(kb, o->hour);
    put_u64(kb + 8, id);
    if (o->through == INT64_MIN) {
        /* Every sample of the hour is gone (cannot happen today: nothing deletes single samples). */
        rc = mdb_del(txn, s->rollup_1h, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    head[0] = RECORD_VERSION;
    put_ts(head + 1, o->through);
    hl += put_varint(head + hl, o->count);
    put_double(head + hl, o->count > 0 ? o->sum : NAN);
    put_double(head + hl + 8, o->count > 0 ? o->min : NAN);
    put_double(head + hl + 16, o->count > 0 ? o->max : NAN);
    put_double(head + hl + 24, o->last);
    hl += 32;
    if (o->sketch != NULL)
        (void)fp_sketch_encode(o->sketch, NULL, 0, &sk_len);
    else
        sk_len = 0;
    v.mv_size = hl + (sk_len > 0 ? sk_len : 1);
    /* Reserve the value in place: no copy of the sketch through a buffer of ours. */
    rc = mdb_put(txn, s->rollup_1h, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    vb = v.mv_data;
    memcpy(vb, head, hl);
    if (sk_len > 0) {
        if (fp_sketch_encode(o->sketch, vb + hl, sk_len, &sk_len) < 0)
            return EINVAL;
    } else {
        vb[hl] = 0; /* an empty sketch's encoding: no parts */
    }
    o->unflushed = 0;
    return 0;
}

/* Recomputes the stored record of a closed hour from raw. */
static int hour_recompute(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t hour)
{
    struct fp_rollup_open tmp = {0};
    int rc;

    rc = open_rebuild(txn, s, id, &tmp, hour);
    if (rc == 0)
        rc = open_store(txn, s, id, &tmp);
    fp_sketch_destroy(&tmp.sketch);
    return rc;
}

/* --- the writer's hook ---------------------------------------------------------------------- */

#define TS(i) (*(const int64_t *)(const void *)((const char *)ts + (i) * stride))
#define VAL(i) (*(const double *)(const void *)((const char *)values + (i) * stride))

int fp_rollup_update(MDB_txn *txn, struct fp_store *s, uint64_t id, struct fp_rollup_open *o,
                     int64_t max_ts_before, const int64_t *ts, const double *values,
                     size_t stride, size_t n)
{
    int64_t dirty[8];
    size_t n_dirty = 0;
    bool dirty_overflow = false;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t h = hour_of(TS(i));
        if (max_ts_before != INT64_MIN && TS(i) <= max_ts_before) {
            /* Out of order, or the same timestamp again: memory cannot subtract what it
             * replaced, so the hour is recomputed from raw below. */
            bool seen = false;
            for (size_t d = 0; d < n_dirty; d++)
                seen = seen || dirty[d] == h;
            if (!seen && n_dirty < sizeof(dirty) / sizeof(dirty[0]))
                dirty[n_dirty++] = h;
            else if (!seen)
                dirty_overflow = true;
            continue;
        }
        if (o->hour != h) {
            /* First sample since a restart, in a later hour than the series' newest: that
             * hour's record may miss what memory held when the process stopped. */
            if (o->hour == INT64_MIN && max_ts_before != INT64_MIN && hour_of(max_ts_before) < h)
                rc = hour_recompute(txn, s, id, hour_of(max_ts_before));
            else if (o->hour != INT64_MIN && !o->stale && o->unflushed > 0)
                rc = open_store(txn, s, id, o);
            else if (o->hour != INT64_MIN && o->stale)
                rc = hour_recompute(txn, s, id, o->hour);
            if (rc != 0)
                break;
            open_reset(o, h);
            /* After a restart (or an abort) the series may already hold samples of this hour
             * that memory has not seen. */
            if (max_ts_before != INT64_MIN && max_ts_before >= h)
                o->stale = true;
        }
        if (!o->stale)
            rc = open_add(o, TS(i), VAL(i));
    }
    if (rc != 0)
        return rc;
    if (dirty_overflow) {
        /* Samples scattered over many earlier hours: recompute each hour they touched. */
        int64_t prev = INT64_MIN;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int64_t h = hour_of(TS(i));
            if (TS(i) > max_ts_before || h == prev)
                continue;
            prev = h;
            if (h == o->hour)
                o->stale = true;
            else
                rc = hour_recompute(txn, s, id, h);
        }
    } else {
        for (size_t d = 0; rc == 0 && d < n_dirty; d++) {
            if (dirty[d] == o->hour)
                o->stale = true;
            else
                rc = hour_recompute(txn, s, id, dirty[d]);
        }
    }
    if (rc == 0 && o->hour != INT64_MIN && o->stale) {
        rc = open_rebuild(txn, s, id, o, o->hour);
        if (rc == 0)
            rc = open_store(txn, s, id, o);
    }
    if (rc == 0 && o->hour != INT64_MIN && o->unflushed >= FLUSH_SAMPLES)
        rc = open_store(txn, s, id, o);
    return rc;
}

#undef TS
#undef VAL

int fp_rollup_flush(MDB_txn *txn, struct fp_store *s, uint64_t id, struct fp_rollup_open *o)
{
    int rc;

    if (o->hour == INT64_MIN)
        return 0;
    if (o->stale) {
        rc = open_rebuild(txn, s, id, o, o->hour);
        return rc == 0 ? open_store(txn, s, id, o) : rc;
    }
    return o->unflushed > 0 ? open_store(txn, s, id, o) : 0;
}

void fp_rollup_open_fini(struct fp_rollup_open *o)
{
    fp_sketch_destroy(&o->sketch);
}

int fp_rollup_retention(MDB_txn *txn, struct fp_store *s, int64_t now_ms)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t cutoff;
    int rc, n = 0;

    if (s->opts.rollup_retention_ms <= 0)
        return 0;
    cutoff = hour_of(now_ms - s->opts.rollup_retention_ms);
    rc = mdb_cursor_open(txn, s->rollup_1h, &cur);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < RETENTION_BATCH;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || get_ts(k.mv_data) >= cutoff)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* --- reading -------------------------------------------------------------------------------- */

int fp_store_read_rollups(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                          fp_rollup_fn fn, void *userdata)
{
    int64_t h;

    if (from_ms >= to_ms)
        return 0;
    for (h = hour_of(from_ms); h < to_ms; h += HOUR_MS) {
        uint8_t kb[16];
        MDB_val k = {16, kb}, v;
        struct fp_rollup ro;
        int rc;

        put_ts(kb, h);
        put_u64(kb + 8, id);
        rc = mdb_get(r->txn, r->store->rollup_1h, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return fp_store_map_lmdb(rc);
        if (fp_rollup_decode(v.mv_data, v.mv_size, h, &ro) != 0)
            continue; /* a damaged record: the caller reads that hour raw */
        rc = fn(userdata, &ro);
        if (rc != 0)
            return rc;
        if (h > INT64_MAX - HOUR_MS)
            break;
    }
    return 0;
}
