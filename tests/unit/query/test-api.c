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
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "aggregate.h"
#include "clock.h"
#include "fixture.h"
#include "jsonout.h"
#include "server.h"
#include "sketch.h"

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

/* The clock of the servers that run on the state fleet: tests set it to the exact instants the
 * state rules turn at. Written by the test thread, read by the server thread. */
static _Atomic int64_t test_now_ms;

static int64_t test_clock(void)
{
    return test_now_ms;
}

/* What the state-fleet servers change from the defaults. */
struct server_extra {
    int64_t summary_refresh_ms;
    uint64_t max_scan_samples;
    const struct fp_query_alert_hook *hook;
};

static void server_start_ex(struct server_thread *st, const char *dir, size_t max_points,
                            const struct server_extra *x)
{
    struct fp_query_options opts;
    char err[512] = "";

    memset(st, 0, sizeof(*st));
    fp_query_options_default(&opts);
    opts.listen = "127.0.0.1:0";
    opts.data_dir = dir;
    opts.timeout_s = 1; /* short, so the idle-client test is quick */
    opts.max_points = max_points;
    if (x != NULL) {
        opts.now_ms = test_clock;
        opts.summary_refresh_ms = x->summary_refresh_ms;
        opts.max_scan_samples = x->max_scan_samples;
    }

    st->base = event_base_new();
    fp_assert(st->base != NULL);
    if (fp_query_server_new(st->base, &opts, &st->srv, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fp_query_server_new: %s", err);
        exit(1);
    }
    st->port = fp_query_server_port(st->srv);
    fp_assert(st->port != 0);
    if (x != NULL && x->hook != NULL)
        fp_query_server_set_alert_hook(st->srv, x->hook);
    fp_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st->stop_fds) == 0);
    st->stop_ev = event_new(st->base, st->stop_fds[0], EV_READ, on_stop, st->base);
    fp_assert(st->stop_ev != NULL && event_add(st->stop_ev, NULL) == 0);
    /* Created here, run there: the thread owns the base from pthread_create to pthread_join. */
    fp_assert(pthread_create(&st->thread, NULL, server_main, st) == 0);
}

