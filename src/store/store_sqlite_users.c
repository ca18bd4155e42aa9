/*
 * store_sqlite_users.c - the SQLite backend's ops for users, preferences,
 * subscriptions, follows and templates (store_sqlite_int.h lists the files
 * of the backend; the DESIGN note is atop store_sqlite.c).
 *
 * Arguments arrive validated by store.c (store_int.h). Reads run on the
 * reader connection, writes on the writer through sq_writer_lock.
 * Threads: any.
 */
#include "store/store_sqlite_int.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- users ---- */

/* Writes one user and its devices inside the caller's transaction. */
static hr_t user_write(sq_store_t *q, conn_t *c, const user_t *u)
{
    hr_t r;
    sqlite3_stmt *st = sq_stmt(c, S_USER_PUT);
    if (!st) return HR_ERR;
    bind_str(st, 1, u->user_id);
    bind_str(st, 2, u->email);
    bind_str(st, 3, u->phone);
    bind_str(st, 4, nonempty(u->locale) ? u->locale : "en");
    bind_str(st, 5, nonempty(u->timezone) ? u->timezone : "UTC");
    bind_str(st, 6, u->quiet_start);
    bind_str(st, 7, u->quiet_end);
    bind_str(st, 8, u->webhook_url);
    sqlite3_bind_int64(st, 9, u->updated_at_ms ? u->updated_at_ms : hclock_now_ms());
    bind_str(st, 10, u->webhook_secret);
    if ((r = sq_step_done(c, st, "user put")) != HR_OK) return r;

    if (!(st = sq_stmt(c, S_DEV_DEL))) return HR_ERR;
    bind_str(st, 1, u->user_id);
    if ((r = sq_step_done(c, st, "devices delete")) != HR_OK) return r;
    if (!(st = sq_stmt(c, S_DEV_ADD))) return HR_ERR;
    for (int i = 0; i < u->ndevices; i++) {
        bind_str(st, 1, u->user_id);
        sqlite3_bind_int(st, 2, i);
        bind_str(st, 3, u->devices[i].platform);
        bind_str(st, 4, u->devices[i].token);
        if ((r = sq_step_done(c, st, "device add")) != HR_OK) return r;
    }
    return sq_change_note(q, c, SQ_CHG_USER, u->user_id); /* store_sqlite.c */
}

hr_t sq_user_put(store_t *s, const user_t *u)
{
    return sq_user_put_batch(s, u, 1);
}

hr_t sq_user_put_batch(store_t *s, const user_t *users, int n)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = sq_tx_begin(c, true);
    for (int i = 0; i < n && r == HR_OK; i++) r = user_write(sq(s), c, &users[i]);
    if (r == HR_OK || sqlite3_get_autocommit(c->db) == 0) r = sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Reads one user and its devices; c->mu held, inside a read transaction.
 * HR_NOTFOUND when absent. out is zeroed first and filled only on HR_OK. */
static hr_t user_read(conn_t *c, const char *user_id, user_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = sq_stmt(c, S_USER_GET);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->user_id = xstrdup(user_id);
        out->email = col_str(st, 0);
        out->phone = col_str(st, 1);
        out->locale = col_str(st, 2);
        out->timezone = col_str(st, 3);
        out->quiet_start = col_str(st, 4);
        out->quiet_end = col_str(st, 5);
        out->webhook_url = col_str(st, 6);
        out->updated_at_ms = sqlite3_column_int64(st, 7);
        out->webhook_secret = col_str(st, 8);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "user get");
    hr_t r = HR_OK;
    if (!(st = sq_stmt(c, S_DEV_GET))) {
        r = HR_ERR;
        goto out;
    }
    bind_str(st, 1, user_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->ndevices < STORE_MAX_DEVICES) {
        device_t *d = &out->devices[out->ndevices++];
        d->platform = col_str(st, 0);
        d->token = col_str(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "devices get");
out:
    if (r != HR_OK) store_user_clear(out);
    return r;
}

