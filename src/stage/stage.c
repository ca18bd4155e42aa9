/*
 * stage.c - the generic consume -> process -> ack -> store-offset loop,
 * and the flow control stages use from process() (pause, resume, rewind,
 * "not now").
 */
#include "stage/stage.h"

#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/text.h"

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

/* A partition paused by the stage (worker thread only). */
typedef struct paused {
    char *topic;
    int32_t partition;
    int64_t until_ms;           /* 0 = until stage_resume() */
} paused_t;

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
    /* partitions the stage paused (worker thread only) */
    paused_t *paused;
    int npaused, cpaused;
    bool paused_now;            /* the current process() call paused something */
    /* offset commits (worker thread only) */
    int64_t last_commit_ns;     /* monotonic time of the last commit */
    bool uncommitted;           /* offsets were stored since then */
    /* exactly-once (fanout.exactly_once on Kafka): each batch is one
     * transaction holding its outputs and its input offsets; one batch in
     * flight */
    bool txn;
    /* gather() (worker thread only): the records polled so far, not yet
     * processed; a poll may revoke a partition meanwhile (on_revoked) */
    bus_msg_t *gathering;
    int ngathered;
};

typedef struct part_range {
    const char *topic;
    int32_t partition;
    int64_t first;
    int64_t last;
    int64_t next;               /* offset to store: last + 1, or where the stage rewound */
} part_range_t;

/* What process() gets: the worker and the batch being processed. */
struct stage_ctx {
    stage_worker_t *w;
    inflight_t *f;
};

static int paused_find(stage_worker_t *w, const char *topic, int32_t partition)
{
    for (int i = 0; i < w->npaused; i++)
        if (w->paused[i].partition == partition && strcmp(w->paused[i].topic, topic) == 0) return i;
    return -1;
}

static void paused_drop(stage_worker_t *w, int i)
{
    free(w->paused[i].topic);
    w->paused[i] = w->paused[--w->npaused];
}

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
    /* Records of it gathered but not processed yet: its next owner reads
     * them again from the committed offset, so they are not this worker's
     * to process any more (both would, e.g. plan an event's chunks twice). */
    for (int i = 0; i < w->ngathered; i++)
        if (w->gathering[i].partition == partition && strcmp(w->gathering[i].topic, topic) == 0)
            w->gathering[i].partition = -1; /* dropped by gather() */
    /* A pause belongs to this owner: resume now (Kafka would otherwise keep
     * the partition paused if it came back to this consumer). */
    int i = paused_find(w, topic, partition);
    if (i >= 0) {
        bus_resume(w->consumer, topic, partition);
        paused_drop(w, i);
    }
    if (w->def->partition_changed) w->def->partition_changed(w->state, topic, partition, false);
}

/* One polled batch whose outputs may still be unacknowledged. */
struct inflight {
    bus_batch_t batch;
    part_range_t *ranges;       /* range_cap entries: a batch touches at most one per record */
    int nr;
    int n;
    hr_t r;                     /* what process() returned */
    bool paused;                /* process() paused a partition */
};

/* Copies of records (gathering stages), valid until the next gather. */
typedef struct gathered {
    buf_t bytes;
    size_t *key_at, *val_at, *tp_at;
    int cap;
} gathered_t;

static void ranges_of(inflight_t *f, const char *topic, const bus_msg_t *msgs, int n)
{
    f->nr = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < f->nr && f->ranges[j].partition != msgs[i].partition) j++;
        if (j == f->nr) {
            f->ranges[f->nr++] = (part_range_t){topic, msgs[i].partition, msgs[i].offset, msgs[i].offset, 0};
        } else {
            if (msgs[i].offset < f->ranges[j].first) f->ranges[j].first = msgs[i].offset;
            if (msgs[i].offset > f->ranges[j].last) f->ranges[j].last = msgs[i].offset;
        }
    }
    for (int j = 0; j < f->nr; j++) f->ranges[j].next = f->ranges[j].last + 1;
}

static part_range_t *range_of(inflight_t *f, const char *topic, int32_t partition)
{
    for (int j = 0; j < f->nr; j++)
        if (f->ranges[j].partition == partition && strcmp(f->ranges[j].topic, topic) == 0)
            return &f->ranges[j];
    return NULL;
}

