/*
 * stage.c - the generic consume -> process -> ack -> store-offset loop.
 */
#include "stage/stage.h"

#include "core/buf.h"
#include "core/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct stage_worker {
    app_t *app;
    const stage_def_t *def;
    int index;
    pthread_t thread;
    bus_consumer_t *consumer;
    void *state;
};

typedef struct part_range {
    const char *topic;
    int32_t partition;
    int64_t first;
    int64_t last;
} part_range_t;

static void *worker_main(void *arg)
{
    stage_worker_t *w = arg;
    app_t *app = w->app;
    const stage_def_t *def = w->def;
    int max = app->cfg->batch_max;
    bus_msg_t *msgs = xcalloc((size_t)max, sizeof(*msgs));
    part_range_t ranges[256];
    bus_batch_t batch;
    int backoff_ms = 10;

    bus_batch_init(&batch);
    while (!atomic_load(&app->stopping)) {
        int n = bus_poll(w->consumer, msgs, max, 100);
        if (n < 0) {
            log_warn(def->name, "poll failed: %s", hr_str((hr_t)n));
            usleep(100000);
            continue;
        }
        if (n == 0) continue;

        int nr = 0;
        for (int i = 0; i < n; i++) {
            int j = 0;
            for (; j < nr; j++)
                if (ranges[j].partition == msgs[i].partition &&
                    strcmp(ranges[j].topic, msgs[i].topic) == 0)
                    break;
            if (j == nr) {
                if (nr == (int)ARRAY_LEN(ranges)) abort(); /* more partitions than any config allows */
                ranges[nr++] = (part_range_t){msgs[i].topic, msgs[i].partition, msgs[i].offset,
                                              msgs[i].offset};
            } else {
                if (msgs[i].offset < ranges[j].first) ranges[j].first = msgs[i].offset;
                if (msgs[i].offset > ranges[j].last) ranges[j].last = msgs[i].offset;
            }
        }

        hr_t r = def->process(w->state, msgs, n, &batch);
        hr_t acked = bus_batch_wait(app->bus, &batch, -1);
        if (r == HR_OK && acked == HR_OK) {
            for (int j = 0; j < nr; j++)
                bus_store_offset(w->consumer, ranges[j].topic, ranges[j].partition,
                                 ranges[j].last + 1);
            backoff_ms = 10;
            continue;
        }
        /* Something failed: process the batch again after a pause. */
        log_warn(def->name, "batch of %d failed (process: %s, outputs: %s); retrying in %d ms", n,
                 hr_str(r), hr_str(acked), backoff_ms);
        for (int j = 0; j < nr; j++)
            bus_seek(w->consumer, ranges[j].topic, ranges[j].partition, ranges[j].first);
        for (int slept = 0; slept < backoff_ms && !atomic_load(&app->stopping); slept += 10)
            usleep(10000);
        if (backoff_ms < 5000) backoff_ms *= 2;
    }
    bus_batch_release(&batch);
    free(msgs);
    return NULL;
}

hr_t stage_worker_start(app_t *app, const stage_def_t *def, int index, stage_worker_t **out)
{
    stage_worker_t *w = xcalloc(1, sizeof(*w));
    w->app = app;
    w->def = def;
    w->index = index;
    const char *topics[1] = {def->topic};
    hr_t r = bus_consumer_new(app->bus, def->group, topics, 1, NULL, &w->consumer);
    if (r != HR_OK) {
        log_error(def->name, "cannot join group %s: %s", def->group, hr_str(r));
        free(w);
        return r;
    }
    w->state = def->state_new ? def->state_new(app, def, index) : NULL;
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
