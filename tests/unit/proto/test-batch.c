/* Wire codec: what the probe's builder encodes, fp_batch_decode gives back exactly (values bit for
 * bit, timestamps, labels, types, events, DeviceInfo); every way a batch is refused comes with its
 * FP_BATCH_E_* code and a reason naming the cause; acks round-trip; the name grammars hold at their
 * edges.
 *
 * Messages the builder cannot produce (timestamps and values of different lengths, NaN values,
 * schema_version 0 or 2) are assembled by hand from the protobuf-c types, the way a buggy or
 * hostile sender would. */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 2023-11-14T22:13:20Z: inside the accepted 2000..2100 window. */
#define T0 INT64_C(1700000000000)
/* The accepted window, as DESIGN states it: [2000-01-01, 2100-01-01). */
#define TS_2000 INT64_C(946684800000)
#define TS_2100 INT64_C(4102444800000)

static struct fp_batch_limits deflim;

/* --- helpers ----------------------------------------------------------------------------------- */

/* Decodes and expects acceptance; returns the batch (caller frees) or NULL after a failed check. */
static Fleetpulse__V1__Batch *decode_ok_at(const uint8_t *buf, size_t len,
                                           const struct fp_batch_limits *lim, const char *file,
                                           int line)
{
    Fleetpulse__V1__Batch *b = NULL;
    char err[256];
    int r = fp_batch_decode(buf, len, lim, &b, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "%s:%d: fp_batch_decode refused a valid batch: %d \"%s\"\n", file, line, r,
                err);
        fp_test_failures++;
        return NULL;
    }
    if (b == NULL) {
        fprintf(stderr, "%s:%d: fp_batch_decode returned 0 without a batch\n", file, line);
        fp_test_failures++;
    }
    return b;
}
#define decode_ok(buf, len, lim) decode_ok_at((buf), (len), (lim), __FILE__, __LINE__)

/* Decodes and expects refusal with code, a reason containing cause, and *ret left alone. */
static void expect_refused_at(const uint8_t *buf, size_t len, const struct fp_batch_limits *lim,
                              int code, const char *cause, const char *file, int line)
{
    Fleetpulse__V1__Batch *b = NULL;
    char err[256];
    int r;

    memset(err, 'x', sizeof(err));
    r = fp_batch_decode(buf, len, lim, &b, err, sizeof(err));
    if (r != code) {
        fprintf(stderr, "%s:%d: fp_batch_decode == %d (\"%.*s\"), expected %d (%s)\n", file, line,
                r, (int)sizeof(err) - 1, err, code, cause);
        fp_test_failures++;
    }
    if (memchr(err, '\0', sizeof(err)) == NULL) {
        fprintf(stderr, "%s:%d: err not NUL-terminated\n", file, line);
        fp_test_failures++;
    } else if (strstr(err, cause) == NULL) {
        fprintf(stderr, "%s:%d: err \"%s\" does not mention \"%s\"\n", file, line, err, cause);
        fp_test_failures++;
    }
    if (b != NULL) {
        fprintf(stderr, "%s:%d: a refused batch was handed out\n", file, line);
        fp_test_failures++;
        fp_batch_free(&b);
    }
}
#define expect_refused(buf, len, lim, code, cause)                                                 \
    expect_refused_at((buf), (len), (lim), (code), (cause), __FILE__, __LINE__)

static const struct fp_label *find_label(const struct fp_label *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, name) == 0)
            return &l[i];
    return NULL;
}

/* A builder holding one sample of one series; the usual base for refusal cases. */
static struct fp_batch_builder *one_sample(const char *metric, const struct fp_label *labels,
                                           size_t n_labels, int64_t ts, double v)
{
    struct fp_batch_builder *b = NULL;
    fp_assert(fp_batch_builder_new(&b) == 0);
    check_int(fp_batch_builder_add(b, metric, FP_METRIC_GAUGE, labels, n_labels, ts, v), 0);
    return b;
}

/* Encodes b under device "dev-1", epoch 7, seq 1 (or the given header) into *buf. */
static void encode(const struct fp_batch_builder *b, const char *device, uint64_t seq,
                   uint8_t **buf, size_t *len)
{
    fp_assert(fp_batch_builder_encode(b, device, 7, seq, T0, 0, buf, len) == 0);
}

/* Encodes one sample of metric/labels and expects refusal. */
static void refuse_series_at(const char *metric, const struct fp_label *labels, size_t n_labels,
                             int64_t ts, const struct fp_batch_limits *lim, int code,
                             const char *cause, const char *file, int line)
{
    struct fp_batch_builder *b = one_sample(metric, labels, n_labels, ts, 1.0);
    uint8_t *buf;
    size_t len;

    encode(b, "dev-1", 1, &buf, &len);
    expect_refused_at(buf, len, lim, code, cause, file, line);
    free(buf);
    fp_batch_builder_destroy(&b);
}
#define refuse_series(metric, labels, n, ts, lim, code, cause)                                     \
    refuse_series_at((metric), (labels), (n), (ts), (lim), (code), (cause), __FILE__, __LINE__)

/* A Batch assembled by hand: one series "m" {a="b"} with up to 4 samples. Not copyable (it
 * points into itself). */
struct hand {
    Fleetpulse__V1__Batch batch;
    Fleetpulse__V1__SeriesBlock blk;
    Fleetpulse__V1__SeriesBlock *blk_ptr;
    Fleetpulse__V1__Label lab;
    Fleetpulse__V1__Label *lab_ptr;
    int64_t ts[4];
    double v[4];
};

