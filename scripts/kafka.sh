#!/usr/bin/env bash
# kafka.sh - run a local Apache Kafka (KRaft) for herald's tests and benchmarks.
#
#   scripts/kafka.sh start  [--nodes 1|3] [--node N]   start the cluster (or one node of it)
#   scripts/kafka.sh stop   [--node N] [--graceful]     stop all (SIGTERM) or one node (SIGKILL)
#   scripts/kafka.sh status                             which nodes run; exit 1 if none
#   scripts/kafka.sh bootstrap                          print the bootstrap address
#   scripts/kafka.sh fetch                              only fetch the jars
#   scripts/kafka.sh classpath                          print the Java classpath (for javac)
#   scripts/kafka.sh clean                              stop and delete the state dir
#
# One node: broker on 127.0.0.1:9092, controller on 9093 (combined mode).
# Three nodes: brokers 1..3 on 127.0.0.1:19092..19094 and a separate KRaft
# controller (node 0) on 19192; default.replication.factor=3,
# min.insync.replicas=2. With the controller apart, any one or two brokers
# can be killed and the controller still fences them (after 6 s without
# heartbeats), moves leaders and shrinks ISRs, so writes below
# min.insync.replicas fail with NOT_ENOUGH_REPLICAS instead of hanging.
# `--node 0` starts or stops the controller.
#
# The broker comes from Maven Central as jars (kafka_2.13, kafka-tools and a
# log4j2 binding) fetched with Maven into a cache outside the repository and
# started with the machine's Java. Nothing else is downloaded.
#
# Environment:
#   HERALD_KAFKA_DIR      state: config, data, logs, pids   (default /tmp/herald-kafka)
#   HERALD_KAFKA_PORT     first broker port (default 9092, or 19092 for 3 nodes); the
#                         other ports follow it; kept in the state dir once formatted
#   HERALD_KAFKA_CACHE    jar cache          (default ${XDG_CACHE_HOME:-~/.cache}/herald/kafka)
#   HERALD_KAFKA_VERSION  Apache Kafka version (default 4.1.2; 3.9.x works too)
#   HERALD_KAFKA_HEAP     Java heap per broker (default 512m; the controller gets 256m)
#   HERALD_KAFKA_TIMEOUT  seconds to wait for readiness (default 90)
# Set these for this script's command only (HERALD_KAFKA_DIR=... scripts/kafka.sh
# start), never export them: herald reads every HERALD_KAFKA_<NAME> variable as
# the librdkafka setting kafka.<name> and refuses unknown ones.
set -euo pipefail

VERSION=${HERALD_KAFKA_VERSION:-4.1.2}
LOG4J_VERSION=2.25.3
STATE=${HERALD_KAFKA_DIR:-/tmp/herald-kafka}
CACHE=${HERALD_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/kafka}
HEAP=${HERALD_KAFKA_HEAP:-512m}
TIMEOUT=${HERALD_KAFKA_TIMEOUT:-90}
LIBS="$CACHE/$VERSION/libs"
LAYOUT=2    # state dir layout; older state dirs are formatted again

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

