/*
 * test_store_sqlite.c - what only the SQLite backend promises, beyond the
 * contract of test_store.c: the embedded schema files and their version,
 * the move of the dedupe table into a database of its own, and store.c's
 * fallbacks for optional ops (run over SQLite with those ops removed).
 * Always runs against SQLite, whatever HERALD_TEST_STORE says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/schema/schema.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/store_sqlite_int.h" /* sq_block_count_user */
#include "store_fixture.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The notification tables of schema versions 1 to 5 (sqlite.sql of
 * version 5; traceparent came with version 4), which a database of such a
 * version has and version 6 replaced. */
#define V5_NOTIF_TABLES(traceparent)                                                          \
    "CREATE TABLE notifications (notification_id TEXT PRIMARY KEY, event_id TEXT NOT NULL,"    \
    " user_id TEXT NOT NULL, channel INTEGER NOT NULL, category TEXT NOT NULL,"                \
    " title TEXT NOT NULL, body TEXT NOT NULL, address TEXT NOT NULL, status INTEGER NOT NULL," \
    " attempt INTEGER NOT NULL, channel_msg_id TEXT,"                                          \
    " idempotency_key TEXT GENERATED ALWAYS AS (notification_id) VIRTUAL, metadata TEXT,"      \
    " error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"                   \
    " delivered_at INTEGER" traceparent ");"                                                   \
    "CREATE INDEX notifications_user ON notifications (user_id, created_at DESC,"               \
    " notification_id DESC);"                                                                  \
    "CREATE TABLE status_history (notif_rowid INTEGER NOT NULL, notification_id TEXT NOT NULL," \
    " status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL, detail TEXT);" \
    "CREATE INDEX status_history_notif ON status_history (notif_rowid);"

/* What version 7 added to a version 6 database: the templates' digest
 * columns (the digest tables are in sqlite.sql, created at every open). */
#define V6_TEMPLATES                                                                           \
    "ALTER TABLE templates DROP COLUMN digest_window_ms;"                                      \
    "ALTER TABLE templates DROP COLUMN digest_key;"

/* The status log of versions 6 and 7 (a column per field, an index on the
 * id), which version 8 replaced (a blob per row, status_log_key). */
#define V7_STATUS_LOG                                                                          \
    "DROP TABLE status_log;"                                                                   \
    "CREATE TABLE status_log (seq INTEGER PRIMARY KEY, notification_id TEXT NOT NULL,"         \
    " status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,"              \
    " channel_msg_id TEXT, error TEXT, metadata TEXT, traceparent TEXT, event_id TEXT,"        \
    " user_id TEXT, channel INTEGER, category TEXT, title TEXT, body TEXT, address TEXT,"      \
    " created_at INTEGER);"                                                                    \
    "CREATE INDEX status_log_id ON status_log (notification_id);"

/* The per-user runs of versions 6 to 8 (a row per key), which version 9
 * replaced (blocks of keys, user_chunks). */
#define V8_USER_RUNS                                                                           \
    "CREATE TABLE user_runs (run INTEGER NOT NULL, user_id TEXT NOT NULL,"                     \
    " created_at INTEGER NOT NULL, notification_id TEXT NOT NULL,"                             \
    " PRIMARY KEY (run, user_id, created_at, notification_id)) WITHOUT ROWID;"

/* block_keys(keys, user): the user's keys in a block of user_chunks. */
static void block_keys_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    assert_int_equal(argc, 2);
    int n = sq_block_count_user(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]),
                                (const char *)sqlite3_value_text(argv[1]));
    assert_true(n >= 0);
    sqlite3_result_int(cx, n);
}

static sqlite3 *db_open_raw(const char *dsn)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_create_function(db, "block_keys", 2, SQLITE_UTF8, NULL, block_keys_fn,
                                             NULL, NULL),
                     SQLITE_OK);
    return db;
}

