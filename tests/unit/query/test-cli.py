#!/usr/bin/env python3
"""The fleetpulse-query binary as an operator meets it: flags, exit codes, one-line errors,
serving a real store, and a clean exit on SIGTERM/SIGINT (under ASan, a leak fails the exit code).

Usage: test-cli.py PATH/fleetpulse-query PATH/query-mkstore
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

QUERY, MKSTORE = sys.argv[1], sys.argv[2]
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, file=sys.stderr)


def run(*args):
    p = subprocess.run([QUERY, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def expect_one_line_error(args, code, needle):
    rc, out, err = run(*args)
    lines = err.splitlines()
    if rc != code:
        fail(f"{args}: exit {rc}, expected {code}; stderr {err!r}")
    if out != "":
        fail(f"{args}: unexpected stdout {out!r}")
    if len(lines) != 1 or not lines[0].startswith("fleetpulse-query: "):
        fail(f"{args}: stderr is not one 'fleetpulse-query: ' line: {err!r}")
    elif needle not in lines[0]:
        fail(f"{args}: {lines[0]!r} lacks {needle!r}")


def start(data, listen="127.0.0.1:0", extra=()):
    """Starts the daemon; returns (process, port) once it logs its bound address."""
    p = subprocess.Popen([QUERY, "--data", data, "--listen", listen, *extra],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
    p.kill()
    p.wait()
    raise RuntimeError("fleetpulse-query did not report its address")


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read())


def stop(p, sig):
    p.send_signal(sig)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        fail(f"no exit within 20 s of signal {sig}")
        return
    rest = p.stderr.read()
    if rc != 0:
        fail(f"exit {rc} after signal {sig}; stderr: {rest}")
    if "shutting down" not in rest:
        fail(f"no shutdown line after signal {sig}: {rest!r}")


def main():
    rc, out, err = run("--version")
    if (rc, out, err) != (0, "fleetpulse-query 0.1.0\n", ""):
        fail(f"--version: {(rc, out, err)!r}")
    rc, out, err = run("--help")
    if rc != 0 or err != "" or "--listen HOST:PORT" not in out or "--data DIR" not in out:
        fail(f"--help: {(rc, out, err)!r}")

    expect_one_line_error(["--bogus"], 2, "unknown option --bogus")
    expect_one_line_error(["-x"], 2, "unknown option -x")
    expect_one_line_error(["--data"], 2, "option --data needs a value")
    expect_one_line_error(["--log-level", "loud", "--data", "/tmp"], 2, 'invalid --log-level "loud"')
    expect_one_line_error(["--data", "/tmp", "--listen", "9471"], 2, 'invalid --listen "9471"')
    expect_one_line_error(["--data", "/tmp", "--listen", "h:99999"], 2, "invalid --listen")
    expect_one_line_error(["--data", "/tmp", "--silent-after", "0"], 2,
                          'invalid --silent-after "0"')
    expect_one_line_error(["--data", "/tmp", "--silent-after", "500ms"], 2,
                          "at least 1s")
    expect_one_line_error(["--data", "/tmp", "--silent-after", "5x"], 2,
                          'invalid --silent-after "5x"')
    expect_one_line_error(["--data", "/tmp", "--summary-refresh", "-1"], 2,
                          'invalid --summary-refresh "-1"')
    for bad in ("yesterday", "-5", "0", "1e12"):
        expect_one_line_error(["--data", "/tmp", "--as-of", bad], 2, f'invalid --as-of "{bad}"')
    for bad in ("lots", "-1", "16777217"):
        expect_one_line_error(["--data", "/tmp", "--chunk-cache", bad], 2,
                              f'invalid --chunk-cache "{bad}"')
    expect_one_line_error([], 2, "missing --data DIR")
    expect_one_line_error(["--data", "/tmp", "extra"], 2, 'unexpected argument "extra"')

    with tempfile.TemporaryDirectory(prefix="fp-query-cli-") as tmp:
        missing = os.path.join(tmp, "missing")
        expect_one_line_error(["--data", missing], 1, missing)
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        expect_one_line_error(["--data", empty], 1, empty)
        junk = os.path.join(tmp, "junk")
        os.mkdir(junk)
        with open(os.path.join(junk, "data.mdb"), "wb") as f:
            f.write(b"not an lmdb file" * 512)
        expect_one_line_error(["--data", junk], 1, junk)
        afile = os.path.join(tmp, "afile")
        open(afile, "w").close()
        expect_one_line_error(["--data", afile], 1, afile)

        store = os.path.join(tmp, "store")
        os.mkdir(store)
        subprocess.run([MKSTORE, store], check=True, timeout=30)

        p, port = start(store)
        try:
            status, ctype, body = get(port, "/healthz")
            if (status, ctype, body) != (200, "application/json",
                                         {"status": "ok", "version": "0.1.0"}):
                fail(f"/healthz: {(status, ctype, body)!r}")
            status, _, body = get(port, "/api/v1/devices")
            if status != 200 or [d["device"] for d in body["devices"]] != ["edge-01", "edge-02"]:
                fail(f"/api/v1/devices: {status} {body!r}")
            status, _, body = get(port, "/nope")
            if status != 404 or body.get("status") != "error":
                fail(f"/nope: {status} {body!r}")
            # The address is taken: a second daemon says so in one line and exits 1.
            expect_one_line_error(["--data", store, "--listen", f"127.0.0.1:{port}"], 1,
                                  f"cannot listen on 127.0.0.1:{port}")
        finally:
            stop(p, signal.SIGTERM)

        p, port = start(store)
        status, _, _ = get(port, "/healthz")
        if status != 200:
            fail(f"second run /healthz: {status}")
        stop(p, signal.SIGINT)

        # The fixture's devices last reported in 2024: silent after the default 5 minutes, only
        # stale when --silent-after reaches past that (10000 days).
        for extra, state in (((), "silent"), (("--silent-after", "10000d"), "stale")):
            p, port = start(store, extra=extra)
            try:
                status, _, body = get(port, "/api/v1/devices")
                states = [d["state"] for d in body.get("devices", [])]
                if status != 200 or states != [state, state]:
                    fail(f"{extra}: /api/v1/devices states {status} {states!r}")
                status, _, body = get(port, "/api/v1/fleet/summary")
                if status != 200 or body["states"][state] != 2:
                    fail(f"{extra}: /api/v1/fleet/summary {status} {body.get('states')!r}")
            finally:
                stop(p, signal.SIGTERM)

        # --as-of stands the clock at the fixture's time: edge-01 (1 s interval, last seen at
        # 1732412355.623) is ok 1 s later, stale 10 s later, silent after 5 min; edge-02 (no
        # interval yet: 10 s assumed, last seen at 1732412347.123) is stale 31 s later.
        for as_of, want in (("1732412356.623", {"edge-01": "ok", "edge-02": "ok"}),
                            ("1732412365.623", {"edge-01": "stale", "edge-02": "ok"}),
                            ("1732412378.2", {"edge-01": "stale", "edge-02": "stale"}),
                            ("1732412700", {"edge-01": "silent", "edge-02": "silent"})):
            p, port = start(store, extra=("--as-of", as_of))
            try:
                status, _, body = get(port, "/api/v1/devices")
                got = {d["device"]: d["state"] for d in body.get("devices", [])}
                if status != 200 or got != want:
                    fail(f"--as-of {as_of}: /api/v1/devices states {status} {got!r}, want {want!r}")
            finally:
                stop(p, signal.SIGTERM)

    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
