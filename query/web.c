/* Serves the embedded dashboard files (web.h). The bytes live in the binary's read-only data, so
 * a reply references them instead of copying; nothing here allocates per asset.
 *
 * The dashboard has its own replies rather than an fp_api_handler because it needs other
 * Content-Types, an ETag and conditional requests, which the JSON handlers never do. Caching:
 * no-cache plus a content-hash ETag instead of long max-age with hashed file names: the page is
 * small, served from the same loopback or LAN host, and a revalidation costs one 304. */
#include "web.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define ASSETS_PREFIX "/assets/"

const struct fp_web_asset *fp_web_find(const char *path)
{
    for (size_t i = 0; i < fp_web_asset_count; i++)
        if (strcmp(fp_web_assets[i].path, path) == 0)
            return &fp_web_assets[i];
    return NULL;
}

/* Whether an If-None-Match header value names etag: "*", or a comma-separated list of (possibly
 * weak, W/-prefixed) tags, one of them equal. Weak comparison is what RFC 9110 asks for here. */
static bool etag_listed(const char *header, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = header;

    while (*p != '\0') {
        const char *end;
        size_t len;

        p += strspn(p, " \t,");
        if (*p == '\0')
            break;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        end = strchr(p, ',');
        len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == elen && memcmp(p, etag, elen) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Sends status with a fixed JSON error body, the shape the API's errors have. */
static void send_json_error(struct evhttp_request *req, int status, const char *reason,
                            const char *json_body, bool head)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();

    (void)evhttp_add_header(out, "Content-Type", "application/json");
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (head) {
        char cl[24];
        (void)snprintf(cl, sizeof(cl), "%zu", strlen(json_body));
        (void)evhttp_add_header(out, "Content-Length", cl);
    } else {
        (void)evbuffer_add(body, json_body, strlen(json_body));
    }
    evhttp_send_reply(req, status, reason, body);
    evbuffer_free(body);
}

bool fp_web_handle(struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const struct fp_web_asset *asset;
    const char *inm;
    struct evbuffer *body;
    bool head = method == EVHTTP_REQ_HEAD;

    if (strcmp(path, "/") != 0 && strncmp(path, ASSETS_PREFIX, strlen(ASSETS_PREFIX)) != 0)
        return false;

    if (method != EVHTTP_REQ_GET && !head) {
        (void)evhttp_add_header(out, "Allow", "GET, HEAD");
        send_json_error(req, 405, "Method Not Allowed",
                        "{\"status\":\"error\",\"error\":\"method not allowed; use GET\"}", false);
        return true;
    }
    asset = fp_web_find(path);
    if (asset == NULL) {
        send_json_error(req, 404, "Not Found",
                        "{\"status\":\"error\",\"error\":\"no such dashboard asset\"}", head);
        return true;
    }

    (void)evhttp_add_header(out, "ETag", asset->etag);
    (void)evhttp_add_header(out, "Cache-Control", "no-cache");
    (void)evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm != NULL && etag_listed(inm, asset->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return true;
    }

    (void)evhttp_add_header(out, "Content-Type", asset->content_type);
    if (strcmp(asset->path, "/") == 0)
        /* The page talks only to its own origin; uPlot sets inline styles on its elements. */
        (void)evhttp_add_header(out, "Content-Security-Policy",
                                "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'");
    body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return true;
    }
    if (head) {
        /* libevent 2.1 would send a HEAD reply's body and drop Content-Length (see server.c). */
        char cl[24];
        (void)snprintf(cl, sizeof(cl), "%zu", asset->size_bytes);
        (void)evhttp_add_header(out, "Content-Length", cl);
    } else if (evbuffer_add_reference(body, asset->data, asset->size_bytes, NULL, NULL) != 0) {
        evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return true;
    }
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
    return true;
}
