#!/usr/bin/env bash
# Soak test (not in CI): SOAK_SECONDS (default 600) of mixed load on a release `imds serve` with
# control-plane changes, event triggers, faults below 5xx and SIGHUP reloads interleaved. Passes
# with zero 5xx, no crash and flat RSS; prints a summary. See docs/benchmarks.md.
#   benchmarks/soak.sh                    # 10 minutes
#   SOAK_SECONDS=60 benchmarks/soak.sh    # a short one
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
exec python3 benchmarks/soak.py
