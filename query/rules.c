/* The alert rules file: Jansson's parse tree validated field by field into struct fp_rule.
 *
 * Every error is one line that names the file, the rule (by name once the name is known, and by
 * position always, since the name may be the broken field) and the field, so a person fixing the
 * file at 3 a.m. goes straight to it. Fields are checked in a fixed order (name, kind, unknown
 * keys, then the rest) so that one file always reports the same first error. Unknown keys are
 * errors: a misspelt "for" that silently meant "fire at once" would be worse than a refusal.
 *
 * Templates are validated here, once, so rendering in every evaluation round cannot fail on
 * syntax; rendering only substitutes. */
#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"
#include "params.h"
#include "parse.h"

/* Where we are in the file, for error messages. */
struct ctx {
    const char *source;
    size_t index;     /**< position of the rule, from 1 */
    const char *name; /**< the rule's name once read, else NULL */
    char *err;
    size_t err_size;
};

/* Keys every kind takes, then each kind's own. */
static const char *const common_keys[] = {"name",        "kind", "severity", "labels",
                                          "annotations", "for",  NULL};

static const struct kind_desc {
    const char *name;
    enum fp_rule_kind kind;
    const char *const keys[16];
} kinds[] = {
    {"threshold",
     FP_RULE_THRESHOLD,
     {"metric", "matchers", "agg", "window", "op", "value", "by", NULL}},
    {"device_silent", FP_RULE_DEVICE_SILENT, {"matchers", NULL}},
    {"device_stale", FP_RULE_DEVICE_STALE, {"matchers", NULL}},
    {"below_cohort",
     FP_RULE_BELOW_COHORT,
     {"metric", "matchers", "agg", "window", "cohort", "fraction", "min_devices", NULL}},
    {"cohort_regression",
     FP_RULE_COHORT_REGRESSION,
     {"metric", "matchers", "agg", "window", "by", "a", "b", "worse", "min_change", "alpha",
      "min_devices", "strata", NULL}},
};

static const struct {
    const char *name;
    enum fp_rule_op op;
} ops[] = {
    {">", FP_RULE_GT},  {">=", FP_RULE_GE}, {"<", FP_RULE_LT},
    {"<=", FP_RULE_LE}, {"==", FP_RULE_EQ}, {"!=", FP_RULE_NE},
};

static const struct {
    const char *name;
    enum fp_agg_fn fn;
} aggs[] = {
    {"avg", FP_AGG_AVG},   {"min", FP_AGG_MIN},           {"max", FP_AGG_MAX},
    {"sum", FP_AGG_SUM},   {"count", FP_AGG_COUNT},       {"last", FP_AGG_LAST},
    {"rate", FP_AGG_RATE}, {"increase", FP_AGG_INCREASE},
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Longest piece of a bad value quoted back in an error. */
#define ECHO_MAX 64

/* Formats "SOURCE: rule "NAME" (#I): field "F": MESSAGE" and returns -EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const char *field,
                                                      const char *fmt, ...)
{
    char msg[512], where[FP_RULE_NAME_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->index == 0)
        where[0] = '\0';
    else if (c->name != NULL)
        (void)snprintf(where, sizeof(where), "rule \"%s\" (#%zu): ", c->name, c->index);
    else
        (void)snprintf(where, sizeof(where), "rule #%zu: ", c->index);
    if (field != NULL)
        fp_set_err(c->err, c->err_size, "%s: %sfield \"%s\": %s", c->source, where, field, msg);
    else
        fp_set_err(c->err, c->err_size, "%s: %s%s", c->source, where, msg);
    return -EINVAL;
}

/* A bounded, printable copy of s for error messages. */
static const char *echo(const char *s, char *buf, size_t size)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 4 < size && i < ECHO_MAX; i++)
        buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    if (s[i] != '\0' && i + 4 <= size) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static bool in_list(const char *const *list, const char *s)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

/* A string value v for field: non-empty, at most max bytes, no NUL or control characters (they
 * would end up in label values and log lines). */
