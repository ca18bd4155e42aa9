/*
 * The store's retention (src/stage/retention.c): a run deletes what was
 * created before now - store.retention_ms and keeps the rest; 0 keeps
 * everything; the thread starts only when there is something to purge and
 * stops at once between runs. A real SQLite store; the cut is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"
#include "app_env.h"
#include "metrics/metrics.h"
#include "stage/retention.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY INT64_C(86400000)
#define T0 (INT64_C(1767225600000)) /* 2026-01-01T00:00:00Z */

typedef struct rfx {
    char dir[64];
    config_t cfg;
    app_t app;
} rfx_t;

static int setup(void **state)
{
    rfx_t *f = xcalloc(1, sizeof(*f));
    env_mkdir(f->dir, "ret");
    env_config(&f->cfg, f->dir, (const char *[]){"store.retention_ms", "86400000", NULL});
    f->app.cfg = &f->cfg;
    env_open_store(&f->app, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    rfx_t *f = *state;
    env_close(&f->app);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void put(store_t *s, const char *id, const char *user, notif_status_t st, int64_t created,
                int64_t at)
{
    notif_t n = {
        .kind = REC_STATUS,
        .channel = CH_PUSH,
        .priority = PRIO_NORMAL,
        .status = st,
        .attempt = 1,
        .created_at_ms = created,
        .status_at_ms = at,
        .notification_id = HSTR(id),
        .event_id = HSTR("ev-1"),
        .user_id = HSTR(user),
        .category = HSTR("social"),
        .title = HSTR("Kylie posted"),
        .body = HSTR("Look at this"),
        .address = HSTR("tok-a"),
    };
    const notif_t *p = &n;
    assert_int_equal(store_notif_write_batch(s, &p, 1), HR_OK);
}

static bool present(store_t *s, const char *id)
{
    notif_row_t r;
    hr_t got = store_notif_get(s, id, &r, NULL, NULL);
    if (got == HR_OK) notif_row_clear(&r);
    else assert_int_equal(got, HR_NOTFOUND);
    return got == HR_OK;
}

static int64_t purged_metric(void)
{
    metrics_snap_t *m = xcalloc(1, sizeof(*m)); /* large: not on the stack */
    metrics_snapshot(m);
    int64_t v = m->notifs_purged;
    free(m);
    return v;
}

/* A day's retention at T0 + 10 days: what was created before T0 + 9 days
 * goes, with its history; what is newer stays, whatever its last status's
 * time. */
static void test_run_once_cuts_at_retention(void **state)
{
    rfx_t *f = *state;
    store_t *s = f->app.store;
    put(s, "old-1", "u1", ST_PENDING, T0, T0);
    put(s, "old-1", "u1", ST_DELIVERED, T0, T0 + 9 * DAY + 5); /* a late status does not keep it */
    put(s, "old-2", "u2", ST_SENT, T0 + 9 * DAY - 1, T0 + 9 * DAY - 1);
    put(s, "new-1", "u1", ST_SENT, T0 + 9 * DAY, T0 + 9 * DAY);
    put(s, "new-2", "u2", ST_SENT, T0 + 10 * DAY, T0 + 10 * DAY);
    int64_t before = purged_metric(), deleted = -1;
    assert_int_equal(retention_run_once(&f->app, T0 + 10 * DAY, &deleted), HR_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(purged_metric() - before, 2);
    assert_false(present(s, "old-1"));
    assert_false(present(s, "old-2"));
    assert_true(present(s, "new-1"));
    assert_true(present(s, "new-2"));
    /* the user's history listing forgets them too */
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_notif_list_user(s, "u1", NULL, 10, &rows, &n, &next), HR_OK);
    assert_null(next);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].notification_id, "new-1");
    notif_rows_free(rows, n);
    /* a second run at the same time finds nothing more */
    assert_int_equal(retention_run_once(&f->app, T0 + 10 * DAY, &deleted), HR_OK);
    assert_int_equal(deleted, 0);
    assert_true(present(s, "new-1"));
}

/* store.retention_ms = 0 keeps everything, and no thread is started. */
static void test_zero_keeps_everything(void **state)
{
    rfx_t *f = *state;
    char why[256];
    assert_int_equal(config_set(&f->cfg, "store.retention_ms", "0", why, sizeof(why)), HR_OK);
    put(f->app.store, "ancient", "u1", ST_SENT, T0 - 400 * DAY, T0 - 400 * DAY);
    int64_t deleted = -1;
    assert_int_equal(retention_run_once(&f->app, T0, &deleted), HR_OK);
    assert_int_equal(deleted, 0);
    assert_true(present(f->app.store, "ancient"));
    retention_t *t = (retention_t *)&deleted; /* must be overwritten */
    assert_int_equal(retention_start(&f->app, &t), HR_OK);
    assert_null(t);
}

/* The thread waits for its first run (a minute after the start); stopping
 * it before then returns at once and purges nothing. */
static void test_thread_stops_between_runs(void **state)
{
    rfx_t *f = *state;
    put(f->app.store, "ancient", "u1", ST_SENT, 1000, 1000);
    retention_t *t = NULL;
    assert_int_equal(retention_start(&f->app, &t), HR_OK);
    assert_non_null(t);
    retention_stop(t);
    assert_true(present(f->app.store, "ancient"));
    retention_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_once_cuts_at_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_stops_between_runs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
