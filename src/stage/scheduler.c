/*
 * scheduler.c - deferred notifications (scheduler.h).
 *
 * DESIGN
 *  The store is the queue: the `scheduled` table indexed by due time. A
 *  round reads up to SCHED_ROUND due rows, produces each record back to
 *  its channel topic in one ack batch, waits for the acknowledgements and
 *  deletes the rows it moved (only if they were not deferred again
 *  meanwhile: the delete matches the due time). A crash between the
 *  produce and the delete repeats the record; the dispatcher's store check
 *  for records with a due time makes that harmless. The thread sleeps on a
 *  condition variable for SCHED_TICK_MS at most (less when the next row is
 *  due sooner; core/ticker.h), so stopping is immediate.
 *
 *  Threads: schedule_defer runs on a dispatcher's thread; the rest on the
 *  scheduler's own thread.
 */
#include "stage/scheduler.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/ticker.h"
#include "model/lifecycle.h"
#include "stage/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_TICK_MS 100
#define SCHED_ROUND 512
#define SCHED_ACK_TIMEOUT_MS 30000
#define SCHED_LOG "scheduler"

hr_t schedule_defer(app_t *app, const notif_t *n, int64_t due_at_ms, bus_batch_t *batch)
{
    notif_t k = *n;
    k.kind = REC_NOTIFICATION;
    k.due_at_ms = due_at_ms;
    buf_t b;
    buf_init(&b, 0);
    char id[96];
    snprintf(id, sizeof(id), "%.*s", (int)n->notification_id.n, n->notification_id.p);
    hr_t r = notif_encode(&k, &b);
    if (r == HR_OK) r = store_sched_put(app->store, id, n->channel, due_at_ms, b.data, b.len);
    if (r == HR_OK) {
        METRIC_INC(notifs_deferred);
        notif_t st = *n;
        char when[48];
        snprintf(when, sizeof(when), "until %lld", (long long)due_at_ms);
        lifecycle_transition(&st, ST_DEFERRED, hclock_now_ms(), HSTR(when), SCHED_LOG);
        buf_reset(&b);
        /* attempt 1 may be the notification's first status: with content */
        r = notif_encode_status(&st, st.attempt <= 1, &b);
        if (r == HR_OK)
            r = stage_produce(app, TOPIC_STATUS, -1, n->user_id.p, n->user_id.n, b.data, b.len, batch);
    }
    buf_release(&b);
    return r;
}

hr_t scheduler_run_once(app_t *app, int64_t now_ms, int *moved)
{
    sched_row_t *rows = NULL;
    int n = 0;
    if (moved) *moved = 0;
    hr_t r = store_sched_due(app->store, now_ms, SCHED_ROUND, &rows, &n);
    if (r != HR_OK || n == 0) return r;
    bus_batch_t batch;
    bus_batch_init(&batch);
    int produced = 0, moved_n = 0;
    for (int i = 0; i < n && r == HR_OK; i++) {
        notif_t x;
        const char *topic = topic_for_channel(rows[i].channel);
        if (!topic || notif_decode(rows[i].rec, rows[i].rec_len, &x) != HR_OK) {
            /* kept with its reason, not dropped: the row goes once the DLQ
             * record is acknowledged, with the others */
            bus_msg_t m = {.topic = "scheduled", .partition = -1, .offset = -1,
                           .key = rows[i].notification_id, .key_len = strlen(rows[i].notification_id),
                           .value = rows[i].rec, .value_len = rows[i].rec_len};
            r = stage_dead_letter(app, &m, SCHED_LOG, "scheduled notification unreadable", &batch);
        } else {
            r = stage_produce(app, topic, -1, x.user_id.p, x.user_id.n, rows[i].rec, rows[i].rec_len,
                              &batch);
            if (r == HR_OK) moved_n++;
        }
        if (r == HR_OK) produced = i + 1;
    }
    hr_t acked = bus_batch_wait(app->bus, &batch, SCHED_ACK_TIMEOUT_MS);
    if (acked == HR_OK) {
        for (int i = 0; i < produced && r == HR_OK; i++)
            r = store_sched_del(app->store, rows[i].notification_id, rows[i].due_at_ms);
        if (moved) *moved = moved_n;
        METRIC_ADD(notifs_rescheduled, moved_n);
    } else {
        log_warn(SCHED_LOG, "%d due notification(s) not acknowledged by the bus (%s); kept for the next round",
                 produced, hr_str(acked));
        if (r == HR_OK) r = acked;
    }
    bus_batch_release(&batch);
    store_sched_rows_free(rows, n);
    return r;
}

struct scheduler {
    app_t *app;
    ticker_t *ticker;
    int failures;
};

/* One round; the wait until the next: none while a full round was due,
 * else SCHED_TICK_MS or less when the next row is due sooner. */
static int64_t scheduler_tick(void *arg)
{
    scheduler_t *s = arg;
    app_t *app = s->app;
    int moved = 0;
    hr_t r = scheduler_run_once(app, hclock_now_ms(), &moved);
    if (r != HR_OK && s->failures++ % 50 == 0)
        log_warn(SCHED_LOG, "round failed: %s (retrying every %d ms)", hr_str(r), SCHED_TICK_MS);
    if (r == HR_OK) s->failures = 0;
    if (moved == SCHED_ROUND) return 0; /* more are due */
    int64_t wait = SCHED_TICK_MS, next;
    if (store_sched_next(app->store, &next) == HR_OK && next != INT64_MAX) {
        int64_t d = next - hclock_now_ms();
        if (d < wait) wait = d < 1 ? 1 : d;
    }
    return wait;
}

hr_t scheduler_start(app_t *app, scheduler_t **out)
{
    scheduler_t *s = xcalloc(1, sizeof(*s));
    s->app = app;
    if (ticker_start("scheduler", 0, 0, scheduler_tick, s, &s->ticker) != HR_OK) {
        free(s);
        return HR_ERR;
    }
    *out = s;
    return HR_OK;
}

void scheduler_stop(scheduler_t *s)
{
    if (!s) return;
    ticker_stop(s->ticker);
    free(s);
}
