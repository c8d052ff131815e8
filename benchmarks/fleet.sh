#!/usr/bin/env bash
# Fleet scale: 1 instance against 10,000 launched ones in one `imds serve` (release build): ready
# time from the embedded store, resident size per idle instance, the cost of one change, and v2 GET
# throughput and CPU per request. Prints the figures; asserts nothing. Not part of the default test
# run. See docs/fleet.md.
#
#   benchmarks/fleet.sh                                  # ~4 minutes, writes benchmarks/results/fleet-latest.md
#   FLEET_SIZE=2000 BENCH_DURATION=2s benchmarks/fleet.sh  # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/prepare.sh
python3 -c "import botocore" 2>/dev/null || { echo "missing: botocore (pip install botocore)" >&2; exit 1; }
exec python3 benchmarks/fleet.py
