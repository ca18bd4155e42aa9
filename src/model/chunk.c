/*
 * chunk.c - the chunk task record (chunk.h).
 */
#include "model/chunk.h"

#include "core/endian.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAGIC "HCK"
#define CHUNK_VERSION 1
#define CHUNK_STRINGS 6

static hr_t put_str(buf_t *out, const char *s, size_t n)
{
    unsigned char len[4];
    if (n > UINT32_MAX) return HR_INVALID;
    le_put32(len, (uint32_t)n);
    hr_t r = buf_append(out, len, 4);
    if (r == HR_OK && n) r = buf_append(out, s, n);
    return r;
}

hr_t chunk_encode(const chunk_t *c, buf_t *out)
{
    unsigned char head[10];
    memcpy(head, CHUNK_MAGIC, 3);
    head[3] = CHUNK_VERSION;
    head[4] = (unsigned char)c->kind;
    head[5] = (unsigned char)c->flags;
    le_put32(head + 6, c->index);
    hr_t r = buf_append(out, head, sizeof(head));
    const char *s[CHUNK_STRINGS - 1] = {c->event_id, c->key, c->after, c->until, c->traceparent};
    for (int i = 0; r == HR_OK && i < CHUNK_STRINGS - 1; i++)
        r = put_str(out, s[i] ? s[i] : "", s[i] ? strlen(s[i]) : 0);
    if (r == HR_OK) r = put_str(out, c->event ? c->event : "", c->event ? c->event_len : 0);
    return r;
}

hr_t chunk_decode(const void *data, size_t len, chunk_t *out)
{
    const unsigned char *p = data, *end = p + len;
    memset(out, 0, sizeof(*out));
    if (len < 10 || memcmp(p, CHUNK_MAGIC, 3) != 0 || p[3] != CHUNK_VERSION) return HR_INVALID;
    if (p[4] != CHUNK_FOLLOWERS && p[4] != CHUNK_TOPIC) return HR_INVALID;
    out->kind = (chunk_kind_t)p[4];
    out->flags = p[5];
    out->index = le_get32(p + 6);
    p += 10;
    char **dst[CHUNK_STRINGS] = {&out->event_id, &out->key, &out->after, &out->until,
                                 &out->traceparent, &out->event};
    for (int i = 0; i < CHUNK_STRINGS; i++) {
        if ((size_t)(end - p) < 4) goto bad;
        uint32_t n = le_get32(p);
        p += 4;
        if ((size_t)(end - p) < n) goto bad;
        if (i < CHUNK_STRINGS - 1) {
            if (memchr(p, '\0', n)) goto bad;
            *dst[i] = xstrndup((const char *)p, n);
        } else { /* the event: JSON, or the binary event record with NULs */
            char *e = xmalloc((size_t)n + 1);
            if (n) memcpy(e, p, n);
            e[n] = '\0';
            *dst[i] = e;
            out->event_len = n;
        }
        p += n;
    }
    if (p != end || !out->event_id[0] || !out->key[0]) goto bad;
    return HR_OK;
bad:
    chunk_clear(out);
    return HR_INVALID;
}

void chunk_clear(chunk_t *c)
{
    free(c->event_id);
    free(c->key);
    free(c->after);
    free(c->until);
    free(c->traceparent);
    free(c->event);
    memset(c, 0, sizeof(*c));
}

void chunk_claim_id(const chunk_t *c, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s#chunk-%u", c->event_id, (unsigned)c->index);
}

int chunk_in_range(const chunk_t *c, char *const *ids, int n)
{
    if (!c->until || !c->until[0]) return n;
    int k = 0;
    while (k < n && strcmp(ids[k], c->until) <= 0) k++;
    return k;
}
