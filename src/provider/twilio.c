/*
 * twilio.c - the Twilio SMS provider: a pure builder and classifier
 * (twilio.h) on the shared HTTP provider part (http_provider.h), and the
 * status callback signature.
 *
 * DESIGN. Twilio answers a send with the message resource (201, "sid") or
 * an error object whose "code" says more than the HTTP status: 21211 and
 * 21614 mean the number is no good for SMS, 21610 that its owner replied
 * STOP, so those dead-letter the notification and invalidate the number;
 * 20003 is our credentials. Delivery is reported later to the
 * StatusCallback URL the request names (src/http/api_callbacks.c), which
 * carries the notification id in its query so the report maps back without
 * a lookup by Twilio's sid.
 */
#include "provider/twilio.h"

#include "core/base64.h"
#include "core/log.h"
#include "provider/http_provider.h"
#include "provider/settings.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- pure part */

/* application/x-www-form-urlencoded: everything but unreserved characters
 * percent-encoded (a space is %20, which form decoders accept). */
static hr_t form_value(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    hr_t r = buf_reserve(b, n * 3);
    for (size_t i = 0; i < n && r == HR_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            r = buf_append(b, &s[i], 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            r = buf_append(b, esc, 3);
        }
    }
    return r;
}

static hr_t form_add(buf_t *b, const char *name, const char *v, size_t n)
{
    hr_t r = HR_OK;
    if (b->len) r = buf_append(b, "&", 1);
    if (r == HR_OK) r = buf_printf(b, "%s=", name);
    if (r == HR_OK) r = form_value(b, v, n);
    return r;
}

/* The SMS text: "title\nbody", or whichever is not empty, or the body
 * alone when it already starts with the title. */
static hr_t sms_text(const notif_t *n, buf_t *out)
{
    hstr_t t = n->title, b = n->body;
    if (t.n && b.n && b.n >= t.n && memcmp(b.p, t.p, t.n) == 0) t.n = 0;
    hr_t r = HR_OK;
    if (t.n) r = buf_append(out, t.p, t.n);
    if (r == HR_OK && t.n && b.n) r = buf_append(out, "\n", 1);
    if (r == HR_OK && b.n) r = buf_append(out, b.p, b.n);
    return r;
}

/* base with its trailing slashes dropped */
static int trimmed_len(const char *base)
{
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    return (int)n;
}

hr_t twilio_build(const twilio_conf_t *c, const notif_t *n, prov_http_req_t *req)
{
    buf_t text, cb;
    buf_init(&text, 0);
    buf_init(&cb, 0);
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = c->timeout_ms;
    req->ca_file = c->ca_file;
    hr_t r = n->address.n ? HR_OK : HR_INVALID;
    if (r == HR_OK) {
        const char *base = c->url ? c->url : TWILIO_DEFAULT_URL;
        r = buf_printf(&req->url, "%.*s/2010-04-01/Accounts/", trimmed_len(base), base);
    }
    if (r == HR_OK) r = form_value(&req->url, c->account_sid, strlen(c->account_sid));
    if (r == HR_OK) r = buf_append_str(&req->url, "/Messages.json");
    if (r == HR_OK) {
        /* Basic auth: base64(sid:token), built here so the secret stays in
         * this one header (curl's verbose output is never on) */
        size_t ln = strlen(c->account_sid) + 1 + strlen(c->auth_token);
        char *cred = xmalloc(ln + 1);
        snprintf(cred, ln + 1, "%s:%s", c->account_sid, c->auth_token);
        char *b64 = base64_encode(cred, ln);
        OPENSSL_cleanse(cred, ln);
        free(cred);
        r = buf_printf(&req->headers, "Authorization: Basic %s\n", b64);
        OPENSSL_cleanse(b64, strlen(b64));
        free(b64);
    }
    if (r == HR_OK)
        r = buf_append_str(&req->headers, "Content-Type: application/x-www-form-urlencoded\n");
    if (r == HR_OK) r = form_add(&req->body, "To", n->address.p, n->address.n);
    if (r == HR_OK) {
        if (c->messaging_service_sid)
            r = form_add(&req->body, "MessagingServiceSid", c->messaging_service_sid,
                         strlen(c->messaging_service_sid));
        else
            r = form_add(&req->body, "From", c->from, strlen(c->from));
    }
    if (r == HR_OK) r = sms_text(n, &text);
    if (r == HR_OK) r = form_add(&req->body, "Body", text.data ? text.data : "", text.len);
    if (r == HR_OK && c->status_callback_url && *c->status_callback_url) {
        const char *base = c->status_callback_url;
        r = buf_printf(&cb, "%.*s/v1/callbacks/twilio/", trimmed_len(base), base);
        if (r == HR_OK) r = form_value(&cb, c->instance, strlen(c->instance));
        if (r == HR_OK) r = buf_append_str(&cb, "?nid=");
        if (r == HR_OK) r = form_value(&cb, n->notification_id.p, n->notification_id.n);
        if (r == HR_OK) r = form_add(&req->body, "StatusCallback", cb.data, cb.len);
    }
    if (r == HR_OK) buf_cstr(&req->url);
    buf_release(&text);
    buf_release(&cb);
    return r;
}

