"""/api/v1/compare with strata on a simulated fleet: 100 devices of mixed models, quantisations
and boards from fleetpulse-sim (fixed seed), model_version v2 20% slower in tokens/s. Pooled,
the 2.5x spread between boards hides the slowdown; compared within model, quant and hw the
canary reads about -20% with p < 0.01. The same fleet without the slowdown shows no significant
difference within strata."""
import os
import subprocess
import sys

import fplib
from fplib import check, http

PATH = ("/api/v1/compare?metric=llamacpp_generation_tokens_per_second&by=model_version"
        "&a=v1&b=v2&strata=model,quant,hw")


def compare(st, name, slow):
    """Simulates a fleet into a fresh store and returns compare's answer with strata."""
    cport, qport = fplib.free_port(), fplib.free_port()
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, name)
    os.mkdir(data)
    collector = st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    args = [st.exe("fleetpulse-sim"), "--collector", endpoint, "--devices", "100",
            "--interval", "10s", "--backfill", "20m", "--seed", "42"]
    if slow:
        args += ["--slow", "model_version=v2:0.8"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "fleetpulse-sim exited with %d: %s" % (p.returncode, p.stderr))
    query = st.start("fleetpulse-query", "--data", data, "--listen", "127.0.0.1:%d" % qport)
    fplib.wait_http(qport, query)
    status, body, _ = http(qport, PATH)
    check(status == 200, "compare: %d %s" % (status, body))
    check(st.stop(query) == 0, "query service did not exit cleanly")
    check(st.stop(collector) == 0, "collector did not exit cleanly")
    return body


def test(st):
    v = compare(st, "slow", True)
    check(v["strata"]["labels"] == ["model", "quant", "hw"], "strata %s" % v["strata"])
    check(v["strata"]["compared"] > 1, "strata %s" % v["strata"])
    # Every device compared or excluded, once.
    check(v["a"]["devices"] + v["b"]["devices"] + v["strata"]["excluded_devices"] == 100,
          "devices a %s, b %s, %s" % (v["a"]["devices"], v["b"]["devices"], v["strata"]))
    check(-0.3 < v["change"] < -0.1, "relative change %s, expected about -0.2" % v["change"])
    check(v["p"] < 0.01, "p %s, expected < 0.01 for a 20%% slower canary" % v["p"])
    check("within strata model,quant,hw" in v["summary"], "summary %r" % v["summary"])

    v = compare(st, "even", False)
    check(v["p"] > 0.01, "p %s for a fleet without a slowdown" % v["p"])
    check(abs(v["change"]) < 0.1, "relative change %s without a slowdown" % v["change"])


if __name__ == "__main__":
    fplib.main(test)
