/*
 * webhook.c - a generic HTTP provider: POSTs each notification's JSON to a
 * configured URL through the dispatcher thread's engine (http.h). The
 * first real provider, and the model for the others: a pure builder and a
 * pure classifier (webhook.h) on the shared HTTP provider part
 * (http_provider.h).
 *
 * Signing (webhook.h): the key is the user's secret when the user has
 * one, else the instance's. User secrets are read from the store at send
 * time through a small cache owned by the instance (one dispatcher
 * thread, no locks): direct-mapped by user id, negative entries too,
 * exact within the process through the store's change feed (a user
 * changed through the API is read again) and at most SECRET_TTL_MS stale
 * for changes another process made. A miss is one store read on the
 * dispatcher thread (a point read, ~20 us); a store that fails makes that
 * notification RETRY rather than go out signed with the wrong key.
 */
#include "provider/webhook.h"

#include "app.h"
#include "core/base64.h"
#include "core/hash.h"
#include "core/log.h"
#include "model/trace.h"
#include "provider/http_provider.h"
#include "provider/settings.h"
#include "model/tenant.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_CACHE 1024         /* entries (a power of two) */
#define SECRET_TTL_MS 30000

/* ----------------------------------------------------------- pure part */

hr_t webhook_build(const webhook_conf_t *c, const notif_t *n, prov_http_req_t *req)
{
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = c->timeout_ms;
    hr_t r = buf_append_str(&req->url, c->url);
    if (r == HR_OK) r = buf_append_str(&req->headers, "Content-Type: application/json\n");
    if (r == HR_OK)
        r = buf_printf(&req->headers, "Idempotency-Key: %.*s\n", (int)n->notification_id.n,
                       n->notification_id.p);
    if (r == HR_OK && c->authorization && *c->authorization)
        r = buf_printf(&req->headers, "Authorization: %s\n", c->authorization);
    /* the event's trace context goes on to the receiver (W3C Trace Context:
     * the header travels with the request), only in the one form herald
     * writes: a record carrying anything else gets no header */
    if (r == HR_OK && n->traceparent.n && trace_is_v00(n->traceparent.p, n->traceparent.n))
        r = buf_printf(&req->headers, "traceparent: %.*s\n", (int)n->traceparent.n, n->traceparent.p);
    if (r == HR_OK) r = notif_to_json(n, &req->body);
    if (r == HR_OK) buf_cstr(&req->url);
    return r;
}

hr_t webhook_secret_parse(const char *s, webhook_key_t *out)
{
    size_t n = strlen(s);
    if (strncmp(s, "whsec_", 6) == 0) {
        /* standard base64 -> base64url without padding, then decode */
        const char *b = s + 6;
        size_t bn = n - 6;
        if (bn > 0 && b[bn - 1] == '=') bn--;
        if (bn > 0 && b[bn - 1] == '=') bn--;
        if (bn == 0 || bn > 4 * WEBHOOK_KEY_MAX / 3 + 4) return HR_INVALID;
        char tmp[4 * WEBHOOK_KEY_MAX / 3 + 8];
        for (size_t i = 0; i < bn; i++) {
            char c = b[i];
            if (c == '+') c = '-';
            else if (c == '/') c = '_';
            else if (c == '-' || c == '_') return HR_INVALID; /* not the standard alphabet */
            tmp[i] = c;
        }
        size_t kl = 0;
        char *k = base64url_decode(tmp, bn, &kl);
        if (!k) return HR_INVALID;
        hr_t r = kl >= WEBHOOK_KEY_MIN && kl <= WEBHOOK_KEY_MAX ? HR_OK : HR_INVALID;
        if (r == HR_OK) {
            out->n = kl;
            memcpy(out->k, k, kl);
        }
        OPENSSL_cleanse(k, kl);
        free(k);
        return r;
    }
    if (n < WEBHOOK_KEY_MIN || n > WEBHOOK_KEY_MAX) return HR_INVALID;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return HR_INVALID;
    out->n = n;
    memcpy(out->k, s, n);
    return HR_OK;
}

/* HMAC-SHA256 set up once per process (fetching the algorithms by name
 * costs more than the MAC of a small body): each signature duplicates
 * this context and keys the copy. Never changed after the once. */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static EVP_MAC_CTX *hmac_proto;

static void hmac_setup(void)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0), OSSL_PARAM_construct_end()};
    if (c && EVP_MAC_CTX_set_params(c, params)) hmac_proto = c;
    else EVP_MAC_CTX_free(c);
    EVP_MAC_free(m); /* the context holds its own reference */
}

