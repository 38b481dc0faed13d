/* Batch building, encoding and validation.
 *
 * The builder keeps plain arrays per series and a small open-addressing index keyed by a hash of
 * metric + labels, so adding a sample to an existing series is a hash probe and an append. The
 * protobuf-c message is assembled only at encode time, pointing into those arrays, so nothing is
 * copied twice. Decoding uses protobuf-c's unpack and then walks the message once to enforce the
 * limits: protobuf-c already bounds lengths by the buffer, we bound counts and string sizes. */
#include "batch.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

struct series {
    char *metric;
    enum fp_metric_type type;
    struct fp_label *labels; /* owned copies */
    size_t n_labels;
    uint64_t hash;
    int64_t *ts;
    double *values;
    size_t n, cap;
};

struct event {
    int64_t ts_ms;
    char *kind;
    enum fp_severity severity;
    char *message;
    struct fp_label *attrs;
    size_t n_attrs;
};

struct fp_batch_builder {
    struct series *series;
    size_t n_series, cap_series;
    size_t *index; /* open addressing: series index + 1, 0 = empty */
    size_t index_cap;
    struct event *events;
    size_t n_events, cap_events;
    struct fp_label *info; /* owned copies */
    size_t n_info;
    size_t n_samples;
};

void fp_batch_limits_default(struct fp_batch_limits *ret)
{
    *ret = (struct fp_batch_limits){
        .max_message_bytes = 4u << 20,
        .max_series = 10000,
        .max_samples = 200000,
        .max_labels = 32,
        .max_name_bytes = 200,
        .max_value_bytes = 512,
        .max_device_id_bytes = 128,
        .max_events = 1000,
        .max_event_bytes = 4096,
    };
}

/* FNV-1a: small, no dependency, good enough for tens to thousands of keys per batch. */
static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h ^= 0xff; /* separator, so ("ab","c") and ("a","bc") differ */
    return h * 1099511628211ull;
}

static uint64_t series_hash(const char *metric, const struct fp_label *labels, size_t n)
{
    uint64_t h = fnv(14695981039346656037ull, metric);
    for (size_t i = 0; i < n; i++)
        h = fnv(fnv(h, labels[i].name), labels[i].value);
    return h;
}

static bool series_equal(const struct series *s, const char *metric,
                         const struct fp_label *labels, size_t n)
{
    if (s->n_labels != n || strcmp(s->metric, metric) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->labels[i].name, labels[i].name) != 0 ||
            strcmp(s->labels[i].value, labels[i].value) != 0)
            return false;
    return true;
}

static void free_labels(struct fp_label *labels, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)labels[i].name);
        free((char *)labels[i].value);
    }
    free(labels);
}

static int copy_labels(const struct fp_label *src, size_t n, struct fp_label **ret)
{
    struct fp_label *l;

    *ret = NULL;
    if (n == 0)
        return 0;
    l = calloc(n, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        l[i].name = strdup(src[i].name != NULL ? src[i].name : "");
        l[i].value = strdup(src[i].value != NULL ? src[i].value : "");
        if (l[i].name == NULL || l[i].value == NULL) {
            free_labels(l, n);
            return -ENOMEM;
        }
    }
    *ret = l;
    return 0;
}

int fp_batch_builder_new(struct fp_batch_builder **ret)
{
    struct fp_batch_builder *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    *ret = b;
    return 0;
}

static void clear_series(struct fp_batch_builder *b)
{
    for (size_t i = 0; i < b->n_series; i++) {
        struct series *s = &b->series[i];
        free(s->metric);
        free_labels(s->labels, s->n_labels);
        free(s->ts);
        free(s->values);
    }
    b->n_series = 0;
    b->n_samples = 0;
    if (b->index != NULL)
        memset(b->index, 0, b->index_cap * sizeof(*b->index));
}

static void clear_events(struct fp_batch_builder *b)
{
    for (size_t i = 0; i < b->n_events; i++) {
        free(b->events[i].kind);
        free(b->events[i].message);
        free_labels(b->events[i].attrs, b->events[i].n_attrs);
    }
    b->n_events = 0;
}

void fp_batch_builder_reset(struct fp_batch_builder *b)
{
    clear_series(b);
    clear_events(b);
    free_labels(b->info, b->n_info);
    b->info = NULL;
    b->n_info = 0;
}

