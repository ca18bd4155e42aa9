/*
 * dlq.c - reading and redriving the dead-letter topic (dlq.h).
 *
 * DESIGN
 *  The DLQ is read like an operator would with a console consumer: a
 *  consumer in the group DLQ_GROUP that never stores an offset, so every
 *  scan starts at the beginning of the topic and reads up to the end
 *  offsets taken before it started. Scans in one process are serialised
 *  (a second member of the group would split the partitions). Entries are
 *  filtered while scanning; nothing is kept but the page asked for. The
 *  redriven ids live in the store (table dlq_redriven), not on the bus,
 *  so a redrive is recorded once its records are acknowledged.
 */
#include "stage/dlq.h"

#include "core/log.h"
#include "core/text.h"
#include "model/event.h"
#include "stage/stage.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DLQ_GROUP "herald-dlq-reader"
#define DLQ_LOG "dlq"
/* How long a scan may wait for records the end offsets promise (a Kafka
 * group join takes a few seconds). */
#define SCAN_TIMEOUT_MS 20000
#define SCAN_POLL_MAX 256
#define ACK_TIMEOUT_MS 30000

static pthread_mutex_t scan_mu = PTHREAD_MUTEX_INITIALIZER;

/* Calls fn for every record of the DLQ below the end offsets read at the
 * start, in no particular order across partitions. fn returns false to
 * stop early. */
typedef bool (*visit_fn)(void *arg, const bus_msg_t *m);

static hr_t scan(app_t *app, visit_fn fn, void *arg)
{
    bus_lag_t *lags = NULL;
    int nl = 0;
    bus_consumer_t *c = NULL;
    int64_t *end = NULL;
    pthread_mutex_lock(&scan_mu);
    hr_t r = bus_lag(app->bus, DLQ_GROUP, TOPIC_DLQ, &lags, &nl);
    if (r != HR_OK) goto out;
    int32_t np = 0;
    for (int i = 0; i < nl; i++)
        if (lags[i].partition + 1 > np) np = lags[i].partition + 1;
    end = xcalloc((size_t)np + 1, sizeof(*end));
    int remaining = 0;
    for (int i = 0; i < nl; i++) {
        end[lags[i].partition] = lags[i].end_offset;
        if (lags[i].end_offset > 0) remaining++;
    }
    if (remaining == 0) goto out;
    const char *topics[] = {TOPIC_DLQ};
    if ((r = bus_consumer_new(app->bus, DLQ_GROUP, topics, 1, NULL, &c)) != HR_OK) goto out;
    bus_msg_t msgs[SCAN_POLL_MAX];
    int64_t deadline = hclock_mono_ns() + (int64_t)SCAN_TIMEOUT_MS * 1000000;
    bool go = true;
    while (go && remaining > 0) {
        if (hclock_mono_ns() > deadline) {
            log_warn(DLQ_LOG, "reading %s: %d partition(s) did not reach their end in %d s", TOPIC_DLQ,
                     remaining, SCAN_TIMEOUT_MS / 1000);
            r = HR_TIMEOUT;
            break;
        }
        int n = bus_poll(c, msgs, SCAN_POLL_MAX, 100);
        if (n < 0) {
            r = (hr_t)n;
            break;
        }
        for (int i = 0; i < n && go; i++) {
            const bus_msg_t *m = &msgs[i];
            if (m->partition >= np || m->offset >= end[m->partition]) continue;
            go = fn(arg, m);
            if (m->offset + 1 == end[m->partition]) remaining--;
        }
    }
out:
    if (c) bus_consumer_close(c); /* nothing stored: nothing committed */
    pthread_mutex_unlock(&scan_mu);
    free(lags);
    free(end);
    return r;
}