hr_t webhook_sign(const webhook_key_t *key, hstr_t id, int64_t ts_s, const char *body, size_t body_len,
                  buf_t *headers)
{
    char ts[24];
    int tl = snprintf(ts, sizeof(ts), "%lld", (long long)ts_s);
    /* HMAC over id "." ts "." body, streamed: the body is not copied */
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t ml = 0;
    pthread_once(&hmac_once, hmac_setup);
    EVP_MAC_CTX *ctx = hmac_proto ? EVP_MAC_CTX_dup(hmac_proto) : NULL;
    bool ok = ctx && EVP_MAC_init(ctx, key->k, key->n, NULL) &&
              EVP_MAC_update(ctx, (const unsigned char *)id.p, id.n) &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
              EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tl) &&
              EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
              EVP_MAC_update(ctx, (const unsigned char *)body, body_len) &&
              EVP_MAC_final(ctx, mac, &ml, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    if (!ok) return HR_ERR;
    unsigned char sig[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int sl = EVP_EncodeBlock(sig, mac, (int)ml);
    return buf_printf(headers, "webhook-id: %.*s\nwebhook-timestamp: %s\nwebhook-signature: v1,%.*s\n",
                      (int)id.n, id.p, ts, sl, (const char *)sig);
}

void webhook_classify(const prov_http_resp_t *r, send_result_t *res)
{
    const char *v;
    size_t vn;
    if (hprov_classify_transport(r, res)) {
        res->retry_after_ms = 0;
        return;
    }
    int64_t after = hprov_retry_after(r);
    int s = r->status;
    const char *reason = r->reason ? r->reason : "";
    send_class_t cls;
    if (s >= 200 && s < 300) cls = SEND_OK;
    else if (s == 429) cls = SEND_THROTTLED;
    else if (s == 401 || s == 403) cls = SEND_FATAL;
    else if (s == 408 || (s >= 500 && s < 600)) cls = SEND_RETRY;
    else if (s >= 400 && s < 500) cls = SEND_PERMANENT;
    else cls = SEND_RETRY;
    send_result_set(res, cls, s, "HTTP %d%s%s", s, *reason ? " " : "", reason);
    if (cls == SEND_OK) {
        res->error[0] = '\0';
        if (prov_http_header(r, "X-Message-Id", &v, &vn))
            snprintf(res->msg_id, sizeof(res->msg_id), "%.*s", (int)vn, v);
    }
    if (cls == SEND_RETRY || cls == SEND_THROTTLED) res->retry_after_ms = after;
}

/* ------------------------------------------------------------ provider */

/* One cached user: has a secret (key) or not. */
typedef struct secret_entry {
    char *user_id;              /* NULL = empty slot */
    bool has;
    webhook_key_t key;
    int64_t at_ms;              /* when it was read */
} secret_entry_t;

typedef struct webhook {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    webhook_conf_t conf;
    bool has_key;
    webhook_key_t key;          /* the instance's secret */
    store_t *store;             /* user secrets; NULL without a store */
    uint64_t epoch;             /* the store's users epoch the cache reflects */
    secret_entry_t *cache;      /* SECRET_CACHE entries, allocated on first use */
} webhook_t;

static secret_entry_t *slot_of(webhook_t *w, const char *id, size_t n)
{
    return &w->cache[fnv1a64(id, n) & (SECRET_CACHE - 1)];
}

static void entry_clear(secret_entry_t *e)
{
    free(e->user_id);
    OPENSSL_cleanse(e, sizeof(*e));
    e->user_id = NULL;
}

static void drop_user(void *arg, const char *user_id)
{
    webhook_t *w = arg;
    secret_entry_t *e = slot_of(w, user_id, strlen(user_id));
    if (e->user_id && strcmp(e->user_id, user_id) == 0) entry_clear(e);
}

static void drop_all(webhook_t *w)
{
    for (int i = 0; i < SECRET_CACHE; i++)
        if (w->cache[i].user_id) entry_clear(&w->cache[i]);
}

/* The key for n's user: *key NULL when the user has none. HR_OK, or the
 * store's error. */
static hr_t user_key(webhook_t *w, const notif_t *n, const webhook_key_t **key)
{
    *key = NULL;
    if (!w->store || n->user_id.n == 0) return HR_OK;
    if (!w->cache) {
        w->cache = xcalloc(SECRET_CACHE, sizeof(*w->cache));
        w->epoch = store_users_epoch(w->store);
    }
    uint64_t now = store_users_epoch(w->store);
    if (now != w->epoch) {
        if (store_users_changed(w->store, w->epoch, &now, drop_user, w) != HR_OK) drop_all(w);
        w->epoch = now;
    }
    char id[TENANT_QID_MAX + 1]; /* a tenant-qualified user id (tenant.h) */
    if (n->user_id.n >= sizeof(id)) return HR_OK; /* no such user id can exist */
    memcpy(id, n->user_id.p, n->user_id.n);
    id[n->user_id.n] = '\0';
    int64_t t = hclock_now_ms();
    secret_entry_t *e = slot_of(w, id, n->user_id.n);
    if (!e->user_id || strcmp(e->user_id, id) != 0 || t - e->at_ms >= SECRET_TTL_MS || t < e->at_ms) {
        user_t u;
        uint64_t e0 = store_users_epoch(w->store);
        hr_t r = store_user_get(w->store, id, &u);
        if (r != HR_OK && r != HR_NOTFOUND) return r;
        secret_entry_t fresh = {.at_ms = t};
        fresh.has = r == HR_OK && u.webhook_secret && webhook_secret_parse(u.webhook_secret, &fresh.key) == HR_OK;
        if (r == HR_OK) user_clear(&u);
        if (e->user_id) entry_clear(e);
        *e = fresh;
        /* cached only if nothing changed while it was read */
        if (store_users_epoch(w->store) == e0) e->user_id = xstrdup(id);
        if (!e->has) return HR_OK;
        *key = &e->key; /* valid until the next lookup */
        return HR_OK;
    }
    if (e->has) *key = &e->key;
    return HR_OK;
}

static hr_t wh_build(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    webhook_t *w = (webhook_t *)hp;
    hr_t r = webhook_build(&w->conf, n, req);
    if (r != HR_OK) {
        send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
        return r;
    }
    const webhook_key_t *key = NULL;
    if ((r = user_key(w, n, &key)) != HR_OK) {
        send_result_set(res, SEND_RETRY, 0, "cannot read the user's webhook secret: %s", hr_str(r));
        return r;
    }
    if (!key && w->has_key) key = &w->key;
    if (key && (r = webhook_sign(key, n->notification_id, hclock_now_ms() / 1000, req->body.data,
                                 req->body.len, &req->headers)) != HR_OK)
        send_result_set(res, SEND_RETRY, 0, "cannot sign the request: %s", hr_str(r));
    return r;
}

static void wh_classify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    (void)hp;
    webhook_classify(resp, res);
}

