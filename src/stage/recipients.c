/*
 * recipients.c - fan-out's recipient cache (see recipients.h).
 *
 * An entry is one block in a compact form - a small header with the string
 * lengths, then the strings and the preferences packed behind it - ~140
 * bytes for a user with an e-mail address, a phone number and one device,
 * kept in a slab of 144-byte slots. The
 * table is an array of sets of WAYS tagged entry pointers; the set is chosen
 * by the low bits of the id's 32-bit hash, and each pointer carries the high
 * 16 bits of that hash in its unused top bits (user-space addresses fit in
 * 48 bits), so a set is 32 bytes (two per cache line) and a lookup reads an
 * entry only when its tag matches. Sets are guarded by NSTRIPES mutexes
 * (set % NSTRIPES). A reader copies a hit out under the lock and unpacks its
 * copy, so entries can be replaced by other threads at any time.
 *
 * One lookup per recipient: recip_prefetch() copies every id's entry (a hit,
 * or what it read from the store) into the reader's own arena, in order;
 * recip_get() then takes the next recorded entry instead of looking the id
 * up again. The slab and the set array are mapped with MADV_HUGEPAGE: with
 * 4 KiB pages nearly every lookup of a large cache missed the TLB (measured:
 * find() fell from 17.6 % to 4.1 % of fan-out's samples with huge pages).
 *
 * Time zones are interned: an entry holds a 16-bit id into the cache's
 * zone table (a few hundred IANA names are in use; the table holds up to
 * ZONES_MAX and never forgets one), and quiet hours are two int16 minutes
 * of the day - 6 bytes per user instead of a string each.
 */
#include "stage/recipients.h"

#include "core/hash.h"
#include "core/log.h"
#include "model/validate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define WAYS 4
#define NSTRIPES 256
#define EST_ENTRY_BYTES 144     /* sizing guess per entry (a slab slot) */
#define MAX_ENTRY_BYTES 2048    /* larger users are not cached (read on every use) */
#define PREFETCH_CHUNK 512
#define ZONES_MAX 4096          /* distinct time zone names a cache interns */
#define ZONE_HASH 8192          /* open-addressing slots (power of two, > 2 * ZONES_MAX) */

/* The strings of an entry, in order. */
enum { S_ID, S_LOCALE, S_PUSH, S_SMS, S_EMAIL, S_HOOK, S_PLATFORM, S__N };

typedef struct __attribute__((packed)) rentry {
    uint32_t hash;              /* low bits pick the set; all 32 filter compares */
    int32_t loaded_s;           /* seconds since the cache was made */
    uint32_t push_len;          /* up to 16 devices of 4 KB tokens */
    uint16_t len[S__N];         /* the other string lengths */
    uint16_t nprefs;
    uint16_t zone;              /* time zone: index in the cache's zone table; 0 = unknown */
    int16_t quiet_start;        /* quiet hours (minutes of the day) or NOTIF_QUIET_NONE */
    int16_t quiet_end;
    bool known;
    bool used;                  /* CLOCK reference bit */
    /* then: the strings (id, locale and platform NUL-terminated, the
     * addresses not); then per preference: u8 channel, u8 enabled, u8
     * category length, category, NUL */
    char data[];
} rentry_t;

/* Is string i stored with a NUL? (addresses are used with their lengths) */
static bool has_nul(int i) { return i == S_ID || i == S_LOCALE || i == S_PLATFORM; }

struct recip_cache {
    store_t *store;
    size_t max_bytes;
    int ttl_s;
    int64_t born_ms;
    uint64_t *slots;            /* nsets * WAYS tagged pointers (slot_make) */
    size_t slots_len;           /* bytes mapped for slots */
    size_t nsets;
    pthread_mutex_t stripes[NSTRIPES];
    /* Entries of up to SLAB_SLOT bytes (nearly all) live in one anonymous
     * mapping of fixed slots, reused through a free list: the cache churns
     * constantly, and through malloc the freed and new entries of different
     * threads fragment the heap until RSS is well above the budget. */
    pthread_mutex_t slab_mu;
    char *slab;
    size_t slab_len;            /* bytes mapped (untouched pages cost nothing) */
    uint32_t slab_slots, slab_next;
    uint32_t *slab_free;        /* stack of free slot numbers */
    uint32_t slab_nfree;
    /* Interned time zone names: zone_names[id] for id 1..nzones (0 is "",
     * unknown). A name is published before any entry carrying its id is
     * built, and never changes or goes away while the cache lives. */
    pthread_mutex_t zone_mu;
    _Atomic(char *) zone_names[ZONES_MAX];
    uint16_t zone_hash[ZONE_HASH]; /* ids by name hash; 0 = empty slot */
    int nzones;
    bool zones_full_logged;
    _Atomic int64_t bytes;
    _Atomic int64_t entries;
    _Atomic int64_t lookups, loads;
};

