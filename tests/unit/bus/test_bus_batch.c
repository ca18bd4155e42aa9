/*
 * test_bus_batch.c - produce batches (bus.c): acknowledgement counting and
 * the ownership of abandoned heap batches.
 *
 * The HTTP ingest path stops waiting after a timeout and hands its heap batch
 * to bus_batch_abandon() while records are still in flight. The batch must
 * then be freed exactly once, after its last ack, and never by the ack path
 * itself (the backend's ack loop may still hold the pointer). A fake backend
 * (bus_int.h) lets the tests decide exactly when each record is acked; run
 * under AddressSanitizer (make test-asan) a double free, a use after free or
 * a leak fails them.
 */
#include "bus_harness.h"

#include "bus/bus_int.h"
#include "core/log.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- a fake backend: produce remembers the batch, the test acks ---- */

typedef struct fake_bus {
    bus_t base;
    bus_batch_t *inflight[4096]; /* one entry per produced, unacked record */
    int n;
} fake_bus_t;

extern const bus_ops_t fake_ops;

static hr_t fake_open(const bus_opts_t *opts, bus_t **out)
{
    (void)opts;
    fake_bus_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base.ops = &fake_ops;
    *out = &f->base;
    return HR_OK;
}

/* Acks the oldest n in-flight records with r (what a flusher or a delivery
 * report thread does). */
static void fake_ack(fake_bus_t *f, int n, hr_t r)
{
    assert_true(n <= f->n);
    for (int i = 0; i < n; i++) bus_batch_ack(f->inflight[i], r);
    memmove(f->inflight, f->inflight + n, (size_t)(f->n - n) * sizeof(f->inflight[0]));
    f->n -= n;
}

/* Like every backend, close completes every record. */
static void fake_close(bus_t *b)
{
    fake_bus_t *f = (fake_bus_t *)b;
    fake_ack(f, f->n, HR_CLOSED);
    free(f);
}

static hr_t fake_produce(bus_t *b, const char *topic, int32_t partition, const void *key,
                         size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    (void)topic, (void)partition, (void)key, (void)key_len, (void)value, (void)value_len;
    fake_bus_t *f = (fake_bus_t *)b;
    if (f->n == (int)ARRAY_LEN(f->inflight)) return HR_AGAIN;
    f->inflight[f->n++] = batch;
    return HR_OK;
}

const bus_ops_t fake_ops = {.name = "fake", .open = fake_open, .close = fake_close, .produce = fake_produce};

static fake_bus_t *fake_new(void)
{
    bus_opts_t o = {0};
    bus_t *b = NULL;
    assert_int_equal(bus_open_with(&fake_ops, &o, &b), HR_OK);
    return (fake_bus_t *)b;
}

static void produce_n(fake_bus_t *f, bus_batch_t *b, int n)
{
    for (int i = 0; i < n; i++) assert_int_equal(bus_produce(&f->base, "t", 0, "k", 1, "v", 1, b), HR_OK);
}

static size_t abandoned_count(fake_bus_t *f)
{
    size_t n = 0;
    pthread_mutex_lock(&f->base.abandoned_mu);
    for (bus_batch_t *b = f->base.abandoned; b; b = b->next) n++;
    pthread_mutex_unlock(&f->base.abandoned_mu);
    return n;
}

/* ---- tests ---- */

static void test_ack_counts(void **state)
{
    (void)state;
    fake_bus_t *f = fake_new();
    bus_batch_t b;
    bus_batch_init(&b);
    produce_n(f, &b, 3);
    assert_int_equal(b.pending, 3);
    assert_int_equal(bus_batch_wait(&f->base, &b, 0), HR_TIMEOUT);
    fake_ack(f, 1, HR_OK);
    fake_ack(f, 1, HR_CLOSED);
    assert_int_equal(bus_batch_wait(&f->base, &b, 0), HR_TIMEOUT);
    fake_ack(f, 1, HR_OK);
    assert_int_equal(bus_batch_wait(&f->base, &b, 0), HR_CLOSED); /* the failed record's result */
    assert_int_equal(b.failed, 0);                                 /* reset for reuse */
    produce_n(f, &b, 1);
    fake_ack(f, 1, HR_OK);
    assert_int_equal(bus_batch_wait(&f->base, &b, -1), HR_OK);
    bus_batch_release(&b);
    bus_close(&f->base);
}

/* The ingest path: a heap batch abandoned with acks pending stays alive
 * through its acks (the ack path never frees it) and is freed once, by the
 * bus, after the last one. */
