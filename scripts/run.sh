#!/usr/bin/env bash
# `make run`: starts herald with embedded defaults under ./var, loads a small
# demo data set once it is ready, and prints commands that show an event
# becoming delivered notifications.
set -euo pipefail
herald=${1:-build/herald}
data=${HERALD_DATA_DIR:-./var}
listen=${HERALD_HTTP_LISTEN:-127.0.0.1:8080}
base="http://$listen"

mkdir -p "$data"
"$herald" serve --data-dir "$data" --listen "$listen" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM EXIT

for _ in $(seq 1 100); do
  curl -fs "$base/healthz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "herald exited" >&2; exit 1; }
  sleep 0.1
done

put() { curl -fsS -X PUT -H 'Content-Type: application/json' "$base$1" -d "$2" >/dev/null; }
post() { curl -fsS -X POST -H 'Content-Type: application/json' "$base$1" -d "$2" >/dev/null; }

put /v1/users/alice '{"email":"alice@example.com","phone":"+15550100001","locale":"en","timezone":"Europe/London","devices":[{"platform":"apns","token":"a1b2c3"}]}'
put /v1/users/bob   '{"email":"bob@example.com","phone":"+15550100002","locale":"en","timezone":"America/New_York","devices":[{"platform":"fcm","token":"fcm-bob-1"}]}'
put /v1/users/carol '{"email":"carol@example.com","locale":"en","timezone":"Asia/Tokyo","devices":[{"platform":"apns","token":"d4e5f6"}]}'
for u in alice bob carol; do post /v1/topics/product:iphone15/subscribers "{\"user_id\":\"$u\"}"; done
put /v1/templates/back_in_stock/push  '{"locale":"en","title":"{{data.product}} is back","body":"Hi {{user_id}}, {{data.product}} is in stock again at {{data.price}}."}'
put /v1/templates/back_in_stock/email '{"locale":"en","title":"Good news: {{data.product}} is back in stock","body":"Hello {{user_id}},\n\n{{data.product}} is available again for {{data.price}}.\n"}'
put /v1/templates/back_in_stock/inapp '{"locale":"en","title":"{{data.product}} is back","body":"Tap to buy it for {{data.price}}."}'

cat <<MSG

herald is running on $base with demo data (users alice, bob, carol subscribed to product:iphone15).
Try:

  curl -s -X POST $base/v1/events -H 'Content-Type: application/json' \\
    -d '{"event_id":"restock-1","type":"back_in_stock","audience":{"topic":"product:iphone15"},"data":{"product":"iPhone 15","price":"\$799"}}'

  curl -s $base/v1/users/alice/notifications      # three notifications (push, email, inapp), status "sent"
  tail -n 3 $data/sandbox/push.jsonl              # what the sandbox provider delivered

Stop with Ctrl-C.
MSG
wait $pid
