/*
 * fanout.c - raw-events -> notifications-<channel> (+ status for
 * suppressed ones, DLQ for bad records).
 *
 * For each event: decode a binary event record (what the API writes,
 * model/event.h) or parse and validate JSON (what outside producers write)
 * - bad -> DLQ, a record as its JSON rendition -, dedupe by event_id
 * (a second publish of the same id is dropped; re-processing the same record
 * after a crash is not a duplicate and fans out again, producing the same
 * notification ids), resolve the audience page by page, and for each
 * recipient and channel render the template in the user's locale (or the
 * event's inline content), honour the per-channel and per-category opt-outs
 * (policy/prefs.h: required categories, critical priority), and produce the
 * notification keyed by the receiver's user id. The record carries what the
 * dispatcher's policy needs: priority, the recipient's time zone and quiet
 * hours (from the recipient cache), and due_at (the event's send_at when in
 * the future, else 0 = now). It also carries the event's trace context
 * (traceparent: the event's own, else the Kafka record's header; an
 * invalid header is ignored, as W3C Trace Context asks of a receiver).
 *
 * Tenants (DESIGN §10, model/tenant.h): every id the event names - its
 * event id, type, audience users, topic, followers_of actor - is qualified
 * with the event's tenant before it touches the store or makes an id, so
 * dedupe, recipients, templates and notification ids of two tenants never
 * meet; the default tenant's ids stay as they are. Records carry the
 * qualified user and event ids; whatever shows them outside unqualifies.
 *
 * Per polled batch, not per event or per recipient, so that the store is
 * off the hot path:
 *  - every event of the batch is claimed in one store transaction;
 *  - recipients come from a bounded cache shared by the workers
 *    (recipients.h), filled from the store when the first worker starts;
 *    the misses of a batch (or of an audience page) are read in one store
 *    snapshot;
 *  - templates and each type's channel set are cached until a template
 *    changes (the store's change feed says when).
 * An event claimed before at the same position is being processed again
 * (after a crash or a failed batch): its notifications may already have been
 * delivered, so each is looked up in the store and skipped when recorded as
 * sent. The dispatchers then deliver only what is new.
 *
 * Runs on the stage worker's thread; state is per worker.
 */
#include "stage/stage.h"
#include "model/lifecycle.h"
#include "policy/prefs.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/sha256.h"
#include "model/digest.h"
#include "model/event.h"
#include "model/template.h"
#include "model/tenant.h"
#include "stage/recipients.h"
#include "stage/chunks.h"
#include "stage/outbuf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIENCE_PAGE 1000
#define TMPL_CACHE 64
/* The recipient cache, one per process and shared by the fan-out workers
 * (fanout.recipient_cache_bytes): ~150 bytes per user with one device, so
 * 128 MiB holds about 850 thousand users. Changes made through another
 * process are seen within RECIP_TTL_MS when the store's change feed does
 * not carry them; when it does (store_users_feed_exact: a SQLite file,
 * PostgreSQL with pg_listen) they are seen as the feed announces them and
 * the TTL is only a safety net, RECIP_TTL_EXACT_MS. The TTL paces the
 * cache's refresh, which reads every cached user again within 3/4 of it:
 * with 1M users and 60 s that scan was ~23 % of fan-out's thread at 100k
 * notifications/s (a fixed ~0.07 cores on this 2-core machine). */
#define RECIP_TTL_MS 60000
#define RECIP_TTL_EXACT_MS 3600000

static int recip_ttl_ms(store_t *s) { return store_users_feed_exact(s) ? RECIP_TTL_EXACT_MS : RECIP_TTL_MS; }
/* Records per batch (stage.h: gather): after a poll the worker polls again
 * at once, without waiting, and takes what the bus has (up to this many),
 * so that a batch's fixed costs - above all its dedupe claims' store
 * transaction - are paid once for all of it. */
#define FANOUT_GATHER 1024

/* The shared cache: made (and filled) by the first worker, freed by the last. */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static recip_cache_t *shared_cache;
static store_t *shared_store;
static int shared_refs;

static recip_cache_t *cache_acquire(app_t *app)
{
    pthread_mutex_lock(&shared_mu);
    if (shared_refs > 0 && shared_store != app->store) {
        /* another app in this process (tests): it keeps its own */
        pthread_mutex_unlock(&shared_mu);
        return NULL;
    }
    if (shared_refs++ == 0) {
        shared_store = app->store;
        shared_cache = recip_cache_new(app->store, (size_t)app->cfg->fanout_cache_bytes, recip_ttl_ms(app->store));
        int64_t t0 = hclock_mono_ns(), loaded = 0;
        hr_t r = recip_cache_prime(shared_cache, &loaded);
        recip_stats_t st;
        recip_cache_stats(shared_cache, &st);
        if (r != HR_OK)
            log_warn("fanout", "filling the recipient cache failed: %s", hr_str(r));
        else if (loaded)
            log_info("fanout", "recipient cache: %lld of %lld users read in %.1f s (%.0f MB)",
                     (long long)st.entries, (long long)loaded, (double)(hclock_mono_ns() - t0) / 1e9,
                     (double)st.bytes / 1048576.0);
    }
    recip_cache_t *c = shared_cache;
    pthread_mutex_unlock(&shared_mu);
    return c;
}

