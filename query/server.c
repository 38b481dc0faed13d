/* The query service's HTTP side: store lifetime, listening socket, evhttp limits, routing and
 * replies. Endpoints live in api.c and never see an evhttp_request.
 *
 * Routing is ours (one evhttp_set_gencb and a table) rather than evhttp_set_cb per path, so
 * that an unknown path and a wrong method get JSON errors like everything else; for the same
 * reason every HTTP method is allowed at the evhttp level (libevent would answer a disallowed one
 * with an HTML 501) and refused here with a JSON 405. What libevent rejects before we see a
 * request (malformed HTTP, request line and headers over max_headers_bytes: 400/413, idle
 * connections: closed) keeps libevent's own reply; libevent 2.1 has no hook to change it.
 *
 * We bind the socket ourselves instead of evhttp_bind_socket_with_handle, which reports a failed
 * name lookup and a port in use alike as NULL with no reason to print. */
#include "server.h"
#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "alert-service.h"
#include "clock.h"
#include "config.h"
#include "jsonout.h"
#include "log.h"
#include "parse.h"
#include "query-internal.h"
#include "refresh.h"
#include "state.h"
#include "store.h"
#include "web.h"

/* At most one 5xx log line per this interval; a broken store would otherwise log every request. */
#define FAILURE_LOG_INTERVAL_MS 10000

/* Pending connections queued by the kernel; dashboards and Grafana open only a few at a time. */
#define LISTEN_BACKLOG 128

/* A path, or with suffix set a pattern: path, one non-empty segment (the handler's arg), suffix. */
static const struct route {
    const char *path;
    const char *suffix;
    fp_api_handler handler;
} routes[] = {
    {"/healthz", NULL, fp_api_healthz},
    {"/api/v1/devices", NULL, fp_api_devices},
    {"/api/v1/devices/", "", fp_api_device},
    {"/api/v1/fleet/summary", NULL, fp_api_fleet_summary},
    {"/api/v1/compare", NULL, fp_api_compare},
    {"/metrics", NULL, fp_api_metrics},
    {"/api/v1/series", NULL, fp_api_series},
    {"/api/v1/collector", NULL, fp_api_collector},
    {"/api/v1/events", NULL, fp_api_events},
    {"/api/v1/alerts", NULL, fp_api_alerts},
    {"/api/v1/labels", NULL, fp_api_labels},
    {"/api/v1/labels/", "/values", fp_api_label_values},
};

/* Whether path matches route r; for a pattern, copies the segment into arg (arg_size bytes; a
 * longer segment does not match, so it is a 404 rather than a truncated name). */
static bool route_match(const struct route *r, const char *path, char *arg, size_t arg_size)
{
    size_t pl = strlen(r->path), sl, len = strlen(path);

    if (r->suffix == NULL)
        return strcmp(path, r->path) == 0;
    sl = strlen(r->suffix);
    if (len < pl + sl || strncmp(path, r->path, pl) != 0 ||
        strcmp(path + len - sl, r->suffix) != 0 || len - pl - sl >= arg_size)
        return false;
    memcpy(arg, path + pl, len - pl - sl);
    arg[len - pl - sl] = '\0';
    /* One segment: /api/v1/labels/a/b/values is no label's values. */
    return strchr(arg, '/') == NULL;
}

void fp_query_options_default(struct fp_query_options *ret)
{
    *ret = (struct fp_query_options){
        .listen = FP_DEFAULT_QUERY_LISTEN,
        .data_dir = NULL,
        .timeout_s = 10,
        .max_headers_bytes = 8192,
        .max_body_bytes = 4096,
        .max_points = FP_QUERY_MAX_POINTS_DEFAULT,
        .max_range_ms = FP_QUERY_MAX_RANGE_MS_DEFAULT,
        .silent_after_ms = FP_STATE_SILENT_AFTER_MS_DEFAULT,
        .summary_refresh_ms = FP_QUERY_SUMMARY_REFRESH_MS_DEFAULT,
        .max_scan_samples = FP_QUERY_MAX_SCAN_SAMPLES_DEFAULT,
        .decoded_cache_chunks = FP_QUERY_DECODED_CACHE_DEFAULT,
        .now_ms = fp_clock_now_ms,
    };
}

