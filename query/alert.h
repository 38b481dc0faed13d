/* The alert engine: evaluates the rules of a rule set (rules.h) against the store at a given
 * time and keeps each alert's state, pending -> firing -> resolved, across evaluations and,
 * through a state file, across restarts. No libevent here: the timer, the reload on SIGHUP and
 * the push to Alertmanager are in alert-service.h, so tests drive evaluation at chosen times.
 *
 * An alert is one rule and one label set: the labels the evaluation found (device, the group-by
 * or cohort labels), the rule's static labels, "severity" and "alertname". Threads: one engine
 * belongs to one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct fp_store;
struct fp_ruleset;
struct fp_alert_engine;

/* How long a resolved alert is kept (listed, and pushed to Alertmanager as resolved) before it
 * is forgotten: Prometheus's resolve retention, so a notifier that was down when the alert
 * resolved still hears of it. */
#define FP_ALERT_RESOLVED_KEEP_MS_DEFAULT (15 * 60 * 1000)

/* Most alerts (all rules, all states) kept at once; past it new alerts are dropped and counted,
 * so a rule with a label that explodes cannot exhaust memory. */
#define FP_ALERT_MAX_DEFAULT 100000

/* The wire names of the states. */
enum fp_alert_state {
    FP_ALERT_PENDING = 1, /**< condition true, for not yet elapsed */
    FP_ALERT_FIRING,      /**< condition true for at least the rule's for */
    FP_ALERT_RESOLVED,    /**< was firing, condition false now; kept for resolved_keep_ms */
};

struct fp_alert_options {
    const char *state_path;   /**< state file, written atomically when alerts change; NULL: none */
    int64_t silent_after_ms;  /**< device states (state.h): nothing for this long is silent */
    int64_t eval_interval_ms; /**< firing alerts' endsAt is the last evaluation + 4 intervals,
                                   so Alertmanager resolves them itself if we stop */
    int64_t resolved_keep_ms; /**< see FP_ALERT_RESOLVED_KEEP_MS_DEFAULT */
    size_t max_alerts;        /**< see FP_ALERT_MAX_DEFAULT */
    const char *external_url; /**< base of generatorURL, e.g. "http://127.0.0.1:9471" */
};

/* Fills *ret: no state file, FP_STATE_SILENT_AFTER_MS_DEFAULT, 15 s, the defaults above, and
 * external_url "http://127.0.0.1:9471" (the default listen address). */
void fp_alert_options_default(struct fp_alert_options *ret);

/* What one evaluation round did. */
struct fp_alert_eval_result {
    size_t rules_failed;        /**< rules whose evaluation failed; their alerts kept their state */
    int first_error;            /**< store code or -errno of the first failure; 0: none */
    char first_error_rule[160]; /**< its rule's name */
    size_t pending, firing, resolved; /**< alerts in each state after the round */
    size_t changed;                   /**< alerts created, deleted or changing state this round */
    int save_error;                   /**< 0, or -errno when the state file could not be written */
};

/* Creates an engine over rules. opts: strings copied. rules: takes (also on failure).
 * ret: out, new (fp_alert_engine_destroy). Returns 0, -EINVAL (bad options) or -ENOMEM. */
int fp_alert_engine_new(const struct fp_alert_options *opts, struct fp_ruleset *rules,
                        struct fp_alert_engine **ret);

/* Reads the state file (opts->state_path) written by an earlier engine: alerts come back with
 * their state and times, so a pending alert keeps counting its for and a firing one keeps its
 * startsAt. Alerts of rules no longer in the rule set are dropped when pending and resolved at
 * now_ms when firing. A missing file is an empty state (returns 0).
 * Returns 0, -EINVAL for a file that is not a state file (err says why; the engine is left
 * empty), -errno when it cannot be read, or -ENOMEM. */
int fp_alert_engine_load_state(struct fp_alert_engine *e, int64_t now_ms, char *err,
                               size_t err_size);

