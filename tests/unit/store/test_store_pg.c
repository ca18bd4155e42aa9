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

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- the connection pool ---- */

static store_t *open_with(int pool, bool listen)
{
    store_open_opts_t o = {.check_ms = 0, .pg_pool = pool, .pg_listen = listen};
    store_t *s = NULL;
    assert_int_equal(store_open_with("postgres", dsn(), &o, &s), HR_OK);
    return s;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct blocked {
    store_t *s;
    atomic_int done;
    hr_t r;
} blocked_t;

static void *put_blocked(void *arg)
{
    blocked_t *b = arg;
    user_t u = {.user_id = "locked", .email = "new@example.com"};
    b->r = store_user_put(b->s, &u);
    atomic_store(&b->done, 1);
    return NULL;
}

/* A write stuck behind a row lock (another session holds it) takes one
 * connection of the pool; reads, claims and status writes go on through
 * the others meanwhile. With one connection they would wait for it. */
static void test_pool_not_serialised(void **state)
{
    (void)state;
    empty_db();
    store_t *s = open_with(3, false);
    user_t u = {.user_id = "locked", .email = "old@example.com"};
    assert_int_equal(store_user_put(s, &u), HR_OK);
    user_t v = {.user_id = "free", .email = "free@example.com"};
    assert_int_equal(store_user_put(s, &v), HR_OK);

    PGconn *other = PQconnectdb(dsn());
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    PGresult *res = PQexec(other, "BEGIN; SELECT 1 FROM users WHERE user_id = 'locked' FOR UPDATE");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);

    blocked_t b = {.s = s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, put_blocked, &b), 0);
    /* the put is waiting for the lock: pg_stat_activity shows it */
    int64_t deadline = mono_ms() + 20000;
    while (sql_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 0) {
        assert_true(mono_ms() < deadline);
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&b.done), 0);
    for (int i = 0; i < 20; i++) {
        user_t g;
        assert_int_equal(store_user_get(s, "free", &g), HR_OK);
        assert_string_equal(g.email, "free@example.com");
        user_clear(&g);
        char id[32];
        snprintf(id, sizeof(id), "ev-%d", i);
        claim_t c;
        assert_int_equal(store_event_claim(s, id, "p/1", &c), HR_OK);
        assert_int_equal(c, CLAIM_NEW);
    }
    assert_int_equal(atomic_load(&b.done), 0);
    res = PQexec(other, "COMMIT");
    PQclear(res);
    PQfinish(other);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(b.r, HR_OK);
    user_t g;
    assert_int_equal(store_user_get(s, "locked", &g), HR_OK);
    assert_string_equal(g.email, "new@example.com");
    user_clear(&g);
    store_close(s);
}

enum { PT_THREADS = 8, PT_ROUNDS = 40 };

typedef struct pt {
    store_t *s;
    int id;
    int errors;
} pt_t;

/* Each thread writes its own users, claims its own events and writes its
 * own notifications, reading each back; any mix-up of connections
 * (results of another thread's statement, a transaction left open) shows
 * as a wrong answer. */
static void *pool_worker(void *arg)
{
    pt_t *t = arg;
    for (int i = 0; i < PT_ROUNDS; i++) {
        char uid[32], email[64], ev[32], nid[32];
        snprintf(uid, sizeof(uid), "t%d-u%d", t->id, i);
        snprintf(email, sizeof(email), "%s@example.com", uid);
        snprintf(ev, sizeof(ev), "t%d-e%d", t->id, i);
        snprintf(nid, sizeof(nid), "t%d-n%d", t->id, i);
        user_t u = {.user_id = uid, .email = email};
        if (store_user_put(t->s, &u) != HR_OK) t->errors++;
        user_t g;
        if (store_user_get(t->s, uid, &g) != HR_OK || strcmp(g.email, email) != 0) t->errors++;
        user_clear(&g);
        claim_t c = CLAIM_DUP;
        if (store_event_claim(t->s, ev, "p/1", &c) != HR_OK || c != CLAIM_NEW) t->errors++;
        notif_t n = {.kind = 2, .channel = CH_PUSH, .status = ST_SENT, .attempt = 1,
                     .created_at_ms = 1700000000000 + i, .status_at_ms = 1700000000000 + i,
                     .notification_id = {nid, strlen(nid)}, .event_id = {ev, strlen(ev)},
                     .user_id = {uid, strlen(uid)}};
        const notif_t *pn = &n;
        if (store_notif_write_batch(t->s, &pn, 1) != HR_OK) t->errors++;
        bool sent = false;
        if (store_notif_sent(t->s, nid, &sent) != HR_OK || !sent) t->errors++;
    }
    return NULL;
}

static void test_pool_threads(void **state)
{
    (void)state;
    empty_db();
    store_t *s = open_with(3, false);
    pt_t t[PT_THREADS];
    pthread_t th[PT_THREADS];
    for (int i = 0; i < PT_THREADS; i++) {
        t[i] = (pt_t){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, pool_worker, &t[i]), 0);
    }
    for (int i = 0; i < PT_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].errors, 0);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM users"), PT_THREADS * PT_ROUNDS);
    assert_int_equal(sql_int("SELECT count(*) FROM notifications"), PT_THREADS * PT_ROUNDS);
    store_close(s);
}

/* ---- the change feed across processes (LISTEN/NOTIFY) ---- */

typedef struct seen {
    char ids[8][32];
    int n;
} seen_t;

static void collect(void *arg, const char *user_id)
{
    seen_t *c = arg;
    if (c->n < 8) snprintf(c->ids[c->n++], sizeof(c->ids[0]), "%s", user_id);
}

