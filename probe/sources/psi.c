/* The "pressure" sampler: memory pressure stall information from PROCFS/pressure/memory, the
 * earliest sign that a model no longer fits: tasks stall on reclaim well before the OOM killer.
 * The avg* values are the kernel's percentages, passed on exactly as written (strtod of "0.12"
 * is the double nearest 0.12, as the literal is); total is cumulative microseconds, sent as a
 * seconds counter so rate() gives the stalled share of wall time. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "sources-internal.h"

/* Lines of the file, in the order their metrics are emitted. */
static const char *const kinds[] = {"some", "full"};
#define N_KINDS 2

/* Keys of one line; the last is the cumulative total. */
static const char *const keys[] = {"avg10", "avg60", "avg300", "total"};
#define N_KEYS 4
#define KEY_TOTAL 3

static const char *const metrics[N_KINDS][N_KEYS] = {
    {"memory_pressure_some_avg10", "memory_pressure_some_avg60", "memory_pressure_some_avg300",
     "memory_pressure_some_seconds_total"},
    {"memory_pressure_full_avg10", "memory_pressure_full_avg60", "memory_pressure_full_avg300",
     "memory_pressure_full_seconds_total"},
};

struct psi_ctx {
    char path[PATH_MAX];
    /* The file is two short lines; 4 KiB is room for any future keys. */
    char buf[4096];
};

static void psi_close(void **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    free(*ctx);
    *ctx = NULL;
}

static int psi_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct psi_ctx *c;
    size_t len;
    int r;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    r = fp_source_path(c->path, sizeof(c->path), env->procfs, "pressure/memory");
    if (r < 0)
        goto fail;
    /* Kernels without CONFIG_PSI (or booted psi=0) have no file: -ENOENT skips the source. */
    r = fp_source_read_file(c->path, c->buf, sizeof(c->buf), &len);
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    psi_close((void **)&c);
    return r;
}

static int parse_value(size_t key, const char *text, double *ret)
{
    uint64_t usec;
    int r;

    if (key != KEY_TOTAL)
        return fp_parse_double(text, ret);
    r = fp_parse_u64(text, &usec);
    if (r < 0)
        return r;
    *ret = (double)usec / 1e6;
    return 0;
}

/* What one round read; zero-initialised. */
struct psi_read {
    bool seen[N_KINDS];          /**< the line was found */
    bool tried[N_KINDS][N_KEYS]; /**< the key was found (the first one counts) */
    bool ok[N_KINDS][N_KEYS];    /**< ... and parsed */
    double value[N_KINDS][N_KEYS];
};

/* Parses "some avg10=0.12 avg60=0.34 avg300=1.05 total=12345678" into rd. */
static void parse_line(char *line, struct psi_read *rd)
{
    char *f[N_KEYS + 2];
    size_t n, kind;

    n = fp_source_split(line, f, N_KEYS + 2);
    if (n == 0)
        return;
    if (n > N_KEYS + 2)
        n = N_KEYS + 2;
    for (kind = 0; kind < N_KINDS; kind++)
        if (strcmp(f[0], kinds[kind]) == 0)
            break;
    if (kind == N_KINDS || rd->seen[kind])
        return;
    rd->seen[kind] = true;

    for (size_t i = 1; i < n; i++) {
        char *eq = strchr(f[i], '=');

        if (eq == NULL)
            continue;
        *eq = '\0';
        for (size_t k = 0; k < N_KEYS; k++) {
            if (strcmp(f[i], keys[k]) != 0 || rd->tried[kind][k])
                continue;
            rd->tried[kind][k] = true;
            rd->ok[kind][k] = parse_value(k, eq + 1, &rd->value[kind][k]) == 0;
            break;
        }
    }
}

static int psi_sample(void *ctx, struct fp_emitter *out)
{
    struct psi_ctx *c = ctx;
    struct psi_read rd = {0};
    char *cursor, *line;
    size_t len;
    int r, bad = 0;

    r = fp_source_read_file(c->path, c->buf, sizeof(c->buf), &len);
    if (r < 0)
        return r;

    cursor = c->buf;
    while ((line = fp_source_next_line(&cursor)) != NULL)
        parse_line(line, &rd);

    for (size_t kind = 0; kind < N_KINDS; kind++) {
        for (size_t k = 0; k < N_KEYS; k++) {
            if (!rd.ok[kind][k]) {
                bad++;
                continue;
            }
            if (k == KEY_TOTAL)
                r = fp_emit_counter(out, metrics[kind][k], NULL, 0, rd.value[kind][k]);
            else
                r = fp_emit_gauge(out, metrics[kind][k], NULL, 0, rd.value[kind][k]);
            if (r < 0)
                return r;
        }
    }
    return bad;
}

const struct fp_sampler_ops fp_sampler_pressure = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "pressure",
    .open = psi_open,
    .sample = psi_sample,
    .close = psi_close,
};
