#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests and local runs.
#
#   scripts/pg.sh start [DIR]   initdb + pg_ctl start in DIR (default: a new
#                               temporary directory); prints the env lines
#   scripts/pg.sh env   [DIR]   prints the env lines of a running server:
#                                 HERALD_PG_DIR=...   (pass to stop/status)
#                                 HERALD_TEST_STORE_DSN=postgresql://...
#   scripts/pg.sh status [DIR]  exit 0 when the server answers
#   scripts/pg.sh stop  [DIR]   stops the server and removes DIR
# DIR defaults to $HERALD_PG_DIR for env/status/stop. Typical use:
#   eval "$(scripts/pg.sh start)"; ...; scripts/pg.sh stop
#
# The server listens on a free port of 127.0.0.1 and on a unix socket in
# DIR/sock; authentication is "trust" for the superuser "herald" and the
# database is "herald". PostgreSQL refuses to run as root: as root the
# cluster belongs to the user $HERALD_PG_USER (default "postgres", which
# Debian's postgresql package creates; else a "herald-test" system user is
# created). Exit 77 when no PostgreSQL server binaries are installed.
set -euo pipefail

PGBIN=${HERALD_PG_BIN:-}
if [ -z "$PGBIN" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PGBIN=$d; done
fi
if [ -z "$PGBIN" ] && command -v initdb >/dev/null; then PGBIN=$(dirname "$(command -v initdb)"); fi

die() { echo "pg.sh: $*" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

pick_owner() {
  OWNER=$(id -un)
  [ "$(id -u)" -ne 0 ] && return
  OWNER=${HERALD_PG_USER:-postgres}
  if ! id "$OWNER" >/dev/null 2>&1; then
    OWNER=herald-test
    id "$OWNER" >/dev/null 2>&1 ||
      useradd --system --no-create-home --shell /usr/sbin/nologin "$OWNER"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

print_env() {
  local dir=$1 port
  port=$(cat "$dir/port")
  echo "HERALD_PG_DIR='$dir'"
  echo "HERALD_TEST_STORE_DSN='postgresql://herald@/herald?host=$dir/sock&port=$port'"
  echo "export HERALD_PG_DIR HERALD_TEST_STORE_DSN"
}

cmd=${1:-}
dir=${2:-${HERALD_PG_DIR:-}}
case "$cmd" in
  start)
    [ -n "$PGBIN" ] || { echo "pg.sh: no PostgreSQL server installed (apt-get install postgresql)" >&2; exit 77; }
    pick_owner
    if [ -z "${2:-}" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/herald-pg-XXXXXX"); fi
    mkdir -p "$dir/sock"
    [ "$(id -u)" -eq 0 ] && chown -R "$OWNER" "$dir"
    chmod 755 "$dir"
    as_owner "$PGBIN/initdb" -D "$dir/data" -U herald -A trust -E UTF8 --no-locale \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    port=$(free_port)
    echo "$port" >"$dir/port"
    # fsync off: a test cluster need not survive a crash of the machine
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { cat "$dir/server.log" >&2; die "pg_ctl start failed"; }
    as_owner "$PGBIN/createdb" -h "$dir/sock" -p "$port" -U herald herald
    print_env "$dir"
    ;;
  env)
    [ -n "$dir" ] && [ -f "$dir/port" ] || die "no server (give DIR or set HERALD_PG_DIR)"
    print_env "$dir"
    ;;
  status)
    [ -n "$dir" ] && [ -f "$dir/port" ] || { echo "pg.sh: not running"; exit 3; }
    "$PGBIN/pg_isready" -q -h "$dir/sock" -p "$(cat "$dir/port")" && echo "running: $dir" ||
      { echo "pg.sh: not answering: $dir"; exit 3; }
    ;;
  stop)
    [ -n "$dir" ] && [ -d "$dir" ] || die "no server (give DIR or set HERALD_PG_DIR)"
    if [ -d "$dir/data" ]; then
      OWNER=$(stat -c %U "$dir/data")
      as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop|status|env [DIR]" >&2
    exit 2
    ;;
esac
