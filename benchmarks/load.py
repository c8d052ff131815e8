#!/usr/bin/env python3
"""Load benchmark of `imds serve` against the machine's ceiling, in one run.

Called by benchmarks/load.sh (which installs the tools and builds the release binary); see
docs/benchmarks.md. Everything listens on 127.0.0.1 only. Every run is bounded in time.

Environment (all optional):
  IMDS_BIN            release binary (default .build/release/imds)
  BENCH_DURATION      wrk duration per point (default 5s)
  BENCH_CONNECTIONS   comma-separated concurrencies (default 1,16,64,256)
  BENCH_WORKLOADS     comma-separated subset of v1-get,v2-get,token-put,sdk-mix
  BENCH_PEERS         comma-separated subset of nginx,moto (default both; imds always runs)
  MEMORY_REQUESTS     requests per memory phase (default 1000000; 0 skips the memory phase)
  STARTUP_RUNS        start-up timing runs (default 10; 0 skips start-up and CLI timing)
  BENCH_PROFILE       1: perf-record imds during a v1 GET and a token PUT run at 64 connections
  RESULTS_DIR         where latest.md / latest.json / latest.png go (default benchmarks/results)
  IMDS_BASELINE_BIN   another imds binary (an older revision, built by benchmarks/baseline.sh) run
                      right after imds at every point: the before/after pair of one run
  IMDS_BASELINE_LABEL its name in the report (default "baseline")
  AEMM_BIN            a locally built amazon-ec2-metadata-mock (Go): run beside imds at every point
  IMDS_MOCK_BIN       a locally built purpleclay/imds-mock (Go): the same. Neither is built or
                      fetched by this repository; docs/benchmarks.md says how they were built here.
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request

import imds_serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "benchmarks", "lua")
IMDS_BIN = os.environ.get("IMDS_BIN", os.path.join(ROOT, ".build", "release", "imds"))
DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,16,64,256").split(",") if c]
WORKLOADS = [w for w in os.environ.get("BENCH_WORKLOADS", "v1-get,v2-get,token-put,sdk-mix").split(",") if w]
PEERS = [p for p in os.environ.get("BENCH_PEERS", "nginx,moto").split(",") if p]
MEMORY_REQUESTS = int(os.environ.get("MEMORY_REQUESTS", "1000000"))
STARTUP_RUNS = int(os.environ.get("STARTUP_RUNS", "10"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
BASELINE_BIN = os.environ.get("IMDS_BASELINE_BIN", "")
BASELINE_LABEL = os.environ.get("IMDS_BASELINE_LABEL", "baseline")
AEMM_BIN = os.environ.get("AEMM_BIN", "")
IMDS_MOCK_BIN = os.environ.get("IMDS_MOCK_BIN", "")
GO_PEERS = [n for n, b in [("aemm", AEMM_BIN), ("imds-mock", IMDS_MOCK_BIN)] if b]
RESULTS_DIR = os.environ.get("RESULTS_DIR", os.path.join(ROOT, "benchmarks", "results"))
INSTANCE_ID = "i-0123456789abcdef0"
LEAF = "/latest/meta-data/instance-id"

# Targets from issue 9: throughput ratio to nginx, and p99 at most 1.5x nginx's.
THROUGHPUT_TARGET = {"v1-get": 0.9, "v2-get": 0.9, "token-put": 0.8}
P99_TARGET = 1.5

TMP = tempfile.mkdtemp(prefix="imds-bench-")
children = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, headers=None, timeout=5):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------------------------
# Servers


class IMDS:
    """`imds serve` on port 0; the URLs come from the lines it prints."""

    def __init__(self, extra=(), binary=None):
        self.proc, self.data, self.control = imds_serve.start(
            [binary or IMDS_BIN, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
             "--log-level", "warning", *shlex.split(os.environ.get("IMDS_SERVE_ARGS", "")), *extra],
            children)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        return imds_serve.stop(self.proc)


class Nginx:
    """nginx answering `return 200 <instance id>` with keepalive_timeout 0 (one request per connection)."""

    def __init__(self):
        self.dir = os.path.join(TMP, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.workers = os.environ.get("NGINX_WORKERS", "auto")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes {self.workers};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:{self.port} backlog=1024;
        location / {{ default_type text/plain; return 200 "{INSTANCE_ID}"; }}
    }}
}}
""")
        subprocess.run(["nginx", "-c", conf, "-p", self.dir], check=True)
        self.data = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                http("GET", self.data + LEAF)
                break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        pidfile = os.path.join(self.dir, "nginx.pid")
        if os.path.exists(pidfile):
            pid = int(open(pidfile).read().strip())
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                except ProcessLookupError:
                    break


