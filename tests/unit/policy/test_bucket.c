/*
 * test_bucket.c - provider token buckets (policy/bucket.h) on an injected
 * clock, and the cluster-wide budget against a real redis-server started
 * here (skipped with the reason when redis-server is missing, unless
 * CI=true): two buckets (two processes) share one budget, Redis killed
 * mid-run (fail open, counted) and back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "policy/bucket.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

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

/* ---- the cluster-wide budget on a real redis-server ---- */

static char tmpdir[256];
static char sock[300];
static pid_t redis_pid = -1;

static bool have_redis(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *d = strtok(buf, ":"); d; d = strtok(NULL, ":")) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/redis-server", d);
        if (access(p, X_OK) == 0) return true;
    }
    return false;
}

static bool redis_or_skip(void)
{
    if (have_redis()) return true;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("redis-server is not installed (scripts/deps.sh --test)");
    print_message("skipped: redis-server is not installed (scripts/deps.sh --test installs it)\n");
    return false;
}

static void redis_start(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald-bucket-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
    }
    snprintf(sock, sizeof(sock), "%s/r.sock", tmpdir);
    char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                    "--loglevel", "warning", "--dir", tmpdir, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    assert_int_equal(posix_spawnp(&redis_pid, "redis-server", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 1000; i++) {
        redisContext *c = redisConnectUnix(sock);
        if (c && !c->err) {
            redisReply *y = redisCommand(c, "PING");
            bool ok = y && y->type == REDIS_REPLY_STATUS;
            if (y) freeReplyObject(y);
            redisFree(c);
            if (ok) return;
        } else if (c) {
            redisFree(c);
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    fail_msg("redis-server did not come up on %s", sock);
}

static void redis_kill(void)
{
    if (redis_pid <= 0) return;
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
    unlink(sock);
}

#define T0 INT64_C(1700000000000)

/* Takes one token at a time at `ms` until refused; returns how many. */
static int drain_at(bucket_t *b, int64_t ms)
{
    int n = 0;
    while (bucket_take(b, ms, 1) == 0 && n < 100000) n++;
    return n;
}

static void test_redis_shared_budget(void **st)
{
    (void)st;
    if (!redis_or_skip()) skip();
    redis_start();
    char why[256];
    bucket_t a, b;
    /* two processes, each with the whole rate locally: 100/s, burst 100 */
    bucket_init(&a, 100, 100, T0);
    bucket_init(&b, 100, 100, T0);
    assert_int_equal(bucket_share(&a, "nowhere", "acct", 100, 100, 500, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "budget.redis"));
    assert_int_equal(bucket_share(&a, sock, "acct", 100, 100, 500, why, sizeof(why)), HR_OK);
    assert_int_equal(bucket_share(&b, sock, "acct", 100, 100, 500, why, sizeof(why)), HR_OK);
    int64_t err0 = METRIC_VALUE(bucket_redis_errors);
    /* the burst is shared: together they get 100 at once, not 200 */
    int ga = 0, gb = 0;
    for (int i = 0; i < 150; i++) {
        ga += bucket_take(&a, T0, 1) == 0;
        gb += bucket_take(&b, T0, 1) == 0;
    }
    assert_int_equal(ga + gb, 100);
    assert_true(ga > 0 && gb > 0);
    /* refused: the wait is what the shared budget needs (1 token at 100/s) */
    int64_t w = bucket_take(&a, T0, 1);
    assert_true(w >= 1 && w <= 10);
    /* over a simulated second at a steady demand from both, the cluster
     * gets the rate (plus at most one lease each), not twice it */
    int granted = 0;
    for (int64_t ms = 1; ms <= 1000; ms++) granted += drain_at(&a, T0 + ms) + drain_at(&b, T0 + ms);
    assert_true(granted >= 95 && granted <= 100 + 2 * 5);
    /* a refund is spent by the next take without asking Redis */
    bucket_refund(&a, 3);
    assert_int_equal(bucket_take(&a, T0 + 1000, 3), 0);
    /* an instance with the default rate of its type, budget.redis set */
    config_t c;
    config_init(&c);
    bucket_t f;
    bucket_init(&f, 500, 500, T0);
    assert_int_equal(config_set(&c, "budget.redis", sock, why, sizeof(why)), HR_OK);
    assert_int_equal(bucket_share_config(&f, &c, "fcm", "fcm", why, sizeof(why)), HR_OK);
    assert_non_null(f.shared);
    assert_int_equal(bucket_available(&f, T0), 500);
    bucket_release(&f);
    bucket_init(&f, 0, 0, T0); /* unlimited (sandbox): stays local */
    assert_int_equal(bucket_share_config(&f, &c, "sandbox", "sandbox", why, sizeof(why)), HR_OK);
    assert_null(f.shared);
    config_release(&c);
    /* the key expires once idle */
    redisContext *rc = redisConnectUnix(sock);
    redisReply *y = redisCommand(rc, "PTTL herald:bucket:acct");
    assert_true(y->type == REDIS_REPLY_INTEGER && y->integer > 0 && y->integer <= 61000);
    freeReplyObject(y);
    /* a script cache flush (what a restart does) is survived */
    y = redisCommand(rc, "SCRIPT FLUSH");
    freeReplyObject(y);
    redisFree(rc);
    int full = drain_at(&b, T0 + 3000); /* full again, plus what b still held */
    assert_true(full >= 100 && full <= 105);
    assert_int_equal(METRIC_VALUE(bucket_redis_errors), err0);
    bucket_release(&a);
    bucket_release(&b);
    redis_kill();
}

static void test_redis_outage(void **st)
{
    (void)st;
    if (!redis_or_skip()) skip();
    redis_start();
    char why[256];
    bucket_t a;
    bucket_init(&a, 10, 10, T0);
    assert_int_equal(bucket_share(&a, sock, "down", 10, 10, 200, why, sizeof(why)), HR_OK);
    assert_int_equal(drain_at(&a, T0), 10);
    int64_t err0 = METRIC_VALUE(bucket_redis_errors);
    /* killed: every take is granted (fail open) and counted */
    redis_kill();
    for (int i = 0; i < 20; i++) assert_int_equal(bucket_take(&a, T0 + 1, 1), 0);
    assert_int_equal(METRIC_VALUE(bucket_redis_errors) - err0, 20);
    /* back (empty: a full bucket) after the retry interval: limited again */
    redis_start();
    assert_int_equal(drain_at(&a, T0 + 1100), 10);
    assert_true(bucket_take(&a, T0 + 1100, 1) > 0);
    assert_int_equal(METRIC_VALUE(bucket_redis_errors) - err0, 20);
    bucket_release(&a);
    redis_kill();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_take_n_and_wait),
        cmocka_unit_test(test_unlimited_and_slow),
        cmocka_unit_test(test_defaults_and_config),
        cmocka_unit_test(test_redis_shared_budget),
        cmocka_unit_test(test_redis_outage),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    redis_kill();
    if (tmpdir[0]) {
        unlink(sock);
        rmdir(tmpdir);
    }
    return r;
}
