/*
 * The stage loop (src/stage/stage.c) driven by a scripted stage on a real
 * embedded bus in a temporary directory: the failure path (no gap, the
 * failed batch seen again, offsets stored only after success), "not now"
 * (HR_LATER: delivered again without back-off or warning), pause until a
 * time (a fake clock), rewind (rewound offsets are not stored), and the
 * helpers stage_produce (gives up once stopping) and stage_dead_letter
 * (rate-limited warnings); records gathered from a partition that is then
 * revoked are left to its new owner.
 *
 * Nothing here sleeps to prove an absence: each negative check first waits
 * for a positive marker that the worker has moved past the point in
 * question.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "core/buf.h"
#include "core/log.h"
#include "stage/stage.h"

#define IN "in"
#define OUT "out"
#define MAXREC 4096
#define MAXCALLS 1024
#define WAIT_MS 10000

typedef struct rec {
    int32_t part;
    int64_t off;
} rec_t;

/* The scripted stage. Its state is shared with the test thread (mu). */
typedef struct fake {
    pthread_mutex_t mu;
    app_t *app;
    /* script */
    int64_t fail_at;            /* partition 0 offset whose batch fails; -1 = never */
    int fails_left;             /* how many times it fails */
    hr_t fail_with;             /* HR_ERR or HR_LATER */
    int64_t defer_at;           /* partition 0 offset to rewind to and pause at, once; -1 = never */
    int64_t defer_until;        /* the pause's end (0 = until resumed) */
    bool deferred;
    bool hold_assign;           /* the first partition assigned waits for `go` */
    bool held, go;
    pthread_cond_t cv;
    /* what happened */
    int ncalls;
    int call_first[MAXCALLS];   /* index into seen of the call's first record */
    int call_n[MAXCALLS];
    hr_t call_r[MAXCALLS];
    int64_t call_mono_ms[MAXCALLS];
    rec_t seen[MAXREC];         /* every record handed to process, in order */
    int nseen;
    rec_t done[MAXREC];         /* records acted on: successful calls, not rewound */
    int ndone;
} fake_t;

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    fake_t fake;
    stage_def_t def;
    stage_worker_t *w;
} fx_t;

static int64_t mono_ms(void) { return hclock_mono_ns() / 1000000; }

static void *fake_new(app_t *app, const stage_def_t *def, int worker)
{
    (void)app;
    (void)worker;
    return def->arg;
}

static bool batch_has(const bus_msg_t *msgs, int n, int32_t part, int64_t off)
{
    for (int i = 0; i < n; i++)
        if (msgs[i].partition == part && msgs[i].offset == off) return true;
    return false;
}

static hr_t fake_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                         bus_batch_t *batch)
{
    fake_t *f = state;
    pthread_mutex_lock(&f->mu);
    int c = f->ncalls < MAXCALLS ? f->ncalls++ : MAXCALLS - 1;
    f->call_first[c] = f->nseen;
    f->call_n[c] = n;
    f->call_mono_ms[c] = mono_ms();
    for (int i = 0; i < n && f->nseen < MAXREC; i++)
        f->seen[f->nseen++] = (rec_t){msgs[i].partition, msgs[i].offset};
    hr_t r = HR_OK;
    bool failing = f->fail_at >= 0 && f->fails_left > 0 && batch_has(msgs, n, 0, f->fail_at);
    if (failing) f->fails_left--;
    if (!failing && f->defer_at >= 0 && !f->deferred && batch_has(msgs, n, 0, f->defer_at)) {
        assert_int_equal(stage_rewind(cx, IN, 0, f->defer_at), HR_OK);
        assert_int_equal(stage_pause(cx, IN, 0, f->defer_until), HR_OK);
        f->deferred = true;
    }
    for (int i = 0; i < n && r == HR_OK; i++) {
        if (failing && i >= n / 2) {
            r = f->fail_with; /* after producing part of the outputs */
            break;
        }
        if (stage_rewound(cx, &msgs[i])) continue;
        char v[32];
        int vl = snprintf(v, sizeof(v), "%d:%lld", (int)msgs[i].partition, (long long)msgs[i].offset);
        r = stage_produce(f->app, OUT, 0, "k", 1, v, (size_t)vl, batch);
        if (r == HR_OK && !failing && f->ndone < MAXREC)
            f->done[f->ndone++] = (rec_t){msgs[i].partition, msgs[i].offset};
    }
    if (failing && r == HR_OK) r = f->fail_with;
    f->call_r[c] = r;
    pthread_mutex_unlock(&f->mu);
    return r;
}

