/* fleetpulse-query: flags, signals and the event loop around struct fp_query_server.
 * Exit status: 0 after SIGTERM/SIGINT, 1 when it cannot start (store, address), 2 for bad usage. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alert-service.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "params.h"
#include "parse.h"
#include "server.h"

#define PROG "fleetpulse-query"

enum {
    OPT_LOG_LEVEL = 256, /* long-only options take values past any char */
    OPT_SILENT_AFTER,
    OPT_SUMMARY_REFRESH,
    OPT_AS_OF,
    OPT_RULES,
    OPT_ALERT_STATE,
    OPT_EVAL_INTERVAL,
    OPT_ALERTMANAGER,
    OPT_EXTERNAL_URL,
    OPT_CHUNK_CACHE,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"data", required_argument, NULL, 'd'},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"silent-after", required_argument, NULL, OPT_SILENT_AFTER},
    {"summary-refresh", required_argument, NULL, OPT_SUMMARY_REFRESH},
    {"as-of", required_argument, NULL, OPT_AS_OF},
    {"rules", required_argument, NULL, OPT_RULES},
    {"alert-state", required_argument, NULL, OPT_ALERT_STATE},
    {"eval-interval", required_argument, NULL, OPT_EVAL_INTERVAL},
    {"alertmanager", required_argument, NULL, OPT_ALERTMANAGER},
    {"external-url", required_argument, NULL, OPT_EXTERNAL_URL},
    {"chunk-cache", required_argument, NULL, OPT_CHUNK_CACHE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* --as-of: the service's clock stands still there. */
static int64_t as_of_ms;

static int64_t as_of_now(void)
{
    return as_of_ms;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " --data DIR [--listen HOST:PORT] [--log-level LEVEL]\n"
            "Serve the fleetpulse store in DIR (read-only) as JSON over HTTP.\n"
            "\n"
            "  -d, --data DIR          store directory written by fleetpulse-collector (required)\n"
            "  -l, --listen HOST:PORT  address to listen on (default " FP_DEFAULT_QUERY_LISTEN
            "; [::1]:PORT for IPv6)\n"
            "      --log-level LEVEL   error, warn, info (default) or debug\n"
            "      --silent-after DUR  a device without a batch for DUR is silent (default 5m)\n"
            "      --summary-refresh DUR  reuse a fleet summary, compare or /metrics answer for\n"
            "                          DUR (default 1s; 0: compute every time)\n"
            "      --as-of UNIX_SECONDS  answer as if the clock stood at this time: device\n"
            "                          states and default windows (replaying old data)\n"
            "      --rules FILE        alert rules (docs/alerts.md); reloaded on SIGHUP\n"
            "      --alert-state FILE  alert state kept across restarts (default FILE.state)\n"
            "      --eval-interval DUR evaluate the rules every DUR (default 15s)\n"
            "      --alertmanager URL  push alerts to Alertmanager at URL (http://HOST:PORT)\n"
            "      --external-url URL  base of the alerts' generatorURL (default http://ADDRESS)\n"
            "      --chunk-cache N     keep up to N decoded chunks for repeated reads (default\n"
            "                          8192, about 6 KiB each; 0: none)\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "Endpoints: /healthz, /metrics, /api/v1/devices, /api/v1/devices/ID,\n"
            "/api/v1/fleet/summary, /api/v1/compare, /api/v1/series, ... (see docs/api.md).\n");
}

