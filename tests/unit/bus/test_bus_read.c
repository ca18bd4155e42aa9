/*
 * test_bus_read.c - the embedded consumer's read path: records read through
 * the read window (a read-only mapping of the segment file) across window
 * edges, records bigger than a window and segment rolls, the same with the
 * pread fallback, records of a poll staying valid until the next poll (also
 * when retention deletes the mapped segment meanwhile), and damage that
 * appears under a mapped window still being detected and skipped.
 *
 * Whether a mapping exists is read from /proc/self/maps: the window is the
 * only thing that maps segment files.
 */
#include "bus_harness.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How many mappings of files whose path contains `part` exist (only the
 * deleted ones when `deleted`). */
static int mappings_of(const char *part, bool deleted)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, part) && (!deleted || strstr(line, "(deleted)"))) n++;
    fclose(f);
    return n;
}

static void part_dir(ctx_t *cx, const char *t, char *out, size_t len)
{
    snprintf(out, len, "%s/topics/%s/0/", cx->dir, t);
}

/* The value of record i: its length and bytes follow from i. Record BIG is
 * bigger than a read window (1 MiB). */
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

/* Reads every value back, checking each byte where it lies (in the window
 * or the pread buffer) before the next poll; checks the records of a poll
 * survive a seek and a pause made before the next poll. */
static void read_values(ctx_t *cx, const char *t, bool mapped)
{
    char dir[700];
    part_dir(cx, t, dir, sizeof(dir));
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
        /* a mapping of the partition's segment exists with the mmap path only */
        if (mapped)
            assert_true(mappings_of(dir, false) >= 1);
        else
            assert_int_equal(mappings_of(dir, false), 0);
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
    assert_int_equal(mappings_of(dir, false), 0); /* closing unmapped the window */
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

/* ~5 MiB in 2 MiB segments: windows end inside records, a 2 MiB record
 * needs a window of its own, and the reader crosses segment rolls. */
static void test_window_across_rolls(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", (int64_t)2 << 20, 0, NULL);
    const char *t = name(cx, "win");
    ensure_topic(b, t, 1, -1, -1);
    produce_values(b, t);
    assert_true(count_segments(cx, t) >= 3);
    read_values(cx, t, true);
    /* a second pass, from a restart (the index places nobody mid-segment) */
    reopen_bus(cx);
    read_values(cx, t, true);
}

/* The same with read_mmap=0: the pread fallback reads everything, and
 * nothing is mapped. */
static void test_pread_fallback(void **state)
{
    ctx_t *cx = *state;
    static const char *const kv[] = {"read_mmap", "0", NULL};
    bus_t *b = open_bus_with(cx, "never", (int64_t)2 << 20, 0, kv);
    const char *t = name(cx, "pread");
    ensure_topic(b, t, 1, -1, -1);
    produce_values(b, t);
    assert_true(count_segments(cx, t) >= 3);
    read_values(cx, t, false);
}

/* Retention deletes the segment a consumer's window shows: the records of
 * its last poll stay readable until its next poll, which moves on to the
 * next segment and unmaps the deleted file. */
static void test_retention_deletes_mapped_segment(void **state)
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
        char want[16];
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
    assert_true(mappings_of(first, false) >= 1);
    /* commit past the first segment and roll: retention deletes it */
    assert_int_equal(bus_store_offset(c, t, 0, next_base), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    produce_seq(b, t, 0, 400, 300);
    assert_int_not_equal(stat(first, &st), 0); /* deleted */
    assert_int_equal(mappings_of(first, true), 1); /* still mapped (unlinked) */
    char want[16];
    snprintf(want, sizeof(want), "v%" PRId64, next_base - 1);
    assert_int_equal(m[0].value_len, strlen(want));
    assert_memory_equal(m[0].value, want, strlen(want)); /* the record is still readable */

    /* the next poll moves to the next segment and unmaps the deleted one */
    int n;
    while ((n = bus_poll(c, m, 1, 100)) == 0) assert_true(now_ms() < deadline);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].offset, next_base);
    assert_int_equal(mappings_of(first, false), 0);
    bus_consumer_close(c);
}

/* Bytes that go bad under a consumer's window (the page cache the mapping
 * shows) are detected by the CRC check and skipped as a hole. */
static void test_damage_under_window(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "dmg");
    ensure_topic(b, t, 1, -1, -1);
    char val[100];
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 300; i++) {
        memset(val, 'a' + i % 26, sizeof(val));
        produce(b, t, 0, NULL, val, sizeof(val), &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    char dir[700], seg[800];
    part_dir(cx, t, dir, sizeof(dir));
    snprintf(seg, sizeof(seg), "%s%020d.log", dir, 0);

    bus_consumer_t *c = subscribe(b, name(cx, "g"), t, NULL);
    bus_msg_t msgs[50];
    int next = 0;
    int64_t deadline = now_ms() + wait_ms();
    while (next < 100) {
        assert_true(now_ms() < deadline);
        int n = bus_poll(c, msgs, 100 - next < 50 ? 100 - next : 50, 100);
        for (int i = 0; i < n; i++) assert_int_equal(msgs[i].offset, next++);
    }
    assert_int_equal(mappings_of(seg, false), 1);

    /* every record is 28 + 100 bytes: flip 4 bytes in the value of record 150 */
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    unsigned char x[4];
    assert_int_equal(pread(fd, x, 4, 150 * 128 + 60), 4);
    for (int i = 0; i < 4; i++) x[i] ^= 0x5a;
    assert_int_equal(pwrite(fd, x, 4, 150 * 128 + 60), 4);
    close(fd);

    uint64_t skipped = METRIC_VALUE(bus_records_skipped);
    hlog_set_level(HLOG_OFF);
    while (next < 300) {
        assert_true(now_ms() < deadline);
        int n = bus_poll(c, msgs, 50, 100);
        for (int i = 0; i < n; i++) {
            if (next == 150) next++; /* the damaged record is skipped */
            assert_int_equal(msgs[i].offset, next);
            assert_int_equal(((const char *)msgs[i].value)[0], 'a' + next % 26);
            next++;
        }
    }
    hlog_set_level(HLOG_WARN);
    assert_int_equal(next, 300);
    assert_int_equal(METRIC_VALUE(bus_records_skipped) - skipped, 1);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_DEGRADED);
    assert_non_null(strstr(why, "damaged"));
    bus_consumer_close(c);
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS"); /* the embedded backend's reader */
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_across_rolls, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_pread_fallback, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_retention_deletes_mapped_segment, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_damage_under_window, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name("bus read path", tests, NULL, NULL);
}
