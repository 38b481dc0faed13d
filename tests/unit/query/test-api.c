/* API test for the query service: writes a known fleet with the storage write API, serves it
 * in-process on a free loopback port from a second thread, and checks real HTTP answers byte
 * for byte (status, headers, exact JSON values and text) for every endpoint and error path.
 *
 * The server's event base lives on its own thread and is stopped by a message on a socketpair
 * (libevent is not built thread-safe here, so no cross-thread event_base_loopbreak). The client is
 * a blocking socket that writes raw requests, so the test sees exactly what a client gets. */
#include "test.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "aggregate.h"
#include "clock.h"
#include "fixture.h"
#include "server.h"

/* One more than the default response limit: the boundary is tested at the real value. */
#define BIG_POINTS (FP_QUERY_MAX_POINTS_DEFAULT + 1)

struct server_thread {
    struct event_base *base;
    struct fp_query_server *srv;
    struct event *stop_ev;
    int stop_fds[2]; /**< [1] written by the test thread, [0] watched by the server's base */
    pthread_t thread;
    uint16_t port;
};

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
    struct server_thread *st = arg;

    (void)event_base_dispatch(st->base);
    return NULL;
}

static void server_start(struct server_thread *st, const char *dir, size_t max_points)
{
    struct fp_query_options opts;
    char err[512] = "";

    memset(st, 0, sizeof(*st));
    fp_query_options_default(&opts);
    opts.listen = "127.0.0.1:0";
    opts.data_dir = dir;
    opts.timeout_s = 1; /* short, so the idle-client test is quick */
    opts.max_points = max_points;

    st->base = event_base_new();
    fp_assert(st->base != NULL);
    if (fp_query_server_new(st->base, &opts, &st->srv, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fp_query_server_new: %s", err);
        exit(1);
    }
    st->port = fp_query_server_port(st->srv);
    fp_assert(st->port != 0);
    fp_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st->stop_fds) == 0);
    st->stop_ev = event_new(st->base, st->stop_fds[0], EV_READ, on_stop, st->base);
    fp_assert(st->stop_ev != NULL && event_add(st->stop_ev, NULL) == 0);
    /* Created here, run there: the thread owns the base from pthread_create to pthread_join. */
    fp_assert(pthread_create(&st->thread, NULL, server_main, st) == 0);
}

static void server_stop(struct server_thread *st)
{
    fp_assert(write(st->stop_fds[1], "x", 1) == 1);
    fp_assert(pthread_join(st->thread, NULL) == 0);
    event_free(st->stop_ev);
    fp_query_server_destroy(&st->srv);
    check(st->srv == NULL);
    fp_query_server_destroy(&st->srv); /* idempotent */
    event_base_free(st->base);
    close(st->stop_fds[0]);
    close(st->stop_fds[1]);
}

/* --- a raw HTTP client ------------------------------------------------------------------------ */

struct reply {
    int status;
    char *head; /**< status line and headers, NUL-terminated */
    char *body; /**< NUL-terminated; body_len bytes before the NUL */
    size_t body_len;
};

