/*
 * auth.c - API keys and the per-request check (auth.h).
 *
 * DESIGN. The check is on every API request, so verified keys are cached:
 * AUTH_CACHE_SLOTS direct-mapped slots keyed by SHA-256 of the whole key
 * as presented, each remembering the key's tenant and scopes and when the
 * store last confirmed them. A hit costs one SHA-256 of ~63 bytes and a
 * striped lock; a miss is one store point read plus a SHA-256 of the
 * secret, compared in constant time. Only keys that checked out are
 * cached, so a revoked key fails within cache_ms, and garbage keys never
 * evict good ones.
 */
#include "auth/auth.h"

#include "core/base64.h"
#include "core/sha256.h"
#include "core/text.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const scope_names[] = {"publish", "manage", "read", "admin"};

hr_t scopes_parse(const char *csv, unsigned *out, char *why, size_t why_len)
{
    unsigned bits = 0;
    const char *p = csv ? csv : "";
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if (e == p) break;
        size_t n = (size_t)(e - p);
        bool known = false;
        for (size_t i = 0; i < ARRAY_LEN(scope_names); i++) {
            if (strlen(scope_names[i]) == n && memcmp(scope_names[i], p, n) == 0) {
                bits |= 1u << i;
                known = true;
            }
        }
        if (!known) {
            snprintf(why, why_len, "unknown scope '%.*s' (scopes: publish, manage, read, admin)",
                     (int)(n > 40 ? 40 : n), p);
            return HR_INVALID;
        }
        p = e;
    }
    if (!bits) {
        snprintf(why, why_len, "no scope given (scopes: publish, manage, read, admin)");
        return HR_INVALID;
    }
    *out = bits;
    return HR_OK;
}

const char *scopes_format(unsigned scopes, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(scope_names); i++) {
        if (!(scopes & (1u << i))) continue;
        int w = snprintf(out + k, cap - k, "%s%s", k ? "," : "", scope_names[i]);
        if (w < 0 || (size_t)w >= cap - k) break;
        k += (size_t)w;
    }
    return out;
}

bool tenant_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > STORE_TENANT_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
        if (!ok) return false;
    }
    return true;
}

