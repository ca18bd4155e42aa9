/*
 * digest.c - dispatch's side of digests (stage/digest.h, model/digest.h).
 *
 * DESIGN
 *  Members of a batch are queued (their records by value: the strings
 *  point into the polled records) and added to the store in one
 *  transaction at the end of the batch, or earlier when a flush token comes
 *  (so that the members before it in the partition are counted first). The
 *  store decides, under its writer lock, which digest each joins; a digest
 *  that opens puts its flush token in the scheduled table in the same
 *  transaction. The scheduler puts the token on notifications-<channel>
 *  keyed by the user when the window ends; this worker (the owner of the
 *  user's partition) closes the digest in the store - members after that
 *  open the next one - and sends one notification whose id is the digest's
 *  (the token's), with title and body spliced. A flush repeated after a
 *  crash reads the same closed digest and renders the same text under the
 *  same id; the token has a due time, so dispatch asks the store whether it
 *  was sent before.
 */
#include "stage/digest.h"

#include "core/buf.h"
#include "core/log.h"
#include "model/digest.h"
#include "model/lifecycle.h"
#include "stage/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TITLE_MAX 4096          /* fan-out's limits */
#define BODY_MAX (64 * 1024)

typedef struct queued {
    notif_t x;                  /* the member; strings in the polled record */
    const bus_msg_t *m;
    digest_meta_t meta;
} queued_t;

typedef struct text_pair {
    buf_t title, body;
} text_pair_t;

struct digest_stage {
    app_t *app;
    channel_t ch;
    bool off;                   /* the store has no digests: members go out one by one */
    int cap;
    queued_t *q;
    int nq;
    digest_add_t *adds;
    text_pair_t *texts;         /* one per flush of the batch */
    int ntexts;
    buf_t enc;
};

digest_stage_t *digest_stage_new(app_t *app, channel_t ch, int cap)
{
    digest_stage_t *ds = xcalloc(1, sizeof(*ds));
    ds->app = app;
    ds->ch = ch;
    ds->cap = cap;
    ds->q = xcalloc((size_t)cap, sizeof(*ds->q));
    ds->adds = xcalloc((size_t)cap, sizeof(*ds->adds));
    ds->texts = xcalloc((size_t)cap, sizeof(*ds->texts));
    for (int i = 0; i < cap; i++) {
        buf_init(&ds->texts[i].title, TITLE_MAX);
        buf_init(&ds->texts[i].body, BODY_MAX);
    }
    buf_init(&ds->enc, 0);
    ds->off = store_digest_add_batch(app->store, 0, NULL, 0) == HR_DECLINED;
    if (ds->off)
        log_info(names_for_channel(ch)->stage, "the store keeps no digests: digest members are delivered one by one");
    return ds;
}

static void queue_clear(digest_stage_t *ds)
{
    for (int i = 0; i < ds->nq; i++) digest_meta_clear(&ds->q[i].meta);
    ds->nq = 0;
}

void digest_stage_free(digest_stage_t *ds)
{
    if (!ds) return;
    queue_clear(ds);
    for (int i = 0; i < ds->cap; i++) {
        buf_release(&ds->texts[i].title);
        buf_release(&ds->texts[i].body);
    }
    free(ds->texts);
    free(ds->q);
    free(ds->adds);
    buf_release(&ds->enc);
    free(ds);
}

void digest_stage_begin(digest_stage_t *ds)
{
    queue_clear(ds);
    ds->ntexts = 0;
}

