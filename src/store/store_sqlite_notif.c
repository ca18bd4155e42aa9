/*
 * store_sqlite_notif.c - the SQLite backend's ops for the event dedupe
 * claims and the notification records: the status sink's batched upserts
 * (the hot path), reads, listing, the "already sent" checks and the purge
 * (store_sqlite_int.h lists the files of the backend; the DESIGN note is
 * atop store_sqlite.c).
 *
 * Arguments arrive validated by store.c (store_int.h). Threads: any.
 */
#include "store/store_sqlite_int.h"

#include "core/log.h"
#include "model/lifecycle.h"
#include "model/trace.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define LOG SQ_LOG
#define YIELD_EVERY 32           /* batch rows between looks for waiting writers */
#define YIELD_SPINS 1000         /* sched_yield()s at most while letting them in */

/* ---- event dedupe ---- */

/* One claim on the writer (c->mu held, inside or outside a transaction). */
static hr_t claim_one(conn_t *c, const char *event_id, const char *position, int64_t now,
                      claim_t *out)
{
    sqlite3_stmt *st = sq_stmt(c, S_EVENT_ADD);
    if (!st) return HR_ERR;
    bind_str(st, 1, event_id);
    bind_str(st, 2, position);
    sqlite3_bind_int64(st, 3, now);
    hr_t r = sq_step_done(c, st, "event claim");
    if (r != HR_OK) return r;
    if (sqlite3_changes(c->db) == 1) {
        *out = CLAIM_NEW;
        return HR_OK;
    }
    if (!(st = sq_stmt(c, S_EVENT_GET))) return HR_ERR;
    bind_str(st, 1, event_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *pos = (const char *)sqlite3_column_text(st, 0);
        *out = pos && strcmp(pos, position) == 0 ? CLAIM_SAME : CLAIM_DUP;
    } else {
        r = sq_err(c, rc, "event claim lookup");
    }
    sqlite3_reset(st);
    return r;
}

hr_t sq_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    conn_t *c = &sq(s)->ev;
    pthread_mutex_lock(&c->mu);
    hr_t r = claim_one(c, event_id, position, hclock_now_ms(), out);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* One write transaction for the whole batch: fan-out claims every event of
 * a polled batch at once instead of committing once per event. */
