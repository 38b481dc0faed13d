/* Known data for the query tests: small fleets written through the storage write API, the way
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

/* 2024-11-23T22:13:20Z, a whole minute: start of the aggregation fleet's first 60 s bucket. */
#define FIXTURE_F0_MS INT64_C(1732400000000)

/* Writes the aggregation fleet into the existing, empty directory dir (times in seconds after
 * F0 = FIXTURE_F0_MS):
 *   ttft_seconds (gauge):
 *     edge-a {model=llama, site=lab}:  0 s: 0.5, 30 s: 1.5, 60 s: 2.5
 *     edge-b {model=llama, site=home}: 10 s: 1, 59.999 s: 3
 *     edge-c {model=qwen, site=lab}:   20 s: 4, 90 s: 6
 *     edge-d {model=qwen}:             100 s: 8
 *   requests_total (counter):
 *     edge-a: 0 s: 100, 20 s: 130, 40 s: 10 (a reset), 70 s: 50, 110 s: 80
 *     edge-b: 5 s: 7, 50 s: 9
 *   lat_seconds (gauge): devices lat-00 .. lat-19, 50 samples each at j s + i ms (j = 0..49,
 *     device i): 0.1 * (j + 1) on lat-00 .. lat-18, 10 * (j + 1) on lat-19 (one slow device).
 *     Pooled p50 = 2.7, p95 = 5, p99 = 400 (rank floor(q * 999) of the 1000 values); the p95
 *     of per-device p95s would be 4.7.
 * Returns 0, or a store code / -errno with err set. */
int fixture_write_fleet(const char *dir, char *err, size_t err_size);

/* 2024-11-25T01:46:40Z, a whole minute: the first batch of the state fleet. */
#define FIXTURE_S0_MS INT64_C(1732499200000)

/* Writes the state fleet into the existing, empty directory dir: 13 devices sending a batch
 * every 10 s, each batch one sample per series stamped at the batch time and received 500 ms
 * later (times in seconds after S0 = FIXTURE_S0_MS, batch k at 10 k s):
 *   a-00 .. a-05: model llama, model_version v1, quant Q4_K_M, site lab, hw_class orin,
 *     cohort stable; batches k = 0..5;
 *   b-00 .. b-03: model llama, model_version v2, quant Q4_K_M, site home, hw_class orin,
 *     cohort canary; batches k = 0..5;
 *   q-00: model qwen, model_version v1, quant Q8_0, site lab, hw_class pi5; batches k = 0..2
 *     only (last received at 20.5 s);
 *   q-01: as q-00, one batch at -600 s (received -599.5 s);
 *   n-00: no identity; one batch at 50 s with temperature only;
 *   @collector: one batch at 50 s (a component, never a fleet device).
 * Events (kind canary, severity info): a-00 one per batch at the batch time, message "e<k>";
 * n-00 105 at 30 s + 100 ms * e, message "e<e>", e = 0..104.
 * Series per batch (device index i for a-, j for b-):
 *   llamacpp_generation_tokens_per_second: a 20 + i, b 16 + j, q-00 9, q-01 7;
 *   gen_ai_server_time_to_first_token_seconds{model}: a 0.5, b 0.8, q 1.5;
 *   gen_ai_server_requests_total{model,outcome}: ok 10 k (b-03: 0, 10, 20, 5, 15, 25, a reset),
 *     error k (a) or 3 k (b), fallback 0 (a) or k (b); q devices none;
 *   memory_pressure_some_avg10: a i + 0.1 k, b 10 + j + 0.1 k, q 1;
 *   temperature_celsius{source=thermal,zone=thermal_zone0}: a 40 + i, b 50 + j, q-00 70,
 *     q-01 30, n-00 35; zone1 the same minus 5 (not n-00).
 * Returns 0, or a store code / -errno with err set. */
int fixture_write_states(const char *dir, char *err, size_t err_size);
