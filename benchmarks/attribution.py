#!/usr/bin/env python3
"""What caller attribution costs: `imds serve` as shipped against `--no-caller-attribution`.

Called by benchmarks/attribution.sh (which builds the release binary and installs wrk); see
docs/benchmarks.md. Both servers run at once; for every concurrency the runs alternate
(no attribution, attribution, no attribution, ...) so that both see the same machine load, and
the figure is the ratio of the two means. Two phases:

  drained  no TIME_WAIT sockets on the host (net.ipv4.tcp_max_tw_buckets = 0)
  present  tens of thousands of TIME_WAIT sockets (a burst first; every run adds more)

Run inside a private network namespace (`unshare -n`, as root) so that the TIME_WAIT table and
the sysctl belong to this run alone; without one it runs in the host's namespace, waits for
TIME_WAIT to drain instead and reports the counts it saw.

Environment (all optional): IMDS_BIN, BENCH_DURATION (default 3s), BENCH_CONNECTIONS
(default 1,16,64,256), BENCH_REPS (default 3), BENCH_WORKLOADS (default v1-get,v2-get),
RESULTS_DIR (default benchmarks/results; writes attribution-latest.md and .json).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (servers, wrk and its parsing are shared with the load benchmark)

DURATION = os.environ.get("BENCH_DURATION", "3s")
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,16,64,256").split(",") if c]
REPS = int(os.environ.get("BENCH_REPS", "3"))
WORKLOADS = [w for w in os.environ.get("BENCH_WORKLOADS", "v1-get,v2-get").split(",") if w]
RESULTS_DIR = os.environ.get("RESULTS_DIR", os.path.join(load.ROOT, "benchmarks", "results"))
TW_SYSCTL = "/proc/sys/net/ipv4/tcp_max_tw_buckets"
PRIVATE = os.environ.get("IMDS_BENCH_NETNS") == "1"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def time_wait():
    with open("/proc/net/sockstat") as f:
        m = re.search(r"\btw (\d+)", f.read())
    return int(m.group(1)) if m else -1


def set_tw_buckets(n):
    with open(TW_SYSCTL, "w") as f:
        f.write(str(n))


def attribution_counts(control):
    with urllib.request.urlopen(control + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^imds_caller_attributions_total\{result="(\w+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    m = re.search(r"^imds_caller_scans_total(?:\{\})? (\d+)", text, re.M)
    out["scans"] = int(m.group(1)) if m else 0
    return out


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def block(phase, servers, env, workload, c):
    runs = {"off": [], "on": []}
    before = attribution_counts(servers["on"].control)
    for _ in range(REPS):
        for name in ["off", "on"]:
            tw = time_wait()
            cpu = cpu_seconds(servers[name].pid)
            r = load.wrk(servers[name].data, workload, c, duration=DURATION, env=env[name])
            r["cpu_us"] = (cpu_seconds(servers[name].pid) - cpu) * 1e6 / max(1, r["requests"])
            r["tw_before"] = tw
            runs[name].append(r)
            log(f"{phase:8s} {workload:7s} c={c:<4d} attribution {name:3s} {r['rps']:9.0f} req/s  "
                f"p99 {r['p99_us']:>6d} us  server CPU {r['cpu_us']:5.0f} us/req  errors {r['errors']:<4d} TIME_WAIT before {tw}")
    row = {"phase": phase, "workload": workload, "connections": c, "runs": runs}
    for name in runs:
        row[name] = statistics.mean(r["rps"] for r in runs[name])
        row[name + "_p99"] = statistics.median(r["p99_us"] for r in runs[name])
        row[name + "_errors"] = sum(r["errors"] for r in runs[name])
        row[name + "_cpu"] = statistics.mean(r["cpu_us"] for r in runs[name])
    row["ratio"] = row["on"] / row["off"] if row["off"] else 0
    after = attribution_counts(servers["on"].control)
    row["scans"] = after["scans"] - before["scans"]
    row["attributed"] = after.get("process", 0) - before.get("process", 0)
    row["accepted"] = sum(after.get(k, 0) - before.get(k, 0) for k in after if k != "scans")
    row["tw"] = [r["tw_before"] for name in runs for r in runs[name]]
    return row


def main():
    on = load.IMDS(extra=["--config", CONFIG])
    off = load.IMDS(extra=["--config", CONFIG, "--no-caller-attribution"])
    servers = {"on": on, "off": off}
    env = {}
    for name, s in servers.items():
        token = load.token_for(s.data)
        env[name] = {"IMDS_TOKEN": token, "IMDS_ROLE": load.role_for(s.data, token)}
    rows = []
    phases = []
    try:
        # Phase 1: no TIME_WAIT at all.
        if PRIVATE:
            saved = open(TW_SYSCTL).read().strip()
            set_tw_buckets(0)
        else:
            deadline = time.time() + 75
            while time_wait() > 1000 and time.time() < deadline:
                time.sleep(1)
        phases.append(("drained", time_wait()))
        for workload in WORKLOADS:
            for c in CONNECTIONS:
                rows.append(block("drained", servers, env, workload, c))
        # Phase 2: tens of thousands of TIME_WAIT sockets.
        if PRIVATE:
            set_tw_buckets(max(int(saved), 262144))
        for _ in range(6):
            if time_wait() >= 30000:
                break
            load.wrk(off.data, "v1-get", 64, duration="3s")
        phases.append(("present", time_wait()))
        for workload in WORKLOADS:
            for c in CONNECTIONS:
                rows.append(block("present", servers, env, workload, c))
        counts = attribution_counts(on.control)
    finally:
        on.stop()
        off.stop()
    return rows, phases, counts


def markdown(rows, phases, counts):
    scans = counts.pop("scans", 0)
    total = sum(counts.values())
    out = ["# Caller attribution: cost", "",
           f"`benchmarks/attribution.sh`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
           f"`wrk -t2 -cN -d{DURATION}` (`-t1` at 1), {REPS} alternating runs per point, "
           f"{'private network namespace' if PRIVATE else 'host network namespace'}; "
           f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
           "| TIME_WAIT | workload | c | no attribution req/s | attribution req/s | ratio | p99 off / on (ms) | server CPU off / on (µs per request) | attributed / scans / connections | TIME_WAIT sockets seen |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        tw = f"{min(r['tw'])}–{max(r['tw'])}"
        errors = "" if r["on_errors"] + r["off_errors"] == 0 else f" (errors {r['off_errors']} / {r['on_errors']})"
        out.append(f"| {r['phase']} | {r['workload']} | {r['connections']} | {r['off']:.0f} | {r['on']:.0f} | "
                   f"**{r['ratio']:.2f}**{errors} | {r['off_p99'] / 1000:.2f} / {r['on_p99'] / 1000:.2f} | "
                   f"{r['off_cpu']:.0f} / {r['on_cpu']:.0f} | {r['attributed']} / {r['scans']} / {r['accepted']} | {tw} |")
    worst = min(r["ratio"] for r in rows)
    cpu = statistics.mean(r["on_cpu"] / r["off_cpu"] for r in rows if r["off_cpu"])
    out += ["", f"Worst throughput ratio: **{worst:.2f}** (target ≥ 0.90); server CPU per request with attribution / without, "
            f"mean over the points: **{cpu:.2f}**.",
            f"Connections the attributing server saw: {total}; by result: "
            + ", ".join(f"{k} {v} ({v / total:.1%})" for k, v in sorted(counts.items()))
            + f"; {scans} ({scans / total:.1%}) needed a /proc scan, the rest were found through the process index."
            if total else "no metrics"]
    return "\n".join(out) + "\n"


CONFIG = os.path.join(load.TMP, "imds.yaml")

if __name__ == "__main__":
    if os.geteuid() == 0 and not PRIVATE and os.environ.get("IMDS_BENCH_NETNS") != "0":
        # Re-run in a private network namespace with loopback up.
        rc = subprocess.call(["unshare", "-n", "sh", "-c", 'ip link set lo up 2>/dev/null || ifconfig lo up; exec "$@"',
                              "sh", sys.executable, *sys.argv], env=dict(os.environ, IMDS_BENCH_NETNS="1"))
        sys.exit(rc)
    with open(CONFIG, "w") as f:
        f.write("instance:\n  instance-id: i-0123456789abcdef0\n  metadata-options:\n    http-tokens: optional\n")
    try:
        rows, phases, counts = main()
        md = markdown(rows, phases, counts)
        print(md)
        os.makedirs(RESULTS_DIR, exist_ok=True)
        with open(os.path.join(RESULTS_DIR, "attribution-latest.md"), "w") as f:
            f.write(md)
        with open(os.path.join(RESULTS_DIR, "attribution-latest.json"), "w") as f:
            json.dump({"rows": rows, "phases": phases, "attributions": counts}, f, indent=1)
    finally:
        for p in load.children:
            if p.poll() is None:
                p.kill()
        load.shutil.rmtree(load.TMP, ignore_errors=True)