bool dlq_id_parse(const char *id, int32_t *partition, int64_t *offset)
{
    if (!id || !isdigit((unsigned char)id[0])) return false;
    char *e = NULL;
    errno = 0;
    long p = strtol(id, &e, 10);
    if (errno || *e != '-' || p < 0 || p > INT32_MAX || !isdigit((unsigned char)e[1])) return false;
    const char *o = e + 1;
    long long off = strtoll(o, &e, 10);
    if (errno || *e || off < 0) return false;
    *partition = (int32_t)p;
    *offset = off;
    return true;
}

bool dlq_since_parse(const char *text, int64_t now_ms, int64_t *out)
{
    if (!text || !*text) return false;
    char *e = NULL;
    errno = 0;
    long long v = strtoll(text, &e, 10);
    if (!errno && e != text && v >= 0) {
        int64_t unit = !*e ? 0 : strcmp(e, "s") == 0 ? 1000 : strcmp(e, "m") == 0 ? 60000
                     : strcmp(e, "h") == 0 ? 3600000 : strcmp(e, "d") == 0 ? 86400000 : -1;
        if (unit == 0) { /* ms since the epoch (or a date: handled below) */
            *out = v;
            return true;
        }
        if (unit > 0 && v <= INT64_MAX / unit) {
            *out = now_ms - v * unit;
            return true;
        }
    }
    return parse_rfc3339_ms(text, out) == HR_OK;
}

/* ---- list ---- */

static void entry_set(dlq_entry_t *e, const bus_msg_t *m, json_t *rec)
{
    snprintf(e->id, sizeof(e->id), "%" PRId32 "-%" PRId64, m->partition, m->offset);
    e->partition = m->partition;
    e->offset = m->offset;
    e->rec = rec;
}

static bool pos_before(int32_t p1, int64_t o1, int32_t p2, int64_t o2)
{
    return p1 < p2 || (p1 == p2 && o1 < o2);
}

static int entry_cmp(const void *a, const void *b)
{
    const dlq_entry_t *x = a, *y = b;
    return pos_before(x->partition, x->offset, y->partition, y->offset) ? -1
         : pos_before(y->partition, y->offset, x->partition, x->offset) ? 1 : 0;
}

