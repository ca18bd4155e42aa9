/*
 * trace.c - W3C traceparent parsing and formatting (trace.h).
 */
#include "model/trace.h"

#include "core/text.h"

#include <string.h>

/* Lowercase hex digit value, or -1 (uppercase is invalid in traceparent). */
static int hexlc(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads n bytes from 2n lowercase hex digits; false on a bad digit. */
static bool hex_bytes(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexlc(s[2 * i]), lo = hexlc(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static hr_t bad(const char **why, const char *text)
{
    if (why) *why = text;
    return HR_INVALID;
}

hr_t trace_parse(const char *s, size_t n, trace_ctx_t *out, const char **why)
{
    trace_ctx_t t;
    memset(&t, 0, sizeof(t));
    if (!s || n < 2) return bad(why, "is not version-traceid-parentid-flags");
    if (!hex_bytes(s, 1, &t.version)) return bad(why, "has a version that is not two lowercase hex digits");
    if (t.version == 0xff) return bad(why, "has version ff, which is invalid");
    if (n < TRACEPARENT_LEN) return bad(why, "is shorter than 55 characters");
    if (t.version == 0 && n != TRACEPARENT_LEN)
        return bad(why, "must be exactly 55 characters in version 00");
    /* a later version may carry more after its flags, behind a dash */
    if (n > TRACEPARENT_LEN && s[TRACEPARENT_LEN] != '-')
        return bad(why, "has something other than '-' after the flags");
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return bad(why, "is not version-traceid-parentid-flags");
    if (!hex_bytes(s + 3, 16, t.trace_id)) return bad(why, "has a trace-id that is not 32 lowercase hex digits");
    if (!hex_bytes(s + 36, 8, t.parent_id))
        return bad(why, "has a parent-id that is not 16 lowercase hex digits");
    if (!hex_bytes(s + 53, 1, &t.flags)) return bad(why, "has flags that are not two lowercase hex digits");
    if (all_zero(t.trace_id, sizeof(t.trace_id))) return bad(why, "has an all-zero trace-id");
    if (all_zero(t.parent_id, sizeof(t.parent_id))) return bad(why, "has an all-zero parent-id");
    if (t.version != 0) t.flags &= TRACE_FLAG_SAMPLED; /* the one flag herald knows there */
    *out = t;
    return HR_OK;
}

void trace_format(const trace_ctx_t *t, char out[TRACEPARENT_LEN + 1])
{
    char *p = out;
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    for (size_t i = 0; i < sizeof(t->trace_id); i++) {
        *p++ = hex_lower[t->trace_id[i] >> 4];
        *p++ = hex_lower[t->trace_id[i] & 15];
    }
    *p++ = '-';
    for (size_t i = 0; i < sizeof(t->parent_id); i++) {
        *p++ = hex_lower[t->parent_id[i] >> 4];
        *p++ = hex_lower[t->parent_id[i] & 15];
    }
    *p++ = '-';
    uint8_t flags = t->version == 0 ? t->flags : (uint8_t)(t->flags & TRACE_FLAG_SAMPLED);
    *p++ = hex_lower[flags >> 4];
    *p++ = hex_lower[flags & 15];
    *p = '\0';
}

hr_t trace_normalize(const char *s, size_t n, char out[TRACEPARENT_LEN + 1], const char **why)
{
    trace_ctx_t t;
    out[0] = '\0';
    hr_t r = trace_parse(s, n, &t, why);
    if (r == HR_OK) trace_format(&t, out);
    return r;
}

bool trace_is_v00(const char *s, size_t n)
{
    trace_ctx_t t;
    return n == TRACEPARENT_LEN && s && s[0] == '0' && s[1] == '0' &&
           trace_parse(s, n, &t, NULL) == HR_OK;
}
