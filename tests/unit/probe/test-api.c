/* libfleetpulse-probe's public API (probe/include/fleetpulse/probe.h), as a host uses it.
 *
 *  - Bad input never crashes and never records: NULL probe or request, a size too small, NaN or
 *    infinite or negative times, an unknown outcome, bad keys and values for fleetpulse_probe_set.
 *  - A full ring drops exactly the records past its capacity and counts each one.
 *  - 8 threads record 50,000 requests each while a consumer drains the ring as the probe's
 *    thread does (fp_probe_drain): records accepted + dropped == attempted, the drop counter
 *    equals the -ENOBUFS answers, and the emitted counters (requests by model and outcome,
 *    tokens by type) are exact sums of what the threads recorded. Per-request samples of one
 *    model carry strictly increasing timestamps.
 *  - End to end: a started probe sends to a real collector on a loopback port; after
 *    fleetpulse_probe_destroy the store holds the exact counters per model/outcome, the token
 *    counters, the fallback counter and one "fallback" event per fallback with its attributes,
 *    the per-request samples at distinct times, and the device's identity (site).
 *
 * Built twice: against the internal static library (everything above) and, with
 * FP_TEST_PUBLIC_ONLY, against the shared library through the public header alone (bad input and
 * end to end), which proves the exported symbols are all a host needs. */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fleetpulse/probe.h>

#include "collector.h"
#include "config.h"
#include "store.h"
#ifndef FP_TEST_PUBLIC_ONLY
#include "ring.h"
#include "sampler.h"
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct fleetpulse_request request(const char *model, uint64_t prompt, uint64_t generated,
                                         double ttft, double total,
                                         enum fleetpulse_outcome outcome, const char *reason)
{
    return (struct fleetpulse_request){
        .size = sizeof(struct fleetpulse_request),
        .model = model,
        .prompt_tokens = prompt,
        .generated_tokens = generated,
        .ttft_s = ttft,
        .total_s = total,
        .outcome = outcome,
        .fallback_reason = reason,
    };
}

/* --- bad input ---------------------------------------------------------------------------------- */

