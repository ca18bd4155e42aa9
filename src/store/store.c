/*
 * store.c - the store registry (backend name -> vtable), and the semantics
 * every backend shares, decided here once: argument validation, emptying
 * out-parameters, dropping invalid status records, the template locale
 * chain, the listing cursor, fallbacks for optional ops, the change feed,
 * and freeing the structs the store fills. store_int.h says what a backend
 * may then take for granted.
 */
#include "store/store_int.h"

#include "core/hash.h"
#include "core/log.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG "store"

static const store_ops_t *const backends[] = {
    &store_sqlite_ops,
#ifdef HERALD_HAVE_PG
    &store_pg_ops,
#endif
};

static bool nonempty(const char *s) { return s && s[0]; }

/* ---- change feed ---- */

#define FEED_RING 4096          /* changed user ids remembered */

#define ERASED_BLOOM_BITS 65536 /* one hash, one bit: a miss costs a bit test */

/* A user erased by store_user_erase: status records of notifications
 * created before until_ms are dropped by store_notif_write_batch. until_ms
 * is INT64_MAX until the user is put again (then the time of that put). */
typedef struct erased {
    char *user_id;
    int64_t until_ms;
} erased_t;

/* Invariant: ring[e % FEED_RING] holds the id of change e for
 * users_epoch - FEED_RING <= e < users_epoch. erased[k % STORE_ERASED_MAX]
 * holds erase k for nerased - STORE_ERASED_MAX <= k < nerased; bloom has
 * the bit of each of them (and maybe of older ones: a false hit only costs
 * a scan). erased, nerased and bloom are under mu. */
struct store_feed {
    pthread_mutex_t mu;
    _Atomic uint64_t users_epoch;
    _Atomic uint64_t templates_epoch;
    char *ring[FEED_RING];
    _Atomic uint64_t nerased;
    erased_t erased[STORE_ERASED_MAX];
    uint64_t bloom[ERASED_BLOOM_BITS / 64];
};

static uint64_t erased_bit(const char *id, size_t n)
{
    return fnv1a64(id, n) & (ERASED_BLOOM_BITS - 1);
}

/* mu held. The entry for id (n bytes), or NULL. */
static erased_t *erased_find(struct store_feed *f, const char *id, size_t n)
{
    uint64_t b = erased_bit(id, n);
    if (!(f->bloom[b / 64] & (UINT64_C(1) << (b % 64)))) return NULL;
    uint64_t total = atomic_load(&f->nerased);
    uint64_t k = total > STORE_ERASED_MAX ? total - STORE_ERASED_MAX : 0;
    for (erased_t *hit = NULL; k < total; k++) {
        erased_t *e = &f->erased[k % STORE_ERASED_MAX];
        if (strlen(e->user_id) == n && memcmp(e->user_id, id, n) == 0) hit = e;
        if (k + 1 == total) return hit; /* the latest entry for id wins */
    }
    return NULL;
}

/* Remembers that user_id is being erased (before the rows go, so that the
 * sink cannot re-create them meanwhile). */
static void erased_add(store_t *s, const char *user_id)
{
    struct store_feed *f = s->feed;
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    erased_t *e = erased_find(f, user_id, strlen(user_id));
    if (e) {
        e->until_ms = INT64_MAX;
    } else {
        uint64_t k = atomic_load(&f->nerased);
        e = &f->erased[k % STORE_ERASED_MAX];
        free(e->user_id);
        e->user_id = xstrdup(user_id);
        e->until_ms = INT64_MAX;
        if (k + 1 > STORE_ERASED_MAX && (k + 1) % STORE_ERASED_MAX == 0) {
            /* a full turn of the ring: rebuild the filter from what it holds */
            memset(f->bloom, 0, sizeof(f->bloom));
            for (int i = 0; i < STORE_ERASED_MAX; i++)
                if (f->erased[i].user_id) {
                    uint64_t b = erased_bit(f->erased[i].user_id, strlen(f->erased[i].user_id));
                    f->bloom[b / 64] |= UINT64_C(1) << (b % 64);
                }
        }
        uint64_t b = erased_bit(user_id, strlen(user_id));
        f->bloom[b / 64] |= UINT64_C(1) << (b % 64);
        atomic_store(&f->nerased, k + 1);
    }
    pthread_mutex_unlock(&f->mu);
}

/* A user is put: if it was erased, its records from now on are kept. */
static void erased_recreated(store_t *s, const char *user_id, int64_t now_ms)
{
    struct store_feed *f = s->feed;
    if (!f || atomic_load(&f->nerased) == 0) return;
    pthread_mutex_lock(&f->mu);
    erased_t *e = erased_find(f, user_id, strlen(user_id));
    if (e && e->until_ms == INT64_MAX) e->until_ms = now_ms;
    pthread_mutex_unlock(&f->mu);
}

