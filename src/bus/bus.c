/*
 * bus.c - the bus registry, thin wrappers over the backend vtable and the
 * produce batches (acknowledgement counting, abandoned heap batches).
 *
 * Batch ownership: a caller owns its batch until bus_batch_abandon(); from
 * then on the bus it was produced to owns it (a list in struct bus). The ack
 * path (bus_batch_ack_n, on backend threads) only counts and signals; the
 * bus frees abandoned batches whose records are all acknowledged on a
 * caller's thread: in bus_batch_wait(), bus_batch_abandon() and bus_close().
 */
#include "bus/bus_int.h"

#include "core/cond.h"
#include "core/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const bus_ops_t *const backends[] = {&bus_embedded_ops, &bus_kafka_ops};

hr_t bus_open_with(const bus_ops_t *ops, const bus_opts_t *opts, bus_t **out)
{
    hr_t r = ops->open(opts, out);
    if (r != HR_OK) return r;
    pthread_mutex_init(&(*out)->abandoned_mu, NULL);
    (*out)->abandoned = NULL;
    return HR_OK;
}

hr_t bus_open(const bus_opts_t *opts, bus_t **out)
{
    const char *name = opts->backend ? opts->backend : "embedded";
    for (size_t i = 0; i < ARRAY_LEN(backends); i++)
        if (strcmp(backends[i]->name, name) == 0) return bus_open_with(backends[i], opts, out);
    return HR_INVALID;
}

static void batches_free(bus_batch_t *list)
{
    while (list) {
        bus_batch_t *next = list->next;
        bus_batch_free(list);
        list = next;
    }
}

/* Frees the bus's abandoned batches whose records are all acknowledged. The
 * last ack has returned by then: pending reaches 0 under b->mu and no record
 * of the batch is acked twice. Caller's thread, never an ack path. */
static void abandoned_reap(bus_t *bus)
{
    bus_batch_t *done = NULL;
    pthread_mutex_lock(&bus->abandoned_mu);
    bus_batch_t **pp = &bus->abandoned;
    while (*pp) {
        bus_batch_t *b = *pp;
        pthread_mutex_lock(&b->mu);
        bool acked = b->pending == 0;
        pthread_mutex_unlock(&b->mu);
        if (acked) {
            *pp = b->next;
            b->next = done;
            done = b;
        } else {
            pp = &b->next;
        }
    }
    pthread_mutex_unlock(&bus->abandoned_mu);
    batches_free(done);
}

void bus_close(bus_t *bus)
{
    if (!bus) return;
    pthread_mutex_lock(&bus->abandoned_mu);
    bus_batch_t *left = bus->abandoned;
    bus->abandoned = NULL;
    pthread_mutex_unlock(&bus->abandoned_mu);
    pthread_mutex_destroy(&bus->abandoned_mu);
    bus->ops->close(bus); /* completes every record produced: no ack can follow */
    size_t n = 0;
    for (bus_batch_t **pp = &left; *pp;) {
        if ((*pp)->pending == 0) {
            pp = &(*pp)->next;
            continue;
        }
        *pp = (*pp)->next; /* a backend broke the one-completion rule: leak, do not free */
        n++;
    }
    if (n) log_error("bus", "close: %zu abandoned batches still had unacknowledged records", n);
    batches_free(left);
}

const char *bus_backend_name(const bus_t *bus) { return bus->ops->name; }

hr_t bus_topic_ensure(bus_t *bus, const char *topic, const bus_topic_opts_t *o)
{
    return bus->ops->topic_ensure(bus, topic, o);
}

int32_t bus_partitions(bus_t *bus, const char *topic) { return bus->ops->partitions(bus, topic); }

hr_t bus_produce(bus_t *bus, const char *topic, int32_t partition, const void *key,
                 size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    if (batch) {
        pthread_mutex_lock(&batch->mu);
        batch->pending++;
        batch->bus = bus;
        pthread_mutex_unlock(&batch->mu);
    }
    hr_t r = bus->ops->produce(bus, topic, partition, key, key_len, value, value_len, batch);
    if (r != HR_OK && batch) {
        pthread_mutex_lock(&batch->mu);
        batch->pending--;
        pthread_mutex_unlock(&batch->mu);
    }
    return r;
}

hr_t bus_produce_batch(bus_t *bus, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                       int *done)
{
    int k = 0;
    hr_t r = HR_OK;
    if (n <= 0) goto out;
    if (!bus->ops->produce_batch) {
        for (; k < n; k++) {
            const bus_rec_t *x = &recs[k];
            r = bus_produce(bus, topic, x->partition, x->key, x->key_len, x->value, x->value_len, batch);
            if (r != HR_OK) break;
        }
        goto out;
    }
    if (batch) { /* one count for the whole batch, corrected after */
        pthread_mutex_lock(&batch->mu);
        batch->pending += n;
        batch->bus = bus;
        pthread_mutex_unlock(&batch->mu);
    }
    r = bus->ops->produce_batch(bus, topic, recs, n, batch, &k);
    if (k < n && batch) {
        pthread_mutex_lock(&batch->mu);
        batch->pending -= n - k;
        if (batch->pending == 0) pthread_cond_broadcast(&batch->cv);
        pthread_mutex_unlock(&batch->mu);
    }
out:
    if (done) *done = k;
    return r;
}

hr_t bus_flush(bus_t *bus, int timeout_ms) { return bus->ops->flush(bus, timeout_ms); }

int64_t bus_outstanding(bus_t *bus)
{
    return bus->ops->outstanding ? bus->ops->outstanding(bus) : -1;
}

