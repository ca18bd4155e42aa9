/*
 * bus_kafka.c - the bus on Apache Kafka, through librdkafka.
 *
 * DESIGN
 *  - One idempotent producer (acks=all, enable.idempotence=true) per bus_t,
 *    shared by every thread. Keyed records use partitioner=murmur2_random,
 *    which is Java's rule (murmur2(key) & 0x7fffffff) % partitions, so herald
 *    and Java producers put a user's records in the same partition. Records
 *    are copied (RD_KAFKA_MSG_F_COPY) and batched by librdkafka (linger.ms).
 *  - A background thread polls the producer: delivery reports run there and
 *    call bus_batch_ack(batch) with the record's result, so a batch is
 *    acknowledged even when nobody serves the bus. message.timeout.ms is
 *    long (5 min): through a broker outage records wait and are retried
 *    (idempotence keeps them unduplicated and in order), the stages back off
 *    on HR_AGAIN, and the pipeline finishes once brokers return.
 *  - librdkafka retries retriable produce errors (NOT_ENOUGH_REPLICAS,
 *    leader changes, timeouts) silently. So that a stalled producer is never
 *    silent, the poller thread watches delivery progress: when records stay
 *    unacknowledged with no delivery report for STALL_WARN_MS it logs how
 *    many wait and, from fresh metadata, which partitions of herald's topics
 *    have no leader or an ISR below min.insync.replicas (writes to those get
 *    NOT_ENOUGH_REPLICAS); it logs again every STALL_WARN_MS and once when
 *    deliveries resume. The metadata comes through a handle of its own
 *    (created on the first stall): a broker answers one request per
 *    connection at a time, and an acks=all produce waiting for replicas
 *    that are gone holds the producer's connection for request.timeout.ms.
 *  - One rd_kafka_t per consumer. Offsets are stored only by the stage
 *    (enable.auto.offset.store=false) after its outputs are acknowledged.
 *    Stored offsets are committed every auto.commit.interval.ms from
 *    bus_poll() (an asynchronous commit on the polling thread, as the
 *    embedded backend does, so that "stored" and "committed" differ only
 *    at well-defined points), synchronously by the rebalance callback on
 *    revoke (after the stage's revoked callback stored what it finished),
 *    and synchronously on close. Eager assignment (range, roundrobin):
 *    librdkafka 2.0.2's cooperative-sticky has known bugs.
 *  - Records are read with rd_kafka_consumer_poll() one by one (the batch
 *    consume API misbehaves with pause/resume in 2.0.2). The messages of the
 *    last poll are kept alive until the next poll, as bus.h promises.
 *  - Admin work (topic creation, metadata, lag, group reset) uses the
 *    producer handle, or a short-lived consumer of the group for committed
 *    offsets.
 *  - bus_opts_t.kv pairs go to rd_kafka_conf_set() for the producer and every
 *    consumer, after herald's defaults (SASL, SSL, tuning).
 *  - Exactly-once read-process-write (bus_txn_*, fanout.exactly_once): a
 *    transactional consumer owns a second producer, transactional.id set,
 *    made on its first bus_txn_begin(). While a transaction is open on a
 *    thread (txn_current), kproduce/kflush on that thread go through it;
 *    bus_txn_commit() sends the input offsets with the group's metadata
 *    (KIP-447: a member fenced by a rebalance cannot commit) and commits;
 *    delivery reports are served by the commit's flush, so the batch is
 *    acknowledged before it returns. transaction.timeout.ms defaults to
 *    TXN_TIMEOUT_MS: what a killed process left open holds back
 *    read_committed readers of its partitions at most that long (a restart
 *    with the same transactional.id aborts it at once). A fatal error
 *    (fenced) drops the producer; the next begin makes a new one.
 *
 * Errors never crash: librdkafka errors are mapped to hr_t and logged at a
 * limited rate (one line per kind per interval, with the count suppressed).
 */
#include "bus/bus_int.h"
#include "bus/bus_kafka.h"

#include "core/errlog.h"
#include "core/log.h"

#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOGC "kafka"
/* Waits on the brokers for admin and metadata work. */
#define ADMIN_TIMEOUT_MS 30000
#define META_TIMEOUT_MS 10000
/* How long bus_close() waits for outstanding records before purging them. */
#define CLOSE_FLUSH_MS 30000
/* Partition counts remembered per topic (kbus_t.cache). */
#define TOPIC_CACHE_MAX 256
#define TOPIC_CACHE_TTL_MS 5000
/* Rate limit of repeated error lines. */
#define ERR_LOG_INTERVAL_MS 5000
/* Producer stall warning: records unacknowledged and no delivery report for this long. */
#define STALL_WARN_MS 10000
/* A producer replaced after a fatal error is kept (its delivery reports
 * served by the poller) until its queue is empty and RETIRE_GRACE_MS have
 * passed: far longer than any bus_flush() timeout a thread that read the
 * old handle just before the swap can still be inside. At most
 * RETIRED_MAX are kept; past that the fatal producer is not replaced. */
#define RETIRE_GRACE_MS 600000
#define RETIRED_MAX 8
/* Commits on revoke and on close wait at most CLOSE_COMMIT_MS, the close
 * itself twice that (bus_opts_t.close_timeout_ms sets it; commit_within,
 * kconsumer_close). librdkafka's synchronous commit
 * waits without a bound for a group coordinator (up to socket.timeout.ms
 * for each request, retried), so a stop while a broker was coming back
 * could hang past a service manager's stop timeout. A commit that does not
 * finish in time is given up: the partitions' next owner processes again
 * from the last committed offsets (at least once, as after a crash). */
#define CLOSE_COMMIT_MS 10000
/* Transactional producers (bus_txn_*): default transaction.timeout.ms. */
#define TXN_TIMEOUT_MS "10000"

/* ---- types ---- */

typedef struct topic_cache_entry {
    char *name;
    int32_t partitions;
    int16_t min_insync;     /* as created by this bus (0: unknown) */
    int64_t fetched_ms;     /* monotonic */
} topic_cache_entry_t;

typedef struct retired_producer {
    rd_kafka_t *rk;
    int64_t since_ms;       /* monotonic */
} retired_producer_t;

/* Invariants: rk is the current producer; it is replaced (by the poller
 * thread only) after a fatal error (idempotence: librdkafka 2.0.2 can turn
 * a broker's NOT_ENOUGH_REPLICAS into a fatal OUT_OF_ORDER_SEQUENCE_NUMBER,
 * fixed upstream in 2.3.0), and every thread reads it once per call; the
 * replaced ones live on in retired[] (poller thread and close only) until
 * their delivery reports are served and RETIRE_GRACE_MS have passed. The
 * poller thread runs from open to close and is the only thread that serves
 * delivery reports besides rd_kafka_flush(); cache entries only grow
 * (partition counts only grow in Kafka). */
typedef struct kbus {
    bus_t base;
    rd_kafka_t *_Atomic rk;
    atomic_int fatal;       /* rk raised a fatal error: the poller replaces it */
    atomic_llong replaced;  /* producers replaced so far */
    retired_producer_t retired[RETIRED_MAX];
    int nretired;
    errlog_t fatal_log;     /* a replacement that failed, retried every poll */
    char *brokers;
    char **kv;              /* copied pairs, NULL-terminated */
    pthread_t poller;
    atomic_int stop;
    pthread_mutex_t cache_mu;
    topic_cache_entry_t cache[TOPIC_CACHE_MAX];
    int ncache;
    errlog_t err_log;       /* client errors (error_cb) */
    errlog_t dr_log;        /* failed deliveries */
    atomic_llong dr_failed;
    atomic_llong produced;  /* records handed to librdkafka, for the stall watch */
    atomic_llong dr_count;  /* their delivery reports */
    rd_kafka_t *meta_rk;    /* stall watch metadata (poller thread; lazily) */
    int close_ms;           /* bus_opts_t.close_timeout_ms (CLOSE_COMMIT_MS) */
} kbus_t;

/* Invariants: held[0..nheld) are the messages returned by the last poll and
 * stay alive until the next poll or close; rk belongs to the polling thread. */
