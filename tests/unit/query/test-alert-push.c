/* The Alertmanager pusher against an in-process HTTP server on a loopback port: the request's
 * path, headers and body; retries after errors and refused connections; a newer payload
 * replacing one that waits; empty payloads not sent; URLs refused. */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "alert-push.h"

/* The fake Alertmanager: answers with the next status of a script, or holds the request. */
struct fake_am {
    int statuses[8]; /**< answer i-th request with statuses[i]; 0: hold it */
    size_t n_requests;
    struct evhttp_request *held;
    char path[128];
    char content_type[64];
    json_t *last_body; /**< the last request's parsed body */
};

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fake_am *am = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    size_t len = evbuffer_get_length(in);
    int status = am->n_requests < 8 ? am->statuses[am->n_requests] : 200;

    am->n_requests++;
    (void)snprintf(am->path, sizeof(am->path), "%s", evhttp_request_get_uri(req));
    (void)snprintf(am->content_type, sizeof(am->content_type), "%s", ct != NULL ? ct : "");
    json_decref(am->last_body);
    am->last_body = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, NULL);
    check(evhttp_request_get_command(req) == EVHTTP_REQ_POST);
    if (status == 0) {
        am->held = req;
        return;
    }
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", NULL);
}

static struct event_base *base;

/* Runs the loop until cond holds; a hang guard, not a timing check: 20 s and the test fails. */
#define run_until(cond)                                                                            \
    do {                                                                                           \
        int spins_ = 0;                                                                            \
        while (!(cond) && spins_++ < 2000) {                                                       \
            struct timeval tv_ = {0, 10000};                                                       \
            (void)event_base_loopexit(base, &tv_);                                                 \
            (void)event_base_dispatch(base);                                                       \
        }                                                                                          \
        if (!(cond))                                                                               \
            FP_TEST_FAIL("gave up waiting for %s", #cond);                                         \
    } while (0)

/* A JSON array of n alerts named name-0, name-1, ... */
static json_t *payload(const char *name, int n)
{
    json_t *arr = json_array();

    for (int i = 0; i < n; i++) {
        json_t *a = json_pack("{s:{s:s,s:i}}", "labels", "alertname", name, "i", i);
        json_array_append_new(arr, a);
    }
    return arr;
}

static const char *first_name(const json_t *body)
{
    return json_string_value(
        json_object_get(json_object_get(json_array_get(body, 0), "labels"), "alertname"));
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    fp_assert(fd >= 0);
    fp_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    fp_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void test_urls(void)
{
    static const char *const bad[] = {
        "https://127.0.0.1:9093",
        "127.0.0.1:9093",
        "http://",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:9093/?x=1",
        "http://user@127.0.0.1:9093",
        "",
    };
    struct fp_alert_push *p = NULL;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        check_int(fp_alert_push_new(base, bad[i], &p, err, sizeof(err)), -EINVAL);
        check(p == NULL);
        check(strstr(err, "Alertmanager URL") != NULL);
    }
    check_int(fp_alert_push_new(base, "http://am.example", &p, err, sizeof(err)), 0);
    fp_alert_push_destroy(&p);
    check(p == NULL);
    fp_alert_push_destroy(&p);
}

int main(void)
{
    struct fake_am am = {.statuses = {503, 500, 200, 0, 200, 200}};
    struct evhttp *http;
    struct fp_alert_push *p = NULL;
    struct fp_alert_push_stats st;
    char url[128], err[256];
    int port;

    base = event_base_new();
    fp_assert(base != NULL);
    test_urls();

    http = evhttp_new(base);
    fp_assert(http != NULL);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_POST);
    evhttp_set_gencb(http, on_request, &am);
    port = free_port();
    fp_assert(evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) == 0);

    /* A prefix with a trailing slash: the path is PREFIX/api/v2/alerts. */
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d/am/", port);
    fp_assert(fp_alert_push_new(base, url, &p, err, sizeof(err)) == 0);

    /* Two errors, then accepted: the same payload went out three times. */
    fp_alert_push_send(p, payload("A", 1));
    fp_alert_push_stats(p, &st);
    check_int(st.requests, 1);
    run_until((fp_alert_push_stats(p, &st), st.succeeded == 1));
    check_int(am.n_requests, 3);
    check_str(am.path, "/am/api/v2/alerts");
    check_str(am.content_type, "application/json");
    check_str(first_name(am.last_body), "A");
    check_int(st.requests, 3);
    check_int(st.failed, 2);
    check_int(st.alerts_sent, 1);
    check_int(st.retry_ms, 0); /* reset by the success */
    check_int(st.last_status, 200);

    /* A request in flight (held by the server): newer payloads wait, the newest wins. */
    fp_alert_push_send(p, payload("B", 1));
    run_until(am.held != NULL);
    fp_alert_push_send(p, payload("C", 2));
    fp_alert_push_send(p, payload("D", 3));
    fp_alert_push_stats(p, &st);
    check_int(st.superseded, 1); /* C, never sent */
    check_int(st.requests, 4);
    evhttp_send_reply(am.held, 200, "OK", NULL);
    am.held = NULL;
    run_until((fp_alert_push_stats(p, &st), st.succeeded == 3));
    check_int(am.n_requests, 5);
    check_str(first_name(am.last_body), "D");
    check_int(json_array_size(am.last_body), 3);
    check_int(st.alerts_sent, 1 + 1 + 3);

    /* Nothing to tell: an empty payload is not sent. */
    fp_alert_push_send(p, payload("E", 0));
    fp_alert_push_stats(p, &st);
    check_int(st.requests, 5);
    fp_alert_push_destroy(&p);

    /* Nobody listening: the connection is refused, counted, and retried after 0.5 s, doubling. */
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    fp_assert(fp_alert_push_new(base, url, &p, err, sizeof(err)) == 0);
    fp_alert_push_send(p, payload("F", 1));
    run_until((fp_alert_push_stats(p, &st), st.failed == 2));
    check_int(st.last_status, 0);
    check_int(st.succeeded, 0);
    check_int(st.retry_ms, 2 * FP_ALERT_PUSH_RETRY_MIN_MS);
    /* Destroyed while a retry waits: nothing leaks, nothing fires later. */
    fp_alert_push_destroy(&p);

    json_decref(am.last_body);
    evhttp_free(http);
    event_base_free(base);
    libevent_global_shutdown();
    fp_test_end();
}
