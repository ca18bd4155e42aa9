/*
 * test_bus_offsets.c - the embedded bus's offsets files: the journal
 * (appended lines, the last valid one of a partition wins), lines that fail
 * their CRC or were torn by a crash (ignored: the partition replays from the
 * line before, never skips), the upgrade of an old (v1) file in place, and a
 * failed group writes nothing partial that a restart would trust.
 */
#include "bus_harness.h"

#include "core/crc32c.h"
#include "core/log.h"
#include "core/common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V2 "# herald group offsets v2: topic partition next-offset crc32c; the last line of a partition wins\n"

static char *offsets_path(ctx_t *cx, const char *group)
{
    return xasprintf("%s/groups/%s.offsets", cx->dir, group);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    char *text = xcalloc(1, 1 << 16);
    size_t len = fread(text, 1, (1 << 16) - 1, f);
    text[len] = '\0';
    fclose(f);
    return text;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* A v2 line with its CRC. */
static void line_v2(char *out, size_t cap, const char *topic, int part, int64_t off)
{
    char body[200];
    int n = snprintf(body, sizeof(body), "%s %d %" PRId64, topic, part, off);
    snprintf(out, cap, "%s %08x\n", body, crc32c(0, body, (size_t)n));
}

static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, pl) == 0) n++;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return n;
}

/* The first offset a new member of the group is handed. */
static int64_t first_polled(bus_t *b, const char *group, const char *topic)
{
    bus_consumer_t *c = subscribe(b, group, topic, NULL);
    recs_t got = {0};
    consume(c, &got, 1);
    int64_t off = got.v[0].off;
    recs_free(&got);
    bus_consumer_close(c);
    return off;
}

/* Commits append to the journal: one line per changed partition per save;
 * a restart takes the last line of each partition. */
static void test_journal_appends(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "jt"), *g = name(cx, "jg");
    ensure_topic(b, t, 2, -1, -1);
    produce_seq(b, t, 0, 0, 20);
    produce_seq(b, t, 1, 0, 20);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 40);
    for (int64_t k = 1; k <= 5; k++) { /* partition 0 moves each time, partition 1 once */
        assert_int_equal(bus_store_offset(c, t, 0, k), HR_OK);
        if (k == 1) assert_int_equal(bus_store_offset(c, t, 1, 7), HR_OK);
        assert_int_equal(bus_commit(c), HR_OK);
    }
    char *path = offsets_path(cx, g);
    char *text = read_text(path);
    assert_int_equal(strncmp(text, V2, strlen(V2)), 0);
    char pre0[200], pre1[200], want[256];
    snprintf(pre0, sizeof(pre0), "%s 0 ", t);
    snprintf(pre1, sizeof(pre1), "%s 1 ", t);
    assert_int_equal(count_lines(text, pre0), 5); /* the first save wrote the file whole, then appends */
    assert_int_equal(count_lines(text, pre1), 1);
    line_v2(want, sizeof(want), t, 0, 5);
    assert_non_null(strstr(text, want));
    free(text);
    bus_consumer_close(c);
    recs_free(&got);

    b = reopen_bus(cx);
    assert_int_equal(committed_of(b, g, t, 0), 5);
    assert_int_equal(committed_of(b, g, t, 1), 7);
    free(path);
}

/* A line that fails its CRC and a torn last line (no newline) are ignored:
 * the partition starts from its last valid line (replays, never skips),
 * a valid line after a bad one still counts, and the next commit writes the
 * file whole again without them. */
static void test_journal_damage(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "dt"), *g = name(cx, "dg");
    ensure_topic(b, t, 2, -1, -1);
    produce_seq(b, t, 0, 0, 30);
    produce_seq(b, t, 1, 0, 30);
    bus_close(b);
    cx->bus = NULL;

    char *path = offsets_path(cx, g);
    char l0[256], l1[256], l1b[256], bad[256], torn[256];
    line_v2(l0, sizeof(l0), t, 0, 4);
    line_v2(l1, sizeof(l1), t, 1, 6);
    line_v2(bad, sizeof(bad), t, 0, 20);
    bad[strlen(bad) - 2] ^= 1; /* wrong CRC */
    line_v2(l1b, sizeof(l1b), t, 1, 8);
    line_v2(torn, sizeof(torn), t, 0, 25);
    torn[strlen(torn) - 1] = '\0'; /* the append stopped before its newline */
    char *text = xasprintf("%s%s%s%s%s%s", V2, l0, l1, bad, l1b, torn);
    write_text(path, text);
    free(text);

    hlog_set_level(HLOG_OFF); /* the ignored lines are logged */
    b = open_bus_with(cx, "never", 0, 0, NULL);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(committed_of(b, g, t, 0), 4);
    assert_int_equal(committed_of(b, g, t, 1), 8);

    /* the next commit rewrites the file: only valid lines, one per partition */
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 2);
    assert_int_equal(bus_store_offset(c, t, 0, 9), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    bus_consumer_close(c);
    recs_free(&got);
    text = read_text(path);
    char want0[256];
    line_v2(want0, sizeof(want0), t, 0, 9);
    assert_non_null(strstr(text, want0));
    assert_non_null(strstr(text, l1b));
    assert_null(strstr(text, bad));
    char pre0[200];
    snprintf(pre0, sizeof(pre0), "%s 0 ", t);
    assert_int_equal(count_lines(text, pre0), 1);
    free(text);
    free(path);
}

/* An offsets file of the old format (v1: no CRCs, written whole) is read
 * at open and upgraded in place by the next commit; appends follow. */
