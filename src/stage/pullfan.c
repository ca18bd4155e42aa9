/*
 * pullfan.c - pull fan-out for the in-app channel (pullfan.h).
 */
#include "stage/pullfan.h"

#include "core/buf.h"
#include "core/log.h"
#include "http/inbox_hub.h"
#include "model/template.h"
#include "model/tenant.h"
#include "policy/prefs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEED_PAGE 200

void pull_feed_id(int64_t accepted_at_us, const char *eid, const char *actor, char out[33])
{
    char key[TENANT_QID_MAX + 8];
    snprintf(key, sizeof(key), "feed:%s", actor);
    notif_make_id(accepted_at_us, HSTR(eid), HSTR(key), CH_INAPP, out);
}

/* How far down a watcher's merged inbox a new feed item is looked for
 * (newest first: it is the newest unless other items came in meanwhile). */
#define LIVE_LOOK 8

/* A new feed item, live: every user watched in this process (their live
 * streams, inbox_hub.h) who sees the item - follows the actor, past its
 * after_key, wants its category - gets it and new counts, as for an inbox
 * item of their own. Watchers are few next to the followers, so each is
 * asked of the store rather than walking the audience. */
static void pull_live(app_t *app, const char *nid)
{
    inbox_hub_t *hub = app->inbox_hub;
    if (!hub || inbox_hub_streams(hub) == 0) return;
    char **users = NULL;
    int nu = inbox_hub_users(hub, &users);
    for (int u = 0; u < nu; u++) {
        inbox_item_t *it = NULL;
        int n = 0;
        char *next = NULL;
        if (pull_inbox_list(app, users[u], INBOX_ACTIVE, NULL, LIVE_LOOK, &it, &n, &next) == HR_OK)
            for (int i = 0; i < n; i++)
                if (it[i].notification_id && strcmp(it[i].notification_id, nid) == 0) {
                    free(it[i].user_id); /* the watcher's item now */
                    it[i].user_id = xstrdup(users[u]);
                    inbox_hub_new_item(hub, app->store, &it[i]);
                    break;
                }
        inbox_items_free(it, n);
        free(next);
        free(users[u]);
    }
    free(users);
}

hr_t pull_fan_event(app_t *app, const event_t *ev, const char *eid, const char *type,
                    const char *actor, const char *after_key, bool *pull)
{
    *pull = false;
    int64_t limit = app->cfg->fanout_pull_threshold, n = 0;
    if (limit <= 0) return HR_OK;
    hr_t r = store_followers_count(app->store, actor, limit, &n);
    if (r == HR_DECLINED) return HR_OK; /* no feed in this store: eager */
    if (r != HR_OK || n < limit) return r;

    /* the item, rendered once: default locale, no user */
    const char *title = NULL, *body = NULL;
    template_rec_t t;
    bool have_t = false;
    if (!event_content_for(ev, CH_INAPP, &title, &body)) {
        r = store_template_get(app->store, type, CH_INAPP, "en", &t);
        if (r == HR_NOTFOUND) return HR_OK; /* nothing to show: fan-out reports no_template */
        if (r != HR_OK) return r;
        have_t = true;
        title = t.title ? t.title : "";
        body = t.body ? t.body : "";
    }
    buf_t bt, bb;
    buf_init(&bt, 4096);
    buf_init(&bb, 64 * 1024);
    tmpl_ctx_t ctx = {.ev = ev, .user_id = "", .locale = "en"};
    tmpl_render(title, &ctx, &bt); /* truncated at the limit */
    tmpl_render(body, &ctx, &bb);
    char nid[33];
    pull_feed_id(ev->accepted_at_us, eid, actor, nid);
    int64_t at = ev->accepted_at_us > 0 ? ev->accepted_at_us / 1000 : hclock_now_ms();
    inbox_item_t it = {
        .notification_id = nid,
        .event_id = (char *)eid,
        .category = (char *)(ev->category ? ev->category : "default"),
        .title = (char *)buf_cstr(&bt),
        .body = (char *)buf_cstr(&bb),
        .created_at_ms = at > 0 ? at : 1,
    };
    bool created = false;
    r = store_feed_put(app->store, actor, after_key ? after_key : "", (int)ev->priority, &it,
                       &created);
    buf_release(&bt);
    buf_release(&bb);
    if (have_t) template_rec_clear(&t);
    if (r != HR_OK) return r;
    *pull = true;
    if (created) {
        METRIC_INC(fanout_pull_items);
        pull_live(app, nid);
    }
    log_debug("fanout", "event %s: in-app by pull for the %lld+ followers of %s", eid,
              (long long)n, actor);
    return HR_OK;
}

