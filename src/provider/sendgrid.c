/*
 * sendgrid.c - the SendGrid e-mail provider: a pure builder and classifier
 * (sendgrid.h) on the shared HTTP provider part (http_provider.h), and the
 * event webhook's signature check.
 *
 * DESIGN. SendGrid accepts a message with 202 and reports what happened
 * later through its event webhook (delivered, bounce, dropped, ...). The
 * request's custom_args carry the notification id, which SendGrid copies
 * into every event, so src/http/api_callbacks.c maps an event back to its
 * notification directly. Addresses SendGrid already suppresses are still
 * accepted (202) and come back as "dropped" events. The body is built with
 * jansson (a JSON document, escaping done by the library).
 */
#include "provider/sendgrid.h"

#include "core/base64.h"
#include "core/log.h"
#include "provider/http_provider.h"
#include "provider/settings.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- pure part */

#define SUBJECT_MAX 78          /* bytes of a subject taken from the body */

/* The body as HTML: & < > " ' escaped, line breaks as <br>. */
static void html_of(hstr_t b, buf_t *out)
{
    for (size_t i = 0; i < b.n; i++) {
        char c = b.p[i];
        switch (c) {
        case '&': buf_append_str(out, "&amp;"); break;
        case '<': buf_append_str(out, "&lt;"); break;
        case '>': buf_append_str(out, "&gt;"); break;
        case '"': buf_append_str(out, "&quot;"); break;
        case '\'': buf_append_str(out, "&#39;"); break;
        case '\r': break;
        case '\n': buf_append_str(out, "<br>\n"); break;
        default: buf_append(out, &c, 1);
        }
    }
}

/* The first line of s, at most SUBJECT_MAX bytes, not cutting a UTF-8
 * sequence. */
static hstr_t first_line(hstr_t s)
{
    size_t n = 0;
    while (n < s.n && s.p[n] != '\n' && s.p[n] != '\r') n++;
    if (n > SUBJECT_MAX) {
        n = SUBJECT_MAX;
        while (n && ((unsigned char)s.p[n] & 0xC0) == 0x80) n--;
    }
    return (hstr_t){s.p, n};
}

/* A JSON string of s, or NULL when s is not valid UTF-8. */
static json_t *jstr(hstr_t s)
{
    return json_stringn(s.p ? s.p : "", s.n);
}

hr_t sendgrid_build(const sendgrid_conf_t *c, const notif_t *n, prov_http_req_t *req)
{
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = c->timeout_ms;
    req->ca_file = c->ca_file;
    if (!n->address.n) return HR_INVALID;
    hr_t r = HR_INVALID;
    buf_t html;
    buf_init(&html, 0);
    json_t *meta = NULL, *doc = NULL;
    char *text = NULL;
    hstr_t subject = n->title.n ? n->title : first_line(n->body);
    hstr_t plain = n->body.n ? n->body : n->title;
    const char *mhtml = NULL;
    if (n->metadata.n && (meta = json_loadb(n->metadata.p, n->metadata.n, 0, NULL)))
        mhtml = json_string_value(json_object_get(meta, "html"));
    if (mhtml && *mhtml) buf_append_str(&html, mhtml);
    else html_of(plain, &html);

    json_t *to = json_object(), *from = json_object(), *args = json_object();
    json_object_set_new(to, "email", jstr(n->address));
    json_object_set_new(from, "email", json_string(c->from));
    if (c->from_name && *c->from_name) json_object_set_new(from, "name", json_string(c->from_name));
    json_object_set_new(args, SENDGRID_ID_ARG, jstr(n->notification_id));
    json_t *content = json_array();
    json_array_append_new(content, json_pack("{s:s,s:o*}", "type", "text/plain", "value", jstr(plain)));
    json_array_append_new(content, json_pack("{s:s,s:o*}", "type", "text/html", "value",
                                             json_stringn(html.data ? html.data : "", html.len)));
    doc = json_pack("{s:[{s:[o]}],s:o,s:o*,s:o,s:o}", "personalizations", "to", to, "from", from,
                    "subject", jstr(subject), "content", content, "custom_args", args);
    /* a NULL member (not UTF-8) leaves a member out: refuse those */
    if (!doc || json_object_size(doc) != 5 || !json_object_get(to, "email") ||
        !json_object_get(args, SENDGRID_ID_ARG) ||
        json_object_size(json_array_get(content, 0)) != 2 ||
        json_object_size(json_array_get(content, 1)) != 2)
        goto out;
    if (!(text = json_dumps(doc, JSON_COMPACT))) goto out;
    const char *base = c->url ? c->url : SENDGRID_DEFAULT_URL;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    r = buf_printf(&req->url, "%.*s/v3/mail/send", (int)bl, base);
    if (r == HR_OK) r = buf_printf(&req->headers, "Authorization: Bearer %s\n", c->api_key);
    if (r == HR_OK) r = buf_append_str(&req->headers, "Content-Type: application/json\n");
    if (r == HR_OK) r = buf_append_str(&req->body, text);
    if (r == HR_OK) buf_cstr(&req->url);
out:
    free(text);
    json_decref(doc);
    json_decref(meta);
    buf_release(&html);
    return r;
}