static json_t *parse_rec(const bus_msg_t *m)
{
    json_t *o = json_loadb(m->value, m->value_len, JSON_ALLOW_NUL, NULL);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static bool matches(const dlq_filter_t *f, json_t *rec)
{
    if (f->since_ms > 0 && json_integer_value(json_object_get(rec, "at_ms")) < f->since_ms) return false;
    if (f->reason && *f->reason) {
        const char *why = json_string_value(json_object_get(rec, "reason"));
        if (!why || !strstr(why, f->reason)) return false;
    }
    return true;
}

/* Keeps the `limit` first matching entries (by position) after f->after,
 * plus one to tell whether more exist. */
typedef struct lister {
    const dlq_filter_t *f;
    int32_t after_p;
    int64_t after_o;
    bool has_after;
    dlq_entry_t *v;
    int n, cap, keep;           /* keep = limit + 1, or unbounded */
} lister_t;

static bool list_visit(void *arg, const bus_msg_t *m)
{
    lister_t *l = arg;
    if (l->has_after && !pos_before(l->after_p, l->after_o, m->partition, m->offset)) return true;
    json_t *rec = parse_rec(m);
    if (!rec) rec = json_pack("{s:s}", "reason", "(unreadable DLQ record)");
    if (!matches(l->f, rec)) {
        json_decref(rec);
        return true;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
    }
    memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
    entry_set(&l->v[l->n++], m, rec);
    if (l->keep > 0 && l->n > 4 * l->keep) { /* keep memory bounded: drop the last ones */
        qsort(l->v, (size_t)l->n, sizeof(*l->v), entry_cmp);
        for (int i = l->keep; i < l->n; i++) json_decref(l->v[i].rec);
        l->n = l->keep;
    }
    return true;
}

hr_t dlq_list(app_t *app, const dlq_filter_t *f, dlq_entry_t **out, int *n, bool *more)
{
    *out = NULL;
    *n = 0;
    *more = false;
    lister_t l = {.f = f, .keep = f->limit > 0 ? f->limit + 1 : 0};
    if (f->after) {
        if (!dlq_id_parse(f->after, &l.after_p, &l.after_o)) return HR_INVALID;
        l.has_after = true;
    }
    hr_t r = scan(app, list_visit, &l);
    if (r != HR_OK) {
        dlq_entries_free(l.v, l.n);
        return r;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof(*l.v), entry_cmp);
    if (f->limit > 0 && l.n > f->limit) {
        for (int i = f->limit; i < l.n; i++) json_decref(l.v[i].rec);
        l.n = f->limit;
        *more = true;
    }
    for (int i = 0; i < l.n && r == HR_OK; i++) r = store_dlq_redriven(app->store, l.v[i].id, &l.v[i].redriven);
    if (r != HR_OK) {
        dlq_entries_free(l.v, l.n);
        return r;
    }
    *out = l.v;
    *n = l.n;
    return HR_OK;
}

/* ---- summary (GET /v1/ops/summary) ---- */

hr_t dlq_size(app_t *app, int64_t *records, int64_t *stamp)
{
    bus_lag_t *lags = NULL;
    int nl = 0;
    *records = *stamp = 0;
    hr_t r = bus_lag(app->bus, DLQ_GROUP, TOPIC_DLQ, &lags, &nl);
    if (r == HR_NOTFOUND) return HR_OK; /* no DLQ topic yet: empty */
    if (r != HR_OK) return r;
    for (int i = 0; i < nl; i++) {
        *records += lags[i].lag;
        *stamp += lags[i].end_offset;
    }
    free(lags);
    return HR_OK;
}

/* Newest first: at_ms descending, then position descending. */
static int newest_cmp(const void *a, const void *b)
{
    const dlq_entry_t *x = a, *y = b;
    json_int_t ax = json_integer_value(json_object_get(x->rec, "at_ms"));
    json_int_t ay = json_integer_value(json_object_get(y->rec, "at_ms"));
    if (ax != ay) return ax > ay ? -1 : 1;
    return -entry_cmp(a, b);
}

/* Keeps the `keep` newest entries seen (sorting and cutting at 4 x keep). */
typedef struct newest {
    dlq_entry_t *v;
    int n, cap, keep;
} newest_t;

static void newest_cut(newest_t *l)
{
    qsort(l->v, (size_t)l->n, sizeof(*l->v), newest_cmp);
    for (int i = l->keep; i < l->n; i++) json_decref(l->v[i].rec);
    if (l->n > l->keep) l->n = l->keep;
}

static bool newest_visit(void *arg, const bus_msg_t *m)
{
    newest_t *l = arg;
    json_t *rec = parse_rec(m);
    if (!rec) rec = json_pack("{s:s}", "reason", "(unreadable DLQ record)");
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4 * l->keep + 1;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
    }
    memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
    entry_set(&l->v[l->n++], m, rec);
    if (l->n > 4 * l->keep) newest_cut(l);
    return true;
}

hr_t dlq_latest(app_t *app, int max, dlq_entry_t **out, int *n)
{
    assert(max > 0);
    *out = NULL;
    *n = 0;
    newest_t l = {.keep = max};
    hr_t r = scan(app, newest_visit, &l);
    if (r == HR_NOTFOUND) r = HR_OK;
    if (r == HR_OK && l.n) newest_cut(&l);
    for (int i = 0; i < l.n && r == HR_OK; i++) r = store_dlq_redriven(app->store, l.v[i].id, &l.v[i].redriven);
    if (r != HR_OK) {
        dlq_entries_free(l.v, l.n);
        return r;
    }
    *out = l.v;
    *n = l.n;
    return HR_OK;
}

void dlq_entries_free(dlq_entry_t *e, int n)
{
    if (!e) return;
    for (int i = 0; i < n; i++) json_decref(e[i].rec);
    free(e);
}

