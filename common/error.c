/* Error text helpers shared by the libraries and the daemons. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

void fp_set_err(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_size == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

int fp_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see --help)\n");
    return 2;
}
