/*
 * chunk.h - a chunk task of fan-out (stage/chunks.h): one event and one key
 * range of its audience, (after, until] in the audience's key order. Fan-out
 * splits an audience larger than fanout.chunk_threshold into such tasks on
 * the fanout-chunks topic; any fan-out worker expands one.
 *
 * The record is binary and versioned, like the notification record
 * (notif.h): "HCK" + version byte, kind byte, flags byte, the chunk's index
 * (u32), then six length-prefixed (u32, little-endian) strings: the event's
 * tenant-qualified id, the audience key (qualified topic or actor), after
 * ("" = from the start), until ("" = to the end), the event's traceparent
 * ("" = none) and the event as it came on raw-events: JSON, or the binary
 * event record the API writes (model/event.h), which holds NUL bytes.
 *
 * Threads: pure functions.
 */
#ifndef HERALD_CHUNK_H
#define HERALD_CHUNK_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum chunk_kind {
    CHUNK_FOLLOWERS = 1,        /* followers of an actor */
    CHUNK_TOPIC = 2,            /* subscribers of a topic */
} chunk_kind_t;

/* flags */
#define CHUNK_F_PULL 0x01       /* the in-app channel is served by pull (not produced per user) */

typedef struct chunk {
    chunk_kind_t kind;
    unsigned flags;
    uint32_t index;             /* 0.. in audience order */
    char *event_id;             /* qualified */
    char *key;                  /* qualified topic or actor */
    char *after;                /* exclusive lower bound; "" = from the start */
    char *until;                /* inclusive upper bound; "" = to the end */
    char *traceparent;          /* "" = none */
    char *event;                /* the raw event (JSON or an event record), event_len bytes,
                                 * NUL-terminated */
    size_t event_len;
} chunk_t;

/* Appends the encoded record to out. NULL strings encode as "". */
hr_t chunk_encode(const chunk_t *c, buf_t *out);
/* Decodes a record; out's strings are allocated (free with chunk_clear).
 * HR_INVALID for a malformed or unknown record (out is then clear). */
hr_t chunk_decode(const void *data, size_t len, chunk_t *out);
void chunk_clear(chunk_t *c);

/* The chunk's claim id for dedupe ("<event_id>#chunk-<index>") into out. */
void chunk_claim_id(const chunk_t *c, char *out, size_t out_len);

/* How many of ids[0..n) (ascending) are inside the chunk's upper bound:
 * all of them when until is "", else those <= until. */
int chunk_in_range(const chunk_t *c, char *const *ids, int n);

#endif
