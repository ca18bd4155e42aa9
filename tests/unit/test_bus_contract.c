/*
 * test_bus_contract.c - the bus contract (bus.h), written once and run
 * against any backend.
 *
 *   HERALD_TEST_BUS=embedded (default) | kafka
 *   HERALD_TEST_KAFKA_BROKERS=host:port   (kafka)
 *
 * Every test opens its own bus (embedded: a fresh temporary directory) and
 * uses topic and group names unique to the run. Nothing assumes instant
 * delivery or rebalances: consumers poll in loops up to a deadline. Tests
 * that depend on the embedded on-disk format (torn tail, corrupt CRC, LOCK,
 * retention) are skipped on other backends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus/bus.h"
#include "core/hash.h"
#include "core/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- harness ---- */

typedef struct ctx {
    char dir[512];
    char prefix[96];
    bus_t *bus;
    /* last open parameters, for reopen */
    const char *fsync;
    int64_t segment_bytes;
    int flush_us;
    const char *const *kv;
    char *names[64];
    int nnames;
} ctx_t;

static const char *backend(void)
{
    const char *b = getenv("HERALD_TEST_BUS");
    return b && *b ? b : "embedded";
}

static bool embedded(void) { return strcmp(backend(), "embedded") == 0; }

/* How long a test waits for something that should happen. */
static int wait_ms(void) { return embedded() ? 10000 : 60000; }

/* How long a test watches for something that must not happen. */
static int quiet_ms(void) { return embedded() ? 200 : 2000; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    static unsigned counter;
    ctx_t *cx = calloc(1, sizeof(*cx));
    if (!cx) return -1;
    snprintf(cx->prefix, sizeof(cx->prefix), "hct-%ld-%d-%u", (long)time(NULL), (int)getpid(), counter++);
    if (embedded()) {
        const char *tmp = getenv("TMPDIR");
        snprintf(cx->dir, sizeof(cx->dir), "%s/herald-bus-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(cx->dir)) {
            free(cx);
            return -1;
        }
    }
    *state = cx;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *cx = *state;
    hclock_set_fake(0);
    if (cx->bus) bus_close(cx->bus);
    if (cx->dir[0]) nftw(cx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < cx->nnames; i++) free(cx->names[i]);
    free(cx);
    return 0;
}

static bus_t *open_bus_with(ctx_t *cx, const char *fsync, int64_t segment_bytes, int flush_us,
                            const char *const *embedded_kv)
{
    bus_opts_t o;
    memset(&o, 0, sizeof(o));
    o.backend = backend();
    o.dir = cx->dir;
    o.fsync = fsync;
    o.segment_bytes = segment_bytes;
    o.flush_interval_us = flush_us;
    o.brokers = getenv("HERALD_TEST_KAFKA_BROKERS");
    if (embedded()) o.kv = embedded_kv;
    cx->fsync = fsync;
    cx->segment_bytes = segment_bytes;
    cx->flush_us = flush_us;
    cx->kv = embedded_kv;
    bus_t *b = NULL;
    assert_int_equal(bus_open(&o, &b), HR_OK);
    assert_non_null(b);
    assert_string_equal(bus_backend_name(b), backend());
    cx->bus = b;
    return b;
}

static bus_t *open_bus(ctx_t *cx) { return open_bus_with(cx, NULL, 0, 0, NULL); }

static bus_t *reopen_bus(ctx_t *cx)
{
    bus_close(cx->bus);
    cx->bus = NULL;
    return open_bus_with(cx, cx->fsync, cx->segment_bytes, cx->flush_us, cx->kv);
}

/* A topic or group name unique to this run; lives until teardown. */
static const char *name(ctx_t *cx, const char *what)
{
    assert_true(cx->nnames < 64);
    char *s = malloc(strlen(cx->prefix) + strlen(what) + 2);
    assert_non_null(s);
    sprintf(s, "%s-%s", cx->prefix, what);
    cx->names[cx->nnames++] = s;
    return s;
}

static void ensure_topic(bus_t *b, const char *topic, int32_t parts, int64_t retention_ms,
                         int64_t retention_bytes)
{
    bus_topic_opts_t o = {.partitions = parts,
                          .replication = 1,
                          .min_insync = 1,
                          .retention_ms = retention_ms,
                          .retention_bytes = retention_bytes};
    assert_int_equal(bus_topic_ensure(b, topic, &o), HR_OK);
    assert_int_equal(bus_partitions(b, topic), parts);
}

/* Produces one record, backing off on HR_AGAIN. */
static void produce(bus_t *b, const char *topic, int32_t part, const char *key, const void *val,
                    size_t val_len, bus_batch_t *batch)
{
    for (int i = 0;; i++) {
        hr_t r = bus_produce(b, topic, part, key, key ? strlen(key) : 0, val, val_len, batch);
        if (r == HR_OK) return;
        assert_int_equal(r, HR_AGAIN);
        assert_true(i < 100000);
        bus_flush(b, 10);
    }
}

