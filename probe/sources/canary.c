/* The "canary" source: every canary_interval_ms, sends one short fixed prompt to the inference
 * runtime with streaming on and measures what a user would see: time to first token, time per
 * output token, generation rate and total latency, all on the client's monotonic clock.
 *
 * Where. To openai_url + /v1/chat/completions when --openai is given (any OpenAI-compatible
 * server, llama.cpp included), else to llama_server_url + /completion with cache_prompt off, so
 * each canary pays the prefill it is meant to measure.
 *
 * How. A runner thread (http.c) owns the request; the body is fed as it arrives to an SSE decoder
 * (llama-parse.c) whose events mark the first non-empty content (TTFT) and the end of the stream
 * ("[DONE]" on chat, "stop": true on /completion). Times run from the moment the request is
 * handed to libevent (so they include connect, which on loopback is noise) to those marks.
 * Tokens are the server's own count from the final chunk (usage.completion_tokens,
 * tokens_predicted) when it sends one, else the number of content events (one token each in
 * llama.cpp). A canary never overlaps the previous one: a tick that finds one running is counted
 * as skipped, so a slow runtime is not buried under its own probes.
 *
 * What goes out. Each request's outcome is counted (llm_canary_requests_total{outcome}) and
 * reported as a "canary" event. The latency gauges come from the last canary that succeeded since
 * the previous round, so a failure never shows up as a fast (or slow) number: it shows up as an
 * outcome. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http.h"
#include "llama-parse.h"
#include "sources-internal.h"

/* A canary asks for a few tokens; its stream is a few KiB. */
#define MAX_STREAM_BYTES (1024 * 1024)
/* One SSE line (one event's JSON, with timings and settings on the last one) stays far below. */
#define MAX_SSE_LINE_BYTES (64 * 1024)
/* Enough of an error body for its message. */
#define MAX_ERROR_BODY_BYTES 1024
#define DEFAULT_PROMPT "Say hello in one short sentence."
#define DEFAULT_MAX_TOKENS 16
#define DEFAULT_TIMEOUT_MS 30000

enum outcome { OUT_OK, OUT_HTTP_ERROR, OUT_TIMEOUT, OUT_REFUSED, OUT_EMPTY, OUT_ERROR, N_OUTCOMES };

/* The "outcome" label values; docs/metrics.md lists them. */
static const char *const outcome_names[N_OUTCOMES] = {
    [OUT_OK] = "ok",           [OUT_HTTP_ERROR] = "http_error", [OUT_TIMEOUT] = "timeout",
    [OUT_REFUSED] = "refused", [OUT_EMPTY] = "empty",           [OUT_ERROR] = "error",
};

/* One successful canary's figures, seconds. */
struct result {
    double ttft_s;
    double duration_s;
    bool have_per_token; /**< tokens > 1 and time passed after the first: the two below are set */
    double tpot_s;       /**< (duration - ttft) / (tokens - 1) */
    double tokens_per_s; /**< (tokens - 1) / (duration - ttft) */
};

/* Guarded by the runner lock. */
struct shared {
    uint64_t outcomes[N_OUTCOMES]; /**< requests by outcome, since open */
    uint64_t skipped;              /**< ticks skipped: the previous canary still ran */
    bool have_result;              /**< a canary succeeded since the last round */
    struct result last;
    struct fp_pending_events events;
};

struct canary_ctx {
    struct fp_http_runner *runner;
    enum fp_canary_endpoint endpoint;
    char *body; /**< the request body, built once */
    int64_t timeout_ms;

    /* runner thread only: the canary in flight */
    struct fp_sse sse;
    struct fp_canary_stream stream;
    int64_t start_ns, first_ns, end_ns;  /**< monotonic; 0: not yet */
    char fail[96];                       /**< why the stream was aborted */
    char err_body[MAX_ERROR_BODY_BYTES]; /**< a non-200 answer's body, cut */
    size_t err_len;

