#!/usr/bin/env bash
# Digests across kill -9 (issue 15 item 6): a template with a 40 s digest
# window; 10 likes of one post, herald killed with SIGKILL while they are
# still being processed, restarted, 10 more likes: when the window ends one
# e-mail is delivered, "a01 and 19 others liked your post" / "20 likes",
# and each like is recorded digested (none lost, none counted twice, no
# second delivery).
source "$(dirname "$0")/lib/common.sh"
WINDOW_S=40
# one partition: the likes reach the digest in the order they were posted
start_herald --set bus.partitions=1

expect_status 200 PUT /v1/users/kim '{"email":"kim@example.com","locale":"en","timezone":"UTC"}' >/dev/null
expect_status 200 PUT /v1/templates/liked/email "{\"title\":\"{{digest.first_actor}} and {{digest.others}} others liked your post\",\"body\":\"{{digest.count}} likes on {{data.post_id}}, the latest by {{digest.last_actor}}\",\"digest\":{\"window\":\"${WINDOW_S}s\",\"key\":\"{{data.post_id}}\"}}" >/dev/null
# a bad window is refused, naming the field
got=$(req PUT /v1/templates/liked/sms '{"body":"x","digest":{"window":"soon"}}')
[ "${got%% *}" = 422 ] && echo "$got" | grep -q '"field":"digest.window"' || fail "bad window: $got"

like() { # like K
  local k; k=$(printf '%02d' "$1")
  expect_status 202 POST /v1/events "{\"event_id\":\"like-$k\",\"type\":\"liked\",\"actor\":\"a$k\",\"audience\":{\"users\":[\"kim\"]},\"data\":{\"post_id\":\"p1\"}}" >/dev/null
}
digested() { # how many of kim's notifications are recorded digested
  req GET "/v1/users/kim/notifications?limit=200" | cut -d' ' -f2- |
    python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["items"] if i["status"]=="digested"))' 2>/dev/null || echo 0
}
wait_digested() { # wait_digested N
  local n=0
  for _ in $(seq 1 400); do n=$(digested); [ "$n" -ge "$1" ] && return 0; sleep 0.05; done
  fail "$n of $1 likes recorded digested"
}
lines() { [ -f "$WORK/data/sandbox/email.jsonl" ] && wc -l < "$WORK/data/sandbox/email.jsonl" || echo 0; }

t_first=$(date +%s)
for k in $(seq 1 10); do like "$k"; done
wait_digested 3
# SIGKILL while the rest may still be in flight (fan-out, dispatch, the sink)
kill -9 "$HERALD_PID"; wait "$HERALD_PID" 2>/dev/null || true; HERALD_PID=""
start_herald --set bus.partitions=1
for k in $(seq 11 20); do like "$k"; done
wait_digested 20
[ "$(lines)" = 0 ] || fail "delivered before the window ended: $(cat "$WORK/data/sandbox/email.jsonl")"
elapsed=$(( $(date +%s) - t_first ))
[ "$elapsed" -lt "$WINDOW_S" ] || fail "the likes took ${elapsed} s, longer than the ${WINDOW_S} s window (machine too loaded?)"

# the window ends: one e-mail
for _ in $(seq 1 $(( (WINDOW_S + 20) * 10 ))); do [ "$(lines)" -ge 1 ] && break; sleep 0.1; done
[ "$(lines)" = 1 ] || fail "e-mails delivered: $(lines)"
sleep 2
[ "$(lines)" = 1 ] || fail "a second e-mail: $(cat "$WORK/data/sandbox/email.jsonl")"
python3 - "$WORK/data/sandbox/email.jsonl" <<'EOF' || fail "digest e-mail: $(cat "$WORK/data/sandbox/email.jsonl")"
import json, sys
line = json.loads(open(sys.argv[1]).readline())
assert line["title"] == "a01 and 19 others liked your post", line
assert line["body"] == "20 likes on p1, the latest by a20", line
EOF
nid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["notification_id"])' "$WORK/data/sandbox/email.jsonl")
# every like says which notification it went into; that one is sent
for _ in $(seq 1 100); do
  r=$(req GET "/v1/notifications/$nid"); echo "$r" | grep -q '"status":"sent"' && break; sleep 0.05
done
echo "$r" | grep -q '"status":"sent"' || fail "delivered digest: $r"
n=$(req GET "/v1/users/kim/notifications?limit=200" | cut -d' ' -f2- |
  python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["items"] if i["status"]=="digested" and i.get("error")=="into "+sys.argv[1]))' "$nid")
[ "$n" = 20 ] || fail "$n likes digested into $nid"
stop_herald
echo "PASS: 20 likes across kill -9 -> 1 e-mail (count 20), ${elapsed} s of likes in a ${WINDOW_S} s window"