void fp_batch_builder_destroy(struct fp_batch_builder **bp)
{
    struct fp_batch_builder *b = *bp;
    if (b == NULL)
        return;
    fp_batch_builder_reset(b);
    free(b->series);
    free(b->index);
    free(b->events);
    free(b);
    *bp = NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *n;

    if (need <= *cap)
        return 0;
    ncap = *cap < 8 ? 8 : *cap * 2;
    while (ncap < need)
        ncap *= 2;
    n = realloc(*arr, ncap * elem);
    if (n == NULL)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

static int rehash(struct fp_batch_builder *b, size_t cap)
{
    size_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_series; i++) {
        size_t p = b->series[i].hash & (cap - 1);
        while (idx[p] != 0)
            p = (p + 1) & (cap - 1);
        idx[p] = i + 1;
    }
    free(b->index);
    b->index = idx;
    b->index_cap = cap;
    return 0;
}

int fp_batch_builder_add(struct fp_batch_builder *b, const char *metric, enum fp_metric_type type,
                         const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                         double value)
{
    struct series *s = NULL;
    uint64_t h;
    size_t p;
    int r;

    if (metric == NULL || !isfinite(value))
        return -EINVAL;
    /* Keep the index at most half full so probes stay short. */
    if ((b->n_series + 1) * 2 > b->index_cap) {
        r = rehash(b, b->index_cap == 0 ? 64 : b->index_cap * 2);
        if (r < 0)
            return r;
    }
    h = series_hash(metric, labels, n_labels);
    p = h & (b->index_cap - 1);
    while (b->index[p] != 0) {
        struct series *c = &b->series[b->index[p] - 1];
        if (c->hash == h && series_equal(c, metric, labels, n_labels)) {
            s = c;
            break;
        }
        p = (p + 1) & (b->index_cap - 1);
    }
    if (s == NULL) {
        r = grow((void **)&b->series, &b->cap_series, b->n_series + 1, sizeof(*b->series));
        if (r < 0)
            return r;
        s = &b->series[b->n_series];
        *s = (struct series){.type = type, .hash = h, .n_labels = n_labels};
        s->metric = strdup(metric);
        if (s->metric == NULL)
            return -ENOMEM;
        r = copy_labels(labels, n_labels, &s->labels);
        if (r < 0) {
            free(s->metric);
            return r;
        }
        b->index[p] = ++b->n_series;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap;
        r = grow((void **)&s->ts, &cap, s->n + 1, sizeof(*s->ts));
        if (r < 0)
            return r;
        r = grow((void **)&s->values, &s->cap, s->n + 1, sizeof(*s->values));
        if (r < 0)
            return r;
        /* s->cap tracks values; ts grew in step since both started equal. */
    }
    s->ts[s->n] = ts_ms;
    s->values[s->n] = value;
    s->n++;
    b->n_samples++;
    return 0;
}

int fp_batch_builder_add_event(struct fp_batch_builder *b, int64_t ts_ms, const char *kind,
                               enum fp_severity severity, const char *message,
                               const struct fp_label *attrs, size_t n_attrs)
{
    struct event *e;
    int r;

    r = grow((void **)&b->events, &b->cap_events, b->n_events + 1, sizeof(*b->events));
    if (r < 0)
        return r;
    e = &b->events[b->n_events];
    *e = (struct event){.ts_ms = ts_ms, .severity = severity, .n_attrs = n_attrs};
    e->kind = strdup(kind != NULL ? kind : "");
    e->message = strdup(message != NULL ? message : "");
    if (e->kind == NULL || e->message == NULL ||
        copy_labels(attrs, n_attrs, &e->attrs) < 0) {
        free(e->kind);
        free(e->message);
        return -ENOMEM;
    }
    b->n_events++;
    return 0;
}

/* The numeric DeviceInfo fields, with their largest value. */
static bool info_number(const char *name, uint64_t *ret_max)
{
    if (strcmp(name, "memory_total_bytes") == 0) {
        *ret_max = UINT64_MAX;
        return true;
    }
    if (strcmp(name, "cpu_count") == 0) {
        *ret_max = UINT32_MAX;
        return true;
    }
    return false;
}