static void reply_fini(struct reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int connect_to(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    fp_assert(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A hung server fails the test instead of hanging it. */
    fp_assert(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    fp_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        fp_assert(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes; returns the bytes (malloc'd, NUL-terminated) and their count. */
static char *read_all(int fd, size_t *ret_len)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);

    fp_assert(buf != NULL);
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            fp_assert(buf != NULL);
        }
        n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            break;
        fp_assert(n >= 0); /* EAGAIN here: the server did not answer within SO_RCVTIMEO */
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

/* Sends raw (a complete request) and parses the answer into *ret. */
static void http_raw(uint16_t port, const char *raw, struct reply *ret)
{
    int fd = connect_to(port);
    size_t len;
    char *all, *sep;

    memset(ret, 0, sizeof(*ret));
    send_all(fd, raw, strlen(raw));
    all = read_all(fd, &len);
    close(fd);

    sep = strstr(all, "\r\n\r\n");
    if (sep == NULL || sscanf(all, "HTTP/1.%*d %d", &ret->status) != 1) {
        FP_TEST_FAIL("not an HTTP answer to \"%.60s\": \"%.200s\"", raw, all);
        ret->status = -1;
        ret->head = all;
        ret->body = strdup("");
        return;
    }
    ret->body_len = len - (size_t)(sep + 4 - all);
    ret->body = malloc(ret->body_len + 1);
    fp_assert(ret->body != NULL);
    memcpy(ret->body, sep + 4, ret->body_len + 1);
    sep[2] = '\0';
    ret->head = all;
}

static void http(uint16_t port, const char *method, const char *target, struct reply *ret)
{
    char req[2048];

    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             method, target);
    http_raw(port, req, ret);
}

/* The value of header name (case-insensitive) in r, copied into buf, or NULL. */
static const char *header(const struct reply *r, const char *name, char *buf, size_t size)
{
    size_t nl = strlen(name);

    for (const char *line = strstr(r->head, "\r\n"); line != NULL && line[2] != '\0';
         line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2, *end = strstr(p, "\r\n");
        if (end != NULL && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ')
                p++;
            snprintf(buf, size, "%.*s", (int)(end - p), p);
            return buf;
        }
    }
    return NULL;
}

/* GET target, expect status and a JSON body; returns the parsed body (new reference). */
static json_t *get_json(uint16_t port, const char *target, int status, struct reply *keep)
{
    struct reply r;
    json_error_t jerr;
    char ct[128];
    json_t *v;

    http(port, "GET", target, &r);
    if (r.status != status)
        FP_TEST_FAIL("GET %s: status %d, expected %d; body %.300s", target, r.status, status,
                     r.body);
    if (header(&r, "Content-Type", ct, sizeof(ct)) == NULL || strcmp(ct, "application/json") != 0)
        FP_TEST_FAIL("GET %s: Content-Type \"%s\"", target,
                     header(&r, "Content-Type", ct, sizeof(ct)) ? ct : "(none)");
    v = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        FP_TEST_FAIL("GET %s: invalid JSON (%s): %.300s", target, jerr.text, r.body);
        v = json_object();
    }
    if (keep != NULL)
        *keep = r;
    else
        reply_fini(&r);
    return v;
}

/* Expects an error answer: status, {"status":"error","error":...} with needle in the message. */
static void expect_error(uint16_t port, const char *method, const char *target, int status,
                         const char *needle)
{
    struct reply r;
    json_t *v;
    const char *msg;

    http(port, method, target, &r);
    if (r.status != status)
        FP_TEST_FAIL("%s %s: status %d, expected %d; body %.300s", method, target, r.status, status,
                     r.body);
    v = json_loadb(r.body, r.body_len, 0, NULL);
    msg = json_string_value(json_object_get(v, "error"));
    if (v == NULL || json_object_size(v) != 2 ||
        json_string_value(json_object_get(v, "status")) == NULL ||
        strcmp(json_string_value(json_object_get(v, "status")), "error") != 0 || msg == NULL ||
        strstr(msg, needle) == NULL || strchr(msg, '\n') != NULL)
        FP_TEST_FAIL("%s %s: error body %.300s lacks \"%s\"", method, target, r.body, needle);
    json_decref(v);
    reply_fini(&r);
}

/* --- the tests -------------------------------------------------------------------------------- */

static void test_healthz(uint16_t port)
{
    struct reply r, head;
    char cl[32], allow[64];
    json_t *v;

    v = get_json(port, "/healthz", 200, &r);
    check_str(r.body, "{\"status\":\"ok\",\"version\":\"0.1.0\"}");
    check_int(json_object_size(v), 2);
    json_decref(v);

    /* HEAD: the same status and headers, no body. */
    http(port, "HEAD", "/healthz", &head);
    check_int(head.status, 200);
    check_int(head.body_len, 0);
    check(header(&head, "Content-Length", cl, sizeof(cl)) != NULL);
    check_int(atoi(cl), r.body_len);
    reply_fini(&head);
    reply_fini(&r);

    expect_error(port, "POST", "/healthz", 405, "method POST not allowed");
    http(port, "DELETE", "/api/v1/devices", &r);
    check_int(r.status, 405);
    check(header(&r, "Allow", allow, sizeof(allow)) != NULL);
    check_str(allow, "GET, HEAD");
    reply_fini(&r);
    expect_error(port, "GET", "/healthz?verbose=1", 400, "unknown parameter \"verbose\"");
}

static void test_not_found(uint16_t port)
{
    expect_error(port, "GET", "/api", 404, "no such endpoint: /api"); /* "/" is the dashboard */
    expect_error(port, "GET", "/api/v1/nope", 404, "no such endpoint: /api/v1/nope");
    expect_error(port, "GET", "/api/v1/devices/", 404, "no such endpoint");
    expect_error(port, "GET", "/healthz/x?y=1", 404, "no such endpoint: /healthz/x");
    /* An unknown path is a 404 whatever the method. */
    expect_error(port, "POST", "/nope", 404, "no such endpoint: /nope");
    /* Bytes that are not UTF-8 come back repaired, inside valid JSON. */
    expect_error(port, "GET", "/%FF\xff", 404, "no such endpoint: /%FF\xef\xbf\xbd");
}

static void test_devices(uint16_t port)
{
    struct reply r;
    json_t *v, *devs, *d, *m;

    v = get_json(port, "/api/v1/devices", 200, &r);
    devs = json_object_get(v, "devices");
    fp_assert(json_is_array(devs));
    check_int(json_object_size(v), 1);
    check_int(json_array_size(devs), 3);

    d = json_array_get(devs, 0);
    check_str(json_string_value(json_object_get(d, "device")), "edge-01");
    check_double(json_number_value(json_object_get(d, "first_seen")), 1732412345.623);
    check_double(json_number_value(json_object_get(d, "last_seen")), 1732412355.623);
    check_str(json_string_value(json_object_get(json_object_get(d, "info"), "hostname")),
              "edge-01.lan");
    check_str(json_string_value(json_object_get(json_object_get(d, "info"), "model")),
              "llama-3.2-1b-q4");
    check_int(json_integer_value(json_object_get(d, "batches")), 2);
    check_int(json_integer_value(json_object_get(d, "samples")), 7);
    check_int(json_integer_value(json_object_get(d, "series")), 5);
    m = json_object_get(d, "metrics");
    check_int(json_object_size(m), 5);
    check_double(json_number_value(json_object_get(m, "memory_available_bytes")), 123456789);
    check_double(json_number_value(json_object_get(m, "probe_up")), 7);
    check_double(json_number_value(json_object_get(m, "llama_tokens_per_second")),
                 0.30000000000000004);
    /* Two series of one metric on one device: keyed by their labels, device left out. */
    check(json_object_get(m, "temperature_celsius") == NULL);
    check_double(json_number_value(json_object_get(
                     m, "temperature_celsius{source=\"thermal\",type=\"x86_pkg_temp\","
                        "zone=\"thermal_zone0\"}")),
                 51.234);
    check_double(json_number_value(json_object_get(
                     m, "temperature_celsius{source=\"thermal\",type=\"acpitz\",zone=\"thermal_"
                        "zone1\"}")),
                 40);

    d = json_array_get(devs, 1);
    check_str(json_string_value(json_object_get(d, "device")), "edge-02");
    check_int(json_integer_value(json_object_get(d, "series")), 1);
    check_int(json_integer_value(json_object_get(d, "batches")), 1);
    m = json_object_get(d, "metrics");
    check_int(json_object_size(m), 1);
    /* One series of the metric on this device: the bare name. */
    check_double(json_number_value(json_object_get(m, "temperature_celsius")), 60.5);

    d = json_array_get(devs, 2);
    check_str(json_string_value(json_object_get(d, "device")), "edge-03");
    check_int(json_object_size(json_object_get(d, "info")), 0);
    check_double(json_number_value(json_object_get(json_object_get(d, "metrics"), "bench_big")),
                 (double)(BIG_POINTS - 1) / 2);

    /* The text itself: exact decimals, keys in documented order, metric keys sorted. */
    check(strstr(r.body, "{\"devices\":[{\"device\":\"edge-01\",\"first_seen\":1732412345.623,"
                         "\"last_seen\":1732412355.623,\"info\":{\"hostname\":\"edge-01.lan\","
                         "\"model\":\"llama-3.2-1b-q4\"},\"batches\":2,\"samples\":7,"
                         "\"duplicates\":0,\"dropped_samples\":0,\"last_seq\":2,\"epoch\":\"1\","
                         "\"series\":5,\"metrics\":{\"llama_tokens_per_second\":"
                         "0.30000000000000004,\"memory_available_bytes\":123456789,"
                         "\"probe_up\":7,\"temperature_celsius{source=\\\"thermal\\\","
                         "type=\\\"acpitz\\\",zone=\\\"thermal_zone1\\\"}\":40,"
                         "\"temperature_celsius{source=\\\"thermal\\\",type=\\\"x86_pkg_temp\\\","
                         "zone=\\\"thermal_zone0\\\"}\":51.234}}") == r.body);
    json_decref(v);
    reply_fini(&r);

    expect_error(port, "GET", "/api/v1/devices?device=edge-01", 400,
                 "unknown parameter \"device\"");
}

static void test_series(uint16_t port)
{
    struct reply r;
    json_t *v, *series, *s, *pts;

    v = get_json(port,
                 "/api/v1/series?metric=temperature_celsius&device=edge-01&from=1732412300"
                 "&to=1732412400",
                 200, &r);
    series = json_object_get(v, "series");
    check_int(json_array_size(series), 2);
    /* Sorted by label set: type "acpitz" before "x86_pkg_temp". */
    s = json_array_get(series, 0);
    check_int(json_object_size(s), 3);
    check_str(json_string_value(json_object_get(s, "metric")), "temperature_celsius");
    check_int(json_object_size(json_object_get(s, "labels")), 4);
    check_str(json_string_value(json_object_get(json_object_get(s, "labels"), "device")),
              "edge-01");
    check_str(json_string_value(json_object_get(json_object_get(s, "labels"), "type")), "acpitz");
    pts = json_object_get(s, "points");
    check_int(json_array_size(pts), 1);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 0)), 1732412345.123);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 1)), 40);

    s = json_array_get(series, 1);
    check_str(json_string_value(json_object_get(json_object_get(s, "labels"), "zone")),
              "thermal_zone0");
    pts = json_object_get(s, "points");
    check_int(json_array_size(pts), 2);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 0)), 1732412344.123);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 1)), 50.5);
    check_double(json_number_value(json_array_get(json_array_get(pts, 1), 0)), 1732412345.123);
    check_double(json_number_value(json_array_get(json_array_get(pts, 1), 1)), 51.234);

    /* The exact text: values read back exactly as the probe wrote them. */
    check(strstr(r.body, "{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\","
                         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
                         "\"metric\":\"temperature_celsius\",\"points\":[[1732412344.123,50.5],"
                         "[1732412345.123,51.234]]}]}") != NULL);
    check(strstr(r.body, "51.234000") == NULL);
    json_decref(v);
    reply_fini(&r);

    /* Every device; escaped parameter names and values decode. */
    v = get_json(port,
                 "/api/v1/series?m%65tric=temperature%5Fcelsius&from=1732412300&to=1732412400", 200,
                 NULL);
    series = json_object_get(v, "series");
    check_int(json_array_size(series), 3);
    s = json_array_get(series, 2);
    check_str(json_string_value(json_object_get(json_object_get(s, "labels"), "device")),
              "edge-02");
    check_double(
        json_number_value(json_array_get(json_array_get(json_object_get(s, "points"), 0), 1)),
        60.5);
    json_decref(v);

    /* Inclusive bounds, fractional seconds: exactly the 51.234 point. */
    v = get_json(port,
                 "/api/v1/series?metric=temperature_celsius&device=edge-01&from=1732412345.123"
                 "&to=1732412345.123",
                 200, &r);
    check_int(json_array_size(json_object_get(v, "series")), 2);
    check(strstr(r.body, "\"points\":[[1732412345.123,51.234]]") != NULL);
    json_decref(v);
    reply_fini(&r);

    /* Default range: the last hour before now, so only the probe_up point from a minute ago. */
    v = get_json(port, "/api/v1/series?metric=probe_up", 200, NULL);
    series = json_object_get(v, "series");
    check_int(json_array_size(series), 1);
    pts = json_object_get(json_array_get(series, 0), "points");
    check_int(json_array_size(pts), 1);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 1)), 7);
    json_decref(v);

    /* 16-17 significant digits are kept where a value needs them. */
    v = get_json(port,
                 "/api/v1/series?metric=llama_tokens_per_second&from=1732412000&to="
                 "1732413000",
                 200, &r);
    check(strstr(r.body, "\"points\":[[1732412355.123,0.30000000000000004]]") != NULL);
    json_decref(v);
    reply_fini(&r);

    /* Unknown device, unknown metric, empty range: 200 with no series. */
    v = get_json(port, "/api/v1/series?metric=temperature_celsius&device=nope&from=0&to=100", 200,
                 &r);
    check_str(r.body, "{\"series\":[]}");
    json_decref(v);
    reply_fini(&r);
    v = get_json(port, "/api/v1/series?metric=no_such_metric", 200, &r);
    check_str(r.body, "{\"series\":[]}");
    json_decref(v);
    reply_fini(&r);
    v = get_json(port, "/api/v1/series?metric=temperature_celsius&from=0&to=100", 200, &r);
    check_str(r.body, "{\"series\":[]}");
    json_decref(v);
    reply_fini(&r);
}

