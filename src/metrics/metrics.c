/*
 * metrics.c - the counter registry: per-thread blocks, the total of ended
 * threads, the shared histograms, and the list as a table (metrics.h).
 *
 * Invariant, under reg.lock: a counter's value is retired[slot] plus the
 * slot of every block on reg.live. A block joins reg.live on its thread's
 * first increment and leaves it, its counts added to retired, when the
 * thread exits (the pthread key's destructor). The main thread's block is
 * never folded: it stays on reg.live until the process ends.
 */
#include "metrics/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Thread_local metrics_thread_t *metrics__self;
hist_t metrics__hists[MH__COUNT];

static struct {
    pthread_mutex_t lock;
    pthread_once_t once;
    pthread_key_t key;
    metrics_thread_t *live;
    uint64_t retired[MC__COUNT];
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

/* The thread is ending: its counts join retired. */
static void thread_detach(void *p)
{
    metrics_thread_t *t = p;
    pthread_mutex_lock(&reg.lock);
    for (int i = 0; i < MC__COUNT; i++)
        reg.retired[i] += atomic_load_explicit(&t->c[i], memory_order_relaxed);
    if (t->prev) t->prev->next = t->next;
    else reg.live = t->next;
    if (t->next) t->next->prev = t->prev;
    pthread_mutex_unlock(&reg.lock);
    if (metrics__self == t) metrics__self = NULL;
    free(t);
}

static void key_create(void)
{
    if (pthread_key_create(&reg.key, thread_detach) != 0) abort();
}

metrics_thread_t *metrics__attach(void)
{
    pthread_once(&reg.once, key_create);
    /* whole cache lines, so no other allocation shares the block's lines */
    size_t size = (sizeof(metrics_thread_t) + 63) / 64 * 64;
    metrics_thread_t *t = aligned_alloc(64, size);
    if (!t) abort();
    memset(t, 0, size);
    pthread_mutex_lock(&reg.lock);
    t->next = reg.live;
    if (reg.live) reg.live->prev = t;
    reg.live = t;
    pthread_mutex_unlock(&reg.lock);
    if (pthread_setspecific(reg.key, t) != 0) abort();
    metrics__self = t;
    return t;
}

/* Under reg.lock. */
static uint64_t counter_sum(int slot)
{
    uint64_t v = reg.retired[slot];
    for (const metrics_thread_t *t = reg.live; t; t = t->next)
        v += atomic_load_explicit(&t->c[slot], memory_order_relaxed);
    return v;
}

int64_t metrics_counter_value(int slot)
{
    assert(slot >= 0 && slot < MC__COUNT);
    pthread_mutex_lock(&reg.lock);
    uint64_t v = counter_sum(slot);
    pthread_mutex_unlock(&reg.lock);
    return (int64_t)v;
}

void metrics_snapshot(metrics_snap_t *s)
{
    memset(s, 0, sizeof(*s));
    int64_t c[MC__COUNT];
    pthread_mutex_lock(&reg.lock);
    for (int i = 0; i < MC__COUNT; i++) c[i] = (int64_t)counter_sum(i);
    pthread_mutex_unlock(&reg.lock);
#define METRIC_COUNTER(id, name, labels, help)                                                    \
    memcpy((char *)s + offsetof(metrics_snap_t, id), &c[MC_##id],                                 \
           sizeof(int64_t) * METRIC_N_##labels);
#define METRIC_HISTOGRAM(id, name, labels, help)                                                  \
    for (int i = 0; i < METRIC_N_##labels; i++)                                                   \
        hist_read(&metrics__hists[MH_##id + i], (hist_snap_t *)((char *)s + offsetof(metrics_snap_t, id)) + i);
#define METRIC_READ(id, type, name, labels, help)                                                 \
    for (int i = 0; i < METRIC_N_##labels; i++)                                                   \
        ((double *)((char *)s + offsetof(metrics_snap_t, id)))[i] = NAN;
#include "metrics/metrics.def"
}

const metric_def_t metric_defs[] = {
#define METRIC_COUNTER(id, name, labels, help)                                                    \
    {name, help, "counter", MK_COUNTER, ML_##labels, METRIC_N_##labels, offsetof(metrics_snap_t, id)},
#define METRIC_HISTOGRAM(id, name, labels, help)                                                  \
    {name, help, "histogram", MK_HISTOGRAM, ML_##labels, METRIC_N_##labels,                       \
     offsetof(metrics_snap_t, id)},
#define METRIC_READ(id, type, name, labels, help)                                                 \
    {name, help, #type, MK_READ, ML_##labels, METRIC_N_##labels, offsetof(metrics_snap_t, id)},
#include "metrics/metrics.def"
};
const size_t metric_ndefs = ARRAY_LEN(metric_defs);
