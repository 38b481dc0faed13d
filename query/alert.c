/* The alert engine: one evaluation round turns each rule into the label sets for which its
 * condition holds now, and moves every alert (rule + label set) along pending -> firing ->
 * resolved as Prometheus does:
 *   - a label set seen for the first time (or again after it resolved) is pending from now;
 *   - pending for at least the rule's `for` (0: the same round) -> firing;
 *   - pending and not seen -> forgotten, never notified;
 *   - firing and not seen -> resolved, kept resolved_keep_ms so notifiers hear of it, then
 *     forgotten.
 * A rule whose evaluation fails (store error) leaves its alerts untouched: a flaky read must not
 * resolve a real alert or restart a pending one's clock.
 *
 * Alerts live in one array, found by an open-addressing hash of their label set (the key is the
 * sorted labels, each length-prefixed so no label value can forge another set). The index is
 * rebuilt after each round, which is O(alerts) and keeps deletion trivial. Devices with a firing
 * alert go into a sorted array for the query service's per-device "degraded" lookups.
 *
 * The state file is JSON, written only when some alert changed state (not when only a value
 * moved), through a temporary file, fsync and rename, so a crash leaves the old or the new file,
 * never half of one. */
#include "alert.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "error.h"
#include "jsonout.h"
#include "rules.h"
#include "state.h"
#include "stats.h"
#include "store.h"

/* Most groups one threshold or cohort evaluation reads: one alert candidate each. */
#define MAX_GROUPS 1000000

/* Bumped when the state file's layout changes; an unknown version is refused at load. */
#define STATE_VERSION 1

struct alert {
    char *key;               /**< encoded label set (the identity) */
    struct fp_label *labels; /**< owned, sorted by name; includes alertname */
    size_t n_labels;
    struct fp_label *annotations; /**< owned, rendered at the last round it was seen */
    size_t n_annotations;
    enum fp_alert_state state;
    int64_t active_ms;   /**< became pending (the alert's startsAt) */
    int64_t fired_ms;    /**< became firing; 0 while pending */
    int64_t resolved_ms; /**< resolved; 0 unless resolved */
    double value;        /**< the rule's value at the last round it was seen */
    bool seen;           /**< condition true in the current round */
};

struct fp_alert_engine {
    char *state_path;
    char *external_url;
    int64_t silent_after_ms;
    int64_t eval_interval_ms;
    int64_t resolved_keep_ms;
    size_t max_alerts;
    struct fp_ruleset *rules;
    struct alert *alerts;
    size_t n_alerts, cap_alerts;
    size_t *slots;               /**< hash of key -> alert index + 1; 0: empty */
    size_t n_slots;              /**< a power of two, at least twice n_alerts */
    const char **firing_devices; /**< sorted; borrowed from the alerts' labels */
    size_t n_firing_devices;
    int64_t last_eval_ms;
    size_t changed; /**< state changes in the current round */
    /* The round in progress (fp_alert_engine_round_*). */
    bool in_round;
    int64_t round_now_ms;
    bool *round_failed; /**< per rule of the current set: its evaluation failed */
    size_t round_next;  /**< next rule to evaluate */
    int round_err;      /**< -ENOMEM: the round takes no transition */
    struct fp_alert_eval_result round_res;
    uint64_t dropped;
};

void fp_alert_options_default(struct fp_alert_options *ret)
{
    *ret = (struct fp_alert_options){
        .state_path = NULL,
        .silent_after_ms = FP_STATE_SILENT_AFTER_MS_DEFAULT,
        .eval_interval_ms = 15000,
        .resolved_keep_ms = FP_ALERT_RESOLVED_KEEP_MS_DEFAULT,
        .max_alerts = FP_ALERT_MAX_DEFAULT,
        .external_url = "http://127.0.0.1:9471",
    };
}

const char *fp_alert_state_name(enum fp_alert_state s)
{
    switch (s) {
    case FP_ALERT_PENDING:
        return "pending";
    case FP_ALERT_FIRING:
        return "firing";
    case FP_ALERT_RESOLVED:
        return "resolved";
    }
    return "unknown";
}

static int state_parse(const char *s, enum fp_alert_state *ret)
{
    for (enum fp_alert_state st = FP_ALERT_PENDING; st <= FP_ALERT_RESOLVED; st++) {
        if (strcmp(s, fp_alert_state_name(st)) == 0) {
            *ret = st;
            return 0;
        }
    }
    return -EINVAL;
}

void fp_alert_format_time(char *buf, size_t size, int64_t ts_ms)
{
    time_t secs = (time_t)(ts_ms >= 0 ? ts_ms / 1000 : (ts_ms - 999) / 1000);
    int ms = (int)(ts_ms - (int64_t)secs * 1000);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL) {
        (void)snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    (void)snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* --- alerts and the index -------------------------------------------------------------------- */

static void pairs_free(struct fp_label *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)p[i].name);
        free((char *)p[i].value);
    }
    free(p);
}

static void alert_fini(struct alert *a)
{
    free(a->key);
    pairs_free(a->labels, a->n_labels);
    pairs_free(a->annotations, a->n_annotations);
    memset(a, 0, sizeof(*a));
}

/* Deep copy of n pairs; NULL when out of memory (or n == 0 with *ret NULL: returns 0). */
static int pairs_dup(const struct fp_label *src, size_t n, struct fp_label **ret)
{
    struct fp_label *p;

    *ret = NULL;
    if (n == 0)
        return 0;
    p = calloc(n, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        p[i].name = strdup(src[i].name);
        p[i].value = strdup(src[i].value);
        if (p[i].name == NULL || p[i].value == NULL) {
            pairs_free(p, i + 1);
            return -ENOMEM;
        }
    }
    *ret = p;
    return 0;
}

/* The identity of a sorted label set: "len:name=len:value," per label. */
static char *labels_key(const struct fp_label *labels, size_t n)
{
    size_t len = 1;
    char *key, *p;

    for (size_t i = 0; i < n; i++)
        len += strlen(labels[i].name) + strlen(labels[i].value) + 2 * 21 + 4;
    key = malloc(len);
    if (key == NULL)
        return NULL;
    p = key;
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%zu:%s=%zu:%s,", strlen(labels[i].name), labels[i].name,
                     strlen(labels[i].value), labels[i].value);
    *p = '\0';
    return key;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static const char *label_get(const struct fp_label *labels, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(labels[i].name, name) == 0)
            return labels[i].value;
    return NULL;
}