static void cache_release(recip_cache_t *c)
{
    pthread_mutex_lock(&shared_mu);
    if (c == shared_cache && --shared_refs == 0) {
        recip_cache_free(shared_cache);
        shared_cache = NULL;
        shared_store = NULL;
    } else if (c != shared_cache) {
        recip_cache_free(c);
    }
    pthread_mutex_unlock(&shared_mu);
}

typedef struct tmpl_slot {
    char *type;
    int channel;                /* -1: the type's channel mask */
    char locale[32];
    bool found;
    unsigned mask;
    template_rec_t rec;
    uint64_t used;
} tmpl_slot_t;

/* A channel's title and body prerendered for the event being fanned out
 * (template.h: the recipient's variables are holes), so that what does not
 * depend on the recipient is rendered once per event and channel. */
typedef struct pre_slot {
    uint64_t serial;            /* the event's (fan_ev_t); 0 = empty */
    const char *src_title, *src_body; /* what was prerendered */
    tmpl_pre_t title, body;
} pre_slot_t;

typedef struct fanout {
    app_t *app;
    outbuf_t out;               /* the batch's notifications and statuses, produced per topic */
    pre_slot_t pre[CH__COUNT];
    uint64_t serial;            /* events fanned out: fan_ev_t.serial */
    buf_t enc;
    buf_t title;
    buf_t body;
    buf_t dkey;                 /* a digest member's grouping key (model/digest.h) */
    buf_t meta;                 /* its record metadata */
    recip_cache_t *rcache;
    recip_reader_t *recips;
    prefs_required_t required;  /* policy.required_categories */
    tmpl_slot_t cache[TMPL_CACHE];
    int ncache;
    int last[CH__COUNT + 1];    /* per channel (+1: the masks'), the slot it found last */
    uint64_t tmpl_epoch;
    uint64_t tick;
    int64_t now_ms;             /* the clock, read once per event (and audience page) */
    /* the batch being processed */
    int cap;
    event_t *evs;
    bool *ok;                   /* evs[i] parsed */
    claim_t *claims;
    const char **ids;
    const char **positions;
    const char **eids;          /* evs[i]'s tenant-qualified event id */
    char (*eidbuf)[TENANT_QID_MAX + 1];
    char **owned;               /* qualified ids made for this batch (non-default tenants) */
    size_t nowned, cowned;
    char (*posbuf)[160];
    const char **aud;           /* explicit recipients of the batch, for the prefetch */
    size_t naud, caud;
    const chunk_t *chunk;       /* chunks.h: the chunk task being expanded, else NULL */
    int64_t chunk_users;        /* users of its range fanned out so far */
} fanout_t;

static void *fanout_new(app_t *app, const stage_def_t *def, int worker)
{
    fanout_t *f = xcalloc(1, sizeof(*f));
    f->app = app;
    outbuf_init(&f->out, app);
    buf_init(&f->enc, 0);
    buf_init(&f->title, 4096);
    buf_init(&f->body, 64 * 1024);
    buf_init(&f->dkey, 0);
    buf_init(&f->meta, 0);
    for (int c = 0; c < CH__COUNT; c++) {
        tmpl_pre_init(&f->pre[c].title);
        tmpl_pre_init(&f->pre[c].body);
    }
    f->rcache = cache_acquire(app);
    if (!f->rcache) f->rcache = recip_cache_new(app->store, (size_t)app->cfg->fanout_cache_bytes / 8,
                                                  recip_ttl_ms(app->store));
    f->recips = recip_reader_new(f->rcache);
    f->tmpl_epoch = store_templates_epoch(app->store);
    if (prefs_required_parse(app->cfg->required_categories, &f->required) != HR_OK)
        log_warn("fanout", "policy.required_categories '%s' is malformed; no category is required",
                 app->cfg->required_categories);
    f->cap = app->cfg->batch_max > FANOUT_GATHER ? app->cfg->batch_max : FANOUT_GATHER;
    f->evs = xcalloc((size_t)f->cap, sizeof(*f->evs));
    f->ok = xcalloc((size_t)f->cap, sizeof(*f->ok));
    f->claims = xcalloc((size_t)f->cap, sizeof(*f->claims));
    f->ids = xcalloc((size_t)f->cap, sizeof(*f->ids));
    f->positions = xcalloc((size_t)f->cap, sizeof(*f->positions));
    f->eids = xcalloc((size_t)f->cap, sizeof(*f->eids));
    f->eidbuf = xcalloc((size_t)f->cap, sizeof(*f->eidbuf));
    f->posbuf = xcalloc((size_t)f->cap, sizeof(*f->posbuf));
    return f;
}

