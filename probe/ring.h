/* The embedded API's request ring: a bounded, lock-free multi-producer queue of fixed-size
 * request records between the host's threads (fleetpulse_record) and the probe's agent thread,
 * which drains it once per round.
 *
 * Producers claim a slot, fill it in place and publish it; nothing allocates, locks or enters
 * the kernel. A full ring refuses the record (the caller counts it) rather than block the host's
 * request path or overwrite records the agent has not read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fp_ring;

/* Longest model name and fallback reason kept, in bytes; longer ones are cut (at a byte, not a
 * character: the agent makes the label valid). The arrays hold one more for the NUL. */
#define FP_RING_TEXT_MAX 63

/* Ring capacities accepted by fp_ring_new: powers of two in this range. The top keeps one
 * round's samples (3 per record) well under the batch limit of 200000. */
#define FP_RING_MIN_RECORDS 64u
#define FP_RING_MAX_RECORDS 32768u

/* One finished request, as fleetpulse_record copied it. */
struct fp_ring_record {
    int64_t ts_ms;             /**< completion time, ms since the Unix epoch (coarse clock) */
    double ttft_s;             /**< time to first token, seconds */
    double total_s;            /**< request duration, seconds */
    uint64_t prompt_tokens;    /**< input tokens */
    uint64_t generated_tokens; /**< output tokens */
    int outcome;               /**< enum fleetpulse_outcome */
    char model[FP_RING_TEXT_MAX + 1];  /**< NUL-terminated, maybe cut */
    char reason[FP_RING_TEXT_MAX + 1]; /**< fallback reason; "" when none */
};

/* Creates an empty ring of capacity records (a power of two from FP_RING_MIN_RECORDS to
 * FP_RING_MAX_RECORDS). Returns 0 and *ret (new: fp_ring_destroy), -EINVAL for another
 * capacity, or -ENOMEM. */
int fp_ring_new(size_t capacity, struct fp_ring **ret);

/* Frees the ring and any records still in it; accepts NULL and nulls *r. No thread may be using
 * it. */
void fp_ring_destroy(struct fp_ring **r);

/* The capacity given to fp_ring_new. */
size_t fp_ring_capacity(const struct fp_ring *r);

/* Claims the next free slot for writing. Returns the record to fill (borrowed until
 * fp_ring_publish) and its position in *ret_pos, or NULL when the ring is full. Any thread; lock
 * free. Every claimed slot must be published, or the consumer stops at it. */
struct fp_ring_record *fp_ring_claim(struct fp_ring *r, size_t *ret_pos);

/* Hands the slot claimed at pos (fp_ring_claim's *ret_pos), now filled, to the consumer. */
void fp_ring_publish(struct fp_ring *r, size_t pos);

/* Takes the oldest published record into *ret. Returns true, or false when none is ready (the
 * ring is empty, or the oldest claimed slot is still being filled). Any thread; lock free. */
bool fp_ring_pop(struct fp_ring *r, struct fp_ring_record *ret);

/* --- the probe's side, for tests and the bench (defined in api.c) ---------------------------- */

struct fleetpulse_probe;
struct fp_emitter;

/* The ring fleetpulse_record writes into (borrowed until the probe is destroyed). */
struct fp_ring *fp_probe_ring(struct fleetpulse_probe *p);

/* What one agent round does with the ring: drains at most its capacity of records and emits the
 * per-request samples, the counters and the fallback events (docs/metrics.md, "Requests") through
 * e. Only one thread at a time, and not while the probe is started (its agent thread drains).
 * Returns the number of records drained. */
size_t fp_probe_drain(struct fleetpulse_probe *p, struct fp_emitter *e);
