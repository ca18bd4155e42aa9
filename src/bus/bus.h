/*
 * bus.h - the message log ("bus"): partitioned topics, consumer groups,
 * committed offsets. Two backends implement it: embedded (segment files in
 * the data dir, bus_embedded.c) and Kafka (librdkafka, bus_kafka.c). Stage
 * code is written only against this header; the same contract tests
 * (tests/unit/bus/test_bus_contract.c) run against both. The backend vtable
 * is private to src/bus/ (bus_int.h).
 *
 * Semantics every backend keeps:
 *  - A record's partition is murmur2(key) % partitions (Kafka's Java rule)
 *    unless the producer names one. Order is kept per partition.
 *  - Each consumer group reads every record independently ("a log, not a
 *    queue"). Within a group a partition is owned by one consumer at a time;
 *    ownership changes are announced through the rebalance callbacks.
 *  - At-least-once: a consumer calls bus_store_offset(next) only after the
 *    outputs it produced for the input were acknowledged (bus_batch_wait), and
 *    bus_commit() persists stored offsets. Backends also commit stored offsets
 *    periodically and synchronously when a partition is revoked or the
 *    consumer closes.
 *
 * Threads: a bus_t may be shared by any number of threads. A bus_consumer_t
 * belongs to the one thread that polls it; its callbacks run on that thread,
 * inside bus_poll().
 */
#ifndef HERALD_BUS_H
#define HERALD_BUS_H

#include "core/common.h"

#include <pthread.h>

typedef struct bus bus_t;
typedef struct bus_consumer bus_consumer_t;

/* Options for opening a bus. Strings are copied by bus_open(). */
typedef struct bus_opts {
    const char *backend;        /* "embedded" or "kafka" */
    /* embedded */
    const char *dir;            /* directory for topics and offsets */
    const char *fsync;          /* "never" | "interval" | "always" (default interval) */
    int fsync_interval_ms;      /* for "interval"; default 1000 */
    int64_t segment_bytes;      /* roll segments at this size; default 64 MiB */
    int flush_interval_us;      /* producer batching window; default 1000 */
    /* kafka */
    const char *brokers;        /* bootstrap servers */
    int close_timeout_ms;       /* a consumer's commit on revoke and on close waits at most this
                                 * long, its close twice this (0 = 10000) */
    /* extra backend settings, passed through (kafka.<name> -> librdkafka <name>) */
    const char *const *kv;      /* NULL-terminated pairs: key, value, key, value, ..., NULL */
} bus_opts_t;

/* Topic settings for bus_topic_ensure(). */
typedef struct bus_topic_opts {
    int32_t partitions;
    int16_t replication;        /* kafka only; embedded ignores */
    int16_t min_insync;         /* kafka only */
    int64_t retention_ms;       /* -1 = forever */
    int64_t retention_bytes;    /* per partition; -1 = unlimited */
} bus_topic_opts_t;

/* A record seen by a consumer. Pointers stay valid until the next
 * bus_poll() or bus_consumer_close() on the same consumer. */
typedef struct bus_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;       /* append time */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    /* The record's `traceparent` header (W3C Trace Context), the one record
     * header herald reads: Kafka fills it for records whose producer set it
     * (events produced straight to raw-events); NULL/0 when absent and
     * always on the embedded bus, whose only producer is herald, which
     * carries the trace context inside its records (the event's JSON, the
     * notification record). Not validated here. Lives as long as value. */
    const char *traceparent;
    size_t traceparent_len;
} bus_msg_t;

/* Tracks acknowledgements for a set of produced records. Initialise with
 * bus_batch_init(), pass to bus_produce(), then bus_batch_wait(). A batch may
 * be reused after wait returns. Not shared between threads except by the bus
 * itself (its ack path). The ack path only counts: it never frees a batch. */
typedef struct bus_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t pending;
    int64_t failed;
    int last_error;             /* hr_t of the last failure */
    bool heap;                  /* made by bus_batch_new() */
    bool abandoned;             /* handed to the bus by bus_batch_abandon() */
    bus_t *bus;                 /* the bus it was last produced to */
    struct bus_batch *next;     /* in that bus's list of abandoned batches */
} bus_batch_t;

