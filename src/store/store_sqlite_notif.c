/*
 * store_sqlite_notif.c - the SQLite backend's ops for the event dedupe
 * claims and the notification records: the status sink's appends to the
 * status log (the hot path), reads, listing, the "already sent" checks, the
 * per-user runs and the purge
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

/* ---- notifications ----
 *
 * DESIGN (schema version 6, sqlite.sql). A status record becomes one row
 * appended to status_log; nothing is updated in place. The id index is the
 * only index the log has, and ids start with the event's accepted time, so
 * the index grows at its right-hand edge like the log itself. Before a row
 * is appended, one probe of that index (pages the batch just visited) tells
 * whether the notification has rows already: if not, this row carries the
 * content and the notification joins this transaction's run.
 *
 * What GET shows is the fold of the id's rows in arrival order by the rank
 * rule (row_fold: lifecycle_may_replace), the same as the upsert of version
 * 5 computed at write time; the rows themselves are the history. "Already
 * sent?" is one probe for a row with a status that counts as sent.
 *
 * The per-user listing is a small LSM tree: each write transaction appends
 * one run (user_runs, key (run, user, created, id), the run's number above
 * every other) holding the notifications it created, sorted in memory; when
 * a level has SQ_RUN_FANIN runs they are merged into one run of the next
 * level in one transaction (a sort and an append), so each notification is
 * rewritten about log_16(rows / batch) times and a listing reads at most
 * SQ_RUN_FANIN - 1 runs per level, one seek each.
 */

/* A notification created in this transaction: its key in the run. */
typedef struct run_key {
    hstr_t user;
    int64_t created;
    hstr_t id;
} run_key_t;

/* SQLite's BINARY order of two texts: bytes, then the shorter first. */
static int hstr_cmp(hstr_t a, hstr_t b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

static int run_key_cmp(const void *x, const void *y)
{
    const run_key_t *a = x, *b = y;
    int c = hstr_cmp(a->user, b->user);
    if (c) return c;
    if (a->created != b->created) return a->created < b->created ? -1 : 1;
    return hstr_cmp(a->id, b->id);
}

/* Appends the run of keys[0..n) (sorted here) with its user_run_list row:
 * one level-0 run. c->mu held, inside the write transaction. */
static hr_t run_write(sq_store_t *q, conn_t *c, run_key_t *keys, int n)
{
    if (n == 0) return HR_OK;
    sqlite3_stmt *add = sq_stmt(c, S_RUN_ADD);
    sqlite3_stmt *list = sq_stmt(c, S_RUN_LIST_ADD);
    if (!add || !list) return HR_ERR;
    qsort(keys, (size_t)n, sizeof(*keys), run_key_cmp);
    int64_t run = q->next_run++, max_created = 0;
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        sqlite3_bind_int64(add, 1, run);
        bind_hstr(add, 2, keys[i].user);
        sqlite3_bind_int64(add, 3, keys[i].created);
        bind_hstr(add, 4, keys[i].id);
        r = sq_step_done(c, add, "user run add");
        if (keys[i].created > max_created) max_created = keys[i].created;
    }
    sqlite3_clear_bindings(add);
    if (r != HR_OK) return r;
    sqlite3_bind_int64(list, 1, run);
    sqlite3_bind_int(list, 2, 0);
    sqlite3_bind_int(list, 3, n);
    sqlite3_bind_int64(list, 4, max_created);
    return sq_step_done(c, list, "user run list add");
}

/* Merges the runs of every level that has SQ_RUN_FANIN of them, lowest
 * first, one transaction per merge. c->mu held, outside a transaction. */
