#!/usr/bin/env bash
# Network fidelity, with real networking in namespaces this script makes (issue 6):
#   client ns --veth-- router ns (forwarding) --veth-- server ns (imds serve --link-local)
# hop limit 1 and 2 (changed at runtime with the AWS CLI), the TTL of token-response packets
# (tcpdump), IPv6 on fd00:ec2::254, botocore on the real default address, cleanup on exit.
# Usage: scripts/test-netns.sh [path/to/imds]. Needs root and `ip netns`; prints `skipped:` otherwise.
set -uo pipefail
IMDS=$(realpath "${1:-.build/debug/imds}")
NAME=netns
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

if [ "$(id -u)" != 0 ]; then echo "skipped: needs root to create network namespaces"; echo "$NAME: 0 passed, 0 failed"; exit 0; fi
if ! ip netns add imds-probe-$$ 2>/dev/null; then echo "skipped: ip netns is not available here"; echo "$NAME: 0 passed, 0 failed"; exit 0; fi
ip netns delete imds-probe-$$
for tool in tcpdump curl; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed (apt-get install $tool)"; echo "$NAME: 0 passed, 0 failed"; exit 0; }
done

S=imds-srv-$$; R=imds-rtr-$$; C=imds-cli-$$
TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    for ns in $C $R $S; do ip netns delete $ns 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

in_s() { ip netns exec $S "$@"; }
# Starts tcpdump on the server's link (FILE, COUNT, FILTER) and waits until it says it is listening
# (at most 10 s): a fixed sleep lost the packets whenever tcpdump started late on a loaded machine.
capture() {
    in_s timeout 15 tcpdump -l -n -v -i vs$$ -c "$2" "$3" > "$1" 2> "$1.err" &
    DUMP=$!
    for _ in $(seq 1 100); do grep -q 'listening on' "$1.err" 2>/dev/null && break; sleep 0.1; done
}
in_r() { ip netns exec $R "$@"; }
in_c() { ip netns exec $C "$@"; }

# --- topology -----------------------------------------------------------------------------------
for ns in $S $R $C; do ip netns add $ns; ip netns exec $ns ip link set lo up; done
ip link add vs$$ type veth peer name vrs$$
ip link add vc$$ type veth peer name vrc$$
ip link set vs$$ netns $S; ip link set vrs$$ netns $R
ip link set vc$$ netns $C; ip link set vrc$$ netns $R
in_s ip addr add 198.51.100.2/24 dev vs$$;  in_s ip -6 addr add fd00:2::2/64 dev vs$$ nodad
in_r ip addr add 198.51.100.1/24 dev vrs$$; in_r ip -6 addr add fd00:2::1/64 dev vrs$$ nodad
in_r ip addr add 192.0.2.1/24 dev vrc$$;    in_r ip -6 addr add fd00:1::1/64 dev vrc$$ nodad
in_c ip addr add 192.0.2.2/24 dev vc$$;     in_c ip -6 addr add fd00:1::2/64 dev vc$$ nodad
for l in "$S vs$$" "$R vrs$$" "$R vrc$$" "$C vc$$"; do set -- $l; ip netns exec $1 ip link set $2 up; done
in_r sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
in_s ip route add default via 198.51.100.1; in_s ip -6 route add default via fd00:2::1
in_c ip route add default via 192.0.2.1;    in_c ip -6 route add default via fd00:1::1
in_r ip route add 169.254.169.254/32 via 198.51.100.2
in_r ip -6 route add fd00:ec2::254/128 via fd00:2::2

# --- server -------------------------------------------------------------------------------------
cat > "$TMP/imds.yaml" <<'YAML'
instance:
  metadata-options:
    http-tokens: optional
    http-put-response-hop-limit: 1
    http-protocol-ipv6: enabled
YAML
ip netns exec $S "$IMDS" serve --link-local --config "$TMP/imds.yaml" --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 \
    > "$TMP/serve.log" 2> "$TMP/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 300); do grep -q "control plane listening" "$TMP/serve.log" && break; sleep 0.1; done