/* mu held. Is m a status of a notification of an erased user, created
 * before the erase (or before the user was put again)? */
static bool erased_drops(struct store_feed *f, const notif_t *m, int64_t now_ms)
{
    erased_t *e = erased_find(f, m->user_id.p ? m->user_id.p : "", m->user_id.n);
    if (!e) return false;
    int64_t t = m->created_at_ms ? m->created_at_ms : m->status_at_ms ? m->status_at_ms : now_ms;
    return t < e->until_ms;
}

static void feed_user(store_t *s, const char *user_id)
{
    struct store_feed *f = s->feed;
    if (!f || !user_id) return;
    pthread_mutex_lock(&f->mu);
    uint64_t e = atomic_load(&f->users_epoch);
    free(f->ring[e % FEED_RING]);
    f->ring[e % FEED_RING] = xstrdup(user_id);
    atomic_store(&f->users_epoch, e + 1);
    pthread_mutex_unlock(&f->mu);
}

void store_feed_remote_user(store_t *s, const char *user_id)
{
    struct store_feed *f = s->feed;
    if (!f) return;
    if (user_id) {
        feed_user(s, user_id);
        return;
    }
    /* past the ring: every reader's next store_users_changed is HR_AGAIN */
    pthread_mutex_lock(&f->mu);
    atomic_fetch_add(&f->users_epoch, FEED_RING + 1);
    pthread_mutex_unlock(&f->mu);
}

void store_feed_remote_templates(store_t *s)
{
    if (s->feed) atomic_fetch_add(&s->feed->templates_epoch, 1);
}

uint64_t store_users_epoch(store_t *s)
{
    return s->feed ? atomic_load(&s->feed->users_epoch) : 0;
}

bool store_users_feed_exact(store_t *s)
{
    return s->feed && s->ops->users_feed_exact && s->ops->users_feed_exact(s);
}

uint64_t store_templates_epoch(store_t *s)
{
    return s->feed ? atomic_load(&s->feed->templates_epoch) : 0;
}

hr_t store_users_changed(store_t *s, uint64_t since, uint64_t *now,
                         void (*fn)(void *arg, const char *user_id), void *arg)
{
    struct store_feed *f = s->feed;
    *now = since;
    if (!f) return HR_OK;
    pthread_mutex_lock(&f->mu);
    uint64_t e = atomic_load(&f->users_epoch);
    hr_t r = HR_OK;
    if (since > e || e - since > FEED_RING) {
        r = HR_AGAIN;
    } else {
        for (uint64_t k = since; k < e; k++) fn(arg, f->ring[k % FEED_RING]);
    }
    *now = e;
    pthread_mutex_unlock(&f->mu);
    return r;
}


/* ---- validation and shared semantics ---- */

bool store_user_valid(const user_t *u)
{
    if (!u || !nonempty(u->user_id) || u->ndevices < 0 || u->ndevices > STORE_MAX_DEVICES)
        return false;
    for (int i = 0; i < u->ndevices; i++)
        if (!nonempty(u->devices[i].platform) || !nonempty(u->devices[i].token)) return false;
    return true;
}

void store_locale_chain(const char *locale, char lang[STORE_LANG_MAX],
                        const char *chain[STORE_LOCALE_CHAIN])
{
    if (!nonempty(locale)) locale = "en";
    /* language part: "pt-BR" -> "pt"; too long a part is ignored */
    size_t ll = strcspn(locale, "-_");
    if (ll >= STORE_LANG_MAX) ll = 0;
    memcpy(lang, locale, ll);
    lang[ll] = '\0';
    chain[0] = locale;
    chain[1] = ll ? lang : locale;
    chain[2] = "en";
}

static bool channel_valid(channel_t ch) { return (unsigned)ch < CH__COUNT; }

/* Listing cursor: "<created_at_ms>:<notification_id>" of the last row. */
static hr_t cursor_parse(const char *cur, int64_t *ms, const char **id)
{
    if (!((cur[0] >= '0' && cur[0] <= '9') || cur[0] == '-')) return HR_INVALID;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(cur, &end, 10);
    if (errno || end == cur || *end != ':' || end[1] == '\0') return HR_INVALID;
    *ms = v;
    *id = end + 1;
    return HR_OK;
}

/* ---- open, close ---- */

hr_t store_open(const char *backend, const char *dsn, store_t **out)
{
    return store_open_with(backend, dsn, NULL, out);
}

hr_t store_health(store_t *s, char *why, size_t why_len)
{
    assert(s && why && why_len > 0);
    why[0] = '\0';
    return s->ops->health ? s->ops->health(s, why, why_len) : HR_OK;
}

