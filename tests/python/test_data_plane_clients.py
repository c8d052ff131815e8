"""Issue 2: real clients nobody here wrote, against a live `imds serve`."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import IMDS, clean_aws_env

PAGE_401 = (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
    '\t\t "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
    " <head>\n  <title>401 - Unauthorized</title>\n </head>\n"
    " <body>\n  <h1>401 - Unauthorized</h1>\n </body>\n</html>\n"
)


def with_tokens(example, mode):
    return example.replace("http-tokens: optional", f"http-tokens: {mode}")


def sh(script, **kw):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, **kw)


def python(code, env):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


BOTOCORE_PROBE = r"""
import json, botocore.session, botocore.utils
s = botocore.session.get_session()
endpoint = s.get_config_variable('ec2_metadata_service_endpoint')
cfg = {'ec2_metadata_service_endpoint': endpoint}
fetcher = botocore.utils.InstanceMetadataFetcher(timeout=2, num_attempts=1, config=cfg)
creds = fetcher.retrieve_iam_role_credentials()
region = botocore.utils.InstanceMetadataRegionFetcher(timeout=2, num_attempts=1, config=cfg).retrieve_region()
raw = fetcher._get_request('/latest/meta-data/instance-id', None, fetcher._fetch_metadata_token())
print(json.dumps({'role': creds.get('role_name'), 'akid': creds.get('access_key'), 'region': region,
                  'instance_id': raw.text, 'expiry': creds.get('expiry_time')}))
"""


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_botocore_instance_metadata_fetcher(serve, product_example, mode):
    s = serve(with_tokens(product_example, mode))
    out = python(BOTOCORE_PROBE, clean_aws_env(s.data_url))
    assert out["region"] == "ap-northeast-1"
    assert out["instance_id"] == "i-0abc1234def567890"
    assert out["role"] == "app-role"
    assert out["akid"].startswith("ASIA") and len(out["akid"]) == 20


def test_boto3_credential_chain_uses_imds(serve, product_example):
    s = serve(with_tokens(product_example, "required"))
    out = python(
        "import json, boto3\nc = boto3.Session().get_credentials()\n"
        "print(json.dumps({'method': c.method, 'akid': c.get_frozen_credentials().access_key}))",
        clean_aws_env(s.data_url),
    )
    assert out["method"] == "iam-role"
    assert out["akid"].startswith("ASIA")


EC2_METADATA_PROBE = r"""
import json, sys
from ec2_metadata import EC2Metadata
base = sys.argv[1]
m = EC2Metadata()
m.service_url = f'{base}/latest/'
m.metadata_url = f'{m.service_url}meta-data/'
m.dynamic_url = f'{m.service_url}dynamic/'
m.userdata_url = f'{m.service_url}user-data/'
print(json.dumps({'instance_id': m.instance_id, 'region': m.region, 'az': m.availability_zone,
                  'account_id': m.account_id, 'tags': dict(m.tags), 'user_data': m.user_data.decode(),
                  'profile': m.instance_profile_name, 'mac': m.mac, 'public_ipv4': m.public_ipv4,
                  'public_keys': list(m.public_keys) if hasattr(m, 'public_keys') else None,
                  'creds': m.iam_security_credentials['AccessKeyId'],
                  'private_hostname': m.private_hostname, 'reservation_id': m.reservation_id}))
