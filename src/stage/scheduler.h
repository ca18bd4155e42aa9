/*
 * scheduler.h - deferred notifications: kept in the store until their due
 * time, then put back on their channel topic.
 *
 * A dispatcher defers a notification (a scheduled send whose due_at_ms is
 * in the future; quiet hours) with schedule_defer(): the record goes into
 * the store's `scheduled` table, synchronously, before the stage stores the
 * input offset, and status `deferred` is recorded. The scheduler thread
 * (one per process with a dispatch role, started by app_start_services)
 * takes due rows, earliest first whatever their user or channel, produces
 * them to notifications-<channel> keyed by user_id, waits for the bus's
 * acknowledgements and only then deletes the rows: at least once; the
 * dispatcher checks such a record against the store ("already sent")
 * before it sends it. Deferrals are not kept in a bus partition, so one
 * user's eight-hour deferral never holds back another's one-minute one,
 * and they survive a restart.
 */
#ifndef HERALD_SCHEDULER_H
#define HERALD_SCHEDULER_H

#include "app.h"

/* Keeps n until due_at_ms (its due_at_ms is set to it in the kept record)
 * and produces its `deferred` status record with batch. Dispatcher thread
 * (any thread with a bus batch). HR_OK once the store has the record. */
hr_t schedule_defer(app_t *app, const notif_t *n, int64_t due_at_ms, bus_batch_t *batch);

typedef struct scheduler scheduler_t;

/* Starts the scheduler thread: every SCHED_TICK_MS (sooner when the next
 * row is due sooner) it moves the due rows to their channel topics. */
hr_t scheduler_start(app_t *app, scheduler_t **out);
/* Stops the thread after its current round (its outputs acknowledged or
 * left in the store for the next start) and frees it; NULL is a no-op. */
void scheduler_stop(scheduler_t *s);
/* One round, for tests and the thread: moves the rows due at now_ms (up to
 * a bounded number), waiting for the acknowledgements. *moved (may be
 * NULL) = rows put back. */
hr_t scheduler_run_once(app_t *app, int64_t now_ms, int *moved);

#endif
