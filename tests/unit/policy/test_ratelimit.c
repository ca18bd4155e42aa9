/*
 * test_ratelimit.c - per-recipient sliding-window rate limits
 * (policy/ratelimit.h): the local backend (exact, kept across close and
 * rebalance) and the Redis backend against a real redis-server started
 * here (skipped with the reason when redis-server is missing, unless
 * CI=true), including Redis killed mid-run (fail open, counted) and back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/bigmem.h"
#include "core/hash.h"
#include "metrics/metrics.h"
#include "policy/ratelimit.h"
#include "policy/ratelimit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

extern char **environ;

#define HOUR 3600000
/* The local backend's resolution with a window of an hour: a send is held
 * rounded up to 83 ms (ratelimit_local_unit), so it leaves the window at
 * most 82 ms after the exact log would drop it, never before. */
#define U 83
static const int64_t T0 = 1790000000000; /* an injected clock */

static char tmpdir[256];

static int setup(void **st)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald-rl-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static ratelimit_t *open_rl(const char *backend, int limit, const char *dir, const char *redis)
{
    ratelimit_opts_t o = {
        .channel = CH_PUSH,
        .limit = limit,
        .window_ms = HOUR,
        .backend = backend,
        .state_dir = dir,
        .redis = redis,
        .redis_timeout_ms = 500,
        .redis_retry_ms = 1000,
    };
    ratelimit_t *rl = NULL;
    char why[256];
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_OK);
    return rl;
}

static bool check(ratelimit_t *rl, int32_t part, const char *user, int64_t now)
{
    bool ok = false;
    assert_int_equal(ratelimit_check(rl, part, user, strlen(user), now, &ok), HR_OK);
    return ok;
}

/* 15 checks for one user in the window -> exactly 10; other users are
 * unaffected; the window slides, a send leaving it at most res - 1 ms
 * late (0: exact), never early. Shared by both backends. */
static void limits_and_slides(ratelimit_t *rl, int64_t res)
{
    int64_t limited0 = METRIC_VALUE_AT(ratelimit_limited, CH_PUSH);
    int allowed = 0;
    for (int i = 0; i < 15; i++) allowed += check(rl, 1, "alice", T0 + i * 1000);
    assert_int_equal(allowed, 10);
    assert_int_equal(METRIC_VALUE_AT(ratelimit_limited, CH_PUSH) - limited0, 5);
    /* the first 10 went through: sends at T0 .. T0 + 9 s */
    assert_false(check(rl, 1, "alice", T0 + 20 * 60000));
    for (int i = 0; i < 10; i++) assert_true(check(rl, 1, "bob", T0 + 30 * 60000));
    assert_false(check(rl, 1, "bob", T0 + 30 * 60000));
    assert_true(check(rl, 2, "carol", T0 + 30 * 60000));
    /* One hour after the first send it leaves the window: one slot. */
    assert_false(check(rl, 1, "alice", T0 + HOUR - 1));
    assert_true(check(rl, 1, "alice", T0 + HOUR + (res ? res - 1 : 0)));
    assert_false(check(rl, 1, "alice", T0 + HOUR + (res ? res - 1 : 0)));
    assert_true(check(rl, 1, "alice", T0 + HOUR + 1000 + (res ? res - 1 : 0)));
    assert_false(check(rl, 1, "alice", T0 + HOUR + 1500));
    /* Two hours later everything has left: 10 again. */
    allowed = 0;
    for (int i = 0; i < 12; i++) allowed += check(rl, 1, "alice", T0 + 3 * HOUR);
    assert_int_equal(allowed, 10);
}

/* A batch behaves like the same checks one by one. */
static void batch(ratelimit_t *rl, int64_t t)
{
    ratelimit_req_t q[20];
    for (int i = 0; i < 20; i++) {
        const char *u = i % 4 == 3 ? "dave" : "erin"; /* 15 erin, 5 dave */
        q[i] = (ratelimit_req_t){.partition = 3, .user = u, .user_len = strlen(u)};
    }
    assert_int_equal(ratelimit_check_batch(rl, q, 20, t), HR_OK);
    int erin = 0, dave = 0, erin_seen = 0;
    for (int i = 0; i < 20; i++) {
        if (i % 4 == 3) {
            dave += q[i].allowed;
        } else {
            erin += q[i].allowed;
            assert_int_equal(q[i].allowed, erin_seen < 10); /* the first ten in order */
            erin_seen++;
        }
    }
    assert_int_equal(erin, 10);
    assert_int_equal(dave, 5);
}

static void test_local_limits(void **st)
{
    ratelimit_t *rl = open_rl("local", 10, NULL, NULL);
    assert_string_equal(ratelimit_backend_name(rl), "local");
    assert_int_equal(ratelimit_local_unit(rl), U);
    limits_and_slides(rl, U);
    batch(rl, T0);
    ratelimit_close(rl);
}

static void test_unlimited(void **st)
{
    ratelimit_t *rl = open_rl("local", 0, NULL, NULL);
    for (int i = 0; i < 1000; i++) assert_true(check(rl, 0, "x", T0));
    ratelimit_close(rl);
}

/* The local state survives close/reopen and a rebalance (revoke on one
 * owner, assign on the next); snapshots are written periodically. */
static void test_local_persists(void **st)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/state", tmpdir);
    ratelimit_t *rl = open_rl("local", 10, dir, NULL);
    for (int i = 0; i < 7; i++) assert_true(check(rl, 5, "alice", T0 + i));
    for (int i = 0; i < 10; i++) assert_true(check(rl, 6, "bob", T0 + i));
    ratelimit_close(rl);

    rl = open_rl("local", 10, dir, NULL);
    ratelimit_partition_assigned(rl, 5, T0 + 100);
    for (int i = 0; i < 3; i++) assert_true(check(rl, 5, "alice", T0 + 100));
    assert_false(check(rl, 5, "alice", T0 + 100));
    assert_false(check(rl, 6, "bob", T0 + 100)); /* loaded on first use */
    /* Rebalance: this owner loses partition 5, another gains it. */
    ratelimit_partition_revoked(rl, 5, T0 + 200);
    ratelimit_t *other = open_rl("local", 10, dir, NULL);
    ratelimit_partition_assigned(other, 5, T0 + 300);
    assert_false(check(other, 5, "alice", T0 + 300));
    /* ... and the window still slides after the move */
    assert_true(check(other, 5, "alice", T0 + HOUR + U));
    ratelimit_close(other);
    ratelimit_close(rl);

    /* A smaller limit after a restart keeps the newest sends. */
    ratelimit_t *small = open_rl("local", 3, dir, NULL);
    assert_false(check(small, 5, "alice", T0 + HOUR + U + 1));
    ratelimit_close(small);

    /* Periodic snapshots from ratelimit_tick. */
    ratelimit_opts_t o = {.channel = CH_SMS, .limit = 2, .window_ms = HOUR, .backend = "local",
                          .state_dir = dir, .snapshot_ms = 10000};
    char why[256], path[400];
    snprintf(path, sizeof(path), "%s/sms-0.rl", dir);
    ratelimit_t *p = NULL;
    assert_int_equal(ratelimit_open_opts(&o, &p, why, sizeof(why)), HR_OK);
    ratelimit_tick(p, T0);
    assert_true(check(p, 0, "frank", T0));
    ratelimit_tick(p, T0 + 9999);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    ratelimit_tick(p, T0 + 10000);
    assert_int_equal(stat(path, &sb), 0);
    /* "crash": the state as of that snapshot is what a new owner sees */
    assert_true(check(p, 0, "frank", T0 + 10001)); /* not in the snapshot */
    ratelimit_t *q = NULL;
    assert_int_equal(ratelimit_open_opts(&o, &q, why, sizeof(why)), HR_OK);
    assert_true(check(q, 0, "frank", T0 + 10002));  /* 1 in the snapshot + this one */
    assert_false(check(q, 0, "frank", T0 + 10003));
    ratelimit_close(q);
    ratelimit_close(p);

    /* A damaged snapshot is ignored: the partition starts empty. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('X', f);
    fclose(f);
    assert_int_equal(ratelimit_open_opts(&o, &q, why, sizeof(why)), HR_OK);
    assert_true(check(q, 0, "frank", T0 + 10004));
    assert_true(check(q, 0, "frank", T0 + 10004));
    assert_false(check(q, 0, "frank", T0 + 10004));
    ratelimit_close(q);
}

/* Many users of various id lengths in one partition (the table grows
 * several times): each keeps its own exact count; the sweep forgets those
 * whose sends left the window and keeps the others, whose snapshot (written
 * by the same tick) a new owner loads. */
