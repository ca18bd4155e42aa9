/*
 * json_write.c - the JSON string escaper and writer (see json_write.h).
 *
 * DESIGN. Most strings need no escaping at all, so every string first
 * measures its clean prefix (printable ASCII other than '"' and '\', and
 * well-formed UTF-8), then reserves room for the key, the quotes and that
 * prefix at once: one limit check and two copies in the common case. Only
 * from the first byte that needs care does it go byte by byte.
 */
#include "core/json_write.h"

#include "core/text.h"

#include <string.h>

void jw_raw(jw_t *w, const void *p, size_t n)
{
    if (w->r == HR_OK) w->r = buf_append(w->b, p, n);
}

/* Claims n bytes at the end of the buffer for the caller to fill; NULL
 * after a failure. */
static char *jw_grab(jw_t *w, size_t n)
{
    if (w->r != HR_OK || (w->r = buf_reserve(w->b, n)) != HR_OK) return NULL;
    char *p = w->b->data + w->b->len;
    w->b->len += n;
    w->b->data[w->b->len] = '\0';
    return p;
}

/* Length of the prefix of s that JSON can carry as it is. */
static size_t json_clean_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t k = c >= 0x80 ? utf8_seq_len(s + i, n - i) : 0;
        if (!k) break;
        i += k;
    }
    return i;
}

/* Escapes s (which starts with a byte that needs it) and closes the string. */
static void jw_str_tail(jw_t *w, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        switch (c) {
        case '"': jw_lit(w, "\\\""); break;
        case '\\': jw_lit(w, "\\\\"); break;
        case '\b': jw_lit(w, "\\b"); break;
        case '\f': jw_lit(w, "\\f"); break;
        case '\n': jw_lit(w, "\\n"); break;
        case '\r': jw_lit(w, "\\r"); break;
        case '\t': jw_lit(w, "\\t"); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                jw_raw(w, e, sizeof(e));
            } else {
                jw_lit(w, "\\ufffd"); /* a byte that is not well-formed UTF-8 */
            }
        }
        i++;
        size_t clean = json_clean_prefix(s + i, n - i);
        jw_raw(w, s + i, clean);
        i += clean;
    }
    jw_lit(w, "\"");
}

void jw_key_str(jw_t *w, const char *key, size_t kn, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t clean = n ? json_clean_prefix(s, n) : 0;
    bool whole = clean == n;
    char *p = jw_grab(w, kn + 1 + clean + whole);
    if (!p) return;
    if (kn) memcpy(p, key, kn);
    p += kn;
    *p++ = '"';
    if (clean) memcpy(p, s, clean);
    if (whole) p[clean] = '"';
    else jw_str_tail(w, s + clean, n - clean);
}

void jw_str(jw_t *w, const char *s, size_t n)
{
    jw_key_str(w, "", 0, s, n);
}

void jw_key_int(jw_t *w, const char *key, size_t kn, int64_t v)
{
    char num[24];
    char *e = num + sizeof(num), *d = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--d = '-';
    size_t dn = (size_t)(e - d);
    char *p = jw_grab(w, kn + dn);
    if (!p) return;
    if (kn) memcpy(p, key, kn);
    memcpy(p + kn, d, dn);
}
