/* A mergeable quantile sketch (DDSketch, Masson, Rim, Lee, PVLDB 12(12) 2019) with a relative-error
 * guarantee of FP_SKETCH_ALPHA = 1%: every quantile it answers is within 1% of the exact quantile
 * of the values added, however they were split across sketches and merged.
 *
 * It is the percentile part of the storage engine's 1-minute and 1-hour rollups (count, sum, min,
 * max, last, sketch): fleet p50/p95/p99 over a day merges per-device rollup sketches instead of
 * reading raw samples, and the answer is the pooled quantile, not a quantile of quantiles.
 *
 * The sketch holds bin counts only. count is derived from them; min, max, sum and last live in
 * the rollup beside the sketch, exactly, so the sketch does not carry them again (24 bytes per
 * encoding, three times a one-minute sketch).
 *
 * Threads: a sketch belongs to one thread; distinct sketches may be used concurrently. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct fp_sketch;
typedef struct fp_sketch fp_sketch;

/* Relative accuracy: a quantile estimate v of a true value x has |v - x| <= FP_SKETCH_ALPHA * |x|
 * (up to double rounding at bin edges), as long as x did not fall into a collapsed bin (below). */
#define FP_SKETCH_ALPHA 0.01

/* At most this many bins per sign (positive and negative values each), so memory and encoded
 * size stay bounded whatever the input. At 1% one bin spans a factor gamma = 1.0202, so 2048 bins
 * cover a ratio of about 6e17 between the smallest and largest value of one sign (e.g. 1 ns to
 * 19 years). When values span more, the lowest bins (smallest magnitudes) are collapsed into the
 * lowest retained one: low quantiles then read high, high quantiles keep their guarantee. Latency
 * and throughput percentiles care about the high end, which is why the low end gives way.
 * Collapsing depends only on the largest magnitude seen, so merging stays exact. Memory: at most
 * 2 x 2048 x 8 bytes of counts (32 KiB) per sketch; a one-hour latency sketch uses ~2 KiB. */
#define FP_SKETCH_MAX_BINS 2048

/* Version of the encoding written by fp_sketch_encode; decode refuses others. If you change the
 * encoding, bump this (rollups on disk carry it in their first byte). */
#define FP_SKETCH_FORMAT 1

/* An upper bound on fp_sketch_encode's output for any sketch: header, zero count, and per sign a
 * start index, a bin count and FP_SKETCH_MAX_BINS (gap, count) pairs of at most 2 + 10 bytes. */
#define FP_SKETCH_ENCODED_MAX (1 + 10 + 2 * (3 + 2 + FP_SKETCH_MAX_BINS * (2 + 10)))

/* Outcomes a caller must act on (positive; negative values are -errno). */
enum {
    FP_SKETCH_E_NONFINITE = 1, /**< NaN or +-Inf refused; the sketch is unchanged */
    FP_SKETCH_E_EMPTY,         /**< quantile of a sketch that holds no values */
    FP_SKETCH_E_CORRUPT,       /**< fp_sketch_decode: not a valid encoding (or another version) */
};

/* Creates an empty sketch. Returns 0 and *ret (new: fp_sketch_destroy), or -ENOMEM. */
int fp_sketch_new(fp_sketch **ret);

/* Frees the sketch; accepts NULL and *s == NULL, and nulls *s. */
void fp_sketch_destroy(fp_sketch **s);

/* Empties the sketch for reuse (next rollup bucket), keeping its memory. */
void fp_sketch_reset(fp_sketch *s);

/* Adds one value. Values with |value| below DBL_MIN (zeros, subnormals) go to the zero bucket
 * and are reported as 0. Returns 0; FP_SKETCH_E_NONFINITE for NaN or +-Inf; -EOVERFLOW when the
 * total count would pass UINT64_MAX; -ENOMEM. On failure the sketch is unchanged. */
int fp_sketch_add(fp_sketch *s, double value);

/* Adds value count times (count 0 does nothing). Returns as fp_sketch_add. */
int fp_sketch_add_n(fp_sketch *s, double value, uint64_t count);

/* Adds every value of src (borrowed, unchanged) to dst. The result is bin for bin the sketch
 * of the union of both inputs, whatever the order of adds and merges. Returns 0; -EINVAL when
 * dst and src are the same sketch; -EOVERFLOW when the total count would pass UINT64_MAX;
 * -ENOMEM. On failure dst is unchanged. */
int fp_sketch_merge(fp_sketch *dst, const fp_sketch *src);

/* Number of values added (including merged ones). */
uint64_t fp_sketch_count(const fp_sketch *s);

/* Number of non-empty bins, the zero bucket included: what memory and encoded size scale with.
 * At most 2 * FP_SKETCH_MAX_BINS + 1. */
size_t fp_sketch_bins(const fp_sketch *s);

/* The q-quantile, q in [0, 1]: an estimate of the value of rank floor(q * (count - 1)) (0-based)
 * in the sorted values, so q = 0 estimates the minimum and q = 1 the maximum. Returns 0 and
 * *ret_value; FP_SKETCH_E_EMPTY when the sketch holds no values; -EINVAL when q is outside
 * [0, 1] or NaN. */
int fp_sketch_quantile(const fp_sketch *s, double q, double *ret_value);

/* Serializes s into buf (size bytes; buf may be NULL when size is 0). Always sets *ret_len to the
 * encoded length. Returns 0 (buf holds the encoding), or -ENOBUFS when size < *ret_len (buf's
 * contents are then unspecified). The encoding is canonical: equal sketches give equal bytes.
 * Layout (all integers LEB128 varints): one header byte (format in the top 3 bits, then which of
 * zero / positive / negative parts follow), the zero count, then per sign the zigzag start index,
 * the number of bins minus 1, the first bin's count, and per further bin one token (gap to the
 * previous bin minus 1, shifted left, low bit set when the count exceeds 1) and, when the bit is
 * set, the count minus 2. Six similar values take about 9 bytes; an empty sketch takes 1. */
int fp_sketch_encode(const fp_sketch *s, uint8_t *buf, size_t size, size_t *ret_len);

/* Builds a sketch from exactly len bytes of buf (borrowed) written by fp_sketch_encode. Input is
 * untrusted: every field is checked (format, flags, minimal varints, index range, bin limit,
 * non-zero counts, count overflow, no trailing bytes), and nothing outside buf[0..len) is read.
 * Returns 0 and *ret (new: fp_sketch_destroy); FP_SKETCH_E_CORRUPT or -ENOMEM (*ret untouched,
 * nothing left allocated). */
int fp_sketch_decode(const uint8_t *buf, size_t len, fp_sketch **ret);

/* Merges an encoding (len bytes of buf, borrowed, checked as by fp_sketch_decode) into dst without
 * building a sketch for it: the query path over stored rollups, with no allocation once dst's
 * window has grown (bench/sketch: ~1.4x faster than decode then merge). The result equals
 * fp_sketch_merge(dst, decoded). Returns 0; FP_SKETCH_E_CORRUPT; -EOVERFLOW; -ENOMEM. On failure
 * dst is unchanged. */
int fp_sketch_merge_encoded(fp_sketch *dst, const uint8_t *buf, size_t len);
