#!/usr/bin/env python3
"""Soak: SOAK_SECONDS (default 600) of mixed load on `imds serve` with control-plane changes and
event triggers interleaved; zero 5xx, zero crashes, flat RSS. Called by benchmarks/soak.sh; see
docs/benchmarks.md. Loopback only, bounded in time.

Environment: IMDS_BIN (default .build/release/imds), SOAK_SECONDS, SOAK_CONNECTIONS (default 32),
SOAK_ACTION_INTERVAL (seconds between control-plane actions, default 2).
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import imds_serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMDS_BIN = os.environ.get("IMDS_BIN", os.path.join(ROOT, ".build", "release", "imds"))
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "32"))
INTERVAL = float(os.environ.get("SOAK_ACTION_INTERVAL", "2"))

CONFIG_A = """instance:
  instance-id: i-0123456789abcdef0
  instance-life-cycle: spot
  tags:
    Name: soak-a
"""
CONFIG_B = """instance:
  instance-id: i-0123456789abcdef0
  instance-life-cycle: spot
  tags:
    Name: soak-b
    Extra: "yes"
"""

# The control-plane actions, cycled. Faults stay below 5xx (throttle answers 429; latency delays):
# an `error` fault would make 5xx on purpose, which is what this run must not see otherwise.
ACTIONS = [
    ("POST", "/events", {"type": "spot-interruption", "action": "stop"}),
    ("PUT", "/credentials/scenario", {"scenario": "near-expiry", "seconds": 240}),
    ("POST", "/events", {"type": "rebalance-recommendation"}),
    ("POST", "/tokens/invalidate", None),
    ("POST", "/events", {"type": "scheduled-maintenance", "code": "instance-reboot"}),
    ("PUT", "/credentials/scenario", {"scenario": "expired"}),
    ("POST", "/faults", {"type": "throttle", "path": "/latest/meta-data/iam/*", "count": 20}),
    ("PUT", "/credentials/scenario", {"scenario": "error", "code": "AssumeRoleUnauthorizedAccess", "message": "soak"}),
    ("POST", "/faults", {"type": "latency", "milliseconds": 20, "count": 50}),
    ("POST", "/events", {"type": "autoscaling-lifecycle", "state": "Warmed:Stopped"}),
    ("PUT", "/credentials/scenario", {"scenario": "role-changed", "role": "other-role"}),
    ("POST", "/events", {"type": "instance-action", "action": "shutdown"}),
    ("SIGHUP", None, None),
    ("PUT", "/credentials/scenario", {"scenario": "detached"}),
    ("DELETE", "/events", None),
    ("DELETE", "/faults", None),
    ("PUT", "/credentials/scenario", {"scenario": "normal"}),
]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    if not os.access(IMDS_BIN, os.X_OK):
        sys.exit(f"no imds binary at {IMDS_BIN}")
    tmp = tempfile.mkdtemp(prefix="imds-soak-")
    config = os.path.join(tmp, "imds.yaml")
    open(config, "w").write(CONFIG_A)
    try:
        proc, data, control = imds_serve.start(
            [IMDS_BIN, "serve", "--config", config, "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
             "--state-dir", os.path.join(tmp, "state"), "--log-level", "warning"],
            [])
    except RuntimeError as e:
        sys.exit(str(e))

    stop = threading.Event()
    actions = {"ok": 0, "failed": 0, "by": {}}
    samples = []  # (seconds since start, RSS kB)
    start = time.time()

    def control_loop():
        i = 0
        while not stop.wait(INTERVAL):
            method, path, body = ACTIONS[i % len(ACTIONS)]
            i += 1
            name = f"{method} {path}" if path else method
            try:
                if method == "SIGHUP":
                    open(config, "w").write(CONFIG_B if (i // len(ACTIONS)) % 2 == 0 else CONFIG_A)
                    proc.send_signal(signal.SIGHUP)
                    ok = True
                else:
                    req = urllib.request.Request(control + "/admin/v1" + path, method=method,
                                                 data=json.dumps(body).encode() if body is not None else None,
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        ok = r.status < 300
            except (OSError, urllib.error.HTTPError) as err:
                print(f"control-plane action {name} failed: {err}", file=sys.stderr)
                ok = False
            actions["ok" if ok else "failed"] += 1
            actions["by"][name] = actions["by"].get(name, 0) + 1

    def rss_loop():
        while not stop.wait(5):
            if proc.poll() is not None:
                return
            samples.append((round(time.time() - start), rss_kb(proc.pid)))

    samples.append((0, rss_kb(proc.pid)))
    threads = [threading.Thread(target=control_loop, daemon=True), threading.Thread(target=rss_loop, daemon=True)]
    for t in threads:
        t.start()
    wrk = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "5s",
         "-s", os.path.join(ROOT, "benchmarks", "lua", "soak.lua"), data + "/latest/meta-data/instance-id"],
        capture_output=True, text=True, timeout=SECONDS + 120)
    stop.set()
    for t in threads:
        t.join(10)
    alive = proc.poll() is None
    final_rss = rss_kb(proc.pid) if alive else 0
    if alive:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    exit_code = proc.returncode

    m = re.search(r"SOAK (.*)", wrk.stdout)
    if not m:
        print(wrk.stdout, wrk.stderr)
        sys.exit("wrk printed no result")
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    warm = [kb for t, kb in samples if t >= min(60, SECONDS // 10)] or [s[1] for s in samples]
    growth = (final_rss or warm[-1]) - warm[0]
    flat = growth <= max(2048, warm[0] // 10)  # within 10% (at least 2 MB) of the post-warm-up value
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    ok = r["s5xx"] == 0 and alive and exit_code == 0 and flat and actions["failed"] == 0

    print(f"""
## Soak summary

| | |
|---|---|
| duration | {r['duration_us'] / 1e6:.0f} s, {CONNECTIONS} connections, a control-plane action every {INTERVAL:g} s |
| requests | {r['requests']:,} ({r['requests'] / (r['duration_us'] / 1e6):,.0f}/s) |
| responses | {r['s2xx']:,} 2xx/3xx, {r['s4xx']:,} 4xx (401 after token invalidation, 404 while detached or for events not scheduled, 429 throttle faults), **{r['s5xx']} 5xx** |
| socket errors | {socket_errors} (connect {r['connect']}, read {r['read']}, write {r['write']}, timeout {r['timeout']}) |
| latency | p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms, max {r['max_us'] / 1000:.1f} ms (latency faults add 20 ms to some) |
| control-plane actions | {actions['ok']} ok, {actions['failed']} failed: {', '.join(f'{k} ×{v}' for k, v in sorted(actions['by'].items()))} |
| process | {'alive until SIGTERM, exit ' + str(exit_code) if alive else 'CRASHED (exit ' + str(exit_code) + ')'} |
| RSS | start {samples[0][1] / 1024:.1f} MB, after warm-up {warm[0] / 1024:.1f} MB, end {(final_rss or warm[-1]) / 1024:.1f} MB, max {max(kb for _, kb in samples) / 1024:.1f} MB → {'flat' if flat else 'GROWING'} ({growth / 1024:+.1f} MB) |

RSS samples (s: MB): {', '.join(f'{t}: {kb / 1024:.1f}' for t, kb in samples[:: max(1, len(samples) // 20)])}

soak: {'PASS' if ok else 'FAIL'}""")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
