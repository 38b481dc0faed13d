/* libfleetpulse-probe: the fleetpulse probe inside your inference server.
 *
 * The library runs the same loop as the fleetpulse-probe daemon (system samplers, batches, a
 * sender that resends until the collector acknowledges) on a thread of its own, and adds what
 * only the server knows: one record per inference request (model, tokens, time to first token,
 * duration, outcome, fallbacks). Records are sent as OpenTelemetry GenAI metrics in Prometheus
 * form (docs/metrics.md, "Requests (embedded API)").
 *
 *     struct fleetpulse_probe *p = NULL;
 *     if (fleetpulse_probe_new(&p) == 0) {
 *         (void) fleetpulse_probe_set(p, "collector", "tcp://collector.lan:9470");
 *         (void) fleetpulse_probe_set(p, "site", "store-17");
 *         (void) fleetpulse_probe_start(p);
 *     }
 *     ...
 *     struct fleetpulse_request r = {.size = sizeof(r), .model = "qwen2.5-1.5b-q4",
 *                                    .prompt_tokens = 412, .generated_tokens = 128,
 *                                    .ttft_s = 0.21, .total_s = 3.9,
 *                                    .outcome = FLEETPULSE_OUTCOME_OK};
 *     (void) fleetpulse_record(p, &r);    any thread, tens of ns, never blocks
 *     ...
 *     fleetpulse_probe_destroy(&p);       sends what is left (up to about 2 s)
 *
 * Rules that hold for every function here:
 *   - Nothing aborts, exits or raises a signal in the host: failures are negative errno values.
 *   - The library is silent (no stderr) unless the host sets a logger.
 *   - Only fleetpulse_* symbols are exported; the library's internals stay private.
 *   - Configuration goes through fleetpulse_probe_set before fleetpulse_probe_start, so new
 *     options never change this ABI. struct fleetpulse_request starts with its own size so fields
 *     can be appended.
 *
 * Build: pkg-config fleetpulse-probe (shared libfleetpulse-probe.so, or the static .a with
 * --static). C11 or later; C++ includes it unchanged. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. The library checks nothing against it at run time: the ABI grows
 * only by new functions, new keys for fleetpulse_probe_set and fields appended to
 * struct fleetpulse_request. */
#define FLEETPULSE_VERSION_MAJOR 0
#define FLEETPULSE_VERSION_MINOR 1
#define FLEETPULSE_VERSION_PATCH 0
/* One number for #if comparisons, e.g. FLEETPULSE_VERSION >= FLEETPULSE_VERSION_AT(0, 2, 0). */
#define FLEETPULSE_VERSION_AT(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define FLEETPULSE_VERSION                                                                         \
    FLEETPULSE_VERSION_AT(FLEETPULSE_VERSION_MAJOR, FLEETPULSE_VERSION_MINOR,                      \
                          FLEETPULSE_VERSION_PATCH)

/* A probe: settings, the request ring, and (once started) the thread that samples and sends.
 * Opaque; one per process is the usual number. */
struct fleetpulse_probe;

/* How a request ended. The label value in metrics is the lower-case suffix ("ok", "error",
 * "timeout", "cancelled", "fallback"). */
enum fleetpulse_outcome {
    FLEETPULSE_OUTCOME_OK = 0,        /**< served locally, completely */
    FLEETPULSE_OUTCOME_ERROR = 1,     /**< failed (runtime error, out of memory, bad input) */
    FLEETPULSE_OUTCOME_TIMEOUT = 2,   /**< gave up after the server's deadline */
    FLEETPULSE_OUTCOME_CANCELLED = 3, /**< the client went away or cancelled */
    FLEETPULSE_OUTCOME_FALLBACK = 4,  /**< not served locally: handed to a fallback (a cloud API,
                                           another device, a smaller model); see fallback_reason */
};

/* One finished inference request. Set size to sizeof(struct fleetpulse_request) (the ABI
 * guard: a library older than the header ignores fields it does not know; a size smaller than
 * the first version's is refused). Everything is copied by fleetpulse_record; nothing is kept. */
struct fleetpulse_request {
    size_t size;               /**< sizeof(struct fleetpulse_request) */
    const char *model;         /**< model name as dashboards should show it, e.g.
                                    "llama-3.2-3b-q4_k_m"; copied, cut to 63 bytes; NULL or "":
                                    "unknown". Control bytes become '?'. Keep the set small (it is
                                    a label): at most 32 distinct models, later ones count as
                                    "(other)". */
    uint64_t prompt_tokens;    /**< input tokens */
    uint64_t generated_tokens; /**< output tokens */
    double ttft_s;             /**< seconds from the request's arrival to its first output token;
                                    ignored when generated_tokens is 0 */
    double total_s;            /**< seconds from arrival to the last token / the end */
    enum fleetpulse_outcome outcome;
    const char *fallback_reason; /**< with FLEETPULSE_OUTCOME_FALLBACK: why, as a short stable
                                      word ("oom", "context_too_long", "thermal"); copied, cut to
                                      63 bytes; NULL: "unknown". Ignored for other outcomes. */
};

