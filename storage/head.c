/* The head: each device's newest samples in one LMDB value per device, appended to by every batch
 * and sealed into chunks (samples.c) when a series has a chunk's worth.
 *
 * Why: a batch touches every series of its device. Storing each series' new samples as a chunk
 * of its own puts one entry per series per batch at a scattered place in the day's B-tree, and
 * every such put copies a 4 KiB page at commit: on the standard workload that was ~1.1 KB of disk
 * writes and ~1.2 us of CPU per sample. Here a batch rewrites one value, its device's head, and a
 * series costs one chunk put per 480 samples.
 *
 * Layout: database "head", key = device id, value = version byte, entry count (u16), then per
 * series an entry: a header of varints (series id, value mode byte, samples, first timestamp
 * zigzagged, last timestamp as its distance from the first, the last timestamp delta and the
 * last scaled value zigzagged, stream length), then the stream. A tail carries one header per
 * grown series per batch, so the header is most of a tail: as fixed fields it was 49 bytes,
 * as varints it is about 20. The stream is appendable without decoding: per sample a zigzag
 * varint of the timestamp's delta of delta (one byte at a steady cadence) and the value, either
 * as a zigzag varint of the change of its scaled integer (mode d = 0..6: value = m / 10^d
 * exactly, the test chunk.c uses) or as 8 raw bytes (MODE_RAW: any other double). The first
 * sample's value is the varint of m itself.
 *
 * Base and tail: a batch adds a few bytes to each stream, but rewriting the whole value cost a
 * page copy of up to HEAD_MAX_BYTES per batch (bench/storage wrote ~300 bytes to disk per
 * sample). So the value in "head" (the base) is rewritten only when one of its entries is sealed
 * or re-encoded, or when the tail outgrows TAIL_MAX_BYTES; in between, a batch writes only the
 * bytes appended since, to database "head_tail" under the same key: the same layout, each entry
 * carrying its series' current header and the stream bytes past the base's (all of them for a
 * series the base lacks). A tail entry for a series the base holds always continues that base
 * entry (same first timestamp and mode): whatever would break that rewrites the base instead.
 * The tail stays small enough to live inside a B-tree page, so a commit of many devices dirties
 * shared leaf pages instead of one page run per device.
 *
 * Invariant: a series' head samples are newer than everything of it in chunks. Points at or
 * before the series' newest (out of order, duplicates) first seal the head entry and then take
 * the chunk path, which merges them; so readers never need to pick between head and chunks. */
#include <stdio.h>

#include "store-internal.h"

#define HEAD_VERSION 2
#define ENTRY_HEADER_MAX (10 + 1 + 5 + 10 * 4 + 5)
#define MODE_RAW 7
#define DECIMALS 6
/* Past this a device's head seals its largest entries: a batch rewrites the whole value, so it
 * is kept to a few pages. */
#define HEAD_MAX_BYTES 12288
/* Past this the tail is folded into the base. Under LMDB's inline-node limit for 4 KiB pages
 * (about 2 KiB with the key), so a tail never takes overflow pages of its own. */
#define TAIL_MAX_BYTES 1536
/* Timestamp steps beyond this end an entry, keeping delta-of-delta arithmetic in range. */
#define STEP_MAX (INT64_C(1) << 60)

/* --- decoding (readers and the sealer) ------------------------------------------------------ */

struct entry_view {
    uint64_t sid;
    uint8_t mode;
    uint32_t n;
    int64_t first_ts, last_ts, last_delta, last_m;
    const uint8_t *stream;
    size_t len;
};

/* Walks the entries of a stored head value. Returns false at the end or on a malformed value. */
static bool next_entry(const uint8_t *p, size_t len, size_t *pos, struct entry_view *e)
{
    if (*pos == 0) {
        if (len < 3 || p[0] != HEAD_VERSION)
            return false;
        *pos = 3;
    }
    {
        uint64_t sid, n, first, span, delta, m, slen;
        size_t q = *pos;

        if (!get_varint(p, len, &q, &sid) || q >= len)
            return false;
        e->mode = p[q++];
        if (!get_varint(p, len, &q, &n) || !get_varint(p, len, &q, &first) ||
            !get_varint(p, len, &q, &span) || !get_varint(p, len, &q, &delta) ||
            !get_varint(p, len, &q, &m) || !get_varint(p, len, &q, &slen))
            return false;
        if (n > UINT32_MAX || slen > len - q || e->mode > MODE_RAW)
            return false;
        e->sid = sid;
        e->n = (uint32_t)n;
        e->first_ts = unzz(first);
        e->last_ts = (int64_t)((uint64_t)e->first_ts + span);
        e->last_delta = unzz(delta);
        e->last_m = unzz(m);
        e->len = (size_t)slen;
        e->stream = p + q;
        *pos = q + (size_t)slen;
    }
    return true;
}

