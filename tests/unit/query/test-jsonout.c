/* Unit test for query/jsonout.c: numbers print in the shortest text that reads back to the same
 * double (51.234 stays "51.234"), timestamps print exactly, strings escape correctly. */
#include "test.h"

#include <float.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "jsonout.h"

/* The buffer's contents as a NUL-terminated string in buf (drains it). */
static const char *take(struct evbuffer *b, char *buf, size_t size)
{
    size_t n = evbuffer_get_length(b);

    fp_assert(n < size);
    evbuffer_remove(b, buf, n);
    buf[n] = '\0';
    return buf;
}

static const char *fmt(double v)
{
    static char buf[FP_JSONOUT_DOUBLE_MAX];

    fp_jsonout_format_double(buf, sizeof(buf), v);
    return buf;
}

static const char *ts(int64_t ms)
{
    static char buf[64];
    struct evbuffer *b = evbuffer_new();

    fp_assert(b != NULL);
    check_int(fp_jsonout_ts_ms(b, ms), 0);
    take(b, buf, sizeof(buf));
    evbuffer_free(b);
    return buf;
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rnd(void)
{
    static uint64_t x = 0x9e3779b97f4a7c15u;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545f4914f6cdd1du;
}

static void test_doubles(void)
{
    volatile double a = 0.1, b = 0.2;

    check_str(fmt(51.234), "51.234");
    check_str(fmt(1732412345.123), "1732412345.123");
    check_str(fmt(123456789), "123456789");
    check_str(fmt(0), "0");
    check_str(fmt(-0.0), "-0");
    check_str(fmt(0.5), "0.5");
    check_str(fmt(-40.25), "-40.25");
    check_str(fmt(1e300), "1e+300");
    check_str(fmt(1e-7), "1e-07");
    /* Values that need 16 or 17 digits keep them, or they would read back as another double. */
    check_str(fmt(a + b), "0.30000000000000004");
    check_str(fmt(9007199254740991.0), "9007199254740991");
    check_str(fmt(DBL_MAX), "1.7976931348623157e+308");
    check_str(fmt(1.0 / 3.0), "0.3333333333333333");
    /* JSON has no NaN or infinity. */
    check_str(fmt(NAN), "null");
    check_str(fmt(INFINITY), "null");
    check_str(fmt(-INFINITY), "null");

    /* Any finite double round-trips. */
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = rnd();
        double v, back;

        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        back = strtod(fmt(v), NULL);
        if (memcmp(&back, &v, sizeof(v)) != 0 && !(v == 0 && back == 0)) {
            FP_TEST_FAIL("%.17g printed as %s", v, fmt(v));
            break;
        }
    }

    /* A decimal of up to 15 significant digits prints as itself: what a probe sent is what a
     * client reads. Millisecond timestamps divided by 1000 are such decimals. */
    for (int i = 0; i < 200000; i++) {
        int64_t ms = (int64_t)(rnd() % UINT64_C(100000000000000)); /* up to year 5138 */
        char expected[64];

        snprintf(expected, sizeof(expected), "%s", ts(ms));
        if (strcmp(fmt((double)ms / 1000.0), expected) != 0) {
            FP_TEST_FAIL("%" PRId64 " ms / 1000.0 printed as %s, expected %s", ms,
                         fmt((double)ms / 1000.0), expected);
            break;
        }
    }
    for (int i = 0; i < 200000; i++) {
        long long mant = (long long)(rnd() % UINT64_C(1000000000000000)); /* < 10^15 */
        int exp10 = (int)(rnd() % 41) - 20;
        char in[64], norm[64];
        double v;

        snprintf(in, sizeof(in), "%llde%d", mant, exp10);
        v = strtod(in, NULL);
        /* %.15g of the value parsed from a <= 15-digit decimal gives that decimal back
         * (DBL_DIG); fmt must pick exactly that text. */
        snprintf(norm, sizeof(norm), "%.15g", v);
        if (strcmp(fmt(v), norm) != 0) {
            FP_TEST_FAIL("%s printed as %s, expected %s", in, fmt(v), norm);
            break;
        }
    }
}

