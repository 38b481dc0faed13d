/* The emitter shorthands samplers use: every sample of a round carries the round's ts_ms, so a
 * sampler never reads the clock itself (tests inject the time through the emitter). */
#include "sampler.h"

int fp_emit_gauge(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                  size_t n_labels, double value)
{
    return e->sample(e->userdata, metric, FP_METRIC_GAUGE, labels, n_labels, e->ts_ms, value);
}

int fp_emit_counter(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                    size_t n_labels, double value)
{
    return e->sample(e->userdata, metric, FP_METRIC_COUNTER, labels, n_labels, e->ts_ms, value);
}
