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
 * "Already sent?" has two sources. The store knows what the status sink
 * has written; the sink lags, but every status record is durable on the bus
 * (notification-status) before the input offset that produced it is
 * stored. So a worker that takes a partition over first reads the tail of
 * notification-status the sink has not committed yet (the same partition
 * index: both topics are keyed by user_id; every partition when the counts
 * differ) and remembers the ids recorded as sent for its channel, then adds
 * each id it sends itself (sent_ids.h: a bounded FIFO set,
 * dispatch.sent_memory ids). Every record is checked against that set (a
 * hash probe): it catches what the previous owner sent after the sink's
 * last commit and the copies fan-out produces when it processes an event
 * again after a crash. What a kill -9 can still repeat are the provider
 * calls whose status records were not written yet: at most
 * dispatch.status_every, since the statuses of each such slice are written
 * before the provider gets the next one (and the stage keeps one batch in
 * flight, stage_def_t.max_depth).
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
 * Delivery goes through the channel's provider set (provider/provider.h):
 * every notification of the batch is submitted (when a provider is full,
 * the dispatcher takes completions and submits the rest), then the
 * dispatcher waits for the last completion, so each submitted notification
 * has exactly one result before any status is produced. Results map to
 * statuses by class, through lifecycle_transition:
 *   OK -> sent;
 *   RETRY, THROTTLED -> failed (this attempt), and the notification goes to
 *     the channel's next retry tier (<channel>-retry-30s, -5m, -30m, see
 *     stage/retry.c) with attempt + 1 and due_at = now + max(the tier's
 *     delay, the provider's retry_after_ms); after the last tier -> dead +
 *     DLQ record ("retries exhausted: ...");
 *   PERMANENT -> dead + DLQ record; when the provider says the address is
 *     dead (address_invalid) it is also invalidated in the store
 *     (store_address_invalidate) so that fan-out stops using it;
 *   FATAL (the provider is misconfigured) -> nothing is marked or
 *   dead-lettered: the statuses of the notifications that did go out are
 *   produced, the batch's partitions pause for FATAL_PAUSE_MS and the batch
 *   is offered again after it (HR_LATER; the store check skips what was
 *   sent).
 *
 * A notification whose due_at_ms is in the future (a scheduled send, or a
 * retry tier that let it through early) is not sent: schedule_defer()
 * keeps it in the store until then and records "deferred" (stage/
 * scheduler.h). Normal sends touch the store no more than before.
 *
 * The policy chain (docs/internals/policy.md) runs per notification after
 * the checks above and before the provider, with one clock read per batch:
 *   breaker, once per batch: an instance's breaker open -> every partition
 *     of the batch pauses until breaker_retry_at() and the batch comes
 *     again then (HR_LATER): lag builds in the bus, no retry storm;
 *   quiet hours (not for critical; users without a window skip ICU) ->
 *     schedule_defer() until the window ends ("deferred");
 *   breaker_allow (half-open probes) and the instance's token bucket: no
 *     probe slot, or no token within BUCKET_SHORT_WAIT_MS -> the partition
 *     is rewound to this record and paused until it may go; the batch's
 *     other partitions go on (a short wait blocks, taking completions);
 *   rate limit (not for critical), one ratelimit_check_batch() for the
 *     batch: over -> "rate_limited", the token and probe given back;
 *   provider -> breaker_record() (PERMANENT counts as a healthy answer).
 */
#include "stage/stage.h"
#include "model/lifecycle.h"

#include "core/buf.h"
#include "core/log.h"
#include "policy/breaker.h"
#include "policy/bucket.h"
#include "policy/quiet.h"
#include "policy/ratelimit.h"
#include "provider/provider.h"
#include "stage/digest.h"
#include "stage/outbuf.h"
#include "stage/scheduler.h"
#include "stage/sent_ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long one wait for provider completions may block before the loop
 * looks again (requests have their own timeouts, so waits end). */
#define COMPLETION_WAIT_MS 100

/* How long a channel's partitions pause after its provider answered FATAL
 * (misconfigured); the batch is tried again after it. */
#define FATAL_PAUSE_MS 30000

/* A token due within this many ms is waited for in place (taking provider
 * completions meanwhile); a longer wait pauses the partition instead. */
#define BUCKET_SHORT_WAIT_MS 20

typedef struct dispatch {
    app_t *app;
    channel_t ch;
    provider_set_t *providers;  /* NULL when the channel's providers failed to open */
    int ndone;                  /* completions of the current batch */
    int *fresh;                 /* indexes completed since the last take_completions */
    int nfresh;
    int cap;
    notif_t *notifs;
    const notif_t **send;
    const bus_msg_t **src;
    send_result_t *res;         /* result slot per submitted notification */
    outbuf_t out;               /* the status records of a slice, produced at once */
    buf_t enc_retry;            /* the notification for the next retry tier */
    int64_t delays[RETRY_TIERS];/* retry.delays_ms */
    hist_local_t lat;           /* latencies of the batch, merged into app's */
    /* Per input partition: records below this offset are checked against
     * the store before sending; -1 = not known yet (taken over since). */
    int64_t *check_below;
    bool *tail_known;           /* per input partition: notification-status's tail was read */
    int64_t *offered;           /* per input partition: offsets below were offered to this worker */
    int32_t nparts;
    sent_ids_t sent;            /* ids known as sent (see the top) */
    sent_ids_t in_batch;        /* ids of the batch being processed */
    sent_key_t *keys;           /* per decoded record: its id parsed once (sent_ids.h) */
    bool *keyed;                /* per decoded record: keys[] is valid (a 32-hex-digit id) */
    bool *was_sent;             /* per polled record: its key is in `sent` (looked up for the batch at once) */
    sent_key_t *addq;           /* ids sent in the current slice, added to `sent` together */
    int naddq;
    bool *decoded;              /* per polled record: notifs[] holds it (a notification) */
    bool *maybe_seen;           /* per decoded record of the batch: look it up in the store */
    hstr_t *ask;                /* ids to look up in the store, one query per batch */
    bool *answer;
    bool read_declined;         /* the bus cannot read a range: the store only (warned once) */
    /* the policy chain (docs/internals/policy.md) */
    quiet_ctx_t *quiet;         /* NULL when ICU cannot open: quiet hours not applied (logged) */
    ratelimit_t *rl;            /* NULL when the limiter cannot open (logged): not limited */
    int *pidx;                  /* provider instance of send[i] */
    bool *probe;                /* send[i] took a breaker probe slot (half-open) */
    bool *again;                /* send[i] was offered to this worker before: not rate-limited again */
    ratelimit_req_t *reqs;
    int *req_of;                /* send index of reqs[k] */
    digest_stage_t *digests;    /* stage/digest.h */
} dispatch_t;

/* Provider completion: res is d->res[i] for cookie i. Runs on this
 * dispatcher's thread, from provider_set_poll(). */
static void on_sent(void *ud, send_result_t *res, void *cookie)
{
    dispatch_t *d = ud;
    d->fresh[d->nfresh++] = (int)(intptr_t)cookie;
    d->ndone++;
}

/* Takes completions (waiting up to wait_ms for the first) and records the
 * delivery latency of those that went out: one clock read per round, not
 * per notification. */
static void take_completions(dispatch_t *d, int wait_ms)
{
    provider_set_poll(d->providers, wait_ms);
    if (d->nfresh == 0) return;
    int64_t now_us = hclock_now_us();
    for (int k = 0; k < d->nfresh; k++) {
        int i = d->fresh[k];
        const notif_t *x = d->send[i];
        if (d->res[i].cls == SEND_OK && x->accepted_at_us > 0 && now_us >= x->accepted_at_us)
            hist_record(&d->lat, (uint64_t)(now_us - x->accepted_at_us));
    }
    d->nfresh = 0;
}

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
    d->fresh = xcalloc((size_t)d->cap, sizeof(*d->fresh));
    d->maybe_seen = xcalloc((size_t)d->cap, sizeof(*d->maybe_seen));
    d->ask = xcalloc((size_t)d->cap, sizeof(*d->ask));
    d->answer = xcalloc((size_t)d->cap, sizeof(*d->answer));
    sent_ids_init(&d->sent, (size_t)app->cfg->dispatch_sent_memory);
    sent_ids_init(&d->in_batch, (size_t)d->cap);
    d->keys = xcalloc((size_t)d->cap, sizeof(*d->keys));
    d->keyed = xcalloc((size_t)d->cap, sizeof(*d->keyed));
    d->was_sent = xcalloc((size_t)d->cap, sizeof(*d->was_sent));
    d->addq = xcalloc((size_t)d->cap, sizeof(*d->addq));
    d->decoded = xcalloc((size_t)d->cap, sizeof(*d->decoded));
    d->pidx = xcalloc((size_t)d->cap, sizeof(*d->pidx));
    d->probe = xcalloc((size_t)d->cap, sizeof(*d->probe));
    d->again = xcalloc((size_t)d->cap, sizeof(*d->again));
    d->reqs = xcalloc((size_t)d->cap, sizeof(*d->reqs));
    d->req_of = xcalloc((size_t)d->cap, sizeof(*d->req_of));
    outbuf_init(&d->out, app);
    buf_init(&d->enc_retry, 0);
    hist_local_init(&d->lat);
    d->digests = digest_stage_new(app, d->ch, d->cap);
    char why[256];
    if (config_parse_delays(app->cfg->retry_delays, d->delays, why, sizeof(why)) != HR_OK)
        memcpy(d->delays, retry_tier_delay_ms, sizeof(d->delays)); /* checked when set */
    if (provider_set_open(app->cfg, app, d->ch, on_sent, d, &d->providers, why, sizeof(why)) != HR_OK) {
        log_error(names_for_channel(d->ch)->stage, "cannot open the channel's providers: %s", why);
        d->providers = NULL;
    }
    d->quiet = quiet_ctx_new();
    if (!d->quiet) log_error(names_for_channel(d->ch)->stage, "cannot open ICU: quiet hours are not applied");
    if (ratelimit_open(app->cfg, d->ch, &d->rl, why, sizeof(why)) != HR_OK) {
        log_error(names_for_channel(d->ch)->stage, "cannot open the rate limiter: %s; not limiting", why);
        d->rl = NULL;
    }
    return d;
}

