#!/usr/bin/env bash
# Soak test (not in CI): SOAK_SECONDS (default 600) of mixed load on a release `imds serve` with
# control-plane changes, event triggers, faults below 5xx and SIGHUP reloads interleaved. Passes
# with zero 5xx, no crash and flat RSS; prints a summary. See docs/benchmarks.md.
#   benchmarks/soak.sh                    # 10 minutes
#   SOAK_SECONDS=60 benchmarks/soak.sh    # a short one
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/prepare.sh
exec python3 benchmarks/soak.py
