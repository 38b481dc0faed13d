/* HTTP query-string parsing for the query service: the raw "a=1&b=2" string into decoded pairs,
 * then per endpoint into typed, validated values (struct fp_series_query). No libevent here, so a
 * fuzz target can drive it directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "store.h"

/* At most this many parameters per request: /api/v1/series takes eight named ones, and the rest
 * is room for repeated "match" parameters. */
#define FP_QUERY_PARAMS_MAX 16

/* Longest metric name or device id accepted in a parameter, in bytes. */
#define FP_QUERY_NAME_MAX 256

/* Longest label matcher value or regex accepted, in bytes (after percent-decoding). */
#define FP_QUERY_VALUE_MAX 1024

/* Most buckets one aggregated /api/v1/series request may ask for: (to - from) / step, rounded
 * up. Prometheus's range-query limit, and what a chart can show. */
#define FP_QUERY_BUCKETS_MAX 11000

/* Shortest step accepted, in milliseconds. */
#define FP_QUERY_STEP_MIN_MS 1000

/* Latest accepted timestamp: 9999-12-31T23:59:59Z in seconds. Keeps seconds * 1000 far from
 * int64 overflow and every accepted value exact to the millisecond in a double. */
#define FP_QUERY_TIME_MAX_S 253402300799LL

/* One decoded parameter. Both strings point into fp_query_params.buf. */
struct fp_query_param {
    const char *name;  /**< percent-decoded, non-empty */
    const char *value; /**< percent-decoded, may be empty */
};

/* A parsed query string. Initialise by fp_query_params_parse, release with fp_query_params_fini. */
struct fp_query_params {
    struct fp_query_param items[FP_QUERY_PARAMS_MAX]; /**< in request order, names unique */
    size_t n;                                         /**< entries used in items */
    char *buf;                                        /**< owns every decoded string */
};

/* Splits query (the part after '?', without it; NULL or "" for none) on '&' and '=', and
 * percent-decodes names and values ('+' is a space, as HTML forms send it). Refuses: an empty
 * pair ("a=1&&b=2"), a pair without '=', an empty name, a bad or NUL escape ("%zz", "%00"), a
 * name given twice (except "match", the one repeatable parameter), more than
 * FP_QUERY_PARAMS_MAX pairs.
 * ret: out, filled on success and zeroed on failure (so fp_query_params_fini is always safe).
 * err: out, a one-line reason on failure (may be NULL).
 * Returns 0, -EINVAL for a malformed query, or -ENOMEM. */
int fp_query_params_parse(const char *query, struct fp_query_params *ret, char *err,
                          size_t err_size);

/* Frees what fp_query_params_parse allocated; accepts a zeroed struct; idempotent. */
void fp_query_params_fini(struct fp_query_params *p);

/* The value of parameter name, or NULL when absent. Borrowed from p. For a repeated name, the
 * first one. */
const char *fp_query_params_get(const struct fp_query_params *p, const char *name);

/* Iterates the values of a (repeatable) parameter: start with *pos = 0; each call returns the
 * next value of name in request order, or NULL when there are no more. Borrowed from p. */
const char *fp_query_params_next(const struct fp_query_params *p, const char *name, size_t *pos);

/* Checks that every parameter in p is one of allowed (a NULL-terminated list; NULL for none).
 * Returns 0, or -EINVAL with err naming the first unknown parameter. */
int fp_query_params_check(const struct fp_query_params *p, const char *const *allowed, char *err,
                          size_t err_size);

/* True when s is a Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*, at most FP_QUERY_NAME_MAX
 * bytes. */
bool fp_query_metric_name_valid(const char *s);

/* True when s is a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, at most FP_QUERY_NAME_MAX
 * bytes ("__name__" included). */
bool fp_query_label_name_valid(const char *s);

/* Decodes the label name in a URL path segment (segment: borrowed, still percent-encoded, as in
 * /api/v1/labels/{name}/values) into ret (size bytes, at least FP_QUERY_NAME_MAX + 1) and checks
 * it as fp_query_label_name_valid does. Returns 0, or -EINVAL with err naming the segment. */
int fp_query_label_name_decode(const char *segment, char *ret, size_t size, char *err,
                               size_t err_size);

/* Parses a Unix time in seconds, integer or with a fraction ("1732412345", "1732412345.123"):
 * digits, optionally '.' and digits, nothing else (no sign, exponent or hex), at most
 * FP_QUERY_TIME_MAX_S. Sub-millisecond digits round to the nearest millisecond.
 * Returns 0 and *ret_ms, or -EINVAL / -ERANGE (*ret_ms untouched). */
int fp_query_time_parse(const char *s, int64_t *ret_ms);

