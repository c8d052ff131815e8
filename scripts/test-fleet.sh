#!/usr/bin/env bash
# Fleet mode on loopback, no root: one `imds serve` with three instances, each the instance of its
# own 127.0.0.N source address (curl --interface), driven by curl and the real AWS CLI; a fourth
# launched with `aws ec2 run-instances`, stopped, started, kept across kill -9, terminated.
#   scripts/test-fleet.sh [path/to/imds]     (default .build/debug/imds)
# Installs nothing and builds nothing; without curl prints "skipped" and exits 0 (the AWS CLI part
# is skipped without `aws`). Prints "fleet: N passed, M failed" last; exits non-zero on any failure.
set -u
IMDS=${1:-.build/debug/imds}
if ! command -v curl >/dev/null 2>&1; then echo "skipped: curl not installed"; exit 0; fi
if [ ! -x "$IMDS" ]; then echo "fleet: no imds binary at $IMDS (build it first: swift build)"; echo "fleet: 0 passed, 1 failed"; exit 1; fi
IMDS=$(cd "$(dirname "$IMDS")" && pwd)/$(basename "$IMDS")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/imds-fleet-test.XXXXXX")
SERVER_PID=""
SERVER2_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    [ -n "$SERVER2_PID" ] && kill -9 "$SERVER2_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/lib/checks.sh"

A=i-0aaaaaaaaaaaaaaa1; B=i-0bbbbbbbbbbbbbbb2; C=i-0ccccccccccccccc3
cat >"$TMP/fleet.yaml" <<YAML
instances:
  - {instance-id: $A, local-ipv4: 10.0.1.31, caller-addresses: [127.0.0.2], iam: {role: role-a}, user-data: "a"}
  - {instance-id: $B, local-ipv4: 10.0.1.32, caller-addresses: [127.0.0.3], iam: {role: role-b}, user-data: "b"}
  - {instance-id: $C, local-ipv4: 10.0.1.33, caller-addresses: [127.0.0.4], iam: null, user-data: "c"}
forwarding-proxy: {addresses: [127.0.0.8], shared-secret: fleet-test-proxy-secret}
YAML

# start_server: imds serve on port 0 with the fleet and a state dir; waits (bounded) for both
# listening lines and sets DP, CP and SERVER_PID.
start_server() {
    "$IMDS" serve --config "$TMP/fleet.yaml" --state-dir "$TMP/state" --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 \
        >"$TMP/out" 2>"$TMP/err" &
    SERVER_PID=$!
    disown "$SERVER_PID" 2>/dev/null
    wait_listening "$SERVER_PID" "$TMP/out"; local up=$?
    DP=$LISTEN_DP; CP=$LISTEN_CP
    [ "$up" = 0 ] && return 0
    not_ok "server starts with a fleet config" "$(cat "$TMP/err" "$TMP/out" | tail -5)"
    echo "fleet: $PASS passed, $FAIL failed"; exit 1
}
start_server
ok "server starts with a fleet config"

# as N ARGS...: curl from source address 127.0.0.N
as() { local n=$1; shift; curl -s --max-time 5 --interface "127.0.0.$n" "$@"; }
token() { as "$1" -X PUT "$DP/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300"; }
get() { local n=$1 path=$2; shift 2; as "$n" -H "X-aws-ec2-metadata-token: $(token "$n")" "$DP$path" "$@"; }
status() { as "$@" -o /dev/null -w '%{http_code}'; }

