/*
 * bigmem.c - see bigmem.h.
 */
#include "core/bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

void *bigmem_map(size_t *len)
{
    size_t want = (*len + BIGMEM_MIN - 1) & ~(BIGMEM_MIN - 1);
    if (want < *len || want > SIZE_MAX - BIGMEM_MIN) return NULL; /* overflow */
    /* a 2 MiB-aligned window inside a mapping one huge page longer */
    char *m = mmap(NULL, want + BIGMEM_MIN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)m + BIGMEM_MIN - 1) & ~(uintptr_t)(BIGMEM_MIN - 1));
    if (a > m) munmap(m, (size_t)(a - m));
    size_t tail = (size_t)(m + want + BIGMEM_MIN - (a + want));
    if (tail) munmap(a + want, tail);
#ifdef MADV_HUGEPAGE
    (void)madvise(a, want, MADV_HUGEPAGE); /* advice only: THP may be off */
#endif
    *len = want;
    return a;
}

void *bigmem_alloc(size_t len, size_t *mapped)
{
    *mapped = 0;
    if (len < BIGMEM_MIN) return xcalloc(1, len ? len : 1);
    size_t want = len;
    void *a = bigmem_map(&want);
    if (!a) return xcalloc(1, len); /* no mapping: the heap, without huge pages */
    *mapped = want;
    return a;
}

void bigmem_free(void *p, size_t mapped)
{
    if (!p) return;
    if (mapped) munmap(p, mapped);
    else free(p);
}