static void index_insert(struct fp_alert_engine *e, size_t idx)
{
    size_t mask = e->n_slots - 1, s = (size_t)hash_str(e->alerts[idx].key) & mask;

    while (e->slots[s] != 0)
        s = (s + 1) & mask;
    e->slots[s] = idx + 1;
}

/* Rebuilds the hash for the current array. Returns 0 or -ENOMEM (the old index stays valid
 * only if nothing moved; callers treat -ENOMEM as fatal for the round). */
static int index_rebuild(struct fp_alert_engine *e)
{
    size_t n = 64;
    size_t *slots;

    while (n < 2 * e->n_alerts + 2)
        n *= 2;
    slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    free(e->slots);
    e->slots = slots;
    e->n_slots = n;
    for (size_t i = 0; i < e->n_alerts; i++)
        index_insert(e, i);
    return 0;
}

static struct alert *index_find(const struct fp_alert_engine *e, const char *key)
{
    size_t mask = e->n_slots - 1, s = (size_t)hash_str(key) & mask;

    for (; e->slots[s] != 0; s = (s + 1) & mask)
        if (strcmp(e->alerts[e->slots[s] - 1].key, key) == 0)
            return &e->alerts[e->slots[s] - 1];
    return NULL;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rebuilds the sorted set of devices with a firing alert. */
static int firing_rebuild(struct fp_alert_engine *e)
{
    const char **devs = NULL;
    size_t n = 0;

    if (e->n_alerts > 0) {
        devs = malloc(e->n_alerts * sizeof(*devs));
        if (devs == NULL)
            return -ENOMEM;
    }
    for (size_t i = 0; i < e->n_alerts; i++) {
        const char *d = label_get(e->alerts[i].labels, e->alerts[i].n_labels, "device");
        if (e->alerts[i].state == FP_ALERT_FIRING && d != NULL)
            devs[n++] = d;
    }
    if (n > 1)
        qsort(devs, n, sizeof(*devs), cmp_str_ptr);
    /* One entry per device. */
    if (n > 1) {
        size_t w = 1;
        for (size_t i = 1; i < n; i++)
            if (strcmp(devs[i], devs[w - 1]) != 0)
                devs[w++] = devs[i];
        n = w;
    }
    free(e->firing_devices);
    e->firing_devices = devs;
    e->n_firing_devices = n;
    return 0;
}

/* Drops alert i (swap with the last); the index must be rebuilt afterwards. */
static void alert_remove(struct fp_alert_engine *e, size_t i)
{
    alert_fini(&e->alerts[i]);
    if (i != e->n_alerts - 1)
        e->alerts[i] = e->alerts[e->n_alerts - 1];
    memset(&e->alerts[e->n_alerts - 1], 0, sizeof(e->alerts[0]));
    e->n_alerts--;
}

/* Appends a new alert with labels (taken) and key (taken). Returns it, or NULL when out of
 * memory (then labels and key are freed). */
static struct alert *alert_add(struct fp_alert_engine *e, struct fp_label *labels, size_t n,
                               char *key)
{
    struct alert *a;

    if (e->n_alerts == e->cap_alerts) {
        size_t cap = e->cap_alerts == 0 ? 16 : 2 * e->cap_alerts;
        struct alert *p = realloc(e->alerts, cap * sizeof(*p));
        if (p == NULL) {
            pairs_free(labels, n);
            free(key);
            return NULL;
        }
        e->alerts = p;
        e->cap_alerts = cap;
    }
    /* Keep the hash at most half full: it only grows here between rebuilds. */
    if (2 * (e->n_alerts + 1) + 2 > e->n_slots) {
        e->n_alerts++;
        e->alerts[e->n_alerts - 1] = (struct alert){.key = key, .labels = labels, .n_labels = n};
        if (index_rebuild(e) < 0) {
            e->n_alerts--;
            pairs_free(labels, n);
            free(key);
            return NULL;
        }
        return &e->alerts[e->n_alerts - 1];
    }
    a = &e->alerts[e->n_alerts++];
    *a = (struct alert){.key = key, .labels = labels, .n_labels = n};
    index_insert(e, e->n_alerts - 1);
    return a;
}

/* --- lifecycle ------------------------------------------------------------------------------- */

int fp_alert_engine_new(const struct fp_alert_options *opts, struct fp_ruleset *rules,
                        struct fp_alert_engine **ret)
{
    struct fp_alert_engine *e;

    if (opts->silent_after_ms <= 0 || opts->eval_interval_ms <= 0 || opts->resolved_keep_ms < 0 ||
        opts->max_alerts == 0 || opts->external_url == NULL) {
        fp_ruleset_destroy(&rules);
        return -EINVAL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        fp_ruleset_destroy(&rules);
        return -ENOMEM;
    }
    e->rules = rules;
    e->silent_after_ms = opts->silent_after_ms;
    e->eval_interval_ms = opts->eval_interval_ms;
    e->resolved_keep_ms = opts->resolved_keep_ms;
    e->max_alerts = opts->max_alerts;
    e->external_url = strdup(opts->external_url);
    if (opts->state_path != NULL)
        e->state_path = strdup(opts->state_path);
    if (e->external_url == NULL || (opts->state_path != NULL && e->state_path == NULL) ||
        index_rebuild(e) < 0) {
        fp_alert_engine_destroy(&e);
        return -ENOMEM;
    }
    /* Strip one trailing '/' so generatorURL never holds "//api". */
    if (strlen(e->external_url) > 0 && e->external_url[strlen(e->external_url) - 1] == '/')
        e->external_url[strlen(e->external_url) - 1] = '\0';
    *ret = e;
    return 0;
}

void fp_alert_engine_destroy(struct fp_alert_engine **e)
{
    if (e == NULL || *e == NULL)
        return;
    for (size_t i = 0; i < (*e)->n_alerts; i++)
        alert_fini(&(*e)->alerts[i]);
    free((*e)->alerts);
    free((*e)->slots);
    free((*e)->firing_devices);
    free((*e)->round_failed);
    fp_ruleset_destroy(&(*e)->rules);
    free((*e)->state_path);
    free((*e)->external_url);
    free(*e);
    *e = NULL;
}

const struct fp_ruleset *fp_alert_engine_rules(const struct fp_alert_engine *e)
{
    return e->rules;
}

uint64_t fp_alert_engine_dropped(const struct fp_alert_engine *e)
{
    return e->dropped;
}

static void round_cancel(struct fp_alert_engine *e);

/* Resolves (firing) or drops (pending) the alerts whose rule is not in the current set. */
static void retire_orphans(struct fp_alert_engine *e, int64_t now_ms)
{
    for (size_t i = 0; i < e->n_alerts;) {
        struct alert *a = &e->alerts[i];
        const char *name = label_get(a->labels, a->n_labels, "alertname");

        if (name != NULL && fp_ruleset_find(e->rules, name) != NULL) {
            i++;
            continue;
        }
        if (a->state == FP_ALERT_FIRING) {
            a->state = FP_ALERT_RESOLVED;
            a->resolved_ms = now_ms;
            e->changed++;
            i++;
        } else if (a->state == FP_ALERT_PENDING) {
            alert_remove(e, i);
            e->changed++;
        } else {
            i++;
        }
    }
}

int fp_alert_engine_set_rules(struct fp_alert_engine *e, struct fp_ruleset *rules, int64_t now_ms)
{
    /* A round half done belongs to the old rules: drop it, the next one starts afresh. */
    round_cancel(e);
    fp_ruleset_destroy(&e->rules);
    e->rules = rules;
    e->changed = 0;
    retire_orphans(e, now_ms);
    /* On -ENOMEM the previous (larger) index and set stay; the next round rebuilds both. */
    (void)index_rebuild(e);
    (void)firing_rebuild(e);
    if (e->changed > 0 && e->state_path != NULL)
        return fp_alert_engine_save(e, NULL, 0);
    return 0;
}

bool fp_alert_engine_device_firing(const struct fp_alert_engine *e, const char *device)
{
    return e->n_firing_devices > 0 && bsearch(&device, e->firing_devices, e->n_firing_devices,
                                              sizeof(*e->firing_devices), cmp_str_ptr) != NULL;
}

/* --- one round ------------------------------------------------------------------------------- */

/* Kind-specific numbers for annotations ({{ $values.NAME }}). */
struct extra {
    const char *names[8];
    double values[8];
    size_t n;
};

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct fp_label *)a)->name, ((const struct fp_label *)b)->name);
}

