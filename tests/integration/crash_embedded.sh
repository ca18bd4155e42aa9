#!/usr/bin/env bash
# kill -9 herald while 10,000 events stream in, restart it, and check that
# every expected notification id was delivered at least once (0 lost);
# reports the duplicate count.
source "$(dirname "$0")/lib/common.sh"
python3 "$(dirname "$0")/lib/crash.py" "$HERALD" "$WORK" "$PORT" 10000 || fail "crash test"
echo PASS
