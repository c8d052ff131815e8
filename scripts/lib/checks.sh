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