static hr_t runs_merge(sq_store_t *q, conn_t *c)
{
    for (;;) {
        sqlite3_stmt *full = sq_stmt(c, S_RUN_FULL_LEVEL);
        sqlite3_stmt *maxc = sq_stmt(c, S_RUN_MERGE_MAX);
        if (!full || !maxc) return HR_ERR;
        sqlite3_bind_int(full, 1, SQ_RUN_FANIN);
        int rc = sqlite3_step(full);
        int level = rc == SQLITE_ROW ? sqlite3_column_int(full, 0) : -1;
        sqlite3_reset(full);
        if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "user runs");
        hr_t r = sq_tx_begin(c, true);
        if (r != HR_OK) return r;
        int64_t run = q->next_run++, max_created = 0;
        sqlite3_bind_int(maxc, 1, level);
        if ((rc = sqlite3_step(maxc)) == SQLITE_ROW) max_created = sqlite3_column_int64(maxc, 0);
        sqlite3_reset(maxc);
        if (rc != SQLITE_ROW) r = sq_err(c, rc, "user runs");
        sqlite3_stmt *st = r == HR_OK ? sq_stmt(c, S_RUN_MERGE) : NULL;
        int64_t rows = 0;
        if (r == HR_OK && !st) r = HR_ERR;
        if (r == HR_OK) {
            sqlite3_bind_int64(st, 1, run);
            sqlite3_bind_int(st, 2, level);
            sqlite3_bind_int64(st, 3, q->purged_before); /* rows purged meanwhile go */
            r = sq_step_done(c, st, "user runs merge");
            rows = sqlite3_changes64(c->db);
        }
        static const stmt_id_t drops[] = {S_RUN_DROP, S_RUN_LIST_DROP};
        for (size_t i = 0; i < ARRAY_LEN(drops) && r == HR_OK; i++) {
            if (!(st = sq_stmt(c, drops[i]))) {
                r = HR_ERR;
                break;
            }
            sqlite3_bind_int(st, 1, level);
            r = sq_step_done(c, st, "user runs drop");
        }
        if (r == HR_OK && rows > 0) {
            if (!(st = sq_stmt(c, S_RUN_LIST_ADD))) {
                r = HR_ERR;
            } else {
                sqlite3_bind_int64(st, 1, run);
                sqlite3_bind_int(st, 2, level + 1);
                sqlite3_bind_int64(st, 3, rows);
                sqlite3_bind_int64(st, 4, max_created);
                r = sq_step_done(c, st, "user run list add");
            }
        }
        if ((r = sq_tx_end(c, r)) != HR_OK) return r;
        log_debug(LOG, "merged the level-%d runs into run %lld (%lld rows)", level, (long long)run,
                  (long long)rows);
    }
}

/* The hot path of the status sink: one transaction (committed early when a
 * short write waits for the writer, see DESIGN atop store_sqlite.c), cached
 * statements, strings bound in place (no copies; one allocation per batch
 * for the run's keys). */
