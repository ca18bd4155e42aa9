/*
 * base64.h - base64url without padding (RFC 4648 section 5), for opaque
 * tokens such as the API's page cursors; and standard padded base64
 * (section 4) for what other parties define in it (HTTP Basic auth,
 * provider signatures and keys). Any thread.
 *
 * Ownership: results are malloc'd, NUL-terminated; the caller frees them.
 */
#ifndef HERALD_BASE64_H
#define HERALD_BASE64_H

#include <stddef.h>

/* Encodes p[0..n) as base64url, no '=' padding. Never NULL. */
char *base64url_encode(const void *p, size_t n);
/* Decodes base64url without padding. NULL when s[0..n) holds a character
 * outside [A-Za-z0-9_-] (padding included) or has an impossible length
 * (n % 4 == 1). The result is NUL-terminated; *out_len (may be NULL) gets
 * its length, which can include NUL bytes of the input. */
char *base64url_decode(const char *s, size_t n, size_t *out_len);

/* Encodes p[0..n) as standard base64 with '=' padding. Never NULL. */
char *base64_encode(const void *p, size_t n);
/* Decodes standard padded base64, strictly: NULL unless n % 4 == 0, every
 * character is in [A-Za-z0-9+/] and '=' appears only as the last one or
 * two. NUL-terminated; *out_len (may be NULL) gets the length. */
unsigned char *base64_decode(const char *s, size_t n, size_t *out_len);

#endif