/* ---- flow control (worker thread, inside process) ---- */

hr_t stage_pause(stage_ctx_t *cx, const char *topic, int32_t partition, int64_t until_ms)
{
    stage_worker_t *w = cx->w;
    hr_t r = bus_pause(w->consumer, topic, partition);
    if (r != HR_OK) return r;
    int i = paused_find(w, topic, partition);
    if (i < 0) {
        if (w->npaused == w->cpaused) {
            w->cpaused = w->cpaused ? 2 * w->cpaused : 8;
            w->paused = xrealloc(w->paused, (size_t)w->cpaused * sizeof(*w->paused));
        }
        i = w->npaused++;
        w->paused[i] = (paused_t){xstrdup(topic), partition, 0};
    }
    w->paused[i].until_ms = until_ms > 0 ? until_ms : 0;
    w->paused_now = true;
    log_debug(w->def->name, "paused %s/%d until %lld", topic, partition, (long long)until_ms);
    return HR_OK;
}

hr_t stage_resume(stage_ctx_t *cx, const char *topic, int32_t partition)
{
    stage_worker_t *w = cx->w;
    hr_t r = bus_resume(w->consumer, topic, partition);
    int i = paused_find(w, topic, partition);
    if (i >= 0) paused_drop(w, i);
    return r;
}

hr_t stage_rewind(stage_ctx_t *cx, const char *topic, int32_t partition, int64_t offset)
{
    part_range_t *g = range_of(cx->f, topic, partition);
    if (!g || offset < g->first || offset > g->last) return HR_INVALID;
    hr_t r = bus_seek(cx->w->consumer, topic, partition, offset);
    if (r != HR_OK) return r;
    if (offset < g->next) g->next = offset;
    return HR_OK;
}

bool stage_rewound(const stage_ctx_t *cx, const bus_msg_t *m)
{
    const inflight_t *f = cx->f;
    for (int j = 0; j < f->nr; j++)
        if (f->ranges[j].partition == m->partition && strcmp(f->ranges[j].topic, m->topic) == 0)
            return m->offset >= f->ranges[j].next;
    return false;
}

/* Resumes the paused partitions whose time has come. Returns how long the
 * next poll may wait: at most max_wait_ms, less when a resume is due sooner. */
static int resume_due(stage_worker_t *w, int max_wait_ms)
{
    if (w->npaused == 0) return max_wait_ms;
    int64_t now = hclock_now_ms();
    int wait = max_wait_ms;
    for (int i = 0; i < w->npaused;) {
        paused_t *p = &w->paused[i];
        if (p->until_ms == 0) {
            i++;
            continue;
        }
        if (p->until_ms <= now) {
            log_debug(w->def->name, "resumed %s/%d", p->topic, p->partition);
            bus_resume(w->consumer, p->topic, p->partition);
            paused_drop(w, i);
            continue;
        }
        if (p->until_ms - now < wait) wait = (int)(p->until_ms - now);
        i++;
    }
    return wait;
}

/* Polls more records after a first batch of n (already in msgs), copying
 * them all so that they outlive the polls, until `want` records are there
 * or the bus has nothing more right now (with gather_linger_ms: nothing
 * more by then). A partition revoked by one of these polls takes its
 * records gathered before with it (on_revoked). Returns the new count. */
