/* Device states (ok, stale, silent, degraded): whether a device still reports, judged by its own
 * sampling interval, and whether an alert fires for it. Pure functions, shared by the JSON API,
 * /metrics and the alert engine, so every view names a device's state the same way. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A device missing this many of its own intervals is stale. */
#define FP_STATE_STALE_INTERVALS 3

/* The interval assumed for a device whose interval the store could not estimate yet (fewer than
 * two batches): the probe's default. */
#define FP_STATE_INTERVAL_FALLBACK_MS 10000

/* Default for --silent-after: nothing for this long and a device is silent. */
#define FP_STATE_SILENT_AFTER_MS_DEFAULT (5 * 60 * 1000)

/* In order of precedence, highest last: a device that reports nothing is silent (or stale)
 * whatever alerts say, since its alerts then describe old data; degraded is a reporting device
 * with a firing alert. The values index arrays (FP_STATE_COUNT entries). */
enum fp_device_state {
    FP_STATE_OK = 0,
    FP_STATE_DEGRADED,
    FP_STATE_STALE,
    FP_STATE_SILENT,
    FP_STATE_COUNT,
};

/* The state of a device at now_ms.
 * last_seen_ms: collector clock at its newest applied batch (fp_device_desc.last_seen_ms).
 * interval_ms: the device's own sampling interval; <= 0 for unknown (FP_STATE_INTERVAL_FALLBACK_MS
 *   is used).
 * silent_after_ms: > 0.
 * alerting: whether an alert fires for the device.
 * Rules: silent when now - last_seen >= silent_after; else stale when now - last_seen >=
 * FP_STATE_STALE_INTERVALS * interval; else degraded when alerting; else ok. A last_seen in the
 * future (clocks of two hosts) counts as just seen. */
enum fp_device_state fp_state_of(int64_t now_ms, int64_t last_seen_ms, int64_t interval_ms,
                                 int64_t silent_after_ms, bool alerting);

/* The interval fp_state_of works with: interval_ms, or the fallback when it is <= 0. */
int64_t fp_state_interval_ms(int64_t interval_ms);

/* "ok", "degraded", "stale", "silent". Static string; "unknown" for a value out of range. */
const char *fp_state_name(enum fp_device_state state);

/* Parses a state name as fp_state_name writes it. Returns 0 and *ret, or -EINVAL. */
int fp_state_parse(const char *name, enum fp_device_state *ret);
