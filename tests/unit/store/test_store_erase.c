/*
 * test_store_erase.c - the user lifecycle in the store: erasure (every
 * table emptied of the user, nothing of another user touched, chunked for
 * large histories, announced on the change feed, status records arriving
 * afterwards dropped), the users page, unfollow, and a user's follows and
 * topics.
 *
 * HERALD_ERASE_N sets the number of notifications of the timed erase
 * (default 5000; 100000 for the figure in docs/internals/store.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store.h"
#include "store/store_sqlite_int.h" /* sq_block_count_user */
#include "store_fixture.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- filling a user's every table ---- */

static notif_t status_rec(const char *id, const char *user, notif_status_t st, int64_t created)
{
    notif_t m = {.kind = REC_STATUS, .channel = CH_EMAIL, .status = st, .attempt = 1,
                 .created_at_ms = created, .status_at_ms = created,
                 .notification_id = HSTR(id), .event_id = HSTR("ev"), .user_id = HSTR(user),
                 .title = HSTR("t"), .body = HSTR("b"), .address = HSTR("a@example.com")};
    return m;
}

static void write_notifs(store_t *s, const char *user, int n, int64_t created)
{
    enum { B = 1000 };
    static char ids[B][64];
    notif_t recs[B];
    const notif_t *ptrs[B];
    for (int done = 0; done < n;) {
        int k = 0;
        for (; k < B && done + k < n; k++) {
            snprintf(ids[k], sizeof(ids[k]), "%s-n%d", user, done + k);
            recs[k] = status_rec(ids[k], user, ST_PENDING, created);
            ptrs[k] = &recs[k];
        }
        assert_int_equal(store_notif_write_batch(s, ptrs, k), HR_OK);
        /* a second status each: history rows too */
        for (int i = 0; i < k; i++) recs[i].status = ST_SENT;
        assert_int_equal(store_notif_write_batch(s, ptrs, k), HR_OK);
        done += k;
    }
}

static void sched_for(store_t *s, const char *id, const char *user)
{
    notif_t m = {.kind = REC_NOTIFICATION, .channel = CH_PUSH, .status = ST_PENDING,
                 .notification_id = HSTR(id), .event_id = HSTR("ev"), .user_id = HSTR(user)};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&m, &b), HR_OK);
    assert_int_equal(store_sched_put(s, id, CH_PUSH, 1000, b.data, b.len), HR_OK);
    buf_release(&b);
}

/* user u with a profile, devices, a secret, preferences, two topics, follows
 * both ways, an invalid address, notifications and a deferred one. */
static void fill_user(store_t *s, const char *u, const char *friend)
{
    char id[64];
    user_t usr = {.user_id = (char *)u, .email = "x@example.com", .phone = "+15550001111",
                  .webhook_url = "https://example.com/h",
                  .webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", .ndevices = 2};
    usr.devices[0] = (device_t){"apns", "tok-a"};
    usr.devices[1] = (device_t){"fcm", "tok-b"};
    assert_int_equal(store_user_put(s, &usr), HR_OK);
    pref_t p[] = {{"", CH_SMS, false}, {"social", CH_PUSH, true}};
    assert_int_equal(store_prefs_replace(s, u, p, 2), HR_OK);
    assert_int_equal(store_sub_add(s, "t1", u, NULL), HR_OK);
    snprintf(id, sizeof(id), "only-%s", u);
    assert_int_equal(store_sub_add(s, id, u, NULL), HR_OK);
    assert_int_equal(store_follow_add(s, u, friend, NULL), HR_OK);      /* u follows friend */
    assert_int_equal(store_follow_add(s, friend, u, NULL), HR_OK);      /* friend follows u */
    snprintf(id, sizeof(id), "fan-of-%s", u);
    assert_int_equal(store_follow_add(s, id, u, NULL), HR_OK);
    snprintf(id, sizeof(id), "dead-%s", u);
    assert_int_equal(store_address_invalidate(s, u, CH_PUSH, id, "gone"), HR_OK);
    write_notifs(s, u, 3, hclock_now_ms() - 1000);
    snprintf(id, sizeof(id), "%s-deferred", u);
    sched_for(s, id, u);
}

/* Rows of user u in every table that holds users, via SQL. */
typedef struct counts {
    long users, devices, prefs, subs, following, followers, invalid, notifs, history, sched;
} counts_t;

static long count1(sqlite3 *db, const char *sql, const char *u)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, u, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* block_keys(keys, user): the user's keys in a block of the per-user runs
 * (schema version 9: user_chunks holds the runs in blocks). */
static void block_keys_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    assert_int_equal(argc, 2);
    int n = sq_block_count_user(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]),
                                (const char *)sqlite3_value_text(argv[1]));
    assert_true(n >= 0);
    sqlite3_result_int(cx, n);
}