/* Holds the worker inside its poll, between taking its partitions and
 * reading them, until the test says go (hold_assign). */
static void fake_partition_changed(void *state, const char *topic, int32_t partition, bool assigned)
{
    (void)topic;
    (void)partition;
    fake_t *f = state;
    if (!assigned || !f->hold_assign) return; /* set before the workers start */
    pthread_mutex_lock(&f->mu);
    if (!f->held) {
        f->held = true;
        pthread_cond_broadcast(&f->cv);
        while (!f->go) pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "stage");
    env_config(&f->cfg, f->dir, (const char *[]){"pipeline.batch_max", "4", NULL});
    f->app.cfg = &f->cfg;
    char *busdir = xasprintf("%s/bus", f->dir);
    bus_opts_t o = {.backend = "embedded", .dir = busdir, .fsync = "never"};
    assert_int_equal(bus_open(&o, &f->app.bus), HR_OK);
    free(busdir);
    bus_topic_opts_t two = {.partitions = 2, .retention_ms = -1, .retention_bytes = -1};
    bus_topic_opts_t one = {.partitions = 1, .retention_ms = -1, .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(f->app.bus, IN, &two), HR_OK);
    assert_int_equal(bus_topic_ensure(f->app.bus, OUT, &one), HR_OK);
    assert_int_equal(bus_topic_ensure(f->app.bus, TOPIC_DLQ, &one), HR_OK);

    pthread_mutex_init(&f->fake.mu, NULL);
    pthread_cond_init(&f->fake.cv, NULL);
    f->fake.app = &f->app;
    f->fake.fail_at = -1;
    f->fake.defer_at = -1;
    f->def = (stage_def_t){
        .name = "fake",
        .group = "fake",
        .topic = IN,
        .state_new = fake_new,
        .process = fake_process,
        .partition_changed = fake_partition_changed,
        .retry_min_ms = 1,
        .retry_max_ms = 4,
        .arg = &f->fake,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->w) {
        atomic_store(&f->app.stopping, 1);
        stage_worker_join(f->w);
    }
    hclock_set_fake(0);
    bus_close(f->app.bus);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    pthread_mutex_destroy(&f->fake.mu);
    pthread_cond_destroy(&f->fake.cv);
    free(f);
    return 0;
}

static void produce_in(fx_t *f, int32_t part, int count)
{
    bus_batch_t b;
    bus_batch_init(&b);
    for (int i = 0; i < count; i++)
        assert_int_equal(bus_produce(f->app.bus, IN, part, "k", 1, "v", 1, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, WAIT_MS), HR_OK);
    bus_batch_release(&b);
}

static void start(fx_t *f)
{
    assert_int_equal(stage_worker_start(&f->app, &f->def, 0, &f->w), HR_OK);
}

/* Stops the worker (it drains and commits) and returns the committed offset
 * of partition `part` of the input. */
static int64_t stop_and_committed(fx_t *f, int32_t part)
{
    atomic_store(&f->app.stopping, 1);
    stage_worker_join(f->w);
    f->w = NULL;
    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(f->app.bus, "fake", IN, &lag, &n), HR_OK);
    assert_true(part < n);
    int64_t c = lag[part].committed;
    free(lag);
    return c;
}

/* Records of partition part acted on so far. */
static int done_count(fake_t *k, int32_t part)
{
    int c = 0;
    for (int i = 0; i < k->ndone; i++) c += k->done[i].part == part;
    return c;
}

/* Waits until partition part has `want` records acted on. */
static void wait_done(fx_t *f, int32_t part, int want)
{
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&f->fake.mu);
        int have = done_count(&f->fake, part);
        pthread_mutex_unlock(&f->fake.mu);
        if (have >= want) return;
        if (mono_ms() > end) fail_msg("partition %d: %d of %d records processed", part, have, want);
        usleep(1000);
    }
}