static int string_value(struct ctx *c, const char *field, const json_t *v, size_t max,
                        const char **ret)
{
    const char *s = NULL;

    if (!json_is_string(v))
        return fail(c, field, "expected a string, got %s", type_name(v));
    s = json_string_value(v);
    if (s[0] == '\0')
        return fail(c, field, "must not be empty");
    if (strlen(s) > max || json_string_length(v) != strlen(s))
        return fail(c, field, "longer than %zu bytes or holds a NUL", max);
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            return fail(c, field, "holds a control character");
    *ret = s;
    return 0;
}

/* A string field of obj; when not required and absent, *ret is NULL. */
static int get_string(struct ctx *c, const json_t *obj, const char *field, bool required,
                      size_t max, const char **ret)
{
    const json_t *v = json_object_get(obj, field);

    *ret = NULL;
    if (v == NULL)
        return required ? fail(c, field, "missing") : 0;
    return string_value(c, field, v, max, ret);
}

static int get_number(struct ctx *c, const json_t *obj, const char *field, bool required,
                      double *ret)
{
    const json_t *v = json_object_get(obj, field);

    if (v == NULL)
        return required ? fail(c, field, "missing") : 0;
    if (!json_is_number(v))
        return fail(c, field, "expected a number, got %s", type_name(v));
    *ret = json_number_value(v);
    if (!isfinite(*ret))
        return fail(c, field, "must be finite");
    return 0;
}

static int dup_into(char **dst, const char *s)
{
    *dst = strdup(s);
    return *dst == NULL ? -ENOMEM : 0;
}

/* A duration ("90s", "5m", "1h", ...); allow_zero also takes "0" with or without a unit. */
static int get_duration(struct ctx *c, const json_t *obj, const char *field, bool required,
                        bool allow_zero, int64_t *ret_ms)
{
    const char *s = NULL;
    char ebuf[ECHO_MAX + 4];
    int r = get_string(c, obj, field, required, 32, &s);

    if (r < 0 || s == NULL)
        return r;
    if (fp_parse_duration_ms(s, ret_ms) == 0)
        return 0;
    if (allow_zero) {
        size_t digits = strspn(s, "0");
        const char *unit = s + digits;
        if (digits > 0 &&
            (strcmp(unit, "") == 0 || strcmp(unit, "ms") == 0 || strcmp(unit, "s") == 0 ||
             strcmp(unit, "m") == 0 || strcmp(unit, "h") == 0 || strcmp(unit, "d") == 0)) {
            *ret_ms = 0;
            return 0;
        }
    }
    return fail(c, field, "\"%s\" is not a duration%s (e.g. \"90s\", \"5m\", \"1h\")",
                echo(s, ebuf, sizeof(ebuf)), allow_zero ? " >= 0" : " > 0");
}

/* Refuses what the store's anchored POSIX extended matching would reject, and back-references,
 * whose matching time is exponential in the label's length. */
static int check_regex(struct ctx *c, const char *field, const char *re)
{
    char anchored[FP_RULE_VALUE_MAX + 8], why[128], ebuf[ECHO_MAX + 4];
    regex_t rx;
    int rc;

    for (const char *p = re; *p != '\0'; p++) {
        if (*p != '\\')
            continue;
        if (p[1] >= '1' && p[1] <= '9')
            return fail(c, field, "regex \"%s\": back-references are not supported",
                        echo(re, ebuf, sizeof(ebuf)));
        if (p[1] != '\0')
            p++;
    }
    (void)snprintf(anchored, sizeof(anchored), "^(%s)$", re);
    rc = regcomp(&rx, anchored, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        (void)regerror(rc, NULL, why, sizeof(why));
        return fail(c, field, "bad regex \"%s\": %s", echo(re, ebuf, sizeof(ebuf)), why);
    }
    regfree(&rx);
    return 0;
}

