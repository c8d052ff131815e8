"""cloud-init's real EC2 datasource (Debian's package, system python) crawls a live imds."""
import json
import os
import subprocess

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"

# cloud-init's EC2 datasource crawling the URL in argv[1]; c and md are what it read.
CRAWL_SETUP = r"""
import json, sys, tempfile
from cloudinit import helpers, distros
from cloudinit.sources import DataSourceEc2 as M
d = tempfile.mkdtemp()
paths = helpers.Paths({'cloud_dir': d, 'run_dir': d + '/run'})
cfg = {'datasource': {'Ec2': {'metadata_urls': [sys.argv[1]], 'max_wait': 10, 'timeout': 2}}}
ds = M.DataSourceEc2(cfg, distros.fetch('debian')('debian', {}, paths), paths)
ds._cloud_name = M.CloudNames.AWS
c = ds.crawl_metadata()
md = c['meta-data']
"""

CRAWL = CRAWL_SETUP + r"""
ident = c['dynamic']['instance-identity']
print(json.dumps({'version': c.get('_metadata_api_version'), 'instance_id': md.get('instance-id'),
                  'az': md['placement']['availability-zone'], 'keys': md.get('public-keys'),
                  'mac': list(md['network']['interfaces']['macs'].keys()),
                  'local_ipv4s': md['network']['interfaces']['macs']['0e:12:34:56:78:9a'].get('local-ipv4s'),
                  'iam_info': md.get('iam', {}).get('info', {}).get('Code'),
                  'user_data': c['user-data'].decode(), 'doc_region': ident['document']['region'],
                  'identity_keys': sorted(ident.keys())}))
"""


@pytest.mark.skipif(subprocess.run([SYSTEM_PYTHON, "-c", "import cloudinit"], capture_output=True).returncode != 0,
                    reason="cloud-init is not installed (apt-get install --no-install-recommends cloud-init)")
@pytest.mark.parametrize("mode", ["optional", "required"])
def test_cloud_init_ec2_datasource_crawl(serve, mode):
    s = serve(f"instance:\n  metadata-options:\n    http-tokens: {mode}\n")
    r = subprocess.run([SYSTEM_PYTHON, "-c", CRAWL, s.data_url], capture_output=True, text=True, timeout=120,
                       env={"PATH": os.environ["PATH"], "HOME": "/tmp"})
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["version"] == "2021-03-23"  # the dated API version cloud-init probes first
    assert out["instance_id"] == "i-0abc1234def567890"
    assert out["az"] == "ap-northeast-1a"
    assert out["mac"] == ["0e:12:34:56:78:9a"]
    assert out["local_ipv4s"] == "10.0.1.23"
    assert out["iam_info"] == "Success"
    assert out["user_data"] == "#!/bin/bash\necho hello\n"
    assert out["doc_region"] == "ap-northeast-1"
    assert out["identity_keys"] == ["document", "pkcs7", "rsa2048", "signature"]
    assert "imds-default" in json.dumps(out["keys"])


LAUNCHED_CRAWL = CRAWL_SETUP + r"""
macs = md['network']['interfaces']['macs']
print(json.dumps({'instance_id': md.get('instance-id'), 'local_ipv4': md.get('local-ipv4'),
                  'local_ipv4s': [m.get('local-ipv4s') for m in macs.values()],
                  'user_data': c['user-data'].decode(),
                  'doc_instance': c['dynamic']['instance-identity']['document']['instanceId']}))
"""


@pytest.mark.skipif(subprocess.run([SYSTEM_PYTHON, "-c", "import cloudinit"], capture_output=True).returncode != 0,
                    reason="cloud-init is not installed (apt-get install --no-install-recommends cloud-init)")
def test_cloud_init_reads_a_launched_instances_user_data(serve):
    """Fleet mode (issue 14): an instance launched with RunInstances --user-data (HttpTokens=required),
    whose caller address is this host's 127.0.0.1 (the imds:caller-addresses tag), is what cloud-init's
    EC2 datasource crawls: its own id, address, user-data and identity document, not the config
    instance's."""
    import botocore.session
    from botocore.config import Config

    s = serve("instance:\n  instance-id: i-0abc1234def567890\n  user-data: \"#!/bin/sh\\necho config-instance\\n\"\n")
    ec2 = botocore.session.get_session().create_client(
        "ec2", region_name="ap-northeast-1", endpoint_url=s.control_url, aws_access_key_id="test",
        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))
    boot = "#cloud-config\nruncmd:\n  - echo launched-through-the-fleet\n"
    r = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.micro", MinCount=1, MaxCount=1, PrivateIpAddress="10.0.1.77",
        UserData=boot, MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "imds:caller-addresses", "Value": "127.0.0.1"}]}])
    launched = r["Instances"][0]["InstanceId"]
    assert launched != "i-0abc1234def567890"
    out = subprocess.run([SYSTEM_PYTHON, "-c", LAUNCHED_CRAWL, s.data_url], capture_output=True, text=True, timeout=120,
                         env={"PATH": os.environ["PATH"], "HOME": "/tmp"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"instance_id": launched, "local_ipv4": "10.0.1.77", "local_ipv4s": ["10.0.1.77"],
                   "user_data": boot, "doc_instance": launched}
