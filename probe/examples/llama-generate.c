/* llama-generate: how an inference server embeds libfleetpulse-probe.
 *
 * Loads a GGUF model through libllama, then serves N identical "requests": tokenize the prompt,
 * decode it, sample greedily up to --tokens tokens (stopping at end-of-generation), and time
 * each request with a monotonic clock: time to first token (prompt decode + first sample) and
 * total. Each request becomes one fleetpulse_record call; the probe's thread sends them with the
 * system samples to the collector, and fleetpulse_probe_destroy sends what is left.
 *
 *   llama-generate [--collector tcp://127.0.0.1:9470] [--device-id ID] [--requests 3]
 *                  [--tokens 32] [--prompt TEXT] [--interval 1] [--verbose] MODEL.gguf
 *
 * Only the public header and the shared library are used, as a real host would. A prompt that
 * does not fit the context is recorded as a fallback with reason "context_too_long" (a server
 * would hand it to a bigger model or a cloud API); a decode failure as an error. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llama.h>

#include <fleetpulse/probe.h>

#define CTX_TOKENS 512

static bool verbose;

static double mono_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libllama talks a lot at load time; keep it for --verbose. */
static void llama_log(enum ggml_log_level level, const char *text, void *userdata)
{
    if (verbose || level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

/* The probe is silent unless the host asks; a host would route these lines to its own log. */
static void probe_log(int level, const char *msg, void *userdata)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level <= FLEETPULSE_LOG_INFO || verbose)
        fprintf(stderr, "fleetpulse %s: %s\n", names[level & 3], msg);
}

/* One request: the prompt from an empty context, then greedy sampling. Fills *r's counts and
 * times; returns the outcome. */
static enum fleetpulse_outcome generate(struct llama_context *ctx, const struct llama_vocab *vocab,
                                        struct llama_sampler *smpl, llama_token *prompt,
                                        int32_t n_prompt, int max_tokens,
                                        struct fleetpulse_request *r)
{
    double t0 = mono_s();
    llama_token tok;

    r->prompt_tokens = (uint64_t)n_prompt;
    r->generated_tokens = 0;
    llama_memory_clear(llama_get_memory(ctx), true);
    if (n_prompt + max_tokens > (int32_t)llama_n_ctx(ctx)) {
        r->total_s = mono_s() - t0;
        r->fallback_reason = "context_too_long";
        return FLEETPULSE_OUTCOME_FALLBACK;
    }
    if (llama_decode(ctx, llama_batch_get_one(prompt, n_prompt)) != 0)
        goto error;
    for (int i = 0; i < max_tokens; i++) {
        tok = llama_sampler_sample(smpl, ctx, -1);
        if (i == 0)
            r->ttft_s = mono_s() - t0;
        if (llama_vocab_is_eog(vocab, tok))
            break;
        r->generated_tokens++;
        if (verbose) {
            char piece[64];
            int32_t n = llama_token_to_piece(vocab, tok, piece, sizeof(piece), 0, false);
            if (n > 0)
                fwrite(piece, 1, (size_t)n, stdout);
        }
        if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0)
            goto error;
    }
    r->total_s = mono_s() - t0;
    if (r->ttft_s > r->total_s)
        r->ttft_s = r->total_s;
    if (verbose)
        putchar('\n');
    return FLEETPULSE_OUTCOME_OK;