static void test_series_limits(uint16_t port)
{
    char target[256];
    int64_t from_s = FIXTURE_BIG0_MS / 1000;
    struct reply r;
    json_t *v, *pts;

    /* Exactly the limit: 100000 points pass. */
    snprintf(target, sizeof(target), "/api/v1/series?metric=bench_big&from=%lld&to=%lld",
             (long long)from_s, (long long)from_s + FP_QUERY_MAX_POINTS_DEFAULT - 1);
    v = get_json(port, target, 200, &r);
    pts = json_object_get(json_array_get(json_object_get(v, "series"), 0), "points");
    check_int(json_array_size(pts), FP_QUERY_MAX_POINTS_DEFAULT);
    check_double(json_number_value(json_array_get(json_array_get(pts, 0), 0)), (double)from_s);
    check_double(json_number_value(json_array_get(json_array_get(pts, 99999), 1)), 49999.5);
    json_decref(v);
    reply_fini(&r);

    /* One more point: refused, with advice. */
    snprintf(target, sizeof(target), "/api/v1/series?metric=bench_big&from=%lld&to=%lld",
             (long long)from_s, (long long)from_s + FP_QUERY_MAX_POINTS_DEFAULT);
    expect_error(port, "GET", target, 422, "more than 100000 points");
    expect_error(port, "GET", target, 422, "narrow the range");
}