static void test_local_many_users(void **st)
{
    (void)st;
    enum { USERS = 5000 };
    char dir[300], u[64];
    snprintf(dir, sizeof(dir), "%s/many", tmpdir);
    ratelimit_opts_t o = {.channel = CH_EMAIL, .limit = 3, .window_ms = HOUR, .backend = "local",
                          .state_dir = dir, .snapshot_ms = 1000};
    char why[256];
    ratelimit_t *rl = NULL;
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_OK);
    ratelimit_tick(rl, T0);
    /* even users: 3 sends at T0 (full); odd users: 1 send at T0 + 30 min */
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "user-%0*d", 1 + i % 40, i);
        int64_t t = i % 2 ? T0 + HOUR / 2 : T0;
        for (int k = 0; k < (i % 2 ? 1 : 3); k++) assert_true(check(rl, 7, u, t));
    }
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "user-%0*d", 1 + i % 40, i);
        if (i % 2 == 0) assert_false(check(rl, 7, u, T0 + HOUR / 2));
    }
    /* past the even users' window: the sweep drops them, the odd stay */
    ratelimit_tick(rl, T0 + HOUR + U);
    ratelimit_t *other = NULL;
    assert_int_equal(ratelimit_open_opts(&o, &other, why, sizeof(why)), HR_OK);
    ratelimit_partition_assigned(other, 7, T0 + HOUR + U);
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "user-%0*d", 1 + i % 40, i);
        int want = i % 2 ? 2 : 3; /* odd: one send still in the window */
        for (int k = 0; k < want; k++) assert_true(check(other, 7, u, T0 + HOUR + U));
        assert_false(check(other, 7, u, T0 + HOUR + U));
        for (int k = 0; k < want; k++) assert_true(check(rl, 7, u, T0 + HOUR + U));
        assert_false(check(rl, 7, u, T0 + HOUR + U));
    }
    ratelimit_close(other);
    ratelimit_close(rl);
}

/* ---- the journal: base + appended blocks of the users that sent ---- */

static ratelimit_t *open_snap(const char *dir, int limit)
{
    ratelimit_opts_t o = {.channel = CH_PUSH, .limit = limit, .window_ms = HOUR, .backend = "local",
                          .state_dir = dir, .snapshot_ms = 10000};
    ratelimit_t *rl = NULL;
    char why[256];
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_OK);
    return rl;
}

/* The size of dir/push-<part>.rl<suffix>; -1 when missing. */
static off_t fsize(const char *dir, int part, const char *suffix, ino_t *ino)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/push-%d.rl%s", dir, part, suffix);
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    if (ino) *ino = sb.st_ino;
    return sb.st_size;
}

/* How many of `tries` checks of user at now the limiter allows. */
static int allows(ratelimit_t *rl, int32_t part, const char *user, int64_t now, int tries)
{
    int n = 0;
    for (int i = 0; i < tries; i++) n += check(rl, part, user, now);
    return n;
}

static void mkdirs(char *dir, size_t len, const char *name)
{
    snprintf(dir, len, "%s/%s", tmpdir, name);
}

/* The periodic write appends the users that sent to the journal and leaves
 * the base alone; a restart ("crash": the old limiter never closed) reads
 * base + journal and loses only the sends after the last append. */
static void test_journal_restart(void **st)
{
    (void)st;
    char dir[300];
    mkdirs(dir, sizeof(dir), "jr");
    ratelimit_t *p = open_snap(dir, 3);
    ratelimit_tick(p, T0);
    assert_true(check(p, 0, "alice", T0));
    ratelimit_tick(p, T0 + 10000); /* no base yet: the first write is one */
    ino_t ino0, ino;
    off_t base = fsize(dir, 0, "", &ino0);
    assert_true(base > 0);
    assert_int_equal(fsize(dir, 0, "j", NULL), -1);

    assert_true(check(p, 0, "alice", T0 + 10001));
    assert_int_equal(allows(p, 0, "bob", T0 + 10001, 3), 3);
    ratelimit_tick(p, T0 + 20000);
    off_t j1 = fsize(dir, 0, "j", NULL);
    assert_true(j1 > 0);
    assert_int_equal(fsize(dir, 0, "", &ino), base); /* the base is not rewritten */
    assert_true(ino == ino0);

    assert_true(check(p, 0, "carol", T0 + 20001));
    ratelimit_tick(p, T0 + 25000); /* not due */
    assert_int_equal(fsize(dir, 0, "j", NULL), j1);
    ratelimit_tick(p, T0 + 30000);
    off_t j2 = fsize(dir, 0, "j", NULL);
    assert_true(j2 > j1);
    assert_int_equal(fsize(dir, 0, "", &ino), base);
    assert_true(ino == ino0);
    assert_true(check(p, 0, "dave", T0 + 30001)); /* after the last append: lost in the crash */

    ratelimit_t *q = open_snap(dir, 3);
    ratelimit_partition_assigned(q, 0, T0 + 30002);
    assert_int_equal(allows(q, 0, "alice", T0 + 30002, 3), 1);
    assert_int_equal(allows(q, 0, "bob", T0 + 30002, 3), 0);
    assert_int_equal(allows(q, 0, "carol", T0 + 30002, 3), 2);
    assert_int_equal(allows(q, 0, "dave", T0 + 30002, 3), 3);
    /* close compacts: one base, no journal */
    ratelimit_close(q);
    assert_int_equal(fsize(dir, 0, "j", NULL), -1);
    ratelimit_t *r = open_snap(dir, 3);
    assert_int_equal(allows(r, 0, "carol", T0 + 30003, 3), 0);
    assert_int_equal(allows(r, 0, "dave", T0 + 30003, 3), 0);
    ratelimit_close(r);
    ratelimit_close(p);
}

/* A burst of new users between two ticks: the records of their sends never
 * pass RL_JOURNAL_MAX and a record (the check that reaches it writes the
 * block), and a restart without a close ("crash") has every user written
 * by then and none after. */
static void test_journal_dirty_bound(void **st)
{
    (void)st;
    char dir[300];
    mkdirs(dir, sizeof(dir), "jb");
    ratelimit_t *p = open_snap(dir, 1);
    ratelimit_tick(p, T0);
    enum { N = 60000 }; /* ~17 bytes a record: ~4 blocks */
    size_t most = 0, writes = 0;
    int last_written = -1;
    for (int i = 0; i < N; i++) {
        char u[32];
        snprintf(u, sizeof(u), "u%d", i);
        size_t before = ratelimit_local_pending(p, 0);
        assert_true(check(p, 0, u, T0 + 1));
        size_t d = ratelimit_local_pending(p, 0);
        if (d > most) most = d;
        if (d < before) {
            assert_int_equal(d, 0);
            writes++;
            last_written = i;
        }
    }
    assert_true(most < RL_JOURNAL_MAX);
    assert_true(writes >= 3);
    assert_true(last_written > 0 && last_written < N - 1);
    assert_true(ratelimit_local_pending(p, 0) > 0); /* the last ones wait for the tick */
    /* written without a tick: the first block as the base (there was none),
     * the next ones appended to the journal, which may outgrow the base
     * until the tick compacts (a check never reads every user) */
    off_t base = fsize(dir, 0, "", NULL), journal = fsize(dir, 0, "j", NULL);
    assert_true(base > 0);
    assert_true(journal > base);

    ratelimit_t *q = open_snap(dir, 1);
    ratelimit_partition_assigned(q, 0, T0 + 2);
    char u[32];
    for (int i = 0; i <= last_written; i += 997) {
        snprintf(u, sizeof(u), "u%d", i);
        assert_false(check(q, 0, u, T0 + 2));
    }
    snprintf(u, sizeof(u), "u%d", last_written);
    assert_false(check(q, 0, u, T0 + 2));
    snprintf(u, sizeof(u), "u%d", last_written + 1); /* after the last write: lost */
    assert_true(check(q, 0, u, T0 + 2));
    snprintf(u, sizeof(u), "u%d", N - 1);
    assert_true(check(q, 0, u, T0 + 2));
    ratelimit_close(q);
    ratelimit_close(p);
}

