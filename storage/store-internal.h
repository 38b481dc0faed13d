/* What the files of storage/ share: the store and reader structs, key encodings and the growable
 * buffer. Not installed, not for other components. */
#pragma once

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "store.h"

#define MAX_LABELS 63   /* + device fits struct fp_series_desc.labels */
#define KEY_MAX 511     /* LMDB's default maximum key size */
#define DEVICE_HEADER_BYTES 136 /* struct device_rec (store.c) */
/* What a read-only opener maps: more than any store will grow to (address space, not memory). */
#define READER_MAP_BYTES ((size_t)1 << 38)
#define MAX_PARTITIONS 192 /* named databases for raw time partitions (one per UTC day) */
#define DAY_MS INT64_C(86400000)
#define CHUNK_SPAN_MAX_MS (INT64_C(2) * 3600 * 1000) /* no chunk (or head entry) spans more */

struct fp_partition {
    int64_t day;    /* floor(ts / DAY_MS) */
    MDB_dbi dbi;
    bool fresh;     /* opened (created) in the running write txn: forget it if that aborts */
};

struct fp_sketch;


/* A growable byte buffer for building keys and values (helpers below). */
struct buf {
    uint8_t *data;
    size_t len, cap;
};

/* One series' samples in the writer's working copy of a device's head (head.c). */
struct fp_head_entry {
    uint64_t sid;
    uint8_t mode;            /* decimals 0..6 of the scaled integers, or 7: raw doubles */
    uint32_t n;
    int64_t first_ts, last_ts, last_delta, last_m;
    struct buf bytes;        /* the stream */
    size_t base_len;         /* bytes of it the stored base value holds; 0: not in the base */
};

/* The device whose batch the writer is applying, its head decoded for appending. */
struct fp_head {
    bool active, changed;
    bool base_dirty;         /* an entry the base holds was sealed or rewritten */
    struct buf device;       /* NUL-terminated id */
    struct fp_head_entry *e; /* entries; slots past n keep their buffers for reuse */
    size_t n, cap;
};

/* The writer's memory of one series between transactions. Lost on restart, which only delays
 * compaction and re-reads the newest timestamp from the "latest" database. */
struct fp_series_state {
    uint64_t id;             /* 0: empty slot */
    int64_t max_ts;          /* newest timestamp stored; INT64_MIN unknown */
    uint32_t pending;        /* samples in small chunks since the last compaction */
    uint32_t pending_chunks; /* small chunks written since the last compaction */
    int64_t pending_day;     /* oldest day holding them; INT64_MAX none */
    int64_t rollup_hour;     /* the open hour of its rollup (rollup.c); INT64_MIN unknown */
};

/* A decoded chunk kept for readers (samples.c): its samples, and its bytes and the chunk
 * generation they were last checked at, which prove a later hit is the same chunk. */
struct fp_decoded_entry;

struct fp_decoded_slot {
    uint64_t sid;
    int64_t first;
    struct fp_decoded_entry *e; /* NULL: empty */
    bool recent;                /* the way of its set used last */
};

/* Readers' cache of decoded chunks (samples.c), two-way set-associative by (series, chunk
 * start). */
struct fp_decoded_cache {
    pthread_mutex_t lock;
    struct fp_decoded_slot *slots;
    size_t n_slots; /* a power of two; 0: off */
    uint64_t hits, misses;
};

struct fp_store {
    MDB_env *env;
    MDB_dbi meta, series_key, series_id, postings, latest, devices, device_info, dedup, events,
        rollup_1h,
        head_db, head_tail_db;
    bool readonly;
    struct fp_store_options opts;
    uint64_t map_bytes;
    /* Day partition handles. LMDB lets one transaction at a time in a process open database
     * handles, and that transaction must end before another may: parts_lock guards the cache
     * and every mdb_dbi_open. A write transaction that opened a handle keeps holding it until
     * it ends (parts_held); readers open what they miss in a short transaction of their own
     * before they begin, and then read a copy (struct fp_store_reader), so query threads never
     * open handles inside their snapshots. */
    pthread_mutex_t parts_lock;
    bool parts_held;
    struct fp_partition parts[MAX_PARTITIONS];
    size_t n_parts;
    /* writer only */
    struct fp_series_state *states; /* open addressing by id */
    size_t states_cap, states_used;
    struct fp_chunk_enc *enc;
    struct dev_cache **devs;        /* device -> what the writer knows of it (store.c) */
    size_t devs_cap, devs_used;
    /* Background sync (fp_store_options.background_sync): commit counts, guarded by sync_lock */
    bool bg_sync;
    pthread_t sync_thread;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    uint64_t committed, sync_wanted, durable;
    int sync_err; /* the errno of a failed sync: nothing committed after it is known durable */
    bool sync_stop;
    int64_t retention_checked_ms;   /* wall clock of the last retention pass */
    int64_t heads_checked_ms;       /* and of its last scan of the heads (samples.c) */
    struct fp_head head;
    struct fp_sketch *rollup_sketch; /* reused by every rollup computed */
    struct fp_decoded_cache decoded;
};

