/*
 * test_bus_embedded.c - what only the embedded backend promises, checked on
 * its files: a torn or corrupt tail is cut off on open, an ack means the
 * record was written, records acked before kill -9 survive, one process per
 * directory (LOCK), retention by size and age (never past what a registered
 * group has not read, unless the hard disk bound forces it), and the fsync
 * modes.
 */
#include "bus_harness.h"

#include "bus/bus_embedded_int.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every fsync mode: acks arrive, a waited batch is reusable, records read back. */
static void test_fsync_policies(void **state)
{
    ctx_t *cx = *state;
    roundtrip(cx, "always");
    roundtrip(cx, "never");
    roundtrip(cx, "interval");
}

/* ---- files ---- */

static char *last_segment(ctx_t *cx, const char *topic, int32_t part)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/topics/%s/%d", cx->dir, topic, (int)part);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    assert_true(n > 0);
    char *path = NULL;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->d_name);
        if (l > 4 && strcmp(list[i]->d_name + l - 4, ".log") == 0) {
            free(path);
            path = xasprintf("%s/%s", dir, list[i]->d_name);
        }
        free(list[i]);
    }
    free(list);
    assert_non_null(path);
    return path;
}

static int count_segments(ctx_t *cx, const char *topic, int32_t part)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/topics/%s/%d", cx->dir, topic, (int)part);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0) n++;
    }
    closedir(d);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Reads the whole partition with a fresh group; checks "v0".."v<n-1>". */
static void expect_values(ctx_t *cx, const char *topic, int n, const char *group)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, group), topic, NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)n);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        assert_int_equal(got.v[i].off, i);
        assert_string_equal(got.v[i].val, want);
    }
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_torn_tail(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "torn");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_close(b);
    cx->bus = NULL;
    hlog_set_level(HLOG_ERROR); /* the repairs below log warnings */

    /* 1. garbage appended after the last record */
    char *seg = last_segment(cx, t, 0);
    off_t good = file_size(seg);
    FILE *f = fopen(seg, "ab");
    assert_non_null(f);
    fputs("\x11garbage-garbage-garbage", f);
    fclose(f);
    b = open_bus(cx);
    assert_int_equal(file_size(seg), good);
    expect_values(cx, t, 10, "g1");
    produce_seq(b, t, 0, 10, 5);
    expect_values(cx, t, 15, "g2");

    /* 2. the last record cut in the middle */
    bus_close(b);
    cx->bus = NULL;
    off_t full = file_size(seg);
    assert_int_equal(truncate(seg, full - 3), 0);
    b = open_bus(cx);
    expect_values(cx, t, 14, "g3");
    produce_seq(b, t, 0, 14, 1); /* gets offset 14 again */
    expect_values(cx, t, 15, "g4");

    /* 3. a flipped byte in the last record's value fails its CRC */
    bus_close(b);
    cx->bus = NULL;
    full = file_size(seg);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    char ch;
    assert_int_equal(pread(fd, &ch, 1, full - 1), 1);
    ch ^= 0x40;
    assert_int_equal(pwrite(fd, &ch, 1, full - 1), 1);
    close(fd);
    b = open_bus(cx);
    assert_true(file_size(seg) < full);
    expect_values(cx, t, 14, "g5");
    hlog_set_level(HLOG_WARN);
    free(seg);
}

/* Copies a fixture file into the bus directory. */
static void copy_fixture(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* Reads topic "old" from the start in a new group: n records, keys "key-<i>". */
static void expect_old(ctx_t *cx, int n, int skip, const char *group)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, group), "old", NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)(skip >= 0 ? n - 1 : n));
    for (int i = 0, k = 0; i < n; i++) {
        if (i == skip) continue;
        char key[16];
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(got.v[k].off, i);
        assert_string_equal(got.v[k].key, key);
        if (i < 5) assert_non_null(strstr(got.v[k].val, "written with zlib crc32"));
        k++;
    }
    expect_quiet(c);
    bus_consumer_close(c);
    recs_free(&got);
}

