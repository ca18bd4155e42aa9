/*
 * webhook.c - a generic HTTP provider: POSTs each notification's JSON to a
 * configured URL through the dispatcher thread's engine (http.h). The
 * first real provider, and the model for the others: a pure builder and a
 * pure classifier (webhook.h) on the shared HTTP provider part
 * (http_provider.h).
 */
#include "provider/webhook.h"

#include "core/log.h"
#include "provider/http_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (r == HR_OK) r = notif_to_json(n, &req->body);
    if (r == HR_OK) buf_cstr(&req->url);
    return r;
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

typedef struct webhook {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    webhook_conf_t conf;
} webhook_t;

static hr_t wh_build(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    hr_t r = webhook_build(&((webhook_t *)hp)->conf, n, req);
    if (r != HR_OK) send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
    return r;
}

static void wh_classify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    (void)hp;
    webhook_classify(resp, res);
}

static const hprov_ops_t wh_hops = {.build = wh_build, .classify = wh_classify};

#define WEBHOOK_DEFAULT_IN_FLIGHT 100

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
    webhook_t *w = xcalloc(1, sizeof(*w));
    w->conf.url = url;
    w->conf.authorization = provider_conf(env, "authorization", NULL);
    w->conf.timeout_ms = (long)timeout;
    hprov_init(&w->hp, env, &wh_hops, url, cap);
    *out = &w->hp.base;
    return HR_OK;
}

static const char *const webhook_keys[] = {"url", "timeout_ms", "authorization", NULL};

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
