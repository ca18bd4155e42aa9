/*
 * store_sqlite_digest.c - digests in SQLite (store.h "digests"; tables
 * digests and digest_members, schema/sqlite.sql, version 7).
 *
 * A batch of members is one write transaction: per member, a lookup of the
 * member (counted before?), of its key's open digest, and two writes (the
 * member, the count). A digest that opens also puts its flush token in the
 * scheduled table in the same transaction, so a digest never exists
 * without the token that will deliver it. The statements are prepared per
 * call (a dispatcher's batch, a flush), not cached in the statement table.
 */
#include "store/store_sqlite_int.h"

#include "core/buf.h"
#include "core/log.h"
#include "model/digest.h"

#include <stdlib.h>
#include <string.h>

enum {
    D_MEMBER_GET,
    D_OPEN_GET,
    D_CLOSE,
    D_OPEN,
    D_TOKEN,
    D_MEMBER_ADD,
    D_COUNT,
    D__COUNT
};

static const char *const sql[D__COUNT] = {
    [D_MEMBER_GET] = "SELECT digest_id FROM digest_members WHERE notification_id = ?1",
    [D_OPEN_GET] = "SELECT digest_id, due_at_ms FROM digests"
                   " WHERE user_id = ?1 AND channel = ?2 AND dkey = ?3 AND closed = 0",
    [D_CLOSE] = "UPDATE digests SET closed = 1 WHERE digest_id = ?1",
    [D_OPEN] = "INSERT INTO digests (digest_id, user_id, channel, dkey, opened_at_ms, due_at_ms,"
               " closed, count, first_actor, last_actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?7)"
               " ON CONFLICT DO NOTHING",
    [D_TOKEN] = "INSERT OR REPLACE INTO scheduled (notification_id, channel, due_at_ms, record, user_id)"
                " VALUES (?1, ?2, ?3, ?4, ?5)",
    [D_MEMBER_ADD] = "INSERT INTO digest_members (notification_id, digest_id, user_id, at_ms)"
                     " VALUES (?1, ?2, ?3, ?4)",
    [D_COUNT] = "UPDATE digests SET count = count + 1, last_actor = ?2 WHERE digest_id = ?1",
};

static void finalize_all(sqlite3_stmt **st)
{
    for (int i = 0; i < D__COUNT; i++) sqlite3_finalize(st[i]);
}

/* Runs a statement that returns no rows and resets it (bindings cleared). */
static hr_t done(conn_t *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, what);
}

/* One member; c->mu held, inside the transaction. */
static hr_t add_one(conn_t *c, sqlite3_stmt **st, int64_t now_ms, digest_add_t *m, buf_t *tok)
{
    int rc;
    /* counted before? */
    bind_hstr(st[D_MEMBER_GET], 1, m->notification_id);
    rc = sqlite3_step(st[D_MEMBER_GET]);
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st[D_MEMBER_GET], 0);
        snprintf(m->digest_id, sizeof(m->digest_id), "%s", id ? (const char *)id : "");
    }
    sqlite3_reset(st[D_MEMBER_GET]);
    if (rc == SQLITE_ROW) return HR_OK;
    if (rc != SQLITE_DONE) return sq_err(c, rc, "digest member");

    /* its key's open digest, unless its window is over */
    bind_hstr(st[D_OPEN_GET], 1, m->user_id);
    sqlite3_bind_int(st[D_OPEN_GET], 2, (int)m->channel);
    bind_hstr(st[D_OPEN_GET], 3, m->dkey);
    rc = sqlite3_step(st[D_OPEN_GET]);
    bool open = false, over = false;
    if (rc == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st[D_OPEN_GET], 0);
        snprintf(m->digest_id, sizeof(m->digest_id), "%s", id ? (const char *)id : "");
        open = true;
        over = sqlite3_column_int64(st[D_OPEN_GET], 1) <= now_ms;
    }
    sqlite3_reset(st[D_OPEN_GET]);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(c, rc, "digest open");
    hr_t r;
    if (open && over) {
        /* its token (due already) delivers it; this member starts the next */
        bind_str(st[D_CLOSE], 1, m->digest_id);
        if ((r = done(c, st[D_CLOSE], "digest close")) != HR_OK) return r;
        open = false;
    }
    if (!open) {
        /* The id is made from the opening time. Taken already (a digest of
         * the key opened in the same millisecond: only a clock stepping
         * back does that), the next millisecond is. */
        int64_t opened = now_ms, due;
        for (int tries = 0;; tries++, opened++) {
            due = opened + m->window_ms;
            digest_make_id(m->user_id, m->channel, m->dkey, opened, m->digest_id);
            sqlite3_stmt *o = st[D_OPEN];
            bind_str(o, 1, m->digest_id);
            bind_hstr(o, 2, m->user_id);
            sqlite3_bind_int(o, 3, (int)m->channel);
            bind_hstr(o, 4, m->dkey);
            sqlite3_bind_int64(o, 5, opened);
            sqlite3_bind_int64(o, 6, due);
            bind_hstr(o, 7, m->actor);
            if ((r = done(c, o, "digest open")) != HR_OK) return r;
            if (sqlite3_changes(c->db) > 0) break;
            if (tries == 16) return sq_err(c, SQLITE_CONSTRAINT, "digest open: id taken");
        }
        buf_reset(tok);
        if (digest_token_make(m->rec, m->rec_len, m->digest_id, due, tok) != HR_OK) {
            log_warn(SQ_LOG, "digest member %.*s: record unreadable", (int)m->notification_id.n,
                     m->notification_id.p);
            return HR_INVALID;
        }
        sqlite3_stmt *t = st[D_TOKEN];
        bind_str(t, 1, m->digest_id);
        sqlite3_bind_int(t, 2, (int)m->channel);
        sqlite3_bind_int64(t, 3, due);
        sqlite3_bind_blob(t, 4, tok->data, (int)tok->len, SQLITE_STATIC);
        bind_hstr(t, 5, m->user_id);
        if ((r = done(c, t, "digest token")) != HR_OK) return r;
        m->opened = true;
    }
    sqlite3_stmt *a = st[D_MEMBER_ADD];
    bind_hstr(a, 1, m->notification_id);
    bind_str(a, 2, m->digest_id);
    bind_hstr(a, 3, m->user_id);
    sqlite3_bind_int64(a, 4, now_ms);
    if ((r = done(c, a, "digest member add")) != HR_OK) return r;
    bind_str(st[D_COUNT], 1, m->digest_id);
    bind_hstr(st[D_COUNT], 2, m->actor);
    if ((r = done(c, st[D_COUNT], "digest count")) != HR_OK) return r;
    m->added = true;
    return HR_OK;
}

