/*
 * store_pg_int.h - what the PostgreSQL backend's files share: the pool of
 * connections, the query helpers, column readers. Private to
 * src/store/store_pg*.c.
 *
 * Threads: every op takes a connection from the pool (pg_get), runs its
 * statement or transaction on it and gives it back (pg_put); nothing else
 * of a connection is shared, so N threads run N statements at once. The
 * status sink's batch, the API's reads and fan-out's lookups no longer
 * queue behind one another unless the pool is exhausted.
 */
#ifndef HERALD_STORE_PG_INT_H
#define HERALD_STORE_PG_INT_H

#include "store/store_int.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_POOL_DEFAULT 8       /* connections when store_open_opts_t.pg_pool is 0 */
#define PG_POOL_MAX 256

/* One pooled connection; owned by the thread that took it until pg_put. */
typedef struct pgconn {
    PGconn *conn;
    _Atomic int pid;            /* its server process (NOTIFYs it sent are ours) */
    bool staged;                /* its temporary staging table exists (store_pg_notif.c) */
} pgconn_t;

typedef struct pg_listen pg_listen_t;

/* Invariant: free_idx[0..nfree) are the indexes of the connections no
 * thread holds; mu guards free_idx and nfree; cv is signalled on pg_put. */
typedef struct pg {
    store_t base;
    int nconn;
    pgconn_t *conns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int *free_idx;
    int nfree;
    /* days (UTC, since the epoch) whose notification partitions are known
     * to exist (store_pg_notif.c); under part_mu */
    pthread_mutex_t part_mu;
    int64_t *days;
    int ndays, capdays;
    pg_listen_t *listen;        /* the LISTEN thread (store_pg_listen.c), NULL when off */
} pg_t;

static inline pg_t *pg(store_t *s) { return (pg_t *)s; }

/* A connection of the pool; waits while all are taken. */
pgconn_t *pg_get(pg_t *p);
void pg_put(pg_t *p, pgconn_t *cn);

/* HR_* for a failed result (NULL res: the connection's error): 40001 and
 * 40P01 are HR_AGAIN, 53100 HR_NOSPACE. Logs what failed. */
hr_t pg_fail(pgconn_t *cn, PGresult *res, const char *what);
/* Runs sql with n text parameters (NULL = SQL NULL). On success the result
 * (PQclear it) and *r = HR_OK; on failure NULL and *r set. A broken
 * connection is reset once and the statement retried. */
PGresult *pg_q(pgconn_t *cn, const char *what, const char *sql, int n, const char *const *v,
               hr_t *r);
/* pg_q for statements whose rows are not wanted. */
hr_t pg_x(pgconn_t *cn, const char *what, const char *sql, int n, const char *const *v);
/* Rows a command changed ("INSERT 0 1" -> 1). */
long pg_changed(PGresult *res);
hr_t pg_tx_begin(pgconn_t *cn);
/* Commits when r is HR_OK, else rolls back; returns the outcome. */
hr_t pg_tx_end(pgconn_t *cn, hr_t r);
/* libpq's message on one line (newlines become spaces). */
const char *pg_one_line(const char *msg, char *buf, size_t cap);

/* store_pg_notif.c: the notification partitions of the days around now
 * exist (created when missing); called at open. */
hr_t pg_parts_open(pg_t *p);
/* store_pg_listen.c: the LISTEN thread that feeds other processes' changes
 * to this store's change feed. */
hr_t pg_listen_start(pg_t *p, const char *dsn);
void pg_listen_stop(pg_t *p); /* no-op when not started */
/* The store's change feed exists: announcements may start. */
void pg_listen_ready(pg_t *p);

/* store_pg_notif.c: the notification ops (store_int.h). */
hr_t pg_notif_write_batch(store_t *s, const notif_t *const *recs, int n);
hr_t pg_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                  status_hist_t **hist, int *nhist);
hr_t pg_notif_list_user(store_t *s, const char *user_id, int64_t after_ms, const char *after_id,
                        int limit, notif_row_t **rows, int *n, bool *more);
hr_t pg_notif_sent(store_t *s, const char *notification_id, bool *sent);
hr_t pg_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent);
hr_t pg_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted);
/* A text[] literal of n strings ({"a","b"}; '"' and '\\' escaped; a
 * string holding a NUL byte is left out). ids: hstr_t (strs NULL) or C
 * strings (hs NULL; NULL = ""). Free it. */
char *pg_text_array(const hstr_t *hs, const char *const *strs, int n);

/* store_pg_inbox.c: the inbox ops (store_int.h). */
hr_t pg_inbox_put(store_t *s, const inbox_item_t *it, bool *created);
hr_t pg_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                   const char *after_id, int limit, inbox_item_t **items, int *n, bool *more);
hr_t pg_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen);
hr_t pg_inbox_mark(store_t *s, const char *user_id, const char *notification_id, inbox_mark_t m,
                   int64_t at_ms, int64_t *changed);
hr_t pg_inbox_del(store_t *s, const char *user_id, const char *notification_id);

/* ---- column readers, parameters ---- */

static inline bool nonempty(const char *s) { return s && s[0]; }

static inline char *col(PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? NULL : xstrdup(PQgetvalue(res, row, c));
}

static inline int64_t col_i64(PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? 0 : strtoll(PQgetvalue(res, row, c), NULL, 10);
}

static inline bool col_bool(PGresult *res, int row, int c)
{
    const char *v = PQgetvalue(res, row, c);
    return v && v[0] == 't';
}

/* A NUL-terminated copy of h (NULL when empty and opt). */
static inline char *hdup(hstr_t h, bool opt)
{
    if (opt && h.n == 0) return NULL;
    char *s = xmalloc(h.n + 1);
    if (h.n) memcpy(s, h.p, h.n);
    s[h.n] = '\0';
    return s;
}

typedef struct num {
    char s[24];
} num_t;

static inline num_t num(int64_t v)
{
    num_t n;
    snprintf(n.s, sizeof(n.s), "%" PRId64, v);
    return n;
}

#endif
