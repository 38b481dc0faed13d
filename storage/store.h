/* The fleetpulse time-series store: one LMDB environment in a data directory, written by the
 * collector and read concurrently by query processes.
 *
 * Writers hand over plain arrays (no protobuf): many batches of series samples go into one LMDB
 * transaction (group commit), together with each batch's dedup mark, so a batch is applied once
 * even when delivered twice. Readers take a snapshot (struct fp_store_reader, one read-only LMDB
 * transaction); keep it short, since a long reader stops the file from reusing pages.
 *
 * Threads: a struct fp_store may be shared; fp_store_write must be called from one thread at a
 * time; each reader belongs to the thread that opened it.
 *
 * Open a data directory once per process: LMDB keeps its locks per process, and closing a second
 * handle on the same environment releases the first one's (an LMDB rule, see its caveats). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "label.h"

struct fp_store;
struct fp_store_reader;

/* Version of the on-disk layout. A store with another version is refused at open with
 * FP_STORE_E_FORMAT. If you change what is written, bump this. */
#define FP_STORE_FORMAT 7

/* Outcomes a caller must act on (positive; negative values are -errno). */
enum {
    FP_STORE_E_FORMAT = 1, /**< not a fleetpulse store, or an incompatible format version */
    FP_STORE_E_NOTFOUND,   /**< no such series / device / value */
    FP_STORE_E_DUP,        /**< this (device, epoch, seq) was already applied */
    FP_STORE_E_FULL,       /**< the map cannot grow further (max_map_bytes reached) */
};

/* Flags for fp_store_open. */
enum {
    FP_STORE_READONLY = 1u << 0, /**< open for reading only; the store must exist */
};

enum fp_series_type {
    FP_SERIES_GAUGE = 1,
    FP_SERIES_COUNTER = 2,
};

/* Tunables with safe defaults (fp_store_options_default). */
struct fp_store_options {
    uint64_t initial_map_bytes; /**< LMDB map size at first open; grows by doubling */
    uint64_t max_map_bytes;     /**< never grow past this: FP_STORE_E_FULL instead */
    int64_t ooo_window_ms;      /**< samples this far behind a series' newest are still stored;
                                     older ones are refused and counted */
    int64_t raw_retention_ms;   /**< raw samples older than this (by wall clock) are dropped,
                                     a day partition at a time; 0 keeps everything */
    int64_t rollup_retention_ms; /**< one-hour rollups older than this are dropped, a bounded
                                      number per write; 0 keeps everything */
    bool background_sync;        /**< fp_store_write returns before its commit is on disk; see
                                      fp_store_wait_durable */
    size_t decoded_cache_chunks; /**< readers keep up to this many decoded chunks for the next
                                      read of the same chunk (0: none); see storage/README.md */
};

void fp_store_options_default(struct fp_store_options *ret);

/* Opens (and with write access, creates) the store in directory dir, which must exist.
 * opts may be NULL for defaults. Returns 0 and *ret (new: fp_store_close). Returns
 * FP_STORE_E_FORMAT when dir holds something else or another format version, or -errno (-ENOENT:
 * no store in dir when READONLY; -EACCES / -EROFS: not writable). On failure err receives a
 * one-line reason naming dir (err may be NULL). */
int fp_store_open(const char *dir, unsigned flags, const struct fp_store_options *opts,
                  struct fp_store **ret, char *err, size_t err_size);

/* Closes the store; accepts NULL and nulls *s. No reader may be open. */
void fp_store_close(struct fp_store **s);

/* --- writing --------------------------------------------------------------------------------- */

/* One series and its samples. labels exclude "device" (added from the batch) and may come in any
 * order; names must be unique. ts_ms and values have n entries each. All pointers borrowed. */
struct fp_series_in {
    const char *metric;
    enum fp_series_type type;
    const struct fp_label *labels;
    size_t n_labels;
    const int64_t *ts_ms;
    const double *values;
    size_t n;
};

struct fp_event_in {
    int64_t ts_ms;
    const char *kind;
    int severity; /**< 1 info, 2 warning, 3 error */
    const char *message;
    const struct fp_label *attrs;
    size_t n_attrs;
};

/* What one device sent in one message. All pointers borrowed for the call. */
struct fp_write_batch {
    const char *device;
    uint64_t epoch;
    uint64_t seq;       /**< > 0; applied at most once per (device, epoch) (0: no dedup) */
    int64_t received_ms; /**< collector clock; becomes the device's last_seen */
    const struct fp_label *info; /**< device identity; n_info == 0 leaves the stored one */
    size_t n_info;
    const struct fp_series_in *series;
    size_t n_series;
    const struct fp_event_in *events;
    size_t n_events;
    uint64_t dropped_samples_total; /**< probe's own count of samples it dropped */
};

struct fp_write_result {
    int status;               /**< 0 applied, FP_STORE_E_DUP already applied */
    uint64_t samples_written; /**< stored by this call */
    uint64_t samples_refused; /**< refused: all reasons below together */
    uint64_t samples_too_old; /**< of those: behind the out-of-order window or the retention */
};

