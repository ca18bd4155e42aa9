/*
 * store_pg.c - the PostgreSQL backend of the store (libpq), backend name
 * "postgres"; dsn: a libpq connection string or URI
 * ("postgresql://user@host/db", "host=/tmp/sock dbname=herald").
 *
 * Built only when pkg-config finds libpq (HERALD_HAVE_PG, CMakeLists.txt).
 *
 * DESIGN (first cut): one connection guarded by a mutex; every op is one
 * statement or one transaction of text-format statements (PQexecParams).
 * The schema is schema/pg.sql, applied at open in one transaction under an
 * advisory lock, so instances opening together do not race; a database
 * recording a newer version than PG_SCHEMA_VERSION is refused.
 * The dedupe claims rely on the primary key of `events` (INSERT ... ON
 * CONFLICT DO NOTHING), which makes a claim exact across processes.
 *
 * Every op of the vtable is implemented; users_get_batch uses store.c's
 * fallback (one query per id, not one snapshot). Still to come for production:
 * a connection pool, batched (multi-row/COPY) status writes, notifications
 * partitioned by day, LISTEN/NOTIFY for the change feed.
 *
 * Arguments arrive validated by store.c (store_int.h). Threads: any.
 */
#include "store/store_pg_int.h"

#include "core/log.h"
#include "model/lifecycle.h"
#include "model/trace.h"
#include "store/store_pg.h"

#include <endian.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG "store"
#define PURGE_CHUNK 500         /* notifications per purge transaction */
#define ERASE_CHUNK 1000        /* notifications (and followers) per erase transaction */
#define MIGRATE_LOCK 0x68657261 /* advisory lock key of the schema migration ("hera") */

extern const store_ops_t store_pg_ops;

/* ---- plumbing ---- */

static void notice_drop(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and the like */
}

const char *pg_one_line(const char *msg, char *buf, size_t cap)
{
    size_t n = 0;
    for (; msg && msg[n] && n + 1 < cap; n++) buf[n] = msg[n] == '\n' || msg[n] == '\t' ? ' ' : msg[n];
    while (n > 0 && buf[n - 1] == ' ') n--;
    buf[n] = '\0';
    return n ? buf : "(no message)";
}

hr_t pg_fail(pgconn_t *cn, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(cn->conn);
    char line[1024];
    log_error(LOG, "postgres: %s failed: %s%s%s", what, state ? state : "", state ? " " : "",
              pg_one_line(msg, line, sizeof(line)));
    if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01"))) return HR_AGAIN;
    if (state && !strcmp(state, "53100")) {
        store_note_nospace();
        return HR_NOSPACE;
    }
    return HR_ERR;
}

PGresult *pg_q(pgconn_t *cn, const char *what, const char *sql, int n, const char *const *v,
               hr_t *r)
{
    for (int attempt = 0;; attempt++) {
        PGresult *res = PQexecParams(cn->conn, sql, n, NULL, v, NULL, NULL, 0);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *r = HR_OK;
            return res;
        }
        if (attempt == 0 && PQstatus(cn->conn) == CONNECTION_BAD) {
            PQclear(res);
            log_warn(LOG, "postgres: connection lost during %s; reconnecting", what);
            PQreset(cn->conn);
            cn->staged = false; /* a new session: its temporary tables are gone */
            if (PQstatus(cn->conn) == CONNECTION_OK) {
                atomic_store(&cn->pid, PQbackendPID(cn->conn));
                continue;
            }
            *r = pg_fail(cn, NULL, what);
            return NULL;
        }
        *r = pg_fail(cn, res, what);
        PQclear(res);
        return NULL;
    }
}

hr_t pg_x(pgconn_t *cn, const char *what, const char *sql, int n, const char *const *v)
{
    hr_t r;
    PQclear(pg_q(cn, what, sql, n, v, &r));
    return r;
}

long pg_changed(PGresult *res)
{
    const char *t = PQcmdTuples(res);
    return t && t[0] ? strtol(t, NULL, 10) : 0;
}

hr_t pg_tx_begin(pgconn_t *cn) { return pg_x(cn, "begin", "BEGIN", 0, NULL); }

hr_t pg_tx_end(pgconn_t *cn, hr_t r)
{
    if (r == HR_OK) return pg_x(cn, "commit", "COMMIT", 0, NULL);
    pg_x(cn, "rollback", "ROLLBACK", 0, NULL);
    return r;
}

pgconn_t *pg_get(pg_t *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) pthread_cond_wait(&p->cv, &p->mu);
    pgconn_t *cn = &p->conns[p->free_idx[--p->nfree]];
    pthread_mutex_unlock(&p->mu);
    return cn;
}

