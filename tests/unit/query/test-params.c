/* Unit test for query/params.c (query strings, typed /api/v1/series parameters) and the listen
 * address parser: every refusal the HTTP API documents as a 400 starts here. */
#include "test.h"

#include <errno.h>

#include "params.h"
#include "server.h"

static void test_parse_ok(void)
{
    struct fp_query_params p;
    char err[256] = "";

    check_int(fp_query_params_parse(NULL, &p, err, sizeof(err)), 0);
    check_int(p.n, 0);
    fp_query_params_fini(&p);
    check_int(fp_query_params_parse("", &p, err, sizeof(err)), 0);
    check_int(p.n, 0);
    fp_query_params_fini(&p);

    check_int(fp_query_params_parse("metric=temperature%5Fcelsius&device=edge+01&from=&to=5", &p,
                                    err, sizeof(err)),
              0);
    check_int(p.n, 4);
    check_str(p.items[0].name, "metric");
    check_str(fp_query_params_get(&p, "metric"), "temperature_celsius");
    check_str(fp_query_params_get(&p, "device"), "edge 01"); /* '+' is a space */
    check_str(fp_query_params_get(&p, "from"), "");
    check_str(fp_query_params_get(&p, "to"), "5");
    check(fp_query_params_get(&p, "nope") == NULL);
    fp_query_params_fini(&p);
    fp_query_params_fini(&p); /* idempotent */

    /* Escapes in names, UTF-8 through escapes, '=' inside a value. */
    check_int(fp_query_params_parse("d%65vice=%C3%A9dge&x=a=b", &p, err, sizeof(err)), 0);
    check_str(fp_query_params_get(&p, "device"), "\xc3\xa9"
                                                 "dge");
    check_str(fp_query_params_get(&p, "x"), "a=b");
    fp_query_params_fini(&p);
}

static void expect_malformed(const char *query, const char *needle)
{
    struct fp_query_params p;
    char err[256] = "";

    check_int(fp_query_params_parse(query, &p, err, sizeof(err)), -EINVAL);
    check_int(p.n, 0);
    check(p.buf == NULL);
    if (strstr(err, needle) == NULL)
        FP_TEST_FAIL("query \"%s\": error \"%s\" lacks \"%s\"", query, err, needle);
    fp_query_params_fini(&p);
}

static void test_parse_refusals(void)
{
    char many[512] = "";

    expect_malformed("metric=a&&from=1", "empty parameter");
    expect_malformed("&", "empty parameter");
    expect_malformed("metric=a&", "empty parameter");
    expect_malformed("metric", "not name=value");
    expect_malformed("=5", "not name=value");
    expect_malformed("%6=5", "bad %-escape");
    expect_malformed("metric=%zz", "bad %-escape");
    expect_malformed("metric=%4", "bad %-escape");
    expect_malformed("metric=%", "bad %-escape");
    /* An escaped NUL would cut the value short without anyone noticing. */
    expect_malformed("metric=cpu%00junk", "bad %-escape");
    expect_malformed("from=1&to=2&from=3", "\"from\" given more than once");
    /* Decoding happens before the duplicate check. */
    expect_malformed("to=1&t%6F=2", "\"to\" given more than once");

    for (int i = 0; i <= FP_QUERY_PARAMS_MAX; i++) {
        char one[16];
        snprintf(one, sizeof(one), "%sp%d=1", i ? "&" : "", i);
        strcat(many, one);
    }
    expect_malformed(many, "too many query parameters");
}

