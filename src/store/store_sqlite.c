/*
 * store_sqlite.c - the embedded store backend (SQLite).
 *
 * DESIGN
 * Two connections to one database file in WAL mode: a writer and a reader,
 * each behind its own mutex. The status sink writes batches of thousands of
 * rows in one transaction on the writer; WAL lets the reader keep serving
 * API and fan-out reads from the last committed snapshot meanwhile, so reads
 * never queue behind a big write. All writes (small API writes too) go
 * through the writer, which is also SQLite's rule: one writer at a time.
 *
 * Each connection keeps its prepared statements (prepared on first use,
 * finalized on close). A statement is reset before its connection's mutex
 * is released, so no read snapshot outlives a call.
 *
 * Table layout for the write path (DESIGN §9: append-ordered inserts are ~10x
 * cheaper than random-key ones): notifications and status_history are rowid
 * tables, so rows are appended. The random keys (notification_id, the
 * per-user listing key) live in the two secondary indexes the reads need;
 * status_history is indexed by the notification's rowid, which grows with
 * time, so its index is appended to as well. An in-memory database (":memory:")
 * has a single connection for both roles.
 *
 * Channels and statuses are stored as their enum numbers, which are already
 * a persisted contract (the binary record of model/notif.h carries them);
 * docs/internals/store.md lists them.
 *
 * Checkpoints run on their own thread and connection (PASSIVE, once a
 * commit leaves WAL_CHECKPOINT_PAGES in the WAL), not inside the writer's
 * commit: copying pages back into the database and fsyncing it
 * never holds up a write. Deleted content is zeroed only where that costs
 * no extra I/O (secure_delete = FAST; Debian builds SQLite with it fully on,
 * which halves the status sink's insert rate).
 *
 * The status sink's batches are long transactions on the writer. Short
 * writes (fan-out's event claims, API writes) announce themselves in
 * w.waiters; the batch writer then commits what it has, lets them in, and
 * goes on in a new transaction. Fan-out therefore waits for at most a
 * commit, never for a whole batch.
 *
 * Threads: any thread may call any function; calls serialise per connection.
 */
#include "core/log.h"
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LOG "store"
#define BUSY_TIMEOUT_MS 5000
/* Page caches. The writer's holds the dirty pages of a status batch and the
 * index pages it visits (32 MiB did as well as 64 in a 600k-row test; 16
 * halved the rate); the reader serves API reads and fan-out's cache misses. */
#define WRITER_CACHE_KIB 32768
#define READER_CACHE_KIB 8192
/* Memory-mapped reads, for the writer only. The reader ran fan-out's
 * lookups through a map that SQLite re-creates whenever the file grows -
 * which, with the status sink writing, is all the time: munmap and page
 * faults took a third of fan-out's time. It reads through its page cache. */
#define MMAP_BYTES (256LL << 20)
/* Checkpoint every 64 MiB of WAL rather than SQLite's 4 MiB: a 10k-row batch
 * dirties thousands of index pages, and pages dirtied by several batches are
 * then copied into the database once (measured ~1.4x on 1M rows). */
#define WAL_CHECKPOINT_PAGES 16384
/* The WAL is cut back to this when it restarts. Above the checkpoint size
 * plus a large batch, so that it is not truncated every cycle: truncating
 * drops the file's page cache, and the transaction that restarts the WAL
 * (often a small one, like an event claim) paid ~1 ms per restart for it. */
#define WAL_KEEP_BYTES (192LL << 20)
#define PURGE_CHUNK 5000
#define CKPT_INTERVAL_MS 200
#define DEDUPE_CKPT_PAGES 1000
#define CKPT_FORCE_FRAMES 65536  /* ~256 MB: wait for readers and restart the WAL */
#define YIELD_EVERY 32           /* batch rows between looks for waiting writers */

/* The schema stores status and channel codes; the final-state rule below
 * names sent (1), delivered (2) and dead (7). */
_Static_assert(ST_PENDING == 0 && ST_SENT == 1 && ST_DELIVERED == 2 && ST_DEAD == 7,
               "status codes are stored in the database");
