/* Query-string parsing and validation for the query service.
 *
 * We decode the query string ourselves rather than with evhttp_parse_query_str: libevent 2.1
 * leaves names undecoded and turns "%00" into a NUL that silently truncates the value
 * ("metric=cpu%00junk" would read as "cpu"). Every refusal here becomes a 400 with the reason,
 * so the error texts are written for the person typing the URL. Names echoed in an error are
 * cut short and reduced to printable ASCII: they are the client's bytes. */
#include "params.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* Longest piece of a client's string repeated back in an error message. */
#define ECHO_MAX 64

const char *const fp_series_query_params[] = {"metric", "device", "from", "to", NULL};

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_size == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* A printable, bounded copy of a client-supplied string for an error message. */
static const char *echo(const char *s, char *buf, size_t size)
{
    size_t n = 0;

    for (; *s != '\0' && n + 1 < size; s++) {
        unsigned char c = (unsigned char)*s;
        buf[n++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    if (*s != '\0' && size > 4) {
        n = n > size - 4 ? size - 4 : n;
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src[0..len) into dst (at least len + 1 bytes; decoding only shrinks). Returns 0 or
 * -EINVAL for a bad escape or an escaped NUL. */
static int percent_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -EINVAL;
            hi = hex_value(src[i + 1]);
            lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    return 0;
}

int fp_query_params_parse(const char *query, struct fp_query_params *ret, char *err,
                          size_t err_size)
{
    struct fp_query_params p = {0};
    char ebuf[ECHO_MAX];
    const char *s = query;
    char *out;
    size_t qlen;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (query == NULL || *query == '\0')
        return 0;

    qlen = strlen(query);
    /* Each decoded pair is at most as long as its source plus a NUL for name and for value. */
    p.buf = malloc(qlen + 2);
    if (p.buf == NULL) {
        set_err(err, err_size, "out of memory");
        return -ENOMEM;
    }
    out = p.buf;

    for (;;) {
        const char *amp = strchr(s, '&');
        size_t len = amp != NULL ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        size_t name_len, value_len;
        char *name, *value;

        if (len == 0) {
            set_err(err, err_size, "malformed query string: empty parameter");
            r = -EINVAL;
            goto fail;
        }
        if (eq == NULL || eq == s) {
            char frag[ECHO_MAX];
            size_t fl = len < sizeof(frag) - 1 ? len : sizeof(frag) - 1;
            memcpy(frag, s, fl);
            frag[fl] = '\0';
            set_err(err, err_size, "malformed query string: \"%s\" is not name=value",
                    echo(frag, ebuf, sizeof(ebuf)));
            r = -EINVAL;
            goto fail;
        }
        if (p.n == FP_QUERY_PARAMS_MAX) {
            set_err(err, err_size, "too many query parameters (at most %d)", FP_QUERY_PARAMS_MAX);
            r = -EINVAL;
            goto fail;
        }
        name_len = (size_t)(eq - s);
        value_len = len - name_len - 1;

        name = out;
        if (percent_decode(s, name_len, name) < 0)
            goto bad_escape;
        out += strlen(name) + 1;
        value = out;
        if (percent_decode(eq + 1, value_len, value) < 0)
            goto bad_escape;
        out += strlen(value) + 1;

        if (*name == '\0') {
            set_err(err, err_size, "malformed query string: empty parameter name");
            r = -EINVAL;
            goto fail;
        }
        if (fp_query_params_get(&p, name) != NULL) {
            set_err(err, err_size, "parameter \"%s\" given more than once",
                    echo(name, ebuf, sizeof(ebuf)));
            r = -EINVAL;
            goto fail;
        }
        p.items[p.n].name = name;
        p.items[p.n].value = value;
        p.n++;

        if (amp == NULL)
            break;
        s = amp + 1;
    }

    *ret = p;
    return 0;

bad_escape:
    set_err(err, err_size, "malformed query string: bad %%-escape");
    r = -EINVAL;
fail:
    fp_query_params_fini(&p);
    return r;
}

void fp_query_params_fini(struct fp_query_params *p)
{
    if (p == NULL)
        return;
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

const char *fp_query_params_get(const struct fp_query_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0)
            return p->items[i].value;
    return NULL;
}

int fp_query_params_check(const struct fp_query_params *p, const char *const *allowed, char *err,
                          size_t err_size)
{
    char ebuf[ECHO_MAX];

    for (size_t i = 0; i < p->n; i++) {
        bool known = false;
        for (size_t j = 0; allowed != NULL && allowed[j] != NULL && !known; j++)
            known = strcmp(p->items[i].name, allowed[j]) == 0;
        if (!known) {
            set_err(err, err_size, "unknown parameter \"%s\"",
                    echo(p->items[i].name, ebuf, sizeof(ebuf)));
            return -EINVAL;
        }
    }
    return 0;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

bool fp_query_metric_name_valid(const char *s)
{
    size_t n;

    if (!is_name_start(s[0]))
        return false;
    for (n = 1; s[n] != '\0'; n++)
        if (!is_name_start(s[n]) && !(s[n] >= '0' && s[n] <= '9'))
            return false;
    return n <= FP_QUERY_NAME_MAX;
}

int fp_query_time_parse(const char *s, int64_t *ret_ms)
{
    const char *p = s;
    double v;
    int r;

    /* strtod alone would take "-1", "1e9", "0x10", " 5" and "inf"; a timestamp is plain digits. */
    if (!(*p >= '0' && *p <= '9'))
        return -EINVAL;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p != '\0')
        return -EINVAL;

    r = fp_parse_double(s, &v);
    if (r < 0)
        return r;
    if (v > (double)FP_QUERY_TIME_MAX_S + 0.999)
        return -ERANGE;
    /* v * 1000 stays below 2^48 here, where a double resolves far finer than half a millisecond,
     * so rounding recovers the millisecond the client wrote. */
    *ret_ms = (int64_t)llround(v * 1000.0);
    return 0;
}

static int parse_time_param(const struct fp_query_params *p, const char *name, int64_t *ret_ms,
                            char *err, size_t err_size)
{
    const char *s = fp_query_params_get(p, name);
    char ebuf[ECHO_MAX];
    int r;

    if (s == NULL)
        return 1; /* absent: the caller applies its default */
    r = fp_query_time_parse(s, ret_ms);
    if (r == -ERANGE) {
        set_err(err, err_size, "parameter \"%s\": %s is out of range (0 to %lld seconds)", name,
                echo(s, ebuf, sizeof(ebuf)), (long long)FP_QUERY_TIME_MAX_S);
        return -EINVAL;
    }
    if (r < 0) {
        set_err(err, err_size,
                "parameter \"%s\": \"%s\" is not a Unix time in seconds (e.g. 1732412345.123)",
                name, echo(s, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }
    return 0;
}

int fp_series_query_parse(const struct fp_query_params *p, int64_t now_ms, int64_t max_range_ms,
                          struct fp_series_query *ret, char *err, size_t err_size)
{
    struct fp_series_query q = {0};
    char ebuf[ECHO_MAX];
    int have_from, have_to, r;

    r = fp_query_params_check(p, fp_series_query_params, err, err_size);
    if (r < 0)
        return r;

    q.metric = fp_query_params_get(p, "metric");
    if (q.metric == NULL || *q.metric == '\0') {
        set_err(err, err_size, "missing parameter \"metric\"");
        return -EINVAL;
    }
    if (!fp_query_metric_name_valid(q.metric)) {
        set_err(err, err_size, "parameter \"metric\": \"%s\" is not a valid metric name",
                echo(q.metric, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }

    q.device = fp_query_params_get(p, "device");
    if (q.device != NULL && (*q.device == '\0' || strlen(q.device) > FP_QUERY_NAME_MAX)) {
        set_err(err, err_size, "parameter \"device\": must be 1 to %d bytes", FP_QUERY_NAME_MAX);
        return -EINVAL;
    }

    have_from = parse_time_param(p, "from", &q.from_ms, err, err_size);
    if (have_from < 0)
        return have_from;
    have_to = parse_time_param(p, "to", &q.to_ms, err, err_size);
    if (have_to < 0)
        return have_to;
    if (have_to == 1)
        q.to_ms = now_ms;
    if (have_from == 1)
        q.from_ms = q.to_ms - 3600 * 1000;

    if (q.from_ms > q.to_ms) {
        set_err(err, err_size, "\"from\" is after \"to\"");
        return -EINVAL;
    }
    if (q.to_ms - q.from_ms > max_range_ms) {
        set_err(err, err_size, "range from \"from\" to \"to\" is longer than %lld seconds",
                (long long)(max_range_ms / 1000));
        return -EINVAL;
    }

    *ret = q;
    return 0;
}