void pg_put(pg_t *p, pgconn_t *cn)
{
    pthread_mutex_lock(&p->mu);
    p->free_idx[p->nfree++] = (int)(cn - p->conns);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- open, schema ---- */

static hr_t version_read(pgconn_t *cn, int *version)
{
    hr_t r;
    PGresult *res = pg_q(cn, "schema version", "SELECT version FROM schema_version WHERE id = 1",
                         0, NULL, &r);
    if (!res) return r;
    *version = PQntuples(res) ? (int)col_i64(res, 0, 0) : 0;
    PQclear(res);
    return HR_OK;
}

static hr_t schema_init(pgconn_t *cn)
{
    hr_t r = pg_tx_begin(cn);
    if (r != HR_OK) return r;
    num_t key = num(MIGRATE_LOCK);
    const char *v[] = {key.s};
    r = pg_x(cn, "schema lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1, v);
    if (r == HR_OK)
        r = pg_x(cn, "schema", "CREATE TABLE IF NOT EXISTS schema_version ("
                 " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)", 0, NULL);
    int have = 0;
    if (r == HR_OK) r = version_read(cn, &have);
    if (r == HR_OK && have > store_pg_schema_version()) {
        log_error(LOG, "postgres: the database has schema version %d, newer than this herald's %d",
                  have, store_pg_schema_version());
        r = HR_INVALID;
    }
    for (int i = 0; r == HR_OK && i < store_pg_nmigrations; i++) {
        const store_pg_migration_t *m = &store_pg_migrations[i];
        if (m->version <= have) continue;
        PGresult *res = PQexec(cn->conn, m->sql); /* several statements */
        if (PQresultStatus(res) != PGRES_COMMAND_OK) r = pg_fail(cn, res, m->name);
        PQclear(res);
        if (r != HR_OK) break;
        num_t ver = num(m->version);
        const char *vv[] = {ver.s};
        r = pg_x(cn, "schema version",
                 "INSERT INTO schema_version (id, version) VALUES (1, $1)"
                 " ON CONFLICT (id) DO UPDATE SET version = excluded.version", 1, vv);
        if (r == HR_OK)
            log_info(LOG, "postgres: schema at version %d (%s)", m->version, m->name);
    }
    return pg_tx_end(cn, r);
}

/* Frees p with its connections (the listener is stopped first). */
static void pg_free(pg_t *p)
{
    for (int i = 0; i < p->nconn; i++) PQfinish(p->conns[i].conn);
    free(p->conns);
    free(p->free_idx);
    free(p->days);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->part_mu);
    free(p);
}

static hr_t conn_open(pgconn_t *cn, const char *dsn)
{
    cn->conn = PQconnectdb(dsn);
    if (PQstatus(cn->conn) != CONNECTION_OK) {
        /* libpq's message names host and database, never the password */
        char line[1024];
        log_error(LOG, "postgres: cannot connect: %s",
                  pg_one_line(PQerrorMessage(cn->conn), line, sizeof(line)));
        return HR_ERR;
    }
    PQsetNoticeProcessor(cn->conn, notice_drop, NULL);
    atomic_store(&cn->pid, PQbackendPID(cn->conn));
    return HR_OK;
}

static hr_t pg_open(const char *dsn, const store_open_opts_t *o, store_t **out)
{
    /* no integrity check to run: the server keeps its own */
    pg_t *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_init(&p->part_mu, NULL);
    p->nconn = o->pg_pool > 0 ? o->pg_pool : PG_POOL_DEFAULT;
    if (p->nconn > PG_POOL_MAX) p->nconn = PG_POOL_MAX;
    p->conns = xcalloc((size_t)p->nconn, sizeof(*p->conns));
    p->free_idx = xcalloc((size_t)p->nconn, sizeof(*p->free_idx));
    hr_t r = conn_open(&p->conns[0], dsn);
    if (r == HR_OK) r = schema_init(&p->conns[0]);
    for (int i = 1; i < p->nconn && r == HR_OK; i++) r = conn_open(&p->conns[i], dsn);
    if (r == HR_OK) r = pg_parts_open(p);
    if (r == HR_OK && o->pg_listen) r = pg_listen_start(p, dsn);
    if (r != HR_OK) {
        pg_free(p);
        return r;
    }
    /* the last connection first: pg_get takes from the end */
    for (int i = p->nconn - 1; i >= 0; i--) p->free_idx[p->nfree++] = i;
    p->base.ops = &store_pg_ops;
    *out = &p->base;
    return HR_OK;
}

/* store.c's change feed exists now: the listener may announce. */
static void pg_opened(store_t *s) { pg_listen_ready(pg(s)); }

static bool pg_users_feed_exact(store_t *s) { return pg(s)->listen != NULL; }

static void pg_close(store_t *s)
{
    pg_t *p = pg(s);
    pg_listen_stop(p);
    pg_free(p);
}

static int pg_schema_version(store_t *s)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    int v = -1;
    if (version_read(cn, &v) != HR_OK) v = -1;
    pg_put(p, cn);
    return v;
}

/* ---- users, devices, preferences ---- */

static hr_t user_put_one(pgconn_t *cn, const user_t *u)
{
    num_t at = num(u->updated_at_ms ? u->updated_at_ms : hclock_now_ms());
    const char *v[] = {u->user_id, u->email, u->phone,
                       nonempty(u->locale) ? u->locale : "en",
                       nonempty(u->timezone) ? u->timezone : "UTC",
                       u->quiet_start, u->quiet_end, u->webhook_url, at.s, u->webhook_secret};
    hr_t r = pg_x(cn, "user put",
                  "INSERT INTO users (user_id, email, phone, locale, timezone, quiet_start,"
                  " quiet_end, webhook_url, updated_at, webhook_secret)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10::text, ''))"
                  " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email,"
                  " phone = excluded.phone, locale = excluded.locale,"
                  " timezone = excluded.timezone, quiet_start = excluded.quiet_start,"
                  " quiet_end = excluded.quiet_end, webhook_url = excluded.webhook_url,"
                  " updated_at = excluded.updated_at,"
                  /* $10 NULL keeps the stored secret, '' removes it */
                  " webhook_secret = CASE WHEN $10::text IS NULL THEN users.webhook_secret"
                  " ELSE NULLIF($10::text, '') END",
                  10, v);
    if (r != HR_OK) return r;
    const char *d[] = {u->user_id};
    r = pg_x(cn, "devices delete", "DELETE FROM devices WHERE user_id = $1", 1, d);
    for (int i = 0; r == HR_OK && i < u->ndevices; i++) {
        num_t seq = num(i);
        const char *dv[] = {u->user_id, seq.s, u->devices[i].platform, u->devices[i].token};
        r = pg_x(cn, "device add",
                 "INSERT INTO devices (user_id, seq, platform, token) VALUES ($1, $2, $3, $4)", 4,
                 dv);
    }
    return r;
}

