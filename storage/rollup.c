/* One-hour rollups: per series and hour, count, sum, min, max and last of the samples, and a
 * quantile sketch (sketch.h), kept up to date by the writer so long-range and fleet-wide reads
 * (p95 over a day of 1000 devices) merge a few hundred bytes per series and hour instead of
 * decoding every sample.
 *
 * Layout: database "rollup_1h", key (hour start, series id), big-endian, so the hours sort in
 * time and retention deletes from the front of one B-tree without scanning. Value: version byte
 * (top bit: complete, the series had moved past the hour), the newest sample included
 * ("through") as a varint of its offset into the hour, the count as a varint, then (when the
 * count is not 0) a mode byte and min, max, last and sum, then the sketch's own encoding. Mode
 * d = 0..6: min, max and last are exact decimals with d places (the test chunk.c uses), stored
 * as the zigzag varint of min's scaled integer and varints of max - min and last - min; bit 3
 * set: sum too, as a zigzag varint; otherwise sum is a raw double. Mode 7: all four raw. On the
 * standard workload this takes a record's fixed part from 43 to about 20 bytes. NaN samples
 * count nowhere (a NaN marks staleness); +-Inf count in count/sum/min/max but not in the
 * sketch, which cannot hold them.
 *
 * The writer computes an hour from its raw samples (chunks and head, in the same transaction)
 * and stores it when the hour closes: when a series' samples move on to a later hour, when a
 * write touches an hour that is already closed (out of order, or the same timestamp again with
 * another value), and on fp_store_compact for the open hour. Nothing but the open hour's start
 * is kept in memory per series (a sketch per series would cost the collector ~1 KiB each), and
 * after a restart or an aborted transaction the hour of the series' newest sample stands in
 * for it. A record carries the newest sample it includes ("through"); a reader uses the record
 * for the samples up to it and reads the rest of the hour raw, so a record that is behind
 * (the open hour after a compact) is never wrong, and a record always equals what raw holds.
 */
#include <math.h>

#include "sketch.h"
#include "store-internal.h"

#define RECORD_VERSION 2
#define RECORD_HEAD_MAX (1 + 10 + 10 + 1 + 4 * 10) /* version .. sum, every field at its widest */
#define MODE_RAW 7
#define MODE_SUM_SCALED 0x08
/* Oldest records deleted per retention pass: bounded work per write transaction. */
#define RETENTION_BATCH 20000


/* --- record encoding ------------------------------------------------------------------------ */

/* Reads a scaled integer (zigzag varint) of decimal mode d into *ret. */
static bool get_scaled(const uint8_t *p, size_t len, size_t *pos, unsigned d, double *ret)
{
    uint64_t u;
    if (!get_varint(p, len, pos, &u))
        return false;
    *ret = fp_chunk_decimal_value(unzz(u), d);
    return true;
}

