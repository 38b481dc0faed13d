"""Every daemon's command line: --help, --version, bad flags, unusable data directories and an
unreachable collector each give one clear line and the right exit code, never a crash."""
import os
import shutil
import signal
import subprocess
import time

import fplib
from fplib import check

DAEMONS = ["fleetpulse-collector", "fleetpulse-probe", "fleetpulse-query"]


def run(st, name, *args, timeout=10, user=None):
    cmd = [st.exe(name)] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def one_line_error(name, code, err, want_code, *needles):
    lines = err.strip().splitlines()
    check(code == want_code, "%s: exit %s, expected %s (stderr: %r)" % (name, code, want_code, err))
    check(len(lines) == 1, "%s: %d stderr lines, expected one: %r" % (name, len(lines), err))
    check(lines[0].startswith(name + ": "), "%s: error not prefixed: %r" % (name, lines[0]))
    for n in needles:
        check(n in lines[0], "%s: %r not in %r" % (name, n, lines[0]))


def test(st):
    for name in DAEMONS:
        code, out, err = run(st, name, "--version")
        check(code == 0 and out.strip() == name + " 0.1.0", "%s --version: %r" % (name, out))
        code, out, err = run(st, name, "--help")
        check(code == 0 and "Usage: " + name in out and "--log-level" in out,
              "%s --help: %r" % (name, out))
        code, out, err = run(st, name, "--no-such-flag")
        one_line_error(name, code, err, 2, "--no-such-flag")
        code, out, err = run(st, name, "--log-level", "loud")
        one_line_error(name, code, err, 2, "loud")

    code, _, err = run(st, "fleetpulse-probe", "--interval", "0")
    one_line_error("fleetpulse-probe", code, err, 2, "--interval")
    code, _, err = run(st, "fleetpulse-probe", "--interval", "10x")
    one_line_error("fleetpulse-probe", code, err, 2, "10x")
    code, _, err = run(st, "fleetpulse-probe", "--procfs", "/nonexistent")
    one_line_error("fleetpulse-probe", code, err, 2, "/nonexistent")
    code, _, err = run(st, "fleetpulse-probe", "--collector", "nonsense://x")
    one_line_error("fleetpulse-probe", code, err, 1, "nonsense://x")
    code, _, err = run(st, "fleetpulse-collector")
    one_line_error("fleetpulse-collector", code, err, 2, "--data")
    code, _, err = run(st, "fleetpulse-query", "--listen", "nohost", "--data", st.tmp)
    one_line_error("fleetpulse-query", code, err, 2, "nohost")

    # Data directories: missing (parent too), not a store, read-only.
    missing = os.path.join(st.tmp, "no", "such", "dir")
    port = fplib.free_port()
    code, _, err = run(st, "fleetpulse-collector", "--data", missing,
                       "--listen", "tcp://127.0.0.1:%d" % port)
    one_line_error("fleetpulse-collector", code, err, 1, missing)
    code, _, err = run(st, "fleetpulse-query", "--data", missing,
                       "--listen", "127.0.0.1:%d" % port)
    one_line_error("fleetpulse-query", code, err, 1, missing)
    empty = os.path.join(st.tmp, "empty")
    os.mkdir(empty)
    code, _, err = run(st, "fleetpulse-query", "--data", empty, "--listen", "127.0.0.1:%d" % port)
    one_line_error("fleetpulse-query", code, err, 1, empty, "collector")
    junk = os.path.join(st.tmp, "junk")
    os.mkdir(junk)
    with open(os.path.join(junk, "data.mdb"), "wb") as f:
        f.write(b"not lmdb" * 1024)
    code, _, err = run(st, "fleetpulse-collector", "--data", junk,
                       "--listen", "tcp://127.0.0.1:%d" % port)
    one_line_error("fleetpulse-collector", code, err, 1, junk, "fleetpulse store")

    # Read-only: root ignores permission bits, so run as nobody when we are root.
    ro = os.path.join(st.tmp, "ro")
    os.mkdir(ro)
    os.chmod(st.tmp, 0o755)
    os.chmod(ro, 0o555)
    user = 65534 if os.geteuid() == 0 else None  # nobody
    code, _, err = run(st, "fleetpulse-collector", "--data", ro,
                       "--listen", "tcp://127.0.0.1:%d" % port, user=user)
    one_line_error("fleetpulse-collector", code, err, 1, ro)
    check("not writable" in err or "ermission" in err, "read-only: %r" % err)

    # A port in use.
    data = os.path.join(st.tmp, "data")
    c1 = st.start("fleetpulse-collector", "--data", data, "--listen", "tcp://127.0.0.1:%d" % port)
    time.sleep(0.5)
    os.mkdir(os.path.join(st.tmp, "data2"))
    code, _, err = run(st, "fleetpulse-collector", "--data", os.path.join(st.tmp, "data2"),
                       "--listen", "tcp://127.0.0.1:%d" % port)
    one_line_error("fleetpulse-collector", code, err, 1, "cannot listen")
    check(st.stop(c1) == 0, "collector exit %s" % c1.returncode)

    # An unreachable collector: the probe keeps going, says so, and stops cleanly on SIGTERM.
    dead = fplib.free_port()
    p = st.start("fleetpulse-probe", "--collector", "tcp://127.0.0.1:%d" % dead,
                 "--interval", "200ms", "--device-id", "lonely")
    fplib.wait_for(lambda: "not answering" in st.output(p), 15, "the probe to report the outage")
    check(p.poll() is None, "probe exited while the collector was down")
    check(st.stop(p) == 0, "probe exit %s" % p.returncode)
    out = st.output(p)
    check("not answering" in out and "retrying" in out, out)
    check("unacknowledged" in out, "probe did not report what it lost: " + out)


fplib.main(test)
