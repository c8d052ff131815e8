#!/usr/bin/env bash
# Runs every test of the project: installs what the tests need, builds once, runs the Swift tests,
# then the tests that drive the real `imds` binary with third-party clients (botocore, the AWS CLI,
# ec2-metadata, curl, ...). Usage: scripts/test.sh   (CI calls exactly this, from .ci/run)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export IMDS_BIN="$ROOT/.build/debug/imds"

passed=0
failed=0
failures=()
step() { echo; echo "=== $*"; }
record() { # record NAME PASSED FAILED
    passed=$((passed + $2)); failed=$((failed + $3))
    if [ "$3" -gt 0 ]; then failures+=("$1"); fi
}

step "installing test dependencies (apt, when root)"
# cloud-init (real EC2 datasource), tcpdump (hop-limit packets), iproute2 (namespaces), openssl, curl.
APT_PACKAGES="cloud-init tcpdump iproute2 openssl curl"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) \
            >/tmp/imds-apt.log 2>&1 || echo "apt-get install$missing failed (see /tmp/imds-apt.log); the tests that need them will say skipped"
    else
        echo "not root: not installing$missing; the tests that need them will say skipped"
    fi
fi

# Chromium (the dashboard checks of the fleet and observability suites) with its recommended
# packages (fonts), as test-observability.sh would install it: here, so the fleet suite, which runs
# first, has it too.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/tmp/imds-apt-chromium.log 2>&1 || \
        { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/tmp/imds-apt-chromium.log 2>&1; } || \
        echo "apt-get install chromium failed (see /tmp/imds-apt-chromium.log); the dashboard checks will say skipped"
fi

step "installing test dependencies (pip)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    awscli boto3 botocore ec2-metadata moto pytest 2>&1 | grep -v -i "warning" || true

step "building (debug, with tests)"
if ! swift build --build-tests 2>&1 | tail -n 25; then :; fi
if [ ! -x "$IMDS_BIN" ] || ! swift build --build-tests >/dev/null 2>&1; then
    echo "build failed"
    echo "tests: 0 passed, 1 failed"
    exit 1
fi

step "swift test"
swift test --skip-build 2>&1 | tee /tmp/imds-swift-test.log | grep -E "✘|recorded an issue|Test run|error:" || true
swift_count=$(grep -oE "Test run with [0-9]+ test" /tmp/imds-swift-test.log | grep -oE "[0-9]+" | tail -1)
if grep -qE "Test run with [0-9]+ tests? .*passed" /tmp/imds-swift-test.log && ! grep -q "✘" /tmp/imds-swift-test.log; then
    record "swift test" "${swift_count:-0}" 0
else
    fails=$(grep -oE "with [0-9]+ issues?" /tmp/imds-swift-test.log | grep -oE "[0-9]+" | tail -1)
    record "swift test" "${swift_count:-0}" "${fails:-1}"
fi

step "real clients (pytest)"
python3 -m pytest -q tests/python 2>&1 | tee /tmp/imds-pytest.log | tail -n 30
prc=${PIPESTATUS[0]}
p=$(grep -oE "[0-9]+ passed" /tmp/imds-pytest.log | tail -1 | grep -oE "[0-9]+")
f=$(grep -oE "[0-9]+ (failed|error)" /tmp/imds-pytest.log | awk '{s+=$1} END {print s+0}')
if [ "$prc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then f=1; fi
record "pytest" "${p:-0}" "${f:-0}"

# Script suites print "<name>: N passed, M failed" as their last line.
for script in scripts/test-*.sh; do
    [ -e "$script" ] || continue
    step "$script"
    out=$(bash "$script" "$IMDS_BIN" 2>&1); rc=$?
    echo "$out" | tail -n 40
    line=$(echo "$out" | grep -E "[0-9]+ passed, [0-9]+ failed" | tail -1)
    p=$(echo "$line" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+")
    f=$(echo "$line" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+")
    if [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; then f=1; fi
    record "$script" "${p:-0}" "${f:-0}"
done

echo
if [ ${#failures[@]} -gt 0 ]; then echo "failing suites: ${failures[*]}"; fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
