#!/usr/bin/env bash
# Signed webhooks end to end: herald's webhook provider with a Standard
# Webhooks secret POSTs to the fake's receiver (tests/fakeprov), which
# verifies webhook-id / webhook-timestamp / webhook-signature: 5
# notifications, all verified and `sent`, the webhook-id being the
# notification id.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/fakeprov.sh"

SECRET="whsec_$(printf 'herald-e2e-webhook-key-0123456789' | base64 -w0)"
fakeprov_start -webhook-secret "$SECRET"

start_herald --set pipeline.workers=1 --set api.allow_private_webhook_urls=1 \
  --set channel.webhook.providers=hooks --set provider.hooks.type=webhook \
  --set provider.hooks.url="$FAKE_HTTP/hook/herald" --set provider.hooks.secret="$SECRET"

users=(); aud=""
for i in 1 2 3 4 5; do
  expect_status 200 PUT "/v1/users/w$i" "{\"locale\":\"en\",\"timezone\":\"UTC\",\"webhook_url\":\"$FAKE_HTTP/hook/w$i\"}" >/dev/null
  users+=("w$i"); aud+="${aud:+,}\"w$i\""
done
expect_status 200 PUT /v1/templates/ping/webhook '{"locale":"en","title":"Ping","body":"Hello {{user_id}}"}' >/dev/null
expect_status 202 POST /v1/events "{\"event_id\":\"ev-wh\",\"type\":\"ping\",\"channels\":[\"webhook\"],\"audience\":{\"users\":[$aud]},\"data\":{}}" >/dev/null
sent() { local u; for u in "${users[@]}"; do req GET "/v1/notifications/$(notif_id ev-wh "$u" webhook)" | grep -q '"status":"sent"' || return 1; done; }
for _ in $(seq 1 200); do sent && break; sleep 0.05; done
sent || fail "webhooks not sent: $(fake_stats) $(req GET "/v1/notifications/$(notif_id ev-wh w1 webhook)")"
[ "$(fake_stat 's["webhook_verified"]')" = 5 ] || fail "verified: $(fake_stats)"
[ "$(fake_stat 's["webhook_failed"]')" = 0 ] || fail "failed: $(fake_stats)"
fake_requests webhook | python3 -c '
import json, sys
ids = sorted(json.loads(l)["headers"]["Webhook-Id"][0] for l in sys.stdin)
want = sorted(sys.argv[1:])
assert ids == want, (ids, want)
' $(for u in "${users[@]}"; do notif_id ev-wh "$u" webhook; done) || fail "webhook-id: $(fake_requests webhook | head -2)"
echo "5 signed webhooks verified by the receiver"
stop_herald
echo "PASS"
