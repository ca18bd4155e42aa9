/*
 * test_topics_plan.c - the sizing model behind `herald topics plan`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "stage/topics.h"

#include <math.h>
#include <string.h>

static const topics_plan_row_t *row(const topics_plan_t *p, const char *topic)
{
    for (int i = 0; i < p->nrows; i++)
        if (strcmp(p->rows[i].topic, topic) == 0) return &p->rows[i];
    fail_msg("no row for %s", topic);
    return NULL;
}

/* 10,000 events/s to 50 recipients each with the default shares. */
static void test_reference_load(void **state)
{
    (void)state;
    topics_plan_in_t in;
    topics_plan_defaults(&in);
    in.events_per_sec = 10000;
    in.fanout = 50;
    topics_plan_t p;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
    assert_int_equal(p.nrows, CH__COUNT + 3);

    /* push: 10,000 x 50 x 0.7 = 350,000/s at 2,000/s per worker = 175
     * workers; x1.5 = 262.5 -> 263 partitions */
    const topics_plan_row_t *push = row(&p, "notifications-push");
    assert_true(fabs(push->rate - 350000) < 1e-6);
    assert_int_equal(push->workers, 175);
    assert_int_equal(push->partitions, 263);
    /* sms: 10,000/s at 100/s per account = 100 workers -> 150 partitions */
    const topics_plan_row_t *sms = row(&p, "notifications-sms");
    assert_int_equal(sms->workers, 100);
    assert_int_equal(sms->partitions, 150);
    /* email: 100,000/s at 500/s = 200 workers -> 300 */
    assert_int_equal(row(&p, "notifications-email")->partitions, 300);
    /* in-app: 500,000/s at 20,000/s = 25 -> 38 */
    assert_int_equal(row(&p, "notifications-inapp")->workers, 25);
    assert_int_equal(row(&p, "notifications-inapp")->partitions, 38);
    /* status: one record per notification, 965,000/s at 50,000/s = 20 */
    assert_true(fabs(p.notifs_rate - 965000) < 1e-6);
    assert_int_equal(row(&p, TOPIC_STATUS)->workers, 20);
    /* fan-out: 1/20000 + 96.5/100000 s per event -> 10,000 events/s need 11 workers */
    assert_int_equal(row(&p, TOPIC_RAW)->workers, 11);

    /* bytes: 10 MB/s raw + 965,000 x 400 B + 965,000 x 120 B + DLQ */
    double produce = 10.0 + 386.0 + 115.8 + 0.386;
    assert_true(fabs(p.produce_mb_s - produce) < 1e-6);
    assert_true(fabs(p.cluster_mb_s - produce * 4) < 1e-6);
    assert_int_equal(p.brokers, (int)ceil(produce * 4 / 200));
    /* every topic has at least one partition per broker */
    for (int i = 0; i < p.nrows; i++) assert_true(p.rows[i].partitions >= p.brokers);
    int total = 0;
    for (int i = 0; i < p.nrows; i++) total += p.rows[i].partitions;
    assert_int_equal(p.total_partitions, total);
}

/* A small load still gets a cluster of `replication` brokers and at least
 * one partition per broker. */
static void test_minimums(void **state)
{
    (void)state;
    topics_plan_in_t in;
    topics_plan_defaults(&in);
    in.events_per_sec = 1;
    in.fanout = 1;
    in.share[CH_SMS] = 0;
    topics_plan_t p;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
    assert_int_equal(p.brokers, 3);
    for (int i = 0; i < p.nrows; i++) {
        assert_true(p.rows[i].workers >= 1);
        assert_int_equal(p.rows[i].partitions, 3);
    }
    assert_true(row(&p, "notifications-sms")->rate == 0);

    in.replication = 1;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
    assert_int_equal(p.brokers, 1);
    /* one worker x 1.5 -> 2 partitions */
    assert_int_equal(row(&p, "notifications-push")->partitions, 2);
}

/* Exact multiples do not round up an extra worker. */
static void test_exact_multiple(void **state)
{
    (void)state;
    topics_plan_in_t in;
    topics_plan_defaults(&in);
    in.events_per_sec = 1000;
    in.fanout = 2;
    in.share[CH_PUSH] = 1.0; /* 2,000/s = exactly one push worker */
    in.headroom = 1.0;
    in.replication = 1;
    topics_plan_t p;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
    assert_int_equal(row(&p, "notifications-push")->workers, 1);
    assert_int_equal(row(&p, "notifications-push")->partitions, 1);
    in.events_per_sec = 1001;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
    assert_int_equal(row(&p, "notifications-push")->workers, 2);
}

static void test_invalid(void **state)
{
    (void)state;
    topics_plan_in_t in;
    topics_plan_t p;
    topics_plan_defaults(&in);
    in.fanout = 1;
    assert_int_equal(topics_plan_compute(&in, &p), HR_INVALID); /* no events */
    in.events_per_sec = 10;
    in.share[CH_EMAIL] = 1.5;
    assert_int_equal(topics_plan_compute(&in, &p), HR_INVALID);
    in.share[CH_EMAIL] = 0.2;
    in.worker_rate[CH_SMS] = 0;
    assert_int_equal(topics_plan_compute(&in, &p), HR_INVALID);
    in.worker_rate[CH_SMS] = 100;
    in.headroom = 0.5;
    assert_int_equal(topics_plan_compute(&in, &p), HR_INVALID);
    in.headroom = 1.5;
    assert_int_equal(topics_plan_compute(&in, &p), HR_OK);
}

/* The command line: exit codes. */
static void test_cli(void **state)
{
    (void)state;
    char *ok[] = {"plan", "--events-per-sec", "500", "--fanout=4", "--push-share", "0.5",
                  "--sms-rate", "50", NULL};
    assert_int_equal(topics_plan_main(8, ok), 0);
    char *missing[] = {"plan", "--fanout", "4", NULL};
    assert_int_equal(topics_plan_main(3, missing), 2);
    char *bad[] = {"plan", "--events-per-sec", "lots", "--fanout", "4", NULL};
    assert_int_equal(topics_plan_main(5, bad), 2);
    char *unknown[] = {"plan", "--events-per-sec", "5", "--fanout", "4", "--pushshare", "1", NULL};
    assert_int_equal(topics_plan_main(7, unknown), 2);
    char *range[] = {"plan", "--events-per-sec", "5", "--fanout", "4", "--email-share", "2", NULL};
    assert_int_equal(topics_plan_main(7, range), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_load),
        cmocka_unit_test(test_minimums),
        cmocka_unit_test(test_exact_multiple),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