/* What one recip_prefetch() recorded: per id, in order, the offset of its
 * entry in arena (copied out of the cache or built from the store). */
typedef struct recip_list {
    const char **ids;           /* the caller's ids (borrowed until the next prefetch) */
    uint32_t *off;              /* offset of each id's entry in arena */
    int n, cap, next;           /* next: where recip_get() looks first */
    char *arena;
    size_t len, arena_cap;
} recip_list_t;

/* Prefetches may nest once (fan-out: the batch's explicit recipients, and
 * inside it an audience page), so a reader keeps the last two lists. */
#define RECIP_LISTS 2

struct recip_reader {
    recip_cache_t *c;
    uint64_t epoch;
    recip_list_t lists[RECIP_LISTS];
    int cur;                    /* the list the last prefetch filled */
    rentry_t *copy;             /* the last hit not recorded by a prefetch, copied out */
    size_t copy_cap;
    rentry_t *own;              /* an entry that was not cached */
    recipient_t view;
    pref_t *prefs;
    int cprefs;
    int64_t lookups, loads;     /* not yet added to the cache's */
};

#define SLAB_SLOT 144           /* an entry with one device, e-mail and phone: ~140 */

/* glibc's chunk for an n-byte request */
static size_t malloc_cost(size_t n) { return n + 8 <= 32 ? 32 : (n + 8 + 15) & ~(size_t)15; }

static bool in_slab(const recip_cache_t *c, const void *p)
{
    return c->slab && (const char *)p >= c->slab && (const char *)p < c->slab + c->slab_len;
}

/* Memory an entry of n bytes takes in the cache. */
static size_t cost_of(size_t n) { return n <= SLAB_SLOT ? SLAB_SLOT : malloc_cost(n); }

/* Anonymous memory of len bytes (rounded up to 2 MiB), aligned to 2 MiB and
 * advised for transparent huge pages; untouched pages cost nothing. NULL
 * when the mapping failed. */