static void dispatch_free(void *state)
{
    dispatch_t *d = state;
    free(d->check_below);
    free(d->tail_known);
    free(d->offered);
    free(d->maybe_seen);
    free(d->ask);
    free(d->answer);
    sent_ids_release(&d->sent);
    sent_ids_release(&d->in_batch);
    free(d->keys);
    free(d->keyed);
    free(d->was_sent);
    free(d->addq);
    free(d->decoded);
    provider_set_close(d->providers);
    quiet_ctx_free(d->quiet);
    ratelimit_close(d->rl);
    free(d->pidx);
    free(d->probe);
    free(d->again);
    free(d->reqs);
    free(d->req_of);
    digest_stage_free(d->digests);
    free(d->notifs);
    free(d->send);
    free(d->src);
    free(d->res);
    free(d->fresh);
    outbuf_release(&d->out);
    buf_release(&d->enc_retry);
    free(d);
}

static int64_t *part_slot(dispatch_t *d, int32_t partition)
{
    if (partition >= d->nparts) {
        int32_t n = d->nparts ? d->nparts : 8;
        while (n <= partition) n *= 2;
        d->check_below = xrealloc(d->check_below, (size_t)n * sizeof(*d->check_below));
        d->tail_known = xrealloc(d->tail_known, (size_t)n * sizeof(*d->tail_known));
        d->offered = xrealloc(d->offered, (size_t)n * sizeof(*d->offered));
        for (int32_t i = d->nparts; i < n; i++) {
            d->check_below[i] = -1;
            d->tail_known[i] = false;
            d->offered[i] = -1;
        }
        d->nparts = n;
    }
    return &d->check_below[partition];
}

