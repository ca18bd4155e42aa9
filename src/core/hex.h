/*
 * hex.h - 16 hex digits read as one 64-bit value, eight at a time in a
 * word (SWAR). Shared by the status sink (store_sqlite_int.h: ids as sort
 * keys and blocks) and dispatch's sent-id set (stage/sent_ids.c), the two
 * places that parse every notification id on the hot path: a loop with a
 * branch or a table load per digit was a third of the sink's own loop.
 */
#ifndef HERALD_HEX_H
#define HERALD_HEX_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The value of the 16 hex digits at p (any alignment, the first digit the
 * most significant) into *v; false (*v undefined) when a byte is not a
 * digit: '0'-'9', 'a'-'f', and 'A'-'F' too when any_case. For bytes below
 * 0x80, b + (0x80 - lo) has its top bit set exactly when b >= lo, and no
 * byte carries into the next; letters are folded to lower case (| 0x20,
 * whose only preimages of 'a'..'f' are 'A'..'F' and 'a'..'f'). A digit's
 * value is its low nibble, a letter's its low nibble + 9. */
static inline bool hex16_value(const char *p, uint64_t *v, bool any_case)
{
    const uint64_t ones = 0x0101010101010101ull, top = 0x8080808080808080ull;
    uint64_t out = 0, bad = 0;
    for (int h = 0; h < 2; h++) {
        uint64_t x;
        memcpy(&x, p + 8 * h, 8);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        x = __builtin_bswap64(x); /* the first digit in the low byte */
#endif
        bad |= x & top; /* 0x80 and up: not a digit (and no carries below) */
        uint64_t l = any_case ? x | ones * 0x20 : x;
        uint64_t ge0 = x + ones * (0x80 - '0'), ge10 = x + ones * (0x80 - '9' - 1);
        uint64_t gea = l + ones * (0x80 - 'a'), gef = l + ones * (0x80 - 'f' - 1);
        uint64_t digit = ge0 & ~ge10 & top, letter = gea & ~gef & top;
        bad |= ~(digit | letter) & top;
        uint64_t nib = (x & ones * 0x0f) + (letter >> 7) * 9;
        /* bytes d0..d7 (d0 first) -> 16-bit lanes (d0 << 4 | d1) ... */
        uint64_t b = (nib << 4 | nib >> 8) & 0x00ff00ff00ff00ffull;
        b = (b | b >> 8) & 0x0000ffff0000ffffull; /* 32-bit lanes: byte pairs */
        b = (b | b >> 16) & 0xffffffffull;        /* the 4 bytes, the first lowest */
        out = out << 32 | __builtin_bswap32((uint32_t)b);
    }
    *v = out;
    return bad == 0;
}

#endif