static int gather(stage_worker_t *w, gathered_t *g, bus_msg_t *msgs, int n, int want)
{
    int64_t until = w->def->gather_linger_ms > 0 ? hclock_mono_ns() + (int64_t)w->def->gather_linger_ms * 1000000 : 0;
    buf_reset(&g->bytes);
    if (g->cap < want) {
        g->cap = want;
        g->key_at = xrealloc(g->key_at, (size_t)want * sizeof(*g->key_at));
        g->val_at = xrealloc(g->val_at, (size_t)want * sizeof(*g->val_at));
        g->tp_at = xrealloc(g->tp_at, (size_t)want * sizeof(*g->tp_at));
    }
    int total = 0;
    for (;;) {
        for (int i = 0; i < n; i++) {
            bus_msg_t *m = &msgs[total + i];
            g->key_at[total + i] = g->bytes.len;
            buf_append(&g->bytes, m->key, m->key_len);
            g->val_at[total + i] = g->bytes.len;
            buf_append(&g->bytes, m->value, m->value_len);
            g->tp_at[total + i] = g->bytes.len;
            buf_append(&g->bytes, m->traceparent, m->traceparent_len);
            m->topic = w->def->topic;
        }
        total += n;
        int room = want - total;
        if (room <= 0) break;
        w->gathering = msgs;
        w->ngathered = total;
        n = bus_poll(w->consumer, msgs + total, room, 0);
        if (n == 0 && until && !atomic_load(&w->app->stopping)) {
            int64_t left_ms = (until - hclock_mono_ns()) / 1000000;
            if (left_ms > 0) n = bus_poll(w->consumer, msgs + total, room, (int)left_ms);
        }
        w->gathering = NULL;
        w->ngathered = 0;
        if (n <= 0) break;
    }
    int kept = 0;
    for (int i = 0; i < total; i++) {
        if (msgs[i].partition < 0) continue; /* its partition was revoked */
        msgs[kept] = msgs[i];
        msgs[kept].key = g->bytes.data + g->key_at[i];
        msgs[kept].value = g->bytes.data + g->val_at[i];
        if (msgs[kept].traceparent) msgs[kept].traceparent = g->bytes.data + g->tp_at[i];
        kept++;
    }
    if (kept < total)
        log_debug(w->def->name, "%d gathered record(s) of revoked partitions left to their new owner",
                  total - kept);
    return kept;
}

/*
 * The loop. Up to PIPELINE batches are in flight: while the bus
 * acknowledges the outputs of one, the next is polled and processed. Input
 * offsets are stored strictly in order, each only after its batch's outputs
 * are acknowledged (a partition the stage rewound: up to the rewind). When
 * a batch fails, every later one is abandoned too: the worker waits for
 * what is in flight, seeks back to the failed batch's first records and
 * processes from there again after a back-off. A batch whose process()
 * said "not now" (HR_LATER) goes the same way without the back-off.
 */
#define PIPELINE (pipeline_of(w))

/* Batches a worker keeps in flight: pipeline.depth, or fewer when the stage
 * says so (stage_def_t.max_depth). */
static int pipeline_of(const stage_worker_t *w)
{
    if (w->txn) return 1; /* the commit waits for the outputs anyway */
    int depth = w->app->cfg->pipeline_depth;
    return w->def->max_depth > 0 && w->def->max_depth < depth ? w->def->max_depth : depth;
}

/* Waits for the oldest batch in flight. true when its offsets were stored;
 * false when it failed (it stays in the ring). */
static bool retire_oldest(stage_worker_t *w, hr_t *acked)
{
    inflight_t *f = &w->ring[w->tail % PIPELINE];
    *acked = bus_batch_wait(w->app->bus, &f->batch, -1);
    if (f->r != HR_OK || *acked != HR_OK) return false;
    for (int j = 0; !w->txn && j < f->nr; j++) /* a transaction committed them */
        bus_store_offset(w->consumer, f->ranges[j].topic, f->ranges[j].partition, f->ranges[j].next);
    w->uncommitted = f->nr > 0 || w->uncommitted;
    w->tail++;
    return true;
}

/* Commits the stored offsets once pipeline.commit_interval_ms has passed
 * since the last commit (0: after every batch). What is stored but not
 * committed is processed again after a crash, so the interval bounds the
 * work a kill -9 repeats (the backends' own periodic commit, once a second,
 * stays as a fallback). A failed commit is retried at the next batch. */