hr_t store_open_with(const char *backend, const char *dsn, const store_open_opts_t *o, store_t **out)
{
    assert(out);
    *out = NULL;
    const char *name = backend ? backend : "sqlite";
    if (!dsn) return HR_INVALID;
    /* Without options: a check of a few seconds, damage refuses to open. */
    static const store_open_opts_t defaults = {.check_ms = 10000, .accept_damage = false};
    for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
        if (strcmp(backends[i]->name, name) != 0) continue;
        hr_t r = backends[i]->open(dsn, o ? o : &defaults, out);
        if (r == HR_OK) {
            struct store_feed *f = xcalloc(1, sizeof(*f));
            pthread_mutex_init(&f->mu, NULL);
            (*out)->feed = f;
            if ((*out)->ops->opened) (*out)->ops->opened(*out);
        }
        return r;
    }
    return HR_INVALID;
}

void store_close(store_t *s)
{
    if (!s) return;
    struct store_feed *f = s->feed;
    s->feed = NULL;
    s->ops->close(s);
    if (f) {
        for (size_t i = 0; i < FEED_RING; i++) free(f->ring[i]);
        for (size_t i = 0; i < STORE_ERASED_MAX; i++) free(f->erased[i].user_id);
        pthread_mutex_destroy(&f->mu);
        free(f);
    }
}

int store_schema_version(store_t *s) { return s->ops->schema_version(s); }

static _Atomic int64_t nospace_at_ms;

void store_note_nospace(void) { atomic_store(&nospace_at_ms, hclock_now_ms()); }

int64_t store_nospace_at_ms(void) { return atomic_load(&nospace_at_ms); }

/* ---- users and preferences ---- */

hr_t store_user_put(store_t *s, const user_t *u)
{
    if (!store_user_valid(u)) return HR_INVALID;
    int64_t now = hclock_now_ms();
    hr_t r = s->ops->user_put(s, u);
    if (r == HR_OK) {
        erased_recreated(s, u->user_id, now);
        feed_user(s, u->user_id);
    }
    return r;
}

hr_t store_user_put_batch(store_t *s, const user_t *users, int n)
{
    if (n < 0 || (n > 0 && !users)) return HR_INVALID;
    for (int i = 0; i < n; i++)
        if (!store_user_valid(&users[i])) return HR_INVALID;
    hr_t r = HR_OK;
    int64_t now = hclock_now_ms();
    if (s->ops->user_put_batch) {
        r = s->ops->user_put_batch(s, users, n);
        for (int i = 0; i < n && r == HR_OK; i++) {
            erased_recreated(s, users[i].user_id, now);
            feed_user(s, users[i].user_id);
        }
        return r;
    }
    for (int i = 0; i < n && r == HR_OK; i++) {
        r = s->ops->user_put(s, &users[i]);
        if (r == HR_OK) {
            erased_recreated(s, users[i].user_id, now);
            feed_user(s, users[i].user_id);
        }
    }
    return r;
}

hr_t store_user_get(store_t *s, const char *user_id, user_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!nonempty(user_id)) return HR_INVALID;
    return s->ops->user_get(s, user_id, out);
}

hr_t store_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                           pref_t **prefs, int *nprefs)
{
    if (n < 0 || (n > 0 && (!ids || !out || !found || !prefs || !nprefs))) return HR_INVALID;
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        prefs[i] = NULL;
        nprefs[i] = 0;
        found[i] = HR_NOTFOUND;
        if (!ids[i]) return HR_INVALID;
    }
    if (s->ops->users_get_batch) return s->ops->users_get_batch(s, ids, n, out, found, prefs, nprefs);
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        if (!nonempty(ids[i])) continue;
        r = s->ops->user_get(s, ids[i], &out[i]);
        if (r == HR_NOTFOUND) {
            r = HR_OK;
            continue;
        }
        if (r == HR_OK && (r = s->ops->prefs_get(s, ids[i], &prefs[i], &nprefs[i])) != HR_OK)
            store_user_clear(&out[i]);
        if (r == HR_OK) found[i] = HR_OK;
    }
    if (r != HR_OK)
        for (int k = 0; k < n; k++) {
            if (found[k] == HR_OK) {
                store_user_clear(&out[k]);
                store_prefs_free(prefs[k], nprefs[k]);
                prefs[k] = NULL;
                nprefs[k] = 0;
            }
            found[k] = HR_NOTFOUND;
        }
    return r;
}

hr_t store_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                      int *nprefs, int *n)
{
    *n = 0;
    if (limit <= 0 || !out || !prefs || !nprefs) return HR_INVALID;
    if (!s->ops->users_scan) return HR_DECLINED;
    return s->ops->users_scan(s, after, limit, out, prefs, nprefs, n);
}

