/* Chunked, time-partitioned sample storage: how samples reach disk and come back.
 *
 * Samples live in storage/chunk.c chunks, one LMDB entry per chunk, in one named database per UTC
 * day ("raw.<day number>"), keyed by (series id, first timestamp), big-endian; the value is the
 * chunk's last timestamp (8 bytes) followed by the chunk. A chunk never crosses a day, spans at
 * most CHUNK_SPAN_MAX_MS and holds at most FP_CHUNK_MAX_SAMPLES samples. Retention drops whole
 * day databases, so it never rewrites anything and never stalls the writer for long.
 *
 * New samples first go to their device's head (head.c), one value per device rewritten by each
 * batch; a series' head stream becomes a chunk here (fp_samples_store_sorted) when it is full.
 * Chunks that come out smaller (a stream sealed early) are counted per series and, once a full
 * chunk's worth has piled up, merged into full ones in the same transaction;
 * fp_samples_compact_all does the rest on demand.
 *
 * Out of order: samples up to ooo_window_ms behind the series' newest are merged into the chunks
 * they overlap (store_merged), so chunks of a series never overlap and the later write wins.
 * Older samples, and samples past the retention, are refused and counted. Readers take the
 * chunks, then the head, whose samples are newer than any chunk's. */
#include <inttypes.h>
#include <stdio.h>

#include "store-internal.h"

#define SMALL_CHUNK (FP_CHUNK_MAX_SAMPLES * 3 / 4) /* below this a chunk is worth merging */
/* Merging every 128 single-sample chunks re-encodes a partial chunk at most ~4 times over its
 * life, and bounds what a reader of the newest data decodes. */
#define MAX_PENDING_CHUNKS 128
#define MAX_GATHER_CHUNKS 4096
#define PART_PREFIX "raw."

struct point {
    int64_t ts;
    double v;
    uint32_t order; /* input position, so equal timestamps keep the newest */
};

/* --- partitions ---------------------------------------------------------------------------- */

static void part_name(char *buf, size_t size, int64_t day)
{
    (void)snprintf(buf, size, PART_PREFIX "%" PRId64, day);
}

static struct fp_partition *part_cached(struct fp_store *s, int64_t day)
{
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].day == day)
            return &s->parts[i];
    return NULL;
}

static void part_forget(struct fp_store *s, int64_t day)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        if (s->parts[i].day == day) {
            s->parts[i] = s->parts[--s->n_parts];
            return;
        }
    }
}

static void parts_lock(struct fp_store *s)
{
    if (!s->parts_held)
        (void)pthread_mutex_lock(&s->parts_lock);
}

static void parts_unlock(struct fp_store *s)
{
    if (!s->parts_held)
        (void)pthread_mutex_unlock(&s->parts_lock);
}

/* Opens the partition of day (creating it when create) in the writer's txn. Returns an LMDB rc:
 * MDB_NOTFOUND when it does not exist, MDB_DBS_FULL when there are too many. */
static int part_open(MDB_txn *txn, struct fp_store *s, int64_t day, bool create, MDB_dbi *ret)
{
    struct fp_partition *p;
    char name[48];
    int rc;

    parts_lock(s);
    p = part_cached(s, day);
    if (p != NULL) {
        *ret = p->dbi;
        parts_unlock(s);
        return 0;
    }
    if (s->n_parts >= MAX_PARTITIONS) {
        parts_unlock(s);
        return MDB_DBS_FULL;
    }
    part_name(name, sizeof(name), day);
    rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, ret);
    if (rc == 0)
        s->parts[s->n_parts++] = (struct fp_partition){.day = day, .dbi = *ret, .fresh = create};
    /* This transaction used mdb_dbi_open: no other may until it ends (fp_samples_txn_end). */
    s->parts_held = true;
    return rc;
}

void fp_samples_txn_end(struct fp_store *s, bool committed)
{
    /* What an aborted txn did to the series states is unknown: re-read the newest timestamps
     * from the store rather than trust memory (pending counts only steer compaction). */
    s->head.active = false;
    if (!committed)
        for (size_t i = 0; i < s->states_cap; i++) {
            s->states[i].max_ts = INT64_MIN;
            s->states[i].rollup_hour = INT64_MIN;
        }
    parts_lock(s);
    /* LMDB closes handles opened in a transaction that aborts. */
    for (size_t i = 0; i < s->n_parts;) {
        if (s->parts[i].fresh && !committed) {
            s->parts[i] = s->parts[--s->n_parts];
            continue;
        }
        s->parts[i++].fresh = false;
    }
    s->parts_held = false;
    (void)pthread_mutex_unlock(&s->parts_lock);
}

/* Lists the days that have a partition, ascending, into days (at most max). */
static int part_list(MDB_txn *txn, int64_t *days, size_t max, size_t *ret_n)
{
    MDB_dbi main_dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    int rc;

    rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, main_dbi, &cur);
    if (rc != 0)
        return rc;
    k = (MDB_val){sizeof(PART_PREFIX) - 1, (void *)PART_PREFIX};
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[48];
        char *end;
        long long day;
        if (k.mv_size < sizeof(PART_PREFIX) || k.mv_size >= sizeof(name) ||
            memcmp(k.mv_data, PART_PREFIX, sizeof(PART_PREFIX) - 1) != 0)
            break;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        day = strtoll(name + sizeof(PART_PREFIX) - 1, &end, 10);
        if (*end == '\0')
            days[n++] = day;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    /* Names sort as strings ("raw.10" < "raw.9"); callers want days in order. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && days[j - 1] > days[j]; j--) {
            int64_t t = days[j];
            days[j] = days[j - 1];
            days[j - 1] = t;
        }
    *ret_n = n;
    return 0;
}

/* --- chunk generation ------------------------------------------------------------------------
 * A counter in meta that grows in every transaction that deletes or replaces a stored chunk (an
 * out-of-order merge, compaction, retention); adding a chunk under a new key leaves it alone.
 * So two snapshots of one generation hold the same bytes under every chunk key both have, and
 * a reader's decoded-chunk cache can trust an entry checked at its snapshot's generation
 * without comparing the chunk's bytes again (they cost a sixth of a fleet-wide query). Sealing
 * head streams, the common write, adds chunks only. */
static const char CHUNK_GEN_KEY[] = "chunk_gen";