check "127.0.0.2 is A" "$A" "$(get 2 /latest/meta-data/instance-id)"
check "127.0.0.3 is B" "$B" "$(get 3 /latest/meta-data/instance-id)"
check "127.0.0.4 is C" "$C" "$(get 4 /latest/meta-data/instance-id)"
check "user-data of B" "b" "$(get 3 /latest/user-data)"
check "role of A" "role-a" "$(get 2 /latest/meta-data/iam/security-credentials/)"
check "C has no role" "404" "$(status 4 -H "X-aws-ec2-metadata-token: $(token 4)" "$DP/latest/meta-data/iam/security-credentials/")"
TA=$(token 2)
check "A's token at A" "200" "$(status 2 -H "X-aws-ec2-metadata-token: $TA" "$DP/latest/meta-data/instance-id")"
check "A's token at B: 401" "401" "$(status 3 -H "X-aws-ec2-metadata-token: $TA" "$DP/latest/meta-data/instance-id")"
check "unknown caller 127.0.0.9: 404" "404" "$(status 9 "$DP/latest/meta-data/instance-id")"
check "unknown caller token PUT: 404" "404" "$(status 9 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$DP/latest/api/token")"
check "X-Forwarded-For does not make C into A" "$C" "$(get 4 /latest/meta-data/instance-id -H 'X-Forwarded-For: 127.0.0.2' -H 'X-Real-IP: 127.0.0.2')"
check "X-Forwarded-For does not make an unknown caller A" "404" "$(status 9 -H 'X-Forwarded-For: 127.0.0.2' "$DP/latest/meta-data/instance-id")"

if command -v openssl >/dev/null 2>&1; then
    echo "# a trusted forwarding proxy (127.0.0.8) names the instance in a signed X-Instance-ID"
    sig() { printf %s "$1" | openssl dgst -sha256 -hmac fleet-test-proxy-secret | sed 's/^.* //'; }
    check "the proxy with B's signed id gets B's user-data" "b" "$(as 8 -H "X-Instance-ID: $B" -H "X-Instance-ID-Signature: $(sig "$B")" "$DP/latest/user-data")"
    check "the proxy with a wrong signature: 404" "404" "$(status 8 -H "X-Instance-ID: $B" -H "X-Instance-ID-Signature: $(sig "$A")" "$DP/latest/user-data")"
    check "A's caller with B's signed id is still A" "a" "$(as 2 -H "X-Instance-ID: $B" -H "X-Instance-ID-Signature: $(sig "$B")" "$DP/latest/user-data")"
fi

echo "# per instance from the CLI: options, events, faults with --instance-id"
cli() { "$IMDS" "$@" --endpoint "$CP"; }
out=$(cli options show 2>&1); rc=$?
check "options show on a fleet without --instance-id: exit 1" "1" "$rc"
case "$out" in *"pass --instance-id"*) ok "  ... and the error says to pass --instance-id" ;; *) not_ok "options show names the fix" "$out" ;; esac
check "options show --instance-id $A" "optional" "$(cli options show --instance-id "$A" --json | grep -o '"HttpTokens": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')"
cli options set --instance-id "$C" --http-tokens required >/dev/null 2>"$TMP/stderr" || not_ok "options set C" "$(cat "$TMP/stderr")"
check "options set --instance-id C: C refuses v1" "401" "$(status 4 "$DP/latest/meta-data/instance-id")"
check "  ... A still answers v1" "200" "$(status 2 "$DP/latest/meta-data/instance-id")"
cli options set --instance-id "$C" --http-tokens optional >/dev/null
out=$(cli options show --instance-id i-0000000000000dead 2>&1); rc=$?
check "options show with an unknown instance id: exit 1" "1" "$rc"
case "$out" in *InvalidInstanceID.NotFound*) ok "  ... InvalidInstanceID.NotFound" ;; *) not_ok "unknown id error" "$out" ;; esac
cli events spot --instance-id "$B" >/dev/null 2>"$TMP/stderr" || not_ok "events spot B" "$(cat "$TMP/stderr")"
check "events spot --instance-id B: B has spot/instance-action" "200" "$(status 3 -H "X-aws-ec2-metadata-token: $(token 3)" "$DP/latest/meta-data/spot/instance-action")"
check "  ... A has none" "404" "$(status 2 "$DP/latest/meta-data/spot/instance-action")"
check "events list --instance-id A: no events" "0" "$(cli events list --instance-id "$A" --json | grep -c '"spot-interruption"')"
out=$(cli events list --instance-id i-0000000000000dead 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then ok "events list with an unknown instance id: exit $rc"; else not_ok "events unknown id refused" "$out"; fi
case "$out" in *i-0000000000000dead*) ok "  ... the error names the id" ;; *) not_ok "events unknown id names it" "$out" ;; esac
cli events clear --instance-id "$B" >/dev/null 2>&1
cli faults add error --status 503 --path /latest/meta-data/instance-id --instance-id "$A" >/dev/null 2>"$TMP/stderr" \
    || not_ok "faults add A" "$(cat "$TMP/stderr")"
