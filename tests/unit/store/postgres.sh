#!/usr/bin/env bash
# The store contract tests (test_store) against the PostgreSQL backend.
# Usage: postgres.sh <path to test_store>
#
# Starts a throw-away server with scripts/pg.sh and stops it after, unless
# HERALD_TEST_STORE_DSN names one already (its public schema is dropped
# before every test!). Without PostgreSQL installed the test is skipped
# (exit 77), except when CI=true: there a missing server is a failure.
set -euo pipefail
bin=${1:?usage: postgres.sh <test_store>}
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
HERALD_TEST_STORE=postgres "$bin"
