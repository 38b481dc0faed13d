/* fleetpulse-collector: flags, signals and the data directory; the work is in collector.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "collector.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "parse.h"

#define PROG "fleetpulse-collector"

static struct fp_collector *running;

static void on_signal(int sig)
{
    if (running != NULL)
        fp_collector_stop(running);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: fleetpulse-collector [OPTIONS]\n"
        "Receive batches from fleetpulse probes over ZeroMQ and store them in LMDB.\n\n"
        "  --listen ENDPOINT          ZeroMQ endpoint to bind (default %s)\n"
        "  --data DIR                 store directory; created if its parent exists (required)\n"
        "  --max-message-bytes N      largest batch accepted (default 4194304)\n"
        "  --raw-retention DURATION   keep raw samples this long, whole days (default 15d)\n"
        "  --rollup-retention DURATION keep one-hour rollups this long (default 730d)\n"
        "  --log-level LEVEL          error, warn, info or debug (default info)\n"
        "  --help                     show this help and exit\n"
        "  --version                  show the version and exit\n",
        FP_DEFAULT_COLLECTOR_ENDPOINT);
}

int main(int argc, char **argv)
{
    enum {
        OPT_LISTEN = 256,
        OPT_DATA,
        OPT_LOG_LEVEL,
        OPT_MAX_MSG,
        OPT_RAW_RETENTION,
        OPT_ROLLUP_RETENTION,
        OPT_HELP,
        OPT_VERSION
    };
    static const struct option options[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"data", required_argument, NULL, OPT_DATA},
        {"max-message-bytes", required_argument, NULL, OPT_MAX_MSG},
        {"raw-retention", required_argument, NULL, OPT_RAW_RETENTION},
        {"rollup-retention", required_argument, NULL, OPT_ROLLUP_RETENTION},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct fp_collector_options opts;
    struct fp_collector *c = NULL;
    struct fp_collector_stats st;
    struct sigaction sa;
    sigset_t mask;
    char err[512];
    int opt, r;

    fp_collector_options_default(&opts);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            opts.listen = optarg;
            break;
        case OPT_DATA:
            opts.data_dir = optarg;
            break;
        case OPT_MAX_MSG: {
            uint64_t v;
            if (fp_parse_u64(optarg, &v) < 0 || v < 1024 || v > (1u << 30))
                return fp_usage_error(
                    PROG, "--max-message-bytes: \"%s\" is not a size from 1024 to 2^30", optarg);
            opts.limits.max_message_bytes = (size_t)v;
            break;
        }
        case OPT_RAW_RETENTION:
        case OPT_ROLLUP_RETENTION: {
            int64_t ms;
            const char *name = opt == OPT_RAW_RETENTION ? "raw" : "rollup";
            /* At least a day for raw: its partitions are days, and an hour of rollups. */
            int64_t min_ms = opt == OPT_RAW_RETENTION ? INT64_C(86400000) : INT64_C(3600000);
            if (fp_parse_duration_ms(optarg, &ms) < 0 || ms < min_ms)
                return fp_usage_error(PROG, "--%s-retention: \"%s\" is not a duration of at least %s",
                                      name, optarg, opt == OPT_RAW_RETENTION ? "1d" : "1h");
            if (opt == OPT_RAW_RETENTION)
                opts.store.raw_retention_ms = ms;
            else
                opts.store.rollup_retention_ms = ms;
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
            printf("fleetpulse-collector %s\n", FP_VERSION);
            return 0;
        case ':':
            return fp_usage_error(PROG, "option %s needs a value", argv[optind - 1]);
        default:
            return fp_usage_error(PROG, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fp_usage_error(PROG, "unexpected argument \"%s\"", argv[optind]);
    if (opts.data_dir == NULL)
        return fp_usage_error(PROG, "--data DIR is required");

    if (mkdir(opts.data_dir, 0750) == 0)
        fp_log_info("collector", "created data directory %s", opts.data_dir);
    else if (errno != EEXIST) {
        fprintf(stderr, "fleetpulse-collector: cannot create data directory %s: %s\n",
                opts.data_dir, strerror(errno));
        return 1;
    }

    /* Block the stop signals before ZeroMQ starts its threads, so they inherit the mask and the
     * signal reaches this thread, where it interrupts zmq_poll. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    r = fp_collector_new(&opts, &c, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "fleetpulse-collector: %s\n", err);
        return 1;
    }
    running = c;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_UNBLOCK, &mask, NULL);

    fp_log_info("collector", "listening on %s, storing in %s", fp_collector_endpoint(c),
                opts.data_dir);
    r = fp_collector_run(c);
    fp_collector_get_stats(c, &st);
    fp_log_info("collector",
                "stopping: %" PRIu64 " batches received, %" PRIu64 " applied, %" PRIu64
                " duplicate, %" PRIu64 " samples stored, %" PRIu64 " samples refused",
                st.batches_received, st.batches_applied, st.batches_duplicate, st.samples_applied,
                st.samples_refused);
    running = NULL;
    fp_collector_destroy(&c);
    if (r < 0) {
        fprintf(stderr, "fleetpulse-collector: socket failed: %s\n", strerror(-r));
        return 1;
    }
    return 0;
}
