#!/usr/bin/env bash
# Drives the control plane of a built `imds` with the real AWS CLI and botocore:
#   scripts/test-control-plane.sh [path/to/imds]     (default .build/debug/imds)
# Installs nothing and builds nothing. Needs `aws` (pip install awscli boto3 botocore) and curl;
# prints "skipped: aws CLI not installed" and exits 0 without the AWS CLI.
# Prints "control-plane: N passed, M failed" last; exits non-zero on any failure.
set -u
IMDS=${1:-.build/debug/imds}
HERE=$(cd "$(dirname "$0")" && pwd)

if ! command -v aws >/dev/null 2>&1; then echo "skipped: aws CLI not installed"; exit 0; fi
if ! command -v curl >/dev/null 2>&1; then echo "skipped: curl not installed"; exit 0; fi
PY=${PYTHON:-python3}
if ! "$PY" -c 'import botocore' >/dev/null 2>&1; then echo "skipped: botocore not installed"; exit 0; fi
if [ ! -x "$IMDS" ]; then echo "control-plane: no imds binary at $IMDS (build it first: swift build)"; echo "control-plane: 0 passed, 1 failed"; exit 1; fi
IMDS=$(cd "$(dirname "$IMDS")" && pwd)/$(basename "$IMDS")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/imds-cp-test.XXXXXX")
SERVER_PIDS=()
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$HERE/lib/checks.sh"

# The AWS CLI and botocore: dummy credentials, no config files, no retries, no IMDS lookups.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=ap-northeast-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER=""
unset AWS_MAX_ATTEMPTS AWS_RETRY_MODE AWS_PROFILE AWS_SESSION_TOKEN AWS_REGION AWS_ENDPOINT_URL 2>/dev/null
ID=i-0abc1234def567890

# start_server NAME ARGS... : starts imds serve on port 0, waits (bounded) for both listening lines,
# sets DP, CP and SERVER_PID. Returns 1 if the server did not come up.
start_server() {
    local name=$1; shift
    local out="$TMP/$name.out" err="$TMP/$name.err"
    "$IMDS" serve --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 "$@" >"$out" 2>"$err" &
    SERVER_PID=$!
    disown "$SERVER_PID" 2>/dev/null  # no "Killed" job notices after kill -9
    SERVER_PIDS+=("$SERVER_PID")
    wait_listening "$SERVER_PID" "$out"; local up=$?
    DP=$LISTEN_DP; CP=$LISTEN_CP
    [ "$up" = 0 ] && return 0
    echo "    server $name did not start: $(cat "$err" "$out" 2>/dev/null | tail -5)"
    return 1
}
# wait_gone PID: waits (bounded, 10 s) for a process to exit, then kills it hard.
wait_gone() {
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
}
stop_server() { kill -TERM "$SERVER_PID" 2>/dev/null; wait_gone "$SERVER_PID"; }

