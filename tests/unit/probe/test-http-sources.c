/* Unit tests for the probe's inference-runtime sources: the parsers of llama-parse.c against the
 * fixtures in tests/fixtures/llama/ (values listed in its README.md), and the llama_server and
 * canary sources end to end (open, sample, close) against a test double.
 *
 * The test double is a tiny llama-server stand-in made with libevent's evhttp on a loopback port,
 * serving those fixtures: /health, /metrics (with Process-Start-Time-Unix), /slots, /props, and
 * streamed /completion and /v1/chat/completions answers sent one SSE event at a time. It is not
 * llama.cpp; the real server is exercised by the `llama` suite. It runs on its own thread, and the
 * test switches what it serves under its mutex. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>

#include "clock.h"
#include "http.h"
#include "llama-parse.h"
#include "sampler.h"
#include "sources-internal.h"
#include "test.h"

#define FIX FP_FIXTURES_DIR "/llama/"
#define TS_MS INT64_C(1718000000123)
/* How long a test waits for the background thread to get somewhere before it fails. */
#define WAIT_MS 10000
/* A string literal and its length, for the (pointer, length) parsers. */
#define STR(s) (s), strlen(s)

/* --- fixtures --------------------------------------------------------------------------------- */

static char *load(const char *name, size_t *ret_len)
{
    char path[512];
    FILE *f;
    long n;
    char *buf;

    (void)snprintf(path, sizeof(path), "%s%s", FIX, name);
    f = fopen(path, "rb");
    fp_assert(f != NULL);
    fp_assert(fseek(f, 0, SEEK_END) == 0);
    n = ftell(f);
    fp_assert(n >= 0 && fseek(f, 0, SEEK_SET) == 0);
    buf = malloc((size_t)n + 1);
    fp_assert(buf != NULL);
    fp_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (ret_len != NULL)
        *ret_len = (size_t)n;
    return buf;
}

/* --- a capturing emitter ---------------------------------------------------------------------- */

struct rec {
    char metric[64];
    enum fp_metric_type type;
    char labels[128]; /**< "name=value,..." */
    double value;
};

struct evrec {
    char kind[32];
    enum fp_severity severity;
    char message[160];
    size_t n_attrs;
    char names[8][24];
    char values[8][128];
};

struct capture {
    struct rec recs[96]; /**< this round's samples */
    size_t n;
    struct evrec evs[128]; /**< every event since capture_init */
    size_t n_ev;
    char info_names[8][32], info_values[8][160]; /**< latest value per identity field */
    size_t n_info;
};

static int capture_sample(void *userdata, const char *metric, enum fp_metric_type type,
                          const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                          double value)
{
    struct capture *c = userdata;
    struct rec *r;
    size_t off = 0;

    fp_assert(c->n < sizeof(c->recs) / sizeof(c->recs[0]));
    fp_assert(ts_ms == TS_MS);
    r = &c->recs[c->n++];
    fp_assert(strlen(metric) < sizeof(r->metric));
    strcpy(r->metric, metric);
    r->type = type;
    r->labels[0] = '\0';
    for (size_t i = 0; i < n_labels; i++) {
        int k = snprintf(r->labels + off, sizeof(r->labels) - off, "%s%s=%s", i ? "," : "",
                         labels[i].name, labels[i].value);

        fp_assert(k > 0 && (size_t)k < sizeof(r->labels) - off);
        off += (size_t)k;
    }
    r->value = value;
    return 0;
}

static int capture_event(void *userdata, int64_t ts_ms, enum fp_severity severity, const char *kind,
                         const char *message, const struct fp_label *attrs, size_t n_attrs)
{
    struct capture *c = userdata;
    struct evrec *e;

    fp_assert(c->n_ev < sizeof(c->evs) / sizeof(c->evs[0]));
    fp_assert(ts_ms == TS_MS);
    e = &c->evs[c->n_ev++];
    memset(e, 0, sizeof(*e));
    (void)snprintf(e->kind, sizeof(e->kind), "%s", kind);
    (void)snprintf(e->message, sizeof(e->message), "%s", message != NULL ? message : "");
    e->severity = severity;
    fp_assert(n_attrs <= 8);
    e->n_attrs = n_attrs;
    for (size_t i = 0; i < n_attrs; i++) {
        (void)snprintf(e->names[i], sizeof(e->names[i]), "%s", attrs[i].name);
        (void)snprintf(e->values[i], sizeof(e->values[i]), "%s", attrs[i].value);
    }
    return 0;
}

static int capture_info(void *userdata, const char *name, const char *value)
{
    struct capture *c = userdata;
    size_t i;

    for (i = 0; i < c->n_info; i++)
        if (strcmp(c->info_names[i], name) == 0)
            break;
    if (i == c->n_info) {
        fp_assert(c->n_info < 8);
        c->n_info++;
        (void)snprintf(c->info_names[i], sizeof(c->info_names[i]), "%s", name);
    }
    (void)snprintf(c->info_values[i], sizeof(c->info_values[i]), "%s", value);
    return 0;
}

static void capture_init(struct capture *c, struct fp_emitter *e)
{
    memset(c, 0, sizeof(*c));
    *e = (struct fp_emitter){
        .sample = capture_sample,
        .event = capture_event,
        .info = capture_info,
        .userdata = c,
        .ts_ms = TS_MS,
    };
}

static const struct rec *find(const struct capture *c, const char *metric, const char *labels)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->recs[i].metric, metric) == 0 && strcmp(c->recs[i].labels, labels) == 0)
            return &c->recs[i];
    return NULL;
}

/* The value of metric{labels} this round, or NaN when absent. */
static double value_of(const struct capture *c, const char *metric, const char *labels)
{
    const struct rec *r = find(c, metric, labels);

    return r != NULL ? r->value : NAN;
}

static void expect(const struct capture *c, const char *metric, enum fp_metric_type type,
                   double value)
{
    const struct rec *r = find(c, metric, "");

    if (r == NULL) {
        FP_TEST_FAIL("no sample %s", metric);
        return;
    }
    if (r->type != type)
        FP_TEST_FAIL("%s: type %d, expected %d", metric, (int)r->type, (int)type);
    if (!(r->value == value))
        FP_TEST_FAIL("%s == %.17g, expected %.17g", metric, r->value, value);
}

static const char *info(const struct capture *c, const char *name)
{
    for (size_t i = 0; i < c->n_info; i++)
        if (strcmp(c->info_names[i], name) == 0)
            return c->info_values[i];
    return NULL;
}

static const char *attr(const struct evrec *e, const char *name)
{
    for (size_t i = 0; i < e->n_attrs; i++)
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    return NULL;
}

/* The idx-th event of kind (0 = first), or NULL. */
static const struct evrec *event_of(const struct capture *c, const char *kind, size_t idx)
{
    for (size_t i = 0; i < c->n_ev; i++)
        if (strcmp(c->evs[i].kind, kind) == 0 && idx-- == 0)
            return &c->evs[i];
    return NULL;
}