/* One matcher string: name=value, name!=value, name=~regex, name!~regex. */
static int parse_matcher(struct ctx *c, const char *s, struct fp_matcher *m)
{
    static const struct {
        const char *op;
        enum fp_match_op match;
    } mops[] = {
        /* The longer operator first, as in PromQL: "a=~b" is a regex, not the value "~b". */
        {"=~", FP_MATCH_RE},
        {"!~", FP_MATCH_NRE},
        {"!=", FP_MATCH_NE},
        {"=", FP_MATCH_EQ},
    };
    char ebuf[ECHO_MAX + 4], name[FP_QUERY_NAME_MAX + 1];
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    int r;

    if (n > 0 && n <= FP_QUERY_NAME_MAX) {
        memcpy(name, s, n);
        name[n] = '\0';
    }
    for (size_t i = 0; n > 0 && n <= FP_QUERY_NAME_MAX && i < ARRAY_SIZE(mops); i++) {
        size_t ol = strlen(mops[i].op);
        const char *value = s + n + ol;

        if (strncmp(s + n, mops[i].op, ol) != 0)
            continue;
        if (!fp_query_label_name_valid(name))
            break;
        if (mops[i].match == FP_MATCH_RE || mops[i].match == FP_MATCH_NRE) {
            r = check_regex(c, "matchers", value);
            if (r < 0)
                return r;
        }
        m->op = mops[i].match;
        if (dup_into((char **)&m->name, name) < 0 || dup_into((char **)&m->value, value) < 0)
            return -ENOMEM;
        return 0;
    }
    return fail(c, "matchers",
                "\"%s\" is not a label matcher (name=value, name!=value, name=~regex, "
                "name!~regex)",
                echo(s, ebuf, sizeof(ebuf)));
}

static int get_matchers(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const json_t *v = json_object_get(obj, "matchers"), *item;
    size_t i;
    int r;

    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return fail(c, "matchers", "expected an array of strings, got %s", type_name(v));
    if (json_array_size(v) > FP_RULE_MATCHERS_MAX)
        return fail(c, "matchers", "more than %d matchers", FP_RULE_MATCHERS_MAX);
    rule->matchers = calloc(json_array_size(v) + 1, sizeof(*rule->matchers));
    if (rule->matchers == NULL)
        return -ENOMEM;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item))
            return fail(c, "matchers", "item %zu: expected a string, got %s", i + 1,
                        type_name(item));
        if (strlen(json_string_value(item)) > FP_RULE_VALUE_MAX)
            return fail(c, "matchers", "item %zu: longer than %d bytes", i + 1, FP_RULE_VALUE_MAX);
        r = parse_matcher(c, json_string_value(item), &rule->matchers[i]);
        if (r < 0)
            return r;
        rule->n_matchers++;
    }
    return 0;
}

/* "by" of a threshold rule and "cohort" of below_cohort: label names, unique. */
static int get_label_list(struct ctx *c, const json_t *obj, const char *field, bool required,
                          struct fp_rule *rule)
{
    const json_t *v = json_object_get(obj, field), *item;
    char ebuf[ECHO_MAX + 4];
    size_t i;

    if (v == NULL)
        return required ? fail(c, field, "missing") : 0;
    if (!json_is_array(v))
        return fail(c, field, "expected an array of label names, got %s", type_name(v));
    if (required && json_array_size(v) == 0)
        return fail(c, field, "must name at least one label");
    if (json_array_size(v) > FP_RULE_BY_MAX)
        return fail(c, field, "more than %d labels", FP_RULE_BY_MAX);
    rule->by = calloc(json_array_size(v) + 1, sizeof(*rule->by));
    if (rule->by == NULL)
        return -ENOMEM;
    json_array_foreach(v, i, item)
    {
        const char *s = NULL;
        if (!json_is_string(item))
            return fail(c, field, "item %zu: expected a string, got %s", i + 1, type_name(item));
        s = json_string_value(item);
        if (!fp_query_label_name_valid(s) || strcmp(s, "__name__") == 0)
            return fail(c, field, "\"%s\" is not a label name", echo(s, ebuf, sizeof(ebuf)));
        for (size_t j = 0; j < rule->n_by; j++)
            if (strcmp(rule->by[j], s) == 0)
                return fail(c, field, "\"%s\" is named twice", s);
        if (dup_into(&rule->by[rule->n_by], s) < 0)
            return -ENOMEM;
        rule->n_by++;
    }
    return 0;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct fp_label *)a)->name, ((const struct fp_label *)b)->name);
}