static void dispatch_partition_changed(void *state, const char *topic, int32_t partition,
                                       bool assigned)
{
    /* Either way the partition's history is unknown again: whoever owned
     * it meanwhile may have processed records past what this worker saw. */
    dispatch_t *d = state;
    *part_slot(d, partition) = -1;
    d->tail_known[partition] = false;
    d->offered[partition] = -1;
    if (d->rl && assigned) ratelimit_partition_assigned(d->rl, partition, hclock_now_ms());
    if (d->rl && !assigned) ratelimit_partition_revoked(d->rl, partition, hclock_now_ms());
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

/* What read_tail() collects. */
typedef struct tail_scan {
    dispatch_t *d;
    int64_t records, sent;
} tail_scan_t;

static bool tail_record(void *ud, const bus_msg_t *m)
{
    tail_scan_t *t = ud;
    notif_t x;
    t->records++;
    if (notif_decode(m->value, m->value_len, &x) != HR_OK || x.kind != REC_STATUS) return true;
    if (x.channel != t->d->ch || !lifecycle_was_sent(x.status)) return true;
    if (x.status == ST_DIGESTED) return true; /* not sent: its digest was (stage/digest.h) */
    if (sent_ids_add(&t->d->sent, x.notification_id)) t->sent++;
    return true;
}

/* Reads what the status sink has not committed yet of the notification-
 * status partitions that hold the users of input partition `part` (the
 * same index when the partition counts agree, else all) into d->sent. */
static hr_t read_tail(dispatch_t *d, int32_t part, bool *all_parts)
{
    const char *by = names_for_channel(d->ch)->stage;
    int32_t nin = bus_partitions(d->app->bus, topic_for_channel(d->ch));
    int32_t nst = bus_partitions(d->app->bus, TOPIC_STATUS);
    *all_parts = nin != nst;
    if (nst <= 0) return HR_OK; /* no status topic: nothing was sent through it */
    bus_lag_t *lags = NULL;
    int nl = 0;
    hr_t r = bus_lag(d->app->bus, GROUP_STATUS, TOPIC_STATUS, &lags, &nl);
    if (r != HR_OK) {
        log_warn(by, "cannot read where the status sink is: %s", hr_str(r));
        return r;
    }
    tail_scan_t t = {d, 0, 0};
    int64_t t0 = hclock_mono_ns();
    for (int k = 0; k < nl && r == HR_OK; k++) {
        if (!*all_parts && lags[k].partition != part) continue;
        r = bus_read_range(d->app->bus, TOPIC_STATUS, lags[k].partition,
                           lags[k].committed < 0 ? 0 : lags[k].committed, lags[k].end_offset,
                           tail_record, &t);
    }
    free(lags);
    if (r == HR_DECLINED) {
        if (!d->read_declined)
            log_warn(by, "the %s bus cannot read notification-status back; after a crash only the "
                         "store says what was sent", bus_backend_name(d->app->bus));
        d->read_declined = true;
        return HR_OK;
    }
    if (r != HR_OK) {
        log_warn(by, "cannot read the tail of %s: %s", TOPIC_STATUS, hr_str(r));
        return r;
    }
    if (t.records > 0)
        log_info(by, "took over %s/%d: %lld sent notification(s) among %lld status record(s) the "
                     "store does not have yet (%lld ms)",
                 topic_for_channel(d->ch), (int)part, (long long)t.sent, (long long)t.records,
                 (long long)((hclock_mono_ns() - t0) / 1000000));
    if (t.sent > (int64_t)d->sent.max)
        log_warn(by, "dispatch.sent_memory (%zu) holds only the newest of them", d->sent.max);
    return HR_OK;
}

/* Reads the status tail for the batch's partitions not known yet. */
static hr_t learn_tails(dispatch_t *d, const bus_msg_t *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        int32_t p = msgs[i].partition;
        part_slot(d, p);
        if (d->tail_known[p]) continue;
        bool all = false;
        hr_t r = d->sent.max ? read_tail(d, p, &all) : HR_OK;
        if (r != HR_OK) return r;
        d->tail_known[p] = true;
        if (all) /* every status partition was read: good for every input partition */
            for (int32_t q = 0; q < d->nparts; q++) d->tail_known[q] = true;
    }
    return HR_OK;
}