static void hand_init(struct hand *h)
{
    memset(h, 0, sizeof(*h));
    fleetpulse__v1__batch__init(&h->batch);
    fleetpulse__v1__series_block__init(&h->blk);
    fleetpulse__v1__label__init(&h->lab);
    h->lab.name = (char *)"a";
    h->lab.value = (char *)"b";
    h->lab_ptr = &h->lab;
    h->ts[0] = T0;
    h->v[0] = 1.5;
    h->blk.metric = (char *)"m";
    h->blk.type = FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_GAUGE;
    h->blk.labels = &h->lab_ptr;
    h->blk.n_labels = 1;
    h->blk.timestamps_ms = h->ts;
    h->blk.n_timestamps_ms = 1;
    h->blk.values = h->v;
    h->blk.n_values = 1;
    h->blk_ptr = &h->blk;
    h->batch.schema_version = FP_SCHEMA_VERSION;
    h->batch.device_id = (char *)"dev-1";
    h->batch.epoch = 7;
    h->batch.seq = 1;
    h->batch.sent_at_ms = T0;
    h->batch.series = &h->blk_ptr;
    h->batch.n_series = 1;
}

/* Packs h into a new buffer (free()). */
static uint8_t *hand_pack(const struct hand *h, size_t *ret_len)
{
    size_t len = fleetpulse__v1__batch__get_packed_size(&h->batch);
    uint8_t *buf = malloc(len + 1);
    fp_assert(buf != NULL);
    check_int(fleetpulse__v1__batch__pack(&h->batch, buf), len);
    *ret_len = len;
    return buf;
}

static void hand_refused_at(const struct hand *h, int code, const char *cause, const char *file,
                            int line)
{
    size_t len;
    uint8_t *buf = hand_pack(h, &len);
    expect_refused_at(buf, len, &deflim, code, cause, file, line);
    free(buf);
}
#define hand_refused(h, code, cause) hand_refused_at((h), (code), (cause), __FILE__, __LINE__)

/* --- round trip -------------------------------------------------------------------------------- */