hr_t store_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n)
{
    if (!nonempty(user_id) || n < 0 || (n > 0 && !prefs)) return HR_INVALID;
    for (int i = 0; i < n; i++)
        if (!channel_valid(prefs[i].channel)) return HR_INVALID;
    hr_t r = s->ops->prefs_replace(s, user_id, prefs, n);
    if (r == HR_OK) feed_user(s, user_id);
    return r;
}

hr_t store_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!nonempty(user_id)) return HR_INVALID;
    return s->ops->prefs_get(s, user_id, out, n);
}

/* ---- subscriptions and follows ---- */

hr_t store_sub_add(store_t *s, const char *topic, const char *user_id, bool *created)
{
    bool c = false;
    if (created) *created = false;
    if (!nonempty(topic) || !nonempty(user_id)) return HR_INVALID;
    hr_t r = s->ops->sub_add(s, topic, user_id, &c);
    if (r == HR_OK && created) *created = c;
    return r;
}

hr_t store_sub_del(store_t *s, const char *topic, const char *user_id)
{
    if (!nonempty(topic) || !nonempty(user_id)) return HR_INVALID;
    return s->ops->sub_del(s, topic, user_id);
}

hr_t store_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                     int *n)
{
    *ids = NULL;
    *n = 0;
    if (!nonempty(topic) || limit <= 0) return HR_INVALID;
    return s->ops->subs_page(s, topic, after, limit, ids, n);
}

hr_t store_follow_add(store_t *s, const char *follower, const char *actor, bool *created)
{
    bool c = false;
    if (created) *created = false;
    if (!nonempty(follower) || !nonempty(actor)) return HR_INVALID;
    hr_t r = s->ops->follow_add(s, follower, actor, &c);
    if (r == HR_OK && created) *created = c;
    return r;
}

hr_t store_followers_page(store_t *s, const char *actor, const char *after, int limit,
                          char ***ids, int *n)
{
    *ids = NULL;
    *n = 0;
    if (!nonempty(actor) || limit <= 0) return HR_INVALID;
    return s->ops->followers_page(s, actor, after, limit, ids, n);
}

/* ---- user lifecycle ---- */

hr_t store_user_erase(store_t *s, const char *user_id, store_erase_t *stats)
{
    store_erase_t st = {0, 0, 0};
    if (stats) *stats = st;
    if (!nonempty(user_id)) return HR_INVALID;
    erased_add(s, user_id); /* first: the sink must not re-create what goes */
    hr_t r = s->ops->user_erase(s, user_id, &st);
    /* also after a partial erase: caches must not keep what is gone */
    if (st.notifications || st.rows) feed_user(s, user_id);
    if (stats) *stats = st;
    if (r == HR_OK && st.notifications == 0 && st.rows == 0) r = HR_NOTFOUND;
    if (r == HR_OK)
        log_info(LOG, "erased a user: %lld notification(s) and %lld other row(s) in %d transaction(s)",
                 (long long)st.notifications, (long long)st.rows, st.transactions);
    return r;
}

hr_t store_users_page(store_t *s, const char *after, int limit, user_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0 || limit > 100000) return HR_INVALID;
    if (!s->ops->users_scan) return HR_DECLINED;
    user_t *u = xcalloc((size_t)limit, sizeof(*u));
    pref_t **prefs = xcalloc((size_t)limit, sizeof(*prefs));
    int *nprefs = xcalloc((size_t)limit, sizeof(*nprefs));
    int k = 0;
    hr_t r = s->ops->users_scan(s, nonempty(after) ? after : NULL, limit, u, prefs, nprefs, &k);
    for (int i = 0; i < k; i++) store_prefs_free(prefs[i], nprefs[i]);
    free(prefs);
    free(nprefs);
    if (r != HR_OK) {
        free(u);
        return r;
    }
    *out = u;
    *n = k;
    return HR_OK;
}

void store_users_free(user_t *u, int n)
{
    if (!u) return;
    for (int i = 0; i < n; i++) store_user_clear(&u[i]);
    free(u);
}

hr_t store_follow_del(store_t *s, const char *follower, const char *actor)
{
    if (!nonempty(follower) || !nonempty(actor)) return HR_INVALID;
    return s->ops->follow_del(s, follower, actor);
}

hr_t store_following_page(store_t *s, const char *follower, const char *after, int limit,
                          char ***ids, int *n)
{
    *ids = NULL;
    *n = 0;
    if (!nonempty(follower) || limit <= 0) return HR_INVALID;
    return s->ops->following_page(s, follower, after, limit, ids, n);
}

hr_t store_user_topics_page(store_t *s, const char *user_id, const char *after, int limit,
                            char ***topics, int *n)
{
    *topics = NULL;
    *n = 0;
    if (!nonempty(user_id) || limit <= 0) return HR_INVALID;
    return s->ops->user_topics_page(s, user_id, after, limit, topics, n);
}

/* ---- templates ---- */