/* The .sql files are compiled in whole and say which version they are. */
static void test_schema_embedded(void **state)
{
    fx_t *f = *state;
    char mark[64];
    snprintf(mark, sizeof(mark), "-- schema_version: %d\n", STORE_SCHEMA_VERSION);
    assert_non_null(strstr(store_schema_sqlite, mark));
    assert_non_null(strstr(store_schema_sqlite, "CREATE TABLE IF NOT EXISTS status_log"));
    assert_non_null(strstr(store_schema_sqlite_indexes, "CREATE INDEX IF NOT EXISTS status_log_key"));
    snprintf(mark, sizeof(mark), "-- schema_version: %d ", STORE_SCHEMA_VERSION);
    assert_non_null(strstr(store_schema_sqlite_events, mark));
    assert_non_null(strstr(store_schema_sqlite_events, "CREATE TABLE IF NOT EXISTS claim_gens"));

    /* the database has every table of the file and records the version */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT version FROM schema_version),"
                                        " (SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                        "  AND name IN ('users', 'devices', 'preferences',"
                                        "  'subscriptions', 'follows', 'templates', 'events',"
                                        "  'status_log', 'user_chunks', 'user_run_list'))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite3_column_int(st, 1), 10);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* SQLite keeps the dedupe claims in a database of their own; claims
 * recorded in the main database by an older herald are moved there on open
 * (into generations: the ones older than the dedupe window are left out). */
static void test_dedupe_moved(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    char *sql = sqlite3_mprintf("INSERT INTO events (event_id, position, first_seen_ms)"
                                " VALUES ('legacy', 'raw-events/2/40', %lld), ('ancient', 'raw-events/2/1', 1)",
                                (long long)hclock_now_ms() - 1000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    claim_t c;
    assert_int_equal(store_event_claim(f->s, "legacy", "raw-events/2/40", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    assert_int_equal(store_event_claim(f->s, "legacy", "raw-events/0/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_DUP);
    assert_int_equal(store_event_claim(f->s, "ancient", "raw-events/2/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW); /* 1970: long past the window */
}

/* A version 1 database (users without webhook_secret, notifications
 * without traceparent) is migrated to the current version at open: its
 * users stay, the column exists and takes a secret. */
static void test_schema_migrated_from_1(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE users DROP COLUMN webhook_secret;"
                                  "DROP INDEX scheduled_user;"
                                  "ALTER TABLE scheduled DROP COLUMN user_id;"
                                  V5_NOTIF_TABLES("")
                                  V6_TEMPLATES "UPDATE schema_version SET version = 1;"
                                  "INSERT INTO users (user_id, email, locale, timezone, updated_at)"
                                  " VALUES ('old', 'old@example.com', 'en', 'UTC', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    user_t u;
    assert_int_equal(store_user_get(f->s, "old", &u), HR_OK);
    assert_string_equal(u.email, "old@example.com");
    assert_null(u.webhook_secret);
    user_clear(&u);
    user_t w = {.user_id = "old", .email = "old@example.com", .webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    assert_int_equal(store_user_put(f->s, &w), HR_OK);
    assert_int_equal(store_user_get(f->s, "old", &u), HR_OK);
    assert_string_equal(u.webhook_secret, w.webhook_secret);
    user_clear(&u);
    /* NULL keeps it, "" removes it */
    w.webhook_secret = NULL;
    assert_int_equal(store_user_put(f->s, &w), HR_OK);
    assert_int_equal(store_user_get(f->s, "old", &u), HR_OK);
    assert_non_null(u.webhook_secret);
    user_clear(&u);
    w.webhook_secret = "";
    assert_int_equal(store_user_put(f->s, &w), HR_OK);
    assert_int_equal(store_user_get(f->s, "old", &u), HR_OK);
    assert_null(u.webhook_secret);
    user_clear(&u);
    /* opening again changes nothing */
    store_close(f->s);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
}

/* A version 2 database (scheduled without user_id) is migrated at
 * open: the receiver of each deferred notification is read from its record,
 * so erasing the user finds it; a record that does not decode keeps NULL. */
static void test_schema_migrated_from_2(void **state)
{
    fx_t *f = *state;
    notif_t m = {.kind = REC_NOTIFICATION, .channel = CH_EMAIL, .status = ST_PENDING,
                 .notification_id = HSTR("d1"), .event_id = HSTR("e1"), .user_id = HSTR("late")};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&m, &b), HR_OK);
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP INDEX scheduled_user;"
                                  "ALTER TABLE scheduled DROP COLUMN user_id;"
                                  V5_NOTIF_TABLES("")
                                  V6_TEMPLATES "UPDATE schema_version SET version = 2;"
                                  "INSERT INTO scheduled VALUES ('junk', 2, 5, x'00');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO scheduled VALUES ('d1', 2, 5, ?1)", -1,
                                        &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, b.data, (int)b.len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    buf_release(&b);

    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT notification_id, user_id FROM scheduled"
                                            " ORDER BY notification_id", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal(sqlite3_column_text(st, 0), "d1");
    assert_string_equal(sqlite3_column_text(st, 1), "late");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal(sqlite3_column_text(st, 0), "junk");
    assert_null(sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
    store_erase_t er;
    assert_int_equal(store_user_erase(f->s, "late", &er), HR_OK);
    assert_int_equal(er.rows, 1);
    sched_row_t *rows = NULL;
    int n = 0;
    assert_int_equal(store_sched_due(f->s, 10, 10, &rows, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].notification_id, "junk");
    store_sched_rows_free(rows, n);
}

/* A status record for the sink (kind REC_STATUS). */
static notif_t status_rec(const char *id, notif_status_t st, const char *traceparent)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_STATUS;
    n.channel = CH_WEBHOOK;
    n.status = st;
    n.attempt = 1;
    n.created_at_ms = 1000;
    n.status_at_ms = 2000;
    n.notification_id = HSTR(id);
    n.event_id = HSTR("e1");
    n.user_id = HSTR("u1");
    n.category = HSTR("default");
    n.title = HSTR("t");
    n.body = HSTR("b");
    n.address = HSTR("https://example.com/h");
    n.quiet_start_min = n.quiet_end_min = NOTIF_QUIET_NONE;
    n.traceparent = HSTR(traceparent);
    return n;
}

/* A version 3 database (notifications without traceparent) is migrated to
 * 4 at open: its rows stay (traceparent NULL), new status records store
 * theirs, a record without one keeps the row's, and a malformed one is not
 * stored. */
static void test_schema_migrated_from_3(void **state)
{
    fx_t *f = *state;
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  V5_NOTIF_TABLES("")
                                  V6_TEMPLATES "UPDATE schema_version SET version = 3;"
                                  "INSERT INTO notifications (notification_id, event_id, user_id,"
                                  " channel, category, title, body, address, status, attempt,"
                                  " created_at, updated_at) VALUES ('old', 'e0', 'u1', 4, 'default',"
                                  " 't', 'b', 'a', 1, 1, 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->s, "old", &row, NULL, NULL), HR_OK);
    assert_null(row.traceparent);
    notif_row_clear(&row);

    notif_t a = status_rec("n1", ST_FAILED, tp);
    const notif_t *recs[] = {&a};
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n1", &row, NULL, NULL), HR_OK);
    assert_string_equal(row.traceparent, tp);
    notif_row_clear(&row);
    /* a later record without one keeps it */
    notif_t b = status_rec("n1", ST_SENT, "");
    recs[0] = &b;
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n1", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.traceparent, tp);
    notif_row_clear(&row);
    /* malformed (a hand-made record): the row is written, without it */
    notif_t c = status_rec("n2", ST_SENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: y");
    recs[0] = &c;
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n2", &row, NULL, NULL), HR_OK);
    assert_null(row.traceparent);
    notif_row_clear(&row);
}

/* A version 5 database (notifications + status_history) is migrated to
 * the status log at open: GET shows the same row and history, the listing
 * the same notifications, "already sent?" the same answer; the old tables
 * are gone; later records fold onto the migrated rows by the rank rule. */
static void test_schema_migrated_from_5(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     V5_NOTIF_TABLES(", traceparent TEXT")
                     V6_TEMPLATES "UPDATE schema_version SET version = 5;"
                     /* a: failed then sent (with the provider's id) */
                     "INSERT INTO notifications (notification_id, event_id, user_id, channel,"
                     " category, title, body, address, status, attempt, channel_msg_id, metadata,"
                     " error, created_at, updated_at, delivered_at, traceparent) VALUES"
                     " ('a', 'e1', 'u1', 0, 'social', 'T', 'B', 'tok', 1, 2, 'msg-1', '{}', NULL,"
                     " 100, 300, 300, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),"
                     " ('b', 'e2', 'u1', 2, 'social', 'T2', 'B2', 'x@y', 3, 1, NULL, NULL,"
                     " 'timeout', 200, 250, NULL, NULL),"
                     " ('c', 'e3', 'u2', 2, 'social', 'T3', 'B3', 'z@y', 0, 1, NULL, NULL, NULL,"
                     " 50, 50, NULL, NULL);"
                     "INSERT INTO status_history VALUES (1, 'a', 3, 1, 200, 'timeout'),"
                     " (2, 'b', 3, 1, 250, 'timeout'), (1, 'a', 1, 2, 300, 'msg-1');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);

    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "a", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_int_equal(row.attempt, 2);
    assert_string_equal(row.event_id, "e1");
    assert_string_equal(row.title, "T");
    assert_string_equal(row.channel_msg_id, "msg-1");
    assert_null(row.error);
    assert_int_equal(row.created_at_ms, 100);
    assert_int_equal(row.updated_at_ms, 300);
    assert_int_equal(row.delivered_at_ms, 300);
    assert_string_equal(row.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal(nh, 2);
    assert_int_equal(h[0].status, ST_FAILED);
    assert_string_equal(h[0].detail, "timeout");
    assert_int_equal(h[1].status, ST_SENT);
    assert_string_equal(h[1].detail, "msg-1");
    notif_row_clear(&row);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_get(f->s, "b", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_FAILED);
    assert_string_equal(row.error, "timeout");
    notif_row_clear(&row);
    /* no history: one row with its state */
    assert_int_equal(store_notif_get(f->s, "c", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_PENDING);
    assert_int_equal(nh, 1);
    notif_row_clear(&row);
    status_hist_free(h, nh);
    bool sent = false;
    assert_int_equal(store_notif_sent(f->s, "a", &sent), HR_OK);
    assert_true(sent);
    assert_int_equal(store_notif_sent(f->s, "b", &sent), HR_OK);
    assert_false(sent);

    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].notification_id, "b"); /* newest first */
    assert_string_equal(rows[1].notification_id, "a");
    notif_rows_free(rows, n);

    /* a late failed record does not move the sent row back */
    notif_t late = status_rec("a", ST_FAILED, "");
    const notif_t *recs[] = {&late};
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "a", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.title, "T"); /* the content stays the first one */
    assert_int_equal(nh, 3);
    notif_row_clear(&row);
    status_hist_free(h, nh);

    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                            " ('notifications', 'status_history')", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* opening again changes nothing */
    store_close(f->s);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 2);
    notif_rows_free(rows, n);
}

/* The per-user listing's runs: every write transaction adds one,
 * SQ_RUN_FANIN runs of a level merge into one of the next; the listing sees every
 * notification once, newest first, across runs and merges and pages; the
 * purge drops the runs it empties. */
/* A version 6 database (templates without a digest) is migrated to 7 at
 * open: its templates stay, without a digest; a digest can be stored then,
 * and the digest tables work. */
static void test_schema_migrated_from_6(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE digests; DROP TABLE digest_members;" V6_TEMPLATES
                                  V7_STATUS_LOG V8_USER_RUNS
                                  "UPDATE schema_version SET version = 6;"
                                  "INSERT INTO templates (event_type, channel, locale, title, body,"
                                  " updated_at) VALUES ('like', 3, 'en', 'T', '{{actor}} liked', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    template_rec_t t;
    assert_int_equal(store_template_get(f->s, "like", CH_INAPP, "en", &t), HR_OK);
    assert_string_equal(t.body, "{{actor}} liked");
    assert_int_equal(t.digest_window_ms, 0);
    assert_null(t.digest_key);
    template_rec_clear(&t);
    template_rec_t d = {.event_type = "like", .channel = CH_INAPP, .locale = "en", .title = "T",
                        .body = "{{digest.count}} likes", .digest_window_ms = 600000,
                        .digest_key = "{{data.post_id}}"};
    assert_int_equal(store_template_put(f->s, &d), HR_OK);
    assert_int_equal(store_template_get(f->s, "like", CH_INAPP, "en", &t), HR_OK);
    assert_int_equal(t.digest_window_ms, 600000);
    assert_string_equal(t.digest_key, "{{data.post_id}}");
    template_rec_clear(&t);
    assert_int_equal(store_digest_add_batch(f->s, 0, NULL, 0), HR_OK); /* the backend keeps digests */
    /* opening again changes nothing */
    store_close(f->s);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    assert_int_equal(store_template_get(f->s, "like", CH_INAPP, "en", &t), HR_OK);
    assert_int_equal(t.digest_window_ms, 600000);
    template_rec_clear(&t);
}

/* A version 7 database (the status log a column per field) is migrated to
 * version 8 at open (a blob per row): GET shows the same row and history
 * (content from the first row, the fold by the rank rule, the message id
 * and error of each entry, metadata and traceparent), the listing the same
 * notifications, "already sent?" the same answers; the old index is gone;
 * later records fold onto the migrated rows. */
static void test_schema_migrated_from_7(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     V7_STATUS_LOG V8_USER_RUNS "UPDATE schema_version SET version = 7;"
                     /* a: pending, failed, sent (provider's id); b: failed; c: no content
                      * row (a later status of a purged notification) */
                     "INSERT INTO status_log (seq, notification_id, status, attempt, at_ms,"
                     " channel_msg_id, error, metadata, traceparent, event_id, user_id, channel,"
                     " category, title, body, address, created_at) VALUES"
                     " (1, 'a', 0, 1, 110, NULL, NULL, '{\"k\":1}',"
                     " '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'e1', 'u1', 0,"
                     " 'social', 'T', 'B', 'tok', 100),"
                     " (2, 'b', 3, 1, 250, NULL, 'timeout', NULL, NULL, 'e2', 'u1', 2, 'social',"
                     " 'T2', '', 'x@y', 200),"
                     " (3, 'a', 3, 1, 200, NULL, 'timeout', NULL, NULL, NULL, NULL, NULL, NULL,"
                     " NULL, NULL, NULL, NULL),"
                     " (4, 'a', 1, 2, 300, 'msg-1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                     " NULL, NULL, NULL),"
                     " (5, 'c', 2, 1, 400, 'msg-9', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                     " NULL, NULL, NULL);"
                     "INSERT INTO user_runs (run, user_id, created_at, notification_id) VALUES"
                     " (1, 'u1', 100, 'a'), (1, 'u1', 200, 'b');"
                     "INSERT INTO user_run_list (run, level, rows, max_created) VALUES (1, 0, 2, 200);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);

    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "a", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_int_equal(row.attempt, 2);
    assert_string_equal(row.event_id, "e1");
    assert_string_equal(row.user_id, "u1");
    assert_int_equal(row.channel, CH_PUSH);
    assert_string_equal(row.category, "social");
    assert_string_equal(row.title, "T");
    assert_string_equal(row.body, "B");
    assert_string_equal(row.address, "tok");
    assert_string_equal(row.channel_msg_id, "msg-1");
    assert_null(row.error);
    assert_int_equal(row.created_at_ms, 100);
    assert_int_equal(row.updated_at_ms, 300);
    assert_int_equal(row.delivered_at_ms, 300);
    assert_string_equal(row.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal(nh, 3);
    assert_int_equal(h[0].status, ST_PENDING);
    assert_int_equal(h[0].at_ms, 110);
    assert_null(h[0].detail);
    assert_int_equal(h[1].status, ST_FAILED);
    assert_string_equal(h[1].detail, "timeout");
    assert_int_equal(h[2].status, ST_SENT);
    assert_int_equal(h[2].attempt, 2);
    assert_string_equal(h[2].detail, "msg-1");
    notif_row_clear(&row);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_get(f->s, "b", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_FAILED);
    assert_int_equal(row.channel, CH_EMAIL);
    assert_string_equal(row.error, "timeout");
    assert_string_equal(row.body, ""); /* empty, not absent */
    assert_null(row.channel_msg_id);
    assert_null(row.traceparent);
    notif_row_clear(&row);
    assert_int_equal(store_notif_get(f->s, "c", &row, NULL, NULL), HR_NOTFOUND);
    bool sent = false;
    assert_int_equal(store_notif_sent(f->s, "a", &sent), HR_OK);
    assert_true(sent);
    assert_int_equal(store_notif_sent(f->s, "b", &sent), HR_OK);
    assert_false(sent);
    assert_int_equal(store_notif_sent(f->s, "c", &sent), HR_OK);
    assert_true(sent); /* as before: any row of a sent status */

    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].notification_id, "b"); /* newest first */
    assert_string_equal(rows[1].notification_id, "a");
    assert_int_equal(rows[1].status, ST_SENT);
    notif_rows_free(rows, n);

    /* a late failed record does not move the sent row back; b takes a sent
     * record with content but keeps its first content */
    notif_t late = status_rec("a", ST_FAILED, "");
    notif_t bs = status_rec("b", ST_SENT, "");
    bs.title = HSTR("other");
    const notif_t *recs[] = {&late, &bs};
    assert_int_equal(store_notif_write_batch(f->s, recs, 2), HR_OK);
    assert_int_equal(store_notif_get(f->s, "a", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.title, "T");
    assert_int_equal(nh, 4);
    notif_row_clear(&row);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_get(f->s, "b", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.title, "T2");
    notif_row_clear(&row);

    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_master WHERE name IN"
                                            " ('status_log_id', 'status_log_v7')),"
                                            " (SELECT count(*) FROM sqlite_master WHERE name ="
                                            " 'status_log_key'), (SELECT count(*) FROM status_log)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    assert_int_equal(sqlite3_column_int(st, 2), 7);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* opening again changes nothing */
    store_close(f->s);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_notif_get(f->s, "a", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    notif_row_clear(&row);
}

/* The sink writes a batch in id order (schema version 8): records of one
 * notification keep their arrival order, the content is stored once (the
 * first record with content, in this batch or an earlier one), and a
 * record of an id below the log's largest is probed rather than taken as
 * new. */
static void test_batch_id_order(void **state)
{
    fx_t *f = *state;
    notif_t m5 = status_rec("m5", ST_SENT, "");
    m5.title = HSTR("first");
    const notif_t *one[] = {&m5};
    assert_int_equal(store_notif_write_batch(f->s, one, 1), HR_OK);
    notif_t a = status_rec("m9", ST_PENDING, ""), b = status_rec("m1", ST_PENDING, ""),
            c = status_rec("m9", ST_SENT, ""), d = status_rec("m5", ST_DELIVERED, ""),
            e = status_rec("m1", ST_FAILED, "");
    a.title = HSTR("nine");
    c.title = HSTR("not this");
    d.title = HSTR("nor this");
    e.no_content = true;
    c.status_at_ms = 2001;
    d.status_at_ms = 2002;
    e.status_at_ms = 2003;
    const notif_t *recs[] = {&a, &b, &c, &d, &e};
    assert_int_equal(store_notif_write_batch(f->s, recs, 5), HR_OK);
    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "m9", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.title, "nine");
    assert_int_equal(nh, 2);
    assert_int_equal(h[0].status, ST_PENDING);
    assert_int_equal(h[1].status, ST_SENT);
    notif_row_clear(&row);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_get(f->s, "m5", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_DELIVERED);
    assert_string_equal(row.title, "first");
    assert_int_equal(nh, 2);
    notif_row_clear(&row);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_get(f->s, "m1", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_FAILED);
    assert_int_equal(nh, 2);
    assert_int_equal(h[0].status, ST_PENDING);
    notif_row_clear(&row);
    status_hist_free(h, nh);
    /* a replay of the batch changes what GET shows nowhere */
    assert_int_equal(store_notif_write_batch(f->s, recs, 5), HR_OK);
    assert_int_equal(store_notif_get(f->s, "m9", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_string_equal(row.title, "nine");
    notif_row_clear(&row);

    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(content) FROM status_log", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 11);
    assert_int_equal(sqlite3_column_int(st, 1), 3); /* one content row per notification */
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_user_runs_merge(void **state)
{
    fx_t *f = *state;
    enum { BATCHES = 40, PER = 10 };
    char ids[BATCHES * PER][24];
    notif_t recs[PER];
    const notif_t *ptrs[PER];
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER; i++) {
            int k = b * PER + i;
            snprintf(ids[k], sizeof(ids[k]), "r%04d", k);
            recs[i] = status_rec(ids[k], ST_SENT, "");
            recs[i].user_id = HSTR(i % 2 ? "odd" : "even");
            recs[i].created_at_ms = 1000 + k;
            recs[i].status_at_ms = 1000 + k;
            ptrs[i] = &recs[i];
        }
        assert_int_equal(store_notif_write_batch(f->s, ptrs, PER), HR_OK);
        /* a second status of the same notifications joins no run */
        for (int i = 0; i < PER; i++) recs[i].status = ST_DELIVERED;
        assert_int_equal(store_notif_write_batch(f->s, ptrs, PER), HR_OK);
    }
    sqlite3 *db = db_open_raw(f->dsn);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT sum(level = 0), sum(level = 1), sum(rows),"
                                            " (SELECT sum(block_keys(keys, 'odd') + block_keys(keys,"
                                            " 'even')) FROM user_chunks) FROM user_run_list",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    /* 40 runs: each SQ_RUN_FANIN of them merged into one of level 1 */
    assert_int_equal(sqlite3_column_int(st, 0), BATCHES % SQ_RUN_FANIN);
    assert_int_equal(sqlite3_column_int(st, 1), BATCHES / SQ_RUN_FANIN);
    assert_int_equal(sqlite3_column_int(st, 2), BATCHES * PER);
    assert_int_equal(sqlite3_column_int(st, 3), BATCHES * PER);
    sqlite3_finalize(st);

    /* page through "odd": 200 notifications, newest first, each once */
    int seen = 0, expect = BATCHES * PER - 1;
    char *cursor = NULL;
    do {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(f->s, "odd", cursor, 7, &rows, &n, &next), HR_OK);
        for (int i = 0; i < n; i++, expect -= 2) {
            assert_string_equal(rows[i].notification_id, ids[expect]);
            assert_int_equal(rows[i].status, ST_DELIVERED);
            seen++;
        }
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
    } while (cursor);
    assert_int_equal(seen, BATCHES * PER / 2);

    /* retention: what is older goes, from the log and the runs */
    int64_t deleted = 0;
    assert_int_equal(store_notif_purge(f->s, 1000 + BATCHES * PER, &deleted), HR_OK);
    assert_int_equal(deleted, BATCHES * PER);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM user_chunks),"
                                            " (SELECT count(*) FROM user_run_list),"
                                            " (SELECT count(*) FROM status_log)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    assert_int_equal(sqlite3_column_int(st, 2), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(f->s, "odd", NULL, 7, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 0);
}

/* Counts of (runs listed, runs with blocks) of the per-user runs. */
static void run_counts(const char *dsn, int *listed, int *with_blocks)
{
    sqlite3 *db = db_open_raw(dsn);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM user_run_list),"
                                            " (SELECT count(DISTINCT run) FROM user_chunks)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *listed = sqlite3_column_int(st, 0);
    *with_blocks = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Pages through a user's listing: how many, each once, newest first. */
static int listed_once(store_t *s, const char *user)
{
    int seen = 0;
    char *cursor = NULL, prev[64] = "";
    do {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(s, user, cursor, 500, &rows, &n, &next), HR_OK);
        for (int i = 0; i < n; i++, seen++) {
            if (prev[0]) assert_true(strcmp(rows[i].notification_id, prev) < 0);
            snprintf(prev, sizeof(prev), "%s", rows[i].notification_id);
        }
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
    } while (cursor);
    return seen;
}

/* A merge larger than what a batch may merge (sq_runs_merge's budget)
 * goes on across batches: meanwhile the listing sees every notification
 * once; an erase in the middle abandons it, so the erased user's keys do
 * not come back with its output; and the blocks of a merge a crash cut
 * short are gone after the next open. */
static void test_user_runs_merge_in_slices(void **state)
{
    fx_t *f = *state;
    /* a full level of 32,000 keys > the budget, 16,384 + 4 x PER (24,384 with
     * a fan-in of 16, 20,384 with 32); after the erase 24,000 + PER keys are
     * left, more than one batch's budget and less than two */
    enum { BATCHES = SQ_RUN_FANIN, PER = 32000 / SQ_RUN_FANIN, USERS = 4 };
    static char ids[(BATCHES + 3) * PER][24];
    notif_t *recs = calloc(PER, sizeof(*recs));
    const notif_t **ptrs = calloc(PER, sizeof(*ptrs));
    static const char *const users[USERS] = {"u0", "u1", "u2", "u3"};
    for (int u = 0; u < USERS; u++) {
        user_t rec = {.user_id = (char *)users[u], .locale = "en", .timezone = "UTC"};
        assert_int_equal(store_user_put(f->s, &rec), HR_OK);
    }
    int k = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER; i++, k++) {
            snprintf(ids[k], sizeof(ids[k]), "m%06d", k);
            recs[i] = status_rec(ids[k], ST_SENT, "");
            recs[i].user_id = HSTR(users[k % USERS]);
            recs[i].created_at_ms = recs[i].status_at_ms = 1000 + k;
            ptrs[i] = &recs[i];
        }
        assert_int_equal(store_notif_write_batch(f->s, ptrs, PER), HR_OK);
    }
    /* the last batch filled level 0 and began its merge and could not end
     * it: its output has blocks and no list row, the inputs are still listed */
    int listed, with_blocks;
    run_counts(f->dsn, &listed, &with_blocks);
    assert_int_equal(listed, BATCHES);
    assert_int_equal(with_blocks, BATCHES + 1);
    for (int u = 0; u < USERS; u++) assert_int_equal(listed_once(f->s, users[u]), BATCHES * PER / USERS);

    /* an erase in the middle: the merge is abandoned, its blocks go */
    store_erase_t er;
    memset(&er, 0, sizeof(er));
    assert_int_equal(store_user_erase(f->s, "u2", &er), HR_OK);
    run_counts(f->dsn, &listed, &with_blocks);
    assert_int_equal(listed, BATCHES);
    assert_int_equal(with_blocks, BATCHES);
    assert_int_equal(listed_once(f->s, "u2"), 0);

    /* more batches: the merge starts again and ends */
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < PER; i++, k++) {
            snprintf(ids[k], sizeof(ids[k]), "m%06d", k);
            recs[i] = status_rec(ids[k], ST_SENT, "");
            recs[i].user_id = HSTR(users[k % 2]); /* u0 and u1 only */
            recs[i].created_at_ms = recs[i].status_at_ms = 1000 + k;
            ptrs[i] = &recs[i];
        }
        assert_int_equal(store_notif_write_batch(f->s, ptrs, PER), HR_OK);
    }
    run_counts(f->dsn, &listed, &with_blocks);
    /* the merge that began again after the next batch took the
     * SQ_RUN_FANIN + 1 runs of level 0 and ended after the one after it:
     * its run (level 1) and the last two batches' */
    assert_int_equal(listed, 3);
    assert_int_equal(with_blocks, 3);
    assert_int_equal(listed_once(f->s, "u0"), BATCHES * PER / USERS + 3 * PER / 2);
    assert_int_equal(listed_once(f->s, "u1"), BATCHES * PER / USERS + 3 * PER / 2);
    assert_int_equal(listed_once(f->s, "u2"), 0);
    assert_int_equal(listed_once(f->s, "u3"), BATCHES * PER / USERS);

    /* blocks of a run no list row names (a merge cut short) go at open */
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = db_open_raw(f->dsn);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO user_chunks (run, last_user, pos, keys)"
                                      " SELECT 1000000, last_user, pos, keys FROM user_chunks"
                                      " WHERE run = (SELECT min(run) FROM user_chunks)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    run_counts(f->dsn, &listed, &with_blocks);
    assert_int_equal(with_blocks, listed + 1);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    run_counts(f->dsn, &listed, &with_blocks);
    assert_int_equal(with_blocks, listed);
    assert_int_equal(listed_once(f->s, "u3"), BATCHES * PER / USERS);
    free(recs);
    free(ptrs);
}

