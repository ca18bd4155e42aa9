#!/usr/bin/env bash
# APNs end to end: herald's APNs provider (token auth, ES256 JWT from a
# test .p8, TLS with the fake's CA) against the fake APNs of tests/fakeprov.
#  1. 40 notifications with 50 ms injected delay go over ONE connection
#     with multiplexed streams (the fake's stats: 1 TLS connection, more
#     than one stream in flight on it), one provider token for all, every
#     notification `sent`; the request carries topic, apns-id (the
#     notification id as a UUID) and the rendered alert.
#  2. injected 503s (Retry-After 0): the next 10 requests fail; the
#     notifications go through the retry tier and end `sent`, each with a
#     failed step in its history.
#  3. 410 Unregistered: the notification is dead and the device removed
#     from the user; a later event does not reach the fake for that token.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/fakeprov.sh"

fake_gen_p8 "$WORK/apns.p8"
DEAD=dead0000000000000000000000000000000000000000000000000000000000aa
fakeprov_start -apns-key "$WORK/apns.p8" -apns-key-id KEY1234567 -apns-team-id TEAM123456 -apns-unregistered "$DEAD"

# One worker: one dispatcher thread, one engine, so one connection to APNs.
start_herald --set pipeline.workers=1 --set retry.delays_ms=200,200,200 \
  --set channel.push.providers=apns \
  --set provider.apns.url="$FAKE_TLS" --set provider.apns.ca_file="$FAKE_CA_FILE" \
  --set provider.apns.key_file="$WORK/apns.p8" --set provider.apns.key_id=KEY1234567 \
  --set provider.apns.team_id=TEAM123456 --set provider.apns.topic=com.example.herald \
  --set provider.apns.breaker_min_requests=100000

tok() { printf '%064x' "$1"; }
mkuser() { # mkuser NAME TOKEN
  expect_status 200 PUT "/v1/users/$1" "{\"locale\":\"en\",\"timezone\":\"UTC\",\"devices\":[{\"platform\":\"apns\",\"token\":\"$2\"}]}" >/dev/null
}
audience() { local out="" u; for u in "$@"; do out+="${out:+,}\"$u\""; done; echo "$out"; }
wait_status() { # wait_status STATUS EVENT USER... : every notification reaches STATUS
  local want=$1 ev=$2 u; shift 2
  for _ in $(seq 1 300); do
    local all=1
    for u in "$@"; do req GET "/v1/notifications/$(notif_id "$ev" "$u" push)" | grep -q "\"status\":\"$want\"" || { all=0; break; }; done
    [ "$all" = 1 ] && return 0
    sleep 0.05
  done
  return 1
}
expect_status 200 PUT /v1/templates/ping/push '{"locale":"en","title":"Hello {{user_id}}","body":"{{data.text}}"}' >/dev/null

# ---- 1. many notifications, one connection, multiplexed streams
users=(); for i in $(seq 1 40); do users+=("m$i"); mkuser "m$i" "$(tok "$i")"; done
fake_ctl /control/latency '{"route":"apns","ms":50}'
expect_status 202 POST /v1/events "{\"event_id\":\"ev-many\",\"type\":\"ping\",\"channels\":[\"push\"],\"audience\":{\"users\":[$(audience "${users[@]}")]},\"data\":{\"text\":\"hi\"}}" >/dev/null
wait_status sent ev-many "${users[@]}" || fail "not every notification sent: $(fake_stats)"
fake_ctl /control/latency '{"route":"apns","ms":0}'
s=$(fake_stats)
python3 - "$s" <<'PY' || fail "one connection, multiplexed: $s"
import json, sys
s = json.loads(sys.argv[1])
assert s["requests"]["apns"] == 40, s["requests"]
assert s["responses"]["apns"] == {"200": 40}, s["responses"]
assert s["tls_connections"] == 1, "connections: %d" % s["tls_connections"]
assert s["max_concurrent_streams"] > 1, "streams: %d" % s["max_concurrent_streams"]
assert s["apns_jwt_verified"] == 40 and s["apns_jwt_failed"] == 0, s
assert s["apns_provider_tokens"] == 1, "provider tokens: %d" % s["apns_provider_tokens"]
PY
id=$(notif_id ev-many m7 push)
fake_requests apns | python3 -c '
import json, sys
id, tok = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in sys.stdin]
r = [x for x in recs if x["path"] == "/3/device/" + tok]
assert len(r) == 1, r
h = {k.lower(): v[0] for k, v in r[0]["headers"].items()}
assert h["apns-topic"] == "com.example.herald", h
assert h["apns-id"].replace("-", "").lower() == id, (h["apns-id"], id)
assert h["authorization"].startswith("bearer "), h
p = json.loads(r[0]["body"])
assert p["aps"]["alert"]["title"] == "Hello m7" and p["aps"]["alert"]["body"] == "hi", p
assert r[0]["proto"] == "HTTP/2.0", r[0]["proto"]
' "$id" "$(tok 7)" || fail "the request of m7: $(fake_requests apns | grep "$(tok 7)")"
echo "40 notifications sent over 1 connection, up to $(fake_stat 's["max_concurrent_streams"]') streams at once"

