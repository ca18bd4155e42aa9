# Helpers for tests that need a real Apache Kafka (sourced after common.sh).
#
# kafka_require             skip (77) without java/mvn/kcat/jars, unless CI=true (then fail)
# kafka_start NODES         start a private KRaft cluster (1 or 3 brokers) in $WORK/kafka on
#                           free ports; sets KAFKA_BROKERS, KAFKA_START_MS; stopped at exit
# kafka_node_stop N / kafka_node_start N   kill -9 / restart one node (3-node: 0 = controller)
# kafka_node_log N          path of a node's server.log
#
# Every test gets a fresh cluster: herald's topic and group names are fixed,
# so a broker shared between runs (or with a developer's herald) would hand a
# test someone else's records and committed offsets.
KAFKA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
KAFKA_SH="$KAFKA_ROOT/scripts/kafka.sh"
KAFKA_BROKERS=""
KAFKA_START_MS=0
KAFKA_STARTED=0

kafka_missing() {
  if [ "${CI:-}" = true ]; then fail "$1 (run scripts/deps.sh --test)"; fi
  echo "SKIP: $1 (run scripts/deps.sh --test)"
  exit 77
}

kafka_require() {
  command -v java >/dev/null || kafka_missing "java not found"
  command -v kcat >/dev/null || kafka_missing "kcat not found"
  bash "$KAFKA_SH" fetch >/dev/null ||
    kafka_missing "cannot fetch the Kafka jars (needs mvn and Maven Central)"
}

kafka_sh() { HERALD_KAFKA_DIR="$WORK/kafka" HERALD_KAFKA_PORT="$KAFKA_PORT" bash "$KAFKA_SH" "$@"; }

kafka_cleanup() {
  [ "$KAFKA_STARTED" = 1 ] || return 0
  kafka_sh stop >/dev/null 2>&1 || true
  KAFKA_STARTED=0
}

# A base port P with P..P+2, P+100 (3 nodes) or P, P+1 (1 node) free.
kafka_free_port() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000)
    ports = [base, base + 1] if n == 1 else [base, base + 1, base + 2, base + 100]
    ok = True
    for p in ports:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(base)
        sys.exit(0)
sys.exit("no free ports")
EOF
}

# Brokers run detached (setsid), so a test killed outright (a CTest timeout
# sends SIGKILL; no EXIT trap runs) would leave them behind. This detached
# guard stops the cluster once the test's shell is gone.
kafka_guard() {
  local keep=${KEEP_WORK:-0}
  setsid bash -c '
    while kill -0 "$1" 2>/dev/null; do sleep 2; done
    [ -d "$2/kafka" ] || exit 0
    HERALD_KAFKA_DIR="$2/kafka" bash "$3" stop >/dev/null 2>&1
    [ "$4" = 1 ] || rm -rf "$2"' kafka-guard "$$" "$WORK" "$KAFKA_SH" "$keep" \
    </dev/null >/dev/null 2>&1 &
}

kafka_start() {
  local nodes=${1:-1} t0
  KAFKA_PORT=$(kafka_free_port "$nodes") || fail "no free ports for Kafka"
  CLEANUP_HOOKS+=(kafka_cleanup)
  KAFKA_STARTED=1
  kafka_guard
  t0=$(date +%s%N)
  KAFKA_BROKERS=$(kafka_sh start --nodes "$nodes" 2>"$WORK/kafka-start.log") || {
    cat "$WORK/kafka-start.log" >&2
    fail "cannot start a $nodes-node Kafka cluster (logs in $WORK/kafka)"
  }
  KAFKA_START_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "started a $nodes-node Kafka cluster at $KAFKA_BROKERS in $KAFKA_START_MS ms" \
       "(incl. storage format; $(grep -o 'ready in [0-9.]*s' "$WORK/kafka-start.log" || true))"
}

kafka_node_stop() { kafka_sh stop --node "$1" >/dev/null 2>&1; }
kafka_node_start() { kafka_sh start --node "$1" >/dev/null 2>"$WORK/kafka-node.log" || { cat "$WORK/kafka-node.log" >&2; return 1; }; }
kafka_node_log() { echo "$WORK/kafka/node-$1/server.log"; }