/* Segments written before CRC-32C (zlib CRC-32, no attribute bit; the
 * fixture was written by that version) still read; new records appended to
 * such a segment carry CRC-32C and the two read back together; damage in an
 * old record is still found. */
static void test_crc32_segment_reads(void **state)
{
    ctx_t *cx = *state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/topics/old/0", cx->dir);
    assert_int_equal(mkdir_p(path, 0755), HR_OK);
    snprintf(path, sizeof(path), "%s/topics/old/meta", cx->dir);
    copy_fixture(FIXTURE_DIR "/crc32-segment/meta", path);
    char seg[1024];
    snprintf(seg, sizeof(seg), "%s/topics/old/0/00000000000000000000.log", cx->dir);
    copy_fixture(FIXTURE_DIR "/crc32-segment/00000000000000000000.log", seg);
    off_t old_size = file_size(seg);
    assert_int_equal(old_size, 320); /* 5 records of 64 bytes */

    bus_t *b = open_bus(cx);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_OK);
    expect_old(cx, 5, -1, "r1");
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 5; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key-%d", i);
        produce_str(b, "old", 0, key, "new", &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    expect_old(cx, 8, -1, "r2");

    /* the new records say CRC-32C in their key field; the old ones do not */
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    unsigned char attr;
    assert_int_equal(pread(fd, &attr, 1, 27), 1);
    assert_int_equal(attr, 0);
    assert_int_equal(pread(fd, &attr, 1, old_size + 27), 1);
    assert_int_equal(attr & 0x80, 0x80);
    close(fd);

    reopen_bus(cx);
    expect_old(cx, 8, -1, "r3");

    /* a flipped byte in old record 1 (bytes 64..127): damage, skipped */
    bus_close(cx->bus);
    cx->bus = NULL;
    fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    char ch;
    assert_int_equal(pread(fd, &ch, 1, 100), 1);
    ch ^= 0x20;
    assert_int_equal(pwrite(fd, &ch, 1, 100), 1);
    close(fd);
    hlog_set_level(HLOG_OFF); /* the damage is logged as an error */
    b = open_bus(cx);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_DEGRADED);
    expect_old(cx, 8, 1, "r4");
}

/* A flush wakes only the consumers of the topics that got data: a consumer
 * of an idle topic is not woken (its wake-up counter stays put). */
static void test_targeted_wakeups(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *ta = name(cx, "busy"), *tb = name(cx, "idle");
    ensure_topic(b, ta, 2, -1, -1);
    ensure_topic(b, tb, 2, -1, -1);
    bus_consumer_t *ca = subscribe(b, name(cx, "ga"), ta, NULL);
    bus_consumer_t *cb = subscribe(b, name(cx, "gb"), tb, NULL);
    recs_t got = {0};
    for (int i = 0; i < 3; i++) { /* settle the assignments */
        poll_into(ca, &got, 0);
        poll_into(cb, &got, 0);
    }
    assert_int_equal(got.n, 0);
    uint32_t wa = atomic_load(&((emb_consumer_t *)ca)->wseq);
    uint32_t wb = atomic_load(&((emb_consumer_t *)cb)->wseq);
    for (int round = 0; round < 5; round++) {
        produce_seq(b, ta, round % 2, round * 10, 10);
        consume(ca, &got, 10);
    }
    assert_int_equal(got.n, 50);
    assert_true(atomic_load(&((emb_consumer_t *)ca)->wseq) != wa);
    assert_int_equal(atomic_load(&((emb_consumer_t *)cb)->wseq), wb);
    /* and the idle one still wakes for its own data */
    produce_seq(b, tb, 0, 0, 3);
    recs_t gb = {0};
    consume(cb, &gb, 3);
    assert_true(atomic_load(&((emb_consumer_t *)cb)->wseq) != wb);
    bus_consumer_close(ca);
    bus_consumer_close(cb);
    recs_free(&got);
    recs_free(&gb);
}

/* The partition of c's first owned partition, or -1. */
static int32_t first_owned(bus_consumer_t *c)
{
    emb_consumer_t *e = (emb_consumer_t *)c;
    return e->nparts ? e->parts[0]->part : -1;
}

