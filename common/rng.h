/* A small seeded random stream (splitmix64) for the simulator and the benchmarks' workload: the
 * same seed gives the same values on every machine, which rand() and random() do not promise. */
#pragma once

#include <math.h>
#include <stdint.h>

/* The next 64 random bits; *state is the whole generator (any value is a valid seed). */
static inline uint64_t fp_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline double fp_rng_unif(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(fp_rng_next(state) >> 11) * 0x1p-53);
}

/* Standard normal (Box-Muller, one value per two draws). */
static inline double fp_rng_gauss(uint64_t *state)
{
    double u1 = fp_rng_unif(state, 0, 1), u2 = fp_rng_unif(state, 0, 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}