/* Called before a transaction deletes or replaces a chunk. */
static int chunks_changed(MDB_txn *txn, struct fp_store *s)
{
    uint64_t gen;
    int rc = fp_store_meta_get_u64(txn, s, CHUNK_GEN_KEY, &gen);

    return rc != 0 ? rc : fp_store_meta_put_u64(txn, s, CHUNK_GEN_KEY, gen + 1);
}

/* Time between scans of every head for silent devices' streams (fp_samples_retention). */
#define HEAD_SCAN_MS (INT64_C(10) * 60 * 1000)

int fp_samples_retention(MDB_txn *txn, struct fp_store *s, int64_t now_ms)
{
    int64_t days[MAX_PARTITIONS], cutoff;
    size_t n;
    int rc;

    /* A device that stopped sending keeps its head until sealed: do it two hours on, so
     * retention finds its samples in the day partitions. That walks every device's head, so
     * every ten minutes is enough (a silent device's samples are readable from its head
     * meanwhile); bench/storage, whose writes are a simulated minute apart, spent ~4% of its
     * ingest here when it ran on every pass. */
    if (now_ms - s->heads_checked_ms >= HEAD_SCAN_MS || now_ms < s->heads_checked_ms) {
        rc = fp_head_seal_older(txn, s, now_ms - CHUNK_SPAN_MAX_MS);
        if (rc != 0)
            return rc;
        s->heads_checked_ms = now_ms; /* an aborted transaction only delays the next scan */
    }
    if (s->opts.raw_retention_ms <= 0)
        return 0;
    cutoff = day_of(now_ms - s->opts.raw_retention_ms);
    rc = part_list(txn, days, MAX_PARTITIONS, &n);
    if (rc == 0 && n > 0 && days[0] < cutoff)
        rc = chunks_changed(txn, s);
    for (size_t i = 0; rc == 0 && i < n && days[i] < cutoff; i++) {
        MDB_dbi dbi;
        rc = part_open(txn, s, days[i], false, &dbi);
        if (rc == 0)
            rc = mdb_drop(txn, dbi, 1);
        if (rc == 0) {
            parts_lock(s);
            part_forget(s, days[i]);
            parts_unlock(s);
        }
    }
    return rc;
}

/* --- writer state per series ---------------------------------------------------------------- */

/* Finds or adds the state of series id. Adding may move every state: callers holding a state
 * pointer across anything that can add one (sealing another series) must look it up again. */
static struct fp_series_state *state_get(struct fp_store *s, uint64_t id)
{
    size_t p;

    if (s->states_cap > 0) {
        p = (id * 0x9e3779b97f4a7c15ull) & (s->states_cap - 1);
        while (s->states[p].id != 0 && s->states[p].id != id)
            p = (p + 1) & (s->states_cap - 1);
        if (s->states[p].id == id)
            return &s->states[p];
    }
    if ((s->states_used + 1) * 2 > s->states_cap) {
        size_t cap = s->states_cap == 0 ? 1024 : s->states_cap * 2;
        struct fp_series_state *n = calloc(cap, sizeof(*n));
        if (n == NULL)
            return NULL;
        for (size_t i = 0; i < s->states_cap; i++) {
            if (s->states[i].id == 0)
                continue;
            p = (s->states[i].id * 0x9e3779b97f4a7c15ull) & (cap - 1);
            while (n[p].id != 0)
                p = (p + 1) & (cap - 1);
            n[p] = s->states[i];
        }
        free(s->states);
        s->states = n;
        s->states_cap = cap;
    }
    p = (id * 0x9e3779b97f4a7c15ull) & (s->states_cap - 1);
    while (s->states[p].id != 0 && s->states[p].id != id)
        p = (p + 1) & (s->states_cap - 1);
    if (s->states[p].id == 0) {
        s->states[p] = (struct fp_series_state){.id = id, .max_ts = INT64_MIN,
                                                .pending_day = INT64_MAX,
                                                .rollup_hour = INT64_MIN};
        s->states_used++;
    }
    return &s->states[p];
}

/* --- readers' decoded chunks ---------------------------------------------------------------- *
 *
 * Dashboards ask for the same recent hours every few seconds, and a sealed chunk is decoded
 * again each time: on bench/storage's Q1 (1000 series, the last hour) decoding was half the
 * time. So readers keep decoded chunks, two-way set-associative by (series, chunk start). A hit
 * must hold the very bytes the reader's snapshot has (a chunk merged out of order keeps its key
 * but not its bytes): trusted when checked at the snapshot's chunk generation, else compared in
 * full (slot_holds), so a hit is exact, never stale. Entries are shared,
 * not copied: a reader holds a reference while it hands the samples on, and an entry replaced
 * meanwhile is freed by its last holder. One lock, held only to find, count and replace. */

struct fp_decoded_entry {
    uint32_t refs; /* holders, the cache's slot included; under the cache lock */
    uint32_t n;
    size_t len;
    uint64_t gen; /* a chunk generation whose snapshots hold these bytes; under the cache lock */
    /* int64_t ts[n], double v[n], then the chunk's len bytes */
    _Alignas(8) uint8_t mem[];
};

static int64_t *entry_ts(struct fp_decoded_entry *e)
{
    return (int64_t *)(void *)e->mem;
}

static double *entry_v(struct fp_decoded_entry *e)
{
    return (double *)(void *)(e->mem + 8 * (size_t)e->n);
}

static const uint8_t *entry_chunk(const struct fp_decoded_entry *e)
{
    return e->mem + 16 * (size_t)e->n;
}

/* Drops one reference; under the cache lock. */
static void entry_unref(struct fp_decoded_entry *e)
{
    if (e != NULL && --e->refs == 0)
        free(e);
}

int fp_samples_cache_init(struct fp_store *s)
{
    struct fp_decoded_cache *c = &s->decoded;
    size_t n = 1;

    memset(c, 0, sizeof(*c));
    if (s->opts.decoded_cache_chunks == 0)
        return 0;
    while (n < s->opts.decoded_cache_chunks && n < (SIZE_MAX >> 6))
        n <<= 1;
    if (n < 2)
        n = 2; /* one set of two ways */
    c->slots = calloc(n, sizeof(*c->slots));
    if (c->slots == NULL)
        return -ENOMEM;
    c->n_slots = n;
    (void)pthread_mutex_init(&c->lock, NULL);
    return 0;
}

