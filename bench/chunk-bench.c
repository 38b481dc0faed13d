/* Chunk codec benchmark on the standard fleet workload (shared/reference/workload/fleetgen.py):
 * D devices x 10 series, 6 h at 10 s, 1% of devices going silent 6-30 min before the end, as
 * bench/workload.c generates it natively (same shapes and precisions, our own random streams).
 *
 * It cuts every series into chunks the way the store will (append until FP_CHUNK_E_FULL or
 * --chunk-samples, then finish), checks that every sample decodes bit-identically, and reports
 * chunk bytes per sample per series and overall next to two baselines on the same samples: our
 * chunks with FP_CHUNK_ENC_FORCE_XOR (plain Gorilla XOR values), and the size Prometheus' XOR
 * chunks would take (120 samples per chunk, computed bit for bit, not encoded). Timings are the
 * median over --reps passes. Beside them it estimates the entropy floor of the values, the fewest
 * bits a lossless per-series coder could spend on them (section "entropy floor" says how and
 * why). The last line of output is one JSON object. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk.h"
#include "workload.h"

#define N_SERIES FP_WORKLOAD_SERIES

/* Timestamp jitter for the +-1 ms run: its own seeded stream, restarted for every pass. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static const double *series_of(const struct fp_workload *w, size_t dev, size_t s)
{
    return fp_workload_values(w, dev, s);
}

/* --- encoding every series into chunks ------------------------------------------------------- */

struct encoded {
    uint8_t *buf;    /**< all chunks back to back */
    size_t size, cap;
    size_t *off;     /**< chunk start offsets, one past the last at [n_chunks] */
    size_t n_chunks, chunks_cap;
    size_t bytes[N_SERIES];    /**< chunk bytes per series kind */
    size_t samples[N_SERIES];  /**< samples per series kind */
    size_t kinds[4][N_SERIES]; /**< chunks by enum fp_chunk_kind */
    size_t decimals[7][N_SERIES];
};

static void die(const char *what, int r)
{
    fprintf(stderr, "chunk-bench: %s: %s\n", what, fp_chunk_strerror(r));
    exit(1);
}

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (q == NULL)
        die("realloc", -ENOMEM);
    *p = q;
    *cap = c;
}

static void seal(struct fp_chunk_enc *e, struct encoded *out, size_t s)
{
    size_t len;
    struct fp_chunk_info info;
    int r;

    grow((void **)&out->buf, &out->cap, out->size + 65536, 1);
    r = fp_chunk_enc_finish(e, out->buf + out->size, out->cap - out->size, &len);
    if (r != 0)
        die("finish", r);
    if (fp_chunk_info(out->buf + out->size, len, &info) != 0)
        die("info", FP_CHUNK_E_CORRUPT);
    out->kinds[info.kind][s]++;
    out->decimals[info.decimals][s]++;
    out->bytes[s] += len;
    out->size += len;
    grow((void **)&out->off, &out->chunks_cap, out->n_chunks + 2, sizeof(size_t));
    out->off[++out->n_chunks] = out->size;
    fp_chunk_enc_reset(e);
}

static void encode_all(const struct fp_workload *w, const struct fp_chunk_enc_opts *o,
                       int64_t jitter_ms, struct encoded *out)
{
    struct fp_chunk_enc *e = NULL;
    int r = fp_chunk_enc_new(o, &e);
    if (r != 0)
        die("new", r);
    free(out->buf);
    free(out->off);
    memset(out, 0, sizeof(*out));
    grow((void **)&out->off, &out->chunks_cap, 1, sizeof(size_t));
    out->off[0] = 0;
    rng_state = 12345;
    for (size_t d = 0; d < w->devices; d++) {
        for (size_t s = 0; s < N_SERIES; s++) {
            const double *v = series_of(w, d, s);
            for (size_t t = 0; t < w->len[d]; t++) {
                int64_t ts = w->ts[t];
                if (jitter_ms > 0)
                    ts += (int64_t)(rnd() % (uint64_t)(2 * jitter_ms + 1)) - jitter_ms;
                r = fp_chunk_enc_append(e, ts, v[t]);
                if (r == FP_CHUNK_E_FULL) {
                    seal(e, out, s);
                    r = fp_chunk_enc_append(e, ts, v[t]);
                }
                if (r != 0)
                    die("append", r);
            }
            seal(e, out, s);
            out->samples[s] += w->len[d];
        }
    }
    fp_chunk_enc_destroy(&e);
}

