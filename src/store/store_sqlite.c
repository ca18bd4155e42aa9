/*
 * store_sqlite.c - the embedded store backend (SQLite): opening and
 * closing, pragmas, WAL, the checkpointer, the schema, the statement table
 * and the helpers that run statements. The ops live in store_sqlite_users.c
 * and store_sqlite_notif.c; store_sqlite_int.h is what the files share.
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
 * cheaper than random-key ones; schema version 6): every key written per
 * status row grows at its right-hand edge. status_log is append-only (one
 * row per status record, its fields in one blob since version 8, the
 * content in a notification's first row only) with one index, led by the
 * notification id, which starts with the event's accepted time
 * (model/notif.h) and is stored as 16 bytes since version 10; the sink
 * appends SQ_LOG_ADD_ROWS rows per INSERT statement. The per-user listing is a small LSM tree
 * of sorted runs: each sink transaction appends one run of the
 * notifications it created, sorted by user, as blocks of keys (user_chunks,
 * schema version 9); runs are merged level by level (SQ_RUN_FANIN at a
 * time), so a listing reads a bounded number of runs and no write touches
 * a random B-tree page per row. See store_sqlite_notif.c and
 * store_sqlite_runs.c. An in-memory database (":memory:") has a single
 * connection for both roles.
 *
 * Channels and statuses are stored as their enum numbers, which are already
 * a persisted contract (the binary record of model/notif.h carries them);
 * docs/internals/store.md lists them. The schema is schema/sqlite.sql; the
 * rank rule of model/lifecycle.h is applied when a notification's rows are
 * read (lifecycle_may_replace), so the rule exists once.
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
#include "store/store_sqlite_int.h"

#include "core/log.h"
#include "model/lifecycle.h"
#include "store/schema/schema.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LOG SQ_LOG
#define BUSY_TIMEOUT_MS 5000
/* Page caches. The writer's holds the dirty pages of a status batch and the
 * index pages it visits (32 MiB did as well as 64 in a 600k-row test; 16
 * halved the rate); the reader serves API reads and fan-out's cache misses.
 * Since the status log (schema 9) the writer appends to time-ordered keys:
 * `herald bench sink --rows 3000000` gave 6.9 CPU-us a row with 32 MiB and
 * 6.7 with 8 (means of four runs each, noise +-10 %), and a full cache was
 * 32 MB of herald's peak RSS with 1M users; 8 MiB also bounds SQLite's
 * sorter on this connection (it may take cache_size). */
#define WRITER_CACHE_KIB 8192
#define READER_CACHE_KIB 8192
#define OTHER_CACHE_KIB 2048     /* checkpointer and dedupe connections */
/* The dedupe database's WAL is cut back to this when it restarts. */
#define DEDUPE_WAL_KEEP_BYTES (16LL << 20)
/* Memory-mapped reads (store.sqlite_mmap_mb), for the writer only. The
 * reader ran fan-out's lookups through a map that SQLite re-creates
 * whenever the file grows - which, with the status sink writing, is all
 * the time: munmap and page faults took a third of fan-out's time. It reads
 * through its page cache. Off by default: every page of the map the writer
 * touched counts in the process's resident set (up to the whole map: 150 MB
 * of the 490 MB peak of the 1M-user benchmark with 256 MB), for ~7 % of the
 * status sink's CPU per row (12.8-13.3 against 13.9-14.3 us/row,
 * `herald bench sink`, 600k rows, alternating runs). */
/* Checkpoint every 16384 pages of WAL (64 MiB with 4 KiB pages, 128 MiB
 * with the 8 KiB of databases made since schema version 8) rather than
 * SQLite's 1000 pages: a 10k-row batch dirties thousands of index pages,
 * and pages dirtied by several batches are then copied into the database
 * once (measured ~1.4x on 1M rows). */
#define WAL_CHECKPOINT_PAGES 16384
/* The WAL is cut back to this when it restarts. Above the checkpoint size
 * plus a large batch, so that it is not truncated every cycle: truncating
 * drops the file's page cache, and the transaction that restarts the WAL
 * (often a small one, like an event claim) paid ~1 ms per restart for it. */
#define WAL_KEEP_BYTES (192LL << 20)
#define CKPT_INTERVAL_MS 200
/* The change log (sqlite.sql) is read this often, and this many rows at a
 * time (a few reads per poll at most: a larger backlog is "everything"). */
#define CHANGES_POLL_MS 200
#define CHANGES_PAGE 4096
#define CHANGES_PAGES 16
#define DEDUPE_CKPT_PAGES 1000
#define DEDUPE_RESTART_FRAMES 16384 /* ~64 MB of dedupe WAL: then it restarts */
#define CKPT_FORCE_FRAMES 65536  /* ~256 MB: wait for readers and restart the WAL */
#define CKPT_LOCKED_FRAMES 2048  /* at most this many copied with the writer held */
#define CKPT_CATCHUP_PASSES 4    /* passes without it to get there */
/* The page size of a new main database (an existing one keeps its own: in
 * WAL mode only a VACUUM could change it). 8 KiB pages: half the page
 * headers, cell pointers and B-tree descents per row, larger runs of a
 * status batch per page write; the status sink's CPU per row 11.97 ->
 * 10.84 us, 16 KiB 10.70 (`herald bench sink --rows 1000000`, load 7-10).
 * The page cache sizes above are in KiB, so memory stays the same. */
#define MAIN_PAGE_BYTES 8192

/* The schema stores status and channel codes. */
_Static_assert(ST_PENDING == 0 && ST_SENT == 1 && ST_DELIVERED == 2 && ST_DEAD == 7 &&
                   ST_UNDELIVERED == 8 && ST_BOUNCED == 9,
               "status codes are stored in the database");
_Static_assert(CH_PUSH == 0 && CH_WEBHOOK == 4, "channel codes are stored in the database");

/* The inbox columns in the order store_sqlite_inbox.c reads them. */
#define INBOX_COLS                                                                         \
    "user_id, notification_id, event_id, category, title, body, created_at_ms,"            \
    " coalesce(seen_at_ms, 0), coalesce(read_at_ms, 0), coalesce(archived_at_ms, 0)"
/* The statements, by id. S_NOTIF_STATUS is written at first open
 * (sql_init). */