static void pref_row(sqlite3_stmt *st, void *elem)
{
    pref_t *p = elem;
    p->category = col_str(st, 0);
    if (!p->category) p->category = xstrdup("");
    p->channel = (channel_t)sqlite3_column_int(st, 1);
    p->enabled = sqlite3_column_int(st, 2) != 0;
}

/* Reads a user's preferences; c->mu held. */
static hr_t prefs_read(conn_t *c, const char *user_id, pref_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = sq_stmt(c, S_PREF_GET);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    sq_rows_t rows = {0};
    hr_t r = sq_collect(c, st, sizeof(pref_t), INT_MAX, pref_row, &rows, NULL, "preferences get");
    if (r != HR_OK) {
        store_prefs_free(rows.v, rows.n);
        return r;
    }
    *out = rows.v;
    *n = rows.n;
    return HR_OK;
}

hr_t sq_user_get(store_t *s, const char *user_id, user_t *out)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, false); /* one snapshot for user and devices */
    if (r == HR_OK) {
        r = user_read(c, user_id, out);
        hr_t e = sq_tx_end(c, r == HR_NOTFOUND ? HR_OK : r);
        if (r == HR_OK && e != HR_OK) {
            store_user_clear(out);
            r = e;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Reads one user with its devices and preferences in one statement
 * (S_USER_FULL); c->mu held, inside a read transaction. HR_NOTFOUND when
 * absent. out is zeroed first; out, *prefs and *np are filled only on
 * HR_OK. */
static hr_t user_read_full(conn_t *c, const char *user_id, user_t *out, pref_t **prefs, int *np)
{
    memset(out, 0, sizeof(*out));
    *prefs = NULL;
    *np = 0;
    sqlite3_stmt *st = sq_stmt(c, S_USER_FULL);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    bool found = false;
    int rc, cap = 0;
    int64_t seq[STORE_MAX_DEVICES];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        switch (sqlite3_column_int(st, 0)) {
        case 0:
            found = true;
            out->email = col_str(st, 1);
            out->phone = col_str(st, 2);
            out->locale = col_str(st, 3);
            out->timezone = col_str(st, 4);
            out->quiet_start = col_str(st, 5);
            out->quiet_end = col_str(st, 6);
            out->webhook_url = col_str(st, 7);
            out->updated_at_ms = sqlite3_column_int64(st, 8);
            out->webhook_secret = col_str(st, 9);
            break;
        case 1:
            if (out->ndevices < STORE_MAX_DEVICES) { /* in seq order (see S_USER_FULL) */
                int64_t sq = sqlite3_column_int64(st, 8);
                int at = out->ndevices++;
                for (; at > 0 && seq[at - 1] > sq; at--) {
                    seq[at] = seq[at - 1];
                    out->devices[at] = out->devices[at - 1];
                }
                seq[at] = sq;
                out->devices[at].platform = col_str(st, 1);
                out->devices[at].token = col_str(st, 2);
            }
            break;
        default: {
            if (*np == cap) {
                cap = cap ? cap * 2 : 4;
                *prefs = xrealloc(*prefs, (size_t)cap * sizeof(**prefs));
            }
            pref_t x = {.category = col_str(st, 1), .channel = (channel_t)sqlite3_column_int(st, 2),
                        .enabled = sqlite3_column_int(st, 3) != 0};
            if (!x.category) x.category = xstrdup("");
            /* in (category, channel) order (see S_USER_FULL) */
            int at = (*np)++;
            for (; at > 0; at--) {
                const pref_t *y = &(*prefs)[at - 1];
                int cmp = strcmp(y->category, x.category);
                if (cmp < 0 || (cmp == 0 && y->channel <= x.channel)) break;
                (*prefs)[at] = *y;
            }
            (*prefs)[at] = x;
            break;
        }
        }
    }
    sqlite3_reset(st);
    hr_t r = rc == SQLITE_DONE ? (found ? HR_OK : HR_NOTFOUND) : sq_err(c, rc, "user read");
    if (r == HR_OK) {
        out->user_id = xstrdup(user_id);
        return HR_OK;
    }
    /* devices or preferences without their user: none of it counts */
    store_user_clear(out);
    memset(out, 0, sizeof(*out));
    store_prefs_free(*prefs, *np);
    *prefs = NULL;
    *np = 0;
    return r;
}

/* Fan-out's lookups for a batch: one read snapshot, one statement per
 * recipient (user, devices and preferences together), one lock
 * acquisition instead of two transactions per recipient. */
hr_t sq_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                               pref_t **prefs, int *nprefs)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, false);
    int i = 0;
    for (; i < n && r == HR_OK; i++) {
        if (!nonempty(ids[i])) continue;
        found[i] = user_read_full(c, ids[i], &out[i], &prefs[i], &nprefs[i]);
        if (found[i] != HR_NOTFOUND) r = found[i];
    }
    if (sqlite3_get_autocommit(c->db) == 0) {
        hr_t e = sq_tx_end(c, r);
        if (r == HR_OK) r = e;
    }
    pthread_mutex_unlock(&c->mu);
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