static void test_roundtrip(void)
{
    static const struct fp_label cpu0[] = {{"zone", "cpu0"}};
    static const struct fp_label gpu[] = {{"zone", "gpu"}};
    static const struct fp_label tok[] = {{"model", "llama-3-8b"}, {"quant", "Q4_K_M"}};
    static const struct fp_label attrs[] = {{"stage", "2"}, {"result", "fail"}};
    static const struct fp_label info[] = {
        {"hostname", "edge-01"},
        {"hw_class", "jetson-orin"},
        {"model", "llama-3-8b"},
        {"memory_total_bytes", "8589934592"},
        {"cpu_count", "12"},
        {"tag.rack", "r7"},
    };
    struct fp_batch_builder *b = NULL;
    Fleetpulse__V1__Batch *d;
    const Fleetpulse__V1__SeriesBlock *s;
    const Fleetpulse__V1__Event *e;
    const Fleetpulse__V1__DeviceInfo *di;
    struct fp_label out[32];
    const struct fp_label *l;
    char numbuf[64];
    uint8_t *buf;
    size_t len, n;

    fp_assert(fp_batch_builder_new(&b) == 0);
    check_int(fp_batch_builder_samples(b), 0);
    check_int(fp_batch_builder_series(b), 0);

    check_int(fp_batch_builder_add(b, "cpu_temp_celsius", FP_METRIC_GAUGE, cpu0, 1, T0, 51.234),
              0);
    check_int(fp_batch_builder_add(b, "tokens_total", FP_METRIC_COUNTER, tok, 2, T0, 1e300), 0);
    /* Same metric and labels again: appended to the first block, not a new one. */
    check_int(fp_batch_builder_add(b, "cpu_temp_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 1000,
                                   -5.0),
              0);
    check_int(fp_batch_builder_add(b, "cpu_temp_celsius", FP_METRIC_GAUGE, gpu, 1, T0, 0.0), 0);
    check_int(fp_batch_builder_add(b, "up", FP_METRIC_GAUGE, NULL, 0, T0 + 1, 1.0), 0);
    check_int(fp_batch_builder_samples(b), 5);
    check_int(fp_batch_builder_series(b), 4);

    check_int(fp_batch_builder_add_event(b, T0 + 5, "canary", FP_SEVERITY_WARNING,
                                         "p95 latency regressed", attrs, 2),
              0);
    check_int(fp_batch_builder_add_event(b, T0 + 6, "spool_dropped", FP_SEVERITY_ERROR, NULL, NULL,
                                         0),
              0);
    check_int(fp_batch_builder_set_info(b, info, ARRAY_SIZE(info)), 0);

    fp_assert(fp_batch_builder_encode(b, "dev-01", UINT64_C(0xdeadbeefcafe), 42, T0 + 10, 3, &buf,
                                      &len) == 0);
    check(len > 0);
    d = decode_ok(buf, len, &deflim);
    fp_assert(d != NULL);

    check_int(d->schema_version, FP_SCHEMA_VERSION);
    check_str(d->device_id, "dev-01");
    check(d->epoch == UINT64_C(0xdeadbeefcafe));
    check_int(d->seq, 42);
    check_int(d->sent_at_ms, T0 + 10);
    check_int(d->dropped_samples_total, 3);

    fp_assert(d->n_series == 4);
    /* Blocks come out in first-added order. */
    s = d->series[0];
    check_str(s->metric, "cpu_temp_celsius");
    check_int(s->type, FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_GAUGE);
    fp_assert(s->n_labels == 1);
    check_str(s->labels[0]->name, "zone");
    check_str(s->labels[0]->value, "cpu0");
    fp_assert(s->n_timestamps_ms == 2 && s->n_values == 2);
    check_int(s->timestamps_ms[0], T0);
    check_int(s->timestamps_ms[1], T0 + 1000);
    check_double(s->values[0], 51.234);
    check_double(s->values[1], -5.0);

    s = d->series[1];
    check_str(s->metric, "tokens_total");
    check_int(s->type, FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_COUNTER);
    fp_assert(s->n_labels == 2);
    check_str(s->labels[0]->name, "model");
    check_str(s->labels[0]->value, "llama-3-8b");
    check_str(s->labels[1]->name, "quant");
    check_str(s->labels[1]->value, "Q4_K_M");
    fp_assert(s->n_values == 1 && s->n_timestamps_ms == 1);
    check_int(s->timestamps_ms[0], T0);
    check_double(s->values[0], 1e300);

    s = d->series[2];
    check_str(s->metric, "cpu_temp_celsius");
    fp_assert(s->n_labels == 1 && s->n_values == 1);
    check_str(s->labels[0]->value, "gpu");
    check_double(s->values[0], 0.0);
    check(!signbit(s->values[0]));

    s = d->series[3];
    check_str(s->metric, "up");
    check_int(s->n_labels, 0);
    fp_assert(s->n_values == 1);
    check_int(s->timestamps_ms[0], T0 + 1);
    check_double(s->values[0], 1.0);

    fp_assert(d->n_events == 2);
    e = d->events[0];
    check_int(e->timestamp_ms, T0 + 5);
    check_str(e->kind, "canary");
    check_int(e->severity, FLEETPULSE__V1__SEVERITY__SEVERITY_WARNING);
    check_str(e->message, "p95 latency regressed");
    fp_assert(e->n_attributes == 2);
    check_str(e->attributes[0]->name, "stage");
    check_str(e->attributes[0]->value, "2");
    check_str(e->attributes[1]->name, "result");
    check_str(e->attributes[1]->value, "fail");
    e = d->events[1];
    check_int(e->timestamp_ms, T0 + 6);
    check_str(e->kind, "spool_dropped");
    check_int(e->severity, FLEETPULSE__V1__SEVERITY__SEVERITY_ERROR);
    check_str(e->message, ""); /* NULL message goes out empty */
    check_int(e->n_attributes, 0);

    di = d->device_info;
    fp_assert(di != NULL);
    check_str(di->hostname, "edge-01");
    check_str(di->hw_class, "jetson-orin");
    check_str(di->model, "llama-3-8b");
    check_str(di->cpu, "");
    check(di->memory_total_bytes == UINT64_C(8589934592));
    check_int(di->cpu_count, 12);
    /* On the wire a tag is a plain label: "tag." is the builder's marker, not part of the name
     * (a dot would fail the label grammar). */
    fp_assert(di->n_tags == 1);
    check_str(di->tags[0]->name, "rack");
    check_str(di->tags[0]->value, "r7");

    /* And back to name/value pairs for storage: fields by name, numbers formatted, then tags. */
    n = fp_device_info_to_labels(di, out, ARRAY_SIZE(out), numbuf, sizeof(numbuf));
    check_int(n, 6);
    l = find_label(out, n, "hostname");
    check(l != NULL && strcmp(l->value, "edge-01") == 0);
    l = find_label(out, n, "hw_class");
    check(l != NULL && strcmp(l->value, "jetson-orin") == 0);
    l = find_label(out, n, "model");
    check(l != NULL && strcmp(l->value, "llama-3-8b") == 0);
    l = find_label(out, n, "memory_total_bytes");
    check(l != NULL && strcmp(l->value, "8589934592") == 0);
    l = find_label(out, n, "cpu_count");
    check(l != NULL && strcmp(l->value, "12") == 0);
    check(find_label(out, n, "cpu") == NULL); /* empty fields are skipped */
    /* In storage a tag gets its "tag." prefix back, so a tag named "hostname" cannot collide with
     * the field. */
    l = find_label(out, n, "tag.rack");
    check(l != NULL && strcmp(l->value, "r7") == 0);

    /* max and numbuf bound what is filled. */
    check_int(fp_device_info_to_labels(di, out, 2, numbuf, sizeof(numbuf)), 2);
    check_str(out[0].name, "hostname");
    check_str(out[1].name, "hw_class");
    /* Scratch too small for memory_total_bytes ("8589934592"): that pair is left out, cpu_count
     * ("12") fits, "tag.rack" no longer does and is left out rather than cut short. */
    n = fp_device_info_to_labels(di, out, ARRAY_SIZE(out), numbuf, 4);
    check_int(n, 4);
    check(find_label(out, n, "memory_total_bytes") == NULL);
    l = find_label(out, n, "cpu_count");
    check(l != NULL && strcmp(l->value, "12") == 0);
    check(find_label(out, n, "tag.rack") == NULL);
    for (size_t i = 0; i < n; i++)
        check(strncmp(out[i].name, "tag", 3) != 0);

    fp_batch_free(&d);
    check(d == NULL);
    fp_batch_free(&d); /* idempotent */
    free(buf);

    /* Encoding left the builder as it was; reset forgets everything and the builder is reusable. */
    check_int(fp_batch_builder_samples(b), 5);
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_samples(b), 0);
    check_int(fp_batch_builder_series(b), 0);
    check_int(fp_batch_builder_add(b, "cpu_temp_celsius", FP_METRIC_GAUGE, cpu0, 1, T0, 2.5), 0);
    check_int(fp_batch_builder_add(b, "cpu_temp_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 1, 3.5),
              0);
    check_int(fp_batch_builder_series(b), 1);
    encode(b, "dev-01", 43, &buf, &len);
    d = decode_ok(buf, len, &deflim);
    fp_assert(d != NULL);
    check(d->device_info == NULL);
    check_int(d->n_events, 0);
    fp_assert(d->n_series == 1 && d->series[0]->n_values == 2);
    check_double(d->series[0]->values[0], 2.5);
    check_double(d->series[0]->values[1], 3.5);
    fp_batch_free(&d);
    free(buf);

    fp_batch_builder_destroy(&b);
    check(b == NULL);
    fp_batch_builder_destroy(&b); /* idempotent */
}

