/* DDSketch with a logarithmic mapping, three stores and a collapsing-lowest bin limit.
 *
 * Mapping. gamma = (1 + a) / (1 - a) with a = FP_SKETCH_ALPHA. A magnitude x > 0 goes to bin
 * i = ceil(log(x) / log(gamma)), which holds (gamma^(i-1), gamma^i]; the bin answers with
 * gamma^i * (1 - a) = 2 gamma^i / (1 + gamma), which is within a of both edges, hence of every
 * value in the bin. Exact log() rather than DDSketch's interpolated fast mappings: those need
 * more bins for the same a (a bigger encoding on disk, where rollups are paid for), and log()
 * costs a few ns, far below what a sample costs on its way in. Encodings carry bin indexes, not
 * values, so they read the same everywhere; another libm may only place a value that lies on a
 * bin edge (to the last ulp) in the neighbouring bin, which is still within a.
 *
 * Stores. Positive values use the positive store, negative ones the negative store under the
 * bin of -x (a mirror), and |x| < DBL_MIN (zeros, subnormals) a plain zero count: the mapping
 * needs a normal positive number, and DBL_MIN keeps every bin index in [IDX_MIN, IDX_MAX]
 * (about +-35k, an int32 and a 3-byte varint). Each store is a dense array of uint64 counts over
 * a window of bin indexes that grows in powers of two up to FP_SKETCH_MAX_BINS slots. Dense
 * beats a sorted sparse list here: adds are O(1), and rollup data is clustered (a lognormal
 * latency spans ~100 bins), so the array stays small.
 *
 * Bin limit. A store's non-empty bins always lie in [hi - FP_SKETCH_MAX_BINS + 1, hi], where hi
 * is the highest bin ever added to it: a lower bin is counted in that lowest retained bin
 * instead ("collapsing lowest"). The state is then a function of the multiset of values alone
 * (hi only grows, and folding is the same whether it happens early or late), which is what makes
 * merge exact, bin for bin. Collapsing the highest bins instead would lose p99, the reason the
 * sketch exists.
 *
 * Invariants (checked by the tests through encode/decode):
 *   - store.n == sum of its counts; sketch.count == zero + pos.n + neg.n.
 *   - when n > 0, counts at lo and hi are non-zero, hi - lo < FP_SKETCH_MAX_BINS, and every slot
 *     outside [lo, hi] is 0 (reset and reshape rely on it).
 *   - IDX_MIN <= lo <= hi <= IDX_MAX.
 *
 * Rejected: t-digest (no merge guarantee), Prometheus native histograms (schema 3 gives ~4%),
 * storing min/max/sum in the sketch (the rollup keeps them; see sketch.h). */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"

/* log(gamma) and its inverse for a = 0.01, to 17 digits. If you change FP_SKETCH_ALPHA,
 * recompute them and IDX_MIN/IDX_MAX (the tests check the bounds through DBL_MIN/DBL_MAX). */
#define LN_GAMMA 0.020000666706669435
#define INV_LN_GAMMA 49.99833328888678
/* 2 / (1 + gamma) == 1 - a: the factor that centres a bin's answer between its edges. */
#define BIN_MID_FACTOR (1.0 - FP_SKETCH_ALPHA)

/* Bin indexes of DBL_MIN and DBL_MAX: no finite value maps outside, so decode refuses them. */
#define IDX_MIN (-35418)
#define IDX_MAX 35488

/* Smallest window allocated, in slots: one-minute sketches fit without regrowing. */
#define MIN_SLOTS 16

/* Header byte of the encoding: format in the top 3 bits, then which parts follow. Bits 3-4 are
 * reserved and must be 0. */
#define HDR_ZERO 0x01u
#define HDR_POS 0x02u
#define HDR_NEG 0x04u
#define HDR_RESERVED 0x18u
#define HDR_FORMAT_SHIFT 5