json_t *dlq_entry_json(const dlq_entry_t *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(e->id));
    static const char *const keys[] = {"at_ms", "reason", "stage", "topic", "partition", "offset",
                                       "payload", "payload_hex"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(e->rec, keys[i]);
        if (v) json_object_set(o, keys[i], v);
    }
    json_object_set_new(o, "redriven", json_boolean(e->redriven));
    return o;
}

/* ---- redrive ---- */

/* The original payload bytes of a DLQ record (malloc'd), or NULL. */
static char *payload_of(json_t *rec, size_t *len)
{
    json_t *p = json_object_get(rec, "payload");
    if (json_is_string(p)) {
        *len = json_string_length(p);
        char *b = xmalloc(*len + 1);
        memcpy(b, json_string_value(p), *len);
        return b;
    }
    const char *hex = json_string_value(json_object_get(rec, "payload_hex"));
    if (!hex || strlen(hex) % 2) return NULL;
    *len = strlen(hex) / 2;
    char *b = xmalloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        int hi = hex_value((unsigned char)hex[2 * i]), lo = hex_value((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (char)(hi * 16 + lo);
    }
    return b;
}

/* The channel whose topic or retry tier `topic` is; -1 if none. */
static int channel_of_topic(const char *topic)
{
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const channel_names_t *nm = names_for_channel(ch);
        if (strcmp(topic, nm->topic) == 0) return ch;
        for (int t = 0; t < RETRY_TIERS; t++)
            if (strcmp(topic, nm->retry_topic[t]) == 0) return ch;
    }
    return -1;
}

/* Produces the entry back to its origin with batch. */
static hr_t redrive_produce(app_t *app, json_t *rec, bus_batch_t *batch, char *why, size_t why_len)
{
    const char *topic = json_string_value(json_object_get(rec, "topic"));
    size_t len = 0;
    char *payload = payload_of(rec, &len);
    hr_t r = HR_INVALID;
    if (!topic || !payload) {
        snprintf(why, why_len, "the record has no topic or payload");
        goto out;
    }
    if (strcmp(topic, TOPIC_RAW) == 0) {
        /* an event: forget its dedupe claim, or fan-out would drop it as a duplicate */
        json_t *ev = json_loadb(payload, len, 0, NULL);
        const char *eid = json_string_value(json_object_get(ev, "event_id"));
        if (eid && *eid && (r = store_event_release(app->store, eid)) != HR_OK) {
            snprintf(why, why_len, "cannot release the claim of event %s: %s", eid, hr_str(r));
            json_decref(ev);
            goto out;
        }
        const char *key = eid && *eid ? eid : "redrive";
        r = stage_produce(app, TOPIC_RAW, -1, key, strlen(key), payload, len, batch);
        json_decref(ev);
        goto out;
    }
    int ch = channel_of_topic(topic);
    notif_t x;
    if (ch < 0 || notif_decode(payload, len, &x) != HR_OK || x.kind != REC_NOTIFICATION) {
        snprintf(why, why_len, "cannot redrive a record of %s that is not a notification of herald's",
                 topic);
        r = HR_INVALID;
        goto out;
    }
    /* processed again with every retry tier; due_at_ms = now makes the
     * dispatcher check "already sent" before sending it */
    x.attempt = 1;
    x.due_at_ms = hclock_now_ms();
    buf_t b;
    buf_init(&b, 0);
    r = notif_encode(&x, &b);
    if (r == HR_OK)
        r = stage_produce(app, topic_for_channel(ch), -1, x.user_id.p, x.user_id.n, b.data, b.len, batch);
    buf_release(&b);
out:
    if (r != HR_OK && r != HR_INVALID && !why[0]) snprintf(why, why_len, "%s", hr_str(r));
    free(payload);
    return r;
}

typedef struct finder {
    int32_t p;
    int64_t o;
    json_t *rec;
} finder_t;

