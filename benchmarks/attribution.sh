#!/usr/bin/env bash
# What caller attribution costs: imds as shipped vs --no-caller-attribution, with TIME_WAIT drained
# and with tens of thousands of TIME_WAIT sockets present. Not part of the default test run.
# See docs/benchmarks.md.
#
#   benchmarks/attribution.sh                  # ~4 minutes, writes benchmarks/results/attribution-latest.*
#   BENCH_CONNECTIONS=1,64 BENCH_REPS=2 benchmarks/attribution.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/prepare.sh
exec python3 benchmarks/attribution.py
