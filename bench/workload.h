/* The standard fleet workload (shared/reference/workload/fleetgen.py), generated natively so the
 * benchmarks need no Python: D devices x 10 series, one sample every 10 s for 6 h ending at a
 * given time, 1% of devices going silent 6-30 min before the end, and the labels fleetgen gives
 * every device (hw, model, model_version, quant, site; zone for the two temperature series).
 *
 * Shapes, precisions and parameters follow fleetgen.py; the random streams are our own
 * (splitmix64 with Box-Muller), so values differ from the Python output but not in kind or spread.
 * Everything derives from the seed: the same (devices, seed) gives bit-identical values, and the
 * end time only moves the timestamps. The values are drawn from one stream in the order
 * bench/chunk has always drawn them (its figures stay comparable across versions); the labels
 * fleetgen adds come from a second stream, so adding them changed no value.
 *
 * Memory: devices x 10 x 2160 doubles (173 MB for 1000 devices), one array, series contiguous. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FP_WORKLOAD_SERIES 10
#define FP_WORKLOAD_STEP_MS 10000
#define FP_WORKLOAD_STEPS (6 * 3600 / 10) /* samples per series of a device that never stops */
/* The fixed end bench/chunk uses, so its runs are comparable: 2025-08-01 00:00:00 UTC. */
#define FP_WORKLOAD_FIXED_END_MS (INT64_C(1754006400) * 1000)

/* One of the ten series every device has. */
struct fp_workload_series_def {
    const char *name;   /**< fleetgen's series name, unique ("temperature_celsius_zone0") */
    const char *metric; /**< the metric name stored ("temperature_celsius") */
    const char *zone;   /**< value of the "zone" label, or NULL for none */
    bool counter;       /**< a monotonic counter (else a gauge) */
};

/* Indexed like the series of struct fp_workload. */
extern const struct fp_workload_series_def fp_workload_series[FP_WORKLOAD_SERIES];

/* A device's identity labels. Strings are static, except id, which the struct holds. */
struct fp_workload_device {
    char id[32];              /**< "edge-0042" */
    const char *hw;           /**< "jetson-orin-agx", ... */
    const char *model;        /**< "llama-3.1-8b-instruct", ... */
    const char *model_version; /**< "v1" or "v2" */
    const char *quant;        /**< "q4_0" or "q8_0" */
    const char *site;         /**< "site-00" .. "site-09" */
};

struct fp_workload {
    size_t devices;                  /**< number of devices */
    size_t steps;                    /**< FP_WORKLOAD_STEPS: length of the time grid */
    struct fp_workload_device *dev;  /**< [devices] */
    size_t *len;     /**< [devices] samples per series of the device (silent ones stop early) */
    double *values;  /**< [devices][FP_WORKLOAD_SERIES][steps]; past len[d] unspecified */
    int64_t *ts;     /**< [steps] the shared 10 s grid, in ms, ts[steps - 1] == end_ms */
    size_t samples;  /**< total over all devices and series */
    size_t silent;   /**< devices that stop before the end (len[d] < steps) */
};

/* Generates the workload into *w: devices >= 1, end_ms the last timestamp (a multiple of
 * FP_WORKLOAD_STEP_MS is advised). Returns 0, -EINVAL (devices 0), or -ENOMEM (*w then holds
 * nothing to free). On success free it with fp_workload_fini. */
int fp_workload_init(struct fp_workload *w, size_t devices, uint64_t seed, int64_t end_ms);

/* Frees what fp_workload_init allocated; accepts a zeroed or already finished *w. */
void fp_workload_fini(struct fp_workload *w);

/* The samples of series s (index into fp_workload_series) of device dev: values, w->len[dev] of
 * them, at timestamps w->ts[0 ..]. Borrowed from w. */
static inline double *fp_workload_values(const struct fp_workload *w, size_t dev, size_t s)
{
    return w->values + (dev * FP_WORKLOAD_SERIES + s) * w->steps;
}
