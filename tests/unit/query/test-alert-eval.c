/* The alert engine over a real store: data written through the storage API at chosen times,
 * rounds evaluated at chosen times. Each rule kind fires, holds for its `for`, resolves and is
 * forgotten; state survives a restart of the engine; a reload retires the alerts of removed
 * rules. */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "alert.h"
#include "rules.h"
#include "store.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* 2024-11-24T01:39:05.123Z, as in the query fixture. */
#define T0 INT64_C(1732412345123)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)

static char dir[64] = "/tmp/fp-alert-XXXXXX";
static struct fp_store *store;
static uint64_t seq;

static void store_open(void)
{
    struct fp_store_options opts;
    char data[128], err[256];

    fp_store_options_default(&opts);
    opts.raw_retention_ms = 0; /* fixed times in 2024: keep them */
    opts.ooo_window_ms = 24 * 3600 * SEC;
    (void)snprintf(data, sizeof(data), "%s/data", dir);
    fp_assert(mkdir(data, 0700) == 0);
    if (fp_store_open(data, 0, &opts, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

/* One sample of metric on device, received at received_ms, with series labels and device info. */
static void put(const char *device, const char *metric, const struct fp_label *labels,
                size_t n_labels, int64_t ts_ms, double value, int64_t received_ms,
                const struct fp_label *info, size_t n_info)
{
    struct fp_series_in s = {metric, FP_SERIES_GAUGE, labels, n_labels, &ts_ms, &value, 1};
    struct fp_write_batch b = {
        .device = device,
        .epoch = 1,
        .seq = ++seq,
        .received_ms = received_ms,
        .info = info,
        .n_info = n_info,
        .series = &s,
        .n_series = metric != NULL ? 1 : 0,
    };
    struct fp_write_result res;

    fp_assert(fp_store_write(store, &b, 1, &res) == 0);
    fp_assert(res.status == 0);
}

static void temp(const char *device, int64_t ts_ms, double value)
{
    put(device, "temperature_celsius", NULL, 0, ts_ms, value, ts_ms, NULL, 0);
}

static struct fp_ruleset *rules(const char *text)
{
    struct fp_ruleset *rs = NULL;
    char err[512];

    if (fp_ruleset_parse(text, strlen(text), "test", &rs, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return rs;
}

static struct fp_alert_engine *engine(const char *text, const char *state_path)
{
    struct fp_alert_options opts;
    struct fp_alert_engine *e = NULL;

    fp_alert_options_default(&opts);
    opts.state_path = state_path;
    opts.external_url = "http://fleet.example:9471/";
    fp_assert(fp_alert_engine_new(&opts, rules(text), &e) == 0);
    return e;
}

static struct fp_alert_eval_result eval(struct fp_alert_engine *e, int64_t now_ms)
{
    struct fp_alert_eval_result res;

    check_int(fp_alert_engine_eval(e, store, now_ms, &res), 0);
    check_int(res.rules_failed, 0);
    check_int(res.save_error, 0);
    return res;
}

/* The alerts passing f as JSON (new reference). */
static json_t *list(const struct fp_alert_engine *e, const struct fp_alert_filter *f)
{
    json_t *arr = json_array();

    fp_assert(fp_alert_engine_list(e, f, arr) == 0);
    return arr;
}

static const char *jstr(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);

    if (path2 != NULL)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static const char hot_rules[] =
    "{\"rules\":[{\"name\":\"HotDevice\",\"kind\":\"threshold\",\"severity\":\"critical\","
    "\"metric\":\"temperature_celsius\",\"agg\":\"max\",\"window\":\"5m\",\"op\":\">\","
    "\"value\":80,\"for\":\"2m\",\"by\":[\"device\"],\"labels\":{\"team\":\"edge\"},"
    "\"annotations\":{\"summary\":\"{{ $labels.device }} at {{ $value }} C\"}}]}";

/* pending -> (for) -> firing -> resolved -> forgotten; a short blip stays pending and vanishes
 * without notifying. */
static void test_threshold_lifecycle(void)
{
    struct fp_alert_engine *e = engine(hot_rules, NULL);
    struct fp_alert_eval_result res;
    struct fp_alert_filter firing = {.state = FP_ALERT_FIRING};
    json_t *arr, *a, *payload;
    char t[40];

    temp("hot-1", T0 - 10 * SEC, 90);
    temp("cool-1", T0 - 10 * SEC, 60);

    res = eval(e, T0);
    check_int(res.pending, 1);
    check_int(res.firing, 0);
    check_int(res.changed, 1);
    check(!fp_alert_engine_device_firing(e, "hot-1"));
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    a = json_array_get(arr, 0);
    check_str(jstr(a, "status", NULL), "pending");
    check_str(jstr(a, "labels", "alertname"), "HotDevice");
    check_str(jstr(a, "labels", "device"), "hot-1");
    check_str(jstr(a, "labels", "severity"), "critical");
    check_str(jstr(a, "labels", "team"), "edge");
    check_int(json_object_size(json_object_get(a, "labels")), 4);
    check_str(jstr(a, "annotations", "summary"), "hot-1 at 90 C");
    check_str(jstr(a, "startsAt", NULL), "2024-11-24T01:39:05.123Z");
    check_str(jstr(a, "generatorURL", NULL),
              "http://fleet.example:9471/api/v1/alerts?alertname=HotDevice");
    check_double(json_number_value(json_object_get(a, "value")), 90);
    json_decref(arr);
    /* Pending alerts are not sent to Alertmanager. */
    payload = fp_alert_engine_payload(e);
    check_int(json_array_size(payload), 0);
    json_decref(payload);

    /* One minute in: still pending, the value follows the data. */
    temp("hot-1", T0 + 50 * SEC, 91);
    res = eval(e, T0 + MIN);
    check_int(res.pending, 1);
    check_int(res.firing, 0);
    check_int(res.changed, 0);

    /* A second before `for` elapses: still pending. */
    res = eval(e, T0 + 2 * MIN - 1);
    check_int(res.pending, 1);
    check_int(res.firing, 0);

    /* `for` (2 min) after it became pending: firing, startsAt still when it became pending. */
    temp("hot-1", T0 + 110 * SEC, 92);
    res = eval(e, T0 + 2 * MIN);
    check_int(res.pending, 0);
    check_int(res.firing, 1);
    check_int(res.changed, 1);
    check(fp_alert_engine_device_firing(e, "hot-1"));
    check(!fp_alert_engine_device_firing(e, "cool-1"));
    check(!fp_alert_engine_device_firing(e, "nobody"));
    arr = list(e, &firing);
    check_int(json_array_size(arr), 1);
    a = json_array_get(arr, 0);
    check_str(jstr(a, "status", NULL), "firing");
    check_str(jstr(a, "annotations", "summary"), "hot-1 at 92 C");
    check_str(jstr(a, "startsAt", NULL), "2024-11-24T01:39:05.123Z");
    /* endsAt: the last round plus 4 evaluation intervals (15 s). */
    fp_alert_format_time(t, sizeof(t), T0 + 2 * MIN + 60 * SEC);
    check_str(jstr(a, "endsAt", NULL), t);
    json_decref(arr);

    payload = fp_alert_engine_payload(e);
    check_int(json_array_size(payload), 1);
    a = json_array_get(payload, 0);
    check_str(jstr(a, "labels", "alertname"), "HotDevice");
    check_str(jstr(a, "startsAt", NULL), "2024-11-24T01:39:05.123Z");
    check_str(jstr(a, "endsAt", NULL), t);
    check(json_object_get(a, "status") == NULL);
    check(json_object_get(a, "generatorURL") != NULL);
    json_decref(payload);

    /* A blip on cool-1: pending, then gone without ever firing. */
    temp("cool-1", T0 + 170 * SEC, 85);
    res = eval(e, T0 + 3 * MIN);
    check_int(res.pending, 1);
    check_int(res.firing, 1);
    temp("cool-1", T0 + 175 * SEC, 60);
    /* Still within the window: max is still 85; hot-1 keeps firing. */
    res = eval(e, T0 + 4 * MIN);
    check_int(res.pending, 1);
    check_int(res.firing, 1);
    check_int(res.changed, 0);

    /* hot-1 cools down; once its hot samples leave the 5 min window the alert resolves, and
     * cool-1's blip leaves it too, before its `for` elapsed. */
    temp("hot-1", T0 + 400 * SEC, 50);
    res = eval(e, T0 + 480 * SEC);
    check_int(res.firing, 0);
    check_int(res.pending, 0);
    check_int(res.resolved, 1);
    check_int(res.changed, 2); /* hot-1 resolved, cool-1 forgotten */
    check(!fp_alert_engine_device_firing(e, "hot-1"));
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    a = json_array_get(arr, 0);
    check_str(jstr(a, "status", NULL), "resolved");
    fp_alert_format_time(t, sizeof(t), T0 + 480 * SEC);
    check_str(jstr(a, "endsAt", NULL), t);
    json_decref(arr);
    /* Resolved alerts are pushed too, so Alertmanager hears of the resolution. */
    payload = fp_alert_engine_payload(e);
    check_int(json_array_size(payload), 1);
    check_str(jstr(json_array_get(payload, 0), "endsAt", NULL), t);
    json_decref(payload);

    /* Kept 15 minutes after resolving, then forgotten. */
    res = eval(e, T0 + 480 * SEC + 15 * MIN - 1);
    check_int(res.resolved, 1);
    res = eval(e, T0 + 480 * SEC + 15 * MIN);
    check_int(res.resolved, 0);
    check_int(res.changed, 1);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 0);
    json_decref(arr);

    fp_alert_engine_destroy(&e);
    check(e == NULL);
    fp_alert_engine_destroy(&e);
}

/* Pending and firing state written to the state file and read back by a new engine: the pending
 * alert keeps counting its `for` from before the restart, the firing one keeps its startsAt. */
static void test_restart(void)
{
    char path[128], tmp[140];
    struct fp_alert_engine *e;
    struct fp_alert_eval_result res;
    struct stat st;
    json_t *arr;
    char err[256];
    const int64_t t1 = T0 + 3600 * SEC;

    (void)snprintf(path, sizeof(path), "%s/alerts.json", dir);
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    temp("hot-2", t1 - 10 * SEC, 95);

    e = engine(hot_rules, path);
    check_int(fp_alert_engine_load_state(e, t1, err, sizeof(err)), 0); /* no file yet */
    res = eval(e, t1);
    check_int(res.pending, 1);
    check_int(stat(path, &st), 0);
    check(stat(tmp, &st) < 0); /* renamed into place */
    fp_alert_engine_destroy(&e);

    /* Restarted one minute later: pending from t1, so firing at t1 + 2 min, not t1 + 3 min. */
    e = engine(hot_rules, path);
    check_int(fp_alert_engine_load_state(e, t1 + MIN, err, sizeof(err)), 0);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "status", NULL), "pending");
    check_str(jstr(json_array_get(arr, 0), "annotations", "summary"), "hot-2 at 95 C");
    json_decref(arr);
    temp("hot-2", t1 + 100 * SEC, 96);
    res = eval(e, t1 + 2 * MIN);
    check_int(res.firing, 1);
    fp_alert_engine_destroy(&e);

    /* Restarted again: firing at once (degraded device) and still since t1. */
    e = engine(hot_rules, path);
    check_int(fp_alert_engine_load_state(e, t1 + 3 * MIN, err, sizeof(err)), 0);
    check(fp_alert_engine_device_firing(e, "hot-2"));
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "status", NULL), "firing");
    check_str(jstr(json_array_get(arr, 0), "startsAt", NULL), "2024-11-24T02:39:05.123Z");
    json_decref(arr);
    res = eval(e, t1 + 3 * MIN);
    check_int(res.firing, 1);
    check_int(res.changed, 0);
    fp_alert_engine_destroy(&e);

    /* Restarted with a rule set without HotDevice: the firing alert resolves at load. */
    e = engine("{\"rules\":[]}", path);
    check_int(fp_alert_engine_load_state(e, t1 + 4 * MIN, err, sizeof(err)), 0);
    check(!fp_alert_engine_device_firing(e, "hot-2"));
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "status", NULL), "resolved");
    check_str(jstr(json_array_get(arr, 0), "endsAt", NULL), "2024-11-24T02:43:05.123Z");
    json_decref(arr);
    fp_alert_engine_destroy(&e);

    /* A state file that is not one: refused with a reason, the engine starts empty. */
    {
        FILE *f = fopen(path, "w");
        fp_assert(f != NULL);
        fputs("{\"version\":99,\"alerts\":[]}", f);
        fclose(f);
    }
    e = engine(hot_rules, path);
    check_int(fp_alert_engine_load_state(e, t1, err, sizeof(err)), -EINVAL);
    check(strstr(err, "not a version 1 alert state file") != NULL);
    {
        FILE *f = fopen(path, "w");
        fp_assert(f != NULL);
        fputs("{\"version\":1,\"alerts\":[{\"labels\":{},\"state\":\"firing\"}]}", f);
        fclose(f);
    }
    check_int(fp_alert_engine_load_state(e, t1, err, sizeof(err)), -EINVAL);
    check(strstr(err, "alert 1 is malformed") != NULL);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 0);
    json_decref(arr);
    fp_alert_engine_destroy(&e);
    (void)unlink(path);
}

