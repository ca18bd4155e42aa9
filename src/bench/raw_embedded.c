/*
 * raw_embedded.c - the ceiling set by the embedded bus: the same records, of
 * the same sizes, through the same hops and consumer groups as herald, with
 * no herald logic in between.
 *
 *   producer  -> raw-events            the workload's event JSON, batches of 500 (as ingest)
 *   relay     raw-events -> notifications-<channel>   one record per recipient, keyed by user
 *   relay x4  notifications-<channel> -> notification-status   one status record each
 *   consumer  notification-status      read and counted
 *
 * Every relay keeps herald's at-least-once rule - an input offset is stored
 * only after the outputs it produced are acknowledged - but may keep `depth`
 * batches in flight instead of waiting after each one. The figure reported
 * is notifications through the second relay (status acknowledged) per
 * second, the analogue of herald's notifications delivered.
 */
#include "bench/bench_int.h"

#include "app.h"
#include "bus/bus.h"
#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAW_MAX_DEPTH 16
#define RAW_EVENT_BATCH 500
#define RAW_MAX_RANGES 64

static const int raw_channels[] = {CH_PUSH, CH_INAPP, CH_EMAIL, CH_SMS};
#define RAW_NCH ((int)ARRAY_LEN(raw_channels))

typedef struct range {
    const char *topic;
    int32_t part;
    int64_t last;
} range_t;

typedef struct slot {
    bus_batch_t b;
    range_t r[RAW_MAX_RANGES];
    int nr;
    int64_t count;              /* notifications completed when acked (dispatch relays) */
} slot_t;

typedef struct raw_ctx {
    const raw_opts_t *o;
    bus_t *bus;
    atomic_bool stop;
    _Atomic int64_t events;     /* produced and acknowledged */
    _Atomic int64_t offered;    /* notifications in produced events */
    _Atomic int64_t done;       /* notifications whose status record is acknowledged */
    _Atomic int64_t status_read;
    size_t raw_bytes;
    char topics[RAW_NCH][64];
} raw_ctx_t;

typedef struct relay {
    raw_ctx_t *x;
    int kind;                   /* 0 fan-out, 1 dispatch, 2 status */
    const char *topic;
    const char *group;
    int ch;
    bus_consumer_t *cons;
    pthread_t th;
    hr_t result;
} relay_t;

static void add_range(slot_t *s, const bus_msg_t *m)
{
    for (int i = 0; i < s->nr; i++)
        if (s->r[i].part == m->partition && s->r[i].topic == m->topic) {
            if (m->offset > s->r[i].last) s->r[i].last = m->offset;
            return;
        }
    if (s->nr < RAW_MAX_RANGES) s->r[s->nr++] = (range_t){m->topic, m->partition, m->offset};
}

static hr_t produce(raw_ctx_t *x, const char *topic, const void *key, size_t klen, const void *val,
                    size_t vlen, bus_batch_t *b)
{
    for (;;) {
        hr_t r = bus_produce(x->bus, topic, -1, key, klen, val, vlen, b);
        if (r != HR_AGAIN) return r;
        bus_flush(x->bus, 10);
    }
}

/* bus_produce_batch, waiting while the producer queue is full. */
static hr_t produce_many(raw_ctx_t *x, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *b)
{
    int k = 0;
    for (;;) {
        int got = 0;
        hr_t r = bus_produce_batch(x->bus, topic, recs + k, n - k, b, &got);
        k += got;
        if (r != HR_AGAIN) return r;
        bus_flush(x->bus, 10);
    }
}

static hr_t retire(relay_t *rl, slot_t *s)
{
    raw_ctx_t *x = rl->x;
    hr_t r = bus_batch_wait(x->bus, &s->b, -1);
    if (r != HR_OK) return r;
    for (int i = 0; i < s->nr; i++) bus_store_offset(rl->cons, s->r[i].topic, s->r[i].part, s->r[i].last + 1);
    if (rl->kind == 1) atomic_fetch_add(&x->done, s->count);
    s->nr = 0;
    s->count = 0;
    return HR_OK;
}

