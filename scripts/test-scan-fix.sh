#!/usr/bin/env bash
# Proves `imds scan --fix` with real bash against a v2-only imds:
#   1. the runnable corpus scripts (Tests/IMDSScanTests/Corpus/runnable/*, each with a .expected file)
#      are reported by `imds scan`;
#   2. run as written (IMDSv1) against an imds with http-tokens: required, they fail or print the
#      wrong thing (401 pages);
#   3. `imds scan --fix` rewrites them, leaving FILE.imds-bak identical to the original;
#   4. the rewritten scripts run under bash with exit 0 and print exactly the .expected output;
#   5. `imds scan` then reports them clean, and a second --fix changes nothing.
# The scripts name 169.254.169.254; to run them we substitute the server's 127.0.0.1:PORT in a copy
# (after the scan and the fix, so the scanner sees the real address).
#
# Usage: scripts/test-scan-fix.sh [path/to/imds]   (default .build/debug/imds)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build/debug/imds}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
CORPUS=$ROOT/Tests/IMDSScanTests/Corpus/runnable

if [ ! -x "$BIN" ]; then
    echo "scan-fix: $BIN is not an executable (build it with: swift build --product imds)" >&2
    exit 2
fi

PASS=0
FAIL=0
pass() { PASS=$((PASS + 1)); echo "  ok   $*"; }
fail() { FAIL=$((FAIL + 1)); echo "  FAIL $*"; }

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- a v2-only server on a free port ---------------------------------------------------------
cat > "$TMP/v2-only.yaml" <<'YAML'
instance:
  metadata-options:
    http-tokens: required
YAML
"$BIN" serve --config "$TMP/v2-only.yaml" --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 > "$TMP/serve.log" 2>&1 &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
    URL=$(sed -n 's/.*data plane listening on \(http:\/\/[^ ]*\).*/\1/p' "$TMP/serve.log" | head -n 1)
    [ -n "$URL" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "scan-fix: imds serve did not start:" >&2
    cat "$TMP/serve.log" >&2
    echo "scan-fix: 0 passed, 1 failed"
    exit 1
fi
HOSTPORT=${URL#http://}
echo "scan-fix: v2-only imds at $URL"

# Check the server really is v2-only, so that the failures below mean what they say.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL/latest/meta-data/instance-id")
if [ "$code" = "401" ]; then pass "server rejects IMDSv1 (401)"; else fail "server answered $code to a v1 GET, expected 401"; fi

# --- the scripts ---------------------------------------------------------------------------------
WORK=$TMP/work
mkdir -p "$WORK" "$TMP/run-v1" "$TMP/run-v2"
NAMES=()
for expected in "$CORPUS"/*.expected; do
    base=$(basename "$expected" .expected)
    script=$(ls "$CORPUS/$base".* 2>/dev/null | grep -v '\.expected$' | head -n 1)
    [ -n "$script" ] || { fail "$base: no script next to $expected"; continue; }
    cp "$script" "$WORK/"
    NAMES+=("$(basename "$script")")
done
echo "scan-fix: ${#NAMES[@]} scripts"

# Runs a script under bash with the metadata address pointed at the server; prints its stdout.
run_script() { # file
    local copy=$1.run
    sed "s/169\.254\.169\.254/$HOSTPORT/g" "$1" > "$copy"
    timeout 30 bash "$copy" 2>/dev/null
}

# 1. reported before the fix
for name in "${NAMES[@]}"; do
    if "$BIN" scan --quiet "$WORK/$name"; then fail "$name: imds scan found nothing before --fix"; else
        [ $? -eq 1 ] && pass "$name: reported by imds scan (exit 1)" || fail "$name: imds scan exit status not 1"
    fi
done

# 2. the v1 originals fail against the v2-only server
for name in "${NAMES[@]}"; do
    base=${name%.*}
    cp "$WORK/$name" "$TMP/run-v1/$name"
    out=$(run_script "$TMP/run-v1/$name"); status=$?
    if [ $status -ne 0 ] || [ "$out" != "$(cat "$CORPUS/$base.expected")" ]; then
        if [ $status -ne 0 ]; then why="exit $status"; else why="exit 0 but wrong output (401 page)"; fi
        pass "$name: v1 original rejected under http-tokens=required ($why)"
    else
        fail "$name: v1 original printed the expected output against a v2-only server"
    fi
done

# 3. --fix
"$BIN" scan --fix "$WORK" > "$TMP/fix.out" 2>&1
status=$?
if [ $status -eq 0 ]; then pass "imds scan --fix: exit 0, everything fixed"; else fail "imds scan --fix: exit $status"; cat "$TMP/fix.out"; fi
for name in "${NAMES[@]}"; do
    if cmp -s "$WORK/$name.imds-bak" "$CORPUS/$name"; then pass "$name: backup $name.imds-bak holds the original"; else fail "$name: backup missing or different"; fi
done

# 4. the fixed scripts work
for name in "${NAMES[@]}"; do
    base=${name%.*}
    cp "$WORK/$name" "$TMP/run-v2/$name"
    out=$(run_script "$TMP/run-v2/$name"); status=$?
    want=$(cat "$CORPUS/$base.expected")
    if [ $status -eq 0 ] && [ "$out" = "$want" ]; then
        pass "$name: fixed script exits 0 and prints the expected values"
    else
        fail "$name: fixed script exit $status, output:"
        printf '%s\n' "$out" | sed 's/^/         | /'
        echo "         expected:"
        printf '%s\n' "$want" | sed 's/^/         | /'
    fi
done

# 5. clean afterwards, and a second --fix changes nothing
if "$BIN" scan "$WORK" > "$TMP/rescan.out" 2>&1; then pass "imds scan after --fix: clean (exit 0)"; else fail "imds scan after --fix: $(cat "$TMP/rescan.out")"; fi
before=$(cd "$WORK" && md5sum "${NAMES[@]}")
"$BIN" scan --fix --quiet "$WORK"
after=$(cd "$WORK" && md5sum "${NAMES[@]}")
if [ "$before" = "$after" ]; then pass "second --fix changes nothing"; else fail "second --fix changed files"; fi

# 6. the command's contract: exit codes and --json
"$BIN" scan --quiet "$TMP/does-not-exist" 2>/dev/null; status=$?
[ $status -eq 2 ] && pass "missing path: exit 2" || fail "missing path: exit $status, expected 2"
"$BIN" scan 2>/dev/null; status=$?
[ $status -eq 2 ] && pass "no path: exit 2" || fail "no path: exit $status, expected 2"
"$BIN" scan --json "$TMP/run-v1" > "$TMP/scan.json" 2>/dev/null; status=$?
if [ $status -eq 1 ] && python3 - "$TMP/scan.json" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))
assert items, "no findings"
for f in items:
    assert set(f) >= {"file", "line", "language", "kind", "url", "reason", "fixable"}, f
    assert isinstance(f["line"], int) and f["line"] > 0
    assert f["language"] == "shell" and f["kind"] in ("curl", "wget") and f["fixable"] is True
PY
then pass "--json: exit 1 and an array of findings with the documented keys"; else fail "--json output or exit status ($status)"; fi

echo "scan-fix: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