/* Calls fn for each sample of the stream with from <= ts <= to. Returns 0, fn's result, or
 * FP_STORE_E_FORMAT for a damaged stream. */
static int stream_decode(const struct entry_view *e, int64_t from, int64_t to,
                         int (*fn)(void *, int64_t, double), void *ud)
{
    size_t pos = 0;
    int64_t ts = e->first_ts, delta = 0, m = 0;

    for (uint32_t i = 0; i < e->n; i++) {
        uint64_t u;
        double v;
        int r;

        if (i > 0) {
            if (!get_varint(e->stream, e->len, &pos, &u))
                return FP_STORE_E_FORMAT;
            delta += unzz(u);
            ts += delta;
        }
        if (e->mode == MODE_RAW) {
            if (e->len - pos < 8)
                return FP_STORE_E_FORMAT;
            v = get_double(e->stream + pos);
            pos += 8;
        } else {
            if (!get_varint(e->stream, e->len, &pos, &u))
                return FP_STORE_E_FORMAT;
            m += unzz(u);
            v = fp_chunk_decimal_value(m, e->mode);
        }
        if (ts > to)
            break;
        if (ts >= from && (r = fn(ud, ts, v)) != 0)
            return r;
    }
    return 0;
}

/* --- the writer's working copy of one device's head ----------------------------------------- */

static void entry_view_of(const struct fp_head_entry *w, struct entry_view *e)
{
    *e = (struct entry_view){w->sid,          w->mode,   w->n,          w->first_ts, w->last_ts,
                             w->last_delta,   w->last_m, w->bytes.data, w->bytes.len};
}

/* The entry of series sid in a stored value (base or tail), if any. */
static bool find_in(const MDB_val *v, uint64_t sid, struct entry_view *ret)
{
    size_t pos = 0;

    if (v->mv_data == NULL)
        return false;
    while (next_entry(v->mv_data, v->mv_size, &pos, ret))
        if (ret->sid == sid)
            return true;
    return false;
}

/* Whether tail entry t continues base entry b (see the top of the file). */
static bool continues(const struct entry_view *b, const struct entry_view *t)
{
    return b->first_ts == t->first_ts && b->mode == t->mode && t->n > b->n;
}

/* A device's two stored values; a missing one reads as {0, NULL}. */
static int load_values(MDB_txn *txn, struct fp_store *s, const char *device, MDB_val *base,
                       MDB_val *tail)
{
    MDB_val k = {strlen(device), (void *)device};
    int rc = mdb_get(txn, s->head_db, &k, base);

    if (rc == MDB_NOTFOUND)
        *base = (MDB_val){0, NULL};
    else if (rc != 0)
        return rc;
    rc = mdb_get(txn, s->head_tail_db, &k, tail);
    if (rc == MDB_NOTFOUND)
        *tail = (MDB_val){0, NULL};
    else if (rc != 0)
        return rc;
    return 0;
}

/* The current entry of series sid from a device's base and tail: the tail's header, and its
 * bytes after the base's (joined in *scratch). Returns 0, FP_STORE_E_NOTFOUND, ENOMEM, or
 * FP_STORE_E_FORMAT when the tail does not continue the base (a damaged store). */
static int find_entry(const MDB_val *base, const MDB_val *tail, uint64_t sid,
                      struct entry_view *ret, struct buf *scratch)
{
    struct entry_view b, t;
    bool in_base = find_in(base, sid, &b), in_tail = find_in(tail, sid, &t);

    if (!in_tail) {
        *ret = b;
        return in_base ? 0 : FP_STORE_E_NOTFOUND;
    }
    *ret = t;
    if (!in_base)
        return 0;
    if (!continues(&b, &t))
        return FP_STORE_E_FORMAT;
    scratch->len = 0;
    if (buf_add(scratch, b.stream, b.len) < 0 || buf_add(scratch, t.stream, t.len) < 0)
        return ENOMEM;
    ret->stream = scratch->data;
    ret->len = scratch->len;
    return 0;
}

