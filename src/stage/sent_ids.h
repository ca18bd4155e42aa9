/*
 * sent_ids.h - a bounded in-memory set of notification ids, for dispatch's
 * "already sent?" knowledge between the bus and the store.
 *
 * Keys are notification ids as notif_make_id() writes them (32 hex digits),
 * kept as their 16 bytes; any other id is not kept (sent_ids_add says so)
 * and never found. When the set holds `max` ids the oldest one goes first
 * (FIFO), so memory stays bounded (~24 bytes an id). Memory grows with use
 * up to that bound. One thread; no locking.
 */
#ifndef HERALD_SENT_IDS_H
#define HERALD_SENT_IDS_H

#include "model/notif.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sent_key {
    uint64_t hi, lo;
} sent_key_t;

typedef struct sent_ids {
    size_t max;                 /* bound; 0 keeps nothing */
    sent_key_t *ring;           /* insertion order; [head, head + count) mod cap */
    size_t cap, head, count;
    uint32_t *tab;              /* linear probing: ring index + 1, 0 = empty */
    size_t tmask;               /* table size - 1 (table size >= 2 x cap) */
} sent_ids_t;

void sent_ids_init(sent_ids_t *s, size_t max);
/* Frees the memory; the set is empty (and usable) afterwards. */
void sent_ids_release(sent_ids_t *s);
/* Empties the set, keeping its memory. */
void sent_ids_clear(sent_ids_t *s);
/* Adds id (a no-op when present). false when the id is not 32 hex digits
 * (not kept) or max is 0. */
bool sent_ids_add(sent_ids_t *s, hstr_t id);
bool sent_ids_has(const sent_ids_t *s, hstr_t id);
static inline size_t sent_ids_count(const sent_ids_t *s) { return s->count; }

#endif
