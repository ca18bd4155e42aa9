#!/usr/bin/env bash
# A damaged SQLite WAL is reported, not served: 100 users are written, herald
# is killed (the WAL keeps them), 16 bytes in the middle of the WAL are
# overwritten. herald then refuses to start (exit != 0, the log names the
# damage); with store.accept_damage=true it starts, and /readyz answers 503
# naming the damage.
source "$(dirname "$0")/lib/common.sh"
start_herald
for i in $(seq 0 99); do
  expect_status 200 PUT /v1/users/u$i '{"email":"u@example.com"}' >/dev/null
done
kill -9 "$HERALD_PID"; wait "$HERALD_PID" 2>/dev/null || true; HERALD_PID=""
wal="$WORK/data/herald.db-wal"
[ -s "$wal" ] || fail "no WAL after the kill"
size=$(stat -c %s "$wal")
frames=$(( (size - 32) / 4120 ))
[ "$frames" -gt 10 ] || fail "WAL too short ($frames frames)"
printf 'DAMAGEDAMAGEDAMA' | dd of="$wal" bs=1 seek=$(( 32 + (frames / 3) * 4120 + 2048 )) conv=notrunc status=none

rc=0
timeout 20 "$HERALD" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >>"$WORK/herald.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "herald started on a damaged store"
grep -q "damaged store: .*herald.db-wal: WAL frame" "$WORK/herald.log" || fail "the log does not name the damage"
ls "$WORK/data"/herald.db-wal.damaged-* >/dev/null || fail "the damaged WAL was not kept"

HERALD_STORE_ACCEPT_DAMAGE=true "$HERALD" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >>"$WORK/herald.log" 2>&1 &
HERALD_PID=$!
for _ in $(seq 1 200); do
  curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$HERALD_PID" 2>/dev/null || fail "herald exited with store.accept_damage=true"
  sleep 0.05
done
got=$(req GET /readyz)
[ "${got%% *}" = 503 ] || fail "readyz on a damaged store: $got"
echo "$got" | grep -q "store damaged" || fail "readyz does not say why: $got"
echo "$got" | grep -q '"store":"damaged"' || fail "readyz checks: $got"
stop_herald
echo PASS
