#!/usr/bin/env python3
"""One actor with a huge audience (issue 15): N followers (default
1,000,000), every fifth with a push device. One event with push and in-app
reaches every follower's inbox view (pull: the item is stored once in the
actor's feed) and every follower with a device gets exactly one push
(eager, chunked over several fan-out workers). A second event is expanded
with a kill -9 of herald at about a third of its chunk tasks: after the
restart nothing is lost; duplicates are counted and reported.

Usage: bigfollow.py HERALD_BINARY WORKDIR PORT [FOLLOWERS]
Prints the figures (seeding time, time to expand, notifications/s, peak
RSS, each chunk worker's share) and exits 1 when a check fails. Timings
are reported, never asserted.
"""
import json
import os
import re
import sqlite3
import sys
import time
import hashlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_stream import Herald, log, read_deliveries  # noqa: E402

herald, work, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
N = int(sys.argv[4]) if len(sys.argv) > 4 else 1000000
WORKERS = 2
PUSH_EVERY = 5
ACTOR = "celeb"
CHUNK_THRESHOLD, CHUNK_SIZE = 10000, 5000
if not 100000 <= N <= 9999999:  # at or above fanout.pull_threshold; ids have 7 digits
    sys.exit(f"FOLLOWERS must be 100000-9999999, not {N}")
# bounds of the waits (a stuck pipeline fails instead of hanging)
WAIT_S = 60 + N // 2000
data = os.path.join(work, "data")
db_path = os.path.join(data, "herald.db")


def uid(k):
    return f"f{k:07d}"