/* Checks the {{ ... }} placeholders of an annotation template (see fp_rule_render). */
static int check_template(struct ctx *c, const char *field, const char *t)
{
    char ebuf[ECHO_MAX + 4];

    for (const char *p = strstr(t, "{{"); p != NULL; p = strstr(p, "{{")) {
        const char *end = strstr(p + 2, "}}"), *s = p + 2, *e;
        char inner[FP_QUERY_NAME_MAX + 16];
        size_t n;

        if (end == NULL)
            return fail(c, field, "\"{{\" without a closing \"}}\"");
        while (s < end && isspace((unsigned char)*s))
            s++;
        e = end;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        n = (size_t)(e - s);
        if (n >= sizeof(inner))
            n = sizeof(inner) - 1;
        memcpy(inner, s, n);
        inner[n] = '\0';
        if (strcmp(inner, "$value") != 0 &&
            !(strncmp(inner, "$labels.", 8) == 0 && fp_query_label_name_valid(inner + 8)) &&
            !(strncmp(inner, "$values.", 8) == 0 && fp_query_label_name_valid(inner + 8)))
            return fail(c, field,
                        "unknown placeholder \"{{ %s }}\" (use {{ $value }}, "
                        "{{ $labels.NAME }} or {{ $values.NAME }})",
                        echo(inner, ebuf, sizeof(ebuf)));
        p = end + 2;
    }
    return 0;
}

/* "labels" (check_text false) or "annotations" (templates): an object of strings. */
static int get_pairs(struct ctx *c, const json_t *obj, const char *field, bool templates,
                     struct fp_label **ret, size_t *ret_n)
{
    const json_t *v = json_object_get(obj, field), *item;
    const char *key;
    char sub[FP_QUERY_NAME_MAX + 32], ebuf[ECHO_MAX + 4];
    size_t n = 0;
    int r;

    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return fail(c, field, "expected an object of strings, got %s", type_name(v));
    if (json_object_size(v) > FP_RULE_PAIRS_MAX)
        return fail(c, field, "more than %d entries", FP_RULE_PAIRS_MAX);
    *ret = calloc(json_object_size(v) + 1, sizeof(**ret));
    if (*ret == NULL)
        return -ENOMEM;
    json_object_foreach((json_t *)v, key, item)
    {
        const char *s = NULL;
        if (!fp_query_label_name_valid(key) || strncmp(key, "__", 2) == 0)
            return fail(c, field, "\"%s\" is not a label name", echo(key, ebuf, sizeof(ebuf)));
        (void)snprintf(sub, sizeof(sub), "%s.%s", field, key);
        if (!templates && (strcmp(key, "alertname") == 0 || strcmp(key, "severity") == 0))
            return fail(c, sub, "set by the rule's %s, not by labels",
                        key[0] == 'a' ? "name" : "severity");
        r = string_value(c, sub, item, templates ? FP_RULE_TEXT_MAX : FP_RULE_VALUE_MAX, &s);
        if (r < 0)
            return r;
        if (templates) {
            r = check_template(c, sub, s);
            if (r < 0)
                return r;
        }
        if (dup_into((char **)&(*ret)[n].name, key) < 0 ||
            dup_into((char **)&(*ret)[n].value, s) < 0) {
            *ret_n = n + 1;
            return -ENOMEM;
        }
        n++;
        *ret_n = n;
    }
    qsort(*ret, n, sizeof(**ret), cmp_label);
    return 0;
}