/* Replacing the rules: the firing alert of a removed rule resolves, a pending one is dropped,
 * alerts of a rule that stays keep their state. */
static void test_reload(void)
{
    static const char two[] =
        "{\"rules\":[{\"name\":\"Hot\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\","
        "\"agg\":\"max\",\"window\":\"1m\",\"op\":\">\",\"value\":80,\"by\":[\"device\"]},"
        "{\"name\":\"Warm\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\","
        "\"agg\":\"max\",\"window\":\"1m\",\"op\":\">\",\"value\":70,\"for\":\"1h\","
        "\"by\":[\"device\"]}]}";
    static const char warm_only[] =
        "{\"rules\":[{\"name\":\"Warm\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\","
        "\"agg\":\"max\",\"window\":\"1m\",\"op\":\">\",\"value\":70,\"for\":\"1h\","
        "\"by\":[\"device\"]}]}";
    const int64_t t2 = T0 + 7200 * SEC;
    struct fp_alert_engine *e = engine(two, NULL);
    struct fp_alert_eval_result res;
    json_t *arr;

    temp("hot-3", t2 - SEC, 90);
    res = eval(e, t2);
    check_int(res.firing, 1);  /* Hot, for 0 */
    check_int(res.pending, 1); /* Warm, for 1h */
    check_int(fp_alert_engine_set_rules(e, rules(warm_only), t2 + SEC), 0);
    check_str(fp_alert_engine_rules(e)->rules[0].name, "Warm");
    arr = list(e, &(struct fp_alert_filter){.alertname = "Hot"});
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "status", NULL), "resolved");
    json_decref(arr);
    arr = list(e, &(struct fp_alert_filter){.alertname = "Warm"});
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "status", NULL), "pending");
    check_str(jstr(json_array_get(arr, 0), "startsAt", NULL), "2024-11-24T03:39:05.123Z");
    json_decref(arr);

    check_int(fp_alert_engine_set_rules(e, rules("{\"rules\":[]}"), t2 + 2 * SEC), 0);
    arr = list(e, &(struct fp_alert_filter){.state = FP_ALERT_PENDING});
    check_int(json_array_size(arr), 0);
    json_decref(arr);
    fp_alert_engine_destroy(&e);
}