static void server_start(struct server_thread *st, const char *dir, size_t max_points)
{
    server_start_ex(st, dir, max_points, NULL);
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
    expect_error(port, "GET", "/api/v1/devices/", 400, "invalid device id \"\" in the path");
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
    check_int(json_object_size(v), 3);
    check_int(json_array_size(devs), 3);
    check_int(json_integer_value(json_object_get(v, "total")), 3);
    check(json_is_null(json_object_get(v, "next_cursor")));

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

    /* The text itself: exact decimals, keys in documented order, metric keys sorted. The
     * fixture's batches are from 2024: silent. Its newest sample is probe_up's, a minute before
     * now, so last_sample and interval vary between runs and are checked apart. */
    check(strstr(r.body, "{\"devices\":[{\"device\":\"edge-01\",\"state\":\"silent\","
                         "\"first_seen\":1732412345.623,\"last_seen\":1732412355.623,"
                         "\"last_sample\":") == r.body);
    check(strstr(r.body, "\"ingest_lag\":") != NULL);
    check(strstr(r.body, "\"info\":{\"hostname\":\"edge-01.lan\","
                         "\"model\":\"llama-3.2-1b-q4\"},\"batches\":2,\"samples\":7,"
                         "\"duplicates\":0,\"dropped_samples\":0,\"last_seq\":2,\"epoch\":\"1\","
                         "\"series\":5,\"metrics\":{\"llama_tokens_per_second\":"
                         "0.30000000000000004,\"memory_available_bytes\":123456789,"
                         "\"probe_up\":7,\"temperature_celsius{source=\\\"thermal\\\","
                         "type=\\\"acpitz\\\",zone=\\\"thermal_zone1\\\"}\":40,"
                         "\"temperature_celsius{source=\\\"thermal\\\",type=\\\"x86_pkg_temp\\\","
                         "zone=\\\"thermal_zone0\\\"}\":51.234}}") != NULL);
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
    /* device, the identity label model (stamped from DeviceInfo), source, type, zone */
    check_int(json_object_size(json_object_get(s, "labels")), 5);
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
    check(strstr(r.body, "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\","
                         "\"source\":\"thermal\","
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
        {"/api/v1/series?metric=ttft_seconds&" R "&step=60s&agg=sum",
         AGG_BODY("sum", "10", "16.5")},
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
    v = get_json(port,
                 "/api/v1/series?metric=lat_seconds&from=1732400000&to=1732400060&step=60"
                 "&agg=count&by=device",
                 200, NULL);
    check_int(json_array_size(json_object_get(v, "series")), 20);
    check_double(
        json_number_value(json_array_get(
            json_array_get(
                json_object_get(json_array_get(json_object_get(v, "series"), 19), "points"), 0),
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
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\"},\"metric\":\"llama_"
         "tokens_per_second\","
         "\"points\":[[1732412355.123,0.30000000000000004]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\"},\"metric\":\"memory_"
         "available_bytes\","
         "\"points\":[[1732412345.123,123456789]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\",\"source\":\"thermal\","
         "\"type\":\"acpitz\","
         "\"zone\":\"thermal_zone1\"},\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412345.123,40]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412344.123,50.5],[1732412345.123,51.234]]}]}"},
        /* An empty metric is no metric. */
        {0, "/api/v1/series?metric=&device=edge-02&" R,
         "{\"series\":[{\"labels\":{\"device\":\"edge-02\",\"model\":\"qwen2.5-0.5b-q8\","
         "\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412346.123,60.5]]}]}"},
        /* Matchers alone: on the metric name (regex, anchored), on a label, and a negation on
         * the name beside the device. */
        {0, "/api/v1/series?match=__name__=~temp.*&" R,
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\",\"source\":\"thermal\","
         "\"type\":\"acpitz\","
         "\"zone\":\"thermal_zone1\"},\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412345.123,40]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\","
         "\"points\":[[1732412344.123,50.5],[1732412345.123,51.234]]},"
         "{\"labels\":{\"device\":\"edge-02\",\"model\":\"qwen2.5-0.5b-q8\",\"source\":\"thermal\","
         "\"type\":\"x86_pkg_temp\",\"zone\":\"thermal_zone0\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412346.123,60.5]]}]}"},
        {0, "/api/v1/series?match=__name__=~temp&" R, "{\"series\":[]}"},
        {0, "/api/v1/series?match=zone=thermal_zone1&" R,
         "{\"series\":[{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\","
         "\"source\":\"thermal\","
         "\"type\":\"acpitz\",\"zone\":\"thermal_zone1\"},"
         "\"metric\":\"temperature_celsius\",\"points\":[[1732412345.123,40]]}]}"},
        {0, "/api/v1/series?device=edge-01&match=__name__!~temp.*&" R,
         "{\"series\":["
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\"},\"metric\":\"llama_"
         "tokens_per_second\","
         "\"points\":[[1732412355.123,0.30000000000000004]]},"
         "{\"labels\":{\"device\":\"edge-01\",\"model\":\"llama-3.2-1b-q4\"},\"metric\":\"memory_"
         "available_bytes\","
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
                "{\"labels\":[\"__name__\",\"device\",\"model\",\"source\",\"type\",\"zone\"]}");
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

/* --- the state fleet: device states, devices listing, device page, summary, compare, metrics -- */

#define S0 FIXTURE_S0_MS

/* The alert engine's side of the hook, as a fixed table: one alert fires, for a-05. */
static bool hook_firing(void *userdata, const char *device)
{
    (void)userdata;
    return strcmp(device, "a-05") == 0;
}

static int hook_alerts(void *userdata, const char *device, struct json_t *arr)
{
    (void)userdata;
    if (strcmp(device, "a-05") != 0)
        return 0;
    return json_array_append_new(arr,
                                 json_pack("{s:{s:s,s:s},s:s}", "labels", "alertname", "DeviceHot",
                                           "device", device, "status", "firing")) == 0
               ? 0
               : -ENOMEM;
}

static const struct fp_query_alert_hook test_hook = {hook_firing, hook_alerts, NULL};

/* The ids of a devices answer, comma-separated, into buf. */
static const char *ids_of(json_t *v, char *buf, size_t size)
{
    json_t *devs = json_object_get(v, "devices");
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(devs); i++)
        n +=
            (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "",
                             json_string_value(json_object_get(json_array_get(devs, i), "device")));
    return buf;
}

static void expect_ids(uint16_t port, const char *target, const char *ids)
{
    char buf[512];
    json_t *v = get_json(port, target, 200, NULL);

    if (strcmp(ids_of(v, buf, sizeof(buf)), ids) != 0)
        FP_TEST_FAIL("GET %s: devices %s, expected %s", target, buf, ids);
    json_decref(v);
}

/* Walks every page of target (which has no cursor yet) and returns the ids seen, in order. */
static void walk_pages(uint16_t port, const char *target, size_t limit, const char *ids)
{
    char all[1024] = "", buf[512], url[2048];
    const char *cursor = NULL;
    json_t *v = NULL;
    int pages = 0;

    for (;;) {
        snprintf(url, sizeof(url), "%s%slimit=%zu%s%s", target, strchr(target, '?') ? "&" : "?",
                 limit, cursor ? "&cursor=" : "", cursor ? cursor : "");
        json_decref(v); /* frees the previous cursor string only now */
        v = get_json(port, url, 200, NULL);
        check_int(json_integer_value(json_object_get(v, "total")), 13);
        check(json_array_size(json_object_get(v, "devices")) <= limit);
        ids_of(v, buf, sizeof(buf));
        snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", all[0] ? "," : "", buf);
        cursor = json_string_value(json_object_get(v, "next_cursor"));
        if (cursor == NULL || ++pages > 20)
            break;
    }
    json_decref(v);
    if (strcmp(all, ids) != 0)
        FP_TEST_FAIL("pages of %s by %zu: %s, expected %s", target, limit, all, ids);
}

static void test_state_devices(uint16_t port)
{
    struct reply r;
    json_t *v, *d;
    char url[1024];

    test_now_ms = S0 + 60000;
    v = get_json(port, "/api/v1/devices", 200, &r);
    check_int(json_integer_value(json_object_get(v, "total")), 13);
    check(json_is_null(json_object_get(v, "next_cursor")));
    {
        static const char *const want[][2] = {
            {"a-00", "ok"},     {"a-01", "ok"},       {"a-02", "ok"}, {"a-03", "ok"},
            {"a-04", "ok"},     {"a-05", "degraded"}, {"b-00", "ok"}, {"b-01", "ok"},
            {"b-02", "ok"},     {"b-03", "ok"},       {"n-00", "ok"}, {"q-00", "stale"},
            {"q-01", "silent"},
        };
        json_t *devs = json_object_get(v, "devices");
        check_int(json_array_size(devs), 13);
        for (size_t i = 0; i < 13 && i < json_array_size(devs); i++) {
            d = json_array_get(devs, i);
            check_str(json_string_value(json_object_get(d, "device")), want[i][0]);
            check_str(json_string_value(json_object_get(d, "state")), want[i][1]);
        }
    }
    /* a-00: six batches 10 s apart, each received 0.5 s after its samples. */
    d = json_array_get(json_object_get(v, "devices"), 0);
    check_double(json_number_value(json_object_get(d, "last_seen")), 1732499250.5);
    check_double(json_number_value(json_object_get(d, "last_sample")), 1732499250);
    check_double(json_number_value(json_object_get(d, "interval")), 10);
    check_double(json_number_value(json_object_get(d, "ingest_lag")), 0.5);
    /* Identity labels the store stamps on every series stay out of the metric keys. */
    check_double(json_number_value(json_object_get(json_object_get(d, "metrics"),
                                                   "gen_ai_server_requests_total{outcome=\"ok\"}")),
                 50);
    /* n-00 sent once: no interval yet. */
    d = json_array_get(json_object_get(v, "devices"), 10);
    check(json_is_null(json_object_get(d, "interval")));
    check(strstr(r.body, "@collector") == NULL);
    json_decref(v);
    reply_fini(&r);

    /* State filters, one or several. */
    expect_ids(port, "/api/v1/devices?state=stale", "q-00");
    expect_ids(port, "/api/v1/devices?state=silent,stale", "q-00,q-01");
    expect_ids(port, "/api/v1/devices?state=degraded", "a-05");
    expect_ids(port, "/api/v1/devices?state=ok&match=model=qwen", "");

    /* Label matchers on identity: hw is the hw_class pair, a missing label is "". */
    expect_ids(port, "/api/v1/devices?match=model_version=v2", "b-00,b-01,b-02,b-03");
    expect_ids(port, "/api/v1/devices?match=hw=pi5", "q-00,q-01");
    expect_ids(port, "/api/v1/devices?match=site!=lab", "b-00,b-01,b-02,b-03,n-00");
    expect_ids(port, "/api/v1/devices?match=model=~ll.*&match=cohort=canary&state=ok",
               "b-00,b-01,b-02,b-03");
    expect_ids(port, "/api/v1/devices?match=device=~a-0%5B12%5D", "a-01,a-02");
    expect_ids(port, "/api/v1/devices?match=model=", "n-00");
    expect_ids(port, "/api/v1/devices?match=model!~ll",
               "a-00,a-01,a-02,a-03,a-04,a-05,b-00,"
               "b-01,b-02,b-03,n-00,q-00,q-01");

    /* Sorted by the latest value of a metric; devices without it last, by id. */
    expect_ids(port, "/api/v1/devices?sort=-llamacpp_generation_tokens_per_second",
               "a-05,a-04,a-03,a-02,a-01,a-00,b-03,b-02,b-01,b-00,q-00,q-01,n-00");
    expect_ids(port, "/api/v1/devices?sort=llamacpp_generation_tokens_per_second&state=ok",
               "b-00,b-01,b-02,b-03,a-00,a-01,a-02,a-03,a-04,n-00");

    /* Pagination covers every device exactly once, whatever the page size and order. */
    walk_pages(port, "/api/v1/devices", 5,
               "a-00,a-01,a-02,a-03,a-04,a-05,b-00,b-01,b-02,b-03,n-00,q-00,q-01");
    walk_pages(port, "/api/v1/devices", 1,
               "a-00,a-01,a-02,a-03,a-04,a-05,b-00,b-01,b-02,b-03,n-00,q-00,q-01");
    walk_pages(port, "/api/v1/devices", 13,
               "a-00,a-01,a-02,a-03,a-04,a-05,b-00,b-01,b-02,b-03,n-00,q-00,q-01");
    walk_pages(port, "/api/v1/devices?sort=-llamacpp_generation_tokens_per_second", 5,
               "a-05,a-04,a-03,a-02,a-01,a-00,b-03,b-02,b-01,b-00,q-00,q-01,n-00");
    /* The hottest zone counts (zone0 is 5 degrees above zone1). */
    walk_pages(port, "/api/v1/devices?sort=temperature_celsius", 4,
               "q-01,n-00,a-00,a-01,a-02,a-03,a-04,a-05,b-00,b-01,b-02,b-03,q-00");

    /* A cursor is a position in the order, not an offset: taken after a-04 from the full list,
     * it continues a filtered one at the first v2 device. */
    v = get_json(port, "/api/v1/devices?limit=5", 200, NULL);
    snprintf(url, sizeof(url), "/api/v1/devices?match=model_version=v2&cursor=%s",
             json_string_value(json_object_get(v, "next_cursor")));
    expect_ids(port, url, "b-00,b-01,b-02,b-03");
    /* ... and it belongs to its sort. */
    snprintf(url, sizeof(url), "/api/v1/devices?sort=temperature_celsius&cursor=%s",
             json_string_value(json_object_get(v, "next_cursor")));
    expect_error(port, "GET", url, 400, "parameter \"cursor\": from a listing with another sort");
    json_decref(v);

    expect_error(port, "GET", "/api/v1/devices?limit=0", 400, "parameter \"limit\": not a count");
    expect_error(port, "GET", "/api/v1/devices?limit=1001", 400, "from 1 to 1000");
    expect_error(port, "GET", "/api/v1/devices?limit=+5", 400, "parameter \"limit\"");
    expect_error(port, "GET", "/api/v1/devices?state=broken", 400,
                 "parameter \"state\": \"broken\" is not a comma-separated list");
    expect_error(port, "GET", "/api/v1/devices?state=ok,,stale", 400, "parameter \"state\"");
    expect_error(port, "GET", "/api/v1/devices?state=", 400, "parameter \"state\"");
    expect_error(port, "GET", "/api/v1/devices?sort=temp-c", 400,
                 "parameter \"sort\": \"temp-c\" is not a metric name");
    expect_error(port, "GET", "/api/v1/devices?sort=-", 400, "parameter \"sort\"");
    expect_error(port, "GET", "/api/v1/devices?cursor=zz", 400,
                 "parameter \"cursor\": not a cursor from /api/v1/devices");
    expect_error(port, "GET", "/api/v1/devices?cursor=6869", 400, "not a cursor");
    expect_error(port, "GET", "/api/v1/devices?cursor=", 400, "not a cursor");
    expect_error(port, "GET", "/api/v1/devices?match=model", 400,
                 "parameter \"match\": \"model\" is not a label matcher");
    expect_error(port, "GET", "/api/v1/devices?match=model=~(", 400, "bad regex");
    expect_error(port, "GET", "/api/v1/devices?metric=x", 400, "unknown parameter \"metric\"");
}

/* The state of one device at now_ms, from its page. */
static void expect_state(uint16_t port, const char *device, int64_t now_ms, const char *state)
{
    char url[128];
    json_t *v;

    test_now_ms = now_ms;
    snprintf(url, sizeof(url), "/api/v1/devices/%s", device);
    v = get_json(port, url, 200, NULL);
    if (strcmp(json_string_value(json_object_get(v, "state")), state) != 0)
        FP_TEST_FAIL("%s at S0 + %lld ms: %s, expected %s", device, (long long)(now_ms - S0),
                     json_string_value(json_object_get(v, "state")), state);
    json_decref(v);
}

static void test_device_page(uint16_t port)
{
    struct reply r;
    json_t *v, *id, *ev;

    /* a-00 was last seen at S0 + 50.5 s with a 10 s interval: stale from 3 intervals later,
     * silent from 5 minutes later, to the millisecond. */
    expect_state(port, "a-00", S0 + 80499, "ok");
    expect_state(port, "a-00", S0 + 80500, "stale");
    expect_state(port, "a-00", S0 + 350499, "stale");
    expect_state(port, "a-00", S0 + 350500, "silent");
    /* n-00 sent once: the 10 s fallback interval. */
    expect_state(port, "n-00", S0 + 80499, "ok");
    expect_state(port, "n-00", S0 + 80500, "stale");
    /* The alert makes a reporting device degraded, not a stale one. */
    expect_state(port, "a-05", S0 + 80499, "degraded");
    expect_state(port, "a-05", S0 + 80500, "stale");
    test_now_ms = S0 + 60000;

    v = get_json(port, "/api/v1/devices/b-03", 200, &r);
    check(strstr(r.body, "{\"device\":\"b-03\",\"state\":\"ok\",\"first_seen\":1732499200.5,"
                         "\"last_seen\":1732499250.5,\"last_sample\":1732499250,\"interval\":10,"
                         "\"ingest_lag\":0.5,\"info\":{") == r.body);
    id = json_object_get(v, "identity");
    check_int(json_object_size(id), 12);
    check_str(json_string_value(json_object_get(id, "model")), "llama");
    check_str(json_string_value(json_object_get(id, "model_version")), "v2");
    check_str(json_string_value(json_object_get(id, "quant")), "Q4_K_M");
    check_str(json_string_value(json_object_get(id, "hw")), "orin");
    check_str(json_string_value(json_object_get(id, "site")), "home");
    check_str(json_string_value(json_object_get(id, "cohort")), "canary");
    check(json_is_null(json_object_get(id, "model_sha256")));
    check(json_is_null(json_object_get(id, "runtime")));
    check_str(json_string_value(json_object_get(json_object_get(v, "info"), "hw_class")), "orin");
    check_int(json_integer_value(json_object_get(v, "batches")), 6);
    check_int(json_integer_value(json_object_get(v, "series")), 8);
    check_str(json_string_value(json_object_get(v, "epoch")), "1");
    check_int(json_integer_value(json_object_get(v, "last_seq")), 6);
    check_double(json_number_value(json_object_get(json_object_get(v, "metrics"),
                                                   "llamacpp_generation_tokens_per_second")),
                 19);
    check_double(json_number_value(json_object_get(json_object_get(v, "metrics"),
                                                   "gen_ai_server_requests_total{outcome=\"ok\"}")),
                 25);
    check_int(json_array_size(json_object_get(v, "events")), 0);
    check(json_is_false(json_object_get(v, "events_truncated")));
    check_int(json_array_size(json_object_get(v, "alerts")), 0);
    json_decref(v);
    reply_fini(&r);

    /* Events of the last 24 h, oldest first. */
    v = get_json(port, "/api/v1/devices/a-00", 200, NULL);
    ev = json_object_get(v, "events");
    check_int(json_array_size(ev), 6);
    check_str(json_string_value(json_object_get(json_array_get(ev, 0), "message")), "e0");
    check_double(json_number_value(json_object_get(json_array_get(ev, 5), "ts")), 1732499250);
    json_decref(v);
    /* ... at most the newest 100. */
    v = get_json(port, "/api/v1/devices/n-00", 200, NULL);
    ev = json_object_get(v, "events");
    check_int(json_array_size(ev), 100);
    check_str(json_string_value(json_object_get(json_array_get(ev, 0), "message")), "e5");
    check_str(json_string_value(json_object_get(json_array_get(ev, 99), "message")), "e104");
    check(json_is_true(json_object_get(v, "events_truncated")));
    check(json_is_null(json_object_get(json_object_get(v, "identity"), "model")));
    json_decref(v);
    /* Older than 24 h: gone from the page. */
    test_now_ms = S0 + 50000 + 24 * 3600 * 1000 + 1;
    v = get_json(port, "/api/v1/devices/a-00", 200, NULL);
    check_int(json_array_size(json_object_get(v, "events")), 0);
    json_decref(v);
    test_now_ms = S0 + 60000;

    /* Alerts from the engine's hook. */
    v = get_json(port, "/api/v1/devices/a-05", 200, NULL);
    check_str(json_string_value(json_object_get(v, "state")), "degraded");
    check_int(json_array_size(json_object_get(v, "alerts")), 1);
    check_str(json_string_value(json_object_get(
                  json_object_get(json_array_get(json_object_get(v, "alerts"), 0), "labels"),
                  "alertname")),
              "DeviceHot");
    json_decref(v);

    expect_error(port, "GET", "/api/v1/devices/nope", 404, "no such device: \"nope\"");
    expect_error(port, "GET", "/api/v1/devices/@collector", 404, "no such device");
    /* The id is percent-decoded. */
    v = get_json(port, "/api/v1/devices/a-0%30", 200, NULL);
    check_str(json_string_value(json_object_get(v, "device")), "a-00");
    json_decref(v);
    expect_error(port, "GET", "/api/v1/devices/a%2F00", 404, "no such device: \"a/00\"");
    expect_error(port, "GET", "/api/v1/devices/a-00/x", 404, "no such endpoint");
    expect_error(port, "GET", "/api/v1/devices/a%00", 400, "invalid device id");
    expect_error(port, "GET", "/api/v1/devices/a-00?verbose=1", 400, "unknown parameter");
    expect_error(port, "POST", "/api/v1/devices/a-00", 405, "not allowed");
}

/* The quantile the summary reports for pooled values: the sketch's, kept inside [min, max]. */
static double pooled(const double *values, const uint64_t *counts, size_t n, double q)
{
    fp_sketch *sk = NULL;
    double v = NAN, min = values[0], max = values[0];

    fp_assert(fp_sketch_new(&sk) == 0);
    for (size_t i = 0; i < n; i++) {
        fp_assert(fp_sketch_add_n(sk, values[i], counts[i]) == 0);
        min = values[i] < min ? values[i] : min;
        max = values[i] > max ? values[i] : max;
    }
    fp_assert(fp_sketch_quantile(sk, q, &v) == 0);
    fp_sketch_destroy(&sk);
    return v < min ? min : v > max ? max : v;
}

static json_t *group_of(json_t *summary, const char *grouping, const char *value)
{
    json_t *arr = json_object_get(json_object_get(summary, "groups"), grouping);

    for (size_t i = 0; i < json_array_size(arr); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(arr, i), "value")), value) == 0)
            return json_array_get(arr, i);
    FP_TEST_FAIL("no group %s=\"%s\"", grouping, value);
    return json_object();
}

#define NUM(obj, key) json_number_value(json_object_get(obj, key))
#define SUB(obj, a, b) json_number_value(json_object_get(json_object_get(obj, a), b))

static void test_fleet_summary(uint16_t port)
{
    /* tokens/s of llama: a-00..a-05 at 20..25 and b-00..b-03 at 16..19, six samples each. */
    static const double llama_tps[] = {16, 17, 18, 19, 20, 21, 22, 23, 24, 25};
    static const uint64_t six[] = {6, 6, 6, 6, 6, 6, 6, 6, 6, 6};
    static const double llama_ttft[] = {0.5, 0.8};
    static const uint64_t llama_ttft_n[] = {36, 24};
    static const double qwen_tps[] = {9, 7};
    static const uint64_t qwen_tps_n[] = {3, 1};
    static const double all_tps[] = {7, 9, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25};
    static const uint64_t all_tps_n[] = {1, 3, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6};
    static const double all_ttft[] = {0.5, 0.8, 1.5};
    static const uint64_t all_ttft_n[] = {36, 24, 4};
    struct reply r;
    json_t *v, *g, *list;
    char grouping_values[256];

    test_now_ms = S0 + 60000;
    v = get_json(port, "/api/v1/fleet/summary", 200, &r);
    check(strstr(r.body,
                 "{\"window\":900,\"time\":1732499260,\"devices\":13,\"states\":"
                 "{\"ok\":10,\"degraded\":1,\"stale\":1,\"silent\":1},\"fleet\":{") == r.body);

    g = json_object_get(v, "fleet");
    check_int(json_integer_value(json_object_get(g, "devices")), 13);
    check_double(SUB(g, "tokens_per_second", "p50"), pooled(all_tps, all_tps_n, 12, 0.5));
    check_double(SUB(g, "tokens_per_second", "p95"), pooled(all_tps, all_tps_n, 12, 0.95));
    check_double(SUB(g, "ttft_seconds", "p99"), pooled(all_ttft, all_ttft_n, 3, 0.99));
    /* Requests: a devices 50 ok + 5 errors each; b 50 ok (b-03: 45, across its reset) + 15
     * errors + 5 fallbacks each. */
    check_double(NUM(g, "requests"), 605);
    check_double(NUM(g, "error_rate"), 90.0 / 605);
    check_double(NUM(g, "fallback_rate"), 20.0 / 605);
    check_double(NUM(g, "memory_pressure_max"), 13.5);
    check_double(NUM(g, "temperature_max"), 70);

    /* Each grouping lists its values sorted, "" for devices that did not report one. */
    {
        static const char *const want[][2] = {
            {"model", ",llama,qwen"}, {"model_version", ",v1,v2"}, {"quant", ",Q4_K_M,Q8_0"},
            {"site", ",home,lab"},    {"hw", ",orin,pi5"},
        };
        json_t *groups = json_object_get(v, "groups");
        check_int(json_object_size(groups), 5);
        for (size_t i = 0; i < 5; i++) {
            json_t *arr = json_object_get(groups, want[i][0]);
            size_t n = 0;
            grouping_values[0] = '\0';
            for (size_t j = 0; j < json_array_size(arr); j++)
                n += (size_t)snprintf(
                    grouping_values + n, sizeof(grouping_values) - n, "%s%s", j ? "," : "",
                    json_string_value(json_object_get(json_array_get(arr, j), "value")));
            check_str(grouping_values, want[i][1]);
        }
    }

    g = group_of(v, "model", "llama");
    check_int(json_integer_value(json_object_get(g, "devices")), 10);
    check_int(json_integer_value(json_object_get(json_object_get(g, "states"), "ok")), 9);
    check_int(json_integer_value(json_object_get(json_object_get(g, "states"), "degraded")), 1);
    check_double(SUB(g, "tokens_per_second", "p50"), pooled(llama_tps, six, 10, 0.5));
    check_double(SUB(g, "tokens_per_second", "p95"), pooled(llama_tps, six, 10, 0.95));
    check_double(SUB(g, "ttft_seconds", "p50"), pooled(llama_ttft, llama_ttft_n, 2, 0.5));
    check_double(SUB(g, "ttft_seconds", "p95"), pooled(llama_ttft, llama_ttft_n, 2, 0.95));
    check_double(SUB(g, "ttft_seconds", "p99"), pooled(llama_ttft, llama_ttft_n, 2, 0.99));
    check_double(NUM(g, "requests"), 605);
    check_double(NUM(g, "error_rate"), 90.0 / 605);
    check_double(NUM(g, "memory_pressure_max"), 13.5);
    check_double(NUM(g, "temperature_max"), 53);

    g = group_of(v, "model", "qwen");
    check_int(json_integer_value(json_object_get(g, "devices")), 2);
    check_int(json_integer_value(json_object_get(json_object_get(g, "states"), "stale")), 1);
    check_int(json_integer_value(json_object_get(json_object_get(g, "states"), "silent")), 1);
    check_double(SUB(g, "tokens_per_second", "p50"), pooled(qwen_tps, qwen_tps_n, 2, 0.5));
    /* One value of time to first token: exact. No request counters: no rates. */
    check_double(SUB(g, "ttft_seconds", "p99"), 1.5);
    check(json_is_null(json_object_get(g, "requests")));
    check(json_is_null(json_object_get(g, "error_rate")));
    check(json_is_null(json_object_get(g, "fallback_rate")));
    check_double(NUM(g, "memory_pressure_max"), 1);
    check_double(NUM(g, "temperature_max"), 70);

    g = group_of(v, "model", "");
    check_int(json_integer_value(json_object_get(g, "devices")), 1);
    check(json_is_null(json_object_get(json_object_get(g, "tokens_per_second"), "p50")));
    check(json_is_null(json_object_get(g, "memory_pressure_max")));
    check_double(NUM(g, "temperature_max"), 35);

    g = group_of(v, "model_version", "v2");
    check_int(json_integer_value(json_object_get(g, "devices")), 4);
    check_double(SUB(g, "ttft_seconds", "p50"), 0.8);
    check_double(NUM(g, "requests"), 275);
    check_double(NUM(g, "error_rate"), 60.0 / 275);
    check_double(NUM(g, "fallback_rate"), 20.0 / 275);
    g = group_of(v, "site", "lab");
    check_int(json_integer_value(json_object_get(g, "devices")), 8);
    check_double(NUM(g, "memory_pressure_max"), 5.5);
    g = group_of(v, "hw", "pi5");
    check_int(json_integer_value(json_object_get(g, "devices")), 2);
    g = group_of(v, "quant", "Q4_K_M");
    check_int(json_integer_value(json_object_get(g, "devices")), 10);

    /* Hottest first; slowest relative to their cohort (model, version, quant, hw). */
    list = json_object_get(v, "hottest");
    check_int(json_array_size(list), 10);
    check(strstr(r.body, "\"hottest\":[{\"device\":\"q-00\",\"state\":\"stale\",\"model\":\"qwen\","
                         "\"model_version\":\"v1\",\"quant\":\"Q8_0\",\"site\":\"lab\","
                         "\"hw\":\"pi5\",\"temperature_max\":70},{\"device\":\"b-03\"") != NULL);
    list = json_object_get(v, "slowest");
    check_int(json_array_size(list), 6);
    {
        static const struct {
            const char *device;
            double tps, median;
            int cohort;
        } want[] = {
            {"q-01", 7, 8, 2},     {"a-00", 20, 22.5, 6}, {"b-00", 16, 17.5, 4},
            {"a-01", 21, 22.5, 6}, {"b-01", 17, 17.5, 4}, {"a-02", 22, 22.5, 6},
        };
        for (size_t i = 0; i < 6; i++) {
            json_t *e = json_array_get(list, i);
            check_str(json_string_value(json_object_get(e, "device")), want[i].device);
            check_double(NUM(e, "tokens_per_second"), want[i].tps);
            check_double(NUM(e, "cohort_median"), want[i].median);
            check_double(NUM(e, "ratio"), want[i].tps / want[i].median);
            check_int(json_integer_value(json_object_get(e, "cohort_devices")), want[i].cohort);
        }
    }
    json_decref(v);
    reply_fini(&r);

    /* top cuts both lists. */
    v = get_json(port, "/api/v1/fleet/summary?top=2", 200, NULL);
    check_int(json_array_size(json_object_get(v, "hottest")), 2);
    check_int(json_array_size(json_object_get(v, "slowest")), 2);
    check_str(json_string_value(
                  json_object_get(json_array_get(json_object_get(v, "slowest"), 1), "device")),
              "a-00");
    json_decref(v);

    /* One minute: q-01's old batch falls out; q-00 alone gives qwen an exact p50. */
    v = get_json(port, "/api/v1/fleet/summary?window=1m", 200, NULL);
    check_double(NUM(v, "window"), 60);
    check_double(SUB(group_of(v, "model", "qwen"), "tokens_per_second", "p50"), 9);
    check_double(NUM(group_of(v, "model", "qwen"), "temperature_max"), 70);
    json_decref(v);
    /* Ten seconds: one sample per counter, so no increase and no rates. */
    v = get_json(port, "/api/v1/fleet/summary?window=10s", 200, NULL);
    check(json_is_null(json_object_get(json_object_get(v, "fleet"), "requests")));
    check(json_is_null(json_object_get(json_object_get(v, "fleet"), "error_rate")));
    {
        static const uint64_t one[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        check_double(SUB(group_of(v, "model", "llama"), "tokens_per_second", "p95"),
                     pooled(llama_tps, one, 10, 0.95));
    }
    json_decref(v);
    /* The states move with the clock; nothing is cached on this server. */
    test_now_ms = S0 + 80500;
    v = get_json(port, "/api/v1/fleet/summary", 200, NULL);
    check_int(json_integer_value(json_object_get(json_object_get(v, "states"), "stale")), 12);
    check_int(json_integer_value(json_object_get(json_object_get(v, "states"), "silent")), 1);
    json_decref(v);
    test_now_ms = S0 + 60000;

    expect_error(port, "GET", "/api/v1/fleet/summary?window=0", 400,
                 "parameter \"window\": must be from 1 second to 24 hours");
    expect_error(port, "GET", "/api/v1/fleet/summary?window=25h", 400, "from 1 second to 24 hours");
    expect_error(port, "GET", "/api/v1/fleet/summary?window=soon", 400,
                 "parameter \"window\": \"soon\" is not a duration");
    expect_error(port, "GET", "/api/v1/fleet/summary?top=0", 400,
                 "parameter \"top\": not a count from 1 to 100");
    expect_error(port, "GET", "/api/v1/fleet/summary?top=101", 400, "parameter \"top\"");
    expect_error(port, "GET", "/api/v1/fleet/summary?model=llama", 400,
                 "unknown parameter \"model\"");
}

static void test_compare(uint16_t port)
{
    const double sd8x4 = sqrt(32.0 / 12 * 13), sd6x4 = sqrt(24.0 / 12 * 11);
    struct reply r;
    json_t *v, *a, *b;

    test_now_ms = S0 + 60000;
    /* v1: a-00..a-05 (means 20..25), q-00 (9), q-01 (7); v2: b-00..b-03 (16..19).
     * Medians 21.5 and 17.5; p95 24 + 0.65 and 18 + 0.85. Ranks of v2: 3, 4, 5, 6, U = 18 - 10 =
     * 8, mu = 16, sigma^2 = 32 / 12 * 13; z = -(8 - 0.5) / sigma. */
    v = get_json(port,
                 "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=model_version"
                 "&a=v1&b=v2",
                 200, &r);
    check(strstr(r.body,
                 "{\"metric\":\"llamacpp_generation_tokens_per_second\","
                 "\"by\":\"model_version\",\"window\":900,\"time\":1732499260,"
                 "\"a\":{\"value\":\"v1\",\"devices\":8,\"mean\":18.875,\"median\":21.5,") ==
          r.body);
    a = json_object_get(v, "a");
    b = json_object_get(v, "b");
    check_near(NUM(a, "p95"), 24.65, 1e-12);
    check_str(json_string_value(json_object_get(b, "value")), "v2");
    check_int(json_integer_value(json_object_get(b, "devices")), 4);
    check_double(NUM(b, "median"), 17.5);
    check_double(NUM(b, "mean"), 17.5);
    check_near(NUM(b, "p95"), 18.85, 1e-12);
    check_double(NUM(v, "change"), (17.5 - 21.5) / 21.5);
    check_double(NUM(v, "u"), 8);
    check_near(NUM(v, "z"), -7.5 / sd8x4, 1e-12);
    check_near(NUM(v, "p"), erfc(7.5 / sd8x4 / sqrt(2.0)), 1e-12);
    check_str(json_string_value(json_object_get(v, "summary")),
              "v2 is 18.6% lower than v1 (median), p = 0.2, 4 vs 8 devices");
    json_decref(v);
    reply_fini(&r);

    /* Canary against stable: every canary below every stable device. U = 0, mu = 12,
     * sigma^2 = 24 / 12 * 11, p = 0.0142. */
    v = get_json(port,
                 "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=cohort"
                 "&a=stable&b=canary&window=1m",
                 200, NULL);
    check_int(json_integer_value(json_object_get(json_object_get(v, "a"), "devices")), 6);
    check_double(NUM(v, "u"), 0);
    check_near(NUM(v, "p"), erfc(11.5 / sd6x4 / sqrt(2.0)), 1e-12);
    check(NUM(v, "p") < 0.05);
    check_str(json_string_value(json_object_get(v, "summary")),
              "canary is 22.2% lower than stable (median), p = 0.014, 4 vs 6 devices");
    json_decref(v);

    /* Within strata: the llama/Q4_K_M/orin stratum holds a-00..a-05 (20..25) and b-00..b-03
     * (16..19), medians 20.5 (all) and 22.5 (a); the qwen stratum has no v2 and its two devices
     * are left out. Every b below every a after dividing by 20.5: U = 0, as stable vs canary.
     * Change on the values over 22.5: 17.5 / 22.5 - 1. */
    v = get_json(port,
                 "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=model_version"
                 "&a=v1&b=v2&strata=model,quant,hw",
                 200, &r);
    check(strstr(r.body, "\"by\":\"model_version\",\"strata\":{\"labels\":[\"model\",\"quant\","
                         "\"hw\"],\"compared\":1,\"excluded_devices\":2},\"window\":900,") != NULL);
    check_int(json_integer_value(json_object_get(json_object_get(v, "a"), "devices")), 6);
    check_double(NUM(json_object_get(v, "a"), "median"), 22.5);
    check_double(NUM(json_object_get(v, "b"), "median"), 17.5);
    check_near(NUM(v, "change"), 17.5 / 22.5 - 1, 1e-15);
    check_double(NUM(v, "u"), 0);
    check_near(NUM(v, "p"), erfc(11.5 / sd6x4 / sqrt(2.0)), 1e-12);
    check_str(json_string_value(json_object_get(v, "summary")),
              "v2 is 22.2% lower than v1 (median within strata model,quant,hw), p = 0.014, 4 vs 6 "
              "devices");
    json_decref(v);
    reply_fini(&r);

    /* Extra matchers narrow both cohorts; an empty cohort gives nulls, not an error. */
    v = get_json(port,
                 "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=model_version"
                 "&a=v1&b=v2&match=site=lab",
                 200, NULL);
    check_int(json_integer_value(json_object_get(json_object_get(v, "a"), "devices")), 8);
    check_int(json_integer_value(json_object_get(json_object_get(v, "b"), "devices")), 0);
    check(json_is_null(json_object_get(json_object_get(v, "b"), "median")));
    check(json_is_null(json_object_get(v, "change")));
    check(json_is_null(json_object_get(v, "p")));
    check_str(json_string_value(json_object_get(v, "summary")),
              "v2 vs v1: no comparable medians, no test, 0 vs 8 devices");
    json_decref(v);
    /* A device with two series of the metric counts once, with the mean of both. */
    v = get_json(port, "/api/v1/compare?metric=temperature_celsius&by=site&a=lab&b=home", 200,
                 NULL);
    check_int(json_integer_value(json_object_get(json_object_get(v, "b"), "devices")), 4);
    check_double(NUM(json_object_get(v, "b"), "median"), 49);
    json_decref(v);

    expect_error(port, "GET", "/api/v1/compare?by=model_version&a=v1&b=v2", 400,
                 "missing parameter \"metric\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&a=v1&b=v2", 400,
                 "missing parameter \"by\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&b=v2", 400, "missing parameter \"a\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=v1", 400, "missing parameter \"b\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m-1&by=x&a=1&b=2", 400,
                 "parameter \"metric\": \"m-1\" is not a valid metric name");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x-y&a=1&b=2", 400,
                 "parameter \"by\": \"x-y\" is not a label name");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=__name__&a=1&b=2", 400,
                 "parameter \"by\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=1", 400,
                 "parameters \"a\" and \"b\" name the same cohort");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=&b=1", 400,
                 "parameters \"a\" and \"b\": must be 1 to 1024 bytes");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&window=2d", 400,
                 "parameter \"window\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&match=x", 400,
                 "parameter \"match\"");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=", 400,
                 "parameter \"strata\": \"\" is not a comma-separated list of label names");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=model,,hw", 400,
                 "is not a comma-separated list");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=model,", 400,
                 "is not a comma-separated list");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=__name__", 400,
                 "is not a comma-separated list");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=hw,device", 400,
                 "\"device\" cannot be a stratum (it makes strata of one device)");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=hw,x", 400,
                 "\"x\" cannot be a stratum (it splits the cohorts)");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&strata=a,b,c,d,e,f,g,h,i",
                 400, "parameter \"strata\": at most 8 labels");
    expect_error(port, "GET", "/api/v1/compare?metric=m&by=x&a=1&b=2&step=60", 400,
                 "unknown parameter \"step\"");
}