/* A version 8 database (the per-user runs a row per key in user_runs) is
 * migrated to version 9 at open (blocks of keys in user_chunks, the same
 * run numbers): the listings show the same notifications in the same
 * order (a key in two runs once), GET and "already sent?" the same, the
 * runs go on being written and merged, and erasure takes the migrated
 * keys; user_runs is gone. */
static void test_schema_migrated_from_8(void **state)
{
    fx_t *f = *state;
    /* 70 notifications of u1 and u2 (created 1000 + k), ids in hex as the
     * pipeline makes them, and one id that is not */
    enum { N = 70 };
    char ids[N][40];
    for (int k = 0; k < N; k++) {
        if (k == 5) snprintf(ids[k], sizeof(ids[k]), "Not-Hex-%d", k);
        else snprintf(ids[k], sizeof(ids[k]), "%032x", 0x1000 + k);
        notif_t m = status_rec(ids[k], k % 3 ? ST_SENT : ST_FAILED, "");
        m.user_id = HSTR(k % 2 ? "u2" : "u1");
        m.created_at_ms = 1000 + k;
        const notif_t *one[] = {&m};
        assert_int_equal(store_notif_write_batch(f->s, one, 1), HR_OK);
    }
    store_close(f->s);
    f->s = NULL;
    /* the same keys as version 8 kept them: two runs (levels 0 and 1), one
     * key in both */
    sqlite3 *db = db_open_raw(f->dsn);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM user_chunks; DELETE FROM user_run_list;"
                                      V8_USER_RUNS "UPDATE schema_version SET version = 8;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO user_runs (run, user_id, created_at,"
                                            " notification_id) VALUES (?1, ?2, ?3, ?4)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int k = 0; k < N; k++) {
        for (int twice = 0; twice < (k == 40 ? 2 : 1); twice++) {
            sqlite3_bind_int(st, 1, k < 40 || (k == 40 && !twice) ? 3 : 7);
            sqlite3_bind_text(st, 2, k % 2 ? "u2" : "u1", -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 3, 1000 + k);
            sqlite3_bind_text(st, 4, ids[k], -1, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(st), SQLITE_DONE);
            sqlite3_reset(st);
        }
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO user_run_list (run, level, rows, max_created)"
                                      " VALUES (3, 1, 40, 1039), (7, 0, 31, 1069)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    /* u1's listing, newest first, in pages of 4 */
    int expect = N - 2, seen = 0;
    char *cursor = NULL;
    do {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(f->s, "u1", cursor, 4, &rows, &n, &next), HR_OK);
        for (int i = 0; i < n; i++, expect -= 2, seen++) {
            assert_string_equal(rows[i].notification_id, ids[expect]);
            assert_int_equal(rows[i].created_at_ms, 1000 + expect);
            assert_int_equal(rows[i].status, expect % 3 ? ST_SENT : ST_FAILED);
        }
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
    } while (cursor);
    assert_int_equal(seen, N / 2);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->s, ids[5], &row, NULL, NULL), HR_OK);
    assert_string_equal(row.user_id, "u2");
    notif_row_clear(&row);
    bool sent = true;
    assert_int_equal(store_notif_sent(f->s, ids[3], &sent), HR_OK);
    assert_false(sent);
    assert_int_equal(store_notif_sent(f->s, ids[4], &sent), HR_OK);
    assert_true(sent);

    db = db_open_raw(f->dsn);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_master WHERE name ="
                                            " 'user_runs'), (SELECT sum(block_keys(keys, 'u1'))"
                                            " FROM user_chunks), (SELECT sum(block_keys(keys, 'u2'))"
                                            " FROM user_chunks), (SELECT count(*) FROM user_chunks"
                                            " WHERE run NOT IN (3, 7))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    assert_int_equal(sqlite3_column_int(st, 1), N / 2 + 1); /* key 40 in both runs */
    assert_int_equal(sqlite3_column_int(st, 2), N / 2);
    assert_int_equal(sqlite3_column_int(st, 3), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* a new notification joins a new run, above the migrated ones */
    notif_t m = status_rec("ffffffffffffffffffffffffffffffff", ST_SENT, "");
    m.user_id = HSTR("u1");
    m.created_at_ms = 5000;
    const notif_t *one[] = {&m};
    assert_int_equal(store_notif_write_batch(f->s, one, 1), HR_OK);
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 2, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].notification_id, "ffffffffffffffffffffffffffffffff");
    assert_string_equal(rows[1].notification_id, ids[N - 2]);
    notif_rows_free(rows, n);
    free(next);

    /* erasure finds the migrated keys */
    store_erase_t er = {0};
    assert_int_equal(store_user_erase(f->s, "u2", &er), HR_OK);
    assert_int_equal(er.notifications, N / 2);
    assert_int_equal(store_notif_get(f->s, ids[5], &row, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_list_user(f->s, "u2", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 0);
    notif_rows_free(rows, n);
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 100, &rows, &n, &next), HR_OK);
    assert_int_equal(n, N / 2 + 1);
    notif_rows_free(rows, n);
}

