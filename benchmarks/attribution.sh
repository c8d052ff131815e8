#!/usr/bin/env bash
# What caller attribution costs: imds as shipped vs --no-caller-attribution, with TIME_WAIT drained
# and with tens of thousands of TIME_WAIT sockets present. Not part of the default test run.
# See docs/benchmarks.md.
#
#   benchmarks/attribution.sh                  # ~4 minutes, writes benchmarks/results/attribution-latest.*
#   BENCH_CONNECTIONS=1,64 BENCH_REPS=2 benchmarks/attribution.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "missing: wrk (apt-get install wrk)" >&2; exit 1
    fi
fi
export IMDS_BIN="${IMDS_BIN:-$PWD/.build/release/imds}"
if [ ! -x "$IMDS_BIN" ] || [ "${REBUILD:-}" = 1 ]; then
    swift build -c release --product imds
fi
exec python3 benchmarks/attribution.py
