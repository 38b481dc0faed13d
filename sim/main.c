/* fleetpulse-sim: a simulated fleet streaming to a collector; see sim.h and README.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "parse.h"
#include "sim.h"

static struct fp_sim *the_sim;

static void on_signal(int sig)
{
    (void)sig;
    if (the_sim != NULL)
        fp_sim_stop(the_sim);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: fleetpulse-sim --collector ENDPOINT [options]\n"
        "  --collector ENDPOINT   collector to stream to, e.g. tcp://127.0.0.1:7070\n"
        "  --devices N            simulated devices (default 1000)\n"
        "  --interval DURATION    sampling interval of every device (default 10s)\n"
        "  --duration DURATION    stream in real time for this long (default: until\n"
        "                         SIGINT/SIGTERM; with --backfill: no live part)\n"
        "  --backfill DURATION    first send this much history, as fast as possible\n"
        "  --follow               after the backfill go on in real time until stopped\n"
        "  --fast                 live part as fast as acks allow, not in real time\n"
        "  --batch-steps N        samples per series per batch (default 1; 360 in backfill)\n"
        "  --connections N        ZeroMQ connections shared by the devices (default 8)\n"
        "  --window N             unacknowledged batches per device (default 8)\n"
        "  --ack-timeout DURATION resend a batch after this long without an ack (default 5s)\n"
        "  --drain DURATION       at the end, wait this long for outstanding acks (default 60s)\n"
        "  --seed N               device identities and values (default 42)\n"
        "  --prefix STRING        device id prefix (default edge-)\n"
        "  --first-index N        number of the first device (default 0)\n"
        "  --outcomes             also send error and fallback request counters\n"
        "  --slow LABEL=VALUE:F   devices with identity LABEL=VALUE run at F x tokens/s\n"
        "                         (e.g. model_version=v2:0.8)\n"
        "  --summary FILE         write the JSON summary here ('-': stdout)\n"
        "  --log-level LEVEL      error, warn, info (default), debug\n"
        "  --version, --help\n");
}

static int parse_slow(const char *arg, struct fp_sim_options *o, char *buf, size_t size)
{
    char *eq, *colon;
    if (strlen(arg) >= size)
        return -EINVAL;
    strcpy(buf, arg);
    eq = strchr(buf, '=');
    colon = strrchr(buf, ':');
    if (eq == NULL || colon == NULL || colon < eq || eq == buf || colon == eq + 1)
        return -EINVAL;
    *eq = '\0';
    *colon = '\0';
    o->slow_label = buf;
    o->slow_value = eq + 1;
    return fp_parse_double(colon + 1, &o->slow_factor);
}

int main(int argc, char **argv)
{
    enum {
        O_COLLECTOR = 256,
        O_DEVICES,
        O_INTERVAL,
        O_DURATION,
        O_BACKFILL,
        O_FOLLOW,
        O_FAST,
        O_BATCH,
        O_CONNECTIONS,
        O_WINDOW,
        O_ACK_TIMEOUT,
        O_DRAIN,
        O_SEED,
        O_PREFIX,
        O_FIRST,
        O_OUTCOMES,
        O_SLOW,
        O_SUMMARY,
        O_LOG_LEVEL,
        O_VERSION,
        O_HELP
    };
    static const struct option longopts[] = {
        {"collector", required_argument, NULL, O_COLLECTOR},
        {"devices", required_argument, NULL, O_DEVICES},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"duration", required_argument, NULL, O_DURATION},
        {"backfill", required_argument, NULL, O_BACKFILL},
        {"follow", no_argument, NULL, O_FOLLOW},
        {"fast", no_argument, NULL, O_FAST},
        {"batch-steps", required_argument, NULL, O_BATCH},
        {"connections", required_argument, NULL, O_CONNECTIONS},
        {"window", required_argument, NULL, O_WINDOW},
        {"ack-timeout", required_argument, NULL, O_ACK_TIMEOUT},
        {"drain", required_argument, NULL, O_DRAIN},
        {"seed", required_argument, NULL, O_SEED},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"first-index", required_argument, NULL, O_FIRST},
        {"outcomes", no_argument, NULL, O_OUTCOMES},
        {"slow", required_argument, NULL, O_SLOW},
        {"summary", required_argument, NULL, O_SUMMARY},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {0},
    };
    const char *prog = "fleetpulse-sim", *summary = NULL;
    struct fp_sim_options o;
    struct fp_sim_totals t;
    char err[256], slow_buf[256];
    uint64_t u;
    int c, r;

    fp_sim_options_default(&o);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case O_COLLECTOR:
            o.collector = a;
            break;
        case O_DEVICES:
            if (fp_parse_u64(a, &u) != 0 || u == 0 || u > 1000000)
                return fp_usage_error(prog, "--devices: expected 1..1000000, got \"%s\"", a);
            o.devices = (size_t)u;
            break;
        case O_INTERVAL:
            if (fp_parse_duration_ms(a, &o.interval_ms) != 0 || o.interval_ms < 1)
                return fp_usage_error(
                    prog, "--interval: expected a duration such as 10s or 500ms, got \"%s\"", a);
            break;
        case O_DURATION:
            if (fp_parse_duration_ms(a, &o.duration_ms) != 0 || o.duration_ms < 1)
                return fp_usage_error(prog,
                                      "--duration: expected a duration such as 60s, got \"%s\"", a);
            break;
        case O_BACKFILL:
            if (fp_parse_duration_ms(a, &o.backfill_ms) != 0 || o.backfill_ms < 1)
                return fp_usage_error(prog,
                                      "--backfill: expected a duration such as 6h, got \"%s\"", a);
            break;
        case O_FOLLOW:
            o.follow = true;
            break;
        case O_FAST:
            o.fast = true;
            break;
        case O_BATCH:
            if (fp_parse_u64(a, &u) != 0 || u == 0 || u > 100000)
                return fp_usage_error(prog, "--batch-steps: expected 1..100000, got \"%s\"", a);
            o.batch_steps = (size_t)u;
            break;
        case O_CONNECTIONS:
            if (fp_parse_u64(a, &u) != 0 || u == 0 || u > 1000)
                return fp_usage_error(prog, "--connections: expected 1..1000, got \"%s\"", a);
            o.connections = (size_t)u;
            break;
        case O_WINDOW:
            if (fp_parse_u64(a, &u) != 0 || u == 0 || u > 1024)
                return fp_usage_error(prog, "--window: expected 1..1024, got \"%s\"", a);
            o.window = (size_t)u;
            break;
        case O_ACK_TIMEOUT:
            if (fp_parse_duration_ms(a, &o.ack_timeout_ms) != 0 || o.ack_timeout_ms < 1)
                return fp_usage_error(
                    prog, "--ack-timeout: expected a duration such as 5s, got \"%s\"", a);
            break;
        case O_DRAIN:
            if (fp_parse_duration_ms(a, &o.drain_ms) != 0)
                return fp_usage_error(prog, "--drain: expected a duration such as 60s, got \"%s\"",
                                      a);
            break;
        case O_SEED:
            if (fp_parse_u64(a, &o.seed) != 0)
                return fp_usage_error(prog, "--seed: expected a non-negative integer, got \"%s\"",
                                      a);
            break;
        case O_PREFIX:
            if (a[0] == '\0' || a[0] == '@' || strlen(a) > 48)
                return fp_usage_error(prog,
                                      "--prefix: expected 1..48 characters not starting with '@'");
            o.prefix = a;
            break;
        case O_FIRST:
            if (fp_parse_u64(a, &u) != 0 || u > 100000000)
                return fp_usage_error(prog, "--first-index: expected 0..100000000, got \"%s\"", a);
            o.first_index = (size_t)u;
            break;
        case O_OUTCOMES:
            o.outcomes = true;
            break;
        case O_SLOW:
            if (parse_slow(a, &o, slow_buf, sizeof(slow_buf)) != 0 || !(o.slow_factor > 0) ||
                o.slow_factor > 100)
                return fp_usage_error(
                    prog,
                    "--slow: expected LABEL=VALUE:FACTOR with FACTOR in (0, 100], "
                    "e.g. model_version=v2:0.8, got \"%s\"",
                    a);
            break;
        case O_SUMMARY:
            summary = a;
            break;
        case O_LOG_LEVEL:
            if (fp_log_parse_level(a, &fp_log_threshold) < 0)
                return fp_usage_error(
                    prog, "--log-level: expected error, warn, info or debug, got \"%s\"", a);
            break;
        case O_VERSION:
            printf("fleetpulse-sim %s\n", FP_VERSION);
            return 0;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            return fp_usage_error(prog, "unknown option \"%s\" (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fp_usage_error(prog, "unexpected argument \"%s\" (see --help)", argv[optind]);
    if (o.collector == NULL)
        return fp_usage_error(prog, "--collector is required (see --help)");

    r = fp_sim_new(&o, &the_sim, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fp_log_info("sim", "%zu devices streaming to %s every %" PRId64 " ms%s", o.devices, o.collector,
                o.interval_ms, o.backfill_ms > 0 ? " after a backfill" : "");
    r = fp_sim_run(the_sim);
    fp_sim_totals(the_sim, &t);
    fp_log_info("sim",
                "%" PRIu64 " samples generated, %" PRIu64 " acknowledged, %" PRIu64
                " refused, %" PRIu64 " unacknowledged; %.0f samples/s, %.0f batches/s, ack p50 "
                "%.2f ms p99 %.2f ms",
                t.generated, t.acknowledged, t.refused, t.unacknowledged, t.samples_per_s,
                t.batches_per_s, t.ack_latency_ms_p50, t.ack_latency_ms_p99);
    if (summary != NULL && fp_sim_write_summary(the_sim, summary) != 0) {
        fprintf(stderr, "%s: cannot write the summary to %s: %s\n", prog, summary, strerror(errno));
        r = r != 0 ? r : -EIO;
    }
    if (r != 0 && r != -EIO)
        fprintf(stderr, "%s: %s\n", prog, strerror(-r));
    fp_sim_destroy(&the_sim);
    if (r != 0)
        return 1;
    return t.unacknowledged > 0 ? 3 : 0;
}