typedef struct kconsumer {
    bus_consumer_t base;
    rd_kafka_t *rk;
    char *group;
    bus_rebalance_t rb;
    bool has_rb;
    rd_kafka_message_t **held;
    int nheld, cap;
    int commit_interval_ms;     /* auto.commit.interval.ms */
    int64_t last_commit_ns;     /* monotonic */
    errlog_t err_log;
    /* exactly-once (bus_txn_*): txn_id set by bus_txn_init; txn_rk made
     * and registered (init_transactions) by the first begin; txn_open
     * between begin and commit/abort */
    char *txn_id;
    rd_kafka_t *txn_rk;
    bool txn_open;
    /* records produced through txn_rk and their delivery reports (both on
     * the consumer's thread: txn_rk is only served there), and the batch
     * of the last one: what a dropped producer never reported is failed
     * on it, so that the stage never waits for an ack that cannot come */
    int64_t txn_sent, txn_reported;
    bus_batch_t *txn_batch;
} kconsumer_t;

/* The transaction open on this thread, whose producer kproduce/kflush use. */
static _Thread_local struct kconsumer *txn_current;

/* The producer for a produce or flush on bus b from this thread. */
static inline rd_kafka_t *producer_for(struct kbus *b)
{
    kconsumer_t *c = txn_current;
    return c && c->txn_open && c->base.bus == &b->base ? c->txn_rk : b->rk;
}

/* ---- error mapping ---- */

static hr_t map_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return HR_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL: return HR_AGAIN;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: return HR_TIMEOUT;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND: return HR_NOTFOUND;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE: return HR_INVALID;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP: return HR_CONFLICT;
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST: return HR_DECLINED;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY: return HR_CLOSED;
    default: return HR_ERR;
    }
}

/* ---- configuration ---- */

/* Settings whose values are secrets (sasl.password, ssl.key.password,
 * ssl.key.pem, sasl.oauthbearer.client.secret, ...): never logged. */
static bool secret_key(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, ".key.") ||
           strstr(key, "sasl.jaas") || strstr(key, "sasl.oauthbearer.config");
}

static hr_t conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        /* librdkafka's reason may quote the value: drop it for secrets. */
        if (secret_key(key)) log_error(LOGC, "kafka.%s (value hidden) refused", key);
        else log_error(LOGC, "kafka.%s=%s: %s", key, value, why);
        return HR_INVALID;
    }
    return HR_OK;
}

/* Sets NULL-terminated pairs. */
static hr_t conf_set_pairs(rd_kafka_conf_t *conf, const char *const *kv)
{
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (!kv[i + 1]) {
            log_error(LOGC, "kafka.%s has no value", kv[i]);
            return HR_INVALID;
        }
        hr_t r = conf_set(conf, kv[i], kv[i + 1]);
        if (r != HR_OK) return r;
    }
    return HR_OK;
}

/* librdkafka's own log lines (any librdkafka thread). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    int l = level <= 3 ? HLOG_ERROR : level == 4 ? HLOG_WARN : level <= 6 ? HLOG_INFO : HLOG_DEBUG;
    hlog(l, LOGC, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void log_client_error(errlog_t *e, rd_kafka_t *rk, int err, const char *reason)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error(LOGC, "%s: fatal error %s: %s", rd_kafka_name(rk), rd_kafka_err2name(orig), why);
        return;
    }
    int64_t more = errlog_admit(e);
    if (more < 0) return;
    if (more > 0)
        log_warn(LOGC, "%s: %s: %s (%" PRId64 " more errors in the last %d s)", rd_kafka_name(rk),
                 rd_kafka_err2name(err), reason, more, errlog_interval_s(e));
    else
        log_warn(LOGC, "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

/* Client-level errors: brokers down, authentication, fatal idempotence
 * errors. librdkafka retries the transient ones by itself. */
static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kbus_t *b = opaque;
    log_client_error(&b->err_log, rk, err, reason);
    /* A fatal producer fails every produce from now on: the poller makes a
     * new one (replace_producer). */
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == b->rk) atomic_store(&b->fatal, 1);
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kconsumer_t *c = opaque;
    log_client_error(&c->err_log, rk, err, reason);
}

/* Delivery report: runs on the poller thread (or inside rd_kafka_flush). */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kbus_t *b = opaque;
    hr_t r = map_err(m->err);
    atomic_fetch_add(&b->dr_count, 1);
    if (r != HR_OK) {
        atomic_fetch_add(&b->dr_failed, 1);
        int64_t more = errlog_admit(&b->dr_log);
        if (more >= 0)
            log_warn(LOGC, "delivery to %s [%" PRId32 "] failed: %s (%" PRId64
                     " more failures in the last %d s)",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
                     rd_kafka_err2str(m->err), more, errlog_interval_s(&b->dr_log));
    }
    if (m->_private) bus_batch_ack(m->_private, r);
}

/* Settings common to producers and consumers, then the user's pairs. */
static rd_kafka_conf_t *conf_base(const kbus_t *b)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (b->brokers && conf_set(conf, "bootstrap.servers", b->brokers) != HR_OK) goto fail;
    if (conf_set(conf, "client.id", "herald") != HR_OK) goto fail;
    /* Never create topics as a side effect of metadata requests. */
    if (conf_set(conf, "allow.auto.create.topics", "false") != HR_OK) goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- producer ---- */

static int32_t cache_get(kbus_t *b, const char *topic, int64_t *age_ms);
static int16_t cache_min_insync(kbus_t *b, const char *topic);

/* Describes into out the partitions of herald's topics that cannot take
 * acks=all writes now: no leader, or an ISR below the topic's
 * min.insync.replicas (the broker answers NOT_ENOUGH_REPLICAS); other
 * under-replicated partitions are only counted. Poller thread. */
static void describe_unhealthy(kbus_t *b, char *out, size_t cap)
{
    const struct rd_kafka_metadata *md = NULL;
    size_t len = 0;
    int under = 0;
    out[0] = '\0';
    if (!b->meta_rk) {
        char why[512];
        rd_kafka_conf_t *conf = conf_base(b);
        if (conf && conf_set_pairs(conf, (const char *const *)b->kv) == HR_OK &&
            conf_set(conf, "client.id", "herald-watch") == HR_OK) {
            b->meta_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
            if (b->meta_rk) conf = NULL;
        }
        if (conf) rd_kafka_conf_destroy(conf);
    }
    if (!b->meta_rk ||
        rd_kafka_metadata(b->meta_rk, 1, NULL, &md, 3000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(out, cap, "; no metadata from the brokers");
        return;
    }
    /* "topic[0,1,3] topic2[2]" per kind; kind 0: no leader, 1: ISR below minimum */
    char lists[2][512];
    size_t lens[2] = {0, 0};
    lists[0][0] = lists[1][0] = '\0';
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (cache_get(b, t->topic, NULL) <= 0) continue; /* not one of ours */
        int16_t min_isr = cache_min_insync(b, t->topic);
        bool open[2] = {false, false};
        for (int p = 0; p < t->partition_cnt; p++) {
            const struct rd_kafka_metadata_partition *mp = &t->partitions[p];
            int kind = mp->leader < 0 || mp->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ? 0
                       : min_isr > 0 && mp->isr_cnt < min_isr                           ? 1
                                                                                        : -1;
            if (kind < 0) {
                if (mp->isr_cnt < mp->replica_cnt) under++;
                continue;
            }
            size_t room = sizeof(lists[kind]) - lens[kind];
            int w = open[kind] ? snprintf(lists[kind] + lens[kind], room, ",%d", (int)mp->id)
                               : snprintf(lists[kind] + lens[kind], room, "%s%s[%d",
                                          lens[kind] ? " " : "", t->topic, (int)mp->id);
            if (w < 0 || (size_t)w >= room) {
                lists[kind][lens[kind]] = '\0';
                continue;
            }
            lens[kind] += (size_t)w;
            open[kind] = true;
        }
        for (int k = 0; k < 2; k++)
            if (open[k] && lens[k] + 1 < sizeof(lists[k])) {
                lists[k][lens[k]++] = ']';
                lists[k][lens[k]] = '\0';
            }
    }
    rd_kafka_metadata_destroy(md);
    if (lens[1])
        len += (size_t)snprintf(out + len, cap - len,
                                "; too few in-sync replicas (NOT_ENOUGH_REPLICAS): %s", lists[1]);
    if (lens[0] && len < cap)
        len += (size_t)snprintf(out + len, cap - len, "; no leader: %s", lists[0]);
    if (under && len < cap)
        snprintf(out + len, cap - len, "; %d partitions under-replicated", under);
}

static hr_t producer_new(kbus_t *b, rd_kafka_t **out, char *why, size_t cap);

/* Replaces the producer after a fatal error: every produce to it fails
 * from then on and nothing it holds will be delivered, so without this
 * herald would stall until restarted. The new producer has a new producer
 * id (idempotence starts over); the old one's queued and in-flight records
 * are purged, so their batches fail (HR_CLOSED) and the stages produce them
 * again through the new one: at-least-once, as after any failed batch.
 * Poller thread. */