static hr_t pg_user_put_batch(store_t *s, const user_t *users, int n)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_tx_begin(cn);
    if (r == HR_OK) {
        for (int i = 0; i < n && r == HR_OK; i++) r = user_put_one(cn, &users[i]);
        r = pg_tx_end(cn, r);
    }
    pg_put(p, cn);
    return r;
}

static hr_t pg_user_put(store_t *s, const user_t *u) { return pg_user_put_batch(s, u, 1); }

/* Reads the user (p->mu held). */
static hr_t user_read(pgconn_t *cn, const char *user_id, user_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *v[] = {user_id};
    hr_t r;
    PGresult *res = pg_q(cn, "user get",
                         "SELECT email, phone, locale, timezone, quiet_start, quiet_end,"
                         " webhook_url, updated_at, webhook_secret FROM users WHERE user_id = $1",
                         1, v, &r);
    if (!res) return r;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return HR_NOTFOUND;
    }
    out->user_id = xstrdup(user_id);
    out->email = col(res, 0, 0);
    out->phone = col(res, 0, 1);
    out->locale = col(res, 0, 2);
    out->timezone = col(res, 0, 3);
    out->quiet_start = col(res, 0, 4);
    out->quiet_end = col(res, 0, 5);
    out->webhook_url = col(res, 0, 6);
    out->updated_at_ms = col_i64(res, 0, 7);
    out->webhook_secret = col(res, 0, 8);
    PQclear(res);
    res = pg_q(cn, "devices get",
               "SELECT platform, token FROM devices WHERE user_id = $1 ORDER BY seq LIMIT 16", 1,
               v, &r);
    if (!res) {
        store_user_clear(out);
        return r;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n && i < STORE_MAX_DEVICES; i++) {
        out->devices[i].platform = col(res, i, 0);
        out->devices[i].token = col(res, i, 1);
        out->ndevices = i + 1;
    }
    PQclear(res);
    return HR_OK;
}

static hr_t pg_user_get(store_t *s, const char *user_id, user_t *out)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = user_read(cn, user_id, out);
    pg_put(p, cn);
    return r;
}

static hr_t pg_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_tx_begin(cn);
    if (r == HR_OK) {
        const char *v[] = {user_id};
        /* two replaces of one user's preferences must not interleave (the
         * user row need not exist to lock it) */
        r = pg_x(cn, "prefs lock", "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", 1, v);
        if (r == HR_OK)
            r = pg_x(cn, "prefs delete", "DELETE FROM preferences WHERE user_id = $1", 1, v);
        for (int i = 0; i < n && r == HR_OK; i++) {
            num_t ch = num(prefs[i].channel);
            const char *pv[] = {user_id, prefs[i].category ? prefs[i].category : "", ch.s,
                                prefs[i].enabled ? "true" : "false"};
            r = pg_x(cn, "pref add",
                     "INSERT INTO preferences (user_id, category, channel, enabled)"
                     " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, category, channel)"
                     " DO UPDATE SET enabled = excluded.enabled",
                     4, pv);
        }
        r = pg_tx_end(cn, r);
    }
    pg_put(p, cn);
    return r;
}

/* The user's preferences (p->mu held). */
static hr_t prefs_read(pgconn_t *cn, const char *user_id, pref_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    const char *v[] = {user_id};
    hr_t r;
    PGresult *res = pg_q(cn, "prefs get",
                         "SELECT category, channel, enabled FROM preferences WHERE user_id = $1"
                         " ORDER BY category, channel",
                         1, v, &r);
    if (res) {
        int rows = PQntuples(res);
        if (rows > 0) {
            *out = xcalloc((size_t)rows, sizeof(**out));
            for (int i = 0; i < rows; i++) {
                (*out)[i].category = col(res, i, 0);
                (*out)[i].channel = (channel_t)col_i64(res, i, 1);
                (*out)[i].enabled = col_bool(res, i, 2);
            }
        }
        *n = rows;
        PQclear(res);
    }
    return r;
}

static hr_t pg_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = prefs_read(cn, user_id, out, n);
    pg_put(p, cn);
    return r;
}

/* One snapshot (REPEATABLE READ): up to limit users after `after`, each
 * with devices and preferences. First cut: a query per user. */
