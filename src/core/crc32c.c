/*
 * crc32c.c - CRC-32C in hardware (SSE4.2) with a portable table fallback,
 * chosen at run time (see crc32c.h for why this is not zlib's crc32).
 */
#include "core/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86_CRC 1
#endif

#define POLY 0x82F63B78u /* 0x1EDC6F41 reflected */

/* ---- portable: slicing by 8 ---- */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, table_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
              table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---- SSE4.2 ----
 * The crc32 instruction takes 8 bytes but has a latency of 3 cycles (and a
 * throughput of one a cycle), so one chain of them runs at a third of the
 * unit's speed. From three stripes' worth on, three chains run side by side
 * over three stripes, and the stripes' CRCs are joined: the register after
 * A then B is the register after A advanced over |B| zero bytes, xor the
 * register after B started from 0 (CRCs are linear), and advancing over a
 * stripe's zero bytes is a linear map of the 32-bit register: four lookups
 * in a table per register byte (shift_long, shift_short). ~2x faster on
 * the embedded bus's records (a few hundred bytes each, CRC'd by the
 * producer's flusher and again by every consumer). The technique is the
 * usual one of hardware CRC-32C code (Intel's white paper, Mark Adler's
 * crc32c.c); the code is ours. */

#if defined(HAVE_X86_CRC) && defined(__x86_64__)
/* Stripes of 256 bytes while 768 are left (a join per 768 bytes), then of
 * 64 (records of 192 bytes and more). */
enum { STRIPE_LONG = 256, STRIPE_SHORT = 64 };

static uint32_t shift_long[4][256], shift_short[4][256];
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

/* The register c advanced over n zero bytes, a bit at a time. */
static uint32_t zeros_slow(uint32_t c, size_t n)
{
    for (size_t i = 0; i < 8 * n; i++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    return c;
}

static void shift_table(uint32_t t[4][256], size_t n)
{
    uint32_t basis[32]; /* bit b of the register advanced over n zero bytes */
    for (int b = 0; b < 32; b++) basis[b] = zeros_slow(UINT32_C(1) << b, n);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t x = 0;
            for (int j = 0; j < 8; j++)
                if (v >> j & 1) x ^= basis[8 * k + j];
            t[k][v] = x;
        }
}

static void stripe_init(void)
{
    shift_table(shift_long, STRIPE_LONG);
    shift_table(shift_short, STRIPE_SHORT);
}

static inline uint32_t advance(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

/* c over the rounds of 3 stripes of `stripe` bytes at *p (while *len has
 * one); t advances over `stripe` zero bytes. */
__attribute__((target("sse4.2"))) static inline uint64_t stripes(uint64_t c, const unsigned char **p, size_t *len,
                                                                  size_t stripe, const uint32_t t[4][256])
{
    const unsigned char *q = *p;
    size_t n = *len;
    while (n >= 3 * stripe) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < stripe; i += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, q + i, 8);
            memcpy(&v1, q + stripe + i, 8);
            memcpy(&v2, q + 2 * stripe + i, 8);
            c = _mm_crc32_u64(c, v0);
            c1 = _mm_crc32_u64(c1, v1);
            c2 = _mm_crc32_u64(c2, v2);
        }
        c = advance(t, advance(t, (uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
        q += 3 * stripe;
        n -= 3 * stripe;
    }
    *p = q;
    *len = n;
    return c;
}
#endif

#ifdef HAVE_X86_CRC
/* Only through crc32c_hardware(), which makes stripe_shift first. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = _mm_crc32_u8(crc, *p++);
        len--;
    }
#if defined(__x86_64__)
    uint64_t c = crc;
    c = stripes(c, &p, &len, STRIPE_LONG, shift_long);
    c = stripes(c, &p, &len, STRIPE_SHORT, shift_short);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
#endif
    while (len >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        crc = _mm_crc32_u32(crc, v);
        p += 4;
        len -= 4;
    }
    while (len--) crc = _mm_crc32_u8(crc, *p++);
    return ~crc;
}
#endif

crc32c_fn crc32c_hardware(void)
{
#ifdef HAVE_X86_CRC
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
#if defined(__x86_64__)
        pthread_once(&stripe_once, stripe_init);
#endif
        return crc32c_sse42;
    }
#endif
    return NULL;
}

/* ---- dispatch ---- */

static uint32_t crc32c_resolve(uint32_t crc, const void *data, size_t len);
static _Atomic(crc32c_fn) impl = crc32c_resolve;

static crc32c_fn pick(void)
{
    crc32c_fn f = crc32c_hardware();
    return f ? f : crc32c_portable;
}

static uint32_t crc32c_resolve(uint32_t crc, const void *data, size_t len)
{
    crc32c_fn f = pick();
    atomic_store_explicit(&impl, f, memory_order_relaxed);
    return f(crc, data, len);
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    return atomic_load_explicit(&impl, memory_order_relaxed)(crc, data, len);
}

const char *crc32c_impl(void) { return crc32c_hardware() ? "sse4.2" : "table"; }