/* Parses a stored record of the hour starting at hour_ms. Returns 0 or FP_STORE_E_FORMAT. */
static int rollup_decode(const uint8_t *p, size_t len, int64_t hour_ms, struct fp_rollup *ret)
{
    size_t pos = 1;
    uint64_t through, count, dmax, dlast, u;
    double sum = NAN, min = NAN, max = NAN, last = NAN;

    if (len < 3 || (p[0] & 0x7f) != RECORD_VERSION)
        return FP_STORE_E_FORMAT;
    if (!get_varint(p, len, &pos, &through) || through >= (uint64_t)HOUR_MS ||
        !get_varint(p, len, &pos, &count))
        return FP_STORE_E_FORMAT;
    if (count > 0) {
        unsigned mode, d;
        if (pos >= len)
            return FP_STORE_E_FORMAT;
        mode = p[pos++];
        d = mode & 7;
        if (mode & ~(unsigned)(7 | MODE_SUM_SCALED) || (d == MODE_RAW && (mode & MODE_SUM_SCALED)))
            return FP_STORE_E_FORMAT;
        if (d == MODE_RAW) {
            if (len - pos < 32)
                return FP_STORE_E_FORMAT;
            min = get_double(p + pos);
            max = get_double(p + pos + 8);
            last = get_double(p + pos + 16);
            pos += 24;
        } else {
            int64_t m;
            if (!get_varint(p, len, &pos, &u) || !get_varint(p, len, &pos, &dmax) ||
                !get_varint(p, len, &pos, &dlast))
                return FP_STORE_E_FORMAT;
            m = unzz(u);
            /* Unsigned sums: a damaged record must not overflow a signed one. */
            min = fp_chunk_decimal_value(m, d);
            max = fp_chunk_decimal_value((int64_t)((uint64_t)m + dmax), d);
            last = fp_chunk_decimal_value((int64_t)((uint64_t)m + dlast), d);
        }
        if (mode & MODE_SUM_SCALED) {
            if (!get_scaled(p, len, &pos, d, &sum))
                return FP_STORE_E_FORMAT;
        } else {
            if (len - pos < 8)
                return FP_STORE_E_FORMAT;
            sum = get_double(p + pos);
            pos += 8;
        }
    }
    *ret = (struct fp_rollup){
        .start_ms = hour_ms,
        .through_ms = hour_ms + (int64_t)through,
        .complete = (p[0] & 0x80) != 0,
        .count = count,
        .sum = sum,
        .min = min,
        .max = max,
        .last = last,
        .sketch = p + pos,
        .sketch_len = len - pos,
    };
    return 0;
}

/* --- computing an hour from raw ------------------------------------------------------------- */

/* One hour's summary while it is being computed. */
struct acc {
    uint64_t count; /* non-NaN samples */
    double sum, min, max, last;
    int64_t through; /* newest sample; INT64_MIN none */
    fp_sketch *sketch;
};

static int acc_add(void *userdata, int64_t ts, double v)
{
    struct acc *a = userdata;
    int r;

    if (ts > a->through)
        a->through = ts;
    if (isnan(v))
        return 0;
    a->count++;
    a->sum += v;
    if (v < a->min)
        a->min = v;
    if (v > a->max)
        a->max = v;
    a->last = v;
    if (isfinite(v)) {
        r = fp_sketch_add(a->sketch, v);
        if (r < 0)
            return r == -ENOMEM ? -ENOMEM : -EOVERFLOW;
    }
    return 0;
}

/* Writes the mode byte and min, max, last and sum of a non-empty hour (layout at the top of the
 * file); returns the bytes written, at most 1 + 4 * 10. */
static size_t put_values(uint8_t *p, const struct acc *a)
{
    int64_t mmin = 0, mmax = 0, mlast = 0, msum = 0;
    unsigned d = 0;
    size_t n = 1;

    while (d <= 6 && !(fp_chunk_decimal_fit(a->min, d, &mmin) &&
                       fp_chunk_decimal_fit(a->max, d, &mmax) &&
                       fp_chunk_decimal_fit(a->last, d, &mlast)))
        d++;
    if (d > 6 || mmax < mmin || mlast < mmin) {
        p[0] = MODE_RAW;
        put_double(p + 1, a->min);
        put_double(p + 9, a->max);
        put_double(p + 17, a->last);
        put_double(p + 25, a->sum);
        return 33;
    }
    p[0] = (uint8_t)d;
    n += put_varint(p + n, zz(mmin));
    n += put_varint(p + n, (uint64_t)(mmax - mmin));
    n += put_varint(p + n, (uint64_t)(mlast - mmin));
    if (fp_chunk_decimal_fit(a->sum, d, &msum)) {
        p[0] |= MODE_SUM_SCALED;
        n += put_varint(p + n, zz(msum));
    } else {
        put_double(p + n, a->sum);
        n += 8;
    }
    return n;
}