hr_t apikey_create(store_t *s, const char *tenant, unsigned scopes, const char *name,
                   char key_out[APIKEY_LEN + 1], api_key_rec_t *rec_out)
{
    if (!tenant_valid(tenant) || !(scopes & SCOPE__ALL) || (scopes & ~(unsigned)SCOPE__ALL) ||
        (name && strlen(name) > STORE_KEY_NAME_MAX))
        return HR_INVALID;
    api_key_rec_t rec;
    memset(&rec, 0, sizeof(rec));
    unsigned char idb[APIKEY_ID_HEX / 2], secret[32];
    for (int attempt = 0; attempt < 3; attempt++) {
        if (RAND_bytes(idb, sizeof(idb)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1)
            return HR_ERR;
        for (size_t i = 0; i < sizeof(idb); i++) {
            rec.key_id[2 * i] = hex_lower[idb[i] >> 4];
            rec.key_id[2 * i + 1] = hex_lower[idb[i] & 15];
        }
        rec.key_id[2 * sizeof(idb)] = '\0';
        char *sec = base64url_encode(secret, sizeof(secret));
        OPENSSL_cleanse(secret, sizeof(secret));
        snprintf(key_out, APIKEY_LEN + 1, "hk_%s_%s", rec.key_id, sec);
        sha256(sec, strlen(sec), rec.secret_hash);
        OPENSSL_cleanse(sec, strlen(sec));
        free(sec);
        snprintf(rec.tenant, sizeof(rec.tenant), "%s", tenant);
        rec.scopes = scopes;
        snprintf(rec.name, sizeof(rec.name), "%s", name ? name : "");
        rec.created_at_ms = hclock_now_ms();
        hr_t r = store_key_put(s, &rec);
        if (r == HR_CONFLICT) continue; /* 64-bit id taken: draw again */
        if (r == HR_OK && rec_out) *rec_out = rec;
        if (r != HR_OK) OPENSSL_cleanse(key_out, APIKEY_LEN + 1);
        return r;
    }
    return HR_CONFLICT;
}

/* ------------------------------------------------------------ checks */

#define AUTH_CACHE_SLOTS 1024
#define AUTH_STRIPES 16

typedef struct slot {
    unsigned char digest[32];   /* SHA-256 of the whole key as presented */
    bool used;
    int64_t checked_ms;         /* when the store last confirmed it */
    auth_ctx_t who;
} slot_t;

struct auth {
    store_t *store;
    int64_t cache_ms;
    int64_t (*now_ms)(void);
    pthread_mutex_t mu[AUTH_STRIPES];
    slot_t slots[AUTH_CACHE_SLOTS];
};

static int64_t wall_ms(void) { return hclock_now_ms(); }

auth_t *auth_new(store_t *store, int64_t cache_ms, int64_t (*now_ms)(void))
{
    auth_t *a = xcalloc(1, sizeof(*a));
    a->store = store;
    a->cache_ms = cache_ms < 0 ? 0 : cache_ms;
    a->now_ms = now_ms ? now_ms : wall_ms;
    for (int i = 0; i < AUTH_STRIPES; i++) pthread_mutex_init(&a->mu[i], NULL);
    return a;
}

void auth_free(auth_t *a)
{
    if (!a) return;
    for (int i = 0; i < AUTH_STRIPES; i++) pthread_mutex_destroy(&a->mu[i]);
    OPENSSL_cleanse(a->slots, sizeof(a->slots));
    free(a);
}

void auth_forget(auth_t *a)
{
    for (int s = 0; s < AUTH_STRIPES; s++) {
        pthread_mutex_lock(&a->mu[s]);
        for (int i = s; i < AUTH_CACHE_SLOTS; i += AUTH_STRIPES) a->slots[i].used = false;
        pthread_mutex_unlock(&a->mu[s]);
    }
}

static auth_result_t scope_verdict(const auth_ctx_t *who, unsigned need)
{
    /* need 0 (a route that names no scope) is admin only: a forgotten
     * scope fails closed. */
    if ((who->scopes & SCOPE_ADMIN) || (who->scopes & need)) return AUTH_OK;
    return AUTH_FORBIDDEN;
}

/* Splits "hk_<16 hex>_<43 base64url>" into its id and secret. */
static bool parse_key(const char *k, size_t n, char id[APIKEY_ID_HEX + 1], const char **secret)
{
    if (n != APIKEY_LEN || memcmp(k, "hk_", 3) != 0 || k[3 + APIKEY_ID_HEX] != '_') return false;
    for (int i = 0; i < APIKEY_ID_HEX; i++) {
        char c = k[3 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        id[i] = c;
    }
    id[APIKEY_ID_HEX] = '\0';
    *secret = k + 3 + APIKEY_ID_HEX + 1;
    for (int i = 0; i < APIKEY_SECRET_B64; i++) {
        char c = (*secret)[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

auth_result_t auth_check(auth_t *a, const char *key, size_t n, unsigned need, auth_ctx_t *who)
{
    if (!key || n == 0) return AUTH_MISSING;
    char id[APIKEY_ID_HEX + 1];
    const char *secret;
    if (!parse_key(key, n, id, &secret)) return AUTH_INVALID;

    unsigned char digest[32];
    sha256(key, n, digest);
    unsigned idx = ((unsigned)digest[0] | (unsigned)digest[1] << 8) % AUTH_CACHE_SLOTS;
    pthread_mutex_t *mu = &a->mu[idx % AUTH_STRIPES];
    int64_t now = a->now_ms();

    pthread_mutex_lock(mu);
    slot_t *sl = &a->slots[idx];
    if (sl->used && now - sl->checked_ms < a->cache_ms && now >= sl->checked_ms &&
        CRYPTO_memcmp(sl->digest, digest, sizeof(digest)) == 0) {
        *who = sl->who;
        pthread_mutex_unlock(mu);
        return scope_verdict(who, need);
    }
    pthread_mutex_unlock(mu);

    api_key_rec_t rec;
    hr_t r = store_key_get(a->store, id, &rec);
    if (r == HR_NOTFOUND) return AUTH_INVALID;
    if (r != HR_OK) return AUTH_UNAVAILABLE;
    unsigned char sh[32];
    sha256(secret, APIKEY_SECRET_B64, sh);
    if (CRYPTO_memcmp(sh, rec.secret_hash, sizeof(sh)) != 0 || rec.revoked_at_ms != 0)
        return AUTH_INVALID;
    memset(who, 0, sizeof(*who));
    memcpy(who->key_id, id, sizeof(who->key_id)); /* the id asked for: same as rec.key_id */
    snprintf(who->tenant, sizeof(who->tenant), "%s", rec.tenant);
    who->scopes = rec.scopes;

    pthread_mutex_lock(mu);
    memcpy(sl->digest, digest, sizeof(digest));
    sl->used = true;
    sl->checked_ms = now;
    sl->who = *who;
    pthread_mutex_unlock(mu);
    return scope_verdict(who, need);
}

hr_t auth_bootstrap(store_t *s, const char *path, bool *created, char *why, size_t why_len)
{
    *created = false;
    api_key_rec_t *keys = NULL;
    int n = 0;
    hr_t r = store_key_list(s, &keys, &n);
    free(keys);
    if (r != HR_OK) {
        snprintf(why, why_len, "cannot read the API keys: %s", hr_str(r));
        return r;
    }
    if (n > 0) return HR_OK;
    char key[APIKEY_LEN + 1];
    /* Written to a temporary name and linked into place, so that a reader
     * never sees a half-written file, and never over a file someone else
     * put there (link fails with EEXIST). */
    if (access(path, F_OK) == 0) {
        snprintf(why, why_len, "%s exists but the store has no API key: move it away", path);
        return HR_CONFLICT;
    }
    char *tmp = xasprintf("%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, why_len, "cannot create %s for the first admin key: %s", tmp,
                 strerror(errno));
        free(tmp);
        return HR_ERR;
    }
    r = apikey_create(s, TENANT_DEFAULT, SCOPE_ADMIN, "bootstrap admin key", key, NULL);
    if (r == HR_OK) {
        size_t len = strlen(key);
        key[len] = '\n';
        bool ok = write(fd, key, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
        key[len] = '\0';
        if (!ok) {
            snprintf(why, why_len, "cannot write %s: %s", path, strerror(errno));
            r = HR_ERR;
        }
    } else {
        snprintf(why, why_len, "cannot create the first admin key: %s", hr_str(r));
    }
    OPENSSL_cleanse(key, sizeof(key));
    close(fd);
    if (r == HR_OK && link(tmp, path) != 0) {
        snprintf(why, why_len, "cannot create %s: %s", path, strerror(errno));
        r = HR_ERR;
    }
    unlink(tmp);
    free(tmp);
    if (r == HR_OK) *created = true;
    return r;
}
