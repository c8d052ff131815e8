#!/usr/bin/env python3
"""Fleet scale: what 10,000 instances in one `imds serve` cost, against one instance.

Called by benchmarks/fleet.sh (which builds the release binary); see docs/fleet.md. Prints, for a
state directory holding 1 instance and one holding FLEET_SIZE (launched with RunInstances through
botocore, 1,000 per call):

  - ready: from `imds serve --state-dir` being spawned to the data plane's first 200 (median of
    READY_RUNS starts);
  - resident size once ready, and the difference per idle instance;
  - one change through the admin API (a token invalidation, fsync included), sequential, median;
  - v2 GET of a leaf with wrk from 127.0.0.1 (a caller address of the config instance, so both
    servers resolve the caller through the address index), alternating runs against the two
    servers, median requests/s and server CPU per request, and the ratio of the fleet to one.

Nothing here asserts; the figures are printed (and written to RESULTS_DIR/fleet-latest.md).
Everything listens on 127.0.0.1 and stops by itself.

Environment (all optional):
  IMDS_BIN          release binary (default .build/release/imds)
  FLEET_SIZE        instances in the large fleet (default 10000)
  BENCH_DURATION    wrk duration per run (default 5s)
  BENCH_CONNECTIONS comma-separated concurrencies (default 1,64)
  BENCH_REPS        alternating runs per point (default 5)
  READY_RUNS        start-ups timed per state directory (default 5)
  CHANGES           admin API changes timed per server (default 200)
  IMDS_SERVE_ARGS   extra `imds serve` flags for both servers (e.g. --no-caller-attribution)
  RESULTS_DIR       where fleet-latest.md goes (default benchmarks/results)
"""
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import imds_serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "benchmarks", "lua")
IMDS_BIN = os.environ.get("IMDS_BIN", os.path.join(ROOT, ".build", "release", "imds"))
FLEET_SIZE = int(os.environ.get("FLEET_SIZE", "10000"))
DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,64").split(",") if c]
REPS = int(os.environ.get("BENCH_REPS", "5"))
READY_RUNS = int(os.environ.get("READY_RUNS", "5"))
CHANGES = int(os.environ.get("CHANGES", "200"))
RESULTS_DIR = os.environ.get("RESULTS_DIR", os.path.join(ROOT, "benchmarks", "results"))
INSTANCE_ID = "i-0123456789abcdef0"
LEAF = "/latest/meta-data/instance-id"
TMP = tempfile.mkdtemp(prefix="imds-fleet-bench-")
CONFIG = os.path.join(TMP, "fleet.yaml")
children = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def http(method, url, headers=None, timeout=10):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def proc_stat(pid):
    """(utime + stime in clock ticks, resident KiB) of a process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return int(fields[11]) + int(fields[12]), rss


class Server:
    """`imds serve` over a state directory on port 0; `ready` is spawn → first 200 in seconds."""

    def __init__(self, state):
        t0 = time.monotonic()
        self.proc, self.data, self.control = imds_serve.start(
            [IMDS_BIN, "serve", "--config", CONFIG, "--state-dir", state, "--listen", "127.0.0.1:0",
             "--control-listen", "127.0.0.1:0", "--log-level", "warning",
             *shlex.split(os.environ.get("IMDS_SERVE_ARGS", ""))],
            children, timeout=120)
        deadline = t0 + 120
        while True:
            try:
                if http("GET", self.data + LEAF, timeout=2)[1] == INSTANCE_ID:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the data plane never answered as " + INSTANCE_ID)
            time.sleep(0.002)
        self.ready = time.monotonic() - t0

    def stop(self):
        imds_serve.stop(self.proc, timeout=20)


def launch(server, count):
    """Launches `count` instances through the EC2 API (botocore, 1,000 per RunInstances)."""
    import botocore.session
    from botocore.config import Config
    session = botocore.session.get_session()
    ec2 = session.create_client(
        "ec2", region_name="ap-northeast-1", endpoint_url=server.control, aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}, read_timeout=300))
    left = count
    while left > 0:
        n = min(1000, left)
        r = ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="t3.micro", MinCount=n, MaxCount=n)
        left -= len(r["Instances"])


def wrk(url, connections, token):
    script = os.path.join(TMP, "v2-get.lua")
    with open(script, "w") as out:
        for part in ["v2-get.lua", "report.lua"]:
            out.write(open(os.path.join(LUA, part)).read() + "\n")
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{DURATION}", "--timeout", "5s", "-s", script,
           url + LEAF]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, IMDS_TOKEN=token), timeout=600).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def change_cost(server):
    """Median ms of one acknowledged admin API change (token invalidation of the config instance)."""
    times = []
    for _ in range(CHANGES):
        t = time.monotonic()
        http("POST", server.control + "/admin/v1/tokens/invalidate?instance-id=" + INSTANCE_ID)
        times.append((time.monotonic() - t) * 1e3)
    return statistics.median(times)


def main():
    if not os.path.exists(IMDS_BIN):
        sys.exit(f"no imds binary at {IMDS_BIN} (swift build -c release --product imds)")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed")
    with open(CONFIG, "w") as f:
        # The config instance answers 127.0.0.1 (wrk's source address) through the address index in
        # both servers; launched instances take addresses of the /16.
        f.write(f"instance:\n  instance-id: {INSTANCE_ID}\n  local-ipv4: 10.0.0.10\n"
                "  subnet-ipv4-cidr-block: 10.0.0.0/16\n  caller-addresses: [127.0.0.1]\n")
    states = {1: os.path.join(TMP, "one"), FLEET_SIZE: os.path.join(TMP, "fleet")}
    for size, state in states.items():
        s = Server(state)
        if size > 1:
            t = time.monotonic()
            launch(s, size - 1)
            log(f"launched {size - 1} instances in {time.monotonic() - t:.1f} s")
        s.stop()

    rows = {}
    for size, state in states.items():
        ready, rss = [], []
        for _ in range(READY_RUNS):
            s = Server(state)
            ready.append(s.ready)
            rss.append(proc_stat(s.proc.pid)[1])
            s.stop()
        rows[size] = {"ready": statistics.median(ready), "rss": statistics.median(rss)}
        log(f"{size} instances: ready {rows[size]['ready'] * 1e3:.0f} ms, resident {rows[size]['rss'] / 1024:.1f} MiB")

    servers = {size: Server(state) for size, state in states.items()}
    try:
        for size, s in servers.items():
            rows[size]["change"] = change_cost(s)
        tokens = {size: http("PUT", s.data + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})[1]
                  for size, s in servers.items()}
        tick = os.sysconf("SC_CLK_TCK")
        load = {}
        for c in CONNECTIONS:
            for rep in range(REPS):
                for size in (servers if rep % 2 == 0 else reversed(list(servers))):
                    s = servers[size]
                    cpu0 = proc_stat(s.proc.pid)[0]
                    r = wrk(s.data, c, tokens[size])
                    cpu = (proc_stat(s.proc.pid)[0] - cpu0) / tick
                    if r["status"] or r["requests"] == 0:
                        raise RuntimeError(f"wrk saw errors against {size} instances: {r}")
                    load.setdefault((size, c), []).append((r["rps"], cpu * 1e6 / r["requests"]))
                    log(f"v2-get @{c} {size} instances: {r['rps']:.0f} req/s, {cpu * 1e6 / r['requests']:.0f} µs CPU/request")
        rss_after = {size: proc_stat(s.proc.pid)[1] for size, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()

    one, big = rows[1], rows[FLEET_SIZE]
    per_instance = (big["rss"] - one["rss"]) * 1024 / (FLEET_SIZE - 1)
    lines = [
        "# Fleet scale",
        "",
        f"`benchmarks/fleet.sh`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; release build; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; serve flags: "
        f"`{os.environ.get('IMDS_SERVE_ARGS', '') or '(defaults)'}`.",
        "",
        "| instances | ready from the embedded store | resident once ready | one change (admin API, fsync) |",
        "|---:|---:|---:|---:|",
    ]
    for size in (1, FLEET_SIZE):
        r = rows[size]
        lines.append(f"| {size:,} | {r['ready'] * 1e3:.0f} ms | {r['rss'] / 1024:.1f} MiB | {r['change']:.2f} ms |")
    lines += [
        "",
        f"Resident per idle instance: **{per_instance / 1024:.2f} KiB** "
        f"(({big['rss']} − {one['rss']}) KiB / {FLEET_SIZE - 1:,}); after the load runs "
        f"{rss_after[1] / 1024:.1f} MiB and {rss_after[FLEET_SIZE] / 1024:.1f} MiB.",
        "",
        f"v2 GET of `{LEAF}` (wrk, `-d{DURATION}`, {REPS} alternating runs per point, medians):",
        "",
        f"| connections | 1 instance req/s | {FLEET_SIZE:,} instances req/s | ratio of medians | median of paired ratios "
        f"| server CPU µs/request 1 / {FLEET_SIZE:,} | CPU ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in CONNECTIONS:
        a, b = load[(1, c)], load[(FLEET_SIZE, c)]
        ra, rb = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
        ca, cb = statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)
        # Each rep ran both servers back to back: the median of those paired ratios cancels the
        # load of a shared machine drifting between reps.
        paired = statistics.median(y[0] / x[0] for x, y in zip(a, b))
        lines.append(f"| {c} | {ra:.0f} | {rb:.0f} | {rb / ra:.3f} | **{paired:.3f}** | {ca:.0f} / {cb:.0f} | **{cb / ca:.3f}** |")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, "fleet-latest.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(TMP, ignore_errors=True)
