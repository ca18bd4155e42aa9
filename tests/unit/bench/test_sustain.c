/*
 * Tests for the benchmark's sustained-rate decisions (src/bench/sustain.c)
 * and its thread grouping (src/bench/threads.c) on made-up samples: a
 * backlog that saws up and down by a sink batch keeps up, one that grows or
 * sits high does not, and the search brackets the rate. src/bench is not
 * part of herald_lib, so the two files are compiled in here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../../src/bench/sustain.c"
#include "../../../src/bench/threads.c"

static void test_slope_of_a_line(void **state)
{
    (void)state;
    double t[5] = {0, 0.5, 1, 1.5, 2}, y[5];
    for (int i = 0; i < 5; i++) y[i] = 100 + 250 * t[i];
    assert_float_equal(sustain_slope(t, y, 5), 250, 1e-9);
    assert_float_equal(sustain_slope(t, y, 1), 0, 0);
    assert_float_equal(sustain_tail(y, 5), (y[1] + y[2] + y[3] + y[4]) / 4, 1e-9);
}

/* A sink that writes 8,192 rows every 0.5 s at 16k rows/s input: the
 * backlog saws between ~0 and 8k and does not grow. */
static void test_sawtooth_keeps_up(void **state)
{
    (void)state;
    double t[21], y[21];
    for (int i = 0; i < 21; i++) {
        t[i] = i * 0.5;
        y[i] = (i % 2) ? 8000 : 200;
    }
    double slope = sustain_slope(t, y, 21);
    char why[64];
    assert_true(sustain_keeps_up(16000, 10, slope, sustain_tail(y, 21), why, sizeof(why)));
    assert_string_equal(why, "");
}

/* 5 % of the input left behind each second: grows, does not keep up. */
static void test_growth_falls_behind(void **state)
{
    (void)state;
    double t[21], y[21];
    for (int i = 0; i < 21; i++) {
        t[i] = i * 0.5;
        y[i] = 0.05 * 100000 * t[i];
    }
    char why[64];
    assert_false(sustain_keeps_up(100000, 10, sustain_slope(t, y, 21), sustain_tail(y, 21), why, sizeof(why)));
    assert_non_null(strstr(why, "grew"));
    /* 2 % grows within the allowance (3 % plus one batch) */
    for (int i = 0; i < 21; i++) y[i] = 0.02 * 100000 * t[i];
    assert_true(sustain_keeps_up(100000, 10, sustain_slope(t, y, 21), sustain_tail(y, 21), NULL, 0));
}

/* Flat but 10 s of input behind: not bounded. */
static void test_high_backlog_falls_behind(void **state)
{
    (void)state;
    char why[64];
    assert_false(sustain_keeps_up(20000, 10, 0, 200000, why, sizeof(why)));
    assert_non_null(strstr(why, "backlog"));
    /* at a low rate the floor applies: 30k records behind at 1k/s is fine */
    assert_true(sustain_keeps_up(1000, 10, 0, 30000, NULL, 0));
}

static void test_next_rate(void **state)
{
    (void)state;
    /* nothing kept up yet, the bottleneck did 40k of 100k: try about 40k */
    assert_float_equal(sustain_next(0, 100000, 40000, 0.1), 40000 * 0.97, 1e-6);
    /* no usable capacity figure: halve */
    assert_float_equal(sustain_next(0, 100000, 0, 0.1), 50000, 1e-6);
    /* a near miss (the bottleneck did 99k of 100k): just below hi, by the
     * precision, not half of it */
    assert_float_equal(sustain_next(0, 100000, 99000, 0.1), 100000 / 1.05, 1e-6);
    assert_float_equal(sustain_next(40000, 90000, 89000, 0.1), 90000 / 1.05, 1e-6);
    /* a bracket: geometric middle */
    assert_float_equal(sustain_next(40000, 90000, 0, 0.1), 60000, 1e-6);
    /* a capacity figure inside the bracket is tried */
    assert_float_equal(sustain_next(40000, 90000, 70000, 0.1), 70000 * 0.97, 1e-6);
    /* ... not one at its edge */
    assert_float_equal(sustain_next(40000, 90000, 41000, 0.1), 60000, 1e-6);
    /* within the precision: done */
    assert_float_equal(sustain_next(95000, 100000, 0, 0.1), 0, 0);
}

/* A made-up herald that keeps up at most `cap` notifications/s; above it,
 * the bottleneck processes `starve` of cap (an overloaded machine leaves the
 * niced status sink less). Runs the search as bench.c does; returns the
 * steps it took, the rates in tried[]. */
