/*
 * test_hist.c - the log-linear histogram: bucket layout, precision,
 * quantiles, merging and window arithmetic, and the coarse buckets counted
 * beside the fine ones.
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

/* The coarse bucket of v by definition: the first bound above v. */
static int coarse_ref(uint64_t v)
{
    int j = 0;
    while (j < HIST_COARSE && v >= hist_coarse_le[j]) j++;
    return j;
}

static void test_coarse(void **state)
{
    (void)state;
    hist_local_t l;
    hist_local_init(&l);
    /* round bounds, increasing, about 30 of them from 50 us to 60 s */
    assert_int_equal(hist_coarse_le[0], 50);
    assert_int_equal(hist_coarse_le[HIST_COARSE - 1], 60000000);
    for (int j = 1; j < HIST_COARSE; j++) assert_true(hist_coarse_le[j] > hist_coarse_le[j - 1]);
    /* each fine bucket holds at most one coarse bound, which the O(1)
     * look-up relies on */
    for (int i = 0; i < HIST_BUCKETS; i++) {
        int inside = 0;
        for (int j = 0; j < HIST_COARSE; j++)
            inside += hist_coarse_le[j] > hist_bucket_lo(i) && hist_coarse_le[j] <= hist_bucket_hi(i);
        assert_true(inside <= 1);
    }
    /* the look-up agrees with the definition at and around every bound */
    for (int j = 0; j < HIST_COARSE; j++)
        for (uint64_t v = hist_coarse_le[j] - 2; v <= hist_coarse_le[j] + 2; v++)
            assert_int_equal(hist_coarse_index(hist_index(v), v), coarse_ref(v));
    for (uint64_t v = 0; v < 200000; v += 7) assert_int_equal(hist_coarse_index(hist_index(v), v), coarse_ref(v));
    assert_int_equal(hist_coarse_index(hist_index(UINT64_MAX), UINT64_MAX), HIST_COARSE);

    /* recorded, merged, read and subtracted alongside the fine counts */
    static hist_t shared;
    uint64_t vals[] = {0, 49, 50, 69, 70, 999, 1000, 59999999, 60000000, 1ull << 41};
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) hist_record(&l, vals[k]);
    hist_merge(&shared, &l);
    for (int j = 0; j <= HIST_COARSE; j++) assert_int_equal(l.coarse[j], 0);
    hist_snap_t s, none, d;
    hist_read(&shared, &s);
    uint64_t n = 0;
    for (int j = 0; j <= HIST_COARSE; j++) n += s.coarse[j];
    assert_int_equal(n, s.total);
    assert_int_equal(s.coarse[0], 2);           /* 0, 49 */
    assert_int_equal(s.coarse[1], 2);           /* 50, 69 */
    assert_int_equal(s.coarse[2], 1);           /* 70 */
    assert_int_equal(s.coarse[HIST_COARSE - 1], 1); /* 59999999 */
    assert_int_equal(s.coarse[HIST_COARSE], 2); /* 60 s and beyond */
    memset(&none, 0, sizeof(none));
    hist_snap_sub(&s, &none, &d);
    assert_memory_equal(d.coarse, s.coarse, sizeof(s.coarse));
    hist_snap_sub(&s, &s, &d);
    for (int j = 0; j <= HIST_COARSE; j++) assert_int_equal(d.coarse[j], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_coarse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
