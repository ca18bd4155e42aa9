#!/usr/bin/env bash
# Runs every libFuzzer target of a HERALD_FUZZ build for a bounded time on a
# copy of its seed corpus (tests/fuzz/corpus/<target>/). Fails when a target
# crashes, leaks or trips a sanitizer; the input that did it is kept in
# <build>/fuzz/artifacts/ and named in the output.
#
#   scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
#   FUZZ_JOBS=n   targets run at once (default: the number of CPUs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: $0 BUILD_DIR [SECONDS] [TARGET...]}
SECONDS_EACH=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
BIN="$BUILD/fuzz"
[ -d "$BIN" ] || { echo "fuzz: no targets in $BIN (configure with -DHERALD_FUZZ=ON)" >&2; exit 1; }
if [ $# -gt 0 ]; then targets=("$@"); else
    targets=(); for t in "$BIN"/fuzz_*; do [ -x "$t" ] && targets+=("$(basename "$t")"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets built in $BIN" >&2; exit 1; }
JOBS=${FUZZ_JOBS:-$(nproc)}
WORK=$(mktemp -d -t herald-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ART="$BIN/artifacts"
mkdir -p "$ART"

run_one() {
    local t=$1 corpus="$WORK/$1"
    mkdir -p "$corpus"
    [ -d "$ROOT/tests/fuzz/corpus/$t" ] && cp "$ROOT/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
    if "$BIN/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$ART/$t-" "$corpus" >"$WORK/$t.log" 2>&1; then
        echo "fuzz: $t ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/$t.log" |
            grep -o '[0-9]*$') runs in ${SECONDS_EACH} s)"
    else
        echo "fuzz: $t FAILED; last lines of its log:"
        tail -n 40 "$WORK/$t.log"
        return 1
    fi
}

failed=0
running=0
for t in "${targets[@]}"; do
    [ -x "$BIN/$t" ] || { echo "fuzz: $BIN/$t is not built" >&2; failed=1; continue; }
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
[ "$failed" = 0 ] || { echo "fuzz: failures; crashing inputs are in $ART" >&2; exit 1; }
