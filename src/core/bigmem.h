/*
 * bigmem.h - large zeroed arrays probed at random (hash tables, rings),
 * placed on transparent huge pages.
 *
 * A table of several MiB probed at random misses the TLB on almost every
 * probe with 4 KiB pages; on 2 MiB pages it does not (the recipient
 * cache's find() fell from 17.6 % to 4.1 % of fan-out's samples; a full
 * dispatch sent-id set answered has+add in 289 instead of 358 ns, means of
 * five alternating runs). THP is commonly in "madvise" mode, so herald
 * asks for it per mapping. Only arrays of at least BIGMEM_MIN bytes are
 * mapped, in whole huge pages (power-of-two tables waste nothing); smaller
 * ones come from calloc. Any thread.
 */
#ifndef HERALD_BIGMEM_H
#define HERALD_BIGMEM_H

#include "core/common.h"

#define BIGMEM_MIN ((size_t)2 << 20)

/* A zeroed array of len bytes (aborts when out of memory, like xcalloc).
 * *mapped is what bigmem_free needs: the mapping's length, 0 when the
 * array came from calloc. */
void *bigmem_alloc(size_t len, size_t *mapped);
/* Anonymous zeroed memory of *len bytes, rounded up to whole huge pages
 * (*len is set to the mapping's length), 2 MiB-aligned and advised for
 * transparent huge pages; untouched pages cost nothing. NULL when the
 * mapping failed. Free with munmap(p, *len) or bigmem_free(p, *len). */
void *bigmem_map(size_t *len);
/* Frees what bigmem_alloc gave (NULL is a no-op). */
void bigmem_free(void *p, size_t mapped);

#endif