_Static_assert(CH_PUSH == 0 && CH_WEBHOOK == 4, "channel codes are stored in the database");

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS users ("
    "  user_id TEXT PRIMARY KEY,"
    "  email TEXT, phone TEXT,"
    "  locale TEXT NOT NULL, timezone TEXT NOT NULL,"
    "  quiet_start TEXT, quiet_end TEXT, webhook_url TEXT,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS devices ("
    "  user_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  platform TEXT NOT NULL, token TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, seq)) WITHOUT ROWID;"
    /* category '' = the channel switch for all categories */
    "CREATE TABLE IF NOT EXISTS preferences ("
    "  user_id TEXT NOT NULL, category TEXT NOT NULL, channel INTEGER NOT NULL,"
    "  enabled INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, category, channel)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS subscriptions ("
    "  topic TEXT NOT NULL, user_id TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (topic, user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS follows ("
    "  actor TEXT NOT NULL, follower TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (actor, follower)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS templates ("
    "  event_type TEXT NOT NULL, channel INTEGER NOT NULL,"
    "  locale TEXT NOT NULL COLLATE NOCASE,"
    "  title TEXT NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (event_type, channel, locale)) WITHOUT ROWID;"
    /* rowid tables: rows are appended in arrival order, which the purge
     * relies on to find old rows first */
    "CREATE TABLE IF NOT EXISTS events ("
    "  event_id TEXT PRIMARY KEY, position TEXT NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS notifications ("
    "  notification_id TEXT PRIMARY KEY,"
    "  event_id TEXT NOT NULL, user_id TEXT NOT NULL, channel INTEGER NOT NULL,"
    "  category TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,"
    "  address TEXT NOT NULL, status INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    "  channel_msg_id TEXT,"
    "  idempotency_key TEXT GENERATED ALWAYS AS (notification_id) VIRTUAL,"
    "  metadata TEXT, error TEXT,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, delivered_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS notifications_user"
    "  ON notifications (user_id, created_at DESC, notification_id DESC);"
    /* notif_rowid = notifications.rowid: statuses arrive soon after their
     * notification was created, so this index grows at its end, where a
     * notification_id index would take random inserts */
    "CREATE TABLE IF NOT EXISTS status_history ("
    "  notif_rowid INTEGER NOT NULL, notification_id TEXT NOT NULL,"
    "  status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS status_history_notif ON status_history (notif_rowid);";

#define NOTIF_COLS                                                                         \
    "notification_id, event_id, user_id, channel, category, title, body, address, status, " \
    "attempt, channel_msg_id, error, created_at, updated_at, delivered_at"

/* Rank of a status for the final-state rule: a row in a final state (rank >
 * 0) only moves to a higher rank. dead < sent so that a dead-lettered
 * notification redriven successfully becomes sent. */
#define RANK_SQL(col) "(CASE " col " WHEN 7 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 3 ELSE 0 END)"

typedef enum stmt_id {
    S_BEGIN,
    S_BEGIN_IMMEDIATE,
    S_COMMIT,
    S_ROLLBACK,
    S_VERSION_GET,
    S_USER_PUT,
    S_USER_GET,
    S_DEV_DEL,
    S_DEV_ADD,
    S_DEV_GET,
    S_PREF_DEL,
    S_PREF_ADD,
    S_PREF_GET,
    S_USER_SCAN,
    S_DEV_SCAN,
    S_PREF_SCAN,
    S_SUB_ADD,
    S_SUB_DEL,
    S_SUB_PAGE,
    S_FOLLOW_ADD,
    S_FOLLOW_PAGE,
    S_TPL_PUT,
    S_TPL_GET,
    S_TPL_CHANNELS,
    S_EVENT_ADD,
    S_EVENT_GET,
    S_NOTIF_UPSERT,
    S_NOTIF_ROWID,
    S_HIST_ADD,
    S_NOTIF_GET,
    S_HIST_GET,
    S_NOTIF_LIST,
    S_NOTIF_LIST_AFTER,
    S_NOTIF_STATUS,
    S_PURGE_PICK,
    S_PURGE_HIST,
    S_PURGE_NOTIF,
    S_PURGE_EVENTS,
    S__COUNT
} stmt_id_t;

static const char *const stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_VERSION_GET] = "SELECT version FROM schema_version WHERE id = 1",
    [S_USER_PUT] =
        "INSERT INTO users (user_id, email, phone, locale, timezone, quiet_start, quiet_end,"
        " webhook_url, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, phone = excluded.phone,"
        " locale = excluded.locale, timezone = excluded.timezone,"
        " quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,"
        " webhook_url = excluded.webhook_url, updated_at = excluded.updated_at",
    [S_USER_GET] = "SELECT email, phone, locale, timezone, quiet_start, quiet_end, webhook_url,"
                   " updated_at FROM users WHERE user_id = ?1",
    [S_DEV_DEL] = "DELETE FROM devices WHERE user_id = ?1",
    [S_DEV_ADD] = "INSERT INTO devices (user_id, seq, platform, token) VALUES (?1, ?2, ?3, ?4)",
    [S_DEV_GET] = "SELECT platform, token FROM devices WHERE user_id = ?1 ORDER BY seq",
    [S_PREF_DEL] = "DELETE FROM preferences WHERE user_id = ?1",
    [S_PREF_ADD] = "INSERT OR REPLACE INTO preferences (user_id, category, channel, enabled)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [S_USER_SCAN] = "SELECT user_id, email, phone, locale, timezone, quiet_start, quiet_end,"
                    " webhook_url, updated_at FROM users WHERE user_id > ?1 ORDER BY user_id LIMIT ?2",
    [S_DEV_SCAN] = "SELECT user_id, platform, token FROM devices WHERE user_id > ?1 AND user_id <= ?2"
                   " ORDER BY user_id, seq",
    [S_PREF_SCAN] = "SELECT user_id, category, channel, enabled FROM preferences"
                    " WHERE user_id > ?1 AND user_id <= ?2 ORDER BY user_id, category, channel",
    [S_PREF_GET] = "SELECT category, channel, enabled FROM preferences WHERE user_id = ?1"
                   " ORDER BY category, channel",
    [S_SUB_ADD] = "INSERT INTO subscriptions (topic, user_id, created_at) VALUES (?1, ?2, ?3)"
                  " ON CONFLICT DO NOTHING",
    [S_SUB_DEL] = "DELETE FROM subscriptions WHERE topic = ?1 AND user_id = ?2",
    [S_SUB_PAGE] = "SELECT user_id FROM subscriptions WHERE topic = ?1 AND user_id > ?2"
                   " ORDER BY user_id LIMIT ?3",
    [S_FOLLOW_ADD] = "INSERT INTO follows (actor, follower, created_at) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT DO NOTHING",
    [S_FOLLOW_PAGE] = "SELECT follower FROM follows WHERE actor = ?1 AND follower > ?2"
                      " ORDER BY follower LIMIT ?3",
    [S_TPL_PUT] =
        "INSERT INTO templates (event_type, channel, locale, title, body, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_type, channel, locale) DO UPDATE"
        " SET locale = excluded.locale, title = excluded.title, body = excluded.body,"
        " updated_at = excluded.updated_at",
    /* locale has NOCASE collation: "pt-br" finds "pt-BR" */
    [S_TPL_GET] = "SELECT locale, title, body FROM templates"
                  " WHERE event_type = ?1 AND channel = ?2 AND locale IN (?3, ?4, 'en')"
                  " ORDER BY CASE WHEN locale = ?3 THEN 0 WHEN locale = ?4 THEN 1 ELSE 2 END"
                  " LIMIT 1",
    [S_TPL_CHANNELS] = "SELECT DISTINCT channel FROM templates WHERE event_type = ?1",
    [S_EVENT_ADD] = "INSERT INTO events (event_id, position, first_seen_ms) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT DO NOTHING",
    [S_EVENT_GET] = "SELECT position FROM events WHERE event_id = ?1",
    /* ?17 = rank of the incoming status (see RANK_SQL). Unqualified
     * columns in DO UPDATE are the existing row. */
    [S_NOTIF_UPSERT] =
        "INSERT INTO notifications (notification_id, event_id, user_id, channel, category,"
        " title, body, address, status, attempt, channel_msg_id, metadata, error, created_at,"
        " updated_at, delivered_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        " ON CONFLICT (notification_id) DO UPDATE SET status = excluded.status,"
        " attempt = excluded.attempt,"
        " channel_msg_id = COALESCE(excluded.channel_msg_id, channel_msg_id),"
        " metadata = COALESCE(excluded.metadata, metadata), error = excluded.error,"
        " updated_at = excluded.updated_at,"
        " delivered_at = CASE WHEN excluded.status = 2"
        "   THEN COALESCE(excluded.delivered_at, delivered_at)"
        "   ELSE COALESCE(delivered_at, excluded.delivered_at) END"
        " WHERE " RANK_SQL("status") " = 0 OR ?17 > " RANK_SQL("status"),
    [S_NOTIF_ROWID] = "SELECT rowid FROM notifications WHERE notification_id = ?1",
    [S_HIST_ADD] = "INSERT INTO status_history (notif_rowid, notification_id, status, attempt,"
                   " at_ms, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_NOTIF_GET] = "SELECT " NOTIF_COLS ", rowid FROM notifications WHERE notification_id = ?1",
    [S_HIST_GET] = "SELECT status, attempt, at_ms, detail FROM status_history"
                   " WHERE notif_rowid = ?1 ORDER BY rowid",
    [S_NOTIF_LIST] = "SELECT " NOTIF_COLS " FROM notifications WHERE user_id = ?1"
                     " ORDER BY created_at DESC, notification_id DESC LIMIT ?2",
    [S_NOTIF_LIST_AFTER] =
        "SELECT " NOTIF_COLS " FROM notifications WHERE user_id = ?1"
        " AND (created_at < ?3 OR (created_at = ?3 AND notification_id < ?4))"
        " ORDER BY created_at DESC, notification_id DESC LIMIT ?2",
    [S_NOTIF_STATUS] = "SELECT status FROM notifications WHERE notification_id = ?1",
    /* NOT INDEXED: walk the table in rowid (arrival) order, oldest first */
    [S_PURGE_PICK] = "SELECT rowid FROM notifications NOT INDEXED"
                     " WHERE rowid > ?1 AND created_at < ?2 ORDER BY rowid LIMIT ?3",
    [S_PURGE_HIST] = "DELETE FROM status_history WHERE notif_rowid = ?1",
    [S_PURGE_NOTIF] = "DELETE FROM notifications WHERE rowid = ?1",
    [S_PURGE_EVENTS] = "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events NOT INDEXED"
                       " WHERE first_seen_ms < ?1 ORDER BY rowid LIMIT ?2)",
};

/* One SQLite connection with its statement cache. Invariant: every cached
 * statement is reset whenever mu is not held. */
typedef struct conn {
    sqlite3 *db;
    pthread_mutex_t mu;
    _Atomic int waiters;        /* short writes waiting for mu (writer only) */
    sqlite3_stmt *st[S__COUNT];
} conn_t;