# ---- 2. injected 503s, retried until sent
fake_ctl /reset
fake_ctl /control/fail-next '{"route":"apns","n":10,"status":503,"retry_after":"0"}'
users=(); for i in $(seq 101 110); do users+=("r$i"); mkuser "r$i" "$(tok "$i")"; done
expect_status 202 POST /v1/events "{\"event_id\":\"ev-retry\",\"type\":\"ping\",\"channels\":[\"push\"],\"audience\":{\"users\":[$(audience "${users[@]}")]},\"data\":{\"text\":\"again\"}}" >/dev/null
wait_status sent ev-retry "${users[@]}" || fail "not sent after the 503s: $(fake_stats)"
[ "$(fake_stat 's["responses"]["apns"].get("503", 0)')" = 10 ] || fail "503s: $(fake_stats)"
[ "$(fake_stat 's["responses"]["apns"].get("200", 0)')" = 10 ] || fail "200s: $(fake_stats)"
for u in "${users[@]}"; do
  r=$(expect_status 200 GET "/v1/notifications/$(notif_id ev-retry "$u" push)")
  echo "$r" | python3 -c '
import json, sys
d = json.load(sys.stdin)
h = [x["status"] for x in d["history"]]
assert d["status"] == "sent" and "failed" in h and h[-1] == "sent", h
' || fail "history of $u: $r"
done
echo "10 injected 503s: all 10 notifications retried and sent"

# ---- 3. 410 Unregistered: dead, device removed, not used again
mkuser gone "$DEAD"
mkuser keep "$(tok 999)"
expect_status 202 POST /v1/events '{"event_id":"ev-410","type":"ping","channels":["push"],"audience":{"users":["gone"]},"data":{"text":"x"}}' >/dev/null
wait_status dead ev-410 gone || fail "410 not dead: $(req GET "/v1/notifications/$(notif_id ev-410 gone push)")"
req GET "/v1/notifications/$(notif_id ev-410 gone push)" | grep -q 'Unregistered' || fail "reason not kept: $(req GET "/v1/notifications/$(notif_id ev-410 gone push)")"
req GET /v1/users/gone | grep -q '"devices":\[\]' || fail "device not removed: $(req GET /v1/users/gone)"
expect_status 202 POST /v1/events '{"event_id":"ev-after","type":"ping","channels":["push"],"audience":{"users":["gone","keep"]},"data":{"text":"y"}}' >/dev/null
wait_status sent ev-after keep || fail "marker not sent"
r=$(req GET "/v1/notifications/$(notif_id ev-after gone push)")
echo "$r" | grep -q '"status":"sent"' && fail "sent to an invalidated device: $r"
[ "$(fake_requests apns | grep -c "/3/device/$DEAD")" = 1 ] || fail "the dead token was used again: $(fake_requests apns | grep -c "$DEAD")"
st=$(echo "${r#* }" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d.get("error",""))')
echo "410: dead, device removed; a later event for that user: $st"
stop_herald
echo "PASS"