struct store {
    uint64_t *counts; /**< counts[i] is bin offset + i; NULL until the first add */
    int32_t offset;   /**< bin index of counts[0] */
    uint32_t slots;   /**< length of counts, <= FP_SKETCH_MAX_BINS */
    int32_t lo;       /**< lowest non-empty bin index (valid when n > 0) */
    int32_t hi;       /**< highest non-empty bin index (valid when n > 0) */
    uint64_t n;       /**< values in this store */
};

struct fp_sketch {
    struct store pos; /**< values >= DBL_MIN, by bin of x */
    struct store neg; /**< values <= -DBL_MIN, by bin of -x */
    uint64_t zero;    /**< values with |x| < DBL_MIN */
    uint64_t count;   /**< all values: zero + pos.n + neg.n */
};

/* A window prepared for a store: allocated before anything changes, so that an operation
 * touching two stores (merge) can fail without having changed either. */
struct window {
    int32_t lo, hi;   /**< non-empty range after the operation */
    uint64_t *counts; /**< new array, or NULL to keep the current one */
    int32_t offset;   /**< offset of the new array */
    uint32_t slots;   /**< length of the new array */
};

static int32_t bin_of(double magnitude)
{
    /* magnitude is finite and >= DBL_MIN, so the result lies in [IDX_MIN, IDX_MAX]. */
    return (int32_t)ceil(log(magnitude) * INV_LN_GAMMA);
}

static double value_of(int32_t bin)
{
    double v = exp((double)bin * LN_GAMMA) * BIN_MID_FACTOR;

    /* The top bin's upper edge lies past DBL_MAX and the bottom bin's middle below DBL_MIN;
     * clamping keeps the answer finite and inside the range the bin's values came from. */
    if (v > DBL_MAX)
        return DBL_MAX;
    if (v < DBL_MIN)
        return DBL_MIN;
    return v;
}

static uint32_t round_up_pow2(uint32_t x)
{
    uint32_t p = MIN_SLOTS;

    while (p < x)
        p <<= 1;
    return p;
}

/* Plans st's non-empty range to become [lo, hi] (hi - lo < FP_SKETCH_MAX_BINS), allocating a
 * new array when the current one does not cover it. Changes nothing in st. Returns 0 or
 * -ENOMEM. */
static int window_prepare(const struct store *st, int32_t lo, int32_t hi, struct window *w)
{
    uint32_t need = (uint32_t)(hi - lo) + 1, slots;

    *w = (struct window){.lo = lo, .hi = hi};
    if (st->counts && lo >= st->offset && (int64_t)hi < (int64_t)st->offset + st->slots)
        return 0;

    /* Half again as much as needed, so a drifting series does not reshape on every new bin;
     * never more than the limit, which always suffices since need <= FP_SKETCH_MAX_BINS. */
    slots = need + need / 2;
    if (slots > FP_SKETCH_MAX_BINS)
        slots = FP_SKETCH_MAX_BINS;
    slots = round_up_pow2(slots);
    if (slots < st->slots)
        slots = st->slots;
    w->counts = calloc(slots, sizeof(*w->counts));
    if (!w->counts)
        return -ENOMEM;
    w->slots = slots;
    w->offset = lo - (int32_t)((slots - need) / 2);
    return 0;
}

static void window_discard(struct window *w)
{
    free(w->counts);
    w->counts = NULL;
}

/* Makes the prepared window current: moves the counts over (if a new array was prepared) and
 * folds bins below w->lo into bin w->lo. Cannot fail. */
static void window_commit(struct store *st, struct window *w)
{
    uint64_t folded = 0;

    if (st->n > 0) {
        int32_t b = st->lo;

        for (; b < w->lo && b <= st->hi; b++) {
            folded += st->counts[b - st->offset];
            st->counts[b - st->offset] = 0;
        }
        if (w->counts) {
            for (; b <= st->hi; b++)
                w->counts[b - w->offset] = st->counts[b - st->offset];
        }
    }
    if (w->counts) {
        free(st->counts);
        st->counts = w->counts;
        st->offset = w->offset;
        st->slots = w->slots;
        w->counts = NULL;
    }
    st->counts[w->lo - st->offset] += folded;
    st->lo = w->lo;
    st->hi = w->hi;
}

