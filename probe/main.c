/* fleetpulse-probe: flags and signals; the loop is in agent.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "parse.h"

#define MAX_TAGS 16

#define PROG "fleetpulse-probe"

static struct fp_agent *running;

static void on_signal(int sig)
{
    if (running != NULL)
        fp_agent_stop(running);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: fleetpulse-probe [OPTIONS]\n"
        "Sample this device (memory, pressure, temperatures, CPU) and stream it to a "
        "fleetpulse collector.\n\n"
        "  --collector ENDPOINT   collector's ZeroMQ endpoint (default %s)\n"
        "  --interval SECONDS     time between samples, e.g. 10, 2.5, 500ms (default 10)\n"
        "  --device-id ID         this device's id (default: /etc/machine-id, else host name)\n"
        "  --procfs DIR           root of procfs (default /proc)\n"
        "  --sysfs DIR            root of sysfs (default /sys)\n"
        "  --site NAME            site label of this device\n"
        "  --hw-class NAME        hardware class, e.g. jetson-orin, kiosk, laptop\n"
        "  --cohort NAME          rollout cohort, e.g. canary or stable\n"
        "  --tag KEY=VALUE        extra identity tag (repeatable, up to %d)\n"
        "  --max-queue-bytes N    unacknowledged data held before the oldest is dropped "
        "(default 67108864)\n"
        "  --spool DIR            keep unacknowledged batches on disk here, across restarts "
        "and outages\n"
        "  --spool-max-bytes N    bound of the spool; past it the oldest batches are dropped "
        "and counted (default 67108864)\n"
        "\nInference runtime:\n"
        "  --llama-server URL     scrape a llama.cpp server (/metrics, /health, /slots, /props)\n"
        "  --api-key KEY          bearer token for the runtime (or env FLEETPULSE_API_KEY)\n"
        "  --scrape-timeout SECONDS  per request to the runtime (default 5)\n"
        "  --canary-interval SECONDS  send a canary prompt this often (default: off)\n"
        "  --canary-prompt TEXT   the canary prompt\n"
        "  --canary-max-tokens N  tokens to generate per canary (default 16)\n"
        "  --canary-timeout SECONDS  give up on a canary after this (default 30)\n"
        "  --openai URL           send canaries to URL/v1/chat/completions instead of "
        "/completion\n"
        "  --openai-model NAME    \"model\" of OpenAI-compatible canaries (default \"default\")\n"
        "  --model FILE.gguf      load the model in-process through libllama and time it\n"
        "  --inproc-interval SECONDS  time a pp + tg round this often (default 60)\n"
        "  --log-level LEVEL      error, warn, info or debug (default info)\n"
        "  --help                 show this help and exit\n"
        "  --version              show the version and exit\n",
        FP_DEFAULT_COLLECTOR_ENDPOINT, MAX_TAGS);
}

static const char *option_name(const struct option *options, int val)
{
    for (; options->name != NULL; options++)
        if (options->val == val)
            return options->name;
    return "?";
}

static bool http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 && s[7] != '\0' && strlen(s) < 1024;
}

static int check_dir(const char *flag, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "fleetpulse-probe: %s: %s is not a directory\n", flag, dir);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_COLLECTOR = 256,
        OPT_INTERVAL,
        OPT_DEVICE,
        OPT_PROCFS,
        OPT_SYSFS,
        OPT_SITE,
        OPT_HW,
        OPT_COHORT,
        OPT_TAG,
        OPT_MAX_QUEUE,
        OPT_MAX_ROUNDS,
        OPT_LOG_LEVEL,
        OPT_HELP,
        OPT_VERSION,
        OPT_LLAMA,
        OPT_API_KEY,
        OPT_SCRAPE_TIMEOUT,
        OPT_CANARY_INTERVAL,
        OPT_CANARY_PROMPT,
        OPT_CANARY_MAX_TOKENS,
        OPT_CANARY_TIMEOUT,
        OPT_OPENAI,
        OPT_OPENAI_MODEL,
        OPT_MODEL,
        OPT_INPROC_INTERVAL,
        OPT_SPOOL,
        OPT_SPOOL_MAX,
    };
    static const struct option options[] = {
        {"collector", required_argument, NULL, OPT_COLLECTOR},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"device-id", required_argument, NULL, OPT_DEVICE},
        {"procfs", required_argument, NULL, OPT_PROCFS},
        {"sysfs", required_argument, NULL, OPT_SYSFS},
        {"site", required_argument, NULL, OPT_SITE},
        {"hw-class", required_argument, NULL, OPT_HW},
        {"cohort", required_argument, NULL, OPT_COHORT},
        {"tag", required_argument, NULL, OPT_TAG},
        {"max-queue-bytes", required_argument, NULL, OPT_MAX_QUEUE},
        /* For tests: stop after N rounds. Not in --help. */
        {"max-rounds", required_argument, NULL, OPT_MAX_ROUNDS},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"spool-max-bytes", required_argument, NULL, OPT_SPOOL_MAX},
        {"llama-server", required_argument, NULL, OPT_LLAMA},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"scrape-timeout", required_argument, NULL, OPT_SCRAPE_TIMEOUT},
        {"canary-interval", required_argument, NULL, OPT_CANARY_INTERVAL},
        {"canary-prompt", required_argument, NULL, OPT_CANARY_PROMPT},
        {"canary-max-tokens", required_argument, NULL, OPT_CANARY_MAX_TOKENS},
        {"canary-timeout", required_argument, NULL, OPT_CANARY_TIMEOUT},
        {"openai", required_argument, NULL, OPT_OPENAI},
        {"openai-model", required_argument, NULL, OPT_OPENAI_MODEL},
        {"model", required_argument, NULL, OPT_MODEL},
        {"inproc-interval", required_argument, NULL, OPT_INPROC_INTERVAL},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct fp_agent_options opts;
    struct fp_label info[3 + MAX_TAGS];
    char tags[MAX_TAGS][256];
    size_t n_info = 0, n_tags = 0;
    char device_id[256], err[512];
    struct fp_agent *a = NULL;
    struct sigaction sa;
    sigset_t mask;
    int opt, r;

    fp_agent_options_default(&opts);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_COLLECTOR:
            opts.collector = optarg;
            break;
        case OPT_INTERVAL:
            if (fp_parse_duration_ms(optarg, &opts.interval_ms) < 0 || opts.interval_ms < 100 ||
                opts.interval_ms > 86400000)
                return fp_usage_error(PROG, "--interval: \"%s\" is not a duration from 100ms to 1d",
                                      optarg);
            break;
        case OPT_DEVICE:
            if (optarg[0] == '\0' || strlen(optarg) > 128 || strpbrk(optarg, "\"\\/") != NULL)
                return fp_usage_error(PROG,
                                      "--device-id: \"%s\" must be 1-128 characters without quotes "
                                      "or slashes",
                                      optarg);
            opts.device_id = optarg;
            break;
        case OPT_PROCFS:
            if (check_dir("--procfs", optarg) != 0)
                return 2;
            opts.env.procfs = optarg;
            break;
        case OPT_SYSFS:
            if (check_dir("--sysfs", optarg) != 0)
                return 2;
            opts.env.sysfs = optarg;
            break;
        case OPT_SITE:
            info[n_info++] = (struct fp_label){"site", optarg};
            break;
        case OPT_HW:
            info[n_info++] = (struct fp_label){"hw_class", optarg};
            break;
        case OPT_COHORT:
            info[n_info++] = (struct fp_label){"cohort", optarg};
            break;
        case OPT_TAG: {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg || n_tags >= MAX_TAGS ||
                strlen(optarg) >= sizeof(tags[0]) - 4)
                return fp_usage_error(PROG, "--tag: \"%s\" is not KEY=VALUE (or too many tags)",
                                      optarg);
            (void)snprintf(tags[n_tags], sizeof(tags[0]), "tag.%.*s", (int)(eq - optarg), optarg);
            info[n_info++] = (struct fp_label){tags[n_tags++], eq + 1};
            break;
        }
        case OPT_MAX_QUEUE: {
            uint64_t v;
            if (fp_parse_u64(optarg, &v) < 0 || v < 4096)
                return fp_usage_error(
                    PROG, "--max-queue-bytes: \"%s\" is not a size of at least 4096", optarg);
            opts.max_queue_bytes = (size_t)v;
            break;
        }
        case OPT_MAX_ROUNDS: {
            uint64_t v;
            if (fp_parse_u64(optarg, &v) < 0)
                return fp_usage_error(PROG, "--max-rounds: \"%s\" is not a count", optarg);
            opts.max_rounds = v;
            break;
        }
        case OPT_SPOOL:
            if (optarg[0] == '\0')
                return fp_usage_error(PROG, "--spool: empty directory name");
            opts.spool_dir = optarg;
            break;
        case OPT_SPOOL_MAX: {
            uint64_t v;
            if (fp_parse_u64(optarg, &v) < 0 || v < 65536)
                return fp_usage_error(PROG,
                                      "--spool-max-bytes: \"%s\" is not a size of at least "
                                      "65536",
                                      optarg);
            opts.spool_max_bytes = v;
            break;
        }
        case OPT_LLAMA:
            if (!http_url(optarg))
                return fp_usage_error(PROG, "--llama-server: \"%s\" is not an http:// URL", optarg);
            opts.env.llama_server_url = optarg;
            break;
        case OPT_OPENAI:
            if (!http_url(optarg))
                return fp_usage_error(PROG, "--openai: \"%s\" is not an http:// URL", optarg);
            opts.env.openai_url = optarg;
            break;
        case OPT_API_KEY:
            opts.env.api_key = optarg;
            break;
        case OPT_OPENAI_MODEL:
            opts.env.openai_model = optarg;
            break;
        case OPT_CANARY_PROMPT:
            if (optarg[0] == '\0' || strlen(optarg) > 4096)
                return fp_usage_error(PROG, "--canary-prompt: must be 1 to 4096 bytes");
            opts.env.canary_prompt = optarg;
            break;
        case OPT_MODEL:
            opts.env.model_path = optarg;
            break;
        case OPT_SCRAPE_TIMEOUT:
        case OPT_CANARY_INTERVAL:
        case OPT_CANARY_TIMEOUT:
        case OPT_INPROC_INTERVAL: {
            int64_t ms;
            if (fp_parse_duration_ms(optarg, &ms) < 0 || ms < 100 || ms > 86400000)
                return fp_usage_error(PROG, "--%s: \"%s\" is not a duration from 100ms to 1d",
                                      option_name(options, opt), optarg);
            if (opt == OPT_SCRAPE_TIMEOUT)
                opts.env.scrape_timeout_ms = ms;
            else if (opt == OPT_CANARY_INTERVAL)
                opts.env.canary_interval_ms = ms;
            else if (opt == OPT_CANARY_TIMEOUT)
                opts.env.canary_timeout_ms = ms;
            else
                opts.env.inproc_interval_ms = ms;
            break;
        }
        case OPT_CANARY_MAX_TOKENS: {
            uint64_t v;
            if (fp_parse_u64(optarg, &v) < 0 || v < 1 || v > 4096)
                return fp_usage_error(PROG, "--canary-max-tokens: \"%s\" is not 1 to 4096", optarg);
            opts.env.canary_max_tokens = (int)v;
            break;
        }
        case OPT_LOG_LEVEL:
            if (fp_log_parse_level(optarg, &fp_log_threshold) < 0)
                return fp_usage_error(PROG, "--log-level: \"%s\" is not error, warn, info or debug",
                                      optarg);
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("fleetpulse-probe %s\n", FP_VERSION);
            return 0;
        case ':':
            return fp_usage_error(PROG, "option %s needs a value", argv[optind - 1]);
        default:
            return fp_usage_error(PROG, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fp_usage_error(PROG, "unexpected argument \"%s\"", argv[optind]);
    if (opts.device_id == NULL) {
        if (fp_agent_default_device_id(device_id, sizeof(device_id)) < 0) {
            fprintf(stderr, "fleetpulse-probe: no machine id or host name; pass --device-id\n");
            return 2;
        }
        opts.device_id = device_id;
    }
    if (opts.env.api_key == NULL)
        opts.env.api_key = getenv("FLEETPULSE_API_KEY");
    if (opts.env.canary_interval_ms > 0 && opts.env.llama_server_url == NULL &&
        opts.env.openai_url == NULL)
        return fp_usage_error(PROG, "--canary-interval needs --llama-server or --openai");
    opts.info = info;
    opts.n_info = n_info;
    /* Interval shorter than the CPU baseline delay: sample sooner. */
    if (opts.first_round_ms > opts.interval_ms)
        opts.first_round_ms = opts.interval_ms;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    r = fp_agent_new(&opts, &a, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "fleetpulse-probe: %s\n", err);
        return 1;
    }
    running = a;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_UNBLOCK, &mask, NULL);

    r = fp_agent_run(a);
    running = NULL;
    fp_agent_destroy(&a);
    if (r < 0) {
        fprintf(stderr, "fleetpulse-probe: %s\n", strerror(-r));
        return 1;
    }
    return 0;
}
