"""A real Prometheus (Debian's prometheus) scrapes fleetpulse-query's /metrics on a loopback port:
its targets page shows the target up, and PromQL over the scraped samples returns the fleet's
device count and the alert engine's state as fleetpulse serves them."""
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import fplib
from fplib import check, http

FIXTURES = sys.argv[2]
PROMETHEUS = shutil.which("prometheus")


def prom(port, path):
    """GET a Prometheus API path; returns the parsed "data", or None while it is not ready."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            body = json.loads(r.read().decode())
    except (urllib.error.URLError, ConnectionError, OSError):
        return None
    return body.get("data") if body.get("status") == "success" else None


def instant(port, expr):
    """The value of a PromQL expression with exactly one sample, or None."""
    data = prom(port, "/api/v1/query?query=" + urllib.parse.quote(expr))
    if data is None or len(data["result"]) != 1:
        return None
    return float(data["result"][0]["value"][1])


def target_up(port, qport):
    data = prom(port, "/api/v1/targets")
    if data is None:
        return None
    for t in data["activeTargets"]:
        if t["scrapeUrl"] == "http://127.0.0.1:%d/metrics" % qport and t["health"] == "up":
            return t
    return None


def test(st):
    cport, qport, pport = fplib.free_port(), fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    rules = os.path.join(st.tmp, "rules.json")
    with open(rules, "w") as f:
        json.dump({"rules": [{"name": "Warm", "kind": "threshold",
                              "metric": "temperature_celsius", "agg": "max", "window": "1h",
                              "op": ">", "value": 50, "by": ["device"]}]}, f)

    st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    probe = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "300ms",
                     "--device-id", "fixture-dev", "--procfs", os.path.join(FIXTURES, "procfs"),
                     "--sysfs", os.path.join(FIXTURES, "sysfs"), "--max-rounds", 2)
    check(probe.wait(30) == 0, "probe exited with %s" % probe.returncode)
    query = st.start("fleetpulse-query", "--data", data, "--listen", "127.0.0.1:%d" % qport,
                     "--rules", rules, "--eval-interval", "500ms")
    fplib.wait_http(qport, query)
    fplib.wait_for(lambda: http(qport, "/api/v1/alerts?state=firing")[1]["alerts"], 10,
                   "the Warm alert to fire")

    pdir = os.path.join(st.tmp, "prometheus")
    os.mkdir(pdir)
    cfg = os.path.join(pdir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: fleetpulse\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % qport)
    log = open(os.path.join(st.tmp, "prometheus.log"), "w+")
    p = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + pdir,
                          "--web.listen-address=127.0.0.1:%d" % pport], stdout=log,
                         stderr=subprocess.STDOUT)
    p.log = log
    st.procs.append(p)

    t = fplib.wait_for(lambda: p.poll() is not None or target_up(pport, qport), 40,
                       "Prometheus to scrape fleetpulse-query")
    check(p.poll() is None, "Prometheus exited with %s" % p.returncode)
    check(t["labels"]["job"] == "fleetpulse", "target labels %s" % t["labels"])
    check(t["lastError"] == "", "last scrape error %r" % t["lastError"])

    # One device in the store: the fleet's device count summed over states and groups is 1.
    devices = fplib.wait_for(lambda: instant(pport, "sum(fleetpulse_fleet_devices)"), 20,
                             "fleetpulse_fleet_devices in Prometheus")
    check(devices == 1, "sum(fleetpulse_fleet_devices) = %s, expected 1" % devices)
    firing = instant(pport, 'fleetpulse_query_alerts{state="firing"}')
    check(firing == 1, "fleetpulse_query_alerts{state=\"firing\"} = %s, expected 1" % firing)
    check(instant(pport, "fleetpulse_query_alert_rules") == 1, "alert rules != 1")
    check(instant(pport, 'up{job="fleetpulse"}') == 1, "up != 1")


if __name__ == "__main__":
    if PROMETHEUS is None:
        print("SKIP: prometheus is not installed (deploy/install-deps.sh installs it)")
        sys.exit(77)
    fplib.main(test)
