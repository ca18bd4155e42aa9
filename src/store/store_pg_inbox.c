/*
 * store_pg_inbox.c - the in-app inbox on PostgreSQL (store.h "in-app
 * inbox"; table inbox, schema/pg/005_inbox.sql). The same statements as
 * SQLite's (store_sqlite_inbox.c): the key is (user_id, notification_id),
 * listings walk (user_id, created_at_ms, notification_id) backwards, a
 * mark sets each state's time once. Each op is one statement on a pooled
 * connection.
 */
#include "store/store_pg_int.h"

#define INBOX_COLS                                                                            \
    "user_id, notification_id, event_id, category, title, body, created_at_ms, seen_at_ms,"   \
    " read_at_ms, archived_at_ms"

hr_t pg_inbox_put(store_t *s, const inbox_item_t *it, bool *created)
{
    pg_t *p = pg(s);
    num_t at = num(it->created_at_ms);
    const char *v[] = {it->user_id, it->notification_id, it->event_id, it->category,
                       it->title ? it->title : "", it->body ? it->body : "", at.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "inbox put",
                         "INSERT INTO inbox (user_id, notification_id, event_id, category, title,"
                         " body, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                         " ON CONFLICT DO NOTHING",
                         7, v, &r);
    if (res) *created = pg_changed(res) > 0;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

hr_t pg_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                          const char *after_id, int limit, inbox_item_t **items, int *n,
                          bool *more)
{
    pg_t *p = pg(s);
    num_t lim = num((int64_t)limit + 1), filt = num(f), ams = num(after_ms);
    const char *v[] = {user_id, lim.s, filt.s, ams.s, after_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(
        cn, "inbox list",
        "SELECT " INBOX_COLS " FROM inbox WHERE user_id = $1"
        " AND ($5::text IS NULL OR created_at_ms < $4"
        " OR (created_at_ms = $4 AND notification_id < $5::text))"
        " AND CASE $3::int WHEN 0 THEN archived_at_ms IS NULL"
        " WHEN 1 THEN read_at_ms IS NULL AND archived_at_ms IS NULL"
        " WHEN 2 THEN read_at_ms IS NOT NULL AND archived_at_ms IS NULL"
        " WHEN 3 THEN seen_at_ms IS NOT NULL AND archived_at_ms IS NULL"
        " ELSE archived_at_ms IS NOT NULL END"
        " ORDER BY created_at_ms DESC, notification_id DESC LIMIT $2",
        5, v, &r);
    if (res) {
        int got = PQntuples(res);
        *more = got > limit;
        if (got > limit) got = limit;
        if (got > 0) *items = xcalloc((size_t)got, sizeof(**items));
        for (int i = 0; i < got; i++) {
            inbox_item_t *it = &(*items)[i];
            it->user_id = col(res, i, 0);
            it->notification_id = col(res, i, 1);
            it->event_id = col(res, i, 2);
            it->category = col(res, i, 3);
            it->title = col(res, i, 4);
            it->body = col(res, i, 5);
            it->created_at_ms = col_i64(res, i, 6);
            it->seen_at_ms = col_i64(res, i, 7);
            it->read_at_ms = col_i64(res, i, 8);
            it->archived_at_ms = col_i64(res, i, 9);
        }
        *n = got;
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

hr_t pg_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen)
{
    pg_t *p = pg(s);
    const char *v[] = {user_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "inbox counts",
                         "SELECT count(*) FILTER (WHERE read_at_ms IS NULL),"
                         " count(*) FILTER (WHERE seen_at_ms IS NULL)"
                         " FROM inbox WHERE user_id = $1 AND archived_at_ms IS NULL",
                         1, v, &r);
    if (res) {
        *unread = col_i64(res, 0, 0);
        *unseen = col_i64(res, 0, 1);
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

hr_t pg_inbox_mark(store_t *s, const char *user_id, const char *notification_id,
                          inbox_mark_t m, int64_t at_ms, int64_t *changed)
{
    pg_t *p = pg(s);
    num_t mk = num(m), at = num(at_ms);
    const char *v[] = {user_id, notification_id, mk.s, at.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    /* $3 = inbox_mark_t (1 seen, 2 read, 3 archived), each implying the
     * ones before; $2 NULL = every item not yet in that state */
    PGresult *res = pg_q(
        cn, "inbox mark",
        "UPDATE inbox SET seen_at_ms = coalesce(seen_at_ms, $4),"
        " read_at_ms = CASE WHEN $3::int >= 2 THEN coalesce(read_at_ms, $4) ELSE read_at_ms END,"
        " archived_at_ms = CASE WHEN $3::int >= 3 THEN coalesce(archived_at_ms, $4)"
        " ELSE archived_at_ms END"
        " WHERE user_id = $1 AND (notification_id = $2::text OR ($2::text IS NULL AND"
        " CASE $3::int WHEN 1 THEN seen_at_ms IS NULL WHEN 2 THEN read_at_ms IS NULL"
        " ELSE archived_at_ms IS NULL END))",
        4, v, &r);
    if (res) {
        *changed = pg_changed(res);
        /* one item: it matched (a state already set is kept, still found) */
        if (notification_id && *changed == 0) r = HR_NOTFOUND;
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

hr_t pg_inbox_del(store_t *s, const char *user_id, const char *notification_id)
{
    pg_t *p = pg(s);
    const char *v[] = {user_id, notification_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "inbox delete",
                         "DELETE FROM inbox WHERE user_id = $1 AND notification_id = $2", 2, v,
                         &r);
    if (res && pg_changed(res) == 0) r = HR_NOTFOUND;
    PQclear(res);
    pg_put(p, cn);
    return r;
}