static size_t count_events(const struct capture *c, const char *kind)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n_ev; i++)
        n += strcmp(c->evs[i].kind, kind) == 0;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One round: the samples of this round only, events appended. Checks sample() never fails. */
static void round_once(const struct fp_sampler_ops *ops, void *ctx, struct capture *c,
                       struct fp_emitter *e)
{
    int r;

    c->n = 0;
    r = ops->sample(ctx, e);
    if (r < 0)
        FP_TEST_FAIL("%s: sample returned %d", ops->name, r);
}

typedef bool (*until_fn)(const struct capture *c, const void *arg);

/* Runs rounds every 10 ms until done(c, arg) holds after one; fails the test after WAIT_MS. */
static void rounds_until(const struct fp_sampler_ops *ops, void *ctx, struct capture *c,
                         struct fp_emitter *e, until_fn done, const void *arg, const char *what)
{
    int64_t deadline = fp_clock_mono_ms() + WAIT_MS;

    for (;;) {
        round_once(ops, ctx, c, e);
        if (done(c, arg))
            return;
        if (fp_clock_mono_ms() > deadline) {
            FP_TEST_FAIL("%s: timed out waiting for %s", ops->name, what);
            exit(1);
        }
        sleep_ms(10);
    }
}

struct want {
    const char *metric;
    const char *labels;
    double value;
};

static bool has_value(const struct capture *c, const void *arg)
{
    const struct want *w = arg;
    const struct rec *r = find(c, w->metric, w->labels != NULL ? w->labels : "");

    return r != NULL && r->value == w->value;
}

static bool has_metric(const struct capture *c, const void *arg)
{
    const struct want *w = arg;

    return find(c, w->metric, w->labels != NULL ? w->labels : "") != NULL;
}

static bool has_event(const struct capture *c, const void *arg)
{
    const struct want *w = arg; /* metric: kind; labels: "name=value" of one attribute or NULL */

    for (size_t i = 0; i < c->n_ev; i++) {
        const struct evrec *e = &c->evs[i];

        if (strcmp(e->kind, w->metric) != 0)
            continue;
        if (w->labels == NULL)
            return true;
        for (size_t k = 0; k < e->n_attrs; k++) {
            char kv[160];

            (void)snprintf(kv, sizeof(kv), "%s=%s", e->names[k], e->values[k]);
            if (strcmp(kv, w->labels) == 0)
                return true;
        }
    }
    return false;
}

/* --- the test double: a tiny llama-server stand-in -------------------------------------------- */

enum fake_mode { FAKE_SERVE, FAKE_HANG };

struct job; /* one streamed answer in progress */

struct fake {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    bool running;
    uint16_t port;
    char url[64];
    struct job *jobs[8];

    pthread_mutex_t lock; /* everything below */
    int health_status;
    const char *health_body;
    int metrics_status;
    const char *metrics_body;
    const char *start_time; /* Process-Start-Time-Unix, NULL: not sent */
    const char *slots_body;
    const char *props_body;
    enum fake_mode gen_mode;
    int gen_status;
    const char *gen_body; /* SSE stream for 200, error JSON otherwise */
    unsigned metrics_hits, gen_hits;
    char last_auth[128];
    char last_path[64];
    char last_body[2048];
};

struct job {
    struct fake *f;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    char *data; /* copy of the stream */
    size_t len, off;
};

static void job_free(struct job *j)
{
    for (size_t i = 0; i < 8; i++)
        if (j->f->jobs[i] == j)
            j->f->jobs[i] = NULL;
    event_free(j->timer);
    free(j->data);
    free(j);
}

/* The client went away mid-stream (its timeout, or the source closed): libevent frees the request
 * with the connection, so the job must go before its timer touches it. */
static void job_closed(struct evhttp_connection *evcon, void *arg)
{
    job_free(arg);
}

static void job_step(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    const char *end = strstr(j->data + j->off, "\n\n");
    size_t next = end != NULL ? (size_t)(end - j->data) + 2 : j->len;
    struct evbuffer *b = evbuffer_new();

    fp_assert(b != NULL);
    evbuffer_add(b, j->data + j->off, next - j->off);
    evhttp_send_reply_chunk(j->req, b);
    evbuffer_free(b);
    j->off = next;
    if (j->off < j->len) {
        /* One SSE event every 3 ms, like tokens: TTFT and duration differ measurably. */
        struct timeval tv = {0, 3000};

        evtimer_add(j->timer, &tv);
        return;
    }
    evhttp_connection_set_closecb(j->evcon, NULL, NULL);
    evhttp_send_reply_end(j->req);
    job_free(j);
}

static void reply(struct evhttp_request *req, int status, const char *type, const char *body,
                  const char *start_time)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    fp_assert(b != NULL);
    evhttp_add_header(h, "Content-Type", type);
    if (start_time != NULL)
        evhttp_add_header(h, "Process-Start-Time-Unix", start_time);
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void fake_generate(struct fake *f, struct evhttp_request *req, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    size_t n = evbuffer_get_length(in);
    enum fake_mode mode;
    int status;
    const char *body;
    struct job *j;
    size_t slot;

    pthread_mutex_lock(&f->lock);
    f->gen_hits++;
    (void)snprintf(f->last_path, sizeof(f->last_path), "%s", path);
    (void)snprintf(f->last_auth, sizeof(f->last_auth), "%s", auth != NULL ? auth : "");
    if (n >= sizeof(f->last_body))
        n = sizeof(f->last_body) - 1;
    evbuffer_copyout(in, f->last_body, n);
    f->last_body[n] = '\0';
    mode = f->gen_mode;
    status = f->gen_status;
    body = f->gen_body;
    pthread_mutex_unlock(&f->lock);

    if (mode == FAKE_HANG)
        return; /* never answered; evhttp frees it with the connection */
    if (status != 200) {
        reply(req, status, "application/json; charset=utf-8", body, NULL);
        return;
    }
    for (slot = 0; slot < 8 && f->jobs[slot] != NULL; slot++)
        ;
    fp_assert(slot < 8);
    j = calloc(1, sizeof(*j));
    fp_assert(j != NULL);
    j->f = f;
    j->req = req;
    j->evcon = evhttp_request_get_connection(req);
    j->data = strdup(body);
    j->len = strlen(body);
    j->timer = evtimer_new(f->base, job_step, j);
    fp_assert(j->data != NULL && j->timer != NULL);
    f->jobs[slot] = j;
    evhttp_connection_set_closecb(j->evcon, job_closed, j);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    job_step(-1, 0, j);
}