CONTROL=$(grep -o 'control plane listening on http://[^ ]*' "$TMP/serve.log" | sed 's/.*on //')
if [ -z "$CONTROL" ]; then echo "imds serve did not start:"; cat "$TMP/serve.err"; echo "$NAME: 0 passed, 1 failed"; exit 1; fi
for _ in $(seq 1 50); do grep -q "\[fd00:ec2::254\]:80" "$TMP/serve.log" && break; sleep 0.1; done
check "169.254.169.254 added to the server's lo" bash -c "ip netns exec $S ip -4 addr show lo | grep -q 169.254.169.254/32"

PUT='-s -m 3 -X PUT -H X-aws-ec2-metadata-token-ttl-seconds:60'
token_from() { # ns url -> prints the token or nothing
    ip netns exec "$1" curl $PUT "$2/latest/api/token" 2>/dev/null
}
v1_from() { ip netns exec "$1" curl -s -m 3 "$2/latest/meta-data/instance-id" 2>/dev/null; }

# --- hop limit 1 ----------------------------------------------------------------------------------
echo "hop limit 1"
check "same-host client gets a token" test "$(token_from $S http://169.254.169.254 | wc -c)" -eq 56
ip netns exec $C curl $PUT -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/api/token > "$TMP/far1" 2>/dev/null; rc=$?
check "client two hops away times out on the PUT (curl exit 28, got $rc)" test "$rc" -eq 28
check "client two hops away still gets v1 GETs" test "$(v1_from $C http://169.254.169.254)" = "i-0abc1234def567890"

# --- hop limit 2, changed at runtime with the AWS CLI ----------------------------------------------
echo "hop limit 2 (aws ec2 modify-instance-metadata-options)"
if command -v aws >/dev/null; then
    in_s env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
        aws --endpoint-url "$CONTROL" ec2 modify-instance-metadata-options --instance-id i-0abc1234def567890 \
        --http-put-response-hop-limit 2 --http-endpoint enabled > "$TMP/modify.json" 2>&1
    check "modify-instance-metadata-options accepted" grep -q '"HttpPutResponseHopLimit": 2' "$TMP/modify.json"
else
    bad "aws CLI not installed (pip install awscli)"
