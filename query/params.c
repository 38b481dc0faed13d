/* Query-string parsing and validation for the query service.
 *
 * We decode the query string ourselves rather than with evhttp_parse_query_str: libevent 2.1
 * leaves names undecoded and turns "%00" into a NUL that silently truncates the value
 * ("metric=cpu%00junk" would read as "cpu"). Every refusal here becomes a 400 with the reason,
 * so the error texts are written for the person typing the URL. Names echoed in an error are
 * cut short and reduced to printable ASCII: they are the client's bytes. */
#include "params.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* Longest piece of a client's string repeated back in an error message. */
#define ECHO_MAX 64

const char *const fp_series_query_params[] = {"metric", "device", "from", "to", "step",
                                               "agg",    "q",      "by",   "match", NULL};

/* The one parameter that may repeat: each "match" adds a label matcher. */
#define REPEATABLE "match"

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
        fp_set_err(err, err_size, "out of memory");
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
            fp_set_err(err, err_size, "malformed query string: empty parameter");
            r = -EINVAL;
            goto fail;
        }
        if (eq == NULL || eq == s) {
            char frag[ECHO_MAX];
            size_t fl = len < sizeof(frag) - 1 ? len : sizeof(frag) - 1;
            memcpy(frag, s, fl);
            frag[fl] = '\0';
            fp_set_err(err, err_size, "malformed query string: \"%s\" is not name=value",
                    echo(frag, ebuf, sizeof(ebuf)));
            r = -EINVAL;
            goto fail;
        }
        if (p.n == FP_QUERY_PARAMS_MAX) {
            fp_set_err(err, err_size, "too many query parameters (at most %d)", FP_QUERY_PARAMS_MAX);
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
            fp_set_err(err, err_size, "malformed query string: empty parameter name");
            r = -EINVAL;
            goto fail;
        }
        if (strcmp(name, REPEATABLE) != 0 && fp_query_params_get(&p, name) != NULL) {
            fp_set_err(err, err_size, "parameter \"%s\" given more than once",
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
    fp_set_err(err, err_size, "malformed query string: bad %%-escape");
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

const char *fp_query_params_next(const struct fp_query_params *p, const char *name, size_t *pos)
{
    for (; *pos < p->n; (*pos)++)
        if (strcmp(p->items[*pos].name, name) == 0)
            return p->items[(*pos)++].value;
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
            fp_set_err(err, err_size, "unknown parameter \"%s\"",
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

static bool is_label_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Length of the label name at the start of s (0 when s does not start with one). */
static size_t label_name_len(const char *s)
{
    size_t n = 0;

    if (!is_label_start(s[0]))
        return 0;
    for (n = 1; is_label_start(s[n]) || (s[n] >= '0' && s[n] <= '9'); n++)
        ;
    return n;
}

bool fp_query_label_name_valid(const char *s)
{
    size_t n = label_name_len(s);

    return n > 0 && s[n] == '\0' && n <= FP_QUERY_NAME_MAX;
}

int fp_query_label_name_decode(const char *segment, char *ret, size_t size, char *err,
                               size_t err_size)
{
    size_t len = strlen(segment);
    char ebuf[ECHO_MAX];

    /* Three bytes per escaped character bound the encoded form of any valid name. A path has
     * no '+'-for-space; percent_decode's '+' becomes a space, which no label name holds. */
    if (len <= 3 * FP_QUERY_NAME_MAX && len < size && percent_decode(segment, len, ret) == 0 &&
        fp_query_label_name_valid(ret))
        return 0;
    fp_set_err(err, err_size, "invalid label name \"%s\"", echo(segment, ebuf, sizeof(ebuf)));
    return -EINVAL;
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
        fp_set_err(err, err_size, "parameter \"%s\": %s is out of range (0 to %lld seconds)", name,
                echo(s, ebuf, sizeof(ebuf)), (long long)FP_QUERY_TIME_MAX_S);
        return -EINVAL;
    }
    if (r < 0) {
        fp_set_err(err, err_size,
                "parameter \"%s\": \"%s\" is not a Unix time in seconds (e.g. 1732412345.123)",
                name, echo(s, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }
    return 0;
}

/* One "match" value into m: name=value, name!=value, name=~regex, name!~regex. The name is
 * copied into name_buf (FP_QUERY_NAME_MAX + 1 bytes); the value is the tail of s, borrowed. */
static int parse_matcher(const char *s, struct fp_matcher *m, char *name_buf, char *err,
                         size_t err_size)
{
    static const struct {
        const char *op;
        enum fp_match_op match;
    } ops[] = {
        /* "=~" before "=": the longer operator wins, as in PromQL. */
        {"=~", FP_MATCH_RE},
        {"!~", FP_MATCH_NRE},
        {"!=", FP_MATCH_NE},
        {"=", FP_MATCH_EQ},
    };
    char ebuf[ECHO_MAX];
    size_t n = label_name_len(s);
    const char *rest = s + n;

    for (size_t i = 0; n > 0 && n <= FP_QUERY_NAME_MAX && i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t ol = strlen(ops[i].op);
        if (strncmp(rest, ops[i].op, ol) != 0)
            continue;
        memcpy(name_buf, s, n);
        name_buf[n] = '\0';
        *m = (struct fp_matcher){.name = name_buf, .value = rest + ol, .op = ops[i].match};
        if (strlen(m->value) > FP_QUERY_VALUE_MAX) {
            fp_set_err(err, err_size, "parameter \"match\": value longer than %d bytes",
                    FP_QUERY_VALUE_MAX);
            return -EINVAL;
        }
        return 0;
    }
    fp_set_err(err, err_size,
            "parameter \"match\": \"%s\" is not a label matcher (name=value, name!=value, "
            "name=~regex, name!~regex)",
            echo(s, ebuf, sizeof(ebuf)));
    return -EINVAL;
}

/* Checks a matcher's regex the way the store will compile it: anchored, POSIX extended. */
static int check_regex(const char *re, char *err, size_t err_size)
{
    char anchored[FP_QUERY_VALUE_MAX + 8], ebuf[ECHO_MAX], why[128];
    regex_t rx;
    int rc;

    /* glibc accepts back-references in extended regexes too, and they make matching time
     * exponential in the label's length: a client could stall the service with one request. */
    for (const char *p = re; *p != '\0'; p++) {
        if (*p != '\\')
            continue;
        if (p[1] >= '1' && p[1] <= '9') {
            fp_set_err(err, err_size, "parameter \"match\": bad regex \"%s\": back-references are "
                    "not supported", echo(re, ebuf, sizeof(ebuf)));
            return -EINVAL;
        }
        if (p[1] != '\0')
            p++;
    }
    (void)snprintf(anchored, sizeof(anchored), "^(%s)$", re);
    rc = regcomp(&rx, anchored, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        (void)regerror(rc, NULL, why, sizeof(why));
        fp_set_err(err, err_size, "parameter \"match\": bad regex \"%s\": %s",
                echo(re, ebuf, sizeof(ebuf)), why);
        return -EINVAL;
    }
    regfree(&rx);
    return 0;
}

int fp_query_duration_parse(const char *s, int64_t *ret_ms)
{
    /* As fp_parse_duration_ms reads it, but only digits, one fraction and a unit: it alone
     * would also take " 60", "1e3" and "0x3c". */
    size_t d = strspn(s, "0123456789"), f = 0;
    const char *unit;
    int64_t ms;
    int r;

    if (s[d] == '.')
        f = 1 + strspn(s + d + 1, "0123456789");
    unit = s + d + f;
    if (d == 0 || f == 1 ||
        !(*unit == '\0' || strcmp(unit, "ms") == 0 || strcmp(unit, "s") == 0 ||
          strcmp(unit, "m") == 0 || strcmp(unit, "h") == 0 || strcmp(unit, "d") == 0))
        return -EINVAL;
    r = fp_parse_duration_ms(s, &ms);
    if (r == -ERANGE)
        return -EINVAL;
    *ret_ms = r < 0 ? 0 : ms; /* "0", "0.0001s": well-formed, shorter than a millisecond */
    return 0;
}

int fp_query_matchers_parse(const struct fp_query_params *p, struct fp_query_matchers *ret,
                            char *err, size_t err_size)
{
    const char *match;
    size_t pos = 0;
    int r;

    ret->n = 0;
    while ((match = fp_query_params_next(p, "match", &pos)) != NULL) {
        struct fp_matcher *m = &ret->m[ret->n];

        /* At most FP_QUERY_PARAMS_MAX parameters, so m[] and names[] cannot fill up. */
        r = parse_matcher(match, m, ret->names[ret->n], err, err_size);
        if (r == 0 && (m->op == FP_MATCH_RE || m->op == FP_MATCH_NRE))
            r = check_regex(m->value, err, err_size);
        if (r < 0)
            return r;
        ret->n++;
    }
    return 0;
}

int fp_query_segment_decode(const char *segment, const char *what, char *ret, size_t size,
                            char *err, size_t err_size)
{
    size_t len = strlen(segment);
    char ebuf[ECHO_MAX];

    if (len <= 3 * FP_QUERY_NAME_MAX && len < size && percent_decode(segment, len, ret) == 0 &&
        ret[0] != '\0' && strlen(ret) <= FP_QUERY_NAME_MAX)
        return 0;
    fp_set_err(err, err_size, "invalid %s \"%s\" in the path", what,
               echo(segment, ebuf, sizeof(ebuf)));
    return -EINVAL;
}

/* The "agg" names, with the quantile each pN stands for. */
static const struct {
    const char *name;
    enum fp_agg_fn fn;
    double q; /**< FP_AGG_QUANTILE: the fixed quantile, or -1 when "q" gives it */
} aggs[] = {
    {"avg", FP_AGG_AVG, 0},        {"min", FP_AGG_MIN, 0},
    {"max", FP_AGG_MAX, 0},        {"sum", FP_AGG_SUM, 0},
    {"count", FP_AGG_COUNT, 0},    {"last", FP_AGG_LAST, 0},
    {"rate", FP_AGG_RATE, 0},      {"increase", FP_AGG_INCREASE, 0},
    {"p50", FP_AGG_QUANTILE, 0.5}, {"p90", FP_AGG_QUANTILE, 0.9},
    {"p95", FP_AGG_QUANTILE, 0.95}, {"p99", FP_AGG_QUANTILE, 0.99},
    {"quantile", FP_AGG_QUANTILE, -1},
};

/* step, agg, q and by. */
static int parse_aggregation(const struct fp_query_params *p, struct fp_series_query *q,
                             char *err, size_t err_size)
{
    const char *step = fp_query_params_get(p, "step");
    const char *agg = fp_query_params_get(p, "agg");
    const char *qs = fp_query_params_get(p, "q");
    const char *by = fp_query_params_get(p, "by");
    char ebuf[ECHO_MAX];
    uint64_t span, buckets;
    size_t i;

    if (by != NULL && agg == NULL) {
        fp_set_err(err, err_size, "parameter \"by\" requires \"agg\"");
        return -EINVAL;
    }
    if (step != NULL && agg == NULL) {
        fp_set_err(err, err_size, "parameter \"step\" requires \"agg\"");
        return -EINVAL;
    }
    if (agg != NULL && step == NULL) {
        fp_set_err(err, err_size, "parameter \"agg\" requires \"step\"");
        return -EINVAL;
    }
    if (qs != NULL && (agg == NULL || strcmp(agg, "quantile") != 0)) {
        fp_set_err(err, err_size, "parameter \"q\" requires agg=quantile");
        return -EINVAL;
    }
    if (agg == NULL)
        return 0;

    for (i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++)
        if (strcmp(agg, aggs[i].name) == 0)
            break;
    if (i == sizeof(aggs) / sizeof(aggs[0])) {
        fp_set_err(err, err_size,
                "parameter \"agg\": unknown aggregation \"%s\" (avg, min, max, sum, count, last, "
                "rate, increase, p50, p90, p95, p99, quantile)",
                echo(agg, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }
    q->agg = aggs[i].fn;
    q->agg_name = aggs[i].name;
    q->q = aggs[i].q;
    if (aggs[i].q < 0) {
        if (qs == NULL) {
            fp_set_err(err, err_size, "agg=quantile requires parameter \"q\" (e.g. q=0.95)");
            return -EINVAL;
        }
        /* Digits and one '.' only, like times: no sign, exponent, "nan" or spaces. */
        if (strspn(qs, "0123456789.") != strlen(qs) || fp_parse_double(qs, &q->q) < 0 ||
            !(q->q >= 0 && q->q <= 1)) {
            fp_set_err(err, err_size, "parameter \"q\": \"%s\" is not a number from 0 to 1",
                    echo(qs, ebuf, sizeof(ebuf)));
            return -EINVAL;
        }
    }

    if (fp_query_duration_parse(step, &q->step_ms) < 0) {
        fp_set_err(err, err_size,
                   "parameter \"step\": \"%s\" is not a duration (e.g. 60, 60s, 1m, 1h)",
                   echo(step, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }
    if (q->step_ms < FP_QUERY_STEP_MIN_MS) {
        fp_set_err(err, err_size, "parameter \"step\": must be at least 1 second");
        return -EINVAL;
    }
    span = (uint64_t)(q->to_ms - q->from_ms);
    buckets = span / (uint64_t)q->step_ms + (span % (uint64_t)q->step_ms != 0);
    if (buckets > FP_QUERY_BUCKETS_MAX) {
        fp_set_err(err, err_size,
                "range / step gives %llu buckets, more than %d; widen the step or narrow the "
                "range",
                (unsigned long long)buckets, FP_QUERY_BUCKETS_MAX);
        return -EINVAL;
    }

    if (by != NULL) {
        size_t len = strlen(by);
        char *name;

        if (len >= sizeof(q->by_buf)) {
            fp_set_err(err, err_size, "parameter \"by\": at most %d label names", FP_AGG_BY_MAX);
            return -EINVAL;
        }
        memcpy(q->by_buf, by, len + 1);
        for (name = q->by_buf;; name++) {
            char *comma = strchr(name, ',');

            if (comma != NULL)
                *comma = '\0';
            if (!fp_query_label_name_valid(name)) {
                fp_set_err(err, err_size, "parameter \"by\": \"%s\" is not a label name",
                        echo(name, ebuf, sizeof(ebuf)));
                return -EINVAL;
            }
            for (size_t j = 0; j < q->n_by; j++) {
                if (strcmp(q->by[j], name) == 0) {
                    fp_set_err(err, err_size, "parameter \"by\": \"%s\" given twice", name);
                    return -EINVAL;
                }
            }
            if (q->n_by == FP_AGG_BY_MAX) {
                fp_set_err(err, err_size, "parameter \"by\": at most %d label names",
                        FP_AGG_BY_MAX);
                return -EINVAL;
            }
            q->by[q->n_by++] = name;
            if (comma == NULL)
                break;
            name = comma;
        }
    }
    return 0;
}

int fp_series_query_parse(const struct fp_query_params *p, int64_t now_ms, int64_t max_range_ms,
                          struct fp_series_query *ret, char *err, size_t err_size)
{
    struct fp_series_query *q = ret;
    const char *match;
    char ebuf[ECHO_MAX];
    size_t pos = 0, n_match = 0;
    int have_from, have_to, r;

    memset(q, 0, sizeof(*q));
    r = fp_query_params_check(p, fp_series_query_params, err, err_size);
    if (r < 0)
        return r;

    /* Without a metric, a device or a match must select: a query with no condition at all
     * would read every series in the store, almost surely by mistake (PromQL refuses "{}" too).
     * An empty "metric=" counts as absent, as an empty form field does. Any "match" counts,
     * even one every series satisfies (site!=x): the response caps bound what it costs. */
    q->metric = fp_query_params_get(p, "metric");
    if (q->metric != NULL && *q->metric == '\0')
        q->metric = NULL;
    if (q->metric == NULL && fp_query_params_get(p, "device") == NULL &&
        fp_query_params_get(p, "match") == NULL) {
        fp_set_err(err, err_size, "missing parameter \"metric\" (or a device/match selector)");
        return -EINVAL;
    }
    if (q->metric != NULL && !fp_query_metric_name_valid(q->metric)) {
        fp_set_err(err, err_size, "parameter \"metric\": \"%s\" is not a valid metric name",
                echo(q->metric, ebuf, sizeof(ebuf)));
        return -EINVAL;
    }
    if (q->metric != NULL)
        q->matchers[q->n_matchers++] =
            (struct fp_matcher){.name = "__name__", .value = q->metric, .op = FP_MATCH_EQ};

    q->device = fp_query_params_get(p, "device");
    if (q->device != NULL && (*q->device == '\0' || strlen(q->device) > FP_QUERY_NAME_MAX)) {
        fp_set_err(err, err_size, "parameter \"device\": must be 1 to %d bytes", FP_QUERY_NAME_MAX);
        return -EINVAL;
    }
    if (q->device != NULL)
        q->matchers[q->n_matchers++] =
            (struct fp_matcher){.name = "device", .value = q->device, .op = FP_MATCH_EQ};

    while ((match = fp_query_params_next(p, "match", &pos)) != NULL) {
        struct fp_matcher *m = &q->matchers[q->n_matchers];

        /* At most FP_QUERY_PARAMS_MAX parameters, so names[] and matchers[] cannot fill up. */
        r = parse_matcher(match, m, q->names[n_match++], err, err_size);
        if (r == 0 && (m->op == FP_MATCH_RE || m->op == FP_MATCH_NRE))
            r = check_regex(m->value, err, err_size);
        if (r < 0)
            return r;
        q->n_matchers++;
    }

    have_from = parse_time_param(p, "from", &q->from_ms, err, err_size);
    if (have_from < 0)
        return have_from;
    have_to = parse_time_param(p, "to", &q->to_ms, err, err_size);
    if (have_to < 0)
        return have_to;
    if (have_to == 1)
        q->to_ms = now_ms;
    if (have_from == 1)
        q->from_ms = q->to_ms - 3600 * 1000;

    if (q->from_ms > q->to_ms) {
        fp_set_err(err, err_size, "\"from\" is after \"to\"");
        return -EINVAL;
    }
    if (q->to_ms - q->from_ms > max_range_ms) {
        fp_set_err(err, err_size, "range from \"from\" to \"to\" is longer than %lld seconds",
                (long long)(max_range_ms / 1000));
        return -EINVAL;
    }
    return parse_aggregation(p, q, err, err_size);
}