static void fake_handle(struct evhttp_request *req, void *arg)
{
    struct fake *f = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    int status = 404;
    const char *body = "{\"error\":{\"code\":404,\"message\":\"File Not Found\"}}";
    const char *type = "application/json; charset=utf-8", *start = NULL;

    if (path == NULL)
        path = "";
    if (strcmp(path, "/completion") == 0 || strcmp(path, "/v1/chat/completions") == 0) {
        fake_generate(f, req, path);
        return;
    }
    pthread_mutex_lock(&f->lock);
    if (strcmp(path, "/health") == 0) {
        status = f->health_status;
        body = f->health_body;
    } else if (strcmp(path, "/metrics") == 0) {
        f->metrics_hits++;
        status = f->metrics_status;
        if (status == 200) {
            body = f->metrics_body;
            type = "text/plain; version=0.0.4";
            start = f->start_time;
        }
    } else if (strcmp(path, "/slots") == 0) {
        status = 200;
        body = f->slots_body;
    } else if (strcmp(path, "/props") == 0) {
        status = 200;
        body = f->props_body;
    }
    {
        const char *auth =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

        (void)snprintf(f->last_auth, sizeof(f->last_auth), "%s", auth != NULL ? auth : "");
    }
    pthread_mutex_unlock(&f->lock);
    reply(req, status, type, body, start);
}

static void fake_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct fake *f = arg;

    event_base_loopbreak(f->base);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;

    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void fake_start(struct fake *f)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(f, 0, sizeof(*f));
    fp_assert(pthread_mutex_init(&f->lock, NULL) == 0);
    f->base = event_base_new();
    fp_assert(f->base != NULL);
    f->http = evhttp_new(f->base);
    fp_assert(f->http != NULL);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(f->http, fake_handle, f);
    sock = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    fp_assert(sock != NULL);
    fp_assert(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len) == 0);
    f->port = ntohs(sin.sin_port);
    (void)snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", (unsigned)f->port);
    f->stop_ev = event_new(f->base, -1, 0, fake_on_stop, f);
    fp_assert(f->stop_ev != NULL);
    f->health_status = 200;
    f->health_body = "{\"status\":\"ok\"}";
    f->metrics_status = 200;
    f->metrics_body = "";
    f->slots_body = "[]";
    f->props_body = "{}";
    f->gen_status = 200;
    f->gen_body = "";
    fp_assert(pthread_create(&f->thread, NULL, fake_main, f) == 0);
    f->running = true;
}

/* The server goes away: listener and connections closed; the port refuses from now on. */
static void fake_stop(struct fake *f)
{
    if (!f->running)
        return;
    event_active(f->stop_ev, 0, 0);
    fp_assert(pthread_join(f->thread, NULL) == 0);
    f->running = false;
    evhttp_free(f->http); /* closes connections: their closecb frees running jobs */
    for (size_t i = 0; i < 8; i++)
        if (f->jobs[i] != NULL)
            job_free(f->jobs[i]);
    event_free(f->stop_ev);
    event_base_free(f->base);
    pthread_mutex_destroy(&f->lock);
}

/* A loopback port with nothing listening (bound, then closed). */
static uint16_t closed_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    fp_assert(fd >= 0);
    fp_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    fp_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* --- parser tests ----------------------------------------------------------------------------- */

struct prom_seen {
    char names[16][48];
    char labels[16][128];
    double values[16];
    size_t n;
};

static int on_prom(void *userdata, const char *name, size_t name_len, const char *labels,
                   size_t labels_len, double value)
{
    struct prom_seen *s = userdata;

    fp_assert(s->n < 16 && name_len < 48 && labels_len < 128);
    memcpy(s->names[s->n], name, name_len);
    s->names[s->n][name_len] = '\0';
    if (labels != NULL) {
        memcpy(s->labels[s->n], labels, labels_len);
        s->labels[s->n][labels_len] = '\0';
    } else {
        strcpy(s->labels[s->n], "(none)");
    }
    s->values[s->n++] = value;
    return 0;
}

static void test_prom_parse(void)
{
    static struct prom_seen s;
    size_t len, bad;
    char *text = load("prom-edge.txt", &len);

    bad = fp_prom_parse(text, len, on_prom, &s);
    check_int(bad, 7);
    fp_assert(s.n == 9);
    check_str(s.names[0], "metric_a");
    check_str(s.labels[0], "(none)");
    check_double(s.values[0], 1);
    check_str(s.names[1], "metric_b");
    check_str(s.labels[1], "");
    check_str(s.names[2], "metric_c");
    check_str(s.labels[2], "a=\"x\",b=\"y z\"");
    check_double(s.values[2], 3);
    check_str(s.names[3], "metric_d");
    check_str(s.labels[3], " a = \"with \\\"quotes\\\", \\\\ and \\n}\" , ");
    check_double(s.values[3], 4500);
    check_str(s.names[4], "metric_e");
    check(isinf(s.values[4]) && s.values[4] < 0);
    check(isnan(s.values[5]));
    check(isinf(s.values[6]) && s.values[6] > 0);
    check_str(s.names[7], "metric_h");
    check_double(s.values[7], 7);
    check_str(s.names[8], "llamacpp:prompt_tokens_total");
    check_double(s.values[8], 10);
    free(text);

    /* Empty input, and a lone comment without a newline. */
    s.n = 0;
    check_int(fp_prom_parse(STR(""), on_prom, &s), 0);
    check_int(fp_prom_parse(STR("# HELP x y"), on_prom, &s), 0);
    check_int(s.n, 0);
}

static void test_metrics_parse(void)
{
    struct fp_llama_metrics m;
    size_t len;
    char *text = load("metrics-1.txt", &len);

    check_int(fp_llama_metrics_parse(text, len, &m), 0);
    check_int(m.have, (1u << FP_LLAMA_N_METRICS) - 1);
    check_double(m.value[FP_LLAMA_PROMPT_TOKENS], 1200);
    check_double(m.value[FP_LLAMA_PROMPT_SECONDS], 2.5);
    check_double(m.value[FP_LLAMA_TOKENS_PREDICTED], 3400);
    check_double(m.value[FP_LLAMA_PREDICTED_SECONDS], 68);
    check_double(m.value[FP_LLAMA_N_DECODE], 3500);
    check_double(m.value[FP_LLAMA_REQUESTS_PROCESSING], 1);
    check_double(m.value[FP_LLAMA_REQUESTS_DEFERRED], 0);
    free(text);

    /* Labelled spec-decode series are other series, and not errors. */
    text = load("metrics-2.txt", &len);
    check_int(fp_llama_metrics_parse(text, len, &m), 0);
    check_double(m.value[FP_LLAMA_PROMPT_TOKENS], 1712);
    check_double(m.value[FP_LLAMA_PREDICTED_SECONDS], 73.12);
    check_double(m.value[FP_LLAMA_REQUESTS_DEFERRED], 2);
    free(text);

    /* First occurrence wins; labelled and non-finite values do not count; garbage is counted. */
    {
        const char *t = "llamacpp:prompt_tokens_total{model=\"a\"} 5\n"
                        "llamacpp:prompt_tokens_total 7\n"
                        "llamacpp:prompt_tokens_total 9\n"
                        "llamacpp:n_decode_total NaN\n"
                        "llamacpp:requests_deferred{} 3\n"
                        "what is this\n";

        check_int(fp_llama_metrics_parse(t, strlen(t), &m), 2);
        check_int(m.have, (1u << FP_LLAMA_PROMPT_TOKENS) | (1u << FP_LLAMA_REQUESTS_DEFERRED));
        check_double(m.value[FP_LLAMA_PROMPT_TOKENS], 7);
        check_double(m.value[FP_LLAMA_REQUESTS_DEFERRED], 3);
    }
    check_int(fp_llama_metrics_parse(STR(""), &m), 0);
    check_int(m.have, 0);

    check_str(fp_llama_metric_info[FP_LLAMA_PREDICTED_SECONDS].name,
              "llamacpp_tokens_predicted_seconds_total");
}

