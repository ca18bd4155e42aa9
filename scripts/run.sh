#!/usr/bin/env bash
# `make run`: starts herald with embedded defaults under ./var, loads a small
# demo data set once it is ready, and prints commands that show an event
# becoming delivered notifications. herald's log goes to <data>/herald.log;
# on Ctrl-C (or SIGTERM) herald stops gracefully, this prints its shutdown
# report and exits 0.
set -uo pipefail
herald=${1:-build/herald}
data=${HERALD_DATA_DIR:-./var}
listen=${HERALD_HTTP_LISTEN:-127.0.0.1:8080}
base="http://$listen"
log="$data/herald.log"

mkdir -p "$data"

# The demo data and the banner, once herald answers (in the background:
# herald runs in the foreground, so Ctrl-C reaches it directly).
demo() {
  for _ in $(seq 1 100); do
    curl -fs "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "$base/healthz" >/dev/null 2>&1 || return 0 # herald did not start: reported below

  # The admin key herald made on its first start (README "API keys").
  key=$(cat "$data/admin.key" 2>/dev/null) || key=""
  auth=(-H "Authorization: Bearer $key")
  put() { curl -fsS "${auth[@]}" -X PUT -H 'Content-Type: application/json' "$base$1" -d "$2" >/dev/null; }
  post() { curl -fsS "${auth[@]}" -X POST -H 'Content-Type: application/json' "$base$1" -d "$2" >/dev/null; }

  put /v1/users/alice '{"email":"alice@example.com","phone":"+15550100001","locale":"en","timezone":"Europe/London","devices":[{"platform":"apns","token":"a1b2c3"}]}' &&
  put /v1/users/bob   '{"email":"bob@example.com","phone":"+15550100002","locale":"en","timezone":"America/New_York","devices":[{"platform":"fcm","token":"fcm-bob-1"}]}' &&
  put /v1/users/carol '{"email":"carol@example.com","locale":"en","timezone":"Asia/Tokyo","devices":[{"platform":"apns","token":"d4e5f6"}]}' || return 1
  for u in alice bob carol; do post /v1/topics/product:iphone15/subscribers "{\"user_id\":\"$u\"}" || return 1; done
  put /v1/templates/back_in_stock/push  '{"locale":"en","title":"{{data.product}} is back","body":"Hi {{user_id}}, {{data.product}} is in stock again at {{data.price}}."}' &&
  put /v1/templates/back_in_stock/email '{"locale":"en","title":"Good news: {{data.product}} is back in stock","body":"Hello {{user_id}},\n\n{{data.product}} is available again for {{data.price}}.\n"}' &&
  put /v1/templates/back_in_stock/inapp '{"locale":"en","title":"{{data.product}} is back","body":"Tap to buy it for {{data.price}}."}' || return 1

  cat <<MSG

herald is running on $base with demo data (users alice, bob, carol subscribed to product:iphone15).
Its first admin API key is in $data/admin.key (herald keys create makes more). Try:

  export HERALD_API_KEY=\$(cat $data/admin.key)
  curl -s -X POST $base/v1/events -H "Authorization: Bearer \$HERALD_API_KEY" -H 'Content-Type: application/json' \\
    -d '{"event_id":"restock-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"\$799"}}'

  curl -s -H "Authorization: Bearer \$HERALD_API_KEY" $base/v1/users/alice/notifications   # three notifications (push, email, inapp), status "sent"
  tail -n 3 $data/sandbox/push.jsonl              # what the sandbox provider delivered
  tail -f $log                          # herald's log

Stop with Ctrl-C.
MSG
}

"$herald" serve --data-dir "$data" --listen "$listen" 2>"$log" &
herald_pid=$!
demo &
demo_pid=$!
# Ctrl-C reaches herald itself (same process group); SIGTERM to make is
# passed to this script, which passes it on. Either way herald shuts down
# gracefully and this waits for it.
trap 'kill -TERM "$herald_pid" 2>/dev/null' INT TERM HUP
rc=0
wait "$herald_pid" || rc=$?
while kill -0 "$herald_pid" 2>/dev/null; do # the wait was cut short by a signal
  rc=0
  wait "$herald_pid" || rc=$?
done
kill "$demo_pid" 2>/dev/null
wait "$demo_pid" 2>/dev/null
if [ "$rc" -eq 0 ]; then
  echo
  sed -n '/shutting down/,$p' "$log" # the shutdown report
else
  tail -n 20 "$log" >&2
  echo "herald exited with status $rc (log: $log)" >&2
fi
exit "$rc"