static counts_t count_user(const fx_t *f, const char *u)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &db), SQLITE_OK);
    assert_int_equal(sqlite3_create_function(db, "block_keys", 2, SQLITE_UTF8, NULL, block_keys_fn,
                                             NULL, NULL),
                     SQLITE_OK);
    counts_t c = {
        count1(db, "SELECT count(*) FROM users WHERE user_id = ?1", u),
        count1(db, "SELECT count(*) FROM devices WHERE user_id = ?1", u),
        count1(db, "SELECT count(*) FROM preferences WHERE user_id = ?1", u),
        count1(db, "SELECT count(*) FROM subscriptions WHERE user_id = ?1", u),
        count1(db, "SELECT count(*) FROM follows WHERE follower = ?1", u),
        count1(db, "SELECT count(*) FROM follows WHERE actor = ?1", u),
        count1(db, "SELECT count(*) FROM invalid_addresses WHERE user_id = ?1", u),
        count1(db, "SELECT coalesce(sum(block_keys(keys, ?1)), 0) FROM user_chunks", u),
        count1(db, "SELECT count(*) FROM status_log WHERE notification_id LIKE ?1 || '-n%'", u),
        count1(db, "SELECT count(*) FROM scheduled WHERE notification_id LIKE ?1 || '-%'", u),
    };
    sqlite3_close(db);
    return c;
}

static void assert_counts_equal(const counts_t *a, const counts_t *b)
{
    assert_memory_equal(a, b, sizeof(*a));
}

/* ---- tests ---- */

static void test_erase_every_table(void **state)
{
    fx_t *f = *state;
    if (!fx_is_sqlite(f)) skip();
    fill_user(f->s, "victim", "bystander");
    fill_user(f->s, "bystander", "victim");
    counts_t v = count_user(f, "victim"), b0 = count_user(f, "bystander");
    /* every table holds something of each, or the test proves nothing */
    assert_int_equal(v.users, 1);
    assert_int_equal(v.devices, 2);
    assert_int_equal(v.prefs, 2);
    assert_int_equal(v.subs, 2);
    assert_int_equal(v.following, 1);
    assert_int_equal(v.followers, 2);
    assert_int_equal(v.invalid, 1);
    assert_int_equal(v.notifs, 3);
    assert_int_equal(v.history, 6);
    assert_int_equal(v.sched, 1);
    uint64_t e0 = store_users_epoch(f->s);

    store_erase_t st;
    assert_int_equal(store_user_erase(f->s, "victim", &st), HR_OK);
    assert_int_equal(st.notifications, 3);
    /* user 1 + devices 2 + prefs 2 + subs 2 + following 1 + followers 2 + invalid 1 + sched 1 */
    assert_int_equal(st.rows, 12);
    assert_int_equal(st.transactions, 1);

    counts_t zero = {0}, v1 = count_user(f, "victim"), b1 = count_user(f, "bystander");
    assert_counts_equal(&v1, &zero);
    /* the bystander lost only its follow of the victim and its follower */
    b0.following--;
    b0.followers--;
    assert_counts_equal(&b1, &b0);
    user_t u;
    assert_int_equal(store_user_get(f->s, "victim", &u), HR_NOTFOUND);
    assert_int_equal(store_user_get(f->s, "bystander", &u), HR_OK);
    assert_non_null(u.webhook_secret);
    assert_int_equal(u.ndevices, 2);
    user_clear(&u);
    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_subs_page(f->s, "t1", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "bystander");
    ids_free(ids, n);

    /* announced: caches drop the user */
    assert_true(store_users_epoch(f->s) > e0);
    /* nothing left: 404, and nothing changes */
    assert_int_equal(store_user_erase(f->s, "victim", &st), HR_NOTFOUND);
    assert_int_equal(st.notifications + st.rows, 0);
    assert_int_equal(store_user_erase(f->s, "", NULL), HR_INVALID);
    assert_int_equal(store_user_erase(f->s, "never-was", NULL), HR_NOTFOUND);
}

