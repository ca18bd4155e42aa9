#!/usr/bin/env bash
# docs/openapi.yaml is the API: it passes the Redocly linter with no error,
# every operation of it is a route herald serves and declares its key scopes
# (x-herald-scopes) or `security: []`, and against a running herald every
# keyed operation answers 401 without a key or with a bad one, 403 to a key
# of a scope it does not accept, and neither to a key of a scope it does; with
# another tenant's admin key no answer shows the first tenant's data.
# Redocly CLI comes from npm once and is cached outside the tree.
. "$(dirname "$0")/lib/common.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REDOCLY_VERSION=1.34.20
CACHE=${HERALD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald}/redocly-$REDOCLY_VERSION
if [ ! -x "$CACHE/node_modules/.bin/redocly" ]; then
  command -v npm >/dev/null || { [ "${CI:-}" = true ] && fail "npm missing"; echo "SKIP: npm is not installed"; exit 77; }
  mkdir -p "$CACHE"
  npm install --silent --no-audit --no-fund --prefix "$CACHE" "@redocly/cli@$REDOCLY_VERSION" >"$WORK/npm.log" 2>&1 ||
    { cat "$WORK/npm.log" >&2; [ "${CI:-}" = true ] && fail "npm install @redocly/cli failed"; echo "SKIP: cannot install @redocly/cli"; exit 77; }
fi
REDOCLY="$CACHE/node_modules/.bin/redocly"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
"$REDOCLY" lint --format=stylish "$ROOT/docs/openapi.yaml" >"$WORK/lint.txt" 2>&1 || { cat "$WORK/lint.txt" >&2; fail "redocly lint found errors"; }
grep -E "valid|warning" "$WORK/lint.txt" | tail -2
"$REDOCLY" bundle "$ROOT/docs/openapi.yaml" --ext json -o "$WORK/openapi.json" >/dev/null 2>&1 || fail "redocly bundle failed"

start_herald
KEYS="$WORK/keys.json"
{
  echo "{"
  for s in publish manage read admin; do
    k=$("$HERALD" keys create --scopes "$s" --name "walk-$s" --data-dir "$WORK/data" 2>/dev/null) || fail "keys create $s"
    echo "\"$s\": \"$k\","
  done
  k=$("$HERALD" keys create --scopes admin --tenant walk-other --name walk-other --data-dir "$WORK/data" 2>/dev/null) || fail "keys create other tenant"
  echo "\"other\": \"$k\","
  echo "\"_\": \"\"}"
} >"$KEYS"
# The default tenant's data the other tenant must never see.
expect_status 200 PUT /v1/users/walk1 '{"email":"walk-secret-marker@example.com","locale":"en","timezone":"UTC","devices":[{"platform":"fcm","token":"walk-secret-token"}]}' >/dev/null
expect_status 200 PUT /v1/templates/walk1/push '{"locale":"en","title":"walk-secret-title","body":"b"}' >/dev/null
expect_status 201 POST /v1/topics/walk1/subscribers '{"user_id":"walk1"}' >/dev/null
python3 - "$WORK/openapi.json" "$KEYS" "$PORT" "$ROOT/src/http/routes.c" <<'PY' || fail "the walk found differences"
import http.client, json, re, sys
spec = json.load(open(sys.argv[1])); keys = json.load(open(sys.argv[2])); port = int(sys.argv[3])
routes = set((m.group(1).lower(), m.group(2)) for m in
             re.finditer(r'\{HM_(\w+), "([^"]+)"', open(sys.argv[4]).read()))
root_sec = spec.get("security")
bad = []
ops = []
# First, before anything is written: another tenant's admin key reads every
# GET operation (path ids = the first tenant's) and never sees its data.
reads = 0
for path, item in spec["paths"].items():
    op = item.get("get")
    if not op or op.get("security", root_sec) == []:
        continue
    url = re.sub(r"\{[^}]+\}", "walk1", path).replace("/walk1/walk1", "/walk1/push")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", url, headers={"Authorization": "Bearer " + keys["other"]})
    r = c.getresponse()
    # a live stream (text/event-stream) never ends: its first bytes are read instead
    live = (r.getheader("Content-Type") or "").startswith("text/event-stream")
    text = (r.read1(4096) if live else r.read()).decode("utf-8", "replace"); c.close()
    reads += 1
    if "walk-secret" in text:
        bad.append(f"GET {url}: another tenant's key sees the first tenant's data")
    if r.status in (401, 403):
        bad.append(f"GET {url}: another tenant's admin key got {r.status}")
    # the first tenant's own admin key does see it (the check can fail)
    if url == "/v1/users/walk1":
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", url, headers={"Authorization": "Bearer " + keys["admin"]})
        r = c.getresponse(); text = r.read().decode("utf-8", "replace"); c.close()
        if "walk-secret" not in text:
            bad.append("GET /v1/users/walk1: the first tenant's own key does not see its user")
print(f"another tenant's key read {reads} GET operations")
for path, item in spec["paths"].items():
    for meth, op in item.items():
        if meth not in ("get", "put", "post", "delete", "patch"):
            continue
        ops.append((meth, path))
        if (meth, path) not in routes:
            bad.append(f"{meth.upper()} {path}: in the spec, not in routes.c")
        if op.get("security", root_sec) == []:
            continue
        scopes = op.get("x-herald-scopes")
        if not scopes:
            bad.append(f"{meth.upper()} {path}: keyed but declares no x-herald-scopes")
            continue
        url = re.sub(r"\{[^}]+\}", "walk1", path)
        body = "{}" if meth in ("put", "post") else None
        def call(key):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            h = {"Content-Type": "application/json"}
            if key: h["Authorization"] = "Bearer " + key
            c.request(meth.upper(), url, body=body, headers=h)
            r = c.getresponse()
            if not (r.getheader("Content-Type") or "").startswith("text/event-stream"): r.read()
            c.close()
            return r.status
        for key, want in ((None, 401), ("hk_0000000000000000_" + "A" * 43, 401), ("garbage", 401)):
            got = call(key)
            if got != want: bad.append(f"{meth.upper()} {path} key={key!r:.24}: {got}, want {want}")
        for s in ("publish", "manage", "read", "admin"):
            got = call(keys[s])
            allowed = s == "admin" or s in scopes
            if allowed and got in (401, 403):
                bad.append(f"{meth.upper()} {path} scope {s}: {got}, want it allowed")
            if not allowed and got != 403:
                bad.append(f"{meth.upper()} {path} scope {s}: {got}, want 403")
for r in sorted(routes - set(ops)):
    bad.append(f"{r[0].upper()} {r[1]}: served but not in docs/openapi.yaml")
print(f"walked {len(ops)} operations of docs/openapi.yaml")
for b in bad: print("  " + b)
sys.exit(1 if bad else 0)
PY
stop_herald
echo "PASS: openapi lint and key walk"
