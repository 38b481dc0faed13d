"""The dashboard's files as HTTP sees them, without a browser: every embedded file comes back
byte for byte with its content type, ETag revalidation answers 304, HEAD carries the length only,
and unknown assets and other methods get the API's JSON errors.

    test_assets.py BUILD_ROOT WEB_SOURCE_DIR UPLOT_DIST_DIR"""
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fplib  # noqa: E402
from fplib import check  # noqa: E402

WEB, UPLOT = sys.argv[2], sys.argv[3]
FILES = {
    "/": (os.path.join(WEB, "index.html"), "text/html; charset=utf-8"),
    "/assets/app.js": (os.path.join(WEB, "app.js"), "text/javascript; charset=utf-8"),
    "/assets/style.css": (os.path.join(WEB, "style.css"), "text/css; charset=utf-8"),
    "/assets/uPlot.iife.min.js": (os.path.join(UPLOT, "uPlot.iife.min.js"),
                                  "text/javascript; charset=utf-8"),
    "/assets/uPlot.min.css": (os.path.join(UPLOT, "uPlot.min.css"), "text/css; charset=utf-8"),
}


def request(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test(st):
    cport, qport = fplib.free_port(), fplib.free_port()
    data = os.path.join(st.tmp, "data")
    collector = st.start("fleetpulse-collector", "--listen", "tcp://127.0.0.1:%d" % cport,
                         "--data", data)
    fplib.wait_collector(st, collector)
    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)

    etags = set()
    for path, (src, ctype) in FILES.items():
        with open(src, "rb") as f:
            want = f.read()
        status, hdr, body = request(qport, "GET", path)
        check(status == 200, "%s: HTTP %d" % (path, status))
        check(body == want, "%s: %d bytes served, %s has %d" % (path, len(body), src, len(want)))
        check(hdr.get("content-type") == ctype, "%s: Content-Type %r" % (path, hdr.get("content-type")))
        check(hdr.get("cache-control") == "no-cache", "%s: Cache-Control %r" % (path, hdr.get("cache-control")))
        etag = hdr.get("etag", "")
        check(len(etag) == 22 and etag[0] == '"' and etag[-1] == '"', "%s: ETag %r" % (path, etag))
        etags.add(etag)

        # Revalidation: the same tag (alone, weak, or in a list) gives 304 and no body; another
        # tag gives the file again.
        for inm in (etag, "W/" + etag, '"x", %s' % etag, "*"):
            status, hdr, body = request(qport, "GET", path, {"If-None-Match": inm})
            check(status == 304 and body == b"" and hdr.get("etag") == etag,
                  "%s If-None-Match %s: %d, %d bytes" % (path, inm, status, len(body)))
        status, _, body = request(qport, "GET", path, {"If-None-Match": '"other"'})
        check(status == 200 and body == want, "%s with another ETag: %d" % (path, status))

        status, hdr, body = request(qport, "HEAD", path)
        check(status == 200 and body == b"" and hdr.get("content-length") == str(len(want)),
              "%s HEAD: %d, Content-Length %r" % (path, status, hdr.get("content-length")))
    check(len(etags) == len(FILES), "ETags repeat: %s" % etags)

    status, hdr, _ = request(qport, "GET", "/?x=1")
    check(status == 200 and hdr.get("content-type").startswith("text/html"), "/?x=1: %d" % status)
    check("default-src 'self'" in request(qport, "GET", "/")[1].get("content-security-policy", ""),
          "/ has no Content-Security-Policy")

    for path in ("/assets/", "/assets/nope.js", "/assets/app.js/x", "/assets/../index.html"):
        status, hdr, body = request(qport, "GET", path)
        check(status == 404 and hdr.get("content-type") == "application/json" and
              json.loads(body) == {"status": "error", "error": "no such dashboard asset"},
              "%s: %d %r" % (path, status, body))
    for method in ("POST", "PUT", "DELETE"):
        status, hdr, body = request(qport, method, "/")
        check(status == 405 and hdr.get("allow") == "GET, HEAD" and
              json.loads(body)["status"] == "error", "%s /: %d %r" % (method, status, body))
    # The API's own paths are untouched.
    status, hdr, body = request(qport, "GET", "/healthz")
    check(status == 200 and json.loads(body)["status"] == "ok", "/healthz: %d" % status)
    status, hdr, body = request(qport, "GET", "/index.html")
    check(status == 404 and "no such endpoint" in json.loads(body)["error"], "/index.html: %d" % status)
    # A clean exit: under the sanitizers a leak or error in serving would show here.
    check(st.stop(query) == 0, "query exit %s" % query.returncode)


fplib.main(test)