static void produce_str(bus_t *b, const char *topic, int32_t part, const char *key, const char *val,
                        bus_batch_t *batch)
{
    produce(b, topic, part, key, val, strlen(val), batch);
}

static void wait_batch(bus_t *b, bus_batch_t *batch)
{
    assert_int_equal(bus_batch_wait(b, batch, wait_ms()), HR_OK);
}

/* A consumed record, copied out of the bus's buffers. */
typedef struct rec {
    char topic[128];
    int32_t part;
    int64_t off;
    int64_t ts;
    char key[64];
    char val[128];
    size_t val_len;
    uint32_t val_sum;
} rec_t;

typedef struct recs {
    rec_t *v;
    size_t n, cap;
} recs_t;

static void recs_free(recs_t *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static void recs_add(recs_t *r, const bus_msg_t *m)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    rec_t *x = &r->v[r->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->topic, sizeof(x->topic), "%s", m->topic);
    x->part = m->partition;
    x->off = m->offset;
    x->ts = m->timestamp_ms;
    assert_true(m->key_len < sizeof(x->key));
    if (m->key_len) memcpy(x->key, m->key, m->key_len);
    x->val_len = m->value_len;
    memcpy(x->val, m->value, m->value_len < sizeof(x->val) - 1 ? m->value_len : sizeof(x->val) - 1);
    const unsigned char *v = m->value;
    for (size_t i = 0; i < m->value_len; i++) x->val_sum = x->val_sum * 31 + v[i];
}

/* One poll; appends what came. Returns the count. */
static int poll_into(bus_consumer_t *c, recs_t *out, int timeout_ms)
{
    bus_msg_t msgs[64];
    int n = bus_poll(c, msgs, 64, timeout_ms);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) recs_add(out, &msgs[i]);
    return n;
}

/* Polls until at least `want` more records have arrived (or the deadline);
 * a poll may bring more. */
static void consume(bus_consumer_t *c, recs_t *out, size_t want)
{
    size_t goal = out->n + want;
    int64_t deadline = now_ms() + wait_ms();
    while (out->n < goal && now_ms() < deadline) poll_into(c, out, 100);
    assert_true(out->n >= goal);
}

/* Polls for a while and asserts that nothing arrives. */
static void expect_quiet(bus_consumer_t *c)
{
    recs_t extra = {0};
    int64_t deadline = now_ms() + quiet_ms();
    while (now_ms() < deadline) poll_into(c, &extra, 50);
    if (extra.n) fprintf(stderr, "unexpected record at offset %" PRId64 "\n", extra.v[0].off);
    assert_int_equal(extra.n, 0);
    recs_free(&extra);
}

static bus_consumer_t *subscribe(bus_t *b, const char *group, const char *topic, const bus_rebalance_t *rb)
{
    bus_consumer_t *c = NULL;
    const char *topics[] = {topic};
    assert_int_equal(bus_consumer_new(b, group, topics, 1, rb, &c), HR_OK);
    assert_non_null(c);
    return c;
}

static int64_t committed_of(bus_t *b, const char *group, const char *topic, int32_t part)
{
    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(b, group, topic, &lag, &n), HR_OK);
    int64_t r = -2;
    for (int i = 0; i < n; i++)
        if (lag[i].partition == part) r = lag[i].committed;
    free(lag);
    assert_true(r != -2);
    return r;
}