/* Users in key order with their devices and preferences: three range
 * scans merged, in one snapshot (fan-out fills its cache with it). */
hr_t sq_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                          int *nprefs, int *n)
{
    conn_t *c = sq(s)->rd;
    int k = 0;
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, false);
    sqlite3_stmt *us = r == HR_OK ? sq_stmt(c, S_USER_SCAN) : NULL;
    sqlite3_stmt *ds = us ? sq_stmt(c, S_DEV_SCAN) : NULL;
    sqlite3_stmt *ps = ds ? sq_stmt(c, S_PREF_SCAN) : NULL;
    if (r == HR_OK && !ps) r = HR_ERR;
    int rc = SQLITE_DONE;
    if (r == HR_OK) {
        bind_str(us, 1, after ? after : "");
        sqlite3_bind_int(us, 2, limit);
        while ((rc = sqlite3_step(us)) == SQLITE_ROW) {
            user_t *u = &out[k];
            memset(u, 0, sizeof(*u));
            prefs[k] = NULL;
            nprefs[k] = 0;
            u->user_id = col_str(us, 0);
            u->email = col_str(us, 1);
            u->phone = col_str(us, 2);
            u->locale = col_str(us, 3);
            u->timezone = col_str(us, 4);
            u->quiet_start = col_str(us, 5);
            u->quiet_end = col_str(us, 6);
            u->webhook_url = col_str(us, 7);
            u->updated_at_ms = sqlite3_column_int64(us, 8);
            u->webhook_secret = col_str(us, 9);
            k++;
        }
        sqlite3_reset(us);
        if (rc != SQLITE_DONE) r = sq_err(c, rc, "users scan");
    }
    if (r == HR_OK && k > 0) {
        /* devices and preferences of the same key range, merged by user_id */
        const char *lo = after ? after : "", *hi = out[k - 1].user_id;
        bind_str(ds, 1, lo);
        bind_str(ds, 2, hi);
        int j = 0;
        while ((rc = sqlite3_step(ds)) == SQLITE_ROW) {
            const char *uid = (const char *)sqlite3_column_text(ds, 0);
            while (j < k && strcmp(out[j].user_id, uid) < 0) j++;
            if (j == k) break;
            user_t *u = &out[j];
            if (strcmp(u->user_id, uid) != 0 || u->ndevices == STORE_MAX_DEVICES) continue;
            u->devices[u->ndevices].platform = col_str(ds, 1);
            u->devices[u->ndevices].token = col_str(ds, 2);
            u->ndevices++;
        }
        sqlite3_reset(ds);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) r = sq_err(c, rc, "devices scan");
        bind_str(ps, 1, lo);
        bind_str(ps, 2, hi);
        int cap = 0;
        j = 0;
        while (r == HR_OK && (rc = sqlite3_step(ps)) == SQLITE_ROW) {
            const char *uid = (const char *)sqlite3_column_text(ps, 0);
            while (j < k && strcmp(out[j].user_id, uid) < 0) {
                j++;
                cap = 0;
            }
            if (j == k) break;
            if (strcmp(out[j].user_id, uid) != 0) continue;
            if (nprefs[j] == cap) {
                cap = cap ? cap * 2 : 4;
                prefs[j] = xrealloc(prefs[j], (size_t)cap * sizeof(*prefs[j]));
            }
            pref_t *p = &prefs[j][nprefs[j]++];
            p->category = col_str(ps, 1);
            if (!p->category) p->category = xstrdup("");
            p->channel = (channel_t)sqlite3_column_int(ps, 2);
            p->enabled = sqlite3_column_int(ps, 3) != 0;
        }
        sqlite3_reset(ps);
        if (r == HR_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) r = sq_err(c, rc, "preferences scan");
    }
    if (sqlite3_get_autocommit(c->db) == 0) {
        hr_t e = sq_tx_end(c, r);
        if (r == HR_OK) r = e;
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        for (int i = 0; i < k; i++) {
            store_user_clear(&out[i]);
            store_prefs_free(prefs[i], nprefs[i]);
        }
        return r;
    }
    *n = k;
    return HR_OK;
}