static const char *stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_VERSION_GET] = "SELECT version FROM schema_version WHERE id = 1",
    [S_USER_PUT] =
        "INSERT INTO users (user_id, email, phone, locale, timezone, quiet_start, quiet_end,"
        " webhook_url, updated_at, webhook_secret)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULLIF(?10, ''))"
        " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, phone = excluded.phone,"
        " locale = excluded.locale, timezone = excluded.timezone,"
        " quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,"
        " webhook_url = excluded.webhook_url, updated_at = excluded.updated_at,"
        /* ?10 NULL keeps the stored secret, '' removes it */
        " webhook_secret = CASE WHEN ?10 IS NULL THEN webhook_secret ELSE NULLIF(?10, '') END",
    [S_USER_GET] = "SELECT email, phone, locale, timezone, quiet_start, quiet_end, webhook_url,"
                   " updated_at, webhook_secret FROM users WHERE user_id = ?1",
    [S_CHG_ADD] = "INSERT INTO change_log (kind, id) VALUES (?1, ?2)",
    [S_CHG_PRUNE] = "DELETE FROM change_log WHERE seq <= ?1",
    [S_DEV_DEL] = "DELETE FROM devices WHERE user_id = ?1",
    [S_DEV_ADD] = "INSERT INTO devices (user_id, seq, platform, token) VALUES (?1, ?2, ?3, ?4)",
    [S_DEV_GET] = "SELECT platform, token FROM devices WHERE user_id = ?1 ORDER BY seq",
    [S_PREF_DEL] = "DELETE FROM preferences WHERE user_id = ?1",
    [S_PREF_ADD] = "INSERT OR REPLACE INTO preferences (user_id, category, channel, enabled)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [S_USER_SCAN] = "SELECT user_id, email, phone, locale, timezone, quiet_start, quiet_end,"
                    " webhook_url, updated_at, webhook_secret FROM users WHERE user_id > ?1"
                    " ORDER BY user_id LIMIT ?2",
    [S_DEV_SCAN] = "SELECT user_id, platform, token FROM devices WHERE user_id > ?1 AND user_id <= ?2"
                   " ORDER BY user_id, seq",
    [S_PREF_SCAN] = "SELECT user_id, category, channel, enabled FROM preferences"
                    " WHERE user_id > ?1 AND user_id <= ?2 ORDER BY user_id, category, channel",
    [S_PREF_GET] = "SELECT category, channel, enabled FROM preferences WHERE user_id = ?1"
                   " ORDER BY category, channel",
    /* a user, its devices and its preferences in one statement: column 1
     * tells the row's kind. No ORDER BY (a sorter per read cost more than
     * the two statements it saves): each part reads its table's primary
     * key in order, and the reader puts devices by seq and preferences by
     * (category, channel) should a plan ever return them otherwise. */
    [S_USER_FULL] = "SELECT 0, email, phone, locale, timezone, quiet_start, quiet_end, webhook_url,"
                    " updated_at, webhook_secret FROM users WHERE user_id = ?1"
                    " UNION ALL SELECT 1, platform, token, NULL, NULL, NULL, NULL, NULL, seq, NULL"
                    " FROM devices WHERE user_id = ?1"
                    " UNION ALL SELECT 2, category, channel, enabled, NULL, NULL, NULL, NULL, NULL, NULL"
                    " FROM preferences WHERE user_id = ?1",
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
        "INSERT INTO templates (event_type, channel, locale, title, body, updated_at,"
        " digest_window_ms, digest_key)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (event_type, channel, locale) DO UPDATE"
        " SET locale = excluded.locale, title = excluded.title, body = excluded.body,"
        " updated_at = excluded.updated_at, digest_window_ms = excluded.digest_window_ms,"
        " digest_key = excluded.digest_key",
    /* ?3..?5: the locale chain (store_locale_chain); locale has NOCASE
     * collation: "pt-br" finds "pt-BR" */
    [S_TPL_GET] = "SELECT locale, title, body, digest_window_ms, digest_key FROM templates"
                  " WHERE event_type = ?1 AND channel = ?2 AND locale IN (?3, ?4, ?5)"
                  " ORDER BY CASE WHEN locale = ?3 THEN 0 WHEN locale = ?4 THEN 1 ELSE 2 END"
                  " LIMIT 1",
    [S_TPL_CHANNELS] = "SELECT DISTINCT channel FROM templates WHERE event_type = ?1",
    /* the status log (store_sqlite_notif.c): a row's content is its
     * record (rec, the row record of store_sqlite_notif.c); content = 1 in
     * the row that holds the notification's content */
    [S_LOG_ADD] = "INSERT INTO status_log (notification_id, status, content, rec)"
                  " VALUES (?1, ?2, ?3, ?4)",
    /* a row holding the content: the key index covers it */
    [S_LOG_HAS] = "SELECT 1 FROM status_log WHERE notification_id = ?1 AND content = 1 LIMIT 1",
    [S_LOG_MAX] = "SELECT max(notification_id) FROM status_log",
    /* the per-user runs (store_sqlite_runs.c): blocks of keys */
    [S_RUN_ADD] = "INSERT INTO user_chunks (run, last_user, pos, keys) VALUES (?1, ?2, ?3, ?4)",
    [S_RUN_LIST_ADD] = "INSERT INTO user_run_list (run, level, rows, max_created) VALUES (?1, ?2, ?3, ?4)",
    [S_RUN_MAX] = "SELECT max(coalesce((SELECT max(run) FROM user_chunks), 0),"
                  " coalesce((SELECT max(run) FROM user_run_list), 0))",
    [S_NOTIF_GET] = "SELECT status, content, rec FROM status_log WHERE notification_id = ?1"
                    " ORDER BY seq",
    [S_RUN_LIVE] = "SELECT run FROM user_run_list ORDER BY run",
    /* a user's keys in a run start in the first block whose last key's
     * user is not below it */
    [S_RUN_SEEK] = "SELECT keys, last_user, pos FROM user_chunks WHERE run = ?1 AND last_user >= ?2"
                   " ORDER BY last_user, pos",
    /* S_NOTIF_STATUS is written at first open (sql_init): any row of a
     * status that counts as sent (lifecycle_was_sent) */
    /* retention: the log's oldest rows in arrival order; the record and
     * the id of content rows only (their created time) */
    [S_PURGE_PICK] = "SELECT seq, content, CASE WHEN content THEN rec END,"
                     " CASE WHEN content THEN notification_id END FROM status_log"
                     " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [S_PURGE_RUNS] = "DELETE FROM user_chunks WHERE run IN (SELECT run FROM user_run_list"
                     " WHERE max_created < ?1)",
    [S_PURGE_RUN_LIST] = "DELETE FROM user_run_list WHERE max_created < ?1",
    /* merging the runs of a level (store_sqlite_notif.c) */
    [S_RUN_FULL_LEVEL] = "SELECT level FROM user_run_list GROUP BY level HAVING count(*) >= ?1"
                         " ORDER BY level LIMIT 1",
    [S_RUN_MERGE] = "SELECT run FROM user_run_list WHERE level = ?1 ORDER BY run",
    [S_RUN_MERGE_MAX] = "SELECT coalesce(max(max_created), 0) FROM user_run_list WHERE level = ?1",
    [S_RUN_DROP] = "DELETE FROM user_chunks WHERE run = ?1",
    [S_RUN_LIST_DROP] = "DELETE FROM user_run_list WHERE run = ?1",
    [S_SCHED_PUT] = "INSERT OR REPLACE INTO scheduled (notification_id, channel, due_at_ms, record,"
                    " user_id) VALUES (?1, ?2, ?3, ?4, NULLIF(?5, ''))",
    [S_SCHED_DUE] = "SELECT notification_id, channel, due_at_ms, record FROM scheduled"
                    " WHERE due_at_ms <= ?1 ORDER BY due_at_ms LIMIT ?2",
    [S_SCHED_NEXT] = "SELECT min(due_at_ms) FROM scheduled",
    [S_SCHED_DEL] = "DELETE FROM scheduled WHERE notification_id = ?1 AND due_at_ms = ?2",
    [S_ADDR_BAD_ADD] = "INSERT OR REPLACE INTO invalid_addresses (user_id, channel, address, reason,"
                       " at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_ADDR_BAD_GET] = "SELECT 1 FROM invalid_addresses WHERE user_id = ?1 AND channel = ?2"
                       " AND address = ?3",
    [S_DLQ_MARK] = "INSERT INTO dlq_redriven (dlq_id, at_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    [S_DLQ_GET] = "SELECT 1 FROM dlq_redriven WHERE dlq_id = ?1",
    [S_KEY_PUT] = "INSERT INTO api_keys (key_id, secret_hash, tenant, scopes, name, created_at_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_KEY_GET] = "SELECT key_id, secret_hash, tenant, scopes, name, created_at_ms,"
                  " coalesce(revoked_at_ms, 0) FROM api_keys WHERE key_id = ?1",
    [S_KEY_LIST] = "SELECT key_id, secret_hash, tenant, scopes, name, created_at_ms,"
                   " coalesce(revoked_at_ms, 0) FROM api_keys ORDER BY created_at_ms, key_id",
    [S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at_ms = coalesce(revoked_at_ms, ?2)"
                     " WHERE key_id = ?1",
    /* user lifecycle (store_sqlite_users.c): an erase takes the user's
     * keys out of the runs' blocks (store_sqlite_runs.c), deletes their
     * log rows */
    [S_ERASE_LOG] = "DELETE FROM status_log WHERE notification_id = ?1",
    [S_ERASE_RUNS] = "DELETE FROM user_chunks WHERE run = ?1 AND last_user = ?2 AND pos = ?3",
    [S_ERASE_FOLLOWERS] = "DELETE FROM follows WHERE actor = ?1 AND follower IN (SELECT follower"
                          " FROM follows WHERE actor = ?1 ORDER BY follower LIMIT ?2)",
    [S_ERASE_USER] = "DELETE FROM users WHERE user_id = ?1",
    [S_ERASE_PREFS] = "DELETE FROM preferences WHERE user_id = ?1",
    [S_ERASE_SUBS] = "DELETE FROM subscriptions WHERE user_id = ?1",
    [S_ERASE_FOLLOWING] = "DELETE FROM follows WHERE follower = ?1",
    [S_ERASE_ADDR] = "DELETE FROM invalid_addresses WHERE user_id = ?1",
    [S_ERASE_SCHED] = "DELETE FROM scheduled WHERE user_id = ?1",
    [S_FOLLOW_DEL] = "DELETE FROM follows WHERE actor = ?1 AND follower = ?2",
    [S_FOLLOWING_PAGE] = "SELECT actor FROM follows WHERE follower = ?1 AND actor > ?2"
                         " ORDER BY actor LIMIT ?3",
    [S_USER_TOPICS_PAGE] = "SELECT topic FROM subscriptions WHERE user_id = ?1 AND topic > ?2"
                           " ORDER BY topic LIMIT ?3",
    [S_ERASE_INBOX] = "DELETE FROM inbox WHERE user_id = ?1",
    [S_INBOX_PUT] = "INSERT INTO inbox (user_id, notification_id, event_id, category, title, body,"
                    " created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
    /* ?3 = the filter (inbox_filter_t); ?4, ?5 = the cursor (NULL ?5: none) */
    [S_INBOX_LIST] =
        "SELECT " INBOX_COLS " FROM inbox WHERE user_id = ?1"
        " AND (?5 IS NULL OR created_at_ms < ?4 OR (created_at_ms = ?4 AND notification_id < ?5))"
        " AND CASE ?3 WHEN 0 THEN archived_at_ms IS NULL"
        " WHEN 1 THEN read_at_ms IS NULL AND archived_at_ms IS NULL"
        " WHEN 2 THEN read_at_ms IS NOT NULL AND archived_at_ms IS NULL"
        " WHEN 3 THEN seen_at_ms IS NOT NULL AND archived_at_ms IS NULL"
        " ELSE archived_at_ms IS NOT NULL END"
        " ORDER BY created_at_ms DESC, notification_id DESC LIMIT ?2",
    [S_INBOX_COUNTS] = "SELECT coalesce(sum(read_at_ms IS NULL), 0), coalesce(sum(seen_at_ms IS NULL), 0)"
                       " FROM inbox WHERE user_id = ?1 AND archived_at_ms IS NULL",
    /* ?3 = inbox_mark_t (1 seen, 2 read, 3 archived), each implying the
     * ones before; ?2 NULL = every item not yet in that state */
    [S_INBOX_MARK] =
        "UPDATE inbox SET seen_at_ms = coalesce(seen_at_ms, ?4),"
        " read_at_ms = CASE WHEN ?3 >= 2 THEN coalesce(read_at_ms, ?4) ELSE read_at_ms END,"
        " archived_at_ms = CASE WHEN ?3 >= 3 THEN coalesce(archived_at_ms, ?4) ELSE archived_at_ms END"
        " WHERE user_id = ?1 AND (notification_id = ?2 OR (?2 IS NULL AND CASE ?3"
        " WHEN 1 THEN seen_at_ms IS NULL WHEN 2 THEN read_at_ms IS NULL"
        " ELSE archived_at_ms IS NULL END))",
    [S_INBOX_DEL] = "DELETE FROM inbox WHERE user_id = ?1 AND notification_id = ?2",
    [S_PURGE_INBOX] = "DELETE FROM inbox WHERE (user_id, notification_id) IN (SELECT user_id,"
                      " notification_id FROM inbox INDEXED BY inbox_created WHERE created_at_ms < ?1"
                      " LIMIT ?2)",
};

static char notif_sent_sql[256];
static char log_add_n_sql[96 + 16 * SQ_LOG_ADD_ROWS];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

/* S_LOG_ADD for SQ_LOG_ADD_ROWS rows: "... VALUES (?, ?, ?, ?), (...)" */
static void log_add_n_init(void)
{
    size_t l = (size_t)snprintf(log_add_n_sql, sizeof(log_add_n_sql),
                                "INSERT OR FAIL INTO status_log (notification_id, status, content, rec) VALUES");
    for (int i = 0; i < SQ_LOG_ADD_ROWS; i++) {
        int w = snprintf(log_add_n_sql + l, sizeof(log_add_n_sql) - l, "%s(?,?,?,?)", i ? "," : " ");
        assert(w > 0 && (size_t)w < sizeof(log_add_n_sql) - l);
        l += (size_t)w;
    }
    stmt_sql[S_LOG_ADD_N] = log_add_n_sql;
}

/* "Already sent?" from the table of model/lifecycle.h: a row of the id with
 * a status that counts as sent. Such a status, once stored, is what the
 * rank rule keeps (rank >= 2 is only replaced by a higher one, which also
 * counts as sent), so any such row answers for the folded state. */
static void sql_init(void)
{
    char in[64] = "";
    size_t l = 0;
    for (int st = 0; st < ST__COUNT; st++) {
        if (!lifecycle_was_sent((notif_status_t)st)) continue;
        int w = snprintf(in + l, sizeof(in) - l, "%s%d", l ? ", " : "", st);
        assert(w > 0 && (size_t)w < sizeof(in) - l);
        l += (size_t)w;
    }
    int w = snprintf(notif_sent_sql, sizeof(notif_sent_sql),
                     "SELECT 1 FROM status_log WHERE notification_id = ?1 AND status IN (%s) LIMIT 1",
                     in);
    assert(w > 0 && (size_t)w < sizeof(notif_sent_sql));
    (void)w;
    stmt_sql[S_NOTIF_STATUS] = notif_sent_sql;
    log_add_n_init();
    sq_log_install(); /* before the first connection */
}

/* ---- running statements ---- */

void sq_writer_lock(conn_t *c)
{
    atomic_fetch_add(&c->waiters, 1);
    pthread_mutex_lock(&c->mu);
    atomic_fetch_sub(&c->waiters, 1);
}

hr_t sq_err(conn_t *c, int rc, const char *what)
{
    int prim = rc & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
        log_warn(LOG, "%s: database busy: %s", what, sqlite3_errmsg(c->db));
        return HR_AGAIN;
    }
    log_error(LOG, "%s: %s (%d)", what, sqlite3_errmsg(c->db), rc);
    if (prim == SQLITE_FULL) { /* ENOSPC, a quota, or max_page_count */
        store_note_nospace();
        return HR_NOSPACE;
    }
    return prim == SQLITE_CONSTRAINT ? HR_CONFLICT : HR_ERR;
}