static void test_bad_input(void)
{
    struct fleetpulse_probe *p = NULL;
    struct fleetpulse_request r = request("m", 1, 2, 0.1, 0.2, FLEETPULSE_OUTCOME_OK, NULL);
    /* A newer host's request: more fields after ours, which this library ignores. */
    struct {
        struct fleetpulse_request v1;
        double future_field;
    } bigger = {.v1 = r, .future_field = 1.0};

    check_int(fleetpulse_probe_new(NULL), -EINVAL);
    fp_assert(fleetpulse_probe_new(&p) == 0 && p != NULL);

    check_int(fleetpulse_record(NULL, &r), -EINVAL);
    check_int(fleetpulse_record(p, NULL), -EINVAL);
    r.size = 0;
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.size = offsetof(struct fleetpulse_request, fallback_reason);
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.size = sizeof(r);
    r.ttft_s = NAN;
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.ttft_s = 0.1;
    r.total_s = NAN;
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.total_s = INFINITY;
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.total_s = -1.0;
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.total_s = 0.05; /* first token after the end */
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r.generated_tokens = 0; /* ... is fine when there was no token: ttft is ignored */
    check_int(fleetpulse_record(p, &r), 0);
    r.ttft_s = -INFINITY; /* but a time is still a time */
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r = request("m", 1, 2, 0.1, 0.2, (enum fleetpulse_outcome)5, NULL);
    check_int(fleetpulse_record(p, &r), -EINVAL);
    r = request("m", 1, 2, 0.1, 0.2, (enum fleetpulse_outcome)-1, NULL);
    check_int(fleetpulse_record(p, &r), -EINVAL);
    bigger.v1.size = sizeof(bigger);
    check_int(fleetpulse_record(p, &bigger.v1), 0);
    r = request(NULL, 0, 0, 0, 0, FLEETPULSE_OUTCOME_FALLBACK, NULL); /* "unknown" both */
    check_int(fleetpulse_record(p, &r), 0);

    check_int(fleetpulse_probe_set(NULL, "interval", "1"), -EINVAL);
    check_int(fleetpulse_probe_set(p, NULL, "1"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", NULL), -EINVAL);
    check_int(fleetpulse_probe_set(p, "no_such_key", "1"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "Interval", "1"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", "0"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", "50ms"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", "2d"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", "soon"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "interval", "2.5"), 0);
    check_int(fleetpulse_probe_set(p, "collector", ""), -EINVAL);
    check_int(fleetpulse_probe_set(p, "collector", "127.0.0.1:9470"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "collector", "tcp://127.0.0.1:1"), 0);
    check_int(fleetpulse_probe_set(p, "device_id", ""), -EINVAL);
    check_int(fleetpulse_probe_set(p, "device_id", "a/b"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "device_id", "a\"b"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "device_id", "tab\there"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "device_id", "edge-1"), 0);
    check_int(fleetpulse_probe_set(p, "max_queue_bytes", "4095"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "max_queue_bytes", "-1"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "max_queue_bytes", "1048576"), 0);
    check_int(fleetpulse_probe_set(p, "ring_records", "100"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "ring_records", "32"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "ring_records", "65536"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "ring_records", "128"), 0);
    check_int(fleetpulse_probe_set(p, "samplers", "maybe"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "samplers", "off"), 0);
    check_int(fleetpulse_probe_set(p, "procfs", "/nonexistent-fleetpulse"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "sysfs", "/etc/hostname"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "procfs", FP_FIXTURES_DIR "/procfs"), 0);
    check_int(fleetpulse_probe_set(p, "site", "line\nbreak"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "site", "lab-1"), 0);
    check_int(fleetpulse_probe_set(p, "site", ""), 0); /* removes it */
    check_int(fleetpulse_probe_set(p, "tag.", "x"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "tag.bad name", "x"), -EINVAL);
    for (int i = 0; i < 16; i++) {
        char key[32];
        (void)snprintf(key, sizeof(key), "tag.t%d", i);
        check_int(fleetpulse_probe_set(p, key, "v"), 0);
    }
    check_int(fleetpulse_probe_set(p, "tag.one_too_many", "v"), -EINVAL);
    check_int(fleetpulse_probe_set(p, "tag.t3", "replaced"), 0);

    /* Started: settings are frozen; starting twice is refused. */
    fp_assert(fleetpulse_probe_start(p) == 0);
    check_int(fleetpulse_probe_set(p, "interval", "1"), -EBUSY);
    check_int(fleetpulse_probe_start(p), -EALREADY);
    check_int(fleetpulse_probe_start(NULL), -EINVAL);
    r = request("m", 1, 2, 0.1, 0.2, FLEETPULSE_OUTCOME_OK, NULL);
    check_int(fleetpulse_record(p, &r), 0);
    fleetpulse_probe_destroy(&p);
    check(p == NULL);
    fleetpulse_probe_destroy(&p);
    fleetpulse_probe_destroy(NULL);

    /* A collector address ZeroMQ refuses fails start, not later; the probe stays usable. */
    fp_assert(fleetpulse_probe_new(&p) == 0);
    check_int(fleetpulse_probe_set(p, "collector", "nosuch://x"), 0);
    check_int(fleetpulse_probe_set(p, "samplers", "off"), 0);
    check(fleetpulse_probe_start(p) < 0);
    check_int(fleetpulse_probe_set(p, "collector", "tcp://127.0.0.1:1"), 0);
    check_int(fleetpulse_probe_start(p), 0);
    fleetpulse_probe_destroy(&p);
}

#ifndef FP_TEST_PUBLIC_ONLY

/* --- a counting emitter ------------------------------------------------------------------------- */

/* Every series seen: count of samples, the last value, the last timestamp and whether the
 * timestamps only ever went up. */
struct series {
    char key[192]; /* metric{name=value,...} */
    uint64_t n;
    double last;
    int64_t last_ts;
    bool increasing;
};

/* Open addressing on the key's hash: the drain loop must keep up with 8 producers. */
#define CAPTURE_SLOTS 1024

struct capture {
    struct series s[CAPTURE_SLOTS];
    size_t n;
    uint64_t events;
    uint64_t fallback_events;
};

static void series_key(char *buf, size_t size, const char *metric, const struct fp_label *labels,
                       size_t n_labels)
{
    size_t off = (size_t)snprintf(buf, size, "%s{", metric);
    for (size_t i = 0; i < n_labels && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s=%s", i ? "," : "", labels[i].name,
                                labels[i].value);
    if (off < size)
        (void)snprintf(buf + off, size - off, "}");
}

/* The slot of key: its series, or the empty slot where it would go. */
static struct series *slot_of(struct capture *c, const char *key)
{
    uint64_t h = 1469598103934665603u;
    for (const char *k = key; *k != '\0'; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211u;
    for (size_t i = h % CAPTURE_SLOTS;; i = (i + 1) % CAPTURE_SLOTS)
        if (c->s[i].key[0] == '\0' || strcmp(c->s[i].key, key) == 0)
            return &c->s[i];
}

static struct series *find(struct capture *c, const char *key)
{
    struct series *s = slot_of(c, key);
    return s->key[0] != '\0' ? s : NULL;
}

static int capture_sample(void *userdata, const char *metric, enum fp_metric_type type,
                          const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                          double value)
{
    struct capture *c = userdata;
    struct series *s;
    char key[192];

    series_key(key, sizeof(key), metric, labels, n_labels);
    s = slot_of(c, key);
    if (s->key[0] == '\0') {
        fp_assert(++c->n < CAPTURE_SLOTS / 2);
        (void)snprintf(s->key, sizeof(s->key), "%s", key);
        s->increasing = true;
    } else if (ts_ms <= s->last_ts) {
        s->increasing = false;
    }
    s->n++;
    s->last = value;
    s->last_ts = ts_ms;
    return 0;
}

static int capture_event(void *userdata, int64_t ts_ms, enum fp_severity severity,
                         const char *kind, const char *message, const struct fp_label *attrs,
                         size_t n_attrs)
{
    struct capture *c = userdata;
    c->events++;
    c->fallback_events += strcmp(kind, "fallback") == 0;
    return 0;
}

static struct fp_emitter capture_emitter(struct capture *c)
{
    return (struct fp_emitter){
        .sample = capture_sample,
        .event = capture_event,
        .userdata = c,
        .ts_ms = INT64_C(1718000000000),
    };
}

/* The last value of one series, NAN when it was never emitted. */
static double value_of(struct capture *c, const char *key)
{
    struct series *s = find(c, key);
    return s != NULL ? s->last : NAN;
}

static uint64_t count_of(struct capture *c, const char *key)
{
    struct series *s = find(c, key);
    return s != NULL ? s->n : 0;
}

/* --- a full ring -------------------------------------------------------------------------------- */

static void test_full_ring(void)
{
    struct fleetpulse_probe *p = NULL;
    struct fleetpulse_request r;
    struct capture *c = calloc(1, sizeof(*c));
    struct fp_emitter e = capture_emitter(c);
    char long_model[200];
    int ok = 0, full = 0;

    fp_assert(c != NULL);
    fp_assert(fleetpulse_probe_new(&p) == 0);
    check_int(fleetpulse_probe_set(p, "ring_records", "64"), 0);
    check_int(fp_ring_capacity(fp_probe_ring(p)), 64);
    memset(long_model, 'x', sizeof(long_model) - 1);
    long_model[sizeof(long_model) - 1] = '\0';
    long_model[1] = '\n'; /* a control byte: the label would be refused; it becomes '?' */
    r = request(long_model, 3, 2, 0.25, 1.25, FLEETPULSE_OUTCOME_OK, "ignored for ok");
    for (int i = 0; i < 100; i++) {
        int rc = fleetpulse_record(p, &r);
        if (rc == 0)
            ok++;
        else if (rc == -ENOBUFS)
            full++;
        else
            check_int(rc, 0);
    }
    check_int(ok, 64);
    check_int(full, 36);
    check_int(fp_probe_drain(p, &e), 64);
    {
        char key[192], name[64];
        memset(name, 'x', 63);
        name[1] = '?';
        name[63] = '\0';
        (void)snprintf(key, sizeof(key), "gen_ai_server_requests_total{model=%s,outcome=ok}",
                       name);
        check_double(value_of(c, key), 64);
        (void)snprintf(key, sizeof(key), "gen_ai_server_time_per_output_token_seconds{model=%s}",
                       name);
        check_double(value_of(c, key), 1.0); /* (1.25 - 0.25) / (2 - 1) */
        check_int(count_of(c, key), 64);
        check(find(c, key)->increasing);
        (void)snprintf(key, sizeof(key), "gen_ai_fallbacks_total{model=%s,reason=ignored for ok}",
                       name);
        check(find(c, key) == NULL);
    }
    check_double(value_of(c, "fleetpulse_probe_api_dropped_records_total{}"), 36);
    check_int(c->events, 0);
    /* Space again after the drain. */
    check_int(fleetpulse_record(p, &r), 0);
    fleetpulse_probe_destroy(&p);
    free(c);
}

/* --- many threads ------------------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 50000
#define MODELS 4

static const char *const model_names[MODELS] = {"alpha", "beta", "gamma", "delta"};
static const char *const outcome_names[] = {"ok", "error", "timeout", "cancelled", "fallback"};

struct producer {
    pthread_t thread;
    struct fleetpulse_probe *p;
    int id;
    uint64_t ok, full, other;
    uint64_t requests[MODELS][5];
    uint64_t tokens_in[MODELS], tokens_out[MODELS];
};

static atomic_int producers_left;

static void *produce(void *arg)
{
    struct producer *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int m = (w->id + i) % MODELS, o = i % 5, rc;
        uint64_t in = (uint64_t)(i % 97) + 1, out = (uint64_t)(i % 13);
        struct fleetpulse_request r =
            request(model_names[m], in, out, 0.01 * (i % 7), 0.5 + 0.01 * (i % 11),
                    (enum fleetpulse_outcome)o, i % 3 == 0 ? "oom" : "thermal");
        rc = fleetpulse_record(w->p, &r);
        if (rc == 0) {
            w->ok++;
            w->requests[m][o]++;
            w->tokens_in[m] += in;
            w->tokens_out[m] += out;
        } else if (rc == -ENOBUFS) {
            w->full++;
            /* Let the drainer run: with more producers than cores it would hardly get a turn,
             * and the test wants both outcomes in quantity. */
            sched_yield();
        } else {
            w->other++;
        }
    }
    atomic_fetch_sub(&producers_left, 1);
    return NULL;
}

