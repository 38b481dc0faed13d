/* Parsers for what an inference runtime answers, kept apart from the network code so fixtures can
 * drive them directly: the Prometheus text of llama.cpp's /metrics, its /health, /slots and /props
 * JSON, server-sent-event streams, and the canary's request bodies and stream chunks.
 *
 * Everything here is pure: no I/O, no clock, no threads. Inputs are (pointer, length) pairs that
 * need not be NUL-terminated (HTTP bodies are not); every output is bounded by the caller's
 * buffers. Used by llama_server.c and canary.c on their runner threads, and by the unit tests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"

/* --- Prometheus text format (version 0.0.4) -------------------------------------------------- */

/* Called by fp_prom_parse for each sample line. name is the metric name (name_len bytes, not
 * NUL-terminated); labels is the text between the braces (NULL when the line has none), already
 * checked to be well formed. Returns 0 to go on, non-zero to stop the parse. */
typedef int (*fp_prom_sample_fn)(void *userdata, const char *name, size_t name_len,
                                 const char *labels, size_t labels_len, double value);

/* Parses text (len bytes) line by line: skips blank lines and "#" comments (HELP, TYPE), accepts
 * spaces and tabs around fields, label sets with quoted and escaped values, NaN / +Inf / -Inf,
 * and an optional timestamp, and calls fn for each sample. Returns the number of malformed lines
 * skipped (0 for a clean exposition). */
size_t fp_prom_parse(const char *text, size_t len, fp_prom_sample_fn fn, void *userdata);

/* --- llama.cpp /metrics ---------------------------------------------------------------------- */

/* The llama.cpp series the probe keeps. If you add one here, add its row to fp_llama_metric_info
 * in llama-parse.c and to docs/metrics.md. */
enum fp_llama_metric {
    FP_LLAMA_PROMPT_TOKENS,       /**< llamacpp:prompt_tokens_total, counter */
    FP_LLAMA_PROMPT_SECONDS,      /**< llamacpp:prompt_seconds_total, counter */
    FP_LLAMA_TOKENS_PREDICTED,    /**< llamacpp:tokens_predicted_total, counter */
    FP_LLAMA_PREDICTED_SECONDS,   /**< llamacpp:tokens_predicted_seconds_total, counter */
    FP_LLAMA_N_DECODE,            /**< llamacpp:n_decode_total, counter */
    FP_LLAMA_REQUESTS_PROCESSING, /**< llamacpp:requests_processing, gauge */
    FP_LLAMA_REQUESTS_DEFERRED,   /**< llamacpp:requests_deferred, gauge */
    FP_LLAMA_N_METRICS,
};

struct fp_llama_metric_info {
    const char *source;       /**< name in llama.cpp's exposition, "llamacpp:..." */
    const char *name;         /**< the name we emit: ':' -> '_' */
    enum fp_metric_type type; /**< as llama.cpp declares it */
};

/* Indexed by enum fp_llama_metric. */
extern const struct fp_llama_metric_info fp_llama_metric_info[FP_LLAMA_N_METRICS];

/* One /metrics snapshot: value[i] is meaningful when bit i of have is set. */
struct fp_llama_metrics {
    double value[FP_LLAMA_N_METRICS];
    uint32_t have;
};

/* Extracts the series of enum fp_llama_metric from a /metrics body. Only unlabelled samples count
 * (llama.cpp emits these without labels; a labelled one is another series); the first occurrence
 * wins; non-finite values are skipped. Returns the number of malformed lines plus skipped values
 * (0 when all went well). *ret is always filled. */
size_t fp_llama_metrics_parse(const char *text, size_t len, struct fp_llama_metrics *ret);

/* Rates between two snapshots of the _total counters. */
struct fp_llama_rates {
    bool reset;                          /**< a counter went down: the server restarted; no rates */
    bool have_prompt;                    /**< prompt_tokens_per_second is set */
    bool have_generation;                /**< generation_tokens_per_second is set */
    double prompt_tokens_per_second;     /**< Δprompt_tokens / Δprompt_seconds */
    double generation_tokens_per_second; /**< Δtokens_predicted / Δtokens_predicted_seconds */
};