/* The status record of n. Attempt 1 may be the notification's first status
 * (fan-out produced no status for it), so it carries the content the store
 * keeps; a retry's (attempt > 1) follows the first attempt's, which did.
 * Gathered: outbuf_flush() produces a slice's records at once. */
static hr_t emit(dispatch_t *d, notif_t *n, bus_batch_t *batch)
{
    size_t at = outbuf_mark(&d->out);
    hr_t r = notif_encode_status(n, n->attempt <= 1, outbuf_bytes(&d->out));
    if (r != HR_OK) {
        outbuf_undo(&d->out, at);
        return r;
    }
    return outbuf_commit(&d->out, TOPIC_STATUS, n->user_id.p, n->user_id.n, at, batch);
}

/* Submits send[0..ns) and waits until each has its completion. */
static void deliver(dispatch_t *d, int from, int to)
{
    d->ndone = 0;
    for (int i = from; i < to; i++) {
        hr_t r;
        while ((r = provider_set_submit(d->providers, d->send[i], &d->res[i], (void *)(intptr_t)i)) ==
               HR_AGAIN)
            take_completions(d, COMPLETION_WAIT_MS); /* full: make room */
        if (r != HR_OK) {
            send_result_set(&d->res[i], SEND_RETRY, 0, "provider refused: %s", hr_str(r));
            d->ndone++;
        }
    }
    bool told = false;
    while (d->ndone < to - from) {
        take_completions(d, COMPLETION_WAIT_MS);
        if (!told && atomic_load(&d->app->stopping)) {
            log_info(names_for_channel(d->ch)->stage, "stopping: waiting for %d provider requests in flight",
                     to - from - d->ndone);
            told = true;
        }
    }
}

/* A retriable failure of x (attempt k, counted from 1): to retry tier k-1
 * with attempt k+1, or, after the last tier, false (the caller
 * dead-letters it). The record produced is the notification as it came,
 * with the new attempt and due time. */
static hr_t to_retry_tier(dispatch_t *d, const notif_t *x, const send_result_t *res, bool *queued,
                          bus_batch_t *batch)
{
    int tier = x->attempt > 0 ? x->attempt - 1 : 0;
    *queued = false;
    if (tier >= RETRY_TIERS) return HR_OK;
    notif_t y = *x;
    int64_t wait = d->delays[tier];
    if (res->retry_after_ms > wait) wait = res->retry_after_ms;
    y.attempt = (uint16_t)(tier + 2);
    y.due_at_ms = hclock_now_ms() + wait;
    buf_reset(&d->enc_retry);
    hr_t r = notif_encode(&y, &d->enc_retry);
    if (r == HR_OK)
        r = stage_produce(d->app, names_for_channel(d->ch)->retry_topic[tier], -1, y.user_id.p,
                          y.user_id.n, d->enc_retry.data, d->enc_retry.len, batch);
    if (r == HR_OK) {
        *queued = true;
        METRIC_INC(notifs_retried);
    }
    return r;
}

/* The provider says the address is dead: stop using it. A store failure
 * only costs a later attempt (logged), never the notification. */
static void invalidate_address(dispatch_t *d, const notif_t *x, const char *reason)
{
    /* A push record from before fan-out made one notification per device
     * lists every device ("apns:a,fcm:b"); invalidating it would remove
     * them all for one dead token: leave such an address alone. */
    if (d->ch == CH_PUSH && memchr(x->address.p, ',', x->address.n)) return;
    char *user = xstrndup(x->user_id.p, x->user_id.n);
    char *addr = xstrndup(x->address.p, x->address.n);
    hr_t r = store_address_invalidate(d->app->store, user, d->ch, addr, reason);
    if (r != HR_OK && r != HR_NOTFOUND)
        log_warn(names_for_channel(d->ch)->stage, "cannot mark %s's address invalid: %s", user, hr_str(r));
    else
        METRIC_INC(addresses_invalidated);
    free(user);
    free(addr);
}

/* Produces the status (and DLQ record) for send[i] from its result. In a
 * batch with a FATAL result only deliveries are recorded (see the top). */
