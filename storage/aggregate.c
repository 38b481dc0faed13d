/* Aggregated reads over the public read API (see aggregate.h for the semantics).
 *
 * How: select the series, read each one's labels once and give it a group key (the values of the
 * group-by labels, each followed by a NUL, so that comparing keys bytewise compares the value
 * tuples in `by` order). Sorting the series by key makes each group a run, already in output
 * order. Then, group by group, the buckets are processed in windows of W buckets: reset W
 * accumulators, read every series of the group over the window's time span (one seek and a
 * sequential scan each), and turn each non-empty accumulator into a point.
 *
 * Why windows: a group's buckets would otherwise need all their accumulators at once, and for a
 * quantile each accumulator is a sketch (up to 32 KiB). A window bounds that memory whatever the
 * bucket count, at the price of one seek per series and window; a bucket never straddles two
 * windows, so per-bucket state (a series' previous sample for increase) stays inside one.
 *
 * Rejected: reading each series once over the whole range and scattering its samples into every
 * group's buckets (needs all groups' accumulators at once: G * B of them); exact quantiles from
 * sorted raw values (exact today, but the rollups can only merge sketches, and the answer must
 * not change when the implementation moves onto them).
 *
 * Invariant: a group's series are read in ascending id order and each series oldest first, but
 * no result depends on the order series are read in (last breaks ties by value), so rollups can
 * merge in any order. */
#include "aggregate.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"
#include "store.h"

/* Buckets per window. 4096 plain accumulators are 200 KiB; 256 sketches stay under 8 MiB even
 * if every one reached FP_SKETCH_MAX_BINS, and a few KiB each is typical. */
#define WINDOW_PLAIN 4096
#define WINDOW_QUANTILE 256

/* A matched series and its group key. */
struct series_ref {
    uint64_t id;
    const char *device; /**< its device label, from fp_store_series_get (valid with the reader) */
    char *key;      /**< value\0value\0... per group-by name, "" for a missing label */
    size_t key_len; /**< bytes of key, NULs included */
};

/* One bucket of the current window. */
struct acc {
    uint64_t count;  /**< samples seen (quantile: finite ones, added to the sketch) */
    double sum;
    double min;
    double max;
    int64_t last_ts; /**< time of the newest sample */
    double last;     /**< its value */
    double increase; /**< counter increase, reset-corrected, summed over series */
};

/* State of one window's scan, passed to the read callback. */
struct scan {
    const struct fp_agg_query *q;
    uint64_t first;   /**< bucket index of accs[0] */
    uint64_t n;       /**< buckets in this window */
    struct acc *accs; /**< the window's accumulators */
    fp_sketch **sketches; /**< FP_AGG_QUANTILE: one per accumulator, created on first use */
    fp_point_fn add;  /**< the read callback for q->fn */
    fp_block_fn add_blk; /**< its run-at-a-time form, where there is one (else NULL) */
    struct rollup_scan *rollups; /**< when whole hours may come from stored rollups */
    /* The bucket of the latest sample: cur_k, covering [cur_start, cur_end). */
    uint64_t cur_k;
    int64_t cur_start;
    int64_t cur_end;
    /* Per series, for increase: its previous sample in this window. */
    bool have_prev;
    uint64_t prev_bucket;
    double prev;
};

/* Start of bucket k (k < number of buckets, so it lies in [from, to) and cannot overflow). The
 * arithmetic is unsigned: from may be negative and the span up to 2^64. */
static int64_t bucket_start(const struct fp_agg_query *q, uint64_t k)
{
    return (int64_t)((uint64_t)q->from_ms + k * (uint64_t)q->step_ms);
}

/* End of bucket k, exclusive: one step later, or to_ms for the clipped last bucket. */
static int64_t bucket_end(const struct fp_agg_query *q, uint64_t k)
{
    int64_t start = bucket_start(q, k);

    if ((uint64_t)q->to_ms - (uint64_t)start <= (uint64_t)q->step_ms)
        return q->to_ms;
    return start + q->step_ms;
}

