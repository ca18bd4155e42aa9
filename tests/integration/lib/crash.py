#!/usr/bin/env python3
"""Crash test: stream events into herald, kill -9 it mid-stream, restart it,
and check that every expected notification was delivered at least once.

Usage: crash.py HERALD_BINARY WORKDIR PORT [EVENTS] [BACKEND_ARGS...]
Prints lost and duplicate counts; exits 1 if anything was lost.
"""
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

herald, work, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
n_events = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
extra = sys.argv[5:]
data = os.path.join(work, "data")
USERS = 200
FANOUT = 2
BATCH = 50
log = open(os.path.join(work, "herald.log"), "ab")


def start():
    p = subprocess.Popen([herald, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"] + extra,
                         stdout=log, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is not None:
            sys.exit(f"herald exited with {p.returncode} during start")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("herald not ready")


def call(method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def nid(ev, user, ch):
    return hashlib.sha256(f"{ev}\0{user}\0{ch}".encode()).hexdigest()[:32]


proc = start()
for i in range(USERS):
    s, b = call("PUT", f"/v1/users/u{i}", {"devices": [{"platform": "fcm", "token": f"t{i}"}]})
    assert s == 200, (s, b)
s, b = call("PUT", "/v1/templates/ping/push", {"locale": "en", "title": "ping {{data.n}}", "body": "hello {{user_id}}"})
assert s == 200, (s, b)

events = []
expected = set()
for e in range(n_events):
    users = [f"u{(e * FANOUT + k) % USERS}" for k in range(FANOUT)]
    ev = {"event_id": f"crash-{e}", "type": "ping", "audience": {"users": users}, "data": {"n": e}}
    events.append(ev)
    for u in users:
        expected.add(nid(ev["event_id"], u, "push"))

accepted = 0
progress = threading.Event()
done = threading.Event()
errors_seen = 0


def producer():
    global accepted, errors_seen
    i = 0
    while i < len(events):
        batch = events[i:i + BATCH]
        try:
            s, b = call("POST", "/v1/events", batch, timeout=30)
        except OSError:
            s = 0
        if s == 202:
            i += len(batch)
            accepted = i
            if i >= len(events) // 3:
                progress.set()
        else:
            errors_seen += 1
            time.sleep(0.05)  # server down or busy: retry the same batch
    done.set()


t = threading.Thread(target=producer)
t.start()
progress.wait(120)
# Let some of the stream be in flight inside the pipeline, then kill -9.
proc.send_signal(signal.SIGKILL)
proc.wait()
killed_at = accepted
print(f"killed herald with -9 after {killed_at} accepted events")
time.sleep(0.2)
proc = start()
t.join(300)
assert done.is_set(), "producer did not finish"
print(f"all {len(events)} events accepted ({errors_seen} failed requests retried)")

path = os.path.join(data, "sandbox", "push.jsonl")
deadline = time.time() + 180
seen = set()
lines = 0
while time.time() < deadline:
    seen = set()
    lines = 0
    if os.path.exists(path):
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    continue
                lines += 1
                seen.add(json.loads(line)["notification_id"])
    if expected <= seen:
        break
    time.sleep(0.25)
proc.send_signal(signal.SIGTERM)
rc = proc.wait(timeout=60)
if rc != 0:
    sys.exit(f"herald exited with {rc} on SIGTERM (see herald.log)")
lost = len(expected - seen)
dups = lines - len(seen)
unexpected = len(seen - expected)
print(f"expected={len(expected)} delivered_unique={len(seen)} lines={lines} lost={lost} duplicates={dups} unexpected={unexpected}")
sys.exit(1 if lost or unexpected else 0)