#define HUGE_PAGE ((size_t)2 << 20)
static void *big_map(size_t *len)
{
    size_t want = (*len + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    char *m = mmap(NULL, want + HUGE_PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    size_t tail = (size_t)(m + want + HUGE_PAGE - (a + want));
    if (tail) munmap(a + want, tail);
#ifdef MADV_HUGEPAGE
    (void)madvise(a, want, MADV_HUGEPAGE); /* advice only: THP may be off */
#endif
    *len = want;
    return a;
}

/* A set slot: the entry's address with the high 16 bits of its hash on
 * top (0 = empty). */
#define SLOT_PTR_MASK ((UINT64_C(1) << 48) - 1)
static uint64_t slot_make(const rentry_t *e, uint32_t h) { return (uint64_t)(uintptr_t)e | ((uint64_t)(h >> 16) << 48); }
static rentry_t *slot_entry(uint64_t v) { return (rentry_t *)(uintptr_t)(v & SLOT_PTR_MASK); }
static bool slot_tag_is(uint64_t v, uint32_t h) { return v && (uint16_t)(v >> 48) == (uint16_t)(h >> 16); }

/* Storage for an n-byte entry; NULL when the slab is full. */
static void *store_alloc(recip_cache_t *c, size_t n)
{
    if (n > SLAB_SLOT || !c->slab) return xmalloc(n);
    void *p = NULL;
    pthread_mutex_lock(&c->slab_mu);
    if (c->slab_nfree) p = c->slab + (size_t)c->slab_free[--c->slab_nfree] * SLAB_SLOT;
    else if (c->slab_next < c->slab_slots) p = c->slab + (size_t)c->slab_next++ * SLAB_SLOT;
    pthread_mutex_unlock(&c->slab_mu);
    return p;
}

static void store_free(recip_cache_t *c, void *p)
{
    if (!in_slab(c, p)) {
        free(p);
        return;
    }
    pthread_mutex_lock(&c->slab_mu);
    c->slab_free[c->slab_nfree++] = (uint32_t)(((char *)p - c->slab) / SLAB_SLOT);
    pthread_mutex_unlock(&c->slab_mu);
}

static uint32_t id_hash(const char *id, size_t n) { return (uint32_t)fnv1a64(id, n); }

/* The id of time zone name (NULL or "" = 0, unknown), interning it when
 * new. When the table is full a new name reads as unknown (UTC), logged
 * once: the API admits only real IANA zones, so that takes thousands of
 * distinct names written around it. */
static uint16_t zone_intern(recip_cache_t *c, const char *name)
{
    if (!name || !name[0]) return 0;
    size_t n = strlen(name);
    uint32_t h = id_hash(name, n);
    uint16_t id = 0;
    pthread_mutex_lock(&c->zone_mu);
    for (uint32_t i = h & (ZONE_HASH - 1);; i = (i + 1) & (ZONE_HASH - 1)) {
        uint16_t z = c->zone_hash[i];
        if (z == 0) {
            if (c->nzones + 1 >= ZONES_MAX) {
                if (!c->zones_full_logged)
                    log_warn("fanout", "more than %d time zone names in use; '%s' and later new "
                             "ones are read as UTC", ZONES_MAX - 1, name);
                c->zones_full_logged = true;
                break;
            }
            id = (uint16_t)++c->nzones;
            atomic_store_explicit(&c->zone_names[id], xstrdup(name), memory_order_release);
            c->zone_hash[i] = id;
            break;
        }
        if (strcmp(atomic_load_explicit(&c->zone_names[z], memory_order_relaxed), name) == 0) {
            id = z;
            break;
        }
    }
    pthread_mutex_unlock(&c->zone_mu);
    return id;
}

static const char *zone_name(recip_cache_t *c, uint16_t id)
{
    if (id == 0 || id >= ZONES_MAX) return "";
    const char *s = atomic_load_explicit(&c->zone_names[id], memory_order_acquire);
    return s ? s : "";
}

/* Quiet hours from the user's "HH:MM" pair: both valid, or none. */
static void quiet_of(const user_t *u, int16_t *start, int16_t *end)
{
    int a, b;
    if (u->quiet_start && u->quiet_end && valid_hhmm(u->quiet_start, &a) && valid_hhmm(u->quiet_end, &b)) {
        *start = (int16_t)a;
        *end = (int16_t)b;
    } else {
        *start = *end = NOTIF_QUIET_NONE;
    }
}

recip_cache_t *recip_cache_new(store_t *store, size_t max_bytes, int ttl_ms)
{
    recip_cache_t *c = xcalloc(1, sizeof(*c));
    c->store = store;
    c->max_bytes = max_bytes;
    c->ttl_s = ttl_ms > 0 ? (ttl_ms + 999) / 1000 : 0;
    c->born_ms = hclock_now_ms();
    size_t want = max_bytes / ((EST_ENTRY_BYTES + sizeof(void *)) * WAYS);
    c->nsets = NSTRIPES;
    while (c->nsets < want) c->nsets *= 2; /* the byte budget is what binds */
    c->slots_len = c->nsets * WAYS * sizeof(*c->slots);
    c->slots = big_map(&c->slots_len);
    if (!c->slots) { /* no mapping: the heap, without huge pages */
        c->slots = xcalloc(c->nsets * WAYS, sizeof(*c->slots));
        c->slots_len = 0;
    }
    atomic_store(&c->bytes, (int64_t)(c->nsets * WAYS * sizeof(*c->slots)));
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_init(&c->stripes[i], NULL);
    pthread_mutex_init(&c->slab_mu, NULL);
    pthread_mutex_init(&c->zone_mu, NULL);
    size_t nslots = max_bytes / SLAB_SLOT;
    if (nslots > UINT32_MAX) nslots = UINT32_MAX;
    if (nslots > 0) {
        size_t len = nslots * SLAB_SLOT;
        void *m = big_map(&len);
        if (m) {
            c->slab = m;
            c->slab_len = len;
            c->slab_slots = (uint32_t)nslots;
            c->slab_free = xmalloc(nslots * sizeof(*c->slab_free));
        }
    }
    return c;
}

static size_t slen(const rentry_t *e, int i) { return i == S_PUSH ? e->push_len : e->len[i]; }

static size_t entry_size(const rentry_t *e)
{
    size_t n = sizeof(*e);
    for (int i = 0; i < S__N; i++) n += slen(e, i) + has_nul(i);
    const unsigned char *p = (const unsigned char *)e + n;
    for (int i = 0; i < e->nprefs; i++) {
        size_t step = 3 + (size_t)p[2] + 1;
        n += step;
        p += step;
    }
    return n;
}

/* stripe lock held */
static void entry_drop(recip_cache_t *c, uint64_t *slot)
{
    if (!*slot) return;
    rentry_t *e = slot_entry(*slot);
    atomic_fetch_sub(&c->bytes, (int64_t)cost_of(entry_size(e)));
    atomic_fetch_sub(&c->entries, 1);
    store_free(c, e);
    *slot = 0;
}

static size_t set_of(const recip_cache_t *c, uint32_t h) { return h & (c->nsets - 1); }
static pthread_mutex_t *stripe(recip_cache_t *c, size_t set) { return &c->stripes[set % NSTRIPES]; }

/* stripe lock held */
static uint64_t *find(recip_cache_t *c, const char *id, size_t idl, uint32_t h)
{
    uint64_t *set = &c->slots[set_of(c, h) * WAYS];
    for (int w = 0; w < WAYS; w++) {
        if (!slot_tag_is(set[w], h)) continue;
        const rentry_t *e = slot_entry(set[w]);
        if (e->hash == h && e->len[S_ID] == idl && memcmp(e->data, id, idl) == 0) return &set[w];
    }
    return NULL;
}

void recip_cache_free(recip_cache_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nsets * WAYS; i++)
        if (c->slots[i] && !in_slab(c, slot_entry(c->slots[i]))) free(slot_entry(c->slots[i]));
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_destroy(&c->stripes[i]);
    pthread_mutex_destroy(&c->slab_mu);
    for (int i = 1; i <= c->nzones; i++) free(atomic_load(&c->zone_names[i]));
    pthread_mutex_destroy(&c->zone_mu);
    if (c->slab) munmap(c->slab, c->slab_len);
    free(c->slab_free);
    if (c->slots_len) munmap(c->slots, c->slots_len);
    else free(c->slots);
    free(c);
}

static void drop_id(void *arg, const char *id)
{
    recip_cache_t *c = arg;
    size_t idl = strlen(id);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e) entry_drop(c, e);
    pthread_mutex_unlock(mu);
}

