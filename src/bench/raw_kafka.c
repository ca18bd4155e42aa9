/*
 * raw_kafka.c - the ceiling set by the Kafka broker: the same records, of the
 * same sizes, through the same hops as herald (see raw_embedded.c), with
 * librdkafka called directly and no herald code in between.
 *
 * The producer has herald's settings (idempotent, acks=all, linger 5 ms,
 * lz4, large batches); consumers read with rd_kafka_consume_batch_queue()
 * and store an offset only after every record produced from its batch is
 * acknowledged (delivery report), keeping up to `depth` batches in flight.
 * Topics and groups get a fresh prefix and the topics are deleted after.
 */
#include "bench/bench_int.h"
#include "bus/bus_kafka.h"

#include "app.h"
#include "core/log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RK_MAX_DEPTH 16
#define RK_EVENT_BATCH 500
#define RK_MAX_PARTS 256

static const int rk_channels[] = {CH_PUSH, CH_INAPP, CH_EMAIL, CH_SMS};
#define RK_NCH ((int)ARRAY_LEN(rk_channels))

/* Outputs of one batch not yet acknowledged. */
typedef struct rslot {
    _Atomic int64_t pending;
    _Atomic int64_t failed;
    int64_t last[RK_MAX_PARTS]; /* next offset to store per partition, -1 = none */
    int64_t count;
} rslot_t;

typedef struct rk_ctx {
    const raw_opts_t *o;
    rd_kafka_t *prod;
    atomic_bool stop;
    atomic_bool poller_stop;
    _Atomic int64_t events, offered, done, status_read;
    char t_raw[160], t_status[160], t_notif[CH__COUNT][160];
    size_t raw_bytes;
} rk_ctx_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    rslot_t *s = m->_private;
    if (!s) return;
    if (m->err) atomic_fetch_add(&s->failed, 1);
    atomic_fetch_sub(&s->pending, 1);
}

static void *poller_main(void *arg)
{
    rk_ctx_t *x = arg;
    while (!atomic_load(&x->poller_stop)) rd_kafka_poll(x->prod, 50);
    return NULL;
}

static bool conf_kv(rd_kafka_conf_t *conf, const char *const *kv)
{
    char why[256];
    for (size_t i = 0; kv[i]; i += 2)
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            log_error("bench", "kafka %s=%s: %s", kv[i], kv[i + 1], why);
            return false;
        }
    return true;
}

static hr_t produce(rk_ctx_t *x, const char *topic, const void *key, size_t klen, const void *val,
                    size_t vlen, rslot_t *s)
{
    if (s) atomic_fetch_add(&s->pending, 1);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            x->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(s), RD_KAFKA_V_END);
        if (!e) return HR_OK;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (s) atomic_fetch_sub(&s->pending, 1);
            log_error("bench", "produce to %s: %s", topic, rd_kafka_err2str(e));
            return HR_ERR;
        }
        usleep(1000); /* the poller thread serves delivery reports meanwhile */
    }
}

static void slot_wait(rslot_t *s)
{
    while (atomic_load(&s->pending) > 0) usleep(100);
}

static void slot_reset(rslot_t *s)
{
    atomic_store(&s->pending, 0);
    atomic_store(&s->failed, 0);
    for (int i = 0; i < RK_MAX_PARTS; i++) s->last[i] = -1;
    s->count = 0;
}

typedef struct rrelay {
    rk_ctx_t *x;
    int kind;                   /* 0 fan-out, 1 dispatch, 2 status */
    const char *topic;
    char group[200];
    rd_kafka_t *cons;
    pthread_t th;
    hr_t result;
} rrelay_t;

static void store_slot(rrelay_t *rl, rslot_t *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int p = 0; p < RK_MAX_PARTS; p++)
        if (s->last[p] >= 0) rd_kafka_topic_partition_list_add(l, rl->topic, p)->offset = s->last[p];
    if (l->cnt) rd_kafka_offsets_store(rl->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (rl->kind == 1) atomic_fetch_add(&rl->x->done, s->count);
}