static int acc_store(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t hour,
                     const struct acc *a, bool complete)
{
    uint8_t kb[16], head[RECORD_HEAD_MAX], *vb;
    MDB_val k = {16, kb}, v;
    size_t hl = 1, sk_len = 0;
    int rc;

    put_ts(kb, hour);
    put_u64(kb + 8, id);
    if (a->through == INT64_MIN) {
        /* No sample in the hour (all of them moved out by a merge): no record. */
        rc = mdb_del(txn, s->rollup_1h, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    head[0] = RECORD_VERSION | (complete ? 0x80 : 0);
    hl += put_varint(head + hl, (uint64_t)(a->through - hour));
    hl += put_varint(head + hl, a->count);
    if (a->count > 0)
        hl += put_values(head + hl, a);
    (void)fp_sketch_encode(a->sketch, NULL, 0, &sk_len);
    v.mv_size = hl + sk_len;
    /* Reserve the value in place: no copy of the sketch through a buffer of ours. */
    rc = mdb_put(txn, s->rollup_1h, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    vb = v.mv_data;
    memcpy(vb, head, hl);
    return fp_sketch_encode(a->sketch, vb + hl, sk_len, &sk_len) < 0 ? EINVAL : 0;
}

/* Computes the record of series id's hour from its samples as this transaction sees them
 * (chunks and head) and stores it; complete when the series has moved past the hour (a later
 * sample in it would recompute it). Returns an LMDB rc or errno. */
static int hour_recompute(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t hour,
                          bool complete)
{
    struct acc a = {0, 0, INFINITY, -INFINITY, NAN, INT64_MIN, s->rollup_sketch};
    int rc;

    if (a.sketch == NULL) {
        if (fp_sketch_new(&s->rollup_sketch) < 0)
            return ENOMEM;
        a.sketch = s->rollup_sketch;
    }
    fp_sketch_reset(a.sketch);
    rc = fp_samples_read_txn(txn, s, id, hour, hour + HOUR_MS - 1, acc_add, &a);
    if (rc < 0)
        return -rc;
    return acc_store(txn, s, id, hour, &a, complete);
}

/* --- the writer's hook ---------------------------------------------------------------------- */

#define TS(i) (*(const int64_t *)(const void *)((const char *)ts + (i) * stride))

int fp_rollup_update(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t *open_hour,
                     int64_t max_ts_before, const int64_t *ts, size_t stride, size_t n)
{
    /* After a restart memory does not know the open hour: the newest sample's stands in. */
    int64_t open = *open_hour != INT64_MIN ? *open_hour
                   : max_ts_before != INT64_MIN ? hour_of(max_ts_before) : INT64_MIN;
    int64_t final_open, prev = INT64_MIN;
    bool open_done = false;
    int rc = 0;

    if (n == 0)
        return 0;
    final_open = hour_of(TS(n - 1)) > open ? hour_of(TS(n - 1)) : open;
    /* Every hour this write touched, and the hour that was open, is computed from raw and
     * stored, except the one open after it: that is done when it closes (or on compact). Points
     * are sorted, so each hour comes up once. */
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        int64_t h;
        if (i < n) {
            h = hour_of(TS(i));
        } else if (!open_done && open != INT64_MIN) {
            h = open;
        } else {
            break;
        }
        if (h == open)
            open_done = true;
        if (h == prev || h == final_open)
            continue;
        prev = h;
        rc = hour_recompute(txn, s, id, h, h < final_open);
    }
    if (rc == 0)
        *open_hour = final_open;
    return rc;
}

#undef TS

int fp_rollup_flush(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t open_hour)
{
    return open_hour == INT64_MIN ? 0 : hour_recompute(txn, s, id, open_hour, false);
}

void fp_rollup_fini(struct fp_store *s)
{
    fp_sketch_destroy(&s->rollup_sketch);
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
        if (rollup_decode(v.mv_data, v.mv_size, h, &ro) != 0)
            continue; /* a damaged record: the caller reads that hour raw */
        rc = fn(userdata, &ro);
        if (rc != 0)
            return rc;
        if (h > INT64_MAX - HOUR_MS)
            break;
    }
    return 0;
}
