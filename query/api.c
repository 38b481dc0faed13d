/* The /healthz and /api/v1 endpoints: parameters in, one store snapshot, JSON out.
 *
 * Each handler opens a reader, copies what it needs out of the snapshot (strings into Jansson
 * trees, points into plain arrays), closes the reader, and only then formats the response: LMDB
 * values point into the map and die with the transaction, and a reader held across a slow
 * client would stop the collector's file from reusing pages.
 *
 * Aggregated series (step, agg, by) are computed by storage/aggregate, whose result owns its
 * strings, so the same rule holds: the reader closes before the first byte is formatted.
 *
 * Output order is fixed so that responses are stable and diffable: devices by id, raw series by
 * metric name then label set (a request without "metric" may return several metrics whose label
 * sets coincide: memory and probe_up of one device both have just {device}), aggregated groups
 * by their group-by values, metric keys by name, label names and values sorted.
 *
 * "metric" in a series object says what the points are of. A raw series carries its own metric
 * name, from the store. An aggregated group pools series, so it names a metric only when one is
 * certain: the request's "metric", or else the group's "__name__" when "by" holds it; otherwise
 * (no metric, no __name__ in by) the group may mix metrics and the key is left out rather than
 * guessed. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "aggregate.h"
#include "error.h"
#include "parse.h"
#include "clock.h"
#include "config.h"
#include "jsonout.h"
#include "params.h"
#include "query-internal.h"
#include "refresh.h"
#include "state.h"
#include "store.h"

/* A 500 for a store call or allocation that failed with r. */
static int internal_error(int r, char *err, size_t err_size)
{
    if (r == -ENOMEM)
        fp_set_err(err, err_size, "out of memory");
    else
        fp_set_err(err, err_size, "store: %s", fp_store_strerror(r));
    return FP_HTTP_INTERNAL_ERROR;
}

/* Stores v under a key taken from stored data (a device's info name, a label): such keys may be
 * any bytes, and json_object_set_new refuses keys that are not UTF-8. Takes v, even on failure.
 * Returns 0 or -ENOMEM. */
static int set_data_key(json_t *obj, const char *raw_key, json_t *v)
{
    json_t *key = fp_jsonout_string_new(raw_key);
    int r = -ENOMEM;

    if (key != NULL && v != NULL)
        r = json_object_set_new(obj, json_string_value(key), v) == 0 ? 0 : -ENOMEM;
    else
        json_decref(v);
    json_decref(key);
    return r;
}

