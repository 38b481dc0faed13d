/* The "inproc" sampler: loads a GGUF model through libllama inside the probe and times a fixed
 * llama-bench-style micro-benchmark on it every inproc_interval_ms, so devices report prompt and
 * generation tokens/s that compare across the fleet (same prompt length, same generation length,
 * same tokens) rather than the passive numbers a server reports for whatever its users sent.
 *
 * How: open() copies the settings and starts one thread of our own; everything llama.cpp does
 * happens there, because loading a model takes seconds to minutes and a round takes as long as
 * the model needs, and open()/sample() must not block the agent. The thread
 *   1. loads the model (llama_model_load_from_file) and creates a context: the load time,
 *   2. hashes the file (sha256, streamed through libcrypto's EVP API, 1 MiB at a time; after the
 *      load, so the hash's reads do not warm the page cache for the timed load),
 *   3. publishes identity and sizes, then runs a round at once and every interval after:
 *      prompt processing of N_PROMPT tokens in one llama_decode, then generation of N_GEN tokens
 *      one llama_decode each, each phase timed on the monotonic clock from before the first
 *      decode to after llama_synchronize (llama-bench's test_prompt / test_gen), the memory (KV
 *      cache) cleared before each phase so every round starts from the same empty state.
 * Results go into a mutex-protected struct; sample() copies it and emits from the copy, so the
 * agent never waits for a round. The thread owns the llama model and context and frees them
 * itself before it exits; close() only asks it to stop and joins it.
 *
 * Stopping is prompt: a stop flag aborts a running load (the progress callback returns false), a
 * running decode (the context's abort callback, honoured by the CPU backend) and the hash, and a
 * condition variable on CLOCK_MONOTONIC cuts the wait between rounds short.
 *
 * The tokens are llama-bench's: BOS (when the model adds one) and then pseudo-random ids below
 * n_vocab, from a generator reseeded each round, so every round decodes the same tokens. Threads:
 * llama.cpp's default (GGML_DEFAULT_N_THREADS, 4) but never more than the online CPUs, not every
 * core: the probe measures, it must not starve the inference server it shares the device with,
 * and more threads than cores makes ggml's spinning workers wait on each other (on a 2-core VM
 * 4 threads cut the tiny test model's generation rate tenfold). Before the first round one
 * untimed warm-up of each phase lets llama.cpp build and allocate its graphs, as llama-bench's
 * warm-up run does, so the first reported round is not a one-off.
 *
 * llama.cpp's own logging is process-wide (llama_log_set also sets ggml's). We route it to our
 * debug log once per process, so a probe stays quiet at info. A host that embeds the probe
 * library and has its own llama.cpp logger loses that logger when this source opens; the source
 * is meant for the standalone probe, where nothing else uses llama.cpp.
 *
 * This file is built into the loadable module fleetpulse-probe-inproc.so (inproc-entry.c is its
 * entry point), never into the probe: the probe's "inproc" source (inproc-loader.c) loads the
 * module only when --model is given, so a probe without a model never maps libllama and ggml.
 *
 * Rejected: loading in open() (blocks the agent for the whole load); timing with
 * llama_perf_context (its counters include sampling and are reset by the user, and its clock is
 * ggml's, not ours); a random prompt per round (the numbers would vary with the tokens). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <llama.h>
#include <openssl/evp.h>

#include "clock.h"
#include "inproc-module.h"
#include "log.h"
#include "sources-internal.h"

/* The benchmark's shape: small enough that a round costs a fraction of a second on a laptop-class
 * CPU with a 1-3B model, large enough that the prompt phase runs as a real batch. Changing these
 * changes every reported number: document it in docs/metrics.md and expect a step in dashboards. */
#define N_PROMPT 32
#define N_GEN 16
/* The context only has to hold one phase; llama.cpp pads n_ctx up to 256 anyway. */
#define N_CTX 256
/* Seed of the token generator: fixed, so every round and every device decodes the same ids. */
#define TOKEN_SEED UINT64_C(0x6c6c616d61)

