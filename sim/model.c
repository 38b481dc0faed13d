/* The simulated device model behind model.h. Parameters and shapes follow fleetgen.py (and
 * bench/workload.c): per-device speed from hardware and quantisation, log-normal time to first
 * token, Poisson request arrivals, mean-reverting memory and temperature walks, bursts of memory
 * pressure. Each device has its own random stream, so devices are independent of each other and
 * of the order in which they are stepped. */
#include "model.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const struct fp_sim_series_def fp_sim_series[FP_SIM_SERIES_MAX] = {
    {"llamacpp_generation_tokens_per_second", false, {{0}}, 0},
    {"gen_ai_server_time_to_first_token_seconds", false, {{"model", NULL}}, 1},
    {"gen_ai_server_request_duration_seconds", false, {{"model", NULL}, {"outcome", "ok"}}, 2},
    {"gen_ai_server_requests_total", true, {{"model", NULL}, {"outcome", "ok"}}, 2},
    {"gen_ai_token_usage_tokens_total", true, {{"model", NULL}, {"type", "output"}}, 2},
    {"memory_available_bytes", false, {{0}}, 0},
    {"memory_pressure_some_avg10", false, {{0}}, 0},
    {"temperature_celsius", false, {{"source", "thermal"}, {"zone", "thermal_zone0"}}, 2},
    {"temperature_celsius", false, {{"source", "thermal"}, {"zone", "thermal_zone1"}}, 2},
    {"cpu_utilization_ratio", false, {{0}}, 0},
    {"gen_ai_server_requests_total", true, {{"model", NULL}, {"outcome", "error"}}, 2},
    {"gen_ai_server_requests_total", true, {{"model", NULL}, {"outcome", "fallback"}}, 2},
};

static const char *const hw_names[4] = {"jetson-orin-agx", "jetson-orin-nano", "rk3588",
                                        "x86-n100"};
static const double hw_speed[4] = {1.6, 0.7, 0.5, 0.9};
static const double hw_mem_gib[4] = {16, 4, 8, 8};
static const double hw_temp_c[4] = {52.0, 58.0, 61.0, 47.0};
static const char *const model_names[3] = {"llama-3.1-8b-instruct", "qwen2.5-7b-instruct",
                                           "mistral-7b-instruct"};
static const char *const site_names[10] = {"site-00", "site-01", "site-02", "site-03", "site-04",
                                           "site-05", "site-06", "site-07", "site-08", "site-09"};

static double poisson(uint64_t *s, double lambda)
{
    /* Knuth's method is exact and cheap for the small rates here; a normal approximation
     * takes over for long steps, where Knuth's loop would run for lambda iterations. */
    if (lambda > 30)
        return fmax(0, nearbyint(lambda + sqrt(lambda) * fp_rng_gauss(s)));
    double l = exp(-lambda), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= fp_rng_unif(s, 0, 1);
    } while (p > l);
    return k - 1;
}

