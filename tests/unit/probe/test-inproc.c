/* Unit tests for the "inproc" sampler (probe/sources/inproc.c, loaded from its module by
 * inproc-loader.c, as the probe does) against a real libllama: a tiny
 * model from gen-tiny-gguf is loaded in the probe, timed, hashed and reported, and the sampler
 * opens, stops and closes cleanly in every state (not configured, missing file, a file llama.cpp
 * refuses, closed while loading, closed while waiting for the next round).
 *
 *   test-inproc PATH-TO-gen-tiny-gguf
 *
 * The model's sha256 is checked against sha256sum(1), a different implementation from the
 * sampler's libcrypto one. Values appear asynchronously (the sampler loads on its own thread), so
 * every wait polls sample() with a deadline instead of sleeping a fixed time. */
#include <errno.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "sampler.h"
#include "sources-internal.h"
#include "test.h"

#define TS_MS INT64_C(1718000000123)

/* Generous: the tiny model loads in milliseconds, but CI machines under ASan and parallel tests
 * can be slow; meson's timeout (120 s) is the real backstop. */
#define WAIT_MS 60000

/* The generator's config (tests/fixtures/gguf/gen-tiny-gguf.c): vocabulary 3 + 256 + 16 = 275,
 * n_embd 64, n_ff 128, 2 blocks. Parameters: token_embd and output 64 * 275 each, output_norm 64,
 * per block two norms of 64, q/k/v/o 64 * 64 each, gate/up/down 64 * 128 each. */
#define TINY_N_PARAMS (2 * 64 * 275 + 64 + 2 * (2 * 64 + 4 * 64 * 64 + 3 * 64 * 128))

extern char **environ;

/* --- a capturing emitter that keeps the latest value of each metric ------------------------- */

struct rec {
    char metric[64];
    char labels[64]; /**< "name=value,..." */
    enum fp_metric_type type;
    double value;
};

struct event_rec {
    char kind[32];
    enum fp_severity severity;
    char message[256];
    char attrs[256]; /**< "name=value,..." */
};

struct capture {
    struct rec recs[64];
    size_t n;
    struct event_rec events[8];
    size_t n_events;
    struct {
        char name[32];
        char value[128];
    } info[16];
    size_t n_info;
};

static void join_labels(char *out, size_t size, const struct fp_label *l, size_t n)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + off, size - off, "%s%s=%s", i ? "," : "", l[i].name, l[i].value);

        fp_assert(w > 0 && (size_t)w < size - off);
        off += (size_t)w;
    }
}

static int capture_sample(void *userdata, const char *metric, enum fp_metric_type type,
                          const struct fp_label *labels, size_t n_labels, int64_t ts_ms,
                          double value)
{
    struct capture *c = userdata;
    char joined[64];
    struct rec *r = NULL;

    check_int(ts_ms, TS_MS);
    fp_assert(strlen(metric) < sizeof(r->metric));
    join_labels(joined, sizeof(joined), labels, n_labels);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->recs[i].metric, metric) == 0 && strcmp(c->recs[i].labels, joined) == 0)
            r = &c->recs[i];
    if (r == NULL) {
        fp_assert(c->n < sizeof(c->recs) / sizeof(c->recs[0]));
        r = &c->recs[c->n++];
        strcpy(r->metric, metric);
        strcpy(r->labels, joined);
    }
    r->type = type;
    r->value = value;
    return 0;
}

static int capture_event(void *userdata, int64_t ts_ms, enum fp_severity severity, const char *kind,
                         const char *message, const struct fp_label *attrs, size_t n_attrs)
{
    struct capture *c = userdata;
    struct event_rec *e;

    fp_assert(c->n_events < sizeof(c->events) / sizeof(c->events[0]));
    e = &c->events[c->n_events++];
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->message, sizeof(e->message), "%s", message != NULL ? message : "");
    e->severity = severity;
    join_labels(e->attrs, sizeof(e->attrs), attrs, n_attrs);
    return 0;
}

static int capture_info(void *userdata, const char *name, const char *value)
{
    struct capture *c = userdata;

    for (size_t i = 0; i < c->n_info; i++)
        fp_assert(strcmp(c->info[i].name, name) != 0); /* identity is reported once */
    fp_assert(c->n_info < sizeof(c->info) / sizeof(c->info[0]));
    snprintf(c->info[c->n_info].name, sizeof(c->info[0].name), "%s", name);
    snprintf(c->info[c->n_info].value, sizeof(c->info[0].value), "%s", value);
    c->n_info++;
    return 0;
}