/* The range a store takes after bins [lo, hi] join it: the union, then the limit applied from
 * the top. */
static void union_range(const struct store *st, int32_t lo, int32_t hi, int32_t *ret_lo,
                        int32_t *ret_hi)
{
    if (st->n > 0) {
        if (st->lo < lo)
            lo = st->lo;
        if (st->hi > hi)
            hi = st->hi;
    }
    if (hi - lo >= FP_SKETCH_MAX_BINS)
        lo = hi - FP_SKETCH_MAX_BINS + 1;
    *ret_lo = lo;
    *ret_hi = hi;
}

static int store_add(struct store *st, int32_t bin, uint64_t n)
{
    struct window w;
    int32_t lo, hi;
    int r;

    /* The common case, a bin inside the current range: nothing to grow or fold. */
    if (st->n > 0 && bin >= st->lo && bin <= st->hi) {
        st->counts[bin - st->offset] += n;
        st->n += n;
        return 0;
    }
    union_range(st, bin, bin, &lo, &hi);
    r = window_prepare(st, lo, hi, &w);
    if (r < 0)
        return r;
    window_commit(st, &w);
    if (bin < lo)
        bin = lo; /* collapsed */
    st->counts[bin - st->offset] += n;
    st->n += n;
    return 0;
}

/* Adds src's bins to dst after window_commit made room: each one lands in its own bin, or in the
 * lowest retained bin when below it. */
static void store_merge_counts(struct store *dst, const struct store *src)
{
    if (src->n == 0)
        return;
    for (int32_t b = src->lo; b <= src->hi; b++) {
        uint64_t c = src->counts[b - src->offset];

        if (c == 0)
            continue;
        dst->counts[(b < dst->lo ? dst->lo : b) - dst->offset] += c;
    }
    dst->n += src->n;
}

static void store_reset(struct store *st)
{
    if (st->n > 0)
        memset(st->counts + (st->lo - st->offset), 0,
               (size_t)(st->hi - st->lo + 1) * sizeof(*st->counts));
    st->n = 0;
}

static size_t store_bins(const struct store *st)
{
    size_t bins = 0;

    if (st->n == 0)
        return 0;
    for (int32_t b = st->lo; b <= st->hi; b++)
        bins += st->counts[b - st->offset] != 0;
    return bins;
}