sqlite3_stmt *sq_stmt(conn_t *c, stmt_id_t id)
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

hr_t sq_step_done(conn_t *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, what);
}

static hr_t run(conn_t *c, stmt_id_t id, const char *what)
{
    sqlite3_stmt *st = sq_stmt(c, id);
    return st ? sq_step_done(c, st, what) : HR_ERR;
}

hr_t sq_tx_begin(conn_t *c, bool write)
{
    return run(c, write ? S_BEGIN_IMMEDIATE : S_BEGIN, "begin");
}

hr_t sq_tx_end(conn_t *c, hr_t r)
{
    if (r == HR_OK) r = run(c, S_COMMIT, "commit");
    if (r != HR_OK && !sqlite3_get_autocommit(c->db)) run(c, S_ROLLBACK, "rollback");
    return r;
}

hr_t sq_collect(conn_t *c, sqlite3_stmt *st, size_t size, int max, sq_row_fn read,
                sq_rows_t *rows, bool *more, const char *what)
{
    int rc;
    if (more) *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows->n >= max) {
            if (more) *more = true;
            rc = SQLITE_DONE;
            break;
        }
        if (rows->n == rows->cap) {
            rows->cap = rows->cap ? rows->cap * 2 : (max < 16 ? max : 16);
            rows->v = xrealloc(rows->v, (size_t)rows->cap * size);
        }
        void *elem = (char *)rows->v + (size_t)rows->n * size;
        memset(elem, 0, size);
        read(st, elem);
        rows->n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, what);
}

