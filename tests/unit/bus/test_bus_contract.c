/*
 * test_bus_contract.c - the bus contract (bus.h), written once and run
 * against any backend.
 *
 *   HERALD_TEST_BUS=embedded (default) | kafka
 *   HERALD_TEST_KAFKA_BROKERS=host:port   (kafka; tests/integration/kafka_contract.sh)
 *
 * Every test opens its own bus (embedded: a fresh temporary directory) and
 * uses topic and group names unique to the run. Nothing assumes instant
 * delivery or rebalances: consumers poll in loops up to a deadline. What
 * depends on the embedded backend's files (torn tail, LOCK, retention, fsync
 * modes) is in test_bus_embedded.c.
 */
#include "bus_harness.h"

#include "core/hash.h"
#include "core/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
        assert_int_equal((int)strtol(r->val, NULL, 10), next[k]);
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
        int k1 = (int)strtol(r1.v[i].key + 1, NULL, 10), k2 = (int)strtol(r2.v[i].key + 1, NULL, 10);
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
    /* the second half gets a later append time */
    if (embedded())
        hclock_set_fake(hclock_now_ms() + 1000);
    else
        sleep_ms(20); /* a broker's records carry the producer's real clock */
    produce_seq(b, t, 0, 5, 5);
    hclock_set_fake(0);

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

/* Acks arrive, a waited batch is reusable, records read back (the fsync
 * modes are the embedded backend's; test_bus_embedded.c runs them all). */
static void test_roundtrip(void **state)
{
    ctx_t *cx = *state;
    roundtrip(cx, "always");
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

/* A record bigger than the pending bound (embedded: max_pending_bytes) is
 * not refused: it goes alone into an empty buffer, by bus_produce and by
 * bus_produce_batch, and the records around it keep their order. */
static void test_record_over_pending_bound(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    static const char *const kv[] = {"max_pending_bytes", "65536", NULL};
    bus_t *b = open_bus_with(cx, "never", 0, 1000, kv);
    const char *t = name(cx, "overbound");
    ensure_topic(b, t, 1, -1, -1);
    size_t len = 200 * 1024;
    unsigned char *big = malloc(len);
    assert_non_null(big);
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        big[i] = (unsigned char)(i * 13 + i / 777);
        sum = sum * 31 + big[i];
    }
    bus_batch_t batch;
    bus_batch_init(&batch);
    produce_str(b, t, 0, "small", "first", &batch);
    produce(b, t, 0, "big", big, len, &batch); /* was HR_INVALID: bigger than the bound */
    bus_rec_t recs[2] = {
        {.key = "big2", .key_len = 4, .value = big, .value_len = len, .partition = 0},
        {.key = "small", .key_len = 5, .value = "last", .value_len = 4, .partition = 0},
    };
    int k = 0;
    for (int tries = 0; k < 2; tries++) {
        int got = 0;
        hr_t r = bus_produce_batch(b, t, recs + k, 2 - k, &batch, &got);
        k += got;
        if (k == 2) break;
        assert_int_equal(r, HR_AGAIN);
        assert_true(tries < 100000);
        bus_flush(b, 10);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, 4);
    assert_string_equal(got.v[0].val, "first");
    assert_string_equal(got.v[1].key, "big");
    assert_int_equal(got.v[1].val_len, len);
    assert_int_equal(got.v[1].val_sum, sum);
    assert_string_equal(got.v[2].key, "big2");
    assert_int_equal(got.v[2].val_sum, sum);
    assert_string_equal(got.v[3].val, "last");
    bus_consumer_close(c);
    recs_free(&got);
    free(big);
}

/* bus_produce_batch puts records where n bus_produce calls would (keyed:
 * murmur2; explicit partitions kept), in order per partition, with one
 * batch; it stops at an invalid record and says how many went. */