void bus_batch_init(bus_batch_t *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

void bus_batch_release(bus_batch_t *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

bus_batch_t *bus_batch_new(void)
{
    bus_batch_t *b = xmalloc(sizeof(*b));
    bus_batch_init(b);
    b->heap = true;
    return b;
}

void bus_batch_free(bus_batch_t *b)
{
    if (!b) return;
    assert(b->heap);
    bus_batch_release(b);
    free(b);
}

void bus_batch_abandon(bus_batch_t *b)
{
    assert(b->heap);
    pthread_mutex_lock(&b->mu);
    bool done = b->pending == 0;
    bus_t *bus = b->bus;
    b->abandoned = true;
    pthread_mutex_unlock(&b->mu);
    if (done || !bus) {
        bus_batch_free(b); /* nothing in flight: the caller's thread frees it now */
        return;
    }
    pthread_mutex_lock(&bus->abandoned_mu);
    b->next = bus->abandoned;
    bus->abandoned = b;
    pthread_mutex_unlock(&bus->abandoned_mu);
    abandoned_reap(bus); /* also the ones abandoned earlier */
}

void bus_batch_ack_n(bus_batch_t *b, int64_t n, hr_t result)
{
    pthread_mutex_lock(&b->mu);
    b->pending -= n;
    if (result != HR_OK) {
        b->failed += n;
        b->last_error = result;
    }
    if (b->pending == 0) pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

hr_t bus_batch_wait(bus_t *bus, bus_batch_t *b, int timeout_ms)
{
    /* unlocked peek: a batch abandoned just now is reaped by a later call */
    if (__atomic_load_n(&bus->abandoned, __ATOMIC_RELAXED)) abandoned_reap(bus);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        if (b->pending == 0) {
            hr_t r = b->failed ? (hr_t)b->last_error : HR_OK;
            if (r == HR_OK && b->failed) r = HR_ERR;
            b->failed = 0;
            b->last_error = 0;
            pthread_mutex_unlock(&b->mu);
            return r;
        }
        if (hclock_mono_ns() >= deadline) {
            pthread_mutex_unlock(&b->mu);
            return HR_TIMEOUT;
        }
        cond_timedwait_ms(&b->cv, &b->mu, 5);
        pthread_mutex_unlock(&b->mu);
    }
}

hr_t bus_consumer_new(bus_t *bus, const char *group, const char *const *topics, int ntopics,
                      const bus_rebalance_t *rb, bus_consumer_t **out)
{
    return bus->ops->consumer_new(bus, group, topics, ntopics, rb, out);
}

int bus_poll(bus_consumer_t *c, bus_msg_t *msgs, int max, int timeout_ms)
{
    return c->ops->poll(c, msgs, max, timeout_ms);
}

hr_t bus_store_offset(bus_consumer_t *c, const char *topic, int32_t partition, int64_t next)
{
    return c->ops->store_offset(c, topic, partition, next);
}

hr_t bus_commit(bus_consumer_t *c) { return c->ops->commit(c); }

hr_t bus_commit_async(bus_consumer_t *c)
{
    return c->ops->commit_async ? c->ops->commit_async(c) : c->ops->commit(c);
}

hr_t bus_pause(bus_consumer_t *c, const char *topic, int32_t partition)
{
    return c->ops->pause(c, topic, partition);
}

hr_t bus_resume(bus_consumer_t *c, const char *topic, int32_t partition)
{
    return c->ops->resume(c, topic, partition);
}

hr_t bus_seek(bus_consumer_t *c, const char *topic, int32_t partition, int64_t offset)
{
    return c->ops->seek(c, topic, partition, offset);
}

void bus_consumer_close(bus_consumer_t *c)
{
    if (c) c->ops->consumer_close(c);
}

hr_t bus_group_reset(bus_t *bus, const char *group, const char *topic, int64_t to_time_ms)
{
    return bus->ops->group_reset(bus, group, topic, to_time_ms);
}

hr_t bus_lag(bus_t *bus, const char *group, const char *topic, bus_lag_t **out, int *n)
{
    return bus->ops->lag(bus, group, topic, out, n);
}

bus_health_t bus_health(bus_t *bus, char *why, size_t why_len)
{
    if (why_len) why[0] = '\0';
    return bus->ops->health ? bus->ops->health(bus, why, why_len) : BUS_HEALTH_OK;
}

hr_t bus_read_range(bus_t *bus, const char *topic, int32_t partition, int64_t from, int64_t to,
                    bus_read_fn fn, void *ud)
{
    if (!topic || !fn || partition < 0) return HR_INVALID;
    if (from < 0) from = 0;
    if (to <= from) return HR_OK;
    if (!bus->ops->read_range) return HR_DECLINED;
    return bus->ops->read_range(bus, topic, partition, from, to, fn, ud);
}

hr_t bus_txn_init(bus_consumer_t *c, const char *txn_id)
{
    if (!c->ops->txn_init) return HR_DECLINED;
    return c->ops->txn_init(c, txn_id);
}

hr_t bus_txn_begin(bus_consumer_t *c)
{
    return c->ops->txn_begin ? c->ops->txn_begin(c) : HR_DECLINED;
}

hr_t bus_txn_commit(bus_consumer_t *c, const bus_offset_t *offs, int n)
{
    return c->ops->txn_commit ? c->ops->txn_commit(c, offs, n) : HR_DECLINED;
}

void bus_txn_abort(bus_consumer_t *c)
{
    if (c->ops->txn_abort) c->ops->txn_abort(c);
}