static void test_check(void)
{
    static const char *const allowed[] = {"a", "b", NULL};
    struct fp_query_params p;
    char err[256] = "";

    check_int(fp_query_params_parse("a=1&b=2", &p, err, sizeof(err)), 0);
    check_int(fp_query_params_check(&p, allowed, err, sizeof(err)), 0);
    check_int(fp_query_params_check(&p, NULL, err, sizeof(err)), -EINVAL);
    check_str(err, "unknown parameter \"a\"");
    fp_query_params_fini(&p);

    /* Echoed names are printable and bounded: they go back to whoever sent them. */
    check_int(fp_query_params_parse("%0Aevil%22=1", &p, err, sizeof(err)), 0);
    check_int(fp_query_params_check(&p, allowed, err, sizeof(err)), -EINVAL);
    check_str(err, "unknown parameter \"?evil?\"");
    fp_query_params_fini(&p);
}

static void test_metric_names(void)
{
    char longest[FP_QUERY_NAME_MAX + 2];

    check(fp_query_metric_name_valid("temperature_celsius"));
    check(fp_query_metric_name_valid("_x"));
    check(fp_query_metric_name_valid("ns:rule:rate5m"));
    check(fp_query_metric_name_valid("A9"));
    check(!fp_query_metric_name_valid(""));
    check(!fp_query_metric_name_valid("9abc"));
    check(!fp_query_metric_name_valid("temp-celsius"));
    check(!fp_query_metric_name_valid("temp celsius"));
    check(!fp_query_metric_name_valid("temp{a=\"b\"}"));
    check(!fp_query_metric_name_valid("\xc3\xa9t\xc3\xa9"));

    memset(longest, 'm', sizeof(longest));
    longest[FP_QUERY_NAME_MAX] = '\0';
    check(fp_query_metric_name_valid(longest));
    longest[FP_QUERY_NAME_MAX] = 'm';
    longest[FP_QUERY_NAME_MAX + 1] = '\0';
    check(!fp_query_metric_name_valid(longest));
}

static void test_time(void)
{
    int64_t ms = -1;

    check_int(fp_query_time_parse("1732412345", &ms), 0);
    check_int(ms, INT64_C(1732412345000));
    check_int(fp_query_time_parse("1732412345.123", &ms), 0);
    check_int(ms, INT64_C(1732412345123));
    check_int(fp_query_time_parse("1732412345.1", &ms), 0);
    check_int(ms, INT64_C(1732412345100));
    check_int(fp_query_time_parse("1732412345.0005", &ms), 0); /* rounds to nearest */
    check_int(ms, INT64_C(1732412345001));
    check_int(fp_query_time_parse("1732412345.1234", &ms), 0);
    check_int(ms, INT64_C(1732412345123));
    check_int(fp_query_time_parse("0", &ms), 0);
    check_int(ms, 0);
    check_int(fp_query_time_parse("253402300799", &ms), 0);
    check_int(ms, INT64_C(253402300799000));
    check_int(fp_query_time_parse("000123", &ms), 0);
    check_int(ms, 123000);

    ms = 42;
    check_int(fp_query_time_parse("253402300800", &ms), -ERANGE);
    check_int(fp_query_time_parse("99999999999999999999999999", &ms), -ERANGE);
    check_int(fp_query_time_parse("", &ms), -EINVAL);
    check_int(fp_query_time_parse("abc", &ms), -EINVAL);
    check_int(fp_query_time_parse("-1", &ms), -EINVAL);
    check_int(fp_query_time_parse("+1", &ms), -EINVAL);
    check_int(fp_query_time_parse(" 1", &ms), -EINVAL);
    check_int(fp_query_time_parse("1 ", &ms), -EINVAL);
    check_int(fp_query_time_parse("1e9", &ms), -EINVAL);
    check_int(fp_query_time_parse("0x10", &ms), -EINVAL);
    check_int(fp_query_time_parse("1.", &ms), -EINVAL);
    check_int(fp_query_time_parse(".5", &ms), -EINVAL);
    check_int(fp_query_time_parse("1.2.3", &ms), -EINVAL);
    check_int(fp_query_time_parse("inf", &ms), -EINVAL);
    check_int(fp_query_time_parse("nan", &ms), -EINVAL);
    check_int(ms, 42); /* untouched on failure */
}