ec2() { aws --endpoint-url "$CP" ec2 "$@"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
token() { curl -s -X PUT "$DP/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300"; }
# run_cli NAME: runs the rest, capturing stdout/stderr/status in OUT ERR RC.
run() { OUT=$("$@" 2>"$TMP/stderr"); RC=$?; ERR=$(cat "$TMP/stderr"); }
options_json() { ec2 describe-instances --instance-ids "$ID" --query "Reservations[*].Instances[*].MetadataOptions" --output json; }
field() { "$PY" -c "import json,sys; print(json.load(sys.stdin)[0][0]['$1'])"; }

echo "# server without a state dir"
STATE="$TMP/state"
if ! start_server nostate; then not_ok "imds serve starts"; echo "control-plane: $PASS passed, $((FAIL + 1)) failed"; exit 1; fi
check "memory-only notice printed once" 1 "$(grep -c 'kept in memory only' "$TMP/nostate.out")"
stop_server

echo "# AWS CLI against a server with --state-dir"
start_server main --state-dir "$STATE" || { echo "control-plane: $PASS passed, $((FAIL + 1)) failed"; exit 1; }

run options_json
check "describe-instances --query MetadataOptions exits 0" 0 "$RC"
check "MetadataOptions shape and launch defaults" \
    '[[{"State": "applied", "HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled", "InstanceMetadataTags": "disabled"}]]' \
    "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')"
run ec2 describe-instances --instance-ids "$ID" --query "Reservations[*].Instances[*].MetadataOptions" --output text
check "text output (keys sorted)" "enabled	disabled	1	optional	disabled	applied" "$OUT"
run ec2 describe-instances --output json
check "describe-instances shape" "$ID t3.micro ap-northeast-1a 10.0.1.23 203.0.113.10 running 123456789012 Name=web-1,Env=dev" \
    "$(printf '%s' "$OUT" | "$PY" -c '
import json,sys
d=json.load(sys.stdin); r=d["Reservations"][0]; i=r["Instances"][0]
print(i["InstanceId"], i["InstanceType"], i["Placement"]["AvailabilityZone"], i["PrivateIpAddress"], i["PublicIpAddress"], i["State"]["Name"], r["OwnerId"], ",".join(t["Key"]+"="+t["Value"] for t in i["Tags"]))')"
run ec2 describe-instances --filters Name=metadata-options.http-tokens,Values=required --query 'Reservations[]' --output json
check "filter metadata-options.http-tokens=required matches nothing yet" "[]" "$OUT"

check "v1 GET before the change" 200 "$(code "$DP/latest/meta-data/instance-id")"
run ec2 modify-instance-metadata-options --instance-id "$ID" --http-tokens required --http-endpoint enabled
check "modify --http-tokens required exits 0" 0 "$RC"
check "modify replies pending with the new options" "pending required 1 enabled" \
    "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; o=json.load(sys.stdin)["InstanceMetadataOptions"]; print(o["State"], o["HttpTokens"], o["HttpPutResponseHopLimit"], o["HttpEndpoint"])')"
check "v1 GET answers 401 right after required" 401 "$(code "$DP/latest/meta-data/instance-id")"
T=$(token)
check "v2 GET still 200" 200 "$(code -H "X-aws-ec2-metadata-token: $T" "$DP/latest/meta-data/instance-id")"
run options_json
check "describe shows applied/required" "applied required" "$(printf '%s' "$OUT" | field State) $(printf '%s' "$OUT" | field HttpTokens)"
run ec2 describe-instances --filters Name=metadata-options.http-tokens,Values=required --query 'Reservations[].Instances[].InstanceId' --output text
check "filter metadata-options.http-tokens=required matches now" "$ID" "$OUT"

run ec2 modify-instance-metadata-options --instance-id "$ID" --http-endpoint disabled
check "modify --http-endpoint disabled exits 0" 0 "$RC"
all403=yes
for p in / /latest/ /latest/meta-data/ /latest/meta-data/instance-id /latest/user-data /latest/dynamic/instance-identity/document; do
    c=$(code "$DP$p"); [ "$c" == 403 ] || { all403="no ($p → $c)"; break; }
    c=$(code -H "X-aws-ec2-metadata-token: $T" "$DP$p"); [ "$c" == 403 ] || { all403="no (v2 $p → $c)"; break; }
done
check "every path answers 403 when disabled" yes "$all403"
check "token PUT answers 403 when disabled" 403 "$(code -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$DP/latest/api/token")"
run options_json
check "omitted options kept their value" "required disabled" "$(printf '%s' "$OUT" | field HttpTokens) $(printf '%s' "$OUT" | field HttpEndpoint)"

run ec2 modify-instance-metadata-options --instance-id "$ID" --http-endpoint enabled
check "v2 GET 200 after enabled" 200 "$(code -H "X-aws-ec2-metadata-token: $(token)" "$DP/latest/meta-data/instance-id")"
check "v1 GET still 401" 401 "$(code "$DP/latest/meta-data/instance-id")"
run ec2 modify-instance-metadata-options --instance-id "$ID" --http-tokens optional --http-put-response-hop-limit 3
check "v1 GET 200 after optional" 200 "$(code "$DP/latest/meta-data/instance-id")"
check "token PUT leaves with the new hop limit (accepted)" 200 "$(code -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$DP/latest/api/token")"

