#!/usr/bin/env bash
# Fleet mode across network namespaces (issue 14): three namespaces on a bridge, each its own
# instance launched with the real AWS CLI's run-instances, answered by one imds on the bridge.
# botocore fetches credentials and region in two namespaces at once. Two more namespaces sit one
# routed hop away (behind a router namespace): the one launched with HttpPutResponseHopLimit=1
# times out on the token PUT, the one launched with 2 gets its token.
# Usage: scripts/test-fleet-netns.sh [path/to/imds]. Needs root, `ip netns`, curl and aws; prints
# `skipped:` otherwise. Prints "fleet-netns: N passed, M failed" last.
set -uo pipefail
IMDS=$(realpath "${1:-.build/debug/imds}")
NAME=fleet-netns
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
check() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: expected [$2], got [$3]"; fi; }

if [ "$(id -u)" != 0 ]; then echo "skipped: needs root to create network namespaces"; echo "$NAME: 0 passed, 0 failed"; exit 0; fi
if ! ip netns add imds-probe-$$ 2>/dev/null; then echo "skipped: ip netns is not available here"; echo "$NAME: 0 passed, 0 failed"; exit 0; fi
ip netns delete imds-probe-$$
for tool in curl aws; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; echo "$NAME: 0 passed, 0 failed"; exit 0; }
done

BR=imdsbr$$
NS=(imds-f1-$$ imds-f2-$$ imds-f3-$$ imds-far1-$$ imds-far2-$$)
ROUTER=imds-fr-$$
ADDR=(10.0.1.41 10.0.1.42 10.0.1.43)
TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    for ns in "${NS[@]}" "$ROUTER"; do ip netns delete "$ns" 2>/dev/null; done
    ip link delete "$BR" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip link add "$BR" type bridge && ip addr add 10.0.1.1/24 dev "$BR" && ip link set "$BR" up
for i in 0 1 2; do
    ns=${NS[$i]}
    ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
    ip link add "vf$i-$$" type veth peer name "vfp$i-$$"
    ip link set "vfp$i-$$" netns "$ns"
    ip link set "vf$i-$$" master "$BR"; ip link set "vf$i-$$" up
    ip netns exec "$ns" ip addr add "${ADDR[$i]}/24" dev "vfp$i-$$"
    ip netns exec "$ns" ip link set "vfp$i-$$" up
done

# One routed hop: namespaces 3 and 4 (10.0.200.2, 10.0.201.2) reach the bridge through a router
# namespace (10.0.1.50 on the bridge, forwarding).
ip netns add "$ROUTER"; ip netns exec "$ROUTER" ip link set lo up
ip link add "vfr-$$" type veth peer name "vfrp-$$"
ip link set "vfrp-$$" netns "$ROUTER"; ip link set "vfr-$$" master "$BR"; ip link set "vfr-$$" up
ip netns exec "$ROUTER" ip addr add 10.0.1.50/24 dev "vfrp-$$"; ip netns exec "$ROUTER" ip link set "vfrp-$$" up
ip netns exec "$ROUTER" sysctl -qw net.ipv4.ip_forward=1
FAR=(10.0.200.2 10.0.201.2)
for j in 0 1; do
    ns=${NS[$((3 + j))]}
    ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
    ip link add "vh$j-$$" type veth peer name "vhp$j-$$"
    ip link set "vh$j-$$" netns "$ROUTER"; ip link set "vhp$j-$$" netns "$ns"
    ip netns exec "$ROUTER" ip addr add "10.0.$((200 + j)).1/24" dev "vh$j-$$"; ip netns exec "$ROUTER" ip link set "vh$j-$$" up
    ip netns exec "$ns" ip addr add "${FAR[$j]}/24" dev "vhp$j-$$"; ip netns exec "$ns" ip link set "vhp$j-$$" up
    ip netns exec "$ns" ip route add default via "10.0.$((200 + j)).1"
    ip route add "10.0.$((200 + j)).0/24" via 10.0.1.50 dev "$BR"
done

# The template's subnet is a /16, so that the far namespaces' addresses can be launched too.
printf 'instance:\n  subnet-ipv4-cidr-block: 10.0.0.0/16\n' >"$TMP/imds.yaml"
"$IMDS" serve --config "$TMP/imds.yaml" --listen 10.0.1.1:0 --control-listen 127.0.0.1:0 >"$TMP/out" 2>"$TMP/err" &
SERVER_PID=$!
DP=""; CP=""
for _ in $(seq 1 300); do
    DP=$(grep -o 'data plane listening on http://[^ ]*' "$TMP/out" | head -1 | sed 's/.* on //')
    CP=$(grep -o 'control plane listening on http://[^ ]*' "$TMP/out" | head -1 | sed 's/.* on //')
    [ -n "$DP" ] && [ -n "$CP" ] && break
    sleep 0.1
done
[ -n "$DP" ] || { bad "server did not start: $(tail -3 "$TMP/err")"; echo "$NAME: $pass passed, $fail failed"; exit 1; }

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
ec2() { aws --endpoint-url "$CP" ec2 "$@"; }
in_ns() { local i=$1; shift; ip netns exec "${NS[$i]}" "$@"; }
tok() { in_ns "$1" curl -s --max-time 5 -X PUT "$DP/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60"; }
get() { in_ns "$1" curl -s --max-time 5 -H "X-aws-ec2-metadata-token: $(tok "$1")" "$DP$2"; }
code() { local i=$1; shift; in_ns "$i" curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }

