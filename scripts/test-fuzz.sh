#!/usr/bin/env bash
# libFuzzer harnesses (fuzz/, docs/fuzzing.md): builds them with -sanitize=fuzzer,address into
# .build-fuzz and runs each for FUZZ_SECONDS (default 60) from the committed seed corpus
# fuzz/corpus/<harness>/. Run by scripts/test.sh; the last line is "fuzz: N passed, M failed".
#   scripts/test-fuzz.sh                 # all of them, 60 s each
#   FUZZ_SECONDS=300 FUZZ_HARNESSES=FuzzEngine scripts/test-fuzz.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-60}
HARNESSES=${FUZZ_HARNESSES:-"FuzzEngine FuzzConfig FuzzControlPlane FuzzEC2Query FuzzSigV4 FuzzHTTPParser"}
SCRATCH=$ROOT/.build-fuzz

# The fuzzer runtime ships with the Swift toolchain on Linux (clang's libclang_rt.fuzzer).
swiftc_path=$(command -v swiftc || true)
runtime=""
if [ -n "$swiftc_path" ]; then
    toolchain=$(dirname "$(dirname "$(readlink -f "$swiftc_path")")")
    runtime=$(find "$toolchain/lib" -name 'libclang_rt.fuzzer*.a' 2>/dev/null | head -1)
fi
if [ "$(uname)" != Linux ] || [ -z "$runtime" ]; then
    echo "skipped: no libFuzzer runtime in the Swift toolchain (needs Linux and libclang_rt.fuzzer)"
    echo "fuzz: 0 passed, 0 failed"
    exit 0
fi

mkdir -p "$SCRATCH"
passed=0
failed=0
for h in $HARNESSES; do
    echo "--- building $h"
    if ! IMDS_FUZZ=1 swift build --scratch-path "$SCRATCH" --sanitize=fuzzer --sanitize=address --product "$h" \
        >"$SCRATCH/$h-build.log" 2>&1; then
        tail -n 30 "$SCRATCH/$h-build.log"
        echo "FAIL $h: build failed"
        failed=$((failed + 1))
        continue
    fi
    bin=$(IMDS_FUZZ=1 swift build --scratch-path "$SCRATCH" --show-bin-path)/$h
    work=$(mktemp -d)
    artifacts=$(mktemp -d)
    echo "--- running $h for ${SECONDS_EACH}s (seeds: fuzz/corpus/$h)"
    # New inputs go to a scratch corpus; the committed seeds are read only.
    # -detect_leaks=0: LeakSanitizer cannot follow Swift references stored in enum payloads with
    # spare bits (MetadataNode's cases), so it reports the harness's long-lived engines as leaked
    # at exit (libFuzzer's flag covers its per-input check, ASAN_OPTIONS the one at exit).
    # AddressSanitizer's memory errors and every crash are still caught.
    ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -detect_leaks=0 \
        -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$h" >"$work.log" 2>&1
    rc=$?
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)|INFO: seed corpus" "$work.log" | tail -n 4
    if [ $rc -eq 0 ]; then
        echo "PASS $h ($(grep -oE 'stat::number_of_executed_units: [0-9]+' "$work.log" | grep -oE '[0-9]+') inputs)"
        passed=$((passed + 1))
    else
        grep -E "invariant violated|ERROR: AddressSanitizer|Fatal error|SUMMARY|Test unit written" "$work.log" | head -n 10
        for a in "$artifacts"/*; do
            [ -e "$a" ] || continue
            echo "crashing input ($a), hex:"; od -An -tx1 "$a" | head -n 8
        done
        echo "FAIL $h (exit $rc): make the input a regression test and fix the bug"
        mkdir -p "$SCRATCH/findings/$h" && cp "$work.log" "$SCRATCH/findings/$h/run.log" && cp "$artifacts"/* "$SCRATCH/findings/$h/" 2>/dev/null
        echo "log and inputs kept in $SCRATCH/findings/$h"
        failed=$((failed + 1))
    fi
    rm -rf "$work" "$work.log" "$artifacts"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