static void test_series_errors(uint16_t port)
{
    expect_error(port, "GET", "/api/v1/series", 400, "missing parameter \"metric\"");
    expect_error(port, "GET", "/api/v1/series?metric=temp-celsius", 400, "not a valid metric name");
    expect_error(port, "GET", "/api/v1/series?metric=m&from=yesterday", 400,
                 "parameter \"from\": \"yesterday\" is not a Unix time");
    expect_error(port, "GET", "/api/v1/series?metric=m&to=1e9", 400,
                 "parameter \"to\": \"1e9\" is not a Unix time");
    expect_error(port, "GET", "/api/v1/series?metric=m&from=2000&to=1000", 400,
                 "\"from\" is after \"to\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&from=0&to=2678401", 400,
                 "longer than 2678400 seconds");
    expect_error(port, "GET", "/api/v1/series?metric=m&steps=60", 400,
                 "unknown parameter \"steps\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&metric=n", 400,
                 "parameter \"metric\" given more than once");
    expect_error(port, "GET", "/api/v1/series?metric=m&&from=1", 400, "malformed query string");
    expect_error(port, "GET", "/api/v1/series?metric=m%00x", 400, "bad %-escape");
    expect_error(port, "GET", "/api/v1/series?metric=m&device=", 400, "parameter \"device\"");
    expect_error(port, "POST", "/api/v1/series?metric=m", 405, "not allowed");
}

/* GET target and expect status 200 with exactly body. */
static void expect_body(uint16_t port, const char *target, const char *body)
{
    struct reply r;
    json_t *v = get_json(port, target, 200, &r);

    if (strcmp(r.body, body) != 0)
        FP_TEST_FAIL("GET %s:\n  body     %s\n  expected %s", target, r.body, body);
    json_decref(v);
    reply_fini(&r);
}

/* The value of the only point of the only series in the answer to target. */
static double only_value(uint16_t port, const char *target)
{
    json_t *v = get_json(port, target, 200, NULL);
    json_t *series = json_object_get(v, "series");
    json_t *pts = json_object_get(json_array_get(series, 0), "points");
    double x = NAN;

    if (json_array_size(series) != 1 || json_array_size(pts) != 1)
        FP_TEST_FAIL("GET %s: not one series with one point", target);
    else
        x = json_number_value(json_array_get(json_array_get(pts, 0), 1));
    json_decref(v);
    return x;
}

/* Every refusal of the aggregation parameters and label matchers, with its status. */
static void test_series_agg_errors(uint16_t port)
{
    char target[512], by[256] = "";

    expect_error(port, "GET", "/api/v1/series?metric=m&step=60", 400,
                 "parameter \"step\" requires \"agg\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&agg=sum", 400,
                 "parameter \"agg\" requires \"step\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&by=device", 400,
                 "parameter \"by\" requires \"agg\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&by=device", 400,
                 "parameter \"by\" requires \"agg\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=median", 400,
                 "parameter \"agg\": unknown aggregation \"median\" (avg, min, max, sum, count, "
                 "last, rate, increase, p50, p90, p95, p99, quantile)");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=P95", 400,
                 "unknown aggregation \"P95\"");

    expect_error(port, "GET", "/api/v1/series?metric=m&step=abc&agg=sum", 400,
                 "parameter \"step\": \"abc\" is not a duration (e.g. 60, 60s, 1m, 1h)");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=1e3&agg=sum", 400,
                 "parameter \"step\": \"1e3\" is not a duration");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=-60&agg=sum", 400,
                 "parameter \"step\": \"-60\" is not a duration");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60x&agg=sum", 400,
                 "parameter \"step\": \"60x\" is not a duration");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=&agg=sum", 400,
                 "parameter \"step\": \"\" is not a duration");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=0&agg=sum", 400,
                 "parameter \"step\": must be at least 1 second");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=0.5&agg=sum", 400,
                 "parameter \"step\": must be at least 1 second");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=999ms&agg=sum", 400,
                 "parameter \"step\": must be at least 1 second");
    /* 11000 buckets pass, 11001 do not (a partial last bucket counts). */
    expect_body(port, "/api/v1/series?metric=m&from=0&to=11000&step=1&agg=sum", "{\"series\":[]}");
    expect_body(port, "/api/v1/series?metric=m&from=0&to=1100000&step=100&agg=sum",
                "{\"series\":[]}");
    expect_error(port, "GET", "/api/v1/series?metric=m&from=0&to=11000.001&step=1&agg=sum", 400,
                 "range / step gives 11001 buckets, more than 11000; widen the step or narrow "
                 "the range");
    expect_error(port, "GET", "/api/v1/series?metric=m&from=0&to=2678400&step=1m&agg=sum", 400,
                 "gives 44640 buckets");

    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=quantile", 400,
                 "agg=quantile requires parameter \"q\" (e.g. q=0.95)");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=quantile&q=1.5", 400,
                 "parameter \"q\": \"1.5\" is not a number from 0 to 1");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=quantile&q=-0", 400,
                 "parameter \"q\": \"-0\" is not a number from 0 to 1");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=quantile&q=nan", 400,
                 "parameter \"q\": \"nan\" is not a number");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=p95&q=0.9", 400,
                 "parameter \"q\" requires agg=quantile");
    expect_error(port, "GET", "/api/v1/series?metric=m&q=0.9", 400,
                 "parameter \"q\" requires agg=quantile");

    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=sum&by=bad-name", 400,
                 "parameter \"by\": \"bad-name\" is not a label name");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=sum&by=", 400,
                 "parameter \"by\": \"\" is not a label name");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=sum&by=model,", 400,
                 "parameter \"by\": \"\" is not a label name");
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=sum&by=model,site,model", 400,
                 "parameter \"by\": \"model\" given twice");
    for (int i = 0; i <= FP_AGG_BY_MAX; i++)
        snprintf(by + strlen(by), sizeof(by) - strlen(by), "%sl%d", i ? "," : "", i);
    snprintf(target, sizeof(target), "/api/v1/series?metric=m&step=60&agg=sum&by=%s", by);
    expect_error(port, "GET", target, 400, "parameter \"by\": at most 16 label names");

    expect_error(port, "GET", "/api/v1/series?metric=m&match=model", 400,
                 "parameter \"match\": \"model\" is not a label matcher (name=value, "
                 "name!=value, name=~regex, name!~regex)");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=9x=1", 400,
                 "\"9x=1\" is not a label matcher");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=%3D1", 400,
                 "\"=1\" is not a label matcher");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=model~x", 400,
                 "\"model~x\" is not a label matcher");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=model=~(", 400,
                 "parameter \"match\": bad regex \"(\": ");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=site=lab&match=model!~[b-a]", 400,
                 "bad regex \"[b-a]\"");
    expect_error(port, "GET", "/api/v1/series?metric=m&match=model=~(a)%5C1", 400,
                 "bad regex \"(a)\\1\": back-references are not supported");
    /* Only "match" repeats. */
    expect_error(port, "GET", "/api/v1/series?metric=m&step=60&agg=sum&agg=max", 400,
                 "parameter \"agg\" given more than once");
}

