/*
 * store_pg_notif.c - notifications on PostgreSQL: the status sink's batched
 * writes (notif_write_batch), reads (get, per-user list, sent), retention.
 *
 * DESIGN: a batch is one transaction on one pooled connection: the
 * records are COPYed (text format, one round trip) into a temporary
 * staging table, then merged with one INSERT ... SELECT ... ON CONFLICT DO
 * UPDATE per "round" and one INSERT ... SELECT of their history. The rank
 * rule (model/lifecycle.h) is the ON CONFLICT's WHERE, generated with
 * lifecycle_rank_sql. ON CONFLICT may not touch a row twice in one
 * statement, and records of one notification must apply in arrival order,
 * so the k-th record of each id in the batch goes in round k: usually one
 * round, two when a batch holds pending and sent of the same notification.
 */
#include "store/store_pg_int.h"

#include "core/log.h"
#include "model/lifecycle.h"
#include "model/trace.h"

#define LOG "store"
#define PURGE_CHUNK 500         /* notifications per purge transaction */

/* ---- notifications ---- */

/* The staging table of a connection: temporary (this session only), emptied
 * at every commit. rn = the record's occurrence of its id in the batch. */
static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS notif_stage ("
    " seq INT NOT NULL, rn INT NOT NULL, notification_id TEXT COLLATE \"C\" NOT NULL,"
    " event_id TEXT NOT NULL, user_id TEXT COLLATE \"C\" NOT NULL, channel INT NOT NULL,"
    " category TEXT COLLATE \"C\" NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,"
    " address TEXT NOT NULL, status INT NOT NULL, attempt INT NOT NULL, channel_msg_id TEXT,"
    " metadata TEXT, error TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
    " delivered_at BIGINT, traceparent TEXT, detail TEXT) ON COMMIT DELETE ROWS";

#define STAGE_COLS                                                                            \
    "seq, rn, notification_id, event_id, user_id, channel, category, title, body, address,"   \
    " status, attempt, channel_msg_id, metadata, error, created_at, updated_at, delivered_at," \
    " traceparent, detail"

static char merge_sql[2048];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

/* The merge of one round with the rank rule of model/lifecycle.h in SQL:
 * a stored row of rank 0 takes any record, a higher one only a record of
 * a higher rank. */
static void sql_init(void)
{
    char rank_old[256], rank_new[256];
    lifecycle_rank_sql("notifications.status", rank_old, sizeof(rank_old));
    lifecycle_rank_sql("excluded.status", rank_new, sizeof(rank_new));
    int w = snprintf(
        merge_sql, sizeof(merge_sql),
        "INSERT INTO notifications (notification_id, event_id, user_id, channel, category,"
        " title, body, address, status, attempt, channel_msg_id, metadata, error, created_at,"
        " updated_at, delivered_at, traceparent)"
        " SELECT notification_id, event_id, user_id, channel, category, title, body, address,"
        " status, attempt, channel_msg_id, metadata, error, created_at, updated_at,"
        " delivered_at, traceparent FROM notif_stage WHERE rn = $1 ORDER BY notification_id"
        " ON CONFLICT (notification_id, created_at) DO UPDATE SET status = excluded.status,"
        " attempt = excluded.attempt,"
        " channel_msg_id = COALESCE(excluded.channel_msg_id, notifications.channel_msg_id),"
        " metadata = COALESCE(excluded.metadata, notifications.metadata),"
        " error = excluded.error, updated_at = excluded.updated_at,"
        " traceparent = COALESCE(excluded.traceparent, notifications.traceparent),"
        " delivered_at = CASE WHEN excluded.status = 2"
        "   THEN COALESCE(excluded.delivered_at, notifications.delivered_at)"
        "   ELSE COALESCE(notifications.delivered_at, excluded.delivered_at) END"
        " WHERE %s = 0 OR %s > %s",
        rank_old, rank_new, rank_old);
    if (w <= 0 || (size_t)w >= sizeof(merge_sql)) merge_sql[0] = '\0';
}

/* A growing buffer of COPY text. */
typedef struct cbuf {
    char *p;
    size_t n, cap;
} cbuf_t;

static void cb_need(cbuf_t *b, size_t more)
{
    if (b->n + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->n + more) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

/* One field of COPY's text format: \N for NULL, backslash escapes for
 * '\\', tab, newline and CR; a NUL byte (not storable in text) is dropped. */
static void cb_field(cbuf_t *b, const char *s, size_t n, bool null, bool last)
{
    cb_need(b, 2 * n + 4);
    if (null) {
        memcpy(b->p + b->n, "\\N", 2);
        b->n += 2;
    } else {
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            switch (c) {
            case '\0': continue;
            case '\\': b->p[b->n++] = '\\'; b->p[b->n++] = '\\'; continue;
            case '\t': b->p[b->n++] = '\\'; b->p[b->n++] = 't'; continue;
            case '\n': b->p[b->n++] = '\\'; b->p[b->n++] = 'n'; continue;
            case '\r': b->p[b->n++] = '\\'; b->p[b->n++] = 'r'; continue;
            default: b->p[b->n++] = c;
            }
        }
    }
    b->p[b->n++] = last ? '\n' : '\t';
}

static void cb_h(cbuf_t *b, hstr_t h, bool opt) { cb_field(b, h.p, h.n, opt && h.n == 0, false); }

static void cb_i(cbuf_t *b, int64_t v, bool null)
{
    num_t t = num(v);
    cb_field(b, t.s, strlen(t.s), null, false);
}

typedef struct ord {
    const notif_t *m;
    int seq;
} ord_t;

static int ord_cmp(const void *x, const void *y)
{
    const ord_t *a = x, *b = y;
    size_t n = a->m->notification_id.n < b->m->notification_id.n ? a->m->notification_id.n
                                                                  : b->m->notification_id.n;
    int c = memcmp(a->m->notification_id.p, b->m->notification_id.p, n);
    if (c) return c;
    if (a->m->notification_id.n != b->m->notification_id.n)
        return a->m->notification_id.n < b->m->notification_id.n ? -1 : 1;
    return a->seq - b->seq;
}

/* rn[i]: the occurrence (1, 2, ...) of recs[i]'s id among recs[0..i];
 * returns the largest. */
static int occurrences(const notif_t *const *recs, int n, int *rn)
{
    ord_t *o = xmalloc((size_t)n * sizeof(*o));
    for (int i = 0; i < n; i++) o[i] = (ord_t){recs[i], i};
    qsort(o, (size_t)n, sizeof(*o), ord_cmp);
    int max = 0;
    for (int i = 0; i < n; i++) {
        bool same = i > 0 && o[i].m->notification_id.n == o[i - 1].m->notification_id.n &&
                    memcmp(o[i].m->notification_id.p, o[i - 1].m->notification_id.p,
                           o[i].m->notification_id.n) == 0;
        rn[o[i].seq] = same ? rn[o[i - 1].seq] + 1 : 1;
        if (rn[o[i].seq] > max) max = rn[o[i].seq];
    }
    free(o);
    return max;
}

/* The batch as COPY text, one line per record (STAGE_COLS). */
static void stage_text(cbuf_t *b, const notif_t *const *recs, int n, const int *rn, int64_t now)
{
    for (int i = 0; i < n; i++) {
        const notif_t *m = recs[i];
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        bool tp = trace_is_v00(m->traceparent.p, m->traceparent.n);
        cb_i(b, i, false);
        cb_i(b, rn[i], false);
        cb_h(b, m->notification_id, false);
        cb_h(b, m->event_id, false);
        cb_h(b, m->user_id, false);
        cb_i(b, m->channel, false);
        cb_h(b, m->category, false);
        cb_h(b, m->title, false);
        cb_h(b, m->body, false);
        cb_h(b, m->address, false);
        cb_i(b, m->status, false);
        cb_i(b, m->attempt, false);
        cb_h(b, m->channel_msg_id, true);
        cb_h(b, m->metadata, true);
        cb_h(b, m->error, true);
        cb_i(b, m->created_at_ms ? m->created_at_ms : at, false);
        cb_i(b, at, false);
        cb_i(b, at, !store_status_sent(m->status));
        if (tp) cb_h(b, m->traceparent, true);
        else cb_field(b, NULL, 0, true, false);
        /* history detail: the error, or else the provider's message id */
        hstr_t d = m->error.n ? m->error : m->channel_msg_id;
        cb_field(b, d.p, d.n, d.n == 0, true);
    }
}

/* COPYs the text into notif_stage (inside the batch's transaction). */
static hr_t stage_copy(pgconn_t *cn, const cbuf_t *b)
{
    PGresult *res = PQexec(cn->conn, "COPY notif_stage (" STAGE_COLS ") FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        hr_t r = pg_fail(cn, res, "status batch copy");
        PQclear(res);
        return r;
    }
    PQclear(res);
    bool ok = true;
    for (size_t off = 0; ok && off < b->n;) {
        size_t part = b->n - off < (1u << 20) ? b->n - off : (1u << 20);
        ok = PQputCopyData(cn->conn, b->p + off, (int)part) == 1;
        off += part;
    }
    if (PQputCopyEnd(cn->conn, ok ? NULL : "client error") != 1) ok = false;
    hr_t r = HR_OK;
    while ((res = PQgetResult(cn->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && r == HR_OK)
            r = pg_fail(cn, res, "status batch copy");
        PQclear(res);
    }
    if (!ok && r == HR_OK) r = pg_fail(cn, NULL, "status batch copy");
    return r;
}

/* ---- partitions by day ---- */

#define DAY_MS 86400000LL

static int64_t day_of(int64_t ms) { return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS); }

static bool day_known(pg_t *p, int64_t d)
{
    for (int i = 0; i < p->ndays; i++)
        if (p->days[i] == d) return true;
    return false;
}

/* Makes the partitions of day d (its own transaction) and remembers them. */
static hr_t day_make(pg_t *p, pgconn_t *cn, int64_t d)
{
    pthread_mutex_lock(&p->part_mu);
    bool known = day_known(p, d);
    pthread_mutex_unlock(&p->part_mu);
    if (known) return HR_OK;
    num_t dn = num(d);
    const char *v[] = {dn.s};
    hr_t r = pg_x(cn, "notification partitions", "SELECT herald_notif_day($1)", 1, v);
    if (r != HR_OK) return r;
    pthread_mutex_lock(&p->part_mu);
    if (!day_known(p, d)) {
        if (p->ndays == p->capdays) {
            p->capdays = p->capdays ? 2 * p->capdays : 16;
            p->days = xrealloc(p->days, (size_t)p->capdays * sizeof(*p->days));
        }
        p->days[p->ndays++] = d;
    }
    pthread_mutex_unlock(&p->part_mu);
    return HR_OK;
}

static void days_forget(pg_t *p)
{
    pthread_mutex_lock(&p->part_mu);
    p->ndays = 0;
    pthread_mutex_unlock(&p->part_mu);
}

/* The partitions of every day the batch's records were created on (as
 * stage_text computes created_at), before the batch's transaction. */
static hr_t days_ensure(pg_t *p, pgconn_t *cn, const notif_t *const *recs, int n, int64_t now)
{
    int64_t last = INT64_MIN;
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        const notif_t *m = recs[i];
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        int64_t d = day_of(m->created_at_ms ? m->created_at_ms : at);
        if (d != last) r = day_make(p, cn, d);
        last = d;
    }
    return r;
}

