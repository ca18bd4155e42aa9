/*
 * webhook.c - a generic HTTP provider: POSTs each notification's JSON to a
 * configured URL through the dispatcher thread's engine (http.h). The
 * first real provider, and the model for the others: a pure builder and a
 * pure classifier (webhook.h), and a thin provider around them.
 *
 * DESIGN. The instance keeps max_in_flight slots, each with its transfer
 * (easy handle and buffers reused) and the completion it owes. submit()
 * takes a free slot, builds the request and starts it; the engine's done
 * callback classifies the response and completes the slot. A request that
 * cannot be built or started is completed from the next poll, never from
 * inside submit(). close() cancels running transfers, which completes
 * them as RETRY ("shutdown").
 */
#include "provider/webhook.h"

#include "core/log.h"
#include "provider/provider_int.h"

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
    int64_t after = prov_http_header(r, "Retry-After", &v, &vn) ? http_retry_after_ms(v, vn, r->now_ms) : 0;
    int s = r->status;

    if (r->result != HTTP_DONE) {
        static const char *const what[] = {
            [HTTP_DONE] = "", [HTTP_TIMEOUT] = "timeout", [HTTP_CONNECT] = "connect",
            [HTTP_SHUTDOWN] = "shutdown", [HTTP_FAILED] = "transfer",
        };
        send_result_set(res, SEND_RETRY, 0, "%s: %s", what[r->result], r->error ? r->error : "");
        return;
    }
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

typedef struct slot {
    http_xfer_t *x;
    send_result_t *res;
    void *cookie;
    char id[64];                /* notification id, for the default msg_id */
    bool failed;                /* could not start: complete on the next poll */
    struct webhook *w;
} slot_t;

typedef struct webhook {
    provider_t base;
    webhook_conf_t conf;
    http_engine_t *engine;
    prov_http_req_t req;             /* scratch for the builder */
    slot_t *slots;
    int *free_slots;            /* stack of free slot indexes */
    int nfree, cap;
    int nfailed;
    bool refusing;              /* the last verdict was FATAL */
} webhook_t;

static void slot_release(webhook_t *w, slot_t *s)
{
    w->free_slots[w->nfree++] = (int)(s - w->slots);
}

static void on_done(void *ud, http_xfer_t *x, const prov_http_resp_t *resp)
{
    slot_t *s = ud;
    webhook_t *w = s->w;
    webhook_classify(resp, s->res);
    if (s->res->cls == SEND_OK && !s->res->msg_id[0])
        snprintf(s->res->msg_id, sizeof(s->res->msg_id), "%s", s->id);
    /* One line when the provider starts refusing us and one when it stops,
     * not one per notification. */
    if (s->res->cls == SEND_FATAL && !w->refusing)
        log_error(w->base.name, "%s: %s (check provider.%s settings)", w->conf.url, s->res->error,
                  w->base.name);
    else if (s->res->cls == SEND_OK && w->refusing)
        log_info(w->base.name, "%s accepts requests again", w->conf.url);
    if (s->res->cls == SEND_FATAL) w->refusing = true;
    else if (s->res->cls == SEND_OK) w->refusing = false;
    send_result_t *res = s->res;
    void *cookie = s->cookie;
    slot_release(w, s);
    provider_complete(&w->base, res, cookie);
}

static hr_t webhook_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie)
{
    webhook_t *w = (webhook_t *)p;
    slot_t *s = &w->slots[w->free_slots[--w->nfree]]; /* the registry bounds in_flight by cap */
    s->res = res;
    s->cookie = cookie;
    s->failed = false;
    snprintf(s->id, sizeof(s->id), "%.*s", (int)n->notification_id.n, n->notification_id.p);
    if (!s->x) s->x = http_xfer_new();
    hr_t r = webhook_build(&w->conf, n, &w->req);
    if (r != HR_OK) {
        send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", hr_str(r));
    } else if ((r = http_xfer_start(w->engine, s->x, &w->req, on_done, s)) != HR_OK) {
        send_result_set(res, SEND_RETRY, 0, "cannot start the request");
    }
    if (r != HR_OK) {
        s->failed = true;
        w->nfailed++;
    }
    return HR_OK;
}

/* Completes the requests that never started. */
static int webhook_poll(provider_t *p)
{
    webhook_t *w = (webhook_t *)p;
    int n = 0;
    for (int i = 0; i < w->cap && w->nfailed > 0; i++) {
        slot_t *s = &w->slots[i];
        if (!s->failed) continue;
        s->failed = false;
        w->nfailed--;
        slot_release(w, s);
        provider_complete(p, s->res, s->cookie);
        n++;
    }
    return n;
}

static void webhook_close(provider_t *p)
{
    webhook_t *w = (webhook_t *)p;
    webhook_poll(p);
    for (int i = 0; i < w->cap; i++) http_xfer_free(w->slots[i].x); /* cancels: RETRY */
    prov_http_req_release(&w->req);
    free(w->slots);
    free(w->free_slots);
    free(w);
}

#define WEBHOOK_DEFAULT_IN_FLIGHT 100

static hr_t webhook_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout, cap;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK)
        r = provider_conf_int(env, "max_in_flight", WEBHOOK_DEFAULT_IN_FLIGHT, 1, 100000, &cap, why,
                              why_len);
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
    w->engine = env->engine;
    w->cap = (int)cap;
    w->slots = xcalloc((size_t)cap, sizeof(*w->slots));
    w->free_slots = xcalloc((size_t)cap, sizeof(*w->free_slots));
    for (int i = 0; i < w->cap; i++) {
        w->slots[i].w = w;
        w->free_slots[w->nfree++] = w->cap - 1 - i;
    }
    prov_http_req_init(&w->req);
    *out = &w->base;
    return HR_OK;
}

static const char *const webhook_keys[] = {"url", "timeout_ms", "authorization", NULL};

const provider_ops_t webhook_provider_ops = {
    .name = "webhook",
    .keys = webhook_keys,
    .default_max_in_flight = WEBHOOK_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = webhook_open,
    .submit = webhook_submit,
    .poll = webhook_poll,
    .close = webhook_close,
};