static hr_t record(dispatch_t *d, int i, bool fatal, int64_t at, bus_batch_t *batch)
{
    app_t *app = d->app;
    notif_t *x = &d->notifs[i];
    send_result_t *res = &d->res[i];
    const char *by = names_for_channel(d->ch)->stage;
    hr_t r = HR_OK;
    if (fatal && res->cls != SEND_OK) return HR_OK;
    switch (res->cls) {
    case SEND_OK:
        if (d->keyed[i]) d->addq[d->naddq++] = d->keys[i]; /* into `sent` after the slice's loop */
        lifecycle_transition(x, ST_SENT, at, HSTR(res->msg_id), by);
        METRIC_INC(notifs_sent);
        METRIC_ADD_AT(delivery_attempts, METRIC_CHANNEL_RESULT(d->ch, METRIC_RESULT_SENT), 1);
        break;
    case SEND_RETRY:
    case SEND_THROTTLED: {
        bool queued = false;
        r = to_retry_tier(d, x, res, &queued, batch);
        if (r != HR_OK) return r;
        METRIC_INC(notifs_failed);
        METRIC_ADD_AT(delivery_attempts,
                      METRIC_CHANNEL_RESULT(d->ch, queued ? METRIC_RESULT_FAILED : METRIC_RESULT_DEAD), 1);
        if (queued) {
            lifecycle_transition(x, ST_FAILED, at, HSTR(res->error), by);
            break;
        }
        /* "retries exhausted after N attempts: <last error>" (cut to fit) */
        char why[sizeof(res->error)];
        memcpy(why, res->error, sizeof(why));
        int l = snprintf(res->error, sizeof(res->error), "retries exhausted after %u attempts: ",
                         (unsigned)x->attempt);
        if (l > 0 && (size_t)l < sizeof(res->error)) {
            size_t room = sizeof(res->error) - (size_t)l - 1, wl = strnlen(why, sizeof(why) - 1);
            if (wl > room) wl = room;
            memcpy(res->error + l, why, wl);
            res->error[(size_t)l + wl] = '\0';
        }
        lifecycle_transition(x, ST_DEAD, at, HSTR(res->error), by);
        r = stage_dead_letter(app, d->src[i], by, res->error, batch);
        break;
    }
    case SEND_PERMANENT:
        if (res->address_invalid) {
            invalidate_address(d, x, res->error);
            size_t l = strlen(res->error);
            snprintf(res->error + l, sizeof(res->error) - l, " (address invalid)");
        }
        lifecycle_transition(x, ST_DEAD, at, HSTR(res->error), by);
        METRIC_INC(notifs_failed);
        METRIC_ADD_AT(delivery_attempts, METRIC_CHANNEL_RESULT(d->ch, METRIC_RESULT_DEAD), 1);
        r = stage_dead_letter(app, d->src[i], by, res->error, batch);
        break;
    case SEND_FATAL:
    case SEND__COUNT:
        return HR_OK;
    }
    if (r == HR_OK) r = emit(d, x, batch);
    return r;
}

/* ------------------------------------------------------------ policy chain */

/* Pauses every partition of the batch until until_ms. */
static void pause_batch(stage_ctx_t *cx, const bus_msg_t *msgs, int n, int64_t until)
{
    for (int i = 0; i < n && cx; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = msgs[j].partition == msgs[i].partition;
        if (!seen) stage_pause(cx, msgs[i].topic, msgs[i].partition, until);
    }
}

/* Once per batch: when a provider instance's breaker is open, the batch's
 * partitions pause until its cool-down ends (returns true). A channel
 * with several instances (an SMS pool) pauses while any of them is open:
 * one look per batch, before anything of the batch is acted on. */
static bool breaker_holds(dispatch_t *d, stage_ctx_t *cx, const bus_msg_t *msgs, int n, int64_t now)
{
    int64_t until = 0;
    for (int i = 0; i < provider_set_count(d->providers); i++) {
        breaker_t *b = provider_set_breaker(d->providers, i);
        if (breaker_state(b, now) == BREAKER_OPEN) {
            int64_t t = breaker_retry_at(b, now);
            if (t > until) until = t;
        }
    }
    if (until == 0) return false;
    pause_batch(cx, msgs, n, until);
    return true;
}

/* Has m's partition delivered again from m on, paused until until_ms.
 * Without a stage context (direct calls in tests) there is nothing to
 * rewind: false, the record goes on. */
static bool hold(stage_ctx_t *cx, const bus_msg_t *m, int64_t until)
{
    if (!cx) return false;
    if (stage_rewind(cx, m->topic, m->partition, m->offset) != HR_OK) return false;
    stage_pause(cx, m->topic, m->partition, until);
    return true;
}

typedef enum admit { ADMIT_SEND, ADMIT_DONE, ADMIT_HELD } admit_t;

/* Quiet hours, breaker probe slot and token for x (send slot `slot`).
 * *now is the batch's clock, moved on only after a short token wait. */
