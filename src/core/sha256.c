/*
 * sha256.c - SHA-256 with a context on the stack (sha256.h).
 *
 * OpenSSL 3.0's EVP_DigestInit_ex2 frees and allocates the digest's
 * context on every call, even when the EVP_MD_CTX is reused with the same
 * digest: a malloc and a free per hash. The low-level SHA256_Init/Update/
 * Final (deprecated in 3.0, still provided) run the same assembly on a
 * stack context: 0.08 against 0.21 us per 40-byte id, measured here.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/sha256.h"

#include <openssl/sha.h>

void sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}