hr_t sq_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->w;
    run_key_t *keys = xmalloc((size_t)n * sizeof(*keys));
    int nkeys = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *add = sq_stmt(c, S_LOG_ADD);
    sqlite3_stmt *has = sq_stmt(c, S_LOG_HAS);
    hr_t r = add && has ? sq_tx_begin(c, true) : HR_ERR;
    if (r != HR_OK) goto out;
    int64_t now = hclock_now_ms();
    for (int i = 0; i < n && r == HR_OK; i++) {
        const notif_t *m = recs[i]; /* valid: store.c dropped the others */
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        int64_t created = m->created_at_ms ? m->created_at_ms : at;
        /* the first row of the notification carries its content; a status
         * record without content (a compact 'S' record of a later status)
         * never does, and needs no probe */
        bool first = false;
        if (!m->no_content) {
            bind_hstr(has, 1, m->notification_id);
            int rc = sqlite3_step(has);
            sqlite3_reset(has);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                r = sq_err(c, rc, "status log probe");
                break;
            }
            first = rc == SQLITE_DONE;
        }
        bind_hstr(add, 1, m->notification_id);
        sqlite3_bind_int(add, 2, (int)m->status);
        sqlite3_bind_int(add, 3, m->attempt);
        sqlite3_bind_int64(add, 4, at);
        bind_hstr_opt(add, 5, m->channel_msg_id);
        bind_hstr_opt(add, 6, m->error);
        bind_hstr_opt(add, 7, m->metadata);
        /* only a well-formed trace context is kept (the API shows it) */
        bind_hstr_opt(add, 8, trace_is_v00(m->traceparent.p, m->traceparent.n) ? m->traceparent
                                                                              : (hstr_t){NULL, 0});
        if (first) {
            bind_hstr(add, 9, m->event_id);
            bind_hstr(add, 10, m->user_id);
            sqlite3_bind_int(add, 11, (int)m->channel);
            bind_hstr(add, 12, m->category);
            bind_hstr(add, 13, m->title);
            bind_hstr(add, 14, m->body);
            bind_hstr(add, 15, m->address);
            sqlite3_bind_int64(add, 16, created);
            keys[nkeys++] = (run_key_t){m->user_id, created, m->notification_id};
        } else {
            for (int k = 9; k <= 16; k++) sqlite3_bind_null(add, k);
        }
        r = sq_step_done(c, add, "status log add");
        if (r == HR_OK && (i + 1) % YIELD_EVERY == 0 && i + 1 < n && atomic_load(&c->waiters) > 0) {
            /* a short write is waiting: commit, let it in, go on */
            r = run_write(q, c, keys, nkeys);
            nkeys = 0;
            if ((r = sq_tx_end(c, r)) != HR_OK) break;
            pthread_mutex_unlock(&c->mu);
            for (int k = 0; k < YIELD_SPINS && atomic_load(&c->waiters) > 0; k++) sched_yield();
            pthread_mutex_lock(&c->mu);
            r = sq_tx_begin(c, true);
        }
    }
    if (r == HR_OK) r = run_write(q, c, keys, nkeys);
    /* the bound pointers belong to the caller: drop them */
    sqlite3_clear_bindings(add);
    sqlite3_clear_bindings(has);
    if (sqlite3_get_autocommit(c->db) == 0) r = sq_tx_end(c, r);
    /* the batch is stored: a merge that fails is tried again after the next */
    if (r == HR_OK && runs_merge(q, c) != HR_OK) log_warn(LOG, "merging the per-user runs failed");
out:
    pthread_mutex_unlock(&c->mu);
    free(keys);
    return r;
}

/* Folds the rows of one notification (S_NOTIF_GET, bound; LOG_COLS) into
 * *out by the rank rule, in arrival order, as the upsert of schema version
 * 5 did at write time; appends each row to hist when not NULL. HR_NOTFOUND
 * when no row holds the content (unknown, or purged). Resets st. */
static hr_t row_fold(conn_t *c, sqlite3_stmt *st, const char *id, notif_row_t *out,
                     sq_rows_t *hist)
{
    int rc, nrows = 0;
    bool content = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        notif_status_t status = (notif_status_t)sqlite3_column_int(st, 0);
        int attempt = sqlite3_column_int(st, 1);
        int64_t at = sqlite3_column_int64(st, 2);
        bool msgid = sqlite3_column_type(st, 3) != SQLITE_NULL;
        bool err = sqlite3_column_type(st, 4) != SQLITE_NULL;
        if (hist) {
            if (hist->n == hist->cap) {
                hist->cap = hist->cap ? hist->cap * 2 : 8;
                hist->v = xrealloc(hist->v, (size_t)hist->cap * sizeof(status_hist_t));
            }
            status_hist_t *h = &((status_hist_t *)hist->v)[hist->n++];
            h->status = status;
            h->attempt = attempt;
            h->at_ms = at;
            h->detail = col_str(st, err ? 4 : 3); /* the error, else the message id */
        }
        if (!content && sqlite3_column_type(st, 7) != SQLITE_NULL) {
            content = true;
            out->event_id = col_str(st, 7);
            out->user_id = col_str(st, 8);
            out->channel = (channel_t)sqlite3_column_int(st, 9);
            out->category = col_str(st, 10);
            out->title = col_str(st, 11);
            out->body = col_str(st, 12);
            out->address = col_str(st, 13);
            out->created_at_ms = sqlite3_column_int64(st, 14);
        }
        int64_t delivered = store_status_sent(status) ? at : 0;
        if (nrows++ == 0) { /* the insert */
            out->status = status;
            out->attempt = attempt;
            out->channel_msg_id = col_str(st, 3);
            out->error = col_str(st, 4);
            out->traceparent = col_str(st, 6);
            out->updated_at_ms = at;
            out->delivered_at_ms = delivered;
            continue;
        }
        if (!lifecycle_may_replace(out->status, status)) continue; /* refused: history only */
        out->status = status;
        out->attempt = attempt;
        if (msgid) {
            free(out->channel_msg_id);
            out->channel_msg_id = col_str(st, 3);
        }
        free(out->error);
        out->error = err ? col_str(st, 4) : NULL;
        if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
            free(out->traceparent);
            out->traceparent = col_str(st, 6);
        }
        out->updated_at_ms = at;
        if (status == ST_DELIVERED) out->delivered_at_ms = delivered ? delivered : out->delivered_at_ms;
        else if (!out->delivered_at_ms) out->delivered_at_ms = delivered;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return sq_err(c, rc, "notification get");
    if (!content) return HR_NOTFOUND;
    out->notification_id = xstrdup(id);
    return HR_OK;
}