hr_t pg_parts_open(pg_t *p)
{
    int64_t today = day_of(hclock_now_ms());
    hr_t r = HR_OK;
    for (int64_t d = today - 1; d <= today + 2 && r == HR_OK; d++) r = day_make(p, &p->conns[0], d);
    return r;
}

hr_t pg_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    pthread_once(&sql_once, sql_init);
    if (!merge_sql[0]) {
        log_error(LOG, "postgres: notification merge: the rank rule's SQL does not fit");
        return HR_ERR;
    }
    int *rn = xmalloc((size_t)n * sizeof(*rn));
    int rounds = occurrences(recs, n, rn);
    cbuf_t b = {NULL, 0, 0};
    stage_text(&b, recs, n, rn, hclock_now_ms());
    free(rn);

    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = days_ensure(p, cn, recs, n, hclock_now_ms());
    if (r == HR_OK && !cn->staged) {
        r = pg_x(cn, "status stage", stage_sql, 0, NULL);
        cn->staged = r == HR_OK;
    }
    if (r == HR_OK) r = pg_tx_begin(cn);
    if (r == HR_OK) {
        r = stage_copy(cn, &b);
        for (int k = 1; k <= rounds && r == HR_OK; k++) {
            num_t round = num(k);
            const char *v[] = {round.s};
            r = pg_x(cn, "status merge", merge_sql, 1, v);
        }
        if (r == HR_OK)
            r = pg_x(cn, "status history",
                     "INSERT INTO status_history (notification_id, created_at, status, attempt,"
                     " at_ms, detail) SELECT notification_id, created_at, status, attempt,"
                     " updated_at, detail FROM notif_stage ORDER BY seq",
                     0, NULL);
        r = pg_tx_end(cn, r);
    }
    if (r != HR_OK) days_forget(p); /* a day dropped by another instance's purge? */
    pg_put(p, cn);
    free(b.p);
    return r;
}

