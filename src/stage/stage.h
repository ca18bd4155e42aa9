/*
 * stage.h - the loop every pipeline stage runs: poll a batch from its
 * consumer group, hand it to the stage's process function (which produces
 * outputs with the given ack batch), wait until every output is
 * acknowledged by the bus, and only then store the input offsets.
 *
 * Several batches may be in flight: the next one is processed while the bus
 * acknowledges the outputs of the previous ones, and offsets are stored in
 * order as acknowledgements complete.
 *
 * If any output fails, or process returns an error, the worker seeks its
 * partitions back to the first record of the batch, backs off (doubling
 * from def->retry_min_ms to def->retry_max_ms) and processes the batch
 * again: never a gap, at worst a duplicate (notification ids are
 * deterministic, so duplicates are recognisable downstream).
 *
 * Flow control. process receives a stage_ctx_t with which it may, for the
 * records it is looking at:
 *  - stage_pause(): stop receiving a partition, until a time (the worker
 *    resumes it between polls once hclock_now_ms() reaches it) or until
 *    stage_resume();
 *  - stage_rewind(): have a partition delivered again from one of the
 *    batch's records; that record and the later ones of the partition in
 *    this batch are not committed (the stage should not act on them: see
 *    stage_rewound()), everything before it is;
 *  - return HR_LATER ("not now"): the whole batch is rewound and delivered
 *    again like after a failure, but without the back-off and without a
 *    warning. A stage that says "not now" normally pauses what it is
 *    waiting for first; if it paused nothing, the worker waits 10 ms
 *    before polling again so that it cannot spin.
 * A deferral ("this record, not before 09:00") is a rewind to the record
 * plus a pause of its partition until then.
 */
#ifndef HERALD_STAGE_H
#define HERALD_STAGE_H

#include "app.h"

#include <pthread.h>

/* The stage loop's handle for one process() call. Valid only during that
 * call, on the worker's thread. */
typedef struct stage_ctx stage_ctx_t;

typedef struct stage_def {
    const char *name;           /* for logs: "fanout", "dispatch:push", "status" */
    const char *group;          /* consumer group */
    const char *topic;          /* input topic */
    /* Per-worker state. */
    void *(*state_new)(app_t *app, const struct stage_def *def, int worker);
    void (*state_free)(void *state);
    /* Processes msgs; produces outputs with `batch`. HR_OK: done (offsets
     * are stored once the outputs are acknowledged, except for rewound
     * partitions). HR_LATER: not now, deliver the whole batch again without
     * back-off. Anything else: could not process; the whole batch is
     * retried after a back-off, with a warning. */
    hr_t (*process)(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                    bus_batch_t *batch);
    /* Optional: the worker gained (assigned) or lost a partition of its
     * input. Runs on the worker's thread, between batches. */
    void (*partition_changed)(void *state, const char *topic, int32_t partition, bool assigned);
    /* Scheduling priority of the worker threads (nice value, 0 = normal).
     * A stage nobody waits for (the status sink) runs above 0 so that,
     * when CPU is short, delivery gets it first and the stage lags. */
    int nice;
    /* Records per process() call when above pipeline.batch_max: the worker
     * keeps polling (without waiting) and copies records until it has this
     * many or the bus has no more for now. For stages whose cost is per
     * call (one store transaction per batch). 0 = batch_max. */
    int gather;
    /* With gather: how long the worker may wait for more records, in ms,
     * when the bus has fewer than `gather` (0 = not at all). A stage whose
     * cost is per call takes fewer, larger calls at a moderate rate. */
    int gather_linger_ms;
    /* Batches in flight at most, when fewer than pipeline.depth (0 = no
     * limit of the stage's own). Dispatch keeps 1: its batch's outputs
     * (status records) must be written before it calls the provider for
     * the next, because a crash repeats every provider call whose status
     * record was not written yet. */
    int max_depth;
    /* Worker threads at most when the store has one writer (SQLite), when
     * fewer than pipeline.workers (0 = no limit of the stage's own). The
     * status sink keeps 1: its batches are serialized on SQLite's one
     * writer anyway, and two workers committing in turn each wrote the
     * index pages both touch. PostgreSQL takes concurrent writers: there
     * every stage gets pipeline.workers. */
    int max_workers;
    /* Back-off after a failed batch: starts at retry_min_ms, doubles up to
     * retry_max_ms (0 = 10 ms and 5 s). HR_LATER does not use it. */
    int retry_min_ms;
    int retry_max_ms;
    void *arg;                  /* stage-specific (e.g. the channel) */
} stage_def_t;