int fp_batch_builder_set_info(struct fp_batch_builder *b, const struct fp_label *info,
                              size_t n_info)
{
    struct fp_label *copy;
    uint64_t max, v;
    int r;

    /* Numbers are checked here, so encoding never meets a bad one later. */
    for (size_t i = 0; i < n_info; i++)
        if (info[i].name != NULL && info_number(info[i].name, &max) &&
            (info[i].value == NULL || fp_parse_u64(info[i].value, &v) < 0 || v > max))
            return -EINVAL;
    r = copy_labels(info, n_info, &copy);
    if (r < 0)
        return r;
    free_labels(b->info, b->n_info);
    b->info = copy;
    b->n_info = n_info;
    return 0;
}

size_t fp_batch_builder_samples(const struct fp_batch_builder *b)
{
    return b->n_samples;
}

size_t fp_batch_builder_series(const struct fp_batch_builder *b)
{
    return b->n_series;
}

/* DeviceInfo string fields by name, so storage and the probe speak name/value pairs and this
 * table is the one place that knows the message layout. If you add a field to DeviceInfo, add
 * it here. */
#define STR_FIELD(f) {#f, offsetof(Fleetpulse__V1__DeviceInfo, f)}
static const struct {
    const char *name;
    size_t offset;
} info_fields[] = {
    STR_FIELD(hostname), STR_FIELD(hw_class),      STR_FIELD(cpu),
    STR_FIELD(accelerator), STR_FIELD(os),         STR_FIELD(kernel),
    STR_FIELD(arch),     STR_FIELD(runtime),       STR_FIELD(runtime_version),
    STR_FIELD(model),    STR_FIELD(model_version), STR_FIELD(model_sha256),
    STR_FIELD(quant),    STR_FIELD(site),          STR_FIELD(cohort),
    STR_FIELD(probe_version),
};
#undef STR_FIELD

static char **info_str(Fleetpulse__V1__DeviceInfo *info, size_t i)
{
    return (char **)((char *)info + info_fields[i].offset);
}

/* Builds the protobuf DeviceInfo from name/value pairs. Strings point into b->info. The tags
 * array is allocated into *ret_tags / *ret_tag_ptrs (caller frees). */
