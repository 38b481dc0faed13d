/* The probe's "inproc" source: a stand-in that loads the real one (inproc.c, in the module
 * fleetpulse-probe-inproc.so with libllama) only when --model is given, and forwards to it.
 *
 * Why a module: linking libllama into the probe maps it and ggml (about 3.5 MiB of resident
 * library pages) in every probe, though most run without a model. The module is searched at
 *   1. $FLEETPULSE_INPROC_MODULE (a file path), when set and not empty,
 *   2. next to the running executable (/proc/self/exe): a build tree, or a relocated install,
 *   3. FP_INPROC_MODULE_DIR, <libdir>/fleetpulse from the build's prefix.
 * The first file that loads and exports FP_INPROC_MODULE_ENTRY wins. When none does, open fails
 * with -ELIBACC and one line naming every path tried and why it failed, for the agent's log and
 * the source_unavailable event.
 *
 * The module stays loaded for the life of the process: llama.cpp keeps process-wide state (its
 * logger, backend registry, thread pools), so unloading it is not safe. The entry function is
 * called again before each open to pass the current log level over.
 *
 * Rejected: always linking libllama (the footprint above); weak symbols (the probe would still
 * need libllama at link and load time); loading in a later version of fp_sampler_ops (this
 * needs nothing from the agent beyond the existing open/sample/close). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inproc-module.h"
#include "log.h"
#include "sources-internal.h"

#ifndef FP_INPROC_MODULE_DIR
#define FP_INPROC_MODULE_DIR "/usr/local/lib/fleetpulse"
#endif

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static fp_inproc_entry_fn module_entry; /* set once under load_lock, never cleared */
static const struct fp_sampler_ops *module_ops;
static struct fp_inproc_host host = {
    .abi = FP_INPROC_MODULE_ABI,
    .log_write = fp_log_write,
};

/* Appends "path (why)" to the list of tries in buf (size bytes, NUL-terminated). */
static void note_try(char *buf, size_t size, const char *path, const char *why)
{
    size_t n = strlen(buf);

    if (n < size)
        (void)snprintf(buf + n, size - n, "%s%s (%s)", n > 0 ? ", " : "", path, why);
}

/* Loads path and looks its entry up. Returns the entry, or NULL with the reason noted. */
static fp_inproc_entry_fn try_path(const char *path, char *tried, size_t tried_size)
{
    fp_inproc_entry_fn entry;
    void *handle;

    if (access(path, F_OK) < 0) {
        note_try(tried, tried_size, path, strerror(errno));
        return NULL;
    }
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();

        note_try(tried, tried_size, path, why != NULL ? why : "cannot be loaded");
        return NULL;
    }
    /* POSIX allows converting dlsym's result to a function pointer (XSH dlsym, rationale). */
    *(void **)&entry = dlsym(handle, FP_INPROC_MODULE_ENTRY);
    if (entry == NULL) {
        note_try(tried, tried_size, path,
                 "no " FP_INPROC_MODULE_ENTRY ": not a module of this probe");
        (void)dlclose(handle);
        return NULL;
    }
    fp_log_debug("inproc", "loaded %s", path);
    return entry;
}

/* Finds and loads the module once per process. Returns 0, or -ELIBACC with tried filled in. */
static int load_module(char *tried, size_t tried_size)
{
    const char *env = getenv("FLEETPULSE_INPROC_MODULE");
    char path[PATH_MAX + sizeof(FP_INPROC_MODULE_FILE) + 1], exe[PATH_MAX];
    fp_inproc_entry_fn entry = NULL;
    ssize_t n;
    int r = 0;

    (void)pthread_mutex_lock(&load_lock);
    if (module_entry != NULL)
        goto out;
    tried[0] = '\0';
    if (env != NULL && env[0] != '\0')
        entry = try_path(env, tried, tried_size);
    if (entry == NULL) {
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
            char *slash;

            exe[n] = '\0';
            slash = strrchr(exe, '/');
            if (slash != NULL) {
                *slash = '\0';
                (void)snprintf(path, sizeof(path), "%s/%s", exe, FP_INPROC_MODULE_FILE);
                entry = try_path(path, tried, tried_size);
            }
        }
    }
    if (entry == NULL)
        entry = try_path(FP_INPROC_MODULE_DIR "/" FP_INPROC_MODULE_FILE, tried, tried_size);
    if (entry == NULL)
        r = -ELIBACC;
    module_entry = entry;
out:
    (void)pthread_mutex_unlock(&load_lock);
    return r;
}

static int loader_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    char tried[768];
    const struct fp_sampler_ops *ops;
    int r;

    if (env->model_path == NULL || env->model_path[0] == '\0')
        return FP_SAMPLER_DISABLED;
    r = load_module(tried, sizeof(tried));
    if (r < 0) {
        if (env->open_error != NULL)
            (void)snprintf(env->open_error, env->open_error_size,
                           "--model needs the in-process module " FP_INPROC_MODULE_FILE
                           " (a build with -Dllama); tried %s",
                           tried);
        return r;
    }
    host.log_threshold = fp_log_threshold;
    ops = module_entry(&host);
    if (ops == NULL || ops->version != FP_SAMPLER_OPS_VERSION || strcmp(ops->name, "inproc") != 0) {
        if (env->open_error != NULL)
            (void)snprintf(env->open_error, env->open_error_size,
                           "the in-process module " FP_INPROC_MODULE_FILE
                           " is from another version of the probe");
        return -ELIBBAD;
    }
    module_ops = ops;
    return module_ops->open(env, ret_ctx);
}

static int loader_sample(void *ctx, struct fp_emitter *out)
{
    return module_ops->sample(ctx, out);
}

static void loader_close(void **ctx)
{
    /* Nothing was opened unless the module was. */
    if (module_ops != NULL)
        module_ops->close(ctx);
}

const struct fp_sampler_ops fp_sampler_inproc = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "inproc",
    .open = loader_open,
    .sample = loader_sample,
    .close = loader_close,
};
