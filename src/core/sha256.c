/*
 * sha256.c - SHA-256 with the digest fetched once and a context per
 * thread (sha256.h).
 */
#include "core/sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;

static void sha256_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }

static void sha256_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha256_key, sha256_ctx_free) != 0) abort();
}

void sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&sha256_once, sha256_init);
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        if (!ctx) abort();
        pthread_setspecific(sha256_key, ctx);
    }
    unsigned int n = 0;
    if (!sha256_md || !EVP_DigestInit_ex2(ctx, sha256_md, NULL) || !EVP_DigestUpdate(ctx, data, len) ||
        !EVP_DigestFinal_ex(ctx, out, &n))
        SHA256(data, len, out); /* the slow path still gives the right answer */
}
