/* The "thermal" sampler: SYSFS/class/thermal/thermal_zone* temperatures. Edge boxes throttle
 * long before they fail, and a hot zone explains a slow device better than any runtime metric.
 * The directory is scanned every round, not cached at open: zones appear late (ACPI, modules
 * loaded after boot) and a cache would hide them until the probe restarts. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sources-internal.h"

struct thermal_ctx {
    char dir[PATH_MAX]; /**< SYSFS/class/thermal */
};

static int zone_filter(const struct dirent *d)
{
    /* Not on d_type: the real entries are symlinks into /sys/devices. */
    return fp_source_name_match(d->d_name, "thermal_zone", "");
}

static void thermal_close(void **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    free(*ctx);
    *ctx = NULL;
}

static int thermal_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct thermal_ctx *c;
    struct dirent **list = NULL;
    size_t dropped;
    int n, r;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    r = fp_source_path(c->dir, sizeof(c->dir), env->sysfs, "class/thermal");
    if (r < 0)
        goto fail;
    n = fp_source_scandir(c->dir, zone_filter, &list, &dropped);
    if (n < 0) {
        r = n == -ENOTDIR ? -ENOENT : n;
        goto fail;
    }
    fp_source_scandir_free(&list, n);
    if (n == 0) {
        r = -ENOENT;
        goto fail;
    }
    *ret_ctx = c;
    return 0;

fail:
    thermal_close((void **)&c);
    return r;
}

/* Reads one zone; returns 0, or < 0 when the zone is skipped this round. */
static int read_zone(const struct thermal_ctx *c, const char *zone, double *ret_celsius,
                     char *type, size_t type_size)
{
    char path[PATH_MAX];
    int64_t millideg;
    int r;

    r = fp_source_path(path, sizeof(path), c->dir, "%s/temp", zone);
    if (r < 0)
        return r;
    /* Some drivers answer EAGAIN or ENODATA until the sensor is ready; that is a bad value, not
     * a failed source. */
    r = fp_source_read_i64(path, &millideg);
    if (r < 0)
        return r;
    r = fp_source_path(path, sizeof(path), c->dir, "%s/type", zone);
    if (r < 0)
        return r;
    /* A zone without its type would be a different series from the same zone with it. */
    r = fp_source_read_string(path, type, type_size);
    if (r < 0)
        return r;
    /* Divide, don't multiply by 0.001: 51234 / 1000.0 is the double nearest 51.234. */
    *ret_celsius = (double)millideg / 1000.0;
    return 0;
}

static int thermal_sample(void *ctx, struct fp_emitter *out)
{
    struct thermal_ctx *c = ctx;
    struct dirent **list = NULL;
    size_t dropped;
    int n, r, bad;

    n = fp_source_scandir(c->dir, zone_filter, &list, &dropped);
    if (n < 0)
        return n;
    bad = (int)dropped;

    for (int i = 0; i < n; i++) {
        char type[FP_SOURCE_MAX_VALUE_BYTES];
        double celsius;
        const struct fp_label labels[] = {
            {"source", "thermal"},
            {"zone", list[i]->d_name},
            {"type", type},
        };

        if (read_zone(c, list[i]->d_name, &celsius, type, sizeof(type)) < 0) {
            bad++;
            continue;
        }
        r = fp_emit_gauge(out, "temperature_celsius", labels, 3, celsius);
        if (r < 0) {
            bad = r;
            break;
        }
    }
    fp_source_scandir_free(&list, n);
    return bad;
}

const struct fp_sampler_ops fp_sampler_thermal = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "thermal",
    .open = thermal_open,
    .sample = thermal_sample,
    .close = thermal_close,
};
