#!/usr/bin/env bash
# SMS and e-mail end to end: herald's Twilio and SendGrid providers against
# the fakes of tests/fakeprov (TLS with the fake's CA).
#  1. an event to 3 users on sms + email: the fake Twilio gets 3 form posts
#     (basic auth, To, From, Body, a StatusCallback naming herald), the fake
#     SendGrid 3 mails (bearer key, the user's address); e-mails end `sent`.
#  2. the fake Twilio calls each StatusCallback with MessageStatus=delivered,
#     signed (X-Twilio-Signature): herald accepts them and the three SMS
#     notifications end `delivered`.
#  3. a number Twilio refuses (21211): the notification is dead.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/fakeprov.sh"

fakeprov_start -twilio-sid AC0123456789abcdef0123456789abcdef -twilio-token tw-e2e-secret \
  -sendgrid-key SG.e2e-key -twilio-invalid +15550000999 -twilio-callback-delay 50ms

start_herald --set pipeline.workers=1 \
  --set channel.sms.providers=sms --set provider.sms.type=twilio \
  --set provider.sms.account_sid=AC0123456789abcdef0123456789abcdef --set provider.sms.auth_token=tw-e2e-secret \
  --set provider.sms.from=+15005550006 --set provider.sms.status_callback_url="$BASE" \
  --set provider.sms.url="$FAKE_TLS" --set provider.sms.ca_file="$FAKE_CA_FILE" \
  --set channel.email.providers=mail --set provider.mail.type=sendgrid --set provider.mail.api_key=SG.e2e-key \
  --set provider.mail.from=herald@example.com --set provider.mail.url="$FAKE_TLS" --set provider.mail.ca_file="$FAKE_CA_FILE"

wait_status() { # wait_status STATUS EVENT CHANNEL USER...
  local want=$1 ev=$2 ch=$3 u; shift 3
  for _ in $(seq 1 300); do
    local all=1
    for u in "$@"; do req GET "/v1/notifications/$(notif_id "$ev" "$u" "$ch")" | grep -q "\"status\":\"$want\"" || { all=0; break; }; done
    [ "$all" = 1 ] && return 0
    sleep 0.05
  done
  return 1
}
for i in 1 2 3; do
  expect_status 200 PUT "/v1/users/s$i" "{\"email\":\"s$i@example.com\",\"phone\":\"+1555000000$i\",\"locale\":\"en\",\"timezone\":\"UTC\"}" >/dev/null
done
expect_status 200 PUT /v1/users/bad '{"phone":"+15550000999","locale":"en","timezone":"UTC"}' >/dev/null
expect_status 200 PUT /v1/templates/order/sms '{"locale":"en","title":"","body":"Order {{data.order}} shipped"}' >/dev/null
expect_status 200 PUT /v1/templates/order/email '{"locale":"en","title":"Order {{data.order}}","body":"Hi {{user_id}}, it shipped"}' >/dev/null

expect_status 202 POST /v1/events '{"event_id":"ev-o","type":"order","channels":["sms","email"],"audience":{"users":["s1","s2","s3"]},"data":{"order":"A-1"}}' >/dev/null
wait_status sent ev-o email s1 s2 s3 || fail "e-mails not sent: $(fake_stats)"
wait_status delivered ev-o sms s1 s2 s3 || fail "SMS not delivered by the status callbacks: $(fake_stats) $(req GET "/v1/notifications/$(notif_id ev-o s1 sms)")"
s=$(fake_stats)
python3 - "$s" <<'PY' || fail "fake stats: $s"
import json, sys
s = json.loads(sys.argv[1])
assert s["requests"]["twilio"] == 3 and s["responses"]["twilio"] == {"201": 3}, s
assert s["requests"]["sendgrid"] == 3 and s["responses"]["sendgrid"] == {"202": 3}, s
assert s["twilio_callbacks_sent"] == 3 and s["twilio_callbacks_ok"] == 3, s
PY
fake_requests twilio | python3 -c '
import json, sys, urllib.parse
recs = [json.loads(l) for l in sys.stdin]
f = [urllib.parse.parse_qs(r["body"]) for r in recs]
assert sorted(x["To"][0] for x in f) == ["+15550000001", "+15550000002", "+15550000003"], f
assert all(x["From"] == ["+15005550006"] and x["Body"] == ["Order A-1 shipped"] for x in f), f
assert all(x["StatusCallback"][0].startswith(sys.argv[1] + "/v1/callbacks/twilio/sms") for x in f), f
' "$BASE" || fail "twilio requests: $(fake_requests twilio)"
fake_requests sendgrid | python3 -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin]
to = sorted(json.loads(r["body"])["personalizations"][0]["to"][0]["email"] for r in recs)
assert to == ["s1@example.com", "s2@example.com", "s3@example.com"], to
m = json.loads(recs[0]["body"])
assert m["from"]["email"] == "herald@example.com" and m["subject"].startswith("Order A-1"), m
' || fail "sendgrid requests: $(fake_requests sendgrid)"
echo "3 SMS delivered (signed status callbacks), 3 e-mails sent"

expect_status 202 POST /v1/events '{"event_id":"ev-bad","type":"order","channels":["sms"],"audience":{"users":["bad"]},"data":{"order":"B-2"}}' >/dev/null
wait_status dead ev-bad sms bad || fail "21211 not dead: $(req GET "/v1/notifications/$(notif_id ev-bad bad sms)")"
echo "21211: dead"
stop_herald
echo "PASS"