/* device_stale and device_silent from the device states: stale after 3 missed intervals, silent
 * after silent_after (5 min); the matchers select devices by identity. */
static void test_device_states(void)
{
    static const char dev_rules[] =
        "{\"rules\":[{\"name\":\"Silent\",\"kind\":\"device_silent\",\"matchers\":[\"site=lab\"],"
        "\"annotations\":{\"summary\":\"{{ $labels.device }} silent for {{ $value }} s\"}},"
        "{\"name\":\"Stale\",\"kind\":\"device_stale\",\"matchers\":[\"device=~quiet-.*\"]}]}";
    static const struct fp_label lab[] = {{"site", "lab"}};
    static const struct fp_label home[] = {{"site", "home"}};
    const int64_t t3 = T0 + 3 * 3600 * SEC;
    struct fp_alert_engine *e = engine(dev_rules, NULL);
    struct fp_alert_eval_result res;
    json_t *arr;

    /* Three batches 10 s apart: an interval of 10 s, estimated or assumed. */
    for (int i = 0; i < 3; i++) {
        put("quiet-lab", "probe_up", NULL, 0, t3 + i * 10 * SEC, 1, t3 + i * 10 * SEC, lab, 1);
        put("quiet-home", "probe_up", NULL, 0, t3 + i * 10 * SEC, 1, t3 + i * 10 * SEC, home, 1);
    }
    const int64_t last = t3 + 20 * SEC;

    res = eval(e, last + 29 * SEC);
    check_int(res.firing, 0);
    res = eval(e, last + 30 * SEC);
    check_int(res.firing, 2); /* both stale, neither silent */
    check(fp_alert_engine_device_firing(e, "quiet-lab"));
    arr = list(e, &(struct fp_alert_filter){.alertname = "Silent"});
    check_int(json_array_size(arr), 0);
    json_decref(arr);

    res = eval(e, last + 5 * MIN - 1);
    check_int(res.firing, 2);
    res = eval(e, last + 5 * MIN);
    check_int(res.firing, 3); /* + quiet-lab silent; quiet-home is not at site=lab */
    arr = list(e, &(struct fp_alert_filter){.alertname = "Silent"});
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "labels", "device"), "quiet-lab");
    check_str(jstr(json_array_get(arr, 0), "annotations", "summary"), "quiet-lab silent for 300 s");
    json_decref(arr);
    arr = list(e, &(struct fp_alert_filter){.device = "quiet-home"});
    check_int(json_array_size(arr), 1);
    check_str(jstr(json_array_get(arr, 0), "labels", "alertname"), "Stale");
    json_decref(arr);

    /* quiet-lab reports again: both of its alerts resolve, quiet-home's stays. */
    put("quiet-lab", "probe_up", NULL, 0, last + 6 * MIN, 1, last + 6 * MIN, NULL, 0);
    res = eval(e, last + 6 * MIN + SEC);
    check_int(res.firing, 1);
    check_int(res.resolved, 2);
    check(!fp_alert_engine_device_firing(e, "quiet-lab"));
    check(fp_alert_engine_device_firing(e, "quiet-home"));
    fp_alert_engine_destroy(&e);
}