static void put32(FILE *f, uint32_t v) { assert_int_equal(fwrite(&v, 4, 1, f), 1); }

/* A journal of version 1 (whole rings, zlib's CRC-32), as herald wrote
 * before the records of sends, is still read over its base; the next tick
 * compacts it away, and a restart then finds the same counts in the base. */
static void test_journal_version1(void **st)
{
    (void)st;
    char dir[300], path[400];
    mkdirs(dir, sizeof(dir), "j1");
    ratelimit_t *p = open_snap(dir, 3);
    ratelimit_tick(p, T0);
    assert_true(check(p, 7, "s", T0));
    ratelimit_tick(p, T0 + 10000); /* no base yet: written as the base */
    assert_int_equal(fsize(dir, 7, "j", NULL), -1);
    off_t base_len = fsize(dir, 7, "", NULL);
    assert_true(base_len > 4);
    snprintf(path, sizeof(path), "%s/push-7.rl", dir);
    uint32_t base_crc;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)base_len - 4, SEEK_SET), 0);
    assert_int_equal(fread(&base_crc, 4, 1, f), 1);
    fclose(f);

    /* header: magic | u64 base length | u32 base CRC | u32 CRC-32 of those 20 bytes */
    unsigned char head[24];
    uint64_t bl = (uint64_t)base_len;
    memcpy(head, "HRLJRNL1", 8);
    memcpy(head + 8, &bl, 8);
    memcpy(head + 16, &base_crc, 4);
    uint32_t hc = (uint32_t)crc32(crc32(0, Z_NULL, 0), head, 20);
    memcpy(head + 20, &hc, 4);
    /* one block: "s" with 2 sends (replacing the base's 1), "v" with 2 */
    unsigned char body[256];
    size_t n = 0;
    const struct {
        const char *user;
        int64_t t[2];
    } rings[] = {{"s", {T0, T0 + 10003}}, {"v", {T0 + 10001, T0 + 10002}}};
    for (size_t i = 0; i < 2; i++) {
        uint32_t ul = 1, cnt = 2;
        memcpy(body + n, &ul, 4);
        memcpy(body + n + 4, rings[i].user, 1);
        memcpy(body + n + 5, &cnt, 4);
        memcpy(body + n + 9, rings[i].t, 16);
        n += 25;
    }
    uint32_t blen = (uint32_t)n;
    uint32_t bc = (uint32_t)crc32(crc32(crc32(0, Z_NULL, 0), (const Bytef *)&blen, 4), body, (uInt)n);
    snprintf(path, sizeof(path), "%s/push-7.rlj", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, sizeof(head), f), sizeof(head));
    put32(f, blen);
    put32(f, bc);
    assert_int_equal(fwrite(body, 1, n, f), n);
    fclose(f);

    ratelimit_t *q = open_snap(dir, 3); /* p "crashed" */
    ratelimit_tick(q, T0 + 20000);
    ratelimit_partition_assigned(q, 7, T0 + 20000);
    assert_int_equal(allows(q, 7, "s", T0 + 20000, 3), 1);
    assert_int_equal(allows(q, 7, "v", T0 + 20000, 3), 1);
    ratelimit_tick(q, T0 + 30000); /* compacts: the version 1 journal goes */
    assert_int_equal(fsize(dir, 7, "j", NULL), -1);
    assert_true(fsize(dir, 7, "", NULL) > base_len);
    ratelimit_t *r = open_snap(dir, 3);
    ratelimit_partition_assigned(r, 7, T0 + 30001);
    assert_int_equal(allows(r, 7, "s", T0 + 30001, 3), 0);
    assert_int_equal(allows(r, 7, "v", T0 + 30001, 3), 0);
    assert_int_equal(allows(r, 7, "w", T0 + 30001, 4), 3);
    ratelimit_close(r);
    ratelimit_close(q);
    ratelimit_close(p);
}

/* Memory per user: 8-byte ids as in the benchmark, narrow entries (4-byte
 * header, 16-bit times). One send each: a 16-byte entry (32 with 32-bit
 * times and a 12-byte header) and a table slot at most 3/4 full. Ten each
 * (the rings grown from 2 times straight to the limit, 10: an entry of
 * 32 bytes is at most twice one of 16): 32 bytes (64), and nothing is
 * carved between (an entry of 24 bytes for 6 times, left behind). The
 * sweep forgets everyone after the window; the entries they and their
 * rings left behind go to the users that come next, also those of a
 * bigger class (a ring of 10 at once), so the pool does not grow. */
static void test_memory_per_user(void **st)
{
    (void)st;
    enum { USERS = 180000 }; /* 45,000 a partition: tables of 65,536 slots */
    char u[16];
    struct mallinfo2 before = mallinfo2();
    ratelimit_t *rl = open_rl("local", 10, NULL, NULL);
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "u%07d", i);
        assert_true(check(rl, i % 4, u, T0));
    }
    struct mallinfo2 after = mallinfo2();
    ratelimit_local_mem_t m;
    ratelimit_local_memory(rl, &m);
    assert_int_equal(m.entries, USERS);
    assert_int_equal(m.pool_live, (size_t)USERS * 16);
    assert_int_equal(m.table_bytes, (size_t)4 * 65536 * 8);
    print_message("one send: entries %.1f bytes a user in use, %.1f carved; table %.1f\n",
                  (double)m.pool_live / USERS, (double)m.pool_bytes / USERS, (double)m.table_bytes / USERS);
    size_t used = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
    if (used != 0) {
        double per = (double)used / USERS;
        print_message("heap: %.1f bytes a user\n", per);
        assert_true(per < 30.0); /* 16 + 8 x 65536 / 45000 = 27.7; 43.7 before */
    }
    for (int i = 0; i < USERS; i += 1009) {
        snprintf(u, sizeof(u), "u%07d", i);
        assert_int_equal(allows(rl, i % 4, u, T0 + 1, 10), 9);
    }
    /* everyone to the limit */
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "u%07d", i);
        assert_int_equal(allows(rl, i % 4, u, T0 + 2, i % 1009 ? 9 : 1), i % 1009 ? 9 : 0);
    }
    ratelimit_local_memory(rl, &m);
    assert_int_equal(m.pool_live, (size_t)USERS * 32);
    /* what the entries took, plus the unused rest of the block being
     * carved: a huge page once the pool is past its small blocks */
    assert_true(m.pool_bytes <= (size_t)USERS * (16 + 32) + BIGMEM_MIN);
    print_message("ten sends: entries %.1f bytes a user in use, %.1f carved\n", (double)m.pool_live / USERS,
                  (double)m.pool_bytes / USERS);
    /* after the window the sweep forgets them all: the pool keeps their
     * entries (of 32 bytes) and those the rings left behind when they grew
     * (16) */
    ratelimit_tick(rl, T0 + 5);     /* the first tick of the limiter */
    ratelimit_tick(rl, T0 + 10005); /* and of its partitions */
    ratelimit_tick(rl, T0 + HOUR + U + 10005);
    ratelimit_local_memory(rl, &m);
    assert_int_equal(m.entries, 0);
    assert_int_equal(m.pool_live, 0);
    assert_int_equal(m.table_bytes, (size_t)4 * 64 * 8);
    /* twice as many new users: half take the entries of 16 bytes, half
     * those of 32 (a ring of 10 at once): the pool does not grow */
    size_t carved = m.pool_bytes;
    int64_t t1 = T0 + HOUR + U + 20005;
    for (int i = USERS; i < 3 * USERS; i++) {
        snprintf(u, sizeof(u), "u%07d", i);
        assert_true(check(rl, i % 4, u, t1));
    }
    ratelimit_local_memory(rl, &m);
    assert_int_equal(m.entries, 2 * USERS);
    assert_int_equal(m.pool_live, (size_t)USERS * (16 + 32));
    assert_int_equal(m.pool_bytes, carved);
    for (int i = USERS; i < 3 * USERS; i += 1009) { /* rings of 2 and of 10 alike */
        snprintf(u, sizeof(u), "u%07d", i);
        assert_int_equal(allows(rl, i % 4, u, t1 + 1, 12), 9);
    }
    ratelimit_tick(rl, t1 + HOUR + U);
    ratelimit_local_memory(rl, &m);
    assert_int_equal(m.entries, 0);
    assert_int_equal(m.pool_live, 0);
    ratelimit_close(rl);
}

