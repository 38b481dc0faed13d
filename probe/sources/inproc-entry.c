/* The in-process module's entry point and its logging: the module's fp_log_threshold and
 * fp_log_write stand in for common/log.c's, forwarding each line to the probe that loaded it. */
#include <stdarg.h>
#include <stdio.h>

#include "inproc-module.h"

enum fp_log_level fp_log_threshold = FP_LOG_INFO;

static const struct fp_inproc_host *host;

void fp_log_write(enum fp_log_level level, const char *component, const char *file, int line,
                  const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (host == NULL)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    host->log_write(level, component, file, line, "%s", buf);
}

__attribute__((visibility("default"))) const struct fp_sampler_ops *
fp_inproc_module_entry_v1(const struct fp_inproc_host *h)
{
    if (h == NULL || h->abi != FP_INPROC_MODULE_ABI || h->log_write == NULL)
        return NULL;
    host = h;
    fp_log_threshold = h->log_threshold;
    return &fp_inproc_ops;
}
