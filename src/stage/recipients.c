/*
 * recipients.c - fan-out's recipient cache (see recipients.h).
 *
 * An entry is one allocation in a compact form - a small header with the
 * string lengths, then the strings and the preferences packed behind it -
 * about 150 bytes for a user with one device, so a million users fit in
 * ~160 MB. recip_cache_get() unpacks the entry into a recipient_t view held
 * by the cache. The table is an array of sets of WAYS entry pointers; the
 * set is chosen by the id's hash.
 */
#include "stage/recipients.h"

#include "core/hash.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define WAYS 4
#define EST_ENTRY_BYTES 176     /* sizing guess per entry, with malloc's overhead */
#define MAX_ENTRY_BYTES 2048    /* larger users are not cached (read on every use) */
#define PREFETCH_CHUNK 512

/* The strings of an entry, in order. */
enum { S_ID, S_LOCALE, S_PUSH, S_SMS, S_EMAIL, S_HOOK, S_PLATFORM, S__N };

typedef struct rentry {
    uint64_t hash;
    int32_t loaded_s;           /* seconds since the cache was made */
    uint32_t push_len;          /* up to 16 devices of 4 KB tokens */
    uint16_t len[S__N];         /* the other string lengths (each stored with a NUL) */
    uint16_t nprefs;
    bool known;
    bool used;                  /* CLOCK reference bit */
    /* then: the strings; then per preference: u8 channel, u8 enabled,
     * u8 category length, category, NUL */
    char data[];
} rentry_t;

struct recip_cache {
    store_t *store;
    size_t max_bytes;
    int ttl_s;
    int64_t born_ms;
    rentry_t **slots;           /* nsets * WAYS */
    size_t nsets;
    size_t bytes;
    int64_t entries;
    uint64_t epoch;
    int64_t lookups, loads;
    rentry_t *scratch;          /* an uncached entry handed out by get() */
    recipient_t view;           /* what get() returns */
    pref_t *prefs;              /* the view's preferences */
    int cprefs;
};

static size_t malloc_cost(size_t n) { return (n + 16 + 15) & ~(size_t)15; }

recip_cache_t *recip_cache_new(store_t *store, size_t max_bytes, int ttl_ms)
{
    recip_cache_t *c = xcalloc(1, sizeof(*c));
    c->store = store;
    c->max_bytes = max_bytes;
    c->ttl_s = ttl_ms > 0 ? (ttl_ms + 999) / 1000 : 0;
    c->born_ms = hclock_now_ms();
    size_t want = max_bytes / ((EST_ENTRY_BYTES + sizeof(void *)) * WAYS);
    c->nsets = 1;
    while (c->nsets < want) c->nsets *= 2; /* the byte budget is what binds */
    c->slots = xcalloc(c->nsets * WAYS, sizeof(*c->slots));
    c->bytes = c->nsets * WAYS * sizeof(*c->slots);
    c->epoch = store_users_epoch(store);
    return c;
}

static size_t entry_cost(const rentry_t *e);

static void entry_drop(recip_cache_t *c, rentry_t **slot)
{
    if (!*slot) return;
    c->bytes -= entry_cost(*slot);
    c->entries--;
    free(*slot);
    *slot = NULL;
}

static void clear_all(recip_cache_t *c)
{
    for (size_t i = 0; i < c->nsets * WAYS; i++) entry_drop(c, &c->slots[i]);
}

void recip_cache_free(recip_cache_t *c)
{
    if (!c) return;
    clear_all(c);
    free(c->slots);
    free(c->scratch);
    free(c->prefs);
    free(c);
}

static size_t slen(const rentry_t *e, int i) { return i == S_PUSH ? e->push_len : e->len[i]; }

static size_t entry_size(const rentry_t *e)
{
    size_t n = sizeof(*e);
    for (int i = 0; i < S__N; i++) n += slen(e, i) + 1;
    const unsigned char *p = (const unsigned char *)e->data + (n - sizeof(*e));
    for (int i = 0; i < e->nprefs; i++) {
        size_t cl = p[2];
        n += 3 + cl + 1;
        p += 3 + cl + 1;
    }
    return n;
}

