#!/bin/bash
# IMDSv2 helper. Never call http://169.254.169.254/latest/meta-data/ without a token:
#   curl http://169.254.169.254/latest/meta-data/instance-id   <- IMDSv1, rejected when HttpTokens=required
set -euo pipefail

IMDS="http://169.254.169.254"
TOKEN=$(curl -sf -X PUT "$IMDS/latest/api/token" \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")

imds() {
  curl -sf -H "X-aws-ec2-metadata-token: ${TOKEN}" "$IMDS/latest/$1"
}

echo "IMDS endpoint is $IMDS (169.254.169.254)"
INSTANCE_ID=$(imds meta-data/instance-id)
REGION=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" \
  "$IMDS/latest/meta-data/placement/region")
# Block containers from reaching the metadata service.
iptables -I DOCKER-USER -d 169.254.169.254/32 -j DROP
ip route show 169.254.169.254
echo "$INSTANCE_ID $REGION"