/* The aggregation fleet (fixture.h), served with max_points = 20. */
static void test_series_agg(uint16_t port)
{
#define R "from=1732400000&to=1732400120"
#define AGG_BODY(agg, v0, v1)                                                                      \
    "{\"series\":[{\"labels\":{},\"metric\":\"ttft_seconds\",\"agg\":\"" agg "\",\"step\":60,"     \
    "\"points\":[[1732400000," v0 "],[1732400060," v1 "]]}]}"
    static const struct {
        const char *target, *body;
    } exact[] = {
        /* Bucket 0 pools {0.5, 1.5, 1, 3, 4}; bucket 1 {2.5, 6, 8}: the 2.5 at exactly 60 s
         * opens bucket 1, the 3 at 59.999 s closes bucket 0. */
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=avg", AGG_BODY("avg", "2", "5.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=min", AGG_BODY("min", "0.5", "2.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=max", AGG_BODY("max", "4", "8")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum", AGG_BODY("sum", "10", "16.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=count", AGG_BODY("count", "5", "3")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=last", AGG_BODY("last", "3", "8")},
        /* Every spelling of one minute. */
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60s&agg=sum", AGG_BODY("sum", "10", "16.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=1m&agg=sum", AGG_BODY("sum", "10", "16.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60000ms&agg=sum",
         AGG_BODY("sum", "10", "16.5")},
        /* One bucket, clipped at "to": everything. */
        {"/api/v1/series?metric=ttft_seconds&" R "&step=1h&agg=sum",
         "{\"series\":[{\"labels\":{},\"metric\":\"ttft_seconds\",\"agg\":\"sum\",\"step\":3600,"
         "\"points\":[[1732400000,26.5]]}]}"},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=1.5m&agg=count",
         "{\"series\":[{\"labels\":{},\"metric\":\"ttft_seconds\",\"agg\":\"count\",\"step\":90,"
         "\"points\":[[1732400000,6],[1732400090,2]]}]}"},
        /* Counters: edge-a +30, reset to 10 (+10) in bucket 0 and +30 in bucket 1 (the 10 -> 50
         * step crosses the edge and is not counted); edge-b +2. */
        {"/api/v1/series?metric=requests_total&" R "&step=60&agg=increase",
         "{\"series\":[{\"labels\":{},\"metric\":\"requests_total\",\"agg\":\"increase\","
         "\"step\":60,\"points\":[[1732400000,42],[1732400060,30]]}]}"},
        {"/api/v1/series?metric=requests_total&" R "&step=60&agg=rate",
         "{\"series\":[{\"labels\":{},\"metric\":\"requests_total\",\"agg\":\"rate\","
         "\"step\":60,\"points\":[[1732400000,0.7],[1732400060,0.5]]}]}"},
        {"/api/v1/series?metric=requests_total&" R "&step=60&agg=increase&by=device",
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-a\"},\"metric\":\"requests_total\",\"agg\":\"increase\","
         "\"step\":60,\"points\":[[1732400000,40],[1732400060,30]]},"
         "{\"labels\":{\"device\":\"edge-b\"},\"metric\":\"requests_total\",\"agg\":\"increase\","
         "\"step\":60,\"points\":[[1732400000,2]]}]}"},
        /* Group by one label, then two: groups sorted by their values in "by" order, a missing
         * label left out of the group's labels and sorting first. */
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&by=model",
         "{\"series\":["
         "{\"labels\":{\"model\":\"llama\"},\"metric\":\"ttft_seconds\",\"agg\":\"sum\","
         "\"step\":60,\"points\":[[1732400000,6],[1732400060,2.5]]},"
         "{\"labels\":{\"model\":\"qwen\"},\"metric\":\"ttft_seconds\",\"agg\":\"sum\","
         "\"step\":60,\"points\":[[1732400000,4],[1732400060,14]]}]}"},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&by=model,site",
         "{\"series\":["
         "{\"labels\":{\"model\":\"llama\",\"site\":\"home\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"sum\",\"step\":60,\"points\":[[1732400000,4]]},"
         "{\"labels\":{\"model\":\"llama\",\"site\":\"lab\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"sum\",\"step\":60,\"points\":[[1732400000,2],[1732400060,2.5]]},"
         "{\"labels\":{\"model\":\"qwen\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"sum\",\"step\":60,\"points\":[[1732400060,8]]},"
         "{\"labels\":{\"model\":\"qwen\",\"site\":\"lab\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"sum\",\"step\":60,\"points\":[[1732400000,4],[1732400060,6]]}]}"},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=max&by=site,model",
         "{\"series\":["
         "{\"labels\":{\"model\":\"qwen\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"max\",\"step\":60,\"points\":[[1732400060,8]]},"
         "{\"labels\":{\"site\":\"home\",\"model\":\"llama\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"max\",\"step\":60,\"points\":[[1732400000,3]]},"
         "{\"labels\":{\"site\":\"lab\",\"model\":\"llama\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"max\",\"step\":60,\"points\":[[1732400000,1.5],[1732400060,2.5]]},"
         "{\"labels\":{\"site\":\"lab\",\"model\":\"qwen\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"max\",\"step\":60,\"points\":[[1732400000,4],[1732400060,6]]}]}"},
        /* Matchers: regex (anchored), negations (a missing label is ""), several ANDed,
         * escaped, and the device shorthand beside them. */
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=model=~ll.*",
         AGG_BODY("sum", "6", "2.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=model%3D~ll%2E%2A",
         AGG_BODY("sum", "6", "2.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=model=~ll",
         "{\"series\":[]}"},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=site!=lab",
         AGG_BODY("sum", "4", "8")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=site!~l.b",
         AGG_BODY("sum", "4", "8")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=model=llama"
         "&match=site=lab",
         AGG_BODY("sum", "2", "2.5")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=site=lab&device=edge-c",
         AGG_BODY("sum", "4", "6")},
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60&agg=sum&match=site=",
         "{\"series\":[{\"labels\":{},\"metric\":\"ttft_seconds\",\"agg\":\"sum\",\"step\":60,"
         "\"points\":[[1732400060,8]]}]}"},
        /* Matchers on raw points too. */
        {"/api/v1/series?metric=ttft_seconds&" R "&match=site=home",
         "{\"series\":[{\"labels\":{\"device\":\"edge-b\",\"model\":\"llama\",\"site\":\"home\"},"
         "\"metric\":\"ttft_seconds\",\"points\":[[1732400010,1],[1732400059.999,3]]}]}"},
        /* Nothing matched, nothing in range: no series. */
        {"/api/v1/series?metric=no_such&" R "&step=60&agg=p95", "{\"series\":[]}"},
        {"/api/v1/series?metric=ttft_seconds&from=1&to=100&step=60&agg=sum", "{\"series\":[]}"},
        {"/api/v1/series?metric=ttft_seconds&from=1732400000&to=1732400000&step=60&agg=sum",
         "{\"series\":[]}"},
    };
    struct reply r;
    json_t *v;
    double x;

    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        expect_body(port, exact[i].target, exact[i].body);

    /* Pooled quantiles over 1000 samples of 20 devices, within the sketch's 1%: p95 is 5, where
     * a p95 of per-device p95s would be 4.7. */
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=p95");
    check_near(x, 5, 0.05);
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=p50");
    check_near(x, 2.7, 0.027);
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=p90");
    check_near(x, 4.8, 0.048); /* rank 899: 0.1 * (899 / 19 + 1) */
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=p99");
    check_near(x, 400, 4);
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=quantile&q=0.95");
    check_near(x, 5, 0.05);
    /* The extremes are exact: estimates are clamped to the bucket's min and max. */
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=quantile&q=1");
    check_double(x, 500);
    x = only_value(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=quantile&q=0");
    check_double(x, 0.1);
    v = get_json(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=quantile&q=0.95", 200,
                 &r);
    check(strstr(r.body, "\"metric\":\"lat_seconds\",\"agg\":\"quantile\",\"q\":0.95,"
                         "\"step\":60,\"points\":[[1732400000,") != NULL);
    json_decref(v);
    reply_fini(&r);
    v = get_json(port, "/api/v1/series?metric=lat_seconds&" R "&step=60&agg=p95", 200, &r);
    check(strstr(r.body, "\"agg\":\"p95\",\"step\":60,") != NULL);
    json_decref(v);
    reply_fini(&r);

    /* max_points (20 here) counts points over all groups: 20 devices x 1 bucket pass, x 2
     * buckets do not. */
    v = get_json(port, "/api/v1/series?metric=lat_seconds&from=1732400000&to=1732400060&step=60"
                       "&agg=count&by=device",
                 200, NULL);
    check_int(json_array_size(json_object_get(v, "series")), 20);
    check_double(json_number_value(json_array_get(
                     json_array_get(json_object_get(json_array_get(json_object_get(v, "series"),
                                                                   19),
                                                    "points"),
                                    0),
                     1)),
                 50);
    json_decref(v);
    expect_error(port, "GET",
                 "/api/v1/series?metric=lat_seconds&from=1732400000&to=1732400060&step=30"
                 "&agg=count&by=device",
                 422,
                 "more than 20 points in the answer; narrow the range (from, to), widen the step "
                 "or group by fewer labels");
#undef AGG_BODY
#undef R
}

