/*
 * errlog.h - rate limiting for repeated error lines ("N more errors in the
 * last T s"): during an outage a failing path logs one line per interval and
 * counts the rest instead of flooding the log.
 *
 *     int64_t more = errlog_admit(&e);
 *     if (more >= 0) log_warn(..., "%s (%" PRId64 " more in the last %d s)", why, more,
 *                             errlog_interval_s(&e));
 *
 * Threads: any; an errlog_t may be shared.
 */
#ifndef HERALD_ERRLOG_H
#define HERALD_ERRLOG_H

#include <pthread.h>
#include <stdint.h>

typedef struct errlog {
    pthread_mutex_t mu;
    int64_t interval_ms;
    int64_t last_ms;    /* monotonic; 0 = nothing logged yet */
    int64_t suppressed;
} errlog_t;

/* At most one admitted line per interval_ms. */
void errlog_init(errlog_t *e, int64_t interval_ms);
void errlog_release(errlog_t *e);
/* Returns how many lines were suppressed since the last admitted one (log
 * this line and mention them), or -1 when this line must be suppressed too. */
int64_t errlog_admit(errlog_t *e);
/* The interval in whole seconds, for the log text. */
int errlog_interval_s(const errlog_t *e);

#endif
