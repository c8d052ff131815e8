#!/usr/bin/env bash
# Builds an older revision of imds (release) outside the checkout, for a before/after pair in one
# load run (docs/benchmarks.md):
#
#   benchmarks/baseline.sh 68c9a3b             # prints the binary's path
#   IMDS_BASELINE_BIN=$(benchmarks/baseline.sh 68c9a3b) IMDS_BASELINE_LABEL=68c9a3b benchmarks/load.sh
#
# The revision's tree goes to /tmp/imds-baseline-<rev> (git archive: the repository is not touched)
# and is built there with its own scratch path; a second call reuses the build.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: benchmarks/baseline.sh <revision>}"
full="$(git rev-parse --verify "$rev^{commit}")"
dir="/tmp/imds-baseline-${full:0:12}"
if [ ! -f "$dir/Package.swift" ]; then
    mkdir -p "$dir"
    git archive "$full" | tar -x -C "$dir"
    # The same dependency versions as this checkout (the packages on this machine).
    [ -f Package.resolved ] && cp Package.resolved "$dir/"
fi
(cd "$dir" && swift build -c release --product imds --scratch-path "$dir/.build" >&2)
echo "$dir/.build/release/imds"