static void test_threads(void)
{
    struct fleetpulse_probe *p = NULL;
    struct producer *w = calloc(THREADS, sizeof(*w));
    struct capture *c = calloc(1, sizeof(*c));
    struct fp_emitter e = capture_emitter(c);
    uint64_t ok = 0, full = 0, other = 0, drained = 0, rounds = 0, sum_requests = 0;
    uint64_t fallbacks = 0;
    char key[192];

    fp_assert(w != NULL && c != NULL);
    fp_assert(fleetpulse_probe_new(&p) == 0);
    check_int(fleetpulse_probe_set(p, "ring_records", "4096"), 0);
    atomic_store(&producers_left, THREADS);
    for (int t = 0; t < THREADS; t++) {
        w[t].p = p;
        w[t].id = t;
        fp_assert(pthread_create(&w[t].thread, NULL, produce, &w[t]) == 0);
    }
    /* This thread plays the probe's: drain rounds while the producers run, then what is left. */
    while (atomic_load(&producers_left) > 0) {
        drained += fp_probe_drain(p, &e);
        rounds++;
    }
    for (size_t n; (n = fp_probe_drain(p, &e)) > 0;)
        drained += n;
    for (int t = 0; t < THREADS; t++) {
        fp_assert(pthread_join(w[t].thread, NULL) == 0);
        ok += w[t].ok;
        full += w[t].full;
        other += w[t].other;
    }
    fprintf(stderr, "threads: %" PRIu64 " recorded, %" PRIu64 " dropped, %" PRIu64
                    " drain rounds\n",
            ok, full, rounds);
    check_int(ok + full, (uint64_t)THREADS * PER_THREAD);
    check_int(other, 0);
    check_int(drained, ok);
    check_double(value_of(c, "fleetpulse_probe_api_dropped_records_total{}"), (double)full);
    for (int m = 0; m < MODELS; m++) {
        uint64_t in = 0, out = 0, n_m = 0, with_tokens = 0;
        for (int o = 0; o < 5; o++) {
            uint64_t n = 0;
            for (int t = 0; t < THREADS; t++)
                n += w[t].requests[m][o];
            (void)snprintf(key, sizeof(key), "gen_ai_server_requests_total{model=%s,outcome=%s}",
                           model_names[m], outcome_names[o]);
            check_double(value_of(c, key), (double)n);
            sum_requests += (uint64_t)value_of(c, key);
            n_m += n;
            (void)snprintf(key, sizeof(key),
                           "gen_ai_server_request_duration_seconds{model=%s,outcome=%s}",
                           model_names[m], outcome_names[o]);
            check_int(count_of(c, key), n);
            check(n == 0 || find(c, key)->increasing);
        }
        for (int t = 0; t < THREADS; t++) {
            in += w[t].tokens_in[m];
            out += w[t].tokens_out[m];
        }
        (void)snprintf(key, sizeof(key), "gen_ai_token_usage_tokens_total{model=%s,type=input}",
                       model_names[m]);
        check_double(value_of(c, key), (double)in);
        (void)snprintf(key, sizeof(key), "gen_ai_token_usage_tokens_total{model=%s,type=output}",
                       model_names[m]);
        check_double(value_of(c, key), (double)out);
        /* One time-to-first-token sample per request with tokens, at distinct, rising times. */
        (void)snprintf(key, sizeof(key), "gen_ai_server_time_to_first_token_seconds{model=%s}",
                       model_names[m]);
        with_tokens = count_of(c, key);
        check(with_tokens > 0 && with_tokens < n_m);
        check(find(c, key) != NULL && find(c, key)->increasing);
        for (int r = 0; r < 2; r++) {
            (void)snprintf(key, sizeof(key), "gen_ai_fallbacks_total{model=%s,reason=%s}",
                           model_names[m], r == 0 ? "oom" : "thermal");
            if (!isnan(value_of(c, key)))
                fallbacks += (uint64_t)value_of(c, key);
        }
    }
    check_int(sum_requests, ok);
    {
        uint64_t want = 0;
        for (int m = 0; m < MODELS; m++)
            for (int t = 0; t < THREADS; t++)
                want += w[t].requests[m][FLEETPULSE_OUTCOME_FALLBACK];
        check_int(fallbacks, want);
        /* Events are bounded per round; each round sent at most 100, and with many rounds the
         * sum is at least the rounds' worth or all. */
        check(c->fallback_events <= want);
        check(c->fallback_events > 0);
    }
    fleetpulse_probe_destroy(&p);
    free(w);
    free(c);
}

