"""Harness for integration tests: start the real daemons on free loopback ports with a temporary
data directory, talk HTTP to the query service, and clean up whatever happens."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """Processes and a temp dir that go away on exit, even when a check fails."""

    def __init__(self, build_dir):
        self.build = build_dir
        self.tmp = tempfile.mkdtemp(prefix="fp-it-")
        self.procs = []

    def exe(self, name):
        sub = {"fleetpulse-collector": "collector", "fleetpulse-probe": "probe",
               "fleetpulse-query": "query", "fleetpulse-sim": "sim"}[name]
        return os.path.join(self.build, sub, name)

    def start(self, name, *args):
        log = open(os.path.join(self.tmp, "%s-%d.log" % (name, len(self.procs))), "w+")
        p = subprocess.Popen([self.exe(name)] + [str(a) for a in args], stdout=log,
                             stderr=subprocess.STDOUT)
        p.log = log
        self.procs.append(p)
        return p

    def output(self, p):
        p.log.flush()
        p.log.seek(0)
        return p.log.read()

    def stop(self, p, timeout=10):
        """SIGTERM and the exit code; a daemon that does not stop is a failure."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise Fail("%s did not stop on SIGTERM within %ds" % (p.args[0], timeout))
        return p.returncode

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self):
        for p in self.procs:
            sys.stderr.write("---- %s\n%s\n" % (" ".join(p.args), self.output(p)))


def http(port, path, method="GET"):
    """Returns (status, parsed JSON or None, raw text)."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read().decode()
            status = r.status
            ctype = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raw = e.read().decode()
        status = e.code
        ctype = e.headers.get("Content-Type", "")
    body = None
    if raw:
        check("application/json" in ctype, "%s: Content-Type %r, not JSON" % (path, ctype))
        body = json.loads(raw)
    return status, body, raw


def wait_http(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise Fail("query service exited with %d before answering" % proc.returncode)
        try:
            status, _, _ = http(port, "/healthz")
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise Fail("query service did not answer /healthz within %ds" % timeout)


def wait_collector(st, proc, timeout=10):
    """Waits until the collector has opened (or created) its store and listens: its
    "listening on" line. The store's file appears a moment before its databases do, so a query
    service started on the file alone can find no store yet."""
    def ready():
        if proc.poll() is not None:
            raise Fail("collector exited with %d before listening" % proc.returncode)
        return "listening on" in st.output(proc)
    wait_for(ready, timeout, "the collector to listen")


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise Fail("timed out after %ss waiting for %s" % (timeout, what))


def main(test):
    """Runs test(stack); prints the failure and the daemons' logs, exits 1 on failure."""
    stack = Stack(sys.argv[1])
    try:
        test(stack)
    except Fail as e:
        sys.stderr.write("FAIL: %s\n" % e)
        stack.dump_logs()
        sys.exit(1)
    finally:
        stack.close()
    print("ok")