    struct shared sh;   /**< runner lock */
    struct shared snap; /**< agent thread: sample()'s copy */
};

/* --- one canary (runner thread) --------------------------------------------------------------- */

static int on_event(void *userdata, const char *data, size_t len)
{
    struct canary_ctx *c = userdata;
    bool was_done = c->stream.done;
    int r = fp_canary_stream_event(&c->stream, data, len);

    if (r < 0) {
        (void)snprintf(c->fail, sizeof(c->fail), "malformed event in the stream");
        return 1;
    }
    if ((r & FP_CANARY_EVENT_CONTENT) && c->first_ns == 0)
        c->first_ns = fp_clock_mono_ns();
    if (c->stream.done && !was_done)
        c->end_ns = fp_clock_mono_ns();
    return 0;
}

static int on_data(void *userdata, int status, const char *data, size_t len)
{
    struct canary_ctx *c = userdata;
    int r;

    if (status != 200) {
        /* Keep the start of an error body for its message; the rest is not needed. */
        size_t n = len < sizeof(c->err_body) - c->err_len ? len : sizeof(c->err_body) - c->err_len;

        memcpy(c->err_body + c->err_len, data, n);
        c->err_len += n;
        return 0;
    }
    r = fp_sse_feed(&c->sse, data, len, on_event, c);
    if (r == -E2BIG)
        (void)snprintf(c->fail, sizeof(c->fail), "stream line over %d bytes", MAX_SSE_LINE_BYTES);
    return r != 0;
}

static void record(struct canary_ctx *c, enum outcome o, int status, const char *message,
                   const struct result *res)
{
    int64_t end_ns = c->end_ns != 0 ? c->end_ns : fp_clock_mono_ns();
    char st[16], ttft[24], tokens[24], duration[24];
    struct fp_label attrs[6];
    size_t n = 0;
    int64_t ntok = c->stream.tokens >= 0 ? c->stream.tokens : (int64_t)c->stream.content_events;

    (void)snprintf(st, sizeof(st), "%d", status);
    (void)snprintf(tokens, sizeof(tokens), "%" PRId64, ntok);
    (void)snprintf(duration, sizeof(duration), "%" PRId64, (end_ns - c->start_ns) / 1000000);
    attrs[n++] = (struct fp_label){"outcome", outcome_names[o]};
    attrs[n++] = (struct fp_label){"endpoint", fp_canary_endpoint_name(c->endpoint)};
    attrs[n++] = (struct fp_label){"http_status", st};
    if (c->first_ns != 0) {
        (void)snprintf(ttft, sizeof(ttft), "%" PRId64, (c->first_ns - c->start_ns) / 1000000);
        attrs[n++] = (struct fp_label){"ttft_ms", ttft};
    }
    attrs[n++] = (struct fp_label){"tokens", tokens};
    attrs[n++] = (struct fp_label){"duration_ms", duration};

    fp_http_runner_lock(c->runner);
    c->sh.outcomes[o]++;
    if (res != NULL) {
        c->sh.have_result = true;
        c->sh.last = *res;
    }
    fp_pending_push(&c->sh.events, o == OUT_OK ? FP_SEVERITY_INFO : FP_SEVERITY_WARNING, "canary",
                    message, attrs, n);
    fp_http_runner_unlock(c->runner);
}

/* The figures of a canary that ended well. */
static void measure(const struct canary_ctx *c, struct result *ret)
{
    int64_t tokens = c->stream.tokens >= 0 ? c->stream.tokens : (int64_t)c->stream.content_events;
    double gen_s;

    ret->ttft_s = (double)(c->first_ns - c->start_ns) / 1e9;
    ret->duration_s = (double)(c->end_ns - c->start_ns) / 1e9;
    gen_s = ret->duration_s - ret->ttft_s;
    /* The first token's cost is TTFT; per-token figures cover the rest, as OTel's
     * time_per_output_token and llama.cpp's predicted_per_second do. */
    ret->have_per_token = tokens > 1 && gen_s > 0;
    if (ret->have_per_token) {
        ret->tpot_s = gen_s / (double)(tokens - 1);
        ret->tokens_per_s = (double)(tokens - 1) / gen_s;
    }
}

