"""Fault tests of delivery on real daemons: the collector down for a while, the probe killed
with SIGKILL mid-stream, the spool overflowing, and a damaged spool. Afterwards the store must hold
exactly what the probe produced, or the probe must have counted exactly what it lost."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fplib  # noqa: E402
from fplib import check, http  # noqa: E402

FIXTURES = sys.argv[2]


class Fleet:
    def __init__(self, st):
        self.st = st
        self.cport, self.qport = fplib.free_port(), fplib.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.cport
        self.data = os.path.join(st.tmp, "data")
        self.collector = None
        self.query = None

    def start_collector(self):
        self.collector = self.st.start("fleetpulse-collector", "--listen", self.endpoint,
                                       "--data", self.data)
        return self.collector

    def kill_collector(self):
        self.collector.send_signal(signal.SIGKILL)
        self.collector.wait()

    def probe(self, device, spool, *extra):
        return self.st.start("fleetpulse-probe", "--collector", self.endpoint, "--interval",
                             "100ms", "--device-id", device, "--spool", spool,
                             "--procfs", os.path.join(FIXTURES, "procfs"),
                             "--sysfs", os.path.join(FIXTURES, "sysfs"), *extra)

    def start_query(self):
        self.query = self.st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % self.qport,
                                   "--data", self.data)
        fplib.wait_http(self.qport, self.query)

    def device(self, device):
        status, body, raw = http(self.qport, "/api/v1/devices")
        check(status == 200, raw)
        return {d["device"]: d for d in body["devices"]}.get(device)

    def points(self, device, metric):
        status, body, raw = http(self.qport, "/api/v1/series?device=%s&metric=%s&from=%.3f"
                                 % (device, metric, time.time() - 3000))
        check(status == 200, raw)
        pts = [p for s in body["series"] for p in s["points"]]
        return sorted(pts)


def settled(fleet, device, want_batches, timeout=60):
    """Waits until the device's batches reach want_batches (and stay there)."""
    def done():
        d = fleet.device(device)
        return d is not None and d["batches"] >= want_batches
    fplib.wait_for(done, timeout, "%s to reach %d batches" % (device, want_batches))
    time.sleep(0.5)
    return fleet.device(device)


def exactly_once(fleet, device, rounds):
    """One memory_total_bytes point per round, none doubled, none missing."""
    pts = fleet.points(device, "memory_total_bytes")
    ts = [p[0] for p in pts]
    check(len(ts) == len(set(ts)), "%s: duplicate timestamps" % device)
    check(len(pts) == rounds, "%s: %d points stored, %d rounds produced" % (device, len(pts), rounds))


def test(st):
    fleet = Fleet(st)
    fleet.start_collector()
    fplib.wait_collector(st, fleet.collector)
    fleet.start_query()

    # (c) The probe is killed with SIGKILL mid-stream and restarted on the same spool: the spool
    # replays, and the epoch/seq carry on, so nothing is lost or stored twice.
    spool_c = os.path.join(st.tmp, "spool-c")
    p = fleet.probe("kill-dev", spool_c)
    fplib.wait_for(lambda: (fleet.device("kill-dev") or {}).get("batches", 0) >= 5, 30,
                   "kill-dev to send")
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = fleet.probe("kill-dev", spool_c, "--max-rounds", 10)
    check(p.wait(60) == 0, "restarted probe exit %s" % p.returncode)
    d = fleet.device("kill-dev")
    check(d["duplicates"] >= 0, "%s" % d)
    exactly_once(fleet, "kill-dev", d["last_seq"])
    check(d["batches"] == d["last_seq"], "kill-dev: %d batches applied, last seq %d"
          % (d["batches"], d["last_seq"]))

    # (b) The collector is down for a stretch of probe time: everything buffered arrives after.
    spool_b = os.path.join(st.tmp, "spool-b")
    fleet.kill_collector()
    p = fleet.probe("outage-dev", spool_b, "--max-rounds", 30)
    time.sleep(2.5)  # ~25 rounds into the spool, none acknowledged
    fleet.start_collector()
    check(p.wait(60) == 0, "outage probe exit %s" % p.returncode)
    d = settled(fleet, "outage-dev", 30)
    exactly_once(fleet, "outage-dev", 30)

    # (d) The spool overflows while the collector is away: what is dropped is counted exactly.
    spool_d = os.path.join(st.tmp, "spool-d")
    fleet.kill_collector()
    p = fleet.probe("full-dev", spool_d, "--spool-max-bytes", 65536, "--max-rounds", 120)
    time.sleep(11)
    fleet.start_collector()
    check(p.wait(60) == 0, "overflow probe exit %s" % p.returncode)
    p = fleet.probe("full-dev", spool_d, "--spool-max-bytes", 65536, "--max-rounds", 3)
    check(p.wait(60) == 0, "overflow probe (2) exit %s" % p.returncode)
    d = fleet.device("full-dev")
    per_round = d["samples"] / d["batches"]
    check(per_round == int(per_round), "samples per round not constant: %s" % d)
    produced = d["last_seq"] * int(per_round)
    dropped = fleet.points("full-dev", "fleetpulse_probe_spool_dropped_samples_total")[-1][1]
    check(dropped > 0, "the spool never overflowed: %s" % d)
    check(produced - d["samples"] == dropped,
          "produced %d, stored %d, reported dropped %d" % (produced, d["samples"], dropped))
    status, body, raw = http(fleet.qport, "/api/v1/events?device=full-dev&kind=spool_dropped"
                                          "&from=%.3f" % (time.time() - 3000))
    # Events ride in batches that may be dropped too; the newest one carries the total.
    check(body["events"] and max(int(e["attributes"]["total"]) for e in body["events"]) == dropped,
          "spool_dropped events do not reach the total %d: %s" % (dropped, raw))

    # (e) A damaged spool: the probe starts, says what it discarded, and keeps going.
    spool_e = os.path.join(st.tmp, "spool-e")
    fleet.kill_collector()
    p = fleet.probe("damaged-dev", spool_e)
    time.sleep(1.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    segs = sorted(f for f in os.listdir(spool_e) if f.startswith("seg-"))
    check(segs, "no spool segment to damage")
    path = os.path.join(spool_e, segs[-1])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 7)  # a torn last record
    with open(os.path.join(spool_e, "seg-zzzz-not-ours"), "wb") as f:
        f.write(b"garbage" * 100)
    fleet.start_collector()
    p = fleet.probe("damaged-dev", spool_e, "--max-rounds", 5)
    check(p.wait(60) == 0, "probe on a damaged spool exit %s" % p.returncode)
    out = fleet.st.output(p)
    check("discarded" in out, "the probe did not say what it discarded: " + out)
    d = fleet.device("damaged-dev")
    check(d is not None and d["batches"] >= 5, "damaged-dev did not keep going: %s" % d)
    pts = fleet.points("damaged-dev", "memory_total_bytes")
    check(len(pts) == len(set(p[0] for p in pts)), "damaged-dev: duplicates")

    check(fleet.st.stop(fleet.collector) == 0, "collector exit")


fplib.main(test)
