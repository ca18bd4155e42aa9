/*
 * varint.h - LEB128 varints and zigzag coding for our compact binary
 * records: the status record on the bus (model/status_rec.c), the status
 * log's row blob (store/store_sqlite_notif.c) and the recipient cache's
 * packed entries (stage/recipients.c).
 *
 * Unsigned integers take 7 bits a byte, low bits first, the high bit set on
 * every byte but the last (VARINT_MAX bytes at most for 64 bits). Signed
 * ones are zigzag-coded first, so small magnitudes of either sign stay
 * short. A span is a varint length followed by that many bytes.
 *
 * The readers take untrusted bytes: every read is checked against len and
 * a varint longer than 64 bits is refused. Header-only; any thread.
 */
#ifndef HERALD_VARINT_H
#define HERALD_VARINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VARINT_MAX 10 /* bytes of the longest 64-bit varint */

/* Writes v at p (room for VARINT_MAX bytes); returns the bytes written. */
static inline size_t varint_put(unsigned char *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (unsigned char)v;
    return i;
}

/* Reads a varint at *off of p[0..len) and advances *off; false when it runs
 * past len or past 64 bits. */
static inline bool varint_get(const unsigned char *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*off >= len) return false;
        unsigned char b = p[(*off)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static inline uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Writes a span (length, then the bytes) at p (room for VARINT_MAX + n). */
static inline size_t varint_span_put(unsigned char *p, const void *s, size_t n)
{
    size_t i = varint_put(p, n);
    if (n) memcpy(p + i, s, n);
    return i + n;
}

/* Reads a span at *off: *s points into p, *n is its length. False when the
 * length or the bytes run past len. */
static inline bool varint_span_get(const unsigned char *p, size_t len, size_t *off,
                                   const char **s, size_t *n)
{
    uint64_t k;
    if (!varint_get(p, len, off, &k) || k > len - *off) return false;
    *s = (const char *)p + *off;
    *n = (size_t)k;
    *off += (size_t)k;
    return true;
}

#endif
