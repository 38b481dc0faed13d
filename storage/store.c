/* The LMDB store behind storage/store.h.
 *
 * Layout (named databases in one environment, all integers big-endian so keys sort by value):
 *   meta        "format" -> u32, "next_series_id" -> u64
 *   series_key  fnv64(canonical key) -> series id            (DUPSORT|DUPFIXED: collisions)
 *   series_id   series id -> type u8, canonical key          canonical: metric\0(name\0value\0)*
 *   postings    name\0value -> series id                     (DUPSORT|DUPFIXED), incl. __name__
 *   raw.<day>   series id, first ts -> last ts, chunk          see samples.c
 *   latest      series id -> ts i64, value double
 *   devices     device -> counters, and the dedup state of its newest epoch  (struct device_rec)
 *   device_info device -> (name\0value\0)* identity, written when it changes
 *   dedup       device\0 epoch -> highest applied seq, bitmap of the 256 seqs below it, for
 *               the device's other epochs
 *   events      ts^sign, device\0, u32 n -> severity u8, kind\0message\0(name\0value\0)*
 *   rollup_1h   hour ts^sign, series id -> one-hour rollup      see rollup.c
 *   head        device -> its newest samples, per series        see head.c
 *
 * Every string stored is NUL-terminated so readers can hand out pointers into the map instead of
 * copies; they stay valid until the read transaction ends.
 *
 * Samples are stored in compressed chunks in one database per day (samples.c); this file keeps
 * the index, devices, dedup marks and events, and runs the write transaction. */
#include "store.h"
#include "error.h"
#include "store-internal.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void fp_store_options_default(struct fp_store_options *ret)
{
    *ret = (struct fp_store_options){
        .initial_map_bytes = UINT64_C(1) << 30,
        .max_map_bytes = UINT64_C(1) << 40,
        .ooo_window_ms = INT64_C(3600) * 1000,
        .raw_retention_ms = INT64_C(15) * 86400 * 1000,
        .rollup_retention_ms = INT64_C(730) * 86400 * 1000,
    };
}

static void dev_cache_clear(struct fp_store *s);

static uint64_t fnv64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int fp_store_map_lmdb(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return FP_STORE_E_NOTFOUND;
    case MDB_MAP_FULL:
        return FP_STORE_E_FULL;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return FP_STORE_E_FORMAT;
    default:
        /* LMDB passes system errors through as positive errno values. */
        return rc > 0 ? -rc : -EIO;
    }
}

const char *fp_store_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case FP_STORE_E_FORMAT:
        return "not a fleetpulse store of a compatible format";
    case FP_STORE_E_NOTFOUND:
        return "not found";
    case FP_STORE_E_DUP:
        return "batch already applied";
    case FP_STORE_E_FULL:
        return "store full (maximum map size reached)";
    default:
        return code < 0 ? strerror(-code) : "unknown store error";
    }
}

/* --- open / close ------------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned flags;
    size_t offset;
} dbs[] = {
    {"meta", 0, offsetof(struct fp_store, meta)},
    {"series_key", MDB_DUPSORT | MDB_DUPFIXED, offsetof(struct fp_store, series_key)},
    {"series_id", 0, offsetof(struct fp_store, series_id)},
    {"postings", MDB_DUPSORT | MDB_DUPFIXED, offsetof(struct fp_store, postings)},
    {"latest", 0, offsetof(struct fp_store, latest)},
    {"devices", 0, offsetof(struct fp_store, devices)},
    {"device_info", 0, offsetof(struct fp_store, device_info)},
    {"dedup", 0, offsetof(struct fp_store, dedup)},
    {"events", 0, offsetof(struct fp_store, events)},
    {"rollup_1h", 0, offsetof(struct fp_store, rollup_1h)},
    {"head", 0, offsetof(struct fp_store, head_db)},
    {"head_tail", 0, offsetof(struct fp_store, head_tail_db)},
};

static int open_dbs(struct fp_store *s, char *err, size_t err_size, const char *dir)
{
    MDB_txn *txn;
    MDB_val k = {6, (void *)"format"}, v;
    unsigned txn_flags = s->readonly ? MDB_RDONLY : 0;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, txn_flags, &txn);
    if (rc != 0) {
        fp_set_err(err, err_size, "cannot read store in %s: %s", dir, mdb_strerror(rc));
        return fp_store_map_lmdb(rc);
    }
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        unsigned flags = dbs[i].flags | (s->readonly ? 0 : MDB_CREATE);
        rc = mdb_dbi_open(txn, dbs[i].name, flags, (MDB_dbi *)((char *)s + dbs[i].offset));
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
            mdb_txn_abort(txn);
            fp_set_err(err, err_size, "%s does not hold a fleetpulse store (database \"%s\" %s)",
                    dir, dbs[i].name, rc == MDB_NOTFOUND ? "missing" : "of another kind");
            return FP_STORE_E_FORMAT;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            fp_set_err(err, err_size, "cannot open store in %s: %s", dir, mdb_strerror(rc));
            return fp_store_map_lmdb(rc);
        }
    }
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND && !s->readonly) {
        uint8_t fmt[4] = {0, 0, 0, FP_STORE_FORMAT};
        MDB_val fv = {sizeof(fmt), fmt};
        rc = mdb_put(txn, s->meta, &k, &fv, 0);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc != 0) {
            fp_set_err(err, err_size, "cannot initialise store in %s: %s", dir, mdb_strerror(rc));
            return fp_store_map_lmdb(rc);
        }
        return 0;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        fp_set_err(err, err_size, "%s does not hold a fleetpulse store (no format version)", dir);
        return FP_STORE_E_FORMAT;
    }
    if (v.mv_size != 4 || ((const uint8_t *)v.mv_data)[3] != FP_STORE_FORMAT ||
        ((const uint8_t *)v.mv_data)[0] | ((const uint8_t *)v.mv_data)[1] |
            ((const uint8_t *)v.mv_data)[2]) {
        const uint8_t *f = v.mv_data;
        unsigned found = v.mv_size == 4 ? ((unsigned)f[0] << 24 | (unsigned)f[1] << 16 |
                                           (unsigned)f[2] << 8 | f[3])
                                        : 0;
        mdb_txn_abort(txn);
        fp_set_err(err, err_size,
                "store in %s has format version %u; this fleetpulse reads version %d "
                "(migrate or use a matching fleetpulse)",
                dir, found, FP_STORE_FORMAT);
        return FP_STORE_E_FORMAT;
    }
    /* Commit even a read-only txn: LMDB closes handles opened in an aborted one. */
    if ((rc = mdb_txn_commit(txn)) != 0) {
        fp_set_err(err, err_size, "cannot open store in %s: %s", dir, mdb_strerror(rc));
        return fp_store_map_lmdb(rc);
    }
    return 0;
}

/* --- background sync --------------------------------------------------------------------------
 * With background_sync the environment is opened MDB_NOMETASYNC: a commit syncs its data pages
 * before it writes the meta page that points at them, and leaves the meta page unsynced. Every
 * commit is then followed by one fdatasync here, in the store's sync thread, which makes that
 * meta page durable while the writer goes on with its next transaction. A commit waits for the
 * sync before it, so at any moment at most the newest commit is not yet durable; after a crash
 * or a power cut the store opens at that commit or the one before, both whole. (MDB_NOSYNC,
 * used before, saved the data sync too, but let the meta page reach the disk before the pages
 * it points at: a power cut there left a store that opens onto garbage. The data sync is on the
 * writer's time: see storage/README.md for what it costs.) */
static void *sync_main(void *arg)
{
    struct fp_store *s = arg;

    (void)pthread_mutex_lock(&s->sync_lock);
    for (;;) {
        uint64_t target;
        int rc;
        while (!s->sync_stop && (s->sync_wanted <= s->durable || s->sync_err != 0))
            (void)pthread_cond_wait(&s->sync_cond, &s->sync_lock);
        if (s->sync_wanted <= s->durable || s->sync_err != 0)
            break; /* stopping, nothing left to sync */
        target = s->sync_wanted;
        (void)pthread_mutex_unlock(&s->sync_lock);
        rc = mdb_env_sync(s->env, 1);
        (void)pthread_mutex_lock(&s->sync_lock);
        if (rc != 0)
            s->sync_err = rc;
        else
            s->durable = target;
        (void)pthread_cond_broadcast(&s->sync_cond);
    }
    (void)pthread_mutex_unlock(&s->sync_lock);
    return NULL;
}