/* Sets name=value in the scratch label list (replacing an existing name). */
static void scratch_set(struct fp_label *l, size_t *n, const char *name, const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(l[i].name, name) == 0) {
            l[i].value = value;
            return;
        }
    }
    l[*n].name = name;
    l[*n].value = value;
    (*n)++;
}

/* The condition of rule holds for the label set dyn (borrowed) with value: finds or creates the
 * alert and marks it seen. Rule labels win over found ones, severity and alertname over both. */
static int emit(struct fp_alert_engine *e, const struct fp_rule *rule, const struct fp_label *dyn,
                size_t n_dyn, double value, const struct extra *x, int64_t now_ms)
{
    struct fp_label scratch[FP_AGG_BY_MAX + FP_RULE_PAIRS_MAX + 4], *labels = NULL, *ann;
    size_t n = 0;
    struct alert *a;
    char *key;

    for (size_t i = 0; i < n_dyn && i < FP_AGG_BY_MAX + 1; i++)
        scratch_set(scratch, &n, dyn[i].name, dyn[i].value);
    for (size_t i = 0; i < rule->n_labels; i++)
        scratch_set(scratch, &n, rule->labels[i].name, rule->labels[i].value);
    scratch_set(scratch, &n, "severity", rule->severity);
    scratch_set(scratch, &n, "alertname", rule->name);
    qsort(scratch, n, sizeof(scratch[0]), cmp_label);

    key = labels_key(scratch, n);
    if (key == NULL)
        return -ENOMEM;
    a = index_find(e, key);
    if (a != NULL) {
        free(key);
        if (a->state == FP_ALERT_RESOLVED) {
            a->state = FP_ALERT_PENDING;
            a->active_ms = now_ms;
            a->fired_ms = 0;
            a->resolved_ms = 0;
            e->changed++;
        }
    } else {
        if (e->n_alerts >= e->max_alerts) {
            free(key);
            e->dropped++;
            return 0;
        }
        if (pairs_dup(scratch, n, &labels) < 0) {
            free(key);
            return -ENOMEM;
        }
        a = alert_add(e, labels, n, key);
        if (a == NULL)
            return -ENOMEM;
        a->state = FP_ALERT_PENDING;
        a->active_ms = now_ms;
        e->changed++;
    }
    a->seen = true;
    a->value = value;

    ann = rule->n_annotations > 0 ? calloc(rule->n_annotations, sizeof(*ann)) : NULL;
    if (rule->n_annotations > 0 && ann == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < rule->n_annotations; i++) {
        ann[i].name = strdup(rule->annotations[i].name);
        ann[i].value = fp_rule_render(rule->annotations[i].value, a->labels, a->n_labels, value,
                                      x != NULL ? x->names : NULL, x != NULL ? x->values : NULL,
                                      x != NULL ? x->n : 0);
        if (ann[i].name == NULL || ann[i].value == NULL) {
            pairs_free(ann, i + 1);
            return -ENOMEM;
        }
    }
    pairs_free(a->annotations, a->n_annotations);
    a->annotations = ann;
    a->n_annotations = rule->n_annotations;
    return 0;
}

static bool compare(enum fp_rule_op op, double v, double t)
{
    switch (op) {
    case FP_RULE_GT:
        return v > t;
    case FP_RULE_GE:
        return v >= t;
    case FP_RULE_LT:
        return v < t;
    case FP_RULE_LE:
        return v <= t;
    case FP_RULE_EQ:
        return v == t;
    case FP_RULE_NE:
        return v != t;
    }
    return false;
}

/* Aggregates rule's metric (plus extra, and the rule's matchers) over the window ending at
 * now_ms into one bucket per group of by. */
static int aggregate_window(struct fp_store_reader *rd, const struct fp_rule *rule,
                            const struct fp_matcher *extra, size_t n_extra, const char *const *by,
                            size_t n_by, int64_t now_ms, struct fp_agg_result **ret)
{
    struct fp_matcher m[FP_RULE_MATCHERS_MAX + 4];
    size_t n = 0;
    struct fp_agg_query q;

    m[n++] = (struct fp_matcher){.name = "__name__", .value = rule->metric, .op = FP_MATCH_EQ};
    for (size_t i = 0; i < rule->n_matchers; i++)
        m[n++] = rule->matchers[i];
    for (size_t i = 0; i < n_extra; i++)
        m[n++] = extra[i];
    /* The window is (now - window, now]: a sample stamped exactly now counts, as it does in a
     * PromQL range selector; the aggregation's range is half-open [from, to). */
    q = (struct fp_agg_query){
        .matchers = m,
        .n_matchers = n,
        .from_ms = now_ms - rule->window_ms + 1,
        .to_ms = now_ms + 1,
        .step_ms = rule->window_ms,
        .fn = rule->agg,
        .q = rule->q,
        .by = by,
        .n_by = n_by,
        .max_points = MAX_GROUPS,
    };
    return fp_store_aggregate(rd, &q, ret);
}

