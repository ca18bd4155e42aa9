#!/usr/bin/env bash
# Keyed partitioning agrees with Kafka's Java producer: for 1000 keys (user
# ids, numbers, UUIDs, non-ASCII) and several partition counts, herald's
# murmur2_partition() and librdkafka's murmur2_random partitioner (what the
# Kafka bus uses) give the partition that org.apache.kafka's
# BuiltInPartitioner.partitionForKey gives. The Java side is
# tests/java/Murmur2Partitions.java, compiled against the kafka-clients jar
# that scripts/kafka.sh fetches from Maven Central.
#
# Skips (77) without Java unless CI=true, where a missing Java fails.
set -euo pipefail
HERALD=${1:?usage: $0 path/to/herald}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d -t herald-murmur2.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
missing() {
    if [ "${CI:-}" = true ]; then fail "$1 (run scripts/deps.sh --test)"; fi
    echo "SKIP: $1 (run scripts/deps.sh --test)"
    exit 77
}
command -v java >/dev/null || missing "java not found"
LIBS=$(bash "$ROOT/scripts/kafka.sh" fetch) || missing "cannot fetch the Kafka jars (needs mvn and Maven Central)"
[ -n "$(ls "$LIBS"/kafka-clients-*.jar 2>/dev/null)" ] || fail "no kafka-clients jar in $LIBS"

COUNTS=1,2,3,5,7,8,12,16,50,100,263,1000

# ---- keys ----
{
    for i in $(seq 0 499); do echo "user-$i"; done
    for i in $(seq 0 199); do echo $((1000000007 + i * 7919)); done
    for i in $(seq 0 199); do
        printf '%08x-%04x-4%03x-a%03x-%012x\n' $((i * 2654435761 % 4294967296)) $((i * 40503 % 65536)) \
            $((i * 37 % 4096)) $((i * 91 % 4096)) $((i * 1099511628211 % 281474976710656))
    done
    for i in $(seq 0 33); do echo "usér-ü-$i"; done
    for i in $(seq 0 32); do echo "用户-$i"; done
    for i in $(seq 0 32); do echo "tenant:acme/👩‍💻-$i"; done
} >"$WORK/keys.txt"
nkeys=$(wc -l <"$WORK/keys.txt")
[ "$nkeys" -eq 1000 ] || fail "expected 1000 keys, made $nkeys"

# ---- Java: what Kafka's producer does ----
SRC="$ROOT/tests/java/Murmur2Partitions.java"
if command -v javac >/dev/null; then
    javac -nowarn -cp "$LIBS/*" -d "$WORK" "$SRC" || fail "javac failed"
    java -cp "$WORK:$LIBS/*" Murmur2Partitions "$WORK/keys.txt" "$COUNTS" >"$WORK/java.txt" ||
        fail "Murmur2Partitions failed"
else
    # A JRE without javac can still run a single source file.
    java -cp "$LIBS/*" "$SRC" "$WORK/keys.txt" "$COUNTS" >"$WORK/java.txt" ||
        fail "Murmur2Partitions failed"
fi
[ "$(wc -l <"$WORK/java.txt")" -eq 1000 ] || fail "Java printed $(wc -l <"$WORK/java.txt") lines"

# ---- C: what herald and librdkafka do ----
cat >"$WORK/check.c" <<'EOF'
#include "core/hash.h"

#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) return 2;
    FILE *keys = fopen(argv[1], "r"), *java = fopen(argv[2], "r");
    if (!keys || !java) return 2;
    int counts[64], nc = 0;
    for (char *s = strtok(argv[3], ","); s && nc < 64; s = strtok(NULL, ",")) counts[nc++] = atoi(s);

    /* librdkafka's partitioner needs a topic handle; no broker is contacted */
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) return 2;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "murmur2-check", NULL);

    char key[1024], line[4096];
    int nkeys = 0, checks = 0, bad = 0;
    while (fgets(key, sizeof(key), keys) && fgets(line, sizeof(line), java)) {
        size_t len = strcspn(key, "\n");
        key[len] = '\0';
        char *p = line;
        long want_hash = strtol(p, &p, 10);
        int32_t hash = (int32_t)murmur2(key, len);
        if (hash != (int32_t)want_hash) {
            if (bad++ < 10) fprintf(stderr, "key '%s': murmur2 %d, Java %ld\n", key, hash, want_hash);
        }
        for (int i = 0; i < nc; i++) {
            long want = strtol(p, &p, 10);
            int32_t h = murmur2_partition(key, len, counts[i]);
            int32_t r = rd_kafka_msg_partitioner_murmur2_random(rkt, key, len, counts[i], NULL, NULL);
            checks++;
            if (h != want || r != want) {
                if (bad++ < 10)
                    fprintf(stderr, "key '%s' n=%d: herald %d, librdkafka %d, Java %ld\n", key,
                            counts[i], h, r, want);
            }
        }
        nkeys++;
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    printf("%d keys, %d partition checks: %d disagreements\n", nkeys, checks, bad);
    return bad == 0 && nkeys > 0 ? 0 : 1;
}
EOF
${CC:-cc} -std=c11 -O1 -Wall -Wextra -I"$ROOT/src" "$WORK/check.c" "$ROOT/src/core/hash.c" \
    $(pkg-config --cflags --libs rdkafka) -o "$WORK/check" || fail "cannot build the checker"
"$WORK/check" "$WORK/keys.txt" "$WORK/java.txt" "$COUNTS" || fail "partitions differ from Kafka's Java producer"
echo "kafka_murmur2: OK"
