/* JSON output with exact numbers.
 *
 * Why not json_dumps: Jansson prints reals with "%.17g" (or one fixed JSON_REAL_PRECISION for the
 * whole document). At 17 digits a sensor's 51.234 comes out as 51.234000000000002; at 15 digits
 * computed values such as 0.1 + 0.2 or 2^53 - 1 lose their last digit and read back as another
 * double. Clients compare values they wrote with values they read, so we print each double in the
 * shortest of 15, 16 or 17 digits that strtod maps back to the same bits. Any decimal of at most
 * 15 significant digits (every sensor reading, every millisecond timestamp before the year 33658)
 * already round-trips at 15, so the short form is also the form the probe sent.
 *
 * The rule is defined by printf and strtod, and they stay the reference (and the slow path), but
 * a series answer prints thousands of values and at three snprintf calls and two strtod calls per
 * value they were most of a 3600-point answer's time. So for the values telemetry is made of,
 * magnitudes in (1e-6, 1e15), format_short computes the same text with exact integer arithmetic:
 * such a double is m * 2^-s with m < 2^53 and s in [3, 72], so m * 10^k for the k that leaves p
 * digits (k <= 22) fits in 128 bits, and the p-digit rounding and the round-trip test (is the
 * decimal within half an ulp of the double) are comparisons of integers. Everything else (and
 * compilers without a 128-bit integer) takes the printf path. tests/unit/query/test-jsonout.c
 * checks the two against each other on millions of values.
 *
 * Timestamps are int64 milliseconds and are printed with integer arithmetic, never via a double.
 * Trees are still built with Jansson (ownership, key order, UTF-8 checks); only the final text is
 * written here. The 100000 points of a large series response bypass trees and are formatted by
 * fp_jsonout_format_point into the caller's buffer.
 *
 * The daemon never calls setlocale, so printf and strtod use '.' as the decimal point. */
#include "jsonout.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* "00" to "99": two digits per division. */
static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

/* Each digit pair is one two-byte store: these run once or twice per number of a response of
 * thousands, where a libc memcpy call per piece was a third of the formatting time. */
static inline void put_pair(char *dst, unsigned x)
{
    memcpy(dst, digit_pairs + 2 * x, 2);
}

/* Writes the 8 digits of x < 10^8 at buf: two independent halves of 4. */
static inline void format_8(char *buf, uint32_t x)
{
    uint32_t hi = x / 10000, lo = x % 10000;

    put_pair(buf, hi / 100);
    put_pair(buf + 2, hi % 100);
    put_pair(buf + 4, lo / 100);
    put_pair(buf + 6, lo % 100);
}

/* Writes exactly width digits of x (x < 10^width, leading zeros kept) at buf: 8 at a time from
 * the right in 32-bit arithmetic, then pairs. */
static inline void format_fixed(char *buf, uint64_t x, int width)
{
    uint32_t y;
    int n = width;

    while (n > 8) {
        n -= 8;
        format_8(buf + n, (uint32_t)(x % 100000000));
        x /= 100000000;
    }
    y = (uint32_t)x;
    while (n >= 2) {
        n -= 2;
        put_pair(buf + n, y % 100);
        y /= 100;
    }
    if (n == 1)
        buf[0] = (char)('0' + y);
}