/* /api/v1/series without "metric": a device or matchers select, possibly several metrics. Raw
 * series each carry their own metric; aggregated groups name one only when "by" holds
 * __name__. */
static void test_series_no_metric(uint16_t main_port, uint16_t fleet_port)
{
#define R "from=1732412300&to=1732412400"
#define F "from=1732400000&to=1732400120"
    static const struct {
        uint16_t fleet; /**< 1: ask the fleet server, 0: the main one */
        const char *target;
        const char *body;
    } exact[] = {
        /* Every series of one device, sorted by metric, then label set. */
        {0, "/api/v1/series?device=edge-01&" R,
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-01\"},\"metric\":\"llama_tokens_per_second\","
         "\"points\":[[1732412355.123,0.30000000000000004]]},"
         "{\"labels\":{\"device\":\"edge-01\"},\"metric\":\"memory_available_bytes\","
         "\"points\":[[1732412345.123,123456789]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\",\"type\":\"acpitz\","
         "\"zone\":\"thermal_zone1\"},\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412345.123,40]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412344.123,50.5],[1732412345.123,51.234]]}]}"},
        /* An empty metric is no metric. */
        {0, "/api/v1/series?metric=&device=edge-02&" R,
         "{\"series\":[{\"labels\":{\"device\":\"edge-02\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412346.123,60.5]]}]}"},
        /* Matchers alone: on the metric name (regex, anchored), on a label, and a negation on
         * the name beside the device. */
        {0, "/api/v1/series?match=__name__=~temp.*&" R,
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\",\"type\":\"acpitz\","
         "\"zone\":\"thermal_zone1\"},\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412345.123,40]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412344.123,50.5],[1732412345.123,51.234]]},"
         "{\"labels\":{\"device\":\"edge-02\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412346.123,60.5]]}]}"},
        {0, "/api/v1/series?match=__name__=~temp&" R, "{\"series\":[]}"},
        {0, "/api/v1/series?match=zone=thermal_zone1&" R,
         "{\"series\":[{\"labels\":{\"device\":\"edge-01\",\"source\":\"thermal\","
         "\"type\":\"acpitz\",\"zone\":\"thermal_zone1\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412345.123,40]]}]}"},
        {0, "/api/v1/series?device=edge-01&match=__name__!~temp.*&" R,
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-01\"},\"metric\":\"llama_tokens_per_second\","
         "\"points\":[[1732412355.123,0.30000000000000004]]},"
         "{\"labels\":{\"device\":\"edge-01\"},\"metric\":\"memory_available_bytes\","
         "\"points\":[[1732412345.123,123456789]]}]}"},
        {0, "/api/v1/series?device=nope&" R, "{\"series\":[]}"},
        /* Aggregated, by __name__: one group per metric, named by it. edge-a's requests_total
         * {100, 130, 10 | 50, 80} and ttft_seconds {0.5, 1.5 | 2.5}. */
        {1, "/api/v1/series?device=edge-a&" F "&step=60&agg=avg&by=__name__",
         "{\"series\":["
         "{\"labels\":{\"__name__\":\"requests_total\"},\"metric\":\"requests_total\","
         "\"agg\":\"avg\",\"step\":60,\"points\":[[1732400000,80],[1732400060,65]]},"
         "{\"labels\":{\"__name__\":\"ttft_seconds\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"avg\",\"step\":60,\"points\":[[1732400000,1],[1732400060,2.5]]}]}"},
        /* The same for a match on the name: ttft_seconds of all four devices,
         * {0.5, 1.5, 1, 3, 4 | 2.5, 6, 8}. */
        {1, "/api/v1/series?match=__name__=~ttft_.*&" F "&step=60&agg=avg&by=__name__",
         "{\"series\":["
         "{\"labels\":{\"__name__\":\"ttft_seconds\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"avg\",\"step\":60,\"points\":[[1732400000,2],[1732400060,5.5]]}]}"},
        /* __name__ beside another by label. */
        {1, "/api/v1/series?device=edge-b&" F "&step=60&agg=max&by=device,__name__",
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-b\",\"__name__\":\"requests_total\"},"
         "\"metric\":\"requests_total\",\"agg\":\"max\",\"step\":60,"
         "\"points\":[[1732400000,9]]},"
         "{\"labels\":{\"device\":\"edge-b\",\"__name__\":\"ttft_seconds\"},"
         "\"metric\":\"ttft_seconds\",\"agg\":\"max\",\"step\":60,"
         "\"points\":[[1732400000,3]]}]}"},
        /* Without __name__ in by a group may pool metrics: no "metric" key at all. */
        {1, "/api/v1/series?device=edge-a&" F "&step=60&agg=count",
         "{\"series\":[{\"labels\":{},\"agg\":\"count\",\"step\":60,"
         "\"points\":[[1732400000,5],[1732400060,3]]}]}"},
        {1, "/api/v1/series?device=edge-b&" F "&step=60&agg=max&by=device",
         "{\"series\":[{\"labels\":{\"device\":\"edge-b\"},\"agg\":\"max\",\"step\":60,"
         "\"points\":[[1732400000,9]]}]}"},
        /* With a metric, by=__name__ keeps the request's metric, as before. */
        {1, "/api/v1/series?metric=ttft_seconds&" F "&step=60&agg=avg&by=__name__",
         "{\"series\":["
         "{\"labels\":{\"__name__\":\"ttft_seconds\"},\"metric\":\"ttft_seconds\","
         "\"agg\":\"avg\",\"step\":60,\"points\":[[1732400000,2],[1732400060,5.5]]}]}"},
    };
    char target[256];
    int64_t from_s = FIXTURE_BIG0_MS / 1000;

    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        expect_body(exact[i].fleet ? fleet_port : main_port, exact[i].target, exact[i].body);

    /* Nothing selects: 400, whatever else the request says. */
    expect_error(main_port, "GET", "/api/v1/series", 400,
                 "missing parameter \"metric\" (or a device/match selector)");
    expect_error(main_port, "GET", "/api/v1/series?" R, 400,
                 "missing parameter \"metric\" (or a device/match selector)");
    expect_error(main_port, "GET", "/api/v1/series?metric=&" R, 400,
                 "missing parameter \"metric\" (or a device/match selector)");
    expect_error(fleet_port, "GET", "/api/v1/series?" F "&step=60&agg=avg&by=__name__", 400,
                 "missing parameter \"metric\" (or a device/match selector)");

    /* The response caps hold without a metric: raw, 100001 points of edge-03's one series ... */
    snprintf(target, sizeof(target), "/api/v1/series?device=edge-03&from=%lld&to=%lld",
             (long long)from_s, (long long)from_s + FP_QUERY_MAX_POINTS_DEFAULT);
    expect_error(main_port, "GET", target, 422, "more than 100000 points in the answer");
    snprintf(target, sizeof(target), "/api/v1/series?match=__name__=bench_big&from=%lld&to=%lld",
             (long long)from_s, (long long)from_s + FP_QUERY_MAX_POINTS_DEFAULT);
    expect_error(main_port, "GET", target, 422, "more than 100000 points in the answer");
    /* ... and aggregated, 20 devices x 2 buckets past the fleet server's 20. */
    expect_error(fleet_port, "GET",
                 "/api/v1/series?match=__name__=lat_seconds&from=1732400000&to=1732400060"
                 "&step=30&agg=count&by=device",
                 422, "more than 20 points in the answer");
#undef F
#undef R
}

