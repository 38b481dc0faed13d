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

/* Enough for any timestamp printed by fp_jsonout_format_ts_ms ("-9223372036854775.808"). */
#define FP_JSONOUT_TS_MAX 24

/* Enough for any point printed by fp_jsonout_format_point. */
#define FP_JSONOUT_POINT_MAX (FP_JSONOUT_TS_MAX + FP_JSONOUT_DOUBLE_MAX + 3)

/* Appends v as by fp_jsonout_format_double. Returns 0 or -ENOMEM. */
int fp_jsonout_double(struct evbuffer *out, double v);

/* Writes a millisecond timestamp into buf (FP_JSONOUT_TS_MAX bytes) as Unix seconds, computed in
 * integers so it is exact: 1732412345123 -> 1732412345.123, 1732412345100 -> 1732412345.1,
 * 1732412345000 -> 1732412345. NUL-terminated; returns the length without the NUL. */
size_t fp_jsonout_format_ts_ms(char *buf, int64_t ts_ms);

/* Appends a millisecond timestamp as fp_jsonout_format_ts_ms writes it. Returns 0 or -ENOMEM. */
int fp_jsonout_ts_ms(struct evbuffer *out, int64_t ts_ms);

/* Writes one series point, "[ts,v]" (ts as fp_jsonout_format_ts_ms, v as
 * fp_jsonout_format_double), into buf (FP_JSONOUT_POINT_MAX bytes). For answers with many
 * points: the caller gathers them into large pieces instead of one evbuffer_add per token.
 * NUL-terminated; returns the length without the NUL. */
size_t fp_jsonout_format_point(char *buf, int64_t ts_ms, double v);

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