/* ---- the inbox as a follower sees it ---- */

typedef struct viewer {
    pref_t *prefs;
    int nprefs;
    prefs_required_t required;
} viewer_t;

static hr_t viewer_open(app_t *app, const char *user_id, viewer_t *v)
{
    memset(v, 0, sizeof(*v));
    hr_t r = store_prefs_get(app->store, user_id, &v->prefs, &v->nprefs);
    if (r == HR_NOTFOUND) r = HR_OK;
    if (r == HR_OK && prefs_required_parse(app->cfg->required_categories, &v->required) != HR_OK)
        memset(&v->required, 0, sizeof(v->required));
    return r;
}

static void viewer_close(viewer_t *v)
{
    prefs_free(v->prefs, v->nprefs);
    prefs_required_clear(&v->required);
}

static bool viewer_wants(const viewer_t *v, const inbox_item_t *it, int prio)
{
    const char *cat = it->category ? it->category : "default";
    return prefs_deliver(v->prefs, v->nprefs, cat, CH_INAPP, (priority_t)prio,
                         prefs_required_has(&v->required, cat));
}

static hr_t parse_cursor(const char *cur, int64_t *ms, const char **id)
{
    *ms = 0;
    *id = NULL;
    if (!cur || !cur[0]) return HR_OK;
    if (!((cur[0] >= '0' && cur[0] <= '9') || cur[0] == '-')) return HR_INVALID;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(cur, &end, 10);
    if (errno || end == cur || *end != ':' || end[1] == '\0') return HR_INVALID;
    *ms = v;
    *id = end + 1;
    return HR_OK;
}

/* Up to want feed items the viewer wants after the cursor, into *out
 * (allocated); *more: more exist. */
static hr_t feed_take(app_t *app, const viewer_t *vw, const char *user_id, inbox_filter_t f,
                      int64_t after_ms, const char *after_id, int want, inbox_item_t **out,
                      int *nout, bool *more)
{
    inbox_item_t *acc = xcalloc((size_t)want, sizeof(*acc));
    int k = 0;
    char *cur_id = after_id ? xstrdup(after_id) : NULL;
    int64_t cur_ms = after_ms;
    hr_t r = HR_OK;
    *more = false;
    for (;;) {
        inbox_item_t *v = NULL;
        int *pr = NULL, n = 0;
        bool pmore = false;
        r = store_feed_list(app->store, user_id, f, cur_ms, cur_id, FEED_PAGE, &v, &pr, &n, &pmore);
        if (r != HR_OK) break;
        if (n > 0) { /* the next page starts after this one's last row */
            free(cur_id);
            cur_id = xstrdup(v[n - 1].notification_id);
            cur_ms = v[n - 1].created_at_ms;
        }
        for (int i = 0; i < n; i++) {
            if (!viewer_wants(vw, &v[i], pr[i])) continue;
            if (k == want) {
                *more = true;
                break;
            }
            acc[k++] = v[i];
            memset(&v[i], 0, sizeof(v[i]));
        }
        inbox_items_free(v, n);
        free(pr);
        if (*more || !pmore) break;
    }
    free(cur_id);
    if (r != HR_OK) {
        inbox_items_free(acc, k);
        return r;
    }
    *out = acc;
    *nout = k;
    return HR_OK;
}

/* Newest first: (created_at_ms, notification_id) descending. */
static bool newer(const inbox_item_t *a, const inbox_item_t *b)
{
    if (a->created_at_ms != b->created_at_ms) return a->created_at_ms > b->created_at_ms;
    return strcmp(a->notification_id, b->notification_id) > 0;
}

