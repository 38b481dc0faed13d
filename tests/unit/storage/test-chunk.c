/* Chunk codec: every sample comes back exactly (timestamps, and doubles bit for bit, specials
 * included), each value shape gets the kind it should, the sample and byte caps hold, seek finds
 * the first sample at or after a time, and damaged or truncated chunks fail cleanly. Run it under
 * ASan: the damaged chunks live in heap buffers of their exact length. */
#include "test.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"

#define MAXN FP_CHUNK_MAX_SAMPLES
#define BASE_TS INT64_C(1754000000000) /* an August 2025 epoch in ms, aligned to 10 s */

/* --- helpers ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void) /* splitmix64: seeded, same sequence on every run */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double unif(void) /* [0, 1) */
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

static double gauss(void)
{
    double u1 = unif(), u2 = unif();
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

static double round_to(double x, int decimals) /* numpy.round: scale, rint, unscale */
{
    double p = pow(10.0, decimals);
    return nearbyint(x * p) / p;
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

struct chunk {
    uint8_t buf[65536];
    size_t len;
    struct fp_chunk_info info;
};

/* Encodes ts/v (all n must fit) into *c with opts (NULL: defaults). */
static void encode(const int64_t *ts, const double *v, size_t n,
                   const struct fp_chunk_enc_opts *opts, struct chunk *c)
{
    struct fp_chunk_enc *e = NULL;
    fp_assert(fp_chunk_enc_new(opts, &e) == 0);
    for (size_t i = 0; i < n; i++) {
        int r = fp_chunk_enc_append(e, ts[i], v[i]);
        if (r != 0)
            FP_TEST_FAIL("append %zu of %zu: %s", i, n, fp_chunk_strerror(r));
        fp_assert(r == 0);
    }
    check_int(fp_chunk_enc_count(e), n);
    fp_assert(fp_chunk_enc_finish(e, c->buf, sizeof(c->buf), &c->len) == 0);
    fp_assert(fp_chunk_info(c->buf, c->len, &c->info) == 0);
    check_int(c->info.n_samples, n);
    check_int(c->info.first_ts_ms, ts[0]);
    fp_chunk_enc_destroy(&e);
    check(e == NULL);
}

/* Decodes c and checks every sample against ts/v, bit for bit. Returns the failures. */
static int verify(const struct chunk *c, const int64_t *ts, const double *v, size_t n)
{
    struct fp_chunk_iter it;
    int64_t t;
    double x;
    int bad = 0;
    size_t i = 0;

    /* A heap copy of the exact length, so ASan sees any read past the end. */
    uint8_t *copy = malloc(c->len);
    fp_assert(copy != NULL);
    memcpy(copy, c->buf, c->len);
    check_int(fp_chunk_iter_init(&it, copy, c->len), 0);
    while (fp_chunk_iter_next(&it, &t, &x) == 0) {
        if (i >= n || t != ts[i] || bits_of(x) != bits_of(v[i])) {
            if (bad++ < 5)
                FP_TEST_FAIL("sample %zu: got (%" PRId64 ", %.17g / %016" PRIx64
                             "), want (%" PRId64 ", %.17g / %016" PRIx64 ")",
                             i, t, x, bits_of(x), i < n ? ts[i] : 0, i < n ? v[i] : 0.0,
                             i < n ? bits_of(v[i]) : 0);
        }
        i++;
    }
    if (it.status != FP_CHUNK_E_END) {
        FP_TEST_FAIL("iteration ended with %s after %zu samples", fp_chunk_strerror(it.status), i);
        bad++;
    }
    if (i != n) {
        FP_TEST_FAIL("decoded %zu samples, want %zu", i, n);
        bad++;
    }
    /* fp_chunk_decode (the store's reads) gives the same samples, bit for bit */
    {
        static int64_t bts[FP_CHUNK_MAX_SAMPLES];
        static double bv[FP_CHUNK_MAX_SAMPLES];
        int got = fp_chunk_decode(copy, c->len, bts, bv);
        if (got < 0 || (size_t)got != n) {
            FP_TEST_FAIL("fp_chunk_decode: %d, want %zu samples", got, n);
            bad++;
        }
        for (int j = 0; j < got && (size_t)j < n; j++) {
            if (bts[j] != ts[j] || bits_of(bv[j]) != bits_of(v[j])) {
                if (bad++ < 5)
                    FP_TEST_FAIL("fp_chunk_decode sample %d: got (%" PRId64 ", %.17g)", j, bts[j],
                                 bv[j]);
            }
        }
    }
    free(copy);
    return bad;
}

static void roundtrip(const int64_t *ts, const double *v, size_t n,
                      const struct fp_chunk_enc_opts *opts, struct chunk *c)
{
    encode(ts, v, n, opts, c);
    check_int(verify(c, ts, v, n), 0);
}

static void steady_ts(int64_t *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ts[i] = BASE_TS + (int64_t)i * 10000;
}

static struct fp_chunk_enc_opts force_xor(void)
{
    struct fp_chunk_enc_opts o;
    fp_chunk_enc_opts_default(&o);
    o.flags = FP_CHUNK_ENC_FORCE_XOR;
    o.max_bytes = 65535; /* XOR of noisy decimals takes ~8 bytes a sample */
    return o;
}

/* --- round trips of special values --------------------------------------------------------- */

static void test_specials(void)
{
    static const uint64_t special_bits[] = {
        0x8000000000000000u, /* -0.0 */
        0x7ff8000000000000u, /* quiet NaN */
        0x7ff0000000000002u, /* Prometheus stale marker (a signalling NaN payload) */
        0xfff8000000000123u, /* negative NaN with a payload */
        0x7ff4000000000001u, /* signalling NaN */
        0x7ff0000000000000u, /* +Inf */
        0xfff0000000000000u, /* -Inf */
        0x0000000000000001u, /* smallest subnormal */
        0x000fffffffffffffu, /* largest subnormal */
        0x8000000000000001u, /* negative subnormal */
        0x0010000000000000u, /* DBL_MIN */
        0x7fefffffffffffffu, /* DBL_MAX */
        0x0000000000000000u, /* +0.0 */
    };
    enum { N = sizeof(special_bits) / sizeof(special_bits[0]) };
    int64_t ts[64];
    double v[64];
    struct chunk *c = malloc(sizeof(*c));
    fp_assert(c != NULL);

    steady_ts(ts, 64);
    for (size_t i = 0; i < 3 * N; i++)
        v[i] = from_bits(special_bits[i % N]);
    v[5] = 1e308;
    v[6] = -1e308;
    roundtrip(ts, v, 3 * N, NULL, c);
    check_int(c->info.kind, FP_CHUNK_KIND_XOR);

    /* Each special alone, and one special inside an otherwise integer or decimal series: the
     * chunk falls back to XOR and still gives back every bit. */
    for (size_t s = 0; s < N; s++) {
        double one = from_bits(special_bits[s]);
        roundtrip(ts, &one, 1, NULL, c);
        for (size_t i = 0; i < 50; i++)
            v[i] = i == 25 ? one : (double)(1000 + i);
        roundtrip(ts, v, 50, NULL, c);
        if (special_bits[s] != 0)
            check_int(c->info.kind, FP_CHUNK_KIND_XOR);
        else
            check_int(c->info.kind, FP_CHUNK_KIND_INT);
        for (size_t i = 0; i < 50; i++)
            v[i] = i == 49 ? one : round_to(20.0 + gauss(), 2);
        roundtrip(ts, v, 50, NULL, c);
    }

    /* -0.0 is not the integer 0: a chunk of zeros with one -0.0 must keep the sign. */
    for (size_t i = 0; i < 20; i++)
        v[i] = i == 7 ? -0.0 : 0.0;
    roundtrip(ts, v, 20, NULL, c);
    check(signbit(v[7]));
    free(c);
}

/* --- kinds chosen for the workload shapes --------------------------------------------------- */

static void check_kind(const struct chunk *c, enum fp_chunk_kind kind, unsigned decimals,
                       const char *what)
{
    if (c->info.kind != kind || c->info.decimals != decimals)
        FP_TEST_FAIL("%s: kind %d decimals %u, want kind %d decimals %u", what, c->info.kind,
                     c->info.decimals, kind, decimals);
}

static void test_kinds(void)
{
    int64_t ts[MAXN];
    double v[MAXN];
    struct chunk *c = malloc(sizeof(*c)), *cx = malloc(sizeof(*cx));
    struct fp_chunk_enc_opts ox = force_xor();
    const size_t n = 240;
    double x, total;

    fp_assert(c != NULL && cx != NULL);
    steady_ts(ts, n);

    /* tokens_per_second: a level with 8% noise, 2 decimals */
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(fmax(0.5, 24.0 * (1 + 0.08 * gauss())), 2);
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 2, "tokens_per_second");
    roundtrip(ts, v, n, &ox, cx);
    check_kind(cx, FP_CHUNK_KIND_XOR, 0, "tokens_per_second forced");
    check(c->len * 2 < cx->len); /* decimals pay: well under half of XOR */

    /* ttft_seconds: lognormal, 4 decimals */
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(0.3 * exp(0.35 * gauss()), 4);
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 4, "ttft_seconds");

    /* request_latency_seconds: 3 decimals */
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(0.3 + 250.0 / 24.0 * exp(0.15 * gauss()), 3);
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 3, "request_latency_seconds");

    /* requests_total: a slow Poisson-like counter, with a reset in the middle */
    total = 41234;
    for (size_t i = 0; i < n; i++) {
        total += (double)(rnd() % 3);
        if (i == n / 2)
            total = 2;
        v[i] = total;
    }
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_INT, 0, "requests_total");
    check(c->len < n); /* about 2 bits per sample plus the reset */

    /* tokens_generated_total: a fast counter */
    total = 7654321;
    for (size_t i = 0; i < n; i++) {
        total += nearbyint(110 + 30 * gauss());
        v[i] = total;
    }
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_INT, 0, "tokens_generated_total");

    /* memory_available_bytes: a page-count walk times 4096; the gcd makes it cheap */
    x = 1.2e6;
    for (size_t i = 0; i < n; i++) {
        x += 1500 * gauss();
        v[i] = nearbyint(x) * 4096;
    }
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_INT, 0, "memory_available_bytes");
    check(c->len < n * 2); /* ~13 bits per sample, not ~25 */

    /* memory_pressure: mostly zero; all zero is an integer chunk, bursts make it 2 decimals */
    for (size_t i = 0; i < n; i++)
        v[i] = 0.0;
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_INT, 0, "memory_pressure idle");
    check(c->len <= FP_CHUNK_HEADER_BYTES + 12); /* constant values at a steady cadence: ~free */
    x = 0;
    for (size_t i = 0; i < n; i++) {
        x = i == 100 ? 31.0 : x * 0.82;
        if (x < 0.05)
            x = 0;
        v[i] = round_to(x, 2);
    }
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 2, "memory_pressure burst");

    /* temperature: a millidegree walk / 1000 */
    x = 52000;
    for (size_t i = 0; i < n; i++) {
        x = fmin(95000, fmax(25000, x + 120 * gauss()));
        v[i] = nearbyint(x) / 1000.0;
    }
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 3, "temperature_celsius");

    /* cpu_utilization_ratio: 3 decimals in [0, 1] */
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(fmin(1, fmax(0, 0.45 + 0.1 * gauss())), 3);
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 3, "cpu_utilization_ratio");

    /* Values parsed from text (strtod), as the collector sees them: up to 6 decimals. */
    for (size_t i = 0; i < n; i++) {
        char text[64];
        (void)snprintf(text, sizeof(text), "%s%" PRIu64 ".%06" PRIu64, rnd() % 2 ? "-" : "",
                       rnd() % 1000000, rnd() % 1000000);
        v[i] = strtod(text, NULL);
    }
    v[0] = strtod("51.234", NULL);
    v[1] = strtod("0.12", NULL);
    v[2] = strtod("12.345678", NULL);
    roundtrip(ts, v, n, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 6, "6 decimals from text");

    /* 7 decimals, or plain noise: XOR */
    for (size_t i = 0; i < n; i++)
        v[i] = round_to(1 + gauss(), 7);
    roundtrip(ts, v, 150, NULL, c); /* ~8 bytes a sample: 240 would pass the byte cap */
    check_kind(c, FP_CHUNK_KIND_XOR, 0, "7 decimals");
    for (size_t i = 0; i < n; i++)
        v[i] = gauss();
    roundtrip(ts, v, 150, NULL, c);
    check_kind(c, FP_CHUNK_KIND_XOR, 0, "gaussian doubles");

    /* The decimals grow with the chunk: 51.2, 51.23, 51.234 -> 3. */
    v[0] = 51.2;
    v[1] = 51.23;
    v[2] = 51.234;
    v[3] = 51.0;
    roundtrip(ts, v, 4, NULL, c);
    check_kind(c, FP_CHUNK_KIND_DECIMAL, 3, "growing decimals");

    /* Large integers: -2^53 .. 2^53 are INT; past 2^53 (or 1e17) the chunk is XOR. */
    for (size_t i = 0; i < 50; i++)
        v[i] = -4503599627370496.0 - (double)(i * 7);
    v[10] = -9007199254740992.0;
    v[11] = 9007199254740992.0;
    roundtrip(ts, v, 50, NULL, c);
    check_kind(c, FP_CHUNK_KIND_INT, 0, "large negative integers");
    v[12] = 1e17;
    roundtrip(ts, v, 50, NULL, c);
    check_kind(c, FP_CHUNK_KIND_XOR, 0, "an integer past 2^53");
    v[0] = -9007199254740992.0; /* extremes alone: whichever kind is smaller, exact */
    v[1] = 9007199254740992.0;
    v[2] = -1e15;
    v[3] = -123456789012345.0;
    v[4] = 0;
    roundtrip(ts, v, 5, NULL, c);
    /* 2^53 with 2 decimals would need m = 2^53 * 100: too big, so XOR rather than wrong. */
    v[0] = 0.01;
    v[1] = 9007199254740992.0;
    roundtrip(ts, v, 2, NULL, c);
    check_kind(c, FP_CHUNK_KIND_XOR, 0, "decimals times a huge integer");

    /* Forcing XOR works for every shape, and automatic is never larger. */
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(i * i);
    roundtrip(ts, v, n, &ox, cx);
    check_kind(cx, FP_CHUNK_KIND_XOR, 0, "forced");
    roundtrip(ts, v, n, NULL, c);
    check(c->len <= cx->len);
    free(c);
    free(cx);
}

