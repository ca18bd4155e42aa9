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
 */
#include "stage/sent_ids.h"

#include "core/text.h"

#include <stdlib.h>
#include <string.h>

static bool key_of(hstr_t id, sent_key_t *k)
{
    if (id.n != 32 || !id.p) return false;
    uint64_t v[2] = {0, 0};
    for (size_t i = 0; i < 32; i++) {
        int h = hex_value((unsigned char)id.p[i]);
        if (h < 0) return false;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)h;
    }
    k->hi = v[0];
    k->lo = v[1];
    return true;
}

static size_t home(const sent_ids_t *s, const sent_key_t *k)
{
    return (size_t)((k->lo ^ (k->hi * 0x9E3779B97F4A7C15ull)) & s->tmask);
}

static bool key_eq(const sent_key_t *a, const sent_key_t *b) { return a->hi == b->hi && a->lo == b->lo; }

/* The table slot holding k, or the empty slot where it would go. */
static size_t find_slot(const sent_ids_t *s, const sent_key_t *k)
{
    size_t i = home(s, k);
    while (s->tab[i] && !key_eq(&s->ring[s->tab[i] - 1], k)) i = (i + 1) & s->tmask;
    return i;
}

void sent_ids_init(sent_ids_t *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    if (max > UINT32_MAX - 1) max = UINT32_MAX - 1;
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
    if (s->tab) memset(s->tab, 0, (s->tmask + 1) * sizeof(*s->tab));
    s->head = s->count = 0;
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
    for (size_t r = 0; r < s->count; r++) s->tab[find_slot(s, &s->ring[r])] = (uint32_t)r + 1;
}

/* Removes the table entry at slot i, shifting later entries of the probe
 * run back so that lookups still find them. */
static void tab_delete(sent_ids_t *s, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->tmask;
        if (!s->tab[j]) break;
        size_t k = home(s, &s->ring[s->tab[j] - 1]);
        /* the entry at j may move to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i] = 0;
}

bool sent_ids_add(sent_ids_t *s, hstr_t id)
{
    sent_key_t k;
    if (s->max == 0 || !key_of(id, &k)) return false;
    if (s->count && s->tab[find_slot(s, &k)]) return true;
    if (s->count == s->cap && s->cap < s->max) {
        size_t c = s->cap ? s->cap * 2 : 1024;
        grow(s, c < s->max ? c : s->max);
    }
    size_t r;
    if (s->count == s->cap) { /* full: the oldest id goes */
        r = s->head;
        tab_delete(s, find_slot(s, &s->ring[r]));
        s->head = (s->head + 1) % s->cap;
        s->count--;
    } else {
        r = (s->head + s->count) % s->cap;
    }
    s->ring[r] = k;
    s->count++;
    s->tab[find_slot(s, &k)] = (uint32_t)r + 1;
    return true;
}

bool sent_ids_has(const sent_ids_t *s, hstr_t id)
{
    sent_key_t k;
    if (s->count == 0 || !key_of(id, &k)) return false;
    return s->tab[find_slot(s, &k)] != 0;
}
