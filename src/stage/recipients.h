/*
 * recipients.h - fan-out's cache of what it needs to know about a recipient:
 * whether the user exists, locale, the address on each channel, and the
 * preferences. One cache per fan-out worker; not shared between threads.
 *
 * Why: reading a user, its devices and its preferences from SQLite costs
 * two read transactions and three index probes per recipient (~20 us; ~6 us
 * even batched in one transaction), which alone would cap fan-out far below
 * the bus. A hit costs a hash and a compare.
 *
 * Bounded: at most `max_bytes` of entries (set-associative, 4 ways, CLOCK
 * replacement within a set); users with very large records are not cached.
 *
 * Exact within the process: before each batch recip_cache_sync() reads the
 * store's change feed (store.h) and drops the users changed through the API
 * since. Changes made by another process sharing the store (split roles)
 * are picked up within `ttl_ms`: an entry older than that is read again.
 */
#ifndef HERALD_RECIPIENTS_H
#define HERALD_RECIPIENTS_H

#include "store/store.h"

typedef struct recipient {
    const char *user_id;
    bool known;                     /* false: no such user */
    const char *locale;             /* "en" when unset */
    const char *addr[CH__COUNT];    /* "" when the user has none on that channel */
    size_t addr_len[CH__COUNT];
    const char *platform;           /* first push device's platform, "" when none */
    const pref_t *prefs;
    int nprefs;
} recipient_t;

typedef struct recip_cache recip_cache_t;

recip_cache_t *recip_cache_new(store_t *store, size_t max_bytes, int ttl_ms);
void recip_cache_free(recip_cache_t *c);
/* Fills the cache from the store's users, in key order, until it is 95 %
 * full or every user is in (a sequential scan: ~1 s per million users).
 * Without it a cold cache reads each recipient's first notification from
 * the store one by one. *loaded: users read. */
hr_t recip_cache_prime(recip_cache_t *c, int64_t *loaded);
/* Applies the store's change feed. Call before each batch. */
void recip_cache_sync(recip_cache_t *c);
/* Loads every id of ids that is not cached with one store read. */
hr_t recip_cache_prefetch(recip_cache_t *c, const char *const *ids, int n);
/* The recipient for id, from the cache or (on a miss) from the store. The
 * pointer is valid until the next call on c. NULL with *err set when the
 * store failed. */
const recipient_t *recip_cache_get(recip_cache_t *c, const char *id, hr_t *err);

typedef struct recip_stats {
    int64_t lookups;            /* recip_cache_get() calls */
    int64_t loads;              /* users read from the store (prefetch or miss) */
    int64_t entries, bytes;
} recip_stats_t;
void recip_cache_stats(const recip_cache_t *c, recip_stats_t *out);

#endif
