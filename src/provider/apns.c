/*
 * apns.c - the Apple Push Notification service provider: HTTP/2 requests
 * to api.push.apple.com through the dispatcher thread's engine (http.h),
 * on the shared HTTP provider part (http_provider.h), like webhook.c.
 *
 * DESIGN. apns_build() and apns_classify() are pure (apns.h says what they
 * produce); the provider around them adds the two kinds of credentials.
 * Token auth signs an ES256 JWT with the team's .p8 key (jwt.h) and keeps
 * it for token_ttl_s (apns_token_t), renewing it early when APNs answers
 * ExpiredProviderToken. Certificate auth hands the PEM certificate and key
 * to curl for the TLS handshake. Exactly one of the two is configured.
 * The clock is hclock_now_ms() (tests install a fake one).
 */
#include "provider/apns.h"

#include "core/log.h"
#include "core/text.h"
#include "provider/http_provider.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ builder */

/* Apple's push types and the topic suffix each needs. */
static const struct {
    const char *type, *suffix;
} push_types[] = {
    {"alert", ""},
    {"background", ""},
    {"location", ".location-query"},
    {"voip", ".voip"},
    {"complication", ".complication"},
    {"fileprovider", ".pushkit.fileprovider"},
    {"mdm", ""},
    {"liveactivity", ".push-type.liveactivity"},
    {"pushtotalk", ".voip-ptt"},
};

static int push_type_index(const char *s, size_t n)
{
    for (size_t i = 0; i < ARRAY_LEN(push_types); i++)
        if (strlen(push_types[i].type) == n && memcmp(push_types[i].type, s, n) == 0) return (int)i;
    return -1;
}

bool apns_push_type_valid(const char *s, size_t n) { return s && push_type_index(s, n) >= 0; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* The 32 lowercase hex digits of a notification id as a UUID; false for
 * any other id. */
static bool id_as_uuid(hstr_t id, char out[37])
{
    if (id.n != 32) return false;
    for (size_t i = 0; i < 32; i++)
        if (hex_value((unsigned char)id.p[i]) < 0 || (id.p[i] >= 'A' && id.p[i] <= 'F')) return false;
    size_t o = 0;
    for (size_t i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
        out[o++] = id.p[i];
    }
    out[o] = '\0';
    return true;
}

/* A device token: hex bytes (64 digits today; Apple says not to rely on
 * the length, so anything up to 100 bytes). */
static bool token_valid(hstr_t t)
{
    if (t.n == 0 || t.n > 200 || t.n % 2) return false;
    for (size_t i = 0; i < t.n; i++)
        if (hex_value((unsigned char)t.p[i]) < 0) return false;
    return true;
}

bool apns_device_token(hstr_t address, hstr_t *token)
{
    const char *p = address.p ? address.p : "", *end = p + address.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon) {
            token->p = p;
            token->n = (size_t)(e - p);
            return true;
        }
        if (colon - p == 4 && memcmp(p, "apns", 4) == 0) {
            token->p = colon + 1;
            token->n = (size_t)(e - colon - 1);
            return true;
        }
        p = comma ? comma + 1 : end;
    }
    token->p = "";
    token->n = 0;
    return false;
}

/* The parts of a notification's metadata the request uses; the json_t
 * pointers are borrowed from the parsed metadata. */
typedef struct extras {
    json_t *meta;               /* owned: the parsed metadata, or NULL */
    json_t *badge, *sound, *thread_id, *data;
    bool content_available, mutable_content;
    const char *collapse_id;
    const char *push_type;
    size_t push_type_len;
} extras_t;

/* Reads n's metadata into x. HR_INVALID with res set when it has the
 * wrong shape. */
