/* stderr logger shared by the three daemons. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum fp_log_level fp_log_threshold = FP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int fp_log_parse_level(const char *name, enum fp_log_level *ret_level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *ret_level = (enum fp_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void fp_log_write(enum fp_log_level level, const char *component, const char *file, int line,
                  const char *fmt, ...)
{
    char buf[2048];
    struct timespec now;
    struct tm tm;
    size_t n;
    int r;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)gmtime_r(&now.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s %s: ", now.tv_nsec / 1000000L,
                 level_names[level], component);
    if (r > 0)
        n += (size_t)r;
    if (n < sizeof(buf)) {
        va_list ap;
        va_start(ap, fmt);
        r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        va_end(ap);
        if (r > 0)
            n += (size_t)r;
    }
    if (level == FP_LOG_DEBUG && n < sizeof(buf)) {
        r = snprintf(buf + n, sizeof(buf) - n, " (%s:%d)", file, line);
        if (r > 0)
            n += (size_t)r;
    }
    /* Truncated lines keep their newline so the next message starts on its own line. */
    if (n >= sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    (void)!write(STDERR_FILENO, buf, n);
}