/* The accumulator of the bucket holding ts_ms, and its index in *ret_k; NULL when ts_ms lies
 * outside the window (can't happen: we ask for the window's span only, but a wrong index would
 * write anywhere). A series' samples come in time order, several per bucket, so the bucket of
 * the previous sample is remembered and the division is done only when a sample leaves it. */
static struct acc *bucket_of(struct scan *sc, int64_t ts_ms, uint64_t *ret_k)
{
    if (ts_ms < sc->cur_start || ts_ms >= sc->cur_end) {
        const struct fp_agg_query *q = sc->q;
        uint64_t step = (uint64_t)q->step_ms, k;

        /* Usually the sample has moved on to the next bucket: no division then. */
        if (sc->cur_end > sc->cur_start &&
            (uint64_t)ts_ms - ((uint64_t)sc->cur_start + step) < step)
            k = sc->cur_k + 1;
        else if (ts_ms < q->from_ms)
            return NULL;
        else
            k = ((uint64_t)ts_ms - (uint64_t)q->from_ms) / step;
        if (k < sc->first || k - sc->first >= sc->n)
            return NULL;
        sc->cur_k = k;
        sc->cur_start = bucket_start(q, k);
        sc->cur_end = bucket_end(q, k);
    }
    *ret_k = sc->cur_k;
    return &sc->accs[sc->cur_k - sc->first];
}

/* Folds a sample into min, max and last. */
static void acc_extremes(struct acc *a, int64_t ts_ms, double value)
{
    if (a->count == 0) {
        a->min = a->max = a->last = value;
        a->last_ts = ts_ms;
        return;
    }
    if (value < a->min)
        a->min = value;
    if (value > a->max)
        a->max = value;
    /* Equal times in two series: the larger value, so the answer does not depend on which
     * series (or rollup) is read first. */
    if (ts_ms > a->last_ts || (ts_ms == a->last_ts && value > a->last)) {
        a->last_ts = ts_ms;
        a->last = value;
    }
}

/* One read callback per kind of reduction, chosen once per query (add_fn), so that each sample
 * costs only what its reduction reads back in acc_value: avg, sum and count keep count and sum;
 * min, max and last the extremes; increase and rate the reset-corrected increase; a quantile
 * its sketch and the extremes that clamp it. Every one keeps count, which says a bucket has
 * samples. NaN carries no value for any of them. */
static int add_sum(void *userdata, int64_t ts_ms, double value)
{
    struct scan *sc = userdata;
    uint64_t k;
    struct acc *a = bucket_of(sc, ts_ms, &k);

    if (a == NULL)
        return -EIO;
    if (isnan(value))
        return 0;
    a->sum += value;
    a->count++;
    return 0;
}

/* add_sum over a run: the bucket is looked up only when a sample leaves it, and the sums of a
 * bucket's samples are kept in registers meanwhile. The same additions in the same order as
 * add_sum, so the answers are bit-identical. */
static int add_sum_block(void *userdata, const int64_t *ts, const double *v, size_t n)
{
    struct scan *sc = userdata;
    size_t i = 0;

    while (i < n) {
        uint64_t k;
        struct acc *a = bucket_of(sc, ts[i], &k);
        int64_t end = sc->cur_end;
        double sum;
        uint64_t count;

        if (a == NULL)
            return -EIO;
        sum = a->sum;
        count = a->count;
        for (; i < n && ts[i] < end; i++) {
            if (isnan(v[i]))
                continue;
            sum += v[i];
            count++;
        }
        a->sum = sum;
        a->count = count;
    }
    return 0;
}

static int add_extremes(void *userdata, int64_t ts_ms, double value)
{
    struct scan *sc = userdata;
    uint64_t k;
    struct acc *a = bucket_of(sc, ts_ms, &k);

    if (a == NULL)
        return -EIO;
    if (isnan(value))
        return 0;
    acc_extremes(a, ts_ms, value);
    a->count++;
    return 0;
}

