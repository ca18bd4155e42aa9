#!/usr/bin/env bash
# The README's configuration table is exactly what `herald config` prints
# (the table is generated from the options table in src/config/config.c:
# regenerate it with `herald config` after adding or changing a key).
set -euo pipefail
herald=${1:?usage: readme_config.sh path/to/herald}
readme="$(dirname "$0")/../../README.md"
want=$(mktemp)
have=$(mktemp)
trap 'rm -f "$want" "$have"' EXIT
"$herald" config >"$want"
# the table: from its header row to the first line that is not a table row
awk '/^\| key \| type \| range \| default \| doc \|$/ {on = 1} on && !/^\|/ {exit} on' "$readme" >"$have"
if ! diff -u "$want" "$have"; then
    echo "README.md's configuration table differs from 'herald config' (- herald config, + README)" >&2
    exit 1
fi
echo "README configuration table matches 'herald config' ($(wc -l <"$want") lines)"