static void on_done(void *userdata, const struct fp_http_response *res)
{
    struct canary_ctx *c = userdata;
    char msg[160], detail[128];
    struct result result;

    switch (res->result) {
    case FP_HTTP_E_CONNECT:
        record(c, OUT_REFUSED, 0, "cannot connect to the runtime", NULL);
        return;
    case FP_HTTP_E_TIMEOUT:
        (void)snprintf(msg, sizeof(msg), "no complete answer within %" PRId64 " ms", c->timeout_ms);
        record(c, OUT_TIMEOUT, res->status, msg, NULL);
        return;
    case FP_HTTP_E_ABORTED:
        record(c, OUT_ERROR, res->status, c->fail[0] != '\0' ? c->fail : "aborted", NULL);
        return;
    case FP_HTTP_DONE:
        break;
    default:
        (void)snprintf(msg, sizeof(msg), "request failed: %s", fp_http_result_name(res->result));
        record(c, OUT_ERROR, res->status, msg, NULL);
        return;
    }

    if (res->status != 200) {
        fp_llama_error_message(c->err_body, c->err_len, detail, sizeof(detail));
        (void)snprintf(msg, sizeof(msg), "http %d%s%s", res->status, detail[0] ? ": " : "", detail);
        record(c, OUT_HTTP_ERROR, res->status, msg, NULL);
        return;
    }
    /* A last event without its blank line still counts. */
    if (fp_sse_finish(&c->sse, on_event, c) != 0) {
        record(c, OUT_ERROR, res->status, c->fail[0] != '\0' ? c->fail : "malformed stream", NULL);
        return;
    }
    if (c->stream.failed) {
        (void)snprintf(msg, sizeof(msg), "error in stream: %s", c->stream.message);
        record(c, OUT_ERROR, res->status, msg, NULL);
    } else if (!c->stream.done) {
        record(c, OUT_ERROR, res->status, "stream ended without its end marker", NULL);
    } else if (c->first_ns == 0) {
        record(c, OUT_EMPTY, res->status, "answer without any content", NULL);
    } else {
        measure(c, &result);
        (void)snprintf(msg, sizeof(msg), "canary answered in %.0f ms, first token after %.0f ms",
                       result.duration_s * 1e3, result.ttft_s * 1e3);
        record(c, OUT_OK, res->status, msg, &result);
    }
}

static void tick(void *userdata)
{
    struct canary_ctx *c = userdata;
    const struct fp_http_call call = {
        .method = "POST",
        .path = fp_canary_endpoint_path(c->endpoint),
        .body = c->body,
        .timeout_ms = c->timeout_ms,
        .max_body_bytes = MAX_STREAM_BYTES,
        .on_data = on_data,
        .on_done = on_done,
        .userdata = c,
    };
    int r;

    if (fp_http_runner_busy(c->runner)) {
        fp_http_runner_lock(c->runner);
        c->sh.skipped++;
        fp_http_runner_unlock(c->runner);
        return;
    }
    fp_canary_stream_init(&c->stream, c->endpoint);
    fp_sse_reset(&c->sse);
    c->first_ns = c->end_ns = 0;
    c->fail[0] = '\0';
    c->err_len = 0;
    c->start_ns = fp_clock_mono_ns();
    r = fp_http_runner_call(c->runner, &call);
    if (r < 0) {
        char msg[96];

        (void)snprintf(msg, sizeof(msg), "cannot start the request: %s", strerror(-r));
        record(c, OUT_ERROR, 0, msg, NULL);
    }
}