static void on_sighup(evutil_socket_t sig, short events, void *arg)
{
    struct fp_alert_service *alerts = *(struct fp_alert_service **)arg;

    if (alerts == NULL) {
        fp_log_info("query", "SIGHUP: no --rules, nothing to reload");
        return;
    }
    (void)fp_alert_service_reload(alerts);
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    struct event_base *base = arg;

    fp_log_info("query", "%s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    (void)event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    struct fp_query_options opts;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    struct fp_query_server *srv = NULL;
    struct fp_alert_service *alerts = NULL;
    struct fp_alert_service_options alert_opts = {
        .eval_interval_ms = FP_ALERT_EVAL_INTERVAL_MS_DEFAULT,
    };
    char err[512], host[256];
    uint16_t port;
    int c, status = 1;

    fp_query_options_default(&opts);
    opterr = 0; /* our own one-line messages instead of getopt's */
    while ((c = getopt_long(argc, argv, ":l:d:hV", long_options, NULL)) != -1) {
        switch (c) {
        case 'l':
            opts.listen = optarg;
            break;
        case 'd':
            opts.data_dir = optarg;
            break;
        case OPT_LOG_LEVEL:
            if (fp_log_parse_level(optarg, &fp_log_threshold) < 0)
                return fp_usage_error(PROG, "invalid --log-level \"%s\" (error, warn, info, debug)",
                                      optarg);
            break;
        case OPT_SILENT_AFTER:
            if (fp_query_duration_parse(optarg, &opts.silent_after_ms) < 0 ||
                opts.silent_after_ms < 1000)
                return fp_usage_error(PROG, "invalid --silent-after \"%s\" (a duration of at "
                                            "least 1s, e.g. 5m)",
                                      optarg);
            break;
        case OPT_SUMMARY_REFRESH:
            if (fp_query_duration_parse(optarg, &opts.summary_refresh_ms) < 0)
                return fp_usage_error(PROG, "invalid --summary-refresh \"%s\" (a duration, e.g. "
                                            "1s; 0 to turn reuse off)",
                                      optarg);
            break;
        case OPT_AS_OF: {
            double t;
            if (fp_parse_double(optarg, &t) < 0 || !(t > 0 && t < 1e11))
                return fp_usage_error(PROG, "invalid --as-of \"%s\" (Unix seconds, e.g. "
                                            "1754006400)",
                                      optarg);
            as_of_ms = (int64_t)(t * 1000.0);
            opts.now_ms = as_of_now;
            break;
        }
        case OPT_RULES:
            alert_opts.rules_path = optarg;
            break;
        case OPT_ALERT_STATE:
            alert_opts.state_path = optarg;
            break;
        case OPT_EVAL_INTERVAL:
            if (fp_parse_duration_ms(optarg, &alert_opts.eval_interval_ms) < 0 ||
                alert_opts.eval_interval_ms < 100)
                return fp_usage_error(PROG,
                                      "invalid --eval-interval \"%s\" (e.g. 15s, 1m; at "
                                      "least 100ms)",
                                      optarg);
            break;
        case OPT_CHUNK_CACHE: {
            uint64_t n;
            if (fp_parse_u64(optarg, &n) < 0 || n > (UINT64_C(1) << 24))
                return fp_usage_error(PROG, "invalid --chunk-cache \"%s\" (a count of chunks, "
                                            "0 to 16777216)",
                                      optarg);
            opts.decoded_cache_chunks = (size_t)n;
            break;
        }
        case OPT_ALERTMANAGER:
            alert_opts.alertmanager_url = optarg;
            break;
        case OPT_EXTERNAL_URL:
            alert_opts.external_url = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " %s\n", FP_VERSION);
            return 0;
        case ':':
            return fp_usage_error(PROG, "option %s needs a value", argv[optind - 1]);
        default:
            if (optopt != 0) {
                char opt[3] = {'-', (char)optopt, '\0'};
                return fp_usage_error(PROG, "unknown option %s", opt);
            }
            return fp_usage_error(PROG, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fp_usage_error(PROG, "unexpected argument \"%s\"", argv[optind]);
    if (opts.data_dir == NULL)
        return fp_usage_error(PROG, "missing --data DIR");
    if (fp_query_listen_parse(opts.listen, host, sizeof(host), &port) < 0)
        return fp_usage_error(PROG, "invalid --listen \"%s\" (expected HOST:PORT)", opts.listen);
    if (alert_opts.rules_path == NULL &&
        (alert_opts.state_path != NULL || alert_opts.alertmanager_url != NULL))
        return fp_usage_error(PROG, "--alert-state and --alertmanager need --rules FILE");

    /* A client that hangs up mid-response must cost a failed write, not the process. */
    (void)signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, PROG ": cannot create the event loop\n");
        goto out;
    }
    if (fp_query_server_new(base, &opts, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    if (alert_opts.rules_path != NULL) {
        int r = fp_alert_service_new(base, srv, &alert_opts, &alerts, err, sizeof(err));
        if (r != 0) {
            /* A rules file that does not load is a usage error, like a bad flag. */
            fprintf(stderr, PROG ": %s\n", err);
            status = r == -ENOMEM ? 1 : 2;
            goto out;
        }
    }
    sighup = evsignal_new(base, SIGHUP, on_sighup, &alerts);
    if (sighup == NULL || evsignal_add(sighup, NULL) < 0) {
        fprintf(stderr, PROG ": cannot install signal handlers\n");
        goto out;
    }
    sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0) {
        fprintf(stderr, PROG ": cannot install signal handlers\n");
        goto out;
    }

    /* Tests and scripts read the bound port from this line when they asked for port 0. */
    fp_log_info("query", "fleetpulse-query %s listening on %s%s%s:%u, data \"%s\"", FP_VERSION,
                strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                (unsigned)fp_query_server_port(srv), opts.data_dir);
    if (event_base_dispatch(base) < 0) {
        fp_log_error("query", "event loop failed");
        goto out;
    }
    status = 0;

out:
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sighup != NULL)
        event_free(sighup);
    /* Before the server: the service's hook and timer point into it. */
    fp_alert_service_destroy(&alerts);
    fp_query_server_destroy(&srv);
    if (base != NULL)
        event_base_free(base);
    libevent_global_shutdown();
    return status;
}