void bus_batch_init(bus_batch_t *b);
void bus_batch_release(bus_batch_t *b);
/* A heap batch for callers that may stop waiting before every ack arrives
 * (the HTTP ingest path answers 503 after a timeout). Free it with
 * bus_batch_free() once bus_batch_wait() returned HR_OK or an error, or hand
 * it to bus_batch_abandon() after HR_TIMEOUT: the batch then belongs to the
 * bus it was produced to, which keeps it until its last record is
 * acknowledged and frees it afterwards, outside the ack path (in a later
 * bus_batch_wait() on that bus, a later bus_batch_abandon(), or bus_close()).
 * The caller must not touch it after bus_batch_abandon(). */
bus_batch_t *bus_batch_new(void);
void bus_batch_free(bus_batch_t *b);
void bus_batch_abandon(bus_batch_t *b);
/* Waits until every record produced with this batch is acknowledged.
 * HR_OK if all succeeded; the last error if any failed (failed count in
 * b->failed); HR_TIMEOUT if timeout_ms (>=0) passed first; -1 = forever.
 * On HR_OK or error the batch is reset and can be reused. */
hr_t bus_batch_wait(bus_t *bus, bus_batch_t *b, int timeout_ms);

/* Rebalance callbacks, called on the polling thread inside bus_poll().
 * revoked: the consumer is about to lose the partition; flush per-partition
 * state and store offsets now; the backend commits synchronously after it. */
typedef struct bus_rebalance {
    void (*assigned)(void *opaque, const char *topic, int32_t partition);
    void (*revoked)(void *opaque, const char *topic, int32_t partition);
    void *opaque;
} bus_rebalance_t;

/* Lag of one group on one partition. */
typedef struct bus_lag {
    char topic[128];
    int32_t partition;
    int64_t committed;          /* -1 when none */
    int64_t end_offset;         /* high watermark */
    int64_t lag;
} bus_lag_t;

/* ---- public API ---- */

/* Opens the backend named by opts->backend. */
hr_t bus_open(const bus_opts_t *opts, bus_t **out);
/* Flushes outstanding produces and frees the bus. Consumers must be closed first. */
void bus_close(bus_t *bus);
const char *bus_backend_name(const bus_t *bus);

/* Creates the topic if missing (an existing topic keeps its partitions). */
hr_t bus_topic_ensure(bus_t *bus, const char *topic, const bus_topic_opts_t *o);
/* Partition count, or -1 when the topic does not exist. */
int32_t bus_partitions(bus_t *bus, const char *topic);

/* Appends a record. partition < 0 picks murmur2(key) % partitions (key
 * required then). The bytes are copied. batch may be NULL (fire and forget;
 * only for tests and tools). HR_AGAIN when the producer queue is full: serve
 * and retry. */
hr_t bus_produce(bus_t *bus, const char *topic, int32_t partition, const void *key,
                 size_t key_len, const void *value, size_t value_len, bus_batch_t *batch);
/* One record of bus_produce_batch(). */
typedef struct bus_rec {
    int32_t partition;          /* < 0: murmur2(key) % partitions (key required) */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} bus_rec_t;

/* Appends n records to one topic, as n bus_produce() calls in that order
 * would (same partitions, same order within each partition, same batch),
 * but cheaper: the embedded bus looks the topic up once, reads the clock
 * once and takes each partition's lock once per call. Stops at the first
 * record that fails: *done (may be NULL) gets how many records from the
 * start were produced, and the result is that record's error (HR_AGAIN
 * when the producer queue is full: serve, then retry from recs + *done);
 * HR_OK when all n were. */
hr_t bus_produce_batch(bus_t *bus, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                       int *done);
/* Waits until everything produced so far is acknowledged. */
hr_t bus_flush(bus_t *bus, int timeout_ms);
/* Records produced and not acknowledged yet (for the shutdown report); -1
 * when the backend cannot tell. */
int64_t bus_outstanding(bus_t *bus);

/* Joins `group` and subscribes to the topics. rb may be NULL. */
hr_t bus_consumer_new(bus_t *bus, const char *group, const char *const *topics, int ntopics,
                      const bus_rebalance_t *rb, bus_consumer_t **out);
/* Fills up to max records; returns how many (0 on timeout), or a negative hr_t. */
int bus_poll(bus_consumer_t *c, bus_msg_t *msgs, int max, int timeout_ms);
/* Marks everything before next_offset on the partition as processed. */
hr_t bus_store_offset(bus_consumer_t *c, const char *topic, int32_t partition,
                      int64_t next_offset);