static bool find_visit(void *arg, const bus_msg_t *m)
{
    finder_t *f = arg;
    if (m->partition != f->p || m->offset != f->o) return true;
    f->rec = parse_rec(m);
    return false;
}

hr_t dlq_redrive_id(app_t *app, const char *id, char *why, size_t why_len)
{
    why[0] = '\0';
    finder_t f = {0};
    if (!dlq_id_parse(id, &f.p, &f.o)) {
        snprintf(why, why_len, "'%s' is not a DLQ entry id (<partition>-<offset>)", id);
        return HR_INVALID;
    }
    hr_t r = scan(app, find_visit, &f);
    if (r != HR_OK) {
        json_decref(f.rec);
        snprintf(why, why_len, "cannot read %s: %s", TOPIC_DLQ, hr_str(r));
        return r;
    }
    if (!f.rec) {
        snprintf(why, why_len, "no DLQ entry %s", id);
        return HR_NOTFOUND;
    }
    bus_batch_t batch;
    bus_batch_init(&batch);
    r = redrive_produce(app, f.rec, &batch, why, why_len);
    hr_t acked = bus_batch_wait(app->bus, &batch, ACK_TIMEOUT_MS);
    if (r == HR_OK) r = acked;
    if (r == HR_OK) r = store_dlq_mark_redriven(app->store, id, NULL);
    if (r == HR_OK) METRIC_INC(dlq_redriven);
    else if (!why[0]) snprintf(why, why_len, "%s", hr_str(r));
    bus_batch_release(&batch);
    json_decref(f.rec);
    return r;
}

typedef struct driver {
    app_t *app;
    const char *reason;
    bus_batch_t batch;
    char (*ids)[48];
    int n, cap, skipped;
    hr_t r;
} driver_t;

static bool drive_visit(void *arg, const bus_msg_t *m)
{
    driver_t *d = arg;
    char id[48];
    snprintf(id, sizeof(id), "%" PRId32 "-%" PRId64, m->partition, m->offset);
    bool done = false;
    if ((d->r = store_dlq_redriven(d->app->store, id, &done)) != HR_OK) return false;
    if (done) return true;
    json_t *rec = parse_rec(m);
    dlq_filter_t f = {.reason = d->reason};
    if (!rec || !matches(&f, rec)) {
        if (!rec) d->skipped++;
        json_decref(rec);
        return true;
    }
    char why[256] = "";
    hr_t r = redrive_produce(d->app, rec, &d->batch, why, sizeof(why));
    json_decref(rec);
    if (r == HR_INVALID) {
        log_warn(DLQ_LOG, "entry %s not redriven: %s", id, why);
        d->skipped++;
        return true;
    }
    if (r != HR_OK) {
        d->r = r;
        return false;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->ids = xrealloc(d->ids, (size_t)d->cap * sizeof(*d->ids));
    }
    memcpy(d->ids[d->n++], id, sizeof(id));
    return true;
}

hr_t dlq_redrive_all(app_t *app, const char *reason, int *done, int *skipped)
{
    driver_t d = {.app = app, .reason = reason};
    bus_batch_init(&d.batch);
    *done = *skipped = 0;
    hr_t r = scan(app, drive_visit, &d);
    if (r == HR_OK) r = d.r;
    /* what was produced is marked once acknowledged, even after an error */
    hr_t acked = bus_batch_wait(app->bus, &d.batch, ACK_TIMEOUT_MS);
    if (acked == HR_OK) {
        for (int i = 0; i < d.n; i++) {
            hr_t m = store_dlq_mark_redriven(app->store, d.ids[i], NULL);
            if (m != HR_OK && r == HR_OK) r = m;
        }
        *done = d.n;
        METRIC_ADD(dlq_redriven, d.n);
    } else if (r == HR_OK) {
        r = acked;
    }
    *skipped = d.skipped;
    bus_batch_release(&d.batch);
    free(d.ids);
    return r;
}
