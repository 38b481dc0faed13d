/* The "llama_server" source: scrapes a llama.cpp server's /health, /metrics, /slots and /props
 * over HTTP and reports its readiness, its token counters and the rates derived from them, slot
 * use, and the identity of the model it serves.
 *
 * How. A runner thread (http.c) scrapes every FP_LLAMA_SERVER_PERIOD_MS: /health first; only when
 * it answers 200 do /metrics, /slots and /props follow, one after the other (a loading or dead
 * server has nothing else to say, and one request at a time keeps the load on the runtime
 * predictable). Each answer replaces its part of the result area under the runner lock; a part
 * whose last request failed is marked absent rather than left stale. sample() copies the area
 * and emits it at the round's time, so it never waits on the network. The agent's round interval
 * is not in the sampler env, so the scrape runs on its own short period and sample() emits the
 * newest state: at most one period old.
 *
 * Rates. llama.cpp's *_tokens_seconds gauges average over "since the previous scrape", so any
 * second scraper (a Prometheus) steals our window. We compute Δtokens_total / Δseconds_total
 * between the snapshot emitted in the previous round and the newest one; no new snapshot or no
 * busy time in between gives no rate (not 0). A counter that went down, or a changed
 * Process-Start-Time-Unix header, is a server restart: that delta is skipped.
 *
 * /metrics is off unless the server runs with --metrics (404, or 501 in some builds) and needs
 * the API key when one is set (401). That is noted once with an event and retried every
 * METRICS_RETRY_MS, or at once when /health comes back after a restart. /props changes only on a
 * restart (or a model swap in router mode): fetched at the first ready answer, after each return
 * to ready, and every PROPS_REFRESH_MS. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http.h"
#include "llama-parse.h"
#include "sources-internal.h"

/* A /metrics or /props body of a healthy server is a few KiB; anything near this is not one. */
#define MAX_BODY_BYTES (1024 * 1024)
#define METRICS_RETRY_MS (5 * 60 * 1000)
#define PROPS_REFRESH_MS (60 * 1000)
#define DEFAULT_TIMEOUT_MS 5000
#define START_HEADER "Process-Start-Time-Unix"

enum step { STEP_IDLE, STEP_HEALTH, STEP_METRICS, STEP_SLOTS, STEP_PROPS };

static const char *const step_path[] = {
    [STEP_IDLE] = "",        [STEP_HEALTH] = "/health", [STEP_METRICS] = "/metrics",
    [STEP_SLOTS] = "/slots", [STEP_PROPS] = "/props",
};

/* What the runner thread learned; guarded by the runner lock. */
struct shared {
    bool have_health;
    enum fp_llama_health health;
    bool have_metrics;
    struct fp_llama_metrics metrics;
    uint64_t metrics_seq; /**< +1 per successful /metrics: tells sample() it is new */
    char start[64];       /**< Process-Start-Time-Unix of that /metrics answer, "" if none */
    bool have_slots;
    unsigned slots_total, slots_busy;
    bool have_props;
    struct fp_llama_props props;
    unsigned bad; /**< values unparsable since the last round */
    struct fp_pending_events events;
};

struct llama_ctx {
    struct fp_http_runner *runner;
    int64_t timeout_ms; /**< per request */

    /* runner thread only */
    enum step step; /**< request in flight, STEP_IDLE between scrapes */
    bool health_known;
    enum fp_llama_health last_health;
    bool metrics_noted;       /**< the "unavailable" event went out */
    int64_t metrics_retry_ms; /**< monotonic; skip /metrics until then (0: try) */
    int64_t props_next_ms;    /**< monotonic; fetch /props from then on (0: now) */

    struct shared sh; /**< runner lock */

    /* agent thread only */
    struct shared snap; /**< sample()'s copy of sh */
    bool have_prev;
    struct fp_llama_metrics prev; /**< the snapshot the last rate was computed to */
    uint64_t prev_seq;
    char prev_start[64];
};

/* --- the scrape (runner thread) --------------------------------------------------------------- */

static void on_done(void *userdata, const struct fp_http_response *res);