const double fp_query_latency_bounds[FP_QUERY_LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void fp_query_histogram_observe(struct fp_query_histogram *h, double seconds)
{
    size_t i = 0;

    while (i < FP_QUERY_LATENCY_BUCKETS && seconds > fp_query_latency_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_s += seconds;
}

/* Handlers hold one reader at a time, so one start time per server is enough. */
int fp_query_reader_open(struct fp_query_server *srv, struct fp_store_reader **ret)
{
    srv->reader_opened_ns = fp_clock_mono_ns();
    return fp_store_reader_open(srv->store, ret);
}

void fp_query_reader_close(struct fp_query_server *srv, struct fp_store_reader **rd)
{
    if (rd == NULL || *rd == NULL)
        return;
    fp_store_reader_close(rd);
    fp_query_histogram_observe(&srv->store_reads,
                               (double)(fp_clock_mono_ns() - srv->reader_opened_ns) / 1e9);
}

bool fp_query_device_firing(struct fp_query_server *srv, const char *device)
{
    return srv->alert_hook.firing != NULL &&
           srv->alert_hook.firing(srv->alert_hook.userdata, device);
}

void fp_query_server_set_alert_hook(struct fp_query_server *srv,
                                    const struct fp_query_alert_hook *hook)
{
    if (hook != NULL)
        srv->alert_hook = *hook;
    else
        memset(&srv->alert_hook, 0, sizeof(srv->alert_hook));
    /* A cached summary counted states without (or with the old) engine. */
    fp_query_cache_clear(srv);
}

bool fp_query_cache_get(struct fp_query_server *srv, const char *key, struct evbuffer *out)
{
    int64_t now = fp_clock_mono_ms();

    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS; i++) {
        struct fp_query_cache_entry *e = &srv->cache[i];

        if (e->key == NULL || strcmp(e->key, key) != 0)
            continue;
        if (now - e->made_mono_ms >= srv->summary_refresh_ms ||
            evbuffer_add(out, e->body, e->len) != 0)
            break;
        srv->cache_hits++;
        return true;
    }
    srv->cache_misses++;
    return false;
}

int fp_query_cache_lookup(struct fp_query_server *srv, const char *key, struct evbuffer *out)
{
    int64_t now = fp_clock_mono_ms();

    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS; i++) {
        struct fp_query_cache_entry *e = &srv->cache[i];
        int64_t age = now - e->made_mono_ms;

        if (e->key == NULL || strcmp(e->key, key) != 0)
            continue;
        if (age >= srv->summary_refresh_ms + FP_QUERY_STALE_GRACE_MS ||
            evbuffer_add(out, e->body, e->len) != 0)
            break;
        srv->cache_hits++;
        return age < srv->summary_refresh_ms ? FP_QUERY_CACHE_FRESH : FP_QUERY_CACHE_STALE;
    }
    srv->cache_misses++;
    return FP_QUERY_CACHE_MISS;
}

static void cache_entry_free(struct fp_query_cache_entry *e)
{
    free(e->key);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

void fp_query_cache_put(struct fp_query_server *srv, const char *key, const char *body,
                        size_t len)
{
    struct fp_query_cache_entry *slot = NULL;

    if (srv->summary_refresh_ms <= 0)
        return;
    /* The same key again, else a free slot, else the oldest. */
    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS && slot == NULL; i++)
        if (srv->cache[i].key != NULL && strcmp(srv->cache[i].key, key) == 0)
            slot = &srv->cache[i];
    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS && slot == NULL; i++)
        if (srv->cache[i].key == NULL)
            slot = &srv->cache[i];
    if (slot == NULL) {
        slot = &srv->cache[0];
        for (size_t i = 1; i < FP_QUERY_CACHE_SLOTS; i++)
            if (srv->cache[i].made_mono_ms < slot->made_mono_ms)
                slot = &srv->cache[i];
    }
    cache_entry_free(slot);
    slot->key = strdup(key);
    slot->body = malloc(len ? len : 1);
    if (slot->key == NULL || slot->body == NULL) {
        cache_entry_free(slot);
        return;
    }
    memcpy(slot->body, body, len);
    slot->len = len;
    slot->made_mono_ms = fp_clock_mono_ms();
}

