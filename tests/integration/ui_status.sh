#!/usr/bin/env bash
# The status page (/ui) in headless Chromium (lib/ui_status.py says what it
# asserts): a known workload - three users (one of them named "<i>eve</i>"),
# a template, three events, one notification that fails three times and is
# dead-lettered - then the page opened with the admin key, five more events
# while it is open, two notifications looked up by id. Saves a screenshot
# to <build dir>/Testing/ui-status.png. Skips (77) without chromium unless
# CI=true.
source "$(dirname "$0")/lib/common.sh"
if ! command -v chromium >/dev/null 2>&1; then
  [ "${CI:-}" = true ] && fail "chromium is not installed (scripts/deps.sh --test)"
  echo "SKIP: chromium is not installed (scripts/deps.sh --test installs it)"
  exit 77
fi
start_herald --set retry.delays_ms=20,20,20

expect_status 200 PUT /v1/templates/welcome/push '{"locale":"en","title":"Welcome","body":"Hi {{user_id}}"}' >/dev/null
expect_status 200 PUT /v1/users/ann '{"locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"tok-ann"}]}' >/dev/null
expect_status 200 PUT /v1/users/rex '{"locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"sandbox-fail-retry"}]}' >/dev/null
expect_status 200 PUT /v1/users/%3Ci%3Eeve%3C%2Fi%3E '{"locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"tok-eve"}]}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-1","type":"welcome","audience":{"users":["ann"]},"data":{}}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-2","type":"welcome","audience":{"users":["ann","<i>eve</i>"]},"data":{}}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-rt","type":"welcome","audience":{"users":["rex"]},"data":{}}' >/dev/null

dead=$(notif_id ev-rt rex push)
odd=$(notif_id ev-2 "<i>eve</i>" push)
for _ in $(seq 1 200); do req GET "/v1/notifications/$dead" | grep -q '"status":"dead"' && break; sleep 0.05; done
req GET "/v1/notifications/$dead" | grep -q '"status":"dead"' || fail "ev-rt not dead-lettered: $(req GET "/v1/notifications/$dead")"
for _ in $(seq 1 200); do req GET "/v1/notifications/$odd" | grep -q '"status":"sent"' && break; sleep 0.05; done

shots="$(dirname "$HERALD")/Testing"
mkdir -p "$shots"
rc=0
HERALD_BASE="$BASE" HERALD_KEY="$(api_key)" UI_DEAD_ID="$dead" UI_ODD_ID="$odd" UI_EVENTS=3 \
  UI_SHOT="$shots/ui-status.png" python3 "$(dirname "$0")/lib/ui_status.py" || rc=$?
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] || fail "the status page (exit $rc)"
stop_herald
echo "status page checked; screenshot at $shots/ui-status.png"