/* ---- connections ---- */

/* c->mu is initialised by the caller. */
static hr_t conn_open(conn_t *c, const char *path, conn_role_t role, int64_t mmap_bytes)
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
    char pragmas[384], extra[192];
    if (writer)
        snprintf(extra, sizeof(extra),
                 " PRAGMA wal_autocheckpoint = %d; PRAGMA journal_size_limit = %lld;"
                 " PRAGMA page_size = %d;", /* a new database only */
                 WAL_CHECKPOINT_PAGES, WAL_KEEP_BYTES, MAIN_PAGE_BYTES);
    else if (role == ROLE_READER)
        snprintf(extra, sizeof(extra), " PRAGMA query_only = 1;");
    else if (role == ROLE_DEDUPE)
        snprintf(extra, sizeof(extra), " PRAGMA journal_size_limit = %lld;", DEDUPE_WAL_KEEP_BYTES);
    else
        extra[0] = '\0';
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA synchronous = NORMAL; PRAGMA temp_store = %s; PRAGMA secure_delete = FAST;"
             " PRAGMA cache_size = -%d; PRAGMA mmap_size = %lld;%s",
             /* the writer's temporary files spill to disk (up to schema 8 the
              * per-user runs' merges sorted ~2M keys at level 2 in SQLite's
              * sorter: in memory they took the status sink's peak RSS from
              * 119 to 243 MB at 2.5M rows; since 9 the merges are in C) */
             writer ? "FILE" : "MEMORY",
             writer ? WRITER_CACHE_KIB : role == ROLE_READER ? READER_CACHE_KIB : OTHER_CACHE_KIB,
             writer ? (long long)mmap_bytes : 0LL, extra);
    char *msg = NULL;
    if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "configure %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        return HR_ERR;
    }
    if (writer && sq_log_rec_register(c->db) != HR_OK) {
        log_error(LOG, "configure %s: herald_log_rec: %s", path, sqlite3_errmsg(c->db));
        return HR_ERR;
    }
    return HR_OK;
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
    hr_t r = sq_tx_begin(c, true);
    if (r != HR_OK) return r;
    char *msg = NULL;
    if (sqlite3_exec(c->db, store_schema_sqlite, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        r = HR_ERR;
        goto out;
    }
    sqlite3_stmt *st = sq_stmt(c, S_VERSION_GET);
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
    /* Migrations, one per version step, in order, in the same transaction
     * (a new database got the current schema from sqlite.sql: version 0).
     * Version 3 also fills scheduled.user_id by decoding the rows' records. */
    static const struct {
        int to;
        const char *sql;
    } steps[] = {
        {2, store_schema_sqlite_migrate_2},
        {3, store_schema_sqlite_migrate_3},
        {4, store_schema_sqlite_migrate_4},
        {5, store_schema_sqlite_migrate_5},
        {6, store_schema_sqlite_migrate_6},
        {7, store_schema_sqlite_migrate_7},
        {8, store_schema_sqlite_migrate_8},
        {9, store_schema_sqlite_migrate_9},
        {10, store_schema_sqlite_migrate_10},
    };
    for (size_t i = 0; version > 0 && i < ARRAY_LEN(steps); i++) {
        if (version >= steps[i].to) continue;
        if (sqlite3_exec(c->db, steps[i].sql, NULL, NULL, &msg) != SQLITE_OK) {
            log_error(LOG, "schema migration to version %d: %s", steps[i].to, msg ? msg : "?");
            sqlite3_free(msg);
            r = HR_ERR;
            goto out;
        }
        if (steps[i].to == 3) {
            int64_t filled = 0;
            if ((r = sq_sched_fill_users(c, &filled)) != HR_OK) goto out;
            log_info(LOG, "scheduled.user_id filled for %lld row(s)", (long long)filled);
        }
        if (steps[i].to == 9) {
            int64_t keys = 0;
            if ((r = sq_runs_migrate_9(c, &keys)) != HR_OK) goto out;
            log_info(LOG, "per-user runs: %lld key(s) moved into blocks", (long long)keys);
        }
        log_info(LOG, "database schema migrated from version %d to %d", version, steps[i].to);
        version = steps[i].to;
    }
    if (sqlite3_exec(c->db, store_schema_sqlite_indexes, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "schema indexes: %s", msg ? msg : "?");
        sqlite3_free(msg);
        r = HR_ERR;
        goto out;
    }
out:
    return sq_tx_end(c, r);
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

/* After each commit on the dedupe connection (under ev.mu): the same for
 * the dedupe database, whose WAL the checkpointer keeps small. */
static int ev_wal_hook(void *arg, sqlite3 *db, const char *name, int nframes)
{
    (void)db, (void)name;
    sq_store_t *q = arg;
    atomic_store(&q->ev_frames, nframes);
    return SQLITE_OK;
}

/* The main database's checkpoint. A PASSIVE checkpoint copies the frames
 * there were when it began; the status sink commits more meanwhile, so
 * when it writes flat out the copy never ends with the WAL wholly copied,
 * SQLite never restarts the WAL, and it grew to CKPT_FORCE_FRAMES (512 MiB
 * with 8 KiB pages) before the forced RESTART, then was cut back to
 * WAL_KEEP_BYTES: every commit wrote new blocks of the file (allocation,
 * page cache growth) and the cut dropped the cached pages. So after the
 * first pass, more passes copy what came meanwhile (each a shorter one)
 * until at most CKPT_LOCKED_FRAMES are left; the last pass runs holding the
 * writer's mutex, so nothing is committed meanwhile and it completes, and
 * the writer's next transaction starts the WAL again from its beginning,
 * over pages the kernel still caches. The writer waits for that pass (a
 * copy of at most CKPT_LOCKED_FRAMES pages and an fsync). A reader that
 * holds an older snapshot can still keep the WAL from restarting: then the
 * RESTART at CKPT_FORCE_FRAMES waits for it, as before. */
static void checkpoint(sq_store_t *q)
{
    conn_t *c = &q->ck;
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    /* log: the frames there were when the pass began; wal_frames: now */
    for (int k = 0; rc == SQLITE_OK && done == log && k < CKPT_CATCHUP_PASSES &&
                    atomic_load(&q->wal_frames) - log > CKPT_LOCKED_FRAMES; k++)
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && done == log && atomic_load(&q->wal_frames) - log <= CKPT_LOCKED_FRAMES) {
        pthread_mutex_lock(&q->w.mu);
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        pthread_mutex_unlock(&q->w.mu);
    }
    if (rc == SQLITE_OK && log >= CKPT_FORCE_FRAMES && done < log)
        rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) log_warn(LOG, "checkpoint: %s", sqlite3_errmsg(c->db));
}

