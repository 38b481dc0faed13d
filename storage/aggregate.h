/* Aggregated reads: the series selected by label matchers, cut into fixed time buckets, grouped
 * by some of their labels, and reduced to one value per group and bucket (avg, min, max, sum,
 * count, last, rate, increase, or a quantile).
 *
 * Every reduction is pooled over all the samples of all the series of a group in a bucket: the
 * fleet p95 of time to first token is the p95 of every device's samples together, never a p95 of
 * per-device p95s. Quantiles come from storage/sketch.h (DDSketch, 1% relative error), so the
 * answer does not change when this moves onto the stored rollups (count, sum, min, max, last and
 * a sketch per series and minute/hour): the query and result types below carry nothing that
 * rollups could not answer. Today every call reads raw samples through the public read API.
 *
 * Threads: as the reader passed in (the thread that opened it). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "label.h"

struct fp_matcher;
struct fp_store_reader;

/* Outcomes a caller must act on (positive; negative values are -errno). */
enum {
    FP_AGG_E_TOO_MANY = 1, /**< the answer would hold more than max_points points */
};

/* Most group-by label names in one query. */
#define FP_AGG_BY_MAX 16

/* Most buckets one query may cut its range into ((to - from) / step, rounded up). The work per
 * series grows with the bucket count even where buckets are empty, so it is bounded here; the
 * HTTP API allows far fewer. */
#define FP_AGG_BUCKETS_MAX (1u << 20)

enum fp_agg_fn {
    FP_AGG_AVG = 1,  /**< mean of the samples */
    FP_AGG_MIN,      /**< smallest sample */
    FP_AGG_MAX,      /**< largest sample */
    FP_AGG_SUM,      /**< sum of the samples */
    FP_AGG_COUNT,    /**< number of samples */
    FP_AGG_LAST,     /**< value of the newest sample (equal times: the largest value) */
    FP_AGG_RATE,     /**< increase / bucket length in seconds (per second) */
    FP_AGG_INCREASE, /**< counter increase per series within the bucket, summed over the group */
    FP_AGG_QUANTILE, /**< the q-quantile of the samples, within 1% (FP_SKETCH_ALPHA) and
                          clamped to [min, max]; q = 0 and q = 1 are the exact min and max */
};

/* What to compute. Pointers are borrowed for the call.
 *
 * Buckets: bucket k covers [from_ms + k * step_ms, from_ms + (k + 1) * step_ms), the last one
 * clipped at to_ms; the range is half-open, [from_ms, to_ms), so buckets tile it exactly and a
 * sample at a bucket's end belongs to the next bucket. from_ms >= to_ms selects nothing.
 *
 * increase: for each series, every pair of consecutive samples that both lie in the bucket adds
 * v1 - v0, or v1 when v1 < v0 (a counter reset, counted as Prometheus does: the counter restarted
 * from 0 and reached v1). The change from a series' last sample in the previous bucket is not
 * counted and nothing is extrapolated, so a series needs two samples in a bucket to contribute.
 * rate: increase divided by the bucket's length in seconds (the clipped length for the last one).
 *
 * NaN samples carry no value (Prometheus marks staleness with one) and are skipped by every
 * reduction, count included. quantile also skips +-Inf, which the sketch cannot hold. */
struct fp_agg_query {
    const struct fp_matcher *matchers; /**< series to read, as fp_store_select takes them */
    size_t n_matchers;                 /**< 0: every series */
    int64_t from_ms;                   /**< start of the first bucket, inclusive */
    int64_t to_ms;                     /**< end of the last bucket, exclusive */
    int64_t step_ms;                   /**< bucket length, > 0 */
    enum fp_agg_fn fn;
    double q;                  /**< FP_AGG_QUANTILE only: in [0, 1] (0.95 for p95) */
    const char *const *by;     /**< group-by label names, unique; "__name__" is the metric */
    size_t n_by;               /**< 0: one group over everything matched; at most FP_AGG_BY_MAX */
    size_t max_points;         /**< most points in the whole result, over all groups */
};

struct fp_agg_point {
    int64_t ts_ms; /**< start of the bucket */
    double value;
};

/* One group: the series sharing the values of the group-by labels. */
struct fp_agg_group {
    struct fp_label *labels;     /**< the group-by labels the series have, in `by` order; a label
                                      a series lacks (or has empty) is left out, as in Prometheus */
    size_t n_labels;
    struct fp_agg_point *points; /**< buckets with at least one sample, oldest first */
    size_t n_points;             /**< >= 1: groups without points are left out */
};

/* Owns every array and string it points to. */
struct fp_agg_result {
    struct fp_agg_group *groups; /**< sorted by their label values taken in `by` order, bytewise,
                                      a missing label sorting as "" (first) */
    size_t n_groups;
    size_t n_points; /**< over all groups, <= max_points */
};

/* Computes q over the snapshot r.
 *
 * r: borrowed; the result does not refer to it, so it may be closed right after.
 * ret: out, new (fp_agg_result_destroy), set only on success.
 *
 * Returns 0; FP_AGG_E_TOO_MANY when the result would hold more than q->max_points points (the
 * work stops there; the caller narrows the range, widens the step or groups less); -EINVAL for
 * a bad query (step_ms <= 0, unknown fn, q outside [0, 1] for a quantile, more than
 * FP_AGG_BY_MAX or repeated group-by names, a bad regex in a matcher); -ERANGE when the range
 * holds more than FP_AGG_BUCKETS_MAX buckets; a store code or -errno from the reader; -ENOMEM.
 *
 * Cost, for S matched series with N samples in the range, B buckets, G groups and P points out:
 * time O(S log S + N + S * ceil(B / W) seeks + G * B), where W is 4096 buckets (256 for a
 * quantile, whose per-bucket sketches are the memory that matters); memory O(S + W + P), with up
 * to 256 sketches of at most 32 KiB each (a few KiB for typical latency data). Each sample is
 * read once. */
int fp_store_aggregate(struct fp_store_reader *r, const struct fp_agg_query *q,
                       struct fp_agg_result **ret);

/* Frees a result; accepts NULL and *res == NULL, and nulls *res. */
void fp_agg_result_destroy(struct fp_agg_result **res);