void fp_query_cache_drop(struct fp_query_server *srv, const char *key)
{
    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS; i++)
        if (srv->cache[i].key != NULL && strcmp(srv->cache[i].key, key) == 0)
            cache_entry_free(&srv->cache[i]);
}

void fp_query_cache_clear(struct fp_query_server *srv)
{
    for (size_t i = 0; i < FP_QUERY_CACHE_SLOTS; i++)
        cache_entry_free(&srv->cache[i]);
}

/* Counts one answer on route slot i. */
static void count_request(struct fp_query_server *srv, size_t i, int status, double seconds)
{
    struct fp_query_route_stats *rs = &srv->routes[i];
    size_t slot = FP_QUERY_CODES_MAX - 1;

    for (size_t j = 0; j < FP_QUERY_CODES_MAX; j++) {
        if (rs->codes[j] == status || rs->codes[j] == 0) {
            slot = j;
            break;
        }
    }
    if (rs->codes[slot] == 0)
        rs->codes[slot] = status;
    rs->counts[slot]++;
    fp_query_histogram_observe(&rs->latency, seconds);
}

int fp_query_listen_parse(const char *address, char *ret_host, size_t host_size, uint16_t *ret_port)
{
    const char *colon, *host = address;
    size_t host_len, digits_len;
    uint64_t port;

    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        host = address + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL)
            return -EINVAL;
        host_len = (size_t)(colon - address);
        /* An unbracketed IPv6 address is ambiguous ("::1:80"). */
        if (memchr(address, ':', host_len) != NULL)
            return -EINVAL;
    }
    /* fp_parse_u64 alone would accept " 80"; a port is 1 to 5 digits and nothing else. */
    digits_len = strlen(colon + 1);
    if (digits_len < 1 || digits_len > 5 || strspn(colon + 1, "0123456789") != digits_len ||
        fp_parse_u64(colon + 1, &port) < 0)
        return -EINVAL;
    if (host_len == 0 || host_len >= host_size || port > 65535)
        return -EINVAL;
    memcpy(ret_host, host, host_len);
    ret_host[host_len] = '\0';
    *ret_port = (uint16_t)port;
    return 0;
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case FP_HTTP_OK:
        return "OK";
    case FP_HTTP_BAD_REQUEST:
        return "Bad Request";
    case FP_HTTP_NOT_FOUND:
        return "Not Found";
    case FP_HTTP_METHOD_NOT_ALLOWED:
        return "Method Not Allowed";
    case FP_HTTP_UNPROCESSABLE:
        return "Unprocessable Content";
    default:
        return "Internal Server Error";
    }
}

/* Replaces whatever is in body with {"status":"error","error":message}. */
static void error_body(struct evbuffer *body, const char *message)
{
    json_t *obj = json_object();
    int r = -1;

    (void)evbuffer_drain(body, evbuffer_get_length(body));
    if (obj != NULL && json_object_set_new(obj, "status", json_string("error")) == 0 &&
        json_object_set_new(obj, "error", fp_jsonout_string_new(message)) == 0)
        r = fp_jsonout_value(body, obj);
    json_decref(obj);
    if (r != 0) {
        static const char oom[] = "{\"status\":\"error\",\"error\":\"out of memory\"}";
        (void)evbuffer_drain(body, evbuffer_get_length(body));
        (void)evbuffer_add(body, oom, sizeof(oom) - 1);
    }
}

/* Logs 5xx answers at most once per FAILURE_LOG_INTERVAL_MS, and the first success after them:
 * a failing store fails every request, and one line per request would bury everything else. */