usage() { sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# ---- ports and layout ----
# Node 0 is the controller of a 3-node cluster; nodes 1..n are brokers. A
# 1-node cluster is one combined broker+controller, node 1.

cluster_nodes() { # broker count of the formatted cluster, 0 if none
    if [ -f "$STATE/nodes" ] && [ "$(cat "$STATE/layout" 2>/dev/null)" = "$LAYOUT" ]; then
        cat "$STATE/nodes"
    else
        echo 0
    fi
}
default_port() { # nodes
    if [ "$1" -eq 1 ]; then echo 9092; else echo 19092; fi
}
base_port() { # nodes: first broker port of the formatted cluster (or of the one to format)
    if [ -f "$STATE/port" ]; then cat "$STATE/port"; else echo "${HERALD_KAFKA_PORT:-$(default_port "$1")}"; fi
}
broker_port() { # node nodes
    echo $(($(base_port "$2") + $1 - 1))
}
controller_port() { # nodes
    if [ "$1" -eq 1 ]; then echo $(($(base_port 1) + 1)); else echo $(($(base_port "$1") + 100)); fi
}
node_ports() { # node nodes: the ports a node listens on
    local i=$1 n=$2
    if [ "$n" -eq 1 ]; then
        echo "$(broker_port 1 1) $(controller_port 1)"
    elif [ "$i" -eq 0 ]; then
        controller_port "$n"
    else
        broker_port "$i" "$n"
    fi
}
bootstrap() { # nodes
    local n=$1 i out=""
    for ((i = 1; i <= n; i++)); do out+="${out:+,}127.0.0.1:$(broker_port "$i" "$n")"; done
    echo "$out"
}
voters() { # nodes
    if [ "$1" -eq 1 ]; then echo "1@127.0.0.1:$(controller_port 1)"; else echo "0@127.0.0.1:$(controller_port "$1")"; fi
}
all_nodes() { # nodes: every process of the cluster, the controller first
    if [ "$1" -eq 1 ]; then echo 1; else echo 0 $(seq 1 "$1"); fi
}
node_dir() { echo "$STATE/node-$1"; }
node_pid() { # prints the pid of a running node, or nothing
    local f
    f="$(node_dir "$1")/pid"
    [ -f "$f" ] || return 0
    local pid
    pid=$(cat "$f")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        grep -q "kafka.Kafka" "/proc/$pid/cmdline" 2>/dev/null; then
        echo "$pid"
    fi
}

# ---- jars ----

need_java() {
    command -v java >/dev/null || die "java not found (run scripts/deps.sh --test)"
    local v
    v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ -n "$v" ] && [ "$v" -lt 17 ] && [ "${VERSION%%.*}" -ge 4 ]; then
        die "Kafka $VERSION needs Java 17 or newer (found $v)"
    fi
}

fetch() {
    if [ -f "$LIBS/.complete" ]; then return 0; fi
    need_java
    command -v mvn >/dev/null || die "mvn not found (run scripts/deps.sh --test)"
    mkdir -p "$CACHE/$VERSION"
    # One fetch at a time: tests running in parallel may all ask for the jars.
    if command -v flock >/dev/null; then
        exec 9>"$CACHE/$VERSION/.lock"
        flock 9
        if [ -f "$LIBS/.complete" ]; then exec 9>&-; return 0; fi
    fi
    local work="$CACHE/$VERSION/fetch"
    mkdir -p "$work"
    # Kafka 4.x logs through slf4j 1.7 + log4j2; 3.9 through slf4j 1.7 + reload4j.
    # Either way log4j-slf4j-impl (slf4j 1.x -> log4j2) gives one binding.
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>herald.test</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version>
      <exclusions>
        <exclusion><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version>
      <exclusions>
        <exclusion><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    say "fetching Apache Kafka $VERSION jars with Maven into $LIBS"
    rm -rf "$LIBS.tmp"
    if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS.tmp" -DincludeScope=runtime >"$work/mvn.log" 2>&1; then
        tail -30 "$work/mvn.log" >&2
        die "maven could not fetch Kafka $VERSION"
    fi
    rm -rf "$LIBS"
    mv "$LIBS.tmp" "$LIBS"
    touch "$LIBS/.complete"
    exec 9>&-
}

classpath() { echo "$LIBS/*"; }

# ---- config ----

write_log4j() {
    local dir=$1
    cat >"$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="$dir/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
EOF
}

write_config() { # node nodes
    local i=$1 n=$2 dir rf isr
    dir=$(node_dir "$i")
    mkdir -p "$dir/data"
    if [ "$n" -ge 3 ]; then rf=3; isr=2; else rf=1; isr=1; fi
    {
        echo "# generated by scripts/kafka.sh"
        if [ "$n" -eq 1 ]; then
            echo "process.roles=broker,controller"
            echo "listeners=PLAINTEXT://127.0.0.1:$(broker_port 1 1),CONTROLLER://127.0.0.1:$(controller_port 1)"
        elif [ "$i" -eq 0 ]; then
            echo "process.roles=controller"
            echo "listeners=CONTROLLER://127.0.0.1:$(controller_port "$n")"
        else
            echo "process.roles=broker"
            echo "listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i" "$n")"
        fi
        if [ "$i" -ge 1 ]; then
            echo "advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i" "$n")"
            echo "inter.broker.listener.name=PLAINTEXT"
        fi
        cat <<EOF
node.id=$i
controller.quorum.voters=$(voters "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
log.retention.hours=24
log.segment.bytes=268435456
num.network.threads=2
num.io.threads=4
EOF
        if [ "$n" -ge 3 ]; then
            # Fence a broker that stops heartbeating after 6 s (default 9 s).
            echo "broker.session.timeout.ms=6000"
            echo "broker.heartbeat.interval.ms=1000"
        fi
    } >"$dir/server.properties"
    write_log4j "$dir"
}