static void start_step(struct llama_ctx *c, enum step step)
{
    const struct fp_http_call call = {
        .method = "GET",
        .path = step_path[step],
        .timeout_ms = c->timeout_ms,
        .max_body_bytes = MAX_BODY_BYTES,
        .capture_header = step == STEP_METRICS ? START_HEADER : NULL,
        .on_done = on_done,
        .userdata = c,
    };

    c->step = step;
    if (step == STEP_IDLE)
        return;
    /* Fails only for lack of memory: give up this scrape, the next tick tries again. */
    if (fp_http_runner_call(c->runner, &call) < 0)
        c->step = STEP_IDLE;
}

/* The step after `done` in a scrape of a ready server. */
static enum step next_step(struct llama_ctx *c, enum step done)
{
    int64_t now = fp_clock_mono_ms();

    switch (done) {
    case STEP_HEALTH:
        if (c->metrics_retry_ms == 0 || now >= c->metrics_retry_ms)
            return STEP_METRICS;
        return STEP_SLOTS;
    case STEP_METRICS:
        return STEP_SLOTS;
    case STEP_SLOTS:
        return now >= c->props_next_ms ? STEP_PROPS : STEP_IDLE;
    case STEP_PROPS:
    case STEP_IDLE:
        break;
    }
    return STEP_IDLE;
}

static void health_done(struct llama_ctx *c, const struct fp_http_response *res)
{
    static const char *const messages[] = {
        [FP_LLAMA_HEALTH_DOWN] = "llama.cpp server is down",
        [FP_LLAMA_HEALTH_LOADING] = "llama.cpp server is loading the model",
        [FP_LLAMA_HEALTH_OK] = "llama.cpp server is ready",
    };
    enum fp_llama_health h;
    char reason[128];

    if (res->result != FP_HTTP_DONE) {
        h = FP_LLAMA_HEALTH_DOWN;
        (void)snprintf(reason, sizeof(reason), "%s", fp_http_result_name(res->result));
    } else {
        h = fp_llama_health_parse(res->status, res->body, res->body_len, reason, sizeof(reason));
    }

    fp_http_runner_lock(c->runner);
    c->sh.have_health = true;
    c->sh.health = h;
    if (!c->health_known || h != c->last_health) {
        const struct fp_label attrs[] = {{"state", fp_llama_health_name(h)}, {"reason", reason}};

        fp_pending_push(&c->sh.events,
                        h == FP_LLAMA_HEALTH_DOWN ? FP_SEVERITY_WARNING : FP_SEVERITY_INFO,
                        "runtime_health", messages[h], attrs, 2);
    }
    if (h != FP_LLAMA_HEALTH_OK) {
        /* Not ready: what the other endpoints said last is no longer true. */
        c->sh.have_metrics = false;
        c->sh.have_slots = false;
        c->sh.have_props = false;
    }
    fp_http_runner_unlock(c->runner);

    if (h == FP_LLAMA_HEALTH_OK && (!c->health_known || c->last_health != FP_LLAMA_HEALTH_OK)) {
        /* Back (or first) ready: maybe a restart with other flags or another model. */
        c->metrics_retry_ms = 0;
        c->props_next_ms = 0;
    }
    c->health_known = true;
    c->last_health = h;
    start_step(c, h == FP_LLAMA_HEALTH_OK ? next_step(c, STEP_HEALTH) : STEP_IDLE);
}

static void metrics_unavailable(struct llama_ctx *c, int status)
{
    char st[16], msg[160];
    const struct fp_label attrs[] = {{"http_status", st}};

    c->metrics_retry_ms = fp_clock_mono_ms() + METRICS_RETRY_MS;
    c->sh.have_metrics = false;
    if (c->metrics_noted)
        return;
    c->metrics_noted = true;
    (void)snprintf(st, sizeof(st), "%d", status);
    (void)snprintf(
        msg, sizeof(msg), "llama.cpp /metrics answered %d (%s); retrying every %d min", status,
        status == 401 || status == 403 ? "check the API key" : "server started without --metrics?",
        METRICS_RETRY_MS / 60000);
    fp_pending_push(&c->sh.events, FP_SEVERITY_INFO, "runtime_metrics_unavailable", msg, attrs, 1);
}