static void note_outcome(struct fp_query_server *srv, const char *method, const char *path,
                         int status, const char *err)
{
    int64_t now_ms;

    if (status < 500) {
        if (srv->failures_in_a_row > 0 && status == FP_HTTP_OK) {
            fp_log_info("query", "requests succeed again after %" PRIu64 " failures",
                        srv->failures_in_a_row);
            srv->failures_in_a_row = 0;
        }
        return;
    }
    srv->failures_in_a_row++;
    now_ms = fp_clock_mono_ms();
    if (srv->failure_logged_ms != 0 && now_ms - srv->failure_logged_ms < FAILURE_LOG_INTERVAL_MS) {
        srv->failures_unlogged++;
        return;
    }
    if (srv->failures_unlogged > 0)
        fp_log_error("query", "%s \"%s\": %d %s (and %" PRIu64 " failures not logged)", method,
                     path, status, err, srv->failures_unlogged);
    else
        fp_log_error("query", "%s \"%s\": %d %s", method, path, status, err);
    srv->failure_logged_ms = now_ms;
    srv->failures_unlogged = 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fp_query_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    const struct route *route = NULL;
    struct evbuffer *body;
    char err[256] = "", segment[1024];
    int64_t start_ns = fp_clock_mono_ns();
    size_t len, route_slot;
    int status;

    body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, FP_HTTP_INTERNAL_ERROR, NULL);
        return;
    }
    /* "GET http://host" carries an empty path. */
    if (path == NULL || *path == '\0')
        path = "/";
    /* The dashboard's files answer with their own types and ETags (web.c). */
    if (fp_web_handle(req, path)) {
        evbuffer_free(body);
        return;
    }

    route_slot = srv->n_routes - 1; /* "other" */
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && route == NULL; i++) {
        if (route_match(&routes[i], path, segment, sizeof(segment))) {
            route = &routes[i];
            route_slot = i;
        }
    }
    srv->reply_content_type = NULL;

    if (route == NULL) {
        /* The path goes back through error_body, which repairs bytes that are not UTF-8. */
        fp_set_err(err, sizeof(err), "no such endpoint: %.100s", path);
        status = FP_HTTP_NOT_FOUND;
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        fp_set_err(err, sizeof(err), "method %s not allowed; use GET", method_name(method));
        (void)evhttp_add_header(headers, "Allow", "GET, HEAD");
        status = FP_HTTP_METHOD_NOT_ALLOWED;
    } else {
        status = route->handler(srv, route->suffix != NULL ? segment : NULL, query, body, err,
                                sizeof(err));
    }
    if (status != FP_HTTP_OK)
        error_body(body, err);

    (void)evhttp_add_header(headers, "Content-Type",
                            status == FP_HTTP_OK && srv->reply_content_type != NULL
                                ? srv->reply_content_type
                                : "application/json");
    len = evbuffer_get_length(body);
    if (method == EVHTTP_REQ_HEAD) {
        /* libevent 2.1 sends whatever body it is given, even for HEAD, and then omits
         * Content-Length; a HEAD answer carries the GET answer's headers and no body. */
        char cl[32];
        (void)snprintf(cl, sizeof(cl), "%zu", len);
        (void)evhttp_add_header(headers, "Content-Length", cl);
        (void)evbuffer_drain(body, len);
    }
    /* Logged before sending: path and query live in req, which evhttp_send_reply may free. */
    note_outcome(srv, method_name(method), path, status, err);
    fp_log_debug("query", "%s \"%s%s%s\": %d, %zu bytes, %" PRId64 " us", method_name(method), path,
                 query ? "?" : "", query ? query : "", status, len,
                 (fp_clock_mono_ns() - start_ns) / 1000);
    count_request(srv, route_slot, status, (double)(fp_clock_mono_ns() - start_ns) / 1e9);
    evhttp_send_reply(req, status, reason_phrase(status), body);
    evbuffer_free(body);
}