echo "# errors as the AWS CLI prints them"
expect_cli_error() { # NAME CODE OPERATION MESSAGE-FRAGMENT -- args
    local name=$1 c=$2 op=$3 frag=$4; shift 5
    run ec2 "$@"
    if [ "$RC" == 255 ] && [ -z "$OUT" ] && [[ "$ERR" == *"An error occurred ($c) when calling the $op operation: $frag"* ]]; then
        ok "$name"
    else
        not_ok "$name" "rc=$RC stdout=[$OUT] stderr=[$ERR]"
    fi
}
expect_cli_error "unknown instance → InvalidInstanceID.NotFound" InvalidInstanceID.NotFound ModifyInstanceMetadataOptions \
    "The instance ID 'i-0badbadbadbadbad0' does not exist" -- modify-instance-metadata-options --instance-id i-0badbadbadbadbad0 --http-tokens required
expect_cli_error "describe unknown instance" InvalidInstanceID.NotFound DescribeInstances "The instance ID 'i-0badbadbadbadbad0' does not exist" \
    -- describe-instances --instance-ids i-0badbadbadbadbad0
expect_cli_error "malformed id → InvalidInstanceID.Malformed" InvalidInstanceID.Malformed ModifyInstanceMetadataOptions "Invalid id" \
    -- modify-instance-metadata-options --instance-id i-123 --http-tokens required
expect_cli_error "hop limit 0 → InvalidParameterValue" InvalidParameterValue ModifyInstanceMetadataOptions "The HttpPutResponseHopLimit value 0 is not valid" \
    -- modify-instance-metadata-options --instance-id "$ID" --http-put-response-hop-limit 0
expect_cli_error "hop limit 65 → InvalidParameterValue" InvalidParameterValue ModifyInstanceMetadataOptions "The HttpPutResponseHopLimit value 65 is not valid" \
    -- modify-instance-metadata-options --instance-id "$ID" --http-put-response-hop-limit 65
expect_cli_error "http-tokens maybe → InvalidParameterValue" InvalidParameterValue ModifyInstanceMetadataOptions "A value of 'maybe' is not valid for HttpTokens" \
    -- modify-instance-metadata-options --instance-id "$ID" --http-tokens maybe
expect_cli_error "unsupported action → InvalidAction" InvalidAction DescribeVolumes "The action DescribeVolumes is not valid for this web service." \
    -- describe-volumes
expect_cli_error "bad filter → InvalidParameterValue" InvalidParameterValue DescribeInstances "The filter 'flavour' is invalid" \
    -- describe-instances --filters Name=flavour,Values=x
expect_cli_error "--dry-run → DryRunOperation" DryRunOperation ModifyInstanceMetadataOptions "Request would have succeeded, but DryRun flag is set." \
    -- modify-instance-metadata-options --instance-id "$ID" --http-tokens required --dry-run
run curl -s -w ' %{http_code}' -X POST --data 'Action=ModifyInstanceMetadataOptions&Version=2016-11-15&HttpTokens=required' "$CP/"
contains "missing InstanceId → MissingParameter (400)" "<Code>MissingParameter</Code>" "$OUT"
contains "MissingParameter status" " 400" "$OUT"

echo "# account defaults"
run ec2 get-instance-metadata-defaults --output json
check "get-instance-metadata-defaults with nothing set" '{"AccountLevel": {"ManagedBy": "account"}}' "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')"
run ec2 modify-instance-metadata-defaults --http-tokens required --http-put-response-hop-limit 2 --http-tokens-enforced enabled
check "modify-instance-metadata-defaults returns true" '{"Return": true}' "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')"
run ec2 get-instance-metadata-defaults --output json
check "defaults read back" "required 2 enabled" "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; a=json.load(sys.stdin)["AccountLevel"]; print(a["HttpTokens"], a["HttpPutResponseHopLimit"], a["HttpTokensEnforced"])')"
run options_json
check "existing instance unaffected by new defaults" "optional 3" "$(printf '%s' "$OUT" | field HttpTokens) $(printf '%s' "$OUT" | field HttpPutResponseHopLimit)"
run ec2 modify-instance-metadata-options --instance-id "$ID" --http-tokens required
expect_cli_error "HttpTokensEnforced blocks a return to optional" UnsupportedOperation ModifyInstanceMetadataOptions "IMDSv1 cannot be enabled on instance $ID because HttpTokensEnforced is enabled" \
    -- modify-instance-metadata-options --instance-id "$ID" --http-tokens optional