def terminate(proc):
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class GoPeer:
    """A Go IMDS mock from a local build: AEMM (`-n HOST -p PORT`) or imds-mock (`--host HOST --port PORT`).
    Go's HTTP server keeps connections alive; every wrk run sends `Connection: close`, so it answers
    one request per connection as IMDS, nginx (`keepalive_timeout 0`) and moto do."""

    def __init__(self, name):
        self.name = name
        self.start()

    def start(self):
        self.port = free_port()
        if self.name == "aemm":
            argv = [AEMM_BIN, "-n", "127.0.0.1", "-p", str(self.port)]
        else:
            argv = [IMDS_MOCK_BIN, "--host", "127.0.0.1", "--port", str(self.port)]
        home = os.path.join(TMP, self.name)
        os.makedirs(home, exist_ok=True)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                                     env=dict(os.environ, HOME=home, GIN_MODE="release"))
        children.append(self.proc)
        self.data = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                if http("GET", self.data + LEAF)[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} does not serve {LEAF}")

    def died(self):
        return self.proc.poll() is not None

    def stop(self):
        terminate(self.proc)


class Moto:
    """moto's server (Flask/werkzeug, threaded): a toy IMDS, but a peer that runs here."""

    def __init__(self):
        self.port = free_port()
        exe = shutil.which("moto_server")
        if not exe:
            raise RuntimeError("moto_server not installed")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(self.proc)
        self.data = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                status, body = http("GET", self.data + LEAF)
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server does not serve " + LEAF)

    def stop(self):
        terminate(self.proc)


# --------------------------------------------------------------------------------------------
# wrk


def script_for(workload, stop_after=0):
    path = os.path.join(TMP, f"{workload}{'-stop' if stop_after else ''}.lua")
    with open(path, "w") as out:
        for part in [f"{workload}.lua", "report.lua"] + (["stop-after.lua"] if stop_after else []):
            out.write(open(os.path.join(LUA, part)).read() + "\n")
    return path


def wrk(url, workload, connections, duration=DURATION, env=None, stop_after=0):
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--timeout", "5s",
           "-H", "Connection: close", "-s", script_for(workload, stop_after), url + LEAF]
    e = dict(os.environ, **(env or {}))
    if stop_after:
        e["IMDS_STOP_AFTER"] = str(stop_after)
    if not stop_after:
        out = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=900).stdout
    else:
        # wrk sleeps for its whole -d even after every thread has stopped: once its CPU time stops
        # moving, SIGINT makes it print the summary and exit.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=e)
        last = None
        while p.poll() is None:
            time.sleep(1)
            try:
                fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
                cpu = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
            if cpu == last:
                p.send_signal(signal.SIGINT)
                break
            last = cpu
        out = p.communicate(timeout=60)[0]
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    return r


