/* Parsers for llama.cpp's answers (see llama-parse.h): Prometheus text, /health, /slots, /props,
 * SSE streams and the canary's chunks.
 *
 * The Prometheus parser is a small hand-written scanner rather than a regex: it must walk label
 * values with escapes (a '}' or ' ' inside quotes is not the end), and it never allocates. JSON
 * goes through Jansson with JSON_REJECT_DUPLICATES off (llama.cpp does not send duplicates, and a
 * future build that did should still be read). Nothing here trusts a length from the peer: every
 * copy is cut to the destination. */
#include "llama-parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "parse.h"

/* --- Prometheus text ------------------------------------------------------------------------- */

/* Longest value token we parse ("-1.2345678901234567e+308" is 24): a longer one is malformed. */
#define PROM_MAX_NUMBER 64

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Walks a label set from just after '{'. Returns the position of the closing '}' or NULL when
 * the set is malformed (a name without '=', an unterminated quote, a bad escape). */
static const char *scan_labels(const char *p, const char *end)
{
    for (;;) {
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p == '}')
            return p;
        if (p >= end || !is_name_start(*p) || *p == ':')
            return NULL;
        while (p < end && is_name_char(*p) && *p != ':')
            p++;
        while (p < end && is_blank(*p))
            p++;
        if (p >= end || *p != '=')
            return NULL;
        p++;
        while (p < end && is_blank(*p))
            p++;
        if (p >= end || *p != '"')
            return NULL;
        for (p++;; p++) {
            if (p >= end)
                return NULL;
            if (*p == '\\') {
                /* The format knows three escapes: \\, \" and \n. */
                if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
                    return NULL;
                p++;
            } else if (*p == '"') {
                p++;
                break;
            }
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p == ',') {
            p++; /* a trailing comma before '}' is allowed */
            continue;
        }
        if (p < end && *p == '}')
            return p;
        return NULL;
    }
}

static int parse_value(const char *s, size_t n, double *ret)
{
    char buf[PROM_MAX_NUMBER];

    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* fp_parse_double refuses these on purpose (flags and files); the exposition format has them.
     */
    if (strcmp(buf, "NaN") == 0) {
        *ret = NAN;
        return 0;
    }
    if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "Inf") == 0) {
        *ret = INFINITY;
        return 0;
    }
    if (strcmp(buf, "-Inf") == 0) {
        *ret = -INFINITY;
        return 0;
    }
    return fp_parse_double(buf, ret);
}

/* One line without its newline. Returns 1 for a sample (fills the out-params), 0 for a blank or
 * comment line, -EINVAL for a malformed one. */
static int parse_line(const char *p, const char *end, const char **ret_name, size_t *ret_name_len,
                      const char **ret_labels, size_t *ret_labels_len, double *ret_value)
{
    const char *name, *labels = NULL, *close, *value;
    size_t name_len, labels_len = 0;
    int64_t ts;

    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '#')
        return 0;
    if (!is_name_start(*p))
        return -EINVAL;
    name = p;
    while (p < end && is_name_char(*p))
        p++;
    name_len = (size_t)(p - name);
    while (p < end && is_blank(*p))
        p++;
    if (p < end && *p == '{') {
        close = scan_labels(p + 1, end);
        if (close == NULL)
            return -EINVAL;
        labels = p + 1;
        labels_len = (size_t)(close - labels);
        p = close + 1;
        if (p >= end || !is_blank(*p))
            return -EINVAL;
    } else if (p == name + name_len) {
        return -EINVAL; /* "name" alone, or "name!" */
    }
    while (p < end && is_blank(*p))
        p++;
    value = p;
    while (p < end && !is_blank(*p))
        p++;
    if (parse_value(value, (size_t)(p - value), ret_value) < 0)
        return -EINVAL;
    while (p < end && is_blank(*p))
        p++;
    if (p < end) {
        /* An optional timestamp (ms); we use the scrape's time instead, but it must be a number. */
        const char *t = p;
        char buf[32];

        while (p < end && !is_blank(*p))
            p++;
        if ((size_t)(p - t) >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, t, (size_t)(p - t));
        buf[p - t] = '\0';
        if (fp_parse_i64(buf, &ts) < 0)
            return -EINVAL;
        while (p < end && is_blank(*p))
            p++;
        if (p < end)
            return -EINVAL;
    }
    *ret_name = name;
    *ret_name_len = name_len;
    *ret_labels = labels;
    *ret_labels_len = labels_len;
    return 1;
}

