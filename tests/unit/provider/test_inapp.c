/* Unit tests for the inapp provider (provider/inapp.c): it needs the
 * store; each notification becomes an inbox item of its user and completes
 * SEND_OK ("inapp-<id>") exactly once; delivering again keeps the item's
 * state; a notification without a user is PERMANENT; it is the in-app
 * channel's default, which channel.inapp.providers and sandbox.mode=null
 * change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "app.h"
#include "app_env.h"
#include "prov_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup(void **st)
{
    (void)st;
    env_mkdir(dir, "inapp");
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    env_rmdir(dir);
    return 0;
}

static void test_needs_the_store(void **st)
{
    (void)st;
    static fx_t f;
    fx_init(&f, "data_dir", dir, NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    assert_int_not_equal(provider_set_open(&f.cfg, NULL, CH_INAPP, fx_done, &f, &s, why, sizeof(why)),
                         HR_OK);
    assert_null(s);
    assert_non_null(strstr(why, "needs the store"));
    fx_release(&f);
}

static void test_items_stored_once_and_kept(void **st)
{
    (void)st;
    static fx_t f;
    fx_init(&f, "data_dir", dir, NULL);
    app_t app = {.cfg = &f.cfg};
    assert_int_equal(store_open("sqlite", ":memory:", &app.store), HR_OK);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, &app, CH_INAPP, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    for (int i = 0; i < 3; i++) {
        fx_notif(&f, i, CH_INAPP, "Hello", "");
        f.n[i].created_at_ms = 1000 + i;
    }
    fx_deliver(&f, s, 3, 256);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        char want[64];
        snprintf(want, sizeof(want), "inapp-%s", f.ids[i]);
        assert_string_equal(f.res[i].msg_id, want);
    }
    inbox_item_t *items = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_inbox_list(app.store, "alice", INBOX_ACTIVE, NULL, 10, &items, &n, &next), HR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(items[0].notification_id, "n-2");
    assert_string_equal(items[0].title, "Hello");
    assert_string_equal(items[0].body, "body");
    assert_string_equal(items[0].event_id, "ev-1");
    assert_int_equal(items[0].created_at_ms, 1002);
    inbox_items_free(items, n);

    /* a redelivery (a retry after a lost acknowledgement) keeps the read state */
    assert_int_equal(store_inbox_mark(app.store, "alice", "n-0", INBOX_MARK_READ, 5), HR_OK);
    memset(f.completions, 0, sizeof(f.completions));
    f.done = 0;
    fx_deliver(&f, s, 1, 256);
    assert_int_equal(f.res[0].cls, SEND_OK);
    int64_t unread = 0, unseen = 0;
    assert_int_equal(store_inbox_counts(app.store, "alice", &unread, &unseen), HR_OK);
    assert_int_equal(unread, 2);
    assert_int_equal(unseen, 2);

    /* no user: the store refuses it for good */
    memset(f.completions, 0, sizeof(f.completions));
    f.done = 0;
    fx_notif(&f, 0, CH_INAPP, "x", "");
    f.n[0].user_id = HSTR("");
    fx_deliver(&f, s, 1, 256);
    assert_int_equal(f.res[0].cls, SEND_PERMANENT);
    provider_set_close(s);
    store_close(app.store);
    fx_release(&f);
}

/* The default can be changed: channel.inapp.providers = sandbox, or
 * sandbox.mode = null (benchmarks), put the channel on the sandbox. */
static void test_default_and_overrides(void **st)
{
    (void)st;
    const char *const cases[][4] = {
        {"channel.inapp.providers", "sandbox", "sandbox.mode", "file"},
        {"sandbox.mode", "null", "data_dir", NULL},
    };
    for (size_t c = 0; c < 2; c++) {
        static fx_t f;
        if (cases[c][3])
            fx_init(&f, "data_dir", dir, cases[c][0], cases[c][1], cases[c][2], cases[c][3], NULL);
        else
            fx_init(&f, "data_dir", dir, cases[c][0], cases[c][1], NULL);
        app_t app = {.cfg = &f.cfg};
        assert_int_equal(store_open("sqlite", ":memory:", &app.store), HR_OK);
        provider_set_t *s = NULL;
        char why[256];
        assert_int_equal(provider_set_open(&f.cfg, &app, CH_INAPP, fx_done, &f, &s, why, sizeof(why)),
                         HR_OK);
        fx_notif(&f, 0, CH_INAPP, "Hello", "");
        fx_deliver(&f, s, 1, 1024);
        assert_int_equal(f.res[0].cls, SEND_OK);
        assert_string_equal(f.res[0].msg_id, "sandbox-n-0");
        int64_t unread = -1, unseen = -1;
        assert_int_equal(store_inbox_counts(app.store, "alice", &unread, &unseen), HR_OK);
        assert_int_equal(unread, 0);
        provider_set_close(s);
        store_close(app.store);
        fx_release(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_needs_the_store),
        cmocka_unit_test(test_items_stored_once_and_kept),
        cmocka_unit_test(test_default_and_overrides),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
