#!/usr/bin/env bash
# The backend-parameterised store tests (test_store, test_store_flow,
# test_store_erase, test_store_inbox) and the PostgreSQL-only test_store_pg
# against the PostgreSQL backend.
# Usage: postgres.sh <path to test_store> [more test binaries...]
#
# Starts a throw-away server with scripts/pg.sh and stops it after, unless
# HERALD_TEST_STORE_DSN names one already (its public schema is dropped
# before every test!). Without PostgreSQL installed the test is skipped
# (exit 77), except when CI=true: there a missing server is a failure.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: postgres.sh <test binary>..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

if [ -z "${HERALD_TEST_STORE_DSN:-}" ]; then
  set +e
  out=$("$root/scripts/pg.sh" start)
  rc=$?
  set -e
  if [ $rc -eq 77 ]; then
    if [ "${CI:-}" = true ]; then
      echo "postgres.sh: no PostgreSQL server installed (scripts/deps.sh --test installs it)" >&2
      exit 1
    fi
    echo "SKIP: no PostgreSQL server installed (apt-get install postgresql)"
    exit 77
  fi
  [ $rc -eq 0 ] || { echo "postgres.sh: could not start PostgreSQL" >&2; exit 1; }
  eval "$out"
  trap '"$root/scripts/pg.sh" stop "$HERALD_PG_DIR"' EXIT
fi
rc=0
for t in "$@"; do
  echo "== $(basename "$t") on PostgreSQL"
  HERALD_TEST_STORE=postgres "$t" || rc=1
done
exit $rc