static void tps(const char *device, const char *model, const char *version, int64_t ts_ms, double v)
{
    const struct fp_label labels[] = {{"model", model}, {"model_version", version}};
    put(device, "tokens_per_second", labels, N(labels), ts_ms, v, ts_ms, NULL, 0);
}

/* below_cohort: a device under half its cohort's median fires; a cohort smaller than
 * min_devices never does. */
static void test_below_cohort(void)
{
    static const char slow_rules[] =
        "{\"rules\":[{\"name\":\"Slow\",\"kind\":\"below_cohort\",\"metric\":\"tokens_per_second\","
        "\"window\":\"10m\",\"cohort\":[\"model\"],\"fraction\":0.5,"
        "\"annotations\":{\"summary\":\"{{ $labels.device }}: {{ $values.device_value }} vs "
        "median {{ $values.cohort_median }} of {{ $values.cohort_devices }}\"}}]}";
    const int64_t t4 = T0 + 4 * 3600 * SEC;
    static const char *const names[] = {"c-1", "c-2", "c-3", "c-4", "c-5"};
    static const double v[] = {100, 110, 90, 105, 40};
    struct fp_alert_engine *e = engine(slow_rules, NULL);
    struct fp_alert_eval_result res;
    json_t *arr, *a;

    for (size_t i = 0; i < N(names); i++) {
        /* Two samples each: the device's value is their mean. */
        tps(names[i], "llama", "v1", t4 - 60 * SEC, v[i] - 2);
        tps(names[i], "llama", "v1", t4 - 30 * SEC, v[i] + 2);
    }
    /* A cohort of two: below min_devices (3), never judged. */
    tps("q-1", "qwen", "v1", t4 - 30 * SEC, 100);
    tps("q-2", "qwen", "v1", t4 - 30 * SEC, 10);

    res = eval(e, t4);
    check_int(res.firing, 1);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    a = json_array_get(arr, 0);
    check_str(jstr(a, "labels", "device"), "c-5");
    check_str(jstr(a, "labels", "model"), "llama");
    check(json_object_get(json_object_get(a, "labels"), "model_version") == NULL);
    /* Median of {40, 90, 100, 105, 110} = 100; 40 / 100. */
    check_double(json_number_value(json_object_get(a, "value")), 0.4);
    check_str(jstr(a, "annotations", "summary"), "c-5: 40 vs median 100 of 5");
    json_decref(arr);

    /* c-5 recovers to 80 (the median is still 100): resolved once its slow samples left the
     * window. */
    for (size_t i = 0; i < N(names); i++)
        tps(names[i], "llama", "v1", t4 + 5 * MIN, i == 4 ? 80 : v[i]);
    res = eval(e, t4 + 9 * MIN + 31 * SEC); /* only the +5 min samples in the window */
    check_int(res.firing, 0);
    check_int(res.resolved, 1);
    fp_alert_engine_destroy(&e);
}

