"""Starting and stopping `imds serve` for the benchmark scripts (load.py, fleet.py, soak.py)."""
import re
import signal
import subprocess
import threading
import time


def start(argv, children, timeout=60):
    """Spawns `argv` (an `imds serve` command line listening on port 0), records the process in
    `children` (for the caller's clean-up), and returns (process, data URL, control URL) read from
    the lines it prints. Its stdout keeps being drained so that it never blocks on a full pipe."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    children.append(proc)
    data = control = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (data is None or control is None):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("imds serve exited before listening")
        m = re.search(r"data plane listening on (http://\S+)", line)
        if m and data is None:
            data = m.group(1)
        m = re.search(r"control plane listening on (http://\S+)", line)
        if m:
            control = m.group(1)
    if data is None or control is None:
        raise RuntimeError(f"imds serve did not say where it listens within {timeout} s")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, data, control


def stop(proc, timeout=10):
    """SIGTERM (a graceful drain), then SIGKILL after `timeout` seconds; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