/* Decodes every chunk; with w, checks each value against the workload (bit for bit). */
/* Steps (device d, series s, step t) to the next sample in the order the chunks hold them. */
static void next_sample(const struct fp_workload *w, size_t *d, size_t *s, size_t *t)
{
    if (++*t == w->len[*d]) {
        *t = 0;
        if (++*s == N_SERIES) {
            *s = 0;
            ++*d;
        }
    }
}

static double decode_all(const struct encoded *enc, const struct fp_workload *w)
{
    struct fp_chunk_iter it;
    int64_t ts;
    double v, sum = 0;
    size_t d = 0, s = 0, t = 0;
    int r;

    for (size_t c = 0; c < enc->n_chunks; c++) {
        r = fp_chunk_iter_init(&it, enc->buf + enc->off[c], enc->off[c + 1] - enc->off[c]);
        if (r != 0)
            die("iter_init", r);
        while ((r = fp_chunk_iter_next(&it, &ts, &v)) == 0) {
            sum += v;
            if (w != NULL) {
                uint64_t a, b;
                double want = series_of(w, d, s)[t];
                memcpy(&a, &v, 8);
                memcpy(&b, &want, 8);
                if (a != b) {
                    fprintf(stderr, "chunk-bench: mismatch dev %zu series %zu t %zu: %.17g != %.17g\n",
                            d, s, t, v, want);
                    exit(1);
                }
                next_sample(w, &d, &s, &t);
            }
        }
        if (r != FP_CHUNK_E_END)
            die("iter_next", r);
    }
    if (w != NULL && d != w->devices)
        die("decoded too few samples", FP_CHUNK_E_CORRUPT);
    return sum;
}

/* Every chunk through fp_chunk_decode (what the store's reads use); with w, checked bit for bit
 * against the workload like decode_all. */
static double decode_block_all(const struct encoded *enc, const struct fp_workload *w)
{
    int64_t ts[FP_CHUNK_MAX_SAMPLES];
    double v[FP_CHUNK_MAX_SAMPLES], sum = 0;
    size_t d = 0, s = 0, t = 0;

    for (size_t c = 0; c < enc->n_chunks; c++) {
        int n = fp_chunk_decode(enc->buf + enc->off[c], enc->off[c + 1] - enc->off[c], ts, v);
        if (n < 0)
            die("fp_chunk_decode", n);
        for (int i = 0; i < n; i++) {
            sum += v[i];
            if (w == NULL)
                continue;
            double want = series_of(w, d, s)[t];
            if (memcmp(&v[i], &want, sizeof(want)) != 0 || ts[i] != w->ts[t]) {
                fprintf(stderr, "chunk-bench: block decode mismatch dev %zu series %zu t %zu\n", d,
                        s, t);
                exit(1);
            }
            next_sample(w, &d, &s, &t);
        }
    }
    if (w != NULL && d != w->devices)
        die("block decode: too few samples", FP_CHUNK_E_CORRUPT);
    return sum;
}

/* --- Prometheus XOR chunk size, computed ----------------------------------------------------- */

