#!/usr/bin/env bash
# FCM end to end: herald's FCM provider (a service account made by the
# fake, RS256 assertion, OAuth2 token, TLS with the fake's CA) against the
# fake FCM of tests/fakeprov.
#  1. 30 notifications: all `sent`; ONE token request for all of them (the
#     access token is reused), the sends over one connection; a send carries the device
#     token and the rendered title, the project of the service account.
#  2. UNREGISTERED (404): the notification is dead and the device removed.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/fakeprov.sh"

fakeprov_start -fcm-sa-out "$WORK/sa.json" -fcm-project herald-e2e -fcm-unregistered fcm-dead-token

start_herald --set pipeline.workers=1 --set channel.push.providers=fcm \
  --set provider.fcm.credentials_file="$WORK/sa.json" --set provider.fcm.url="$FAKE_TLS" \
  --set provider.fcm.ca_file="$FAKE_CA_FILE" --set provider.fcm.breaker_min_requests=100000

mkuser() { # mkuser NAME TOKEN
  expect_status 200 PUT "/v1/users/$1" "{\"locale\":\"en\",\"timezone\":\"UTC\",\"devices\":[{\"platform\":\"fcm\",\"token\":\"$2\"}]}" >/dev/null
}
wait_status() { # wait_status STATUS EVENT USER...
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

users=(); aud=""
for i in $(seq 1 30); do users+=("f$i"); mkuser "f$i" "fcm-token-$i"; aud+="${aud:+,}\"f$i\""; done
fake_ctl /control/latency '{"route":"fcm_send","ms":30}'
expect_status 202 POST /v1/events "{\"event_id\":\"ev-fcm\",\"type\":\"ping\",\"channels\":[\"push\"],\"audience\":{\"users\":[$aud]},\"data\":{\"text\":\"hi\"}}" >/dev/null
wait_status sent ev-fcm "${users[@]}" || fail "not every FCM notification sent: $(fake_stats)"
s=$(fake_stats)
python3 - "$s" <<'PY' || fail "one token for many sends: $s"
import json, sys
s = json.loads(sys.argv[1])
assert s["fcm_token_requests"] == 1 and s["fcm_tokens_issued"] == 1, s
assert s["requests"]["fcm_send"] == 30 and s["responses"]["fcm_send"] == {"200": 30}, s
assert s["fcm_auth_failed"] == 0, s
PY
# The sends share one connection (the first token fetch blocks on a
# handle of its own, so the fake sees a second connection for it).
conns=$(fake_requests fcm_send | python3 -c 'import json,sys; print(len({json.loads(l)["conn"] for l in sys.stdin}))')
[ "$conns" = 1 ] || fail "sends over $conns connections"
fake_requests fcm_send | python3 -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin]
r = [x for x in recs if "\"fcm-token-7\"" in x["body"]]
assert len(r) == 1, len(r)
assert r[0]["path"] == "/v1/projects/herald-e2e/messages:send", r[0]["path"]
m = json.loads(r[0]["body"])["message"]
assert m["token"] == "fcm-token-7" and m["notification"]["title"] == "Hello f7" and m["notification"]["body"] == "hi", m
' || fail "the send of f7: $(fake_requests fcm_send | grep fcm-token-7)"
echo "30 FCM notifications sent with 1 token request, the sends over 1 connection (up to $(fake_stat 's["max_concurrent_streams"]') streams)"

mkuser gone fcm-dead-token
expect_status 202 POST /v1/events '{"event_id":"ev-unreg","type":"ping","channels":["push"],"audience":{"users":["gone"]},"data":{"text":"x"}}' >/dev/null
wait_status dead ev-unreg gone || fail "UNREGISTERED not dead: $(req GET "/v1/notifications/$(notif_id ev-unreg gone push)")"
req GET /v1/users/gone | grep -q '"devices":\[\]' || fail "device not removed: $(req GET /v1/users/gone)"
[ "$(fake_stat 's["fcm_token_requests"]')" = 1 ] || fail "token requested again: $(fake_stats)"
echo "UNREGISTERED: dead, device removed"
stop_herald
echo "PASS"
