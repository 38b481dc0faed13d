/* The "cpu" sampler: utilisation from PROCFS/stat (whole machine and per core) and per-core
 * frequency from SYSFS cpufreq. Prompt processing on edge boxes is CPU-bound, and a core pinned
 * at a low frequency (thermal or power capping) explains a token rate drop that utilisation alone
 * does not.
 *
 * Utilisation is 1 - (idle + iowait) / total over the interval since the previous read; open
 * takes the first read so the first round already has one. The guest columns are left out of
 * the total: the kernel already counts guest time inside user and nice. Cores are identified by
 * the N of their "cpuN" line, so offline cores simply drop out and come back. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "sources-internal.h"

/* Linux's largest NR_CPUS; a bigger index is a malformed line, not a reason to allocate. */
#define CPU_MAX_CORES 8192

/* user nice system idle iowait irq softirq steal: older kernels stop after idle. */
#define CPU_MIN_FIELDS 4
#define CPU_MAX_FIELDS 8
#define CPU_FIELD_IDLE 3
#define CPU_FIELD_IOWAIT 4

struct cpu_times {
    uint64_t total; /**< jiffies (USER_HZ) over the used columns */
    uint64_t idle;  /**< jiffies idle + iowait */
    bool valid;     /**< set once a reading was stored */
};

struct cpu_ctx {
    char stat_path[PATH_MAX];
    const char *sysfs;       /**< borrowed from the env, lives as long as the sampler */
    char *buf;               /**< FP_SOURCE_MAX_FILE_BYTES, reused every round */
    struct cpu_times all;    /**< the "cpu " line */
    struct cpu_times *cores; /**< indexed by N of "cpuN" */
    size_t n_cores;          /**< entries allocated in cores */
};

static void cpu_close(void **ctx)
{
    struct cpu_ctx *c;

    if (ctx == NULL || *ctx == NULL)
        return;
    c = *ctx;
    free(c->cores);
    free(c->buf);
    free(c);
    *ctx = NULL;
}

/* The fields after "cpu"/"cpuN" -> *ret. Returns 0 or -EINVAL / -ERANGE. */
static int parse_times(char **f, size_t n, struct cpu_times *ret)
{
    uint64_t total = 0, idle = 0;

    if (n < CPU_MIN_FIELDS)
        return -EINVAL;
    if (n > CPU_MAX_FIELDS)
        n = CPU_MAX_FIELDS;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        int r = fp_parse_u64(f[i], &v);

        if (r < 0)
            return r;
        if (v > UINT64_MAX - total)
            return -ERANGE;
        total += v;
        if (i == CPU_FIELD_IDLE || i == CPU_FIELD_IOWAIT)
            idle += v;
    }
    ret->total = total;
    ret->idle = idle;
    ret->valid = true;
    return 0;
}

/* Stores now as the new reading and, when there is an interval to measure, emits the
 * utilisation over it. Returns 0 or the emitter's -errno. */
static int update(struct cpu_times *prev, const struct cpu_times *now, struct fp_emitter *out,
                  const char *metric, const struct fp_label *labels, size_t n_labels)
{
    struct cpu_times p = *prev;
    uint64_t dt, di;

    *prev = *now;
    /* No interval yet, no time passed, or counters went back (a core re-plugged): wait. */
    if (out == NULL || !p.valid || now->total <= p.total)
        return 0;
    dt = now->total - p.total;
    /* iowait may go backwards on some kernels; clamp rather than emit a ratio outside 0..1. */
    di = now->idle >= p.idle ? now->idle - p.idle : 0;
    if (di > dt)
        di = dt;
    return fp_emit_gauge(out, metric, labels, n_labels, 1.0 - (double)di / (double)dt);
}

static struct cpu_times *core_slot(struct cpu_ctx *c, size_t index)
{
    if (index >= c->n_cores) {
        size_t n = c->n_cores * 2 > index ? c->n_cores * 2 : index + 1;
        struct cpu_times *p;

        if (n > CPU_MAX_CORES)
            n = CPU_MAX_CORES;
        p = realloc(c->cores, n * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + c->n_cores, 0, (n - c->n_cores) * sizeof(*p));
        c->cores = p;
        c->n_cores = n;
    }
    return &c->cores[index];
}

/* Emits cpu_frequency_hertz / cpu_frequency_max_hertz for one core. Returns the bad-value
 * count or the emitter's -errno. No cpufreq directory (VMs, containers) is not bad. */
static int emit_freq(const struct cpu_ctx *c, unsigned core, const struct fp_label *labels,
                     struct fp_emitter *out)
{
    static const struct {
        const char *file;
        const char *metric;
    } files[] = {
        {"scaling_cur_freq", "cpu_frequency_hertz"},
        {"cpuinfo_max_freq", "cpu_frequency_max_hertz"},
    };
    int bad = 0;

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[PATH_MAX];
        uint64_t khz;
        int r;

