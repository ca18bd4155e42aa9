#!/usr/bin/env bash
# Stop two of three brokers (kill -9) while events stream through herald:
# every partition falls below min.insync.replicas, herald's producers get
# NOT_ENOUGH_REPLICAS and retry; herald stays up (/healthz), logs why it is
# stalled and loses nothing. One broker comes back and the stream finishes
# with 0 lost. Prints duplicate counts and timings.
#
# Skips (77) without Java or kcat unless CI=true, where they are required.
source "$(dirname "$0")/../integration/lib/common.sh"
source "$(dirname "$0")/../integration/lib/kafka.sh"
kafka_require
kafka_start 3
python3 "$(dirname "$0")/../integration/lib/kafka_fault.py" min-isr "$HERALD" "$WORK" \
  "$KAFKA_BROKERS" "$KAFKA_SH" "$WORK/kafka" "${FAULT_EVENTS:-10000}" || fail "two brokers down"
echo PASS