#define NOTIF_COLS                                                                            \
    "notification_id, event_id, user_id, channel, category, title, body, address, status,"    \
    " attempt, channel_msg_id, error, created_at, updated_at, delivered_at, traceparent"

static void row_read(PGresult *res, int i, notif_row_t *r)
{
    r->notification_id = col(res, i, 0);
    r->event_id = col(res, i, 1);
    r->user_id = col(res, i, 2);
    r->channel = (channel_t)col_i64(res, i, 3);
    r->category = col(res, i, 4);
    r->title = col(res, i, 5);
    r->body = col(res, i, 6);
    r->address = col(res, i, 7);
    r->status = (notif_status_t)col_i64(res, i, 8);
    r->attempt = (int)col_i64(res, i, 9);
    r->channel_msg_id = col(res, i, 10);
    r->error = col(res, i, 11);
    r->created_at_ms = col_i64(res, i, 12);
    r->updated_at_ms = col_i64(res, i, 13);
    r->delivered_at_ms = col_i64(res, i, 14);
    r->traceparent = col(res, i, 15);
}

hr_t pg_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                         status_hist_t **hist, int *nhist)
{
    pg_t *p = pg(s);
    const char *v[] = {notification_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "notification get",
                         "SELECT " NOTIF_COLS " FROM notifications WHERE notification_id = $1", 1,
                         v, &r);
    if (res && PQntuples(res) == 0) r = HR_NOTFOUND;
    else if (res) row_read(res, 0, out);
    PQclear(res);
    if (r == HR_OK && hist) {
        num_t created = num(out->created_at_ms);
        const char *hv[] = {notification_id, created.s};
        res = pg_q(cn, "status history get",
                   "SELECT status, attempt, at_ms, detail FROM status_history"
                   " WHERE notification_id = $1 AND created_at = $2 ORDER BY id",
                   2, hv, &r);
        if (res) {
            int rows = PQntuples(res);
            if (rows > 0) {
                *hist = xcalloc((size_t)rows, sizeof(**hist));
                for (int i = 0; i < rows; i++) {
                    (*hist)[i].status = (notif_status_t)col_i64(res, i, 0);
                    (*hist)[i].attempt = (int)col_i64(res, i, 1);
                    (*hist)[i].at_ms = col_i64(res, i, 2);
                    (*hist)[i].detail = col(res, i, 3);
                }
            }
            *nhist = rows;
            PQclear(res);
        } else {
            notif_row_clear(out);
        }
    }
    pg_put(p, cn);
    return r;
}

