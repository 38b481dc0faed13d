/* libfleetpulse-probe's public API (include/fleetpulse/probe.h): settings, the probe's thread,
 * and the request path.
 *
 * The probe is the daemon's agent (agent.c) on a thread of our own, with one addition: a round
 * hook that drains the request ring (ring.c) and turns records into series. Everything that
 * costs (label building, string compares, the batch builder, the socket) happens there, once a
 * round; fleetpulse_record only validates, reads a coarse clock (vDSO, no syscall), claims a
 * slot and copies about 170 bytes.
 *
 * What a round emits per record, at the record's own time (not the round's): time to first
 * token, time per output token and request duration; per model, cumulative since the probe
 * started, at the round's time: requests by outcome, tokens by type, fallbacks by reason; and
 * the ring's drop count. A record's timestamp is its completion time in ms; two records of one
 * model in the same ms would be the same point of a series (the store keeps one), so each model's
 * timestamps are made strictly increasing: a record at or before the previous one of its model
 * moves to 1 ms after it. At up to 1000 requests/s per model that moves nothing by more than the
 * clock's own resolution; past that the points drift ahead of real time by the excess.
 *
 * Bounds (DESIGN: everything that grows is bounded, refusals counted): at most MAX_MODELS model
 * names (later ones are folded into "(other)"), MAX_REASONS fallback reasons per model (the
 * last slot becomes "(other)"), MAX_EVENTS_PER_ROUND fallback events per round (the rest counted, not sent: a
 * batch holds at most 1000 events and a refused batch would lose the samples too).
 *
 * Threads: the host thread that owns the probe calls new/set/start/destroy; any thread records;
 * the probe's thread runs the agent and the hook. The agent is created by start on the caller's
 * thread (so a bad endpoint is an error there) and from then on belongs to the probe's thread
 * until destroy joins it. */
#include <fleetpulse/probe.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "log.h"
#include "parse.h"
#include "ring.h"
#include "sampler.h"

/* Everything else in the library is hidden (-fvisibility=hidden, and the version script). */
#define FP_EXPORT __attribute__((visibility("default")))

#define MAX_MODELS 32
#define MAX_REASONS 8
#define MAX_EVENTS_PER_ROUND 100
#define MAX_TAGS 16
#define MAX_INFO (3 + MAX_TAGS)
#define MAX_VALUE_BYTES 255
#define DEFAULT_RING_RECORDS 4096
#define N_OUTCOMES (FLEETPULSE_OUTCOME_FALLBACK + 1)
/* The label value for models and reasons past their bound; parenthesised so that it cannot be
 * a real model's name. */
#define OTHER "(other)"

/* The first version of struct fleetpulse_request ends with fallback_reason: a smaller size is a
 * host bug; a larger one is a newer header whose extra fields we do not know. Checklist for a
 * field appended to the struct: read it only when r->size reaches past it (a host built against
 * this header passes the smaller size), and add a REQUEST_V2_SIZE beside this one. */
#define REQUEST_V1_SIZE                                                                            \
    (offsetof(struct fleetpulse_request, fallback_reason) + sizeof(const char *))

static const char *const outcome_names[N_OUTCOMES] = {"ok", "error", "timeout", "cancelled",
                                                      "fallback"};

struct reason_count {
    char reason[FP_RING_TEXT_MAX + 1];
    uint64_t n;
};

/* Per model, since start; the agent thread's alone. */
struct model_stats {
    char name[FP_RING_TEXT_MAX + 1];
    int64_t last_ts_ms;               /* newest timestamp given to one of its records */
    uint64_t requests[N_OUTCOMES];    /* by outcome */
    uint64_t tokens_input, tokens_output;
    struct reason_count reasons[MAX_REASONS];
    size_t n_reasons;
};

struct info_pair {
    char name[72]; /* "site", "hw_class", "cohort" or "tag.NAME" */
    char *value;   /* owned */
};

struct fleetpulse_probe {
    /* settings (owned strings; NULL: default) */
    char *collector;
    char *device_id;
    char *procfs, *sysfs;
    int64_t interval_ms;
    size_t max_queue_bytes;
    bool samplers;
    struct info_pair info[MAX_INFO];
    size_t n_info;

    /* the request path: shared by every recording thread and the agent's */
    struct fp_ring *ring;
    atomic_uint_least64_t dropped; /* records refused because the ring was full */

    /* the agent thread's, once started */
    struct model_stats models[MAX_MODELS + 1]; /* the last one is OTHER */
    size_t n_models;
    uint64_t events_suppressed;

    struct fp_agent *agent;
    pthread_t thread;
    bool started;
};

