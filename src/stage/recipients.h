/*
 * recipients.h - fan-out's cache of what it needs to know about a recipient:
 * whether the user exists, locale, the address on each channel, the
 * preferences, the time zone and the quiet hours. One cache per process, shared by the fan-out workers; each
 * worker reads it through its own recip_reader_t.
 *
 * Why: reading a user, its devices and its preferences from SQLite costs
 * two read transactions and three index probes per recipient (~20 us; ~6 us
 * even batched in one transaction), which alone would cap fan-out far below
 * the bus. A hit costs a hash, a compare and a copy of ~72 bytes (a user
 * with one device, e-mail and phone, packed: recipients.c).
 *
 * Bounded: at most `max_bytes` of entries (set-associative, 4 ways, CLOCK
 * replacement within a set); users with very large records are not cached.
 *
 * Exact within the process: before each batch a worker calls recip_sync(),
 * which drops the users the store's change feed (store.h) reports changed
 * through the API since its last call; and an entry read from the store is
 * cached only if no user changed while it was being read. Changes made by
 * another process sharing the store (split roles) are picked up within
 * `ttl_ms`: an entry older than that is read again.
 *
 * Threads: the cache may be shared by any number of threads (striped
 * locks); a reader belongs to one thread.
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
    /* What the dispatch policy needs (copied into the notification record
     * so that a dispatcher decides quiet hours without a store read). */
    const char *timezone;           /* IANA name; "" when unknown (read as UTC) */
    int16_t quiet_start_min;        /* minutes after local midnight, 0..1439, */
    int16_t quiet_end_min;          /* or both NOTIF_QUIET_NONE */
} recipient_t;

typedef struct recip_cache recip_cache_t;
typedef struct recip_reader recip_reader_t;

recip_cache_t *recip_cache_new(store_t *store, size_t max_bytes, int ttl_ms);
/* No reader may be left. */
void recip_cache_free(recip_cache_t *c);
/* Fills the cache from the store's users, in key order, until it is 95 %
 * full or every user is in (a sequential scan: ~1 s per million users).
 * Without it a cold cache reads each recipient's first notification from
 * the store one by one. *loaded: users read. Before any reader runs. */
hr_t recip_cache_prime(recip_cache_t *c, int64_t *loaded);

recip_reader_t *recip_reader_new(recip_cache_t *c);
void recip_reader_free(recip_reader_t *r);
/* Applies the store's change feed. Call before each batch. It also runs
 * the refresh when a step is due (a page of a key-order scan of the
 * users: the cached ones are read again, so that every cached user is
 * read within 3/4 of ttl_ms and the entries of a busy cache do not age
 * out; one reader at a time). */
void recip_sync(recip_reader_t *r);
/* Loads every id of ids that is not cached with one store read. */
hr_t recip_prefetch(recip_reader_t *r, const char *const *ids, int n);
/* The recipient for id, from the cache or (on a miss) from the store. The
 * pointer is valid until the next call with r. NULL with *err set when the
 * store failed. */
const recipient_t *recip_get(recip_reader_t *r, const char *id, hr_t *err);
/* The same with only the addresses of the channels in mask (1 << channel)
 * filled in; the others read as none (""), whatever the user has. Cheaper:
 * a push token is most of a recipient's bytes. */
const recipient_t *recip_get_for(recip_reader_t *r, const char *id, unsigned mask, hr_t *err);

typedef struct recip_stats {
    int64_t lookups;            /* recip_get() calls */
    int64_t loads;              /* users read from the store (prefetch or miss) */
    int64_t entries, bytes;
    int64_t refreshed;          /* entries read again by the refresh's scan */
} recip_stats_t;
/* The cache's entries and bytes, with the lookups and loads of every reader. */
void recip_cache_stats(recip_cache_t *c, recip_stats_t *out);

#endif