struct fp_store_reader {
    struct fp_store *store;
    MDB_txn *txn;
    struct fp_partition parts[MAX_PARTITIONS]; /* the store's handles when the reader began */
    size_t n_parts;
    uint64_t chunk_gen; /* the snapshot's raw chunk generation (samples.c) */
};


static inline int buf_reserve(struct buf *b, size_t more)
{
    size_t cap;
    uint8_t *n;

    if (b->len + more <= b->cap)
        return 0;
    cap = b->cap < 256 ? 256 : b->cap;
    while (cap < b->len + more)
        cap *= 2;
    n = realloc(b->data, cap);
    if (n == NULL)
        return -ENOMEM;
    b->data = n;
    b->cap = cap;
    return 0;
}

static inline int buf_add(struct buf *b, const void *p, size_t len)
{
    int r = buf_reserve(b, len);
    if (r < 0)
        return r;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return 0;
}

/* Appends s including its NUL. */
static inline int buf_str(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s) + 1);
}

/* Keys are big-endian so they sort by value. */
static inline void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Flipping the sign bit makes negative timestamps sort before positive ones as unsigned. */
static inline void put_ts(uint8_t *p, int64_t ts)
{
    put_u64(p, (uint64_t)ts ^ (UINT64_C(1) << 63));
}

static inline int64_t get_ts(const uint8_t *p)
{
    return (int64_t)(get_u64(p) ^ (UINT64_C(1) << 63));
}

static inline void put_double(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    put_u64(p, u);
}

static inline double get_double(const uint8_t *p)
{
    uint64_t u = get_u64(p);
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* Zigzag: signed integers as unsigned ones, small magnitudes small (0, -1, 1 -> 0, 1, 2), for
 * put_varint. */
static inline uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t unzz(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* LEB128: 7 bits a byte, low first. Writes at most 10 bytes; returns how many. */
static inline size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint at p[*pos] (len bytes in all), advancing *pos. False when it runs past len or
 * past 64 bits. */
static inline bool get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return true;
        }
    }
    return false;
}

#define HOUR_MS INT64_C(3600000)

/* Start of the UTC hour holding ts_ms (floor, for negative times too). */
static inline int64_t hour_of(int64_t ts_ms)
{
    return (ts_ms / HOUR_MS - (ts_ms % HOUR_MS < 0)) * HOUR_MS;
}

/* Floor division, without negating (which overflows at INT64_MIN). */
static inline int64_t day_of(int64_t ts_ms)
{
    return ts_ms / DAY_MS - (ts_ms % DAY_MS < 0);
}

/* Translates an LMDB result (or a positive errno) into 0, FP_STORE_E_* or -errno. */
int fp_store_map_lmdb(int rc);

/* A u64 under name in meta (0 when absent; MDB_CORRUPTED when not 8 bytes), and its update.
 * LMDB return codes. */
int fp_store_meta_get_u64(MDB_txn *txn, struct fp_store *s, const char *name, uint64_t *ret);
int fp_store_meta_put_u64(MDB_txn *txn, struct fp_store *s, const char *name, uint64_t value);

/* --- samples.c: chunked, time-partitioned sample storage -------------------------------------- */

/* Stores one series' samples (any order) in the write txn. Sets *ret_written and *ret_refused
 * (too old for the out-of-order window or the retention). hint (may be NULL) is where the
 * series' writer state was found last time; updated. Returns an LMDB rc (or ENOMEM). */
int fp_samples_write(MDB_txn *txn, struct fp_store *s, uint64_t id, const int64_t *ts,
                     const double *values, size_t n, int64_t now_ms, uint32_t *hint,
                     uint64_t *ret_written, uint64_t *ret_refused);

/* Starts reading the writer state at slot (a hint from fp_samples_write) into the cache. */
void fp_samples_state_prefetch(const struct fp_store *s, uint32_t slot);

/* Calls fn for the samples of series id in [from_ms, to_ms], oldest first, each timestamp once.
 * Returns 0, fn's non-zero result, or -errno. */
int fp_samples_read(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                    fp_point_fn fn, void *userdata);

/* Merges every series' small chunks into full ones. Returns an LMDB rc. */
int fp_samples_compact_all(MDB_txn *txn, struct fp_store *s);

/* Rewrites one day's partition in key order so its pages are full. Returns an LMDB rc. */
int fp_samples_repack_day(MDB_txn *txn, struct fp_store *s, int64_t day);

/* Lists the days that have a partition, ascending (at most max). Returns an LMDB rc. */
int fp_samples_days(MDB_txn *txn, int64_t *days, size_t max, size_t *ret_n);

/* Drops raw partitions older than the retention. Returns an LMDB rc. */
int fp_samples_retention(MDB_txn *txn, struct fp_store *s, int64_t now_ms);