/* cohort_regression: v2 20% slower than v1 over 10 devices each fires with p < 0.01; the same
 * cohorts without a difference do not; nor does a real but small difference under min_change. */
static void test_regression(void)
{
    static const char reg_rules[] =
        "{\"rules\":[{\"name\":\"Canary\",\"kind\":\"cohort_regression\","
        "\"metric\":\"tokens_per_second\",\"window\":\"10m\",\"by\":\"model_version\","
        "\"a\":\"v1\",\"b\":\"v2\",\"min_change\":0.1,\"alpha\":0.01,"
        "\"matchers\":[\"model=canary\"],"
        "\"annotations\":{\"summary\":\"{{ $labels.model_version }} {{ $values.change_percent }}% "
        "(p={{ $values.p_value }}, {{ $values.b_devices }} vs {{ $values.a_devices }})\"}}]}";
    const int64_t t5 = T0 + 5 * 3600 * SEC;
    struct fp_alert_engine *e = engine(reg_rules, NULL);
    struct fp_alert_eval_result res;
    json_t *arr, *a;
    char name[32];

    /* v1: 100..109 (median 104.5); v2: 80..89 (median 84.5): -19.1%, fully separated. */
    for (int i = 0; i < 10; i++) {
        (void)snprintf(name, sizeof(name), "a-%d", i);
        tps(name, "canary", "v1", t5 - MIN, 100 + i);
        (void)snprintf(name, sizeof(name), "b-%d", i);
        tps(name, "canary", "v2", t5 - MIN, 80 + i);
    }
    res = eval(e, t5);
    check_int(res.firing, 1);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    a = json_array_get(arr, 0);
    check_str(jstr(a, "labels", "alertname"), "Canary");
    check_str(jstr(a, "labels", "model_version"), "v2");
    check_int(json_object_size(json_object_get(a, "labels")), 3);
    check_near(json_number_value(json_object_get(a, "value")), (84.5 - 104.5) / 104.5, 1e-12);
    /* U = 0 for n = 10 + 10: z = (50 - 0.5) / sqrt(175), p = erfc(z / sqrt 2) = 0.000182672. */
    check_str(jstr(a, "annotations", "summary"), "v2 -19.1388% (p=0.000182672, 10 vs 10)");
    json_decref(arr);

    /* Later, v2 within 5% of v1 (after a fix): no longer a regression of more than 10%. */
    for (int i = 0; i < 10; i++) {
        (void)snprintf(name, sizeof(name), "b-%d", i);
        tps(name, "canary", "v2", t5 + 10 * MIN, 96 + i);
        (void)snprintf(name, sizeof(name), "a-%d", i);
        tps(name, "canary", "v1", t5 + 10 * MIN, 100 + i);
    }
    res = eval(e, t5 + 11 * MIN);
    check_int(res.firing, 0);
    check_int(res.resolved, 1);
    fp_alert_engine_destroy(&e);

    /* Worse is higher (latency): v2 being faster is no regression. */
    e = engine("{\"rules\":[{\"name\":\"Lat\",\"kind\":\"cohort_regression\","
               "\"metric\":\"tokens_per_second\",\"window\":\"10m\",\"by\":\"model_version\","
               "\"a\":\"v1\",\"b\":\"v2\",\"min_change\":0.1,\"worse\":\"higher\","
               "\"matchers\":[\"model=canary\"]}]}",
               NULL);
    res = eval(e, t5);
    check_int(res.firing, 0);
    check_int(res.pending, 0);
    fp_alert_engine_destroy(&e);
}