static void drop_all(recip_cache_t *c)
{
    for (size_t s = 0; s < c->nsets; s++) {
        pthread_mutex_t *mu = stripe(c, s);
        pthread_mutex_lock(mu);
        for (int w = 0; w < WAYS; w++) entry_drop(c, &c->slots[s * WAYS + w]);
        pthread_mutex_unlock(mu);
    }
}

/* Builds an entry from what the store returned (u and prefs are borrowed).
 * The API's limits (ids, emails, URLs, 128-byte categories) keep every
 * length within the header's fields. */
static rentry_t *entry_build(recip_cache_t *c, const char *id, bool known, const user_t *u,
                             const pref_t *prefs, int np)
{
    const char *str[S__N] = {
        [S_ID] = id,
        [S_LOCALE] = known && u->locale && u->locale[0] ? u->locale : "en",
        [S_PUSH] = "",
        [S_SMS] = known && u->phone ? u->phone : "",
        [S_EMAIL] = known && u->email ? u->email : "",
        [S_HOOK] = known && u->webhook_url ? u->webhook_url : "",
        [S_PLATFORM] = known && u->ndevices ? u->devices[0].platform : "",
    };
    size_t len[S__N];
    size_t n = sizeof(rentry_t);
    for (int i = 0; i < S__N; i++) {
        len[i] = strlen(str[i]);
        if (i == S_PUSH && known) /* every device as platform:token, comma separated */
            for (int d = 0; d < u->ndevices; d++)
                len[i] += (d ? 1 : 0) + strlen(u->devices[d].platform) + 1 + strlen(u->devices[d].token);
        if (i != S_PUSH && len[i] > UINT16_MAX) len[i] = UINT16_MAX; /* beyond any API limit */
        n += len[i] + has_nul(i);
    }
    if (np > UINT16_MAX) np = UINT16_MAX;
    for (int i = 0; i < np; i++) {
        size_t cl = strlen(prefs[i].category ? prefs[i].category : "");
        n += 3 + (cl > 255 ? 255 : cl) + 1;
    }
    rentry_t *e = xmalloc(n);
    memset(e, 0, sizeof(*e));
    e->hash = id_hash(id, len[S_ID]);
    e->known = known;
    e->nprefs = (uint16_t)np;
    e->zone = known ? zone_intern(c, u->timezone) : 0;
    int16_t qs = NOTIF_QUIET_NONE, qe = NOTIF_QUIET_NONE;
    if (known) quiet_of(u, &qs, &qe);
    e->quiet_start = qs;
    e->quiet_end = qe;
    e->push_len = (uint32_t)len[S_PUSH];
    char *p = e->data;
    for (int i = 0; i < S__N; i++) {
        if (i != S_PUSH) e->len[i] = (uint16_t)len[i];
        if (i == S_PUSH && known) {
            char *q = p;
            for (int d = 0; d < u->ndevices; d++) {
                if (d) *q++ = ',';
                size_t pl = strlen(u->devices[d].platform), tl = strlen(u->devices[d].token);
                memcpy(q, u->devices[d].platform, pl);
                q += pl;
                *q++ = ':';
                memcpy(q, u->devices[d].token, tl);
                q += tl;
            }
        } else if (len[i]) {
            memcpy(p, str[i], len[i]);
        }
        if (has_nul(i)) p[len[i]] = '\0';
        p += len[i] + has_nul(i);
    }
    for (int i = 0; i < np; i++) {
        const char *cat = prefs[i].category ? prefs[i].category : "";
        size_t cl = strlen(cat);
        if (cl > 255) cl = 255;
        *p++ = (char)prefs[i].channel;
        *p++ = (char)(prefs[i].enabled ? 1 : 0);
        *p++ = (char)cl;
        memcpy(p, cat, cl);
        p[cl] = '\0';
        p += cl + 1;
    }
    return e;
}