/* What GET shows of a notification (row and history), as one string;
 * "-" when it is not found. */
static void notif_show(store_t *s, const char *id, char *out, size_t cap)
{
    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    if (store_notif_get(s, id, &row, &h, &nh) != HR_OK) {
        snprintf(out, cap, "-");
        return;
    }
    bool sent = false;
    assert_int_equal(store_notif_sent(s, id, &sent), HR_OK);
    int l = snprintf(out, cap, "%s|%s|%s|%d|%s|%s|%s|%d|%d|%s|%s|%lld|%lld|%lld|%d",
                     row.notification_id, row.event_id, row.user_id, (int)row.channel,
                     row.category, row.title, row.address, (int)row.status, row.attempt,
                     row.channel_msg_id ? row.channel_msg_id : "(null)",
                     row.error ? row.error : "(null)", (long long)row.created_at_ms,
                     (long long)row.updated_at_ms, (long long)row.delivered_at_ms, sent);
    for (int i = 0; i < nh && l > 0 && (size_t)l < cap; i++)
        l += snprintf(out + l, cap - (size_t)l, ";%d/%d/%lld/%s", (int)h[i].status, h[i].attempt,
                      (long long)h[i].at_ms, h[i].detail ? h[i].detail : "(null)");
    assert_true(l > 0 && (size_t)l < cap);
    notif_row_clear(&row);
    status_hist_free(h, nh);
}