/* Produces n records "v<i>" (keyless, to one partition) and waits for acks. */
static void produce_seq(bus_t *b, const char *topic, int32_t part, int from, int n)
{
    bus_batch_t batch;
    bus_batch_init(&batch);
    char val[32];
    for (int i = from; i < from + n; i++) {
        snprintf(val, sizeof(val), "v%d", i);
        produce_str(b, topic, part, NULL, val, &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
}

/* ---- topics ---- */

static void test_topics(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "topics");
    assert_int_equal(bus_partitions(b, t), -1);
    ensure_topic(b, t, 3, -1, -1);
    /* an existing topic keeps its partition count */
    bus_topic_opts_t o = {.partitions = 5, .replication = 1, .min_insync = 1, .retention_ms = -1,
                          .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(b, t, &o), HR_OK);
    assert_int_equal(bus_partitions(b, t), 3);
    /* and across a reopen */
    b = reopen_bus(cx);
    assert_int_equal(bus_partitions(b, t), 3);
    if (embedded()) {
        /* an explicit partition out of range is refused (a Kafka client may
         * only report it in the delivery report) */
        assert_int_equal(bus_produce(b, t, 7, "k", 1, "v", 1, NULL), HR_INVALID);
        o.partitions = 1;
        assert_int_equal(bus_topic_ensure(b, "bad name/x", &o), HR_INVALID);
        assert_int_equal(bus_produce(b, name(cx, "nosuch"), 0, "k", 1, "v", 1, NULL), HR_NOTFOUND);
        /* keyed partitioning needs a key */
        assert_int_equal(bus_produce(b, t, -1, NULL, 0, "v", 1, NULL), HR_INVALID);
    }
}

/* ---- ordering and partitioning ---- */

#define NKEYS 100
#define NSEQ 20

static void test_key_order_and_partition(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "order");
    ensure_topic(b, t, 8, -1, -1);

    bus_batch_t batch;
    bus_batch_init(&batch);
    char key[32], val[64];
    for (int s = 0; s < NSEQ; s++)
        for (int k = 0; k < NKEYS; k++) {
            snprintf(key, sizeof(key), "user-%d", k);
            snprintf(val, sizeof(val), "%d", s);
            produce_str(b, t, -1, key, val, &batch);
        }
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, NKEYS * NSEQ);

    int next[NKEYS] = {0};
    int64_t last_off[8];
    for (int i = 0; i < 8; i++) last_off[i] = -1;
    for (size_t i = 0; i < got.n; i++) {
        rec_t *r = &got.v[i];
        int k = -1;
        assert_int_equal(sscanf(r->key, "user-%d", &k), 1);
        assert_true(k >= 0 && k < NKEYS);
        /* per-key order, nothing lost, nothing repeated */
        assert_int_equal(atoi(r->val), next[k]);
        next[k]++;
        /* partition = murmur2(key) % n, like Kafka's Java producer */
        assert_int_equal(r->part, murmur2_partition(r->key, strlen(r->key), 8));
        assert_true(r->part >= 0 && r->part < 8);
        assert_true(r->off > last_off[r->part]);
        last_off[r->part] = r->off;
        assert_true(r->ts > 0);
    }
    for (int k = 0; k < NKEYS; k++) assert_int_equal(next[k], NSEQ);
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_two_groups_read_everything(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "fan");
    ensure_topic(b, t, 3, -1, -1);
    bus_batch_t batch;
    bus_batch_init(&batch);
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        produce_str(b, t, -1, key, key, &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c1 = subscribe(b, name(cx, "g1"), t, NULL);
    bus_consumer_t *c2 = subscribe(b, name(cx, "g2"), t, NULL);
    recs_t r1 = {0}, r2 = {0};
    consume(c1, &r1, 300);
    consume(c2, &r2, 300);
    bool seen1[300] = {false}, seen2[300] = {false};
    for (size_t i = 0; i < 300; i++) {
        int k1 = atoi(r1.v[i].key + 1), k2 = atoi(r2.v[i].key + 1);
        assert_false(seen1[k1]);
        assert_false(seen2[k2]);
        seen1[k1] = seen2[k2] = true;
        assert_string_equal(r1.v[i].key, r1.v[i].val);
    }
    bus_consumer_close(c1);
    bus_consumer_close(c2);
    recs_free(&r1);
    recs_free(&r2);
}

/* ---- offsets ---- */