static void *relay_main(void *arg)
{
    relay_t *rl = arg;
    raw_ctx_t *x = rl->x;
    const raw_opts_t *o = x->o;
    int depth = o->depth < 1 ? 1 : o->depth > RAW_MAX_DEPTH ? RAW_MAX_DEPTH : o->depth;
    bus_msg_t *msgs = xcalloc((size_t)o->batch_max, sizeof(*msgs));
    slot_t *ring = xcalloc((size_t)depth, sizeof(*ring));
    for (int i = 0; i < depth; i++) bus_batch_init(&ring[i].b);
    int64_t head = 0, tail = 0, seq = 0;
    hr_t r = HR_OK;
    int crecs = o->batch_max > 64 ? o->batch_max : 64;
    bus_rec_t *recs = xcalloc((size_t)crecs, sizeof(*recs));
    char(*keys)[WL_USER_ID_LEN + 1] = NULL;

    while (r == HR_OK) {
        bool stopping = atomic_load(&x->stop);
        int n = stopping ? 0 : bus_poll(rl->cons, msgs, o->batch_max, head > tail ? 0 : 100);
        if (n < 0) {
            r = (hr_t)n;
            break;
        }
        if (n > 0) {
            slot_t *s = &ring[head % depth];
            int nr = 0;
            for (int i = 0; i < n && r == HR_OK; i++) {
                const bus_msg_t *m = &msgs[i];
                add_range(s, m);
                if (rl->kind == 0) {
                    /* one event's notifications, one batch produce (as fan-out) */
                    const unsigned char *v = m->value;
                    int cnt = v[0] | v[1] << 8, ch = v[2];
                    if (cnt > crecs) {
                        crecs = cnt;
                        recs = xrealloc(recs, (size_t)crecs * sizeof(*recs));
                        free(keys);
                        keys = NULL;
                    }
                    if (!keys) keys = xcalloc((size_t)crecs, sizeof(*keys));
                    for (int k = 0; k < cnt; k++) {
                        workload_user_id((int64_t)((seq++ * 2654435761u) % (uint64_t)o->users), keys[k]);
                        const buf_t *b = &o->notif_pool[seq % (uint64_t)o->pool_n];
                        recs[k] = (bus_rec_t){-1, keys[k], WL_USER_ID_LEN, b->data, b->len};
                    }
                    r = produce_many(x, x->topics[ch], recs, cnt, &s->b);
                } else if (rl->kind == 1) {
                    const buf_t *b = &o->status_pool[seq++ % (uint64_t)o->pool_n];
                    recs[nr++] = (bus_rec_t){-1, m->key, m->key_len, b->data, b->len};
                    s->count++;
                } else {
                    atomic_fetch_add_explicit(&x->status_read, 1, memory_order_relaxed);
                }
            }
            if (rl->kind == 1 && nr && r == HR_OK) r = produce_many(x, TOPIC_STATUS, recs, nr, &s->b);
            head++;
        }
        if (head > tail && (head - tail == depth || n == 0)) {
            r = retire(rl, &ring[tail % depth]);
            tail++;
        }
        if (stopping && head == tail) break;
    }
    for (int i = 0; i < depth; i++) bus_batch_release(&ring[i].b);
    free(recs);
    free(keys);
    free(ring);
    free(msgs);
    rl->result = r;
    return NULL;
}

typedef struct producer {
    raw_ctx_t *x;
    pthread_t th;
    hr_t result;
} producer_t;

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    raw_ctx_t *x = p->x;
    const raw_opts_t *o = x->o;
    int depth = o->depth < 1 ? 1 : o->depth > RAW_MAX_DEPTH ? RAW_MAX_DEPTH : o->depth;
    workload_t wl;
    workload_init(&wl, o->seed, o->users, "raw");
    bus_batch_t *ring = xcalloc((size_t)depth, sizeof(*ring));
    int64_t *ring_ev = xcalloc((size_t)depth, sizeof(*ring_ev));
    for (int i = 0; i < depth; i++) bus_batch_init(&ring[i]);
    buf_t ev, val;
    buf_init(&ev, 0);
    buf_init(&val, 0);
    int64_t head = 0, tail = 0;
    hr_t r = HR_OK;
    double bytes = 0;
    while (r == HR_OK && !atomic_load(&x->stop)) {
        if (atomic_load(&x->offered) - atomic_load(&x->done) >= o->window) {
            if (head > tail) {
                r = bus_batch_wait(x->bus, &ring[tail % depth], -1);
                atomic_fetch_add(&x->events, ring_ev[tail % depth]);
                tail++;
            } else {
                usleep(200);
            }
            continue;
        }
        bus_batch_t *b = &ring[head % depth];
        int64_t offered = 0;
        for (int i = 0; i < RAW_EVENT_BATCH && r == HR_OK; i++) {
            int ch;
            buf_reset(&ev);
            int n = workload_next(&wl, &ev, &ch);
            /* the value: 4 bytes telling the relay what to fan out, then the
             * event as ingest would publish it */
            buf_reset(&val);
            unsigned char hdr[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)ch, 0};
            buf_append(&val, hdr, 4);
            buf_append(&val, ev.data, ev.len);
            buf_append_str(&val, ",\"_accepted_at_us\":1700000000000000");
            char key[48];
            int kl = snprintf(key, sizeof(key), "raw-%lld", (long long)(wl.events - 1));
            r = produce(x, TOPIC_RAW, key, (size_t)kl, val.data, val.len, b);
            offered += n;
            bytes += (double)val.len;
        }
        ring_ev[head % depth] = RAW_EVENT_BATCH;
        atomic_fetch_add(&x->offered, offered);
        head++;
        if (head - tail == depth) {
            r = bus_batch_wait(x->bus, &ring[tail % depth], -1);
            atomic_fetch_add(&x->events, ring_ev[tail % depth]);
            tail++;
        }
    }
    while (head > tail) {
        bus_batch_wait(x->bus, &ring[tail % depth], -1);
        atomic_fetch_add(&x->events, ring_ev[tail % depth]);
        tail++;
    }
    x->raw_bytes = wl.events ? (size_t)(bytes / (double)wl.events) : 0;
    for (int i = 0; i < depth; i++) bus_batch_release(&ring[i]);
    free(ring);
    free(ring_ev);
    buf_release(&ev);
    buf_release(&val);
    workload_release(&wl);
    p->result = r;
    return NULL;
}

