/* The alert rules file: every field of every kind parsed into its struct, and every way to get a
 * field wrong refused with one line naming the file, the rule and the field. */
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"

/* Parses text; returns the result code and leaves the error line in err. */
static int parse(const char *text, struct fp_ruleset **ret, char *err, size_t err_size)
{
    err[0] = '\0';
    return fp_ruleset_parse(text, strlen(text), "rules.json", ret, err, err_size);
}

/* text must be refused, with an error holding every needle (NULL-terminated). */
#define check_refused(text, ...)                                                                   \
    check_refused_at(__LINE__, text, (const char *[]){__VA_ARGS__, NULL})

static void check_refused_at(int line, const char *text, const char **needles)
{
    struct fp_ruleset *rs = NULL;
    char err[512];
    int r = parse(text, &rs, err, sizeof(err));

    if (r != -EINVAL) {
        FP_TEST_FAIL("line %d: parse returned %d, expected -EINVAL (err: %s)", line, r, err);
        fp_ruleset_destroy(&rs);
        return;
    }
    if (rs != NULL)
        FP_TEST_FAIL("line %d: ruleset set on failure", line);
    if (strchr(err, '\n') != NULL)
        FP_TEST_FAIL("line %d: error is not one line: %s", line, err);
    if (strncmp(err, "rules.json: ", 12) != 0)
        FP_TEST_FAIL("line %d: error does not name the file: %s", line, err);
    for (; *needles != NULL; needles++)
        if (strstr(err, *needles) == NULL)
            FP_TEST_FAIL("line %d: \"%s\" not in error: %s", line, *needles, err);
}

/* One rule object with the given members after name and kind. */
static char *rule(const char *name, const char *kind, const char *rest)
{
    static char buf[4096];

    (void)snprintf(buf, sizeof(buf), "{\"rules\":[{\"name\":\"%s\",\"kind\":\"%s\"%s%s}]}", name,
                   kind, rest[0] ? "," : "", rest);
    return buf;
}

#define TH_BASE "\"metric\":\"temperature_celsius\",\"window\":\"5m\",\"op\":\">\",\"value\":85"
#define BC_BASE "\"metric\":\"tps\",\"window\":\"15m\",\"cohort\":[\"model\"],\"fraction\":0.5"
#define CR_BASE                                                                                    \
    "\"metric\":\"tps\",\"window\":\"15m\",\"by\":\"model_version\",\"a\":\"v1\",\"b\":\"v2\","    \
    "\"min_change\":0.1"

static void test_document(void)
{
    check_refused("{\"rules\":[", "line 1");
    check_refused("[]", "expected an object");
    check_refused("{}", "field \"rules\": missing");
    check_refused("{\"rules\":{}}", "field \"rules\": expected an array");
    check_refused("{\"rules\":[],\"extra\":1}", "field \"extra\": unknown");
    check_refused("{\"rules\":[1]}", "rule #1: expected an object");
    check_refused("{\"rules\":[], \"rules\":[]}", "duplicate");
}