static int fill_info(const struct fp_batch_builder *b, Fleetpulse__V1__DeviceInfo *info,
                     Fleetpulse__V1__Label **ret_tags, Fleetpulse__V1__Label ***ret_tag_ptrs)
{
    Fleetpulse__V1__Label *tags = NULL, **tag_ptrs = NULL;
    size_t n_tags = 0;
    uint64_t max;

    fleetpulse__v1__device_info__init(info);
    if (b->n_info > 0) {
        tags = calloc(b->n_info, sizeof(*tags));
        tag_ptrs = calloc(b->n_info, sizeof(*tag_ptrs));
        if (tags == NULL || tag_ptrs == NULL) {
            free(tags);
            free(tag_ptrs);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < b->n_info; i++) {
        const char *name = b->info[i].name, *value = b->info[i].value;
        bool done = false;
        for (size_t f = 0; f < sizeof(info_fields) / sizeof(info_fields[0]); f++) {
            if (strcmp(name, info_fields[f].name) == 0) {
                *info_str(info, f) = (char *)value;
                done = true;
                break;
            }
        }
        if (done)
            continue;
        if (info_number(name, &max)) {
            uint64_t v = 0;
            (void)fp_parse_u64(value, &v); /* validated by fp_batch_builder_set_info */
            if (name[0] == 'm')
                info->memory_total_bytes = v;
            else
                info->cpu_count = (uint32_t)v;
            continue;
        }
        fleetpulse__v1__label__init(&tags[n_tags]);
        tags[n_tags].name = (char *)(strncmp(name, "tag.", 4) == 0 ? name + 4 : name);
        tags[n_tags].value = (char *)value;
        tag_ptrs[n_tags] = &tags[n_tags];
        n_tags++;
    }
    info->n_tags = n_tags;
    info->tags = tag_ptrs;
    *ret_tags = tags;
    *ret_tag_ptrs = tag_ptrs;
    return 0;
}

size_t fp_device_info_to_labels(const Fleetpulse__V1__DeviceInfo *info, struct fp_label *ret,
                                size_t max, char *scratch, size_t scratch_size)
{
    char *numbuf = scratch;
    size_t numbuf_size = scratch_size;
    size_t n = 0;
    int w;

    for (size_t f = 0; f < sizeof(info_fields) / sizeof(info_fields[0]) && n < max; f++) {
        const char *v = *info_str((Fleetpulse__V1__DeviceInfo *)info, f);
        if (v != NULL && v[0] != '\0')
            ret[n++] = (struct fp_label){info_fields[f].name, v};
    }
    if (info->memory_total_bytes > 0 && n < max) {
        w = snprintf(numbuf, numbuf_size, "%" PRIu64, info->memory_total_bytes);
        if (w > 0 && (size_t)w < numbuf_size) {
            ret[n++] = (struct fp_label){"memory_total_bytes", numbuf};
            numbuf += w + 1;
            numbuf_size -= (size_t)w + 1;
        }
    }
    if (info->cpu_count > 0 && n < max) {
        w = snprintf(numbuf, numbuf_size, "%" PRIu32, info->cpu_count);
        if (w > 0 && (size_t)w < numbuf_size) {
            ret[n++] = (struct fp_label){"cpu_count", numbuf};
            numbuf += w + 1;
            numbuf_size -= (size_t)w + 1;
        }
    }
    for (size_t i = 0; i < info->n_tags && n < max; i++) {
        /* Tags get a "tag." prefix in storage so they never collide with a field name. */
        w = snprintf(numbuf, numbuf_size, "tag.%s", info->tags[i]->name);
        if (w < 0 || (size_t)w >= numbuf_size)
            break;
        ret[n++] = (struct fp_label){numbuf, info->tags[i]->value};
        numbuf += w + 1;
        numbuf_size -= (size_t)w + 1;
    }
    return n;
}

static int fill_labels(const struct fp_label *src, size_t n, Fleetpulse__V1__Label *msgs,
                       Fleetpulse__V1__Label **ptrs)
{
    for (size_t i = 0; i < n; i++) {
        fleetpulse__v1__label__init(&msgs[i]);
        msgs[i].name = (char *)src[i].name;
        msgs[i].value = (char *)src[i].value;
        ptrs[i] = &msgs[i];
    }
    return 0;
}

int fp_batch_builder_encode(const struct fp_batch_builder *b, const char *device_id,
                            uint64_t epoch, uint64_t seq, int64_t sent_at_ms,
                            uint64_t dropped_samples_total, uint8_t **ret_buf, size_t *ret_len)
{
    Fleetpulse__V1__Batch batch = FLEETPULSE__V1__BATCH__INIT;
    Fleetpulse__V1__DeviceInfo info;
    Fleetpulse__V1__SeriesBlock *blocks = NULL, **block_ptrs = NULL;
    Fleetpulse__V1__Event *events = NULL, **event_ptrs = NULL;
    Fleetpulse__V1__Label *labels = NULL, **label_ptrs = NULL;
    Fleetpulse__V1__Label *tags = NULL, **tag_ptrs = NULL;
    size_t n_labels = 0, li = 0, len;
    uint8_t *buf = NULL;
    int r = -ENOMEM;

    for (size_t i = 0; i < b->n_series; i++)
        n_labels += b->series[i].n_labels;
    for (size_t i = 0; i < b->n_events; i++)
        n_labels += b->events[i].n_attrs;

    /* calloc(0) may return NULL; ask for at least one element so NULL always means failure. */
    blocks = calloc(b->n_series + 1, sizeof(*blocks));
    block_ptrs = calloc(b->n_series + 1, sizeof(*block_ptrs));
    events = calloc(b->n_events + 1, sizeof(*events));
    event_ptrs = calloc(b->n_events + 1, sizeof(*event_ptrs));
    labels = calloc(n_labels + 1, sizeof(*labels));
    label_ptrs = calloc(n_labels + 1, sizeof(*label_ptrs));
    if (!blocks || !block_ptrs || !events || !event_ptrs || !labels || !label_ptrs)
        goto out;

    batch.schema_version = FP_SCHEMA_VERSION;
    batch.device_id = (char *)device_id;
    batch.epoch = epoch;
    batch.seq = seq;
    batch.sent_at_ms = sent_at_ms;
    batch.dropped_samples_total = dropped_samples_total;

    for (size_t i = 0; i < b->n_series; i++) {
        const struct series *s = &b->series[i];
        Fleetpulse__V1__SeriesBlock *blk = &blocks[i];
        fleetpulse__v1__series_block__init(blk);
        blk->metric = s->metric;
        blk->type = (Fleetpulse__V1__MetricType)s->type;
        fill_labels(s->labels, s->n_labels, &labels[li], &label_ptrs[li]);
        blk->labels = &label_ptrs[li];
        blk->n_labels = s->n_labels;
        li += s->n_labels;
        blk->timestamps_ms = s->ts;
        blk->n_timestamps_ms = s->n;
        blk->values = s->values;
        blk->n_values = s->n;
        block_ptrs[i] = blk;
    }
    batch.series = block_ptrs;
    batch.n_series = b->n_series;

    for (size_t i = 0; i < b->n_events; i++) {
        const struct event *e = &b->events[i];
        Fleetpulse__V1__Event *ev = &events[i];
        fleetpulse__v1__event__init(ev);
        ev->timestamp_ms = e->ts_ms;
        ev->kind = e->kind;
        ev->severity = (Fleetpulse__V1__Severity)e->severity;
        ev->message = e->message;
        fill_labels(e->attrs, e->n_attrs, &labels[li], &label_ptrs[li]);
        ev->attributes = &label_ptrs[li];
        ev->n_attributes = e->n_attrs;
        li += e->n_attrs;
        event_ptrs[i] = ev;
    }
    batch.events = event_ptrs;
    batch.n_events = b->n_events;

    if (b->n_info > 0) {
        r = fill_info(b, &info, &tags, &tag_ptrs);
        if (r < 0)
            goto out;
        batch.device_info = &info;
    }

    len = fleetpulse__v1__batch__get_packed_size(&batch);
    buf = malloc(len + 1);
    r = -ENOMEM;
    if (buf == NULL)
        goto out;
    (void)fleetpulse__v1__batch__pack(&batch, buf);
    *ret_buf = buf;
    *ret_len = len;
    r = 0;
out:
    free(tags);
    free(tag_ptrs);
    free(labels);
    free(label_ptrs);
    free(events);
    free(event_ptrs);
    free(blocks);
    free(block_ptrs);
    return r;
}

bool fp_metric_name_valid(const char *s, size_t max)
{
    size_t i = 0;
    if (s == NULL || s[0] == '\0')
        return false;
    for (; s[i] != '\0'; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
        if (i >= max)
            return false;
    }
    return true;
}

bool fp_label_name_valid(const char *s, size_t max)
{
    size_t i = 0;
    if (s == NULL || s[0] == '\0' || (s[0] == '_' && s[1] == '_'))
        return false;
    for (; s[i] != '\0'; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
        if (i >= max)
            return false;
    }
    return true;
}

static int refuse(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *err, size_t err_size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return code;
}

/* Label values and device ids end up in JSON, logs and Prometheus text: no control bytes. */
static bool text_valid(const char *s, size_t max)
{
    size_t i = 0;
    if (s == NULL)
        return false;
    for (; s[i] != '\0'; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || i >= max)
            return false;
    }
    return true;
}

