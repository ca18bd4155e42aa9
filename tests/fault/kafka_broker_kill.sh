#!/usr/bin/env bash
# kill -9 one broker of a 3-broker Kafka cluster (replication 3,
# min.insync.replicas 2) while 10,000 events stream through herald: leaders
# move, herald's producers retry, and every notification is delivered
# (0 lost). Prints the duplicate count and the longest delivery pause.
#
# Skips (77) without Java or kcat unless CI=true, where they are required.
source "$(dirname "$0")/../integration/lib/common.sh"
source "$(dirname "$0")/../integration/lib/kafka.sh"
kafka_require
kafka_start 3
python3 "$(dirname "$0")/../integration/lib/kafka_fault.py" broker-kill "$HERALD" "$WORK" \
  "$KAFKA_BROKERS" "$KAFKA_SH" "$WORK/kafka" "${FAULT_EVENTS:-10000}" || fail "broker kill"
echo PASS
