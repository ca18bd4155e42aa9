/*
 * test_store_pg.c - what only the PostgreSQL backend promises: the
 * versioned migrations (a version 4 database, the first released layout,
 * is brought to the current version with its rows kept; a newer one is
 * refused). Runs when HERALD_TEST_STORE=postgres (tests/unit/store/
 * postgres.sh starts a server); otherwise it has nothing to test and
 * passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store.h"
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HERALD_HAVE_PG
#include "store/store_pg.h"

#include <libpq-fe.h>

static const char *dsn(void) { return getenv("HERALD_TEST_STORE_DSN"); }

/* Runs sql (several statements) on a connection of its own. */
static void sql(const char *text)
{
    PGconn *c = PQconnectdb(dsn());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, text);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", text, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

/* The value of a one-row, one-column query. */
static long long sql_int(const char *text)
{
    PGconn *c = PQconnectdb(dsn());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, text);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", text, PQerrorMessage(c));
    long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return v;
}

static void empty_db(void)
{
    sql("SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE;"
        " CREATE SCHEMA public");
}

static const store_pg_migration_t *migration(int version)
{
    for (int i = 0; i < store_pg_nmigrations; i++)
        if (store_pg_migrations[i].version == version) return &store_pg_migrations[i];
    fail_msg("no migration to version %d", version);
    return NULL;
}

/* The migrations are listed oldest first, versions strictly increasing,
 * each file stating its version. */
static void test_migration_list(void **state)
{
    (void)state;
    assert_true(store_pg_nmigrations >= 1);
    assert_int_equal(store_pg_migrations[0].version, 4);
    for (int i = 0; i < store_pg_nmigrations; i++) {
        const store_pg_migration_t *m = &store_pg_migrations[i];
        if (i) assert_true(m->version > store_pg_migrations[i - 1].version);
        char tag[64];
        snprintf(tag, sizeof(tag), "-- schema_version: %d\n", m->version);
        if (!strstr(m->sql, tag)) fail_msg("%s does not state its version", m->name);
    }
}

/* A database made by the first released layout (version 4) with a user, a
 * notification and its history opens at the current version with every
 * row still readable through the store. */
static void test_upgrade_from_4(void **state)
{
    (void)state;
    empty_db();
    sql(migration(4)->sql);
    sql("INSERT INTO schema_version (id, version) VALUES (1, 4);"
        "INSERT INTO users (user_id, email, locale, timezone, updated_at)"
        " VALUES ('u-old', 'old@example.com', 'en', 'UTC', 5);"
        "INSERT INTO devices VALUES ('u-old', 0, 'apns', 'tok-old');"
        "INSERT INTO preferences VALUES ('u-old', '', 1, false);"
        "INSERT INTO templates VALUES ('ev', 0, 'en', 'en', 'T', 'B', 1);"
        "INSERT INTO events VALUES ('e-old', 'raw/0/1', 1000);"
        "INSERT INTO notifications (notification_id, event_id, user_id, channel, category, title,"
        " body, address, status, attempt, channel_msg_id, created_at, updated_at, delivered_at)"
        " VALUES ('n-old', 'e-old', 'u-old', 0, 'social', 'T', 'B', 'tok', 1, 1, 'm-1',"
        " 1700000000000, 1700000000500, 1700000000500);"
        "INSERT INTO status_history (notification_id, status, attempt, at_ms, detail) VALUES"
        " ('n-old', 0, 1, 1700000000100, NULL), ('n-old', 1, 1, 1700000000500, 'm-1');");
    store_t *s = NULL;
    assert_int_equal(store_open("postgres", dsn(), &s), HR_OK);
    assert_int_equal(store_schema_version(s), store_pg_schema_version());

    user_t u;
    assert_int_equal(store_user_get(s, "u-old", &u), HR_OK);
    assert_string_equal(u.email, "old@example.com");
    assert_int_equal(u.ndevices, 1);
    assert_string_equal(u.devices[0].token, "tok-old");
    user_clear(&u);
    pref_t *p = NULL;
    int np = 0;
    assert_int_equal(store_prefs_get(s, "u-old", &p, &np), HR_OK);
    assert_int_equal(np, 1);
    prefs_free(p, np);
    claim_t c;
    assert_int_equal(store_event_claim(s, "e-old", "raw/0/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);

    notif_row_t r;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(s, "n-old", &r, &h, &nh), HR_OK);
    assert_int_equal(r.status, ST_SENT);
    assert_string_equal(r.channel_msg_id, "m-1");
    assert_int_equal(r.created_at_ms, 1700000000000);
    assert_int_equal(nh, 2);
    assert_int_equal(h[0].status, ST_PENDING);
    assert_int_equal(h[1].status, ST_SENT);
    notif_row_clear(&r);
    status_hist_free(h, nh);
    bool sent = false;
    assert_int_equal(store_notif_sent(s, "n-old", &sent), HR_OK);
    assert_true(sent);
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(s, "u-old", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 1);
    notif_rows_free(rows, n);
    free(next);
    store_close(s);

    /* opening again changes nothing */
    assert_int_equal(store_open("postgres", dsn(), &s), HR_OK);
    assert_int_equal(store_schema_version(s), store_pg_schema_version());
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM schema_version"), 1);
}

/* A database of a newer herald is refused, and left as it is. */
static void test_newer_refused(void **state)
{
    (void)state;
    empty_db();
    store_t *s = NULL;
    assert_int_equal(store_open("postgres", dsn(), &s), HR_OK);
    store_close(s);
    sql("UPDATE schema_version SET version = 999");
    s = NULL;
    assert_int_equal(store_open("postgres", dsn(), &s), HR_INVALID);
    assert_null(s);
    assert_int_equal(sql_int("SELECT version FROM schema_version"), 999);
}
#endif

int main(void)
{
    const char *b = getenv("HERALD_TEST_STORE");
    if (!b || strcmp(b, "postgres") != 0 || !getenv("HERALD_TEST_STORE_DSN")) {
        printf("test_store_pg: runs with HERALD_TEST_STORE=postgres (tests/unit/store/postgres.sh)\n");
        return 0;
    }
#ifdef HERALD_HAVE_PG
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration_list),
        cmocka_unit_test(test_upgrade_from_4),
        cmocka_unit_test(test_newer_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return 0;
#endif
}
