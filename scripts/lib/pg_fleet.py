#!/usr/bin/env python3
"""EC2 traffic through botocore for scripts/test-postgres.sh and benchmarks/postgres.sh.

  pg_fleet.py spread INSTANCE COUNT URL...        COUNT changes, round-robin over the hosts
  pg_fleet.py stream INSTANCE ACKED STOP URL       CreateTags seq=N until the file STOP exists (or
                                                   60 s); appends each acknowledged N to ACKED and
                                                   each refusal as "E CODE"
  pg_fleet.py state URL INSTANCE                   one line: the tags and metadata options a host shows
  pg_fleet.py propagation INSTANCE COUNT URL_A DATA_B   COUNT tag changes on A, each timed until B's
                                                   data plane serves it; prints p50/p99 (ms)
Every call has a timeout and no retries (a 503 must be seen, not retried away).
"""
import http.client
import json
import sys
import time
import urllib.parse

import boto3
import botocore.config
import botocore.exceptions


def client(url):
    return boto3.client(
        "ec2", endpoint_url=url, region_name="ap-northeast-1", aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15))


def change(c, instance, i):
    if i % 2 == 0:
        c.create_tags(Resources=[instance], Tags=[{"Key": "seq", "Value": str(i)}])
    else:
        c.modify_instance_metadata_options(InstanceId=instance, HttpPutResponseHopLimit=i % 64 + 1)


def spread(instance, count, urls):
    clients = [client(u) for u in urls]
    start = time.monotonic()
    for i in range(count):
        change(clients[i % len(clients)], instance, i)
    elapsed = time.monotonic() - start
    print(f"{count} changes over {len(urls)} hosts in {elapsed:.2f} s ({elapsed / count * 1000:.2f} ms each)")


def stream(instance, acked, stop, url):
    import os
    c = client(url)
    deadline = time.monotonic() + 60
    i = 0
    with open(acked, "a") as out:
        while not os.path.exists(stop) and time.monotonic() < deadline:
            try:
                c.create_tags(Resources=[instance], Tags=[{"Key": "seq", "Value": str(i)}])
                out.write(f"{i}\n")
            except botocore.exceptions.ClientError as e:
                out.write(f"E {e.response['Error']['Code']} {e.response['ResponseMetadata']['HTTPStatusCode']}\n")
                time.sleep(0.05)
            except Exception as e:  # connection refused / reset: the host was killed
                out.write(f"E {type(e).__name__} 0\n")
                time.sleep(0.05)
            out.flush()
            i += 1


def state(url, instance):
    r = client(url).describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    tags = sorted((t["Key"], t["Value"]) for t in r.get("Tags", []))
    opts = r["MetadataOptions"]
    print(json.dumps({"tags": tags, "hop": opts["HttpPutResponseHopLimit"], "tokens": opts["HttpTokens"]}, sort_keys=True))


def propagation(instance, count, url_a, data_b):
    c = client(url_a)
    b = urllib.parse.urlparse(data_b)
    conn = http.client.HTTPConnection(b.hostname, b.port, timeout=5)

    def seen():
        conn.request("GET", "/latest/meta-data/tags/instance/bench")
        r = conn.getresponse()
        return r.read().decode() if r.status == 200 else None

    latencies = []
    for i in range(count):
        value = f"v{i}"
        c.create_tags(Resources=[instance], Tags=[{"Key": "bench", "Value": value}])
        start = time.monotonic()
        while seen() != value:
            if time.monotonic() - start > 5:
                raise SystemExit(f"change {i} not visible on B after 5 s")
        latencies.append((time.monotonic() - start) * 1000)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"propagation over {count} changes (A acknowledged -> B's data plane serves it): "
          f"p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms, max {latencies[-1]:.2f} ms")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "spread":
        spread(args[0], int(args[1]), args[2:])
    elif cmd == "stream":
        stream(*args)
    elif cmd == "state":
        state(*args)
    elif cmd == "propagation":
        propagation(args[0], int(args[1]), args[2], args[3])
    else:
        raise SystemExit(__doc__)