/* Within a group too: a flush wakes only the member owning a partition that
 * got data; its fellow (other partitions of the same topic) is not woken,
 * and wakes for its own partitions' data, also after it takes over the
 * other's partitions. */
static void test_partition_wakeups(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus(cx);
    const char *t = name(cx, "shared");
    ensure_topic(b, t, 4, -1, -1);
    const char *g = name(cx, "grp");
    bus_consumer_t *ca = subscribe(b, g, t, NULL);
    bus_consumer_t *cb = subscribe(b, g, t, NULL);
    recs_t got = {0};
    for (int i = 0; i < 3; i++) { /* settle the assignments: two partitions each */
        poll_into(ca, &got, 0);
        poll_into(cb, &got, 0);
    }
    assert_int_equal(got.n, 0);
    assert_int_equal(((emb_consumer_t *)ca)->nparts, 2);
    assert_int_equal(((emb_consumer_t *)cb)->nparts, 2);
    int32_t pa = first_owned(ca), pb = first_owned(cb);
    uint32_t wa = atomic_load(&((emb_consumer_t *)ca)->wseq);
    uint32_t wb = atomic_load(&((emb_consumer_t *)cb)->wseq);
    for (int round = 0; round < 5; round++) {
        produce_seq(b, t, pa, round * 10, 10);
        consume(ca, &got, 10);
    }
    assert_int_equal(got.n, 50);
    assert_true(atomic_load(&((emb_consumer_t *)ca)->wseq) != wa);
    assert_int_equal(atomic_load(&((emb_consumer_t *)cb)->wseq), wb);
    produce_seq(b, t, pb, 0, 3);
    recs_t gb = {0};
    consume(cb, &gb, 3);
    assert_true(atomic_load(&((emb_consumer_t *)cb)->wseq) != wb);
    /* a leaves: b owns all four and is woken for a's former partition */
    bus_consumer_close(ca);
    for (int i = 0; i < 3; i++) poll_into(cb, &gb, 0);
    assert_int_equal(((emb_consumer_t *)cb)->nparts, 4);
    wb = atomic_load(&((emb_consumer_t *)cb)->wseq);
    produce_seq(b, t, pa, 50, 4);
    consume(cb, &gb, 4);
    assert_true(atomic_load(&((emb_consumer_t *)cb)->wseq) != wb);
    bus_consumer_close(cb);
    recs_free(&got);
    recs_free(&gb);
}

/* An acknowledged record is in the segment file (so a crash of the process
 * after the ack cannot lose it). */
static void test_ack_means_written(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 100000, NULL); /* long batching window */
    const char *t = name(cx, "acked");
    ensure_topic(b, t, 1, -1, -1);
    char *seg = last_segment(cx, t, 0);
    assert_int_equal(file_size(seg), 0);
    bus_batch_t batch;
    bus_batch_init(&batch);
    char val[50];
    memset(val, 'w', sizeof(val));
    for (int i = 0; i < 100; i++) produce(b, t, 0, "key", val, sizeof(val), &batch);
    wait_batch(b, &batch);
    /* header (28 bytes) + key + value per record */
    assert_int_equal(file_size(seg), 100 * (28 + 3 + 50));
    bus_batch_release(&batch);
    free(seg);
}