/* --- logging ------------------------------------------------------------------------------------ */

static void discard(int level, const char *msg, void *userdata)
{
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

/* The shared logger writes to stderr unless told otherwise; inside someone else's process we
 * stay silent until the host sets a logger (B8). */
static void quiet(void)
{
    fp_log_set_sink(discard, NULL);
}

FP_EXPORT void fleetpulse_set_logger(void (*fn)(int level, const char *msg, void *userdata),
                                     void *userdata)
{
    (void)pthread_once(&quiet_once, quiet);
    fp_log_set_sink(fn != NULL ? fn : discard, fn != NULL ? userdata : NULL);
}

/* --- settings ----------------------------------------------------------------------------------- */

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int replace(char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

static int set_collector(struct fleetpulse_probe *p, const char *key, const char *value)
{
    /* ZeroMQ checks the endpoint itself at start; here only what is never an endpoint. */
    if (value[0] == '\0' || strlen(value) > 1024 || has_control(value) ||
        strstr(value, "://") == NULL)
        return -EINVAL;
    return replace(&p->collector, value);
}

static int set_device_id(struct fleetpulse_probe *p, const char *key, const char *value)
{
    /* The daemon's --device-id rule: the collector refuses quotes, and ids name files. */
    if (value[0] == '\0' || strlen(value) > 128 || strpbrk(value, "\"\\/") != NULL ||
        has_control(value))
        return -EINVAL;
    return replace(&p->device_id, value);
}

static int set_interval(struct fleetpulse_probe *p, const char *key, const char *value)
{
    int64_t ms;
    if (fp_parse_duration_ms(value, &ms) < 0 || ms < 100 || ms > 86400000)
        return -EINVAL;
    p->interval_ms = ms;
    return 0;
}

static int set_max_queue_bytes(struct fleetpulse_probe *p, const char *key, const char *value)
{
    uint64_t v;
    if (fp_parse_u64(value, &v) < 0 || v < 4096 || v > SIZE_MAX)
        return -EINVAL;
    p->max_queue_bytes = (size_t)v;
    return 0;
}

static int set_ring_records(struct fleetpulse_probe *p, const char *key, const char *value)
{
    struct fp_ring *ring = NULL;
    uint64_t v;
    int r;

    if (fp_parse_u64(value, &v) < 0 || v > FP_RING_MAX_RECORDS)
        return -EINVAL;
    r = fp_ring_new((size_t)v, &ring);
    if (r < 0)
        return r;
    fp_ring_destroy(&p->ring);
    p->ring = ring;
    return 0;
}

static int set_samplers(struct fleetpulse_probe *p, const char *key, const char *value)
{
    if (strcmp(value, "on") == 0)
        p->samplers = true;
    else if (strcmp(value, "off") == 0)
        p->samplers = false;
    else
        return -EINVAL;
    return 0;
}

static int set_root(struct fleetpulse_probe *p, const char *key, const char *value)
{
    struct stat st;
    if (value[0] == '\0' || stat(value, &st) < 0 || !S_ISDIR(st.st_mode))
        return -EINVAL;
    return replace(strcmp(key, "procfs") == 0 ? &p->procfs : &p->sysfs, value);
}

/* site, hw_class, cohort and tag.NAME: identity pairs; "" removes one. */
static int set_info(struct fleetpulse_probe *p, const char *key, const char *value)
{
    struct info_pair *slot = NULL;
    size_t tags = 0;

    if (strncmp(key, "tag.", 4) == 0) {
        const char *n = key + 4;
        if (n[0] == '\0' || strlen(key) >= sizeof(slot->name))
            return -EINVAL;
        for (; *n != '\0'; n++)
            if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
                  (*n >= '0' && *n <= '9') || *n == '_' || *n == '-'))
                return -EINVAL;
    }
    if (strlen(value) > MAX_VALUE_BYTES || has_control(value))
        return -EINVAL;
    for (size_t i = 0; i < p->n_info; i++) {
        if (strcmp(p->info[i].name, key) == 0)
            slot = &p->info[i];
        tags += strncmp(p->info[i].name, "tag.", 4) == 0;
    }
    if (value[0] == '\0') {
        if (slot != NULL) {
            free(slot->value);
            *slot = p->info[--p->n_info];
        }
        return 0;
    }
    if (slot == NULL) {
        if (strncmp(key, "tag.", 4) == 0 && tags >= MAX_TAGS)
            return -EINVAL;
        if (p->n_info >= MAX_INFO)
            return -EINVAL;
        slot = &p->info[p->n_info];
        *slot = (struct info_pair){0};
        (void)snprintf(slot->name, sizeof(slot->name), "%s", key);
        if (replace(&slot->value, value) < 0)
            return -ENOMEM;
        p->n_info++;
        return 0;
    }
    return replace(&slot->value, value);
}