/* A user's whole listing (ids newest first, in pages of 3), as one string. */
static void list_show(store_t *s, const char *user, char *out, size_t cap)
{
    size_t l = 0;
    char *cursor = NULL;
    out[0] = '\0';
    do {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(s, user, cursor, 3, &rows, &n, &next), HR_OK);
        for (int i = 0; i < n; i++) {
            int w = snprintf(out + l, cap - l, "%s:%d ", rows[i].notification_id, (int)rows[i].status);
            assert_true(w > 0 && (size_t)w < cap - l);
            l += (size_t)w;
        }
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
    } while (cursor);
}

/* A version 9 database (status_log ids as text) is migrated to version 10
 * at open (ids of 32 lowercase hex digits as 16-byte blobs, other ids as
 * text): GET, the history, the listings and "already sent?" read back
 * exactly as before; the sink goes on writing onto the migrated rows
 * (a later record of a migrated notification finds its content), and
 * erasure and retention find the migrated rows. */
static void test_schema_migrated_from_9(void **state)
{
    fx_t *f = *state;
    enum { N = 40 };
    char ids[N][40];
    for (int k = 0; k < N; k++) {
        if (k == 5) snprintf(ids[k], sizeof(ids[k]), "Not-Hex-%d", k);
        else if (k == 6) snprintf(ids[k], sizeof(ids[k]), "%032X", 0xABC00 + k); /* upper case: text */
        else snprintf(ids[k], sizeof(ids[k]), "%016llx%016x", 0x0190000000000000ULL + (unsigned)k * 977,
                      0xbeef00 + k);
        notif_t m = status_rec(ids[k], k % 3 ? ST_SENT : ST_FAILED, "");
        m.user_id = HSTR(k % 2 ? "u2" : "u1");
        m.created_at_ms = 1000 + k;
        m.status_at_ms = 1100 + k;
        if (k % 3 == 0) m.error = HSTR("provider said 503");
        notif_t d = status_rec(ids[k], ST_DELIVERED, "");
        d.status_at_ms = 1500 + k;
        d.channel_msg_id = HSTR("msg-x");
        d.no_content = true;
        const notif_t *two[] = {&m, &d};
        assert_int_equal(store_notif_write_batch(f->s, two, k % 4 == 1 ? 2 : 1), HR_OK);
    }
    static char before[N][512], after[512], lists[2][4096], list_after[4096];
    for (int k = 0; k < N; k++) {
        notif_show(f->s, ids[k], before[k], sizeof(before[k]));
        assert_string_not_equal(before[k], "-");
    }
    list_show(f->s, "u1", lists[0], sizeof(lists[0]));
    list_show(f->s, "u2", lists[1], sizeof(lists[1]));
    store_close(f->s);
    f->s = NULL;

    /* the status log as version 9 kept it: ids as text */
    sqlite3 *db = db_open_raw(f->dsn);
    assert_int_equal(
        sqlite3_exec(db,
                     "DROP INDEX status_log_key; ALTER TABLE status_log RENAME TO s10;"
                     "CREATE TABLE status_log (seq INTEGER PRIMARY KEY, notification_id TEXT NOT NULL,"
                     " status INTEGER NOT NULL, content INTEGER NOT NULL, rec BLOB NOT NULL);"
                     "INSERT INTO status_log SELECT seq, CASE WHEN typeof(notification_id) = 'blob'"
                     " THEN lower(hex(notification_id)) ELSE notification_id END, status, content, rec"
                     " FROM s10 ORDER BY seq;"
                     "DROP TABLE s10;"
                     "CREATE INDEX status_log_key ON status_log (notification_id, status, content);"
                     "UPDATE schema_version SET version = 9;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM status_log WHERE typeof(notification_id)"
                                            " = 'blob'", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    for (int k = 0; k < N; k++) {
        notif_show(f->s, ids[k], after, sizeof(after));
        assert_string_equal(after, before[k]);
    }
    list_show(f->s, "u1", list_after, sizeof(list_after));
    assert_string_equal(list_after, lists[0]);
    list_show(f->s, "u2", list_after, sizeof(list_after));
    assert_string_equal(list_after, lists[1]);
    const char raw[] = "Not-Hex-5";
    hstr_t batch[3] = {HSTR(ids[4]), {raw, 9}, HSTR(ids[3])};
    bool sent[3] = {false, false, true};
    assert_int_equal(store_notif_sent_batch(f->s, batch, 3, sent), HR_OK);
    assert_true(sent[0]);  /* 4: sent */
    assert_true(sent[1]);  /* 5: sent, then delivered */
    assert_false(sent[2]); /* 3: failed */

    /* the ids as stored: blobs of 16 bytes but for the two text ones; the
     * index is back, the old table gone */
    db = db_open_raw(f->dsn);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM status_log WHERE"
                                            " typeof(notification_id) = 'blob' AND"
                                            " length(notification_id) = 16),"
                                            " (SELECT group_concat(notification_id, ',') FROM (SELECT"
                                            " DISTINCT notification_id FROM status_log WHERE"
                                            " typeof(notification_id) = 'text' ORDER BY 1)),"
                                            " (SELECT count(*) FROM sqlite_master WHERE name ="
                                            " 'status_log_key'),"
                                            " (SELECT count(*) FROM sqlite_master WHERE name ="
                                            " 's10' OR name = 'status_log_v9'),"
                                            " (SELECT count(*) FROM status_log)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int rows_before = sqlite3_column_int(st, 4);
    assert_int_equal(rows_before, N + N / 4); /* a second row for k % 4 == 1 */
    int text_rows = 2 + (5 % 4 == 1) + (6 % 4 == 1);
    assert_int_equal(sqlite3_column_int(st, 0), rows_before - text_rows);
    char want[80];
    snprintf(want, sizeof(want), "%s,%s", ids[6], ids[5]); /* BINARY order: digits first */
    assert_string_equal((const char *)sqlite3_column_text(st, 1), want);
    assert_int_equal(sqlite3_column_int(st, 2), 1);
    assert_int_equal(sqlite3_column_int(st, 3), 0);
    sqlite3_finalize(st);

    /* the sink goes on: a later record (with content) of a migrated
     * notification folds onto it and stores no second content; a new
     * notification is stored as a blob */
    notif_t late = status_rec(ids[2], ST_DELIVERED, "");
    late.user_id = HSTR("u1");
    late.status_at_ms = 3000;
    late.title = HSTR("other");
    notif_t fresh = status_rec("01900000000000ffffffffffffffffff", ST_SENT, "");
    fresh.user_id = HSTR("u1");
    fresh.created_at_ms = 5000;
    const notif_t *recs[] = {&late, &fresh};
    assert_int_equal(store_notif_write_batch(f->s, recs, 2), HR_OK);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->s, ids[2], &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_DELIVERED);
    assert_string_equal(row.title, "t");
    notif_row_clear(&row);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(content) FROM status_log WHERE"
                                            " notification_id = ?1", -1, &st, NULL),
                     SQLITE_OK);
    unsigned char bin[16];
    for (int j = 0; j < 16; j++) {
        unsigned v = 0;
        assert_int_equal(sscanf(ids[2] + 2 * j, "%2x", &v), 1);
        bin[j] = (unsigned char)v;
    }
    sqlite3_bind_blob(st, 1, bin, 16, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    list_show(f->s, "u1", list_after, sizeof(list_after));
    assert_true(strncmp(list_after, "01900000000000ffffffffffffffffff:1 ", 35) == 0);

    /* erasure finds the migrated rows: u2's notifications go with them */
    store_erase_t er = {0};
    assert_int_equal(store_user_erase(f->s, "u2", &er), HR_OK);
    assert_int_equal(er.notifications, N / 2);
    for (int k = 1; k < N; k += 2) {
        notif_show(f->s, ids[k], after, sizeof(after));
        assert_string_equal(after, "-");
    }
    /* retention finds the rest (created before 2000; the new one stays) */
    int64_t deleted = 0;
    assert_int_equal(store_notif_purge(f->s, 2000, &deleted), HR_OK);
    assert_int_equal(deleted, N / 2);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM status_log", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    notif_show(f->s, "01900000000000ffffffffffffffffff", after, sizeof(after));
    assert_true(strncmp(after, "01900000000000ffffffffffffffffff|e1|u1|", 39) == 0);
}

