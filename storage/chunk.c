/* Time-series chunk codec behind storage/chunk.h.
 *
 * What: one series' samples (strictly increasing int64 ts_ms, any double) compressed into a
 * self-contained byte string of at most FP_CHUNK_MAX_SAMPLES samples and max_bytes bytes; the unit
 * the storage engine will keep in one LMDB value.
 *
 * Format (version 1). A 13-byte header, then one bit stream, most significant bit first:
 *
 *   byte 0      format version (FP_CHUNK_FORMAT)
 *   byte 1      value kind: 1 XOR, 2 INT, 3 DECIMAL
 *   byte 2      decimals d: 1..6 for DECIMAL, 0 otherwise
 *   bytes 3-4   sample count n, u16 little endian, 1..FP_CHUNK_MAX_SAMPLES
 *   bytes 5-12  first timestamp, int64 little endian (fixed, so the store reads it without decoding)
 *   bits        [ts stream params]                           only if n >= 2
 *               value params:  XOR      v0, 64 raw bits
 *                              INT/DEC  m0 vbits(zigzag); if n >= 2: g vbits, y stream params
 *               then for each sample i = 1..n-1: its ts code, then its value code
 *               zero bits up to the next byte boundary; nothing after
 *
 *   vbits(x)      7-bit length b (0..64), then x in b bits
 *   stream params order:2 k:6 lexp:3 bias:vbits(zigzag) [seed:vbits(zigzag) if order == 2]
 *
 * Integer streams. Timestamps, and for INT/DECIMAL the scaled values, are integer sequences x_i
 * coded the same way. Each sample i >= 1 carries one residual r_i = zigzag(raw_i - bias), where
 * raw_i is, by the stream's order, x_i - x_0 (0: values scattered around a level), x_i - x_{i-1}
 * (1: random walks, counters, steady cadences) or the delta of deltas (2; the first delta is the
 * seed and sample 1 carries no code). r_i is Rice coded with parameter k: q = r >> k as q one-bits
 * and a zero, then the k low bits. When q >= L = 1 << lexp it escapes instead: L one-bits, 6 bits
 * of bitlen(r) - 1, and r below its top bit, so an outlier (a counter reset, an hour-long gap)
 * costs at most 101 bits. k = 63 means every residual is zero and none is stored: a 10 s cadence
 * costs 0 bits per sample, a constant series too. All arithmetic on x wraps modulo 2^64, so any
 * int64 timestamps round-trip; the decoder requires ts to increase strictly.
 *
 * Values. INT: every value v is an integer with |v| <= 2^53 (counters, byte counts). DECIMAL:
 * every v equals, bit for bit, (double)m / 10^d for an integer |m| <= 2^53 and 1 <= d <= 6, which
 * is what strtod("51.234"), Python's round() and numpy.round() produce. A value only qualifies
 * after that exact division reproduces its bits, so decoding is lossless by construction (-0.0,
 * NaN and Inf never qualify). The chunk takes the smallest d that fits every value (if v fits at d
 * it fits at any larger d: both are the correctly rounded m / 10^d). Then m_i = m0 + g * y_i, g the
 * gcd of all m_i - m0 (4096 for page-multiple byte counts), and y is an integer stream.
 * XOR: Gorilla/Prometheus XOR on the IEEE bits: '0' same value; '10' + bits inside the previous
 * leading/trailing-zero window; '11' + 5-bit leading zeros (at most 31) + 6-bit length (64 as 0)
 * + the meaningful bits. It takes any double, NaN payloads (the stale marker) included.
 *
 * How the encoder decides. It buffers the raw samples (bounded by max_samples) and picks every
 * parameter when the chunk is finished ("plan"): per stream, each order gets the median of 64
 * evenly spaced raw residuals as bias and is ranked by the sum of its residuals' bit lengths (a
 * close proxy of Rice cost); the winner gets a scan of k around its median bit length, with every
 * lexp. Values take the cheaper of INT/DECIMAL and XOR, by exact bit counts, so a chunk is never
 * larger than XOR with Gorilla-style timestamps.
 * To report FULL before max_bytes is passed without planning on every append, the encoder keeps
 * exact running costs of a few fixed parameter sets: XOR, timestamps as DoD with k = 0 and L = 1
 * (Gorilla-like), and the parameters of the last plan. The cheapest is an upper bound of what
 * finish will produce, because finish weighs those sets too. append plans once at 32 samples, so
 * the last-plan costs fit the data, and again only when the bound passes max_bytes (then at most
 * once per 32 samples: a chunk may end a few samples early rather than plan on every append).
 * Planning is O(n); encoding costs 60-70 ns a sample on the fleet workload.
 *
 * Invariants: ts strictly increasing inside a chunk; 1 <= n <= FP_CHUNK_MAX_SAMPLES; a finished
 * chunk is at most max_bytes and decodes to exactly what was appended; the decoder reads only
 * inside [buf, buf + len) (one peek helper touches memory) and fails on any field out of range,
 * any residual that breaks the order of timestamps, a scaled value beyond 2^53, or bits left over.
 *
 * Why 480 samples: 80 min at the probe's 10 s cadence. Header and stream parameters cost about
 * 20 bytes a chunk: on the fleet workload (bench/chunk) 480-sample chunks take 1.13 bytes per
 * sample, 240 take 1.17 and 120 take 1.26; Gorilla saw no gain past 2 h. A 480-sample chunk
 * of these series is 150-850 bytes, well under the byte cap, and seeking decodes at most 480
 * samples (about 5 us). An encoder holds 58 bytes a sample (28 KiB): raw input plus planning
 * scratch, so the store should reuse one per sealing thread, not keep one per series.
 *
 * Rejected alternatives:
 * - Byte-compatible Prometheus XOR chunks (free streamed remote read): over 4x larger on the
 *   fleet workload (4.9 bytes per sample), where most series are fixed-decimal gauges whose
 *   mantissas XOR badly; remote read can transcode.
 * - Encoding incrementally as samples arrive (Prometheus head chunks) to keep a head at about
 *   1 byte per sample instead of 16: the per-chunk choice of kind, order, bias and k needs all
 *   values, and the store keeps raw heads anyway to sort late samples before sealing.
 * - Gorilla/Prometheus fixed DoD buckets (0 / 14 / 17 / 20 / 64 bits) for timestamps: +-1 ms
 *   jitter then costs 16 bits per sample; a per-chunk Rice parameter costs about 2.5.
 * - zstd or another general-purpose pass: a dependency in the hot path, and little left to find
 *   after decimal scaling; revisit for cold blocks (VictoriaMetrics keeps it when it saves 10%).
 * - Frame-of-reference bit packing at a fixed width: Rice codes are about a bit shorter on the
 *   Gaussian noise these gauges carry and degrade gracefully on outliers. */