/* The local backend's bounds: a limit above RL_LIMIT_MAX is refused at
 * open; a user id longer than an entry holds is not limited (herald's ids
 * are at most 200 bytes; 255 for limits up to 255, 4095 above), and the
 * ids around it still are. */
static void test_local_bounds(void **st)
{
    (void)st;
    ratelimit_opts_t o = {.channel = CH_PUSH, .limit = RL_LIMIT_MAX + 1, .window_ms = HOUR, .backend = "local"};
    ratelimit_t *rl = NULL;
    char why[256];
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_INVALID);
    assert_null(rl);
    /* limit 2: narrow entries (limits up to 255) hold ids up to 255 bytes;
     * limit 300: wide entries up to 4095 */
    for (int wide = 0; wide < 2; wide++) {
        int limit = wide ? 300 : 2;
        size_t most = wide ? 4095 : 255;
        rl = open_rl("local", limit, NULL, NULL);
        char *longid = malloc(5000);
        assert_non_null(longid);
        memset(longid, 'x', 4999);
        longid[4999] = '\0';
        assert_int_equal(allows(rl, 0, longid, T0, limit + 3), limit + 3);
        longid[most + 1] = '\0';
        assert_int_equal(allows(rl, 0, longid, T0, limit + 3), limit + 3);
        longid[most] = '\0'; /* the longest an entry holds */
        assert_int_equal(allows(rl, 0, longid, T0, limit + 3), limit);
        assert_int_equal(allows(rl, 0, "short", T0, limit + 3), limit);
        /* the window slides for both layouts */
        assert_int_equal(allows(rl, 0, longid, T0 + HOUR - 1, 1), 0);
        assert_int_equal(allows(rl, 0, longid, T0 + HOUR + U - 1, limit + 3), limit);
        free(longid);
        ratelimit_close(rl);
    }
}

/* Builds partition `part` in dir: a base with "u0", then a journal block
 * with "a" (2 sends), then one with "b" (3 sends); *after_a is the
 * journal's length after the first block. Returns the open limiter. */
static ratelimit_t *two_blocks(const char *dir, int part, off_t *after_a)
{
    ratelimit_t *p = open_snap(dir, 3);
    ratelimit_tick(p, T0);
    assert_true(check(p, part, "u0", T0));
    ratelimit_tick(p, T0 + 10000);
    assert_int_equal(allows(p, part, "a", T0 + 10001, 2), 2);
    ratelimit_tick(p, T0 + 20000);
    *after_a = fsize(dir, part, "j", NULL);
    assert_int_equal(allows(p, part, "b", T0 + 20001, 3), 3);
    ratelimit_tick(p, T0 + 30000);
    assert_true(fsize(dir, part, "j", NULL) > *after_a);
    return p;
}

/* A torn last block (cut short, or a flipped byte) is dropped with what it
 * held, the blocks before it are kept; the file is cut back so that the
 * next owner's appends are read after it. */
static void test_journal_torn_tail(void **st)
{
    (void)st;
    char dir[300], path[400];
    mkdirs(dir, sizeof(dir), "jt");
    for (int variant = 0; variant < 2; variant++) {
        int part = variant;
        off_t after_a;
        ratelimit_t *p = two_blocks(dir, part, &after_a);
        off_t full = fsize(dir, part, "j", NULL);
        snprintf(path, sizeof(path), "%s/push-%d.rlj", dir, part);
        if (variant == 0) {
            assert_int_equal(truncate(path, full - 3), 0);
        } else {
            FILE *f = fopen(path, "r+b");
            assert_non_null(f);
            fseek(f, (long)(after_a + (full - after_a) / 2), SEEK_SET);
            int c = fgetc(f);
            fseek(f, (long)(after_a + (full - after_a) / 2), SEEK_SET);
            fputc(c ^ 0x5a, f);
            fclose(f);
        }
        ratelimit_t *q = open_snap(dir, 3);
        ratelimit_tick(q, T0 + 40000);
        ratelimit_partition_assigned(q, part, T0 + 40000);
        assert_int_equal(fsize(dir, part, "j", NULL), after_a); /* cut back */
        assert_int_equal(allows(q, part, "u0", T0 + 40000, 3), 2);
        assert_int_equal(allows(q, part, "a", T0 + 40000, 3), 1);
        assert_int_equal(allows(q, part, "b", T0 + 40000, 3), 3); /* its block was torn */
        ratelimit_tick(q, T0 + 50000); /* appends after the cut */
        assert_true(fsize(dir, part, "j", NULL) > after_a);
        ratelimit_t *r = open_snap(dir, 3);
        ratelimit_partition_assigned(r, part, T0 + 50001);
        assert_int_equal(allows(r, part, "u0", T0 + 50001, 3), 0);
        assert_int_equal(allows(r, part, "a", T0 + 50001, 3), 0);
        assert_int_equal(allows(r, part, "b", T0 + 50001, 3), 0);
        ratelimit_close(r);
        ratelimit_close(q);
        ratelimit_close(p);
    }
}

/* A rebalance: the old owner's revoke compacts (journal folded into the
 * base, fsynced); the new owner appends its own journal to that base, and
 * the one after it (the second crashed) reads both. */
static void test_journal_rebalance(void **st)
{
    (void)st;
    char dir[300];
    mkdirs(dir, sizeof(dir), "jm");
    off_t after_a;
    ratelimit_t *a = two_blocks(dir, 4, &after_a);
    assert_true(check(a, 4, "c", T0 + 30001)); /* not journaled yet: the revoke writes it */
    ratelimit_partition_revoked(a, 4, T0 + 30002);
    assert_int_equal(fsize(dir, 4, "j", NULL), -1);
    ino_t ino0, ino;
    off_t base = fsize(dir, 4, "", &ino0);

    ratelimit_t *b = open_snap(dir, 3);
    ratelimit_tick(b, T0 + 30003);
    ratelimit_partition_assigned(b, 4, T0 + 30003);
    assert_int_equal(allows(b, 4, "a", T0 + 30003, 3), 1);
    assert_int_equal(allows(b, 4, "b", T0 + 30003, 3), 0);
    assert_int_equal(allows(b, 4, "c", T0 + 30003, 3), 2);
    assert_int_equal(allows(b, 4, "d", T0 + 30003, 1), 1);
    ratelimit_tick(b, T0 + 40003);
    assert_true(fsize(dir, 4, "j", NULL) > 0);
    assert_int_equal(fsize(dir, 4, "", &ino), base);
    assert_true(ino == ino0);

    ratelimit_t *c = open_snap(dir, 3); /* b crashed */
    ratelimit_partition_assigned(c, 4, T0 + 40004);
    assert_int_equal(allows(c, 4, "a", T0 + 40004, 3), 0);
    assert_int_equal(allows(c, 4, "c", T0 + 40004, 3), 0);
    assert_int_equal(allows(c, 4, "d", T0 + 40004, 3), 2);
    assert_int_equal(allows(c, 4, "u0", T0 + 40004, 3), 2);
    ratelimit_close(c);
    ratelimit_close(b);
    ratelimit_close(a);
}

