/* Unit tests for the probe's system samplers (probe/sources/): every sampler against the fixture
 * trees of tests/fixtures/ (values listed in its README.md), an absent tree, and live rewrites. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sampler.h"
#include "sources-internal.h"
#include "test.h"

#define TS_MS INT64_C(1718000000123)

/* --- a capturing emitter -------------------------------------------------------------------- */

struct rec {
    char metric[64];
    enum fp_metric_type type;
    char labels[256]; /**< "name=value,name=value" in emitted order */
    int64_t ts_ms;
    double value;
};

struct capture {
    struct rec recs[64];
    size_t n;
};

static int capture_sample(void *userdata, const char *metric, enum fp_metric_type type,
                          const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                          double value)
{
    struct capture *c = userdata;
    struct rec *r;
    size_t off = 0;

    fp_assert(c->n < sizeof(c->recs) / sizeof(c->recs[0]));
    r = &c->recs[c->n++];
    fp_assert(strlen(metric) < sizeof(r->metric));
    strcpy(r->metric, metric);
    r->type = type;
    r->labels[0] = '\0';
    for (size_t i = 0; i < n_labels; i++) {
        int n = snprintf(r->labels + off, sizeof(r->labels) - off, "%s%s=%s", i ? "," : "",
                         labels[i].name, labels[i].value);

        fp_assert(n > 0 && (size_t)n < sizeof(r->labels) - off);
        off += (size_t)n;
    }
    r->ts_ms = ts_ms;
    r->value = value;
    return 0;
}

static int capture_event(void *userdata, int64_t ts_ms, enum fp_severity severity,
                         const char *kind, const char *message, const struct fp_label *attrs,
                         size_t n_attrs)
{
    return 0;
}

static void capture_init(struct capture *c, struct fp_emitter *e)
{
    memset(c, 0, sizeof(*c));
    *e = (struct fp_emitter){
        .sample = capture_sample,
        .event = capture_event,
        .userdata = c,
        .ts_ms = TS_MS,
    };
}

/* The one sample with this metric and label string, or NULL when there are none or several. */
static const struct rec *find(const struct capture *c, const char *metric, const char *labels)
{
    const struct rec *found = NULL;

    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->recs[i].metric, metric) != 0 || strcmp(c->recs[i].labels, labels) != 0)
            continue;
        if (found != NULL)
            return NULL;
        found = &c->recs[i];
    }
    return found;
}

#define expect(c, type_, metric, labels, value_)                                                   \
    do {                                                                                           \
        const struct rec *r_ = find((c), (metric), (labels));                                      \
        if (r_ == NULL) {                                                                          \
            FP_TEST_FAIL("expected one sample %s{%s}", (metric), (labels));                        \
        } else {                                                                                   \
            check_int(r_->type, (type_));                                                          \
            check_int(r_->ts_ms, TS_MS);                                                           \
            check_double(r_->value, (value_));                                                     \
        }                                                                                          \
    } while (0)

#define expect_gauge(c, metric, labels, value) expect(c, FP_METRIC_GAUGE, metric, labels, value)
#define expect_counter(c, metric, labels, value) expect(c, FP_METRIC_COUNTER, metric, labels, value)

static size_t count_metric(const struct capture *c, const char *metric)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++)
        n += strcmp(c->recs[i].metric, metric) == 0;
    return n;
}

static const struct fp_sampler_ops *sampler(const char *name)
{
    for (size_t i = 0; fp_samplers[i] != NULL; i++)
        if (strcmp(fp_samplers[i]->name, name) == 0)
            return fp_samplers[i];
    FP_TEST_FAIL("no sampler \"%s\"", name);
    exit(1);
}

/* Opens, samples once into c, closes. Returns sample's result; open must succeed. */
static int run_once(const char *name, const struct fp_sampler_env *env, struct capture *c)
{
    const struct fp_sampler_ops *ops = sampler(name);
    struct fp_emitter e;
    void *ctx = NULL;
    int r;

    capture_init(c, &e);
    r = ops->open(env, &ctx);
    if (r < 0) {
        FP_TEST_FAIL("%s: open: %s", name, strerror(-r));
        return r;
    }
    r = ops->sample(ctx, &e);
    ops->close(&ctx);
    check(ctx == NULL);
    return r;
}

