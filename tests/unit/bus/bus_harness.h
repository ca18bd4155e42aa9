/*
 * bus_harness.h - helpers shared by the bus tests (tests/unit/bus/): a
 * context per test (temporary directory, unique names), opening and
 * reopening the bus under test, produce/consume helpers that back off and
 * wait up to a deadline, and expect_quiet() for "nothing more arrives".
 *
 *   HERALD_TEST_BUS=embedded (default) | kafka
 *   HERALD_TEST_KAFKA_BROKERS=host:port   (kafka)
 */
#ifndef HERALD_TEST_BUS_HARNESS_H
#define HERALD_TEST_BUS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus/bus.h"

#include <stdbool.h>

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

/* The backend under test: HERALD_TEST_BUS, default "embedded". */
const char *backend(void);
bool embedded(void);
/* How long a test waits for something that should happen. */
int wait_ms(void);
/* How long a test watches for something that must not happen. */
int quiet_ms(void);
/* Monotonic milliseconds. */
int64_t now_ms(void);
void sleep_ms(int ms);

/* cmocka setup/teardown: *state is a fresh ctx_t (embedded: a temporary
 * directory, removed afterwards, with the bus closed and the fake clock off). */
int harness_setup(void **state);
int harness_teardown(void **state);

/* Opens cx->bus (embedded: in cx->dir with these settings; 0/NULL = default). */
bus_t *open_bus_with(ctx_t *cx, const char *fsync, int64_t segment_bytes, int flush_us,
                     const char *const *embedded_kv);
bus_t *open_bus(ctx_t *cx);
/* Closes and opens again with the last settings. */
bus_t *reopen_bus(ctx_t *cx);

/* A topic or group name unique to this run; lives until teardown. */
const char *name(ctx_t *cx, const char *what);
void ensure_topic(bus_t *b, const char *topic, int32_t parts, int64_t retention_ms,
                  int64_t retention_bytes);

/* Produces one record, backing off on HR_AGAIN. */
void produce(bus_t *b, const char *topic, int32_t part, const char *key, const void *val,
             size_t val_len, bus_batch_t *batch);
void produce_str(bus_t *b, const char *topic, int32_t part, const char *key, const char *val,
                 bus_batch_t *batch);
/* Produces n records "v<i>" (keyless, to one partition) and waits for acks. */
void produce_seq(bus_t *b, const char *topic, int32_t part, int from, int n);
/* Asserts that every record of the batch was acknowledged in time. */
void wait_batch(bus_t *b, bus_batch_t *batch);

void recs_free(recs_t *r);
void recs_add(recs_t *r, const bus_msg_t *m);
/* One poll; appends what came. Returns the count. */
int poll_into(bus_consumer_t *c, recs_t *out, int timeout_ms);
/* Polls until at least `want` more records have arrived (or the deadline);
 * a poll may bring more. */
void consume(bus_consumer_t *c, recs_t *out, size_t want);
/* Polls for a while and asserts that nothing arrives. */
void expect_quiet(bus_consumer_t *c);

bus_consumer_t *subscribe(bus_t *b, const char *group, const char *topic, const bus_rebalance_t *rb);
/* The group's committed offset on a partition (-1 when none). */
int64_t committed_of(bus_t *b, const char *group, const char *topic, int32_t part);

/* Opens the bus with this fsync mode, produces 201 records with a reused
 * batch, waits for the acks, reads them back and closes the bus. */
void roundtrip(ctx_t *cx, const char *fsync);

#endif
