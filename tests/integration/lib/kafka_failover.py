#!/usr/bin/env python3
"""Two herald processes share the consumer groups on Kafka; one is killed
with -9 mid-stream and the other takes over its partitions.

Usage: kafka_failover.py HERALD WORKDIR BROKERS [EVENTS] [RATE]

Both processes share one SQLite store (store.dsn) but keep their own data
dir, so each one's sandbox file says who delivered what. Each topic has 4
partitions and the dispatch stage runs one worker (pipeline.workers=1), so
each process owns 2 partitions of notifications-push; both also own
partitions of the fan-out and status groups. Events go straight into
raw-events with kcat, paced, and herald A is killed once a third is out.

Failover time = from the kill -9 until the survivor delivers its first
notification on a notifications-push partition it did not own before (one
of the dead process's), as stamped by the sandbox (delivered_at_us). It
covers failure detection (session.timeout.ms), the rebalance, and fetching
and processing from the dead one's last committed offsets. Also printed:
when the survivor's rebalance completed (its log) and when the backlog had
drained (everything delivered).
Exits 1 on any lost or unexpected notification, or when no takeover is seen.
"""
import calendar
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_stream import (Herald, KcatFeeder, log, make_events, partition_for, setup_users,  # noqa: E402
                           tally, tally_str, wait_delivered)

herald, work, brokers = sys.argv[1], sys.argv[2], sys.argv[3]
n_events = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
rate = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
PARTITIONS = 4
SESSION_MS = 6000
GROUPS = ("fanout", "dispatch-push", "status")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


common = ["--bus", "kafka", "--kafka-brokers", brokers,
          "--set", "store.dsn=" + os.path.join(work, "shared.db"),
          "--set", "pipeline.workers=1", "--set", f"bus.partitions={PARTITIONS}",
          "--set", f"kafka.session.timeout.ms={SESSION_MS}",
          "--set", "kafka.heartbeat.interval.ms=1000"]
a = Herald(herald, os.path.join(work, "a"), free_port(), common, name="herald-a")
b = Herald(herald, os.path.join(work, "b"), free_port(), common, name="herald-b")

def rebalances(h):
    """(group, "assigned N" | "revoking N") lines of the process's consumers, in order."""
    return re.findall(r"group ([\w-]+): (assigned \d+|revoking \d+) partitions", h.log_text())


a.start()
setup_users(a)
a_before = len(rebalances(a))
b.start()

# The groups rebalance when B joins: wait until both processes got partitions
# of every group after that, and no consumer has rebalanced for 2 s. (A
# stage may run several consumers per process; each owns some partitions.)
deadline = time.time() + 60
sig, settled_at = None, time.time()
while True:
    ra, rb = rebalances(a)[a_before:], rebalances(b)
    got = {(h, g) for h, lines in (("a", ra), ("b", rb)) for g, ev in lines
           if ev.startswith("assigned") and ev != "assigned 0"}
    ok = all((h, g) in got for h in ("a", "b") for g in GROUPS)
    if (len(ra), len(rb)) != sig:
        sig, settled_at = (len(ra), len(rb)), time.time()
    if ok and time.time() - settled_at >= 2:
        break
    if time.time() > deadline:
        sys.exit("the two processes did not split the partitions of " + ", ".join(GROUPS) +
                 f": assignments after B joined: A {ra}, B {rb}")
    time.sleep(0.2)
log(f"both processes own partitions of {', '.join(GROUPS)} (rebalances settled)")

events, expected = make_events(n_events, "failover")
feeder = KcatFeeder(brokers, events, rate, log_path=os.path.join(work, "kcat.log"))
feeder.start()
paths = [a.sandbox(), b.sandbox()]

# Kill A once a third of the stream is out and A is delivering.
deadline = time.time() + 120
while time.time() < deadline:
    if feeder.sent >= n_events // 3 and any(d["_src"] == 0 for d in wait_delivered(paths, set(), 0)):
        break
    time.sleep(0.05)
t_kill = time.time()
a.kill()
log(f"killed {a.name} with -9 after {feeder.sent} of {n_events} events were produced")

pre = wait_delivered(paths, set(), 0)
owned = [{partition_for(d["user_id"], PARTITIONS) for d in pre if d["_src"] == src} for src in (0, 1)]
log(f"notifications-push partitions before the kill: {a.name} {sorted(owned[0])}, "
    f"{b.name} {sorted(owned[1])}")
if owned[0] & owned[1]:
    sys.exit("both processes delivered on the same partition before the kill")
dead = set(range(PARTITIONS)) - owned[1]

takeover = [None]


def tick(lines):
    if takeover[0] is None:
        ts = [d["delivered_at_us"] / 1e6 for d in lines
              if d["_src"] == 1 and partition_for(d["user_id"], PARTITIONS) in dead
              and d["delivered_at_us"] / 1e6 > t_kill]
        if ts:
            takeover[0] = min(ts)


feeder.done.wait(300)
if feeder.returncode != 0:
    sys.exit(f"kcat exited with {feeder.returncode}")
lines = wait_delivered(paths, expected, 180, tick)
t_drained = max((d["delivered_at_us"] / 1e6 for d in lines), default=time.time())
alive = b.alive()
rc = b.stop()

# When the survivor's rebalance finished, from its log's timestamps.
rebalanced = None
for m in re.finditer(r"^(\S+)Z \w+\s+kafka\s+group dispatch-push: assigned (\d+) partitions",
                     b.log_text(), re.M):
    stamp = m.group(1)
    t = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + stamp[19:])
    if t > t_kill and int(m.group(2)) == PARTITIONS:
        rebalanced = t
        break

t = tally(expected, lines)
log(tally_str(t))
log(f"survivor alive through the test: {alive}; graceful stop exit code {rc}")
if rebalanced:
    log(f"survivor owned all {PARTITIONS} dispatch-push partitions {rebalanced - t_kill:.1f} s after the kill")
if takeover[0]:
    log(f"FAILOVER: {takeover[0] - t_kill:.1f} s from kill -9 to the survivor's first delivery on "
        f"the dead process's partitions {sorted(dead)} (session.timeout.ms={SESSION_MS})")
log(f"backlog drained {t_drained - t_kill:.1f} s after the kill")
ok = t["lost"] == 0 and t["unexpected"] == 0 and takeover[0] is not None and alive and rc == 0
sys.exit(0 if ok else 1)
