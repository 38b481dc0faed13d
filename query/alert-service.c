/* The alert engine wired into fleetpulse-query (see alert-service.h).
 *
 * Evaluation runs on the server's event loop, between requests: each rule reads through its own
 * short read transaction, so the collector is never held up, and no locking is needed between the
 * engine and the HTTP handlers that read it. The timer is re-armed after each round rather than
 * made persistent, so a slow round delays the next instead of stacking rounds up.
 *
 * The query service learns about alerts only through its alert hook (server.h); the handler for
 * /api/v1/alerts finds the service as that hook's userdata, so the server needs no field of
 * ours. */
#include "alert-service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "alert-push.h"
#include "alert.h"
#include "clock.h"
#include "error.h"
#include "jsonout.h"
#include "log.h"
#include "params.h"
#include "query-internal.h"
#include "rules.h"
#include "server.h"
#include "store.h"

struct fp_alert_service {
    struct event_base *base;
    struct fp_query_server *srv;
    struct fp_alert_engine *engine;
    struct fp_alert_push *push; /**< NULL without --alertmanager */
    struct event *timer;
    struct event *step;   /**< runs the next rule of the round in progress */
    int64_t round_now_ms; /**< the time the round in progress evaluates at */
    int64_t round_ns;     /**< time spent in its rules so far */
    char *rules_path;
    int64_t eval_interval_ms;
    bool evaluated;       /**< at least one round ran */
    int64_t last_eval_ms; /**< wall clock of the last round */
    double last_eval_s;   /**< how long it took */
    uint64_t evaluations;
    uint64_t rule_failures; /**< failed rule evaluations, summed over rounds */
    uint64_t reloads_ok, reloads_failed;
    int failing;    /**< first_error of the last round, for logging once */
    bool push_down; /**< pushes were failing at the last round (logged) */
};

static bool hook_firing(void *userdata, const char *device)
{
    const struct fp_alert_service *svc = userdata;

    return fp_alert_engine_device_firing(svc->engine, device);
}

/* A device's page lists what is wrong with it now: firing, then pending; not resolved ones. */
static int hook_alerts(void *userdata, const char *device, json_t *arr)
{
    const struct fp_alert_service *svc = userdata;
    struct fp_alert_filter f = {.device = device, .state = FP_ALERT_FIRING};
    int r = fp_alert_engine_list(svc->engine, &f, arr);

    f.state = FP_ALERT_PENDING;
    return r != 0 ? r : fp_alert_engine_list(svc->engine, &f, arr);
}

/* The service behind srv's hook, or NULL when the hook is not ours (no --rules). */
static struct fp_alert_service *service_of(struct fp_query_server *srv)
{
    return srv->alert_hook.firing == hook_firing ? srv->alert_hook.userdata : NULL;
}

/* Logs once when pushes start failing and once when they succeed again: an Alertmanager down for
 * an hour must not write a line per retry (the counters on /metrics tell the rest). Pushes
 * complete asynchronously, so this reports what was known at the start of the round. */
static void log_push(struct fp_alert_service *svc)
{
    struct fp_alert_push_stats st;

    fp_alert_push_stats(svc->push, &st);
    if (st.retry_ms != 0 && !svc->push_down) {
        fp_log_warn("alerts",
                    "cannot push to Alertmanager (last status %d), retrying with "
                    "backoff",
                    st.last_status);
        svc->push_down = true;
    } else if (st.retry_ms == 0 && svc->push_down) {
        fp_log_info("alerts", "pushing to Alertmanager again");
        svc->push_down = false;
    }
}