static int eval_threshold(struct fp_alert_engine *e, struct fp_store_reader *rd,
                          const struct fp_rule *rule, int64_t now_ms)
{
    struct fp_agg_result *res = NULL;
    int r = aggregate_window(rd, rule, NULL, 0, (const char *const *)rule->by, rule->n_by, now_ms,
                             &res);

    if (r != 0)
        return r;
    for (size_t g = 0; g < res->n_groups && r == 0; g++) {
        const struct fp_agg_group *grp = &res->groups[g];
        double v = grp->points[grp->n_points - 1].value;
        if (!isnan(v) && compare(rule->op, v, rule->threshold))
            r = emit(e, rule, grp->labels, grp->n_labels, v, NULL, now_ms);
    }
    fp_agg_result_destroy(&res);
    return r;
}

/* Device rules: the device's state, filtered by the rule's matchers over "device" and the
 * identity pairs. */
struct device_ctx {
    struct fp_alert_engine *e;
    const struct fp_rule *rule;
    regex_t *rx; /**< per matcher; compiled for RE/NRE only */
    int64_t now_ms;
    int err;
};

static const char *device_label(const struct fp_device_desc *d, const char *name)
{
    const char *v;

    if (strcmp(name, "device") == 0)
        return d->device;
    v = label_get(d->info, d->n_info, name);
    /* Series carry "hw"; the identity pair it is stamped from is "hw_class". */
    if (v == NULL && strcmp(name, "hw") == 0)
        v = label_get(d->info, d->n_info, "hw_class");
    return v != NULL ? v : "";
}

static int on_device(void *userdata, const struct fp_device_desc *d)
{
    struct device_ctx *c = userdata;
    const struct fp_rule *rule = c->rule;
    enum fp_device_state st;
    struct fp_label dyn;
    struct extra x;

    /* "@collector" and friends are the service's own series, not a device of the fleet. */
    if (d->device[0] == '@')
        return 0;
    for (size_t i = 0; i < rule->n_matchers; i++) {
        const struct fp_matcher *m = &rule->matchers[i];
        const char *v = device_label(d, m->name);
        bool ok;
        switch (m->op) {
        case FP_MATCH_EQ:
            ok = strcmp(v, m->value) == 0;
            break;
        case FP_MATCH_NE:
            ok = strcmp(v, m->value) != 0;
            break;
        case FP_MATCH_RE:
            ok = regexec(&c->rx[i], v, 0, NULL, 0) == 0;
            break;
        default:
            ok = regexec(&c->rx[i], v, 0, NULL, 0) != 0;
            break;
        }
        if (!ok)
            return 0;
    }
    st = fp_state_of(c->now_ms, d->last_seen_ms, d->interval_ms, c->e->silent_after_ms, false);
    if (st == FP_STATE_SILENT || (rule->kind == FP_RULE_DEVICE_STALE && st == FP_STATE_STALE)) {
        dyn = (struct fp_label){.name = "device", .value = d->device};
        x = (struct extra){
            .names = {"last_seen", "interval_seconds"},
            .values = {(double)d->last_seen_ms / 1000,
                       (double)fp_state_interval_ms(d->interval_ms) / 1000},
            .n = 2,
        };
        /* $value: seconds since the last batch, what the person paged wants to know first. */
        c->err =
            emit(c->e, rule, &dyn, 1, (double)(c->now_ms - d->last_seen_ms) / 1000, &x, c->now_ms);
        if (c->err != 0)
            return 1;
    }
    return 0;
}

static int eval_devices(struct fp_alert_engine *e, struct fp_store_reader *rd,
                        const struct fp_rule *rule, int64_t now_ms)
{
    regex_t rx[FP_RULE_MATCHERS_MAX];
    bool compiled[FP_RULE_MATCHERS_MAX] = {false};
    struct device_ctx c = {.e = e, .rule = rule, .rx = rx, .now_ms = now_ms};
    int r = 0;

    for (size_t i = 0; i < rule->n_matchers && r == 0; i++) {
        char *anchored;
        if (rule->matchers[i].op != FP_MATCH_RE && rule->matchers[i].op != FP_MATCH_NRE)
            continue;
        anchored = malloc(strlen(rule->matchers[i].value) + 8);
        if (anchored == NULL) {
            r = -ENOMEM;
            break;
        }
        (void)sprintf(anchored, "^(%s)$", rule->matchers[i].value);
        /* Validated when the rules were parsed; a failure here is memory. */
        r = regcomp(&rx[i], anchored, REG_EXTENDED | REG_NOSUB) == 0 ? 0 : -ENOMEM;
        compiled[i] = r == 0;
        free(anchored);
    }
    if (r == 0) {
        r = fp_store_devices(rd, on_device, &c);
        if (r == 1)
            r = c.err;
    }
    for (size_t i = 0; i < rule->n_matchers; i++)
        if (compiled[i])
            regfree(&rx[i]);
    return r;
}