hr_t raw_embedded_run(const raw_opts_t *o, raw_result_t *res)
{
    memset(res, 0, sizeof(*res));
    raw_ctx_t x;
    memset(&x, 0, sizeof(x));
    x.o = o;
    bus_opts_t bo = {
        .backend = "embedded",
        .dir = o->dir,
        .fsync = o->fsync,
        .fsync_interval_ms = o->fsync_interval_ms,
        .flush_interval_us = o->flush_interval_us,
    };
    hr_t r = bus_open(&bo, &x.bus);
    if (r != HR_OK) return r;
    bus_topic_opts_t to = {.partitions = o->partitions, .replication = 1, .min_insync = 1,
                           .retention_ms = -1, .retention_bytes = -1};
    r = bus_topic_ensure(x.bus, TOPIC_RAW, &to);
    for (int i = 0; i < RAW_NCH && r == HR_OK; i++) {
        snprintf(x.topics[raw_channels[i]], sizeof(x.topics[0]), "%s", topic_for_channel(raw_channels[i]));
        r = bus_topic_ensure(x.bus, x.topics[raw_channels[i]], &to);
    }
    if (r == HR_OK) r = bus_topic_ensure(x.bus, TOPIC_STATUS, &to);
    if (r != HR_OK) {
        bus_close(x.bus);
        return r;
    }

    relay_t relays[2 + RAW_NCH];
    int nrel = 0;
    relays[nrel++] = (relay_t){.x = &x, .kind = 0, .topic = TOPIC_RAW, .group = GROUP_FANOUT};
    for (int i = 0; i < RAW_NCH; i++)
        relays[nrel++] = (relay_t){.x = &x, .kind = 1, .topic = x.topics[raw_channels[i]],
                                   .group = names_for_channel(raw_channels[i])->group, .ch = raw_channels[i]};
    relays[nrel++] = (relay_t){.x = &x, .kind = 2, .topic = TOPIC_STATUS, .group = GROUP_STATUS};
    int started = 0;
    for (int i = 0; i < nrel && r == HR_OK; i++) {
        const char *t[1] = {relays[i].topic};
        r = bus_consumer_new(x.bus, relays[i].group, t, 1, NULL, &relays[i].cons);
        if (r == HR_OK && pthread_create(&relays[i].th, NULL, relay_main, &relays[i]) != 0) {
            bus_consumer_close(relays[i].cons);
            r = HR_ERR;
        }
        if (r == HR_OK) started++;
    }
    producer_t prod = {.x = &x};
    bool prod_started = r == HR_OK && pthread_create(&prod.th, NULL, producer_main, &prod) == 0;
    if (r == HR_OK && !prod_started) r = HR_ERR;

    if (r == HR_OK) {
        raw_counters_t k = {&x.events, &x.offered, &x.done, &x.status_read};
        raw_measure(o, &k, res);
    }
    atomic_store(&x.stop, true);
    if (prod_started) pthread_join(prod.th, NULL);
    for (int i = 0; i < started; i++) {
        pthread_join(relays[i].th, NULL);
        bus_consumer_close(relays[i].cons);
        if (r == HR_OK && relays[i].result != HR_OK) r = relays[i].result;
    }
    res->raw_bytes_avg = x.raw_bytes;
    bus_close(x.bus);
    return r;
}
