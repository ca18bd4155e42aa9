/*
 * chunks.h - chunked fan-out: an audience (followers of an actor,
 * subscribers of a topic) larger than fanout.chunk_threshold is not walked
 * by the worker that reads the event. That worker fans out the first pages
 * itself (at least fanout.chunk_threshold users), then walks the rest of the
 * audience's keys page by page and produces one chunk task (model/chunk.h)
 * per fanout.chunk_size users on the fanout-chunks topic, keyed
 * "<event_id>/<index>" so that the chunks spread over its partitions. The
 * event's input offset is stored with the batch's other outputs, so only
 * once the chunk tasks are acknowledged.
 *
 * Every fan-out worker also consumes fanout-chunks (group fanout-chunks)
 * and expands a chunk like an event, but only over its key range, page by
 * page. Boundaries are deterministic (the audience's key order): an event
 * processed again after a crash re-creates the same chunks. A chunk task is
 * claimed like an event ("<event_id>#chunk-<index>" at its bus position): a
 * second copy of a chunk (the event was processed again) is dropped; the
 * same copy delivered again (its worker crashed) is expanded again with the
 * store's sent checks, as fan-out does for a replayed event.
 *
 * Memory: one page of ids at a time, whatever the audience's size.
 *
 * Each chunk worker logs its share at info, at most every 10 s
 * (CHUNK_REPORT_MS) and when it stops: "fanout-chunks worker <i>: <n> chunk
 * task(s), <u> users in <s> s" (what it expanded since its last line; the
 * time runs from the start of the first of those tasks to the end of the
 * last).
 */
#ifndef HERALD_CHUNKS_H
#define HERALD_CHUNKS_H

#include "model/chunk.h"
#include "model/event.h"
#include "stage/stage.h"

/* A page of an audience, like store_followers_page / store_subs_page. */
typedef hr_t (*chunk_page_fn)(store_t *s, const char *key, const char *after, int limit,
                              char ***ids, int *n);
/* Called for each planned chunk: (after, until]; until "" = to the end. */
typedef hr_t (*chunk_emit_fn)(void *arg, uint32_t index, const char *after, const char *until);

/* Walks the audience of key from after (exclusive; NULL = start) in pages
 * of at most page_size ids and calls emit for each run of chunk_size ids;
 * the last chunk's until is "" (to the end: users added meanwhile are in
 * it). No chunk when nothing follows after. *nchunks: chunks emitted. Pure
 * apart from page and emit. */
hr_t chunk_plan_walk(chunk_page_fn page, store_t *s, const char *key, const char *after,
                     int chunk_size, int page_size, chunk_emit_fn emit, void *arg,
                     uint32_t *nchunks);

/* fanout.c's hook: users fanned out so far for one event (done); true when
 * the rest should go to chunk tasks (fanout.chunk_threshold). */
bool chunks_due(const app_t *app, int64_t done);
/* Plans and produces the chunk tasks of the event ev in m (raw-events) for
 * the audience of key after `after` (the last user fanned out directly).
 * event_id and type: qualified; mask: the event's channels. For followers
 * and the in-app channel it first asks pull fan-out (pullfan.h): when the
 * in-app item goes by pull, the tasks carry CHUNK_F_PULL, and none is made
 * when in-app was the only channel. */
hr_t chunks_plan(app_t *app, const bus_msg_t *m, const event_t *ev, const char *event_id,
                 const char *type, unsigned mask, chunk_kind_t kind, const char *key,
                 const char *after, bus_batch_t *batch);

/* fanout.c: expands one chunk task with a fan-out worker's state (from
 * fanout_stage.state_new). replay: the task is being processed again (check
 * the store before producing). *users (may be NULL): the audience members
 * of its range fanned out. */
hr_t fanout_chunk_expand(void *state, const bus_msg_t *m, const chunk_t *c, bool replay,
                         bus_batch_t *batch, int64_t *users);

/* The stage that consumes fanout-chunks (started with the fanout role). */
void chunks_stage_def(stage_def_t *out);

#endif