static void test_labels(uint16_t main_port, uint16_t fleet_port)
{
    expect_body(main_port, "/api/v1/labels",
                "{\"labels\":[\"__name__\",\"device\",\"source\",\"type\",\"zone\"]}");
    expect_body(main_port, "/api/v1/labels/zone/values",
                "{\"values\":[\"thermal_zone0\",\"thermal_zone1\"]}");
    expect_body(main_port, "/api/v1/labels/device/values",
                "{\"values\":[\"edge-01\",\"edge-02\",\"edge-03\"]}");
    expect_body(main_port, "/api/v1/labels/__name__/values",
                "{\"values\":[\"bench_big\",\"llama_tokens_per_second\",\"memory_available_bytes\","
                "\"probe_up\",\"temperature_celsius\"]}");

    expect_body(fleet_port, "/api/v1/labels",
                "{\"labels\":[\"__name__\",\"device\",\"model\",\"site\"]}");
    expect_body(fleet_port, "/api/v1/labels/model/values", "{\"values\":[\"llama\",\"qwen\"]}");
    /* Escapes in the path decode; "site" is not also "sites". */
    expect_body(fleet_port, "/api/v1/labels/sit%65/values", "{\"values\":[\"home\",\"lab\"]}");
    expect_body(fleet_port, "/api/v1/labels/sites/values", "{\"values\":[]}");
    expect_body(fleet_port, "/api/v1/labels/nope/values", "{\"values\":[]}");
    /* 24 devices, more than the 20 this server answers with. */
    expect_error(fleet_port, "GET", "/api/v1/labels/device/values", 422,
                 "more than 20 values in the answer");

    expect_error(main_port, "GET", "/api/v1/labels/bad-name/values", 400,
                 "invalid label name \"bad-name\"");
    expect_error(main_port, "GET", "/api/v1/labels/9zone/values", 400,
                 "invalid label name \"9zone\"");
    expect_error(main_port, "GET", "/api/v1/labels//values", 400, "invalid label name \"\"");
    expect_error(main_port, "GET", "/api/v1/labels/zo%00ne/values", 400,
                 "invalid label name \"zo%00ne\"");
    expect_error(main_port, "GET", "/api/v1/labels/a/b/values", 404, "no such endpoint");
    expect_error(main_port, "GET", "/api/v1/labels/zone", 404, "no such endpoint");
    expect_error(main_port, "GET", "/api/v1/labels/", 404, "no such endpoint");
    expect_error(main_port, "GET", "/api/v1/labels?match=zone=x", 400,
                 "unknown parameter \"match\"");
    expect_error(main_port, "GET", "/api/v1/labels/zone/values?x=1", 400,
                 "unknown parameter \"x\"");
    expect_error(main_port, "POST", "/api/v1/labels/zone/values", 405, "not allowed");
}

