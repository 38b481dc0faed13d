/* Fleet-wide computations over a recent window: /api/v1/fleet/summary, /api/v1/compare and the
 * fleet part of /metrics.
 *
 * How: one read transaction; list the devices (identity, state), then read each metric the
 * answer needs once, series by series (select by metric name, find the series' device by its
 * "device" label, scan the window), folding samples into per-device accumulators: a DDSketch for
 * tokens/s and time to first token, reset-corrected increases of the request counters by
 * outcome, maxima of memory pressure and temperature. Groups then merge their devices'
 * accumulators, so a group's p95 is the p95 of all its devices' samples pooled, never a p95 of
 * per-device p95s. Each device's identity comes from the pairs it reported (its current model,
 * site, ...), not from the labels on old samples.
 *
 * Cost: every sample in the window is read once. A sample budget (max_scan_samples) bounds a
 * request's work, and answers are reused for summary_refresh_ms (keyed by their normalised
 * parameters): at 10,000 devices a summary takes far longer than one request may, and the
 * dashboards and scrapers that ask for it poll. Once stale, the summary and /metrics answers are
 * recomputed on the refresh thread (refresh.c) while the old one is still served, so everything
 * a computation reads comes through struct fp_fleet_env, never from the server directly.
 *
 * Rejected: aggregating through storage/aggregate once per grouping (five passes over the same
 * samples, and no per-device values for the cohort ratios); per-device p95s averaged (not a
 * fleet percentile). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "error.h"
#include "jsonout.h"
#include "params.h"
#include "parse.h"
#include "query-internal.h"
#include "refresh.h"
#include "sketch.h"
#include "state.h"
#include "stats.h"
#include "store.h"

/* The metrics the summary reads (docs/metrics.md); the probe and fleetpulse-sim emit them. */
#define METRIC_TPS "llamacpp_generation_tokens_per_second"
#define METRIC_TTFT "gen_ai_server_time_to_first_token_seconds"
#define METRIC_REQUESTS "gen_ai_server_requests_total"
#define METRIC_PRESSURE "memory_pressure_some_avg10"
#define METRIC_TEMP "temperature_celsius"

/* Window defaults and bounds. A day of raw samples is the most a request reads: longer views
 * belong to the series endpoint with a step. */
#define WINDOW_DEFAULT_MS (15 * 60 * 1000)
#define WINDOW_MIN_MS 1000
#define WINDOW_MAX_MS (24 * 3600 * 1000)

/* /metrics' fleet aggregates describe the last five minutes: what a scrape every 15 s or 1 min
 * wants to see move. */
#define METRICS_WINDOW_MS (5 * 60 * 1000)

/* Hottest / slowest lists: default and largest length. */
#define TOP_DEFAULT 10
#define TOP_MAX 100

/* The identity labels devices are grouped by. The summary groups by each on its own; /metrics by
 * model, model_version and site together; cohorts are model, model_version, quant and hw. */
enum {
    L_MODEL,
    L_MODEL_VERSION,
    L_QUANT,
    L_SITE,
    L_HW,
    N_LABELS,
};
static const char *const label_names[N_LABELS] = {"model", "model_version", "quant", "site", "hw"};

/* One device's accumulators over the window. */
struct fleet_dev {
    char *id;
    char *labels[N_LABELS]; /**< identity values, "" when not reported */
    enum fp_device_state state;
    fp_sketch *tps; /**< tokens/s samples; NULL: none */
    double tps_sum, tps_min, tps_max;
    uint64_t tps_n;
    fp_sketch *ttft; /**< time to first token samples; NULL: none */
    double ttft_min, ttft_max;
    double req_total, req_error, req_fallback; /**< counter increases in the window */
    bool has_requests;                         /**< some request counter had two samples */
    double pressure_max;
    bool has_pressure;
    double temp_max;
    bool has_temp;
};

struct fleet {
    const struct fp_fleet_env *env;
    struct fleet_dev *devs; /**< sorted by id */
    size_t n, cap;
    int64_t now_ms;
    int64_t from_ms, to_ms; /**< the window, inclusive */
    uint64_t scanned;       /**< samples read so far */
    bool over_budget;       /**< stopped at max_scan_samples */
};

static void fleet_fini(struct fleet *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->devs[i].id);
        for (int l = 0; l < N_LABELS; l++)
            free(f->devs[i].labels[l]);
        fp_sketch_destroy(&f->devs[i].tps);
        fp_sketch_destroy(&f->devs[i].ttft);
    }
    free(f->devs);
    memset(f, 0, sizeof(*f));
}

/* An identity pair of d, by the label name series carry ("hw" is the hw_class pair). */
static const char *info_value(const struct fp_device_desc *d, const char *label)
{
    const char *pair = strcmp(label, "hw") == 0 ? "hw_class" : label;

    for (size_t i = 0; i < d->n_info; i++)
        if (strcmp(d->info[i].name, pair) == 0)
            return d->info[i].value;
    return "";
}

static int cmp_str_ptr(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

/* Whether an alert fires for device: the hook on the server's thread, else the snapshot. */
static bool env_firing(const struct fp_fleet_env *env, const char *device)
{
    if (env->srv != NULL)
        return fp_query_device_firing(env->srv, device);
    return env->n_firing > 0 &&
           bsearch(device, env->firing, env->n_firing, sizeof(*env->firing), cmp_str_ptr) != NULL;
}

static int add_device(void *userdata, const struct fp_device_desc *d)
{
    struct fleet *f = userdata;
    struct fleet_dev *dev;

    if (d->device[0] == '@') /* fleetpulse's own components are not fleet devices */
        return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        struct fleet_dev *devs = realloc(f->devs, cap * sizeof(*devs));
        if (devs == NULL)
            return -ENOMEM;
        f->devs = devs;
        f->cap = cap;
    }
    dev = &f->devs[f->n];
    memset(dev, 0, sizeof(*dev));
    f->n++; /* counted now, so fleet_fini frees a half-filled entry */
    dev->id = strdup(d->device);
    if (dev->id == NULL)
        return -ENOMEM;
    for (int l = 0; l < N_LABELS; l++) {
        dev->labels[l] = strdup(info_value(d, label_names[l]));
        if (dev->labels[l] == NULL)
            return -ENOMEM;
    }
    dev->state = fp_state_of(f->now_ms, d->last_seen_ms, d->interval_ms, f->env->silent_after_ms,
                             env_firing(f->env, d->device));
    return 0;
}

static int cmp_dev_id(const void *a, const void *b)
{
    return strcmp(((const struct fleet_dev *)a)->id, ((const struct fleet_dev *)b)->id);
}

static int cmp_key_dev(const void *key, const void *elem)
{
    return strcmp(key, ((const struct fleet_dev *)elem)->id);
}

/* Lists the devices. Returns 0 or a store code / -errno. */
static int fleet_load_devices(struct fleet *f, struct fp_store_reader *rd)
{
    int r = fp_store_devices(rd, add_device, f);

    if (r == 0 && f->n > 1)
        qsort(f->devs, f->n, sizeof(*f->devs), cmp_dev_id);
    return r;
}

enum fleet_metric { M_TPS, M_TTFT, M_REQUESTS, M_PRESSURE, M_TEMP };

/* State of one series' scan. */
struct scan {
    struct fleet *f;
    struct fleet_dev *dev;
    enum fleet_metric metric;
    int outcome; /**< M_REQUESTS: 0 ok or other, 1 error, 2 fallback */
    bool has_prev;
    double prev;
    int err; /**< -ENOMEM from a sketch */
};

static int add_sample(fp_sketch **sk, double v)
{
    int r;

    if (*sk == NULL) {
        r = fp_sketch_new(sk);
        if (r < 0)
            return r;
    }
    r = fp_sketch_add(*sk, v);
    return r < 0 ? r : 0;
}

