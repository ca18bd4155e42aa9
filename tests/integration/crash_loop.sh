#!/usr/bin/env bash
# kill -9 herald 20 times while events stream in through the API, then a
# crash loop of 10 kills 0.7 s after each start; after each phase every
# accepted notification must be delivered (0 lost) and duplicates must stay
# below the limit (per mille of the notifications; see
# lib/crash_loop.py). Prints the figures of both phases.
# The limit, 10 per mille: what remains are the provider calls whose status
# records were not written at the kill (dispatch.status_every, 128, at most).
# Measured on 2 shared cores at load ~10: release build 0.03-0.17 % under
# load and 0 in the crash loop; sanitizer build up to 0.65 % and 0.34 %
# (before: 45 % and 2.7 copies per notification). When one status_every
# slice (128) per kill is more, that is the limit: a kill repeats a bounded
# number of calls, and under heavy load the phases post far fewer events
# (a sanitizer build at load ~15: 40 duplicates a kill were 1.3 %).
# CRASH_MAX_DUP_PERMILLE overrides it.
source "$(dirname "$0")/lib/common.sh"
python3 "$(dirname "$0")/lib/crash_loop.py" "$HERALD" "$WORK" "$PORT" 20 10 "${CRASH_MAX_DUP_PERMILLE:-10}" \
  || fail "crash loop"
echo PASS
