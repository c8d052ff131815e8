# A private PostgreSQL cluster for a test or benchmark script. Source it, then:
#   pg_install            installs Debian's postgresql when no /usr/lib/postgresql/*/bin/initdb (root only)
#   pg_start DIR          initdb + start in DIR (a fresh folder), on a free loopback port, password
#                         authentication; as root the server runs as the system user imdspg (created
#                         when missing: PostgreSQL refuses root). Sets PGBIN PG_PORT PG_URL (the
#                         password is in it) and PG_PASSWORD.
#   pg_stop / pg_restart  fast shutdown / start again on the same port (data kept)
#   pg_psql SQL           runs SQL as the superuser over the socket, prints unaligned rows
#   pg_remove             stops the server (immediate) and deletes DIR: call it from the EXIT trap
# Every wait is bounded (pg_ctl -t).
PG_DIR=""; PGBIN=""; PG_PORT=""; PG_URL=""; PG_PASSWORD=""; PG_AS=""

pg_install() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]; then return 0; fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then return 1; fi
    # Debian's package would create and start a "main" cluster of its own: ours is private.
    mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql) \
        >/tmp/imds-apt-postgresql.log 2>&1 || return 1
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]
}

# _pg CMD...: runs CMD as the cluster's owner.
_pg() { if [ -n "$PG_AS" ]; then runuser -u "$PG_AS" -- "$@"; else "$@"; fi; }

pg_start() {
    PG_DIR=$1
    mkdir -p "$PG_DIR"
    if [ "$(id -u)" = 0 ]; then
        PG_AS=imdspg
        id "$PG_AS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_AS" || return 1
        chown "$PG_AS" "$PG_DIR"
    fi
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    PG_PASSWORD="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
    echo "$PG_PASSWORD" >"$PG_DIR/pwfile"
    [ -n "$PG_AS" ] && chown "$PG_AS" "$PG_DIR/pwfile"
    _pg "$PGBIN/initdb" -D "$PG_DIR/data" -U imds --pwfile="$PG_DIR/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" | tail -5; return 1; }
    rm -f "$PG_DIR/pwfile"
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
fsync = on
CONF
    PG_URL="postgres://imds:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
    pg_restart
}

pg_restart() {
    _pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 start >/dev/null
}

pg_stop() {
    _pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null
}

pg_psql() {
    _pg "$PGBIN/psql" -h "$PG_DIR" -p "$PG_PORT" -U imds -d "${PG_DB:-postgres}" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}

pg_remove() {
    [ -n "$PG_DIR" ] || return 0
    [ -f "$PG_DIR/data/postmaster.pid" ] && _pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1
    rm -rf "$PG_DIR"
}
