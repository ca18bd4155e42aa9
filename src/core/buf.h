/*
 * buf.h - a growable byte buffer with an optional limit.
 * buf_init() starts empty; buf_release() frees the storage.
 * Appending past `limit` (0 = unlimited) returns HR_AGAIN and leaves the
 * buffer unchanged.
 */
#ifndef HERALD_BUF_H
#define HERALD_BUF_H

#include "core/common.h"

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
} buf_t;

void buf_init(buf_t *b, size_t limit);
void buf_release(buf_t *b);
void buf_reset(buf_t *b);
hr_t buf_reserve(buf_t *b, size_t extra);
hr_t buf_append(buf_t *b, const void *data, size_t len);
hr_t buf_append_str(buf_t *b, const char *s);
hr_t buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make data NUL-terminated (not counted in len). */
const char *buf_cstr(buf_t *b);

#endif