format() { # nodes
    local n=$1 i cid dir port
    port=${HERALD_KAFKA_PORT:-$(default_port "$n")}
    # A cluster id is 16 random bytes in URL-safe base64 without padding; like
    # Kafka's own ids, never one that starts with '-' (an option to the tool).
    cid=-
    while [ "${cid#-}" != "$cid" ]; do
        cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    done
    rm -rf "$STATE"
    mkdir -p "$STATE"
    echo "$port" >"$STATE/port"
    # Static controller quorum (controller.quorum.voters): every node formats
    # alone with the same cluster id; the nodes format in parallel.
    local pids=() nodes k=0
    nodes=$(all_nodes "$n")
    for i in $nodes; do
        write_config "$i" "$n"
        dir=$(node_dir "$i")
        java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$dir/log4j2.xml" \
            kafka.tools.StorageTool format --cluster-id "$cid" \
            --config "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 &
        pids+=($!)
    done
    for i in $nodes; do
        if ! wait "${pids[$k]}"; then
            cat "$(node_dir "$i")/format.log" >&2
            die "cannot format node $i storage"
        fi
        k=$((k + 1))
    done
    echo "$LAYOUT" >"$STATE/layout"
    echo "$n" >"$STATE/nodes"
}

# ---- processes ----

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

launch() { # node nodes
    local i=$1 n=$2 dir p heap=$HEAP
    dir=$(node_dir "$i")
    if [ -n "$(node_pid "$i")" ]; then return 0; fi
    for p in $(node_ports "$i" "$n"); do
        port_busy "$p" && die "port $p is in use by another process (a broker started elsewhere?)"
    done
    [ "$i" -eq 0 ] && heap=256m
    # setsid: the broker outlives this script and is not hit by its terminal's signals.
    setsid java -Xmx"$heap" -Xms"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dkafka.logs.dir="$dir" \
        -Dlog4j2.configurationFile="$dir/log4j2.xml" \
        -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
        >"$dir/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
}

# True when the broker on `port` answers a metadata request that lists every
# broker id given (registered with the controller).
probe() { # port id...
    local port=$1
    shift
    if command -v kcat >/dev/null; then
        local out id
        out=$(kcat -L -b "127.0.0.1:$port" -m 2 -J 2>/dev/null) || return 1
        out=$(grep -o '"brokers":\[[^]]*\]' <<<"$out") || return 1
        for id in "$@"; do
            grep -q "\"id\":$id," <<<"$out" || return 1
        done
    else
        port_busy "$port"
    fi
}

node_died() { # node: prints its logs and fails
    tail -40 "$(node_dir "$1")/server.log" >&2 2>/dev/null || true
    tail -20 "$(node_dir "$1")/stdout.log" >&2 2>/dev/null || true
    die "node $1 exited during start (logs in $(node_dir "$1"))"
}

wait_ready() { # nodes want-all(0|1) node...
    local n=$1 all=$2
    shift 2
    local start=$SECONDS i ids
    for i in "$@"; do
        if [ "$i" -eq 0 ]; then
            # The controller has no client port; brokers see it by registering.
            while ! port_busy "$(controller_port "$n")"; do
                [ -n "$(node_pid 0)" ] || node_died 0
                [ $((SECONDS - start)) -lt "$TIMEOUT" ] ||
                    die "controller not ready after ${TIMEOUT}s (logs in $(node_dir 0))"
                sleep 0.2
            done
            continue
        fi
        if [ "$all" = 1 ]; then ids=$(seq 1 "$n"); else ids=$i; fi
        # shellcheck disable=SC2086
        while [ -z "$(node_pid "$i")" ] || ! probe "$(broker_port "$i" "$n")" $ids; do
            [ -n "$(node_pid "$i")" ] || node_died "$i"
            if [ "$n" -gt 1 ] && [ -z "$(node_pid 0)" ]; then
                die "the controller (node 0) is not running; start it with --node 0"
            fi
            if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
                die "node $i not ready after ${TIMEOUT}s (logs in $(node_dir "$i"))"
            fi
            sleep 0.2
        done
    done
}

