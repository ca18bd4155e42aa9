/*
 * sha256.h - SHA-256 for hot paths (notification ids, API key checks).
 *
 * OpenSSL 3's one-shot SHA256() fetches the algorithm on every call, which
 * costs more than hashing the few bytes of an id or a key, and EVP
 * allocates a context per hash: this hashes on the stack. Any thread.
 */
#ifndef HERALD_SHA256_H
#define HERALD_SHA256_H

#include <stddef.h>

void sha256(const void *data, size_t len, unsigned char out[32]);

#endif
