/*
 * inapp.c - the in-app channel's provider: "delivers" a notification by
 * storing it as an item of its user's inbox (store.h "in-app inbox"), which
 * the inbox API lists and changes. The default provider of the in-app
 * channel (channel.inapp.providers); the sandbox remains available there by
 * configuration.
 *
 * DESIGN. submit() only remembers the notification; poll() writes what was
 * submitted since the last poll, one short store write per item, and
 * completes each: SEND_OK ("inapp-<notification_id>") once the item is
 * durable, SEND_RETRY when the store is busy, full or failing (the item
 * is written again later; store_inbox_put is idempotent, so a retry after a
 * write that did land changes nothing), SEND_PERMANENT for a notification
 * the store refuses (no user or id). The user id stored is the
 * tenant-qualified one, so the API's tenant helpers keep tenants apart.
 * close() writes what is still pending, like the sandbox. A new item is
 * published to its user's live streams (http/inbox_hub.h) right after the
 * write, from the dispatcher thread that wrote it.
 *
 * Needs the process's store (env->app->store); opening without one fails.
 *
 * Config: provider.<name>.max_in_flight (items per poll).
 */
#include "provider/provider_int.h"

#include "app.h"
#include "core/log.h"
#include "http/inbox_hub.h"
#include "store/store.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    const notif_t *n;
    send_result_t *res;
    void *cookie;
} pending_t;

typedef struct inapp {
    provider_t base;
    store_t *store;             /* borrowed from the app */
    inbox_hub_t *hub;           /* the app's live streams; NULL = none */
    pending_t *pending;         /* submitted since the last poll */
    int npending, cap;
} inapp_t;

static hr_t inapp_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie)
{
    inapp_t *s = (inapp_t *)p;
    assert(s->npending < s->cap); /* the registry bounds in-flight by cap */
    s->pending[s->npending++] = (pending_t){n, res, cookie};
    return HR_OK;
}

/* A copy of h, NULL when empty. */
static char *opt_dup(hstr_t h) { return h.n ? xstrndup(h.p, h.n) : NULL; }

/* Stores one notification as an inbox item and fills res. */
static void inapp_store(inapp_t *s, const notif_t *n, send_result_t *res)
{
    inbox_item_t it = {
        .user_id = opt_dup(n->user_id),
        .notification_id = opt_dup(n->notification_id),
        .event_id = opt_dup(n->event_id),
        .category = opt_dup(n->category),
        .title = xstrndup(n->title.p ? n->title.p : "", n->title.n),
        .body = xstrndup(n->body.p ? n->body.p : "", n->body.n),
        .created_at_ms = n->created_at_ms > 0 ? n->created_at_ms : hclock_now_ms(),
    };
    bool created = false;
    hr_t r = store_inbox_put(s->store, &it, &created);
    /* the user's live streams hear of it from this thread (inbox_hub.h) */
    if (r == HR_OK && created && s->hub) inbox_hub_new_item(s->hub, s->store, &it);
    if (r == HR_OK) {
        res->cls = SEND_OK;
        res->code = 0;
        res->address_invalid = false;
        res->retry_after_ms = 0;
        res->error[0] = '\0';
        snprintf(res->msg_id, sizeof(res->msg_id), "inapp-%s", it.notification_id);
    } else if (r == HR_INVALID) {
        send_result_set(res, SEND_PERMANENT, 0, "inapp: the store refused the item (no user or id)");
    } else {
        send_result_set(res, SEND_RETRY, 0, "inapp: store write: %s", hr_str(r));
    }
    inbox_item_clear(&it);
}

static int inapp_poll(provider_t *p)
{
    inapp_t *s = (inapp_t *)p;
    int n = s->npending;
    s->npending = 0;
    for (int i = 0; i < n; i++) {
        pending_t *q = &s->pending[i];
        inapp_store(s, q->n, q->res);
        provider_complete(p, q->res, q->cookie);
    }
    return n;
}

static void inapp_close(provider_t *p)
{
    inapp_t *s = (inapp_t *)p;
    inapp_poll(p);
    free(s->pending);
    free(s);
}

#define INAPP_DEFAULT_IN_FLIGHT 256

static hr_t inapp_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    if (!env->app || !env->app->store) {
        snprintf(why, why_len, "provider.%s: the inapp provider needs the store", env->name);
        return HR_INVALID;
    }
    int64_t cap;
    hr_t r = provider_conf_int(env, "max_in_flight", INAPP_DEFAULT_IN_FLIGHT, 1, 100000, &cap, why,
                               why_len);
    if (r != HR_OK) return r;
    inapp_t *s = xcalloc(1, sizeof(*s));
    s->store = env->app->store;
    s->hub = env->app->inbox_hub;
    s->cap = (int)cap;
    s->pending = xcalloc((size_t)cap, sizeof(*s->pending));
    *out = &s->base;
    return HR_OK;
}

const provider_ops_t inapp_provider_ops = {
    .name = "inapp",
    .keys = NULL,
    .default_max_in_flight = INAPP_DEFAULT_IN_FLIGHT,
    .uses_http = false,
    .open = inapp_open,
    .submit = inapp_submit,
    .poll = inapp_poll,
    .close = inapp_close,
};
