"""The probe against a real llama.cpp server running the generated tiny model: scraped metrics,
canary prompts through /completion and /v1/chat/completions, and the server killed and restarted
under a probe that keeps running. Everything is real: llama-server, collector, query service."""
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import fplib
from fplib import check, http

LLAMA_SERVER = sys.argv[3]
GEN_GGUF = sys.argv[4]


def start_llama(st, model, port):
    log = open(os.path.join(st.tmp, "llama-server-%d.log" % len(st.procs)), "w+")
    p = subprocess.Popen([LLAMA_SERVER, "-m", model, "--host", "127.0.0.1", "--port", str(port),
                          "--metrics", "-c", "256", "-np", "1", "-t", "1"],
                         stdout=log, stderr=subprocess.STDOUT)
    p.log = log
    st.procs.append(p)
    end = time.time() + 60
    while time.time() < end:
        check(p.poll() is None, "llama-server exited: " + st.output(p)[-2000:])
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                if r.status == 200:
                    return p
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise fplib.Fail("llama-server not healthy within 60 s: " + st.output(p)[-2000:])


def points(qport, device, metric, since, **labels):
    # Rounded down: a "from" a fraction of a millisecond in the future is a 400.
    status, body, raw = http(qport, "/api/v1/series?device=%s&metric=%s&from=%.3f"
                             % (device, metric, since - 0.002))
    check(status == 200, "%s: HTTP %d %s" % (metric, status, raw))
    out = []
    for s in body["series"]:
        if all(s["labels"].get(k) == v for k, v in labels.items()):
            out.extend(s["points"])
    return sorted(out)


def latest(qport, device, metric, since, **labels):
    p = points(qport, device, metric, since, **labels)
    return p[-1][1] if p else None


def events(qport, device, kind, since):
    status, body, raw = http(qport, "/api/v1/events?device=%s&kind=%s&from=%.3f"
                             % (device, kind, since - 0.002))
    check(status == 200, "events: HTTP %d %s" % (status, raw))
    return body["events"]