#define HASH_CHUNK_BYTES (1024 * 1024)

enum load_state {
    LOAD_PENDING, /**< the thread is loading or hashing */
    LOAD_DONE,    /**< model and context ready; identity filled in */
    LOAD_FAILED,  /**< gave up; error and message filled in */
};

/* What the thread publishes for sample(), under inproc_ctx.lock. Plain values, so sample() can
 * copy the whole struct and emit without holding the lock. */
struct inproc_results {
    enum load_state state;
    int error;            /**< LOAD_FAILED: -errno for sample() to return */
    char message[256];    /**< LOAD_FAILED: why, for the model_load_failed event */
    char name[128];       /**< general.name, or the file's basename */
    char sha256[65];      /**< hex, lower case */
    char quant[48];       /**< "F16", "Q4_K_M", ... */
    char arch[48];        /**< general.architecture */
    char n_params[24];    /**< llama_model_n_params, decimal */
    double load_s;        /**< model load + context creation, seconds */
    uint64_t file_bytes;  /**< size of the GGUF file */
    uint64_t model_bytes; /**< llama_model_size: bytes of all weight tensors */
    bool have_round;      /**< pp_tps and tg_tps hold a measurement */
    double pp_tps;        /**< last good round: prompt tokens per second */
    double tg_tps;        /**< last good round: generated tokens per second */
    uint64_t rounds_ok;
    uint64_t rounds_failed;
};

struct inproc_ctx {
    char *model_path;    /**< our copy of env->model_path */
    int64_t interval_ms; /**< pause after each round, ms */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /**< guards res and the stop handshake */
    pthread_cond_t wake;  /**< signalled by close(); waited on with CLOCK_MONOTONIC */
    atomic_bool stop;     /**< read lock-free by llama.cpp's callbacks */
    struct inproc_results res;

    /* Owned by the thread. */
    struct llama_model *model;
    struct llama_context *lctx;

    /* Owned by sample()'s caller. */
    bool reported; /**< the load outcome (identity + event) has been emitted */
};

/* --- process-wide llama.cpp set-up ---------------------------------------------------------- */

static pthread_once_t llama_once = PTHREAD_ONCE_INIT;

/* llama.cpp's and ggml's log lines, at our debug level. Continuation pieces (progress dots)
 * carry nothing on their own and are dropped. */
static void llama_log(enum ggml_log_level level, const char *text, void *user_data)
{
    size_t n;

    if (level == GGML_LOG_LEVEL_CONT || text == NULL)
        return;
    n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n > 0)
        fp_log_debug("inproc", "llama.cpp: %.*s", (int)n, text);
}

static void llama_global_init(void)
{
    llama_log_set(llama_log, NULL);
    llama_backend_init();
}

/* --- helpers -------------------------------------------------------------------------------- */

/* The conventional short name of a file type, as GGUF file names and DeviceInfo.quant spell it
 * ("Q4_K_M"); llama_ftype_name's "Q4_K - Medium" is for people. Unknown types fall back to it. */