check "faults add --instance-id A: A gets 503" "503" "$(status 2 "$DP/latest/meta-data/instance-id")"
check "  ... C does not" "200" "$(status 4 "$DP/latest/meta-data/instance-id")"
cli faults clear >/dev/null 2>&1
check "faults cleared" "200" "$(status 2 "$DP/latest/meta-data/instance-id")"

echo "# imds audit per instance and caller"
"$IMDS" audit --endpoint "$CP" >"$TMP/audit.txt" 2>&1
case "$(cat "$TMP/audit.txt")" in *"per instance:"*"$A: not safe"*) ok "audit: a verdict per instance (A not safe: v1 callers)" ;; *) not_ok "audit per instance" "$(tail -8 "$TMP/audit.txt")" ;; esac
as 3 -H "X-aws-ec2-metadata-token: $(token 3)" "$DP/latest/meta-data/instance-id" >/dev/null
"$IMDS" audit --endpoint "$CP" --instance-id "$A" >"$TMP/audit-a.txt" 2>&1; rc=$?
check "audit --instance-id A: exit 1 (v1 callers)" "1" "$rc"
case "$(cat "$TMP/audit-a.txt")" in *"not safe to require IMDSv2 on $A"*) ok "  ... the verdict names A" ;; *) not_ok "audit A verdict" "$(tail -3 "$TMP/audit-a.txt")" ;; esac
check "audit --instance-id A --json: only A's callers" "0" "$("$IMDS" audit --endpoint "$CP" --instance-id "$A" --json | python3 -c '
import json, sys; d = json.load(sys.stdin); print(sum(1 for c in d["callers"] if c["summary"]["instance-ids"] != ["'"$A"'"]))')"
check "dashboard: the fleet table has IMDSv1 callers and events per instance" "1" "$(curl -s "$CP/dashboard" | grep -c 'IMDSv1 callers</th><th class="num">Active events')"

if command -v chromium >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
    echo "# the dashboard's fleet table in headless Chromium: A's IMDSv1 caller, switching A only"
    curl -s --max-time 5 --interface 127.0.0.2 "$DP/latest/meta-data/ami-id" >/dev/null &
    V1_PID=$!; wait $V1_PID
    sleep 0.5
    out=$(timeout 180 python3 "$(dirname "$0")/dashboard-check.py" --control "$CP" --data "$DP" --instance "$A" \
        --other-instance "$B" --source 127.0.0.2 --v1-pid "$V1_PID" --screenshot "$TMP/dashboard.png" 2>&1); rc=$?
    while IFS= read -r line; do
        case "$line" in "  ok "*) ok "dashboard:${line#  ok  }" ;; "  FAIL "*) not_ok "dashboard:${line#  FAIL}" "" ;; esac
    done <<<"$out"
    [ "$rc" -eq 0 ] || echo "$out" | grep -q FAIL || not_ok "dashboard check exited $rc" "$out"
    "$IMDS" options set --endpoint "$CP" --instance-id "$A" --http-tokens optional >/dev/null
fi

