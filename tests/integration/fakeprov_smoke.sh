#!/usr/bin/env bash
# The fake providers themselves (tests/fakeprov), before herald's tests
# rely on them: go vet and the fake's Go tests, then over the wire with
# curl - APNs over HTTP/2 + TLS with the generated CA (many requests, one
# connection), injected latency, "fail the next N" with Retry-After, an
# error rate, 410 for a dead token; SendGrid 202 + X-Message-Id; a Twilio
# send whose signed status callback reaches the webhook receiver; a
# Standard Webhooks signature verified and a forged one refused; stats,
# recorded requests and reset.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/fakeprov.sh"

fakeprov_build --check
SECRET="whsec_$(printf 'fakeprov-smoke-key-0123456789' | base64 -w0)"
fakeprov_start -apns-unregistered deadbeef -webhook-secret "$SECRET" -twilio-sid ACsmoke -twilio-token tw-secret

apns() { # apns TOKEN [extra curl args] -> "STATUS BODY"
  local t=$1; shift
  curl -s --http2 --cacert "$FAKE_CA_FILE" -o "$WORK/out" -w '%{http_code} %{http_version}' \
    -H 'apns-topic: com.example.app' -H 'apns-push-type: alert' --data '{"aps":{"alert":"hi"}}' "$@" \
    "$FAKE_TLS/3/device/$t"
  echo " $(cat "$WORK/out")"
}

# 20 requests on one connection (curl reuses it within one invocation).
urls=()
for i in $(seq 1 20); do urls+=(-o /dev/null "$FAKE_TLS/3/device/abcd$(printf %04d "$i")"); done
codes=$(curl -s --http2 --cacert "$FAKE_CA_FILE" -H 'apns-topic: t' --data '{"aps":{}}' -w '%{http_code}\n' "${urls[@]}")
[ "$(grep -c '^200$' <<<"$codes")" = 20 ] || fail "20 APNs posts: $codes"
[ "$(fake_stat 's["tls_connections"]')" = 1 ] || fail "connections: $(fake_stats)"
[ "$(fake_stat 's["requests"]["apns"]')" = 20 ] || fail "requests: $(fake_stats)"

r=$(apns nothex); [[ "$r" == "400 2 "*BadDeviceToken* ]] || fail "non-hex token: $r"
r=$(apns deadbeef); [[ "$r" == "410 2 "*'"reason":"Unregistered"'*'"timestamp":'* ]] || fail "dead token: $r"
r=$(curl -s --http1.1 --cacert "$FAKE_CA_FILE" -H 'apns-topic: t' --data '{"aps":{}}' -o /dev/null -w '%{http_code}' "$FAKE_TLS/3/device/abcd")
[ "$r" = 505 ] || fail "APNs over HTTP/1.1 answered $r"

# fail-next 2 with Retry-After, then success
fake_ctl /control/fail-next '{"route":"apns","n":2,"status":503,"retry_after":"1"}'
for want in 503 503 200; do
  r=$(apns abcd -D "$WORK/hdr")
  [ "${r%% *}" = "$want" ] || fail "fail-next: wanted $want, got $r"
  if [ "$want" = 503 ]; then grep -qi '^retry-after: 1' "$WORK/hdr" || fail "no Retry-After"; fi
done
# every request fails at rate 1, then cleared
fake_ctl /control/errors '{"route":"apns","rate":1,"status":429}'
r=$(apns abcd); [[ "$r" == "429 "*TooManyRequests* ]] || fail "error rate: $r"
fake_ctl /control/errors '{"route":"apns","rate":0}'
# injected latency
fake_ctl /control/latency '{"route":"apns","ms":300}'
t0=$(date +%s%N); apns abcd >/dev/null; t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -ge 300 ] || fail "latency not injected: $(( (t1 - t0) / 1000000 )) ms"
fake_ctl /control/latency '{"route":"apns","ms":0}'
curl -s -o /dev/null -w '%{http_code}' -X POST --data '{"route":"nope"}' "$FAKE_CTL/control/latency" | grep -q 400 || fail "unknown route accepted"