static int simulate(double cap, double starve, double burst, double first, int max_steps, sustain_search_t *s,
                    double *tried)
{
    double r = sustain_start(s, burst, first, 0.1);
    int k = 0;
    for (; k < max_steps && r > 0; k++) {
        /* inside the bracket known before it (or its untried upper end) */
        assert_true(r > s->lo);
        assert_true(r < s->hi || (r == s->hi && !s->hi_tried));
        tried[k] = r;
        bool pass = r <= cap;
        r = sustain_step(s, r, pass, pass ? r : cap * starve);
    }
    return k;
}

static void test_search_brackets(void **state)
{
    (void)state;
    double tried[16];
    sustain_search_t s;
    /* the top near the burst rate, a starved sink on failed steps: the
     * search ends with the rate inside the bracket, within the precision */
    static const double caps[] = {150000, 262000, 290000, 305000, 330000};
    static const double starves[] = {1.0, 0.9, 0.8};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        for (size_t j = 0; j < sizeof(starves) / sizeof(starves[0]); j++) {
            int n = simulate(caps[i], starves[j], 340000, 320000, 8, &s, tried);
            assert_true(n <= 8);
            assert_true(s.lo <= caps[i]);
            assert_true(s.hi > caps[i]);
            assert_true(s.hi_tried);
            assert_true(s.hi / s.lo <= 1.1 + 1e-9);
        }
    /* a near miss at the first step (the bottleneck processed 318k of
     * 320k) steps down by the precision and the search ends in two steps
     * (halving first took five and ended at 293k) */
    int n = simulate(318000, 1.0, 330000, 320000, 8, &s, tried);
    assert_int_equal(n, 2);
    assert_float_equal(tried[1], 320000 / 1.05, 1e-6);
    assert_float_equal(s.lo, tried[1], 0);
    /* the burst under-measured (the machine was busier): the untried upper
     * bound is tried, kept up, raised, and the search goes on above it */
    n = simulate(400000, 0.9, 300000, 250000, 8, &s, tried);
    assert_true(s.lo > 300000 * 1.02);
    assert_true(s.lo <= 400000);
    assert_true(s.hi_tried || n == 8);
}

static void test_thread_groups(void **state)
{
    (void)state;
    assert_int_equal(tcpu_group("MHD-worker", 12, 10), TG_INGEST);
    assert_int_equal(tcpu_group("fanout", 12, 10), TG_FANOUT);
    assert_int_equal(tcpu_group("dispatch:push", 12, 10), TG_DISPATCH);
    assert_int_equal(tcpu_group("retry:sms:30s", 12, 10), TG_RETRY);
    assert_int_equal(tcpu_group("status", 12, 10), TG_STATUS);
    assert_int_equal(tcpu_group("store-ckpt", 12, 10), TG_CKPT);
    assert_int_equal(tcpu_group("rdk:broker1", 12, 10), TG_KAFKA);
    assert_int_equal(tcpu_group("herald", 10, 10), TG_MAIN);
    assert_int_equal(tcpu_group("herald", 12, 10), TG_BUS);
    assert_int_equal(tcpu_group("scheduler", 12, 10), TG_OTHER);
}

/* This process's own threads: the snapshot finds the main thread, and CPU
 * burnt between two snapshots shows in its group. */
static void test_snapshot_of_self(void **state)
{
    (void)state;
    tcpu_snap_t a, b;
    int pid = (int)getpid();
    assert_int_equal(tcpu_snap(pid, &a), HR_OK);
    assert_true(a.n >= 1);
    volatile double x = 0;
    double t0 = now_s();
    while (now_s() - t0 < 0.05) x += 1;
    assert_int_equal(tcpu_snap(pid, &b), HR_OK);
    tcpu_groups_t g;
    tcpu_diff(&a, &b, &g);
    int total = 0;
    for (int i = 0; i < TG__COUNT; i++) total += g.threads[i];
    assert_int_equal(total, b.n);
    json_t *j = tcpu_json(&g, 1000);
    assert_non_null(j);
    json_decref(j);
    tcpu_free(&a);
    tcpu_free(&b);
    double busy;
    assert_true(machine_busy_s(&busy));
    assert_true(busy > 0);
}

double now_s(void) { return (double)hclock_mono_ns() / 1e9; }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slope_of_a_line),       cmocka_unit_test(test_sawtooth_keeps_up),
        cmocka_unit_test(test_growth_falls_behind),   cmocka_unit_test(test_high_backlog_falls_behind),
        cmocka_unit_test(test_next_rate),             cmocka_unit_test(test_search_brackets),
        cmocka_unit_test(test_thread_groups),
        cmocka_unit_test(test_snapshot_of_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
