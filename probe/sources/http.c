/* The HTTP runner (http.h): a thread, a libevent base, one evhttp client connection and the
 * timers of one source that talks to an inference runtime.
 *
 * Shape. The thread runs event_base_loop until the owner activates stop_ev (event_active is
 * thread-safe once evthread_use_pthreads ran, which fp_http_runner_new makes sure of), whose
 * callback breaks the loop; destroy then joins and frees. Everything else (tick, requests,
 * deadlines) happens on the thread.
 *
 * One call at a time, and its outcome always reaches on_done exactly once, from a callback of our
 * own (finish_ev, deadline_ev, abort_ev), never from inside libevent's request callbacks. That
 * matters because libevent may run a request's callback synchronously inside evhttp_make_request
 * (a failed name lookup calls it at once), frees the request right after the callback returns,
 * and must not see the request cancelled from inside its chunk callback. So libevent's callbacks
 * only record (status, body copy, captured header) and activate finish_ev.
 *
 * libevent 2.1 facts this relies on (http.c): a connect failure calls the request callback with a
 * request whose response code is 0 and no error callback; other failures call the error callback
 * and then the request callback with NULL; evhttp_cancel_request calls only the error callback
 * (EVREQ_HTTP_REQUEST_CANCEL), synchronously; evhttp_connection_free drops queued requests without
 * calling anything; a body over evhttp_connection_set_max_body_size fails with
 * EVREQ_HTTP_DATA_TOO_LONG, chunked or not.
 *
 * Timeouts: our deadline_ev is the one that counts (it covers connect to last byte; libevent's own
 * timeouts are per read/write inactivity). libevent's is set a second later as a backstop, so a
 * slow connect is reported as a timeout by us rather than as a connect failure by it.
 *
 * Every request says "Connection: close": a kept-alive connection the server closes while idle
 * races our next request into a spurious failure (a false "runtime down"), and one TCP handshake
 * per request to a runtime that is almost always on loopback costs nothing that matters.
 *
 * Rejected: libcurl (a new dependency, and its multi interface would still need this thread);
 * a blocking client in sample() (stalls the agent for up to the timeout). */
#include "http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "config.h"
#include "llama-parse.h"
#include "log.h"

/* Response headers beyond this fail the call (FP_HTTP_E_PROTOCOL): llama.cpp sends < 1 KiB. */
#define MAX_HEADERS_BYTES (16 * 1024)

/* libevent's own inactivity timeout sits this far behind our deadline (see the top comment). */
#define BACKSTOP_MS 1000

/* A captured response header value is cut here: we only capture short ones (a start time). */
#define MAX_CAPTURED_BYTES 128

struct call_state {
    bool active;                /**< from fp_http_runner_call until on_done is called */
    bool in_flight;             /**< libevent holds req: no callback of it has run yet */
    bool finished;              /**< libevent is done with it; finish_ev will deliver */
    struct evhttp_request *req; /**< valid while in_flight */
    int lib_error;              /**< enum evhttp_request_error from the error callback, -1: none */
    int result;                 /**< enum fp_http_result, once finished */
    int status;                 /**< HTTP status, 0: none */
    int abort_result;           /**< non-zero: on_data asked to stop; abort_ev will cancel */
    char *body;                 /**< collected body (malloc, NUL-terminated), NULL: none */
    size_t body_len;
    char *capture_header; /**< header name to capture (malloc), NULL: none */
    char header[MAX_CAPTURED_BYTES];
    bool have_header;
    int (*on_data)(void *userdata, int status, const char *data, size_t len);
    void (*on_done)(void *userdata, const struct fp_http_response *res);
    void *userdata;
};

