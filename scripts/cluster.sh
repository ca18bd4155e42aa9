#!/usr/bin/env bash
# cluster.sh - a whole distributed herald on this machine, in one command.
#
#   scripts/cluster.sh up [--instances N]   start everything (N herald instances, default 3)
#   scripts/cluster.sh down                 stop everything and delete the state dir
#   scripts/cluster.sh status               what runs and how to reach it; exit 1 if nothing
#   scripts/cluster.sh env                  shell lines: brokers, DSN, Redis, instance URLs
#   scripts/cluster.sh herald start|stop|kill N   start, SIGTERM or SIGKILL instance N (1-based)
#   scripts/cluster.sh redis start|kill     start Redis again, or SIGKILL it (fault tests)
#
# What `up` starts:
#  - Apache Kafka, three brokers and a separate KRaft controller
#    (scripts/kafka.sh start --nodes 3: replication 3, min.insync.replicas 2);
#  - a throw-away PostgreSQL server (scripts/pg.sh; as root it runs as the
#    user postgres);
#  - Redis (Debian's redis-server, no persistence);
#  - N `herald serve` processes with every role, each on its own HTTP port
#    and data dir, all on the same Kafka cluster (bus.backend=kafka, topics
#    replicated 3 times with min.insync.replicas 2), the same PostgreSQL
#    store and the same Redis (per-recipient rate limits and provider token
#    budgets shared by the instances).
# The first instance writes the bootstrap admin key into its data dir
# (admin.key); it is valid on every instance, which share the store.
#
# Environment (for this script's command only; never export them to herald):
#   HERALD_CLUSTER_DIR    state: logs, data dirs, pids (default /tmp/herald-cluster)
#   HERALD_CLUSTER_PORT   first HTTP port (default 18081; instance N gets +N-1)
#   HERALD_CLUSTER_KAFKA_PORT  first broker port (default 19092; the controller gets +100)
#   HERALD_CLUSTER_REDIS_PORT  Redis port (default 16379)
#   HERALD_BIN            the herald binary (default build/herald of this tree)
#   HERALD_CLUSTER_ARGS   extra `herald serve` arguments for every instance
#                         (e.g. "--set fanout.exactly_once=true")
# The Kafka jars are cached under ${XDG_CACHE_HOME:-~/.cache}/herald/kafka
# (scripts/kafka.sh); nothing else is downloaded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${HERALD_CLUSTER_DIR:-/tmp/herald-cluster}
HTTP_PORT=${HERALD_CLUSTER_PORT:-18081}
KAFKA_PORT=${HERALD_CLUSTER_KAFKA_PORT:-19092}
REDIS_PORT=${HERALD_CLUSTER_REDIS_PORT:-16379}
HERALD=${HERALD_BIN:-$ROOT/build/herald}
READY_S=${HERALD_CLUSTER_READY_S:-90}

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }
usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# kafka.sh and pg.sh with their state under ours; herald itself must not
# see HERALD_KAFKA_* (it reads them as librdkafka settings).
kafka() { HERALD_KAFKA_DIR="$STATE/kafka" HERALD_KAFKA_PORT="$KAFKA_PORT" bash "$ROOT/scripts/kafka.sh" "$@"; }
pg() { bash "$ROOT/scripts/pg.sh" "$@"; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$1" 2>/dev/null || true; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- Redis ----

redis_up() {
  local dir=$STATE/redis pid
  pid=$(pid_of "$dir/pid")
  alive "$pid" && return 0
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  port_busy "$REDIS_PORT" && die "port $REDIS_PORT is in use (set HERALD_CLUSTER_REDIS_PORT)"
  mkdir -p "$dir"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  local k
  for ((k = 0; k < 100; k++)); do
    port_busy "$REDIS_PORT" && return 0
    alive "$(pid_of "$dir/pid")" || die "redis-server exited (log: $dir/redis.log)"
    sleep 0.1
  done
  die "redis-server not answering on $REDIS_PORT"
}

redis_down() { # [signal]
  local pid
  pid=$(pid_of "$STATE/redis/pid")
  if alive "$pid"; then
    kill "-${1:-TERM}" "$pid"
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$STATE/redis/pid"
}

# ---- PostgreSQL ----

# The server's directory is pg.sh's own temporary one (as root the server
# runs as another user, who must reach it: a directory under a private
# parent would not do); $STATE/pg.dir names it.
pg_dir() { cat "$STATE/pg.dir" 2>/dev/null || true; }

pg_up() {
  local dir
  dir=$(pg_dir)
  if [ -n "$dir" ] && [ -f "$dir/port" ] && pg status "$dir" >/dev/null 2>&1; then return 0; fi
  [ -n "$dir" ] && [ -d "$dir" ] && pg stop "$dir" >/dev/null 2>&1 || true
  local out
  out=$(pg start) || die "cannot start PostgreSQL (scripts/pg.sh)"
  sed -n "s/^HERALD_PG_DIR='\(.*\)'$/\1/p" <<<"$out" >"$STATE/pg.dir"
  [ -n "$(pg_dir)" ] || die "scripts/pg.sh printed no directory"
}

pg_down() {
  local dir
  dir=$(pg_dir)
  [ -n "$dir" ] && [ -d "$dir" ] && pg stop "$dir" >/dev/null 2>&1 || true
  rm -f "$STATE/pg.dir"
}

dsn() { local dir; dir=$(pg_dir); echo "postgresql://herald@/herald?host=$dir/sock&port=$(cat "$dir/port")"; }

# ---- herald instances ----

inst_dir() { echo "$STATE/herald-$1"; }
inst_port() { echo $((HTTP_PORT + $1 - 1)); }

herald_args() { # N
  local brokers
  brokers=$(kafka bootstrap)
  # shellcheck disable=SC2206
  local extra=(${HERALD_CLUSTER_ARGS:-})
  printf '%s\n' serve --data-dir "$(inst_dir "$1")/data" --listen "127.0.0.1:$(inst_port "$1")" \
    --bus kafka --kafka-brokers "$brokers" \
    --set store.backend=postgres --set "store.dsn=$(dsn)" \
    --set topics.replication=3 --set topics.min_insync=2 \
    --set ratelimit.backend=redis --set "ratelimit.redis=127.0.0.1:$REDIS_PORT" \
    --set auth.bootstrap_key_file="$STATE/admin.key" \
    "${extra[@]+"${extra[@]}"}"
}

herald_start() { # N [wait=1]
  local n=$1 wait=${2:-1} dir pid port
  dir=$(inst_dir "$n")
  port=$(inst_port "$n")
  pid=$(pid_of "$dir/pid")
  if alive "$pid"; then say "instance $n already runs (pid $pid)"; return 0; fi
  [ -x "$HERALD" ] || die "no herald binary at $HERALD (build first, or set HERALD_BIN)"
  port_busy "$port" && die "port $port is in use (set HERALD_CLUSTER_PORT)"
  mkdir -p "$dir/data"
  local args=()
  mapfile -t args < <(herald_args "$n")
  # Not the caller's HERALD_* settings: the cluster's own, above.
  env -u HERALD_KAFKA_DIR -u HERALD_KAFKA_PORT setsid "$HERALD" "${args[@]}" \
    >>"$dir/herald.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  [ "$wait" = 1 ] || return 0
  herald_wait "$n"
}

herald_wait() { # N: until its /readyz answers 200
  local n=$1 dir port k
  dir=$(inst_dir "$n")
  port=$(inst_port "$n")
  for ((k = 0; k < READY_S * 10; k++)); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    alive "$(pid_of "$dir/pid")" || { tail -20 "$dir/herald.log" >&2; die "instance $n exited during start"; }
    sleep 0.1
  done
  die "instance $n not ready after ${READY_S}s (log: $dir/herald.log)"
}

herald_stop() { # N TERM|KILL
  local dir pid k
  dir=$(inst_dir "$1")
  pid=$(pid_of "$dir/pid")
  if ! alive "$pid"; then rm -f "$dir/pid"; return 0; fi
  kill "-$2" "$pid"
  for ((k = 0; k < 900; k++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "instance $1 still runs 90 s after SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

instances() { # numbers of every instance dir, in order
  local d
  for d in "$STATE"/herald-*; do
    [ -d "$d" ] && echo "${d##*-}"
  done | sort -n
}

# ---- commands ----

cmd_up() {
  local n=3
  while [ $# -gt 0 ]; do
    case "$1" in
    --instances) n=$2; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] || die "--instances needs a number"
  mkdir -p "$STATE"
  local t0=$SECONDS
  say "starting Kafka (3 brokers + controller), PostgreSQL and Redis in $STATE"
  kafka start --nodes 3 >/dev/null 2>"$STATE/kafka-start.log" || { cat "$STATE/kafka-start.log" >&2; die "Kafka did not start"; }
  pg_up
  redis_up
  local i
  # The first one alone: it creates the topics and the store schema and
  # writes the admin key; then the others together.
  for ((i = 1; i <= n; i++)); do
    if [ "$i" -eq 1 ]; then herald_start 1; else herald_start "$i" 0; fi
  done
  for ((i = 2; i <= n; i++)); do herald_wait "$i"; done
  say "up in $((SECONDS - t0)) s"
  cmd_status
}

cmd_down() {
  local i
  for i in $(instances); do herald_stop "$i" TERM; done
  redis_down
  [ -d "$STATE/kafka" ] && kafka stop >/dev/null 2>&1 || true
  pg_down
  rm -rf "$STATE"
  say "stopped; $STATE removed"
}

cmd_status() {
  [ -d "$STATE" ] || { echo "no cluster in $STATE"; return 1; }
  local up=0 i pid
  echo "Kafka ($STATE/kafka):"
  kafka status 2>/dev/null | sed 's/^/  /' || echo "  stopped"
  if [ -n "$(pg_dir)" ] && pg status "$(pg_dir)" >/dev/null 2>&1; then
    echo "PostgreSQL: running, DSN $(dsn)"
  else
    echo "PostgreSQL: stopped"
  fi
  pid=$(pid_of "$STATE/redis/pid")
  if alive "$pid"; then echo "Redis: running pid $pid, 127.0.0.1:$REDIS_PORT"; else echo "Redis: stopped"; fi
  echo "herald instances (every role; admin key: $STATE/admin.key):"
  for i in $(instances); do
    pid=$(pid_of "$(inst_dir "$i")/pid")
    if alive "$pid"; then
      echo "  $i: http://127.0.0.1:$(inst_port "$i")  pid $pid  data $(inst_dir "$i")/data  log $(inst_dir "$i")/herald.log"
      up=$((up + 1))
    else
      echo "  $i: stopped (http://127.0.0.1:$(inst_port "$i"))"
    fi
  done
  if [ "$up" -gt 0 ]; then
    echo "try: curl -H \"Authorization: Bearer \$(cat $STATE/admin.key)\" http://127.0.0.1:$(inst_port "$(instances | head -1)")/v1/users/alice"
  fi
  [ "$up" -gt 0 ]
}

cmd_env() {
  [ -d "$STATE" ] || die "no cluster in $STATE"
  echo "CLUSTER_BROKERS='$(kafka bootstrap)'"
  echo "CLUSTER_DSN='$(dsn)'"
  echo "CLUSTER_REDIS='127.0.0.1:$REDIS_PORT'"
  echo "CLUSTER_ADMIN_KEY_FILE='$STATE/admin.key'"
  local urls="" i
  for i in $(instances); do urls+="${urls:+ }http://127.0.0.1:$(inst_port "$i")"; done
  echo "CLUSTER_URLS='$urls'"
}

cmd_herald() {
  local what=${1:-} n=${2:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || usage
  case "$what" in
  start) herald_start "$n" ;;
  stop) herald_stop "$n" TERM ;;
  kill) herald_stop "$n" KILL ;;
  *) usage ;;
  esac
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
herald) shift; cmd_herald "$@" ;;
redis)
  case "${2:-}" in
  start) redis_up ;;
  kill) redis_down KILL ;;
  *) usage ;;
  esac
  ;;
*) usage ;;
esac