static void test_resume_from_committed(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "resume"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 100);

    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 100);
    for (int i = 0; i < 100; i++) assert_int_equal(got.v[i].off, i);
    /* only the first 40 were finished; the rest must come again */
    assert_int_equal(bus_store_offset(c, t, 0, 40), HR_OK);
    bus_consumer_close(c);

    b = reopen_bus(cx);
    assert_int_equal(committed_of(b, g, t, 0), 40);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 60);
    for (int i = 0; i < 60; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", 40 + i);
        assert_int_equal(got.v[i].off, 40 + i);
        assert_string_equal(got.v[i].val, want);
    }
    expect_quiet(c);
    assert_int_equal(bus_store_offset(c, t, 0, 100), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    bus_consumer_close(c);

    produce_seq(b, t, 0, 100, 1);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 1);
    assert_int_equal(got.v[0].off, 100);
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_store_is_not_commit(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "store"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);

    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_int_equal(bus_store_offset(c, t, 0, 5), HR_OK);
    /* stored, not yet committed */
    assert_int_equal(committed_of(b, g, t, 0), -1);
    assert_int_equal(bus_commit(c), HR_OK);
    assert_int_equal(committed_of(b, g, t, 0), 5);

    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(b, g, t, &lag, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(lag[0].topic, t);
    assert_int_equal(lag[0].partition, 0);
    assert_int_equal(lag[0].end_offset, 10);
    assert_int_equal(lag[0].lag, 5);
    free(lag);

    /* close commits what was stored */
    assert_int_equal(bus_store_offset(c, t, 0, 8), HR_OK);
    assert_int_equal(committed_of(b, g, t, 0), 5);
    bus_consumer_close(c);
    assert_int_equal(committed_of(b, g, t, 0), 8);

    /* a group that never committed: nothing committed, everything is lag */
    assert_int_equal(bus_lag(b, name(cx, "other"), t, &lag, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lag[0].committed, -1);
    assert_int_equal(lag[0].end_offset, 10);
    assert_int_equal(lag[0].lag, 10);
    free(lag);
    recs_free(&got);
}

static void test_replay_group_reset(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "replay"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 5);
    sleep_ms(20); /* the second half gets a later append time */
    produce_seq(b, t, 0, 5, 5);

    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_true(got.v[4].ts < got.v[5].ts);
    int64_t t5 = got.v[5].ts;
    assert_int_equal(bus_store_offset(c, t, 0, 10), HR_OK);
    /* resetting a group with live members is refused */
    assert_int_not_equal(bus_group_reset(b, g, t, 0), HR_OK);
    bus_consumer_close(c);
    assert_int_equal(committed_of(b, g, t, 0), 10);

    /* to the earliest */
    assert_int_equal(bus_group_reset(b, g, t, 0), HR_OK);
    assert_int_equal(committed_of(b, g, t, 0), 0);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 10);
    assert_int_equal(got.v[0].off, 0);
    assert_int_equal(got.v[9].off, 9);
    bus_consumer_close(c);

    /* to a time: the first record at or after it */
    assert_int_equal(bus_group_reset(b, g, t, t5), HR_OK);
    assert_int_equal(committed_of(b, g, t, 0), 5);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 5);
    assert_int_equal(got.v[0].off, 5);
    assert_string_equal(got.v[0].val, "v5");
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

/* ---- flow control ---- */

static void test_pause_resume(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "pause");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 5);
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 5);

    assert_int_equal(bus_pause(c, t, 0), HR_OK);
    produce_seq(b, t, 0, 5, 5);
    expect_quiet(c);
    assert_int_equal(bus_resume(c, t, 0), HR_OK);
    consume(c, &got, 5);
    for (int i = 0; i < 10; i++) assert_int_equal(got.v[i].off, i);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_seek(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "seek");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);

    assert_int_equal(bus_seek(c, t, 0, 3), HR_OK);
    recs_free(&got);
    consume(c, &got, 7);
    assert_int_equal(got.v[0].off, 3);
    assert_string_equal(got.v[0].val, "v3");
    assert_int_equal(got.v[6].off, 9);

    assert_int_equal(bus_seek(c, t, 0, 0), HR_OK);
    recs_free(&got);
    consume(c, &got, 10);
    assert_int_equal(got.v[0].off, 0);
    bus_consumer_close(c);
    recs_free(&got);
}

/* Many small segments; seeks land in the middle of sealed segments, also
 * after a reopen (segments then come from disk). */
static void test_seek_across_segments(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "segs"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 2000);
    b = reopen_bus(cx);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 1); /* wait for the assignment */
    const int64_t targets[] = {1999, 250, 1, 1234, 777, 33, 0};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        assert_int_equal(bus_seek(c, t, 0, targets[i]), HR_OK);
        recs_free(&got);
        consume(c, &got, 1);
        char want[16];
        snprintf(want, sizeof(want), "v%" PRId64, targets[i]);
        assert_int_equal(got.v[0].off, targets[i]);
        assert_string_equal(got.v[0].val, want);
    }
    assert_int_equal(bus_seek(c, t, 0, 0), HR_OK);
    recs_free(&got);
    consume(c, &got, 2000);
    assert_int_equal(got.n, 2000);
    for (int i = 0; i < 2000; i++) assert_int_equal(got.v[i].off, i);
    bus_consumer_close(c);
    recs_free(&got);
}

/* ---- groups ---- */

#define MAXP 16

typedef struct owners {
    int owner[MAXP]; /* member id holding each partition, 0 = nobody */
} owners_t;

typedef struct member {
    int id;
    owners_t *o;
    const char *topic;
    int owned;
    bus_consumer_t *c;
    recs_t got;
} member_t;

static void on_assigned(void *opaque, const char *topic, int32_t part)
{
    member_t *m = opaque;
    assert_string_equal(topic, m->topic);
    assert_true(part >= 0 && part < MAXP);
    /* never two owners at once */
    assert_int_equal(m->o->owner[part], 0);
    m->o->owner[part] = m->id;
    m->owned++;
}

static void on_revoked(void *opaque, const char *topic, int32_t part)
{
    member_t *m = opaque;
    assert_string_equal(topic, m->topic);
    assert_int_equal(m->o->owner[part], m->id);
    m->o->owner[part] = 0;
    m->owned--;
}