struct fp_http_runner {
    pthread_mutex_t lock; /**< the source's result area; see http.h */
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct event *stop_ev;     /**< activated by the owner: breaks the loop */
    struct event *tick_ev;     /**< the source's periodic tick */
    struct event *deadline_ev; /**< the in-flight call's timeout */
    struct event *abort_ev;    /**< activated from a chunk callback: cancel outside it */
    struct event *finish_ev;   /**< activated from libevent's callbacks: deliver outside them */
    struct evhttp_connection *conn;
    char *host_header;     /**< "host:port" as the URL had it (IPv6 in brackets) */
    char *prefix;          /**< the URL's path without a trailing '/', may be "" */
    char *auth;            /**< "Bearer KEY", or NULL */
    int64_t first_tick_ms; /**< delay of the first tick after start */
    int64_t period_ms;     /**< between ticks */
    void (*tick)(void *userdata);
    void *userdata;
    struct call_state call;
};

/* --- process-wide libevent setup -------------------------------------------------------------- */

static pthread_once_t libevent_once = PTHREAD_ONCE_INIT;
static int libevent_once_result;

/* libevent prints warnings (a failed connect) on stderr by default; the probe library logs only
 * through common/log, at debug. */
static void libevent_log(int severity, const char *msg)
{
    fp_log_debug("probe-http", "libevent: %s", msg);
}

/* Both settings are process-wide. evthread_use_pthreads only gives bases created afterwards
 * their locks, so it cannot disturb a host's existing bases; the log callback does replace a
 * host's, which is the price of a silent library (fleetpulse_set_logger can route ours). */
static void libevent_init(void)
{
    libevent_once_result = evthread_use_pthreads();
    event_set_log_callback(libevent_log);
}

/* --- small helpers ---------------------------------------------------------------------------- */

static struct timeval ms_to_tv(int64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

const char *fp_http_result_name(int result)
{
    switch (result) {
    case FP_HTTP_DONE:
        return "ok";
    case FP_HTTP_E_CONNECT:
        return "refused";
    case FP_HTTP_E_TIMEOUT:
        return "timeout";
    case FP_HTTP_E_TOO_LARGE:
        return "too_large";
    case FP_HTTP_E_CLOSED:
        return "closed";
    case FP_HTTP_E_PROTOCOL:
        return "protocol";
    case FP_HTTP_E_ABORTED:
        return "aborted";
    default:
        return "error";
    }
}

static int map_lib_error(int e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return FP_HTTP_E_TIMEOUT;
    case EVREQ_HTTP_DATA_TOO_LONG:
        return FP_HTTP_E_TOO_LARGE;
    case EVREQ_HTTP_INVALID_HEADER:
        return FP_HTTP_E_PROTOCOL;
    case EVREQ_HTTP_EOF:
    case EVREQ_HTTP_BUFFER_ERROR:
    default:
        return FP_HTTP_E_CLOSED;
    }
}

/* --- delivering a call's outcome ------------------------------------------------------------- */

/* Hands the finished call to on_done with the runner already idle, so on_done may start the next
 * call. Runs only from our own event callbacks. */
static void deliver(struct fp_http_runner *r, int result)
{
    struct call_state *c = &r->call;
    void (*on_done)(void *, const struct fp_http_response *) = c->on_done;
    void *userdata = c->userdata;
    char *body = c->body;
    char header[MAX_CAPTURED_BYTES];
    bool have_header = c->have_header;
    struct fp_http_response res;

    (void)event_del(r->deadline_ev);
    memcpy(header, c->header, sizeof(header));
    res = (struct fp_http_response){
        .result = c->abort_result != 0 ? c->abort_result : result,
        .status = c->status,
        .body = body != NULL ? body : "",
        .body_len = body != NULL ? c->body_len : 0,
        .header = have_header ? header : NULL,
    };
    free(c->capture_header);
    memset(c, 0, sizeof(*c));
    c->lib_error = -1;
    on_done(userdata, &res);
    free(body);
}

/* libevent is done with the request; ours to deliver (see the top comment for why later). */
static void on_finish(evutil_socket_t fd, short what, void *arg)
{
    struct fp_http_runner *r = arg;

    if (r->call.active && r->call.finished)
        deliver(r, r->call.result);
}

