/* Encoding and validating the wire messages of proto/fleetpulse.proto.
 *
 * The probe builds a Batch sample by sample with struct fp_batch_builder and encodes it; the
 * collector decodes and validates one with fp_batch_decode, which enforces every DESIGN limit
 * before anything is stored. Acks go through fp_ack_encode / fp_ack_decode. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetpulse.pb-c.h"
#include "label.h"

/* The schema this code writes and the newest it reads. Bump when a change would be misread by an
 * older collector (never for an added optional field). */
#define FP_SCHEMA_VERSION 1

enum fp_metric_type {
    FP_METRIC_GAUGE = FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_GAUGE,
    FP_METRIC_COUNTER = FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_COUNTER,
};

enum fp_severity {
    FP_SEVERITY_INFO = FLEETPULSE__V1__SEVERITY__SEVERITY_INFO,
    FP_SEVERITY_WARNING = FLEETPULSE__V1__SEVERITY__SEVERITY_WARNING,
    FP_SEVERITY_ERROR = FLEETPULSE__V1__SEVERITY__SEVERITY_ERROR,
};

/* Outcomes of fp_batch_decode that are the sender's fault; each maps to an AckStatus. */
enum {
    FP_BATCH_E_SCHEMA = 1,  /**< undecodable or invalid content */
    FP_BATCH_E_TOO_LARGE,   /**< over a count or size limit */
    FP_BATCH_E_VERSION,     /**< schema_version newer than FP_SCHEMA_VERSION */
};

/* Bounds on what one batch may carry. fp_batch_limits_default() gives the safe defaults. */
struct fp_batch_limits {
    size_t max_message_bytes;  /**< encoded size */
    size_t max_series;         /**< series blocks per batch */
    size_t max_samples;        /**< samples per batch, all series together */
    size_t max_labels;         /**< labels per series */
    size_t max_name_bytes;     /**< metric and label names */
    size_t max_value_bytes;    /**< label values */
    size_t max_device_id_bytes;
    size_t max_events;         /**< events per batch */
    size_t max_event_bytes;    /**< event kind + message */
};

void fp_batch_limits_default(struct fp_batch_limits *ret);

/* --- building (probe side) ------------------------------------------------------------------ */

struct fp_batch_builder;

/* Creates an empty builder. Returns 0, or -ENOMEM. *ret is new: destroy with
 * fp_batch_builder_destroy. A builder belongs to one thread. */
int fp_batch_builder_new(struct fp_batch_builder **ret);

/* Frees the builder; accepts NULL and nulls *b. */
void fp_batch_builder_destroy(struct fp_batch_builder **b);

/* Forgets all series, events and the device info, keeping allocations for the next batch. */
void fp_batch_builder_reset(struct fp_batch_builder *b);

/* Appends one sample. Samples with the same metric and labels (in the same order) share one
 * series block. Strings are copied. Returns 0, -EINVAL for a non-finite value or NULL metric,
 * or -ENOMEM. */
int fp_batch_builder_add(struct fp_batch_builder *b, const char *metric, enum fp_metric_type type,
                         const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                         double value);

/* Appends one event; strings are copied. Returns 0 or -ENOMEM. */
int fp_batch_builder_add_event(struct fp_batch_builder *b, int64_t ts_ms, const char *kind,
                               enum fp_severity severity, const char *message,
                               const struct fp_label *attrs, size_t n_attrs);

/* Sets the DeviceInfo to send, from name/value pairs named as in fp_device_info_fields (unknown
 * names become tags). Strings are copied. Returns 0, -EINVAL for a bad number, or -ENOMEM. */
int fp_batch_builder_set_info(struct fp_batch_builder *b, const struct fp_label *info,
                              size_t n_info);

/* Samples and series added since the last reset. */
size_t fp_batch_builder_samples(const struct fp_batch_builder *b);
size_t fp_batch_builder_series(const struct fp_batch_builder *b);

/* Encodes the batch with the given header. *ret_buf is new (free()); *ret_len its size.
 * Returns 0 or -ENOMEM. The builder is unchanged. */
int fp_batch_builder_encode(const struct fp_batch_builder *b, const char *device_id,
                            uint64_t epoch, uint64_t seq, int64_t sent_at_ms,
                            uint64_t dropped_samples_total, uint8_t **ret_buf, size_t *ret_len);

