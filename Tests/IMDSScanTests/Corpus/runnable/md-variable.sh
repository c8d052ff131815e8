#!/usr/bin/env bash
set -euo pipefail

MD=http://169.254.169.254/latest/meta-data
echo "instance: $(curl -s $MD/instance-id)"
echo "type:     $(curl -s "$MD/instance-type")"
curl -s ${MD}/placement/region
echo
