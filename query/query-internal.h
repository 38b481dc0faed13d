/* What server.c (transport, routing) and api.c (endpoints) share inside the query service. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct evbuffer;
struct evhttp;
struct evhttp_bound_socket;
struct fp_store;
struct fp_store_reader;

/* Most routes the service counts requests for (the route table's size plus "other"). */
#define FP_QUERY_ROUTES_MAX 32

/* Distinct statuses counted per route; more are counted under the last slot's code 0. */
#define FP_QUERY_CODES_MAX 8

/* Request and store-read latency histogram bounds, seconds (Prometheus "le"), ascending. */
#define FP_QUERY_LATENCY_BUCKETS 13
extern const double fp_query_latency_bounds[FP_QUERY_LATENCY_BUCKETS];

/* A latency histogram: counts per bucket (non-cumulative; the last slot is +Inf), total, sum. */
struct fp_query_histogram {
    uint64_t buckets[FP_QUERY_LATENCY_BUCKETS + 1];
    uint64_t count;
    double sum_s;
};

/* Requests answered on one route (for /metrics). */
struct fp_query_route_stats {
    char name[96];                         /**< "/api/v1/devices/{arg}"; "other" for the rest */
    int codes[FP_QUERY_CODES_MAX];         /**< HTTP status per slot; 0: slot unused */
    uint64_t counts[FP_QUERY_CODES_MAX];   /**< requests answered with codes[i] */
    struct fp_query_histogram latency;     /**< from request to reply handed to libevent */
};

/* Reused answers of fleet computations (summary, compare, /metrics' fleet part, sort values),
 * keyed by their normalised parameters. */
#define FP_QUERY_CACHE_SLOTS 16
struct fp_query_cache_entry {
    char *key;            /**< normalised query; NULL: slot free */
    char *body;           /**< the response body */
    size_t len;
    int64_t made_mono_ms; /**< when it was computed */
};

/* The HTTP statuses the service answers with. */
enum {
    FP_HTTP_OK = 200,
    FP_HTTP_BAD_REQUEST = 400,        /**< a parameter is missing, unknown or invalid */
    FP_HTTP_NOT_FOUND = 404,          /**< no such endpoint */
    FP_HTTP_METHOD_NOT_ALLOWED = 405, /**< anything but GET and HEAD */
    FP_HTTP_UNPROCESSABLE = 422,      /**< valid, but the answer would exceed max_points, or the
                                           work max_scan_samples */
    FP_HTTP_INTERNAL_ERROR = 500,     /**< the store failed, or out of memory */
};

struct fp_query_server {
    struct event_base *base;              /**< borrowed from the caller */
    struct evhttp *http;                  /**< owns the listener and every connection */
    struct evhttp_bound_socket *listener; /**< owned by http */
    struct fp_store *store;               /**< opened FP_STORE_READONLY */
    uint16_t port;                        /**< bound TCP port */
    size_t max_points;                    /**< per /api/v1/series response */
    int64_t max_range_ms;                 /**< longest /api/v1/series range */
    int64_t failure_logged_ms;            /**< monotonic ms of the last 5xx logged; 0: none */
    uint64_t failures_unlogged;           /**< 5xx since then, not logged (rate limit) */
    uint64_t failures_in_a_row;           /**< 5xx since the last 200; logs recovery once */
    int64_t silent_after_ms;              /**< see fp_query_options */
    int64_t summary_refresh_ms;           /**< see fp_query_options */
    uint64_t max_scan_samples;            /**< see fp_query_options */
    int64_t (*now_ms)(void);              /**< the wall clock */
    struct fp_query_alert_hook alert_hook; /**< all NULL without an alert engine */
    /* A handler answering with something other than JSON sets this (a static string) for its
     * 200 answer; reset before every request. Errors are always JSON. */
    const char *reply_content_type;
    struct fp_query_route_stats routes[FP_QUERY_ROUTES_MAX];
    size_t n_routes;                        /**< entries used in routes, "other" last */
    struct fp_query_histogram store_reads;  /**< read transactions, open to close */
    int64_t reader_opened_ns;               /**< monotonic ns when the current reader opened */
    struct fp_query_cache_entry cache[FP_QUERY_CACHE_SLOTS];
    uint64_t cache_hits;                    /**< summary/metrics answers served from cache */
    uint64_t cache_misses;                  /**< ... and computed */
    struct fp_refresh *refresh;             /**< the refresh thread (refresh.c); NULL until used */
    char **known_ids;                       /**< fleet device ids of the last computation, sorted */
    size_t n_known_ids;
};

