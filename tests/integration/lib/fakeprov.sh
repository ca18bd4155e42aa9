# Shared helpers for tests against the fake providers (tests/fakeprov):
# sourced after common.sh. Builds the fake into the build directory (next
# to the herald binary), starts it with its own ports, waits for them, and
# stops it at exit.
#
#   fakeprov_start [flags...]   build + start; sets FAKE_PID, FAKE_TLS_PORT,
#                               FAKE_HTTP_PORT, FAKE_CONTROL_PORT, FAKE_CA_FILE,
#                               FAKE_FCM_SA, FAKE_TLS (https://127.0.0.1:port),
#                               FAKE_HTTP, FAKE_CTL (control base URL)
#   fakeprov_stop               SIGTERM and wait
#   fake_ctl PATH [JSON]        POST to the control port (fails the test on error)
#   fake_stats                  GET /stats (JSON)
#   fake_stat EXPR              one figure of /stats: a Python expression over s,
#                               e.g. fake_stat 's["requests"].get("apns",0)'
#   fake_requests [ROUTE]       recorded requests, one JSON object per line
#   fake_gen_p8 PATH            write a test APNs signing key
#
# Without Go the test is skipped (exit 77), unless CI=true.
FAKE_PID=""
FAKEPROV_BIN=""

fakeprov_build() { # fakeprov_build [--check]
  local rc=0
  FAKEPROV_BIN=$("$(dirname "${BASH_SOURCE[0]}")/../../fakeprov/build.sh" "$(dirname "$HERALD")" "$@") || rc=$?
  if [ "$rc" = 77 ]; then
    if [ "${CI:-}" = true ]; then fail "Go is required under CI (scripts/deps.sh --test)"; fi
    echo "SKIP: no Go toolchain for the fake providers (scripts/deps.sh --test installs golang-go)"
    exit 77
  fi
  [ "$rc" = 0 ] || fail "building the fake providers failed"
}

fakeprov_start() {
  [ -n "$FAKEPROV_BIN" ] || fakeprov_build
  local env="$WORK/fakeprov.env"
  rm -f "$env"
  "$FAKEPROV_BIN" serve -ports-file "$env" -ca-out "$WORK/fakeprov-ca.pem" "$@" \
    >>"$WORK/fakeprov.log" 2>&1 &
  FAKE_PID=$!
  CLEANUP_HOOKS+=(fakeprov_stop)
  for _ in $(seq 1 200); do
    [ -f "$env" ] && break
    kill -0 "$FAKE_PID" 2>/dev/null || { cat "$WORK/fakeprov.log" >&2; fail "the fake providers exited at start"; }
    sleep 0.05
  done
  [ -f "$env" ] || fail "the fake providers did not start"
  # shellcheck disable=SC1090
  source "$env"
  FAKE_TLS="https://127.0.0.1:$FAKE_TLS_PORT"
  FAKE_HTTP="http://127.0.0.1:$FAKE_HTTP_PORT"
  FAKE_CTL="http://127.0.0.1:$FAKE_CONTROL_PORT"
  curl -fs "$FAKE_CTL/healthz" >/dev/null || fail "the fake's control port does not answer"
}

fakeprov_stop() {
  [ -n "$FAKE_PID" ] || return 0
  kill -TERM "$FAKE_PID" 2>/dev/null || true
  wait "$FAKE_PID" 2>/dev/null || true
  FAKE_PID=""
}

fake_ctl() { # fake_ctl PATH [JSON]
  curl -fsS -X POST --data-binary "${2:-}" "$FAKE_CTL$1" >/dev/null || fail "fake control $1 ${2:-} refused"
}

fake_stats() { curl -fsS "$FAKE_CTL/stats" || fail "fake /stats"; }

fake_stat() {
  local s
  s=$(fake_stats)
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$s" "$1"
}

fake_requests() { curl -fsS "$FAKE_CTL/requests${1:+?route=$1}" || fail "fake /requests"; }

fake_gen_p8() {
  [ -n "$FAKEPROV_BIN" ] || fakeprov_build
  "$FAKEPROV_BIN" gen-p8 -out "$1" || fail "gen-p8"
}
