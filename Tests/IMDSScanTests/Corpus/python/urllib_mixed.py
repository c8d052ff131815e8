import urllib.request

BASE = "http://169.254.169.254/latest"


def token():
    req = urllib.request.Request(BASE + "/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    return urllib.request.urlopen(req, timeout=1).read().decode()


def fetch(path, tok):
    req = urllib.request.Request(f"{BASE}/meta-data/{path}")
    req.add_header("X-aws-ec2-metadata-token", tok)
    return urllib.request.urlopen(req, timeout=1).read().decode()


def user_data():
    # Forgot the token: IMDSv1.
    return urllib.request.urlopen(BASE + "/user-data", timeout=1).read()
