"""Alerts end to end with a real Alertmanager (Debian's prometheus-alertmanager) on a loopback
port, with the stock rules of deploy/rules.json plus one threshold rule: a probe's temperature
fires the threshold rule while Alertmanager is still down (the push is retried until it comes
up), the device is degraded; the probe stops, the device goes stale, then silent, and the stock
"DeviceSilent" rule fires in Alertmanager while the temperature alert resolves there. The
state survives a restart of the query service; a bad rules file is refused at start (exit 2,
one line naming rule and field) and, on SIGHUP, logged while the old rules keep running."""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import fplib
from fplib import check, http

FIXTURES = sys.argv[2]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

STOCK = os.path.join(FIXTURES, "..", "..", "deploy", "rules.json")
WARM = {"name": "FixtureWarm", "kind": "threshold", "metric": "temperature_celsius",
     "matchers": ["zone=thermal_zone0"], "agg": "max", "window": "2s", "op": ">", "value": 50,
     "by": ["device"],
     "annotations": {"summary": "{{ $labels.device }} at {{ $value }} C"}}


def am_alerts(port):
    """Alertmanager's active alerts, by alertname."""
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v2/alerts" % port, timeout=5) as r:
        return {a["labels"]["alertname"]: a for a in json.loads(r.read().decode())}