/* Writes n batches in one durable transaction: when this returns 0 every applied batch is on
 * disk, or with the background_sync option, committed (visible to readers) with its fsync
 * running in a thread of the store: fp_store_wait_durable tells when it is on disk. A write
 * waits for the previous write's sync before it commits, so at most one commit is ever waiting
 * for its sync, and that sync overlaps the next write's work. ret_results has n entries, filled
 * per batch. Grows the map as needed. A call that creates thousands of series commits in
 * several transactions. Returns 0, FP_STORE_E_FULL or -errno (-EIO: an earlier background sync
 * failed, and nothing more can be written); then the failed transaction wrote nothing, though
 * batches before it may be stored (written again, they come back FP_STORE_E_DUP). */
int fp_store_write(struct fp_store *s, const struct fp_write_batch *batches, size_t n,
                   struct fp_write_result *ret_results);

/* Rewrites the small chunks that single-sample writes leave behind into full ones (the writer
 * also does this as it goes, series by series). Call before measuring size on disk or at a quiet
 * moment; durable when it returns 0. Returns 0, FP_STORE_E_FULL or -errno. */
int fp_store_compact(struct fp_store *s);

/* Lookups of the readers' decoded-chunk cache (decoded_cache_chunks) since the store was opened:
 * served from it (hits) or decoded (misses). Both 0 without the cache. */
void fp_store_chunk_cache_counts(struct fp_store *s, uint64_t *ret_hits, uint64_t *ret_misses);

/* The number of write transactions committed since the store was opened: a write that returned
 * 0 is covered by the value read after it. */
uint64_t fp_store_committed(struct fp_store *s);

/* Waits until the first commit commits are on disk (at once without background_sync). Returns 0,
 * -ETIMEDOUT after timeout_ms (negative: no limit), or -EIO when a sync failed: what was not yet
 * durable may be lost, and the caller must not report it as stored. */
int fp_store_wait_durable(struct fp_store *s, uint64_t commit, int timeout_ms);

/* --- reading --------------------------------------------------------------------------------- */

/* Opens a consistent snapshot. Returns 0 and *ret (new: fp_store_reader_close), or -errno. */
int fp_store_reader_open(struct fp_store *s, struct fp_store_reader **ret);

/* Ends the snapshot; accepts NULL and nulls *r. Everything borrowed from it becomes invalid. */
void fp_store_reader_close(struct fp_store_reader **r);

enum fp_match_op {
    FP_MATCH_EQ,  /**< label == value */
    FP_MATCH_NE,  /**< label != value (a missing label counts as "") */
    FP_MATCH_RE,  /**< label matches the POSIX extended regex, anchored */
    FP_MATCH_NRE, /**< label does not match */
};

/* A label matcher; name "__name__" matches the metric name. Strings borrowed. */
struct fp_matcher {
    const char *name;
    const char *value;
    enum fp_match_op op;
};

/* Finds the series matching all matchers (none: every series). *ret_ids is new (free()), sorted
 * ascending, *ret_n entries (may be 0 with *ret_ids NULL). Returns 0, -EINVAL for a bad regex, or
 * -errno. */
int fp_store_select(struct fp_store_reader *r, const struct fp_matcher *m, size_t n_matchers,
                    uint64_t **ret_ids, size_t *ret_n);

/* Called with each string in sorted order; s is valid only during the call. Return non-zero to
 * stop. */
typedef int (*fp_string_fn)(void *userdata, const char *s);

/* Calls fn for every label name in the store ("__name__" for the metric name included), sorted.
 * Returns 0, fn's non-zero result, or -errno. */
int fp_store_label_names(struct fp_store_reader *r, fp_string_fn fn, void *userdata);

/* Calls fn for every value label name has on some series, sorted (for "__name__": every metric
 * name). Returns 0, fn's non-zero result, or -errno. */
int fp_store_label_values(struct fp_store_reader *r, const char *name, fp_string_fn fn,
                          void *userdata);

/* A series' identity. Strings are borrowed from the reader and valid until it closes. labels are
 * sorted by name and include "device". */
struct fp_series_desc {
    uint64_t id;
    const char *metric;
    enum fp_series_type type;
    struct fp_label labels[64];
    size_t n_labels;
};

/* Fills *ret for series id. Returns 0, FP_STORE_E_NOTFOUND, or -errno. */
int fp_store_series_get(struct fp_store_reader *r, uint64_t id, struct fp_series_desc *ret);

/* Called for each point in time order; return non-zero to stop (fp_store_read_range then returns
 * that value). */
typedef int (*fp_point_fn)(void *userdata, int64_t ts_ms, double value);

/* Calls fn for each sample of series id with from_ms <= ts <= to_ms, oldest first. Returns 0,
 * fn's non-zero result, or -errno. */
int fp_store_read_range(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                        fp_point_fn fn, void *userdata);

/* Called with runs of consecutive points (n >= 1), in time order; return non-zero to stop. */
typedef int (*fp_block_fn)(void *userdata, const int64_t *ts_ms, const double *values, size_t n);

