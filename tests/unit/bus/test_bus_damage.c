/*
 * test_bus_damage.c - the corruption table of the embedded bus: 2,000
 * acknowledged records over many small segments (two partitions), the bus
 * closed, its files damaged, the bus opened again and everything consumed.
 * Each case asserts that exactly the damaged records are missing (records
 * lost == records damaged), or that the open is refused when files are
 * missing or the metadata does not match the data. The table of damaged
 * versus lost records per case is printed to stdout.
 *
 * "Damaged" is computed from the files themselves, before the damage: the
 * records whose bytes overlap the flipped or cut bytes (a record's bytes are
 * length, CRC, offset, time, key length, key, value; see
 * docs/internals/bus.md).
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

#define N_RECORDS 2000
#define N_PARTS 2
#define SEG_BYTES 8192

/* one line of the table */
typedef struct row {
    const char *name;
    int64_t damaged, lost;
    const char *outcome;
} row_t;

static row_t table[16];
static int nrows;

static void table_add(const char *name, int64_t damaged, int64_t lost, const char *outcome)
{
    assert_true(nrows < (int)(sizeof(table) / sizeof(table[0])));
    table[nrows].name = name;
    table[nrows].damaged = damaged;
    table[nrows].lost = lost;
    table[nrows].outcome = outcome;
    nrows++;
}

/* ---- the data set ---- */

static const char *fill(ctx_t *cx, const char *const *kv)
{
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, kv);
    const char *t = name(cx, "dmg");
    ensure_topic(b, t, N_PARTS, -1, -1);
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < N_RECORDS; i++) {
        char val[96];
        memset(val, 'x', sizeof(val));
        snprintf(val, sizeof(val), "v%06d", i);
        produce(b, t, i % N_PARTS, NULL, val, sizeof(val), &batch);
    }
    wait_batch(b, &batch);
    bus_batch_release(&batch);
    bus_close(b);
    cx->bus = NULL;
    return t;
}

/* Segment file paths of a partition, oldest first (caller frees). */
static int segments(ctx_t *cx, const char *t, int part, char ***out)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/topics/%s/%d", cx->dir, t, part);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort), k = 0;
    assert_true(n > 0);
    char **v = calloc((size_t)n, sizeof(*v));
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->d_name);
        if (l > 4 && strcmp(list[i]->d_name + l - 4, ".log") == 0)
            v[k++] = xasprintf("%s/%s", dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    *out = v;
    return k;
}

static void segments_free(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int64_t fsize(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Offsets of the records of a segment file whose bytes overlap [from, to). */
static int64_t records_in(const char *path, int64_t from, int64_t to, int64_t *first)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    int64_t size = fsize(path), pos = 0, n = 0;
    *first = -1;
    while (pos + 16 <= size) {
        unsigned char h[16];
        assert_int_equal(pread(fd, h, sizeof(h), pos), (ssize_t)sizeof(h));
        uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        int64_t off = 0;
        for (int i = 7; i >= 0; i--) off = off << 8 | h[8 + i];
        if (pos < to && pos + len > from) {
            if (*first < 0) *first = off;
            n++;
        }
        pos += len;
    }
    close(fd);
    return n;
}

static int64_t count_records(const char *path)
{
    int64_t first;
    return records_in(path, 0, INT64_MAX, &first);
}

static void flip(const char *path, int64_t at, int nbytes)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    for (int i = 0; i < nbytes; i++) {
        unsigned char ch;
        assert_int_equal(pread(fd, &ch, 1, at + i), 1);
        ch ^= 0x5a;
        assert_int_equal(pwrite(fd, &ch, 1, at + i), 1);
    }
    close(fd);
}

/* Consumes every partition with a fresh group; returns how many of the
 * N_RECORDS are missing and checks they are exactly [first, first+n) of
 * partition `part` (n = expect_lost). */
static int64_t consume_all(ctx_t *cx, const char *t, int part, int64_t first, int64_t expect_lost)
{
    bus_consumer_t *c = subscribe(cx->bus, name(cx, "reader"), t, NULL);
    recs_t got = {0};
    consume(c, &got, (size_t)(N_RECORDS - expect_lost));
    expect_quiet(c);
    bus_consumer_close(c);
    bool *seen = calloc(N_RECORDS, sizeof(*seen));
    for (size_t i = 0; i < got.n; i++) {
        int v = atoi(got.v[i].val + 1);
        assert_true(v >= 0 && v < N_RECORDS);
        assert_false(seen[v]); /* no duplicates */
        seen[v] = true;
        /* the value matches its place: record i is offset i / N_PARTS of partition i % N_PARTS */
        assert_int_equal(got.v[i].part, v % N_PARTS);
        assert_int_equal(got.v[i].off, v / N_PARTS);
    }
    int64_t lost = 0;
    for (int v = 0; v < N_RECORDS; v++) {
        if (seen[v]) continue;
        lost++;
        assert_int_equal(v % N_PARTS, part); /* exactly the damaged ones are missing */
        assert_true(v / N_PARTS >= first && v / N_PARTS < first + expect_lost);
    }
    free(seen);
    recs_free(&got);
    return lost;
}