static int add_increase(void *userdata, int64_t ts_ms, double value)
{
    struct scan *sc = userdata;
    uint64_t k;
    struct acc *a = bucket_of(sc, ts_ms, &k);

    if (a == NULL)
        return -EIO;
    if (isnan(value))
        return 0;
    if (sc->have_prev && sc->prev_bucket == k)
        a->increase += value >= sc->prev ? value - sc->prev : value;
    sc->have_prev = true;
    sc->prev_bucket = k;
    sc->prev = value;
    a->count++;
    return 0;
}

static int add_quantile(void *userdata, int64_t ts_ms, double value)
{
    struct scan *sc = userdata;
    uint64_t k;
    struct acc *a = bucket_of(sc, ts_ms, &k);
    fp_sketch **sketch;
    int r;

    if (a == NULL)
        return -EIO;
    if (!isfinite(value)) /* NaN, and +-Inf, which the sketch cannot hold */
        return 0;
    sketch = &sc->sketches[k - sc->first];
    if (*sketch == NULL) {
        r = fp_sketch_new(sketch);
        if (r < 0)
            return r;
    }
    r = fp_sketch_add(*sketch, value);
    if (r != 0)
        return r < 0 ? r : -EINVAL; /* finite values are never refused */
    acc_extremes(a, ts_ms, value);
    a->count++;
    return 0;
}

static fp_point_fn add_fn(enum fp_agg_fn fn)
{
    switch (fn) {
    case FP_AGG_AVG:
    case FP_AGG_SUM:
    case FP_AGG_COUNT:
        return add_sum;
    case FP_AGG_MIN:
    case FP_AGG_MAX:
    case FP_AGG_LAST:
        return add_extremes;
    case FP_AGG_RATE:
    case FP_AGG_INCREASE:
        return add_increase;
    case FP_AGG_QUANTILE:
        return add_quantile;
    }
    return NULL; /* can't happen: check_query refused it */
}

/* The value of a non-empty accumulator for bucket k. Returns 0 or -errno. */
static int acc_value(const struct fp_agg_query *q, uint64_t k, const struct acc *a,
                     const fp_sketch *sketch, double *ret_value)
{
    switch (q->fn) {
    case FP_AGG_AVG:
        *ret_value = a->sum / (double)a->count;
        return 0;
    case FP_AGG_MIN:
        *ret_value = a->min;
        return 0;
    case FP_AGG_MAX:
        *ret_value = a->max;
        return 0;
    case FP_AGG_SUM:
        *ret_value = a->sum;
        return 0;
    case FP_AGG_COUNT:
        *ret_value = (double)a->count;
        return 0;
    case FP_AGG_LAST:
        *ret_value = a->last;
        return 0;
    case FP_AGG_INCREASE:
        *ret_value = a->increase;
        return 0;
    case FP_AGG_RATE:
        *ret_value = a->increase / ((double)(bucket_end(q, k) - bucket_start(q, k)) / 1000.0);
        return 0;
    case FP_AGG_QUANTILE:
        /* Ranks 0 and n - 1 are the minimum and maximum, which we hold exactly (as rollups
         * will); for the rest, the true quantile lies in [min, max], so clamping only brings the
         * estimate closer, and makes every quantile of a single value exact. */
        if (q->q == 0.0 || q->q == 1.0) {
            *ret_value = q->q == 0.0 ? a->min : a->max;
            return 0;
        }
        if (fp_sketch_quantile(sketch, q->q, ret_value) != 0)
            return -EINVAL; /* can't happen: the bucket has samples and q was checked */
        *ret_value = fmin(fmax(*ret_value, a->min), a->max);
        return 0;
    }
    return -EINVAL;
}

