/*
 * sent_ids.c - see sent_ids.h.
 *
 * Written here rather than taken from a library: the keys are fixed 16-byte
 * values whose low 8 bytes are already uniformly distributed (SHA-256
 * bytes; the high ones start with a time, model/notif.h),
 * and the set needs FIFO eviction under a hard bound, which the general
 * hash tables in Debian (glib, uthash) would need extra bookkeeping for. A
 * ring keeps the ids in insertion order; an open-addressing table (linear
 * probing, backward-shift deletion) maps ids to ring slots.
 *
 * Cost: the table is big (2 x 8 bytes an id) and probed at random, so each
 * probe is a cache miss; an entry carries 32 bits of its key's hash, so a
 * lookup of a new id reads the table only (the ring is read when the hash
 * matches: almost only for an id that is there), and so does the deletion
 * of the oldest id (it looks for its ring index, and the entries it shifts
 * back have their home in their hash bits).
 */
#include "stage/sent_ids.h"

#include <stdlib.h>
#include <string.h>

/* 0-15 for a hex digit, 0xff for anything else. */
static const uint8_t HEX[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* value + 1, so that the zero-filled rest means "not a digit" */

bool sent_key_parse(hstr_t id, sent_key_t *k)
{
    if (id.n != 32 || !id.p) return false;
    const unsigned char *p = (const unsigned char *)id.p;
    uint64_t v[2] = {0, 0};
    unsigned bad = 0;
    for (size_t i = 0; i < 32; i++) {
        unsigned h = HEX[p[i]];
        bad |= h == 0;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)((h - 1) & 0xf);
    }
    if (bad) return false;
    k->hi = v[0];
    k->lo = v[1];
    return true;
}

static uint64_t hash_of(const sent_key_t *k) { return sent_key_hash(k); }

/* The entry's tag: 32 bits of the hash, the low ones (the home's) included. */
static uint64_t tag_of(uint64_t h) { return (h & 0xffffffffull) << 32; }

static size_t home_of_entry(const sent_ids_t *s, uint64_t e) { return (size_t)(e >> 32) & s->tmask; }

static bool key_eq(const sent_key_t *a, const sent_key_t *b) { return a->hi == b->hi && a->lo == b->lo; }

/* The table slot holding k, or the empty slot where it would go. */
static size_t find_slot(const sent_ids_t *s, const sent_key_t *k)
{
    uint64_t h = hash_of(k), tag = tag_of(h);
    size_t i = (size_t)h & s->tmask;
    for (;;) {
        uint64_t e = s->tab[i];
        if (!e) return i;
        if ((e & 0xffffffff00000000ull) == tag && key_eq(&s->ring[(uint32_t)e - 1], k)) return i;
        i = (i + 1) & s->tmask;
    }
}

/* The table slot of ring index r (which is in the table). */
static size_t slot_of_ring(const sent_ids_t *s, size_t r)
{
    size_t i = (size_t)hash_of(&s->ring[r]) & s->tmask;
    while ((uint32_t)s->tab[i] != (uint32_t)r + 1) i = (i + 1) & s->tmask;
    return i;
}

void sent_ids_init(sent_ids_t *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    /* entries hold a ring index in 32 bits and their home in the 32 hash
     * bits: the table (2 x max) must stay within 2^32 slots */
    if (max > (size_t)1 << 30) max = (size_t)1 << 30;
    s->max = max;
}

void sent_ids_release(sent_ids_t *s)
{
    free(s->ring);
    free(s->tab);
    sent_ids_init(s, s->max);
}

void sent_ids_clear(sent_ids_t *s)
{
    if (!s->tab) return;
    if (!s->evicted && s->count < (s->tmask + 1) / 8) {
        /* Without deletions, removing the ids newest first undoes their
         * insertions: each one's probe run holds only older ids. */
        for (size_t k = s->count; k-- > 0;) s->tab[slot_of_ring(s, (s->head + k) % s->cap)] = 0;
    } else {
        memset(s->tab, 0, (s->tmask + 1) * sizeof(*s->tab));
    }
    s->head = s->count = 0;
    s->evicted = false;
}

/* Rebuilds the table for a ring of new_cap slots (only while nothing was
 * evicted yet: the ids are ring[0, count)). */
static void grow(sent_ids_t *s, size_t new_cap)
{
    s->ring = xrealloc(s->ring, new_cap * sizeof(*s->ring));
    s->cap = new_cap;
    size_t tsize = 16;
    while (tsize < 2 * new_cap) tsize *= 2;
    free(s->tab);
    s->tab = xcalloc(tsize, sizeof(*s->tab));
    s->tmask = tsize - 1;
    for (size_t r = 0; r < s->count; r++)
        s->tab[find_slot(s, &s->ring[r])] = tag_of(hash_of(&s->ring[r])) | ((uint64_t)r + 1);
}

/* Removes the table entry at slot i, shifting later entries of the probe
 * run back so that lookups still find them. */
static void tab_delete(sent_ids_t *s, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->tmask;
        if (!s->tab[j]) break;
        size_t k = home_of_entry(s, s->tab[j]);
        /* the entry at j may move to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i] = 0;
}

bool sent_ids_add_key(sent_ids_t *s, const sent_key_t *k)
{
    if (s->max == 0) return false;
    if (s->count == s->cap && s->cap < s->max) {
        size_t c = s->cap ? s->cap * 2 : 1024;
        grow(s, c < s->max ? c : s->max);
    }
    size_t slot = find_slot(s, k);
    if (s->tab[slot]) return true;
    size_t r;
    if (s->count == s->cap) { /* full: the oldest id goes */
        r = s->head;
        tab_delete(s, slot_of_ring(s, r));
        s->head = (s->head + 1) % s->cap;
        s->count--;
        s->evicted = true;
        slot = find_slot(s, k); /* the deletion may have moved the run */
    } else {
        r = (s->head + s->count) % s->cap;
    }
    s->ring[r] = *k;
    s->count++;
    s->tab[slot] = tag_of(hash_of(k)) | ((uint64_t)r + 1);
    return true;
}

bool sent_ids_has_key(const sent_ids_t *s, const sent_key_t *k)
{
    if (s->count == 0) return false;
    return s->tab[find_slot(s, k)] != 0;
}

bool sent_ids_add(sent_ids_t *s, hstr_t id)
{
    sent_key_t k;
    if (s->max == 0 || !sent_key_parse(id, &k)) return false;
    return sent_ids_add_key(s, &k);
}

bool sent_ids_has(const sent_ids_t *s, hstr_t id)
{
    sent_key_t k;
    if (s->count == 0 || !sent_key_parse(id, &k)) return false;
    return sent_ids_has_key(s, &k);
}
