/*
 * retry.c - the retry tiers: <channel>-retry-30s, -5m, -30m ->
 * notifications-<channel>.
 *
 * DESIGN
 *  The dispatcher sends a notification that failed with a retriable
 *  outcome (RETRY, THROTTLED) to the tier of its attempt, with due_at_ms =
 *  failure time + the tier's delay (or the provider's Retry-After when
 *  longer). One stage per (channel, tier), consumer group = the tier's
 *  topic name. Records of a tier partition arrive in failure order, so
 *  their due times grow (nearly: a long Retry-After may hold back the
 *  records behind it, by design never longer than it). When the stage
 *  meets a record that is not due yet it rewinds its partition to that
 *  record and pauses the partition until the record's due time: no busy
 *  loop and no sleeping worker - the stage loop resumes the partition when
 *  the time comes (stage.h) and meanwhile serves the other partitions.
 *  Due records are produced back to notifications-<channel>, keyed by
 *  user_id and unchanged (attempt and due time travel with the record);
 *  the input offsets are stored only after those outputs are acknowledged.
 *  The dispatcher checks a retried record against the store before sending
 *  it, so a record repeated after a crash is not sent twice.
 *
 *  Threads: one worker per tier stage (stage loop); state per worker.
 */
#include "stage/stage.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct retry {
    app_t *app;
    channel_t ch;
    int tier;
} retry_t;

static void *retry_new(app_t *app, const stage_def_t *def, int worker)
{
    UNUSED(worker);
    retry_t *t = xcalloc(1, sizeof(*t));
    int arg = (int)(intptr_t)def->arg;
    t->app = app;
    t->ch = (channel_t)(arg / RETRY_TIERS);
    t->tier = arg % RETRY_TIERS;
    return t;
}

static void retry_free(void *state) { free(state); }

static hr_t retry_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                          bus_batch_t *batch)
{
    retry_t *t = state;
    const channel_names_t *nm = names_for_channel(t->ch);
    int64_t now = hclock_now_ms();
    hr_t r = HR_OK;
    for (int i = 0; i < n && r == HR_OK; i++) {
        const bus_msg_t *m = &msgs[i];
        if (stage_rewound(cx, m)) continue; /* behind a record that is not due */
        notif_t x;
        if (notif_decode(m->value, m->value_len, &x) != HR_OK || x.kind != REC_NOTIFICATION) {
            r = stage_dead_letter(t->app, m, nm->retry_stage[t->tier], "undecodable notification", batch);
            continue;
        }
        if (x.due_at_ms > now) {
            r = stage_rewind(cx, m->topic, m->partition, m->offset);
            if (r == HR_OK) r = stage_pause(cx, m->topic, m->partition, x.due_at_ms);
            if (r == HR_DECLINED) r = HR_OK; /* not ours any more: the new owner waits */
            continue;
        }
        r = stage_produce(t->app, nm->topic, -1, x.user_id.p, x.user_id.n, m->value, m->value_len,
                          batch);
    }
    return r;
}

void retry_stage_def(int channel, int tier, stage_def_t *out)
{
    const channel_names_t *nm = names_for_channel(channel);
    *out = (stage_def_t){
        .name = nm->retry_stage[tier],
        .group = nm->retry_topic[tier],
        .topic = nm->retry_topic[tier],
        .state_new = retry_new,
        .state_free = retry_free,
        .process = retry_process,
        .arg = (void *)(intptr_t)(channel * RETRY_TIERS + tier),
    };
}