hr_t store_template_put(store_t *s, const template_rec_t *t)
{
    if (!t || !nonempty(t->event_type) || !channel_valid(t->channel)) return HR_INVALID;
    hr_t r = s->ops->template_put(s, t);
    if (r == HR_OK && s->feed) atomic_fetch_add(&s->feed->templates_epoch, 1);
    return r;
}

hr_t store_template_get(store_t *s, const char *event_type, channel_t ch, const char *locale,
                        template_rec_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!nonempty(event_type) || !channel_valid(ch)) return HR_INVALID;
    char lang[STORE_LANG_MAX];
    const char *chain[STORE_LOCALE_CHAIN];
    store_locale_chain(locale, lang, chain);
    return s->ops->template_get(s, event_type, ch, chain, out);
}

hr_t store_template_channels(store_t *s, const char *event_type, unsigned *mask)
{
    *mask = 0;
    if (!nonempty(event_type)) return HR_INVALID;
    return s->ops->template_channels(s, event_type, mask);
}

/* ---- event dedupe ---- */

hr_t store_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    if (!nonempty(event_id)) return HR_INVALID;
    return s->ops->event_claim(s, event_id, position ? position : "", out);
}

hr_t store_event_claim_batch(store_t *s, const char *const *event_ids, const char *const *positions,
                             int n, claim_t *out)
{
    if (n < 0 || (n > 0 && (!event_ids || !positions || !out))) return HR_INVALID;
    if (n == 0) return HR_OK;
    for (int i = 0; i < n; i++)
        if (!nonempty(event_ids[i])) return HR_INVALID;
    if (s->ops->event_claim_batch) return s->ops->event_claim_batch(s, event_ids, positions, n, out);
    for (int i = 0; i < n; i++) {
        hr_t r = s->ops->event_claim(s, event_ids[i], positions[i] ? positions[i] : "", &out[i]);
        if (r != HR_OK) return r;
    }
    return HR_OK;
}

/* ---- notifications ---- */

hr_t store_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    if (n < 0 || (n > 0 && !recs)) return HR_INVALID;
    int bad = 0;
    for (int i = 0; i < n; i++) bad += !store_notif_valid(recs[i]);
    struct store_feed *f = s->feed;
    bool erasures = f && atomic_load(&f->nerased) > 0;
    if (bad == 0 && !erasures) return n ? s->ops->notif_write_batch(s, recs, n) : HR_OK;
    /* bad input must not stop the sink's partition: skip it, say so */
    if (bad) log_warn(LOG, "notification batch: skipped %d invalid record(s) of %d", bad, n);
    const notif_t **ok = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(*ok));
    int k = 0, gone = 0;
    int64_t now = hclock_now_ms();
    if (erasures) pthread_mutex_lock(&f->mu);
    for (int i = 0; i < n; i++) {
        if (!store_notif_valid(recs[i])) continue;
        if (erasures && erased_drops(f, recs[i], now)) {
            gone++;
            continue;
        }
        ok[k++] = recs[i];
    }
    if (erasures) pthread_mutex_unlock(&f->mu);
    if (gone) log_info(LOG, "notification batch: dropped %d status record(s) of erased users", gone);
    hr_t r = k ? s->ops->notif_write_batch(s, ok, k) : HR_OK;
    free(ok);
    return r;
}

hr_t store_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                     status_hist_t **hist, int *nhist)
{
    memset(out, 0, sizeof(*out));
    if (hist) *hist = NULL;
    if (nhist) *nhist = 0;
    if (!nonempty(notification_id) || (hist && !nhist)) return HR_INVALID;
    return s->ops->notif_get(s, notification_id, out, hist, nhist);
}

hr_t store_notif_list_user(store_t *s, const char *user_id, const char *cursor, int limit,
                           notif_row_t **rows, int *n, char **next_cursor)
{
    *rows = NULL;
    *n = 0;
    *next_cursor = NULL;
    /* INT_MAX: the backend reads limit + 1 rows to know whether more exist */
    if (!nonempty(user_id) || limit <= 0 || limit == INT_MAX) return HR_INVALID;
    int64_t after_ms = 0;
    const char *after_id = NULL;
    if (nonempty(cursor) && cursor_parse(cursor, &after_ms, &after_id) != HR_OK) return HR_INVALID;
    bool more = false;
    hr_t r = s->ops->notif_list_user(s, user_id, after_ms, after_id, limit, rows, n, &more);
    if (r == HR_OK && more && *n > 0) {
        const notif_row_t *last = &(*rows)[*n - 1];
        *next_cursor = xasprintf("%lld:%s", (long long)last->created_at_ms, last->notification_id);
    }
    return r;
}

hr_t store_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    *sent = false;
    if (!nonempty(notification_id)) return HR_INVALID;
    return s->ops->notif_sent(s, notification_id, sent);
}

