/* Raw LMDB measurements for bench/storage (see lmdb-limits.h): a compacted copy with a
 * per-database size breakdown, and the append ceiling. Errors name the call and the directory;
 * every path unwinds through one label. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "lmdb-limits.h"
#include "error.h"

/* The store keeps at most 192 day partitions plus its 8 fixed databases (storage/store.c);
 * a copy is opened with room for more than that. */
#define MAX_DBS 512

static int file_size(const char *dir, uint64_t *ret)
{
    char path[4096];
    struct stat st;

    (void)snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &st) < 0)
        return -errno;
    *ret = (uint64_t)st.st_size;
    return 0;
}

static uint64_t stat_bytes(const MDB_stat *st)
{
    return (uint64_t)(st->ms_branch_pages + st->ms_leaf_pages + st->ms_overflow_pages) *
           st->ms_psize;
}

/* Sum of the key and value sizes of every entry of dbi (duplicates included). Returns an LMDB
 * rc. */
static int payload(MDB_txn *txn, MDB_dbi dbi, uint64_t *ret)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    *ret = 0;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        if (rc == 0)
            *ret += k.mv_size + v.mv_size;
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Adds a database's pages and payload to the entry called name, creating it. Returns 0 or -1
 * (full). */
static int add_db(struct fp_lmdb_size *s, const char *name, const MDB_stat *st, uint64_t bytes)
{
    size_t i;

    for (i = 0; i < s->n_dbs; i++)
        if (strcmp(s->dbs[i].name, name) == 0)
            break;
    if (i == s->n_dbs) {
        if (s->n_dbs == FP_LMDB_LIMITS_DBS_MAX)
            return -1;
        (void)snprintf(s->dbs[i].name, sizeof(s->dbs[i].name), "%.31s", name);
        s->n_dbs++;
    }
    s->dbs[i].bytes += stat_bytes(st);
    s->dbs[i].entries += st->ms_entries;
    s->dbs[i].payload_bytes += bytes;
    return 0;
}

static int cmp_db_size(const void *a, const void *b)
{
    const struct fp_lmdb_db_size *x = a, *y = b;
    return (x->bytes < y->bytes) - (x->bytes > y->bytes);
}

/* Walks the root database of the environment in dir: every key is a named database. */
static int breakdown(const char *dir, struct fp_lmdb_size *ret, char *err, size_t err_size)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi root;
    MDB_val k, v;
    MDB_stat st;
    uint64_t bytes;
    char name[256];
    const char *what;
    int rc;

    what = "mdb_env_create";
    rc = mdb_env_create(&env);
    if (rc == 0) {
        what = "mdb_env_set_maxdbs";
        rc = mdb_env_set_maxdbs(env, MAX_DBS);
    }
    if (rc == 0) {
        what = "mdb_env_open";
        rc = mdb_env_open(env, dir, MDB_RDONLY, 0644);
    }
    if (rc == 0) {
        what = "mdb_txn_begin";
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (rc == 0) {
        what = "mdb_dbi_open (root)";
        rc = mdb_dbi_open(txn, NULL, 0, &root);
    }
    if (rc == 0)
        rc = mdb_stat(txn, root, &st);
    if (rc == 0)
        rc = payload(txn, root, &bytes);
    if (rc == 0)
        rc = add_db(ret, "(main)", &st, bytes) == 0 ? 0 : ENOSPC;
    if (rc == 0) {
        what = "mdb_cursor_open";
        rc = mdb_cursor_open(txn, root, &cur);
    }
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        MDB_dbi dbi;

        rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0 || k.mv_size >= sizeof(name))
            break;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        what = "mdb_dbi_open";
        rc = mdb_dbi_open(txn, name, 0, &dbi);
        if (rc == MDB_INCOMPATIBLE) { /* a plain key in the root, not a database */
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = mdb_stat(txn, dbi, &st);
        if (rc == 0)
            rc = payload(txn, dbi, &bytes);
        if (rc == 0)
            rc = add_db(ret, strncmp(name, "raw.", 4) == 0 ? "raw.*" : name, &st, bytes) == 0
                     ? 0
                     : ENOSPC;
    }
    if (rc != 0)
        fp_set_err(err, err_size, "%s on \"%s\": %s", what, dir, mdb_strerror(rc));
    else
        qsort(ret->dbs, ret->n_dbs, sizeof(ret->dbs[0]), cmp_db_size);
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    return rc == 0 ? 0 : -1;
}