static char seen_id[64];
static void on_changed(void *arg, const char *id)
{
    (void)arg;
    if (strcmp(id, "victim") == 0) snprintf(seen_id, sizeof(seen_id), "%s", id);
}

/* The feed names the erased user; a user with only notifications (no
 * profile) is still erased (204, not 404). */
static void test_erase_feed_and_orphans(void **state)
{
    fx_t *f = *state;
    write_notifs(f->s, "victim", 2, hclock_now_ms() - 1000);
    uint64_t e0 = store_users_epoch(f->s), now = 0;
    store_erase_t st;
    assert_int_equal(store_user_erase(f->s, "victim", &st), HR_OK);
    assert_int_equal(st.notifications, 2);
    assert_int_equal(st.rows, 0);
    seen_id[0] = '\0';
    assert_int_equal(store_users_changed(f->s, e0, &now, on_changed, NULL), HR_OK);
    assert_string_equal(seen_id, "victim");
    notif_row_t *rows = NULL;
    char *next = NULL;
    int n = -1;
    assert_int_equal(store_notif_list_user(f->s, "victim", NULL, 10, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 0);
    notif_rows_free(rows, n);
}

/* Status records of the erased user's old notifications that arrive later
 * (the sink lags) do not bring rows back; once the user is put again, its
 * new notifications are kept; other users are never affected. */
static void test_erase_sink_drops_late_records(void **state)
{
    fx_t *f = *state;
    int64_t t0 = hclock_now_ms();
    fill_user(f->s, "victim", "bystander");
    assert_int_equal(store_user_erase(f->s, "victim", NULL), HR_OK);

    notif_t late = status_rec("victim-late", "victim", ST_SENT, t0 - 5000);
    notif_t other = status_rec("bystander-1", "bystander", ST_SENT, t0 - 5000);
    const notif_t *ptrs[] = {&late, &other};
    assert_int_equal(store_notif_write_batch(f->s, ptrs, 2), HR_OK);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->s, "victim-late", &row, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_get(f->s, "bystander-1", &row, NULL, NULL), HR_OK);
    notif_row_clear(&row);

    /* the user comes back: what is created from then on is kept, older is not */
    user_t u = {.user_id = "victim"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    notif_t fresh = status_rec("victim-fresh", "victim", ST_SENT, hclock_now_ms() + 1);
    notif_t stale = status_rec("victim-stale", "victim", ST_SENT, t0 - 5000);
    const notif_t *p2[] = {&fresh, &stale};
    assert_int_equal(store_notif_write_batch(f->s, p2, 2), HR_OK);
    assert_int_equal(store_notif_get(f->s, "victim-fresh", &row, NULL, NULL), HR_OK);
    notif_row_clear(&row);
    assert_int_equal(store_notif_get(f->s, "victim-stale", &row, NULL, NULL), HR_NOTFOUND);
}

/* A short write waiting for the writer during an erase: how long it waits
 * is how long the erase holds the writer. */
typedef struct prober {
    store_t *s;
    atomic_bool stop;
    int64_t max_ns, total_ns;
    long n;
} prober_t;

static void *probe_main(void *arg)
{
    prober_t *p = arg;
    user_t u = {.user_id = "prober"};
    while (!atomic_load(&p->stop)) {
        int64_t t = hclock_mono_ns();
        if (store_user_put(p->s, &u) != HR_OK) break;
        int64_t d = hclock_mono_ns() - t;
        if (d > p->max_ns) p->max_ns = d;
        p->total_ns += d;
        p->n++;
    }
    return NULL;
}

/* A large history goes in bounded chunks (the writer is released between
 * them) with the user row last; every row still goes. */
static void test_erase_large_chunked(void **state)
{
    fx_t *f = *state;
    if (!fx_is_sqlite(f)) skip();
    const char *env = getenv("HERALD_ERASE_N");
    int n = env && atoi(env) > 3 ? atoi(env) : 5000; /* ids victim-n0.. include fill_user's 3 */
    fill_user(f->s, "victim", "bystander");
    fill_user(f->s, "bystander", "victim");
    write_notifs(f->s, "victim", n, hclock_now_ms() - 1000);
    for (int i = 0; i < 4500; i++) {
        char fan[32];
        snprintf(fan, sizeof(fan), "fan%05d", i);
        assert_int_equal(store_follow_add(f->s, fan, "victim", NULL), HR_OK);
    }
    counts_t b0 = count_user(f, "bystander");

    prober_t p = {.s = f->s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, probe_main, &p), 0);
    int64_t t = hclock_mono_ns();
    store_erase_t st;
    assert_int_equal(store_user_erase(f->s, "victim", &st), HR_OK);
    int64_t took = hclock_mono_ns() - t;
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);

    assert_int_equal(st.notifications, n);
    /* 4500 + 2 followers in chunks of 1000: at least 5 transactions */
    assert_true(st.transactions >= 5);
    assert_true(st.transactions >= n / 1000 + 1);
    counts_t zero = {0}, v1 = count_user(f, "victim"), b1 = count_user(f, "bystander");
    assert_counts_equal(&v1, &zero);
    b0.following--;
    b0.followers--;
    assert_counts_equal(&b1, &b0);
    print_message("erase of %d notifications (+%d history rows, 4502 followers): %.1f ms in %d "
                  "transactions; a concurrent user put waited at most %.1f ms (mean %.2f ms, "
                  "%ld puts)\n",
                  n, 2 * n, (double)took / 1e6, st.transactions,
                  (double)p.max_ns / 1e6, p.n ? (double)p.total_ns / 1e6 / (double)p.n : 0.0, p.n);
}

