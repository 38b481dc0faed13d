/* Alertmanager v2 push over libevent's HTTP client (see alert-push.h).
 *
 * At most one request is in flight: Alertmanager dedups by label set, so sending the newest full
 * payload is all that matters, and a queue would only replay stale states after an outage. A
 * failed payload is kept and retried after the backoff unless a newer one arrived meanwhile.
 * The connection object is kept across requests; libevent reconnects it as needed. */
#include "alert-push.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "error.h"

struct fp_alert_push {
    struct event_base *base;
    struct evhttp_connection *conn;
    char *path; /**< prefix + "/api/v2/alerts" */
    char host_header[300];
    json_t *waiting;            /**< the newest payload not yet sent; NULL: none */
    json_t *in_flight;          /**< the payload of the request in flight */
    struct evhttp_request *req; /**< in flight; NULL: none */
    struct event *retry;        /**< backoff timer */
    bool retry_armed;
    struct fp_alert_push_stats st;
};

static void start(struct fp_alert_push *p);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct fp_alert_push *p = arg;

    p->retry_armed = false;
    if (p->waiting != NULL)
        start(p);
}

/* The request failed (no connection, timeout, non-2xx): keep its payload for the retry unless a
 * newer one is waiting, and back off. */
static void failed(struct fp_alert_push *p)
{
    struct timeval tv;

    p->st.failed++;
    if (p->waiting == NULL)
        p->waiting = p->in_flight;
    else
        json_decref(p->in_flight);
    p->in_flight = NULL;
    p->st.retry_ms = p->st.retry_ms == 0 ? FP_ALERT_PUSH_RETRY_MIN_MS : 2 * p->st.retry_ms;
    if (p->st.retry_ms > FP_ALERT_PUSH_RETRY_MAX_MS)
        p->st.retry_ms = FP_ALERT_PUSH_RETRY_MAX_MS;
    tv.tv_sec = p->st.retry_ms / 1000;
    tv.tv_usec = (p->st.retry_ms % 1000) * 1000;
    if (evtimer_add(p->retry, &tv) == 0)
        p->retry_armed = true;
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct fp_alert_push *p = arg;
    int status = req != NULL ? evhttp_request_get_response_code(req) : 0;

    p->req = NULL;
    p->st.last_status = status;
    if (status < 200 || status > 299) {
        failed(p);
        return;
    }
    p->st.succeeded++;
    p->st.alerts_sent += json_array_size(p->in_flight);
    p->st.retry_ms = 0;
    json_decref(p->in_flight);
    p->in_flight = NULL;
    if (p->waiting != NULL)
        start(p);
}

static void start(struct fp_alert_push *p)
{
    struct evhttp_request *req;
    struct evkeyvalq *h;
    char *body;

    p->in_flight = p->waiting;
    p->waiting = NULL;
    p->st.requests++;
    body = json_dumps(p->in_flight, JSON_COMPACT);
    req = body != NULL ? evhttp_request_new(on_done, p) : NULL;
    if (req == NULL) {
        free(body);
        failed(p);
        return;
    }
    h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Host", p->host_header) < 0 ||
        evhttp_add_header(h, "Content-Type", "application/json") < 0 ||
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body)) < 0) {
        free(body);
        evhttp_request_free(req);
        failed(p);
        return;
    }
    free(body);
    /* On failure libevent has freed req already. */
    if (evhttp_make_request(p->conn, req, EVHTTP_REQ_POST, p->path) < 0) {
        failed(p);
        return;
    }
    p->req = req;
}

void fp_alert_push_send(struct fp_alert_push *p, json_t *payload)
{
    if (payload == NULL)
        return;
    if (p->waiting != NULL) {
        p->st.superseded++;
        json_decref(p->waiting);
        p->waiting = NULL;
    }
    if (json_array_size(payload) == 0) {
        json_decref(payload);
        return;
    }
    p->waiting = payload;
    if (p->req == NULL && !p->retry_armed)
        start(p);
}

int fp_alert_push_new(struct event_base *base, const char *url, struct fp_alert_push **ret,
                      char *err, size_t err_size)
{
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    struct fp_alert_push *p = NULL;
    const char *scheme, *host, *prefix;
    int port, r = -EINVAL;
    size_t plen;

    scheme = uri != NULL ? evhttp_uri_get_scheme(uri) : NULL;
    host = uri != NULL ? evhttp_uri_get_host(uri) : NULL;
    if (scheme == NULL || strcmp(scheme, "http") != 0 || host == NULL || host[0] == '\0' ||
        strlen(host) > 255 || evhttp_uri_get_query(uri) != NULL ||
        evhttp_uri_get_fragment(uri) != NULL || evhttp_uri_get_userinfo(uri) != NULL) {
        fp_set_err(err, err_size,
                   "invalid Alertmanager URL \"%s\" (expected http://HOST[:PORT][/PREFIX])", url);
        goto out;
    }
    port = evhttp_uri_get_port(uri);
    if (port == -1)
        port = 80;
    if (port <= 0 || port > 65535) {
        fp_set_err(err, err_size, "invalid Alertmanager URL \"%s\": bad port", url);
        goto out;
    }
    r = -ENOMEM;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto oom;
    p->base = base;
    prefix = evhttp_uri_get_path(uri);
    if (prefix == NULL)
        prefix = "";
    plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    p->path = malloc(plen + sizeof("/api/v2/alerts"));
    if (p->path == NULL)
        goto oom;
    memcpy(p->path, prefix, plen);
    memcpy(p->path + plen, "/api/v2/alerts", sizeof("/api/v2/alerts"));
    (void)snprintf(p->host_header, sizeof(p->host_header), "%s:%d", host, port);
    /* No DNS base: a host name is resolved by the system resolver when connecting. Alertmanager
     * is normally addressed by IP or a local name. */
    p->conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
    p->retry = evtimer_new(base, on_retry, p);
    if (p->conn == NULL || p->retry == NULL)
        goto oom;
    evhttp_connection_set_timeout(p->conn, FP_ALERT_PUSH_TIMEOUT_S);
    *ret = p;
    p = NULL;
    r = 0;
    goto out;

oom:
    fp_set_err(err, err_size, "out of memory");
out:
    fp_alert_push_destroy(&p);
    if (uri != NULL)
        evhttp_uri_free(uri);
    return r;
}

void fp_alert_push_stats(const struct fp_alert_push *p, struct fp_alert_push_stats *ret)
{
    *ret = p->st;
}

void fp_alert_push_destroy(struct fp_alert_push **p)
{
    if (p == NULL || *p == NULL)
        return;
    /* Frees a request in flight without calling on_done. */
    if ((*p)->conn != NULL)
        evhttp_connection_free((*p)->conn);
    if ((*p)->retry != NULL)
        event_free((*p)->retry);
    json_decref((*p)->waiting);
    json_decref((*p)->in_flight);
    free((*p)->path);
    free(*p);
    *p = NULL;
}
