#include "core/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *hr_str(hr_t r)
{
    switch (r) {
    case HR_OK: return "ok";
    case HR_ERR: return "error";
    case HR_AGAIN: return "again";
    case HR_DECLINED: return "declined";
    case HR_NOTFOUND: return "not found";
    case HR_INVALID: return "invalid";
    case HR_TIMEOUT: return "timeout";
    case HR_CONFLICT: return "conflict";
    case HR_CLOSED: return "closed";
    case HR_LATER: return "later";
    case HR_NOSPACE: return "no space";
    }
    return "unknown";
}

static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static _Atomic int64_t fake_now_ms;

void hclock_set_fake(int64_t now_ms) { atomic_store(&fake_now_ms, now_ms); }

int64_t hclock_now_us(void)
{
    int64_t f = atomic_load(&fake_now_ms);
    if (f) return f * 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t hclock_now_ms(void) { return hclock_now_us() / 1000; }

int64_t hclock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

hr_t mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) return HR_INVALID;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) return HR_ERR;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return HR_ERR;
    return HR_OK;
}
