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
# Three nodes: brokers 127.0.0.1:19092..19094, controllers 19192..19194,
# default.replication.factor=3, min.insync.replicas=2.
#
# The broker comes from Maven Central as jars (kafka_2.13, kafka-tools and a
# log4j2 binding) fetched with Maven into a cache outside the repository and
# started with the machine's Java. Nothing else is downloaded.
#
# Environment:
#   HERALD_KAFKA_DIR      state: config, data, logs, pids   (default /tmp/herald-kafka)
#   HERALD_KAFKA_CACHE    jar cache          (default ${XDG_CACHE_HOME:-~/.cache}/herald/kafka)
#   HERALD_KAFKA_VERSION  Apache Kafka version (default 4.1.2; 3.9.x works too)
#   HERALD_KAFKA_HEAP     Java heap per broker (default 512m)
#   HERALD_KAFKA_TIMEOUT  seconds to wait for readiness (default 90)
set -euo pipefail

VERSION=${HERALD_KAFKA_VERSION:-4.1.2}
LOG4J_VERSION=2.25.3
STATE=${HERALD_KAFKA_DIR:-/tmp/herald-kafka}
CACHE=${HERALD_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/kafka}
HEAP=${HERALD_KAFKA_HEAP:-512m}
TIMEOUT=${HERALD_KAFKA_TIMEOUT:-90}
LIBS="$CACHE/$VERSION/libs"

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# ---- ports and layout ----

broker_port() { # node nodes
    if [ "$2" -eq 1 ]; then echo 9092; else echo $((19091 + $1)); fi
}
controller_port() {
    if [ "$2" -eq 1 ]; then echo 9093; else echo $((19191 + $1)); fi
}
bootstrap() { # nodes
    local n=$1 i out=""
    for ((i = 1; i <= n; i++)); do out+="${out:+,}127.0.0.1:$(broker_port "$i" "$n")"; done
    echo "$out"
}
voters() {
    local n=$1 i out=""
    for ((i = 1; i <= n; i++)); do out+="${out:+,}$i@127.0.0.1:$(controller_port "$i" "$n")"; done
    echo "$out"
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
cluster_nodes() { # node count of the formatted cluster, 0 if none
    if [ -f "$STATE/nodes" ]; then cat "$STATE/nodes"; else echo 0; fi
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
    cat >"$dir/server.properties" <<EOF
# generated by scripts/kafka.sh
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$(voters "$n")
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i" "$n"),CONTROLLER://127.0.0.1:$(controller_port "$i" "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i" "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
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
log.retention.hours=24
log.segment.bytes=268435456
num.network.threads=2
num.io.threads=4
EOF
    write_log4j "$dir"
}

format() { # nodes
    local n=$1 i cid dir
    # A cluster id is 16 random bytes in URL-safe base64 without padding.
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    rm -rf "$STATE"
    mkdir -p "$STATE"
    # Static controller quorum (controller.quorum.voters): every node formats
    # alone with the same cluster id; the nodes format in parallel.
    local pids=()
    for ((i = 1; i <= n; i++)); do
        write_config "$i" "$n"
        dir=$(node_dir "$i")
        java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$dir/log4j2.xml" \
            kafka.tools.StorageTool format --cluster-id "$cid" \
            --config "$dir/server.properties" --ignore-formatted >"$dir/format.log" 2>&1 &
        pids+=($!)
    done
    for ((i = 1; i <= n; i++)); do
        if ! wait "${pids[$((i - 1))]}"; then
            cat "$(node_dir "$i")/format.log" >&2
            die "cannot format node $i storage"
        fi
    done
    echo "$n" >"$STATE/nodes"
}

# ---- processes ----

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

launch() { # node nodes
    local i=$1 n=$2 dir p
    dir=$(node_dir "$i")
    if [ -n "$(node_pid "$i")" ]; then return 0; fi
    for p in "$(broker_port "$i" "$n")" "$(controller_port "$i" "$n")"; do
        port_busy "$p" && die "port $p is in use by another process (a broker started elsewhere?)"
    done
    # setsid: the broker outlives this script and is not hit by its terminal's signals.
    setsid java -Xmx"$HEAP" -Xms"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
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

wait_ready() { # nodes want-all(0|1) node...
    local n=$1 all=$2
    shift 2
    local start=$SECONDS i ids
    for i in "$@"; do
        if [ "$all" = 1 ]; then ids=$(seq 1 "$n"); else ids=$i; fi
        # shellcheck disable=SC2086
        while [ -z "$(node_pid "$i")" ] || ! probe "$(broker_port "$i" "$n")" $ids; do
            if [ -z "$(node_pid "$i")" ]; then
                tail -40 "$(node_dir "$i")/server.log" >&2 2>/dev/null || true
                tail -20 "$(node_dir "$i")/stdout.log" >&2 2>/dev/null || true
                die "node $i exited during start (logs in $(node_dir "$i"))"
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
        [ "$node" -ge 1 ] && [ "$node" -le "$have" ] || die "no node $node"
        launch "$node" "$have"
        wait_ready "$have" 0 "$node"
        bootstrap "$have"
        return 0
    fi
    n=${n:-1}
    [ "$n" -eq 1 ] || [ "$n" -eq 3 ] || die "--nodes must be 1 or 3"
    local i running=0
    for ((i = 1; i <= have; i++)); do [ -n "$(node_pid "$i")" ] && running=1; done
    if [ "$have" -ne "$n" ]; then
        [ "$running" -eq 0 ] || die "a $have-node cluster is running; stop it first"
        format "$n"
    fi
    local t0
    t0=$(date +%s.%N)
    for ((i = 1; i <= n; i++)); do launch "$i" "$n"; done
    local all=()
    for ((i = 1; i <= n; i++)); do all+=("$i"); done
    wait_ready "$n" 1 "${all[@]}"
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
    # Everything: signal all first so a cluster shuts down together, then wait.
    local pids=()
    for ((i = 1; i <= have; i++)); do
        pid=$(node_pid "$i")
        [ -n "$pid" ] && pids+=("$pid") && kill "-${sig:-TERM}" "$pid" 2>/dev/null
    done
    for pid in "${pids[@]+"${pids[@]}"}"; do stop_pid "$pid" "${sig:-TERM}"; done
    for ((i = 1; i <= have; i++)); do rm -f "$(node_dir "$i")/pid"; done
    say "stopped ${#pids[@]} node(s)"
}

cmd_status() {
    local have i pid up=0
    have=$(cluster_nodes)
    for ((i = 1; i <= have; i++)); do
        pid=$(node_pid "$i")
        if [ -n "$pid" ]; then
            echo "node $i: running pid $pid on 127.0.0.1:$(broker_port "$i" "$have")"
            up=$((up + 1))
        else
            echo "node $i: stopped"
        fi
    done
    [ "$have" -gt 0 ] && echo "bootstrap: $(bootstrap "$have")"
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