hr_t store_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent)
{
    if (n < 0 || (n > 0 && (!ids || !sent))) return HR_INVALID;
    for (int i = 0; i < n; i++) sent[i] = false;
    for (int i = 0; i < n; i++)
        if (ids[i].n == 0 || !ids[i].p) return HR_INVALID;
    if (n == 0) return HR_OK;
    if (s->ops->notif_sent_batch) {
        hr_t r = s->ops->notif_sent_batch(s, ids, n, sent);
        if (r != HR_OK)
            for (int i = 0; i < n; i++) sent[i] = false;
        return r;
    }
    /* fallback: one lookup per id (ids are not NUL-terminated: copy) */
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        char *id = xstrndup(ids[i].p, ids[i].n);
        r = s->ops->notif_sent(s, id, &sent[i]);
        free(id);
    }
    if (r != HR_OK)
        for (int i = 0; i < n; i++) sent[i] = false;
    return r;
}

hr_t store_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    int64_t d = 0;
    hr_t r = s->ops->notif_purge(s, before_ms, &d);
    if (deleted) *deleted = d;
    return r;
}

/* ---- dispatch policy ---- */

hr_t store_sched_put(store_t *s, const char *notification_id, channel_t ch, int64_t due_at_ms,
                     const void *rec, size_t rec_len)
{
    if (!nonempty(notification_id) || (unsigned)ch >= CH__COUNT || !rec || rec_len == 0 ||
        rec_len > STORE_NOTIF_STR_MAX)
        return HR_INVALID;
    /* the receiver, so that erasing a user finds its deferred notifications */
    notif_t m;
    hstr_t user_id = {"", 0};
    if (notif_decode(rec, rec_len, &m) == HR_OK && m.user_id.n) user_id = m.user_id;
    return s->ops->sched_put(s, notification_id, user_id, ch, due_at_ms, rec, rec_len);
}

hr_t store_sched_due(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    if (limit <= 0) return HR_INVALID;
    return s->ops->sched_due(s, now_ms, limit, rows, n);
}

hr_t store_sched_next(store_t *s, int64_t *due)
{
    *due = INT64_MAX;
    return s->ops->sched_next(s, due);
}

hr_t store_sched_del(store_t *s, const char *notification_id, int64_t due_at_ms)
{
    if (!nonempty(notification_id)) return HR_INVALID;
    return s->ops->sched_del(s, notification_id, due_at_ms);
}

void store_sched_rows_free(sched_row_t *rows, int n)
{
    if (!rows) return;
    for (int i = 0; i < n; i++) {
        free(rows[i].notification_id);
        free(rows[i].rec);
    }
    free(rows);
}