/* Polls a member once; checks it only gets records of partitions it owns
 * and stores offsets for what it got (as a stage would). */
static void member_step(member_t *m)
{
    size_t before = m->got.n;
    poll_into(m->c, &m->got, 20);
    for (size_t i = before; i < m->got.n; i++) {
        rec_t *r = &m->got.v[i];
        assert_int_equal(m->o->owner[r->part], m->id);
        assert_int_equal(bus_store_offset(m->c, r->topic, r->part, r->off + 1), HR_OK);
    }
}

static void test_group_split_and_takeover(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "split"), *g = name(cx, "g");
    const int np = 4;
    ensure_topic(b, t, np, -1, -1);
    owners_t o;
    memset(&o, 0, sizeof(o));
    member_t a = {.id = 1, .o = &o, .topic = t}, m2 = {.id = 2, .o = &o, .topic = t};
    bus_rebalance_t rba = {on_assigned, on_revoked, &a}, rbb = {on_assigned, on_revoked, &m2};

    a.c = subscribe(b, g, t, &rba);
    int64_t deadline = now_ms() + wait_ms();
    while (a.owned < np && now_ms() < deadline) member_step(&a);
    assert_int_equal(a.owned, np);

    m2.c = subscribe(b, g, t, &rbb);
    /* the newcomer polls first: it must not take anything the first member
     * has not released yet (on_assigned checks) */
    deadline = now_ms() + wait_ms();
    while ((a.owned == 0 || m2.owned == 0 || a.owned + m2.owned != np) && now_ms() < deadline) {
        member_step(&m2);
        member_step(&m2);
        member_step(&a);
    }
    assert_true(a.owned > 0 && m2.owned > 0);
    assert_int_equal(a.owned + m2.owned, np);

    /* 10 records per partition, each read by its owner only */
    for (int p = 0; p < np; p++) produce_seq(b, t, p, 0, 10);
    deadline = now_ms() + wait_ms();
    while (a.got.n + m2.got.n < (size_t)(10 * np) && now_ms() < deadline) {
        member_step(&a);
        member_step(&m2);
    }
    assert_int_equal(a.got.n + m2.got.n, 10 * np);
    int per_part[MAXP] = {0};
    for (size_t i = 0; i < a.got.n; i++) per_part[a.got.v[i].part]++;
    for (size_t i = 0; i < m2.got.n; i++) per_part[m2.got.v[i].part]++;
    for (int p = 0; p < np; p++) assert_int_equal(per_part[p], 10);

    /* the second member leaves: the first takes everything over, from the
     * offsets the leaver committed */
    bus_consumer_close(m2.c);
    for (int p = 0; p < np; p++)
        if (o.owner[p] == 2) o.owner[p] = 0; /* in case a backend skips revoke callbacks on close */
    deadline = now_ms() + wait_ms();
    while (a.owned < np && now_ms() < deadline) member_step(&a);
    assert_int_equal(a.owned, np);

    size_t before = a.got.n;
    for (int p = 0; p < np; p++) produce_seq(b, t, p, 10, 2);
    deadline = now_ms() + wait_ms();
    while (a.got.n < before + (size_t)(2 * np) && now_ms() < deadline) member_step(&a);
    assert_int_equal(a.got.n, before + (size_t)(2 * np));
    for (size_t i = before; i < a.got.n; i++) assert_true(a.got.v[i].off >= 10);
    expect_quiet(a.c);

    bus_consumer_close(a.c);
    recs_free(&a.got);
    recs_free(&m2.got);
}

/* A member may subscribe before the topic exists and gets its partitions
 * once it is created. */
static void test_subscribe_before_create(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip(); /* a broker notices new topics on its metadata schedule */
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "late");
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    assert_int_equal(poll_into(c, &got, 10), 0);
    ensure_topic(b, t, 2, -1, -1);
    produce_seq(b, t, 0, 0, 3);
    produce_seq(b, t, 1, 0, 3);
    consume(c, &got, 6);
    assert_int_equal(got.n, 6);
    bus_consumer_close(c);
    recs_free(&got);
}

/* ---- durability and limits ---- */

static void roundtrip(ctx_t *cx, const char *fsync)
{
    bus_t *b = open_bus_with(cx, fsync, 0, 0, NULL);
    const char *t = name(cx, fsync);
    ensure_topic(b, t, 2, -1, -1);
    bus_batch_t batch;
    bus_batch_init(&batch);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        produce_str(b, t, -1, key, key, &batch);
    }
    wait_batch(b, &batch);
    assert_int_equal(batch.pending, 0);
    assert_int_equal(batch.failed, 0);
    /* a waited batch is reusable */
    produce_str(b, t, 0, "again", "again", &batch);
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    assert_int_equal(bus_flush(b, wait_ms()), HR_OK);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 201);
    bus_consumer_close(c);
    recs_free(&got);
    bus_close(cx->bus);
    cx->bus = NULL;
}

