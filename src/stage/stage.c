/*
 * stage.c - the generic consume -> process -> ack -> store-offset loop.
 */
#include "stage/stage.h"

#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct inflight inflight_t;

struct stage_worker {
    app_t *app;
    const stage_def_t *def;
    int index;
    pthread_t thread;
    bus_consumer_t *consumer;
    void *state;
    /* batches in flight (worker thread only) */
    inflight_t *ring;
    int64_t head, tail;
    bool failed;                /* a batch in the ring failed: poll no more until it is retired */
    int range_cap;              /* records per batch at most, so partitions per batch at most */
};

typedef struct part_range {
    const char *topic;
    int32_t partition;
    int64_t first;
    int64_t last;
} part_range_t;

static void on_assigned(void *opaque, const char *topic, int32_t partition)
{
    stage_worker_t *w = opaque;
    if (w->def->partition_changed) w->def->partition_changed(w->state, topic, partition, true);
}

static void drain(stage_worker_t *w);

/* Before a partition goes: finish what is in flight so its offsets are
 * stored now (the bus commits them right after this returns). */
static void on_revoked(void *opaque, const char *topic, int32_t partition)
{
    stage_worker_t *w = opaque;
    drain(w);
    if (w->def->partition_changed) w->def->partition_changed(w->state, topic, partition, false);
}

/* One polled batch whose outputs may still be unacknowledged. */
struct inflight {
    bus_batch_t batch;
    part_range_t *ranges;       /* range_cap entries: a batch touches at most one per record */
    int nr;
    int n;
    hr_t r;                     /* what process() returned */
};

/* Copies of records (gathering stages), valid until the next gather. */
typedef struct gathered {
    buf_t bytes;
    size_t *key_at, *val_at;
    int cap;
} gathered_t;

static void ranges_of(inflight_t *f, const char *topic, const bus_msg_t *msgs, int n)
{
    f->nr = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < f->nr && f->ranges[j].partition != msgs[i].partition) j++;
        if (j == f->nr) {
            f->ranges[f->nr++] = (part_range_t){topic, msgs[i].partition, msgs[i].offset, msgs[i].offset};
        } else {
            if (msgs[i].offset < f->ranges[j].first) f->ranges[j].first = msgs[i].offset;
            if (msgs[i].offset > f->ranges[j].last) f->ranges[j].last = msgs[i].offset;
        }
    }
}

/* Polls more records after a first batch of n (already in msgs), copying
 * them all so that they outlive the polls, until `want` records are there
 * or the bus has nothing more right now. Returns the new count. */
static int gather(stage_worker_t *w, gathered_t *g, bus_msg_t *msgs, int n, int want)
{
    buf_reset(&g->bytes);
    if (g->cap < want) {
        g->cap = want;
        g->key_at = xrealloc(g->key_at, (size_t)want * sizeof(*g->key_at));
        g->val_at = xrealloc(g->val_at, (size_t)want * sizeof(*g->val_at));
    }
    int total = 0;
    for (;;) {
        for (int i = 0; i < n; i++) {
            bus_msg_t *m = &msgs[total + i];
            g->key_at[total + i] = g->bytes.len;
            buf_append(&g->bytes, m->key, m->key_len);
            g->val_at[total + i] = g->bytes.len;
            buf_append(&g->bytes, m->value, m->value_len);
            m->topic = w->def->topic;
        }
        total += n;
        int room = want - total;
        if (room <= 0) break;
        n = bus_poll(w->consumer, msgs + total, room, 0);
        if (n <= 0) break;
    }
    for (int i = 0; i < total; i++) {
        msgs[i].key = g->bytes.data + g->key_at[i];
        msgs[i].value = g->bytes.data + g->val_at[i];
    }
    return total;
}

/*
 * The loop. Up to PIPELINE batches are in flight: while the bus
 * acknowledges the outputs of one, the next is polled and processed. Input
 * offsets are stored strictly in order, each only after its batch's outputs
 * are acknowledged. When a batch fails, every later one is abandoned too:
 * the worker waits for what is in flight, seeks back to the failed batch's
 * first records and processes from there again after a pause.
 */