/* kill -9 right after the acks: everything acknowledged is there on reopen. */
static void test_kill9_after_ack(void **state)
{
    ctx_t *cx = *state;
    const char *t = name(cx, "kill9");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        bus_opts_t o;
        memset(&o, 0, sizeof(o));
        o.backend = "embedded";
        o.dir = cx->dir;
        o.fsync = "never";
        bus_t *b = NULL;
        bus_topic_opts_t to = {.partitions = 2, .retention_ms = -1, .retention_bytes = -1};
        if (bus_open(&o, &b) != HR_OK || bus_topic_ensure(b, t, &to) != HR_OK) _exit(1);
        bus_batch_t batch;
        bus_batch_init(&batch);
        char key[32];
        int acked = 0;
        for (int round = 0; round < 50; round++) {
            for (int i = 0; i < 100; i++) {
                snprintf(key, sizeof(key), "%d", acked + i);
                if (bus_produce(b, t, -1, key, strlen(key), key, strlen(key), &batch) != HR_OK) _exit(1);
            }
            if (bus_batch_wait(b, &batch, 10000) != HR_OK) _exit(1);
            acked += 100;
            if (write(fds[1], &acked, sizeof(acked)) != sizeof(acked)) _exit(1);
        }
        /* more records in flight, never waited for */
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "%d", acked + i);
            (void)bus_produce(b, t, -1, key, strlen(key), key, strlen(key), &batch);
        }
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    close(fds[1]);
    int acked = 0, v;
    while (read(fds[0], &v, sizeof(v)) == sizeof(v)) acked = v;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(acked, 5000);

    bus_t *b = open_bus(cx);
    assert_int_equal(bus_partitions(b, t), 2);
    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    for (;;) {
        int n = poll_into(c, &got, 200);
        if ((n == 0 && got.n >= (size_t)acked) || now_ms() > deadline) break;
    }
    /* every acked key is there exactly once; in-flight ones may or may not be */
    char *seen = calloc(6000, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < got.n; i++) {
        int k = (int)strtol(got.v[i].key, NULL, 10);
        assert_true(k >= 0 && k < 6000);
        assert_int_equal(seen[k], 0);
        seen[k] = 1;
        assert_string_equal(got.v[i].key, got.v[i].val);
    }
    for (int k = 0; k < acked; k++) assert_int_equal(seen[k], 1);
    free(seen);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_lock(void **state)
{
    ctx_t *cx = *state;
    open_bus(cx);
    bus_opts_t o;
    memset(&o, 0, sizeof(o));
    o.backend = "embedded";
    o.dir = cx->dir;
    bus_t *other = NULL;
    hlog_set_level(HLOG_OFF);
    assert_int_equal(bus_open(&o, &other), HR_CONFLICT);
    hlog_set_level(HLOG_WARN);
    assert_null(other);
    bus_close(cx->bus);
    cx->bus = NULL;
    assert_int_equal(bus_open(&o, &other), HR_OK); /* close released the lock */
    cx->bus = other;
}

static void test_retention_by_size(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retsize");
    ensure_topic(b, t, 1, -1, 8192);
    char val[100];
    memset(val, 'r', sizeof(val));
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 400; i++) {
        snprintf(val, 16, "%08d", i);
        produce(b, t, 0, NULL, val, sizeof(val), &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    /* ~50 KB written in 4 KB segments; about 8 KB (plus the active one) kept */
    int nseg = count_segments(cx, t, 0);
    assert_true(nseg >= 2 && nseg <= 4);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    while ((got.n == 0 || got.v[got.n - 1].off < 399) && now_ms() < deadline) poll_into(c, &got, 100);
    assert_true(got.n > 0);
    int64_t first = got.v[0].off;
    assert_true(first > 0);
    assert_int_equal((int64_t)got.n, 400 - first);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.v[i].off, first + (int64_t)i);
    bus_consumer_close(c);

    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(b, name(cx, "fresh"), t, &lag, &n), HR_OK);
    assert_int_equal(lag[0].end_offset, 400);
    assert_int_equal(lag[0].lag, 400 - first);
    free(lag);
    recs_free(&got);
}

static void test_retention_by_age(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retage");
    ensure_topic(b, t, 1, 60000, -1);
    char val[100];
    memset(val, 'a', sizeof(val));
    int64_t real = hclock_now_ms();
    hclock_set_fake(real - 3600 * 1000); /* an hour ago */
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 200; i++) produce(b, t, 0, NULL, val, sizeof(val), &batch);
    wait_batch(b, &batch);
    hclock_set_fake(0);
    /* new records roll segments, which applies retention */
    for (int i = 0; i < 100; i++) produce(b, t, 0, NULL, val, sizeof(val), &batch);
    wait_batch(b, &batch);
    bus_batch_release(&batch);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    recs_t got = {0};
    int64_t deadline = now_ms() + wait_ms();
    while ((got.n == 0 || got.v[got.n - 1].off < 299) && now_ms() < deadline) poll_into(c, &got, 100);
    assert_true(got.n > 0);
    /* the old segments are gone; everything new is there */
    assert_true(got.v[0].off > 0 && got.v[0].off <= 200);
    assert_int_equal(got.v[got.n - 1].off, 299);
    bus_consumer_close(c);
    recs_free(&got);
}

