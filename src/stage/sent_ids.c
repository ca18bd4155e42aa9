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
 * The ring keeps 8 bytes of each key, sent_key_hash (lo ^ hi x an odd
 * constant: two keys that differ in one half only never share it), and
 * the table entry's tag bits come from another mix of the whole key, so a
 * key is found only when those 64 bits and the tag's (9 with the default
 * bound) match: a different id is taken for a sent one with a chance of
 * about count / 2^73 per lookup (the id itself carries 80 bits of SHA-256
 * beside its time). With the whole 16-byte key in the ring an id took 24
 * bytes; 16 now (2 MiB ring + 2 MiB table for 262,144 ids, one huge page
 * each), for 8 dispatch workers 32 MB instead of 48 when full, and no
 * slower (has 60-62 / add 81-84 ns an id against 57-62 / 81-86, 8 full
 * sets, batches of 50, three runs each alternated).
 *
 * Cost and memory: the table (2 x 4 bytes an id, at most half full) is
 * probed at random, so each probe is a cache miss. An entry packs the
 * ring index (ibits bits: 19 for the default 262,144 ids), the entry's
 * displacement from its home slot (dbits = 4 bits: 0 to 14, 15 = "15 or
 * more") and the top 32 - ibits - dbits bits of the tag mix (9 bits
 * there), so a lookup of a new id reads the table only (the ring is read
 * when the tag matches: for an id that is there, or once in 512 probes of
 * another entry). The deletion of the oldest id finds its slot by ring
 * index (ring[head] is read in order: its low bits give the home); the
 * entries it shifts back know their homes from their displacements, so
 * an eviction reads the table's lines and no other id's key (with a
 * 13-bit tag and no displacement each entry shifted back read its key in
 * the ring, a random miss). With 8-byte entries (a 32-bit hash beside the
 * index) an id took 32 bytes instead of 24.
 *
 * Batches (sent_ids_has_keys, _add_keys): the table lines of a group of
 * keys, and before adds to a full set those of the ids they evict, are
 * read in a loop of plain loads first, so their misses overlap. Measured
 * in dispatch's pattern (50 new ids looked up, then added, to a full set
 * of 262,144, with 8 MB of other memory traffic between batches; thread
 * CPU time, means of three runs): has 65 -> 56 ns an id, add 138 -> 105
 * ns. Displacements alone, adds one by one, were slower (170 ns: the old
 * eviction's look-ahead read the table, which the new one only
 * prefetches), and __builtin_prefetch in place of the plain loads did no
 * better on that machine.
 */
#include "stage/sent_ids.h"

#include "core/bigmem.h"
#include "core/hex.h"

#include <stdlib.h>
#include <string.h>

bool sent_key_parse(hstr_t id, sent_key_t *k)
{
    if (id.n != 32 || !id.p) return false;
    bool a = hex16_value(id.p, &k->hi, true), b = hex16_value(id.p + 16, &k->lo, true);
    return a && b;
}

/* What the ring keeps of a key (sent_key_hash: 64 bits that differ
 * between any two keys differing in only one half); the table's home
 * slot is its low bits. */
static uint64_t hash_of(const sent_key_t *k) { return sent_key_hash(k); }

/* The entry's tag bits (the top 32 - ibits - dbits bits, in place) come
 * from another mix of the whole key, so that an id found compares 64 +
 * that many bits; they are set once, when the id is added, and moved
 * with the entry (a rebuild keeps them, grow). */
static uint32_t tag_of(const sent_ids_t *s, const sent_key_t *k)
{
    unsigned sh = s->ibits + s->dbits;
    uint64_t t = (k->hi ^ k->lo * 0xC2B2AE3D27D4EB4Full) * 0x94D049BB133111EBull;
    return (uint32_t)(t >> 32 >> sh) << sh;
}

/* The bits below the tag (displacement and ring index). */
static uint32_t low_mask(const sent_ids_t *s) { return (uint32_t)((UINT64_C(1) << (s->ibits + s->dbits)) - 1); }

