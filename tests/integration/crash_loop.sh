#!/usr/bin/env bash
# kill -9 herald 20 times while events stream in through the API, then a
# crash loop of 10 kills 0.7 s after each start; after each phase every
# accepted notification must be delivered (0 lost) and duplicates must stay
# below the limit (per mille of the notifications; see
# lib/crash_loop.py). Prints the figures of both phases.
source "$(dirname "$0")/lib/common.sh"
python3 "$(dirname "$0")/lib/crash_loop.py" "$HERALD" "$WORK" "$PORT" 20 10 "${CRASH_MAX_DUP_PERMILLE:-15}" \
  || fail "crash loop"
echo PASS