hr_t sq_event_claim_batch(store_t *s, const char *const *ids, const char *const *positions,
                          int n, claim_t *out)
{
    conn_t *c = &sq(s)->ev;
    int64_t now = hclock_now_ms();
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, true);
    if (r == HR_OK) {
        for (int i = 0; i < n && r == HR_OK; i++)
            r = claim_one(c, ids[i], positions[i] ? positions[i] : "", now, &out[i]);
        r = sq_tx_end(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- notifications ---- */

/* The hot path of the status sink: one transaction (committed early when a
 * short write waits for the writer, see DESIGN), cached statements, strings
 * bound in place (no copies, no allocation per row). */
hr_t sq_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    conn_t *c = &sq(s)->w;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *up = sq_stmt(c, S_NOTIF_UPSERT);
    sqlite3_stmt *look = sq_stmt(c, S_NOTIF_ROWID);
    sqlite3_stmt *hi = sq_stmt(c, S_HIST_ADD);
    hr_t r = up && look && hi ? sq_tx_begin(c, true) : HR_ERR;
    if (r != HR_OK) goto out;
    int64_t now = hclock_now_ms();
    for (int i = 0; i < n && r == HR_OK; i++) {
        const notif_t *m = recs[i]; /* valid: store.c dropped the others */
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        bool sent = store_status_sent(m->status);
        bind_hstr(up, 1, m->notification_id);
        bind_hstr(up, 2, m->event_id);
        bind_hstr(up, 3, m->user_id);
        sqlite3_bind_int(up, 4, (int)m->channel);
        bind_hstr(up, 5, m->category);
        bind_hstr(up, 6, m->title);
        bind_hstr(up, 7, m->body);
        bind_hstr(up, 8, m->address);
        sqlite3_bind_int(up, 9, (int)m->status);
        sqlite3_bind_int(up, 10, m->attempt);
        bind_hstr_opt(up, 11, m->channel_msg_id);
        bind_hstr_opt(up, 12, m->metadata);
        bind_hstr_opt(up, 13, m->error);
        sqlite3_bind_int64(up, 14, m->created_at_ms ? m->created_at_ms : at);
        sqlite3_bind_int64(up, 15, at);
        if (sent) sqlite3_bind_int64(up, 16, at);
        else sqlite3_bind_null(up, 16);
        sqlite3_bind_int(up, 17, lifecycle_rank(m->status));
        /* only a well-formed trace context is kept (the API shows it) */
        bind_hstr_opt(up, 18, trace_is_v00(m->traceparent.p, m->traceparent.n) ? m->traceparent
                                                                              : (hstr_t){NULL, 0});
        /* The history row needs the notification's rowid. When the upsert
         * inserted, last_insert_rowid moved to it; otherwise (update, or a
         * record refused by the final-state rule) look it up: a cheap probe
         * of the index page just visited. */
        int64_t before = sqlite3_last_insert_rowid(c->db);
        if ((r = sq_step_done(c, up, "notification upsert")) != HR_OK) break;
        int64_t rowid = sqlite3_last_insert_rowid(c->db);
        if (rowid == before) {
            bind_hstr(look, 1, m->notification_id);
            int rc = sqlite3_step(look);
            if (rc == SQLITE_ROW) rowid = sqlite3_column_int64(look, 0);
            sqlite3_reset(look);
            if (rc != SQLITE_ROW) {
                r = sq_err(c, rc, "notification rowid");
                break;
            }
        }

        sqlite3_bind_int64(hi, 1, rowid);
        bind_hstr(hi, 2, m->notification_id);
        sqlite3_bind_int(hi, 3, (int)m->status);
        sqlite3_bind_int(hi, 4, m->attempt);
        sqlite3_bind_int64(hi, 5, at);
        bind_hstr_opt(hi, 6, m->error.n ? m->error : m->channel_msg_id);
        r = sq_step_done(c, hi, "status history add");
        if (r == HR_OK && (i + 1) % YIELD_EVERY == 0 && i + 1 < n && atomic_load(&c->waiters) > 0) {
            /* a short write is waiting: commit, let it in, go on */
            if ((r = sq_tx_end(c, r)) != HR_OK) break;
            pthread_mutex_unlock(&c->mu);
            for (int k = 0; k < YIELD_SPINS && atomic_load(&c->waiters) > 0; k++) sched_yield();
            pthread_mutex_lock(&c->mu);
            r = sq_tx_begin(c, true);
        }
    }
    /* the bound pointers belong to the caller: drop them */
    sqlite3_clear_bindings(up);
    sqlite3_clear_bindings(look);
    sqlite3_clear_bindings(hi);
    if (sqlite3_get_autocommit(c->db) == 0) r = sq_tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Fills r from a row selected with NOTIF_COLS (an sq_row_fn). */
static void row_read(sqlite3_stmt *st, void *elem)
{
    notif_row_t *r = elem;
    r->notification_id = col_str(st, 0);
    r->event_id = col_str(st, 1);
    r->user_id = col_str(st, 2);
    r->channel = (channel_t)sqlite3_column_int(st, 3);
    r->category = col_str(st, 4);
    r->title = col_str(st, 5);
    r->body = col_str(st, 6);
    r->address = col_str(st, 7);
    r->status = (notif_status_t)sqlite3_column_int(st, 8);
    r->attempt = sqlite3_column_int(st, 9);
    r->channel_msg_id = col_str(st, 10);
    r->error = col_str(st, 11);
    r->created_at_ms = sqlite3_column_int64(st, 12);
    r->updated_at_ms = sqlite3_column_int64(st, 13);
    r->delivered_at_ms = sqlite3_column_int64(st, 14); /* NULL reads as 0 */
    r->traceparent = col_str(st, 15);
}

static void hist_row(sqlite3_stmt *st, void *elem)
{
    status_hist_t *h = elem;
    h->status = (notif_status_t)sqlite3_column_int(st, 0);
    h->attempt = sqlite3_column_int(st, 1);
    h->at_ms = sqlite3_column_int64(st, 2);
    h->detail = col_str(st, 3);
}

hr_t sq_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                  status_hist_t **hist, int *nhist)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t h = {0};
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_GET);
    sqlite3_stmt *hs = hist ? sq_stmt(c, S_HIST_GET) : NULL;
    hr_t r = st && (hs || !hist) ? sq_tx_begin(c, false) : HR_ERR; /* one snapshot */
    if (r != HR_OK) goto out;
    bind_str(st, 1, notification_id);
    int rc = sqlite3_step(st);
    int64_t rowid = 0;
    if (rc == SQLITE_ROW) {
        row_read(st, out);
        rowid = sqlite3_column_int64(st, 16);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "notification get");
    if (r == HR_OK && hs) {
        sqlite3_bind_int64(hs, 1, rowid);
        r = sq_collect(c, hs, sizeof(status_hist_t), INT_MAX, hist_row, &h, NULL,
                       "status history get");
    }
    r = sq_tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        notif_row_clear(out);
        store_status_hist_free(h.v, h.n);
        return r;
    }
    if (hist) {
        *hist = h.v;
        *nhist = h.n;
    }
    return HR_OK;
}

hr_t sq_notif_list_user(store_t *s, const char *user_id, int64_t after_ms, const char *after_id,
                        int limit, notif_row_t **rows, int *n, bool *more)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t v = {0};
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, after_id ? S_NOTIF_LIST_AFTER : S_NOTIF_LIST);
    if (st) {
        bind_str(st, 1, user_id);
        sqlite3_bind_int(st, 2, limit + 1); /* one more tells whether a next page exists */
        if (after_id) {
            sqlite3_bind_int64(st, 3, after_ms);
            bind_str(st, 4, after_id);
        }
        r = sq_collect(c, st, sizeof(notif_row_t), limit, row_read, &v, more, "notification list");
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        notif_rows_free(v.v, v.n);
        *more = false;
        return r;
    }
    *rows = v.v;
    *n = v.n;
    return HR_OK;
}