static void cache_fini(struct fp_store *s)
{
    struct fp_decoded_cache *c = &s->decoded;
    if (c->n_slots == 0)
        return;
    for (size_t i = 0; i < c->n_slots; i++)
        entry_unref(c->slots[i].e);
    free(c->slots);
    (void)pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof(*c));
}

/* The first of the two slots (sid, first) may live in: two ways, so that two chunks a query
 * needs at once rarely keep evicting each other. */
static struct fp_decoded_slot *cache_set(struct fp_decoded_cache *c, uint64_t sid, int64_t first)
{
    uint64_t h = (sid * 0x9e3779b97f4a7c15u) ^ ((uint64_t)first * 0xc2b2ae3d27d4eb4fu);
    return &c->slots[(h ^ (h >> 29)) & (c->n_slots - 1) & ~(size_t)1];
}

/* Whether sl holds the chunk (sid, first) with exactly these bytes, in a snapshot of chunk
 * generation gen. Snapshots of one generation hold the same bytes under every chunk key they
 * share (see chunks_changed), so an entry checked at gen needs no compare; otherwise the bytes
 * are compared in full, and a match is remembered for gen. Under the cache lock. */
static bool slot_holds(const struct fp_decoded_slot *sl, uint64_t sid, int64_t first,
                       const uint8_t *chunk, size_t len, uint64_t gen)
{
    if (sl->e == NULL || sl->sid != sid || sl->first != first || sl->e->len != len)
        return false;
    if (sl->e->gen == gen)
        return true;
    if (memcmp(entry_chunk(sl->e), chunk, len) != 0)
        return false;
    if (gen > sl->e->gen)
        sl->e->gen = gen;
    return true;
}

/* A decoded chunk (sid, first, its bytes): the samples in *ret_ts / *ret_v, either in ts_buf /
 * v_buf (room for FP_CHUNK_MAX_SAMPLES) or in a cache entry, then returned in *ret_ref to be
 * released with chunk_release once used. Returns the count, or < 0 for a chunk that does not
 * decode. */
static int chunk_samples(struct fp_store *s, uint64_t gen, uint64_t sid, int64_t first,
                         const uint8_t *chunk, size_t len, int64_t *ts_buf, double *v_buf,
                         const int64_t **ret_ts, const double **ret_v,
                         struct fp_decoded_entry **ret_ref)
{
    struct fp_decoded_cache *c = &s->decoded;
    struct fp_decoded_slot *set, *sl;
    struct fp_decoded_entry *e;
    int n;

    *ret_ts = ts_buf;
    *ret_v = v_buf;
    *ret_ref = NULL;
    if (c->n_slots == 0)
        return fp_chunk_decode(chunk, len, ts_buf, v_buf);
    set = cache_set(c, sid, first);
    (void)pthread_mutex_lock(&c->lock);
    sl = slot_holds(&set[0], sid, first, chunk, len, gen)   ? &set[0]
         : slot_holds(&set[1], sid, first, chunk, len, gen) ? &set[1]
                                                            : NULL;
    if (sl != NULL) {
        set[0].recent = sl == &set[0];
        set[1].recent = sl == &set[1];
        e = sl->e;
        e->refs++;
        c->hits++;
        (void)pthread_mutex_unlock(&c->lock);
        *ret_ts = entry_ts(e);
        *ret_v = entry_v(e);
        *ret_ref = e;
        return (int)e->n;
    }
    c->misses++;
    (void)pthread_mutex_unlock(&c->lock);
    n = fp_chunk_decode(chunk, len, ts_buf, v_buf);
    if (n <= 0)
        return n;
    e = malloc(sizeof(*e) + 16 * (size_t)n + len);
    if (e == NULL)
        return n; /* not kept: the read goes on from the buffers */
    e->refs = 1;
    e->n = (uint32_t)n;
    e->len = len;
    e->gen = gen;
    memcpy(entry_ts(e), ts_buf, 8 * (size_t)n);
    memcpy(entry_v(e), v_buf, 8 * (size_t)n);
    memcpy(e->mem + 16 * (size_t)n, chunk, len);
    (void)pthread_mutex_lock(&c->lock);
    sl = set[0].recent ? &set[1] : &set[0]; /* the way not used last */
    entry_unref(sl->e);
    *sl = (struct fp_decoded_slot){sid, first, e, true};
    (sl == &set[0] ? &set[1] : &set[0])->recent = false;
    (void)pthread_mutex_unlock(&c->lock);
    return n;
}

void fp_store_chunk_cache_counts(struct fp_store *s, uint64_t *ret_hits, uint64_t *ret_misses)
{
    *ret_hits = *ret_misses = 0;
    if (s->decoded.n_slots == 0)
        return; /* no cache, and its lock was never made */
    (void)pthread_mutex_lock(&s->decoded.lock);
    *ret_hits = s->decoded.hits;
    *ret_misses = s->decoded.misses;
    (void)pthread_mutex_unlock(&s->decoded.lock);
}

/* Releases what chunk_samples handed out from the cache (NULL: nothing). */
static void chunk_release(struct fp_store *s, struct fp_decoded_entry *ref)
{
    if (ref == NULL)
        return;
    (void)pthread_mutex_lock(&s->decoded.lock);
    entry_unref(ref);
    (void)pthread_mutex_unlock(&s->decoded.lock);
}

void fp_samples_fini(struct fp_store *s)
{
    cache_fini(s);
    fp_rollup_fini(s);
    free(s->states);
    fp_head_fini(s);
    s->states = NULL;
    s->states_cap = s->states_used = 0;
    fp_chunk_enc_destroy(&s->enc);
}

/* --- encoding ------------------------------------------------------------------------------- */

static int point_cmp(const void *a, const void *b)
{
    const struct point *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts pts by time and keeps, for each timestamp, the point with the highest order. Returns the
 * new count. */
static size_t sort_unique(struct point *pts, size_t n)
{
    size_t out = 0;
    bool sorted = true;

    for (size_t i = 1; i < n && sorted; i++)
        sorted = pts[i - 1].ts < pts[i].ts;
    if (sorted)
        return n;
    qsort(pts, n, sizeof(*pts), point_cmp);
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && pts[out - 1].ts == pts[i].ts)
            pts[out - 1] = pts[i];
        else
            pts[out++] = pts[i];
    }
    return out;
}