static void metrics_done(struct llama_ctx *c, const struct fp_http_response *res)
{
    struct fp_llama_metrics m;
    size_t bad;

    fp_http_runner_lock(c->runner);
    if (res->result != FP_HTTP_DONE) {
        c->sh.have_metrics = false;
    } else if (res->status == 401 || res->status == 403 || res->status == 404 ||
               res->status == 501) {
        metrics_unavailable(c, res->status);
    } else if (res->status != 200) {
        c->sh.have_metrics = false;
    } else {
        bad = fp_llama_metrics_parse(res->body, res->body_len, &m);
        c->sh.bad += (unsigned)(bad < 1000 ? bad : 1000);
        if (m.have == 0) {
            /* 200 without a single llamacpp: series is not llama.cpp's /metrics. */
            c->sh.have_metrics = false;
            c->sh.bad++;
        } else {
            c->sh.have_metrics = true;
            c->sh.metrics = m;
            c->sh.metrics_seq++;
            (void)snprintf(c->sh.start, sizeof(c->sh.start), "%s",
                           res->header != NULL ? res->header : "");
            c->metrics_noted = false;
        }
    }
    fp_http_runner_unlock(c->runner);
    start_step(c, next_step(c, STEP_METRICS));
}

static void slots_done(struct llama_ctx *c, const struct fp_http_response *res)
{
    unsigned total, busy;

    fp_http_runner_lock(c->runner);
    c->sh.have_slots = false;
    /* 501: started with --no-slots; nothing to count, nothing to complain about. */
    if (res->result == FP_HTTP_DONE && res->status == 200) {
        if (fp_llama_slots_parse(res->body, res->body_len, &total, &busy) == 0) {
            c->sh.have_slots = true;
            c->sh.slots_total = total;
            c->sh.slots_busy = busy;
        } else {
            c->sh.bad++;
        }
    }
    fp_http_runner_unlock(c->runner);
    start_step(c, next_step(c, STEP_SLOTS));
}

static void props_done(struct llama_ctx *c, const struct fp_http_response *res)
{
    struct fp_llama_props p;

    fp_http_runner_lock(c->runner);
    if (res->result == FP_HTTP_DONE && res->status == 200) {
        if (fp_llama_props_parse(res->body, res->body_len, &p) == 0) {
            c->sh.have_props = true;
            c->sh.props = p;
            c->props_next_ms = fp_clock_mono_ms() + PROPS_REFRESH_MS;
        } else {
            c->sh.bad++;
        }
    }
    /* A failed fetch keeps the last identity (it rarely changes) and tries again next scrape. */
    fp_http_runner_unlock(c->runner);
    start_step(c, STEP_IDLE);
}

static void on_done(void *userdata, const struct fp_http_response *res)
{
    struct llama_ctx *c = userdata;

    switch (c->step) {
    case STEP_HEALTH:
        health_done(c, res);
        break;
    case STEP_METRICS:
        metrics_done(c, res);
        break;
    case STEP_SLOTS:
        slots_done(c, res);
        break;
    case STEP_PROPS:
        props_done(c, res);
        break;
    case STEP_IDLE:
        break;
    }
}

static void tick(void *userdata)
{
    struct llama_ctx *c = userdata;

    /* The previous scrape is still waiting on a slow server: let it finish rather than pile up. */
    if (c->step == STEP_IDLE)
        start_step(c, STEP_HEALTH);
}

/* --- the sampler (agent thread) --------------------------------------------------------------- */

static void llama_close(void **ctx)
{
    struct llama_ctx *c;

    if (ctx == NULL || *ctx == NULL)
        return;
    c = *ctx;
    /* First: after it, no runner callback touches c. */
    fp_http_runner_destroy(&c->runner);
    free(c);
    *ctx = NULL;
}

int fp_llama_server_open_period(const struct fp_sampler_env *env, int64_t period_ms, void **ret_ctx)
{
    struct llama_ctx *c;
    int r;

    if (env->llama_server_url == NULL)
        return FP_SAMPLER_DISABLED;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->timeout_ms = env->scrape_timeout_ms > 0 ? env->scrape_timeout_ms : DEFAULT_TIMEOUT_MS;
    r = fp_http_runner_new(env->llama_server_url, env->api_key, 0, period_ms, tick, c, &c->runner);
    if (r < 0)
        goto fail;
    r = fp_http_runner_start(c->runner);
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    llama_close((void **)&c);
    return r;
}

