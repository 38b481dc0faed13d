/* What server.c (transport, routing) and api.c (endpoints) share inside the query service. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct evbuffer;
struct evhttp;
struct evhttp_bound_socket;
struct fp_store;

/* The HTTP statuses the service answers with. */
enum {
    FP_HTTP_OK = 200,
    FP_HTTP_BAD_REQUEST = 400,        /**< a parameter is missing, unknown or invalid */
    FP_HTTP_NOT_FOUND = 404,          /**< no such endpoint */
    FP_HTTP_METHOD_NOT_ALLOWED = 405, /**< anything but GET and HEAD */
    FP_HTTP_UNPROCESSABLE = 422,      /**< valid, but the answer would exceed max_points */
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
};

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

/* GET /api/v1/labels/{name}/values: every value of label arg, sorted (none for an unknown
 * label; 400 for an invalid name). */
int fp_api_label_values(struct fp_query_server *srv, const char *arg, const char *query,
                        struct evbuffer *out, char *err, size_t err_size);
