"""End to end on real daemons: a probe reading the fixture trees sends over ZeroMQ to a collector
that stores in LMDB; a separate query process serves exactly those values as JSON."""
import json
import os
import re
import sys
import time

import fplib
from fplib import check, http

FIXTURES = sys.argv[2]
ROUNDS = 3


def series(port, metric, device, t0, t1):
    status, body, raw = http(port, "/api/v1/series?metric=%s&device=%s&from=%.3f&to=%.3f"
                             % (metric, device, t0, t1))
    check(status == 200, "series %s: HTTP %d %s" % (metric, status, raw))
    return body["series"], raw


def one_series(port, metric, device, t0, t1, **labels):
    found = [s for s in series(port, metric, device, t0, t1)[0]
             if all(s["labels"].get(k) == v for k, v in labels.items())]
    check(len(found) == 1, "%s%s: %d series, expected 1" % (metric, labels, len(found)))
    return found[0]


def test(st):
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")

    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    t0 = time.time()
    probe = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "300ms",
                     "--device-id", "fixture-dev", "--site", "lab-1", "--hw-class", "kiosk",
                     "--tag", "rack=r7",
                     "--procfs", os.path.join(FIXTURES, "procfs"),
                     "--sysfs", os.path.join(FIXTURES, "sysfs"), "--max-rounds", ROUNDS)
    # A second probe reads this machine itself: the quick start's view.
    host = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "300ms",
                    "--device-id", "this-host", "--max-rounds", 2)
    # A device without thermal sensors: its sources report themselves as events.
    bare = os.path.join(st.tmp, "bare-sysfs")
    os.mkdir(bare)
    bare_probe = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "300ms",
                          "--device-id", "bare-dev", "--procfs", os.path.join(FIXTURES, "procfs"),
                          "--sysfs", bare, "--max-rounds", 1)
    check(bare_probe.wait(30) == 0, "bare probe exited with %s" % bare_probe.returncode)
    check(probe.wait(30) == 0, "fixture probe exited with %s" % probe.returncode)
    check(host.wait(30) == 0, "host probe exited with %s" % host.returncode)
    t1 = time.time()
    out = st.output(probe)
    check("%d batches acknowledged" % ROUNDS in out, "probe did not see all acks:\n" + out)

    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)

    # Devices: both present, identity stored, latest values exact.
    status, body, raw = http(qport, "/api/v1/devices")
    check(status == 200, "devices: HTTP %d" % status)
    devs = {d["device"]: d for d in body["devices"]}
    check(set(devs) == {"fixture-dev", "this-host", "bare-dev"}, "devices: %s" % sorted(devs))
    d = devs["fixture-dev"]
    check(t0 - 1 <= d["last_seen"] <= t1 + 1, "last_seen %s not in [%s, %s]" % (d["last_seen"], t0, t1))
    check(d["info"].get("site") == "lab-1" and d["info"].get("hw_class") == "kiosk",
          "identity: %s" % d["info"])
    check(d["info"].get("tag.rack") == "r7", "tag: %s" % d["info"])
    m = d["metrics"]
    check(m.get("memory_available_bytes") == 10113581056, "memory_available_bytes: %s"
          % m.get("memory_available_bytes"))
    check(m.get("memory_pressure_full_avg300") == 0.42, "full avg300: %s" % m)
    key = 'temperature_celsius{source="thermal",type="x86_pkg_temp",zone="thermal_zone0"}'
    check(m.get(key) == 51.234, "%s: %s" % (key, m.get(key)))
    hm = devs["this-host"]["metrics"]
    check(hm.get("memory_total_bytes", 0) > 0 and hm.get("memory_available_bytes", 0) > 0,
          "this host has no memory series: %s" % sorted(hm))
    check(hm.get("cpu_count", 0) >= 1, "this host has no cpu_count")

    # The fixture thermal zone: 51234 millidegrees -> exactly 51.234, with the probe's timestamp.
    s = one_series(qport, "temperature_celsius", "fixture-dev", t0 - 1, t1 + 1,
                   zone="thermal_zone0")
    # hw and site: the device's identity (--hw-class, --site) stamped on by the store
    check(s["labels"] == {"device": "fixture-dev", "hw": "kiosk", "site": "lab-1",
                          "source": "thermal", "type": "x86_pkg_temp",
                          "zone": "thermal_zone0"}, "labels: %s" % s["labels"])
    pts = s["points"]
    check(len(pts) == ROUNDS, "%d points, expected %d" % (len(pts), ROUNDS))
    check(all(v == 51.234 for _, v in pts), "values: %s" % pts)
    check(all(t0 - 0.01 <= ts <= t1 for ts, _ in pts), "timestamps %s outside the run" % pts)
    check(all(b[0] - a[0] >= 0.25 for a, b in zip(pts, pts[1:])), "rounds too close: %s" % pts)
    _, raw = series(qport, "temperature_celsius", "fixture-dev", t0 - 1, t1 + 1)
    check(re.search(r"[\[,]51\.234\]", raw) is not None, "51.234 not written exactly: %s" % raw)
    check("-5.0]" in raw or "-5]" in raw, "thermal_zone1 -5 missing: %s" % raw)
    round_ts = [ts for ts, _ in pts]

    # /proc/pressure/memory, field by field, at the same timestamps (one round, one time).
    expect = {"memory_pressure_some_avg10": 0.12, "memory_pressure_some_avg60": 0.34,
              "memory_pressure_some_avg300": 1.05, "memory_pressure_some_seconds_total": 12.345678,
              "memory_pressure_full_avg10": 0.05, "memory_pressure_full_avg60": 0.1,
              "memory_pressure_full_avg300": 0.42, "memory_pressure_full_seconds_total": 2.345678}
    for metric, value in expect.items():
        s = one_series(qport, metric, "fixture-dev", t0 - 1, t1 + 1)
        check([p[0] for p in s["points"]] == round_ts, "%s timestamps %s != %s"
              % (metric, s["points"], round_ts))
        check(all(p[1] == value for p in s["points"]), "%s: %s, expected %s"
              % (metric, s["points"], value))

    # The rest of the fixture, one value each.
    for metric, labels, value in [
            ("memory_total_bytes", {}, 16710053888), ("swap_free_bytes", {}, 2080370688),
            ("temperature_celsius", {"chip": "nvme", "sensor": "temp1"}, 38.85),
            ("temperature_critical_celsius", {"chip": "coretemp", "sensor": "temp2"}, 100),
            ("cpu_frequency_hertz", {"cpu": "1"}, 8e8), ("cpu_count", {}, 2)]:
        s = one_series(qport, metric, "fixture-dev", t0 - 1, t1 + 1, **labels)
        check(all(p[1] == value for p in s["points"]) and len(s["points"]) == ROUNDS,
              "%s%s: %s, expected %s" % (metric, labels, s["points"], value))

    # Events: the bare device's missing sources, with their attributes; filters and bounds.
    status, body, raw = http(qport, "/api/v1/events?device=bare-dev&from=%.3f" % (t0 - 1))
    check(status == 200, "events: HTTP %d %s" % (status, raw))
    got = sorted((e["kind"], e["severity"], e["attributes"].get("source")) for e in body["events"])
    check(got == [("source_unavailable", "info", "hwmon"), ("source_unavailable", "info", "thermal")],
          "events: %s" % raw)
    check(all(e["device"] == "bare-dev" and t0 - 1 <= e["ts"] <= t1 + 1 for e in body["events"]),
          "event device/ts: %s" % raw)
    status, body, raw = http(qport, "/api/v1/events?device=bare-dev&limit=1&from=%.3f" % (t0 - 1))
    check(status == 200 and len(body["events"]) == 1 and body["truncated"] is True, raw)
    status, body, raw = http(qport, "/api/v1/events?kind=canary&from=%.3f" % (t0 - 1))
    check(status == 200 and body["events"] == [], raw)
    status, body, raw = http(qport, "/api/v1/events?device=fixture-dev&from=%.3f" % (t0 - 1))
    check(status == 200 and body["events"] == [], "fixture device has every source: " + raw)
    for bad, what in [("limit=0", "limit"), ("from=20&to=10", "from"), ("color=red", "color"),
                      ("to=yesterday", "to")]:
        status, body, raw = http(qport, "/api/v1/events?" + bad)
        check(status == 400 and what in body["error"], "%s: %d %s" % (bad, status, raw))

    # The collector's own counters, at /api/v1/collector and as series of "@collector"; it is
    # not one of the fleet's devices.
    status, body, raw = http(qport, "/api/v1/collector")
    check(status == 200, "collector: %d %s" % (status, raw))
    cm = body["collector"]["metrics"]
    check(body["collector"]["device"] == "@collector", raw)
    check('fleetpulse_collector_batches_refused_total{reason="bad_schema"}' in cm, raw)
    check(cm.get("fleetpulse_collector_commit_seconds_total", -1) >= 0, raw)
    status, body, raw = http(qport, "/api/v1/devices")
    check(all(not d["device"].startswith("@") for d in body["devices"]), raw)

    # The daemons stop cleanly on SIGTERM; the collector stores its final totals on the way out.
    check(st.stop(collector) == 0, "collector exit %s" % collector.returncode)
    status, body, raw = http(qport, "/api/v1/collector")
    cm = body["collector"]["metrics"]
    check(cm.get("fleetpulse_collector_batches_received_total") == ROUNDS + 3 and
          cm.get("fleetpulse_collector_batches_applied_total") == ROUNDS + 3,
          "collector totals: %s" % raw)
    check(st.stop(query) == 0, "query exit %s" % query.returncode)
    out = st.output(collector)
    check("%d batches received, %d applied, 0 duplicate" % (ROUNDS + 3, ROUNDS + 3) in out,
          "collector totals: " + out)


fplib.main(test)
