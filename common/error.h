/* Error text for callers that hand a one-line reason back up (err, err_size parameters). */
#pragma once

#include <stddef.h>

/* Formats a one-line reason into err (err_size bytes, always NUL-terminated when err_size > 0).
 * err may be NULL, then nothing is written. */
void fp_set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "PROG: MESSAGE (see --help)" on stderr and returns 2, the exit code of a usage error:
 * every daemon reports a bad flag the same way. */
int fp_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