check "still v2-only after the refused change" 401 "$(code "$DP/latest/meta-data/instance-id")"
run ec2 modify-instance-metadata-defaults --http-tokens-enforced no-preference --http-put-response-hop-limit -1
run ec2 get-instance-metadata-defaults --output json
check "no-preference and -1 clear defaults" '{"AccountLevel": {"HttpTokens": "required", "ManagedBy": "account"}}' "$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')"

echo "# tags"
run ec2 modify-instance-metadata-options --instance-id "$ID" --instance-metadata-tags enabled
T=$(token)
check "tags/instance/Name visible" "web-1" "$(curl -s -H "X-aws-ec2-metadata-token: $T" "$DP/latest/meta-data/tags/instance/Name")"
run ec2 create-tags --resources "$ID" --tags Key=Team,Value=payments Key=Name,Value=web-2
check "create-tags exits 0" 0 "$RC"
check "new tag on the data plane at once" "payments" "$(curl -s -H "X-aws-ec2-metadata-token: $T" "$DP/latest/meta-data/tags/instance/Team")"
check "changed tag on the data plane at once" "web-2" "$(curl -s -H "X-aws-ec2-metadata-token: $T" "$DP/latest/meta-data/tags/instance/Name")"
run ec2 describe-tags --filters "Name=resource-id,Values=$ID" --query 'Tags[].[Key,Value,ResourceType]' --output text
check "describe-tags" "$(printf 'Env\tdev\tinstance\nName\tweb-2\tinstance\nTeam\tpayments\tinstance')" "$OUT"
run ec2 delete-tags --resources "$ID" --tags Key=Team
check "deleted tag gone from the data plane" 404 "$(code -H "X-aws-ec2-metadata-token: $T" "$DP/latest/meta-data/tags/instance/Team")"
expect_cli_error "tag key not allowed in metadata" InvalidParameterValue CreateTags "The tag key 'a/b' is not allowed while instance metadata tags are enabled" \
    -- create-tags --resources "$ID" --tags "Key=a/b,Value=x"

echo "# planes are separate"
run curl -s -w ' %{http_code}' -X POST --data 'Action=DescribeInstances&Version=2016-11-15' "$DP/"
case "$OUT" in *"<DescribeInstancesResponse"*) not_ok "data plane does not answer the EC2 API" "$OUT" ;; *) ok "data plane does not answer the EC2 API" ;; esac
run curl -s -w ' %{http_code}' "$CP/latest/meta-data/instance-id"
case "$OUT" in *"$ID"*) not_ok "control plane does not serve metadata" "$OUT" ;; *"<Code>MissingAction</Code>"*" 400") ok "control plane does not serve metadata" ;; *) not_ok "control plane does not serve metadata" "$OUT" ;; esac

echo "# imds options"
run "$IMDS" options show --endpoint "$CP"
contains "imds options show" "http-tokens                  required" "$OUT"
run "$IMDS" options set --endpoint "$CP" --http-tokens optional --hop-limit 4 --json
check "imds options set --json" "0 pending optional 4" "$RC $(printf '%s' "$OUT" | "$PY" -c 'import json,sys; o=json.load(sys.stdin); print(o["State"], o["HttpTokens"], o["HttpPutResponseHopLimit"])')"
check "v1 GET 200 after imds options set" 200 "$(code "$DP/latest/meta-data/instance-id")"
run "$IMDS" options set --endpoint "$CP" --instance-id i-0badbadbadbadbad0 --http-tokens required
check "imds options on an EC2 error exits 1" 1 "$RC"
contains "imds options prints the EC2 error" "InvalidInstanceID.NotFound" "$ERR"
run "$IMDS" options show --endpoint http://127.0.0.1:1
check "imds options without a server exits 3" 3 "$RC"
contains "imds options names the connection problem" "cannot connect" "$ERR"

echo "# restart with the same state dir"
run options_json
BEFORE=$OUT
stop_server
start_server main2 --state-dir "$STATE" || not_ok "restart"
contains "restart says it restored the state" "restored the control-plane state" "$(cat "$TMP/main2.out")"
run options_json
check "options survive a restart" "$BEFORE" "$OUT"
run ec2 describe-tags --query 'Tags[].Key' --output text
check "tags survive a restart" "$(printf 'Env\tName')" "$OUT"
run ec2 get-instance-metadata-defaults --query AccountLevel.HttpTokens --output text
check "defaults survive a restart" "required" "$OUT"
stop_server

