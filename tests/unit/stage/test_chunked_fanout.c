/*
 * Chunked fan-out through the real stages on a real embedded bus and a real
 * SQLite store: one event to an actor with 20,000 followers (HERALD_TEST_FOLLOWERS: more) and a small
 * fanout.chunk_threshold is expanded by chunk tasks spread over the
 * partitions of fanout-chunks, by two fan-out workers, and every follower
 * gets exactly one notification. Then the same event's records are read
 * again from the start (as after a crash before any offset was committed):
 * the chunks are re-created identically and nobody gets a second one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "stage/chunks.h"
#include "stage/stage.h"
#include "stage/topics.h"

/* HERALD_TEST_FOLLOWERS overrides the audience size (a manual scale run). */
static int FOLLOWERS = 20000;

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    pipeline_t *pipe;
} fx_t;

static void open_app(fx_t *f)
{
    f->app.cfg = &f->cfg;
    atomic_store(&f->app.stopping, 0);
    env_open(&f->app, f->dir, 0);
}

static void close_app(fx_t *f)
{
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    env_close(&f->app);
}

static int setup(void **state)
{
    const char *env = getenv("HERALD_TEST_FOLLOWERS");
    if (env && strtol(env, NULL, 10) >= 10000) FOLLOWERS = (int)strtol(env, NULL, 10);
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "chunks");
    config_init(&f->cfg);
    env_set(&f->cfg, "data_dir", f->dir);
    env_set(&f->cfg, "bus.partitions", "4");
    env_set(&f->cfg, "bus.fsync", "never");
    env_set(&f->cfg, "pipeline.workers", "2");
    env_set(&f->cfg, "fanout.chunk_threshold", "2000");
    env_set(&f->cfg, "fanout.chunk_size", "1500");
    env_set(&f->cfg, "ratelimit.email", "0");
    open_app(f);

    /* the audience, written straight into the database in one transaction */
    char *db = xasprintf("%s/herald.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    free(db);
    char *sql = xasprintf(
        "BEGIN;"
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO users (user_id, email, locale, timezone, updated_at)"
        " SELECT printf('f%%06d', i), printf('f%%06d@example.com', i), 'en', 'UTC', 0 FROM n;"
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO follows (actor, follower, created_at) SELECT 'kylie', printf('f%%06d', i), 0 FROM n;"
        "COMMIT;",
        FOLLOWERS - 1, FOLLOWERS - 1);
    char *err = NULL;
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, &err), SQLITE_OK);
    free(sql);
    sqlite3_close(h);
    template_rec_t t = {.event_type = "posted", .channel = CH_EMAIL, .locale = "en",
                        .title = "{{actor}} posted", .body = "Hi {{user_id}}"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    close_app(f);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void produce_raw(fx_t *f, const char *key, const char *value)
{
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(f->app.bus, TOPIC_RAW, -1, key, strlen(key), value,
                                 strlen(value), &b),
                     HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

static int64_t lag_of(fx_t *f, const char *group, const char *topic, int *parts_with_records)
{
    bus_lag_t *l = NULL;
    int n = 0;
    assert_int_equal(bus_lag(f->app.bus, group, topic, &l, &n), HR_OK);
    int64_t sum = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        sum += l[i].lag;
        if (l[i].end_offset > 0) used++;
    }
    free(l);
    if (parts_with_records) *parts_with_records = used;
    return sum;
}

/* Counts the sandbox's email lines per follower; returns lines. */
static int count_lines(fx_t *f, unsigned char *per_user)
{
    char *path = xasprintf("%s/sandbox/email.jsonl", f->dir);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return 0;
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof(line), fp)) {
        if (!strchr(line, '\n')) break; /* being written */
        lines++;
        if (!per_user) continue;
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        const char *u = json_string_value(json_object_get(o, "user_id"));
        assert_non_null(u);
        assert_true(u[0] == 'f');
        int i = (int)strtol(u + 1, NULL, 10);
        assert_true(i >= 0 && i < FOLLOWERS);
        if (per_user[i] < 255) per_user[i]++;
        json_decref(o);
    }
    fclose(fp);
    return lines;
}

/* Waits until FOLLOWERS lines are written and nothing is left to process. */
static void wait_all(fx_t *f)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 1200; i++) {
        if (count_lines(f, NULL) >= FOLLOWERS && lag_of(f, GROUP_CHUNKS, TOPIC_CHUNKS, NULL) == 0 &&
            lag_of(f, GROUP_FANOUT, TOPIC_RAW, NULL) == 0 &&
            lag_of(f, "dispatch-email", "notifications-email", NULL) == 0 &&
            lag_of(f, GROUP_STATUS, TOPIC_STATUS, NULL) == 0)
            return;
        nanosleep(&ts, NULL);
    }
    fail_msg("not every follower got the notification: %d lines", count_lines(f, NULL));
}

static void check_exactly_once(fx_t *f)
{
    unsigned char *per = calloc(FOLLOWERS, 1);
    assert_int_equal(count_lines(f, per), FOLLOWERS);
    for (int i = 0; i < FOLLOWERS; i++)
        if (per[i] != 1) fail_msg("follower f%06d got %d notifications", i, per[i]);
    free(per);
}