/* Retention never deletes what a registered group has not committed past:
 * a group that committed offset 2 keeps everything from 2 on, however far
 * past retention_bytes the partition grows; once it commits past the old
 * segments, the next roll deletes them. */
static void test_retention_keeps_unread(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retkeep"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, 4096);
    produce_seq(b, t, 0, 0, 10);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_int_equal(bus_store_offset(c, t, 0, 2), HR_OK);
    bus_consumer_close(c);
    produce_seq(b, t, 0, 10, 2000);
    assert_true(count_segments(cx, t, 0) > 10);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 2008);
    assert_int_equal(got.v[0].off, 2); /* nothing unread was deleted */
    assert_int_equal(got.v[got.n - 1].off, 2009);
    assert_int_equal(bus_store_offset(c, t, 0, 2010), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    bus_consumer_close(c);
    produce_seq(b, t, 0, 2010, 200); /* rolls: retention runs */
    assert_true(count_segments(cx, t, 0) <= 3);
    recs_free(&got);
}

/* bus_commit_async: the committed offset counts at once (lag, a new owner)
 * while the offsets file is written by the committer thread shortly after;
 * retention keeps what the file still needs. */
static void test_commit_async(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "casync"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_int_equal(bus_store_offset(c, t, 0, 6), HR_OK);
    assert_int_equal(bus_commit_async(c), HR_OK);
    bus_lag_t *lag = NULL;
    int n = 0;
    assert_int_equal(bus_lag(b, g, t, &lag, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(lag[0].committed, 6);
    free(lag);

    char *path = xasprintf("%s/groups/%s.offsets", cx->dir, g);
    char want[256];
    snprintf(want, sizeof(want), "%s 0 6 ", t); /* a journal line: offset, then its CRC */
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) { /* the committer writes it (at most 5 s) */
        FILE *f = fopen(path, "re");
        if (f) {
            char text[1024];
            size_t len = fread(text, 1, sizeof(text) - 1, f);
            text[len] = '\0';
            fclose(f);
            seen = strstr(text, want) != NULL;
        }
        if (!seen) usleep(10000);
    }
    assert_true(seen);
    free(path);
    bus_consumer_close(c);

    /* a restart starts from it */
    b = reopen_bus(cx);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 4);
    assert_int_equal(got.v[0].off, 6);
    bus_consumer_close(c);
    recs_free(&got);
}

/* The sparse index places a reader that starts inside a segment (a seek, a
 * takeover at a committed offset): every offset, on an entry or between
 * two, is read from exactly there, with the index the flusher built and
 * with the one the load scan builds after a restart. The index stays
 * sparse: one entry per IDX_STEP bytes of log, the memory it costs. */
static void seek_each(ctx_t *cx, const char *t, const char *group, int n)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, group), t, NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)n); /* assigned, and at the end */
    static const int at[] = {0, 1, 63, 64, 65, 127, 128, 129, 300, 598, 599};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        recs_free(&got);
        assert_int_equal(bus_seek(c, t, 0, at[i]), HR_OK);
        consume(c, &got, 1);
        char want[16];
        snprintf(want, sizeof(want), "v%d-", at[i]);
        assert_int_equal(got.v[0].off, at[i]);
        assert_memory_equal(got.v[0].val, want, strlen(want));
        assert_int_equal(got.v[0].val_len, 1000);
    }
    recs_free(&got);
    bus_consumer_close(c);
}

