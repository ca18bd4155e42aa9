#!/usr/bin/env bash
# Two `herald serve` processes on one Kafka broker share the consumer groups
# and split the partitions; 10,000 events stream into raw-events (kcat) and
# one herald is killed with -9 mid-stream. The survivor must take over with
# 0 lost; prints the failover time and the duplicate count
# (lib/kafka_failover.py defines both).
#
# Skips (77) without Java or kcat unless CI=true, where they are required.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/kafka.sh"
kafka_require
kafka_start 1
python3 "$(dirname "$0")/lib/kafka_failover.py" "$HERALD" "$WORK" "$KAFKA_BROKERS" "${FAILOVER_EVENTS:-10000}" ||
  { tail -n 30 "$WORK"/herald-*.log >&2; fail "failover test"; }
echo PASS