static bool seen_has(const seen_t *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->ids[i], id) == 0) return true;
    return false;
}

/* Polls a's feed until user_id shows (10 s at most); returns the epoch. */
static uint64_t wait_user(store_t *a, uint64_t since, const char *user_id)
{
    int64_t deadline = mono_ms() + 10000;
    for (;;) {
        seen_t c = {.n = 0};
        uint64_t now = since;
        hr_t r = store_users_changed(a, since, &now, collect, &c);
        assert_int_equal(r, HR_OK);
        if (seen_has(&c, user_id)) return now;
        if (mono_ms() > deadline) fail_msg("%s did not reach the other store's feed", user_id);
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Two stores on one database, as two herald processes: a's feed reports
 * users, preferences and templates b changes (b's writes reach a through
 * NOTIFY), and a write a makes itself is announced once. */
static void test_feed_across_stores(void **state)
{
    (void)state;
    empty_db();
    store_t *a = open_with(2, true);
    store_t *b = open_with(2, false);
    uint64_t e = store_users_epoch(a);

    user_t u = {.user_id = "remote-1", .email = "r@example.com"};
    assert_int_equal(store_user_put(b, &u), HR_OK);
    e = wait_user(a, e, "remote-1");

    pref_t pr = {.category = "", .channel = CH_EMAIL, .enabled = false};
    assert_int_equal(store_prefs_replace(b, "remote-2", &pr, 1), HR_OK);
    e = wait_user(a, e, "remote-2");

    assert_int_equal(store_user_erase(b, "remote-1", NULL), HR_OK);
    e = wait_user(a, e, "remote-1");

    uint64_t t0 = store_templates_epoch(a);
    template_rec_t t = {.event_type = "ev", .channel = CH_PUSH, .locale = "en", .title = "T",
                        .body = "B"};
    assert_int_equal(store_template_put(b, &t), HR_OK);
    int64_t deadline = mono_ms() + 10000;
    while (store_templates_epoch(a) == t0) {
        assert_true(mono_ms() < deadline);
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }

    /* a's own write: announced by store.c once, its NOTIFY skipped. A
     * marker written by b after it shows that a's NOTIFY came through
     * (one connection delivers in commit order) */ 
    uint64_t before = store_users_epoch(a);
    user_t own = {.user_id = "own-1"};
    assert_int_equal(store_user_put(a, &own), HR_OK);
    user_t mark = {.user_id = "marker"};
    assert_int_equal(store_user_put(b, &mark), HR_OK);
    uint64_t after = wait_user(a, before, "marker");
    assert_int_equal(after - before, 2); /* own-1 once, marker once */
    store_close(b);
    store_close(a);
}
/* ---- notifications partitioned by day ---- */

static hr_t write_at(store_t *s, const char *id, notif_status_t st, int64_t created)
{
    notif_t n = {.kind = 2, .channel = CH_PUSH, .status = st, .attempt = 1,
                 .created_at_ms = created, .status_at_ms = created + 10,
                 .notification_id = {id, strlen(id)}, .event_id = HSTR("e"),
                 .user_id = HSTR("u-days")};
    const notif_t *pn = &n;
    return store_notif_write_batch(s, &pn, 1);
}

/* Rows go to the partition of their day (made on demand for any day);
 * retention drops the days before the cut whole and deletes the rows of
 * the day the cut falls in; a late record of a dropped day makes its
 * partition again. */
static void test_partitions_by_day(void **state)
{
    (void)state;
    empty_db();
    store_t *s = open_with(2, false);
    const int64_t day = 86400000, d0 = 19000 * day; /* 2022-01-08 */
    char id[32];
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 5; i++) {
            snprintf(id, sizeof(id), "d%d-%d", d, i);
            assert_int_equal(write_at(s, id, ST_PENDING, d0 + d * day + i * 1000), HR_OK);
        }
    assert_int_equal(sql_int("SELECT count(*) FROM notifications_d19000"), 5);
    assert_int_equal(sql_int("SELECT count(*) FROM notifications_d19002"), 5);
    assert_int_equal(sql_int("SELECT count(*) FROM status_history_d19001"), 5);
    /* cut in the middle of the third day: two days dropped, 2 rows deleted */
    int64_t deleted = 0;
    assert_int_equal(store_notif_purge(s, d0 + 2 * day + 2000, &deleted), HR_OK);
    assert_int_equal(deleted, 12);
    assert_int_equal(sql_int("SELECT count(*) FROM pg_class WHERE relname IN"
                             " ('notifications_d19000', 'notifications_d19001',"
                             " 'status_history_d19000', 'status_history_d19001')"),
                     0);
    assert_int_equal(sql_int("SELECT count(*) FROM notifications"), 3);
    notif_row_t r;
    assert_int_equal(store_notif_get(s, "d0-1", &r, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_get(s, "d2-4", &r, NULL, NULL), HR_OK);
    notif_row_clear(&r);
    /* a late status of a dropped day */
    assert_int_equal(write_at(s, "d0-1", ST_SENT, d0 + 1000), HR_OK);
    assert_int_equal(store_notif_get(s, "d0-1", &r, NULL, NULL), HR_OK);
    assert_int_equal(r.status, ST_SENT);
    notif_row_clear(&r);
    store_close(s);
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
        cmocka_unit_test(test_pool_not_serialised),
        cmocka_unit_test(test_pool_threads),
        cmocka_unit_test(test_feed_across_stores),
        cmocka_unit_test(test_partitions_by_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#else
    return 0;
#endif
}