/* Forgets the prerendered texts (they may borrow a template about to go). */
static void pre_forget(fanout_t *f)
{
    for (int c = 0; c < CH__COUNT; c++) f->pre[c].serial = 0;
}

static void cache_clear(fanout_t *f)
{
    pre_forget(f);
    for (int i = 0; i < f->ncache; i++) {
        if (f->cache[i].found) template_rec_clear(&f->cache[i].rec);
        free(f->cache[i].type);
    }
    f->ncache = 0;
}

static void fanout_free(void *state)
{
    fanout_t *f = state;
    cache_clear(f);
    recip_reader_free(f->recips);
    cache_release(f->rcache);
    prefs_required_clear(&f->required);
    outbuf_release(&f->out);
    buf_release(&f->enc);
    buf_release(&f->title);
    buf_release(&f->body);
    buf_release(&f->dkey);
    buf_release(&f->meta);
    for (int c = 0; c < CH__COUNT; c++) {
        tmpl_pre_release(&f->pre[c].title);
        tmpl_pre_release(&f->pre[c].body);
    }
    free(f->evs);
    free(f->ok);
    free(f->claims);
    free(f->ids);
    free(f->positions);
    free(f->eids);
    free(f->eidbuf);
    free(f->owned);
    free(f->posbuf);
    free(f->aud);
    free(f);
}

/* A cache slot for (type, channel, locale): the existing one, or a fresh
 * one (the least recently used when full) with *fresh set. */
static tmpl_slot_t *tmpl_slot(fanout_t *f, const char *type, int ch, const char *locale, bool *fresh)
{
    f->tick++;
    /* the channel's last slot first: the events of a batch are mostly of
     * a few types, one locale */
    int *last = &f->last[ch + 1];
    for (int k = -1; k < f->ncache; k++) {
        int i = k < 0 ? *last : k;
        if (i >= f->ncache || (k >= 0 && i == *last)) continue;
        tmpl_slot_t *s = &f->cache[i];
        if (s->channel == ch && strcmp(s->type, type) == 0 && strcmp(s->locale, locale) == 0) {
            s->used = f->tick;
            *last = i;
            *fresh = false;
            return s;
        }
    }
    tmpl_slot_t *s;
    if (f->ncache < TMPL_CACHE) {
        s = &f->cache[f->ncache++];
    } else {
        s = &f->cache[0];
        for (int i = 1; i < TMPL_CACHE; i++)
            if (f->cache[i].used < s->used) s = &f->cache[i];
        if (s->found) template_rec_clear(&s->rec);
        free(s->type);
        pre_forget(f);
    }
    *last = (int)(s - f->cache);
    memset(s, 0, sizeof(*s));
    s->type = xstrdup(type);
    s->channel = ch;
    snprintf(s->locale, sizeof(s->locale), "%s", locale);
    s->used = f->tick;
    *fresh = true;
    return s;
}

static const template_rec_t *template_for(fanout_t *f, const char *type, int ch, const char *locale)
{
    bool fresh;
    tmpl_slot_t *s = tmpl_slot(f, type, ch, locale, &fresh);
    if (fresh) s->found = store_template_get(f->app->store, type, (channel_t)ch, locale, &s->rec) == HR_OK;
    return s->found ? &s->rec : NULL;
}

static hr_t template_mask(fanout_t *f, const char *type, unsigned *mask)
{
    bool fresh;
    tmpl_slot_t *s = tmpl_slot(f, type, -1, "", &fresh);
    if (fresh) {
        hr_t r = store_template_channels(f->app->store, type, &s->mask);
        if (r != HR_OK) {
            s->type[0] = '\0'; /* never matches a type: asked again next time */
            return r;
        }
    }
    *mask = s->mask;
    return HR_OK;
}

/* Emits a status record (suppressed / failed) for a notification that will
 * not be dispatched, so its fate is queryable. */
static hr_t emit_status(fanout_t *f, notif_t *n, notif_status_t st, const char *why,
                        bus_batch_t *batch)
{
    lifecycle_transition(n, st, hclock_now_ms(), HSTR(why), "fanout");
    size_t at = outbuf_mark(&f->out);
    hr_t r = notif_encode_status(n, true, outbuf_bytes(&f->out)); /* its only status: the content */
    if (r != HR_OK) {
        outbuf_undo(&f->out, at);
        return r;
    }
    if (st == ST_SUPPRESSED) METRIC_INC(notifs_suppressed);
    return outbuf_commit(&f->out, TOPIC_STATUS, n->user_id.p, n->user_id.n, at, batch);
}