#include "chunk.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define K_ZERO 63        /* Rice k meaning "every residual is zero, none stored" */
#define K_MAX 62         /* largest real Rice k; 6 bits leave 63 for K_ZERO */
#define LEXP_MAX 5       /* escape after at most 32 one-bits: an escape costs <= 32 + 6 + 63 */
#define DECIMALS_MAX 6   /* beyond 6 decimals the values are noise-like doubles; XOR takes them */
#define INT_LIMIT (INT64_C(1) << 53) /* every integer up to here is an exact double */
#define NO_BITS UINT64_MAX           /* cost of a parameter set that cannot code the data */
#define Q_BUCKETS 33     /* rice_eval: unary lengths 0..31 and ">= 32" (always escaped) */
#define PLAN_EARLY 32    /* append plans once here, so the running costs track fitting params */
#define REPLAN_MIN 32    /* near the byte cap, plan again only after this many new samples */
#define BIAS_SAMPLE 64   /* residuals sampled for a stream's bias */

static const double pow10_tab[DECIMALS_MAX + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};

/* --- small helpers --------------------------------------------------------------------------- */

static unsigned bitlen(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

/* Zigzag on the two's complement bits: 0, -1, 1, -2 -> 0, 1, 2, 3. Written on uint64_t so that
 * no signed shift or overflow is involved. */
static uint64_t zz(uint64_t x)
{
    return (x << 1) ^ (0 - (x >> 63));
}

static uint64_t unzz(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* uint64_t -> int64_t by two's complement, without the implementation-defined conversion. */
static int64_t u2i(uint64_t x)
{
    return x <= (uint64_t)INT64_MAX ? (int64_t)x : -(int64_t)(~x) - 1;
}

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The one place a scaled integer becomes a double: encoder (to qualify a value) and decoder
 * must compute exactly the same expression. */
static double dec_value(int64_t m, unsigned d)
{
    return (double)m / pow10_tab[d];
}

/* Finds m with dec_value(m, d) bit-identical to v and |m| <= 2^53. v * 10^d is off the exact
 * m by rounding, by at most 2 units near 2^53, hence the neighbours. */
static bool dec_fit(double v, unsigned d, int64_t *ret_m)
{
    double s = v * pow10_tab[d];
    uint64_t want = dbits(v);
    static const int64_t nudge[] = {0, -1, 1, -2, 2};

    if (!(fabs(s) <= 0x1p53 + 4)) /* NaN, Inf, or out of range; keeps llrint defined */
        return false;
    int64_t m0 = llrint(s);
    for (size_t j = 0; j < sizeof(nudge) / sizeof(nudge[0]); j++) {
        int64_t m = m0 + nudge[j];
        if (m > INT_LIMIT || m < -INT_LIMIT)
            continue;
        if (dbits(dec_value(m, d)) == want) {
            *ret_m = m;
            return true;
        }
        if (fabs(s) < 0x1p50) /* products this small are off by less than one unit */
            break;
    }
    return false;
}

bool fp_chunk_decimal_fit(double v, unsigned d, int64_t *ret_m)
{
    return d <= DECIMALS_MAX && dec_fit(v, d, ret_m);
}

double fp_chunk_decimal_value(int64_t m, unsigned d)
{
    return dec_value(m, d);
}

/* --- bit writer (encoder) --------------------------------------------------------------------- */

/* Appends bits MSB-first into a buffer whose exact size was computed beforehand, a 64-bit word
 * at a time; a NULL writer means "count only", so one function both prices and writes a code and
 * they cannot disagree. */
struct bitwriter {
    uint8_t *p;
    size_t cap;      /**< bytes */
    size_t pos;      /**< bytes written */
    uint64_t acc;    /**< pending bits, the low nacc of them */
    unsigned nacc;   /**< 0..63 between calls */
    uint64_t nbits;  /**< bits put so far */
};

static void bw_emit(struct bitwriter *w, uint64_t word)
{
    assert(w->pos + 8 <= w->cap); /* a full word is all payload: it fits the exact size */
    for (int i = 0; i < 8; i++)
        w->p[w->pos++] = (uint8_t)(word >> (56 - 8 * i));
}

static void bw_put(struct bitwriter *w, uint64_t v, unsigned n)
{
    unsigned room, rest;

    if (w == NULL || n == 0)
        return;
    if (n < 64)
        v &= (UINT64_C(1) << n) - 1;
    w->nbits += n;
    room = 64 - w->nacc;
    if (n < room) {
        w->acc = (w->acc << n) | v;
        w->nacc += n;
        return;
    }
    rest = n - room; /* bits of v left over once the word is full, 0..63 */
    bw_emit(w, room == 64 ? v : (w->acc << room) | (v >> rest));
    w->acc = rest ? v & ((UINT64_C(1) << rest) - 1) : 0;
    w->nacc = rest;
}

static void bw_flush(struct bitwriter *w)
{
    while (w->nacc >= 8) {
        w->nacc -= 8;
        assert(w->pos < w->cap);
        w->p[w->pos++] = (uint8_t)(w->acc >> w->nacc);
    }
    if (w->nacc > 0) {
        assert(w->pos < w->cap);
        w->p[w->pos++] = (uint8_t)(w->acc << (8 - w->nacc));
        w->nacc = 0;
    }
}

static uint64_t vbits_cost(uint64_t x)
{
    return 7 + bitlen(x);
}

static void put_vbits(struct bitwriter *w, uint64_t x)
{
    unsigned b = bitlen(x);
    bw_put(w, b, 7);
    bw_put(w, x, b);
}

/* --- integer streams: parameters, residuals, Rice codes ------------------------------------- */

struct iparams {
    uint8_t order; /**< 0, 1, 2: see the file comment */
    uint8_t k;     /**< 0..K_MAX, or K_ZERO */
    uint8_t lexp;  /**< 0..LEXP_MAX */
    uint64_t bias; /**< int64 bits, subtracted from the raw residual */
    uint64_t seed; /**< order 2: x_1 - x_0 */
};

static uint64_t iparams_cost(const struct iparams *p)
{
    return 2 + 6 + 3 + vbits_cost(zz(p->bias)) + (p->order == 2 ? vbits_cost(zz(p->seed)) : 0);
}

static void put_iparams(struct bitwriter *w, const struct iparams *p)
{
    bw_put(w, p->order, 2);
    bw_put(w, p->k, 6);
    bw_put(w, p->lexp, 3);
    put_vbits(w, zz(p->bias));
    if (p->order == 2)
        put_vbits(w, zz(p->seed));
}

/* The raw residual of element i >= 1 of x; false for order 2's element 1, which the seed codes. */
static inline bool raw_residual(const uint64_t *x, size_t i, unsigned order, uint64_t *ret)
{
    switch (order) {
    case 0:
        *ret = x[i] - x[0];
        return true;
    case 1:
        *ret = x[i] - x[i - 1];
        return true;
    default:
        if (i < 2)
            return false;
        *ret = (x[i] - x[i - 1]) - (x[i - 1] - x[i - 2]);
        return true;
    }
}

static uint64_t rice_cost(uint64_t z, unsigned k, unsigned lexp)
{
    if (k == K_ZERO)
        return z == 0 ? 0 : NO_BITS;
    uint64_t q = z >> k;
    uint64_t l = UINT64_C(1) << lexp;
    return q < l ? q + 1 + k : l + 5 + bitlen(z);
}

static void rice_put(struct bitwriter *w, uint64_t z, unsigned k, unsigned lexp)
{
    if (k == K_ZERO) {
        assert(z == 0);
        return;
    }
    uint64_t q = z >> k;
    unsigned l = 1u << lexp;
    if (q < l) {
        bw_put(w, ((UINT64_C(1) << q) - 1) << 1, (unsigned)q + 1);
        bw_put(w, z, k);
    } else {
        unsigned b = bitlen(z);
        bw_put(w, (UINT64_C(1) << l) - 1, l);
        bw_put(w, b - 1, 6);
        bw_put(w, z, b - 1);
    }
}

/* Tries Rice parameter k on z[0..m) (nb[] their bit lengths) with every lexp at once; keeps the
 * cheapest in *best. Returns whether k improved on *best. */
static bool rice_eval(const uint64_t *z, const uint8_t *nb, size_t m, unsigned k, uint64_t *best,
                      uint8_t *ret_k, uint8_t *ret_lexp)
{
    uint64_t c[Q_BUCKETS] = {0}, sn[Q_BUCKETS] = {0};
    bool improved = false;

    for (size_t i = 0; i < m; i++) {
        uint64_t q = z[i] >> k;
        size_t b = q < Q_BUCKETS - 1 ? (size_t)q : Q_BUCKETS - 1;
        c[b]++;
        sn[b] += nb[i];
    }
    for (unsigned lexp = 0; lexp <= LEXP_MAX; lexp++) {
        uint64_t l = UINT64_C(1) << lexp, cost = 0;
        for (uint64_t q = 0; q < Q_BUCKETS; q++)
            cost += q < l ? c[q] * (q + 1 + k) : c[q] * (l + 5) + sn[q];
        if (cost < *best) {
            *best = cost;
            *ret_k = (uint8_t)k;
            *ret_lexp = (uint8_t)lexp;
            improved = true;
        }
    }
    return improved;
}

/* Picks (k, lexp) for residuals z[0..m) and returns their cost in bits. The optimum sits near
 * the median bit length; k = 0 is tried too because sparse series (mostly zero, with bursts)
 * want it however large their median burst is. Scans stop after two ks without gain. */
static uint64_t rice_search(const uint64_t *z, size_t m, uint8_t *nb, uint8_t *ret_k,
                            uint8_t *ret_lexp)
{
    size_t hist[65] = {0}, cum = 0;
    unsigned bmax = 0, bmed = 0;
    uint64_t best = NO_BITS;

    *ret_k = K_ZERO;
    *ret_lexp = 0;
    for (size_t i = 0; i < m; i++) {
        nb[i] = (uint8_t)bitlen(z[i]);
        hist[nb[i]]++;
        if (nb[i] > bmax)
            bmax = nb[i];
    }
    if (bmax == 0) /* all zero (or none): K_ZERO, free */
        return 0;
    for (bmed = 0; bmed < 64; bmed++) {
        cum += hist[bmed];
        if (cum * 2 >= m)
            break;
    }
    unsigned kmax = bmax < K_MAX ? bmax : K_MAX;
    unsigned k0 = bmed >= 2 ? bmed - 1 : 1;
    if (k0 > kmax)
        k0 = kmax;
    (void)rice_eval(z, nb, m, 0, &best, ret_k, ret_lexp);
    for (unsigned k = k0, misses = 0; k <= kmax && misses < 2; k++)
        misses = rice_eval(z, nb, m, k, &best, ret_k, ret_lexp) ? 0 : misses + 1;
    for (unsigned k = k0 - 1; k >= 1; k--)
        if (!rice_eval(z, nb, m, k, &best, ret_k, ret_lexp))
            break;
    return best;
}

/* --- encoder state: running costs ----------------------------------------------------------- */

/* Each tracker keeps the exact cost of the samples so far under fixed parameters. Appending is
 * split in two: a pure step that prices the new sample for every tracker (struct step), and a
 * commit that applies it. append commits in place when the priced bound stays under the cap,
 * and copies the trackers only when it must plan, which may refuse the sample. */

/* Running exact cost of one integer stream under fixed parameters. */
struct itrack {
    struct iparams p;
    bool valid;     /**< false once a residual does not fit p (K_ZERO and a non-zero one) */
    uint64_t bits;  /**< stream params (from the 2nd element on) plus codes so far */
    size_t n;       /**< elements seen */
    uint64_t x0, prev, prev_d;
};

/* One element priced for an itrack. */
struct istep {
    uint64_t cost; /**< bits it adds, NO_BITS: the parameters cannot code it */
    uint64_t x, d; /**< the element and its delta */
};

static struct istep itrack_step(const struct itrack *t, uint64_t x)
{
    struct istep s = {.cost = 0, .x = x, .d = x - t->prev};
    uint64_t raw, c;

    if (!t->valid || t->n == 0)
        return s;
    if (t->n == 1) { /* the stream parameters appear with the second element */
        struct iparams p = t->p;
        if (p.order == 2) {
            p.seed = s.d;
            s.cost = iparams_cost(&p);
            return s; /* and the seed codes it */
        }
        s.cost = iparams_cost(&p);
    }
    raw = t->p.order == 0 ? x - t->x0 : t->p.order == 1 ? s.d : s.d - t->prev_d;
    c = rice_cost(zz(raw - t->p.bias), t->p.k, t->p.lexp);
    s.cost = c == NO_BITS ? NO_BITS : s.cost + c;
    return s;
}

static void itrack_commit(struct itrack *t, const struct istep *s)
{
    if (!t->valid)
        return;
    if (s->cost == NO_BITS) {
        t->valid = false;
        return;
    }
    if (t->n == 0)
        t->x0 = s->x;
    else if (t->n == 1 && t->p.order == 2)
        t->p.seed = s->d;
    t->bits += s->cost;
    t->prev = s->x;
    t->prev_d = s->d;
    t->n++;
}

/* Gorilla XOR state; shared by the cost tracker, the writer and (mirrored) the decoder. */
struct xstate {
    uint64_t prev;
    uint8_t lead;  /**< window leading zeros, 0xff: no window yet */
    uint8_t trail; /**< window trailing zeros */
};

static uint64_t xor_step(struct xstate *s, uint64_t bits, struct bitwriter *w)
{
    uint64_t x = bits ^ s->prev;
    unsigned lead, trail, sig;

    s->prev = bits;
    if (x == 0) {
        bw_put(w, 0, 1);
        return 1;
    }
    lead = (unsigned)__builtin_clzll(x);
    trail = (unsigned)__builtin_ctzll(x);
    if (lead > 31) /* 5 bits; Prometheus clamps the same way */
        lead = 31;
    if (s->lead != 0xff && lead >= s->lead && trail >= s->trail) {
        sig = 64u - s->lead - s->trail;
        bw_put(w, 2, 2);
        bw_put(w, x >> s->trail, sig);
        return 2 + sig;
    }
    sig = 64u - lead - trail;
    bw_put(w, 3, 2);
    bw_put(w, lead, 5);
    bw_put(w, sig & 63, 6);
    bw_put(w, x >> trail, sig);
    s->lead = (uint8_t)lead;
    s->trail = (uint8_t)trail;
    return 13 + sig;
}

struct xtrack {
    struct xstate s;
    uint64_t bits; /**< v0 plus XOR codes so far */
    size_t n;
};

/* Smallest decimals d every value so far fits (see the file comment on monotonicity). */
struct dtrack {
    bool valid;
    uint8_t d;
};

/* Running exact cost of the INT/DECIMAL value section under the last plan's d, m0, g and
 * stream parameters. */
struct vtrack {
    bool valid;
    uint8_t d;
    int64_t m0;
    uint64_t g;
    uint64_t base_bits; /**< m0 and g */
    struct itrack y;
};

struct tracks {
    struct xtrack xor;      /**< XOR values, always valid */
    struct itrack ts_ref;   /**< ts as DoD, bias 0, k 0, L 1: always valid */
    struct itrack ts_last;  /**< ts under the last plan's parameters */
    struct dtrack dec;      /**< can the values be INT/DECIMAL, and at which d */
    struct vtrack val_last; /**< values under the last plan's INT/DECIMAL parameters */
};

/* One sample priced for every tracker. */
struct step {
    struct xstate xs;      /**< XOR state after the sample */
    uint64_t xor_cost;
    struct istep ts_ref, ts_last;
    bool dec_fits;         /**< the sample scales at dec_d */
    uint8_t dec_d;         /**< the decimals tracker's d after the sample */
    int64_t m;             /**< the sample scaled at dec_d, when dec_fits */
    bool val_ok;           /**< the sample fits val_last's d and g */
    struct istep y;        /**< val_last's y stream, when val_ok */
};

static void tracks_step(const struct tracks *t, int64_t ts, double v, struct step *s)
{
    uint64_t vb = dbits(v);
    int64_t m = 0;

    s->xs = t->xor.s;
    if (t->xor.n == 0) {
        s->xs.prev = vb;
        s->xor_cost = 64;
    } else {
        s->xor_cost = xor_step(&s->xs, vb, NULL);
    }
    s->ts_ref = itrack_step(&t->ts_ref, (uint64_t)ts);
    s->ts_last = itrack_step(&t->ts_last, (uint64_t)ts);

    s->dec_fits = false;
    s->dec_d = t->dec.d;
    if (t->dec.valid) {
        for (unsigned d = t->dec.d; d <= DECIMALS_MAX && !s->dec_fits; d++) {
            s->dec_fits = dec_fit(v, d, &m);
            s->dec_d = (uint8_t)d;
        }
    }
    /* The last plan's d was the tracker's d then; once the tracker must move on, v does not fit
     * it. m - m0 stays within 2^54: no overflow. */
    s->m = m;
    s->val_ok = t->val_last.valid && s->dec_fits && s->dec_d == t->val_last.d &&
                (t->val_last.g == 1 || (m - t->val_last.m0) % (int64_t)t->val_last.g == 0);
    if (s->val_ok) {
        int64_t y = m - t->val_last.m0;
        if (t->val_last.g != 1)
            y /= (int64_t)t->val_last.g;
        s->y = itrack_step(&t->val_last.y, (uint64_t)y);
        s->val_ok = s->y.cost != NO_BITS;
    }
}

static void tracks_commit(struct tracks *t, const struct step *s)
{
    t->xor.s = s->xs;
    t->xor.bits += s->xor_cost;
    t->xor.n++;
    itrack_commit(&t->ts_ref, &s->ts_ref);
    itrack_commit(&t->ts_last, &s->ts_last);
    if (t->dec.valid) {
        t->dec.valid = s->dec_fits;
        t->dec.d = s->dec_d;
    }
    if (!s->val_ok)
        t->val_last.valid = false;
    else
        itrack_commit(&t->val_last.y, &s->y);
}

/* What finish would produce at most, from the running costs, after step s (NULL: none). */
static uint64_t tracks_bound(const struct tracks *t, const struct step *s)
{
    uint64_t ts = t->ts_ref.bits + (s ? s->ts_ref.cost : 0);
    uint64_t val = t->xor.bits + (s ? s->xor_cost : 0);

    if (t->ts_last.valid && (s == NULL || s->ts_last.cost != NO_BITS)) {
        uint64_t b = t->ts_last.bits + (s ? s->ts_last.cost : 0);
        if (b < ts)
            ts = b;
    }
    if (t->val_last.valid && (s == NULL || s->val_ok)) {
        uint64_t b = t->val_last.base_bits + t->val_last.y.bits + (s ? s->y.cost : 0);
        if (b < val)
            val = b;
    }
    return ts + val;
}

/* A complete choice of parameters for a chunk, with its exact size. */
struct plan {
    struct iparams ts;
    uint64_t ts_bits;
    uint64_t xor_bits;
    bool int_ok;           /**< the INT/DECIMAL fields below are set */
    uint8_t decimals;
    int64_t m0;
    uint64_t g;
    struct iparams val;
    uint64_t int_bits;     /**< the whole INT/DECIMAL value section */
    uint8_t kind;          /**< chosen: enum fp_chunk_kind */
    uint64_t bits;         /**< chosen: the bit stream after the header */
};

struct fp_chunk_enc {
    struct fp_chunk_enc_opts opts;
    size_t n;          /**< samples appended */
    size_t plan_n;     /**< samples when append last adopted a plan, 0: never */
    struct tracks tr;  /**< running costs for the n samples */
    int64_t *ts;       /**< [max_samples] appended timestamps */
    double *v;         /**< [max_samples] appended values */
    int64_t *mraw;     /**< [max_samples] values scaled at md[i] decimals (while they scale) */
    uint8_t *md;       /**< [max_samples] the decimals of mraw[i] */
    int64_t *m;        /**< [max_samples] scratch: scaled values */
    uint64_t *x;       /**< [max_samples] scratch: the sequence being planned */
    uint64_t *r;       /**< [max_samples] scratch: residuals */
    int64_t *sel;      /**< [max_samples] scratch: median selection */
    uint8_t *nb;       /**< [max_samples] scratch: bit lengths */
};

static void tracks_init(struct tracks *t, bool force_xor)
{
    memset(t, 0, sizeof(*t));
    t->xor.s.lead = 0xff;
    t->ts_ref.p = (struct iparams){.order = 2, .k = 0, .lexp = 0};
    t->ts_ref.valid = true;
    t->dec.valid = !force_xor;
}
static int64_t select_kth(int64_t *a, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t pivot = a[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                int64_t tmp = a[i];
                a[i++] = a[j];
                a[j--] = tmp;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return a[k];
}

/* The raw residuals of e->x[0..n) under order, into e->r; returns how many (n - 1, or n - 2 for
 * order 2, whose first delta is the seed). */
static size_t residuals(struct fp_chunk_enc *e, size_t n, unsigned order)
{
    const uint64_t *x = e->x;
    uint64_t *r = e->r;
    size_t m = 0;

    switch (order) {
    case 0:
        for (size_t i = 1; i < n; i++)
            r[m++] = x[i] - x[0];
        break;
    case 1:
        for (size_t i = 1; i < n; i++)
            r[m++] = x[i] - x[i - 1];
        break;
    default:
        for (size_t i = 2; i < n; i++)
            r[m++] = (x[i] - x[i - 1]) - (x[i - 1] - x[i - 2]);
        break;
    }
    return m;
}

/* The bias for e->r[0..m): the median of at most BIAS_SAMPLE evenly spaced residuals. It only
 * has to sit near the centre; the full median would cost a selection over the chunk per order. */
static uint64_t bias_of(struct fp_chunk_enc *e, size_t m)
{
    size_t step = m > BIAS_SAMPLE ? m / BIAS_SAMPLE : 1, k = 0;
    if (m == 0)
        return 0;
    for (size_t i = 0; i < m && k < BIAS_SAMPLE; i += step)
        e->sel[k++] = u2i(e->r[i]);
    return (uint64_t)select_kth(e->sel, (ptrdiff_t)k, (ptrdiff_t)(k / 2));
}

/* Best parameters for the sequence e->x[0..n), n >= 2, among orders lo..hi; returns the stream's
 * cost. Orders are ranked by parameters plus the residuals' bit lengths, a close proxy of their
 * Rice cost, and only the winner gets the (k, lexp) search. */
static uint64_t search_orders(struct fp_chunk_enc *e, size_t n, unsigned lo, unsigned hi,
                              struct iparams *ret)
{
    uint64_t best_proxy = NO_BITS;
    size_t m;

    for (unsigned order = lo; order <= hi; order++) {
        struct iparams c = {.order = (uint8_t)order};
        uint64_t proxy;
        m = residuals(e, n, order);
        c.bias = bias_of(e, m);
        if (order == 2)
            c.seed = e->x[1] - e->x[0];
        proxy = iparams_cost(&c);
        for (size_t i = 0; i < m; i++)
            proxy += bitlen(zz(e->r[i] - c.bias));
        if (proxy < best_proxy) {
            best_proxy = proxy;
            *ret = c;
        }
    }
    m = residuals(e, n, ret->order);
    for (size_t i = 0; i < m; i++)
        e->r[i] = zz(e->r[i] - ret->bias);
    return iparams_cost(ret) + rice_search(e->r, m, e->nb, &ret->k, &ret->lexp);
}

/* The INT/DECIMAL candidates; leaves e->m[0..n) scaled at p->decimals when p->int_ok. */
static void plan_int(struct fp_chunk_enc *e, size_t n, const struct tracks *t, struct plan *p)
{
    static const int64_t p10[DECIMALS_MAX + 1] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    unsigned d = t->dec.d;
    uint64_t g = 0, base;

    /* Rescale what append scaled at a smaller d. Exact, since both are the correctly rounded
     * m / 10^d of one number; only the magnitude can fail, and then XOR it is. */
    for (size_t i = 0; i < n; i++) {
        int64_t mi = e->mraw[i];
        if (e->md[i] != d) {
            int64_t f = p10[d - e->md[i]];
            if ((mi < 0 ? -mi : mi) > INT_LIMIT / f)
                return;
            mi *= f;
        }
        e->m[i] = mi;
    }
    p->int_ok = true;
    p->decimals = (uint8_t)d;
    p->m0 = e->m[0];
    base = vbits_cost(zz((uint64_t)p->m0));
    if (n == 1) {
        p->g = 1;
        p->int_bits = base;
        return;
    }
    for (size_t i = 1; i < n && g != 1; i++) { /* noisy series reach 1 within a few samples */
        int64_t diff = e->m[i] - p->m0;
        g = gcd_u64(g, diff < 0 ? (uint64_t)-diff : (uint64_t)diff);
    }
    if (g == 0) /* a constant series */
        g = 1;
    p->g = g;
    base += vbits_cost(g);
    for (size_t i = 0; i < n; i++) /* (no division when g is 1: most gauges) */
        e->x[i] = (uint64_t)(g == 1 ? e->m[i] - p->m0 : (e->m[i] - p->m0) / (int64_t)g);
    p->int_bits = base + search_orders(e, n, 0, 2, &p->val);
    if (t->val_last.valid && t->val_last.d == d &&
        t->val_last.base_bits + t->val_last.y.bits < p->int_bits) {
        p->int_bits = t->val_last.base_bits + t->val_last.y.bits;
        p->val = t->val_last.y.p;
        p->g = t->val_last.g;
    }
}

/* Chooses every parameter for the first n samples. t holds their running costs: those fixed
 * parameter sets are candidates too, which keeps tracks_bound an upper bound of the result. */
static void plan_chunk(struct fp_chunk_enc *e, size_t n, const struct tracks *t, struct plan *p)
{
    memset(p, 0, sizeof(*p));
    if (n >= 2) {
        p->ts = t->ts_ref.p;
        p->ts_bits = t->ts_ref.bits;
        if (t->ts_last.valid && t->ts_last.bits < p->ts_bits) {
            p->ts = t->ts_last.p;
            p->ts_bits = t->ts_last.bits;
        }
        for (size_t i = 0; i < n; i++)
            e->x[i] = (uint64_t)e->ts[i];
        struct iparams c;
        uint64_t bits = search_orders(e, n, 1, 2, &c); /* order 0 never wins on time */
        if (bits < p->ts_bits) {
            p->ts_bits = bits;
            p->ts = c;
        }
    }
    p->xor_bits = t->xor.bits;
    if (t->dec.valid)
        plan_int(e, n, t, p);
    if (p->int_ok && p->int_bits <= p->xor_bits) {
        p->kind = p->decimals == 0 ? FP_CHUNK_KIND_INT : FP_CHUNK_KIND_DECIMAL;
        p->bits = p->ts_bits + p->int_bits;
    } else {
        p->kind = FP_CHUNK_KIND_XOR;
        p->bits = p->ts_bits + p->xor_bits;
    }
}

/* Restarts the "last plan" trackers from plan p over the first n >= 2 samples. */
static void tracks_adopt(struct tracks *t, const struct plan *p, const struct fp_chunk_enc *e,
                         size_t n)
{
    t->ts_last = (struct itrack){
        .p = p->ts,
        .valid = true,
        .bits = p->ts_bits,
        .n = n,
        .x0 = (uint64_t)e->ts[0],
        .prev = (uint64_t)e->ts[n - 1],
        .prev_d = (uint64_t)e->ts[n - 1] - (uint64_t)e->ts[n - 2],
    };
    t->val_last.valid = false;
    if (p->int_ok) {
        int64_t g = (int64_t)p->g;
        uint64_t y1 = (uint64_t)((e->m[n - 1] - p->m0) / g);
        uint64_t y2 = (uint64_t)((e->m[n - 2] - p->m0) / g);
        uint64_t base = vbits_cost(zz((uint64_t)p->m0)) + vbits_cost(p->g);
        t->val_last = (struct vtrack){
            .valid = true,
            .d = p->decimals,
            .m0 = p->m0,
            .g = p->g,
            .base_bits = base,
            .y = {.p = p->val, .valid = true, .bits = p->int_bits - base, .n = n, .x0 = 0,
                  .prev = y1, .prev_d = y1 - y2},
        };
    }
}

/* --- encoder API ------------------------------------------------------------------------------ */

void fp_chunk_enc_opts_default(struct fp_chunk_enc_opts *ret)
{
    *ret = (struct fp_chunk_enc_opts){
        .max_samples = FP_CHUNK_MAX_SAMPLES,
        .max_bytes = FP_CHUNK_MAX_BYTES,
        .flags = 0,
    };
}

int fp_chunk_enc_new(const struct fp_chunk_enc_opts *opts, struct fp_chunk_enc **ret)
{
    struct fp_chunk_enc_opts o;
    struct fp_chunk_enc *e;
    size_t n;

    if (ret == NULL)
        return -EINVAL;
    if (opts != NULL)
        o = *opts;
    else
        fp_chunk_enc_opts_default(&o);
    if (o.max_samples < 1 || o.max_samples > FP_CHUNK_MAX_SAMPLES ||
        o.max_bytes < FP_CHUNK_MIN_BYTES || o.max_bytes > 65535 ||
        (o.flags & ~(unsigned)FP_CHUNK_ENC_FORCE_XOR) != 0)
        return -EINVAL;
    n = o.max_samples;
    /* One block: the struct, then the 8-byte arrays, then the byte array. */
    e = calloc(1, sizeof(*e) + n * (7 * sizeof(uint64_t) + 2));
    if (e == NULL)
        return -ENOMEM;
    e->opts = o;
    e->ts = (int64_t *)(e + 1);
    e->v = (double *)(e->ts + n);
    e->mraw = (int64_t *)(e->v + n);
    e->m = e->mraw + n;
    e->x = (uint64_t *)(e->m + n);
    e->r = (uint64_t *)(e->x + n);
    e->sel = (int64_t *)(e->r + n);
    e->nb = (uint8_t *)(e->sel + n);
    e->md = e->nb + n;
    fp_chunk_enc_reset(e);
    *ret = e;
    return 0;
}

void fp_chunk_enc_destroy(struct fp_chunk_enc **e)
{
    if (e == NULL || *e == NULL)
        return;
    free(*e);
    *e = NULL;
}

void fp_chunk_enc_reset(struct fp_chunk_enc *e)
{
    e->n = 0;
    e->plan_n = 0;
    tracks_init(&e->tr, (e->opts.flags & FP_CHUNK_ENC_FORCE_XOR) != 0);
}

size_t fp_chunk_enc_count(const struct fp_chunk_enc *e)
{
    return e->n;
}

static uint64_t chunk_bytes(uint64_t bits)
{
    return FP_CHUNK_HEADER_BYTES + (bits + 7) / 8;
}

int fp_chunk_enc_append(struct fp_chunk_enc *e, int64_t ts_ms, double value)
{
    struct tracks t;
    struct step st;
    size_t n = e->n;
    bool over;

    if (n >= e->opts.max_samples)
        return FP_CHUNK_E_FULL;
    if (n > 0 && ts_ms <= e->ts[n - 1])
        return -EINVAL;
    /* Tentatively: the slot at n is unused until e->n moves, the trackers are a copy. */
    e->ts[n] = ts_ms;
    e->v[n] = value;
    tracks_step(&e->tr, ts_ms, value, &st);
    e->mraw[n] = st.m;
    e->md[n] = st.dec_d;
    over = chunk_bytes(tracks_bound(&e->tr, &st)) > e->opts.max_bytes;
    if (over || n + 1 == PLAN_EARLY) {
        struct plan p;
        /* Planning costs O(n): near the cap, once per REPLAN_MIN samples is enough. A chunk may
         * then end a little early, by what re-planning those samples would have saved. */
        if (over && e->plan_n > 0 && n + 1 - e->plan_n < REPLAN_MIN)
            return FP_CHUNK_E_FULL;
        t = e->tr;
        tracks_commit(&t, &st);
        plan_chunk(e, n + 1, &t, &p);
        if (chunk_bytes(p.bits) > e->opts.max_bytes)
            return FP_CHUNK_E_FULL;
        tracks_adopt(&t, &p, e, n + 1);
        e->plan_n = n + 1;
        e->tr = t;
    } else {
        tracks_commit(&e->tr, &st);
    }
    e->n = n + 1;
    return 0;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int fp_chunk_enc_finish(struct fp_chunk_enc *e, uint8_t *buf, size_t size, size_t *ret_len)
{
    struct plan p;
    struct bitwriter w = {0};
    struct xstate xs = {.lead = 0xff};
    size_t n = e->n, need;
    uint64_t raw;

    if (n == 0)
        return -ENODATA;
    plan_chunk(e, n, &e->tr, &p);
    need = (size_t)chunk_bytes(p.bits);
    assert(need <= e->opts.max_bytes);
    if (ret_len != NULL)
        *ret_len = need;
    if (buf == NULL || size < need)
        return -ENOBUFS;

    buf[0] = FP_CHUNK_FORMAT;
    buf[1] = p.kind;
    buf[2] = p.kind == FP_CHUNK_KIND_DECIMAL ? p.decimals : 0;
    put_le(buf + 3, n, 2);
    put_le(buf + 5, (uint64_t)e->ts[0], 8);
    w.p = buf + FP_CHUNK_HEADER_BYTES;
    w.cap = need - FP_CHUNK_HEADER_BYTES;

    if (n >= 2)
        put_iparams(&w, &p.ts);
    if (p.kind == FP_CHUNK_KIND_XOR) {
        bw_put(&w, dbits(e->v[0]), 64);
        xs.prev = dbits(e->v[0]);
    } else {
        /* plan_int left e->m scaled; y may use the last plan's g, so recompute it into e->r */
        put_vbits(&w, zz((uint64_t)p.m0));
        if (n >= 2) {
            put_vbits(&w, p.g);
            put_iparams(&w, &p.val);
        }
        for (size_t i = 0; i < n; i++)
            e->r[i] = (uint64_t)(p.g == 1 ? e->m[i] - p.m0 : (e->m[i] - p.m0) / (int64_t)p.g);
    }
    for (size_t i = 0; i < n; i++)
        e->x[i] = (uint64_t)e->ts[i];
    for (size_t i = 1; i < n; i++) {
        if (raw_residual(e->x, i, p.ts.order, &raw))
            rice_put(&w, zz(raw - p.ts.bias), p.ts.k, p.ts.lexp);
        if (p.kind == FP_CHUNK_KIND_XOR)
            (void)xor_step(&xs, dbits(e->v[i]), &w);
        else if (raw_residual(e->r, i, p.val.order, &raw))
            rice_put(&w, zz(raw - p.val.bias), p.val.k, p.val.lexp);
    }
    bw_flush(&w);
    /* The plan's price and the writer must agree to the bit, or FULL would be wrong. */
    assert(w.nbits == p.bits);
    assert(w.pos == w.cap);
    return 0;
}

/* --- decoder ---------------------------------------------------------------------------------- */

static uint64_t get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int fp_chunk_info(const uint8_t *buf, size_t len, struct fp_chunk_info *ret)
{
    unsigned kind, dec;
    size_t n;

    if (buf == NULL || ret == NULL)
        return -EINVAL;
    if (len < 1)
        return FP_CHUNK_E_CORRUPT;
    if (buf[0] != FP_CHUNK_FORMAT)
        return FP_CHUNK_E_FORMAT;
    if (len < FP_CHUNK_HEADER_BYTES)
        return FP_CHUNK_E_CORRUPT;
    kind = buf[1];
    dec = buf[2];
    n = (size_t)get_le(buf + 3, 2);
    if (kind == FP_CHUNK_KIND_DECIMAL) {
        if (dec < 1 || dec > DECIMALS_MAX)
            return FP_CHUNK_E_CORRUPT;
    } else if ((kind != FP_CHUNK_KIND_XOR && kind != FP_CHUNK_KIND_INT) || dec != 0) {
        return FP_CHUNK_E_CORRUPT;
    }
    if (n < 1 || n > FP_CHUNK_MAX_SAMPLES)
        return FP_CHUNK_E_CORRUPT;
    *ret = (struct fp_chunk_info){
        .kind = (enum fp_chunk_kind)kind,
        .decimals = dec,
        .n_samples = n,
        .first_ts_ms = u2i(get_le(buf + 5, 8)),
    };
    return 0;
}

/* The next 64 bits at the read position (at least 57 of them real), zeros past the end. The
 * only function that touches it->buf after the header, and it stays inside it. */
static uint64_t br_peek(const struct fp_chunk_iter *it)
{
    size_t byte = it->pos_bits >> 3;
    const uint8_t *p = it->buf + byte;
    uint64_t w = 0;

    if (byte + 8 <= it->len) {
        memcpy(&w, p, sizeof(w)); /* one load; the stream is big-endian */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        w = __builtin_bswap64(w);
#endif
    } else {
        for (size_t j = 0; byte + j < it->len; j++)
            w |= (uint64_t)p[j] << (56 - 8 * j);
    }
    return w << (it->pos_bits & 7);
}

/* Marks the chunk corrupt; the reader then sits at the end and reads zeros. */
static uint64_t br_fail(struct fp_chunk_iter *it)
{
    it->status = FP_CHUNK_E_CORRUPT;
    it->pos_bits = it->len * 8;
    return 0;
}

static uint64_t br_read(struct fp_chunk_iter *it, unsigned n)
{
    uint64_t v;
    if (n == 0)
        return 0;
    if (n > it->len * 8 - it->pos_bits)
        return br_fail(it);
    if (n > 57) {
        v = br_read(it, n - 32) << 32;
        return v | br_read(it, 32);
    }
    v = br_peek(it) >> (64 - n);
    it->pos_bits += n;
    return v;
}

static uint64_t br_vbits(struct fp_chunk_iter *it)
{
    unsigned b = (unsigned)br_read(it, 7);
    if (b > 64)
        return br_fail(it);
    return br_read(it, b);
}

static void read_iparams(struct fp_chunk_iter *it, struct fp_chunk_istream *s)
{
    s->order = (uint8_t)br_read(it, 2);
    s->k = (uint8_t)br_read(it, 6);
    s->lexp = (uint8_t)br_read(it, 3);
    s->bias = unzz(br_vbits(it));
    if (s->order == 2)
        s->seed = unzz(br_vbits(it));
    if (s->order > 2 || s->lexp > LEXP_MAX || (s->k == K_ZERO && s->lexp != 0))
        (void)br_fail(it);
}

/* Inlined into the decode loops: as a call, rice_get and istream_next cost a quarter of a
 * decode (bench/chunk). */
#define HOT static inline __attribute__((always_inline))

HOT uint64_t rice_get(struct fp_chunk_iter *it, unsigned k, unsigned lexp)
{
    uint64_t w, q, z;
    unsigned l = 1u << lexp, ones;

    if (k == K_ZERO)
        return 0;
    w = br_peek(it);
    ones = ~w ? (unsigned)__builtin_clzll(~w) : 64;
    /* The common code, unary part and low bits inside the one word peeked (57 real bits), is
     * taken from it: one peek a residual instead of three. q << k stays below 2^62 here. */
    if (ones < l && ones + 1 + k <= 57) {
        unsigned used = ones + 1 + k;
        if (used > it->len * 8 - it->pos_bits)
            return br_fail(it);
        it->pos_bits += used;
        return ((uint64_t)ones << k) | (k > 0 ? (w << (ones + 1)) >> (64 - k) : 0);
    }
    if (ones < l) {
        (void)br_read(it, ones + 1);
        q = ones;
        if (k > 0 && q > (UINT64_MAX >> k))
            return br_fail(it);
        return (q << k) | br_read(it, k);
    }
    (void)br_read(it, l);
    unsigned b = (unsigned)br_read(it, 6);
    z = (UINT64_C(1) << b) | br_read(it, b);
    if ((z >> k) < l) /* the encoder escapes only long unary codes */
        return br_fail(it);
    return z;
}

/* Element i >= 1 of an integer stream. */
HOT uint64_t istream_next(struct fp_chunk_iter *it, struct fp_chunk_istream *s, size_t i)
{
    uint64_t d, x;

    if (s->order == 2 && i == 1) {
        d = s->seed;
        x = s->prev + d;
    } else {
        uint64_t raw = unzz(rice_get(it, s->k, s->lexp)) + s->bias;
        if (s->order == 0) {
            x = s->x0 + raw;
            d = x - s->prev;
        } else {
            d = s->order == 1 ? raw : s->prev_d + raw;
            x = s->prev + d;
        }
    }
    s->prev = x;
    s->prev_d = d;
    return x;
}

static void xor_get(struct fp_chunk_iter *it)
{
    unsigned lead, sig, trail;

    if (br_read(it, 1) == 0)
        return;
    if (br_read(it, 1) == 0) {
        if (it->xor_lead == 0xff) {
            (void)br_fail(it);
            return;
        }
        lead = it->xor_lead;
        trail = it->xor_trail;
        sig = 64 - lead - trail;
    } else {
        lead = (unsigned)br_read(it, 5);
        sig = (unsigned)br_read(it, 6);
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64) {
            (void)br_fail(it);
            return;
        }
        trail = 64 - lead - sig;
        it->xor_lead = (uint8_t)lead;
        it->xor_trail = (uint8_t)trail;
    }
    it->value_bits ^= br_read(it, sig) << trail;
}

/* (double)(m0 + g * y) / 10^d, or a corrupt chunk when m leaves +-2^53. */
static void int_value(struct fp_chunk_iter *it, uint64_t y)
{
    int64_t prod, m;
    if (__builtin_mul_overflow((int64_t)it->g, u2i(y), &prod) ||
        __builtin_add_overflow(it->m0, prod, &m) || m > INT_LIMIT || m < -INT_LIMIT) {
        (void)br_fail(it);
        return;
    }
    it->value_bits = dbits(dec_value(m, it->decimals));
}

int fp_chunk_iter_init(struct fp_chunk_iter *it, const uint8_t *buf, size_t len)
{
    struct fp_chunk_info info;
    int r;

    if (it == NULL)
        return -EINVAL;
    memset(it, 0, sizeof(*it));
    it->status = FP_CHUNK_E_CORRUPT;
    if (buf == NULL)
        return -EINVAL;
    if (len > SIZE_MAX / 8)
        return FP_CHUNK_E_CORRUPT;
    r = fp_chunk_info(buf, len, &info);
    if (r != 0)
        return r;
    it->buf = buf;
    it->len = len;
    it->pos_bits = FP_CHUNK_HEADER_BYTES * 8;
    it->n = info.n_samples;
    it->kind = (uint8_t)info.kind;
    it->decimals = (uint8_t)info.decimals;
    it->xor_lead = 0xff;
    it->ts_ms = info.first_ts_ms;
    it->ts.x0 = it->ts.prev = (uint64_t)info.first_ts_ms;
    it->status = 0;

    if (it->n >= 2)
        read_iparams(it, &it->ts);
    if (it->kind == FP_CHUNK_KIND_XOR) {
        it->value_bits = br_read(it, 64);
    } else {
        uint64_t m0 = unzz(br_vbits(it));
        it->m0 = u2i(m0);
        it->g = 1;
        if (it->n >= 2) {
            it->g = br_vbits(it);
            read_iparams(it, &it->val);
        }
        if (it->m0 > INT_LIMIT || it->m0 < -INT_LIMIT || it->g == 0 || it->g > (UINT64_C(1) << 54))
            (void)br_fail(it);
        int_value(it, 0);
    }
    return it->status;
}

int fp_chunk_iter_next(struct fp_chunk_iter *it, int64_t *ret_ts_ms, double *ret_value)
{
    if (it->status != 0)
        return it->status;
    if (it->i >= it->n) {
        it->status = FP_CHUNK_E_END;
        return it->status;
    }
    if (it->i > 0) {
        int64_t ts = u2i(istream_next(it, &it->ts, it->i));
        if (ts <= it->ts_ms)
            (void)br_fail(it);
        it->ts_ms = ts;
        if (it->kind == FP_CHUNK_KIND_XOR)
            xor_get(it);
        else
            int_value(it, istream_next(it, &it->val, it->i));
        if (it->status != 0)
            return it->status;
    }
    it->i++;
    if (it->i == it->n) {
        /* The end must be where the last code ended: padding below a byte, all zero. */
        size_t left = it->len * 8 - it->pos_bits;
        if (left >= 8 || br_read(it, (unsigned)left) != 0)
            (void)br_fail(it);
        if (it->status != 0)
            return it->status;
    }
    if (ret_ts_ms != NULL)
        *ret_ts_ms = it->ts_ms;
    if (ret_value != NULL)
        *ret_value = bitsd(it->value_bits);
    return 0;
}

int fp_chunk_decode(const uint8_t *buf, size_t len, int64_t *ret_ts_ms, double *ret_values)
{
    struct fp_chunk_iter it;
    int64_t prev_ts;
    int r;

    if (ret_ts_ms == NULL || ret_values == NULL)
        return -EINVAL;
    r = fp_chunk_iter_init(&it, buf, len);
    if (r != 0)
        return r;
    if (it.kind == FP_CHUNK_KIND_XOR) {
        for (size_t i = 0; i < it.n; i++) {
            r = fp_chunk_iter_next(&it, &ret_ts_ms[i], &ret_values[i]);
            if (r != 0)
                return r == FP_CHUNK_E_END ? FP_CHUNK_E_CORRUPT : r;
        }
        return (int)it.n;
    }
    /* Scaled values in two passes: the bit streams into integers (what the iterator's step does,
     * the same checks), then every integer to its double. Apart, the divisions pipeline; one
     * per sample inside the bit reader's loop stalled it (a third of the decode time). The
     * integers wait in ret_values, which has their size. */
    int64_t *m = (int64_t *)(void *)ret_values;
    _Static_assert(sizeof(int64_t) == sizeof(double), "m shares ret_values");
    ret_ts_ms[0] = prev_ts = it.ts_ms;
    m[0] = it.m0;
    for (size_t i = 1; i < it.n; i++) {
        int64_t ts = u2i(istream_next(&it, &it.ts, i));
        uint64_t y = istream_next(&it, &it.val, i);
        int64_t prod, v;
        if (ts <= prev_ts || __builtin_mul_overflow((int64_t)it.g, u2i(y), &prod) ||
            __builtin_add_overflow(it.m0, prod, &v) || v > INT_LIMIT || v < -INT_LIMIT)
            (void)br_fail(&it);
        if (it.status != 0)
            return FP_CHUNK_E_CORRUPT;
        ret_ts_ms[i] = prev_ts = ts;
        m[i] = v;
    }
    size_t left = it.len * 8 - it.pos_bits; /* padding below a byte, all zero */
    if (left >= 8 || br_read(&it, (unsigned)left) != 0 || it.status != 0)
        return FP_CHUNK_E_CORRUPT;
    for (size_t i = 0; i < it.n; i++) {
        int64_t v;
        memcpy(&v, &m[i], sizeof(v));
        ret_values[i] = dec_value(v, it.decimals);
    }
    return (int)it.n;
}

int fp_chunk_iter_seek(struct fp_chunk_iter *it, int64_t ts_ms, int64_t *ret_ts_ms,
                       double *ret_value)
{
    int64_t t;
    double v;
    int r;

    if (it->status == FP_CHUNK_E_CORRUPT || it->buf == NULL)
        return FP_CHUNK_E_CORRUPT;
    if (it->i > 0 && it->ts_ms >= ts_ms) { /* forward only: start over */
        r = fp_chunk_iter_init(it, it->buf, it->len);
        if (r != 0)
            return FP_CHUNK_E_CORRUPT;
    }
    while ((r = fp_chunk_iter_next(it, &t, &v)) == 0) {
        if (t >= ts_ms) {
            if (ret_ts_ms != NULL)
                *ret_ts_ms = t;
            if (ret_value != NULL)
                *ret_value = v;
            return 0;
        }
    }
    return r;
}

const char *fp_chunk_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case FP_CHUNK_E_FULL:
        return "chunk full";
    case FP_CHUNK_E_END:
        return "end of chunk";
    case FP_CHUNK_E_CORRUPT:
        return "corrupt chunk";
    case FP_CHUNK_E_FORMAT:
        return "chunk of an unknown format version";
    default:
        return code < 0 ? strerror(-code) : "unknown chunk error";
    }
}