/* ---- preferences ---- */

hr_t sq_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    sqlite3_stmt *del = sq_stmt(c, S_PREF_DEL);
    sqlite3_stmt *add = sq_stmt(c, S_PREF_ADD);
    hr_t r = del && add ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        bind_str(del, 1, user_id);
        r = sq_step_done(c, del, "preferences delete");
    }
    for (int i = 0; i < n && r == HR_OK; i++) {
        bind_str(add, 1, user_id);
        bind_str(add, 2, prefs[i].category ? prefs[i].category : "");
        sqlite3_bind_int(add, 3, (int)prefs[i].channel);
        sqlite3_bind_int(add, 4, prefs[i].enabled ? 1 : 0);
        r = sq_step_done(c, add, "preference add");
    }
    if (r == HR_OK) r = sq_change_note(sq(s), c, SQ_CHG_USER, user_id);
    r = sq_tx_end(c, r); /* rolls back on error; nothing to end if begin failed */
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = prefs_read(c, user_id, out, n);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- subscriptions and follows ---- */

/* A write of (key, member) into a set table; duplicates are ignored.
 * *created: the row is new (the insert changed a row). */
static hr_t set_add(store_t *s, stmt_id_t id, const char *key, const char *member,
                    bool *created, const char *what)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, id);
    if (st) {
        bind_str(st, 1, key);
        bind_str(st, 2, member);
        sqlite3_bind_int64(st, 3, hclock_now_ms());
        r = sq_step_done(c, st, what);
        *created = r == HR_OK && sqlite3_changes(c->db) == 1;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static void id_row(sqlite3_stmt *st, void *elem) { *(char **)elem = col_str(st, 0); }

/* Members of key strictly after `after`, in order, at most limit. */
static hr_t set_page(store_t *s, stmt_id_t id, const char *key, const char *after, int limit,
                     char ***ids, int *n, const char *what)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t rows = {0};
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, id);
    if (st) {
        bind_str(st, 1, key);
        bind_str(st, 2, after ? after : ""); /* members are never empty */
        sqlite3_bind_int(st, 3, limit);
        r = sq_collect(c, st, sizeof(char *), limit, id_row, &rows, NULL, what);
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        store_ids_free(rows.v, rows.n);
        return r;
    }
    *ids = rows.v;
    *n = rows.n;
    return HR_OK;
}

hr_t sq_sub_add(store_t *s, const char *topic, const char *user_id, bool *created)
{
    return set_add(s, S_SUB_ADD, topic, user_id, created, "subscription add");
}

