/*
 * app.h - the running herald process: config, bus and store. One app_t per
 * process; parts receive it borrowed and never free it.
 *
 * app.c builds it from the config (app_open), starts the services the
 * roles name (app_start_services) and takes them down in order
 * (app_close). The command line and the tests use the same functions.
 */
#ifndef HERALD_APP_H
#define HERALD_APP_H

#include "bus/bus.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "model/names.h"
#include "store/store.h"

#include <stdatomic.h>

typedef struct app {
    config_t *cfg;
    bus_t *bus;
    store_t *store;
    struct auth *auth;          /* API key checks; NULL when auth.enabled = false */
    struct inbox_hub *inbox_hub; /* live inbox streams (http/inbox_hub.h); NULL without a store */
    struct user_token_key *user_tokens; /* signs user tokens (auth/user_token.h); NULL without a store */
    atomic_int stopping;        /* set by SIGTERM/SIGINT */
    /* Counters and histograms for /metrics are process-wide, declared in
     * metrics/metrics.def (METRIC_INC, METRIC_HIST). */
} app_t;

/* ---- assembly (app.c) ---- */

/* What app_open() opens beside the bus. */
typedef struct app_open_opts {
    bool store;                 /* the store (data_dir is created first) */
    bool topics;                /* create every topic herald uses, when missing */
    char why[256];              /* out: what failed, in words for the user */
} app_open_opts_t;

/* Builds the process from cfg: checks the roles, opens the bus (the
 * embedded bus gets the bus.embedded.* settings, Kafka the kafka.* ones)
 * and, as o asks, the store and the topics. cfg is borrowed until
 * app_close(). On failure nothing is left open, *out is NULL and o->why
 * says what failed. Main thread. */
hr_t app_open(config_t *cfg, app_open_opts_t *o, app_t **out);
/* Opens the store cfg names (store.backend, store.dsn or <data_dir>/herald.db),
 * creating data_dir; why says what failed. For commands that need only the
 * store (herald keys). */
hr_t store_open_cfg(const config_t *cfg, store_t **store, char *why, size_t why_len);
/* Starts the pipeline stages cfg->roles names and the HTTP server on
 * cfg->listen: /healthz, /readyz and /metrics always, the API with the
 * ingest role. On failure what started is stopped again
 * and why is filled. Main thread; call at most once. */
hr_t app_start_services(app_t *app, char *why, size_t why_len);
/* The HTTP server's bound port; 0 before app_start_services(). */
int app_http_port(const app_t *app);
/* Graceful stop, in order: the HTTP API (no new events), the stages (they
 * finish their batches, wait for acknowledgements and commit), then a bus
 * flush; logs how many records were still in flight at each step. Then
 * closes the bus and the store and frees app. NULL is ignored. */
void app_close(app_t *app);

#endif
