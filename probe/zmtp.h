/* A minimal ZMTP 3.0 client: one DEALER connection with the NULL mechanism to a ZeroMQ peer
 * (the collector's libzmq ROUTER), single-frame sends, non-blocking, reconnecting by itself.
 * It replaces libzmq in the probe, whose C++ runtime and transitive libraries cost megabytes of
 * resident pages on a device that should spend them on inference. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fp_zmtp;

struct fp_zmtp_options {
    /* "tcp://HOST:PORT" (HOST a name, an IPv4 address or a bracketed IPv6 one) or
     * "ipc:///path/to/socket"; borrowed for the call. */
    const char *endpoint;
    int64_t reconnect_ivl_ms;     /**< first wait after a failure; 0: 100 */
    int64_t reconnect_ivl_max_ms; /**< the wait doubles up to this; 0: no doubling */
    int64_t handshake_timeout_ms; /**< connect + greeting + READY; 0: 30000 */
    size_t max_out_bytes;         /**< bytes buffered for sending (see send); 0: 1 MiB */
    size_t max_in_bytes;          /**< largest frame taken; a bigger one drops the link; 0: 1 MiB */
};

struct fp_zmtp_stats {
    uint64_t connects;        /**< handshakes completed */
    uint64_t disconnects;     /**< ready connections lost (peer gone, protocol error, ...) */
    uint64_t failed_attempts; /**< connects or handshakes that did not complete */
    uint64_t protocol_errors; /**< peer broke ZMTP (bad greeting, bad frame, ERROR command) */
    uint64_t pings;           /**< PING commands answered */
};

/* Checks the endpoint and starts connecting (an unreachable peer is not an error: it is retried
 * with backoff). Returns 0 and *ret (new: fp_zmtp_destroy), or -EINVAL / -ENOMEM with a reason
 * in err. */
int fp_zmtp_new(const struct fp_zmtp_options *opts, struct fp_zmtp **ret, char *err,
                size_t err_size);

/* Closes the connection and frees everything, unsent data included. Accepts NULL; nulls *z. */
void fp_zmtp_destroy(struct fp_zmtp **z);

/* Queues one single-frame message of len bytes (copied when it cannot be written at once).
 * Returns 0, -EAGAIN when no connection is ready (as zmq_send with ZMQ_IMMEDIATE) or the bytes
 * waiting plus this frame would pass max_out_bytes (a frame is always taken when nothing
 * waits, so any size gets through), or -ENOMEM. Never blocks. */
int fp_zmtp_send(struct fp_zmtp *z, const void *buf, size_t len);

/* Takes the next received frame: *ret_data (borrowed until the next call on z), *ret_len, and
 * *ret_more, true when more frames of the same message follow. Returns 0 or -EAGAIN when none
 * is buffered. Never blocks; reads what the socket already holds. */
int fp_zmtp_recv(struct fp_zmtp *z, const uint8_t **ret_data, size_t *ret_len, bool *ret_more);

/* Drives connecting, the handshake, sending and receiving for up to timeout_ms (0: only what
 * is ready now). Returns 1 as soon as a frame can be received, 0 when the time ran out, or
 * -EINTR when a signal arrived. Connection failures are handled here, never returned. */
int fp_zmtp_poll(struct fp_zmtp *z, int64_t timeout_ms);

/* True while a connection has completed its handshake (sends are accepted). */
bool fp_zmtp_connected(const struct fp_zmtp *z);

/* Makes the next connection attempt due now when none is under way, whatever the backoff
 * had reached (a probe about to exit tries once more rather than waiting out its backoff). */
void fp_zmtp_retry_now(struct fp_zmtp *z);

void fp_zmtp_get_stats(const struct fp_zmtp *z, struct fp_zmtp_stats *ret);
