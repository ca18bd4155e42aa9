#!/usr/bin/env bash
# End to end through the HTTP API on the embedded bus: an event for a topic
# with three subscribers becomes three delivered notifications per enabled
# channel, queryable with status "sent"; opt-outs, duplicates, unknown users
# and invalid events behave as documented.
source "$(dirname "$0")/lib/common.sh"
start_herald

for u in alice bob carol; do
  expect_status 200 PUT /v1/users/$u "{\"email\":\"$u@example.com\",\"phone\":\"+1555000$((RANDOM%1000))\",\"locale\":\"en\",\"timezone\":\"UTC\",\"devices\":[{\"platform\":\"apns\",\"token\":\"tok-$u\"}]}" >/dev/null
  expect_status 201 POST /v1/topics/product:iphone15/subscribers "{\"user_id\":\"$u\"}" >/dev/null
done
expect_status 200 PUT /v1/templates/back_in_stock/push '{"locale":"en","title":"{{data.product}} is back","body":"Hi {{user_id}}, {{data.product}} costs {{data.price}}"}' >/dev/null
expect_status 200 PUT /v1/templates/back_in_stock/email '{"locale":"en","title":"{{data.product}} is back in stock","body":"Hello {{user_id}}"}' >/dev/null
expect_status 200 PUT /v1/templates/back_in_stock/sms '{"locale":"en","title":"","body":"{{data.product}} is back"}' >/dev/null
# carol opted out of SMS
expect_status 200 PUT /v1/users/carol/preferences '{"channels":{"sms":false}}' >/dev/null

t0=$(date +%s%N)
body=$(expect_status 202 POST /v1/events '{"event_id":"ev-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"$799"}}')
echo "$body" | grep -q '"accepted":1' || fail "accepted count: $body"

# Wait until every expected notification is queryable with status sent.
check_sent() {
  for u in alice bob carol; do
    for ch in push email; do
      r=$(req GET /v1/notifications/$(notif_id ev-1 $u $ch))
      echo "$r" | grep -q '"status":"sent"' || return 1
    done
  done
  for u in alice bob; do
    r=$(req GET /v1/notifications/$(notif_id ev-1 $u sms))
    echo "$r" | grep -q '"status":"sent"' || return 1
  done
  r=$(req GET /v1/notifications/$(notif_id ev-1 carol sms))
  echo "$r" | grep -q '"status":"suppressed"' || return 1
}
for _ in $(seq 1 200); do check_sent && break; sleep 0.05; done
check_sent || fail "notifications not all sent"
t1=$(date +%s%N)
echo "event -> 8 sent + 1 suppressed, queryable, in $(( (t1 - t0) / 1000000 )) ms"

# Sandbox output: 3 push lines, 3 email, 2 sms, with rendered text.
[ "$(wc -l < "$WORK/data/sandbox/push.jsonl")" = 3 ] || fail "push lines: $(cat "$WORK/data/sandbox/push.jsonl")"
[ "$(wc -l < "$WORK/data/sandbox/email.jsonl")" = 3 ] || fail "email lines"
[ "$(wc -l < "$WORK/data/sandbox/sms.jsonl")" = 2 ] || fail "sms lines"
grep -q '"title":"iPhone 15 is back","body":"Hi alice, iPhone 15 costs \$799"' "$WORK/data/sandbox/push.jsonl" || fail "rendered push: $(cat "$WORK/data/sandbox/push.jsonl")"
grep -q '"address":"apns:tok-bob"' "$WORK/data/sandbox/push.jsonl" || fail "push address"

# History of one user, newest first, with paging.
r=$(expect_status 200 GET "/v1/users/alice/notifications?limit=2")
echo "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"])==2, d; assert d["next_cursor"], d' || fail "history page 1: $r"
cur=$(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
r=$(expect_status 200 "GET" "/v1/users/alice/notifications?limit=2&cursor=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$cur")")
echo "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"])==1, d' || fail "history page 2: $r"

# The same event_id again is a duplicate: nothing new is delivered.
expect_status 202 POST /v1/events '{"event_id":"ev-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"$799"}}' >/dev/null
# An event to an unknown user is recorded as failed.
expect_status 202 POST /v1/events '{"event_id":"ev-2","type":"back_in_stock","audience":{"users":["nobody"]},"channels":["push"],"data":{}}' >/dev/null
for _ in $(seq 1 200); do req GET /v1/notifications/$(notif_id ev-2 nobody push) | grep -q '"status":"failed"' && break; sleep 0.05; done
req GET /v1/notifications/$(notif_id ev-2 nobody push) | grep -q '"status":"failed"' || fail "unknown user not failed"
# Fan-out has dropped the duplicate (it produces nothing for it, so nothing
# can still be on its way): only then is "no new line" meaningful.
# (Read /metrics whole first: with pipefail, grep -q closing the pipe early
# would fail curl.)
dup_seen() { local m; m=$(acurl -fs "$BASE/metrics") && grep -q '^herald_events_duplicate_total 1$' <<<"$m"; }
for _ in $(seq 1 200); do dup_seen && break; sleep 0.05; done
dup_seen || fail "fan-out did not report the duplicate"
[ "$(wc -l < "$WORK/data/sandbox/push.jsonl")" = 3 ] || fail "duplicate event delivered again"

# Invalid input is refused with problem+json naming the field.
r=$(expect_status 400 POST /v1/events '{"event_id":"x","type":"t"')
echo "$r" | grep -q '"field"' || fail "malformed JSON problem: $r"
r=$(req POST /v1/events '{"type":"t","audience":{"users":["a"]}}')
case "$r" in 4??*event_id*) ;; *) fail "missing event_id: $r";; esac

# Graceful shutdown and restart: state survives, nothing is re-delivered.
stop_herald
start_herald
req GET /v1/notifications/$(notif_id ev-1 alice push) | grep -q '"status":"sent"' || fail "status lost on restart"
# End marker: a new push to the same users. Push records are keyed by user,
# so each user's new notification sits behind anything of ev-1 the
# dispatcher could take up again; once all three are sent, a re-delivery
# would already be in the file.
expect_status 202 POST /v1/events '{"event_id":"ev-3","type":"back_in_stock","audience":{"topic":"product:iphone15"},"channels":["push"],"data":{"product":"iPad","price":"$1"}}' >/dev/null
marker_sent() {
  for u in alice bob carol; do
    req GET /v1/notifications/$(notif_id ev-3 $u push) | grep -q '"status":"sent"' || return 1
  done
}
for _ in $(seq 1 200); do marker_sent && break; sleep 0.05; done
marker_sent || fail "ev-3 not sent after restart"
[ "$(grep -c '"event_id":"ev-1"' "$WORK/data/sandbox/push.jsonl")" = 3 ] || fail "re-delivered after restart: $(cat "$WORK/data/sandbox/push.jsonl")"
[ "$(wc -l < "$WORK/data/sandbox/push.jsonl")" = 6 ] || fail "push lines after restart: $(cat "$WORK/data/sandbox/push.jsonl")"
stop_herald
echo "PASS"