/* --- the sampler (agent thread) --------------------------------------------------------------- */

static void canary_close(void **ctx)
{
    struct canary_ctx *c;

    if (ctx == NULL || *ctx == NULL)
        return;
    c = *ctx;
    /* First: after it, no runner callback touches c. */
    fp_http_runner_destroy(&c->runner);
    fp_sse_fini(&c->sse);
    free(c->body);
    free(c);
    *ctx = NULL;
}

static int canary_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct canary_ctx *c;
    const char *url;
    int r;

    if (env->canary_interval_ms <= 0)
        return FP_SAMPLER_DISABLED;
    if (env->openai_url == NULL && env->llama_server_url == NULL)
        return FP_SAMPLER_DISABLED;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->endpoint = env->openai_url != NULL ? FP_CANARY_CHAT : FP_CANARY_COMPLETION;
    url = env->openai_url != NULL ? env->openai_url : env->llama_server_url;
    c->timeout_ms = env->canary_timeout_ms > 0 ? env->canary_timeout_ms : DEFAULT_TIMEOUT_MS;
    c->body = fp_canary_request_body(
        c->endpoint, env->canary_prompt != NULL ? env->canary_prompt : DEFAULT_PROMPT,
        env->canary_max_tokens > 0 ? env->canary_max_tokens : DEFAULT_MAX_TOKENS,
        env->openai_model);
    if (c->body == NULL) {
        r = -EINVAL; /* a prompt that is not UTF-8 (or no memory, which looks the same) */
        goto fail;
    }
    r = fp_sse_init(&c->sse, MAX_SSE_LINE_BYTES);
    if (r < 0)
        goto fail;
    /* The first canary waits one interval: a probe started with the runtime would otherwise
     * always report a 503 while the model loads. */
    r = fp_http_runner_new(url, env->api_key, env->canary_interval_ms, env->canary_interval_ms,
                           tick, c, &c->runner);
    if (r < 0)
        goto fail;
    r = fp_http_runner_start(c->runner);
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    canary_close((void **)&c);
    return r;
}

static int canary_sample(void *ctx, struct fp_emitter *out)
{
    struct canary_ctx *c = ctx;
    struct shared *s = &c->snap;
    int r = 0, dropped;

    fp_http_runner_lock(c->runner);
    *s = c->sh;
    c->sh.have_result = false;
    c->sh.events.head = c->sh.events.n = 0;
    c->sh.events.dropped = 0;
    fp_http_runner_unlock(c->runner);

    if (s->have_result) {
        r = fp_emit_gauge(out, "llm_canary_time_to_first_token_seconds", NULL, 0, s->last.ttft_s);
        if (r >= 0)
            r = fp_emit_gauge(out, "llm_canary_duration_seconds", NULL, 0, s->last.duration_s);
        if (r >= 0 && s->last.have_per_token)
            r = fp_emit_gauge(out, "llm_canary_time_per_output_token_seconds", NULL, 0,
                              s->last.tpot_s);
        if (r >= 0 && s->last.have_per_token)
            r = fp_emit_gauge(out, "llm_canary_generation_tokens_per_second", NULL, 0,
                              s->last.tokens_per_s);
    }
    for (size_t i = 0; r >= 0 && i < N_OUTCOMES; i++) {
        if (s->outcomes[i] == 0)
            continue;
        r = fp_emit_counter(out, "llm_canary_requests_total",
                            &(struct fp_label){"outcome", outcome_names[i]}, 1,
                            (double)s->outcomes[i]);
    }
    if (r >= 0)
        r = fp_emit_counter(out, "llm_canary_skipped_total", NULL, 0, (double)s->skipped);
    if (r < 0)
        return r;
    dropped = fp_pending_emit(&s->events, out);
    return dropped;
}

const struct fp_sampler_ops fp_sampler_canary = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "canary",
    .open = canary_open,
    .sample = canary_sample,
    .close = canary_close,
};
