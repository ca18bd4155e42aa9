/*
 * test_bus_read.c - the embedded consumer's reader over segment files:
 * records read back byte for byte across read-buffer edges, a record bigger
 * than the read buffer and segment rolls (also from a restart), the records
 * of a poll staying valid until the next poll (a seek and a pause made in
 * between, retention deleting the segment the reader is on), and the reader
 * moving on past a deleted segment.
 */
#include "bus_harness.h"

#include "core/log.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void part_dir(ctx_t *cx, const char *t, char *out, size_t len)
{
    snprintf(out, len, "%s/topics/%s/0/", cx->dir, t);
}

/* The value of record i: its length and bytes follow from i. Record BIG is
 * bigger than the reader's buffer (256 KiB). */
#define N_VALUES 1200
#define BIG 700
#define BIG_LEN ((size_t)2 << 20)

static size_t value_len(int i) { return i == BIG ? BIG_LEN : (size_t)(i * 7919 % 6000) + 1; }

static char *value_of(int i)
{
    size_t n = value_len(i);
    char *v = malloc(n);
    assert_non_null(v);
    for (size_t j = 0; j < n; j++) v[j] = (char)(i * 31 + (int)j);
    return v;
}

static bool value_ok(int i, const bus_msg_t *m)
{
    if (m->value_len != value_len(i)) return false;
    const char *v = m->value;
    for (size_t j = 0; j < m->value_len; j++)
        if (v[j] != (char)(i * 31 + (int)j)) return false;
    return true;
}

static void produce_values(bus_t *b, const char *t)
{
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < N_VALUES; i++) {
        char *v = value_of(i);
        produce(b, t, 0, NULL, v, value_len(i), &batch);
        free(v);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
}

/* Reads every value back, checking each byte where it lies (the reader's
 * buffer) before the next poll; checks the records of a poll survive a seek
 * and a pause made before the next poll. */
static void read_values(ctx_t *cx, const char *t)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, "g"), t, NULL);
    bus_msg_t msgs[64];
    int next = 0, polls = 0;
    bool seeked = false;
    int64_t deadline = now_ms() + wait_ms();
    while (next < N_VALUES && now_ms() < deadline) {
        int n = bus_poll(c, msgs, 7, 100);
        assert_true(n >= 0);
        if (n == 0) continue;
        polls++;
        if (!seeked && next > N_VALUES / 2) {
            /* records stay valid until the next poll, whatever happens in
             * between: seek back to the start and pause, then check them */
            assert_int_equal(bus_seek(c, t, 0, 0), HR_OK);
            assert_int_equal(bus_pause(c, t, 0), HR_OK);
            for (int i = 0; i < n; i++) assert_true(value_ok(next + i, &msgs[i]));
            assert_int_equal(bus_seek(c, t, 0, next + n), HR_OK);
            assert_int_equal(bus_resume(c, t, 0), HR_OK);
            seeked = true;
        }
        for (int i = 0; i < n; i++) {
            assert_int_equal(msgs[i].offset, next);
            assert_true(value_ok(next, &msgs[i]));
            next++;
        }
    }
    assert_int_equal(next, N_VALUES);
    assert_true(seeked);
    assert_true(polls >= N_VALUES / 7);
    bus_consumer_close(c);
}

static int count_segments(ctx_t *cx, const char *t)
{
    char dir[700];
    part_dir(cx, t, dir, sizeof(dir));
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, ".log") != NULL;
    closedir(d);
    return n;
}

/* ~5 MiB in 2 MiB segments: reads end inside records, a 2 MiB record needs
 * a bigger buffer, and the reader crosses segment rolls. */
static void test_reads_across_rolls(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", (int64_t)2 << 20, 0, NULL);
    const char *t = name(cx, "rolls");
    ensure_topic(b, t, 1, -1, -1);
    produce_values(b, t);
    assert_true(count_segments(cx, t) >= 3);
    read_values(cx, t);
    /* a second pass, from a restart (segments verified and indexed at open) */
    reopen_bus(cx);
    read_values(cx, t);
}

/* Retention deletes the segment a consumer has just read to its end: the
 * record of its last poll stays readable until its next poll, which moves
 * on to the next segment. */
static void test_retention_deletes_read_segment(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 4096, 0, NULL);
    const char *t = name(cx, "retmap");
    ensure_topic(b, t, 1, -1, 4096);
    /* the group's member holds every segment until the group commits */
    const char *g = name(cx, "g");
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    produce_seq(b, t, 0, 0, 400);
    char dir[700], first[800];
    part_dir(cx, t, dir, sizeof(dir));
    snprintf(first, sizeof(first), "%s%020d.log", dir, 0);
    struct stat st;
    assert_int_equal(stat(first, &st), 0);
    bus_msg_t m[1];
    int64_t deadline = now_ms() + wait_ms(), next_base = -1;
    /* read the first segment to its last record, one record per poll */
    for (;;) {
        assert_true(now_ms() < deadline);
        int n = bus_poll(c, m, 1, 100);
        if (n <= 0) continue;
        char want[32];
        snprintf(want, sizeof(want), "v%" PRId64, m[0].offset);
        assert_int_equal(m[0].value_len, strlen(want));
        assert_memory_equal(m[0].value, want, strlen(want));
        char second[800];
        snprintf(second, sizeof(second), "%s%020" PRId64 ".log", dir, m[0].offset + 1);
        if (stat(second, &st) == 0) {
            next_base = m[0].offset + 1;
            break;
        }
    }
    /* commit past the first segment and roll: retention deletes it */
    assert_int_equal(bus_store_offset(c, t, 0, next_base), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    produce_seq(b, t, 0, 400, 300);
    assert_int_not_equal(stat(first, &st), 0); /* deleted */
    char want[32];
    snprintf(want, sizeof(want), "v%" PRId64, next_base - 1);
    assert_int_equal(m[0].value_len, strlen(want));
    assert_memory_equal(m[0].value, want, strlen(want)); /* the record is still readable */

    /* the next poll moves on to the next segment */
    int n;
    while ((n = bus_poll(c, m, 1, 100)) == 0) assert_true(now_ms() < deadline);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].offset, next_base);
    bus_consumer_close(c);
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS"); /* the embedded backend's reader */
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_across_rolls, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_deletes_read_segment, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name("bus reader", tests, NULL, NULL);
}