static void replace_producer(kbus_t *b, int64_t now_ms)
{
    rd_kafka_t *old = b->rk;
    if (b->nretired == RETIRED_MAX) {
        if (errlog_admit(&b->fatal_log) >= 0)
            log_error(LOGC, "producer failed fatally and %d replaced ones are still draining: "
                      "not replaced; restart herald", RETIRED_MAX);
        return;
    }
    char why[512];
    rd_kafka_t *rk;
    if (producer_new(b, &rk, why, sizeof(why)) != HR_OK) {
        if (errlog_admit(&b->fatal_log) >= 0)
            log_error(LOGC, "cannot replace the failed producer: %s", why[0] ? why : "bad settings");
        return;
    }
    atomic_store(&b->rk, rk);
    atomic_store(&b->fatal, 0);
    long long nth = atomic_fetch_add(&b->replaced, 1) + 1;
    b->retired[b->nretired++] = (retired_producer_t){.rk = old, .since_ms = now_ms};
    int left = rd_kafka_outq_len(old);
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    log_warn(LOGC, "producer replaced after its fatal error (%lld so far); its %d unacknowledged "
             "records fail and are produced again through the new one", nth, left);
}

/* Serves the replaced producers' delivery reports and destroys those that
 * are done. Poller thread. */
static void serve_retired(kbus_t *b, int64_t now_ms)
{
    for (int i = 0; i < b->nretired;) {
        retired_producer_t *r = &b->retired[i];
        rd_kafka_poll(r->rk, 0);
        if (rd_kafka_outq_len(r->rk) == 0 && now_ms - r->since_ms >= RETIRE_GRACE_MS) {
            rd_kafka_destroy(r->rk);
            *r = b->retired[--b->nretired];
            continue;
        }
        i++;
    }
}

/* Serves delivery reports, replaces a producer that failed fatally and
 * watches for one that makes no progress. */
static void *poller_main(void *arg)
{
    kbus_t *b = arg;
    int64_t last_count = 0, progress_ms = hclock_mono_ns() / 1000000, warned_ms = 0;
    bool stalled = false;
    while (!atomic_load(&b->stop)) {
        rd_kafka_poll(b->rk, 100);
        int64_t now = hclock_mono_ns() / 1000000;
        if (atomic_load(&b->fatal)) replace_producer(b, now);
        if (b->nretired) serve_retired(b, now);
        int64_t count = atomic_load(&b->dr_count);
        int64_t waiting = atomic_load(&b->produced) - count;
        if (count != last_count || waiting <= 0) {
            if (stalled)
                log_info(LOGC, "deliveries resumed after %" PRId64 " s without acknowledgements",
                         (now - progress_ms) / 1000);
            stalled = false;
            last_count = count;
            progress_ms = now;
            continue;
        }
        if (now - progress_ms < STALL_WARN_MS || (stalled && now - warned_ms < STALL_WARN_MS))
            continue;
        char why[1024];
        describe_unhealthy(b, why, sizeof(why));
        log_warn(LOGC, "%" PRId64 " records unacknowledged for %" PRId64 " s; retrying until "
                 "message.timeout.ms%s", waiting, (now - progress_ms) / 1000, why);
        stalled = true;
        warned_ms = hclock_mono_ns() / 1000000;
    }
    return NULL;
}

static void kbus_free(kbus_t *b)
{
    for (size_t i = 0; b->kv && b->kv[i]; i++) free(b->kv[i]);
    free(b->kv);
    for (int i = 0; i < b->ncache; i++) free(b->cache[i].name);
    pthread_mutex_destroy(&b->cache_mu);
    errlog_release(&b->err_log);
    errlog_release(&b->dr_log);
    errlog_release(&b->fatal_log);
    free(b->brokers);
    free(b);
}

/* herald's producer settings, applied before the kafka.* ones (which may
 * override them). Shared with the benchmark's raw librdkafka baseline. */
static const char *const producer_defaults[] = {
    "enable.idempotence", "true",
    "acks", "all",
    "partitioner", "murmur2_random",
    /* throughput: up to 5 ms of batching, large batches, lz4 */
    "linger.ms", "5",
    "batch.num.messages", "10000",
    "batch.size", "1048576",
    "compression.type", "lz4",
    /* bounded memory: 64 MiB of unacknowledged records, then HR_AGAIN
     * (librdkafka's default of 1 GiB let RSS grow past 390 MB in benchmarks) */
    "queue.buffering.max.messages", "500000",
    "queue.buffering.max.kbytes", "65536",
    /* keep retrying through broker outages */
    "message.timeout.ms", "300000",
    NULL,
};

const char *const *bus_kafka_producer_defaults(void) { return producer_defaults; }

/* A producer with herald's settings, then the kafka.* ones; why is empty
 * when the reason was logged already (a refused setting). */
static hr_t producer_new(kbus_t *b, rd_kafka_t **out, char *why, size_t cap)
{
    hr_t r;
    why[0] = '\0';
    rd_kafka_conf_t *conf = conf_base(b);
    if (!conf) return HR_INVALID;
    if ((r = conf_set_pairs(conf, producer_defaults)) != HR_OK ||
        (r = conf_set_pairs(conf, (const char *const *)b->kv)) != HR_OK) {
        rd_kafka_conf_destroy(conf);
        return r;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, producer_error_cb);
    rd_kafka_conf_set_opaque(conf, b);
    *out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, cap);
    if (!*out) {
        rd_kafka_conf_destroy(conf);
        return HR_INVALID;
    }
    return HR_OK; /* conf is owned by the producer now */
}

static hr_t kopen(const bus_opts_t *opts, bus_t **out)
{
    kbus_t *b = xcalloc(1, sizeof(*b));
    hr_t r = HR_INVALID;
    char why[512];

    b->base.ops = &bus_kafka_ops;
    pthread_mutex_init(&b->cache_mu, NULL);
    errlog_init(&b->err_log, ERR_LOG_INTERVAL_MS);
    errlog_init(&b->dr_log, ERR_LOG_INTERVAL_MS);
    errlog_init(&b->fatal_log, ERR_LOG_INTERVAL_MS);
    if (opts->brokers && *opts->brokers) b->brokers = xstrdup(opts->brokers);
    b->close_ms = opts->close_timeout_ms > 0 ? opts->close_timeout_ms : CLOSE_COMMIT_MS;
    size_t n = 0;
    while (opts->kv && opts->kv[n]) n++;
    b->kv = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) b->kv[i] = xstrdup(opts->kv[i]);
    if (n % 2) {
        log_error(LOGC, "kafka.%s has no value", opts->kv[n - 1]);
        goto out;
    }
    if (!b->brokers) {
        bool has = false;
        for (size_t i = 0; i + 1 < n; i += 2)
            if (strcmp(b->kv[i], "bootstrap.servers") == 0 ||
                strcmp(b->kv[i], "metadata.broker.list") == 0)
                has = true;
        if (!has) {
            log_error(LOGC, "no Kafka brokers configured (kafka.bootstrap.servers)");
            goto out;
        }
    }

    rd_kafka_t *rk;
    if ((r = producer_new(b, &rk, why, sizeof(why))) != HR_OK) {
        if (why[0]) log_error(LOGC, "cannot create producer: %s", why);
        goto out;
    }
    atomic_store(&b->rk, rk);
    if (pthread_create(&b->poller, NULL, poller_main, b) != 0) {
        log_error(LOGC, "cannot start the producer poller thread");
        rd_kafka_destroy(b->rk);
        b->rk = NULL;
        r = HR_ERR;
        goto out;
    }
    *out = &b->base;
    b = NULL;
    r = HR_OK;
out:
    if (b) kbus_free(b);
    return r;
}