static int llama_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    return fp_llama_server_open_period(env, FP_LLAMA_SERVER_PERIOD_MS, ret_ctx);
}

static int emit_rates(struct llama_ctx *c, const struct shared *s, struct fp_emitter *out)
{
    struct fp_llama_rates rates;
    int r = 0;

    if (s->metrics_seq == c->prev_seq && c->have_prev)
        return 0; /* nothing new since the last round */
    if (c->have_prev && !(s->start[0] != '\0' && c->prev_start[0] != '\0' &&
                          strcmp(s->start, c->prev_start) != 0)) {
        fp_llama_rates_compute(&c->prev, &s->metrics, &rates);
        if (rates.have_prompt)
            r = fp_emit_gauge(out, "llamacpp_prompt_tokens_per_second", NULL, 0,
                              rates.prompt_tokens_per_second);
        if (r >= 0 && rates.have_generation)
            r = fp_emit_gauge(out, "llamacpp_generation_tokens_per_second", NULL, 0,
                              rates.generation_tokens_per_second);
    }
    c->prev = s->metrics;
    c->prev_seq = s->metrics_seq;
    memcpy(c->prev_start, s->start, sizeof(c->prev_start));
    c->have_prev = true;
    return r;
}

static int emit_identity(const struct fp_llama_props *p, struct fp_emitter *out)
{
    int r = fp_emit_info(out, "runtime", "llama.cpp");

    if (r >= 0 && p->build_info[0] != '\0')
        r = fp_emit_info(out, "runtime_version", p->build_info);
    if (r >= 0 && p->model[0] != '\0')
        r = fp_emit_info(out, "model", p->model);
    if (r >= 0 && p->ftype[0] != '\0')
        r = fp_emit_info(out, "quant", p->ftype);
    if (r >= 0 && p->n_ctx > 0)
        r = fp_emit_gauge(out, "llamacpp_context_size", NULL, 0, (double)p->n_ctx);
    return r;
}

static int llama_sample(void *ctx, struct fp_emitter *out)
{
    struct llama_ctx *c = ctx;
    struct shared *s = &c->snap;
    int r = 0, dropped;
    unsigned bad;

    fp_http_runner_lock(c->runner);
    *s = c->sh;
    c->sh.bad = 0;
    c->sh.events.head = c->sh.events.n = 0;
    c->sh.events.dropped = 0;
    fp_http_runner_unlock(c->runner);
    bad = s->bad;

    if (s->have_health) {
        r = fp_emit_gauge(out, "llamacpp_up", NULL, 0, s->health == FP_LLAMA_HEALTH_OK);
        if (r >= 0)
            r = fp_emit_gauge(out, "llamacpp_loading", NULL, 0,
                              s->health == FP_LLAMA_HEALTH_LOADING);
    }
    if (r >= 0 && s->have_metrics) {
        for (size_t i = 0; r >= 0 && i < FP_LLAMA_N_METRICS; i++) {
            const struct fp_llama_metric_info *mi = &fp_llama_metric_info[i];

            if (!(s->metrics.have & (UINT32_C(1) << i)))
                continue;
            if (mi->type == FP_METRIC_COUNTER)
                r = fp_emit_counter(out, mi->name, NULL, 0, s->metrics.value[i]);
            else
                r = fp_emit_gauge(out, mi->name, NULL, 0, s->metrics.value[i]);
        }
        if (r >= 0)
            r = emit_rates(c, s, out);
    }
    if (r >= 0 && s->have_slots) {
        r = fp_emit_gauge(out, "llamacpp_slots_total", NULL, 0, s->slots_total);
        if (r >= 0)
            r = fp_emit_gauge(out, "llamacpp_slots_busy", NULL, 0, s->slots_busy);
    }
    if (r >= 0 && s->have_props)
        r = emit_identity(&s->props, out);
    if (r < 0)
        return r;
    dropped = fp_pending_emit(&s->events, out);
    if (dropped < 0)
        return dropped;
    return (int)bad + dropped;
}

const struct fp_sampler_ops fp_sampler_llama_server = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "llama_server",
    .open = llama_open,
    .sample = llama_sample,
    .close = llama_close,
};