/* The definition fp_jsonout_format_double implements: the shortest of %.15g, %.16g, %.17g that
 * strtod reads back as v. */
static const char *reference(double v)
{
    static char buf[64];

    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static bool same_as_reference(double v)
{
    char got[FP_JSONOUT_DOUBLE_MAX];

    if (!isfinite(v)) /* null, not printf's inf (test_doubles) */
        return true;
    fp_jsonout_format_double(got, sizeof(got), v);
    if (strcmp(got, reference(v)) != 0) {
        FP_TEST_FAIL("%a printed as %s, expected %s", v, got, reference(v));
        return false;
    }
    return true;
}

/* The printf-free path must print what printf would, byte for byte, wherever it applies:
 * magnitudes in (1e-6, 1e15). Every value is also tried negated. */
static void test_doubles_match_printf(void)
{
    /* Bin-packed by hand: clang-format would put one value per line. */
    /* clang-format off */
    static const double edges[] = {
        1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
        1e11, 1e12, 1e13, 1e14, 1e15, 0x1p-20, 0x1p-19, 0x1p-1, 0x1p0, 0x1p1, 0x1p52, 0x1p49,
        0x1p50, 999999999999999.9, 99999999999999.99, 0.99999999999999999, 9.999999999999999e-7,
        0.5, 0.125, 0.3, 2.5, 1.5e-06, 1.25e-05, 123456789012345.6, 4503599627370495.5,
        9007199254740991.0, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
    };
    /* clang-format on */
    bool ok = true;

    /* Powers of ten and two and their neighbours: the digit count changes there, and below a
     * power of two the gap to the next double halves. */
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) && ok; i++) {
        double up = edges[i], down = edges[i];
        for (int j = 0; j < 64 && ok; j++) {
            ok = same_as_reference(up) && same_as_reference(-up) && same_as_reference(down) &&
                 same_as_reference(-down);
            up = nextafter(up, INFINITY);
            down = nextafter(down, 0);
        }
    }
    /* Every power of two the path handles, each with its neighbours. */
    for (int e = -21; e <= 51 && ok; e++) {
        double p = ldexp(1, e);
        ok = same_as_reference(p) && same_as_reference(nextafter(p, 0)) &&
             same_as_reference(nextafter(p, INFINITY));
    }
    /* Random bit patterns in and around the range (exponents 2^-24 to 2^54). */
    for (int i = 0; i < 300000 && ok; i++) {
        uint64_t bits = (rnd() & ((UINT64_C(1) << 52) - 1)) |
                        (uint64_t)(1023 - 24 + (int)(rnd() % 79)) << 52 | (rnd() & 1) << 63;
        double v;

        memcpy(&v, &bits, sizeof(v));
        ok = same_as_reference(v);
    }
    /* Decimals of 1 to 17 significant digits, as sensors and counters write them. */
    for (int i = 0; i < 300000 && ok; i++) {
        int digits = 1 + (int)(rnd() % 17), exp10 = (int)(rnd() % 25) - 8;
        uint64_t mant = rnd() % UINT64_C(100000000000000000);
        char in[64];

        while (mant >= 10 && snprintf(in, sizeof(in), "%" PRIu64, mant) > digits)
            mant /= 10;
        snprintf(in, sizeof(in), "%s%" PRIu64 "e%d", rnd() & 1 ? "-" : "", mant, exp10 - digits);
        ok = same_as_reference(strtod(in, NULL));
    }
    /* Averages and rates as the aggregations compute them: quotients of sums. */
    for (int i = 0; i < 300000 && ok; i++) {
        double sum = (double)(rnd() % 100000000) / 1000.0, n = (double)(1 + rnd() % 400);
        ok = same_as_reference(sum / n) && same_as_reference(-(sum / n)) &&
             same_as_reference(sum / n / 60.0);
    }
}