/* Replaces the rule set (takes rules). Alerts of rules that are gone resolve at now_ms (firing)
 * or are dropped (pending), and the state file is written when that changed anything; the
 * others keep their state and are evaluated by the new rule of the same name from the next
 * round. Returns 0, or -errno when the state file could not be written (the rules are replaced
 * all the same). */
int fp_alert_engine_set_rules(struct fp_alert_engine *e, struct fp_ruleset *rules, int64_t now_ms);

/* The current rule set, borrowed until the next set_rules or destroy. */
const struct fp_ruleset *fp_alert_engine_rules(const struct fp_alert_engine *e);

/* Evaluates every rule at now_ms through short read transactions on store (borrowed), moves
 * alerts between states, and writes the state file when something changed. A rule that fails
 * (store error) leaves its alerts as they were. ret: out, may be NULL.
 * Returns 0, -EBUSY while a sliced round (below) is in progress, or -ENOMEM (the round was
 * abandoned; states unchanged). */
int fp_alert_engine_eval(struct fp_alert_engine *e, struct fp_store *store, int64_t now_ms,
                         struct fp_alert_eval_result *ret);

/* The same round in slices, so a caller on an event loop can serve requests between rules:
 * round_begin(now_ms), then round_step (one rule each) until round_done, then round_end
 * (transitions, state file; ret as for eval). Alerts become visible as pending during the
 * round; states change only at its end. set_rules during a round cancels it.
 * round_begin returns 0, -EBUSY (a round is in progress) or -ENOMEM; round_step 0 or -ENOMEM
 * (the round then ends without transitions); round_end as eval, or -EINVAL without a round. */
int fp_alert_engine_round_begin(struct fp_alert_engine *e, int64_t now_ms);
int fp_alert_engine_round_step(struct fp_alert_engine *e, struct fp_store *store);
bool fp_alert_engine_round_done(const struct fp_alert_engine *e);
int fp_alert_engine_round_end(struct fp_alert_engine *e, struct fp_alert_eval_result *ret);

/* Writes the state file now (atomically: a temporary file, fsync, rename, fsync of the
 * directory). Returns 0 (also without a state file), or -errno with err set. */
int fp_alert_engine_save(struct fp_alert_engine *e, char *err, size_t err_size);

/* Whether an alert with label device == device is firing. A lookup in a set rebuilt after each
 * round. */
bool fp_alert_engine_device_firing(const struct fp_alert_engine *e, const char *device);

/* Which alerts fp_alert_engine_list appends; NULL fields and 0 states match everything. */
struct fp_alert_filter {
    enum fp_alert_state state; /**< 0: every state */
    const char *device;        /**< only alerts with this "device" label */
    const char *alertname;     /**< only alerts of this rule */
};

/* Appends the alerts that pass f (NULL: all) to arr (borrowed) as objects in Alertmanager's
 * alert shape plus state and value: {"labels", "annotations", "startsAt", "endsAt",
 * "generatorURL", "status", "value"}; sorted by alertname, then label set.
 * Returns 0 or -ENOMEM. */
int fp_alert_engine_list(const struct fp_alert_engine *e, const struct fp_alert_filter *f,
                         json_t *arr);

/* The body Alertmanager's POST /api/v2/alerts takes: every firing alert (endsAt the last round +
 * 4 intervals) and every kept resolved one (endsAt its resolution), no pending ones.
 * Returns a new array (possibly empty), or NULL when out of memory. */
json_t *fp_alert_engine_payload(const struct fp_alert_engine *e);

/* Alerts dropped because max_alerts was reached, since the engine was created. */
uint64_t fp_alert_engine_dropped(const struct fp_alert_engine *e);

/* Frees the engine; accepts NULL and *e == NULL, and nulls *e. Does not write the state file. */
void fp_alert_engine_destroy(struct fp_alert_engine **e);

/* Formats ts_ms as RFC 3339 in UTC with milliseconds ("2024-11-24T01:39:05.123Z") into buf
 * (size >= 32). */
void fp_alert_format_time(char *buf, size_t size, int64_t ts_ms);

/* "pending", "firing", "resolved". Static string. */
const char *fp_alert_state_name(enum fp_alert_state s);
