#!/usr/bin/env python3
"""Writes Tests/IMDSControlPlaneTests/Fixtures/sigv4-botocore.json: requests signed by botocore's own
SigV4 signer (fixed credentials and clock), so the Swift verifier is checked against the reference
implementation. Re-run only to regenerate: python3 scripts/gen-sigv4-fixture.py"""
import datetime, json, os, unittest.mock
import botocore.auth, botocore.awsrequest, botocore.credentials

FIXED = datetime.datetime(2026, 1, 2, 3, 4, 5)
creds = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
cases = [
    ("modify", "POST", "http://127.0.0.1:1339/", "ap-northeast-1",
     "Action=ModifyInstanceMetadataOptions&Version=2016-11-15&InstanceId=i-0abc1234def567890&HttpTokens=required&HttpEndpoint=enabled"),
    ("describe-filters", "POST", "http://localhost:8080/", "us-east-1",
     "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=web%20%2A&InstanceId.1=i-0abc1234def567890"),
    ("get-query", "GET", "http://127.0.0.1:1339/?Version=2016-11-15&Action=GetInstanceMetadataDefaults", "eu-west-1", ""),
]
out = []
for name, method, url, region, body in cases:
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"} if body else {})
    with unittest.mock.patch.object(botocore.auth.datetime, "datetime", wraps=datetime.datetime) as dt:
        dt.utcnow.return_value = FIXED
        dt.now.return_value = FIXED.replace(tzinfo=datetime.timezone.utc)
        botocore.auth.SigV4Auth(creds, "ec2", region).add_auth(req)
    prepared = req.prepare()
    target = url.split("//", 1)[1]
    target = target[target.index("/"):]
    headers = [[k, v] for k, v in prepared.headers.items()]
    host = url.split("//", 1)[1].split("/", 1)[0]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ["Host", host])
    out.append({"name": name, "method": method, "target": target, "headers": headers, "body": body,
                "accessKeyId": creds.access_key, "secretAccessKey": creds.secret_key,
                "date": FIXED.strftime("%Y%m%dT%H%M%SZ")})
path = os.path.join(os.path.dirname(__file__), "..", "Tests", "IMDSControlPlaneTests", "Fixtures", "sigv4-botocore.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print("wrote", os.path.normpath(path))