/* A device's value in a cohort evaluation. */
struct member {
    const char *device; /**< borrowed from the aggregation result */
    char *cohort;       /**< the cohort's label values, encoded as a key */
    const struct fp_agg_group *group;
    double value;
};

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c = strcmp(x->cohort, y->cohort);

    return c != 0 ? c : strcmp(x->device, y->device);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static int eval_below_cohort(struct fp_alert_engine *e, struct fp_store_reader *rd,
                             const struct fp_rule *rule, int64_t now_ms)
{
    const char *by[FP_RULE_BY_MAX + 1];
    struct fp_agg_result *res = NULL;
    struct member *mem = NULL;
    double *vals = NULL;
    size_t n = 0;
    int r;

    for (size_t i = 0; i < rule->n_by; i++)
        by[i] = rule->by[i];
    by[rule->n_by] = "device";
    r = aggregate_window(rd, rule, NULL, 0, by, rule->n_by + 1, now_ms, &res);
    if (r != 0)
        return r;
    mem = calloc(res->n_groups + 1, sizeof(*mem));
    vals = calloc(res->n_groups + 1, sizeof(*vals));
    if (mem == NULL || vals == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t g = 0; g < res->n_groups; g++) {
        const struct fp_agg_group *grp = &res->groups[g];
        const char *dev = label_get(grp->labels, grp->n_labels, "device");
        struct fp_label cl[FP_RULE_BY_MAX];
        double v = grp->points[grp->n_points - 1].value;

        if (dev == NULL || !isfinite(v))
            continue;
        /* A device lacking a cohort label is in the cohort where that label is "". */
        for (size_t i = 0; i < rule->n_by; i++) {
            const char *cv = label_get(grp->labels, grp->n_labels, rule->by[i]);
            cl[i] = (struct fp_label){.name = rule->by[i], .value = cv != NULL ? cv : ""};
        }
        mem[n] = (struct member){.device = dev, .group = grp, .value = v};
        mem[n].cohort = labels_key(cl, rule->n_by);
        if (mem[n].cohort == NULL) {
            r = -ENOMEM;
            goto out;
        }
        n++;
    }
    qsort(mem, n, sizeof(*mem), cmp_member);
    for (size_t i = 0; i < n && r == 0;) {
        size_t j = i, k;
        double median;

        while (j < n && strcmp(mem[j].cohort, mem[i].cohort) == 0)
            j++;
        for (k = i; k < j; k++)
            vals[k - i] = mem[k].value;
        qsort(vals, j - i, sizeof(*vals), cmp_double);
        median = fp_stats_quantile_sorted(vals, j - i, 0.5);
        /* A median of zero or less has no meaningful fraction (an idle cohort). */
        for (k = i; j - i >= rule->min_devices && median > 0 && k < j && r == 0; k++) {
            struct fp_label dyn[FP_RULE_BY_MAX + 1];
            size_t nd = 0;
            struct extra x;

            if (!(mem[k].value < rule->fraction * median))
                continue;
            dyn[nd++] = (struct fp_label){.name = "device", .value = mem[k].device};
            for (size_t b = 0; b < rule->n_by; b++) {
                const char *cv =
                    label_get(mem[k].group->labels, mem[k].group->n_labels, rule->by[b]);
                if (cv != NULL)
                    dyn[nd++] = (struct fp_label){.name = rule->by[b], .value = cv};
            }
            x = (struct extra){
                .names = {"device_value", "cohort_median", "cohort_devices"},
                .values = {mem[k].value, median, (double)(j - i)},
                .n = 3,
            };
            r = emit(e, rule, dyn, nd, mem[k].value / median, &x, now_ms);
        }
        i = j;
    }

out:
    for (size_t i = 0; mem != NULL && i < n; i++)
        free(mem[i].cohort);
    free(mem);
    free(vals);
    fp_agg_result_destroy(&res);
    return r;
}

/* Appends the devices with label == value (one value each over the window) to *mem, each with
 * its stratum's key (new, freed by the caller; "" without strata). */
static int cohort_collect(struct fp_store_reader *rd, const struct fp_rule *rule, const char *value,
                          bool is_b, int64_t now_ms, struct fp_stats_member **mem, size_t *n,
                          size_t *cap)
{
    const char *by[FP_RULE_BY_MAX + 1] = {"device"};
    struct fp_matcher m = {.name = rule->label, .value = value, .op = FP_MATCH_EQ};
    struct fp_agg_result *res = NULL;
    int r;

    for (size_t i = 0; i < rule->n_by; i++)
        by[i + 1] = rule->by[i];
    r = aggregate_window(rd, rule, &m, 1, by, rule->n_by + 1, now_ms, &res);
    for (size_t g = 0; r == 0 && g < res->n_groups; g++) {
        const struct fp_agg_group *grp = &res->groups[g];
        struct fp_label sl[FP_RULE_BY_MAX];
        double x = grp->points[grp->n_points - 1].value;

        if (!isfinite(x))
            continue;
        if (*n == *cap) {
            size_t nc = *cap == 0 ? 64 : 2 * *cap;
            struct fp_stats_member *p = realloc(*mem, nc * sizeof(*p));
            if (p == NULL) {
                r = -ENOMEM;
                break;
            }
            *mem = p;
            *cap = nc;
        }
        for (size_t i = 0; i < rule->n_by; i++) {
            const char *v = label_get(grp->labels, grp->n_labels, rule->by[i]);
            sl[i] = (struct fp_label){.name = rule->by[i], .value = v != NULL ? v : ""};
        }
        (*mem)[*n] = (struct fp_stats_member){.value = x, .is_b = is_b};
        (*mem)[*n].stratum = labels_key(sl, rule->n_by);
        if ((*mem)[*n].stratum == NULL) {
            r = -ENOMEM;
            break;
        }
        (*n)++;
    }
    fp_agg_result_destroy(&res);
    return r;
}

static int eval_regression(struct fp_alert_engine *e, struct fp_store_reader *rd,
                           const struct fp_rule *rule, int64_t now_ms)
{
    struct fp_stats_member *mem = NULL;
    struct fp_stats_split cs = {0};
    size_t n = 0, cap = 0;
    double ma, mb, change, worse;
    struct fp_mwu mwu;
    struct fp_label dyn;
    struct extra x;
    int r;

    r = cohort_collect(rd, rule, rule->a, false, now_ms, &mem, &n, &cap);
    if (r == 0)
        r = cohort_collect(rd, rule, rule->b, true, now_ms, &mem, &n, &cap);
    if (r == 0)
        r = fp_stats_stratify(mem, n, rule->n_by > 0, &cs);
    if (r != 0 || cs.raw_a.n < rule->min_devices || cs.raw_b.n < rule->min_devices)
        goto out;
    ma = fp_stats_median(&cs.eff_a);
    mb = fp_stats_median(&cs.eff_b);
    /* The relative change needs a baseline away from zero. */
    if (!(fabs(ma) > 0))
        goto out;
    change = (mb - ma) / fabs(ma);
    worse = rule->higher_is_worse ? change : -change;
    r = fp_stats_mann_whitney(cs.cmp_a.v, cs.cmp_a.n, cs.cmp_b.v, cs.cmp_b.n, &mwu);
    if (r != 0)
        goto out;
    if (worse > rule->min_change && mwu.p < rule->alpha) {
        dyn = (struct fp_label){.name = rule->label, .value = rule->b};
        x = (struct extra){
            .names = {"a_median", "b_median", "a_devices", "b_devices", "p_value",
                      "change_percent"},
            .values = {fp_stats_median(&cs.raw_a), fp_stats_median(&cs.raw_b), (double)cs.raw_a.n,
                       (double)cs.raw_b.n, mwu.p, 100 * change},
            .n = 6,
        };
        r = emit(e, rule, &dyn, 1, change, &x, now_ms);
    }

out:
    for (size_t i = 0; i < n; i++)
        free((char *)mem[i].stratum);
    free(mem);
    fp_stats_split_fini(&cs);
    return r;
}