static int scan_point(void *userdata, int64_t ts_ms, double v)
{
    struct scan *s = userdata;
    struct fleet_dev *d = s->dev;

    (void)ts_ms;
    if (++s->f->scanned > s->f->env->max_scan_samples) {
        s->f->over_budget = true;
        return 1;
    }
    if (!isfinite(v)) /* NaN marks staleness; nothing here is meaningful as infinity */
        return 0;
    switch (s->metric) {
    case M_TPS:
        d->tps_min = d->tps_n == 0 || v < d->tps_min ? v : d->tps_min;
        d->tps_max = d->tps_n == 0 || v > d->tps_max ? v : d->tps_max;
        d->tps_sum += v;
        d->tps_n++;
        s->err = add_sample(&d->tps, v);
        break;
    case M_TTFT: {
        bool first = d->ttft == NULL;
        d->ttft_min = first || v < d->ttft_min ? v : d->ttft_min;
        d->ttft_max = first || v > d->ttft_max ? v : d->ttft_max;
        s->err = add_sample(&d->ttft, v);
        break;
    }
    case M_REQUESTS:
        /* As storage/aggregate's increase: consecutive samples inside the window, a drop is a
         * counter reset (the counter restarted from 0 and reached v). */
        if (s->has_prev) {
            double inc = v >= s->prev ? v - s->prev : v;
            d->req_total += inc;
            if (s->outcome == 1)
                d->req_error += inc;
            else if (s->outcome == 2)
                d->req_fallback += inc;
            d->has_requests = true;
        }
        s->prev = v;
        s->has_prev = true;
        break;
    case M_PRESSURE:
        d->pressure_max = !d->has_pressure || v > d->pressure_max ? v : d->pressure_max;
        d->has_pressure = true;
        break;
    case M_TEMP:
        d->temp_max = !d->has_temp || v > d->temp_max ? v : d->temp_max;
        d->has_temp = true;
        break;
    }
    return s->err < 0 ? 1 : 0;
}

static const char *desc_label(const struct fp_series_desc *desc, const char *name)
{
    for (size_t i = 0; i < desc->n_labels; i++)
        if (strcmp(desc->labels[i].name, name) == 0)
            return desc->labels[i].value;
    return NULL;
}

/* Folds every sample of the metric in the window into its device. Returns 0, 1 when the budget
 * ran out, or a store code / -errno. */
static int fleet_read(struct fleet *f, struct fp_store_reader *rd, enum fleet_metric metric)
{
    static const char *const names[] = {
        [M_TPS] = METRIC_TPS,           [M_TTFT] = METRIC_TTFT, [M_REQUESTS] = METRIC_REQUESTS,
        [M_PRESSURE] = METRIC_PRESSURE, [M_TEMP] = METRIC_TEMP,
    };
    struct fp_matcher m = {.name = "__name__", .value = names[metric], .op = FP_MATCH_EQ};
    struct fp_series_desc desc;
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int r;

    r = fp_store_select(rd, &m, 1, &ids, &n_ids);
    for (size_t i = 0; i < n_ids && r == 0; i++) {
        struct scan s = {.f = f, .metric = metric};
        const char *device, *outcome;

        r = fp_store_series_get(rd, ids[i], &desc);
        if (r != 0)
            break;
        device = desc_label(&desc, "device");
        s.dev = device != NULL && f->n > 0
                    ? bsearch(device, f->devs, f->n, sizeof(*f->devs), cmp_key_dev)
                    : NULL;
        if (s.dev == NULL)
            continue;
        outcome = desc_label(&desc, "outcome");
        s.outcome = outcome == NULL                    ? 0
                    : strcmp(outcome, "error") == 0    ? 1
                    : strcmp(outcome, "fallback") == 0 ? 2
                                                       : 0;
        r = fp_store_read_range(rd, ids[i], f->from_ms, f->to_ms, scan_point, &s);
        if (s.err < 0)
            r = s.err;
        else if (f->over_budget)
            r = 1;
    }
    free(ids);
    return r;
}

void fp_fleet_env_sync(struct fp_query_server *srv, struct fp_fleet_env *ret)
{
    *ret = (struct fp_fleet_env){
        .store = srv->store,
        .srv = srv,
        .now_ms = srv->now_ms(),
        .silent_after_ms = srv->silent_after_ms,
        .max_scan_samples = srv->max_scan_samples,
    };
}

/* Reads the listed metrics (n of them) for every device over [now - window, now]. Returns an
 * HTTP status with err set. */
static int fleet_compute(const struct fp_fleet_env *env, struct fleet *f, int64_t window_ms,
                         const enum fleet_metric *metrics, size_t n, char *err, size_t err_size)
{
    struct fp_store_reader *rd = NULL;
    int r;

    f->env = env;
    f->now_ms = env->now_ms;
    f->to_ms = f->now_ms;
    f->from_ms = f->now_ms - window_ms;
    /* Off the server's thread the read is not timed into the server's histogram. */
    r = env->srv != NULL ? fp_query_reader_open(env->srv, &rd)
                         : fp_store_reader_open(env->store, &rd);
    if (r == 0)
        r = fleet_load_devices(f, rd);
    for (size_t i = 0; i < n && r == 0; i++)
        r = fleet_read(f, rd, metrics[i]);
    if (env->srv != NULL)
        fp_query_reader_close(env->srv, &rd);
    else
        fp_store_reader_close(&rd);
    if (r == 1) {
        fp_set_err(err, err_size,
                   "the window holds more than %" PRIu64 " samples; shorten it (window)",
                   env->max_scan_samples);
        return FP_HTTP_UNPROCESSABLE;
    }
    if (r != 0) {
        if (r == -ENOMEM)
            fp_set_err(err, err_size, "out of memory");
        else
            fp_set_err(err, err_size, "store: %s", fp_store_strerror(r));
        return FP_HTTP_INTERNAL_ERROR;
    }
    return FP_HTTP_OK;
}

/* --- groups ----------------------------------------------------------------------------------- */

/* What a group of devices (or the whole fleet) sums up to. */
struct group_stats {
    size_t devices;
    size_t states[FP_STATE_COUNT];
    bool has_tps, has_ttft;
    double tps_p50, tps_p95;
    double ttft_p50, ttft_p95, ttft_p99;
    bool has_requests;
    double requests, errors, fallbacks;
    bool has_pressure, has_temp;
    double pressure_max, temp_max;
};

/* A pooled quantile, kept inside [min, max] as storage/aggregate keeps its quantiles: the sketch
 * answers within 1%, which could otherwise step outside the values seen. */
static double pooled_quantile(const fp_sketch *sk, double q, double min, double max)
{
    double v = NAN;

    (void)fp_sketch_quantile(sk, q, &v);
    return v < min ? min : v > max ? max : v;
}

/* Sums up the devices devs[idx[0..n)]. Returns 0 or -ENOMEM. */
static int group_compute(const struct fleet *f, const size_t *idx, size_t n, struct group_stats *g)
{
    fp_sketch *tps = NULL, *ttft = NULL;
    double tps_min = 0, tps_max = 0, ttft_min = 0, ttft_max = 0;
    int r;

    memset(g, 0, sizeof(*g));
    r = fp_sketch_new(&tps);
    if (r == 0)
        r = fp_sketch_new(&ttft);
    for (size_t i = 0; i < n && r == 0; i++) {
        const struct fleet_dev *d = &f->devs[idx[i]];

        g->devices++;
        g->states[d->state]++;
        if (d->tps != NULL) {
            tps_min = !g->has_tps || d->tps_min < tps_min ? d->tps_min : tps_min;
            tps_max = !g->has_tps || d->tps_max > tps_max ? d->tps_max : tps_max;
            g->has_tps = true;
            r = fp_sketch_merge(tps, d->tps);
        }
        if (r == 0 && d->ttft != NULL) {
            ttft_min = !g->has_ttft || d->ttft_min < ttft_min ? d->ttft_min : ttft_min;
            ttft_max = !g->has_ttft || d->ttft_max > ttft_max ? d->ttft_max : ttft_max;
            g->has_ttft = true;
            r = fp_sketch_merge(ttft, d->ttft);
        }
        if (d->has_requests) {
            g->has_requests = true;
            g->requests += d->req_total;
            g->errors += d->req_error;
            g->fallbacks += d->req_fallback;
        }
        if (d->has_pressure) {
            g->pressure_max = !g->has_pressure || d->pressure_max > g->pressure_max
                                  ? d->pressure_max
                                  : g->pressure_max;
            g->has_pressure = true;
        }
        if (d->has_temp) {
            g->temp_max = !g->has_temp || d->temp_max > g->temp_max ? d->temp_max : g->temp_max;
            g->has_temp = true;
        }
    }
    if (r == 0 && g->has_tps) {
        g->tps_p50 = pooled_quantile(tps, 0.5, tps_min, tps_max);
        g->tps_p95 = pooled_quantile(tps, 0.95, tps_min, tps_max);
    }
    if (r == 0 && g->has_ttft) {
        g->ttft_p50 = pooled_quantile(ttft, 0.5, ttft_min, ttft_max);
        g->ttft_p95 = pooled_quantile(ttft, 0.95, ttft_min, ttft_max);
        g->ttft_p99 = pooled_quantile(ttft, 0.99, ttft_min, ttft_max);
    }
    fp_sketch_destroy(&tps);
    fp_sketch_destroy(&ttft);
    return r < 0 ? -ENOMEM : 0;
}