int fp_sketch_new(fp_sketch **ret)
{
    fp_sketch *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

void fp_sketch_destroy(fp_sketch **s)
{
    if (!s || !*s)
        return;
    free((*s)->pos.counts);
    free((*s)->neg.counts);
    free(*s);
    *s = NULL;
}

void fp_sketch_reset(fp_sketch *s)
{
    store_reset(&s->pos);
    store_reset(&s->neg);
    s->zero = 0;
    s->count = 0;
}

int fp_sketch_add_n(fp_sketch *s, double value, uint64_t n)
{
    int r;

    if (!isfinite(value))
        return FP_SKETCH_E_NONFINITE;
    if (n == 0)
        return 0;
    if (n > UINT64_MAX - s->count)
        return -EOVERFLOW;

    if (value >= DBL_MIN)
        r = store_add(&s->pos, bin_of(value), n);
    else if (value <= -DBL_MIN)
        r = store_add(&s->neg, bin_of(-value), n);
    else {
        s->zero += n;
        r = 0;
    }
    if (r == 0)
        s->count += n;
    return r;
}

int fp_sketch_add(fp_sketch *s, double value)
{
    return fp_sketch_add_n(s, value, 1);
}

int fp_sketch_merge(fp_sketch *dst, const fp_sketch *src)
{
    struct window wp = {0}, wn = {0};
    int32_t lo, hi;
    int r;

    if (dst == src)
        return -EINVAL;
    if (src->count > UINT64_MAX - dst->count)
        return -EOVERFLOW;

    /* Both windows are allocated before either store changes: dst stays as it was on -ENOMEM. */
    if (src->pos.n > 0) {
        union_range(&dst->pos, src->pos.lo, src->pos.hi, &lo, &hi);
        r = window_prepare(&dst->pos, lo, hi, &wp);
        if (r < 0)
            goto fail;
    }
    if (src->neg.n > 0) {
        union_range(&dst->neg, src->neg.lo, src->neg.hi, &lo, &hi);
        r = window_prepare(&dst->neg, lo, hi, &wn);
        if (r < 0)
            goto fail;
    }

    if (src->pos.n > 0) {
        window_commit(&dst->pos, &wp);
        store_merge_counts(&dst->pos, &src->pos);
    }
    if (src->neg.n > 0) {
        window_commit(&dst->neg, &wn);
        store_merge_counts(&dst->neg, &src->neg);
    }
    dst->zero += src->zero;
    dst->count += src->count;
    return 0;

fail:
    window_discard(&wn);
    window_discard(&wp);
    return r;
}

uint64_t fp_sketch_count(const fp_sketch *s)
{
    return s->count;
}

size_t fp_sketch_bins(const fp_sketch *s)
{
    return store_bins(&s->pos) + store_bins(&s->neg) + (s->zero > 0);
}

int fp_sketch_quantile(const fp_sketch *s, double q, double *ret_value)
{
    uint64_t rank, seen = 0;

    if (!(q >= 0.0 && q <= 1.0))
        return -EINVAL;
    if (s->count == 0)
        return FP_SKETCH_E_EMPTY;

    /* The "lower" rank (no interpolation): interpolating between two bins' answers could land
     * in neither bin and lose the guarantee. Above 2^53 values the double product rounds, hence
     * the clamp to the last rank. */
    {
        double last = (double)(s->count - 1), r = floor(q * last);

        /* Compared as doubles first: converting a double past UINT64_MAX is undefined. */
        rank = r >= last ? s->count - 1 : (uint64_t)r;
    }

    /* Ascending value order: most negative (highest negative bin) first. */
    if (s->neg.n > 0) {
        if (rank < s->neg.n) {
            for (int32_t b = s->neg.hi; b >= s->neg.lo; b--) {
                seen += s->neg.counts[b - s->neg.offset];
                if (seen > rank) {
                    *ret_value = -value_of(b);
                    return 0;
                }
            }
        }
        seen = s->neg.n;
    }
    if (rank < seen + s->zero) {
        *ret_value = 0.0;
        return 0;
    }
    seen += s->zero;
    for (int32_t b = s->pos.lo; b <= s->pos.hi; b++) {
        seen += s->pos.counts[b - s->pos.offset];
        if (seen > rank) {
            *ret_value = value_of(b);
            return 0;
        }
    }
    /* count == zero + pos.n + neg.n, so the loop above always answers. */
    return -EINVAL;
}

/* --- encoding ---------------------------------------------------------------------------------
 * Writers count past the end of the buffer so that one pass both sizes and writes. */

struct writer {
    uint8_t *buf;
    size_t size; /**< bytes available in buf */
    size_t len;  /**< bytes written, or that would have been */
};

static void put_byte(struct writer *w, uint8_t b)
{
    if (w->len < w->size)
        w->buf[w->len] = b;
    w->len++;
}

static void put_varint(struct writer *w, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(w, (uint8_t)v);
}

static uint64_t zigzag(int32_t v)
{
    return (uint64_t)(((uint32_t)v << 1) ^ (v < 0 ? UINT32_MAX : 0u));
}

/* Per store: zigzag start index, bins - 1, the first bin's count, then per further bin a token
 * (gap - 1) << 1 | (count > 1), followed by count - 2 when that bit is set. Most bins of a small
 * sketch hold one value a few bins from the last, so they take one byte, not two. */
static void put_store(struct writer *w, const struct store *st)
{
    int32_t prev = st->lo;

    put_varint(w, zigzag(st->lo));
    put_varint(w, store_bins(st) - 1);
    put_varint(w, st->counts[st->lo - st->offset]);
    for (int32_t b = st->lo + 1; b <= st->hi; b++) {
        uint64_t c = st->counts[b - st->offset];

        if (c == 0)
            continue;
        put_varint(w, (uint64_t)(b - prev - 1) << 1 | (c > 1));
        if (c > 1)
            put_varint(w, c - 2);
        prev = b;
    }
}

int fp_sketch_encode(const fp_sketch *s, uint8_t *buf, size_t size, size_t *ret_len)
{
    struct writer w = {.buf = buf, .size = buf ? size : 0};
    uint8_t hdr = FP_SKETCH_FORMAT << HDR_FORMAT_SHIFT;

    if (s->zero > 0)
        hdr |= HDR_ZERO;
    if (s->pos.n > 0)
        hdr |= HDR_POS;
    if (s->neg.n > 0)
        hdr |= HDR_NEG;
    put_byte(&w, hdr);
    if (s->zero > 0)
        put_varint(&w, s->zero);
    if (s->pos.n > 0)
        put_store(&w, &s->pos);
    if (s->neg.n > 0)
        put_store(&w, &s->neg);

    *ret_len = w.len;
    return w.len <= w.size ? 0 : -ENOBUFS;
}

/* --- decoding ---------------------------------------------------------------------------------
 * One parser, run twice: first to validate and learn each store's range (fill == NULL), then to
 * add the counts into stores whose windows were made to cover that range (a new sketch for
 * decode, the destination for merge_encoded). Decode refuses whatever encode
 * would not write, so an accepted encoding re-encodes to the same bytes. */

struct reader {
    const uint8_t *p;
    const uint8_t *end;
};

/* Reads a minimal LEB128 varint of at most 64 bits. Returns false on truncation, overlong
 * forms or overflow. */
static bool get_varint(struct reader *r, uint64_t *ret)
{
    uint64_t v = 0;

    /* Most varints here are one byte (gaps and counts of a rollup's bins). */
    if (r->p < r->end && *r->p < 0x80) {
        *ret = *r->p++;
        return true;
    }
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b;

        if (r->p == r->end)
            return false;
        b = *r->p++;
        if (shift == 63 && b > 1)
            return false; /* bits past 64 */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0)
                return false; /* overlong: encode never writes a trailing 0x00 group */
            *ret = v;
            return true;
        }
    }
    return false;
}