/* Gathers notification n for its channel's topic, keyed by the user. A
 * record that cannot be encoded (a value out of range, e.g. quiet hours
 * from a bad user row) is recorded failed rather than retried forever. */
static hr_t produce_notif(fanout_t *f, const notif_t *n, const char *user_id, size_t uid_len,
                          bus_batch_t *batch)
{
    size_t at = outbuf_mark(&f->out);
    if (notif_encode(n, outbuf_bytes(&f->out)) != HR_OK) {
        outbuf_undo(&f->out, at);
        notif_t x = *n;
        return emit_status(f, &x, ST_FAILED, "unencodable notification", batch);
    }
    return outbuf_commit(&f->out, topic_for_channel(n->channel), user_id, uid_len, at, batch);
}

/* The next device of a push address list ("platform:token,..."): its
 * entry in *dev and platform in *plat; false at the end. *pos advances. */
static bool next_device(const char *list, size_t len, size_t *pos, hstr_t *dev, hstr_t *plat)
{
    if (*pos >= len) return false;
    const char *p = list + *pos, *end = list + len;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    *dev = (hstr_t){p, (size_t)(e - p)};
    const char *colon = memchr(p, ':', (size_t)(e - p));
    *plat = (hstr_t){p, colon ? (size_t)(colon - p) : 0};
    *pos = (size_t)(e - list) + (comma ? 1 : 0);
    return true;
}

/* Dead-letters m, the record of ev. A binary record goes to the DLQ as its
 * JSON rendition, so that it reads, filters by tenant and redrives (its
 * claim released by event_id) like any event. */
static hr_t dead_letter(fanout_t *f, const bus_msg_t *m, const event_t *ev, const char *reason,
                        bus_batch_t *batch)
{
    if (!ev || !ev->rec) return stage_dead_letter(f->app, m, "fanout", reason, batch);
    json_t *j = event_to_json(ev);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) return HR_ERR;
    bus_msg_t copy = *m;
    copy.value = text;
    copy.value_len = strlen(text);
    hr_t r = stage_dead_letter(f->app, &copy, "fanout", reason, batch);
    free(text);
    return r;
}

/* One event as fan-out sees it: the parsed event and its ids qualified
 * with its tenant (model/tenant.h). */
typedef struct fan_ev {
    const event_t *ev;
    const char *event_id;       /* qualified */
    const char *type;           /* qualified */
    uint64_t serial;            /* this fan-out's count of events, from 1 */
    const bus_msg_t *m;         /* its record (chunks.h plans from it) */
    /* the same for every recipient: worked out once per event */
    hstr_t eid;                 /* event_id */
    hstr_t category;            /* the event's, else "default" */
    hstr_t traceparent;
    bool required;              /* the category is one of policy.required_categories */
} fan_ev_t;

/* A digest member (model/digest.h): renders title and body into f->title
 * and f->body with the places of {{digest.*}} in ts and bs, and the key
 * (the template's digest_key, else nothing: the event type alone) into
 * f->dkey as "<qualified type> 0x1F <key>"; a key longer than
 * DIGEST_KEY_MAX becomes '#' and its SHA-256. */
static void digest_render(fanout_t *f, const fan_ev_t *fe, const template_rec_t *t, const char *uid,
                          const char *locale, tmpl_spans_t *ts, tmpl_spans_t *bs)
{
    tmpl_ctx_t c = {.ev = fe->ev, .user_id = uid, .locale = locale, .spans = ts};
    buf_reset(&f->title);
    buf_reset(&f->body);
    memset(ts, 0, sizeof(*ts));
    memset(bs, 0, sizeof(*bs));
    tmpl_render(t->title ? t->title : "", &c, &f->title); /* truncated at the limit */
    c.spans = bs;
    tmpl_render(t->body ? t->body : "", &c, &f->body);
    c.spans = NULL;
    buf_reset(&f->dkey);
    buf_append(&f->dkey, fe->type, strlen(fe->type));
    buf_append(&f->dkey, "\x1f", 1);
    if (t->digest_key) {
        size_t at = f->dkey.len;
        tmpl_render(t->digest_key, &c, &f->dkey);
        if (f->dkey.len - at > DIGEST_KEY_MAX) {
            unsigned char md[32];
            static const char hx[] = "0123456789abcdef";
            sha256(f->dkey.data + at, f->dkey.len - at, md);
            f->dkey.len = at;
            char h[65];
            h[0] = '#';
            for (int i = 0; i < 32; i++) {
                h[1 + 2 * i] = hx[md[i] >> 4];
                h[2 + 2 * i] = hx[md[i] & 15];
            }
            buf_append(&f->dkey, h, 65);
        }
    }
}