/* Many series: the builder's index rehashes and every sample still lands in its own block. */
static void test_many_series(void)
{
    struct fp_batch_builder *b = NULL;
    Fleetpulse__V1__Batch *d;
    char val[24];
    uint8_t *buf;
    size_t len;

    fp_assert(fp_batch_builder_new(&b) == 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 500; i++) {
            struct fp_label l = {"core", val};
            (void)snprintf(val, sizeof(val), "%d", i);
            check_int(fp_batch_builder_add(b, "cpu_busy_ratio", FP_METRIC_GAUGE, &l, 1,
                                           T0 + round, i + round / 10.0),
                      0);
        }
    }
    check_int(fp_batch_builder_series(b), 500);
    check_int(fp_batch_builder_samples(b), 1500);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &deflim);
    fp_assert(d != NULL);
    fp_assert(d->n_series == 500);
    for (size_t i = 0; i < d->n_series; i++) {
        const Fleetpulse__V1__SeriesBlock *s = d->series[i];
        (void)snprintf(val, sizeof(val), "%zu", i);
        check_str(s->labels[0]->value, val);
        fp_assert(s->n_values == 3);
        for (int round = 0; round < 3; round++) {
            check_int(s->timestamps_ms[round], T0 + round);
            check_double(s->values[round], (double)i + round / 10.0);
        }
    }
    fp_batch_free(&d);
    free(buf);

    /* The same labels in another order are another series (documented: "in the same order"). */
    fp_batch_builder_reset(b);
    {
        static const struct fp_label ab[] = {{"a", "1"}, {"b", "2"}};
        static const struct fp_label ba[] = {{"b", "2"}, {"a", "1"}};
        check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, ab, 2, T0, 1), 0);
        check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, ba, 2, T0, 1), 0);
        check_int(fp_batch_builder_series(b), 2);
    }
    fp_batch_builder_destroy(&b);
}

/* Decoding into an arena gives the same batch as decoding with malloc, refuses what decode
 * refuses, and survives many rounds of reset, with pieces both smaller and larger than a block. */
static void test_arena(void)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
    struct fp_batch_builder *b = NULL;
    struct fp_batch_arena *a = NULL;
    Fleetpulse__V1__Batch *d = NULL;
    char err[256], val[24];
    uint8_t *buf;
    size_t len;

    fp_assert(fp_batch_builder_new(&b) == 0);
    for (int i = 0; i < 3000; i++) { /* packed arrays of 3000 values: over a quarter block */
        struct fp_label l = {"core", val};
        (void)snprintf(val, sizeof(val), "%d", i % 40);
        check_int(fp_batch_builder_add(b, "cpu_busy_ratio", FP_METRIC_GAUGE, &l, 1,
                                       T0 + i / 40, i * 0.5),
                  0);
    }
    encode(b, "dev-a", 1, &buf, &len);
    fp_assert(fp_batch_arena_new(&a) == 0);
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 5; k++) {
            d = NULL;
            check_int(fp_batch_decode_in(a, buf, len, &deflim, &d, err, sizeof(err)), 0);
            fp_assert(d != NULL);
            check_str(d->device_id, "dev-a");
            check_int(d->n_series, 40);
            for (size_t i = 0; i < d->n_series; i++) {
                const Fleetpulse__V1__SeriesBlock *s = d->series[i];
                (void)snprintf(val, sizeof(val), "%zu", i);
                check_str(s->labels[0]->value, val);
                check_int(s->n_values, 75);
                check_int(s->timestamps_ms[74], T0 + 74);
                check_double(s->values[74], (74 * 40 + (double)i) * 0.5);
                check_int((uintptr_t)s->values % 8, 0);
            }
        }
        d = NULL;
        check_int(fp_batch_decode_in(a, garbage, sizeof(garbage), &deflim, &d, err, sizeof(err)),
                  FP_BATCH_E_SCHEMA);
        check(d == NULL);
        {
            uint8_t *big = fp_batch_arena_alloc(a, 1 << 20), *small = fp_batch_arena_alloc(a, 3);
            fp_assert(big != NULL && small != NULL);
            memset(big, 0xab, 1 << 20); /* ASan: the whole piece is ours */
            small[2] = 1;
            check_int((uintptr_t)small % 8, 0);
        }
        fp_batch_arena_reset(a);
    }
    fp_batch_arena_destroy(&a);
    fp_batch_arena_destroy(&a); /* idempotent */
    free(buf);
    fp_batch_builder_destroy(&b);
}

/* DeviceInfo tags: "tag.NAME" and unknown names both travel as tags and come back as tag.NAME,
 * beside a field of the same name. */
static void test_info_tags(void)
{
    static const struct fp_label info[] = {
        {"hostname", "edge-02"}, {"tag.hostname", "alias"}, {"rack", "r9"}};
    struct fp_batch_builder *b = NULL;
    Fleetpulse__V1__Batch *d;
    struct fp_label out[16];
    const struct fp_label *l;
    char scratch[256];
    uint8_t *buf;
    size_t len, n;

    fp_assert(fp_batch_builder_new(&b) == 0);
    check_int(fp_batch_builder_set_info(b, info, ARRAY_SIZE(info)), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &deflim);
    fp_assert(d != NULL && d->device_info != NULL);
    check_str(d->device_info->hostname, "edge-02");
    fp_assert(d->device_info->n_tags == 2);
    check_str(d->device_info->tags[0]->name, "hostname");
    check_str(d->device_info->tags[1]->name, "rack");
    n = fp_device_info_to_labels(d->device_info, out, ARRAY_SIZE(out), scratch, sizeof(scratch));
    check_int(n, 3);
    l = find_label(out, n, "hostname");
    check(l != NULL && strcmp(l->value, "edge-02") == 0);
    l = find_label(out, n, "tag.hostname");
    check(l != NULL && strcmp(l->value, "alias") == 0);
    l = find_label(out, n, "tag.rack");
    check(l != NULL && strcmp(l->value, "r9") == 0);
    fp_batch_free(&d);
    free(buf);
    fp_batch_builder_destroy(&b);
}

