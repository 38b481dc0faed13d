/* The built-in samplers, in the order the probe runs them each round. To add one: write
 * probe/sources/<name>.c, declare it in sources-internal.h, list it here and in meson.build, and
 * document its metrics in docs/metrics.md; the conformance test in tests/unit/probe/ then covers it. */
#include "sources-internal.h"

const struct fp_sampler_ops *const fp_samplers[] = {
    &fp_sampler_memory, &fp_sampler_pressure, &fp_sampler_thermal,
    &fp_sampler_hwmon,  &fp_sampler_cpu,      NULL,
};
