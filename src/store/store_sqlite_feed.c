/*
 * store_sqlite_feed.c - pull fan-out's actor feed in SQLite (store.h "pull
 * fan-out"). Tables actor_feed and feed_state (schema/sqlite.sql). What a
 * follower sees is a join of its follows (index follows_follower) with the
 * followed actors' feed items (key: actor, notification_id) and its own
 * state rows. The statements run seldom (an inbox read, a mark), so they
 * are prepared per call rather than cached in the statement table.
 */
#include "store/store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* the feed items ?1 sees, with its state st (NULL columns: none yet) */
#define VISIBLE                                                                                \
    " FROM follows fo JOIN actor_feed f ON f.actor = fo.actor"                                 \
    " LEFT JOIN feed_state st ON st.user_id = ?1 AND st.notification_id = f.notification_id"  \
    " WHERE fo.follower = ?1 AND ?1 > f.after_key AND f.created_at_ms >= fo.created_at"        \
    " AND coalesce(st.deleted, 0) = 0"

static sqlite3_stmt *prep(conn_t *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        sq_err(c, rc, "feed statement");
        return NULL;
    }
    return st;
}

hr_t sq_feed_put(store_t *s, const char *actor, const char *after_key, int priority,
                 const inbox_item_t *it, bool *created)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = prep(c, "INSERT INTO actor_feed (actor, notification_id, event_id, category,"
                               " title, body, priority, after_key, created_at_ms)"
                               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING");
    if (st) {
        bind_str(st, 1, actor);
        bind_str(st, 2, it->notification_id);
        bind_str(st, 3, it->event_id);
        bind_str(st, 4, it->category);
        bind_str(st, 5, it->title ? it->title : "");
        bind_str(st, 6, it->body ? it->body : "");
        sqlite3_bind_int(st, 7, priority);
        bind_str(st, 8, after_key);
        sqlite3_bind_int64(st, 9, it->created_at_ms);
        int rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "feed put");
        if (r == HR_OK) *created = sqlite3_changes(c->db) > 0;
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_followers_count(store_t *s, const char *actor, int64_t limit, int64_t *n)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st =
        prep(c, "SELECT count(*) FROM (SELECT 1 FROM follows WHERE actor = ?1 LIMIT ?2)");
    if (st) {
        bind_str(st, 1, actor);
        sqlite3_bind_int64(st, 2, limit);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *n = sqlite3_column_int64(st, 0);
            r = HR_OK;
        } else {
            r = sq_err(c, rc, "followers count");
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_feed_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                  const char *after_id, int limit, inbox_item_t **items, int **prio, int *n,
                  bool *more)
{
    conn_t *c = sq(s)->rd;
    inbox_item_t *v = xcalloc((size_t)limit, sizeof(*v));
    int *pr = xcalloc((size_t)limit, sizeof(*pr));
    int k = 0;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = prep(
        c, "SELECT f.notification_id, f.event_id, f.category, f.title, f.body, f.created_at_ms,"
           " st.seen_at_ms, st.read_at_ms, st.archived_at_ms, f.priority" VISIBLE
           " AND (?5 IS NULL OR f.created_at_ms < ?4 OR (f.created_at_ms = ?4 AND f.notification_id < ?5))"
           " AND CASE ?3 WHEN 0 THEN st.archived_at_ms IS NULL"
           " WHEN 1 THEN st.read_at_ms IS NULL AND st.archived_at_ms IS NULL"
           " WHEN 2 THEN st.read_at_ms IS NOT NULL AND st.archived_at_ms IS NULL"
           " WHEN 3 THEN st.seen_at_ms IS NOT NULL AND st.archived_at_ms IS NULL"
           " ELSE st.archived_at_ms IS NOT NULL END"
           " ORDER BY f.created_at_ms DESC, f.notification_id DESC LIMIT ?2");
    if (st) {
        bind_str(st, 1, user_id);
        sqlite3_bind_int(st, 2, limit + 1);
        sqlite3_bind_int(st, 3, (int)f);
        sqlite3_bind_int64(st, 4, after_ms);
        bind_str(st, 5, after_id);
        int rc;
        *more = false;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (k == limit) {
                *more = true;
                break;
            }
            inbox_item_t *it = &v[k];
            it->user_id = xstrdup(user_id);
            it->notification_id = col_str(st, 0);
            it->event_id = col_str(st, 1);
            it->category = col_str(st, 2);
            it->title = col_str(st, 3);
            it->body = col_str(st, 4);
            it->created_at_ms = sqlite3_column_int64(st, 5);
            it->seen_at_ms = sqlite3_column_int64(st, 6);
            it->read_at_ms = sqlite3_column_int64(st, 7);
            it->archived_at_ms = sqlite3_column_int64(st, 8);
            pr[k] = sqlite3_column_int(st, 9);
            k++;
        }
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "feed list");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        inbox_items_free(v, k);
        free(pr);
        *more = false;
        return r;
    }
    *items = v;
    *n = k;
    if (prio) *prio = pr;
    else free(pr);
    return HR_OK;
}

