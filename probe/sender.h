/* The probe's sender: a bounded queue of encoded batches and a DEALER link (zmtp.c) that sends
 * them to the collector, keeps a window in flight, and drops each only when its Ack arrives. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct fp_sender;

struct fp_sender_options {
    const char *endpoint;      /**< collector endpoint, e.g. "tcp://127.0.0.1:9470"; borrowed */
    uint64_t epoch;            /**< this sender's epoch; acks for others are ignored */
    int64_t ack_timeout_ms;    /**< resend a batch not acknowledged within this */
    size_t window;             /**< most batches in flight at once */
    size_t max_queue_bytes;    /**< encoded bytes held; past it the oldest batches are dropped */
    /* Called for every Ack of a queued batch, with its status name ("ok", "duplicate",
     * "bad_schema", ...) and the collector's detail text. May be NULL. */
    void (*on_ack)(void *userdata, uint64_t seq, const char *status, const char *detail);
    /* Reads the bytes of a batch queued without them (fp_sender_enqueue with buf NULL: the
     * spool holds it). *ret_buf is new (free()). Returns 0, -ENOENT when the batch is gone
     * (dropped from the spool: the sender forgets it), or another -errno (tried again later).
     * Needed only when batches are queued without bytes. */
    int (*load)(void *userdata, uint64_t seq, uint8_t **ret_buf, size_t *ret_len);
    void *userdata;
};

struct fp_sender_stats {
    uint64_t batches_queued;      /**< now waiting or in flight */
    uint64_t bytes_queued;
    uint64_t batches_sent;        /**< sends, retransmissions included */
    uint64_t retransmits;
    uint64_t batches_acked;       /**< stored (ok or duplicate) */
    uint64_t batches_refused;     /**< refused for good by the collector; not retried */
    uint64_t samples_refused;
    uint64_t batches_dropped;     /**< dropped because the queue was full */
    uint64_t samples_dropped;
    int64_t last_ack_mono_ms;     /**< 0 before the first ack */
};

/* Creates the socket and starts connecting (in the background; an unreachable collector is not
 * an error). Returns 0 and *ret (new: fp_sender_destroy), or -errno with a reason in err. */
int fp_sender_new(const struct fp_sender_options *opts, struct fp_sender **ret, char *err,
                  size_t err_size);

/* Frees everything; unacknowledged batches are lost (counted in the return of
 * fp_sender_stats before the call). Accepts NULL and nulls *s. */
void fp_sender_destroy(struct fp_sender **s);

/* Queues one encoded batch of len bytes. Takes buf (free()d by the sender) on success and on
 * failure; buf NULL queues a batch whose bytes options.load reads when it is sent. samples is
 * how many samples it carries, for drop accounting. Returns 0 or -ENOMEM. */
int fp_sender_enqueue(struct fp_sender *s, uint64_t seq, uint8_t *buf, size_t len,
                      uint64_t samples);

/* Sends what is due, then waits up to timeout_ms for acks and handles them. Returns 0, -EINTR
 * when a signal arrived, or -errno on a socket failure. */
int fp_sender_poll(struct fp_sender *s, int64_t timeout_ms);

void fp_sender_get_stats(const struct fp_sender *s, struct fp_sender_stats *ret);

/* Tries to reach the collector now if not connected, ending any backoff wait. */
void fp_sender_retry_now(struct fp_sender *s);
