/*
 * app_env.h - the small herald a stage, provider or app test runs against:
 * a fresh directory under /tmp, a config whose data_dir is that directory,
 * the SQLite store at <dir>/herald.db and the embedded bus at <dir>/bus
 * with every topic created. One copy of the set-up the tests used to repeat.
 *
 * Include after <cmocka.h> (the helpers assert). A typical fixture:
 *
 *     env_mkdir(f->dir, "pipe");
 *     env_config(&f->cfg, f->dir, (const char *[]){"bus.partitions", "2", NULL});
 *     f->app.cfg = &f->cfg;
 *     env_open(&f->app, f->dir, 0);
 *     ...
 *     env_close(&f->app);
 *     env_rmdir(f->dir);
 *     config_release(&f->cfg);
 */
#ifndef HERALD_TEST_APP_ENV_H
#define HERALD_TEST_APP_ENV_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "bus/bus.h"
#include "config/config.h"
#include "core/common.h"
#include "stage/topics.h"
#include "store/store.h"

#define ENV_DIR_MAX 64

/* Makes dir a new directory /tmp/herald-<tag>-XXXXXX. */
static inline void env_mkdir(char dir[ENV_DIR_MAX], const char *tag)
{
    int n = snprintf(dir, ENV_DIR_MAX, "/tmp/herald-%s-XXXXXX", tag);
    assert_true(n > 0 && n < ENV_DIR_MAX);
    assert_non_null(mkdtemp(dir));
}

static inline int env_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* Removes dir and everything under it; fails the test if something stays. */
static inline void env_rmdir(const char *dir)
{
    assert_int_equal(nftw(dir, env_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Sets key to value in cfg, failing the test with config_set's reason. */
static inline void env_set(config_t *cfg, const char *key, const char *value)
{
    char why[256];
    if (config_set(cfg, key, value, why, sizeof(why)) != HR_OK) fail_msg("%s=%s: %s", key, value, why);
}

/* config_init(cfg), data_dir = dir, then the key, value pairs of kv (a
 * NULL-terminated list; kv may be NULL). */
static inline void env_config(config_t *cfg, const char *dir, const char *const *kv)
{
    config_init(cfg);
    env_set(cfg, "data_dir", dir);
    for (int i = 0; kv && kv[i]; i += 2) env_set(cfg, kv[i], kv[i + 1]);
}

/* Opens app->store: SQLite at <dir>/herald.db. */
static inline void env_open_store(app_t *app, const char *dir)
{
    char *db = xasprintf("%s/herald.db", dir);
    assert_int_equal(store_open("sqlite", db, &app->store), HR_OK);
    free(db);
}

/* Opens app->store (env_open_store) and app->bus (embedded, <dir>/bus,
 * never fsynced) and creates every topic; status_partitions > 0 first
 * gives notification-status that many partitions. app->cfg must be set
 * (topic partitions come from it). */
static inline void env_open(app_t *app, const char *dir, int status_partitions)
{
    env_open_store(app, dir);
    char *busdir = xasprintf("%s/bus", dir);
    bus_opts_t o = {.backend = "embedded", .dir = busdir, .fsync = "never"};
    assert_int_equal(bus_open(&o, &app->bus), HR_OK);
    free(busdir);
    if (status_partitions > 0) {
        bus_topic_opts_t to = {.partitions = status_partitions, .retention_ms = -1, .retention_bytes = -1};
        assert_int_equal(bus_topic_ensure(app->bus, TOPIC_STATUS, &to), HR_OK);
    }
    assert_int_equal(topics_create_all(app), HR_OK);
}

/* Closes what env_open opened (either may already be NULL). */
static inline void env_close(app_t *app)
{
    if (app->bus) bus_close(app->bus);
    if (app->store) store_close(app->store);
    app->bus = NULL;
    app->store = NULL;
}

#endif