/* Cancels the in-flight request (from our own callback, never libevent's) and delivers. */
static void cancel_and_deliver(struct fp_http_runner *r, int result)
{
    struct evhttp_request *req = r->call.req;

    r->call.in_flight = false;
    r->call.req = NULL;
    /* Calls only our error callback, with EVREQ_HTTP_REQUEST_CANCEL, and frees req. */
    evhttp_cancel_request(req);
    deliver(r, result);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct fp_http_runner *r = arg;

    if (r->call.active && r->call.in_flight)
        cancel_and_deliver(r, FP_HTTP_E_TIMEOUT);
}

static void on_abort(evutil_socket_t fd, short what, void *arg)
{
    struct fp_http_runner *r = arg;

    /* abort_result is cleared for each new call: a stale activation finds 0 and does nothing. */
    if (r->call.active && r->call.in_flight && r->call.abort_result != 0)
        cancel_and_deliver(r, r->call.abort_result);
}

/* --- libevent's request callbacks ------------------------------------------------------------ */

static void on_request_error(enum evhttp_request_error error, void *arg)
{
    struct fp_http_runner *r = arg;

    if (error == EVREQ_HTTP_REQUEST_CANCEL)
        return; /* our own cancel: the canceller delivers */
    r->call.lib_error = (int)error;
}

static void capture(struct fp_http_runner *r, struct evhttp_request *req)
{
    const char *v;

    if (r->call.capture_header == NULL)
        return;
    v = evhttp_find_header(evhttp_request_get_input_headers(req), r->call.capture_header);
    if (v == NULL)
        return;
    (void)snprintf(r->call.header, sizeof(r->call.header), "%s", v);
    r->call.have_header = true;
}

static void on_request_done(struct evhttp_request *req, void *arg)
{
    struct fp_http_runner *r = arg;
    struct call_state *c = &r->call;

    if (!c->in_flight)
        return;
    c->in_flight = false;
    c->req = NULL;
    if (req == NULL) {
        c->result = map_lib_error(c->lib_error);
    } else if (evhttp_request_get_response_code(req) == 0) {
        /* A connect failure, or a response line libevent could not read. */
        c->result = c->lib_error >= 0 ? map_lib_error(c->lib_error) : FP_HTTP_E_CONNECT;
    } else {
        c->result = FP_HTTP_DONE;
        c->status = evhttp_request_get_response_code(req);
        capture(r, req);
        if (c->on_data == NULL) {
            struct evbuffer *in = evhttp_request_get_input_buffer(req);
            size_t n = evbuffer_get_length(in);

            /* Bounded by max_body_size: libevent failed the request before it got larger. */
            c->body = malloc(n + 1);
            if (c->body == NULL) {
                c->result = FP_HTTP_E_TOO_LARGE;
            } else {
                if (n > 0)
                    (void)evbuffer_remove(in, c->body, n);
                c->body[n] = '\0';
                c->body_len = n;
            }
        }
    }
    c->finished = true;
    event_active(r->finish_ev, 0, 0);
}

static void on_request_chunk(struct evhttp_request *req, void *arg)
{
    struct fp_http_runner *r = arg;
    struct call_state *c = &r->call;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const unsigned char *data;
    int rc;

    if (!c->in_flight || c->abort_result != 0 || c->on_data == NULL || n == 0)
        return;
    if (c->status == 0) {
        c->status = evhttp_request_get_response_code(req);
        capture(r, req);
    }
    data = evbuffer_pullup(in, (ev_ssize_t)n);
    if (data == NULL)
        rc = -ENOMEM;
    else
        rc = c->on_data(c->userdata, c->status, (const char *)data, n);
    /* libevent drains the buffer after we return. Cancelling here would free req under it. */
    if (rc != 0) {
        c->abort_result = FP_HTTP_E_ABORTED;
        event_active(r->abort_ev, 0, 0);
    }
}

/* --- calls ------------------------------------------------------------------------------------ */

static int add_headers(struct fp_http_runner *r, struct evhttp_request *req,
                       const struct fp_http_call *call)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int bad = 0;

    bad |= evhttp_add_header(h, "Host", r->host_header);
    bad |= evhttp_add_header(h, "User-Agent", "fleetpulse-probe/" FP_VERSION);
    bad |= evhttp_add_header(
        h, "Accept", call->on_data != NULL ? "text/event-stream" : "application/json, text/plain");
    bad |= evhttp_add_header(h, "Connection", "close");
    if (r->auth != NULL)
        bad |= evhttp_add_header(h, "Authorization", r->auth);
    if (call->body != NULL)
        bad |= evhttp_add_header(h, "Content-Type", "application/json");
    return bad != 0 ? -EINVAL : 0;
}

