"""IMDSv2 client.

Usage notes: never requests.get("http://169.254.169.254/latest/meta-data/") without a token.
"""
import requests

IMDS = "http://169.254.169.254"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


class Metadata:
    def __init__(self, base=IMDS):
        self.base = base
        self.session = requests.Session()
        token = self.session.put(
            f"{self.base}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            timeout=1,
        ).text
        self.session.headers.update({TOKEN_HEADER: token})

    def get(self, path):
        return self.session.get(f"{self.base}/latest/meta-data/{path}", timeout=1).text


def instance_id(token):
    headers = {TOKEN_HEADER: token}
    return requests.get(IMDS + "/latest/meta-data/instance-id", headers=headers, timeout=1).text
