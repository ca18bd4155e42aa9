/*
 * store_sqlite_flow.c - the SQLite side of the dispatch policy's state:
 * deferred notifications (table `scheduled`, taken by due time), invalid
 * addresses and redriven DLQ entries.
 * None of this is on the normal delivery path: rows are written only for
 * notifications deferred, dead addresses and redrives.
 */
#include "store/store_sqlite_int.h"

#include "core/log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A write of one statement on the writer: binds with `bind`, steps. */
static hr_t write_one(store_t *s, stmt_id_t id, const char *what,
                      void (*bind)(sqlite3_stmt *st, const void *arg), const void *arg, int *changes)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, id);
    if (st) {
        bind(st, arg);
        r = sq_step_done(c, st, what);
        if (changes) *changes = sqlite3_changes(c->db);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- scheduled ---- */

typedef struct sched_args {
    const char *id;
    hstr_t user_id;
    channel_t ch;
    int64_t due;
    const void *rec;
    size_t len;
} sched_args_t;

static void bind_sched_put(sqlite3_stmt *st, const void *arg)
{
    const sched_args_t *a = arg;
    bind_str(st, 1, a->id);
    sqlite3_bind_int(st, 2, (int)a->ch);
    sqlite3_bind_int64(st, 3, a->due);
    sqlite3_bind_blob(st, 4, a->rec, (int)a->len, SQLITE_STATIC);
    bind_hstr(st, 5, a->user_id);
}

hr_t sq_sched_put(store_t *s, const char *notification_id, hstr_t user_id, channel_t ch,
                  int64_t due_at_ms, const void *rec, size_t rec_len)
{
    sched_args_t a = {notification_id, user_id, ch, due_at_ms, rec, rec_len};
    return write_one(s, S_SCHED_PUT, "schedule put", bind_sched_put, &a, NULL);
}

hr_t sq_sched_fill_users(conn_t *c, int64_t *filled)
{
    sqlite3_stmt *sel = NULL, *up = NULL;
    hr_t r = HR_OK;
    int rc;
    *filled = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT notification_id, record FROM scheduled"
                                  " WHERE user_id IS NULL", -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "UPDATE scheduled SET user_id = ?2 WHERE notification_id = ?1",
                           -1, &up, NULL) != SQLITE_OK) {
        r = sq_err(c, sqlite3_errcode(c->db), "schedule fill users");
        goto out;
    }
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        notif_t m;
        const void *rec = sqlite3_column_blob(sel, 1);
        int len = sqlite3_column_bytes(sel, 1);
        if (!rec || len <= 0 || notif_decode(rec, (size_t)len, &m) != HR_OK || m.user_id.n == 0)
            continue; /* stays NULL: not a record this herald reads */
        sqlite3_bind_value(up, 1, sqlite3_column_value(sel, 0));
        bind_hstr(up, 2, m.user_id);
        if ((r = sq_step_done(c, up, "schedule fill users")) != HR_OK) goto out;
        (*filled)++;
    }
    if (rc != SQLITE_DONE) r = sq_err(c, rc, "schedule fill users");
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(up);
    return r;
}

static void read_sched(sqlite3_stmt *st, void *elem)
{
    sched_row_t *r = elem;
    r->notification_id = col_str(st, 0);
    r->channel = (channel_t)sqlite3_column_int(st, 1);
    r->due_at_ms = sqlite3_column_int64(st, 2);
    int len = sqlite3_column_bytes(st, 3);
    const void *b = sqlite3_column_blob(st, 3);
    r->rec_len = (size_t)len;
    r->rec = xmalloc(len > 0 ? (size_t)len : 1);
    if (len > 0) memcpy(r->rec, b, (size_t)len);
}

hr_t sq_sched_due(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    sq_rows_t out = {0};
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_SCHED_DUE);
    if (st) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int(st, 2, limit);
        r = sq_collect(c, st, sizeof(sched_row_t), limit, read_sched, &out, NULL, "schedule due");
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        store_sched_rows_free(out.v, out.n);
        return r;
    }
    *rows = out.v;
    *n = out.n;
    return HR_OK;
}

hr_t sq_sched_next(store_t *s, int64_t *due)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_SCHED_NEXT);
    if (st) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (sqlite3_column_type(st, 0) != SQLITE_NULL) *due = sqlite3_column_int64(st, 0);
            r = HR_OK;
        } else {
            r = sq_err(c, rc, "schedule next");
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static void bind_sched_del(sqlite3_stmt *st, const void *arg)
{
    const sched_args_t *a = arg;
    bind_str(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->due);
}

hr_t sq_sched_del(store_t *s, const char *notification_id, int64_t due_at_ms)
{
    sched_args_t a = {.id = notification_id, .due = due_at_ms};
    return write_one(s, S_SCHED_DEL, "schedule delete", bind_sched_del, &a, NULL);
}

/* ---- invalid addresses ---- */

typedef struct addr_args {
    const char *user, *address, *reason;
    channel_t ch;
    int64_t at;
} addr_args_t;

static void bind_addr(sqlite3_stmt *st, const void *arg)
{
    const addr_args_t *a = arg;
    bind_str(st, 1, a->user);
    sqlite3_bind_int(st, 2, (int)a->ch);
    bind_str(st, 3, a->address);
    if (a->reason) {
        bind_str(st, 4, a->reason);
        sqlite3_bind_int64(st, 5, a->at);
    }
}

hr_t sq_address_invalid_add(store_t *s, const char *user_id, channel_t ch, const char *address,
                            const char *reason, int64_t at_ms)
{
    addr_args_t a = {user_id, address, reason, ch, at_ms};
    return write_one(s, S_ADDR_BAD_ADD, "invalid address add", bind_addr, &a, NULL);
}

/* Does a one-row probe (SELECT 1 ...) find a row? */
static hr_t probe(conn_t *c, stmt_id_t id, void (*bind)(sqlite3_stmt *st, const void *arg),
                  const void *arg, bool *found, const char *what)
{
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, id);
    if (st) {
        bind(st, arg);
        int rc = sqlite3_step(st);
        *found = rc == SQLITE_ROW;
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, what);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_address_invalid_get(store_t *s, const char *user_id, channel_t ch, const char *address,
                            bool *invalid)
{
    addr_args_t a = {user_id, address, NULL, ch, 0};
    return probe(sq(s)->rd, S_ADDR_BAD_GET, bind_addr, &a, invalid, "invalid address get");
}

/* ---- redriven DLQ entries ---- */

typedef struct dlq_args {
    const char *id;
    int64_t at;
} dlq_args_t;

static void bind_dlq(sqlite3_stmt *st, const void *arg)
{
    const dlq_args_t *a = arg;
    bind_str(st, 1, a->id);
    if (a->at) sqlite3_bind_int64(st, 2, a->at);
}

hr_t sq_dlq_mark(store_t *s, const char *dlq_id, int64_t at_ms, bool *first)
{
    dlq_args_t a = {dlq_id, at_ms > 0 ? at_ms : 1};
    int changes = 0;
    hr_t r = write_one(s, S_DLQ_MARK, "dlq redriven mark", bind_dlq, &a, &changes);
    *first = r == HR_OK && changes > 0;
    return r;
}

hr_t sq_dlq_get(store_t *s, const char *dlq_id, bool *done)
{
    dlq_args_t a = {dlq_id, 0};
    return probe(sq(s)->rd, S_DLQ_GET, bind_dlq, &a, done, "dlq redriven get");
}