/* The records of partition part acted on are exactly 0..count-1, once each, in order. */
static void assert_done_in_order(fake_t *k, int32_t part, int count)
{
    int64_t next = 0;
    for (int i = 0; i < k->ndone; i++) {
        if (k->done[i].part != part) continue;
        if (k->done[i].off != next)
            fail_msg("partition %d: record %lld acted on where %lld was due", part,
                     (long long)k->done[i].off, (long long)next);
        next++;
    }
    assert_int_equal(next, count);
}

/* The first call whose result was r, or -1. */
static int call_with(fake_t *k, hr_t r)
{
    for (int c = 0; c < k->ncalls; c++)
        if (k->call_r[c] == r) return c;
    return -1;
}

static int64_t call_first_offset(fake_t *k, int c)
{
    int64_t lo = INT64_MAX;
    for (int i = 0; i < k->call_n[c]; i++)
        if (k->seen[k->call_first[c] + i].off < lo) lo = k->seen[k->call_first[c] + i].off;
    return lo;
}

/* stderr into a file for the span of a test, to check what was logged. */
typedef struct capture {
    int saved;
    char path[96];
} capture_t;

static void capture_start(capture_t *c, const char *dir)
{
    snprintf(c->path, sizeof(c->path), "%s/stderr.txt", dir);
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr; returns what was written (caller frees). */
static char *capture_end(capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    buf_t b;
    buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) buf_append(&b, chunk, n);
    fclose(fp);
    fputs(buf_cstr(&b), stderr); /* still visible in the test output */
    return b.data ? b.data : xstrdup("");
}

/* Lines of text that contain needle. */
static int count_lines(const char *text, const char *needle)
{
    int hits = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, len);
        hits += strstr(line, needle) != NULL;
        free(line);
        p += len + (nl ? 1 : 0);
    }
    return hits;
}

/* With gather and a linger, records that arrive while the worker waits for
 * more go into the same call; with fewer than gather, the call comes when
 * the linger ends, not before. */
static void test_gather_lingers(void **state)
{
    fx_t *f = *state;
    f->def.gather = 8;
    f->def.gather_linger_ms = 5000; /* ended early: 8 records fill it */
    produce_in(f, 0, 3);
    start(f);
    produce_in(f, 0, 5);
    wait_done(f, 0, 8);
    pthread_mutex_lock(&f->fake.mu);
    assert_int_equal(f->fake.ncalls, 1);
    assert_int_equal(f->fake.call_n[0], 8);
    pthread_mutex_unlock(&f->fake.mu);
    assert_int_equal(stop_and_committed(f, 0), 8);

    atomic_store(&f->app.stopping, 0);
    f->def.gather_linger_ms = 150;
    int64_t t0 = mono_ms();
    produce_in(f, 0, 2);
    start(f);
    wait_done(f, 0, 10);
    pthread_mutex_lock(&f->fake.mu);
    assert_int_equal(f->fake.ncalls, 2);
    assert_int_equal(f->fake.call_n[1], 2);
    assert_true(f->fake.call_mono_ms[1] - t0 >= 150);
    pthread_mutex_unlock(&f->fake.mu);
    assert_int_equal(stop_and_committed(f, 0), 10);
}

/* A partition revoked while the worker gathers (a second worker joins)
 * takes the records gathered from it along: its new owner reads them again
 * from the committed offset, so the first worker must not process them
 * too. The first worker is held between taking both partitions and reading
 * partition 1's records; the second joins meanwhile, so the poll inside
 * gather revokes partition 1 from under the records already gathered. */