/* A server whose answers go stale after 1 ms: a stale answer is served at once while the refresh
 * thread recomputes it, with the alert state snapshot taken on the server's thread. */
static void test_background_refresh(uint16_t port)
{
    struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};
    json_t *v;
    int tries = 0;
    double t;

    test_now_ms = S0 + 60000;
    v = get_json(port, "/api/v1/fleet/summary?window=1m", 200, NULL); /* computed here */
    check_double(NUM(v, "time"), 1732499260);
    json_decref(v);
    test_now_ms = S0 + 61000;
    nanosleep(&pause, NULL);
    v = get_json(port, "/api/v1/fleet/summary?window=1m", 200, NULL); /* stale, refresh starts */
    check_double(NUM(v, "time"), 1732499260);
    json_decref(v);
    /* The refreshed answer arrives once the thread is done; no bound on when is asserted. */
    do {
        nanosleep(&pause, NULL);
        v = get_json(port, "/api/v1/fleet/summary?window=1m", 200, NULL);
        t = NUM(v, "time");
        if (t == 1732499261) {
            check_int(json_integer_value(json_object_get(json_object_get(v, "states"), "degraded")),
                      1);
            check_int(json_integer_value(json_object_get(json_object_get(v, "states"), "ok")), 10);
            check_double(SUB(group_of(v, "model", "qwen"), "tokens_per_second", "p50"), 9);
        }
        json_decref(v);
    } while (t != 1732499261 && ++tries < 4000);
    check_double(t, 1732499261);

    /* The same for a comparison with a matcher (the queued job keeps its own copies of the
     * request's strings) and for the values a sorted listing orders by. */
    test_now_ms = S0 + 60000;
