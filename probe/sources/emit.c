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

int fp_emit_event(struct fp_emitter *e, enum fp_severity severity, const char *kind,
                  const char *message, const struct fp_label *attrs, size_t n_attrs)
{
    return e->event(e->userdata, e->ts_ms, severity, kind, message, attrs, n_attrs);
}

int fp_emit_info(struct fp_emitter *e, const char *name, const char *value)
{
    return e->info != NULL ? e->info(e->userdata, name, value) : 0;
}
