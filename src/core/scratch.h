/*
 * scratch.h - one spare allocation per thread and kind, for the large
 * buffers a request makes and frees again: an HTTP request's body, the
 * event scanner's strings.
 *
 * Why: a batch of events is ~100-150 KB, above glibc's mmap threshold
 * (128 KiB, src/main.c), so each request's buffers were mapped, grown by
 * copying (realloc), faulted in page by page and unmapped again - in
 * `herald bench` at 200k notifications/s the HTTP threads' page faults
 * and the copies were ~1 % of herald's CPU. A thread keeps what its last
 * request freed, up to SCRATCH_MAX bytes of each kind; the spares are freed
 * when the thread ends.
 */
#ifndef HERALD_SCRATCH_H
#define HERALD_SCRATCH_H

#include <stddef.h>

typedef enum scratch_kind {
    SCRATCH_HTTP_BODY,
    SCRATCH_EVENT_STRINGS,
    SCRATCH__COUNT
} scratch_kind_t;

/* A thread keeps spares of up to this many bytes: with 16 HTTP threads and
 * both kinds at most 8 MB. */
#define SCRATCH_MAX ((size_t)256 << 10)

/* The calling thread's spare of that kind, now the caller's (free() it or
 * give it back), and its capacity in *cap; NULL and 0 when it has none. */
void *scratch_take(scratch_kind_t kind, size_t *cap);
/* p (from malloc, `cap` bytes, may be NULL) becomes the thread's spare of
 * that kind when it has none and cap <= SCRATCH_MAX; otherwise it is freed. */
void scratch_give(scratch_kind_t kind, void *p, size_t cap);

#endif
