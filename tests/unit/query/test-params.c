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

    expect_series_error("", "missing parameter \"metric\"");
    expect_series_error("device=x", "missing parameter \"metric\"");
    expect_series_error("metric=", "missing parameter \"metric\"");
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
    expect_series_error("metric=m&step=60", "unknown parameter \"step\"");
    expect_series_error("metric=m&from=1&from=2", "parameter \"from\" given more than once");

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

int main(void)
{
    test_parse_ok();
    test_parse_refusals();
    test_check();
    test_metric_names();
    test_time();
    test_series_query();
    test_listen();
    fp_test_end();
}