static void test_common_fields(void)
{
    check_refused("{\"rules\":[{\"kind\":\"device_silent\"}]}", "rule #1: field \"name\": missing");
    check_refused("{\"rules\":[{\"name\":7,\"kind\":\"device_silent\"}]}", "rule #1",
                  "field \"name\": expected a string, got a number");
    check_refused(rule("", "device_silent", ""), "field \"name\": must not be empty");
    check_refused(rule("has space", "device_silent", ""), "field \"name\"", "letters");
    check_refused("{\"rules\":[{\"name\":\"a\",\"kind\":\"device_silent\"},"
                  "{\"name\":\"a\",\"kind\":\"device_stale\"}]}",
                  "rule \"a\" (#2): field \"name\": rule #1 has the same name");
    check_refused("{\"rules\":[{\"name\":\"x\"}]}", "rule \"x\" (#1): field \"kind\": missing");
    check_refused(rule("x", "fancy", ""), "field \"kind\": \"fancy\" is not a rule kind");
    check_refused(rule("x", "device_silent", "\"window\":\"5m\""),
                  "rule \"x\" (#1): field \"window\": unknown for a device_silent rule");
    check_refused(rule("x", "device_silent", "\"severity\":3"),
                  "field \"severity\": expected a string");
    check_refused(rule("x", "device_silent", "\"severity\":\"\""),
                  "field \"severity\": must not be empty");
    check_refused(rule("x", "device_silent", "\"labels\":[]"),
                  "field \"labels\": expected an object");
    check_refused(rule("x", "device_silent", "\"labels\":{\"bad-name\":\"v\"}"),
                  "field \"labels\": \"bad-name\" is not a label name");
    check_refused(rule("x", "device_silent", "\"labels\":{\"alertname\":\"v\"}"),
                  "field \"labels.alertname\": set by the rule's name");
    check_refused(rule("x", "device_silent", "\"labels\":{\"severity\":\"v\"}"),
                  "field \"labels.severity\": set by the rule's severity");
    check_refused(rule("x", "device_silent", "\"labels\":{\"team\":1}"),
                  "field \"labels.team\": expected a string, got a number");
    check_refused(rule("x", "device_silent", "\"labels\":{\"team\":\"\"}"),
                  "field \"labels.team\": must not be empty");
    check_refused(rule("x", "device_silent", "\"labels\":{\"team\":\"a\\nb\"}"),
                  "field \"labels.team\": holds a control character");
    check_refused(rule("x", "device_silent", "\"annotations\":\"s\""),
                  "field \"annotations\": expected an object");
    check_refused(rule("x", "device_silent", "\"annotations\":{\"summary\":\"{{ $foo }}\"}"),
                  "field \"annotations.summary\": unknown placeholder \"{{ $foo }}\"");
    check_refused(rule("x", "device_silent", "\"annotations\":{\"summary\":\"{{ $value \"}"),
                  "field \"annotations.summary\": \"{{\" without a closing \"}}\"");
    check_refused(
        rule("x", "device_silent", "\"annotations\":{\"description\":\"{{ $labels.bad-name }}\"}"),
        "field \"annotations.description\": unknown placeholder");
    check_refused(rule("x", "device_silent", "\"for\":\"soon\""),
                  "field \"for\": \"soon\" is not a duration >= 0");
    check_refused(rule("x", "device_silent", "\"for\":\"-5m\""), "field \"for\"");
    check_refused(rule("x", "device_silent", "\"for\":300"),
                  "field \"for\": expected a string, got a number");
    check_refused(rule("x", "device_silent", "\"matchers\":\"site=lab\""),
                  "field \"matchers\": expected an array");
    check_refused(rule("x", "device_silent", "\"matchers\":[\"site\"]"),
                  "field \"matchers\": \"site\" is not a label matcher");
    check_refused(rule("x", "device_silent", "\"matchers\":[3]"),
                  "field \"matchers\": item 1: expected a string");
    check_refused(rule("x", "device_silent", "\"matchers\":[\"site=~(\"]"),
                  "field \"matchers\": bad regex \"(\"");
    check_refused(rule("x", "device_silent", "\"matchers\":[\"site=~(a)\\\\1\"]"),
                  "field \"matchers\"", "back-references");
}

static void test_threshold_fields(void)
{
    check_refused(rule("t", "threshold", "\"window\":\"5m\",\"op\":\">\",\"value\":1"),
                  "rule \"t\" (#1): field \"metric\": missing");
    check_refused(rule("t", "threshold",
                       "\"metric\":\"temp-c\",\"window\":\"5m\",\"op\":\">\","
                       "\"value\":1"),
                  "field \"metric\": \"temp-c\" is not a metric name");
    check_refused(rule("t", "threshold", "\"metric\":\"m\",\"op\":\">\",\"value\":1"),
                  "field \"window\": missing");
    check_refused(rule("t", "threshold",
                       "\"metric\":\"m\",\"window\":\"0s\",\"op\":\">\","
                       "\"value\":1"),
                  "field \"window\": \"0s\" is not a duration > 0");
    check_refused(
        rule("t", "threshold", "\"metric\":\"m\",\"window\":\"32d\",\"op\":\">\",\"value\":1"),
        "field \"window\": longer than 31 days");
    check_refused(rule("t", "threshold", "\"metric\":\"m\",\"window\":\"5m\",\"value\":1"),
                  "field \"op\": missing");
    check_refused(rule("t", "threshold",
                       "\"metric\":\"m\",\"window\":\"5m\",\"op\":\"=>\","
                       "\"value\":1"),
                  "field \"op\": \"=>\" is not one of");
    check_refused(rule("t", "threshold", "\"metric\":\"m\",\"window\":\"5m\",\"op\":\">\""),
                  "field \"value\": missing");
    check_refused(rule("t", "threshold",
                       "\"metric\":\"m\",\"window\":\"5m\",\"op\":\">\","
                       "\"value\":\"85\""),
                  "field \"value\": expected a number, got a string");
    check_refused(rule("t", "threshold", TH_BASE ",\"agg\":\"median\""),
                  "field \"agg\": \"median\" is not an aggregation");
    check_refused(rule("t", "threshold", TH_BASE ",\"agg\":\"p100\""), "field \"agg\"");
    check_refused(rule("t", "threshold", TH_BASE ",\"agg\":\"p9x\""), "field \"agg\"");
    check_refused(rule("t", "threshold", TH_BASE ",\"by\":\"device\""),
                  "field \"by\": expected an array of label names");
    check_refused(rule("t", "threshold", TH_BASE ",\"by\":[\"device\",\"device\"]"),
                  "field \"by\": \"device\" is named twice");
    check_refused(rule("t", "threshold", TH_BASE ",\"by\":[\"__name__\"]"),
                  "field \"by\": \"__name__\" is not a label name");
    check_refused(rule("t", "threshold", TH_BASE ",\"fraction\":0.5"),
                  "field \"fraction\": unknown for a threshold rule");
}