/* Adds c to the running total, refusing to pass UINT64_MAX. */
static bool add_total(uint64_t *total, uint64_t c)
{
    if (c > UINT64_MAX - *total)
        return false;
    *total += c;
    return true;
}

/* Reads a plain count: non-zero, since encode writes only non-empty bins. */
static bool get_count(struct reader *r, uint64_t *total, uint64_t *ret)
{
    uint64_t c;

    if (!get_varint(r, &c) || c == 0 || !add_total(total, c))
        return false;
    *ret = c;
    return true;
}

/* Parses one store (layout at put_store). Sets *ret_lo, *ret_hi; with fill, adds the counts to it
 * as store_merge_counts does (its window covers [max(lo, fill->lo), hi] already). */
static bool get_store(struct reader *r, uint64_t *total, struct store *fill, int32_t *ret_lo,
                      int32_t *ret_hi)
{
    uint64_t zz, nbins, c;
    int32_t lo, b;

    if (!get_varint(r, &zz) || zz > UINT32_MAX || !get_varint(r, &nbins) ||
        nbins >= FP_SKETCH_MAX_BINS)
        return false;
    lo = (int32_t)((uint32_t)(zz >> 1) ^ -(uint32_t)(zz & 1));
    if (lo < IDX_MIN || lo > IDX_MAX)
        return false;

    b = lo;
    if (!get_count(r, total, &c))
        return false;
    if (fill)
        fill->counts[(b < fill->lo ? fill->lo : b) - fill->offset] += c;
    for (uint64_t i = 0; i < nbins; i++) {
        uint64_t token, gap;

        if (!get_varint(r, &token))
            return false;
        gap = token >> 1;
        /* Checked before the addition, so b cannot overflow: the window is < 2^11 wide. */
        if (gap >= (uint64_t)(FP_SKETCH_MAX_BINS - 1 - (b - lo)))
            return false;
        b += (int32_t)gap + 1;
        if (b > IDX_MAX)
            return false;
        c = 1;
        if (token & 1) {
            if (!get_varint(r, &c) || c > UINT64_MAX - 2)
                return false;
            c += 2;
        }
        if (!add_total(total, c))
            return false;
        if (fill)
            fill->counts[(b < fill->lo ? fill->lo : b) - fill->offset] += c;
    }
    *ret_lo = lo;
    *ret_hi = b;
    return true;
}