/* Unpacks e (the reader's own memory) into the reader's view. */
static const recipient_t *view_of(recip_reader_t *rd, const rentry_t *e)
{
    recipient_t *r = &rd->view;
    const char *s[S__N];
    const char *p = e->data;
    for (int i = 0; i < S__N; i++) {
        s[i] = p;
        p += slen(e, i) + has_nul(i);
    }
    r->user_id = s[S_ID];
    r->known = e->known;
    r->locale = s[S_LOCALE];
    r->addr[CH_PUSH] = s[S_PUSH];
    r->addr_len[CH_PUSH] = e->push_len;
    r->addr[CH_SMS] = s[S_SMS];
    r->addr_len[CH_SMS] = e->len[S_SMS];
    r->addr[CH_EMAIL] = s[S_EMAIL];
    r->addr_len[CH_EMAIL] = e->len[S_EMAIL];
    r->addr[CH_INAPP] = e->known ? s[S_ID] : "";
    r->addr_len[CH_INAPP] = e->known ? e->len[S_ID] : 0;
    r->addr[CH_WEBHOOK] = s[S_HOOK];
    r->addr_len[CH_WEBHOOK] = e->len[S_HOOK];
    r->platform = s[S_PLATFORM];
    if (e->nprefs > rd->cprefs) {
        rd->cprefs = e->nprefs;
        rd->prefs = xrealloc(rd->prefs, (size_t)rd->cprefs * sizeof(*rd->prefs));
    }
    const unsigned char *q = (const unsigned char *)p;
    for (int i = 0; i < e->nprefs; i++) {
        rd->prefs[i].channel = (channel_t)q[0];
        rd->prefs[i].enabled = q[1] != 0;
        rd->prefs[i].category = (char *)(q + 3);
        q += 3 + q[2] + 1;
    }
    r->prefs = e->nprefs ? rd->prefs : NULL;
    r->nprefs = e->nprefs;
    r->timezone = zone_name(rd->c, e->zone);
    r->quiet_start_min = e->quiet_start;
    r->quiet_end_min = e->quiet_end;
    return r;
}