/* fp_store_read_range handing the samples over in runs (a chunk's worth at a time) instead of one
 * call each: for readers whose per-sample work is a few instructions. Same samples, same order. */
int fp_store_read_range_blocks(struct fp_store_reader *r, uint64_t id, int64_t from_ms,
                               int64_t to_ms, fp_block_fn fn, void *userdata);

/* fp_store_read_range_blocks for a series whose device label the caller already has from
 * fp_store_series_get on this reader (the pointer it gave): saves looking the series up again
 * to find its device's head. device NULL: looked up. */
int fp_store_read_device_blocks(struct fp_store_reader *r, uint64_t id, const char *device,
                                int64_t from_ms, int64_t to_ms, fp_block_fn fn, void *userdata);

/* The newest sample of series id, without scanning history. Returns 0, FP_STORE_E_NOTFOUND, or
 * -errno. */
int fp_store_latest(struct fp_store_reader *r, uint64_t id, int64_t *ret_ts_ms, double *ret_value);

/* One stored one-hour rollup of a series: the samples of [start_ms, start_ms + 1 h) up to and
 * including through_ms. Unless complete, samples of the hour after through_ms are not in it
 * (fp_store_compact stores the open hour): read them raw. NaN samples are in nothing;
 * +-Inf are in count, sum, min and max but not in the sketch. */
struct fp_rollup {
    int64_t start_ms;
    int64_t through_ms;
    bool complete;        /**< the whole hour: no sample after through_ms (the series had moved
                               past the hour; a later sample in it rewrites the record) */
    uint64_t count;
    double sum, min, max; /**< NaN when count is 0 */
    double last;          /**< the newest non-NaN sample's value; NaN if none */
    const uint8_t *sketch; /**< fp_sketch_encode bytes (storage/sketch.h), borrowed from the
                                reader's snapshot; merge with fp_sketch_merge_encoded */
    size_t sketch_len;
};

#define FP_ROLLUP_MS INT64_C(3600000)

/* Called for each stored rollup in time order; non-zero stops the walk and is returned. */
typedef int (*fp_rollup_fn)(void *userdata, const struct fp_rollup *r);

/* Calls fn for the stored one-hour rollups of series id whose hour starts in
 * [hour of from_ms, to_ms). Hours without a record (nothing stored yet, or expired) are skipped.
 * Returns 0, fn's non-zero result, or -errno. */
int fp_store_read_rollups(struct fp_store_reader *r, uint64_t id, int64_t from_ms, int64_t to_ms,
                          fp_rollup_fn fn, void *userdata);

/* A device as the store knows it. Strings borrowed from the reader until it closes. */
struct fp_device_desc {
    const char *device;
    int64_t first_seen_ms;
    int64_t last_seen_ms;          /**< collector clock at the last batch applied */
    uint64_t batches;              /**< batches applied */
    uint64_t samples;              /**< samples applied */
    uint64_t duplicates;           /**< batches discarded as already applied */
    uint64_t dropped_samples_total; /**< the probe's own drop count, as last reported */
    uint64_t last_epoch;
    uint64_t last_seq;
    int64_t last_sample_ms;        /**< newest sample timestamp applied (device clock) */
    int64_t interval_ms;           /**< the device's sampling interval as its samples show it; 0 unknown */
    int64_t ingest_lag_ms;         /**< last batch: received_ms minus its newest sample timestamp */
    struct fp_label info[64];      /**< identity pairs (hostname, model, ...) */
    size_t n_info;
};

/* Whether label name=value on one of d's series is d's identity label, stamped from its
 * DeviceInfo at write (model, model_version, quant, site, hw (from hw_class), runtime, cohort):
 * views that show a device's own series can leave those out. */
bool fp_store_is_identity_label(const struct fp_device_desc *d, const char *name,
                                const char *value);

/* Called per device in byte order of the device id; return non-zero to stop. */
typedef int (*fp_device_fn)(void *userdata, const struct fp_device_desc *d);

/* Calls fn for every device. Returns 0, fn's non-zero result, or -errno. */
int fp_store_devices(struct fp_store_reader *r, fp_device_fn fn, void *userdata);

/* Fills *ret for one device. Returns 0, FP_STORE_E_NOTFOUND, or -errno. */
int fp_store_device_get(struct fp_store_reader *r, const char *device, struct fp_device_desc *ret);

/* A stored event; strings borrowed from the reader until it closes. */
struct fp_event_desc {
    int64_t ts_ms;
    const char *device;
    const char *kind;
    int severity;
    const char *message;
    struct fp_label attrs[32];
    size_t n_attrs;
};

typedef int (*fp_event_fn)(void *userdata, const struct fp_event_desc *e);

/* Calls fn for events with from_ms <= ts <= to_ms, oldest first, optionally of one device
 * (NULL: all). Returns 0, fn's non-zero result, or -errno. */
int fp_store_events(struct fp_store_reader *r, const char *device, int64_t from_ms, int64_t to_ms,
                    fp_event_fn fn, void *userdata);

/* A message for an fp_store_* result: module codes and -errno alike. Static string. */
const char *fp_store_strerror(int code);