echo "# account defaults apply to instances launched afterwards"
cat >"$TMP/other.yaml" <<YAML
instance:
  instance-id: i-0fedcba9876543210
YAML
start_server other --state-dir "$STATE" --config "$TMP/other.yaml" || not_ok "start with another instance"
run ec2 describe-instances --query "Reservations[*].Instances[*].MetadataOptions" --output json
check "a new instance launches with the account default (required)" "required 1" "$(printf '%s' "$OUT" | field HttpTokens) $(printf '%s' "$OUT" | field HttpPutResponseHopLimit)"
stop_server

echo "# precedence: config > AMI ImdsSupport v2.0 > account defaults > EC2 defaults"
cat >"$TMP/ami.yaml" <<YAML
instance:
  ami-imds-support: v2.0
account-defaults:
  http-tokens: optional
  http-put-response-hop-limit: 5
  http-endpoint: enabled
YAML
start_server ami --config "$TMP/ami.yaml" || not_ok "start with an AMI config"
run options_json
check "AMI v2.0 over account defaults: required, hop 2" "required 2" "$(printf '%s' "$OUT" | field HttpTokens) $(printf '%s' "$OUT" | field HttpPutResponseHopLimit)"
stop_server
cat >"$TMP/explicit.yaml" <<YAML
instance:
  ami-imds-support: v2.0
  metadata-options:
    http-tokens: optional
account-defaults:
  http-put-response-hop-limit: 5
YAML
start_server explicit --config "$TMP/explicit.yaml" || not_ok "start with explicit options"
run options_json
check "explicit config over AMI" "optional 2" "$(printf '%s' "$OUT" | field HttpTokens) $(printf '%s' "$OUT" | field HttpPutResponseHopLimit)"
stop_server

echo "# access rules"
run "$IMDS" serve --listen 127.0.0.1:0 --control-listen 0.0.0.0:0
check "non-loopback control plane without keys refuses to start" 1 "$RC"
contains "refusal says why" "without access keys" "$ERR"
cat >"$TMP/keys.yaml" <<YAML
control-plane:
  access-keys:
    - access-key-id: AKIDIMDSTEST
      secret-access-key: imds-test-secret-0123456789
    - access-key-id: AKIDREADONLY
      secret-access-key: imds-readonly-secret
      read-only: true
YAML
start_server keys --config "$TMP/keys.yaml" || not_ok "start with keys"
run env AWS_ACCESS_KEY_ID=AKIDIMDSTEST AWS_SECRET_ACCESS_KEY=imds-test-secret-0123456789 aws --endpoint-url "$CP" ec2 describe-instances --query 'Reservations[].Instances[].InstanceId' --output text
check "AWS CLI with the configured key" "$ID" "$OUT"
run env AWS_ACCESS_KEY_ID=AKIDIMDSTEST AWS_SECRET_ACCESS_KEY=wrong aws --endpoint-url "$CP" ec2 describe-instances
check "AWS CLI with a wrong secret exits 255" 255 "$RC"
contains "wrong secret → SignatureDoesNotMatch" "An error occurred (SignatureDoesNotMatch) when calling the DescribeInstances operation" "$ERR"
run aws --endpoint-url "$CP" ec2 describe-instances
contains "unknown key → AuthFailure" "An error occurred (AuthFailure)" "$ERR"
run env IMDS_CONTROL_ACCESS_KEY_ID=AKIDIMDSTEST IMDS_CONTROL_SECRET_ACCESS_KEY=imds-test-secret-0123456789 "$IMDS" options set --endpoint "$CP" --http-tokens required
check "imds options signs with the configured key" 0 "$RC"
run "$PY" - "$CP" "$ID" <<'PYEOF'
import datetime, sys, urllib.request, urllib.error
import botocore.session, botocore.auth, botocore.awsrequest, botocore.credentials
from botocore.exceptions import ClientError
cp, iid = sys.argv[1], sys.argv[2]
fails = []
def expect(name, cond, detail=""):
    print(("ok" if cond else "FAIL"), name, detail)
    if not cond: fails.append(name)
