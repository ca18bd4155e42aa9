/*
 * inbox_hub.c - live inbox streams (inbox_hub.h).
 *
 * DESIGN. One mutex guards everything: the list of streams, each stream's
 * ring of events, the pump's state. Publishing finds a user's streams by a
 * scan of every stream comparing a 64-bit hash first: the scan is bounded
 * by inbox.stream_max (a thousand streams cost about a microsecond), which
 * a hash table would not beat by enough to pay for its code. An event is
 * built once and shared by the streams it is queued on (a count of
 * references, changed under the mutex). The pump formats and writes under
 * the mutex too: sink writes only copy into the connection's own bounded
 * queue and never block.
 */
#include "http/inbox_hub.h"

#include "http/api_int.h"

#include "core/cond.h"
#include "core/hash.h"
#include "core/log.h"
#include "metrics/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct frame {
    int refs;
    int64_t item_ms;            /* > 0: an item event at this position */
    char *item_nid;
    char *event;
    char *data;
} frame_t;

struct inbox_sub {
    inbox_sub_t *prev, *next;   /* h->subs */
    char *user;
    uint64_t hash;
    const inbox_sink_ops_t *ops;
    void *sink;
    frame_t **q;                /* ring of h->o.queue_max */
    int head, n;
    bool held;                  /* the joiner writes its replay: the pump keeps off */
    bool dropped;               /* queue overflowed: end it */
    char *last_id;              /* the id counts events carry */
    bool skip;                  /* skip items at or before (after_ms, after_nid) */
    int64_t after_ms;
    char *after_nid;
    int64_t last_write_ms;
};

struct inbox_hub {
    inbox_hub_opts_t o;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* wakes the pump */
    inbox_sub_t *subs;
    int nsubs;
    bool dirty;                 /* something to write since the pump last looked */
    bool stop;
    bool has_thread;
    pthread_t thread;
};

static int64_t mono_ms(void) { return hclock_mono_ns() / 1000000; }

static int64_t now_of(const inbox_hub_t *h) { return h->o.now_ms ? h->o.now_ms() : mono_ms(); }

static void frame_unref(frame_t *f)
{
    if (--f->refs) return;
    free(f->item_nid);
    free(f->event);
    free(f->data);
    free(f);
}

/* mu held. Empties s's ring. */
static void sub_clear_queue(inbox_sub_t *s, int cap)
{
    for (int i = 0; i < s->n; i++) frame_unref(s->q[(s->head + i) % cap]);
    s->head = s->n = 0;
}

/* mu held. Unlinks s, closes its sink and frees it. */
static void sub_end(inbox_hub_t *h, inbox_sub_t *s)
{
    if (s->prev) s->prev->next = s->next;
    else h->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    h->nsubs--;
    sub_clear_queue(s, h->o.queue_max);
    s->ops->close(s->sink);
    free(s->q);
    free(s->user);
    free(s->last_id);
    free(s->after_nid);
    free(s);
}

bool inbox_event_id_parse(const char *id, int64_t *ms, const char **nid)
{
    *ms = 0;
    *nid = "";
    if (!id || !*id || strcmp(id, "0") == 0) return true;
    int64_t v = 0;
    const char *p = id;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (*p - '0');
    }
    if (p == id || *p != ':') return false;
    /* an id like the store's (herald's are 32 lowercase hex digits,
     * model/notif.h): the stream echoes it back, so no other client text */
    size_t n = strlen(p + 1);
    if (n == 0 || n > 64 || strspn(p + 1, "0123456789abcdefghijklmnopqrstuvwxyz") != n) return false;
    *ms = v;
    *nid = p + 1;
    return true;
}

/* (ms, nid) at or before (ams, anid) in the store's order? */
static bool at_or_before(int64_t ms, const char *nid, int64_t ams, const char *anid)
{
    return ms < ams || (ms == ams && strcmp(nid, anid) <= 0);
}

/* mu held. Writes what waits on s (and a heartbeat when idle); false when
 * the stream has ended (the caller ends it). */