static void load_metrics(const char *name, struct fp_llama_metrics *m)
{
    size_t len;
    char *text = load(name, &len);

    fp_assert(fp_llama_metrics_parse(text, len, m) == 0);
    free(text);
}

static void test_rates(void)
{
    struct fp_llama_metrics m1, m2, mr, m3, partial;
    struct fp_llama_rates r;

    load_metrics("metrics-1.txt", &m1);
    load_metrics("metrics-2.txt", &m2);
    load_metrics("metrics-restarted.txt", &mr);
    load_metrics("metrics-3.txt", &m3);

    fp_llama_rates_compute(&m1, &m2, &r);
    check(!r.reset && r.have_prompt && r.have_generation);
    check_double(r.prompt_tokens_per_second, (1712.0 - 1200.0) / (3.3 - 2.5));
    check_double(r.generation_tokens_per_second, (3656.0 - 3400.0) / (73.12 - 68.0));
    check_near(r.prompt_tokens_per_second, 640, 1e-9);
    check_near(r.generation_tokens_per_second, 50, 1e-9);

    /* A restart: counters went down. */
    fp_llama_rates_compute(&m2, &mr, &r);
    check(r.reset && !r.have_prompt && !r.have_generation);

    fp_llama_rates_compute(&mr, &m3, &r);
    check(!r.reset && r.have_prompt && r.have_generation);
    check_double(r.prompt_tokens_per_second, (104.0 - 40.0) / (0.2 - 0.1));
    check_double(r.generation_tokens_per_second, (48.0 - 16.0) / (1.04 - 0.4));

    /* No busy time in between: no rate (not 0, not NaN). */
    fp_llama_rates_compute(&m1, &m1, &r);
    check(!r.reset && !r.have_prompt && !r.have_generation);

    /* A missing counter: only the rate that has both of its. */
    partial = m2;
    partial.have &= ~(1u << FP_LLAMA_PROMPT_SECONDS);
    fp_llama_rates_compute(&m1, &partial, &r);
    check(!r.have_prompt && r.have_generation);
}

static void test_health(void)
{
    char reason[128];
    size_t len;
    char *loading = load("health-loading.json", &len), *e500;

    check_int(fp_llama_health_parse(200, STR("{\"status\":\"ok\"}"), reason, sizeof(reason)),
              FP_LLAMA_HEALTH_OK);
    check_str(reason, "ok");
    check_int(fp_llama_health_parse(503, loading, len, reason, sizeof(reason)),
              FP_LLAMA_HEALTH_LOADING);
    check_str(reason, "Loading model");
    /* Older builds. */
    check_int(
        fp_llama_health_parse(503, STR("{\"status\":\"loading model\"}"), reason, sizeof(reason)),
        FP_LLAMA_HEALTH_LOADING);
    check_int(fp_llama_health_parse(503, STR("{\"status\":\"no slot available\"}"), reason,
                                    sizeof(reason)),
              FP_LLAMA_HEALTH_DOWN);
    check_str(reason, "http 503: no slot available");
    e500 = load("error-500.json", &len);
    check_int(fp_llama_health_parse(500, e500, len, reason, sizeof(reason)), FP_LLAMA_HEALTH_DOWN);
    check_str(reason, "http 500: boom");
    check_int(fp_llama_health_parse(404, STR(""), reason, sizeof(reason)), FP_LLAMA_HEALTH_DOWN);
    check_str(reason, "http 404");
    /* A non-JSON body is quoted, control characters blanked, cut to the buffer. */
    check_int(fp_llama_health_parse(502, STR("bad\ngateway"), reason, 16), FP_LLAMA_HEALTH_DOWN);
    check_str(reason, "http 502: bad g");
    check_str(fp_llama_health_name(FP_LLAMA_HEALTH_LOADING), "loading");
    free(loading);
    free(e500);
}

static void test_copy_text(void)
{
    char buf[8];

    /* "h\u00e9ll\u00e9!" is 8 bytes: 7 fit before the NUL; with one byte less the cut moves
     * back before the whole second \u00e9 rather than split it. */
    check_int(fp_llama_copy_text(buf, 8, STR("h\xc3\xa9ll\xc3\xa9!")), 7);
    check_str(buf, "h\xc3\xa9ll\xc3\xa9");
    check_int(fp_llama_copy_text(buf, 7, STR("h\xc3\xa9ll\xc3\xa9!")), 5);
    check_str(buf, "h\xc3\xa9ll");
    /* Invalid bytes (a lone continuation, an overlong form, a surrogate) and a control byte. */
    check_int(fp_llama_copy_text(buf, 8, STR("\x80\xc0\xaf\t\xed\xa0\x80")), 7);
    check_str(buf, "??? ???");
    /* Stops at a NUL within n. */
    check_int(fp_llama_copy_text(buf, 8, "ab\0cd", 5), 2);
    check_str(buf, "ab");
}

