#!/usr/bin/env python3
"""Drives the imds dashboard in headless Chromium over the DevTools protocol (stdlib only).

Loads /dashboard, waits for its JavaScript to render, checks that the IMDSv1 caller (by pid) is
listed, takes a screenshot and checks it is a real picture (size and pixel variety), then clicks the
page's own "Require IMDSv2" button and checks that the data plane refuses IMDSv1 afterwards.

Chromium is started with --remote-debugging-pipe: DevTools messages are NUL-terminated JSON on
fds 3 (to Chromium) and 4 (from Chromium), so no port and no websocket library are needed.

Prints one "ok ..." or "FAIL ..." line per check; exits 1 if any check failed, 2 if Chromium could
not be driven at all.
"""
import argparse
import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import http.client
import urllib.error
import urllib.parse
import urllib.request
import zlib

failures = 0


def ok(msg):
    print(f"  ok   {msg}", flush=True)


def bad(msg):
    global failures
    failures += 1
    print(f"  FAIL {msg}", flush=True)


class CDP:
    def __init__(self, chromium, user_data_dir):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # Move the child's ends above the range 3..4 so the dup2 calls below cannot clobber them.
        hi_r, hi_w = os.dup(to_r), os.dup(from_w)
        while hi_r < 10 or hi_w < 10:
            hi_r, hi_w = os.dup(hi_r), os.dup(hi_w)
        os.close(to_r)
        os.close(from_w)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--remote-debugging-pipe", f"--user-data-dir={user_data_dir}", "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=child_fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_r)
        os.close(hi_w)
        self.out = to_w
        self.inp = from_r
        self.buf = b""
        self.next_id = 0

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium")
            r, _, _ = select.select([self.inp], [], [], left)
            if not r:
                continue
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.out, data)
            data = data[n:]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def evaluate(cdp, session, expr):
    r = cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session)
    if "exceptionDetails" in r:
        raise RuntimeError(f"page error: {r['exceptionDetails'].get('text')}: {expr}")
    return r.get("result", {}).get("value")


def wait_for(cdp, session, expr, tries=150, pause=0.1):
    """Polls a page expression until it is truthy (bounded), returns its last value."""
    value = None
    for _ in range(tries):
        value = evaluate(cdp, session, expr)
        if value:
            return value
        time.sleep(pause)
    return value