/* The dedupe database's checkpoint, in two steps. Fan-out commits claims
 * every few milliseconds. A PASSIVE checkpoint beside it (step 1) copies
 * the frames there were when it began, but more are committed meanwhile,
 * so the claiming connection never starts a transaction with the WAL
 * wholly copied back, and only then does SQLite restart the WAL: it grew
 * by every page written (2.7 GB after 1M claims). SQLite's autocheckpoint
 * in the claiming commit does complete, but puts the copy and its fsync
 * on fan-out's path every 1000 pages (push p99 14 -> 164 ms at 6000
 * events/s). So step 1 runs every DEDUPE_CKPT_PAGES off fan-out's path,
 * and once the WAL holds DEDUPE_RESTART_FRAMES, step 2 runs under ev.mu,
 * which fan-out's claims hold while they write: nothing is committed
 * meanwhile, it copies what came since step 1 and completes, and the next
 * claim restarts the WAL. Step 2's pause (a copy of what one step 1 left
 * behind, and an fsync: 35-200 ms measured on a loaded machine) comes
 * once per ~64 MB of WAL instead of once per 4 MB. */
static void ev_checkpoint(sq_store_t *q)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(q->ev_ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && log >= DEDUPE_RESTART_FRAMES) {
        pthread_mutex_lock(&q->ev.mu);
        rc = sqlite3_wal_checkpoint_v2(q->ev_ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        pthread_mutex_unlock(&q->ev.mu);
    }
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        log_warn(LOG, "dedupe checkpoint: %s", sqlite3_errmsg(q->ev_ck.db));
}