static void kclose(bus_t *bus)
{
    kbus_t *b = (kbus_t *)bus;
    rd_kafka_resp_err_t err = rd_kafka_flush(b->rk, CLOSE_FLUSH_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        int left = rd_kafka_outq_len(b->rk);
        log_error(LOGC, "close: %d records still unacknowledged after %d s; failing them", left,
                  CLOSE_FLUSH_MS / 1000);
        /* Every record gets its completion: purged ones report HR_CLOSED. */
        rd_kafka_purge(b->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(b->rk, 5000);
    }
    atomic_store(&b->stop, 1);
    pthread_join(b->poller, NULL);
    for (int i = 0; i < b->nretired; i++) { /* purged when retired: reports only */
        rd_kafka_flush(b->retired[i].rk, 5000);
        rd_kafka_destroy(b->retired[i].rk);
    }
    if (b->meta_rk) rd_kafka_destroy(b->meta_rk);
    rd_kafka_poll(b->rk, 0);
    rd_kafka_destroy(b->rk);
    kbus_free(b);
}

/* Partition count from cluster metadata, or -1 with the reason in *why
 * (HR_NOTFOUND when the topic does not exist). Any thread. */
static int32_t metadata_partitions(rd_kafka_t *rk, const char *topic, hr_t *why)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int32_t n = -1;
    *why = HR_NOTFOUND;
    if (!rkt) return -1;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, META_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_warn(LOGC, "metadata for %s: %s", topic, rd_kafka_err2str(err));
        *why = map_err(err);
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0) continue;
        if (t->err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partition_cnt > 0) {
            n = t->partition_cnt;
            *why = HR_OK;
        } else if (t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
                   t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            *why = map_err(t->err);
            log_warn(LOGC, "metadata for %s: %s", topic, rd_kafka_err2str(t->err));
        }
    }
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static void cache_put(kbus_t *b, const char *topic, int32_t n)
{
    int64_t now = hclock_mono_ns() / 1000000;
    pthread_mutex_lock(&b->cache_mu);
    int i;
    for (i = 0; i < b->ncache; i++)
        if (strcmp(b->cache[i].name, topic) == 0) break;
    if (i == b->ncache) {
        if (b->ncache == TOPIC_CACHE_MAX) {
            pthread_mutex_unlock(&b->cache_mu);
            return;
        }
        b->cache[i].name = xstrdup(topic);
        b->ncache++;
    }
    if (n > b->cache[i].partitions) b->cache[i].partitions = n;
    b->cache[i].fetched_ms = now;
    pthread_mutex_unlock(&b->cache_mu);
}

/* Remembers a topic's min.insync.replicas (for the stall warning). */
static void cache_note_min_insync(kbus_t *b, const char *topic, int16_t min_insync)
{
    pthread_mutex_lock(&b->cache_mu);
    for (int i = 0; i < b->ncache; i++)
        if (strcmp(b->cache[i].name, topic) == 0) b->cache[i].min_insync = min_insync;
    pthread_mutex_unlock(&b->cache_mu);
}

static int16_t cache_min_insync(kbus_t *b, const char *topic)
{
    int16_t m = 0;
    pthread_mutex_lock(&b->cache_mu);
    for (int i = 0; i < b->ncache; i++)
        if (strcmp(b->cache[i].name, topic) == 0) m = b->cache[i].min_insync;
    pthread_mutex_unlock(&b->cache_mu);
    return m;
}

/* Cached partition count, 0 if unknown; *age_ms gets its age. */
static int32_t cache_get(kbus_t *b, const char *topic, int64_t *age_ms)
{
    int32_t n = 0;
    pthread_mutex_lock(&b->cache_mu);
    for (int i = 0; i < b->ncache; i++)
        if (strcmp(b->cache[i].name, topic) == 0) {
            n = b->cache[i].partitions;
            if (age_ms) *age_ms = hclock_mono_ns() / 1000000 - b->cache[i].fetched_ms;
            break;
        }
    pthread_mutex_unlock(&b->cache_mu);
    return n;
}

static int32_t kpartitions(bus_t *bus, const char *topic)
{
    kbus_t *b = (kbus_t *)bus;
    int64_t age = 0;
    int32_t n = cache_get(b, topic, &age);
    if (n > 0 && age < TOPIC_CACHE_TTL_MS) return n;
    hr_t why;
    int32_t m = metadata_partitions(b->rk, topic, &why);
    if (m > 0) {
        cache_put(b, topic, m);
        return m;
    }
    /* Brokers unreachable: the last known count is still true. */
    return why == HR_NOTFOUND ? -1 : (n > 0 ? n : -1);
}

/* Waits until metadata shows the topic with a leader for every partition,
 * so that produce and subscribe right after creation work. */
static void wait_topic_ready(kbus_t *b, const char *topic, int32_t want)
{
    int64_t deadline = hclock_mono_ns() + (int64_t)META_TIMEOUT_MS * 1000000;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(b->rk, topic, NULL);
    if (!rkt) return;
    while (hclock_mono_ns() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        bool ready = false;
        if (rd_kafka_metadata(b->rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (strcmp(t->topic, topic) != 0 || t->err) continue;
                ready = t->partition_cnt >= want;
                for (int p = 0; ready && p < t->partition_cnt; p++)
                    if (t->partitions[p].err || t->partitions[p].leader < 0) ready = false;
                if (ready) cache_put(b, topic, t->partition_cnt);
            }
        }
        if (md) rd_kafka_metadata_destroy(md);
        if (ready) break;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_destroy(rkt);
}

/* Runs one admin request on a private queue and returns its result event
 * (caller destroys), or NULL on timeout. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int timeout_ms)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    if (!ev) log_error(LOGC, "admin request timed out after %d ms", timeout_ms);
    return ev;
}

static hr_t ktopic_ensure(bus_t *bus, const char *topic, const bus_topic_opts_t *o)
{
    kbus_t *b = (kbus_t *)bus;
    char why[512], num[32];
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_AdminOptions_t *aopts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    hr_t r = HR_ERR;
    int32_t parts = o && o->partitions > 0 ? o->partitions : 1;
    int rf = o && o->replication > 0 ? o->replication : -1; /* -1: the broker's default */
    nt = rd_kafka_NewTopic_new(topic, parts, rf, why, sizeof(why));
    if (!nt) {
        log_error(LOGC, "topic %s: %s", topic, why);
        return HR_INVALID;
    }
    if (o && o->min_insync > 0) {
        snprintf(num, sizeof(num), "%d", (int)o->min_insync);
        rd_kafka_NewTopic_set_config(nt, "min.insync.replicas", num);
    }
    if (o && o->retention_ms != 0) {
        snprintf(num, sizeof(num), "%" PRId64, o->retention_ms < 0 ? (int64_t)-1 : o->retention_ms);
        rd_kafka_NewTopic_set_config(nt, "retention.ms", num);
    }
    if (o && o->retention_bytes != 0) {
        snprintf(num, sizeof(num), "%" PRId64,
                 o->retention_bytes < 0 ? (int64_t)-1 : o->retention_bytes);
        rd_kafka_NewTopic_set_config(nt, "retention.bytes", num);
    }
    aopts = rd_kafka_AdminOptions_new(b->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(aopts, ADMIN_TIMEOUT_MS, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(aopts, ADMIN_TIMEOUT_MS, why, sizeof(why));
    q = rd_kafka_queue_new(b->rk);
    rd_kafka_CreateTopics(b->rk, &nt, 1, aopts, q);
    ev = admin_wait(q, ADMIN_TIMEOUT_MS + 5000);
    if (!ev) {
        r = HR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        log_error(LOGC, "create topic %s: %s", topic, rd_kafka_event_error_string(ev));
        r = map_err(rd_kafka_event_error(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
    rd_kafka_resp_err_t err = cnt ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_info(LOGC, "created topic %s (%d partitions, replication %d)", topic, (int)parts, rf);
    } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char *msg = cnt ? rd_kafka_topic_result_error_string(tr[0]) : NULL;
        log_error(LOGC, "create topic %s: %s: %s", topic, rd_kafka_err2name(err),
                  msg ? msg : rd_kafka_err2str(err));
        r = map_err(err);
        goto out;
    }
    /* An existing topic keeps its partitions: wait for what it has. */
    wait_topic_ready(b, topic, err == RD_KAFKA_RESP_ERR_NO_ERROR ? parts : 1);
    /* Existing topics are assumed to have the configured value too. */
    if (o && o->min_insync > 0) cache_note_min_insync(b, topic, o->min_insync);
    r = HR_OK;
out:
    if (ev) rd_kafka_event_destroy(ev);
    if (q) rd_kafka_queue_destroy(q);
    if (aopts) rd_kafka_AdminOptions_destroy(aopts);
    rd_kafka_NewTopic_destroy(nt);
    return r;
}

static hr_t kproduce(bus_t *bus, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    kbus_t *b = (kbus_t *)bus;
    if (partition < 0 && !key) return HR_INVALID;
    /* Unknown topics fail here rather than after the metadata timeout. The
     * count is cached: partition counts only grow. */
    int32_t n = cache_get(b, topic, NULL);
    if (n == 0 || partition >= n) {
        hr_t why;
        int32_t m = metadata_partitions(b->rk, topic, &why);
        if (m < 0) {
            if (why == HR_NOTFOUND || why == HR_OK) return HR_NOTFOUND;
            /* brokers unreachable: a known topic is still produced to
             * (librdkafka queues), an unknown one is tried again later */
            if (n == 0) return HR_AGAIN;
        } else {
            cache_put(b, topic, m);
            n = m;
        }
        if (partition >= n) return HR_INVALID;
    }
    rd_kafka_t *prk = producer_for(b);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        prk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition >= 0 ? partition : RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? key_len : 0),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_OPAQUE(batch), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&b->produced, 1);
        if (txn_current && txn_current->txn_open && prk == txn_current->txn_rk) { /* producer_for */
            txn_current->txn_sent++;
            txn_current->txn_batch = batch;
        }
        return HR_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL && prk == b->rk) atomic_store(&b->fatal, 1);
    hr_t r = map_err(err);
    if (r != HR_AGAIN) log_warn(LOGC, "produce to %s: %s", topic, rd_kafka_err2str(err));
    return r;
}

