#!/usr/bin/env bash
# The DLQ through the command line on the embedded bus: an event whose type
# has no template is dead-lettered; `herald dlq list` shows it with its
# reason; once the template exists `herald dlq redrive --all` sends it
# again and it is delivered (its event_id is not taken as a duplicate);
# a second --all redrives nothing. (The API refuses such events by default;
# api.refuse_undeliverable_events=0 lets them through, as from Kafka producers.) Also: a retriable provider failure goes
# through the retry tiers (milliseconds here) to the DLQ, and a permanent
# one invalidates the address.
source "$(dirname "$0")/lib/common.sh"
start_herald --set retry.delays_ms=20,20,20 --set api.refuse_undeliverable_events=0

expect_status 200 PUT /v1/users/dora '{"email":"dora@example.com","locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"tok-dora"}]}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-dl","type":"welcome","audience":{"users":["dora"]},"data":{}}' >/dev/null

dlq() { "$HERALD" dlq "$@" --url "$BASE" --key "$(api_key)"; }
listed=""
for _ in $(seq 1 200); do
  listed=$(dlq list --reason "no templates") || fail "dlq list: $listed"
  echo "$listed" | grep -q '"id"' && break
  sleep 0.05
done
echo "$listed" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert len(d["items"]) == 1, d
e = d["items"][0]
assert "no templates" in e["reason"] and e["topic"] == "raw-events" and not e["redriven"], e
assert "ev-dl" in e["payload"], e
' || fail "dlq list: $listed"
"$HERALD" dlq list --since nonsense --url "$BASE" 2>/dev/null && fail "--since nonsense accepted"
"$HERALD" dlq redrive --url "$BASE" 2>/dev/null && fail "redrive without --id or --all accepted"

expect_status 200 PUT /v1/templates/welcome/push '{"locale":"en","title":"Welcome","body":"Hi {{user_id}}"}' >/dev/null
out=$(dlq redrive --all --reason "no templates") || fail "redrive: $out"
echo "$out" | grep -q '"redriven":1' || fail "redrive --all: $out"
id=$(notif_id ev-dl dora push)
for _ in $(seq 1 200); do req GET "/v1/notifications/$id" | grep -q '"status":"sent"' && break; sleep 0.05; done
req GET "/v1/notifications/$id" | grep -q '"status":"sent"' || fail "redriven event not delivered"
out=$(dlq redrive --all) || fail "second redrive: $out"
echo "$out" | grep -q '"redriven":0' || fail "second redrive --all: $out"
dlq list | grep -q '"redriven":true' || fail "entry not marked redriven"
echo "dead-lettered event redriven through the CLI and delivered"

# Retriable failures: three tiers, then the DLQ with the reason.
expect_status 200 PUT /v1/users/rex '{"locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"sandbox-fail-retry"}]}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-rt","type":"welcome","audience":{"users":["rex"]},"data":{}}' >/dev/null
id=$(notif_id ev-rt rex push)
for _ in $(seq 1 200); do req GET "/v1/notifications/$id" | grep -q '"status":"dead"' && break; sleep 0.05; done
r=$(expect_status 200 GET "/v1/notifications/$id")
echo "$r" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "dead", d
h = [x["status"] for x in d["history"]]
assert h == ["failed", "failed", "failed", "dead"], h
' || fail "retry tiers: $r"
dlq list --reason "retries exhausted" | grep -q '"topic":"notifications-push"' || fail "retries exhausted not in the DLQ"
echo "retriable failure: 3 tiers, then the DLQ"

# Permanent failure: the address is invalidated and not used again.
expect_status 200 PUT /v1/users/pia '{"email":"pia@example.com","locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"sandbox-fail-permanent"}]}' >/dev/null
expect_status 202 POST /v1/events '{"event_id":"ev-pm","type":"welcome","audience":{"users":["pia"]},"data":{}}' >/dev/null
id=$(notif_id ev-pm pia push)
for _ in $(seq 1 200); do req GET "/v1/notifications/$id" | grep -q '"status":"dead"' && break; sleep 0.05; done
req GET "/v1/notifications/$id" | grep -q '"status":"dead"' || fail "permanent failure not dead"
req GET /v1/users/pia | grep -q '"devices":\[\]' || fail "address not invalidated: $(req GET /v1/users/pia)"
stop_herald
echo "permanent failure: address invalidated"
