/*
 * user_token.c - user tokens (user_token.h): HMAC-SHA256 over the payload
 * with OpenSSL's one-shot HMAC(), compared in constant time.
 */
#include "auth/user_token.h"

#include "core/base64.h"
#include "core/file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAC_LEN 32
#define PREFIX_LEN (sizeof(USER_TOKEN_PREFIX) - 1)

struct user_token_key {
    size_t n;
    unsigned char secret[];
};

user_token_key_t *user_token_key_new(const void *secret, size_t n)
{
    if (n < USER_TOKEN_SECRET_MIN) return NULL;
    user_token_key_t *k = xmalloc(sizeof(*k) + n);
    k->n = n;
    memcpy(k->secret, secret, n);
    return k;
}

void user_token_key_free(user_token_key_t *k)
{
    if (!k) return;
    OPENSSL_cleanse(k->secret, k->n);
    free(k);
}

/* Creates path with a new random secret (link into place, never over a file). */
static hr_t key_create(const char *path, char *why, size_t why_len)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        snprintf(why, why_len, "no random bytes for the user token secret");
        return HR_ERR;
    }
    char *text = base64url_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    char *tmp = xasprintf("%s.tmp", path);
    unlink(tmp);
    hr_t r = HR_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    if (fd < 0) {
        snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(errno));
        r = HR_ERR;
    } else {
        text[len] = '\n';
        bool ok = write(fd, text, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
        close(fd);
        if (!ok || link(tmp, path) != 0) {
            /* EEXIST: another process made it first; reading it is right */
            if (ok && errno == EEXIST) r = HR_OK;
            else {
                snprintf(why, why_len, "cannot write %s: %s", path, strerror(errno));
                r = HR_ERR;
            }
        }
        unlink(tmp);
    }
    file_secret_free(text, len + 1);
    free(tmp);
    return r;
}

hr_t user_token_key_load(const char *path, user_token_key_t **out, char *why, size_t why_len)
{
    *out = NULL;
    if (access(path, F_OK) != 0) {
        hr_t r = key_create(path, why, why_len);
        if (r != HR_OK) return r;
    }
    char *p = NULL;
    size_t n = 0;
    hr_t r = file_read_small(path, 4096, &p, &n, why, why_len);
    if (r != HR_OK) return r;
    size_t used = n;
    while (used && (p[used - 1] == '\n' || p[used - 1] == '\r')) used--;
    *out = user_token_key_new(p, used);
    file_secret_free(p, n);
    if (!*out) {
        snprintf(why, why_len, "%s holds %zu bytes; a user token secret needs at least %d", path,
                 used, USER_TOKEN_SECRET_MIN);
        return HR_INVALID;
    }
    return HR_OK;
}

static void mac_of(const user_token_key_t *k, const char *msg, size_t n, unsigned char out[MAC_LEN])
{
    unsigned int len = MAC_LEN;
    HMAC(EVP_sha256(), k->secret, (int)k->n, (const unsigned char *)msg, n, out, &len);
}

char *user_token_sign(const user_token_key_t *k, const char *tenant, const char *user_id,
                      int64_t exp_s)
{
    char *payload = xasprintf("%s\n%" PRId64 "\n%s", tenant, exp_s, user_id);
    char *p64 = base64url_encode(payload, strlen(payload));
    char *signed_part = xasprintf(USER_TOKEN_PREFIX "%s", p64);
    unsigned char mac[MAC_LEN];
    mac_of(k, signed_part, strlen(signed_part), mac);
    char *m64 = base64url_encode(mac, sizeof(mac));
    char *tok = xasprintf("%s.%s", signed_part, m64);
    free(payload);
    free(p64);
    free(signed_part);
    free(m64);
    return tok;
}

bool user_token_like(const char *s, size_t n)
{
    return s && n >= PREFIX_LEN && memcmp(s, USER_TOKEN_PREFIX, PREFIX_LEN) == 0;
}

hr_t user_token_verify(const user_token_key_t *k, const char *tok, size_t n, int64_t now_s,
                       user_token_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!user_token_like(tok, n) || n > USER_TOKEN_MAX) return HR_INVALID;
    const char *dot = memchr(tok + PREFIX_LEN, '.', n - PREFIX_LEN);
    if (!dot) return HR_INVALID;
    size_t signed_len = (size_t)(dot - tok);
    /* compared as text: a second spelling of the same MAC (other unused
     * low bits in its last character) is not accepted */
    unsigned char want[MAC_LEN];
    mac_of(k, tok, signed_len, want);
    char *want64 = base64url_encode(want, sizeof(want));
    size_t mlen = n - signed_len - 1;
    bool good = mlen == strlen(want64) && CRYPTO_memcmp(dot + 1, want64, mlen) == 0;
    free(want64);
    if (!good) return HR_INVALID;
    /* the MAC is ours: the payload is what we wrote, still parse it with care */
    size_t plen = 0;
    char *payload = base64url_decode(tok + PREFIX_LEN, signed_len - PREFIX_LEN, &plen);
    hr_t r = HR_INVALID;
    char *nl1 = payload ? memchr(payload, '\n', plen) : NULL;
    char *nl2 = nl1 ? memchr(nl1 + 1, '\n', plen - (size_t)(nl1 + 1 - payload)) : NULL;
    if (nl2 && !memchr(payload, '\0', plen)) {
        size_t tl = (size_t)(nl1 - payload), ul = plen - (size_t)(nl2 + 1 - payload);
        char *end = NULL;
        errno = 0;
        long long exp = strtoll(nl1 + 1, &end, 10);
        if (tl && tl < sizeof(out->tenant) && ul && ul < sizeof(out->user_id) && end == nl2 &&
            !errno) {
            memcpy(out->tenant, payload, tl);
            memcpy(out->user_id, nl2 + 1, ul);
            out->exp_s = exp;
            r = exp > now_s ? HR_OK : HR_TIMEOUT;
        }
    }
    free(payload);
    if (r == HR_INVALID) memset(out, 0, sizeof(*out));
    return r;
}
