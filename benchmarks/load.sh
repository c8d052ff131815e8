#!/usr/bin/env bash
# Load benchmark: imds (release) vs nginx `return 200` with keepalive_timeout 0 (the machine's
# one-request-per-connection ceiling) vs moto's server, in one run; then memory, start-up and CLI
# timings. Not part of the default test run. See docs/benchmarks.md.
#
#   benchmarks/load.sh                          # full run (about 8 minutes), writes benchmarks/results/latest.*
#   BENCH_DURATION=3s MEMORY_REQUESTS=0 benchmarks/load.sh   # a quick look
#   BENCH_PROFILE=1 benchmarks/load.sh          # also perf-record imds under load
#
# Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v curl >/dev/null || need+=(curl)
if [ "${BENCH_PROFILE:-}" = 1 ] && ! command -v perf >/dev/null; then need+=(linux-perf); fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing: ${need[*]} (install them: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi
python3 -c "import matplotlib" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib ||
    echo "matplotlib unavailable: the run goes on without a chart" >&2
command -v moto_server >/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]' ||
    echo "moto unavailable: the run goes on without it" >&2

export IMDS_BIN="${IMDS_BIN:-$PWD/.build/release/imds}"
if [ ! -x "$IMDS_BIN" ] || [ "${REBUILD:-}" = 1 ]; then
    swift build -c release --product imds
fi
exec python3 benchmarks/load.py
