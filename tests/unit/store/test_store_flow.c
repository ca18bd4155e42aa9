/*
 * Store tests for the dispatch policy's state: deferred notifications,
 * invalid addresses, releasing a dedupe claim, redriven DLQ entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"

static void test_scheduled_by_due_time(void **state)
{
    fx_t *f = *state;
    int64_t next = 0;
    assert_int_equal(store_sched_next(f->s, &next), HR_OK);
    assert_true(next == INT64_MAX);
    assert_int_equal(store_sched_put(f->s, "late", CH_PUSH, 5000, "L\0x", 3), HR_OK);
    assert_int_equal(store_sched_put(f->s, "soon", CH_EMAIL, 1000, "S", 1), HR_OK);
    assert_int_equal(store_sched_put(f->s, "", CH_EMAIL, 1000, "S", 1), HR_INVALID);
    assert_int_equal(store_sched_put(f->s, "x", CH_EMAIL, 1000, "S", 0), HR_INVALID);
    assert_int_equal(store_sched_next(f->s, &next), HR_OK);
    assert_true(next == 1000);
    sched_row_t *rows = NULL;
    int n = 0;
    assert_int_equal(store_sched_due(f->s, 999, 10, &rows, &n), HR_OK);
    assert_int_equal(n, 0);
    store_sched_rows_free(rows, n);
    assert_int_equal(store_sched_due(f->s, 5000, 10, &rows, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].notification_id, "soon");
    assert_int_equal(rows[0].channel, CH_EMAIL);
    assert_string_equal(rows[1].notification_id, "late");
    assert_int_equal(rows[1].rec_len, 3);
    assert_memory_equal(rows[1].rec, "L\0x", 3);
    store_sched_rows_free(rows, n);
    /* survives a reopen; a deferral replaced meanwhile is not deleted */
    fx_reopen(f);
    assert_int_equal(store_sched_put(f->s, "soon", CH_EMAIL, 2000, "S2", 2), HR_OK);
    assert_int_equal(store_sched_del(f->s, "soon", 1000), HR_OK);
    assert_int_equal(store_sched_next(f->s, &next), HR_OK);
    assert_true(next == 2000);
    assert_int_equal(store_sched_del(f->s, "soon", 2000), HR_OK);
    assert_int_equal(store_sched_del(f->s, "late", 5000), HR_OK);
    assert_int_equal(store_sched_next(f->s, &next), HR_OK);
    assert_true(next == INT64_MAX);
}

static void test_address_invalidate(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "u1", .locale = "en", .timezone = "UTC", .email = "u1@example.com",
                .phone = "+15550001", .ndevices = 3};
    u.devices[0] = (device_t){"fcm", "good"};
    u.devices[1] = (device_t){"apns", "dead"};
    u.devices[2] = (device_t){"fcm", "also-good"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    uint64_t e0 = store_users_epoch(f->s);
    assert_int_equal(store_address_invalidate(f->s, "u1", CH_PUSH, "apns:dead", "HTTP 410"), HR_OK);
    assert_true(store_users_epoch(f->s) > e0); /* caches hear of it */
    assert_int_equal(store_address_invalidate(f->s, "u1", CH_EMAIL, "u1@example.com", "bounce"), HR_OK);
    user_t g;
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_OK);
    assert_int_equal(g.ndevices, 2);
    assert_string_equal(g.devices[0].token, "good");
    assert_string_equal(g.devices[1].token, "also-good");
    assert_null(g.email);
    assert_string_equal(g.phone, "+15550001");
    store_user_clear(&g);
    bool bad = false;
    assert_int_equal(store_address_is_invalid(f->s, "u1", CH_PUSH, "apns:dead", &bad), HR_OK);
    assert_true(bad);
    assert_int_equal(store_address_is_invalid(f->s, "u1", CH_PUSH, "fcm:good", &bad), HR_OK);
    assert_false(bad);
    /* unknown user: recorded, HR_NOTFOUND */
    assert_int_equal(store_address_invalidate(f->s, "ghost", CH_SMS, "+1", "invalid number"), HR_NOTFOUND);
    assert_int_equal(store_address_is_invalid(f->s, "ghost", CH_SMS, "+1", &bad), HR_OK);
    assert_true(bad);
    assert_int_equal(store_address_invalidate(f->s, "u1", CH_SMS, "", "x"), HR_INVALID);
}

static void test_event_release_and_dlq_marks(void **state)
{
    fx_t *f = *state;
    claim_t c;
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/0/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/0/9", &c), HR_OK);
    assert_int_equal(c, CLAIM_DUP);
    assert_int_equal(store_event_release(f->s, "ev1"), HR_OK);
    assert_int_equal(store_event_release(f->s, "never"), HR_OK);
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/0/9", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);

    bool first = false, done = true;
    assert_int_equal(store_dlq_redriven(f->s, "0-1", &done), HR_OK);
    assert_false(done);
    assert_int_equal(store_dlq_mark_redriven(f->s, "0-1", &first), HR_OK);
    assert_true(first);
    assert_int_equal(store_dlq_mark_redriven(f->s, "0-1", &first), HR_OK);
    assert_false(first);
    fx_reopen(f);
    assert_int_equal(store_dlq_redriven(f->s, "0-1", &done), HR_OK);
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scheduled_by_due_time, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_address_invalidate, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_event_release_and_dlq_marks, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
