#!/usr/bin/env bash
# bench.sh - `make bench`: runs `herald bench` on both bus backends and writes
# bench/results/*.json, BENCHMARKS.md and bench/chart.png.
#
#   scripts/bench.sh build/herald
#
# Runs, in order (about 12 minutes on 2 cores):
#   embedded-null   embedded bus, sandbox provider recording nothing: raw-bus
#                   baseline, burst (closed loop), the sustained rate (a search
#                   for the highest offered rate at which every stage, the
#                   status sink included, keeps up), latency at 10/50/90 % of it
#   embedded-file   the same with the sandbox writing its JSON lines (latency at 50 %)
#   kafka-null      a single-node KRaft broker started for the run (scripts/kafka.sh,
#                   own state dir and port), raw librdkafka baseline, burst,
#                   sustained rate, sweep; the same columns as embedded-null
#   http-engine     the HTTP engine alone (src/provider/http.c, no pipeline)
#                   against the fake APNs (tests/fakeprov) over HTTP/2 + TLS,
#                   0 and 20 ms injected delay (`herald bench http-engine`)
#   push-apns-0ms   the whole pipeline, every event a push, delivered by the
#   push-apns-20ms  APNs provider (token auth, TLS) to the fake APNs answering
#                   at once / after 20 ms (max run only)
#   sink-sqlite     the status store alone (`herald bench sink`): status rows
#                   through store_notif_write_batch into a fresh SQLite file,
#                   rows/s and rows per CPU-second per million rows
#   sink-sqlite-lag the same with ids late as in the pipeline (`--lag`)
#   cluster3        three herald instances on scripts/cluster.sh (Kafka x3,
#                   PostgreSQL, Redis), with and without exactly-once fan-out
#   pg-sink         status rows/s into PostgreSQL through the store alone
#                   (`herald bench pg-sink`, a throw-away server from scripts/pg.sh)
# Kafka mode needs Java; without it the run says so and is skipped. The fake
# providers need Go (scripts/deps.sh --test); without it http-engine is skipped.
#
# Environment:
#   HERALD_BENCH_USERS      distinct users (default 1000000)
#   HERALD_BENCH_DURATION   seconds of the burst (closed-loop) run (default 15)
#   HERALD_BENCH_HOLD       measured seconds per step of the sustained search (default 15)
#   HERALD_BENCH_STEPS      steps of the sustained search at most (default 8)
#   HERALD_BENCH_TOLERANCE  the search's precision: it stops when the rates that kept up
#                           and did not are within 1 + this (default 0.1)
#   HERALD_BENCH_DRAIN      longest wait, seconds, for every backlog to drain (default 90)
#   HERALD_BENCH_ONLY       run only these labels (space separated)
#   HERALD_BENCH_BROKERS    use this Kafka instead of starting one (its herald topics must be empty)
#   HERALD_BENCH_PUSH_USERS users of the push runs (default 100000)
#   HERALD_BENCH_SINK_ROWS  status rows of the sink-sqlite run (default 10000000)
#   HERALD_BENCH_SINK_LAG_ROWS  status rows of the sink-sqlite-lag run (default 2000000)
#   HERALD_BENCH_WARM       0: skip filling free memory with a clean file before each herald
#                           starts (--warm-page-cache; it writes up to the free memory, leaving
#                           40 GB of disk, ~2 s a GB on a fresh virtual machine)
set -euo pipefail

HERALD=${1:?usage: scripts/bench.sh path/to/herald}
HERALD=$(cd "$(dirname "$HERALD")" && pwd)/$(basename "$HERALD")
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=bench/results
mkdir -p "$OUT"

USERS=${HERALD_BENCH_USERS:-1000000}
DURATION=${HERALD_BENCH_DURATION:-15}
ONLY=${HERALD_BENCH_ONLY:-}
DRAIN=${HERALD_BENCH_DRAIN:-90}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+modified"; fi