#define PIPELINE (w->app->cfg->pipeline_depth) /* pipeline.depth */

/* Waits for the oldest batch in flight. true when its offsets were stored;
 * false when it failed (it stays in the ring). */
static bool retire_oldest(stage_worker_t *w, hr_t *acked)
{
    inflight_t *f = &w->ring[w->tail % PIPELINE];
    *acked = bus_batch_wait(w->app->bus, &f->batch, -1);
    if (f->r != HR_OK || *acked != HR_OK) return false;
    for (int j = 0; j < f->nr; j++)
        bus_store_offset(w->consumer, f->ranges[j].topic, f->ranges[j].partition, f->ranges[j].last + 1);
    w->tail++;
    return true;
}

/* Retires every batch in flight that succeeded, in order, up to the first
 * failure. */
static void drain(stage_worker_t *w)
{
    hr_t acked;
    while (w->ring && w->head > w->tail && retire_oldest(w, &acked)) {
    }
}

/* The oldest batch failed: abandon it and everything after it, and seek
 * back to its first records. */
static void rewind_failed(stage_worker_t *w)
{
    /* every batch in the ring may touch range_cap partitions; this is the rare error path */
    part_range_t *back = xcalloc((size_t)PIPELINE * (size_t)w->range_cap, sizeof(*back));
    int nb = 0;
    for (int64_t k = w->tail; k < w->head; k++) {
        inflight_t *x = &w->ring[k % PIPELINE];
        if (k > w->tail) bus_batch_wait(w->app->bus, &x->batch, -1);
        for (int j = 0; j < x->nr; j++) {
            int b = 0;
            while (b < nb && back[b].partition != x->ranges[j].partition) b++;
            if (b == nb) back[nb++] = x->ranges[j];
            else if (x->ranges[j].first < back[b].first) back[b].first = x->ranges[j].first;
        }
    }
    w->tail = w->head;
    w->failed = false;
    for (int b = 0; b < nb; b++) bus_seek(w->consumer, back[b].topic, back[b].partition, back[b].first);
    free(back);
}

static void *worker_main(void *arg)
{
    stage_worker_t *w = arg;
    app_t *app = w->app;
    const stage_def_t *def = w->def;
    char tname[16];
    snprintf(tname, sizeof(tname), "%s", def->name); /* shows in top -H, perf */
    pthread_setname_np(pthread_self(), tname);
    if (def->nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), def->nice) != 0)
        log_warn(def->name, "cannot lower the thread's priority: %s", strerror(errno));
    int max = app->cfg->batch_max;
    int cap = def->gather > max ? def->gather : max;
    bus_msg_t *msgs = xcalloc((size_t)cap, sizeof(*msgs));
    gathered_t g;
    memset(&g, 0, sizeof(g));
    buf_init(&g.bytes, 0);
    int backoff_ms = 10;

    w->ring = xcalloc(PIPELINE, sizeof(*w->ring));
    w->range_cap = cap;
    for (int i = 0; i < PIPELINE; i++) {
        bus_batch_init(&w->ring[i].batch);
        w->ring[i].ranges = xcalloc((size_t)cap, sizeof(*w->ring[i].ranges));
    }
    for (;;) {
        bool stopping = atomic_load(&app->stopping);
        if (stopping && w->head == w->tail) break;
        int n = 0;
        if (!stopping && !w->failed && w->head - w->tail < PIPELINE) {
            n = bus_poll(w->consumer, msgs, max, w->head > w->tail ? 0 : 100);
            if (n < 0) {
                log_warn(def->name, "poll failed: %s", hr_str((hr_t)n));
                usleep(100000);
                continue;
            }
            if (n > 0 && def->gather > max) n = gather(w, &g, msgs, n, def->gather);
        }
        if (n > 0) {
            inflight_t *f = &w->ring[w->head % PIPELINE];
            ranges_of(f, def->topic, msgs, n);
            f->n = n;
            f->r = def->process(w->state, msgs, n, &f->batch);
            w->head++;
            if (f->r != HR_OK) w->failed = true;
            else if (w->head - w->tail < PIPELINE) continue;
        }
        if (w->head == w->tail) continue;

        hr_t acked;
        if (retire_oldest(w, &acked)) {
            backoff_ms = 10;
            continue;
        }
        inflight_t *f = &w->ring[w->tail % PIPELINE];
        log_warn(def->name, "batch of %d failed (process: %s, outputs: %s); retrying in %d ms", f->n,
                 hr_str(f->r), hr_str(acked), backoff_ms);
        rewind_failed(w);
        for (int slept = 0; slept < backoff_ms && !atomic_load(&app->stopping); slept += 10)
            usleep(10000);
        if (backoff_ms < 5000) backoff_ms *= 2;
    }
    for (int i = 0; i < PIPELINE; i++) {
        bus_batch_release(&w->ring[i].batch);
        free(w->ring[i].ranges);
    }
    free(w->ring);
    w->ring = NULL;
    free(msgs);
    buf_release(&g.bytes);
    free(g.key_at);
    free(g.val_at);
    return NULL;
}