/* Journaled sends leave the window like the others (injected clock): a
 * reload one window (and the resolution) after them finds nothing, a
 * millisecond before the window ends all. */
static void test_journal_window_expiry(void **st)
{
    (void)st;
    char dir[300];
    mkdirs(dir, sizeof(dir), "jw");
    off_t after_a;
    ratelimit_t *p = two_blocks(dir, 5, &after_a); /* b's 3 sends at T0 + 20001, journaled */
    ratelimit_t *x = open_snap(dir, 3);
    ratelimit_partition_assigned(x, 5, T0 + 20001 + HOUR - 1);
    assert_int_equal(allows(x, 5, "b", T0 + 20001 + HOUR - 1, 3), 0);
    ratelimit_t *y = open_snap(dir, 3);
    ratelimit_partition_assigned(y, 5, T0 + 20001 + HOUR + U - 1);
    assert_int_equal(allows(y, 5, "b", T0 + 20001 + HOUR + U - 1, 4), 3);
    assert_int_equal(allows(y, 5, "a", T0 + 20001 + HOUR + U - 1, 4), 3); /* a's at T0 + 10001 */
    ratelimit_close(y);
    ratelimit_close(x);
    ratelimit_close(p);
}

/* The journal is compacted into the base once it outgrows it (64 KiB at
 * least); a journal left behind by a crash between a compaction's rename
 * and its unlink names the old base and is ignored. */
static void test_journal_compaction(void **st)
{
    (void)st;
    enum { USERS = 4000 };
    char dir[300], u[64], path[400];
    mkdirs(dir, sizeof(dir), "jc");
    ratelimit_t *p = open_snap(dir, 3);
    ratelimit_tick(p, T0);
    assert_true(check(p, 6, "s", T0));
    ratelimit_tick(p, T0 + 10000);
    off_t base0 = fsize(dir, 6, "", NULL);
    assert_true(base0 > 0 && base0 < 100);
    /* a stale copy of the journal as it is now: "s" with one send */
    assert_true(check(p, 6, "s", T0 + 10001));
    ratelimit_tick(p, T0 + 20000);
    snprintf(path, sizeof(path), "%s/push-6.rlj", dir);
    size_t stale_len = 0;
    char stale[4096];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    stale_len = fread(stale, 1, sizeof(stale), f);
    fclose(f);
    assert_true(stale_len > 0 && stale_len < sizeof(stale));
    /* ~21 bytes a send: more than 64 KiB of journal in one period */
    int64_t t = T0 + 20001;
    for (int i = 0; i < USERS; i++) {
        snprintf(u, sizeof(u), "user-%06d", i);
        assert_true(check(p, 6, u, t));
    }
    assert_true(check(p, 6, "s", t));
    ratelimit_tick(p, T0 + 30000);
    off_t j = fsize(dir, 6, "j", NULL);
    assert_true(j > 65536);
    assert_int_equal(fsize(dir, 6, "", NULL), base0);
    assert_true(check(p, 6, "late", T0 + 30001));
    ratelimit_tick(p, T0 + 40000); /* past the base's size: compacted */
    assert_int_equal(fsize(dir, 6, "j", NULL), -1);
    off_t base1 = fsize(dir, 6, "", NULL);
    assert_true(base1 > 65536);
    /* the crash between rename and unlink: the old journal comes back */
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(stale, 1, stale_len, f), stale_len);
    fclose(f);
    ratelimit_t *q = open_snap(dir, 3);
    ratelimit_partition_assigned(q, 6, T0 + 40001);
    assert_int_equal(fsize(dir, 6, "j", NULL), -1); /* ignored and removed */
    assert_int_equal(allows(q, 6, "s", T0 + 40001, 3), 0); /* 3 in the base, not the journal's 2 */
    assert_int_equal(allows(q, 6, "late", T0 + 40001, 3), 2);
    for (int i = 0; i < USERS; i += 97) {
        snprintf(u, sizeof(u), "user-%06d", i);
        assert_int_equal(allows(q, 6, u, T0 + 40001, 3), 2);
    }
    ratelimit_close(q);
    ratelimit_close(p);
}

/* ---- compact entries: rings that grow, 32-bit times after an epoch ---- */

/* A user's ring starts small and grows with the sends, up to the limit,
 * also when it has wrapped (sends that left the window ahead of its head);
 * the window and the limit are exact at every size. */
static void test_ring_grows(void **st)
{
    (void)st;
    ratelimit_t *rl = open_rl("local", 20, NULL, NULL);
    /* two sends, the first leaves, one more: the small ring has wrapped */
    assert_true(check(rl, 0, "gina", T0));
    assert_true(check(rl, 0, "gina", T0 + 1000));
    assert_true(check(rl, 0, "gina", T0 + HOUR + 500)); /* T0 left */
    /* two in the window: 18 more fit, the ring growing from its first size */
    assert_int_equal(allows(rl, 0, "gina", T0 + HOUR + 600, 30), 18);
    /* T0 + 1000 leaves: exactly one more, then the rest at their times */
    assert_false(check(rl, 0, "gina", T0 + HOUR + 999));
    assert_true(check(rl, 0, "gina", T0 + HOUR + 1000 + U - 1));
    assert_false(check(rl, 0, "gina", T0 + HOUR + 1000 + U));
    assert_false(check(rl, 0, "gina", 2 * HOUR + T0 + 499));
    assert_true(check(rl, 0, "gina", 2 * HOUR + T0 + 500 + U - 1));
    assert_int_equal(allows(rl, 0, "gina", 2 * HOUR + T0 + 600 + U, 30), 18);
    /* a user with one send beside it is unaffected */
    assert_true(check(rl, 0, "hank", T0 + HOUR));
    assert_int_equal(allows(rl, 0, "hank", T0 + HOUR + 1, 30), 19);
    ratelimit_close(rl);
}

/* Grown rings and small ones go through the base and the journal and come
 * back the same; a limiter with a smaller limit keeps the newest sends. */
static void test_ring_grows_restart(void **st)
{
    (void)st;
    char dir[300];
    mkdirs(dir, sizeof(dir), "grow");
    ratelimit_t *p = open_snap(dir, 20);
    ratelimit_tick(p, T0);
    assert_int_equal(allows(p, 0, "big", T0, 7), 7);
    assert_true(check(p, 0, "one", T0));
    ratelimit_tick(p, T0 + 10000); /* the base */
    assert_int_equal(allows(p, 0, "big", T0 + 10001, 9), 9);
    assert_int_equal(allows(p, 0, "two", T0 + 10001, 2), 2);
    ratelimit_tick(p, T0 + 20000); /* a journal block */
    assert_true(fsize(dir, 0, "j", NULL) > 0);
    ratelimit_t *q = open_snap(dir, 20); /* the crash: p never closed */
    ratelimit_partition_assigned(q, 0, T0 + 20001);
    assert_int_equal(allows(q, 0, "big", T0 + 20001, 10), 4);
    assert_int_equal(allows(q, 0, "one", T0 + 20001, 30), 19);
    assert_int_equal(allows(q, 0, "two", T0 + 20001, 30), 18);
    /* the seven of T0 leave an hour later: seven more */
    assert_int_equal(allows(q, 0, "big", T0 + HOUR - 1, 10), 0);
    assert_int_equal(allows(q, 0, "big", T0 + HOUR + U, 10), 7);
    ratelimit_close(q);
    ratelimit_t *r = open_snap(dir, 5);
    ratelimit_partition_assigned(r, 0, T0 + HOUR + U + 1);
    assert_int_equal(allows(r, 0, "big", T0 + HOUR + U + 1, 5), 0);
    /* the five newest were at T0 + HOUR + U: none leave at T0 + 10001 + HOUR + U */
    assert_int_equal(allows(r, 0, "big", T0 + 10001 + HOUR + U, 5), 0);
    assert_int_equal(allows(r, 0, "big", T0 + 2 * HOUR + 2 * U, 5), 5);
    ratelimit_close(r);
    ratelimit_close(p);
}

