"""Helpers for the stream tests (crash, Kafka failover, broker faults): run
herald processes, stream events into them (HTTP API or straight into Kafka's
raw-events with kcat), and count what the sandbox provider delivered.

Every test streams "ping" events to USERS users with FANOUT recipients each
on the push channel; an event's notification ids are deterministic, so the
expected set is known up front and lost = expected - delivered, duplicates =
sandbox lines - distinct ids.
"""
import atexit
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

USERS = 200
FANOUT = 2

# Processes started here; any still running when the driver exits (a failed
# check, an exception) are killed so that no herald or kcat outlives a test.
_children = []


@atexit.register
def _kill_children():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


def log(msg):
    print(msg, flush=True)


def nid(ev, user, ch):
    """The hash part of herald's notification id (its last 20 hex digits:
    sha256(event_id NUL user_id NUL channel), first 10 bytes). The first 12
    are the event's accepted time, which the client does not know: compare
    ids with nkey()."""
    return hashlib.sha256(f"{ev}\0{user}\0{ch}".encode()).hexdigest()[:20]


def nkey(d):
    """What nid() gives for a delivered sandbox line d."""
    return d["notification_id"][12:]


def murmur2(data):
    """Kafka's murmur2 (the Java producer's partitioner hash), unsigned 32 bits."""
    m, r = 0x5BD1E995, 24
    n = len(data)
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    for i in range(0, n - n % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, rest = n - n % 4, n % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key, partitions):
    """The partition of a keyed record (herald and Kafka's Java producer agree)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# port -> data dir of the herald serving it: call() sends the admin API key
# herald wrote there on its first start (<data_dir>/admin.key).
_DATA_DIRS = {}
_KEYS = {}


def api_key(port):
    """The admin key of the herald on port, once it has written one."""
    if port in _KEYS:
        return _KEYS[port]
    d = _DATA_DIRS.get(port)
    try:
        with open(os.path.join(d, "admin.key")) as f:
            key = f.read().strip()
        if not key:
            raise OSError("not written yet")
        _KEYS[port] = key
    except (OSError, TypeError):
        # A herald sharing another's store finds keys there and writes none:
        # any key of the run is an admin key of the same tenant.
        return next(iter(_KEYS.values()), None)
    return _KEYS[port]


def call(port, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    key = api_key(port)
    if key:
        headers["Authorization"] = "Bearer " + key
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Herald:
    """One `herald serve` process with its own data dir, port and log."""

    # These streams send ~100 notifications per user and channel: the
    # per-recipient rate limits (policy/ratelimit.h) are turned off so that
    # every expected notification is delivered.
    NO_RATE_LIMITS = ["--set", "ratelimit.push=0", "--set", "ratelimit.email=0", "--set", "ratelimit.sms=0",
                      "--set", "ratelimit.inapp=0", "--set", "ratelimit.webhook=0"]

    def __init__(self, binary, data_dir, port, args=(), log_path=None, name="herald"):
        self.binary, self.data_dir, self.port = binary, data_dir, port
        _DATA_DIRS[port] = data_dir
        self.args = self.NO_RATE_LIMITS + list(args)
        self.name = name
        self.log_path = log_path or os.path.join(os.path.dirname(data_dir), f"{name}.log")
        self.proc = None

    def start(self, timeout=60):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen",
             f"127.0.0.1:{self.port}"] + self.args, stdout=logf, stderr=logf)
        _children.append(self.proc)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode} during start "
                         f"(log: {self.log_path})")
            try:
                if call(self.port, "GET", "/readyz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"{self.name} not ready after {timeout}s")

    def start_nowait(self):
        """Starts the process without waiting for /readyz (crash loops)."""
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir, "--listen",
             f"127.0.0.1:{self.port}"] + self.args, stdout=logf, stderr=logf)
        _children.append(self.proc)
        logf.close()
        return self

    def call(self, method, path, body=None, timeout=10):
        return call(self.port, method, path, body, timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def healthy(self, timeout=2):
        """True when the process runs and GET /healthz answers 200."""
        if not self.alive():
            return False
        try:
            return call(self.port, "GET", "/healthz", timeout=timeout)[0] == 200
        except OSError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=90):
        """SIGTERM and wait; returns the exit code."""
        if not self.alive():
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.dump_hang()
            self.proc.kill()
            self.proc.wait()
            return "timeout"

    def dump_hang(self):
        """A stop that hangs: print every thread's stack (gdb, when installed)
        and the log's last lines, so that a failed run says where it hung."""
        sys.stderr.write(f"{self.name}: still running {self.proc.pid} after SIGTERM; "
                         f"its threads:\n")
        if shutil.which("gdb"):
            try:
                out = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                                      "-ex", "thread apply all bt"],
                                     capture_output=True, text=True, timeout=60).stdout
                sys.stderr.write("\n".join(l for l in out.splitlines()
                                            if l.startswith(("Thread", "#"))) + "\n")
            except (OSError, subprocess.TimeoutExpired) as e:
                sys.stderr.write(f"  (gdb failed: {e})\n")
        else:
            sys.stderr.write("  (no gdb installed)\n")
        try:
            with open(self.log_path, "r", errors="replace") as f:
                tail = f.readlines()[-40:]
            sys.stderr.write(f"{self.name}: last lines of {self.log_path}:\n" + "".join(tail))
        except OSError:
            pass

    def sandbox(self, channel="push"):
        return os.path.join(self.data_dir, "sandbox", f"{channel}.jsonl")

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def setup_users(h, users=USERS):
    """Users u0..u{users-1} with one FCM device each, and the ping/push template."""
    for i in range(users):
        s, b = h.call("PUT", f"/v1/users/u{i}", {"devices": [{"platform": "fcm", "token": f"t{i}"}]})
        assert s == 200, (s, b)
    s, b = h.call("PUT", "/v1/templates/ping/push",
                  {"locale": "en", "title": "ping {{data.n}}", "body": "hello {{user_id}}"})
    assert s == 200, (s, b)