static void *relay_main(void *arg)
{
    rrelay_t *rl = arg;
    rk_ctx_t *x = rl->x;
    const raw_opts_t *o = x->o;
    int depth = o->depth < 1 ? 1 : o->depth > RK_MAX_DEPTH ? RK_MAX_DEPTH : o->depth;
    rslot_t *ring = xcalloc((size_t)depth, sizeof(*ring));
    for (int i = 0; i < depth; i++) slot_reset(&ring[i]);
    rd_kafka_message_t **msgs = xcalloc((size_t)o->batch_max, sizeof(*msgs));
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rl->cons);
    int64_t head = 0, tail = 0, seq = 0;
    hr_t r = HR_OK;
    char key[WL_USER_ID_LEN + 1];
    while (r == HR_OK) {
        bool stopping = atomic_load(&x->stop);
        ssize_t n = 0;
        if (!stopping) n = rd_kafka_consume_batch_queue(q, head > tail ? 0 : 100, msgs, (size_t)o->batch_max);
        if (n < 0) n = 0;
        if (n > 0) {
            rslot_t *s = &ring[head % depth];
            for (ssize_t i = 0; i < n; i++) {
                rd_kafka_message_t *m = msgs[i];
                if (m->err) {
                    rd_kafka_message_destroy(m);
                    continue;
                }
                if (m->partition >= 0 && m->partition < RK_MAX_PARTS) s->last[m->partition] = m->offset + 1;
                if (rl->kind == 0 && r == HR_OK && m->len >= 4) {
                    const unsigned char *v = m->payload;
                    int cnt = v[0] | v[1] << 8, ch = v[2];
                    for (int k = 0; k < cnt && r == HR_OK; k++) {
                        workload_user_id((int64_t)((seq++ * 2654435761u) % (uint64_t)o->users), key);
                        const buf_t *b = &o->notif_pool[seq % (uint64_t)o->pool_n];
                        r = produce(x, x->t_notif[ch], key, WL_USER_ID_LEN, b->data, b->len, s);
                    }
                } else if (rl->kind == 1 && r == HR_OK) {
                    const buf_t *b = &o->status_pool[seq++ % (uint64_t)o->pool_n];
                    r = produce(x, x->t_status, m->key, m->key_len, b->data, b->len, s);
                    s->count++;
                } else if (rl->kind == 2) {
                    atomic_fetch_add_explicit(&x->status_read, 1, memory_order_relaxed);
                }
                rd_kafka_message_destroy(m);
            }
            head++;
        }
        if (head > tail && (head - tail == depth || n == 0)) {
            rslot_t *s = &ring[tail % depth];
            slot_wait(s);
            if (atomic_load(&s->failed)) r = HR_ERR;
            else store_slot(rl, s);
            slot_reset(s);
            tail++;
        }
        if (stopping && head == tail) break;
    }
    rd_kafka_queue_destroy(q);
    free(msgs);
    free(ring);
    rl->result = r;
    return NULL;
}

typedef struct rproducer {
    rk_ctx_t *x;
    pthread_t th;
    hr_t result;
} rproducer_t;

static void *producer_main(void *arg)
{
    rproducer_t *p = arg;
    rk_ctx_t *x = p->x;
    const raw_opts_t *o = x->o;
    int depth = o->depth < 1 ? 1 : o->depth > RK_MAX_DEPTH ? RK_MAX_DEPTH : o->depth;
    rslot_t *ring = xcalloc((size_t)depth, sizeof(*ring));
    int64_t *ring_ev = xcalloc((size_t)depth, sizeof(*ring_ev));
    workload_t wl;
    workload_init(&wl, o->seed, o->users, "raw");
    buf_t ev, val;
    buf_init(&ev, 0);
    buf_init(&val, 0);
    int64_t head = 0, tail = 0;
    double bytes = 0;
    hr_t r = HR_OK;
    while (r == HR_OK && !atomic_load(&x->stop)) {
        if (atomic_load(&x->offered) - atomic_load(&x->done) >= o->window || head - tail == depth) {
            if (head > tail) {
                slot_wait(&ring[tail % depth]);
                if (atomic_load(&ring[tail % depth].failed)) r = HR_ERR;
                atomic_fetch_add(&x->events, ring_ev[tail % depth]);
                tail++;
            } else {
                usleep(200);
            }
            continue;
        }
        rslot_t *s = &ring[head % depth];
        slot_reset(s);
        int64_t offered = 0;
        for (int i = 0; i < RK_EVENT_BATCH && r == HR_OK; i++) {
            int ch;
            buf_reset(&ev);
            int n = workload_next(&wl, &ev, &ch);
            buf_reset(&val);
            unsigned char hdr[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)ch, 0};
            buf_append(&val, hdr, 4);
            buf_append(&val, ev.data, ev.len);
            buf_append_str(&val, ",\"_accepted_at_us\":1700000000000000");
            char key[48];
            int kl = snprintf(key, sizeof(key), "raw-%lld", (long long)(wl.events - 1));
            r = produce(x, x->t_raw, key, (size_t)kl, val.data, val.len, s);
            offered += n;
            bytes += (double)val.len;
        }
        ring_ev[head % depth] = RK_EVENT_BATCH;
        atomic_fetch_add(&x->offered, offered);
        head++;
    }
    while (head > tail) {
        slot_wait(&ring[tail % depth]);
        atomic_fetch_add(&x->events, ring_ev[tail % depth]);
        tail++;
    }
    x->raw_bytes = wl.events ? (size_t)(bytes / (double)wl.events) : 0;
    free(ring);
    free(ring_ev);
    buf_release(&ev);
    buf_release(&val);
    workload_release(&wl);
    p->result = r;
    return NULL;
}

