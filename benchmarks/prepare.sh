# Sourced by the benchmark scripts: installs wrk when missing (as root) and builds the release
# binary unless IMDS_BIN is already there (REBUILD=1 forces it); exports IMDS_BIN.
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