/* A ring that grew is cut back by the sweep once most of its sends left
 * the window; the limit stays exact, in memory and through the files. */
static void test_ring_shrinks(void **st)
{
    (void)st;
    ratelimit_t *rl = open_rl("local", 20, NULL, NULL);
    ratelimit_tick(rl, T0);
    assert_int_equal(allows(rl, 0, "olga", T0, 19), 19);
    assert_true(check(rl, 0, "olga", T0 + HOUR / 2));
    ratelimit_tick(rl, T0 + 10000);
    ratelimit_tick(rl, T0 + HOUR + 10001); /* sweeps: 19 left, the ring shrinks */
    assert_int_equal(allows(rl, 0, "olga", T0 + HOUR + 10001, 30), 19);
    assert_false(check(rl, 0, "olga", T0 + HOUR + HOUR / 2 - 1));
    assert_true(check(rl, 0, "olga", T0 + HOUR + HOUR / 2 + U));
    ratelimit_close(rl);

    char dir[300];
    mkdirs(dir, sizeof(dir), "shrink");
    ratelimit_t *p = open_snap(dir, 20);
    ratelimit_tick(p, T0);
    assert_int_equal(allows(p, 0, "olga", T0, 18), 18);
    assert_int_equal(allows(p, 0, "olga", T0 + HOUR / 2, 2), 2);
    ratelimit_tick(p, T0 + 10000);        /* the base */
    ratelimit_tick(p, T0 + HOUR + 10000); /* nothing to write; sweeps: the ring shrinks */
    assert_true(check(p, 0, "olga", T0 + HOUR + 10001));
    ratelimit_tick(p, T0 + HOUR + 20000); /* the journal */
    ratelimit_t *q = open_snap(dir, 20);
    ratelimit_partition_assigned(q, 0, T0 + HOUR + 20001);
    assert_int_equal(allows(q, 0, "olga", T0 + HOUR + 20001, 30), 17);
    ratelimit_close(q);
    ratelimit_close(p);
}

/* Send times are held in 16 bits of units (83 ms for an hour) after the
 * partition's epoch, 65,535 of them: a window and a half. Without ticks
 * (no sweep moves the epoch) a check past the epoch's span moves it; the
 * sends still in the window keep counting, also through the files; a
 * clock set back holds the sends as the epoch (later than they were:
 * conservative); the longest window; a short window is exact. */
static void test_epoch_rebase(void **st)
{
    (void)st;
    const int64_t min = 60000;
    ratelimit_t *rl = open_rl("local", 3, NULL, NULL);
    assert_true(check(rl, 0, "ivy", T0)); /* the epoch: T0 - 1 h; its span ends at T0 + 31 min */
    assert_int_equal(allows(rl, 0, "ivy", T0 + 40 * min, 5), 2); /* past it: the epoch moves */
    assert_true(check(rl, 0, "jon", T0 + 40 * min));
    assert_false(check(rl, 0, "ivy", T0 + HOUR - 1));
    assert_int_equal(allows(rl, 0, "ivy", T0 + HOUR + U - 1, 5), 1); /* T0's left */
    /* ten hours later (several spans at once): everything has left */
    assert_int_equal(allows(rl, 0, "ivy", T0 + 10 * HOUR, 5), 3);
    assert_int_equal(allows(rl, 0, "jon", T0 + 10 * HOUR, 5), 3);
    assert_int_equal(allows(rl, 0, "kim", T0 + 10 * HOUR + 40 * min, 5), 3); /* moves it again */
    assert_int_equal(allows(rl, 0, "ivy", T0 + 10 * HOUR + 40 * min, 5), 0);
    assert_int_equal(allows(rl, 0, "ivy", T0 + 11 * HOUR + U - 1, 5), 3);
    /* a clock set back by almost three hours: the sends since count, held
     * as the epoch (T0 + 9 h 40 min at the latest): until an hour after it */
    assert_false(check(rl, 0, "kim", T0 + 8 * HOUR));
    assert_int_equal(allows(rl, 0, "lou", T0 + 8 * HOUR, 5), 3);
    assert_int_equal(allows(rl, 0, "lou", T0 + 9 * HOUR + U, 5), 0); /* the exact log: 3 */
    assert_int_equal(allows(rl, 0, "lou", T0 + 10 * HOUR + 40 * min, 5), 3);
    ratelimit_close(rl);

    /* a base and journal written, read by a process whose epoch is another */
    char dir[300];
    mkdirs(dir, sizeof(dir), "epoch");
    ratelimit_t *p = open_snap(dir, 3);
    ratelimit_tick(p, T0);
    assert_true(check(p, 0, "lea", T0));
    ratelimit_tick(p, T0 + 10000); /* the base */
    assert_true(check(p, 0, "lea", T0 + 40 * min));
    ratelimit_tick(p, T0 + 40 * min + 10000); /* the journal */
    assert_true(fsize(dir, 0, "j", NULL) > 0);
    ratelimit_t *c = open_snap(dir, 3); /* a crash: p never closed */
    ratelimit_partition_assigned(c, 0, T0 + 50 * min);
    assert_int_equal(allows(c, 0, "lea", T0 + 50 * min, 3), 1);
    assert_int_equal(allows(c, 0, "lea", T0 + HOUR - 1, 3), 0);
    assert_int_equal(allows(c, 0, "lea", T0 + HOUR + U - 1, 3), 1);
    ratelimit_close(c);
    ratelimit_close(p);

    /* the longest window: 30 days (a unit of 59.3 s), sends over 60 days */
    const int64_t day = 86400000, month = 30 * day;
    ratelimit_opts_t o = {.channel = CH_PUSH, .limit = 2, .window_ms = month, .backend = "local"};
    ratelimit_t *m = NULL;
    char why[256];
    assert_int_equal(ratelimit_open_opts(&o, &m, why, sizeof(why)), HR_OK);
    assert_int_equal(ratelimit_local_unit(m), 59328);
    for (int64_t d = 0; d <= 120; d++) {
        int64_t now = T0 + d * day / 2; /* every 12 h */
        int sent = allows(m, 0, "max", now, 1);
        /* the first two go at T0 and T0 + 12 h; each leaves less than a
         * unit after its 30 days, so 12 h after the exact log's next ones */
        int want = d == 0 || d == 1 || d == 61 || d == 62 || d == 122 ? 1 : 0;
        assert_int_equal(sent, want);
    }
    ratelimit_close(m);

    /* windows up to 43.7 s are exact (a unit of 1 ms) */
    o.window_ms = 30000;
    o.limit = 2;
    assert_int_equal(ratelimit_open_opts(&o, &m, why, sizeof(why)), HR_OK);
    assert_int_equal(ratelimit_local_unit(m), 1);
    assert_int_equal(allows(m, 0, "ned", T0, 3), 2);
    assert_int_equal(allows(m, 0, "ned", T0 + 29999, 3), 0);
    assert_int_equal(allows(m, 0, "ned", T0 + 30000, 3), 2);
    ratelimit_close(m);
}

