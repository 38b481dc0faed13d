/* GET /metrics: the Prometheus text exposition (format 0.0.4) of the fleet's aggregates (from
 * fleet.c, per model, model_version and site) and of the query service's own health: requests
 * by route and status, request latency and store read-transaction time as histograms, summary
 * cache use. Names follow Prometheus conventions: base units, no colons (those are for
 * recording rules). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "alert-service.h"
#include "config.h"
#include "error.h"
#include "jsonout.h"
#include "params.h"
#include "query-internal.h"

/* Appends one histogram family's samples for one label set (labels: "" or `route="..."`). */
static int histogram_lines(struct evbuffer *out, const char *name, const char *labels,
                           const struct fp_query_histogram *h)
{
    char num[FP_JSONOUT_DOUBLE_MAX];
    const char *sep = labels[0] != '\0' ? "," : "";
    uint64_t cumulative = 0;
    int r = 0;

    for (size_t i = 0; i <= FP_QUERY_LATENCY_BUCKETS; i++) {
        cumulative += h->buckets[i];
        if (i < FP_QUERY_LATENCY_BUCKETS)
            (void)fp_jsonout_format_double(num, sizeof(num), fp_query_latency_bounds[i]);
        r |= evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, sep,
                                 i < FP_QUERY_LATENCY_BUCKETS ? num : "+Inf", cumulative) < 0;
    }
    (void)fp_jsonout_format_double(num, sizeof(num), h->sum_s);
    r |= evbuffer_add_printf(out, "%s_sum%s%s%s %s\n", name, labels[0] ? "{" : "", labels,
                             labels[0] ? "}" : "", num) < 0;
    r |= evbuffer_add_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name, labels[0] ? "{" : "",
                             labels, labels[0] ? "}" : "", h->count) < 0;
    return r ? -ENOMEM : 0;
}

static int service_metrics(struct fp_query_server *srv, struct evbuffer *out)
{
    char labels[160];
    uint64_t chunk_hits, chunk_misses;
    int r = 0;

    fp_store_chunk_cache_counts(srv->store, &chunk_hits, &chunk_misses);

    r |= evbuffer_add_printf(out,
                             "# HELP fleetpulse_query_requests_total Requests answered, by route "
                             "and HTTP status.\n"
                             "# TYPE fleetpulse_query_requests_total counter\n") < 0;
    for (size_t i = 0; i < srv->n_routes; i++)
        for (size_t j = 0; j < FP_QUERY_CODES_MAX && srv->routes[i].codes[j] != 0; j++)
            r |= evbuffer_add_printf(out,
                                     "fleetpulse_query_requests_total{route=\"%s\",code=\"%d\"} "
                                     "%" PRIu64 "\n",
                                     srv->routes[i].name, srv->routes[i].codes[j],
                                     srv->routes[i].counts[j]) < 0;

    r |= evbuffer_add_printf(out,
                             "# HELP fleetpulse_query_request_duration_seconds Time from a "
                             "request's arrival to its answer, by route.\n"
                             "# TYPE fleetpulse_query_request_duration_seconds histogram\n") < 0;
    for (size_t i = 0; i < srv->n_routes && r == 0; i++) {
        if (srv->routes[i].latency.count == 0)
            continue;
        /* Route names are our own paths: no character needs escaping. */
        (void)snprintf(labels, sizeof(labels), "route=\"%s\"", srv->routes[i].name);
        r = histogram_lines(out, "fleetpulse_query_request_duration_seconds", labels,
                            &srv->routes[i].latency);
    }

    r |= evbuffer_add_printf(out,
                             "# HELP fleetpulse_query_store_read_duration_seconds How long read "
                             "transactions on the store stayed open.\n"
                             "# TYPE fleetpulse_query_store_read_duration_seconds histogram\n") < 0;
    if (r == 0)
        r = histogram_lines(out, "fleetpulse_query_store_read_duration_seconds", "",
                            &srv->store_reads);

    r |= evbuffer_add_printf(out,
                             "# HELP fleetpulse_query_cache_requests_total Fleet summary, compare, "
                             "/metrics and sort-value answers served from the cache (hit) or "
                             "computed (miss).\n"
                             "# TYPE fleetpulse_query_cache_requests_total counter\n"
                             "fleetpulse_query_cache_requests_total{result=\"hit\"} %" PRIu64 "\n"
                             "fleetpulse_query_cache_requests_total{result=\"miss\"} %" PRIu64 "\n"
                             "# HELP fleetpulse_query_chunk_cache_requests_total Stored chunks "
                             "read from the decoded-chunk cache (hit) or decoded (miss); see "
                             "--chunk-cache.\n"
                             "# TYPE fleetpulse_query_chunk_cache_requests_total counter\n"
                             "fleetpulse_query_chunk_cache_requests_total{result=\"hit\"} %" PRIu64
                             "\n"
                             "fleetpulse_query_chunk_cache_requests_total{result=\"miss\"} %" PRIu64
                             "\n"
                             "# HELP fleetpulse_query_build_info The running version.\n"
                             "# TYPE fleetpulse_query_build_info gauge\n"
                             "fleetpulse_query_build_info{version=\"%s\"} 1\n",
                             srv->cache_hits, srv->cache_misses, chunk_hits, chunk_misses,
                             FP_VERSION) < 0;
    return r ? -ENOMEM : 0;
}

int fp_api_metrics(struct fp_query_server *srv, const char *arg, const char *query,
                   struct evbuffer *out, char *err, size_t err_size)
{
    struct fp_query_params params;
    int status;

    (void)arg;
    if (fp_query_params_parse(query, &params, err, err_size) < 0)
        return FP_HTTP_BAD_REQUEST;
    status =
        fp_query_params_check(&params, NULL, err, err_size) < 0 ? FP_HTTP_BAD_REQUEST : FP_HTTP_OK;
    fp_query_params_fini(&params);
    if (status != FP_HTTP_OK)
        return status;

    status = fp_fleet_metrics(srv, out, err, err_size);
    if (status != FP_HTTP_OK)
        return status;
    if (service_metrics(srv, out) < 0 || fp_alert_metrics(srv, out) < 0) {
        fp_set_err(err, err_size, "out of memory");
        return FP_HTTP_INTERNAL_ERROR;
    }
    srv->reply_content_type = "text/plain; version=0.0.4; charset=utf-8";
    return FP_HTTP_OK;
}
