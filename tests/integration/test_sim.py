"""fleetpulse-sim against a real collector and query service: the summary adds up, the store holds
what the summary says was acknowledged, devices carry their identity, a slowed cohort is slower,
and bad flags get one clear line."""
import json
import os
import subprocess
import sys
import time

import fplib
from fplib import check, http


def cli_errors(st):
    sim = st.exe("fleetpulse-sim")
    for args, needle in [
        ([], "--collector is required"),
        (["--collector", "tcp://127.0.0.1:1", "--devices", "0"], "--devices"),
        (["--collector", "tcp://127.0.0.1:1", "--interval", "fast"], "--interval"),
        (["--collector", "tcp://127.0.0.1:1", "--slow", "model_version=v2"], "--slow"),
        (["--collector", "tcp://127.0.0.1:1", "--slow", "model_version=v2:0"], "--slow"),
        (["--collector", "tcp://127.0.0.1:1", "--prefix", "@x"], "--prefix"),
        (["--collector", "tcp://127.0.0.1:1", "--devices", "1000001"], "--devices"),
        (["--collector", "tcp://127.0.0.1:1", "--duration", "0s"], "--duration"),
        (["--collector", "tcp://127.0.0.1:1", "--backfill", "6x"], "--backfill"),
        (["--collector", "tcp://127.0.0.1:1", "--batch-steps", "0"], "--batch-steps"),
        (["--collector", "tcp://127.0.0.1:1", "--connections", "1001"], "--connections"),
        (["--collector", "tcp://127.0.0.1:1", "--window", "0"], "--window"),
        (["--collector", "tcp://127.0.0.1:1", "--ack-timeout", "0ms"], "--ack-timeout"),
        (["--collector", "tcp://127.0.0.1:1", "--drain", "soon"], "--drain"),
        (["--collector", "tcp://127.0.0.1:1", "--seed", "-1"], "--seed"),
        (["--collector", "tcp://127.0.0.1:1", "--first-index", "x"], "--first-index"),
        (["--collector", "tcp://127.0.0.1:1", "--slow", "=v2:0.5"], "--slow"),
        (["--collector", "tcp://127.0.0.1:1", "--log-level", "loud"], "--log-level"),
        (["--collector", "tcp://127.0.0.1:1", "extra"], "unexpected argument"),
        (["--collector", "tcp://127.0.0.1:1", "--bogus"], "unknown option"),
    ]:
        p = subprocess.run([sim] + args, capture_output=True, text=True, timeout=10)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2, "%s: exit %d, expected 2" % (args, p.returncode))
        check(len(lines) == 1 and needle in lines[0], "%s: stderr %r" % (args, p.stderr))
    p = subprocess.run([sim, "--collector", "nonsense://x"], capture_output=True, text=True,
                       timeout=10)
    check(p.returncode == 1 and "cannot connect to nonsense://x" in p.stderr,
          "bad endpoint: exit %d, %r" % (p.returncode, p.stderr))