/* --- decoding (collector side) -------------------------------------------------------------- */

/* Decodes and validates buf. On success returns 0 and *ret is new (free with fp_batch_free).
 * Returns FP_BATCH_E_* with a one-line reason in err (always NUL-terminated) when the batch is
 * refused, or -ENOMEM. Every limit in lim is enforced; label names are checked against the
 * Prometheus grammar and the reserved name "device" (the collector adds it). */
int fp_batch_decode(const uint8_t *buf, size_t len, const struct fp_batch_limits *lim,
                    Fleetpulse__V1__Batch **ret, char *err, size_t err_size);

/* A bump allocator for decoding many batches that are freed together: one allocation per block
 * instead of one per string and array, and no walk over each message to free it. */
struct fp_batch_arena;

/* Returns 0 or -ENOMEM. */
int fp_batch_arena_new(struct fp_batch_arena **ret);

/* Frees everything allocated from a, keeping up to one block for reuse. Every batch decoded into
 * a becomes invalid. */
void fp_batch_arena_reset(struct fp_batch_arena *a);

/* Frees a and its blocks; accepts NULL and nulls *a. */
void fp_batch_arena_destroy(struct fp_batch_arena **a);

/* At least size bytes, 8-byte aligned (pointers, 64-bit integers, doubles: all a decoded batch
 * holds), valid until the next reset; NULL when out of memory. */
void *fp_batch_arena_alloc(struct fp_batch_arena *a, size_t size);

/* fp_batch_decode into a: *ret lives until fp_batch_arena_reset(a) and is never passed to
 * fp_batch_free. */
int fp_batch_decode_in(struct fp_batch_arena *a, const uint8_t *buf, size_t len,
                       const struct fp_batch_limits *lim, Fleetpulse__V1__Batch **ret, char *err,
                       size_t err_size);

/* Finds the epoch and seq of an encoded Batch without decoding it, so a refusal can name the
 * batch it refuses (the probe matches acks by seq). Sets both to 0 where they cannot be read.
 * Never reads outside buf. */
void fp_batch_peek_id(const uint8_t *buf, size_t len, uint64_t *ret_epoch, uint64_t *ret_seq);

/* Frees a decoded batch; accepts NULL and nulls *batch. */
void fp_batch_free(Fleetpulse__V1__Batch **batch);

/* The DeviceInfo fields as name/value pairs, for storage. Fills at most max entries of ret (names
 * static or in scratch, values borrowed from info or in scratch); numbers and the "tag.NAME" names
 * of tags are formatted into scratch of scratch_size bytes (what does not fit is left out; 8 KiB
 * holds any valid DeviceInfo). Empty fields are skipped. Returns the number filled. */
size_t fp_device_info_to_labels(const Fleetpulse__V1__DeviceInfo *info, struct fp_label *ret,
                                size_t max, char *scratch, size_t scratch_size);

/* True when s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) of at most max bytes. */
bool fp_metric_name_valid(const char *s, size_t max);

/* True when s is a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting "__") of at most max. */
bool fp_label_name_valid(const char *s, size_t max);

/* --- acks ------------------------------------------------------------------------------------ */

/* Encodes an Ack. *ret_buf is new (free()). Returns 0 or -ENOMEM. detail may be NULL. */
int fp_ack_encode(uint64_t epoch, uint64_t seq, Fleetpulse__V1__AckStatus status,
                  const char *detail, uint64_t accepted, uint64_t refused, uint8_t **ret_buf,
                  size_t *ret_len);

/* Decodes an Ack. Returns 0 and *ret new (free with fleetpulse__v1__ack__free_unpacked(x, NULL)),
 * or -EBADMSG. */
int fp_ack_decode(const uint8_t *buf, size_t len, Fleetpulse__V1__Ack **ret);

/* The AckStatus for an fp_batch_decode outcome. */
Fleetpulse__V1__AckStatus fp_batch_error_to_ack(int batch_error);

/* A short stable name for an AckStatus ("ok", "bad_schema", ...), for logs and metrics labels. */
const char *fp_ack_status_name(Fleetpulse__V1__AckStatus status);
