/*
 * test_store_sqlite.c - what only the SQLite backend promises, beyond the
 * contract of test_store.c: the embedded schema files and their version,
 * and the move of the dedupe table into a database of its own. Always
 * runs against SQLite, whatever HERALD_TEST_STORE says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/schema/schema.h"
#include "store/store.h"
#include "store_fixture.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The .sql files are compiled in whole and say which version they are. */
static void test_schema_embedded(void **state)
{
    fx_t *f = *state;
    char mark[64];
    snprintf(mark, sizeof(mark), "-- schema_version: %d\n", STORE_SCHEMA_VERSION);
    assert_non_null(strstr(store_schema_sqlite, mark));
    assert_non_null(strstr(store_schema_sqlite, "CREATE INDEX IF NOT EXISTS status_history_notif"));
    snprintf(mark, sizeof(mark), "-- schema_version: %d ", STORE_SCHEMA_VERSION);
    assert_non_null(strstr(store_schema_sqlite_events, mark));
    assert_non_null(strstr(store_schema_sqlite_events, "CREATE TABLE IF NOT EXISTS events"));

    /* the database has every table of the file and records the version */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT version FROM schema_version),"
                                        " (SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                        "  AND name IN ('users', 'devices', 'preferences',"
                                        "  'subscriptions', 'follows', 'templates', 'events',"
                                        "  'notifications', 'status_history'))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite3_column_int(st, 1), 9);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* SQLite keeps the dedupe table in a database of its own; claims recorded
 * in the main database by an older herald are moved there on open. */
static void test_dedupe_moved(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO events (event_id, position, first_seen_ms)"
                                      " VALUES ('legacy', 'raw-events/2/40', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
    claim_t c;
    assert_int_equal(store_event_claim(f->s, "legacy", "raw-events/2/40", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    assert_int_equal(store_event_claim(f->s, "legacy", "raw-events/0/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_DUP);
}

int main(void)
{
    unsetenv("HERALD_TEST_STORE"); /* the fixture's default: sqlite */
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_schema_embedded),
        T(test_dedupe_moved),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