/* Parses query into a series request with a fixed clock. Returns the result, err in err. */
static int series(const char *query, struct fp_series_query *q, char *err, size_t err_size)
{
    static struct fp_query_params p; /* q borrows from it until the next call */
    int r;

    fp_query_params_fini(&p);
    r = fp_query_params_parse(query, &p, err, err_size);
    if (r < 0)
        return r;
    return fp_series_query_parse(&p, INT64_C(1732412345123), FP_QUERY_MAX_RANGE_MS_DEFAULT, q, err,
                                 err_size);
}

static void expect_series_error(const char *query, const char *expected)
{
    struct fp_series_query q;
    char err[256] = "";

    check_int(series(query, &q, err, sizeof(err)), -EINVAL);
    if (strcmp(err, expected) != 0)
        FP_TEST_FAIL("query \"%s\": error \"%s\", expected \"%s\"", query, err, expected);
}

static void test_series_query(void)
{
    struct fp_series_query q;
    char err[256] = "";

    /* Defaults: to = now, from = to - 1 h. */
    check_int(series("metric=temperature_celsius", &q, err, sizeof(err)), 0);
    check_str(q.metric, "temperature_celsius");
    check(q.device == NULL);
    check_int(q.to_ms, INT64_C(1732412345123));
    check_int(q.from_ms, INT64_C(1732412345123) - 3600000);

    check_int(series("metric=m&device=edge-01&from=1000&to=2000.5", &q, err, sizeof(err)), 0);
    check_str(q.device, "edge-01");
    check_int(q.from_ms, 1000000);
    check_int(q.to_ms, 2000500);

    /* Only "to": from follows it; only "from": to is now. */
    check_int(series("metric=m&to=10000", &q, err, sizeof(err)), 0);
    check_int(q.from_ms, 10000000 - 3600000);
    check_int(series("metric=m&from=1732412000", &q, err, sizeof(err)), 0);
    check_int(q.from_ms, INT64_C(1732412000000));
    check_int(q.to_ms, INT64_C(1732412345123));

    /* from == to is a one-instant range, allowed; exactly 31 days is allowed. */
    check_int(series("metric=m&from=5&to=5", &q, err, sizeof(err)), 0);
    check_int(series("metric=m&from=0&to=2678400", &q, err, sizeof(err)), 0);

    expect_series_error("", "missing parameter \"metric\" (or a device/match selector)");
    expect_series_error("metric=", "missing parameter \"metric\" (or a device/match selector)");
    expect_series_error("metric=no-dash",
                        "parameter \"metric\": \"no-dash\" is not a valid metric name");
    expect_series_error("metric=m&device=", "parameter \"device\": must be 1 to 256 bytes");
    expect_series_error("metric=m&from=abc", "parameter \"from\": \"abc\" is not a Unix time in "
                                             "seconds (e.g. 1732412345.123)");
    expect_series_error("metric=m&to=-5", "parameter \"to\": \"-5\" is not a Unix time in "
                                          "seconds (e.g. 1732412345.123)");
    expect_series_error("metric=m&to=1e99",
                        "parameter \"to\": \"1e99\" is not a Unix time in seconds (e.g. "
                        "1732412345.123)");
    expect_series_error("metric=m&to=999999999999",
                        "parameter \"to\": 999999999999 is out of range (0 to 253402300799 "
                        "seconds)");
    expect_series_error("metric=m&from=2000&to=1000", "\"from\" is after \"to\"");
    /* from alone, in the future, is after the default "to". */
    expect_series_error("metric=m&from=1832412345", "\"from\" is after \"to\"");
    expect_series_error("metric=m&from=0&to=2678400.001",
                        "range from \"from\" to \"to\" is longer than 2678400 seconds");
    expect_series_error("metric=m&steps=60", "unknown parameter \"steps\"");
    expect_series_error("metric=m&step=60", "parameter \"step\" requires \"agg\"");
    expect_series_error("metric=m&from=1&from=2", "parameter \"from\" given more than once");

    series(NULL, &q, err, sizeof(err)); /* frees the static params */
}

