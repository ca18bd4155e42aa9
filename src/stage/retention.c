/*
 * retention.c - the store's retention (retention.h).
 *
 * DESIGN
 *  One thread (core/ticker.h: stopping is immediate between runs). A run
 *  is store_notif_purge(now - retention): its work is bounded by what aged
 *  out since the last run, except the first run on a store that was never
 *  purged. The thread runs at nice 10: like the status sink, it gives way
 *  to delivery when CPU is short. The cut is taken from the wall clock
 *  (hclock_now_ms: tests set a fake one), the sleeps from the monotonic
 *  clock, so a clock step moves the cut but never the cadence.
 */
#include "stage/retention.h"

#include "core/log.h"
#include "core/ticker.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <stdlib.h>

#define RET_LOG "retention"

hr_t retention_run_once(app_t *app, int64_t now_ms, int64_t *deleted)
{
    int64_t keep = app->cfg->store_retention_ms, d = 0;
    if (deleted) *deleted = 0;
    if (!app->store || keep <= 0 || now_ms <= keep) return HR_OK;
    int64_t t0 = hclock_mono_ns();
    hr_t r = store_notif_purge(app->store, now_ms - keep, &d);
    METRIC_ADD(notifs_purged, d);
    if (deleted) *deleted = d;
    long long ms = (long long)((hclock_mono_ns() - t0) / 1000000);
    if (r != HR_OK)
        log_warn(RET_LOG, "purge of what was created before %lld failed after %lld ms: %s (the next "
                          "run tries again)", (long long)(now_ms - keep), ms, hr_str(r));
    else if (d > 0)
        log_info(RET_LOG, "purged %lld notification(s) older than %lld ms in %lld ms", (long long)d,
                 (long long)keep, ms);
    return r;
}

struct retention {
    app_t *app;
    ticker_t *ticker;
};

static int64_t retention_tick(void *arg)
{
    retention_t *t = arg;
    (void)retention_run_once(t->app, hclock_now_ms(), NULL);
    return t->app->cfg->store_purge_interval_ms;
}

hr_t retention_start(app_t *app, retention_t **out)
{
    *out = NULL;
    if (!app->store || app->cfg->store_retention_ms <= 0) return HR_OK;
    retention_t *t = xcalloc(1, sizeof(*t));
    t->app = app;
    if (ticker_start("retention", 10, RETENTION_FIRST_MS, retention_tick, t, &t->ticker) != HR_OK) {
        free(t);
        return HR_ERR;
    }
    *out = t;
    return HR_OK;
}

void retention_stop(retention_t *t)
{
    if (!t) return;
    ticker_stop(t->ticker);
    free(t);
}