static bool sub_flush(inbox_hub_t *h, inbox_sub_t *s, int64_t now, int *written)
{
    int cap = h->o.queue_max;
    if (s->dropped) return false;
    if (s->ops->gone && s->ops->gone(s->sink)) return false;
    while (s->n) {
        frame_t *f = s->q[s->head];
        if (f->item_ms > 0 && s->skip &&
            at_or_before(f->item_ms, f->item_nid, s->after_ms, s->after_nid)) {
            s->head = (s->head + 1) % cap;
            s->n--;
            frame_unref(f);
            continue;
        }
        char *id = f->item_ms > 0 ? xasprintf("%" PRId64 ":%s", f->item_ms, f->item_nid) : NULL;
        char *text = xasprintf("id: %s\nevent: %s\ndata: %s\n\n", id ? id : s->last_id,
                               f->event, f->data);
        hr_t r = s->ops->write(s->sink, text, strlen(text));
        free(text);
        if (r == HR_AGAIN) { /* the client is behind: it stays queued */
            free(id);
            return true;
        }
        if (r != HR_OK) {
            free(id);
            return false;
        }
        if (id) {
            free(s->last_id);
            s->last_id = id;
        }
        s->head = (s->head + 1) % cap;
        s->n--;
        frame_unref(f);
        s->last_write_ms = now;
        (*written)++;
    }
    if (now - s->last_write_ms >= h->o.heartbeat_ms) {
        static const char hb[] = ": heartbeat\n\n";
        hr_t r = s->ops->write(s->sink, hb, sizeof(hb) - 1);
        if (r == HR_OK) s->last_write_ms = now;
        else if (r != HR_AGAIN) return false;
    }
    return true;
}

int inbox_hub_pump(inbox_hub_t *h)
{
    int written = 0;
    pthread_mutex_lock(&h->mu);
    int64_t now = now_of(h);
    h->dirty = false;
    for (inbox_sub_t *s = h->subs, *next; s; s = next) {
        next = s->next;
        if (s->held) continue;
        if (!sub_flush(h, s, now, &written)) sub_end(h, s);
    }
    pthread_mutex_unlock(&h->mu);
    if (written) METRIC_ADD(inbox_stream_events, written);
    return written;
}

