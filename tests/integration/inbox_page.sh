#!/usr/bin/env bash
# The embeddable inbox page (/inbox, web/inbox/) in headless Chromium
# (lib/inbox_page.py says what it asserts): a user, a user token made with
# the admin key, the page opened with the token in its fragment; events
# posted to POST /v1/events (channel inapp) must appear on the page within
# a second without a reload, through the whole pipeline and the live
# stream; marking read updates the bell. Prints the latency from POST to
# the item on the page. Also checks the stream and token rules with curl.
# Skips (77) without chromium unless CI=true.
source "$(dirname "$0")/lib/common.sh"
if ! command -v chromium >/dev/null 2>&1; then
  [ "${CI:-}" = true ] && fail "chromium is not installed (scripts/deps.sh --test)"
  echo "SKIP: chromium is not installed (scripts/deps.sh --test installs it)"
  exit 77
fi
start_herald --set inbox.stream_heartbeat_ms=500

expect_status 200 PUT /v1/users/zoe '{"locale":"en","timezone":"UTC"}' >/dev/null
expect_status 200 PUT /v1/users/yan '{"locale":"en","timezone":"UTC"}' >/dev/null
tok=$(expect_status 201 POST /v1/users/zoe/inbox/token '{"ttl_s":600}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[ -f "$WORK/data/inbox_token.key" ] || fail "no inbox_token.key in the data dir"
[ "$(stat -c %a "$WORK/data/inbox_token.key")" = 600 ] || fail "inbox_token.key is not mode 0600"

# the token with curl: its own inbox yes, another's or another route no
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code -H "Authorization: Bearer $tok" "$BASE/v1/users/zoe/inbox")" = 200 ] || fail "token on its inbox"
[ "$(code -H "Authorization: Bearer $tok" "$BASE/v1/users/yan/inbox")" = 403 ] || fail "token on another inbox"
[ "$(code -H "Authorization: Bearer $tok" "$BASE/v1/users/zoe")" = 403 ] || fail "token on a user route"
[ "$(code -H "Authorization: Bearer $tok" -X POST -H 'Content-Type: application/json' --data '{}' "$BASE/v1/events")" = 403 ] \
  || fail "token on POST /v1/events"
[ "$(code -H "Authorization: Bearer ${tok}x" "$BASE/v1/users/zoe/inbox")" = 401 ] || fail "tampered token"
# the stream with ?token=: a heartbeat within a second, and the token never in the log
curl -s -N --max-time 1.5 "$BASE/v1/users/zoe/inbox/stream?token=$tok" >"$WORK/stream.txt" || true
grep -q '^event: counts' "$WORK/stream.txt" || fail "stream: no counts event: $(cat "$WORK/stream.txt")"
grep -q '^: heartbeat' "$WORK/stream.txt" || fail "stream: no heartbeat in 1.5 s"

rc=0
HERALD_BASE="$BASE" HERALD_KEY="$(api_key)" INBOX_TOKEN="$tok" INBOX_USER=zoe \
  python3 "$(dirname "$0")/lib/inbox_page.py" || rc=$?
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] || fail "the inbox page (exit $rc)"
stop_herald
if grep -q "$tok" "$WORK/herald.log"; then fail "the user token appears in the log"; fi
echo "inbox page checked"
