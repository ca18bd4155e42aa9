/*
 * status.c - the status sink: notification-status -> store.
 *
 * Its own consumer group, so delivery never waits for the store: under peak
 * load the sink lags and catches up. Each polled batch is written in one
 * store transaction; offsets are stored only after the commit succeeds.
 *
 * The sink's thread runs at a lower scheduling priority (nice 10): when the
 * CPU is short, delivery gets it and the sink falls behind, to catch up
 * when the load drops. The bus holds the backlog (notification-status
 * keeps 7 days). status.nice sets it (pipeline.c); 0 makes the sink an
 * equal of delivery. Measured at 54k events/s offered (270k notifications/s,
 * above what this 2-core machine sustains, 1M users): at nice 10 the sink
 * ran 9.2 s and waited 9.1 s on the run queue in 20 s and wrote 90 % of the
 * window's rows in it; reniced to 0, it ran 10.2 s, waited 5.2 s and wrote
 * them all, delivery settling 215k/s instead of 206k/s (bench/notes.md,
 * round 27). The default stays 10: the design's choice of which side
 * falls behind when the CPU is short.
 *
 * One worker on SQLite, whatever pipeline.workers says
 * (stage_def_t.max_workers): SQLite has one writer, so a second worker's
 * transactions only took turns with the first's, each half as large, and
 * each wrote the pages of the id index both touched (see SINK_GATHER).
 * PostgreSQL takes concurrent writers: there it gets pipeline.workers.
 *
 * Each transaction's time goes to herald_status_write_seconds: the store
 * write latency operators alert on (its p99).
 */
#include "stage/stage.h"

#include "core/log.h"

#include <stdlib.h>

/* Rows per store transaction (status.gather): bigger transactions write
 * each dirty index page once for more rows (measured: 512 -> 10k rows
 * doubles the rate). In the pipeline a batch's ids are not the newest
 * alone: dispatch lags by up to seconds, so a status's id (its event's
 * acceptance time first) lands anywhere in the last seconds of the id
 * index, and a transaction dirties a page there for every few of those;
 * twice the rows per transaction, about half the pages per row. */
#define SINK_GATHER 16384

typedef struct sink {
    app_t *app;
    int cap;
    notif_t *recs;
    const notif_t **ptrs;
    hist_local_t write_us;      /* one transaction's time, merged at once */
} sink_t;

static void *sink_new(app_t *app, const stage_def_t *def, int worker)
{
    sink_t *s = xcalloc(1, sizeof(*s));
    s->app = app;
    s->cap = app->cfg->batch_max > app->cfg->status_gather ? app->cfg->batch_max : app->cfg->status_gather;
    s->recs = xcalloc((size_t)s->cap, sizeof(*s->recs));
    s->ptrs = xcalloc((size_t)s->cap, sizeof(*s->ptrs));
    hist_local_init(&s->write_us);
    return s;
}

static void sink_free(void *state)
{
    sink_t *s = state;
    free(s->recs);
    free(s->ptrs);
    free(s);
}

static hr_t sink_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                         bus_batch_t *batch)
{
    UNUSED(cx);
    sink_t *s = state;
    int k = 0;
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        if (notif_decode(msgs[i].value, msgs[i].value_len, &s->recs[k]) != HR_OK ||
            s->recs[k].kind != REC_STATUS) {
            r = stage_dead_letter(s->app, &msgs[i], "status", "undecodable status record", batch);
            continue;
        }
        s->ptrs[k] = &s->recs[k];
        k++;
    }
    if (r != HR_OK || k == 0) return r;
    int64_t t0 = hclock_mono_ns();
    r = store_notif_write_batch(s->app->store, s->ptrs, k);
    hist_record(&s->write_us, (uint64_t)(hclock_mono_ns() - t0) / 1000);
    hist_merge(METRIC_HIST(status_write, 0), &s->write_us);
    if (r == HR_OK)
        METRIC_ADD(status_rows_written, k);
    else
        log_warn("status", "writing %d rows failed: %s", k, hr_str(r));
    return r;
}

const stage_def_t status_stage = {
    .name = STAGE_STATUS,
    .group = GROUP_STATUS,
    .topic = TOPIC_STATUS,
    .state_new = sink_new,
    .state_free = sink_free,
    .process = sink_process,
    .nice = 10,
    .gather = SINK_GATHER,
    .max_workers = 1,
};
