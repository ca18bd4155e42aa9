/*
 * test_hist.c - the log-linear histogram: bucket layout, precision,
 * quantiles, merging and window arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hist.h"

static void test_layout(void **state)
{
    (void)state;
    /* exact below 16 */
    for (uint64_t v = 0; v < 16; v++) {
        assert_int_equal(hist_index(v), (int)v);
        assert_int_equal(hist_bucket_lo((int)v), v);
        assert_int_equal(hist_bucket_hi((int)v), v);
    }
    /* buckets tile the numbers: each starts right after the previous one */
    for (int i = 1; i < HIST_BUCKETS; i++) assert_int_equal(hist_bucket_lo(i), hist_bucket_hi(i - 1) + 1);
    /* every value lands in the bucket that holds it, width <= 1/8 of lo */
    uint64_t probes[] = {16, 17, 31, 32, 33, 100, 999, 1000, 1023, 1024, 123456, 99999999, (1ull << 39) + 5};
    for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
        int i = hist_index(probes[k]);
        assert_true(hist_bucket_lo(i) <= probes[k] && probes[k] <= hist_bucket_hi(i));
        assert_true((hist_bucket_hi(i) - hist_bucket_lo(i) + 1) * 8 <= hist_bucket_lo(i));
    }
    assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
    assert_int_equal(hist_index(1ull << 40), HIST_BUCKETS - 1);
}

static void test_quantiles(void **state)
{
    (void)state;
    static hist_t shared;
    hist_local_t l;
    hist_local_init(&l);
    /* 1..10000 us once each */
    for (uint64_t v = 1; v <= 10000; v++) hist_record(&l, v);
    hist_merge(&shared, &l);
    assert_int_equal(l.total, 0);
    hist_snap_t s;
    hist_read(&shared, &s);
    assert_int_equal(s.total, 10000);
    assert_int_equal(s.max, 10000);
    assert_int_equal(s.sum, 10000ull * 10001 / 2);
    uint64_t p50 = hist_quantile(&s, 0.5), p99 = hist_quantile(&s, 0.99);
    /* within one bucket (12.5 %) above the true value, never below */
    assert_true(p50 >= 5000 && p50 <= 5000 * 1125 / 1000);
    assert_true(p99 >= 9900 && p99 <= 9900 * 1125 / 1000);
    assert_int_equal(hist_quantile(&s, 1.0), 10000);

    /* a later window: 1000 values of 50 ms */
    for (int i = 0; i < 1000; i++) hist_record(&l, 50000);
    hist_merge(&shared, &l);
    hist_snap_t s2, d;
    hist_read(&shared, &s2);
    hist_snap_sub(&s2, &s, &d);
    assert_int_equal(d.total, 1000);
    assert_int_equal(d.max, 50000);
    uint64_t q = hist_quantile(&d, 0.5);
    assert_true(q >= 50000 && q <= 50000 * 1125 / 1000);

    hist_snap_t empty;
    memset(&empty, 0, sizeof(empty));
    assert_int_equal(hist_quantile(&empty, 0.99), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
