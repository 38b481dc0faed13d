/* The probe's durable spool: encoded batches kept on disk until the collector acknowledges them,
 * across restarts and outages, bounded in bytes. When full it drops the oldest records and counts
 * exactly how many samples it dropped. The on-disk format and its invariants are described at the
 * top of spool.c.
 *
 * Thread rules: a struct fp_spool belongs to one thread. Across processes, one spool directory has
 * one owner at a time (an flock on DIR/lock); a second opener gets -EBUSY. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fp_spool;
typedef struct fp_spool fp_spool;

/* Segment files are started anew past this size (a record larger than it gets a segment of its
 * own). The target is max_bytes / 8, capped here: when the spool is full it frees space by
 * dropping its oldest whole segment, so this bounds how much one overflow drops at once. */
#define FP_SPOOL_SEGMENT_MAX_BYTES (4u << 20)
/* Fixed per-record overhead on disk (the record header), for callers sizing max_bytes. */
#define FP_SPOOL_RECORD_OVERHEAD_BYTES 32u
/* Fixed per-segment overhead on disk (the segment header). */
#define FP_SPOOL_SEGMENT_OVERHEAD_BYTES 32u

/* Positive outcomes (STYLE B4); errors are -errno. */
enum {
    FP_SPOOL_E_NOT_FOUND = 1, /**< ack: no pending record has this seq (already acked, dropped for
                                   space, or never appended); nothing changed, safe to ignore */
    FP_SPOOL_E_CORRUPT = 2,   /**< read: the record's bytes on disk no longer match its checksum;
                               *ret_seq is set, nothing else; drop it with fp_spool_ack */
};

/* What fp_spool_open found on disk. */
struct fp_spool_report {
    uint64_t pending_records;    /**< records to replay (unacknowledged, intact) */
    uint64_t pending_samples;    /**< samples they carry */
    uint64_t discarded_records;  /**< records thrown away: damaged (checksum, torn tail; one per
                                      damaged segment, as the records behind the damage cannot be
                                      told apart) plus intact records of another epoch */
    uint64_t discarded_bytes;    /**< bytes removed from segment files for the same reasons, plus
                                      unreadable segment headers */
    uint64_t discarded_segments; /**< segment files deleted as unreadable or of another epoch */
    bool epoch_new;              /**< true: no valid state file, a fresh epoch was made */
};

/* Opens (and creates if missing, one level, mode 0700) the spool in dir, locks it, reads or makes
 * its epoch and rebuilds the index of pending records from the segment files. Damaged data never
 * fails the open: a segment is cut at its first damaged record (the file is truncated there),
 * unreadable segments and segments of another epoch (e.g. the state file was lost) are deleted,
 * and all of it is counted in *ret_report. Files in dir that are not the spool's are ignored.
 *   dir: borrowed, only during the call.
 *   max_bytes: bound on the segment files' total size (the small state and lock files aside);
 *     at least FP_SPOOL_SEGMENT_OVERHEAD_BYTES + FP_SPOOL_RECORD_OVERHEAD_BYTES.
 *   ret: on success a new spool (fp_spool_close); untouched on failure.
 *   ret_report: may be NULL; filled on success.
 *   err, err_size: a one-line reason on failure (may be NULL).
 * Returns 0, -EINVAL (bad arguments), -EBUSY (another process or handle holds the spool),
 * -ENOMEM, or another -errno from the file system. */
int fp_spool_open(const char *dir, uint64_t max_bytes, struct fp_spool **ret,
                  struct fp_spool_report *ret_report, char *err, size_t err_size);

/* Closes the files and frees the spool; pending records stay on disk for the next open. Acks are
 * not persisted one by one: a record acked but in a segment not yet deleted is replayed after the
 * next open, and the collector's dedup on (device, epoch, seq) absorbs the duplicate.
 * Accepts NULL and *s == NULL; nulls *s. */
void fp_spool_close(struct fp_spool **s);

/* This spool's epoch: random, non-zero, the same across opens as long as the spool survives. */
uint64_t fp_spool_epoch(const struct fp_spool *s);

/* The seq to use for the next append: 1 + the highest seq ever appended in this epoch (dropped and
 * acked records included), or 1 in a new epoch. */
uint64_t fp_spool_next_seq(const struct fp_spool *s);

/* Appends one record durably: it is written and fdatasync()ed before 0 is returned. If the spool
 * would exceed max_bytes, the oldest segments are deleted first, pending records in them included,
 * and their samples added to the dropped total (persisted before the files go).
 *   seq: must be >= fp_spool_next_seq(s) (seqs only grow, so file order is seq order).
 *   buf, len: the encoded batch; borrowed, copied to disk. buf may be NULL when len is 0.
 *   samples: how many samples it carries, for drop accounting.
 * Returns 0; -EINVAL (seq too small, len past UINT32_MAX); -E2BIG (one record alone would exceed
 * max_bytes; nothing dropped); or -errno from write/fdatasync (-ENOSPC, -EIO: the record is not
 * in the spool, the next append starts a new segment). */
int fp_spool_append(struct fp_spool *s, uint64_t seq, const void *buf, size_t len,
                    uint64_t samples);

/* Marks the record seq acknowledged (acks may come in any order); it leaves the pending list at
 * once. A segment whose records are all acknowledged is deleted. Returns 0,
 * FP_SPOOL_E_NOT_FOUND, or -errno when persisting the next seq before deleting the newest
 * segment failed (the ack still took effect in memory). */
int fp_spool_ack(struct fp_spool *s, uint64_t seq);

/* Number of pending (unacknowledged, not dropped) records; they are indexed 0 .. n-1 in seq order.
 * Indexes shift on every ack, append and drop. */
size_t fp_spool_pending(const struct fp_spool *s);

/* Reads pending record index (0 = oldest) from disk and checks its checksum.
 *   ret_seq, ret_samples: may be NULL.
 *   ret_buf: new (free()), the payload; ret_len its length. Both untouched on failure.
 * Returns 0, -ERANGE (index >= fp_spool_pending), FP_SPOOL_E_CORRUPT, -ENOMEM or -errno. */
int fp_spool_read(struct fp_spool *s, size_t index, uint64_t *ret_seq, uint8_t **ret_buf,
                  size_t *ret_len, uint64_t *ret_samples);

/* Finds the pending record with this seq. Returns 0 and *ret_index, or -ENOENT (acked, dropped
 * to respect the bound, or never appended). No I/O. */
int fp_spool_find(const struct fp_spool *s, uint64_t seq, size_t *ret_index);

/* The seq, payload length and samples of pending record index, from memory (no I/O). Returns 0
 * or -ERANGE. */
int fp_spool_peek(const struct fp_spool *s, size_t index, uint64_t *ret_seq, size_t *ret_len,
                  uint64_t *ret_samples);

/* Samples dropped for space over the spool's whole life (persisted; survives reopen). */
uint64_t fp_spool_dropped_samples_total(const struct fp_spool *s);

/* Current total size of the segment files in bytes (<= max_bytes). */
uint64_t fp_spool_bytes(const struct fp_spool *s);
