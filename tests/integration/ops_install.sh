#!/usr/bin/env bash
# `make install` (cmake --install under a prefix and DESTDIR) installs the
# binary, the man page, the systemd unit, the sample configuration, the
# dashboard and the alert rules; the installed binary answers --help and
# version and serves with the installed configuration (and with every
# commented default of it switched on); the man page renders without
# warnings and names every command; the unit has its sandboxing and passes
# `systemd-analyze verify` (skipped, saying why, when systemd-analyze is
# missing); a second install keeps an edited configuration; the prefix /usr
# puts the configuration under /etc.
set -euo pipefail
HERALD=${1:?usage: $0 path/to/herald}
HERALD=$(cd "$(dirname "$HERALD")" && pwd)/$(basename "$HERALD")
BUILD=$(dirname "$HERALD")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d -t herald-install.XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# make install is cmake --install with PREFIX and DESTDIR
plan=$(make -n -s -C "$ROOT" install BUILD="$BUILD" PREFIX=/p DESTDIR=/d 2>/dev/null | grep 'cmake --install') ||
  fail "make -n install shows no cmake --install"
[ "$plan" = "DESTDIR=\"/d\" cmake --install $BUILD --prefix \"/p\"" ] || fail "make install runs: $plan"

PREFIX=/opt/herald-test
DEST=$WORK/root
P=$DEST$PREFIX
DESTDIR=$DEST cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" || fail "cmake --install: $(cat "$WORK/install.log")"

for f in bin/herald share/man/man1/herald.1 lib/systemd/system/herald.service etc/herald/herald.conf \
         share/doc/herald/herald.conf.example share/herald/grafana/herald.json \
         share/herald/prometheus/herald-alerts.yml; do
  [ -f "$P/$f" ] || fail "$PREFIX/$f not installed"
done
[ -x "$P/bin/herald" ] || fail "bin/herald is not executable"
cmp -s "$ROOT/ops/herald.conf" "$P/etc/herald/herald.conf" || fail "herald.conf differs from ops/herald.conf"
cmp -s "$ROOT/ops/grafana/herald.json" "$P/share/herald/grafana/herald.json" || fail "dashboard differs"
# nothing outside DESTDIR/PREFIX
stray=$(cd "$DEST" && find . -type f | grep -v "^\.$PREFIX/" || true)
[ -z "$stray" ] || fail "installed outside the prefix: $stray"
echo "installed $(cd "$DEST" && find . -type f | wc -l) files under DESTDIR$PREFIX"

# the installed binary
"$P/bin/herald" --help >"$WORK/help" || fail "installed herald --help"
grep -q '^usage: herald <command>' "$WORK/help" || fail "--help: $(cat "$WORK/help")"
[ "$("$P/bin/herald" version)" = "$("$HERALD" version)" ] || fail "installed herald version: $("$P/bin/herald" version)"

# the man page: renders, no roff warnings, every command of --help
if command -v groff >/dev/null; then
  warn=$(groff -man -ww -z -Tutf8 "$P/share/man/man1/herald.1" 2>&1)
  [ -z "$warn" ] || fail "herald.1: $warn"
  groff -man -Tutf8 -P-cbou "$P/share/man/man1/herald.1" 2>/dev/null | grep -q 'SYNOPSIS' || fail "herald.1 does not render"
else
  echo "skipped: groff checks of herald.1 (groff is not installed)"