static void test_users_page(void **state)
{
    fx_t *f = *state;
    const char *ids[] = {"c", "a", "e", "b", "d"};
    for (int i = 0; i < 5; i++) {
        user_t u = {.user_id = (char *)ids[i], .ndevices = 1};
        u.devices[0] = (device_t){"fcm", "tok"};
        assert_int_equal(store_user_put(f->s, &u), HR_OK);
    }
    user_t *us = NULL;
    int n = 0;
    assert_int_equal(store_users_page(f->s, NULL, 2, &us, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(us[0].user_id, "a");
    assert_string_equal(us[1].user_id, "b");
    assert_int_equal(us[1].ndevices, 1);
    assert_string_equal(us[1].devices[0].token, "tok");
    store_users_free(us, n);
    assert_int_equal(store_users_page(f->s, "b", 10, &us, &n), HR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(us[0].user_id, "c");
    assert_string_equal(us[2].user_id, "e");
    store_users_free(us, n);
    assert_int_equal(store_users_page(f->s, "e", 10, &us, &n), HR_OK);
    assert_int_equal(n, 0);
    store_users_free(us, n);
    assert_int_equal(store_users_page(f->s, NULL, 0, &us, &n), HR_INVALID);
}

static void test_follows_and_topics(void **state)
{
    fx_t *f = *state;
    const char *actors[] = {"zed", "amy", "kim"};
    for (int i = 0; i < 3; i++) assert_int_equal(store_follow_add(f->s, "u", actors[i], NULL), HR_OK);
    assert_int_equal(store_follow_add(f->s, "other", "amy", NULL), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t2", "u", NULL), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t1", "u", NULL), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t1", "other", NULL), HR_OK);

    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_following_page(f->s, "u", NULL, 2, &ids, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "amy");
    assert_string_equal(ids[1], "kim");
    ids_free(ids, n);
    assert_int_equal(store_following_page(f->s, "u", "kim", 2, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "zed");
    ids_free(ids, n);
    assert_int_equal(store_user_topics_page(f->s, "u", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "t1");
    assert_string_equal(ids[1], "t2");
    ids_free(ids, n);

    assert_int_equal(store_follow_del(f->s, "u", "amy"), HR_OK);
    assert_int_equal(store_follow_del(f->s, "u", "amy"), HR_NOTFOUND);
    assert_int_equal(store_follow_del(f->s, "", "amy"), HR_INVALID);
    assert_int_equal(store_following_page(f->s, "u", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "kim");
    ids_free(ids, n);
    /* the other follower of amy stays */
    assert_int_equal(store_followers_page(f->s, "amy", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "other");
    ids_free(ids, n);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_erase_every_table),
        T(test_erase_feed_and_orphans),
        T(test_erase_sink_drops_late_records),
        T(test_erase_large_chunked),
        T(test_users_page),
        T(test_follows_and_topics),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