void twilio_classify(const prov_http_resp_t *r, send_result_t *res)
{
    if (hprov_classify_transport(r, res)) return;
    int s = r->status;
    json_t *doc = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *jc = json_object_get(doc, "code");
    int code = json_is_integer(jc) ? (int)json_integer_value(jc) : 0;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    send_class_t cls;
    bool dead_address = false;
    if (s >= 200 && s < 300) cls = SEND_OK;
    else if (code == 21211 || code == 21614 || code == 21610) cls = SEND_PERMANENT, dead_address = true;
    else if (s == 401 || s == 403 || s == 404 || code == 20003) cls = SEND_FATAL;
    else if (s == 429 || code == 20429) cls = SEND_THROTTLED;
    else if (s == 408 || (s >= 500 && s < 600)) cls = SEND_RETRY;
    else if (s >= 400 && s < 500) cls = SEND_PERMANENT;
    else cls = SEND_RETRY; /* 1xx, 3xx: redirects are not followed */
    if (code)
        send_result_set(res, cls, s, "HTTP %d: Twilio %d %s", s, code, msg ? msg : "");
    else
        send_result_set(res, cls, s, "HTTP %d%s%s", s, r->reason && *r->reason ? " " : "",
                        r->reason ? r->reason : "");
    res->address_invalid = dead_address;
    if (cls == SEND_OK) {
        res->error[0] = '\0';
        const char *sid = json_string_value(json_object_get(doc, "sid"));
        if (sid) snprintf(res->msg_id, sizeof(res->msg_id), "%s", sid);
    }
    if (cls == SEND_RETRY || cls == SEND_THROTTLED) res->retry_after_ms = hprov_retry_after(r);
    json_decref(doc);
}

static int param_cmp(const void *a, const void *b)
{
    const twilio_param_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void twilio_signature(const char *auth_token, const char *url, twilio_param_t *params, int n,
                      char out[29])
{
    qsort(params, (size_t)n, sizeof(*params), param_cmp);
    buf_t data;
    buf_init(&data, 0);
    buf_append_str(&data, url);
    for (int i = 0; i < n; i++) {
        buf_append_str(&data, params[i].name);
        buf_append_str(&data, params[i].value);
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha1(), auth_token, (int)strlen(auth_token), (const unsigned char *)data.data,
         data.len, mac, &maclen);
    buf_release(&data);
    char *b64 = base64_encode(mac, maclen);
    snprintf(out, 29, "%s", b64);
    free(b64);
}

bool twilio_signature_ok(const char *auth_token, const char *url, twilio_param_t *params, int n,
                         const char *received)
{
    char want[29];
    twilio_signature(auth_token, url, params, n, want);
    return received && strlen(received) == strlen(want) &&
           CRYPTO_memcmp(received, want, strlen(want)) == 0;
}

/* ------------------------------------------------------------ provider */

typedef struct twilio {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    twilio_conf_t conf;
    char *auth_token;           /* owned; conf.auth_token points here */
} twilio_t;

static hr_t tw_build(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    hr_t r = twilio_build(&((twilio_t *)hp)->conf, n, req);
    if (r == HR_INVALID) send_result_set(res, SEND_PERMANENT, 0, "no phone number to send to");
    else if (r != HR_OK) send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
    return r;
}

static void tw_classify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    (void)hp;
    twilio_classify(resp, res);
}

static void tw_destroy(hprov_t *hp)
{
    provider_secret_free(((twilio_t *)hp)->auth_token);
}

static const hprov_ops_t tw_hops = {.build = tw_build, .classify = tw_classify, .destroy = tw_destroy};

#define TWILIO_DEFAULT_IN_FLIGHT 100


static hr_t twilio_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout;
    int cap;
    char *token = NULL;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK) r = hprov_conf_cap(env, TWILIO_DEFAULT_IN_FLIGHT, &cap, why, why_len);
    if (r != HR_OK) return r;
    const char *sid = provider_conf(env, "account_sid", NULL);
    const char *from = provider_conf(env, "from", NULL);
    const char *svc = provider_conf(env, "messaging_service_sid", NULL);
    if (!sid || !*sid) {
        snprintf(why, why_len, "provider.%s.account_sid is required", env->name);
        return HR_INVALID;
    }
    if ((!from || !*from) && (!svc || !*svc)) {
        snprintf(why, why_len, "provider.%s.from or provider.%s.messaging_service_sid is required",
                 env->name, env->name);
        return HR_INVALID;
    }
    r = provider_secret(provider_env_get, env, env->name, "auth_token_file", "auth_token", &token, why, why_len);
    if (r != HR_OK) return r;
    if (!token) {
        snprintf(why, why_len, "provider.%s.auth_token_file or provider.%s.auth_token is required",
                 env->name, env->name);
        return HR_INVALID;
    }
    twilio_t *t = xcalloc(1, sizeof(*t));
    t->auth_token = token;
    t->conf = (twilio_conf_t){
        .url = provider_conf(env, "url", TWILIO_DEFAULT_URL),
        .account_sid = sid,
        .auth_token = token,
        .from = svc && *svc ? NULL : from,
        .messaging_service_sid = svc && *svc ? svc : NULL,
        .status_callback_url = provider_conf(env, "status_callback_url", NULL),
        .instance = env->name,
        .ca_file = provider_conf(env, "ca_file", NULL),
        .timeout_ms = (long)timeout,
    };
    if (!t->conf.status_callback_url)
        log_info(env->name, "no status_callback_url: Twilio will not report deliveries");
    hprov_init(&t->hp, env, &tw_hops, t->conf.url, cap);
    *out = &t->hp.base;
    return HR_OK;
}

static const char *const twilio_keys[] = {
    "url", "account_sid", "auth_token", "auth_token_file", "from", "messaging_service_sid",
    "status_callback_url", "timeout_ms", "ca_file", NULL};

const provider_ops_t twilio_provider_ops = {
    .name = "twilio",
    .keys = twilio_keys,
    .default_max_in_flight = TWILIO_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = twilio_open,
    .submit = hprov_submit,
    .poll = hprov_poll,
    .close = hprov_close,
};