#define CMP "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=model_version" \
            "&a=v1&b=v2&window=1m&match=quant=~Q.*"
    v = get_json(port, CMP, 200, NULL);
    check_double(NUM(v, "time"), 1732499260);
    check_int(json_integer_value(json_object_get(json_object_get(v, "a"), "devices")), 7);
    json_decref(v);
    test_now_ms = S0 + 61000;
    tries = 0;
    do {
        nanosleep(&pause, NULL);
        v = get_json(port, CMP, 200, NULL);
        t = NUM(v, "time");
        if (t == 1732499261)
            check_int(json_integer_value(json_object_get(json_object_get(v, "b"), "devices")), 4);
        json_decref(v);
    } while (t != 1732499261 && ++tries < 4000);
    check_double(t, 1732499261);
#undef CMP
    for (int i = 0; i < 3; i++) {
        expect_ids(port, "/api/v1/devices?sort=-llamacpp_generation_tokens_per_second&limit=3",
                   "a-05,a-04,a-03");
        nanosleep(&pause, NULL);
    }
    test_now_ms = S0 + 60000;
}

/* Checks every sample line of a text exposition: a valid name without colons, then labels and a
 * number; every family announced by HELP and TYPE before its samples. */
static void check_exposition(const char *text)
{
    char family[128] = "";
    const char *line = text;
    int lines = 0;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");

        fp_assert(end != NULL); /* the text ends with a newline */
        if (strncmp(line, "# TYPE ", 7) == 0) {
            n = strcspn(line + 7, " ");
            snprintf(family, sizeof(family), "%.*s", (int)n, line + 7);
        } else if (line[0] != '#') {
            if (n == 0 || (line[n] != '{' && line[n] != ' ') || (line[0] >= '0' && line[0] <= '9'))
                FP_TEST_FAIL("bad sample line: %.*s", (int)(end - line), line);
            if (strncmp(line, family, strlen(family)) != 0 || family[0] == '\0')
                FP_TEST_FAIL("sample outside its family %s: %.*s", family, (int)(end - line), line);
            lines++;
        }
        check(memchr(line, ':', (size_t)(end - line)) == NULL || line[0] == '#');
        line = end + 1;
    }
    check(lines > 0);
}