static const uint64_t pow10_u64[20] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/* Writes the decimal digits of x (at least one) at buf. Returns the count. */
static size_t format_u64(char *buf, uint64_t x)
{
    int width = 1;

    while (width < 20 && x >= pow10_u64[width])
        width++;
    format_fixed(buf, x, width);
    return (size_t)width;
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

/* 10^k for k <= 22 (< 2^74). */
static u128 pow10_u128(int k)
{
    return k < 20 ? (u128)pow10_u64[k] : (u128)pow10_u64[k - 19] * pow10_u64[19];
}

/* Prints digits (exactly p of them, the first non-zero) times 10^(x - p + 1) as printf's "%.*g"
 * with precision p does: trailing zeros dropped, exponent form when x < -4 or x >= p. The
 * digits are written where they end up, not built apart and copied. */
static size_t format_g(char *buf, bool negative, uint64_t digits, int p, int x)
{
    size_t n = 0;
    int nd = p;
    char *d;

    if (negative)
        buf[n++] = '-';
    if (x >= 0 && x < p) {
        /* The digits one place right, then the x + 1 integer digits back left over the '.'. */
        d = buf + n + 1;
        format_fixed(d, digits, p);
        while (nd > x + 1 && d[nd - 1] == '0')
            nd--;
        for (int i = 0; i <= x; i++)
            d[i - 1] = d[i];
        if (nd > x + 1) {
            d[x] = '.';
            n += (size_t)nd + 1;
        } else {
            n += (size_t)x + 1;
        }
    } else if (x < 0 && x >= -4) {
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = -1; i > x; i--)
            buf[n++] = '0';
        d = buf + n;
        format_fixed(d, digits, p);
        while (nd > 1 && d[nd - 1] == '0')
            nd--;
        n += (size_t)nd;
    } else {
        unsigned ax = (unsigned)(x < 0 ? -x : x);

        /* d[0], then '.' and the rest when there is a rest: write the digits one place right
         * and move the first back over the '.'. */
        d = buf + n + 1;
        format_fixed(d, digits, p);
        while (nd > 1 && d[nd - 1] == '0')
            nd--;
        d[-1] = d[0];
        if (nd > 1) {
            d[0] = '.';
            n += (size_t)nd + 1;
        } else {
            n += 1;
        }
        buf[n++] = 'e';
        buf[n++] = x < 0 ? '-' : '+';
        if (ax < 10)
            buf[n++] = '0';
        n += format_u64(buf + n, ax);
    }
    buf[n] = '\0';
    return n;
}

/* The p-digit rounding of the 17 digits q17 (remainder r17 in units of 2^-s), d = 10^(17 - p),
 * and whether it reads back as v: see format_short. Inlined with d a constant, so the division
 * and remainder are multiplications. Returns the rounded digits, 0 when they do not read back. */
static inline __attribute__((always_inline)) uint64_t round_to(uint64_t q17, u128 r17, int s,
                                                               int e, uint64_t m, uint64_t d)
{
    uint64_t q = q17 / d;
    u128 rem = ((u128)(q17 % d) << s) | r17, half = (u128)d << (s - 1), diff, lim;
    bool up = rem > half || (rem == half && (q & 1) != 0); /* printf: ties to even */

    /* The decimal reads back as v when it lies within half an ulp of it: the ulp is 2^-s,
     * 10^(16 - e) in units of n, so the test is 2 * diff against 10^(16 - e). At a power of
     * two the gap below is half as wide. A tie goes to the even mantissa. */
    lim = pow10_u128(16 - e);
    diff = up ? ((u128)d << s) - rem : rem;
    diff *= !up && rem != 0 && m == UINT64_C(1) << 52 ? 4 : 2;
    if (diff > lim || (diff == lim && (m & 1) != 0))
        return 0;
    return q + up;
}

/* The text fp_jsonout_format_double's printf loop would give v, computed exactly without printf;
 * 0 when v is outside the magnitudes handled here (then the caller prints as before). buf holds
 * at least FP_JSONOUT_DOUBLE_MAX bytes. */