static hr_t read_extras(const notif_t *n, extras_t *x, send_result_t *res)
{
    memset(x, 0, sizeof(*x));
    if (n->metadata.n == 0) return HR_OK;
    json_error_t err;
    x->meta = json_loadb(n->metadata.p, n->metadata.n, JSON_REJECT_DUPLICATES, &err);
    const char *bad = NULL;
    if (!json_is_object(x->meta)) {
        bad = "metadata is not a JSON object";
        goto out;
    }
    json_t *v;
    if ((v = json_object_get(x->meta, "badge"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            bad = "metadata.badge is not an integer >= 0";
            goto out;
        }
        x->badge = v;
    }
    if ((v = json_object_get(x->meta, "sound"))) {
        if (!json_is_string(v)) {
            bad = "metadata.sound is not a string";
            goto out;
        }
        x->sound = v;
    }
    if ((v = json_object_get(x->meta, "thread_id"))) {
        if (!json_is_string(v)) {
            bad = "metadata.thread_id is not a string";
            goto out;
        }
        x->thread_id = v;
    }
    if ((v = json_object_get(x->meta, "content_available"))) {
        if (!json_is_boolean(v)) {
            bad = "metadata.content_available is not a boolean";
            goto out;
        }
        x->content_available = json_is_true(v);
    }
    if ((v = json_object_get(x->meta, "mutable_content"))) {
        if (!json_is_boolean(v)) {
            bad = "metadata.mutable_content is not a boolean";
            goto out;
        }
        x->mutable_content = json_is_true(v);
    }
    if ((v = json_object_get(x->meta, "collapse_id"))) {
        /* Also no control characters: it becomes a header line. */
        const char *s = json_string_value(v);
        bool ok = s && json_string_length(v) <= APNS_COLLAPSE_ID_MAX && strlen(s) == json_string_length(v);
        for (const char *p = s; ok && *p; p++) ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
        if (!ok) {
            bad = "metadata.collapse_id is not a string of at most 64 bytes";
            goto out;
        }
        x->collapse_id = s;
    }
    if ((v = json_object_get(x->meta, "push_type"))) {
        if (!json_is_string(v) || !apns_push_type_valid(json_string_value(v), json_string_length(v))) {
            bad = "metadata.push_type is not an APNs push type";
            goto out;
        }
        x->push_type = json_string_value(v);
        x->push_type_len = json_string_length(v);
    }
    if ((v = json_object_get(x->meta, "data"))) {
        if (!json_is_object(v) || json_object_get(v, "aps")) {
            bad = "metadata.data is not an object without \"aps\"";
            goto out;
        }
        x->data = v;
    }
out:
    if (!bad) return HR_OK;
    send_result_set(res, SEND_PERMANENT, 0, "%s", bad);
    json_decref(x->meta);
    x->meta = NULL;
    return HR_INVALID;
}

/* Sets key to a new string from (p, n); false when it is not UTF-8. */
static bool set_str(json_t *o, const char *key, hstr_t s)
{
    json_t *v = json_stringn(s.p ? s.p : "", s.n);
    return v && json_object_set_new(o, key, v) == 0;
}

/* The payload for n with extras x into body. */
static hr_t build_payload(const notif_t *n, const extras_t *x, bool background, buf_t *body,
                          send_result_t *res)
{
    hr_t r = HR_INVALID;
    char *text = NULL;
    json_t *root = json_object(), *aps = json_object();
    json_object_set_new(root, "aps", aps);
    if (!background && (n->title.n || n->body.n)) {
        json_t *alert = json_object();
        json_object_set_new(aps, "alert", alert);
        if ((n->title.n && !set_str(alert, "title", n->title)) ||
            (n->body.n && !set_str(alert, "body", n->body))) {
            send_result_set(res, SEND_PERMANENT, 0, "title or body is not UTF-8");
            goto out;
        }
    }
    if (!background && x->badge) json_object_set(aps, "badge", x->badge);
    if (!background && x->sound) json_object_set(aps, "sound", x->sound);
    if (x->thread_id) json_object_set(aps, "thread-id", x->thread_id);
    if (background || x->content_available) json_object_set_new(aps, "content-available", json_integer(1));
    if (x->mutable_content) json_object_set_new(aps, "mutable-content", json_integer(1));
    if (x->data) {
        const char *k;
        json_t *v;
        json_object_foreach(x->data, k, v) json_object_set(root, k, v);
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text) {
        send_result_set(res, SEND_PERMANENT, 0, "cannot encode the payload");
        goto out;
    }
    r = buf_append_str(body, text);
    if (r != HR_OK) send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
out:
    free(text);
    json_decref(root);
    return r;
}

hr_t apns_build(const apns_conf_t *c, const char *bearer, int64_t now_s, const notif_t *n,
                prov_http_req_t *req, send_result_t *res)
{
    extras_t x;
    hr_t r;
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = c->timeout_ms;
    req->ca_file = c->ca_file;
    req->cert_file = c->cert_file;
    req->key_file = c->cert_key_file;
    hstr_t token;
    if (!apns_device_token(n->address, &token)) {
        /* Routed here without an APNs device (only other platforms'): not
         * this address's fault. */
        send_result_set(res, SEND_PERMANENT, 0, "%s", n->address.n ? "no APNs device in the address" : "no device token");
        res->address_invalid = n->address.n == 0;
        return HR_INVALID;
    }
    if (!token_valid(token)) {
        send_result_set(res, SEND_PERMANENT, 0, "%s", token.n ? "device token is not hex" : "no device token");
        res->address_invalid = true;
        return HR_INVALID;
    }
    if ((r = read_extras(n, &x, res)) != HR_OK) return r;

    const char *type = x.push_type ? x.push_type : c->push_type;
    int ti = push_type_index(type, x.push_type ? x.push_type_len : strlen(type));
    if (ti < 0) { /* open() checks the setting; a caller that did not gets a result, not a crash */
        send_result_set(res, SEND_PERMANENT, 0, "push_type is not an APNs push type");
        json_decref(x.meta);
        return HR_INVALID;
    }
    bool background = strcmp(push_types[ti].type, "background") == 0;
    bool voip = strcmp(push_types[ti].type, "voip") == 0;
    const char *suffix = ends_with(c->topic, push_types[ti].suffix) ? "" : push_types[ti].suffix;
    int prio = !background && (n->priority == PRIO_HIGH || n->priority == PRIO_CRITICAL) ? 10 : 5;
    char uuid[37];

    r = buf_printf(&req->url, "%s/3/device/%.*s", c->url, (int)token.n, token.p);
    if (r == HR_OK) r = buf_append_str(&req->headers, "content-type: application/json\n");
    if (r == HR_OK && id_as_uuid(n->notification_id, uuid)) r = buf_printf(&req->headers, "apns-id: %s\n", uuid);
    if (r == HR_OK) r = buf_printf(&req->headers, "apns-topic: %s%s\n", c->topic, suffix);
    if (r == HR_OK) r = buf_printf(&req->headers, "apns-push-type: %s\n", push_types[ti].type);
    if (r == HR_OK) r = buf_printf(&req->headers, "apns-priority: %d\n", prio);
    if (r == HR_OK)
        r = buf_printf(&req->headers, "apns-expiration: %lld\n",
                       c->expiration_s ? (long long)(now_s + c->expiration_s) : 0LL);
    if (r == HR_OK && x.collapse_id) r = buf_printf(&req->headers, "apns-collapse-id: %s\n", x.collapse_id);
    if (r == HR_OK && bearer) r = buf_printf(&req->headers, "authorization: bearer %s\n", bearer);
    if (r != HR_OK) {
        send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
        goto out;
    }
    buf_cstr(&req->url);
    if ((r = build_payload(n, &x, background, &req->body, res)) != HR_OK) goto out;
    size_t max = voip ? APNS_VOIP_PAYLOAD_MAX : APNS_PAYLOAD_MAX;
    if (req->body.len > max) {
        send_result_set(res, SEND_PERMANENT, 0, "payload of %zu bytes is over APNs' limit of %zu",
                        req->body.len, max);
        r = HR_INVALID;
    }
out:
    json_decref(x.meta);
    return r;
}

/* --------------------------------------------------------- classifier */

/* The "reason" of an APNs error body into out ("" when absent). */
static void body_reason(const prov_http_resp_t *r, char *out, size_t cap)
{
    out[0] = '\0';
    if (!r->body || r->body_len == 0) return;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "reason"));
    if (s) {
        /* Printable ASCII only: it goes into logs and status records. */
        size_t o = 0;
        for (; *s && o + 1 < cap; s++) out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
        out[o] = '\0';
    }
    json_decref(j);
}