#endif /* !FP_TEST_PUBLIC_ONLY */

/* --- end to end --------------------------------------------------------------------------------- */

struct server {
    struct fp_collector *c;
    pthread_t thread;
    int rc;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    s->rc = fp_collector_run(s->c);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

struct log_lines {
    pthread_mutex_t lock;
    int n;
    bool saw_sending;
};

static void logger(int level, const char *msg, void *userdata)
{
    struct log_lines *l = userdata;
    (void)pthread_mutex_lock(&l->lock);
    l->n++;
    if (strstr(msg, "sending to") != NULL)
        l->saw_sending = true;
    (void)pthread_mutex_unlock(&l->lock);
}

struct points {
    int64_t ts[64];
    double v[64];
    size_t n;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct points *p = ud;
    if (p->n < ARRAY_SIZE(p->ts)) {
        p->ts[p->n] = ts;
        p->v[p->n] = v;
    }
    p->n++;
    return 0;
}

/* All points of the one series matching the metric and labels (NULL-terminated name, value
 * pairs), with device api-test. */
static void read_series(struct fp_store_reader *rd, const char *metric, const char *const *lv,
                        struct points *pts)
{
    struct fp_matcher m[8] = {{"__name__", metric, FP_MATCH_EQ},
                              {"device", "api-test", FP_MATCH_EQ}};
    size_t n = 2;
    uint64_t *ids = NULL;
    size_t nids = 0;