/* What a refusal names: "series 3", or kind alone when index is SIZE_MAX. Formatted only when
 * something is refused: validating is on the collector's path for every batch. */
static const char *what_name(char *buf, size_t size, const char *kind, size_t index)
{
    if (index == SIZE_MAX)
        return kind;
    (void)snprintf(buf, size, "%s %zu", kind, index);
    return buf;
}

static int check_labels(Fleetpulse__V1__Label **labels, size_t n, const struct fp_batch_limits *lim,
                        const char *kind, size_t index, char *err, size_t err_size)
{
    char wb[64];
    for (size_t i = 0; i < n; i++) {
        const char *name = labels[i]->name;
        if (!fp_label_name_valid(name, lim->max_name_bytes))
            return refuse(err, err_size, FP_BATCH_E_SCHEMA, "%s: invalid label name",
                          what_name(wb, sizeof(wb), kind, index));
        if (strcmp(name, "device") == 0)
            return refuse(err, err_size, FP_BATCH_E_SCHEMA,
                          "%s: label \"device\" is reserved for the collector",
                          what_name(wb, sizeof(wb), kind, index));
        if (!text_valid(labels[i]->value, lim->max_value_bytes))
            return refuse(err, err_size, FP_BATCH_E_SCHEMA,
                          "%s: label %s: value too long or has control characters",
                          what_name(wb, sizeof(wb), kind, index), name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[j]->name, name) == 0)
                return refuse(err, err_size, FP_BATCH_E_SCHEMA, "%s: duplicate label %s",
                              what_name(wb, sizeof(wb), kind, index), name);
    }
    return 0;
}