static void wh_destroy(hprov_t *hp)
{
    webhook_t *w = (webhook_t *)hp;
    if (w->cache) {
        drop_all(w);
        free(w->cache);
    }
    OPENSSL_cleanse(&w->key, sizeof(w->key));
}

static const hprov_ops_t wh_hops = {.build = wh_build, .classify = wh_classify, .destroy = wh_destroy};

#define WEBHOOK_DEFAULT_IN_FLIGHT 100

/* The instance's secret from `secret` or `secret_file` (provider_secret: the
 * file's content, white space trimmed).
 * why names the key, never the secret. */
static hr_t instance_key(const provider_env_t *env, webhook_key_t *key, bool *has, char *why,
                         size_t why_len)
{
    const char *s = provider_conf(env, "secret", NULL), *path = provider_conf(env, "secret_file", NULL);
    *has = false;
    if (s && path) {
        snprintf(why, why_len, "provider.%s: set secret or secret_file, not both", env->name);
        return HR_INVALID;
    }
    char *file = NULL;
    const char *key_name = path ? "secret_file" : "secret";
    if (path) {
        hr_t fr = provider_secret(provider_env_get, env, env->name, "secret_file", NULL, &file, why,
                                  why_len);
        if (fr != HR_OK) return fr;
        s = file;
    }
    hr_t r = HR_OK;
    if (s && webhook_secret_parse(s, key) != HR_OK) {
        snprintf(why, why_len,
                 "provider.%s.%s: not a signing secret (whsec_ + base64 of a %d..%d-byte key, or %d..%d "
                 "printable characters)",
                 env->name, key_name, WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX, WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX);
        r = HR_INVALID;
    } else if (s) {
        *has = true;
    }
    provider_secret_free(file);
    return r;
}

static hr_t webhook_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout;
    int cap;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK) r = hprov_conf_cap(env, WEBHOOK_DEFAULT_IN_FLIGHT, &cap, why, why_len);
    if (r != HR_OK) return r;
    const char *url = provider_conf(env, "url", NULL);
    if (!url || !*url) {
        snprintf(why, why_len, "provider.%s.url is required", env->name);
        return HR_INVALID;
    }
    webhook_key_t key;
    bool has_key;
    if ((r = instance_key(env, &key, &has_key, why, why_len)) != HR_OK) return r;
    webhook_t *w = xcalloc(1, sizeof(*w));
    w->conf.url = url;
    w->conf.authorization = provider_conf(env, "authorization", NULL);
    w->conf.timeout_ms = (long)timeout;
    w->has_key = has_key;
    if (has_key) w->key = key;
    OPENSSL_cleanse(&key, sizeof(key));
    w->store = env->app ? env->app->store : NULL;
    hprov_init(&w->hp, env, &wh_hops, url, cap);
    *out = &w->hp.base;
    return HR_OK;
}

static const char *const webhook_keys[] = {"url", "timeout_ms", "authorization", "secret", "secret_file",
                                           NULL};

const provider_ops_t webhook_provider_ops = {
    .name = "webhook",
    .keys = webhook_keys,
    .default_max_in_flight = WEBHOOK_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = webhook_open,
    .submit = hprov_submit,
    .poll = hprov_poll,
    .close = hprov_close,
};
