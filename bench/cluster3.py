#!/usr/bin/env python3
"""The three-instance run of `make bench`: herald as a cluster on this machine.

scripts/cluster.sh starts three Kafka brokers (plus a KRaft controller),
PostgreSQL, Redis and three `herald serve` instances (every role, Kafka bus,
PostgreSQL store). An outside producer (kcat, Kafka's murmur2 partitioner)
writes N events, each to FANOUT users with one push device, into raw-events
as fast as the offered RATE allows; the instances fan out, deliver to the
sandbox and write statuses to PostgreSQL. Measured, once with at-least-once
fan-out and once with fanout.exactly_once=true (the instances restarted):

  - notifications/s from the first event produced to the last delivery;
  - CPU seconds per million notifications: all three herald processes
    (utime + stime from /proc), not the brokers or the database;
  - duplicate deliveries and lost notifications (sandbox files);
  - the time until every notification's status is readable through the API
    of an instance other than the one that delivered it is not measured
    here (tests/fault/cluster_scaleout.sh checks that it is).

Usage: bench/cluster3.py HERALD_BIN OUT.json   (knobs: HERALD_BENCH_CLUSTER_*)
Exit 77 when Java, kcat, PostgreSQL or redis-server is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
from herald_stream import KcatFeeder, nid, nkey, read_deliveries  # noqa: E402

N = int(os.environ.get("HERALD_BENCH_CLUSTER_EVENTS", "30000"))
USERS = int(os.environ.get("HERALD_BENCH_CLUSTER_USERS", "2000"))
FANOUT = int(os.environ.get("HERALD_BENCH_CLUSTER_FANOUT", "2"))
RATE = int(os.environ.get("HERALD_BENCH_CLUSTER_RATE", "20000"))
STALL_S = int(os.environ.get("HERALD_BENCH_CLUSTER_STALL_S", "60"))
NO_LIMITS = ("--set ratelimit.push=0 --set ratelimit.email=0 --set ratelimit.sms=0 "
             "--set ratelimit.inapp=0 --set ratelimit.webhook=0")


def log(msg):
    print(f"cluster3: {msg}", file=sys.stderr, flush=True)


def missing(what):
    log(f"skipped: {what}")
    sys.exit(77)


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    herald, out = sys.argv[1], sys.argv[2]
    for tool in ("java", "kcat", "redis-server"):
        if not shutil.which(tool):
            missing(f"{tool} not found")
    state = tempfile.mkdtemp(prefix="herald-bench-cluster.")
    env = dict(os.environ, HERALD_CLUSTER_DIR=state, HERALD_BIN=herald,
               HERALD_CLUSTER_ARGS=NO_LIMITS)
    for k in ("HERALD_CLUSTER_PORT", "HERALD_CLUSTER_KAFKA_PORT", "HERALD_CLUSTER_REDIS_PORT"):
        env.pop(k, None)
    cl = os.path.join(ROOT, "scripts", "cluster.sh")

    def cluster(*args, extra_env=None):
        e = dict(env, **(extra_env or {}))
        return subprocess.run(["bash", cl] + list(args), env=e, check=True,
                              capture_output=True, text=True).stdout

    t0 = time.time()
    try:
        cluster("up", "--instances", "3")
    except subprocess.CalledProcessError as e:
        log(e.stderr[-2000:])
        cluster_down(cl, env)
        sys.exit(1)
    up_s = time.time() - t0
    try:
        results = run_all(cluster, state, up_s)
    finally:
        cluster_down(cl, env)
        shutil.rmtree(state, ignore_errors=True)
    results["load_avg_end"] = os.getloadavg()[0]
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    log(f"wrote {out}")


def cluster_down(cl, env):
    subprocess.run(["bash", cl, "down"], env=env, capture_output=True)


def run_all(cluster, state, up_s):
    cenv = {}
    for line in cluster("env").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            cenv[k] = v.strip("'")
    urls = cenv["CLUSTER_URLS"].split()
    with open(cenv["CLUSTER_ADMIN_KEY_FILE"]) as f:
        key = f.read().strip()

    def api(url, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(url + path, data=data, method=method)
        rq.add_header("Authorization", "Bearer " + key)
        if data is not None:
            rq.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(rq, timeout=30) as r:
            return r.status

    log(f"cluster up in {up_s:.0f} s; seeding {USERS} users")
    for i in range(USERS):
        api(urls[i % len(urls)], "PUT", f"/v1/users/b{i}",
            {"devices": [{"platform": "fcm", "token": f"t{i}"}]})
    api(urls[0], "PUT", "/v1/templates/bping/push",
        {"locale": "en", "title": "ping {{data.n}}", "body": "hello {{user_id}}"})

    def pids():
        out = []
        for i in range(1, 4):
            with open(os.path.join(state, f"herald-{i}", "pid")) as f:
                out.append(int(f.read().strip()))
        return out

    sandboxes = [os.path.join(state, f"herald-{i}", "data", "sandbox", "push.jsonl")
                 for i in range(1, 4)]
    res = {"schema": 1, "label": "cluster3", "instances": 3, "events": N, "fanout": FANOUT,
           "users": USERS, "offered_events_per_s": RATE, "cluster_up_s": round(up_s, 1),
           "load_avg_start": os.getloadavg()[0], "runs": {}}
    for mode, extra in (("at_least_once", NO_LIMITS),
                        ("exactly_once", NO_LIMITS + " --set fanout.exactly_once=true")):
        if mode == "exactly_once":
            for i in range(1, 4):
                cluster("herald", "stop", str(i))
            for i in range(1, 4):
                cluster("herald", "start", str(i), extra_env={"HERALD_CLUSTER_ARGS": extra})
            time.sleep(3)  # the groups settle before the clock starts
        res["runs"][mode] = one_run(mode, cenv["CLUSTER_BROKERS"], pids(), sandboxes)
    return res


def one_run(mode, brokers, pids, sandboxes):
    prefix = f"{mode}-{int(time.time())}"
    events, expected = [], set()
    for e in range(N):
        rcpt = [f"b{(e * FANOUT + k) % USERS}" for k in range(FANOUT)]
        events.append({"event_id": f"{prefix}-{e}", "type": "bping", "audience": {"users": rcpt},
                       "data": {"n": e}})
        for u in rcpt:
            expected.add(nid(f"{prefix}-{e}", u, "push"))
    cpu0 = sum(cpu_s(p) for p in pids)
    t0 = time.time()
    feeder = KcatFeeder(brokers, events, RATE)
    feeder.start()
    feeder.done.wait(900)
    produced_s = time.time() - t0
    seen, last_change, lines = -1, time.time(), []
    while True:
        lines = read_deliveries(sandboxes)
        got = {nkey(d) for d in lines} & expected
        if len(got) == len(expected):
            break
        if len(lines) != seen:
            seen, last_change = len(lines), time.time()
        elif time.time() - last_change > STALL_S:
            break
        time.sleep(2)  # reading the files costs CPU too
    t_end = time.time()
    cpu1 = sum(cpu_s(p) for p in pids)
    mine = [d for d in lines if nkey(d) in expected]
    last = max((d["delivered_at_us"] / 1e6 for d in mine), default=t_end)
    delivered = len({nkey(d) for d in mine})
    dups = len(mine) - delivered
    wall = max(last - t0, 1e-3)
    r = {"notifications": len(expected), "delivered": delivered, "lost": len(expected) - delivered,
         "duplicate_deliveries": dups, "produce_s": round(produced_s, 2), "wall_s": round(wall, 2),
         "notifications_per_s": round(delivered / wall),
         "herald_cpu_s": round(cpu1 - cpu0, 2),
         "herald_cpu_s_per_million": round((cpu1 - cpu0) / max(delivered, 1) * 1e6, 1),
         "per_instance_share": [round(sum(1 for d in mine if d["_src"] == i) / max(len(mine), 1), 3)
                                for i in range(len(sandboxes))]}
    log(f"{mode}: {delivered}/{len(expected)} delivered in {wall:.1f} s = {r['notifications_per_s']}/s, "
        f"{r['herald_cpu_s_per_million']} herald CPU-s per million, {dups} duplicates, "
        f"shares {r['per_instance_share']}")
    return r


if __name__ == "__main__":
    main()