/* Appends a point to g, refusing once the result holds max_points. */
static int push_point(struct fp_agg_result *res, struct fp_agg_group *g, size_t *cap,
                      size_t max_points, int64_t ts_ms, double value)
{
    if (res->n_points == max_points)
        return FP_AGG_E_TOO_MANY;
    if (g->n_points == *cap) {
        size_t n = *cap ? 2 * *cap : 64;
        struct fp_agg_point *p = realloc(g->points, n * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        g->points = p;
        *cap = n;
    }
    g->points[g->n_points++] = (struct fp_agg_point){ts_ms, value};
    res->n_points++;
    return 0;
}

/* The group key of one series: for each group-by name its value ("" when absent), NUL-ended.
 * Returns a new string (free()) and its length in *ret_len, or NULL when out of memory. */
static char *group_key(const struct fp_agg_query *q, const struct fp_series_desc *d,
                       size_t *ret_len)
{
    const char *vals[FP_AGG_BY_MAX];
    size_t len = 0;
    char *key, *p;

    for (size_t i = 0; i < q->n_by; i++) {
        vals[i] = "";
        if (strcmp(q->by[i], "__name__") == 0)
            vals[i] = d->metric;
        for (size_t j = 0; j < d->n_labels; j++)
            if (strcmp(d->labels[j].name, q->by[i]) == 0)
                vals[i] = d->labels[j].value;
        len += strlen(vals[i]) + 1;
    }
    p = key = malloc(len ? len : 1);
    if (key == NULL)
        return NULL;
    for (size_t i = 0; i < q->n_by; i++) {
        size_t n = strlen(vals[i]) + 1;
        memcpy(p, vals[i], n);
        p += n;
    }
    *ret_len = len;
    return key;
}

static int cmp_series_ref(const void *a, const void *b)
{
    const struct series_ref *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);

    if (c != 0)
        return c;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Fills g's labels from a group key: the names from q->by, the non-empty values from key. One
 * allocation holds the array and, after it, every string, so that free(labels) releases all.
 * Returns 0 or -ENOMEM. */
static int group_labels(const struct fp_agg_query *q, const char *key, size_t key_len,
                        struct fp_agg_group *g)
{
    size_t n = 0, bytes = key_len;
    const char *v = key;
    char *s;

    for (size_t i = 0; i < q->n_by; i++, v += strlen(v) + 1) {
        if (*v == '\0')
            continue;
        n++;
        bytes += strlen(q->by[i]) + 1;
    }
    if (n == 0)
        return 0;
    g->labels = malloc(n * sizeof(*g->labels) + bytes);
    if (g->labels == NULL)
        return -ENOMEM;
    s = (char *)(g->labels + n);
    v = key;
    for (size_t i = 0; i < q->n_by; i++, v += strlen(v) + 1) {
        size_t ln = strlen(q->by[i]) + 1, lv = strlen(v) + 1;
        if (lv == 1)
            continue;
        memcpy(s, q->by[i], ln);
        memcpy(s + ln, v, lv);
        g->labels[g->n_labels++] = (struct fp_label){s, s + ln};
        s += ln + lv;
    }
    return 0;
}

static int check_query(const struct fp_agg_query *q, uint64_t *ret_buckets)
{
    uint64_t span;

    if (q->step_ms <= 0 || q->fn < FP_AGG_AVG || q->fn > FP_AGG_QUANTILE || q->n_by > FP_AGG_BY_MAX)
        return -EINVAL;
    if (q->fn == FP_AGG_QUANTILE && !(q->q >= 0.0 && q->q <= 1.0))
        return -EINVAL;
    if (q->n_matchers > 0 && q->matchers == NULL)
        return -EINVAL;
    for (size_t i = 0; i < q->n_by; i++) {
        if (q->by[i] == NULL)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(q->by[i], q->by[j]) == 0)
                return -EINVAL;
    }
    if (q->from_ms >= q->to_ms) {
        *ret_buckets = 0;
        return 0;
    }
    span = (uint64_t)q->to_ms - (uint64_t)q->from_ms;
    *ret_buckets = span / (uint64_t)q->step_ms + (span % (uint64_t)q->step_ms != 0);
    return *ret_buckets > FP_AGG_BUCKETS_MAX ? -ERANGE : 0;
}