/* Adds one observation of seconds to h. */
void fp_query_histogram_observe(struct fp_query_histogram *h, double seconds);

/* fp_store_reader_open / _close that time the read transaction into srv->store_reads. */
int fp_query_reader_open(struct fp_query_server *srv, struct fp_store_reader **ret);
void fp_query_reader_close(struct fp_query_server *srv, struct fp_store_reader **rd);

/* Whether the alert hook says an alert fires for device (false without a hook). */
bool fp_query_device_firing(struct fp_query_server *srv, const char *device);

/* The cached body for key if it is younger than summary_refresh_ms: appended to out, returns
 * true. Otherwise false. */
bool fp_query_cache_get(struct fp_query_server *srv, const char *key, struct evbuffer *out);

/* A cached answer older than summary_refresh_ms is still served, while it is recomputed in the
 * background, for this much longer; past that a request computes it itself. */
#define FP_QUERY_STALE_GRACE_MS 10000

enum {
    FP_QUERY_CACHE_MISS,  /**< nothing usable: compute */
    FP_QUERY_CACHE_FRESH, /**< appended; younger than summary_refresh_ms */
    FP_QUERY_CACHE_STALE, /**< appended; older, within the grace: schedule a refresh */
};

/* Looks key up; for FRESH and STALE appends the body to out. Counts hits (both) and misses. */
int fp_query_cache_lookup(struct fp_query_server *srv, const char *key, struct evbuffer *out);

/* Forgets key's entry, if any. */
void fp_query_cache_drop(struct fp_query_server *srv, const char *key);

/* Keeps a copy of body (len bytes) under key, replacing the oldest entry when full. Failing to
 * allocate only means no caching. */
void fp_query_cache_put(struct fp_query_server *srv, const char *key, const char *body,
                        size_t len);

/* Frees every cache entry. */
void fp_query_cache_clear(struct fp_query_server *srv);


/* An endpoint. arg: for a route with a path parameter (/api/v1/labels/{name}/values) that path
 * segment, still percent-encoded; NULL for the others. query: the raw query string after '?'
 * (NULL when none). Both borrowed.
 * On success writes the whole JSON body into out and returns FP_HTTP_OK; otherwise returns an
 * error status with a one-line reason in err (what was written to out is discarded). A reader
 * opened here is closed before returning, so no snapshot outlives the request. */
typedef int (*fp_api_handler)(struct fp_query_server *srv, const char *arg, const char *query,
                              struct evbuffer *out, char *err, size_t err_size);

/* GET /healthz: {"status":"ok","version":FP_VERSION}. */
int fp_api_healthz(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/devices: every device with identity, counters and latest value per series. */
int fp_api_devices(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/series: the series selected by metric, device and label matchers (at least one
 * of them) over a time range, raw or aggregated into buckets (step, agg, by). */
int fp_api_series(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/labels: every label name in the store, sorted. */
/* GET /api/v1/collector: the collector's own counters (device "@collector"), latest values. */
int fp_api_collector(struct fp_query_server *srv, const char *arg, const char *query,
                     struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/events?device=&kind=&from=&to=&limit=: stored events, oldest first. */
int fp_api_events(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size);

int fp_api_labels(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/devices/{id}: one device in detail (identity, state, timing, latest values,
 * recent events, alerts); 404 for an unknown id. */
int fp_api_device(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/fleet/summary?window=&top=: counts by state, per-group performance, the hottest
 * and the slowest devices (fleet.c). */
int fp_api_fleet_summary(struct fp_query_server *srv, const char *arg, const char *query,
                         struct evbuffer *out, char *err, size_t err_size);

/* GET /api/v1/compare?metric=&by=&a=&b=&window=: two cohorts side by side with a Mann-Whitney
 * test over per-device values (fleet.c). */
int fp_api_compare(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size);

/* GET /metrics: Prometheus text exposition of fleet aggregates and the service's own health
 * (metrics.c). */
int fp_api_metrics(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size);

/* The fleet's per-group aggregates in Prometheus text (fleet.c, for metrics.c): appends to out.
 * Returns an HTTP status with err set as a handler does. */
int fp_fleet_metrics(struct fp_query_server *srv, struct evbuffer *out, char *err,
                     size_t err_size);

/* GET /api/v1/labels/{name}/values: every value of label arg, sorted (none for an unknown
 * label; 400 for an invalid name). */
int fp_api_label_values(struct fp_query_server *srv, const char *arg, const char *query,
                        struct evbuffer *out, char *err, size_t err_size);