/* cohort_regression with strata: two models of very different speed, v2 20% slower on each.
 * Pooled, the cohorts overlap (p = 0.064, no alert); divided by each model's median, they
 * separate completely (p = 0.000182672, the alert fires). */
static void test_regression_strata(void)
{
    static const char pooled[] =
        "{\"rules\":[{\"name\":\"Pooled\",\"kind\":\"cohort_regression\",\"metric\":\"strata_tps\","
        "\"window\":\"10m\",\"by\":\"model_version\",\"a\":\"v1\",\"b\":\"v2\",\"min_change\":0.1}]"
        "}";
    static const char strata[] =
        "{\"rules\":[{\"name\":\"Strata\",\"kind\":\"cohort_regression\",\"metric\":\"strata_tps\","
        "\"window\":\"10m\",\"by\":\"model_version\",\"a\":\"v1\",\"b\":\"v2\",\"min_change\":0.1,"
        "\"strata\":[\"model\"],\"annotations\":{\"summary\":\"{{ $values.a_median }} "
        "{{ $values.b_median }} p={{ $values.p_value }} n={{ $values.a_devices }}\"}}]}";
    const int64_t t7 = T0 + 7 * 3600 * SEC;
    struct fp_alert_engine *e;
    struct fp_alert_eval_result res;
    json_t *arr;
    char name[32];

    for (int i = 0; i < 5; i++) {
        const struct fp_label fa[] = {{"model", "fast"}, {"model_version", "v1"}};
        const struct fp_label fb[] = {{"model", "fast"}, {"model_version", "v2"}};
        const struct fp_label sa[] = {{"model", "slow"}, {"model_version", "v1"}};
        const struct fp_label sb[] = {{"model", "slow"}, {"model_version", "v2"}};
        (void)snprintf(name, sizeof(name), "fa-%d", i);
        put(name, "strata_tps", fa, 2, t7 - MIN, 100 + i, t7 - MIN, NULL, 0);
        (void)snprintf(name, sizeof(name), "fb-%d", i);
        put(name, "strata_tps", fb, 2, t7 - MIN, 80 + i, t7 - MIN, NULL, 0);
        (void)snprintf(name, sizeof(name), "sa-%d", i);
        put(name, "strata_tps", sa, 2, t7 - MIN, 21 + 0.2 * i, t7 - MIN, NULL, 0);
        (void)snprintf(name, sizeof(name), "sb-%d", i);
        put(name, "strata_tps", sb, 2, t7 - MIN, 16 + 0.2 * i, t7 - MIN, NULL, 0);
    }
    e = engine(pooled, NULL);
    res = eval(e, t7);
    check_int(res.firing + res.pending, 0);
    fp_alert_engine_destroy(&e);

    e = engine(strata, NULL);
    res = eval(e, t7);
    check_int(res.firing, 1);
    arr = list(e, NULL);
    check_int(json_array_size(arr), 1);
    /* The medians shown are the raw ones: (21.8 + 100) / 2 and (16.8 + 80) / 2. */
    check_str(jstr(json_array_get(arr, 0), "annotations", "summary"),
              "60.9 48.4 p=0.000182672 n=10");
    json_decref(arr);
    fp_alert_engine_destroy(&e);
}

