/*
 * fanout.c - raw-events -> notifications-<channel> (+ status for
 * suppressed ones, DLQ for bad records).
 *
 * For each event: parse and validate (bad -> DLQ), dedupe by event_id
 * (a second publish of the same id is dropped; re-processing the same record
 * after a crash is not a duplicate and fans out again, producing the same
 * notification ids), resolve the audience page by page, and for each
 * recipient and channel render the template in the user's locale, honour the
 * per-channel and per-category opt-outs, and produce the notification keyed
 * by the receiver's user id.
 *
 * Runs on the stage worker's thread; state is per worker.
 */
#include "stage/stage.h"

#include "core/buf.h"
#include "core/log.h"
#include "model/event.h"
#include "model/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIENCE_PAGE 1000
#define TMPL_CACHE 16

typedef struct tmpl_slot {
    int channel;
    char locale[32];
    bool found;
    template_rec_t rec;
} tmpl_slot_t;

typedef struct fanout {
    app_t *app;
    buf_t enc;
    buf_t title;
    buf_t body;
    buf_t addr;
    tmpl_slot_t cache[TMPL_CACHE]; /* per event: (channel, locale) -> template */
    int ncache;
} fanout_t;

static void *fanout_new(app_t *app, const stage_def_t *def, int worker)
{
    fanout_t *f = xcalloc(1, sizeof(*f));
    f->app = app;
    buf_init(&f->enc, 0);
    buf_init(&f->title, 4096);
    buf_init(&f->body, 64 * 1024);
    buf_init(&f->addr, 0);
    return f;
}

static void cache_clear(fanout_t *f)
{
    for (int i = 0; i < f->ncache; i++)
        if (f->cache[i].found) template_rec_clear(&f->cache[i].rec);
    f->ncache = 0;
}

static void fanout_free(void *state)
{
    fanout_t *f = state;
    cache_clear(f);
    buf_release(&f->enc);
    buf_release(&f->title);
    buf_release(&f->body);
    buf_release(&f->addr);
    free(f);
}

static const template_rec_t *template_for(fanout_t *f, const char *type, int ch,
                                          const char *locale)
{
    for (int i = 0; i < f->ncache; i++)
        if (f->cache[i].channel == ch && strcmp(f->cache[i].locale, locale) == 0)
            return f->cache[i].found ? &f->cache[i].rec : NULL;
    if (f->ncache == TMPL_CACHE) cache_clear(f);
    tmpl_slot_t *s = &f->cache[f->ncache++];
    memset(s, 0, sizeof(*s));
    s->channel = ch;
    snprintf(s->locale, sizeof(s->locale), "%s", locale);
    s->found = store_template_get(f->app->store, type, (channel_t)ch, locale, &s->rec) == HR_OK;
    return s->found ? &s->rec : NULL;
}

/* Emits a status record (suppressed / failed) for a notification that will
 * not be dispatched, so its fate is queryable. */
static hr_t emit_status(fanout_t *f, notif_t *n, notif_status_t st, const char *why,
                        bus_batch_t *batch)
{
    n->kind = 2;
    n->status = st;
    n->status_at_ms = hclock_now_ms();
    n->error = HSTR(why);
    buf_reset(&f->enc);
    notif_encode(n, &f->enc);
    if (st == ST_SUPPRESSED) atomic_fetch_add(&f->app->notifs_suppressed, 1);
    return stage_produce(f->app, TOPIC_STATUS, -1, n->user_id.p, n->user_id.n, f->enc.data,
                         f->enc.len, batch);
}

/* Fills f->addr with the channel address of the user; false when none. */
static bool address_for(fanout_t *f, const user_t *u, int ch, const char **platform)
{
    buf_reset(&f->addr);
    *platform = "";
    switch (ch) {
    case CH_PUSH:
        for (int i = 0; i < u->ndevices; i++) {
            if (i) buf_append(&f->addr, ",", 1);
            buf_printf(&f->addr, "%s:%s", u->devices[i].platform, u->devices[i].token);
        }
        if (u->ndevices) *platform = u->devices[0].platform;
        break;
    case CH_SMS:
        if (u->phone) buf_append_str(&f->addr, u->phone);
        break;
    case CH_EMAIL:
        if (u->email) buf_append_str(&f->addr, u->email);
        break;
    case CH_INAPP: buf_append_str(&f->addr, u->user_id); break;
    case CH_WEBHOOK:
        if (u->webhook_url) buf_append_str(&f->addr, u->webhook_url);
        break;
    }
    buf_cstr(&f->addr);
    return f->addr.len > 0;
}

