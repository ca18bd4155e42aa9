/*
 * base64.c - base64url on top of OpenSSL's base64 block coder: translate
 * the two alphabet characters that differ ('+' '/' <-> '-' '_') and drop or
 * restore the '=' padding. EVP_DecodeBlock is lenient (it trims spaces and
 * takes '=' anywhere), so the input is checked against the base64url
 * alphabet first.
 */
#include "core/base64.h"

#include "core/common.h"

#include <openssl/evp.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

char *base64url_encode(const void *p, size_t n)
{
    /* EVP_EncodeBlock writes 4 bytes per 3 (padded) and a NUL */
    assert(n <= (size_t)INT32_MAX / 4 * 3);
    char *o = xmalloc((n + 2) / 3 * 4 + 1);
    int len = EVP_EncodeBlock((unsigned char *)o, p, (int)n);
    while (len > 0 && o[len - 1] == '=') len--;
    o[len] = '\0';
    for (char *c = o; *c; c++) {
        if (*c == '+') *c = '-';
        else if (*c == '/') *c = '_';
    }
    return o;
}

char *base64url_decode(const char *s, size_t n, size_t *out_len)
{
    if (n % 4 == 1 || n > (size_t)INT32_MAX / 2) return NULL;
    size_t padded = (n + 3) / 4 * 4;
    char *in = xmalloc(padded + 1);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(in);
            return NULL;
        }
        in[i] = c;
    }
    memset(in + n, '=', padded - n);
    in[padded] = '\0';
    /* 3 bytes per 4 characters; the padding counts as zero bytes there */
    char *o = xmalloc(padded / 4 * 3 + 1);
    int got = padded ? EVP_DecodeBlock((unsigned char *)o, (unsigned char *)in, (int)padded) : 0;
    free(in);
    if (got < 0) {
        free(o);
        return NULL;
    }
    size_t len = n / 4 * 3 + (n % 4 == 2 ? 1 : n % 4 == 3 ? 2 : 0);
    o[len] = '\0';
    if (out_len) *out_len = len;
    return o;
}

char *base64_encode(const void *p, size_t n)
{
    assert(n <= (size_t)INT32_MAX / 4 * 3);
    char *o = xmalloc((n + 2) / 3 * 4 + 1);
    int len = EVP_EncodeBlock((unsigned char *)o, p, (int)n);
    o[len] = '\0';
    return o;
}

unsigned char *base64_decode(const char *s, size_t n, size_t *out_len)
{
    if (n % 4 != 0 || n > (size_t)INT32_MAX / 2) return NULL;
    size_t pad = 0;
    if (n && s[n - 1] == '=') pad++;
    if (n > 1 && s[n - 2] == '=') pad++;
    for (size_t i = 0; i < n - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return NULL;
    }
    unsigned char *o = xmalloc(n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(o, (const unsigned char *)s, (int)n) : 0;
    if (got < 0) {
        free(o);
        return NULL;
    }
    size_t len = n / 4 * 3 - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    o[len] = '\0';
    if (out_len) *out_len = len;
    return o;
}
