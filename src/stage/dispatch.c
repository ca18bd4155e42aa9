/*
 * dispatch.c - notifications-<channel> -> provider -> notification-status.
 *
 * One consumer group per channel ("dispatch-<channel>"), so a slow channel
 * never holds back a fast one. A batch is decoded, notifications already
 * recorded as sent are skipped (the id is the idempotency key), the rest go
 * to the provider in one call, and one status record per notification is
 * produced. Input offsets are stored by the stage loop only after those
 * status records are acknowledged.
 *
 * Which records are looked up in the store before sending: only those that
 * may have been handed to a dispatcher before - offsets below the
 * partition's end when this worker took the partition over (a previous
 * owner, or this process before a crash, may have sent them), and offsets
 * this worker already processed once (a batch retried after a failure).
 * Everything appended after the takeover is new to the group and goes
 * straight to the provider; fan-out does the same check for the records it
 * re-produces when it processes an event a second time. That keeps the
 * store query (a random index probe, the most expensive step per record)
 * off the hot path without giving up the "skip what is already sent" rule.
 *
 * Not yet here (later issues): quiet hours, per-user rate limits, provider
 * token buckets, circuit breaker, retry topics. A retriable failure is
 * recorded as status "failed"; a permanent one as "dead" plus a DLQ record.
 */
#include "stage/stage.h"
#include "model/lifecycle.h"

#include "core/buf.h"
#include "core/log.h"
#include "provider/provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dispatch {
    app_t *app;
    channel_t ch;
    provider_t *provider;
    int cap;
    notif_t *notifs;
    const notif_t **send;
    const bus_msg_t **src;
    send_result_t *res;
    buf_t enc;
    hist_local_t lat;           /* latencies of the batch, merged into app's */
    /* Per input partition: records below this offset are checked against
     * the store before sending; -1 = not known yet (taken over since). */
    int64_t *check_below;
    int32_t nparts;
} dispatch_t;

static void *dispatch_new(app_t *app, const stage_def_t *def, int worker)
{
    dispatch_t *d = xcalloc(1, sizeof(*d));
    d->app = app;
    d->ch = (channel_t)(intptr_t)def->arg;
    d->cap = app->cfg->batch_max;
    d->notifs = xcalloc((size_t)d->cap, sizeof(*d->notifs));
    d->send = xcalloc((size_t)d->cap, sizeof(*d->send));
    d->src = xcalloc((size_t)d->cap, sizeof(*d->src));
    d->res = xcalloc((size_t)d->cap, sizeof(*d->res));
    buf_init(&d->enc, 0);
    hist_local_init(&d->lat);
    char *dir = xasprintf("%s/sandbox", app->cfg->data_dir);
    bool null_mode = strcmp(app->cfg->provider_mode, "null") == 0;
    if (sandbox_provider_new(dir, d->ch, null_mode, &d->provider) != HR_OK) d->provider = NULL;
    free(dir);
    return d;
}

static void dispatch_free(void *state)
{
    dispatch_t *d = state;
    free(d->check_below);
    provider_free(d->provider);
    free(d->notifs);
    free(d->send);
    free(d->src);
    free(d->res);
    buf_release(&d->enc);
    free(d);
}

static int64_t *part_slot(dispatch_t *d, int32_t partition)
{
    if (partition >= d->nparts) {
        int32_t n = d->nparts ? d->nparts : 8;
        while (n <= partition) n *= 2;
        d->check_below = xrealloc(d->check_below, (size_t)n * sizeof(*d->check_below));
        for (int32_t i = d->nparts; i < n; i++) d->check_below[i] = -1;
        d->nparts = n;
    }
    return &d->check_below[partition];
}

static void dispatch_partition_changed(void *state, const char *topic, int32_t partition,
                                       bool assigned)
{
    /* Either way the partition's history is unknown again: whoever owned
     * it meanwhile may have processed records past what this worker saw. */
    *part_slot(state, partition) = -1;
}

/* Learns the end offsets of partitions whose watermark is unknown. Until it
 * succeeds every record of those partitions is checked. */