static void test_cohort_fields(void)
{
    check_refused(rule("c", "below_cohort",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"fraction\":0.5"),
                  "rule \"c\" (#1): field \"cohort\": missing");
    check_refused(rule("c", "below_cohort",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"cohort\":[],\"fraction\":0.5"),
                  "field \"cohort\": must name at least one label");
    check_refused(rule("c", "below_cohort",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"cohort\":[\"device\"],\"fraction\":0.5"),
                  "field \"cohort\": \"device\" cannot be a cohort label");
    check_refused(rule("c", "below_cohort",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"cohort\":[\"model\"]"),
                  "field \"fraction\": missing");
    check_refused(rule("c", "below_cohort",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"cohort\":[\"model\"],\"fraction\":1"),
                  "field \"fraction\": must be between 0 and 1");
    check_refused(rule("c", "below_cohort", BC_BASE ",\"min_devices\":1"),
                  "field \"min_devices\": expected an integer from 2");
    check_refused(rule("c", "below_cohort", BC_BASE ",\"min_devices\":2.5"),
                  "field \"min_devices\"");

    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"a\":\"v1\",\"b\":\"v2\",\"min_change\":0.1"),
                  "rule \"r\" (#1): field \"by\": missing");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":[\"model_version\"],\"a\":\"v1\","
                       "\"b\":\"v2\",\"min_change\":0.1"),
                  "field \"by\": expected a string, got an array");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"device\",\"a\":\"v1\",\"b\":\"v2\","
                       "\"min_change\":0.1"),
                  "field \"by\": \"device\" is not a label name that splits");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"model_version\",\"b\":\"v2\","
                       "\"min_change\":0.1"),
                  "field \"a\": missing");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"model_version\",\"a\":\"v1\","
                       "\"min_change\":0.1"),
                  "field \"b\": missing");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"model_version\",\"a\":\"v1\","
                       "\"b\":\"v1\",\"min_change\":0.1"),
                  "field \"b\": must differ from \"a\"");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"worse\":\"slower\""),
                  "field \"worse\": \"slower\" is neither \"lower\" nor \"higher\"");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"model_version\",\"a\":\"v1\","
                       "\"b\":\"v2\""),
                  "field \"min_change\": missing");
    check_refused(rule("r", "cohort_regression",
                       "\"metric\":\"tps\",\"window\":\"15m\","
                       "\"by\":\"model_version\",\"a\":\"v1\","
                       "\"b\":\"v2\",\"min_change\":-0.1"),
                  "field \"min_change\": must be a fraction >= 0");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"alpha\":0"),
                  "field \"alpha\": must be between 0 and 1");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"alpha\":1.5"), "field \"alpha\"");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"min_devices\":0"),
                  "field \"min_devices\"");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"strata\":\"model\""),
                  "field \"strata\": expected an array of label names");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"strata\":[\"device\"]"),
                  "field \"strata\": \"device\" cannot be a stratum (it makes strata of one");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"strata\":[\"model_version\"]"),
                  "field \"strata\": \"model_version\" cannot be a stratum (it splits the "
                  "cohorts)");
    check_refused(rule("r", "cohort_regression", CR_BASE ",\"cohort\":[\"x\"]"),
                  "field \"cohort\": unknown for a cohort_regression rule");
}

