/*
 * test_breaker.c - the circuit breaker (policy/breaker.h) through every
 * transition on an injected clock, and the incident shape: a provider
 * failing half its requests for thirty (compressed) minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "policy/breaker.h"

#include <stdlib.h>

typedef struct changes {
    int n;
    breaker_state_t from[64], to[64];
} changes_t;

static void on_change(void *ud, const char *name, breaker_state_t from, breaker_state_t to, int64_t now_ms)
{
    changes_t *c = ud;
    assert_string_equal(name, "fcm");
    if (c->n < 64) {
        c->from[c->n] = from;
        c->to[c->n] = to;
    }
    c->n++;
}

static breaker_t *mk(changes_t *c, int channel)
{
    breaker_opts_t o;
    breaker_opts_default(&o);
    o.name = "fcm";
    o.channel = channel;
    o.on_change = on_change;
    o.ud = c;
    return breaker_new(&o);
}

static void test_defaults(void **st)
{
    (void)st;
    breaker_opts_t o;
    breaker_opts_default(&o);
    assert_int_equal(o.error_pct, 20);
    assert_int_equal(o.min_requests, 20);
    assert_int_equal(o.cooldown_ms, 30000);
    assert_int_equal(o.probes, 3);
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
}

static void test_every_transition(void **st)
{
    (void)st;
    changes_t c = {0};
    int64_t t = 1000000;
    int64_t trans0 = METRIC_VALUE_AT(breaker_transitions, CH_PUSH);
    breaker_t *b = mk(&c, CH_PUSH);
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_CLOSED);

    /* Below the minimum request count nothing opens, even at 100 % errors. */
    for (int i = 0; i < 19; i++) {
        assert_true(breaker_allow(b, t));
        breaker_record(b, t, false);
    }
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);
    /* Results older than the window (10 s) are forgotten. */
    t += 11000;
    for (int i = 0; i < 19; i++) breaker_record(b, t, true);
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED); /* 0 of 19 failed in the window */
    /* 19 ok + 4 failures = 17.4 %: still closed; the 5th makes 5 of 24 = 20.8 %. */
    for (int i = 0; i < 4; i++) breaker_record(b, t, false);
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);
    breaker_record(b, t, false);
    assert_int_equal(breaker_state(b, t), BREAKER_OPEN);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.to[0], BREAKER_OPEN);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_OPEN);

    /* Open: nothing passes until the cool-down is over. */
    assert_false(breaker_allow(b, t));
    assert_int_equal(breaker_retry_at(b, t), t + 30000);
    assert_false(breaker_allow(b, t + 29999));
    breaker_record(b, t + 1, true); /* a late result of an earlier send: ignored */
    assert_int_equal(breaker_state(b, t + 29999), BREAKER_OPEN);

    /* Half-open: three probes, no more until their results are in. */
    t += 30000;
    assert_true(breaker_allow(b, t));
    assert_int_equal(breaker_state(b, t), BREAKER_HALF_OPEN);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_HALF_OPEN);
    assert_true(breaker_allow(b, t));
    assert_true(breaker_allow(b, t));
    assert_false(breaker_allow(b, t));
    assert_int_equal(breaker_retry_at(b, t), t);
    breaker_record(b, t, true);
    breaker_record(b, t, true);
    assert_int_equal(breaker_state(b, t), BREAKER_HALF_OPEN);
    assert_false(breaker_allow(b, t)); /* two succeeded, one still out: 3 in all */
    breaker_cancel(b, 1);               /* that one was not sent after all */
    assert_true(breaker_allow(b, t));   /* its slot is free again */
    /* One probe fails: open again, for a new cool-down. */
    breaker_record(b, t + 5, false);
    assert_int_equal(breaker_state(b, t + 5), BREAKER_OPEN);
    assert_int_equal(breaker_retry_at(b, t + 5), t + 5 + 30000);

    /* Half-open again, three successes: closed, with a clean window. */
    t += 5 + 30000;
    for (int i = 0; i < 3; i++) assert_true(breaker_allow(b, t));
    for (int i = 0; i < 3; i++) breaker_record(b, t, true);
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_CLOSED);
    breaker_record(b, t, false); /* 1 of 1: far below the minimum */
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);

    breaker_state_t want[][2] = {
        {BREAKER_CLOSED, BREAKER_OPEN},      {BREAKER_OPEN, BREAKER_HALF_OPEN},
        {BREAKER_HALF_OPEN, BREAKER_OPEN},   {BREAKER_OPEN, BREAKER_HALF_OPEN},
        {BREAKER_HALF_OPEN, BREAKER_CLOSED},
    };
    assert_int_equal(c.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c.from[i], want[i][0]);
        assert_int_equal(c.to[i], want[i][1]);
    }
    assert_int_equal(breaker_transitions(b), 5);
    assert_int_equal(METRIC_VALUE_AT(breaker_transitions, CH_PUSH) - trans0, 5);

    /* The gauge is the worst state of the channel's breakers. */
    changes_t c2 = {0};
    breaker_t *b2 = mk(&c2, CH_PUSH);
    for (int i = 0; i < 20; i++) breaker_record(b2, t, false);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_OPEN);
    breaker_free(b2);
    assert_int_equal(breaker_channel_state(CH_PUSH), BREAKER_CLOSED);
    breaker_free(b);
}