/* Creates (or deletes) the benchmark's topics through the admin API. */
static hr_t admin_topics(rk_ctx_t *x, bool create)
{
    const char *names[2 + CH__COUNT];
    int n = 0;
    names[n++] = x->t_raw;
    for (int i = 0; i < RK_NCH; i++) names[n++] = x->t_notif[rk_channels[i]];
    names[n++] = x->t_status;
    rd_kafka_queue_t *q = rd_kafka_queue_new(x->prod);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(x->prod, create ? RD_KAFKA_ADMIN_OP_CREATETOPICS : RD_KAFKA_ADMIN_OP_DELETETOPICS);
    char why[256];
    rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, why, sizeof(why));
    hr_t r = HR_OK;
    if (create) {
        rd_kafka_NewTopic_t *t[2 + CH__COUNT];
        for (int i = 0; i < n; i++) t[i] = rd_kafka_NewTopic_new(names[i], x->o->partitions, 1, why, sizeof(why));
        rd_kafka_CreateTopics(x->prod, t, (size_t)n, ao, q);
        for (int i = 0; i < n; i++) rd_kafka_NewTopic_destroy(t[i]);
    } else {
        rd_kafka_DeleteTopic_t *t[2 + CH__COUNT];
        for (int i = 0; i < n; i++) t[i] = rd_kafka_DeleteTopic_new(names[i]);
        rd_kafka_DeleteTopics(x->prod, t, (size_t)n, ao, q);
        for (int i = 0; i < n; i++) rd_kafka_DeleteTopic_destroy(t[i]);
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    if (!ev || rd_kafka_event_error(ev)) {
        log_error("bench", "kafka %s topics: %s", create ? "create" : "delete",
                  ev ? rd_kafka_event_error_string(ev) : "timed out");
        r = HR_ERR;
    } else if (create) {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++)
            if (rd_kafka_topic_result_error(res[i]) &&
                rd_kafka_topic_result_error(res[i]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                log_error("bench", "create %s: %s", rd_kafka_topic_result_name(res[i]),
                          rd_kafka_topic_result_error_string(res[i]));
                r = HR_ERR;
            }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    return r;
}

static rd_kafka_t *consumer_new(const raw_opts_t *o, const char *group, const char *topic)
{
    static const char *const defaults[] = {
        "enable.auto.commit", "true",
        "auto.commit.interval.ms", "1000",
        "auto.offset.reset", "earliest",
        "enable.auto.offset.store", "false",
        "fetch.wait.max.ms", "100",
        "session.timeout.ms", "10000",
        NULL,
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    if (!conf_kv(conf, defaults) ||
        rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, why, sizeof(why)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", group, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        log_error("bench", "kafka consumer: %s", why);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        log_error("bench", "subscribe %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

hr_t raw_kafka_run(const raw_opts_t *o, raw_result_t *res)
{
    memset(res, 0, sizeof(*res));
    rk_ctx_t x;
    memset(&x, 0, sizeof(x));
    x.o = o;
    const char *pre = o->topic_prefix ? o->topic_prefix : "rawbench-";
    snprintf(x.t_raw, sizeof(x.t_raw), "%s%s", pre, "raw-events");
    snprintf(x.t_status, sizeof(x.t_status), "%s%s", pre, "notification-status");
    for (int i = 0; i < RK_NCH; i++)
        snprintf(x.t_notif[rk_channels[i]], sizeof(x.t_notif[0]), "%s%s", pre, topic_for_channel(rk_channels[i]));

    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* herald's own producer settings: the baseline measures the same producer */
    if (!conf_kv(conf, bus_kafka_producer_defaults()) ||
        rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return HR_INVALID;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    x.prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!x.prod) {
        log_error("bench", "kafka producer: %s", why);
        return HR_ERR;
    }
    pthread_t poller;
    atomic_store(&x.poller_stop, false);
    if (pthread_create(&poller, NULL, poller_main, &x) != 0) {
        rd_kafka_destroy(x.prod);
        return HR_ERR;
    }
    hr_t r = admin_topics(&x, true);

    rrelay_t relays[2 + RK_NCH];
    int nrel = 0;
    relays[nrel++] = (rrelay_t){.x = &x, .kind = 0, .topic = x.t_raw};
    snprintf(relays[0].group, sizeof(relays[0].group), "%s%s", pre, GROUP_FANOUT);
    for (int i = 0; i < RK_NCH; i++) {
        rrelay_t *rl = &relays[nrel++];
        *rl = (rrelay_t){.x = &x, .kind = 1, .topic = x.t_notif[rk_channels[i]]};
        snprintf(rl->group, sizeof(rl->group), "%s%s", pre, names_for_channel(rk_channels[i])->group);
    }
    relays[nrel] = (rrelay_t){.x = &x, .kind = 2, .topic = x.t_status};
    snprintf(relays[nrel].group, sizeof(relays[nrel].group), "%s%s", pre, GROUP_STATUS);
    nrel++;
    int started = 0;
    for (int i = 0; i < nrel && r == HR_OK; i++) {
        relays[i].cons = consumer_new(o, relays[i].group, relays[i].topic);
        if (!relays[i].cons) r = HR_ERR;
        else if (pthread_create(&relays[i].th, NULL, relay_main, &relays[i]) != 0) {
            rd_kafka_destroy(relays[i].cons);
            r = HR_ERR;
        } else {
            started++;
        }
    }
    /* every group joined and assigned before the clock starts: a fresh
     * broker takes seconds to load its group coordinator */
    for (int waited = 0; r == HR_OK && waited < 600; waited++) {
        int ready = 0;
        for (int i = 0; i < started; i++) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (rd_kafka_assignment(relays[i].cons, &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a && a->cnt > 0) ready++;
            if (a) rd_kafka_topic_partition_list_destroy(a);
        }
        if (ready == started) break;
        usleep(50000);
    }
    rproducer_t prod = {.x = &x};
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
        rd_kafka_consumer_close(relays[i].cons);
        rd_kafka_destroy(relays[i].cons);
        if (r == HR_OK && relays[i].result != HR_OK) r = relays[i].result;
    }
    rd_kafka_flush(x.prod, 30000);
    admin_topics(&x, false);
    atomic_store(&x.poller_stop, true);
    pthread_join(poller, NULL);
    rd_kafka_destroy(x.prod);
    res->raw_bytes_avg = x.raw_bytes;
    return r;
}

/* Deletes herald's topics and consumer groups on the broker (herald must not
 * run), so that the next herald starts on empty topics. */
hr_t kafka_reset_herald(const char *brokers)
{
    static const char *const groups[] = {"fanout", "dispatch-push", "dispatch-sms", "dispatch-email",
                                         "dispatch-inapp", "dispatch-webhook", "status"};
    const char *topics[4 + CH__COUNT];
    int nt = 0;
    topics[nt++] = TOPIC_RAW;
    for (int ch = 0; ch < CH__COUNT; ch++) topics[nt++] = topic_for_channel(ch);
    topics[nt++] = TOPIC_STATUS;
    topics[nt++] = TOPIC_DLQ;

    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return HR_INVALID;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) return HR_ERR;
    hr_t r = HR_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);

    rd_kafka_DeleteGroup_t *dg[ARRAY_LEN(groups)];
    for (size_t i = 0; i < ARRAY_LEN(groups); i++) dg[i] = rd_kafka_DeleteGroup_new(groups[i]);
    rd_kafka_DeleteGroups(rk, dg, ARRAY_LEN(groups), NULL, q);
    for (size_t i = 0; i < ARRAY_LEN(groups); i++) rd_kafka_DeleteGroup_destroy(dg[i]);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev) rd_kafka_event_destroy(ev); /* missing groups are fine */

    rd_kafka_DeleteTopic_t *dt[4 + CH__COUNT];
    for (int i = 0; i < nt; i++) dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, why, sizeof(why));
    rd_kafka_DeleteTopics(rk, dt, (size_t)nt, ao, q);
    for (int i = 0; i < nt; i++) rd_kafka_DeleteTopic_destroy(dt[i]);
    rd_kafka_AdminOptions_destroy(ao);
    ev = rd_kafka_queue_poll(q, 60000);
    if (!ev) r = HR_TIMEOUT;
    else rd_kafka_event_destroy(ev); /* missing topics are fine */

    /* deletion completes asynchronously: wait until no broker lists them */
    for (int tries = 0; r == HR_OK && tries < 300; tries++) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            usleep(100000);
            continue;
        }
        bool left = false;
        for (int i = 0; i < md->topic_cnt && !left; i++)
            for (int k = 0; k < nt && !left; k++) left = strcmp(md->topics[i].topic, topics[k]) == 0;
        rd_kafka_metadata_destroy(md);
        if (!left) break;
        usleep(100000);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return r;
}