static void test_gathered_records_of_a_revoked_partition_go_once(void **state)
{
    fx_t *f = *state;
    f->def.gather = 8;
    f->fake.hold_assign = true;
    produce_in(f, 1, 3);
    start(f);
    int64_t end = mono_ms() + WAIT_MS;
    pthread_mutex_lock(&f->fake.mu);
    while (!f->fake.held) { /* worker 0 owns both partitions, has read nothing yet */
        pthread_mutex_unlock(&f->fake.mu);
        assert_true(mono_ms() < end);
        usleep(1000);
        pthread_mutex_lock(&f->fake.mu);
    }
    pthread_mutex_unlock(&f->fake.mu);
    stage_worker_t *w1 = NULL;
    assert_int_equal(stage_worker_start(&f->app, &f->def, 1, &w1), HR_OK); /* partition 1 is its */
    pthread_mutex_lock(&f->fake.mu);
    f->fake.go = true;
    pthread_cond_broadcast(&f->fake.cv);
    pthread_mutex_unlock(&f->fake.mu);
    wait_done(f, 1, 3);
    /* positive marker: worker 0 went on to partition 0 after that gather */
    produce_in(f, 0, 2);
    wait_done(f, 0, 2);
    atomic_store(&f->app.stopping, 1);
    stage_worker_join(w1);
    assert_int_equal(stop_and_committed(f, 1), 3);
    /* both workers stopped: no lock needed */
    assert_done_in_order(&f->fake, 1, 3);
    assert_done_in_order(&f->fake, 0, 2);
}

/* A batch whose process fails (after producing part of its outputs) is
 * delivered again from its first record; nothing is skipped; the other
 * records are acted on exactly once, in order; all offsets end committed. */
static void test_failed_batch_is_processed_again(void **state)
{
    fx_t *f = *state;
    f->fake.fail_at = 9;
    f->fake.fails_left = 2;
    f->fake.fail_with = HR_ERR;
    produce_in(f, 0, 20);
    capture_t cap;
    capture_start(&cap, f->dir);
    start(f);
    wait_done(f, 0, 20);
    char *log = capture_end(&cap);
    int warnings = count_lines(log, "failed (process: error");
    free(log);
    fake_t *k = &f->fake;
    pthread_mutex_lock(&k->mu);
    assert_done_in_order(k, 0, 20);
    /* two failures, each followed by the same batch again */
    int failed = 0;
    for (int c = 0; c < k->ncalls; c++) {
        if (k->call_r[c] != HR_ERR) continue;
        failed++;
        assert_true(c + 1 < k->ncalls);
        int64_t first = call_first_offset(k, c);
        assert_true(first <= 9);
        assert_int_equal(call_first_offset(k, c + 1), first);
    }
    assert_int_equal(failed, 2);
    /* every record of the failed batch was seen three times, the others once */
    int c0 = call_with(k, HR_ERR);
    int64_t lo = call_first_offset(k, c0);
    int64_t hi = lo + k->call_n[c0];
    for (int64_t off = 0; off < 20; off++) {
        int times = 0;
        for (int i = 0; i < k->nseen; i++) times += k->seen[i].part == 0 && k->seen[i].off == off;
        assert_int_equal(times, off >= lo && off < hi ? 3 : 1);
    }
    pthread_mutex_unlock(&k->mu);
    assert_int_equal(warnings, 2);
    assert_int_equal(stop_and_committed(f, 0), 20);
}

/* While a batch keeps failing, nothing from it on is committed: a stop (or
 * a crash) leaves the committed offset at the failed batch's first record. */
static void test_offsets_committed_only_after_success(void **state)
{
    fx_t *f = *state;
    f->fake.fail_at = 9;
    f->fake.fails_left = 1 << 30;
    f->fake.fail_with = HR_ERR;
    produce_in(f, 0, 20);
    start(f);
    int64_t end = mono_ms() + WAIT_MS;
    int64_t first = -1;
    for (;;) { /* positive marker: the batch failed three times */
        pthread_mutex_lock(&f->fake.mu);
        int fails = 0;
        for (int c = 0; c < f->fake.ncalls; c++) fails += f->fake.call_r[c] == HR_ERR;
        if (fails >= 3) first = call_first_offset(&f->fake, call_with(&f->fake, HR_ERR));
        pthread_mutex_unlock(&f->fake.mu);
        if (fails >= 3) break;
        assert_true(mono_ms() < end);
        usleep(1000);
    }
    assert_true(first > 0 && first <= 9);
    assert_int_equal(stop_and_committed(f, 0), first);
    assert_done_in_order(&f->fake, 0, (int)first);
}

