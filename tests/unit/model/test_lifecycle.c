/*
 * Tests for src/model/lifecycle.c: the status table, the rank rule and the
 * one transition function.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/lifecycle.h"

#include <string.h>

static void test_rank_rule(void **state)
{
    (void)state;
    /* rank 0 takes anything */
    for (int to = 0; to < ST__COUNT; to++) {
        assert_true(lifecycle_may_replace(ST_PENDING, (notif_status_t)to));
        assert_true(lifecycle_may_replace(ST_FAILED, (notif_status_t)to));
    }
    /* dead < sent < delivered; a final state never moves down or sideways */
    assert_true(lifecycle_may_replace(ST_DEAD, ST_SENT));
    assert_true(lifecycle_may_replace(ST_SENT, ST_DELIVERED));
    assert_false(lifecycle_may_replace(ST_SENT, ST_DEAD));
    assert_false(lifecycle_may_replace(ST_SENT, ST_FAILED));
    assert_false(lifecycle_may_replace(ST_DELIVERED, ST_SENT));
    assert_false(lifecycle_may_replace(ST_SENT, ST_SENT));
    assert_true(lifecycle_is_final(ST_DEAD));
    assert_false(lifecycle_is_final(ST_DEFERRED));
    assert_int_equal(lifecycle_rank((notif_status_t)99), 0);
}

/* What delivery callbacks report: after sent, never back, and the first
 * report of rank 3 stays. */
static void test_callback_statuses(void **state)
{
    (void)state;
    assert_string_equal(status_name(ST_UNDELIVERED), "undelivered");
    assert_string_equal(status_name(ST_BOUNCED), "bounced");
    assert_int_equal(status_parse("bounced", 7), ST_BOUNCED);
    const notif_status_t reports[] = {ST_DELIVERED, ST_UNDELIVERED, ST_BOUNCED};
    for (int i = 0; i < 3; i++) {
        assert_true(lifecycle_is_final(reports[i]));
        assert_true(lifecycle_was_sent(reports[i]));
        assert_true(lifecycle_may_replace(ST_SENT, reports[i]));
        assert_true(lifecycle_may_replace(ST_DEAD, reports[i]));
        assert_false(lifecycle_may_replace(reports[i], ST_SENT));
        assert_false(lifecycle_may_replace(reports[i], ST_FAILED));
        assert_false(lifecycle_may_replace(reports[i], ST_DEAD));
        for (int j = 0; j < 3; j++) assert_false(lifecycle_may_replace(reports[i], reports[j]));
    }
    assert_true(lifecycle_was_sent(ST_SENT));
    assert_false(lifecycle_was_sent(ST_DEAD));
    assert_false(lifecycle_was_sent(ST_FAILED));
    /* digested: its digest delivered it; nothing sends it again, and a
     * later record cannot move it back */
    assert_true(lifecycle_was_sent(ST_DIGESTED));
    assert_true(lifecycle_is_final(ST_DIGESTED));
    assert_false(lifecycle_may_replace(ST_DIGESTED, ST_PENDING));
    assert_true(lifecycle_may_replace(ST_PENDING, ST_DIGESTED));
    assert_string_equal(status_name(ST_DIGESTED), "digested");
}

static void test_rank_sql(void **state)
{
    (void)state;
    char sql[200];
    assert_string_equal(lifecycle_rank_sql("status", sql, sizeof(sql)),
                        "(CASE status WHEN 1 THEN 2 WHEN 2 THEN 3 WHEN 7 THEN 1 WHEN 8 THEN 3 "
                        "WHEN 9 THEN 3 WHEN 10 THEN 2 ELSE 0 END)");
}

static void test_transition(void **state)
{
    (void)state;
    notif_t n = {.kind = REC_NOTIFICATION, .notification_id = HSTR("abc")};
    lifecycle_transition(&n, ST_FAILED, 42, HSTR("boom"), "test");
    assert_int_equal(n.kind, REC_STATUS);
    assert_int_equal(n.status, ST_FAILED);
    assert_int_equal(n.status_at_ms, 42);
    assert_int_equal(n.error.n, 4);
    assert_memory_equal(n.error.p, "boom", 4);
    lifecycle_transition(&n, ST_SENT, 43, HSTR("msg-1"), "test");
    assert_int_equal(n.status, ST_SENT);
    assert_int_equal(n.error.n, 0);
    assert_int_equal(n.channel_msg_id.n, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_rule),
        cmocka_unit_test(test_rank_sql),
        cmocka_unit_test(test_callback_statuses),
        cmocka_unit_test(test_transition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