hr_t pull_inbox_list(app_t *app, const char *user_id, inbox_filter_t f, const char *cursor,
                     int limit, inbox_item_t **items, int *n, char **next_cursor)
{
    hr_t r = store_inbox_list(app->store, user_id, f, cursor, limit, items, n, next_cursor);
    if (r != HR_OK) return r;
    int64_t after_ms;
    const char *after_id;
    if (parse_cursor(cursor, &after_ms, &after_id) != HR_OK) return HR_INVALID; /* cannot be */
    viewer_t vw;
    inbox_item_t *b = NULL;
    int nb = 0;
    bool bmore = false;
    if ((r = viewer_open(app, user_id, &vw)) != HR_OK) goto fail;
    r = feed_take(app, &vw, user_id, f, after_ms, after_id, limit, &b, &nb, &bmore);
    viewer_close(&vw);
    if (r == HR_DECLINED) return HR_OK; /* no feed in this store */
    if (r != HR_OK) goto fail;
    if (nb == 0) {
        free(b);
        return HR_OK;
    }
    /* merge the two newest-first lists, limit items */
    inbox_item_t *a = *items;
    int na = *n, ia = 0, ib = 0, k = 0;
    inbox_item_t *m = xcalloc((size_t)limit, sizeof(*m));
    while (k < limit && (ia < na || ib < nb)) {
        bool take_a = ib >= nb || (ia < na && newer(&a[ia], &b[ib]));
        m[k++] = take_a ? a[ia++] : b[ib++];
    }
    bool more = *next_cursor != NULL || bmore || ia < na || ib < nb;
    for (int i = ia; i < na; i++) inbox_item_clear(&a[i]);
    for (int i = ib; i < nb; i++) inbox_item_clear(&b[i]);
    free(a);
    free(b);
    free(*next_cursor);
    *next_cursor = more && k > 0 ? xasprintf("%lld:%s", (long long)m[k - 1].created_at_ms,
                                             m[k - 1].notification_id)
                                 : NULL;
    *items = m;
    *n = k;
    return HR_OK;
fail:
    inbox_items_free(*items, *n);
    free(*next_cursor);
    *items = NULL;
    *n = 0;
    *next_cursor = NULL;
    return r;
}

hr_t pull_inbox_counts(app_t *app, const char *user_id, int64_t *unread, int64_t *unseen)
{
    hr_t r = store_inbox_counts(app->store, user_id, unread, unseen);
    if (r != HR_OK) return r;
    viewer_t vw;
    if ((r = viewer_open(app, user_id, &vw)) != HR_OK) return r;
    int64_t ms = 0;
    char *id = NULL;
    for (;;) {
        inbox_item_t *v = NULL;
        int *pr = NULL, n = 0;
        bool more = false;
        r = store_feed_list(app->store, user_id, INBOX_ACTIVE, ms, id, FEED_PAGE, &v, &pr, &n, &more);
        if (r != HR_OK) break;
        for (int i = 0; i < n; i++) {
            if (!viewer_wants(&vw, &v[i], pr[i])) continue;
            if (!v[i].read_at_ms) (*unread)++;
            if (!v[i].seen_at_ms) (*unseen)++;
        }
        if (n > 0) {
            free(id);
            id = xstrdup(v[n - 1].notification_id);
            ms = v[n - 1].created_at_ms;
        }
        inbox_items_free(v, n);
        free(pr);
        if (!more) break;
    }
    free(id);
    viewer_close(&vw);
    return r == HR_DECLINED ? HR_OK : r; /* no feed in this store */
}

hr_t pull_inbox_mark(app_t *app, const char *user_id, const char *notification_id,
                     inbox_mark_t m, int64_t at_ms)
{
    hr_t r = store_inbox_mark(app->store, user_id, notification_id, m, at_ms);
    if (r != HR_NOTFOUND) return r;
    int64_t changed;
    hr_t r2 = store_feed_mark(app->store, user_id, notification_id, m, at_ms, &changed);
    return r2 == HR_DECLINED ? r : r2;
}

hr_t pull_inbox_mark_all(app_t *app, const char *user_id, inbox_mark_t m, int64_t at_ms,
                         int64_t *changed)
{
    hr_t r = store_inbox_mark_all(app->store, user_id, m, at_ms, changed);
    if (r != HR_OK) return r;
    int64_t more = 0;
    hr_t r2 = store_feed_mark(app->store, user_id, NULL, m, at_ms, &more);
    if (r2 == HR_DECLINED) return HR_OK;
    if (changed) *changed += more;
    return r2;
}

hr_t pull_inbox_del(app_t *app, const char *user_id, const char *notification_id)
{
    hr_t r = store_inbox_del(app->store, user_id, notification_id);
    if (r != HR_NOTFOUND) return r;
    hr_t r2 = store_feed_del(app->store, user_id, notification_id);
    return r2 == HR_DECLINED ? r : r2;
}