size_t fp_prom_parse(const char *text, size_t len, fp_prom_sample_fn fn, void *userdata)
{
    const char *p = text, *end = text + len;
    size_t bad = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        const char *name, *labels;
        size_t name_len, labels_len;
        double v;
        int r;

        /* CRLF from a proxy: the '\r' is not part of the value. */
        r = parse_line(p, line_end > p && line_end[-1] == '\r' ? line_end - 1 : line_end, &name,
                       &name_len, &labels, &labels_len, &v);
        if (r < 0)
            bad++;
        else if (r > 0 && fn(userdata, name, name_len, labels, labels_len, v) != 0)
            break;
        p = nl != NULL ? nl + 1 : end;
    }
    return bad;
}

/* --- llama.cpp /metrics ---------------------------------------------------------------------- */

const struct fp_llama_metric_info fp_llama_metric_info[FP_LLAMA_N_METRICS] = {
    [FP_LLAMA_PROMPT_TOKENS] = {"llamacpp:prompt_tokens_total", "llamacpp_prompt_tokens_total",
                                FP_METRIC_COUNTER},
    [FP_LLAMA_PROMPT_SECONDS] = {"llamacpp:prompt_seconds_total", "llamacpp_prompt_seconds_total",
                                 FP_METRIC_COUNTER},
    [FP_LLAMA_TOKENS_PREDICTED] = {"llamacpp:tokens_predicted_total",
                                   "llamacpp_tokens_predicted_total", FP_METRIC_COUNTER},
    [FP_LLAMA_PREDICTED_SECONDS] = {"llamacpp:tokens_predicted_seconds_total",
                                    "llamacpp_tokens_predicted_seconds_total", FP_METRIC_COUNTER},
    [FP_LLAMA_N_DECODE] = {"llamacpp:n_decode_total", "llamacpp_n_decode_total", FP_METRIC_COUNTER},
    [FP_LLAMA_REQUESTS_PROCESSING] = {"llamacpp:requests_processing",
                                      "llamacpp_requests_processing", FP_METRIC_GAUGE},
    [FP_LLAMA_REQUESTS_DEFERRED] = {"llamacpp:requests_deferred", "llamacpp_requests_deferred",
                                    FP_METRIC_GAUGE},
};

struct metrics_parse {
    struct fp_llama_metrics *m;
    size_t skipped;
};

static int on_llama_sample(void *userdata, const char *name, size_t name_len, const char *labels,
                           size_t labels_len, double value)
{
    struct metrics_parse *mp = userdata;

    /* "llamacpp:x{}" is the same series as "llamacpp:x"; any real label makes another series. */
    for (size_t i = 0; labels != NULL && i < labels_len; i++)
        if (!is_blank(labels[i]))
            return 0;
    for (size_t i = 0; i < FP_LLAMA_N_METRICS; i++) {
        const char *want = fp_llama_metric_info[i].source;

        if (strlen(want) != name_len || memcmp(want, name, name_len) != 0)
            continue;
        if (mp->m->have & (UINT32_C(1) << i))
            return 0;
        if (!isfinite(value)) {
            mp->skipped++;
            return 0;
        }
        mp->m->value[i] = value;
        mp->m->have |= UINT32_C(1) << i;
        return 0;
    }
    return 0;
}

size_t fp_llama_metrics_parse(const char *text, size_t len, struct fp_llama_metrics *ret)
{
    struct metrics_parse mp = {.m = ret};
    size_t bad;

    memset(ret, 0, sizeof(*ret));
    bad = fp_prom_parse(text, len, on_llama_sample, &mp);
    return bad + mp.skipped;
}

static bool both(const struct fp_llama_metrics *a, const struct fp_llama_metrics *b,
                 enum fp_llama_metric i)
{
    uint32_t bit = UINT32_C(1) << i;

    return (a->have & bit) && (b->have & bit);
}