/* "Not now": the batch is delivered again promptly (no back-off, though
 * the back-off here is 5 s) and nothing is logged as a failure. */
static void test_not_now_redelivers_without_backoff(void **state)
{
    fx_t *f = *state;
    f->def.retry_min_ms = 5000;
    f->def.retry_max_ms = 5000;
    f->fake.fail_at = 9;
    f->fake.fails_left = 3;
    f->fake.fail_with = HR_LATER;
    produce_in(f, 0, 20);
    capture_t cap;
    capture_start(&cap, f->dir);
    start(f);
    wait_done(f, 0, 20);
    char *log = capture_end(&cap);
    int warnings = count_lines(log, " warn ");
    free(log);
    fake_t *k = &f->fake;
    pthread_mutex_lock(&k->mu);
    assert_done_in_order(k, 0, 20);
    int c0 = call_with(k, HR_LATER);
    assert_true(c0 >= 0 && c0 + 3 < k->ncalls);
    int64_t first = call_first_offset(k, c0);
    for (int c = c0; c < c0 + 3; c++) {
        assert_int_equal(k->call_r[c], HR_LATER);
        assert_int_equal(call_first_offset(k, c + 1), first);
        /* 10 ms nap at most (nothing was paused), far below the 5 s back-off */
        int64_t gap = k->call_mono_ms[c + 1] - k->call_mono_ms[c];
        assert_true(gap < 1000);
    }
    assert_int_equal(k->call_r[c0 + 3], HR_OK);
    pthread_mutex_unlock(&k->mu);
    assert_int_equal(warnings, 0);
    assert_int_equal(stop_and_committed(f, 0), 20);
}

/* Rewind + pause until a time: the partition stays paused while the (fake)
 * clock is before it, the other partition flows, and once the clock
 * reaches it the rewound records come again and are acted on once each. */
static void test_pause_until_fake_clock(void **state)
{
    fx_t *f = *state;
    int64_t t0 = 1900000000000;
    hclock_set_fake(t0);
    f->fake.defer_at = 2;
    f->fake.defer_until = t0 + 60000;
    produce_in(f, 0, 6);
    start(f);
    /* positive marker 1: the deferral happened */
    wait_done(f, 0, 2);
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&f->fake.mu);
        bool d = f->fake.deferred;
        pthread_mutex_unlock(&f->fake.mu);
        if (d) break;
        assert_true(mono_ms() < end);
        usleep(1000);
    }
    /* positive marker 2: records produced after it on the other partition
     * went through, so the worker polled past the deferral several times */
    produce_in(f, 1, 5);
    wait_done(f, 1, 5);
    hclock_set_fake(t0 + 59999);
    produce_in(f, 1, 5);
    wait_done(f, 1, 10);
    pthread_mutex_lock(&f->fake.mu);
    assert_int_equal(done_count(&f->fake, 0), 2); /* still paused */
    pthread_mutex_unlock(&f->fake.mu);
    /* the time comes: resumed from the rewound record */
    hclock_set_fake(t0 + 60000);
    wait_done(f, 0, 6);
    pthread_mutex_lock(&f->fake.mu);
    assert_done_in_order(&f->fake, 0, 6);
    assert_done_in_order(&f->fake, 1, 10);
    pthread_mutex_unlock(&f->fake.mu);
    assert_int_equal(stop_and_committed(f, 0), 6);
}

/* Rewind + pause without an end: the offsets from the rewound record on
 * are not stored, those before it and the other partition's are. */
