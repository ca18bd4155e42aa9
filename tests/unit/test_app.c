/*
 * test_app.c - app.c: the services built from the config, as `herald
 * serve` builds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "core/log.h"
#include "model/event.h"
#include "stage/ingest.h"

typedef struct fx {
    char dir[64];
    config_t cfg;
} fx_t;

static int setup(void **st)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "app");
    env_config(&f->cfg, f->dir,
               (const char *[]){"http.listen", "127.0.0.1:0", "bus.partitions", "2", "bus.fsync", "never", NULL});
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx_t *f = *st;
    config_release(&f->cfg);
    env_rmdir(f->dir);
    free(f);
    return 0;
}

static void set(fx_t *f, const char *key, const char *value) { env_set(&f->cfg, key, value); }

static void test_bad_roles_open_nothing(void **st)
{
    fx_t *f = *st;
    /* config_set refuses it; a caller filling config_t itself gets the same check */
    char why[256];
    assert_int_equal(config_set(&f->cfg, "roles", "fanout,dispatch:fax", why, sizeof(why)), HR_INVALID);
    free(f->cfg.roles);
    f->cfg.roles = xstrdup("fanout,dispatch:fax");
    app_open_opts_t o = {.store = true, .topics = true};
    app_t *app = (app_t *)&o; /* must be reset */
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_INVALID);
    assert_null(app);
    assert_non_null(strstr(o.why, "'dispatch:fax'"));
    /* nothing was created */
    char *bus = xasprintf("%s/bus", f->dir);
    assert_int_not_equal(access(bus, F_OK), 0);
    free(bus);
}

static void test_stages_without_api(void **st)
{
    fx_t *f = *st;
    set(f, "roles", "fanout, status");
    app_open_opts_t o = {.store = true, .topics = true};
    app_t *app = NULL;
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    assert_non_null(app->bus);
    assert_non_null(app->store);
    assert_ptr_equal(app->cfg, &f->cfg);
    assert_int_equal(bus_partitions(app->bus, TOPIC_RAW), 2);
    assert_int_equal(bus_partitions(app->bus, topic_for_channel(CH_EMAIL)), 2);
    assert_int_equal(bus_partitions(app->bus, TOPIC_DLQ), 2);
    char why[256];
    assert_int_equal(app_start_services(app, why, sizeof(why)), HR_OK);
    /* no ingest role: the ops endpoints only (the API answers 404, see test_metrics) */
    assert_true(app_http_port(app) > 0);
    assert_int_equal(atomic_load(&app->stopping), 0);
    app_close(app);
}

static void test_ingest_then_close_flushes(void **st)
{
    fx_t *f = *st;
    set(f, "roles", "ingest");
    app_open_opts_t o = {.store = true, .topics = true};
    app_t *app = NULL;
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    char why[256];
    assert_int_equal(app_start_services(app, why, sizeof(why)), HR_OK);
    assert_true(app_http_port(app) > 0);

    json_error_t je;
    json_t *doc = json_loads("{\"event_id\":\"e-1\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]}}", 0, &je);
    assert_non_null(doc);
    event_t ev;
    problem_t pb;
    assert_int_equal(event_from_json(doc, &ev, &pb), HR_OK);
    long long accepted0 = METRIC_VALUE(events_accepted);
    assert_int_equal(ingest_publish(app, &ev, 1), HR_OK);
    assert_int_equal(METRIC_VALUE(events_accepted) - accepted0, 1);
    assert_int_equal(bus_flush(app->bus, 10000), HR_OK);
    assert_int_equal(bus_outstanding(app->bus), 0);
    event_clear(&ev);
    json_decref(doc);
    app_close(app);

    /* the event is on raw-events after a restart */
    o = (app_open_opts_t){.store = false, .topics = false};
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(app->bus, GROUP_FANOUT, TOPIC_RAW, &lag, &n), HR_OK);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += lag[i].end_offset;
    free(lag);
    assert_int_equal(total, 1);
    app_close(app);
}

/* bus.embedded.max_pending_bytes reaches the embedded bus; kafka.* does not. */
static void test_embedded_settings(void **st)
{
    fx_t *f = *st;
    bus_topic_opts_t to = {.partitions = 1, .retention_ms = -1, .retention_bytes = -1};
    char *big = xcalloc(1, 8192);
    memset(big, 'x', 8191);

    set(f, "kafka.max_pending_bytes", "4096"); /* ignored (warned) on the embedded bus */
    app_open_opts_t o = {0};
    app_t *app = NULL;
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    assert_int_equal(bus_topic_ensure(app->bus, "t", &to), HR_OK);
    /* two records in one call: the partition's lock is held throughout, so
     * the flusher cannot empty the buffer between them */
    bus_rec_t two[2] = {{.partition = 0, .value = big, .value_len = 8191},
                        {.partition = 0, .value = big, .value_len = 8191}};
    int done = 0;
    assert_int_equal(bus_produce_batch(app->bus, "t", two, 2, NULL, &done), HR_OK);
    assert_int_equal(done, 2);
    app_close(app);

    set(f, "bus.embedded.max_pending_bytes", "4096");
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    /* a record larger than a partition's pending buffer goes alone; the
     * next one waits for the flusher */
    assert_int_equal(bus_produce_batch(app->bus, "t", two, 2, NULL, &done), HR_AGAIN);
    assert_int_equal(done, 1);
    app_close(app);
    free(big);
}

static int loose = 0, seen = 0;

static int check_mode(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    if (ftw->level == 0) return 0; /* the test's own directory */
    seen++;
    if (sb->st_mode & 077) {
        fprintf(stderr, "%s is mode %o\n", path, (unsigned)(sb->st_mode & 07777));
        loose++;
    }
    return 0;
}

/* Nothing herald writes is readable by other users: the data dir is 0700
 * and every file under it 0600 (bus segments, SQLite files, sandbox). */
static void test_data_is_private(void **st)
{
    fx_t *f = *st;
    char data[128];
    snprintf(data, sizeof(data), "%s/data", f->dir);
    set(f, "data_dir", data);
    set(f, "roles", "all");
    mode_t old = umask(022);
    app_open_opts_t o = {.store = true, .topics = true};
    app_t *app = NULL;
    assert_int_equal(app_open(&f->cfg, &o, &app), HR_OK);
    char why[256];
    assert_int_equal(app_start_services(app, why, sizeof(why)), HR_OK);
    json_error_t je;
    json_t *doc = json_loads("{\"event_id\":\"e-p\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]}}", 0, &je);
    event_t ev;
    problem_t pb;
    assert_int_equal(event_from_json(doc, &ev, &pb), HR_OK);
    assert_int_equal(ingest_publish(app, &ev, 1), HR_OK);
    assert_int_equal(bus_flush(app->bus, 10000), HR_OK);
    event_clear(&ev);
    json_decref(doc);
    app_close(app);
    umask(old);
    nftw(f->dir, check_mode, 16, FTW_PHYS);
    assert_true(seen > 3);
    assert_int_equal(loose, 0);
}

int main(void)
{
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_roles_open_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stages_without_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_then_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_is_private, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