/* --- stored one-hour rollups ---------------------------------------------------------------- */

/* Whether q's buckets are whole hours on hour boundaries and its reduction can be rebuilt from
 * count, sum, min, max and a sketch: then each hour a series has a rollup for is merged from
 * it, and only the rest is read raw. last, increase and rate need the samples themselves. */
static bool rollups_usable(const struct fp_agg_query *q)
{
    if (q->step_ms % FP_ROLLUP_MS != 0 || q->from_ms % FP_ROLLUP_MS != 0)
        return false;
    switch (q->fn) {
    case FP_AGG_AVG:
    case FP_AGG_SUM:
    case FP_AGG_COUNT:
    case FP_AGG_MIN:
    case FP_AGG_MAX:
    case FP_AGG_QUANTILE:
        return true;
    default:
        return false;
    }
}

/* A raw gap still to read: [from, to], inclusive as fp_store_read_range takes it. */
struct gap {
    int64_t from, to;
};

struct rollup_scan {
    struct scan *sc;
    int64_t lo, hi;   /**< the window's span, [lo, hi) */
    int64_t pos;      /**< everything before pos is accounted for */
    struct gap *gaps; /**< raw reads still to do, in time order */
    size_t n_gaps, cap;
};

static int gap_push(struct rollup_scan *rs, int64_t from, int64_t to)
{
    if (from > to)
        return 0;
    if (rs->n_gaps > 0 && rs->gaps[rs->n_gaps - 1].to + 1 == from) {
        rs->gaps[rs->n_gaps - 1].to = to;
        return 0;
    }
    if (rs->n_gaps == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct gap *g = realloc(rs->gaps, cap * sizeof(*g));
        if (g == NULL)
            return -ENOMEM;
        rs->gaps = g;
        rs->cap = cap;
    }
    rs->gaps[rs->n_gaps++] = (struct gap){from, to};
    return 0;
}

/* Merges one stored hour into its bucket, or leaves the hour to the raw read when the record
 * cannot stand for it (clipped by the range, or +-Inf for a quantile, which the sketch lacks). */
static int merge_rollup(void *userdata, const struct fp_rollup *ro)
{
    struct rollup_scan *rs = userdata;
    struct scan *sc = rs->sc;
    const struct fp_agg_query *q = sc->q;
    int64_t end = ro->start_ms + FP_ROLLUP_MS;
    uint64_t k;
    struct acc *a;
    int r;

    if (ro->start_ms < rs->lo || end > rs->hi)
        return 0;
    if (q->fn == FP_AGG_QUANTILE && ro->count > 0 && !(isfinite(ro->min) && isfinite(ro->max)))
        return 0;
    a = bucket_of(sc, ro->start_ms, &k);
    if (a == NULL)
        return 0;
    r = gap_push(rs, rs->pos, ro->start_ms - 1);
    if (r == 0 && !ro->complete)
        r = gap_push(rs, ro->through_ms + 1, end - 1);
    if (r != 0)
        return r;
    rs->pos = end;
    if (ro->count == 0)
        return 0;
    if (q->fn == FP_AGG_QUANTILE) {
        fp_sketch **sketch = &sc->sketches[k - sc->first];
        if (*sketch == NULL && (r = fp_sketch_new(sketch)) < 0)
            return r;
        r = fp_sketch_merge_encoded(*sketch, ro->sketch, ro->sketch_len);
        if (r != 0)
            return r < 0 ? r : -EIO;
    }
    if (q->fn == FP_AGG_AVG || q->fn == FP_AGG_SUM || q->fn == FP_AGG_COUNT) {
        a->sum += ro->sum;
    } else if (a->count == 0) { /* min, max, and the extremes that clamp a quantile */
        a->min = ro->min;
        a->max = ro->max;
    } else {
        a->min = ro->min < a->min ? ro->min : a->min;
        a->max = ro->max > a->max ? ro->max : a->max;
    }
    a->count += ro->count;
    return 0;
}