static void commit_due(stage_worker_t *w)
{
    if (!w->uncommitted) return;
    int64_t now = hclock_mono_ns();
    if (now - w->last_commit_ns < (int64_t)w->app->cfg->commit_interval_ms * 1000000) return;
    w->last_commit_ns = now;
    if (bus_commit_async(w->consumer) == HR_OK) w->uncommitted = false;
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

static void dlq_log_flush(void);

/* Exactly-once: ends the batch's transaction, committing its outputs with
 * its input offsets when process() succeeded, else aborting. Returns what
 * the batch's result is now. */
static hr_t txn_end(stage_worker_t *w, inflight_t *f, hr_t r)
{
    if (r != HR_OK) {
        bus_txn_abort(w->consumer);
        return r;
    }
    bus_offset_t *offs = xcalloc((size_t)(f->nr > 0 ? f->nr : 1), sizeof(*offs));
    for (int j = 0; j < f->nr; j++)
        offs[j] = (bus_offset_t){f->ranges[j].topic, f->ranges[j].partition, f->ranges[j].next};
    r = bus_txn_commit(w->consumer, offs, f->nr);
    free(offs);
    return r;
}

/* A stable name for the worker's transactional producer: unique per
 * process (host and data dir) and worker, the same after a restart, so
 * that the broker aborts what a killed predecessor left open. */
static void txn_id_of(const stage_worker_t *w, char *out, size_t cap)
{
    char host[256] = "", dir[4096];
    if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    const char *d = w->app->cfg->data_dir ? w->app->cfg->data_dir : "";
    char *real = realpath(d, NULL);
    int len = snprintf(dir, sizeof(dir), "%s%c%s", host, 0, real ? real : d);
    free(real);
    uint64_t h = fnv1a64(dir, len > 0 && (size_t)len < sizeof(dir) ? (size_t)len : sizeof(dir) - 1);
    snprintf(out, cap, "herald-%s-%016llx-%d", w->def->group, (unsigned long long)h, w->index);
}

/* After "not now" with nothing paused: a short wait so that a stage
 * answering HR_LATER for a condition that persists cannot spin the CPU. */
#define LATER_NAP_MS 10

/* Sleeps up to ms, in 10 ms steps, while the app is not stopping. */
static void nap(app_t *app, int ms)
{
    for (int slept = 0; slept < ms && !atomic_load(&app->stopping); slept += 10)
        usleep((useconds_t)(ms - slept < 10 ? ms - slept : 10) * 1000);
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
    int retry_min = def->retry_min_ms > 0 ? def->retry_min_ms : 10;
    int retry_max = def->retry_max_ms > 0 ? def->retry_max_ms : 5000;
    if (retry_max < retry_min) retry_max = retry_min;
    int backoff_ms = retry_min;

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
            int wait = resume_due(w, w->head > w->tail ? 0 : 100);
            n = bus_poll(w->consumer, msgs, max, wait);
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
            stage_ctx_t cx = {w, f};
            w->paused_now = false;
            if (w->txn) {
                f->r = bus_txn_begin(w->consumer);
                if (f->r == HR_OK) f->r = txn_end(w, f, def->process(w->state, &cx, msgs, n, &f->batch));
            } else {
                f->r = def->process(w->state, &cx, msgs, n, &f->batch);
            }
            f->paused = w->paused_now;
            w->head++;
            if (f->r != HR_OK) w->failed = true;
            else if (w->head - w->tail < PIPELINE) continue;
        }
        if (w->head == w->tail) {
            commit_due(w); /* idle: what was stored last gets committed too */
            continue;
        }

        hr_t acked;
        if (retire_oldest(w, &acked)) {
            commit_due(w);
            backoff_ms = retry_min;
            continue;
        }
        inflight_t *f = &w->ring[w->tail % PIPELINE];
        if (f->r == HR_LATER && acked == HR_OK) {
            /* "not now": deliver it again, no back-off, no warning */
            bool paused = f->paused;
            log_debug(def->name, "batch of %d: not now; delivered again", f->n);
            rewind_failed(w);
            if (!paused) nap(app, LATER_NAP_MS);
            continue;
        }
        if (atomic_load(&app->stopping)) {
            log_info(def->name, "shutting down: batch of %d left for the next start (process: %s, "
                     "outputs: %s)", f->n, hr_str(f->r), hr_str(acked));
            rewind_failed(w);
            continue;
        }
        log_warn(def->name, "batch of %d failed (process: %s, outputs: %s); retrying in %d ms", f->n,
                 hr_str(f->r), hr_str(acked), backoff_ms);
        rewind_failed(w);
        nap(app, backoff_ms);
        backoff_ms = backoff_ms > retry_max / 2 ? retry_max : backoff_ms * 2;
    }
    dlq_log_flush();
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
    free(g.tp_at);
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
    if (def->process == fanout_stage.process && app->cfg->fanout_exactly_once &&
        strcmp(app->cfg->fanout_exactly_once, "true") == 0) {
        char id[256];
        txn_id_of(w, id, sizeof(id));
        r = bus_txn_init(w->consumer, id);
        if (r == HR_OK) {
            w->txn = true;
            log_info(def->name, "exactly-once: transactional producer %s", id);
        } else if (index == 0) {
            log_warn(def->name, "fanout.exactly_once needs the Kafka bus (%s); at-least-once",
                     hr_str(r));
        }
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
    for (int i = 0; i < w->npaused; i++) free(w->paused[i].topic);
    free(w->paused);
    free(w);
}