/* Samples older than 2000-01-01 or past 2100-01-01 are a clock that never synced, or garbage. */
#define TS_MIN_MS INT64_C(946684800000)
#define TS_MAX_MS INT64_C(4102444800000)

static int validate(const Fleetpulse__V1__Batch *b, const struct fp_batch_limits *lim, char *err,
                    size_t err_size)
{
    size_t samples = 0;
    int r;

    if (b->schema_version == 0)
        return refuse(err, err_size, FP_BATCH_E_SCHEMA, "schema_version missing");
    if (b->schema_version > FP_SCHEMA_VERSION)
        return refuse(err, err_size, FP_BATCH_E_VERSION,
                      "schema_version %" PRIu32 " is newer than supported %d", b->schema_version,
                      FP_SCHEMA_VERSION);
    if (b->device_id == NULL || b->device_id[0] == '\0')
        return refuse(err, err_size, FP_BATCH_E_SCHEMA, "device_id missing");
    if (!text_valid(b->device_id, lim->max_device_id_bytes) || strchr(b->device_id, '"') ||
        strchr(b->device_id, '\\') || strchr(b->device_id, '/'))
        return refuse(err, err_size, FP_BATCH_E_SCHEMA,
                      "device_id too long or has control characters, quotes or slashes");
    /* "@..." names fleetpulse's own components in the store (the collector is "@collector"). */
    if (b->device_id[0] == '@')
        return refuse(err, err_size, FP_BATCH_E_SCHEMA, "device_id may not start with '@'");
    if (b->seq == 0)
        return refuse(err, err_size, FP_BATCH_E_SCHEMA, "seq must start at 1");
    if (b->n_series > lim->max_series)
        return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "%zu series, limit %zu", b->n_series,
                      lim->max_series);
    if (b->n_events > lim->max_events)
        return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "%zu events, limit %zu", b->n_events,
                      lim->max_events);

    for (size_t i = 0; i < b->n_series; i++) {
        const Fleetpulse__V1__SeriesBlock *s = b->series[i];
        char wb[64];

        if (!fp_metric_name_valid(s->metric, lim->max_name_bytes))
            return refuse(err, err_size, FP_BATCH_E_SCHEMA, "series %zu: invalid metric name", i);
        if (s->n_labels > lim->max_labels)
            return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "%s: %zu labels, limit %zu",
                          what_name(wb, sizeof(wb), "series", i), s->n_labels, lim->max_labels);
        r = check_labels(s->labels, s->n_labels, lim, "series", i, err, err_size);
        if (r != 0)
            return r;
        if (s->n_timestamps_ms != s->n_values)
            return refuse(err, err_size, FP_BATCH_E_SCHEMA, "%s: %zu timestamps but %zu values",
                          what_name(wb, sizeof(wb), "series", i), s->n_timestamps_ms, s->n_values);
        samples += s->n_values;
        if (samples > lim->max_samples)
            return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "more than %zu samples",
                          lim->max_samples);
        for (size_t k = 0; k < s->n_values; k++) {
            if (s->timestamps_ms[k] < TS_MIN_MS || s->timestamps_ms[k] >= TS_MAX_MS)
                return refuse(err, err_size, FP_BATCH_E_SCHEMA,
                              "%s: timestamp %" PRId64 " ms out of range",
                              what_name(wb, sizeof(wb), "series", i), s->timestamps_ms[k]);
            if (!isfinite(s->values[k]))
                return refuse(err, err_size, FP_BATCH_E_SCHEMA, "%s: non-finite value",
                              what_name(wb, sizeof(wb), "series", i));
        }
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Fleetpulse__V1__Event *e = b->events[i];
        if (!text_valid(e->kind, lim->max_name_bytes) || strlen(e->message) > lim->max_event_bytes)
            return refuse(err, err_size, FP_BATCH_E_SCHEMA, "event %zu: bad kind or message", i);
        r = check_labels(e->attributes, e->n_attributes, lim, "event", SIZE_MAX, err, err_size);
        if (r != 0)
            return r;
    }
    if (b->device_info != NULL) {
        const Fleetpulse__V1__DeviceInfo *info = b->device_info;
        for (size_t f = 0; f < sizeof(info_fields) / sizeof(info_fields[0]); f++)
            if (!text_valid(*info_str((Fleetpulse__V1__DeviceInfo *)info, f),
                            lim->max_value_bytes))
                return refuse(err, err_size, FP_BATCH_E_SCHEMA, "device_info.%s invalid",
                              info_fields[f].name);
        if (info->n_tags > lim->max_labels)
            return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "device_info: too many tags");
        r = check_labels(info->tags, info->n_tags, lim, "device_info", SIZE_MAX, err, err_size);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Blocks are ARENA_BLOCK bytes; an allocation over a quarter of that gets a block of its own, so
 * little is wasted at a block's end. */
