# Shared helpers for integration tests (sourced). Starts herald on a free
# port under a fresh data dir and cleans up on exit.
set -euo pipefail
HERALD=${1:?usage: $0 path/to/herald}
HERALD=$(cd "$(dirname "$HERALD")" && pwd)/$(basename "$HERALD")
WORK=$(mktemp -d -t herald-it.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
HERALD_PID=""
# Seconds start_herald waits for /readyz (a Kafka bus creates topics first).
READY_TIMEOUT=${READY_TIMEOUT:-10}
# Functions run at exit after herald stops and before the work dir goes (e.g. stop a broker).
CLEANUP_HOOKS=()

cleanup() {
  if [ -n "$HERALD_PID" ]; then kill -TERM "$HERALD_PID" 2>/dev/null || true; wait "$HERALD_PID" 2>/dev/null || true; fi
  local h
  for h in "${CLEANUP_HOOKS[@]+"${CLEANUP_HOOKS[@]}"}"; do "$h" || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$WORK/herald.log" ] && tail -n 40 "$WORK/herald.log" >&2; exit 1; }

# start_herald [extra args...]: starts and waits for /readyz.
start_herald() {
  "$HERALD" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" "$@" >>"$WORK/herald.log" 2>&1 &
  HERALD_PID=$!
  for _ in $(seq 1 $((READY_TIMEOUT * 20))); do
    curl -fs "$BASE/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$HERALD_PID" 2>/dev/null || fail "herald exited during start"
    sleep 0.05
  done
  fail "herald not ready"
}

# stop_herald: SIGTERM, and the graceful shutdown must exit 0 (under the
# sanitizer build a leak or UB report makes it non-zero).
stop_herald() {
  local rc=0
  kill -TERM "$HERALD_PID"; wait "$HERALD_PID" || rc=$?
  HERALD_PID=""
  [ "$rc" = 0 ] || fail "herald exited with $rc on SIGTERM"
}

# The admin API key herald wrote on its first start (auth.bootstrap_key_file).
api_key() { cat "${KEY_FILE:-$WORK/data/admin.key}" 2>/dev/null || true; }
# curl with the admin key.
acurl() { curl -H "Authorization: Bearer $(api_key)" "$@"; }

# req METHOD PATH [BODY] -> prints "STATUS BODY"
req() {
  local out code
  out=$(mktemp -p "$WORK")
  if [ $# -ge 3 ]; then
    code=$(acurl -s -o "$out" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2")
  else
    code=$(acurl -s -o "$out" -w '%{http_code}' -X "$1" "$BASE$2")
  fi
  echo "$code $(cat "$out")"
  rm -f "$out"
}

expect_status() { # expect_status CODE METHOD PATH [BODY]
  local want=$1; shift
  local got
  got=$(req "$@")
  [ "${got%% *}" = "$want" ] || fail "$* -> $got (wanted $want)"
  echo "${got#* }"
}

# notif_id EVENT USER CHANNEL: herald's notification id. Its last 20 hex
# digits are sha256(event NUL user NUL channel); the first 12 are the
# event's accepted time in ms (model/notif.h), which only herald knows: look
# the id up in the user's listing (waiting up to 10 s for it to appear).
# Not found: the id of an event without an accepted time (time part 0).
notif_id() {
  local h u body id i
  h=$(printf '%s\0%s\0%s' "$1" "$2" "$3" | sha256sum | cut -c1-20)
  u=""
  for ((i = 0; i < ${#2}; i++)); do # percent-encode the user id (ASCII)
    case "${2:i:1}" in [a-zA-Z0-9._~-]) u+="${2:i:1}" ;; *) u+=$(printf '%%%02X' "'${2:i:1}") ;; esac
  done
  for i in $(seq 1 200); do
    body=$(req GET "/v1/users/$u/notifications?limit=200")
    id=$(printf '%s' "$body" | grep -o '"notification_id":"[0-9a-f]\{12\}'"$h"'"' | head -1 | cut -d'"' -f4)
    [ -n "$id" ] && { echo "$id"; return; }
    sleep 0.05
  done
  echo "000000000000$h"
}