static const char *quant_name(enum llama_ftype ftype)
{
    static const struct {
        enum llama_ftype ftype;
        const char *name;
    } names[] = {
        {LLAMA_FTYPE_ALL_F32, "F32"},
        {LLAMA_FTYPE_MOSTLY_F16, "F16"},
        {LLAMA_FTYPE_MOSTLY_BF16, "BF16"},
        {LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_0"},
        {LLAMA_FTYPE_MOSTLY_Q4_1, "Q4_1"},
        {LLAMA_FTYPE_MOSTLY_Q5_0, "Q5_0"},
        {LLAMA_FTYPE_MOSTLY_Q5_1, "Q5_1"},
        {LLAMA_FTYPE_MOSTLY_Q8_0, "Q8_0"},
        {LLAMA_FTYPE_MOSTLY_Q2_K, "Q2_K"},
        {LLAMA_FTYPE_MOSTLY_Q2_K_S, "Q2_K_S"},
        {LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K_S"},
        {LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q3_K_M"},
        {LLAMA_FTYPE_MOSTLY_Q3_K_L, "Q3_K_L"},
        {LLAMA_FTYPE_MOSTLY_Q4_K_S, "Q4_K_S"},
        {LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K_M"},
        {LLAMA_FTYPE_MOSTLY_Q5_K_S, "Q5_K_S"},
        {LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q5_K_M"},
        {LLAMA_FTYPE_MOSTLY_Q6_K, "Q6_K"},
        {LLAMA_FTYPE_MOSTLY_IQ2_XXS, "IQ2_XXS"},
        {LLAMA_FTYPE_MOSTLY_IQ2_XS, "IQ2_XS"},
        {LLAMA_FTYPE_MOSTLY_IQ2_S, "IQ2_S"},
        {LLAMA_FTYPE_MOSTLY_IQ2_M, "IQ2_M"},
        {LLAMA_FTYPE_MOSTLY_IQ3_XXS, "IQ3_XXS"},
        {LLAMA_FTYPE_MOSTLY_IQ3_XS, "IQ3_XS"},
        {LLAMA_FTYPE_MOSTLY_IQ3_S, "IQ3_S"},
        {LLAMA_FTYPE_MOSTLY_IQ3_M, "IQ3_M"},
        {LLAMA_FTYPE_MOSTLY_IQ1_S, "IQ1_S"},
        {LLAMA_FTYPE_MOSTLY_IQ1_M, "IQ1_M"},
        {LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_NL"},
        {LLAMA_FTYPE_MOSTLY_IQ4_XS, "IQ4_XS"},
        {LLAMA_FTYPE_MOSTLY_TQ1_0, "TQ1_0"},
        {LLAMA_FTYPE_MOSTLY_TQ2_0, "TQ2_0"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].ftype == ftype)
            return names[i].name;
    return llama_ftype_name(ftype);
}

/* llama.cpp's default thread count, capped at the online CPUs (see the top of the file). */
static int32_t bench_threads(int32_t dflt)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (cpus > 0 && cpus < dflt)
        return (int32_t)cpus;
    return dflt > 0 ? dflt : 1;
}

/* splitmix64: the benchmark's token ids, the same on every platform. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static llama_token next_token(uint64_t *state, int32_t n_vocab)
{
    return (llama_token)(next_u64(state) % (uint64_t)n_vocab);
}

static bool stopping(struct inproc_ctx *c)
{
    return atomic_load_explicit(&c->stop, memory_order_relaxed);
}

/* llama_progress_callback: false cancels the load. */
static bool load_progress(float progress, void *userdata)
{
    return !stopping(userdata);
}

/* ggml_abort_callback: true aborts the running decode. */
static bool abort_decode(void *userdata)
{
    return stopping(userdata);
}

/* Streams the file at path through sha256. Returns 0 with *ret_bytes and hex (65 bytes), -errno
 * from open/read, -ECANCELED when asked to stop, or -ENOMEM / -EIO from libcrypto. */
static int hash_file(struct inproc_ctx *c, const char *path, char hex[65], uint64_t *ret_bytes)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *md = NULL;
    unsigned char *buf = NULL;
    uint64_t total = 0;
    int fd, r = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    buf = malloc(HASH_CHUNK_BYTES);
    md = EVP_MD_CTX_new();
    if (buf == NULL || md == NULL) {
        r = -ENOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        r = -EIO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, HASH_CHUNK_BYTES);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if (stopping(c)) {
            r = -ECANCELED;
            goto out;
        }
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
            r = -EIO;
            goto out;
        }
        total += (uint64_t)n;
    }
    /* 32 bytes is sha256's digest, the 64 hex digits hex[] has room for. */
    if (EVP_DigestFinal_ex(md, digest, &digest_len) != 1 || digest_len != 32) {
        r = -EIO;
        goto out;
    }
    for (unsigned int i = 0; i < digest_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    *ret_bytes = total;

out:
    EVP_MD_CTX_free(md);
    free(buf);
    (void)close(fd);
    return r;
}

static void publish_failure(struct inproc_ctx *c, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void publish_failure(struct inproc_ctx *c, int error, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->lock);
    c->res.state = LOAD_FAILED;
    c->res.error = error;
    va_start(ap, fmt);
    vsnprintf(c->res.message, sizeof(c->res.message), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->lock);
}

/* --- the thread ----------------------------------------------------------------------------- */

/* Loads, creates the context, hashes; publishes LOAD_DONE or LOAD_FAILED. Returns 0 or -errno. */
static int load(struct inproc_ctx *c)
{
    struct llama_model_params mparams = llama_model_default_params();
    struct llama_context_params cparams = llama_context_default_params();
    struct inproc_results r = {.state = LOAD_DONE};
    const char *base;
    int64_t t0, t1;
    int err;

    mparams.progress_callback = load_progress;
    mparams.progress_callback_user_data = c;

    cparams.n_ctx = N_CTX;
    cparams.n_batch = N_PROMPT; /* the prompt phase is one batch, one ubatch */
    cparams.n_ubatch = N_PROMPT;
    cparams.n_seq_max = 1;
    cparams.n_threads = bench_threads(cparams.n_threads);
    cparams.n_threads_batch = cparams.n_threads;
    cparams.no_perf = true; /* we time ourselves; skip llama.cpp's bookkeeping */
    cparams.abort_callback = abort_decode;
    cparams.abort_callback_data = c;

    t0 = fp_clock_mono_ns();
    c->model = llama_model_load_from_file(c->model_path, mparams);
    if (c->model == NULL) {
        err = stopping(c) ? -ECANCELED : -EINVAL;
        publish_failure(c, err, "llama.cpp could not load \"%s\"", c->model_path);
        return err;
    }
    c->lctx = llama_init_from_model(c->model, cparams);
    if (c->lctx == NULL) {
        publish_failure(c, -ENOMEM, "llama.cpp could not create a context for \"%s\"",
                        c->model_path);
        return -ENOMEM;
    }
    t1 = fp_clock_mono_ns();
    r.load_s = (double)(t1 - t0) / 1e9;

    err = hash_file(c, c->model_path, r.sha256, &r.file_bytes);
    if (err < 0) {
        publish_failure(c, err, "cannot hash \"%s\": %s", c->model_path, strerror(-err));
        return err;
    }

    if (llama_model_meta_val_str(c->model, "general.name", r.name, sizeof(r.name)) <= 0) {
        base = strrchr(c->model_path, '/');
        snprintf(r.name, sizeof(r.name), "%s", base != NULL ? base + 1 : c->model_path);
    }
    if (llama_model_meta_val_str(c->model, "general.architecture", r.arch, sizeof(r.arch)) < 0)
        r.arch[0] = '\0';
    snprintf(r.quant, sizeof(r.quant), "%s", quant_name(llama_model_ftype(c->model)));
    snprintf(r.n_params, sizeof(r.n_params), "%" PRIu64, llama_model_n_params(c->model));
    r.model_bytes = llama_model_size(c->model);

    pthread_mutex_lock(&c->lock);
    c->res = r;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* One timed phase: n tokens as one batch (prompt) or one at a time (generation), from an empty
 * memory. Returns 0 and *ret_s, or the non-zero llama_decode result. */
static int timed_phase(struct inproc_ctx *c, int n, bool one_batch, double *ret_s)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(c->model);
    int32_t n_vocab = llama_vocab_n_tokens(vocab);
    llama_token tokens[N_PROMPT > N_GEN ? N_PROMPT : N_GEN];
    uint64_t rng = TOKEN_SEED;
    int64_t t0, t1;
    int r = 0;

    tokens[0] = llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : next_token(&rng, n_vocab);
    for (int i = 1; i < n; i++)
        tokens[i] = next_token(&rng, n_vocab);

    llama_memory_clear(llama_get_memory(c->lctx), false);
    t0 = fp_clock_mono_ns();
    if (one_batch) {
        r = llama_decode(c->lctx, llama_batch_get_one(tokens, n));
        llama_synchronize(c->lctx);
    } else {
        /* llama-bench's test_gen: each token waits for the previous one's results. */
        for (int i = 0; i < n && r == 0; i++) {
            r = llama_decode(c->lctx, llama_batch_get_one(&tokens[i], 1));
            llama_synchronize(c->lctx);
        }
    }
    t1 = fp_clock_mono_ns();
    /* A clock that did not move would give infinity; one nanosecond is the honest floor. */
    *ret_s = (double)(t1 > t0 ? t1 - t0 : 1) / 1e9;
    return r;
}

static void run_round(struct inproc_ctx *c)
{
    double pp_s = 0, tg_s = 0;
    int r;

    r = timed_phase(c, N_PROMPT, true, &pp_s);
    if (r == 0)
        r = timed_phase(c, N_GEN, false, &tg_s);
    if (stopping(c))
        return; /* an aborted decode is not the device's fault */

    pthread_mutex_lock(&c->lock);
    if (r == 0) {
        c->res.have_round = true;
        c->res.pp_tps = N_PROMPT / pp_s;
        c->res.tg_tps = N_GEN / tg_s;
        c->res.rounds_ok++;
    } else {
        c->res.rounds_failed++;
    }
    pthread_mutex_unlock(&c->lock);
    if (r != 0)
        fp_log_debug("inproc", "benchmark round failed: llama_decode returned %d", r);
}

/* Sleeps interval_ms or until close(). Returns true when the thread should stop. */
static bool wait_interval(struct inproc_ctx *c)
{
    struct timespec deadline;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(c->interval_ms / 1000);
    deadline.tv_nsec += (long)(c->interval_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    while (!stopping(c))
        if (pthread_cond_timedwait(&c->wake, &c->lock, &deadline) == ETIMEDOUT)
            break;
    stop = stopping(c);
    pthread_mutex_unlock(&c->lock);
    return stop;
}

static void *inproc_thread(void *arg)
{
    struct inproc_ctx *c = arg;

    pthread_once(&llama_once, llama_global_init);
    if (load(c) == 0) {
        double ignored;

        /* Warm-up, untimed and unreported (see the top of the file). */
        if (timed_phase(c, N_PROMPT, true, &ignored) == 0)
            (void)timed_phase(c, N_GEN, false, &ignored);
        do
            run_round(c);
        while (!wait_interval(c));
    }
    if (c->lctx != NULL)
        llama_free(c->lctx);
    if (c->model != NULL)
        llama_model_free(c->model);
    c->lctx = NULL;
    c->model = NULL;
    return NULL;
}

/* --- sampler ops ---------------------------------------------------------------------------- */

static void inproc_close(void **ctx)
{
    struct inproc_ctx *c;

    if (ctx == NULL || *ctx == NULL)
        return;
    c = *ctx;
    if (c->thread_started) {
        /* Under the lock, so the thread cannot miss the signal between its check and its wait. */
        pthread_mutex_lock(&c->lock);
        atomic_store(&c->stop, true);
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c->model_path);
    free(c);
    *ctx = NULL;
}

static int inproc_open(const struct fp_sampler_env *env, void **ret_ctx)
{
    struct inproc_ctx *c = NULL;
    pthread_condattr_t attr;
    struct stat st;
    int r;

    if (env->model_path == NULL || env->model_path[0] == '\0')
        return FP_SAMPLER_DISABLED;
    if (env->inproc_interval_ms <= 0)
        return -EINVAL;
    /* A missing file is a configuration problem the probe should log at start, not an event
     * minutes later; stat() does not block like a load would. */
    if (stat(env->model_path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    atomic_init(&c->stop, false);
    c->interval_ms = env->inproc_interval_ms;
    c->res.state = LOAD_PENDING;
    c->model_path = strdup(env->model_path);
    if (c->model_path == NULL) {
        free(c);
        return -ENOMEM;
    }
    r = -pthread_mutex_init(&c->lock, NULL);
    if (r < 0)
        goto fail_path;
    r = -pthread_condattr_init(&attr);
    if (r < 0)
        goto fail_lock;
    r = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (r == 0)
        r = -pthread_cond_init(&c->wake, &attr);
    (void)pthread_condattr_destroy(&attr);
    if (r < 0)
        goto fail_lock;
    r = -pthread_create(&c->thread, NULL, inproc_thread, c);
    if (r < 0)
        goto fail_cond;
    c->thread_started = true;
    *ret_ctx = c;
    return 0;

fail_cond:
    pthread_cond_destroy(&c->wake);
fail_lock:
    pthread_mutex_destroy(&c->lock);
fail_path:
    free(c->model_path);
    free(c);
    return r;
}

/* Emits identity and the model_loaded event once. Returns 0 or the emitter's -errno. */
static int report_loaded(struct fp_emitter *out, const struct inproc_results *res)
{
    static const char *const keys[] = {"model",   "model_sha256", "quant",
                                       "runtime", "model_arch",   "model_params"};
    const char *values[] = {res->name, res->sha256,  res->quant, "llama.cpp (in-process)",
                            res->arch, res->n_params};
    char load_ms[32];
    struct fp_label attrs[2];
    int r;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (values[i][0] == '\0')
            continue;
        r = fp_emit_info(out, keys[i], values[i]);
        if (r < 0)
            return r;
    }
    snprintf(load_ms, sizeof(load_ms), "%.0f", res->load_s * 1000.0);
    attrs[0] = (struct fp_label){"sha256", res->sha256};
    attrs[1] = (struct fp_label){"load_ms", load_ms};
    return fp_emit_event(out, FP_SEVERITY_INFO, "model_loaded", res->name, attrs, 2);
}

static int inproc_sample(void *ctx, struct fp_emitter *out)
{
    static const struct fp_label ok[] = {{"outcome", "ok"}}, failed[] = {{"outcome", "error"}};
    struct inproc_ctx *c = ctx;
    struct inproc_results res;
    int r;

    pthread_mutex_lock(&c->lock);
    res = c->res;
    pthread_mutex_unlock(&c->lock);

    switch (res.state) {
    case LOAD_PENDING:
        return 0;
    case LOAD_FAILED:
        if (!c->reported) {
            r = fp_emit_event(out, FP_SEVERITY_ERROR, "model_load_failed", res.message, NULL, 0);
            if (r < 0)
                return r;
            c->reported = true;
        }
        /* The source is dead until the probe restarts: count it every round. */
        return res.error;
    case LOAD_DONE:
        break;
    }

    if (!c->reported) {
        r = report_loaded(out, &res);
        if (r < 0)
            return r;
        c->reported = true;
    }
    r = fp_emit_gauge(out, "llama_inproc_model_load_seconds", NULL, 0, res.load_s);
    if (r == 0)
        r = fp_emit_gauge(out, "llama_inproc_model_bytes", NULL, 0, (double)res.file_bytes);
    if (r == 0)
        r = fp_emit_gauge(out, "llama_inproc_model_memory_bytes", NULL, 0, (double)res.model_bytes);
    if (r == 0 && res.have_round)
        r = fp_emit_gauge(out, "llama_inproc_prompt_tokens_per_second", NULL, 0, res.pp_tps);
    if (r == 0 && res.have_round)
        r = fp_emit_gauge(out, "llama_inproc_generation_tokens_per_second", NULL, 0, res.tg_tps);
    if (r == 0)
        r = fp_emit_counter(out, "llama_inproc_rounds_total", ok, 1, (double)res.rounds_ok);
    if (r == 0)
        r = fp_emit_counter(out, "llama_inproc_rounds_total", failed, 1, (double)res.rounds_failed);
    return r < 0 ? r : 0;
}

const struct fp_sampler_ops fp_inproc_ops = {
    .version = FP_SAMPLER_OPS_VERSION,
    .name = "inproc",
    .open = inproc_open,
    .sample = inproc_sample,
    .close = inproc_close,
};