/* Reads series id over [lo, hi) through its stored rollups and the raw samples they lack. */
static int read_with_rollups(struct fp_store_reader *rd, uint64_t id, int64_t lo, int64_t hi,
                             struct scan *sc, struct rollup_scan *rs)
{
    int r;

    rs->sc = sc;
    rs->lo = lo;
    rs->hi = hi;
    rs->pos = lo;
    rs->n_gaps = 0;
    r = fp_store_read_rollups(rd, id, lo, hi, merge_rollup, rs);
    if (r == 0)
        r = gap_push(rs, rs->pos, hi - 1);
    for (size_t i = 0; r == 0 && i < rs->n_gaps; i++)
        r = sc->add_blk != NULL
                ? fp_store_read_range_blocks(rd, id, rs->gaps[i].from, rs->gaps[i].to, sc->add_blk,
                                             sc)
                : fp_store_read_range(rd, id, rs->gaps[i].from, rs->gaps[i].to, sc->add, sc);
    return r;
}

/* Computes one group (refs[0..n)) into g, window by window. */
static int aggregate_group(struct fp_store_reader *rd, const struct fp_agg_query *q,
                           uint64_t n_buckets, const struct series_ref *refs, size_t n,
                           struct scan *sc, size_t window, struct fp_agg_result *res,
                           struct fp_agg_group *g)
{
    size_t cap = 0;
    int r;