/* Messages (and requests) librdkafka has not finished with. */
static int64_t koutstanding(bus_t *bus)
{
    return rd_kafka_outq_len(((kbus_t *)bus)->rk);
}

static hr_t kflush(bus_t *bus, int timeout_ms)
{
    kbus_t *b = (kbus_t *)bus;
    rd_kafka_resp_err_t err = rd_kafka_flush(producer_for(b), timeout_ms);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) return HR_TIMEOUT;
    return map_err(err);
}

/* ---- consumers ---- */

static void held_release(kconsumer_t *c)
{
    for (int i = 0; i < c->nheld; i++) rd_kafka_message_destroy(c->held[i]);
    c->nheld = 0;
}

/* Commits the offsets stored for rk's assignment and waits for the answer
 * at most ms (kbus_t.close_ms); RD_KAFKA_RESP_ERR__TIMED_OUT when it did
 * not come. The answer arrives on a queue of its own, so a late one is
 * dropped with the queue. */
static rd_kafka_resp_err_t commit_within(rd_kafka_t *rk, int ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(rk, NULL, q, NULL, NULL);
    if (!err) {
        err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        int64_t deadline = hclock_mono_ns() + (int64_t)ms * 1000000;
        for (int64_t left = ms; left > 0; left = (deadline - hclock_mono_ns()) / 1000000) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(left < 100 ? left : 100));
            if (!ev) continue;
            bool done = rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT;
            if (done) err = rd_kafka_event_error(ev);
            rd_kafka_event_destroy(ev);
            if (done) break;
        }
    }
    rd_kafka_queue_destroy(q);
    return err;
}

/* Eager rebalance protocol. Runs on the polling thread inside
 * rd_kafka_consumer_poll() (and inside rd_kafka_consumer_close()). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kconsumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e) log_error(LOGC, "%s: assign: %s", c->group, rd_kafka_err2str(e));
        log_info(LOGC, "group %s: assigned %d partitions", c->group, parts->cnt);
        for (int i = 0; c->has_rb && c->rb.assigned && i < parts->cnt; i++)
            c->rb.assigned(c->rb.opaque, parts->elems[i].topic, parts->elems[i].partition);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_info(LOGC, "group %s: revoking %d partitions", c->group, parts->cnt);
        for (int i = 0; c->has_rb && c->rb.revoked && i < parts->cnt; i++)
            c->rb.revoked(c->rb.opaque, parts->elems[i].topic, parts->elems[i].partition);
        /* Persist what the stage stored before the partitions move on. An
         * assignment already lost (session timeout, max.poll.interval.ms)
         * belongs to another member now: nothing may be committed, and the
         * new owner re-processes from the last commit. */
        if (rd_kafka_assignment_lost(rk)) {
            log_warn(LOGC, "group %s: assignment lost; uncommitted work will be re-processed",
                     c->group);
        } else {
            rd_kafka_resp_err_t e = commit_within(rk, ((kbus_t *)c->base.bus)->close_ms);
            if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
                log_warn(LOGC, "group %s: commit on revoke: %s", c->group, rd_kafka_err2str(e));
        }
    } else {
        log_error(LOGC, "group %s: rebalance error: %s", c->group, rd_kafka_err2str(err));
    }
    rd_kafka_assign(rk, NULL);
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    kconsumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    log_client_error(&c->err_log, rk, err, "offset commit failed");
}

static void txn_drop(kconsumer_t *c);

static void kconsumer_free(kconsumer_t *c)
{
    held_release(c);
    txn_drop(c);
    free(c->txn_id);
    free(c->held);
    free(c->group);
    errlog_release(&c->err_log);
    free(c);
}

/* A consumer handle for group with herald's consumer settings. */
static rd_kafka_t *consumer_handle(kbus_t *b, const char *group, kconsumer_t *c)
{
    static const char *const consumer_defaults[] = {
        "auto.commit.interval.ms", "1000",
        "auto.offset.reset", "earliest",
        "partition.assignment.strategy", "range,roundrobin",
        "session.timeout.ms", "10000",
        "heartbeat.interval.ms", "1000",
        "fetch.wait.max.ms", "100",
        /* prefetch at most 16 MiB per consumer (librdkafka default: 64 MiB) */
        "queued.max.messages.kbytes", "16384",
        "enable.partition.eof", "false",
        /* never a record of an open or aborted transaction (bus_txn_*) */
        "isolation.level", "read_committed",
        NULL,
    };
    char why[512];
    rd_kafka_conf_t *conf = conf_base(b);
    if (!conf) return NULL;
    if (conf_set_pairs(conf, consumer_defaults) != HR_OK ||
        conf_set_pairs(conf, (const char *const *)b->kv) != HR_OK ||
        conf_set(conf, "group.id", group) != HR_OK ||
        /* at-least-once: only the stage stores offsets; bus_poll commits */
        conf_set(conf, "enable.auto.offset.store", "false") != HR_OK ||
        conf_set(conf, "enable.auto.commit", "false") != HR_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (c) {
        char buf[32];
        size_t len = sizeof(buf);
        c->commit_interval_ms = 1000;
        if (rd_kafka_conf_get(conf, "auto.commit.interval.ms", buf, &len) == RD_KAFKA_CONF_OK)
            c->commit_interval_ms = (int)strtol(buf, NULL, 10); /* librdkafka validated it */
        rd_kafka_conf_set_opaque(conf, c);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
        rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        log_error(LOGC, "cannot create consumer for group %s: %s", group, why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static hr_t kconsumer_new(bus_t *bus, const char *group, const char *const *topics, int ntopics,
                          const bus_rebalance_t *rb, bus_consumer_t **out)
{
    kbus_t *b = (kbus_t *)bus;
    kconsumer_t *c = xcalloc(1, sizeof(*c));
    rd_kafka_topic_partition_list_t *subs = NULL;
    hr_t r = HR_ERR;

    c->base.ops = &bus_kafka_ops;
    c->base.bus = bus;
    c->group = xstrdup(group);
    errlog_init(&c->err_log, ERR_LOG_INTERVAL_MS);
    if (rb) {
        c->rb = *rb;
        c->has_rb = true;
    }
    if (ntopics <= 0) {
        r = HR_INVALID;
        goto out;
    }
    c->rk = consumer_handle(b, group, c);
    if (!c->rk) {
        r = HR_INVALID;
        goto out;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->last_commit_ns = hclock_mono_ns();
    subs = rd_kafka_topic_partition_list_new(ntopics);
    for (int i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, subs);
    if (err) {
        log_error(LOGC, "group %s: subscribe: %s", group, rd_kafka_err2str(err));
        r = map_err(err);
        goto out;
    }
    *out = &c->base;
    c = NULL;
    r = HR_OK;
out:
    if (subs) rd_kafka_topic_partition_list_destroy(subs);
    if (c) {
        if (c->rk) rd_kafka_destroy(c->rk);
        kconsumer_free(c);
    }
    return r;
}

/* The record's last `traceparent` header into o (bus.h), NULL when it has
 * none. librdkafka parses a record's headers only when asked, and this is
 * the only one herald reads. */
static void kafka_traceparent(rd_kafka_message_t *m, bus_msg_t *o)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t vn = 0;
    o->traceparent = NULL;
    o->traceparent_len = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (rd_kafka_header_get_last(hdrs, "traceparent", &v, &vn) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return;
    o->traceparent = v;
    o->traceparent_len = vn;
}

static int kpoll(bus_consumer_t *bc, bus_msg_t *msgs, int max, int timeout_ms)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    held_release(c);
    if (max <= 0) return 0;
    if (c->cap < max) {
        c->held = xrealloc(c->held, (size_t)max * sizeof(*c->held));
        c->cap = max;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX
                                      : hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    int n = 0;
    while (n < max) {
        int wait = 0;
        if (n == 0) {
            int64_t left = deadline == INT64_MAX ? -1 : (deadline - hclock_mono_ns()) / 1000000;
            if (deadline != INT64_MAX && left <= 0) {
                /* one last look without blocking */
                left = 0;
            }
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (!m) {
            if (n > 0 || wait == 0) break;
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_client_error(&c->err_log, c->rk, err, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (err == RD_KAFKA_RESP_ERR__FATAL) {
                c->nheld = n;
                return n > 0 ? n : HR_ERR;
            }
            if (n > 0) break;
            continue;
        }
        rd_kafka_timestamp_type_t tstype;
        bus_msg_t *o = &msgs[n];
        o->topic = rd_kafka_topic_name(m->rkt);
        o->partition = m->partition;
        o->offset = m->offset;
        o->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
        o->key = m->key;
        o->key_len = m->key_len;
        o->value = m->payload;
        o->value_len = m->len;
        kafka_traceparent(m, o);
        c->held[n++] = m;
    }
    c->nheld = n;
    /* Periodic commit of stored offsets; the result comes back through
     * offset_commit_cb in a later poll. */
    int64_t now = hclock_mono_ns();
    if (c->commit_interval_ms > 0 &&
        now - c->last_commit_ns >= (int64_t)c->commit_interval_ms * 1000000) {
        c->last_commit_ns = now;
        rd_kafka_commit(c->rk, NULL, 1);
    }
    return n;
}

typedef rd_kafka_resp_err_t (*partition_fn)(rd_kafka_t *, rd_kafka_topic_partition_list_t *);

/* Applies fn to a one-partition list; maps the call's and the partition's error. */
static hr_t one_partition(kconsumer_t *c, const char *what, const char *topic, int32_t partition,
                          int64_t offset, partition_fn fn)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t err = fn(c->rk, l);
    if (!err) err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) log_debug(LOGC, "group %s: %s %s [%" PRId32 "]: %s", c->group, what, topic, partition,
                       rd_kafka_err2str(err));
    return map_err(err);
}

static hr_t kstore_offset(bus_consumer_t *bc, const char *topic, int32_t partition, int64_t next)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (next < 0) return HR_INVALID;
    return one_partition(c, "store offset", topic, partition, next, rd_kafka_offsets_store);
}

static hr_t kcommit(bus_consumer_t *bc)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return HR_OK;
    log_warn(LOGC, "group %s: commit: %s", c->group, rd_kafka_err2str(err));
    return map_err(err);
}

/* The stages' periodic commit: sent without waiting for the broker's
 * answer (served by the next poll), as the poll's own commit is; a commit
 * lost to a crash means that work is processed again. */
static hr_t kcommit_async(bus_consumer_t *bc)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 1);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return HR_OK;
    log_warn(LOGC, "group %s: commit: %s", c->group, rd_kafka_err2str(err));
    return map_err(err);
}

static hr_t kpause(bus_consumer_t *bc, const char *topic, int32_t partition)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    return one_partition(c, "pause", topic, partition, RD_KAFKA_OFFSET_INVALID,
                         rd_kafka_pause_partitions);
}

