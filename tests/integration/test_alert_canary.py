"""The stock canary rule on a simulated fleet: 100 devices of mixed models and boards from
fleetpulse-sim, the canary cohort 20% slower in tokens/s, fires CanaryTokensPerSecondRegression
with p < 0.01; the same fleet without the slowdown fires nothing. The rules are
deploy/rules.json's, with `for` set to 0 so one evaluation decides."""
import json
import os
import re
import subprocess
import sys

import fplib
from fplib import check, http

FIXTURES = sys.argv[2]
STOCK = os.path.join(FIXTURES, "..", "..", "deploy", "rules.json")
RULE = "CanaryTokensPerSecondRegression"


def fleet_alerts(st, name, slow):
    """Simulates a fleet into a fresh store, evaluates the stock rules once, returns the alerts."""
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, name)
    rules = os.path.join(st.tmp, name + "-rules.json")
    with open(STOCK) as f:
        stock = json.load(f)
    for r in stock["rules"]:
        r["for"] = "0s"
    with open(rules, "w") as f:
        json.dump(stock, f)

    os.mkdir(data)
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    args = [st.exe("fleetpulse-sim"), "--collector", endpoint, "--devices", "100",
            "--interval", "10s", "--backfill", "20m", "--seed", "7"]
    if slow:
        args += ["--slow", "cohort=canary:0.8"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "fleetpulse-sim exited with %d: %s" % (p.returncode, p.stderr))

    query = st.start("fleetpulse-query", "--data", data, "--listen", "127.0.0.1:%d" % qport,
                     "--rules", rules)
    fplib.wait_http(qport, query)
    body = fplib.wait_for(lambda: (lambda b: b if b["evaluated_at"] is not None else None)(
        http(qport, "/api/v1/alerts")[1]), 30, "the first evaluation")
    check(st.stop(query) == 0, "query service did not exit cleanly")
    check(st.stop(collector) == 0, "collector did not exit cleanly")
    return body["alerts"]


def test(st):
    alerts = fleet_alerts(st, "slow", True)
    canary = [a for a in alerts if a["labels"]["alertname"] == RULE]
    check(len(canary) == 1, "alerts of %s: %s" % (RULE, canary))
    a = canary[0]
    check(a["status"] == "firing", "status %s" % a["status"])
    check(a["labels"] == {"alertname": RULE, "cohort": "canary", "severity": "critical"},
          "labels %s" % a["labels"])
    check(-0.3 < a["value"] < -0.1, "relative change %s, expected about -0.2" % a["value"])
    m = re.search(r"\(p = ([0-9.e-]+)\)", a["annotations"]["summary"])
    check(m is not None and float(m.group(1)) < 0.01, "summary %r" % a["annotations"]["summary"])

    alerts = fleet_alerts(st, "even", False)
    check([a for a in alerts if a["labels"]["alertname"] == RULE] == [],
          "a fleet without a slowdown fired: %s" % alerts)


if __name__ == "__main__":
    fplib.main(test)
