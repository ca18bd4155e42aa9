/*
 * app.c - assembles the running services from the config: the bus, the
 * store and the topics (app_open), then the pipeline stages and the HTTP
 * API the roles name (app_start_services), and takes them down in the
 * reverse order (app_close).
 *
 * DESIGN
 *  Shutdown goes from the edge inwards so that every accepted event gets
 *  its completion: the HTTP API stops first (no new events; requests in
 *  progress finish), then the stages drain (each worker waits for the
 *  acknowledgements of its batches in flight and commits its offsets), and
 *  last the bus flushes whatever is still queued - the records of ingest
 *  requests that already answered 503 after ingest.ack_timeout_ms. The log
 *  says how many records each step still had in flight.
 */
#include "app.h"

#include "auth/auth.h"
#include "auth/user_token.h"
#include "http/inbox_hub.h"

#include "provider/provider.h"

#include "core/log.h"
#include "http/http.h"
#include "stage/pullfan.h"
#include "stage/retention.h"
#include "stage/scheduler.h"
#include "stage/stage.h"
#include "stage/topics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How long the final bus flush may take before the bus fails what is left. */
#define APP_FLUSH_TIMEOUT_MS 10000

/* The app and what app.c keeps about it. */
typedef struct app_impl {
    app_t app;                  /* first: app_close() gets back from &app */
    roles_t roles;
    pipeline_t *pipe;
    scheduler_t *sched;         /* deferred notifications; with a dispatch role */
    retention_t *ret;           /* the store's retention; with the status role */
    http_server_t *http;
    bool started;               /* app_start_services ran */
} app_impl_t;

static app_impl_t *impl_of(app_t *app) { return (app_impl_t *)((char *)app - offsetof(app_impl_t, app)); }

static hr_t open_bus(const config_t *cfg, bus_t **bus, char *why, size_t why_len)
{
    char *dir = xasprintf("%s/bus", cfg->data_dir);
    bool embedded = strcmp(cfg->bus_backend, "embedded") == 0;
    /* Each backend gets its own settings: kafka.* go to librdkafka only. */
    char pending[32], max_disk[32];
    snprintf(pending, sizeof(pending), "%lld", (long long)cfg->bus_embedded_max_pending);
    snprintf(max_disk, sizeof(max_disk), "%lld", (long long)cfg->bus_embedded_max_disk);
    const char *const embedded_kv[] = {
        "max_pending_bytes", pending,
        "accept_loss", strcmp(cfg->bus_embedded_accept_loss, "true") == 0 ? "1" : "0",
        "max_disk_bytes", max_disk, NULL};
    const char *const *kafka_kv = config_kafka_kv(cfg);
    if (embedded)
        for (size_t i = 0; kafka_kv[i] && kafka_kv[i + 1]; i += 2)
            log_warn("bus", "kafka.%s ignored: the bus is embedded", kafka_kv[i]);
    bus_opts_t o = {
        .backend = cfg->bus_backend,
        .dir = dir,
        .fsync = cfg->bus_fsync,
        .fsync_interval_ms = cfg->bus_fsync_interval_ms,
        .segment_bytes = cfg->bus_segment_bytes,
        .flush_interval_us = cfg->bus_flush_interval_us,
        .brokers = cfg->kafka_brokers,
        .kv = embedded ? embedded_kv : kafka_kv,
    };
    hr_t r = bus_open(&o, bus);
    free(dir);
    if (r != HR_OK)
        snprintf(why, why_len, "cannot open the %s bus: %s%s", cfg->bus_backend, hr_str(r),
                 r == HR_CONFLICT ? " (another herald owns this data dir)" : "");
    return r;
}

hr_t store_open_cfg(const config_t *cfg, store_t **store, char *why, size_t why_len)
{
    umask(077);
    if (mkdir_p(cfg->data_dir, 0700) != HR_OK) {
        snprintf(why, why_len, "cannot create data dir %s", cfg->data_dir);
        return HR_ERR;
    }
    char *dsn = cfg->store_dsn[0] ? xstrdup(cfg->store_dsn)
                                  : xasprintf("%s/herald.db", cfg->data_dir);
    store_open_opts_t so = {.check_ms = cfg->store_check_ms,
                            .accept_damage = strcmp(cfg->store_accept_damage, "true") == 0,
                            .pg_pool = cfg->store_pg_pool,
                            .pg_listen = strcmp(cfg->store_pg_listen, "true") == 0,
                            .sqlite_mmap_mb = cfg->store_sqlite_mmap_mb,
                            .dedupe_window_ms = cfg->dedupe_window_ms};
    hr_t r = store_open_with(cfg->store_backend, dsn, &so, store);
    /* a PostgreSQL conninfo may hold a password: only a file path is shown */
    if (r != HR_OK && strcmp(cfg->store_backend, "sqlite") == 0)
        snprintf(why, why_len, "cannot open the store %s: %s (see the log)", dsn, hr_str(r));
    else if (r != HR_OK)
        snprintf(why, why_len, "cannot open the %s store: %s (see the log)", cfg->store_backend,
                 hr_str(r));
    free(dsn);
    return r;
}

