/* The standard fleet workload generator behind bench/workload.h, moved here from chunk-bench.c
 * unchanged in what it draws and in which order (bench/chunk's figures depend on it): per device
 * the hardware and quantisation, then the per-device parameters, then each time step's values;
 * after all devices, which ones go silent. If you change the draws, bench/chunk's output changes:
 * say so in the commit. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "workload.h"

const struct fp_workload_series_def fp_workload_series[FP_WORKLOAD_SERIES] = {
    {"tokens_per_second", "tokens_per_second", NULL, false},
    {"ttft_seconds", "ttft_seconds", NULL, false},
    {"request_latency_seconds", "request_latency_seconds", NULL, false},
    {"requests_total", "requests_total", NULL, true},
    {"tokens_generated_total", "tokens_generated_total", NULL, true},
    {"memory_available_bytes", "memory_available_bytes", NULL, false},
    {"memory_pressure_some_avg10", "memory_pressure_some_avg10", NULL, false},
    {"temperature_celsius_zone0", "temperature_celsius", "0", false},
    {"temperature_celsius_zone1", "temperature_celsius", "1", false},
    {"cpu_utilization_ratio", "cpu_utilization_ratio", NULL, false},
};

static const char *const hw_names[4] = {"jetson-orin-agx", "jetson-orin-nano", "rk3588",
                                        "x86-n100"};
static const char *const model_names[3] = {"llama-3.1-8b-instruct", "qwen2.5-7b-instruct",
                                           "mistral-7b-instruct"};
static const char *const site_names[10] = {"site-00", "site-01", "site-02", "site-03", "site-04",
                                           "site-05", "site-06", "site-07", "site-08", "site-09"};

/* --- a seeded generator (common/rng.h: splitmix64) ------------------------------------------ */

struct rng {
    uint64_t state;
};

static uint64_t rnd(struct rng *g)
{
    return fp_rng_next(&g->state);
}

static double unif(struct rng *g, double lo, double hi)
{
    return fp_rng_unif(&g->state, lo, hi);
}

static double gauss(struct rng *g)
{
    return fp_rng_gauss(&g->state);
}

static double lognormal(struct rng *g, double sigma)
{
    return exp(sigma * gauss(g));
}

static int64_t poisson(struct rng *g, double lambda) /* Knuth; lambda here is at most a few */
{
    double l = exp(-lambda), p = 1.0;
    int64_t k = 0;
    do {
        k++;
        p *= unif(g, 0, 1);
    } while (p > l);
    return k - 1;
}

