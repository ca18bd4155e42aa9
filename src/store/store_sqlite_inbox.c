/*
 * store_sqlite_inbox.c - the in-app inbox in SQLite (store.h "in-app
 * inbox"). The inbox table's key is (user_id, notification_id); listings
 * walk the (user_id, created_at_ms, notification_id) index backwards. Writes
 * are short (one row, or one user's rows for a mark-all) and take the
 * writer like the other short writes; reads go to the reader connection.
 */
#include "store/store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

hr_t sq_inbox_put(store_t *s, const inbox_item_t *it, bool *created)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_INBOX_PUT);
    if (st) {
        bind_str(st, 1, it->user_id);
        bind_str(st, 2, it->notification_id);
        bind_str(st, 3, it->event_id);
        bind_str(st, 4, it->category);
        bind_str(st, 5, it->title ? it->title : "");
        bind_str(st, 6, it->body ? it->body : "");
        sqlite3_bind_int64(st, 7, it->created_at_ms);
        r = sq_step_done(c, st, "inbox put");
        if (r == HR_OK) *created = sqlite3_changes(c->db) > 0;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static void item_read(sqlite3_stmt *st, void *elem)
{
    inbox_item_t *it = elem;
    it->user_id = col_str(st, 0);
    it->notification_id = col_str(st, 1);
    it->event_id = col_str(st, 2);
    it->category = col_str(st, 3);
    it->title = col_str(st, 4);
    it->body = col_str(st, 5);
    it->created_at_ms = sqlite3_column_int64(st, 6);
    it->seen_at_ms = sqlite3_column_int64(st, 7);
    it->read_at_ms = sqlite3_column_int64(st, 8);
    it->archived_at_ms = sqlite3_column_int64(st, 9);
}

hr_t sq_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                   const char *after_id, int limit, inbox_item_t **items, int *n, bool *more)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t v = {0};
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_INBOX_LIST);
    if (st) {
        bind_str(st, 1, user_id);
        sqlite3_bind_int(st, 2, limit + 1); /* one more tells whether a next page exists */
        sqlite3_bind_int(st, 3, (int)f);
        sqlite3_bind_int64(st, 4, after_ms);
        bind_str(st, 5, after_id);
        r = sq_collect(c, st, sizeof(inbox_item_t), limit, item_read, &v, more, "inbox list");
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        inbox_items_free(v.v, v.n);
        *more = false;
        return r;
    }
    *items = v.v;
    *n = v.n;
    return HR_OK;
}

hr_t sq_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_INBOX_COUNTS);
    if (st) {
        bind_str(st, 1, user_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *unread = sqlite3_column_int64(st, 0);
            *unseen = sqlite3_column_int64(st, 1);
            r = HR_OK;
        } else {
            r = sq_err(c, rc, "inbox counts");
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_inbox_mark(store_t *s, const char *user_id, const char *notification_id, inbox_mark_t m,
                   int64_t at_ms, int64_t *changed)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_INBOX_MARK);
    if (st) {
        bind_str(st, 1, user_id);
        bind_str(st, 2, notification_id);
        sqlite3_bind_int(st, 3, (int)m);
        sqlite3_bind_int64(st, 4, at_ms);
        r = sq_step_done(c, st, "inbox mark");
        if (r == HR_OK) *changed = sqlite3_changes(c->db);
        /* one item: it matched (a state already set is kept, still found) */
        if (r == HR_OK && notification_id && *changed == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_inbox_del(store_t *s, const char *user_id, const char *notification_id)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_INBOX_DEL);
    if (st) {
        bind_str(st, 1, user_id);
        bind_str(st, 2, notification_id);
        r = sq_step_done(c, st, "inbox delete");
        if (r == HR_OK && sqlite3_changes(c->db) == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}