/* The keys fleetpulse_probe_set takes; probe.h documents each. */
static const struct {
    const char *name;
    bool prefix; /* name is a prefix: "tag." */
    int (*set)(struct fleetpulse_probe *p, const char *key, const char *value);
} keys[] = {
    {"collector", false, set_collector},
    {"device_id", false, set_device_id},
    {"interval", false, set_interval},
    {"site", false, set_info},
    {"hw_class", false, set_info},
    {"cohort", false, set_info},
    {"tag.", true, set_info},
    {"max_queue_bytes", false, set_max_queue_bytes},
    {"ring_records", false, set_ring_records},
    {"samplers", false, set_samplers},
    {"procfs", false, set_root},
    {"sysfs", false, set_root},
};

FP_EXPORT int fleetpulse_probe_set(struct fleetpulse_probe *p, const char *key, const char *value)
{
    if (p == NULL || key == NULL || value == NULL)
        return -EINVAL;
    if (p->started)
        return -EBUSY;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].prefix ? strncmp(key, keys[i].name, strlen(keys[i].name)) == 0
                           : strcmp(key, keys[i].name) == 0)
            return keys[i].set(p, key, value);
    }
    return -EINVAL;
}

/* --- lifecycle ---------------------------------------------------------------------------------- */

FP_EXPORT int fleetpulse_probe_new(struct fleetpulse_probe **ret)
{
    struct fleetpulse_probe *p;
    int r;

    if (ret == NULL)
        return -EINVAL;
    (void)pthread_once(&quiet_once, quiet);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->interval_ms = 10000;
    p->max_queue_bytes = 64u << 20;
    p->samplers = true;
    atomic_init(&p->dropped, 0);
    r = fp_ring_new(DEFAULT_RING_RECORDS, &p->ring);
    if (r < 0) {
        free(p);
        return r;
    }
    *ret = p;
    return 0;
}

static int round_hook(void *userdata, struct fp_emitter *e)
{
    (void)fp_probe_drain(userdata, e);
    return 0;
}

static void *run(void *userdata)
{
    struct fleetpulse_probe *p = userdata;
    int r = fp_agent_run(p->agent);
    if (r < 0)
        fp_log_error("probe", "stopped: %s; requests are no longer sent", strerror(-r));
    return NULL;
}

FP_EXPORT int fleetpulse_probe_start(struct fleetpulse_probe *p)
{
    struct fp_agent_options opts;
    struct fp_label info[MAX_INFO];
    char device_id[256], err[512];
    sigset_t all, old;
    int r;

    if (p == NULL)
        return -EINVAL;
    if (p->started)
        return -EALREADY;
    if (p->device_id == NULL) {
        r = fp_agent_default_device_id(device_id, sizeof(device_id));
        if (r < 0) {
            fp_log_error("probe", "no machine id or host name; set \"device_id\"");
            return r;
        }
        r = replace(&p->device_id, device_id);
        if (r < 0)
            return r;
    }
    fp_agent_options_default(&opts);
    if (p->collector != NULL)
        opts.collector = p->collector;
    opts.device_id = p->device_id;
    if (p->procfs != NULL)
        opts.env.procfs = p->procfs;
    if (p->sysfs != NULL)
        opts.env.sysfs = p->sysfs;
    opts.interval_ms = p->interval_ms;
    if (opts.first_round_ms > opts.interval_ms)
        opts.first_round_ms = opts.interval_ms;
    opts.max_queue_bytes = p->max_queue_bytes;
    for (size_t i = 0; i < p->n_info; i++)
        info[i] = (struct fp_label){p->info[i].name, p->info[i].value};
    opts.info = info;
    opts.n_info = p->n_info;
    opts.round_hook = round_hook;
    opts.hook_userdata = p;
    opts.final_round = true;
    opts.no_samplers = !p->samplers;

    err[0] = '\0';
    r = fp_agent_new(&opts, &p->agent, err, sizeof(err));
    if (r < 0) {
        fp_log_error("probe", "cannot start: %s", err[0] != '\0' ? err : strerror(-r));
        return r;
    }
    /* The host's signals are the host's: our thread (and ZeroMQ's, which block theirs too) never
     * runs its handlers. The mask is inherited at creation, so set it around the call. */
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&p->thread, NULL, run, p);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        fp_log_error("probe", "cannot start its thread: %s", strerror(-r));
        fp_agent_destroy(&p->agent);
        return r;
    }
    p->started = true;
    return 0;
}