/* Writes count statuses (status st, with content) of the ids
 * "<prefix><k>" for k in [from, from + count), in batches of up to 8192. */
static void hex_statuses(store_t *s, unsigned prefix, int from, int count, notif_status_t st)
{
    enum { B = 8192 };
    static char ids[B][33];
    static notif_t recs[B];
    static const notif_t *ptrs[B];
    for (int done = 0; done < count;) {
        int n = count - done < B ? count - done : B;
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%08x%024x", prefix, (unsigned)(from + done + i));
            recs[i] = status_rec(ids[i], st, "");
            ptrs[i] = &recs[i];
        }
        assert_int_equal(store_notif_write_batch(s, ptrs, n), HR_OK);
        done += n;
    }
}

/* rows, content rows and distinct ids of the status log */
static void log_counts(const char *dsn, int *rows, int *content, int *ids)
{
    sqlite3 *db = db_open_raw(dsn);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(content), count(DISTINCT notification_id)"
                                            " FROM status_log", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *rows = sqlite3_column_int(st, 0);
    *content = sqlite3_column_int(st, 1);
    *ids = sqlite3_column_int(st, 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The sink skips the "has content?" probe for ids it knows are new (ids
 * below the log's largest, not stored lately): a notification's content
 * is still stored once, whether its later statuses come in the same
 * process (remembered, or forgotten once the memory is full) or after a
 * reopen, and every notification reads back. */
static void test_sink_new_ids_below_max(void **state)
{
    fx_t *f = *state;
    int rows, content, ids;
    hex_statuses(f->s, 0x300, 0, 100, ST_SENT);       /* the log's largest ids */
    hex_statuses(f->s, 0x200, 0, 100, ST_SENT);       /* below them, new: content */
    hex_statuses(f->s, 0x200, 0, 100, ST_DELIVERED);  /* again with content: not stored */
    log_counts(f->dsn, &rows, &content, &ids);
    assert_int_equal(rows, 300);
    assert_int_equal(content, 200);
    assert_int_equal(ids, 200);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->s, "00000200000000000000000000000007", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_DELIVERED);
    assert_string_equal(row.title, "t");
    notif_row_clear(&row);

    /* another process: what the last one stored is below its floor */
    fx_reopen(f);
    hex_statuses(f->s, 0x300, 0, 100, ST_DELIVERED);
    hex_statuses(f->s, 0x250, 0, 10, ST_SENT); /* new */
    log_counts(f->dsn, &rows, &content, &ids);
    assert_int_equal(rows, 410);
    assert_int_equal(content, 210);
    assert_int_equal(ids, 210);

    /* more new ids than the memory holds: the oldest are forgotten (and
     * probed again), the newest remembered; both keep one content row */
    enum { MANY = 210000 };
    hex_statuses(f->s, 0x400, 0, MANY, ST_SENT);
    hex_statuses(f->s, 0x400, 0, 10, ST_DELIVERED);
    hex_statuses(f->s, 0x400, MANY - 10, 10, ST_DELIVERED);
    hex_statuses(f->s, 0x380, 0, 10, ST_SENT); /* new, below the floor now */
    log_counts(f->dsn, &rows, &content, &ids);
    assert_int_equal(rows, 410 + MANY + 20 + 10);
    assert_int_equal(content, 210 + MANY + 10);
    assert_int_equal(ids, 210 + MANY + 10);
    char id[33];
    snprintf(id, sizeof(id), "%08x%024x", 0x400u, (unsigned)(MANY - 1));
    assert_int_equal(store_notif_get(f->s, id, &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_DELIVERED);
    notif_row_clear(&row);
    assert_int_equal(store_notif_get(f->s, "00000380000000000000000000000003", &row, NULL, NULL), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    notif_row_clear(&row);
}

/* One run holding users that share their first 8 bytes or are shorter
 * than 8 (the run's sort compares an 8-byte prefix first): each user's
 * listing has exactly its own notifications, newest first. */
static void test_run_users_prefix(void **state)
{
    fx_t *f = *state;
    static const char *const users[] = {"abcdefgh-2", "abcdefgh", "abcdefgh-10", "abc", "abcdefgi",
                                        "", "abcdefgh-1"};
    enum { NU = 7, PER = 5 };
    notif_t recs[NU * PER];
    const notif_t *ptrs[NU * PER];
    char ids[NU * PER][40];
    for (int i = 0; i < NU * PER; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%032x", 0x5000 + (i * 7919) % (NU * PER));
        recs[i] = status_rec(ids[i], ST_SENT, "");
        recs[i].user_id = HSTR(users[i % NU]);
        recs[i].created_at_ms = 1000 + (i * 7919) % (NU * PER);
        ptrs[i] = &recs[i];
    }
    assert_int_equal(store_notif_write_batch(f->s, ptrs, NU * PER), HR_OK);
    for (int u = 0; u < NU; u++) {
        if (!users[u][0]) continue; /* an empty user is not listed by the API */
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(f->s, users[u], NULL, 100, &rows, &n, &next), HR_OK);
        assert_int_equal(n, PER);
        for (int i = 0; i < n; i++) {
            assert_string_equal(rows[i].user_id, users[u]);
            if (i) assert_true(rows[i].created_at_ms < rows[i - 1].created_at_ms);
        }
        notif_rows_free(rows, n);
    }
}

/* store.c's fallbacks: the same answers with the optional ops missing. */
static void test_fallbacks(void **state)
{
    fx_t *f = *state;
    store_ops_t bare = *f->s->ops;
    bare.user_put_batch = NULL;
    bare.users_get_batch = NULL;
    bare.users_scan = NULL;
    bare.event_claim_batch = NULL;
    bare.notif_sent_batch = NULL;
    const store_ops_t *orig = f->s->ops;
    f->s->ops = &bare;

    user_t us[2] = {{.user_id = "u1", .locale = "fr"}, {.user_id = "u2"}};
    assert_int_equal(store_user_put_batch(f->s, us, 2), HR_OK);
    pref_t pr[] = {{"", CH_SMS, false}};
    assert_int_equal(store_prefs_replace(f->s, "u2", pr, 1), HR_OK);
    const char *ids[] = {"u2", "nobody", "", "u1"};
    user_t out[4];
    hr_t found[4];
    pref_t *prefs[4];
    int nprefs[4];
    assert_int_equal(store_users_get_batch(f->s, ids, 4, out, found, prefs, nprefs), HR_OK);
    assert_int_equal(found[0], HR_OK);
    assert_int_equal(nprefs[0], 1);
    assert_int_equal(found[1], HR_NOTFOUND);
    assert_int_equal(found[2], HR_NOTFOUND);
    assert_int_equal(found[3], HR_OK);
    assert_string_equal(out[3].locale, "fr");
    for (int i = 0; i < 4; i++) {
        store_user_clear(&out[i]);
        store_prefs_free(prefs[i], nprefs[i]);
    }
    int n = -1;
    assert_int_equal(store_users_scan(f->s, NULL, 4, out, prefs, nprefs, &n), HR_DECLINED);
    assert_int_equal(n, 0);

    const char *ev[] = {"e1", "e2", "e1"};
    const char *pos[] = {"p1", "p2", "p3"};
    claim_t c[3];
    assert_int_equal(store_event_claim_batch(f->s, ev, pos, 3, c), HR_OK);
    assert_int_equal(c[0], CLAIM_NEW);
    assert_int_equal(c[1], CLAIM_NEW);
    assert_int_equal(c[2], CLAIM_DUP);

    notif_t m = {.kind = REC_STATUS, .channel = CH_PUSH, .status = ST_SENT, .attempt = 1,
                 .notification_id = HSTR("n1"), .event_id = HSTR("e1"), .user_id = HSTR("u1")};
    const notif_t *mp = &m;
    assert_int_equal(store_notif_write_batch(f->s, &mp, 1), HR_OK);
    const char raw[] = "n1n2";
    hstr_t nids[2] = {{raw, 2}, {raw + 2, 2}};
    bool sent[2] = {false, true};
    assert_int_equal(store_notif_sent_batch(f->s, nids, 2, sent), HR_OK);
    assert_true(sent[0]);
    assert_false(sent[1]);
    f->s->ops = orig;
}

/* Status records without the content (the compact 'S' form of a later
 * status): the content stays the one of the notification's first row, the
 * notification is listed once, and a record without content that arrives
 * before any content (out of order) does not keep the content from being
 * stored when it comes. */
static void test_status_without_content(void **state)
{
    fx_t *f = *state;
    notif_t first = status_rec("n-slim", ST_FAILED, "");
    first.error = HSTR("provider said 503");
    notif_t later = status_rec("n-slim", ST_SENT, "");
    later.attempt = 2;
    later.status_at_ms = 3000;
    later.channel_msg_id = HSTR("m-9");
    later.event_id = later.category = later.title = later.body = later.address = (hstr_t){NULL, 0};
    later.no_content = true;
    const notif_t *recs[] = {&first, &later};
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_write_batch(f->s, recs + 1, 1), HR_OK);
    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "n-slim", &row, &h, &nh), HR_OK);
    assert_int_equal(row.status, ST_SENT);
    assert_int_equal(row.attempt, 2);
    assert_string_equal(row.event_id, "e1");
    assert_string_equal(row.title, "t");
    assert_string_equal(row.body, "b");
    assert_string_equal(row.channel_msg_id, "m-9");
    assert_int_equal(row.created_at_ms, 1000);
    assert_int_equal(nh, 2);
    assert_string_equal(h[0].detail, "provider said 503");
    assert_string_equal(h[1].detail, "m-9");
    status_hist_free(h, nh);
    notif_row_clear(&row);
    bool sent = false;
    assert_int_equal(store_notif_sent(f->s, "n-slim", &sent), HR_OK);
    assert_true(sent);
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 1);
    notif_rows_free(rows, n);
    free(next);

    /* out of order: the record without content first */
    notif_t early = later;
    early.notification_id = HSTR("n-slim2");
    notif_t content = status_rec("n-slim2", ST_FAILED, "");
    recs[0] = &early;
    recs[1] = &content;
    assert_int_equal(store_notif_write_batch(f->s, recs, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n-slim2", &row, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_write_batch(f->s, recs + 1, 1), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n-slim2", &row, NULL, NULL), HR_OK);
    assert_string_equal(row.title, "t");
    assert_int_equal(row.status, ST_SENT); /* the rank rule: failed does not replace sent */
    notif_row_clear(&row);
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 2);
    notif_rows_free(rows, n);
    free(next);
}