/* A file with one rule of each kind, every optional field given somewhere. */
static const char good[] =
    "{\"rules\":[\n"
    " {\"name\":\"DeviceSilent\",\"kind\":\"device_silent\",\"severity\":\"critical\",\n"
    "  \"matchers\":[\"site=lab\",\"device=~edge-.*\"],\"for\":\"0s\",\n"
    "  \"labels\":{\"team\":\"edge\"},\n"
    "  \"annotations\":{\"summary\":\"{{ $labels.device }} silent for {{$value}} s\"}},\n"
    " {\"name\":\"stale\",\"kind\":\"device_stale\"},\n"
    " {\"name\":\"HotDevice\",\"kind\":\"threshold\",\"metric\":\"temperature_celsius\",\n"
    "  \"matchers\":[\"zone!=thermal_zone9\"],\"agg\":\"p99.9\",\"window\":\"5m\",\"op\":\">=\",\n"
    "  \"value\":85,\"for\":\"2m\",\"by\":[\"device\",\"zone\"]},\n"
    " {\"name\":\"Slow\",\"kind\":\"below_cohort\",\"metric\":\"tps\",\"agg\":\"max\",\n"
    "  \"window\":\"15m\",\"cohort\":[\"model\",\"hw\"],\"fraction\":0.5,\"min_devices\":4},\n"
    " {\"name\":\"Canary\",\"kind\":\"cohort_regression\",\"metric\":\"ttft\",\"window\":\"1h\",\n"
    "  \"by\":\"model_version\",\"a\":\"v1\",\"b\":\"v2\",\"worse\":\"higher\",\n"
    "  \"min_change\":0.1,\"alpha\":0.05,\"min_devices\":8,\"strata\":[\"model\",\"hw\"]}\n"
    "]}\n";

static void test_good_file(void)
{
    struct fp_ruleset *rs = NULL;
    const struct fp_rule *r;
    char err[512] = "";

    check_int(parse(good, &rs, err, sizeof(err)), 0);
    fp_assert(rs != NULL);
    check_int(rs->n_rules, 5);

    r = fp_ruleset_find(rs, "DeviceSilent");
    fp_assert(r != NULL);
    check_int(r->kind, FP_RULE_DEVICE_SILENT);
    check_str(r->severity, "critical");
    check_int(r->for_ms, 0);
    check_int(r->n_matchers, 2);
    check_str(r->matchers[0].name, "site");
    check_str(r->matchers[0].value, "lab");
    check_int(r->matchers[0].op, FP_MATCH_EQ);
    check_str(r->matchers[1].name, "device");
    check_str(r->matchers[1].value, "edge-.*");
    check_int(r->matchers[1].op, FP_MATCH_RE);
    check_int(r->n_labels, 1);
    check_str(r->labels[0].name, "team");
    check_str(r->labels[0].value, "edge");
    check_int(r->n_annotations, 1);
    check_str(r->annotations[0].name, "summary");

    r = fp_ruleset_find(rs, "stale");
    fp_assert(r != NULL);
    check_int(r->kind, FP_RULE_DEVICE_STALE);
    check_str(r->severity, "warning");
    check_int(r->n_matchers, 0);
    check(r->metric == NULL);

    r = fp_ruleset_find(rs, "HotDevice");
    fp_assert(r != NULL);
    check_int(r->kind, FP_RULE_THRESHOLD);
    check_str(r->metric, "temperature_celsius");
    check_int(r->matchers[0].op, FP_MATCH_NE);
    check_int(r->agg, FP_AGG_QUANTILE);
    check_near(r->q, 0.999, 1e-12);
    check_str(r->agg_name, "p99.9");
    check_int(r->window_ms, 300000);
    check_int(r->op, FP_RULE_GE);
    check_double(r->threshold, 85);
    check_int(r->for_ms, 120000);
    check_int(r->n_by, 2);
    check_str(r->by[0], "device");
    check_str(r->by[1], "zone");

    r = fp_ruleset_find(rs, "Slow");
    fp_assert(r != NULL);
    check_int(r->kind, FP_RULE_BELOW_COHORT);
    check_int(r->agg, FP_AGG_MAX);
    check_int(r->n_by, 2);
    check_str(r->by[1], "hw");
    check_double(r->fraction, 0.5);
    check_int(r->min_devices, 4);

    r = fp_ruleset_find(rs, "Canary");
    fp_assert(r != NULL);
    check_int(r->kind, FP_RULE_COHORT_REGRESSION);
    check_int(r->agg, FP_AGG_AVG);
    check_str(r->agg_name, "avg");
    check_int(r->window_ms, 3600000);
    check_str(r->label, "model_version");
    check_str(r->a, "v1");
    check_str(r->b, "v2");
    check(r->higher_is_worse);
    check_double(r->min_change, 0.1);
    check_double(r->alpha, 0.05);
    check_int(r->min_devices, 8);
    check_int(r->n_by, 2);
    check_str(r->by[0], "model");
    check_str(r->by[1], "hw");

    check(fp_ruleset_find(rs, "nope") == NULL);
    check_str(fp_rule_kind_name(FP_RULE_BELOW_COHORT), "below_cohort");
    fp_ruleset_destroy(&rs);
    check(rs == NULL);
    fp_ruleset_destroy(&rs);

    /* Defaults of the regression rule: worse lower, alpha 0.01, 3 devices. */
    check_int(parse(rule("r", "cohort_regression", CR_BASE), &rs, err, sizeof(err)), 0);
    fp_assert(rs != NULL);
    check(!rs->rules[0].higher_is_worse);
    check_int(rs->rules[0].n_by, 0);
    check_double(rs->rules[0].alpha, 0.01);
    check_int(rs->rules[0].min_devices, 3);
    fp_ruleset_destroy(&rs);

    /* An empty list is a valid file: no rules, nothing fires. */
    check_int(parse("{\"rules\":[]}", &rs, err, sizeof(err)), 0);
    fp_assert(rs != NULL);
    check_int(rs->n_rules, 0);
    fp_ruleset_destroy(&rs);
}

