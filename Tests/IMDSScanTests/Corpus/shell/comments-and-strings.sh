#!/bin/sh
# Troubleshooting notes, not code:
# curl http://169.254.169.254/latest/meta-data/iam/security-credentials/
#    wget -qO- http://169.254.169.254/latest/user-data
echo "To debug, run: curl http://169.254.169.254/latest/meta-data/"
printf 'metadata lives at %s\n' "http://169.254.169.254/latest/"
: '
curl -s http://169.254.169.254/latest/meta-data/hostname
'
logger "checked 169.254.169.254" # curl http://169.254.169.254/
grep -r 169.254.169.254 /etc/ || true