typedef enum conn_role { ROLE_WRITER, ROLE_READER, ROLE_CHECKPOINT, ROLE_DEDUPE } conn_role_t;

typedef struct sq_store {
    store_t base;               /* first: store_t* <-> sq_store_t* */
    conn_t w;                   /* writer: every write, the schema */
    conn_t r;                   /* reader (unused for in-memory databases) */
    conn_t *rd;                 /* &r, or &w when the database is in memory */
    conn_t ev;                  /* the dedupe database (events), its own file and writer */
    conn_t ck;                  /* checkpointer (file databases) */
    conn_t ev_ck;               /* checkpointer's connection to the dedupe database */
    pthread_t ck_thread;
    bool ck_started;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    bool ck_stop;
    _Atomic int wal_frames;     /* frames in the WAL after the last commit */
    _Atomic int ev_frames;      /* the same for the dedupe database */
} sq_store_t;

static sq_store_t *sq(store_t *s) { return (sq_store_t *)s; }

/* ---- connection helpers ---- */

/* Locks the writer for a short write, asking a running batch to let it in
 * (see the DESIGN note above). */
static void writer_lock(conn_t *c)
{
    atomic_fetch_add(&c->waiters, 1);
    pthread_mutex_lock(&c->mu);
    atomic_fetch_sub(&c->waiters, 1);
}

static hr_t sq_err(conn_t *c, int rc, const char *what)
{
    int prim = rc & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
        log_warn(LOG, "%s: database busy: %s", what, sqlite3_errmsg(c->db));
        return HR_AGAIN;
    }
    log_error(LOG, "%s: %s (%d)", what, sqlite3_errmsg(c->db), rc);
    return prim == SQLITE_CONSTRAINT ? HR_CONFLICT : HR_ERR;
}

/* The connection's cached statement; prepared on first use. NULL (logged)
 * if preparing fails. Caller holds c->mu and resets it before unlocking. */
static sqlite3_stmt *stmt(conn_t *c, stmt_id_t id)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->st[id], NULL);
        if (rc != SQLITE_OK) {
            log_error(LOG, "prepare %d: %s", (int)id, sqlite3_errmsg(c->db));
            c->st[id] = NULL;
            return NULL;
        }
    }
    return c->st[id];
}

/* Steps a statement that returns no rows, then resets it. */
static hr_t step_done(conn_t *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, what);
}

static hr_t run(conn_t *c, stmt_id_t id, const char *what)
{
    sqlite3_stmt *st = stmt(c, id);
    return st ? step_done(c, st, what) : HR_ERR;
}

static hr_t tx_begin(conn_t *c, bool write)
{
    return run(c, write ? S_BEGIN_IMMEDIATE : S_BEGIN, "begin");
}

static hr_t tx_commit(conn_t *c) { return run(c, S_COMMIT, "commit"); }

static void tx_rollback(conn_t *c)
{
    if (!sqlite3_get_autocommit(c->db)) run(c, S_ROLLBACK, "rollback");
}

/* Ends a transaction begun with tx_begin: commits if r is HR_OK, otherwise
 * rolls back. Returns the outcome. */
static hr_t tx_end(conn_t *c, hr_t r)
{
    if (r == HR_OK) r = tx_commit(c);
    if (r != HR_OK) tx_rollback(c);
    return r;
}

/* NULL binds SQL NULL. */
static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* hstr_t is not NUL-terminated: always bind with its length. */
static void bind_hstr(sqlite3_stmt *st, int i, hstr_t h)
{
    sqlite3_bind_text(st, i, h.p ? h.p : "", (int)h.n, SQLITE_STATIC);
}

/* Empty binds SQL NULL. */
static void bind_hstr_opt(sqlite3_stmt *st, int i, hstr_t h)
{
    if (h.n)
        sqlite3_bind_text(st, i, h.p, (int)h.n, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* A copy of a text column; NULL for SQL NULL. */
static char *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return NULL;
    return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

static bool nonempty(const char *s) { return s && s[0]; }

/* c->mu is initialised by the caller. */
static hr_t conn_open(conn_t *c, const char *path, conn_role_t role)
{
    bool writer = role == ROLE_WRITER;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (writer || role == ROLE_DEDUPE ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        log_error(LOG, "open %s: %s", path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return HR_ERR;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    char pragmas[320], extra[160];
    if (writer)
        snprintf(extra, sizeof(extra),
                 " PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %lld;",
                 WAL_CHECKPOINT_PAGES, WAL_KEEP_BYTES);
    else if (role == ROLE_READER)
        snprintf(extra, sizeof(extra), " PRAGMA query_only = 1;");
    else
        extra[0] = '\0';
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA secure_delete = FAST;"
             " PRAGMA cache_size = -%d; PRAGMA mmap_size = %lld;%s",
             writer ? WRITER_CACHE_KIB : role == ROLE_READER ? READER_CACHE_KIB : 2048,
             writer ? MMAP_BYTES : 0LL, extra);
    char *msg = NULL;
    if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "configure %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        return HR_ERR;
    }
    return HR_OK;
}

/* Closes a connection that failed to open completely, keeping c->mu. */
static void conn_close_db(conn_t *c)
{
    if (c->db) sqlite3_close(c->db);
    c->db = NULL;
}

static void conn_close(conn_t *c)
{
    for (int i = 0; i < S__COUNT; i++) sqlite3_finalize(c->st[i]);
    if (c->db) {
        int rc = sqlite3_close(c->db);
        if (rc != SQLITE_OK) log_error(LOG, "close: %s", sqlite3_errstr(rc));
    }
    pthread_mutex_destroy(&c->mu);
}

static hr_t set_wal(conn_t *c, const char *path)
{
    sqlite3_stmt *st = NULL;
    hr_t r = HR_ERR;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) goto out;
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (mode && strcmp(mode, "wal") == 0) r = HR_OK;
    else log_error(LOG, "%s: cannot enable WAL (journal mode %s)", path, mode ? mode : "?");
out:
    if (r != HR_OK && !st) log_error(LOG, "%s: journal_mode: %s", path, sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return r;
}

/* Creates the schema or checks the stored version. Caller holds w->mu. */
static hr_t schema_init(conn_t *c)
{
    hr_t r = tx_begin(c, true);
    if (r != HR_OK) return r;
    char *msg = NULL;
    if (sqlite3_exec(c->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        r = HR_ERR;
        goto out;
    }
    sqlite3_stmt *st = stmt(c, S_VERSION_GET);
    if (!st) {
        r = HR_ERR;
        goto out;
    }
    int rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r = sq_err(c, rc, "schema version");
        goto out;
    }
    if (version == 0) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (id, version) VALUES (1, %d)",
                 STORE_SCHEMA_VERSION);
        if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            r = sq_err(c, sqlite3_errcode(c->db), "schema version");
            goto out;
        }
    } else if (version > STORE_SCHEMA_VERSION) {
        log_error(LOG, "database schema version %d is newer than this herald's (%d)", version,
                  STORE_SCHEMA_VERSION);
        r = HR_INVALID;
        goto out;
    }
    /* version < STORE_SCHEMA_VERSION: migrations go here once there are any. */
out:
    return tx_end(c, r);
}

/* ---- open / close ---- */

