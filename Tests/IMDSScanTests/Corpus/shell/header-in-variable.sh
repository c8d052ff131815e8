#!/bin/bash
MD="http://169.254.169.254/latest/meta-data"
TOKEN=$(curl -s -X PUT "http://169.254.169.254/latest/api/token" \
          -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
HDR="X-aws-ec2-metadata-token: $TOKEN"
CURL_ARGS=(-s --max-time 2 -H "X-aws-ec2-metadata-token: $TOKEN")

curl -s -H "$HDR" "$MD/instance-id"
curl "${CURL_ARGS[@]}" "$MD/ami-id"
wget -q -O - --header="$HDR" "$MD/instance-type"
# Forgot the header here:
curl -s "$MD/hostname"
