/* Strict number parsing: strtol and friends accept "12abc" and "" unless every caller checks
 * endptr and errno, so every caller goes through here instead. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int only_space(const char *p)
{
    while (*p != '\0' && isspace((unsigned char)*p))
        p++;
    return *p == '\0';
}

static const char *skip_space(const char *s)
{
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    return s;
}

int fp_parse_i64(const char *s, int64_t *ret)
{
    char *end;
    long long v;

    s = skip_space(s);
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || !only_space(end))
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *ret = v;
    return 0;
}

int fp_parse_u64(const char *s, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    s = skip_space(s);
    /* strtoull silently negates "-1" into a huge value. */
    if (*s == '\0' || *s == '-')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || !only_space(end))
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *ret = v;
    return 0;
}

int fp_parse_double(const char *s, double *ret)
{
    char *end;
    double v;

    s = skip_space(s);
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || !only_space(end) || isnan(v))
        return -EINVAL;
    if (errno == ERANGE || isinf(v))
        return -ERANGE;
    *ret = v;
    return 0;
}

int fp_parse_duration_ms(const char *s, int64_t *ret_ms)
{
    static const struct {
        const char *suffix;
        double ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    char buf[64];
    size_t len = strlen(s);
    double mult = 1000, v;
    int r;

    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len + 1);
    /* Longest suffix first: "ms" must win over "s". */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t sl = strlen(units[i].suffix);
        if (len > sl && strcmp(buf + len - sl, units[i].suffix) == 0 &&
            !isalpha((unsigned char)buf[len - sl - 1])) {
            buf[len - sl] = '\0';
            mult = units[i].ms;
            break;
        }
    }
    r = fp_parse_double(buf, &v);
    if (r < 0)
        return r;
    if (v <= 0)
        return -EINVAL;
    v *= mult;
    if (v > 9.0e15)
        return -ERANGE;
    if (v < 1)
        return -EINVAL;
    *ret_ms = (int64_t)v;
    return 0;
}
