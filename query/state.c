/* Device states from last-seen time and the device's own interval (see state.h).
 *
 * Time is the collector's clock on both sides: last_seen is when the collector applied the
 * device's newest batch, and now is the query service's wall clock on the same host (or one kept
 * in sync with it). Sample timestamps are the device's clock, which may be off by anything, so
 * they are not used here. */
#include "state.h"

#include <errno.h>
#include <string.h>

static const char *const names[FP_STATE_COUNT] = {
    [FP_STATE_OK] = "ok",
    [FP_STATE_DEGRADED] = "degraded",
    [FP_STATE_STALE] = "stale",
    [FP_STATE_SILENT] = "silent",
};

int64_t fp_state_interval_ms(int64_t interval_ms)
{
    return interval_ms > 0 ? interval_ms : FP_STATE_INTERVAL_FALLBACK_MS;
}

enum fp_device_state fp_state_of(int64_t now_ms, int64_t last_seen_ms, int64_t interval_ms,
                                 int64_t silent_after_ms, bool alerting)
{
    int64_t age = now_ms - last_seen_ms;
    int64_t interval = fp_state_interval_ms(interval_ms);

    if (age < 0)
        age = 0;
    if (age >= silent_after_ms)
        return FP_STATE_SILENT;
    /* An interval of hours would overflow 3x only past 10^17 ms; cap rather than trust it. */
    if (interval <= INT64_MAX / FP_STATE_STALE_INTERVALS &&
        age >= FP_STATE_STALE_INTERVALS * interval)
        return FP_STATE_STALE;
    return alerting ? FP_STATE_DEGRADED : FP_STATE_OK;
}

const char *fp_state_name(enum fp_device_state state)
{
    if ((int)state < 0 || state >= FP_STATE_COUNT)
        return "unknown";
    return names[state];
}

int fp_state_parse(const char *name, enum fp_device_state *ret)
{
    for (int i = 0; i < FP_STATE_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *ret = (enum fp_device_state)i;
            return 0;
        }
    }
    return -EINVAL;
}