/* Device indices ordered by a tuple of labels, for cutting into groups. */
struct group_order {
    const struct fleet *f;
    const int *labels;
    size_t n_labels;
};

/* qsort has no context argument. Per thread: the refresh thread and the server's thread may
 * both be ordering at once. */
static _Thread_local const struct group_order *current_order;

static int cmp_by_labels(const void *a, const void *b)
{
    const struct fleet_dev *x = &current_order->f->devs[*(const size_t *)a];
    const struct fleet_dev *y = &current_order->f->devs[*(const size_t *)b];

    for (size_t i = 0; i < current_order->n_labels; i++) {
        int c = strcmp(x->labels[current_order->labels[i]], y->labels[current_order->labels[i]]);
        if (c != 0)
            return c;
    }
    return strcmp(x->id, y->id);
}

static bool same_group(const struct fleet *f, const int *labels, size_t n_labels, size_t a,
                       size_t b)
{
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->devs[a].labels[labels[i]], f->devs[b].labels[labels[i]]) != 0)
            return false;
    return true;
}

/* Every device index, ordered by labels. Returns a new array (free()) or NULL. */
static size_t *order_by(const struct fleet *f, const int *labels, size_t n_labels)
{
    struct group_order o = {f, labels, n_labels};
    size_t *idx = malloc((f->n ? f->n : 1) * sizeof(*idx));

    if (idx == NULL)
        return NULL;
    for (size_t i = 0; i < f->n; i++)
        idx[i] = i;
    current_order = &o;
    if (f->n > 1)
        qsort(idx, f->n, sizeof(*idx), cmp_by_labels);
    current_order = NULL;
    return idx;
}

/* --- /api/v1/fleet/summary ------------------------------------------------------------------- */

static const char *const summary_params[] = {"window", "top", NULL};