static int put_chunk(MDB_txn *txn, MDB_dbi dbi, uint64_t id, int64_t first, int64_t last,
                     const uint8_t *chunk, size_t len, unsigned flags)
{
    uint8_t kb[16], vb[8 + FP_CHUNK_MAX_BYTES];
    MDB_val k = {16, kb}, v = {8 + len, vb};

    put_u64(kb, id);
    put_ts(kb + 8, first);
    put_ts(vb, last);
    memcpy(vb + 8, chunk, len);
    return mdb_put(txn, dbi, &k, &v, flags);
}

/* Encodes sorted, unique pts of one day into chunks and stores them. A chunk whose key is taken
 * (same series and first timestamp) is merged with the one there. Sets *ret_small to the samples
 * that went into chunks worth compacting later, *ret_small_chunks to their number. */
static int store_points(MDB_txn *txn, struct fp_store *s, MDB_dbi dbi, uint64_t id,
                        const struct point *pts, size_t n, uint32_t *ret_small,
                        uint32_t *ret_small_chunks);

static int merge_existing(MDB_txn *txn, struct fp_store *s, MDB_dbi dbi, uint64_t id,
                          const struct point *pts, size_t n, uint32_t *ret_small,
                          uint32_t *ret_small_chunks)
{
    uint8_t kb[16];
    MDB_val k = {16, kb}, v;
    struct fp_chunk_iter it;
    struct point *all;
    size_t m = 0, cap;
    int64_t ts;
    double val;
    int rc;

    put_u64(kb, id);
    put_ts(kb + 8, pts[0].ts);
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return rc;
    cap = n + FP_CHUNK_MAX_SAMPLES;
    all = malloc(cap * sizeof(*all));
    if (all == NULL)
        return ENOMEM;
    if (v.mv_size > 8 && fp_chunk_iter_init(&it, (const uint8_t *)v.mv_data + 8,
                                            v.mv_size - 8) == 0) {
        while (m < FP_CHUNK_MAX_SAMPLES && fp_chunk_iter_next(&it, &ts, &val) == 0)
            all[m++] = (struct point){ts, val, 0};
    }
    /* New points win over stored ones at the same timestamp. */
    for (size_t i = 0; i < n; i++)
        all[m++] = (struct point){pts[i].ts, pts[i].v, 1};
    m = sort_unique(all, m);
    rc = chunks_changed(txn, s);
    if (rc == 0)
        rc = mdb_del(txn, dbi, &k, NULL);
    if (rc == 0)
        rc = store_points(txn, s, dbi, id, all, m, ret_small, ret_small_chunks);
    free(all);
    return rc;
}

static int store_points(MDB_txn *txn, struct fp_store *s, MDB_dbi dbi, uint64_t id,
                        const struct point *pts, size_t n, uint32_t *ret_small,
                        uint32_t *ret_small_chunks)
{
    uint8_t chunk[FP_CHUNK_MAX_BYTES];
    size_t i = 0;
    int rc;

    if (s->enc == NULL) {
        rc = fp_chunk_enc_new(NULL, &s->enc);
        if (rc < 0)
            return ENOMEM;
    }
    while (i < n) {
        size_t start = i, len;
        fp_chunk_enc_reset(s->enc);
        while (i < n && pts[i].ts - pts[start].ts < CHUNK_SPAN_MAX_MS &&
               fp_chunk_enc_append(s->enc, pts[i].ts, pts[i].v) == 0)
            i++;
        if (i == start)
            return EINVAL; /* cannot happen: an empty encoder takes any sample */
        rc = fp_chunk_enc_finish(s->enc, chunk, sizeof(chunk), &len);
        if (rc < 0)
            return -rc;
        rc = put_chunk(txn, dbi, id, pts[start].ts, pts[i - 1].ts, chunk, len, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            rc = merge_existing(txn, s, dbi, id, pts + start, i - start, ret_small,
                                ret_small_chunks);
            if (rc != 0)
                return rc;
            continue;
        }
        if (rc != 0)
            return rc;
        if (i - start < SMALL_CHUNK) {
            *ret_small += (uint32_t)(i - start);
            (*ret_small_chunks)++;
        }
    }
    return 0;
}

/* --- compaction ----------------------------------------------------------------------------- */

/* Merges the tail of series id in one day's partition: walking back from its newest chunk, every
 * small chunk and every chunk overlapping what was gathered, up to the first full chunk that
 * overlaps nothing. */
static int compact_day(MDB_txn *txn, struct fp_store *s, MDB_dbi dbi, uint64_t id)
{
    uint8_t kb[16];
    MDB_val k = {16, kb}, v;
    MDB_cursor *cur;
    struct point *pts = NULL;
    size_t n = 0, cap = 0, chunks = 0;
    int64_t lo = INT64_MAX;
    uint32_t small = 0, small_chunks = 0;
    int rc;

    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    put_u64(kb, id + 1);
    memset(kb + 8, 0, 8);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    while (rc == 0 && chunks < MAX_GATHER_CHUNKS) {
        struct fp_chunk_info info;
        struct fp_chunk_iter it;
        int64_t ts, last;
        double val;

        if (k.mv_size != 16 || get_u64(k.mv_data) != id || v.mv_size <= 8)
            break;
        last = get_ts(v.mv_data);
        if (fp_chunk_info((const uint8_t *)v.mv_data + 8, v.mv_size - 8, &info) != 0)
            break; /* a damaged chunk stays as it is: readers skip it */
        if (info.n_samples >= SMALL_CHUNK && last < lo)
            break;
        if (n + info.n_samples > cap) {
            size_t ncap = cap == 0 ? 4 * FP_CHUNK_MAX_SAMPLES : cap * 2;
            struct point *np;
            while (ncap < n + info.n_samples)
                ncap *= 2;
            np = realloc(pts, ncap * sizeof(*np));
            if (np == NULL) {
                rc = ENOMEM;
                break;
            }
            pts = np;
            cap = ncap;
        }
        /* Walking backwards, so later chunks get lower order; flip at the end. */
        if (fp_chunk_iter_init(&it, (const uint8_t *)v.mv_data + 8, v.mv_size - 8) == 0)
            while (fp_chunk_iter_next(&it, &ts, &val) == 0)
                pts[n++] = (struct point){ts, val, (uint32_t)(MAX_GATHER_CHUNKS - chunks)};
        if (info.first_ts_ms < lo)
            lo = info.first_ts_ms;
        chunks++;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(pts);
        return rc;
    }
    rc = chunks > 0 ? chunks_changed(txn, s) : 0;
    if (rc == 0 && n > 0) {
        n = sort_unique(pts, n);
        rc = store_points(txn, s, dbi, id, pts, n, &small, &small_chunks);
    }
    free(pts);
    return rc;
}