FP_EXPORT void fleetpulse_probe_destroy(struct fleetpulse_probe **pp)
{
    struct fleetpulse_probe *p;

    if (pp == NULL || *pp == NULL)
        return;
    p = *pp;
    if (p->started) {
        fp_agent_stop(p->agent);
        (void)pthread_join(p->thread, NULL);
    }
    fp_agent_destroy(&p->agent);
    fp_ring_destroy(&p->ring);
    free(p->collector);
    free(p->device_id);
    free(p->procfs);
    free(p->sysfs);
    for (size_t i = 0; i < p->n_info; i++)
        free(p->info[i].value);
    free(p);
    *pp = NULL;
}

/* --- the request path --------------------------------------------------------------------------- */

/* Copies at most FP_RING_TEXT_MAX bytes of src and a NUL. */
static void copy_text(char *dst, const char *src)
{
    size_t n = 0;
    if (src != NULL) {
        n = strnlen(src, FP_RING_TEXT_MAX);
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

FP_EXPORT int fleetpulse_record(struct fleetpulse_probe *p, const struct fleetpulse_request *r)
{
    struct fp_ring_record *rec;
    struct timespec now;
    size_t pos;

    if (p == NULL || r == NULL || r->size < REQUEST_V1_SIZE)
        return -EINVAL;
    if ((unsigned)r->outcome >= N_OUTCOMES || !isfinite(r->total_s) || !isfinite(r->ttft_s) ||
        r->total_s < 0 || r->ttft_s < 0 || (r->generated_tokens > 0 && r->ttft_s > r->total_s))
        return -EINVAL;
    /* COARSE: the vDSO returns the last tick's time without reading the TSC, a few ns; its
     * resolution (1-4 ms) is what a ms timestamp needs. */
    (void)clock_gettime(CLOCK_REALTIME_COARSE, &now);
    rec = fp_ring_claim(p->ring, &pos);
    if (rec == NULL) {
        atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
        return -ENOBUFS;
    }
    rec->ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    rec->ttft_s = r->ttft_s;
    rec->total_s = r->total_s;
    rec->prompt_tokens = r->prompt_tokens;
    rec->generated_tokens = r->generated_tokens;
    rec->outcome = (int)r->outcome;
    copy_text(rec->model, r->model);
    copy_text(rec->reason, r->outcome == FLEETPULSE_OUTCOME_FALLBACK ? r->fallback_reason : NULL);
    fp_ring_publish(p->ring, pos);
    return 0;
}

/* --- the agent's side --------------------------------------------------------------------------- */

struct fp_ring *fp_probe_ring(struct fleetpulse_probe *p)
{
    return p->ring;
}

/* Label values may not hold control bytes (the collector refuses the whole batch); a name cut
 * in the middle of a UTF-8 sequence is left as it is, the store keeps bytes. */
static void sanitize(char *s, const char *empty)
{
    if (s[0] == '\0') {
        (void)snprintf(s, FP_RING_TEXT_MAX + 1, "%s", empty);
        return;
    }
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static struct model_stats *find_model(struct fleetpulse_probe *p, const char *name)
{
    struct model_stats *m;
    for (size_t i = 0; i < p->n_models; i++)
        if (strcmp(p->models[i].name, name) == 0)
            return &p->models[i];
    if (p->n_models < MAX_MODELS)
        m = &p->models[p->n_models++];
    else
        m = &p->models[MAX_MODELS]; /* past the bound: one OTHER for the rest */
    if (m->name[0] == '\0')
        (void)snprintf(m->name, sizeof(m->name), "%s",
                       m == &p->models[MAX_MODELS] ? OTHER : name);
    return m;
}

static struct reason_count *find_reason(struct model_stats *m, const char *reason)
{
    for (size_t i = 0; i < m->n_reasons; i++)
        if (strcmp(m->reasons[i].reason, reason) == 0)
            return &m->reasons[i];
    if (m->n_reasons == MAX_REASONS) {
        /* The last entry becomes OTHER and takes every later reason (its own count too). */
        struct reason_count *last = &m->reasons[MAX_REASONS - 1];
        if (strcmp(last->reason, OTHER) != 0)
            (void)snprintf(last->reason, sizeof(last->reason), "%s", OTHER);
        return last;
    }
    (void)snprintf(m->reasons[m->n_reasons].reason, sizeof(m->reasons[0].reason), "%s", reason);
    return &m->reasons[m->n_reasons++];
}

/* One record: its samples at its own (de-duplicated) time, and the model's counters. */
static void account(struct fleetpulse_probe *p, struct fp_ring_record *rec, struct fp_emitter *e,
                    unsigned *events)
{
    struct model_stats *m;
    struct fp_label labels[2];
    int64_t ts;

    sanitize(rec->model, "unknown");
    m = find_model(p, rec->model);
    ts = rec->ts_ms > m->last_ts_ms ? rec->ts_ms : m->last_ts_ms + 1;
    m->last_ts_ms = ts;

    labels[0] = (struct fp_label){"model", m->name};
    labels[1] = (struct fp_label){"outcome", outcome_names[rec->outcome]};
    /* A failed emit is the builder out of memory: the round goes on without that sample. */
    if (rec->generated_tokens > 0)
        (void)e->sample(e->userdata, "gen_ai_server_time_to_first_token_seconds",
                        FP_METRIC_GAUGE, labels, 1, ts, rec->ttft_s);
    if (rec->generated_tokens > 1)
        (void)e->sample(e->userdata, "gen_ai_server_time_per_output_token_seconds",
                        FP_METRIC_GAUGE, labels, 1, ts,
                        (rec->total_s - rec->ttft_s) / (double)(rec->generated_tokens - 1));
    (void)e->sample(e->userdata, "gen_ai_server_request_duration_seconds", FP_METRIC_GAUGE,
                    labels, 2, ts, rec->total_s);

    m->requests[rec->outcome]++;
    m->tokens_input += rec->prompt_tokens;
    m->tokens_output += rec->generated_tokens;
    if (rec->outcome == FLEETPULSE_OUTCOME_FALLBACK) {
        struct reason_count *rc;
        char msg[2 * FP_RING_TEXT_MAX + 64];

        sanitize(rec->reason, "unknown");
        rc = find_reason(m, rec->reason);
        rc->n++;
        if (*events >= MAX_EVENTS_PER_ROUND) {
            p->events_suppressed++;
            return;
        }
        (*events)++;
        (void)snprintf(msg, sizeof(msg), "request for \"%.63s\" handed to a fallback: %.63s",
                       m->name, rc->reason);
        (void)e->event(e->userdata, ts, FP_SEVERITY_INFO, "fallback", msg,
                       (const struct fp_label[]){{"model", m->name}, {"reason", rc->reason}},
                       2);
    }
}

static void emit_model_counters(struct fp_emitter *e, const struct model_stats *m)
{
    /* Every outcome, zeros included: a counter that appears only at its first increment hides
     * that increment from rate(). */
    for (int o = 0; o < N_OUTCOMES; o++)
        (void)fp_emit_counter(e, "gen_ai_server_requests_total",
                              (const struct fp_label[]){{"model", m->name},
                                                        {"outcome", outcome_names[o]}},
                              2, (double)m->requests[o]);
    (void)fp_emit_counter(e, "gen_ai_token_usage_tokens_total",
                          (const struct fp_label[]){{"model", m->name}, {"type", "input"}}, 2,
                          (double)m->tokens_input);
    (void)fp_emit_counter(e, "gen_ai_token_usage_tokens_total",
                          (const struct fp_label[]){{"model", m->name}, {"type", "output"}}, 2,
                          (double)m->tokens_output);
    for (size_t k = 0; k < m->n_reasons; k++)
        (void)fp_emit_counter(e, "gen_ai_fallbacks_total",
                              (const struct fp_label[]){{"model", m->name},
                                                        {"reason", m->reasons[k].reason}},
                              2, (double)m->reasons[k].n);
}

static void emit_counters(struct fleetpulse_probe *p, struct fp_emitter *e)
{
    for (size_t i = 0; i < p->n_models; i++)
        emit_model_counters(e, &p->models[i]);
    if (p->models[MAX_MODELS].name[0] != '\0')
        emit_model_counters(e, &p->models[MAX_MODELS]);
    (void)fp_emit_counter(e, "fleetpulse_probe_api_dropped_records_total", NULL, 0,
                          (double)atomic_load_explicit(&p->dropped, memory_order_relaxed));
    (void)fp_emit_counter(e, "fleetpulse_probe_api_suppressed_events_total", NULL, 0,
                          (double)p->events_suppressed);
}

size_t fp_probe_drain(struct fleetpulse_probe *p, struct fp_emitter *e)
{
    struct fp_ring_record rec;
    size_t n = 0, max = fp_ring_capacity(p->ring);
    unsigned events = 0;

    /* At most one ring's worth, so producers that keep up with us cannot keep the round (and
     * the batch) growing without end. */
    while (n < max && fp_ring_pop(p->ring, &rec)) {
        account(p, &rec, e, &events);
        n++;
    }
    emit_counters(p, e);
    return n;
}