/* Milliseconds until X-RateLimit-Reset (epoch seconds), capped at a day;
 * 0 when absent or past. */
static int64_t reset_after(const prov_http_resp_t *r)
{
    const char *v;
    size_t vn;
    if (!prov_http_header(r, "X-RateLimit-Reset", &v, &vn) || vn == 0 || vn > 18) return 0;
    int64_t t = 0;
    for (size_t i = 0; i < vn; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        t = t * 10 + (v[i] - '0');
    }
    int64_t ms = t * 1000 - r->now_ms;
    if (ms <= 0) return 0;
    return ms > INT64_C(86400000) ? INT64_C(86400000) : ms;
}

void sendgrid_classify(const prov_http_resp_t *r, send_result_t *res)
{
    if (hprov_classify_transport(r, res)) return;
    int s = r->status;
    send_class_t cls;
    if (s >= 200 && s < 300) cls = SEND_OK;
    else if (s == 401 || s == 403 || s == 404) cls = SEND_FATAL;
    else if (s == 429) cls = SEND_THROTTLED;
    else if (s == 408 || (s >= 500 && s < 600)) cls = SEND_RETRY;
    else if (s >= 400 && s < 500) cls = SEND_PERMANENT;
    else cls = SEND_RETRY;
    json_t *doc = cls != SEND_OK && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *e0 = json_array_get(json_object_get(doc, "errors"), 0);
    const char *msg = json_string_value(json_object_get(e0, "message"));
    const char *field = json_string_value(json_object_get(e0, "field"));
    const char *reason = r->reason ? r->reason : "";
    if (msg)
        send_result_set(res, cls, s, "HTTP %d: SendGrid: %s%s%s", s, field ? field : "",
                        field ? ": " : "", msg);
    else
        send_result_set(res, cls, s, "HTTP %d%s%s", s, *reason ? " " : "", reason);
    json_decref(doc);
    if (cls == SEND_OK) {
        const char *v;
        size_t vn;
        res->error[0] = '\0';
        if (prov_http_header(r, "X-Message-Id", &v, &vn))
            snprintf(res->msg_id, sizeof(res->msg_id), "%.*s", (int)vn, v);
    }
    if (cls == SEND_RETRY) res->retry_after_ms = hprov_retry_after(r);
    if (cls == SEND_THROTTLED) {
        res->retry_after_ms = hprov_retry_after(r);
        if (!res->retry_after_ms) res->retry_after_ms = reset_after(r);
    }
}