static uint32_t imask_of(const sent_ids_t *s) { return (uint32_t)((UINT64_C(1) << s->ibits) - 1); }

/* The displacement code meaning "this many or more: the home is in the
 * ring" (0 when dbits is 0: always). */
static uint32_t dfar(const sent_ids_t *s) { return (uint32_t)((UINT64_C(1) << s->dbits) - 1); }

/* The ring index of a (full) table entry. */
static size_t ring_of(const sent_ids_t *s, uint32_t e) { return (size_t)(e & imask_of(s)) - 1; }

/* e with the displacement of slot i from home `home`. */
static uint32_t with_disp(const sent_ids_t *s, uint32_t e, size_t i, size_t home)
{
    size_t d = (i - home) & s->tmask;
    uint32_t code = d < dfar(s) ? (uint32_t)d : dfar(s);
    return (e & ~(dfar(s) << s->ibits)) | code << s->ibits;
}

/* The entry of the key k (tag) at ring index r, in table slot i. */
static uint32_t entry_of(const sent_ids_t *s, const sent_key_t *k, size_t r, size_t i)
{
    return with_disp(s, tag_of(s, k) | (uint32_t)(r + 1), i, (size_t)hash_of(k) & s->tmask);
}

/* The home slot of the entry e found at slot i: from its displacement, or
 * from its key when it is dfar or more from home. */
static size_t home_of_entry(const sent_ids_t *s, uint32_t e, size_t i)
{
    uint32_t d = (e >> s->ibits) & dfar(s);
    if (d < dfar(s)) return (i - d) & s->tmask;
    return (size_t)s->ring[ring_of(s, e)] & s->tmask;
}

/* The table slot holding k, or the empty slot where it would go. */
static size_t find_slot(const sent_ids_t *s, const sent_key_t *k)
{
    uint64_t h = hash_of(k);
    uint32_t tag = tag_of(s, k), imask = imask_of(s), lmask = low_mask(s);
    size_t i = (size_t)h & s->tmask;
    for (;;) {
        uint32_t e = s->tab[i];
        if (!e) return i;
        if ((e & ~lmask) == tag && s->ring[(e & imask) - 1] == h) return i;
        i = (i + 1) & s->tmask;
    }
}

/* The table slot of ring index r (which is in the table). */
static size_t slot_of_ring(const sent_ids_t *s, size_t r)
{
    size_t i = (size_t)s->ring[r] & s->tmask;
    uint32_t imask = imask_of(s);
    while ((s->tab[i] & imask) != (uint32_t)r + 1) i = (i + 1) & s->tmask;
    return i;
}

void sent_ids_init(sent_ids_t *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    /* an entry holds a ring index + 1 (up to 31 bits), a displacement
     * (up to 4 bits) and at least one tag bit */
    if (max > (size_t)1 << 30) max = (size_t)1 << 30;
    s->max = max;
    s->ibits = 1;
    while (((size_t)1 << s->ibits) <= max) s->ibits++; /* max + 1 values: none and 1 .. max */
    s->dbits = s->ibits <= 27 ? 4 : 31 - s->ibits;
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
 * evicted yet: the ids are ring[0, count)). The old table's entries are
 * moved with their tags, which the ring's keys cannot give again. */
static void grow(sent_ids_t *s, size_t new_cap)
{
    size_t map;
    uint64_t *ring = bigmem_alloc(new_cap * sizeof(*s->ring), &map);
    if (s->count) memcpy(ring, s->ring, s->count * sizeof(*s->ring));
    bigmem_free(s->ring, s->ring_map);
    s->ring = ring;
    s->ring_map = map;
    s->cap = new_cap;
    size_t tsize = 16;
    while (tsize < 2 * new_cap) tsize *= 2;
    uint32_t *old = s->tab;
    size_t old_map = s->tab_map, old_len = old ? s->tmask + 1 : 0;
    s->tab = bigmem_alloc(tsize * sizeof(*s->tab), &s->tab_map);
    s->tmask = tsize - 1;
    for (size_t j = 0; j < old_len; j++) {
        if (!old[j]) continue;
        size_t home = (size_t)s->ring[ring_of(s, old[j])] & s->tmask, i = home;
        while (s->tab[i]) i = (i + 1) & s->tmask;
        s->tab[i] = with_disp(s, old[j], i, home);
    }
    bigmem_free(old, old_map);
}