static int compact_series(MDB_txn *txn, struct fp_store *s, struct fp_series_state *st,
                          int64_t from_day, int64_t to_day)
{
    int rc = 0;
    for (int64_t day = from_day; rc == 0 && day <= to_day; day++) {
        MDB_dbi dbi;
        rc = part_open(txn, s, day, false, &dbi);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = compact_day(txn, s, dbi, st->id);
    }
    if (rc == 0) {
        st->pending = 0;
        st->pending_chunks = 0;
        st->pending_day = INT64_MAX;
    }
    return rc;
}

int fp_samples_compact_all(MDB_txn *txn, struct fp_store *s)
{
    int64_t days[MAX_PARTITIONS];
    size_t n;
    int rc;

    rc = fp_head_seal_all(txn, s);
    if (rc == 0)
        rc = part_list(txn, days, MAX_PARTITIONS, &n);
    if (rc != 0 || n == 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < s->states_cap; i++) {
        struct fp_series_state *st = &s->states[i];
        if (st->id == 0 || st->pending_chunks == 0)
            continue;
        rc = compact_series(txn, s, st, st->pending_day, days[n - 1]);
    }
    return rc;
}

/* Copies src into dst in key order with MDB_APPEND; dst must be empty. */
static int copy_append(MDB_txn *txn, MDB_dbi src, MDB_dbi dst)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    rc = mdb_cursor_open(txn, src, &cur);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rc = mdb_put(txn, dst, &k, &v, MDB_APPEND);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int fp_samples_repack_day(MDB_txn *txn, struct fp_store *s, int64_t day)
{
    MDB_dbi src, tmp;
    int rc;

    /* Chunks arrive in time order but are keyed series first, so B-tree pages split in the
     * middle and merges leave holes: pages end up about a quarter full. Rewriting a day in key
     * order with MDB_APPEND fills them. Two copies, because LMDB cannot rename a database. */
    rc = part_open(txn, s, day, false, &src);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    rc = mdb_dbi_open(txn, "repack", MDB_CREATE, &tmp);
    if (rc == 0)
        rc = mdb_drop(txn, tmp, 0);
    if (rc == 0)
        rc = copy_append(txn, src, tmp);
    if (rc == 0)
        rc = mdb_drop(txn, src, 0);
    if (rc == 0)
        rc = copy_append(txn, tmp, src);
    if (rc == 0)
        rc = mdb_drop(txn, tmp, 1);
    return rc;
}

int fp_samples_days(MDB_txn *txn, int64_t *days, size_t max, size_t *ret_n)
{
    return part_list(txn, days, max, ret_n);
}

/* --- writing -------------------------------------------------------------------------------- */

static int load_max_ts(MDB_txn *txn, struct fp_store *s, struct fp_series_state *st)
{
    uint8_t id_be[8];
    MDB_val k = {8, id_be}, v;
    int rc;

    put_u64(id_be, st->id);
    rc = mdb_get(txn, s->latest, &k, &v);
    if (rc == 0 && v.mv_size == 16)
        st->max_ts = get_ts(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    /* Newer samples than "latest" knows sit in the head of the series' device, which is the
     * batch's device, loaded now. */
    fp_head_max_ts(s, st->id, &st->max_ts);
    return 0;
}

int fp_samples_put_latest(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t ts, double value)
{
    uint8_t id_be[8], vb[16];
    MDB_val k = {8, id_be}, v = {16, vb};

    put_u64(id_be, id);
    put_ts(vb, ts);
    put_double(vb + 8, value);
    return mdb_put(txn, s->latest, &k, &v, 0);
}

/* Stores sorted, unique pts as chunks, day by day, counting small ones for compaction (unless
 * whole: an hour's stream from the head, which stays as it is). */
static int store_sorted(MDB_txn *txn, struct fp_store *s, struct fp_series_state *st,
                        const struct point *pts, size_t m, bool whole)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < m;) {
        int64_t day = day_of(pts[i].ts);
        size_t j = i;
        MDB_dbi dbi;
        uint32_t small = 0, small_chunks = 0;

        while (j < m && day_of(pts[j].ts) == day)
            j++;
        rc = part_open(txn, s, day, true, &dbi);
        if (rc == 0)
            rc = store_points(txn, s, dbi, st->id, pts + i, j - i, &small, &small_chunks);
        if (!whole) {
            st->pending += small;
            st->pending_chunks += small_chunks;
            if (small_chunks > 0 && day < st->pending_day)
                st->pending_day = day;
        }
        i = j;
    }
    return rc;
}

/* Stores sorted, unique pts that may fall among stored chunks (out of order, duplicates): each
 * chunk they overlap is decoded, merged with them (theirs win) and stored again, so no two
 * chunks of a series ever overlap and no reader has to decide which of two stored values is
 * the newer write. */