# SendGrid
r=$(curl -s -D "$WORK/hdr" -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer SG.test-key' -H 'Content-Type: application/json' \
  --data '{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"h@example.com"},"subject":"s","content":[{"type":"text/plain","value":"x"}]}' \
  "$FAKE_HTTP/v3/mail/send")
[ "$r" = 202 ] && grep -qi '^x-message-id: ' "$WORK/hdr" || fail "sendgrid: $r"
r=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' --data '{}' "$FAKE_HTTP/v3/mail/send")
[ "$r" = 401 ] || fail "sendgrid bad key: $r"

# Twilio: the status callback goes to the receiver (unsigned by Standard
# Webhooks, so it fails there: what matters is that it was made, signed).
r=$(curl -s -u ACsmoke:tw-secret --data-urlencode 'To=+15550001' --data-urlencode 'From=+15550002' --data-urlencode 'Body=hello' \
  --data-urlencode "StatusCallback=$FAKE_HTTP/hook/twilio?x=1" -w ' %{http_code}' "$FAKE_HTTP/2010-04-01/Accounts/ACsmoke/Messages.json")
[[ "$r" == *'"sid":"SM'*' 201' ]] || fail "twilio send: $r"
r=$(curl -s -u ACsmoke:wrong --data 'To=1&From=2&Body=x' -o /dev/null -w '%{http_code}' "$FAKE_HTTP/2010-04-01/Accounts/ACsmoke/Messages.json")
[ "$r" = 401 ] || fail "twilio bad token: $r"
for _ in $(seq 1 100); do [ "$(fake_stat 's["twilio_callbacks_sent"]')" = 1 ] && break; sleep 0.05; done
cb=$(fake_requests twilio_callback)
python3 - "$cb" <<'PY' || fail "twilio callback: $cb"
import base64, hashlib, hmac, json, sys, urllib.parse
rec = json.loads(sys.argv[1].splitlines()[0])
params = urllib.parse.parse_qs(rec["body"])
assert params["MessageStatus"] == ["delivered"], params
data = rec["path"] + "".join(k + v for k in sorted(params) for v in params[k])
want = base64.b64encode(hmac.new(b"tw-secret", data.encode(), hashlib.sha1).digest()).decode()
assert rec["headers"]["X-Twilio-Signature"] == [want], (rec["headers"], want)
PY

# Standard Webhooks: a good signature, then a forged one.
body='{"id":"n1"}'; id=msg_1; ts=$(date +%s)
key_hex=$(printf 'fakeprov-smoke-key-0123456789' | od -An -tx1 | tr -d ' \n')
sig=$(printf '%s.%s.%s' "$id" "$ts" "$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64 -w0)
hook() { curl -s -o /dev/null -w '%{http_code}' -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: $1" --data "$body" "$FAKE_HTTP/hook/x"; }
[ "$(hook "v1,$sig")" = 200 ] || fail "good webhook signature refused"
[ "$(hook "v1,AAAA$sig")" = 401 ] || fail "forged webhook signature accepted"
[ "$(fake_stat 's["webhook_verified"]')" = 1 ] || fail "verified: $(fake_stats)"
[ "$(fake_stat 's["webhook_failed"]')" = 2 ] || fail "failed (forged + the unsigned Twilio callback): $(fake_stats)"

# recordings and reset
fake_requests apns | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; assert len(r) >= 28 and r[0]["proto"] == "HTTP/2.0" and r[0]["body"] == "{\"aps\":{}}", r[0]' || fail "recorded requests"
fake_ctl /reset
[ "$(fake_stat 'sum(s["requests"].values())')" = 0 ] || fail "reset: $(fake_stats)"
[ -z "$(fake_requests)" ] || fail "recordings not reset"
fakeprov_stop
echo "PASS"
