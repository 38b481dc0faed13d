/* The collector: receives Batches from probes over a ZeroMQ ROUTER socket, validates them, stores
 * them through storage/ in group commits, and answers each with an Ack once it is durable. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "store.h"

struct fp_collector;

struct fp_collector_options {
    const char *listen;   /**< ZeroMQ endpoint to bind, e.g. "tcp://127.0.0.1:9470"; borrowed */
    const char *data_dir; /**< store directory (must exist); borrowed */
    struct fp_batch_limits limits;
    size_t max_group;     /**< most messages in one group (one fp_store_write) */
    struct fp_store_options store; /**< retention, map size, out-of-order window */
};

/* Fills the defaults: FP_DEFAULT_COLLECTOR_ENDPOINT, no data dir, default limits, group 256,
 * the store's defaults. */
void fp_collector_options_default(struct fp_collector_options *ret);

/* What the collector has done since it started. */
struct fp_collector_stats {
    uint64_t batches_received;
    uint64_t batches_applied;
    uint64_t batches_duplicate;
    uint64_t batches_refused[16]; /**< by AckStatus */
    uint64_t batches_retry;       /**< store failures answered with RETRY */
    uint64_t samples_received;
    uint64_t samples_applied;
    uint64_t samples_refused;
    uint64_t commits;
    uint64_t commit_ns_total;     /**< time spent in durable commits, ns */
    uint64_t malformed_messages;  /**< ZeroMQ messages without a payload frame */
    uint64_t queue_batches;       /**< messages drained by the latest wake-up: what was waiting */
    uint64_t commit_ns_max;       /**< longest commit since the collector's own series were
                                       last stored (every 10 s) */
};

/* Opens the store and binds the socket. Returns 0 and *ret (new: fp_collector_destroy), or a
 * negative errno / positive FP_STORE_E_* with a one-line reason in err. */
int fp_collector_new(const struct fp_collector_options *opts, struct fp_collector **ret, char *err,
                     size_t err_size);

/* Serves until fp_collector_stop is called. Returns 0 on a requested stop, or -errno when the
 * socket fails. Blocks the calling thread. */
int fp_collector_run(struct fp_collector *c);

/* Asks fp_collector_run to return within a second. Async-signal-safe. */
void fp_collector_stop(struct fp_collector *c);

/* Copies the counters. */
void fp_collector_get_stats(const struct fp_collector *c, struct fp_collector_stats *ret);

/* The endpoint actually bound (resolves port 0 / wildcards). Borrowed until destroy. */
const char *fp_collector_endpoint(const struct fp_collector *c);

/* Closes socket and store; accepts NULL and nulls *c. */
void fp_collector_destroy(struct fp_collector **c);
