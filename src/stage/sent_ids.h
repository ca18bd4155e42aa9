/*
 * sent_ids.h - a bounded in-memory set of notification ids, for dispatch's
 * "already sent?" knowledge between the bus and the store.
 *
 * Keys are notification ids as notif_make_id() writes them (32 hex digits),
 * parsed to their 16 bytes; any other id is not kept (sent_ids_add says so)
 * and never found. The set keeps 64 bits of each key and a tag of 9 more
 * (sent_ids.c): a different id reads as present with a chance of about
 * count / 2^73 per lookup. When the set holds `max` ids the oldest one
 * goes first (FIFO), so memory stays bounded (16 bytes an id: 8 in the
 * ring, two 4-byte table slots). Memory grows with use up to that bound; arrays of
 * 2 MiB and more go on huge pages (core/bigmem.h), being probed at random. One thread; no locking.
 *
 * A caller that asks about one id several times (dispatch: in the batch?
 * sent before? then add it to both) parses it once with sent_key_parse()
 * and uses the _key calls.
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
    uint64_t *ring;             /* insertion order, sent_key_hash of each; [head, head + count) mod cap */
    size_t cap, head, count;
    /* linear probing; an entry is tag | displacement | ring index + 1,
     * 0 = empty, where the tag is the top 32 - dbits - ibits bits of the
     * key's hash (a probe compares tags before it reads the ring) and the
     * displacement the entry's distance from its home slot (a deletion
     * moves entries back without reading their keys), see sent_ids.c */
    uint32_t *tab;
    size_t tmask;               /* table size - 1 (table size >= 2 x cap) */
    unsigned ibits;             /* bits of a ring index + 1 (max fits) */
    unsigned dbits;             /* bits of the displacement (4, fewer for huge bounds) */
    bool evicted;               /* an id was evicted since the last clear */
    size_t ring_map, tab_map;   /* core/bigmem.h: the arrays' mappings (0: malloc'd) */
} sent_ids_t;

/* The key of id: false when id is not 32 hex digits (such ids are not
 * kept and never found). */
bool sent_key_parse(hstr_t id, sent_key_t *k);

void sent_ids_init(sent_ids_t *s, size_t max);
/* Frees the memory; the set is empty (and usable) afterwards. */
void sent_ids_release(sent_ids_t *s);
/* Empties the set, keeping its memory (costs what it holds, not its
 * size, while nothing was evicted). */
void sent_ids_clear(sent_ids_t *s);
/* Adds id (a no-op when present). false when the id is not 32 hex digits
 * (not kept) or max is 0. */
bool sent_ids_add(sent_ids_t *s, hstr_t id);
bool sent_ids_has(const sent_ids_t *s, hstr_t id);
/* The same with a parsed key. sent_ids_add_key: false only when max is 0. */
bool sent_ids_add_key(sent_ids_t *s, const sent_key_t *k);
bool sent_ids_has_key(const sent_ids_t *s, const sent_key_t *k);
static inline size_t sent_ids_count(const sent_ids_t *s) { return s->count; }

/* Many keys at once, for a caller that has a batch of them: the table
 * slots of a group of keys are fetched together, then probed, so that
 * their cache misses overlap instead of following each other (a prefetch
 * issued long before the probe, between other work, was measured to help
 * little: the probe still missed).
 * sent_ids_has_keys: found[i] = sent_ids_has_key(s, &keys[i]), i < n.
 * sent_ids_add_keys: the same as sent_ids_add_key for each key in order
 * (the same set afterwards); the slots of the ids a group's adds evict
 * are fetched with the group's own. */
void sent_ids_has_keys(const sent_ids_t *s, const sent_key_t *keys, size_t n, bool *found);
void sent_ids_add_keys(sent_ids_t *s, const sent_key_t *keys, size_t n);

static inline uint64_t sent_key_hash(const sent_key_t *k) { return k->lo ^ (k->hi * 0x9E3779B97F4A7C15ull); }

#endif