hr_t sq_digest_add_batch(store_t *s, int64_t now_ms, digest_add_t *v, int n)
{
    conn_t *c = &sq(s)->w;
    sqlite3_stmt *st[D__COUNT] = {0};
    buf_t tok;
    buf_init(&tok, 0);
    sq_writer_lock(c);
    hr_t r = HR_OK;
    for (int i = 0; i < D__COUNT && r == HR_OK; i++) {
        int rc = sqlite3_prepare_v2(c->db, sql[i], -1, &st[i], NULL);
        if (rc != SQLITE_OK) r = sq_err(c, rc, "digest statement");
    }
    if (r == HR_OK) r = sq_tx_begin(c, true);
    if (r == HR_OK) {
        for (int i = 0; i < n && r == HR_OK; i++) r = add_one(c, st, now_ms, &v[i], &tok);
        r = sq_tx_end(c, r);
    }
    finalize_all(st);
    pthread_mutex_unlock(&c->mu);
    buf_release(&tok);
    if (r != HR_OK)
        for (int i = 0; i < n; i++) v[i].added = v[i].opened = false;
    return r;
}

hr_t sq_digest_close(store_t *s, const char *digest_id, digest_info_t *out)
{
    conn_t *c = &sq(s)->w;
    sqlite3_stmt *up = NULL, *get = NULL;
    sq_writer_lock(c);
    hr_t r = HR_OK;
    int rc = sqlite3_prepare_v2(c->db, "UPDATE digests SET closed = 1 WHERE digest_id = ?1", -1, &up, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(c->db,
                                "SELECT count, first_actor, last_actor, opened_at_ms, due_at_ms"
                                " FROM digests WHERE digest_id = ?1",
                                -1, &get, NULL);
    if (rc != SQLITE_OK) r = sq_err(c, rc, "digest statement");
    if (r == HR_OK) r = sq_tx_begin(c, true);
    if (r == HR_OK) {
        bind_str(up, 1, digest_id);
        r = done(c, up, "digest close");
        if (r == HR_OK) {
            bind_str(get, 1, digest_id);
            rc = sqlite3_step(get);
            if (rc == SQLITE_ROW) {
                out->count = sqlite3_column_int64(get, 0);
                out->first_actor = col_str(get, 1);
                out->last_actor = col_str(get, 2);
                out->opened_at_ms = sqlite3_column_int64(get, 3);
                out->due_at_ms = sqlite3_column_int64(get, 4);
            } else {
                r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "digest read");
            }
            sqlite3_reset(get);
        }
        /* nothing was changed when it is unknown: commit either way */
        hr_t e = sq_tx_end(c, r == HR_NOTFOUND ? HR_OK : r);
        if (r == HR_OK) r = e;
    }
    sqlite3_finalize(up);
    sqlite3_finalize(get);
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) digest_info_clear(out);
    return r;
}

/* Runs one statement with ?1 = text or integer; *count += rows changed. */
static hr_t run1(conn_t *c, const char *q, const char *text, int64_t num, int64_t *count)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, q, -1, &st, NULL);
    if (rc != SQLITE_OK) return sq_err(c, rc, "digest statement");
    if (text) bind_str(st, 1, text);
    else sqlite3_bind_int64(st, 1, num);
    rc = sqlite3_step(st);
    hr_t r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "digest erase/purge");
    if (r == HR_OK && count) *count += sqlite3_changes(c->db);
    sqlite3_finalize(st);
    return r;
}

hr_t sq_digest_erase(conn_t *c, const char *user_id, int64_t *count)
{
    hr_t r = run1(c, "DELETE FROM digests WHERE user_id = ?1", user_id, 0, count);
    if (r == HR_OK) r = run1(c, "DELETE FROM digest_members WHERE user_id = ?1", user_id, 0, count);
    return r;
}

hr_t sq_digest_purge(conn_t *c, int64_t before_ms, int64_t *count)
{
    hr_t r = run1(c, "DELETE FROM digests WHERE closed = 1 AND due_at_ms < ?1", NULL, before_ms, count);
    if (r == HR_OK) r = run1(c, "DELETE FROM digest_members WHERE at_ms < ?1", NULL, before_ms, count);
    return r;
}
