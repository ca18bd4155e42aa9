/*
 * outbuf.h - a stage's outputs gathered during one process() call and
 * produced with one bus_produce_batch() per topic (stage_produce_batch).
 *
 * Producing record by record takes a partition lock, reads the clock and
 * may wake the flusher and the consumers per record; a batch per topic
 * takes each partition's lock once per chunk and wakes once. Outputs keep
 * their order within a topic (which is the order per partition that
 * matters downstream); records of different topics are not ordered with
 * respect to each other, exactly as with separate bus_produce() calls
 * before their acknowledgements.
 *
 * At least once: the records go into the caller's bus_batch_t like
 * stage_produce's, so the stage loop stores the input offsets only after
 * they are acknowledged; outbuf_flush() must run before process() returns
 * (and before any wait on the batch, e.g. dispatch's bus_batch_wait).
 *
 * Usage: size_t at = outbuf_mark(o); encode into outbuf_bytes(o);
 * outbuf_commit(o, topic, key, key_len, at). Keys are copied, so they may
 * die before the flush. Topics must be strings that live until the flush
 * (the names of model/names.h). Not thread-safe: one per worker.
 */
#ifndef HERALD_OUTBUF_H
#define HERALD_OUTBUF_H

#include "app.h"
#include "core/buf.h"

typedef struct outbuf_rec {
    const char *topic;
    size_t koff, klen, voff, vlen;
} outbuf_rec_t;

typedef struct outbuf {
    buf_t bytes;                /* values and keys */
    outbuf_rec_t *recs;
    int n, cap;
    bus_rec_t *tmp;             /* one topic's records at flush */
    int tmp_cap;
    size_t flush_bytes;         /* outbuf_commit flushes past this (bounds memory) */
    app_t *app;
    bus_batch_t *batch;         /* of the pending records */
} outbuf_t;

void outbuf_init(outbuf_t *o, app_t *app);
void outbuf_release(outbuf_t *o);
static inline buf_t *outbuf_bytes(outbuf_t *o) { return &o->bytes; }
static inline size_t outbuf_mark(const outbuf_t *o) { return o->bytes.len; }
/* Takes the bytes appended since `at` as the value of a record to topic,
 * keyed by key (copied). When the buffer holds more than flush_bytes it is
 * flushed (into batch). */
hr_t outbuf_commit(outbuf_t *o, const char *topic, const void *key, size_t key_len, size_t at,
                   bus_batch_t *batch);
/* Drops everything since `at` (an encoding that failed). */
static inline void outbuf_undo(outbuf_t *o, size_t at) { o->bytes.len = at; }
/* Produces every pending record (stage_produce_batch per topic, in order of
 * first appearance) into the batch they were committed with; empties the
 * buffer whatever the outcome. HR_OK when all were produced. */
hr_t outbuf_flush(outbuf_t *o);

#endif