int fp_http_runner_call(struct fp_http_runner *r, const struct fp_http_call *call)
{
    struct call_state *c = &r->call;
    enum evhttp_cmd_type type;
    struct evhttp_request *req;
    struct timeval tv;
    char *uri = NULL;
    size_t n;
    int ret;

    if (c->active)
        return -EBUSY;
    if (strcmp(call->method, "GET") == 0)
        type = EVHTTP_REQ_GET;
    else if (strcmp(call->method, "POST") == 0)
        type = EVHTTP_REQ_POST;
    else
        return -EINVAL;

    n = strlen(r->prefix) + strlen(call->path) + 1;
    uri = malloc(n);
    if (uri == NULL)
        return -ENOMEM;
    (void)snprintf(uri, n, "%s%s", r->prefix, call->path);

    req = evhttp_request_new(on_request_done, r);
    if (req == NULL) {
        free(uri);
        return -ENOMEM;
    }
    evhttp_request_set_error_cb(req, on_request_error);
    if (call->on_data != NULL)
        evhttp_request_set_chunked_cb(req, on_request_chunk);
    ret = add_headers(r, req, call);
    if (ret == 0 && call->body != NULL &&
        evbuffer_add(evhttp_request_get_output_buffer(req), call->body, strlen(call->body)) != 0)
        ret = -ENOMEM;
    memset(c, 0, sizeof(*c));
    c->lib_error = -1;
    if (ret == 0 && call->capture_header != NULL) {
        c->capture_header = strdup(call->capture_header);
        if (c->capture_header == NULL)
            ret = -ENOMEM;
    }
    if (ret < 0) {
        evhttp_request_free(req);
        free(c->capture_header);
        c->capture_header = NULL;
        free(uri);
        return ret;
    }

    tv = ms_to_tv(call->timeout_ms + BACKSTOP_MS);
    evhttp_connection_set_timeout_tv(r->conn, &tv);
    evhttp_connection_set_max_body_size(r->conn, (ev_ssize_t)call->max_body_bytes);
    c->active = true;
    c->in_flight = true;
    c->req = req;
    c->on_data = call->on_data;
    c->on_done = call->on_done;
    c->userdata = call->userdata;
    tv = ms_to_tv(call->timeout_ms);
    (void)evtimer_add(r->deadline_ev, &tv);

    /* May call on_request_done before returning (a failed name lookup); that only records and
     * activates finish_ev, so on_done still runs later, from the loop. */
    if (evhttp_make_request(r->conn, req, type, uri) != 0) {
        /* Only when out of memory in libevent; it freed req then. */
        (void)event_del(r->deadline_ev);
        free(c->capture_header);
        memset(c, 0, sizeof(*c));
        c->lib_error = -1;
        free(uri);
        return -ENOMEM;
    }
    free(uri);
    return 0;
}

bool fp_http_runner_busy(const struct fp_http_runner *r)
{
    return r->call.active;
}

/* --- the thread ------------------------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fp_http_runner *r = arg;
    struct timeval tv = ms_to_tv(r->period_ms);

    /* Re-armed first, so the period runs from tick start to tick start. */
    (void)evtimer_add(r->tick_ev, &tv);
    r->tick(r->userdata);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct fp_http_runner *r = arg;

    (void)event_base_loopbreak(r->base);
}