static bool reason_is(const char *reason, const char *name) { return strcmp(reason, name) == 0; }

bool apns_classify(const prov_http_resp_t *r, send_result_t *res)
{
    const char *v;
    size_t vn;
    if (hprov_classify_transport(r, res)) {
        res->retry_after_ms = 0;
        return false;
    }
    int s = r->status;
    char reason[64];
    body_reason(r, reason, sizeof(reason));
    if (!reason[0] && r->reason) snprintf(reason, sizeof(reason), "%s", r->reason); /* HTTP/1.1 fakes */
    bool expired = false, dead = false;
    send_class_t cls;
    if (s >= 200 && s < 300) {
        cls = SEND_OK;        /* APNs answers 200 */
    } else if (s == 410) {
        /* Unregistered (or ExpiredToken): the app is gone from the device. */
        cls = SEND_PERMANENT;
        dead = true;
    } else if (s == 400) {
        /* BadDeviceToken: the token is not one APNs issued for this
         * environment (a sandbox token sent to production fails the same
         * way: point url at the environment the app was built for);
         * DeviceTokenNotForTopic: the token belongs to another app. Both
         * are the token's fault. BadCollapseId, PayloadEmpty and the
         * metadata-driven InvalidPushType are the notification's;
         * BadTopic, TopicDisallowed, MissingTopic are the topic setting's;
         * BadMessageId, BadPriority, BadExpirationDate, DuplicateHeaders,
         * MissingDeviceToken, IdleTimeout are ours (the builder should
         * never send them). None will pass when sent again. */
        cls = SEND_PERMANENT;
        dead = reason_is(reason, "BadDeviceToken") || reason_is(reason, "DeviceTokenNotForTopic");
    } else if (s == 403) {
        /* ExpiredProviderToken: our JWT is over an hour old (or the clock
         * is off); a new one fixes it. The others (InvalidProviderToken,
         * MissingProviderToken, BadCertificate, BadCertificateEnvironment,
         * Forbidden) are the credentials' settings: nothing passes. */
        expired = reason_is(reason, "ExpiredProviderToken");
        cls = expired ? SEND_RETRY : SEND_FATAL;
    } else if (s == 401 || s == 404 || s == 405) {
        /* 404 BadPath, 405 MethodNotAllowed: the url setting points
         * somewhere that is not APNs' /3/device; every request fails. */
        cls = SEND_FATAL;
    } else if (s == 429) {
        cls = SEND_THROTTLED; /* TooManyRequests (to one device), TooManyProviderTokenUpdates */
    } else if (s >= 500 && s < 600) {
        cls = SEND_RETRY;     /* InternalServerError, ServiceUnavailable, Shutdown */
    } else if (s >= 400 && s < 500) {
        cls = SEND_PERMANENT; /* 413 PayloadTooLarge and anything undocumented */
    } else {
        cls = SEND_RETRY;     /* 1xx, 3xx (redirects are not followed) */
    }
    send_result_set(res, cls, s, "HTTP %d%s%s", s, reason[0] ? " " : "", reason);
    res->address_invalid = dead;
    if (cls == SEND_OK) {
        res->error[0] = '\0';
        if (prov_http_header(r, "apns-id", &v, &vn) || prov_http_header(r, "apns-unique-id", &v, &vn))
            snprintf(res->msg_id, sizeof(res->msg_id), "%.*s", (int)vn, v);
    }
    if ((cls == SEND_RETRY && !expired) || cls == SEND_THROTTLED) res->retry_after_ms = hprov_retry_after(r);
    return expired;
}

