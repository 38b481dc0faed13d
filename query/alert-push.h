/* Sending alerts to Alertmanager: POST /api/v2/alerts with a JSON array, over libevent's HTTP
 * client, one request at a time, retried with exponential backoff while Alertmanager is down or
 * answers with an error. Only the newest payload matters (each holds every firing and recently
 * resolved alert), so a payload handed over while another is in flight or waiting for a retry
 * replaces it instead of queueing. Threads: the thread that runs the event base. */
#pragma once

#include <stdint.h>

#include <jansson.h>

struct event_base;
struct fp_alert_push;

/* First retry delay after a failure, doubled per failure up to the maximum. */
#define FP_ALERT_PUSH_RETRY_MIN_MS 500
#define FP_ALERT_PUSH_RETRY_MAX_MS 30000

/* A request that has not been answered in this many seconds fails (and is retried). */
#define FP_ALERT_PUSH_TIMEOUT_S 10

/* Counters, for logs and /metrics. */
struct fp_alert_push_stats {
    uint64_t requests;    /**< POSTs started */
    uint64_t succeeded;   /**< answered 2xx */
    uint64_t failed;      /**< no connection, no answer in time, or a non-2xx answer */
    uint64_t alerts_sent; /**< alerts in the payloads of succeeded requests */
    uint64_t superseded;  /**< payloads replaced by a newer one before they were sent */
    int last_status;      /**< HTTP status of the last answer; 0: none or no connection */
    int64_t retry_ms;     /**< current backoff; 0 while the last request succeeded */
};

/* Parses url ("http://HOST[:PORT][/PREFIX]", port 80 by default; the prefix is where
 * Alertmanager is served, as its --web.route-prefix) and prepares a connection on base.
 * base: borrowed, must outlive the pusher. ret: out, new (fp_alert_push_destroy).
 * Returns 0, -EINVAL with err naming the URL (not http, no host, bad port), or -ENOMEM. */
int fp_alert_push_new(struct event_base *base, const char *url, struct fp_alert_push **ret,
                      char *err, size_t err_size);

/* Sends payload (takes it; a JSON array of alerts) now, or after the request in flight or the
 * pending retry, replacing any payload still waiting. An empty array is not sent, and drops a
 * waiting one: nothing is left to tell. */
void fp_alert_push_send(struct fp_alert_push *p, json_t *payload);

/* The counters. */
void fp_alert_push_stats(const struct fp_alert_push *p, struct fp_alert_push_stats *ret);

/* Cancels what is in flight or waiting and frees everything; accepts NULL and *p == NULL, and
 * nulls *p. */
void fp_alert_push_destroy(struct fp_alert_push **p);