def token_for(url):
    try:
        status, body = http("PUT", url + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        return body if status == 200 else ""
    except OSError:
        return ""


def role_for(url, token):
    try:
        _, body = http("GET", url + "/latest/meta-data/iam/security-credentials/", {"X-aws-ec2-metadata-token": token})
        return body.splitlines()[0] if body else "app-role"
    except OSError:
        return "app-role"


# --------------------------------------------------------------------------------------------
# Phases


def load_phase(imds):
    servers = {"imds": imds}
    if BASELINE_BIN:
        servers["baseline"] = IMDS(binary=BASELINE_BIN)
    if "nginx" in PEERS:
        servers["nginx"] = Nginx()
    if "moto" in PEERS:
        try:
            servers["moto"] = Moto()
        except Exception as err:  # noqa: BLE001 - a missing peer is reported, not fatal
            log(f"moto: skipped ({err})")
    for name in GO_PEERS:
        try:
            servers[name] = GoPeer(name)
        except Exception as err:  # noqa: BLE001
            log(f"{name}: skipped ({err})")
    env = {}
    for name, s in servers.items():
        token = token_for(s.data)
        env[name] = {"IMDS_TOKEN": token, "IMDS_ROLE": role_for(s.data, token)}
    results = []
    try:
        for workload in WORKLOADS:
            for c in CONNECTIONS:
                row = {"workload": workload, "connections": c}
                # nginx first, then imds, then moto: the ceiling is measured right next to imds.
                for name in ["nginx", "imds", "baseline", "moto", *GO_PEERS]:
                    if name not in servers:
                        continue
                    r = wrk(servers[name].data, workload, c, env=env[name])
                    if isinstance(servers[name], GoPeer) and servers[name].died():
                        # AEMM has crashed under concurrent token PUTs (a concurrent map write).
                        r["died"] = True
                        try:
                            servers[name].start()
                            token = token_for(servers[name].data)
                            env[name] = {"IMDS_TOKEN": token, "IMDS_ROLE": role_for(servers[name].data, token)}
                            log(f"{name} died during {workload} c={c}: restarted for the next point")
                        except Exception as err:  # noqa: BLE001 - the run goes on without it
                            log(f"{name} died during {workload} c={c} and did not start again ({err}): dropped")
                            del servers[name]
                    row[name] = r
                    log(f"{workload:10s} c={c:<4d} {name:6s} {r['rps']:10.0f} req/s  p50 {r['p50_us']:>6d} us  "
                        f"p99 {r['p99_us']:>6d} us  errors {r['errors']}")
                results.append(row)
    finally:
        for name, s in servers.items():
            if name != "imds":
                s.stop()  # the baseline too
    return results


def profile_phase():
    """perf record of imds under v1 GET and token PUT load (software clock: no PMU needed)."""
    if not shutil.which("perf"):
        return None
    out = {}
    for workload in ["v1-get", "token-put"]:
        imds = IMDS()
        data = os.path.join(TMP, f"perf-{workload}.data")
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-o", data,
                                "-p", str(imds.pid), "--", "sleep", "6"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        wrk(imds.data, workload, 64, duration="5s")
        rec.wait()
        imds.stop()
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
                              "--stdio", "--percent-limit", "1.5", "-g", "none"],
                             capture_output=True, text=True).stdout
        lines = [re.sub(r"\s+-\s+-\s*$", "", l).rstrip() for l in rep.splitlines() if l.strip() and not l.startswith("#")]
        out[workload] = lines[:25]
    return out