/* Adds the queued members and produces their statuses. */
static hr_t add_queued(digest_stage_t *ds, int64_t now, bus_batch_t *batch)
{
    if (ds->nq == 0) return HR_OK;
    for (int i = 0; i < ds->nq; i++) {
        queued_t *e = &ds->q[i];
        ds->adds[i] = (digest_add_t){
            .user_id = e->x.user_id, .channel = e->x.channel, .dkey = HSTR(e->meta.dkey),
            .window_ms = e->meta.window_ms, .notification_id = e->x.notification_id,
            .actor = HSTR(e->meta.actor), .rec = e->m->value, .rec_len = e->m->value_len,
        };
    }
    hr_t r = store_digest_add_batch(ds->app->store, now, ds->adds, ds->nq);
    const char *by = names_for_channel(ds->ch)->stage;
    for (int i = 0; i < ds->nq && r == HR_OK; i++) {
        notif_t st = ds->q[i].x;
        char why[64];
        snprintf(why, sizeof(why), "into %s", ds->adds[i].digest_id);
        st.metadata = (hstr_t){NULL, 0};
        lifecycle_transition(&st, ST_DIGESTED, now, HSTR(why), by);
        buf_reset(&ds->enc);
        if ((r = notif_encode(&st, &ds->enc)) != HR_OK) break;
        r = stage_produce(ds->app, TOPIC_STATUS, -1, st.user_id.p, st.user_id.n, ds->enc.data, ds->enc.len,
                          batch);
        if (r == HR_OK && ds->adds[i].added) METRIC_INC(digest_members);
    }
    queue_clear(ds);
    return r;
}

/* Rewrites the token x into the digest's notification. */
static hr_t flush(digest_stage_t *ds, notif_t *x, digest_meta_t *meta, int64_t now, bus_batch_t *batch,
                  digest_take_t *what)
{
    hr_t r = add_queued(ds, now, batch);
    if (r != HR_OK) return r;
    char id[65];
    snprintf(id, sizeof(id), "%.*s", (int)x->notification_id.n, x->notification_id.p);
    digest_info_t di;
    r = store_digest_close(ds->app->store, id, &di);
    if (r == HR_NOTFOUND) {
        log_info(names_for_channel(ds->ch)->stage, "digest %s is gone (erased or purged); its flush is dropped", id);
        *what = DIGEST_TAKE_DROP;
        return HR_OK;
    }
    if (r != HR_OK) return r;
    text_pair_t *tp = &ds->texts[ds->ntexts++];
    buf_reset(&tp->title);
    buf_reset(&tp->body);
    digest_vals_t v = {.count = di.count, .first_actor = di.first_actor, .last_actor = di.last_actor};
    digest_splice(x->title, &meta->title, &v, &tp->title); /* cut at the limit */
    digest_splice(x->body, &meta->body, &v, &tp->body);
    digest_info_clear(&di);
    x->title = (hstr_t){tp->title.data ? tp->title.data : "", tp->title.len};
    x->body = (hstr_t){tp->body.data ? tp->body.data : "", tp->body.len};
    x->metadata = (hstr_t){NULL, 0};
    METRIC_INC(digests_flushed);
    log_debug(names_for_channel(ds->ch)->stage, "digest %s flushed: %lld member(s)", id, (long long)v.count);
    return HR_OK;
}

hr_t digest_stage_take(digest_stage_t *ds, notif_t *x, const bus_msg_t *m, int64_t now,
                       bus_batch_t *batch, digest_take_t *what)
{
    *what = DIGEST_TAKE_SEND;
    if (x->metadata.n == 0 || ds->off) return HR_OK;
    digest_meta_t meta;
    hr_t r = digest_meta_read(x->metadata, &meta);
    if (r != HR_OK) {
        if (r == HR_INVALID)
            log_debug(names_for_channel(ds->ch)->stage, "%.*s: malformed digest metadata; sent as it is",
                      (int)x->notification_id.n, x->notification_id.p);
        digest_meta_clear(&meta);
        return HR_OK;
    }
    if (meta.kind == DIGEST_FLUSH) {
        r = flush(ds, x, &meta, now, batch, what);
        digest_meta_clear(&meta);
        return r;
    }
    if (x->user_id.n == 0 || !meta.dkey[0]) { /* not fan-out's: never let it hold the partition */
        digest_meta_clear(&meta);
        return HR_OK;
    }
    if (ds->nq == ds->cap) { /* cannot be: one queued per record of the batch */
        digest_meta_clear(&meta);
        return HR_ERR;
    }
    queued_t *e = &ds->q[ds->nq++];
    e->x = *x;
    e->m = m;
    e->meta = meta;
    *what = DIGEST_TAKE_HELD;
    return HR_OK;
}

hr_t digest_stage_end(digest_stage_t *ds, int64_t now, bus_batch_t *batch)
{
    return add_queued(ds, now, batch);
}