static hr_t try_open(ctx_t *cx, const char *const *kv)
{
    bus_opts_t o;
    memset(&o, 0, sizeof(o));
    o.backend = "embedded";
    o.dir = cx->dir;
    o.fsync = "never";
    o.segment_bytes = SEG_BYTES;
    o.kv = kv;
    bus_t *b = NULL;
    hr_t r = bus_open(&o, &b);
    if (r == HR_OK) bus_close(b);
    return r;
}

/* ---- the cases ---- */

/* Four flipped bytes in the middle of a segment (the active one, or a
 * sealed one): only the record they hit is lost; the bus says degraded. */
static void flip_case(ctx_t *cx, bool active, const char *label)
{
    const char *t = fill(cx, NULL);
    char **segs;
    int n = segments(cx, t, 0, &segs);
    assert_true(n >= 5);
    const char *victim = active ? segs[n - 1] : segs[2];
    int64_t size = fsize(victim), at = size / 2, first;
    int64_t total = count_records(victim);
    int64_t damaged = records_in(victim, at, at + 4, &first);
    assert_true(total >= 6 && damaged >= 1 && damaged <= 2);
    flip(victim, at, 4);

    int64_t skipped = METRIC_VALUE(bus_records_skipped), bytes = METRIC_VALUE(bus_corrupt_bytes);
    hlog_set_level(HLOG_OFF);
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, NULL);
    int64_t lost = consume_all(cx, t, 0, first, damaged);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, damaged);
    assert_int_equal((int64_t)(METRIC_VALUE(bus_records_skipped) - skipped), damaged);
    assert_true(METRIC_VALUE(bus_corrupt_bytes) - bytes >= 4);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_DEGRADED);
    assert_non_null(strstr(why, "damaged"));
    if (active) assert_int_equal(fsize(victim), size); /* damage is not a torn tail: nothing cut */
    table_add(label, damaged, lost, "skipped, degraded");
    segments_free(segs, n);
}

static void test_flip_active(void **state) { flip_case(*state, true, "4 bytes flipped mid active segment"); }
static void test_flip_sealed(void **state) { flip_case(*state, false, "4 bytes flipped mid sealed segment"); }

/* With accept_loss the damage is logged and counted, and health stays OK. */
static void test_flip_accepted(void **state)
{
    ctx_t *cx = *state;
    static const char *const kv[] = {"accept_loss", "1", NULL};
    const char *t = fill(cx, kv);
    char **segs;
    int n = segments(cx, t, 1, &segs);
    int64_t at = fsize(segs[1]) / 3, first;
    int64_t damaged = records_in(segs[1], at, at + 4, &first);
    flip(segs[1], at, 4);
    hlog_set_level(HLOG_OFF);
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, kv);
    int64_t lost = consume_all(cx, t, 1, first, damaged);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, damaged);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_OK);
    table_add("4 bytes flipped, accept_loss", damaged, lost, "skipped, ok");
    segments_free(segs, n);
}

/* A sealed segment cut in the middle: the records after the cut are lost,
 * the next segment is read in full. */
static void test_truncated_sealed(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    char **segs;
    int n = segments(cx, t, 0, &segs);
    int64_t size = fsize(segs[1]), cut = size / 2 + 5, first;
    int64_t damaged = records_in(segs[1], cut, size, &first);
    assert_true(damaged >= 2);
    assert_int_equal(truncate(segs[1], cut), 0);
    hlog_set_level(HLOG_OFF);
    open_bus_with(cx, "never", SEG_BYTES, 0, NULL);
    int64_t lost = consume_all(cx, t, 0, first, damaged);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, damaged);
    table_add("sealed segment truncated at half", damaged, lost, "skipped, degraded");
    segments_free(segs, n);
}

/* A deleted segment: the open is refused; with accept_loss the rest is
 * delivered and the missing records are counted. */
static void test_deleted_segment(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    char **segs;
    int n = segments(cx, t, 0, &segs);
    int64_t first, damaged = records_in(segs[2], 0, INT64_MAX, &first);
    assert_int_equal(unlink(segs[2]), 0);
    hlog_set_level(HLOG_OFF);
    assert_int_not_equal(try_open(cx, NULL), HR_OK);
    table_add("sealed segment deleted", damaged, damaged, "open refused");
    static const char *const kv[] = {"accept_loss", "1", NULL};
    int64_t missing = METRIC_VALUE(bus_records_missing);
    open_bus_with(cx, "never", SEG_BYTES, 0, kv);
    int64_t lost = consume_all(cx, t, 0, first, damaged);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, damaged);
    assert_int_equal((int64_t)(METRIC_VALUE(bus_records_missing) - missing), damaged);
    table_add("sealed segment deleted, accept_loss", damaged, lost, "started, counted");
    segments_free(segs, n);
}