/* ------------------------------------------------------ provider token */

void apns_token_init(apns_token_t *t, jwt_key_t *key, const char *key_id, const char *team_id,
                     int64_t ttl_s)
{
    memset(t, 0, sizeof(*t));
    t->key = key;
    t->key_id = xstrdup(key_id);
    t->team_id = xstrdup(team_id);
    t->ttl_s = ttl_s;
    buf_init(&t->jwt, 0);
}

void apns_token_release(apns_token_t *t)
{
    jwt_key_free(t->key);
    free(t->key_id);
    free(t->team_id);
    buf_release(&t->jwt);
    memset(t, 0, sizeof(*t));
}

const char *apns_token_get(apns_token_t *t, int64_t now_s)
{
    if (t->jwt.len && now_s >= t->issued_s && now_s - t->issued_s < t->ttl_s) return buf_cstr(&t->jwt);
    buf_reset(&t->jwt);
    char *header = NULL, *claims = NULL;
    const char *out = NULL;
    json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", t->key_id);
    json_t *c = json_pack("{s:s, s:I}", "iss", t->team_id, "iat", (json_int_t)now_s);
    if (h && c && (header = json_dumps(h, JSON_COMPACT)) && (claims = json_dumps(c, JSON_COMPACT)) &&
        jwt_sign(t->key, header, claims, &t->jwt) == HR_OK) {
        t->issued_s = now_s;
        t->signed_count++;
        out = buf_cstr(&t->jwt);
    } else {
        buf_reset(&t->jwt);
    }
    free(header);
    free(claims);
    json_decref(h);
    json_decref(c);
    return out;
}