hr_t sq_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                  status_hist_t **hist, int *nhist)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t h = {0};
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_GET);
    hr_t r = st ? sq_tx_begin(c, false) : HR_ERR; /* one snapshot */
    if (r != HR_OK) goto out;
    bind_str(st, 1, notification_id);
    r = row_fold(c, st, notification_id, out, hist ? &h : NULL);
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

/* The user's notification ids from the runs, newest first, each folded
 * from the log; ids whose rows were purged are passed over. */
hr_t sq_notif_list_user(store_t *s, const char *user_id, int64_t after_ms, const char *after_id,
                        int limit, notif_row_t **rows, int *n, bool *more)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t v = {0};
    *more = false;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, after_id ? S_NOTIF_LIST_AFTER : S_NOTIF_LIST);
    sqlite3_stmt *get = sq_stmt(c, S_NOTIF_GET);
    hr_t r = st && get ? sq_tx_begin(c, false) : HR_ERR; /* one snapshot */
    if (r != HR_OK) goto out;
    bind_str(st, 1, user_id);
    if (after_id) {
        sqlite3_bind_int64(st, 2, after_ms);
        bind_str(st, 3, after_id);
    }
    int rc;
    while (r == HR_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (v.n >= limit) {
            *more = true;
            break;
        }
        const char *id = (const char *)sqlite3_column_text(st, 1);
        if (!id) continue;
        if (v.n == v.cap) {
            v.cap = v.cap ? v.cap * 2 : (limit < 16 ? limit : 16);
            v.v = xrealloc(v.v, (size_t)v.cap * sizeof(notif_row_t));
        }
        notif_row_t *row = &((notif_row_t *)v.v)[v.n];
        memset(row, 0, sizeof(*row));
        sqlite3_bind_text(get, 1, id, -1, SQLITE_TRANSIENT);
        r = row_fold(c, get, id, row, NULL);
        if (r == HR_OK) {
            v.n++;
        } else {
            notif_row_clear(row);
            if (r == HR_NOTFOUND) r = HR_OK; /* purged: not listed */
        }
    }
    if (r == HR_OK && !*more && rc != SQLITE_DONE) r = sq_err(c, rc, "notification list");
    sqlite3_reset(st);
    r = sq_tx_end(c, r);
out:
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
        *sent = rc == SQLITE_ROW;
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
        sent[i] = rc == SQLITE_ROW;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "notification sent batch");
    }
    if (st) sqlite3_clear_bindings(st); /* the ids belong to the caller */
    r = sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

typedef struct purge_row {
    int64_t seq, created;
    char *id;                   /* a notification's first row: its id; else NULL */
} purge_row_t;

