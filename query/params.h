/* HTTP query-string parsing for the query service: the raw "a=1&b=2" string into decoded pairs,
 * then per endpoint into typed, validated values (struct fp_series_query). No libevent here, so a
 * fuzz target can drive it directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many parameters per request; no endpoint takes more than four. */
#define FP_QUERY_PARAMS_MAX 16

/* Longest metric name or device id accepted in a parameter, in bytes. */
#define FP_QUERY_NAME_MAX 256

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
 * name given twice, more than FP_QUERY_PARAMS_MAX pairs.
 * ret: out, filled on success and zeroed on failure (so fp_query_params_fini is always safe).
 * err: out, a one-line reason on failure (may be NULL).
 * Returns 0, -EINVAL for a malformed query, or -ENOMEM. */
int fp_query_params_parse(const char *query, struct fp_query_params *ret, char *err,
                          size_t err_size);

/* Frees what fp_query_params_parse allocated; accepts a zeroed struct; idempotent. */
void fp_query_params_fini(struct fp_query_params *p);

/* The value of parameter name, or NULL when absent. Borrowed from p. */
const char *fp_query_params_get(const struct fp_query_params *p, const char *name);

/* Checks that every parameter in p is one of allowed (a NULL-terminated list; NULL for none).
 * Returns 0, or -EINVAL with err naming the first unknown parameter. */
int fp_query_params_check(const struct fp_query_params *p, const char *const *allowed, char *err,
                          size_t err_size);

/* True when s is a Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*, at most FP_QUERY_NAME_MAX
 * bytes. */
bool fp_query_metric_name_valid(const char *s);

/* Parses a Unix time in seconds, integer or with a fraction ("1732412345", "1732412345.123"):
 * digits, optionally '.' and digits, nothing else (no sign, exponent or hex), at most
 * FP_QUERY_TIME_MAX_S. Sub-millisecond digits round to the nearest millisecond.
 * Returns 0 and *ret_ms, or -EINVAL / -ERANGE (*ret_ms untouched). */
int fp_query_time_parse(const char *s, int64_t *ret_ms);

/* /api/v1/series parameters, validated. Strings are borrowed from the fp_query_params they were
 * parsed from. */
struct fp_series_query {
    const char *metric; /**< a valid metric name */
    const char *device; /**< NULL: every device */
    int64_t from_ms;    /**< inclusive, Unix milliseconds */
    int64_t to_ms;      /**< inclusive, Unix milliseconds, >= from_ms */
};

/* The /api/v1/series parameter set: metric (required), device, from, to. Any other is refused. */
extern const char *const fp_series_query_params[];

/* Reads p into *ret. Defaults: to = now_ms, from = to - 1 hour. Refuses unknown parameters, a
 * missing or invalid metric, an empty or over-long device, a bad time, from > to, and a range
 * longer than max_range_ms.
 * now_ms: the wall clock (injected so tests are deterministic).
 * Returns 0 and fills *ret, or -EINVAL with a one-line reason in err (*ret then undefined). */
int fp_series_query_parse(const struct fp_query_params *p, int64_t now_ms, int64_t max_range_ms,
                          struct fp_series_query *ret, char *err, size_t err_size);