static void test_metrics(uint16_t port)
{
    struct reply r;
    char ct[128], want[256], num[FP_JSONOUT_DOUBLE_MAX];

    /* Counted requests first, on a server nothing else asked yet. */
    test_now_ms = S0 + 60000;
    http(port, "GET", "/healthz", &r);
    reply_fini(&r);
    http(port, "GET", "/healthz", &r);
    reply_fini(&r);
    http(port, "GET", "/api/v1/nope", &r);
    reply_fini(&r);

    http(port, "GET", "/metrics", &r);
    check_int(r.status, 200);
    check(header(&r, "Content-Type", ct, sizeof(ct)) != NULL);
    check_str(ct, "text/plain; version=0.0.4; charset=utf-8");
    check_exposition(r.body);
    /* States per model, version and site (the last 5 minutes: q-01's samples are older, but a
     * device's state does not depend on the window). */
    check(strstr(r.body, "# HELP fleetpulse_fleet_devices Devices by state.\n"
                         "# TYPE fleetpulse_fleet_devices gauge\n"
                         "fleetpulse_fleet_devices{model=\"\",model_version=\"\",site=\"\","
                         "state=\"ok\"} 1\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_devices{model=\"llama\",model_version=\"v1\","
                         "site=\"lab\",state=\"ok\"} 5\n"
                         "fleetpulse_fleet_devices{model=\"llama\",model_version=\"v1\","
                         "site=\"lab\",state=\"degraded\"} 1\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_devices{model=\"qwen\",model_version=\"v1\","
                         "site=\"lab\",state=\"silent\"} 1\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_tokens_per_second{model=\"qwen\",model_version=\"v1\","
                         "site=\"lab\",quantile=\"0.5\"} 9\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_time_to_first_token_seconds{model=\"llama\","
                         "model_version=\"v2\",site=\"home\",quantile=\"0.99\"} 0.8\n") != NULL);
    fp_jsonout_format_double(num, sizeof(num), 60.0 / 275);
    snprintf(want, sizeof(want),
             "fleetpulse_fleet_request_error_ratio{model=\"llama\",model_version=\"v2\","
             "site=\"home\"} %s\n",
             num);
    check(strstr(r.body, want) != NULL);
    check(strstr(r.body, "fleetpulse_fleet_request_fallback_ratio{model=\"llama\","
                         "model_version=\"v1\",site=\"lab\"} 0\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_memory_pressure_some_avg10_max{model=\"llama\","
                         "model_version=\"v2\",site=\"home\"} 13.5\n") != NULL);
    check(strstr(r.body, "fleetpulse_fleet_temperature_celsius_max{model=\"\",model_version=\"\","
                         "site=\"\"} 35\n") != NULL);
    /* No tokens/s for n-00: no line rather than a NaN. */
    check(strstr(r.body, "fleetpulse_fleet_tokens_per_second{model=\"\"") == NULL);
    /* The service's own health. */
    check(strstr(r.body, "fleetpulse_query_requests_total{route=\"/healthz\",code=\"200\"} 2\n") !=
          NULL);
    check(strstr(r.body, "fleetpulse_query_requests_total{route=\"other\",code=\"404\"} 1\n") !=
          NULL);
    check(strstr(r.body, "fleetpulse_query_request_duration_seconds_bucket{route=\"/healthz\","
                         "le=\"+Inf\"} 2\n") != NULL);
    check(
        strstr(r.body, "fleetpulse_query_request_duration_seconds_count{route=\"/healthz\"} 2\n") !=
        NULL);
    check(strstr(r.body, "fleetpulse_query_store_read_duration_seconds_count 1\n") != NULL);
    check(strstr(r.body, "fleetpulse_query_cache_requests_total{result=\"miss\"} 1\n") != NULL);
    check(strstr(r.body, "fleetpulse_query_build_info{version=\"0.1.0\"} 1\n") != NULL);
    /* No series read here yet: the decoded-chunk cache's counters are there, at zero. */
    check(strstr(r.body, "fleetpulse_query_chunk_cache_requests_total{result=\"hit\"} 0\n"
                         "fleetpulse_query_chunk_cache_requests_total{result=\"miss\"} 0\n") !=
          NULL);
    reply_fini(&r);

    http(port, "GET", "/metrics", &r);
    check(strstr(r.body, "fleetpulse_query_requests_total{route=\"/metrics\",code=\"200\"} 1\n") !=
          NULL);
    check(strstr(r.body, "fleetpulse_query_store_read_duration_seconds_count 2\n") != NULL);
    reply_fini(&r);

    expect_error(port, "GET", "/metrics?x=1", 400, "unknown parameter \"x\"");
}

