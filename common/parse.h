/* Strict number parsing for flags, files under /proc and /sys, and HTTP parameters: the whole
 * string must be a number (surrounding whitespace allowed), or the call fails. */
#pragma once

#include <stdint.h>

/* Each returns 0 and sets *ret, -EINVAL when s is not a number of that kind (empty, trailing
 * garbage, NaN), or -ERANGE when it does not fit. *ret is untouched on failure. */
int fp_parse_i64(const char *s, int64_t *ret);
int fp_parse_u64(const char *s, uint64_t *ret);
int fp_parse_double(const char *s, double *ret);

/* Parses a duration in seconds with an optional unit suffix: "10", "2.5", "500ms", "5s", "10m",
 * "2h", "1d". Must be > 0. Returns 0 and sets *ret_ms, or -EINVAL / -ERANGE. */
int fp_parse_duration_ms(const char *s, int64_t *ret_ms);