bool apns_token_expired(apns_token_t *t, int64_t now_s, int64_t max_age_s)
{
    if (!t->jwt.len || (now_s >= t->issued_s && now_s - t->issued_s < max_age_s)) return false;
    buf_reset(&t->jwt);
    return true;
}

/* ------------------------------------------------------------ provider */

typedef struct apns {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    apns_conf_t conf;
    char *url;                  /* conf.url: the setting without a trailing '/' */
    bool token_auth;
    apns_token_t tok;           /* token auth only */
} apns_t;

static int64_t now_s(void) { return hclock_now_ms() / 1000; }

static hr_t ap_build(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    apns_t *a = (apns_t *)hp;
    int64_t now = now_s();
    const char *bearer = NULL;
    if (a->token_auth && !(bearer = apns_token_get(&a->tok, now))) {
        send_result_set(res, SEND_RETRY, 0, "cannot sign the provider token");
        return HR_ERR;
    }
    return apns_build(&a->conf, bearer, now, n, req, res);
}

static void ap_classify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    apns_t *a = (apns_t *)hp;
    if (!apns_classify(resp, res) || !a->token_auth) return;
    /* A response comes at most timeout_ms after its request was built. */
    int64_t max_age = a->conf.timeout_ms / 1000 + 1;
    if (apns_token_expired(&a->tok, now_s(), max_age))
        log_info(hp->base.name, "%s: provider token expired; signing a new one", hp->target);
}

static void ap_destroy(hprov_t *hp)
{
    apns_t *a = (apns_t *)hp;
    if (a->token_auth) apns_token_release(&a->tok);
    free(a->url);
}

static const hprov_ops_t ap_hops = {.build = ap_build, .classify = ap_classify, .destroy = ap_destroy};

#define APNS_DEFAULT_IN_FLIGHT 500

/* Setting key as a non-empty string, or NULL. */
static const char *conf_str(const provider_env_t *env, const char *key)
{
    const char *v = provider_conf(env, key, NULL);
    return v && *v ? v : NULL;
}

/* Fails naming provider.<name>.<key> when the file it names cannot be read. */
static hr_t check_readable(const provider_env_t *env, const char *key, const char *path, char *why,
                           size_t why_len)
{
    if (!path || access(path, R_OK) == 0) return HR_OK;
    snprintf(why, why_len, "provider.%s.%s: cannot read %s", env->name, key, path);
    return HR_INVALID;
}

/* A JWT header/claims string: printable ASCII. */
static bool id_valid(const char *s)
{
    if (!s || !*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e) return false;
    return true;
}

