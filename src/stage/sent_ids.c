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
 * Cost and memory: the table (2 x 4 bytes an id, at most half full) is
 * probed at random, so each probe is a cache miss. An entry packs the
 * ring index (ibits bits: 19 for the default 262,144 ids) and the top
 * 32 - ibits bits of the key's hash (13 bits there), so a lookup of a new
 * id reads the table only (the ring is read when the tag matches: for an
 * id that is there, or once in 8,192 probes for another). The deletion of
 * the oldest id finds its slot by ring index; the entries it shifts back
 * have their home in the ring (their keys' hashes), fetched together
 * before the shift. With 8-byte entries (a 32-bit hash beside the index)
 * an id took 32 bytes instead of 24.
 */
#include "stage/sent_ids.h"

#include "core/bigmem.h"

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

/* The entry's tag bits: the hash's top 32 - ibits bits, in place. */
static uint32_t tag_of(const sent_ids_t *s, uint64_t h) { return (uint32_t)(h >> 32 >> s->ibits) << s->ibits; }

static uint32_t imask_of(const sent_ids_t *s) { return (uint32_t)((UINT64_C(1) << s->ibits) - 1); }

/* The ring index of a (full) table entry. */
static size_t ring_of(const sent_ids_t *s, uint32_t e) { return (size_t)(e & imask_of(s)) - 1; }

static uint32_t entry_of(const sent_ids_t *s, uint64_t h, size_t r) { return tag_of(s, h) | (uint32_t)(r + 1); }

static size_t home_of_entry(const sent_ids_t *s, uint32_t e)
{
    return (size_t)hash_of(&s->ring[ring_of(s, e)]) & s->tmask;
}

static bool key_eq(const sent_key_t *a, const sent_key_t *b) { return a->hi == b->hi && a->lo == b->lo; }

/* The table slot holding k, or the empty slot where it would go. */
static size_t find_slot(const sent_ids_t *s, const sent_key_t *k)
{
    uint64_t h = hash_of(k);
    uint32_t tag = tag_of(s, h), imask = imask_of(s);
    size_t i = (size_t)h & s->tmask;
    for (;;) {
        uint32_t e = s->tab[i];
        if (!e) return i;
        if ((e & ~imask) == tag && key_eq(&s->ring[(e & imask) - 1], k)) return i;
        i = (i + 1) & s->tmask;
    }
}

/* The table slot of ring index r (which is in the table). */
static size_t slot_of_ring(const sent_ids_t *s, size_t r)
{
    size_t i = (size_t)hash_of(&s->ring[r]) & s->tmask;
    uint32_t imask = imask_of(s);
    while ((s->tab[i] & imask) != (uint32_t)r + 1) i = (i + 1) & s->tmask;
    return i;
}

void sent_ids_init(sent_ids_t *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    /* an entry holds a ring index + 1 (up to 31 bits) and at least one
     * tag bit */
    if (max > (size_t)1 << 30) max = (size_t)1 << 30;
    s->max = max;
    s->ibits = 1;
    while (((size_t)1 << s->ibits) <= max) s->ibits++; /* max + 1 values: none and 1 .. max */
}

void sent_ids_release(sent_ids_t *s)
{
    bigmem_free(s->ring, s->ring_map);
    bigmem_free(s->tab, s->tab_map);
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
    size_t map;
    sent_key_t *ring = bigmem_alloc(new_cap * sizeof(*s->ring), &map);
    if (s->count) memcpy(ring, s->ring, s->count * sizeof(*s->ring));
    bigmem_free(s->ring, s->ring_map);
    s->ring = ring;
    s->ring_map = map;
    s->cap = new_cap;
    size_t tsize = 16;
    while (tsize < 2 * new_cap) tsize *= 2;
    bigmem_free(s->tab, s->tab_map);
    s->tab = bigmem_alloc(tsize * sizeof(*s->tab), &s->tab_map);
    s->tmask = tsize - 1;
    for (size_t r = 0; r < s->count; r++) s->tab[find_slot(s, &s->ring[r])] = entry_of(s, hash_of(&s->ring[r]), r);
}

/* Removes the table entry at slot i, shifting later entries of the probe
 * run back so that lookups still find them. */
static void tab_delete(sent_ids_t *s, size_t i)
{
    /* the homes of the entries after i come from their keys: fetch the
     * first few keys of the run together, so that their misses overlap */
    for (size_t j = (i + 1) & s->tmask, n = 0; s->tab[j] && n < 16; j = (j + 1) & s->tmask, n++)
        __builtin_prefetch(&s->ring[ring_of(s, s->tab[j])]);
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

/* Evictions go in ring order, so the next ones are known: each one fetches
 * the table slot of the id evicted AHEAD evictions later, and the keys of
 * the run after the slot of the one AHEAD / 2 later (whose slot came in
 * meanwhile). When adds come in a burst (dispatch adds a batch's ids in
 * one loop) an eviction then finds in the cache what it reads. */
enum { AHEAD = 16 };

static void prefetch_evictions(const sent_ids_t *s)
{
    if (s->count <= AHEAD) return;
    __builtin_prefetch(&s->tab[(size_t)hash_of(&s->ring[(s->head + AHEAD) % s->cap]) & s->tmask]);
    size_t i = slot_of_ring(s, (s->head + AHEAD / 2) % s->cap);
    for (size_t j = (i + 1) & s->tmask, n = 0; s->tab[j] && n < 4; j = (j + 1) & s->tmask, n++)
        __builtin_prefetch(&s->ring[ring_of(s, s->tab[j])]);
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
        prefetch_evictions(s);
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
    s->tab[slot] = entry_of(s, hash_of(k), r);
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