static size_t format_short(char *buf, double v)
{
    double a = fabs(v);
    uint64_t bits, m, q17;
    u128 n, r17;
    int s, e;

    if (!(a > 1e-6 && a < 1e15))
        return 0;
    memcpy(&bits, &v, sizeof(bits));
    /* Normal numbers only here: v = m * 2^-s exactly. a < 2^50 puts s >= 3; a > 2^-20 puts
     * s <= 72. The double 1e-6 lies just below 10^-6, so a > 1e-6 means a > 10^-6 and the
     * decimal exponent e below is >= -6. */
    m = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
    s = 1075 - (int)((bits >> 52) & 0x7ff);

    /* e = floor(log10(a)): 78913 / 2^18 is log10(2) from below, so the estimate from the binary
     * exponent is e or e - 1 (so >= -7). n = a * 10^(16 - e) * 2^s, whose integer part
     * q17 is a's 17 leading digits: with the estimate's 10^(15 - e), n has 17 digits before the
     * binary point exactly when the estimate was low. n < 2^53 * 10^22 < 2^127. */
    e = ((52 - s) * 78913) >> 18;
    n = (u128)m * pow10_u128(15 - e);
    if ((n >> s) >= pow10_u64[16])
        e++;
    else
        n *= 10;
    q17 = (uint64_t)(n >> s);
    r17 = n & (((u128)1 << s) - 1);

    /* p digits: the 17 digits divided by d = 10^(17 - p), with the remainder in units of n. At
     * 17 digits the rounding alone decides (printf's last resort). */
    for (int p = 15; p <= 17; p++) {
        uint64_t digits;
        int x = e;

        if (p == 15)
            digits = round_to(q17, r17, s, e, m, 100);
        else if (p == 16)
            digits = round_to(q17, r17, s, e, m, 10);
        else
            digits = q17 + (r17 > ((u128)1 << (s - 1)) ||
                            (r17 == ((u128)1 << (s - 1)) && (q17 & 1) != 0));
        if (digits == 0)
            continue;
        if (digits == pow10_u64[p]) { /* 9.99...95 rounded up to 10.0...0 */
            digits = pow10_u64[p - 1];
            x++;
        }
        return format_g(buf, v < 0, digits, p, x);
    }
    return 0; /* can't happen: p = 17 always returns */
}
#else
static size_t format_short(char *buf, double v)
{
    (void)buf;
    (void)v;
    return 0;
}
#endif

size_t fp_jsonout_format_double(char *buf, size_t size, double v)
{
    int n = 0;

    if (size >= FP_JSONOUT_DOUBLE_MAX) {
        size_t len = 0;

        if (v == 0) { /* "0", or "-0" for -0.0 as printf writes it; both read back */
            if (signbit(v))
                buf[len++] = '-';
            buf[len++] = '0';
            buf[len] = '\0';
            return len;
        }
        len = format_short(buf, v);
        if (len > 0)
            return len;
    }
    if (!isfinite(v))
        return (size_t)snprintf(buf, size, "null");
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

int fp_jsonout_double(struct evbuffer *out, double v)
{
    char buf[FP_JSONOUT_DOUBLE_MAX];
    size_t n = fp_jsonout_format_double(buf, sizeof(buf), v);

    return evbuffer_add(out, buf, n) == 0 ? 0 : -ENOMEM;
}

size_t fp_jsonout_format_ts_ms(char *buf, int64_t ts_ms)
{
    /* The magnitude in uint64 so that INT64_MIN does not overflow on negation. */
    uint64_t mag = ts_ms < 0 ? (uint64_t)0 - (uint64_t)ts_ms : (uint64_t)ts_ms;
    unsigned frac = (unsigned)(mag % 1000);
    size_t n = 0;

    if (ts_ms < 0)
        buf[n++] = '-';
    n += format_u64(buf + n, mag / 1000);
    if (frac != 0) {
        /* Three digits, then the trailing zeros dropped: .1, .12, .123. */
        buf[n++] = '.';
        buf[n++] = (char)('0' + frac / 100);
        if (frac % 100 != 0) {
            buf[n++] = (char)('0' + frac / 10 % 10);
            if (frac % 10 != 0)
                buf[n++] = (char)('0' + frac % 10);
        }
    }
    buf[n] = '\0';
    return n;
}

int fp_jsonout_ts_ms(struct evbuffer *out, int64_t ts_ms)
{
    char buf[FP_JSONOUT_TS_MAX];
    size_t n = fp_jsonout_format_ts_ms(buf, ts_ms);

    return evbuffer_add(out, buf, n) == 0 ? 0 : -ENOMEM;
}

size_t fp_jsonout_format_point(char *buf, int64_t ts_ms, double v)
{
    size_t n = 0;

    buf[n++] = '[';
    n += fp_jsonout_format_ts_ms(buf + n, ts_ms);
    buf[n++] = ',';
    n += fp_jsonout_format_double(buf + n, FP_JSONOUT_DOUBLE_MAX, v);
    buf[n++] = ']';
    buf[n] = '\0';
    return n;
}

int fp_jsonout_string(struct evbuffer *out, const char *s)
{
    const char *run = s;
    int r = 0;

    r |= evbuffer_add(out, "\"", 1);
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        const char *esc;
        char ubuf[8];

        if (c != '\0' && c >= 0x20 && c != '"' && c != '\\')
            continue;
        /* Copy the run of plain bytes in one go, then the escape for *p. */
        r |= evbuffer_add(out, run, (size_t)(p - run));
        if (c == '\0')
            break;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            (void)snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
            esc = ubuf;
            break;
        }
        r |= evbuffer_add(out, esc, strlen(esc));
        run = p + 1;
    }
    r |= evbuffer_add(out, "\"", 1);
    return r == 0 ? 0 : -ENOMEM;
}