static void test_builder_refusals(void)
{
    /* Numbers DeviceInfo cannot carry: not a number, empty, negative (strtoull would wrap it),
     * over uint32 for cpu_count, trailing junk. */
    static const struct fp_label bad_numbers[][1] = {
        {{"memory_total_bytes", "lots"}}, {{"cpu_count", ""}},
        {{"memory_total_bytes", "-1"}},   {{"cpu_count", "4294967297"}},
        {{"cpu_count", "8 cores"}},
    };
    static const struct fp_label good_numbers[] = {
        {"memory_total_bytes", "18446744073709551615"}, {"cpu_count", "4294967295"}};
    struct fp_batch_builder *b = NULL;
    Fleetpulse__V1__Batch *d;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    fp_assert(fp_batch_builder_new(&b) == 0);
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, NULL, 0, T0, NAN), -EINVAL);
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, NULL, 0, T0, INFINITY), -EINVAL);
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, NULL, 0, T0, -INFINITY), -EINVAL);
    check_int(fp_batch_builder_add(b, NULL, FP_METRIC_GAUGE, NULL, 0, T0, 1.0), -EINVAL);
    check_int(fp_batch_builder_samples(b), 0);
    check_int(fp_batch_builder_series(b), 0);
    /* Extremes that are finite are fine. */
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, NULL, 0, T0, 1.7976931348623157e308),
              0);
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, NULL, 0, T0 + 1, 4.9e-324), 0);
    check_int(fp_batch_builder_samples(b), 2);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &deflim);
    if (d != NULL) {
        check_double(d->series[0]->values[0], 1.7976931348623157e308);
        check_double(d->series[0]->values[1], 4.9e-324);
    }
    fp_batch_free(&d);
    free(buf);

    /* The largest numbers the fields hold go through exactly. */
    check_int(fp_batch_builder_set_info(b, good_numbers, 2), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &deflim);
    if (d != NULL && d->device_info != NULL) {
        check(d->device_info->memory_total_bytes == UINT64_MAX);
        check(d->device_info->cpu_count == UINT32_MAX);
    }
    fp_batch_free(&d);
    free(buf);

    for (size_t i = 0; i < ARRAY_SIZE(bad_numbers); i++) {
        r = fp_batch_builder_set_info(b, bad_numbers[i], 1);
        /* Bad numbers are refused when the info is set, so encoding never meets them. */
        if (r != -EINVAL)
            fprintf(stderr, "set_info(%s=\"%s\"):\n", bad_numbers[i][0].name,
                    bad_numbers[i][0].value);
        check_int(r, -EINVAL);
        if (r != 0)
            continue;
        /* Whatever the contract, no batch may go out carrying a made-up number. */
        buf = NULL;
        r = fp_batch_builder_encode(b, "dev-1", 1, 1, T0, 0, &buf, &len);
        /* Not reached while set_info refuses; if it ever accepts, no batch may carry a
         * made-up number ("-1" negated by strtoull, "4294967297" cut to 1 by a cast). */
        if (r == 0)
            fprintf(stderr, "encode accepted %s=\"%s\":\n", bad_numbers[i][0].name,
                    bad_numbers[i][0].value);
        check(r != 0);
        free(buf);
    }
    fp_batch_builder_destroy(&b);
}

/* --- refusals ---------------------------------------------------------------------------------- */

static void test_refuse_undecodable(void)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t text[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct fp_batch_builder *b = one_sample("m", NULL, 0, T0, 1.0);
    struct fp_batch_limits lim = deflim;
    uint8_t *buf;
    size_t len;

    expect_refused(garbage, sizeof(garbage), &deflim, FP_BATCH_E_SCHEMA, "decode failed");
    expect_refused(text, sizeof(text) - 1, &deflim, FP_BATCH_E_SCHEMA, "decode failed");

    /* The series block is the last field: cutting one byte leaves it short. */
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len - 1, &deflim, FP_BATCH_E_SCHEMA, "decode failed");
    /* An empty message decodes to all defaults, which has no schema_version. */
    expect_refused(buf, 0, &deflim, FP_BATCH_E_SCHEMA, "schema_version");

    /* Size: exactly the limit passes, one byte under it does not. */
    lim.max_message_bytes = len;
    {
        Fleetpulse__V1__Batch *d = decode_ok(buf, len, &lim);
        fp_batch_free(&d);
    }
    lim.max_message_bytes = len - 1;
    expect_refused(buf, len, &lim, FP_BATCH_E_TOO_LARGE, "bytes, limit");
    free(buf);
    fp_batch_builder_destroy(&b);
}

/* Fields this code does not know are skipped: a newer probe's additions do not break us. */
static void test_unknown_field(void)
{
    struct fp_batch_builder *b = one_sample("m", NULL, 0, T0, 4.25);
    Fleetpulse__V1__Batch *d;
    uint8_t *buf, *ext;
    size_t len;

    encode(b, "dev-1", 1, &buf, &len);
    ext = malloc(len + 3);
    fp_assert(ext != NULL);
    memcpy(ext, buf, len);
    /* field 100, varint, value 1 */
    ext[len] = 0xa0;
    ext[len + 1] = 0x06;
    ext[len + 2] = 0x01;
    d = decode_ok(ext, len + 3, &deflim);
    if (d != NULL) {
        fp_assert(d->n_series == 1 && d->series[0]->n_values == 1);
        check_double(d->series[0]->values[0], 4.25);
    }
    fp_batch_free(&d);
    free(ext);
    free(buf);
    fp_batch_builder_destroy(&b);
}

