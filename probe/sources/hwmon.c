/* The "hwmon" sampler: SYSFS/class/hwmon/hwmon* temperature inputs, with their limits. Many
 * boards expose CPU package, NVMe and VRM temperatures only here, not as thermal zones. Chips and
 * sensors are rescanned every round, like thermal zones, since drivers load late.
 *
 * Series identity is chip + sensor (+ label when the driver names the sensor): hwmonN numbering
 * changes across boots, so it never becomes a label. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sources-internal.h"

struct hwmon_ctx {
    char dir[PATH_MAX]; /**< SYSFS/class/hwmon */
};

static int chip_filter(const struct dirent *d)
{
    /* Not on d_type: the real entries are symlinks into /sys/devices. */
    return fp_source_name_match(d->d_name, "hwmon", "");
}

static int input_filter(const struct dirent *d)
{
    return fp_source_name_match(d->d_name, "temp", "_input");
}

static void hwmon_close(void **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    free(*ctx);
    *ctx = NULL;
}

/* Counts temp*_input files over all chips, so open can tell "no temperatures here". */
static int count_inputs(const char *dir, size_t *ret_count)
{
    struct dirent **chips = NULL;
    size_t dropped, count = 0;
    int n;

    n = fp_source_scandir(dir, chip_filter, &chips, &dropped);
    if (n < 0)
        return n;
    for (int i = 0; i < n && count == 0; i++) {
        struct dirent **inputs = NULL;
        char path[PATH_MAX];
        int m;

        if (fp_source_path(path, sizeof(path), dir, "%s", chips[i]->d_name) < 0)
            continue;
        m = fp_source_scandir(path, input_filter, &inputs, &dropped);
        if (m < 0)
            continue;
        count += (size_t)m;
        fp_source_scandir_free(&inputs, m);
    }
    fp_source_scandir_free(&chips, n);
    *ret_count = count;
    return 0;
}

static int hwmon_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct hwmon_ctx *c;
    size_t inputs;
    int r;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    r = fp_source_path(c->dir, sizeof(c->dir), env->sysfs, "class/hwmon");
    if (r < 0)
        goto fail;
    r = count_inputs(c->dir, &inputs);
    if (r == -ENOTDIR || (r == 0 && inputs == 0))
        r = -ENOENT;
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    hwmon_close((void **)&c);
    return r;
}

/* Reads SYSFS/class/hwmon/<chip>/<sensor>_<attr> in millidegrees and emits it as metric.
 * Returns 0, 1 when the value was bad (counted by the caller), or the emitter's -errno. An absent
 * optional attribute is not bad: most sensors have no _crit. */
static int emit_attr(const char *chipdir, const char *sensor, const char *attr, bool optional,
                     const char *metric, const struct fp_label *labels, size_t n_labels,
                     struct fp_emitter *out)
{
    char path[PATH_MAX];
    int64_t millideg;
    int r;

    if (fp_source_path(path, sizeof(path), chipdir, "%s_%s", sensor, attr) < 0)
        return 1;
    r = fp_source_read_i64(path, &millideg);
    if (r == -ENOENT && optional)
        return 0;
    if (r < 0)
        return 1;
    /* Divide, don't multiply by the inexact 0.001: 51234 / 1000.0 is the double nearest 51.234. */
    return fp_emit_gauge(out, metric, labels, n_labels, (double)millideg / 1000.0);
}

/* Emits every sensor of one chip; returns the bad-value count or the emitter's -errno. */
static int sample_chip(const struct hwmon_ctx *c, const char *chip, struct fp_emitter *out)
{
    static const struct {
        const char *attr;
        bool optional;
        const char *metric;
    } attrs[] = {
        {"input", false, "temperature_celsius"},
        {"max", true, "temperature_max_celsius"},
        {"crit", true, "temperature_critical_celsius"},
    };
    char chipdir[PATH_MAX], path[PATH_MAX], name[FP_SOURCE_MAX_VALUE_BYTES];
    struct dirent **inputs = NULL;
    size_t dropped;
    int n, r, bad = 0;

    if (fp_source_path(chipdir, sizeof(chipdir), c->dir, "%s", chip) < 0 ||
        fp_source_path(path, sizeof(path), chipdir, "name") < 0 ||
        fp_source_read_string(path, name, sizeof(name)) < 0)
        return 1;
    n = fp_source_scandir(chipdir, input_filter, &inputs, &dropped);
    if (n < 0)
        return 1;
    bad = (int)dropped;

    for (int i = 0; i < n; i++) {
        char sensor[sizeof(inputs[i]->d_name)], label[FP_SOURCE_MAX_VALUE_BYTES];
        struct fp_label labels[] = {
            {"source", "hwmon"},
            {"chip", name},
            {"sensor", sensor},
            {"label", label},
        };
        size_t n_labels = 3;

        /* The filter guarantees the "_input" suffix. */
        strcpy(sensor, inputs[i]->d_name);
        sensor[strlen(sensor) - strlen("_input")] = '\0';

        if (fp_source_path(path, sizeof(path), chipdir, "%s_label", sensor) < 0) {
            bad++;
            continue;
        }
        r = fp_source_read_string(path, label, sizeof(label));
        if (r == 0) {
            n_labels = 4;
        } else if (r != -ENOENT) {
            /* Unlabelled, this sensor would pose as a different series: skip it whole. */
            bad++;
            continue;
        }

        for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
            r = emit_attr(chipdir, sensor, attrs[a].attr, attrs[a].optional, attrs[a].metric,
                          labels, n_labels, out);
            if (r < 0) {
                bad = r;
                goto out;
            }
            bad += r;
        }
    }

out:
    fp_source_scandir_free(&inputs, n);
    return bad;
}

static int hwmon_sample(void *ctx, struct fp_emitter *out)
{
    struct hwmon_ctx *c = ctx;
    struct dirent **chips = NULL;
    size_t dropped;
    int n, r, bad;

    n = fp_source_scandir(c->dir, chip_filter, &chips, &dropped);
    if (n < 0)
        return n;
    bad = (int)dropped;
    for (int i = 0; i < n; i++) {
        r = sample_chip(c, chips[i]->d_name, out);
        if (r < 0) {
            bad = r;
            break;
        }
        bad += r;
    }
    fp_source_scandir_free(&chips, n);
    return bad;
}

const struct fp_sampler_ops fp_sampler_hwmon = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "hwmon",
    .open = hwmon_open,
    .sample = hwmon_sample,
    .close = hwmon_close,
};