/* The 16-bit times against an exact log (a reference of every allowed
 * send): random sends of 40 users over 30 hours, with ticks (sweeps,
 * compactions), gaps of several hours (rebases) and restarts from the
 * files. Every send allowed leaves at most `limit` in the window ending
 * at it (never more than the exact log allows), and every send refused
 * had `limit` in the window lengthened by a unit (refused only within a
 * unit of when the exact log would have refused too). */
static void test_conservative_log(void **st)
{
    (void)st;
    enum { USERS = 40, SENDS = 6000, LIMIT = 4 };
    static int64_t sent[USERS][SENDS];
    int nsent[USERS] = {0};
    char dir[300], u[16];
    mkdirs(dir, sizeof(dir), "conservative");
    ratelimit_t *rl = open_snap(dir, LIMIT);
    uint64_t x = 88172645463325252u;
    int64_t now = T0;
    for (int i = 0; i < SENDS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int step = (int)(x % 1000);
        if (step == 0) now += 3 * HOUR + (int64_t)(x >> 20) % HOUR; /* a gap: the epoch moves */
        else now += (int64_t)(x >> 24) % 30000;
        if (step == 1) { /* a restart: what the files hold (the last journal block at most is lost) */
            ratelimit_tick(rl, now);
            ratelimit_close(rl);
            rl = open_snap(dir, LIMIT);
        }
        ratelimit_tick(rl, now);
        int k = (int)((x >> 40) % USERS);
        snprintf(u, sizeof(u), "c%02d", k);
        bool ok = check(rl, 0, u, now);
        int in = 0, in_late = 0; /* the exact log's count, and with a window a unit longer */
        for (int j = 0; j < nsent[k]; j++) {
            in += sent[k][j] > now - HOUR;
            in_late += sent[k][j] > now - HOUR - U;
        }
        if (ok) {
            assert_true(in < LIMIT);
            sent[k][nsent[k]++] = now;
        } else {
            assert_true(in_late >= LIMIT);
        }
    }
    int total = 0;
    for (int k = 0; k < USERS; k++) total += nsent[k];
    assert_true(total > SENDS / 4); /* the limits bit, and sends went through */
    assert_true(total < SENDS);
    ratelimit_close(rl);
}

/* ---- the table: 8-byte slots, 16 bits of the hash beside the entry's address ---- */

enum { SAME_TAG = 16 };

/* Fills users[SAME_TAG] with ids whose fnv1a64 hashes share their top 16
 * bits (the slot's tag) and, for the first two, their low 6 bits too (the
 * home slot in a new table of 64 slots): found by search (some 5 million
 * hashes, once), so that probes for one of them meet the others' tags. */
static void same_tag_users(char users[SAME_TAG][32])
{
    static char found_users[SAME_TAG][32];
    static int found;
    uint64_t want = 0, home = 0;
    for (uint32_t i = 0; found < SAME_TAG; i++) {
        char u[32] = "tag-";
        for (int d = 0; d < 8; d++) u[4 + d] = "0123456789abcdef"[(i >> (28 - 4 * d)) & 15];
        uint64_t h = fnv1a64(u, 12);
        if (found == 0) {
            want = h >> 48;
            home = h & 63;
        } else if (h >> 48 != want || (found == 1 && (h & 63) != home)) {
            continue;
        }
        memcpy(found_users[found++], u, sizeof(u));
    }
    memcpy(users, found_users, sizeof(found_users));
}

/* Users whose slots carry the same tag (the same home, too) are told apart
 * by their entries: each has its own limit, through the table's growth, a
 * sweep that rebuilds it, and a restart from the files. */
static void tag_collisions(bool whole)
{
    char users[SAME_TAG][32];
    same_tag_users(users);
    char dir[300];
    mkdirs(dir, sizeof(dir), whole ? "tags-whole" : "tags");
    ratelimit_t *rl = open_snap(dir, 3);
    if (whole) ratelimit_local_whole_pointers(rl);
    ratelimit_tick(rl, T0);
    /* user k sends k % 4 (0-3) at T0 */
    for (int k = 0; k < SAME_TAG; k++) assert_int_equal(allows(rl, 0, users[k], T0, k % 4), k % 4);
    /* 3000 other users: the table grows (rebuilt from the entries' ids) */
    char u[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(u, sizeof(u), "other-%d", i);
        assert_true(check(rl, 0, u, T0 + HOUR / 2));
    }
    /* the even users fill their limit half an hour later; the odd ones are full or not */
    for (int k = 0; k < SAME_TAG; k++) {
        if (k % 2 == 0) assert_int_equal(allows(rl, 0, users[k], T0 + HOUR / 2, 5), 3 - k % 4);
        else assert_int_equal(allows(rl, 0, users[k], T0 + HOUR / 2, 0 + (k % 4 == 3)), 0);
    }
    /* the sends of T0 leave: the compaction's sweep forgets the odd users and rebuilds the table */
    ratelimit_tick(rl, T0 + HOUR);
    for (int k = 0; k < SAME_TAG; k++) {
        int room = k % 2 ? 3 : k % 4; /* even: 3 - k % 4 sends of T0 + 30 min in the window */
        assert_int_equal(allows(rl, 0, users[k], T0 + HOUR + 10000, k % 2 ? 1 : 5), k % 2 ? 1 : room);
    }
    ratelimit_tick(rl, T0 + HOUR + 20000); /* the journal */
    ratelimit_t *q = open_snap(dir, 3);    /* a crash: rl never closed */
    ratelimit_partition_assigned(q, 0, T0 + HOUR + 20001);
    for (int k = 0; k < SAME_TAG; k++) /* even: full; odd: one send */
        assert_int_equal(allows(q, 0, users[k], T0 + HOUR + 20001, 5), k % 2 ? 2 : 0);
    for (int i = 0; i < 3000; i += 7) {
        snprintf(u, sizeof(u), "other-%d", i);
        assert_int_equal(allows(q, 0, u, T0 + HOUR + 20001, 5), 2);
    }
    ratelimit_close(q);
    ratelimit_close(rl);
}

static void test_slot_tag_collisions(void **st)
{
    (void)st;
    tag_collisions(false);
}

/* Whole pointers in the slots (what the limiter turns to when an address
 * does not fit 48 bits): the same results, whether set from the start or
 * midway (the slots of every partition held are rewritten in place). */
static void test_whole_pointer_slots(void **st)
{
    (void)st;
    tag_collisions(true);
    ratelimit_t *rl = open_rl("local", 2, NULL, NULL);
    char u[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(u, sizeof(u), "u-%d", i);
        assert_true(check(rl, i % 3, u, T0));
    }
    ratelimit_local_whole_pointers(rl);
    for (int i = 0; i < 4000; i++) { /* the first 2000 have one left; 2000 new ones grow the tables */
        snprintf(u, sizeof(u), "u-%d", i);
        assert_int_equal(allows(rl, i % 3, u, T0 + 1, 3), i < 2000 ? 1 : 2);
    }
    ratelimit_tick(rl, T0 + HOUR + 1);
    ratelimit_tick(rl, T0 + 2 * HOUR + 2); /* everything left: swept, tables rebuilt */
    for (int i = 0; i < 4000; i += 3) {
        snprintf(u, sizeof(u), "u-%d", i);
        assert_int_equal(allows(rl, i % 3, u, T0 + 2 * HOUR + 2, 3), 2);
    }
    ratelimit_local_whole_pointers(rl); /* again: a no-op */
    snprintf(u, sizeof(u), "u-%d", 0);
    assert_false(check(rl, 0, u, T0 + 2 * HOUR + 3));
    ratelimit_close(rl);
    ratelimit_local_whole_pointers(NULL);
}