/* Waits (sync_lock held) until commit is durable or a sync failed; -ETIMEDOUT past deadline. */
static int sync_wait_locked(struct fp_store *s, uint64_t commit, const struct timespec *deadline)
{
    while (s->durable < commit && s->sync_err == 0) {
        if (deadline == NULL)
            (void)pthread_cond_wait(&s->sync_cond, &s->sync_lock);
        else if (pthread_cond_timedwait(&s->sync_cond, &s->sync_lock, deadline) == ETIMEDOUT)
            return s->durable >= commit ? 0 : -ETIMEDOUT;
    }
    return s->durable >= commit ? 0 : -EIO;
}

/* Commits a write transaction: durably, or with background_sync after the previous commit's
 * sync and handing its own to the sync thread. Returns an LMDB rc or EIO. */
static int commit_txn(struct fp_store *s, MDB_txn *txn)
{
    int rc;

    if (!s->bg_sync) {
        rc = mdb_txn_commit(txn);
        if (rc == 0)
            s->committed++;
        return rc;
    }
    (void)pthread_mutex_lock(&s->sync_lock);
    rc = sync_wait_locked(s, s->committed, NULL);
    (void)pthread_mutex_unlock(&s->sync_lock);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return EIO;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return rc;
    (void)pthread_mutex_lock(&s->sync_lock);
    s->committed++;
    s->sync_wanted = s->committed;
    (void)pthread_cond_broadcast(&s->sync_cond);
    (void)pthread_mutex_unlock(&s->sync_lock);
    return 0;
}

uint64_t fp_store_committed(struct fp_store *s)
{
    uint64_t n;
    if (!s->bg_sync)
        return s->committed;
    (void)pthread_mutex_lock(&s->sync_lock);
    n = s->committed;
    (void)pthread_mutex_unlock(&s->sync_lock);
    return n;
}

int fp_store_wait_durable(struct fp_store *s, uint64_t commit, int timeout_ms)
{
    struct timespec deadline;
    int r;

    if (!s->bg_sync)
        return 0;
    if (timeout_ms >= 0) {
        (void)clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    (void)pthread_mutex_lock(&s->sync_lock);
    r = sync_wait_locked(s, commit, timeout_ms >= 0 ? &deadline : NULL);
    (void)pthread_mutex_unlock(&s->sync_lock);
    return r;
}

/* Ends the sync thread after it has synced every commit. */
static void sync_stop(struct fp_store *s)
{
    if (!s->bg_sync)
        return;
    (void)pthread_mutex_lock(&s->sync_lock);
    s->sync_stop = true;
    (void)pthread_cond_broadcast(&s->sync_cond);
    (void)pthread_mutex_unlock(&s->sync_lock);
    (void)pthread_join(s->sync_thread, NULL);
    (void)pthread_mutex_destroy(&s->sync_lock);
    (void)pthread_cond_destroy(&s->sync_cond);
    s->bg_sync = false;
}

int fp_store_open(const char *dir, unsigned flags, const struct fp_store_options *opts,
                  struct fp_store **ret, char *err, size_t err_size)
{
    struct fp_store *s;
    struct stat st;
    char path[PATH_MAX];
    unsigned env_flags = MDB_NOTLS | MDB_NORDAHEAD;
    int rc, r;

    if (stat(dir, &st) < 0) {
        r = -errno;
        fp_set_err(err, err_size, "data directory %s: %s", dir, strerror(errno));
        return r;
    }
    if (!S_ISDIR(st.st_mode)) {
        fp_set_err(err, err_size, "data directory %s: not a directory", dir);
        return -ENOTDIR;
    }
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) {
        fp_set_err(err, err_size, "data directory %s: path too long", dir);
        return -ENAMETOOLONG;
    }
    if ((flags & FP_STORE_READONLY) && access(path, F_OK) < 0) {
        fp_set_err(err, err_size, "no fleetpulse store in %s (data.mdb missing; has the collector run?)",
                dir);
        return -ENOENT;
    }
    if (!(flags & FP_STORE_READONLY) && access(dir, W_OK) < 0) {
        r = -errno;
        fp_set_err(err, err_size, "data directory %s is not writable: %s", dir, strerror(errno));
        return r;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->readonly = (flags & FP_STORE_READONLY) != 0;
    (void)pthread_mutex_init(&s->parts_lock, NULL);
    if (opts != NULL)
        s->opts = *opts;
    else
        fp_store_options_default(&s->opts);

    if (s->readonly)
        s->opts.background_sync = false;
    if (s->opts.background_sync)
        env_flags |= MDB_NOMETASYNC;

    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        r = fp_store_map_lmdb(rc);
        goto fail;
    }
    (void)mdb_env_set_maxdbs(s->env, 16 + MAX_PARTITIONS);
    if (s->readonly) {
        env_flags |= MDB_RDONLY;
        /* Map more than the writer will reach, so a grown store never needs a remap here:
         * mdb_env_set_mapsize with transactions open in other threads would pull the map from
         * under them. Address space only; pages are read as they are used. */
        rc = mdb_env_set_mapsize(s->env, READER_MAP_BYTES);
        if (rc != 0) {
            r = fp_store_map_lmdb(rc);
            goto fail;
        }
    } else {
        /* Start at the file's size when it is larger, so a grown store keeps its map. */
        s->map_bytes = s->opts.initial_map_bytes;
        if (stat(path, &st) == 0 && (uint64_t)st.st_size > s->map_bytes)
            s->map_bytes = (uint64_t)st.st_size;
        rc = mdb_env_set_mapsize(s->env, s->map_bytes);
        if (rc != 0) {
            r = fp_store_map_lmdb(rc);
            goto fail;
        }
    }
    rc = mdb_env_open(s->env, dir, env_flags, 0644);
    if (rc != 0) {
        r = fp_store_map_lmdb(rc);
        if (r == FP_STORE_E_FORMAT)
            fp_set_err(err, err_size, "%s does not hold a fleetpulse store (not an LMDB file)", dir);
        else
            fp_set_err(err, err_size, "cannot open store in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    r = open_dbs(s, err, err_size, dir);
    if (r != 0)
        goto fail;
    r = fp_samples_cache_init(s);
    if (r != 0) {
        fp_set_err(err, err_size, "cannot open store in %s: out of memory", dir);
        goto fail;
    }
    if (s->opts.background_sync) {
        /* What opening wrote (a new store's format record) is durable before anything else. */
        rc = mdb_env_sync(s->env, 1);
        if (rc != 0) {
            fp_set_err(err, err_size, "cannot sync store in %s: %s", dir, mdb_strerror(rc));
            r = fp_store_map_lmdb(rc);
            goto fail;
        }
        (void)pthread_mutex_init(&s->sync_lock, NULL);
        (void)pthread_cond_init(&s->sync_cond, NULL);
        rc = pthread_create(&s->sync_thread, NULL, sync_main, s);
        if (rc != 0) {
            (void)pthread_mutex_destroy(&s->sync_lock);
            (void)pthread_cond_destroy(&s->sync_cond);
            fp_set_err(err, err_size, "cannot start the sync thread: %s", strerror(rc));
            r = -rc;
            goto fail;
        }
        s->bg_sync = true;
    }
    *ret = s;
    return 0;
fail:
    if (s->env != NULL)
        mdb_env_close(s->env);
    fp_samples_fini(s); /* what was set up before the failure: the decoded-chunk cache */
    (void)pthread_mutex_destroy(&s->parts_lock);
    free(s);
    return r;
}

void fp_store_close(struct fp_store **sp)
{
    struct fp_store *s = *sp;
    if (s == NULL)
        return;
    sync_stop(s);
    mdb_env_close(s->env);
    fp_samples_fini(s);
    dev_cache_clear(s);
    (void)pthread_mutex_destroy(&s->parts_lock);
    free(s);
    *sp = NULL;
}

/* --- writing -------------------------------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fp_label *)a)->name, ((const struct fp_label *)b)->name);
}

/* The device identity fields (DeviceInfo names) stamped onto every series of the device as
 * labels, so any metric can be grouped or matched by model, version or site the way Prometheus
 * adds target labels. Only these: hostnames and kernels would multiply series for nothing. */
static const struct {
    const char *info;
    const char *label;
} identity_fields[] = {
    {"cohort", "cohort"},
    {"hw_class", "hw"},
    {"model", "model"},
    {"model_version", "model_version"},
    {"quant", "quant"},
    {"runtime", "runtime"},
    {"site", "site"},
};
#define IDENTITY_MAX (sizeof(identity_fields) / sizeof(identity_fields[0]))

bool fp_store_is_identity_label(const struct fp_device_desc *d, const char *name,
                                const char *value)
{
    for (size_t f = 0; f < IDENTITY_MAX; f++) {
        if (strcmp(identity_fields[f].label, name) != 0)
            continue;
        for (size_t i = 0; i < d->n_info; i++)
            if (strcmp(d->info[i].name, identity_fields[f].info) == 0)
                return strcmp(d->info[i].value, value) == 0;
        return false;
    }
    return false;
}

/* A device's identity labels for one batch; values copied, so they outlive map pages. */
struct identity {
    struct fp_label l[IDENTITY_MAX];
    size_t n;
    char buf[IDENTITY_MAX * (KEY_MAX + 1)];
};

/* Splits a device record's identity pairs (name\0value\0 ...) in [p, end) into out, at most
 * max of them. Returns the number, or -1 when the bytes are not such pairs. */
static long info_pairs(const char *p, const char *end, struct fp_label *out, size_t max)
{
    size_t n = 0;

    if (p < end && end[-1] != '\0')
        return -1;
    while (p < end && n < max) {
        const char *name = p, *value = p + strlen(p) + 1;
        if (value >= end)
            return -1;
        out[n++] = (struct fp_label){name, value};
        p = value + strlen(value) + 1;
    }
    return (long)n;
}

static void identity_from_pairs(struct identity *id, const struct fp_label *pairs, size_t n)
{
    size_t used = 0;

    id->n = 0;
    for (size_t f = 0; f < IDENTITY_MAX; f++) {
        for (size_t i = 0; i < n; i++) {
            size_t len;
            if (strcmp(pairs[i].name, identity_fields[f].info) != 0)
                continue;
            len = strlen(pairs[i].value);
            /* An over-long value could never be a label; the series stay storable without it. */
            if (len == 0 || len > KEY_MAX - 16 || used + len + 1 > sizeof(id->buf))
                break;
            memcpy(id->buf + used, pairs[i].value, len + 1);
            id->l[id->n++] = (struct fp_label){identity_fields[f].label, id->buf + used};
            used += len + 1;
            break;
        }
    }
}

/* Builds the canonical key of a series (labels sorted, device and identity labels added) into
 * key; the series' own label wins over an identity label of the same name. Returns 0, or -EINVAL
 * when the series cannot be stored (too many labels, duplicate names, key too long for a
 * posting). */
static int canonical_key(const char *device, const struct identity *ident,
                         const struct fp_series_in *in, struct buf *key)
{
    struct fp_label sorted[MAX_LABELS + 1 + IDENTITY_MAX];
    size_t n = 0;
    int r;

    if (in->n_labels > MAX_LABELS || in->metric == NULL || in->metric[0] == '\0')
        return -EINVAL;
    sorted[n++] = (struct fp_label){"device", device};
    for (size_t i = 0; i < in->n_labels; i++)
        sorted[n++] = in->labels[i];
    for (size_t i = 0; ident != NULL && i < ident->n; i++) {
        bool own = false;
        for (size_t k = 0; k < in->n_labels && !own; k++)
            own = strcmp(in->labels[k].name, ident->l[i].name) == 0;
        if (!own && n < MAX_LABELS + 1)
            sorted[n++] = ident->l[i];
    }
    qsort(sorted, n, sizeof(sorted[0]), label_cmp);
    key->len = 0;
    r = buf_str(key, in->metric);
    if (strlen(in->metric) + 9 > KEY_MAX)
        return -EINVAL;
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (i > 0 && strcmp(sorted[i].name, sorted[i - 1].name) == 0)
            return -EINVAL;
        if (strlen(sorted[i].name) + 1 + strlen(sorted[i].value) > KEY_MAX)
            return -EINVAL;
        r = buf_str(key, sorted[i].name);
        if (r == 0)
            r = buf_str(key, sorted[i].value);
    }
    return r;
}

int fp_store_meta_get_u64(MDB_txn *txn, struct fp_store *s, const char *name, uint64_t *ret)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *ret = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *ret = get_u64(v.mv_data);
    return 0;
}