static unsigned uvarint_len(uint64_t x)
{
    unsigned n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

/* Bits of Prometheus' XOR value code (tsdb/chunkenc/xor.go: writeVDelta). */
static unsigned prom_xor_bits(uint64_t *prev, unsigned *lead_w, unsigned *trail_w, uint64_t cur)
{
    uint64_t x = cur ^ *prev;
    *prev = cur;
    if (x == 0)
        return 1;
    unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
    if (lead >= 32)
        lead = 31;
    if (*lead_w != 0xff && lead >= *lead_w && trail >= *trail_w)
        return 2 + 64 - *lead_w - *trail_w;
    *lead_w = lead;
    *trail_w = trail;
    return 2 + 5 + 6 + 64 - lead - trail;
}

/* Bytes of Prometheus XOR chunks (120 samples each) for one series: u16 count, varint t0, v0 as
 * 64 bits, uvarint t1 - t0, then DoD codes (1 / 2+14 / 3+17 / 4+20 / 4+64 bits) and XOR codes. */
static size_t prom_xor_bytes(const int64_t *ts, const double *v, size_t n)
{
    size_t total = 0;
    for (size_t c0 = 0; c0 < n; c0 += 120) {
        size_t c1 = c0 + 120 < n ? c0 + 120 : n;
        uint64_t bits = 16, prev, cur;
        unsigned lead = 0xff, trail = 0;
        int64_t zt = ts[c0];
        memcpy(&prev, &v[c0], 8);
        bits += 8 * uvarint_len(((uint64_t)zt << 1) ^ (uint64_t)(zt >> 63)) + 64;
        for (size_t i = c0 + 1; i < c1; i++) {
            memcpy(&cur, &v[i], 8);
            if (i == c0 + 1) {
                bits += 8 * uvarint_len((uint64_t)(ts[i] - ts[i - 1]));
            } else {
                int64_t dod = (ts[i] - ts[i - 1]) - (ts[i - 1] - ts[i - 2]);
                bits += dod == 0                        ? 1
                        : dod >= -8191 && dod <= 8192     ? 16
                        : dod >= -65535 && dod <= 65536   ? 20
                        : dod >= -524287 && dod <= 524288 ? 24
                                                          : 68;
            }
            bits += prom_xor_bits(&prev, &lead, &trail, cur);
        }
        total += (bits + 7) / 8;
    }
    return total;
}

/* --- entropy floor of the workload's values ------------------------------------------------- */

/* Why: an issue asked for bytes_per_sample <= 1.0 including indexes and rollups. This measures
 * how few bytes any lossless per-series coder could spend on this data, so the answer rests on a
 * figure, not on an argument. Values only: the timestamps are a fixed 10 s grid, next to free for
 * any coder, while the chunk figures also pay for timestamps and chunk headers. It is the
 * entropy of fleetgen's random model, not of its bits: a coder that knew the seed needs nothing.
 *
 * Model: bench/workload.c makes every series an integer sequence (value * 10^decimals; memory in
 * 4096-byte pages) that, given per-device parameters, is i.i.d. (tps, ttft, latency, cpu), has
 * i.i.d. increments (counters, near enough the random walks: their mean reversion is 0.2-2% a
 * step) or decays by a known factor (pressure bursts, x0.82 a step). So the entropy of the
 * residual under the matching simple predictor is the series' entropy rate. Per device-series we
 * take x - rint(mean) (order 0), x[i] - x[i-1] (order 1) and, for pressure, x[i] - rint(0.82
 * x[i-1]), estimate each residual's entropy from that device-series' own samples and keep the
 * smallest. One histogram per device-series, not one per series, because scales differ by device.
 *
 * Estimator: the plain plug-in entropy of ~2160 samples is biased low and cannot exceed
 * log2(2160) = 11.1 bits, while ttft, latency and memory carry 12-13: it understates the floor
 * by ~0.7 bit a sample on average, as much as the gap this is meant to measure. So the floor
 * reported coarsens the residuals into bins of 2^k units, k the smallest leaving at most ~N/16
 * effective bins (plug-in entropy <= log2 N - 4), and adds k bits (even spread within a bin) and
 * Miller-Madow's (bins - 1) / (2 N ln 2). k > 0 only for smooth residuals wide enough that a bin
 * is sigma/33..sigma/16 of a normal. On 2160-sample draws of rounded normals (sigma 50..5000),
 * lognormals (as ttft) and Poissons (as requests) it came out 0.00-0.02 bit under the exact
 * entropy, where the plug-in was up to 3.4 bits under. The plug-in figure is reported beside it
 * (the _plugin_ keys) to show that bias. Both stay biased low, the conservative direction for
 * showing a target is out of reach: neither charges for the first sample of a series, for
 * describing the per-device-series histogram, or for choosing the predictor after seeing the data.
 *
 * Cross-series (the _cross_series_ keys): the same with zone1 coded as (zone1 - zone0), whose own
 * walk is half as wide, and cpu predicted from the step's utilisation that tokens_generated_total
 * and tokens_per_second reveal (cpu ~ a + b * dtokens/tps, least squares per device-series), each
 * where it beats the per-series floor. It shows what modelling across series could still save.
 * Left out as small: tokens given tps and latency given ttft and tps saved a further 0.09 and
 * 0.19 bit a sample (0.003 bytes/sample in all) when tried once with scratch predictors. */

/* How bench/workload.c quantises each series, indexed like fp_workload_series: value *
 * 10^decimals / divisor is an integer (checked, so a changed precision stops the run). */
static const struct {
    int decimals;   /**< decimal digits the generator rounds to */
    double divisor; /**< memory_available_bytes is whole 4096-byte pages */
    double decay;   /**< order-1 predictor factor of the pressure bursts, 0 for none */
} floor_model[N_SERIES] = {
    {2, 1, 0},    /* tokens_per_second */
    {4, 1, 0},    /* ttft_seconds */
    {3, 1, 0},    /* request_latency_seconds */
    {0, 1, 0},    /* requests_total */
    {0, 1, 0},    /* tokens_generated_total */
    {0, 4096, 0}, /* memory_available_bytes */
    {2, 1, 0.82}, /* memory_pressure_some_avg10: fleetgen's burst decay */
    {3, 1, 0},    /* temperature_celsius_zone0 */
    {3, 1, 0},    /* temperature_celsius_zone1 */
    {3, 1, 0},    /* cpu_utilization_ratio */
};

/* The series the cross-series predictors use, checked by name in entropy_floor. */
enum { S_TPS = 0, S_TOKENS = 4, S_ZONE0 = 7, S_ZONE1 = 8, S_CPU = 9 };

struct floor_bits {
    double bits[N_SERIES];        /**< bits over all samples: binned estimate, per series alone */
    double plugin_bits[N_SERIES]; /**< the same with the plain plug-in estimate */
    double cross_bits[N_SERIES];  /**< binned estimate with the cross-series predictors */
    size_t samples[N_SERIES];     /**< samples per series kind */
};

struct entropy_est {
    double bits;        /**< binned and Miller-Madow corrected, bits per sample */
    double plugin_bits; /**< plain plug-in over the exact residuals, bits per sample */
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Entropy estimates of the n >= 1 integers in r (sorted in place), as the comment above says. */
static struct entropy_est entropy_of(int64_t *r, size_t n)
{
    struct entropy_est e = {0, 0};
    double limit = log2((double)n) - 4;

    qsort(r, n, sizeof(*r), cmp_i64);
    for (unsigned k = 0; k < 64; k++) {
        double h = 0;
        size_t bins = 0, j;
        /* bins of 2^k units from the smallest residual; sorted, so each bin is one run */
        for (size_t i = 0; i < n; i = j) {
            uint64_t b = ((uint64_t)r[i] - (uint64_t)r[0]) >> k;
            j = i + 1;
            while (j < n && ((uint64_t)r[j] - (uint64_t)r[0]) >> k == b)
                j++;
            double p = (double)(j - i) / (double)n;
            h -= p * log2(p);
            bins++;
        }
        if (k == 0)
            e.plugin_bits = h;
        if (h <= limit || bins == 1) {
            e.bits = h + (double)(bins - 1) / (2 * (double)n * log(2.0)) + k;
            break;
        }
    }
    return e;
}

/* The smaller estimates of the order-0 and order-1 residuals of x[0 .. n) (and of the decay
 * predictor when decay > 0), over i >= 1 so every predictor has a previous sample; r: scratch. */
static struct entropy_est best_residual(const int64_t *x, size_t n, double decay, int64_t *r)
{
    struct entropy_est best, e;
    double mean = 0;
    int64_t m;

    for (size_t i = 1; i < n; i++)
        mean += (double)x[i];
    m = llrint(mean / (double)(n - 1));
    for (size_t i = 1; i < n; i++)
        r[i - 1] = x[i] - m;
    best = entropy_of(r, n - 1);
    for (size_t i = 1; i < n; i++)
        r[i - 1] = x[i] - x[i - 1];
    e = entropy_of(r, n - 1);
    best.bits = fmin(best.bits, e.bits);
    best.plugin_bits = fmin(best.plugin_bits, e.plugin_bits);
    if (decay > 0) {
        for (size_t i = 1; i < n; i++)
            r[i - 1] = x[i] - llrint(decay * (double)x[i - 1]);
        e = entropy_of(r, n - 1);
        best.bits = fmin(best.bits, e.bits);
        best.plugin_bits = fmin(best.plugin_bits, e.plugin_bits);
    }
    return best;
}

/* Binned estimate of cpu given the utilisation dtokens/tps reveals: least squares cpu ~ a + b u
 * over i >= 1, then the entropy of cpu - rint(a + b u); r: scratch. */
static double cpu_given_tokens(const int64_t *cpu, const int64_t *tok, const int64_t *tps, size_t n,
                               int64_t *r)
{
    double su = 0, sc = 0, suu = 0, suc = 0, a, b, m = (double)(n - 1);

    for (size_t i = 1; i < n; i++) {
        double u = (double)(tok[i] - tok[i - 1]) / (double)tps[i];
        su += u;
        sc += (double)cpu[i];
        suu += u * u;
        suc += u * (double)cpu[i];
    }
    b = suu * m - su * su > 0 ? (suc * m - su * sc) / (suu * m - su * su) : 0;
    a = (sc - b * su) / m;
    for (size_t i = 1; i < n; i++) {
        double u = (double)(tok[i] - tok[i - 1]) / (double)tps[i];
        r[i - 1] = cpu[i] - llrint(a + b * u);
    }
    return entropy_of(r, n - 1).bits;
}

static void entropy_floor(const struct fp_workload *w, struct floor_bits *ret)
{
    static const double p10[] = {1, 10, 100, 1000, 10000};
    int64_t *x = malloc(N_SERIES * w->steps * sizeof(int64_t));
    int64_t *r = malloc(w->steps * sizeof(int64_t));

    if (x == NULL || r == NULL)
        die("entropy floor", -ENOMEM);
    if (strcmp(fp_workload_series[S_TPS].name, "tokens_per_second") != 0 ||
        strcmp(fp_workload_series[S_TOKENS].name, "tokens_generated_total") != 0 ||
        strcmp(fp_workload_series[S_ZONE0].name, "temperature_celsius_zone0") != 0 ||
        strcmp(fp_workload_series[S_ZONE1].name, "temperature_celsius_zone1") != 0 ||
        strcmp(fp_workload_series[S_CPU].name, "cpu_utilization_ratio") != 0)
        die("entropy floor: the workload's series moved", -EINVAL);
    memset(ret, 0, sizeof(*ret));
    for (size_t d = 0; d < w->devices; d++) {
        size_t n = w->len[d];
        double best[N_SERIES], cross; /* bits per sample, this device */
        if (n < 2)
            continue;
        for (size_t s = 0; s < N_SERIES; s++) {
            const double *v = series_of(w, d, s);
            int64_t *xs = x + s * w->steps;
            for (size_t i = 0; i < n; i++) {
                double y = v[i] * p10[floor_model[s].decimals] / floor_model[s].divisor;
                xs[i] = llrint(y);
                if (fabs(y - (double)xs[i]) > 1e-3) {
                    fprintf(stderr, "chunk-bench: %s: %.17g is not a multiple of its quantum\n",
                            fp_workload_series[s].name, v[i]);
                    exit(1);
                }
            }
            struct entropy_est e = best_residual(xs, n, floor_model[s].decay, r);
            best[s] = e.bits;
            ret->bits[s] += e.bits * (double)n;
            ret->plugin_bits[s] += e.plugin_bits * (double)n;
            ret->samples[s] += n;
        }

        /* zone1 as its difference from zone0, written over zone1's scaled copy */
        int64_t *z0 = x + S_ZONE0 * w->steps, *z1 = x + S_ZONE1 * w->steps;
        for (size_t i = 0; i < n; i++)
            z1[i] -= z0[i];
        cross = best_residual(z1, n, 0, r).bits;
        best[S_ZONE1] = fmin(best[S_ZONE1], cross);
        cross = cpu_given_tokens(x + S_CPU * w->steps, x + S_TOKENS * w->steps,
                                 x + S_TPS * w->steps, n, r);
        best[S_CPU] = fmin(best[S_CPU], cross);
        for (size_t s = 0; s < N_SERIES; s++)
            ret->cross_bits[s] += best[s] * (double)n;
    }
    free(x);
    free(r);
}

/* --- timing and output ----------------------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *a, int n)
{
    qsort(a, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

struct timing {
    double enc_ns, dec_ns, block_ns; /**< per sample, medians: encode, iterate, fp_chunk_decode */
};

static void time_codec(const struct fp_workload *w, const struct fp_chunk_enc_opts *o, int reps,
                       struct encoded *enc, struct timing *ret)
{
    double te[64], td[64], tb[64], sink = 0;
    if (reps > 64)
        reps = 64;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        encode_all(w, o, 0, enc);
        double t1 = now_ns();
        sink += decode_all(enc, NULL);
        double t2 = now_ns();
        sink += decode_block_all(enc, NULL);
        double t3 = now_ns();
        te[r] = (t1 - t0) / (double)w->samples;
        td[r] = (t2 - t1) / (double)w->samples;
        tb[r] = (t3 - t2) / (double)w->samples;
    }
    ret->enc_ns = median(te, reps);
    ret->dec_ns = median(td, reps);
    ret->block_ns = median(tb, reps);
    if (sink == 42.4242) /* keep the sum alive */
        fprintf(stderr, " ");
}