static size_t entry_cost(const rentry_t *e) { return malloc_cost(entry_size(e)); }

static rentry_t **find(recip_cache_t *c, const char *id, size_t idl, uint64_t h)
{
    rentry_t **set = &c->slots[(h & (c->nsets - 1)) * WAYS];
    for (int w = 0; w < WAYS; w++)
        if (set[w] && set[w]->hash == h && set[w]->len[S_ID] == idl && memcmp(set[w]->data, id, idl) == 0)
            return &set[w];
    return NULL;
}

static void drop_id(void *arg, const char *id)
{
    recip_cache_t *c = arg;
    size_t idl = strlen(id);
    rentry_t **e = find(c, id, idl, fnv1a64(id, idl));
    if (e) entry_drop(c, e);
}

void recip_cache_sync(recip_cache_t *c)
{
    uint64_t now = store_users_epoch(c->store);
    if (now == c->epoch) return;
    if (store_users_changed(c->store, c->epoch, &now, drop_id, c) != HR_OK) clear_all(c);
    c->epoch = now;
}

/* Builds an entry from what the store returned (u and prefs are borrowed).
 * The API's limits (ids, emails, URLs, 128-byte categories) keep every
 * length within the header's fields. */
static rentry_t *entry_build(const char *id, bool known, const user_t *u, const pref_t *prefs, int np)
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
        n += len[i] + 1;
    }
    if (np > UINT16_MAX) np = UINT16_MAX;
    for (int i = 0; i < np; i++) {
        size_t cl = strlen(prefs[i].category ? prefs[i].category : "");
        n += 3 + (cl > 255 ? 255 : cl) + 1;
    }
    for (int i = 0; i < S__N; i++)
        if (i != S_PUSH && len[i] > UINT16_MAX) len[i] = UINT16_MAX; /* beyond any API limit */

    rentry_t *e = xmalloc(n);
    memset(e, 0, sizeof(*e));
    e->hash = fnv1a64(id, len[S_ID]);
    e->known = known;
    e->nprefs = (uint16_t)np;
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
        p[len[i]] = '\0';
        p += len[i] + 1;
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

