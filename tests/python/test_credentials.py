"""Issue 4: role credentials that rotate, from generated values or a real STS (moto's server)."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import clean_aws_env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def creds_at(data_url, role="app-role", token=True):
    headers = {}
    if token:
        req = urllib.request.Request(data_url + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        headers["X-aws-ec2-metadata-token"] = urllib.request.urlopen(req).read().decode()
    req = urllib.request.Request(data_url + f"/latest/meta-data/iam/security-credentials/{role}", headers=headers)
    return json.loads(urllib.request.urlopen(req).read())


def caller_identity(moto_url, c):
    env = clean_aws_env(extra={"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                               "AWS_SESSION_TOKEN": c["Token"], "AWS_DEFAULT_REGION": "us-east-1",
                               "AWS_EC2_METADATA_DISABLED": "true"})
    r = subprocess.run([sys.executable, "-c",
                        "import boto3,json,sys; print(json.dumps(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()))",
                        moto_url], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


ASSUME_ROLE = """instance:
  iam:
    role: app-role
    credentials:
      source: assume-role
      sts-endpoint: {sts}
      role-arn: arn:aws:iam::123456789012:role/app-role
      source-access-key-id: AKIAIOSFODNN7EXAMPLE
      source-secret-access-key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
      lifetime: 1h
"""


def test_assume_role_credentials_are_the_ones_sts_issued(serve, moto):
    s = serve(ASSUME_ROLE.format(sts=moto))
    c = creds_at(s.data_url)
    assert c["Code"] == "Success" and c["AccessKeyId"].startswith("ASIA")
    # moto knows the credentials it issued: calling it with them identifies the assumed role.
    ident = caller_identity(moto, c)
    assert ident["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/app-role/")
    assert ident["Arn"].endswith("/i-0abc1234def567890")
    # iam/info carries the same LastUpdated.
    info = json.loads(urllib.request.urlopen(s.data_url + "/latest/meta-data/iam/info").read())
    assert info["LastUpdated"] == c["LastUpdated"]


class DenyingSTS(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                b'<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error>'
                b'<RequestId>1</RequestId></ErrorResponse>')
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("kind", ["denied", "unreachable"])
def test_sts_failures_are_served_as_ec2_does(serve, kind):
    if kind == "denied":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DenyingSTS)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sts = f"http://127.0.0.1:{server.server_address[1]}"
    else:
        sts = f"http://127.0.0.1:{free_port()}"
    s = serve(ASSUME_ROLE.format(sts=sts))
    r = urllib.request.urlopen(s.data_url + "/latest/meta-data/iam/security-credentials/app-role")
    assert r.status == 200
    c = json.loads(r.read())
    assert set(c) == {"Code", "Message", "LastUpdated"}
    assert c["Code"] == ("AssumeRoleUnauthorizedAccess" if kind == "denied" else "InternalFailure")
    assert s.proc.poll() is None
    if kind == "denied":
        server.shutdown()


def test_boto3_gets_and_refreshes_rotating_credentials(serve, moto):
    """boto3's own provider chain (IMDSv2 first) finds the role credentials, and after a rotation a
    refresh returns the new set; the credentials work against a local AWS endpoint (moto)."""
    s = serve("""instance:
  iam:
    role: app-role
    credentials:
      lifetime: 10m
      rotate-before-expiry: 595s
  metadata-options:
    http-tokens: required
""")
    script = r"""
import json, sys, time, datetime, boto3, urllib.request
sess = boto3.Session()
c = sess.get_credentials()
first = c.get_frozen_credentials()
out = {'method': c.method, 'first': first.access_key}
deadline = time.time() + 30
while time.time() < deadline:
    time.sleep(1)
    c._expiry_time = datetime.datetime.now(datetime.timezone.utc)   # as if time had run out
    now = c.get_frozen_credentials()
    if now.access_key != first.access_key:
        out['second'] = now.access_key
        break
ident = boto3.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1').get_caller_identity()
out['account'] = ident['Account']
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", script, moto], capture_output=True, text=True, timeout=90,
                       env=clean_aws_env(s.data_url))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["method"] == "iam-role"
    assert out["first"].startswith("ASIA")
    assert out.get("second", "").startswith("ASIA") and out["second"] != out["first"]
    assert out["account"] == "123456789012"
    # What boto3 holds now is what IMDS serves over IMDSv2 now.
    assert creds_at(s.data_url)["AccessKeyId"] in (out["second"],)


def test_scenarios_switch_at_runtime(serve):
    s = serve(None)

    def scenario(body):
        req = urllib.request.Request(s.control_url + "/admin/v1/credentials/scenario", data=json.dumps(body).encode(),
                                     method="PUT", headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req).read())

    scenario({"scenario": "error", "code": "AssumeRoleUnauthorizedAccess", "message": "EC2 cannot assume the role app-role."})
    assert creds_at(s.data_url)["Code"] == "AssumeRoleUnauthorizedAccess"
    scenario({"scenario": "detached"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(s.data_url + "/latest/meta-data/iam/security-credentials/")
    assert e.value.code == 404
    scenario({"scenario": "role-changed", "role": "next-role"})
    assert urllib.request.urlopen(s.data_url + "/latest/meta-data/iam/security-credentials/").read() == b"next-role"
    assert creds_at(s.data_url, role="next-role")["Code"] == "Success"
    scenario({"scenario": "normal"})
    assert creds_at(s.data_url)["Code"] == "Success"