static hr_t kresume(bus_consumer_t *bc, const char *topic, int32_t partition)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    return one_partition(c, "resume", topic, partition, RD_KAFKA_OFFSET_INVALID,
                         rd_kafka_resume_partitions);
}

static hr_t kseek(bus_consumer_t *bc, const char *topic, int32_t partition, int64_t offset)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (offset < 0) return HR_INVALID;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, META_TIMEOUT_MS);
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : l->elems[0].err;
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) log_warn(LOGC, "group %s: seek %s [%" PRId32 "] to %" PRId64 ": %s", c->group, topic,
                      partition, offset, rd_kafka_err2str(err));
    return map_err(err);
}

static void kconsumer_close(bus_consumer_t *bc)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    held_release(c);
    if (c->txn_open) bus_txn_abort(bc);
    /* What is stored now is committed now; then the close revokes (stage
     * callback, another commit) and leaves the group. Each step is bounded
     * (kbus_t.close_ms): a stop never hangs on an absent group coordinator;
     * what was not committed is processed again. */
    int close_ms = ((kbus_t *)c->base.bus)->close_ms;
    rd_kafka_resp_err_t err = commit_within(c->rk, close_ms);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn(LOGC, "group %s: commit on close: %s", c->group, rd_kafka_err2str(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, q);
    if (e) {
        log_warn(LOGC, "group %s: close: %s", c->group, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        /* The revoke comes here as an event; it runs the rebalance callback
         * on this thread, as rd_kafka_consumer_close() did. Other events
         * (fetched records, errors) are dropped. Not served through
         * rd_kafka_queue_poll_callback(): it asserts on a fetched record. */
        int64_t deadline = hclock_mono_ns() + (int64_t)close_ms * 2 * 1000000;
        while (!rd_kafka_consumer_closed(c->rk) && hclock_mono_ns() < deadline) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (!ev) continue;
            if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                rebalance_cb(c->rk, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), c);
            rd_kafka_event_destroy(ev);
        }
        if (!rd_kafka_consumer_closed(c->rk))
            log_warn(LOGC, "group %s: the close did not finish in %d ms; leaving it (the group "
                           "drops this member after its session timeout)", c->group, close_ms * 2);
    }
    rd_kafka_queue_destroy(q);
    /* after a close that did not finish this waits ~10 s for the group's
     * requests still pending (measured with the coordinator down:
     * test_close_without_coordinator), not for the coordinator */
    rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    kconsumer_free(c);
}

/* ---- groups ---- */

/* A list of every partition of topic, or NULL (HR_NOTFOUND / error in *r). */
static rd_kafka_topic_partition_list_t *all_partitions(kbus_t *b, const char *topic, hr_t *r)
{
    hr_t why;
    int32_t n = metadata_partitions(b->rk, topic, &why);
    if (n <= 0) {
        *r = why == HR_OK ? HR_NOTFOUND : why;
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int32_t p = 0; p < n; p++) rd_kafka_topic_partition_list_add(l, topic, p);
    *r = HR_OK;
    return l;
}

/* Fails with HR_CONFLICT when the group has live members. */
static hr_t group_must_be_empty(kbus_t *b, const char *group)
{
    char why[512];
    rd_kafka_AdminOptions_t *aopts =
        rd_kafka_AdminOptions_new(b->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_AdminOptions_set_request_timeout(aopts, ADMIN_TIMEOUT_MS, why, sizeof(why));
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->rk);
    rd_kafka_event_t *ev = NULL;
    hr_t r = HR_ERR;
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(b->rk, groups, 1, aopts, q);
    ev = admin_wait(q, ADMIN_TIMEOUT_MS + 5000);
    if (!ev) {
        r = HR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        log_error(LOGC, "describe group %s: %s", group, rd_kafka_event_error_string(ev));
        r = map_err(rd_kafka_event_error(ev));
        goto out;
    }
    const rd_kafka_DescribeConsumerGroups_result_t *res =
        rd_kafka_event_DescribeConsumerGroups_result(ev);
    size_t cnt = 0;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        res ? rd_kafka_DescribeConsumerGroups_result_groups(res, &cnt) : NULL;
    if (cnt != 1) goto out;
    const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(gd[0]);
    if (ge && rd_kafka_error_code(ge) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        log_error(LOGC, "describe group %s: %s", group, rd_kafka_error_string(ge));
        r = map_err(rd_kafka_error_code(ge));
        goto out;
    }
    size_t members = ge ? 0 : rd_kafka_ConsumerGroupDescription_member_count(gd[0]);
    if (members > 0) {
        log_error(LOGC, "group %s has %zu live members; stop them before resetting offsets", group,
                  members);
        r = HR_CONFLICT;
        goto out;
    }
    r = HR_OK;
out:
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(aopts);
    return r;
}

