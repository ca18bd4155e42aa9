#!/usr/bin/env bash
# The whole pipeline on a real Apache Kafka broker (single-node KRaft, fresh
# per run): the checks of e2e_embedded.sh through the HTTP API, then records
# written into raw-events by kcat (a client herald did not write): a good
# event is delivered, a garbage record and an invalid event land in
# notifications-dlq with the reason, and later good events still flow. A
# graceful restart re-delivers nothing (offsets were committed).
#
# Skips (77) without Java or kcat unless CI=true, where they are required.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/kafka.sh"
kafka_require
kafka_start 1
B=$KAFKA_BROKERS
READY_TIMEOUT=60
KOPTS=(--bus kafka --kafka-brokers "$B")

t=$(date +%s%N)
start_herald "${KOPTS[@]}"
echo "herald ready on Kafka (7 topics created, groups joined) in $(( ($(date +%s%N) - t) / 1000000 )) ms"

for u in alice bob carol; do
  expect_status 200 PUT /v1/users/$u "{\"email\":\"$u@example.com\",\"phone\":\"+1555000$((RANDOM%1000))\",\"locale\":\"en\",\"timezone\":\"UTC\",\"devices\":[{\"platform\":\"apns\",\"token\":\"tok-$u\"}]}" >/dev/null
  expect_status 201 POST /v1/topics/product:iphone15/subscribers "{\"user_id\":\"$u\"}" >/dev/null
done
expect_status 200 PUT /v1/templates/back_in_stock/push '{"locale":"en","title":"{{data.product}} is back","body":"Hi {{user_id}}, {{data.product}} costs {{data.price}}"}' >/dev/null
expect_status 200 PUT /v1/templates/back_in_stock/email '{"locale":"en","title":"{{data.product}} is back in stock","body":"Hello {{user_id}}"}' >/dev/null
expect_status 200 PUT /v1/templates/back_in_stock/sms '{"locale":"en","title":"","body":"{{data.product}} is back"}' >/dev/null
expect_status 200 PUT /v1/users/carol/preferences '{"channels":{"sms":false}}' >/dev/null

# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
  "$@"
}
status_is() { req GET "/v1/notifications/$(notif_id "$1" "$2" "$3")" | grep -q "\"status\":\"$4\""; }

# ---- 1. through the API: 3 subscribers x channels ----
t0=$(date +%s%N)
body=$(expect_status 202 POST /v1/events '{"event_id":"ev-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"$799"}}')
echo "$body" | grep -q '"accepted":1' || fail "accepted count: $body"
check_sent() {
  local u ch
  for u in alice bob carol; do
    for ch in push email; do status_is ev-1 $u $ch sent || return 1; done
  done
  status_is ev-1 alice sms sent && status_is ev-1 bob sms sent && status_is ev-1 carol sms suppressed
}
wait_for 30 check_sent || fail "notifications not all sent"
echo "API event -> 8 sent + 1 suppressed, queryable, in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

SB="$WORK/data/sandbox"
[ "$(wc -l < "$SB/push.jsonl")" = 3 ] || fail "push lines: $(cat "$SB/push.jsonl")"
[ "$(wc -l < "$SB/email.jsonl")" = 3 ] || fail "email lines"
[ "$(wc -l < "$SB/sms.jsonl")" = 2 ] || fail "sms lines"
grep -q '"title":"iPhone 15 is back","body":"Hi alice, iPhone 15 costs \$799"' "$SB/push.jsonl" || fail "rendered push: $(cat "$SB/push.jsonl")"
grep -q '"address":"apns:tok-bob"' "$SB/push.jsonl" || fail "push address"

r=$(expect_status 200 GET "/v1/users/alice/notifications?limit=2")
echo "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"])==2, d; assert d["next_cursor"], d' || fail "history page 1: $r"

# A duplicate event_id delivers nothing new; an unknown user is recorded as failed.
expect_status 202 POST /v1/events '{"event_id":"ev-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"$799"}}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-2","type":"back_in_stock","audience":{"users":["nobody"]},"channels":["push"],"data":{}}' >/dev/null
wait_for 30 status_is ev-2 nobody push failed || fail "unknown user not failed"
r=$(expect_status 400 POST /v1/events '{"event_id":"x","type":"t"')
echo "$r" | grep -q '"field"' || fail "malformed JSON problem: $r"