/* Parses a duration: digits, an optional fraction, then an optional unit ms, s (default), m, h
 * or d ("60", "1.5m", "500ms"). Returns 0 and *ret_ms (0 for a well-formed duration under a
 * millisecond, e.g. "0"), or -EINVAL. */
int fp_query_duration_parse(const char *s, int64_t *ret_ms);

/* Label matchers from the repeatable "match" parameter. Strings are borrowed from the
 * fp_query_params they came from or point into this struct: fill in place, do not copy. */
struct fp_query_matchers {
    struct fp_matcher m[FP_QUERY_PARAMS_MAX];
    size_t n;
    char names[FP_QUERY_PARAMS_MAX][FP_QUERY_NAME_MAX + 1]; /**< label names of m[] */
};

/* Reads every "match" of p (name=value, name!=value, name=~regex, name!~regex; regexes checked
 * as fp_series_query_parse does) into *ret, in request order. Returns 0, or -EINVAL with err
 * naming the bad matcher. */
int fp_query_matchers_parse(const struct fp_query_params *p, struct fp_query_matchers *ret,
                            char *err, size_t err_size);

/* Percent-decodes a path segment naming something (a device id: what = "device id") into ret
 * (size bytes, at least FP_QUERY_NAME_MAX + 1): 1 to FP_QUERY_NAME_MAX bytes, no NUL. Returns 0,
 * or -EINVAL with err "invalid <what> "<segment>" in the path". */
int fp_query_segment_decode(const char *segment, const char *what, char *ret, size_t size,
                            char *err, size_t err_size);

/* /api/v1/series parameters, validated. Strings are borrowed from the fp_query_params they were
 * parsed from, or point into this struct itself: do not copy it (fill it in place). */
struct fp_series_query {
    const char *metric; /**< a valid metric name; NULL: none given (or empty), so device or a
                             "match" selects, possibly several metrics */
    const char *device; /**< NULL: every device */
    int64_t from_ms;    /**< inclusive, Unix milliseconds (start of the first bucket) */
    int64_t to_ms;      /**< inclusive, Unix milliseconds, >= from_ms; with a step, the end of
                             the last bucket, exclusive */
    /* Every series condition for fp_store_select / fp_store_aggregate: the metric when given,
     * the device when given, then each "match" in request order; never empty. Regex values are
     * already checked. */
    struct fp_matcher matchers[FP_QUERY_PARAMS_MAX + 2];
    size_t n_matchers;
    int64_t step_ms;      /**< bucket length; 0: no step, raw points */
    enum fp_agg_fn agg;   /**< with step_ms > 0; 0 otherwise */
    double q;             /**< FP_AGG_QUANTILE: the quantile, in [0, 1] */
    const char *agg_name; /**< "avg", ..., "p95", "quantile": the response's "agg" */
    const char *by[FP_AGG_BY_MAX]; /**< group-by label names, unique, valid; into by_buf */
    size_t n_by;
    char names[FP_QUERY_PARAMS_MAX][FP_QUERY_NAME_MAX + 1]; /**< matcher label names */
    char by_buf[FP_AGG_BY_MAX * (FP_QUERY_NAME_MAX + 1)];     /**< "by", split in place */
};

/* The /api/v1/series parameter set: metric, device, from, to, step, agg, q, by, and match
 * (repeatable); metric, device or a match must be given. Any other is refused. */
extern const char *const fp_series_query_params[];

/* Reads p into *ret.
 *
 * Defaults: to = now_ms, from = to - 1 hour. An empty metric is taken as absent. Refuses
 * unknown parameters; a request with neither metric, device nor any match ("missing parameter
 * \"metric\" (or a device/match selector)"); an invalid metric; an empty or over-long device;
 * a bad time, from > to, a range longer than max_range_ms; a "match" not of the form
 * name=value, name!=value, name=~regex or name!~regex (label name as
 * fp_query_label_name_valid, value at most FP_QUERY_VALUE_MAX bytes), a regex that does not
 * compile (anchored, POSIX extended) or uses back-references (\1: exponential matching time);
 * a step that is not a duration ("60", "60s", "1m", "1h", "1d", "1.5m"), is under
 * FP_QUERY_STEP_MIN_MS, or cuts the range into more than FP_QUERY_BUCKETS_MAX buckets; an
 * unknown agg; q without agg=quantile, agg=quantile without q, q outside [0, 1]; step without
 * agg, agg without step, by without agg; a "by" list with an invalid, repeated or empty name, or
 * more than FP_AGG_BY_MAX names.
 *
 * now_ms: the wall clock (injected so tests are deterministic).
 * ret: out, filled in place (it points into itself); undefined on failure.
 * Returns 0, or -EINVAL with a one-line reason in err. */
int fp_series_query_parse(const struct fp_query_params *p, int64_t now_ms, int64_t max_range_ms,
                          struct fp_series_query *ret, char *err, size_t err_size);