fi
for cmd in $(awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' "$WORK/help"); do
  grep -q "^\.B $cmd\$" "$P/share/man/man1/herald.1" || fail "herald.1 does not describe '$cmd'"
done
grep -q 'log.format' "$P/share/man/man1/herald.1" || fail "herald.1 lacks log.format"

# the unit: installed paths and sandboxing
U=$P/lib/systemd/system/herald.service
grep -qx "ExecStart=$PREFIX/bin/herald serve --config $PREFIX/etc/herald/herald.conf --data-dir /var/lib/herald" "$U" ||
  fail "ExecStart: $(grep ExecStart "$U")"
for opt in ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes DynamicUser=yes StateDirectory=herald \
           ProtectHome=yes PrivateDevices=yes CapabilityBoundingSet= RestrictAddressFamilies=AF_UNIX\ AF_INET\ AF_INET6 \
           SystemCallFilter=@system-service KillSignal=SIGTERM; do
  grep -qx "$opt" "$U" || fail "herald.service lacks $opt"
done
! grep -qE '@[A-Z_]+@' "$U" || fail "unsubstituted @VAR@ in herald.service"
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart's binary exists and that man:herald(1)
  # resolves: point both into DESTDIR
  sed "s|^ExecStart=$PREFIX/bin/herald|ExecStart=$P/bin/herald|" "$U" >"$WORK/herald.service"
  out=$(MANPATH=$P/share/man systemd-analyze verify "$WORK/herald.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  # and it does notice a bad line (the check can fail)
  sed 's/^ProtectSystem=strict/ProtectSystem=sometimes/' "$WORK/herald.service" >"$WORK/bad.service"
  out=$(MANPATH=$P/share/man systemd-analyze verify "$WORK/bad.service" 2>&1 || true)
  [ -n "$out" ] || fail "systemd-analyze verify did not notice ProtectSystem=sometimes"
  if level=$(systemd-analyze security --offline=yes "$WORK/herald.service" 2>/dev/null |
             sed -n 's/.*Overall exposure level for herald.service: \([0-9.]*\).*/\1/p') && [ -n "$level" ]; then
    echo "systemd-analyze security: exposure $level (0 safest .. 10)"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 2.5 else 1)" "$level" || fail "exposure $level > 2.5"
  fi
  echo "systemd-analyze verify: herald.service OK"
else
  echo "skipped: systemd-analyze verify of herald.service (systemd-analyze is not installed)"
fi

# The sample configuration names only real keys, and the installed binary
# serves with it, and with every commented default switched on.
python3 - "$P/etc/herald/herald.conf" "$WORK/all-on.conf" <<PY || fail "herald.conf"
import re, subprocess, sys
keys = set(re.findall(r"^\| \`([^\`]+)\` \|", subprocess.run(["$P/bin/herald", "config"], capture_output=True, text=True, check=True).stdout, re.M))
section, out, n = "", [], 0
for line in open(sys.argv[1]):
    m = re.match(r"^#?\[([^\]]+)\]\s*$", line)
    if m:
        section = m.group(1)
        out.append(line.lstrip("#"))
        continue
    # "#key = value": a default, switched on below; "; key = value": an
    # example needing files of its own: its key is checked, it stays off
    m = re.match(r"^(#|; )?([a-z_][a-z0-9_.]*)\s*=\s*(.*)$", line)
    if m:
        key = (section + "." if section else "") + m.group(2)
        ok = key in keys or re.match(r"^(kafka\.|provider\.[a-z0-9-]+\.|channel\.[a-z]+\.)", key)
        if not ok:
            sys.exit(f"herald.conf: unknown key {key}")
        n += 1
        out.append(line if m.group(1) == "; " else line.lstrip("#"))
        continue
    out.append(line)
open(sys.argv[2], "w").writelines(out)
print(f"herald.conf: {n} keys, all known")
PY
serve_with() {
  local conf=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$WORK/data"
  "$P/bin/herald" serve --config "$conf" --data-dir "$WORK/data" --set http.listen=127.0.0.1:$port >"$WORK/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || fail "installed herald with $(basename "$conf") not ready: $(tail -5 "$WORK/serve.log")"
  kill -TERM "$PID"
  wait "$PID" || fail "installed herald did not stop cleanly: $(tail -5 "$WORK/serve.log")"
  PID=""
}
serve_with "$P/etc/herald/herald.conf"
serve_with "$WORK/all-on.conf"
echo "installed herald serves with herald.conf (as shipped, and with every default uncommented)"

# a second install keeps an edited configuration, and refreshes the rest
echo "# edited" >>"$P/etc/herald/herald.conf"
DESTDIR=$DEST cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install2.log"
tail -n 1 "$P/etc/herald/herald.conf" | grep -qx '# edited' || fail "reinstall overwrote herald.conf"
grep -q 'Keeping: ' "$WORK/install2.log" || fail "reinstall did not say it kept herald.conf"

# PREFIX=/usr: configuration under /etc, unit under /usr/lib/systemd/system
DESTDIR=$WORK/usr cmake --install "$BUILD" --prefix /usr >/dev/null
[ -f "$WORK/usr/etc/herald/herald.conf" ] || fail "prefix /usr: no /etc/herald/herald.conf"
grep -qx "ExecStart=/usr/bin/herald serve --config /etc/herald/herald.conf --data-dir /var/lib/herald" \
  "$WORK/usr/usr/lib/systemd/system/herald.service" || fail "prefix /usr: $(grep ExecStart "$WORK/usr/usr/lib/systemd/system/herald.service")"
echo "install: OK"
