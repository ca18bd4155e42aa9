/*
 * store.c - the store registry (backend name -> vtable), thin wrappers over
 * the vtable, and the helpers shared by every backend (freeing the structs
 * the store fills, preference evaluation).
 *
 * Adding a backend: write store_<name>.c defining `const store_ops_t
 * store_<name>_ops`, declare it in store.h and list it in `backends` below.
 * tests/unit/test_store.c then runs against it with HERALD_TEST_STORE=<name>.
 */
#include "store/store.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const store_ops_t *const backends[] = {&store_sqlite_ops};

/* ---- change feed ---- */

#define FEED_RING 4096          /* changed user ids remembered */

/* Invariant: ring[e % FEED_RING] holds the id of change e for
 * users_epoch - FEED_RING <= e < users_epoch. */
struct store_feed {
    pthread_mutex_t mu;
    _Atomic uint64_t users_epoch;
    _Atomic uint64_t templates_epoch;
    char *ring[FEED_RING];
};

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

uint64_t store_users_epoch(store_t *s)
{
    return s->feed ? atomic_load(&s->feed->users_epoch) : 0;
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

hr_t store_open(const char *backend, const char *dsn, store_t **out)
{
    assert(out);
    *out = NULL;
    const char *name = backend ? backend : "sqlite";
    if (!dsn) return HR_INVALID;
    for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
        if (strcmp(backends[i]->name, name) != 0) continue;
        hr_t r = backends[i]->open(dsn, out);
        if (r == HR_OK) {
            struct store_feed *f = xcalloc(1, sizeof(*f));
            pthread_mutex_init(&f->mu, NULL);
            (*out)->feed = f;
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
        pthread_mutex_destroy(&f->mu);
        free(f);
    }
}

int store_schema_version(store_t *s) { return s->ops->schema_version(s); }

hr_t store_user_put(store_t *s, const user_t *u)
{
    hr_t r = s->ops->user_put(s, u);
    if (r == HR_OK) feed_user(s, u->user_id);
    return r;
}

hr_t store_user_put_batch(store_t *s, const user_t *users, int n)
{
    if (n < 0 || (n > 0 && !users)) return HR_INVALID;
    hr_t r = HR_OK;
    if (s->ops->user_put_batch) {
        r = s->ops->user_put_batch(s, users, n);
        for (int i = 0; i < n && r == HR_OK; i++) feed_user(s, users[i].user_id);
        return r;
    }
    for (int i = 0; i < n && r == HR_OK; i++) {
        r = s->ops->user_put(s, &users[i]);
        if (r == HR_OK) feed_user(s, users[i].user_id);
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

hr_t store_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                           pref_t **prefs, int *nprefs)
{
    if (n < 0 || (n > 0 && (!ids || !out || !found || !prefs || !nprefs))) return HR_INVALID;
    if (s->ops->users_get_batch) return s->ops->users_get_batch(s, ids, n, out, found, prefs, nprefs);
    hr_t r = HR_OK;
    int i = 0;
    for (; i < n && r == HR_OK; i++) {
        prefs[i] = NULL;
        nprefs[i] = 0;
        found[i] = s->ops->user_get(s, ids[i], &out[i]);
        if (found[i] == HR_NOTFOUND) continue;
        r = found[i];
        if (r == HR_OK && (r = s->ops->prefs_get(s, ids[i], &prefs[i], &nprefs[i])) != HR_OK)
            user_clear(&out[i]);
    }
    if (r != HR_OK)
        for (int k = 0; k < i - 1; k++)
            if (found[k] == HR_OK) {
                user_clear(&out[k]);
                prefs_free(prefs[k], nprefs[k]);
            }
    return r;
}

hr_t store_user_get(store_t *s, const char *user_id, user_t *out)
{
    return s->ops->user_get(s, user_id, out);
}

hr_t store_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n)
{
    hr_t r = s->ops->prefs_replace(s, user_id, prefs, n);
    if (r == HR_OK) feed_user(s, user_id);
    return r;
}

hr_t store_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n)
{
    return s->ops->prefs_get(s, user_id, out, n);
}

