/*
 * test_store_users_batch.c - fan-out's batch read of recipients
 * (store_users_get_batch): user, devices and preferences come back as the
 * single reads return them, for every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Users with devices, preferences, neither, preferences without a user
 * (allowed: the user need not exist) and an empty id, read together: each
 * one equals store_user_get + store_prefs_get, devices in their order and
 * preferences by (category, channel). */
static void test_batch_equals_single_reads(void **state)
{
    fx_t *f = *state;
    user_t a = {.user_id = "ann", .email = "ann@example.com", .phone = "+15550100", .locale = "de",
                .timezone = "Europe/Berlin", .quiet_start = "22:00", .quiet_end = "07:00",
                .webhook_url = "https://example.com/h", .ndevices = 3};
    a.devices[0] = (device_t){"fcm", "t-zz"};
    a.devices[1] = (device_t){"apns", "t-aa"};
    a.devices[2] = (device_t){"fcm", "t-mm"};
    assert_int_equal(store_user_put(f->s, &a), HR_OK);
    pref_t p[3] = {{.category = "social", .channel = CH_SMS, .enabled = false},
                   {.category = "billing", .channel = CH_EMAIL, .enabled = true},
                   {.category = "social", .channel = CH_PUSH, .enabled = false}};
    assert_int_equal(store_prefs_replace(f->s, "ann", p, 3), HR_OK);
    user_t b = {.user_id = "ben"};
    assert_int_equal(store_user_put(f->s, &b), HR_OK);
    assert_int_equal(store_prefs_replace(f->s, "ghost", p, 1), HR_OK);

    const char *ids[] = {"ann", "ghost", "ben", "", "nobody", "ann"};
    enum { N = 6 };
    user_t out[N];
    hr_t found[N];
    pref_t *prefs[N] = {0};
    int np[N] = {0};
    assert_int_equal(store_users_get_batch(f->s, ids, N, out, found, prefs, np), HR_OK);
    assert_int_equal(found[1], HR_NOTFOUND);
    assert_int_equal(found[3], HR_NOTFOUND);
    assert_int_equal(found[4], HR_NOTFOUND);
    for (int i = 0; i < N; i++) {
        if (found[i] != HR_OK) continue;
        user_t u;
        assert_int_equal(store_user_get(f->s, ids[i], &u), HR_OK);
        assert_string_equal(out[i].user_id, ids[i]);
#define SAME(field)                                                                                \
    do {                                                                                           \
        if (u.field) assert_string_equal(out[i].field, u.field);                                   \
        else assert_null(out[i].field);                                                            \
    } while (0)
        SAME(email);
        SAME(phone);
        SAME(locale);
        SAME(timezone);
        SAME(quiet_start);
        SAME(quiet_end);
        SAME(webhook_url);
#undef SAME
        assert_int_equal(out[i].ndevices, u.ndevices);
        for (int d = 0; d < u.ndevices; d++) {
            assert_string_equal(out[i].devices[d].platform, u.devices[d].platform);
            assert_string_equal(out[i].devices[d].token, u.devices[d].token);
        }
        pref_t *q = NULL;
        int nq = 0;
        assert_int_equal(store_prefs_get(f->s, ids[i], &q, &nq), HR_OK);
        assert_int_equal(np[i], nq);
        for (int k = 0; k < nq; k++) {
            assert_string_equal(prefs[i][k].category, q[k].category);
            assert_int_equal(prefs[i][k].channel, q[k].channel);
            assert_int_equal(prefs[i][k].enabled, q[k].enabled);
        }
        store_prefs_free(q, nq);
        store_user_clear(&u);
    }
    /* ann's devices as put, preferences by (category, channel) */
    assert_string_equal(out[0].devices[0].token, "t-zz");
    assert_string_equal(out[0].devices[2].token, "t-mm");
    assert_int_equal(np[0], 3);
    assert_string_equal(prefs[0][0].category, "billing");
    assert_string_equal(prefs[0][1].category, "social");
    assert_int_equal(np[2], 0);
    for (int i = 0; i < N; i++)
        if (found[i] == HR_OK) {
            store_user_clear(&out[i]);
            store_prefs_free(prefs[i], np[i]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_equals_single_reads, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
