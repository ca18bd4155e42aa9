/*
 * common.h - the one result convention, allocation wrappers and small helpers
 * shared by every part of herald.
 *
 * Functions return an hr_t: HR_OK (0) on success, a negative code otherwise.
 * HR_AGAIN means "full / try later" (a normal answer, not a failure);
 * HR_DECLINED means "not mine"; HR_LATER means "not now" (the caller
 * should offer the same work again later; a deferral, not a failure: the
 * stage loop rewinds without back-off or warning). Allocation failure of small objects aborts
 * in one place (xmalloc and friends) instead of being checked everywhere.
 */
#ifndef HERALD_COMMON_H
#define HERALD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum hr {
    HR_OK        = 0,
    HR_ERR       = -1,  /* generic failure; see the log */
    HR_AGAIN     = -2,  /* full or not ready: try later */
    HR_DECLINED  = -3,  /* not mine / not applicable */
    HR_NOTFOUND  = -4,
    HR_INVALID   = -5,  /* bad input */
    HR_TIMEOUT   = -6,
    HR_CONFLICT  = -7,  /* already exists / duplicate */
    HR_CLOSED    = -8,  /* shutting down */
    HR_LATER     = -9,  /* not now: offer it again later (not a failure) */
    HR_NOSPACE   = -10, /* the disk (or a size limit) is full: retry once space is freed */
} hr_t;

const char *hr_str(hr_t r);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a newly allocated string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wall clock in milliseconds / microseconds since the epoch. Tests may
 * install a fake clock with hclock_set_fake(); 0 restores the real one. */
int64_t hclock_now_ms(void);
int64_t hclock_now_us(void);
void hclock_set_fake(int64_t now_ms);
/* Monotonic clock, nanoseconds. */
int64_t hclock_mono_ns(void);

/* mkdir -p; returns HR_OK if it exists afterwards. */
hr_t mkdir_p(const char *path, unsigned mode);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

/* Last: the headers that declare the banned calls first, then the ban. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef HERALD_ALLOW_BANNED
#include "core/banned.h"
#endif

#endif
