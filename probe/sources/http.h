/* The HTTP runner shared by the sources that talk to an inference runtime (llama_server.c,
 * canary.c): one background thread per source with its own libevent base, one HTTP/1.1 client
 * request at a time to one base URL, a periodic tick, and a mutex for the result area the source
 * shares with its sample().
 *
 * Why a thread: sample() runs on the agent's thread and must never wait on the network, and a
 * canary streams for seconds. Why one request at a time: each source's work is a sequence
 * (/health, then /metrics, ...; one canary, never two), so a queue would only hide overruns;
 * a tick that finds the runner busy is the source's to count.
 *
 * libevent stays behind this header (no event2 type leaks out), as STYLE.md asks of third-party
 * APIs. Thread rules: new/start/destroy and lock/unlock are for the owning (agent) thread;
 * fp_http_runner_call and fp_http_runner_busy only on the runner thread, i.e. from the tick or a
 * call's callbacks. Callbacks never run after destroy has begun. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

/* How a call ended (fp_http_response.result). */
enum fp_http_result {
    FP_HTTP_DONE = 0,    /**< a whole response arrived; see status */
    FP_HTTP_E_CONNECT,   /**< could not connect: refused, unreachable, name not resolved */
    FP_HTTP_E_TIMEOUT,   /**< no complete response within the call's timeout_ms */
    FP_HTTP_E_TOO_LARGE, /**< the body went over max_body_bytes */
    FP_HTTP_E_CLOSED,    /**< the peer closed or reset the connection mid-response */
    FP_HTTP_E_PROTOCOL,  /**< not an HTTP response we can read (bad status line, headers) */
    FP_HTTP_E_ABORTED,   /**< on_data asked to stop */
};

/* "ok", "refused", "timeout", "too_large", "closed", "protocol", "aborted". */
const char *fp_http_result_name(int result);

/* What on_done gets. Everything is borrowed until on_done returns. */
struct fp_http_response {
    int result;       /**< enum fp_http_result */
    int status;       /**< HTTP status; 0 when no response line arrived */
    const char *body; /**< NUL-terminated body (body_len bytes); "" for streaming calls and
                           failures */
    size_t body_len;
    const char *header; /**< the value of the call's capture_header, or NULL */
};

/* One request. Strings are copied by fp_http_runner_call. */
struct fp_http_call {
    const char *method;         /**< "GET" or "POST" */
    const char *path;           /**< appended to the base URL's path, e.g. "/health" */
    const char *body;           /**< POST body (JSON), or NULL */
    int64_t timeout_ms;         /**< whole request, connect to last byte */
    size_t max_body_bytes;      /**< larger responses end in FP_HTTP_E_TOO_LARGE */
    const char *capture_header; /**< response header to hand to on_done, or NULL */
    /* Streaming: called with each piece of the body as it arrives (status is the response's),
     * instead of collecting it. Returns 0 to go on, non-zero to abort the request: on_done then
     * gets FP_HTTP_E_ABORTED. NULL: the body is collected and handed to on_done. */
    int (*on_data)(void *userdata, int status, const char *data, size_t len);
    /* Called once when the call ends, whatever the outcome (never from within
     * fp_http_runner_call). May start the next call. */
    void (*on_done)(void *userdata, const struct fp_http_response *res);
    void *userdata;
};

struct fp_http_runner;

/* Creates a runner for base_url ("http://host[:port][/prefix]"; https is not supported) that
 * sends api_key, when not NULL, as "Authorization: Bearer KEY". Once started, the runner calls
 * tick(userdata) on its thread first after first_tick_ms, then every period_ms (measured from the
 * start of one tick to the next). Returns 0 and *ret (new: fp_http_runner_destroy), -EINVAL for a
 * URL or key it cannot use, -EPROTONOSUPPORT for a scheme other than http, or -ENOMEM. Nothing
 * runs until fp_http_runner_start. */
int fp_http_runner_new(const char *base_url, const char *api_key, int64_t first_tick_ms,
                       int64_t period_ms, void (*tick)(void *userdata), void *userdata,
                       struct fp_http_runner **ret);

/* Starts the thread (all signals blocked in it: SIGPIPE from a reset socket must not reach a
 * host process). Returns 0 or -errno from pthread_create. */
int fp_http_runner_start(struct fp_http_runner *r);

/* Starts a request. Runner thread only. Returns 0 (on_done will be called), -EBUSY when a call is
 * still in flight, -EINVAL for a bad method or a header value with CR/LF, or -ENOMEM. */
int fp_http_runner_call(struct fp_http_runner *r, const struct fp_http_call *call);

/* True while a call is in flight (from fp_http_runner_call until its on_done has returned or
 * started the next one). Runner thread only. */
bool fp_http_runner_busy(const struct fp_http_runner *r);

/* The mutex guarding the source's result area (the runner itself takes it never): the runner
 * thread holds it while writing results, sample() while reading them. Never call into the runner
 * while holding it. */
void fp_http_runner_lock(struct fp_http_runner *r);
void fp_http_runner_unlock(struct fp_http_runner *r);

/* Stops the thread (an in-flight request is dropped without callbacks), frees everything; accepts
 * NULL and nulls *r. After it returns no callback of r runs, so the source may free its state. */
void fp_http_runner_destroy(struct fp_http_runner **r);

/* --- events a source gathers between rounds -------------------------------------------------- */

#define FP_PENDING_MAX_EVENTS 32 /* a round's worth: canaries at 100 ms under a 3 s interval */
#define FP_PENDING_MAX_ATTRS 8

struct fp_pending_event {
    enum fp_severity severity;
    char kind[32];
    char message[160];
    size_t n_attrs;
    char names[FP_PENDING_MAX_ATTRS][24];
    char values[FP_PENDING_MAX_ATTRS][96];
};

/* A bounded queue of events: the runner thread pushes (under the runner lock), sample() moves
 * the queue out under the lock and emits it after unlocking. When full, the oldest is dropped and
 * counted. */
struct fp_pending_events {
    struct fp_pending_event ev[FP_PENDING_MAX_EVENTS];
    size_t head, n;   /**< ring: oldest at head */
    uint64_t dropped; /**< events dropped since the last emit */
};

/* Appends one event; strings are copied and cut to the fields' sizes, attributes past
 * FP_PENDING_MAX_ATTRS are left out. */
void fp_pending_push(struct fp_pending_events *q, enum fp_severity severity, const char *kind,
                     const char *message, const struct fp_label *attrs, size_t n_attrs);

/* Emits every event in order at the round's time and empties q. Returns the number of events
 * dropped since the last emit (what sample() reports as values it could not deliver), or -errno
 * from the emitter. */
int fp_pending_emit(struct fp_pending_events *q, struct fp_emitter *out);

/* --- the sources' entry points with knobs the sampler env does not carry --------------------- */

/* The llama_server source's open (llama_server.c) with the scrape period given: the registered
 * source uses FP_LLAMA_SERVER_PERIOD_MS; tests use a short one. */
#define FP_LLAMA_SERVER_PERIOD_MS 2000
int fp_llama_server_open_period(const struct fp_sampler_env *env, int64_t period_ms,
                                void **ret_ctx);