/* Fills the cache's view from e. */
static const recipient_t *view_of(recip_cache_t *c, const rentry_t *e)
{
    recipient_t *r = &c->view;
    const char *s[S__N];
    const char *p = e->data;
    for (int i = 0; i < S__N; i++) {
        s[i] = p;
        p += slen(e, i) + 1;
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
    if (e->nprefs > c->cprefs) {
        c->cprefs = e->nprefs;
        c->prefs = xrealloc(c->prefs, (size_t)c->cprefs * sizeof(*c->prefs));
    }
    const unsigned char *q = (const unsigned char *)p;
    for (int i = 0; i < e->nprefs; i++) {
        c->prefs[i].channel = (channel_t)q[0];
        c->prefs[i].enabled = q[1] != 0;
        c->prefs[i].category = (char *)(q + 3);
        q += 3 + q[2] + 1;
    }
    r->prefs = e->nprefs ? c->prefs : NULL;
    r->nprefs = e->nprefs;
    return r;
}

static int32_t age_now(const recip_cache_t *c) { return (int32_t)((hclock_now_ms() - c->born_ms) / 1000); }

static bool fresh(const recip_cache_t *c, const rentry_t *e, int32_t now_s)
{
    return c->ttl_s <= 0 || now_s - e->loaded_s < c->ttl_s;
}

/* Puts e in the cache (taking it) or, when it should not be cached, keeps
 * it as the scratch entry. Returns e. */
static rentry_t *insert(recip_cache_t *c, rentry_t *e, int32_t now_s)
{
    e->loaded_s = now_s;
    rentry_t **old = find(c, e->data, e->len[S_ID], e->hash);
    if (old) entry_drop(c, old);
    rentry_t **set = &c->slots[(e->hash & (c->nsets - 1)) * WAYS];
    int victim = -1;
    for (int w = 0; w < WAYS && victim < 0; w++)
        if (!set[w]) victim = w;
    /* CLOCK within the set: the first way not used since the last sweep */
    for (int pass = 0; pass < 2 && victim < 0; pass++)
        for (int w = 0; w < WAYS && victim < 0; w++) {
            if (!set[w]->used) victim = w;
            else set[w]->used = false;
        }
    if (victim < 0) victim = 0;
    size_t cost = entry_cost(e), freed = set[victim] ? entry_cost(set[victim]) : 0;
    if (cost > MAX_ENTRY_BYTES || c->bytes - freed + cost > c->max_bytes) {
        free(c->scratch);
        c->scratch = e;
        return e;
    }
    entry_drop(c, &set[victim]);
    set[victim] = e;
    c->bytes += cost;
    c->entries++;
    return e;
}

/* Reads ids from the store and inserts them. *last: the entry of the last id. */
static hr_t load(recip_cache_t *c, const char *const *ids, int n, rentry_t **last)
{
    user_t *u = xcalloc((size_t)n, sizeof(*u));
    hr_t *found = xcalloc((size_t)n, sizeof(*found));
    pref_t **prefs = xcalloc((size_t)n, sizeof(*prefs));
    int *np = xcalloc((size_t)n, sizeof(*np));
    hr_t r = store_users_get_batch(c->store, ids, n, u, found, prefs, np);
    c->loads += n;
    int32_t now_s = age_now(c);
    for (int i = 0; i < n && r == HR_OK; i++) {
        bool known = found[i] == HR_OK;
        rentry_t *e = insert(c, entry_build(ids[i], known, &u[i], prefs[i], np[i]), now_s);
        if (last) *last = e;
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
    while (c->bytes < c->max_bytes / 100 * 95) {
        int n = 0;
        r = store_users_scan(c->store, after, PAGE, u, prefs, np, &n);
        if (r != HR_OK) break;
        for (int i = 0; i < n; i++) {
            rentry_t **old = find(c, u[i].user_id, strlen(u[i].user_id), fnv1a64(u[i].user_id, strlen(u[i].user_id)));
            if (!old) insert(c, entry_build(u[i].user_id, true, &u[i], prefs[i], np[i]), now_s);
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

hr_t recip_cache_prefetch(recip_cache_t *c, const char *const *ids, int n)
{
    const char *miss[PREFETCH_CHUNK];
    int nm = 0;
    int32_t now_s = age_now(c);
    for (int i = 0; i < n; i++) {
        if (!ids[i] || !ids[i][0]) continue;
        size_t idl = strlen(ids[i]);
        rentry_t **e = find(c, ids[i], idl, fnv1a64(ids[i], idl));
        if (e && fresh(c, *e, now_s)) continue;
        bool dup = false; /* the same id twice in one chunk: load it once */
        for (int k = nm - 1; k >= 0 && k >= nm - 8 && !dup; k--) dup = strcmp(miss[k], ids[i]) == 0;
        if (dup) continue;
        miss[nm++] = ids[i];
        if (nm == PREFETCH_CHUNK) {
            hr_t r = load(c, miss, nm, NULL);
            if (r != HR_OK) return r;
            nm = 0;
        }
    }
    return nm ? load(c, miss, nm, NULL) : HR_OK;
}

const recipient_t *recip_cache_get(recip_cache_t *c, const char *id, hr_t *err)
{
    *err = HR_OK;
    c->lookups++;
    size_t idl = strlen(id);
    uint64_t h = fnv1a64(id, idl);
    rentry_t **e = find(c, id, idl, h);
    if (e && fresh(c, *e, age_now(c))) {
        (*e)->used = true;
        return view_of(c, *e);
    }
    rentry_t *got = NULL;
    const char *ids[1] = {id};
    hr_t r = load(c, ids, 1, &got);
    if (r == HR_OK && got) return view_of(c, got);
    *err = r != HR_OK ? r : HR_ERR;
    return NULL;
}

void recip_cache_stats(const recip_cache_t *c, recip_stats_t *out)
{
    out->lookups = c->lookups;
    out->loads = c->loads;
    out->entries = c->entries;
    out->bytes = (int64_t)c->bytes;
}