static hr_t apns_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout, expiration, ttl;
    int cap;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "expiration_s", 86400, 0, 30 * 86400, &expiration, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "token_ttl_s", 3000, 1200, 3500, &ttl, why, why_len);
    if (r == HR_OK) r = hprov_conf_cap(env, APNS_DEFAULT_IN_FLIGHT, &cap, why, why_len);
    if (r != HR_OK) return r;

    const char *url = provider_conf(env, "url", APNS_DEFAULT_URL);
    const char *topic = conf_str(env, "topic");
    const char *push_type = provider_conf(env, "push_type", "alert");
    const char *key_file = conf_str(env, "key_file"), *cert_file = conf_str(env, "cert_file");
    const char *cert_key_file = conf_str(env, "cert_key_file"), *ca_file = conf_str(env, "ca_file");
    const char *key_id = conf_str(env, "key_id"), *team_id = conf_str(env, "team_id");
    const char *bad = NULL, *what = NULL;
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        bad = "url", what = "is not an http(s) URL";
    else if (!topic)
        bad = "topic", what = "is required (the app's bundle id)";
    else if (strchr(topic, '\n') || strchr(topic, '\r'))
        bad = "topic", what = "may not contain line breaks";
    else if (!apns_push_type_valid(push_type, strlen(push_type)))
        bad = "push_type", what = "is not an APNs push type (alert, background, voip, ...)";
    else if (cert_key_file && !cert_file)
        bad = "cert_key_file", what = "needs cert_file";
    else if (key_file && cert_file)
        bad = "cert_file", what = "and key_file both set: configure token auth (key_file, key_id, "
                                  "team_id) or certificate auth (cert_file), not both";
    else if (!key_file && !cert_file)
        bad = "key_file", what = "is required: configure token auth (key_file, key_id, team_id) or "
                                 "certificate auth (cert_file, cert_key_file)";
    else if (key_file && !id_valid(key_id))
        bad = "key_id", what = "is required with key_file: the key's id (10 characters, no spaces)";
    else if (key_file && !id_valid(team_id))
        bad = "team_id", what = "is required with key_file: the team id (10 characters, no spaces)";
    if (bad) {
        snprintf(why, why_len, "provider.%s.%s %s", env->name, bad, what);
        return HR_INVALID;
    }
    if ((r = check_readable(env, "cert_file", cert_file, why, why_len)) != HR_OK ||
        (r = check_readable(env, "cert_key_file", cert_key_file, why, why_len)) != HR_OK ||
        (r = check_readable(env, "ca_file", ca_file, why, why_len)) != HR_OK)
        return r;
    jwt_key_t *key = NULL;
    if (key_file) {
        char kwhy[192];
        if (jwt_key_load(key_file, &key, kwhy, sizeof(kwhy)) != HR_OK) {
            snprintf(why, why_len, "provider.%s.key_file: %s", env->name, kwhy);
            return HR_INVALID;
        }
        if (jwt_key_alg(key) != JWT_ES256) {
            jwt_key_free(key);
            snprintf(why, why_len, "provider.%s.key_file: %s is not an EC P-256 key (an APNs .p8)",
                     env->name, key_file);
            return HR_INVALID;
        }
    }

    apns_t *a = xcalloc(1, sizeof(*a));
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') ul--;
    a->url = xstrndup(url, ul);
    a->conf = (apns_conf_t){
        .url = a->url,
        .topic = topic,
        .push_type = push_type,
        .expiration_s = expiration,
        .timeout_ms = (long)timeout,
        .ca_file = ca_file,
        .cert_file = cert_file,
        .cert_key_file = cert_key_file,
    };
    if (key) {
        a->token_auth = true;
        apns_token_init(&a->tok, key, key_id, team_id, ttl);
    }
    hprov_init(&a->hp, env, &ap_hops, a->url, cap);
    *out = &a->hp.base;
    return HR_OK;
}

static const char *const apns_keys[] = {
    "url", "topic", "push_type", "expiration_s", "timeout_ms", "key_file", "key_id", "team_id",
    "token_ttl_s", "cert_file", "cert_key_file", "ca_file", NULL,
};

const provider_ops_t apns_provider_ops = {
    .name = "apns",
    .keys = apns_keys,
    .default_max_in_flight = APNS_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = apns_open,
    .submit = hprov_submit,
    .poll = hprov_poll,
    .close = hprov_close,
};
