/*
 * retention.h - the store's retention: what is older than store.retention_ms
 * (notifications with their status history, inbox items, digests, dedupe
 * claims) is deleted every store.purge_interval_ms by the process that has
 * the status role (store_notif_purge; the backends delete in small
 * transactions, so the status sink interleaves).
 */
#ifndef HERALD_RETENTION_H
#define HERALD_RETENTION_H

#include "app.h"

typedef struct retention retention_t;

/* Starts the purge thread (nice 10, like the status sink): its first run is
 * RETENTION_FIRST_MS after the start, then one every store.purge_interval_ms.
 * *out = NULL and HR_OK when there is nothing to do (no store, or
 * store.retention_ms = 0). */
hr_t retention_start(app_t *app, retention_t **out);
/* Stops the thread (a purge under way finishes its current run) and frees
 * it; NULL is a no-op. */
void retention_stop(retention_t *r);
/* One run, for tests and the thread: deletes what was created before
 * now_ms - store.retention_ms. *deleted (may be NULL) = notifications
 * deleted. */
hr_t retention_run_once(app_t *app, int64_t now_ms, int64_t *deleted);

#define RETENTION_FIRST_MS 60000

#endif