static int store_merged(MDB_txn *txn, struct fp_store *s, struct fp_series_state *st,
                        const struct point *pts, size_t m)
{
    struct point *all = NULL;
    size_t n_all = 0, cap = 0;
    bool deleted = false, bumped = false; /* a stored chunk deleted; the generation moved */
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < m;) {
        int64_t day = day_of(pts[i].ts), lo = pts[i].ts, hi;
        size_t j = i;
        uint8_t kb[16];
        MDB_val k = {16, kb}, v;
        MDB_cursor *cur;
        MDB_dbi dbi;

        while (j < m && day_of(pts[j].ts) == day)
            j++;
        hi = pts[j - 1].ts;
        n_all = 0;
        rc = part_open(txn, s, day, true, &dbi);
        if (rc == 0)
            rc = mdb_cursor_open(txn, dbi, &cur);
        if (rc != 0)
            break;
        put_u64(kb, st->id);
        put_ts(kb + 8, lo > INT64_MIN + CHUNK_SPAN_MAX_MS ? lo - CHUNK_SPAN_MAX_MS : INT64_MIN);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;) {
            struct fp_chunk_iter it;
            struct fp_chunk_info info;
            int64_t ts;
            double val;
            if (k.mv_size != 16 || get_u64(k.mv_data) != st->id || get_ts((uint8_t *)k.mv_data + 8) > hi)
                break;
            if (v.mv_size <= 8 || get_ts(v.mv_data) < lo ||
                fp_chunk_info((const uint8_t *)v.mv_data + 8, v.mv_size - 8, &info) != 0) {
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                continue;
            }
            if (n_all + info.n_samples + (j - i) > cap) {
                size_t ncap = cap == 0 ? 4 * FP_CHUNK_MAX_SAMPLES : cap * 2;
                struct point *np;
                while (ncap < n_all + info.n_samples + (j - i))
                    ncap *= 2;
                np = realloc(all, ncap * sizeof(*np));
                if (np == NULL) {
                    rc = ENOMEM;
                    break;
                }
                all = np;
                cap = ncap;
            }
            if (fp_chunk_iter_init(&it, (const uint8_t *)v.mv_data + 8, v.mv_size - 8) == 0)
                while (fp_chunk_iter_next(&it, &ts, &val) == 0)
                    all[n_all++] = (struct point){ts, val, 0};
            rc = mdb_cursor_del(cur, 0);
            deleted |= rc == 0;
            if (rc == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        }
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
            break;
        rc = 0;
        if (deleted && !bumped) {
            rc = chunks_changed(txn, s);
            bumped = true;
            if (rc != 0)
                break;
        }
        if (n_all + (j - i) > cap) {
            struct point *np = realloc(all, (n_all + (j - i)) * sizeof(*np));
            if (np == NULL) {
                rc = ENOMEM;
                break;
            }
            all = np;
            cap = n_all + (j - i);
        }
        for (size_t x = i; x < j; x++)
            all[n_all++] = (struct point){pts[x].ts, pts[x].v, 1};
        n_all = sort_unique(all, n_all);
        rc = store_sorted(txn, s, st, all, n_all, false);
        i = j;
    }
    free(all);
    return rc;
}

int fp_samples_store_sorted(MDB_txn *txn, struct fp_store *s, uint64_t id, const int64_t *ts,
                            const double *values, size_t n, bool whole)
{
    struct fp_series_state *st = state_get(s, id);
    struct point *pts;
    int rc;

    if (st == NULL)
        return ENOMEM;
    pts = malloc(n * sizeof(*pts));
    if (pts == NULL)
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        pts[i] = (struct point){ts[i], values[i], (uint32_t)i};
    rc = store_sorted(txn, s, st, pts, n, whole);
    free(pts);
    return rc;
}

/* Hands the stored points to the series' rollup (rollup.c), all in one call: the rollup tells
 * in-order points from replaced ones by the series' newest timestamp before this write. */
static int rollup_points(MDB_txn *txn, struct fp_store *s, struct fp_series_state *st,
                         const struct point *pts, size_t m)
{
    return fp_rollup_update(txn, s, st->id, &st->rollup_hour, st->max_ts, &pts[0].ts,
                            sizeof(*pts), m);
}

void fp_samples_state_prefetch(const struct fp_store *s, uint32_t slot)
{
    if (slot < s->states_cap)
        __builtin_prefetch(&s->states[slot], 1);
}

/* state_get, first trying the slot *hint where the state was found last time, and updating it. */
static struct fp_series_state *state_at(struct fp_store *s, uint64_t id, uint32_t *hint)
{
    struct fp_series_state *st;

    if (hint != NULL && *hint < s->states_cap && s->states[*hint].id == id)
        return &s->states[*hint];
    st = state_get(s, id);
    if (hint != NULL && st != NULL)
        *hint = (uint32_t)(st - s->states);
    return st;
}

int fp_samples_write(MDB_txn *txn, struct fp_store *s, uint64_t id, const int64_t *ts,
                     const double *values, size_t n, int64_t now_ms, uint32_t *hint,
                     uint64_t *ret_written, uint64_t *ret_refused)
{
    struct fp_series_state *st;
    struct point *pts;
    int64_t cutoff = INT64_MIN;
    size_t m = 0, k;
    int rc = 0;

    *ret_written = 0;
    *ret_refused = 0;
    if (n == 0)
        return 0;
    st = state_at(s, id, hint);
    if (st == NULL)
        return ENOMEM;
    if (st->max_ts == INT64_MIN) {
        rc = load_max_ts(txn, s, st);
        if (rc != 0)
            return rc;
    }
    if (st->max_ts != INT64_MIN && s->opts.ooo_window_ms > 0)
        cutoff = st->max_ts - s->opts.ooo_window_ms;
    if (s->opts.raw_retention_ms > 0 && now_ms - s->opts.raw_retention_ms > cutoff)
        cutoff = now_ms - s->opts.raw_retention_ms;

    pts = malloc(n * sizeof(*pts));
    if (pts == NULL)
        return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (ts[i] < cutoff) {
            (*ret_refused)++;
            continue;
        }
        pts[m] = (struct point){ts[i], values[i], (uint32_t)i};
        m++;
    }
    m = sort_unique(pts, m);

    /* Newer than everything stored: the device's head. The rest (out of order, duplicates)
     * goes to chunks, after the head's entry of this series, so the head stays the newest. */
    for (k = 0; k < m && st->max_ts != INT64_MIN && pts[k].ts <= st->max_ts; k++)
        ;
    if (k > 0 && s->head.active)
        rc = fp_head_seal_series(txn, s, id);
    if (rc == 0 && k > 0)
        rc = store_merged(txn, s, st, pts, k);
    if (rc == 0 && k < m && s->head.active) {
        rc = fp_head_append(txn, s, id, &pts[k].ts, &pts[k].v, sizeof(*pts), m - k);
        st = state_at(s, id, hint); /* sealing other series may have moved the states */
        if (st == NULL)
            rc = ENOMEM;
    } else if (rc == 0 && k < m)
        rc = store_sorted(txn, s, st, pts + k, m - k, false);
    if (rc == 0 && m > 0)
        rc = rollup_points(txn, s, st, pts, m);
    if (rc == 0 && m > 0) {
        *ret_written = m;
        if (pts[m - 1].ts >= st->max_ts || st->max_ts == INT64_MIN) {
            st->max_ts = pts[m - 1].ts;
            /* The head holds its series' newest sample; "latest" gets it when sealed. */
            if (!(k < m && s->head.active))
                rc = fp_samples_put_latest(txn, s, id, pts[m - 1].ts, pts[m - 1].v);
        }
    }
    /* A full chunk's worth of small pieces, or many of them: merge now, while they are hot. */
    if (rc == 0 && (st->pending >= FP_CHUNK_MAX_SAMPLES || st->pending_chunks >= MAX_PENDING_CHUNKS))
        rc = compact_series(txn, s, st, st->pending_day, day_of(st->max_ts));
    free(pts);
    return rc;
}