/* json_object_set_new for our own constant keys. Takes v, even on failure (Jansson does). */
static int set(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

/* For endpoints that take no parameters: any parameter is a 400 naming it. Returns 0, or -1
 * with the reason in err. */
static int check_no_params(const char *query, char *err, size_t err_size)
{
    struct fp_query_params params;
    int r;

    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return -1;
    r = fp_query_params_check(&params, NULL, err, err_size);
    fp_query_params_fini(&params);
    return r < 0 ? -1 : 0;
}

/* --- /healthz --------------------------------------------------------------------------------- */

int fp_api_healthz(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size)
{
    json_t *body = NULL;
    int status, r;

    if (check_no_params(query, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;

    body = json_object();
    r = body == NULL ? -ENOMEM : 0;
    r = r < 0 ? r : set(body, "status", json_string("ok"));
    r = r < 0 ? r : set(body, "version", json_string(FP_VERSION));
    r = r < 0 ? r : fp_jsonout_value(out, body);
    status = r < 0 ? internal_error(r, err, err_size) : FP_HTTP_OK;
    json_decref(body);
    return status;
}

/* --- /api/v1/devices -------------------------------------------------------------------------- */

/* One device of the response, copied out of the snapshot. */
struct device_row {
    char *id;    /**< the device id, our copy */
    json_t *obj; /**< its response object; "series" and "metrics" are added in a second pass */
};

struct device_list {
    struct device_row *rows;
    size_t n;
    size_t cap;
};

/* One series of a device while its "metrics" map is assembled. */
struct metric_row {
    const char *metric; /**< borrowed from the reader */
    uint64_t id;
    double value; /**< latest value */
    bool has_value;
};

/* One finished "metrics" entry. */
struct metric_entry {
    char *key; /**< bare metric name, or metric{labels} when the metric has several series */
    double value;
};

static void device_list_fini(struct device_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->rows[i].id);
        json_decref(l->rows[i].obj);
    }
    free(l->rows);
    memset(l, 0, sizeof(*l));
}

static json_t *ms_to_seconds(int64_t ms)
{
    /* ms / 1000.0 is the double nearest the decimal seconds, and fp_jsonout prints it back as that
     * decimal (see jsonout.c), so "last_seen" shows exactly the stored millisecond. */
    return json_real((double)ms / 1000.0);
}

/* A duration in milliseconds as JSON seconds; null for 0 (unknown). */
static json_t *ms_or_null(int64_t ms)
{
    return ms != 0 ? ms_to_seconds(ms) : json_null();
}

/* Copies one device into the list. srv non-NULL adds what only fleet devices have: "state" at
 * now_ms and the timing fields. */
static int collect_device(struct device_list *l, const struct fp_device_desc *d,
                          struct fp_query_server *srv, int64_t now_ms)
{
    struct device_row row = {0};
    json_t *info = NULL;
    int r = 0;

    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct device_row *rows = realloc(l->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return -ENOMEM;
        l->rows = rows;
        l->cap = cap;
    }

    row.id = strdup(d->device);
    row.obj = json_object();
    info = json_object();
    if (row.id == NULL || row.obj == NULL || info == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < d->n_info && r == 0; i++)
        r = set_data_key(info, d->info[i].name, fp_jsonout_string_new(d->info[i].value));
    r = r < 0 ? r : set(row.obj, "device", fp_jsonout_string_new(d->device));
    if (srv != NULL) {
        enum fp_device_state st =
            fp_state_of(now_ms, d->last_seen_ms, d->interval_ms, srv->silent_after_ms,
                        fp_query_device_firing(srv, d->device));
        r = r < 0 ? r : set(row.obj, "state", json_string(fp_state_name(st)));
    }
    r = r < 0 ? r : set(row.obj, "first_seen", ms_to_seconds(d->first_seen_ms));
    r = r < 0 ? r : set(row.obj, "last_seen", ms_to_seconds(d->last_seen_ms));
    if (srv != NULL) {
        /* The device clock's newest sample, the interval its samples show (null until known)
         * and how far behind the collector its last batch arrived. */
        r = r < 0 ? r : set(row.obj, "last_sample", ms_or_null(d->last_sample_ms));
        r = r < 0 ? r : set(row.obj, "interval", ms_or_null(d->interval_ms));
        r = r < 0 ? r : set(row.obj, "ingest_lag", ms_to_seconds(d->ingest_lag_ms));
    }
    if (r < 0)
        goto fail;
    r = set(row.obj, "info", info);
    info = NULL; /* taken by set, even when it failed */
    r = r < 0 ? r : set(row.obj, "batches", json_integer((json_int_t)d->batches));
    r = r < 0 ? r : set(row.obj, "samples", json_integer((json_int_t)d->samples));
    /* Delivery bookkeeping: what the probe says it lost, batches it sent twice, where its
     * sequence stands. The epoch is a random 64-bit id: a string, since JSON readers keep only
     * 53 bits of a number. */
    r = r < 0 ? r : set(row.obj, "duplicates", json_integer((json_int_t)d->duplicates));
    r = r < 0 ? r : set(row.obj, "dropped_samples", json_integer((json_int_t)d->dropped_samples_total));
    r = r < 0 ? r : set(row.obj, "last_seq", json_integer((json_int_t)d->last_seq));
    if (r == 0) {
        char epoch[24];
        (void)snprintf(epoch, sizeof(epoch), "%" PRIu64, d->last_epoch);
        r = set(row.obj, "epoch", json_string(epoch));
    }
    if (r < 0)
        goto fail;

    l->rows[l->n++] = row;
    return 0;

fail:
    json_decref(info);
    json_decref(row.obj);
    free(row.id);
    return r;
}

static int cmp_metric_row(const void *a, const void *b)
{
    const struct metric_row *x = a, *y = b;
    int c = strcmp(x->metric, y->metric);

    if (c != 0)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_metric_entry(const void *a, const void *b)
{
    return strcmp(((const struct metric_entry *)a)->key, ((const struct metric_entry *)b)->key);
}

/* The Prometheus text form of a series without its device label and the identity labels the
 * store stamped from dev's DeviceInfo (they are the same on all its series):
 * temperature_celsius{source="thermal",zone="thermal_zone0"}. Label values escape '\', '"' and
 * newline as the exposition format does. Returns a new string (free()), or NULL. */
static char *prom_key(const struct fp_series_desc *d, const struct fp_device_desc *dev)
{
    char *buf = NULL;
    size_t len = 0;
    bool first = true;
    FILE *f;

    f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fputs(d->metric, f);
    for (size_t i = 0; i < d->n_labels; i++) {
        if (strcmp(d->labels[i].name, "device") == 0 ||
            (dev != NULL && fp_store_is_identity_label(dev, d->labels[i].name, d->labels[i].value)))
            continue;
        fputc(first ? '{' : ',', f);
        first = false;
        fprintf(f, "%s=\"", d->labels[i].name);
        for (const char *p = d->labels[i].value; *p != '\0'; p++) {
            if (*p == '\\' || *p == '"')
                fputc('\\', f);
            if (*p == '\n')
                fputs("\\n", f);
            else
                fputc(*p, f);
        }
        fputc('"', f);
    }
    if (!first)
        fputc('}', f);
    if (ferror(f)) {
        (void)fclose(f);
        free(buf);
        return NULL;
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Adds "series" (count) and "metrics" (latest value per series) to one device's object; dev is
 * the device as rd shows it (borrowed). Returns 0 or a store code / -errno. */
static int add_device_series(struct fp_store_reader *rd, struct device_row *row,
                             const struct fp_device_desc *dev)
{
    struct fp_matcher m = {.name = "device", .value = row->id, .op = FP_MATCH_EQ};
    struct fp_series_desc desc;
    struct metric_row *series = NULL;
    struct metric_entry *entries = NULL;
    size_t n_ids = 0, n_entries = 0;
    uint64_t *ids = NULL;
    json_t *metrics = NULL;
    int r;

    r = fp_store_select(rd, &m, 1, &ids, &n_ids);
    if (r != 0)
        goto out;

    series = calloc(n_ids ? n_ids : 1, sizeof(*series));
    entries = calloc(n_ids ? n_ids : 1, sizeof(*entries));
    metrics = json_object();
    if (series == NULL || entries == NULL || metrics == NULL) {
        r = -ENOMEM;
        goto out;
    }

    for (size_t i = 0; i < n_ids; i++) {
        int64_t ts_ms;

        r = fp_store_series_get(rd, ids[i], &desc);
        if (r != 0)
            goto out;
        series[i].metric = desc.metric;
        series[i].id = ids[i];
        r = fp_store_latest(rd, ids[i], &ts_ms, &series[i].value);
        if (r != 0 && r != FP_STORE_E_NOTFOUND)
            goto out;
        series[i].has_value = r == 0; /* a series without samples has no latest value */
    }
    r = 0;

    /* Group by metric: a metric with one series on this device is keyed by its bare name, one
     * with several by metric{labels}, so a dashboard can read "memory_available_bytes" directly
     * and still tell thermal zones apart. Series without samples count for the grouping, so a
     * key does not change when an empty sibling series gets its first sample. */
    if (n_ids > 1) /* qsort on an empty (possibly NULL) array is undefined */
        qsort(series, n_ids, sizeof(*series), cmp_metric_row);
    for (size_t i = 0, run; i < n_ids; i += run) {
        for (run = 1; i + run < n_ids; run++)
            if (strcmp(series[i].metric, series[i + run].metric) != 0)
                break;
        for (size_t j = i; j < i + run; j++) {
            if (!series[j].has_value)
                continue;
            if (run == 1) {
                entries[n_entries].key = strdup(series[j].metric);
            } else {
                r = fp_store_series_get(rd, series[j].id, &desc);
                if (r != 0)
                    goto out;
                entries[n_entries].key = prom_key(&desc, dev);
            }
            if (entries[n_entries].key == NULL) {
                r = -ENOMEM;
                goto out;
            }
            entries[n_entries++].value = series[j].value;
        }
    }

    if (n_entries > 1) /* qsort on an empty (possibly NULL) array is undefined */
        qsort(entries, n_entries, sizeof(*entries), cmp_metric_entry);
    for (size_t i = 0; i < n_entries && r == 0; i++)
        r = set_data_key(metrics, entries[i].key, fp_jsonout_real_new(entries[i].value));
    r = r < 0 ? r : set(row->obj, "series", json_integer((json_int_t)n_ids));
    r = r < 0 ? r : set(row->obj, "metrics", metrics);
    metrics = NULL; /* taken by set */

out:
    json_decref(metrics);
    for (size_t i = 0; i < n_entries; i++)
        free(entries[i].key);
    free(entries);
    free(series);
    free(ids);
    return r;
}

/* How /api/v1/devices orders its answer. */
struct device_sort {
    const char *metric; /**< sort by this metric's latest value; NULL: by device id */
    bool descending;    /**< "-metric" */
};

/* A device that passed the filters, before its page is chosen. */
struct device_key {
    char *id;       /**< into device_filter.names once listed; a decoded cursor's own copy */
    size_t id_off;  /**< while listing: the id's offset in device_filter.names (it moves) */
    bool has_value; /**< sorting by a metric: whether the device has it */
    double value;   /**< the largest latest value over its series of the metric */
};

/* The filters of /api/v1/devices, applied to each device as the store lists it. */
struct device_filter {
    const struct fp_query_matchers *matchers;
    regex_t *re;            /**< compiled regex per matcher (only =~, !~ entries are set) */
    unsigned states;        /**< bit per enum fp_device_state; 0: every state */
    struct fp_query_server *srv;
    int64_t now_ms;
    struct device_key *keys; /**< the devices that passed */
    size_t n, cap;
    /* Their ids, NUL-terminated one after another: one allocation where 10,000 strdup()s and
     * free()s were a tenth of a sorted listing's time. */
    char *names;
    size_t names_len, names_cap;
};

static const char *const devices_params[] = {"match", "state", "sort", "limit", "cursor", NULL};

/* Most devices one /api/v1/devices page carries, and the default page size. */
#define DEVICES_LIMIT_MAX 1000
#define DEVICES_LIMIT_DEFAULT 100

/* The value label `name` has on device d, as its series carry it: the device id for "device",
 * identity pairs by name, "hw" for the hw_class pair; "" when it has none (as PromQL treats a
 * missing label). */
static const char *device_label(const struct fp_device_desc *d, const char *name)
{
    if (strcmp(name, "device") == 0)
        return d->device;
    for (size_t i = 0; i < d->n_info; i++)
        if (strcmp(d->info[i].name, name) == 0)
            return d->info[i].value;
    if (strcmp(name, "hw") == 0)
        return device_label(d, "hw_class");
    return "";
}

static bool device_matches(const struct device_filter *f, const struct fp_device_desc *d)
{
    for (size_t i = 0; i < f->matchers->n; i++) {
        const struct fp_matcher *m = &f->matchers->m[i];
        const char *v = device_label(d, m->name);
        bool hit;

        switch (m->op) {
        case FP_MATCH_EQ:
        case FP_MATCH_NE:
            hit = strcmp(v, m->value) == 0;
            break;
        default:
            hit = regexec(&f->re[i], v, 0, NULL, 0) == 0;
            break;
        }
        if (hit != (m->op == FP_MATCH_EQ || m->op == FP_MATCH_RE))
            return false;
    }
    return true;
}

static int filter_device(void *userdata, const struct fp_device_desc *d)
{
    struct device_filter *f = userdata;
    enum fp_device_state st;
    size_t len;

    if (d->device[0] == '@') /* fleetpulse's own components have their own endpoints */
        return 0;
    if (f->states != 0) {
        st = fp_state_of(f->now_ms, d->last_seen_ms, d->interval_ms, f->srv->silent_after_ms,
                         fp_query_device_firing(f->srv, d->device));
        if ((f->states & (1u << st)) == 0)
            return 0;
    }
    if (!device_matches(f, d))
        return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        struct device_key *k = realloc(f->keys, cap * sizeof(*k));
        if (k == NULL)
            return -ENOMEM;
        f->keys = k;
        f->cap = cap;
    }
    len = strlen(d->device) + 1;
    if (f->names_cap - f->names_len < len) {
        size_t cap = f->names_cap ? 2 * f->names_cap : 4096;
        char *names;

        while (cap - f->names_len < len)
            cap *= 2;
        names = realloc(f->names, cap);
        if (names == NULL)
            return -ENOMEM;
        f->names = names;
        f->names_cap = cap;
    }
    memcpy(f->names + f->names_len, d->device, len);
    f->keys[f->n++] = (struct device_key){.id_off = f->names_len};
    f->names_len += len;
    return 0;
}

/* The sort order: devices with a value first, by value (descending for "-metric"), then by id;
 * devices without the metric last, by id. Total, so a cursor names one position. */
static int cmp_device_key(const struct device_key *x, const struct device_key *y, bool descending)
{
    if (x->has_value != y->has_value)
        return x->has_value ? -1 : 1;
    if (x->has_value && x->value != y->value)
        return (x->value < y->value) != descending ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_device_key_asc(const void *a, const void *b)
{
    return cmp_device_key(a, b, false);
}

/* Whether keys[] is in ascending id order (the store's listing order, as a rule). */
static bool sorted_by_id(const struct device_key *keys, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (strcmp(keys[i - 1].id, keys[i].id) > 0)
            return false;
    return true;
}

/* A max-heap of key indices under the listing's order: the root is the last of the page so
 * far. */
struct page_heap {
    const struct device_key *keys;
    size_t *idx;
    size_t n;
    bool descending;
};

static bool heap_after(const struct page_heap *h, size_t i, size_t j)
{
    return cmp_device_key(&h->keys[h->idx[i]], &h->keys[h->idx[j]], h->descending) > 0;
}

static void heap_swap(struct page_heap *h, size_t i, size_t j)
{
    size_t t = h->idx[i];
    h->idx[i] = h->idx[j];
    h->idx[j] = t;
}

static void heap_down(struct page_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;

        if (l < h->n && heap_after(h, l, top))
            top = l;
        if (r < h->n && heap_after(h, r, top))
            top = r;
        if (top == i)
            return;
        heap_swap(h, i, top);
        i = top;
    }
}

static _Thread_local const struct page_heap *current_heap; /* qsort context */

static int cmp_heap_idx(const void *a, const void *b)
{
    const struct page_heap *h = current_heap;

    return cmp_device_key(&h->keys[*(const size_t *)a], &h->keys[*(const size_t *)b],
                          h->descending);
}

/* The page: the first `limit` keys after `after` (NULL: from the start) in the listing's order,
 * as indices into keys, in order (*ret new, free()). *ret_more tells whether keys beyond the page
 * follow. A bounded heap, O(n log limit): sorting all of a 10,000-device fleet for a page of 100
 * was a fifth of a sorted listing's time. Returns 0 or -ENOMEM. */
static int select_page(const struct device_key *keys, size_t n, const struct device_key *after,
                       bool descending, size_t limit, size_t **ret, size_t *ret_n, bool *ret_more)
{
    struct page_heap h = {.keys = keys, .descending = descending};
    size_t cap = limit < n ? limit : n;

    *ret_more = false;
    h.idx = malloc((cap ? cap : 1) * sizeof(*h.idx));
    if (h.idx == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (after != NULL && cmp_device_key(&keys[i], after, descending) <= 0)
            continue;
        if (h.n < cap) {
            /* Sift up. */
            size_t c = h.n++;
            h.idx[c] = i;
            while (c > 0 && heap_after(&h, c, (c - 1) / 2)) {
                heap_swap(&h, c, (c - 1) / 2);
                c = (c - 1) / 2;
            }
            continue;
        }
        *ret_more = true;
        if (cap > 0 && cmp_device_key(&keys[i], &keys[h.idx[0]], descending) < 0) {
            h.idx[0] = i;
            heap_down(&h, 0);
        }
    }
    current_heap = &h;
    if (h.n > 1)
        qsort(h.idx, h.n, sizeof(*h.idx), cmp_heap_idx);
    current_heap = NULL;
    *ret = h.idx;
    *ret_n = h.n;
    return 0;
}

/* Sets has_value/value of every key (sorted by id) from a SORT_VALUES answer (refresh.h):
 * entries "id\0" + 8 value bytes, sorted by id. Both sides sorted: one merge. */
static void apply_sort_values(const unsigned char *p, size_t len, struct device_key *keys,
                              size_t n)
{
    const unsigned char *end = p + len;
    size_t k = 0;

    while (p < end && k < n) {
        const unsigned char *nul = memchr(p, '\0', (size_t)(end - p));
        int c;

        if (nul == NULL || (size_t)(end - nul - 1) < sizeof(double))
            break; /* our own encoding; "can't happen", so stop rather than read past it */
        c = strcmp((const char *)p, keys[k].id);
        if (c == 0) {
            memcpy(&keys[k].value, nul + 1, sizeof(double));
            keys[k].has_value = true;
        }
        if (c <= 0)
            p = nul + 1 + sizeof(double);
        if (c >= 0)
            k++;
    }
}

/* Cursors are opaque to clients; inside, the hex of "1\n<sort>\n<has>\n<value bits>\n<id>", the
 * sort key of the last device of the page. The next page starts strictly after that key, so
 * devices added or removed meanwhile shift no one into a gap or a repeat (a device whose value
 * changed between pages may move across the boundary, as in any keyset pagination). */
static char *cursor_encode(const struct device_sort *sort, const struct device_key *k)
{
    char *plain = NULL, *hex;
    uint64_t bits = 0;
    int n;

    memcpy(&bits, &k->value, sizeof(bits));
    n = asprintf(&plain, "1\n%s%s\n%d\n%016" PRIx64 "\n%s", sort->descending ? "-" : "",
                 sort->metric ? sort->metric : "", k->has_value ? 1 : 0,
                 k->has_value ? bits : 0, k->id);
    if (n < 0)
        return NULL;
    hex = malloc(2 * (size_t)n + 1);
    for (int i = 0; hex != NULL && i < n; i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", (unsigned char)plain[i]);
    free(plain);
    return hex;
}

/* Reads a cursor into *ret (ret->id new, free()). Returns 0, or -EINVAL (not a cursor, or one
 * from a different sort) with err set, or -ENOMEM. */
static int cursor_decode(const char *hex, const struct device_sort *sort, struct device_key *ret,
                         char *err, size_t err_size)
{
    size_t len = strlen(hex), n = len / 2;
    char *plain, *p, *fields[5];
    char want[FP_QUERY_NAME_MAX + 2];
    unsigned long long bits;
    int r = -EINVAL;

    if (len == 0 || len % 2 != 0 || strspn(hex, "0123456789abcdef") != len)
        goto bad;
    plain = malloc(n + 1);
    if (plain == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        (void)sscanf(hex + 2 * i, "%2x", &v);
        plain[i] = (char)v;
    }
    plain[n] = '\0';
    if (strlen(plain) != n) /* an escaped NUL would cut the id short */
        goto bad_free;
    p = plain;
    for (int i = 0; i < 5; i++) {
        fields[i] = p;
        p = i < 4 ? strchr(p, '\n') : NULL;
        if (i < 4 && p == NULL)
            goto bad_free;
        if (p != NULL)
            *p++ = '\0';
    }
    (void)snprintf(want, sizeof(want), "%s%s", sort->descending ? "-" : "",
                   sort->metric ? sort->metric : "");
    if (strcmp(fields[0], "1") != 0 || strlen(fields[2]) != 1 ||
        (fields[2][0] != '0' && fields[2][0] != '1') || strlen(fields[3]) != 16 ||
        strspn(fields[3], "0123456789abcdef") != 16 || sscanf(fields[3], "%16llx", &bits) != 1 ||
        fields[4][0] == '\0')
        goto bad_free;
    if (strcmp(fields[1], want) != 0) {
        fp_set_err(err, err_size, "parameter \"cursor\": from a listing with another sort");
        free(plain);
        return -EINVAL;
    }
    ret->has_value = fields[2][0] == '1';
    {
        uint64_t b = bits;
        memcpy(&ret->value, &b, sizeof(ret->value));
    }
    ret->id = strdup(fields[4]);
    r = ret->id == NULL ? -ENOMEM : 0;
    free(plain);
    return r;

bad_free:
    free(plain);
bad:
    fp_set_err(err, err_size, "parameter \"cursor\": not a cursor from /api/v1/devices");
    return -EINVAL;
}

/* Reads state=ok,stale into a bit set. Returns 0 or -EINVAL with err set. */
static int parse_states(const char *s, unsigned *ret, char *err, size_t err_size)
{
    char buf[64];
    size_t len = strlen(s);

    *ret = 0;
    if (len >= sizeof(buf))
        goto bad;
    memcpy(buf, s, len + 1);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        enum fp_device_state st;
        if (fp_state_parse(tok, &st) < 0)
            goto bad;
        *ret |= 1u << st;
    }
    /* strtok_r skips empty tokens: "ok,,stale" and "," must not pass as valid. */
    if (*ret == 0 || s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,") != NULL)
        goto bad;
    return 0;
bad:
    fp_set_err(err, err_size,
               "parameter \"state\": \"%.64s\" is not a comma-separated list of ok, degraded, "
               "stale, silent",
               s);
    return -EINVAL;
}

int fp_api_devices(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    struct fp_query_matchers *matchers = NULL;
    struct device_filter f = {0};
    struct device_sort sort = {0};
    struct device_key after = {0};
    struct fp_store_reader *rd = NULL;
    struct device_list list = {0};
    struct fp_device_desc desc;
    size_t limit = DEVICES_LIMIT_DEFAULT, n_regex = 0, n_page = 0, *page = NULL;
    bool more = false;
    json_t *body = NULL, *arr = NULL;
    struct evbuffer *sort_values = NULL;
    char *next = NULL;
    const char *v;
    int status = FP_HTTP_BAD_REQUEST, r;

    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (fp_query_params_check(&params, devices_params, err, err_size) < 0)
        goto out;
    /* On the heap: the matcher names take ~4 KiB. */
    matchers = malloc(sizeof(*matchers));
    f.re = calloc(FP_QUERY_PARAMS_MAX, sizeof(*f.re));
    if (matchers == NULL || f.re == NULL) {
        status = internal_error(-ENOMEM, err, err_size);
        goto out;
    }
    if (fp_query_matchers_parse(&params, matchers, err, err_size) < 0)
        goto out;
    for (n_regex = 0; n_regex < matchers->n; n_regex++) {
        const struct fp_matcher *m = &matchers->m[n_regex];
        char anchored[FP_QUERY_VALUE_MAX + 8];

        if (m->op != FP_MATCH_RE && m->op != FP_MATCH_NRE)
            continue;
        (void)snprintf(anchored, sizeof(anchored), "^(%s)$", m->value);
        /* Checked by fp_query_matchers_parse, so this fails only for memory. */
        if (regcomp(&f.re[n_regex], anchored, REG_EXTENDED | REG_NOSUB) != 0) {
            status = internal_error(-ENOMEM, err, err_size);
            goto out;
        }
    }
    f.matchers = matchers;
    if ((v = fp_query_params_get(&params, "state")) != NULL &&
        parse_states(v, &f.states, err, err_size) < 0)
        goto out;
    if ((v = fp_query_params_get(&params, "sort")) != NULL) {
        sort.descending = v[0] == '-';
        sort.metric = sort.descending ? v + 1 : v;
        if (!fp_query_metric_name_valid(sort.metric)) {
            fp_set_err(err, err_size,
                       "parameter \"sort\": \"%.64s\" is not a metric name (or -metric)", v);
            goto out;
        }
    }
    if ((v = fp_query_params_get(&params, "limit")) != NULL) {
        uint64_t n;
        if (strspn(v, "0123456789") != strlen(v) || fp_parse_u64(v, &n) < 0 || n < 1 ||
            n > DEVICES_LIMIT_MAX) {
            fp_set_err(err, err_size, "parameter \"limit\": not a count from 1 to %d",
                       DEVICES_LIMIT_MAX);
            goto out;
        }
        limit = (size_t)n;
    }
    if ((v = fp_query_params_get(&params, "cursor")) != NULL) {
        r = cursor_decode(v, &sort, &after, err, err_size);
        if (r == -ENOMEM)
            status = internal_error(r, err, err_size);
        if (r < 0)
            goto out;
    }

    /* The latest values to sort by come from the fleet cache (refreshed in the background as the
     * summary is): reading every device's latest sample is most of a sorted listing's cost. */
    if (sort.metric != NULL) {
        const struct fp_fleet_job job = {.kind = FP_FLEET_JOB_SORT_VALUES, .metric = sort.metric};
        char key[FP_QUERY_NAME_MAX + 32];

        sort_values = evbuffer_new();
        if (sort_values == NULL) {
            status = internal_error(-ENOMEM, err, err_size);
            goto out;
        }
        (void)snprintf(key, sizeof(key), "sort values %s", sort.metric);
        status = fp_fleet_serve(srv, key, &job, sort_values, err, err_size);
        if (status != FP_HTTP_OK)
            goto out;
        status = FP_HTTP_BAD_REQUEST;
    }

    f.srv = srv;
    f.now_ms = srv->now_ms();
    r = fp_query_reader_open(srv, &rd);
    if (r != 0)
        goto fail;
    /* Devices first, then their series: nesting store iterations inside a callback would
     * depend on how store.c walks its cursors. */
    r = fp_store_devices(rd, filter_device, &f);
    if (r != 0)
        goto fail;
    for (size_t i = 0; i < f.n; i++)
        f.keys[i].id = f.names + f.keys[i].id_off;
    /* The store lists devices in byte order of their ids, which strcmp agrees with; checked
     * anyway so the documented order does not depend on the store's key layout. */
    if (f.n > 1 && !sorted_by_id(f.keys, f.n))
        qsort(f.keys, f.n, sizeof(*f.keys), cmp_device_key_asc);
    if (sort.metric != NULL) {
        size_t len = evbuffer_get_length(sort_values);
        const unsigned char *bytes = evbuffer_pullup(sort_values, -1);

        if (bytes == NULL && len > 0) {
            r = -ENOMEM;
            goto fail;
        }
        apply_sort_values(bytes, len, f.keys, f.n);
    }
    r = select_page(f.keys, f.n, after.id != NULL ? &after : NULL, sort.descending, limit, &page,
                    &n_page, &more);
    if (r != 0)
        goto fail;

    for (size_t i = 0; i < n_page; i++) {
        r = fp_store_device_get(rd, f.keys[page[i]].id, &desc);
        if (r == 0)
            r = collect_device(&list, &desc, srv, f.now_ms);
        if (r == 0)
            r = add_device_series(rd, &list.rows[list.n - 1], &desc);
        if (r != 0)
            goto fail;
    }
    fp_query_reader_close(srv, &rd);
    if (more) {
        next = cursor_encode(&sort, &f.keys[page[n_page - 1]]);
        if (next == NULL) {
            r = -ENOMEM;
            goto fail;
        }
    }

    body = json_object();
    arr = json_array();
    r = body == NULL || arr == NULL ? -ENOMEM : 0;
    for (size_t i = 0; i < list.n && r == 0; i++) {
        r = json_array_append_new(arr, list.rows[i].obj) == 0 ? 0 : -ENOMEM;
        list.rows[i].obj = NULL; /* taken by the array */
    }
    r = r < 0 ? r : set(body, "devices", json_incref(arr));
    r = r < 0 ? r : set(body, "total", json_integer((json_int_t)f.n));
    r = r < 0 ? r : set(body, "next_cursor", next != NULL ? json_string(next) : json_null());
    r = r < 0 ? r : fp_jsonout_value(out, body);
    if (r != 0)
        goto fail;
    status = FP_HTTP_OK;
    goto out;

fail:
    status = internal_error(r, err, err_size);
out:
    fp_query_reader_close(srv, &rd);
    json_decref(arr);
    json_decref(body);
    device_list_fini(&list);
    free(f.names);
    free(f.keys);
    free(page);
    for (size_t i = 0; f.re != NULL && matchers != NULL && i < n_regex && i < matchers->n; i++)
        if (matchers->m[i].op == FP_MATCH_RE || matchers->m[i].op == FP_MATCH_NRE)
            regfree(&f.re[i]);
    free(f.re);
    free(matchers);
    free(after.id);
    free(next);
    if (sort_values != NULL)
        evbuffer_free(sort_values);
    fp_query_params_fini(&params);
    return status;
}

int fp_api_collector(struct fp_query_server *srv, const char *arg, const char *query,
                     struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_store_reader *rd = NULL;
    struct device_list list = {0};
    struct fp_device_desc d;
    json_t *body = NULL;
    int status, r;

    if (check_no_params(query, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    r = fp_query_reader_open(srv, &rd);
    if (r == 0)
        r = fp_store_device_get(rd, "@collector", &d);
    if (r == FP_STORE_E_NOTFOUND) {
        fp_set_err(err, err_size, "the collector has not stored its own series yet");
        status = FP_HTTP_NOT_FOUND;
        goto out;
    }
    if (r == 0)
        r = collect_device(&list, &d, NULL, 0);
    if (r == 0)
        r = add_device_series(rd, &list.rows[0], &d);
    fp_query_reader_close(srv, &rd);
    if (r != 0) {
        status = internal_error(r, err, err_size);
        goto out;
    }
    body = json_object();
    if (body == NULL) {
        r = -ENOMEM;
    } else {
        r = set(body, "collector", list.rows[0].obj);
        list.rows[0].obj = NULL; /* taken by set, even when it fails */
    }
    r = r < 0 ? r : fp_jsonout_value(out, body);
    status = r < 0 ? internal_error(r, err, err_size) : FP_HTTP_OK;
out:
    fp_query_reader_close(srv, &rd);
    json_decref(body);
    device_list_fini(&list);
    return status;
}

/* --- /api/v1/series --------------------------------------------------------------------------- */

/* One series of the response. Its points are points.ts/v[first .. first + n). */
struct series_row {
    json_t *metric; /**< the series' own metric name (a JSON string) */
    json_t *labels; /**< every label, device included, in the store's order (by name) */
    char *sort_key; /**< "metric\0name\0value\0name\0value\0...": byte order = response order */
    size_t sort_len;
    size_t first;
    size_t n;
};

/* Every point of the response, all series back to back. Bounded by max. */
struct point_buf {
    int64_t *ts;
    double *v;
    size_t n;
    size_t cap;
    size_t max;    /**< the response limit */
    bool too_many; /**< stopped because one more point would pass max */
    bool oom;
};

static int add_point(void *userdata, int64_t ts_ms, double value)
{
    struct point_buf *p = userdata;

    if (p->n == p->max) {
        p->too_many = true;
        return 1;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        int64_t *ts;
        double *v;

        if (cap > p->max)
            cap = p->max;
        ts = realloc(p->ts, cap * sizeof(*ts));
        if (ts != NULL)
            p->ts = ts;
        v = realloc(p->v, cap * sizeof(*v));
        if (v != NULL)
            p->v = v;
        if (ts == NULL || v == NULL) {
            p->oom = true;
            return 1;
        }
        p->cap = cap;
    }
    p->ts[p->n] = ts_ms;
    p->v[p->n] = value;
    p->n++;
    return 0;
}

static int cmp_series_row(const void *a, const void *b)
{
    const struct series_row *x = a, *y = b;
    size_t n = x->sort_len < y->sort_len ? x->sort_len : y->sort_len;
    int c = memcmp(x->sort_key, y->sort_key, n);

    if (c != 0)
        return c;
    return x->sort_len < y->sort_len ? -1 : x->sort_len > y->sort_len;
}

/* Copies a series' metric name and labels out of the snapshot into row. Returns 0 or -ENOMEM. */
static int series_row_init(struct series_row *row, const struct fp_series_desc *d)
{
    size_t len = strlen(d->metric) + 1;
    char *k;
    int r = 0;

    row->metric = fp_jsonout_string_new(d->metric);
    row->labels = json_object();
    if (row->metric == NULL || row->labels == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < d->n_labels && r == 0; i++) {
        len += strlen(d->labels[i].name) + strlen(d->labels[i].value) + 2;
        r = set_data_key(row->labels, d->labels[i].name, fp_jsonout_string_new(d->labels[i].value));
    }
    if (r < 0)
        return r;

    row->sort_key = k = malloc(len);
    if (k == NULL)
        return -ENOMEM;
    row->sort_len = len;
    /* Each string ends in its NUL, which sorts below every other byte, so "a" < "ab" holds
     * string by string: the metric first, then the labels pair by pair. */
    memcpy(k, d->metric, strlen(d->metric) + 1);
    k += strlen(d->metric) + 1;
    for (size_t i = 0; i < d->n_labels; i++) {
        size_t ln = strlen(d->labels[i].name) + 1, lv = strlen(d->labels[i].value) + 1;
        memcpy(k, d->labels[i].name, ln);
        memcpy(k + ln, d->labels[i].value, lv);
        k += ln + lv;
    }
    return 0;
}

/* Writes a series' points, comma-separated, gathered into pieces of sizeof(buf) bytes: one
 * evbuffer_add per token (brackets, commas, numbers) cost as much as formatting them. */
struct point_writer {
    struct evbuffer *out;
    size_t len;  /**< bytes in buf */
    size_t n;    /**< points of the current series so far */
    bool failed; /**< an evbuffer_add failed: out of memory */
    char buf[16384];
};

static void point_writer_flush(struct point_writer *w)
{
    if (w->len > 0 && evbuffer_add(w->out, w->buf, w->len) != 0)
        w->failed = true;
    w->len = 0;
}

static void point_writer_add(struct point_writer *w, int64_t ts_ms, double value)
{
    if (w->len + FP_JSONOUT_POINT_MAX + 1 > sizeof(w->buf))
        point_writer_flush(w);
    if (w->n++ > 0)
        w->buf[w->len++] = ',';
    w->len += fp_jsonout_format_point(w->buf + w->len, ts_ms, value);
}

/* Ends a series' points: flushes them. Returns 0 or -ENOMEM. */
static int point_writer_end(struct point_writer *w)
{
    point_writer_flush(w);
    w->n = 0;
    return w->failed ? -ENOMEM : 0;
}

static int write_series(struct evbuffer *out, const struct series_row *rows, size_t n_rows,
                        const struct point_buf *pts, struct point_writer *pw)
{
    int r = evbuffer_add_printf(out, "{\"series\":[") < 0 ? -ENOMEM : 0;

    for (size_t i = 0; i < n_rows && r == 0; i++) {
        const struct series_row *s = &rows[i];

        r |= evbuffer_add_printf(out, "%s{\"labels\":", i ? "," : "") < 0;
        r |= fp_jsonout_value(out, s->labels);
        r |= evbuffer_add_printf(out, ",\"metric\":") < 0;
        r |= fp_jsonout_value(out, s->metric);
        r |= evbuffer_add_printf(out, ",\"points\":[") < 0;
        for (size_t j = s->first; j < s->first + s->n; j++)
            point_writer_add(pw, pts->ts[j], pts->v[j]);
        r |= point_writer_end(pw);
        r |= evbuffer_add(out, "]}", 2);
    }
    r |= evbuffer_add(out, "]}", 2);
    return r == 0 ? 0 : -ENOMEM;
}

/* The points of every series matching q, raw. Returns an HTTP status. */
static int series_raw(struct fp_query_server *srv, const struct fp_series_query *q,
                      struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_store_reader *rd = NULL;
    struct fp_series_desc desc;
    struct point_buf pts = {.max = srv->max_points};
    struct series_row *rows = NULL;
    struct point_writer *pw = NULL;
    size_t n_ids = 0, n_rows = 0;
    uint64_t *ids = NULL;
    int status, r;

    r = fp_query_reader_open(srv, &rd);
    if (r != 0)
        goto fail;
    r = fp_store_select(rd, q->matchers, q->n_matchers, &ids, &n_ids);
    if (r != 0)
        goto fail;
    rows = calloc(n_ids ? n_ids : 1, sizeof(*rows));
    if (rows == NULL) {
        r = -ENOMEM;
        goto fail;
    }

    for (size_t i = 0; i < n_ids; i++) {
        size_t first = pts.n;

        r = fp_store_read_range(rd, ids[i], q->from_ms, q->to_ms, add_point, &pts);
        if (pts.too_many) {
            fp_set_err(err, err_size,
                    "more than %zu points in the answer; narrow the range (from, to) or ask "
                    "for one device",
                    srv->max_points);
            status = FP_HTTP_UNPROCESSABLE;
            goto out;
        }
        if (pts.oom)
            r = -ENOMEM;
        if (r != 0)
            goto fail;
        /* Like a Prometheus range query, a series without points in the range is left out. */
        if (pts.n == first)
            continue;
        r = fp_store_series_get(rd, ids[i], &desc);
        if (r == 0) {
            rows[n_rows].first = first;
            rows[n_rows].n = pts.n - first;
            r = series_row_init(&rows[n_rows++], &desc);
        }
        if (r != 0)
            goto fail;
    }
    fp_query_reader_close(srv, &rd);

    if (n_rows > 1) /* qsort on an empty (possibly NULL) array is undefined */
        qsort(rows, n_rows, sizeof(*rows), cmp_series_row);
    pw = malloc(sizeof(*pw));
    if (pw == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    *pw = (struct point_writer){.out = out};
    r = write_series(out, rows, n_rows, &pts, pw);
    if (r != 0)
        goto fail;
    status = FP_HTTP_OK;
    goto out;

fail:
    status = internal_error(r, err, err_size);
out:
    fp_query_reader_close(srv, &rd);
    for (size_t i = 0; i < n_rows; i++) {
        json_decref(rows[i].metric);
        json_decref(rows[i].labels);
        free(rows[i].sort_key);
    }
    free(rows);
    free(ids);
    free(pts.ts);
    free(pts.v);
    free(pw);
    return status;
}

/* One group of an aggregated answer. Its "metric" is the request's, else the group's __name__
 * (there when "by" holds it), else left out: see the design comment at the top. Returns 0 or
 * -ENOMEM. */
static int write_group(struct evbuffer *out, const struct fp_series_query *q,
                       const struct fp_agg_group *g, bool first, struct point_writer *pw)
{
    json_t *labels = json_object();
    const json_t *name;
    int r = labels == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < g->n_labels && r == 0; i++)
        r = set_data_key(labels, g->labels[i].name, fp_jsonout_string_new(g->labels[i].value));
    if (r == 0) {
        name = json_object_get(labels, "__name__"); /* borrowed from labels */
        r |= evbuffer_add_printf(out, "%s{\"labels\":", first ? "" : ",") < 0;
        r |= fp_jsonout_value(out, labels);
        if (q->metric != NULL) {
            r |= evbuffer_add_printf(out, ",\"metric\":") < 0;
            r |= fp_jsonout_string(out, q->metric);
        } else if (name != NULL) {
            r |= evbuffer_add_printf(out, ",\"metric\":") < 0;
            r |= fp_jsonout_value(out, name);
        }
        r |= evbuffer_add_printf(out, ",\"agg\":") < 0;
        r |= fp_jsonout_string(out, q->agg_name);
        /* Only "quantile" takes q from the client; p95 and friends say it in their name. */
        if (strcmp(q->agg_name, "quantile") == 0) {
            r |= evbuffer_add_printf(out, ",\"q\":") < 0;
            r |= fp_jsonout_double(out, q->q);
        }
        r |= evbuffer_add_printf(out, ",\"step\":") < 0;
        r |= fp_jsonout_ts_ms(out, q->step_ms); /* seconds, exact, like a timestamp */
        r |= evbuffer_add_printf(out, ",\"points\":[") < 0;
        for (size_t j = 0; j < g->n_points; j++)
            point_writer_add(pw, g->points[j].ts_ms, g->points[j].value);
        r |= point_writer_end(pw);
        r |= evbuffer_add(out, "]}", 2);
        r = r == 0 ? 0 : -ENOMEM;
    }
    json_decref(labels);
    return r;
}

/* Every group's points of q, aggregated by storage/aggregate. Returns an HTTP status. */
static int series_aggregated(struct fp_query_server *srv, const struct fp_series_query *q,
                             struct evbuffer *out, char *err, size_t err_size)
{
    const struct fp_agg_query aq = {
        .matchers = q->matchers,
        .n_matchers = q->n_matchers,
        .from_ms = q->from_ms,
        .to_ms = q->to_ms,
        .step_ms = q->step_ms,
        .fn = q->agg,
        .q = q->q,
        .by = q->by,
        .n_by = q->n_by,
        .max_points = srv->max_points,
    };
    struct fp_store_reader *rd = NULL;
    struct fp_agg_result *res = NULL;
    struct point_writer *pw = NULL;
    int r;

    r = fp_query_reader_open(srv, &rd);
    if (r == 0)
        r = fp_store_aggregate(rd, &aq, &res);
    fp_query_reader_close(srv, &rd);
    if (r == FP_AGG_E_TOO_MANY) {
        fp_set_err(err, err_size,
                "more than %zu points in the answer; narrow the range (from, to), widen the step "
                "or group by fewer labels",
                srv->max_points);
        return FP_HTTP_UNPROCESSABLE;
    }
    if (r != 0)
        return internal_error(r, err, err_size);

    pw = malloc(sizeof(*pw));
    r = pw == NULL ? -ENOMEM : 0;
    if (r == 0) {
        *pw = (struct point_writer){.out = out};
        r = evbuffer_add_printf(out, "{\"series\":[") < 0 ? -ENOMEM : 0;
    }
    for (size_t i = 0; i < res->n_groups && r == 0; i++)
        r = write_group(out, q, &res->groups[i], i == 0, pw);
    if (r == 0 && evbuffer_add(out, "]}", 2) != 0)
        r = -ENOMEM;
    free(pw);
    fp_agg_result_destroy(&res);
    return r == 0 ? FP_HTTP_OK : internal_error(r, err, err_size);
}

int fp_api_series(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    struct fp_series_query *q = NULL;
    int status = FP_HTTP_BAD_REQUEST;

    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    /* On the heap: the parsed query holds its matcher names and group-by list (~9 KiB). */
    q = malloc(sizeof(*q));
    if (q == NULL) {
        status = internal_error(-ENOMEM, err, err_size);
        goto out;
    }
    if (fp_series_query_parse(&params, srv->now_ms(), srv->max_range_ms, q, err, err_size) < 0)
        goto out;
    if (q->step_ms == 0)
        status = series_raw(srv, q, out, err, err_size);
    else
        status = series_aggregated(srv, q, out, err, err_size);
out:
    free(q);
    fp_query_params_fini(&params);
    return status;
}

/* --- /api/v1/labels, /api/v1/labels/{name}/values ---------------------------------------------- */

/* Strings reported by the store, copied into a JSON array, at most max of them. */
struct string_list {
    json_t *arr;
    size_t max;
};

/* Stops with 1 past the limit, -ENOMEM when out of memory. */
static int collect_string(void *userdata, const char *s)
{
    struct string_list *l = userdata;

    if (json_array_size(l->arr) == l->max)
        return 1;
    return json_array_append_new(l->arr, fp_jsonout_string_new(s)) == 0 ? 0 : -ENOMEM;
}

/* {"<key>":[...]} with every label name (name NULL) or every value of label name. */
static int list_strings(struct fp_query_server *srv, const char *name, const char *key,
                        const char *query, struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_store_reader *rd = NULL;
    struct string_list list = {.max = srv->max_points};
    json_t *body = NULL;
    int status, r;

    if (check_no_params(query, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;

    list.arr = json_array();
    if (list.arr == NULL) {
        status = internal_error(-ENOMEM, err, err_size);
        goto out;
    }
    r = fp_query_reader_open(srv, &rd);
    if (r == 0)
        r = name == NULL ? fp_store_label_names(rd, collect_string, &list)
                         : fp_store_label_values(rd, name, collect_string, &list);
    fp_query_reader_close(srv, &rd);
    if (r == 1) {
        /* Bounded like a series answer: a label with a value per request id would otherwise
         * build an answer of any size. */
        fp_set_err(err, err_size, "more than %zu %s in the answer", srv->max_points, key);
        status = FP_HTTP_UNPROCESSABLE;
        goto out;
    }
    if (r != 0) {
        status = internal_error(r, err, err_size);
        goto out;
    }
    body = json_object();
    r = body == NULL ? -ENOMEM : set(body, key, json_incref(list.arr));
    r = r < 0 ? r : fp_jsonout_value(out, body);
    status = r < 0 ? internal_error(r, err, err_size) : FP_HTTP_OK;
out:
    json_decref(body);
    json_decref(list.arr);
    return status;
}

int fp_api_labels(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size)
{
    return list_strings(srv, NULL, "labels", query, out, err, err_size);
}

int fp_api_label_values(struct fp_query_server *srv, const char *arg, const char *query,
                        struct evbuffer *out, char *err, size_t err_size)
{
    char name[FP_QUERY_NAME_MAX + 1];

    if (fp_query_label_name_decode(arg, name, sizeof(name), err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    return list_strings(srv, name, "values", query, out, err, err_size);
}

/* --- /api/v1/events ---------------------------------------------------------------------- */

static const char *const events_params[] = {"device", "kind", "from", "to", "limit", NULL};

struct event_list {
    json_t *arr;
    const char *kind; /**< only events of this kind; NULL: all */
    size_t max;       /**< stop after this many: the answer says "truncated" */
    bool truncated;
};

static const char *severity_name(int severity)
{
    switch (severity) {
    case 2:
        return "warning";
    case 3:
        return "error";
    default:
        return "info";
    }
}

/* One event as the API shows it. Returns a new object, or NULL when out of memory. */
static json_t *event_obj_new(const struct fp_event_desc *e)
{
    json_t *obj = json_object(), *attrs = json_object();
    int r = obj == NULL || attrs == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < e->n_attrs && r == 0; i++)
        r = set_data_key(attrs, e->attrs[i].name, fp_jsonout_string_new(e->attrs[i].value));
    r = r < 0 ? r : set(obj, "ts", ms_to_seconds(e->ts_ms));
    r = r < 0 ? r : set(obj, "device", fp_jsonout_string_new(e->device));
    r = r < 0 ? r : set(obj, "kind", fp_jsonout_string_new(e->kind));
    r = r < 0 ? r : set(obj, "severity", json_string(severity_name(e->severity)));
    r = r < 0 ? r : set(obj, "message", fp_jsonout_string_new(e->message));
    if (r == 0) {
        r = set(obj, "attributes", attrs);
        attrs = NULL; /* taken by set */
    }
    json_decref(attrs);
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Stops with 1 when the list is full, -ENOMEM when out of memory. */
static int collect_event(void *userdata, const struct fp_event_desc *e)
{
    struct event_list *l = userdata;

    if (l->kind != NULL && strcmp(l->kind, e->kind) != 0)
        return 0;
    if (json_array_size(l->arr) == l->max) {
        l->truncated = true;
        return 1;
    }
    return json_array_append_new(l->arr, event_obj_new(e)) == 0 ? 0 : -ENOMEM;
}

int fp_api_events(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    struct fp_store_reader *rd = NULL;
    struct event_list list = {.max = 1000};
    const char *device, *v;
    int64_t to_ms = srv->now_ms(), from_ms;
    json_t *body = NULL;
    int status = FP_HTTP_BAD_REQUEST, r;

    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (fp_query_params_check(&params, events_params, err, err_size) < 0)
        goto out;
    device = fp_query_params_get(&params, "device");
    if (device != NULL && (device[0] == '\0' || strlen(device) > FP_QUERY_NAME_MAX)) {
        fp_set_err(err, err_size, "parameter \"device\": empty or too long");
        goto out;
    }
    list.kind = fp_query_params_get(&params, "kind");
    if ((v = fp_query_params_get(&params, "to")) != NULL && fp_query_time_parse(v, &to_ms) < 0) {
        fp_set_err(err, err_size, "parameter \"to\": not a Unix time in seconds");
        goto out;
    }
    from_ms = to_ms - INT64_C(3600000);
    if ((v = fp_query_params_get(&params, "from")) != NULL &&
        fp_query_time_parse(v, &from_ms) < 0) {
        fp_set_err(err, err_size, "parameter \"from\": not a Unix time in seconds");
        goto out;
    }
    if (from_ms > to_ms) {
        fp_set_err(err, err_size, "parameter \"from\" is after \"to\"");
        goto out;
    }
    if ((v = fp_query_params_get(&params, "limit")) != NULL) {
        uint64_t n;
        if (fp_parse_u64(v, &n) < 0 || n < 1 || n > srv->max_points) {
            fp_set_err(err, err_size, "parameter \"limit\": not a count from 1 to %zu",
                       srv->max_points);
            goto out;
        }
        list.max = (size_t)n;
    }
    list.arr = json_array();
    if (list.arr == NULL) {
        status = internal_error(-ENOMEM, err, err_size);
        goto out;
    }
    r = fp_query_reader_open(srv, &rd);
    if (r == 0)
        r = fp_store_events(rd, device, from_ms, to_ms, collect_event, &list);
    fp_query_reader_close(srv, &rd);
    if (r != 0 && r != 1) {
        status = internal_error(r, err, err_size);
        goto out;
    }
    body = json_object();
    r = body == NULL ? -ENOMEM : set(body, "events", json_incref(list.arr));
    r = r < 0 ? r : set(body, "truncated", json_boolean(list.truncated));
    r = r < 0 ? r : fp_jsonout_value(out, body);
    status = r < 0 ? internal_error(r, err, err_size) : FP_HTTP_OK;
out:
    json_decref(body);
    json_decref(list.arr);
    fp_query_params_fini(&params);
    return status;
}

/* --- /api/v1/devices/{id} --------------------------------------------------------------------- */

/* How far back devices/{id} lists events, and how many of the newest it keeps. */
#define DEVICE_EVENTS_WINDOW_MS (24 * 3600 * 1000)
#define DEVICE_EVENTS_MAX 100

/* Keeps the newest l->max events: the store hands them oldest first. */
static int collect_recent_event(void *userdata, const struct fp_event_desc *e)
{
    struct event_list *l = userdata;

    if (json_array_size(l->arr) == l->max) {
        l->truncated = true;
        if (json_array_remove(l->arr, 0) != 0)
            return -ENOMEM;
    }
    return json_array_append_new(l->arr, event_obj_new(e)) == 0 ? 0 : -ENOMEM;
}

/* The identity a device reported, under fixed names (null for what it did not report), so a
 * script reads .identity.model without knowing the probe's pair names. */
static json_t *identity_new(const struct fp_device_desc *d)
{
    static const struct {
        const char *key;  /**< in the answer */
        const char *pair; /**< the identity pair's name */
    } fields[] = {
        {"model", "model"},
        {"model_version", "model_version"},
        {"quant", "quant"},
        {"model_sha256", "model_sha256"},
        {"runtime", "runtime"},
        {"runtime_version", "runtime_version"},
        {"hw", "hw_class"},
        {"cpu", "cpu"},
        {"accelerator", "accelerator"},
        {"os", "os"},
        {"site", "site"},
        {"cohort", "cohort"},
    };
    json_t *obj = json_object();
    int r = obj == NULL ? -ENOMEM : 0;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && r == 0; i++) {
        const char *v = NULL;
        for (size_t j = 0; j < d->n_info && v == NULL; j++)
            if (strcmp(d->info[j].name, fields[i].pair) == 0)
                v = d->info[j].value;
        r = set(obj, fields[i].key, v != NULL ? fp_jsonout_string_new(v) : json_null());
    }
    if (r < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int fp_api_device(struct fp_query_server *srv, const char *arg, const char *query,
                  struct evbuffer *out, char *err, size_t err_size)
{
    char id[FP_QUERY_NAME_MAX + 1];
    struct fp_store_reader *rd = NULL;
    struct device_list list = {0};
    struct event_list events = {.max = DEVICE_EVENTS_MAX};
    struct fp_device_desc d;
    json_t *obj, *alerts = NULL;
    int64_t now_ms;
    int status, r;

    if (fp_query_segment_decode(arg, "device id", id, sizeof(id), err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    if (check_no_params(query, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;

    now_ms = srv->now_ms();
    events.arr = json_array();
    alerts = json_array();
    if (events.arr == NULL || alerts == NULL) {
        status = internal_error(-ENOMEM, err, err_size);
        goto out;
    }
    r = fp_query_reader_open(srv, &rd);
    if (r == 0)
        r = fp_store_device_get(rd, id, &d);
    /* "@collector" is a component, not a device of the fleet (see /api/v1/collector). */
    if (r == FP_STORE_E_NOTFOUND || (r == 0 && id[0] == '@')) {
        fp_set_err(err, err_size, "no such device: \"%.*s\"", 100, id);
        status = FP_HTTP_NOT_FOUND;
        goto out;
    }
    if (r == 0)
        r = collect_device(&list, &d, srv, now_ms);
    if (r == 0) {
        obj = list.rows[0].obj;
        r = set(obj, "identity", identity_new(&d));
    }
    if (r == 0)
        r = add_device_series(rd, &list.rows[0], &d);
    if (r == 0)
        r = fp_store_events(rd, id, now_ms - DEVICE_EVENTS_WINDOW_MS, now_ms,
                            collect_recent_event, &events);
    fp_query_reader_close(srv, &rd);
    if (r == 0 && srv->alert_hook.alerts != NULL)
        r = srv->alert_hook.alerts(srv->alert_hook.userdata, id, alerts);
    if (r != 0) {
        status = internal_error(r, err, err_size);
        goto out;
    }
    obj = list.rows[0].obj;
    r = set(obj, "events", json_incref(events.arr));
    r = r < 0 ? r : set(obj, "events_truncated", json_boolean(events.truncated));
    r = r < 0 ? r : set(obj, "alerts", json_incref(alerts));
    r = r < 0 ? r : fp_jsonout_value(out, obj);
    status = r < 0 ? internal_error(r, err, err_size) : FP_HTTP_OK;
out:
    fp_query_reader_close(srv, &rd);
    json_decref(events.arr);
    json_decref(alerts);
    device_list_fini(&list);
    return status;
}