static void *pump_main(void *arg)
{
    inbox_hub_t *h = arg;
    /* often enough for heartbeats and to notice closed clients */
    int64_t tick_ns = (h->o.heartbeat_ms < 2000 ? h->o.heartbeat_ms / 2 : 1000) * 1000000LL;
    if (tick_ns < 10000000LL) tick_ns = 10000000LL;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        if (!h->dirty) cond_wait_until(&h->cv, &h->mu, hclock_mono_ns() + tick_ns);
        if (h->stop) break;
        pthread_mutex_unlock(&h->mu);
        inbox_hub_pump(h);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

inbox_hub_t *inbox_hub_new(const inbox_hub_opts_t *o)
{
    assert(o->max_streams > 0 && o->max_per_user > 0 && o->queue_max > 0 && o->heartbeat_ms > 0);
    inbox_hub_t *h = xcalloc(1, sizeof(*h));
    h->o = *o;
    pthread_mutex_init(&h->mu, NULL);
    cond_init_mono(&h->cv);
    if (o->thread) {
        if (pthread_create(&h->thread, NULL, pump_main, h) != 0) {
            log_error("inbox", "cannot start the live stream thread");
            inbox_hub_free(h);
            return NULL;
        }
        h->has_thread = true;
    }
    return h;
}

void inbox_hub_free(inbox_hub_t *h)
{
    if (!h) return;
    if (h->has_thread) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_lock(&h->mu);
    while (h->subs) sub_end(h, h->subs);
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

hr_t inbox_hub_join(inbox_hub_t *h, const char *user_id, const inbox_sink_ops_t *ops, void *sink,
                    bool *per_user, inbox_sub_t **out)
{
    uint64_t hash = fnv1a64(user_id, strlen(user_id));
    *out = NULL;
    *per_user = false;
    pthread_mutex_lock(&h->mu);
    int mine = 0;
    for (inbox_sub_t *s = h->subs; s; s = s->next)
        if (s->hash == hash && strcmp(s->user, user_id) == 0) mine++;
    if (h->nsubs >= h->o.max_streams || mine >= h->o.max_per_user) {
        *per_user = mine >= h->o.max_per_user;
        pthread_mutex_unlock(&h->mu);
        METRIC_INC(inbox_stream_refused);
        return HR_AGAIN;
    }
    inbox_sub_t *s = xcalloc(1, sizeof(*s));
    s->user = xstrdup(user_id);
    s->hash = hash;
    s->ops = ops;
    s->sink = sink;
    s->q = xcalloc((size_t)h->o.queue_max, sizeof(*s->q));
    s->held = true;
    s->last_id = xstrdup("0");
    s->next = h->subs;
    if (s->next) s->next->prev = s;
    h->subs = s;
    h->nsubs++;
    pthread_mutex_unlock(&h->mu);
    METRIC_INC(inbox_stream_opened);
    *out = s;
    return HR_OK;
}

void inbox_hub_release(inbox_hub_t *h, inbox_sub_t *s, int64_t after_ms, const char *after_nid,
                       const char *last_id)
{
    pthread_mutex_lock(&h->mu);
    s->held = false;
    s->skip = after_ms > 0;
    s->after_ms = after_ms;
    s->after_nid = xstrdup(after_nid ? after_nid : "");
    free(s->last_id);
    s->last_id = xstrdup(last_id && *last_id ? last_id : "0");
    s->last_write_ms = now_of(h);
    h->dirty = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void inbox_hub_leave(inbox_hub_t *h, inbox_sub_t *s)
{
    pthread_mutex_lock(&h->mu);
    sub_end(h, s);
    pthread_mutex_unlock(&h->mu);
}

bool inbox_hub_watched(inbox_hub_t *h, const char *user_id)
{
    uint64_t hash = fnv1a64(user_id, strlen(user_id));
    bool any = false;
    pthread_mutex_lock(&h->mu);
    for (inbox_sub_t *s = h->subs; s && !any; s = s->next)
        any = s->hash == hash && strcmp(s->user, user_id) == 0;
    pthread_mutex_unlock(&h->mu);
    return any;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int inbox_hub_users(inbox_hub_t *h, char ***users)
{
    pthread_mutex_lock(&h->mu);
    char **v = xcalloc((size_t)h->nsubs + 1, sizeof(*v));
    int n = 0;
    for (inbox_sub_t *s = h->subs; s; s = s->next) v[n++] = xstrdup(s->user);
    pthread_mutex_unlock(&h->mu);
    /* a user with several streams once */
    qsort(v, (size_t)n, sizeof(*v), str_cmp);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (k && strcmp(v[k - 1], v[i]) == 0) free(v[i]);
        else v[k++] = v[i];
    }
    *users = v;
    return k;
}

void inbox_hub_publish(inbox_hub_t *h, const char *user_id, const char *event, const char *data,
                       int64_t item_ms, const char *item_nid)
{
    uint64_t hash = fnv1a64(user_id, strlen(user_id));
    frame_t *f = NULL;
    int dropped = 0, cap = h->o.queue_max;
    pthread_mutex_lock(&h->mu);
    for (inbox_sub_t *s = h->subs; s; s = s->next) {
        if (s->hash != hash || strcmp(s->user, user_id) != 0 || s->dropped) continue;
        if (s->n == cap) { /* a slow client: drop it rather than grow */
            sub_clear_queue(s, cap);
            s->dropped = true;
            dropped++;
            continue;
        }
        if (!f) {
            f = xcalloc(1, sizeof(*f));
            f->item_ms = item_ms > 0 && item_nid ? item_ms : 0;
            f->item_nid = f->item_ms ? xstrdup(item_nid) : NULL;
            f->event = xstrdup(event);
            f->data = xstrdup(data);
        }
        f->refs++;
        s->q[(s->head + s->n) % cap] = f;
        s->n++;
    }
    if (f || dropped) {
        h->dirty = true;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    if (dropped) {
        METRIC_ADD(inbox_stream_dropped, dropped);
        log_info("inbox", "dropped %d live stream(s) whose client fell %d events behind", dropped,
                 cap);
    }
}

int inbox_hub_streams(inbox_hub_t *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->nsubs;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void inbox_hub_counts(inbox_hub_t *h, const char *user_id, int64_t unread, int64_t unseen)
{
    char data[96];
    snprintf(data, sizeof(data), "{\"unread\":%" PRId64 ",\"unseen\":%" PRId64 "}", unread,
             unseen);
    inbox_hub_publish(h, user_id, "counts", data, 0, NULL);
}

void inbox_hub_new_item(inbox_hub_t *h, store_t *store, const inbox_item_t *it)
{
    if (!inbox_hub_watched(h, it->user_id)) return;
    json_t *doc = inbox_item_json(it);
    char *data = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (data) inbox_hub_publish(h, it->user_id, "item", data, it->created_at_ms, it->notification_id);
    free(data);
    int64_t unread = 0, unseen = 0;
    hr_t r = h->o.counts ? h->o.counts(h->o.counts_ctx, it->user_id, &unread, &unseen)
                         : store_inbox_counts(store, it->user_id, &unread, &unseen);
    if (r == HR_OK) inbox_hub_counts(h, it->user_id, unread, unseen);
}
