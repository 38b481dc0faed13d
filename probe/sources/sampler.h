/* The interface every probe source implements, and the emitter it reports through.
 *
 * A sampler reads one kind of thing (memory, PSI, thermal zones, ...) under an injected procfs or
 * sysfs root, so tests drive it with fixture trees. The probe calls open once, sample every
 * interval, close at shutdown. Samplers never log above debug and never allocate per sample
 * beyond what open set up, unless a file must be read. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "label.h"

/* Where a sampler reports. The probe core points it at a batch builder; tests capture. Every
 * sample of one round carries ts_ms, the time of the round. */
struct fp_emitter {
    /* Records one sample. Returns 0 or -errno. */
    int (*sample)(void *userdata, const char *metric, enum fp_metric_type type,
                  const struct fp_label *labels, size_t n_labels, int64_t ts_ms, double value);
    /* Records one event. Returns 0 or -errno. */
    int (*event)(void *userdata, int64_t ts_ms, enum fp_severity severity, const char *kind,
                 const char *message);
    void *userdata;
    int64_t ts_ms; /**< time of this round, ms since the Unix epoch */
};

/* Shorthands for samplers. */
int fp_emit_gauge(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                  size_t n_labels, double value);
int fp_emit_counter(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                    size_t n_labels, double value);

/* What a sampler gets at open. Strings borrowed for the sampler's lifetime. */
struct fp_sampler_env {
    const char *procfs; /**< root of /proc, e.g. "/proc" or a fixture dir */
    const char *sysfs;  /**< root of /sys */
};

#define FP_SAMPLER_OPS_VERSION 1

struct fp_sampler_ops {
    unsigned version; /**< FP_SAMPLER_OPS_VERSION; methods may be appended in later versions */
    const char *name; /**< short, stable: used in logs and the "source" label */

    /* Prepares the source. Returns 0 and *ret_ctx (freed by close), -ENOENT when the source does
     * not exist on this machine (the probe skips it with one log line), or another -errno. May
     * read files; does not block otherwise. */
    int (*open)(const struct fp_sampler_env *env, void **ret_ctx);

    /* Reads the source once and emits through out. Returns the number of values that could not
     * be read or parsed (0 when all went well; the probe counts them), or -errno when the whole
     * source failed this round (e.g. its file vanished). Reads files; never blocks otherwise. */
    int (*sample)(void *ctx, struct fp_emitter *out);

    /* Frees ctx; accepts NULL and nulls *ctx. */
    void (*close)(void **ctx);
};

/* The built-in samplers, NULL-terminated, in the order they run. */
extern const struct fp_sampler_ops *const fp_samplers[];