WORK=$(mktemp -d -t herald-bench.XXXXXX)
KAFKA_STARTED=""
FAKE_PID=""
cleanup() {
    if [ -n "$FAKE_PID" ]; then kill -TERM "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
    if [ -n "$KAFKA_STARTED" ]; then
        HERALD_KAFKA_DIR="$WORK/kafka" scripts/kafka.sh stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

t_start=$SECONDS
common=(--users "$USERS" --commit "$commit" --seed-cache "$WORK/seed" --seed 1)
# a full page cache, as on a server that has run for a while (herald bench --help; notes round 27)
if [ "${HERALD_BENCH_WARM:-1}" != 0 ]; then common+=(--warm-page-cache); fi
# the sustained-rate search: steps of 3 s unmeasured + HOLD s measured
sustain=(--hold "${HERALD_BENCH_HOLD:-15}" --step-warmup 3 --steps "${HERALD_BENCH_STEPS:-8}"
         --tolerance "${HERALD_BENCH_TOLERANCE:-0.1}")

if want embedded-null; then
    "$HERALD" bench --label embedded-null --bus embedded --sink null "${common[@]}" "${sustain[@]}" \
        --duration "$DURATION" --sweep 10,50,90 --sweep-duration 8 --drain-timeout "$DRAIN" \
        --out "$OUT/embedded-null.json"
fi
if want embedded-file; then
    "$HERALD" bench --label embedded-file --bus embedded --sink file "${common[@]}" "${sustain[@]}" \
        --duration "$DURATION" --sweep 50 --sweep-duration 8 --drain-timeout "$DRAIN" --no-raw \
        --out "$OUT/embedded-file.json"
fi

if want kafka-null; then
    brokers=${HERALD_BENCH_BROKERS:-}
    if [ -z "$brokers" ]; then
        if ! command -v java >/dev/null; then
            echo "bench: Java not found: Kafka mode skipped (scripts/deps.sh --test installs it)" >&2
            rm -f "$OUT/kafka-null.json"
            echo '{"schema":1,"label":"kafka-null","skipped":"Java not found"}' >"$OUT/kafka-null.json"
        else
            port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            echo "bench: starting a single-node Kafka broker on 127.0.0.1:$port" >&2
            if brokers=$(HERALD_KAFKA_DIR="$WORK/kafka" HERALD_KAFKA_PORT="$port" scripts/kafka.sh start); then
                KAFKA_STARTED=1
            else
                echo "bench: the Kafka broker did not start: Kafka mode skipped" >&2
                echo '{"schema":1,"label":"kafka-null","skipped":"the broker did not start"}' >"$OUT/kafka-null.json"
                brokers=""
            fi
        fi
    fi
    if [ -n "$brokers" ]; then
        # librdkafka's queues sized for a 256 MB process: by default every
        # consumer may prefetch 64 MB and the producer hold 512 MB
        "$HERALD" bench --label kafka-null --bus kafka --kafka-brokers "$brokers" --sink null "${common[@]}" \
            "${sustain[@]}" --duration "$DURATION" --sweep 10,50,90 --sweep-duration 8 --drain-timeout "$DRAIN" \
            --set kafka.queued.max.messages.kbytes=8192 --set kafka.queue.buffering.max.kbytes=32768 \
            --out "$OUT/kafka-null.json"
    fi
    if [ -n "$KAFKA_STARTED" ]; then
        HERALD_KAFKA_DIR="$WORK/kafka" scripts/kafka.sh stop >/dev/null 2>&1 || true
        KAFKA_STARTED=""
    fi
fi

# The fake providers on one core (GOMAXPROCS=1), recording off: the engine's
# thread and the fake each get about a core of the two.
FAKE_BIN=""
fake_build() { [ -n "$FAKE_BIN" ] || FAKE_BIN=$(tests/fakeprov/build.sh "$(dirname "$HERALD")"); }
fake_start() {
    FAKE_PID=""
    fake_build || return 1
    rm -f "$WORK/fake.env"
    GOMAXPROCS=1 "$FAKE_BIN" serve -record=false -ports-file "$WORK/fake.env" -ca-out "$WORK/fake-ca.pem" "$@" \
        >"$WORK/fake.log" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 1 100); do [ -f "$WORK/fake.env" ] && break; sleep 0.05; done
    [ -f "$WORK/fake.env" ] || return 1
    # shellcheck disable=SC1091
    source "$WORK/fake.env"
}
fake_stop() {
    [ -n "$FAKE_PID" ] || return 0
    kill -TERM "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=""
}

if want http-engine; then
    if fake_start; then
        "$HERALD" bench http-engine --url "https://127.0.0.1:$FAKE_TLS_PORT" --ca-file "$WORK/fake-ca.pem" \
            --control-port "$FAKE_CONTROL_PORT" --requests "${HERALD_BENCH_HTTP_REQUESTS:-300000}" \
            --in-flight 500 --delays 0,20 --max-seconds 12 --commit "$commit" --out "$OUT/http-engine.json"
        fake_stop
    else
        echo "bench: the fake providers could not be built or started: http-engine skipped" >&2
        echo '{"schema":1,"label":"http-engine","skipped":"the fake providers (Go) are not available"}' >"$OUT/http-engine.json"
    fi