/* The member's metadata into f->meta; dev: the push device (its own digest). */
static hr_t digest_meta(fanout_t *f, const fan_ev_t *fe, const template_rec_t *t, hstr_t dev,
                        const tmpl_spans_t *ts, const tmpl_spans_t *bs)
{
    size_t base = f->dkey.len;
    if (dev.n) {
        buf_append(&f->dkey, "\x1f", 1);
        buf_append(&f->dkey, dev.p, dev.n);
    }
    buf_append(&f->dkey, "", 1); /* NUL */
    digest_meta_t m = {.kind = DIGEST_MEMBER, .window_ms = t->digest_window_ms, .dkey = f->dkey.data,
                       .actor = (char *)(fe->ev->actor ? fe->ev->actor : ""), .title = *ts, .body = *bs};
    if (m.title.n < 0) m.title.n = 0; /* too many to splice: shown as a digest of one */
    if (m.body.n < 0) m.body.n = 0;
    buf_reset(&f->meta);
    hr_t r = digest_meta_write(&m, &f->meta);
    f->dkey.len = base;
    return r;
}

/* user_id: qualified with the event's tenant. */
static hr_t fan_to_user(fanout_t *f, const fan_ev_t *fe, unsigned mask, const char *user_id,
                        bool replay, bus_batch_t *batch)
{
    app_t *app = f->app;
    const event_t *ev = fe->ev;
    hr_t r;
    const recipient_t *rc = recip_get_for(f->recips, user_id, mask, &r);
    if (!rc) return r;
    const char *category = fe->category.p;
    bool required = fe->required;
    const char *locale = rc->locale;
    int64_t now = f->now_ms;
    /* 0 = now: dispatch treats due_at > 0 as scheduled, retried or redriven
     * (looked up in the store before sending) */
    int64_t due = ev->send_at_ms > now ? ev->send_at_ms : 0;
    size_t uid_len = strlen(user_id);
    r = HR_OK;
    for (int ch = 0; ch < CH__COUNT && r == HR_OK; ch++) {
        if (!(mask & (1u << ch))) continue;
        char nid[33];
        notif_make_id(ev->accepted_at_us, fe->eid, (hstr_t){user_id, uid_len}, (channel_t)ch, nid);
        notif_t n = {
            .kind = REC_NOTIFICATION,
            .channel = (channel_t)ch,
            .priority = ev->priority,
            .status = ST_PENDING,
            .attempt = 1,
            .created_at_ms = now,
            .due_at_ms = due,
            .accepted_at_us = ev->accepted_at_us,
            .notification_id = {nid, 32},
            .event_id = fe->eid,
            .user_id = {user_id, uid_len},
            .category = fe->category,
            .timezone = HSTR(rc->timezone),
            .quiet_start_min = rc->quiet_start_min,
            .quiet_end_min = rc->quiet_end_min,
            .traceparent = fe->traceparent,
        };
        if (replay && ch != CH_PUSH) { /* push: per device, below */
            bool sent = false;
            if ((r = store_notif_sent(app->store, nid, &sent)) != HR_OK) break;
            if (sent) continue; /* delivered the first time round */
        }
        if (!rc->known) {
            r = emit_status(f, &n, ST_FAILED, "unknown_user", batch);
            continue;
        }
        if (!prefs_deliver(rc->prefs, rc->nprefs, category, (channel_t)ch, ev->priority, required)) {
            r = emit_status(f, &n, ST_SUPPRESSED, "preference", batch);
            continue;
        }
        if (rc->addr_len[ch] == 0) {
            r = emit_status(f, &n, ST_SUPPRESSED, "no_address", batch);
            continue;
        }
        const char *title, *body;
        const template_rec_t *dt = NULL; /* the template declares a digest */
        if (!event_content_for(ev, (channel_t)ch, &title, &body)) {
            const template_rec_t *t = template_for(f, fe->type, ch, locale);
            if (!t) {
                r = emit_status(f, &n, ST_FAILED, "no_template", batch);
                continue;
            }
            title = t->title ? t->title : "";
            body = t->body ? t->body : "";
            /* critical goes out at once, never collapsed */
            if (t->digest_window_ms > 0 && ev->priority != PRIO_CRITICAL) dt = t;
        }
        const char *uid = tenant_unqualify(user_id);
        tmpl_spans_t ts, bs;
        if (dt) {
            digest_render(f, fe, dt, uid, locale, &ts, &bs);
        } else {
            pre_slot_t *ps = &f->pre[ch];
            if (ps->serial != fe->serial || ps->src_title != title || ps->src_body != body) {
                tmpl_prerender(title, ev, &ps->title);
                tmpl_prerender(body, ev, &ps->body);
                ps->serial = fe->serial;
                ps->src_title = title;
                ps->src_body = body;
            }
            buf_reset(&f->title);
            buf_reset(&f->body);
            tmpl_finish(&ps->title, uid, locale, &f->title); /* truncated at the limit */
            tmpl_finish(&ps->body, uid, locale, &f->body);
        }
        n.title = (hstr_t){f->title.data ? f->title.data : "", f->title.len};
        n.body = (hstr_t){f->body.data ? f->body.data : "", f->body.len};
        if (ch != CH_PUSH) {
            if (dt) {
                if ((r = digest_meta(f, fe, dt, (hstr_t){NULL, 0}, &ts, &bs)) != HR_OK) break;
                n.metadata = (hstr_t){f->meta.data, f->meta.len};
            }
            n.address = (hstr_t){rc->addr[ch], rc->addr_len[ch]};
            n.platform = HSTR("");
            r = produce_notif(f, &n, user_id, uid_len, batch);
            if (r == HR_OK) METRIC_INC(notifs_fanned_out);
            continue;
        }
        /* Push: one notification per device, each to its own platform's
         * provider, so that a dead token invalidates only itself. The first
         * device keeps the (event, user, channel) id. */
        size_t pos = 0;
        hstr_t dev, plat;
        char did[33];
        for (int d = 0; r == HR_OK && next_device(rc->addr[ch], rc->addr_len[ch], &pos, &dev, &plat);
             d++) {
            if (d > 0)
                notif_make_device_id(ev->accepted_at_us, fe->eid, (hstr_t){user_id, uid_len},
                                     (channel_t)ch, dev, did);
            n.notification_id = (hstr_t){d > 0 ? did : nid, 32};
            if (replay) {
                bool sent = false;
                if ((r = store_notif_sent(app->store, d > 0 ? did : nid, &sent)) != HR_OK) break;
                if (sent) continue; /* delivered the first time round */
            }
            if (dt) {
                if ((r = digest_meta(f, fe, dt, dev, &ts, &bs)) != HR_OK) break;
                n.metadata = (hstr_t){f->meta.data, f->meta.len};
            }
            n.address = dev;
            n.platform = plat;
            r = produce_notif(f, &n, user_id, uid_len, batch);
            if (r == HR_OK) METRIC_INC(notifs_fanned_out);
        }
    }
    return r;
}

