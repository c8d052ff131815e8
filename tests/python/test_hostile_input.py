"""Hostile input against a live `imds serve` (issue 16): no single request, and no config reloaded on
SIGHUP, may crash or pin the process. Each case asserts the outcome (a clear 4xx, or a correct
answer) and that the data plane and control plane still answer afterwards; never a time."""
import json
import os
import resource
import socket
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import IMDS, PRODUCT_EXAMPLE, stop_process

INT_MAX = 9223372036854775807
HUGE = ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "4611686018427387904", "99999999999999999999999999999999", "1e308", "1e309", "-0", "0x7fffffffffffffff",
        "NaN", "inf", "18446744073709551616"]
DURATIONS = ["+9000000000000000h", str(INT_MAX), "+%ds" % INT_MAX, "+%dm" % (INT_MAX // 60 + 1),
             "+%dd" % INT_MAX, "+1h%ds" % INT_MAX, "+99999999999999999999999999d", "+36601d", "+878401h"]


class LiveServer:
    """`imds serve` on port 0 with stdout/stderr in files (never a pipe that could fill and block it)."""

    def __init__(self, config_text, *args, state_dir=None, preexec=None):
        self.tmp = tempfile.mkdtemp(prefix="imds-hostile-")
        self.config_path = os.path.join(self.tmp, "imds.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.out_path, self.err_path = os.path.join(self.tmp, "out"), os.path.join(self.tmp, "err")
        cmd = [IMDS, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
               "--config", self.config_path] + list(args)
        if state_dir:
            cmd += ["--state-dir", state_dir]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, preexec_fn=preexec)
        self.data_url = self.control_url = None
        for _ in range(600):
            text = self.stdout()
            dp = re.search(r"data plane listening on (http://\S+)", text)
            cp = re.search(r"control plane listening on (http://\S+)", text)
            if dp and cp:
                self.data_url, self.control_url = dp.group(1), cp.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("imds serve did not start: " + self.stderr())

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)

    def request(self, method, url, body=None, headers=None):
        """(status, body text); a refused or reset connection is (None, reason)."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            return None, str(e)

    def ec2(self, params):
        return self.request("POST", self.control_url + "/", urllib.parse.urlencode(params),
                            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def admin(self, method, path, obj=None):
        body = None if obj is None else (obj if isinstance(obj, str) else json.dumps(obj))
        return self.request(method, self.control_url + "/admin/v1/" + path, body, {"Content-Type": "application/json"})

    def assert_alive(self, after):
        assert self.proc.poll() is None, f"server died after {after}: {self.stderr()[-2000:]}"
        status, body = self.request("GET", self.data_url + "/latest/meta-data/instance-id")
        assert status == 200 and body == "i-0abc1234def567890", f"data plane after {after}: {status} {body[:200]}"
        status, body = self.ec2({"Action": "DescribeInstances", "Version": "2016-11-15"})
        assert status == 200, f"control plane after {after}: {status} {body[:200]}"


@pytest.fixture
def live():
    servers = []

    def start(config_text=None, *args, **kw):
        s = LiveServer(config_text if config_text is not None else open(PRODUCT_EXAMPLE).read(), *args, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def expect_4xx(s, what, result):
    status, body = result
    assert status is not None and 400 <= status < 500, f"{what}: {status} {body[:300]}"
    s.assert_alive(what)
    return body


def test_pagination_and_numeric_parameters(live):
    s = live()
    for token in HUGE + ["9", "1000000"]:
        for extra in [{}, {"MaxResults": "5"}, {"MaxResults": "1000"}]:
            body = expect_4xx(s, f"DescribeTags NextToken={token} {extra}",
                              s.ec2({"Action": "DescribeTags", "Version": "2016-11-15", "NextToken": token, **extra}))
            assert "InvalidPaginationToken" in body or "InvalidParameterValue" in body, body[:300]
    for n in HUGE:
        expect_4xx(s, f"DescribeTags MaxResults={n}", s.ec2({"Action": "DescribeTags", "Version": "2016-11-15", "MaxResults": n}))
        expect_4xx(s, f"DescribeInstances MaxResults={n}", s.ec2({"Action": "DescribeInstances", "Version": "2016-11-15", "MaxResults": n}))
        expect_4xx(s, f"hop limit {n}", s.ec2({"Action": "ModifyInstanceMetadataOptions", "Version": "2016-11-15",
                                               "InstanceId": "i-0abc1234def567890", "HttpPutResponseHopLimit": n}))
        expect_4xx(s, f"default hop limit {n}", s.ec2({"Action": "ModifyInstanceMetadataDefaults", "Version": "2016-11-15",
                                                       "HttpPutResponseHopLimit": n}))
        expect_4xx(s, f"token TTL {n}", s.request("PUT", s.data_url + "/latest/api/token", b"",
                                                  {"X-aws-ec2-metadata-token-ttl-seconds": n}))
        expect_4xx(s, f"list index {n}", s.ec2({"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId." + n: "i-x"}))
    # The end of the list is a correct, empty page.
    status, body = s.ec2({"Action": "DescribeTags", "Version": "2016-11-15", "NextToken": "2", "MaxResults": "5"})
    assert status == 200 and "<tagSet/>" in body.replace("<tagSet></tagSet>", "<tagSet/>"), body[:300]


def test_admin_events_faults_and_scenarios(live):
    s = live()
    for at in DURATIONS:
        for event in [{"type": "rebalance-recommendation", "at": at},
                      {"type": "spot-interruption", "time": at},
                      {"type": "scheduled-maintenance", "not-before": at},
                      {"type": "scheduled-maintenance", "not-after": at},
                      {"type": "scheduled-maintenance", "not-before-deadline": at}]:
            body = expect_4xx(s, f"event {event}", s.admin("POST", "events", event))
            assert "not a time" in body, body[:300]
    for n in HUGE:
        expect_4xx(s, f"latency {n}", s.admin("POST", "faults", f'{{"type": "latency", "milliseconds": {json.dumps(n)}}}'))
        expect_4xx(s, f"count {n}", s.admin("POST", "faults", f'{{"type": "throttle", "count": {json.dumps(n)}}}'))
        expect_4xx(s, f"probability {n}", s.admin("POST", "faults", f'{{"type": "throttle", "probability": {json.dumps(n)}}}'))
        expect_4xx(s, f"near-expiry {n}", s.admin("PUT", "credentials/scenario", f'{{"scenario": "near-expiry", "seconds": {json.dumps(n)}}}'))
    for raw in ['{"scenario": "near-expiry", "seconds": 1e300}', '{"scenario": "near-expiry", "seconds": 9223372036854775808}',
                '{"scenario": "near-expiry", "seconds": -9223372036854775809}', '{"scenario": "near-expiry", "seconds": 3600.5}']:
        expect_4xx(s, raw, s.admin("PUT", "credentials/scenario", raw))
    for raw in ['{"type": "latency", "milliseconds": 1e300}', '{"type": "throttle", "count": 9223372036854775808}',
                '{"type": "throttle", "probability": 1e309}']:
        expect_4xx(s, raw, s.admin("POST", "faults", raw))
    # The farthest accepted times are served and rendered.
    status, body = s.admin("POST", "events", {"type": "spot-interruption", "at": "now", "time": "+36600d"})
    assert status == 201, body
    status, body = s.admin("POST", "events", {"type": "scheduled-maintenance", "at": "now", "not-before": "9999-12-31T23:59:59Z"})
    assert status == 201, body
    status, body = s.request("GET", s.data_url + "/latest/meta-data/spot/instance-action")
    assert status == 200 and '"action": "terminate"' in body, body
    status, body = s.request("GET", s.data_url + "/latest/meta-data/events/maintenance/scheduled")
    assert status == 200 and "31 Dec 9999" in body, body
    s.assert_alive("far events")


BAD_RELOADS = [
    ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: 9000000000000000h\n", "lifetime"),
    ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: %d\n" % INT_MAX, "lifetime"),
    ("instance:\n  iam:\n    role: app\n    credentials:\n      rotate-before-expiry: %dd\n" % INT_MAX, "rotate-before-expiry"),
    ("instance:\n  events:\n    - {type: rebalance-recommendation, at: \"+9000000000000000h\"}\n", "at"),
    ("instance:\n  events:\n    - {type: rebalance-recommendation, at: \"%d\"}\n" % INT_MAX, "at"),
    ("instance:\n  events:\n    - {type: spot-interruption, time: \"+%ds\"}\n" % INT_MAX, "time"),
    ("instance:\n  metadata-options:\n    http-put-response-hop-limit: 18446744073709551616\n", "hop-limit"),
    ("instance:\n  launch-time: 99999-01-01T00:00:00Z\n", "launch-time"),
]


@pytest.mark.parametrize("text,key", BAD_RELOADS)
def test_sighup_with_out_of_range_config_keeps_running(live, text, key):
    s = live()
    with open(s.config_path, "w") as f:
        f.write(text)
    s.proc.send_signal(signal.SIGHUP)
    for _ in range(200):
        if "reload failed" in s.stderr() or s.proc.poll() is not None:
            break
        time.sleep(0.05)
    assert s.proc.poll() is None, f"SIGHUP killed the server: {s.stderr()[-1500:]}"
    err = s.stderr()
    assert "reload failed" in err and key in err, err[-1500:]
    s.assert_alive("SIGHUP")
    status, body = s.request("GET", s.data_url + "/latest/meta-data/instance-type")
    assert (status, body) == (200, "t3.micro"), "the running configuration was kept"


def test_state_file_sequence_out_of_range_is_a_clear_error(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "control-plane.json").write_text('{"format": 1, "sequence": %d, "instances": {}}\n' % INT_MAX)
    r = subprocess.run([IMDS, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
                        "--state-dir", str(state)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "sequence" in r.stderr and "control-plane.json" in r.stderr, r.stderr


def test_pathological_filters_and_sizes(live):
    """`*?*?…!` used to pin a core for minutes and 20,000 filters took seconds of CPU; both now get
    their answer (an empty result, a clear error) and the server keeps serving."""
    s = live()
    for pattern in ["*?" * 5000 + "!", "*" * 100000 + "x", "*a" * 20000 + "b", "?" * 300000]:
        status, body = s.ec2({"Action": "DescribeInstances", "Version": "2016-11-15",
                              "Filter.1.Name": "tag:Name", "Filter.1.Value.1": pattern})
        assert status == 200 and "<reservationSet/>" in body, f"{status} {body[:300]}"
        s.assert_alive(f"filter {pattern[:12]}…")
    status, body = s.ec2({"Action": "DescribeInstances", "Version": "2016-11-15",
                          "Filter.1.Name": "tag:Name", "Filter.1.Value.1": "w*?*?-?"})
    assert status == 200 and "i-0abc1234def567890" in body, body[:300]
    def filters(n):  # raw form body (`*` and `?` need no escaping), under the 1 MiB body limit
        return "Action=DescribeInstances&Version=2016-11-15&" + "&".join(
            f"Filter.{i}.Name=a&Filter.{i}.Value.1=*?!" for i in range(1, n + 1))
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    body = expect_4xx(s, "20,000 filters", s.request("POST", s.control_url + "/", filters(20000), form))
    assert "<Code>InvalidRequest</Code>" in body, body[:300]
    body = expect_4xx(s, "60 filters", s.request("POST", s.control_url + "/", filters(60), form))
    assert "<Code>FilterLimitExceeded</Code>" in body, body[:300]
    status, _ = s.request("POST", s.control_url + "/", "Action=DescribeInstances&Version=2016-11-15&x=" + "a" * (2 << 20),
                          {"Content-Type": "application/x-www-form-urlencoded"})
    assert status in (413, None), status  # a client still sending when the server closes may see a reset
    s.assert_alive("a 2 MiB body")


def _serve_once(args, wrap=None, timeout=30):
    """Runs `imds serve ARGS` until it prints its control-plane line or exits; (exit code or None, stdout, stderr)."""
    cmd = (wrap or []) + [IMDS, "serve", "--listen", "127.0.0.1:0"] + args
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out, "w") as o, open(err, "w") as e:
            p = subprocess.Popen(cmd, stdout=o, stderr=e)
        try:
            for _ in range(timeout * 10):
                if p.poll() is not None or "control plane listening" in open(out).read():
                    break
                time.sleep(0.1)
        finally:
            code = p.poll()
            stop_process(p)
        return code, open(out).read(), open(err).read()


def test_keyless_control_plane_checks_the_resolved_address():
    # A loopback name binds its numeric loopback address, and says so.
    code, out, err = _serve_once(["--control-listen", "localhost:0"])
    assert code is None and re.search(r"control plane listening on http://(127\.0\.0\.1|\[::1\]):\d+", out), (code, out, err)
    # A name that looks like loopback but does not resolve is refused, not bound.
    code, out, err = _serve_once(["--control-listen", "127.nowhere.invalid:0"])
    assert code not in (None, 0) and "cannot resolve" in err, (code, out, err)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"), reason="needs root and unshare for a private /etc/hosts")
def test_loopback_looking_names_that_resolve_elsewhere_are_refused(tmp_path):
    """In a private mount namespace, `localhost` and `127.0.0.1.imds-test` resolve to 192.0.2.10: a
    check on the name bound them keyless; the check on the resolved address refuses both."""
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.10 localhost 127.0.0.1.imds-test\n")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"]
    probe = subprocess.run(wrap + ["getent", "hosts", "127.0.0.1.imds-test"], capture_output=True, text=True)
    if "192.0.2.10" not in probe.stdout:
        pytest.skip("cannot give the test a private /etc/hosts here: " + probe.stderr)
    for name in ["localhost", "127.0.0.1.imds-test"]:
        code, out, err = _serve_once(["--control-listen", f"{name}:0"], wrap=wrap)
        assert code not in (None, 0), (name, out, err)
        assert "refusing to serve the control plane on 192.0.2.10:0 without access keys" in err, (name, err)
        assert "listening" not in out.replace("data plane listening", ""), out


def test_tokens_and_configured_secrets_never_reach_outputs(live, tmp_path):
    """A token pasted into a path (glued to other characters), a query or a header appears in neither
    the access log, /admin/v1/callers nor the dashboard."""
    log = tmp_path / "access.log"
    s = live(None, "--access-log", str(log))
    status, token = s.request("PUT", s.data_url + "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    assert status == 200 and len(token) == 56, token
    other = "AQAAAPm_49V6IGWwyABYuQXrWfdP6yrb3-iy6UsOKg5zeol4pFOp_g=="  # EC2's other token form
    paths = [f"/latest/meta-data/iam/security-credentials/{token}x", f"/latest/meta-data/x{token}",
             f"/latest/meta-data/{token[:-2]}", f"/latest/{token}/meta-data", f"/latest/meta-data/{other}y",
             f"/latest/meta-data/?t={token}"]
    for p in paths:
        s.request("GET", s.data_url + p, None, {"X-aws-ec2-metadata-token": token, "X-Note": token})
    s.request("GET", s.data_url + "/latest/meta-data/instance-id", None, {"X-aws-ec2-metadata-token": token})
    for _ in range(50):
        if log.exists() and log.read_text().count("\n") >= len(paths) + 2:
            break
        time.sleep(0.1)
    outputs = {"access log": log.read_text(),
               "callers": s.admin("GET", "callers")[1],
               "dashboard": s.request("GET", s.control_url + "/dashboard")[1]}
    assert "security-credentials" in outputs["access log"], outputs["access log"][:500]
    for name, text in outputs.items():
        for secret_text in [token, token[:20], token[-22:-2], other[:24], other[-22:]]:
            assert secret_text not in text, f"{secret_text} in {name}: {text[:1000]}"


def test_configured_secrets_never_reach_outputs(tmp_path):
    """A configured secret in a path is redacted from the access log; a rejected one is not echoed."""
    secret = "control-plane-secret-0123456789"
    log = tmp_path / "access.log"
    config = tmp_path / "imds.yaml"
    config.write_text(open(PRODUCT_EXAMPLE).read() + "control-plane:\n  access-keys:\n    - {access-key-id: AKIDHOSTILE, secret-access-key: %s}\n" % secret)
    s = LiveServer(config.read_text(), "--access-log", str(log))
    try:
        s.request("GET", s.data_url + f"/latest/meta-data/{secret}")
        s.request("GET", s.data_url + f"/latest/meta-data/a{secret}b")
        for _ in range(50):
            if log.exists() and log.read_text().count("\n") >= 2:
                break
            time.sleep(0.1)
        text = log.read_text()
        assert text.count("\n") >= 2 and secret not in text and "[redacted]" in text, text
    finally:
        s.stop()
    # A rejected secret is not echoed by the config error either.
    config.write_text("control-plane:\n  access-keys:\n    - {access-key-id: AKIDHOSTILE, secret-access-key: 'correct horse battery staple'}\n")
    r = subprocess.run([IMDS, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0", "--config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "secret-access-key" in r.stderr, r.stderr
    assert "horse" not in r.stderr and "horse" not in r.stdout, r.stderr


def test_control_plane_http_errors_are_ec2_xml(live):
    """A request the HTTP layer cannot read, or one over a limit, gets EC2's <Response><Errors> XML
    on the control plane (the AWS CLI can read it), never JSON; the data plane keeps its HTML pages."""
    import socket
    s = live()
    host, port = s.control_url[len("http://"):].rsplit(":", 1)
    for raw in [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64]:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as c:
            c.sendall(raw)
            c.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                try:
                    chunk = c.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                reply += chunk
        text = reply.decode(errors="replace")
        assert text.startswith("HTTP/1.1 4"), (raw[:40], text[:300])
        assert "<Response><Errors><Error><Code>" in text and "text/xml" in text, (raw[:40], text[:400])
    s.assert_alive("malformed HTTP on the control plane")


def _cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_serve_raises_its_soft_descriptor_limit_to_the_hard_one(live):
    """systemd's soft RLIMIT_NOFILE (1024) is below the connection caps: `imds serve` raises it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard descriptor limit above 256")
    s = live(None, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    with open(f"/proc/{s.proc.pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    soft_now, hard_now = line.split()[3:5]
    assert (int(soft_now), int(hard_now)) == (hard, hard), line


def test_out_of_descriptors_sheds_connections_and_never_spins(live):
    """A descriptor limit the server cannot raise (soft = hard = 96) and an idle-connection flood of
    400: accept fails with EMFILE. The lean loop must make room (shed idle connections, or close
    the waiting ones: each client sees its connection closed at once, not a timeout) and pause
    accepting, never spin on a listening socket that stays readable; a caller arriving meanwhile is
    answered; once the flood is gone, it serves again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1024:
        pytest.skip("this test process cannot hold 400 sockets")
    s = live(None, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96)))
    assert "descriptor limit (96" in s.stderr(), s.stderr()[-2000:]
    host, port = urllib.parse.urlsplit(s.data_url).hostname, urllib.parse.urlsplit(s.data_url).port
    flood = []
    try:
        for _ in range(400):
            c = socket.create_connection((host, port), timeout=5)
            flood.append(c)
        time.sleep(0.5)
        before = _cpu_ticks(s.proc.pid)
        time.sleep(2.0)
        spent = _cpu_ticks(s.proc.pid) - before
        ticks = os.sysconf("SC_CLK_TCK")
        # A loop spinning on accept burns a core: 2 s of CPU here. Pausing costs next to nothing.
        assert spent < ticks * 0.6, f"server used {spent / ticks:.2f} s of CPU in 2 s while out of descriptors"
        assert s.proc.poll() is None, s.stderr()[-2000:]
        closed = 0
        for c in flood:
            c.setblocking(False)
            try:
                if c.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 200, f"only {closed} of 400 flood connections were closed by the server"
        # A caller arriving now is answered: idle flood connections are shed to make room for it.
        probe = socket.create_connection((host, port), timeout=5)
        probe.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = probe.recv(4096)
        except ConnectionResetError:
            answer = b""
        except socket.timeout:
            pytest.fail("a caller waited 5 s while the server was out of descriptors")
        finally:
            probe.close()
        print(f"out of descriptors: {closed} of 400 flood connections closed by the server; a new caller got "
              + ("its answer" if answer else "its connection closed"))
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        for c in flood:
            c.close()
    status = None
    for _ in range(100):
        status, _ = s.request("GET", s.data_url + "/latest/meta-data/instance-id")
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, "the data plane did not serve again after the flood closed"
    s.assert_alive("running out of descriptors")
    status, text = s.request("GET", s.control_url + "/metrics")
    dropped = {r: int(n) for r, n in re.findall(r'imds_connections_dropped_total\{plane="data",reason="([a-z-]+)"\} (\d+)', text)}
    assert status == 200 and dropped.get("idle-shed", 0) + dropped.get("out-of-descriptors", 0) >= 200, \
        "dropped connections not in /metrics: " + text[-3000:]