/* ---- the change feed across processes (sqlite.sql's change_log) ---- */

typedef struct seen_ids {
    int x1, x2, all;
} seen_ids_t;

static void note_id(void *arg, const char *id)
{
    seen_ids_t *w = arg;
    if (strcmp(id, "x1") == 0) w->x1++;
    if (strcmp(id, "x2") == 0) w->x2++;
}

/* Polls s's feed (the checkpointer thread reads the log every 200 ms) for
 * up to 10 s until what it announced after *epoch names x1 or says
 * "everything" (HR_AGAIN); moves *epoch. */
static seen_ids_t wait_feed(store_t *s, uint64_t *epoch)
{
    seen_ids_t w = {0, 0, 0};
    for (int i = 0; i < 1000 && !w.x1 && !w.all; i++) {
        uint64_t now = *epoch;
        if (store_users_changed(s, *epoch, &now, note_id, &w) == HR_AGAIN) w.all = 1;
        *epoch = now;
        if (!w.x1 && !w.all) usleep(10000);
    }
    return w;
}

/* Another process's changes reach this store's change feed: a second store
 * on the same file (connections of its own, as another herald's) puts a
 * user, then its preferences, then a template; this store's feed names the
 * user after each and its templates epoch moves; its own changes are not
 * announced again from the log. The writer keeps the log bounded, and
 * rows of it gone before this store read them (more than a writer keeps,
 * written at once) announce "everything" (HR_AGAIN). An in-memory database has no
 * such feed. */