static void test_abandon_while_pending(void **state)
{
    (void)state;
    fake_bus_t *f = fake_new();
    bus_batch_t *b = bus_batch_new();
    produce_n(f, b, 3);
    assert_int_equal(bus_batch_wait(&f->base, b, 0), HR_TIMEOUT);
    bus_batch_abandon(b);
    assert_int_equal(abandoned_count(f), 1); /* the bus owns it now */

    fake_ack(f, 2, HR_OK);
    assert_int_equal(abandoned_count(f), 1);
    fake_ack(f, 1, HR_OK); /* the last ack: counts, frees nothing */
    assert_int_equal(abandoned_count(f), 1);
    assert_int_equal(b->pending, 0); /* still allocated (ASan would object) */

    /* the next wait on the bus frees it, on the waiter's thread */
    bus_batch_t other;
    bus_batch_init(&other);
    assert_int_equal(bus_batch_wait(&f->base, &other, 0), HR_OK);
    assert_int_equal(abandoned_count(f), 0);
    bus_batch_release(&other);
    bus_close(&f->base);
}

/* Abandoning a batch with nothing in flight frees it at once. */
static void test_abandon_when_done(void **state)
{
    (void)state;
    fake_bus_t *f = fake_new();
    bus_batch_t *b = bus_batch_new();
    produce_n(f, b, 2);
    fake_ack(f, 2, HR_OK);
    bus_batch_abandon(b);
    assert_int_equal(abandoned_count(f), 0);
    bus_batch_abandon(bus_batch_new()); /* never produced to any bus */
    bus_close(&f->base);
}

/* bus_close() frees the abandoned batches once the backend completed their
 * records (the fake acks everything in close). */
static void test_close_frees_abandoned(void **state)
{
    (void)state;
    fake_bus_t *f = fake_new();
    for (int i = 0; i < 5; i++) {
        bus_batch_t *b = bus_batch_new();
        produce_n(f, b, 1 + i);
        bus_batch_abandon(b);
    }
    fake_ack(f, 3, HR_OK); /* the first batch done, the second half way */
    assert_int_equal(abandoned_count(f), 5); /* acks free nothing */
    bus_batch_abandon(bus_batch_new());
    bus_close(&f->base);
}

/* Acks on another thread (like the flusher) racing the abandon. */
typedef struct acker {
    fake_bus_t *f;
    int n;
} acker_t;

static void *ack_thread(void *p)
{
    acker_t *a = p;
    for (int i = 0; i < a->n; i++) {
        bus_batch_ack(a->f->inflight[i], HR_OK);
        if (i % 7 == 0) sched_yield();
    }
    return NULL;
}

static void test_abandon_races_acks(void **state)
{
    (void)state;
    fake_bus_t *f = fake_new();
    for (int round = 0; round < 300; round++) {
        bus_batch_t *b = bus_batch_new();
        produce_n(f, b, 8);
        acker_t a = {.f = f, .n = f->n};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, ack_thread, &a), 0);
        if (bus_batch_wait(&f->base, b, round % 3) == HR_TIMEOUT)
            bus_batch_abandon(b);
        else
            bus_batch_free(b);
        pthread_join(th, NULL);
        f->n = 0;
    }
    bus_batch_t other;
    bus_batch_init(&other);
    assert_int_equal(bus_batch_wait(&f->base, &other, 0), HR_OK); /* reaps what is left */
    assert_int_equal(abandoned_count(f), 0);
    bus_batch_release(&other);
    bus_close(&f->base);
}

/* The same on the embedded backend: the flusher acks after the waiter gave up. */
static void test_abandon_embedded(void **state)
{
    ctx_t *cx = *state;
    if (!embedded()) skip();
    bus_t *bus = open_bus_with(cx, "never", 0, 10 * 1000 * 1000, NULL); /* a 10 s batching window */
    const char *t = name(cx, "abandon");
    ensure_topic(bus, t, 2, -1, -1);
    bus_batch_t *b = bus_batch_new();
    for (int i = 0; i < 10; i++) produce_str(bus, t, i % 2, NULL, "v", b);
    assert_int_equal(bus_batch_wait(bus, b, 0), HR_TIMEOUT);
    bus_batch_abandon(b);
    assert_int_equal(bus_flush(bus, wait_ms()), HR_OK); /* the flusher acks all 10 */
    bus_batch_t other;
    bus_batch_init(&other);
    assert_int_equal(bus_batch_wait(bus, &other, 0), HR_OK);
    pthread_mutex_lock(&bus->abandoned_mu);
    assert_null(bus->abandoned);
    pthread_mutex_unlock(&bus->abandoned_mu);
    bus_batch_release(&other);

    /* and one left to bus_close() */
    b = bus_batch_new();
    produce_str(bus, t, 0, NULL, "w", b);
    bus_batch_abandon(b);
}

int main(void)
{
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_counts),
        cmocka_unit_test(test_abandon_while_pending),
        cmocka_unit_test(test_abandon_when_done),
        cmocka_unit_test(test_close_frees_abandoned),
        cmocka_unit_test(test_abandon_races_acks),
        cmocka_unit_test_setup_teardown(test_abandon_embedded, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