/* After each commit on the writer: the WAL now holds nframes frames. Wakes
 * the checkpointer once enough have gathered. Runs under w.mu. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int nframes)
{
    sq_store_t *q = arg;
    atomic_store(&q->wal_frames, nframes);
    if (nframes >= WAL_CHECKPOINT_PAGES) {
        pthread_mutex_lock(&q->ck_mu);
        pthread_cond_signal(&q->ck_cv);
        pthread_mutex_unlock(&q->ck_mu);
    }
    return SQLITE_OK;
}

/* The same for the dedupe database, whose WAL is kept small. */
static int ev_wal_hook(void *arg, sqlite3 *db, const char *name, int nframes)
{
    sq_store_t *q = arg;
    atomic_store(&q->ev_frames, nframes);
    return SQLITE_OK;
}

/* One PASSIVE checkpoint (RESTART when the WAL has grown past
 * CKPT_FORCE_FRAMES because readers kept the last ones from finishing). */
static void checkpoint(conn_t *c)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && log >= CKPT_FORCE_FRAMES && done < log)
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) log_warn(LOG, "checkpoint: %s", sqlite3_errmsg(c->db));
}

/* The checkpointer thread: copies committed WAL frames back into the
 * databases (PASSIVE: never blocks the writers or readers), off the
 * writers' paths - the main database once WAL_CHECKPOINT_PAGES have
 * gathered, the dedupe database every CKPT_INTERVAL_MS it has
 * DEDUPE_CKPT_PAGES. */
static void *checkpointer_main(void *arg)
{
    sq_store_t *q = arg;
    /* background work: when CPU is short, whoever waits for an answer goes first */
    pthread_setname_np(pthread_self(), "store-ckpt");
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        log_debug(LOG, "checkpointer: cannot lower its priority: %s", strerror(errno));
    pthread_mutex_lock(&q->ck_mu);
    while (!q->ck_stop) {
        bool main_due = atomic_load(&q->wal_frames) >= WAL_CHECKPOINT_PAGES;
        bool ev_due = q->ev_ck.db && atomic_load(&q->ev_frames) >= DEDUPE_CKPT_PAGES;
        if (!main_due && !ev_due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)CKPT_INTERVAL_MS * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q->ck_cv, &q->ck_mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&q->ck_mu);
        if (main_due) {
            checkpoint(&q->ck);
            atomic_store(&q->wal_frames, 0); /* the next commit reports the WAL's size again */
        }
        if (ev_due) {
            checkpoint(&q->ev_ck);
            atomic_store(&q->ev_frames, 0);
        }
        pthread_mutex_lock(&q->ck_mu);
    }
    pthread_mutex_unlock(&q->ck_mu);
    return NULL;
}

static void sq_close(store_t *s)
{
    sq_store_t *q = sq(s);
    if (q->ck_started) {
        pthread_mutex_lock(&q->ck_mu);
        q->ck_stop = true;
        pthread_cond_signal(&q->ck_cv);
        pthread_mutex_unlock(&q->ck_mu);
        pthread_join(q->ck_thread, NULL);
    }
    conn_close(&q->ck);
    conn_close(&q->ev_ck);
    conn_close(&q->ev);
    if (q->w.db) sqlite3_exec(q->w.db, "PRAGMA optimize", NULL, NULL, NULL);
    conn_close(&q->r);
    conn_close(&q->w);
    pthread_mutex_destroy(&q->ck_mu);
    pthread_cond_destroy(&q->ck_cv);
    free(q);
}

/* The dedupe table lives in a database of its own ("herald.db" ->
 * "herald.events.db"): fan-out claims every event there, and a separate
 * file means a separate write lock, so claims never queue behind the
 * status sink's long transactions on the main database. */
static char *dedupe_path(const char *dsn, bool memory)
{
    if (memory) return xstrdup(":memory:");
    size_t n = strlen(dsn);
    if (n > 3 && strcmp(dsn + n - 3, ".db") == 0) return xasprintf("%.*s.events.db", (int)(n - 3), dsn);
    return xasprintf("%s.events", dsn);
}