/* A server with a one-hour cache and a budget of 100 samples. */
static void test_cache_and_budget(uint16_t port)
{
    struct reply r1, r2;
    json_t *v1, *v2;

    /* Ten seconds read 81 samples (the newest of each series): under the budget. The same
     * question a second later is answered from the cache, with the first answer's time. */
    test_now_ms = S0 + 60000;
    v1 = get_json(port, "/api/v1/fleet/summary?window=10s", 200, &r1);
    test_now_ms = S0 + 61000;
    v2 = get_json(port, "/api/v1/fleet/summary?window=10s", 200, &r2);
    check_str(r2.body, r1.body);
    check_double(NUM(v2, "time"), 1732499260);
    json_decref(v1);
    json_decref(v2);
    reply_fini(&r1);
    reply_fini(&r2);
    /* Another question is another entry. */
    v1 = get_json(port, "/api/v1/fleet/summary?window=10s&top=1", 200, NULL);
    check_double(NUM(v1, "time"), 1732499261);
    json_decref(v1);
    test_now_ms = S0 + 60000;

    expect_error(port, "GET", "/api/v1/fleet/summary", 422,
                 "the window holds more than 100 samples; shorten it (window)");
    expect_error(port, "GET", "/metrics", 422, "more than 100 samples");
    expect_error(port, "GET",
                 "/api/v1/compare?metric=temperature_celsius&by=site&a=lab&b=home&window=1h", 422,
                 "more than 100 samples");
    /* Sorted listings take their values from the cache as well. */
    expect_ids(port, "/api/v1/devices?sort=temperature_celsius&limit=3", "q-01,n-00,a-00");
    expect_ids(port, "/api/v1/devices?sort=temperature_celsius&limit=3&state=ok", "n-00,a-00,a-01");
    /* Compare answers are cached too. */
    v1 = get_json(port,
                  "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=cohort"
                  "&a=stable&b=canary&window=10s",
                  200, NULL);
    test_now_ms = S0 + 62000;
    v2 = get_json(port,
                  "/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=cohort"
                  "&a=stable&b=canary&window=10s",
                  200, NULL);
    check_double(NUM(v2, "time"), NUM(v1, "time"));
    json_decref(v1);
    json_decref(v2);
    test_now_ms = S0 + 60000;
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
    char state_dir[] = "/tmp/fp-query-state-XXXXXX";
    char cache_dir[] = "/tmp/fp-query-cache-XXXXXX";
    char bg_dir[] = "/tmp/fp-query-bg-XXXXXX";
    struct server_thread st, fleet, states, cache, bg;
    const struct server_extra state_extra = {.summary_refresh_ms = 0,
                                             .max_scan_samples = FP_QUERY_MAX_SCAN_SAMPLES_DEFAULT,
                                             .hook = &test_hook};
    const struct server_extra cache_extra = {
        .summary_refresh_ms = 3600 * 1000, .max_scan_samples = 100, .hook = &test_hook};
    const struct server_extra bg_extra = {.summary_refresh_ms = 1,
                                          .max_scan_samples = FP_QUERY_MAX_SCAN_SAMPLES_DEFAULT,
                                          .hook = &test_hook};
    char err[512];

    /* The client writes to sockets the server may already have closed. */
    (void)signal(SIGPIPE, SIG_IGN);
    fp_assert(mkdtemp(dir) != NULL);
    if (fixture_write(dir, fp_clock_now_ms(), BIG_POINTS, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("fixture: %s", err);
        remove_store(dir);
        return 1;
    }

    fp_assert(mkdtemp(state_dir) != NULL && mkdtemp(cache_dir) != NULL && mkdtemp(bg_dir) != NULL);
    if (fixture_write_states(state_dir, err, sizeof(err)) != 0 ||
        fixture_write_states(cache_dir, err, sizeof(err)) != 0 ||
        fixture_write_states(bg_dir, err, sizeof(err)) != 0) {
        FP_TEST_FAIL("state fixture: %s", err);
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

    test_now_ms = S0 + 60000;
    server_start_ex(&states, state_dir, FP_QUERY_MAX_POINTS_DEFAULT, &state_extra);
    server_start_ex(&cache, cache_dir, FP_QUERY_MAX_POINTS_DEFAULT, &cache_extra);
    test_metrics(states.port); /* first: it counts this server's requests */
    test_state_devices(states.port);
    test_device_page(states.port);
    test_fleet_summary(states.port);
    test_compare(states.port);
    test_cache_and_budget(cache.port);
    server_start_ex(&bg, bg_dir, FP_QUERY_MAX_POINTS_DEFAULT, &bg_extra);
    test_background_refresh(bg.port);
    server_stop(&bg);
    server_stop(&cache);
    server_stop(&states);
    server_stop(&fleet);
    server_stop(&st);
    test_start_errors(dir);

    remove_store(fleet_dir);
    remove_store(state_dir);
    remove_store(cache_dir);
    remove_store(bg_dir);
    remove_store(dir);
    fp_test_end();
}
