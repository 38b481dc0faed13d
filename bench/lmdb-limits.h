/* What the storage benchmark measures with LMDB directly, below the storage API: the size of a
 * compacted copy of an environment (what "bytes on disk after compaction" means for the store,
 * as the peers were measured after their own compaction), and the raw append rate of LMDB on
 * this machine, the ceiling any store built on it can reach.
 *
 * The project confines lmdb.h to storage/ (STYLE B1); this file is the one exception, because
 * these figures must not go through the code they judge. Nothing here writes to a store. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Most named databases reported one by one; raw.<day> partitions are reported together. */
#define FP_LMDB_LIMITS_DBS_MAX 32

/* Pages one named database (or a group of them) takes, in bytes, and its entries. */
struct fp_lmdb_db_size {
    char name[32];    /**< database name, "raw.*" for all day partitions, "(main)" for the root */
    uint64_t bytes;   /**< (branch + leaf + overflow pages) x page size */
    uint64_t entries; /**< entries (for DUPSORT databases: every duplicate) */
    uint64_t payload_bytes; /**< keys and values of every entry: bytes / payload_bytes is the
                                 overhead of pages, node headers and unused page space */
};

struct fp_lmdb_size {
    uint64_t file_bytes; /**< size of the copy's data.mdb */
    struct fp_lmdb_db_size dbs[FP_LMDB_LIMITS_DBS_MAX]; /**< largest first */
    size_t n_dbs;
};

/* Copies the environment in env_dir (closed by every other user in this process; other
 * processes may have it open) into copy_dir, which must exist and be empty, with MDB_CP_COMPACT
 * (free pages left out, pages renumbered), and measures the copy into *ret. Returns 0, or -1
 * with a one-line reason in err. */
int fp_lmdb_limits_compact_copy(const char *env_dir, const char *copy_dir,
                                struct fp_lmdb_size *ret, char *err, size_t err_size);

/* Appends n_puts entries into a fresh environment in dir (must exist and be empty): 8-byte
 * big-endian sequence keys, value_bytes-byte values, MDB_APPEND, puts_per_txn puts per durable
 * commit (LMDB's default flags, as the store's). Sets *ret_file_bytes to the data file's size.
 * Returns 0, or -1 with a one-line reason in err. The caller times the call. */
int fp_lmdb_limits_append(const char *dir, size_t n_puts, size_t value_bytes, size_t puts_per_txn,
                          uint64_t *ret_file_bytes, char *err, size_t err_size);