static int32_t age_now(const recip_cache_t *c) { return (int32_t)((hclock_now_ms() - c->born_ms) / 1000); }

static bool fresh(const recip_cache_t *c, const rentry_t *e, int32_t now_s)
{
    return c->ttl_s <= 0 || now_s - e->loaded_s < c->ttl_s;
}

/* Puts a copy of e in the cache; false when it should not be cached. The
 * caller keeps e. */
static bool insert(recip_cache_t *c, rentry_t *e, int32_t now_s)
{
    size_t size = entry_size(e), cost = cost_of(size);
    if (cost > MAX_ENTRY_BYTES) return false;
    e->loaded_s = now_s;
    e->used = false;
    size_t s = set_of(c, e->hash);
    pthread_mutex_t *mu = stripe(c, s);
    pthread_mutex_lock(mu);
    uint64_t *old = find(c, e->data, e->len[S_ID], e->hash);
    if (old) entry_drop(c, old);
    uint64_t *set = &c->slots[s * WAYS];
    int victim = -1;
    for (int w = 0; w < WAYS && victim < 0; w++)
        if (!set[w]) victim = w;
    /* CLOCK within the set: the first way not used since the last sweep */
    for (int pass = 0; pass < 2 && victim < 0; pass++)
        for (int w = 0; w < WAYS && victim < 0; w++) {
            rentry_t *x = slot_entry(set[w]);
            if (!x->used) victim = w;
            else x->used = false;
        }
    if (victim < 0) victim = 0;
    int64_t freed = set[victim] ? (int64_t)cost_of(entry_size(slot_entry(set[victim]))) : 0;
    bool ok = atomic_load(&c->bytes) - freed + (int64_t)cost <= (int64_t)c->max_bytes;
    if (ok) {
        entry_drop(c, &set[victim]);
        rentry_t *copy = store_alloc(c, size);
        ok = copy != NULL;
        if (ok) {
            memcpy(copy, e, size);
            set[victim] = slot_make(copy, e->hash);
            atomic_fetch_add(&c->bytes, (int64_t)cost);
            atomic_fetch_add(&c->entries, 1);
        }
    }
    pthread_mutex_unlock(mu);
    return ok;
}

#define OFF_NONE UINT32_MAX     /* nothing recorded for this id */

/* Appends a copy of entry e (size bytes) to list l; its offset. */
static uint32_t list_put(recip_list_t *l, const rentry_t *e, size_t size)
{
    if (l->len + size > l->arena_cap) {
        l->arena_cap = l->arena_cap ? l->arena_cap * 2 : 64 * 1024;
        while (l->len + size > l->arena_cap) l->arena_cap *= 2;
        l->arena = xrealloc(l->arena, l->arena_cap);
    }
    uint32_t off = (uint32_t)l->len;
    memcpy(l->arena + l->len, e, size);
    l->len += size;
    return off;
}

/* Reads ids from the store and caches them. With l, each entry is also
 * recorded in l at position at[i]; with last, the entry of the last id is
 * left in the reader's own memory (a copy when it was cached) in *last. */
static hr_t load(recip_reader_t *rd, const char *const *ids, int n, recip_list_t *l, const int *at,
                 const rentry_t **last)
{
    recip_cache_t *c = rd->c;
    user_t *u = xcalloc((size_t)n, sizeof(*u));
    hr_t *found = xcalloc((size_t)n, sizeof(*found));
    pref_t **prefs = xcalloc((size_t)n, sizeof(*prefs));
    int *np = xcalloc((size_t)n, sizeof(*np));
    /* cache only what no concurrent change can have made stale */
    uint64_t e0 = store_users_epoch(c->store);
    hr_t r = store_users_get_batch(c->store, ids, n, u, found, prefs, np);
    bool cacheable = store_users_epoch(c->store) == e0;
    rd->loads += n;
    int32_t now_s = age_now(c);
    for (int i = 0; i < n && r == HR_OK; i++) {
        bool known = found[i] == HR_OK;
        rentry_t *e = entry_build(c, ids[i], known, &u[i], prefs[i], np[i]);
        if (cacheable) insert(c, e, now_s);
        if (l) l->off[at[i]] = list_put(l, e, entry_size(e));
        if (last && i == n - 1) { /* the caller reads this one */
            free(rd->own);
            rd->own = e;
            *last = e;
        } else {
            free(e);
        }
        if (known) {
            user_clear(&u[i]);
            prefs_free(prefs[i], np[i]);
        }
    }
    free(u);
    free(found);
    free(prefs);
    free(np);
    return r;
}

