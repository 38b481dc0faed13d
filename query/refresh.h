/* Background refresh of fleet computations (summary, /metrics' fleet part): a stale cached
 * answer is served at once while one thread beside the event loop recomputes it, so a
 * recomputation that reads millions of samples never holds up the requests queued behind it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct fp_query_server;
struct fp_store;

/* What a fleet computation reads besides the store. Taken on the server's thread; with srv NULL
 * it may be used on any thread. */
struct fp_fleet_env {
    struct fp_store *store;      /**< borrowed; shared by threads, readers per thread */
    struct fp_query_server *srv; /**< set: on the server's thread (alert hook, timed reads) */
    int64_t now_ms;              /**< the instant the answer describes */
    int64_t silent_after_ms;
    uint64_t max_scan_samples;
    char **firing; /**< srv NULL: sorted ids of devices with a firing alert */
    size_t n_firing;
};

enum fp_fleet_job_kind {
    FP_FLEET_JOB_SUMMARY = 1, /**< /api/v1/fleet/summary */
    FP_FLEET_JOB_METRICS,     /**< the fleet families of /metrics */
    FP_FLEET_JOB_COMPARE,     /**< /api/v1/compare */
    FP_FLEET_JOB_SORT_VALUES, /**< /api/v1/devices?sort=: each device's latest value of metric */
};

/* Most "match" strings a compare job carries (the query string's parameter limit). */
#define FP_FLEET_JOB_MATCH_MAX 16

/* One computation. Strings are borrowed from the request on the server's thread; a queued copy
 * (fp_refresh_schedule) owns its own. */
struct fp_fleet_job {
    enum fp_fleet_job_kind kind;
    int64_t window_ms;  /**< summary, compare */
    uint64_t top;       /**< summary */
    const char *metric; /**< compare, sort values */
    const char *by;     /**< compare */
    const char *a, *b;  /**< compare */
    const char *strata; /**< compare: the raw "strata" value, checked; NULL: none */
    const char *match[FP_FLEET_JOB_MATCH_MAX]; /**< compare: raw "match" values, checked */
    size_t n_match;
};

/* A SORT_VALUES answer is a sequence of entries, sorted by device id: the id and its NUL, then
 * the value as 8 bytes in host order. Devices without a value of the metric have no entry. */

/* An environment for the server's own thread: its clock now, its hook, its limits. */
void fp_fleet_env_sync(struct fp_query_server *srv, struct fp_fleet_env *ret);

/* Computes job (fleet.c). On 200: *ret_body (new, free()) of *ret_len bytes, and for summary and
 * metrics every fleet device id, sorted (*ret_ids new: each string and the array free(); NULL
 * for the other kinds), for the next firing snapshot. Otherwise an HTTP status with err set,
 * nothing returned. Thread: any, per env. */
int fp_fleet_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job, char **ret_body,
                    size_t *ret_len, char ***ret_ids, size_t *ret_n_ids, char *err,
                    size_t err_size);

/* Queues a recomputation of job whose answer the cache keeps under key (copied), unless one for
 * key is already queued or running, or the queue is full. The alert state is snapshot now, over
 * the devices the last computation saw. Starts the thread on first use. Server's thread only. */
void fp_refresh_schedule(struct fp_query_server *srv, const char *key,
                         const struct fp_fleet_job *job);

/* Serves job under key from the cache (appending to out): a fresh answer; a stale one while the
 * refresh thread recomputes it; or, the first time (or long after), one computed here and now.
 * Returns an HTTP status with err set. Server's thread only. */
int fp_fleet_serve(struct fp_query_server *srv, const char *key, const struct fp_fleet_job *job,
                   struct evbuffer *out, char *err, size_t err_size);

/* Replaces the device ids the next firing snapshot checks. Takes ids (and its strings). */
void fp_refresh_known_ids(struct fp_query_server *srv, char **ids, size_t n);

/* Stops the thread (waiting for a computation under way) and frees everything; idempotent. */
void fp_refresh_stop(struct fp_query_server *srv);