# ---- 2. records written by kcat, not by herald ----
kprod() { # KEY VALUE: one record into raw-events, keyed like a Java producer would
  printf '%s\t%s\n' "$1" "$2" | kcat -P -b "$B" -t raw-events -K '\t' -q \
    -X partitioner=murmur2_random -X acks=all || fail "kcat could not produce $1"
}
t0=$(date +%s%N)
kprod kcat-1 '{"event_id":"kcat-1","type":"back_in_stock","audience":{"users":["alice","bob"]},"channels":["push"],"data":{"product":"Pixel 9","price":"$699"}}'
wait_for 30 status_is kcat-1 bob push sent || fail "event produced by kcat not delivered"
status_is kcat-1 alice push sent || fail "kcat-1 alice not sent"
grep -q '"event_id":"kcat-1","user_id":"alice".*"title":"Pixel 9 is back"' "$SB/push.jsonl" || fail "kcat-1 not in the sandbox: $(cat "$SB/push.jsonl")"
echo "event produced by kcat -> delivered in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

kprod garbage-1 'this is not JSON {'
kprod invalid-1 '{"event_id":"invalid-1","audience":{"users":["alice"]}}'
dlq() { kcat -C -b "$B" -t notifications-dlq -o beginning -e -q -f '%k\t%s\n' 2>/dev/null; }
dlq_has() { dlq | grep -q "^$1	"; }
wait_for 30 dlq_has garbage-1 || fail "garbage record not in notifications-dlq: $(dlq)"
wait_for 10 dlq_has invalid-1 || fail "invalid event not in notifications-dlq: $(dlq)"
dlq | grep "^garbage-1	" | python3 -c '
import json, sys
d = json.loads(sys.stdin.readline().split("\t", 1)[1])
assert d["stage"] == "fanout" and d["topic"] == "raw-events", d
assert d["payload"] == "this is not JSON {", d
assert "invalid" in d["reason"], d
print("DLQ record:", d["reason"])' || fail "DLQ record for garbage-1: $(dlq)"
dlq | grep "^invalid-1	" | grep -q '"reason":"invalid event: type' || fail "DLQ reason for invalid-1 does not name the field: $(dlq)"

# The partition moved on: good events after the bad ones still flow.
kprod kcat-2 '{"event_id":"kcat-2","type":"back_in_stock","audience":{"users":["carol"]},"channels":["push"],"data":{"product":"Pixel 9","price":"$699"}}'
expect_status 202 POST /v1/events '{"event_id":"ev-3","type":"back_in_stock","audience":{"users":["bob"]},"channels":["push"],"data":{"product":"Watch","price":"$1"}}' >/dev/null
wait_for 30 status_is kcat-2 carol push sent || fail "good event after the garbage not delivered"
wait_for 30 status_is ev-3 bob push sent || fail "API event after the garbage not delivered"
npush=$(wc -l < "$SB/push.jsonl")
[ "$npush" = 7 ] || fail "push lines after kcat events: $npush (wanted 7): $(cat "$SB/push.jsonl")"
m=$(acurl -fs "$BASE/metrics" | grep '^herald_dlq_records_total ' || true)
[ "${m##* }" = 2 ] || fail "herald_dlq_records_total: '$m' (wanted 2)"

# ---- 3. graceful restart: committed offsets, nothing re-delivered ----
stop_herald
start_herald "${KOPTS[@]}"
status_is ev-1 alice push sent || fail "status lost on restart"
kprod kcat-3 '{"event_id":"kcat-3","type":"back_in_stock","audience":{"users":["alice"]},"channels":["push"],"data":{"product":"Pixel 9","price":"$699"}}'
wait_for 30 status_is kcat-3 alice push sent || fail "event after restart not delivered"
sleep 0.5
npush=$(wc -l < "$SB/push.jsonl")
[ "$npush" = 8 ] || fail "re-delivered after restart: $npush push lines (wanted 8): $(cat "$SB/push.jsonl")"

# Graceful stop: exit code 0 (under the sanitizers a leak or error changes it).
stop_herald
if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$WORK/herald.log"; then
  grep -A20 -E 'Sanitizer|runtime error:' "$WORK/herald.log" | head -60 >&2
  fail "sanitizer report in herald's log"
fi
echo "PASS"
