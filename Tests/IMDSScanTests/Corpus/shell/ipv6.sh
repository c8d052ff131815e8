#!/bin/bash
# IPv6-only subnet (HttpProtocolIpv6=enabled).
TOKEN=$(curl -s -X PUT "http://[fd00:ec2::254]/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "http://[fd00:ec2::254]/latest/meta-data/ipv6"
curl -s -g "http://[fd00:ec2::254]/latest/meta-data/instance-id"
curl -6 -s http://[FD00:EC2::254]/latest/meta-data/mac
