"""Issue 7: events on a timeline and on demand, and faults, seen by real clients."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import EC2_METADATA_SETUP, IMDS, clean_aws_env


def admin(server, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.control_url + "/admin/v1" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def token(url, ttl=60):
    req = urllib.request.Request(url + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def get(url, path, tok=None):
    req = urllib.request.Request(url + path, headers={"X-aws-ec2-metadata-token": tok} if tok else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_timeline_observed_by_a_poller(serve):
    """Polls every 200 ms like aws-node-termination-handler; each item appears at its time."""
    s = serve("""instance:
  instance-life-cycle: spot
  events:
    - {type: rebalance-recommendation, at: +1s}
    - {type: spot-interruption, at: +2s, action: stop, time: +5s}
""")
    start = time.time()
    seen = {}
    while time.time() - start < 8 and len(seen) < 2:
        t = token(s.data_url)
        for name, path in [("rebalance", "/latest/meta-data/events/recommendations/rebalance"),
                           ("spot", "/latest/meta-data/spot/instance-action")]:
            status, body = get(s.data_url, path, t)
            if status == 200 and name not in seen:
                seen[name] = (time.time() - start, body)
            elif status != 200:
                assert status == 404, (path, status)
        time.sleep(0.2)
    assert set(seen) == {"rebalance", "spot"}
    assert seen["rebalance"][0] < seen["spot"][0]
    assert json.loads(seen["rebalance"][1]).keys() == {"noticeTime"}
    spot = json.loads(seen["spot"][1])
    assert spot["action"] == "stop" and spot["time"].endswith("Z")
    assert seen["spot"][1] == '{"action": "stop", "time": "%s"}' % spot["time"]


EC2_METADATA_EVENTS = EC2_METADATA_SETUP + r"""
sia = m.spot_instance_action
print(json.dumps({'spot': None if sia is None else {'action': sia.action, 'time': sia.time.isoformat()},
                  'lifecycle': m.autoscaling_target_lifecycle_state}))
"""


def test_ec2_metadata_reads_triggered_events(serve):
    s = serve("instance:\n  instance-life-cycle: spot\n")
    run = lambda: json.loads(subprocess.run([sys.executable, "-c", EC2_METADATA_EVENTS, s.data_url],
                                            capture_output=True, text=True, timeout=60, check=True).stdout)
    before = run()
    assert before == {"spot": None, "lifecycle": None}
    r = subprocess.run([IMDS, "events", "spot", "--action", "hibernate", "--endpoint", s.control_url], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([IMDS, "events", "lifecycle", "Warmed:Hibernated", "--endpoint", s.control_url], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = run()
    assert after["spot"]["action"] == "hibernate"
    assert after["lifecycle"] == "Warmed:Hibernated"


def test_maintenance_complete_moves_to_history(serve):
    s = serve(None)
    e = admin(s, "POST", "/events", {"type": "scheduled-maintenance", "code": "instance-reboot", "description": "reboot"})
    status, body = get(s.data_url, "/latest/meta-data/events/maintenance/scheduled")
    assert json.loads(body)[0]["EventId"] == e["id"]
    r = subprocess.run([IMDS, "events", "cancel", e["id"], "--endpoint", s.control_url], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert get(s.data_url, "/latest/meta-data/events/maintenance/scheduled")[1] == "[]"
    hist = json.loads(get(s.data_url, "/latest/meta-data/events/maintenance/history")[1])
    assert hist[0]["State"] == "canceled" and hist[0]["Description"] == "[Canceled] reboot"


def test_events_list_shows_faults_and_errors_exit_nonzero(serve):
    s = serve(None)
    subprocess.run([IMDS, "faults", "add", "latency", "--milliseconds", "50", "--endpoint", s.control_url], check=True, capture_output=True)
    out = subprocess.run([IMDS, "events", "list", "--endpoint", s.control_url], capture_output=True, text=True).stdout
    assert "latency" in out and "milliseconds=50" in out
    bad = subprocess.run([IMDS, "faults", "add", "token-status", "--status", "500", "--endpoint", s.control_url], capture_output=True, text=True)
    assert bad.returncode != 0 and "403, 404, 405" in bad.stderr


BOTO_CREDS = r"""
import json, logging, botocore.session, botocore.utils
s = botocore.session.get_session()
cfg = {'ec2_metadata_service_endpoint': s.get_config_variable('ec2_metadata_service_endpoint')}
f = botocore.utils.InstanceMetadataFetcher(timeout=1, num_attempts=int(__import__('sys').argv[1]), config=cfg)
calls = []
orig = f._session.send
def send(req, *a, **k):
    r = orig(req, *a, **k)
    calls.append([req.method, req.url.split('/', 3)[3], r.status_code, 'x-aws-ec2-metadata-token' in {h.lower() for h in req.headers}])
    return r
