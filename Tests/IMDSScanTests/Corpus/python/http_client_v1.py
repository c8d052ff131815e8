import http.client
import json

import urllib3

conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=2)
conn.request("GET", "/latest/meta-data/instance-id")
instance_id = conn.getresponse().read().decode()

http = urllib3.PoolManager()
r = http.request("GET", "http://169.254.169.254/latest/meta-data/placement/region")
region = r.data.decode()

tok = http.request("PUT", "http://169.254.169.254/latest/api/token",
                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).data.decode()
ok = http.request("GET", "http://169.254.169.254/latest/meta-data/ami-id",
                  headers={"X-aws-ec2-metadata-token": tok})
print(json.dumps({"id": instance_id, "region": region, "ami": ok.data.decode()}))