static void test_refuse_header(void)
{
    struct fp_batch_builder *b = one_sample("m", NULL, 0, T0, 1.0);
    struct hand h;
    char id[256];
    uint8_t *buf;
    size_t len;

    hand_init(&h);
    {
        Fleetpulse__V1__Batch *d;
        buf = hand_pack(&h, &len);
        d = decode_ok(buf, len, &deflim); /* the hand-built base is valid */
        fp_batch_free(&d);
        free(buf);
    }
    h.batch.schema_version = 0;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "schema_version missing");
    h.batch.schema_version = FP_SCHEMA_VERSION + 1;
    hand_refused(&h, FP_BATCH_E_VERSION, "schema_version 2 is newer");
    h.batch.schema_version = UINT32_MAX;
    hand_refused(&h, FP_BATCH_E_VERSION, "schema_version 4294967295");

    /* device_id */
    encode(b, "", 1, &buf, &len);
    expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "device_id missing");
    free(buf);
    {
        static const char *const bad[] = {"rack/7", "dev\x01", "dev\n", "dev\x7f", "a\"b", "a\\b"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
            encode(b, bad[i], 1, &buf, &len);
            expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "device_id");
            free(buf);
        }
    }
    /* "@" names fleetpulse's own components (the collector stores itself as "@collector"). */
    encode(b, "@collector", 1, &buf, &len);
    expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "may not start with '@'");
    free(buf);
    memset(id, 'd', 200);
    id[200] = '\0';
    encode(b, id, 1, &buf, &len);
    expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "device_id too long");
    free(buf);
    /* Boundary: max_device_id_bytes (128) passes, one more does not. */
    id[deflim.max_device_id_bytes] = '\0';
    encode(b, id, 1, &buf, &len);
    {
        Fleetpulse__V1__Batch *d = decode_ok(buf, len, &deflim);
        if (d != NULL)
            check_int(strlen(d->device_id), deflim.max_device_id_bytes);
        fp_batch_free(&d);
    }
    free(buf);
    id[deflim.max_device_id_bytes] = 'd';
    id[deflim.max_device_id_bytes + 1] = '\0';
    encode(b, id, 1, &buf, &len);
    expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "device_id too long");
    free(buf);
    /* UTF-8 is not a control character. */
    encode(b, "k\xc3\xa4se-01", 1, &buf, &len);
    {
        Fleetpulse__V1__Batch *d = decode_ok(buf, len, &deflim);
        fp_batch_free(&d);
    }
    free(buf);

    encode(b, "dev-1", 0, &buf, &len);
    expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "seq must start at 1");
    free(buf);
    fp_batch_builder_destroy(&b);
}

static void test_refuse_names(void)
{
    static const struct fp_label ok[] = {{"zone", "cpu0"}};
    static const struct fp_label dunder[] = {{"__x", "1"}};
    static const struct fp_label space[] = {{"a b", "1"}};
    static const struct fp_label empty[] = {{"", "1"}};
    static const struct fp_label device[] = {{"device", "other"}};
    static const struct fp_label dup[] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
    static const struct fp_label nl[] = {{"a", "line\nbreak"}};
    static const struct fp_label tab[] = {{"a", "x\ty"}};
    char long_value[600];
    struct fp_label lv[] = {{"a", long_value}};

    refuse_series("9abc", ok, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "series 0: invalid metric name");
    refuse_series("a-b", ok, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "invalid metric name");
    refuse_series("", ok, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "invalid metric name");
    refuse_series("a.b", ok, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "invalid metric name");

    refuse_series("m", dunder, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "series 0: invalid label name");
    refuse_series("m", space, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "invalid label name");
    refuse_series("m", empty, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "invalid label name");
    refuse_series("m", device, 1, T0, &deflim, FP_BATCH_E_SCHEMA,
                  "label \"device\" is reserved");
    refuse_series("m", dup, 3, T0, &deflim, FP_BATCH_E_SCHEMA, "duplicate label a");
    refuse_series("m", nl, 1, T0, &deflim, FP_BATCH_E_SCHEMA,
                  "label a: value too long or has control characters");
    refuse_series("m", tab, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "control characters");

    /* Label value length: max_value_bytes passes, one more does not. */
    memset(long_value, 'v', sizeof(long_value));
    long_value[deflim.max_value_bytes] = '\0';
    {
        struct fp_batch_builder *b = one_sample("m", lv, 1, T0, 1.0);
        Fleetpulse__V1__Batch *d;
        uint8_t *buf;
        size_t len;
        encode(b, "dev-1", 1, &buf, &len);
        d = decode_ok(buf, len, &deflim);
        if (d != NULL)
            check_int(strlen(d->series[0]->labels[0]->value), deflim.max_value_bytes);
        fp_batch_free(&d);
        free(buf);
        fp_batch_builder_destroy(&b);
    }
    long_value[deflim.max_value_bytes] = 'v';
    long_value[deflim.max_value_bytes + 1] = '\0';
    refuse_series("m", lv, 1, T0, &deflim, FP_BATCH_E_SCHEMA, "value too long");

    /* The reason names the offending block. */
    {
        struct fp_batch_builder *b = one_sample("good", ok, 1, T0, 1.0);
        uint8_t *buf;
        size_t len;
        check_int(fp_batch_builder_add(b, "also_good", FP_METRIC_GAUGE, NULL, 0, T0, 1.0), 0);
        check_int(fp_batch_builder_add(b, "bad-name", FP_METRIC_GAUGE, NULL, 0, T0, 1.0), 0);
        encode(b, "dev-1", 1, &buf, &len);
        expect_refused(buf, len, &deflim, FP_BATCH_E_SCHEMA, "series 2: invalid metric name");
        free(buf);
        fp_batch_builder_destroy(&b);
    }
}

