/* The contract between the probe and its loadable in-process module (fleetpulse-probe-inproc.so,
 * built from inproc.c and inproc-entry.c with libllama): what the loader (inproc-loader.c) looks
 * up with dlsym and what it hands over. If you change anything here, bump
 * FP_INPROC_MODULE_ABI and the entry symbol's suffix together. */
#pragma once

#include "log.h"
#include "sampler.h"

#define FP_INPROC_MODULE_ABI 1
/* The one symbol the module exports; the suffix is FP_INPROC_MODULE_ABI. */
#define FP_INPROC_MODULE_ENTRY "fp_inproc_module_entry_v1"
#define FP_INPROC_MODULE_FILE "fleetpulse-probe-inproc.so"

/* What the probe lends the module. The module has its own copy of the emitter shorthands and
 * clock, but logs through the probe's logger, so --log-level and an embedding host's sink
 * reach llama.cpp's lines too. */
struct fp_inproc_host {
    unsigned abi;                       /**< FP_INPROC_MODULE_ABI */
    enum fp_log_level log_threshold;    /**< the probe's level when the source opens */
    /* The probe's fp_log_write. */
    void (*log_write)(enum fp_log_level level, const char *component, const char *file, int line,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
};

/* Called by the loader before each open: takes the host's logger and level (host borrowed for
 * the module's lifetime, which is the process's). Returns the sampler ("inproc",
 * FP_SAMPLER_OPS_VERSION), or NULL when host->abi is not the module's. */
typedef const struct fp_sampler_ops *(*fp_inproc_entry_fn)(const struct fp_inproc_host *host);
const struct fp_sampler_ops *fp_inproc_module_entry_v1(const struct fp_inproc_host *host);

/* inproc.c: the sampler itself, inside the module. */
extern const struct fp_sampler_ops fp_inproc_ops;