static int eval_rule(struct fp_alert_engine *e, struct fp_store *store, const struct fp_rule *rule,
                     int64_t now_ms)
{
    struct fp_store_reader *rd = NULL;
    int r = fp_store_reader_open(store, &rd);

    if (r != 0)
        return r;
    switch (rule->kind) {
    case FP_RULE_THRESHOLD:
        r = eval_threshold(e, rd, rule, now_ms);
        break;
    case FP_RULE_DEVICE_SILENT:
    case FP_RULE_DEVICE_STALE:
        r = eval_devices(e, rd, rule, now_ms);
        break;
    case FP_RULE_BELOW_COHORT:
        r = eval_below_cohort(e, rd, rule, now_ms);
        break;
    case FP_RULE_COHORT_REGRESSION:
        r = eval_regression(e, rd, rule, now_ms);
        break;
    }
    fp_store_reader_close(&rd);
    return r;
}

int fp_alert_engine_round_begin(struct fp_alert_engine *e, int64_t now_ms)
{
    if (e->in_round)
        return -EBUSY;
    e->round_failed = calloc(e->rules->n_rules + 1, sizeof(*e->round_failed));
    if (e->round_failed == NULL)
        return -ENOMEM;
    e->in_round = true;
    e->round_now_ms = now_ms;
    e->round_next = 0;
    e->round_err = 0;
    e->round_res = (struct fp_alert_eval_result){0};
    e->changed = 0;
    for (size_t i = 0; i < e->n_alerts; i++)
        e->alerts[i].seen = false;
    return 0;
}

bool fp_alert_engine_round_done(const struct fp_alert_engine *e)
{
    return !e->in_round || e->round_err != 0 || e->round_next >= e->rules->n_rules;
}

int fp_alert_engine_round_step(struct fp_alert_engine *e, struct fp_store *store)
{
    struct fp_alert_eval_result *res = &e->round_res;
    const struct fp_rule *rule;
    size_t i = e->round_next;
    int r;

    if (fp_alert_engine_round_done(e))
        return 0;
    rule = &e->rules->rules[i];
    e->round_next++;
    r = eval_rule(e, store, rule, e->round_now_ms);
    if (r == -ENOMEM) {
        e->round_err = -ENOMEM;
        return -ENOMEM;
    }
    if (r != 0) {
        e->round_failed[i] = true;
        res->rules_failed++;
        if (res->first_error == 0) {
            res->first_error = r;
            (void)snprintf(res->first_error_rule, sizeof(res->first_error_rule), "%s", rule->name);
        }
    }
    return 0;
}

/* Drops the round's bookkeeping without taking any transition. */
static void round_cancel(struct fp_alert_engine *e)
{
    free(e->round_failed);
    e->round_failed = NULL;
    e->in_round = false;
}

int fp_alert_engine_round_end(struct fp_alert_engine *e, struct fp_alert_eval_result *ret)
{
    struct fp_alert_eval_result res;
    int64_t now_ms = e->round_now_ms;
    int r;

    if (!e->in_round)
        return -EINVAL;
    res = e->round_res;
    /* Out of memory mid-round, or rules left unevaluated: some alerts were marked seen and
     * others not, so no transition is taken this round (new pending alerts stay; they are
     * true). */
    r = e->round_err != 0 ? e->round_err : (e->round_next < e->rules->n_rules ? -EINVAL : 0);
    for (size_t i = 0; r == 0 && i < e->n_alerts;) {
        struct alert *a = &e->alerts[i];
        const char *name = label_get(a->labels, a->n_labels, "alertname");
        const struct fp_rule *rule = fp_ruleset_find(e->rules, name);
        bool rule_failed = rule != NULL && e->round_failed[rule - e->rules->rules];

        if (rule_failed) {
            i++;
            continue;
        }
        if (a->seen) {
            if (a->state == FP_ALERT_PENDING && now_ms - a->active_ms >= rule->for_ms) {
                a->state = FP_ALERT_FIRING;
                a->fired_ms = now_ms;
                e->changed++;
            }
            i++;
        } else if (a->state == FP_ALERT_PENDING) {
            alert_remove(e, i);
            e->changed++;
        } else if (a->state == FP_ALERT_FIRING) {
            a->state = FP_ALERT_RESOLVED;
            a->resolved_ms = now_ms;
            e->changed++;
            i++;
        } else if (now_ms - a->resolved_ms >= e->resolved_keep_ms) {
            alert_remove(e, i);
            e->changed++;
        } else {
            i++;
        }
    }
    round_cancel(e);
    e->last_eval_ms = now_ms;
    if (index_rebuild(e) < 0 || firing_rebuild(e) < 0)
        r = -ENOMEM;

    for (size_t i = 0; i < e->n_alerts; i++) {
        switch (e->alerts[i].state) {
        case FP_ALERT_PENDING:
            res.pending++;
            break;
        case FP_ALERT_FIRING:
            res.firing++;
            break;
        case FP_ALERT_RESOLVED:
            res.resolved++;
            break;
        }
    }
    res.changed = e->changed;
    if (r == 0 && e->changed > 0 && e->state_path != NULL)
        res.save_error = fp_alert_engine_save(e, NULL, 0);
    if (ret != NULL)
        *ret = res;
    return r;
}

int fp_alert_engine_eval(struct fp_alert_engine *e, struct fp_store *store, int64_t now_ms,
                         struct fp_alert_eval_result *ret)
{
    int r = fp_alert_engine_round_begin(e, now_ms);

    if (r != 0)
        return r;
    while (!fp_alert_engine_round_done(e))
        (void)fp_alert_engine_round_step(e, store);
    return fp_alert_engine_round_end(e, ret);
}

/* --- JSON out -------------------------------------------------------------------------------- */