static void test_repeated_match(void)
{
    struct fp_query_params p;
    char err[256] = "";
    size_t pos = 0;

    /* "match" repeats; every other name still may not. */
    check_int(fp_query_params_parse("match=a=1&metric=m&match=b!=2", &p, err, sizeof(err)), 0);
    check_int(p.n, 3);
    check_str(fp_query_params_next(&p, "match", &pos), "a=1");
    check_str(fp_query_params_next(&p, "match", &pos), "b!=2");
    check(fp_query_params_next(&p, "match", &pos) == NULL);
    check(fp_query_params_next(&p, "match", &pos) == NULL);
    pos = 0;
    check_str(fp_query_params_next(&p, "metric", &pos), "m");
    pos = 0;
    check(fp_query_params_next(&p, "nope", &pos) == NULL);
    fp_query_params_fini(&p);
    expect_malformed("match=a=1&agg=sum&agg=max", "\"agg\" given more than once");
}

static void test_label_names(void)
{
    char longest[FP_QUERY_NAME_MAX + 2], name[FP_QUERY_NAME_MAX + 1], err[256];

    check(fp_query_label_name_valid("zone"));
    check(fp_query_label_name_valid("__name__"));
    check(fp_query_label_name_valid("_9"));
    check(!fp_query_label_name_valid(""));
    check(!fp_query_label_name_valid("9zone"));
    check(!fp_query_label_name_valid("a:b")); /* metric names may hold ':', labels not */
    check(!fp_query_label_name_valid("a-b"));
    memset(longest, 'l', sizeof(longest));
    longest[FP_QUERY_NAME_MAX] = '\0';
    check(fp_query_label_name_valid(longest));
    longest[FP_QUERY_NAME_MAX] = 'l';
    longest[FP_QUERY_NAME_MAX + 1] = '\0';
    check(!fp_query_label_name_valid(longest));

    check_int(fp_query_label_name_decode("zon%65", name, sizeof(name), err, sizeof(err)), 0);
    check_str(name, "zone");
    check_int(fp_query_label_name_decode("zo%00ne", name, sizeof(name), err, sizeof(err)),
              -EINVAL);
    check_str(err, "invalid label name \"zo%00ne\"");
    check_int(fp_query_label_name_decode("a+b", name, sizeof(name), err, sizeof(err)), -EINVAL);
    check_int(fp_query_label_name_decode("%zz", name, sizeof(name), err, sizeof(err)), -EINVAL);
    check_int(fp_query_label_name_decode("", name, sizeof(name), err, sizeof(err)), -EINVAL);
    check_int(fp_query_label_name_decode(longest, name, sizeof(name), err, sizeof(err)), -EINVAL);
}