static void purge_row(sqlite3_stmt *st, void *elem)
{
    purge_row_t *p = elem;
    p->seq = sqlite3_column_int64(st, 0);
    p->created = sqlite3_column_int64(st, 1);
    p->id = col_str(st, 2);
}

/* One purge transaction over the next SQ_PURGE_LOG_CHUNK log rows after
 * seq *last, oldest first: each notification whose first row is among
 * them and that was created before before_ms goes with all its rows (one
 * probe of the id index, near its left-hand edge). Sets *done when the
 * chunk had none (the log is in arrival order, so the old notifications
 * are behind us) or the log ended. c->mu held. */
static hr_t purge_chunk(conn_t *c, int64_t before_ms, int64_t *last, int64_t *deleted,
                        bool *done)
{
    sq_rows_t rows = {0};
    sqlite3_stmt *pick = sq_stmt(c, S_PURGE_PICK);
    sqlite3_stmt *del = sq_stmt(c, S_ERASE_LOG);
    hr_t r = pick && del ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        sqlite3_bind_int64(pick, 1, *last);
        sqlite3_bind_int(pick, 2, SQ_PURGE_LOG_CHUNK);
        r = sq_collect(c, pick, sizeof(purge_row_t), SQ_PURGE_LOG_CHUNK, purge_row, &rows, NULL,
                       "purge scan");
    }
    purge_row_t *p = rows.v;
    int64_t old = 0;
    for (int i = 0; i < rows.n && r == HR_OK; i++) {
        if (!p[i].id || p[i].created >= before_ms) continue;
        bind_str(del, 1, p[i].id);
        r = sq_step_done(c, del, "purge log");
        old++;
    }
    r = sq_tx_end(c, r);
    if (r == HR_OK) {
        *deleted += old;
        if (rows.n) *last = p[rows.n - 1].seq;
        *done = old == 0 || rows.n < SQ_PURGE_LOG_CHUNK;
    }
    for (int i = 0; i < rows.n; i++) free(p[i].id);
    free(rows.v);
    return r;
}

/* The runs whose every notification is older than before_ms go whole;
 * older rows of other runs are passed over by listings (their log rows are
 * gone) and dropped by the next merge. c->mu held. */
static hr_t purge_runs(sq_store_t *q, conn_t *c, int64_t before_ms)
{
    sqlite3_stmt *a = sq_stmt(c, S_PURGE_RUNS);
    sqlite3_stmt *b = sq_stmt(c, S_PURGE_RUN_LIST);
    hr_t r = a && b ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        sqlite3_bind_int64(a, 1, before_ms);
        r = sq_step_done(c, a, "purge runs");
    }
    if (r == HR_OK) {
        sqlite3_bind_int64(b, 1, before_ms);
        r = sq_step_done(c, b, "purge run list");
    }
    r = sq_tx_end(c, r);
    if (r == HR_OK && before_ms > q->purged_before) q->purged_before = before_ms;
    return r;
}

hr_t sq_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->w;
    int64_t total = 0, last = 0;
    bool done = false;
    hr_t r = HR_OK;
    /* the writer lock is released between chunks so the sink interleaves */
    while (!done && r == HR_OK) {
        pthread_mutex_lock(&c->mu);
        r = purge_chunk(c, before_ms, &last, &total, &done);
        pthread_mutex_unlock(&c->mu);
    }
    if (r == HR_OK) {
        pthread_mutex_lock(&c->mu);
        r = purge_runs(q, c, before_ms);
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
    if (r == HR_OK) { /* digests closed and due before the cut, members added before it */
        int64_t drows = 0;
        pthread_mutex_lock(&c->mu);
        r = sq_digest_purge(c, before_ms, &drows); /* store_sqlite_digest.c */
        pthread_mutex_unlock(&c->mu);
        if (drows) log_info(LOG, "purged %lld digest row(s) before %lld", (long long)drows, (long long)before_ms);
    }
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