def memory_phase():
    """RSS idle, after warm-up, after MEMORY_REQUESTS token PUTs and as many GETs (fresh process)."""
    imds = IMDS()
    time.sleep(1)
    m = {"idle_kb": rss_kb(imds.pid)}
    warm = max(1, MEMORY_REQUESTS // 10)
    r = wrk(imds.data, "token-put", 64, duration="600s", stop_after=warm // 2)
    m["warmup_requests"] = r["requests"]
    m["after_warmup_kb"] = rss_kb(imds.pid)
    r = wrk(imds.data, "token-put", 64, duration="600s", stop_after=(MEMORY_REQUESTS - warm) // 2)
    m["puts"] = warm + r["requests"]
    m["put_errors"] = r["errors"]
    m["after_puts_kb"] = rss_kb(imds.pid)
    token = token_for(imds.data)
    r = wrk(imds.data, "v2-get", 64, duration="600s", env={"IMDS_TOKEN": token}, stop_after=MEMORY_REQUESTS // 2)
    m["gets"] = r["requests"]
    m["get_errors"] = r["errors"]
    m["after_gets_kb"] = rss_kb(imds.pid)
    with open(f"/proc/{imds.pid}/status") as f:
        m["peak_kb"] = int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
    m["exit"] = imds.stop()
    return m


def startup_phase():
    """Exec → 'data plane listening' line, median of STARTUP_RUNS, without and with --state-dir."""
    state = os.path.join(TMP, "state")
    IMDS(["--state-dir", state]).stop()  # creates the token secret and identity key once
    res = {}
    for label, extra in [("generated identity key (no --state-dir)", []), ("--state-dir (keys loaded)", ["--state-dir", state])]:
        times = []
        for _ in range(STARTUP_RUNS):
            t0 = time.perf_counter()
            p = subprocess.Popen([IMDS_BIN, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0", *extra],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for line in p.stdout:
                if "data plane listening on" in line:
                    break
            times.append((time.perf_counter() - t0) * 1000)
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        res[label] = {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}
    return res


def cli_phase():
    """hyperfine: `imds get instance-id` end to end vs curl PUT + GET (both through the shell)."""
    if not shutil.which("hyperfine") or not shutil.which("curl"):
        return None
    imds = IMDS()
    url = imds.data
    out = os.path.join(TMP, "hyperfine.json")
    commands = [
        f"{IMDS_BIN} get instance-id --endpoint {url}",
        f"T=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' {url}/latest/api/token); "
        f"curl -s -H \"X-aws-ec2-metadata-token: $T\" {url}{LEAF}",
        f"curl -s {url}{LEAF}",
    ]
    subprocess.run(["hyperfine", "--warmup", "3", "--runs", "30", "--export-json", out, "--style", "none", *commands],
                   capture_output=True, text=True, timeout=600)
    imds.stop()
    data = json.load(open(out))["results"]
    names = ["imds get instance-id", "curl PUT + GET (v2)", "curl GET (v1)"]
    return [{"command": n, "mean_ms": r["mean"] * 1000, "stddev_ms": r["stddev"] * 1000,
             "median_ms": r["median"] * 1000} for n, r in zip(names, data)]


# --------------------------------------------------------------------------------------------
# Report


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    def ver(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "n/a"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "load_average_at_start": " ".join(open("/proc/loadavg").read().split()[:3]),
        "swift": ver(["swift", "--version"]), "wrk": ver(["wrk", "-v"]), "nginx": ver(["nginx", "-v"]),
        "duration_per_point": DURATION,
    }


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us} µs"


def verdict(workload, row):
    if "nginx" not in row or workload not in THROUGHPUT_TARGET:
        return "—"
    ratio = row["imds"]["rps"] / row["nginx"]["rps"]
    p99 = row["imds"]["p99_us"] / max(1, row["nginx"]["p99_us"])
    misses = []
    if ratio < THROUGHPUT_TARGET[workload]:
        misses.append(f"throughput < {THROUGHPUT_TARGET[workload]}×")
    if p99 > P99_TARGET:
        misses.append(f"p99 > {P99_TARGET}×")
    return "met" if not misses else "missed: " + ", ".join(misses)


def markdown(info, results, memory, startup, cli, profile):
    L = ["# imds load benchmark: latest results", "",
         f"{info['date']} · {info['cpu']} · {info['cores']} cores · kernel {info['kernel']} · "
         f"load average at start {info['load_average_at_start']}", "",
         f"{info['swift']} · {info['wrk']} · {info['nginx']} · wrk `-t2` (`-t1` at 1 connection), "
         f"{info['duration_per_point']} per point, `Connection: close` for every server.", "",
         "The 2 cores are shared by wrk, the server under test and (on this machine) other engineers' "
         "builds: read ratios measured seconds apart, not absolute numbers.", "",
         "## Throughput and latency (imds vs nginx `return 200`, `keepalive_timeout 0`)", "",
         "| workload | conns | imds req/s | nginx req/s | ratio | imds p50 | nginx p50 | imds p99 | nginx p99 | p99 ratio | moto req/s | imds errors | target |"
         + (f" {BASELINE_LABEL} req/s (ratio) | {BASELINE_LABEL} p99 |" if BASELINE_BIN else ""),
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|---:|" if BASELINE_BIN else "")]
    for row in results:
        i, n, m, b = row["imds"], row.get("nginx"), row.get("moto"), row.get("baseline")
        dash = "—"
        extra = ""
        if BASELINE_BIN:
            extra = (f" {b['rps']:,.0f} ({b['rps'] / n['rps']:.2f}) | {fmt_us(b['p99_us'])} |" if b and n
                     else f" {b['rps']:,.0f} | {fmt_us(b['p99_us'])} |" if b else " — | — |")
        L.append("| " + " | ".join([
            row["workload"], str(row["connections"]), f"{i['rps']:,.0f}",
            f"{n['rps']:,.0f}" if n else dash, f"{i['rps'] / n['rps']:.2f}" if n else dash,
            fmt_us(i["p50_us"]), fmt_us(n["p50_us"]) if n else dash,
            fmt_us(i["p99_us"]), fmt_us(n["p99_us"]) if n else dash,
            f"{i['p99_us'] / max(1, n['p99_us']):.2f}" if n else dash,
            f"{m['rps']:,.0f}" if m else dash, str(i["errors"]), verdict(row["workload"], row)]) + " |" + extra)
    peers = [p for p in GO_PEERS if any(p in row for row in results)]
    if peers:
        L += ["", "## imds against the Go mocks (same run, seconds apart, ratios to nginx)", "",
              "| workload | conns | nginx req/s | imds | " + " | ".join(peers) + " | imds ahead of every peer |",
              "|---|---:|---:|---:|" + "---:|" * len(peers) + "---|"]
        for row in results:
            n, i = row.get("nginx"), row["imds"]
            def cell(r):
                if not r:
                    return "—"
                text = f"{r['rps']:,.0f}" + (f" ({r['rps'] / n['rps']:.2f})" if n else "")
                if r.get("died"):
                    text += " died"
                elif r["errors"]:
                    text += f", {r['errors']} errors"
                return text
            ahead = all(i["rps"] > row[p]["rps"] for p in peers if row.get(p))
            L.append("| " + " | ".join([row["workload"], str(row["connections"]), f"{n['rps']:,.0f}" if n else "—",
                                          cell(i)] + [cell(row.get(p)) for p in peers] + ["yes" if ahead else "**no**"]) + " |")
        L += ["", "p99 (imds / " + " / ".join(peers) + "): " + "; ".join(
            f"{row['workload']}@{row['connections']} {fmt_us(row['imds']['p99_us'])} / "
            + " / ".join(fmt_us(row[p]["p99_us"]) if row.get(p) else "—" for p in peers) for row in results)]
    L += ["", "Targets (issue 9): v1 and v2 GET ≥ 0.9× nginx, token PUT ≥ 0.8× nginx, p99 ≤ 1.5× nginx's; "
          "sdk-mix (PUT, list role, get credentials, cycled) has no target and is reported for scale. "
          "moto's errors are not counted (it is a toy IMDS: its replies differ)."]
    if memory:
        mb = lambda kb: f"{kb / 1024:.1f} MB"  # noqa: E731
        L += ["", "## Memory (VmRSS of `imds serve`, fresh process, 64 connections)", "",
              "| point | requests | RSS |", "|---|---:|---:|",
              f"| idle, after start | 0 | {mb(memory['idle_kb'])} |",
              f"| after warm-up (token PUTs) | {memory['warmup_requests']:,} | {mb(memory['after_warmup_kb'])} |",
              f"| after token PUTs | {memory['puts']:,} | {mb(memory['after_puts_kb'])} |",
              f"| after v2 GETs as well | {memory['gets']:,} more | {mb(memory['after_gets_kb'])} |",
              f"| peak (VmHWM) | | {mb(memory['peak_kb'])} |", "",
              f"Growth after warm-up: {(memory['after_gets_kb'] - memory['after_warmup_kb']) / 1024:+.1f} MB "
              f"(target: ≤ 40 MB idle, no growth after warm-up). Errors: {memory['put_errors']} on PUTs, "
              f"{memory['get_errors']} on GETs."]
    if startup:
        L += ["", "## Start-up (exec → `data plane listening` line)", "", "| mode | median | min | max |", "|---|---:|---:|---:|"]
        for label, s in startup.items():
            L.append(f"| {label} | {s['median_ms']:.1f} ms | {s['min_ms']:.1f} ms | {s['max_ms']:.1f} ms |")
        L.append(f"\n{STARTUP_RUNS} runs each.")
    if cli:
        L += ["", "## CLI end to end (hyperfine, 30 runs, 3 warm-up)", "", "| command | mean | ± | median |", "|---|---:|---:|---:|"]
        for c in cli:
            L.append(f"| {c['command']} | {c['mean_ms']:.2f} ms | {c['stddev_ms']:.2f} ms | {c['median_ms']:.2f} ms |")
    if profile:
        L += ["", "## Profile (perf record -e cpu-clock, imds at 64 connections, self time ≥ 1.5%)"]
        for w, lines in profile.items():
            L += ["", f"{w}:", "", "```"] + lines + ["```"]
    L.append("")
    return "\n".join(L)


def chart(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no chart")
        return False
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.8), squeeze=False)
    colors = {"nginx": "#999999", "imds": "#e07b00", "baseline": "#f2c48d", "moto": "#3b75af",
              "aemm": "#4c9a2a", "imds-mock": "#8e44ad"}
    for ax, w in zip(axes[0], workloads):
        rows = [r for r in results if r["workload"] == w]
        xs = list(range(len(rows)))
        servers = [s for s in ["nginx", "imds", "baseline", "moto", *GO_PEERS] if s in rows[0]]
        width = 0.8 / len(servers)
        for k, s in enumerate(servers):
            ax.bar([x + (k - (len(servers) - 1) / 2) * width for x in xs], [r[s]["rps"] / 1000 for r in rows],
                   width, label=BASELINE_LABEL if s == "baseline" else s, color=colors[s])
        ax.set_xticks(xs, [str(r["connections"]) for r in rows])
        ax.set_xlabel("connections")
        ax.set_title(w)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("thousand requests/s")
    axes[0][0].legend()
    fig.suptitle("imds vs nginx return 200 (keepalive_timeout 0) vs " + ", ".join(["moto", *GO_PEERS])
                 + ", one request per connection")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    if not os.access(IMDS_BIN, os.X_OK):
        sys.exit(f"no imds binary at {IMDS_BIN}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    info = machine()
    log(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_average_at_start']}")
    imds = IMDS()
    results = load_phase(imds)
    if imds.stop() not in (0, None):
        log("imds exited with an error after the load phase")
    profile = profile_phase() if PROFILE else None
    memory = memory_phase() if MEMORY_REQUESTS > 0 else None
    startup = startup_phase() if STARTUP_RUNS > 0 else None
    cli = cli_phase() if STARTUP_RUNS > 0 else None
    md = markdown(info, results, memory, startup, cli, profile)
    png = os.path.join(RESULTS_DIR, "latest.png")
    if chart(results, png):
        md = md.replace("## Throughput and latency", "![throughput chart](latest.png)\n\n## Throughput and latency", 1)
    print(md)
    with open(os.path.join(RESULTS_DIR, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(RESULTS_DIR, "latest.json"), "w") as f:
        json.dump({"machine": info, "load": results, "memory": memory, "startup": startup, "cli": cli,
                   "profile": profile}, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(TMP, ignore_errors=True)