static void test_series_matchers(void)
{
    struct fp_series_query q;
    char err[256] = "";

    check_int(series("metric=m&device=e1&match=zone=z0&match=type!=acpi&match=model=~ll.*"
                     "&match=site!~l%26b&match=empty=",
                     &q, err, sizeof(err)),
              0);
    check_int(q.n_matchers, 7);
    check_str(q.matchers[0].name, "__name__");
    check_str(q.matchers[0].value, "m");
    check_int(q.matchers[0].op, FP_MATCH_EQ);
    check_str(q.matchers[1].name, "device");
    check_str(q.matchers[1].value, "e1");
    check_str(q.matchers[2].name, "zone");
    check_str(q.matchers[2].value, "z0");
    check_int(q.matchers[2].op, FP_MATCH_EQ);
    check_str(q.matchers[3].name, "type");
    check_str(q.matchers[3].value, "acpi");
    check_int(q.matchers[3].op, FP_MATCH_NE);
    check_str(q.matchers[4].name, "model");
    check_str(q.matchers[4].value, "ll.*");
    check_int(q.matchers[4].op, FP_MATCH_RE);
    check_str(q.matchers[5].name, "site");
    check_str(q.matchers[5].value, "l&b");
    check_int(q.matchers[5].op, FP_MATCH_NRE);
    check_str(q.matchers[6].name, "empty");
    check_str(q.matchers[6].value, "");
    check_int(q.step_ms, 0);
    check_int(q.agg, 0);

    /* "=~" is the regex operator even where "=" followed by a '~' value was meant, as in PromQL;
     * a value may hold '='. */
    check_int(series("metric=m&match=a=~x&match=b==c", &q, err, sizeof(err)), 0);
    check_int(q.matchers[1].op, FP_MATCH_RE);
    check_str(q.matchers[2].value, "=c");
    check_int(q.matchers[2].op, FP_MATCH_EQ);

    expect_series_error("metric=m&match=zone", "parameter \"match\": \"zone\" is not a label "
                                               "matcher (name=value, name!=value, name=~regex, "
                                               "name!~regex)");
    expect_series_error("metric=m&match=a.b=1", "parameter \"match\": \"a.b=1\" is not a label "
                                                "matcher (name=value, name!=value, name=~regex, "
                                                "name!~regex)");
    /* The reason after the regex is the C library's (regerror), so only the start is fixed. */
    check_int(series("metric=m&match=a=~x(", &q, err, sizeof(err)), -EINVAL);
    check(strstr(err, "parameter \"match\": bad regex \"x(\": ") == err);
    expect_series_error("metric=m&match=a=~(x)%5C1",
                        "parameter \"match\": bad regex \"(x)\\1\": back-references are not "
                        "supported");
    /* An escaped backslash is not a back-reference. */
    check_int(series("metric=m&match=a=~x%5C%5C1", &q, err, sizeof(err)), 0);
}

/* Without "metric", device or a match selects; with none of the three, nothing does. */
static void test_series_selectors(void)
{
    struct fp_series_query q;
    char err[256] = "";

    /* Device alone: one matcher, no metric. */
    check_int(series("device=edge-01", &q, err, sizeof(err)), 0);
    check(q.metric == NULL);
    check_str(q.device, "edge-01");
    check_int(q.n_matchers, 1);
    check_str(q.matchers[0].name, "device");
    check_str(q.matchers[0].value, "edge-01");
    check_int(q.matchers[0].op, FP_MATCH_EQ);
    check_int(q.to_ms, INT64_C(1732412345123));
    check_int(q.from_ms, INT64_C(1732412345123) - 3600000);

    /* A match alone, here one on the metric name: the store's "__name__" matcher. */
    check_int(series("match=__name__=~temp.*", &q, err, sizeof(err)), 0);
    check(q.metric == NULL);
    check(q.device == NULL);
    check_int(q.n_matchers, 1);
    check_str(q.matchers[0].name, "__name__");
    check_str(q.matchers[0].value, "temp.*");
    check_int(q.matchers[0].op, FP_MATCH_RE);

    /* Any match counts, even a negation; order: device, then matches in request order. */
    check_int(series("match=site!=lab&device=e1&match=__name__!~temp.*", &q, err, sizeof(err)), 0);
    check(q.metric == NULL);
    check_int(q.n_matchers, 3);
    check_str(q.matchers[0].name, "device");
    check_str(q.matchers[0].value, "e1");
    check_str(q.matchers[1].name, "site");
    check_str(q.matchers[1].value, "lab");
    check_int(q.matchers[1].op, FP_MATCH_NE);
    check_str(q.matchers[2].name, "__name__");
    check_str(q.matchers[2].value, "temp.*");
    check_int(q.matchers[2].op, FP_MATCH_NRE);

    /* An empty metric is no metric. */
    check_int(series("metric=&device=edge-02", &q, err, sizeof(err)), 0);
    check(q.metric == NULL);
    check_int(q.n_matchers, 1);
    check_str(q.matchers[0].value, "edge-02");

    /* Aggregated without a metric, grouped by the metric name. */
    check_int(series("device=e1&from=0&to=120&step=60&agg=avg&by=__name__", &q, err, sizeof(err)),
              0);
    check(q.metric == NULL);
    check_int(q.n_matchers, 1);
    check_int(q.step_ms, 60000);
    check_int(q.agg, FP_AGG_AVG);
    check_str(q.agg_name, "avg");
    check_int(q.n_by, 1);
    check_str(q.by[0], "__name__");

    /* Nothing selects: time, step, agg and by do not narrow anything. */
    expect_series_error("from=0&to=100",
                        "missing parameter \"metric\" (or a device/match selector)");
    expect_series_error("metric=&from=0&to=100",
                        "missing parameter \"metric\" (or a device/match selector)");
    expect_series_error("step=60&agg=avg&by=__name__",
                        "missing parameter \"metric\" (or a device/match selector)");
    /* A selector that is there but bad gets its own reason. */
    expect_series_error("device=", "parameter \"device\": must be 1 to 256 bytes");
    expect_series_error("match=zone", "parameter \"match\": \"zone\" is not a label matcher "
                                      "(name=value, name!=value, name=~regex, name!~regex)");
    expect_series_error("metric=no-dash&device=e1",
                        "parameter \"metric\": \"no-dash\" is not a valid metric name");

    series(NULL, &q, err, sizeof(err)); /* frees the static params */
}

