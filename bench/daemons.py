"""Starting and stopping the fleetpulse daemons for the Python benchmark drivers (bench/ingest.py,
bench/query.py): a free loopback port, waiting until a daemon listens, stopping it cleanly."""
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=20):
    """Returns once proc accepts TCP connections on port; exits the benchmark if it dies first."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("bench: %s exited early" % proc.args[0])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    sys.exit("bench: %s did not listen on %d" % (proc.args[0], port))


def stop(proc):
    """SIGTERM, then SIGKILL after 60 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
