/*
 * text.c - UTF-8 well-formedness and hex digits (text.h).
 */
#include "core/text.h"

const char hex_lower[17] = "0123456789abcdef";
const char hex_upper[17] = "0123456789ABCDEF";

int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    /* the second byte's range depends on the first (Table 3-7) */
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0) lo = 0xA0;       /* no overlong 3-byte forms */
    else if (c == 0xED) hi = 0x9F;  /* no surrogates */
    else if (c == 0xF0) lo = 0x90;  /* no overlong 4-byte forms */
    else if (c == 0xF4) hi = 0x8F;  /* nothing above U+10FFFF */
    if (n < 2 || s[1] < lo || s[1] > hi) return 0;
    if (n < 3 || (s[2] & 0xC0) != 0x80) return 0;
    if (c < 0xF0) return 3;
    if (n < 4 || (s[3] & 0xC0) != 0x80) return 0;
    return 4;
}

bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) { /* ASCII */
            i++;
            continue;
        }
        size_t l = utf8_seq_len(p + i, n - i);
        if (l == 0) return false;
        i += l;
    }
    return true;
}

bool utf8_printable(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] >= 0x20 && p[i] < 0x7f) { /* printable ASCII: nearly every byte of an id */
            i++;
            continue;
        }
        if (p[i] < 0x20 || p[i] == 0x7f) return false;
        size_t l = utf8_seq_len(p + i, n - i);
        if (l == 0) return false;
        /* C1 controls U+0080..U+009F are encoded as c2 80..c2 9f */
        if (l == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) return false;
        i += l;
    }
    return true;
}