static const char dedupe_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events ("
    "  event_id TEXT PRIMARY KEY, position TEXT NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL);";

/* Creates the dedupe table and moves any rows a store from before the split
 * kept in the main database's events table. */
static hr_t dedupe_init(sq_store_t *q, const char *dsn, const char *path, bool memory)
{
    conn_t *c = &q->ev;
    hr_t r = conn_open(c, path, ROLE_DEDUPE);
    if (r == HR_OK && !memory) r = set_wal(c, path);
    if (r != HR_OK) return r;
    char *msg = NULL;
    if (sqlite3_exec(c->db, dedupe_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "%s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        return HR_ERR;
    }
    if (memory) return HR_OK;
    sqlite3_stmt *st = NULL;
    bool old_rows = false;
    if (sqlite3_prepare_v2(q->w.db, "SELECT 1 FROM events LIMIT 1", -1, &st, NULL) == SQLITE_OK)
        old_rows = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!old_rows) return HR_OK;
    char *sql = sqlite3_mprintf("ATTACH %Q AS old; BEGIN;"
                                " INSERT OR IGNORE INTO main.events SELECT event_id, position, first_seen_ms"
                                " FROM old.events; DELETE FROM old.events; COMMIT; DETACH old;",
                                dsn);
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        log_error(LOG, "moving the dedupe table to %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_exec(c->db, "ROLLBACK; DETACH old;", NULL, NULL, NULL);
        return HR_ERR;
    }
    log_info(LOG, "moved the dedupe table to %s", path);
    return HR_OK;
}

static hr_t sq_open(const char *dsn, store_t **out)
{
    sq_store_t *q = xcalloc(1, sizeof(*q));
    q->base.ops = &store_sqlite_ops;
    pthread_mutex_init(&q->w.mu, NULL);
    pthread_mutex_init(&q->r.mu, NULL);
    pthread_mutex_init(&q->ck.mu, NULL);
    pthread_mutex_init(&q->ev.mu, NULL);
    pthread_mutex_init(&q->ev_ck.mu, NULL);
    pthread_mutex_init(&q->ck_mu, NULL);
    pthread_cond_init(&q->ck_cv, NULL);
    bool memory = dsn[0] == '\0' || strcmp(dsn, ":memory:") == 0;
    q->rd = memory ? &q->w : &q->r;
    hr_t r = conn_open(&q->w, dsn, ROLE_WRITER);
    if (r != HR_OK) goto out;
    if (!memory && (r = set_wal(&q->w, dsn)) != HR_OK) goto out;
    if ((r = schema_init(&q->w)) != HR_OK) goto out;
    if (!memory && (r = conn_open(&q->r, dsn, ROLE_READER)) != HR_OK) goto out;
    char *evp = dedupe_path(dsn, memory);
    r = dedupe_init(q, dsn, evp, memory);
    if (r == HR_OK && !memory && conn_open(&q->ck, dsn, ROLE_CHECKPOINT) == HR_OK) {
        if (conn_open(&q->ev_ck, evp, ROLE_CHECKPOINT) != HR_OK) conn_close_db(&q->ev_ck);
        if (pthread_create(&q->ck_thread, NULL, checkpointer_main, q) == 0) {
            q->ck_started = true;
            /* the hooks replace the writers' own autocheckpoints */
            sqlite3_wal_hook(q->w.db, wal_hook, q);
            if (q->ev_ck.db) sqlite3_wal_hook(q->ev.db, ev_wal_hook, q);
        }
    } /* otherwise the writers checkpoint in their commits */
    free(evp);
    if (r != HR_OK) goto out;
    *out = &q->base;
out:
    if (r != HR_OK) sq_close(&q->base);
    return r;
}

static int sq_schema_version(store_t *s)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    int v = -1;
    sqlite3_stmt *st = stmt(c, S_VERSION_GET);
    if (st) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        else sq_err(c, rc, "schema version");
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* ---- users ---- */

static hr_t sq_user_put_batch(store_t *s, const user_t *users, int n);

static bool user_valid(const user_t *u)
{
    if (!u || !nonempty(u->user_id) || u->ndevices < 0 || u->ndevices > STORE_MAX_DEVICES)
        return false;
    for (int i = 0; i < u->ndevices; i++)
        if (!nonempty(u->devices[i].platform) || !nonempty(u->devices[i].token)) return false;
    return true;
}

/* Writes one user and its devices inside the caller's transaction. */
static hr_t user_write(conn_t *c, const user_t *u)
{
    hr_t r;
    sqlite3_stmt *st = stmt(c, S_USER_PUT);
    if (!st) return HR_ERR;
    bind_str(st, 1, u->user_id);
    bind_str(st, 2, u->email);
    bind_str(st, 3, u->phone);
    bind_str(st, 4, nonempty(u->locale) ? u->locale : "en");
    bind_str(st, 5, nonempty(u->timezone) ? u->timezone : "UTC");
    bind_str(st, 6, u->quiet_start);
    bind_str(st, 7, u->quiet_end);
    bind_str(st, 8, u->webhook_url);
    sqlite3_bind_int64(st, 9, u->updated_at_ms ? u->updated_at_ms : hclock_now_ms());
    if ((r = step_done(c, st, "user put")) != HR_OK) return r;

    if (!(st = stmt(c, S_DEV_DEL))) return HR_ERR;
    bind_str(st, 1, u->user_id);
    if ((r = step_done(c, st, "devices delete")) != HR_OK) return r;
    if (!(st = stmt(c, S_DEV_ADD))) return HR_ERR;
    for (int i = 0; i < u->ndevices; i++) {
        bind_str(st, 1, u->user_id);
        sqlite3_bind_int(st, 2, i);
        bind_str(st, 3, u->devices[i].platform);
        bind_str(st, 4, u->devices[i].token);
        if ((r = step_done(c, st, "device add")) != HR_OK) return r;
    }
    return HR_OK;
}

static hr_t sq_user_put(store_t *s, const user_t *u)
{
    return u ? sq_user_put_batch(s, u, 1) : HR_INVALID;
}

static hr_t sq_user_put_batch(store_t *s, const user_t *users, int n)
{
    for (int i = 0; i < n; i++)
        if (!user_valid(&users[i])) return HR_INVALID;
    conn_t *c = &sq(s)->w;
    writer_lock(c);
    hr_t r = tx_begin(c, true);
    for (int i = 0; i < n && r == HR_OK; i++) r = user_write(c, &users[i]);
    if (r == HR_OK || sqlite3_get_autocommit(c->db) == 0) r = tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Reads one user and its devices; c->mu held, inside a read transaction.
 * HR_NOTFOUND when absent. out is zeroed first and filled only on HR_OK. */
static hr_t user_read(conn_t *c, const char *user_id, user_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = stmt(c, S_USER_GET);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->user_id = xstrdup(user_id);
        out->email = col_str(st, 0);
        out->phone = col_str(st, 1);
        out->locale = col_str(st, 2);
        out->timezone = col_str(st, 3);
        out->quiet_start = col_str(st, 4);
        out->quiet_end = col_str(st, 5);
        out->webhook_url = col_str(st, 6);
        out->updated_at_ms = sqlite3_column_int64(st, 7);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "user get");
    hr_t r = HR_OK;
    if (!(st = stmt(c, S_DEV_GET))) {
        r = HR_ERR;
        goto out;
    }
    bind_str(st, 1, user_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->ndevices < STORE_MAX_DEVICES) {
        device_t *d = &out->devices[out->ndevices++];
        d->platform = col_str(st, 0);
        d->token = col_str(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "devices get");
out:
    if (r != HR_OK) user_clear(out);
    return r;
}

/* Reads a user's preferences; c->mu held. */
static hr_t prefs_read(conn_t *c, const char *user_id, pref_t **out, int *n)
{
    hr_t r = HR_OK;
    pref_t *p = NULL;
    int np = 0, cap = 0;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = stmt(c, S_PREF_GET);
    if (!st) return HR_ERR;
    bind_str(st, 1, user_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (np == cap) {
            cap = cap ? cap * 2 : 8;
            p = xrealloc(p, (size_t)cap * sizeof(*p));
        }
        p[np].category = col_str(st, 0);
        if (!p[np].category) p[np].category = xstrdup("");
        p[np].channel = (channel_t)sqlite3_column_int(st, 1);
        p[np].enabled = sqlite3_column_int(st, 2) != 0;
        np++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) r = sq_err(c, rc, "preferences get");
    if (r != HR_OK) {
        prefs_free(p, np);
        return r;
    }
    *out = p;
    *n = np;
    return HR_OK;
}

static hr_t sq_user_get(store_t *s, const char *user_id, user_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!nonempty(user_id)) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = tx_begin(c, false); /* one snapshot for user and devices */
    if (r == HR_OK) {
        r = user_read(c, user_id, out);
        hr_t e = tx_end(c, r == HR_NOTFOUND ? HR_OK : r);
        if (r == HR_OK && e != HR_OK) {
            user_clear(out);
            r = e;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Fan-out's lookups for a batch: one read snapshot, statements reused,
 * one lock acquisition instead of two transactions per recipient. */
static hr_t sq_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                               pref_t **prefs, int *nprefs)
{
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        prefs[i] = NULL;
        nprefs[i] = 0;
        found[i] = HR_NOTFOUND;
    }
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = tx_begin(c, false);
    int i = 0;
    for (; i < n && r == HR_OK; i++) {
        if (!nonempty(ids[i])) continue;
        found[i] = user_read(c, ids[i], &out[i]);
        if (found[i] == HR_NOTFOUND) continue;
        r = found[i];
        if (r == HR_OK && (r = prefs_read(c, ids[i], &prefs[i], &nprefs[i])) != HR_OK) {
            user_clear(&out[i]);
            found[i] = r;
        }
    }
    if (sqlite3_get_autocommit(c->db) == 0) {
        hr_t e = tx_end(c, r);
        if (r == HR_OK) r = e;
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK)
        for (int k = 0; k < n; k++) {
            if (found[k] == HR_OK) {
                user_clear(&out[k]);
                prefs_free(prefs[k], nprefs[k]);
                prefs[k] = NULL;
                nprefs[k] = 0;
            }
            found[k] = HR_NOTFOUND;
        }
    return r;
}

/* Users in key order with their devices and preferences: three range
 * scans merged, in one snapshot (fan-out fills its cache with it). */
static hr_t sq_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                          int *nprefs, int *n)
{
    *n = 0;
    if (limit <= 0) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    int k = 0;
    pthread_mutex_lock(&c->mu);
    hr_t r = tx_begin(c, false);
    sqlite3_stmt *us = r == HR_OK ? stmt(c, S_USER_SCAN) : NULL;
    sqlite3_stmt *ds = us ? stmt(c, S_DEV_SCAN) : NULL;
    sqlite3_stmt *ps = ds ? stmt(c, S_PREF_SCAN) : NULL;
    if (r == HR_OK && !ps) r = HR_ERR;
    int rc = SQLITE_DONE;
    if (r == HR_OK) {
        bind_str(us, 1, after ? after : "");
        sqlite3_bind_int(us, 2, limit);
        while ((rc = sqlite3_step(us)) == SQLITE_ROW) {
            user_t *u = &out[k];
            memset(u, 0, sizeof(*u));
            prefs[k] = NULL;
            nprefs[k] = 0;
            u->user_id = col_str(us, 0);
            u->email = col_str(us, 1);
            u->phone = col_str(us, 2);
            u->locale = col_str(us, 3);
            u->timezone = col_str(us, 4);
            u->quiet_start = col_str(us, 5);
            u->quiet_end = col_str(us, 6);
            u->webhook_url = col_str(us, 7);
            u->updated_at_ms = sqlite3_column_int64(us, 8);
            k++;
        }
        sqlite3_reset(us);
        if (rc != SQLITE_DONE) r = sq_err(c, rc, "users scan");
    }
    if (r == HR_OK && k > 0) {
        /* devices and preferences of the same key range, merged by user_id */
        const char *lo = after ? after : "", *hi = out[k - 1].user_id;
        bind_str(ds, 1, lo);
        bind_str(ds, 2, hi);
        int j = 0;
        while ((rc = sqlite3_step(ds)) == SQLITE_ROW) {
            const char *uid = (const char *)sqlite3_column_text(ds, 0);
            while (j < k && strcmp(out[j].user_id, uid) < 0) j++;
            if (j == k) break;
            user_t *u = &out[j];
            if (strcmp(u->user_id, uid) != 0 || u->ndevices == STORE_MAX_DEVICES) continue;
            u->devices[u->ndevices].platform = col_str(ds, 1);
            u->devices[u->ndevices].token = col_str(ds, 2);
            u->ndevices++;
        }
        sqlite3_reset(ds);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) r = sq_err(c, rc, "devices scan");
        bind_str(ps, 1, lo);
        bind_str(ps, 2, hi);
        int cap = 0;
        j = 0;
        while (r == HR_OK && (rc = sqlite3_step(ps)) == SQLITE_ROW) {
            const char *uid = (const char *)sqlite3_column_text(ps, 0);
            while (j < k && strcmp(out[j].user_id, uid) < 0) {
                j++;
                cap = 0;
            }
            if (j == k) break;
            if (strcmp(out[j].user_id, uid) != 0) continue;
            if (nprefs[j] == cap) {
                cap = cap ? cap * 2 : 4;
                prefs[j] = xrealloc(prefs[j], (size_t)cap * sizeof(*prefs[j]));
            }
            pref_t *p = &prefs[j][nprefs[j]++];
            p->category = col_str(ps, 1);
            if (!p->category) p->category = xstrdup("");
            p->channel = (channel_t)sqlite3_column_int(ps, 2);
            p->enabled = sqlite3_column_int(ps, 3) != 0;
        }
        sqlite3_reset(ps);
        if (r == HR_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) r = sq_err(c, rc, "preferences scan");
    }
    if (sqlite3_get_autocommit(c->db) == 0) {
        hr_t e = tx_end(c, r);
        if (r == HR_OK) r = e;
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        for (int i = 0; i < k; i++) {
            user_clear(&out[i]);
            prefs_free(prefs[i], nprefs[i]);
        }
        return r;
    }
    *n = k;
    return HR_OK;
}