static int get_agg(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const char *s = NULL;
    char ebuf[ECHO_MAX + 4];
    double pct;
    int r = get_string(c, obj, "agg", false, 32, &s);

    if (r < 0)
        return r;
    if (s == NULL)
        s = "avg";
    if (dup_into(&rule->agg_name, s) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < ARRAY_SIZE(aggs); i++) {
        if (strcmp(s, aggs[i].name) == 0) {
            rule->agg = aggs[i].fn;
            return 0;
        }
    }
    /* pNN: p50, p95, p99.9. */
    if (s[0] == 'p' && isdigit((unsigned char)s[1]) && fp_parse_double(s + 1, &pct) == 0 &&
        pct > 0 && pct < 100 && strspn(s + 1, "0123456789.") == strlen(s + 1)) {
        rule->agg = FP_AGG_QUANTILE;
        rule->q = pct / 100;
        return 0;
    }
    return fail(c, "agg",
                "\"%s\" is not an aggregation (avg, min, max, sum, count, last, rate, increase, "
                "or pNN such as p95)",
                echo(s, ebuf, sizeof(ebuf)));
}

/* metric, matchers, agg and window: how the metric-based kinds select and reduce series. */
static int get_selection(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const char *s = NULL;
    char ebuf[ECHO_MAX + 4];
    int r;

    r = get_string(c, obj, "metric", true, FP_QUERY_NAME_MAX, &s);
    if (r < 0)
        return r;
    if (!fp_query_metric_name_valid(s))
        return fail(c, "metric", "\"%s\" is not a metric name", echo(s, ebuf, sizeof(ebuf)));
    if (dup_into(&rule->metric, s) < 0)
        return -ENOMEM;
    r = get_matchers(c, obj, rule);
    if (r < 0)
        return r;
    r = get_agg(c, obj, rule);
    if (r < 0)
        return r;
    r = get_duration(c, obj, "window", true, false, &rule->window_ms);
    if (r == 0 && rule->window_ms > FP_RULE_WINDOW_MAX_MS)
        return fail(c, "window", "longer than 31 days");
    return r;
}

static int get_min_devices(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const json_t *v = json_object_get(obj, "min_devices");

    rule->min_devices = 3;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 2 || json_integer_value(v) > 1000000)
        return fail(c, "min_devices", "expected an integer from 2 to 1000000");
    rule->min_devices = (size_t)json_integer_value(v);
    return 0;
}

static int parse_threshold(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const char *s = NULL;
    char ebuf[ECHO_MAX + 4];
    int r;

    r = get_selection(c, obj, rule);
    if (r < 0)
        return r;
    r = get_string(c, obj, "op", true, 8, &s);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
        if (strcmp(s, ops[i].name) == 0)
            rule->op = ops[i].op;
    if (rule->op == 0)
        return fail(c, "op",
                    "\"%s\" is not one of >, >=, <, <=, ==, !=", echo(s, ebuf, sizeof(ebuf)));
    r = get_number(c, obj, "value", true, &rule->threshold);
    if (r < 0)
        return r;
    return get_label_list(c, obj, "by", false, rule);
}

static int parse_below_cohort(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    int r = get_selection(c, obj, rule);

    if (r < 0)
        return r;
    r = get_label_list(c, obj, "cohort", true, rule);
    if (r < 0)
        return r;
    for (size_t i = 0; i < rule->n_by; i++)
        if (strcmp(rule->by[i], "device") == 0)
            return fail(c, "cohort", "\"device\" cannot be a cohort label (a cohort of one)");
    r = get_number(c, obj, "fraction", true, &rule->fraction);
    if (r < 0)
        return r;
    if (!(rule->fraction > 0 && rule->fraction < 1))
        return fail(c, "fraction", "must be between 0 and 1 (exclusive), e.g. 0.5");
    return get_min_devices(c, obj, rule);
}

