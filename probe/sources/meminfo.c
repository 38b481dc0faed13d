/* The "memory" sampler: totals from PROCFS/meminfo, the numbers an SRE checks first when a model
 * is OOM-killed or starts swapping. The file is re-read whole each round (it is ~1.5 KiB); each
 * wanted key is looked up by name, never by line number, since kernels add and reorder keys. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "sources-internal.h"

static const struct {
    const char *key;    /**< meminfo key, without the colon */
    const char *metric; /**< gauge it becomes, in bytes */
} fields[] = {
    {"MemTotal", "memory_total_bytes"},   {"MemAvailable", "memory_available_bytes"},
    {"Cached", "memory_cached_bytes"},    {"SwapTotal", "swap_total_bytes"},
    {"SwapFree", "swap_free_bytes"},
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

struct meminfo_ctx {
    char path[PATH_MAX];
    char *buf; /**< FP_SOURCE_MAX_FILE_BYTES, reused every round */
};

static void meminfo_close(void **ctx)
{
    struct meminfo_ctx *c;

    if (ctx == NULL || *ctx == NULL)
        return;
    c = *ctx;
    free(c->buf);
    free(c);
    *ctx = NULL;
}

static int meminfo_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct meminfo_ctx *c;
    size_t len;
    int r;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    r = fp_source_path(c->path, sizeof(c->path), env->procfs, "meminfo");
    if (r < 0)
        goto fail;
    c->buf = malloc(FP_SOURCE_MAX_FILE_BYTES);
    if (c->buf == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    /* Read once so a machine without the file is told apart from one with a bad round. */
    r = fp_source_read_file(c->path, c->buf, FP_SOURCE_MAX_FILE_BYTES, &len);
    if (r < 0)
        goto fail;
    *ret_ctx = c;
    return 0;

fail:
    meminfo_close((void **)&c);
    return r;
}

/* "  16318412 kB" -> bytes. Values without a unit are refused: every key we read is in kB. */
static int parse_kb(char *text, uint64_t *ret_bytes)
{
    char *f[3];
    uint64_t kb;
    int r;

    if (fp_source_split(text, f, 2) != 2 || strcmp(f[1], "kB") != 0)
        return -EINVAL;
    r = fp_parse_u64(f[0], &kb);
    if (r < 0)
        return r;
    if (kb > UINT64_MAX / 1024)
        return -ERANGE;
    *ret_bytes = kb * 1024;
    return 0;
}

static int meminfo_sample(void *ctx, struct fp_emitter *out)
{
    struct meminfo_ctx *c = ctx;
    uint64_t bytes[N_FIELDS];
    bool seen[N_FIELDS] = {false}, ok[N_FIELDS] = {false};
    char *cursor, *line;
    size_t len;
    int r, bad = 0;

    r = fp_source_read_file(c->path, c->buf, FP_SOURCE_MAX_FILE_BYTES, &len);
    if (r < 0)
        return r;

    cursor = c->buf;
    while ((line = fp_source_next_line(&cursor)) != NULL) {
        char *colon = strchr(line, ':');

        if (colon == NULL)
            continue;
        *colon = '\0';
        for (size_t i = 0; i < N_FIELDS; i++) {
            /* The first line with a key wins; a later duplicate is not the kernel's. */
            if (seen[i] || strcmp(line, fields[i].key) != 0)
                continue;
            seen[i] = true;
            ok[i] = parse_kb(colon + 1, &bytes[i]) == 0;
            break;
        }
    }

    for (size_t i = 0; i < N_FIELDS; i++) {
        if (!ok[i]) {
            bad++;
            continue;
        }
        r = fp_emit_gauge(out, fields[i].metric, NULL, 0, (double)bytes[i]);
        if (r < 0)
            return r;
    }
    return bad;
}

const struct fp_sampler_ops fp_sampler_memory = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "memory",
    .open = meminfo_open,
    .sample = meminfo_sample,
    .close = meminfo_close,
};