static struct fp_head_entry *entry_new(struct fp_head *h, uint64_t sid)
{
    struct fp_head_entry *e;

    if (h->n == h->cap) {
        size_t cap = h->cap == 0 ? 16 : h->cap * 2;
        struct fp_head_entry *ne = realloc(h->e, cap * sizeof(*ne));
        if (ne == NULL)
            return NULL;
        memset(ne + h->cap, 0, (cap - h->cap) * sizeof(*ne));
        h->e = ne;
        h->cap = cap;
    }
    e = &h->e[h->n++];
    e->sid = sid;
    e->n = 0;
    e->bytes.len = 0; /* the buffer of an earlier entry in this slot is reused */
    e->base_len = 0;
    return e;
}

/* Loads one stored value into the working copy: base entries as they are, tail entries onto
 * the base entry they continue (or as entries of their own). */
static int load_value(struct fp_head *h, const MDB_val *v, bool is_tail)
{
    struct entry_view ev;
    size_t pos = 0;

    while (next_entry(v->mv_data, v->mv_size, &pos, &ev)) {
        struct fp_head_entry *e = NULL;
        if (is_tail)
            for (size_t i = 0; i < h->n && e == NULL; i++)
                if (h->e[i].sid == ev.sid)
                    e = &h->e[i];
        if (e != NULL) {
            struct entry_view b;
            entry_view_of(e, &b);
            if (!continues(&b, &ev))
                return EINVAL; /* a damaged store: refuse the device's batches, drop nothing */
        } else if ((e = entry_new(h, ev.sid)) == NULL) {
            return ENOMEM;
        }
        e->mode = ev.mode;
        e->n = ev.n;
        e->first_ts = ev.first_ts;
        e->last_ts = ev.last_ts;
        e->last_delta = ev.last_delta;
        e->last_m = ev.last_m;
        if (buf_add(&e->bytes, ev.stream, ev.len) < 0)
            return ENOMEM;
        if (!is_tail)
            e->base_len = e->bytes.len;
    }
    return 0;
}

int fp_head_begin(MDB_txn *txn, struct fp_store *s, const char *device)
{
    struct fp_head *h = &s->head;
    MDB_val base, tail;
    int rc;

    h->n = 0;
    h->changed = false;
    h->base_dirty = false;
    h->device.len = 0;
    if (buf_str(&h->device, device) < 0)
        return ENOMEM;
    h->active = true;
    rc = load_values(txn, s, device, &base, &tail);
    if (rc == 0 && base.mv_data != NULL)
        rc = load_value(h, &base, false);
    if (rc == 0 && tail.mv_data != NULL)
        rc = load_value(h, &tail, true);
    return rc;
}

/* Writes e's header (the layout at the top of the file) for its stream bytes from offset from
 * on; returns its size, at most ENTRY_HEADER_MAX. p NULL: only sizes it. */
static size_t entry_header(uint8_t *p, const struct fp_head_entry *e, size_t from)
{
    uint8_t tmp[ENTRY_HEADER_MAX];
    uint8_t *w = p != NULL ? p : tmp;
    size_t k = put_varint(w, e->sid);

    w[k++] = e->mode;
    k += put_varint(w + k, e->n);
    k += put_varint(w + k, zz(e->first_ts));
    k += put_varint(w + k, (uint64_t)e->last_ts - (uint64_t)e->first_ts);
    k += put_varint(w + k, zz(e->last_delta));
    k += put_varint(w + k, zz(e->last_m));
    k += put_varint(w + k, e->bytes.len - from);
    return k;
}

static size_t head_bytes(const struct fp_head *h)
{
    size_t total = 3;
    for (size_t i = 0; i < h->n; i++)
        total += entry_header(NULL, &h->e[i], 0) + h->e[i].bytes.len;
    return total;
}

/* Whether e belongs in the tail: it grew since the base was written, or the base lacks it. */
static bool in_tail(const struct fp_head_entry *e)
{
    return e->base_len == 0 || e->bytes.len > e->base_len;
}

/* Bytes of the tail value, and its entries in *ret_n. */
static size_t tail_bytes(const struct fp_head *h, size_t *ret_n)
{
    size_t total = 3, n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const struct fp_head_entry *e = &h->e[i];
        if (!in_tail(e))
            continue;
        total += entry_header(NULL, e, e->base_len) + e->bytes.len - e->base_len;
        n++;
    }
    *ret_n = n;
    return total;
}