static void capture_init(struct capture *c, struct fp_emitter *e)
{
    memset(c, 0, sizeof(*c));
    *e = (struct fp_emitter){
        .sample = capture_sample,
        .event = capture_event,
        .info = capture_info,
        .userdata = c,
        .ts_ms = TS_MS,
    };
}

static const struct rec *find(const struct capture *c, const char *metric, const char *labels)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->recs[i].metric, metric) == 0 && strcmp(c->recs[i].labels, labels) == 0)
            return &c->recs[i];
    return NULL;
}

static double value_of(const struct capture *c, const char *metric, const char *labels)
{
    const struct rec *r = find(c, metric, labels);

    return r != NULL ? r->value : -1.0;
}

static const char *info_of(const struct capture *c, const char *name)
{
    for (size_t i = 0; i < c->n_info; i++)
        if (strcmp(c->info[i].name, name) == 0)
            return c->info[i].value;
    return NULL;
}

/* --- helpers -------------------------------------------------------------------------------- */

static const char *gen_path;
static char tmp_dir[] = "/tmp/fp-test-inproc-XXXXXX";

static const struct fp_sampler_ops *inproc(void)
{
    for (size_t i = 0; fp_samplers[i] != NULL; i++)
        if (strcmp(fp_samplers[i]->name, "inproc") == 0)
            return fp_samplers[i];
    FP_TEST_FAIL("no sampler \"inproc\" in a build with llama.cpp");
    exit(1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void generate(const char *out)
{
    char *argv[] = {(char *)gen_path, (char *)out, (char *)"--seed", (char *)"42", NULL};
    pid_t pid;
    int status;

    fp_assert(posix_spawn(&pid, gen_path, NULL, NULL, argv, environ) == 0);
    fp_assert(waitpid(pid, &status, 0) == pid);
    fp_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* sha256sum's hex digest of path into hex (65 bytes). Returns false when the tool is missing. */
static bool sha256sum(const char *path, char hex[65])
{
    char cmd[512], line[256];
    FILE *p;
    bool ok;

    snprintf(cmd, sizeof(cmd), "sha256sum '%s' 2>/dev/null", path);
    p = popen(cmd, "r");
    if (p == NULL)
        return false;
    ok = fgets(line, sizeof(line), p) != NULL && strlen(line) > 64 && line[64] == ' ';
    if (pclose(p) != 0)
        ok = false;
    if (ok) {
        memcpy(hex, line, 64);
        hex[64] = '\0';
    }
    return ok;
}

static struct fp_sampler_env model_env(const char *path, int64_t interval_ms)
{
    return (struct fp_sampler_env){
        .procfs = "/proc",
        .sysfs = "/sys",
        .model_path = path,
        .inproc_interval_ms = interval_ms,
    };
}

/* Polls sample() into c until `done` holds or WAIT_MS pass; returns sample's last result. */
static int poll_until(void *ctx, struct capture *c, struct fp_emitter *e,
                      bool (*done)(const struct capture *c, int r))
{
    int64_t deadline = fp_clock_mono_ms() + WAIT_MS;
    int r;

    for (;;) {
        r = inproc()->sample(ctx, e);
        if (done(c, r) || fp_clock_mono_ms() > deadline)
            return r;
        sleep_ms(10);
    }
}

static bool have_round(const struct capture *c, int r)
{
    return r != 0 || find(c, "llama_inproc_generation_tokens_per_second", "") != NULL;
}

static bool have_two_rounds(const struct capture *c, int r)
{
    return r != 0 || value_of(c, "llama_inproc_rounds_total", "outcome=ok") >= 2;
}

static bool have_failure(const struct capture *c, int r)
{
    return r != 0;
}

/* --- tests ---------------------------------------------------------------------------------- */

/* Before the module is loaded: with FLEETPULSE_INPROC_MODULE naming a missing file, then a file
 * that is no shared library, open fails with -ELIBACC and a one-line reason naming every path
 * tried (the variable's, the one next to this executable, the install directory's). No model
 * configured needs no module at all. Restores the variable meson set to the real module. */
static void test_module_missing(const char *model)
{
    const char *real = getenv("FLEETPULSE_INPROC_MODULE");
    struct fp_sampler_env env = model_env(model, 1000);
    char saved[1024], missing[256], junk[256], why[768];
    void *ctx = NULL;
    FILE *f;

    fp_assert(real != NULL && strlen(real) < sizeof(saved));
    snprintf(saved, sizeof(saved), "%s", real);
    snprintf(missing, sizeof(missing), "%s/no-such-module.so", tmp_dir);
    snprintf(junk, sizeof(junk), "%s/junk-module.so", tmp_dir);
    env.open_error = why;
    env.open_error_size = sizeof(why);

    fp_assert(setenv("FLEETPULSE_INPROC_MODULE", missing, 1) == 0);
    why[0] = '\0';
    check_int(inproc()->open(&env, &ctx), -ELIBACC);
    check(ctx == NULL);
    check(strchr(why, '\n') == NULL);
    check(strstr(why, "fleetpulse-probe-inproc.so") != NULL);
    check(strstr(why, missing) != NULL);
    check(strstr(why, "/fleetpulse/fleetpulse-probe-inproc.so") != NULL); /* the install dir */
    check(strstr(why, "No such file") != NULL);
    printf("without the module: %s\n", why);

    f = fopen(junk, "wb");
    fp_assert(f != NULL);
    fputs("not an ELF file", f);
    fclose(f);
    fp_assert(setenv("FLEETPULSE_INPROC_MODULE", junk, 1) == 0);
    why[0] = '\0';
    check_int(inproc()->open(&env, &ctx), -ELIBACC);
    check(strstr(why, junk) != NULL);
    (void)unlink(junk);

    /* Not configured: disabled, and the module is not even looked for. */
    env = model_env(NULL, 1000);
    check_int(inproc()->open(&env, &ctx), FP_SAMPLER_DISABLED);
    inproc()->close(&ctx);

    fp_assert(setenv("FLEETPULSE_INPROC_MODULE", saved, 1) == 0);
}

/* No model configured: disabled without a context; a model that is not there: -ENOENT. */
static void test_not_configured(void)
{
    struct fp_sampler_env env = model_env(NULL, 1000);
    void *ctx = NULL;

    check_int(inproc()->open(&env, &ctx), FP_SAMPLER_DISABLED);
    check(ctx == NULL);
    env.model_path = "";
    check_int(inproc()->open(&env, &ctx), FP_SAMPLER_DISABLED);
    env.model_path = "/nonexistent/fleetpulse/model.gguf";
    check_int(inproc()->open(&env, &ctx), -ENOENT);
    check(ctx == NULL);
    env.model_path = tmp_dir; /* a directory is not a model */
    check_int(inproc()->open(&env, &ctx), -EINVAL);
    check(ctx == NULL);
    inproc()->close(NULL);
    inproc()->close(&ctx);
}

/* The whole path: load, identity, one event, pp/tg rates, a second round, clean close. */
static void test_model(const char *model)
{
    static struct capture c;
    struct fp_sampler_env env = model_env(model, 50);
    struct fp_emitter e;
    char hex[65];
    struct stat st;
    void *ctx = NULL;
    int r;

    capture_init(&c, &e);
    fp_assert(stat(model, &st) == 0);
    if (!sha256sum(model, hex)) {
        fprintf(stderr, "sha256sum not available: skipping\n");
        exit(77);
    }

    fp_assert(inproc()->open(&env, &ctx) == 0);
    fp_assert(ctx != NULL);
    r = poll_until(ctx, &c, &e, have_round);
    check_int(r, 0);

    /* Identity, reported once through the emitter's info hook. */
    check_str(info_of(&c, "model"), "fleetpulse-tiny");
    check_str(info_of(&c, "model_sha256"), hex);
    check_str(info_of(&c, "quant"), "F16");
    check_str(info_of(&c, "runtime"), "llama.cpp (in-process)");
    check_str(info_of(&c, "model_arch"), "llama");
    {
        char n[32];

        snprintf(n, sizeof(n), "%d", TINY_N_PARAMS);
        check_str(info_of(&c, "model_params"), n);
    }

    /* One model_loaded event carrying the same hash. */
    check_int(c.n_events, 1);
    check_str(c.events[0].kind, "model_loaded");
    check_int(c.events[0].severity, FP_SEVERITY_INFO);
    check(strncmp(c.events[0].attrs, "sha256=", 7) == 0);
    check(strstr(c.events[0].attrs, hex) != NULL);
    check(strstr(c.events[0].attrs, ",load_ms=") != NULL);

    check(value_of(&c, "llama_inproc_model_load_seconds", "") > 0);
    check_double(value_of(&c, "llama_inproc_model_bytes", ""), (double)st.st_size);
    /* F16 matrices + F32 norms: about 2 bytes per parameter, never more than the file. */
    check(value_of(&c, "llama_inproc_model_memory_bytes", "") > 2.0 * TINY_N_PARAMS * 0.9);
    check(value_of(&c, "llama_inproc_model_memory_bytes", "") <= (double)st.st_size);
    check(value_of(&c, "llama_inproc_prompt_tokens_per_second", "") > 0);
    check(value_of(&c, "llama_inproc_generation_tokens_per_second", "") > 0);
    check(find(&c, "llama_inproc_rounds_total", "outcome=ok") != NULL &&
          find(&c, "llama_inproc_rounds_total", "outcome=ok")->type == FP_METRIC_COUNTER);
    check(value_of(&c, "llama_inproc_rounds_total", "outcome=ok") >= 1);
    check_double(value_of(&c, "llama_inproc_rounds_total", "outcome=error"), 0);

    printf("tiny model: load %.3f s, pp %.0f tokens/s, tg %.0f tokens/s\n",
           value_of(&c, "llama_inproc_model_load_seconds", ""),
           value_of(&c, "llama_inproc_prompt_tokens_per_second", ""),
           value_of(&c, "llama_inproc_generation_tokens_per_second", ""));

    /* The thread keeps timing rounds every interval. */
    check_int(poll_until(ctx, &c, &e, have_two_rounds), 0);
    check(value_of(&c, "llama_inproc_rounds_total", "outcome=ok") >= 2);
    check_int(c.n_events, 1); /* still one event */

    inproc()->close(&ctx);
    check(ctx == NULL);
}

/* A long interval must not hold close() up: the wait between rounds is interruptible. A close
 * that waited would sit out the hour and fail the test by meson's timeout, not by a clock
 * reading here (no timing thresholds in tests). */
static void test_close_while_waiting(const char *model)
{
    static struct capture c;
    struct fp_sampler_env env = model_env(model, 3600 * 1000);
    struct fp_emitter e;
    void *ctx = NULL;

    capture_init(&c, &e);
    fp_assert(inproc()->open(&env, &ctx) == 0);
    check_int(poll_until(ctx, &c, &e, have_round), 0);
    inproc()->close(&ctx);
    check(ctx == NULL);
}

/* Closing straight after open, while the thread is still loading, frees everything (ASan). */
static void test_close_while_loading(const char *model)
{
    struct fp_sampler_env env = model_env(model, 1000);

    for (int i = 0; i < 3; i++) {
        void *ctx = NULL;

        fp_assert(inproc()->open(&env, &ctx) == 0);
        inproc()->close(&ctx);
        check(ctx == NULL);
    }
}

/* A file llama.cpp refuses: one model_load_failed event, then an error every round. */
static void test_bad_model(void)
{
    static struct capture c;
    char path[128];
    struct fp_sampler_env env;
    struct fp_emitter e;
    void *ctx = NULL;
    FILE *f;
    int r;

    snprintf(path, sizeof(path), "%s/bad.gguf", tmp_dir);
    f = fopen(path, "wb");
    fp_assert(f != NULL);
    fputs("GGUF but not really a model", f);
    fclose(f);

    env = model_env(path, 1000);
    capture_init(&c, &e);
    fp_assert(inproc()->open(&env, &ctx) == 0);
    r = poll_until(ctx, &c, &e, have_failure);
    check(r < 0);
    check_int(c.n_events, 1);
    check_str(c.events[0].kind, "model_load_failed");
    check_int(c.events[0].severity, FP_SEVERITY_ERROR);
    check(strstr(c.events[0].message, "bad.gguf") != NULL);
    check_int(c.n, 0);
    check_int(c.n_info, 0);

    check(inproc()->sample(ctx, &e) < 0);
    check_int(c.n_events, 1); /* the event is not repeated */
    inproc()->close(&ctx);
    check(ctx == NULL);
    (void)unlink(path);
}

int main(int argc, char **argv)
{
    char model[128];

    fp_assert(argc == 2);
    gen_path = argv[1];
    fp_assert(mkdtemp(tmp_dir) != NULL);
    snprintf(model, sizeof(model), "%s/tiny.gguf", tmp_dir);
    generate(model);

    test_module_missing(model);
    test_not_configured();
    test_model(model);
    test_close_while_waiting(model);
    test_close_while_loading(model);
    test_bad_model();

    (void)unlink(model);
    (void)rmdir(tmp_dir);
    fp_test_end();
}
