"""Fault test (a): the collector is killed with SIGKILL ten times at random moments while 100
simulated devices stream to it. Afterwards every device's stored samples equal the samples the
simulator generated for it, and no sample is stored twice."""
import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fplib  # noqa: E402
from fplib import check, http  # noqa: E402

DEVICES = 100
KILLS = 10


def test(st):
    rng = random.Random(int(os.environ.get("FP_FAULT_SEED", time.time())))
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    summary = os.path.join(st.tmp, "summary.json")

    def start_collector():
        return st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)

    collector = start_collector()
    fplib.wait_collector(st, collector)
    # 100 devices, 10 series, a batch every 100 ms each: 10,000 samples/s for 20 s. A short ack
    # timeout makes the devices resend soon after each kill.
    sim = st.start("fleetpulse-sim", "--collector", endpoint, "--devices", DEVICES,
                   "--interval", "100ms", "--duration", "20s", "--ack-timeout", "1s",
                   "--drain", "60s", "--summary", summary)
    for k in range(KILLS):
        time.sleep(rng.uniform(0.4, 1.6))
        check(collector.poll() is None, "collector exited by itself before kill %d" % k)
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        time.sleep(rng.uniform(0.0, 0.3))
        collector = start_collector()
    check(sim.wait(120) == 0, "simulator exit %s (not every batch acknowledged)" % sim.returncode)
    with open(summary) as f:
        summ = json.load(f)
    total = summ["total"]
    check(total["generated"] > 0 and total["acknowledged"] == total["generated"],
          "generated %d, acknowledged %d" % (total["generated"], total["acknowledged"]))
    check(total["refused"] == 0 and total["unacknowledged"] == 0, "lost: %s" % total)
    check(total["retransmits"] > 0, "no batch was resent, so no kill hit a batch in flight: %s"
          % total)

    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)
    status, body, raw = http(qport, "/api/v1/devices")
    check(status == 200, raw)
    stored = {d["device"]: d for d in body["devices"]}
    check(len(stored) == DEVICES, "%d devices stored, %d simulated" % (len(stored), DEVICES))
    for dev in summ["devices"]:
        s = stored[dev["device"]]
        check(s["samples"] == dev["generated"],
              "%s: %d samples stored, %d generated" % (dev["device"], s["samples"],
                                                        dev["generated"]))
        check(s["batches"] == dev["last_seq"],
              "%s: %d batches applied, last seq %d" % (dev["device"], s["batches"],
                                                       dev["last_seq"]))
    # The points themselves, for a sample of devices: one per batch and series, none doubled.
    t0 = time.time() - 600
    for dev in rng.sample(summ["devices"], 5):
        status, body, raw = http(qport, "/api/v1/series?device=%s&from=%.3f" % (dev["device"], t0))
        check(status == 200, raw)
        check(len(body["series"]) == 10, "%s: %d series" % (dev["device"], len(body["series"])))
        for s in body["series"]:
            ts = [p[0] for p in s["points"]]
            check(len(ts) == len(set(ts)), "%s %s: a timestamp stored twice"
                  % (dev["device"], s["metric"]))
            check(len(ts) == dev["batches"], "%s %s: %d points, %d batches sent"
                  % (dev["device"], s["metric"], len(ts), dev["batches"]))
    check(st.stop(collector) == 0, "collector exit")


fplib.main(test)
