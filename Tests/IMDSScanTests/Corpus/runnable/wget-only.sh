#!/bin/sh
# Minimal images ship wget but not curl.
set -e
AMI=$(wget -qO- http://169.254.169.254/latest/meta-data/ami-id)
echo "ami=$AMI"
wget -q -O - http://169.254.169.254/latest/meta-data/instance-id
echo