/* A live stream's counts: the inbox merged with pulled feed items. */
static hr_t hub_counts(void *ctx, const char *user_id, int64_t *unread, int64_t *unseen)
{
    return pull_inbox_counts(ctx, user_id, unread, unseen);
}

/* The in-app inbox's live streams and user token key (inbox.* settings). */
static hr_t inbox_open(app_t *app, char *why, size_t why_len)
{
    const config_t *cfg = app->cfg;
    inbox_hub_opts_t ho = {.max_streams = cfg->inbox_stream_max,
                           .max_per_user = cfg->inbox_stream_max_per_user,
                           .queue_max = cfg->inbox_stream_queue,
                           .heartbeat_ms = cfg->inbox_stream_heartbeat_ms,
                           .thread = true,
                           .counts = hub_counts,
                           .counts_ctx = app};
    if (!(app->inbox_hub = inbox_hub_new(&ho))) {
        snprintf(why, why_len, "cannot start the inbox's live streams");
        return HR_ERR;
    }
    char *path = cfg->inbox_token_secret_file[0] ? xstrdup(cfg->inbox_token_secret_file)
                                                 : xasprintf("%s/inbox_token.key", cfg->data_dir);
    char err[256];
    if (!cfg->inbox_token_secret_file[0]) mkdir_p(cfg->data_dir, 0700);
    hr_t r = user_token_key_load(path, &app->user_tokens, err, sizeof(err));
    if (r != HR_OK) snprintf(why, why_len, "inbox.token_secret_file: %.200s", err);
    free(path);
    return r;
}

hr_t app_open(config_t *cfg, app_open_opts_t *o, app_t **out)
{
    app_impl_t *a = xcalloc(1, sizeof(*a));
    hr_t r;
    *out = NULL;
    o->why[0] = '\0';
    a->app.cfg = cfg;
    /* herald's data is private: every file and directory the process
     * creates from here on (bus segments and metadata, SQLite files and
     * their journals, sandbox output) is readable by its owner only */
    umask(077);
    if ((r = roles_parse(cfg->roles, &a->roles, o->why, sizeof(o->why))) != HR_OK) goto out;
    if ((r = provider_config_check(cfg, o->why, sizeof(o->why))) != HR_OK) goto out;
    if (o->store && (r = store_open_cfg(cfg, &a->app.store, o->why, sizeof(o->why))) != HR_OK) goto out;
    if (a->app.store && strcmp(cfg->auth_enabled, "true") == 0)
        a->app.auth = auth_new(a->app.store, cfg->auth_cache_ms, NULL);
    if (a->app.store && (r = inbox_open(&a->app, o->why, sizeof(o->why))) != HR_OK) goto out;
    if ((r = open_bus(cfg, &a->app.bus, o->why, sizeof(o->why))) != HR_OK) goto out;
    if (o->topics && (r = topics_create_all(&a->app)) != HR_OK) {
        snprintf(o->why, sizeof(o->why), "cannot create the topics on the %s bus: %s",
                 cfg->bus_backend, hr_str(r));
        goto out;
    }
    *out = &a->app;
    a = NULL;
out:
    if (a) app_close(&a->app);
    return r;
}

static void noop_done(void *ud, send_result_t *res, void *cookie)
{
    (void)ud;
    (void)res;
    (void)cookie;
}

/* Opens (and closes) the providers of every channel this process
 * dispatches, so that a provider that cannot start (no APNs topic, an
 * unreadable key or credentials file) stops `herald serve` at once,
 * naming the setting, instead of leaving a dispatcher without providers. */
static hr_t providers_try(app_impl_t *a, char *why, size_t why_len)
{
    for (int ch = 0; ch < CH__COUNT; ch++) {
        if (!a->roles.dispatch[ch]) continue;
        provider_set_t *s = NULL;
        char inner[256] = "";
        hr_t r = provider_set_open(a->app.cfg, &a->app, (channel_t)ch, noop_done, NULL, &s, inner,
                                   sizeof(inner));
        if (r != HR_OK) {
            snprintf(why, why_len, "channel %s: %s", channel_name((channel_t)ch), inner);
            return r;
        }
        provider_set_close(s);
    }
    return HR_OK;
}