/* ---- preferences ---- */

static hr_t sq_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n)
{
    if (!nonempty(user_id) || n < 0 || (n > 0 && !prefs)) return HR_INVALID;
    for (int i = 0; i < n; i++)
        if ((unsigned)prefs[i].channel >= CH__COUNT) return HR_INVALID;
    conn_t *c = &sq(s)->w;
    writer_lock(c);
    hr_t r = tx_begin(c, true);
    if (r != HR_OK) goto out;
    sqlite3_stmt *st = stmt(c, S_PREF_DEL);
    if (!st) {
        r = HR_ERR;
        goto end;
    }
    bind_str(st, 1, user_id);
    if ((r = step_done(c, st, "preferences delete")) != HR_OK) goto end;
    if (!(st = stmt(c, S_PREF_ADD))) {
        r = HR_ERR;
        goto end;
    }
    for (int i = 0; i < n; i++) {
        bind_str(st, 1, user_id);
        bind_str(st, 2, prefs[i].category ? prefs[i].category : "");
        sqlite3_bind_int(st, 3, (int)prefs[i].channel);
        sqlite3_bind_int(st, 4, prefs[i].enabled ? 1 : 0);
        if ((r = step_done(c, st, "preference add")) != HR_OK) goto end;
    }
end:
    r = tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    return r;
}

static hr_t sq_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!nonempty(user_id)) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = prefs_read(c, user_id, out, n);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- subscriptions and follows ---- */

/* A write of (key, member) into a set table; duplicates are ignored. */
static hr_t set_add(store_t *s, stmt_id_t id, const char *key, const char *member,
                    const char *what)
{
    if (!nonempty(key) || !nonempty(member)) return HR_INVALID;
    conn_t *c = &sq(s)->w;
    writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, id);
    if (st) {
        bind_str(st, 1, key);
        bind_str(st, 2, member);
        sqlite3_bind_int64(st, 3, hclock_now_ms());
        r = step_done(c, st, what);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Members of key strictly after `after`, in order, at most limit. */
static hr_t set_page(store_t *s, stmt_id_t id, const char *key, const char *after, int limit,
                     char ***ids, int *n, const char *what)
{
    *ids = NULL;
    *n = 0;
    if (!nonempty(key) || limit <= 0) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_OK;
    char **v = NULL;
    int nv = 0, cap = 0;
    sqlite3_stmt *st = stmt(c, id);
    if (!st) {
        r = HR_ERR;
        goto out;
    }
    bind_str(st, 1, key);
    bind_str(st, 2, after ? after : ""); /* members are never empty */
    sqlite3_bind_int(st, 3, limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nv == cap) {
            cap = cap ? cap * 2 : (limit < 64 ? limit : 64);
            v = xrealloc(v, (size_t)cap * sizeof(*v));
        }
        v[nv++] = col_str(st, 0);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) r = sq_err(c, rc, what);
out:
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        ids_free(v, nv);
        return r;
    }
    *ids = v;
    *n = nv;
    return HR_OK;
}

static hr_t sq_sub_add(store_t *s, const char *topic, const char *user_id)
{
    return set_add(s, S_SUB_ADD, topic, user_id, "subscription add");
}

