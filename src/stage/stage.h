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
 * If any output fails, the worker seeks its partitions back to the first
 * record of the batch, backs off and processes the batch again: never a gap,
 * at worst a duplicate (notification ids are deterministic, so duplicates are
 * recognisable downstream).
 */
#ifndef HERALD_STAGE_H
#define HERALD_STAGE_H

#include "app.h"

#include <pthread.h>

typedef struct stage_def {
    const char *name;           /* for logs: "fanout", "dispatch:push", "status" */
    const char *group;          /* consumer group */
    const char *topic;          /* input topic */
    /* Per-worker state. */
    void *(*state_new)(app_t *app, const struct stage_def *def, int worker);
    void (*state_free)(void *state);
    /* Processes msgs; produces outputs with `batch`. A return other than
     * HR_OK means "could not process; retry the whole batch later". */
    hr_t (*process)(void *state, const bus_msg_t *msgs, int n, bus_batch_t *batch);
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
    void *arg;                  /* stage-specific (e.g. the channel) */
} stage_def_t;

typedef struct stage_worker stage_worker_t;

/* Starts one worker thread running def. */
hr_t stage_worker_start(app_t *app, const stage_def_t *def, int index, stage_worker_t **out);
/* Waits for the worker to notice app->stopping, drain and commit; frees it. */
void stage_worker_join(stage_worker_t *w);

/* bus_produce that waits while the producer queue is full. */
hr_t stage_produce(app_t *app, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, bus_batch_t *batch);

/* Produces a DLQ record: {"reason","topic","partition","offset","payload"}. */
hr_t stage_dead_letter(app_t *app, const bus_msg_t *m, const char *stage, const char *reason,
                       bus_batch_t *batch);

/* The stages. */
extern const stage_def_t fanout_stage;
extern const stage_def_t status_stage;
/* dispatch stage for one channel; def->arg carries the channel. */
void dispatch_stage_def(int channel, stage_def_t *out);

/* pipeline.c: starts the stages named by cfg->roles. */
typedef struct pipeline pipeline_t;
hr_t pipeline_start(app_t *app, pipeline_t **out);
void pipeline_stop(pipeline_t *p);

#endif