    for (uint64_t w0 = 0; w0 < n_buckets; w0 += window) {
        uint64_t w1 = n_buckets - w0 < window ? n_buckets : w0 + window;

        memset(sc->accs, 0, (size_t)(w1 - w0) * sizeof(*sc->accs));
        for (size_t i = 0; sc->sketches != NULL && i < w1 - w0; i++)
            if (sc->sketches[i] != NULL)
                fp_sketch_reset(sc->sketches[i]);
        sc->first = w0;
        sc->n = w1 - w0;
        /* An empty span: the first sample looks its bucket up. */
        sc->cur_start = INT64_MAX;
        sc->cur_end = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            sc->have_prev = false;
            if (sc->rollups != NULL)
                r = read_with_rollups(rd, refs[i].id, bucket_start(q, w0), bucket_end(q, w1 - 1),
                                      sc, sc->rollups);
            else if (sc->add_blk != NULL)
                r = fp_store_read_device_blocks(rd, refs[i].id, refs[i].device,
                                                bucket_start(q, w0), bucket_end(q, w1 - 1) - 1,
                                                sc->add_blk, sc);
            else
                r = fp_store_read_range(rd, refs[i].id, bucket_start(q, w0),
                                        bucket_end(q, w1 - 1) - 1, sc->add, sc);
            if (r != 0)
                return r;
        }
        for (uint64_t k = w0; k < w1; k++) {
            const struct acc *a = &sc->accs[k - w0];
            double v;

            if (a->count == 0)
                continue;
            r = acc_value(q, k, a, sc->sketches ? sc->sketches[k - w0] : NULL, &v);
            r = r < 0 ? r : push_point(res, g, &cap, q->max_points, bucket_start(q, k), v);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

int fp_store_aggregate(struct fp_store_reader *rd, const struct fp_agg_query *q,
                       struct fp_agg_result **ret)
{
    struct fp_agg_result *res = NULL;
    struct series_ref *refs = NULL;
    struct scan sc = {.q = q, .add = add_fn(q->fn)};
    if (sc.add == add_sum)
        sc.add_blk = add_sum_block;
    struct rollup_scan rs = {0};
    uint64_t *ids = NULL, n_buckets;
    size_t n_ids = 0, n_refs = 0, window = 0;
    int r;

    r = check_query(q, &n_buckets);
    if (r < 0)
        return r;
    res = calloc(1, sizeof(*res));
    if (res == NULL)
        return -ENOMEM;
    r = fp_store_select(rd, q->matchers, q->n_matchers, &ids, &n_ids);
    if (r != 0 || n_ids == 0 || n_buckets == 0)
        goto out;

    refs = calloc(n_ids, sizeof(*refs));
    if (refs == NULL) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_ids; i++) {
        struct fp_series_desc d;

        r = fp_store_series_get(rd, ids[i], &d);
        if (r == FP_STORE_E_NOTFOUND)
            continue; /* can't happen inside one snapshot; nothing to read either way */
        if (r != 0)
            goto out;
        refs[n_refs].id = ids[i];
        refs[n_refs].device = NULL;
        for (size_t j = 0; j < d.n_labels && refs[n_refs].device == NULL; j++)
            if (strcmp(d.labels[j].name, "device") == 0)
                refs[n_refs].device = d.labels[j].value;
        refs[n_refs].key = group_key(q, &d, &refs[n_refs].key_len);
        if (refs[n_refs].key == NULL) {
            r = -ENOMEM;
            goto out;
        }
        n_refs++;
    }
    r = 0;
    if (n_refs > 1) /* qsort on an empty (possibly NULL) array is undefined */
        qsort(refs, n_refs, sizeof(*refs), cmp_series_ref);

    /* At most one group per series: the groups array never grows. */
    res->groups = calloc(n_refs ? n_refs : 1, sizeof(*res->groups));
    window = q->fn == FP_AGG_QUANTILE ? WINDOW_QUANTILE : WINDOW_PLAIN;
    if (n_buckets < window)
        window = (size_t)n_buckets;
    sc.accs = calloc(window, sizeof(*sc.accs));
    if (q->fn == FP_AGG_QUANTILE)
        sc.sketches = calloc(window, sizeof(*sc.sketches));
    if (res->groups == NULL || sc.accs == NULL ||
        (q->fn == FP_AGG_QUANTILE && sc.sketches == NULL)) {
        r = -ENOMEM;
        goto out;
    }

    if (rollups_usable(q))
        sc.rollups = &rs;
    for (size_t i = 0, run; i < n_refs; i += run) {
        struct fp_agg_group *g = &res->groups[res->n_groups];

        for (run = 1; i + run < n_refs; run++)
            if (refs[i].key_len != refs[i + run].key_len ||
                memcmp(refs[i].key, refs[i + run].key, refs[i].key_len) != 0)
                break;
        /* Counted before filling, so a failure below still frees what g holds. */
        res->n_groups++;
        r = aggregate_group(rd, q, n_buckets, &refs[i], run, &sc, window, res, g);
        if (r == 0 && g->n_points > 0)
            r = group_labels(q, refs[i].key, refs[i].key_len, g);
        if (r != 0)
            goto out;
        if (g->n_points == 0) {
            free(g->points);
            memset(g, 0, sizeof(*g));
            res->n_groups--;
        }
    }

out:
    free(rs.gaps);
    for (size_t i = 0; sc.sketches != NULL && i < window; i++)
        fp_sketch_destroy(&sc.sketches[i]);
    free(sc.sketches);
    free(sc.accs);
    for (size_t i = 0; i < n_refs; i++)
        free(refs[i].key);
    free(refs);
    free(ids);
    if (r != 0) {
        fp_agg_result_destroy(&res);
        return r;
    }
    *ret = res;
    return 0;
}

void fp_agg_result_destroy(struct fp_agg_result **res)
{
    if (res == NULL || *res == NULL)
        return;
    for (size_t i = 0; i < (*res)->n_groups; i++) {
        free((*res)->groups[i].labels);
        free((*res)->groups[i].points);
    }
    free((*res)->groups);
    free(*res);
    *res = NULL;
}
