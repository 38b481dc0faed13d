/* The alert engine inside fleetpulse-query: evaluation on a libevent timer over the server's
 * store, rules reloaded on demand (SIGHUP), alerts pushed to Alertmanager, the engine's view
 * handed to the query service (degraded devices, a device's alerts) and GET /api/v1/alerts. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct event_base;
struct fp_query_server;
struct fp_alert_service;

/* Default --eval-interval. */
#define FP_ALERT_EVAL_INTERVAL_MS_DEFAULT 15000

struct fp_alert_service_options {
    const char *rules_path;       /**< the rules file (required) */
    const char *state_path;       /**< NULL: rules_path + ".state" */
    int64_t eval_interval_ms;     /**< > 0 */
    const char *alertmanager_url; /**< NULL: no push */
    const char *external_url;     /**< base of generatorURL; NULL: http:// + the bound address */
};

/* Loads the rules (a bad file fails here), creates the engine with the state of an earlier run
 * (an unreadable state file is logged and ignored), installs the query service's alert hook,
 * and schedules the first evaluation at once and the next every eval_interval_ms. A round runs
 * one rule per loop turn, so requests are served between rules; a tick that finds the previous
 * round still running is skipped.
 * base, srv: borrowed; both must outlive the service. opts: strings copied.
 * ret: out, new (fp_alert_service_destroy).
 * Returns 0; -EINVAL with err the one-line reason (the rules file's, naming rule and field, or a
 * bad Alertmanager URL); -errno when the rules file cannot be read; -ENOMEM. */
int fp_alert_service_new(struct event_base *base, struct fp_query_server *srv,
                         const struct fp_alert_service_options *opts, struct fp_alert_service **ret,
                         char *err, size_t err_size);

/* Reads the rules file again and, when it is valid, evaluates with the new rules from the next
 * round on; when it is not, logs why and keeps the rules it had. Returns 0 or the load error. */
int fp_alert_service_reload(struct fp_alert_service *svc);

/* Appends the alerting counters in Prometheus text format (fleetpulse_alerts_* and
 * fleetpulse_alertmanager_*; see docs/metrics.md) to out. Without a service (srv has no alert
 * engine) appends nothing. Returns 0 or -ENOMEM. */
int fp_alert_metrics(struct fp_query_server *srv, struct evbuffer *out);

/* Removes the hook, writes the state file and frees everything. Accepts NULL and *svc == NULL,
 * and nulls *svc. */
void fp_alert_service_destroy(struct fp_alert_service **svc);

/* GET /api/v1/alerts?state=&device=&alertname=: the alerts in Alertmanager's shape, plus status
 * and value (an fp_api_handler; see query-internal.h and docs/api.md). */
int fp_api_alerts(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size);