static void test_produce_batch(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "pbatch");
    ensure_topic(b, t, 8, -1, -1);
    enum { N = 600 }; /* more than one chunk of the embedded bus */
    static char keys[N][32], vals[N][32];
    static bus_rec_t recs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "user-%d", i % NKEYS);
        snprintf(vals[i], sizeof(vals[i]), "%d", i / NKEYS);
        recs[i] = (bus_rec_t){.partition = i % 50 == 7 ? 3 : -1, .key = keys[i], .key_len = strlen(keys[i]),
                              .value = vals[i], .value_len = strlen(vals[i])};
    }
    bus_batch_t batch;
    bus_batch_init(&batch);
    int done = -1;
    assert_int_equal(bus_produce_batch(b, t, recs, N, &batch, &done), HR_OK);
    assert_int_equal(done, N);
    /* an invalid record (no key, no partition) stops the batch there */
    bus_rec_t bad[3] = {recs[0], {.partition = -1, .value = "x", .value_len = 1}, recs[1]};
    assert_int_equal(bus_produce_batch(b, t, bad, 3, &batch, &done), HR_INVALID);
    assert_int_equal(done, 1);
    assert_int_equal(bus_produce_batch(b, "no-such-topic-pbatch", recs, 2, &batch, &done) == HR_OK, false);
    assert_int_equal(done, 0);
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, N + 1);
    int next[NKEYS] = {0};
    int64_t last_off[8];
    for (int i = 0; i < 8; i++) last_off[i] = -1;
    int extra = 0;
    for (size_t i = 0; i < got.n; i++) {
        rec_t *r = &got.v[i];
        int k = -1;
        assert_int_equal(sscanf(r->key, "user-%d", &k), 1);
        int v = (int)strtol(r->val, NULL, 10);
        if (k == 0 && v == 0 && next[0] > 0) { /* the one record of the second call */
            extra++;
            continue;
        }
        assert_int_equal(v, next[k]);
        int idx = next[k] * NKEYS + k;
        next[k]++;
        int want = idx % 50 == 7 ? 3 : murmur2_partition(r->key, strlen(r->key), 8);
        assert_int_equal(r->part, want);
        assert_true(r->off > last_off[r->part]);
        last_off[r->part] = r->off;
    }
    assert_int_equal(extra, 1);
    int total = 0;
    for (int k = 0; k < NKEYS; k++) total += next[k];
    assert_int_equal(total, N);
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

/* A full producer queue: bus_produce_batch produces a prefix, returns
 * HR_AGAIN, and the rest goes after a flush; nothing lost or reordered. */
static void test_produce_batch_full(void **state)
{
    ctx_t *cx = *state;
    static const char *const kv[] = {"max_pending_bytes", "65536", NULL};
    bus_t *b = open_bus_with(cx, "never", 0, 200000, kv);
    const char *t = name(cx, "pbfull");
    ensure_topic(b, t, 2, -1, -1);
    enum { N = 300 };
    static char vals[N][1024];
    static bus_rec_t recs[N];
    for (int i = 0; i < N; i++) {
        memset(vals[i], 'x', sizeof(vals[i]));
        snprintf(vals[i], 16, "%08d", i);
        recs[i] = (bus_rec_t){.partition = i % 2, .value = vals[i], .value_len = sizeof(vals[i])};
    }
    bus_batch_t batch;
    bus_batch_init(&batch);
    int k = 0, again = 0;
    while (k < N) {
        int done = -1;
        hr_t r = bus_produce_batch(b, t, recs + k, N - k, &batch, &done);
        assert_true(done >= 0 && done <= N - k);
        k += done;
        if (r == HR_OK) {
            assert_int_equal(k, N);
            break;
        }
        assert_int_equal(r, HR_AGAIN);
        assert_true(++again < 100000);
        assert_int_equal(bus_flush(b, wait_ms()), HR_OK);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    if (embedded()) assert_true(again > 0);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    consume(c, &got, N);
    int next[2] = {0, 1};
    for (int i = 0; i < N; i++) {
        rec_t *r = &got.v[i];
        char want[16];
        snprintf(want, sizeof(want), "%08d", next[r->part]);
        assert_memory_equal(r->val, want, 8);
        assert_int_equal(r->off, next[r->part] / 2);
        next[r->part] += 2;
    }
    assert_int_equal(next[0], N);
    assert_int_equal(next[1], N + 1);
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
        int id = (int)strtol(got.v[i].key + strlen("producer-"), NULL, 10);
        assert_true(id >= 0 && id < NT);
        assert_int_equal((int)strtol(got.v[i].val, NULL, 10), next[id]);
        next[id]++;
    }
    bus_consumer_close(c);
    recs_free(&got);
}

int main(void)
{
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_topics, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_key_order_and_partition, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_two_groups_read_everything, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_committed, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_store_is_not_commit, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_replay_group_reset, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_seek, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_seek_across_segments, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_group_split_and_takeover, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_before_create, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_full_buffer, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_record_over_pending_bound, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_large_record, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_produce_batch, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_produce_batch_full, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_producers, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name(backend(), tests, NULL, NULL);
}