/* Binds and listens on opts->listen, then hands the socket to evhttp. */
static int listen_on(struct fp_query_server *srv, const char *address, char *err, size_t err_size)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    char host[256], port_str[8];
    uint16_t port;
    int fd = -1, r, gai;

    if (fp_query_listen_parse(address, host, sizeof(host), &port) < 0) {
        fp_set_err(err, err_size, "invalid listen address \"%s\" (expected HOST:PORT)", address);
        return -EINVAL;
    }
    (void)snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);
    gai = getaddrinfo(host, port_str, &hints, &res);
    if (gai != 0) {
        fp_set_err(err, err_size, "cannot listen on %s: %s", address,
                gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return -EADDRNOTAVAIL;
    }

    r = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        /* A restart must not wait for the old process's connections to leave TIME_WAIT. On
         * Linux this does not let two processes listen on one port. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Accepted sockets inherit it. Without it Nagle held the tail of a large answer (a
         * devices page, ~150 KB) until the client's delayed ACK: 40 ms stalls, the whole of
         * bench/query's devices p99 (measured 2026-11-24). */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
            break;
        r = -errno;
        (void)close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fp_set_err(err, err_size, "cannot listen on %s: %s", address, strerror(-r));
        return r;
    }

    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) < 0) {
        r = -errno;
        fp_set_err(err, err_size, "cannot listen on %s: %s", address, strerror(errno));
        (void)close(fd);
        return r;
    }
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);

    /* From here evhttp owns fd and closes it in evhttp_free. */
    srv->listener = evhttp_accept_socket_with_handle(srv->http, fd);
    if (srv->listener == NULL) {
        fp_set_err(err, err_size, "cannot listen on %s: out of memory", address);
        (void)close(fd);
        return -ENOMEM;
    }
    return 0;
}

int fp_query_server_new(struct event_base *base, const struct fp_query_options *opts,
                        struct fp_query_server **ret, char *err, size_t err_size)
{
    struct fp_query_server *srv;
    int r;

    if (opts->data_dir == NULL || opts->listen == NULL || opts->timeout_s <= 0 ||
        opts->max_points == 0 || opts->max_range_ms <= 0 || opts->silent_after_ms <= 0 ||
        opts->summary_refresh_ms < 0 || opts->max_scan_samples == 0 || opts->now_ms == NULL) {
        fp_set_err(err, err_size, "invalid query server options");
        return -EINVAL;
    }

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        fp_set_err(err, err_size, "out of memory");
        return -ENOMEM;
    }
    srv->base = base;
    srv->max_points = opts->max_points;
    srv->max_range_ms = opts->max_range_ms;
    srv->silent_after_ms = opts->silent_after_ms;
    srv->summary_refresh_ms = opts->summary_refresh_ms;
    srv->max_scan_samples = opts->max_scan_samples;
    srv->now_ms = opts->now_ms;
    /* One counting slot per route, named as /metrics shows it, then "other". */
    _Static_assert(sizeof(routes) / sizeof(routes[0]) < FP_QUERY_ROUTES_MAX, "routes > slots");
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        (void)snprintf(srv->routes[i].name, sizeof(srv->routes[i].name), "%s%s%s",
                       routes[i].path, routes[i].suffix != NULL ? "{arg}" : "",
                       routes[i].suffix != NULL ? routes[i].suffix : "");
    srv->n_routes = sizeof(routes) / sizeof(routes[0]) + 1;
    (void)snprintf(srv->routes[srv->n_routes - 1].name, sizeof(srv->routes[0].name), "other");

    /* The store first: a wrong data directory is the likelier mistake, and its message names it. */
    {
        struct fp_store_options so;
        fp_store_options_default(&so);
        so.decoded_cache_chunks = opts->decoded_cache_chunks;
        r = fp_store_open(opts->data_dir, FP_STORE_READONLY, &so, &srv->store, err, err_size);
    }
    if (r != 0)
        goto fail;

    srv->http = evhttp_new(base);
    if (srv->http == NULL) {
        fp_set_err(err, err_size, "out of memory");
        r = -ENOMEM;
        goto fail;
    }
    evhttp_set_timeout(srv->http, opts->timeout_s);
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)opts->max_headers_bytes);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)opts->max_body_bytes);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);

    r = listen_on(srv, opts->listen, err, err_size);
    if (r != 0)
        goto fail;

    *ret = srv;
    return 0;

fail:
    fp_query_server_destroy(&srv);
    return r;
}

uint16_t fp_query_server_port(const struct fp_query_server *srv)
{
    return srv->port;
}

void fp_query_server_destroy(struct fp_query_server **srv)
{
    if (srv == NULL || *srv == NULL)
        return;
    /* The refresh thread reads the store and has an event on the base: first. */
    fp_refresh_stop(*srv);
    if ((*srv)->http != NULL)
        evhttp_free((*srv)->http);
    fp_store_close(&(*srv)->store);
    fp_query_cache_clear(*srv);
    free(*srv);
    *srv = NULL;
}