static void test_series_aggregation(void)
{
    struct fp_series_query q;
    char err[256] = "";

    check_int(series("metric=m&from=0&to=3600&step=60&agg=p95&by=model,site", &q, err,
                     sizeof(err)),
              0);
    check_int(q.step_ms, 60000);
    check_int(q.agg, FP_AGG_QUANTILE);
    check_double(q.q, 0.95);
    check_str(q.agg_name, "p95");
    check_int(q.n_by, 2);
    check_str(q.by[0], "model");
    check_str(q.by[1], "site");

    check_int(series("metric=m&step=1h&agg=quantile&q=0.999", &q, err, sizeof(err)), 0);
    check_int(q.step_ms, 3600000);
    check_double(q.q, 0.999);
    check_str(q.agg_name, "quantile");
    check_int(q.n_by, 0);
    check_int(series("metric=m&step=1.5m&agg=rate", &q, err, sizeof(err)), 0);
    check_int(q.step_ms, 90000);
    check_int(q.agg, FP_AGG_RATE);
    check_int(series("metric=m&step=1000ms&agg=last&by=__name__", &q, err, sizeof(err)), 0);
    check_int(q.step_ms, 1000);
    check_str(q.by[0], "__name__");
    check_int(series("metric=m&step=1d&agg=increase", &q, err, sizeof(err)), 0);
    check_int(q.step_ms, 86400000);
    check_int(series("metric=m&step=1&agg=count&q=0.5", &q, err, sizeof(err)), -EINVAL);

    expect_series_error("metric=m&agg=avg", "parameter \"agg\" requires \"step\"");
    expect_series_error("metric=m&by=a", "parameter \"by\" requires \"agg\"");
    expect_series_error("metric=m&step=60&agg=mean",
                        "parameter \"agg\": unknown aggregation \"mean\" (avg, min, max, sum, "
                        "count, last, rate, increase, p50, p90, p95, p99, quantile)");
    expect_series_error("metric=m&step=6o&agg=sum",
                        "parameter \"step\": \"6o\" is not a duration (e.g. 60, 60s, 1m, 1h)");
    expect_series_error("metric=m&step=1.&agg=sum",
                        "parameter \"step\": \"1.\" is not a duration (e.g. 60, 60s, 1m, 1h)");
    expect_series_error("metric=m&step=+60&agg=sum",
                        "parameter \"step\": \" 60\" is not a duration (e.g. 60, 60s, 1m, 1h)");
    expect_series_error("metric=m&step=99999999999999999999d&agg=sum",
                        "parameter \"step\": \"99999999999999999999d\" is not a duration (e.g. "
                        "60, 60s, 1m, 1h)");
    expect_series_error("metric=m&step=0s&agg=sum", "parameter \"step\": must be at least 1 second");
    expect_series_error("metric=m&from=0&to=660001&step=1m&agg=sum",
                        "range / step gives 11001 buckets, more than 11000; widen the step or "
                        "narrow the range");
    check_int(series("metric=m&from=0&to=660000&step=1m&agg=sum", &q, err, sizeof(err)), 0);
    expect_series_error("metric=m&step=60&agg=quantile",
                        "agg=quantile requires parameter \"q\" (e.g. q=0.95)");
    expect_series_error("metric=m&step=60&agg=quantile&q=1.0001",
                        "parameter \"q\": \"1.0001\" is not a number from 0 to 1");
    expect_series_error("metric=m&step=60&agg=quantile&q=",
                        "parameter \"q\": \"\" is not a number from 0 to 1");
    expect_series_error("metric=m&step=60&agg=quantile&q=.",
                        "parameter \"q\": \".\" is not a number from 0 to 1");
    expect_series_error("metric=m&step=60&agg=p99&q=0.5", "parameter \"q\" requires agg=quantile");
    expect_series_error("metric=m&step=60&agg=sum&by=a,,b",
                        "parameter \"by\": \"\" is not a label name");
    expect_series_error("metric=m&step=60&agg=sum&by=a,b,a", "parameter \"by\": \"a\" given twice");
    expect_series_error("metric=m&step=60&agg=sum&by=a%20b",
                        "parameter \"by\": \"a b\" is not a label name");

    series(NULL, &q, err, sizeof(err)); /* frees the static params */
}

