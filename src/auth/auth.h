/*
 * auth.h - API keys: their format, their scopes, and the check every API
 * request passes (with a cache of verified keys, so the check stays off
 * the hot path's profile).
 *
 * A key is "hk_<key_id>_<secret>": key_id is 16 lowercase hex characters
 * (public: it names the key in `herald keys list` and in logs), secret is
 * 43 base64url characters (256 random bits). The store keeps the key_id,
 * SHA-256 of the secret, the tenant and the scopes; the key itself is
 * shown once, when it is created. SHA-256 rather than a slow password
 * hash: the secret is random and 256 bits long, so there is nothing to
 * guess, and a slow hash would cost every request.
 *
 * Scopes: publish (POST /v1/events), manage (users, preferences, topics,
 * follows, templates), read (notifications, users, templates, topics),
 * admin (everything, the DLQ and the metrics). Every key has a tenant.
 *
 * Threads: auth_check and auth_forget are safe from any thread; the
 * rest belongs to the thread that owns the auth_t.
 */
#ifndef HERALD_AUTH_H
#define HERALD_AUTH_H

#include "core/common.h"
#include "store/store.h"

enum {
    SCOPE_PUBLISH = 1u << 0,
    SCOPE_MANAGE = 1u << 1,
    SCOPE_READ = 1u << 2,
    SCOPE_ADMIN = 1u << 3,
    SCOPE__ALL = (1u << 4) - 1,
};

#define APIKEY_ID_HEX 16
#define APIKEY_SECRET_B64 43
#define APIKEY_LEN (3 + APIKEY_ID_HEX + 1 + APIKEY_SECRET_B64) /* "hk_" id "_" secret */
#define TENANT_DEFAULT "default"

/* "publish,read" -> bits; HR_INVALID naming the bad word in why. */
hr_t scopes_parse(const char *csv, unsigned *out, char *why, size_t why_len);
/* bits -> "publish,read" into out; returns out. */
const char *scopes_format(unsigned scopes, char *out, size_t cap);
/* Is tenant a valid tenant name: 1-64 of [a-z0-9_-], starting with a
 * letter or digit? */
bool tenant_valid(const char *tenant);

/* Makes a new key for tenant with scopes, stores its record and writes the
 * key (NUL-terminated) to key_out. HR_INVALID for a bad tenant, no scope
 * or a name over 128 bytes. */
hr_t apikey_create(store_t *s, const char *tenant, unsigned scopes, const char *name,
                   char key_out[APIKEY_LEN + 1], api_key_rec_t *rec_out);

/* ------------------------------------------------------------ checks */

typedef enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING,       /* no key given: 401 */
    AUTH_INVALID,       /* malformed, unknown or revoked: 401 */
    AUTH_FORBIDDEN,     /* valid, but without the scope: 403 */
    AUTH_UNAVAILABLE,   /* the store could not answer: 503 */
} auth_result_t;

/* Who a request is, once its key checked out. */
typedef struct auth_ctx {
    char key_id[APIKEY_ID_HEX + 1];
    char tenant[STORE_TENANT_MAX + 1];
    unsigned scopes;
} auth_ctx_t;

typedef struct auth auth_t;

/* cache_ms: how long a verified key is trusted without asking the store
 * again (a revocation takes effect within it). now_ms: the clock (NULL =
 * the wall clock; tests inject one). */
auth_t *auth_new(store_t *store, int64_t cache_ms, int64_t (*now_ms)(void));
void auth_free(auth_t *a);
/* Checks key[0..n) (n == 0: none given) for a scope in `need` (any of
 * them; admin passes every check; need 0 means admin only). On AUTH_OK and AUTH_FORBIDDEN, *who
 * is filled. */
auth_result_t auth_check(auth_t *a, const char *key, size_t n, unsigned need, auth_ctx_t *who);
/* Drops every cached verification (after a revocation in this process). */
void auth_forget(auth_t *a);

/* The bootstrap: when the store holds no key at all, creates an admin key
 * for tenant "default" and writes it to path (mode 0600, one line).
 * *created says whether it did. The key is never logged. */
hr_t auth_bootstrap(store_t *s, const char *path, bool *created, char *why, size_t why_len);

#endif