void fp_llama_rates_compute(const struct fp_llama_metrics *prev, const struct fp_llama_metrics *cur,
                            struct fp_llama_rates *ret)
{
    static const enum fp_llama_metric totals[] = {
        FP_LLAMA_PROMPT_TOKENS,     FP_LLAMA_PROMPT_SECONDS, FP_LLAMA_TOKENS_PREDICTED,
        FP_LLAMA_PREDICTED_SECONDS, FP_LLAMA_N_DECODE,
    };
    double dt;

    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        if (both(prev, cur, totals[i]) && cur->value[totals[i]] < prev->value[totals[i]]) {
            /* A restart zeroes every counter; a delta across it would be garbage. */
            ret->reset = true;
            return;
        }
    }
    if (both(prev, cur, FP_LLAMA_PROMPT_TOKENS) && both(prev, cur, FP_LLAMA_PROMPT_SECONDS)) {
        dt = cur->value[FP_LLAMA_PROMPT_SECONDS] - prev->value[FP_LLAMA_PROMPT_SECONDS];
        if (dt > 0) {
            ret->prompt_tokens_per_second =
                (cur->value[FP_LLAMA_PROMPT_TOKENS] - prev->value[FP_LLAMA_PROMPT_TOKENS]) / dt;
            ret->have_prompt = true;
        }
    }
    if (both(prev, cur, FP_LLAMA_TOKENS_PREDICTED) && both(prev, cur, FP_LLAMA_PREDICTED_SECONDS)) {
        dt = cur->value[FP_LLAMA_PREDICTED_SECONDS] - prev->value[FP_LLAMA_PREDICTED_SECONDS];
        if (dt > 0) {
            ret->generation_tokens_per_second =
                (cur->value[FP_LLAMA_TOKENS_PREDICTED] - prev->value[FP_LLAMA_TOKENS_PREDICTED]) /
                dt;
            ret->have_generation = true;
        }
    }
}

/* --- JSON helpers ---------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are refused, as Jansson does. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

size_t fp_llama_copy_text(char *ret, size_t size, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;

    while (i < n && s[i] != '\0') {
        size_t len = utf8_len(s + i, n - i);

        if (o + (len > 0 ? len : 1) + 1 > size)
            break;
        if (len == 0) {
            ret[o++] = '?';
            len = 1;
        } else if (len == 1) {
            ret[o++] = s[i] < 0x20 || s[i] == 0x7f ? ' ' : (char)s[i];
        } else {
            memcpy(ret + o, s + i, len);
            o += len;
        }
        i += len;
    }
    ret[o] = '\0';
    return o;
}

static void copy_clean(char *ret, size_t size, const char *s, size_t n)
{
    (void)fp_llama_copy_text(ret, size, s, n);
}

static void copy_string(char *ret, size_t size, json_t *v)
{
    const char *s = json_string_value(v);

    if (s != NULL)
        copy_clean(ret, size, s, json_string_length(v));
}

/* --- /health, /slots, /props ----------------------------------------------------------------- */

const char *fp_llama_health_name(enum fp_llama_health h)
{
    switch (h) {
    case FP_LLAMA_HEALTH_OK:
        return "ok";
    case FP_LLAMA_HEALTH_LOADING:
        return "loading";
    case FP_LLAMA_HEALTH_DOWN:
        break;
    }
    return "down";
}

void fp_llama_error_message(const char *body, size_t len, char *ret, size_t size)
{
    json_t *root = json_loadb(body, len, 0, NULL), *err, *msg = NULL;

    ret[0] = '\0';
    err = json_object_get(root, "error"); /* borrowed; NULL-safe on a NULL root */
    if (json_is_object(err))
        msg = json_object_get(err, "message");
    else if (json_is_string(err))
        msg = err;
    else
        msg = json_object_get(root, "status"); /* older /health: {"status": "loading model"} */
    if (json_is_string(msg))
        copy_string(ret, size, msg);
    else
        copy_clean(ret, size, body != NULL ? body : "", body != NULL ? len : 0);
    json_decref(root);
}

enum fp_llama_health fp_llama_health_parse(int http_status, const char *body, size_t len,
                                           char *reason, size_t reason_size)
{
    char msg[96];

    if (http_status == 200) {
        (void)snprintf(reason, reason_size, "ok");
        return FP_LLAMA_HEALTH_OK;
    }
    fp_llama_error_message(body, len, msg, sizeof(msg));
    /* 503 is what llama.cpp answers on every path until the model is in memory; older builds said
     * {"status": "loading model"}, newer ones {"error": {"message": "Loading model"}}. A 503 that
     * says something else (an old "no slot available") is not a model loading. */
    if (http_status == 503 && strcasestr(msg, "loading") != NULL) {
        (void)snprintf(reason, reason_size, "%s", msg);
        return FP_LLAMA_HEALTH_LOADING;
    }
    if (msg[0] != '\0')
        (void)snprintf(reason, reason_size, "http %d: %s", http_status, msg);
    else
        (void)snprintf(reason, reason_size, "http %d", http_status);
    return FP_LLAMA_HEALTH_DOWN;
}

