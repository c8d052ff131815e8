#!/usr/bin/env bash
# The PostgreSQL store (docs/postgres.md): change propagation between two hosts and the data plane's
# throughput with the PostgreSQL store versus the embedded one, in the same run, on one machine.
# Not part of the default test run. Starts a private PostgreSQL cluster (scripts/lib/pg-cluster.sh),
# two `imds serve --store` hosts A and B and one embedded `imds serve`, all on loopback.
#
#   benchmarks/postgres.sh          # ~2 minutes; writes benchmarks/results/postgres-latest.md
#   BENCH_CHANGES=200 BENCH_DURATION=5s benchmarks/postgres.sh
#
# Propagation: BENCH_CHANGES CreateTags on A (botocore); for each, the time from A's acknowledgement
# until B's data plane serves the new tag value (polled over one keep-alive connection).
# Throughput: wrk (2 threads, 16 connections, BENCH_DURATION) against GET /latest/meta-data/instance-id
# on B and on the embedded server, one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/prepare.sh
. scripts/lib/pg-cluster.sh
CHANGES=${BENCH_CHANGES:-1000}
DURATION=${BENCH_DURATION:-10s}
pg_install || { echo "PostgreSQL is missing (apt-get install postgresql)" >&2; exit 1; }
python3 -c "import botocore" 2>/dev/null || python3 -m pip install --quiet botocore boto3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/imds-pg-bench.XXXXXX"); chmod 755 "$TMP"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; pg_remove; rm -rf "$TMP"; }
trap cleanup EXIT
pg_start "$TMP/pg"
PG_DB=postgres pg_psql "CREATE DATABASE bench"
URL="${PG_URL%/postgres}/bench"
X=i-0aaaaaaaaaaaaaaa1
cat >"$TMP/fleet.yaml" <<YAML
instances:
  - {instance-id: $X, local-ipv4: 10.0.1.31, metadata-options: {instance-metadata-tags: enabled}}
YAML
declare -A DP CP
serve() { # serve NAME ARGS...
    local n=$1; shift
    "$IMDS_BIN" serve --config "$TMP/fleet.yaml" --listen 127.0.0.1:0 --control-listen 127.0.0.1:0 --log-level warning \
        --no-caller-attribution "$@" >"$TMP/$n.out" 2>"$TMP/$n.err" &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        DP[$n]=$(grep -o 'data plane listening on http://[^ ]*' "$TMP/$n.out" | head -1 | sed 's/.* on //' || true)
        CP[$n]=$(grep -o 'control plane listening on http://[^ ]*' "$TMP/$n.out" | head -1 | sed 's/.* on //' || true)
        [ -n "${DP[$n]}" ] && [ -n "${CP[$n]}" ] && return 0
        sleep 0.1
    done
    echo "$n did not start: $(tail -3 "$TMP/$n.err")" >&2; exit 1
}
serve a --store "$URL" --state-dir "$TMP/a"
serve b --store "$URL" --state-dir "$TMP/b"
serve e --state-dir "$TMP/e"
export AWS_EC2_METADATA_DISABLED=true
prop=$(timeout 600 python3 scripts/lib/pg_fleet.py propagation "$X" "$CHANGES" "${CP[a]}" "${DP[b]}")
rps() { wrk -t2 -c16 -d"$DURATION" "$1/latest/meta-data/instance-id" | awk '/Requests\/sec/ {print $2}'; }
rps "${DP[b]}" >/dev/null  # warm-up
pg_rps=$(rps "${DP[b]}"); emb_rps=$(rps "${DP[e]}")
build=$(case "$IMDS_BIN" in *release*) echo release ;; *) echo debug ;; esac)
report=$(cat <<MD
# PostgreSQL store benchmark

$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, imds $build build, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on loopback
(private cluster, fsync on), two \`imds serve --store\` hosts and one embedded \`imds serve --state-dir\` on this machine.

| measurement | figure |
|---|---|
| change propagation, $CHANGES CreateTags on A → B's data plane serves the value | ${prop##*: } |
| data plane GET /latest/meta-data/instance-id, PostgreSQL store (host B), wrk -t2 -c16 -d$DURATION | $pg_rps req/s |
| the same, embedded store | $emb_rps req/s |

The data plane reads the in-memory snapshot with either store, so its throughput does not depend on
the store; what the database adds is the time a change takes to reach the other hosts (one
\`NOTIFY\`, one \`SELECT\` of the new revisions, one apply).
MD
)
echo "$report"
mkdir -p benchmarks/results
echo "$report" >benchmarks/results/postgres-latest.md