hr_t sq_sub_del(store_t *s, const char *topic, const char *user_id)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_SUB_DEL);
    if (st) {
        bind_str(st, 1, topic);
        bind_str(st, 2, user_id);
        r = sq_step_done(c, st, "subscription delete");
        if (r == HR_OK && sqlite3_changes(c->db) == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                  int *n)
{
    return set_page(s, S_SUB_PAGE, topic, after, limit, ids, n, "subscriptions page");
}

hr_t sq_follow_add(store_t *s, const char *follower, const char *actor, bool *created)
{
    return set_add(s, S_FOLLOW_ADD, actor, follower, created, "follow add");
}

hr_t sq_followers_page(store_t *s, const char *actor, const char *after, int limit, char ***ids,
                       int *n)
{
    return set_page(s, S_FOLLOW_PAGE, actor, after, limit, ids, n, "followers page");
}

/* ---- user lifecycle ---- */

hr_t sq_follow_del(store_t *s, const char *follower, const char *actor)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_FOLLOW_DEL);
    if (st) {
        bind_str(st, 1, actor);
        bind_str(st, 2, follower);
        r = sq_step_done(c, st, "follow delete");
        if (r == HR_OK && sqlite3_changes(c->db) == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_following_page(store_t *s, const char *follower, const char *after, int limit,
                       char ***ids, int *n)
{
    return set_page(s, S_FOLLOWING_PAGE, follower, after, limit, ids, n, "following page");
}

hr_t sq_user_topics_page(store_t *s, const char *user_id, const char *after, int limit,
                         char ***topics, int *n)
{
    return set_page(s, S_USER_TOPICS_PAGE, user_id, after, limit, topics, n, "user topics page");
}

/* Runs a delete bound to (user_id[, limit]); adds the rows it removed. */
static hr_t erase_run(conn_t *c, stmt_id_t id, const char *user_id, int limit, int64_t *count,
                      const char *what)
{
    sqlite3_stmt *st = sq_stmt(c, id);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    if (limit) sqlite3_bind_int(st, 2, limit);
    hr_t r = sq_step_done(c, st, what);
    if (r == HR_OK) *count += sqlite3_changes(c->db);
    return r;
}

/* One erase transaction, c->mu held: up to SQ_ERASE_CHUNK notifications
 * (their status log rows and their rows in the per-user runs) and as
 * many followers; when neither filled its
 * chunk, the user's other rows as well, and *done is set. */
static hr_t erase_step(sq_store_t *q, conn_t *c, const char *user_id, store_erase_t *st, bool *done)
{
    static const struct {
        stmt_id_t id;
        const char *what;
    } rest[] = {
        {S_ERASE_USER, "erase user"},       {S_DEV_DEL, "erase devices"},
        {S_ERASE_PREFS, "erase preferences"}, {S_ERASE_SUBS, "erase subscriptions"},
        {S_ERASE_FOLLOWING, "erase follows"}, {S_ERASE_ADDR, "erase invalid addresses"},
        {S_ERASE_SCHED, "erase scheduled"}, {S_ERASE_INBOX, "erase inbox"},
    };
    char **nids = NULL;
    int nn = 0;
    int64_t notifs = 0, rows = 0, followers = 0, hist = 0;
    sqlite3_stmt *dh = sq_stmt(c, S_ERASE_LOG);
    hr_t r = dh ? sq_tx_begin(c, true) : HR_ERR;
    /* up to SQ_ERASE_CHUNK of the user's notifications out of the runs
     * (store_sqlite_runs.c), then their log rows */
    if (r == HR_OK) r = sq_runs_erase_user(q, c, user_id, SQ_ERASE_CHUNK, &nids, &nn);
    unsigned char idbuf[SQ_ID_BIN];
    for (int i = 0; i < nn && r == HR_OK; i++) {
        bind_id(dh, 1, HSTR(nids[i]), idbuf); /* as status_log stores it */
        if ((r = sq_step_done(c, dh, "erase status log")) != HR_OK) break;
        hist += sqlite3_changes(c->db);
        notifs += sqlite3_changes(c->db) > 0; /* rows of a notification not yet purged */
    }
    sqlite3_clear_bindings(dh);
    for (int i = 0; i < nn; i++) free(nids[i]);
    free(nids);
    if (r == HR_OK)
        r = erase_run(c, S_ERASE_FOLLOWERS, user_id, SQ_ERASE_CHUNK, &followers, "erase followers");
    bool last = nn < SQ_ERASE_CHUNK && followers < SQ_ERASE_CHUNK;
    for (size_t i = 0; last && i < ARRAY_LEN(rest) && r == HR_OK; i++)
        r = erase_run(c, rest[i].id, user_id, 0, &rows, rest[i].what);
    if (last && r == HR_OK) r = sq_feed_erase(c, user_id, &rows); /* store_sqlite_feed.c */
    if (last && r == HR_OK) r = sq_digest_erase(c, user_id, &rows); /* store_sqlite_digest.c */
    if (last && r == HR_OK) r = sq_change_note(q, c, SQ_CHG_USER, user_id);
    r = sq_tx_end(c, r);
    if (r != HR_OK) return r;
    (void)hist; /* history rows go with their notification: not counted apart */
    st->notifications += notifs;
    st->rows += followers + rows;
    st->transactions++;
    *done = last;
    return HR_OK;
}

/* DESIGN: a user with few notifications and followers is erased in one
 * transaction. Larger ones go in chunks of SQ_ERASE_CHUNK, the writer
 * released between them (so the status sink and API writes interleave),
 * and the user row with everything else in the last transaction: until
 * that commits the user still exists, and a second call goes on where a
 * failed one stopped. */
hr_t sq_user_erase(store_t *s, const char *user_id, store_erase_t *st)
{
    conn_t *c = &sq(s)->w;
    bool done = false;
    hr_t r = HR_OK;
    while (!done && r == HR_OK) {
        sq_writer_lock(c);
        r = erase_step(sq(s), c, user_id, st, &done);
        pthread_mutex_unlock(&c->mu);
        /* let a waiting short write in (a mutex is not fair) */
        for (int k = 0; !done && k < 1000 && atomic_load(&c->waiters) > 0; k++) sched_yield();
    }
    return r;
}

/* ---- templates ---- */

hr_t sq_template_put(store_t *s, const template_rec_t *t)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    sqlite3_stmt *st = sq_stmt(c, S_TPL_PUT);
    hr_t r = st ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        bind_str(st, 1, t->event_type);
        sqlite3_bind_int(st, 2, (int)t->channel);
        bind_str(st, 3, nonempty(t->locale) ? t->locale : "en");
        bind_str(st, 4, t->title ? t->title : "");
        bind_str(st, 5, t->body ? t->body : "");
        sqlite3_bind_int64(st, 6, hclock_now_ms());
        sqlite3_bind_int64(st, 7, t->digest_window_ms > 0 ? t->digest_window_ms : 0);
        bind_str(st, 8, t->digest_window_ms > 0 && nonempty(t->digest_key) ? t->digest_key : NULL);
        r = sq_step_done(c, st, "template put");
        if (r == HR_OK) r = sq_change_note(sq(s), c, SQ_CHG_TEMPLATES, NULL);
        r = sq_tx_end(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_template_get(store_t *s, const char *event_type, channel_t ch,
                     const char *const chain[STORE_LOCALE_CHAIN], template_rec_t *out)
{
    _Static_assert(STORE_LOCALE_CHAIN == 3, "S_TPL_GET binds three locales");
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_TPL_GET);
    if (st) {
        bind_str(st, 1, event_type);
        sqlite3_bind_int(st, 2, (int)ch);
        for (int i = 0; i < STORE_LOCALE_CHAIN; i++) bind_str(st, 3 + i, chain[i]);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->event_type = xstrdup(event_type);
            out->channel = ch;
            out->locale = col_str(st, 0);
            out->title = col_str(st, 1);
            out->body = col_str(st, 2);
            out->digest_window_ms = sqlite3_column_int64(st, 3);
            out->digest_key = col_str(st, 4);
            r = HR_OK;
        } else {
            r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "template get");
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_template_channels(store_t *s, const char *event_type, unsigned *mask)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_TPL_CHANNELS);
    if (st) {
        bind_str(st, 1, event_type);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int ch = sqlite3_column_int(st, 0);
            if (ch >= 0 && ch < CH__COUNT) *mask |= 1u << ch;
        }
        sqlite3_reset(st);
        r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "template channels");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}