int fp_jsonout_value(struct evbuffer *out, const json_t *v)
{
    char buf[32];
    int r = 0;

    if (v == NULL)
        return -EINVAL;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        r |= evbuffer_add(out, "{", 1);
        /* The iterator wants a non-const object; iterating does not modify it. Jansson keeps
         * insertion order. */
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (it != json_object_iter((json_t *)v))
                r |= evbuffer_add(out, ",", 1);
            r |= fp_jsonout_string(out, json_object_iter_key(it));
            r |= evbuffer_add(out, ":", 1);
            r |= fp_jsonout_value(out, json_object_iter_value(it));
        }
        r |= evbuffer_add(out, "}", 1);
        break;
    case JSON_ARRAY:
        r |= evbuffer_add(out, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                r |= evbuffer_add(out, ",", 1);
            r |= fp_jsonout_value(out, json_array_get(v, i));
        }
        r |= evbuffer_add(out, "]", 1);
        break;
    case JSON_STRING:
        r |= fp_jsonout_string(out, json_string_value(v));
        break;
    case JSON_INTEGER: {
        int n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        r |= evbuffer_add(out, buf, (size_t)n);
        break;
    }
    case JSON_REAL:
        r |= fp_jsonout_double(out, json_real_value(v));
        break;
    case JSON_TRUE:
        r |= evbuffer_add(out, "true", 4);
        break;
    case JSON_FALSE:
        r |= evbuffer_add(out, "false", 5);
        break;
    case JSON_NULL:
        r |= evbuffer_add(out, "null", 4);
        break;
    }
    return r == 0 ? 0 : -ENOMEM;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, nothing
 * past U+10FFFF), or 0 when the bytes at p are not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

json_t *fp_jsonout_string_new(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    json_t *v;
    char *fixed, *o;

    v = json_string(s);
    if (v != NULL)
        return v;

    /* Invalid UTF-8 (or out of memory, in which case the next allocation fails too). Each bad
     * byte becomes the 3-byte U+FFFD, so 3 bytes per input byte bound the copy. */
    fixed = malloc(3 * strlen(s) + 1);
    if (fixed == NULL)
        return NULL;
    o = fixed;
    while (*p != '\0') {
        size_t n = utf8_len(p);
        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    *o = '\0';
    v = json_string(fixed);
    free(fixed);
    return v;
}

json_t *fp_jsonout_real_new(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}