/* After the last rule of a round: transitions, logs, the push. */
static void finish_round(struct fp_alert_service *svc)
{
    struct fp_alert_eval_result res;
    int r = fp_alert_engine_round_end(svc->engine, &res);

    /* -EINVAL: the round was cancelled by a reload; the next tick starts a fresh one. */
    if (r == -EINVAL)
        return;
    svc->evaluations++;
    svc->evaluated = true;
    svc->last_eval_ms = svc->round_now_ms;
    svc->last_eval_s = (double)svc->round_ns / 1e9;
    if (r != 0) {
        fp_log_error("alerts", "evaluation abandoned: %s", strerror(-r));
        return;
    }
    svc->rule_failures += res.rules_failed;
    if (res.first_error != 0 && res.first_error != svc->failing)
        fp_log_error("alerts",
                     "rule \"%s\" (and %zu more) cannot be evaluated: %s; its alerts "
                     "keep their state",
                     res.first_error_rule, res.rules_failed - 1,
                     fp_store_strerror(res.first_error));
    else if (res.first_error == 0 && svc->failing != 0)
        fp_log_info("alerts", "every rule evaluates again");
    svc->failing = res.first_error;
    if (res.save_error != 0)
        fp_log_error("alerts",
                     "cannot write the alert state file: %s, keeping the state in "
                     "memory",
                     strerror(-res.save_error));
    if (res.changed > 0)
        fp_log_info("alerts", "%zu firing, %zu pending, %zu resolved (%zu changed)", res.firing,
                    res.pending, res.resolved, res.changed);
    if (svc->push != NULL) {
        fp_alert_push_send(svc->push, fp_alert_engine_payload(svc->engine));
        log_push(svc);
    }
}

/* One rule per loop turn: a round over 10,000 devices reads millions of samples, and requests
 * that arrive meanwhile are served between its rules rather than after all of them. */
static void on_step(evutil_socket_t fd, short what, void *arg)
{
    struct fp_alert_service *svc = arg;
    struct timeval zero = {0, 0};
    int64_t start_ns = fp_clock_mono_ns();

    if (!fp_alert_engine_round_done(svc->engine)) {
        (void)fp_alert_engine_round_step(svc->engine, svc->srv->store);
        svc->round_ns += fp_clock_mono_ns() - start_ns;
        if (!fp_alert_engine_round_done(svc->engine) && evtimer_add(svc->step, &zero) == 0)
            return;
    }
    finish_round(svc);
}

static void start_round(struct fp_alert_service *svc)
{
    struct timeval zero = {0, 0};
    int r;

    svc->round_now_ms = svc->srv->now_ms();
    svc->round_ns = 0;
    r = fp_alert_engine_round_begin(svc->engine, svc->round_now_ms);
    if (r == -EBUSY) {
        /* The previous round is still going: one round at a time, this tick is skipped. */
        fp_log_debug("alerts", "previous evaluation still running, skipping a round");
        return;
    }
    if (r != 0) {
        fp_log_error("alerts", "cannot start an evaluation: %s", strerror(-r));
        return;
    }
    if (evtimer_add(svc->step, &zero) < 0)
        on_step(-1, 0, svc);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fp_alert_service *svc = arg;
    struct timeval tv = {
        .tv_sec = svc->eval_interval_ms / 1000,
        .tv_usec = (svc->eval_interval_ms % 1000) * 1000,
    };

    start_round(svc);
    if (evtimer_add(svc->timer, &tv) < 0)
        fp_log_error("alerts", "cannot schedule the next evaluation");
}

