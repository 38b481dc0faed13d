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
 * Timestamps are int64 milliseconds and are printed with integer arithmetic, never via a double.
 * Trees are still built with Jansson (ownership, key order, UTF-8 checks); only the final text is
 * written here. The 100000 points of a large series response bypass trees and are written
 * directly with fp_jsonout_ts_ms/fp_jsonout_double.
 *
 * The daemon never calls setlocale, so printf and strtod use '.' as the decimal point. */
#include "jsonout.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

size_t fp_jsonout_format_double(char *buf, size_t size, double v)
{
    int n = 0;

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

int fp_jsonout_ts_ms(struct evbuffer *out, int64_t ts_ms)
{
    /* The magnitude in uint64 so that INT64_MIN does not overflow on negation. */
    uint64_t mag = ts_ms < 0 ? (uint64_t)0 - (uint64_t)ts_ms : (uint64_t)ts_ms;
    unsigned frac = (unsigned)(mag % 1000);
    char buf[32];
    int n;

    if (frac == 0)
        n = snprintf(buf, sizeof(buf), "%s%" PRIu64, ts_ms < 0 ? "-" : "", mag / 1000);
    else if (frac % 100 == 0)
        n = snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%u", ts_ms < 0 ? "-" : "", mag / 1000,
                     frac / 100);
    else if (frac % 10 == 0)
        n = snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%02u", ts_ms < 0 ? "-" : "", mag / 1000,
                     frac / 10);
    else
        n = snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%03u", ts_ms < 0 ? "-" : "", mag / 1000,
                     frac);
    return evbuffer_add(out, buf, (size_t)n) == 0 ? 0 : -ENOMEM;
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