static void test_config(void **st)
{
    config_t c;
    config_init(&c);
    char why[256];
    assert_int_equal(c.ratelimit_push, 10);
    assert_int_equal(c.ratelimit_email, 3);
    assert_int_equal(c.ratelimit_sms, 2);
    assert_int_equal(c.ratelimit_inapp, 20);
    assert_int_equal(c.ratelimit_webhook, 60);
    assert_int_equal(c.ratelimit_window_ms, HOUR);
    assert_string_equal(c.ratelimit_backend, "local");
    assert_int_equal(config_set(&c, "ratelimit.backend", "memcached", why, sizeof(why)), HR_INVALID);
    assert_int_equal(config_set(&c, "ratelimit.email", "-1", why, sizeof(why)), HR_INVALID);
    assert_int_equal(config_set(&c, "ratelimit.window_ms", "1m", why, sizeof(why)), HR_OK);
    assert_int_equal(config_set(&c, "ratelimit.sms", "1", why, sizeof(why)), HR_OK);
    free(c.data_dir);
    c.data_dir = strdup(tmpdir);
    ratelimit_t *rl = NULL;
    assert_int_equal(ratelimit_open(&c, CH_SMS, &rl, why, sizeof(why)), HR_OK);
    assert_int_equal(ratelimit_limit(rl), 1);
    assert_true(check(rl, 0, "u", T0));
    assert_false(check(rl, 0, "u", T0 + 59999));
    assert_true(check(rl, 0, "u", T0 + 60000));
    ratelimit_close(rl);
    ratelimit_opts_t o = {.channel = CH_PUSH, .limit = 1, .window_ms = HOUR, .backend = "bogus"};
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "ratelimit.backend"));
    o.backend = "redis";
    o.redis = "no-port";
    assert_int_equal(ratelimit_open_opts(&o, &rl, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "ratelimit.redis"));
    config_release(&c);
}

/* ---- a real redis-server ---- */

static pid_t redis_pid = -1;
static char sock[300];

static bool have_redis(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *d = strtok(buf, ":"); d; d = strtok(NULL, ":")) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/redis-server", d);
        if (access(p, X_OK) == 0) return true;
    }
    return false;
}

static void redis_start(void)
{
    snprintf(sock, sizeof(sock), "%s/r.sock", tmpdir);
    char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                    "--loglevel", "warning", "--dir", tmpdir, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0); /* its start-up banner */
    assert_int_equal(posix_spawnp(&redis_pid, "redis-server", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    /* Wait for it to answer (it starts in milliseconds; give it 10 s). */
    for (int i = 0; i < 1000; i++) {
        redisContext *c = redisConnectUnix(sock);
        if (c && !c->err) {
            redisReply *y = redisCommand(c, "PING");
            bool ok = y && y->type == REDIS_REPLY_STATUS;
            if (y) freeReplyObject(y);
            redisFree(c);
            if (ok) return;
        } else if (c) {
            redisFree(c);
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    fail_msg("redis-server did not come up on %s", sock);
}

static void redis_kill(void)
{
    if (redis_pid <= 0) return;
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
    unlink(sock);
}

static bool redis_or_skip(void)
{
    if (have_redis()) return true;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_msg("redis-server is not installed (scripts/deps.sh --test)");
    print_message("skipped: redis-server is not installed (scripts/deps.sh --test installs it)\n");
    return false;
}

static void test_redis_limits(void **st)
{
    if (!redis_or_skip()) skip();
    redis_start();
    ratelimit_t *rl = open_rl("redis", 10, NULL, sock);
    assert_string_equal(ratelimit_backend_name(rl), "redis");
    int64_t err0 = METRIC_VALUE(ratelimit_redis_errors);
    limits_and_slides(rl, 0);
    batch(rl, T0);
    assert_int_equal(METRIC_VALUE(ratelimit_redis_errors), err0);
    /* Two limiters (two processes) share the window. */
    ratelimit_t *other = open_rl("redis", 10, NULL, sock);
    for (int i = 0; i < 5; i++) assert_true(check(rl, 0, "gina", T0 + i));
    for (int i = 0; i < 5; i++) assert_true(check(other, 9, "gina", T0 + 10 + i));
    assert_false(check(rl, 0, "gina", T0 + 20));
    assert_false(check(other, 0, "gina", T0 + 20));
    /* The key expires with the window. */
    redisContext *c = redisConnectUnix(sock);
    redisReply *y = redisCommand(c, "PTTL herald:rl:push:gina");
    assert_true(y->type == REDIS_REPLY_INTEGER && y->integer > 0 && y->integer <= HOUR);
    freeReplyObject(y);
    /* A script cache flush (what a restart does) is survived. */
    y = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(y);
    redisFree(c);
    assert_false(check(rl, 0, "gina", T0 + 30));
    assert_true(check(rl, 0, "hank", T0 + 30));
    assert_int_equal(METRIC_VALUE(ratelimit_redis_errors), err0);
    ratelimit_close(other);
    ratelimit_close(rl);
    redis_kill();
}

static void test_redis_outage(void **st)
{
    if (!redis_or_skip()) skip();
    redis_start();
    ratelimit_t *rl = open_rl("redis", 10, NULL, sock);
    int64_t err0 = METRIC_VALUE(ratelimit_redis_errors);
    for (int i = 0; i < 10; i++) assert_true(check(rl, 0, "ivan", T0));
    assert_false(check(rl, 0, "ivan", T0));
    /* Killed mid-run: every check is allowed (fail open) and counted. */
    redis_kill();
    int64_t t = T0 + 1;
    for (int i = 0; i < 20; i++) assert_true(check(rl, 0, "ivan", t));
    ratelimit_req_t q[5];
    for (int i = 0; i < 5; i++) q[i] = (ratelimit_req_t){.partition = 0, .user = "ivan", .user_len = 4};
    assert_int_equal(ratelimit_check_batch(rl, q, 5, t), HR_OK);
    for (int i = 0; i < 5; i++) assert_true(q[i].allowed);
    assert_int_equal(METRIC_VALUE(ratelimit_redis_errors) - err0, 25);
    /* Back (empty: it kept nothing): limiting again once the retry
     * interval has passed. */
    redis_start();
    t += 1000;
    int allowed = 0;
    for (int i = 0; i < 15; i++) allowed += check(rl, 0, "ivan", t);
    assert_int_equal(allowed, 10);
    assert_int_equal(METRIC_VALUE(ratelimit_redis_errors) - err0, 25);
    ratelimit_close(rl);
    redis_kill();

    /* Down from the start: open succeeds, checks fail open. */
    ratelimit_t *down = open_rl("redis", 1, NULL, sock);
    err0 = METRIC_VALUE(ratelimit_redis_errors);
    for (int i = 0; i < 3; i++) assert_true(check(down, 0, "judy", T0));
    assert_int_equal(METRIC_VALUE(ratelimit_redis_errors) - err0, 3);
    ratelimit_close(down);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_limits),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_local_persists),
        cmocka_unit_test(test_local_many_users),
        cmocka_unit_test(test_journal_restart),
        cmocka_unit_test(test_journal_dirty_bound),
        cmocka_unit_test(test_memory_per_user),
        cmocka_unit_test(test_local_bounds),
        cmocka_unit_test(test_journal_torn_tail),
        cmocka_unit_test(test_journal_rebalance),
        cmocka_unit_test(test_journal_window_expiry),
        cmocka_unit_test(test_journal_compaction),
        cmocka_unit_test(test_journal_version1),
        cmocka_unit_test(test_ring_grows),
        cmocka_unit_test(test_ring_grows_restart),
        cmocka_unit_test(test_epoch_rebase),
        cmocka_unit_test(test_conservative_log),
        cmocka_unit_test(test_ring_shrinks),
        cmocka_unit_test(test_slot_tag_collisions),
        cmocka_unit_test(test_whole_pointer_slots),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_redis_limits),
        cmocka_unit_test(test_redis_outage),
    };
    int r = cmocka_run_group_tests(tests, setup, teardown);
    redis_kill();
    return r;
}
