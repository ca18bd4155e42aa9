/*
 * test_bus_diskfull.c - the embedded bus on a full disk: a 1 MiB tmpfs the
 * test mounts (skipped, with the reason, where mounting is not allowed).
 * When a segment write fails (ENOSPC) the records are not acknowledged,
 * nothing partial stays in the file, bus_health() says DEGRADED with the
 * reason; once space is free again the next write succeeds, health is OK,
 * and every acknowledged record is there after a restart.
 */
#include "bus_harness.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static bool mounted;

static int setup(void **state)
{
    if (harness_setup(state) != 0) return -1;
    ctx_t *cx = *state;
    mounted = mount("tmpfs", cx->dir, "tmpfs", 0, "size=1m") == 0;
    if (!mounted) fprintf(stderr, "cannot mount a tmpfs (%s): the disk-full test is skipped\n", strerror(errno));
    return 0;
}

static int teardown(void **state)
{
    ctx_t *cx = *state;
    if (cx->bus) bus_close(cx->bus);
    cx->bus = NULL;
    if (mounted && umount2(cx->dir, MNT_DETACH) != 0) fprintf(stderr, "umount %s: %s\n", cx->dir, strerror(errno));
    return harness_teardown(state);
}

static off_t size_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Produces n records "d<from+i>" with one batch; the batch's result. */
static hr_t produce_n(bus_t *b, const char *t, int from, int n)
{
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < n; i++) {
        char val[1000];
        memset(val, 'f', sizeof(val));
        snprintf(val, 16, "d%d", from + i);
        produce(b, t, 0, NULL, val, sizeof(val), &batch);
    }
    hr_t r = bus_batch_wait(b, &batch, wait_ms());
    bus_batch_release(&batch);
    return r;
}

static void expect_exactly(ctx_t *cx, const char *t, const int *want, int n)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, "reader"), t, NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)n);
    expect_quiet(c);
    assert_int_equal((int)got.n, n);
    for (int i = 0; i < n; i++) assert_int_equal(atoi(got.v[i].val + 1), want[i]);
    bus_consumer_close(c);
    recs_free(&got);
}

static void test_disk_full(void **state)
{
    ctx_t *cx = *state;
    if (!mounted) skip();
    /* The active segment's blocks are reserved ahead of the writes (up to
     * the segment size), so a disk that fills mid-segment still takes the
     * segment's records: segments of exactly 100 records make the next
     * write need a new segment, which the full disk refuses. */
    bus_t *b = open_bus_with(cx, "never", 100 * (28 + 1000), 0, NULL);
    const char *t = name(cx, "full");
    ensure_topic(b, t, 1, -1, -1);
    assert_int_equal(produce_n(b, t, 0, 100), HR_OK);
    char seg[1024];
    snprintf(seg, sizeof(seg), "%s/topics/%s/0/%020d.log", cx->dir, t, 0);
    off_t before = size_of(seg);

    /* fill the disk */
    char ballast[1024];
    snprintf(ballast, sizeof(ballast), "%s/ballast", cx->dir);
    int fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char chunk[4096];
    memset(chunk, 'b', sizeof(chunk));
    while (write(fd, chunk, sizeof(chunk)) > 0) {
    }
    close(fd);

    hlog_set_level(HLOG_OFF); /* the failed writes are logged as errors */
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_OK);
    assert_int_not_equal(produce_n(b, t, 100, 50), HR_OK); /* not acknowledged */
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_DEGRADED);
    assert_non_null(strstr(why, strerror(ENOSPC)));
    assert_int_equal(size_of(seg), before); /* nothing partial stays */

    /* space again: the next write succeeds and health recovers */
    assert_int_equal(unlink(ballast), 0);
    assert_int_equal(produce_n(b, t, 150, 50), HR_OK);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_OK);

    int want[150];
    for (int i = 0; i < 100; i++) want[i] = i;
    for (int i = 0; i < 50; i++) want[100 + i] = 150 + i;
    expect_exactly(cx, t, want, 150);
    reopen_bus(cx); /* a restart finds exactly the acknowledged records */
    assert_int_equal(bus_health(cx->bus, why, sizeof(why)), BUS_HEALTH_OK);
    expect_exactly(cx, t, want, 150);
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS");
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests_name("diskfull", tests, NULL, NULL);
}