static int parse_regression(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const char *s = NULL;
    char ebuf[ECHO_MAX + 4];
    int r = get_selection(c, obj, rule);

    if (r < 0)
        return r;
    r = get_string(c, obj, "by", true, FP_QUERY_NAME_MAX, &s);
    if (r < 0)
        return r;
    if (!fp_query_label_name_valid(s) || strcmp(s, "__name__") == 0 || strcmp(s, "device") == 0)
        return fail(c, "by", "\"%s\" is not a label name that splits devices into cohorts",
                    echo(s, ebuf, sizeof(ebuf)));
    if (dup_into(&rule->label, s) < 0)
        return -ENOMEM;
    r = get_string(c, obj, "a", true, FP_RULE_VALUE_MAX, &s);
    if (r < 0)
        return r;
    if (dup_into(&rule->a, s) < 0)
        return -ENOMEM;
    r = get_string(c, obj, "b", true, FP_RULE_VALUE_MAX, &s);
    if (r < 0)
        return r;
    if (strcmp(s, rule->a) == 0)
        return fail(c, "b", "must differ from \"a\"");
    if (dup_into(&rule->b, s) < 0)
        return -ENOMEM;
    r = get_string(c, obj, "worse", false, 16, &s);
    if (r < 0)
        return r;
    if (s != NULL && strcmp(s, "higher") != 0 && strcmp(s, "lower") != 0)
        return fail(c, "worse", "\"%s\" is neither \"lower\" nor \"higher\"",
                    echo(s, ebuf, sizeof(ebuf)));
    rule->higher_is_worse = s != NULL && strcmp(s, "higher") == 0;
    r = get_number(c, obj, "min_change", true, &rule->min_change);
    if (r < 0)
        return r;
    if (!(rule->min_change >= 0 && rule->min_change < 100))
        return fail(c, "min_change", "must be a fraction >= 0, e.g. 0.1 for 10%%");
    rule->alpha = 0.01;
    r = get_number(c, obj, "alpha", false, &rule->alpha);
    if (r < 0)
        return r;
    if (!(rule->alpha > 0 && rule->alpha < 1))
        return fail(c, "alpha", "must be between 0 and 1 (exclusive), e.g. 0.01");
    r = get_label_list(c, obj, "strata", false, rule);
    if (r < 0)
        return r;
    for (size_t i = 0; i < rule->n_by; i++)
        if (strcmp(rule->by[i], "device") == 0 || strcmp(rule->by[i], rule->label) == 0)
            return fail(c, "strata", "\"%s\" cannot be a stratum (it %s)", rule->by[i],
                        strcmp(rule->by[i], "device") == 0 ? "makes strata of one device"
                                                           : "splits the cohorts");
    return get_min_devices(c, obj, rule);
}

static int parse_rule(struct ctx *c, const json_t *obj, struct fp_rule *rule)
{
    const struct kind_desc *kd = NULL;
    const char *s = NULL, *key;
    const json_t *item;
    char ebuf[ECHO_MAX + 4];
    int r;

    if (!json_is_object(obj))
        return fail(c, NULL, "expected an object, got %s", type_name(obj));

    r = get_string(c, obj, "name", true, FP_RULE_NAME_MAX, &s);
    if (r < 0)
        return r;
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(s))
        return fail(c, "name", "\"%s\" may hold only letters, digits, '_', '.' and '-'",
                    echo(s, ebuf, sizeof(ebuf)));
    if (dup_into(&rule->name, s) < 0)
        return -ENOMEM;
    c->name = rule->name;

    r = get_string(c, obj, "kind", true, 32, &s);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strcmp(s, kinds[i].name) == 0)
            kd = &kinds[i];
    if (kd == NULL)
        return fail(c, "kind",
                    "\"%s\" is not a rule kind (threshold, device_silent, device_stale, "
                    "below_cohort, cohort_regression)",
                    echo(s, ebuf, sizeof(ebuf)));
    rule->kind = kd->kind;

    json_object_foreach((json_t *)obj, key, item)
    {
        if (!in_list(common_keys, key) && !in_list(kd->keys, key))
            return fail(c, key, "unknown for a %s rule", kd->name);
    }

    r = get_string(c, obj, "severity", false, FP_RULE_NAME_MAX, &s);
    if (r < 0)
        return r;
    if (dup_into(&rule->severity, s != NULL ? s : "warning") < 0)
        return -ENOMEM;
    r = get_pairs(c, obj, "labels", false, &rule->labels, &rule->n_labels);
    if (r < 0)
        return r;
    r = get_pairs(c, obj, "annotations", true, &rule->annotations, &rule->n_annotations);
    if (r < 0)
        return r;
    r = get_duration(c, obj, "for", false, true, &rule->for_ms);
    if (r < 0)
        return r;

    switch (rule->kind) {
    case FP_RULE_THRESHOLD:
        return parse_threshold(c, obj, rule);
    case FP_RULE_DEVICE_SILENT:
    case FP_RULE_DEVICE_STALE:
        return get_matchers(c, obj, rule);
    case FP_RULE_BELOW_COHORT:
        return parse_below_cohort(c, obj, rule);
    case FP_RULE_COHORT_REGRESSION:
        return parse_regression(c, obj, rule);
    }
    return -EINVAL;
}