/* Time-bucketed window: old slots stop counting as time moves on. */
static void test_window_slides(void **st)
{
    (void)st;
    changes_t c = {0};
    breaker_t *b = mk(&c, -1);
    int64_t t = 0;
    /* 10 failures at t = 0..900 ms, then 40 successes at 9.5 s: 10/50. */
    for (int i = 0; i < 10; i++) breaker_record(b, t + i * 100, false);
    for (int i = 0; i < 40; i++) breaker_record(b, 9500, true);
    breaker_record(b, 9500, false); /* 11 of 51 = 21.6 % */
    assert_int_equal(breaker_state(b, 9500), BREAKER_OPEN);
    breaker_free(b);

    c = (changes_t){0};
    b = mk(&c, -1);
    for (int i = 0; i < 10; i++) breaker_record(b, t + i * 100, false);
    for (int i = 0; i < 40; i++) breaker_record(b, 9500, true);
    /* at 10.5 s the first second's slot (0..999 ms) has left the window:
     * 1 of 41 failed */
    breaker_record(b, 10500, false);
    assert_int_equal(breaker_state(b, 10500), BREAKER_CLOSED);
    assert_int_equal(c.n, 0);
    breaker_free(b);
}

/* The incident: a provider fails every other request for thirty minutes.
 * A dispatcher that would send one request per millisecond (1.8 million
 * in the outage) gets only the requests before the breaker opens and a few
 * probes per cool-down through; after recovery it is closed again within
 * one cool-down and the probes. */
static void test_incident_bounded(void **st)
{
    (void)st;
    changes_t c = {0};
    breaker_t *b = mk(&c, CH_SMS);
    int64_t t0 = 1700000000000, outage = 30 * 60 * 1000;
    int64_t attempts = 0, passed = 0, passed_open = 0, rejected0 = METRIC_VALUE_AT(breaker_rejected, CH_SMS);
    int64_t first_open = -1;
    for (int64_t t = t0; t < t0 + outage; t++) {
        attempts++;
        if (!breaker_allow(b, t)) continue;
        passed++;
        if (first_open >= 0) passed_open++;
        breaker_record(b, t, passed % 2 == 0); /* every other request fails */
        if (first_open < 0 && breaker_state(b, t) == BREAKER_OPEN) first_open = t;
    }
    assert_true(first_open >= 0);
    assert_true(first_open - t0 < 100); /* opened within the first 20-odd requests */
    /* After opening: at most `probes` per cool-down (60 cool-downs in 30 min). */
    int64_t cycles = outage / 30000 + 1;
    assert_true(passed_open <= cycles * 3);
    assert_true(passed <= 40 + cycles * 3);
    print_message("incident: %lld attempts, %lld passed (%lld after opening), %d transitions\n",
                  (long long)attempts, (long long)passed, (long long)passed_open, c.n);
    assert_int_equal(METRIC_VALUE_AT(breaker_rejected, CH_SMS) - rejected0, attempts - passed);
    /* Recovery: every request succeeds; closed within a cool-down. */
    int64_t t = t0 + outage, closed_at = -1;
    for (; t < t0 + outage + 120000 && closed_at < 0; t++) {
        if (!breaker_allow(b, t)) continue;
        breaker_record(b, t, true);
        if (breaker_state(b, t) == BREAKER_CLOSED) closed_at = t;
    }
    assert_true(closed_at >= 0);
    assert_true(closed_at - (t0 + outage) <= 30000);
    breaker_free(b);
}

/* breaker_list: one row per (provider, channel) with the worst state,
 * counts per state and the latest open_until; sorted by channel, name;
 * unexported breakers and freed ones are not listed. */
static void test_list(void **st)
{
    (void)st;
    breaker_opts_t o;
    breaker_opts_default(&o);
    o.min_requests = 1;
    o.cooldown_ms = 1000;
    o.probes = 2;
    o.channel = CH_EMAIL;
    o.name = "smtp";
    breaker_t *a = breaker_new(&o), *b = breaker_new(&o), *c = breaker_new(&o);
    o.name = "apns";
    o.channel = CH_PUSH;
    breaker_t *d = breaker_new(&o);
    o.channel = -1;
    o.name = "hidden";
    breaker_t *e = breaker_new(&o);

    breaker_info_t *v = NULL;
    int n = -1;
    breaker_list(&v, &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, "apns"); /* push sorts before email */
    assert_int_equal(v[0].channel, CH_PUSH);
    assert_string_equal(v[1].name, "smtp");
    assert_int_equal(v[1].breakers, 3);
    assert_int_equal(v[1].state, BREAKER_CLOSED);
    assert_int_equal(v[1].open_until_ms, 0);
    free(v);

    /* a opens at 100 (until 1100), b at 500 (until 1500); at 1200 a is
     * asked and turns half-open */
    assert_true(breaker_allow(a, 100));
    breaker_record(a, 100, false);
    assert_true(breaker_allow(b, 500));
    breaker_record(b, 500, false);
    breaker_list(&v, &n);
    assert_int_equal(v[1].state, BREAKER_OPEN);
    assert_int_equal(v[1].open, 2);
    assert_int_equal(v[1].open_until_ms, 1500);
    assert_int_equal(v[1].transitions, 2);
    assert_int_equal(v[0].state, BREAKER_CLOSED);
    free(v);
    assert_int_equal(breaker_state(a, 1200), BREAKER_HALF_OPEN);
    breaker_list(&v, &n);
    assert_int_equal(v[1].state, BREAKER_OPEN);
    assert_int_equal(v[1].open, 1);
    assert_int_equal(v[1].half_open, 1);
    free(v);
    breaker_free(b);
    breaker_list(&v, &n);
    assert_int_equal(v[1].state, BREAKER_HALF_OPEN);
    assert_int_equal(v[1].breakers, 2);
    assert_int_equal(v[1].open_until_ms, 0);
    free(v);

    breaker_free(a);
    breaker_free(c);
    breaker_free(d);
    breaker_free(e);
    breaker_list(&v, &n);
    assert_int_equal(n, 0);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_transition),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_incident_bounded),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