/* ListOffsets: every partition of l gets its end offset (which = -1) or
 * its first offset (which = -2), within timeout_ms; a partition with no
 * answer is an error. Not rd_kafka_query_watermark_offsets(): in librdkafka
 * before 2.3.0 it ignores its timeout and keeps asking a dead leader until
 * that broker comes back (librdkafka #4460; 2.0.2 here), which held every
 * dispatch worker taking partitions over after a broker was killed inside
 * bus_lag for minutes, out of its group. rd_kafka_offsets_for_times() with
 * Kafka's special timestamps (-1 latest, -2 earliest) is bounded by its
 * timeout, and asks each leader once for all of its partitions; the next
 * call asks the new leader. */
#define LIST_OFFSETS_LATEST (-1)
#define LIST_OFFSETS_EARLIEST (-2)

static rd_kafka_resp_err_t list_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                                        int64_t which, int timeout_ms)
{
    for (int i = 0; i < l->cnt; i++) {
        l->elems[i].offset = which;
        l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
    int i = 0;
    for (; !err && i < l->cnt; i++) {
        err = l->elems[i].err;
        /* still the timestamp asked for: no answer in time */
        if (!err && l->elems[i].offset < 0) err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    }
    if (err && l->cnt > 0)
        log_warn(LOGC, "offsets of %s [%" PRId32 "]: %s", l->elems[i > 0 ? i - 1 : 0].topic,
                 l->elems[i > 0 ? i - 1 : 0].partition, rd_kafka_err2str(err));
    return err;
}

static hr_t kgroup_reset(bus_t *bus, const char *group, const char *topic, int64_t to_time_ms)
{
    kbus_t *b = (kbus_t *)bus;
    rd_kafka_t *rk = NULL;
    hr_t r;
    rd_kafka_topic_partition_list_t *l = all_partitions(b, topic, &r);
    if (!l) return r;
    if ((r = group_must_be_empty(b, group)) != HR_OK) goto out;

    /* Target offsets: the first record at or after the time; partitions with
     * none go to their end. Time 0 is the earliest record. */
    if (to_time_ms > 0) {
        for (int i = 0; i < l->cnt; i++) l->elems[i].offset = to_time_ms;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(b->rk, l, META_TIMEOUT_MS);
        if (err) {
            log_error(LOGC, "offsets for time %" PRId64 " on %s: %s", to_time_ms, topic,
                      rd_kafka_err2str(err));
            r = map_err(err);
            goto out;
        }
    }
    /* the partitions' ends (a time after the last record) or starts (time 0) */
    rd_kafka_topic_partition_list_t *ends = rd_kafka_topic_partition_list_copy(l);
    bool need = to_time_ms <= 0;
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *p = &l->elems[i];
        if (to_time_ms > 0 && p->err) {
            log_error(LOGC, "offsets for time on %s [%" PRId32 "]: %s", topic, p->partition,
                      rd_kafka_err2str(p->err));
            r = map_err(p->err);
            rd_kafka_topic_partition_list_destroy(ends);
            goto out;
        }
        if (p->offset < 0) need = true;
    }
    if (need) {
        rd_kafka_resp_err_t err = list_offsets(
            b->rk, ends, to_time_ms > 0 ? LIST_OFFSETS_LATEST : LIST_OFFSETS_EARLIEST, META_TIMEOUT_MS);
        if (err) {
            log_error(LOGC, "offsets of %s: %s", topic, rd_kafka_err2str(err));
            r = map_err(err);
            rd_kafka_topic_partition_list_destroy(ends);
            goto out;
        }
        for (int i = 0; i < l->cnt; i++) {
            rd_kafka_topic_partition_t *p = &l->elems[i];
            if (to_time_ms > 0 && p->offset >= 0) continue;
            p->offset = ends->elems[i].offset;
            p->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
    }
    rd_kafka_topic_partition_list_destroy(ends);

    /* Commit them as the group, from a consumer that does not join it. */
    rk = consumer_handle(b, group, NULL);
    if (!rk) {
        r = HR_ERR;
        goto out;
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, l, 0);
    for (int i = 0; !err && i < l->cnt; i++) err = l->elems[i].err;
    if (err) {
        log_error(LOGC, "reset group %s on %s: %s", group, topic, rd_kafka_err2str(err));
        r = map_err(err);
        goto out;
    }
    log_info(LOGC, "group %s: offsets of %s reset to time %" PRId64, group, topic, to_time_ms);
    r = HR_OK;
out:
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return r;
}

static hr_t klag(bus_t *bus, const char *group, const char *topic, bus_lag_t **out, int *n)
{
    kbus_t *b = (kbus_t *)bus;
    rd_kafka_t *rk = NULL;
    bus_lag_t *lags = NULL;
    rd_kafka_topic_partition_list_t *hi_l = NULL, *lo_l = NULL;
    hr_t r;
    rd_kafka_topic_partition_list_t *l = all_partitions(b, topic, &r);
    if (!l) return r;
    rk = consumer_handle(b, group, NULL);
    if (!rk) {
        r = HR_ERR;
        goto out;
    }
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, META_TIMEOUT_MS);
    if (err) {
        log_warn(LOGC, "committed offsets of group %s: %s", group, rd_kafka_err2str(err));
        r = map_err(err);
        goto out;
    }
    /* ends of every partition; starts only for those with nothing committed */
    hi_l = rd_kafka_topic_partition_list_copy(l);
    if ((err = list_offsets(b->rk, hi_l, LIST_OFFSETS_LATEST, META_TIMEOUT_MS)) != 0) {
        r = map_err(err);
        goto out;
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err || l->elems[i].offset < 0) {
            if (!lo_l) lo_l = rd_kafka_topic_partition_list_new(l->cnt);
            rd_kafka_topic_partition_list_add(lo_l, topic, l->elems[i].partition);
        }
    if (lo_l && (err = list_offsets(b->rk, lo_l, LIST_OFFSETS_EARLIEST, META_TIMEOUT_MS)) != 0) {
        r = map_err(err);
        goto out;
    }
    lags = xcalloc((size_t)l->cnt, sizeof(*lags));
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *p = &l->elems[i];
        bus_lag_t *g = &lags[i];
        int64_t hi = hi_l->elems[i].offset, lo = 0;
        rd_kafka_topic_partition_t *s0 =
            lo_l ? rd_kafka_topic_partition_list_find(lo_l, topic, p->partition) : NULL;
        if (s0) lo = s0->offset;
        snprintf(g->topic, sizeof(g->topic), "%s", topic);
        g->partition = p->partition;
        g->committed = p->err || p->offset < 0 ? -1 : p->offset;
        g->end_offset = hi;
        /* Without a commit the group starts at the earliest record. */
        g->lag = hi - (g->committed >= 0 ? g->committed : lo);
        if (g->lag < 0) g->lag = 0;
    }
    *out = lags;
    *n = l->cnt;
    lags = NULL;
    r = HR_OK;
out:
    if (hi_l) rd_kafka_topic_partition_list_destroy(hi_l);
    if (lo_l) rd_kafka_topic_partition_list_destroy(lo_l);
    free(lags);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return r;
}

/* bus_read_range: a consumer handle of no group (it never subscribes, so
 * it never joins one; the group.id only names it), the partition assigned
 * at `from`, polled until `to`. Gives up after READ_RANGE_TIMEOUT_MS. */
#define READ_RANGE_TIMEOUT_MS 30000

static hr_t kread_range(bus_t *bus, const char *topic, int32_t partition, int64_t from, int64_t to,
                        bus_read_fn fn, void *ud)
{
    kbus_t *b = (kbus_t *)bus;
    rd_kafka_t *rk = consumer_handle(b, "herald-read-range", NULL);
    if (!rk) return HR_ERR;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = from;
    hr_t r = HR_OK;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
    if (err) {
        log_warn(LOGC, "reading %s [%" PRId32 "]: %s", topic, partition, rd_kafka_err2str(err));
        r = map_err(err);
        goto out;
    }
    int64_t deadline = hclock_mono_ns() + (int64_t)READ_RANGE_TIMEOUT_MS * 1000000;
    int64_t next = from;
    bool more = true;
    while (more && next < to) {
        if (hclock_mono_ns() >= deadline) {
            log_warn(LOGC, "reading %s [%" PRId32 "]: offset %" PRId64 " of %" PRId64 " after %d s", topic,
                     partition, next, to, READ_RANGE_TIMEOUT_MS / 1000);
            r = HR_TIMEOUT;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            /* Transaction markers (fanout.exactly_once) take offsets but are
             * never returned: the position says when they were the rest. */
            rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(pl, topic, partition);
            if (rd_kafka_position(rk, pl) == RD_KAFKA_RESP_ERR_NO_ERROR && pl->elems[0].offset >= to)
                more = false;
            rd_kafka_topic_partition_list_destroy(pl);
            continue;
        }
        if (m->err) {
            log_warn(LOGC, "reading %s [%" PRId32 "]: %s", topic, partition, rd_kafka_err2str(m->err));
            r = map_err(m->err);
            rd_kafka_message_destroy(m);
            break;
        }
        rd_kafka_timestamp_type_t tstype;
        bus_msg_t bm = {.topic = topic, .partition = partition, .offset = m->offset,
                        .timestamp_ms = rd_kafka_message_timestamp(m, &tstype), .key = m->key,
                        .key_len = m->key_len, .value = m->payload, .value_len = m->len};
        next = m->offset + 1;
        if (m->offset < to) more = fn(ud, &bm);
        rd_kafka_message_destroy(m);
    }
out:
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return r;
}