hr_t store_sub_add(store_t *s, const char *topic, const char *user_id)
{
    return s->ops->sub_add(s, topic, user_id);
}

hr_t store_sub_del(store_t *s, const char *topic, const char *user_id)
{
    return s->ops->sub_del(s, topic, user_id);
}

hr_t store_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                     int *n)
{
    return s->ops->subs_page(s, topic, after, limit, ids, n);
}

hr_t store_follow_add(store_t *s, const char *follower, const char *actor)
{
    return s->ops->follow_add(s, follower, actor);
}

hr_t store_followers_page(store_t *s, const char *actor, const char *after, int limit,
                          char ***ids, int *n)
{
    return s->ops->followers_page(s, actor, after, limit, ids, n);
}

hr_t store_template_put(store_t *s, const template_rec_t *t)
{
    hr_t r = s->ops->template_put(s, t);
    if (r == HR_OK && s->feed) atomic_fetch_add(&s->feed->templates_epoch, 1);
    return r;
}

hr_t store_template_get(store_t *s, const char *event_type, channel_t ch, const char *locale,
                        template_rec_t *out)
{
    return s->ops->template_get(s, event_type, ch, locale, out);
}

hr_t store_template_channels(store_t *s, const char *event_type, unsigned *mask)
{
    return s->ops->template_channels(s, event_type, mask);
}

hr_t store_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    return s->ops->event_claim(s, event_id, position, out);
}

hr_t store_event_claim_batch(store_t *s, const char *const *event_ids, const char *const *positions,
                             int n, claim_t *out)
{
    if (n < 0 || (n > 0 && (!event_ids || !positions || !out))) return HR_INVALID;
    if (n == 0) return HR_OK;
    if (s->ops->event_claim_batch) return s->ops->event_claim_batch(s, event_ids, positions, n, out);
    for (int i = 0; i < n; i++) {
        hr_t r = s->ops->event_claim(s, event_ids[i], positions[i], &out[i]);
        if (r != HR_OK) return r;
    }
    return HR_OK;
}

hr_t store_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    return s->ops->notif_write_batch(s, recs, n);
}

hr_t store_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                     status_hist_t **hist, int *nhist)
{
    return s->ops->notif_get(s, notification_id, out, hist, nhist);
}

hr_t store_notif_list_user(store_t *s, const char *user_id, const char *cursor, int limit,
                           notif_row_t **rows, int *n, char **next_cursor)
{
    return s->ops->notif_list_user(s, user_id, cursor, limit, rows, n, next_cursor);
}

hr_t store_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    return s->ops->notif_sent(s, notification_id, sent);
}

hr_t store_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    return s->ops->notif_purge(s, before_ms, deleted);
}

/* ---- helpers shared by the backends ---- */

void user_clear(user_t *u)
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
    memset(t, 0, sizeof(*t));
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
    memset(r, 0, sizeof(*r));
}

void prefs_free(pref_t *p, int n)
{
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i].category);
    free(p);
}

/* A rule for exactly (category, ch) wins; then the channel switch
 * (category ""); otherwise the channel is allowed. */
bool prefs_allowed(const pref_t *p, int n, const char *category, channel_t ch)
{
    int channel_rule = -1;
    bool has_category = category && category[0];
    for (int i = 0; i < n; i++) {
        if (p[i].channel != ch) continue;
        const char *c = p[i].category ? p[i].category : "";
        if (has_category && strcmp(c, category) == 0) return p[i].enabled;
        if (c[0] == '\0') channel_rule = p[i].enabled;
    }
    return channel_rule != 0;
}

void ids_free(char **ids, int n)
{
    if (!ids) return;
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

void status_hist_free(status_hist_t *h, int n)
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
