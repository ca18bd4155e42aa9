/*
 * bus_harness.c - helpers shared by the bus tests; see bus_harness.h.
 */
#include "bus_harness.h"

#include "core/log.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *backend(void)
{
    const char *b = getenv("HERALD_TEST_BUS");
    return b && *b ? b : "embedded";
}

bool embedded(void) { return strcmp(backend(), "embedded") == 0; }

/* How long a test waits for something that should happen. */
int wait_ms(void) { return embedded() ? 10000 : 60000; }

/* How long a test watches for something that must not happen. */
int quiet_ms(void) { return embedded() ? 200 : 2000; }

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
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

int harness_setup(void **state)
{
    static unsigned counter; /* each test of a binary gets its own names */
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

int harness_teardown(void **state)
{
    ctx_t *cx = *state;
    hclock_set_fake(0);
    if (cx->bus) bus_close(cx->bus);
    if (cx->dir[0]) nftw(cx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < cx->nnames; i++) free(cx->names[i]);
    free(cx);
    return 0;
}

bus_t *open_bus_with(ctx_t *cx, const char *fsync, int64_t segment_bytes, int flush_us,
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

bus_t *open_bus(ctx_t *cx) { return open_bus_with(cx, NULL, 0, 0, NULL); }

bus_t *reopen_bus(ctx_t *cx)
{
    bus_close(cx->bus);
    cx->bus = NULL;
    return open_bus_with(cx, cx->fsync, cx->segment_bytes, cx->flush_us, cx->kv);
}

/* A topic or group name unique to this run; lives until teardown. */
const char *name(ctx_t *cx, const char *what)
{
    assert_true(cx->nnames < 64);
    char *s = xasprintf("%s-%s", cx->prefix, what);
    cx->names[cx->nnames++] = s;
    return s;
}

void ensure_topic(bus_t *b, const char *topic, int32_t parts, int64_t retention_ms,
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
void produce(bus_t *b, const char *topic, int32_t part, const char *key, const void *val,
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

void produce_str(bus_t *b, const char *topic, int32_t part, const char *key, const char *val,
                        bus_batch_t *batch)
{
    produce(b, topic, part, key, val, strlen(val), batch);
}

void wait_batch(bus_t *b, bus_batch_t *batch)
{
    assert_int_equal(bus_batch_wait(b, batch, wait_ms()), HR_OK);
}



void recs_free(recs_t *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

void recs_add(recs_t *r, const bus_msg_t *m)
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
int poll_into(bus_consumer_t *c, recs_t *out, int timeout_ms)
{
    bus_msg_t msgs[64];
    int n = bus_poll(c, msgs, 64, timeout_ms);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) recs_add(out, &msgs[i]);
    return n;
}

/* Polls until at least `want` more records have arrived (or the deadline);
 * a poll may bring more. */
void consume(bus_consumer_t *c, recs_t *out, size_t want)
{
    size_t goal = out->n + want;
    int64_t deadline = now_ms() + wait_ms();
    while (out->n < goal && now_ms() < deadline) poll_into(c, out, 100);
    assert_true(out->n >= goal);
}

/* Polls for a while and asserts that nothing arrives. */
void expect_quiet(bus_consumer_t *c)
{
    recs_t extra = {0};
    int64_t deadline = now_ms() + quiet_ms();
    while (now_ms() < deadline) poll_into(c, &extra, 50);
    if (extra.n) fprintf(stderr, "unexpected record at offset %" PRId64 "\n", extra.v[0].off);
    assert_int_equal(extra.n, 0);
    recs_free(&extra);
}

bus_consumer_t *subscribe(bus_t *b, const char *group, const char *topic, const bus_rebalance_t *rb)
{
    bus_consumer_t *c = NULL;
    const char *topics[] = {topic};
    assert_int_equal(bus_consumer_new(b, group, topics, 1, rb, &c), HR_OK);
    assert_non_null(c);
    return c;
}

int64_t committed_of(bus_t *b, const char *group, const char *topic, int32_t part)
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
void produce_seq(bus_t *b, const char *topic, int32_t part, int from, int n)
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

void roundtrip(ctx_t *cx, const char *fsync)
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