static void test_upgrade_v1(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "ut"), *g = name(cx, "ug");
    ensure_topic(b, t, 2, -1, -1);
    produce_seq(b, t, 0, 0, 20);
    produce_seq(b, t, 1, 0, 20);
    bus_close(b);
    cx->bus = NULL;

    char *path = offsets_path(cx, g);
    char *text = xasprintf("# herald group offsets v1: topic partition next-offset\n%s 0 11\n%s 1 3\n", t, t);
    write_text(path, text);
    free(text);

    b = open_bus_with(cx, "never", 0, 0, NULL);
    assert_int_equal(committed_of(b, g, t, 0), 11);
    assert_int_equal(committed_of(b, g, t, 1), 3);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 26); /* 9 of partition 0, 17 of partition 1 */
    for (size_t i = 0; i < got.n; i++) assert_true(got.v[i].off >= (got.v[i].part == 0 ? 11 : 3));
    assert_int_equal(bus_store_offset(c, t, 1, 12), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    text = read_text(path);
    assert_int_equal(strncmp(text, V2, strlen(V2)), 0);
    char want[256];
    line_v2(want, sizeof(want), t, 0, 11); /* the unchanged partition is kept */
    assert_non_null(strstr(text, want));
    line_v2(want, sizeof(want), t, 1, 12);
    assert_non_null(strstr(text, want));
    free(text);
    assert_int_equal(bus_store_offset(c, t, 1, 15), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK); /* an append now */
    text = read_text(path);
    char pre1[200];
    snprintf(pre1, sizeof(pre1), "%s 1 ", t);
    assert_int_equal(count_lines(text, pre1), 2);
    free(text);
    bus_consumer_close(c);
    recs_free(&got);

    b = reopen_bus(cx);
    assert_int_equal(committed_of(b, g, t, 0), 11);
    assert_int_equal(committed_of(b, g, t, 1), 15);
    free(path);
}

/* A v1 file without the header line (the oldest files) still loads. */
static void test_v1_no_header(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "nt"), *g = name(cx, "ng");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    bus_close(b);
    cx->bus = NULL;
    char *path = offsets_path(cx, g);
    char *text = xasprintf("%s 0 7", t); /* no newline either */
    write_text(path, text);
    free(text);
    b = open_bus_with(cx, "never", 0, 0, NULL);
    assert_int_equal(committed_of(b, g, t, 0), 7);
    assert_int_equal(first_polled(b, g, t), 7);
    free(path);
}

/* A journal past OFFSETS_COMPACT_BYTES (1 MiB) is written whole at the next
 * commit: one line per partition. */
static void test_journal_compaction(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "ct"), *g = name(cx, "cg");
    ensure_topic(b, t, 2, -1, -1);
    produce_seq(b, t, 0, 0, 10);
    produce_seq(b, t, 1, 0, 10);
    bus_close(b);
    cx->bus = NULL;

    char *path = offsets_path(cx, g);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(V2, f);
    char line[256];
    for (int i = 0; i < 40000; i++) { /* ~1.3 MB of appends */
        line_v2(line, sizeof(line), t, i % 2, 1 + (i % 5));
        fputs(line, f);
    }
    assert_int_equal(fclose(f), 0);

    b = open_bus_with(cx, "never", 0, 0, NULL);
    assert_int_equal(committed_of(b, g, t, 0), 4); /* the last lines: i = 39998, 39999 */
    assert_int_equal(committed_of(b, g, t, 1), 5);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 11);
    assert_int_equal(bus_store_offset(c, t, 0, 8), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    bus_consumer_close(c);
    recs_free(&got);
    char *text = read_text(path);
    char want[256];
    line_v2(want, sizeof(want), t, 0, 8);
    assert_non_null(strstr(text, want));
    line_v2(want, sizeof(want), t, 1, 5);
    assert_non_null(strstr(text, want));
    assert_true(strlen(text) < 1024);
    free(text);
    b = reopen_bus(cx);
    assert_int_equal(committed_of(b, g, t, 0), 8);
    assert_int_equal(committed_of(b, g, t, 1), 5);
    free(path);
}

/* Many asynchronous commits fold into few committer rounds; closing the
 * bus writes the last one. */
static void test_async_rounds(void **state)
{
    ctx_t *cx = *state;
    bus_t *b = open_bus_with(cx, "never", 0, 0, NULL);
    const char *t = name(cx, "at"), *g = name(cx, "ag");
    ensure_topic(b, t, 1, -1, -1);
    produce_seq(b, t, 0, 0, 300);
    bus_consumer_t *c = subscribe(b, g, t, NULL);
    recs_t got = {0};
    consume(c, &got, 300);
    for (int64_t k = 1; k <= 200; k++) {
        assert_int_equal(bus_store_offset(c, t, 0, k), HR_OK);
        assert_int_equal(bus_commit_async(c), HR_OK);
    }
    bus_consumer_close(c); /* commits synchronously */
    recs_free(&got);
    char *path = offsets_path(cx, g);
    char *text = read_text(path);
    char pre[200];
    snprintf(pre, sizeof(pre), "%s 0 ", t);
    /* far fewer lines than commits: a round per COMMIT_ROUND_MS at most */
    assert_true(count_lines(text, pre) < 50);
    free(text);
    b = reopen_bus(cx);
    assert_int_equal(committed_of(b, g, t, 0), 200);
    free(path);
}

int main(void)
{
    unsetenv("HERALD_TEST_BUS"); /* these tests are about the embedded backend's files */
    hlog_set_level(HLOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_appends, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_journal_damage, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v1, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_v1_no_header, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_journal_compaction, harness_setup, harness_teardown),
        cmocka_unit_test_setup_teardown(test_async_rounds, harness_setup, harness_teardown),
    };
    return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