fi
# TTL-1 segments are left out: they are the kernel's retransmissions of the hop-limit-1 phase's token
# response (dropped at the router, so never acknowledged), which can still be in flight here. That
# this phase's token response did not leave with TTL 1 is shown by the far client getting a token.
# Segments that carry data (a response goes out with the FIN in one segment, without PSH).
capture "$TMP/cap2" 4 'tcp src port 80 and ip[8] != 1 and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) > 0'
T2=$(token_from $C http://169.254.169.254)
check "client two hops away gets a token" test "${#T2}" -eq 56
ip netns exec $C curl -s -m 3 -D "$TMP/h2" -H "X-aws-ec2-metadata-token: ${T2:-none}" http://169.254.169.254/latest/meta-data/instance-id > "$TMP/b2"
check "and uses it (an IMDSv2 response: remaining TTL header)" bash -c "grep -qi '^X-Aws-Ec2-Metadata-Token-Ttl-Seconds: ' $TMP/h2 && [ \"\$(cat $TMP/b2)\" = i-0abc1234def567890 ]"
wait $DUMP 2>/dev/null
# The first data segment is the token response (ttl 2); the next is the GET's response (ttl 64).
ttls=$(grep -o 'ttl [0-9]*' "$TMP/cap2" | awk '{print $2}' | tr '\n' ' ')
check "token response left with IP TTL 2, the GET's with the default (seen: $ttls)" bash -c "set -- $ttls; [ \"\$1\" = 2 ] && [ \"\${2:-}\" = 64 ]"
# Each answer carries its FIN (one segment for the answer and the end of the connection).
flags=$(grep -o 'Flags \[[^]]*\]' "$TMP/cap2" | head -2 | sed 's/^Flags //' | tr '\n' ' ')
check "each answer left with its FIN in one segment (seen: $flags)" bash -c "set -- $flags; case \"\$1 \${2:-}\" in *F*' '*F*) ;; *) exit 1;; esac"

# --- IPv6 ------------------------------------------------------------------------------------------
echo "IPv6 on fd00:ec2::254"
T6=$(token_from $C 'http://[fd00:ec2::254]')
check "token over IPv6 from two hops away (hop limit 2)" test "${#T6}" -eq 56
capture "$TMP/cap6" 1 'ip6 and tcp src port 80 and (ip6[4:2] - ((ip6[52] & 0xf0) >> 2)) > 0'
token_from $C 'http://[fd00:ec2::254]' >/dev/null
wait $DUMP 2>/dev/null
check "IPv6 token response left with hop limit 2 ($(grep -o 'hlim [0-9]*' "$TMP/cap6" | head -1))" grep -q 'hlim 2' "$TMP/cap6"
if command -v aws >/dev/null; then
    in_s env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
        aws --endpoint-url "$CONTROL" ec2 modify-instance-metadata-options --instance-id i-0abc1234def567890 \
        --http-protocol-ipv6 disabled --http-endpoint enabled > /dev/null 2>&1
    for _ in $(seq 1 30); do grep -q "fd00:ec2::254\]:80 stopped" "$TMP/serve.log" && break; sleep 0.1; done
    ip netns exec $C curl -s -m 3 -o /dev/null 'http://[fd00:ec2::254]/latest/meta-data/instance-id'; rc=$?
    check "nothing on IPv6 when disabled (curl exit $rc, not 0)" test "$rc" -ne 0
    check "IPv4 still served" test "$(v1_from $C http://169.254.169.254)" = "i-0abc1234def567890"
    in_s env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
        aws --endpoint-url "$CONTROL" ec2 modify-instance-metadata-options --instance-id i-0abc1234def567890 \
        --http-protocol-ipv6 enabled --http-endpoint enabled > /dev/null 2>&1
    for _ in $(seq 1 30); do [ "$(v1_from $C 'http://[fd00:ec2::254]')" = "i-0abc1234def567890" ] && break; sleep 0.1; done
    check "IPv6 back after re-enabling, without a restart" test "$(v1_from $C 'http://[fd00:ec2::254]')" = "i-0abc1234def567890"
fi

# --- botocore on the real default address -------------------------------------------------------------
echo "botocore with no endpoint override"
creds=$(in_s env -i PATH="$PATH" HOME="$TMP" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    python3 -c 'import boto3; c = boto3.Session().get_credentials(); print(c.method, c.get_frozen_credentials().access_key)' 2>&1)
check "boto3 credential chain gets the role credentials from 169.254.169.254 ($creds)" bash -c "[[ '$creds' == iam-role\ ASIA* ]]"

# --- exit removes the addresses -------------------------------------------------------------------------
kill -TERM $SERVER_PID; wait $SERVER_PID; rc=$?; SERVER_PID=""
check "SIGTERM exits 0 (got $rc)" test "$rc" -eq 0
check "169.254.169.254 removed from lo after exit" bash -c "! ip netns exec $S ip addr show lo | grep -q 169.254.169.254"
check "fd00:ec2::254 removed from lo after exit" bash -c "! ip netns exec $S ip addr show lo | grep -q fd00:ec2::254"

# --- without privileges ----------------------------------------------------------------------------------
if command -v setpriv >/dev/null; then
    out=$(in_s setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all "$IMDS" serve --link-local --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 2>&1); rc=$?
    check "unprivileged --link-local exits non-zero and names the capabilities (rc $rc)" bash -c "[ $rc -ne 0 ] && [[ \"$out\" == *CAP_NET_ADMIN* ]] && [[ \"$out\" == *setcap* ]]"
fi

echo "$NAME: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