def client(key, secret):
    s = botocore.session.get_session()
    return s.create_client("ec2", region_name="ap-northeast-1", endpoint_url=cp,
                           aws_access_key_id=key, aws_secret_access_key=secret)
good = client("AKIDIMDSTEST", "imds-test-secret-0123456789")
r = good.describe_instances(InstanceIds=[iid])
expect("botocore signed describe", r["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"] == "required")
r = good.modify_instance_metadata_options(InstanceId=iid, HttpPutResponseHopLimit=2, HttpEndpoint="enabled")
expect("botocore signed modify", r["InstanceMetadataOptions"]["State"] == "pending" and r["InstanceMetadataOptions"]["HttpPutResponseHopLimit"] == 2)
for name, key, secret, code, status in [
        ("wrong secret", "AKIDIMDSTEST", "not-the-secret", "SignatureDoesNotMatch", 403),
        ("unknown key", "AKIDNOBODY", "imds-test-secret-0123456789", "AuthFailure", 401)]:
    try:
        client(key, secret).describe_instances()
        expect(name + " refused", False, "accepted")
    except ClientError as e:
        expect(name + " refused", e.response["Error"]["Code"] == code and e.response["ResponseMetadata"]["HTTPStatusCode"] == status,
               f'{e.response["Error"]["Code"]} {e.response["ResponseMetadata"]["HTTPStatusCode"]}')
try:
    client("AKIDREADONLY", "imds-readonly-secret").modify_instance_metadata_options(InstanceId=iid, HttpTokens="optional")
    expect("read-only key cannot modify", False, "accepted")
except ClientError as e:
    expect("read-only key cannot modify", e.response["Error"]["Code"] == "UnauthorizedOperation")
# A request signed 20 minutes ago.
body = "Action=DescribeInstances&Version=2016-11-15"
req = botocore.awsrequest.AWSRequest(method="POST", url=cp + "/", data=body.encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
auth = botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKIDIMDSTEST", "imds-test-secret-0123456789"), "ec2", "ap-northeast-1")
import unittest.mock
stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
with unittest.mock.patch.object(botocore.auth, "get_current_datetime", lambda: stale):
    auth.add_auth(req)
p = req.prepare()
try:
    urllib.request.urlopen(urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method="POST"), timeout=10)
    expect("stale X-Amz-Date refused", False, "accepted")
except urllib.error.HTTPError as e:
    text = e.read().decode()
    expect("stale X-Amz-Date refused", e.code == 400 and "<Code>RequestExpired</Code>" in text, f"{e.code} {text[:200]}")
# Unsigned.
try:
    urllib.request.urlopen(urllib.request.Request(cp + "/", data=body.encode(), method="POST"), timeout=10)
    expect("unsigned request refused", False, "accepted")
except urllib.error.HTTPError as e:
    expect("unsigned request refused", e.code == 403 and "MissingAuthenticationToken" in e.read().decode())
# A captured signature replayed with another body (issue 16.1): refused with and without an
# X-Amz-Content-Sha256 header naming the captured body's hash, and nothing changes.
def signed(body, extra=None):
    req = botocore.awsrequest.AWSRequest(method="POST", url=cp + "/", data=body.encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(extra or {})})
    auth.add_auth(req)
    return req.prepare()
