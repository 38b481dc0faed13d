/* One simulated edge device's telemetry, generated one time step at a time: the series and value
 * shapes of the standard fleet workload (shared/reference/workload/fleetgen.py) under the metric
 * names the real probe uses, so dashboards and alerts read a simulated fleet like a real one. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "label.h"

/* The standard ten series, then two optional request-outcome counters (errors, fallbacks). */
#define FP_SIM_SERIES_STANDARD 10
#define FP_SIM_SERIES_MAX 12

struct fp_sim_series_def {
    const char *metric;
    bool counter;
    /* Fixed labels; a label whose value is NULL takes the device's model name. */
    struct fp_label labels[2];
    size_t n_labels;
};

extern const struct fp_sim_series_def fp_sim_series[FP_SIM_SERIES_MAX];

/* Identity and generator state of one device. Fill with fp_sim_device_init. */
struct fp_sim_device {
    char id[64];
    const char *hw, *model, *model_version, *quant, *site, *cohort;
    /* parameters */
    double tps_mean, ttft_base, toks_per_req, req_per_util, err_ratio, fallback_ratio;
    double pages_total, hw_temp;
    double speed; /* multiplies tokens/s (and divides ttft): a slower cohort has speed < 1 */
    /* state */
    uint64_t rng;
    double req_total, tok_total, err_total, fallback_total, psi, mem_pages, t0, t1;
};

/* Draws device index's identity and parameters from seed: the same (seed, index) always gives the
 * same device. id is prefix + index as four or more digits ("edge-0042"). */
void fp_sim_device_init(struct fp_sim_device *d, const char *prefix, size_t index, uint64_t seed);

/* Advances the device by one step of step_ms and writes its values: FP_SIM_SERIES_STANDARD of
 * them, or FP_SIM_SERIES_MAX with outcomes. Values keep the workload's precision (2-4 decimals,
 * integer counters, page-multiple bytes), so they compress like real ones. */
void fp_sim_device_step(struct fp_sim_device *d, int64_t step_ms, bool outcomes,
                        double values[FP_SIM_SERIES_MAX]);

/* The device's value of identity field name (DeviceInfo names: "model", "hw_class", ...), or
 * NULL. */
const char *fp_sim_device_identity(const struct fp_sim_device *d, const char *name);