struct layout {
    uint8_t hdr;
    uint64_t zero;
    int32_t pos_lo, pos_hi;
    int32_t neg_lo, neg_hi;
    uint64_t pos_n, neg_n;
};

static bool parse(const uint8_t *buf, size_t len, fp_sketch *fill, struct layout *ret)
{
    struct reader r = {.p = buf, .end = buf + len};
    struct layout l = {0};
    uint64_t total = 0;

    if (len == 0)
        return false;
    l.hdr = *r.p++;
    if (l.hdr >> HDR_FORMAT_SHIFT != FP_SKETCH_FORMAT || (l.hdr & HDR_RESERVED))
        return false;
    if ((l.hdr & HDR_ZERO) && !get_count(&r, &total, &l.zero))
        return false;
    if (l.hdr & HDR_POS) {
        uint64_t before = total;

        if (!get_store(&r, &total, fill ? &fill->pos : NULL, &l.pos_lo, &l.pos_hi))
            return false;
        l.pos_n = total - before;
    }
    if (l.hdr & HDR_NEG) {
        uint64_t before = total;

        if (!get_store(&r, &total, fill ? &fill->neg : NULL, &l.neg_lo, &l.neg_hi))
            return false;
        l.neg_n = total - before;
    }
    if (r.p != r.end)
        return false; /* trailing bytes */
    *ret = l;
    return true;
}

int fp_sketch_decode(const uint8_t *buf, size_t len, fp_sketch **ret)
{
    fp_sketch *s = NULL;
    int r;

    r = fp_sketch_new(&s);
    if (r < 0)
        return r;
    r = fp_sketch_merge_encoded(s, buf, len);
    if (r != 0) {
        fp_sketch_destroy(&s);
        return r;
    }
    *ret = s;
    return 0;
}

int fp_sketch_merge_encoded(fp_sketch *dst, const uint8_t *buf, size_t len)
{
    struct window wp = {0}, wn = {0};
    struct layout l;
    int32_t lo, hi;
    int r;

    if (!buf || !parse(buf, len, NULL, &l))
        return FP_SKETCH_E_CORRUPT;
    if (l.zero + l.pos_n + l.neg_n > UINT64_MAX - dst->count)
        return -EOVERFLOW;

    /* As fp_sketch_merge: room first, so that -ENOMEM leaves dst as it was. */
    if (l.hdr & HDR_POS) {
        union_range(&dst->pos, l.pos_lo, l.pos_hi, &lo, &hi);
        r = window_prepare(&dst->pos, lo, hi, &wp);
        if (r < 0)
            goto fail;
    }
    if (l.hdr & HDR_NEG) {
        union_range(&dst->neg, l.neg_lo, l.neg_hi, &lo, &hi);
        r = window_prepare(&dst->neg, lo, hi, &wn);
        if (r < 0)
            goto fail;
    }
    if (l.hdr & HDR_POS)
        window_commit(&dst->pos, &wp);
    if (l.hdr & HDR_NEG)
        window_commit(&dst->neg, &wn);
    if (!parse(buf, len, dst, &l)) {
        /* Can't happen: the same bytes passed a moment ago. */
        assert(!"second parse failed");
        return -EINVAL;
    }
    dst->pos.n += l.pos_n;
    dst->neg.n += l.neg_n;
    dst->zero += l.zero;
    dst->count += l.zero + l.pos_n + l.neg_n;
    return 0;

fail:
    window_discard(&wn);
    window_discard(&wp);
    return r;
}
