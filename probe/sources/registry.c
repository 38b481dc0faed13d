/* The built-in samplers, in the order the probe runs them each round. To add one: write
 * probe/sources/<name>.c, declare it in sources-internal.h, list it here and in meson.build, and
 * document its metrics in docs/metrics.md; the conformance test in tests/unit/probe/ then covers it. */
#include "sources-internal.h"

const struct fp_sampler_ops *const fp_samplers[] = {
    &fp_sampler_memory, &fp_sampler_pressure, &fp_sampler_thermal,
    &fp_sampler_hwmon,  &fp_sampler_cpu,
    &fp_sampler_llama_server, /* llama_server.c: HTTP to a llama.cpp server */
    &fp_sampler_canary,       /* canary.c: timed prompts to a runtime */
    &fp_sampler_inproc, /* loads its module (built with -Dllama) only when --model is given */
    NULL,
};