hr_t recip_cache_prime(recip_cache_t *c, int64_t *loaded)
{
    enum { PAGE = 1000 };
    user_t *u = xcalloc(PAGE, sizeof(*u));
    pref_t **prefs = xcalloc(PAGE, sizeof(*prefs));
    int *np = xcalloc(PAGE, sizeof(*np));
    char *after = NULL;
    hr_t r = HR_OK;
    *loaded = 0;
    int32_t now_s = age_now(c);
    while (atomic_load(&c->bytes) < (int64_t)(c->max_bytes / 100 * 95)) {
        int n = 0;
        r = store_users_scan(c->store, after, PAGE, u, prefs, np, &n);
        if (r != HR_OK) break;
        for (int i = 0; i < n; i++) {
            rentry_t *e = entry_build(c, u[i].user_id, true, &u[i], prefs[i], np[i]);
            insert(c, e, now_s);
            free(e);
        }
        *loaded += n;
        free(after);
        after = n ? xstrdup(u[n - 1].user_id) : NULL;
        for (int i = 0; i < n; i++) {
            user_clear(&u[i]);
            prefs_free(prefs[i], np[i]);
        }
        if (n < PAGE) break;
    }
    free(after);
    free(u);
    free(prefs);
    free(np);
    return r == HR_DECLINED ? HR_OK : r;
}

recip_reader_t *recip_reader_new(recip_cache_t *c)
{
    recip_reader_t *rd = xcalloc(1, sizeof(*rd));
    rd->c = c;
    rd->epoch = store_users_epoch(c->store);
    return rd;
}

static void flush_counts(recip_reader_t *rd)
{
    atomic_fetch_add(&rd->c->lookups, rd->lookups);
    atomic_fetch_add(&rd->c->loads, rd->loads);
    rd->lookups = rd->loads = 0;
}

void recip_reader_free(recip_reader_t *rd)
{
    if (!rd) return;
    flush_counts(rd);
    for (int i = 0; i < RECIP_LISTS; i++) {
        free(rd->lists[i].off);
        free(rd->lists[i].arena);
    }
    free(rd->copy);
    free(rd->own);
    free(rd->prefs);
    free(rd);
}

void recip_sync(recip_reader_t *rd)
{
    flush_counts(rd);
    /* what the last batch's prefetches recorded may be stale from now on */
    for (int i = 0; i < RECIP_LISTS; i++) rd->lists[i].n = rd->lists[i].next = 0;
    recip_cache_t *c = rd->c;
    uint64_t now = store_users_epoch(c->store);
    if (now == rd->epoch) return;
    if (store_users_changed(c->store, rd->epoch, &now, drop_id, c) != HR_OK) drop_all(c);
    rd->epoch = now;
}

/* Copies id's entry into l when it is cached and fresh (marking it used);
 * its offset, or OFF_NONE. */
static uint32_t copy_hit(recip_cache_t *c, const char *id, int32_t now_s, recip_list_t *l)
{
    size_t idl = strlen(id);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    uint32_t off = OFF_NONE;
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e && fresh(c, slot_entry(*e), now_s)) {
        rentry_t *x = slot_entry(*e);
        x->used = true;
        off = list_put(l, x, entry_size(x));
    }
    pthread_mutex_unlock(mu);
    return off;
}

/* The list a new prefetch fills: one whose entries were all taken, else
 * the older one. */
static recip_list_t *list_for_prefetch(recip_reader_t *rd)
{
    int k = (rd->cur + 1) % RECIP_LISTS;
    for (int i = 0; i < RECIP_LISTS; i++)
        if (rd->lists[i].next >= rd->lists[i].n) k = i;
    rd->cur = k;
    recip_list_t *l = &rd->lists[k];
    if (l->arena_cap > (size_t)16 << 20) { /* one huge audience: do not keep its memory */
        free(l->arena);
        l->arena = NULL;
        l->arena_cap = 0;
    }
    l->n = l->next = 0;
    l->len = 0;
    return l;
}