hr_t sendgrid_event_verify(const char *public_key_b64, const char *timestamp, const char *body,
                           size_t body_len, const char *sig_b64)
{
    hr_t r = HR_DECLINED;
    size_t kl = 0, sl = 0;
    unsigned char *der = base64_decode(public_key_b64, strlen(public_key_b64), &kl);
    unsigned char *sig = NULL;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    const unsigned char *p = der;
    if (!der || !(key = d2i_PUBKEY(NULL, &p, (long)kl)) || p != der + kl ||
        EVP_PKEY_base_id(key) != EVP_PKEY_EC)
        goto out;
    r = HR_INVALID;
    if (!timestamp || !*timestamp || !sig_b64 || !*sig_b64) goto out;
    if (!(sig = base64_decode(sig_b64, strlen(sig_b64), &sl)) || sl == 0) goto out;
    md = EVP_MD_CTX_new();
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestVerifyUpdate(md, timestamp, strlen(timestamp)) != 1 ||
        EVP_DigestVerifyUpdate(md, body, body_len) != 1)
        goto out;
    if (EVP_DigestVerifyFinal(md, sig, sl) == 1) r = HR_OK;
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    free(der);
    free(sig);
    return r;
}

/* ------------------------------------------------------------ provider */

typedef struct sendgrid {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    sendgrid_conf_t conf;
    char *api_key;              /* owned; conf.api_key points here */
} sendgrid_t;

static hr_t sg_build(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    hr_t r = sendgrid_build(&((sendgrid_t *)hp)->conf, n, req);
    if (r == HR_INVALID)
        send_result_set(res, SEND_PERMANENT, 0, "%s",
                        n->address.n ? "the message is not valid UTF-8" : "no e-mail address to send to");
    else if (r != HR_OK)
        send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
    return r;
}

static void sg_classify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    (void)hp;
    sendgrid_classify(resp, res);
}

static void sg_destroy(hprov_t *hp)
{
    provider_secret_free(((sendgrid_t *)hp)->api_key);
}

static const hprov_ops_t sg_hops = {.build = sg_build, .classify = sg_classify, .destroy = sg_destroy};

#define SENDGRID_DEFAULT_IN_FLIGHT 100


static hr_t sendgrid_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout;
    int cap;
    char *key = NULL;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK) r = hprov_conf_cap(env, SENDGRID_DEFAULT_IN_FLIGHT, &cap, why, why_len);
    if (r != HR_OK) return r;
    const char *from = provider_conf(env, "from", NULL);
    if (!from || !*from) {
        snprintf(why, why_len, "provider.%s.from is required", env->name);
        return HR_INVALID;
    }
    r = provider_secret(provider_env_get, env, env->name, "api_key_file", "api_key", &key, why, why_len);
    if (r != HR_OK) return r;
    if (!key) {
        snprintf(why, why_len, "provider.%s.api_key_file or provider.%s.api_key is required",
                 env->name, env->name);
        return HR_INVALID;
    }
    sendgrid_t *g = xcalloc(1, sizeof(*g));
    g->api_key = key;
    g->conf = (sendgrid_conf_t){
        .url = provider_conf(env, "url", SENDGRID_DEFAULT_URL),
        .api_key = key,
        .from = from,
        .from_name = provider_conf(env, "from_name", NULL),
        .ca_file = provider_conf(env, "ca_file", NULL),
        .timeout_ms = (long)timeout,
    };
    hprov_init(&g->hp, env, &sg_hops, g->conf.url, cap);
    *out = &g->hp.base;
    return HR_OK;
}

static const char *const sendgrid_keys[] = {"url", "api_key", "api_key_file", "from", "from_name",
                                            "event_public_key", "accept_unsigned_events", "timeout_ms", "ca_file", NULL};

const provider_ops_t sendgrid_provider_ops = {
    .name = "sendgrid",
    .keys = sendgrid_keys,
    .default_max_in_flight = SENDGRID_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = sendgrid_open,
    .submit = hprov_submit,
    .poll = hprov_poll,
    .close = hprov_close,
};