error:
    r->total_s = mono_s() - t0;
    if (r->ttft_s > r->total_s)
        r->ttft_s = r->total_s;
    return FLEETPULSE_OUTCOME_ERROR;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: llama-generate [--collector ENDPOINT] [--device-id ID] [--requests N] "
               "[--tokens N]\n"
               "                      [--prompt TEXT] [--interval SECONDS] [--verbose] "
               "MODEL.gguf\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"collector", required_argument, NULL, 'c'}, {"device-id", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},  {"tokens", required_argument, NULL, 't'},
        {"prompt", required_argument, NULL, 'p'},    {"interval", required_argument, NULL, 'i'},
        {"verbose", no_argument, NULL, 'v'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *collector = NULL, *device_id = NULL, *interval = "1";
    const char *prompt = "Once upon a time";
    int requests = 3, max_tokens = 32, opt, rc = 1, r;
    struct fleetpulse_probe *probe = NULL;
    struct llama_model *model = NULL;
    struct llama_context *ctx = NULL;
    struct llama_sampler *smpl = NULL;
    const struct llama_vocab *vocab;
    struct llama_model_params mp;
    struct llama_context_params cp;
    llama_token tokens[CTX_TOKENS];
    char name[64];
    int32_t n_prompt;

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            collector = optarg;
            break;
        case 'd':
            device_id = optarg;
            break;
        case 'n':
            requests = atoi(optarg);
            break;
        case 't':
            max_tokens = atoi(optarg);
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'i':
            interval = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || requests < 1 || max_tokens < 1 || max_tokens > CTX_TOKENS / 2) {
        usage(stderr);
        return 2;
    }

    /* The probe first: setup errors are the host's to report, the library only returns them. */
    fleetpulse_set_logger(probe_log, NULL);
    r = fleetpulse_probe_new(&probe);
    if (r == 0 && collector != NULL)
        r = fleetpulse_probe_set(probe, "collector", collector);
    if (r == 0 && device_id != NULL)
        r = fleetpulse_probe_set(probe, "device_id", device_id);
    if (r == 0)
        r = fleetpulse_probe_set(probe, "interval", interval);
    if (r == 0)
        r = fleetpulse_probe_start(probe);
    if (r < 0) {
        fprintf(stderr, "llama-generate: fleetpulse: %s\n", strerror(-r));
        goto out;
    }

    llama_log_set(llama_log, NULL);
    llama_backend_init();
    mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    model = llama_model_load_from_file(argv[optind], mp);
    if (model == NULL) {
        fprintf(stderr, "llama-generate: cannot load %s\n", argv[optind]);
        goto out;
    }
    vocab = llama_model_get_vocab(model);
    /* The model's own name is what dashboards should show; the file name when it has none. */
    if (llama_model_meta_val_str(model, "general.name", name, sizeof(name)) <= 0) {
        const char *slash = strrchr(argv[optind], '/');
        (void)snprintf(name, sizeof(name), "%s", slash != NULL ? slash + 1 : argv[optind]);
    }
    n_prompt = llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, CTX_TOKENS, true,
                              false);
    if (n_prompt <= 0) {
        fprintf(stderr, "llama-generate: cannot tokenize the prompt (%d)\n", (int)n_prompt);
        goto out;
    }
    cp = llama_context_default_params();
    cp.n_ctx = CTX_TOKENS;
    cp.n_batch = CTX_TOKENS;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.no_perf = true;
    ctx = llama_init_from_model(model, cp);
    if (ctx == NULL) {
        fprintf(stderr, "llama-generate: cannot create a context\n");
        goto out;
    }
    smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    for (int i = 0; i < requests; i++) {
        struct fleetpulse_request req = {.size = sizeof(req), .model = name};
        req.outcome = generate(ctx, vocab, smpl, tokens, n_prompt, max_tokens, &req);
        llama_sampler_reset(smpl);
        r = fleetpulse_record(probe, &req);
        printf("request %d: model \"%s\", %d prompt + %llu generated tokens, ttft %.3f s, "
               "total %.3f s, outcome %d, record %s\n",
               i + 1, name, (int)n_prompt, (unsigned long long)req.generated_tokens, req.ttft_s,
               req.total_s, (int)req.outcome, r == 0 ? "ok" : strerror(-r));
    }
    rc = 0;
out:
    if (smpl != NULL)
        llama_sampler_free(smpl);
    if (ctx != NULL)
        llama_free(ctx);
    if (model != NULL) {
        llama_model_free(model);
        llama_backend_free();
    }
    /* Sends the requests of the last round and waits (up to ~2 s) for the collector's ack. */
    fleetpulse_probe_destroy(&probe);
    return rc;
}