/* --- reading -------------------------------------------------------------------------------- */

struct gather {
    struct point *pts;
    size_t n, cap;
};

static int gather_push(struct gather *g, int64_t ts, double v, uint32_t order)
{
    if (g->n == g->cap) {
        size_t cap = g->cap == 0 ? 1024 : g->cap * 2;
        struct point *np = realloc(g->pts, cap * sizeof(*np));
        if (np == NULL)
            return -ENOMEM;
        g->pts = np;
        g->cap = cap;
    }
    g->pts[g->n++] = (struct point){ts, v, order};
    return 0;
}

struct head_push {
    struct gather *g;
    uint32_t order;
};

static int head_push_cb(void *ud, int64_t ts, double v)
{
    struct head_push *hp = ud;
    return gather_push(hp->g, ts, v, hp->order);
}

static bool reader_part(const struct fp_store_reader *r, int64_t day, MDB_dbi *ret)
{
    for (size_t i = 0; i < r->n_parts; i++) {
        if (r->parts[i].day == day) {
            *ret = r->parts[i].dbi;
            return true;
        }
    }
    return false;
}

/* Opens the handles of every day partition that exists and is not open yet, in a short read
 * transaction of its own (its handles become the environment's when it commits). */
static int parts_open_all(struct fp_store *s)
{
    int64_t days[MAX_PARTITIONS];
    MDB_txn *txn = NULL;
    size_t n = 0;
    bool opened = false;
    int rc;

    (void)pthread_mutex_lock(&s->parts_lock);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = part_list(txn, days, MAX_PARTITIONS, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[48];
        MDB_dbi dbi;
        if (part_cached(s, days[i]) != NULL || s->n_parts >= MAX_PARTITIONS)
            continue;
        part_name(name, sizeof(name), days[i]);
        if (mdb_dbi_open(txn, name, 0, &dbi) != 0)
            continue; /* dropped meanwhile */
        s->parts[s->n_parts++] = (struct fp_partition){.day = days[i], .dbi = dbi};
        opened = true;
    }
    if (txn != NULL && rc == 0 && opened)
        rc = mdb_txn_commit(txn);
    else if (txn != NULL)
        mdb_txn_abort(txn);
    (void)pthread_mutex_unlock(&s->parts_lock);
    return rc;
}

int fp_samples_reader_begin(struct fp_store *s, struct fp_store_reader *r)
{
    for (int attempt = 0;; attempt++) {
        int64_t days[MAX_PARTITIONS];
        size_t n = 0;
        bool missing = false;
        MDB_dbi dbi;
        int rc;

        /* The handles first, then the snapshot: a handle opened after a transaction began is
         * not valid in it. */
        (void)pthread_mutex_lock(&s->parts_lock);
        memcpy(r->parts, s->parts, s->n_parts * sizeof(s->parts[0]));
        r->n_parts = s->n_parts;
        (void)pthread_mutex_unlock(&s->parts_lock);
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
        if (rc == 0)
            rc = fp_store_meta_get_u64(r->txn, s, CHUNK_GEN_KEY, &r->chunk_gen);
        if (rc != 0 && r->txn != NULL) {
            mdb_txn_abort(r->txn);
            r->txn = NULL;
        }
        if (rc != 0 || attempt > 0)
            return rc;
        /* Usually every day of the snapshot has its handle: one transaction, no lock held. */
        rc = part_list(r->txn, days, MAX_PARTITIONS, &n);
        for (size_t i = 0; rc == 0 && i < n && !missing; i++)
            missing = !reader_part(r, days[i], &dbi);
        if (rc == 0 && !missing)
            return 0;
        mdb_txn_abort(r->txn);
        r->txn = NULL;
        if (rc == 0)
            rc = parts_open_all(s);
        if (rc != 0)
            return rc;
    }
}

/* The day partitions that may hold [from_ms, to_ms], ascending: from the reader's handles (no
 * LMDB access), or, in the writer's transaction, from the main database. */
static int read_days(MDB_txn *txn, const struct fp_store_reader *r, int64_t from_ms,
                     int64_t to_ms, int64_t *days, size_t *ret_n)
{
    size_t n = 0;
    int rc;

    if (r == NULL) {
        rc = part_list(txn, days, MAX_PARTITIONS, &n);
        if (rc != 0)
            return rc;
    } else {
        for (size_t i = 0; i < r->n_parts; i++)
            days[n++] = r->parts[i].day;
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && days[j - 1] > days[j]; j--) {
                int64_t t = days[j];
                days[j] = days[j - 1];
                days[j - 1] = t;
            }
    }
    *ret_n = 0;
    for (size_t i = 0; i < n; i++)
        if (days[i] >= day_of(from_ms) && days[i] <= day_of(to_ms))
            days[(*ret_n)++] = days[i];
    return 0;
}

/* A stored chunk of the series being read, borrowed from the transaction's snapshot. */
struct chunk_ref {
    const uint8_t *chunk;
    size_t len;
    int64_t first, last;
};

/* Where read_core's samples go: one call per sample (fn) or per run (blk). */
struct sink {
    fp_point_fn fn;
    fp_block_fn blk;
    void *ud;
    const char *device; /* the series' device label, when the caller knows it (else NULL) */
};

static int emit(const struct sink *k, const int64_t *ts, const double *v, size_t n)
{
    int res = 0;
    if (n == 0)
        return 0;
    if (k->blk != NULL)
        return k->blk(k->ud, ts, v, n);
    for (size_t i = 0; i < n && res == 0; i++)
        res = k->fn(k->ud, ts[i], v[i]);
    return res;
}