/* --- timestamps ---------------------------------------------------------------------------- */

static void test_timestamps(void)
{
    int64_t ts[MAXN];
    double v[MAXN];
    struct chunk *c = malloc(sizeof(*c));
    struct fp_chunk_enc *e = NULL;
    size_t n = 300, steady_len;

    fp_assert(c != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(i % 7);

    /* steady 10 s cadence: free after the stream parameters */
    steady_ts(ts, n);
    roundtrip(ts, v, n, NULL, c);
    steady_len = c->len;

    /* +-1 ms jitter: a few bits per sample, not Prometheus' 16 */
    for (size_t i = 0; i < n; i++)
        ts[i] = BASE_TS + (int64_t)i * 10000 + (int64_t)(rnd() % 3) - 1;
    roundtrip(ts, v, n, NULL, c);
    check(c->len > steady_len);
    check(c->len - steady_len < n * 4 / 8);

    /* gaps of hours, and irregular steps from 1 ms up */
    ts[0] = BASE_TS;
    for (size_t i = 1; i < n; i++) {
        int64_t step = i % 50 == 0 ? INT64_C(3) * 3600 * 1000 + (int64_t)(rnd() % 1000)
                       : i % 7 == 0 ? 1
                                    : 10000;
        ts[i] = ts[i - 1] + step;
    }
    roundtrip(ts, v, n, NULL, c);

    /* negative timestamps (before 1970), crossing zero */
    for (size_t i = 0; i < n; i++)
        ts[i] = -INT64_C(1500000) + (int64_t)i * 10000;
    roundtrip(ts, v, n, NULL, c);
    check(c->info.first_ts_ms < 0);

    /* the whole int64 range in one chunk: deltas wrap, and still come back */
    ts[0] = INT64_MIN;
    ts[1] = INT64_MIN + 1;
    ts[2] = -1;
    ts[3] = 0;
    ts[4] = INT64_MAX - 1;
    ts[5] = INT64_MAX;
    roundtrip(ts, v, 6, NULL, c);
    roundtrip(ts + 4, v, 2, NULL, c);
    ts[0] = INT64_MIN;
    ts[1] = INT64_MAX;
    roundtrip(ts, v, 2, NULL, c);

    /* out of order and duplicates are the caller's bug: -EINVAL, and nothing changes */
    fp_assert(fp_chunk_enc_new(NULL, &e) == 0);
    check_int(fp_chunk_enc_append(e, 1000, 1.0), 0);
    check_int(fp_chunk_enc_append(e, 2000, 2.0), 0);
    check_int(fp_chunk_enc_append(e, 2000, 3.0), -EINVAL);
    check_int(fp_chunk_enc_append(e, 1999, 3.0), -EINVAL);
    check_int(fp_chunk_enc_count(e), 2);
    check_int(fp_chunk_enc_append(e, 2001, 3.0), 0);
    fp_assert(fp_chunk_enc_finish(e, c->buf, sizeof(c->buf), &c->len) == 0);
    ts[0] = 1000;
    ts[1] = 2000;
    ts[2] = 2001;
    v[0] = 1.0;
    v[1] = 2.0;
    v[2] = 3.0;
    check_int(verify(c, ts, v, 3), 0);
    fp_chunk_enc_destroy(&e);
    fp_chunk_enc_destroy(&e); /* idempotent */
    free(c);
}

/* --- caps ---------------------------------------------------------------------------------- */

/* Appends samples from ts/v until FULL; returns how many went in, and the finished chunk. */
static size_t fill(struct fp_chunk_enc *e, const int64_t *ts, const double *v, size_t n,
                   struct chunk *c)
{
    size_t i;
    int r = 0;

    fp_chunk_enc_reset(e);
    for (i = 0; i < n; i++) {
        r = fp_chunk_enc_append(e, ts[i], v[i]);
        if (r != 0)
            break;
    }
    if (i < n)
        check_int(r, FP_CHUNK_E_FULL);
    /* FULL leaves the encoder as it was: the same sample is refused again */
    if (i < n)
        check_int(fp_chunk_enc_append(e, ts[i], v[i]), FP_CHUNK_E_FULL);
    check_int(fp_chunk_enc_count(e), i);
    fp_assert(fp_chunk_enc_finish(e, c->buf, sizeof(c->buf), &c->len) == 0);
    fp_assert(fp_chunk_info(c->buf, c->len, &c->info) == 0);
    return i;
}

static void test_caps(void)
{
    static int64_t ts[4 * MAXN];
    static double v[4 * MAXN];
    struct chunk *c = malloc(sizeof(*c));
    struct fp_chunk_enc *e = NULL;
    struct fp_chunk_enc_opts o;
    size_t got, needed;
    double x = 0;

    fp_assert(c != NULL);
    steady_ts(ts, 4 * MAXN);

    /* a compressible series stops at FP_CHUNK_MAX_SAMPLES */
    for (size_t i = 0; i < 4 * MAXN; i++)
        v[i] = round_to(20 + gauss(), 2);
    fp_assert(fp_chunk_enc_new(NULL, &e) == 0);
    got = fill(e, ts, v, 4 * MAXN, c);
    check_int(got, FP_CHUNK_MAX_SAMPLES);
    check(c->len <= FP_CHUNK_MAX_BYTES);
    check_int(verify(c, ts, v, got), 0);

    /* full-entropy doubles stop at the byte cap, below it by less than one sample */
    for (size_t i = 0; i < 4 * MAXN; i++)
        v[i] = from_bits(rnd());
    got = fill(e, ts, v, 4 * MAXN, c);
    check(got < FP_CHUNK_MAX_SAMPLES);
    check(c->len <= FP_CHUNK_MAX_BYTES);
    check(c->len > FP_CHUNK_MAX_BYTES - 30);
    check_int(verify(c, ts, v, got), 0);

    /* finish reports the size it needs, and keeps the samples for a retry */
    check_int(fp_chunk_enc_finish(e, NULL, 0, &needed), -ENOBUFS);
    check_int(needed, c->len);
    check_int(fp_chunk_enc_finish(e, c->buf, needed - 1, &needed), -ENOBUFS);
    check_int(fp_chunk_enc_finish(e, c->buf, needed, &c->len), 0);
    check_int(verify(c, ts, v, got), 0);
    fp_chunk_enc_reset(e);
    check_int(fp_chunk_enc_finish(e, c->buf, sizeof(c->buf), &c->len), -ENODATA);
    fp_chunk_enc_destroy(&e);

    /* many caps, many shapes: every chunk within its cap, every sample back, and chunks cut one
     * after the other cover the series exactly */
    for (int round = 0; round < 300; round++) {
        size_t total = 600 + (size_t)(rnd() % 600), at = 0;
        int shape = (int)(rnd() % 6);
        fp_chunk_enc_opts_default(&o);
        o.max_bytes = FP_CHUNK_MIN_BYTES + (size_t)(rnd() % 1500);
        o.max_samples = 1 + (size_t)(rnd() % FP_CHUNK_MAX_SAMPLES);
        if (rnd() % 4 == 0)
            o.flags = FP_CHUNK_ENC_FORCE_XOR;
        fp_assert(fp_chunk_enc_new(&o, &e) == 0);
        ts[0] = (int64_t)(rnd() % 2000000) - 1000000;
        for (size_t i = 0; i < total; i++) {
            if (i > 0)
                ts[i] = ts[i - 1] + (rnd() % 5 == 0 ? 1 + (int64_t)(rnd() % 100000) : 10000);
            switch (shape) {
            case 0:
                v[i] = from_bits(rnd());
                break;
            case 1:
                v[i] = round_to(100 * gauss(), (int)(rnd() % 7));
                break;
            case 2:
                x += (double)(rnd() % 1000);
                v[i] = rnd() % 200 == 0 ? 0 : x;
                break;
            case 3:
                v[i] = (double)(int64_t)(rnd() >> 11) - 0x1p52;
                break;
            case 4:
                v[i] = rnd() % 3 ? 0.0 : round_to(unif(), 2);
                break;
            default:
                v[i] = 1e300 * gauss();
                break;
            }
        }
        while (at < total) {
            got = fill(e, ts + at, v + at, total - at, c);
            fp_assert(got >= 1); /* the first sample always fits */
            check(got <= o.max_samples);
            check(c->len <= o.max_bytes);
            check_int(verify(c, ts + at, v + at, got), 0);
            at += got;
        }
        fp_chunk_enc_destroy(&e);
    }

    /* limits out of range */
    fp_chunk_enc_opts_default(&o);
    o.max_samples = 0;
    check_int(fp_chunk_enc_new(&o, &e), -EINVAL);
    o.max_samples = FP_CHUNK_MAX_SAMPLES + 1;
    check_int(fp_chunk_enc_new(&o, &e), -EINVAL);
    fp_chunk_enc_opts_default(&o);
    o.max_bytes = FP_CHUNK_MIN_BYTES - 1;
    check_int(fp_chunk_enc_new(&o, &e), -EINVAL);
    fp_chunk_enc_opts_default(&o);
    o.flags = 0x80;
    check_int(fp_chunk_enc_new(&o, &e), -EINVAL);
    check(e == NULL);
    free(c);
}

/* --- seek ---------------------------------------------------------------------------------- */

static void test_seek(void)
{
    int64_t ts[200], t;
    double v[200], x;
    struct chunk *c = malloc(sizeof(*c));
    struct fp_chunk_iter it;

    fp_assert(c != NULL);
    for (size_t i = 0; i < 200; i++) {
        ts[i] = BASE_TS + (int64_t)i * 10000 + (i > 100 ? 7 : 0);
        v[i] = (double)i * 0.5;
    }
    encode(ts, v, 200, NULL, c);
    fp_assert(fp_chunk_iter_init(&it, c->buf, c->len) == 0);

    check_int(fp_chunk_iter_seek(&it, INT64_MIN, &t, &x), 0); /* before the first */
    check_int(t, ts[0]);
    check_double(x, v[0]);
    check_int(fp_chunk_iter_seek(&it, ts[50], &t, &x), 0); /* exactly a sample */
    check_int(t, ts[50]);
    check_double(x, v[50]);
    check_int(fp_chunk_iter_next(&it, &t, &x), 0); /* iteration goes on after it */
    check_int(t, ts[51]);
    check_int(fp_chunk_iter_seek(&it, ts[150] - 3, &t, &x), 0); /* between samples */
    check_int(t, ts[150]);
    check_double(x, v[150]);
    check_int(fp_chunk_iter_seek(&it, ts[10] + 1, &t, &x), 0); /* backwards starts over */
    check_int(t, ts[11]);
    check_int(fp_chunk_iter_seek(&it, ts[11], &t, NULL), 0); /* the current sample itself */
    check_int(t, ts[11]);
    check_int(fp_chunk_iter_seek(&it, ts[199], &t, &x), 0);
    check_int(t, ts[199]);
    check_int(fp_chunk_iter_next(&it, &t, &x), FP_CHUNK_E_END);
    check_int(fp_chunk_iter_next(&it, &t, &x), FP_CHUNK_E_END); /* sticky */
    check_int(fp_chunk_iter_seek(&it, ts[199] + 1, &t, &x), FP_CHUNK_E_END); /* after the last */
    check_int(fp_chunk_iter_seek(&it, ts[3], &t, &x), 0); /* and back from the end */
    check_int(t, ts[3]);
    check_int(fp_chunk_iter_seek(&it, INT64_MAX, &t, &x), FP_CHUNK_E_END);

    /* a one-sample chunk */
    encode(ts, v, 1, NULL, c);
    fp_assert(fp_chunk_iter_init(&it, c->buf, c->len) == 0);
    check_int(fp_chunk_iter_seek(&it, ts[0] + 1, &t, &x), FP_CHUNK_E_END);
    check_int(fp_chunk_iter_seek(&it, ts[0], &t, &x), 0);
    check_int(t, ts[0]);
    free(c);
}

/* --- damaged chunks ------------------------------------------------------------------------ */

/* Decodes buf (a heap block of exactly len bytes) to its end. Returns the final status. */
static int drain(const uint8_t *buf, size_t len, size_t *ret_n)
{
    struct fp_chunk_iter it;
    int r = fp_chunk_iter_init(&it, buf, len);
    size_t n = 0;
    *ret_n = 0;
    if (r != 0) {
        check_int(fp_chunk_iter_next(&it, NULL, NULL), FP_CHUNK_E_CORRUPT);
        {
            int64_t t1[FP_CHUNK_MAX_SAMPLES];
            double v1[FP_CHUNK_MAX_SAMPLES];
            check_int(fp_chunk_decode(buf, len, t1, v1), r);
        }
        return r;
    }
    while ((r = fp_chunk_iter_next(&it, NULL, NULL)) == 0)
        n++;
    check(n <= FP_CHUNK_MAX_SAMPLES);
    *ret_n = n;
    /* fp_chunk_decode agrees: every sample when iterating reached the end, else an error */
    {
        static int64_t bts[FP_CHUNK_MAX_SAMPLES];
        static double bv[FP_CHUNK_MAX_SAMPLES];
        int got = fp_chunk_decode(buf, len, bts, bv);
        if (r == FP_CHUNK_E_END)
            check_int(got, n);
        else
            check(got == FP_CHUNK_E_CORRUPT || got == FP_CHUNK_E_FORMAT);
    }
    (void)fp_chunk_iter_seek(&it, BASE_TS + 12345, NULL, NULL);
    return r;
}

static void damage(const struct chunk *c, int flips)
{
    size_t n;
    int r;

    /* every truncation fails: each byte after the header holds bits the stream needs */
    for (size_t len = 0; len < c->len; len++) {
        uint8_t *p = malloc(len ? len : 1);
        fp_assert(p != NULL);
        memcpy(p, c->buf, len);
        r = drain(p, len, &n);
        if (r != FP_CHUNK_E_CORRUPT)
            FP_TEST_FAIL("truncated to %zu of %zu bytes: %s after %zu samples", len, c->len,
                         fp_chunk_strerror(r), n);
        free(p);
    }
    /* a byte of garbage after the end is refused too */
    {
        uint8_t *p = malloc(c->len + 1);
        fp_assert(p != NULL);
        memcpy(p, c->buf, c->len);
        p[c->len] = 0;
        check_int(drain(p, c->len + 1, &n), FP_CHUNK_E_CORRUPT);
        free(p);
    }
    /* random damage: an error or other valid data, never a crash or a read out of bounds */
    for (int k = 0; k < flips; k++) {
        uint8_t *p = malloc(c->len);
        fp_assert(p != NULL);
        memcpy(p, c->buf, c->len);
        int hits = 1 + (int)(rnd() % 3);
        for (int h = 0; h < hits; h++) {
            size_t at = (size_t)(rnd() % c->len);
            if (rnd() % 2)
                p[at] ^= (uint8_t)(1u << (rnd() % 8));
            else
                p[at] = (uint8_t)rnd();
        }
        r = drain(p, c->len, &n);
        check(r == FP_CHUNK_E_END || r == FP_CHUNK_E_CORRUPT || r == FP_CHUNK_E_FORMAT);
        free(p);
    }
}

static void test_corruption(void)
{
    static int64_t ts[MAXN];
    static double v[MAXN];
    struct chunk *c = malloc(sizeof(*c));
    struct fp_chunk_enc_opts ox = force_xor();
    uint8_t hdr[FP_CHUNK_HEADER_BYTES];
    size_t n;
    double x = 0;

    fp_assert(c != NULL);
    for (size_t i = 0; i < MAXN; i++)
        ts[i] = BASE_TS + (int64_t)i * 10000 + (int64_t)(rnd() % 3);

    for (size_t i = 0; i < MAXN; i++)
        v[i] = round_to(30 + 3 * gauss(), 2);
    encode(ts, v, 200, NULL, c); /* DECIMAL */
    damage(c, 2000);
    encode(ts, v, 200, &ox, c); /* XOR */
    damage(c, 2000);
    for (size_t i = 0; i < MAXN; i++) {
        x += (double)(rnd() % 50);
        v[i] = x * 4096;
    }
    encode(ts, v, MAXN, NULL, c); /* INT, full */
    damage(c, 1000);
    encode(ts, v, 1, NULL, c); /* one sample */
    damage(c, 200);
    encode(ts, v, 2, NULL, c); /* two */
    damage(c, 200);
    steady_ts(ts, 100);
    for (size_t i = 0; i < 100; i++)
        v[i] = 7;
    encode(ts, v, 100, NULL, c); /* constant at a steady cadence: no per-sample bits at all */
    damage(c, 500);

    /* fields out of range, one at a time, on a valid header */
    memcpy(hdr, c->buf, sizeof(hdr));
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), 0);
    hdr[0] = FP_CHUNK_FORMAT + 1;
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_FORMAT);
    hdr[0] = FP_CHUNK_FORMAT;
    check_int(fp_chunk_info(hdr, sizeof(hdr) - 1, &c->info), FP_CHUNK_E_CORRUPT);
    hdr[1] = 9;
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_CORRUPT);
    hdr[1] = FP_CHUNK_KIND_DECIMAL;
    hdr[2] = 7;
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_CORRUPT);
    hdr[1] = FP_CHUNK_KIND_INT;
    hdr[2] = 1;
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_CORRUPT);
    hdr[2] = 0;
    hdr[3] = 0;
    hdr[4] = 0; /* zero samples */
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_CORRUPT);
    hdr[3] = 0xff;
    hdr[4] = 0xff; /* too many */
    check_int(fp_chunk_info(hdr, sizeof(hdr), &c->info), FP_CHUNK_E_CORRUPT);
    check_int(fp_chunk_info(NULL, 0, &c->info), -EINVAL);

    /* random bytes behind a plausible header */
    for (int k = 0; k < 3000; k++) {
        size_t len = FP_CHUNK_HEADER_BYTES + (size_t)(rnd() % 300);
        uint8_t *p = malloc(len);
        fp_assert(p != NULL);
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)rnd();
        p[0] = FP_CHUNK_FORMAT;
        p[1] = (uint8_t)(1 + rnd() % 3);
        p[2] = p[1] == FP_CHUNK_KIND_DECIMAL ? (uint8_t)(1 + rnd() % 6) : 0;
        p[3] = (uint8_t)(1 + rnd() % 200);
        p[4] = 0;
        int r = drain(p, len, &n);
        check(r == FP_CHUNK_E_END || r == FP_CHUNK_E_CORRUPT);
        free(p);
    }
    free(c);
}

