#!/bin/bash
# TOKEN is the deploy token here, not an IMDS token.
TOKEN="${DEPLOY_TOKEN:-none}"
echo "deploy token: $TOKEN"
echo "instance: $(curl -s http://169.254.169.254/latest/meta-data/instance-id)"