/* The index of the first of ts[0..n) (ascending) at or after t; n when none is. */
static int first_at_or_after(const int64_t *ts, int n, int64_t t)
{
    int lo = 0, hi = n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Reads through the reader's handles (r) or, in the writer's transaction, through part_open
 * (r NULL, s and txn given).
 *
 * Chunks of a series do not overlap and its head samples come after them (samples.c, head.c),
 * so the usual read hands each chunk's samples to fn straight from the decoder and then the
 * head's. Should the chunks ever overlap (a store damaged, or a bug), every sample is gathered,
 * sorted and deduplicated instead, with the later chunk in key order winning, as before. */
static int read_core(MDB_txn *txn, struct fp_store *s, const struct fp_store_reader *r,
                     uint64_t id, int64_t from_ms, int64_t to_ms, const struct sink *out)
{
    int64_t days[MAX_PARTITIONS];
    struct chunk_ref local[32], *refs = local;
    size_t nd, n_refs = 0, cap_refs = 32;
    struct gather g = {0};
    bool ordered = true;
    int rc, res = 0, err = 0;

    if (from_ms > to_ms)
        return 0;
    rc = read_days(txn, r, from_ms, to_ms, days, &nd);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    for (size_t d = 0; d < nd && err == 0; d++) {
        uint8_t kb[16];
        MDB_val k = {16, kb}, v;
        MDB_cursor *cur;
        MDB_dbi dbi;

        if (r != NULL && !reader_part(r, days[d], &dbi))
            continue; /* created after the reader's handles were taken: nothing acked in it
                         before this reader began is missed but the last instant's */
        if (r == NULL && part_open(txn, s, days[d], false, &dbi) != 0)
            continue;
        if (mdb_cursor_open(txn, dbi, &cur) != 0)
            continue;
        put_u64(kb, id);
        /* No chunk spans more than CHUNK_SPAN_MAX_MS, so none starting earlier reaches from. */
        put_ts(kb + 8, from_ms > INT64_MIN + CHUNK_SPAN_MAX_MS ? from_ms - CHUNK_SPAN_MAX_MS
                                                               : INT64_MIN);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            struct chunk_ref c;
            if (k.mv_size != 16 || get_u64(k.mv_data) != id || get_ts((uint8_t *)k.mv_data + 8) > to_ms)
                break;
            if (v.mv_size <= 8 || get_ts(v.mv_data) < from_ms)
                continue;
            c = (struct chunk_ref){(const uint8_t *)v.mv_data + 8, v.mv_size - 8,
                                   get_ts((uint8_t *)k.mv_data + 8), get_ts(v.mv_data)};
            if (n_refs > 0 && c.first <= refs[n_refs - 1].last)
                ordered = false;
            if (n_refs == cap_refs) {
                struct chunk_ref *nr = malloc(2 * cap_refs * sizeof(*nr));
                if (nr == NULL) {
                    err = -ENOMEM;
                    break;
                }
                memcpy(nr, refs, n_refs * sizeof(*nr));
                if (refs != local)
                    free(refs);
                refs = nr;
                cap_refs *= 2;
            }
            refs[n_refs++] = c;
        }
        mdb_cursor_close(cur);
    }
    if (err == 0) {
        /* The head, gathered first: it is small, and where it starts decides the path. */
        struct head_push hp = {&g, (uint32_t)n_refs + 1};
        rc = fp_head_read(txn, r != NULL ? r->store : s, r == NULL, id, out->device, from_ms,
                          to_ms, head_push_cb, &hp);
        if (rc < 0)
            err = rc;
        else if (rc > 0)
            err = -EIO;
        if (g.n > 0 && n_refs > 0 && g.pts[0].ts <= refs[n_refs - 1].last)
            ordered = false;
    }
    /* Ordered: each sample goes to fn as decoded, then the head's. Else all are gathered, with
     * the chunk's position in key order as the tie-break, sorted and deduplicated first. */
    for (size_t i = 0; i < n_refs && err == 0 && res == 0; i++) {
        /* A whole chunk at once (fp_chunk_decode's loop is tighter than iterating), then the
         * samples inside [from_ms, to_ms]. */
        int64_t ts_buf[FP_CHUNK_MAX_SAMPLES];
        double v_buf[FP_CHUNK_MAX_SAMPLES];
        const int64_t *ts = ts_buf;
        const double *val = v_buf;
        struct fp_decoded_entry *ref = NULL;
        int n = r != NULL ? chunk_samples(r->store, r->chunk_gen, id, refs[i].first,
                                          refs[i].chunk, refs[i].len, ts_buf, v_buf, &ts, &val,
                                          &ref)
                          : fp_chunk_decode(refs[i].chunk, refs[i].len, ts_buf, v_buf);
        if (n <= 0)
            continue; /* a damaged chunk is skipped, as before */
        /* Most chunks lie wholly inside the range: no per-sample compares for those. */
        int j = 0, end = n;
        if (ts[0] < from_ms)
            j = first_at_or_after(ts, n, from_ms);
        if (ts[n - 1] > to_ms)
            end = first_at_or_after(ts, n, to_ms == INT64_MAX ? to_ms : to_ms + 1);
        if (end < j)
            end = j;
        if (ordered)
            res = emit(out, ts + j, val + j, (size_t)(end - j));
        for (; !ordered && j < end && err == 0; j++)
            err = gather_push(&g, ts[j], val[j], (uint32_t)i + 1);
        chunk_release(r != NULL ? r->store : s, ref);
    }
    if (err == 0 && !ordered)
        g.n = sort_unique(g.pts, g.n);
    for (size_t i = 0; err == 0 && i < g.n && res == 0; i++)
        res = emit(out, &g.pts[i].ts, &g.pts[i].v, 1);
    if (refs != local)
        free(refs);
    free(g.pts);
    return err != 0 ? err : res;
}

int fp_samples_read(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                    fp_point_fn fn, void *userdata)
{
    struct sink k = {fn, NULL, userdata, NULL};
    return read_core(r->txn, NULL, r, id, from_ms, to_ms, &k);
}

int fp_samples_read_blocks(struct fp_store_reader *r, uint64_t id, const char *device,
                           int64_t from_ms, int64_t to_ms, fp_block_fn fn, void *userdata)
{
    struct sink k = {NULL, fn, userdata, device};
    return read_core(r->txn, NULL, r, id, from_ms, to_ms, &k);
}

int fp_samples_read_txn(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t from_ms,
                        int64_t to_ms, fp_point_fn fn, void *userdata)
{
    struct sink k = {fn, NULL, userdata, NULL};
    return read_core(txn, s, NULL, id, from_ms, to_ms, &k);
}

int fp_samples_flush_rollups(MDB_txn *txn, struct fp_store *s)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->states_cap; i++)
        if (s->states[i].id != 0)
            rc = fp_rollup_flush(txn, s, s->states[i].id, s->states[i].rollup_hour);
    return rc;
}
