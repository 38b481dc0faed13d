/* fleetpulse-sim's engine: N simulated devices, each with its own identity, epoch and seq,
 * streaming batches to a collector over ZeroMQ the way probes do (a window of unacknowledged
 * batches per device, retransmission after a timeout, exactly-once through the collector's
 * dedup). The load for benchmarks and fault tests, and the fleet for demos.
 *
 * Devices share a few DEALER connections (a fleet of 10,000 sockets would measure the kernel,
 * not the collector); the collector does not care which connection a batch arrives on, and acks
 * find their device by (epoch, seq). Unacknowledged batches are kept in memory per device: the
 * simulator's spool. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fp_sim;

struct fp_sim_options {
    const char *collector;  /**< ZeroMQ endpoint, e.g. "tcp://127.0.0.1:7070" */
    size_t devices;         /**< default 1000 */
    int64_t interval_ms;    /**< simulated sampling interval, default 10000 */
    int64_t duration_ms;    /**< live part: how long to stream in real time; 0 none (with
                                 backfill) or until stopped (without) */
    int64_t backfill_ms;    /**< simulated time before the start, sent as fast as possible */
    bool follow;            /**< with a backfill and no duration: go on in real time until
                                 stopped (the default without a backfill) */
    bool fast;              /**< live part as fast as the window allows (timestamps still
                                 advance by interval_ms per batch, ahead of the clock) */
    size_t batch_steps;     /**< time steps per batch; 0: 1 live, 360 in backfill */
    size_t connections;     /**< DEALER sockets; 0: min(devices, 8) */
    size_t window;          /**< unacknowledged batches per device; 0: 8 */
    int64_t ack_timeout_ms; /**< resend after this long without an ack; default 5000 */
    int64_t drain_ms;       /**< at the end, wait this long for outstanding acks; default 60000 */
    uint64_t seed;          /**< device identities and values; default 42 */
    const char *prefix;     /**< device id prefix, default "edge-" */
    size_t first_index;     /**< index of the first device (ids prefix + index) */
    bool outcomes;          /**< also send error and fallback request counters */
    /* A slower cohort: devices whose identity field slow_label equals slow_value run at
     * slow_factor times the tokens/s (and 1/slow_factor the time to first token). */
    const char *slow_label, *slow_value;
    double slow_factor;
};

/* What happened to one device's samples. */
struct fp_sim_device_stats {
    const char *device;
    uint64_t generated;      /**< samples put into batches */
    uint64_t acknowledged;   /**< in batches acked ok or duplicate (stored exactly once) */
    uint64_t refused;        /**< in batches refused for good, or samples the store refused */
    uint64_t unacknowledged; /**< still without an ack when the run ended */
    uint64_t batches, retransmits, duplicates;
    uint64_t last_seq, epoch;
};

struct fp_sim_totals {
    uint64_t generated, acknowledged, refused, unacknowledged;
    uint64_t batches, batches_acked, retransmits, duplicates;
    uint64_t bad_acks;                             /**< undecodable answers, ignored */
    double wall_s;                                 /**< from the first send to the last ack */
    double samples_per_s, batches_per_s;           /**< acknowledged, over wall_s */
    double ack_latency_ms_p50, ack_latency_ms_p99; /**< send (last transmission) to ack */
};

void fp_sim_options_default(struct fp_sim_options *ret);

/* Validates opts, creates the devices and connects. Returns 0 and *ret, or -errno with a
 * one-line reason in err. */
int fp_sim_new(const struct fp_sim_options *opts, struct fp_sim **ret, char *err, size_t err_size);

void fp_sim_destroy(struct fp_sim **s);

/* Streams until the backfill and duration are done (or fp_sim_stop), then waits up to drain_ms
 * for the outstanding acks. Returns 0, or -errno on a socket failure. */
int fp_sim_run(struct fp_sim *s);

/* Ends fp_sim_run's generating phase; safe from a signal handler or another thread. */
void fp_sim_stop(struct fp_sim *s);

void fp_sim_totals(const struct fp_sim *s, struct fp_sim_totals *ret);
size_t fp_sim_device_count(const struct fp_sim *s);
void fp_sim_device_stats(const struct fp_sim *s, size_t i, struct fp_sim_device_stats *ret);

/* Writes the JSON summary (totals and every device) to path ("-": stdout). Returns 0 or -errno. */
int fp_sim_write_summary(const struct fp_sim *s, const char *path);
