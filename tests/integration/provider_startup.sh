#!/usr/bin/env bash
# A provider that cannot start stops `herald serve` at once with the setting
# named (exit 1), and never prints a secret it was given.
. "$(dirname "$0")/lib/common.sh"
run() { "$HERALD" serve --data-dir "$WORK/d$1" --listen 127.0.0.1:0 "${@:2}" >"$WORK/out$1" 2>&1; echo $?; }
[ "$(run 1 --set channel.push.providers=apns --set provider.apns.key_file=/nope)" = 1 ] || fail "apns without topic started"
grep -q "provider.apns.topic" "$WORK/out1" || fail "no setting named: $(tail -3 "$WORK/out1")"
[ "$(run 2 --set channel.push.providers=apns --set provider.apns.topic=com.x --set provider.apns.key_file=/nope/k.p8 --set provider.apns.key_id=K --set provider.apns.team_id=T)" = 1 ] || fail "unreadable key started"
grep -q "/nope/k.p8" "$WORK/out2" || fail "key path not named: $(tail -3 "$WORK/out2")"
[ "$(run 3 --set channel.sms.providers=tw --set provider.tw.type=twilio --set provider.tw.account_sid=AC1 --set provider.tw.auth_token=sekrit-token-123 --set provider.tw.from=+1 --set provider.tw.url=not-a-url --set provider.tw.timeout_ms=x)" = 1 ] || fail "bad twilio config started"
grep -q "sekrit-token-123" "$WORK/out3" && fail "the auth token was printed"
[ "$(run 4 --set channel.email.providers=mail --set provider.mail.type=smtp --set provider.mail.url=smtp://127.0.0.1:1 --set provider.mail.from=a@example.com --set provider.mail.password=pw-secret-456 --set provider.mail.timeout_ms=0)" = 1 ] || fail "bad smtp config started"
grep -q "pw-secret-456" "$WORK/out4" && fail "the SMTP password was printed"
echo "PASS: providers that cannot start stop herald, naming the setting"