static json_t *pairs_json(const struct fp_label *p, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < n; i++) {
        if (json_object_set_new(o, p[i].name, fp_jsonout_string_new(p[i].value)) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static int set_time(json_t *o, const char *key, int64_t ts_ms)
{
    char buf[40];

    fp_alert_format_time(buf, sizeof(buf), ts_ms);
    return json_object_set_new(o, key, json_string(buf));
}

/* endsAt: the resolution for a resolved alert; for the others the time after which Alertmanager
 * may take the alert as resolved if it hears nothing more from us. */
static int64_t ends_at(const struct fp_alert_engine *e, const struct alert *a)
{
    if (a->state == FP_ALERT_RESOLVED)
        return a->resolved_ms;
    return e->last_eval_ms + 4 * e->eval_interval_ms;
}

/* One alert in Alertmanager's shape; with_state adds "status" and "value". */
static json_t *alert_json(const struct fp_alert_engine *e, const struct alert *a, bool with_state)
{
    const char *name = label_get(a->labels, a->n_labels, "alertname");
    json_t *o = json_object();
    char *url;
    int r = o == NULL ? -1 : 0;

    url = malloc(strlen(e->external_url) + strlen(name) + 64);
    if (url == NULL) {
        json_decref(o);
        return NULL;
    }
    /* Rule names are [A-Za-z0-9_.-]: nothing to percent-encode. */
    (void)sprintf(url, "%s/api/v1/alerts?alertname=%s", e->external_url, name);
    if (r == 0)
        r = json_object_set_new(o, "labels", pairs_json(a->labels, a->n_labels));
    if (r == 0)
        r = json_object_set_new(o, "annotations", pairs_json(a->annotations, a->n_annotations));
    if (r == 0)
        r = set_time(o, "startsAt", a->active_ms);
    if (r == 0)
        r = set_time(o, "endsAt", ends_at(e, a));
    if (r == 0)
        r = json_object_set_new(o, "generatorURL", json_string(url));
    if (r == 0 && with_state)
        r = json_object_set_new(o, "status", json_string(fp_alert_state_name(a->state)));
    if (r == 0 && with_state)
        r = json_object_set_new(o, "value", fp_jsonout_real_new(a->value));
    free(url);
    if (r != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int cmp_alert_ptr(const void *x, const void *y)
{
    const struct alert *a = *(const struct alert *const *)x, *b = *(const struct alert *const *)y;
    int c = strcmp(label_get(a->labels, a->n_labels, "alertname"),
                   label_get(b->labels, b->n_labels, "alertname"));

    return c != 0 ? c : strcmp(a->key, b->key);
}

/* The alerts in the order lists show them; *ret new (free()). */
static int sorted_alerts(const struct fp_alert_engine *e, const struct alert ***ret)
{
    const struct alert **v = malloc((e->n_alerts + 1) * sizeof(*v));

    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_alerts; i++)
        v[i] = &e->alerts[i];
    qsort(v, e->n_alerts, sizeof(*v), cmp_alert_ptr);
    *ret = v;
    return 0;
}

int fp_alert_engine_list(const struct fp_alert_engine *e, const struct fp_alert_filter *f,
                         json_t *arr)
{
    const struct alert **v;
    int r = sorted_alerts(e, &v);

    for (size_t i = 0; r == 0 && i < e->n_alerts; i++) {
        const struct alert *a = v[i];
        const char *dev = label_get(a->labels, a->n_labels, "device");
        if (f != NULL &&
            ((f->state != 0 && a->state != f->state) ||
             (f->device != NULL && (dev == NULL || strcmp(dev, f->device) != 0)) ||
             (f->alertname != NULL &&
              strcmp(label_get(a->labels, a->n_labels, "alertname"), f->alertname) != 0)))
            continue;
        if (json_array_append_new(arr, alert_json(e, a, true)) < 0)
            r = -ENOMEM;
    }
    if (r == 0)
        free(v);
    return r;
}

json_t *fp_alert_engine_payload(const struct fp_alert_engine *e)
{
    json_t *arr = json_array();
    const struct alert **v;

    if (arr == NULL || sorted_alerts(e, &v) < 0) {
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < e->n_alerts; i++) {
        if (v[i]->state == FP_ALERT_PENDING)
            continue;
        if (json_array_append_new(arr, alert_json(e, v[i], false)) < 0) {
            json_decref(arr);
            arr = NULL;
            break;
        }
    }
    free(v);
    return arr;
}

/* --- the state file -------------------------------------------------------------------------- */

static json_t *state_json(const struct fp_alert_engine *e)
{
    json_t *root = json_object(), *arr = json_array();

    if (root == NULL || arr == NULL ||
        json_object_set_new(root, "version", json_integer(STATE_VERSION)) < 0 ||
        json_object_set(root, "alerts", arr) < 0) {
        json_decref(root);
        json_decref(arr);
        return NULL;
    }
    json_decref(arr); /* root holds it */
    for (size_t i = 0; i < e->n_alerts; i++) {
        const struct alert *a = &e->alerts[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) < 0 ||
            json_object_set_new(o, "labels", pairs_json(a->labels, a->n_labels)) < 0 ||
            json_object_set_new(o, "annotations", pairs_json(a->annotations, a->n_annotations)) <
                0 ||
            json_object_set_new(o, "state", json_string(fp_alert_state_name(a->state))) < 0 ||
            json_object_set_new(o, "active_ms", json_integer(a->active_ms)) < 0 ||
            json_object_set_new(o, "fired_ms", json_integer(a->fired_ms)) < 0 ||
            json_object_set_new(o, "resolved_ms", json_integer(a->resolved_ms)) < 0 ||
            json_object_set_new(o, "value", fp_jsonout_real_new(a->value)) < 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    int fd, r = 0;

    if (copy == NULL)
        return -ENOMEM;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        r = -errno;
    else if (fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        (void)close(fd);
    free(copy);
    return r;
}

int fp_alert_engine_save(struct fp_alert_engine *e, char *err, size_t err_size)
{
    json_t *root;
    char *text = NULL, *tmp = NULL;
    size_t len, off = 0;
    int fd = -1, r;

    if (e->state_path == NULL)
        return 0;
    root = state_json(e);
    if (root != NULL)
        text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    tmp = malloc(strlen(e->state_path) + 8);
    if (text == NULL || tmp == NULL) {
        r = -ENOMEM;
        fp_set_err(err, err_size, "alert state \"%s\": out of memory", e->state_path);
        goto out;
    }
    (void)sprintf(tmp, "%s.tmp", e->state_path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        fp_set_err(err, err_size, "alert state \"%s\": %s", tmp, strerror(errno));
        goto out;
    }
    len = strlen(text);
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            fp_set_err(err, err_size, "alert state \"%s\": %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        r = -errno;
        fd = -1;
        fp_set_err(err, err_size, "alert state \"%s\": %s", tmp, strerror(-r));
        goto out;
    }
    fd = -1;
    if (rename(tmp, e->state_path) < 0) {
        r = -errno;
        fp_set_err(err, err_size, "alert state \"%s\": %s", e->state_path, strerror(errno));
        goto out;
    }
    r = fsync_dir_of(e->state_path);
    if (r < 0)
        fp_set_err(err, err_size, "alert state \"%s\": %s", e->state_path, strerror(-r));

out:
    if (fd >= 0) {
        (void)close(fd);
        (void)unlink(tmp);
    }
    free(tmp);
    free(text);
    return r;
}

/* Reads an object of strings into sorted pairs. Returns 0, -EINVAL, -ENOMEM. */
static int pairs_from_json(const json_t *o, struct fp_label **ret, size_t *ret_n)
{
    struct fp_label *p;
    const char *k;
    json_t *v;
    size_t n = 0;

    *ret = NULL;
    *ret_n = 0;
    if (!json_is_object(o))
        return -EINVAL;
    if (json_object_size(o) == 0)
        return 0;
    p = calloc(json_object_size(o), sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!json_is_string(v)) {
            pairs_free(p, n);
            return -EINVAL;
        }
        p[n].name = strdup(k);
        p[n].value = strdup(json_string_value(v));
        n++;
        if (p[n - 1].name == NULL || p[n - 1].value == NULL) {
            pairs_free(p, n);
            return -ENOMEM;
        }
    }
    qsort(p, n, sizeof(*p), cmp_label);
    *ret = p;
    *ret_n = n;
    return 0;
}

static int load_alert(struct fp_alert_engine *e, const json_t *o, int64_t now_ms)
{
    struct fp_label *labels = NULL, *ann = NULL;
    size_t n_labels = 0, n_ann = 0;
    const json_t *st = json_object_get(o, "state"), *val = json_object_get(o, "value");
    const json_t *act = json_object_get(o, "active_ms"), *fir = json_object_get(o, "fired_ms"),
                 *res = json_object_get(o, "resolved_ms");
    enum fp_alert_state state;
    int64_t resolved_ms;
    const char *name;
    struct alert *a;
    char *key;
    int r;

    if (!json_is_object(o) || !json_is_string(st) ||
        state_parse(json_string_value(st), &state) < 0 || !json_is_integer(act) ||
        !json_is_integer(fir) || !json_is_integer(res) ||
        !(json_is_number(val) || json_is_null(val)))
        return -EINVAL;
    resolved_ms = json_integer_value(res);
    /* A resolved alert without its time would be kept forever; give it one. */
    if (state == FP_ALERT_RESOLVED && resolved_ms <= 0)
        resolved_ms = now_ms;
    r = pairs_from_json(json_object_get(o, "labels"), &labels, &n_labels);
    if (r == 0)
        r = pairs_from_json(json_object_get(o, "annotations"), &ann, &n_ann);
    name = r == 0 ? label_get(labels, n_labels, "alertname") : NULL;
    if (r == 0 && name == NULL)
        r = -EINVAL;
    if (r != 0) {
        pairs_free(labels, n_labels);
        pairs_free(ann, n_ann);
        return r;
    }
    /* A rule that is gone: what was pending never fired, what fired resolves now. */
    if (fp_ruleset_find(e->rules, name) == NULL) {
        if (state == FP_ALERT_PENDING) {
            pairs_free(labels, n_labels);
            pairs_free(ann, n_ann);
            return 0;
        }
        if (state == FP_ALERT_FIRING) {
            state = FP_ALERT_RESOLVED;
            resolved_ms = now_ms;
            e->changed++;
        }
    }
    key = labels_key(labels, n_labels);
    if (key == NULL || index_find(e, key) != NULL || e->n_alerts >= e->max_alerts) {
        pairs_free(labels, n_labels);
        pairs_free(ann, n_ann);
        r = key == NULL ? -ENOMEM : 0; /* a repeated label set: keep the first */
        free(key);
        return r;
    }
    a = alert_add(e, labels, n_labels, key);
    if (a == NULL) {
        pairs_free(ann, n_ann);
        return -ENOMEM;
    }
    a->annotations = ann;
    a->n_annotations = n_ann;
    a->state = state;
    a->active_ms = json_integer_value(act);
    a->fired_ms = json_integer_value(fir);
    a->resolved_ms = state == FP_ALERT_RESOLVED ? resolved_ms : 0;
    a->value = json_is_null(val) ? NAN : json_number_value(val);
    return 0;
}

int fp_alert_engine_load_state(struct fp_alert_engine *e, int64_t now_ms, char *err,
                               size_t err_size)
{
    json_error_t jerr;
    json_t *root, *arr, *item;
    size_t i;
    int r = 0;

    if (e->state_path == NULL)
        return 0;
    if (access(e->state_path, F_OK) < 0 && errno == ENOENT)
        return 0;
    root = json_load_file(e->state_path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fp_set_err(err, err_size, "alert state \"%s\": line %d: %s", e->state_path, jerr.line,
                   jerr.text);
        return -EINVAL;
    }
    arr = json_object_get(root, "alerts");
    if (!json_is_integer(json_object_get(root, "version")) ||
        json_integer_value(json_object_get(root, "version")) != STATE_VERSION ||
        !json_is_array(arr)) {
        fp_set_err(err, err_size, "alert state \"%s\": not a version %d alert state file",
                   e->state_path, STATE_VERSION);
        json_decref(root);
        return -EINVAL;
    }
    json_array_foreach(arr, i, item)
    {
        r = load_alert(e, item, now_ms);
        if (r == -EINVAL)
            fp_set_err(err, err_size, "alert state \"%s\": alert %zu is malformed", e->state_path,
                       i + 1);
        else if (r != 0)
            fp_set_err(err, err_size, "alert state \"%s\": out of memory", e->state_path);
        if (r != 0)
            break;
    }
    json_decref(root);
    if (r != 0) {
        /* All or nothing: half a state would fire some alerts twice and forget others. */
        for (size_t k = 0; k < e->n_alerts; k++)
            alert_fini(&e->alerts[k]);
        e->n_alerts = 0;
    }
    (void)index_rebuild(e);
    (void)firing_rebuild(e);
    return r;
}
