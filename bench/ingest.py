#!/usr/bin/env python3
"""bench/ingest's driver: fleetpulse-sim through ZeroMQ into a durable fleetpulse-collector.

Shapes (each run on a fresh store, medians over the runs):
  backfill  1000 devices replay 6 h of the standard workload (10 series, 10 s) as fast as acks
            allow, an hour per batch (360 samples per series);
  live      10,000 devices, one sample per series per batch (the shape of edge traffic), as fast
            as acks allow, two batches in flight per device, after one unmeasured batch per device
            has created the fleet's series (steady state);
  baseline  the backfill and live shapes against bench/ingest-sink, which decodes and acks
            without storing: the ceiling of ZeroMQ + protobuf + the simulator on this machine;
  freshness 1000 devices at 1 s (10,000 samples/s) in real time while 10 devices are polled
            through the query API: the time from a sample's timestamp to its visibility.
Collector CPU is utime + stime from /proc; peak RSS is VmHWM (file pages of the LMDB map
included) and the peak of RssAnon (the collector's own memory) sampled every 50 ms.
The last line printed is one JSON object."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from daemons import free_port, stop, wait_listening

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Peak RssAnon of a process, sampled until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_anon, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.peak_anon = max(self.peak_anon, status_kib(self.pid, "RssAnon"))
            except OSError:
                return
            time.sleep(0.05)


def run_sim(a, endpoint, tmp, sim_args):
    summary = os.path.join(tmp, "summary.json")
    p = subprocess.run([a.sim, "--collector", endpoint, "--summary", summary,
                        "--log-level", "warn"] + [str(x) for x in sim_args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("bench/ingest: fleetpulse-sim exit %d: %s" % (p.returncode, p.stderr[-2000:]))
    with open(summary) as f:
        tot = json.load(f)["total"]
    if tot["acknowledged"] != tot["generated"]:
        sys.exit("bench/ingest: %d samples generated, %d acknowledged"
                 % (tot["generated"], tot["acknowledged"]))
    return tot


def one_shape(a, tmp, sim_args, sink=False, warm=None):
    """One run: a fresh collector (or the sink), the simulator, the collector's CPU and RSS.
    warm: simulator arguments run first and not measured."""
    port = free_port()
    endpoint = "tcp://127.0.0.1:%d" % port
    data = os.path.join(tmp, "data")
    shutil.rmtree(data, ignore_errors=True)
    if sink:
        srv = subprocess.Popen([a.sink, endpoint])
    else:
        srv = subprocess.Popen([a.collector, "--listen", endpoint, "--data", data,
                                "--log-level", "warn"])
    wait_listening(port, srv)
    if warm is not None:
        run_sim(a, endpoint, tmp, warm)
    sampler = Sampler(srv.pid)
    sampler.start()
    c0 = cpu_s(srv.pid)
    tot = run_sim(a, endpoint, tmp, sim_args)
    c1 = cpu_s(srv.pid)
    hwm = status_kib(srv.pid, "VmHWM")
    sampler.done.set()
    sampler.join()
    stop(srv)
    return {
        "samples_per_s": tot["samples_per_s"],
        "batches_per_s": tot["batches_per_s"],
        "ack_latency_ms_p50": tot["ack_latency_ms_p50"],
        "ack_latency_ms_p99": tot["ack_latency_ms_p99"],
        "collector_cpu_s_per_million_samples": (c1 - c0) / (tot["acknowledged"] / 1e6),
        "collector_peak_rss_mib": hwm / 1024,
        "collector_peak_anon_mib": sampler.peak_anon / 1024,
        "samples": tot["acknowledged"],
    }


def freshness(a, tmp, seconds):
    """p50/p99 of (first seen through the query API) - (sample timestamp), in ms."""
    cport, qport = free_port(), free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(tmp, "data")
    shutil.rmtree(data, ignore_errors=True)
    coll = subprocess.Popen([a.collector, "--listen", endpoint, "--data", data,
                             "--log-level", "warn"])
    wait_listening(cport, coll)
    sim = subprocess.Popen([a.sim, "--collector", endpoint, "--devices", "1000", "--interval",
                            "1s", "--duration", "%ds" % (seconds + 8), "--window", "2",
                            "--log-level", "warn"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    query = subprocess.Popen([a.query, "--listen", "127.0.0.1:%d" % qport, "--data", data,
                              "--log-level", "warn"])
    wait_listening(qport, query)
    devices = ["edge-%04d" % (i * 97) for i in range(10)]
    newest = {d: 0.0 for d in devices}
    lags = []
    # Steady state: the first seconds create the fleet's series and grow the map.
    time.sleep(5)
    end = time.time() + seconds
    while time.time() < end:
        for d in devices:
            url = ("http://127.0.0.1:%d/api/v1/series?device=%s&metric=cpu_utilization_ratio"
                   "&from=%.3f" % (qport, d, time.time() - 5))
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
            seen = time.time()
            top = max((p[0] for s in body["series"] for p in s["points"]), default=0)
            # Only the newest point, and only when it follows the previous one: a point that
            # was skipped became visible while this poller was not looking, at an unknown time.
            if newest[d] > 0 and 0 < top - newest[d] <= 1.001:
                lags.append((seen - top) * 1000)
            newest[d] = max(newest[d], top)
    stop(sim)
    stop(query)
    stop(coll)
    if len(lags) < 20:
        sys.exit("bench/ingest: only %d freshness observations" % len(lags))
    lags.sort()
    return lags[len(lags) // 2], lags[int((len(lags) - 1) * 0.99)], len(lags)


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--bin", required=True, help="build directory")
    a = ap.parse_args()
    a.collector = os.path.join(a.bin, "collector", "fleetpulse-collector")
    a.query = os.path.join(a.bin, "query", "fleetpulse-query")
    a.sim = os.path.join(a.bin, "sim", "fleetpulse-sim")
    a.sink = os.path.join(a.bin, "bench", "ingest-sink")
    runs = a.runs or (1 if a.quick else 3)
    if a.quick:
        backfill = ["--devices", 100, "--backfill", "6h"]
        live = ["--devices", 1000, "--fast", "--duration", "100s", "--window", 2]
        fresh_s = 5
    else:
        backfill = ["--devices", 1000, "--backfill", "6h"]
        live = ["--devices", 10000, "--fast", "--duration", "200s", "--window", 2]
        fresh_s = 30
    tmp = tempfile.mkdtemp(prefix="fp-bench-ingest-")
    out = {"runs": runs}
    try:
        # Live traffic is measured in steady state: the fleet's series exist (a fleet is not
        # new every 200 s), so a warm-up batch per device creates them first, unmeasured.
        warm_live = live[:2] + ["--backfill", "10s"]
        for name, args, warm in (("backfill", backfill, None), ("live", live, warm_live)):
            res = []
            for i in range(runs):
                r = one_shape(a, tmp, args, warm=warm)
                print("%s run %d: %s" % (name, i + 1, json.dumps(r)), file=sys.stderr)
                res.append(r)
            m = median_of(res)
            base = one_shape(a, tmp, args, sink=True, warm=warm)
            print("%s transport baseline: %s" % (name, json.dumps(base)), file=sys.stderr)
            m["transport_limit_samples_per_s"] = base["samples_per_s"]
            m["transport_limit_batches_per_s"] = base["batches_per_s"]
            out[name] = {k: round(v, 3) for k, v in m.items()}
        p50s, p99s = [], []
        for i in range(runs):
            p50, p99, n = freshness(a, tmp, fresh_s)
            print("freshness run %d: p50 %.1f ms, p99 %.1f ms over %d samples" % (i + 1, p50, p99, n),
                  file=sys.stderr)
            p50s.append(p50)
            p99s.append(p99)
        out["freshness_ms_p50"] = round(statistics.median(p50s), 1)
        out["freshness_ms_p99"] = round(statistics.median(p99s), 1)
        out["peer_victoriametrics_remote_write"] = {"samples_per_s": 4.99e6,
                                                    "cpu_s_per_million_samples": 0.37,
                                                    "peak_rss_mib": 180, "durable_on_ack": False}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