static void rule_fini(struct fp_rule *rule)
{
    free(rule->name);
    free(rule->severity);
    for (size_t i = 0; i < rule->n_labels; i++) {
        free((char *)rule->labels[i].name);
        free((char *)rule->labels[i].value);
    }
    free(rule->labels);
    for (size_t i = 0; i < rule->n_annotations; i++) {
        free((char *)rule->annotations[i].name);
        free((char *)rule->annotations[i].value);
    }
    free(rule->annotations);
    free(rule->metric);
    /* A matcher half-filled by a failed strdup has its name set and its value NULL; the arrays
     * are allocated one longer than needed and zeroed, so the loop stops at the first NULL. */
    for (size_t i = 0; rule->matchers != NULL && rule->matchers[i].name != NULL; i++) {
        free((char *)rule->matchers[i].name);
        free((char *)rule->matchers[i].value);
    }
    free(rule->matchers);
    free(rule->agg_name);
    for (size_t i = 0; rule->by != NULL && rule->by[i] != NULL; i++)
        free(rule->by[i]);
    free(rule->by);
    free(rule->label);
    free(rule->a);
    free(rule->b);
}

void fp_ruleset_destroy(struct fp_ruleset **rs)
{
    if (rs == NULL || *rs == NULL)
        return;
    for (size_t i = 0; i < (*rs)->n_rules; i++)
        rule_fini(&(*rs)->rules[i]);
    free((*rs)->rules);
    free((*rs)->path);
    free(*rs);
    *rs = NULL;
}

int fp_ruleset_parse(const char *text, size_t len, const char *source, struct fp_ruleset **ret,
                     char *err, size_t err_size)
{
    struct ctx c = {.source = source, .err = err, .err_size = err_size};
    struct fp_ruleset *rs = NULL;
    json_error_t jerr;
    json_t *root, *rules, *item;
    const char *key;
    size_t i;
    int r;

    /* Duplicate keys are refused: the second "for" of a rule would silently win otherwise. */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fp_set_err(err, err_size, "%s: line %d column %d: %s", source, jerr.line, jerr.column,
                   jerr.text);
        return -EINVAL;
    }
    r = -EINVAL;
    if (!json_is_object(root)) {
        fail(&c, NULL, "expected an object {\"rules\": [...]}, got %s", type_name(root));
        goto out;
    }
    json_object_foreach(root, key, item)
    {
        if (strcmp(key, "rules") != 0) {
            fail(&c, key, "unknown at the top level (only \"rules\")");
            goto out;
        }
    }
    rules = json_object_get(root, "rules");
    if (rules == NULL || !json_is_array(rules)) {
        fail(&c, "rules", rules == NULL ? "missing" : "expected an array of rules");
        goto out;
    }
    if (json_array_size(rules) > FP_RULES_MAX) {
        fail(&c, "rules", "more than %d rules", FP_RULES_MAX);
        goto out;
    }

    r = -ENOMEM;
    rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        goto out;
    rs->rules = calloc(json_array_size(rules) + 1, sizeof(*rs->rules));
    if (rs->rules == NULL)
        goto out;
    json_array_foreach(rules, i, item)
    {
        c.index = i + 1;
        c.name = NULL;
        rs->n_rules = i + 1;
        r = parse_rule(&c, item, &rs->rules[i]);
        if (r == -ENOMEM)
            fp_set_err(err, err_size, "%s: out of memory", source);
        if (r < 0)
            goto out;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(rs->rules[j].name, rs->rules[i].name) == 0) {
                r = fail(&c, "name", "rule #%zu has the same name", j + 1);
                goto out;
            }
        }
    }
    *ret = rs;
    rs = NULL;
    r = 0;

