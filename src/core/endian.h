/*
 * endian.h - little-endian loads and stores for on-disk and on-wire formats
 * (the embedded bus's record header, the notification record codec). Byte by
 * byte, so they work at any alignment; compilers turn them into single moves.
 */
#ifndef HERALD_ENDIAN_H
#define HERALD_ENDIAN_H

#include <stdint.h>

static inline void le_put16(void *p, uint16_t v)
{
    unsigned char *q = p;
    q[0] = (unsigned char)v;
    q[1] = (unsigned char)(v >> 8);
}

static inline void le_put32(void *p, uint32_t v)
{
    unsigned char *q = p;
    q[0] = (unsigned char)v;
    q[1] = (unsigned char)(v >> 8);
    q[2] = (unsigned char)(v >> 16);
    q[3] = (unsigned char)(v >> 24);
}

static inline void le_put64(void *p, int64_t v)
{
    le_put32(p, (uint32_t)((uint64_t)v & 0xffffffffu));
    le_put32((unsigned char *)p + 4, (uint32_t)((uint64_t)v >> 32));
}

static inline uint16_t le_get16(const void *p)
{
    const unsigned char *q = p;
    return (uint16_t)(q[0] | (unsigned)q[1] << 8);
}

static inline uint32_t le_get32(const void *p)
{
    const unsigned char *q = p;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

static inline int64_t le_get64(const void *p)
{
    return (int64_t)((uint64_t)le_get32(p) | ((uint64_t)le_get32((const unsigned char *)p + 4) << 32));
}

#endif