/* Computes the rates from prev to cur. A rate is set only when both of its counters are in both
 * snapshots and its seconds delta is > 0 (no work in between: no rate, rather than 0 or NaN).
 * When any counter present in both went down, sets reset and no rate. */
void fp_llama_rates_compute(const struct fp_llama_metrics *prev, const struct fp_llama_metrics *cur,
                            struct fp_llama_rates *ret);

/* --- llama.cpp /health, /slots, /props ------------------------------------------------------- */

enum fp_llama_health {
    FP_LLAMA_HEALTH_DOWN,    /**< not answering, or answering something else than ready/loading */
    FP_LLAMA_HEALTH_LOADING, /**< up, model still loading (503 "Loading model") */
    FP_LLAMA_HEALTH_OK,      /**< 200: ready */
};

/* "down", "loading", "ok". */
const char *fp_llama_health_name(enum fp_llama_health h);

/* Classifies a /health answer with HTTP status http_status and body (len bytes, may be empty).
 * Writes a short reason into reason (reason_size > 0 bytes, always NUL-terminated): "ok", the
 * server's message ("Loading model"), or "http 500". */
enum fp_llama_health fp_llama_health_parse(int http_status, const char *body, size_t len,
                                           char *reason, size_t reason_size);

/* Counts the slots of a /slots body (a JSON array) and the busy ones: "is_processing": true, or a
 * non-zero "state" in older builds. Returns 0, or -EINVAL when the body is not such an array. */
int fp_llama_slots_parse(const char *body, size_t len, unsigned *ret_total, unsigned *ret_busy);

/* What the probe takes from /props. Empty strings and 0 mean "not reported". */
struct fp_llama_props {
    char build_info[128]; /**< "b<build>-<commit>" */
    char model[256];      /**< model_path's file name without directory, ".gguf" and
                               "-00001-of-00003" shard suffix; else model_alias */
    char ftype[64];       /**< model_ftype, e.g. "Q4_K - Medium" */
    int64_t n_ctx;        /**< default_generation_settings.n_ctx (or top-level n_ctx) */
};

/* Parses a /props body. Returns 0 (fields the body lacks stay empty), or -EINVAL when it is not a
 * JSON object. Over-long strings are cut to the field size. */
int fp_llama_props_parse(const char *body, size_t len, struct fp_llama_props *ret);

/* The model name from a GGUF path: "/m/Qwen2-0.5B-Q4_K_M.gguf" -> "Qwen2-0.5B-Q4_K_M",
 * "x-00001-of-00002.gguf" -> "x". Writes into ret (size > 0 bytes, cut to fit). */
void fp_llama_model_name(const char *path, char *ret, size_t size);

/* --- server-sent events ---------------------------------------------------------------------- */

/* An incremental SSE decoder: feed it the body in whatever pieces the network gives, it calls
 * back once per complete event with the event's data (its "data:" lines joined by '\n').
 * Lines end in "\n", "\r\n" or "\r", also across piece boundaries; comments and fields other than
 * "data" are ignored. Both the line and the event data are bounded by max_bytes: a peer cannot
 * make it grow. */
struct fp_sse {
    char *line; /**< the line being read, max_bytes */
    size_t line_len;
    char *data; /**< the event being assembled, max_bytes + 1 (for the NUL) */
    size_t data_len;
    bool have_data; /**< at least one data line since the last dispatch */
    bool skip_lf;   /**< the last piece ended in '\r': a leading '\n' belongs to it */
    size_t max_bytes;
};

/* Called with one event's data (NUL-terminated, len bytes). Returns 0 to go on, or non-zero to
 * stop: fp_sse_feed then returns that value. */