/* Writes the entries into a value of size bytes under key in db: all of each entry's stream, or
 * (tail) only the entries grown since the base and only their new bytes. */
static int put_value(MDB_txn *txn, MDB_dbi db, MDB_val *k, const struct fp_head *h, size_t n,
                     size_t size, bool tail)
{
    MDB_val v = {size, NULL};
    uint8_t *p;
    int rc = mdb_put(txn, db, k, &v, MDB_RESERVE);

    if (rc != 0)
        return rc;
    p = v.mv_data;
    p[0] = HEAD_VERSION;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)n;
    p += 3;
    for (size_t i = 0; i < h->n; i++) {
        const struct fp_head_entry *e = &h->e[i];
        size_t from = tail ? e->base_len : 0;
        if (tail && !in_tail(e))
            continue;
        p += entry_header(p, e, from);
        memcpy(p, e->bytes.data + from, e->bytes.len - from);
        p += e->bytes.len - from;
    }
    return 0;
}

static int del_value(MDB_txn *txn, MDB_dbi db, MDB_val *k)
{
    int rc = mdb_del(txn, db, k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int fp_head_end(MDB_txn *txn, struct fp_store *s)
{
    struct fp_head *h = &s->head;
    MDB_val k = {h->device.len - 1, h->device.data};
    size_t n_tail, t_bytes;
    int rc;

    if (!h->active)
        return 0;
    h->active = false;
    if (!h->changed)
        return 0;
    if (h->n == 0) {
        rc = del_value(txn, s->head_db, &k);
        return rc != 0 ? rc : del_value(txn, s->head_tail_db, &k);
    }
    t_bytes = tail_bytes(h, &n_tail);
    if (!h->base_dirty && t_bytes <= TAIL_MAX_BYTES)
        return n_tail == 0 ? del_value(txn, s->head_tail_db, &k)
                           : put_value(txn, s->head_tail_db, &k, h, n_tail, t_bytes, true);
    /* Fold the tail into a new base. */
    rc = put_value(txn, s->head_db, &k, h, h->n, head_bytes(h), false);
    if (rc == 0)
        rc = del_value(txn, s->head_tail_db, &k);
    for (size_t i = 0; rc == 0 && i < h->n; i++)
        h->e[i].base_len = h->e[i].bytes.len;
    return rc;
}

void fp_head_fini(struct fp_store *s)
{
    for (size_t i = 0; i < s->head.cap; i++)
        free(s->head.e[i].bytes.data);
    free(s->head.e);
    free(s->head.device.data);
    memset(&s->head, 0, sizeof(s->head));
}

struct seal_buf {
    int64_t *ts;
    double *v;
    size_t n;
};

static int seal_push(void *ud, int64_t ts, double v)
{
    struct seal_buf *b = ud;
    b->ts[b->n] = ts;
    b->v[b->n] = v;
    b->n++;
    return 0;
}

/* Decodes all of e into b (new arrays: free b->ts and b->v). Returns 0, ENOMEM, or EINVAL when
 * the stream does not decode (only a damaged store: the writer then refuses the device's batches
 * with that error rather than drop what the stream held). */
static int entry_decode(const struct fp_head_entry *e, struct seal_buf *b)
{
    struct entry_view ev;

    entry_view_of(e, &ev);
    *b = (struct seal_buf){malloc((e->n + 1) * sizeof(*b->ts)),
                           malloc((e->n + 1) * sizeof(*b->v)), 0};
    if (b->ts == NULL || b->v == NULL)
        return ENOMEM;
    return stream_decode(&ev, INT64_MIN, INT64_MAX, seal_push, b) == 0 ? 0 : EINVAL;
}

/* Moves entry i into chunks and out of the head. */
static int seal(MDB_txn *txn, struct fp_store *s, size_t i, bool whole)
{
    struct fp_head *h = &s->head;
    struct fp_head_entry *e = &h->e[i], tmp;
    struct seal_buf b;
    int rc;

    rc = entry_decode(e, &b);
    if (rc == 0 && b.n > 0)
        rc = fp_samples_store_sorted(txn, s, e->sid, b.ts, b.v, b.n, whole);
    /* The head held the series' newest sample; from now on "latest" does. */
    if (rc == 0 && b.n > 0)
        rc = fp_samples_put_latest(txn, s, e->sid, b.ts[b.n - 1], b.v[b.n - 1]);
    free(b.ts);
    free(b.v);
    if (rc != 0)
        return rc;
    if (e->base_len > 0)
        h->base_dirty = true;
    /* Swap with the last slot, keeping both buffers. */
    tmp = h->e[h->n - 1];
    h->e[h->n - 1] = *e;
    *e = tmp;
    h->n--;
    h->changed = true;
    return 0;
}

int fp_head_seal_series(MDB_txn *txn, struct fp_store *s, uint64_t sid)
{
    for (size_t i = 0; i < s->head.n; i++)
        if (s->head.e[i].sid == sid)
            return seal(txn, s, i, false);
    return 0;
}

static unsigned mode_for(double v, int64_t *ret_m)
{
    for (unsigned d = 0; d <= DECIMALS; d++)
        if (fp_chunk_decimal_fit(v, d, ret_m))
            return d;
    return MODE_RAW;
}

/* Appends one sample to e (fresh or not; a fresh one takes the narrowest mode v fits, or
 * force_mode when it is not -1). Returns 0; 1 when the entry is whole (its hour is over, or it
 * is full): seal it and start another; 2 when the value does not fit the entry's mode (widen
 * it); or -ENOMEM. */
static int entry_add(struct fp_head_entry *e, int64_t ts, double v, int force_mode)
{
    uint8_t tmp[24];
    size_t n = 0;
    int64_t m = 0;

    if (e->n == 0) {
        e->mode = (uint8_t)mode_for(v, &m);
        if (force_mode >= 0 && force_mode != e->mode) {
            e->mode = (uint8_t)force_mode;
            if (e->mode != MODE_RAW && !fp_chunk_decimal_fit(v, e->mode, &m))
                return 2;
        }
        e->first_ts = ts;
        e->last_delta = 0;
    } else {
        int64_t delta = ts - e->last_ts;
        /* Streams end on the hour, so a chunk is an hour of a series (or 480 samples of it):
         * a read of whole hours decodes nothing outside them. */
        if (e->n >= FP_CHUNK_MAX_SAMPLES || hour_of(ts) != hour_of(e->first_ts) ||
            delta > STEP_MAX)
            return 1;
        if (e->mode != MODE_RAW && !fp_chunk_decimal_fit(v, e->mode, &m))
            return 2;
        n = put_varint(tmp, zz(delta - e->last_delta));
        e->last_delta = delta;
    }
    if (e->mode == MODE_RAW) {
        put_double(tmp + n, v);
        n += 8;
    } else {
        n += put_varint(tmp + n, zz(e->n == 0 ? m : m - e->last_m));
        e->last_m = m;
    }
    if (buf_add(&e->bytes, tmp, n) < 0)
        return -ENOMEM;
    e->last_ts = ts;
    e->n++;
    return 0;
}

/* Re-encodes e in the narrowest mode that holds its samples and v as well (more decimals, or
 * raw doubles), then appends v: a series whose first value happened to be 40.0 and whose next
 * is 40.001 keeps one stream, not a one-sample chunk. Returns 0, or -ENOMEM. */
static int entry_widen(struct fp_head *h, struct fp_head_entry *e, int64_t ts, double v)
{
    struct seal_buf b;
    int64_t m;
    int mode = MODE_RAW, r;

    for (unsigned d = e->mode + 1u; d <= DECIMALS && mode == MODE_RAW; d++)
        if (fp_chunk_decimal_fit(v, d, &m))
            mode = (int)d;
    r = entry_decode(e, &b);
    for (;;) {
        if (r != 0)
            break;
        e->n = 0;
        e->bytes.len = 0;
        if (e->base_len > 0) /* the base holds the old encoding */
            h->base_dirty = true;
        e->base_len = 0;
        for (size_t i = 0; i < b.n && r == 0; i++)
            r = entry_add(e, b.ts[i], b.v[i], mode);
        if (r == 0)
            r = entry_add(e, ts, v, mode);
        if (r != 2 || mode == MODE_RAW)
            break;
        mode = MODE_RAW; /* an old value past 2^53 once scaled: raw doubles take anything */
        r = 0;
    }
    free(b.ts);
    free(b.v);
    return r == 0 ? 0 : r == EINVAL ? -EINVAL : -ENOMEM;
}

int fp_head_append(MDB_txn *txn, struct fp_store *s, uint64_t sid, const int64_t *ts,
                   const double *values, size_t stride, size_t n)
{
    struct fp_head *h = &s->head;
    size_t idx = SIZE_MAX;
    int rc;

    for (size_t i = 0; i < h->n; i++)
        if (h->e[i].sid == sid)
            idx = i;
    h->changed = true;
    for (size_t i = 0; i < n; i++) {
        int64_t t = *(const int64_t *)(const void *)((const char *)ts + i * stride);
        double v = *(const double *)(const void *)((const char *)values + i * stride);
        if (idx == SIZE_MAX) {
            if (entry_new(h, sid) == NULL)
                return ENOMEM;
            idx = h->n - 1;
        }
        rc = entry_add(&h->e[idx], t, v, -1);
        if (rc == 2)
            rc = entry_widen(h, &h->e[idx], t, v);
        if (rc == 1) {
            rc = seal(txn, s, idx, true);
            if (rc != 0)
                return rc;
            if (entry_new(h, sid) == NULL)
                return ENOMEM;
            idx = h->n - 1;
            rc = entry_add(&h->e[idx], t, v, -1); /* a fresh entry takes any sample */
        }
        if (rc < 0)
            return -rc;
    }
    /* Keep the value a few pages: seal the biggest entries. */
    while (head_bytes(h) > HEAD_MAX_BYTES && h->n > 0) {
        size_t big = 0;
        for (size_t i = 1; i < h->n; i++)
            if (h->e[i].bytes.len > h->e[big].bytes.len)
                big = i;
        rc = seal(txn, s, big, false);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Whether a device holds an entry last written before cutoff: its tail's entries, and its base's
 * entries the tail does not continue. */
static bool has_old(const MDB_val *base, const MDB_val *tail, int64_t cutoff)
{
    struct entry_view ev, t;
    size_t pos = 0;

    if (cutoff == INT64_MAX)
        return true;
    while (tail->mv_data != NULL && next_entry(tail->mv_data, tail->mv_size, &pos, &ev))
        if (ev.last_ts < cutoff)
            return true;
    pos = 0;
    while (base->mv_data != NULL && next_entry(base->mv_data, base->mv_size, &pos, &ev))
        if (ev.last_ts < cutoff && !find_in(tail, ev.sid, &t))
            return true;
    return false;
}

/* Device ids of every stored head, or of those holding an entry last written before cutoff. A
 * device may have a base, a tail, or both: every base is listed from its key, then the tails
 * without a base. */
static int list_heads(MDB_txn *txn, struct fp_store *s, int64_t cutoff, struct buf *names,
                      size_t *ret_n)
{
    MDB_dbi dbs[2] = {s->head_db, s->head_tail_db};
    int rc = 0;

    *ret_n = 0;
    for (int d = 0; d < 2 && rc == 0; d++) {
        MDB_cursor *cur;
        MDB_val k, v, other;
        rc = mdb_cursor_open(txn, dbs[d], &cur);
        if (rc != 0)
            return rc;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            static const MDB_val none = {0, NULL};
            int r = mdb_get(txn, dbs[1 - d], &k, &other);
            if (r != 0 && r != MDB_NOTFOUND) {
                rc = r;
                break;
            }
            if (d == 1 && r == 0)
                continue; /* listed with its base */
            /* d 0: v is the base, other the tail if any; d 1: a tail alone. */
            const MDB_val *base = d == 0 ? &v : &none;
            const MDB_val *tail = d == 1 ? &v : r == 0 ? &other : &none;
            if (!has_old(base, tail, cutoff))
                continue;
            if (buf_add(names, k.mv_data, k.mv_size) < 0 || buf_add(names, "", 1) < 0) {
                rc = ENOMEM;
                break;
            }
            (*ret_n)++;
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return rc;
}

/* Seals the entries last written before cutoff (INT64_MAX: all) of every device. */
static int seal_where(MDB_txn *txn, struct fp_store *s, int64_t cutoff)
{
    struct buf names = {0};
    size_t n = 0;
    const char *p;
    int rc;

    rc = list_heads(txn, s, cutoff, &names, &n);
    p = (const char *)names.data;
    for (size_t i = 0; rc == 0 && i < n; i++, p += strlen(p) + 1) {
        rc = fp_head_begin(txn, s, p);
        for (size_t j = 0; rc == 0 && j < s->head.n;) {
            if (s->head.e[j].last_ts < cutoff || cutoff == INT64_MAX)
                rc = seal(txn, s, j, false); /* moves the last entry into j */
            else
                j++;
        }
        if (rc == 0)
            rc = fp_head_end(txn, s);
        else
            s->head.active = false;
    }
    free(names.data);
    return rc;
}

int fp_head_seal_all(MDB_txn *txn, struct fp_store *s)
{
    return seal_where(txn, s, INT64_MAX);
}

int fp_head_seal_older(MDB_txn *txn, struct fp_store *s, int64_t cutoff)
{
    return seal_where(txn, s, cutoff);
}

/* --- reading -------------------------------------------------------------------------------- */

/* The device id of series id: the value of its "device" label, pointing into the map. */
static const char *series_device(MDB_txn *txn, struct fp_store *s, uint64_t id)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    const char *p, *end;

    put_u64(kb, id);
    if (mdb_get(txn, s->series_id, &k, &v) != 0 || v.mv_size < 2)
        return NULL;
    p = (const char *)v.mv_data + 1;
    end = (const char *)v.mv_data + v.mv_size;
    if (end[-1] != '\0')
        return NULL;
    p += strlen(p) + 1; /* the metric */
    while (p < end) {
        const char *name = p, *value;
        p += strlen(p) + 1;
        if (p >= end)
            return NULL;
        value = p;
        p += strlen(p) + 1;
        if (strcmp(name, "device") == 0)
            return value;
    }
    return NULL;
}

int fp_head_read(MDB_txn *txn, struct fp_store *s, bool writer, uint64_t id, const char *device,
                 int64_t from, int64_t to, int (*fn)(void *, int64_t, double), void *ud)
{
    MDB_val base, tail;
    struct entry_view ev;
    struct buf scratch = {0};
    int rc;

    if (device == NULL)
        device = series_device(txn, s, id);
    if (device == NULL)
        return 0;
    if (writer && s->head.active && strcmp(device, (const char *)s->head.device.data) == 0) {
        for (size_t i = 0; i < s->head.n; i++) {
            if (s->head.e[i].sid != id)
                continue;
            entry_view_of(&s->head.e[i], &ev);
            return stream_decode(&ev, from, to, fn, ud);
        }
        return 0;
    }
    rc = load_values(txn, s, device, &base, &tail);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    rc = find_entry(&base, &tail, id, &ev, &scratch);
    if (rc == ENOMEM) {
        rc = -ENOMEM;
    } else if (rc != 0) {
        rc = 0; /* no entry, or a damaged head: reads as empty */
    } else if (ev.last_ts >= from && ev.first_ts <= to) {
        rc = stream_decode(&ev, from, to, fn, ud);
        if (rc == FP_STORE_E_FORMAT)
            rc = 0;
    }
    free(scratch.data);
    return rc;
}

void fp_head_max_ts(const struct fp_store *s, uint64_t sid, int64_t *max_ts)
{
    if (!s->head.active)
        return;
    for (size_t i = 0; i < s->head.n; i++)
        if (s->head.e[i].sid == sid && s->head.e[i].n > 0 && s->head.e[i].last_ts > *max_ts)
            *max_ts = s->head.e[i].last_ts;
}

/* The value of an entry's last sample, from its header (scaled) or its stream's last 8 bytes. */
static bool last_value(const struct entry_view *e, double *ret)
{
    if (e->n == 0)
        return false;
    if (e->mode == MODE_RAW) {
        if (e->len < 8)
            return false;
        *ret = get_double(e->stream + e->len - 8);
    } else {
        *ret = fp_chunk_decimal_value(e->last_m, e->mode);
    }
    return true;
}

int fp_head_latest(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t *ret_ts, double *ret_v)
{
    const char *device = series_device(txn, s, id);
    MDB_val base, tail;
    struct entry_view ev;
    int rc;

    if (device == NULL)
        return FP_STORE_E_NOTFOUND;
    rc = load_values(txn, s, device, &base, &tail);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    /* The tail's header has the newest sample (and a raw one ends its bytes): no join needed. */
    if (find_in(&tail, id, &ev) || find_in(&base, id, &ev))
        rc = last_value(&ev, ret_v) ? 0 : FP_STORE_E_NOTFOUND;
    else
        rc = FP_STORE_E_NOTFOUND;
    if (rc == 0)
        *ret_ts = ev.last_ts;
    return rc;
}