static void test_fsync_policies(void **state)
{
    ctx_t *cx = *state;
    roundtrip(cx, "always");
    if (!embedded()) return; /* the others are the same on a remote log */
    roundtrip(cx, "never");
    roundtrip(cx, "interval");
}

/* bus_close() writes what was produced without a batch. */
static void test_close_flushes(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, NULL, 0, 100000, NULL); /* long batching window */
    const char *t = name(cx, "closeflush");
    ensure_topic(b, t, 1, -1, -1);
    char val[16];
    for (int i = 0; i < 50; i++) {
        snprintf(val, sizeof(val), "v%d", i);
        produce_str(b, t, 0, NULL, val, NULL);
    }
    b = reopen_bus(cx);
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 50);
    for (int i = 0; i < 50; i++) assert_int_equal(got.v[i].off, i);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_full_buffer(void **state)
{
    ctx_t *cx = *state;
    /* a small producer buffer and a long batching window: the buffer fills
     * before the flusher runs on its own */
    static const char *const kv[] = {"max_pending_bytes", "65536", NULL};
    bus_t *b = open_bus_with(cx, "never", 0, 200000, kv);
    const char *t = name(cx, "full");
    ensure_topic(b, t, 1, -1, -1);
    char val[1024];
    memset(val, 'x', sizeof(val));
    bus_batch_t batch;
    bus_batch_init(&batch);
    int again = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(val, 16, "%08d", i);
        for (;;) {
            hr_t r = bus_produce(b, t, 0, NULL, 0, val, sizeof(val), &batch);
            if (r == HR_OK) break;
            assert_int_equal(r, HR_AGAIN);
            again++;
            assert_true(again < 100000);
            assert_int_equal(bus_flush(b, wait_ms()), HR_OK);
        }
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    if (embedded()) assert_true(again > 0);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 500);
    for (int i = 0; i < 500; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%08d", i);
        assert_int_equal(got.v[i].off, i);
        assert_memory_equal(got.v[i].val, want, 8);
        assert_int_equal(got.v[i].val_len, sizeof(val));
    }
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_large_record(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "large");
    ensure_topic(b, t, 1, -1, -1);
    size_t len = 600 * 1024; /* more than one read, less than Kafka's default limit */
    unsigned char *big = malloc(len);
    assert_non_null(big);
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        big[i] = (unsigned char)(i * 7 + i / 1000);
        sum = sum * 31 + big[i];
    }
    bus_batch_t batch;
    bus_batch_init(&batch);
    produce_str(b, t, 0, "small", "before", &batch);
    produce(b, t, 0, "big", big, len, &batch);
    produce_str(b, t, 0, "small", "after", &batch);
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 3);
    assert_string_equal(got.v[0].val, "before");
    assert_string_equal(got.v[1].key, "big");
    assert_int_equal(got.v[1].val_len, len);
    assert_int_equal(got.v[1].val_sum, sum);
    assert_string_equal(got.v[2].val, "after");
    bus_consumer_close(c);
    recs_free(&got);
    free(big);
}

typedef struct prod_arg {
    bus_t *b;
    const char *topic;
    int id;
    int n;
} prod_arg_t;

static void *producer_thread(void *p)
{
    prod_arg_t *a = p;
    bus_batch_t batch;
    bus_batch_init(&batch);
    char key[32], val[32];
    snprintf(key, sizeof(key), "producer-%d", a->id);
    for (int i = 0; i < a->n; i++) {
        snprintf(val, sizeof(val), "%d", i);
        for (;;) {
            hr_t r = bus_produce(a->b, a->topic, -1, key, strlen(key), val, strlen(val), &batch);
            if (r == HR_OK) break;
            if (r != HR_AGAIN) return (void *)1;
            bus_flush(a->b, 10);
        }
    }
    hr_t r = bus_batch_wait(a->b, &batch, 60000);
    bus_batch_release(&batch);
    return r == HR_OK ? NULL : (void *)1;
}

