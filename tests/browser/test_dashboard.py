"""The dashboard in a real headless Chromium: starts a collector and a query service on loopback
ports, loads a fleet into them (fleetpulse-sim: 100 devices with an hour of backfill), then runs
dashboard.mjs, which drives Chromium with playwright-core and checks the pages against the JSON
API.

    test_dashboard.py BUILD_ROOT NODE_MODULES_DIR

An alert rule fires for every device of one site, so the fleet has degraded devices and the
alerts page has alerts to show. Exit 77 (skipped) only when node or chromium is not installed.
The screenshots are kept under BUILD_ROOT/meson-logs/: dashboard.png (the overview),
dashboard-device.png (a degraded device's page), dashboard-compare.png (v1 against v2)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fplib  # noqa: E402
from fplib import check, http  # noqa: E402

BUILD, NODE_MODULES = sys.argv[1], sys.argv[2]
CHROMIUM = os.environ.get("FP_CHROMIUM", "/usr/bin/chromium")
SIM_DEVICES = 100

# Fires at once for every device of one of the simulator's sites: a fixed set of degraded
# devices, whatever the temperatures do.
RULES = {"rules": [{
    "name": "BrowserTestSiteHot", "kind": "threshold", "severity": "warning",
    "metric": "temperature_celsius", "matchers": ["site=site-00"],
    "agg": "max", "window": "5m", "op": ">", "value": -273, "by": ["device"],
    "annotations": {"summary": "{{ $labels.device }} is warm ({{ $value }} C)"}}]}


def firing(port):
    status, body, _ = http(port, "/api/v1/alerts")
    check(status == 200, "alerts: HTTP %d" % status)
    alerts = body if isinstance(body, list) else body["alerts"]
    return len([a for a in alerts if a.get("status") == "firing"])


def skip_unless_tools():
    node = shutil.which("node")
    if node is None:
        print("SKIP: node is not installed (Debian package nodejs; deploy/install-deps.sh)")
        sys.exit(77)
    if not os.access(CHROMIUM, os.X_OK):
        print("SKIP: %s is not installed (Debian package chromium; deploy/install-deps.sh)"
              % CHROMIUM)
        sys.exit(77)
    return node


def device_count(port):
    status, body, _ = http(port, "/api/v1/devices?limit=1000")
    check(status == 200, "devices: HTTP %d" % status)
    return len(body["devices"])


def start_sim(st, endpoint):
    """The simulated fleet: an hour of history, then live every 10 s for as long as the test
    runs, so every device stays ok (or degraded) and the state counts hold still."""
    sim = os.path.join(BUILD, "sim", "fleetpulse-sim")
    log = open(os.path.join(st.tmp, "sim.log"), "w+")
    p = subprocess.Popen([sim, "--collector", endpoint, "--devices", str(SIM_DEVICES),
                          "--interval", "10s", "--duration", "600s", "--backfill", "1h",
                          "--summary", os.path.join(st.tmp, "sim-summary.json")],
                         stdout=log, stderr=subprocess.STDOUT)
    p.log = log
    st.procs.append(p)
    return p


def test(st):
    node = skip_unless_tools()
    check(os.path.isdir(os.path.join(NODE_MODULES, "playwright-core")),
          "no playwright-core under %s: run deploy/fetch-web-deps.sh" % NODE_MODULES)
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    fplib.wait_collector(st, collector)
    start_sim(st, endpoint)
    rules = os.path.join(st.tmp, "rules.json")
    with open(rules, "w") as f:
        json.dump(RULES, f)
    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data,
                     "--rules", rules, "--eval-interval", "1s")
    fplib.wait_http(qport, query)
    # The simulator's backfill is an hour per device: wait for every device, however long the
    # collector takes on this machine (the meson timeout bounds it).
    fplib.wait_for(lambda: device_count(qport) >= SIM_DEVICES, 240,
                   "%d devices in the store" % SIM_DEVICES)
    # Every device of the site fires; until all do, the states would still be moving.
    status, body, raw = http(qport, "/api/v1/devices?limit=1000&match=site%3Dsite-00")
    check(status == 200 and len(body["devices"]) > 0, "devices of the hot site: %s" % raw[:300])
    hot = len(body["devices"])
    fplib.wait_for(lambda: firing(qport) == hot, 60, "the test rule to fire for %d devices" % hot)

    logs = os.path.join(BUILD, "meson-logs")
    os.makedirs(logs, exist_ok=True)
    shot = os.path.join(logs, "dashboard.png")
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "dashboard.mjs"),
                        "http://127.0.0.1:%d" % qport, shot, CHROMIUM, NODE_MODULES],
                       env=env, timeout=240)
    check(p.returncode == 0, "dashboard.mjs failed (exit %d)" % p.returncode)
    # A clean exit: under the sanitizers a leak or error in serving would show here.
    check(st.stop(query) == 0, "query exit %s" % query.returncode)
    print("screenshot: %s" % shot)


fplib.main(test)