static hr_t pg_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                          int *nprefs, int *n)
{
    pg_t *p = pg(s);
    num_t lim = num(limit);
    const char *v[] = {after ? after : "", lim.s};
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_x(cn, "begin", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
    PGresult *res = NULL;
    if (r == HR_OK)
        res = pg_q(cn, "users scan",
                   "SELECT user_id FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2", 2,
                   v, &r);
    int got = 0;
    if (res) {
        int rows = PQntuples(res);
        for (int i = 0; i < rows && r == HR_OK; i++) {
            r = user_read(cn, PQgetvalue(res, i, 0), &out[i]);
            if (r == HR_NOTFOUND) r = HR_ERR; /* cannot happen in one snapshot */
            if (r == HR_OK) {
                r = prefs_read(cn, out[i].user_id, &prefs[i], &nprefs[i]);
                if (r != HR_OK) store_user_clear(&out[i]);
            }
            if (r == HR_OK) got = i + 1;
        }
        PQclear(res);
    }
    r = pg_tx_end(cn, r);
    if (r != HR_OK) {
        for (int i = 0; i < got; i++) {
            store_user_clear(&out[i]);
            store_prefs_free(prefs[i], nprefs[i]);
            prefs[i] = NULL;
            nprefs[i] = 0;
        }
        got = 0;
    }
    *n = got;
    pg_put(p, cn);
    return r;
}

/* ---- subscriptions, follows ---- */

/* An insert-if-absent; *created (may be NULL) when a row went in. */
static hr_t add_pair(store_t *s, const char *what, const char *sql, const char *a, const char *b,
                     bool *created)
{
    pg_t *p = pg(s);
    num_t now = num(hclock_now_ms());
    const char *v[] = {a, b, now.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, what, sql, 3, v, &r);
    if (res && created) *created = pg_changed(res) == 1;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

/* A delete of one pair: HR_NOTFOUND when nothing matched. */
static hr_t del_pair(store_t *s, const char *what, const char *sql, const char *a, const char *b)
{
    pg_t *p = pg(s);
    const char *v[] = {a, b};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, what, sql, 2, v, &r);
    if (res && pg_changed(res) == 0) r = HR_NOTFOUND;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

/* A page of ids: sql takes (key, after, limit) and selects one column. */
static hr_t page(store_t *s, const char *what, const char *sql, const char *key,
                 const char *after, int limit, char ***ids, int *n)
{
    pg_t *p = pg(s);
    num_t lim = num(limit);
    const char *v[] = {key, after ? after : "", lim.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, what, sql, 3, v, &r);
    if (res) {
        int rows = PQntuples(res);
        if (rows > 0) {
            *ids = xcalloc((size_t)rows, sizeof(**ids));
            for (int i = 0; i < rows; i++) (*ids)[i] = col(res, i, 0);
        }
        *n = rows;
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

static hr_t pg_sub_add(store_t *s, const char *topic, const char *user_id, bool *created)
{
    return add_pair(s, "subscribe",
                    "INSERT INTO subscriptions (topic, user_id, created_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    topic, user_id, created);
}

static hr_t pg_sub_del(store_t *s, const char *topic, const char *user_id)
{
    return del_pair(s, "unsubscribe", "DELETE FROM subscriptions WHERE topic = $1 AND user_id = $2",
                    topic, user_id);
}

static hr_t pg_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                         int *n)
{
    return page(s, "subscribers page",
                "SELECT user_id FROM subscriptions WHERE topic = $1 AND user_id > $2"
                " ORDER BY user_id LIMIT $3",
                topic, after, limit, ids, n);
}

static hr_t pg_follow_add(store_t *s, const char *follower, const char *actor, bool *created)
{
    return add_pair(s, "follow",
                    "INSERT INTO follows (actor, follower, created_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    actor, follower, created);
}

static hr_t pg_follow_del(store_t *s, const char *follower, const char *actor)
{
    return del_pair(s, "unfollow", "DELETE FROM follows WHERE actor = $1 AND follower = $2", actor,
                    follower);
}

static hr_t pg_followers_page(store_t *s, const char *actor, const char *after, int limit,
                              char ***ids, int *n)
{
    return page(s, "followers page",
                "SELECT follower FROM follows WHERE actor = $1 AND follower > $2"
                " ORDER BY follower LIMIT $3",
                actor, after, limit, ids, n);
}

static hr_t pg_following_page(store_t *s, const char *follower, const char *after, int limit,
                              char ***ids, int *n)
{
    return page(s, "following page",
                "SELECT actor FROM follows WHERE follower = $1 AND actor > $2"
                " ORDER BY actor LIMIT $3",
                follower, after, limit, ids, n);
}

static hr_t pg_user_topics_page(store_t *s, const char *user_id, const char *after, int limit,
                                char ***topics, int *n)
{
    return page(s, "user topics page",
                "SELECT topic FROM subscriptions WHERE user_id = $1 AND topic > $2"
                " ORDER BY topic LIMIT $3",
                user_id, after, limit, topics, n);
}

/* Runs a delete taking (user_id[, limit]); adds the rows it removed. */
static hr_t erase_run(pgconn_t *cn, const char *what, const char *sql, const char *user_id,
                      const char *limit, int64_t *count)
{
    const char *v[] = {user_id, limit};
    hr_t r;
    PGresult *res = pg_q(cn, what, sql, limit ? 2 : 1, v, &r);
    if (res) *count += pg_changed(res);
    PQclear(res);
    return r;
}

/* One erase transaction (p->mu held): up to ERASE_CHUNK notifications with
 * their history and as many followers; when neither filled its chunk, the
 * user's other rows as well, and *done is set (as the SQLite backend). */
static hr_t erase_step(pgconn_t *cn, const char *user_id, store_erase_t *st, bool *done)
{
    static const struct {
        const char *what, *sql;
    } rest[] = {
        {"erase user", "DELETE FROM users WHERE user_id = $1"},
        {"erase devices", "DELETE FROM devices WHERE user_id = $1"},
        {"erase preferences", "DELETE FROM preferences WHERE user_id = $1"},
        {"erase subscriptions", "DELETE FROM subscriptions WHERE user_id = $1"},
        {"erase follows", "DELETE FROM follows WHERE follower = $1"},
        {"erase invalid addresses", "DELETE FROM invalid_addresses WHERE user_id = $1"},
        {"erase scheduled", "DELETE FROM scheduled WHERE user_id = $1"},
        {"erase inbox", "DELETE FROM inbox WHERE user_id = $1"},
    };
    num_t chunk = num(ERASE_CHUNK);
    int64_t notifs = 0, followers = 0, rows = 0, hist = 0;
    hr_t r = pg_tx_begin(cn);
    if (r == HR_OK)
        r = erase_run(cn, "erase history",
                      "DELETE FROM status_history WHERE (notification_id, created_at) IN"
                      " (SELECT notification_id, created_at FROM notifications WHERE user_id = $1"
                      " ORDER BY notification_id LIMIT $2)",
                      user_id, chunk.s, &hist);
    if (r == HR_OK)
        r = erase_run(cn, "erase notifications",
                      "DELETE FROM notifications WHERE (notification_id, created_at) IN"
                      " (SELECT notification_id, created_at FROM notifications WHERE user_id = $1"
                      " ORDER BY notification_id LIMIT $2)",
                      user_id, chunk.s, &notifs);
    if (r == HR_OK)
        r = erase_run(cn, "erase followers",
                      "DELETE FROM follows WHERE actor = $1 AND follower IN (SELECT follower"
                      " FROM follows WHERE actor = $1 ORDER BY follower LIMIT $2)",
                      user_id, chunk.s, &followers);
    bool last = notifs < ERASE_CHUNK && followers < ERASE_CHUNK;
    for (size_t i = 0; last && i < ARRAY_LEN(rest) && r == HR_OK; i++)
        r = erase_run(cn, rest[i].what, rest[i].sql, user_id, NULL, &rows);
    r = pg_tx_end(cn, r);
    if (r != HR_OK) return r;
    (void)hist; /* history rows go with their notification: not counted apart */
    st->notifications += notifs;
    st->rows += followers + rows;
    st->transactions++;
    *done = last;
    return HR_OK;
}

/* Chunked like the SQLite backend (store.h): the user row goes last, so a
 * failed erase leaves the user in place and a second call finishes. */
static hr_t pg_user_erase(store_t *s, const char *user_id, store_erase_t *st)
{
    pg_t *p = pg(s);
    bool done = false;
    hr_t r = HR_OK;
    while (!done && r == HR_OK) {
        pgconn_t *cn = pg_get(p);
        r = erase_step(cn, user_id, st, &done);
        pg_put(p, cn);
    }
    return r;
}

/* ---- templates ---- */

static hr_t pg_template_put(store_t *s, const template_rec_t *t)
{
    pg_t *p = pg(s);
    num_t ch = num(t->channel), now = num(hclock_now_ms());
    const char *v[] = {t->event_type, ch.s, nonempty(t->locale) ? t->locale : "en",
                       t->title ? t->title : "", t->body ? t->body : "", now.s};
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_x(cn, "template put",
                  "INSERT INTO templates (event_type, channel, locale_key, locale, title, body,"
                  " updated_at) VALUES ($1, $2, lower($3), $3, $4, $5, $6)"
                  " ON CONFLICT (event_type, channel, locale_key) DO UPDATE"
                  " SET locale = excluded.locale, title = excluded.title, body = excluded.body,"
                  " updated_at = excluded.updated_at",
                  6, v);
    pg_put(p, cn);
    return r;
}

static hr_t pg_template_get(store_t *s, const char *event_type, channel_t ch,
                            const char *const chain[STORE_LOCALE_CHAIN], template_rec_t *out)
{
    _Static_assert(STORE_LOCALE_CHAIN == 3, "the query binds three locales");
    pg_t *p = pg(s);
    num_t c = num(ch);
    const char *v[] = {event_type, c.s, chain[0], chain[1], chain[2]};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "template get",
                         "SELECT locale, title, body FROM templates"
                         " WHERE event_type = $1 AND channel = $2"
                         " AND locale_key IN (lower($3), lower($4), lower($5))"
                         " ORDER BY CASE WHEN locale_key = lower($3) THEN 0"
                         " WHEN locale_key = lower($4) THEN 1 ELSE 2 END LIMIT 1",
                         5, v, &r);
    if (res) {
        if (PQntuples(res) == 0) {
            r = HR_NOTFOUND;
        } else {
            out->event_type = xstrdup(event_type);
            out->channel = ch;
            out->locale = col(res, 0, 0);
            out->title = col(res, 0, 1);
            out->body = col(res, 0, 2);
        }
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

static hr_t pg_template_channels(store_t *s, const char *event_type, unsigned *mask)
{
    pg_t *p = pg(s);
    const char *v[] = {event_type};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "template channels",
                         "SELECT DISTINCT channel FROM templates WHERE event_type = $1", 1, v, &r);
    if (res) {
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t ch = col_i64(res, i, 0);
            if (ch >= 0 && ch < CH__COUNT) *mask |= 1u << ch;
        }
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

/* ---- event dedupe ---- */

/* One claim (p->mu held): the primary key of events decides, whichever
 * process claims first. */
static hr_t claim_one(pgconn_t *cn, const char *event_id, const char *position, claim_t *out)
{
    num_t now = num(hclock_now_ms());
    const char *v[] = {event_id, position, now.s};
    hr_t r;
    PGresult *res = pg_q(cn, "event claim",
                         "INSERT INTO events (event_id, position, first_seen_ms)"
                         " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                         3, v, &r);
    if (!res) return r;
    long changed = pg_changed(res);
    PQclear(res);
    if (changed == 1) {
        *out = CLAIM_NEW;
        return HR_OK;
    }
    res = pg_q(cn, "event claim lookup", "SELECT position FROM events WHERE event_id = $1", 1, v,
               &r);
    if (!res) return r;
    if (PQntuples(res) == 0) {
        r = HR_AGAIN; /* released meanwhile by another process: claim again */
    } else {
        *out = strcmp(PQgetvalue(res, 0, 0), position) == 0 ? CLAIM_SAME : CLAIM_DUP;
    }
    PQclear(res);
    return r;
}

static hr_t pg_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r = claim_one(cn, event_id, position, out);
    pg_put(p, cn);
    return r;
}

typedef struct claimed {
    const char *id;
    bool inserted;
    const char *stored;         /* the position stored before (NULL: none) */
    const char *ref;            /* the reference position within this batch */
} claimed_t;

static int claimed_cmp(const void *x, const void *y)
{
    return strcmp(((const claimed_t *)x)->id, ((const claimed_t *)y)->id);
}

/* One statement for the whole batch: the first position of each id is
 * inserted ON CONFLICT DO NOTHING (the unique key decides between
 * processes); the ids that were there already come back with their stored
 * position. Then, in batch order: an id inserted here is NEW the first
 * time, later copies compare with that first position; an id stored before
 * compares with the stored position. An id neither inserted nor visible
 * (another process claimed and released it meanwhile) is HR_AGAIN. */
static hr_t pg_event_claim_batch(store_t *s, const char *const *ids, const char *const *positions,
                                 int n, claim_t *out)
{
    pg_t *p = pg(s);
    char *a_ids = pg_text_array(NULL, ids, n), *a_pos = pg_text_array(NULL, positions, n);
    num_t now = num(hclock_now_ms());
    const char *v[] = {a_ids, a_pos, now.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(
        cn, "event claim batch",
        "WITH input AS (SELECT event_id, position, ord FROM"
        " unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(event_id, position, ord)),"
        " first AS (SELECT DISTINCT ON (event_id) event_id, position FROM input"
        " ORDER BY event_id, ord),"
        " ins AS (INSERT INTO events (event_id, position, first_seen_ms)"
        " SELECT event_id, position, $3 FROM first ORDER BY event_id"
        " ON CONFLICT DO NOTHING RETURNING event_id)"
        " SELECT f.event_id, ins.event_id IS NOT NULL, e.position FROM first f"
        " LEFT JOIN ins ON ins.event_id = f.event_id"
        " LEFT JOIN events e ON e.event_id = f.event_id",
        3, v, &r);
    free(a_ids);
    free(a_pos);
    if (res) {
        int rows = PQntuples(res);
        claimed_t *c = xcalloc((size_t)(rows ? rows : 1), sizeof(*c));
        for (int j = 0; j < rows; j++)
            c[j] = (claimed_t){PQgetvalue(res, j, 0), col_bool(res, j, 1),
                               PQgetisnull(res, j, 2) ? NULL : PQgetvalue(res, j, 2), NULL};
        qsort(c, (size_t)rows, sizeof(*c), claimed_cmp);
        for (int i = 0; i < n && r == HR_OK; i++) {
            const char *pos = positions[i] ? positions[i] : "";
            claimed_t key = {.id = ids[i]};
            claimed_t *e = bsearch(&key, c, (size_t)rows, sizeof(*c), claimed_cmp);
            if (!e) {
                r = HR_ERR; /* an id the statement did not return */
                log_error(LOG, "postgres: event claim batch: an id went missing");
            } else if (e->ref) {
                out[i] = strcmp(e->ref, pos) == 0 ? CLAIM_SAME : CLAIM_DUP;
            } else if (e->inserted) {
                out[i] = CLAIM_NEW;
                e->ref = pos;
            } else if (e->stored) {
                e->ref = e->stored;
                out[i] = strcmp(e->ref, pos) == 0 ? CLAIM_SAME : CLAIM_DUP;
            } else {
                r = HR_AGAIN;
            }
        }
        free(c);
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

static hr_t pg_event_release(store_t *s, const char *event_id)
{
    pg_t *p = pg(s);
    const char *v[] = {event_id};
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_x(cn, "event release", "DELETE FROM events WHERE event_id = $1", 1, v);
    pg_put(p, cn);
    return r;
}

/* ---- dispatch policy ---- */

static hr_t pg_sched_put(store_t *s, const char *notification_id, hstr_t user_id, channel_t ch,
                         int64_t due_at_ms, const void *rec, size_t rec_len)
{
    pg_t *p = pg(s);
    num_t c = num(ch), due = num(due_at_ms);
    char *uid = hdup(user_id, true);
    /* the record goes in binary (parameter 4), the rest as text */
    const char *v[] = {notification_id, c.s, due.s, rec, uid};
    const int len[] = {0, 0, 0, (int)rec_len, 0};
    const int fmt[] = {0, 0, 0, 1, 0};
    pgconn_t *cn = pg_get(p);
    hr_t r = HR_OK;
    PGresult *res = rec_len > (size_t)INT32_MAX
                        ? NULL
                        : PQexecParams(cn->conn,
                                       "INSERT INTO scheduled (notification_id, channel, due_at_ms,"
                                       " record, user_id) VALUES ($1, $2, $3, $4, $5)"
                                       " ON CONFLICT (notification_id) DO UPDATE SET"
                                       " channel = excluded.channel, due_at_ms = excluded.due_at_ms,"
                                       " record = excluded.record, user_id = excluded.user_id",
                                       5, NULL, v, len, fmt, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) r = pg_fail(cn, res, "scheduled put");
    PQclear(res);
    pg_put(p, cn);
    free(uid);
    return r;
}

static hr_t pg_sched_due(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n)
{
    pg_t *p = pg(s);
    num_t now = num(now_ms), lim = num(limit);
    const char *v[] = {now.s, lim.s};
    pgconn_t *cn = pg_get(p);
    hr_t r = HR_OK;
    /* results in binary: the record comes back as its bytes */
    PGresult *res = PQexecParams(cn->conn,
                                 "SELECT notification_id, channel::int8, due_at_ms, record"
                                 " FROM scheduled WHERE due_at_ms <= $1"
                                 " ORDER BY due_at_ms, notification_id LIMIT $2",
                                 2, NULL, v, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = pg_fail(cn, res, "scheduled due");
    } else {
        int got = PQntuples(res);
        if (got > 0) *rows = xcalloc((size_t)got, sizeof(**rows));
        for (int i = 0; i < got; i++) {
            sched_row_t *w = &(*rows)[i];
            int idlen = PQgetlength(res, i, 0);
            w->notification_id = xmalloc((size_t)idlen + 1);
            memcpy(w->notification_id, PQgetvalue(res, i, 0), (size_t)idlen);
            w->notification_id[idlen] = '\0';
            uint64_t be[2] = {0, 0};
            memcpy(&be[0], PQgetvalue(res, i, 1), sizeof(be[0]));
            memcpy(&be[1], PQgetvalue(res, i, 2), sizeof(be[1]));
            w->channel = (channel_t)(int64_t)be64toh(be[0]);
            w->due_at_ms = (int64_t)be64toh(be[1]);
            w->rec_len = (size_t)PQgetlength(res, i, 3);
            w->rec = xmalloc(w->rec_len ? w->rec_len : 1);
            if (w->rec_len) memcpy(w->rec, PQgetvalue(res, i, 3), w->rec_len);
        }
        *n = got;
    }
    PQclear(res);
    pg_put(p, cn);
    return r;
}

static hr_t pg_sched_next(store_t *s, int64_t *due)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "scheduled next", "SELECT min(due_at_ms) FROM scheduled", 0, NULL, &r);
    if (res) *due = PQgetisnull(res, 0, 0) ? INT64_MAX : col_i64(res, 0, 0);
    PQclear(res);
    pg_put(p, cn);
    return r;
}

static hr_t pg_sched_del(store_t *s, const char *notification_id, int64_t due_at_ms)
{
    pg_t *p = pg(s);
    num_t due = num(due_at_ms);
    const char *v[] = {notification_id, due.s};
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_x(cn, "scheduled delete",
                  "DELETE FROM scheduled WHERE notification_id = $1 AND due_at_ms = $2", 2, v);
    pg_put(p, cn);
    return r;
}

static hr_t pg_address_invalid_add(store_t *s, const char *user_id, channel_t ch,
                                   const char *address, const char *reason, int64_t at_ms)
{
    pg_t *p = pg(s);
    num_t c = num(ch), at = num(at_ms);
    const char *v[] = {user_id, c.s, address, reason, at.s};
    pgconn_t *cn = pg_get(p);
    hr_t r = pg_x(cn, "invalid address add",
                  "INSERT INTO invalid_addresses (user_id, channel, address, reason, at_ms)"
                  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, channel, address)"
                  " DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms",
                  5, v);
    pg_put(p, cn);
    return r;
}

static hr_t pg_address_invalid_get(store_t *s, const char *user_id, channel_t ch,
                                   const char *address, bool *invalid)
{
    pg_t *p = pg(s);
    num_t c = num(ch);
    const char *v[] = {user_id, c.s, address};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "invalid address get",
                         "SELECT 1 FROM invalid_addresses WHERE user_id = $1 AND channel = $2"
                         " AND address = $3",
                         3, v, &r);
    if (res) *invalid = PQntuples(res) > 0;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

static hr_t pg_dlq_mark(store_t *s, const char *dlq_id, int64_t at_ms, bool *first)
{
    pg_t *p = pg(s);
    num_t at = num(at_ms);
    const char *v[] = {dlq_id, at.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "dlq mark",
                         "INSERT INTO dlq_redriven (dlq_id, at_ms) VALUES ($1, $2)"
                         " ON CONFLICT DO NOTHING",
                         2, v, &r);
    if (res && first) *first = pg_changed(res) == 1;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

static hr_t pg_dlq_get(store_t *s, const char *dlq_id, bool *done)
{
    pg_t *p = pg(s);
    const char *v[] = {dlq_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res =
        pg_q(cn, "dlq get", "SELECT 1 FROM dlq_redriven WHERE dlq_id = $1", 1, v, &r);
    if (res) *done = PQntuples(res) > 0;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

/* ---- API keys ---- */

static void hex32(const unsigned char h[32], char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static hr_t pg_key_put(store_t *s, const api_key_rec_t *k)
{
    pg_t *p = pg(s);
    char hash[65];
    hex32(k->secret_hash, hash);
    num_t scopes = num(k->scopes), at = num(k->created_at_ms), rev = num(k->revoked_at_ms);
    const char *v[] = {k->key_id, hash, k->tenant, scopes.s, k->name, at.s,
                       k->revoked_at_ms ? rev.s : NULL};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "API key put",
                         "INSERT INTO api_keys (key_id, secret_hash, tenant, scopes, name,"
                         " created_at_ms, revoked_at_ms)"
                         " VALUES ($1, decode($2, 'hex'), $3, $4, $5, $6, $7)"
                         " ON CONFLICT DO NOTHING",
                         7, v, &r);
    if (res && pg_changed(res) == 0) r = HR_CONFLICT;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

#define KEY_COLS                                                                              \
    "key_id, encode(secret_hash, 'hex'), tenant, scopes, name, created_at_ms, revoked_at_ms"

/* Fills k from row i of a KEY_COLS result; false when a column is out of
 * bounds (a damaged row). */
static bool key_read(PGresult *res, int i, api_key_rec_t *k)
{
    memset(k, 0, sizeof(*k));
    const char *id = PQgetvalue(res, i, 0), *hash = PQgetvalue(res, i, 1),
               *tenant = PQgetvalue(res, i, 2), *name = PQgetvalue(res, i, 4);
    if (strlen(id) > STORE_KEY_ID_MAX || strlen(hash) != 64 || strlen(tenant) > STORE_TENANT_MAX ||
        strlen(name) > STORE_KEY_NAME_MAX)
        return false;
    for (int j = 0; j < 32; j++) {
        int hi = unhex(hash[2 * j]), lo = unhex(hash[2 * j + 1]);
        if (hi < 0 || lo < 0) return false;
        k->secret_hash[j] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(k->key_id, id, strlen(id) + 1);
    memcpy(k->tenant, tenant, strlen(tenant) + 1);
    memcpy(k->name, name, strlen(name) + 1);
    k->scopes = (unsigned)col_i64(res, i, 3);
    k->created_at_ms = col_i64(res, i, 5);
    k->revoked_at_ms = col_i64(res, i, 6);
    return true;
}

static hr_t pg_key_get(store_t *s, const char *key_id, api_key_rec_t *out)
{
    pg_t *p = pg(s);
    const char *v[] = {key_id};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res =
        pg_q(cn, "API key get", "SELECT " KEY_COLS " FROM api_keys WHERE key_id = $1", 1, v, &r);
    if (res && PQntuples(res) == 0) r = HR_NOTFOUND;
    else if (res && !key_read(res, 0, out)) {
        log_error(LOG, "postgres: API key get: a stored key has out-of-range fields");
        r = HR_ERR;
    }
    PQclear(res);
    pg_put(p, cn);
    return r;
}

static hr_t pg_key_list(store_t *s, api_key_rec_t **out, int *n)
{
    pg_t *p = pg(s);
    pgconn_t *cn = pg_get(p);
    hr_t r;
    PGresult *res = pg_q(cn, "API key list",
                         "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at_ms, key_id", 0,
                         NULL, &r);
    if (res) {
        int rows = PQntuples(res), got = 0;
        api_key_rec_t *k = rows ? xcalloc((size_t)rows, sizeof(*k)) : NULL;
        for (int i = 0; i < rows; i++)
            if (key_read(res, i, &k[got])) got++;
            else log_warn(LOG, "postgres: API key list: skipped a key with out-of-range fields");
        *out = k;
        *n = got;
        PQclear(res);
    }
    pg_put(p, cn);
    return r;
}

static hr_t pg_key_revoke(store_t *s, const char *key_id, int64_t at_ms)
{
    pg_t *p = pg(s);
    num_t at = num(at_ms);
    const char *v[] = {key_id, at.s};
    pgconn_t *cn = pg_get(p);
    hr_t r;
    /* a key already revoked keeps its first time */
    PGresult *res = pg_q(cn, "API key revoke",
                         "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, $2)"
                         " WHERE key_id = $1",
                         2, v, &r);
    if (res && pg_changed(res) == 0) r = HR_NOTFOUND;
    PQclear(res);
    pg_put(p, cn);
    return r;
}

const store_ops_t store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .opened = pg_opened,
    .users_feed_exact = pg_users_feed_exact,
    .schema_version = pg_schema_version,
    .user_put = pg_user_put,
    .user_put_batch = pg_user_put_batch,
    .user_get = pg_user_get,
    .users_scan = pg_users_scan,
    .prefs_replace = pg_prefs_replace,
    .prefs_get = pg_prefs_get,
    .sub_add = pg_sub_add,
    .sub_del = pg_sub_del,
    .subs_page = pg_subs_page,
    .follow_add = pg_follow_add,
    .followers_page = pg_followers_page,
    .user_erase = pg_user_erase,
    .follow_del = pg_follow_del,
    .following_page = pg_following_page,
    .user_topics_page = pg_user_topics_page,
    .template_put = pg_template_put,
    .template_get = pg_template_get,
    .template_channels = pg_template_channels,
    .event_claim = pg_event_claim,
    .event_claim_batch = pg_event_claim_batch,
    .notif_write_batch = pg_notif_write_batch,
    .notif_get = pg_notif_get,
    .notif_list_user = pg_notif_list_user,
    .notif_sent = pg_notif_sent,
    .notif_sent_batch = pg_notif_sent_batch,
    .notif_purge = pg_notif_purge,
    .sched_put = pg_sched_put,
    .sched_due = pg_sched_due,
    .sched_next = pg_sched_next,
    .sched_del = pg_sched_del,
    .address_invalid_add = pg_address_invalid_add,
    .address_invalid_get = pg_address_invalid_get,
    .event_release = pg_event_release,
    .dlq_mark = pg_dlq_mark,
    .dlq_get = pg_dlq_get,
    .key_put = pg_key_put,
    .key_get = pg_key_get,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .inbox_put = pg_inbox_put,
    .inbox_list = pg_inbox_list,
    .inbox_counts = pg_inbox_counts,
    .inbox_mark = pg_inbox_mark,
    .inbox_del = pg_inbox_del,
};