static int set(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

static json_t *real_or_null(bool has, double v)
{
    return has ? fp_jsonout_real_new(v) : json_null();
}

static json_t *states_new(const size_t *states)
{
    json_t *obj = json_object();
    int r = obj == NULL ? -ENOMEM : 0;

    for (int s = 0; s < FP_STATE_COUNT && r == 0; s++)
        r = set(obj, fp_state_name((enum fp_device_state)s), json_integer((json_int_t)states[s]));
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The fields of one group's object (after its "value"), added to obj. */
static int group_fill(json_t *obj, const struct group_stats *g)
{
    json_t *tps = json_object(), *ttft = json_object();
    bool rates = g->has_requests && g->requests > 0;
    int r = tps == NULL || ttft == NULL ? -ENOMEM : 0;

    r = r < 0 ? r : set(tps, "p50", real_or_null(g->has_tps, g->tps_p50));
    r = r < 0 ? r : set(tps, "p95", real_or_null(g->has_tps, g->tps_p95));
    r = r < 0 ? r : set(ttft, "p50", real_or_null(g->has_ttft, g->ttft_p50));
    r = r < 0 ? r : set(ttft, "p95", real_or_null(g->has_ttft, g->ttft_p95));
    r = r < 0 ? r : set(ttft, "p99", real_or_null(g->has_ttft, g->ttft_p99));
    r = r < 0 ? r : set(obj, "devices", json_integer((json_int_t)g->devices));
    r = r < 0 ? r : set(obj, "states", states_new(g->states));
    if (r == 0) {
        r = set(obj, "tokens_per_second", tps);
        tps = NULL;
    }
    if (r == 0) {
        r = set(obj, "ttft_seconds", ttft);
        ttft = NULL;
    }
    r = r < 0 ? r : set(obj, "requests", real_or_null(g->has_requests, g->requests));
    r = r < 0 ? r : set(obj, "error_rate", real_or_null(rates, g->errors / g->requests));
    r = r < 0 ? r : set(obj, "fallback_rate", real_or_null(rates, g->fallbacks / g->requests));
    r = r < 0 ? r : set(obj, "memory_pressure_max", real_or_null(g->has_pressure, g->pressure_max));
    r = r < 0 ? r : set(obj, "temperature_max", real_or_null(g->has_temp, g->temp_max));
    json_decref(tps);
    json_decref(ttft);
    return r;
}

/* One grouping's array: a group per value of label l, sorted by value. */
static json_t *grouping_new(const struct fleet *f, int l)
{
    json_t *arr = json_array();
    size_t *idx = order_by(f, &l, 1);
    int r = arr == NULL || idx == NULL ? -ENOMEM : 0;

    for (size_t i = 0, run; i < f->n && r == 0; i += run) {
        struct group_stats g;
        json_t *obj;

        for (run = 1; i + run < f->n && same_group(f, &l, 1, idx[i], idx[i + run]); run++)
            ;
        r = group_compute(f, idx + i, run, &g);
        obj = json_object();
        r = r < 0 ? r : obj == NULL ? -ENOMEM : 0;
        r = r < 0 ? r : set(obj, "value", fp_jsonout_string_new(f->devs[idx[i]].labels[l]));
        r = r < 0 ? r : group_fill(obj, &g);
        if (r == 0 && json_array_append_new(arr, obj) != 0)
            r = -ENOMEM;
        else if (r < 0)
            json_decref(obj);
    }
    free(idx);
    if (r < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* A device entry of the hottest / slowest lists: its id, state and identity. */
static json_t *device_ref_new(const struct fleet_dev *d)
{
    json_t *obj = json_object();
    int r = obj == NULL ? -ENOMEM : 0;

    r = r < 0 ? r : set(obj, "device", fp_jsonout_string_new(d->id));
    r = r < 0 ? r : set(obj, "state", json_string(fp_state_name(d->state)));
    for (int l = 0; l < N_LABELS && r == 0; l++)
        r = set(obj, label_names[l], fp_jsonout_string_new(d->labels[l]));
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static _Thread_local const struct fleet *hot_fleet; /* qsort context, as current_order */

static int cmp_hot(const void *a, const void *b)
{
    const struct fleet_dev *x = &hot_fleet->devs[*(const size_t *)a];
    const struct fleet_dev *y = &hot_fleet->devs[*(const size_t *)b];

    if (x->temp_max != y->temp_max)
        return x->temp_max > y->temp_max ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The top devices by highest temperature in the window. */
static json_t *hottest_new(const struct fleet *f, size_t top)
{
    json_t *arr = json_array();
    size_t *idx = malloc((f->n ? f->n : 1) * sizeof(*idx)), n = 0;
    int r = arr == NULL || idx == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < f->n && r == 0; i++)
        if (f->devs[i].has_temp)
            idx[n++] = i;
    hot_fleet = f;
    if (r == 0 && n > 1)
        qsort(idx, n, sizeof(*idx), cmp_hot);
    for (size_t i = 0; i < n && i < top && r == 0; i++) {
        json_t *obj = device_ref_new(&f->devs[idx[i]]);
        r = obj == NULL
                ? -ENOMEM
                : set(obj, "temperature_max", fp_jsonout_real_new(f->devs[idx[i]].temp_max));
        if (r == 0 && json_array_append_new(arr, obj) != 0)
            r = -ENOMEM;
        else if (r < 0)
            json_decref(obj);
    }
    free(idx);
    if (r < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* A device slower than its cohort. */
struct slow {
    size_t dev;
    double mean;   /**< its mean tokens/s */
    double median; /**< its cohort's median of per-device means */
    double ratio;  /**< mean / median */
    size_t cohort; /**< devices in the cohort with a value */
};

static int cmp_slow(const void *a, const void *b)
{
    const struct slow *x = a, *y = b;

    if (x->ratio != y->ratio)
        return x->ratio < y->ratio ? -1 : 1;
    return strcmp(hot_fleet->devs[x->dev].id, hot_fleet->devs[y->dev].id);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The top devices by lowest ratio of their mean tokens/s to their cohort's median (cohort: the
 * same model, model_version, quant and hw); only those below their cohort's median. */
static json_t *slowest_new(const struct fleet *f, size_t top)
{
    static const int cohort[] = {L_MODEL, L_MODEL_VERSION, L_QUANT, L_HW};
    json_t *arr = json_array();
    size_t *idx = order_by(f, cohort, 4), n_slow = 0;
    struct slow *slow = malloc((f->n ? f->n : 1) * sizeof(*slow));
    double *means = malloc((f->n ? f->n : 1) * sizeof(*means));
    int r = arr == NULL || idx == NULL || slow == NULL || means == NULL ? -ENOMEM : 0;

    for (size_t i = 0, run; i < f->n && r == 0; i += run) {
        size_t n = 0;
        double median;

        for (run = 1; i + run < f->n && same_group(f, cohort, 4, idx[i], idx[i + run]); run++)
            ;
        for (size_t j = i; j < i + run; j++)
            if (f->devs[idx[j]].tps_n > 0)
                means[n++] = f->devs[idx[j]].tps_sum / (double)f->devs[idx[j]].tps_n;
        if (n < 2) /* alone in its cohort: no one to be slow against */
            continue;
        qsort(means, n, sizeof(*means), cmp_double);
        median = fp_stats_quantile_sorted(means, n, 0.5);
        if (!(median > 0))
            continue;
        for (size_t j = i; j < i + run; j++) {
            const struct fleet_dev *d = &f->devs[idx[j]];
            double mean;

            if (d->tps_n == 0)
                continue;
            mean = d->tps_sum / (double)d->tps_n;
            if (mean < median)
                slow[n_slow++] = (struct slow){idx[j], mean, median, mean / median, n};
        }
    }
    hot_fleet = f;
    if (r == 0 && n_slow > 1)
        qsort(slow, n_slow, sizeof(*slow), cmp_slow);
    for (size_t i = 0; i < n_slow && i < top && r == 0; i++) {
        json_t *obj = device_ref_new(&f->devs[slow[i].dev]);
        r = obj == NULL ? -ENOMEM : 0;
        r = r < 0 ? r : set(obj, "tokens_per_second", fp_jsonout_real_new(slow[i].mean));
        r = r < 0 ? r : set(obj, "cohort_median", fp_jsonout_real_new(slow[i].median));
        r = r < 0 ? r : set(obj, "ratio", fp_jsonout_real_new(slow[i].ratio));
        r = r < 0 ? r : set(obj, "cohort_devices", json_integer((json_int_t)slow[i].cohort));
        if (r == 0 && json_array_append_new(arr, obj) != 0)
            r = -ENOMEM;
        else if (r < 0)
            json_decref(obj);
    }
    free(idx);
    free(slow);
    free(means);
    if (r < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Reads "window" (default def_ms) into *ret_ms. Returns 0 or -EINVAL with err set. */
static int parse_window(const struct fp_query_params *p, int64_t def_ms, int64_t *ret_ms, char *err,
                        size_t err_size)
{
    const char *v = fp_query_params_get(p, "window");

    *ret_ms = def_ms;
    if (v == NULL)
        return 0;
    if (fp_query_duration_parse(v, ret_ms) < 0) {
        fp_set_err(err, err_size,
                   "parameter \"window\": \"%.64s\" is not a duration (e.g. 900, 15m, 1h)", v);
        return -EINVAL;
    }
    if (*ret_ms < WINDOW_MIN_MS || *ret_ms > WINDOW_MAX_MS) {
        fp_set_err(err, err_size, "parameter \"window\": must be from 1 second to 24 hours");
        return -EINVAL;
    }
    return 0;
}

/* The device ids of f, sorted (they are): the next firing snapshot's candidates. Returns 0 or
 * -ENOMEM; *ret new (each string and the array free()). */
static int fleet_ids(const struct fleet *f, char ***ret, size_t *ret_n)
{
    char **ids = malloc((f->n ? f->n : 1) * sizeof(*ids));
    size_t n = 0;

    if (ids == NULL)
        return -ENOMEM;
    for (; n < f->n; n++) {
        ids[n] = strdup(f->devs[n].id);
        if (ids[n] == NULL) {
            while (n > 0)
                free(ids[--n]);
            free(ids);
            return -ENOMEM;
        }
    }
    *ret = ids;
    *ret_n = n;
    return 0;
}

/* Serialises v into a new buffer. Returns 0 or -ENOMEM. */
static int json_bytes(const json_t *v, char **ret, size_t *ret_len)
{
    struct evbuffer *tmp = evbuffer_new();
    size_t len;
    int r;

    if (tmp == NULL)
        return -ENOMEM;
    r = fp_jsonout_value(tmp, v);
    len = evbuffer_get_length(tmp);
    *ret = r == 0 ? malloc(len ? len : 1) : NULL;
    if (*ret == NULL || evbuffer_remove(tmp, *ret, len) != (int)len) {
        free(*ret);
        *ret = NULL;
        r = -ENOMEM;
    }
    *ret_len = len;
    evbuffer_free(tmp);
    return r;
}

/* The summary of the computed fleet f as JSON text. Returns 0 or -ENOMEM. */
static int summary_json(const struct fleet *f, int64_t window_ms, uint64_t top, char **ret,
                        size_t *ret_len)
{
    struct group_stats all;
    json_t *body = NULL, *groups = NULL, *fleet_obj = NULL;
    size_t *idx;
    int r;

    idx = malloc((f->n ? f->n : 1) * sizeof(*idx));
    r = idx == NULL ? -ENOMEM : 0;
    for (size_t i = 0; i < f->n && r == 0; i++)
        idx[i] = i;
    r = r < 0 ? r : group_compute(f, idx, f->n, &all);
    body = json_object();
    groups = json_object();
    fleet_obj = json_object();
    r = r < 0 ? r : body == NULL || groups == NULL || fleet_obj == NULL ? -ENOMEM : 0;
    r = r < 0 ? r : set(body, "window", fp_jsonout_real_new((double)window_ms / 1000));
    r = r < 0 ? r : set(body, "time", fp_jsonout_real_new((double)f->now_ms / 1000));
    r = r < 0 ? r : set(body, "devices", json_integer((json_int_t)f->n));
    r = r < 0 ? r : set(body, "states", states_new(all.states));
    r = r < 0 ? r : group_fill(fleet_obj, &all);
    if (r == 0) {
        r = set(body, "fleet", fleet_obj);
        fleet_obj = NULL;
    }
    for (int l = 0; l < N_LABELS && r == 0; l++) {
        json_t *g = grouping_new(f, l);
        r = g == NULL ? -ENOMEM : set(groups, label_names[l], g);
    }
    if (r == 0) {
        r = set(body, "groups", groups);
        groups = NULL;
    }
    if (r == 0) {
        json_t *hot = hottest_new(f, (size_t)top);
        r = hot == NULL ? -ENOMEM : set(body, "hottest", hot);
    }
    if (r == 0) {
        json_t *slow = slowest_new(f, (size_t)top);
        r = slow == NULL ? -ENOMEM : set(body, "slowest", slow);
    }
    r = r < 0 ? r : json_bytes(body, ret, ret_len);
    free(idx);
    json_decref(body);
    json_decref(groups);
    json_decref(fleet_obj);
    return r;
}

static int metrics_text(const struct fleet *f, char **ret, size_t *ret_len);
static int compare_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job,
                          char **ret_body, size_t *ret_len, char *err, size_t err_size);
static int sort_values_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job,
                              char **ret_body, size_t *ret_len, char *err, size_t err_size);

int fp_fleet_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job, char **ret_body,
                    size_t *ret_len, char ***ret_ids, size_t *ret_n_ids, char *err, size_t err_size)
{
    static const enum fleet_metric metrics[] = {M_TPS, M_TTFT, M_REQUESTS, M_PRESSURE, M_TEMP};
    struct fleet f = {0};
    char *body = NULL;
    size_t len = 0;
    int status, r;

    *ret_ids = NULL;
    *ret_n_ids = 0;
    if (job->kind == FP_FLEET_JOB_COMPARE)
        return compare_render(env, job, ret_body, ret_len, err, err_size);
    if (job->kind == FP_FLEET_JOB_SORT_VALUES)
        return sort_values_render(env, job, ret_body, ret_len, err, err_size);
    status = fleet_compute(env, &f,
                           job->kind == FP_FLEET_JOB_METRICS ? METRICS_WINDOW_MS : job->window_ms,
                           metrics, sizeof(metrics) / sizeof(metrics[0]), err, err_size);
    if (status != FP_HTTP_OK)
        goto out;
    r = job->kind == FP_FLEET_JOB_METRICS ? metrics_text(&f, &body, &len)
                                          : summary_json(&f, job->window_ms, job->top, &body, &len);
    if (r == 0)
        r = fleet_ids(&f, ret_ids, ret_n_ids);
    if (r < 0) {
        fp_set_err(err, err_size, "out of memory");
        status = FP_HTTP_INTERNAL_ERROR;
        goto out;
    }
    *ret_body = body;
    *ret_len = len;
    body = NULL;
out:
    free(body);
    fleet_fini(&f);
    return status;
}

int fp_fleet_serve(struct fp_query_server *srv, const char *key, const struct fp_fleet_job *job,
                   struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_fleet_env env;
    char *body = NULL, **ids = NULL;
    size_t len = 0, n_ids = 0;
    int status;

    switch (fp_query_cache_lookup(srv, key, out)) {
    case FP_QUERY_CACHE_FRESH:
        return FP_HTTP_OK;
    case FP_QUERY_CACHE_STALE:
        fp_refresh_schedule(srv, key, job);
        return FP_HTTP_OK;
    default:
        break;
    }
    fp_fleet_env_sync(srv, &env);
    status = fp_fleet_render(&env, job, &body, &len, &ids, &n_ids, err, err_size);
    if (status != FP_HTTP_OK)
        return status;
    fp_query_cache_put(srv, key, body, len);
    if (ids != NULL)
        fp_refresh_known_ids(srv, ids, n_ids); /* takes ids */
    if (evbuffer_add(out, body, len) != 0) {
        fp_set_err(err, err_size, "out of memory");
        status = FP_HTTP_INTERNAL_ERROR;
    }
    free(body);
    return status;
}

int fp_api_fleet_summary(struct fp_query_server *srv, const char *arg, const char *query,
                         struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    struct fp_fleet_job job = {.kind = FP_FLEET_JOB_SUMMARY, .top = TOP_DEFAULT};
    char key[96];
    const char *v;
    int status = FP_HTTP_BAD_REQUEST;

    (void)arg;
    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (fp_query_params_check(&params, summary_params, err, err_size) < 0 ||
        parse_window(&params, WINDOW_DEFAULT_MS, &job.window_ms, err, err_size) < 0)
        goto out;
    if ((v = fp_query_params_get(&params, "top")) != NULL &&
        (strspn(v, "0123456789") != strlen(v) || fp_parse_u64(v, &job.top) < 0 || job.top < 1 ||
         job.top > TOP_MAX)) {
        fp_set_err(err, err_size, "parameter \"top\": not a count from 1 to %d", TOP_MAX);
        goto out;
    }
    (void)snprintf(key, sizeof(key), "summary window=%" PRId64 " top=%" PRIu64, job.window_ms,
                   job.top);
    status = fp_fleet_serve(srv, key, &job, out, err, err_size);
out:
    fp_query_params_fini(&params);
    return status;
}

/* --- /api/v1/compare ------------------------------------------------------------------------- */

static const char *const compare_params[] = {"metric", "by",    "a",      "b",
                                             "window", "match", "strata", NULL};

/* Most labels in "strata" (as a cohort_regression rule's). */
#define STRATA_MAX 8

/* A "strata" value split into label names. */
struct strata {
    char buf[FP_QUERY_VALUE_MAX + 1]; /**< the value, commas turned into NULs */
    const char *names[STRATA_MAX];    /**< into buf */
    size_t n;
};

/* Per-device means of one cohort's series. */
struct cohort {
    const char *value; /**< the "by" label's value; borrowed from the request */
    double *values;    /**< one mean per device compared, sorted (set from the split) */
    size_t n;
};

/* One device's running sum while a cohort is read. */
struct dev_mean {
    char *id;
    char *stratum; /**< the series' strata label values ("len:value," each); "" without */
    double sum;
    uint64_t n;
};

/* The devices of both cohorts with their means, as fp_stats_stratify takes them; strata owned. */
struct members {
    struct fp_stats_member *m;
    size_t n, cap;
};

struct mean_scan {
    struct dev_mean *d;
    uint64_t *scanned;
    uint64_t budget;
    bool over_budget;
};

static int mean_point(void *userdata, int64_t ts_ms, double v)
{
    struct mean_scan *s = userdata;

    (void)ts_ms;
    if (++*s->scanned > s->budget) {
        s->over_budget = true;
        return 1;
    }
    if (isfinite(v)) {
        s->d->sum += v;
        s->d->n++;
    }
    return 0;
}

static int cmp_dev_mean(const void *a, const void *b)
{
    const struct dev_mean *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    return c != 0 ? c : strcmp(x->stratum, y->stratum);
}

/* The stratum of a series: each strata label's value on it ("" when missing), length-prefixed
 * so that no value can run into the next. Returns a new string or NULL. */
static char *stratum_key(const struct fp_series_desc *desc, const struct strata *st)
{
    char *key = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&key, &len);

    if (f == NULL)
        return NULL;
    for (size_t i = 0; i < st->n; i++) {
        const char *v = desc_label(desc, st->names[i]);
        if (v == NULL)
            v = "";
        fprintf(f, "%zu:%s,", strlen(v), v);
    }
    if ((ferror(f) | fclose(f)) != 0) {
        free(key);
        return NULL;
    }
    return key;
}

static void members_fini(struct members *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        free((char *)ms->m[i].stratum);
    free(ms->m);
    memset(ms, 0, sizeof(*ms));
}

/* Reads one cohort: the series of metric with by=value (and the extra matchers), a mean per
 * device (and stratum) over [from, to], appended to ms as cohort b or a. Returns 0, 1 over
 * budget, or a store code / -errno. */
static int cohort_read(struct fp_store_reader *rd, const struct fp_matcher *base, size_t n_base,
                       int64_t from_ms, int64_t to_ms, uint64_t *scanned, uint64_t budget,
                       const struct strata *st, bool is_b, struct members *ms)
{
    struct fp_series_desc desc;
    struct dev_mean *devs = NULL;
    uint64_t *ids = NULL;
    size_t n_ids = 0, n_devs = 0;
    int r;

    r = fp_store_select(rd, base, n_base, &ids, &n_ids);
    if (r == 0 && n_ids > 0) {
        devs = calloc(n_ids, sizeof(*devs));
        if (devs == NULL)
            r = -ENOMEM;
    }
    /* Series of a device are not adjacent in id order in general: collect, then merge. */
    for (size_t i = 0; i < n_ids && r == 0; i++) {
        struct mean_scan s = {.scanned = scanned, .budget = budget};
        const char *device;

        r = fp_store_series_get(rd, ids[i], &desc);
        if (r != 0)
            break;
        device = desc_label(&desc, "device");
        if (device == NULL || device[0] == '@')
            continue;
        devs[n_devs].id = strdup(device);
        devs[n_devs].stratum = stratum_key(&desc, st);
        s.d = &devs[n_devs++];
        if (s.d->id == NULL || s.d->stratum == NULL) {
            r = -ENOMEM;
            break;
        }
        r = fp_store_read_range(rd, ids[i], from_ms, to_ms, mean_point, &s);
        if (s.over_budget)
            r = 1;
    }
    if (r == 0 && n_devs > 1)
        qsort(devs, n_devs, sizeof(*devs), cmp_dev_mean);
    if (r == 0 && ms->cap - ms->n < n_devs) {
        size_t cap = ms->n + n_devs;
        struct fp_stats_member *m = realloc(ms->m, cap * sizeof(*m));

        if (m == NULL)
            r = -ENOMEM;
        else {
            ms->m = m;
            ms->cap = cap;
        }
    }
    /* A device with several series of the metric (zones) gets the mean of all its samples. (A
     * device whose strata labels changed in the window counts once per stratum, as one whose
     * "by" label changed counts in both cohorts.) */
    for (size_t i = 0, run; i < n_devs && r == 0; i += run) {
        double sum = devs[i].sum;
        uint64_t n = devs[i].n;

        for (run = 1; i + run < n_devs && cmp_dev_mean(&devs[i], &devs[i + run]) == 0; run++) {
            sum += devs[i + run].sum;
            n += devs[i + run].n;
        }
        if (n == 0)
            continue;
        ms->m[ms->n++] = (struct fp_stats_member){
            .stratum = devs[i].stratum, .value = sum / (double)n, .is_b = is_b};
        devs[i].stratum = NULL; /* taken */
    }
    for (size_t i = 0; i < n_devs; i++) {
        free(devs[i].id);
        free(devs[i].stratum);
    }
    free(devs);
    free(ids);
    return r;
}

static json_t *cohort_new(const struct cohort *c)
{
    json_t *obj = json_object();
    double sum = 0;
    int r = obj == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < c->n; i++)
        sum += c->values[i];
    r = r < 0 ? r : set(obj, "value", fp_jsonout_string_new(c->value));
    r = r < 0 ? r : set(obj, "devices", json_integer((json_int_t)c->n));
    r = r < 0 ? r : set(obj, "mean", real_or_null(c->n > 0, sum / (double)c->n));
    r = r < 0 ? r
              : set(obj, "median",
                    real_or_null(c->n > 0, fp_stats_quantile_sorted(c->values, c->n, 0.5)));
    r = r < 0 ? r
              : set(obj, "p95",
                    real_or_null(c->n > 0, fp_stats_quantile_sorted(c->values, c->n, 0.95)));
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* "v2 is 14.0% lower than v1 (median), p = 0.0021, 120 vs 880 devices"; with strata the
 * median is "median within strata model,quant". */
static json_t *verdict_new(const struct cohort *a, const struct cohort *b, double change,
                           bool has_p, double p, const char *strata)
{
    char text[1024], pbuf[32], how[300];

    if (!has_p)
        (void)snprintf(pbuf, sizeof(pbuf), "no test");
    else if (p < 0.0001)
        (void)snprintf(pbuf, sizeof(pbuf), "p < 0.0001");
    else
        (void)snprintf(pbuf, sizeof(pbuf), "p = %.2g", p);
    if (strata != NULL)
        (void)snprintf(how, sizeof(how), "median within strata %.256s", strata);
    else
        (void)snprintf(how, sizeof(how), "median");
    if (isnan(change))
        (void)snprintf(text, sizeof(text),
                       "%.100s vs %.100s: no comparable medians, %s, %zu vs "
                       "%zu devices",
                       b->value, a->value, pbuf, b->n, a->n);
    else
        (void)snprintf(text, sizeof(text),
                       "%.100s is %.1f%% %s than %.100s (%s), %s, %zu vs "
                       "%zu devices",
                       b->value, fabs(change) * 100, change < 0 ? "lower" : "higher", a->value,
                       how, pbuf, b->n, a->n);
    return fp_jsonout_string_new(text);
}

static int strata_parse(const char *value, const char *by, struct strata *ret, char *err,
                          size_t err_size)
{
    size_t len = strlen(value);
    char *p;

    ret->n = 0;
    if (len == 0 || len > FP_QUERY_VALUE_MAX)
        goto bad;
    memcpy(ret->buf, value, len + 1);
    for (p = ret->buf;; p++) {
        char *comma = strchr(p, ',');

        if (comma != NULL)
            *comma = '\0';
        if (ret->n == STRATA_MAX) {
            fp_set_err(err, err_size, "parameter \"strata\": at most %d labels", STRATA_MAX);
            return -EINVAL;
        }
        if (!fp_query_label_name_valid(p) || strcmp(p, "__name__") == 0)
            goto bad;
        if (strcmp(p, "device") == 0 || strcmp(p, by) == 0) {
            fp_set_err(err, err_size, "parameter \"strata\": \"%.64s\" cannot be a stratum (it %s)",
                       p, strcmp(p, "device") == 0 ? "makes strata of one device"
                                                   : "splits the cohorts");
            return -EINVAL;
        }
        ret->names[ret->n++] = p;
        if (comma == NULL)
            return 0;
        p = comma;
    }
bad:
    fp_set_err(err, err_size,
               "parameter \"strata\": \"%.64s\" is not a comma-separated list of label names",
               value);
    return -EINVAL;
}

/* "strata": the labels, the strata compared and the devices left out. */
static json_t *strata_new(const struct strata *st, const struct fp_stats_split *split)
{
    json_t *obj = json_object(), *labels = json_array();
    int r = obj == NULL || labels == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < st->n && r == 0; i++)
        r = json_array_append_new(labels, fp_jsonout_string_new(st->names[i])) == 0 ? 0 : -ENOMEM;
    r = r < 0 ? r : set(obj, "labels", json_incref(labels));
    r = r < 0 ? r : set(obj, "compared", json_integer((json_int_t)split->strata));
    r = r < 0 ? r : set(obj, "excluded_devices", json_integer((json_int_t)split->excluded));
    json_decref(labels);
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Opens a reader as env allows: timed on the server's thread, plain elsewhere. */
static int env_reader_open(const struct fp_fleet_env *env, struct fp_store_reader **ret)
{
    return env->srv != NULL ? fp_query_reader_open(env->srv, ret)
                            : fp_store_reader_open(env->store, ret);
}

static void env_reader_close(const struct fp_fleet_env *env, struct fp_store_reader **rd)
{
    if (env->srv != NULL)
        fp_query_reader_close(env->srv, rd);
    else
        fp_store_reader_close(rd);
}

static int compare_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job,
                          char **ret_body, size_t *ret_len, char *err, size_t err_size)
{
    struct fp_query_params params = {0};
    struct fp_query_matchers *extra = NULL;
    struct fp_matcher base[FP_QUERY_PARAMS_MAX + 2];
    struct cohort ca = {.value = job->a}, cb = {.value = job->b};
    struct strata st = {.n = 0};
    struct members ms = {0};
    struct fp_stats_split split = {0};
    struct fp_store_reader *rd = NULL;
    struct fp_mwu mwu = {0};
    json_t *body = NULL;
    uint64_t scanned = 0;
    bool has_p = false;
    double change = NAN, med_a, med_b;
    int status, r;

    /* The matchers were checked on the request's thread; parsed again here from the raw
     * strings, which are all a queued job keeps. */
    for (size_t i = 0; i < job->n_match && i < FP_QUERY_PARAMS_MAX; i++)
        params.items[params.n++] = (struct fp_query_param){.name = "match", .value = job->match[i]};
    extra = malloc(sizeof(*extra));
    if (extra == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    if (fp_query_matchers_parse(&params, extra, err, err_size) < 0) {
        status = FP_HTTP_BAD_REQUEST;
        goto out;
    }
    if (job->strata != NULL && strata_parse(job->strata, job->by, &st, err, err_size) < 0) {
        status = FP_HTTP_BAD_REQUEST;
        goto out;
    }
    base[0] = (struct fp_matcher){.name = "__name__", .value = job->metric, .op = FP_MATCH_EQ};
    for (size_t i = 0; i < extra->n; i++)
        base[2 + i] = extra->m[i];
    r = env_reader_open(env, &rd);
    if (r == 0) {
        base[1] = (struct fp_matcher){.name = job->by, .value = job->a, .op = FP_MATCH_EQ};
        r = cohort_read(rd, base, 2 + extra->n, env->now_ms - job->window_ms, env->now_ms,
                        &scanned, env->max_scan_samples, &st, false, &ms);
    }
    if (r == 0) {
        base[1] = (struct fp_matcher){.name = job->by, .value = job->b, .op = FP_MATCH_EQ};
        r = cohort_read(rd, base, 2 + extra->n, env->now_ms - job->window_ms, env->now_ms,
                        &scanned, env->max_scan_samples, &st, true, &ms);
    }
    env_reader_close(env, &rd);
    if (r == 1) {
        fp_set_err(err, err_size,
                   "the window holds more than %" PRIu64 " samples; shorten it (window)",
                   env->max_scan_samples);
        status = FP_HTTP_UNPROCESSABLE;
        goto out;
    }
    /* Without strata every view of the split is the raw means, so one path serves both. */
    if (r == 0)
        r = fp_stats_stratify(ms.m, ms.n, st.n > 0, &split);
    if (r == 0) {
        (void)fp_stats_median(&split.raw_a); /* sorts: the quantiles shown need it */
        (void)fp_stats_median(&split.raw_b);
        ca.values = split.raw_a.v;
        ca.n = split.raw_a.n;
        cb.values = split.raw_b.v;
        cb.n = split.raw_b.n;
    }
    if (r == 0 && ca.n > 0 && cb.n > 0) {
        r = fp_stats_mann_whitney(split.cmp_a.v, split.cmp_a.n, split.cmp_b.v, split.cmp_b.n,
                                  &mwu);
        has_p = r == 0;
        if (r == -EINVAL) /* a mean overflowed to infinity: no test, still an answer */
            r = 0;
    }
    if (r != 0)
        goto fail;
    med_a = fp_stats_median(&split.eff_a);
    med_b = fp_stats_median(&split.eff_b);
    if (ca.n > 0 && cb.n > 0 && med_a != 0)
        change = (med_b - med_a) / fabs(med_a);

    body = json_object();
    r = body == NULL ? -ENOMEM : 0;
    r = r < 0 ? r : set(body, "metric", fp_jsonout_string_new(job->metric));
    r = r < 0 ? r : set(body, "by", fp_jsonout_string_new(job->by));
    if (st.n > 0)
        r = r < 0 ? r : set(body, "strata", strata_new(&st, &split));
    r = r < 0 ? r : set(body, "window", fp_jsonout_real_new((double)job->window_ms / 1000));
    r = r < 0 ? r : set(body, "time", fp_jsonout_real_new((double)env->now_ms / 1000));
    r = r < 0 ? r : set(body, "a", cohort_new(&ca));
    r = r < 0 ? r : set(body, "b", cohort_new(&cb));
    r = r < 0 ? r : set(body, "change", real_or_null(!isnan(change), change));
    r = r < 0 ? r : set(body, "u", real_or_null(has_p, mwu.u_b));
    r = r < 0 ? r : set(body, "z", real_or_null(has_p, mwu.z));
    r = r < 0 ? r : set(body, "p", real_or_null(has_p, mwu.p));
    r = r < 0 ? r
              : set(body, "summary",
                    verdict_new(&ca, &cb, change, has_p, mwu.p, st.n > 0 ? job->strata : NULL));
    r = r < 0 ? r : json_bytes(body, ret_body, ret_len);
    if (r != 0)
        goto fail;
    status = FP_HTTP_OK;
    goto out;

fail:
    status = FP_HTTP_INTERNAL_ERROR;
    if (r == -ENOMEM)
        fp_set_err(err, err_size, "out of memory");
    else
        fp_set_err(err, err_size, "store: %s", fp_store_strerror(r));
out:
    env_reader_close(env, &rd);
    json_decref(body);
    members_fini(&ms);
    fp_stats_split_fini(&split);
    free(extra);
    return status;
}

int fp_api_compare(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    struct fp_query_matchers *extra = NULL;
    struct fp_fleet_job job = {.kind = FP_FLEET_JOB_COMPARE};
    struct strata st;
    const char *match;
    size_t pos = 0, key_len = 0;
    char *key = NULL;
    FILE *kf;
    int status = FP_HTTP_BAD_REQUEST;

    (void)arg;
    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (fp_query_params_check(&params, compare_params, err, err_size) < 0)
        goto out;
    job.metric = fp_query_params_get(&params, "metric");
    job.by = fp_query_params_get(&params, "by");
    job.a = fp_query_params_get(&params, "a");
    job.b = fp_query_params_get(&params, "b");
    if (job.metric == NULL || job.by == NULL || job.a == NULL || job.b == NULL) {
        fp_set_err(err, err_size, "missing parameter \"%s\" (compare needs metric, by, a and b)",
                   job.metric == NULL ? "metric"
                   : job.by == NULL   ? "by"
                   : job.a == NULL    ? "a"
                                      : "b");
        goto out;
    }
    if (!fp_query_metric_name_valid(job.metric)) {
        fp_set_err(err, err_size, "parameter \"metric\": \"%.64s\" is not a valid metric name",
                   job.metric);
        goto out;
    }
    if (!fp_query_label_name_valid(job.by) || strcmp(job.by, "__name__") == 0) {
        fp_set_err(err, err_size, "parameter \"by\": \"%.64s\" is not a label name", job.by);
        goto out;
    }
    if (job.a[0] == '\0' || job.b[0] == '\0' || strlen(job.a) > FP_QUERY_VALUE_MAX ||
        strlen(job.b) > FP_QUERY_VALUE_MAX) {
        fp_set_err(err, err_size, "parameters \"a\" and \"b\": must be 1 to %d bytes",
                   FP_QUERY_VALUE_MAX);
        goto out;
    }
    if (strcmp(job.a, job.b) == 0) {
        fp_set_err(err, err_size, "parameters \"a\" and \"b\" name the same cohort");
        goto out;
    }
    if (parse_window(&params, WINDOW_DEFAULT_MS, &job.window_ms, err, err_size) < 0)
        goto out;
    job.strata = fp_query_params_get(&params, "strata");
    if (job.strata != NULL && strata_parse(job.strata, job.by, &st, err, err_size) < 0)
        goto out;
    /* Checked here, so a bad matcher is a 400 before anything is computed or queued. */
    extra = malloc(sizeof(*extra));
    if (extra == NULL) {
        status = FP_HTTP_INTERNAL_ERROR;
        fp_set_err(err, err_size, "out of memory");
        goto out;
    }
    if (fp_query_matchers_parse(&params, extra, err, err_size) < 0)
        goto out;
    while ((match = fp_query_params_next(&params, "match", &pos)) != NULL &&
           job.n_match < FP_FLEET_JOB_MATCH_MAX)
        job.match[job.n_match++] = match;

    /* The cache key: every parameter, length-prefixed so no value can forge another's. */
    kf = open_memstream(&key, &key_len);
    if (kf != NULL) {
        fprintf(kf, "compare %zu:%s %zu:%s %zu:%s %zu:%s %" PRId64, strlen(job.metric),
                job.metric, strlen(job.by), job.by, strlen(job.a), job.a, strlen(job.b), job.b,
                job.window_ms);
        for (size_t i = 0; i < job.n_match; i++)
            fprintf(kf, " %zu:%s", strlen(job.match[i]), job.match[i]);
        if (job.strata != NULL)
            fprintf(kf, " strata %zu:%s", strlen(job.strata), job.strata);
    }
    if (kf == NULL || (ferror(kf) | fclose(kf)) != 0) {
        status = FP_HTTP_INTERNAL_ERROR;
        fp_set_err(err, err_size, "out of memory");
        goto out;
    }
    status = fp_fleet_serve(srv, key, &job, out, err, err_size);
out:
    free(extra);
    free(key);
    fp_query_params_fini(&params);
    return status;
}

/* --- /api/v1/devices?sort=: latest values ----------------------------------------------------- */

/* One series' latest value while the answer is assembled. */
struct sort_entry {
    const char *device; /**< borrowed from the reader */
    double value;
};

static int cmp_sort_entry(const void *a, const void *b)
{
    const struct sort_entry *x = a, *y = b;
    int c = strcmp(x->device, y->device);

    if (c != 0)
        return c;
    return x->value < y->value ? -1 : x->value > y->value;
}

static int sort_values_render(const struct fp_fleet_env *env, const struct fp_fleet_job *job,
                              char **ret_body, size_t *ret_len, char *err, size_t err_size)
{
    struct fp_matcher m = {.name = "__name__", .value = job->metric, .op = FP_MATCH_EQ};
    struct fp_store_reader *rd = NULL;
    struct fp_series_desc desc;
    struct sort_entry *entries = NULL;
    uint64_t *ids = NULL;
    size_t n_ids = 0, n = 0, len = 0;
    char *text = NULL;
    FILE *fp = NULL;
    int r;

    r = env_reader_open(env, &rd);
    if (r == 0)
        r = fp_store_select(rd, &m, 1, &ids, &n_ids);
    if (r == 0 && n_ids > 0 && (entries = malloc(n_ids * sizeof(*entries))) == NULL)
        r = -ENOMEM;
    for (size_t i = 0; i < n_ids && r == 0; i++) {
        const char *device;
        int64_t ts;
        double v;

        r = fp_store_series_get(rd, ids[i], &desc);
        if (r != 0)
            break;
        device = desc_label(&desc, "device");
        if (device == NULL || device[0] == '@')
            continue;
        r = fp_store_latest(rd, ids[i], &ts, &v);
        if (r == FP_STORE_E_NOTFOUND || (r == 0 && isnan(v))) { /* NaN marks staleness */
            r = 0;
            continue;
        }
        if (r == 0)
            entries[n++] = (struct sort_entry){device, v};
    }
    /* By device, then value: a device's largest value ends its run. Written before the reader
     * closes: the device strings point into it. */
    if (r == 0 && n > 1)
        qsort(entries, n, sizeof(*entries), cmp_sort_entry);
    fp = r == 0 ? open_memstream(&text, &len) : NULL;
    if (r == 0 && fp == NULL)
        r = -ENOMEM;
    for (size_t i = 0; i < n && r == 0; i++) {
        if (i + 1 < n && strcmp(entries[i].device, entries[i + 1].device) == 0)
            continue;
        (void)fwrite(entries[i].device, 1, strlen(entries[i].device) + 1, fp);
        (void)fwrite(&entries[i].value, sizeof(entries[i].value), 1, fp);
    }
    if (fp != NULL && (ferror(fp) | fclose(fp)) != 0 && r == 0)
        r = -ENOMEM;
    env_reader_close(env, &rd);
    free(entries);
    free(ids);
    if (r != 0) {
        free(text);
        if (r == -ENOMEM)
            fp_set_err(err, err_size, "out of memory");
        else
            fp_set_err(err, err_size, "store: %s", fp_store_strerror(r));
        return FP_HTTP_INTERNAL_ERROR;
    }
    *ret_body = text;
    *ret_len = len;
    return FP_HTTP_OK;
}

/* --- /metrics: fleet part --------------------------------------------------------------------- */

/* Appends a label value escaped as the text format wants it (\\, \", \n). */
static void prom_escape(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* One sample line: name{model=..,model_version=..,site=..[,extra]} value. */
static void prom_line(FILE *f, const char *name, const struct fleet_dev *d, const char *extra,
                      double v)
{
    char num[FP_JSONOUT_DOUBLE_MAX];

    fprintf(f, "%s{model=\"", name);
    prom_escape(f, d->labels[L_MODEL]);
    fputs("\",model_version=\"", f);
    prom_escape(f, d->labels[L_MODEL_VERSION]);
    fputs("\",site=\"", f);
    prom_escape(f, d->labels[L_SITE]);
    fprintf(f, "\"%s%s} ", extra != NULL ? "," : "", extra != NULL ? extra : "");
    (void)fp_jsonout_format_double(num, sizeof(num), v);
    fprintf(f, "%s\n", strcmp(num, "null") == 0 ? "NaN" : num);
}

/* The families, in output order; each lists every group before the next family starts, as the
 * text format requires. */
enum family {
    F_DEVICES,
    F_TPS,
    F_TTFT,
    F_ERRORS,
    F_FALLBACKS,
    F_PRESSURE,
    F_TEMP,
    N_FAMILIES,
};

static const struct {
    const char *name;
    const char *help;
} families[N_FAMILIES] = {
    [F_DEVICES] = {"fleetpulse_fleet_devices", "Devices by state."},
    [F_TPS] = {"fleetpulse_fleet_tokens_per_second",
               "Generation tokens per second over the last 5 minutes, pooled quantiles."},
    [F_TTFT] = {"fleetpulse_fleet_time_to_first_token_seconds",
                "Time to first token over the last 5 minutes, pooled quantiles."},
    [F_ERRORS] = {"fleetpulse_fleet_request_error_ratio",
                  "Failed requests over all requests in the last 5 minutes."},
    [F_FALLBACKS] = {"fleetpulse_fleet_request_fallback_ratio",
                     "Requests that fell back to a cloud API over all requests in the last 5 "
                     "minutes."},
    [F_PRESSURE] = {"fleetpulse_fleet_memory_pressure_some_avg10_max",
                    "Worst memory pressure (PSI some avg10, percent) in the last 5 minutes."},
    [F_TEMP] = {"fleetpulse_fleet_temperature_celsius_max",
                "Highest temperature in the last 5 minutes."},
};

static void family_lines(FILE *fp, enum family fam, const struct fleet_dev *d,
                         const struct group_stats *g)
{
    const char *name = families[fam].name;
    bool rates = g->has_requests && g->requests > 0;

    switch (fam) {
    case F_DEVICES:
        for (int s = 0; s < FP_STATE_COUNT; s++) {
            char extra[32];
            (void)snprintf(extra, sizeof(extra), "state=\"%s\"",
                           fp_state_name((enum fp_device_state)s));
            prom_line(fp, name, d, extra, (double)g->states[s]);
        }
        break;
    case F_TPS:
        if (g->has_tps) {
            prom_line(fp, name, d, "quantile=\"0.5\"", g->tps_p50);
            prom_line(fp, name, d, "quantile=\"0.95\"", g->tps_p95);
        }
        break;
    case F_TTFT:
        if (g->has_ttft) {
            prom_line(fp, name, d, "quantile=\"0.5\"", g->ttft_p50);
            prom_line(fp, name, d, "quantile=\"0.95\"", g->ttft_p95);
            prom_line(fp, name, d, "quantile=\"0.99\"", g->ttft_p99);
        }
        break;
    case F_ERRORS:
        if (rates)
            prom_line(fp, name, d, NULL, g->errors / g->requests);
        break;
    case F_FALLBACKS:
        if (rates)
            prom_line(fp, name, d, NULL, g->fallbacks / g->requests);
        break;
    case F_PRESSURE:
        if (g->has_pressure)
            prom_line(fp, name, d, NULL, g->pressure_max);
        break;
    case F_TEMP:
        if (g->has_temp)
            prom_line(fp, name, d, NULL, g->temp_max);
        break;
    case N_FAMILIES:
        break;
    }
}

/* The fleet's families in Prometheus text, grouped by model, model_version and site. Returns 0
 * or -ENOMEM. */
static int metrics_text(const struct fleet *f, char **ret, size_t *ret_len)
{
    static const int by[] = {L_MODEL, L_MODEL_VERSION, L_SITE};
    struct group_stats *groups = NULL;
    size_t *idx = NULL, *first = NULL, n_groups = 0;
    char *text = NULL;
    size_t len = 0;
    FILE *fp = NULL;
    int r = 0;

    idx = order_by(f, by, 3);
    groups = malloc((f->n ? f->n : 1) * sizeof(*groups));
    first = malloc((f->n ? f->n : 1) * sizeof(*first));
    if (idx == NULL || groups == NULL || first == NULL)
        r = -ENOMEM;
    for (size_t i = 0, run; i < f->n && r == 0; i += run) {
        for (run = 1; i + run < f->n && same_group(f, by, 3, idx[i], idx[i + run]); run++)
            ;
        first[n_groups] = idx[i];
        r = group_compute(f, idx + i, run, &groups[n_groups++]);
    }
    fp = r == 0 ? open_memstream(&text, &len) : NULL;
    if (fp == NULL)
        r = -ENOMEM;
    for (int fam = 0; fam < N_FAMILIES && r == 0; fam++) {
        fprintf(fp, "# HELP %s %s\n# TYPE %s gauge\n", families[fam].name, families[fam].help,
                families[fam].name);
        for (size_t g = 0; g < n_groups; g++)
            family_lines(fp, (enum family)fam, &f->devs[first[g]], &groups[g]);
    }
    if (fp != NULL && (ferror(fp) | fclose(fp)) != 0)
        r = -ENOMEM;
    free(idx);
    free(groups);
    free(first);
    if (r < 0) {
        free(text);
        return r;
    }
    *ret = text;
    *ret_len = len;
    return 0;
}

int fp_fleet_metrics(struct fp_query_server *srv, struct evbuffer *out, char *err, size_t err_size)
{
    static const struct fp_fleet_job job = {.kind = FP_FLEET_JOB_METRICS};

    return fp_fleet_serve(srv, "metrics fleet", &job, out, err, err_size);
}