int fp_alert_service_new(struct event_base *base, struct fp_query_server *srv,
                         const struct fp_alert_service_options *opts, struct fp_alert_service **ret,
                         char *err, size_t err_size)
{
    struct fp_alert_service *svc;
    struct fp_ruleset *rules = NULL;
    struct fp_alert_options eo;
    struct fp_query_alert_hook hook;
    struct timeval now = {0, 0};
    char *state_path = NULL, *external = NULL, serr[512];
    int r;

    if (opts->rules_path == NULL || opts->eval_interval_ms <= 0) {
        fp_set_err(err, err_size, "invalid alert options");
        return -EINVAL;
    }
    r = fp_ruleset_load(opts->rules_path, &rules, err, err_size);
    if (r != 0)
        return r;
    svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        fp_ruleset_destroy(&rules);
        fp_set_err(err, err_size, "out of memory");
        return -ENOMEM;
    }
    svc->base = base;
    svc->srv = srv;
    svc->eval_interval_ms = opts->eval_interval_ms;
    svc->rules_path = strdup(opts->rules_path);
    if (opts->state_path == NULL) {
        state_path = malloc(strlen(opts->rules_path) + sizeof(".state"));
        if (state_path != NULL)
            (void)sprintf(state_path, "%s.state", opts->rules_path);
    }
    if (opts->external_url == NULL) {
        external = malloc(64);
        if (external != NULL)
            (void)snprintf(external, 64, "http://127.0.0.1:%u", (unsigned)srv->port);
    }
    r = -ENOMEM;
    if (svc->rules_path == NULL || (opts->state_path == NULL && state_path == NULL) ||
        (opts->external_url == NULL && external == NULL))
        goto oom;

    fp_alert_options_default(&eo);
    eo.state_path = opts->state_path != NULL ? opts->state_path : state_path;
    eo.silent_after_ms = srv->silent_after_ms;
    eo.eval_interval_ms = opts->eval_interval_ms;
    eo.external_url = opts->external_url != NULL ? opts->external_url : external;
    r = fp_alert_engine_new(&eo, rules, &svc->engine);
    rules = NULL; /* taken */
    if (r != 0)
        goto oom;
    r = fp_alert_engine_load_state(svc->engine, srv->now_ms(), serr, sizeof(serr));
    if (r == -ENOMEM)
        goto oom;
    if (r != 0)
        fp_log_warn("alerts", "%s, starting without the earlier alert state", serr);

    if (opts->alertmanager_url != NULL) {
        r = fp_alert_push_new(base, opts->alertmanager_url, &svc->push, err, err_size);
        if (r != 0)
            goto fail;
    }
    svc->timer = evtimer_new(base, on_timer, svc);
    svc->step = evtimer_new(base, on_step, svc);
    if (svc->timer == NULL || svc->step == NULL || evtimer_add(svc->timer, &now) < 0) {
        r = -ENOMEM;
        goto oom;
    }
    hook = (struct fp_query_alert_hook){
        .firing = hook_firing,
        .alerts = hook_alerts,
        .userdata = svc,
    };
    fp_query_server_set_alert_hook(srv, &hook);
    fp_log_info(
        "alerts", "%zu rules from \"%s\", evaluated every %" PRId64 " ms, state in \"%s\"%s%s",
        fp_alert_engine_rules(svc->engine)->n_rules, opts->rules_path, opts->eval_interval_ms,
        eo.state_path, opts->alertmanager_url != NULL ? ", pushed to " : "",
        opts->alertmanager_url != NULL ? opts->alertmanager_url : "");
    free(state_path);
    free(external);
    *ret = svc;
    return 0;

oom:
    fp_set_err(err, err_size, "out of memory");
fail:
    free(state_path);
    free(external);
    fp_ruleset_destroy(&rules);
    fp_alert_service_destroy(&svc);
    return r;
}

int fp_alert_service_reload(struct fp_alert_service *svc)
{
    struct fp_ruleset *rules = NULL;
    char err[512];
    int r = fp_ruleset_load(svc->rules_path, &rules, err, sizeof(err));

    if (r != 0) {
        svc->reloads_failed++;
        fp_log_error("alerts", "reload: %s; keeping the %zu rules loaded before", err,
                     fp_alert_engine_rules(svc->engine)->n_rules);
        return r;
    }
    svc->reloads_ok++;
    r = fp_alert_engine_set_rules(svc->engine, rules, svc->srv->now_ms());
    if (r != 0)
        fp_log_error("alerts",
                     "cannot write the alert state file: %s, keeping the state in "
                     "memory",
                     strerror(-r));
    fp_log_info("alerts", "reloaded %zu rules from \"%s\"",
                fp_alert_engine_rules(svc->engine)->n_rules, svc->rules_path);
    return 0;
}