/* Is device d one of the comma-separated "platform:token" of a push address? */
static bool device_listed(const device_t *d, const char *address)
{
    size_t pl = strlen(d->platform), tl = strlen(d->token);
    for (const char *p = address; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((len == pl + 1 + tl && memcmp(p, d->platform, pl) == 0 && p[pl] == ':' &&
             memcmp(p + pl + 1, d->token, tl) == 0) ||
            (len == tl && memcmp(p, d->token, tl) == 0))
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

/* Takes the address off u; true when something changed. */
static bool user_drop_address(user_t *u, channel_t ch, const char *address)
{
    char **field = ch == CH_SMS ? &u->phone : ch == CH_EMAIL ? &u->email
                 : ch == CH_WEBHOOK ? &u->webhook_url : NULL;
    if (field) {
        if (!*field || strcmp(*field, address) != 0) return false;
        free(*field);
        *field = NULL;
        return true;
    }
    if (ch != CH_PUSH) return false;
    int kept = 0;
    for (int i = 0; i < u->ndevices; i++) {
        if (device_listed(&u->devices[i], address)) {
            free(u->devices[i].platform);
            free(u->devices[i].token);
            continue;
        }
        u->devices[kept++] = u->devices[i];
    }
    bool changed = kept != u->ndevices;
    for (int i = kept; i < u->ndevices; i++) u->devices[i] = (device_t){NULL, NULL};
    u->ndevices = kept;
    return changed;
}

hr_t store_address_invalidate(store_t *s, const char *user_id, channel_t ch, const char *address,
                              const char *reason)
{
    if (!nonempty(user_id) || (unsigned)ch >= CH__COUNT || !nonempty(address)) return HR_INVALID;
    hr_t r = s->ops->address_invalid_add(s, user_id, ch, address, reason ? reason : "",
                                         hclock_now_ms());
    if (r != HR_OK) return r;
    user_t u;
    memset(&u, 0, sizeof(u));
    r = s->ops->user_get(s, user_id, &u);
    if (r == HR_OK && user_drop_address(&u, ch, address)) r = store_user_put(s, &u);
    store_user_clear(&u);
    return r;
}

hr_t store_address_is_invalid(store_t *s, const char *user_id, channel_t ch, const char *address,
                              bool *invalid)
{
    *invalid = false;
    if (!nonempty(user_id) || (unsigned)ch >= CH__COUNT || !nonempty(address)) return HR_INVALID;
    return s->ops->address_invalid_get(s, user_id, ch, address, invalid);
}

hr_t store_event_release(store_t *s, const char *event_id)
{
    if (!nonempty(event_id)) return HR_INVALID;
    return s->ops->event_release(s, event_id);
}

hr_t store_dlq_mark_redriven(store_t *s, const char *dlq_id, bool *first)
{
    bool f = false;
    if (first) *first = false;
    if (!nonempty(dlq_id)) return HR_INVALID;
    hr_t r = s->ops->dlq_mark(s, dlq_id, hclock_now_ms(), &f);
    if (first) *first = f;
    return r;
}

static bool key_id_ok(const char *id)
{
    return nonempty(id) && strlen(id) <= STORE_KEY_ID_MAX;
}

hr_t store_key_put(store_t *s, const api_key_rec_t *k)
{
    if (!key_id_ok(k->key_id) || !nonempty(k->tenant) || k->scopes == 0) return HR_INVALID;
    return s->ops->key_put(s, k);
}

hr_t store_key_get(store_t *s, const char *key_id, api_key_rec_t *out)
{
    if (!key_id_ok(key_id)) return HR_NOTFOUND;
    return s->ops->key_get(s, key_id, out);
}

hr_t store_key_list(store_t *s, api_key_rec_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    return s->ops->key_list(s, out, n);
}

hr_t store_key_revoke(store_t *s, const char *key_id, int64_t at_ms)
{
    if (!key_id_ok(key_id)) return HR_NOTFOUND;
    return s->ops->key_revoke(s, key_id, at_ms > 0 ? at_ms : 1);
}

hr_t store_dlq_redriven(store_t *s, const char *dlq_id, bool *done)
{
    *done = false;
    if (!nonempty(dlq_id)) return HR_INVALID;
    return s->ops->dlq_get(s, dlq_id, done);
}

/* ---- freeing what the store fills ---- */

void store_user_clear(user_t *u)
{
    if (!u) return;
    free(u->user_id);
    free(u->email);
    free(u->phone);
    free(u->locale);
    free(u->timezone);
    free(u->quiet_start);
    free(u->quiet_end);
    free(u->webhook_url);
    if (u->webhook_secret) {
        OPENSSL_cleanse(u->webhook_secret, strlen(u->webhook_secret));
        free(u->webhook_secret);
    }
    for (int i = 0; i < u->ndevices && i < STORE_MAX_DEVICES; i++) {
        free(u->devices[i].platform);
        free(u->devices[i].token);
    }
    memset(u, 0, sizeof(*u));
}

void template_rec_clear(template_rec_t *t)
{
    if (!t) return;
    free(t->event_type);
    free(t->locale);
    free(t->title);
    free(t->body);
    free(t->digest_key);
    memset(t, 0, sizeof(*t));
}

/* ---- digests ---- */

hr_t store_digest_add_batch(store_t *s, int64_t now_ms, digest_add_t *v, int n)
{
    if (!s->ops->digest_add_batch) return HR_DECLINED;
    for (int i = 0; i < n; i++) {
        v[i].digest_id[0] = '\0';
        v[i].added = v[i].opened = false;
        if (!v[i].user_id.n || !v[i].notification_id.n || !v[i].dkey.n || (unsigned)v[i].channel >= CH__COUNT ||
            v[i].window_ms <= 0 || !v[i].rec || !v[i].rec_len || v[i].rec_len > STORE_NOTIF_STR_MAX)
            return HR_INVALID;
    }
    if (n <= 0) return n == 0 ? HR_OK : HR_INVALID;
    return s->ops->digest_add_batch(s, now_ms, v, n);
}

hr_t store_digest_close(store_t *s, const char *digest_id, digest_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!nonempty(digest_id)) return HR_INVALID;
    if (!s->ops->digest_close) return HR_DECLINED;
    return s->ops->digest_close(s, digest_id, out);
}

void digest_info_clear(digest_info_t *d)
{
    if (!d) return;
    free(d->first_actor);
    free(d->last_actor);
    memset(d, 0, sizeof(*d));
}

void notif_row_clear(notif_row_t *r)
{
    if (!r) return;
    free(r->notification_id);
    free(r->event_id);
    free(r->user_id);
    free(r->category);
    free(r->title);
    free(r->body);
    free(r->address);
    free(r->channel_msg_id);
    free(r->error);
    free(r->traceparent);
    memset(r, 0, sizeof(*r));
}

void store_prefs_free(pref_t *p, int n)
{
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i].category);
    free(p);
}

