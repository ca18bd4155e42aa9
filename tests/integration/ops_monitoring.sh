#!/usr/bin/env bash
# The operations files are correct: the Grafana dashboard (ops/grafana/
# herald.json) and the alert rules (ops/prometheus/herald-alerts.yml) name
# only metrics herald exports (src/metrics/metrics.def) and are valid PromQL
# (`promtool check rules`); the alert rules' unit tests with synthetic series
# pass (`promtool test rules tests/ops/herald-alerts.test.yml`: each alert
# fires when it should and not otherwise). The checker itself is shown to
# refuse an unknown metric and broken PromQL. Finally a running herald's
# /metrics carries every series the dashboard and the rules read.
# Skips (77) without promtool (Debian's prometheus package) unless CI=true.
set -euo pipefail
HERALD=${1:?usage: $0 path/to/herald}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d -t herald-ops.XXXXXX)
HERALD_PID=""
cleanup() {
  if [ -n "$HERALD_PID" ]; then kill -TERM "$HERALD_PID" 2>/dev/null || true; wait "$HERALD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! command -v promtool >/dev/null; then
  [ "${CI:-}" = true ] && fail "promtool is missing (run scripts/deps.sh --test)"
  echo "SKIP: promtool is missing (run scripts/deps.sh --test)"
  exit 77
fi
DEF=$ROOT/src/metrics/metrics.def
DASH=$ROOT/ops/grafana/herald.json
RULES=$ROOT/ops/prometheus/herald-alerts.yml

promtool check rules "$RULES"
promtool test rules "$ROOT/tests/ops/herald-alerts.test.yml"
python3 "$ROOT/tests/ops/check_promql.py" "$DEF" "$DASH" "$RULES" "$WORK"

# The checker fails when it should: an unknown metric, then broken PromQL.
sed 's/herald_bus_lag_records/herald_bus_lag_recordz/' "$DASH" >"$WORK/bad-name.json"
if python3 "$ROOT/tests/ops/check_promql.py" "$DEF" "$WORK/bad-name.json" "$RULES" "$WORK" >"$WORK/out" 2>&1; then
  fail "the checker accepted herald_bus_lag_recordz"
fi
grep -q 'herald_bus_lag_recordz is not a metric' "$WORK/out" || fail "unknown metric not named: $(cat "$WORK/out")"
sed 's/sum by (group, topic) (herald_bus_lag_records/sum by (group, topic) ((herald_bus_lag_records/' "$DASH" >"$WORK/bad-syntax.json"
if python3 "$ROOT/tests/ops/check_promql.py" "$DEF" "$WORK/bad-syntax.json" "$RULES" "$WORK" >"$WORK/out" 2>&1; then
  fail "the checker accepted unbalanced parentheses"
fi
grep -q 'promtool check rules' "$WORK/out" || fail "broken PromQL not reported by promtool: $(cat "$WORK/out")"
sed 's/herald_status_write_seconds_bucket/herald_store_latency_bucket/' "$RULES" >"$WORK/bad-rules.yml"
if python3 "$ROOT/tests/ops/check_promql.py" "$DEF" "$DASH" "$WORK/bad-rules.yml" "$WORK" >/dev/null 2>&1; then
  fail "the checker accepted an alert rule on an unknown metric"
fi

# A running herald exposes every series family the files read (the
# histograms' _bucket series are on /metrics whatever the traffic).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HERALD" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --set log.format=json >"$WORK/herald.log" 2>&1 &
HERALD_PID=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
# /metrics wants an admin key (as Prometheus sends it: authorization credentials_file)
curl -fs -H "Authorization: Bearer $(cat "$WORK/data/admin.key")" "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics" || fail "GET /metrics"
python3 - "$WORK/metrics" "$DASH" "$RULES" "$ROOT/tests/ops" <<'PY' || fail "series missing from /metrics"
import json, sys
sys.path.insert(0, sys.argv[4])
import check_promql as c
exposed = {l.split("{")[0].split(" ")[0] for l in open(sys.argv[1]) if l and not l.startswith("#")}
d = json.load(open(sys.argv[2]))
names = set()
for p in d["panels"]:
    for t in p.get("targets", []):
        names |= c.metric_names(t["expr"])
for e in c.alert_exprs(sys.argv[3]):
    names |= c.metric_names(e)
missing = sorted(n for n in names - {"up"} if n not in exposed)
if missing:
    print("not on /metrics:", missing)
    sys.exit(1)
print(f"/metrics carries all {len(names - {'up'})} series the dashboard and rules read")
PY
grep -q '^herald_delivery_attempts_total{channel="push",result="sent"} 0$' "$WORK/metrics" || fail "delivery_attempts labels"
# log.format=json: every line herald wrote is one JSON object with the four fields.
python3 - "$WORK/herald.log" <<'PY' || fail "log.format=json: $(head -c 2000 "$WORK/herald.log")"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert lines, "no log lines"
for l in lines:
    o = json.loads(l)
    assert sorted(o) == ["component", "level", "msg", "ts"], o
print(f"log.format=json: {len(lines)} lines, each one JSON object")
PY
! grep -qF "$(cat "$WORK/data/admin.key")" "$WORK/herald.log" || fail "the admin key is in the log"
echo "ops monitoring files: OK"