typedef struct stage_worker stage_worker_t;

/* Starts one worker thread running def. */
hr_t stage_worker_start(app_t *app, const stage_def_t *def, int index, stage_worker_t **out);
/* Waits for the worker to notice app->stopping, drain and commit; frees it. */
void stage_worker_join(stage_worker_t *w);

/* Flow control, from inside process() (see the top of this file). Each
 * fails (HR_DECLINED on the embedded bus) when the worker does not own the
 * partition (any more). */
/* Stops delivering the partition. until_ms: wall-clock time
 * (hclock_now_ms()) at which the worker resumes it by itself; 0 = only
 * stage_resume() does. Pausing a paused partition sets the new time. */
hr_t stage_pause(stage_ctx_t *cx, const char *topic, int32_t partition, int64_t until_ms);
hr_t stage_resume(stage_ctx_t *cx, const char *topic, int32_t partition);
/* Delivers the partition again from `offset`, which must be the offset of
 * one of this batch's records on it (HR_INVALID otherwise). Offsets from it
 * on are not stored for this batch; rewinding twice keeps the earlier
 * offset. */
hr_t stage_rewind(stage_ctx_t *cx, const char *topic, int32_t partition, int64_t offset);
/* True when m (a record of this batch) is at or after a rewind of its
 * partition: it will be delivered again, so the stage should skip it now. */
bool stage_rewound(const stage_ctx_t *cx, const bus_msg_t *m);

/* bus_produce that waits while the producer queue is full. Once
 * app->stopping is set it waits no more (one more short flush, then
 * HR_CLOSED), so that shutdown is not held up by a bus that cannot take
 * records (a broker outage); the caller's batch is then rewound, not lost. */
hr_t stage_produce(app_t *app, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, bus_batch_t *batch);

/* bus_produce_batch with stage_produce's waiting: produces all n records
 * of recs to topic (in order, one batch), waiting while the producer queue
 * is full. Stops at the first record that fails for another reason (or
 * HR_CLOSED while stopping, as stage_produce); *done (may be NULL) gets how
 * many were produced. */
hr_t stage_produce_batch(app_t *app, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                         int *done);

/* Produces a DLQ record: {"reason","stage","topic","partition","offset","at_ms","payload"}
 * (or "payload_hex" when the payload is not UTF-8). Logs a warning per
 * record, at most a few per 10 s per worker thread; the rest are counted
 * and summarised in one line ("N more in the last 10 s"). */
hr_t stage_dead_letter(app_t *app, const bus_msg_t *m, const char *stage, const char *reason,
                       bus_batch_t *batch);

/* The stages. */
extern const stage_def_t fanout_stage;
extern const stage_def_t status_stage;
/* dispatch stage for one channel; def->arg carries the channel. */
void dispatch_stage_def(int channel, stage_def_t *out);
/* retry stage of one channel's tier (0..RETRY_TIERS-1; retry.c): reads
 * <channel>-retry-<tier> and produces due records back to
 * notifications-<channel>. Runs where the channel's dispatch role runs. */
void retry_stage_def(int channel, int tier, stage_def_t *out);

/* pipeline.c: starts the stages named by cfg->roles. */
typedef struct pipeline pipeline_t;
hr_t pipeline_start(app_t *app, pipeline_t **out);
/* Worker threads started for the named stage (0 when it is not run). */
int pipeline_stage_workers(const pipeline_t *p, const char *stage);
void pipeline_stop(pipeline_t *p);

#endif