void store_ids_free(char **ids, int n)
{
    if (!ids) return;
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

void store_status_hist_free(status_hist_t *h, int n)
{
    if (!h) return;
    for (int i = 0; i < n; i++) free(h[i].detail);
    free(h);
}

void notif_rows_free(notif_row_t *rows, int n)
{
    if (!rows) return;
    for (int i = 0; i < n; i++) notif_row_clear(&rows[i]);
    free(rows);
}

/* ---- in-app inbox ---- */

void inbox_item_clear(inbox_item_t *it)
{
    if (!it) return;
    free(it->user_id);
    free(it->notification_id);
    free(it->event_id);
    free(it->category);
    free(it->title);
    free(it->body);
    memset(it, 0, sizeof(*it));
}

void inbox_items_free(inbox_item_t *v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) inbox_item_clear(&v[i]);
    free(v);
}

static bool inbox_mark_valid(inbox_mark_t m)
{
    return m == INBOX_MARK_SEEN || m == INBOX_MARK_READ || m == INBOX_MARK_ARCHIVED;
}

/* The inbox is not in every backend yet (PostgreSQL: issue 15 follows):
 * an error with one log line per process, never a NULL call. */
static bool inbox_supported(store_t *s)
{
    static atomic_int told;
    if (s->ops->inbox_put && s->ops->inbox_list && s->ops->inbox_counts && s->ops->inbox_mark &&
        s->ops->inbox_del)
        return true;
    if (!atomic_exchange(&told, 1))
        log_error("store", "the %s store has no inbox yet: in-app notifications cannot be stored",
                  s->ops->name);
    return false;
}

hr_t store_inbox_put(store_t *s, const inbox_item_t *it, bool *created)
{
    if (!inbox_supported(s)) return HR_ERR;
    bool dummy;
    if (!created) created = &dummy;
    *created = false;
    if (!it || !nonempty(it->user_id) || !nonempty(it->notification_id) || it->created_at_ms <= 0)
        return HR_INVALID;
    return s->ops->inbox_put(s, it, created);
}

hr_t store_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, const char *cursor,
                      int limit, inbox_item_t **items, int *n, char **next_cursor)
{
    *items = NULL;
    *n = 0;
    *next_cursor = NULL;
    if (!inbox_supported(s)) return HR_ERR;
    /* INT_MAX: the backend reads limit + 1 rows to know whether more exist */
    if (!nonempty(user_id) || limit <= 0 || limit == INT_MAX ||
        (unsigned)f >= INBOX_FILTER__COUNT)
        return HR_INVALID;
    int64_t after_ms = 0;
    const char *after_id = NULL;
    if (nonempty(cursor) && cursor_parse(cursor, &after_ms, &after_id) != HR_OK) return HR_INVALID;
    bool more = false;
    hr_t r = s->ops->inbox_list(s, user_id, f, after_ms, after_id, limit, items, n, &more);
    if (r == HR_OK && more && *n > 0) {
        const inbox_item_t *last = &(*items)[*n - 1];
        *next_cursor = xasprintf("%lld:%s", (long long)last->created_at_ms, last->notification_id);
    }
    return r;
}

hr_t store_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen)
{
    *unread = 0;
    *unseen = 0;
    if (!inbox_supported(s)) return HR_ERR;
    if (!nonempty(user_id)) return HR_INVALID;
    return s->ops->inbox_counts(s, user_id, unread, unseen);
}

hr_t store_inbox_mark(store_t *s, const char *user_id, const char *notification_id,
                      inbox_mark_t m, int64_t at_ms)
{
    if (!inbox_supported(s)) return HR_ERR;
    if (!nonempty(user_id) || !nonempty(notification_id) || !inbox_mark_valid(m) || at_ms <= 0)
        return HR_INVALID;
    int64_t changed = 0;
    return s->ops->inbox_mark(s, user_id, notification_id, m, at_ms, &changed);
}

hr_t store_inbox_mark_all(store_t *s, const char *user_id, inbox_mark_t m, int64_t at_ms,
                          int64_t *changed)
{
    int64_t dummy;
    if (!changed) changed = &dummy;
    *changed = 0;
    if (!inbox_supported(s)) return HR_ERR;
    if (!nonempty(user_id) || !inbox_mark_valid(m) || at_ms <= 0) return HR_INVALID;
    return s->ops->inbox_mark(s, user_id, NULL, m, at_ms, changed);
}

hr_t store_inbox_del(store_t *s, const char *user_id, const char *notification_id)
{
    if (!inbox_supported(s)) return HR_ERR;
    if (!nonempty(user_id) || !nonempty(notification_id)) return HR_INVALID;
    return s->ops->inbox_del(s, user_id, notification_id);
}