int fp_store_meta_put_u64(MDB_txn *txn, struct fp_store *s, const char *name, uint64_t value)
{
    uint8_t b[8];
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    put_u64(b, value);
    return mdb_put(txn, s->meta, &k, &v, 0);
}

static int add_posting(MDB_txn *txn, struct fp_store *s, struct buf *tmp, const char *name,
                       const char *value, const uint8_t id_be[8])
{
    MDB_val k, v = {8, (void *)id_be};
    int r;

    tmp->len = 0;
    r = buf_add(tmp, name, strlen(name) + 1);
    if (r == 0)
        r = buf_add(tmp, value, strlen(value));
    if (r < 0)
        return ENOMEM;
    k = (MDB_val){tmp->len, tmp->data};
    r = mdb_put(txn, s->postings, &k, &v, MDB_NODUPDATA);
    return r == MDB_KEYEXIST ? 0 : r;
}

/* Looks up or creates the series with canonical key; sets *ret_id. Returns an LMDB rc. The
 * writer's device cache (below) spares this for series sent as last time. */
static int series_resolve(MDB_txn *txn, struct fp_store *s, const struct buf *key,
                          enum fp_series_type type, uint64_t *next_id, struct buf *tmp,
                          uint64_t *ret_id)
{
    uint8_t hash_be[8], id_be[8];
    MDB_val hk = {8, hash_be}, hv, iv;
    MDB_cursor *cur;
    const char *p, *end;
    int rc;

    uint64_t h = fnv64(key->data, key->len);

    put_u64(hash_be, h);
    rc = mdb_cursor_open(txn, s->series_key, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &hk, &hv, MDB_SET_KEY);
    while (rc == 0) {
        MDB_val ik = {8, hv.mv_data};
        int r2 = mdb_get(txn, s->series_id, &ik, &iv);
        if (r2 == 0 && iv.mv_size == key->len + 1 &&
            memcmp((const uint8_t *)iv.mv_data + 1, key->data, key->len) == 0) {
            *ret_id = get_u64(hv.mv_data);
            mdb_cursor_close(cur);
            return 0;
        }
        rc = mdb_cursor_get(cur, &hk, &hv, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;

    /* New series: id, reverse entry, postings for the name and every label. */
    *ret_id = ++*next_id;
    put_u64(id_be, *ret_id);
    hv = (MDB_val){8, id_be};
    rc = mdb_put(txn, s->series_key, &hk, &hv, 0);
    if (rc != 0)
        return rc;
    tmp->len = 0;
    if (buf_add(tmp, &(uint8_t){(uint8_t)type}, 1) < 0 || buf_add(tmp, key->data, key->len) < 0)
        return ENOMEM;
    {
        MDB_val ik = {8, id_be}, kv = {tmp->len, tmp->data};
        rc = mdb_put(txn, s->series_id, &ik, &kv, MDB_NOOVERWRITE);
        if (rc != 0)
            return rc;
    }
    p = (const char *)key->data;
    end = p + key->len;
    rc = add_posting(txn, s, tmp, "__name__", p, id_be);
    p += strlen(p) + 1;
    while (rc == 0 && p < end) {
        const char *name = p, *value = p + strlen(p) + 1;
        rc = add_posting(txn, s, tmp, name, value, id_be);
        p = value + strlen(value) + 1;
    }
    return rc;
}

/* Dedup state per (device, epoch): the highest seq applied plus a bitmap of the DEDUP_WINDOW
 * seqs at and below it (bit i: seq hwm - i applied). A high-water mark alone is not enough: with
 * several batches in flight, seq N can be lost and resent after N+1 was stored, and must still
 * be applied. Probes keep at most a few dozen batches in flight, so a seq further back than the
 * window was applied or refused long ago; it is treated as applied. */
#define DEDUP_WINDOW 256
#define DEDUP_BYTES (8 + DEDUP_WINDOW / 8)

/* Device record: first_seen, last_seen, batches, samples, duplicates, dropped, last_epoch,
 * last_seq, last_sample, interval, ingest_lag, dedup_epoch (8 bytes each), then the dedup state
 * of dedup_epoch. The record is rewritten with every batch anyway, so the dedup state of the
 * epoch a probe is sending costs no write of its own; other epochs' states (a spool replayed
 * after a restart) wait in the dedup database. The identity pairs, which rarely change, live in
 * device_info, which keeps these records small and the pages a batch dirties few. */
struct device_rec {
    int64_t first_seen, last_seen;
    uint64_t batches, samples, duplicates, dropped, last_epoch, last_seq;
    int64_t last_sample, interval, ingest_lag;
    uint64_t dedup_epoch;
    uint8_t dedup[DEDUP_BYTES];
};
_Static_assert(11 * 8 + 8 + DEDUP_BYTES == DEVICE_HEADER_BYTES, "device record size");

/* What one batch says about its device's timing: the newest sample, and the smallest positive
 * gap between consecutive samples of one series (0 when every series has one sample). */
struct batch_timing {
    int64_t newest;
    int64_t min_gap;
};

static void rec_decode(const uint8_t *p, struct device_rec *r)
{
    r->first_seen = (int64_t)get_u64(p);
    r->last_seen = (int64_t)get_u64(p + 8);
    r->batches = get_u64(p + 16);
    r->samples = get_u64(p + 24);
    r->duplicates = get_u64(p + 32);
    r->dropped = get_u64(p + 40);
    r->last_epoch = get_u64(p + 48);
    r->last_seq = get_u64(p + 56);
    r->last_sample = (int64_t)get_u64(p + 64);
    r->interval = (int64_t)get_u64(p + 72);
    r->ingest_lag = (int64_t)get_u64(p + 80);
    r->dedup_epoch = get_u64(p + 88);
    memcpy(r->dedup, p + 96, DEDUP_BYTES);
}

static void rec_encode(uint8_t *p, const struct device_rec *r)
{
    put_u64(p, (uint64_t)r->first_seen);
    put_u64(p + 8, (uint64_t)r->last_seen);
    put_u64(p + 16, r->batches);
    put_u64(p + 24, r->samples);
    put_u64(p + 32, r->duplicates);
    put_u64(p + 40, r->dropped);
    put_u64(p + 48, r->last_epoch);
    put_u64(p + 56, r->last_seq);
    put_u64(p + 64, (uint64_t)r->last_sample);
    put_u64(p + 72, (uint64_t)r->interval);
    put_u64(p + 80, (uint64_t)r->ingest_lag);
    put_u64(p + 88, r->dedup_epoch);
    memcpy(p + 96, r->dedup, DEDUP_BYTES);
}

/* Gaps longer than this are outages or restarts, not the sampling interval. */
#define INTERVAL_MAX_MS (3600 * 1000)

/* Folds one batch's timing into the device's interval estimate: a gap seen inside the batch
 * wins (backfill, several samples per series); otherwise the step from the previous batch's
 * newest sample (live, one sample per series). A moving average with weight 1/4 follows a
 * changed --interval within a few batches while one late or doubled batch barely moves it. */
static void rec_time(struct device_rec *rec, const struct batch_timing *t, int64_t received_ms)
{
    int64_t gap = t->min_gap;

    if (t->newest == INT64_MIN)
        return;
    if (gap == 0 && rec->last_sample > 0 && t->newest > rec->last_sample)
        gap = t->newest - rec->last_sample;
    if (gap > 0 && gap <= INTERVAL_MAX_MS)
        rec->interval = rec->interval == 0 ? gap : rec->interval + (gap - rec->interval) / 4;
    if (t->newest > rec->last_sample)
        rec->last_sample = t->newest;
    rec->ingest_lag = received_ms - t->newest;
}

/* A device's stored record as one batch found it: the counters, and a copy of the identity pairs
 * (copied: a page read early in a large transaction can be spilled to disk before the record is
 * written back, which would leave a pointer into it dangling). Read once, then kept in the
 * writer's device cache. */
struct device_state {
    bool found;
    struct device_rec rec;
    struct buf *info; /* identity pair bytes, or empty */
};

static int device_load(MDB_txn *txn, struct fp_store *s, const char *device,
                       struct device_state *ret)
{
    MDB_val k = {strlen(device) + 1, (void *)device}, v;
    int rc;

    ret->found = false;
    ret->rec = (struct device_rec){0};
    ret->info->len = 0;
    rc = mdb_get(txn, s->devices, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size != DEVICE_HEADER_BYTES)
        return 0; /* not a record of ours: written anew */
    rec_decode(v.mv_data, &ret->rec);
    ret->found = true;
    rc = mdb_get(txn, s->device_info, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (buf_add(ret->info, v.mv_data, v.mv_size) < 0)
        return ENOMEM;
    return 0;
}

/* --- the writer's device cache --------------------------------------------------------------
 * A live fleet sends many small batches, each like the device's previous one. Per device the
 * writer keeps what it would otherwise read back every batch: the record (with the dedup state
 * of the newest epoch), and the series of the last batch in the order sent, with their ids. A
 * batch like the last one then resolves each series with one comparison of what was sent,
 * instead of building, sorting and hashing its canonical key. The record is still written every
 * batch; the cache only saves reads. It is updated as a transaction goes and cleared whole when
 * one aborts, so it never holds what was not committed. */
#define DEV_CACHE_MAX 65536u
#define DEV_SERIES_MAX 64u

struct dev_series {
    uint64_t id;
    uint32_t off, len; /* in the device's sent bytes: type u8, metric\0, label count u8,
                          (name\0value\0)* in the order sent; len 0: slot empty */
    uint32_t state;    /* where the series' writer state was last found (fp_samples_write) */
};

struct dev_cache {
    char *device;
    uint64_t hash;
    struct device_state st;
    struct buf info; /* st.info */
    /* One block: n_series slots (slot i: the series sent i-th), then their sent bytes, so a
     * batch's lookups touch a few cache lines instead of one allocation per series. */
    struct dev_series *series;
    size_t n_series, sent_len;
};

static uint64_t name_hash(const char *p)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static void dev_series_forget(struct dev_cache *dc)
{
    free(dc->series);
    dc->series = NULL;
    dc->n_series = dc->sent_len = 0;
}

static void dev_cache_clear(struct fp_store *s)
{
    for (size_t i = 0; i < s->devs_cap; i++) {
        struct dev_cache *dc = s->devs[i];
        if (dc == NULL)
            continue;
        dev_series_forget(dc);
        free(dc->info.data);
        free(dc->device);
        free(dc);
    }
    free(s->devs);
    s->devs = NULL;
    s->devs_cap = s->devs_used = 0;
}

/* The cache entry of device, loaded from LMDB on first sight. Returns an LMDB rc (ENOMEM). */
static int dev_cache_get(MDB_txn *txn, struct fp_store *s, const char *device,
                         struct dev_cache **ret)
{
    uint64_t h = name_hash(device);
    struct dev_cache *dc;
    size_t p;
    int rc;

    if (s->devs_cap > 0) {
        for (p = h & (s->devs_cap - 1); s->devs[p] != NULL; p = (p + 1) & (s->devs_cap - 1)) {
            dc = s->devs[p];
            if (dc->hash == h && strcmp(dc->device, device) == 0) {
                *ret = dc;
                return 0;
            }
        }
    }
    if (s->devs_used >= DEV_CACHE_MAX)
        dev_cache_clear(s); /* a fleet this large pays the reads again, bounded memory */
    if ((s->devs_used + 1) * 2 > s->devs_cap) {
        size_t cap = s->devs_cap == 0 ? 1024 : s->devs_cap * 2;
        struct dev_cache **n = calloc(cap, sizeof(*n));
        if (n == NULL)
            return ENOMEM;
        for (size_t i = 0; i < s->devs_cap; i++) {
            if (s->devs[i] == NULL)
                continue;
            for (p = s->devs[i]->hash & (cap - 1); n[p] != NULL; p = (p + 1) & (cap - 1))
                ;
            n[p] = s->devs[i];
        }
        free(s->devs);
        s->devs = n;
        s->devs_cap = cap;
    }
    dc = calloc(1, sizeof(*dc));
    if (dc == NULL || (dc->device = strdup(device)) == NULL) {
        free(dc);
        return ENOMEM;
    }
    dc->hash = h;
    dc->st.info = &dc->info;
    rc = device_load(txn, s, device, &dc->st);
    if (rc != 0) {
        free(dc->info.data);
        free(dc->device);
        free(dc);
        return rc;
    }
    for (p = h & (s->devs_cap - 1); s->devs[p] != NULL; p = (p + 1) & (s->devs_cap - 1))
        ;
    s->devs[p] = dc;
    s->devs_used++;
    *ret = dc;
    return 0;
}

static bool sent_str(const uint8_t **p, const uint8_t *end, const char *str)
{
    /* One pass, as strcmp would, but bounded by end: the strings are short. */
    const uint8_t *q = *p;
    for (;; q++, str++) {
        if (q == end || *q != (uint8_t)*str)
            return false;
        if (*q == '\0')
            break;
    }
    *p = q + 1;
    return true;
}

/* The slot of in when the device sent the same series in slot i last time, else NULL. */
static struct dev_series *dev_series_find(const struct dev_cache *dc, size_t i,
                                          const struct fp_series_in *in)
{
    struct dev_series *ds = i < dc->n_series ? &dc->series[i] : NULL;
    const uint8_t *p, *end;

    if (ds == NULL || ds->len == 0)
        return NULL;
    p = (const uint8_t *)(dc->series + dc->n_series) + ds->off;
    end = p + ds->len;
    if (*p++ != (uint8_t)in->type || !sent_str(&p, end, in->metric) || p == end ||
        *p++ != (uint8_t)in->n_labels)
        return NULL;
    for (size_t k = 0; k < in->n_labels; k++)
        if (!sent_str(&p, end, in->labels[k].name) || !sent_str(&p, end, in->labels[k].value))
            return NULL;
    return p == end ? ds : NULL;
}

/* Remembers in as the series sent in slot i, rebuilding the device's block (rare: a device's
 * first batch, or one that changed). Only a cache: running out of memory leaves it as it was. */
static void dev_series_remember(struct dev_cache *dc, size_t i, const struct fp_series_in *in,
                                uint64_t id, struct buf *tmp)
{
    size_t n, len = 0;
    struct dev_series *blk;
    uint8_t *sent, *old_sent;

    if (i >= DEV_SERIES_MAX || in->n_labels > MAX_LABELS)
        return;
    tmp->len = 0;
    if (buf_add(tmp, &(uint8_t){(uint8_t)in->type}, 1) < 0 || buf_str(tmp, in->metric) < 0 ||
        buf_add(tmp, &(uint8_t){(uint8_t)in->n_labels}, 1) < 0)
        return;
    for (size_t k = 0; k < in->n_labels; k++)
        if (buf_str(tmp, in->labels[k].name) < 0 || buf_str(tmp, in->labels[k].value) < 0)
            return;
    n = i + 1 > dc->n_series ? i + 1 : dc->n_series;
    blk = malloc(n * sizeof(*blk) + dc->sent_len + tmp->len);
    if (blk == NULL)
        return;
    sent = (uint8_t *)(blk + n);
    old_sent = (uint8_t *)(dc->series + dc->n_series);
    for (size_t k = 0; k < n; k++) {
        const struct dev_series *o = k < dc->n_series ? &dc->series[k] : NULL;
        if (k == i) {
            memcpy(sent + len, tmp->data, tmp->len);
            blk[k] = (struct dev_series){.id = id, .off = (uint32_t)len,
                                         .len = (uint32_t)tmp->len};
        } else if (o != NULL && o->len > 0) {
            memcpy(sent + len, old_sent + o->off, o->len);
            blk[k] = *o;
            blk[k].off = (uint32_t)len;
        } else {
            blk[k] = (struct dev_series){0};
        }
        len += blk[k].len;
    }
    free(dc->series);
    dc->series = blk;
    dc->n_series = n;
    dc->sent_len = len;
}

/* The identity labels of b's device: from the batch when it carries DeviceInfo, else from the
 * stored record (a probe sends its identity only when it changes). Returns an LMDB rc. */
static int device_identity(const struct fp_write_batch *b, const struct device_state *dev,
                           struct identity *ret)
{
    struct fp_label pairs[64];
    const char *p = (const char *)dev->info->data;
    long n;

    if (b->n_info > 0) {
        identity_from_pairs(ret, b->info, b->n_info);
        return 0;
    }
    ret->n = 0;
    if (dev->info->len == 0)
        return 0;
    n = info_pairs(p, p + dev->info->len, pairs, sizeof(pairs) / sizeof(pairs[0]));
    if (n < 0)
        return MDB_CORRUPTED;
    identity_from_pairs(ret, pairs, (size_t)n);
    return 0;
}

/* True when b carries identity labels other than the ones stored for its device. */
static bool identity_changes(const struct fp_write_batch *b, const struct device_state *dev)
{
    static const struct fp_write_batch no_info = {0};
    struct identity *now, *before;
    bool changed = true;

    if (b->n_info == 0)
        return false;
    now = malloc(sizeof(*now));
    before = malloc(sizeof(*before));
    if (now != NULL && before != NULL && device_identity(b, dev, now) == 0 &&
        device_identity(&no_info, dev, before) == 0 && now->n == before->n) {
        changed = false;
        for (size_t i = 0; i < now->n && !changed; i++)
            changed = strcmp(now->l[i].name, before->l[i].name) != 0 ||
                      strcmp(now->l[i].value, before->l[i].value) != 0;
    }
    free(now);
    free(before);
    return changed;
}

/* Writes back the record of b's device with b counted (as applied, or as a duplicate), and its
 * identity pairs when b brings new ones. */
static int update_device(MDB_txn *txn, struct fp_store *s, const struct fp_write_batch *b,
                         struct device_state *dev, bool duplicate, uint64_t samples,
                         const struct batch_timing *timing, struct buf *tmp)
{
    MDB_val k = {strlen(b->device) + 1, (void *)b->device}, v;
    struct device_rec *rec = &dev->rec;
    uint8_t hdr[DEVICE_HEADER_BYTES];
    int rc;

    if (!dev->found)
        rec->first_seen = b->received_ms;
    if (duplicate) {
        rec->duplicates++;
    } else {
        rec->batches++;
        rec->samples += samples;
        rec->last_seen = b->received_ms > rec->last_seen ? b->received_ms : rec->last_seen;
        rec->dropped = b->dropped_samples_total;
        if (b->epoch != rec->last_epoch || b->seq > rec->last_seq)
            rec->last_seq = b->seq;
        rec->last_epoch = b->epoch;
        rec_time(rec, timing, b->received_ms);
    }
    rec_encode(hdr, rec);
    v = (MDB_val){sizeof(hdr), hdr};
    rc = mdb_put(txn, s->devices, &k, &v, 0);
    if (rc != 0)
        return rc;
    dev->found = true;
    if (b->n_info == 0 || duplicate)
        return 0;
    tmp->len = 0;
    for (size_t i = 0; i < b->n_info; i++)
        if (buf_str(tmp, b->info[i].name) < 0 || buf_str(tmp, b->info[i].value) < 0)
            return ENOMEM;
    if (tmp->len == dev->info->len && memcmp(tmp->data, dev->info->data, tmp->len) == 0)
        return 0; /* resent unchanged, as after every probe restart */
    v = (MDB_val){tmp->len, tmp->data};
    rc = tmp->len > 0 ? mdb_put(txn, s->device_info, &k, &v, 0)
                      : mdb_del(txn, s->device_info, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    dev->info->len = 0;
    if (buf_add(dev->info, tmp->data, tmp->len) < 0)
        return ENOMEM;
    return 0;
}

/* Moves every bit of the little-endian bitmap shift places up (seq hwm moved up by shift). */
static void bitmap_shift(uint8_t *bits, uint64_t shift)
{
    uint8_t out[DEDUP_WINDOW / 8] = {0};
    if (shift < DEDUP_WINDOW) {
        size_t by = (size_t)(shift / 8), r = (size_t)(shift % 8);
        for (size_t j = by; j < DEDUP_WINDOW / 8; j++) {
            out[j] = (uint8_t)(bits[j - by] << r);
            if (r > 0 && j > by)
                out[j] |= (uint8_t)(bits[j - by - 1] >> (8 - r));
        }
    }
    memcpy(bits, out, sizeof(out));
}

static void dedup_key(struct buf *tmp, const char *device, uint64_t epoch, MDB_val *ret)
{
    tmp->len = 0;
    (void)buf_str(tmp, device);
    put_u64(tmp->data + tmp->len, epoch);
    tmp->len += 8;
    *ret = (MDB_val){tmp->len, tmp->data};
}

/* Sets *ret_dup when (device, epoch, seq) was applied before; otherwise records it in the
 * device's record (written back by update_device). Returns an LMDB rc. */
static int dedup_check(MDB_txn *txn, struct fp_store *s, const struct fp_write_batch *b,
                       struct device_state *dev, struct buf *tmp, bool *ret_dup)
{
    struct device_rec *rec = &dev->rec;
    uint8_t *state = rec->dedup, *bits = state + 8;
    uint64_t hwm;
    MDB_val k, v;
    int rc;

    *ret_dup = false;
    if (buf_reserve(tmp, strlen(b->device) + 1 + 8) < 0)
        return ENOMEM;
    if (rec->dedup_epoch != b->epoch) {
        /* Not the epoch the record holds: park the record's, take this one's. */
        if (get_u64(state) != 0) {
            dedup_key(tmp, b->device, rec->dedup_epoch, &k);
            v = (MDB_val){DEDUP_BYTES, state};
            rc = mdb_put(txn, s->dedup, &k, &v, 0);
            if (rc != 0)
                return rc;
        }
        dedup_key(tmp, b->device, b->epoch, &k);
        rc = mdb_get(txn, s->dedup, &k, &v);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        if (rc == 0 && v.mv_size == DEDUP_BYTES)
            memcpy(state, v.mv_data, DEDUP_BYTES);
        else
            memset(state, 0, DEDUP_BYTES);
        rec->dedup_epoch = b->epoch;
    }
    hwm = get_u64(state);
    if (hwm == 0 || b->seq > hwm) {
        bitmap_shift(bits, hwm == 0 ? DEDUP_WINDOW : b->seq - hwm);
        bits[0] |= 1;
        hwm = b->seq;
    } else {
        uint64_t d = hwm - b->seq;
        if (d >= DEDUP_WINDOW || (bits[d / 8] & (1u << (d % 8)))) {
            *ret_dup = true;
            return 0;
        }
        bits[d / 8] |= (uint8_t)(1u << (d % 8));
    }
    put_u64(state, hwm);
    return 0;
}

static int write_events(MDB_txn *txn, struct fp_store *s, const struct fp_write_batch *b,
                        struct buf *key, struct buf *val)
{
    for (size_t i = 0; i < b->n_events; i++) {
        const struct fp_event_in *e = &b->events[i];
        MDB_val k, v;
        uint8_t n_be[8];
        int rc;

        key->len = 0;
        if (buf_reserve(key, 8) < 0)
            return ENOMEM;
        put_ts(key->data, e->ts_ms);
        key->len = 8;
        if (buf_str(key, b->device) < 0)
            return ENOMEM;
        /* The batch's seq and the event's index make the key unique without a counter. */
        put_u64(n_be, (b->seq << 16) | (i & 0xffff));
        if (buf_add(key, n_be, 8) < 0 || key->len > KEY_MAX)
            continue;
        val->len = 0;
        if (buf_add(val, &(uint8_t){(uint8_t)e->severity}, 1) < 0 ||
            buf_str(val, e->kind != NULL ? e->kind : "") < 0 ||
            buf_str(val, e->message != NULL ? e->message : "") < 0)
            return ENOMEM;
        for (size_t a = 0; a < e->n_attrs; a++)
            if (buf_str(val, e->attrs[a].name) < 0 || buf_str(val, e->attrs[a].value) < 0)
                return ENOMEM;
        k = (MDB_val){key->len, key->data};
        v = (MDB_val){val->len, val->data};
        rc = mdb_put(txn, s->events, &k, &v, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void batch_timing_add(struct batch_timing *t, const struct fp_series_in *in)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->ts_ms[i] > t->newest)
            t->newest = in->ts_ms[i];
        if (i > 0 && in->ts_ms[i] > in->ts_ms[i - 1] &&
            (t->min_gap == 0 || in->ts_ms[i] - in->ts_ms[i - 1] < t->min_gap))
            t->min_gap = in->ts_ms[i] - in->ts_ms[i - 1];
    }
}

/* New series one transaction may create before it commits and the rest of the call goes on in
 * the next: a fleet's first batches create thousands of series at once, dirtying index pages by
 * the tens of thousands, and LMDB keeps as many page buffers as its largest transaction
 * dirtied for as long as the store is open. */
#define NEW_SERIES_PER_TXN 4096

/* One attempt at writing batches in one transaction; sets *ret_done to how many it wrote (all n
 * unless NEW_SERIES_PER_TXN ended it early). Returns an LMDB rc (or errno). */
static int write_txn(struct fp_store *s, const struct fp_write_batch *batches, size_t n,
                     struct fp_write_result *res, struct buf *key, struct buf *tmp,
                     struct buf *info, size_t *ret_done)
{
    struct identity ident;
    MDB_txn *txn;
    uint64_t next_id, first_id;
    size_t done = n;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    rc = fp_store_meta_get_u64(txn, s, "next_series_id", &next_id);
    first_id = next_id;
    for (size_t bi = 0; rc == 0 && bi < n; bi++) {
        if (next_id - first_id >= NEW_SERIES_PER_TXN) {
            done = bi;
            break;
        }
        const struct fp_write_batch *b = &batches[bi];
        uint64_t written = 0, refused = 0, too_old = 0;
        struct batch_timing timing = {INT64_MIN, 0};
        bool dup = false, have_ident = false;
        struct dev_cache *dc;

        res[bi] = (struct fp_write_result){0};
        rc = dev_cache_get(txn, s, b->device, &dc);
        if (rc == 0 && b->seq > 0)
            rc = dedup_check(txn, s, b, &dc->st, tmp, &dup);
        if (rc != 0)
            break;
        if (dup) {
            res[bi].status = FP_STORE_E_DUP;
            rc = update_device(txn, s, b, &dc->st, true, 0, NULL, tmp);
            continue;
        }
        /* New identity labels may give every series of the device a new id. A probe resends
         * its identity when it restarts, mostly unchanged. */
        if (identity_changes(b, &dc->st))
            dev_series_forget(dc);
        /* Start the memory reads of this batch's series states now, all at once. */
        for (size_t k = 0; k < dc->n_series; k++)
            fp_samples_state_prefetch(s, dc->series[k].state);
        rc = fp_head_begin(txn, s, b->device);
        for (size_t si = 0; rc == 0 && si < b->n_series; si++) {
            const struct fp_series_in *in = &b->series[si];
            struct dev_series *ds = dev_series_find(dc, si, in);
            uint64_t id, w = 0, old = 0;
            uint32_t hint = UINT32_MAX;
            if (ds != NULL) {
                id = ds->id;
                hint = ds->state;
            } else {
                int r;
                if (!have_ident) {
                    ident.n = 0;
                    if (b->device[0] != '@' && (rc = device_identity(b, &dc->st, &ident)) != 0)
                        break;
                    have_ident = true;
                }
                r = canonical_key(b->device, &ident, in, key);
                if (r == -ENOMEM) {
                    rc = ENOMEM;
                    break;
                }
                if (r < 0) {
                    refused += in->n;
                    continue;
                }
                rc = series_resolve(txn, s, key, in->type, &next_id, tmp, &id);
                if (rc == 0)
                    dev_series_remember(dc, si, in, id, tmp);
                ds = dev_series_find(dc, si, in);
            }
            if (rc == 0)
                rc = fp_samples_write(txn, s, id, in->ts_ms, in->values, in->n, b->received_ms,
                                      &hint, &w, &old);
            if (ds != NULL)
                ds->state = hint;
            written += w;
            refused += old;
            too_old += old;
            batch_timing_add(&timing, in);
        }
        if (rc == 0)
            rc = fp_head_end(txn, s);
        if (rc == 0)
            rc = write_events(txn, s, b, key, tmp);
        if (rc == 0)
            rc = update_device(txn, s, b, &dc->st, false, written, &timing, tmp);
        res[bi].samples_written = written;
        res[bi].samples_refused = refused;
        res[bi].samples_too_old = too_old;
    }
    if (rc == 0)
        rc = fp_store_meta_put_u64(txn, s, "next_series_id", next_id);
    /* Retention rides on a write at most once a minute: dropping a day is one mdb_drop. */
    if (rc == 0 && n > 0 && batches[0].received_ms - s->retention_checked_ms >= 60000) {
        rc = fp_samples_retention(txn, s, batches[0].received_ms);
        if (rc == 0)
            rc = fp_rollup_retention(txn, s, batches[0].received_ms);
        if (rc == 0)
            s->retention_checked_ms = batches[0].received_ms;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        fp_samples_txn_end(s, false);
        dev_cache_clear(s);
        return rc;
    }
    rc = commit_txn(s, txn);
    fp_samples_txn_end(s, rc == 0);
    if (rc != 0) {
        dev_cache_clear(s);
    }
    if (rc == 0)
        *ret_done = done;
    return rc;
}

/* Runs step in its own write transaction, growing the map and retrying on MDB_MAP_FULL. */
static int run_txn(struct fp_store *s, int (*step)(MDB_txn *, struct fp_store *, int64_t),
                   int64_t arg)
{
    MDB_txn *txn;
    int rc;

    for (;;) {
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc != 0)
            return rc;
        rc = step(txn, s, arg);
        if (rc == 0) {
            rc = commit_txn(s, txn);
            fp_samples_txn_end(s, rc == 0);
            if (rc != 0) {
                dev_cache_clear(s);
            } else if (fp_store_wait_durable(s, fp_store_committed(s), -1) != 0) {
                /* Maintenance is rare: it returns durable, as without background_sync. */
                return EIO;
            }
        } else {
            mdb_txn_abort(txn);
            fp_samples_txn_end(s, false);
            dev_cache_clear(s);
        }
        if (rc != MDB_MAP_FULL || s->map_bytes >= s->opts.max_map_bytes)
            return rc;
        s->map_bytes = s->map_bytes * 2 > s->opts.max_map_bytes ? s->opts.max_map_bytes
                                                                : s->map_bytes * 2;
        rc = mdb_env_set_mapsize(s->env, s->map_bytes);
        if (rc != 0)
            return rc;
    }
}

static int compact_step(MDB_txn *txn, struct fp_store *s, int64_t unused)
{
    int rc = fp_samples_compact_all(txn, s);
    return rc == 0 ? fp_samples_flush_rollups(txn, s) : rc;
}

int fp_store_compact(struct fp_store *s)
{
    int64_t days[MAX_PARTITIONS];
    size_t n = 0;
    MDB_txn *txn;
    int rc;

    if (s->readonly)
        return -EROFS;
    rc = run_txn(s, compact_step, 0);
    if (rc == 0)
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = fp_samples_days(txn, days, MAX_PARTITIONS, &n);
        mdb_txn_abort(txn);
    }
    /* One transaction per day keeps each one's dirty pages bounded. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = run_txn(s, fp_samples_repack_day, days[i]);
    return rc == ENOMEM ? -ENOMEM : fp_store_map_lmdb(rc);
}

int fp_store_write(struct fp_store *s, const struct fp_write_batch *batches, size_t n,
                   struct fp_write_result *ret_results)
{
    struct buf key = {0}, tmp = {0}, info = {0};
    int rc = 0;

    if (s->readonly)
        return -EROFS;
    for (size_t off = 0, done; off < n;) {
        rc = write_txn(s, batches + off, n - off, ret_results + off, &key, &tmp, &info, &done);
        if (rc == 0) {
            off += done;
            continue;
        }
        if (rc != MDB_MAP_FULL)
            break;
        /* Grow and redo the whole transaction: nothing of the failed attempt was committed. */
        if (s->map_bytes >= s->opts.max_map_bytes) {
            rc = MDB_MAP_FULL;
            break;
        }
        s->map_bytes = s->map_bytes * 2 > s->opts.max_map_bytes ? s->opts.max_map_bytes
                                                                : s->map_bytes * 2;
        rc = mdb_env_set_mapsize(s->env, s->map_bytes);
        if (rc != 0)
            break;
    }
    free(key.data);
    free(tmp.data);
    free(info.data);
    if (rc == ENOMEM)
        return -ENOMEM;
    return fp_store_map_lmdb(rc);
}

/* --- reading -------------------------------------------------------------------------------- */

int fp_store_reader_open(struct fp_store *s, struct fp_store_reader **ret)
{
    struct fp_store_reader *r = calloc(1, sizeof(*r));
    int rc;

    if (r == NULL)
        return -ENOMEM;
    r->store = s;
    rc = fp_samples_reader_begin(s, r);
    if (rc != 0) {
        free(r);
        return fp_store_map_lmdb(rc);
    }
    *ret = r;
    return 0;
}

void fp_store_reader_close(struct fp_store_reader **rp)
{
    struct fp_store_reader *r = *rp;
    if (r == NULL)
        return;
    /* Commit, not abort: LMDB keeps the partition handles opened in a committed read txn. */
    (void)mdb_txn_commit(r->txn);
    free(r);
    *rp = NULL;
}

int fp_store_series_get(struct fp_store_reader *r, uint64_t id, struct fp_series_desc *ret)
{
    uint8_t id_be[8];
    MDB_val k = {8, id_be}, v;
    const char *p, *end;
    int rc;

    put_u64(id_be, id);
    rc = mdb_get(r->txn, r->store->series_id, &k, &v);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    if (v.mv_size < 2 || ((const char *)v.mv_data)[v.mv_size - 1] != '\0')
        return -EIO;
    ret->id = id;
    ret->type = (enum fp_series_type)((const uint8_t *)v.mv_data)[0];
    p = (const char *)v.mv_data + 1;
    end = (const char *)v.mv_data + v.mv_size;
    ret->metric = p;
    p += strlen(p) + 1;
    ret->n_labels = 0;
    while (p < end && ret->n_labels < sizeof(ret->labels) / sizeof(ret->labels[0])) {
        const char *name = p, *value = p + strlen(p) + 1;
        if (value >= end)
            return -EIO;
        ret->labels[ret->n_labels++] = (struct fp_label){name, value};
        p = value + strlen(value) + 1;
    }
    return 0;
}

/* A sorted, growable id list. */
struct ids {
    uint64_t *v;
    size_t n, cap;
};

static int ids_push(struct ids *l, uint64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap < 64 ? 64 : l->cap * 2;
        uint64_t *nv = realloc(l->v, cap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}

/* Reads the posting list of name=value (sorted, since DUPSORT keeps dups in byte order and ids
 * are big-endian). */
static int postings_get(struct fp_store_reader *r, const char *name, const char *value,
                        struct ids *out)
{
    char kb[KEY_MAX + 1];
    size_t nl = strlen(name), vl = strlen(value);
    MDB_val k, v;
    MDB_cursor *cur;
    int rc, err = 0;

    out->n = 0;
    if (nl + 1 + vl > KEY_MAX)
        return 0;
    memcpy(kb, name, nl + 1);
    memcpy(kb + nl + 1, value, vl);
    k = (MDB_val){nl + 1 + vl, kb};
    rc = mdb_cursor_open(r->txn, r->store->postings, &cur);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE);
    while (rc == 0 && err == 0) {
        for (size_t i = 0; i + 8 <= v.mv_size && err == 0; i += 8)
            err = ids_push(out, get_u64((const uint8_t *)v.mv_data + i));
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    mdb_cursor_close(cur);
    if (err != 0)
        return err;
    return rc == MDB_NOTFOUND ? 0 : fp_store_map_lmdb(rc);
}

/* Walks distinct posting keys (name\0value) from the first one >= prefix while they start with
 * prefix; calls visit(key, len) for each. */
static int postings_walk(struct fp_store_reader *r, const char *prefix, size_t prefix_len,
                         int (*visit)(void *ctx, const char *key, size_t len), void *ctx)
{
    MDB_cursor *cur;
    MDB_val k = {prefix_len, (void *)prefix}, v;
    int rc, res = 0;

    rc = mdb_cursor_open(r->txn, r->store->postings, &cur);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    rc = prefix_len > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                        : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && res == 0) {
        if (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)
            break;
        res = visit(ctx, k.mv_data, k.mv_size);
        if (res == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
    }
    mdb_cursor_close(cur);
    if (res != 0)
        return res;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : fp_store_map_lmdb(rc);
}

struct walk_ctx {
    fp_string_fn fn;
    void *userdata;
    size_t skip;        /* bytes of the key before the string to report */
    char last[KEY_MAX + 1];
    bool have_last;
};

/* Label names: each key is name\0value; report each name once (keys are sorted, so repeats are
 * adjacent). */
static int visit_name(void *ctx, const char *key, size_t len)
{
    struct walk_ctx *w = ctx;
    size_t n = strnlen(key, len);
    if (n >= len || n > KEY_MAX)
        return 0;
    if (w->have_last && strncmp(w->last, key, n) == 0 && w->last[n] == '\0')
        return 0;
    memcpy(w->last, key, n);
    w->last[n] = '\0';
    w->have_last = true;
    return w->fn(w->userdata, w->last);
}

static int visit_value(void *ctx, const char *key, size_t len)
{
    struct walk_ctx *w = ctx;
    char buf[KEY_MAX + 1];
    if (len < w->skip || len - w->skip > KEY_MAX)
        return 0;
    memcpy(buf, key + w->skip, len - w->skip);
    buf[len - w->skip] = '\0';
    return w->fn(w->userdata, buf);
}

int fp_store_label_names(struct fp_store_reader *r, fp_string_fn fn, void *userdata)
{
    struct walk_ctx w = {.fn = fn, .userdata = userdata};
    return postings_walk(r, "", 0, visit_name, &w);
}

int fp_store_label_values(struct fp_store_reader *r, const char *name, fp_string_fn fn,
                          void *userdata)
{
    struct walk_ctx w = {.fn = fn, .userdata = userdata};
    size_t n = strlen(name);
    if (n + 1 > KEY_MAX)
        return 0;
    w.skip = n + 1;
    /* The prefix includes the NUL, so "zone" does not also match "zones". */
    return postings_walk(r, name, n + 1, visit_value, &w);
}

static void ids_intersect(struct ids *a, const struct ids *b)
{
    size_t i = 0, j = 0, n = 0;
    while (i < a->n && j < b->n) {
        if (a->v[i] < b->v[j])
            i++;
        else if (a->v[i] > b->v[j])
            j++;
        else {
            a->v[n++] = a->v[i];
            i++;
            j++;
        }
    }
    a->n = n;
}

static const char *desc_label(const struct fp_series_desc *d, const char *name)
{
    if (strcmp(name, "__name__") == 0)
        return d->metric;
    for (size_t i = 0; i < d->n_labels; i++)
        if (strcmp(d->labels[i].name, name) == 0)
            return d->labels[i].value;
    return "";
}

int fp_store_select(struct fp_store_reader *r, const struct fp_matcher *m, size_t n_matchers,
                    uint64_t **ret_ids, size_t *ret_n)
{
    struct ids acc = {0}, tmp = {0};
    regex_t *res = NULL;
    bool have_eq = false, need_filter = false;
    int err = 0;

    *ret_ids = NULL;
    *ret_n = 0;
    if (n_matchers > 0) {
        res = calloc(n_matchers, sizeof(*res));
        if (res == NULL)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n_matchers; i++) {
        if (m[i].op == FP_MATCH_RE || m[i].op == FP_MATCH_NRE) {
            size_t len = strlen(m[i].value) + 5;
            char *anchored = malloc(len);
            if (anchored == NULL) {
                err = -ENOMEM;
                n_matchers = i;
                goto out;
            }
            (void)snprintf(anchored, len, "^(%s)$", m[i].value);
            if (regcomp(&res[i], anchored, REG_EXTENDED | REG_NOSUB) != 0) {
                free(anchored);
                err = -EINVAL;
                n_matchers = i;
                goto out;
            }
            free(anchored);
        }
    }
    /* Equality matchers on a non-empty value narrow through postings; everything else filters
     * the candidates by reading each series' labels. */
    for (size_t i = 0; i < n_matchers; i++) {
        if (m[i].op != FP_MATCH_EQ || m[i].value[0] == '\0') {
            need_filter = true;
            continue;
        }
        err = postings_get(r, m[i].name, m[i].value, have_eq ? &tmp : &acc);
        if (err != 0)
            goto out;
        if (have_eq)
            ids_intersect(&acc, &tmp);
        have_eq = true;
        if (acc.n == 0)
            goto out;
    }
    if (!have_eq) {
        MDB_cursor *cur;
        MDB_val k, v;
        int rc = mdb_cursor_open(r->txn, r->store->series_id, &cur);
        if (rc != 0) {
            err = fp_store_map_lmdb(rc);
            goto out;
        }
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0 && err == 0)
            if (k.mv_size == 8)
                err = ids_push(&acc, get_u64(k.mv_data));
        mdb_cursor_close(cur);
        if (err == 0 && rc != MDB_NOTFOUND)
            err = fp_store_map_lmdb(rc);
        if (err != 0)
            goto out;
    }
    if (need_filter) {
        size_t keep = 0;
        for (size_t c = 0; c < acc.n; c++) {
            struct fp_series_desc d;
            bool ok = true;
            err = fp_store_series_get(r, acc.v[c], &d);
            if (err == FP_STORE_E_NOTFOUND) {
                err = 0;
                continue;
            }
            if (err != 0)
                goto out;
            for (size_t i = 0; i < n_matchers && ok; i++) {
                const char *val = desc_label(&d, m[i].name);
                switch (m[i].op) {
                case FP_MATCH_EQ:
                    ok = strcmp(val, m[i].value) == 0;
                    break;
                case FP_MATCH_NE:
                    ok = strcmp(val, m[i].value) != 0;
                    break;
                case FP_MATCH_RE:
                    ok = regexec(&res[i], val, 0, NULL, 0) == 0;
                    break;
                case FP_MATCH_NRE:
                    ok = regexec(&res[i], val, 0, NULL, 0) != 0;
                    break;
                }
            }
            if (ok)
                acc.v[keep++] = acc.v[c];
        }
        acc.n = keep;
    }
out:
    for (size_t i = 0; i < n_matchers; i++)
        if (m[i].op == FP_MATCH_RE || m[i].op == FP_MATCH_NRE)
            regfree(&res[i]);
    free(res);
    free(tmp.v);
    if (err != 0 || acc.n == 0) {
        free(acc.v);
        return err;
    }
    *ret_ids = acc.v;
    *ret_n = acc.n;
    return 0;
}

int fp_store_read_range(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                        fp_point_fn fn, void *userdata)
{
    return fp_samples_read(r, id, from_ms, to_ms, fn, userdata);
}

int fp_store_read_range_blocks(struct fp_store_reader *r, uint64_t id, int64_t from_ms,
                               int64_t to_ms, fp_block_fn fn, void *userdata)
{
    return fp_samples_read_blocks(r, id, NULL, from_ms, to_ms, fn, userdata);
}

int fp_store_read_device_blocks(struct fp_store_reader *r, uint64_t id, const char *device,
                                int64_t from_ms, int64_t to_ms, fp_block_fn fn, void *userdata)
{
    return fp_samples_read_blocks(r, id, device, from_ms, to_ms, fn, userdata);
}

int fp_store_latest(struct fp_store_reader *r, uint64_t id, int64_t *ret_ts_ms, double *ret_value)
{
    uint8_t id_be[8];
    MDB_val k = {8, id_be}, v;
    int rc;

    /* The newest samples wait in their device's head; "latest" has the series once sealed. */
    rc = fp_head_latest(r->txn, r->store, id, ret_ts_ms, ret_value);
    if (rc != FP_STORE_E_NOTFOUND)
        return rc;
    put_u64(id_be, id);
    rc = mdb_get(r->txn, r->store->latest, &k, &v);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    if (v.mv_size != 16)
        return -EIO;
    *ret_ts_ms = get_ts(v.mv_data);
    *ret_value = get_double((const uint8_t *)v.mv_data + 8);
    return 0;
}

static int device_decode(const struct fp_store_reader *r, MDB_val *k, const MDB_val *v,
                         struct fp_device_desc *d)
{
    struct device_rec rec;
    MDB_val iv;
    const char *p, *end;
    long n;

    if (v->mv_size != DEVICE_HEADER_BYTES || k->mv_size == 0 ||
        ((const char *)k->mv_data)[k->mv_size - 1] != '\0')
        return -EIO;
    rec_decode(v->mv_data, &rec);
    d->device = k->mv_data;
    d->first_seen_ms = rec.first_seen;
    d->last_seen_ms = rec.last_seen;
    d->batches = rec.batches;
    d->samples = rec.samples;
    d->duplicates = rec.duplicates;
    d->dropped_samples_total = rec.dropped;
    d->last_epoch = rec.last_epoch;
    d->last_seq = rec.last_seq;
    d->last_sample_ms = rec.last_sample;
    d->interval_ms = rec.interval;
    d->ingest_lag_ms = rec.ingest_lag;
    d->n_info = 0;
    if (mdb_get(r->txn, r->store->device_info, k, &iv) != 0)
        return 0;
    p = (const char *)iv.mv_data;
    end = p + iv.mv_size;
    n = info_pairs(p, end, d->info, sizeof(d->info) / sizeof(d->info[0]));
    if (n < 0)
        return -EIO;
    d->n_info = (size_t)n;
    return 0;
}

int fp_store_devices(struct fp_store_reader *r, fp_device_fn fn, void *userdata)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, res = 0;

    rc = mdb_cursor_open(r->txn, r->store->devices, &cur);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct fp_device_desc d;
        if (device_decode(r, &k, &v, &d) < 0)
            continue;
        res = fn(userdata, &d);
        if (res != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (res != 0)
        return res;
    return rc == MDB_NOTFOUND ? 0 : fp_store_map_lmdb(rc);
}

int fp_store_device_get(struct fp_store_reader *r, const char *device, struct fp_device_desc *ret)
{
    MDB_val k = {strlen(device) + 1, (void *)device}, v;
    int rc = mdb_get(r->txn, r->store->devices, &k, &v);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    return device_decode(r, &k, &v, ret);
}

int fp_store_events(struct fp_store_reader *r, const char *device, int64_t from_ms, int64_t to_ms,
                    fp_event_fn fn, void *userdata)
{
    uint8_t kb[8];
    MDB_val k = {8, kb}, v;
    MDB_cursor *cur;
    int rc, res = 0;

    put_ts(kb, from_ms);
    rc = mdb_cursor_open(r->txn, r->store->events, &cur);
    if (rc != 0)
        return fp_store_map_lmdb(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct fp_event_desc e;
        const char *kp = k.mv_data, *p, *end;
        if (k.mv_size < 8 + 2 + 8 || v.mv_size < 3 ||
            ((const char *)v.mv_data)[v.mv_size - 1] != '\0' || kp[k.mv_size - 9] != '\0')
            continue;
        e.ts_ms = get_ts(k.mv_data);
        if (e.ts_ms > to_ms)
            break;
        e.device = kp + 8;
        if (device != NULL && strcmp(e.device, device) != 0)
            continue;
        e.severity = ((const uint8_t *)v.mv_data)[0];
        p = (const char *)v.mv_data + 1;
        end = (const char *)v.mv_data + v.mv_size;
        e.kind = p;
        p += strlen(p) + 1;
        if (p >= end)
            continue;
        e.message = p;
        p += strlen(p) + 1;
        e.n_attrs = 0;
        while (p < end && e.n_attrs < sizeof(e.attrs) / sizeof(e.attrs[0])) {
            const char *name = p, *value = p + strlen(p) + 1;
            if (value >= end)
                break;
            e.attrs[e.n_attrs++] = (struct fp_label){name, value};
            p = value + strlen(value) + 1;
        }
        res = fn(userdata, &e);
        if (res != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (res != 0)
        return res;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : fp_store_map_lmdb(rc);
}