static double clip(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static double round_to(double x, double scale)
{
    return nearbyint(x * scale) / scale;
}

void fp_sim_device_init(struct fp_sim_device *d, const char *prefix, size_t index, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15u ^ (index + 1) * 0xd1b54a32d192ed03u;
    size_t hw, model;
    bool q4;

    memset(d, 0, sizeof(*d));
    (void)snprintf(d->id, sizeof(d->id), "%s%04zu", prefix, index);
    hw = (size_t)(fp_rng_next(&s) % 4);
    q4 = fp_rng_next(&s) % 2 == 0;
    model = (size_t)(fp_rng_next(&s) % 3);
    d->hw = hw_names[hw];
    d->quant = q4 ? "q4_0" : "q8_0";
    d->model = model_names[model];
    d->model_version = fp_rng_next(&s) % 2 ? "v2" : "v1";
    d->cohort = strcmp(d->model_version, "v2") == 0 ? "canary" : "stable";
    d->site = site_names[fp_rng_next(&s) % 10];
    d->tps_mean = fp_rng_unif(&s, 12, 30) * hw_speed[hw] * (q4 ? 1.35 : 1.0);
    d->ttft_base = fp_rng_unif(&s, 0.08, 0.6) / hw_speed[hw];
    d->toks_per_req = fp_rng_unif(&s, 120, 400);
    d->req_per_util = fp_rng_unif(&s, 0.02, 0.3);
    d->err_ratio = fp_rng_unif(&s, 0.0, 0.02);
    d->fallback_ratio = fp_rng_unif(&s, 0.0, 0.05);
    d->req_total = (double)(fp_rng_next(&s) % 50000);
    d->tok_total = (double)(fp_rng_next(&s) % 10000000);
    d->pages_total = hw_mem_gib[hw] * 1073741824.0 / 4096;
    d->mem_pages = d->pages_total * fp_rng_unif(&s, 0.3, 0.6);
    d->hw_temp = hw_temp_c[hw] * 1000;
    d->t0 = d->hw_temp + 3000 * fp_rng_gauss(&s);
    d->speed = 1.0;
    d->rng = s;
}

void fp_sim_device_step(struct fp_sim_device *d, int64_t step_ms, bool outcomes,
                        double v[FP_SIM_SERIES_MAX])
{
    uint64_t *s = &d->rng;
    double step_s = (double)step_ms / 1000.0;
    double util = clip(0.55 + 0.12 * fp_rng_gauss(s), 0.02, 1.0);
    double tps = round_to(fmax(d->tps_mean * d->speed * (1 + 0.08 * fp_rng_gauss(s)), 0.5), 100);
    double ttft = round_to(d->ttft_base / d->speed * exp(0.35 * fp_rng_gauss(s)), 10000);
    double reqs = poisson(s, util * d->req_per_util * step_s);

    v[0] = tps;
    v[1] = ttft;
    v[2] = round_to(ttft + d->toks_per_req / tps * exp(0.15 * fp_rng_gauss(s)), 1000);
    d->req_total += reqs;
    v[3] = d->req_total;
    d->tok_total += nearbyint(tps * step_s * util);
    v[4] = d->tok_total;
    d->mem_pages =
        clip(d->mem_pages + 1500 * fp_rng_gauss(s) + 0.002 * (d->pages_total * 0.45 - d->mem_pages),
             d->pages_total * 0.03, d->pages_total * 0.95);
    v[5] = nearbyint(d->mem_pages) * 4096;
    if (fp_rng_unif(s, 0, 1) < 0.004)
        d->psi = fp_rng_unif(s, 2.0, 45.0);
    else
        d->psi *= 0.82;
    if (d->psi < 0.05)
        d->psi = 0;
    v[6] = round_to(d->psi, 100);
    d->t0 = clip(d->t0 + 120 * fp_rng_gauss(s) + 0.01 * (d->hw_temp - d->t0), 25000, 95000);
    d->t1 = clip(d->t1 + 60 * fp_rng_gauss(s) - 0.02 * d->t1, -3000, 3000);
    v[7] = nearbyint(d->t0) / 1000.0;
    v[8] = nearbyint(d->t0 - 4000 + d->t1) / 1000.0;
    v[9] = round_to(clip(util * 0.8 + 0.05 + 0.05 * fp_rng_gauss(s), 0, 1), 1000);
    if (outcomes) {
        d->err_total += poisson(s, reqs * d->err_ratio);
        d->fallback_total += poisson(s, reqs * d->fallback_ratio);
        v[10] = d->err_total;
        v[11] = d->fallback_total;
    }
}

const char *fp_sim_device_identity(const struct fp_sim_device *d, const char *name)
{
    if (strcmp(name, "model") == 0)
        return d->model;
    if (strcmp(name, "model_version") == 0)
        return d->model_version;
    if (strcmp(name, "quant") == 0)
        return d->quant;
    if (strcmp(name, "site") == 0)
        return d->site;
    if (strcmp(name, "hw_class") == 0 || strcmp(name, "hw") == 0)
        return d->hw;
    if (strcmp(name, "cohort") == 0)
        return d->cohort;
    if (strcmp(name, "runtime") == 0)
        return "llama.cpp";
    return NULL;
}