def test(st):
    cli_errors(st)
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    summary = os.path.join(st.tmp, "summary.json")
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    fplib.wait_collector(st, collector)
    t_start = time.time()
    # 20 devices: 10 minutes of backfill at 10 s, then 3 s live at 1 s... one interval for all,
    # so 1 s throughout: 600 backfill steps and about 3 live ones per device.
    sim = st.start("fleetpulse-sim", "--collector", endpoint, "--devices", 20, "--interval", "1s",
                   "--backfill", "10m", "--duration", "3s", "--outcomes",
                   "--slow", "model_version=v2:0.5", "--summary", summary)
    check(sim.wait(60) == 0, "simulator exit %s" % sim.returncode)
    with open(summary) as f:
        summ = json.load(f)
    tot = summ["total"]
    check(tot["devices"] == 20 and len(summ["devices"]) == 20, "devices: %s" % tot)
    check(tot["acknowledged"] == tot["generated"] and tot["dropped"] == 0, "%s" % tot)
    check(sum(d["generated"] for d in summ["devices"]) == tot["generated"], "totals do not add up")
    for d in summ["devices"]:
        # 12 series with --outcomes; 600 backfill steps plus the live ones
        check(d["generated"] % 12 == 0 and d["generated"] // 12 >= 600 + 2,
              "%s: %d samples generated" % (d["device"], d["generated"]))

    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)
    status, body, raw = http(qport, "/api/v1/devices")
    check(status == 200, raw)
    stored = {d["device"]: d for d in body["devices"]}
    for d in summ["devices"]:
        s = stored.get(d["device"])
        check(s is not None and s["samples"] == d["acknowledged"],
              "%s: stored %s, acknowledged %d" % (d["device"], s and s["samples"],
                                                   d["acknowledged"]))
        check(s["info"]["model_version"] == d["model_version"], "%s: info %s"
              % (d["device"], s["info"]))
        check(s["info"]["runtime"] == "llama.cpp" and s["info"]["hw_class"], "%s" % s["info"])

    # Identity labels on every series: group tokens/s by model_version over the whole run.
    status, body, raw = http(qport, "/api/v1/series?metric=llamacpp_generation_tokens_per_second"
                             "&from=%.3f&to=%.3f&step=3600&agg=avg&by=model_version"
                             % (t_start - 700, time.time() + 1))
    check(status == 200, raw)
    avg = {g["labels"]["model_version"]: g["points"][0][1] for g in body["series"]}
    check(set(avg) == {"v1", "v2"}, "cohorts: %s" % raw)
    # v2 runs at half speed; per-device base speeds vary 2.5x, so allow a wide margin.
    check(avg["v2"] < 0.8 * avg["v1"], "v2 not slower: %s" % avg)

    status, body, raw = http(qport, "/api/v1/series?metric=gen_ai_server_requests_total"
                             "&device=edge-0000&from=%.3f" % (t_start - 700))
    check(status == 200, raw)
    outcomes = sorted(s["labels"]["outcome"] for s in body["series"])
    check(outcomes == ["error", "fallback", "ok"], "outcomes: %s" % outcomes)
    # A summary that cannot be written: one line naming the file, exit 1, the run itself done.
    bad = os.path.join(st.tmp, "no-such-dir", "summary.json")
    p = subprocess.run([st.exe("fleetpulse-sim"), "--collector", endpoint, "--devices", "2",
                        "--backfill", "1m", "--summary", bad], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 1 and ("cannot write the summary to %s" % bad) in p.stderr,
          "unwritable summary: exit %d, %r" % (p.returncode, p.stderr))
    check(st.stop(collector) == 0, "collector exit")
    retention(st)


def retention(st):
    """--raw-retention: samples older than it (by the collector's clock) are refused and counted,
    the rest stored; bad values get one line."""
    for flag, value in [("--raw-retention", "23h"), ("--raw-retention", "x"),
                        ("--rollup-retention", "59m"), ("--rollup-retention", "-1d")]:
        p = subprocess.run([st.exe("fleetpulse-collector"), "--data", st.tmp, flag, value],
                           capture_output=True, text=True, timeout=10)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and flag in lines[0] and value in lines[0],
              "%s %s: exit %d, %r" % (flag, value, p.returncode, p.stderr))
    cport = fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    summary = os.path.join(st.tmp, "retention.json")
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data",
                         os.path.join(st.tmp, "data-retention"), "--raw-retention", "1d",
                         "--rollup-retention", "2d")
    fplib.wait_collector(st, collector)
    # 30 h at 10 min: 180 steps a device, of which the oldest ~36 are past a day.
    sim = st.start("fleetpulse-sim", "--collector", endpoint, "--devices", 2, "--interval", "10m",
                   "--backfill", "30h", "--summary", summary)
    check(sim.wait(60) == 0, "simulator exit %s" % sim.returncode)
    with open(summary) as f:
        tot = json.load(f)["total"]
    series = tot["generated"] // (2 * 180)
    check(tot["generated"] == 2 * 180 * series, "generated %s" % tot)
    check(tot["acknowledged"] + tot["refused"] == tot["generated"], "%s" % tot)
    check(2 * 34 * series <= tot["refused"] <= 2 * 37 * series,
          "refused %d of %d, expected ~%d" % (tot["refused"], tot["generated"], 2 * 36 * series))
    check(st.stop(collector) == 0, "collector exit")


fplib.main(test)