int fp_llama_slots_parse(const char *body, size_t len, unsigned *ret_total, unsigned *ret_busy)
{
    json_t *root = json_loadb(body, len, 0, NULL), *slot;
    unsigned total = 0, busy = 0;
    size_t i;

    if (!json_is_array(root)) {
        json_decref(root);
        return -EINVAL;
    }
    json_array_foreach(root, i, slot)
    {
        json_t *proc = json_object_get(slot, "is_processing"), *state;

        total++;
        if (json_is_boolean(proc)) {
            busy += json_is_true(proc);
            continue;
        }
        /* Builds before is_processing had "state": 0 idle, 1 processing. */
        state = json_object_get(slot, "state");
        if (json_is_integer(state) && json_integer_value(state) != 0)
            busy++;
    }
    json_decref(root);
    *ret_total = total;
    *ret_busy = busy;
    return 0;
}

void fp_llama_model_name(const char *path, char *ret, size_t size)
{
    const char *base = strrchr(path, '/');
    size_t n;

    base = base != NULL ? base + 1 : path;
    n = strlen(base);
    if (n > 5 && strcasecmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    /* Split models are named "<name>-00001-of-00003.gguf": the shard number is not the model. */
    if (n > 15) {
        const char *s = base + n - 15;
        bool shard = s[0] == '-' && memcmp(s + 6, "-of-", 4) == 0;

        for (size_t i = 1; shard && i < 15; i++)
            if (i < 6 || i >= 10)
                shard = s[i] >= '0' && s[i] <= '9';
        if (shard)
            n -= 15;
    }
    copy_clean(ret, size, base, n);
}

int fp_llama_props_parse(const char *body, size_t len, struct fp_llama_props *ret)
{
    json_t *root = json_loadb(body, len, 0, NULL), *v, *settings;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    copy_string(ret->build_info, sizeof(ret->build_info), json_object_get(root, "build_info"));
    copy_string(ret->ftype, sizeof(ret->ftype), json_object_get(root, "model_ftype"));
    v = json_object_get(root, "model_path");
    if (json_is_string(v) && json_string_length(v) > 0)
        fp_llama_model_name(json_string_value(v), ret->model, sizeof(ret->model));
    else
        copy_string(ret->model, sizeof(ret->model), json_object_get(root, "model_alias"));
    settings = json_object_get(root, "default_generation_settings");
    v = json_object_get(settings, "n_ctx");
    if (!json_is_integer(v))
        v = json_object_get(root, "n_ctx");
    if (json_is_integer(v) && json_integer_value(v) > 0)
        ret->n_ctx = (int64_t)json_integer_value(v);
    json_decref(root);
    return 0;
}

/* --- server-sent events ---------------------------------------------------------------------- */

int fp_sse_init(struct fp_sse *s, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    s->line = malloc(max_bytes);
    s->data = malloc(max_bytes + 1);
    if (s->line == NULL || s->data == NULL) {
        fp_sse_fini(s);
        return -ENOMEM;
    }
    s->max_bytes = max_bytes;
    return 0;
}

void fp_sse_fini(struct fp_sse *s)
{
    free(s->line);
    free(s->data);
    memset(s, 0, sizeof(*s));
}

void fp_sse_reset(struct fp_sse *s)
{
    s->line_len = 0;
    s->data_len = 0;
    s->have_data = false;
    s->skip_lf = false;
}

static int dispatch(struct fp_sse *s, fp_sse_event_fn fn, void *userdata)
{
    int r = 0;

    if (s->have_data) {
        s->data[s->data_len] = '\0';
        r = fn(userdata, s->data, s->data_len);
    }
    s->data_len = 0;
    s->have_data = false;
    return r;
}

/* A complete line: a blank one ends the event, "data:" appends, anything else is ignored (event,
 * id, retry, ":" comments carry nothing the probe needs). */
static int end_line(struct fp_sse *s, fp_sse_event_fn fn, void *userdata)
{
    const char *v = s->line;
    size_t n = s->line_len;

    s->line_len = 0;
    if (n == 0)
        return dispatch(s, fn, userdata);
    if (n < 5 || memcmp(v, "data", 4) != 0 || (n > 4 && v[4] != ':'))
        return 0;
    v += 5;
    n -= 5;
    if (n > 0 && *v == ' ') {
        v++;
        n--;
    }
    if (s->data_len + n + (s->have_data ? 1 : 0) > s->max_bytes)
        return -E2BIG;
    if (s->have_data)
        s->data[s->data_len++] = '\n';
    memcpy(s->data + s->data_len, v, n);
    s->data_len += n;
    s->have_data = true;
    return 0;
}

int fp_sse_feed(struct fp_sse *s, const char *buf, size_t len, fp_sse_event_fn fn, void *userdata)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        int r;

        if (s->skip_lf) {
            s->skip_lf = false;
            if (c == '\n')
                continue;
        }
        if (c == '\r' || c == '\n') {
            s->skip_lf = c == '\r';
            r = end_line(s, fn, userdata);
            if (r != 0)
                return r;
            continue;
        }
        if (s->line_len >= s->max_bytes)
            return -E2BIG;
        s->line[s->line_len++] = c;
    }
    return 0;
}