# Followers with the in-app channel off (some fanned out directly, before
# the chunks; some served by pull), and followers with a device but push off.
INAPP_OFF = sorted({uid(k) for k in (17, 4000, N // 2, N // 2 + 1, N - 1)})
PUSH_OFF = sorted({uid(k) for k in (5, N // 3 - (N // 3) % PUSH_EVERY, N - N % PUSH_EVERY - PUSH_EVERY)})


def check(cond, msg):
    if not cond:
        log(f"FAIL: {msg}")
        sys.exit(1)


def nid(ev, user, ch):
    return hashlib.sha256(f"{ev}\0{user}\0{ch}".encode()).hexdigest()[:20]


def metrics(h):
    s, b = h.call("GET", "/metrics")
    out = {}
    if s != 200:
        return out
    for line in b.decode().splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^(\w+)(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def mval(ms, name):
    return ms.get(name, 0.0)


def rss_kb(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0])
    return vals


# ---- 1. the store: herald makes the schema, the followers go in by SQL ----
args = ["--set", f"pipeline.workers={WORKERS}", "--set", "sandbox.mode=file", "--set", "store.check_ms=0",
        "--set", f"fanout.chunk_threshold={CHUNK_THRESHOLD}", "--set", f"fanout.chunk_size={CHUNK_SIZE}",
        "--set", "fanout.pull_threshold=100000",
        "--set", f"fanout.recipient_cache_bytes={256 << 20}"]
h = Herald(herald, data, port, args, os.path.join(work, "herald.log"))
h.start()
check(h.stop() == 0, "first stop")

t0 = time.time()
db = sqlite3.connect(db_path)
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
now_ms = int(time.time() * 1000) - 60000
# Generated inside SQLite (a recursive CTE), in key order: seconds, not minutes.
KS = "WITH RECURSIVE ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE k + 1 < ?) "
with db:
    db.execute(KS + "INSERT INTO users (user_id, locale, timezone, updated_at)"
               " SELECT printf('f%07d', k), 'en', 'UTC', ? FROM ks", (N, now_ms))
    db.execute(KS + "INSERT INTO devices (user_id, seq, platform, token)"
               " SELECT printf('f%07d', k), 0, 'fcm', 'tok-' || k FROM ks WHERE k % ? = 0", (N, PUSH_EVERY))
    db.execute(KS + "INSERT INTO follows (actor, follower, created_at)"
               " SELECT ?, printf('f%07d', k), ? FROM ks", (N, ACTOR, now_ms))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
seed_s = time.time() - t0
log(f"seeded {N} followers of {ACTOR} ({N // PUSH_EVERY} with a push device) in {seed_s:.1f} s")

t0 = time.time()
h.start(timeout=300)
log(f"herald ready in {time.time() - t0:.1f} s (recipient cache filled); rss {rss_kb(h.proc.pid)}")
for ch in ("push", "inapp"):
    s, b = h.call("PUT", f"/v1/templates/post/{ch}",
                  {"locale": "en", "title": "{{data.who}} posted", "body": "new post {{data.n}}"})
    check(s == 200, f"template {ch}: {s} {b}")
for u in INAPP_OFF:
    s, b = h.call("PUT", f"/v1/users/{u}/preferences", {"channels": {"inapp": False}})
    check(s == 200, f"preferences {u}: {s} {b}")
for u in PUSH_OFF:
    s, b = h.call("PUT", f"/v1/users/{u}/preferences", {"channels": {"push": False}})
    check(s == 200, f"preferences {u}: {s} {b}")

push_users = [uid(k) for k in range(0, N, PUSH_EVERY) if uid(k) not in PUSH_OFF]
sandbox = h.sandbox("push")


def expected_push(ev):
    return {nid(ev, u, "push") for u in push_users}


def post(ev, n):
    s, b = h.call("POST", "/v1/events", [{"event_id": ev, "type": "post", "channels": ["push", "inapp"],
                                          "audience": {"followers_of": ACTOR},
                                          "data": {"who": ACTOR, "n": n}}])
    check(s == 202, f"post {ev}: {s} {b}")


def push_lines():
    return read_deliveries([sandbox])


def wait_pushes(ev, expected, timeout, on_tick=None):
    """Waits until every expected push of ev is in the sandbox; returns the
    lines of ev."""
    deadline = time.time() + timeout
    while True:
        lines = [d for d in push_lines() if d.get("event_id") == ev]
        if on_tick:
            on_tick(lines)
        got = {d["notification_id"][12:] for d in lines}
        if expected <= got or time.time() >= deadline:
            return lines
        time.sleep(0.5)


def wait_expanded(planned_min, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ms = metrics(h)
        p, e = mval(ms, "herald_fanout_chunks_planned_total"), mval(ms, "herald_fanout_chunks_expanded_total")
        if p >= planned_min and e >= p:
            return ms
        time.sleep(0.1)
    return metrics(h)


def check_inbox_view(ev, n):
    """Every follower but the in-app-off ones sees ev in its inbox view:
    exactly, through the store, for all; through the API for a sample."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    feed = db.execute("SELECT notification_id, after_key, created_at_ms FROM actor_feed"
                      " WHERE actor = ? AND event_id = ?", (ACTOR, ev)).fetchall()
    check(len(feed) == 1, f"{ev}: {len(feed)} feed items (wanted 1: pull fan-out)")
    fid, after_key, created = feed[0]
    # what the inbox API merges (store_sqlite_feed.c VISIBLE): followers
    # after after_key, following since before the item; the ones up to it
    # have inbox items of their own (written by in-app dispatch: wait)
    pulled = db.execute("SELECT count(*) FROM follows WHERE actor = ? AND follower > ? AND created_at <= ?",
                        (ACTOR, after_key, created)).fetchone()[0]
    upto = db.execute("SELECT count(*) FROM follows WHERE actor = ? AND follower <= ?",
                      (ACTOR, after_key)).fetchone()[0]
    off_direct = sum(1 for u in INAPP_OFF if u <= after_key)
    deadline = time.time() + 120
    while True:
        direct = db.execute("SELECT count(*), count(DISTINCT user_id) FROM inbox WHERE event_id = ?",
                            (ev,)).fetchone()
        if direct[0] >= upto - off_direct or time.time() > deadline:
            break
        time.sleep(0.2)
    db.close()
    off_pull = len(INAPP_OFF) - off_direct
    log(f"{ev}: in-app: {direct[0]} inbox items (followers up to {after_key}), feed item {fid} for the "
        f"{pulled} after it; in-app off: {off_direct} direct, {off_pull} pulled")
    check(direct[0] == direct[1], f"{ev}: {direct[0] - direct[1]} duplicate inbox items")
    check(direct[0] == upto - off_direct, f"{ev}: {direct[0]} inbox items, wanted {upto - off_direct}")
    check(upto + pulled == N, f"{ev}: {upto} + {pulled} followers see it, wanted {N}")
    # the API, for a sample: both sides of after_key, chunk edges, the last,
    # the in-app-off ones
    k_after = int(after_key[1:])
    sample = {0, k_after, k_after + 1, k_after + CHUNK_SIZE, N // 3, N - 2, N - 1}
    sample |= {(i * 7919) % N for i in range(40)}
    sample = {uid(k) for k in sample if 0 <= k < N} | set(INAPP_OFF)
    for u in sorted(sample):
        s, b = h.call("GET", f"/v1/users/{u}/inbox?limit=10")
        check(s == 200, f"inbox {u}: {s} {b}")
        items = json.loads(b)["items"]
        has = any(it.get("event_id") == ev for it in items)
        s, b = h.call("GET", f"/v1/users/{u}/inbox/counts")
        check(s == 200, f"counts {u}: {s} {b}")
        unread = json.loads(b)["unread"]
        if u in INAPP_OFF:
            check(not has, f"{ev}: {u} has in-app off but its inbox shows the event")
        else:
            check(has, f"{ev}: {u}'s inbox lacks the event: {items}")
            check(unread >= n, f"{ev}: {u}'s unread count is {unread}, wanted >= {n}")
    log(f"{ev}: inbox view checked through the API for {len(sample)} followers")


def check_pushes(ev, lines, expected):
    got = [d["notification_id"][12:] for d in lines]
    distinct = set(got)
    lost = expected - distinct
    unexpected = distinct - expected
    dup = len(got) - len(distinct)
    log(f"{ev}: push: expected {len(expected)}, delivered {len(distinct)} distinct in {len(got)} lines: "
        f"lost={len(lost)} unexpected={len(unexpected)} duplicates={dup}")
    check(not lost, f"{ev}: {len(lost)} pushes lost")
    check(not unexpected, f"{ev}: {len(unexpected)} pushes to followers without a device or with push off")
    return dup


def worker_shares(text, since=0):
    """Chunk users per fan-out worker from the chunk workers' log lines."""
    shares = {}
    for m in re.finditer(r"fanout-chunks worker (\d+): (\d+) chunk task\(s\), (\d+) users", text[since:]):
        w = int(m.group(1))
        c, u = shares.get(w, (0, 0))
        shares[w] = (c + int(m.group(2)), u + int(m.group(3)))
    return shares


# ---- 2. event A: one clean expansion, measured ----
planned = (N - CHUNK_THRESHOLD + CHUNK_SIZE - 1) // CHUNK_SIZE if N > CHUNK_THRESHOLD else 0
exp_a = expected_push("post-a")
rss0 = rss_kb(h.proc.pid)
m0 = metrics(h)
t0 = time.time()
post("post-a", 1)
ms = wait_expanded(planned, WAIT_S)
t_expand = time.time() - t0
lines = wait_pushes("post-a", exp_a, WAIT_S)
t_push = time.time() - t0
rss1 = rss_kb(h.proc.pid)
fanned = mval(ms, "herald_notifications_fanned_out_total") - mval(m0, "herald_notifications_fanned_out_total")
supp = mval(ms, "herald_notifications_suppressed_total") - mval(m0, "herald_notifications_suppressed_total")
log(f"post-a: {planned} chunk tasks planned, {int(mval(ms, 'herald_fanout_chunks_expanded_total'))} expanded "
    f"in {t_expand:.1f} s: {int(fanned)} notifications produced + {int(supp)} suppressed "
    f"({(fanned + supp) / t_expand:.0f}/s over the expansion)")
log(f"post-a: every push delivered {t_push:.1f} s after the post ({len(exp_a) / t_push:.0f} pushes/s end to end)")
log(f"post-a: rss before {rss0['VmRSS'] / 1024:.0f} MB, after {rss1['VmRSS'] / 1024:.0f} MB, "
    f"peak (VmHWM) {rss1['VmHWM'] / 1024:.0f} MB")
check(mval(ms, "herald_fanout_chunks_planned_total") == planned,
      f"{mval(ms, 'herald_fanout_chunks_planned_total')} chunk tasks planned, wanted {planned}")
check(mval(ms, "herald_fanout_pull_items_total") == 1, "one feed item for post-a")
dup_a = check_pushes("post-a", lines, exp_a)
check(dup_a == 0, f"post-a: {dup_a} duplicate pushes without any crash")
check_inbox_view("post-a", 1)

# The chunk workers log their shares when they stop (and every 10 s).
rc = h.stop(timeout=120)
check(rc == 0, f"herald exited with {rc} on SIGTERM")
shares = worker_shares(h.log_text())
log("post-a: chunk workers' shares (tasks, users expanded): " +
    ", ".join(f"worker {w}: {c} tasks, {u} users" for w, (c, u) in sorted(shares.items())))
check(sum(u for _, u in shares.values()) == N - CHUNK_THRESHOLD,
      f"post-a: the chunk workers expanded {sum(u for _, u in shares.values())} users, wanted {N - CHUNK_THRESHOLD}")
check(len(shares) == WORKERS and all(c > 0 for c, _ in shares.values()),
      f"post-a: the chunk tasks were not shared by {WORKERS} workers: {shares}")
h.start(timeout=300)

# ---- 3. event B: kill -9 at about a third of the chunk tasks ----
exp_b = expected_push("post-b")
post("post-b", 2)
base = 0  # a fresh process
deadline = time.time() + WAIT_S
killed_at = None
while time.time() < deadline:
    m = metrics(h)
    done = mval(m, "herald_fanout_chunks_expanded_total") - base
    if done >= planned // 3:
        killed_at = done
        break
    time.sleep(0.02)
check(killed_at is not None, "post-b: expansion did not reach a third of its chunk tasks")
h.kill()
check(killed_at < planned, f"post-b: every chunk task was expanded before the kill ({int(killed_at)})")
before = len([d for d in push_lines() if d.get("event_id") == "post-b"])
log(f"post-b: killed herald with -9 after {int(killed_at)} of {planned} chunk tasks ({before} pushes delivered)")
log_len = len(h.log_text())
t0 = time.time()
h.start(timeout=300)
lines = wait_pushes("post-b", exp_b, WAIT_S)
log(f"post-b: every push delivered {time.time() - t0:.1f} s after the restart")
dup_b = check_pushes("post-b", lines, exp_b)
# docs/internals/pipeline.md: a kill -9 repeats at most the provider calls
# whose status records were not written, dispatch.status_every (128) per
# dispatch worker; the copies fan-out makes of the chunk tasks in flight
# are skipped by the dispatchers' sent-id memory.
check(dup_b <= WORKERS * 128, f"post-b: {dup_b} duplicate pushes after one kill -9 (at most {WORKERS * 128})")
m = metrics(h)
log(f"post-b: after the restart: {int(mval(m, 'herald_fanout_chunks_expanded_total'))} chunk tasks expanded, "
    f"{int(mval(m, 'herald_fanout_chunks_duplicate_total'))} second copies dropped")
check_inbox_view("post-b", 2)

rc = h.stop(timeout=120)
check(rc == 0, f"herald exited with {rc} on SIGTERM")
shares = worker_shares(h.log_text(), log_len)
log("post-b: chunk workers' shares after the restart (tasks, users expanded): " +
    ", ".join(f"worker {w}: {c} tasks, {u} users" for w, (c, u) in sorted(shares.items())))
log("PASS")