/* ---- the change feed across processes ----
 * Other processes sharing the file (another herald, `herald` commands)
 * change users, devices, preferences and templates; each such write adds
 * a row to change_log in its transaction (sq_change_note: the store's
 * code, not triggers, see sqlite.sql). The checkpointer
 * thread reads the rows after the last it saw every CHANGES_POLL_MS (on its
 * own connection, a read transaction: never in a writer's way) and
 * announces them on the change feed (store_feed_remote_*, store.c), as
 * store_pg_listen.c does with NOTIFY, so fan-out's caches stay exact
 * without reading every cached user again against a TTL
 * (store_users_feed_exact). This process's own rows are skipped (the
 * writer's hooks note them; store.c announced those changes at commit). A reader
 * that finds rows missing after its last (the writer keeps ~65,536; a
 * file restored from a copy) announces that everything changed. */
#define CHANGES_OWN_MAX 65536    /* own ranges kept at most (past it: echoes) */

/* Appends [lo, hi] (above every range held), joined to the last range
 * when they touch. */
static void ranges_add(sq_seq_ranges_t *r, int64_t lo, int64_t hi)
{
    if (r->n && r->v[r->n - 1].hi + 1 >= lo) {
        if (hi > r->v[r->n - 1].hi) r->v[r->n - 1].hi = hi;
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xrealloc(r->v, (size_t)r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = (sq_seq_range_t){lo, hi};
}

/* Drops the ranges that end below seq; whether seq is in the first left. */
static bool ranges_take(sq_seq_ranges_t *r, int64_t seq)
{
    int k = 0;
    while (k < r->n && r->v[k].hi < seq) k++;
    if (k) {
        memmove(r->v, r->v + k, (size_t)(r->n - k) * sizeof(*r->v));
        r->n -= k;
    }
    return r->n && r->v[0].lo <= seq;
}

#define CHANGES_KEEP 65536       /* rows the writer keeps in change_log (about) */
#define CHANGES_PRUNE_EVERY 1024 /* ...dropping the older ones this often */

hr_t sq_change_note(sq_store_t *q, conn_t *c, int kind, const char *id)
{
    sqlite3_stmt *st = sq_stmt(c, S_CHG_ADD);
    if (!st) return HR_ERR;
    sqlite3_bind_int(st, 1, kind);
    if (id) sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2);
    hr_t r = sq_step_done(c, st, "change log");
    sqlite3_clear_bindings(st);
    if (r != HR_OK) return r;
    int64_t seq = sqlite3_last_insert_rowid(c->db);
    if (q->chg_on) ranges_add(&q->chg_pend, seq, seq);
    if (seq % CHANGES_PRUNE_EVERY == 0 && seq > CHANGES_KEEP) {
        if (!(st = sq_stmt(c, S_CHG_PRUNE))) return HR_ERR;
        sqlite3_bind_int64(st, 1, seq - CHANGES_KEEP);
        r = sq_step_done(c, st, "change log prune");
    }
    return r;
}

/* The writer's hooks (w.mu held: they run inside its commits). A row
 * sq_change_note added is pending until the commit makes it this
 * process's own; a rollback forgets it (its seq may be taken again by
 * another process's row). A commit that fails after its hook (an I/O
 * error) leaves its rows counted as own: should another process's row
 * take such a seq, this process misses that change until the cache's TTL
 * (RECIP_TTL_EXACT_MS). */

static int chg_commit_hook(void *arg)
{
    sq_store_t *q = arg;
    if (!q->chg_pend.n) return 0;
    pthread_mutex_lock(&q->chg_mu);
    if (q->chg_own.n + q->chg_pend.n > CHANGES_OWN_MAX) q->chg_own.n = 0; /* the reader is not reading */
    for (int i = 0; i < q->chg_pend.n; i++) ranges_add(&q->chg_own, q->chg_pend.v[i].lo, q->chg_pend.v[i].hi);
    pthread_mutex_unlock(&q->chg_mu);
    q->chg_pend.n = 0;
    return 0;
}

static void chg_rollback_hook(void *arg) { ((sq_store_t *)arg)->chg_pend.n = 0; }

static hr_t changes_bounds(sqlite3 *db, int64_t *lo, int64_t *hi, bool *any)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT min(seq), max(seq) FROM change_log", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *any = sqlite3_column_type(st, 1) != SQLITE_NULL;
        *lo = sqlite3_column_int64(st, 0);
        *hi = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? HR_OK : HR_ERR;
}

static void changes_poll(sq_store_t *q)
{
    sqlite3 *db = q->ck.db;
    int64_t lo = 0, hi = 0;
    bool any = false;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return; /* one snapshot */
    hr_t r = changes_bounds(db, &lo, &hi, &any);
    bool all = false;
    if (r == HR_OK && any && (hi < q->chg_seq || lo > q->chg_seq + 1)) {
        all = true; /* rows after ours are gone (or the log went back) */
    } else if (r == HR_OK && any && hi > q->chg_seq) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT seq, kind, id FROM change_log WHERE seq > ?1"
                                        " ORDER BY seq LIMIT ?2",
                                    -1, &st, NULL);
        bool templates = false;
        for (int page = 0; rc == SQLITE_OK && q->chg_seq < hi; page++) {
            if (page == CHANGES_PAGES) {
                all = true;
                break;
            }
            sqlite3_bind_int64(st, 1, q->chg_seq);
            sqlite3_bind_int(st, 2, CHANGES_PAGE);
            pthread_mutex_lock(&q->chg_mu);
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                q->chg_seq = sqlite3_column_int64(st, 0);
                if (ranges_take(&q->chg_own, q->chg_seq)) continue; /* ours: announced at commit */
                if (sqlite3_column_int(st, 1) == 1) templates = true;
                else if (sqlite3_column_type(st, 2) == SQLITE_TEXT)
                    store_feed_remote_user(&q->base, (const char *)sqlite3_column_text(st, 2));
            }
            pthread_mutex_unlock(&q->chg_mu);
            rc = rc == SQLITE_DONE ? sqlite3_reset(st) : rc;
        }
        if (rc != SQLITE_OK) log_debug(LOG, "change log: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        if (templates) store_feed_remote_templates(&q->base);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (all) {
        log_info(LOG, "change log: rows after %lld are gone; every cached user and template is dropped",
                 (long long)q->chg_seq);
        store_feed_remote_user(&q->base, NULL);
        store_feed_remote_templates(&q->base);
        q->chg_seq = hi;
        pthread_mutex_lock(&q->chg_mu);
        ranges_take(&q->chg_own, hi + 1);
        pthread_mutex_unlock(&q->chg_mu);
    }
}