typedef int (*fp_sse_event_fn)(void *userdata, const char *data, size_t len);

/* Sets up a decoder for lines and events of at most max_bytes. Returns 0 or -ENOMEM; fini frees. */
int fp_sse_init(struct fp_sse *s, size_t max_bytes);
void fp_sse_fini(struct fp_sse *s);

/* Forgets any partial line and event (a new stream on the same decoder). */
void fp_sse_reset(struct fp_sse *s);

/* Decodes len bytes. Returns 0, -E2BIG when a line or event is over max_bytes (the decoder is then
 * unusable until reset), or the callback's non-zero answer. */
int fp_sse_feed(struct fp_sse *s, const char *buf, size_t len, fp_sse_event_fn fn, void *userdata);

/* End of stream: dispatches an event whose final blank line never came. Same returns. */
int fp_sse_finish(struct fp_sse *s, fp_sse_event_fn fn, void *userdata);

/* --- the canary ------------------------------------------------------------------------------ */

enum fp_canary_endpoint {
    FP_CANARY_COMPLETION, /**< llama.cpp POST /completion */
    FP_CANARY_CHAT,       /**< OpenAI-compatible POST /v1/chat/completions */
};

/* "completion", "chat". */
const char *fp_canary_endpoint_name(enum fp_canary_endpoint e);

/* The request path of an endpoint: "/completion", "/v1/chat/completions". */
const char *fp_canary_endpoint_path(enum fp_canary_endpoint e);

/* Builds the canary's JSON request body: for completion {"prompt", "n_predict", "stream": true,
 * "cache_prompt": false}; for chat {"model" (model, or "default" when NULL), "messages",
 * "max_tokens", "stream": true, "stream_options": {"include_usage": true}}. Returns a new string
 * (free()) or NULL when out of memory or prompt is not UTF-8. */
char *fp_canary_request_body(enum fp_canary_endpoint e, const char *prompt, int max_tokens,
                             const char *model);

/* What one streamed answer said so far. Zero it (fp_canary_stream_init) before each request. */
struct fp_canary_stream {
    enum fp_canary_endpoint endpoint;
    uint64_t content_events; /**< events that carried non-empty generated text */
    int64_t tokens;          /**< generated tokens the server reported at the end; -1: none */
    bool done;               /**< end of stream seen: [DONE] (chat) or "stop": true (completion) */
    bool failed;             /**< the server put an error object in the stream */
    char message[128];       /**< the error's message when failed */
};

void fp_canary_stream_init(struct fp_canary_stream *s, enum fp_canary_endpoint e);

/* fp_canary_stream_event's answer: the event carried generated text (the caller notes the time
 * of the first one as time to first token). */
#define FP_CANARY_EVENT_CONTENT 1

/* Interprets one SSE event's data. For chat, content is choices[].delta.content or
 * .reasoning_content (a reasoning model's first tokens are reasoning; they are tokens all the
 * same), "usage.completion_tokens" gives tokens and "[DONE]" ends the stream; for completion,
 * content is "content" and the chunk with "stop": true ends it with "tokens_predicted". Returns
 * FP_CANARY_EVENT_CONTENT, 0, or -EINVAL for data that is not JSON. */
int fp_canary_stream_event(struct fp_canary_stream *s, const char *data, size_t len);

/* Copies at most n bytes of src (less at a NUL) into ret (size > 0 bytes, NUL-terminated) as text
 * safe to ship: control characters become ' ', bytes that are not valid UTF-8 become '?', and a cut
 * never splits a character (the query service refuses invalid UTF-8). Returns the bytes written. */
size_t fp_llama_copy_text(char *ret, size_t size, const char *src, size_t n);

/* The message of an error body ({"error": {"message": ...}} or {"error": "..."}), else the body's
 * first bytes, into ret (size > 0 bytes, NUL-terminated, control characters replaced). */
void fp_llama_error_message(const char *body, size_t len, char *ret, size_t size);