static void index_is_sparse(ctx_t *cx, const char *t)
{
    emb_bus_t *eb = (emb_bus_t *)cx->bus;
    topic_t *tp = NULL;
    for (size_t i = 0; i < atomic_load(&eb->ntopics) && !tp; i++)
        if (strcmp(eb->tlist[i]->name, t) == 0) tp = eb->tlist[i];
    assert_non_null(tp);
    part_t *p = &tp->parts[0];
    pthread_mutex_lock(&p->seg_mu);
    assert_int_equal(p->nsegs, 1);
    const seg_t *sg = p->segs[0];
    int64_t size = sg->size;
    size_t nidx = sg->nidx;
    pthread_mutex_unlock(&p->seg_mu);
    assert_true(size > 8 * IDX_STEP);
    assert_true(nidx >= (size_t)(size / IDX_STEP));
    assert_true(nidx <= (size_t)(size / IDX_STEP) + 1);
}

static void test_seek_inside_segment(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "seekmid");
    ensure_topic(b, t, 1, -1, -1);
    enum { N = 600, VLEN = 1000 }; /* ~610 KB: entries every ~64 records */
    bus_batch_t *batch = bus_batch_new();
    char v[VLEN];
    for (int i = 0; i < N; i++) {
        memset(v, 'x', sizeof(v));
        int k = snprintf(v, sizeof(v), "v%d-", i);
        v[k] = 'x';
        produce(b, t, 0, NULL, v, sizeof(v), batch);
    }
    wait_batch(b, batch);
    bus_batch_free(batch);
    index_is_sparse(cx, t);
    seek_each(cx, t, "g1", N);
    reopen_bus(cx);
    index_is_sparse(cx, t);
    seek_each(cx, t, "g2", N);
}

/* The same by age (fake clock): old segments stay until the group commits. */
static void test_retention_age_unread(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retageg"), *g = name(cx, "g");
    ensure_topic(b, t, 1, 60000, -1);
    bus_consumer_t *c = subscribe(b, g, t, NULL); /* a live member: nothing read yet */
    int64_t real = hclock_now_ms();
    hclock_set_fake(real - 3600 * 1000);
    produce_seq(b, t, 0, 0, 1000);
    hclock_set_fake(0);
    produce_seq(b, t, 0, 1000, 200);
    int before = count_segments(cx, t, 0);
    assert_true(before > 5);
    recs_t got = {0};
    consume(c, &got, 1200);
    assert_int_equal(got.v[0].off, 0);
    assert_int_equal(bus_store_offset(c, t, 0, 1200), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    produce_seq(b, t, 0, 1200, 200); /* rolls: the hour-old segments go now */
    assert_true(count_segments(cx, t, 0) < before);
    bus_consumer_close(c);
    recs_free(&got);
}

/* The hard disk bound deletes unread segments, says so and counts them; a
 * consumer whose position was deleted starts at the log start. */
static void test_disk_bound_drops(void **state)
{
    ctx_t *cx = *state;
    const char *const kv[] = {"max_disk_bytes", "16384", NULL};
    bus_t *b = open_bus_with(cx, "never", 4096, 0, kv);
    const char *t = name(cx, "bound"), *g = name(cx, "g");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 10);
    assert_int_equal(bus_store_offset(c, t, 0, 2), HR_OK);
    bus_consumer_close(c);
    int64_t dropped = METRIC_VALUE(bus_records_dropped);
    hlog_set_level(HLOG_OFF); /* the drops are logged as errors */
    produce_seq(b, t, 0, 10, 2000);
    hlog_set_level(HLOG_WARN);
    assert_true(count_segments(cx, t, 0) <= 6);
    c = subscribe(b, g, t, NULL);
    recs_free(&got);
    consume(c, &got, 1);
    int64_t first = got.v[0].off;
    assert_true(first > 10);
    assert_int_equal((int64_t)(METRIC_VALUE(bus_records_dropped) - dropped), first - 2);
    bus_consumer_close(c);
    recs_free(&got);
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS"); /* these tests are about the embedded backend's files */
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fsync_policies, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_ack_means_written, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_crc32_segment_reads, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_targeted_wakeups, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_partition_wakeups, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_after_ack, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_lock, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_keeps_unread, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_age_unread, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_commit_async, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_disk_bound_drops, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_seek_inside_segment, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name("embedded", tests, NULL, NULL);
}
