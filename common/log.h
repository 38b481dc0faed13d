/* Logging for the daemons: one line per message on stderr, "TIME LEVEL component: text".
 * Library code logs at debug at most; the daemon that decides what to do logs once. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

enum fp_log_level {
    FP_LOG_ERROR = 0,
    FP_LOG_WARN = 1,
    FP_LOG_INFO = 2,
    FP_LOG_DEBUG = 3,
};

/* Messages above this level are not formatted at all (see the macros). Default FP_LOG_INFO. */
extern enum fp_log_level fp_log_threshold;

/* Parses "error", "warn", "info" or "debug". Returns 0 and sets *ret_level, or -EINVAL. */
int fp_log_parse_level(const char *name, enum fp_log_level *ret_level);

/* Where lines go instead of stderr: level is an enum fp_log_level, msg one line without the
 * timestamp or a newline ("component: text"), borrowed for the call. */
typedef void (*fp_log_sink_fn)(int level, const char *msg, void *userdata);

/* Sends every line to fn from now on (NULL: back to stderr). For libfleetpulse-probe, whose host
 * decides where its lines go (fleetpulse_set_logger). fn is called with a lock held, one line at
 * a time, and must not call fp_log_set_sink; once this returns the previous fn is not called
 * again. Thread-safe. */
void fp_log_set_sink(fp_log_sink_fn fn, void *userdata);

/* Writes one line to stderr, or to the sink when one is set. component: borrowed, e.g.
 * "collector". file/line are printed at debug level only. Safe from several threads (one
 * write(2) per line). */
void fp_log_write(enum fp_log_level level, const char *component, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define fp_log(level, component, ...)                                                              \
    do {                                                                                           \
        if ((level) <= fp_log_threshold)                                                           \
            fp_log_write((level), (component), __FILE__, __LINE__, __VA_ARGS__);                   \
    } while (0)

#define fp_log_error(component, ...) fp_log(FP_LOG_ERROR, component, __VA_ARGS__)
#define fp_log_warn(component, ...) fp_log(FP_LOG_WARN, component, __VA_ARGS__)
#define fp_log_info(component, ...) fp_log(FP_LOG_INFO, component, __VA_ARGS__)
#define fp_log_debug(component, ...) fp_log(FP_LOG_DEBUG, component, __VA_ARGS__)