/* The round in slices, as the service runs it: one rule per step, transitions at the end; one
 * round at a time; a reload cancels a round half done. */
static void test_sliced_round(void)
{
    static const char two[] =
        "{\"rules\":[{\"name\":\"S1\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\","
        "\"agg\":\"max\",\"window\":\"1m\",\"op\":\">\",\"value\":80,\"by\":[\"device\"]},"
        "{\"name\":\"S2\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\","
        "\"agg\":\"max\",\"window\":\"1m\",\"op\":\">\",\"value\":70,\"by\":[\"device\"]}]}";
    const int64_t t8 = T0 + 8 * 3600 * SEC;
    struct fp_alert_engine *e = engine(two, NULL);
    struct fp_alert_eval_result res;

    temp("slice-1", t8 - SEC, 90);
    check_int(fp_alert_engine_round_end(e, &res), -EINVAL); /* no round */
    check(fp_alert_engine_round_done(e));
    check_int(fp_alert_engine_round_begin(e, t8), 0);
    check_int(fp_alert_engine_round_begin(e, t8), -EBUSY);
    check_int(fp_alert_engine_eval(e, store, t8, &res), -EBUSY);
    check(!fp_alert_engine_round_done(e));
    check_int(fp_alert_engine_round_step(e, store), 0);
    check(!fp_alert_engine_round_done(e)); /* S2 left */
    check(!fp_alert_engine_device_firing(e, "slice-1"));
    check_int(fp_alert_engine_round_step(e, store), 0);
    check(fp_alert_engine_round_done(e));
    check_int(fp_alert_engine_round_step(e, store), 0); /* nothing left: no-op */
    check_int(fp_alert_engine_round_end(e, &res), 0);
    check_int(res.firing, 2);
    check_int(res.changed, 4);
    check(fp_alert_engine_device_firing(e, "slice-1"));

    /* A reload in the middle: the round is dropped, states stay as they were. */
    check_int(fp_alert_engine_round_begin(e, t8 + 2 * MIN), 0);
    check_int(fp_alert_engine_round_step(e, store), 0);
    check_int(fp_alert_engine_set_rules(e, rules(two), t8 + 2 * MIN), 0);
    check(fp_alert_engine_round_done(e));
    check_int(fp_alert_engine_round_end(e, &res), -EINVAL);
    check(fp_alert_engine_device_firing(e, "slice-1"));
    /* The next round sees the data gone from the window: both resolve. */
    res = eval(e, t8 + 3 * MIN);
    check_int(res.firing, 0);
    check_int(res.resolved, 2);
    fp_alert_engine_destroy(&e);
}