typedef hr_t (*page_fn)(store_t *s, const char *key, const char *after, int limit, char ***ids,
                        int *n);

/* key: the qualified topic or actor; the pages hold qualified user ids. */
static hr_t fan_pages(fanout_t *f, const fan_ev_t *fe, unsigned mask, page_fn page,
                      const char *key, bool replay, bus_batch_t *batch)
{
    /* chunks.h: a chunk task expands its key range (after, until]; an event
     * hands the rest of an audience above fanout.chunk_threshold to chunks */
    const chunk_t *ck = f->chunk;
    char *after = ck && ck->after[0] ? xstrdup(ck->after) : NULL;
    int64_t done = 0;
    hr_t r = HR_OK;
    for (;;) {
        char **ids = NULL;
        int n = 0;
        r = page(f->app->store, key, after, AUDIENCE_PAGE, &ids, &n);
        if (r != HR_OK) break;
        int keep = ck ? chunk_in_range(ck, ids, n) : n;
        r = recip_prefetch(f->recips, (const char *const *)ids, keep);
        f->now_ms = hclock_now_ms();
        for (int i = 0; i < keep && r == HR_OK; i++) r = fan_to_user(f, fe, mask, ids[i], replay, batch);
        free(after);
        after = n > 0 ? xstrdup(ids[n - 1]) : NULL;
        ids_free(ids, n);
        done += keep;
        if (ck) f->chunk_users = done;
        if (r != HR_OK || n < AUDIENCE_PAGE || keep < n) break;
        if (!ck && chunks_due(f->app, done)) {
            r = chunks_plan(f->app, fe->m, fe->ev, fe->event_id, fe->type, mask,
                            page == store_subs_page ? CHUNK_TOPIC : CHUNK_FOLLOWERS, key, after,
                            batch);
            break;
        }
    }
    free(after);
    return r;
}

