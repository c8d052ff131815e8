#!/bin/bash
# Installs a helper and a Python probe on first boot.
cat > /usr/local/bin/whoami-ec2 <<'SCRIPT'
#!/bin/sh
curl -s http://169.254.169.254/latest/meta-data/instance-id
SCRIPT
chmod +x /usr/local/bin/whoami-ec2

python3 - <<PY
import urllib.request
# urllib.request.urlopen("http://169.254.169.254/latest/meta-data/") in a comment is fine
print(urllib.request.urlopen("http://169.254.169.254/latest/meta-data/ami-id", timeout=2).read().decode())
PY

cat <<EOF
done; metadata at 169.254.169.254
EOF
curl -s http://169.254.169.254/latest/meta-data/instance-type