static void test_refuse_samples(void)
{
    struct hand h;

    /* Timestamps and values of different lengths. */
    hand_init(&h);
    h.ts[1] = T0 + 1;
    h.blk.n_timestamps_ms = 2;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "series 0: 2 timestamps but 1 values");
    hand_init(&h);
    h.v[1] = 2.0;
    h.blk.n_values = 2;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "1 timestamps but 2 values");

    /* Non-finite values, which the builder would not let through. */
    hand_init(&h);
    h.v[0] = NAN;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "non-finite value");
    h.v[0] = -INFINITY;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "non-finite value");
    hand_init(&h);
    h.ts[1] = T0 + 1;
    h.v[1] = INFINITY; /* the second sample: every sample is checked */
    h.blk.n_timestamps_ms = h.blk.n_values = 2;
    hand_refused(&h, FP_BATCH_E_SCHEMA, "non-finite value");

    /* Timestamps: 5 ms after the epoch (a clock that never synced), year 2200, and the edges of
     * [2000-01-01, 2100-01-01). */
    refuse_series("m", NULL, 0, 5, &deflim, FP_BATCH_E_SCHEMA, "timestamp 5 ms out of range");
    refuse_series("m", NULL, 0, INT64_C(7258118400000), &deflim, FP_BATCH_E_SCHEMA,
                  "timestamp 7258118400000 ms out of range");
    refuse_series("m", NULL, 0, -1, &deflim, FP_BATCH_E_SCHEMA, "timestamp -1 ms out of range");
    refuse_series("m", NULL, 0, TS_2000 - 1, &deflim, FP_BATCH_E_SCHEMA, "out of range");
    refuse_series("m", NULL, 0, TS_2100, &deflim, FP_BATCH_E_SCHEMA, "out of range");
    hand_init(&h);
    h.ts[0] = TS_2000;
    h.ts[1] = TS_2100 - 1;
    h.v[1] = 2.0;
    h.blk.n_timestamps_ms = h.blk.n_values = 2;
    {
        size_t len;
        uint8_t *buf = hand_pack(&h, &len);
        Fleetpulse__V1__Batch *d = decode_ok(buf, len, &deflim);
        if (d != NULL) {
            check_int(d->series[0]->timestamps_ms[0], TS_2000);
            check_int(d->series[0]->timestamps_ms[1], TS_2100 - 1);
        }
        fp_batch_free(&d);
        free(buf);
    }
}

/* Count limits, each with a small custom limit: at the limit passes, one over is TOO_LARGE. */
static void test_refuse_counts(void)
{
    static const struct fp_label two[] = {{"a", "1"}, {"b", "2"}};
    static const struct fp_label three[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
    struct fp_batch_limits lim = deflim;
    struct fp_batch_builder *b = NULL;
    Fleetpulse__V1__Batch *d;
    uint8_t *buf;
    size_t len;

    fp_assert(fp_batch_builder_new(&b) == 0);

    /* series */
    lim.max_series = 2;
    check_int(fp_batch_builder_add(b, "m1", FP_METRIC_GAUGE, NULL, 0, T0, 1), 0);
    check_int(fp_batch_builder_add(b, "m2", FP_METRIC_GAUGE, NULL, 0, T0, 1), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &lim);
    fp_batch_free(&d);
    free(buf);
    check_int(fp_batch_builder_add(b, "m3", FP_METRIC_GAUGE, NULL, 0, T0, 1), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_TOO_LARGE, "3 series, limit 2");
    free(buf);
    lim = deflim;

    /* labels per series */
    lim.max_labels = 2;
    refuse_series("m", three, 3, T0, &lim, FP_BATCH_E_TOO_LARGE, "series 0: 3 labels, limit 2");
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add(b, "m", FP_METRIC_GAUGE, two, 2, T0, 1), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &lim);
    fp_batch_free(&d);
    free(buf);
    lim = deflim;

    /* samples, all series together */
    lim.max_samples = 3;
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add(b, "m1", FP_METRIC_GAUGE, NULL, 0, T0, 1), 0);
    check_int(fp_batch_builder_add(b, "m1", FP_METRIC_GAUGE, NULL, 0, T0 + 1, 2), 0);
    check_int(fp_batch_builder_add(b, "m2", FP_METRIC_GAUGE, NULL, 0, T0, 3), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &lim);
    fp_batch_free(&d);
    free(buf);
    check_int(fp_batch_builder_add(b, "m2", FP_METRIC_GAUGE, NULL, 0, T0 + 1, 4), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_TOO_LARGE, "more than 3 samples");
    free(buf);
    lim = deflim;

    /* events */
    lim.max_events = 1;
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add_event(b, T0, "canary", FP_SEVERITY_INFO, "ok", NULL, 0), 0);
    encode(b, "dev-1", 1, &buf, &len);
    d = decode_ok(buf, len, &lim);
    fp_batch_free(&d);
    free(buf);
    check_int(fp_batch_builder_add_event(b, T0, "canary", FP_SEVERITY_INFO, "ok", NULL, 0), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_TOO_LARGE, "2 events, limit 1");
    free(buf);
    lim = deflim;

    /* event content */
    lim.max_event_bytes = 4;
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add_event(b, T0, "canary", FP_SEVERITY_INFO, "12345", NULL, 0), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_SCHEMA, "event 0: bad kind or message");
    free(buf);
    lim = deflim;
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add_event(b, T0, "can\nary", FP_SEVERITY_INFO, "", NULL, 0), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_SCHEMA, "event 0: bad kind or message");
    free(buf);
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add_event(b, T0, "canary", FP_SEVERITY_INFO, "", three + 2, 1), 0);
    check_int(fp_batch_builder_add_event(b, T0, "canary", FP_SEVERITY_INFO, "",
                                         (const struct fp_label[]){{"__bad", "1"}}, 1),
              0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_SCHEMA, "event: invalid label name");
    free(buf);

    /* device info */
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_set_info(b, (const struct fp_label[]){{"hostname", "edge\x01"}}, 1),
              0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_SCHEMA, "device_info.hostname invalid");
    free(buf);
    lim.max_labels = 2;
    check_int(fp_batch_builder_set_info(b, three, 3), 0); /* unknown names become tags */
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_TOO_LARGE, "device_info: too many tags");
    free(buf);
    lim = deflim;
    check_int(fp_batch_builder_set_info(b, (const struct fp_label[]){{"tag.device", "x"}}, 1), 0);
    encode(b, "dev-1", 1, &buf, &len);
    expect_refused(buf, len, &lim, FP_BATCH_E_SCHEMA, "device_info: label \"device\" is reserved");
    free(buf);

    fp_batch_builder_destroy(&b);
}