#define ARENA_BLOCK (256u << 10)
/* Decoded messages and storage views hold pointers, sizes, 64-bit integers and doubles: 8 bytes
 * of alignment serve all of them, and 16 would waste ~8 bytes on each of the many small pieces. */
#define ARENA_ALIGN 8u

struct arena_block {
    struct arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct fp_batch_arena {
    struct arena_block *blocks; /* newest first; allocations come from the first */
};

int fp_batch_arena_new(struct fp_batch_arena **ret)
{
    *ret = calloc(1, sizeof(**ret));
    return *ret == NULL ? -ENOMEM : 0;
}

static struct arena_block *arena_block_new(size_t size)
{
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (b != NULL)
        *b = (struct arena_block){.size = size};
    return b;
}

void *fp_batch_arena_alloc(struct fp_batch_arena *a, size_t size)
{
    struct arena_block *b = a->blocks;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

    if (need < size)
        return NULL;
    if (b != NULL && b->size - b->used >= need) {
        void *p = b->data + b->used;
        b->used += need;
        return p;
    }
    if (need > ARENA_BLOCK / 4) {
        /* Its own block, behind the current one so the current one keeps filling. */
        struct arena_block *big = arena_block_new(need);
        if (big == NULL)
            return NULL;
        big->used = need;
        if (b == NULL) {
            a->blocks = big;
        } else {
            big->next = b->next;
            b->next = big;
        }
        return big->data;
    }
    b = arena_block_new(ARENA_BLOCK);
    if (b == NULL)
        return NULL;
    b->next = a->blocks;
    a->blocks = b;
    b->used = need;
    return b->data;
}

void fp_batch_arena_reset(struct fp_batch_arena *a)
{
    struct arena_block *keep = NULL, *b = a->blocks;

    while (b != NULL) {
        struct arena_block *next = b->next;
        if (keep == NULL && b->size == ARENA_BLOCK) {
            keep = b;
        } else {
            free(b);
        }
        b = next;
    }
    if (keep != NULL)
        *keep = (struct arena_block){.size = ARENA_BLOCK};
    a->blocks = keep;
}

void fp_batch_arena_destroy(struct fp_batch_arena **ap)
{
    struct fp_batch_arena *a = *ap;
    if (a == NULL)
        return;
    for (struct arena_block *b = a->blocks, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
    *ap = NULL;
}

static void *arena_pb_alloc(void *data, size_t size)
{
    return fp_batch_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* all of it goes at the arena's reset */
}

static int decode(ProtobufCAllocator *alloc, const uint8_t *buf, size_t len,
                  const struct fp_batch_limits *lim, Fleetpulse__V1__Batch **ret, char *err,
                  size_t err_size)
{
    Fleetpulse__V1__Batch *b;
    int r;

    err[0] = '\0';
    if (len > lim->max_message_bytes)
        return refuse(err, err_size, FP_BATCH_E_TOO_LARGE, "message of %zu bytes, limit %zu", len,
                      lim->max_message_bytes);
    b = fleetpulse__v1__batch__unpack(alloc, len, buf);
    if (b == NULL)
        return refuse(err, err_size, FP_BATCH_E_SCHEMA, "not a fleetpulse Batch (decode failed)");
    r = validate(b, lim, err, err_size);
    if (r != 0) {
        if (alloc == NULL)
            fleetpulse__v1__batch__free_unpacked(b, NULL);
        return r;
    }
    *ret = b;
    return 0;
}

int fp_batch_decode(const uint8_t *buf, size_t len, const struct fp_batch_limits *lim,
                    Fleetpulse__V1__Batch **ret, char *err, size_t err_size)
{
    return decode(NULL, buf, len, lim, ret, err, err_size);
}

int fp_batch_decode_in(struct fp_batch_arena *a, const uint8_t *buf, size_t len,
                       const struct fp_batch_limits *lim, Fleetpulse__V1__Batch **ret, char *err,
                       size_t err_size)
{
    ProtobufCAllocator alloc = {arena_pb_alloc, arena_pb_free, a};
    return decode(&alloc, buf, len, lim, ret, err, err_size);
}

/* Reads a base-128 varint; returns bytes used, 0 when truncated or over 10 bytes. */
static size_t read_varint(const uint8_t *p, size_t len, uint64_t *ret)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *ret = v;
            return i + 1;
        }
    }
    return 0;
}

