/* The one in-memory time type: milliseconds since the Unix epoch in an int64_t, as samples carry
 * on the wire and in storage. Monotonic time is for measuring intervals only. */
#pragma once

#include <stdint.h>

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t fp_clock_now_ms(void);

/* Monotonic time in milliseconds (CLOCK_MONOTONIC); for timeouts and durations. */
int64_t fp_clock_mono_ms(void);

/* Monotonic time in nanoseconds; for short durations. */
int64_t fp_clock_mono_ns(void);