fi

if want sink-sqlite; then
    "$HERALD" bench sink --rows "${HERALD_BENCH_SINK_ROWS:-10000000}" --dir "$WORK" \
        --out "$OUT/sink-sqlite.json"
fi
if want sink-sqlite-lag; then
    "$HERALD" bench sink --lag --rows "${HERALD_BENCH_SINK_LAG_ROWS:-2000000}" --dir "$WORK" \
        --out "$OUT/sink-sqlite-lag.json"
fi

# The push pipeline: herald's APNs provider against the fake, which checks
# the ES256 provider tokens signed with a key made here. The APNs provider's
# default token budget (1,000/s per instance, policy/bucket.c) is lifted
# (rate=0): these runs measure the pipeline, not the budget.
push_skip() {
    echo "bench: $2: push runs skipped" >&2
    echo "{\"schema\":1,\"label\":\"$1\",\"skipped\":\"$2\"}" >"$OUT/$1.json"
}
for d in 0 20; do
    label=push-apns-${d}ms
    want "$label" || continue
    if ! fake_build || ! "$FAKE_BIN" gen-p8 -out "$WORK/apns.p8" ||
        ! fake_start -apns-key "$WORK/apns.p8" -apns-key-id BENCHKEY01 -apns-team-id BENCHTEAM1; then
        push_skip "$label" "the fake providers (Go) are not available"
        continue
    fi
    if ! "$HERALD" bench --label "$label" --bus embedded --sink null --users "${HERALD_BENCH_PUSH_USERS:-100000}" \
        --commit "$commit" --seed-cache "$WORK/seed" --seed 1 --push-only --device-platform apns \
        --fake-control "$FAKE_CONTROL_PORT" --fake-delay "$d" --duration 10 --warmup 2 --sweep "" --no-raw --no-sustain --window 5000 \
        --drain-timeout 20 --set channel.push.providers=apns \
        --set provider.apns.url="https://127.0.0.1:$FAKE_TLS_PORT" --set provider.apns.ca_file="$WORK/fake-ca.pem" \
        --set provider.apns.key_file="$WORK/apns.p8" --set provider.apns.key_id=BENCHKEY01 \
        --set provider.apns.team_id=BENCHTEAM1 --set provider.apns.topic=com.example.herald \
        --set provider.apns.rate=0 --set dispatch.status_every=500 --out "$OUT/$label.json"; then
        push_skip "$label" "herald bench failed (does this herald have the APNs provider?)"
    fi
    fake_stop
done

# The PostgreSQL store alone: status rows/s through store_notif_write_batch
# (`herald bench pg-sink`), on a throw-away server (scripts/pg.sh), without
# and with 2 reader threads doing the API's and dispatch's reads meanwhile.
if want pg-sink; then
    if pg_env=$(scripts/pg.sh start 2>/dev/null); then
        eval "$pg_env"
        "$HERALD" bench pg-sink --dsn "$HERALD_TEST_STORE_DSN" --rows "${HERALD_BENCH_PG_ROWS:-200000}" \
            --batch 1000 --commit "$commit" --out "$OUT/pg-sink.json" || echo "bench: pg-sink failed" >&2
        "$HERALD" bench pg-sink --dsn "$HERALD_TEST_STORE_DSN" --rows "${HERALD_BENCH_PG_ROWS:-200000}" \
            --batch 1000 --readers 2 --commit "$commit" --out "$OUT/pg-sink-load.json" ||
            echo "bench: pg-sink under load failed" >&2
        scripts/pg.sh stop "$HERALD_PG_DIR" >/dev/null 2>&1 || true
    else
        echo "bench: no PostgreSQL server (apt-get install postgresql): pg-sink skipped" >&2
        echo '{"schema":1,"label":"pg-sink","skipped":"no PostgreSQL server installed"}' >"$OUT/pg-sink.json"
    fi
fi

# Three instances on a local cluster (scripts/cluster.sh: three Kafka brokers,
# PostgreSQL, Redis): notifications/s and herald CPU per million, with and
# without fanout.exactly_once (bench/cluster3.py).
if want cluster3; then
    rc=0
    python3 bench/cluster3.py "$HERALD" "$OUT/cluster3.json" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 77 ] || echo "bench: cluster3 failed" >&2
fi

python3 bench/report.py "$OUT" BENCHMARKS.md bench/chart.png
echo "bench: done in $((SECONDS - t_start)) s: $OUT/*.json, BENCHMARKS.md, bench/chart.png" >&2
