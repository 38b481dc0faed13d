/* JSON text output for the query service: Jansson trees and bare values into an evbuffer, with
 * numbers printed in their shortest form that reads back to the same double. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;

/* Enough for any double printed by fp_jsonout_format_double ("-2.2250738585072014e-308"). */
#define FP_JSONOUT_DOUBLE_MAX 32

/* Writes v into buf (size >= FP_JSONOUT_DOUBLE_MAX) as the shortest of %.15g, %.16g, %.17g that
 * parses back to exactly v: 51.234 prints "51.234", 0.1 + 0.2 prints "0.30000000000000004".
 * Integral values print without a fraction ("1732412345"). Non-finite values print "null" (JSON
 * has no NaN or infinity). Returns the length written. */
size_t fp_jsonout_format_double(char *buf, size_t size, double v);

/* Appends v as by fp_jsonout_format_double. Returns 0 or -ENOMEM. */
int fp_jsonout_double(struct evbuffer *out, double v);

/* Appends a millisecond timestamp as Unix seconds, computed in integers so it is exact:
 * 1732412345123 -> 1732412345.123, 1732412345100 -> 1732412345.1, 1732412345000 -> 1732412345.
 * Returns 0 or -ENOMEM. */
int fp_jsonout_ts_ms(struct evbuffer *out, int64_t ts_ms);

/* Appends s as a JSON string: quoted, with '"', '\\' and control characters escaped. s must be
 * UTF-8 (strings inside Jansson trees always are). Returns 0 or -ENOMEM. */
int fp_jsonout_string(struct evbuffer *out, const char *s);

/* Appends the tree v (borrowed) as compact JSON. Object keys keep Jansson's insertion order; reals
 * go through fp_jsonout_format_double. Returns 0, -ENOMEM, or -EINVAL for a NULL v. */
int fp_jsonout_value(struct evbuffer *out, const json_t *v);

/* A Jansson string for s, which may be any bytes (labels and device ids come from probes):
 * json_string() refuses invalid UTF-8, so each invalid byte becomes U+FFFD instead.
 * Returns a new reference, or NULL when out of memory. */
json_t *fp_jsonout_string_new(const char *s);

/* json_real(v), or json_null() for NaN and infinities, which json_real refuses.
 * Returns a new reference, or NULL when out of memory. */
json_t *fp_jsonout_real_new(double v);
