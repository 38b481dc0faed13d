/* The probe daemon's loop: every interval, run the samplers into one batch, encode it, and hand
 * it to the sender; between rounds, let the sender talk to the collector. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "label.h"
#include "sampler.h"

struct fp_agent;

struct fp_agent_options {
    const char *collector;   /**< collector endpoint; borrowed */
    const char *device_id;   /**< borrowed */
    struct fp_sampler_env env; /**< what the samplers read: roots, runtime URLs, model; the
                                    strings are borrowed */
    int64_t interval_ms;     /**< time between rounds */
    int64_t first_round_ms;  /**< delay before the first round (CPU needs a baseline) */
    size_t max_queue_bytes;  /**< bound on unacknowledged batches held in memory (no spool) */
    const char *spool_dir;   /**< durable spool directory; NULL: memory only; borrowed */
    uint64_t spool_max_bytes; /**< the spool's bound; past it the oldest batches are dropped */
    const struct fp_label *info; /**< extra identity pairs (site, hw_class, tags); borrowed */
    size_t n_info;
    uint64_t max_rounds;     /**< stop after this many rounds (0: run until stopped); for tests */

    /* For libfleetpulse-probe (probe/api.c); zero keeps the daemon's behaviour. */
    /* Called every round after the samplers, on the agent's thread, to emit what no sampler
     * reads (the embedded API's request ring). Samples may carry their own timestamps. Returns
     * 0 or -errno (logged at debug). NULL: none. */
    int (*round_hook)(void *userdata, struct fp_emitter *e);
    void *hook_userdata;     /**< passed to round_hook; borrowed */
    bool final_round;        /**< when stopped, run one more round first, so what the hook
                                  holds is sent before the last acks are awaited */
    bool no_samplers;        /**< open none of fp_samplers (the host only reports requests) */
};

void fp_agent_options_default(struct fp_agent_options *ret);

/* Opens the samplers (missing sources are skipped with one log line each) and the sender.
 * Returns 0 and *ret (new: fp_agent_destroy) or -errno with a reason in err. */
int fp_agent_new(const struct fp_agent_options *opts, struct fp_agent **ret, char *err,
                 size_t err_size);

/* Runs rounds until fp_agent_stop (or max_rounds). On the way out waits up to 2 s for the last
 * acks. Returns 0 or -errno when the socket fails. */
int fp_agent_run(struct fp_agent *a);

/* Asks fp_agent_run to return (within about 200 ms, plus the final round and the ack wait).
 * Async-signal-safe, and safe from another thread. */
void fp_agent_stop(struct fp_agent *a);

void fp_agent_destroy(struct fp_agent **a);

/* The default device id: /etc/machine-id, else the host name. Writes into buf; returns 0 or
 * -errno. */
int fp_agent_default_device_id(char *buf, size_t size);