int fp_sse_finish(struct fp_sse *s, fp_sse_event_fn fn, void *userdata)
{
    int r = 0;

    if (s->line_len > 0)
        r = end_line(s, fn, userdata);
    if (r == 0)
        r = dispatch(s, fn, userdata);
    return r;
}

/* --- the canary ------------------------------------------------------------------------------ */

const char *fp_canary_endpoint_name(enum fp_canary_endpoint e)
{
    return e == FP_CANARY_CHAT ? "chat" : "completion";
}

const char *fp_canary_endpoint_path(enum fp_canary_endpoint e)
{
    return e == FP_CANARY_CHAT ? "/v1/chat/completions" : "/completion";
}

char *fp_canary_request_body(enum fp_canary_endpoint e, const char *prompt, int max_tokens,
                             const char *model)
{
    json_t *root;
    char *s;

    /* "s" refuses a prompt that is not UTF-8 (json_pack returns NULL). cache_prompt false: a
     * canary served from the prompt cache would measure the cache, not prefill. */
    if (e == FP_CANARY_CHAT)
        root = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:b, s:{s:b}}", "model",
                         model != NULL ? model : "default", "messages", "role", "user", "content",
                         prompt, "max_tokens", max_tokens, "stream", 1, "stream_options",
                         "include_usage", 1);
    else
        root = json_pack("{s:s, s:i, s:b, s:b}", "prompt", prompt, "n_predict", max_tokens,
                         "stream", 1, "cache_prompt", 0);
    if (root == NULL)
        return NULL;
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

void fp_canary_stream_init(struct fp_canary_stream *s, enum fp_canary_endpoint e)
{
    memset(s, 0, sizeof(*s));
    s->endpoint = e;
    s->tokens = -1;
}

static bool nonempty_string(json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

/* {"error": {...}} or {"error": "..."} in the middle of a stream (llama.cpp reports a failure
 * after the headers went out this way). */
static bool stream_error(struct fp_canary_stream *s, json_t *root)
{
    json_t *err = json_object_get(root, "error"), *msg;

    if (err == NULL || json_is_null(err))
        return false;
    s->failed = true;
    msg = json_is_object(err) ? json_object_get(err, "message") : err;
    if (json_is_string(msg))
        copy_string(s->message, sizeof(s->message), msg);
    else
        (void)snprintf(s->message, sizeof(s->message), "error in stream");
    return true;
}

int fp_canary_stream_event(struct fp_canary_stream *s, const char *data, size_t len)
{
    json_t *root, *v;
    int r = 0;

    if (s->endpoint == FP_CANARY_CHAT && len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = true;
        return 0;
    }
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    if (stream_error(s, root))
        goto out;
    if (s->endpoint == FP_CANARY_CHAT) {
        json_t *choices = json_object_get(root, "choices"), *choice;
        size_t i;

        json_array_foreach(choices, i, choice)
        {
            json_t *delta = json_object_get(choice, "delta");

            if (nonempty_string(json_object_get(delta, "content")) ||
                nonempty_string(json_object_get(delta, "reasoning_content")))
                r = FP_CANARY_EVENT_CONTENT;
        }
        v = json_object_get(json_object_get(root, "usage"), "completion_tokens");
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            s->tokens = (int64_t)json_integer_value(v);
    } else {
        if (nonempty_string(json_object_get(root, "content")))
            r = FP_CANARY_EVENT_CONTENT;
        if (json_is_true(json_object_get(root, "stop"))) {
            s->done = true;
            v = json_object_get(root, "tokens_predicted");
            if (json_is_integer(v) && json_integer_value(v) >= 0)
                s->tokens = (int64_t)json_integer_value(v);
        }
    }
    if (r == FP_CANARY_EVENT_CONTENT)
        s->content_events++;
out:
    json_decref(root);
    return r;
}