static void test_listen(void)
{
    char host[64];
    uint16_t port = 1;

    check_int(fp_query_listen_parse("127.0.0.1:9471", host, sizeof(host), &port), 0);
    check_str(host, "127.0.0.1");
    check_int(port, 9471);
    check_int(fp_query_listen_parse("localhost:0", host, sizeof(host), &port), 0);
    check_str(host, "localhost");
    check_int(port, 0);
    check_int(fp_query_listen_parse("[::1]:65535", host, sizeof(host), &port), 0);
    check_str(host, "::1");
    check_int(port, 65535);

    check_int(fp_query_listen_parse("127.0.0.1", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse(":9471", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("127.0.0.1:", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("127.0.0.1:65536", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("127.0.0.1:-1", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("127.0.0.1: 80", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("127.0.0.1:123456", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("::1:80", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("[::1]80", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("[]:80", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("[::1:80", host, sizeof(host), &port), -EINVAL);
    check_int(fp_query_listen_parse("a-very-long-host-name.example:80", host, 8, &port), -EINVAL);
}

static void test_durations(void)
{
    int64_t ms = -1;

    check_int(fp_query_duration_parse("60", &ms), 0);
    check_int(ms, 60000);
    check_int(fp_query_duration_parse("1.5m", &ms), 0);
    check_int(ms, 90000);
    check_int(fp_query_duration_parse("500ms", &ms), 0);
    check_int(ms, 500);
    check_int(fp_query_duration_parse("1d", &ms), 0);
    check_int(ms, 86400000);
    /* Well-formed but under a millisecond: 0, for the caller's own minimum. */
    check_int(fp_query_duration_parse("0", &ms), 0);
    check_int(ms, 0);
    ms = 7;
    check_int(fp_query_duration_parse("", &ms), -EINVAL);
    check_int(fp_query_duration_parse(" 60", &ms), -EINVAL);
    check_int(fp_query_duration_parse("1e3", &ms), -EINVAL);
    check_int(fp_query_duration_parse("-5s", &ms), -EINVAL);
    check_int(fp_query_duration_parse("5.s", &ms), -EINVAL);
    check_int(fp_query_duration_parse("5w", &ms), -EINVAL);
    check_int(fp_query_duration_parse("99999999999999999999d", &ms), -EINVAL);
    check_int(ms, 7); /* untouched on failure */
}

static void test_matchers(void)
{
    struct fp_query_params p;
    struct fp_query_matchers *m = malloc(sizeof(*m));
    char err[256] = "";

    fp_assert(m != NULL);
    check_int(fp_query_params_parse("match=model=llama&state=ok&match=site!~la.*", &p, err,
                                    sizeof(err)),
              0);
    check_int(fp_query_matchers_parse(&p, m, err, sizeof(err)), 0);
    check_int(m->n, 2);
    check_str(m->m[0].name, "model");
    check_str(m->m[0].value, "llama");
    check_int(m->m[0].op, FP_MATCH_EQ);
    check_str(m->m[1].name, "site");
    check_str(m->m[1].value, "la.*");
    check_int(m->m[1].op, FP_MATCH_NRE);
    fp_query_params_fini(&p);

    check_int(fp_query_params_parse("x=1", &p, err, sizeof(err)), 0);
    check_int(fp_query_matchers_parse(&p, m, err, sizeof(err)), 0);
    check_int(m->n, 0);
    fp_query_params_fini(&p);

    check_int(fp_query_params_parse("match=model=~(", &p, err, sizeof(err)), 0);
    check_int(fp_query_matchers_parse(&p, m, err, sizeof(err)), -EINVAL);
    check(strstr(err, "parameter \"match\": bad regex \"(\"") != NULL);
    fp_query_params_fini(&p);
    check_int(fp_query_params_parse("match=9x=1", &p, err, sizeof(err)), 0);
    check_int(fp_query_matchers_parse(&p, m, err, sizeof(err)), -EINVAL);
    check(strstr(err, "is not a label matcher") != NULL);
    fp_query_params_fini(&p);
    free(m);
}

static void test_segments(void)
{
    char id[FP_QUERY_NAME_MAX + 1], err[256] = "", long_seg[3 * FP_QUERY_NAME_MAX + 2];

    check_int(fp_query_segment_decode("edge-01", "device id", id, sizeof(id), err, sizeof(err)),
              0);
    check_str(id, "edge-01");
    check_int(fp_query_segment_decode("a%2Fb%20c", "device id", id, sizeof(id), err, sizeof(err)),
              0);
    check_str(id, "a/b c");
    check_int(fp_query_segment_decode("", "device id", id, sizeof(id), err, sizeof(err)), -EINVAL);
    check_str(err, "invalid device id \"\" in the path");
    check_int(fp_query_segment_decode("a%00", "device id", id, sizeof(id), err, sizeof(err)),
              -EINVAL);
    check_int(fp_query_segment_decode("a%zz", "device id", id, sizeof(id), err, sizeof(err)),
              -EINVAL);
    /* 256 bytes pass, 257 do not. */
    memset(long_seg, 'x', FP_QUERY_NAME_MAX);
    long_seg[FP_QUERY_NAME_MAX] = '\0';
    check_int(fp_query_segment_decode(long_seg, "device id", id, sizeof(id), err, sizeof(err)), 0);
    long_seg[FP_QUERY_NAME_MAX] = 'x';
    long_seg[FP_QUERY_NAME_MAX + 1] = '\0';
    check_int(fp_query_segment_decode(long_seg, "device id", id, sizeof(id), err, sizeof(err)),
              -EINVAL);
}

int main(void)
{
    test_parse_ok();
    test_parse_refusals();
    test_check();
    test_metric_names();
    test_time();
    test_series_query();
    test_repeated_match();
    test_label_names();
    test_series_matchers();
    test_series_selectors();
    test_series_aggregation();
    test_listen();
    test_durations();
    test_matchers();
    test_segments();
    fp_test_end();
}