declare -a IDS
TOKENS=(optional required optional)
for i in 0 1 2; do
    IDS[$i]=$(ec2 run-instances --image-id ami-0123456789abcdef0 --private-ip-address "${ADDR[$i]}" \
        --metadata-options "HttpTokens=${TOKENS[$i]}" --iam-instance-profile "Name=role-$i" \
        --query 'Instances[0].InstanceId' --output text 2>"$TMP/e$i")
    [ -n "${IDS[$i]}" ] || bad "run-instances ${ADDR[$i]}: $(cat "$TMP/e$i")"
done
for i in 0 1 2; do
    check "namespace $i (${ADDR[$i]}) is its instance" "${IDS[$i]}" "$(get $i /latest/meta-data/instance-id)"
    check "namespace $i sees its address" "${ADDR[$i]}" "$(get $i /latest/meta-data/local-ipv4)"
    check "namespace $i sees its role" "role-$i" "$(get $i /latest/meta-data/iam/security-credentials/)"
done
check "namespace 1 requires tokens (v1 401)" "401" "$(code 1 "$DP/latest/meta-data/instance-id")"
check "namespace 0 answers v1" "200" "$(code 0 "$DP/latest/meta-data/instance-id")"
T0=$(tok 0)
check "namespace 0's token in namespace 2: 401" "401" "$(code 2 -H "X-aws-ec2-metadata-token: $T0" "$DP/latest/meta-data/instance-id")"
PY=${PYTHON:-python3}
if "$PY" -c 'import botocore' 2>/dev/null; then
    cat >"$TMP/boto.py" <<'PYEOF'
import sys
from botocore.utils import InstanceMetadataFetcher, InstanceMetadataRegionFetcher
cfg = {"ec2_metadata_service_endpoint": sys.argv[1]}
creds = InstanceMetadataFetcher(timeout=5, num_attempts=1, config=cfg).retrieve_iam_role_credentials()
region = InstanceMetadataRegionFetcher(timeout=5, num_attempts=1, config=cfg).retrieve_region()
print(creds.get("role_name"), bool(creds.get("access_key")), region)
PYEOF
    in_ns 0 env -u AWS_EC2_METADATA_DISABLED "$PY" "$TMP/boto.py" "$DP/" >"$TMP/boto0" 2>&1 &
    B0=$!
    in_ns 1 env -u AWS_EC2_METADATA_DISABLED "$PY" "$TMP/boto.py" "$DP/" >"$TMP/boto1" 2>&1 &
    B1=$!
    wait $B0; wait $B1
    check "botocore in namespace 0 at the same time: its role and region" "role-0 True ap-northeast-1" "$(tail -1 "$TMP/boto0")"
    check "botocore in namespace 1 at the same time: its role and region" "role-1 True ap-northeast-1" "$(tail -1 "$TMP/boto1")"
else
    echo "  skip botocore: not installed"
fi
ec2 modify-instance-metadata-options --instance-id "${IDS[2]}" --http-tokens required >/dev/null
check "modify on 2: 2 requires tokens" "401" "$(code 2 "$DP/latest/meta-data/instance-id")"
check "modify on 2: 0 untouched" "200" "$(code 0 "$DP/latest/meta-data/instance-id")"
echo "  hop limit per instance, one routed hop away"
for j in 0 1; do
    IDS[$((3 + j))]=$(ec2 run-instances --image-id ami-0123456789abcdef0 --private-ip-address "${FAR[$j]}" \
        --metadata-options "HttpTokens=optional,HttpPutResponseHopLimit=$((1 + j))" \
        --query 'Instances[0].InstanceId' --output text 2>"$TMP/far$j")
    [ -n "${IDS[$((3 + j))]}" ] || bad "run-instances ${FAR[$j]}: $(cat "$TMP/far$j")"
done
in_ns 3 curl -s --max-time 3 -o /dev/null -X PUT "$DP/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60"; rc=$?
check "hop limit 1, one routed hop away (${FAR[0]}): the token PUT times out (curl exit 28)" "28" "$rc"
check "  ... its v1 GET still answers as its instance" "${IDS[3]}" "$(in_ns 3 curl -s --max-time 5 "$DP/latest/meta-data/instance-id")"
T4=$(tok 4)
check "hop limit 2, one routed hop away (${FAR[1]}): gets its token" "56" "${#T4}"
check "  ... and with it its own instance id" "${IDS[4]}" "$(in_ns 4 curl -s --max-time 5 -H "X-aws-ec2-metadata-token: $T4" "$DP/latest/meta-data/instance-id")"
ec2 modify-instance-metadata-options --instance-id "${IDS[3]}" --http-put-response-hop-limit 2 >/dev/null
check "modify the first to hop limit 2: now it gets its token" "56" "$(tok 3 | wc -c | tr -d ' ')"

ec2 terminate-instances --instance-ids "${IDS[0]}" >/dev/null
check "terminated 0: its namespace gets 404" "404" "$(code 0 "$DP/latest/meta-data/instance-id")"
check "terminated 0: 1 still served" "${IDS[1]}" "$(get 1 /latest/meta-data/instance-id)"

echo "$NAME: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
