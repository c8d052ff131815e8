#!/bin/sh
# Collect facts for the motd.
ID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)
AZ="$(curl -s http://169.254.169.254/latest/meta-data/placement/availability-zone)"
TYPE=`curl -s http://169.254.169.254/latest/meta-data/instance-type`
printf '%s %s %s\n' "$ID" "$AZ" "$TYPE"