static size_t sum(const size_t *a)
{
    size_t t = 0;
    for (size_t s = 0; s < N_SERIES; s++)
        t += a[s];
    return t;
}

static const char *kind_label(const struct encoded *e, size_t s, char *buf, size_t size)
{
    /* the kind most chunks of this series got, e.g. "DECIMAL3" */
    static const char *const names[4] = {"?", "XOR", "INT", "DECIMAL"};
    size_t best = 1;
    for (size_t k = 1; k < 4; k++)
        if (e->kinds[k][s] > e->kinds[best][s])
            best = k;
    if (best == FP_CHUNK_KIND_DECIMAL) {
        size_t bd = 1;
        for (size_t d = 1; d < 7; d++)
            if (e->decimals[d][s] > e->decimals[bd][s])
                bd = d;
        (void)snprintf(buf, size, "DECIMAL%zu", bd);
    } else {
        (void)snprintf(buf, size, "%s", names[best]);
    }
    return buf;
}

static void usage(void)
{
    fprintf(stderr, "usage: chunk-bench [--quick] [--devices N] [--reps N] [--chunk-samples N] "
                    "[--seed N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t devices = 1000, chunk_samples = FP_CHUNK_MAX_SAMPLES;
    int reps = 5;
    uint64_t seed = 42;
    bool quick = false;
    struct fp_workload w;
    struct encoded ours = {0}, xor = {0}, jit = {0};
    struct fp_chunk_enc_opts o, ox;
    struct timing t_ours, t_xor;
    size_t prom[N_SERIES] = {0};
    struct floor_bits fl;
    char kb[32];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
            devices = 50;
            reps = 3;
        } else if (i + 1 < argc && strcmp(argv[i], "--devices") == 0) {
            devices = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0) {
            reps = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--chunk-samples") == 0) {
            chunk_samples = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            usage();
        }
    }
    if (devices < 1 || reps < 1 || chunk_samples < 1 || chunk_samples > FP_CHUNK_MAX_SAMPLES)
        usage();

    if (fp_workload_init(&w, devices, seed, FP_WORKLOAD_FIXED_END_MS) != 0)
        die("generate", -ENOMEM);
    fp_chunk_enc_opts_default(&o);
    o.max_samples = chunk_samples;
    ox = o;
    ox.flags = FP_CHUNK_ENC_FORCE_XOR;

    /* sizes, and a full bit-for-bit check of both codecs */
    encode_all(&w, &o, 0, &ours);
    (void)decode_all(&ours, &w);
    (void)decode_block_all(&ours, &w);
    encode_all(&w, &ox, 0, &xor);
    (void)decode_all(&xor, &w);
    (void)decode_block_all(&xor, &w);
    encode_all(&w, &o, 1, &jit); /* the same values with +-1 ms timestamp jitter */
    for (size_t d = 0; d < w.devices; d++)
        for (size_t s = 0; s < N_SERIES; s++)
            prom[s] += prom_xor_bytes(w.ts, series_of(&w, d, s), w.len[d]);
    entropy_floor(&w, &fl);
    time_codec(&w, &o, reps, &ours, &t_ours);
    time_codec(&w, &ox, reps, &xor, &t_xor);

    double ns = (double)w.samples;
    double bps = (double)sum(ours.bytes) / ns, xbps = (double)sum(xor.bytes) / ns;
    double pbps = (double)sum(prom) / ns, jbps = (double)sum(jit.bytes) / ns;
    double fbits = 0, fpbits = 0, fxbits = 0;
    for (size_t s = 0; s < N_SERIES; s++) {
        fbits += fl.bits[s];
        fpbits += fl.plugin_bits[s];
        fxbits += fl.cross_bits[s];
    }
    double fbps = fbits / 8 / ns, fpbps = fpbits / 8 / ns, fxbps = fxbits / 8 / ns;

    printf("%-28s %-9s %8s %8s %8s\n", "series", "kind", "chunk", "xor", "prom-xor");
    for (size_t s = 0; s < N_SERIES; s++)
        printf("%-28s %-9s %8.3f %8.3f %8.3f\n", fp_workload_series[s].name,
               kind_label(&ours, s, kb, sizeof(kb)), (double)ours.bytes[s] / ours.samples[s],
               (double)xor.bytes[s] / xor.samples[s], (double)prom[s] / ours.samples[s]);
    printf("%-28s %-9s %8.3f %8.3f %8.3f   bytes/sample (raw 16)\n", "all", "", bps, xbps, pbps);
    printf("chunks %zu (xor %zu); +-1 ms jitter: %.3f bytes/sample\n", ours.n_chunks,
           xor.n_chunks, jbps);
    printf("encode %.1f ns/sample, decode %.1f ns/sample (forced xor: %.1f / %.1f), median of %d\n",
           t_ours.enc_ns, t_ours.dec_ns, t_xor.enc_ns, t_xor.dec_ns, reps);
    printf("\nentropy floor of the values, bits/sample (see chunk-bench.c: binned estimate, plain "
           "plug-in, with cross-series predictors; chunk for comparison)\n");
    printf("%-28s %8s %8s %8s %8s\n", "series", "floor", "plug-in", "x-series", "chunk");
    for (size_t s = 0; s < N_SERIES; s++)
        printf("%-28s %8.3f %8.3f %8.3f %8.3f\n", fp_workload_series[s].name,
               fl.bits[s] / (double)fl.samples[s], fl.plugin_bits[s] / (double)fl.samples[s],
               fl.cross_bits[s] / (double)fl.samples[s],
               8.0 * (double)ours.bytes[s] / ours.samples[s]);
    printf("%-28s %8.3f %8.3f %8.3f %8.3f   bytes/sample; chunk / floor %.3f\n", "all", fbps, fpbps,
           fxbps, bps, bps / fbps);

    printf("{\"bench\":\"chunk\",\"quick\":%s,\"devices\":%zu,\"series\":%zu,\"samples\":%zu,"
           "\"interval_s\":10,\"hours\":6,\"seed\":%" PRIu64 ",\"chunk_max_samples\":%zu,"
           "\"chunk_max_bytes\":%d,\"chunks\":%zu,\"reps\":%d,"
           "\"chunk_bytes_per_sample\":%.4f,\"xor_forced_chunk_bytes_per_sample\":%.4f,"
           "\"prom_xor_chunk_bytes_per_sample\":%.4f,\"raw_bytes_per_sample\":16,"
           "\"ratio_vs_raw\":%.2f,\"ratio_vs_xor_forced\":%.2f,\"ratio_vs_prom_xor\":%.2f,"
           "\"jitter_1ms_chunk_bytes_per_sample\":%.4f,"
           "\"encode_ns_per_sample_median\":%.2f,\"decode_ns_per_sample_median\":%.2f,"
           "\"xor_forced_encode_ns_per_sample_median\":%.2f,"
           "\"xor_forced_decode_ns_per_sample_median\":%.2f,"
           "\"decode_block_ns_per_sample_median\":%.2f,"
           "\"xor_forced_decode_block_ns_per_sample_median\":%.2f,"
           "\"peer_victoriametrics_disk_bytes_per_sample_incl_index\":1.45,"
           "\"entropy_floor_bytes_per_sample\":%.4f,"
           "\"entropy_floor_plugin_bytes_per_sample\":%.4f,"
           "\"entropy_floor_cross_series_bytes_per_sample\":%.4f,"
           "\"ratio_chunk_vs_entropy_floor\":%.3f,"
           "\"entropy_floor_note\":\"values only, per device-series residual entropy; see "
           "chunk-bench.c\","
           "\"note\":\"chunk bytes only: no index, keys or LMDB overhead\",\"per_series\":{",
           quick ? "true" : "false", w.devices, w.devices * N_SERIES, w.samples, seed,
           chunk_samples, FP_CHUNK_MAX_BYTES, ours.n_chunks, reps, bps, xbps, pbps, 16 / bps,
           xbps / bps, pbps / bps, jbps, t_ours.enc_ns, t_ours.dec_ns, t_xor.enc_ns,
           t_xor.dec_ns, t_ours.block_ns, t_xor.block_ns, fbps, fpbps, fxbps, bps / fbps);
    for (size_t s = 0; s < N_SERIES; s++)
        printf(
            "%s\"%s\":{\"kind\":\"%s\",\"chunk_bytes_per_sample\":%.4f,"
            "\"xor_forced_chunk_bytes_per_sample\":%.4f,\"prom_xor_chunk_bytes_per_sample\":%.4f,"
            "\"entropy_floor_bits_per_sample\":%.3f,"
            "\"entropy_floor_plugin_bits_per_sample\":%.3f,"
            "\"entropy_floor_cross_series_bits_per_sample\":%.3f}",
            s ? "," : "", fp_workload_series[s].name, kind_label(&ours, s, kb, sizeof(kb)),
            (double)ours.bytes[s] / ours.samples[s], (double)xor.bytes[s] / xor.samples[s],
            (double)prom[s] / ours.samples[s], fl.bits[s] / (double)fl.samples[s],
            fl.plugin_bits[s] / (double)fl.samples[s], fl.cross_bits[s] / (double)fl.samples[s]);
    printf("}}\n");

    free(ours.buf);
    free(ours.off);
    free(xor.buf);
    free(xor.off);
    free(jit.buf);
    free(jit.off);
    fp_workload_fini(&w);
    return 0;
}