static void *thread_main(void *arg)
{
    struct fp_http_runner *r = arg;

    (void)event_base_loop(r->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* --- lifecycle -------------------------------------------------------------------------------- */

static int parse_url(struct fp_http_runner *r, const char *base_url, char **ret_host, int *ret_port)
{
    struct evhttp_uri *uri = evhttp_uri_parse(base_url);
    const char *scheme, *host, *path;
    size_t n;
    int port, ret = 0;

    if (uri == NULL)
        return -EINVAL;
    scheme = evhttp_uri_get_scheme(uri);
    host = evhttp_uri_get_host(uri);
    path = evhttp_uri_get_path(uri);
    port = evhttp_uri_get_port(uri);
    if (scheme == NULL || host == NULL || host[0] == '\0') {
        ret = -EINVAL;
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0) {
        ret = -EPROTONOSUPPORT;
        goto out;
    }
    if (port < 0)
        port = 80;
    n = strlen(host) + 8;
    r->host_header = malloc(n);
    r->prefix = strdup(path != NULL ? path : "");
    /* libevent keeps an IPv6 literal's brackets; the connection wants the bare address. */
    n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']')
        *ret_host = strndup(host + 1, n - 2);
    else
        *ret_host = strdup(host);
    if (r->host_header == NULL || r->prefix == NULL || *ret_host == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    (void)snprintf(r->host_header, strlen(host) + 8, "%s:%d", host, port);
    n = strlen(r->prefix);
    while (n > 0 && r->prefix[n - 1] == '/')
        r->prefix[--n] = '\0';
    *ret_port = port;
out:
    evhttp_uri_free(uri);
    return ret;
}

int fp_http_runner_new(const char *base_url, const char *api_key, int64_t first_tick_ms,
                       int64_t period_ms, void (*tick)(void *userdata), void *userdata,
                       struct fp_http_runner **ret)
{
    struct fp_http_runner *r;
    char *host = NULL;
    int port = 0, err;

    if (base_url == NULL || tick == NULL || period_ms <= 0 || first_tick_ms < 0)
        return -EINVAL;
    if (api_key != NULL && strpbrk(api_key, "\r\n") != NULL)
        return -EINVAL; /* would split the header */
    (void)pthread_once(&libevent_once, libevent_init);
    if (libevent_once_result != 0)
        return -ENOMEM;

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    err = pthread_mutex_init(&r->lock, NULL);
    if (err != 0) {
        free(r);
        return -err;
    }
    r->call.lib_error = -1;
    r->first_tick_ms = first_tick_ms;
    r->period_ms = period_ms;
    r->tick = tick;
    r->userdata = userdata;

    err = parse_url(r, base_url, &host, &port);
    if (err < 0)
        goto fail;
    if (api_key != NULL) {
        size_t n = strlen(api_key) + sizeof("Bearer ");

        r->auth = malloc(n);
        if (r->auth == NULL) {
            err = -ENOMEM;
            goto fail;
        }
        (void)snprintf(r->auth, n, "Bearer %s", api_key);
    }
    err = -ENOMEM;
    r->base = event_base_new();
    if (r->base == NULL)
        goto fail;
    r->stop_ev = event_new(r->base, -1, 0, on_stop, r);
    r->tick_ev = evtimer_new(r->base, on_tick, r);
    r->deadline_ev = evtimer_new(r->base, on_deadline, r);
    r->abort_ev = event_new(r->base, -1, 0, on_abort, r);
    r->finish_ev = event_new(r->base, -1, 0, on_finish, r);
    if (r->stop_ev == NULL || r->tick_ev == NULL || r->deadline_ev == NULL || r->abort_ev == NULL ||
        r->finish_ev == NULL)
        goto fail;
    /* NULL dns base: a host name is resolved with getaddrinfo on this thread at each connect,
     * which blocks only this thread; runtimes are addressed by IP or "localhost" in practice. */
    r->conn = evhttp_connection_base_new(r->base, NULL, host, (unsigned short)port);
    if (r->conn == NULL)
        goto fail;
    evhttp_connection_set_retries(r->conn, 0);
    evhttp_connection_set_max_headers_size(r->conn, MAX_HEADERS_BYTES);
    free(host);
    *ret = r;
    return 0;

fail:
    free(host);
    fp_http_runner_destroy(&r);
    return err;
}

int fp_http_runner_start(struct fp_http_runner *r)
{
    struct timeval tv = ms_to_tv(r->first_tick_ms);
    sigset_t all, old;
    int err;

    (void)evtimer_add(r->tick_ev, &tv);
    /* The thread inherits the mask: no signal is ever delivered to it. */
    sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&r->thread, NULL, thread_main, r);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        (void)event_del(r->tick_ev);
        return -err;
    }
    r->started = true;
    return 0;
}

