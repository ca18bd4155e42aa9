#!/usr/bin/env bash
# Installs the Debian packages herald needs to build and test, when missing.
# Idempotent and quiet when everything is present.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libjansson-dev libmicrohttpd-dev libsqlite3-dev librdkafka-dev libcurl4-openssl-dev
      libssl-dev libinih-dev libicu-dev zlib1g-dev libcmocka-dev
      sqlite3 curl python3 kcat gnuplot-nox)
pkgs+=(libhiredis-dev)  # the Redis rate limiter (src/policy/ratelimit_redis.c)
pkgs+=(libpq-dev)  # the PostgreSQL store (src/store/store_pg.c; built when pkg-config finds libpq)
# --test: Java and Maven for the Kafka broker tests, prometheus for promtool
# (the dashboard and alert rule tests; Debian ships promtool only in it, and
# on a machine run by systemd the package also starts a Prometheus server on
# port 9090, which no test uses); --fuzz: clang and its libFuzzer runtime
# for `make fuzz`.
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(default-jre-headless maven redis-server python3-aiosmtpd openssl prometheus npm chromium golang-go postgresql gdb) ;;  # gdb: thread stacks of a herald whose graceful stop hangs in a test; postgresql: the PostgreSQL store contract tests (scripts/pg.sh starts a throw-away server); redis-server: the Redis rate-limit tests; python3-aiosmtpd, openssl: the SMTP server tests; prometheus: promtool for the alert rules; npm: the OpenAPI linter; chromium: the status page test (headless); golang-go: tests/fakeprov (only when no go is on PATH)
    --fuzz) pkgs+=(clang libclang-rt-dev) ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Java, Maven and Go may come from elsewhere (an SDK install); accept them on PATH.
if [ ${#missing[@]} -gt 0 ]; then
  filtered=()
  for p in "${missing[@]}"; do
    case "$p" in
      default-jre-headless) command -v java >/dev/null && continue ;;
      maven) command -v mvn >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;  # the OpenAPI linter (Redocly CLI, from npm)
      golang-go) command -v go >/dev/null && continue ;;
    esac
    filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
