#!/usr/bin/env bash
# Builds the fake providers into BUILD_DIR/fakeprov/fakeprov and prints its
# path. Go's build cache is shared by every build directory (it is safe for
# concurrent use), outside the tree like the Kafka jars, so the normal and the
# sanitizer builds compile Go's standard library once; concurrent callers of
# this script (ctest -j) serialise on a lock. Exit 77 when no Go toolchain is found
# (scripts/deps.sh --test installs golang-go).
#
#   tests/fakeprov/build.sh BUILD_DIR [--check]
#
# --check also runs `go vet` and the fake's own Go tests first.
set -euo pipefail
BUILD=${1:?usage: tests/fakeprov/build.sh BUILD_DIR [--check]}
CHECK=${2:-}
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=$(mkdir -p "$BUILD/fakeprov" && cd "$BUILD/fakeprov" && pwd)

GO=$(command -v go || true)
for g in /usr/lib/go/bin/go /usr/local/go/bin/go; do
  [ -n "$GO" ] && break
  [ -x "$g" ] && GO=$g
done
if [ -z "$GO" ]; then
  echo "fakeprov: no Go toolchain (scripts/deps.sh --test installs golang-go)" >&2
  exit 77
fi

CACHE=${HERALD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald}
mkdir -p "$CACHE"
export GOCACHE="$CACHE/go-build" GOPATH="$OUT/gopath" GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 GO111MODULE=on
exec 9>"$OUT/.lock"
flock 9
if [ "$CHECK" = --check ]; then
  (cd "$SRC" && "$GO" vet . && "$GO" test -count=1 .) >&2
fi
(cd "$SRC" && "$GO" build -trimpath -o "$OUT/fakeprov.new" . && mv -f "$OUT/fakeprov.new" "$OUT/fakeprov") >&2
echo "$OUT/fakeprov"