void fp_batch_peek_id(const uint8_t *buf, size_t len, uint64_t *ret_epoch, uint64_t *ret_seq)
{
    size_t pos = 0;

    *ret_epoch = 0;
    *ret_seq = 0;
    /* Walk the top-level fields without unpacking: this also works for messages too large or
     * too broken to decode, as long as the header fields come before the damage. */
    while (pos < len) {
        uint64_t key, v;
        size_t n = read_varint(buf + pos, len - pos, &key);
        if (n == 0)
            return;
        pos += n;
        switch (key & 7) {
        case 0: /* varint */
            n = read_varint(buf + pos, len - pos, &v);
            if (n == 0)
                return;
            pos += n;
            if (key >> 3 == 3)
                *ret_epoch = v;
            else if (key >> 3 == 4)
                *ret_seq = v;
            break;
        case 1: /* fixed64 */
            pos += 8;
            break;
        case 2: /* length-delimited */
            n = read_varint(buf + pos, len - pos, &v);
            if (n == 0 || v > len - pos - n)
                return;
            pos += n + (size_t)v;
            break;
        case 5: /* fixed32 */
            pos += 4;
            break;
        default:
            return;
        }
    }
}

void fp_batch_free(Fleetpulse__V1__Batch **batch)
{
    if (*batch == NULL)
        return;
    fleetpulse__v1__batch__free_unpacked(*batch, NULL);
    *batch = NULL;
}

int fp_ack_encode(uint64_t epoch, uint64_t seq, Fleetpulse__V1__AckStatus status,
                  const char *detail, uint64_t accepted, uint64_t refused, uint8_t **ret_buf,
                  size_t *ret_len)
{
    Fleetpulse__V1__Ack ack = FLEETPULSE__V1__ACK__INIT;
    uint8_t *buf;
    size_t len;

    ack.epoch = epoch;
    ack.seq = seq;
    ack.status = status;
    ack.detail = (char *)(detail != NULL ? detail : "");
    ack.samples_accepted = accepted;
    ack.samples_refused = refused;
    len = fleetpulse__v1__ack__get_packed_size(&ack);
    buf = malloc(len + 1);
    if (buf == NULL)
        return -ENOMEM;
    (void)fleetpulse__v1__ack__pack(&ack, buf);
    *ret_buf = buf;
    *ret_len = len;
    return 0;
}

int fp_ack_decode(const uint8_t *buf, size_t len, Fleetpulse__V1__Ack **ret)
{
    Fleetpulse__V1__Ack *a = fleetpulse__v1__ack__unpack(NULL, len, buf);
    if (a == NULL)
        return -EBADMSG;
    *ret = a;
    return 0;
}

Fleetpulse__V1__AckStatus fp_batch_error_to_ack(int batch_error)
{
    switch (batch_error) {
    case 0:
        return FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK;
    case FP_BATCH_E_TOO_LARGE:
        return FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE;
    case FP_BATCH_E_VERSION:
        return FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION;
    case FP_BATCH_E_SCHEMA:
        return FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA;
    default:
        return FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY;
    }
}

const char *fp_ack_status_name(Fleetpulse__V1__AckStatus status)
{
    switch (status) {
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK:
        return "ok";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE:
        return "duplicate";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA:
        return "bad_schema";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNAUTHORIZED:
        return "unauthorized";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE:
        return "too_large";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OVER_CARDINALITY:
        return "over_cardinality";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION:
        return "unsupported_version";
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY:
        return "retry";
    default:
        return "unknown";
    }
}
