/*
 * scratch.c - see scratch.h.
 */
#include "core/scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct spare {
    void *p;
    size_t cap;
} spare_t;

static _Thread_local spare_t spares[SCRATCH__COUNT];

/* A key whose destructor frees the thread's spares when it ends (set by
 * the thread's first spare). */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spares_free(void *unused)
{
    (void)unused;
    for (int k = 0; k < SCRATCH__COUNT; k++) {
        free(spares[k].p);
        spares[k] = (spare_t){NULL, 0};
    }
}

static void key_init(void) { (void)pthread_key_create(&spare_key, spares_free); }

void *scratch_take(scratch_kind_t kind, size_t *cap)
{
    spare_t *s = &spares[kind];
    void *p = s->p;
    *cap = p ? s->cap : 0;
    *s = (spare_t){NULL, 0};
    return p;
}

void scratch_give(scratch_kind_t kind, void *p, size_t cap)
{
    spare_t *s = &spares[kind];
    if (!p) return;
    if (s->p || cap > SCRATCH_MAX) {
        free(p);
        return;
    }
    pthread_once(&spare_once, key_init);
    if (!pthread_getspecific(spare_key)) (void)pthread_setspecific(spare_key, (void *)(uintptr_t)1);
    *s = (spare_t){p, cap};
}