f._session.send = send
c = f.retrieve_iam_role_credentials()
print(json.dumps({'akid': c.get('access_key'), 'calls': calls}))
"""


def boto(s, attempts=1):
    r = subprocess.run([sys.executable, "-c", BOTO_CREDS, str(attempts)], capture_output=True, text=True,
                       env=clean_aws_env(s.data_url), timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_botocore_falls_back_to_v1_when_put_answers_405(serve):
    s = serve(None)
    admin(s, "POST", "/faults", {"type": "token-status", "status": 405})
    out = boto(s)
    assert out["akid"].startswith("ASIA")
    assert out["calls"][0][:3] == ["PUT", "latest/api/token", 405]
    assert all(not has_token for method, _, _, has_token in out["calls"][1:])


def test_botocore_retries_throttling_and_5xx(serve):
    s = serve(None)
    # The next credential-path GET is throttled and the one after fails with 503; botocore, given
    # three attempts, retries both and gets the credentials.
    admin(s, "POST", "/faults", {"type": "throttle", "path": "/latest/meta-data/iam/*", "count": 1})
    admin(s, "POST", "/faults", {"type": "error", "status": 503, "path": "/latest/meta-data/iam/*", "count": 1})
    out = boto(s, attempts=3)
    assert out["akid"].startswith("ASIA")
    gets = [c[2] for c in out["calls"] if c[0] == "GET"]
    assert gets == [429, 503, 200, 200], out["calls"]
    assert admin(s, "GET", "/faults")["faults"] == []  # counted faults are used up
    # With a single attempt (botocore's default) the same throttle makes it give up: no credentials.
    admin(s, "POST", "/faults", {"type": "throttle", "path": "/latest/meta-data/iam/*", "count": 1})
    assert boto(s, attempts=1)["akid"] is None


def test_invalidated_tokens_lead_to_a_new_token(serve):
    s = serve(None)
    t = token(s.data_url, 300)
    assert get(s.data_url, "/latest/meta-data/instance-id", t)[0] == 200
    r = subprocess.run([IMDS, "faults", "invalidate-tokens", "--endpoint", s.control_url], capture_output=True, text=True)
    assert r.returncode == 0
    assert get(s.data_url, "/latest/meta-data/instance-id", t)[0] == 401
    # botocore fetches a new token for every credential fetch, so it is unaffected.
    assert boto(s)["akid"].startswith("ASIA")
    assert get(s.data_url, "/latest/meta-data/instance-id", token(s.data_url))[0] == 200


def test_admin_commands_sign_when_the_control_plane_requires_keys(serve):
    s = serve("""control-plane:
  access-keys:
    - {access-key-id: AKIAIMDSCONTROL00001, secret-access-key: imds-control-secret-example}
""")
    base = {k: v for k, v in clean_aws_env().items() if not k.startswith("IMDS_CONTROL_")}
    unsigned = subprocess.run([IMDS, "faults", "list", "--endpoint", s.control_url], capture_output=True, text=True, env=base)
    assert unsigned.returncode != 0 and "MissingAuthenticationToken" in unsigned.stderr
    wrong = dict(base, IMDS_CONTROL_ACCESS_KEY_ID="AKIAIMDSCONTROL00001", IMDS_CONTROL_SECRET_ACCESS_KEY="not-the-secret")
    refused = subprocess.run([IMDS, "faults", "list", "--endpoint", s.control_url], capture_output=True, text=True, env=wrong)
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr
    right = dict(base, IMDS_CONTROL_ACCESS_KEY_ID="AKIAIMDSCONTROL00001", IMDS_CONTROL_SECRET_ACCESS_KEY="imds-control-secret-example")
    ok = subprocess.run([IMDS, "events", "rebalance", "--endpoint", s.control_url], capture_output=True, text=True, env=right)
    assert ok.returncode == 0, ok.stderr
    assert get(s.data_url, "/latest/meta-data/events/recommendations/rebalance")[0] == 200
