/*
 * errlog.c - rate limiting for repeated error lines (see errlog.h).
 */
#include "core/errlog.h"

#include "core/common.h"

#include <string.h>

void errlog_init(errlog_t *e, int64_t interval_ms)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    e->interval_ms = interval_ms;
}

void errlog_release(errlog_t *e) { pthread_mutex_destroy(&e->mu); }

int64_t errlog_admit(errlog_t *e)
{
    int64_t now = hclock_mono_ns() / 1000000, r = -1;
    pthread_mutex_lock(&e->mu);
    if (e->last_ms == 0 || now - e->last_ms >= e->interval_ms) {
        r = e->suppressed;
        e->suppressed = 0;
        e->last_ms = now;
    } else {
        e->suppressed++;
    }
    pthread_mutex_unlock(&e->mu);
    return r;
}

int errlog_interval_s(const errlog_t *e) { return (int)(e->interval_ms / 1000); }