def test(st):
    model = os.path.join(st.tmp, "tiny.gguf")
    subprocess.run([GEN_GGUF, model], check=True, capture_output=True)
    lport, cport, qport = fplib.free_port(), fplib.free_port(), fplib.free_port()
    url = "http://127.0.0.1:%d" % lport
    endpoint = "tcp://127.0.0.1:%d" % cport
    data = os.path.join(st.tmp, "data")
    t0 = time.time()

    llama = start_llama(st, model, lport)
    st.start("fleetpulse-collector", "--listen", endpoint, "--data", data)
    probe = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "1s",
                     "--device-id", "llama-dev", "--llama-server", url,
                     "--canary-interval", "1s", "--canary-max-tokens", "8",
                     "--canary-timeout", "20s", "--scrape-timeout", "2s")
    oai = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "1s",
                   "--device-id", "llama-oai", "--openai", url, "--canary-interval", "1s",
                   "--canary-max-tokens", "8", "--canary-timeout", "20s")
    inproc = st.start("fleetpulse-probe", "--collector", endpoint, "--interval", "1s",
                      "--device-id", "llama-inproc", "--model", model, "--inproc-interval", "1s")
    time.sleep(0.5)
    query = st.start("fleetpulse-query", "--listen", "127.0.0.1:%d" % qport, "--data", data)
    fplib.wait_http(qport, query)

    # Scraped and measured: generation rate from the _total counters, client-side TTFT, counts.
    def healthy_numbers():
        tps = latest(qport, "llama-dev", "llamacpp_generation_tokens_per_second", t0)
        ttft = latest(qport, "llama-dev", "llm_canary_time_to_first_token_seconds", t0)
        ok = latest(qport, "llama-dev", "llm_canary_requests_total", t0, outcome="ok")
        pred = latest(qport, "llama-dev", "llamacpp_tokens_predicted_total", t0)
        up = latest(qport, "llama-dev", "llamacpp_up", t0)
        if tps and ttft and ok and pred and up == 1:
            return tps, ttft, ok, pred
        return None
    tps, ttft, ok, pred = fplib.wait_for(healthy_numbers, 60, "llama metrics through the API")
    check(tps > 0 and 0 < ttft < 20 and ok >= 1 and pred >= 1, "%s" % [tps, ttft, ok, pred])
    ev = events(qport, "llama-dev", "canary", t0)
    check(any(e["attributes"].get("outcome") == "ok" and
              e["attributes"].get("endpoint") == "completion" for e in ev), "canary events: %s" % ev)
    status, body, raw = http(qport, "/api/v1/devices")
    info = {d["device"]: d["info"] for d in body["devices"]}["llama-dev"]
    check(info.get("runtime") == "llama.cpp" and info.get("runtime_version"), "identity: %s" % info)

    # The same through the OpenAI-compatible endpoint.
    def oai_ok():
        return [e for e in events(qport, "llama-oai", "canary", t0)
                if e["attributes"].get("outcome") == "ok" and
                e["attributes"].get("endpoint") == "chat"]
    fplib.wait_for(oai_ok, 60, "an OpenAI-style canary to succeed")
    check((latest(qport, "llama-oai", "llm_canary_generation_tokens_per_second", t0) or 0) > 0,
          "OpenAI canary tokens/s")

    # In-process through libllama: pp and tg rates, and the file's digest as the identity.
    def inproc_numbers():
        pp = latest(qport, "llama-inproc", "llama_inproc_prompt_tokens_per_second", t0)
        tg = latest(qport, "llama-inproc", "llama_inproc_generation_tokens_per_second", t0)
        return (pp, tg) if pp and tg else None
    pp, tg = fplib.wait_for(inproc_numbers, 60, "in-process pp/tg through the API")
    check(pp > 0 and tg > 0, "inproc rates %s %s" % (pp, tg))
    digest = subprocess.run(["sha256sum", model], check=True, capture_output=True,
                            text=True).stdout.split()[0]
    status, body, raw = http(qport, "/api/v1/devices")
    info = {d["device"]: d["info"] for d in body["devices"]}["llama-inproc"]
    check(info.get("model_sha256") == digest, "digest %s != sha256sum %s" %
          (info.get("model_sha256"), digest))
    check(info.get("model") == "fleetpulse-tiny", "inproc model name: %s" % info)
    check(st.stop(inproc) == 0, "inproc probe exit %s" % inproc.returncode)

    # The server dies: health 0 and failed canaries, the probe keeps running.
    llama.send_signal(signal.SIGKILL)
    llama.wait()
    t_kill = time.time()

    def down():
        up = points(qport, "llama-dev", "llamacpp_up", t_kill)
        bad = [e for e in events(qport, "llama-dev", "canary", t_kill)
               if e["attributes"].get("outcome") in ("refused", "error", "timeout")]
        return up and up[-1][1] == 0 and bad
    fplib.wait_for(down, 60, "health 0 and failed canaries after the kill")
    health = events(qport, "llama-dev", "runtime_health", t_kill)
    check(any(e["attributes"].get("state") == "down" for e in health), "health events: %s" % health)
    check(probe.poll() is None and oai.poll() is None, "a probe died with the server")

    # It comes back on the same port: the probe notices without a restart.
    start_llama(st, model, lport)
    t_back = time.time()

    def recovered():
        up = points(qport, "llama-dev", "llamacpp_up", t_back)
        good = [e for e in events(qport, "llama-dev", "canary", t_back)
                if e["attributes"].get("outcome") == "ok"]
        return up and up[-1][1] == 1 and good
    fplib.wait_for(recovered, 60, "recovery after llama-server returns")

    check(st.stop(probe) == 0, "probe exit %s" % probe.returncode)
    check(st.stop(oai) == 0, "oai probe exit %s" % oai.returncode)


fplib.main(test)