/* Removes the table entry at slot i, shifting later entries of the probe
 * run back so that lookups still find them. */
static void tab_delete(sent_ids_t *s, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->tmask;
        if (!s->tab[j]) break;
        size_t k = home_of_entry(s, s->tab[j], j);
        /* the entry at j may move to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->tab[i] = with_disp(s, s->tab[j], i, k);
            i = j;
        }
    }
    s->tab[i] = 0;
}

/* Evictions go in ring order, so the next ones are known: each one fetches
 * the table slot of the id evicted AHEAD evictions later. When adds come
 * in a burst an eviction then finds in the cache what it reads. */
enum { AHEAD = 16 };

/* The table slot of the id evicted AHEAD evictions later, for a prefetch
 * (issued by the caller: GCC drops the calls of a helper whose only effect
 * is a __builtin_prefetch, as it did here before). */
static const uint32_t *eviction_ahead(const sent_ids_t *s)
{
    return &s->tab[(size_t)s->ring[(s->head + AHEAD) % s->cap] & s->tmask];
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
        if (s->count > AHEAD) __builtin_prefetch(eviction_ahead(s));
        tab_delete(s, slot_of_ring(s, r));
        s->head = (s->head + 1) % s->cap;
        s->count--;
        s->evicted = true;
        slot = find_slot(s, k); /* the deletion may have moved the run */
    } else {
        r = (s->head + s->count) % s->cap;
    }
    s->ring[r] = hash_of(k);
    s->count++;
    s->tab[slot] = entry_of(s, k, r, slot);
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

/* Keys looked up or added together (sent_ids_has_keys, _add_keys): a
 * group's misses overlap. */
enum { GROUP = 16 };

/* Reads the table slot of hash h, for its cache line: a group's reads in
 * a loop without branches on what they read overlap their misses. (A
 * __builtin_prefetch in its place helped less: on the machine measured a
 * probe after it still missed often.) */
static inline void touch_slot(const sent_ids_t *s, uint64_t h)
{
    uint32_t e = s->tab[(size_t)h & s->tmask];
    __asm__ volatile("" : : "r"(e)); /* the read happens; its value is not used */
}

void sent_ids_has_keys(const sent_ids_t *s, const sent_key_t *keys, size_t n, bool *found)
{
    if (s->count == 0) {
        for (size_t i = 0; i < n; i++) found[i] = false;
        return;
    }
    for (size_t at = 0; at < n; at += GROUP) {
        size_t m = n - at < GROUP ? n - at : GROUP;
        for (size_t j = 0; j < m; j++) touch_slot(s, hash_of(&keys[at + j]));
        for (size_t j = 0; j < m; j++) found[at + j] = s->tab[find_slot(s, &keys[at + j])] != 0;
    }
}

/* Before m adds to a full set: the slots of the m oldest ids, which those
 * adds evict when the keys are new. */
static void prefetch_group_evictions(const sent_ids_t *s, size_t m)
{
    if (m > s->count) m = s->count;
    for (size_t j = 0; j < m; j++) touch_slot(s, s->ring[(s->head + j) % s->cap]);
}

void sent_ids_add_keys(sent_ids_t *s, const sent_key_t *keys, size_t n)
{
    if (s->max == 0) return;
    for (size_t at = 0; at < n; at += GROUP) {
        size_t m = n - at < GROUP ? n - at : GROUP;
        if (s->tab) {
            for (size_t j = 0; j < m; j++) touch_slot(s, hash_of(&keys[at + j]));
            if (s->count == s->cap && s->cap == s->max) prefetch_group_evictions(s, m);
        }
        for (size_t j = 0; j < m; j++) sent_ids_add_key(s, &keys[at + j]);
    }
}