static void test_concurrent_producers(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "threads");
    ensure_topic(b, t, 2, -1, -1);
    enum { NT = 3, N = 3000 };
    pthread_t th[NT];
    prod_arg_t args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (prod_arg_t){b, t, i, N};
        assert_int_equal(pthread_create(&th[i], NULL, producer_thread, &args[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, NT * N);
    int next[NT] = {0};
    for (size_t i = 0; i < got.n; i++) {
        int id = atoi(got.v[i].key + strlen("producer-"));
        assert_true(id >= 0 && id < NT);
        assert_int_equal(atoi(got.v[i].val), next[id]);
        next[id]++;
    }
    bus_consumer_close(c);
    recs_free(&got);
}

/* ---- embedded only: files ---- */

static char *last_segment(ctx_t *cx, const char *topic, int32_t part)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/topics/%s/%d", cx->dir, topic, (int)part);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    assert_true(n > 0);
    char *path = NULL;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->d_name);
        if (l > 4 && strcmp(list[i]->d_name + l - 4, ".log") == 0) {
            free(path);
            path = malloc(strlen(dir) + l + 2);
            sprintf(path, "%s/%s", dir, list[i]->d_name);
        }
        free(list[i]);
    }
    free(list);
    assert_non_null(path);
    return path;
}

static int count_segments(ctx_t *cx, const char *topic, int32_t part)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/topics/%s/%d", cx->dir, topic, (int)part);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0) n++;
    }
    closedir(d);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Reads the whole partition with a fresh group; checks "v0".."v<n-1>". */
static void expect_values(ctx_t *cx, const char *topic, int n, const char *group)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, group), topic, NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)n);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        assert_int_equal(got.v[i].off, i);
        assert_string_equal(got.v[i].val, want);
    }
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_torn_tail(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "torn");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_close(b);
    cx->bus = NULL;
    hlog_set_level(HLOG_ERROR); /* the repairs below log warnings */

    /* 1. garbage appended after the last record */
    char *seg = last_segment(cx, t, 0);
    off_t good = file_size(seg);
    FILE *f = fopen(seg, "ab");
    assert_non_null(f);
    fputs("\x11garbage-garbage-garbage", f);
    fclose(f);
    b = open_bus(cx);
    assert_int_equal(file_size(seg), good);
    expect_values(cx, t, 10, "g1");
    produce_seq(b, t, 0, 10, 5);
    expect_values(cx, t, 15, "g2");

    /* 2. the last record cut in the middle */
    bus_close(b);
    cx->bus = NULL;
    off_t full = file_size(seg);
    assert_int_equal(truncate(seg, full - 3), 0);
    b = open_bus(cx);
    expect_values(cx, t, 14, "g3");
    produce_seq(b, t, 0, 14, 1); /* gets offset 14 again */
    expect_values(cx, t, 15, "g4");

    /* 3. a flipped byte in the last record's value fails its CRC */
    bus_close(b);
    cx->bus = NULL;
    full = file_size(seg);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    char ch;
    assert_int_equal(pread(fd, &ch, 1, full - 1), 1);
    ch ^= 0x40;
    assert_int_equal(pwrite(fd, &ch, 1, full - 1), 1);
    close(fd);
    b = open_bus(cx);
    assert_true(file_size(seg) < full);
    expect_values(cx, t, 14, "g5");
    hlog_set_level(HLOG_WARN);
    free(seg);
}

/* An acknowledged record is in the segment file (so a crash of the process
 * after the ack cannot lose it). */
static void test_ack_means_written(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    bus_t *b = open_bus_with(cx, "never", 0, 100000, NULL); /* long batching window */
    const char *t = name(cx, "acked");
    ensure_topic(b, t, 1, -1, -1);
    char *seg = last_segment(cx, t, 0);
    assert_int_equal(file_size(seg), 0);
    bus_batch_t batch;
    bus_batch_init(&batch);
    char val[50];
    memset(val, 'w', sizeof(val));
    for (int i = 0; i < 100; i++) produce(b, t, 0, "key", val, sizeof(val), &batch);
    wait_batch(b, &batch);
    /* header (28 bytes) + key + value per record */
    assert_int_equal(file_size(seg), 100 * (28 + 3 + 50));
    bus_batch_release(&batch);
    free(seg);
}

