#!/usr/bin/env bash
# Bootstrap: discover region and id, then join the cluster.
set -o errexit

REGION=$(curl -s http://169.254.169.254/latest/dynamic/instance-identity/document | jq -r .region)
INSTANCE_ID=$(wget -q -O - http://instance-data/latest/meta-data/instance-id)
sudo -u ec2-user sh -c "curl -s http://169.254.169.254/latest/user-data > /tmp/ud"
timeout 5 curl -s http://instance-data.ec2.internal/latest/meta-data/hostname >/tmp/hostname
aws ec2 describe-tags --region "$REGION" --filters "Name=resource-id,Values=$INSTANCE_ID"
curl -s -X POST https://inventory.example.com/register -d "id=$INSTANCE_ID"
