"""The dashboard in a real headless Chromium: starts a collector and a query service on loopback
ports, loads a fleet into them (fleetpulse-sim: 100 devices with an hour of backfill; without the
simulator, fleetpulse-probe processes on the fixture trees), then runs dashboard.mjs, which drives
Chromium with playwright-core and checks the pages against the JSON API.

    test_dashboard.py BUILD_ROOT FIXTURES_DIR NODE_MODULES_DIR

Exit 77 (skipped) only when node or chromium is not installed. The screenshots are kept under
BUILD_ROOT/meson-logs/ (dashboard.png: the overview; dashboard-device.png: a device page)."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fplib  # noqa: E402
from fplib import check, http  # noqa: E402

BUILD, FIXTURES, NODE_MODULES = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = os.environ.get("FP_CHROMIUM", "/usr/bin/chromium")
SIM_DEVICES = 100
PROBE_DEVICES = 3


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
    if status == 400:
        status, body, _ = http(port, "/api/v1/devices")
    check(status == 200, "devices: HTTP %d" % status)
    return len(body["devices"])


def load_fleet(st, endpoint):
    """Starts the fleet and returns (source, device count). The fleet keeps sending while the
    browser looks at it, so every device stays ok and the state counts hold still."""
    sim = os.path.join(BUILD, "sim", "fleetpulse-sim")
    if os.access(sim, os.X_OK):
        p = start_exe(st, sim, "--collector", endpoint, "--devices", SIM_DEVICES,
                             "--interval", "10s", "--duration", "600s", "--backfill", "1h",
                             "--summary", os.path.join(st.tmp, "sim-summary.json"))
        return "sim", SIM_DEVICES, p
    procs = []
    for i in range(PROBE_DEVICES):
        procs.append(st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "1",
                              "--device-id", "fixture-%02d" % i, "--site", "lab-%d" % (i % 2),
                              "--hw-class", "kiosk", "--cohort", "stable",
                              "--procfs", os.path.join(FIXTURES, "procfs"),
                              "--sysfs", os.path.join(FIXTURES, "sysfs")))
    return "probes", PROBE_DEVICES, procs


def start_exe(st, path, *args):
    """Stack.start for an executable outside the three daemons (the simulator)."""
    log = open(os.path.join(st.tmp, "%s-%d.log" % (os.path.basename(path), len(st.procs))), "w+")
    p = subprocess.Popen([path] + [str(a) for a in args], stdout=log, stderr=subprocess.STDOUT)
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
    st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    fplib.wait_for(lambda: os.path.exists(os.path.join(data, "data.mdb")), 10, "the store")
    source, n, _ = load_fleet(st, endpoint)
    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)
    # The simulator's backfill is an hour per device: wait for every device, however long the
    # collector takes on this machine (the meson timeout bounds it).
    fplib.wait_for(lambda: device_count(qport) >= n, 240, "%d devices in the store" % n)

    logs = os.path.join(BUILD, "meson-logs")
    os.makedirs(logs, exist_ok=True)
    shot = os.path.join(logs, "dashboard.png")
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "dashboard.mjs"),
                        "http://127.0.0.1:%d" % qport, shot, source, CHROMIUM, NODE_MODULES],
                       env=env, timeout=240)
    check(p.returncode == 0, "dashboard.mjs failed (exit %d)" % p.returncode)
    # A clean exit: under the sanitizers a leak or error in serving would show here.
    check(st.stop(query) == 0, "query exit %s" % query.returncode)
    print("screenshot: %s" % shot)


fplib.main(test)