/* kill -9 right after the acks: everything acknowledged is there on reopen. */
static void test_kill9_after_ack(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    const char *t = name(cx, "kill9");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        bus_opts_t o;
        memset(&o, 0, sizeof(o));
        o.backend = "embedded";
        o.dir = cx->dir;
        o.fsync = "never";
        bus_t *b = NULL;
        bus_topic_opts_t to = {.partitions = 2, .retention_ms = -1, .retention_bytes = -1};
        if (bus_open(&o, &b) != HR_OK || bus_topic_ensure(b, t, &to) != HR_OK) _exit(1);
        bus_batch_t batch;
        bus_batch_init(&batch);
        char key[32];
        int acked = 0;
        for (int round = 0; round < 50; round++) {
            for (int i = 0; i < 100; i++) {
                snprintf(key, sizeof(key), "%d", acked + i);
                if (bus_produce(b, t, -1, key, strlen(key), key, strlen(key), &batch) != HR_OK) _exit(1);
            }
            if (bus_batch_wait(b, &batch, 10000) != HR_OK) _exit(1);
            acked += 100;
            if (write(fds[1], &acked, sizeof(acked)) != sizeof(acked)) _exit(1);
        }
        /* more records in flight, never waited for */
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "%d", acked + i);
            (void)bus_produce(b, t, -1, key, strlen(key), key, strlen(key), &batch);
        }
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    close(fds[1]);
    int acked = 0, v;
    while (read(fds[0], &v, sizeof(v)) == sizeof(v)) acked = v;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(acked, 5000);

    bus_t *b = open_bus(cx);
    assert_int_equal(bus_partitions(b, t), 2);
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    for (;;) {
        int n = poll_into(c, &got, 200);
        if ((n == 0 && got.n >= (size_t)acked) || now_ms() > deadline) break;
    }
    /* every acked key is there exactly once; in-flight ones may or may not be */
    char *seen = calloc(6000, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < got.n; i++) {
        int k = atoi(got.v[i].key);
        assert_true(k >= 0 && k < 6000);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        assert_string_equal(got.v[i].key, got.v[i].val);
    }
    for (int k = 0; k < acked; k++) assert_int_equal(seen[k], 1);
    free(seen);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_lock(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    open_bus(cx);
    bus_opts_t o;
    memset(&o, 0, sizeof(o));
    o.backend = "embedded";
    o.dir = cx->dir;
    bus_t *other = NULL;
    hlog_set_level(HLOG_OFF);
    assert_int_equal(bus_open(&o, &other), HR_CONFLICT);
    hlog_set_level(HLOG_WARN);
    assert_null(other);
    bus_close(cx->bus);
    cx->bus = NULL;
    assert_int_equal(bus_open(&o, &other), HR_OK); /* close released the lock */
    cx->bus = other;
}

static void test_retention_by_size(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip(); /* a broker checks retention on its own schedule */
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retsize");
    ensure_topic(b, t, 1, -1, 8192);
    char val[100];
    memset(val, 'r', sizeof(val));
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 400; i++) {
        snprintf(val, 16, "%08d", i);
        produce(b, t, 0, NULL, val, sizeof(val), &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    /* ~50 KB written in 4 KB segments; about 8 KB (plus the active one) kept */
    int nseg = count_segments(cx, t, 0);
    assert_true(nseg >= 2 && nseg <= 4);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    while ((got.n == 0 || got.v[got.n - 1].off < 399) && now_ms() < deadline) poll_into(c, &got, 100);
    assert_true(got.n > 0);
    int64_t first = got.v[0].off;
    assert_true(first > 0);
    assert_int_equal((int64_t)got.n, 400 - first);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.v[i].off, first + (int64_t)i);
    bus_consumer_close(c);

    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(b, name(cx, "fresh"), t, &lag, &n), HR_OK);
    assert_int_equal(lag[0].end_offset, 400);
    assert_int_equal(lag[0].lag, 400 - first);
    free(lag);
    recs_free(&got);
}

static void test_retention_by_age(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip(); /* needs the bus's clock to be faked */
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retage");
    ensure_topic(b, t, 1, 60000, -1);
    char val[100];
    memset(val, 'a', sizeof(val));
    int64_t real = hclock_now_ms();
    hclock_set_fake(real - 3600 * 1000); /* an hour ago */
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 200; i++) produce(b, t, 0, NULL, val, sizeof(val), &batch);
    wait_batch(b, &batch);
    hclock_set_fake(0);
    /* new records roll segments, which applies retention */
    for (int i = 0; i < 100; i++) produce(b, t, 0, NULL, val, sizeof(val), &batch);
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    while ((got.n == 0 || got.v[got.n - 1].off < 299) && now_ms() < deadline) poll_into(c, &got, 100);
    assert_true(got.n > 0);
    /* the old segments are gone; everything new is there */
    assert_true(got.v[0].off > 0 && got.v[0].off <= 200);
    assert_int_equal(got.v[got.n - 1].off, 299);
    bus_consumer_close(c);
    recs_free(&got);
}

/* A consumer whose committed position was deleted by retention starts at
 * the log start. */
static void test_retention_moves_consumer(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retmove"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, 4096);
    produce_seq(b, t, 0, 0, 10);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_int_equal(bus_store_offset(c, t, 0, 2), HR_OK);
    bus_consumer_close(c);
    produce_seq(b, t, 0, 10, 2000);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 1);
    assert_true(got.v[0].off > 10);
    bus_consumer_close(c);
    recs_free(&got);
}

int main(void)
{
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_order_and_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_groups_read_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_is_not_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_group_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_split_and_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_before_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_producers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_means_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_after_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_moves_consumer, setup, teardown),
    };
    return cmocka_run_group_tests_name(backend(), tests, NULL, NULL);
}