int fp_lmdb_limits_compact_copy(const char *env_dir, const char *copy_dir,
                                struct fp_lmdb_size *ret, char *err, size_t err_size)
{
    MDB_env *env = NULL;
    const char *what;
    int rc, r;

    memset(ret, 0, sizeof(*ret));
    what = "mdb_env_create";
    rc = mdb_env_create(&env);
    if (rc == 0) {
        what = "mdb_env_set_maxdbs";
        rc = mdb_env_set_maxdbs(env, MAX_DBS);
    }
    if (rc == 0) {
        /* Read-only: the map size comes from the file's meta page. */
        what = "mdb_env_open";
        rc = mdb_env_open(env, env_dir, MDB_RDONLY, 0644);
    }
    if (rc == 0) {
        what = "mdb_env_copy2";
        rc = mdb_env_copy2(env, copy_dir, MDB_CP_COMPACT);
    }
    if (env != NULL)
        mdb_env_close(env);
    if (rc != 0) {
        fp_set_err(err, err_size, "%s on \"%s\": %s", what, env_dir, mdb_strerror(rc));
        return -1;
    }
    r = file_size(copy_dir, &ret->file_bytes);
    if (r < 0) {
        fp_set_err(err, err_size, "stat \"%s/data.mdb\": %s", copy_dir, strerror(-r));
        return -1;
    }
    return breakdown(copy_dir, ret, err, err_size);
}

int fp_lmdb_limits_append(const char *dir, size_t n_puts, size_t value_bytes, size_t puts_per_txn,
                          uint64_t *ret_file_bytes, char *err, size_t err_size)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    uint8_t key[8], *val = NULL;
    const char *what;
    size_t done = 0;
    int rc, r;

    if (puts_per_txn == 0 || value_bytes < 8) {
        fp_set_err(err, err_size, "append: bad arguments");
        return -1;
    }
    val = calloc(1, value_bytes);
    if (val == NULL) {
        fp_set_err(err, err_size, "append: out of memory");
        return -1;
    }
    what = "mdb_env_create";
    rc = mdb_env_create(&env);
    if (rc == 0) {
        /* Twice the bytes of the entries (key, value, 8-byte node header) plus 64 MiB: room
         * for the pages with a wide margin; the file grows only as pages are written. */
        what = "mdb_env_set_mapsize";
        rc = mdb_env_set_mapsize(env, (size_t)n_puts * (value_bytes + 8 + 8) * 2 + (64u << 20));
    }
    if (rc == 0) {
        what = "mdb_env_open";
        rc = mdb_env_open(env, dir, 0, 0644);
    }
    if (rc == 0) {
        what = "mdb_txn_begin";
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    }
    if (rc == 0) {
        what = "mdb_dbi_open";
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    }
    while (rc == 0 && done < n_puts) {
        size_t end = done + puts_per_txn < n_puts ? done + puts_per_txn : n_puts;

        if (txn == NULL) {
            what = "mdb_txn_begin";
            rc = mdb_txn_begin(env, NULL, 0, &txn);
        }
        what = "mdb_put";
        for (; rc == 0 && done < end; done++) {
            MDB_val k = {sizeof(key), key}, v = {value_bytes, val};
            uint64_t x = done;

            for (int i = 7; i >= 0; i--) {
                key[i] = (uint8_t)x;
                x >>= 8;
            }
            memcpy(val, &done, sizeof(done)); /* the "timestamp"; the rest stays zero */
            rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        }
        if (rc == 0) {
            what = "mdb_txn_commit";
            rc = mdb_txn_commit(txn);
            txn = NULL;
        }
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (env != NULL)
        mdb_env_close(env);
    free(val);
    if (rc != 0) {
        fp_set_err(err, err_size, "%s in \"%s\": %s", what, dir, mdb_strerror(rc));
        return -1;
    }
    r = file_size(dir, ret_file_bytes);
    if (r < 0) {
        fp_set_err(err, err_size, "stat \"%s/data.mdb\": %s", dir, strerror(-r));
        return -1;
    }
    return 0;
}