/* Log levels passed to the logger; lower is more severe. */
enum {
    FLEETPULSE_LOG_ERROR = 0,
    FLEETPULSE_LOG_WARN = 1,
    FLEETPULSE_LOG_INFO = 2,
    FLEETPULSE_LOG_DEBUG = 3,
};

/* Sends the library's log lines to fn (NULL: silence again, the default). fn receives a level
 * (FLEETPULSE_LOG_*), one line without a trailing newline ("probe: collector ... not
 * answering; ..."; borrowed for the call) and userdata. Lines come from the library's thread
 * and from the thread calling fleetpulse_probe_start, one call at a time; there are a handful
 * per start and per problem, never one per request. fn must not call fleetpulse_set_logger.
 * After this returns, the previous fn is not called again, so its userdata may be freed.
 * Applies to every probe in the process. Thread-safe. */
void fleetpulse_set_logger(void (*fn)(int level, const char *msg, void *userdata),
                           void *userdata);

/* Creates a probe with default settings, not yet started. Records may be made at once; they
 * wait in the ring until the probe runs (fleetpulse_probe_start). Returns 0 and *ret (new:
 * fleetpulse_probe_destroy), -EINVAL when ret is NULL, or -ENOMEM (then *ret is untouched). */
int fleetpulse_probe_new(struct fleetpulse_probe **ret);

/* Changes one setting; key and value are borrowed for the call (values are copied). Only
 * before fleetpulse_probe_start, from the thread that owns the probe. Keys:
 *
 *   collector        ZeroMQ endpoint of the fleetpulse collector; default "tcp://127.0.0.1:9470"
 *   device_id        this device's id, 1-128 bytes without quotes, slashes or control bytes;
 *                    default /etc/machine-id, else the host name
 *   interval         time between rounds (samples, batch, send): "10", "2.5", "500ms", "1m";
 *                    100 ms to 1 day; default "10"
 *   site, hw_class, cohort
 *                    identity sent with the device's info (e.g. "store-17", "jetson-orin",
 *                    "canary"); up to 255 bytes
 *   tag.NAME         an extra identity tag NAME=value (up to 16 tags)
 *   max_queue_bytes  unacknowledged batches held while the collector is away, in bytes (at
 *                    least 4096); past it the oldest are dropped and counted; default 67108864
 *   ring_records     requests held between rounds, a power of two from 64 to 32768; records
 *                    past it are dropped and counted; default 4096 (size it to the busiest
 *                    interval's requests). Changing it empties the ring.
 *   samplers         "on" (default): also sample the system (memory, PSI, temperatures, CPU)
 *                    as the daemon does; "off": requests only, e.g. when a fleetpulse-probe
 *                    daemon already runs on this device
 *   procfs, sysfs    roots the samplers read; default "/proc", "/sys"; must be directories
 *
 * Returns 0; -EINVAL for a NULL argument, an unknown key or a value it does not accept (the
 * setting is unchanged); -EBUSY once started; -ENOMEM. Nothing is logged. */
int fleetpulse_probe_set(struct fleetpulse_probe *p, const char *key, const char *value);

/* Opens the samplers and the connection (in the background: an unreachable collector is not an
 * error, batches wait and are resent) and starts the probe's thread, which runs a round every
 * interval: samplers, the requests recorded since the last round, one batch to the collector.
 * The thread blocks every signal. Returns 0; -EINVAL for NULL or an endpoint ZeroMQ refuses;
 * -EALREADY when started before; -ENOMEM or another -errno when a resource is missing (the
 * reason goes to the logger). On failure the probe can be destroyed, or reconfigured and started
 * again. Call from the thread that owns the probe. */
int fleetpulse_probe_start(struct fleetpulse_probe *p);

/* Stops the probe's thread after one last round, so requests recorded before the call are sent,
 * waits up to about 2 s for the collector to acknowledge what is queued (the rest is lost and
 * was counted), and frees everything. Accepts NULL and a pointer to NULL; sets *p to NULL. No
 * other thread may use the probe during or after the call: stop calling fleetpulse_record
 * first. */
void fleetpulse_probe_destroy(struct fleetpulse_probe **p);

/* Records one finished request: copies *r into the probe's ring, stamped with the current time
 * (a coarse clock: a few milliseconds' resolution), to be sent with the next round. Any thread,
 * any number of threads at once; lock-free, no allocation, no system call, never blocks. r is
 * borrowed for the call.
 *
 * Returns 0; -EINVAL when p or r is NULL, r->size is too small, outcome is unknown, a time is
 * negative or not finite, or ttft_s > total_s with tokens generated (nothing recorded); -ENOBUFS
 * when the ring is full (the record is dropped and counted in
 * fleetpulse_probe_api_dropped_records_total: raise ring_records or shorten interval). */
int fleetpulse_record(struct fleetpulse_probe *p, const struct fleetpulse_request *r);

#ifdef __cplusplus
}
#endif
