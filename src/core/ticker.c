/*
 * ticker.c - a thread that calls a function on a cadence (ticker.h).
 */
#include "core/ticker.h"

#include "core/cond.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ticker {
    char name[16];
    int nice;
    int64_t first_ms;
    ticker_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* Sleeps until due_ns or a stop; true when stopped. */
static bool ticker_sleep(ticker_t *t, int64_t due_ns)
{
    pthread_mutex_lock(&t->mu);
    while (!t->stop && hclock_mono_ns() < due_ns) cond_wait_until(&t->cv, &t->mu, due_ns);
    bool stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static void *ticker_main(void *arg)
{
    ticker_t *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    if (t->nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), t->nice) != 0)
        log_warn(t->name, "cannot set the thread's niceness to %d: %s", t->nice, strerror(errno));
    int64_t wait_ms = t->first_ms;
    while (!ticker_sleep(t, hclock_mono_ns() + (wait_ms > 0 ? wait_ms : 0) * 1000000)) wait_ms = t->fn(t->arg);
    return NULL;
}

hr_t ticker_start(const char *name, int nice, int64_t first_ms, ticker_fn fn, void *arg, ticker_t **out)
{
    *out = NULL;
    ticker_t *t = xcalloc(1, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->nice = nice;
    t->first_ms = first_ms;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_init(&t->mu, NULL);
    cond_init_mono(&t->cv);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t);
        return HR_ERR;
    }
    *out = t;
    return HR_OK;
}

void ticker_stop(ticker_t *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}
