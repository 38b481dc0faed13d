/* The query service: an HTTP/JSON server (libevent evhttp) over a read-only fleetpulse store.
 * fleetpulse-query's main.c and the tests drive the same object: create it on an event base,
 * run the base, destroy it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct fp_query_server;

/* Most points one /api/v1/series response carries; past it the request is refused (422). */
#define FP_QUERY_MAX_POINTS_DEFAULT 100000

/* Longest time range one /api/v1/series request may ask for: 31 days. */
#define FP_QUERY_MAX_RANGE_MS_DEFAULT (31LL * 24 * 3600 * 1000)

/* How long a computed fleet summary (and /metrics' fleet part) is served again before it is
 * recomputed: dashboards and scrapers poll, and the fleet changes at the probes' pace. */
#define FP_QUERY_SUMMARY_REFRESH_MS_DEFAULT 1000

/* Most samples one fleet/summary, compare or /metrics computation may read before it is refused
 * (422): the bound on a request's work, since a read cannot be interrupted once it runs. About
 * 10,000 devices' eight summary series over one hour at a 10 s interval. */
#define FP_QUERY_MAX_SCAN_SAMPLES_DEFAULT 50000000
/* Decoded chunks the store keeps for repeated reads (a dashboard refreshing the last hour): the
 * last hour of ~4,000 series, two chunks each; about 6 KiB a chunk, so ~50 MiB when full. */
#define FP_QUERY_DECODED_CACHE_DEFAULT 8192

struct json_t;

/* What the alert engine tells the query service about devices; set with
 * fp_query_server_set_alert_hook. Both functions run on the server's thread, inside a request. */
struct fp_query_alert_hook {
    /* Whether an alert fires for device now (its state is then "degraded"). Called once per
     * device per request, 10,000 times for a fleet summary: keep it a lookup. */
    bool (*firing)(void *userdata, const char *device);
    /* Appends the device's alerts (objects in /api/v1/alerts' shape) to arr (borrowed).
     * Returns 0 or -ENOMEM. May be NULL: no alerts listed. */
    int (*alerts)(void *userdata, const char *device, struct json_t *arr);
    void *userdata; /**< borrowed; must outlive the server or the next set call */
};

/* Settings for fp_query_server_new; start from fp_query_options_default. Strings are borrowed
 * for the duration of fp_query_server_new only. */
struct fp_query_options {
    const char *listen;       /**< "HOST:PORT" or "[V6ADDR]:PORT"; port 0 picks a free port */
    const char *data_dir;     /**< the store's directory (required) */
    int timeout_s;            /**< a connection idle this long (reading or writing) is closed */
    size_t max_headers_bytes; /**< request line plus headers; more is answered 413 by libevent */
    size_t max_body_bytes;    /**< request body; no endpoint takes one */
    size_t max_points;        /**< points per /api/v1/series response */
    int64_t max_range_ms;     /**< longest /api/v1/series range */
    int64_t silent_after_ms;  /**< a device without a batch for this long is "silent" */
    int64_t summary_refresh_ms; /**< a fleet summary is reused this long; 0: never reused */
    uint64_t max_scan_samples;  /**< samples one summary/compare/metrics computation may read */
    size_t decoded_cache_chunks; /**< decoded chunks kept for repeated reads (0: none) */
    int64_t (*now_ms)(void);    /**< the wall clock (fp_clock_now_ms); tests inject their own */
};

/* Fills *ret with the defaults: listen FP_DEFAULT_QUERY_LISTEN, no data_dir, timeout 10 s,
 * 8 KiB of headers, 4 KiB of body, FP_QUERY_MAX_POINTS_DEFAULT, FP_QUERY_MAX_RANGE_MS_DEFAULT,
 * FP_STATE_SILENT_AFTER_MS_DEFAULT, FP_QUERY_SUMMARY_REFRESH_MS_DEFAULT,
 * FP_QUERY_MAX_SCAN_SAMPLES_DEFAULT, FP_QUERY_DECODED_CACHE_DEFAULT, fp_clock_now_ms. */
void fp_query_options_default(struct fp_query_options *ret);

/* Splits a listen address "HOST:PORT" / "[V6]:PORT" into host (brackets removed) and port. Only
 * the syntax is checked: the host is not resolved.
 * ret_host: out, host_size bytes. ret_port: out.
 * Returns 0, or -EINVAL (no port, port not 0..65535, empty host, host longer than host_size-1). */
int fp_query_listen_parse(const char *address, char *ret_host, size_t host_size,
                          uint16_t *ret_port);

/* Opens the store in opts->data_dir read-only (the collector is the writer), binds
 * opts->listen and registers the HTTP handlers on base. Serves once base runs.
 * base: borrowed; must outlive the server; the server belongs to the thread that runs base.
 * ret: out, new (fp_query_server_destroy); untouched on failure.
 * err: out, one line naming the data directory or the address on failure (may be NULL).
 * Returns 0; a store code from fp_store_open (FP_STORE_E_FORMAT: not a fleetpulse store or
 * another format version); or -errno: -ENOENT no store in data_dir, -EINVAL bad options,
 * -EADDRINUSE and friends when the address cannot be bound. */
int fp_query_server_new(struct event_base *base, const struct fp_query_options *opts,
                        struct fp_query_server **ret, char *err, size_t err_size);

/* Installs (hook non-NULL, copied) or removes (NULL) the alert engine's hook. Without one, no
 * device is degraded and devices/{id} lists no alerts. Call on the server's thread. */
void fp_query_server_set_alert_hook(struct fp_query_server *srv,
                                    const struct fp_query_alert_hook *hook);

/* The TCP port actually bound (useful after asking for port 0). */
uint16_t fp_query_server_port(const struct fp_query_server *srv);

/* Closes the listener and every open connection, then the store. Accepts NULL and nulls *srv.
 * Call from the thread that runs the base, or after it stopped. */
void fp_query_server_destroy(struct fp_query_server **srv);