hr_t pg_notif_list_user(store_t *s, const char *user_id, int64_t after_ms,
                               const char *after_id, int limit, notif_row_t **rows, int *n,
                               bool *more)
{
    pg_t *p = pg(s);
    num_t lim = num((int64_t)limit + 1), ams = num(after_ms);
    const char *v[] = {user_id, lim.s, ams.s, after_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res =
        after_id ? pg_q(cn, "notification list",
                        "SELECT " NOTIF_COLS " FROM notifications WHERE user_id = $1"
                        " AND (created_at < $3 OR (created_at = $3 AND notification_id < $4))"
                        " ORDER BY created_at DESC, notification_id DESC LIMIT $2",
                        4, v, &r)
                 : pg_q(cn, "notification list",
                        "SELECT " NOTIF_COLS " FROM notifications WHERE user_id = $1"
                        " ORDER BY created_at DESC, notification_id DESC LIMIT $2",
                        2, v, &r);
    if (res) {
        int got = PQntuples(res);
        *more = got > limit;
        if (got > limit) got = limit;
        if (got > 0) {
            *rows = xcalloc((size_t)got, sizeof(**rows));
            for (int i = 0; i < got; i++) row_read(res, i, &(*rows)[i]);
        }
        *n = got;
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

hr_t pg_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    pg_t *p = pg(s);
    const char *v[] = {notification_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "notification status",
                         "SELECT status FROM notifications WHERE notification_id = $1", 1, v, &r);
    if (res) {
        *sent = PQntuples(res) > 0 && store_status_sent((notif_status_t)col_i64(res, 0, 0));
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

char *pg_text_array(const hstr_t *hs, const char *const *strs, int n)
{
    size_t cap = 3;
    for (int i = 0; i < n; i++) cap += 2 * (hs ? hs[i].n : strs[i] ? strlen(strs[i]) : 0) + 3;
    char *arr = xmalloc(cap), *w = arr;
    *w++ = '{';
    bool first = true;
    for (int i = 0; i < n; i++) {
        const char *p = hs ? hs[i].p : strs[i] ? strs[i] : "";
        size_t len = hs ? hs[i].n : strlen(p);
        if (len && memchr(p, '\0', len)) continue;
        if (!first) *w++ = ',';
        first = false;
        *w++ = '"';
        for (size_t k = 0; k < len; k++) {
            if (p[k] == '"' || p[k] == '\\') *w++ = '\\';
            *w++ = p[k];
        }
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    return arr;
}

/* One query, so one snapshot: ids go in as a text[] literal. An id holding
 * a NUL byte cannot be stored (text), so it is left out and reads as not
 * sent. */
hr_t pg_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent)
{
    pg_t *p = pg(s);
    char *arr = pg_text_array(ids, NULL, n);
    const char *v[] = {arr};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "notifications sent",
                         "SELECT notification_id, status FROM notifications"
                         " WHERE notification_id = ANY($1::text[])",
                         1, v, &r);
    if (res) {
        for (int j = 0; j < PQntuples(res); j++) {
            const char *id = PQgetvalue(res, j, 0);
            size_t len = (size_t)PQgetlength(res, j, 0);
            bool yes = store_status_sent((notif_status_t)col_i64(res, j, 1));
            for (int i = 0; i < n; i++)
                if (ids[i].n == len && memcmp(ids[i].p, id, len) == 0) sent[i] = yes;
        }
        PQclear(res);
    }
    pg_put(p, cn);
    free(arr);
    return r;
}

/* Deletes in chunks of PURGE_CHUNK notifications (their history with
 * them), then the old dedupe claims. */
/* Retention by days: every day that ends at or before before_ms goes as a
 * whole (DROP of its two partitions, one transaction each day; the rows
 * are counted first). */
static hr_t purge_days(pg_t *p, int64_t before_ms, int64_t *deleted)
{
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "purge days",
                         "SELECT substr(c.relname, 16) FROM pg_inherits i"
                         " JOIN pg_class c ON c.oid = i.inhrelid"
                         " WHERE i.inhparent = 'notifications'::regclass"
                         " AND c.relname LIKE 'notifications_d%'",
                         0, NULL, &r);
    int nd = res ? PQntuples(res) : 0;
    for (int i = 0; i < nd && r == HR_OK; i++) {
        const char *sfx = PQgetvalue(res, i, 0);
        int64_t d = sfx[0] == 'm' ? -strtoll(sfx + 1, NULL, 10) : strtoll(sfx, NULL, 10);
        if ((d + 1) * DAY_MS > before_ms) continue;
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM notifications_d%s", sfx);
        r = pg_tx_begin(cn);
        PGresult *cnt = r == HR_OK ? pg_q(cn, "purge count", sql, 0, NULL, &r) : NULL;
        int64_t rows = cnt ? col_i64(cnt, 0, 0) : 0;
        PQclear(cnt);
        snprintf(sql, sizeof(sql), "DROP TABLE notifications_d%s, status_history_d%s", sfx, sfx);
        if (r == HR_OK) r = pg_x(cn, "purge drop", sql, 0, NULL);
        r = pg_tx_end(cn, r);
        if (r == HR_OK) {
            if (deleted) *deleted += rows;
            log_info(LOG, "purged the notifications of day %lld (%lld row(s))", (long long)d,
                     (long long)rows);
        }
    }
    PQclear(res);
    pg_put(p, cn);
    days_forget(p); /* the writer makes them again if a late record needs one */
    return r;
}

hr_t pg_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    pg_t *p = pg(s);
    num_t before = num(before_ms), chunk = num(PURGE_CHUNK);
    const char *v[] = {before.s, chunk.s};
    hr_t r = purge_days(p, before_ms, deleted);
    if (r != HR_OK) return r;
    /* what is left before before_ms: part of one day, row by row */
    for (;;) {
        pgconn_t *cn = pg_get(p);
        long got = 0;
        r = pg_tx_begin(cn);
        if (r == HR_OK) {
            PGresult *res = pg_q(cn, "purge",
                                 "WITH old AS (DELETE FROM notifications WHERE"
                                 " (notification_id, created_at) IN (SELECT notification_id,"
                                 " created_at FROM notifications WHERE created_at < $1 LIMIT $2)"
                                 " RETURNING notification_id, created_at),"
                                 " hist AS (DELETE FROM status_history WHERE"
                                 " (notification_id, created_at) IN"
                                 " (SELECT notification_id, created_at FROM old))"
                                 " SELECT count(*) FROM old",
                                 2, v, &r);
            if (res && PQntuples(res) > 0) got = (long)col_i64(res, 0, 0);
            PQclear(res);
            r = pg_tx_end(cn, r);
        }
        pg_put(p, cn);
        if (r != HR_OK) return r;
        if (deleted) *deleted += got;
        if (got == 0) break;
    }
    pgconn_t *cn = pg_get(p);
    r = pg_x(cn, "purge events", "DELETE FROM events WHERE first_seen_ms < $1", 1, v);
    /* inbox items of the same age (index inbox_created) */
    PGresult *res = r != HR_OK ? NULL
                               : pg_q(cn, "purge inbox",
                                      "DELETE FROM inbox WHERE created_at_ms < $1", 1, v, &r);
    if (res && pg_changed(res) > 0)
        log_info(LOG, "purged %ld inbox item(s) created before %lld", pg_changed(res),
                 (long long)before_ms);
    PQclear(res);
    pg_put(p, cn);
    return r;
}