static void test_timestamps(void)
{
    check_str(ts(INT64_C(1732412345123)), "1732412345.123");
    check_str(ts(INT64_C(1732412345120)), "1732412345.12");
    check_str(ts(INT64_C(1732412345100)), "1732412345.1");
    check_str(ts(INT64_C(1732412345000)), "1732412345");
    check_str(ts(INT64_C(1732412345001)), "1732412345.001");
    check_str(ts(INT64_C(1732412345010)), "1732412345.01");
    check_str(ts(5), "0.005");
    check_str(ts(0), "0");
    check_str(ts(-1500), "-1.5");
    check_str(ts(INT64_MIN), "-9223372036854775.808");
    check_str(ts(INT64_MAX), "9223372036854775.807");
}

static void test_points(void)
{
    char buf[FP_JSONOUT_POINT_MAX];

    check_int(fp_jsonout_format_point(buf, INT64_C(1732412345120), 51.234), 22);
    check_str(buf, "[1732412345.12,51.234]");
    fp_jsonout_format_point(buf, 0, -0.0);
    check_str(buf, "[0,-0]");
    fp_jsonout_format_point(buf, -5, NAN);
    check_str(buf, "[-0.005,null]");
    /* The longest of each part fits. */
    check_int(fp_jsonout_format_point(buf, INT64_MIN, -2.2250738585072014e-308),
              (long long)strlen("[-9223372036854775.808,-2.2250738585072014e-308]"));
    check_str(buf, "[-9223372036854775.808,-2.2250738585072014e-308]");
}

static void test_strings_and_trees(void)
{
    struct evbuffer *b = evbuffer_new();
    char buf[512];
    json_t *v, *s;

    fp_assert(b != NULL);
    check_int(fp_jsonout_string(b, "a\"b\\c\nd\re\tf\x01g\x1f/\xc3\xa9"), 0);
    check_str(take(b, buf, sizeof(buf)), "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f/\xc3\xa9\"");
    check_int(fp_jsonout_string(b, ""), 0);
    check_str(take(b, buf, sizeof(buf)), "\"\"");

    /* Keys keep insertion order; reals use the short form; integers print as integers. */
    v = json_pack("{s:i, s:[b,b,n,f,s], s:f, s:{}}", "b", 1, "a", 1, 0, 1.5, "x", "temp", 51.234,
                  "empty");
    fp_assert(v != NULL);
    check_int(fp_jsonout_value(b, v), 0);
    check_str(take(b, buf, sizeof(buf)),
              "{\"b\":1,\"a\":[true,false,null,1.5,\"x\"],\"temp\":51.234,\"empty\":{}}");
    json_decref(v);
    check_int(fp_jsonout_value(b, NULL), -EINVAL);

    /* Whatever bytes a probe sent, the output is valid UTF-8 JSON. */
    s = fp_jsonout_string_new("ok-\xc3\xa9");
    check_str(json_string_value(s), "ok-\xc3\xa9");
    json_decref(s);
    s = fp_jsonout_string_new("a\xff"
                              "b");
    check_str(json_string_value(s), "a\xef\xbf\xbd"
                                    "b");
    json_decref(s);
    s = fp_jsonout_string_new("\xc0\x80"); /* overlong NUL */
    check_str(json_string_value(s), "\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(s);
    s = fp_jsonout_string_new("\xed\xa0\x80"); /* surrogate */
    check_str(json_string_value(s), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(s);
    s = fp_jsonout_string_new("\xf0\x9f\x94\xa5 \xe2\x82"); /* emoji, then a cut sequence */
    check_str(json_string_value(s), "\xf0\x9f\x94\xa5 \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(s);

    v = fp_jsonout_real_new(NAN);
    check(json_is_null(v));
    json_decref(v);
    v = fp_jsonout_real_new(2.5);
    check_double(json_real_value(v), 2.5);
    json_decref(v);

    evbuffer_free(b);
}

int main(void)
{
    test_doubles();
    test_doubles_match_printf();
    test_timestamps();
    test_points();
    test_strings_and_trees();
    fp_test_end();
}