/* Unknown ids are not sent: HR_OK with *sent = false. */
hr_t sq_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_STATUS);
    if (st) {
        bind_str(st, 1, notification_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            int status = sqlite3_column_int(st, 0);
            *sent = store_status_sent((notif_status_t)status);
        }
        sqlite3_reset(st);
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "notification sent");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Dispatch's replay check for a batch: one read snapshot, one cached
 * statement, one lock acquisition. */
hr_t sq_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_STATUS);
    hr_t r = st ? sq_tx_begin(c, false) : HR_ERR;
    for (int i = 0; i < n && r == HR_OK; i++) {
        bind_hstr(st, 1, ids[i]);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) sent[i] = store_status_sent((notif_status_t)sqlite3_column_int(st, 0));
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "notification sent batch");
    }
    if (st) sqlite3_clear_bindings(st); /* the ids belong to the caller */
    r = sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

static void rowid_row(sqlite3_stmt *st, void *elem)
{
    *(int64_t *)elem = sqlite3_column_int64(st, 0);
}

/* One purge transaction: up to SQ_PURGE_CHUNK notifications after rowid
 * *last. Sets *done when the table has been walked to its end. c->mu held. */
static hr_t purge_chunk(conn_t *c, int64_t before_ms, int64_t *last, int64_t *deleted,
                        bool *done)
{
    sq_rows_t ids = {0};
    sqlite3_stmt *pick = sq_stmt(c, S_PURGE_PICK);
    sqlite3_stmt *dh = sq_stmt(c, S_PURGE_HIST);
    sqlite3_stmt *dn = sq_stmt(c, S_PURGE_NOTIF);
    hr_t r = pick && dh && dn ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        sqlite3_bind_int64(pick, 1, *last);
        sqlite3_bind_int64(pick, 2, before_ms);
        sqlite3_bind_int(pick, 3, SQ_PURGE_CHUNK);
        r = sq_collect(c, pick, sizeof(int64_t), SQ_PURGE_CHUNK, rowid_row, &ids, NULL,
                       "purge scan");
    }
    const int64_t *rowids = ids.v;
    for (int i = 0; i < ids.n && r == HR_OK; i++) {
        sqlite3_bind_int64(dh, 1, rowids[i]);
        r = sq_step_done(c, dh, "purge history");
        if (r != HR_OK) break;
        sqlite3_bind_int64(dn, 1, rowids[i]);
        r = sq_step_done(c, dn, "purge notification");
    }
    r = sq_tx_end(c, r);
    if (r == HR_OK) {
        *deleted += ids.n;
        if (ids.n) *last = rowids[ids.n - 1];
        *done = ids.n < SQ_PURGE_CHUNK;
    }
    free(ids.v);
    return r;
}

hr_t sq_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    conn_t *c = &sq(s)->w;
    int64_t total = 0, last = 0;
    bool done = false;
    hr_t r = HR_OK;
    /* the writer lock is released between chunks so the sink interleaves */
    while (!done && r == HR_OK) {
        pthread_mutex_lock(&c->mu);
        r = purge_chunk(c, before_ms, &last, &total, &done);
        pthread_mutex_unlock(&c->mu);
    }
    /* inbox items of the same age, in chunks as well */
    int changed = SQ_PURGE_CHUNK;
    int64_t items = 0;
    while (r == HR_OK && changed == SQ_PURGE_CHUNK) {
        pthread_mutex_lock(&c->mu);
        sqlite3_stmt *st = sq_stmt(c, S_PURGE_INBOX);
        if (st) {
            sqlite3_bind_int64(st, 1, before_ms);
            sqlite3_bind_int(st, 2, SQ_PURGE_CHUNK);
            r = sq_step_done(c, st, "purge inbox");
            changed = sqlite3_changes(c->db);
            items += changed;
        } else {
            r = HR_ERR;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (items) log_info(LOG, "purged %lld inbox item(s) created before %lld", (long long)items,
                        (long long)before_ms);
    changed = SQ_PURGE_CHUNK;
    c = &sq(s)->ev;
    while (r == HR_OK && changed == SQ_PURGE_CHUNK) {
        pthread_mutex_lock(&c->mu);
        sqlite3_stmt *st = sq_stmt(c, S_PURGE_EVENTS);
        if (st) {
            sqlite3_bind_int64(st, 1, before_ms);
            sqlite3_bind_int(st, 2, SQ_PURGE_CHUNK);
            r = sq_step_done(c, st, "purge events");
            changed = sqlite3_changes(c->db);
        } else {
            r = HR_ERR;
        }
        pthread_mutex_unlock(&c->mu);
    }
    *deleted = total;
    if (total) log_info(LOG, "purged %lld notification(s) created before %lld", (long long)total,
                        (long long)before_ms);
    return r;
}