/* Does the user see the item (not deleted)? Writer held. */
static hr_t visible(conn_t *c, const char *user_id, const char *nid)
{
    sqlite3_stmt *st = prep(c, "SELECT 1" VISIBLE " AND f.notification_id = ?2");
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    bind_str(st, 2, nid);
    int rc = sqlite3_step(st);
    hr_t r = rc == SQLITE_ROW ? HR_OK : rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "feed item");
    sqlite3_finalize(st);
    return r;
}

hr_t sq_feed_mark(store_t *s, const char *user_id, const char *notification_id, inbox_mark_t m,
                  int64_t at_ms, int64_t *changed)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = notification_id ? visible(c, user_id, notification_id) : HR_OK;
    sqlite3_stmt *st = NULL;
    if (r == HR_OK)
        st = prep(c, "INSERT INTO feed_state (user_id, notification_id, seen_at_ms, read_at_ms,"
                     " archived_at_ms) SELECT ?1, f.notification_id, ?4,"
                     " CASE WHEN ?3 >= 2 THEN ?4 END, CASE WHEN ?3 >= 3 THEN ?4 END" VISIBLE
                     " AND (?2 IS NULL OR f.notification_id = ?2) AND CASE ?3"
                     " WHEN 1 THEN st.seen_at_ms IS NULL WHEN 2 THEN st.read_at_ms IS NULL"
                     " ELSE st.archived_at_ms IS NULL END"
                     " ON CONFLICT (user_id, notification_id) DO UPDATE SET"
                     " seen_at_ms = coalesce(seen_at_ms, excluded.seen_at_ms),"
                     " read_at_ms = coalesce(read_at_ms, excluded.read_at_ms),"
                     " archived_at_ms = coalesce(archived_at_ms, excluded.archived_at_ms)");
    if (r == HR_OK && !st) r = HR_ERR;
    if (st) {
        bind_str(st, 1, user_id);
        bind_str(st, 2, notification_id);
        sqlite3_bind_int(st, 3, (int)m);
        sqlite3_bind_int64(st, 4, at_ms);
        int rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "feed mark");
        if (r == HR_OK) *changed = sqlite3_changes(c->db);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_feed_del(store_t *s, const char *user_id, const char *notification_id)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = visible(c, user_id, notification_id);
    if (r == HR_OK) {
        sqlite3_stmt *st = prep(c, "INSERT INTO feed_state (user_id, notification_id, deleted)"
                                   " VALUES (?1, ?2, 1) ON CONFLICT (user_id, notification_id)"
                                   " DO UPDATE SET deleted = 1");
        r = HR_ERR;
        if (st) {
            bind_str(st, 1, user_id);
            bind_str(st, 2, notification_id);
            int rc = sqlite3_step(st);
            r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "feed delete");
            sqlite3_finalize(st);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_feed_erase(conn_t *c, const char *user_id, int64_t *count)
{
    static const char *const sql[] = {"DELETE FROM feed_state WHERE user_id = ?1",
                                       "DELETE FROM actor_feed WHERE actor = ?1"};
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = prep(c, sql[i]);
        if (!st) return HR_ERR;
        bind_str(st, 1, user_id);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return sq_err(c, rc, "erase feed");
        *count += sqlite3_changes(c->db);
    }
    return HR_OK;
}
