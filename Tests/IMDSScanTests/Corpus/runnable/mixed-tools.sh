#!/bin/bash
set -eu
for path in instance-id instance-type; do
  curl -s "http://169.254.169.254/latest/meta-data/$path"; echo
done
wget -q -O - http://169.254.169.254/latest/meta-data/placement/availability-zone | sed 's/^/zone: /'
echo