/* max_alerts bounds the alerts kept; the rest are counted. */
static void test_max_alerts(void)
{
    struct fp_alert_options opts;
    struct fp_alert_engine *e = NULL;
    struct fp_alert_eval_result res;
    const int64_t t6 = T0 + 6 * 3600 * SEC;

    temp("many-1", t6 - SEC, 99);
    temp("many-2", t6 - SEC, 99);
    fp_alert_options_default(&opts);
    opts.max_alerts = 1;
    fp_assert(fp_alert_engine_new(&opts, rules(hot_rules), &e) == 0);
    res = eval(e, t6);
    check_int(res.pending, 1);
    check_int(fp_alert_engine_dropped(e), 1);
    fp_alert_engine_destroy(&e);

    opts.max_alerts = 0;
    check_int(fp_alert_engine_new(&opts, rules(hot_rules), &e), -EINVAL);
    check(e == NULL);
}

static void test_time_format(void)
{
    char t[40];

    fp_alert_format_time(t, sizeof(t), 0);
    check_str(t, "1970-01-01T00:00:00.000Z");
    fp_alert_format_time(t, sizeof(t), T0);
    check_str(t, "2024-11-24T01:39:05.123Z");
    fp_alert_format_time(t, sizeof(t), 951782400007);
    check_str(t, "2000-02-29T00:00:00.007Z");
}

int main(void)
{
    char cmd[128];

    fp_assert(mkdtemp(dir) != NULL);
    store_open();
    test_time_format();
    test_threshold_lifecycle();
    test_restart();
    test_reload();
    test_device_states();
    test_below_cohort();
    test_regression();
    test_regression_strata();
    test_sliced_round();
    test_max_alerts();
    fp_store_close(&store);
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)system(cmd);
    fp_test_end();
}
