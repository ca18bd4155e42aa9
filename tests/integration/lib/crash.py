#!/usr/bin/env python3
"""Crash test: stream events into herald, kill -9 it mid-stream, restart it,
and check that every expected notification was delivered at least once.

Usage: crash.py HERALD_BINARY WORKDIR PORT [EVENTS] [BACKEND_ARGS...]
Prints lost and duplicate counts; exits 1 if anything was lost.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_stream import Herald, HttpFeeder, make_events, setup_users, tally, tally_str, wait_delivered  # noqa: E402

herald, work, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
n_events = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
extra = sys.argv[5:]

h = Herald(herald, os.path.join(work, "data"), port, extra, os.path.join(work, "herald.log"))
h.start()
setup_users(h)
events, expected = make_events(n_events, "crash")

feeder = HttpFeeder(lambda: port, events)
feeder.start()
deadline = time.time() + 120
while feeder.sent < len(events) // 3 and time.time() < deadline:
    time.sleep(0.01)
# Let some of the stream be in flight inside the pipeline, then kill -9.
h.kill()
print(f"killed herald with -9 after {feeder.sent} accepted events")
time.sleep(0.2)
h.start()
feeder.done.wait(300)
assert feeder.done.is_set(), "producer did not finish"
print(f"all {len(events)} events accepted ({feeder.errors} failed requests retried)")

lines = wait_delivered([h.sandbox()], expected, 180)
rc = h.stop(timeout=60)
if rc != 0:
    sys.exit(f"herald exited with {rc} on SIGTERM (see herald.log)")
t = tally(expected, lines)
print(tally_str(t))
sys.exit(1 if t["lost"] or t["unexpected"] else 0)
