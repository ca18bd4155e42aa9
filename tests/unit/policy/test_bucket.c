/*
 * test_bucket.c - provider token buckets (policy/bucket.h) on an injected
 * clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy/bucket.h"

static void test_burst_then_rate(void **st)
{
    (void)st;
    bucket_t b;
    int64_t t = 1000000;
    bucket_init(&b, 500, 50, t); /* 500/s, burst 50 */
    for (int i = 0; i < 50; i++) assert_int_equal(bucket_take(&b, t, 1), 0);
    /* empty: one token comes every 2 ms */
    assert_int_equal(bucket_take(&b, t, 1), 2);
    assert_int_equal(bucket_take(&b, t + 1, 1), 1);
    assert_int_equal(bucket_take(&b, t + 2, 1), 0);
    assert_int_equal(bucket_take(&b, t + 2, 1), 2);
    /* one second later: full again, never above the burst */
    t += 10000;
    assert_int_equal(bucket_available(&b, t), 50);
    /* over a simulated second at a steady demand, exactly rate + burst pass */
    int granted = 0;
    for (int64_t ms = 0; ms < 1000; ms++)
        while (bucket_take(&b, t + ms, 1) == 0) granted++;
    assert_int_equal(granted, 50 + 499); /* the burst, then 1 per 2 ms for 998 ms */
}

static void test_take_n_and_wait(void **st)
{
    (void)st;
    bucket_t b;
    bucket_init(&b, 100, 0, 0); /* burst defaults to the rate */
    assert_int_equal(bucket_available(&b, 0), 100);
    assert_int_equal(bucket_take(&b, 0, 60), 0);
    assert_int_equal(bucket_take(&b, 0, 60), 200); /* 20 missing at 100/s */
    assert_int_equal(bucket_available(&b, 0), 40); /* a refused take takes nothing */
    assert_int_equal(bucket_take(&b, 200, 60), 0);
    /* oversized: granted once full, leaves debt */
    assert_int_equal(bucket_take(&b, 1200, 250), 0);
    assert_int_equal(bucket_available(&b, 1200), 0);
    assert_int_equal(bucket_take(&b, 1200, 1), 1510); /* -150 + 1 token: 1.51 s */
    /* a refund gives tokens back, never above the burst */
    bucket_refund(&b, 160);
    assert_int_equal(bucket_available(&b, 1200), 10);
    bucket_refund(&b, 1000);
    assert_int_equal(bucket_available(&b, 1200), 100);
    assert_int_equal(bucket_take(&b, 1200, 250), 0);
    /* time going backwards: no refill, no crash */
    assert_true(bucket_take(&b, 0, 1) > 0);
}

static void test_unlimited_and_slow(void **st)
{
    (void)st;
    bucket_t b;
    bucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 100000; i++) assert_int_equal(bucket_take(&b, 0, 1), 0);
    bucket_init(&b, 1, 1, 0); /* Twilio long code: 1 per second */
    assert_int_equal(bucket_take(&b, 0, 1), 0);
    assert_int_equal(bucket_take(&b, 0, 1), 1000);
    assert_int_equal(bucket_take(&b, 999, 1), 1);
    assert_int_equal(bucket_take(&b, 1000, 1), 0);
    /* a very long idle spell does not overflow */
    assert_int_equal(bucket_take(&b, INT64_C(1) << 60, 1), 0);
}

static void test_defaults_and_config(void **st)
{
    (void)st;
    assert_int_equal(bucket_default_rate("fcm"), 500);
    assert_int_equal(bucket_default_rate("apns"), 1000);
    assert_int_equal(bucket_default_rate("ses"), 100);
    assert_int_equal(bucket_default_rate("sns"), 200);
    assert_int_equal(bucket_default_rate("twilio"), 100);
    assert_int_equal(bucket_default_rate("sandbox"), 0);

    config_t c;
    config_init(&c);
    char why[256];
    int64_t rate, burst;
    assert_int_equal(bucket_conf(&c, "fcm", "fcm", 1, &rate, &burst, why, sizeof(why)), HR_OK);
    assert_int_equal(rate, 500);
    assert_int_equal(burst, 500);
    assert_int_equal(config_set(&c, "provider.acct1.type", "sandbox", why, sizeof(why)), HR_OK);
    assert_int_equal(config_set(&c, "provider.acct1.rate", "30", why, sizeof(why)), HR_OK);
    assert_int_equal(config_set(&c, "provider.acct1.burst", "5", why, sizeof(why)), HR_OK);
    assert_int_equal(bucket_conf(&c, "acct1", "sandbox", 1, &rate, &burst, why, sizeof(why)), HR_OK);
    assert_int_equal(rate, 30);
    assert_int_equal(burst, 5);
    assert_int_equal(bucket_conf(&c, "acct1", "sandbox", 4, &rate, &burst, why, sizeof(why)), HR_OK);
    assert_int_equal(rate, 8); /* 30 / 4 workers, rounded up */
    assert_int_equal(burst, 2);
    assert_int_equal(config_set(&c, "provider.acct1.rate", "fast", why, sizeof(why)), HR_OK);
    assert_int_equal(bucket_conf(&c, "acct1", "sandbox", 1, &rate, &burst, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "provider.acct1.rate"));
    config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_take_n_and_wait),
        cmocka_unit_test(test_unlimited_and_slow),
        cmocka_unit_test(test_defaults_and_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