static void learn_watermarks(dispatch_t *d, const bus_msg_t *msgs, int n)
{
    bool need = false;
    for (int i = 0; i < n && !need; i++) need = *part_slot(d, msgs[i].partition) < 0;
    if (!need) return;
    bus_lag_t *lags = NULL;
    int nl = 0;
    if (bus_lag(d->app->bus, names_for_channel(d->ch)->group, topic_for_channel(d->ch), &lags, &nl) != HR_OK) {
        log_warn(names_for_channel(d->ch)->stage, "cannot read partition ends; checking every record");
        return;
    }
    for (int k = 0; k < nl; k++) {
        int64_t *slot = part_slot(d, lags[k].partition);
        if (*slot < 0) *slot = lags[k].end_offset;
    }
    free(lags);
}

static hr_t emit(dispatch_t *d, notif_t *n, bus_batch_t *batch)
{
    buf_reset(&d->enc);
    notif_encode(n, &d->enc);
    return stage_produce(d->app, TOPIC_STATUS, -1, n->user_id.p, n->user_id.n, d->enc.data,
                         d->enc.len, batch);
}

static hr_t dispatch_process(void *state, const bus_msg_t *msgs, int n, bus_batch_t *batch)
{
    dispatch_t *d = state;
    app_t *app = d->app;
    int ns = 0;
    hr_t r = HR_OK;

    if (!d->provider) return HR_ERR; /* the stage loop backs off and retries */
    learn_watermarks(d, msgs, n);
    for (int i = 0; i < n && r == HR_OK; i++) {
        int64_t *below = part_slot(d, msgs[i].partition);
        bool maybe_seen = *below < 0 || msgs[i].offset < *below;
        if (*below >= 0 && msgs[i].offset + 1 > *below) *below = msgs[i].offset + 1;
        notif_t *x = &d->notifs[ns];
        if (notif_decode(msgs[i].value, msgs[i].value_len, x) != HR_OK || x->kind != REC_NOTIFICATION) {
            r = stage_dead_letter(app, &msgs[i], names_for_channel(d->ch)->stage, "undecodable notification",
                                  batch);
            continue;
        }
        if (maybe_seen) {
            char id[64];
            snprintf(id, sizeof(id), "%.*s", (int)x->notification_id.n, x->notification_id.p);
            bool sent = false;
            r = store_notif_sent(app->store, id, &sent);
            if (r != HR_OK) break;
            if (sent) {
                log_debug(names_for_channel(d->ch)->stage, "%s already sent; skipped", id);
                continue;
            }
        }
        d->send[ns] = x;
        d->src[ns] = &msgs[i];
        ns++;
    }
    if (r != HR_OK || ns == 0) return r;

    provider_send(d->provider, d->send, ns, d->res);
    int64_t now_us = hclock_now_us();
    for (int i = 0; i < ns; i++) {
        const notif_t *x = d->send[i];
        if (d->res[i].cls == SEND_OK && x->accepted_at_us > 0 && now_us >= x->accepted_at_us)
            hist_record(&d->lat, (uint64_t)(now_us - x->accepted_at_us));
    }
    hist_merge(&app->delivery_latency[d->ch], &d->lat);
    for (int i = 0; i < ns && r == HR_OK; i++) {
        notif_t *x = &d->notifs[i];
        send_result_t *res = &d->res[i];
        int64_t at = hclock_now_ms();
        switch (res->cls) {
        case SEND_OK:
            lifecycle_transition(x, ST_SENT, at, HSTR(res->msg_id), names_for_channel(d->ch)->stage);
            atomic_fetch_add(&app->notifs_sent, 1);
            break;
        case SEND_RETRY:
            lifecycle_transition(x, ST_FAILED, at, HSTR(res->error), names_for_channel(d->ch)->stage);
            atomic_fetch_add(&app->notifs_failed, 1);
            break;
        case SEND_PERMANENT:
            lifecycle_transition(x, ST_DEAD, at, HSTR(res->error), names_for_channel(d->ch)->stage);
            atomic_fetch_add(&app->notifs_failed, 1);
            r = stage_dead_letter(app, d->src[i], names_for_channel(d->ch)->stage, res->error, batch);
            break;
        }
        if (r == HR_OK) r = emit(d, x, batch);
    }
    return r;
}

void dispatch_stage_def(int channel, stage_def_t *out)
{
    *out = (stage_def_t){
        .name = names_for_channel(channel)->stage,
        .group = names_for_channel(channel)->group,
        .topic = names_for_channel(channel)->topic,
        .state_new = dispatch_new,
        .state_free = dispatch_free,
        .process = dispatch_process,
        .partition_changed = dispatch_partition_changed,
        .arg = (void *)(intptr_t)channel,
    };
}