    for (; lv != NULL && lv[0] != NULL && n < ARRAY_SIZE(m); lv += 2)
        m[n++] = (struct fp_matcher){lv[0], lv[1], FP_MATCH_EQ};
    pts->n = 0;
    check_int(fp_store_select(rd, m, n, &ids, &nids), 0);
    if (nids != 1) {
        FP_TEST_FAIL("%s: %zu series, expected 1", metric, nids);
    } else {
        check_int(fp_store_read_range(rd, ids[0], 0, INT64_MAX, collect, pts), 0);
    }
    free(ids);
}

/* The newest value of a series (NAN when absent). */
static double latest(struct fp_store_reader *rd, const char *metric, const char *const *lv)
{
    struct points pts;
    read_series(rd, metric, lv, &pts);
    return pts.n > 0 && pts.n <= ARRAY_SIZE(pts.v) ? pts.v[pts.n - 1] : NAN;
}

struct fallback_events {
    int n;
    bool attrs_ok;
};

static int on_event(void *ud, const struct fp_event_desc *e)
{
    struct fallback_events *f = ud;
    bool model = false, reason = false;
    if (strcmp(e->kind, "fallback") != 0)
        return 0;
    f->n++;
    for (size_t i = 0; i < e->n_attrs; i++) {
        model |= strcmp(e->attrs[i].name, "model") == 0 && strcmp(e->attrs[i].value, "m2") == 0;
        reason |= strcmp(e->attrs[i].name, "reason") == 0 &&
                  strcmp(e->attrs[i].value, "oom") == 0;
    }
    f->attrs_ok = (f->n == 1 || f->attrs_ok) && model && reason;
    return 0;
}

static void test_end_to_end(void)
{
    char dir[] = "/tmp/fp-api-test-XXXXXX", err[256];
    struct fp_collector_options opts;
    struct server srv = {0};
    struct fp_store *store = NULL;
    struct fp_store_reader *rd = NULL;
    struct fp_device_desc dd;
    struct fleetpulse_probe *p = NULL;
    struct fleetpulse_request r;
    struct log_lines lines = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct fallback_events fe = {0};
    struct points pts;
    bool site = false;

    fp_assert(mkdtemp(dir) != NULL);
    fp_collector_options_default(&opts);
    opts.listen = "tcp://127.0.0.1:0";
    opts.data_dir = dir;
    err[0] = '\0';
    if (fp_collector_new(&opts, &srv.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_collector_new: %s\n", err);
        fp_assert(false);
    }
    fp_assert(pthread_create(&srv.thread, NULL, serve, &srv) == 0);

    fleetpulse_set_logger(logger, &lines);
    fp_assert(fleetpulse_probe_new(&p) == 0);
    check_int(fleetpulse_probe_set(p, "collector", fp_collector_endpoint(srv.c)), 0);
    check_int(fleetpulse_probe_set(p, "device_id", "api-test"), 0);
    check_int(fleetpulse_probe_set(p, "interval", "200ms"), 0);
    check_int(fleetpulse_probe_set(p, "site", "lab-7"), 0);
    check_int(fleetpulse_probe_set(p, "procfs", FP_FIXTURES_DIR "/procfs"), 0);
    check_int(fleetpulse_probe_set(p, "sysfs", FP_FIXTURES_DIR "/sysfs"), 0);

    /* Before start: kept in the ring for the first round. Same model, same ms: distinct points. */
    r = request("m1", 10, 5, 0.1, 0.5, FLEETPULSE_OUTCOME_OK, NULL);
    for (int i = 0; i < 3; i++)
        check_int(fleetpulse_record(p, &r), 0);
    fp_assert(fleetpulse_probe_start(p) == 0);
    r = request("m1", 7, 0, 0, 0.25, FLEETPULSE_OUTCOME_ERROR, NULL);
    check_int(fleetpulse_record(p, &r), 0);
    (void)usleep(500 * 1000); /* a round or two in between */
    r = request("m2", 100, 0, 0, 0.01, FLEETPULSE_OUTCOME_FALLBACK, "oom");
    check_int(fleetpulse_record(p, &r), 0);
    check_int(fleetpulse_record(p, &r), 0);
    r = request("m2", 50, 20, 0.2, 2.1, FLEETPULSE_OUTCOME_TIMEOUT, NULL);
    check_int(fleetpulse_record(p, &r), 0);
    /* Recorded just before destroy: the last round sends them. */
    fleetpulse_probe_destroy(&p);
    fleetpulse_set_logger(NULL, NULL);
    check(lines.n > 0);
    check(lines.saw_sending);

    fp_collector_stop(srv.c);
    fp_assert(pthread_join(srv.thread, NULL) == 0);
    check_int(srv.rc, 0);
    fp_collector_destroy(&srv.c);

    err[0] = '\0';
    if (fp_store_open(dir, FP_STORE_READONLY, NULL, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_store_open: %s\n", err);
        fp_assert(false);
    }
    fp_assert(fp_store_reader_open(store, &rd) == 0);
#define LV(...) ((const char *const[]){__VA_ARGS__, NULL})
    check_double(latest(rd, "gen_ai_server_requests_total", LV("model", "m1", "outcome", "ok")), 3);
    check_double(latest(rd, "gen_ai_server_requests_total", LV("model", "m1", "outcome", "error")),
                 1);
    check_double(
        latest(rd, "gen_ai_server_requests_total", LV("model", "m1", "outcome", "fallback")), 0);
    check_double(
        latest(rd, "gen_ai_server_requests_total", LV("model", "m2", "outcome", "fallback")), 2);
    check_double(
        latest(rd, "gen_ai_server_requests_total", LV("model", "m2", "outcome", "timeout")), 1);
    check_double(latest(rd, "gen_ai_server_requests_total", LV("model", "m2", "outcome", "ok")), 0);
    check_double(latest(rd, "gen_ai_token_usage_tokens_total", LV("model", "m1", "type", "input")),
                 37);
    check_double(latest(rd, "gen_ai_token_usage_tokens_total", LV("model", "m1", "type", "output")),
                 15);
    check_double(latest(rd, "gen_ai_token_usage_tokens_total", LV("model", "m2", "type", "input")),
                 250);
    check_double(latest(rd, "gen_ai_token_usage_tokens_total", LV("model", "m2", "type", "output")),
                 20);
    check_double(latest(rd, "gen_ai_fallbacks_total", LV("model", "m2", "reason", "oom")), 2);
    check_double(latest(rd, "fleetpulse_probe_api_dropped_records_total", NULL), 0);

    /* Three requests of m1 in the same ms: three points, 1 ms apart at most a few ms. */
    read_series(rd, "gen_ai_server_time_to_first_token_seconds", LV("model", "m1"), &pts);
    check_int(pts.n, 3);
    if (pts.n == 3) {
        check(pts.ts[0] < pts.ts[1] && pts.ts[1] < pts.ts[2]);
        check_double(pts.v[0], 0.1);
        check_double(pts.v[2], 0.1);
    }
    read_series(rd, "gen_ai_server_time_per_output_token_seconds", LV("model", "m1"), &pts);
    check_int(pts.n, 3);
    check_near(pts.n > 0 ? pts.v[0] : NAN, 0.1, 1e-12); /* (0.5 - 0.1) / 4 */
    read_series(rd, "gen_ai_server_request_duration_seconds",
                LV("model", "m1", "outcome", "error"), &pts);
    check_int(pts.n, 1);
    check_double(pts.n > 0 ? pts.v[0] : NAN, 0.25);
    read_series(rd, "gen_ai_server_request_duration_seconds",
                LV("model", "m2", "outcome", "timeout"), &pts);
    check_int(pts.n, 1);
    check_double(pts.n > 0 ? pts.v[0] : NAN, 2.1);
    read_series(rd, "gen_ai_server_time_per_output_token_seconds", LV("model", "m2"), &pts);
    check_int(pts.n, 1);
    check_near(pts.n > 0 ? pts.v[0] : NAN, 0.1, 1e-12); /* (2.1 - 0.2) / 19 */
    /* The samplers ran too, on the fixture tree. */
    read_series(rd, "memory_total_bytes", NULL, &pts);
    check(pts.n >= 1);
#undef LV

    check_int(fp_store_events(rd, "api-test", 0, INT64_MAX, on_event, &fe), 0);
    check_int(fe.n, 2);
    check(fe.attrs_ok);
    check_int(fp_store_device_get(rd, "api-test", &dd), 0);
    for (size_t i = 0; i < dd.n_info; i++)
        site |= strcmp(dd.info[i].name, "site") == 0 && strcmp(dd.info[i].value, "lab-7") == 0;
    check(site);
    check_int(dd.dropped_samples_total, 0);

    fp_store_reader_close(&rd);
    fp_store_close(&store);
    (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    char version[32];

    (void)snprintf(version, sizeof(version), "%d.%d.%d", FLEETPULSE_VERSION_MAJOR,
                   FLEETPULSE_VERSION_MINOR, FLEETPULSE_VERSION_PATCH);
    check_str(version, FP_VERSION); /* the header's macros follow meson's project version */
    check(FLEETPULSE_VERSION >= FLEETPULSE_VERSION_AT(0, 1, 0));

    test_bad_input();
#ifndef FP_TEST_PUBLIC_ONLY
    test_full_ring();
    test_threads();
#endif
    test_end_to_end();
    fp_test_end();
}