echo "# imds doctor names the instance it was answered as"
form() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$CP/" --data "Version=2016-11-15&$1"; }
check "CreateTags: C answers 127.0.0.1 too" "200" "$(form "Action=CreateTags&ResourceId.1=$C&Tag.1.Key=imds:caller-addresses&Tag.1.Value=127.0.0.1")"
doc=$("$IMDS" doctor --endpoint "$DP" 2>&1)
case "$doc" in *"answered as instance $C"*) ok "doctor from 127.0.0.1: answered as instance $C" ;; *) not_ok "doctor names the instance" "$doc" ;; esac
check "doctor --json: instanceId" "$C" "$("$IMDS" doctor --endpoint "$DP" --json | grep -o '"instanceId" *: *"[^"]*"' | grep -o 'i-[0-9a-f]*')"
check "DeleteTags: 127.0.0.1 is no instance's again" "200" "$(form "Action=DeleteTags&ResourceId.1=$C&Tag.1.Key=imds:caller-addresses")"

echo "# the identity certificate from the control plane of a server without a state dir"
if command -v openssl >/dev/null 2>&1; then
    "$IMDS" serve --config "$TMP/fleet.yaml" --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 >"$TMP/out2" 2>"$TMP/err2" &
    SERVER2_PID=$!
    disown "$SERVER2_PID" 2>/dev/null
    wait_listening "$SERVER2_PID" "$TMP/out2"
    DP2=$LISTEN_DP; CP2=$LISTEN_CP
    "$IMDS" identity certificate --endpoint "$CP2" >"$TMP/cert.pem" 2>"$TMP/stderr"
    check "identity certificate --endpoint: a PEM certificate" "0" "$(openssl x509 -in "$TMP/cert.pem" -noout >/dev/null 2>&1; echo $?)"
    openssl x509 -in "$TMP/cert.pem" -pubkey -noout >"$TMP/pub.pem" 2>/dev/null
    for n in 2 3; do
        t=$(as "$n" -X PUT "$DP2/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
        as "$n" -H "X-aws-ec2-metadata-token: $t" "$DP2/latest/dynamic/instance-identity/document" >"$TMP/doc$n"
        { as "$n" -H "X-aws-ec2-metadata-token: $t" "$DP2/latest/dynamic/instance-identity/signature"; echo; } | openssl base64 -d >"$TMP/sig$n" 2>/dev/null
        { echo "-----BEGIN PKCS7-----"; as "$n" -H "X-aws-ec2-metadata-token: $t" "$DP2/latest/dynamic/instance-identity/pkcs7"; echo; echo "-----END PKCS7-----"; } >"$TMP/p7$n.pem"
        id=$(grep -o '"instanceId" : "[^"]*"' "$TMP/doc$n" | grep -o 'i-[0-9a-f]*')
        check "127.0.0.$n's document ($id): signature verifies against the served certificate" "Verified OK" \
            "$(openssl dgst -sha256 -verify "$TMP/pub.pem" -signature "$TMP/sig$n" "$TMP/doc$n" 2>&1)"
        check "  ... and its pkcs7" "0" "$(openssl smime -verify -in "$TMP/p7$n.pem" -inform PEM -content "$TMP/doc$n" -certfile "$TMP/cert.pem" -noverify >/dev/null 2>&1; echo $?)"
    done
    check "the two documents are two instances'" "$A $B" "$(cat "$TMP/doc2" "$TMP/doc3" | grep -o '"instanceId" : "[^"]*"' | grep -o 'i-[0-9a-f]*' | xargs)"
    kill -TERM "$SERVER2_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$SERVER2_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER2_PID" 2>/dev/null
else
    echo "# skipped the certificate checks: openssl not installed"
fi

if command -v aws >/dev/null 2>&1; then
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
    unset AWS_MAX_ATTEMPTS AWS_RETRY_MODE AWS_PROFILE AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL 2>/dev/null
    ec2() { aws --endpoint-url "$CP" ec2 "$@"; }
    check "describe-instances lists the fleet" "$A $B $C" \
        "$(ec2 describe-instances --query 'Reservations[].Instances[].InstanceId' --output text | tr -s '\t\n' '  ' | xargs -n1 | sort | xargs)"
    ec2 modify-instance-metadata-options --instance-id "$B" --http-tokens required >/dev/null 2>"$TMP/stderr" \
        || not_ok "modify B" "$(cat "$TMP/stderr")"
    check "B requires tokens now: v1 401" "401" "$(status 3 "$DP/latest/meta-data/instance-id")"
    check "A still answers v1" "200" "$(status 2 "$DP/latest/meta-data/instance-id")"
    check "C still answers v1" "200" "$(status 4 "$DP/latest/meta-data/instance-id")"

    echo "# run-instances through the real AWS CLI"
    printf '#!/bin/sh\necho launched-by-cli\n' >"$TMP/boot.sh"
    run_out=$(ec2 run-instances --image-id ami-0123456789abcdef0 --instance-type t3.micro --private-ip-address 10.0.1.24 \
        --metadata-options HttpTokens=required,HttpEndpoint=enabled,HttpPutResponseHopLimit=2 \
        --iam-instance-profile Name=app-role --user-data "file://$TMP/boot.sh" \
        --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=web-2},{Key=imds:caller-addresses,Value=127.0.0.5}]' \
        --query 'Instances[0].[InstanceId,State.Name]' --output text 2>"$TMP/stderr")
    D=$(echo "$run_out" | cut -f1)
    check "run-instances replies pending" "pending" "$(echo "$run_out" | cut -f2)"
    check "127.0.0.5 is the launched instance at once" "$D" "$(get 5 /latest/meta-data/instance-id)"
    check "its user-data" "$(cat "$TMP/boot.sh")" "$(get 5 /latest/user-data)"
    check "its role" "app-role" "$(get 5 /latest/meta-data/iam/security-credentials/)"
    KD=$(get 5 /latest/meta-data/iam/security-credentials/app-role | grep -o '"AccessKeyId" *: *"[^"]*"')
    KA=$(get 2 /latest/meta-data/iam/security-credentials/role-a | grep -o '"AccessKeyId" *: *"[^"]*"')
    if [ -n "$KD" ] && [ -n "$KA" ] && [ "$KD" != "$KA" ]; then ok "its credentials are its own"; else not_ok "own credentials" "[$KD] vs [$KA]"; fi
    check "it requires tokens" "401" "$(status 5 "$DP/latest/meta-data/instance-id")"
    check "describe filter by http-tokens=required" "$(printf '%s\n' "$B" "$D" | sort | xargs)" \
        "$(ec2 describe-instances --filters Name=metadata-options.http-tokens,Values=required --query 'Reservations[].Instances[].InstanceId' --output text | xargs -n1 | sort | xargs)"
    DUP=$(ec2 run-instances --image-id ami-0123456789abcdef0 --private-ip-address 10.0.1.24 2>&1 >/dev/null)
    case "$DUP" in *InvalidIPAddress.InUse*) ok "a second launch on 10.0.1.24: InvalidIPAddress.InUse" ;; *) not_ok "duplicate address refused" "$DUP" ;; esac
    BAD=$(ec2 run-instances --image-id ami-0123456789abcdef0 --metadata-options HttpTokens=maybe 2>&1 >/dev/null)
    case "$BAD" in *InvalidParameterValue*) ok "bad MetadataOptions: InvalidParameterValue" ;; *) not_ok "bad MetadataOptions refused" "$BAD" ;; esac
    check "stop-instances: stopping" "stopping" "$(ec2 stop-instances --instance-ids "$D" --query 'StoppingInstances[0].CurrentState.Name' --output text)"
    check "a stopped instance is not served" "404" "$(status 5 "$DP/latest/meta-data/instance-id")"
    check "start-instances: pending" "pending" "$(ec2 start-instances --instance-ids "$D" --query 'StartingInstances[0].CurrentState.Name' --output text)"
    check "served again after start" "$D" "$(get 5 /latest/meta-data/instance-id)"
    TA=$(token 2)

    echo "# kill -9 and restart keep every launched instance"
    kill -9 "$SERVER_PID"; SERVER_PID=""
    start_server
    check "after restart 127.0.0.5 is still $D" "$D" "$(get 5 /latest/meta-data/instance-id)"
    check "A's token issued before the restart still works at A" "200" "$(status 2 -H "X-aws-ec2-metadata-token: $TA" "$DP/latest/meta-data/instance-id")"
    check "terminate-instances: shutting-down" "shutting-down" "$(ec2 terminate-instances --instance-ids "$D" --query 'TerminatingInstances[0].CurrentState.Name' --output text)"
    check "a terminated instance is gone at once" "404" "$(status 5 "$DP/latest/meta-data/instance-id")"
    check "describe shows it terminated" "terminated" "$(ec2 describe-instances --instance-ids "$D" --query 'Reservations[0].Instances[0].State.Name' --output text)"
else
    echo "# skipped the AWS CLI part: aws not installed"
fi

UNKNOWN=$(curl -s "$CP/metrics" | grep -c '^imds_unknown_caller_requests_total')
check "unknown callers counted in /metrics" "1" "$UNKNOWN"

kill -TERM "$SERVER_PID" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$SERVER_PID" 2>/dev/null; SERVER_PID=""
echo "fleet: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