/* Fans out one parsed and claimed event; eid: its qualified event id. */
static hr_t fanout_event(fanout_t *f, const bus_msg_t *m, const event_t *ev, const char *eid,
                         claim_t claim, bus_batch_t *batch)
{
    if (claim == CLAIM_DUP) {
        METRIC_INC(events_duplicate);
        log_debug("fanout", "duplicate event %s dropped", ev->event_id);
        return HR_OK;
    }
    /* ids are validated at most TENANT_ID_MAX bytes, so they qualify */
    char qtype[TENANT_QID_MAX + 1], qkey[TENANT_QID_MAX + 1], quser[TENANT_QID_MAX + 1];
    const char *category = ev->category ? ev->category : "default";
    fan_ev_t fe = {.ev = ev, .event_id = eid, .type = tenant_qualify_to(ev->tenant, ev->type, qtype),
                   .serial = ++f->serial, .m = m, .eid = HSTR(eid), .category = HSTR(category),
                   .traceparent = HSTR(ev->traceparent),
                   .required = prefs_required_has(&f->required, category)};
    unsigned mask = ev->channels_mask;
    hr_t r;
    f->now_ms = hclock_now_ms();
    if (!fe.type) return dead_letter(f, m, ev, "invalid event: type: too long", batch);
    if (!mask) {
        if ((r = template_mask(f, fe.type, &mask)) != HR_OK) return r;
        mask |= ev->content_mask;
    }
    if (!mask) {
        /* The API refuses these (422 naming type); they come from elsewhere. */
        char reason[300];
        snprintf(reason, sizeof(reason), "no templates for event type '%s' and no inline content",
                 ev->type);
        return dead_letter(f, m, ev, reason, batch);
    }
    /* chunks.h / pullfan.h: in-app went by pull for this chunk's event */
    if (f->chunk && (f->chunk->flags & CHUNK_F_PULL) && !(mask &= ~(1u << CH_INAPP))) return HR_OK;
    bool replay = claim == CLAIM_SAME;
    r = HR_OK;
    switch (ev->audience) {
    case AUD_USERS: {
        event_users_t it;
        event_users_begin(ev, &it);
        for (const char *u; (u = event_users_next(&it));) {
            const char *uid = tenant_qualify_to(ev->tenant, u, quser);
            r = uid ? fan_to_user(f, &fe, mask, uid, replay, batch)
                    : dead_letter(f, m, ev, "invalid event: audience: too long", batch);
            if (r != HR_OK) break;
        }
        break;
    }
    case AUD_TOPIC: {
        const char *topic = tenant_qualify_to(ev->tenant, ev->audience_topic, qkey);
        r = topic ? fan_pages(f, &fe, mask, store_subs_page, topic, replay, batch)
                  : dead_letter(f, m, ev, "invalid event: audience: too long", batch);
        break;
    }
    case AUD_FOLLOWERS: {
        const char *actor = tenant_qualify_to(ev->tenant, ev->audience_followers_of, qkey);
        r = actor ? fan_pages(f, &fe, mask, store_followers_page, actor, replay, batch)
                  : dead_letter(f, m, ev, "invalid event: audience: too long", batch);
        break;
    }
    }
    return r;
}

/* id qualified with tenant, owned by the batch when it had to be made. */
static const char *batch_qualify(fanout_t *f, const char *tenant, const char *id)
{
    if (tenant_is_default(tenant)) return id;
    if (f->nowned == f->cowned) {
        f->cowned = f->cowned ? f->cowned * 2 : 256;
        f->owned = xrealloc(f->owned, f->cowned * sizeof(*f->owned));
    }
    return f->owned[f->nowned++] = tenant_qualify(tenant, id);
}

static void aud_push(fanout_t *f, const char *id)
{
    if (f->naud == f->caud) {
        f->caud = f->caud ? f->caud * 2 : 1024;
        f->aud = xrealloc(f->aud, f->caud * sizeof(*f->aud));
    }
    f->aud[f->naud++] = id;
}

/* Appends v in decimal at p; the end. */
static char *put_dec(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n) *p++ = tmp[--n];
    return p;
}

/* "topic/partition/offset" (the dedupe claim's position) into out (160
 * bytes): formatted by hand, it runs per event. */
static void position(char *out, size_t cap, const bus_msg_t *m)
{
    size_t tl = strlen(m->topic);
    if (tl + 2 * 21 + 3 > cap || m->partition < 0 || m->offset < 0) { /* cannot be */
        snprintf(out, cap, "%s/%d/%lld", m->topic, m->partition, (long long)m->offset);
        return;
    }
    char *p = out;
    memcpy(p, m->topic, tl);
    p += tl;
    *p++ = '/';
    p = put_dec(p, (uint64_t)m->partition);
    *p++ = '/';
    p = put_dec(p, (uint64_t)m->offset);
    *p = '\0';
}