def am_up(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def alerts(qport, query=""):
    status, body, raw = http(qport, "/api/v1/alerts" + query)
    check(status == 200, "/api/v1/alerts%s: HTTP %d %s" % (query, status, raw))
    return body


def firing(qport, name):
    for a in alerts(qport, "?state=firing&alertname=" + name)["alerts"]:
        return a
    return None


def metric(qport, name):
    """The value of the sample named name (with its labels) on /metrics, or None."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % qport, timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def start_tool(st, *cmd):
    """Starts a program that is not one of ours, logged and cleaned up like the daemons."""
    log = open(os.path.join(st.tmp, "%s-%d.log" % (os.path.basename(cmd[0]), len(st.procs))),
               "w+")
    p = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
    p.log = log
    st.procs.append(p)
    return p


def test(st):
    cport, qport, amport = fplib.free_port(), fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    rules = os.path.join(st.tmp, "rules.json")
    with open(STOCK) as f:
        stock = json.load(f)
    n_rules = len(stock["rules"]) + 1
    with open(rules, "w") as f:
        json.dump({"rules": stock["rules"] + [WARM]}, f)

    # A bad rules file stops start-up: exit 2, one line naming the rule and the field.
    bad = os.path.join(st.tmp, "bad.json")
    with open(bad, "w") as f:
        json.dump({"rules": [{"name": "Hot", "kind": "threshold", "metric": "t", "op": ">",
                              "value": 1}]}, f)
    os.mkdir(data)
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    fplib.wait_collector(st, collector)
    p = subprocess.run([st.exe("fleetpulse-query"), "--data", data, "--listen",
                        "127.0.0.1:%d" % qport, "--rules", bad], capture_output=True, text=True,
                       timeout=10)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 2, "bad rules: exit %d, expected 2 (%r)" % (p.returncode, p.stderr))
    check(len(lines) == 1 and lines[0].startswith("fleetpulse-query: " + bad) and
          'rule "Hot" (#1): field "window": missing' in lines[0],
          "bad rules: %r" % p.stderr)
    # The other alert flags: each mistake is one line and exit 2.
    missing = os.path.join(st.tmp, "missing.json")
    for args, needle in [
        (["--rules", missing], missing + ": cannot open"),
        (["--alertmanager", "http://127.0.0.1:1"], "need --rules FILE"),
        (["--alert-state", rules + ".state"], "need --rules FILE"),
        (["--rules", rules, "--alertmanager", "ftp://x"], 'invalid Alertmanager URL "ftp://x"'),
        (["--rules", rules, "--eval-interval", "10ms"], 'invalid --eval-interval "10ms"'),
    ]:
        p = subprocess.run([st.exe("fleetpulse-query"), "--data", data, "--listen",
                            "127.0.0.1:%d" % qport] + args, capture_output=True, text=True,
                           timeout=10)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and needle in lines[0],
              "%s: exit %d, %r" % (args, p.returncode, p.stderr))

    probe = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "300ms",
                     "--device-id", "fixture-dev", "--site", "lab-1",
                     "--procfs", os.path.join(FIXTURES, "procfs"),
                     "--sysfs", os.path.join(FIXTURES, "sysfs"))
    qargs = ["--data", data, "--listen", "127.0.0.1:%d" % qport, "--rules", rules,
             "--eval-interval", "300ms", "--silent-after", "3s",
             "--alertmanager", "http://127.0.0.1:%d" % amport]
    query = st.start("fleetpulse-query", *qargs)
    fplib.wait_http(qport, query)

    # Alertmanager is not up yet: the alert fires here and its pushes fail, counted.
    warm = fplib.wait_for(lambda: firing(qport, "FixtureWarm"), 20, "FixtureWarm to fire")
    check(warm["labels"] == {"alertname": "FixtureWarm", "device": "fixture-dev",
                             "severity": "warning"}, "labels: %s" % warm["labels"])
    check(warm["annotations"]["summary"] == "fixture-dev at 51.234 C",
          "summary: %r" % warm["annotations"])
    check(warm["value"] == 51.234, "value %r" % warm["value"])
    check(warm["generatorURL"] == "http://127.0.0.1:%d/api/v1/alerts?alertname=FixtureWarm"
          % qport, "generatorURL %r" % warm["generatorURL"])
    fplib.wait_for(lambda: (metric(qport, 'fleetpulse_query_alertmanager_requests_total'
                                          '{result="failure"}') or 0) >= 1,
                   10, "a failed push to the absent Alertmanager")
    check(metric(qport, 'fleetpulse_query_alertmanager_requests_total{result="success"}') == 0,
          "a push succeeded with no Alertmanager")
    status, dev, raw = http(qport, "/api/v1/devices/fixture-dev")
    check(status == 200 and dev["state"] == "degraded", "device state: %s" % raw[:300])
    check([a["labels"]["alertname"] for a in dev["alerts"]] == ["FixtureWarm"],
          "device alerts: %s" % dev["alerts"])
    for q, needle in [("?state=fired", "not pending, firing or resolved"),
                      ("?device=", "parameter \"device\""),
                      ("?alertname=" + "x" * 129, "parameter \"alertname\""),
                      ("?limit=1", "unknown parameter \"limit\"")]:
        status, body, raw = http(qport, "/api/v1/alerts" + q)
        check(status == 400 and needle in body["error"], "%s: %d %s" % (q, status, raw))
    body = alerts(qport, "?device=nobody")
    check(body["alerts"] == [] and body["rules"] == n_rules, "device=nobody: %s" % body)

    # Alertmanager comes up on a loopback port with a receiver that notifies nobody.
    amdir = os.path.join(st.tmp, "am")
    os.mkdir(amdir)
    amcfg = os.path.join(amdir, "alertmanager.yml")
    with open(amcfg, "w") as f:
        f.write('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    am = start_tool(st, ALERTMANAGER, "--config.file=" + amcfg, "--storage.path=" + amdir,
                      "--web.listen-address=127.0.0.1:%d" % amport, "--cluster.listen-address=")
    fplib.wait_for(lambda: am.poll() is not None or am_up(amport), 20, "Alertmanager to start")
    check(am.poll() is None, "Alertmanager exited with %s" % am.returncode)

    got = fplib.wait_for(lambda: am_alerts(amport).get("FixtureWarm"), 30,
                         "FixtureWarm in Alertmanager (the retried push)")
    check(got["labels"] == warm["labels"], "Alertmanager labels %s" % got["labels"])
    check(got["annotations"] == warm["annotations"], "annotations %s" % got["annotations"])
    check(got["startsAt"] == warm["startsAt"], "startsAt %s vs %s" % (got["startsAt"],
                                                                     warm["startsAt"]))
    check(got["generatorURL"] == warm["generatorURL"], "generatorURL %s" % got["generatorURL"])
    check(got["status"]["state"] == "active", "Alertmanager state %s" % got["status"])

    # The probe stops: stale, then silent after 3 s; DeviceSilent fires in Alertmanager and
    # FixtureWarm, without samples in its window, resolves there.
    check(st.stop(probe) == 0, "probe did not exit cleanly")
    silent = fplib.wait_for(lambda: am_alerts(amport).get("DeviceSilent"), 30,
                            "DeviceSilent in Alertmanager")
    check(silent["labels"] == {"alertname": "DeviceSilent", "device": "fixture-dev",
                               "severity": "critical"},
          "DeviceSilent labels %s" % silent["labels"])
    check(silent["annotations"]["summary"].startswith("fixture-dev has sent nothing for "),
          "DeviceSilent summary %r" % silent["annotations"])
    fplib.wait_for(lambda: "FixtureWarm" not in am_alerts(amport), 30,
                   "FixtureWarm to resolve in Alertmanager")
    resolved = alerts(qport, "?state=resolved")["alerts"]
    check([a["labels"]["alertname"] for a in resolved] == ["FixtureWarm"],
          "resolved here: %s" % resolved)
    status, dev, raw = http(qport, "/api/v1/devices/fixture-dev")
    check(status == 200 and dev["state"] == "silent", "device state: %s" % raw[:300])
    check(metric(qport, 'fleetpulse_query_alertmanager_requests_total{result="success"}') >= 1,
          "no successful push counted")
    mine = firing(qport, "DeviceSilent")
    check(mine is not None, "DeviceSilent not firing here")

    # Restart: the firing alert comes back from the state file with its startsAt.
    check(st.stop(query) == 0, "query service did not exit cleanly")
    check(os.path.exists(rules + ".state"), "no state file next to the rules")
    query = st.start("fleetpulse-query", *qargs)
    fplib.wait_http(qport, query)
    again = fplib.wait_for(lambda: firing(qport, "DeviceSilent"), 10, "DeviceSilent after restart")
    check(again["startsAt"] == mine["startsAt"],
          "startsAt after restart %s, before %s" % (again["startsAt"], mine["startsAt"]))

    # SIGHUP with a broken file: logged, the old rules keep running.
    shutil.copy(bad, rules)
    query.send_signal(signal.SIGHUP)
    fplib.wait_for(lambda: 'field "window": missing; keeping the %d rules loaded before'
                   % n_rules in st.output(query), 10, "the reload error in the log")
    body = alerts(qport)
    check(body["rules"] == n_rules, "rules after a bad reload: %s" % body["rules"])
    check(query.poll() is None, "query service died on a bad reload")
    evaluated = body["evaluated_at"]
    fplib.wait_for(lambda: alerts(qport)["evaluated_at"] > evaluated, 10, "another round")
    check(firing(qport, "DeviceSilent") is not None, "DeviceSilent gone after a bad reload")

    # SIGHUP with a file without DeviceSilent: its alert resolves, here and in Alertmanager.
    with open(rules, "w") as f:
        json.dump({"rules": [WARM]}, f)
    query.send_signal(signal.SIGHUP)
    fplib.wait_for(lambda: "reloaded 1 rules" in st.output(query), 10, "the reload")
    fplib.wait_for(lambda: "DeviceSilent" not in am_alerts(amport), 30,
                   "DeviceSilent to resolve in Alertmanager")
    check(st.stop(query) == 0, "query service did not exit cleanly")
    check(st.stop(collector) == 0, "collector did not exit cleanly")


if __name__ == "__main__":
    if ALERTMANAGER is None:
        print("SKIP: prometheus-alertmanager is not installed (deploy/install-deps.sh installs it)")
        sys.exit(77)
    fplib.main(test)
