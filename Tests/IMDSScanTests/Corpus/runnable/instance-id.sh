#!/bin/bash
# Print this instance's id (the classic one-liner from a wiki page).
curl -s http://169.254.169.254/latest/meta-data/instance-id
echo