static hr_t fanout_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                            bus_batch_t *batch)
{
    UNUSED(cx);
    fanout_t *f = state;
    app_t *app = f->app;
    hr_t r = HR_OK;
    if (n > f->cap) return HR_INVALID;

    /* what changed in the store since the last batch */
    recip_sync(f->recips);
    uint64_t te = store_templates_epoch(app->store);
    if (te != f->tmpl_epoch) {
        cache_clear(f);
        f->tmpl_epoch = te;
    }

    /* 1. parse; bad records go to the DLQ */
    int nv = 0;
    memset(f->ok, 0, (size_t)n * sizeof(*f->ok));
    for (int i = 0; i < n && r == HR_OK; i++) {
        problem_t pb;
        memset(&pb, 0, sizeof(pb));
        f->ok[i] = (event_is_record(msgs[i].value, msgs[i].value_len)
                        ? event_decode(msgs[i].value, msgs[i].value_len, &f->evs[i], &pb)
                        : event_parse(msgs[i].value, msgs[i].value_len, &f->evs[i], &pb)) == HR_OK;
        if (!f->ok[i]) {
            char reason[512];
            snprintf(reason, sizeof(reason), "invalid event: %s: %s", pb.field, pb.detail);
            METRIC_INC(events_rejected);
            r = stage_dead_letter(app, &msgs[i], "fanout", reason, batch);
            continue;
        }
        if (!f->evs[i].traceparent[0] && msgs[i].traceparent_len &&
            trace_normalize(msgs[i].traceparent, msgs[i].traceparent_len, f->evs[i].traceparent,
                            NULL) != HR_OK)
            log_debug("fanout", "event %s: invalid traceparent header ignored", f->evs[i].event_id);
        position(f->posbuf[i], sizeof(f->posbuf[i]), &msgs[i]);
        /* dedupe per tenant: two tenants may use the same event id */
        f->eids[i] = tenant_qualify_to(f->evs[i].tenant, f->evs[i].event_id, f->eidbuf[i]);
        if (!f->eids[i]) { /* cannot be: event ids are validated shorter */
            r = dead_letter(f, &msgs[i], &f->evs[i], "invalid event: event_id: too long", batch);
            event_clear(&f->evs[i]);
            f->ok[i] = false;
            continue;
        }
        f->ids[nv] = f->eids[i];
        f->positions[nv] = f->posbuf[i];
        nv++;
    }

    /* 2. claim them all at once */
    if (r == HR_OK) r = store_event_claim_batch(app->store, f->ids, f->positions, nv, f->claims);

    /* 3. read the recipients the cache lacks, in one go */
    f->naud = 0;
    for (int i = 0, k = 0; i < n && r == HR_OK; i++) {
        if (!f->ok[i]) continue;
        claim_t c = f->claims[k++];
        if (c == CLAIM_DUP || f->evs[i].audience != AUD_USERS) continue;
        event_users_t it;
        event_users_begin(&f->evs[i], &it);
        for (const char *u; (u = event_users_next(&it));)
            aud_push(f, batch_qualify(f, f->evs[i].tenant, u));
    }
    if (r == HR_OK && f->naud) r = recip_prefetch(f->recips, f->aud, (int)f->naud);

    /* 4. fan out */
    for (int i = 0, k = 0; i < n && r == HR_OK; i++) {
        if (!f->ok[i]) continue;
        r = fanout_event(f, &msgs[i], &f->evs[i], f->eids[i], f->claims[k++], batch);
    }
    /* the gathered outputs, one produce per topic (also after a failure:
     * what was made is on the bus as it would have been record by record) */
    hr_t fr = outbuf_flush(&f->out);
    if (r == HR_OK) r = fr;

    for (int i = 0; i < n; i++)
        if (f->ok[i]) event_clear(&f->evs[i]);
    for (size_t i = 0; i < f->nowned; i++) free(f->owned[i]);
    f->nowned = 0;
    return r;
}

const stage_def_t fanout_stage = {
    .name = STAGE_FANOUT,
    .group = GROUP_FANOUT,
    .topic = TOPIC_RAW,
    .state_new = fanout_new,
    .state_free = fanout_free,
    .process = fanout_process,
    .gather = FANOUT_GATHER,
};

/* chunks.h: expands one chunk task like an event, over its key range only. */
hr_t fanout_chunk_expand(void *state, const bus_msg_t *m, const chunk_t *c, bool replay,
                         bus_batch_t *batch, int64_t *users)
{
    fanout_t *f = state;
    if (users) *users = 0;
    recip_sync(f->recips);
    uint64_t te = store_templates_epoch(f->app->store);
    if (te != f->tmpl_epoch) {
        cache_clear(f);
        f->tmpl_epoch = te;
    }
    event_t ev;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));
    /* the event as it came on raw-events: the API's binary record (ev
     * borrows c->event, which outlives it) or JSON from another producer */
    if ((event_is_record(c->event, c->event_len) ? event_decode(c->event, c->event_len, &ev, &pb)
                                                 : event_parse(c->event, c->event_len, &ev, &pb)) != HR_OK)
        return stage_dead_letter(f->app, m, "fanout", "invalid chunk task: event", batch);
    if (!ev.traceparent[0] && c->traceparent[0])
        snprintf(ev.traceparent, sizeof(ev.traceparent), "%s", c->traceparent);
    f->chunk = c;
    f->chunk_users = 0;
    hr_t r = fanout_event(f, m, &ev, c->event_id, replay ? CLAIM_SAME : CLAIM_NEW, batch);
    f->chunk = NULL;
    if (users) *users = f->chunk_users;
    hr_t fr = outbuf_flush(&f->out);
    if (r == HR_OK) r = fr;
    event_clear(&ev);
    return r;
}