def post(p, body):
    try:
        headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}
        with urllib.request.urlopen(urllib.request.Request(p.url, data=body.encode(), headers=headers, method="POST"), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
import hashlib
evil = "Action=ModifyInstanceMetadataDefaults&Version=2016-11-15&HttpTokens=optional"
captured = "Action=DescribeInstances&Version=2016-11-15"
p = signed(captured)
status, _ = post(p, captured)
expect("captured request verifies as sent", status == 200, str(status))
status, text = post(p, evil)
expect("replayed with another body: refused", status == 403 and "SignatureDoesNotMatch" in text, f"{status} {text[:160]}")
p = signed(captured, {"X-Amz-Content-Sha256": hashlib.sha256(captured.encode()).hexdigest()})
status, _ = post(p, captured)
expect("signed X-Amz-Content-Sha256 matching the body verifies", status == 200, str(status))
status, text = post(p, evil)
expect("signed X-Amz-Content-Sha256 replayed with another body: refused", status == 400 and "XAmzContentSHA256Mismatch" in text, f"{status} {text[:160]}")
p = signed(captured, {"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"})
status, text = post(p, evil)
expect("UNSIGNED-PAYLOAD refused", status == 400 and "XAmzContentSHA256Mismatch" in text, f"{status} {text[:160]}")
d = good.get_instance_metadata_defaults()["AccountLevel"]
expect("defaults unchanged after the replays", d.get("HttpTokens") != "optional", str(d))
sys.exit(1 if fails else 0)
PYEOF
echo "$OUT" | sed 's/^/    /'
check "botocore SigV4 checks" 0 "$RC"
stop_server

echo "# botocore without keys (loopback), same flow as the CLI"
start_server boto || not_ok "start for botocore"
run "$PY" - "$CP" "$DP" "$ID" <<'PYEOF'
import sys, urllib.request, urllib.error
import botocore.session
from botocore.exceptions import ClientError
cp, dp, iid = sys.argv[1:4]
fails = []
def expect(name, cond, detail=""):
    print(("ok" if cond else "FAIL"), name, detail)
    if not cond: fails.append(name)
def v1():
    try: return urllib.request.urlopen(dp + "/latest/meta-data/instance-id", timeout=5).status
    except urllib.error.HTTPError as e: return e.code
ec2 = botocore.session.get_session().create_client("ec2", region_name="us-east-1", endpoint_url=cp,
        aws_access_key_id="anything", aws_secret_access_key="anything")
mo = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
expect("describe", mo == {"State": "applied", "HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled", "InstanceMetadataTags": "disabled"}, str(mo))
r = ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required", HttpEndpoint="enabled")
expect("modify pending", r["InstanceMetadataOptions"]["State"] == "pending")
expect("v1 401 after required", v1() == 401)
ec2.modify_instance_metadata_options(InstanceId=iid, HttpEndpoint="disabled")
expect("403 after disabled", v1() == 403)
ec2.modify_instance_metadata_options(InstanceId=iid, HttpEndpoint="enabled", HttpTokens="optional")
expect("200 after enabled+optional", v1() == 200)
for name, kwargs, code in [
        ("NotFound", dict(InstanceId="i-0badbadbadbadbad0", HttpTokens="required"), "InvalidInstanceID.NotFound"),
        ("Malformed", dict(InstanceId="i-bad", HttpTokens="required"), "InvalidInstanceID.Malformed"),
        ("hop 65", dict(InstanceId=iid, HttpPutResponseHopLimit=65), "InvalidParameterValue"),
        ("dry run", dict(InstanceId=iid, HttpTokens="required", DryRun=True), "DryRunOperation")]:
    try:
        ec2.modify_instance_metadata_options(**kwargs)
        expect(name, False, "accepted")
    except ClientError as e:
        expect(name, e.response["Error"]["Code"] == code, e.response["Error"]["Code"])
d = ec2.get_instance_metadata_defaults()["AccountLevel"]
expect("defaults", d == {"ManagedBy": "account"}, str(d))
sys.exit(1 if fails else 0)
PYEOF
echo "$OUT" | sed 's/^/    /'
check "botocore ec2 client flow" 0 "$RC"
stop_server

echo "# crash test: kill -9 during a stream of modifications"
CRASH="$TMP/crash"
for round in 1 2 3; do
    start_server "crash$round" --state-dir "$CRASH" || { not_ok "crash round $round: start"; continue; }
    run "$PY" - "$CP" "$ID" "$SERVER_PID" "$round" <<'PYEOF'
import json, os, random, signal, sys, threading, time
import botocore.session, botocore.config
cp, iid, pid, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
random.seed(os.getpid() + rnd)
ec2 = botocore.session.get_session().create_client("ec2", region_name="us-east-1", endpoint_url=cp,
        aws_access_key_id="x", aws_secret_access_key="x",
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
delay = random.uniform(0.3, 1.5)
threading.Timer(delay, lambda: os.kill(pid, signal.SIGKILL)).start()
acked, inflight = None, None
start = time.monotonic()
for n in range(1, 5001):  # bounded; the kill normally lands long before
    want = {"HttpPutResponseHopLimit": n % 64 + 1, "HttpTokens": "required" if n % 2 else "optional"}
    inflight = want
    try:
        ec2.modify_instance_metadata_options(InstanceId=iid, **want)
    except Exception:
        break
    acked, inflight = want, None
    if time.monotonic() - start > 30: break
print(json.dumps({"acked": acked, "inflight": inflight, "delay": round(delay, 2)}))
PYEOF
    wait_gone "$SERVER_PID"
    RESULT=$OUT
    if [ -s "$CRASH/store.journal" ] && [ "$(head -c 8 "$CRASH/store.journal")" = IMDSJNL1 ]; then
        ok "crash round $round: the journal is there after kill -9"
    else
        not_ok "crash round $round: the journal is there after kill -9" "$(ls -la "$CRASH" 2>&1)"
    fi
    start_server "crash${round}b" --state-dir "$CRASH" || { not_ok "crash round $round: restart"; continue; }
    run options_json
    VERDICT=$(printf '%s' "$OUT" | "$PY" -c '
import json, sys
res = json.loads(sys.argv[1]); mo = json.load(sys.stdin)[0][0]
have = {"HttpPutResponseHopLimit": mo["HttpPutResponseHopLimit"], "HttpTokens": mo["HttpTokens"]}
ok = have == res["acked"] or (res["inflight"] is not None and have == res["inflight"])
print("match" if ok else "mismatch: have %s, last acknowledged %s, in flight %s" % (have, res["acked"], res["inflight"]))' "$RESULT")
    check "crash round $round: restart has the last acknowledged change ($(printf '%s' "$RESULT" | tr -d '\n'))" match "$VERDICT"
    stop_server
done

echo "# admin API changes survive kill -9 (token invalidation is durable before it is acknowledged)"
ADMIN="$TMP/admin"; mkdir -p "$ADMIN"
start_server admin1 --state-dir "$ADMIN" || not_ok "admin: start"
OLD=$(token)
check "admin: the token works before the invalidation" 200 "$(code -H "X-aws-ec2-metadata-token: $OLD" "$DP/latest/meta-data/instance-id")"
check "admin: invalidate is acknowledged" 200 "$(code -X POST "$CP/admin/v1/tokens/invalidate")"
check "admin: the old token is refused at once" 401 "$(code -H "X-aws-ec2-metadata-token: $OLD" "$DP/latest/meta-data/instance-id")"
check "admin: an event is acknowledged" 201 "$(code -X POST "$CP/admin/v1/events" -H 'Content-Type: application/json' -d '{"type":"rebalance-recommendation"}')"
check "admin: a fault is acknowledged" 201 "$(code -X POST "$CP/admin/v1/faults" -H 'Content-Type: application/json' -d '{"type":"throttle","path":"/latest/meta-data/ami-id"}')"
kill -9 "$SERVER_PID"; wait_gone "$SERVER_PID"
start_server admin2 --state-dir "$ADMIN" || not_ok "admin: restart after kill -9"
check "admin: the invalidated token is still refused after kill -9 and a restart" 401 "$(code -H "X-aws-ec2-metadata-token: $OLD" "$DP/latest/meta-data/instance-id")"
NEW=$(token)
check "admin: a new token works after the restart" 200 "$(code -H "X-aws-ec2-metadata-token: $NEW" "$DP/latest/meta-data/instance-id")"
contains "admin: the event survives" "noticeTime" "$(curl -s "$DP/latest/meta-data/events/recommendations/rebalance")"
check "admin: the fault survives" 429 "$(code "$DP/latest/meta-data/ami-id")"
stop_server

echo "# corrupt state file"
CORRUPT="$TMP/corrupt"; mkdir -p "$CORRUPT"
printf '{"format": 1, "sequence": 3, "instances": {' >"$CORRUPT/control-plane.json"
run "$IMDS" serve --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 --state-dir "$CORRUPT"
check "corrupt state file: imds serve exits 1" 1 "$RC"
contains "corrupt state file: error names the file" "$CORRUPT/control-plane.json is not valid" "$ERR"

echo "control-plane: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