static void test_load(void)
{
    char dir[] = "/tmp/fp-rules-XXXXXX", path[256], err[512];
    struct fp_ruleset *rs = NULL;
    FILE *f;

    fp_assert(mkdtemp(dir) != NULL);
    (void)snprintf(path, sizeof(path), "%s/rules.json", dir);
    check_int(fp_ruleset_load(path, &rs, err, sizeof(err)), -ENOENT);
    check(strstr(err, path) != NULL);
    check_int(fp_ruleset_load(dir, &rs, err, sizeof(err)), -EINVAL);
    check(strstr(err, "not a regular file") != NULL);

    f = fopen(path, "w");
    fp_assert(f != NULL);
    fputs(good, f);
    fclose(f);
    check_int(fp_ruleset_load(path, &rs, err, sizeof(err)), 0);
    fp_assert(rs != NULL);
    check_int(rs->n_rules, 5);
    check_str(rs->path, path);
    fp_ruleset_destroy(&rs);

    /* Errors name the path the file was loaded from. */
    f = fopen(path, "w");
    fp_assert(f != NULL);
    fputs("{\"rules\":[{\"name\":\"x\",\"kind\":\"threshold\"}]}", f);
    fclose(f);
    check_int(fp_ruleset_load(path, &rs, err, sizeof(err)), -EINVAL);
    check(strncmp(err, path, strlen(path)) == 0);
    check(strstr(err, "rule \"x\" (#1): field \"metric\": missing") != NULL);

    (void)unlink(path);
    (void)rmdir(dir);
}

/* The stock rules file the quick start uses must stay valid. */
static void test_stock_file(void)
{
    struct fp_ruleset *rs = NULL;
    char err[512] = "";

    check_int(fp_ruleset_load(FP_FIXTURES_DIR "/../../deploy/rules.json", &rs, err, sizeof(err)),
              0);
    if (err[0] != '\0')
        FP_TEST_FAIL("deploy/rules.json: %s", err);
    fp_assert(rs != NULL);
    check(fp_ruleset_find(rs, "DeviceSilent") != NULL &&
          fp_ruleset_find(rs, "DeviceSilent")->kind == FP_RULE_DEVICE_SILENT);
    check(fp_ruleset_find(rs, "CanaryTokensPerSecondRegression") != NULL &&
          fp_ruleset_find(rs, "CanaryTokensPerSecondRegression")->kind ==
              FP_RULE_COHORT_REGRESSION);
    fp_ruleset_destroy(&rs);
}

static void test_render(void)
{
    const struct fp_label labels[] = {{"alertname", "Slow"}, {"device", "edge-07"}};
    const char *names[] = {"p_value", "cohort_median"};
    const double values[] = {0.0032, 41.5};
    char *s;

    s = fp_rule_render("{{ $labels.device }} at {{$value}} ({{ $labels.missing }}|"
                       "{{ $values.p_value }}|{{ $values.cohort_median }}|{{ $values.none }})",
                       labels, 2, 0.123456789, names, values, 2);
    check_str(s, "edge-07 at 0.123457 (|0.0032|41.5|)");
    free(s);
    /* Large values print whole, not as 6.3082e+07. */
    s = fp_rule_render("{{ $value }} s", NULL, 0, 63082009.778, NULL, NULL, 0);
    check_str(s, "63082010 s");
    free(s);
    s = fp_rule_render("no placeholders {", labels, 2, 1, NULL, NULL, 0);
    check_str(s, "no placeholders {");
    free(s);
    s = fp_rule_render("", NULL, 0, 1, NULL, NULL, 0);
    check_str(s, "");
    free(s);
}

int main(void)
{
    test_document();
    test_common_fields();
    test_threshold_fields();
    test_cohort_fields();
    test_good_file();
    test_load();
    test_stock_file();
    test_render();
    fp_test_end();
}