def png_pixels(data):
    """Decodes an 8-bit RGB/RGBA PNG: returns (width, height, rows of pixel tuples)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[k:k + 3]) for k in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def http_status(url, source=None):
    """The status of a GET of `url`, from the source address `source` when given (a fleet's caller)."""
    if source:
        u = urllib.parse.urlsplit(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=5, source_address=(source, 0))
        try:
            c.request("GET", u.path)
            return c.getresponse().status
        finally:
            c.close()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--control", required=True, help="control-plane URL")
    ap.add_argument("--data", required=True, help="data-plane URL (IPv4)")
    ap.add_argument("--instance", required=True)
    ap.add_argument("--source", help="source address of the data-plane checks (a fleet instance's caller address)")
    ap.add_argument("--other-instance", help="a second instance of a fleet: it has no IMDSv1 caller and keeps its options")
    ap.add_argument("--v1-pid", required=True, type=int)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args()

    profile = tempfile.mkdtemp(prefix="imds-chromium-")
    cdp = None
    try:
        try:
            cdp = CDP(a.chromium, profile)
            target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            cdp.call("Emulation.setDeviceMetricsOverride",
                     {"width": a.width, "height": a.height, "deviceScaleFactor": 1, "mobile": False}, session)
            cdp.call("Page.enable", {}, session)
            cdp.call("Runtime.enable", {}, session)
            cdp.call("Page.navigate", {"url": a.control + "/dashboard"}, session)
        except Exception as e:  # noqa: BLE001 - any failure here means Chromium cannot be driven
            print(f"  FAIL cannot drive Chromium: {e}")
            return 2

        loaded = wait_for(cdp, session, "document.body && document.body.dataset.loaded === '1'")
        (ok if loaded else bad)("dashboard loaded and its JavaScript rendered the data")

        rows = wait_for(cdp, session, f"""(() => {{
            const r = [...document.querySelectorAll('#v1-callers tr.v1-caller')].map(tr => ({{pid: tr.dataset.pid, text: tr.textContent}}));
            return r.some(x => x.pid === '{a.v1_pid}') ? r : null; }})()""", tries=50) or []
        mine = [r for r in rows if r["pid"] == str(a.v1_pid)]
        if mine and "curl" in mine[0]["text"]:
            ok(f"v1 callers table shows pid {a.v1_pid} (curl)")
        else:
            bad(f"v1 callers table does not show pid {a.v1_pid}: {rows}")
        verdict = evaluate(cdp, session, "document.getElementById('verdict').textContent")
        (ok if "not safe" in (verdict or "") else bad)(f"page verdict: {verdict!r}")
        if a.other_instance:
            # What the caller table says each instance has, against what its row shows.
            with urllib.request.urlopen(a.control + "/admin/v1/callers", timeout=5) as r:
                callers = json.load(r)["callers"]
            want = [str(sum(1 for c in callers if c["v1"] + c["v1-rejected"] > 0 and i in c.get("instance-ids", [])))
                    for i in (a.instance, a.other_instance)]
            counts = wait_for(cdp, session, f"""(() => {{
                const r = document.getElementById('instance-{a.instance}'), o = document.getElementById('instance-{a.other_instance}');
                return r && o && r.dataset.v1Callers === '{want[0]}' && o.dataset.v1Callers === '{want[1]}' ? [r.dataset.v1Callers, o.dataset.v1Callers] : null; }})()""", tries=50)
            (ok if counts and want[0] != "0" else bad)(
                f"fleet table: IMDSv1 callers per instance {a.instance} / {a.other_instance}: {counts} (caller table: {want})")
        tokens = evaluate(cdp, session, f"document.getElementById('instance-{a.instance}')?.dataset.httpTokens")
        (ok if tokens == "optional" else bad)(f"instance row shows HttpTokens {tokens!r} before the switch")

        shot = base64.b64decode(cdp.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
        with open(a.screenshot, "wb") as f:
            f.write(shot)
        try:
            w, h, pixels = png_pixels(shot)
            (ok if (w, h) == (a.width, a.height) else bad)(f"screenshot is {w}x{h} (expected {a.width}x{a.height})")
            counts = {}
            for row in pixels[::4]:
                for p in row[::4]:
                    counts[p] = counts.get(p, 0) + 1
            total = sum(counts.values())
            dominant = max(counts.values()) / total
            if len(counts) >= 16 and dominant < 0.95:
                ok(f"screenshot is not blank ({len(counts)} colours, most common covers {dominant:.0%})")
            else:
                bad(f"screenshot looks blank ({len(counts)} colours, most common covers {dominant:.0%})")
        except ValueError as e:
            bad(f"screenshot is not a readable PNG: {e}")

        clicked = evaluate(cdp, session, f"""(() => {{ const b = document.getElementById('tokens-required-{a.instance}');
            if (!b) return false; b.click(); return true; }})()""")
        (ok if clicked else bad)("clicked the page's 'Require IMDSv2' button")
        switched = wait_for(cdp, session, f"document.getElementById('instance-{a.instance}')?.dataset.httpTokens === 'required'")
        (ok if switched else bad)("the page shows HttpTokens required after the click")
        status = None
        for _ in range(50):
            status = http_status(a.data + "/latest/meta-data/instance-id", a.source)
            if status == 401:
                break
            time.sleep(0.1)
        (ok if status == 401 else bad)(f"IMDSv1 on the data plane is refused after the click (HTTP {status})")
        if a.other_instance:
            other = evaluate(cdp, session, f"document.getElementById('instance-{a.other_instance}')?.dataset.httpTokens")
            (ok if other == "optional" else bad)(f"the other instance's row still shows HttpTokens {other!r}")
        error = evaluate(cdp, session, "document.getElementById('error').textContent")
        (ok if not error else bad)(f"no error shown on the page ({error!r})")
        return 1 if failures else 0
    finally:
        if cdp:
            cdp.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
