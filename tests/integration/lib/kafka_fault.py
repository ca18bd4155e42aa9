#!/usr/bin/env python3
"""Broker faults under a running herald on a 3-broker Kafka cluster
(replication 3, min.insync.replicas 2, a separate KRaft controller).

Usage: kafka_fault.py SCENARIO HERALD WORKDIR BROKERS KAFKA_SH KAFKA_DIR [EVENTS] [RATE]

SCENARIO
  broker-kill    kill -9 the broker leading most of herald's partitions once a
                 third of the stream is out; the stream must finish with 0 lost.
  min-isr        kill -9 two brokers mid-stream. Once the controller has fenced
                 them, every partition has one in-sync replica, below
                 min.insync.replicas: herald's producers get NOT_ENOUGH_REPLICAS
                 (the surviving broker logs it per partition) and retry. For the
                 outage (at least FAULT_OUTAGE_S=20 s, and until the refusals
                 are seen) herald must stay up (/healthz answers) and say in
                 its log why it is stalled; then one broker is restarted and
                 the stream must finish with 0 lost.

Events go into raw-events with kcat (paced); herald runs every stage.
FAULT_HERALD_ARGS adds herald arguments (e.g. --set kafka.debug=eos,msg).
Prints lost/duplicate counts and timings; exits 1 on any loss or failed check.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_stream import (Herald, KcatFeeder, log, make_events, read_deliveries, setup_users,  # noqa: E402
                           tally, tally_str, wait_delivered)

scenario, herald, work, brokers, kafka_sh, kafka_dir = sys.argv[1:7]
n_events = int(sys.argv[7]) if len(sys.argv) > 7 else 10000
rate = int(sys.argv[8]) if len(sys.argv) > 8 else 1000
OUTAGE_S = int(os.environ.get("FAULT_OUTAGE_S", "20"))
PARTITIONS = 4
TOPICS = ("raw-events", "notifications-push", "notification-status")
broker_addr = {i + 1: a for i, a in enumerate(brokers.split(","))}
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        log(f"CHECK FAILED: {what}")


def kafka(*args):
    return subprocess.Popen(["bash", kafka_sh] + list(args), env=dict(os.environ, HERALD_KAFKA_DIR=kafka_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kafka_wait(*procs):
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"kafka.sh {' '.join(p.args[2:])} failed: {err}")


def metadata(via):
    """{(topic, partition): (leader, isr count)} for herald's topics, asked of one broker."""
    r = subprocess.run(["kcat", "-L", "-b", broker_addr[via], "-J", "-m", "5"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {}
    md = json.loads(r.stdout)
    return {(t["topic"], p["partition"]): (p["leader"], len(p.get("isrs", [])))
            for t in md.get("topics", []) if t["topic"] in TOPICS
            for p in t.get("partitions", [])}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def gaps_after(lines, t0):
    """Longest pause between consecutive deliveries after t0 (from t0 on)."""
    ts = sorted(d["delivered_at_us"] / 1e6 for d in lines if d["delivered_at_us"] / 1e6 > t0)
    prev, worst = t0, 0.0
    for t in ts:
        worst = max(worst, t - prev)
        prev = t
    return worst


def server_log(node):
    try:
        with open(os.path.join(kafka_dir, f"node-{node}", "server.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


h = Herald(herald, os.path.join(work, "data"), free_port(),
           ["--bus", "kafka", "--kafka-brokers", brokers, "--set", "topics.replication=3",
            "--set", "topics.min_insync=2", "--set", f"bus.partitions={PARTITIONS}"]
           + os.environ.get("FAULT_HERALD_ARGS", "").split(),
           os.path.join(work, "herald.log"))
t0 = time.time()
h.start(timeout=90)
log(f"herald ready on the 3-broker cluster in {time.time() - t0:.1f} s")
setup_users(h)
paths = [h.sandbox()]
# Warm up: a few events through every stage, so that the consumer groups
# have joined and the stream below runs at full speed when the fault hits.
warm, expected = make_events(20, f"{scenario}-warmup")
KcatFeeder(brokers, warm, 100).start()
t0 = time.time()
wait_delivered(paths, expected, 90)
log(f"pipeline warmed up (first deliveries) in {time.time() - t0:.1f} s")
leads = {}
for leader, _ in metadata(1).values():
    leads[leader] = leads.get(leader, 0) + 1
if scenario == "broker-kill":
    victims = [max(sorted(leads), key=lambda k: leads[k])] if leads else [1]
else:
    victims = [2, 3]
survivor = min(set(broker_addr) - set(victims))

events, more = make_events(n_events, scenario)
expected |= more
feeder = KcatFeeder(brokers, events, rate, log_path=os.path.join(work, "kcat.log"))
t_start = time.time()
feeder.start()
deadline = time.time() + 120
while time.time() < deadline and feeder.sent < n_events // 3:
    time.sleep(0.02)
t_kill, sent_at_kill = time.time(), feeder.sent
kafka_wait(*[kafka("stop", "--node", str(v)) for v in victims])
log(f"killed broker(s) {victims} with -9 after {sent_at_kill} of {n_events} events were produced "
    f"(the kill took {time.time() - t_kill:.1f} s; {len(read_deliveries(paths))} notifications "
    f"delivered by then; partitions of {', '.join(TOPICS)} led per broker before: {leads})")

if scenario == "min-isr":
    # Wait for the controller to fence the dead brokers: one replica in sync.
    t_fenced = None
    while time.time() < t_kill + 60:
        md = metadata(survivor)
        if md and all(isr == 1 and leader == survivor for leader, isr in md.values()):
            t_fenced = time.time()
            break
        time.sleep(0.25)
    check(t_fenced is not None, "the controller did not shrink the ISRs to the surviving broker")
    if t_fenced:
        log(f"brokers fenced {t_fenced - t_kill:.1f} s after the kill: every partition of "
            f"{', '.join(TOPICS)} has 1 in-sync replica < min.insync.replicas 2")
    # The outage lasts at least OUTAGE_S and until herald's producers have
    # been refused with NOT_ENOUGH_REPLICAS (the surviving broker logs each
    # refusal) and herald has said so in its log. The first refusal comes
    # only after request.timeout.ms (30 s): a produce sent before the
    # fencing waits that long for replicas that are gone (the high
    # watermark cannot advance below min.insync.replicas) and holds its
    # connection meanwhile.
    def nenr():
        return sum(1 for line in server_log(survivor).splitlines()
                   if "NotEnoughReplicasException" in line
                   and ("notifications-push" in line or "notification-status" in line))

    def stall_lines():
        return [line for line in h.log_text().splitlines() if "records unacknowledged" in line]

    probes = bad = 0
    n_fenced = len(read_deliveries(paths))
    t_nenr = None
    while time.time() < t_kill + 90:
        probes += 1
        if not h.healthy():
            bad += 1
        if t_nenr is None and nenr():
            t_nenr = time.time()
        if (time.time() >= t_kill + OUTAGE_S and t_nenr is not None
                and any("NOT_ENOUGH_REPLICAS" in line for line in stall_lines())):
            break
        time.sleep(1)
    n_end = len(read_deliveries(paths))
    check(h.alive(), "herald died during the outage")
    check(bad == 0, f"/healthz failed {bad} of {probes} probes during the outage")
    log(f"outage of {time.time() - t_kill:.0f} s: herald alive, /healthz answered {probes - bad}/{probes}; "
        f"{n_end - n_fenced} notifications delivered after the fencing "
        f"(stages block on unacknowledged outputs; {n_end}/{len(expected)} so far)")
    check(t_nenr is not None, f"broker {survivor} logged no NotEnoughReplicasException for herald's topics")
    if t_nenr:
        log(f"herald's producers first refused with NOT_ENOUGH_REPLICAS {t_nenr - t_kill:.0f} s after "
            f"the kill; broker {survivor} logged {nenr()} refusals for notifications-push/notification-status")
    stall = stall_lines()
    check(any("NOT_ENOUGH_REPLICAS" in line for line in stall),
          "herald did not log why its producer is stalled")
    if stall:
        log("herald: " + stall[-1][:400])
    t_restart = time.time()
    kafka_wait(kafka("start", "--node", str(victims[0])))
    t_back = time.time()
    log(f"restarted broker {victims[0]}: registered and serving {t_back - t_restart:.1f} s later")

lines = wait_delivered(paths, expected, 240)
feeder.done.wait(60)
t = tally(expected, lines)
last = max((d["delivered_at_us"] / 1e6 for d in lines), default=time.time())
log(tally_str(t))
log(f"stream of {n_events} events ({len(expected)} notifications) finished {last - t_start:.1f} s "
    f"after it started; {last - t_kill:.1f} s after the kill")
if scenario == "broker-kill":
    log(f"longest pause in deliveries after the kill: {gaps_after(lines, t_kill):.1f} s")
else:
    after = sorted(d["delivered_at_us"] / 1e6 for d in lines if d["delivered_at_us"] / 1e6 > t_restart)
    if after:
        log(f"deliveries resumed {after[0] - t_back:+.1f} s after the broker was back; "
            f"backlog drained {last - t_back:.1f} s after it")
check(t["lost"] == 0, f"{t['lost']} notifications lost")
check(t["unexpected"] == 0, f"{t['unexpected']} unexpected notifications")
check(feeder.returncode == 0, f"kcat exited with {feeder.returncode}")
alive = h.alive()
rc = h.stop()
check(alive, "herald died")
check(rc == 0, f"herald's graceful stop exited with {rc}")
fatal = [line for line in h.log_text().splitlines() if " fatal " in line or "FATAL" in line]
check(not fatal, f"fatal errors in herald's log: {fatal[:3]}")
log(f"LOST={t['lost']} DUPLICATES={t['duplicates']} ({scenario})")
sys.exit(1 if failures else 0)