hr_t stage_worker_start(app_t *app, const stage_def_t *def, int index, stage_worker_t **out)
{
    stage_worker_t *w = xcalloc(1, sizeof(*w));
    w->app = app;
    w->def = def;
    w->index = index;
    const char *topics[1] = {def->topic};
    w->state = def->state_new ? def->state_new(app, def, index) : NULL;
    bus_rebalance_t rb = {.assigned = on_assigned, .revoked = on_revoked, .opaque = w};
    hr_t r = bus_consumer_new(app->bus, def->group, topics, 1, &rb, &w->consumer);
    if (r != HR_OK) {
        log_error(def->name, "cannot join group %s: %s", def->group, hr_str(r));
        if (def->state_free) def->state_free(w->state);
        free(w);
        return r;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        if (def->state_free) def->state_free(w->state);
        bus_consumer_close(w->consumer);
        free(w);
        return HR_ERR;
    }
    *out = w;
    return HR_OK;
}

void stage_worker_join(stage_worker_t *w)
{
    if (!w) return;
    pthread_join(w->thread, NULL);
    bus_consumer_close(w->consumer); /* commits stored offsets */
    if (w->def->state_free) w->def->state_free(w->state);
    free(w);
}

hr_t stage_dead_letter(app_t *app, const bus_msg_t *m, const char *stage, const char *reason,
                       bus_batch_t *batch)
{
    json_t *o = json_object();
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "stage", json_string(stage));
    json_object_set_new(o, "topic", json_string(m->topic));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "at_ms", json_integer(hclock_now_ms()));
    /* Keep the payload readable when it is text, else base16. */
    json_t *p = json_stringn(m->value, m->value_len);
    if (!p) {
        static const char hex[] = "0123456789abcdef";
        char *h = xmalloc(m->value_len * 2 + 1);
        const unsigned char *v = m->value;
        for (size_t i = 0; i < m->value_len; i++) {
            h[2 * i] = hex[v[i] >> 4];
            h[2 * i + 1] = hex[v[i] & 15];
        }
        h[m->value_len * 2] = '\0';
        json_object_set_new(o, "payload_hex", json_string(h));
        free(h);
    } else {
        json_object_set_new(o, "payload", p);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    hr_t r = stage_produce(app, TOPIC_DLQ, m->key_len ? -1 : 0, m->key, m->key_len, text,
                           strlen(text), batch);
    free(text);
    if (r == HR_OK) atomic_fetch_add(&app->dlq_records, 1);
    log_warn(stage, "dead-lettered %s/%d/%lld: %s", m->topic, m->partition, (long long)m->offset,
             reason);
    return r;
}

hr_t stage_produce(app_t *app, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    for (;;) {
        hr_t r = bus_produce(app->bus, topic, partition, key, key_len, value, value_len, batch);
        if (r != HR_AGAIN) return r;
        /* The producer queue is full: let it drain (backpressure, not loss). */
        bus_flush(app->bus, 10);
    }
}
