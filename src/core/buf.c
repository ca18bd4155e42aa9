#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void buf_release(buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(buf_t *b) { b->len = 0; }

hr_t buf_reserve(buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (b->limit && b->len + extra > b->limit) return HR_AGAIN;
    if (need <= b->cap) return HR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return HR_OK;
}

hr_t buf_append(buf_t *b, const void *data, size_t len)
{
    hr_t r = buf_reserve(b, len);
    if (r != HR_OK) return r;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return HR_OK;
}

hr_t buf_append_str(buf_t *b, const char *s) { return buf_append(b, s, strlen(s)); }

hr_t buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return HR_ERR;
    hr_t r = buf_reserve(b, (size_t)n);
    if (r != HR_OK) return r;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HR_OK;
}

const char *buf_cstr(buf_t *b)
{
    if (buf_reserve(b, 0) != HR_OK && !b->data) return "";
    if (!b->data) {
        b->data = xmalloc(1);
        b->cap = 1;
    }
    b->data[b->len] = '\0';
    return b->data;
}