static void test_slots_props(void)
{
    unsigned total = 99, busy = 99;
    struct fp_llama_props p;
    size_t len;
    char *text = load("slots.json", &len), name[64];

    check_int(fp_llama_slots_parse(text, len, &total, &busy), 0);
    check_int(total, 2);
    check_int(busy, 1);
    free(text);
    check_int(fp_llama_slots_parse(STR("[{\"id\":0,\"state\":1},{\"id\":1,\"state\":0},{}]"),
                                   &total, &busy),
              0);
    check_int(total, 3);
    check_int(busy, 1);
    check_int(fp_llama_slots_parse(STR("{\"error\":1}"), &total, &busy), -EINVAL);
    check_int(fp_llama_slots_parse(STR("["), &total, &busy), -EINVAL);

    text = load("props.json", &len);
    check_int(fp_llama_props_parse(text, len, &p), 0);
    check_str(p.build_info, "b6590-4ae88d07");
    check_str(p.model, "Qwen2.5-0.5B-Instruct-Q4_K_M");
    check_str(p.ftype, "Q4_K - Medium");
    check_int(p.n_ctx, 4096);
    free(text);
    check_int(fp_llama_props_parse(STR("{\"model_alias\":\"tiny\",\"n_ctx\":512}"), &p), 0);
    check_str(p.model, "tiny");
    check_int(p.n_ctx, 512);
    check_str(p.build_info, "");
    check_int(fp_llama_props_parse(STR("[]"), &p), -EINVAL);

    fp_llama_model_name("/m/x/Llama-3-8B-00001-of-00004.gguf", name, sizeof(name));
    check_str(name, "Llama-3-8B");
    fp_llama_model_name("model.GGUF", name, sizeof(name));
    check_str(name, "model");
    fp_llama_model_name("weights.bin", name, sizeof(name));
    check_str(name, "weights.bin");
    fp_llama_model_name("a-0001-of-0004.gguf", name, sizeof(name));
    check_str(name, "a-0001-of-0004");
    fp_llama_model_name("/m/averyveryverylongname.gguf", name, 8);
    check_str(name, "averyve");
}

struct sse_seen {
    char data[8][1024];
    size_t n;
};

static int on_sse(void *userdata, const char *data, size_t len)
{
    struct sse_seen *s = userdata;

    fp_assert(s->n < 8 && len < 1024 && strlen(data) == len);
    memcpy(s->data[s->n++], data, len + 1);
    return 0;
}

static void test_sse(void)
{
    static struct sse_seen whole, bytes, crlf;
    struct fp_sse sse;
    size_t len, n = 0;
    char *text = load("completion-stream.txt", &len), *conv;

    fp_assert(fp_sse_init(&sse, 4096) == 0);
    check_int(fp_sse_feed(&sse, text, len, on_sse, &whole), 0);
    check_int(fp_sse_finish(&sse, on_sse, &whole), 0);
    check_int(whole.n, 5);
    check(strncmp(whole.data[0], "{\"index\":0,\"content\":\" Hello\"", 29) == 0);

    /* One byte at a time: the same events. */
    fp_sse_reset(&sse);
    for (size_t i = 0; i < len; i++)
        check_int(fp_sse_feed(&sse, text + i, 1, on_sse, &bytes), 0);
    check_int(bytes.n, 5);
    for (size_t i = 0; i < 5; i++)
        check_str(bytes.data[i], whole.data[i]);

    /* CRLF line ends, split between pieces right inside a "\r\n". */
    conv = malloc(2 * len);
    fp_assert(conv != NULL);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            conv[n++] = '\r';
        conv[n++] = text[i];
    }
    fp_sse_reset(&sse);
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 7 ? n - i : 7;

        check_int(fp_sse_feed(&sse, conv + i, k, on_sse, &crlf), 0);
        i += k;
    }
    check_int(crlf.n, 5);
    for (size_t i = 0; i < 5; i++)
        check_str(crlf.data[i], whole.data[i]);
    free(conv);
    free(text);

    /* Multi-line data, comments, other fields, "data:" without a space, a last event without its
     * blank line. */
    {
        static struct sse_seen s;
        const char *t = ": keep-alive\nevent: message\ndata: a\ndata:b\nid: 7\n\n\ndata: last";

        fp_sse_reset(&sse);
        check_int(fp_sse_feed(&sse, t, strlen(t), on_sse, &s), 0);
        check_int(s.n, 1);
        check_str(s.data[0], "a\nb");
        check_int(fp_sse_finish(&sse, on_sse, &s), 0);
        check_int(s.n, 2);
        check_str(s.data[1], "last");
    }
    fp_sse_fini(&sse);

    /* Bounded: a line over the limit is refused, not grown into. */
    {
        static struct sse_seen s;
        char big[100];

        memset(big, 'x', sizeof(big));
        fp_assert(fp_sse_init(&sse, 32) == 0);
        check_int(fp_sse_feed(&sse, big, sizeof(big), on_sse, &s), -E2BIG);
        fp_sse_reset(&sse);
        /* Data lines that fit one by one but not joined. */
        check_int(
            fp_sse_feed(&sse, STR("data: 0123456789012345\ndata: 0123456789012345\n"), on_sse, &s),
            -E2BIG);
        check_int(s.n, 0);
        fp_sse_fini(&sse);
    }
}

static int feed_stream(struct fp_canary_stream *st, const char *name)
{
    struct fp_sse sse;
    size_t len;
    char *text = load(name, &len);
    int content = 0;

    fp_assert(fp_sse_init(&sse, 65536) == 0);
    /* Decode all events first, then interpret (the order the source sees them). */
    {
        static struct sse_seen s;

        s.n = 0;
        fp_assert(fp_sse_feed(&sse, text, len, on_sse, &s) == 0);
        fp_assert(fp_sse_finish(&sse, on_sse, &s) == 0);
        for (size_t i = 0; i < s.n; i++) {
            int r = fp_canary_stream_event(st, s.data[i], strlen(s.data[i]));

            fp_assert(r >= 0);
            content += r == FP_CANARY_EVENT_CONTENT;
        }
    }
    fp_sse_fini(&sse);
    free(text);
    return content;
}

