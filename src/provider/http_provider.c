/*
 * http_provider.c - slots, submit, poll and close shared by the HTTP
 * providers (http_provider.h).
 *
 * DESIGN. The instance keeps max_in_flight slots, each with its transfer
 * (easy handle and buffers reused) and the completion it owes. submit()
 * takes a free slot, builds the request and starts it; the engine's done
 * callback classifies the response and completes the slot. A request that
 * cannot be built or started is completed from the next poll, never from
 * inside submit(). close() cancels running transfers, which completes
 * them as RETRY ("shutdown").
 */
#include "provider/http_provider.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hprov_slot {
    http_xfer_t *x;
    send_result_t *res;
    void *cookie;
    char id[72];                /* notification id, for the default msg_id */
    bool failed;                /* could not start: complete on the next poll */
    hprov_t *hp;
};

static void slot_release(hprov_t *hp, hprov_slot_t *s)
{
    hp->free_slots[hp->nfree++] = (int)(s - hp->slots);
}

void hprov_init(hprov_t *hp, const provider_env_t *env, const hprov_ops_t *ops, const char *target,
                int cap)
{
    hp->hops = ops;
    hp->engine = env->engine;
    hp->target = target ? target : env->name;
    hp->cap = cap;
    hp->slots = xcalloc((size_t)cap, sizeof(*hp->slots));
    hp->free_slots = xcalloc((size_t)cap, sizeof(*hp->free_slots));
    for (int i = 0; i < cap; i++) {
        hp->slots[i].hp = hp;
        hp->free_slots[hp->nfree++] = cap - 1 - i;
    }
    prov_http_req_init(&hp->req);
}

hr_t hprov_conf_cap(const provider_env_t *env, int64_t def, int *cap, char *why, size_t why_len)
{
    int64_t v;
    hr_t r = provider_conf_int(env, "max_in_flight", def, 1, 100000, &v, why, why_len);
    if (r == HR_OK) *cap = (int)v;
    return r;
}

bool hprov_classify_transport(const prov_http_resp_t *r, send_result_t *res)
{
    if (r->result == HTTP_DONE) return false;
    static const char *const what[] = {
        [HTTP_DONE] = "", [HTTP_TIMEOUT] = "timeout", [HTTP_CONNECT] = "connect",
        [HTTP_SHUTDOWN] = "shutdown", [HTTP_FAILED] = "transfer",
    };
    send_result_set(res, SEND_RETRY, 0, "%s: %s", what[r->result], r->error ? r->error : "");
    return true;
}

int64_t hprov_retry_after(const prov_http_resp_t *r)
{
    const char *v;
    size_t vn;
    return prov_http_header(r, "Retry-After", &v, &vn) ? http_retry_after_ms(v, vn, r->now_ms) : 0;
}

static void on_done(void *ud, http_xfer_t *x, const prov_http_resp_t *resp)
{
    (void)x;
    hprov_slot_t *s = ud;
    hprov_t *hp = s->hp;
    hp->hops->classify(hp, resp, s->res);
    if (s->res->cls == SEND_OK && !s->res->msg_id[0])
        snprintf(s->res->msg_id, sizeof(s->res->msg_id), "%s", s->id);
    /* One line when the provider starts refusing us and one when it stops,
     * not one per notification. */
    if (s->res->cls == SEND_FATAL && !hp->refusing)
        log_error(hp->base.name, "%s: %s (check provider.%s settings)", hp->target, s->res->error,
                  hp->base.name);
    else if (s->res->cls == SEND_OK && hp->refusing)
        log_info(hp->base.name, "%s accepts requests again", hp->target);
    if (s->res->cls == SEND_FATAL) hp->refusing = true;
    else if (s->res->cls == SEND_OK) hp->refusing = false;
    send_result_t *res = s->res;
    void *cookie = s->cookie;
    slot_release(hp, s);
    provider_complete(&hp->base, res, cookie);
}

hr_t hprov_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie)
{
    hprov_t *hp = (hprov_t *)p;
    hprov_slot_t *s = &hp->slots[hp->free_slots[--hp->nfree]]; /* the registry bounds in_flight */
    s->res = res;
    s->cookie = cookie;
    s->failed = false;
    snprintf(s->id, sizeof(s->id), "%.*s", (int)n->notification_id.n, n->notification_id.p);
    if (!s->x) s->x = http_xfer_new();
    prov_http_req_reset(&hp->req);
    send_result_set(res, SEND_PERMANENT, 0, "cannot build the request");
    hr_t r = hp->hops->build(hp, n, &hp->req, res);
    if (r == HR_OK && (r = http_xfer_start(hp->engine, s->x, &hp->req, on_done, s)) != HR_OK)
        send_result_set(res, SEND_RETRY, 0, "cannot start the request");
    if (r != HR_OK) {
        s->failed = true;
        hp->nfailed++;
    }
    return HR_OK;
}

int hprov_poll(provider_t *p)
{
    hprov_t *hp = (hprov_t *)p;
    int n = 0;
    for (int i = 0; i < hp->cap && hp->nfailed > 0; i++) {
        hprov_slot_t *s = &hp->slots[i];
        if (!s->failed) continue;
        s->failed = false;
        hp->nfailed--;
            slot_release(hp, s);
        provider_complete(p, s->res, s->cookie);
        n++;
    }
    return n;
}

void hprov_close(provider_t *p)
{
    hprov_t *hp = (hprov_t *)p;
    hprov_poll(p);
    for (int i = 0; i < hp->cap; i++) http_xfer_free(hp->slots[i].x); /* cancels: RETRY */
    prov_http_req_release(&hp->req);
    if (hp->hops->destroy) hp->hops->destroy(hp);
    free(hp->slots);
    free(hp->free_slots);
    free(hp);
}