/* --- API corners --------------------------------------------------------------------------- */

static void test_api(void)
{
    struct fp_chunk_iter it;
    struct fp_chunk_enc *e = NULL;

    check_int(fp_chunk_iter_init(&it, NULL, 0), -EINVAL);
    check_int(fp_chunk_iter_next(&it, NULL, NULL), FP_CHUNK_E_CORRUPT);
    check_int(fp_chunk_iter_seek(&it, 0, NULL, NULL), FP_CHUNK_E_CORRUPT);
    {
        int64_t t[FP_CHUNK_MAX_SAMPLES];
        double v[FP_CHUNK_MAX_SAMPLES];
        check_int(fp_chunk_decode(NULL, 0, t, v), -EINVAL);
        check_int(fp_chunk_decode((const uint8_t *)"x", 1, NULL, v), -EINVAL);
    }
    check_int(fp_chunk_enc_new(NULL, NULL), -EINVAL);
    fp_chunk_enc_destroy(NULL);
    fp_chunk_enc_destroy(&e);
    check_str(fp_chunk_strerror(FP_CHUNK_E_FULL), "chunk full");
    check_str(fp_chunk_strerror(FP_CHUNK_E_CORRUPT), "corrupt chunk");
    check_str(fp_chunk_strerror(-ENOBUFS), strerror(ENOBUFS));
}

int main(void)
{
    test_specials();
    test_kinds();
    test_timestamps();
    test_caps();
    test_seek();
    test_corruption();
    test_api();
    fp_test_end();
}