out:
    fp_ruleset_destroy(&rs);
    json_decref(root);
    return r;
}

int fp_ruleset_load(const char *path, struct fp_ruleset **ret, char *err, size_t err_size)
{
    struct fp_ruleset *rs = NULL;
    struct stat st;
    char *text = NULL;
    size_t got = 0;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        fp_set_err(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        fp_set_err(err, err_size, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        fp_set_err(err, err_size, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > FP_RULES_FILE_MAX) {
        r = -EFBIG;
        fp_set_err(err, err_size, "%s: larger than %d bytes", path, FP_RULES_FILE_MAX);
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        r = -ENOMEM;
        fp_set_err(err, err_size, "%s: out of memory", path);
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            fp_set_err(err, err_size, "%s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    r = fp_ruleset_parse(text, got, path, &rs, err, err_size);
    if (r < 0)
        goto out;
    rs->path = strdup(path);
    if (rs->path == NULL) {
        r = -ENOMEM;
        fp_set_err(err, err_size, "%s: out of memory", path);
        goto out;
    }
    *ret = rs;
    rs = NULL;

out:
    fp_ruleset_destroy(&rs);
    free(text);
    (void)close(fd);
    return r;
}

const struct fp_rule *fp_ruleset_find(const struct fp_ruleset *rs, const char *name)
{
    for (size_t i = 0; rs != NULL && i < rs->n_rules; i++)
        if (strcmp(rs->rules[i].name, name) == 0)
            return &rs->rules[i];
    return NULL;
}

const char *fp_rule_kind_name(enum fp_rule_kind kind)
{
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return "?";
}

/* A growing string for fp_rule_render. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 64 : b->cap;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Six significant digits read well for ratios and p values; large values (seconds since a
 * device was last seen, byte counts) print whole instead of in exponent form. */
static void sb_number(struct sbuf *b, double v)
{
    char num[40];
    int n = fabs(v) >= 1e6 && fabs(v) < 1e15 ? snprintf(num, sizeof(num), "%.0f", v)
                                             : snprintf(num, sizeof(num), "%.6g", v);
    sb_add(b, num, (size_t)n);
}

char *fp_rule_render(const char *tmpl, const struct fp_label *labels, size_t n_labels, double value,
                     const char *const *value_names, const double *values, size_t n_values)
{
    struct sbuf b = {0};
    const char *p = tmpl;

    sb_add(&b, "", 0);
    for (;;) {
        const char *open = strstr(p, "{{"), *end, *s, *e;
        size_t n;

        if (open == NULL || (end = strstr(open + 2, "}}")) == NULL) {
            sb_add(&b, p, strlen(p));
            break;
        }
        sb_add(&b, p, (size_t)(open - p));
        s = open + 2;
        while (s < end && isspace((unsigned char)*s))
            s++;
        e = end;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        n = (size_t)(e - s);
        if (n == 6 && strncmp(s, "$value", 6) == 0) {
            sb_number(&b, value);
        } else if (n > 8 && strncmp(s, "$labels.", 8) == 0) {
            for (size_t i = 0; i < n_labels; i++) {
                if (strlen(labels[i].name) == n - 8 && strncmp(labels[i].name, s + 8, n - 8) == 0) {
                    sb_add(&b, labels[i].value, strlen(labels[i].value));
                    break;
                }
            }
        } else if (n > 8 && strncmp(s, "$values.", 8) == 0) {
            for (size_t i = 0; i < n_values; i++) {
                if (strlen(value_names[i]) == n - 8 && strncmp(value_names[i], s + 8, n - 8) == 0) {
                    sb_number(&b, values[i]);
                    break;
                }
            }
        }
        p = end + 2;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
