/*
 * Digests end to end (issue 15 item 6): the real stages on a real embedded
 * bus and SQLite store, in-process, with an injected clock. 20 likes by 20
 * actors for one user inside the window are delivered as one notification
 * whose text has count 20 and the first and last actors; the same with a
 * restart of the whole pipeline (bus and store closed and opened again)
 * after 10 likes; and dispatch processing every record again from the
 * start (what a crash before its offsets were committed does) neither
 * delivers again nor changes the count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "model/digest.h"
#include "stage/scheduler.h"
#include "stage/stage.h"
#include "stage/topics.h"

#define T0 1800000000000LL
#define WINDOW_MS (10 * 60 * 1000)

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    pipeline_t *pipe;
} fx_t;

static void open_parts(fx_t *f)
{
    env_open(&f->app, f->dir, 0);
}

static void close_parts(fx_t *f)
{
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    env_close(&f->app);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "digest");
    /* one partition: the likes reach fan-out, and so the digest, in order */
    env_config(&f->cfg, f->dir, (const char *[]){"bus.partitions", "1", "bus.fsync", "never", NULL});
    f->app.cfg = &f->cfg;
    hclock_set_fake(T0);
    open_parts(f);
    user_t u = {.user_id = "kim", .email = "kim@example.com", .locale = "en", .timezone = "UTC"};
    assert_int_equal(store_user_put(f->app.store, &u), HR_OK);
    template_rec_t t = {.event_type = "liked", .channel = CH_EMAIL, .locale = "en",
                        .title = "{{digest.first_actor}} and {{digest.others}} others liked your post",
                        .body = "{{digest.count}} likes on {{data.post_id}}, the latest by {{digest.last_actor}}",
                        .digest_window_ms = WINDOW_MS, .digest_key = "{{data.post_id}}"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    close_parts(f);
    hclock_set_fake(0);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void start(fx_t *f)
{
    atomic_store(&f->app.stopping, 0); /* a restart: pipeline_stop set it */
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
}

/* Like k (1-based) of post p1 by actor a<k>. */
static void like(fx_t *f, int k)
{
    char ev[640], id[32];
    snprintf(id, sizeof(id), "like-%02d", k);
    snprintf(ev, sizeof(ev),
             "{\"event_id\":\"%s\",\"type\":\"liked\",\"actor\":\"a%02d\",\"audience\":{\"users\":[\"kim\"]},"
             "\"data\":{\"post_id\":\"p1\"}}",
             id, k);
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(f->app.bus, TOPIC_RAW, -1, id, strlen(id), ev, strlen(ev), &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

static json_t *sandbox_lines(fx_t *f)
{
    json_t *arr = json_array();
    char *path = xasprintf("%s/sandbox/email.jsonl", f->dir);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return arr;
    char line[8192];
    while (fgets(line, sizeof(line), fp)) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_array_append_new(arr, o);
    }
    fclose(fp);
    return arr;
}

/* The stored status of like k's notification; ST__COUNT while unknown.
 * *detail (may be NULL) gets a copy of its error (free it). */
static notif_status_t member_status(fx_t *f, int k, char **detail)
{
    char ev[32], id[33];
    snprintf(ev, sizeof(ev), "like-%02d", k);
    notif_make_id(0, HSTR(ev), HSTR("kim"), CH_EMAIL, id);
    notif_row_t row;
    if (detail) *detail = NULL;
    if (store_notif_get(f->app.store, id, &row, NULL, NULL) != HR_OK) return ST__COUNT;
    notif_status_t st = row.status;
    if (detail && row.error) *detail = strdup(row.error);
    notif_row_clear(&row);
    return st;
}

/* Waits until likes from..to are recorded digested. */
static void wait_digested(fx_t *f, int from, int to)
{
    for (int k = from; k <= to; k++) {
        notif_status_t st = ST__COUNT;
        for (int i = 0; i < 1000 && (st = member_status(f, k, NULL)) != ST_DIGESTED; i++) usleep(10000);
        assert_int_equal(st, ST_DIGESTED);
    }
}

/* Waits until the sandbox has want lines and their statuses are stored. */
static json_t *wait_lines(fx_t *f, size_t want)
{
    json_t *l = NULL;
    for (int i = 0; i < 1000; i++) {
        json_decref(l);
        l = sandbox_lines(f);
        if (json_array_size(l) >= want) break;
        usleep(10000);
    }
    assert_int_equal(json_array_size(l), want);
    return l;
}

/* The window ends: the scheduler puts the digest's token back, dispatch
 * delivers the digest, the want-th sandbox line. Returns that line (a new
 * reference). */
static json_t *flush_window(fx_t *f, int64_t at, size_t want)
{
    hclock_set_fake(at);
    int moved = 0;
    assert_int_equal(scheduler_run_once(&f->app, at, &moved), HR_OK);
    assert_int_equal(moved, 1); /* one token: one digest */
    json_t *l = wait_lines(f, want);
    json_t *line = json_incref(json_array_get(l, want - 1));
    json_decref(l);
    return line;
}

/* The delivered notification: 20 likes, a01 first, a20 last; its id is
 * the digest's (the window opened at T0); each like is recorded digested
 * into it; the delivered one is recorded sent with the spliced text. */
static void check_delivered(fx_t *f, json_t *line)
{
    assert_string_equal(json_string_value(json_object_get(line, "title")), "a01 and 19 others liked your post");
    assert_string_equal(json_string_value(json_object_get(line, "body")), "20 likes on p1, the latest by a20");
    char id[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp1"), T0, id);
    assert_string_equal(json_string_value(json_object_get(line, "notification_id")), id);
    char want[64];
    snprintf(want, sizeof(want), "into %s", id);
    for (int k = 1; k <= 20; k++) {
        char *detail = NULL;
        assert_int_equal(member_status(f, k, &detail), ST_DIGESTED);
        assert_non_null(detail);
        assert_string_equal(detail, want);
        free(detail);
    }
    notif_row_t row;
    notif_status_t st = ST__COUNT;
    for (int i = 0; i < 1000; i++) {
        if (store_notif_get(f->app.store, id, &row, NULL, NULL) == HR_OK) {
            st = row.status;
            assert_string_equal(row.title, "a01 and 19 others liked your post");
            notif_row_clear(&row);
            if (st == ST_SENT) break;
        }
        usleep(10000);
    }
    assert_int_equal(st, ST_SENT);
}

static void test_twenty_likes_one_notification(void **state)
{
    fx_t *f = *state;
    start(f);
    for (int k = 1; k <= 20; k++) {
        hclock_set_fake(T0 + (k - 1) * 1000); /* one a second, all inside the window */
        like(f, k);
        if (k == 1) wait_digested(f, 1, 1); /* the first opens the window at T0 */
    }
    wait_digested(f, 1, 20);
    /* nothing delivered before the window ends */
    json_t *l = sandbox_lines(f);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    int moved = -1;
    assert_int_equal(scheduler_run_once(&f->app, T0 + WINDOW_MS - 1, &moved), HR_OK);
    assert_int_equal(moved, 0);

    json_t *line = flush_window(f, T0 + WINDOW_MS, 1);
    check_delivered(f, line);
    json_decref(line);

    /* dispatch reads everything again from the start (a crash before its
     * offsets were committed): no second delivery, the same count */
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    assert_int_equal(bus_group_reset(f->app.bus, "dispatch-email", "notifications-email", 0), HR_OK);
    start(f);
    for (int i = 0; i < 300; i++) {
        bus_lag_t *lags = NULL;
        int nl = 0;
        assert_int_equal(bus_lag(f->app.bus, "dispatch-email", "notifications-email", &lags, &nl), HR_OK);
        int64_t lag = 0;
        for (int k = 0; k < nl; k++) lag += lags[k].end_offset - (lags[k].committed < 0 ? 0 : lags[k].committed);
        free(lags);
        if (lag == 0) break;
        usleep(10000);
    }
    /* the likes were offered again: recorded digested, they are skipped
     * like anything recorded as sent (the store's digest state counts a
     * member once besides, for a status sink that lags: test_store_digest) */
    for (int k = 1; k <= 20; k++) assert_int_equal(member_status(f, k, NULL), ST_DIGESTED);
    usleep(200000);
    l = sandbox_lines(f);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    digest_info_t di;
    char id[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp1"), T0, id);
    assert_int_equal(store_digest_close(f->app.store, id, &di), HR_OK);
    assert_int_equal(di.count, 20);
    digest_info_clear(&di);
    /* nothing more is due: no second token, no second digest */
    assert_int_equal(scheduler_run_once(&f->app, T0 + 3 * WINDOW_MS, &moved), HR_OK);
    assert_int_equal(moved, 0);

    /* a like after the window opens the next digest */
    hclock_set_fake(T0 + WINDOW_MS + 5000);
    like(f, 21);
    wait_digested(f, 21, 21);
    line = flush_window(f, T0 + 2 * WINDOW_MS + 5000, 2);
    assert_string_equal(json_string_value(json_object_get(line, "title")), "a21 and 0 others liked your post");
    json_decref(line);
}

/* 10 likes, the whole pipeline stopped (bus and store closed) and started
 * again, 10 more likes, the window ends: one notification, count 20. */
static void test_twenty_likes_across_a_restart(void **state)
{
    fx_t *f = *state;
    start(f);
    for (int k = 1; k <= 10; k++) {
        hclock_set_fake(T0 + (k - 1) * 1000);
        like(f, k);
        if (k == 1) wait_digested(f, 1, 1);
    }
    wait_digested(f, 1, 10);
    close_parts(f);
    open_parts(f);
    start(f);
    for (int k = 11; k <= 20; k++) {
        hclock_set_fake(T0 + (k - 1) * 1000);
        like(f, k);
    }
    wait_digested(f, 11, 20);
    json_t *l = sandbox_lines(f);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    json_t *line = flush_window(f, T0 + WINDOW_MS, 1);
    check_delivered(f, line);
    json_decref(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_twenty_likes_one_notification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twenty_likes_across_a_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