static void test_transport_limits(uint16_t port)
{
    static const char prefix[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ";
    static const char suffix[] = "\r\nConnection: close\r\n\r\n";
    const size_t n = 10000;
    struct reply r;
    char *big;
    int fd;

    /* Headers over 8 KiB: libevent 2.1 refuses (400, its own HTML body) before any handler
     * runs. */
    big = malloc(sizeof(prefix) + n + sizeof(suffix));
    fp_assert(big != NULL);
    memcpy(big, prefix, sizeof(prefix) - 1);
    memset(big + sizeof(prefix) - 1, 'a', n);
    memcpy(big + sizeof(prefix) - 1 + n, suffix, sizeof(suffix));
    http_raw(port, big, &r);
    check_int(r.status, 400);
    reply_fini(&r);
    free(big);

    /* A declared body over the 4 KiB limit: 413 from libevent, the server survives. */
    http_raw(port,
             "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000\r\n"
             "\r\n",
             &r);
    check_int(r.status, 413);
    reply_fini(&r);

    /* A client that connects and goes quiet is dropped after timeout_s (1 s in this test). */
    {
        int64_t start = fp_clock_mono_ms();
        size_t len;
        char *rest;

        fd = connect_to(port);
        send_all(fd, "GET /healthz HTTP/1.1\r\n", 23);
        rest = read_all(fd, &len);
        check_int(len, 0);
        check(fp_clock_mono_ms() - start < 5000);
        free(rest);
        close(fd);
    }

    /* Still serving. */
    http(port, "GET", "/healthz", &r);
    check_int(r.status, 200);
    reply_fini(&r);
}

/* Runs after the server stopped: LMDB must not have one environment open twice in a process
 * (closing the second drops the first one's locks), and a failed start opens the store before
 * it binds. */
static void test_start_errors(const char *dir)
{
    struct event_base *base = event_base_new();
    struct fp_query_server *srv = NULL;
    struct fp_query_options opts;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sa_len = sizeof(sa);
    char err[512], addr[64], missing[600], empty[600];
    int r, busy;

    fp_assert(base != NULL);
    fp_query_options_default(&opts);
    opts.data_dir = dir;

    /* A port some other socket listens on. */
    busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fp_assert(busy >= 0 && bind(busy, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    fp_assert(listen(busy, 1) == 0 && getsockname(busy, (struct sockaddr *)&sa, &sa_len) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    opts.listen = addr;
    r = fp_query_server_new(base, &opts, &srv, err, sizeof(err));
    check_int(r, -EADDRINUSE);
    check(srv == NULL);
    check(strstr(err, "cannot listen on 127.0.0.1:") != NULL);
    check(strchr(err, '\n') == NULL);
    close(busy);

    opts.listen = "127.0.0.1";
    check_int(fp_query_server_new(base, &opts, &srv, err, sizeof(err)), -EINVAL);
    check(strstr(err, "invalid listen address") != NULL);

    /* Data directory problems name the directory. */
    opts.listen = "127.0.0.1:0";
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    opts.data_dir = missing;
    check_int(fp_query_server_new(base, &opts, &srv, err, sizeof(err)), -ENOENT);
    check(strstr(err, missing) != NULL);

    snprintf(empty, sizeof(empty), "%s/empty", dir);
    fp_assert(mkdir(empty, 0700) == 0);
    opts.data_dir = empty;
    check(fp_query_server_new(base, &opts, &srv, err, sizeof(err)) != 0);
    check(strstr(err, empty) != NULL);
    (void)rmdir(empty);

    opts.data_dir = NULL;
    check_int(fp_query_server_new(base, &opts, &srv, err, sizeof(err)), -EINVAL);
    check(srv == NULL);

    event_base_free(base);
}

static void remove_store(const char *dir)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    (void)unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    (void)unlink(path);
    (void)rmdir(dir);
}

int main(void)
{
    char dir[] = "/tmp/fp-query-test-XXXXXX";
    char fleet_dir[] = "/tmp/fp-query-fleet-XXXXXX";
    struct server_thread st, fleet;
    char err[512];

    /* The client writes to sockets the server may already have closed. */
    (void)signal(SIGPIPE, SIG_IGN);
    fp_assert(mkdtemp(dir) != NULL);
    if (fixture_write(dir, fp_clock_now_ms(), BIG_POINTS, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fixture: %s", err);
        remove_store(dir);
        return 1;
    }

    fp_assert(mkdtemp(fleet_dir) != NULL);
    if (fixture_write_fleet(fleet_dir, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fleet fixture: %s", err);
        remove_store(dir);
        remove_store(fleet_dir);
        return 1;
    }

    server_start(&st, dir, FP_QUERY_MAX_POINTS_DEFAULT);
    /* A small limit, so the aggregation and label refusals are reachable with little data. */
    server_start(&fleet, fleet_dir, 20);
    test_healthz(st.port);
    test_not_found(st.port);
    test_devices(st.port);
    test_series(st.port);
    test_series_limits(st.port);
    test_series_errors(st.port);
    test_series_agg_errors(st.port);
    test_series_agg(fleet.port);
    test_series_no_metric(st.port, fleet.port);
    test_labels(st.port, fleet.port);
    test_transport_limits(st.port);
    server_stop(&fleet);
    server_stop(&st);
    test_start_errors(dir);

    remove_store(fleet_dir);
    remove_store(dir);
    fp_test_end();
}