def make_events(n, prefix, users=USERS, fanout=FANOUT):
    """n ping events and the set of notification ids they must produce."""
    events, expected = [], set()
    for e in range(n):
        rcpt = [f"u{(e * fanout + k) % users}" for k in range(fanout)]
        ev = {"event_id": f"{prefix}-{e}", "type": "ping", "audience": {"users": rcpt},
              "data": {"n": e}}
        events.append(ev)
        for u in rcpt:
            expected.add(nid(ev["event_id"], u, "push"))
    return events, expected


class HttpFeeder(threading.Thread):
    """Posts events in batches to POST /v1/events, retrying a batch until a
    202 (the server may be down or busy). `ports` is a callable giving the
    port to use now."""

    def __init__(self, port_fn, events, batch=50):
        super().__init__(daemon=True)
        self.port_fn, self.events, self.batch = port_fn, events, batch
        self.sent = 0
        self.errors = 0
        self.done = threading.Event()

    def run(self):
        i = 0
        while i < len(self.events):
            chunk = self.events[i:i + self.batch]
            try:
                s, _ = call(self.port_fn(), "POST", "/v1/events", chunk, timeout=30)
            except OSError:
                s = 0
            if s == 202:
                i += len(chunk)
                self.sent = i
            else:
                self.errors += 1
                time.sleep(0.05)
        self.done.set()


class KcatFeeder(threading.Thread):
    """Produces events straight into Kafka's raw-events with kcat (a client
    herald did not write), keyed by event_id with Kafka's murmur2
    partitioner, acks=all and idempotence, at about `rate` events/s.
    `sent` counts events handed to kcat; `done` is set once kcat exited
    (after every record was acknowledged or failed)."""

    def __init__(self, brokers, events, rate, topic="raw-events", log_path=None):
        super().__init__(daemon=True)
        self.brokers, self.events, self.rate, self.topic = brokers, events, rate, topic
        self.log_path = log_path
        self.sent = 0
        self.returncode = None
        self.done = threading.Event()

    def run(self):
        err = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        p = subprocess.Popen(
            ["kcat", "-P", "-b", self.brokers, "-t", self.topic, "-K", "\t", "-q",
             "-X", "partitioner=murmur2_random", "-X", "enable.idempotence=true",
             "-X", "acks=all", "-X", "linger.ms=5", "-X", "message.timeout.ms=300000"],
            stdin=subprocess.PIPE, stderr=err)
        _children.append(p)
        chunk = max(1, self.rate // 20)
        t0 = time.time()
        try:
            for i in range(0, len(self.events), chunk):
                lines = "".join(f"{ev['event_id']}\t{json.dumps(ev)}\n"
                                for ev in self.events[i:i + chunk])
                p.stdin.write(lines.encode())
                p.stdin.flush()
                self.sent = min(len(self.events), i + chunk)
                ahead = t0 + self.sent / self.rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            p.stdin.close()
            self.returncode = p.wait()
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
            self.done.set()


def read_deliveries(paths):
    """Complete sandbox lines from the given files, each a dict with '_src'
    (the index of its file)."""
    out = []
    for src, path in enumerate(paths):
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    continue  # being written
                d = json.loads(line)
                d["_src"] = src
                out.append(d)
    return out


def wait_delivered(paths, expected, timeout, tick=None):
    """Waits until every expected id is in the files (or timeout); calls
    tick(lines) every round. Returns the last lines read."""
    deadline = time.time() + timeout
    while True:
        lines = read_deliveries(paths)
        if tick:
            tick(lines)
        if expected <= {nkey(d) for d in lines} or time.time() >= deadline:
            return lines
        time.sleep(0.25)


def tally(expected, lines):
    seen = {nkey(d) for d in lines}
    return {
        "expected": len(expected),
        "delivered_unique": len(seen),
        "lines": len(lines),
        "lost": len(expected - seen),
        "duplicates": len(lines) - len(seen),
        "unexpected": len(seen - expected),
    }


def tally_str(t):
    return " ".join(f"{k}={v}" for k, v in t.items())