static admit_t admit(dispatch_t *d, stage_ctx_t *cx, notif_t *x, const bus_msg_t *m, int slot,
                     int64_t *now, bus_batch_t *batch, hr_t *r)
{
    /* quiet hours: not for critical; no window, no ICU call */
    if (x->priority != PRIO_CRITICAL && d->quiet && x->quiet_start_min != NOTIF_QUIET_NONE &&
        x->quiet_start_min != x->quiet_end_min) {
        bool inside = false;
        int64_t ends = 0;
        hr_t q = quiet_check(d->quiet, x->timezone.p, x->timezone.n, x->quiet_start_min, x->quiet_end_min,
                             *now, &inside, &ends);
        if (q == HR_NOTFOUND)
            log_debug(names_for_channel(d->ch)->stage, "unknown time zone '%.*s': quiet hours in UTC",
                      (int)x->timezone.n, x->timezone.p);
        if (inside) {
            *r = schedule_defer(d->app, x, ends, batch);
            return ADMIT_DONE;
        }
    }
    int pi = provider_set_route(d->providers, x);
    breaker_t *b = provider_set_breaker(d->providers, pi);
    bool probe = breaker_state(b, *now) == BREAKER_HALF_OPEN;
    if (!breaker_allow(b, *now)) {
        if (hold(cx, m, breaker_retry_at(b, *now))) return ADMIT_HELD;
        probe = false;
    }
    bucket_t *bk = provider_set_bucket(d->providers, pi);
    int64_t w = bucket_take(bk, *now, 1);
    if (w > 0 && w <= BUCKET_SHORT_WAIT_MS) {
        /* a short wait in place: nothing of this dispatcher is in flight
         * between batches and the bucket is the channel's own, so this
         * holds back no one who could go */
        struct timespec ts = {0, (long)w * 1000000L};
        nanosleep(&ts, NULL);
        *now = hclock_now_ms();
        w = bucket_take(bk, *now, 1);
    }
    if (w > 0 && hold(cx, m, *now + w)) {
        if (probe) breaker_cancel(b, 1);
        return ADMIT_HELD;
    }
    d->pidx[slot] = pi;
    d->probe[slot] = probe;
    return ADMIT_SEND;
}

/* The rate limit for send[0..*ns), one check for the batch (critical ones
 * and retries skip it). Those over the limit get "rate_limited" and give their token
 * and probe slot back; the rest are moved down to stay contiguous. */
static hr_t rate_limit(dispatch_t *d, int *ns, int64_t now, bus_batch_t *batch)
{
    int nr = 0;
    for (int i = 0; i < *ns && d->rl; i++) {
        /* critical skips it; a retry passed it at its first attempt, and a
         * record offered again (a batch rewound, a replay) was counted when
         * it was first offered: counting it again could rate-limit a
         * notification that was never sent */
        if (d->notifs[i].priority == PRIO_CRITICAL || d->notifs[i].attempt > 1 || d->again[i]) continue;
        d->reqs[nr] = (ratelimit_req_t){.partition = d->src[i]->partition, .user = d->notifs[i].user_id.p,
                                        .user_len = d->notifs[i].user_id.n, .allowed = true};
        d->req_of[nr++] = i;
    }
    if (nr == 0) return HR_OK;
    if (ratelimit_check_batch(d->rl, d->reqs, nr, now) != HR_OK) return HR_OK; /* fails open */
    const char *by = names_for_channel(d->ch)->stage;
    hr_t r = HR_OK;
    int w = 0, k = 0;
    for (int i = 0; i < *ns; i++) {
        bool denied = false;
        if (k < nr && d->req_of[k] == i) denied = !d->reqs[k++].allowed;
        if (denied) {
            bucket_refund(provider_set_bucket(d->providers, d->pidx[i]), 1);
            if (d->probe[i]) breaker_cancel(provider_set_breaker(d->providers, d->pidx[i]), 1);
            lifecycle_transition(&d->notifs[i], ST_RATE_LIMITED, now, HSTR("over the recipient's rate limit"),
                                 by);
            if (r == HR_OK) r = emit(d, &d->notifs[i], batch);
            continue;
        }
        if (w != i) {
            d->notifs[w] = d->notifs[i];
            d->src[w] = d->src[i];
            d->keys[w] = d->keys[i];
            d->keyed[w] = d->keyed[i];
            d->pidx[w] = d->pidx[i];
            d->probe[w] = d->probe[i];
            d->again[w] = d->again[i];
        }
        d->send[w] = &d->notifs[w];
        w++;
    }
    *ns = w;
    return r;
}

/* Each result to its instance's breaker: a bad address (PERMANENT) is a
 * healthy answer; FATAL is a configuration matter (its own pause). */
static void breaker_results(dispatch_t *d, int from, int to)
{
    int64_t now = hclock_now_ms();
    for (int i = from; i < to; i++) {
        breaker_t *b = provider_set_breaker(d->providers, d->pidx[i]);
        switch (d->res[i].cls) {
        case SEND_OK:
        case SEND_PERMANENT: breaker_record(b, now, true); break;
        case SEND_RETRY:
        case SEND_THROTTLED: breaker_record(b, now, false); break;
        case SEND_FATAL:
        case SEND__COUNT:
            if (d->probe[i]) breaker_cancel(b, 1);
            break;
        }
    }
}

