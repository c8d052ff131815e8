# Pass/fail bookkeeping shared by the script suites that print "ok - NAME" / "not ok - NAME" lines
# and end with "SUITE: N passed, M failed". Source it; it sets PASS and FAIL to 0.
PASS=0; FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $1"; [ $# -gt 1 ] && printf '    %s\n' "$2" | head -20; }
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "expected [$2], got [$3]"; fi
}
contains() { # contains NAME NEEDLE HAYSTACK
    case "$3" in *"$2"*) ok "$1" ;; *) not_ok "$1" "expected to contain [$2], got [$3]" ;; esac
}

# wait_listening PID OUT [head|tail]: waits (bounded, 30 s) until the `imds serve` PID, whose stdout
# goes to OUT, has said where its data and control planes listen (the first or, with tail, the last
# such lines); sets LISTEN_DP and LISTEN_CP. Returns 1 if the process ends first or time runs out.
wait_listening() {
    local pid=$1 out=$2 pick=${3:-head}
    LISTEN_DP=""; LISTEN_CP=""
    for _ in $(seq 1 300); do
        LISTEN_DP=$(grep -o 'data plane listening on http://[^ ]*' "$out" 2>/dev/null | "$pick" -1 | sed 's/.* on //')
        LISTEN_CP=$(grep -o 'control plane listening on http://[^ ]*' "$out" 2>/dev/null | "$pick" -1 | sed 's/.* on //')
        [ -n "$LISTEN_DP" ] && [ -n "$LISTEN_CP" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