"""


def test_ec2_metadata_package(serve, product_example):
    s = serve(with_tokens(product_example, "required"))
    r = subprocess.run([sys.executable, "-c", EC2_METADATA_PROBE, s.data_url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["instance_id"] == "i-0abc1234def567890"
    assert out["region"] == "ap-northeast-1"
    assert out["az"] == "ap-northeast-1a"
    assert out["account_id"] == "123456789012"
    assert out["tags"] == {"Name": "web-1", "Env": "dev"}
    assert out["user_data"] == "#!/bin/bash\necho hello\n"
    assert out["profile"] == "app-role"
    assert out["mac"] == "0e:12:34:56:78:9a"
    assert out["public_ipv4"] == "203.0.113.10"
    assert out["creds"].startswith("ASIA")
    assert out["private_hostname"] == "ip-10-0-1-23.ap-northeast-1.compute.internal"


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_curl_commands_from_aws_articles(serve, product_example, mode):
    s = serve(with_tokens(product_example, mode))
    u = s.data_url
    v1 = sh(f"curl -s {u}/latest/meta-data/instance-id")
    if mode == "optional":
        assert v1.stdout == "i-0abc1234def567890"
    else:
        assert v1.stdout == PAGE_401
    code = sh(f"curl -s -o /dev/null -w '%{{http_code}}' {u}/latest/meta-data/instance-id").stdout
    assert code == ("200" if mode == "optional" else "401")

    v2 = sh(
        f'TOKEN=$(curl -s -X PUT {u}/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")\n'
        f'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" {u}/latest/meta-data/'
    )
    assert v2.stdout.startswith("ami-id\nami-launch-index\n")
    assert v2.stdout.endswith("tags/")

    backtick = sh(
        f'TOKEN=`curl -X PUT "{u}/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600"` '
        f'&& curl -H "X-aws-ec2-metadata-token: $TOKEN" -v {u}/latest/meta-data/instance-id'
    )
    assert backtick.returncode == 0
    assert backtick.stdout == "i-0abc1234def567890"
    assert "< Server: EC2ws" in backtick.stderr
    assert "< X-Aws-Ec2-Metadata-Token-Ttl-Seconds: 2159" in backtick.stderr


def test_product_example_serves_as_is(serve, product_example):
    s = serve(product_example)
    assert any("data plane listening on http://127.0.0.1:" in l for l in s.lines)
    assert any("control plane listening on http://127.0.0.1:" in l for l in s.lines)
    with urllib.request.urlopen(s.data_url + "/latest/meta-data/tags/instance/Name") as r:
        assert r.read() == b"web-1"


def test_default_instance_without_config(serve):
    s = serve(None)
    with urllib.request.urlopen(s.data_url + "/latest/meta-data/instance-id") as r:
        assert r.read() == b"i-0abc1234def567890"
        assert r.headers["Server"] == "EC2ws"


@pytest.mark.parametrize(
    "config,words",
    [
        ("instance:\n  bogus: 1\n", ["instance.bogus", "unknown key"]),
        ("instance:\n  metadata-options:\n    http-tokens: maybe\n", ["http-tokens", "'maybe'", "optional, required"]),
        ("instance: [\n", ["not valid YAML"]),
    ],
)
def test_bad_config_file_exits_with_one_paragraph(tmp_path, config, words):
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    r = subprocess.run([IMDS, "serve", "--config", str(path), "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert str(path) in err
    for w in words:
        assert w in err
    assert "Fatal error" not in err and "Stack" not in err


@pytest.mark.parametrize("args,words", [
    (["--listen", "nonsense"], ["--listen", "HOST:PORT"]),
    (["--log-level", "loud"], ["--log-level"]),
    (["--config", "/nonexistent/imds.yaml"], ["/nonexistent/imds.yaml", "no such file"]),
    (["--bogus"], ["--bogus"]),
])
def test_bad_flags(args, words):
    r = subprocess.run([IMDS, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"] + args,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    for w in words:
        assert w in r.stderr


def test_sighup_reload_and_bad_reload_keeps_config(serve, product_example):
    s = serve(product_example)
    get = lambda: urllib.request.urlopen(s.data_url + "/latest/meta-data/instance-type").read()
    assert get() == b"t3.micro"
    with open(s.config_path, "w") as f:
        f.write(product_example.replace("t3.micro", "m5.large"))
    s.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if get() == b"m5.large":
            break
        time.sleep(0.05)
    assert get() == b"m5.large"
    with open(s.config_path, "w") as f:
        f.write("instance:\n  instance-type: [broken\n")
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert get() == b"m5.large"
    assert s.proc.poll() is None
    s.stop()
    assert "reload failed" in s.proc.stderr.read()


def test_sigterm_is_graceful(serve):
    s = serve(None)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0
    assert "stopped" in s.proc.stdout.read()