cmd_start() {
    local n="" node=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --nodes) n=$2; shift 2 ;;
        --node) node=$2; shift 2 ;;
        *) usage ;;
        esac
    done
    need_java
    fetch
    local have
    have=$(cluster_nodes)
    if [ -n "$node" ]; then
        [ "$have" -gt 0 ] || die "no cluster formatted; start it first"
        if [ "$have" -eq 1 ]; then
            [ "$node" -eq 1 ] || die "no node $node (a 1-node cluster has node 1)"
        else
            [ "$node" -ge 0 ] && [ "$node" -le "$have" ] || die "no node $node (0 = controller, 1..$have = brokers)"
        fi
        launch "$node" "$have"
        wait_ready "$have" 0 "$node"
        bootstrap "$have"
        return 0
    fi
    n=${n:-1}
    [ "$n" -eq 1 ] || [ "$n" -eq 3 ] || die "--nodes must be 1 or 3"
    local i running=0 want_port
    for i in 0 1 2 3; do [ -n "$(node_pid "$i")" ] && running=1; done
    want_port=${HERALD_KAFKA_PORT:-$(default_port "$n")}
    if [ "$have" -ne "$n" ] || [ "$(base_port "$n")" != "$want_port" ]; then
        [ "$running" -eq 0 ] || die "a cluster is running in $STATE; stop it first"
        format "$n"
    fi
    local t0 nodes
    t0=$(date +%s.%N)
    nodes=$(all_nodes "$n")
    # shellcheck disable=SC2086
    for i in $nodes; do launch "$i" "$n"; done
    # shellcheck disable=SC2086
    wait_ready "$n" 1 $nodes
    say "$n-node cluster ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
    bootstrap "$n"
}

stop_pid() { # pid signal
    local pid=$1 sig=$2 k
    kill "-$sig" "$pid" 2>/dev/null || return 0
    for ((k = 0; k < 300; k++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

cmd_stop() {
    local node="" sig=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --node) node=$2; shift 2 ;;
        --graceful) sig=TERM; shift ;;
        *) usage ;;
        esac
    done
    local have i pid
    have=$(cluster_nodes)
    if [ -n "$node" ]; then
        pid=$(node_pid "$node")
        [ -n "$pid" ] || { say "node $node is not running"; return 0; }
        stop_pid "$pid" "${sig:-KILL}"
        rm -f "$(node_dir "$node")/pid"
        say "node $node stopped (${sig:-KILL})"
        return 0
    fi
    # Everything: the brokers first, together (a broker's controlled shutdown
    # needs the controller), then the controller.
    local pids=() stopped=0
    for i in 1 2 3; do
        pid=$(node_pid "$i")
        [ -n "$pid" ] && pids+=("$pid") && kill "-${sig:-TERM}" "$pid" 2>/dev/null
    done
    for pid in "${pids[@]+"${pids[@]}"}"; do stop_pid "$pid" "${sig:-TERM}"; done
    stopped=${#pids[@]}
    pid=$(node_pid 0)
    if [ -n "$pid" ]; then
        stop_pid "$pid" "${sig:-TERM}"
        stopped=$((stopped + 1))
    fi
    for i in 0 1 2 3; do rm -f "$(node_dir "$i")/pid"; done
    say "stopped $stopped node(s)"
}

cmd_status() {
    local have i pid up=0 what
    have=$(cluster_nodes)
    [ "$have" -gt 0 ] || { echo "no cluster in $STATE"; return 1; }
    for i in $(all_nodes "$have"); do
        pid=$(node_pid "$i")
        if [ "$have" -gt 1 ] && [ "$i" -eq 0 ]; then
            what="controller on 127.0.0.1:$(controller_port "$have")"
        else
            what="broker on 127.0.0.1:$(broker_port "$i" "$have")"
        fi
        if [ -n "$pid" ]; then
            echo "node $i: running pid $pid, $what"
            [ "$i" -ge 1 ] && up=$((up + 1))
        else
            echo "node $i: stopped ($what)"
        fi
    done
    echo "bootstrap: $(bootstrap "$have")"
    [ "$up" -gt 0 ]
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status ;;
bootstrap) n=$(cluster_nodes); [ "$n" -gt 0 ] || n=1; bootstrap "$n" ;;
fetch) fetch; echo "$LIBS" ;;
classpath) fetch; classpath ;;
clean) cmd_stop; rm -rf "$STATE" ;;
*) usage ;;
esac