static void test_changes_from_another_process(void **state)
{
    fx_t *f = *state;
    assert_true(store_users_feed_exact(f->s));
    store_t *b = NULL;
    assert_int_equal(store_open(f->backend, f->dsn, &b), HR_OK);
    uint64_t e = store_users_epoch(f->s), t0 = store_templates_epoch(f->s);

    user_t u = {.user_id = "x1", .locale = "en", .timezone = "UTC"};
    assert_int_equal(store_user_put(b, &u), HR_OK);
    seen_ids_t w = wait_feed(f->s, &e);
    assert_int_equal(w.all, 0);
    assert_true(w.x1 >= 1);

    pref_t p = {.category = "social", .channel = CH_PUSH, .enabled = false};
    assert_int_equal(store_prefs_replace(b, "x1", &p, 1), HR_OK);
    w = wait_feed(f->s, &e);
    assert_int_equal(w.all, 0);
    assert_true(w.x1 >= 1);

    template_rec_t t = {.event_type = "like", .channel = CH_INAPP, .locale = "en", .title = "T",
                        .body = "B"};
    assert_int_equal(store_template_put(b, &t), HR_OK);
    for (int i = 0; i < 1000 && store_templates_epoch(f->s) == t0; i++) usleep(10000);
    assert_true(store_templates_epoch(f->s) != t0);

    /* this store's own change is announced once, at its commit: the log's
     * reader skips its row (it has read past it once it names the other
     * store's later change) */
    e = store_users_epoch(f->s);
    user_t own = {.user_id = "x2", .locale = "en", .timezone = "UTC"};
    assert_int_equal(store_user_put(f->s, &own), HR_OK);
    assert_int_equal(store_users_epoch(f->s), e + 1);
    e++;
    assert_int_equal(store_user_put(b, &u), HR_OK);
    w = wait_feed(f->s, &e);
    assert_true(w.x1 >= 1);
    assert_int_equal(w.x2, 0);

    /* 67,000 users put at once by the other store: its writer keeps about
     * the last 65,536 rows (dropping older ones every 1,024), so rows this
     * store never read are gone */
    enum { MANY = 67000 };
    user_t *many = calloc(MANY, sizeof(*many));
    char (*mids)[16] = calloc(MANY, sizeof(*mids));
    for (int i = 0; i < MANY; i++) {
        snprintf(mids[i], sizeof(mids[i]), "y%d", i);
        many[i] = (user_t){.user_id = mids[i], .locale = "en", .timezone = "UTC"};
    }
    assert_int_equal(store_user_put_batch(b, many, MANY), HR_OK);
    free(many);
    free(mids);
    store_close(b);
    sqlite3 *db = db_open_raw(f->dsn);
    sqlite3_stmt *cnt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM change_log", -1, &cnt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(cnt), SQLITE_ROW);
    assert_true(sqlite3_column_int(cnt, 0) >= 65536 && sqlite3_column_int(cnt, 0) <= 65536 + 1024);
    sqlite3_finalize(cnt);
    sqlite3_close(db);
    w = wait_feed(f->s, &e);
    assert_int_equal(w.all, 1);

    /* in memory: no other process, no log reader */
    store_t *m = NULL;
    assert_int_equal(store_open(f->backend, ":memory:", &m), HR_OK);
    assert_false(store_users_feed_exact(m));
    store_close(m);
}

int main(void)
{
    unsetenv("HERALD_TEST_STORE"); /* the fixture's default: sqlite */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_schema_embedded),
        T(test_dedupe_moved),
        T(test_schema_migrated_from_1),
        T(test_schema_migrated_from_2),
        T(test_schema_migrated_from_3),
        T(test_schema_migrated_from_5),
        T(test_schema_migrated_from_6),
        T(test_schema_migrated_from_7),
        T(test_schema_migrated_from_8),
        T(test_schema_migrated_from_9),
        T(test_sink_new_ids_below_max),
        T(test_batch_id_order),
        T(test_user_runs_merge),
        T(test_user_runs_merge_in_slices),
        T(test_run_users_prefix),
        T(test_fallbacks),
        T(test_status_without_content),
        T(test_changes_from_another_process),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