void fp_http_runner_lock(struct fp_http_runner *r)
{
    (void)pthread_mutex_lock(&r->lock);
}

void fp_http_runner_unlock(struct fp_http_runner *r)
{
    (void)pthread_mutex_unlock(&r->lock);
}

void fp_http_runner_destroy(struct fp_http_runner **rp)
{
    struct fp_http_runner *r = rp != NULL ? *rp : NULL;

    if (r == NULL)
        return;
    if (r->started) {
        event_active(r->stop_ev, 0, 0);
        (void)pthread_join(r->thread, NULL);
    }
    /* The thread is gone: nothing runs callbacks any more. Freeing the connection drops an
     * in-flight request without calling it. */
    if (r->conn != NULL)
        evhttp_connection_free(r->conn);
    if (r->finish_ev != NULL)
        event_free(r->finish_ev);
    if (r->abort_ev != NULL)
        event_free(r->abort_ev);
    if (r->deadline_ev != NULL)
        event_free(r->deadline_ev);
    if (r->tick_ev != NULL)
        event_free(r->tick_ev);
    if (r->stop_ev != NULL)
        event_free(r->stop_ev);
    if (r->base != NULL)
        event_base_free(r->base);
    free(r->call.body);
    free(r->call.capture_header);
    free(r->auth);
    free(r->prefix);
    free(r->host_header);
    (void)pthread_mutex_destroy(&r->lock);
    free(r);
    *rp = NULL;
}

/* --- pending events --------------------------------------------------------------------------- */

static void copy_cut(char *dst, size_t size, const char *src)
{
    /* Cut at a character boundary: these end up in JSON, which refuses half a character. */
    if (src == NULL)
        src = "";
    (void)fp_llama_copy_text(dst, size, src, strlen(src));
}

void fp_pending_push(struct fp_pending_events *q, enum fp_severity severity, const char *kind,
                     const char *message, const struct fp_label *attrs, size_t n_attrs)
{
    struct fp_pending_event *e;

    if (q->n == FP_PENDING_MAX_EVENTS) {
        q->head = (q->head + 1) % FP_PENDING_MAX_EVENTS;
        q->n--;
        q->dropped++;
    }
    e = &q->ev[(q->head + q->n) % FP_PENDING_MAX_EVENTS];
    q->n++;
    e->severity = severity;
    copy_cut(e->kind, sizeof(e->kind), kind);
    copy_cut(e->message, sizeof(e->message), message);
    e->n_attrs = n_attrs < FP_PENDING_MAX_ATTRS ? n_attrs : FP_PENDING_MAX_ATTRS;
    for (size_t i = 0; i < e->n_attrs; i++) {
        copy_cut(e->names[i], sizeof(e->names[i]), attrs[i].name);
        copy_cut(e->values[i], sizeof(e->values[i]), attrs[i].value);
    }
}

int fp_pending_emit(struct fp_pending_events *q, struct fp_emitter *out)
{
    uint64_t dropped = q->dropped;
    int r = 0;

    for (size_t k = 0; k < q->n && r >= 0; k++) {
        const struct fp_pending_event *e = &q->ev[(q->head + k) % FP_PENDING_MAX_EVENTS];
        struct fp_label attrs[FP_PENDING_MAX_ATTRS];

        for (size_t i = 0; i < e->n_attrs; i++)
            attrs[i] = (struct fp_label){e->names[i], e->values[i]};
        r = fp_emit_event(out, e->severity, e->kind, e->message, e->n_attrs ? attrs : NULL,
                          e->n_attrs);
    }
    q->head = 0;
    q->n = 0;
    q->dropped = 0;
    if (r < 0)
        return r;
    return dropped > (uint64_t)INT32_MAX ? INT32_MAX : (int)dropped;
}
