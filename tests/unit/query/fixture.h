/* Known data for the query tests: a small fleet written through the storage write API, the way
 * the collector writes it, so the tests read back what a real store holds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* 2024-11-24T01:39:05.123Z: a millisecond timestamp that is not a round decimal in binary. */
#define FIXTURE_T0_MS INT64_C(1732412345123)

/* First point of the large series ("bench_big" on device "edge-03"), one point per second. */
#define FIXTURE_BIG0_MS INT64_C(1700000000000)

/* Writes the fixture into the existing, empty directory dir:
 *   edge-01 (2 batches): temperature_celsius in two zones (51.234 is the latest of zone0),
 *     memory_available_bytes, llama_tokens_per_second = 0.1 + 0.2, and probe_up with one point
 *     at now_ms - 60 s (value 7) and one at now_ms - 2 h (value 6);
 *   edge-02 (1 batch): temperature_celsius in one zone (60.5);
 *   edge-03 (1 batch, only when big_points > 0): bench_big with big_points points, value i / 2.
 * Returns 0, or a store code / -errno with err set. */
int fixture_write(const char *dir, int64_t now_ms, size_t big_points, char *err, size_t err_size);