static hr_t sq_sub_del(store_t *s, const char *topic, const char *user_id)
{
    if (!nonempty(topic) || !nonempty(user_id)) return HR_INVALID;
    conn_t *c = &sq(s)->w;
    writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, S_SUB_DEL);
    if (st) {
        bind_str(st, 1, topic);
        bind_str(st, 2, user_id);
        r = step_done(c, st, "subscription delete");
        if (r == HR_OK && sqlite3_changes(c->db) == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static hr_t sq_subs_page(store_t *s, const char *topic, const char *after, int limit,
                         char ***ids, int *n)
{
    return set_page(s, S_SUB_PAGE, topic, after, limit, ids, n, "subscriptions page");
}

static hr_t sq_follow_add(store_t *s, const char *follower, const char *actor)
{
    return set_add(s, S_FOLLOW_ADD, actor, follower, "follow add");
}

static hr_t sq_followers_page(store_t *s, const char *actor, const char *after, int limit,
                              char ***ids, int *n)
{
    return set_page(s, S_FOLLOW_PAGE, actor, after, limit, ids, n, "followers page");
}

/* ---- templates ---- */

static hr_t sq_template_put(store_t *s, const template_rec_t *t)
{
    if (!t || !nonempty(t->event_type) || (unsigned)t->channel >= CH__COUNT) return HR_INVALID;
    conn_t *c = &sq(s)->w;
    writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, S_TPL_PUT);
    if (st) {
        bind_str(st, 1, t->event_type);
        sqlite3_bind_int(st, 2, (int)t->channel);
        bind_str(st, 3, nonempty(t->locale) ? t->locale : "en");
        bind_str(st, 4, t->title ? t->title : "");
        bind_str(st, 5, t->body ? t->body : "");
        sqlite3_bind_int64(st, 6, hclock_now_ms());
        r = step_done(c, st, "template put");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static hr_t sq_template_get(store_t *s, const char *event_type, channel_t ch, const char *locale,
                            template_rec_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!nonempty(event_type) || (unsigned)ch >= CH__COUNT) return HR_INVALID;
    if (!nonempty(locale)) locale = "en";
    /* language part: "pt-BR" -> "pt" */
    char lang[32];
    size_t ll = strcspn(locale, "-_");
    if (ll >= sizeof(lang)) ll = 0;
    memcpy(lang, locale, ll);
    lang[ll] = '\0';
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, S_TPL_GET);
    if (st) {
        bind_str(st, 1, event_type);
        sqlite3_bind_int(st, 2, (int)ch);
        bind_str(st, 3, locale);
        bind_str(st, 4, ll ? lang : locale);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->event_type = xstrdup(event_type);
            out->channel = ch;
            out->locale = col_str(st, 0);
            out->title = col_str(st, 1);
            out->body = col_str(st, 2);
            r = HR_OK;
        } else {
            r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "template get");
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static hr_t sq_template_channels(store_t *s, const char *event_type, unsigned *mask)
{
    *mask = 0;
    if (!nonempty(event_type)) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, S_TPL_CHANNELS);
    if (st) {
        bind_str(st, 1, event_type);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int ch = sqlite3_column_int(st, 0);
            if (ch >= 0 && ch < CH__COUNT) *mask |= 1u << ch;
        }
        sqlite3_reset(st);
        r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "template channels");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- event dedupe ---- */

/* One claim on the writer (c->mu held, inside or outside a transaction). */
static hr_t claim_one(conn_t *c, const char *event_id, const char *position, int64_t now,
                      claim_t *out)
{
    sqlite3_stmt *st = stmt(c, S_EVENT_ADD);
    if (!st) return HR_ERR;
    bind_str(st, 1, event_id);
    bind_str(st, 2, position);
    sqlite3_bind_int64(st, 3, now);
    hr_t r = step_done(c, st, "event claim");
    if (r != HR_OK) return r;
    if (sqlite3_changes(c->db) == 1) {
        *out = CLAIM_NEW;
        return HR_OK;
    }
    if (!(st = stmt(c, S_EVENT_GET))) return HR_ERR;
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

static hr_t sq_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    if (!nonempty(event_id)) return HR_INVALID;
    if (!position) position = "";
    conn_t *c = &sq(s)->ev;
    pthread_mutex_lock(&c->mu);
    hr_t r = claim_one(c, event_id, position, hclock_now_ms(), out);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* One write transaction for the whole batch: fan-out claims every event of
 * a polled batch at once instead of committing once per event. */
static hr_t sq_event_claim_batch(store_t *s, const char *const *ids, const char *const *positions,
                                 int n, claim_t *out)
{
    for (int i = 0; i < n; i++)
        if (!nonempty(ids[i])) return HR_INVALID;
    conn_t *c = &sq(s)->ev;
    int64_t now = hclock_now_ms();
    pthread_mutex_lock(&c->mu);
    hr_t r = tx_begin(c, true);
    if (r == HR_OK) {
        for (int i = 0; i < n && r == HR_OK; i++)
            r = claim_one(c, ids[i], positions[i] ? positions[i] : "", now, &out[i]);
        r = tx_end(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* ---- notifications ---- */

static int status_rank(notif_status_t st)
{
    switch (st) {
    case ST_DEAD: return 1;
    case ST_SENT: return 2;
    case ST_DELIVERED: return 3;
    default: return 0;
    }
}

/* Longest string bound from a record: far above any real field, and below
 * SQLite's limit so that binding cannot fail. */
#define NOTIF_STR_MAX (64u << 20)

static bool notif_valid(const notif_t *m)
{
#define STR_OK(f) &&m->f.n <= NOTIF_STR_MAX && (m->f.p || m->f.n == 0)
    return m && m->notification_id.n > 0 && (unsigned)m->status < ST__COUNT &&
           (unsigned)m->channel < CH__COUNT NOTIF_STRINGS(STR_OK);
#undef STR_OK
}

/* The hot path of the status sink: one transaction (committed early when a
 * short write waits for the writer, see DESIGN), cached statements, strings
 * bound in place (no copies, no allocation per row). */
static hr_t sq_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    if (n < 0 || (n > 0 && !recs)) return HR_INVALID;
    if (n == 0) return HR_OK;
    conn_t *c = &sq(s)->w;
    int skipped = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *up = stmt(c, S_NOTIF_UPSERT);
    sqlite3_stmt *look = stmt(c, S_NOTIF_ROWID);
    sqlite3_stmt *hi = stmt(c, S_HIST_ADD);
    hr_t r = up && look && hi ? tx_begin(c, true) : HR_ERR;
    if (r != HR_OK) goto out;
    int64_t now = hclock_now_ms();
    for (int i = 0; i < n && r == HR_OK; i++) {
        const notif_t *m = recs[i];
        if (!notif_valid(m)) {
            skipped++;
            continue;
        }
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        bool sent = m->status == ST_SENT || m->status == ST_DELIVERED;
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
        sqlite3_bind_int(up, 17, status_rank(m->status));
        /* The history row needs the notification's rowid. When the upsert
         * inserted, last_insert_rowid moved to it; otherwise (update, or a
         * record refused by the final-state rule) look it up: a cheap probe
         * of the index page just visited. */
        int64_t before = sqlite3_last_insert_rowid(c->db);
        if ((r = step_done(c, up, "notification upsert")) != HR_OK) break;
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
        r = step_done(c, hi, "status history add");
        if (r == HR_OK && (i + 1) % YIELD_EVERY == 0 && i + 1 < n && atomic_load(&c->waiters) > 0) {
            /* a short write is waiting: commit, let it in, go on */
            if ((r = tx_end(c, r)) != HR_OK) break;
            pthread_mutex_unlock(&c->mu);
            for (int k = 0; k < 1000 && atomic_load(&c->waiters) > 0; k++) sched_yield();
            pthread_mutex_lock(&c->mu);
            r = tx_begin(c, true);
        }
    }
    /* the bound pointers belong to the caller: drop them */
    sqlite3_clear_bindings(up);
    sqlite3_clear_bindings(look);
    sqlite3_clear_bindings(hi);
    if (sqlite3_get_autocommit(c->db) == 0) r = tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    if (skipped) log_warn(LOG, "notification batch: skipped %d invalid record(s) of %d", skipped, n);
    return r;
}

/* Fills r from a row selected with NOTIF_COLS. */
static void row_read(sqlite3_stmt *st, notif_row_t *r)
{
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
}

static hr_t sq_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                         status_hist_t **hist, int *nhist)
{
    memset(out, 0, sizeof(*out));
    if (hist) *hist = NULL;
    if (nhist) *nhist = 0;
    if (!nonempty(notification_id)) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    status_hist_t *h = NULL;
    int nh = 0, cap = 0;
    pthread_mutex_lock(&c->mu);
    hr_t r = tx_begin(c, false); /* one snapshot for row and history */
    if (r != HR_OK) goto out;
    sqlite3_stmt *st = stmt(c, S_NOTIF_GET);
    if (!st) {
        r = HR_ERR;
        goto end;
    }
    bind_str(st, 1, notification_id);
    int rc = sqlite3_step(st);
    int64_t rowid = 0;
    if (rc == SQLITE_ROW) {
        row_read(st, out);
        rowid = sqlite3_column_int64(st, 15);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "notification get");
        goto end;
    }
    if (!hist) goto end;
    if (!(st = stmt(c, S_HIST_GET))) {
        r = HR_ERR;
        goto end;
    }
    sqlite3_bind_int64(st, 1, rowid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nh == cap) {
            cap = cap ? cap * 2 : 8;
            h = xrealloc(h, (size_t)cap * sizeof(*h));
        }
        h[nh].status = (notif_status_t)sqlite3_column_int(st, 0);
        h[nh].attempt = sqlite3_column_int(st, 1);
        h[nh].at_ms = sqlite3_column_int64(st, 2);
        h[nh].detail = col_str(st, 3);
        nh++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) r = sq_err(c, rc, "status history get");
end:
    r = tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        notif_row_clear(out);
        status_hist_free(h, nh);
        return r;
    }
    if (hist) *hist = h;
    if (nhist) *nhist = nh;
    return HR_OK;
}