static const char *EVENT = "{\"event_id\":\"big1\",\"type\":\"posted\",\"actor\":\"kylie\","
                           "\"audience\":{\"followers_of\":\"kylie\"},\"channels\":[\"email\"]}";

static void test_big_audience_goes_out_in_chunks_once(void **state)
{
    fx_t *f = *state;
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
    metrics_snap_t *ms = calloc(1, sizeof(*ms));
    metrics_snapshot(ms); /* before the event: nothing is fanned out yet */
    int64_t base = ms->notifs_fanned_out;
    int64_t t0 = hclock_mono_ns();
    produce_raw(f, "big1", EVENT);
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 12000; i++) { /* expanded: every notification produced */
        metrics_snapshot(ms);
        if (ms->notifs_fanned_out - base >= FOLLOWERS) break;
        nanosleep(&nap, NULL);
    }
    int64_t t_expand = hclock_mono_ns() - t0;
    wait_all(f);
    int64_t t_all = hclock_mono_ns() - t0;
    free(ms);
    fprintf(stderr, "figures: %d followers expanded in %.2f s (%.0f notifications/s), delivered in %.2f s\n",
            FOLLOWERS, (double)t_expand / 1e9, FOLLOWERS / ((double)t_expand / 1e9), (double)t_all / 1e9);
    check_exactly_once(f);
    int want_chunks = (FOLLOWERS - 2000 + 1499) / 1500;
    /* (20,000 - the 2,000 done directly) / 1,500 = 12 chunk tasks, spread */
    int parts = 0;
    lag_of(f, GROUP_CHUNKS, TOPIC_CHUNKS, &parts);
    assert_true(parts >= 3);
    bus_lag_t *l = NULL;
    int n = 0;
    assert_int_equal(bus_lag(f->app.bus, GROUP_CHUNKS, TOPIC_CHUNKS, &l, &n), HR_OK);
    int64_t chunks = 0;
    for (int i = 0; i < n; i++) {
        chunks += l[i].end_offset;
        fprintf(stderr, "figures: fanout-chunks partition %d: %lld chunk task(s)\n", l[i].partition,
                (long long)l[i].end_offset);
    }
    free(l);
    assert_int_equal(chunks, want_chunks);

    /* The crash case: the event's record and its chunk tasks are delivered
     * again from the start (a restart that had committed nothing). The
     * plan is the same; its 16 new copies are recognised and dropped and the
     * replayed ones check the store: still one notification each. */
    close_app(f);
    open_app(f);
    assert_int_equal(bus_group_reset(f->app.bus, GROUP_FANOUT, TOPIC_RAW, 0), HR_OK);
    assert_int_equal(bus_group_reset(f->app.bus, GROUP_CHUNKS, TOPIC_CHUNKS, 0), HR_OK);
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
    struct timespec ts = {0, 50 * 1000 * 1000};
    bool done = false;
    for (int i = 0; i < 1200 && !done; i++) {
        int64_t end = 0;
        assert_int_equal(bus_lag(f->app.bus, GROUP_CHUNKS, TOPIC_CHUNKS, &l, &n), HR_OK);
        for (int j = 0; j < n; j++) end += l[j].end_offset;
        free(l);
        if (end == 2 * want_chunks && lag_of(f, GROUP_CHUNKS, TOPIC_CHUNKS, NULL) == 0 &&
            lag_of(f, GROUP_FANOUT, TOPIC_RAW, NULL) == 0 &&
            lag_of(f, "dispatch-email", "notifications-email", NULL) == 0)
            done = true;
        else
            nanosleep(&ts, NULL);
    }
    if (!done) { /* which condition did not settle (a rare failure under load) */
        int64_t end = 0;
        assert_int_equal(bus_lag(f->app.bus, GROUP_CHUNKS, TOPIC_CHUNKS, &l, &n), HR_OK);
        for (int j = 0; j < n; j++) end += l[j].end_offset;
        free(l);
        fprintf(stderr, "replay did not settle: chunk records %lld (want %lld), lag chunks %lld, raw %lld, email %lld\n",
                (long long)end, (long long)(2 * want_chunks), (long long)lag_of(f, GROUP_CHUNKS, TOPIC_CHUNKS, NULL),
                (long long)lag_of(f, GROUP_FANOUT, TOPIC_RAW, NULL),
                (long long)lag_of(f, "dispatch-email", "notifications-email", NULL));
    }
    assert_true(done);
    check_exactly_once(f);
    /* the second copies were dropped, the first ones expanded again */
    metrics_snap_t *m = calloc(1, sizeof(*m));
    metrics_snapshot(m);
    assert_int_equal(m->fanout_chunks_planned, 2 * want_chunks);
    assert_int_equal(m->fanout_chunks_duplicate, want_chunks);
    assert_int_equal(m->fanout_chunks_expanded, 2 * want_chunks);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_big_audience_goes_out_in_chunks_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
