"""Fixtures that run the real `imds` binary on port 0 for tests with real third-party clients."""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMDS = os.environ.get("IMDS_BIN", os.path.join(ROOT, ".build", "debug", "imds"))
PRODUCT_EXAMPLE = os.path.join(ROOT, "examples", "imds.yaml")


class Server:
    """A running `imds serve` with its data-plane and control-plane URLs."""

    def __init__(self, args, config_text=None, state_dir=None):
        self.tmp = tempfile.mkdtemp(prefix="imds-test-")
        cmd = [IMDS, "serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"] + list(args)
        if config_text is not None:
            path = os.path.join(self.tmp, "imds.yaml")
            with open(path, "w") as f:
                f.write(config_text)
            cmd += ["--config", path]
            self.config_path = path
        if state_dir:
            cmd += ["--state-dir", state_dir]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.data_url = self.control_url = None
        deadline = time.time() + 60
        while time.time() < deadline and not (self.data_url and self.control_url):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("imds serve exited: " + self.proc.stderr.read())
            self.lines.append(line)
            m = re.search(r"data plane listening on (http://\S+)", line)
            if m:
                self.data_url = m.group(1)
            m = re.search(r"control plane listening on (http://\S+)", line)
            if m:
                self.control_url = m.group(1)
        if not self.data_url:
            self.stop()
            raise RuntimeError("imds serve did not print its listening lines")

    def stop(self):
        stop_process(self.proc)


def stop_process(proc):
    """SIGTERM, then SIGKILL after 10 s: a started server never outlives its test."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def serve():
    """serve(config_text=None, *args) -> Server; every server is stopped after the test."""
    servers = []

    def start(config_text=None, *args, **kw):
        s = Server(args, config_text=config_text, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def product_example():
    with open(PRODUCT_EXAMPLE) as f:
        return f.read()


def clean_aws_env(endpoint=None, extra=None):
    """An environment with no AWS credentials or config, optionally pointing SDKs at `endpoint`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = "/dev/null"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    if endpoint:
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = endpoint
    env.update(extra or {})
    return env


# ec2-metadata has no base-URL argument: point its four URLs at the server given as argv[1].
EC2_METADATA_SETUP = """import json, sys
from ec2_metadata import EC2Metadata
base = sys.argv[1]
m = EC2Metadata()
m.service_url = f'{base}/latest/'
m.metadata_url = f'{m.service_url}meta-data/'
m.dynamic_url = f'{m.service_url}dynamic/'
m.userdata_url = f'{m.service_url}user-data/'
"""