/* Cursor: "<created_at_ms>:<notification_id>" of the last row returned. */
static hr_t cursor_parse(const char *cur, int64_t *ms, const char **id)
{
    if (!((cur[0] >= '0' && cur[0] <= '9') || cur[0] == '-')) return HR_INVALID;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(cur, &end, 10);
    if (errno || end == cur || *end != ':' || end[1] == '\0') return HR_INVALID;
    *ms = v;
    *id = end + 1;
    return HR_OK;
}

static hr_t sq_notif_list_user(store_t *s, const char *user_id, const char *cursor, int limit,
                               notif_row_t **rows, int *n, char **next_cursor)
{
    *rows = NULL;
    *n = 0;
    *next_cursor = NULL;
    if (!nonempty(user_id) || limit <= 0 || limit == INT_MAX) return HR_INVALID;
    int64_t cur_ms = 0;
    const char *cur_id = NULL;
    bool after = nonempty(cursor);
    if (after && cursor_parse(cursor, &cur_ms, &cur_id) != HR_OK) return HR_INVALID;

    conn_t *c = sq(s)->rd;
    notif_row_t *v = NULL;
    int nv = 0, cap = 0;
    bool more = false;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_OK;
    sqlite3_stmt *st = stmt(c, after ? S_NOTIF_LIST_AFTER : S_NOTIF_LIST);
    if (!st) {
        r = HR_ERR;
        goto out;
    }
    bind_str(st, 1, user_id);
    sqlite3_bind_int(st, 2, limit + 1); /* one more tells whether a next page exists */
    if (after) {
        sqlite3_bind_int64(st, 3, cur_ms);
        bind_str(st, 4, cur_id);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nv == limit) {
            more = true;
            rc = SQLITE_DONE;
            break;
        }
        if (nv == cap) {
            cap = cap ? cap * 2 : (limit < 32 ? limit : 32);
            v = xrealloc(v, (size_t)cap * sizeof(*v));
        }
        memset(&v[nv], 0, sizeof(v[nv]));
        row_read(st, &v[nv++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) r = sq_err(c, rc, "notification list");
out:
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        notif_rows_free(v, nv);
        return r;
    }
    if (more)
        *next_cursor = xasprintf("%lld:%s", (long long)v[nv - 1].created_at_ms,
                                 v[nv - 1].notification_id);
    *rows = v;
    *n = nv;
    return HR_OK;
}

/* Unknown ids are not sent: HR_OK with *sent = false. */
static hr_t sq_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    *sent = false;
    if (!nonempty(notification_id)) return HR_INVALID;
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = stmt(c, S_NOTIF_STATUS);
    if (st) {
        bind_str(st, 1, notification_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            int status = sqlite3_column_int(st, 0);
            *sent = status == ST_SENT || status == ST_DELIVERED;
        }
        sqlite3_reset(st);
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "notification sent");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* One purge transaction: up to PURGE_CHUNK notifications after rowid *last.
 * Sets *done when the table has been walked to its end. */
static hr_t purge_chunk(conn_t *c, int64_t before_ms, int64_t *last, int64_t *deleted,
                        bool *done)
{
    int k = 0;
    hr_t r = tx_begin(c, true);
    if (r != HR_OK) return r;
    int64_t *rowids = xmalloc(PURGE_CHUNK * sizeof(*rowids));
    sqlite3_stmt *pick = stmt(c, S_PURGE_PICK);
    sqlite3_stmt *dh = stmt(c, S_PURGE_HIST);
    sqlite3_stmt *dn = stmt(c, S_PURGE_NOTIF);
    if (!pick || !dh || !dn) {
        r = HR_ERR;
        goto out;
    }
    sqlite3_bind_int64(pick, 1, *last);
    sqlite3_bind_int64(pick, 2, before_ms);
    sqlite3_bind_int(pick, 3, PURGE_CHUNK);
    int rc;
    while ((rc = sqlite3_step(pick)) == SQLITE_ROW) rowids[k++] = sqlite3_column_int64(pick, 0);
    sqlite3_reset(pick);
    if (rc != SQLITE_DONE) {
        r = sq_err(c, rc, "purge scan");
        goto out;
    }
    for (int i = 0; i < k && r == HR_OK; i++) {
        sqlite3_bind_int64(dh, 1, rowids[i]);
        r = step_done(c, dh, "purge history");
        if (r != HR_OK) break;
        sqlite3_bind_int64(dn, 1, rowids[i]);
        r = step_done(c, dn, "purge notification");
    }
out:
    r = tx_end(c, r);
    if (r == HR_OK) {
        *deleted += k;
        if (k) *last = rowids[k - 1];
        *done = k < PURGE_CHUNK;
    }
    free(rowids);
    return r;
}

static hr_t sq_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
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
    int changed = PURGE_CHUNK;
    c = &sq(s)->ev;
    while (r == HR_OK && changed == PURGE_CHUNK) {
        pthread_mutex_lock(&c->mu);
        sqlite3_stmt *st = stmt(c, S_PURGE_EVENTS);
        if (st) {
            sqlite3_bind_int64(st, 1, before_ms);
            sqlite3_bind_int(st, 2, PURGE_CHUNK);
            r = step_done(c, st, "purge events");
            changed = sqlite3_changes(c->db);
        } else {
            r = HR_ERR;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (deleted) *deleted = total;
    if (total) log_info(LOG, "purged %lld notification(s) created before %lld", (long long)total,
                        (long long)before_ms);
    return r;
}

const store_ops_t store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .user_put = sq_user_put,
    .user_put_batch = sq_user_put_batch,
    .user_get = sq_user_get,
    .users_get_batch = sq_users_get_batch,
    .users_scan = sq_users_scan,
    .prefs_replace = sq_prefs_replace,
    .prefs_get = sq_prefs_get,
    .sub_add = sq_sub_add,
    .sub_del = sq_sub_del,
    .subs_page = sq_subs_page,
    .follow_add = sq_follow_add,
    .followers_page = sq_followers_page,
    .template_put = sq_template_put,
    .template_get = sq_template_get,
    .template_channels = sq_template_channels,
    .event_claim = sq_event_claim,
    .event_claim_batch = sq_event_claim_batch,
    .notif_write_batch = sq_notif_write_batch,
    .notif_get = sq_notif_get,
    .notif_list_user = sq_notif_list_user,
    .notif_sent = sq_notif_sent,
    .notif_purge = sq_notif_purge,
};