/* ---- transactions (exactly-once read-process-write) ---- */

/* Delivery reports of the transactional producer (the consumer's thread). */
static void txn_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kconsumer_t *c = opaque;
    c->txn_reported++;
    dr_msg_cb(rk, m, c->base.bus);
}

/* Fails what the transactional producer still holds (each record gets its
 * delivery report) and destroys it. A record it never reported (it
 * cannot be purged) is failed on its batch here. */
static void txn_drop(kconsumer_t *c)
{
    if (!c->txn_rk) return;
    if (txn_current == c) txn_current = NULL;
    rd_kafka_purge(c->txn_rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(c->txn_rk, 5000);
    rd_kafka_destroy(c->txn_rk);
    c->txn_rk = NULL;
    c->txn_open = false;
    int64_t missing = c->txn_sent - c->txn_reported;
    if (missing > 0 && c->txn_batch) {
        log_warn(LOGC, "group %s: %" PRId64 " records of a dropped transaction never reported; "
                 "failed", c->group, missing);
        bus_batch_ack_n(c->txn_batch, missing, HR_CLOSED);
    }
    c->txn_sent = c->txn_reported = 0;
    c->txn_batch = NULL;
}

/* After an abort: every record of the transaction reported, or the
 * producer dropped (which fails the rest). */
static void txn_settle(kconsumer_t *c)
{
    if (!c->txn_rk) return;
    rd_kafka_flush(c->txn_rk, 10000);
    if (c->txn_sent != c->txn_reported) txn_drop(c);
}

/* Logs a failed transactional call and consumes e; returns its hr_t (never
 * HR_OK). A fatal error drops the producer. */
static hr_t txn_error(kconsumer_t *c, const char *what, rd_kafka_error_t *e)
{
    hr_t r = map_err(rd_kafka_error_code(e));
    if (r == HR_OK) r = HR_ERR;
    bool fatal = rd_kafka_error_is_fatal(e);
    int64_t more = errlog_admit(&c->err_log);
    if (more >= 0)
        log_warn(LOGC, "group %s: transaction %s: %s%s (%" PRId64 " more errors in the last %d s)",
                 c->group, what, rd_kafka_error_string(e), fatal ? " (fatal: new producer)" : "",
                 more, errlog_interval_s(&c->err_log));
    rd_kafka_error_destroy(e);
    if (fatal) txn_drop(c);
    return r;
}

/* The transactional producer, made and registered if need be. */
static hr_t txn_ensure(kconsumer_t *c)
{
    if (c->txn_rk) return HR_OK;
    kbus_t *b = (kbus_t *)c->base.bus;
    char why[512];
    rd_kafka_conf_t *conf = conf_base(b);
    if (!conf) return HR_INVALID;
    if (conf_set_pairs(conf, producer_defaults) != HR_OK ||
        conf_set(conf, "transaction.timeout.ms", TXN_TIMEOUT_MS) != HR_OK ||
        /* librdkafka: a record may not outlive the transaction it is in */
        conf_set(conf, "message.timeout.ms", TXN_TIMEOUT_MS) != HR_OK ||
        conf_set_pairs(conf, (const char *const *)b->kv) != HR_OK ||
        conf_set(conf, "transactional.id", c->txn_id) != HR_OK ||
        conf_set(conf, "client.id", "herald-txn") != HR_OK) {
        rd_kafka_conf_destroy(conf);
        return HR_INVALID;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, txn_dr_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->txn_sent = c->txn_reported = 0;
    c->txn_batch = NULL;
    c->txn_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!c->txn_rk) {
        if (errlog_admit(&c->err_log) >= 0)
            log_error(LOGC, "group %s: cannot create the transactional producer: %s", c->group, why);
        rd_kafka_conf_destroy(conf);
        return HR_INVALID;
    }
    int64_t t0 = hclock_mono_ns();
    rd_kafka_error_t *e = rd_kafka_init_transactions(c->txn_rk, ADMIN_TIMEOUT_MS);
    if (e) {
        hr_t r = txn_error(c, "init", e);
        txn_drop(c);
        return r;
    }
    log_info(LOGC, "group %s: transactional producer %s ready in %" PRId64 " ms", c->group,
             c->txn_id, (hclock_mono_ns() - t0) / 1000000);
    return HR_OK;
}

static hr_t ktxn_init(bus_consumer_t *bc, const char *txn_id)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (!txn_id || !*txn_id) return HR_INVALID;
    free(c->txn_id);
    c->txn_id = xstrdup(txn_id);
    return HR_OK;
}

static hr_t ktxn_begin(bus_consumer_t *bc)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (!c->txn_id) return HR_DECLINED;
    if (c->txn_open) return HR_CONFLICT;
    hr_t r = txn_ensure(c);
    if (r != HR_OK) return r;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(c->txn_rk);
    if (e) return txn_error(c, "begin", e);
    c->txn_open = true;
    txn_current = c;
    return HR_OK;
}

static void ktxn_abort(bus_consumer_t *bc)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (txn_current == c) txn_current = NULL;
    if (!c->txn_open || !c->txn_rk) return;
    c->txn_open = false;
    rd_kafka_error_t *e = rd_kafka_abort_transaction(c->txn_rk, ADMIN_TIMEOUT_MS);
    if (e) {
        txn_error(c, "abort", e);
        txn_drop(c); /* cannot go on with a transaction in an unknown state */
        return;
    }
    /* the purged records' delivery reports (failures) */
    txn_settle(c);
}

static hr_t ktxn_commit(bus_consumer_t *bc, const bus_offset_t *offs, int n)
{
    kconsumer_t *c = (kconsumer_t *)bc;
    if (!c->txn_open || !c->txn_rk) return HR_DECLINED;
    txn_current = NULL; /* nothing more goes into this transaction */
    rd_kafka_error_t *e = NULL;
    if (n > 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, offs[i].topic, offs[i].partition)->offset = offs[i].next;
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(c->rk);
        e = rd_kafka_send_offsets_to_transaction(c->txn_rk, l, md, ADMIN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(md);
        rd_kafka_topic_partition_list_destroy(l);
    }
    /* A retriable commit error (a timeout) may be retried as is. */
    for (int attempt = 0; !e; attempt++) {
        e = rd_kafka_commit_transaction(c->txn_rk, ADMIN_TIMEOUT_MS);
        if (!e) {
            c->txn_open = false;
            txn_settle(c); /* the commit's flush served them; never wait on an ack */
            return HR_OK;
        }
        if (!rd_kafka_error_is_retriable(e) || attempt >= 2) break;
        rd_kafka_error_destroy(e);
        e = NULL;
    }
    bool abortable = rd_kafka_error_txn_requires_abort(e) || !rd_kafka_error_is_fatal(e);
    hr_t r = txn_error(c, "commit", e);
    if (abortable && c->txn_rk) {
        c->txn_open = true;
        ktxn_abort(bc);
    }
    c->txn_open = false;
    return r;
}

const bus_ops_t bus_kafka_ops = {
    .name = "kafka",
    .open = kopen,
    .close = kclose,
    .topic_ensure = ktopic_ensure,
    .partitions = kpartitions,
    .produce = kproduce,
    .flush = kflush,
    .consumer_new = kconsumer_new,
    .poll = kpoll,
    .store_offset = kstore_offset,
    .commit = kcommit,
    .commit_async = kcommit_async,
    .pause = kpause,
    .resume = kresume,
    .seek = kseek,
    .consumer_close = kconsumer_close,
    .group_reset = kgroup_reset,
    .lag = klag,
    .outstanding = koutstanding,
    .read_range = kread_range,
    .txn_init = ktxn_init,
    .txn_begin = ktxn_begin,
    .txn_commit = ktxn_commit,
    .txn_abort = ktxn_abort,
};
