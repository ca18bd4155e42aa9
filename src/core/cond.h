/*
 * cond.h - deadline arithmetic for pthread condition variables, written once.
 *
 * Two kinds of condition are in use: ones made with cond_init_mono() wait on
 * CLOCK_MONOTONIC deadlines (immune to wall-clock jumps; use these for new
 * code), and default ones wait on CLOCK_REALTIME, for which
 * cond_timedwait_ms() computes the absolute deadline.
 */
#ifndef HERALD_COND_H
#define HERALD_COND_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Initialises cv to measure timeouts on CLOCK_MONOTONIC. */
static inline void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on a cond_init_mono() condition until deadline_ns (hclock_mono_ns()
 * scale; INT64_MAX = no deadline). ETIMEDOUT after it. mu held. */
static inline int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX) return pthread_cond_wait(cv, mu);
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
    return pthread_cond_timedwait(cv, mu, &ts);
}

/* Waits at most ms milliseconds on a default (CLOCK_REALTIME) condition.
 * ETIMEDOUT after it. mu held. */
static inline int cond_timedwait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_cond_timedwait(cv, mu, &ts);
}

#endif