void fp_alert_service_destroy(struct fp_alert_service **svc)
{
    char err[512];

    if (svc == NULL || *svc == NULL)
        return;
    if (service_of((*svc)->srv) == *svc)
        fp_query_server_set_alert_hook((*svc)->srv, NULL);
    if ((*svc)->timer != NULL)
        event_free((*svc)->timer);
    if ((*svc)->step != NULL)
        event_free((*svc)->step);
    fp_alert_push_destroy(&(*svc)->push);
    if ((*svc)->engine != NULL && fp_alert_engine_save((*svc)->engine, err, sizeof(err)) != 0)
        fp_log_error("alerts", "%s", err);
    fp_alert_engine_destroy(&(*svc)->engine);
    free((*svc)->rules_path);
    free(*svc);
    *svc = NULL;
}

int fp_api_alerts(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size)
{
    static const char *const allowed[] = {"state", "device", "alertname", NULL};
    struct fp_alert_service *svc = service_of(srv);
    struct fp_query_params p;
    struct fp_alert_filter f = {0};
    const char *state;
    json_t *root = NULL, *arr = NULL;
    int status = FP_HTTP_BAD_REQUEST;

    if (fp_query_params_parse(query, &p, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (fp_query_params_check(&p, allowed, err, err_size) < 0)
        goto out;
    state = fp_query_params_get(&p, "state");
    if (state != NULL) {
        if (strcmp(state, "pending") == 0)
            f.state = FP_ALERT_PENDING;
        else if (strcmp(state, "firing") == 0)
            f.state = FP_ALERT_FIRING;
        else if (strcmp(state, "resolved") == 0)
            f.state = FP_ALERT_RESOLVED;
        else {
            fp_set_err(err, err_size,
                       "parameter \"state\": \"%.64s\" is not pending, firing or resolved", state);
            goto out;
        }
    }
    f.device = fp_query_params_get(&p, "device");
    f.alertname = fp_query_params_get(&p, "alertname");
    for (int i = 0; i < 2; i++) {
        const char *v = i == 0 ? f.device : f.alertname;
        size_t max = i == 0 ? FP_QUERY_NAME_MAX : FP_RULE_NAME_MAX;
        if (v != NULL && (v[0] == '\0' || strlen(v) > max)) {
            fp_set_err(err, err_size, "parameter \"%s\": must be 1 to %zu bytes",
                       i == 0 ? "device" : "alertname", max);
            goto out;
        }
    }

    status = FP_HTTP_INTERNAL_ERROR;
    root = json_object();
    arr = json_array();
    if (root == NULL || arr == NULL || json_object_set(root, "alerts", arr) < 0 ||
        (svc != NULL && fp_alert_engine_list(svc->engine, &f, arr) < 0) ||
        json_object_set_new(
            root, "rules",
            json_integer(svc != NULL ? (json_int_t)fp_alert_engine_rules(svc->engine)->n_rules
                                     : 0)) < 0) {
        fp_set_err(err, err_size, "out of memory");
        goto out;
    }
    /* When the alerts were last evaluated: null before the first round or without --rules, so
     * a script can tell "no alerts" from "not evaluating". */
    if (json_object_set_new(root, "evaluated_at",
                            svc != NULL && svc->evaluated
                                ? json_real((double)svc->last_eval_ms / 1000)
                                : json_null()) < 0 ||
        fp_jsonout_value(out, root) < 0) {
        fp_set_err(err, err_size, "out of memory");
        goto out;
    }
    status = FP_HTTP_OK;

out:
    json_decref(arr);
    json_decref(root);
    fp_query_params_fini(&p);
    return status;
}

int fp_alert_metrics(struct fp_query_server *srv, struct evbuffer *out)
{
    struct fp_alert_service *svc = service_of(srv);
    struct fp_alert_push_stats ps = {0};
    json_t *arr;
    size_t n[4] = {0};
    int r = 0;

    if (svc == NULL)
        return 0;
    arr = json_array();
    if (arr == NULL || fp_alert_engine_list(svc->engine, NULL, arr) < 0) {
        json_decref(arr);
        return -ENOMEM;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_object_get(json_array_get(arr, i), "status"));
        n[s == NULL ? 0 : s[0] == 'p' ? 1 : s[0] == 'f' ? 2 : 3]++;
    }
    json_decref(arr);
    if (svc->push != NULL)
        fp_alert_push_stats(svc->push, &ps);

    r |= evbuffer_add_printf(
             out,
             "# HELP fleetpulse_query_alerts Alerts by state, after the last evaluation.\n"
             "# TYPE fleetpulse_query_alerts gauge\n"
             "fleetpulse_query_alerts{state=\"pending\"} %zu\n"
             "fleetpulse_query_alerts{state=\"firing\"} %zu\n"
             "fleetpulse_query_alerts{state=\"resolved\"} %zu\n"
             "# HELP fleetpulse_query_alert_rules Alert rules loaded.\n"
             "# TYPE fleetpulse_query_alert_rules gauge\n"
             "fleetpulse_query_alert_rules %zu\n"
             "# HELP fleetpulse_query_alert_evaluations_total Evaluation rounds run.\n"
             "# TYPE fleetpulse_query_alert_evaluations_total counter\n"
             "fleetpulse_query_alert_evaluations_total %" PRIu64 "\n"
             "# HELP fleetpulse_query_alert_rule_failures_total Rule evaluations that failed.\n"
             "# TYPE fleetpulse_query_alert_rule_failures_total counter\n"
             "fleetpulse_query_alert_rule_failures_total %" PRIu64 "\n"
             "# HELP fleetpulse_query_alert_evaluation_seconds Duration of the last round.\n"
             "# TYPE fleetpulse_query_alert_evaluation_seconds gauge\n"
             "fleetpulse_query_alert_evaluation_seconds %.6f\n"
             "# HELP fleetpulse_query_alert_rule_reloads_total Rule file reloads by outcome.\n"
             "# TYPE fleetpulse_query_alert_rule_reloads_total counter\n"
             "fleetpulse_query_alert_rule_reloads_total{result=\"success\"} %" PRIu64 "\n"
             "fleetpulse_query_alert_rule_reloads_total{result=\"failure\"} %" PRIu64 "\n"
             "# HELP fleetpulse_query_alerts_dropped_total Alerts not kept: the alert limit was "
             "reached.\n"
             "# TYPE fleetpulse_query_alerts_dropped_total counter\n"
             "fleetpulse_query_alerts_dropped_total %" PRIu64 "\n",
             n[1], n[2], n[3], fp_alert_engine_rules(svc->engine)->n_rules, svc->evaluations,
             svc->rule_failures, svc->last_eval_s, svc->reloads_ok, svc->reloads_failed,
             fp_alert_engine_dropped(svc->engine)) < 0;
    if (svc->push != NULL)
        r |=
            evbuffer_add_printf(
                out,
                "# HELP fleetpulse_query_alertmanager_requests_total Pushes to Alertmanager by "
                "outcome.\n"
                "# TYPE fleetpulse_query_alertmanager_requests_total counter\n"
                "fleetpulse_query_alertmanager_requests_total{result=\"success\"} %" PRIu64 "\n"
                "fleetpulse_query_alertmanager_requests_total{result=\"failure\"} %" PRIu64 "\n"
                "# HELP fleetpulse_query_alertmanager_alerts_sent_total Alerts in pushes "
                "Alertmanager "
                "accepted.\n"
                "# TYPE fleetpulse_query_alertmanager_alerts_sent_total counter\n"
                "fleetpulse_query_alertmanager_alerts_sent_total %" PRIu64 "\n"
                "# HELP fleetpulse_query_alertmanager_retry_seconds Current retry backoff; 0 while "
                "pushes succeed.\n"
                "# TYPE fleetpulse_query_alertmanager_retry_seconds gauge\n"
                "fleetpulse_query_alertmanager_retry_seconds %.3f\n",
                ps.succeeded, ps.failed, ps.alerts_sent, (double)ps.retry_ms / 1000) < 0;
    return r ? -ENOMEM : 0;
}
