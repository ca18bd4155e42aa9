/*
 * bus_int.h - what bus.c and the bus backends share, and nobody else: the
 * backend vtable, the base structs every backend struct starts with, the
 * backend registry and the acknowledgement entry point. Code outside
 * src/bus/ uses bus.h only (tests may include this to build a fake backend).
 *
 * Adding a backend: one bus_<name>.c defining `const bus_ops_t
 * bus_<name>_ops`, whose structs put `bus_t base` / `bus_consumer_t base`
 * first, plus one line in bus.c's registry.
 */
#ifndef HERALD_BUS_INT_H
#define HERALD_BUS_INT_H

#include "bus/bus.h"

typedef struct bus_ops {
    const char *name;
    hr_t (*open)(const bus_opts_t *opts, bus_t **out);
    void (*close)(bus_t *bus);
    hr_t (*topic_ensure)(bus_t *bus, const char *topic, const bus_topic_opts_t *o);
    int32_t (*partitions)(bus_t *bus, const char *topic);
    hr_t (*produce)(bus_t *bus, const char *topic, int32_t partition, const void *key,
                    size_t key_len, const void *value, size_t value_len, bus_batch_t *batch);
    /* bus_produce_batch: produces a prefix of recs, sets *done to its
     * length (always set), returns HR_OK or the error of recs[*done]. The
     * batch's pending count is bus.c's. May be NULL (bus.c loops over
     * produce). */
    hr_t (*produce_batch)(bus_t *bus, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                          int *done);
    hr_t (*flush)(bus_t *bus, int timeout_ms);
    hr_t (*consumer_new)(bus_t *bus, const char *group, const char *const *topics,
                         int ntopics, const bus_rebalance_t *rb, bus_consumer_t **out);
    int (*poll)(bus_consumer_t *c, bus_msg_t *msgs, int max, int timeout_ms);
    hr_t (*store_offset)(bus_consumer_t *c, const char *topic, int32_t partition,
                         int64_t next_offset);
    hr_t (*commit)(bus_consumer_t *c);
    /* bus_commit_async. May be NULL (bus_commit). */
    hr_t (*commit_async)(bus_consumer_t *c);
    hr_t (*pause)(bus_consumer_t *c, const char *topic, int32_t partition);
    hr_t (*resume)(bus_consumer_t *c, const char *topic, int32_t partition);
    hr_t (*seek)(bus_consumer_t *c, const char *topic, int32_t partition, int64_t offset);
    void (*consumer_close)(bus_consumer_t *c);
    hr_t (*group_reset)(bus_t *bus, const char *group, const char *topic, int64_t to_time_ms);
    hr_t (*lag)(bus_t *bus, const char *group, const char *topic, bus_lag_t **out, int *n);
    /* Records produced and not acknowledged yet. May be NULL. */
    int64_t (*outstanding)(bus_t *bus);
    /* OK, or DEGRADED with the reason in why. May be NULL (always OK). */
    bus_health_t (*health)(bus_t *bus, char *why, size_t why_len);
    /* bus_read_range. May be NULL (HR_DECLINED). */
    hr_t (*read_range)(bus_t *bus, const char *topic, int32_t partition, int64_t from, int64_t to,
                       bus_read_fn fn, void *ud);
    /* bus_txn_*. May be NULL (HR_DECLINED). */
    hr_t (*txn_init)(bus_consumer_t *c, const char *txn_id);
    hr_t (*txn_begin)(bus_consumer_t *c);
    hr_t (*txn_commit)(bus_consumer_t *c, const bus_offset_t *offs, int n);
    void (*txn_abort)(bus_consumer_t *c);
} bus_ops_t;

/* Every backend struct starts with this. The backend sets ops; bus.c owns
 * the rest (set up by bus_open_with(), torn down by bus_close()). */
struct bus {
    const bus_ops_t *ops;
    pthread_mutex_t abandoned_mu;
    bus_batch_t *abandoned;     /* bus_batch_abandon()ed batches, freed once acked */
};
struct bus_consumer {
    const bus_ops_t *ops;
    bus_t *bus;
};

/* Backend registry (bus.c). */
extern const bus_ops_t bus_embedded_ops;
extern const bus_ops_t bus_kafka_ops;

/* Opens a bus with the given backend (bus_open() looks the name up; tests
 * pass a fake backend). */
hr_t bus_open_with(const bus_ops_t *ops, const bus_opts_t *opts, bus_t **out);

/* Backends call this when n records of the batch are acknowledged with the
 * same result, on whatever thread acks (flusher, delivery reports). It only
 * counts and wakes the waiter; it never frees the batch, so the caller may
 * keep using the pointer for the rest of its ack loop. */
void bus_batch_ack_n(bus_batch_t *b, int64_t n, hr_t result);
static inline void bus_batch_ack(bus_batch_t *b, hr_t result) { bus_batch_ack_n(b, 1, result); }

#endif