static void test_canary_stream(void)
{
    struct fp_canary_stream st;
    json_t *root;
    char *body;

    fp_canary_stream_init(&st, FP_CANARY_COMPLETION);
    check_int(feed_stream(&st, "completion-stream.txt"), 4);
    check_int(st.content_events, 4);
    check_int(st.tokens, 5);
    check(st.done && !st.failed);

    fp_canary_stream_init(&st, FP_CANARY_CHAT);
    check_int(feed_stream(&st, "chat-stream.txt"), 3);
    check_int(st.tokens, 4);
    check(st.done && !st.failed);

    fp_canary_stream_init(&st, FP_CANARY_COMPLETION);
    check_int(feed_stream(&st, "completion-empty.txt"), 0);
    check_int(st.tokens, 1);
    check(st.done);

    fp_canary_stream_init(&st, FP_CANARY_COMPLETION);
    check_int(feed_stream(&st, "completion-error.txt"), 1);
    check(st.failed && !st.done);
    check_str(st.message, "Context size has been exceeded.");

    /* A reasoning model's first tokens; a malformed event; [DONE] only ends a chat stream. */
    fp_canary_stream_init(&st, FP_CANARY_CHAT);
    check_int(fp_canary_stream_event(
                  &st, STR("{\"choices\":[{\"delta\":{\"reasoning_content\":\"Hm\"}}]}")),
              FP_CANARY_EVENT_CONTENT);
    check_int(fp_canary_stream_event(&st, STR("{nope")), -EINVAL);
    check_int(st.tokens, -1);
    fp_canary_stream_init(&st, FP_CANARY_COMPLETION);
    check_int(fp_canary_stream_event(&st, STR("[DONE]")), -EINVAL);

    /* The request bodies, read back. */
    body = fp_canary_request_body(FP_CANARY_COMPLETION, "Hi \"there\"", 8, NULL);
    fp_assert(body != NULL);
    root = json_loads(body, 0, NULL);
    fp_assert(root != NULL);
    check_str(json_string_value(json_object_get(root, "prompt")), "Hi \"there\"");
    check_int(json_integer_value(json_object_get(root, "n_predict")), 8);
    check(json_is_true(json_object_get(root, "stream")));
    check(json_is_false(json_object_get(root, "cache_prompt")));
    json_decref(root);
    free(body);
    body = fp_canary_request_body(FP_CANARY_CHAT, "Hi", 4, NULL);
    fp_assert(body != NULL);
    check_str(body,
              "{\"model\":\"default\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
              "\"max_tokens\":4,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    free(body);
    check(fp_canary_request_body(FP_CANARY_COMPLETION, "\xff\xfe", 8, NULL) == NULL);
    check_str(fp_canary_endpoint_path(FP_CANARY_CHAT), "/v1/chat/completions");
}

static void test_pending(void)
{
    static struct fp_pending_events q;
    static struct capture c;
    struct fp_emitter e;
    char msg[16];

    capture_init(&c, &e);
    for (int i = 0; i < FP_PENDING_MAX_EVENTS + 8; i++) {
        const struct fp_label a = {"i", msg};

        (void)snprintf(msg, sizeof(msg), "%d", i);
        fp_pending_push(&q, FP_SEVERITY_INFO, "k", msg, &a, 1);
    }
    check_int(fp_pending_emit(&q, &e), 8);
    check_int(c.n_ev, FP_PENDING_MAX_EVENTS);
    check_str(c.evs[0].message, "8"); /* the oldest were dropped */
    check_str(attr(&c.evs[FP_PENDING_MAX_EVENTS - 1], "i"), "39");
    check_int(fp_pending_emit(&q, &e), 0);
    check_int(c.n_ev, FP_PENDING_MAX_EVENTS);
}

/* --- the sources end to end ------------------------------------------------------------------- */

static void test_disabled(void)
{
    const struct fp_sampler_env none = {.procfs = "/proc", .sysfs = "/sys"};
    struct fp_sampler_env env = none;
    void *ctx = NULL;

    check_int(fp_sampler_llama_server.open(&none, &ctx), FP_SAMPLER_DISABLED);
    check_int(fp_sampler_canary.open(&none, &ctx), FP_SAMPLER_DISABLED);
    env.llama_server_url = "http://127.0.0.1:1";
    check_int(fp_sampler_canary.open(&env, &ctx), FP_SAMPLER_DISABLED); /* interval 0 */
    env.llama_server_url = NULL;
    env.canary_interval_ms = 1000;
    check_int(fp_sampler_canary.open(&env, &ctx), FP_SAMPLER_DISABLED); /* no URL */
    check(ctx == NULL);

    env.llama_server_url = "https://127.0.0.1:8080";
    check_int(fp_sampler_llama_server.open(&env, &ctx), -EPROTONOSUPPORT);
    env.llama_server_url = "http://";
    check_int(fp_sampler_llama_server.open(&env, &ctx), -EINVAL);
    env.llama_server_url = "http://127.0.0.1:8080";
    env.api_key = "a\r\nX-Evil: 1";
    check_int(fp_sampler_llama_server.open(&env, &ctx), -EINVAL);
    check(ctx == NULL);

    /* Opens and closes at once, with nothing listening, without a round. */
    env.llama_server_url = "http://127.0.0.1:1/prefix/";
    env.api_key = NULL;
    check_int(fp_sampler_llama_server.open(&env, &ctx), 0);
    fp_sampler_llama_server.close(&ctx);
    check(ctx == NULL);
    fp_sampler_llama_server.close(NULL);
    fp_sampler_canary.close(&ctx);
}

static void set_metrics(struct fake *f, const char *body, const char *start)
{
    pthread_mutex_lock(&f->lock);
    f->metrics_body = body;
    f->start_time = start;
    f->metrics_status = 200;
    pthread_mutex_unlock(&f->lock);
}

static void test_llama_server(void)
{
    static struct fake f;
    static struct capture c;
    struct fp_emitter e;
    struct fp_sampler_env env = {.procfs = "/proc", .sysfs = "/sys"};
    char *m1 = load("metrics-1.txt", NULL), *m2 = load("metrics-2.txt", NULL);
    char *mr = load("metrics-restarted.txt", NULL), *m3 = load("metrics-3.txt", NULL);
    char *slots = load("slots.json", NULL), *props = load("props.json", NULL);
    char *loading = load("health-loading.json", NULL);
    const struct fp_sampler_ops *ops = &fp_sampler_llama_server;
    const struct evrec *ev;
    unsigned hits;
    void *ctx = NULL;

    fake_start(&f);
    pthread_mutex_lock(&f.lock);
    f.slots_body = slots;
    f.props_body = props;
    pthread_mutex_unlock(&f.lock);
    set_metrics(&f, m1, "1718000000");
    capture_init(&c, &e);
    env.llama_server_url = f.url;
    env.api_key = "sekret";
    env.scrape_timeout_ms = 2000;
    fp_assert(fp_llama_server_open_period(&env, 50, &ctx) == 0);

    /* Everything in: health, counters, slots, identity. The first snapshot gives no rate. */
    rounds_until(ops, ctx, &c, &e, has_metric, &(struct want){.metric = "llamacpp_context_size"},
                 "/props");
    rounds_until(ops, ctx, &c, &e, has_metric,
                 &(struct want){.metric = "llamacpp_prompt_tokens_total"}, "/metrics");
    expect(&c, "llamacpp_up", FP_METRIC_GAUGE, 1);
    expect(&c, "llamacpp_loading", FP_METRIC_GAUGE, 0);
    expect(&c, "llamacpp_prompt_tokens_total", FP_METRIC_COUNTER, 1200);
    expect(&c, "llamacpp_prompt_seconds_total", FP_METRIC_COUNTER, 2.5);
    expect(&c, "llamacpp_tokens_predicted_total", FP_METRIC_COUNTER, 3400);
    expect(&c, "llamacpp_tokens_predicted_seconds_total", FP_METRIC_COUNTER, 68);
    expect(&c, "llamacpp_n_decode_total", FP_METRIC_COUNTER, 3500);
    expect(&c, "llamacpp_requests_processing", FP_METRIC_GAUGE, 1);
    expect(&c, "llamacpp_requests_deferred", FP_METRIC_GAUGE, 0);
    expect(&c, "llamacpp_slots_total", FP_METRIC_GAUGE, 2);
    expect(&c, "llamacpp_slots_busy", FP_METRIC_GAUGE, 1);
    expect(&c, "llamacpp_context_size", FP_METRIC_GAUGE, 4096);
    check(find(&c, "llamacpp_prompt_tokens_per_second", "") == NULL);
    check(find(&c, "llamacpp_generation_tokens_per_second", "") == NULL);
    check_str(info(&c, "runtime"), "llama.cpp");
    check_str(info(&c, "runtime_version"), "b6590-4ae88d07");
    check_str(info(&c, "model"), "Qwen2.5-0.5B-Instruct-Q4_K_M");
    check_str(info(&c, "quant"), "Q4_K - Medium");
    ev = event_of(&c, "runtime_health", 0);
    fp_assert(ev != NULL);
    check_str(attr(ev, "state"), "ok");
    check_str(attr(ev, "reason"), "ok");
    check_int(ev->severity, FP_SEVERITY_INFO);
    pthread_mutex_lock(&f.lock);
    check_str(f.last_auth, "Bearer sekret");
    pthread_mutex_unlock(&f.lock);

    /* A second snapshot: rates from the deltas of the _total counters. */
    set_metrics(&f, m2, "1718000000");
    rounds_until(ops, ctx, &c, &e, has_value,
                 &(struct want){"llamacpp_prompt_tokens_total", NULL, 1712}, "metrics-2");
    expect(&c, "llamacpp_prompt_tokens_per_second", FP_METRIC_GAUGE,
           (1712.0 - 1200.0) / (3.3 - 2.5));
    expect(&c, "llamacpp_generation_tokens_per_second", FP_METRIC_GAUGE,
           (3656.0 - 3400.0) / (73.12 - 68.0));
    expect(&c, "llamacpp_requests_deferred", FP_METRIC_GAUGE, 2);
    /* The same snapshot again: no new rate. */
    round_once(ops, ctx, &c, &e);
    sleep_ms(120);
    round_once(ops, ctx, &c, &e);
    check(find(&c, "llamacpp_prompt_tokens_per_second", "") == NULL);

    /* Counters went down (a restart the header did not tell): that delta is skipped... */
    set_metrics(&f, mr, "1718000000");
    rounds_until(ops, ctx, &c, &e, has_value,
                 &(struct want){"llamacpp_prompt_tokens_total", NULL, 40}, "metrics-restarted");
    check(find(&c, "llamacpp_prompt_tokens_per_second", "") == NULL);
    check(find(&c, "llamacpp_generation_tokens_per_second", "") == NULL);
    /* ...and the next one counts from the new base. */
    set_metrics(&f, m3, "1718000000");
    rounds_until(ops, ctx, &c, &e, has_value,
                 &(struct want){"llamacpp_prompt_tokens_total", NULL, 104}, "metrics-3");
    expect(&c, "llamacpp_prompt_tokens_per_second", FP_METRIC_GAUGE, (104.0 - 40.0) / (0.2 - 0.1));
    expect(&c, "llamacpp_generation_tokens_per_second", FP_METRIC_GAUGE,
           (48.0 - 16.0) / (1.04 - 0.4));
    /* A restart the counters hide (they grew past the old ones) but the start time tells. */
    set_metrics(&f, m2, "1718000500");
    rounds_until(ops, ctx, &c, &e, has_value,
                 &(struct want){"llamacpp_prompt_tokens_total", NULL, 1712}, "restart header");
    check(find(&c, "llamacpp_prompt_tokens_per_second", "") == NULL);

    /* Started without --metrics: noted once, not asked again every scrape. */
    pthread_mutex_lock(&f.lock);
    f.metrics_status = 404;
    pthread_mutex_unlock(&f.lock);
    rounds_until(ops, ctx, &c, &e, has_event,
                 &(struct want){.metric = "runtime_metrics_unavailable"}, "the /metrics 404 event");
    ev = event_of(&c, "runtime_metrics_unavailable", 0);
    check_str(attr(ev, "http_status"), "404");
    pthread_mutex_lock(&f.lock);
    hits = f.metrics_hits;
    pthread_mutex_unlock(&f.lock);
    for (int i = 0; i < 10; i++) {
        sleep_ms(40);
        round_once(ops, ctx, &c, &e);
    }
    pthread_mutex_lock(&f.lock);
    check_int(f.metrics_hits, hits);
    pthread_mutex_unlock(&f.lock);
    check(find(&c, "llamacpp_prompt_tokens_total", "") == NULL);
    expect(&c, "llamacpp_up", FP_METRIC_GAUGE, 1);
    expect(&c, "llamacpp_slots_total", FP_METRIC_GAUGE, 2);
    check_int(count_events(&c, "runtime_metrics_unavailable"), 1);

    /* Loading (503 "Loading model"): up 0, loading 1, one event. */
    pthread_mutex_lock(&f.lock);
    f.health_status = 503;
    f.health_body = loading;
    pthread_mutex_unlock(&f.lock);
    rounds_until(ops, ctx, &c, &e, has_value, &(struct want){"llamacpp_loading", NULL, 1},
                 "loading");
    expect(&c, "llamacpp_up", FP_METRIC_GAUGE, 0);
    check(find(&c, "llamacpp_slots_total", "") == NULL);
    ev = event_of(&c, "runtime_health", 1);
    fp_assert(ev != NULL);
    check_str(attr(ev, "state"), "loading");
    check_str(attr(ev, "reason"), "Loading model");

    /* The server goes away: up 0, loading 0, a "down" event (refused; or closed when it went
     * mid-request). */
    fake_stop(&f);
    rounds_until(ops, ctx, &c, &e, has_event,
                 &(struct want){.metric = "runtime_health", .labels = "state=down"}, "down");
    round_once(ops, ctx, &c, &e);
    expect(&c, "llamacpp_up", FP_METRIC_GAUGE, 0);
    expect(&c, "llamacpp_loading", FP_METRIC_GAUGE, 0);
    ev = event_of(&c, "runtime_health", 2);
    fp_assert(ev != NULL);
    check_str(attr(ev, "state"), "down");
    check(strcmp(attr(ev, "reason"), "refused") == 0 || strcmp(attr(ev, "reason"), "closed") == 0);
    check_int(ev->severity, FP_SEVERITY_WARNING);
    sleep_ms(150);
    round_once(ops, ctx, &c, &e);
    check_int(count_events(&c, "runtime_health"), 3); /* one per change, not per scrape */

    ops->close(&ctx);
    check(ctx == NULL);
    free(m1);
    free(m2);
    free(mr);
    free(m3);
    free(slots);
    free(props);
    free(loading);
}

/* Runs one canary source against url until a request ends with `outcome`; c holds the round in
 * which it was counted and every event. */
static void run_canary(const struct fp_sampler_env *env, struct capture *c, const char *outcome)
{
    struct fp_emitter e;
    char labels[64];
    void *ctx = NULL;

    capture_init(c, &e);
    fp_assert(fp_sampler_canary.open(env, &ctx) == 0);
    (void)snprintf(labels, sizeof(labels), "outcome=%s", outcome);
    rounds_until(&fp_sampler_canary, ctx, c, &e, has_metric,
                 &(struct want){.metric = "llm_canary_requests_total", .labels = labels}, outcome);
    fp_sampler_canary.close(&ctx);
    check(ctx == NULL);
}

static void check_ok_canary(const struct capture *c, const char *endpoint, int tokens)
{
    double ttft = value_of(c, "llm_canary_time_to_first_token_seconds", "");
    double dur = value_of(c, "llm_canary_duration_seconds", "");
    double tpot = value_of(c, "llm_canary_time_per_output_token_seconds", "");
    double tps = value_of(c, "llm_canary_generation_tokens_per_second", "");
    const struct evrec *ev = event_of(c, "canary", 0);
    char want[16];

    check(ttft > 0 && ttft < 5);
    /* The double sends one SSE event every 3 ms: the rest of the answer comes later. */
    check(dur >= ttft + 0.003);
    check_near(tpot * (tokens - 1), dur - ttft, 1e-9);
    check_near(tps * tpot, 1.0, 1e-9);
    fp_assert(ev != NULL);
    check_str(attr(ev, "outcome"), "ok");
    check_str(attr(ev, "endpoint"), endpoint);
    check_str(attr(ev, "http_status"), "200");
    (void)snprintf(want, sizeof(want), "%d", tokens);
    check_str(attr(ev, "tokens"), want);
    check(attr(ev, "ttft_ms") != NULL && attr(ev, "duration_ms") != NULL);
    check_int(ev->severity, FP_SEVERITY_INFO);
}

static void test_canary(void)
{
    static struct fake f;
    static struct capture c;
    struct fp_sampler_env env = {
        .procfs = "/proc",
        .sysfs = "/sys",
        .canary_interval_ms = 100,
        .canary_prompt = "Say hello in one short sentence.",
        .canary_max_tokens = 8,
        .canary_timeout_ms = 3000,
        .api_key = "k1",
    };
    char *completion = load("completion-stream.txt", NULL), *chat = load("chat-stream.txt", NULL);
    char *empty = load("completion-empty.txt", NULL), *err = load("completion-error.txt", NULL);
    char *e500 = load("error-500.json", NULL);
    char url[64];
    const struct evrec *ev;
    json_t *body;

    fake_start(&f);
    env.llama_server_url = f.url;

    /* llama.cpp /completion: tokens from the final chunk (5: four with text, then EOS). */
    pthread_mutex_lock(&f.lock);
    f.gen_body = completion;
    pthread_mutex_unlock(&f.lock);
    run_canary(&env, &c, "ok");
    check_ok_canary(&c, "completion", 5);
    pthread_mutex_lock(&f.lock);
    check_str(f.last_path, "/completion");
    check_str(f.last_auth, "Bearer k1");
    body = json_loads(f.last_body, 0, NULL);
    pthread_mutex_unlock(&f.lock);
    fp_assert(body != NULL);
    check_str(json_string_value(json_object_get(body, "prompt")),
              "Say hello in one short sentence.");
    check_int(json_integer_value(json_object_get(body, "n_predict")), 8);
    check(json_is_false(json_object_get(body, "cache_prompt")));
    json_decref(body);

    /* OpenAI-compatible chat: tokens from usage (4), with --openai taking precedence. */
    pthread_mutex_lock(&f.lock);
    f.gen_body = chat;
    pthread_mutex_unlock(&f.lock);
    env.openai_url = f.url;
    env.openai_model = "tiny";
    run_canary(&env, &c, "ok");
    check_ok_canary(&c, "chat", 4);
    pthread_mutex_lock(&f.lock);
    check_str(f.last_path, "/v1/chat/completions");
    body = json_loads(f.last_body, 0, NULL);
    pthread_mutex_unlock(&f.lock);
    fp_assert(body != NULL);
    check_str(json_string_value(json_object_get(body, "model")), "tiny");
    check_int(json_integer_value(json_object_get(body, "max_tokens")), 8);
    check(json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage")));
    json_decref(body);
    env.openai_url = NULL;
    env.openai_model = NULL;

    /* 500 with llama.cpp's error body. */
    pthread_mutex_lock(&f.lock);
    f.gen_status = 500;
    f.gen_body = e500;
    pthread_mutex_unlock(&f.lock);
    run_canary(&env, &c, "http_error");
    ev = event_of(&c, "canary", 0);
    fp_assert(ev != NULL);
    check_str(attr(ev, "http_status"), "500");
    check_str(ev->message, "http 500: boom");
    check_int(ev->severity, FP_SEVERITY_WARNING);
    check(find(&c, "llm_canary_time_to_first_token_seconds", "") == NULL);

    /* A stream that ends without any text. */
    pthread_mutex_lock(&f.lock);
    f.gen_status = 200;
    f.gen_body = empty;
    pthread_mutex_unlock(&f.lock);
    run_canary(&env, &c, "empty");
    ev = event_of(&c, "canary", 0);
    fp_assert(ev != NULL);
    check_str(attr(ev, "tokens"), "1");
    check(attr(ev, "ttft_ms") == NULL);

    /* An error object mid-stream. */
    pthread_mutex_lock(&f.lock);
    f.gen_body = err;
    pthread_mutex_unlock(&f.lock);
    run_canary(&env, &c, "error");
    ev = event_of(&c, "canary", 0);
    fp_assert(ev != NULL);
    check_str(ev->message, "error in stream: Context size has been exceeded.");

    /* No answer in time; the ticks meanwhile are skipped, not stacked. */
    pthread_mutex_lock(&f.lock);
    f.gen_mode = FAKE_HANG;
    pthread_mutex_unlock(&f.lock);
    env.canary_timeout_ms = 350;
    run_canary(&env, &c, "timeout");
    check(value_of(&c, "llm_canary_skipped_total", "") >= 1);
    check_double(value_of(&c, "llm_canary_requests_total", "outcome=timeout"), 1);
    ev = event_of(&c, "canary", 0);
    fp_assert(ev != NULL);
    check_str(ev->message, "no complete answer within 350 ms");
    fake_stop(&f);

    /* Nothing listening. */
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)closed_port());
    env.llama_server_url = url;
    run_canary(&env, &c, "refused");
    ev = event_of(&c, "canary", 0);
    fp_assert(ev != NULL);
    check_str(attr(ev, "http_status"), "0");

    free(completion);
    free(chat);
    free(empty);
    free(err);
    free(e500);
}

int main(void)
{
    /* The test double's base is used from two threads (fake_stop activates its stop event). */
    fp_assert(evthread_use_pthreads() == 0);
    signal(SIGPIPE, SIG_IGN);

    test_prom_parse();
    test_metrics_parse();
    test_rates();
    test_health();
    test_copy_text();
    test_slots_props();
    test_sse();
    test_canary_stream();
    test_pending();
    test_disabled();
    test_llama_server();
    test_canary();
    fp_test_end();
}
