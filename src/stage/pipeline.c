/*
 * pipeline.c - starts the stages this process runs (cfg->roles) with
 * cfg->workers_per_stage consumer threads each (a channel's dispatch role
 * brings its retry-tier stages, one worker each: they mostly wait; a stage
 * may ask for fewer on SQLite, stage_def_t.max_workers), and stops them gracefully:
 * workers finish their batch, outputs are acknowledged, offsets committed.
 */
#include "stage/stage.h"

#include "core/log.h"
#include "stage/chunks.h"

#include <stdlib.h>
#include <string.h>

#define MAX_STAGES (3 + CH__COUNT * (1 + RETRY_TIERS))

struct pipeline {
    app_t *app;
    stage_def_t defs[MAX_STAGES];
    int nper[MAX_STAGES];       /* workers started for defs[i] */
    int ndefs;
    stage_worker_t **workers;
    int nworkers;
};

hr_t pipeline_start(app_t *app, pipeline_t **out)
{
    roles_t roles;
    char why[256];
    if (roles_parse(app->cfg->roles, &roles, why, sizeof(why)) != HR_OK) {
        log_error("pipeline", "%s", why);
        return HR_INVALID;
    }
    pipeline_t *p = xcalloc(1, sizeof(*p));
    p->app = app;
    if (roles.fanout) p->defs[p->ndefs++] = fanout_stage;
    if (roles.fanout) chunks_stage_def(&p->defs[p->ndefs++]); /* stage/chunks.h */
    for (int ch = 0; ch < CH__COUNT; ch++) {
        stage_def_t d;
        dispatch_stage_def(ch, &d);
        if (!roles_has_stage(&roles, d.name)) continue;
        p->defs[p->ndefs++] = d;
        for (int t = 0; t < RETRY_TIERS; t++) retry_stage_def(ch, t, &p->defs[p->ndefs++]);
    }
    if (roles.status) {
        p->defs[p->ndefs] = status_stage;
        p->defs[p->ndefs].gather = app->cfg->status_gather;           /* status.gather */
        p->defs[p->ndefs].gather_linger_ms = app->cfg->status_linger_ms; /* status.linger_ms */
        p->defs[p->ndefs++].nice = app->cfg->status_nice;                  /* status.nice */
    }

    int workers = app->cfg->workers_per_stage;
    p->workers = xcalloc((size_t)(p->ndefs * workers), sizeof(*p->workers));
    const char *backend = app->cfg->store_backend;
    bool one_writer = !backend || strcmp(backend, "sqlite") == 0; /* SQLite, the default */
    for (int i = 0; i < p->ndefs; i++) {
        int per = strncmp(p->defs[i].name, "retry:", 6) == 0 ? 1 : workers;
        if (one_writer && p->defs[i].max_workers > 0 && per > p->defs[i].max_workers) per = p->defs[i].max_workers;
        for (int w = 0; w < per; w++) {
            hr_t r = stage_worker_start(app, &p->defs[i], w, &p->workers[p->nworkers]);
            if (r != HR_OK) {
                atomic_store(&app->stopping, 1);
                pipeline_stop(p);
                return r;
            }
            p->nworkers++;
            p->nper[i]++;
        }
        if (per == 1 && strncmp(p->defs[i].name, "retry:", 6) == 0) /* fifteen of them: quiet */
            log_debug("pipeline", "stage %s: 1 worker on %s", p->defs[i].name, p->defs[i].topic);
        else
            log_info("pipeline", "stage %s: %d worker(s) on %s", p->defs[i].name, per,
                     p->defs[i].topic);
    }
    *out = p;
    return HR_OK;
}

int pipeline_stage_workers(const pipeline_t *p, const char *stage)
{
    for (int i = 0; i < p->ndefs; i++)
        if (strcmp(p->defs[i].name, stage) == 0) return p->nper[i];
    return 0;
}

void pipeline_stop(pipeline_t *p)
{
    if (!p) return;
    atomic_store(&p->app->stopping, 1);
    int64_t t0 = hclock_mono_ns();
    for (int i = 0; i < p->nworkers; i++) stage_worker_join(p->workers[i]);
    if (p->nworkers)
        log_info("shutdown", "pipeline: %d worker(s) of %d stage(s) stopped in %lld ms; "
                             "their batches in flight were acknowledged and offsets committed",
                 p->nworkers, p->ndefs, (long long)((hclock_mono_ns() - t0) / 1000000));
    free(p->workers);
    free(p);
}
