/*
 * status_rec.c - the compact status record ('S') on notification-status.
 *
 * The notification record ('N', notif.c) repeats everything dispatch needs
 * (priority, due time, accepted time, time zone, quiet hours, platform) with
 * a fixed 44-byte header and a 4-byte length per string: ~100 bytes of
 * framing before any text. A status needs much less, and the content only
 * in the record that creates the notification's first stored row. Layout
 * (version 1), integers as LEB128 varints, signed ones zigzag-coded:
 *
 *   u8 'S' | u8 version (1) | u8 flags | u8 channel | u8 status
 *   | varint attempt | zvarint status_at_ms
 *   | zvarint (status_at_ms - created_at_ms)   (the store's key needs it)
 *   | str notification_id | str user_id
 *   | [SR_MSGID] str channel_msg_id | [SR_ERROR] str error
 *   | [SR_CONTENT] str event_id, category, title, body, address
 *   | [SR_META] str metadata | [SR_TRACE] str traceparent
 *
 * str = varint length + bytes. A record without SR_CONTENT decodes with
 * no_content set and the content fields empty: the store then keeps the
 * content of the notification's earlier row. The decoder checks every
 * length against the bytes left and refuses unknown flags and trailing
 * bytes, like notif_decode.
 */
#include "model/notif.h"

#include "core/varint.h"

#include <limits.h>

enum {
    SR_CONTENT = 1,
    SR_MSGID = 2,
    SR_ERROR = 4,
    SR_META = 8,
    SR_TRACE = 16,
    SR_ALL = 31,
};

#define SR_HEADER 5
static bool str_get(const unsigned char *p, size_t len, size_t *off, hstr_t *s)
{
    return varint_span_get(p, len, off, &s->p, &s->n);
}

hr_t notif_encode_status(const notif_t *n, bool content, buf_t *out)
{
    if ((unsigned)n->channel >= CH__COUNT || (unsigned)n->status >= ST__COUNT) return HR_INVALID;
    unsigned flags = (content ? SR_CONTENT : 0) | (n->channel_msg_id.n ? SR_MSGID : 0) |
                     (n->error.n ? SR_ERROR : 0) | (n->metadata.n ? SR_META : 0) |
                     (n->traceparent.n ? SR_TRACE : 0);
    const hstr_t *strs[11];
    int ns = 0;
    strs[ns++] = &n->notification_id;
    strs[ns++] = &n->user_id;
    if (flags & SR_MSGID) strs[ns++] = &n->channel_msg_id;
    if (flags & SR_ERROR) strs[ns++] = &n->error;
    if (content) {
        strs[ns++] = &n->event_id;
        strs[ns++] = &n->category;
        strs[ns++] = &n->title;
        strs[ns++] = &n->body;
        strs[ns++] = &n->address;
    }
    if (flags & SR_META) strs[ns++] = &n->metadata;
    if (flags & SR_TRACE) strs[ns++] = &n->traceparent;

    size_t total = SR_HEADER + 3 * VARINT_MAX;
    for (int i = 0; i < ns; i++) {
        if (strs[i]->n > SIZE_MAX / 2 - total - VARINT_MAX) return HR_INVALID;
        total += VARINT_MAX + strs[i]->n;
    }
    hr_t r = buf_reserve(out, total); /* an upper bound: varints are shorter */
    if (r != HR_OK) return r;

    unsigned char *start = (unsigned char *)out->data + out->len, *p = start;
    p[0] = STATUS_REC_MAGIC;
    p[1] = STATUS_REC_VERSION;
    p[2] = (unsigned char)flags;
    p[3] = (unsigned char)n->channel;
    p[4] = (unsigned char)n->status;
    p += SR_HEADER;
    p += varint_put(p, n->attempt);
    p += varint_put(p, zigzag(n->status_at_ms));
    p += varint_put(p, zigzag((int64_t)((uint64_t)n->status_at_ms - (uint64_t)n->created_at_ms)));
    for (int i = 0; i < ns; i++) p += varint_span_put(p, strs[i]->p, strs[i]->n);
    out->len += (size_t)(p - start);
    out->data[out->len] = '\0';
    return HR_OK;
}

hr_t notif_decode_status(const void *data, size_t len, notif_t *n)
{
    const unsigned char *p = data;
    if (!p || len < SR_HEADER || p[0] != STATUS_REC_MAGIC || p[1] != STATUS_REC_VERSION) return HR_INVALID;
    unsigned flags = p[2];
    if ((flags & ~(unsigned)SR_ALL) || p[3] >= CH__COUNT || p[4] >= ST__COUNT) return HR_INVALID;
    notif_t t;
    memset(&t, 0, sizeof(t));
    const char *empty = (const char *)p + len; /* empty strings point inside the input's end */
#define EMPTY_ONE(f) t.f = (hstr_t){empty, 0};
    NOTIF_STRINGS(EMPTY_ONE)
#undef EMPTY_ONE
    t.kind = REC_STATUS;
    t.channel = (channel_t)p[3];
    t.status = (notif_status_t)p[4];
    t.priority = PRIO_NORMAL;
    t.quiet_start_min = t.quiet_end_min = NOTIF_QUIET_NONE;
    t.no_content = !(flags & SR_CONTENT);
    size_t off = SR_HEADER;
    uint64_t attempt, at, age;
    if (!varint_get(p, len, &off, &attempt) || attempt > UINT16_MAX || !varint_get(p, len, &off, &at) ||
        !varint_get(p, len, &off, &age))
        return HR_INVALID;
    t.attempt = (uint16_t)attempt;
    t.status_at_ms = unzigzag(at);
    t.created_at_ms = (int64_t)((uint64_t)t.status_at_ms - (uint64_t)unzigzag(age));
    bool ok = str_get(p, len, &off, &t.notification_id) && str_get(p, len, &off, &t.user_id);
    if (ok && (flags & SR_MSGID)) ok = str_get(p, len, &off, &t.channel_msg_id);
    if (ok && (flags & SR_ERROR)) ok = str_get(p, len, &off, &t.error);
    if (ok && (flags & SR_CONTENT))
        ok = str_get(p, len, &off, &t.event_id) && str_get(p, len, &off, &t.category) &&
             str_get(p, len, &off, &t.title) && str_get(p, len, &off, &t.body) &&
             str_get(p, len, &off, &t.address);
    if (ok && (flags & SR_META)) ok = str_get(p, len, &off, &t.metadata);
    if (ok && (flags & SR_TRACE)) ok = str_get(p, len, &off, &t.traceparent);
    if (!ok || off != len) return HR_INVALID;
    *n = t;
    return HR_OK;
}