/* The newest segment deleted after a group committed past its records:
 * refused; with accept_loss the bus starts, and new records do not reuse the
 * offsets the group believes it has read. */
static void test_deleted_newest_segment(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, NULL);
    const char *g = name(cx, "committed");
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, N_RECORDS);
    assert_int_equal(bus_store_offset(c, t, 0, N_RECORDS / N_PARTS), HR_OK);
    bus_consumer_close(c);
    recs_free(&got);
    bus_close(b);
    cx->bus = NULL;
    char **segs;
    int n = segments(cx, t, 0, &segs);
    int64_t damaged = count_records(segs[n - 1]);
    assert_int_equal(unlink(segs[n - 1]), 0);
    hlog_set_level(HLOG_OFF);
    assert_int_not_equal(try_open(cx, NULL), HR_OK);
    table_add("newest segment deleted (group committed past it)", damaged, damaged, "open refused");
    static const char *const kv[] = {"accept_loss", "1", NULL};
    b = open_bus_with(cx, "never", SEG_BYTES, 0, kv);
    hlog_set_level(HLOG_WARN);
    produce_str(b, t, 0, NULL, "after", NULL);
    assert_int_equal(bus_flush(b, wait_ms()), HR_OK);
    c = subscribe(b, g, t, NULL);
    consume(c, &got, 1);
    assert_int_equal(got.v[0].off, N_RECORDS / N_PARTS); /* a fresh offset, seen by the group */
    assert_string_equal(got.v[0].val, "after");
    bus_consumer_close(c);
    recs_free(&got);
    segments_free(segs, n);
}

/* meta edited to fewer partitions than the data has: refused. */
static void test_meta_fewer_partitions(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    char path[1024];
    snprintf(path, sizeof(path), "%s/topics/%s/meta", cx->dir, t);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("format=1\npartitions=1\nretention_ms=-1\nretention_bytes=-1\n", f);
    fclose(f);
    hlog_set_level(HLOG_OFF);
    assert_int_not_equal(try_open(cx, NULL), HR_OK);
    hlog_set_level(HLOG_WARN);
    table_add("meta edited to fewer partitions", N_RECORDS / N_PARTS, 0, "open refused");
}

/* A torn tail of the active segment (an unacknowledged write) is still cut
 * off and costs nothing acknowledged; health stays OK. */
static void test_torn_tail_is_not_damage(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    char **segs;
    int n = segments(cx, t, 0, &segs);
    int64_t size = fsize(segs[n - 1]);
    FILE *f = fopen(segs[n - 1], "ab");
    assert_non_null(f);
    fputs("\x40\x00\x00\x00half-a-record", f);
    fclose(f);
    hlog_set_level(HLOG_ERROR);
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, NULL);
    int64_t lost = consume_all(cx, t, 0, 0, 0);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, 0);
    assert_int_equal(fsize(segs[n - 1]), size);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_OK);
    table_add("torn tail of the active segment", 0, lost, "cut off, ok");
    segments_free(segs, n);
}

/* Damage that appears while the bus runs, in a sealed segment a reader has
 * not reached yet: the reader skips the damaged record only. */
static void test_flip_while_running(void **state)
{
    ctx_t *cx = *state;
    const char *t = fill(cx, NULL);
    bus_t *b = open_bus_with(cx, "never", SEG_BYTES, 0, NULL);
    char **segs;
    int n = segments(cx, t, 0, &segs);
    int64_t at = fsize(segs[3]) / 2, first;
    int64_t damaged = records_in(segs[3], at, at + 4, &first);
    flip(segs[3], at, 4);
    hlog_set_level(HLOG_OFF);
    int64_t lost = consume_all(cx, t, 0, first, damaged);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(lost, damaged);
    char why[256];
    assert_int_equal(bus_health(b, why, sizeof(why)), BUS_HEALTH_DEGRADED);
    table_add("4 bytes flipped while running", damaged, lost, "skipped, degraded");
    segments_free(segs, n);
}

static int print_table(void **state)
{
    (void)state;
    printf("\ncorruption table (%d records, %d partitions, %d-byte segments)\n", N_RECORDS, N_PARTS,
           SEG_BYTES);
    printf("| case | records damaged | records lost | outcome |\n| --- | ---: | ---: | --- |\n");
    for (int i = 0; i < nrows; i++)
        printf("| %s | %" PRId64 " | %" PRId64 " | %s |\n", table[i].name, table[i].damaged, table[i].lost,
               table[i].outcome);
    return 0;
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS"); /* the embedded backend's files */
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flip_active, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_flip_sealed, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_flip_accepted, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_sealed, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_deleted_segment, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_deleted_newest_segment, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_meta_fewer_partitions, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_not_damage, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_flip_while_running, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name("damage", tests, NULL, print_table);
}
