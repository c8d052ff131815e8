#!/bin/bash
# Metadata helper that can be pointed at a mock (IMDS_HOST=localhost:1338).
set -u

IMDS_HOST=${IMDS_HOST:-169.254.169.254}
BASE="http://${IMDS_HOST}/latest"

meta() {
    curl -s --max-time 2 "$BASE/meta-data/$1"
}

for item in instance-id instance-type; do
    echo "$item=$(meta "$item")"
done
echo "zone=$(meta placement/availability-zone)"
