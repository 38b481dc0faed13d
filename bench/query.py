#!/usr/bin/env python3
"""bench/query's driver: the query service's fleet endpoints with a simulated fleet.

A collector takes fleetpulse-sim's fleet (10,000 devices, 30 min of history at 10 s, then live
every 10 s while measuring, so the service answers under its real write load); fleetpulse-query
serves it. Measured per run:
  latency   one client, keep-alive, sequential: p50/p99 of /api/v1/fleet/summary,
            /api/v1/devices (100 sorted by a latest metric) and /api/v1/compare (v1 vs v2 over
            15 min), each request spread over more than one summary refresh interval;
  throughput  wrk, 64 connections, 2 threads: /api/v1/fleet/summary requests/s, and /healthz
            requests/s as the baseline (the HTTP server's ceiling on this machine).
Medians over the runs; the last line printed is one JSON object."""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from daemons import free_port, stop, wait_listening


def timed(conn, path):
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        sys.exit("bench/query: %s -> %d %s" % (path, r.status, body[:300]))
    return ms, body


def latencies(port, path, n, spacing_s):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(n):
        ms, _ = timed(conn, path)
        times.append(ms)
        time.sleep(spacing_s)
    conn.close()
    times.sort()
    return times[len(times) // 2], times[int((len(times) - 1) * 0.99)]


def wrk_rps(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m is None or re.search(r"Non-2xx", out):
        sys.exit("bench/query: wrk on %s: %s" % (path, out))
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    exe = lambda sub, name: os.path.join(a.bin, sub, name)  # noqa: E731
    runs = a.runs or (1 if a.quick else 3)
    devices = 1000 if a.quick else 10000
    history = "15m" if a.quick else "30m"
    n_req = 40 if a.quick else 200
    spacing = 0.05 if a.quick else 0.02  # either way the requests span several refreshes
    wrk_s = 3 if a.quick else 10
    if shutil.which("wrk") is None:
        sys.exit("bench/query: wrk is not installed (deploy/install-deps.sh installs it)")

    tmp = tempfile.mkdtemp(prefix="fp-bench-query-")
    procs = []
    try:
        cport, qport = free_port(), free_port()
        endpoint = "tcp://127.0.0.1:%d" % cport
        data = os.path.join(tmp, "data")
        coll = subprocess.Popen([exe("collector", "fleetpulse-collector"), "--listen", endpoint,
                                 "--data", data, "--log-level", "warn"])
        procs.append(coll)
        wait_listening(cport, coll)
        sim_args = [exe("sim", "fleetpulse-sim"), "--collector", endpoint, "--devices",
                    str(devices), "--outcomes", "--slow", "model_version=v2:0.8",
                    "--log-level", "warn"]
        t0 = time.time()
        subprocess.run(sim_args + ["--backfill", history], check=True,
                       stdout=subprocess.DEVNULL)
        print("fleet of %d devices with %s of history loaded in %.1f s"
              % (devices, history, time.time() - t0), file=sys.stderr)
        live = subprocess.Popen(sim_args + ["--window", "2"], stdout=subprocess.DEVNULL)
        procs.append(live)
        query = subprocess.Popen([exe("query", "fleetpulse-query"), "--listen",
                                  "127.0.0.1:%d" % qport, "--data", data, "--log-level", "warn"])
        procs.append(query)
        wait_listening(qport, query)

        paths = {
            "summary": "/api/v1/fleet/summary",
            "devices": "/api/v1/devices?limit=100&sort=-temperature_celsius",
            "compare": "/api/v1/compare?metric=llamacpp_generation_tokens_per_second"
                       "&by=model_version&a=v1&b=v2&window=15m",
        }
        conn = http.client.HTTPConnection("127.0.0.1", qport, timeout=30)
        _, body = timed(conn, paths["summary"])
        summ = json.loads(body)
        if summ.get("devices", 0) < devices:
            sys.exit("bench/query: the summary counts %s devices, %d simulated"
                     % (summ.get("devices"), devices))
        _, body = timed(conn, paths["compare"])
        cmp_ = json.loads(body)
        conn.close()
        print("compare: %s" % json.dumps(cmp_)[:400], file=sys.stderr)

        res = []
        for i in range(runs):
            r = {}
            for name, path in paths.items():
                # Spread over several refresh intervals (1 s): recomputed answers are in the mix.
                p50, p99 = latencies(qport, path, n_req, spacing)
                r[name + "_p50_ms"], r[name + "_p99_ms"] = p50, p99
            r["summary_rps_64"] = wrk_rps(qport, paths["summary"], wrk_s)
            r["healthz_rps_64"] = wrk_rps(qport, "/healthz", wrk_s)
            print("run %d: %s" % (i + 1, json.dumps(r)), file=sys.stderr)
            res.append(r)
        out = {k: round(statistics.median(x[k] for x in res), 3) for k in res[0]}
        out.update({"runs": runs, "devices": devices, "history": history})
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