/* --- temporary trees ------------------------------------------------------------------------ */

static void make_tmpdir(char *buf, size_t size)
{
    const char *tmp = getenv("TMPDIR");

    fp_assert(snprintf(buf, size, "%s/fp-sources-XXXXXX", tmp ? tmp : "/tmp") < (int)size);
    fp_assert(mkdtemp(buf) != NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_tree(const char *dir)
{
    check(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

/* Writes content to root/rel, creating the directories on the way. */
static void write_file(const char *root, const char *rel, const char *content)
{
    char path[4096];
    FILE *f;

    fp_assert(snprintf(path, sizeof(path), "%s/%s", root, rel) < (int)sizeof(path));
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        fp_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
        *p = '/';
    }
    f = fopen(path, "w");
    fp_assert(f != NULL);
    fp_assert(fputs(content, f) >= 0);
    fp_assert(fclose(f) == 0);
}

/* --- the tests ------------------------------------------------------------------------------ */

/* Every registered sampler honours the ops contract (sampler.h). */
static void test_conformance(void)
{
    size_t n = 0;

    for (size_t i = 0; fp_samplers[i] != NULL; i++, n++) {
        const struct fp_sampler_ops *ops = fp_samplers[i];
        void *ctx = NULL;

        check_int(ops->version, FP_SAMPLER_OPS_VERSION);
        fp_assert(ops->name != NULL);
        check(ops->name[0] != '\0');
        check(ops->open != NULL && ops->sample != NULL && ops->close != NULL);
        for (size_t j = 0; j < i; j++)
            check(strcmp(fp_samplers[j]->name, ops->name) != 0);
        ops->close(NULL);
        ops->close(&ctx);
        check(ctx == NULL);
    }
    /* The five system samplers always; the runtime sources are registered too. */
    check(n >= 5);
    for (const char *const *name = (const char *const[]){"memory", "pressure", "thermal", "hwmon",
                                                           "cpu", NULL};
         *name != NULL; name++)
        check(sampler(*name) != NULL);
}

/* Sources that need settings (a runtime URL, a model) stay out of the way without them. */
static bool needs_config(const char *name)
{
    return strcmp(name, "llama_server") == 0 || strcmp(name, "canary") == 0 ||
           strcmp(name, "inproc") == 0;
}

static void test_good(void)
{
    const struct fp_sampler_env env = {
        .procfs = FP_FIXTURES_DIR "/procfs",
        .sysfs = FP_FIXTURES_DIR "/sysfs",
    };
    static struct capture c;

    check_int(run_once("memory", &env, &c), 0);
    check_int(c.n, 5);
    expect_gauge(&c, "memory_total_bytes", "", 16318412.0 * 1024);
    expect_gauge(&c, "memory_available_bytes", "", 9876544.0 * 1024);
    expect_gauge(&c, "memory_cached_bytes", "", 4123456.0 * 1024);
    expect_gauge(&c, "swap_total_bytes", "", 2097148.0 * 1024);
    expect_gauge(&c, "swap_free_bytes", "", 2031612.0 * 1024);

    check_int(run_once("pressure", &env, &c), 0);
    check_int(c.n, 8);
    expect_gauge(&c, "memory_pressure_some_avg10", "", 0.12);
    expect_gauge(&c, "memory_pressure_some_avg60", "", 0.34);
    expect_gauge(&c, "memory_pressure_some_avg300", "", 1.05);
    expect_counter(&c, "memory_pressure_some_seconds_total", "", 12.345678);
    expect_gauge(&c, "memory_pressure_full_avg10", "", 0.05);
    expect_gauge(&c, "memory_pressure_full_avg60", "", 0.10);
    expect_gauge(&c, "memory_pressure_full_avg300", "", 0.42);
    expect_counter(&c, "memory_pressure_full_seconds_total", "", 2.345678);

    check_int(run_once("thermal", &env, &c), 0);
    check_int(c.n, 2);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone0,type=x86_pkg_temp",
                 51.234);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone1,type=acpitz", -5.0);

    check_int(run_once("hwmon", &env, &c), 0);
    check_int(c.n, 8);
#define CORE1 "source=hwmon,chip=coretemp,sensor=temp1,label=Package id 0"
#define CORE2 "source=hwmon,chip=coretemp,sensor=temp2"
#define NVME1 "source=hwmon,chip=nvme,sensor=temp1,label=Composite"
    expect_gauge(&c, "temperature_celsius", CORE1, 55.0);
    expect_gauge(&c, "temperature_max_celsius", CORE1, 80.0);
    expect_gauge(&c, "temperature_critical_celsius", CORE1, 100.0);
    expect_gauge(&c, "temperature_celsius", CORE2, 53.5);
    expect_gauge(&c, "temperature_critical_celsius", CORE2, 100.0);
    check(find(&c, "temperature_max_celsius", CORE2) == NULL);
    expect_gauge(&c, "temperature_celsius", NVME1, 38.85);
    expect_gauge(&c, "temperature_max_celsius", NVME1, 84.85);
    expect_gauge(&c, "temperature_critical_celsius", NVME1, 84.85);

    /* One static read: no time passed, so no utilisation yet. */
    check_int(run_once("cpu", &env, &c), 0);
    check_int(c.n, 5);
    expect_gauge(&c, "cpu_count", "", 2);
    expect_gauge(&c, "cpu_frequency_hertz", "cpu=0", 2.4e9);
    expect_gauge(&c, "cpu_frequency_max_hertz", "cpu=0", 4.8e9);
    expect_gauge(&c, "cpu_frequency_hertz", "cpu=1", 8e8);
    expect_gauge(&c, "cpu_frequency_max_hertz", "cpu=1", 4.8e9);
    check_int(count_metric(&c, "cpu_utilization_ratio"), 0);
    check_int(count_metric(&c, "cpu_core_utilization_ratio"), 0);
}

static void test_malformed(void)
{
    const struct fp_sampler_env env = {
        .procfs = FP_FIXTURES_DIR "/malformed/procfs",
        .sysfs = FP_FIXTURES_DIR "/malformed/sysfs",
    };
    static struct capture c;

    check_int(run_once("memory", &env, &c), 3);
    check_int(c.n, 2);
    expect_gauge(&c, "memory_total_bytes", "", 8000000.0 * 1024);
    expect_gauge(&c, "swap_free_bytes", "", 1024.0 * 1024);

    check_int(run_once("pressure", &env, &c), 4);
    check_int(c.n, 4);
    expect_gauge(&c, "memory_pressure_some_avg10", "", 0.5);
    expect_gauge(&c, "memory_pressure_some_avg300", "", 1.5);
    expect_counter(&c, "memory_pressure_some_seconds_total", "", 0.000099);
    expect_gauge(&c, "memory_pressure_full_avg60", "", 0.25);

    check_int(run_once("thermal", &env, &c), 4);
    check_int(c.n, 1);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone0,type=acpitz", 42.0);

    check_int(run_once("hwmon", &env, &c), 5);
    check_int(c.n, 1);
    expect_gauge(&c, "temperature_celsius", "source=hwmon,chip=k10temp,sensor=temp1,label=Tctl",
                 45.5);

    check_int(run_once("cpu", &env, &c), 5);
    check_int(c.n, 3);
    expect_gauge(&c, "cpu_count", "", 2);
    expect_gauge(&c, "cpu_frequency_hertz", "cpu=1", 1.2e9);
    expect_gauge(&c, "cpu_frequency_max_hertz", "cpu=1", 3.6e9);
}

/* A machine without any of the sources: every open says -ENOENT and leaves nothing to free. */
static void test_absent(void)
{
    char dir[256];
    const struct fp_sampler_env env = {.procfs = dir, .sysfs = dir};

    make_tmpdir(dir, sizeof(dir));
    for (size_t i = 0; fp_samplers[i] != NULL; i++) {
        void *ctx = NULL;
        int r = fp_samplers[i]->open(&env, &ctx);
        int want = needs_config(fp_samplers[i]->name) ? FP_SAMPLER_DISABLED : -ENOENT;

        if (r != want)
            FP_TEST_FAIL("%s: open returned %d, expected %d", fp_samplers[i]->name, r, want);
        check(ctx == NULL);
    }

    /* The directories alone are not a source: no zones, no temperature inputs. */
    write_file(dir, "class/thermal/cooling_device0/type", "Processor\n");
    write_file(dir, "class/hwmon/hwmon0/name", "ACAD\n");
    for (size_t i = 0; fp_samplers[i] != NULL; i++) {
        void *ctx = NULL;

        check_int(fp_samplers[i]->open(&env, &ctx),
                  needs_config(fp_samplers[i]->name) ? FP_SAMPLER_DISABLED : -ENOENT);
    }
    rm_tree(dir);
}

/* Utilisation over two and more reads of a stat file rewritten between rounds. */
static void test_cpu_reads(void)
{
    const struct fp_sampler_ops *ops = sampler("cpu");
    char dir[256], path[512], *big;
    const struct fp_sampler_env env = {.procfs = dir, .sysfs = dir};
    static struct capture c;
    struct fp_emitter e;
    void *ctx = NULL;
    size_t len;

    make_tmpdir(dir, sizeof(dir));
    big = malloc(FP_SOURCE_MAX_FILE_BYTES * 2);
    fp_assert(big != NULL);
    fp_assert(snprintf(path, sizeof(path), "%s/stat", FP_FIXTURES_DIR "/procfs") > 0);
    fp_assert(fp_source_read_file(path, big, FP_SOURCE_MAX_FILE_BYTES, &len) == 0);
    write_file(dir, "stat", big);

    check_int(ops->open(&env, &ctx), 0);
    fp_assert(ctx != NULL);

    /* +200 total, +50 idle/iowait: 0.75. cpu0: +100, +25 idle: 0.75. cpu1: +100, +75 idle: 0.25.
     * No cpufreq under this sysfs: no frequency series, and nothing counted bad. */
    write_file(dir, "stat",
               "cpu  10100 200 3050 50040 1010 100 50 0 0 0\n"
               "cpu0 5070 100 1505 25020 505 50 25 0 0 0\n"
               "cpu1 5025 100 1500 25065 510 50 25 0 0 0\n"
               "intr 1 0\n");
    capture_init(&c, &e);
    check_int(ops->sample(ctx, &e), 0);
    check_int(c.n, 4);
    expect_gauge(&c, "cpu_utilization_ratio", "", 0.75);
    expect_gauge(&c, "cpu_core_utilization_ratio", "cpu=0", 0.75);
    expect_gauge(&c, "cpu_core_utilization_ratio", "cpu=1", 0.25);
    expect_gauge(&c, "cpu_count", "", 2);
    check_int(count_metric(&c, "cpu_frequency_hertz"), 0);

    /* No time passed: no utilisation. A core counting backwards (re-plugged): none for it. */
    write_file(dir, "stat",
               "cpu  10100 200 3050 50040 1010 100 50 0 0 0\n"
               "cpu0 5070 100 1505 25020 505 50 25 0 0 0\n"
               "cpu1 10 0 10 10 0 0 0 0 0 0\n");
    capture_init(&c, &e);
    check_int(ops->sample(ctx, &e), 0);
    check_int(c.n, 1);
    expect_gauge(&c, "cpu_count", "", 2);

    /* A new core, and an interrupt line that takes /proc/stat past the read bound, as on big
     * machines: the cpu lines come first and still count. All busy: 1. Idle only: 0. cpu2 has
     * no previous reading yet. */
    len = (size_t)snprintf(big, FP_SOURCE_MAX_FILE_BYTES,
                           "cpu  10200 200 3050 50040 1010 100 50 0 0 0\n"
                           "cpu0 5070 100 1505 25120 505 50 25 0 0 0\n"
                           "cpu1 20 0 10 10 0 0 0 0 0 0\n"
                           "cpu2 1 1 1 1\n"
                           "intr 1");
    while (len < FP_SOURCE_MAX_FILE_BYTES + 1000) {
        memcpy(big + len, " 0", 3);
        len += 2;
    }
    memcpy(big + len, "\nctxt 1\n", 9);
    write_file(dir, "stat", big);
    capture_init(&c, &e);
    check_int(ops->sample(ctx, &e), 0);
    check_int(c.n, 4);
    expect_gauge(&c, "cpu_utilization_ratio", "", 1.0);
    expect_gauge(&c, "cpu_core_utilization_ratio", "cpu=0", 0.0);
    expect_gauge(&c, "cpu_core_utilization_ratio", "cpu=1", 1.0);
    expect_gauge(&c, "cpu_count", "", 3);

    /* The file vanished: the whole source failed this round. */
    fp_assert(snprintf(path, sizeof(path), "%s/stat", dir) > 0);
    fp_assert(unlink(path) == 0);
    capture_init(&c, &e);
    check_int(ops->sample(ctx, &e), -ENOENT);
    check_int(c.n, 0);

    ops->close(&ctx);
    check(ctx == NULL);
    free(big);
    rm_tree(dir);
}

/* Zones and chips that appear after open are picked up on the next round. */
static void test_hotplug(void)
{
    const struct fp_sampler_ops *thermal = sampler("thermal"), *hwmon = sampler("hwmon");
    char dir[256];
    const struct fp_sampler_env env = {.procfs = dir, .sysfs = dir};
    static struct capture c;
    struct fp_emitter e;
    void *tctx = NULL, *hctx = NULL;

    make_tmpdir(dir, sizeof(dir));
    write_file(dir, "class/thermal/thermal_zone0/temp", "30000\n");
    write_file(dir, "class/thermal/thermal_zone0/type", "acpitz\n");
    write_file(dir, "class/hwmon/hwmon0/name", "coretemp\n");
    write_file(dir, "class/hwmon/hwmon0/temp1_input", "31000\n");
    check_int(thermal->open(&env, &tctx), 0);
    check_int(hwmon->open(&env, &hctx), 0);

    /* thermal_zone10 sorts after thermal_zone2 (version order), so series keep a stable order. */
    write_file(dir, "class/thermal/thermal_zone10/temp", "  62500  \n");
    write_file(dir, "class/thermal/thermal_zone10/type", "  soc_dts1 \n");
    write_file(dir, "class/thermal/thermal_zone2/temp", "1\n");
    write_file(dir, "class/thermal/thermal_zone2/type", "acpitz\n");
    write_file(dir, "class/hwmon/hwmon1/name", "nvme\n");
    write_file(dir, "class/hwmon/hwmon1/temp1_input", "40000\n");

    capture_init(&c, &e);
    check_int(thermal->sample(tctx, &e), 0);
    check_int(c.n, 3);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone0,type=acpitz", 30.0);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone2,type=acpitz", 0.001);
    expect_gauge(&c, "temperature_celsius", "source=thermal,zone=thermal_zone10,type=soc_dts1",
                 62.5);
    if (c.n == 3)
        check_str(c.recs[2].labels, "source=thermal,zone=thermal_zone10,type=soc_dts1");

    capture_init(&c, &e);
    check_int(hwmon->sample(hctx, &e), 0);
    check_int(c.n, 2);
    expect_gauge(&c, "temperature_celsius", "source=hwmon,chip=coretemp,sensor=temp1", 31.0);
    expect_gauge(&c, "temperature_celsius", "source=hwmon,chip=nvme,sensor=temp1", 40.0);

    thermal->close(&tctx);
    hwmon->close(&hctx);
    check(tctx == NULL && hctx == NULL);
    rm_tree(dir);
}

int main(void)
{
    test_conformance();
    test_good();
    test_malformed();
    test_absent();
    test_cpu_reads();
    test_hotplug();
    fp_test_end();
}
