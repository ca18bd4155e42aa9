/*
 * text.h - byte-level text helpers shared by the codecs and the HTTP layer:
 * UTF-8 well-formedness and hex digits. Pure functions, any thread.
 *
 * Written here rather than taken from a library: the checks are a few lines
 * each, libunistring (u8_check) would be a new dependency for them, and
 * jansson validates UTF-8 internally but does not export it.
 */
#ifndef HERALD_TEXT_H
#define HERALD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Hex digits by value, lower and upper case ("0123456789abcdef"). */
extern const char hex_lower[17];
extern const char hex_upper[17];

/* The value of a hex digit of either case, or -1. */
int hex_value(int c);

/* Length of the well-formed UTF-8 sequence at s[0..n) (n >= 1): 1 for
 * ASCII (including control characters), 2..4 for a multi-byte sequence,
 * 0 when ill-formed or cut short (Unicode Table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Is s[0..n) well-formed UTF-8? (NUL and other controls are allowed.) */
bool utf8_valid(const char *s, size_t n);

/* Is s[0..n) well-formed UTF-8 without control characters: no C0 (NUL to
 * 0x1F, which includes the tenant separator 0x1F), no DEL, no C1
 * (U+0080..U+009F)? The rule for every id and name a client sends. */
bool utf8_printable(const char *s, size_t n);

#endif