/* Persists stored offsets now (synchronously). */
hr_t bus_commit(bus_consumer_t *c);
/* Commits stored offsets without waiting for the disk: the embedded bus
 * hands its offsets file to a background thread (a new owner of a
 * partition still starts from the committed offset at once; a crash may
 * lose the commit, and that work is processed again). Backends without it
 * commit synchronously. */
hr_t bus_commit_async(bus_consumer_t *c);
hr_t bus_pause(bus_consumer_t *c, const char *topic, int32_t partition);
hr_t bus_resume(bus_consumer_t *c, const char *topic, int32_t partition);
/* Moves the consumer's position on an owned partition. */
hr_t bus_seek(bus_consumer_t *c, const char *topic, int32_t partition, int64_t offset);
/* Commits stored offsets, leaves the group, frees. */
void bus_consumer_close(bus_consumer_t *c);

/* Offline replay: sets the group's committed offsets on every partition of
 * topic to the first record with timestamp >= to_time_ms (0 = earliest).
 * The group must have no live members. */
hr_t bus_group_reset(bus_t *bus, const char *group, const char *topic, int64_t to_time_ms);
/* Lag per partition; *out is allocated, caller frees. */
hr_t bus_lag(bus_t *bus, const char *group, const char *topic, bus_lag_t **out, int *n);

/* Health of the bus. DEGRADED: it serves, but something is wrong that an
 * operator must see (embedded: segment writes fail, e.g. the disk is full,
 * until a write succeeds again; damaged records were skipped and
 * bus.embedded.accept_loss is not set). why gets a one-line reason (empty
 * when OK). Cheap; any thread. */
typedef enum bus_health { BUS_HEALTH_OK = 0, BUS_HEALTH_DEGRADED = 1 } bus_health_t;
bus_health_t bus_health(bus_t *bus, char *why, size_t why_len);
/* Called by bus_read_range() for each record in offset order; the record
 * is valid only during the call. Return false to stop reading. */
typedef bool (*bus_read_fn)(void *ud, const bus_msg_t *m);
/* Reads records [from, to) of one partition outside any consumer group:
 * nothing is committed, no member joins or leaves, nothing waits for
 * records not written yet (it stops at the end the partition has now).
 * For a stage that must look back at what was produced (dispatch reads
 * the tail of notification-status when it takes a partition over). Records
 * below the partition's start (retention) are skipped. HR_DECLINED when
 * the backend cannot do it; HR_NOTFOUND for an unknown topic; HR_INVALID
 * for a partition out of range. */
hr_t bus_read_range(bus_t *bus, const char *topic, int32_t partition, int64_t from, int64_t to,
                    bus_read_fn fn, void *ud);

/* ---- exactly-once read-process-write (Kafka; fanout.exactly_once) ----
 * A consumer may own a transactional producer: between bus_txn_begin() and
 * bus_txn_commit()/bus_txn_abort(), every bus_produce() and bus_flush() made
 * on the calling thread to the consumer's bus goes through it, and
 * bus_txn_commit() commits those records together with the consumer's input
 * offsets (the group's, as if stored and committed), atomically: consumers
 * reading committed records only see them once the transaction commits, and
 * never when it aborts. The produced records' batches are acknowledged by
 * the commit (or failed by the abort). The embedded bus has no transactions
 * (bus_txn_init answers HR_DECLINED). */
typedef struct bus_offset {
    const char *topic;
    int32_t partition;
    int64_t next;               /* the next offset to read */
} bus_offset_t;
/* Makes the consumer transactional; txn_id names its producer and must be
 * stable across restarts of the same process and unique among processes
 * (the broker fences an older producer with the same id and aborts what it
 * left open). The producer is created and registered lazily, by the first
 * bus_txn_begin(). */
hr_t bus_txn_init(bus_consumer_t *c, const char *txn_id);
/* Starts a transaction on the calling thread (the consumer's). */
hr_t bus_txn_begin(bus_consumer_t *c);
/* Sends the offsets and commits; on failure the transaction is aborted and
 * an error returned (process the input again). */
hr_t bus_txn_commit(bus_consumer_t *c, const bus_offset_t *offs, int n);
/* Aborts the open transaction, if any. */
void bus_txn_abort(bus_consumer_t *c);

#endif