/* The last row of the change log at open: what came before is in what the
 * caches will read. */
static hr_t changes_init(sq_store_t *q)
{
    int64_t lo = 0, hi = 0;
    bool any = false;
    pthread_mutex_lock(&q->w.mu);
    hr_t r = changes_bounds(q->w.db, &lo, &hi, &any);
    pthread_mutex_unlock(&q->w.mu);
    q->chg_seq = any ? hi : 0;
    if (r != HR_OK) log_error(LOG, "change log: %s", sqlite3_errmsg(q->w.db));
    return r;
}

static void sq_opened(store_t *s) { atomic_store(&sq(s)->feed_ready, true); }

static bool sq_users_feed_exact(store_t *s) { return sq(s)->chg_on; }

/* The checkpointer thread: copies committed WAL frames back into the main
 * database (PASSIVE: never blocks the writer or the readers), off the
 * writer's path, once WAL_CHECKPOINT_PAGES have gathered; and the dedupe
 * database's once DEDUPE_CKPT_PAGES have (ev_checkpoint). */
static void *checkpointer_main(void *arg)
{
    sq_store_t *q = arg;
    /* background work: when CPU is short, whoever waits for an answer goes first */
    pthread_setname_np(pthread_self(), "store-ckpt");
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        log_debug(LOG, "checkpointer: cannot lower its priority: %s", strerror(errno));
    pthread_mutex_lock(&q->ck_mu);
    while (!q->ck_stop) {
        if (q->chg_on && atomic_load(&q->feed_ready) && hclock_mono_ns() >= q->chg_next_ns) {
            pthread_mutex_unlock(&q->ck_mu);
            changes_poll(q);
            q->chg_next_ns = hclock_mono_ns() + (int64_t)CHANGES_POLL_MS * 1000000;
            pthread_mutex_lock(&q->ck_mu);
            continue;
        }
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
            checkpoint(q);
            atomic_store(&q->wal_frames, 0); /* the next commit reports the WAL's size again */
        }
        if (ev_due) {
            ev_checkpoint(q);
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
    sq_claims_close(q); /* its statements are on ev */
    sq_seen_free(q);
    conn_close(&q->ev);
    if (q->w.db && q->merge) { /* its output blocks go now rather than at the next open */
        pthread_mutex_lock(&q->w.mu);
        sq_runs_merge_abort(q, &q->w);
        pthread_mutex_unlock(&q->w.mu);
    }
    if (q->w.db) sqlite3_exec(q->w.db, "PRAGMA optimize", NULL, NULL, NULL);
    conn_close(&q->r);
    conn_close(&q->w);
    pthread_mutex_destroy(&q->ck_mu);
    pthread_cond_destroy(&q->ck_cv);
    pthread_mutex_destroy(&q->wb_mu);
    pthread_mutex_destroy(&q->chg_mu);
    free(q->chg_pend.v);
    free(q->chg_own.v);
    for (int i = 0; i < SQB__COUNT; i++) sq_buf_free(&q->wb[i]);
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

/* Creates the dedupe database's catalogue, moves any claims a store from
 * before the split kept in the main database's events table (into a table
 * of the same name here, which store_sqlite_claims.c then turns into
 * generations) and reads the generations. */
static hr_t dedupe_init(sq_store_t *q, const char *dsn, const char *path, bool memory,
                        const store_open_opts_t *o)
{
    conn_t *c = &q->ev;
    hr_t r = conn_open(c, path, ROLE_DEDUPE, 0);
    if (r == HR_OK && !memory) r = set_wal(c, path);
    if (r != HR_OK) return r;
    char *msg = NULL;
    if (sqlite3_exec(c->db, store_schema_sqlite_events, NULL, NULL, &msg) != SQLITE_OK) {
        log_error(LOG, "%s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        return HR_ERR;
    }
    sqlite3_stmt *st = NULL;
    bool old_rows = false;
    if (!memory && sqlite3_prepare_v2(q->w.db, "SELECT 1 FROM events LIMIT 1", -1, &st, NULL) == SQLITE_OK)
        old_rows = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (old_rows) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS old; BEGIN;"
                                    " CREATE TABLE IF NOT EXISTS main.events (event_id TEXT PRIMARY KEY,"
                                    " position TEXT NOT NULL, first_seen_ms INTEGER NOT NULL);"
                                    " INSERT OR IGNORE INTO main.events SELECT event_id, position,"
                                    " first_seen_ms FROM old.events; DELETE FROM old.events; COMMIT;"
                                    " DETACH old;",
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
    }
    return sq_claims_open(q, o ? o->dedupe_window_ms : 0, o ? o->dedupe_gen_claims : 0);
}

/* Damage found at open: logged; refuses the open unless accepted, else
 * remembered for store_health. */
static hr_t damage_found(sq_store_t *q, const store_open_opts_t *o, const char *what)
{
    size_t l = strlen(q->damage);
    snprintf(q->damage + l, sizeof(q->damage) - l, "%s%s", l ? "; " : "", what);
    if (o->accept_damage) {
        log_error(LOG, "damaged store: %s; starting anyway (store.accept_damage=true)", what);
        return HR_OK;
    }
    log_error(LOG, "damaged store: %s; refusing to open it (store.accept_damage=true opens it as it is)",
              what);
    return HR_ERR;
}

/* Checks both databases' WALs before SQLite reads them. */
static hr_t check_wals(sq_store_t *q, const store_open_opts_t *o, const char *dsn, const char *evp)
{
    char why[400];
    hr_t r = HR_OK;
    if (sq_wal_check(dsn, why, sizeof(why)) != HR_OK) r = damage_found(q, o, why);
    if (r == HR_OK && sq_wal_check(evp, why, sizeof(why)) != HR_OK) r = damage_found(q, o, why);
    return r;
}

/* The check runs on a connection of its own, closed after it, with
 * SQLite's default cache (2 MB): it reads every page, and on the writer's
 * connection those pages stayed in the writer's 32 MB cache for the
 * process's life (peak RSS). db is used only when that open fails. */
static hr_t check_db(sq_store_t *q, const store_open_opts_t *o, sqlite3 *db, const char *path)
{
    char why[400], what[480];
    sqlite3 *own = NULL;
    if (o->check_ms > 0) {
        if (sqlite3_open_v2(path, &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(own, BUSY_TIMEOUT_MS);
            db = own;
        } else {
            sqlite3_close(own);
            own = NULL;
        }
    }
    hr_t r = sq_quick_check(db, path, o->check_ms, why, sizeof(why));
    sqlite3_close(own);
    if (r == HR_OK) return HR_OK;
    snprintf(what, sizeof(what), "%s: %s", path, why);
    return damage_found(q, o, what);
}

static hr_t sq_health(store_t *s, char *why, size_t why_len)
{
    sq_store_t *q = sq(s);
    if (q->damage[0]) {
        snprintf(why, why_len, "%s", q->damage);
        return HR_ERR;
    }
    uint64_t n = sq_corrupt_reports() - q->corrupt_at_open;
    if (n == 0) return HR_OK;
    snprintf(why, why_len, "SQLite reported corruption %llu time(s) since the store opened (see the log)",
             (unsigned long long)n);
    return HR_ERR;
}

static hr_t sq_open(const char *dsn, const store_open_opts_t *o, store_t **out)
{
    pthread_once(&sql_once, sql_init);
    sq_store_t *q = xcalloc(1, sizeof(*q));
    q->base.ops = &store_sqlite_ops;
    pthread_mutex_init(&q->w.mu, NULL);
    pthread_mutex_init(&q->r.mu, NULL);
    pthread_mutex_init(&q->ck.mu, NULL);
    pthread_mutex_init(&q->ev_ck.mu, NULL);
    pthread_mutex_init(&q->ev.mu, NULL);
    pthread_mutex_init(&q->ck_mu, NULL);
    pthread_mutex_init(&q->wb_mu, NULL);
    pthread_mutex_init(&q->chg_mu, NULL);
    pthread_cond_init(&q->ck_cv, NULL);
    bool memory = dsn[0] == '\0' || strcmp(dsn, ":memory:") == 0;
    q->rd = memory ? &q->w : &q->r;
    char *evp = dedupe_path(dsn, memory);
    hr_t r = memory ? HR_OK : check_wals(q, o, dsn, evp);
    if (r == HR_OK) r = conn_open(&q->w, dsn, ROLE_WRITER, o ? (int64_t)o->sqlite_mmap_mb << 20 : 0);
    if (r == HR_OK && !memory) r = set_wal(&q->w, dsn);
    if (r == HR_OK && !memory) r = check_db(q, o, q->w.db, dsn);
    if (r == HR_OK) r = schema_init(&q->w);
    if (r == HR_OK) r = sq_runs_init(q); /* store_sqlite_runs.c */
    if (r == HR_OK) r = changes_init(q);
    if (r == HR_OK && !memory) r = conn_open(&q->r, dsn, ROLE_READER, 0);
    if (r != HR_OK) {
        free(evp);
        goto out;
    }
    r = dedupe_init(q, dsn, evp, memory, o);
    if (r == HR_OK && !memory) r = check_db(q, o, q->ev.db, evp);
    if (r == HR_OK && !memory && conn_open(&q->ck, dsn, ROLE_CHECKPOINT, 0) == HR_OK) {
        /* the dedupe database too (ev_checkpoint); without that connection
         * its writer keeps SQLite's autocheckpoint */
        if (conn_open(&q->ev_ck, evp, ROLE_CHECKPOINT, 0) != HR_OK && q->ev_ck.db) {
            sqlite3_close(q->ev_ck.db); /* keeps its mutex: sq_close destroys it */
            q->ev_ck.db = NULL;
        }
        q->chg_on = true; /* before the thread starts: it reads it */
        pthread_mutex_lock(&q->w.mu);
        sqlite3_commit_hook(q->w.db, chg_commit_hook, q);
        sqlite3_rollback_hook(q->w.db, chg_rollback_hook, q);
        pthread_mutex_unlock(&q->w.mu);
        if (pthread_create(&q->ck_thread, NULL, checkpointer_main, q) == 0) {
            q->ck_started = true;
            /* the hooks replace the writers' own autocheckpoints */
            sqlite3_wal_hook(q->w.db, wal_hook, q);
            if (q->ev_ck.db) sqlite3_wal_hook(q->ev.db, ev_wal_hook, q);
        } else {
            q->chg_on = false;
        }
    } /* otherwise the writers checkpoint in their commits */
    free(evp);
    if (r != HR_OK) goto out;
    q->corrupt_at_open = sq_corrupt_reports();
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
    sqlite3_stmt *st = sq_stmt(c, S_VERSION_GET);
    if (st) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        else sq_err(c, rc, "schema version");
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

const store_ops_t store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .opened = sq_opened,
    .users_feed_exact = sq_users_feed_exact,
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
    .notif_sent_batch = sq_notif_sent_batch,
    .notif_purge = sq_notif_purge,
    .user_erase = sq_user_erase,
    .follow_del = sq_follow_del,
    .following_page = sq_following_page,
    .user_topics_page = sq_user_topics_page,
    .sched_put = sq_sched_put,
    .sched_due = sq_sched_due,
    .sched_next = sq_sched_next,
    .sched_del = sq_sched_del,
    .address_invalid_add = sq_address_invalid_add,
    .address_invalid_get = sq_address_invalid_get,
    .event_release = sq_event_release,
    .dlq_mark = sq_dlq_mark,
    .key_put = sq_key_put,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .inbox_put = sq_inbox_put,
    .inbox_list = sq_inbox_list,
    .inbox_counts = sq_inbox_counts,
    .inbox_mark = sq_inbox_mark,
    .inbox_del = sq_inbox_del,
    .dlq_get = sq_dlq_get,
    .health = sq_health,
    /* store_sqlite_feed.c */
    .digest_add_batch = sq_digest_add_batch,
    .digest_close = sq_digest_close,
    .feed_put = sq_feed_put,
    .followers_count = sq_followers_count,
    .feed_list = sq_feed_list,
    .feed_mark = sq_feed_mark,
    .feed_del = sq_feed_del,
};