hr_t recip_prefetch(recip_reader_t *rd, const char *const *ids, int n)
{
    const char *miss[PREFETCH_CHUNK];
    int at[PREFETCH_CHUNK];
    int nm = 0;
    int (*dups)[2] = NULL; /* (position, position of the same id's load) */
    size_t ndups = 0, cdups = 0;
    hr_t r = HR_OK;
    recip_list_t *l = list_for_prefetch(rd);
    if (n > l->cap) {
        l->cap = n;
        l->off = xrealloc(l->off, (size_t)n * sizeof(*l->off));
    }
    int32_t now_s = age_now(rd->c);
    for (int i = 0; i < n && r == HR_OK; i++) {
        l->off[i] = OFF_NONE;
        if (!ids[i] || !ids[i][0]) continue;
        if ((l->off[i] = copy_hit(rd->c, ids[i], now_s, l)) != OFF_NONE) continue;
        int dup = -1; /* the same id close together: load it once */
        for (int k = nm - 1; k >= 0 && k >= nm - 8 && dup < 0; k--)
            if (strcmp(miss[k], ids[i]) == 0) dup = k;
        if (dup >= 0) { /* recorded like the first one once that is read */
            if (ndups == cdups) {
                cdups = cdups ? cdups * 2 : 16;
                dups = xrealloc(dups, cdups * sizeof(*dups));
            }
            dups[ndups][0] = i;
            dups[ndups++][1] = at[dup];
            continue;
        }
        miss[nm] = ids[i];
        at[nm++] = i;
        if (nm == PREFETCH_CHUNK) {
            r = load(rd, miss, nm, l, at, NULL);
            nm = 0;
        }
    }
    if (r == HR_OK && nm) r = load(rd, miss, nm, l, at, NULL);
    for (size_t k = 0; k < ndups; k++) l->off[dups[k][0]] = l->off[dups[k][1]];
    free(dups);
    l->n = r == HR_OK ? n : 0;
    return r;
}

/* The entry a prefetch recorded for id: looked for from where the last
 * one was taken, a few ids ahead (fan-out takes them in order, skipping
 * the audiences of events it drops). */
static const rentry_t *recorded(recip_reader_t *rd, const char *id, size_t idl)
{
    for (int t = 0; t < RECIP_LISTS; t++) {
        recip_list_t *l = &rd->lists[(rd->cur + RECIP_LISTS - t) % RECIP_LISTS];
        int end = l->next + 16 < l->n ? l->next + 16 : l->n;
        for (int k = l->next; k < end; k++) {
            if (l->off[k] == OFF_NONE) continue;
            const rentry_t *e = (const rentry_t *)(l->arena + l->off[k]);
            if (e->len[S_ID] == idl && memcmp(e->data, id, idl) == 0) {
                l->next = k + 1;
                return e;
            }
        }
    }
    return NULL;
}

const recipient_t *recip_get(recip_reader_t *rd, const char *id, hr_t *err)
{
    recip_cache_t *c = rd->c;
    *err = HR_OK;
    rd->lookups++;
    size_t idl = strlen(id);
    const rentry_t *pre = recorded(rd, id, idl);
    if (pre) return view_of(rd, pre);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e && fresh(c, slot_entry(*e), age_now(c))) {
        rentry_t *x = slot_entry(*e);
        x->used = true;
        size_t sz = entry_size(x);
        if (sz > rd->copy_cap) {
            rd->copy_cap = sz < 256 ? 256 : sz;
            free(rd->copy);
            rd->copy = xmalloc(rd->copy_cap);
        }
        memcpy(rd->copy, x, sz);
        pthread_mutex_unlock(mu);
        return view_of(rd, rd->copy);
    }
    pthread_mutex_unlock(mu);
    const rentry_t *got = NULL;
    const char *ids[1] = {id};
    hr_t r = load(rd, ids, 1, NULL, NULL, &got);
    if (r == HR_OK && got) return view_of(rd, got);
    *err = r != HR_OK ? r : HR_ERR;
    return NULL;
}

void recip_cache_stats(recip_cache_t *c, recip_stats_t *out)
{
    out->lookups = atomic_load(&c->lookups);
    out->loads = atomic_load(&c->loads);
    out->entries = atomic_load(&c->entries);
    out->bytes = atomic_load(&c->bytes);
}