static hr_t fan_to_user(fanout_t *f, const event_t *ev, unsigned mask, const char *user_id,
                        bus_batch_t *batch)
{
    app_t *app = f->app;
    user_t u;
    pref_t *prefs = NULL;
    int nprefs = 0;
    hr_t r = store_user_get(app->store, user_id, &u);
    bool known = r == HR_OK;
    if (r != HR_OK && r != HR_NOTFOUND) return r;
    if (known && store_prefs_get(app->store, user_id, &prefs, &nprefs) != HR_OK) {
        user_clear(&u);
        return HR_ERR;
    }
    const char *category = ev->category ? ev->category : "default";
    const char *locale = known && u.locale ? u.locale : "en";
    r = HR_OK;
    for (int ch = 0; ch < CH__COUNT && r == HR_OK; ch++) {
        if (!(mask & (1u << ch))) continue;
        char nid[33];
        notif_make_id(HSTR(ev->event_id), HSTR(user_id), (channel_t)ch, nid);
        notif_t n = {
            .kind = 1,
            .channel = (channel_t)ch,
            .priority = ev->priority,
            .status = ST_PENDING,
            .attempt = 1,
            .created_at_ms = hclock_now_ms(),
            .accepted_at_us = ev->accepted_at_us,
            .notification_id = HSTR(nid),
            .event_id = HSTR(ev->event_id),
            .user_id = HSTR(user_id),
            .category = HSTR(category),
        };
        n.due_at_ms = n.created_at_ms;
        if (!known) {
            r = emit_status(f, &n, ST_FAILED, "unknown_user", batch);
            continue;
        }
        if (ev->priority != PRIO_CRITICAL && !prefs_allowed(prefs, nprefs, category, (channel_t)ch)) {
            r = emit_status(f, &n, ST_SUPPRESSED, "preference", batch);
            continue;
        }
        const char *platform;
        if (!address_for(f, &u, ch, &platform)) {
            r = emit_status(f, &n, ST_SUPPRESSED, "no_address", batch);
            continue;
        }
        const template_rec_t *t = template_for(f, ev->type, ch, locale);
        if (!t) {
            r = emit_status(f, &n, ST_FAILED, "no_template", batch);
            continue;
        }
        tmpl_ctx_t ctx = {.ev = ev, .user_id = user_id, .locale = locale};
        buf_reset(&f->title);
        buf_reset(&f->body);
        tmpl_render(t->title ? t->title : "", &ctx, &f->title); /* truncated at the limit */
        tmpl_render(t->body ? t->body : "", &ctx, &f->body);
        n.title = (hstr_t){f->title.data ? f->title.data : "", f->title.len};
        n.body = (hstr_t){f->body.data ? f->body.data : "", f->body.len};
        n.address = (hstr_t){f->addr.data, f->addr.len};
        n.platform = HSTR(platform);
        buf_reset(&f->enc);
        notif_encode(&n, &f->enc);
        r = stage_produce(app, topic_for_channel(ch), -1, user_id, strlen(user_id), f->enc.data,
                          f->enc.len, batch);
        if (r == HR_OK) atomic_fetch_add(&app->notifs_fanned_out, 1);
    }
    prefs_free(prefs, nprefs);
    if (known) user_clear(&u);
    return r;
}

typedef hr_t (*page_fn)(store_t *s, const char *key, const char *after, int limit, char ***ids,
                        int *n);

static hr_t fan_pages(fanout_t *f, const event_t *ev, unsigned mask, page_fn page,
                      const char *key, bus_batch_t *batch)
{
    char *after = NULL;
    hr_t r = HR_OK;
    for (;;) {
        char **ids = NULL;
        int n = 0;
        r = page(f->app->store, key, after, AUDIENCE_PAGE, &ids, &n);
        if (r != HR_OK) break;
        for (int i = 0; i < n && r == HR_OK; i++) r = fan_to_user(f, ev, mask, ids[i], batch);
        free(after);
        after = n > 0 ? xstrdup(ids[n - 1]) : NULL;
        ids_free(ids, n);
        if (r != HR_OK || n < AUDIENCE_PAGE) break;
    }
    free(after);
    return r;
}

static hr_t fanout_one(fanout_t *f, const bus_msg_t *m, bus_batch_t *batch)
{
    app_t *app = f->app;
    event_t ev;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));
    if (event_parse(m->value, m->value_len, &ev, &pb) != HR_OK) {
        char reason[512];
        snprintf(reason, sizeof(reason), "invalid event: %s: %s", pb.field, pb.detail);
        atomic_fetch_add(&app->events_rejected, 1);
        return stage_dead_letter(app, m, "fanout", reason, batch);
    }
    hr_t r;
    char pos[160];
    snprintf(pos, sizeof(pos), "%s/%d/%lld", m->topic, m->partition, (long long)m->offset);
    claim_t claim;
    r = store_event_claim(app->store, ev.event_id, pos, &claim);
    if (r != HR_OK) goto out;
    if (claim == CLAIM_DUP) {
        atomic_fetch_add(&app->events_duplicate, 1);
        log_debug("fanout", "duplicate event %s dropped", ev.event_id);
        goto out;
    }
    unsigned mask = ev.channels_mask;
    if (!mask) {
        r = store_template_channels(app->store, ev.type, &mask);
        if (r != HR_OK) goto out;
    }
    if (!mask) {
        char reason[300];
        snprintf(reason, sizeof(reason), "no templates for event type '%s'", ev.type);
        r = stage_dead_letter(app, m, "fanout", reason, batch);
        goto out;
    }
    cache_clear(f);
    switch (ev.audience) {
    case AUD_USERS: {
        size_t i;
        json_t *v;
        json_array_foreach(ev.audience_users, i, v)
        {
            r = fan_to_user(f, &ev, mask, json_string_value(v), batch);
            if (r != HR_OK) break;
        }
        break;
    }
    case AUD_TOPIC: r = fan_pages(f, &ev, mask, store_subs_page, ev.audience_topic, batch); break;
    case AUD_FOLLOWERS:
        r = fan_pages(f, &ev, mask, store_followers_page, ev.audience_followers_of, batch);
        break;
    }
out:
    event_clear(&ev);
    return r;
}

static hr_t fanout_process(void *state, const bus_msg_t *msgs, int n, bus_batch_t *batch)
{
    fanout_t *f = state;
    for (int i = 0; i < n; i++) {
        hr_t r = fanout_one(f, &msgs[i], batch);
        if (r != HR_OK) return r;
    }
    return HR_OK;
}

const stage_def_t fanout_stage = {
    .name = "fanout",
    .group = "fanout",
    .topic = TOPIC_RAW,
    .state_new = fanout_new,
    .state_free = fanout_free,
    .process = fanout_process,
};