/*
 * Dead-letter warnings are rate-limited per worker thread (a thread runs
 * one stage): during an outage of a template or a flood of bad events,
 * one line per record would drown the log. At most DLQ_LOG_BURST lines per
 * DLQ_LOG_WINDOW_MS, then one summary line when the window ends (at the
 * next dead letter, or when the worker stops). Kept local and tiny; a
 * shared limiter may replace it.
 */
#define DLQ_LOG_BURST 5
#define DLQ_LOG_WINDOW_MS 10000

typedef struct loglimit {
    int64_t start_ms;           /* window start (hclock_now_ms, so tests can move it) */
    int logged;
    long long suppressed;
    char component[32];
} loglimit_t;

static _Thread_local loglimit_t dlq_limit;

static void dlq_log_flush(void)
{
    loglimit_t *l = &dlq_limit;
    if (l->suppressed)
        log_warn(l->component, "dead-lettered %lld more records in the last %d s", l->suppressed,
                 DLQ_LOG_WINDOW_MS / 1000);
    l->suppressed = 0;
    l->logged = 0;
    l->start_ms = 0;
}

static bool dlq_log_allow(const char *component)
{
    loglimit_t *l = &dlq_limit;
    int64_t now = hclock_now_ms();
    if (l->start_ms == 0 || now - l->start_ms >= DLQ_LOG_WINDOW_MS || now < l->start_ms) {
        dlq_log_flush();
        l->start_ms = now;
    }
    snprintf(l->component, sizeof(l->component), "%s", component);
    if (l->logged < DLQ_LOG_BURST) {
        l->logged++;
        return true;
    }
    l->suppressed++;
    return false;
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
        char *h = xmalloc(m->value_len * 2 + 1);
        const unsigned char *v = m->value;
        for (size_t i = 0; i < m->value_len; i++) {
            h[2 * i] = hex_lower[v[i] >> 4];
            h[2 * i + 1] = hex_lower[v[i] & 15];
        }
        h[m->value_len * 2] = '\0';
        json_object_set_new(o, "payload_hex", json_string(h));
        free(h);
    } else {
        json_object_set_new(o, "payload", p);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        /* only when out of memory: retry the batch rather than lose the record */
        log_error(stage, "cannot encode the dead letter for %s/%d/%lld", m->topic, m->partition,
                  (long long)m->offset);
        return HR_ERR;
    }
    hr_t r = stage_produce(app, TOPIC_DLQ, m->key_len ? -1 : 0, m->key, m->key_len, text,
                           strlen(text), batch);
    free(text);
    if (r == HR_OK) METRIC_INC(dlq_records);
    if (dlq_log_allow(stage))
        log_warn(stage, "dead-lettered %s/%d/%lld: %s", m->topic, m->partition,
                 (long long)m->offset, reason);
    return r;
}

hr_t stage_produce(app_t *app, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    bool last_try = false;
    for (;;) {
        hr_t r = bus_produce(app->bus, topic, partition, key, key_len, value, value_len, batch);
        if (r != HR_AGAIN) return r;
        /* Shutting down and still full after one more flush: give up; the
         * caller's batch is rewound and processed after the restart. */
        if (last_try) return HR_CLOSED;
        last_try = atomic_load(&app->stopping);
        /* The producer queue is full: let it drain (backpressure, not loss). */
        bus_flush(app->bus, 10);
    }
}

hr_t stage_produce_batch(app_t *app, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                         int *done)
{
    bool last_try = false;
    int k = 0;
    hr_t r = HR_OK;
    while (k < n) {
        int got = 0;
        r = bus_produce_batch(app->bus, topic, recs + k, n - k, batch, &got);
        k += got;
        if (r != HR_AGAIN) break;
        if (last_try) {
            r = HR_CLOSED;
            break;
        }
        last_try = atomic_load(&app->stopping);
        bus_flush(app->bus, 10);
    }
    if (done) *done = k;
    return r;
}
