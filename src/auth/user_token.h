/*
 * user_token.h - short-lived tokens herald signs for one user, so that a
 * browser can read and change that user's in-app inbox (and open its live
 * stream) without holding an API key.
 *
 * A token is "hu1.<payload>.<mac>", URL-safe: payload is base64url of
 * "<tenant>\n<expiry, unix seconds>\n<user id>" (the id as the client knows
 * it), mac base64url of HMAC-SHA256(secret, "hu1.<payload>"). Nothing is
 * stored: the token carries its user and expiry, the secret proves herald
 * made it. A token opens the inbox routes of its own user only (server.c
 * checks the route and the path's user); it cannot be revoked before it
 * expires, so keep lifetimes short (inbox.token_ttl_s).
 *
 * The secret comes from a file (inbox.token_secret_file), made with 32
 * random bytes on first start when it does not exist; processes behind one
 * address share the file.
 *
 * Threads: a loaded key is immutable; sign and verify are safe from any
 * thread.
 */
#ifndef HERALD_USER_TOKEN_H
#define HERALD_USER_TOKEN_H

#include "core/common.h"
#include "store/store.h"

#define USER_TOKEN_PREFIX "hu1."
#define USER_TOKEN_SECRET_MIN 32    /* bytes */
#define USER_TOKEN_MAX 1024         /* longer is refused unread */

typedef struct user_token_key user_token_key_t;

/* A key from secret[0..n) (copied); NULL when n < USER_TOKEN_SECRET_MIN. */
user_token_key_t *user_token_key_new(const void *secret, size_t n);
/* Loads the secret file at path, creating it (32 random bytes, base64url,
 * mode 0600, never over an existing file) when it does not exist. The file's
 * bytes (trailing newline dropped) are the secret. HR_INVALID when it is
 * shorter than USER_TOKEN_SECRET_MIN; why says what failed (never the
 * secret). */
hr_t user_token_key_load(const char *path, user_token_key_t **out, char *why, size_t why_len);
/* Wipes and frees the key; NULL is a no-op. */
void user_token_key_free(user_token_key_t *k);

/* A token for user_id of tenant, valid until exp_s (unix seconds). Malloc'd. */
char *user_token_sign(const user_token_key_t *k, const char *tenant, const char *user_id,
                      int64_t exp_s);

/* What a valid token says. */
typedef struct user_token {
    char tenant[STORE_TENANT_MAX + 1];
    char user_id[256];
    int64_t exp_s;
} user_token_t;

/* Checks tok[0..n) at now_s: HR_OK and *out filled; HR_INVALID when it is
 * malformed or its MAC is not ours (forged, or signed with another secret);
 * HR_TIMEOUT when it has expired. */
hr_t user_token_verify(const user_token_key_t *k, const char *tok, size_t n, int64_t now_s,
                       user_token_t *out);
/* Does s[0..n) look like a user token (rather than an API key)? */
bool user_token_like(const char *s, size_t n);

#endif
