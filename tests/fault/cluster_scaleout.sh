#!/usr/bin/env bash
# herald as a cluster: scripts/cluster.sh starts three Kafka brokers (plus a
# KRaft controller), PostgreSQL, Redis and three `herald serve` instances,
# once, and every scenario runs on it (CI time: one cluster start):
#  1. an event posted to any instance is delivered once, and its status is
#     readable from every instance (one store);
#  2. lib/cluster_scaleout.py: kill -9 of an instance while 20,000 events
#     stream in (failover time, duplicates), one broker of three killed
#     mid-stream (0 lost; time until deliveries resume), a fourth instance
#     joining and a rolling restart (no duplicates across SIGTERM handovers),
#     the instance kill and the broker kill again with fanout.exactly_once
#     (no duplicate notification records), Redis killed. CLUSTER_ONLY=a,b
#     runs only the scenarios named (kill, broker, scale, eos-kill,
#     eos-broker, redis).
#
# Skips (77) without Java, kcat, PostgreSQL or redis-server unless CI=true,
# where they are required.
source "$(dirname "$0")/../integration/lib/common.sh"
source "$(dirname "$0")/../integration/lib/kafka.sh"
kafka_require
command -v redis-server >/dev/null || kafka_missing "redis-server not found"
command -v redis-cli >/dev/null || kafka_missing "redis-cli not found"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null ||
  kafka_missing "no PostgreSQL server (initdb)"

CLUSTER_SH="$KAFKA_ROOT/scripts/cluster.sh"
free_base() { # N: a base port with N free ports after it
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000)
    ok = True
    for p in list(range(base, base + n)) + ([base + 100] if n == 3 else []):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(base)
        sys.exit(0)
sys.exit("no free ports")
EOF
}
export HERALD_CLUSTER_DIR="$WORK/cluster"
export HERALD_CLUSTER_KAFKA_PORT=$(free_base 3)
export HERALD_CLUSTER_PORT=$(free_base 3)
export HERALD_CLUSTER_REDIS_PORT=$(free_base 1)
export HERALD_BIN="$HERALD"
cl() { bash "$CLUSTER_SH" "$@"; }
cluster_down() { cl down >/dev/null 2>&1 || true; }
CLEANUP_HOOKS+=(cluster_down)
# The brokers, PostgreSQL, Redis and herald run detached: if this shell is
# killed outright (a CTest timeout), a guard takes everything down.
setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done
  [ -d "$2" ] && HERALD_CLUSTER_DIR="$2" bash "$3" down >/dev/null 2>&1' cluster-guard "$$" \
  "$HERALD_CLUSTER_DIR" "$CLUSTER_SH" </dev/null >/dev/null 2>&1 &

t0=$(date +%s)
cl up --instances 3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "cluster.sh up"; }
echo "cluster up in $(($(date +%s) - t0)) s:"
sed 's/^/  /' "$WORK/up.log"
cl status >/dev/null || fail "cluster.sh status says nothing runs"
eval "$(cl env)"
read -r -a URLS <<<"$CLUSTER_URLS"
[ "${#URLS[@]}" = 3 ] || fail "three instance URLs expected: $CLUSTER_URLS"
KEY=$(cat "$CLUSTER_ADMIN_KEY_FILE")
[ -n "$KEY" ] || fail "no admin key written"
hc() { curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }

# ---- 1. any instance in, every instance answers ----
for i in 0 1 2; do
  code=$(hc -o /dev/null -w '%{http_code}' -X PUT "${URLS[$i]}/v1/users/cu$i" \
    --data "{\"devices\":[{\"platform\":\"fcm\",\"token\":\"tok$i\"}]}")
  [ "$code" = 200 ] || fail "PUT user on instance $((i + 1)): $code"
done
code=$(hc -o /dev/null -w '%{http_code}' -X PUT "${URLS[2]}/v1/templates/hello/push" \
  --data '{"locale":"en","title":"hi","body":"hello {{user_id}}"}')
[ "$code" = 200 ] || fail "PUT template: $code"
for i in 0 1 2; do
  code=$(hc -o /dev/null -w '%{http_code}' -X POST "${URLS[$i]}/v1/events" \
    --data "{\"event_id\":\"any-$i\",\"type\":\"hello\",\"audience\":{\"users\":[\"cu0\",\"cu1\",\"cu2\"]}}")
  [ "$code" = 202 ] || fail "POST event to instance $((i + 1)): $code"
done
# The id of event $1's push notification for user $2, from the user's
# listing (ids begin with the accepted time, which only herald knows).
cl_nid() {
  local h
  h=$(printf '%s\0%s\0%s' "$1" "$2" push | sha256sum | cut -c1-20)
  hc "${URLS[0]}/v1/users/$2/notifications?limit=200" |
    grep -o '"notification_id":"[0-9a-f]\{12\}'"$h"'"' | head -1 | cut -d'"' -f4
}
sent_everywhere() {
  local i j u id
  for i in 0 1 2; do
    for u in cu0 cu1 cu2; do
      id=$(cl_nid "any-$i" "$u")
      [ -n "$id" ] || return 1
      for j in 0 1 2; do
        hc "${URLS[$j]}/v1/notifications/$id" | grep -q '"status":"sent"' || return 1
      done
    done
  done
}
ok=0
for _ in $(seq 1 600); do sent_everywhere && { ok=1; break; }; sleep 0.1; done
[ "$ok" = 1 ] || fail "events posted to each instance not sent and readable from every instance"
lines=$(cat "$HERALD_CLUSTER_DIR"/herald-*/data/sandbox/push.jsonl | grep -c '"event_id":"any-' || true)
[ "$lines" = 9 ] || fail "9 deliveries expected (3 events x 3 users, once each), got $lines"
echo "events posted to each of the 3 instances: 9 notifications delivered once, status 'sent' on every instance"

# The scenarios start instances of their own on the same cluster.
for i in 1 2 3; do cl herald stop "$i"; done
python3 "$(dirname "$0")/../integration/lib/cluster_scaleout.py" "$HERALD" "$WORK" "$CLUSTER_SH" ||
  fail "cluster scenarios (logs in $WORK: KEEP_WORK=1 keeps them)"
echo "total $(($(date +%s) - t0)) s"
echo PASS
