/*
 * test_prefs.c - preference evaluation (policy/prefs.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "policy/prefs.h"

static void test_prefs_allowed(void **state)
{
    (void)state;
    assert_true(prefs_allowed(NULL, 0, "social", CH_PUSH)); /* default allowed */
    pref_t p[] = {
        {"", CH_SMS, false},          /* SMS off ... */
        {"security", CH_SMS, true},   /* ... except for security */
        {"social", CH_EMAIL, false},  /* no social email */
        {"", CH_PUSH, true},
        {"promo", CH_PUSH, false},
    };
    int n = (int)ARRAY_LEN(p);
    assert_false(prefs_allowed(p, n, "social", CH_SMS));
    assert_true(prefs_allowed(p, n, "security", CH_SMS));
    assert_false(prefs_allowed(p, n, NULL, CH_SMS));
    assert_false(prefs_allowed(p, n, "", CH_SMS));
    assert_false(prefs_allowed(p, n, "social", CH_EMAIL));
    assert_true(prefs_allowed(p, n, "orders", CH_EMAIL));
    assert_false(prefs_allowed(p, n, "promo", CH_PUSH));
    assert_true(prefs_allowed(p, n, "social", CH_PUSH));
    assert_true(prefs_allowed(p, n, "social", CH_WEBHOOK));
}

static void test_required_parse(void **state)
{
    (void)state;
    prefs_required_t r;
    assert_int_equal(prefs_required_parse("security,otp", &r), HR_OK);
    assert_int_equal(r.n, 2);
    assert_true(prefs_required_has(&r, "security"));
    assert_true(prefs_required_has(&r, "otp"));
    assert_false(prefs_required_has(&r, "otp2"));
    assert_false(prefs_required_has(&r, "secur"));
    assert_false(prefs_required_has(&r, NULL));
    prefs_required_clear(&r);
    assert_int_equal(prefs_required_parse(" a , ,b.c:d ,", &r), HR_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.names[0], "a");
    assert_string_equal(r.names[1], "b.c:d");
    prefs_required_clear(&r);
    assert_int_equal(prefs_required_parse("", &r), HR_OK);
    assert_int_equal(r.n, 0);
    assert_false(prefs_required_has(&r, "security"));
    prefs_required_clear(&r);
    assert_int_equal(prefs_required_parse(NULL, &r), HR_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(prefs_required_parse("security,o t p", &r), HR_INVALID);
    assert_int_equal(r.n, 0);
    assert_null(r.names);
    char long_name[PREFS_CATEGORY_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(prefs_required_parse(long_name, &r), HR_INVALID);
    long_name[PREFS_CATEGORY_MAX] = '\0';
    assert_int_equal(prefs_required_parse(long_name, &r), HR_OK);
    prefs_required_clear(&r);
}

/* critical overrides preferences only for required categories; a required
 * category's own opt-out never counts; the channel switch counts unless
 * critical and required. */
static void test_deliver(void **state)
{
    (void)state;
    pref_t p[] = {
        {"", CH_SMS, false},           /* no SMS at all */
        {"promo", CH_PUSH, false},     /* no promo push */
        {"security", CH_PUSH, false},  /* tries to opt out of security push */
        {"otp", CH_SMS, true},
    };
    int n = (int)ARRAY_LEN(p);
    for (int prio = PRIO_LOW; prio <= PRIO_CRITICAL; prio++) {
        /* not required: preferences rule, whatever the priority */
        assert_false(prefs_deliver(p, n, "promo", CH_PUSH, (priority_t)prio, false));
        assert_false(prefs_deliver(p, n, "social", CH_SMS, (priority_t)prio, false));
        assert_true(prefs_deliver(p, n, "social", CH_PUSH, (priority_t)prio, false));
        /* required: the category opt-out is ignored */
        assert_true(prefs_deliver(p, n, "security", CH_PUSH, (priority_t)prio, true));
        /* required: the channel switch holds unless critical */
        assert_int_equal(prefs_deliver(p, n, "security", CH_SMS, (priority_t)prio, true),
                         prio == PRIO_CRITICAL);
    }
    /* an explicit opt-in of a required category beats the switch, as for any category */
    assert_true(prefs_deliver(p, n, "otp", CH_SMS, PRIO_HIGH, true));
    assert_true(prefs_allowed(p, n, "otp", CH_SMS));
    assert_true(prefs_deliver(p, n, "otp", CH_SMS, PRIO_CRITICAL, true));
    assert_true(prefs_deliver(NULL, 0, "otp", CH_EMAIL, PRIO_LOW, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefs_allowed),
        cmocka_unit_test(test_required_parse),
        cmocka_unit_test(test_deliver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