hr_t app_start_services(app_t *app, char *why, size_t why_len)
{
    app_impl_t *a = impl_of(app);
    const config_t *cfg = app->cfg;
    hr_t r;
    a->started = true;
    if ((r = providers_try(a, why, why_len)) != HR_OK) return r;
    if ((r = pipeline_start(app, &a->pipe)) != HR_OK) {
        snprintf(why, why_len, "cannot start the pipeline stages (%s): %s", cfg->roles, hr_str(r));
        return r;
    }
    bool dispatches = false;
    for (int ch = 0; ch < CH__COUNT; ch++) dispatches |= a->roles.dispatch[ch];
    if (dispatches && app->store && (r = scheduler_start(app, &a->sched)) != HR_OK) {
        snprintf(why, why_len, "cannot start the scheduler: %s", hr_str(r));
        pipeline_stop(a->pipe);
        a->pipe = NULL;
        return r;
    }
    /* The first start on an empty store makes the first admin key, so
     * that a new user can call the API at all (README "API keys"). */
    if (app->auth) {
        char *path = cfg->auth_bootstrap_file[0] ? xstrdup(cfg->auth_bootstrap_file)
                                                 : xasprintf("%s/admin.key", cfg->data_dir);
        bool created = false;
        r = auth_bootstrap(app->store, path, &created, why, why_len);
        if (created)
            log_info("auth", "no API key existed: an admin key for tenant default was written to "
                             "%s (mode 0600); `herald keys create` makes more",
                     path);
        free(path);
        if (r != HR_OK) {
            pipeline_stop(a->pipe);
            a->pipe = NULL;
            scheduler_stop(a->sched);
            a->sched = NULL;
            return r;
        }
    } else {
        log_warn("auth", "auth.enabled = false: every API client is an admin of tenant default");
    }
    /* every process serves /healthz, /readyz and /metrics; the rest of
     * the API only with the ingest role (http/server.c) */
    if ((r = http_start(app, cfg->listen, &a->http)) != HR_OK) {
        snprintf(why, why_len, "cannot listen on %s", cfg->listen);
        pipeline_stop(a->pipe);
        a->pipe = NULL;
        scheduler_stop(a->sched);
        a->sched = NULL;
        return r;
    }
    /* last, so that no failure above has it to stop; a thread that cannot
     * start only means no purge: said, not fatal */
    if (a->roles.status && app->store && retention_start(app, &a->ret) != HR_OK)
        log_warn("retention", "cannot start the retention thread: nothing is purged");
    return HR_OK;
}

int app_http_port(const app_t *app)
{
    const app_impl_t *a = (const app_impl_t *)((const char *)app - offsetof(app_impl_t, app));
    return a->http ? http_port(a->http) : 0;
}

/* Flushes the bus and says what was in flight. */
static void flush_bus(app_impl_t *a)
{
    bus_t *bus = a->app.bus;
    int64_t before = bus_outstanding(bus);
    int64_t t0 = hclock_mono_ns();
    hr_t r = bus_flush(bus, APP_FLUSH_TIMEOUT_MS);
    long long ms = (long long)((hclock_mono_ns() - t0) / 1000000);
    if (r == HR_OK) {
        if (a->started || before > 0)
            log_info("shutdown", "bus flushed: %lld record(s) were awaiting acknowledgement, "
                                 "all acknowledged in %lld ms",
                     (long long)(before > 0 ? before : 0), ms);
        return;
    }
    int64_t left = bus_outstanding(bus);
    log_warn("shutdown", "bus flush %s after %lld ms: %lld of %lld record(s) still "
                         "unacknowledged; closing the bus fails them",
             r == HR_TIMEOUT ? "timed out" : hr_str(r), ms, (long long)left,
             (long long)before);
}

void app_close(app_t *app)
{
    if (!app) return;
    app_impl_t *a = impl_of(app);
    if (a->http) {
        http_stop(a->http); /* no new events; requests in progress finish */
        a->http = NULL;
        log_info("shutdown", "HTTP API stopped");
    }
    if (a->pipe) {
        pipeline_stop(a->pipe); /* drain batches, commit offsets */
        a->pipe = NULL;
    }
    retention_stop(a->ret); /* a purge under way finishes its run */
    a->ret = NULL;
    scheduler_stop(a->sched); /* its round ends; what is due stays in the store */
    a->sched = NULL;
    if (app->bus) {
        flush_bus(a);
        bus_close(app->bus);
    }
    inbox_hub_free(app->inbox_hub); /* after the stages: the inapp provider publishes to it */
    user_token_key_free(app->user_tokens);
    auth_free(app->auth);
    store_close(app->store);
    free(a);
}