        if (fp_source_path(path, sizeof(path), c->sysfs, "devices/system/cpu/cpu%u/cpufreq/%s",
                           core, files[i].file) < 0) {
            bad++;
            continue;
        }
        r = fp_source_read_u64(path, &khz);
        if (r == -ENOENT)
            continue;
        if (r < 0 || khz > UINT64_MAX / 1000) {
            bad++;
            continue;
        }
        r = fp_emit_gauge(out, files[i].metric, labels, 1, (double)(khz * 1000));
        if (r < 0)
            return r;
    }
    return bad;
}

/* Parses one "cpuN ..." line (f[0] is "cpuN"): the core's utilisation and, when emitting, its
 * frequency. Returns the bad-value count or -errno. *ret_counted is set when it was a core line. */
static int sample_core(struct cpu_ctx *c, char **f, size_t n, struct fp_emitter *out,
                       bool *ret_counted)
{
    const char *digits = f[0] + strlen("cpu");
    struct cpu_times now, *slot;
    struct fp_label label;
    char name[24];
    uint64_t index;
    int r, bad = 0;

    *ret_counted = false;
    if (!isdigit((unsigned char)digits[0]) || fp_parse_u64(digits, &index) < 0 ||
        index >= CPU_MAX_CORES)
        return 1;
    *ret_counted = true;
    (void)snprintf(name, sizeof(name), "%u", (unsigned)index);
    label = (struct fp_label){"cpu", name};

    if (parse_times(f + 1, n - 1, &now) < 0) {
        bad++;
    } else {
        slot = core_slot(c, (size_t)index);
        if (slot == NULL)
            return -ENOMEM;
        r = update(slot, &now, out, "cpu_core_utilization_ratio", &label, 1);
        if (r < 0)
            return r;
    }
    if (out == NULL)
        return bad;
    r = emit_freq(c, (unsigned)index, &label, out);
    return r < 0 ? r : bad + r;
}

/* Reads PROCFS/stat and updates the stored readings; emits when out is non-NULL (open passes
 * NULL to take the first reading). Returns the bad-value count or -errno. */
static int read_stat(struct cpu_ctx *c, struct fp_emitter *out)
{
    /* "cpuN" + CPU_MAX_FIELDS + guest, guest_nice: more are ignored. */
    char *f[CPU_MAX_FIELDS + 3], *cursor, *line;
    bool seen_all = false;
    unsigned cpus = 0;
    size_t len, n;
    int r, bad = 0;

    r = fp_source_read_file(c->stat_path, c->buf, FP_SOURCE_MAX_FILE_BYTES, &len);
    if (r < 0)
        return r;

    cursor = c->buf;
    while ((line = fp_source_next_line(&cursor)) != NULL) {
        if (strncmp(line, "cpu", 3) != 0)
            continue;
        n = fp_source_split(line, f, CPU_MAX_FIELDS + 3);
        if (n > CPU_MAX_FIELDS + 3)
            n = CPU_MAX_FIELDS + 3;
        if (strcmp(f[0], "cpu") == 0) {
            struct cpu_times now;

            if (seen_all)
                continue;
            seen_all = true;
            if (parse_times(f + 1, n - 1, &now) < 0) {
                bad++;
                continue;
            }
            r = update(&c->all, &now, out, "cpu_utilization_ratio", NULL, 0);
        } else {
            bool counted;

            r = sample_core(c, f, n, out, &counted);
            if (counted)
                cpus++;
        }
        if (r < 0)
            return r;
        bad += r;
    }
    if (!seen_all)
        bad++;
    if (out != NULL && cpus > 0) {
        r = fp_emit_gauge(out, "cpu_count", NULL, 0, cpus);
        if (r < 0)
            return r;
    }
    return bad;
}

static int cpu_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct cpu_ctx *c;
    int r;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->sysfs = env->sysfs;
    r = fp_source_path(c->stat_path, sizeof(c->stat_path), env->procfs, "stat");
    if (r < 0)
        goto fail;
    c->buf = malloc(FP_SOURCE_MAX_FILE_BYTES);
    if (c->buf == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    /* The first reading; bad lines are counted by the rounds that follow. */
    r = read_stat(c, NULL);
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    cpu_close((void **)&c);
    return r;
}

static int cpu_sample(void *ctx, struct fp_emitter *out)
{
    return read_stat(ctx, out);
}

const struct fp_sampler_ops fp_sampler_cpu = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "cpu",
    .open = cpu_open,
    .sample = cpu_sample,
    .close = cpu_close,
};
