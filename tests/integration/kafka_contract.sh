#!/usr/bin/env bash
# The bus contract (tests/unit/bus/test_bus_contract.c) against a real Apache
# Kafka broker: the same tests the embedded backend passes, run with
# HERALD_TEST_BUS=kafka.
#
# Reuses a broker that already answers on $HERALD_TEST_KAFKA_BROKERS
# (default 127.0.0.1:9092); otherwise starts a single-node KRaft broker with
# scripts/kafka.sh in a private state dir and stops it afterwards.
#
# Skips (77) without Java unless CI=true, where a missing Java fails.
set -euo pipefail
HERALD=${1:?usage: $0 path/to/herald}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(cd "$(dirname "$HERALD")" && pwd)
CONTRACT="$BIN_DIR/test_bus_contract"
BROKERS=${HERALD_TEST_KAFKA_BROKERS:-127.0.0.1:9092}
WORK=$(mktemp -d -t herald-kafka-contract.XXXXXX)
STARTED=0

cleanup() {
    if [ "$STARTED" = 1 ]; then
        HERALD_KAFKA_DIR="$WORK/kafka" bash "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
missing() {
    if [ "${CI:-}" = true ]; then fail "$1 (run scripts/deps.sh --test)"; fi
    echo "SKIP: $1 (run scripts/deps.sh --test)"
    exit 77
}

[ -x "$CONTRACT" ] || fail "$CONTRACT is not built"

# True when a broker answers a metadata request at $BROKERS.
broker_up() {
    if command -v kcat >/dev/null; then
        kcat -L -b "$BROKERS" -m 3 >/dev/null 2>&1
    else
        local hp=${BROKERS%%,*}
        (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null
    fi
}

if broker_up; then
    echo "using the broker at $BROKERS"
else
    [ "$BROKERS" = 127.0.0.1:9092 ] || fail "no broker at $BROKERS"
    command -v java >/dev/null || missing "java not found"
    bash "$ROOT/scripts/kafka.sh" fetch >/dev/null ||
        missing "cannot fetch the Kafka jars (needs mvn and Maven Central)"
    STARTED=1
    t0=$(date +%s%N)
    HERALD_KAFKA_DIR="$WORK/kafka" bash "$ROOT/scripts/kafka.sh" start --nodes 1 >/dev/null ||
        fail "cannot start a Kafka broker (logs in $WORK/kafka)"
    echo "started a Kafka broker at $BROKERS in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi

HERALD_TEST_BUS=kafka HERALD_TEST_KAFKA_BROKERS="$BROKERS" "$CONTRACT" ||
    fail "bus contract tests failed on Kafka"
echo "kafka_contract: OK"
