/*
 * test_prefs.c - preference evaluation (policy/prefs.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefs_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