static double clip(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static double np_round(double x, int decimals) /* numpy.round: x * 10^d, rint, / 10^d */
{
    static const double p10[] = {1, 10, 100, 1000, 10000};
    return nearbyint(x * p10[decimals]) / p10[decimals];
}

/* fleetgen's _walk for one device: mean-reverting, clipped random walk. */
static void walk(struct rng *g, double *out, size_t n, double start, double sigma, double lo,
                 double hi, double revert, double target)
{
    double x = start;
    for (size_t t = 0; t < n; t++) {
        x = clip(x + gauss(g) * sigma + revert * (target - x), lo, hi);
        out[t] = x;
    }
}

/* --- the workload ------------------------------------------------------------------------------ */

void fp_workload_fini(struct fp_workload *w)
{
    free(w->dev);
    free(w->len);
    free(w->values);
    free(w->ts);
    memset(w, 0, sizeof(*w));
}

int fp_workload_init(struct fp_workload *w, size_t devices, uint64_t seed, int64_t end_ms)
{
    static const double hw_speed_tab[4] = {1.6, 0.7, 0.5, 0.9};
    static const double hw_mem_gib[4] = {16, 4, 8, 8};
    static const double hw_temp_tab[4] = {52.0, 58.0, 61.0, 47.0};
    const size_t n = FP_WORKLOAD_STEPS;
    struct rng g = {seed};
    /* The labels fleetgen adds come from their own stream, so the values stay as they were. */
    struct rng lg = {seed ^ UINT64_C(0x6c6162656c73)};
    double *util, *walk0, *walk1;
    int r = -ENOMEM;

    memset(w, 0, sizeof(*w));
    if (devices == 0)
        return -EINVAL;
    util = malloc(n * sizeof(double));
    walk0 = malloc(n * sizeof(double));
    walk1 = malloc(n * sizeof(double));
    w->devices = devices;
    w->steps = n;
    w->dev = calloc(devices, sizeof(*w->dev));
    w->len = calloc(devices, sizeof(size_t));
    w->values = malloc(devices * FP_WORKLOAD_SERIES * n * sizeof(double));
    w->ts = malloc(n * sizeof(int64_t));
    if (!util || !walk0 || !walk1 || !w->dev || !w->len || !w->values || !w->ts)
        goto out;
    for (size_t t = 0; t < n; t++)
        w->ts[t] = end_ms - FP_WORKLOAD_STEP_MS * (int64_t)(n - 1 - t);

    for (size_t d = 0; d < devices; d++) {
        size_t hw = (size_t)(rnd(&g) % 4);
        bool q4 = rnd(&g) % 2 == 0;
        double hw_speed = hw_speed_tab[hw], q_speed = q4 ? 1.35 : 1.0;
        double tps_mean = unif(&g, 12, 30) * hw_speed * q_speed;
        double ttft_base = unif(&g, 0.08, 0.6) / hw_speed;
        double toks_per_req = unif(&g, 120, 400);
        double req_per_util = unif(&g, 0.02, 0.3);
        double req_total = (double)(rnd(&g) % 50000), tok_total = (double)(rnd(&g) % 10000000);
        double pages_total = hw_mem_gib[hw] * 1073741824.0 / 4096;
        double hw_temp = hw_temp_tab[hw] * 1000, psi = 0;
        double *v[FP_WORKLOAD_SERIES];
        struct fp_workload_device *dv = &w->dev[d];

        (void)snprintf(dv->id, sizeof(dv->id), "edge-%04zu", d);
        dv->hw = hw_names[hw];
        dv->quant = q4 ? "q4_0" : "q8_0";
        dv->model = model_names[rnd(&lg) % 3];
        dv->model_version = rnd(&lg) % 2 ? "v2" : "v1";
        dv->site = site_names[rnd(&lg) % 10];

        for (size_t s = 0; s < FP_WORKLOAD_SERIES; s++)
            v[s] = fp_workload_values(w, d, s);
        for (size_t t = 0; t < n; t++)
            util[t] = clip(0.55 + 0.12 * gauss(&g), 0.02, 1.0);
        for (size_t t = 0; t < n; t++) {
            double tps = np_round(fmax(tps_mean * (1 + 0.08 * gauss(&g)), 0.5), 2);
            double ttft = np_round(ttft_base * lognormal(&g, 0.35), 4);
            v[0][t] = tps;
            v[1][t] = ttft;
            v[2][t] = np_round(ttft + toks_per_req / tps * lognormal(&g, 0.15), 3);
            req_total += (double)poisson(&g, util[t] * req_per_util * 10);
            v[3][t] = req_total;
            tok_total += nearbyint(tps * 10 * util[t]);
            v[4][t] = tok_total;
            if (unif(&g, 0, 1) < 0.004)
                psi = unif(&g, 2.0, 45.0);
            else
                psi *= 0.82;
            if (psi < 0.05)
                psi = 0;
            v[6][t] = np_round(psi, 2);
            v[9][t] = np_round(clip(util[t] * 0.8 + 0.05 + 0.05 * gauss(&g), 0, 1), 3);
        }
        walk(&g, v[5], n, pages_total * unif(&g, 0.3, 0.6), 1500, pages_total * 0.03,
             pages_total * 0.95, 0.002, pages_total * 0.45);
        for (size_t t = 0; t < n; t++)
            v[5][t] = nearbyint(v[5][t]) * 4096;
        walk(&g, walk0, n, hw_temp + 3000 * gauss(&g), 120, 25000, 95000, 0.01, hw_temp);
        walk(&g, walk1, n, 0, 60, -3000, 3000, 0.02, 0);
        for (size_t t = 0; t < n; t++) {
            v[7][t] = nearbyint(walk0[t]) / 1000.0;
            v[8][t] = nearbyint(walk0[t] - 4000 + walk1[t]) / 1000.0;
        }
        w->len[d] = n;
    }
    /* 1% of devices (rounded half up) stop reporting 6..30 minutes before the end: their last
     * sample is 36..180 steps before the grid's last. */
    for (size_t k = 0; k < (devices + 50) / 100; k++) {
        size_t d;
        do
            d = (size_t)(rnd(&g) % devices);
        while (w->len[d] != n); /* without replacement, as numpy's choice */
        w->len[d] = n - (36 + (size_t)(rnd(&g) % 145));
        w->silent++;
    }
    for (size_t d = 0; d < devices; d++)
        w->samples += w->len[d] * FP_WORKLOAD_SERIES;
    r = 0;
out:
    free(util);
    free(walk0);
    free(walk1);
    if (r != 0)
        fp_workload_fini(w);
    return r;
}