/* A small err buffer still gets a terminated (truncated) reason. */
static void test_small_err(void)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    Fleetpulse__V1__Batch *d = NULL;
    char err[8];

    memset(err, 'x', sizeof(err));
    check_int(fp_batch_decode(garbage, sizeof(garbage), &deflim, &d, err, sizeof(err)),
              FP_BATCH_E_SCHEMA);
    check_int(strlen(err), sizeof(err) - 1);
    check(d == NULL);
}

/* --- acks -------------------------------------------------------------------------------------- */

static void test_acks(void)
{
    Fleetpulse__V1__Ack *a = NULL;
    uint8_t *buf;
    size_t len;

    fp_assert(fp_ack_encode(UINT64_C(0xdeadbeefcafe), 42,
                            FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE, "message of 9 bytes",
                            UINT64_C(1) << 40, 17, &buf, &len) == 0);
    fp_assert(fp_ack_decode(buf, len, &a) == 0);
    check(a->epoch == UINT64_C(0xdeadbeefcafe));
    check_int(a->seq, 42);
    check_int(a->status, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE);
    check_str(a->detail, "message of 9 bytes");
    check(a->samples_accepted == UINT64_C(1) << 40);
    check_int(a->samples_refused, 17);
    fleetpulse__v1__ack__free_unpacked(a, NULL);
    free(buf);

    /* NULL detail goes out empty; zero counters survive. */
    fp_assert(fp_ack_encode(1, 1, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK, NULL, 0, 0, &buf,
                            &len) == 0);
    fp_assert(fp_ack_decode(buf, len, &a) == 0);
    check_int(a->epoch, 1);
    check_int(a->seq, 1);
    check_int(a->status, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK);
    check_str(a->detail, "");
    check_int(a->samples_accepted, 0);
    check_int(a->samples_refused, 0);
    fleetpulse__v1__ack__free_unpacked(a, NULL);
    free(buf);

    {
        static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
        a = NULL;
        check_int(fp_ack_decode(garbage, sizeof(garbage), &a), -EBADMSG);
        check(a == NULL);
    }

    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK), "ok");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE), "duplicate");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA),
              "bad_schema");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNAUTHORIZED),
              "unauthorized");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE), "too_large");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OVER_CARDINALITY),
              "over_cardinality");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION),
              "unsupported_version");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY), "retry");
    check_str(fp_ack_status_name(FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSPECIFIED), "unknown");
    check_str(fp_ack_status_name((Fleetpulse__V1__AckStatus)99), "unknown");

    check_int(fp_batch_error_to_ack(0), FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK);
    check_int(fp_batch_error_to_ack(FP_BATCH_E_SCHEMA),
              FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA);
    check_int(fp_batch_error_to_ack(FP_BATCH_E_TOO_LARGE),
              FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE);
    check_int(fp_batch_error_to_ack(FP_BATCH_E_VERSION),
              FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION);
    /* Our own failures (out of memory) are transient: the probe should resend. */
    check_int(fp_batch_error_to_ack(-ENOMEM), FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY);
}

/* --- name grammars ----------------------------------------------------------------------------- */

static void test_names(void)
{
    check(fp_metric_name_valid("a", 200));
    check(fp_metric_name_valid("_", 200));
    check(fp_metric_name_valid(":", 200));
    check(fp_metric_name_valid("A", 200));
    check(fp_metric_name_valid("job:tokens_per_second:rate5m", 200));
    check(fp_metric_name_valid("__name", 200)); /* only label names reserve "__" */
    check(fp_metric_name_valid("a9", 200));
    check(!fp_metric_name_valid(NULL, 200));
    check(!fp_metric_name_valid("", 200));
    check(!fp_metric_name_valid("9abc", 200));
    check(!fp_metric_name_valid("a-b", 200));
    check(!fp_metric_name_valid("a b", 200));
    check(!fp_metric_name_valid("a.b", 200));
    check(!fp_metric_name_valid("a\n", 200));
    check(!fp_metric_name_valid("caf\xc3\xa9", 200));
    /* max is in bytes, inclusive */
    check(fp_metric_name_valid("abc", 3));
    check(!fp_metric_name_valid("abcd", 3));
    check(!fp_metric_name_valid("a", 0));

    check(fp_label_name_valid("a", 200));
    check(fp_label_name_valid("_", 200));
    check(fp_label_name_valid("_a", 200));
    check(fp_label_name_valid("a__b", 200));
    check(fp_label_name_valid("Zone_9", 200));
    check(!fp_label_name_valid(NULL, 200));
    check(!fp_label_name_valid("", 200));
    check(!fp_label_name_valid("__", 200));
    check(!fp_label_name_valid("__x", 200));
    check(!fp_label_name_valid("9a", 200));
    check(!fp_label_name_valid("a:b", 200)); /* colons are for metric names only */
    check(!fp_label_name_valid("a b", 200));
    check(!fp_label_name_valid("a-b", 200));
    check(!fp_label_name_valid("tag.rack", 200));
    check(fp_label_name_valid("abc", 3));
    check(!fp_label_name_valid("abcd", 3));
    /* "device" is grammatical; fp_batch_decode reserves it separately. */
    check(fp_label_name_valid("device", 200));
}

int main(void)
{
    fp_batch_limits_default(&deflim);
    /* The DESIGN defaults the tests lean on. */
    check_int(deflim.max_device_id_bytes, 128);
    check_int(deflim.max_value_bytes, 512);

    test_roundtrip();
    test_many_series();
    test_arena();
    test_info_tags();
    test_builder_refusals();
    test_refuse_undecodable();
    test_unknown_field();
    test_refuse_header();
    test_refuse_names();
    test_refuse_samples();
    test_refuse_counts();
    test_small_err();
    test_acks();
    test_names();
    fp_test_end();
}
