/* stderr logger shared by the three daemons; libfleetpulse-probe redirects it to its host's
 * logger through a sink. The sink is read and called under one mutex, so replacing it never
 * races with a line in flight (hosts free the old userdata right after). */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum fp_log_level fp_log_threshold = FP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static fp_log_sink_fn sink;
static void *sink_userdata;

void fp_log_set_sink(fp_log_sink_fn fn, void *userdata)
{
    (void)pthread_mutex_lock(&sink_lock);
    sink = fn;
    sink_userdata = userdata;
    (void)pthread_mutex_unlock(&sink_lock);
}

/* Hands the line (from "component: " on, without the newline) to the sink. Returns false when
 * there is none, so the caller writes to stderr. */
static bool to_sink(enum fp_log_level level, const char *line)
{
    bool sent = false;
    (void)pthread_mutex_lock(&sink_lock);
    if (sink != NULL) {
        sink((int)level, line, sink_userdata);
        sent = true;
    }
    (void)pthread_mutex_unlock(&sink_lock);
    return sent;
}

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
    size_t n, start;
    int r;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)gmtime_r(&now.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s ", now.tv_nsec / 1000000L,
                 level_names[level]);
    if (r > 0)
        n += (size_t)r;
    start = n; /* a sink gets the line from the component on: it has its own time and level */
    r = snprintf(buf + n, sizeof(buf) - n, "%s: ", component);
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
    buf[n] = '\0';
    if (to_sink(level, buf + start))
        return;
    buf[n++] = '\n';
    (void)!write(STDERR_FILENO, buf, n);
}