static void test_rewind_is_not_committed(void **state)
{
    fx_t *f = *state;
    f->fake.defer_at = 3;
    f->fake.defer_until = 0;
    produce_in(f, 0, 4); /* 0..3 fit one batch: 3 is rewound in the batch that acts on 0..2 */
    start(f);
    wait_done(f, 0, 3);
    produce_in(f, 1, 7);
    wait_done(f, 1, 7); /* positive marker: the worker went on with partition 1 */
    pthread_mutex_lock(&f->fake.mu);
    assert_true(f->fake.deferred);
    assert_done_in_order(&f->fake, 0, 3);
    pthread_mutex_unlock(&f->fake.mu);
    atomic_store(&f->app.stopping, 1);
    stage_worker_join(f->w);
    f->w = NULL;
    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(f->app.bus, "fake", IN, &lag, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(lag[0].committed, 3);
    assert_int_equal(lag[1].committed, 7);
    free(lag);
}

/* stage_produce on a bus whose producer queue stays full (a Kafka broker
 * down, on librdkafka's in-process mock cluster): once the app is
 * stopping it returns promptly with an error instead of waiting for the
 * queue (which, with the default message timeout, takes five minutes). */
static void test_produce_gives_up_when_stopping(void **state)
{
    (void)state;
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", why, sizeof(why));
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    assert_non_null(host);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "full", 1, 1), 0);
    static const char *const kv[] = {
        "queue.buffering.max.messages", "1",
        "log_level", "0",
        NULL,
    };
    bus_opts_t o = {.backend = "kafka", .brokers = rd_kafka_mock_cluster_bootstraps(mc), .kv = kv};
    app_t app;
    memset(&app, 0, sizeof(app));
    assert_int_equal(bus_open(&o, &app.bus), HR_OK);
    assert_int_equal(bus_partitions(app.bus, "full"), 1); /* metadata known before the outage */
    rd_kafka_mock_broker_set_down(mc, 1);
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(app.bus, "full", 0, "k", 1, "v1", 2, &b), HR_OK);
    assert_int_equal(bus_produce(app.bus, "full", 0, "k", 1, "v2", 2, &b), HR_AGAIN); /* full */
    atomic_store(&app.stopping, 1);
    int64_t t0 = mono_ms();
    hr_t r = stage_produce(&app, "full", 0, "k", 1, "v2", 2, &b);
    int64_t took = mono_ms() - t0;
    assert_int_equal(r, HR_CLOSED);
    assert_true(took < 1000);
    /* the record that was queued is delivered once the broker is back */
    rd_kafka_mock_broker_set_up(mc, 1);
    assert_int_equal(bus_batch_wait(app.bus, &b, WAIT_MS), HR_OK);
    bus_batch_release(&b);
    bus_close(app.bus);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
}

/* Every dead letter is produced, but its warning is rate-limited: a burst
 * of lines, then one summary with the count when the window has passed. */
static void test_dead_letter_warnings_rate_limited(void **state)
{
    long long dlq0 = METRIC_VALUE(dlq_records);
    fx_t *f = *state;
    int64_t t0 = 1900000000000;
    hclock_set_fake(t0);
    bus_batch_t b;
    bus_batch_init(&b);
    capture_t cap;
    capture_start(&cap, f->dir);
    for (int i = 0; i < 50; i++) {
        bus_msg_t m = {.topic = IN, .partition = 0, .offset = i, .key = "k", .key_len = 1,
                       .value = "\xff\xfe", .value_len = 2};
        assert_int_equal(stage_dead_letter(&f->app, &m, "fake", "testing", &b), HR_OK);
    }
    hclock_set_fake(t0 + 10000); /* the window ends: the next one reports the rest */
    bus_msg_t m = {.topic = IN, .partition = 0, .offset = 50, .key = "k", .key_len = 1,
                   .value = "ok", .value_len = 2};
    assert_int_equal(stage_dead_letter(&f->app, &m, "fake", "testing", &b), HR_OK);
    char *log = capture_end(&cap);
    int lines = count_lines(log, "dead-lettered " IN "/0/");
    int summaries = count_lines(log, "dead-lettered 45 more records in the last 10 s");
    free(log);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, WAIT_MS), HR_OK);
    bus_batch_release(&b);
    assert_int_equal(METRIC_VALUE(dlq_records) - dlq0, 51);
    assert_int_equal(lines, 6); /* 5 of the first 50, then the 51st */
    assert_int_equal(summaries, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gather_lingers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gathered_records_of_a_revoked_partition_go_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_is_processed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_committed_only_after_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_now_redelivers_without_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_until_fake_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_is_not_committed, setup, teardown),
        cmocka_unit_test(test_produce_gives_up_when_stopping),
        cmocka_unit_test_setup_teardown(test_dead_letter_warnings_rate_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