/* After a write txn: keep (committed) or forget (aborted) partitions it created. */
void fp_samples_txn_end(struct fp_store *s, bool committed);

/* Begins r's read transaction with a copy of the store's partition handles taken before it,
 * opening (in a short transaction of their own) those of days the snapshot has that no handle
 * covers yet. Returns an LMDB rc. */
int fp_samples_reader_begin(struct fp_store *s, struct fp_store_reader *r);

/* fp_samples_read handing runs of samples to fn (fp_store_read_range_blocks); device as for
 * fp_head_read. */
int fp_samples_read_blocks(struct fp_store_reader *r, uint64_t id, const char *device,
                           int64_t from_ms, int64_t to_ms, fp_block_fn fn, void *userdata);
/* fp_samples_read inside the writer's transaction (rollup rebuilds). */
int fp_samples_read_txn(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t from_ms,
                        int64_t to_ms, fp_point_fn fn, void *userdata);

/* Stores every series' open rollup hour (fp_store_compact). Returns an LMDB rc or errno. */
int fp_samples_flush_rollups(MDB_txn *txn, struct fp_store *s);

/* Stores sorted, unique points of series id in chunks (the head's sealer). whole: an hour's
 * stream that ended (or filled up), never counted as a small chunk to merge, so chunks stay on
 * hour boundaries. Returns an LMDB rc or errno. */
int fp_samples_store_sorted(MDB_txn *txn, struct fp_store *s, uint64_t id, const int64_t *ts,
                            const double *values, size_t n, bool whole);

/* --- head.c: each device's newest samples, before they become chunks ----------------------- */

/* Loads device's head into s->head for the batch being applied. Returns an LMDB rc or errno. */
int fp_head_begin(MDB_txn *txn, struct fp_store *s, const char *device);
/* Stores s->head back (or deletes it when empty) and ends the batch. */
int fp_head_end(MDB_txn *txn, struct fp_store *s);
/* Appends points newer than everything stored of series sid (sorted, unique, stride bytes
 * apart) to the active head, sealing entries that are full. */
int fp_head_append(MDB_txn *txn, struct fp_store *s, uint64_t sid, const int64_t *ts,
                   const double *values, size_t stride, size_t n);
/* Seals sid's entry of the active head, if it has one. */
int fp_head_seal_series(MDB_txn *txn, struct fp_store *s, uint64_t sid);
/* Seals every head entry / those last written before cutoff. */
int fp_head_seal_all(MDB_txn *txn, struct fp_store *s);
int fp_head_seal_older(MDB_txn *txn, struct fp_store *s, int64_t cutoff);
/* Calls fn for series id's head samples in [from, to]: through the writer's working copy when
 * writer and it holds the series' device, else from the stored value. device: the series'
 * device label when the caller has it at hand, else NULL (looked up). Returns 0, fn's result,
 * or a store code. */
int fp_head_read(MDB_txn *txn, struct fp_store *s, bool writer, uint64_t id, const char *device,
                 int64_t from, int64_t to, int (*fn)(void *, int64_t, double), void *ud);
void fp_head_fini(struct fp_store *s);
/* Raises *max_ts to sid's newest head sample in the writer's working copy, if newer. */
void fp_head_max_ts(const struct fp_store *s, uint64_t sid, int64_t *max_ts);
/* Series id's newest sample, when its device's head holds the series. Returns 0,
 * FP_STORE_E_NOTFOUND, or a store code. */
int fp_head_latest(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t *ret_ts, double *ret_v);
/* Puts series id's newest sample into "latest". Returns an LMDB rc. */
int fp_samples_put_latest(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t ts, double value);

/* --- rollup.c: one-hour rollups ------------------------------------------------------------ */

/* After the samples of one write (n points at ts, stride bytes apart, sorted, unique) are
 * stored: computes from raw and stores the record of every hour they touched and of the hour
 * that was open, except the hour open after the write (*open_hour, updated; INT64_MIN unknown,
 * then max_ts_before's hour stands in). Returns an LMDB rc or errno. */
int fp_rollup_update(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t *open_hour,
                     int64_t max_ts_before, const int64_t *ts, size_t stride, size_t n);

/* Computes and stores the open hour's record. */
int fp_rollup_flush(MDB_txn *txn, struct fp_store *s, uint64_t id, int64_t open_hour);

void fp_rollup_fini(struct fp_store *s);

/* Deletes up to a bounded number of records older than the rollup retention. */
int fp_rollup_retention(MDB_txn *txn, struct fp_store *s, int64_t now_ms);

/* Frees the writer's series states and encoder. */
void fp_samples_fini(struct fp_store *s);
/* Sets up the readers' decoded-chunk cache (opts.decoded_cache_chunks); 0 or -ENOMEM. */
int fp_samples_cache_init(struct fp_store *s);