/* A notification id herald can key on and send as an idempotency key:
 * 1..64 bytes of printable ASCII without spaces (herald's own are 32 hex
 * digits). Anything else would share the empty key or split a header. */
static bool id_sane(hstr_t id)
{
    if (id.n == 0 || id.n > 64) return false;
    for (size_t i = 0; i < id.n; i++)
        if ((unsigned char)id.p[i] <= 0x20 || (unsigned char)id.p[i] >= 0x7f) return false;
    return true;
}

static hr_t dispatch_batch(dispatch_t *d, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                           bus_batch_t *batch)
{
    app_t *app = d->app;
    int ns = 0;
    hr_t r = HR_OK;

    if (!d->providers) return HR_ERR; /* the stage loop backs off and retries */
    learn_watermarks(d, msgs, n);
    int64_t now = hclock_now_ms();
    if ((r = learn_tails(d, msgs, n)) != HR_OK) return r;
    if (breaker_holds(d, cx, msgs, n, now)) return HR_LATER; /* lag builds in the bus */
    if (d->rl) ratelimit_tick(d->rl, now);
    /* Decode; skip what is known as sent (or twice in this batch); collect
     * the ids to ask the store about. */
    sent_ids_clear(&d->in_batch);
    digest_stage_begin(d->digests);
    int nd = 0, nask = 0;
    /* First every record is decoded and its id parsed (once, for the set
     * operations below), then the whole batch's ids are looked up in the
     * sent-id set together (sent_ids_has_keys: that table is large and
     * probed at random, and lookups in groups overlap their misses). The
     * loop below only adds to in_batch, so `sent` answers the same there. */
    for (int i = 0; i < n; i++) {
        notif_t *x = &d->notifs[i];
        d->decoded[i] = notif_decode(msgs[i].value, msgs[i].value_len, x) == HR_OK && x->kind == REC_NOTIFICATION;
        d->keyed[i] = d->decoded[i] && sent_key_parse(x->notification_id, &d->keys[i]);
        if (!d->keyed[i]) d->keys[i] = (sent_key_t){0, 0}; /* looked up, answer unused */
    }
    sent_ids_has_keys(&d->sent, d->keys, (size_t)n, d->was_sent);
    for (int i = 0; i < n && r == HR_OK; i++) {
        int64_t *below = part_slot(d, msgs[i].partition);
        bool maybe_seen = *below < 0 || msgs[i].offset < *below;
        if (*below >= 0 && msgs[i].offset + 1 > *below) *below = msgs[i].offset + 1;
        if (!d->decoded[i]) {
            r = stage_dead_letter(app, &msgs[i], names_for_channel(d->ch)->stage, "undecodable notification",
                                  batch);
            continue;
        }
        if (nd != i) { /* compact: records before i that were dropped free their slots */
            d->notifs[nd] = d->notifs[i];
            d->keys[nd] = d->keys[i];
            d->keyed[nd] = d->keyed[i];
        }
        notif_t *x = &d->notifs[nd];
        if (!id_sane(x->notification_id)) {
            r = stage_dead_letter(app, &msgs[i], names_for_channel(d->ch)->stage,
                                  "notification_id empty, too long or not printable ASCII", batch);
            continue;
        }
        sent_key_t *key = &d->keys[nd];
        bool keyed = d->keyed[nd];
        if (keyed && sent_ids_has_key(&d->in_batch, key)) {
            METRIC_INC(notifs_skipped_sent); /* its first copy in this batch decides */
            continue;
        }
        if (keyed && d->was_sent[i]) { /* sent_ids_has_key(&d->sent, key), looked up above */
            /* Sent before (by this worker, or recorded on the status topic):
             * the provider is not called again, but the status is produced
             * again, in case the first one never reached the bus (a batch
             * whose outputs failed is offered again); the store's rank rule
             * keeps one "sent". */
            log_debug(names_for_channel(d->ch)->stage, "%.*s already sent; skipped",
                      (int)x->notification_id.n, x->notification_id.p);
            METRIC_INC(notifs_skipped_sent);
            lifecycle_transition(x, ST_SENT, now, (hstr_t){NULL, 0}, names_for_channel(d->ch)->stage);
            r = emit(d, x, batch);
            continue;
        }
        if (keyed) sent_ids_add_key(&d->in_batch, key);
        /* a retried, scheduled or redriven record may come more than once
         * (the scheduler and the retry tiers deliver at least once): ask */
        if (x->attempt > 1 || x->due_at_ms > 0) maybe_seen = true;
        d->maybe_seen[nd] = maybe_seen && x->notification_id.n > 0;
        if (d->maybe_seen[nd]) d->ask[nask++] = x->notification_id;
        d->src[nd] = &msgs[i];
        nd++;
    }
    if (r != HR_OK) return r;
    if (nask > 0 && (r = store_notif_sent_batch(app->store, d->ask, nask, d->answer)) != HR_OK) return r;
    for (int i = 0, k = 0; i < nd; i++) {
        if (d->maybe_seen[i] && d->answer[k++]) {
            log_debug(names_for_channel(d->ch)->stage, "%.*s already sent; skipped",
                      (int)d->notifs[i].notification_id.n, d->notifs[i].notification_id.p);
            METRIC_INC(notifs_skipped_sent);
            continue;
        }
        /* held back by the policy chain (a rewind of its partition) */
        if (cx && stage_rewound(cx, d->src[i])) continue;
        if (d->notifs[i].due_at_ms > now) { /* scheduled for later: kept in the store until due */
            if ((r = schedule_defer(app, &d->notifs[i], d->notifs[i].due_at_ms, batch)) != HR_OK) return r;
            continue;
        }
        /* a digest's member is held (added to its digest at the end of the
         * batch); its flush token becomes the digest's notification */
        digest_take_t dt;
        if ((r = digest_stage_take(d->digests, &d->notifs[i], d->src[i], now, batch, &dt)) != HR_OK) return r;
        if (dt != DIGEST_TAKE_SEND) continue;
        /* compact: notifs[ns] and src[ns] are the ns-th record to send */
        if (ns != i) {
            d->notifs[ns] = d->notifs[i];
            d->src[ns] = d->src[i];
            d->keys[ns] = d->keys[i];
            d->keyed[ns] = d->keyed[i];
        }
        /* the policy chain: quiet hours, breaker probe slot, token */
        if (admit(d, cx, &d->notifs[ns], d->src[ns], ns, &now, batch, &r) != ADMIT_SEND) {
            if (r != HR_OK) return r;
            continue;
        }
        /* offered to this worker before (its batch was rewound or held) */
        int64_t *off = &d->offered[d->src[ns]->partition];
        d->again[ns] = d->src[ns]->offset < *off;
        if (d->src[ns]->offset + 1 > *off) *off = d->src[ns]->offset + 1;
        d->send[ns] = &d->notifs[ns];
        ns++;
    }
    if ((r = digest_stage_end(d->digests, now, batch)) != HR_OK) return r;
    if (ns > 0) r = rate_limit(d, &ns, now, batch);
    if (r != HR_OK || ns == 0) return r;

    /* In slices of dispatch.status_every: the status records of a slice are
     * written before the provider sees the next one, so a crash repeats at
     * most one slice of provider calls. A FATAL result ends the batch after
     * its slice: in that slice only the deliveries are recorded (earlier
     * slices are recorded in full), and the batch is offered again. */
    int every = app->cfg->dispatch_status_every > 0 ? app->cfg->dispatch_status_every : ns;
    int fatal = -1;
    for (int from = 0; from < ns && r == HR_OK && fatal < 0;) {
        int to = ns - from > every ? from + every : ns;
        deliver(d, from, to);
        breaker_results(d, from, to);
        hist_merge(METRIC_HIST(delivery_latency, d->ch), &d->lat);
        for (int i = from; i < to && fatal < 0; i++)
            if (d->res[i].cls == SEND_FATAL) fatal = i;
        int64_t at = hclock_now_ms(); /* the slice's results: one clock read, not one per record */
        d->naddq = 0;
        for (int i = from; i < to && r == HR_OK; i++) r = record(d, i, fatal >= 0, at, batch);
        sent_ids_add_keys(&d->sent, d->addq, (size_t)d->naddq); /* in order, as record() met them */
        d->naddq = 0;
        hr_t fr = outbuf_flush(&d->out); /* the slice's status records */
        if (r == HR_OK) r = fr;
        from = to;
        if (r != HR_OK) break;
        /* The notifications are out; until their status records are
         * written, a crash would send them again: have the bus write now
         * rather than at its next batching interval. */
        bus_flush(app->bus, 0);
        if (from < ns && fatal < 0) r = bus_batch_wait(app->bus, batch, -1);
    }
    if (r == HR_OK && fatal >= 0) {
        /* The provider is misconfigured: nothing more will pass until an
         * operator fixes it. Nothing is dead-lettered or marked: the
         * batch's partitions pause for FATAL_PAUSE_MS and the batch is
         * offered again after it ("not now", no error back-off); the store
         * check skips what did go out. The next attempt is the probe. */
        pause_batch(cx, msgs, n, hclock_now_ms() + FATAL_PAUSE_MS);
        log_error(names_for_channel(d->ch)->stage, "provider failure, batch of %d held back for %d s: %s", ns,
                  FATAL_PAUSE_MS / 1000, d->res[fatal].error);
        r = HR_LATER;
    }
    return r;
}

static hr_t dispatch_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                             bus_batch_t *batch)
{
    dispatch_t *d = state;
    hr_t r = dispatch_batch(d, cx, msgs, n, batch);
    /* what was gathered and not produced yet (statuses of skipped, deferred
     * or rate-limited records; all of them after a failure, as record by
     * record they would be on the bus already) */
    hr_t fr = outbuf_flush(&d->out);
    return r == HR_OK ? fr : r;
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
        .max_depth = 1,
        .arg = (void *)(intptr_t)channel,
    };
}
