/* The interface every probe source implements, and the emitter it reports through.
 *
 * A sampler reads one kind of thing (memory, PSI, thermal zones, ...) under an injected procfs or
 * sysfs root, so tests drive it with fixture trees. The probe calls open once, sample every
 * interval, close at shutdown. Samplers never log above debug and never allocate per sample
 * beyond what open set up, unless a file must be read. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "label.h"

/* Where a sampler reports. The probe core points it at a batch builder; tests capture. Every
 * sample of one round carries ts_ms, the time of the round. */
struct fp_emitter {
    /* Records one sample. Returns 0 or -errno. */
    int (*sample)(void *userdata, const char *metric, enum fp_metric_type type,
                  const struct fp_label *labels, size_t n_labels, int64_t ts_ms, double value);
    /* Records one event with optional attributes. Returns 0 or -errno. */
    int (*event)(void *userdata, int64_t ts_ms, enum fp_severity severity, const char *kind,
                 const char *message, const struct fp_label *attrs, size_t n_attrs);
    /* Sets one identity field of the device (DeviceInfo names: "model", "quant", "runtime",
     * "runtime_version", "model_sha256", ...). The probe resends the identity when a value
     * changes. May be NULL (tests). Returns 0 or -errno. */
    int (*info)(void *userdata, const char *name, const char *value);
    void *userdata;
    int64_t ts_ms; /**< time of this round, ms since the Unix epoch */
};

/* Shorthands for samplers. */
int fp_emit_gauge(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                  size_t n_labels, double value);
int fp_emit_counter(struct fp_emitter *e, const char *metric, const struct fp_label *labels,
                    size_t n_labels, double value);

/* Records one event at the round's time; attrs may be NULL. */
int fp_emit_event(struct fp_emitter *e, enum fp_severity severity, const char *kind,
                  const char *message, const struct fp_label *attrs, size_t n_attrs);

/* Sets one identity field (see struct fp_emitter.info); a no-op when the emitter has none. */
int fp_emit_info(struct fp_emitter *e, const char *name, const char *value);

/* What a sampler gets at open. Strings borrowed for the sampler's lifetime. A source that needs
 * settings nobody gave (no --llama-server URL, no --model) returns FP_SAMPLER_DISABLED. */
struct fp_sampler_env {
    const char *procfs; /**< root of /proc, e.g. "/proc" or a fixture dir */
    const char *sysfs;  /**< root of /sys */

    /* inference runtime (llama.cpp server and OpenAI-compatible servers) */
    const char *llama_server_url; /**< e.g. "http://127.0.0.1:8080"; NULL: not scraped */
    const char *api_key;          /**< sent as a Bearer token when set */
    int64_t scrape_timeout_ms;    /**< per HTTP request to the runtime */

    /* canary prompts: to llama_server_url's /completion, or openai_url's /v1/chat/completions */
    const char *openai_url;       /**< OpenAI-compatible base URL; NULL: use /completion */
    const char *openai_model;     /**< "model" field for OpenAI requests; NULL: "default" */
    int64_t canary_interval_ms;   /**< 0: no canary */
    const char *canary_prompt;
    int canary_max_tokens;
    int64_t canary_timeout_ms;

    /* in-process inference through libllama */
    const char *model_path;       /**< GGUF file; NULL: no in-process source */
    int64_t inproc_interval_ms;

    /* Where open may write a one-line reason when it fails and errno alone would not say what
     * to do (the in-process source names the module paths it tried); the caller logs it and
     * sends it as the source_unavailable event. NULL: nowhere. Left as it was on success. */
    char *open_error;
    size_t open_error_size;
};

/* open's answer for a source that is not configured: skipped without a log line. */
#define FP_SAMPLER_DISABLED 1

#define FP_SAMPLER_OPS_VERSION 1

struct fp_sampler_ops {
    unsigned version; /**< FP_SAMPLER_OPS_VERSION; methods may be appended in later versions */
    const char *name; /**< short, stable: used in logs and the "source" label */

    /* Prepares the source. Returns 0 and *ret_ctx (freed by close), FP_SAMPLER_DISABLED when it
     * is not configured, -ENOENT when the source does not exist on this machine (the probe skips
     * it with one log line), or another -errno. May read files and start a thread of its own
     * (sources that talk HTTP do their I/O there and hand results to sample()); does not block
     * otherwise. */
    int (*open)(const struct fp_sampler_env *env, void **ret_ctx);

    /* Reads the source once and emits through out. Returns the number of values that could not
     * be read or parsed (0 when all went well; the probe counts them), or -errno when the whole
     * source failed this round (e.g. its file vanished). Reads files; never blocks otherwise. */
    int (*sample)(void *ctx, struct fp_emitter *out);

    /* Frees ctx; accepts NULL and nulls *ctx. */
    void (*close)(void **ctx);
};

/* The built-in samplers, NULL-terminated, in the order they run. */
extern const struct fp_sampler_ops *const fp_samplers[];
