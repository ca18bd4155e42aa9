/*
 * The SQLite dedupe claims in generations (store_sqlite_claims.c): the
 * answers within and across generations, release, reopening, the window
 * (an injected clock), all-or-nothing batches, a database of the old
 * format, two stores on one database, the sealed generations' hash index
 * (claims_<gen>_by_h) and the SQL index generations sealed before it have,
 * batches of more claims than one INSERT statement takes.
 * Generations of 4 claims, so that a few claims span several.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define GEN 4
#define WINDOW_MS 160000
#define T0 INT64_C(1800000000000)

typedef struct cf {
    char dir[64];
    char db[96], ev[96];
    store_t *s;
} cf_t;

static store_t *open_store_gen(const cf_t *f, int gen)
{
    store_open_opts_t o = {.dedupe_window_ms = WINDOW_MS, .dedupe_gen_claims = gen};
    store_t *s = NULL;
    assert_int_equal(store_open_with("sqlite", f->db, &o, &s), HR_OK);
    return s;
}

static store_t *open_store(const cf_t *f)
{
    return open_store_gen(f, GEN);
}

static int setup(void **state)
{
    cf_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/herald-claims-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof(f->db), "%s/h.db", f->dir);
    snprintf(f->ev, sizeof(f->ev), "%s/h.events.db", f->dir);
    hclock_set_fake(T0);
    f->s = open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    cf_t *f = *state;
    store_close(f->s);
    hclock_set_fake(0);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s%s", f->db, sfx[i]);
        unlink(p);
        snprintf(p, sizeof(p), "%s%s", f->ev, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void reopen(cf_t *f)
{
    store_close(f->s);
    f->s = open_store(f);
}

static claim_t claim(store_t *s, const char *id, const char *pos)
{
    claim_t c = (claim_t)-1;
    assert_int_equal(store_event_claim(s, id, pos, &c), HR_OK);
    return c;
}

/* One integer from the dedupe database, read by a connection of its own. */
static int64_t ev_int(const cf_t *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->ev, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void ev_exec(const cf_t *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->ev, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static void claim_range(store_t *s, const char *prefix, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32], pos[32];
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        snprintf(pos, sizeof(pos), "raw-events/0/%d", i);
        assert_int_equal(claim(s, id, pos), CLAIM_NEW);
    }
}

static void test_answers_across_generations(void **state)
{
    cf_t *f = *state;
    claim_range(f->s, "e", 0, 14); /* generations of 4: 3 sealed, the 4th current */
    assert_true(ev_int(f, "SELECT count(*) FROM claim_gens") >= 4);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0 AND filter IS NULL"), 0);
    /* the oldest generation, a middle one, the current one */
    assert_int_equal(claim(f->s, "e0", "raw-events/0/0"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "e0", "raw-events/1/0"), CLAIM_DUP);
    assert_int_equal(claim(f->s, "e5", "raw-events/0/5"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "e5", "raw-events/0/6"), CLAIM_DUP);
    assert_int_equal(claim(f->s, "e13", "raw-events/0/13"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "e13", "raw-events/0/99"), CLAIM_DUP);
    /* a repeat is not claimed again in the current generation */
    int64_t rows = ev_int(f, "SELECT sum(claims) FROM claim_gens WHERE last_ms > 0");
    assert_int_equal(rows, 12);
    /* a batch: new ones, old ones, an id twice at two positions */
    const char *ids[] = {"b1", "e2", "b1", "e2", "b2", "b2"};
    const char *pos[] = {"p/1", "raw-events/0/2", "p/2", "raw-events/9/9", "p/3", "p/3"};
    claim_t out[6];
    assert_int_equal(store_event_claim_batch(f->s, ids, pos, 6, out), HR_OK);
    claim_t want[] = {CLAIM_NEW, CLAIM_SAME, CLAIM_DUP, CLAIM_DUP, CLAIM_NEW, CLAIM_SAME};
    for (int i = 0; i < 6; i++) assert_int_equal(out[i], want[i]);
}

static void test_release_in_old_and_current(void **state)
{
    cf_t *f = *state;
    claim_range(f->s, "r", 0, 10);
    assert_int_equal(store_event_release(f->s, "r1"), HR_OK); /* sealed */
    assert_int_equal(store_event_release(f->s, "r9"), HR_OK); /* current */
    assert_int_equal(store_event_release(f->s, "never"), HR_OK);
    assert_int_equal(claim(f->s, "r1", "raw-events/5/5"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "r1", "raw-events/5/5"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "r9", "raw-events/5/6"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "r9", "raw-events/0/9"), CLAIM_DUP);
    assert_int_equal(claim(f->s, "r2", "raw-events/0/2"), CLAIM_SAME); /* the others stay */
    /* a released claim of the current generation is emptied, not deleted */
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM claims_%lld WHERE event_id = ''",
             (long long)ev_int(f, "SELECT max(gen) FROM claim_gens WHERE last_ms = 0"));
    int64_t emptied = ev_int(f, sql);
    assert_true(emptied <= 1); /* 0 once the generation was sealed by the claims since */
}

static void test_reopen_midway(void **state)
{
    cf_t *f = *state;
    claim_range(f->s, "a", 0, 6); /* one sealed, two in the current one */
    reopen(f);
    assert_int_equal(claim(f->s, "a1", "raw-events/0/1"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "a5", "raw-events/0/5"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "a5", "raw-events/0/7"), CLAIM_DUP);
    claim_range(f->s, "a", 6, 11);
    reopen(f);
    for (int i = 0; i < 11; i++) {
        char id[16], pos[32];
        snprintf(id, sizeof(id), "a%d", i);
        snprintf(pos, sizeof(pos), "raw-events/0/%d", i);
        assert_int_equal(claim(f->s, id, pos), CLAIM_SAME);
    }
    assert_int_equal(claim(f->s, "a11", "raw-events/0/11"), CLAIM_NEW);
    /* the filters were read from the catalogue: spoil one and the claims
     * still answer (read from the table instead) */
    ev_exec(f, "UPDATE claim_gens SET filter = x'00' WHERE gen = 1");
    reopen(f);
    assert_int_equal(claim(f->s, "a0", "raw-events/0/0"), CLAIM_SAME);
}

static void test_window_expiry(void **state)
{
    cf_t *f = *state;
    assert_int_equal(claim(f->s, "w0", "p/0"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "w1", "p/1"), CLAIM_NEW);
    /* 1/16 of the window later the current generation is sealed by age */
    hclock_set_fake(T0 + WINDOW_MS / 16 + 1);
    assert_int_equal(claim(f->s, "w2", "p/2"), CLAIM_NEW);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0"), 1);
    /* within the window the old claims still answer */
    hclock_set_fake(T0 + WINDOW_MS);
    assert_int_equal(claim(f->s, "w0", "p/9"), CLAIM_DUP);
    /* past it (from the seal) the generation is dropped whole */
    hclock_set_fake(T0 + WINDOW_MS / 16 + 1 + WINDOW_MS + 1);
    assert_int_equal(claim(f->s, "w0", "p/9"), CLAIM_NEW);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE name = 'claims_1'"), 0);
    assert_int_equal(ev_int(f, "SELECT min(gen) FROM claim_gens"), 2);
    /* w2 (the generation sealed by the last step) is still remembered */
    assert_int_equal(claim(f->s, "w2", "p/2"), CLAIM_SAME);
    /* retention drops what was sealed before its cut, the current one stays */
    hclock_set_fake(T0 + 3 * WINDOW_MS);
    assert_int_equal(claim(f->s, "late", "p/3"), CLAIM_NEW);
    hclock_set_fake(T0 + 3 * WINDOW_MS + WINDOW_MS / 16 + 1);
    assert_int_equal(claim(f->s, "later", "p/4"), CLAIM_NEW); /* seals the one with late */
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0"), 1);
    int64_t deleted = 0;
    assert_int_equal(store_notif_purge(f->s, T0 + 4 * WINDOW_MS, &deleted), HR_OK);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0"), 0);
    assert_int_equal(claim(f->s, "later", "p/4"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "late", "p/3"), CLAIM_NEW);
}

/* Makes the current generation refuse a claim of id (a trigger "boom");
 * returns the generation. */
static int64_t refuse_id(const cf_t *f, const char *id)
{
    int64_t cur = ev_int(f, "SELECT max(gen) FROM claim_gens");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER boom BEFORE INSERT ON claims_%lld WHEN NEW.event_id = '%s'"
             " BEGIN SELECT RAISE(ABORT, 'refused'); END",
             (long long)cur, id);
    ev_exec(f, sql);
    return cur;
}

/* A batch that fails half-way claims none of its events. */
static void test_batch_all_or_nothing(void **state)
{
    cf_t *f = *state;
    claim_range(f->s, "x", 0, 5);
    refuse_id(f, "bad");
    const char *ids[] = {"n1", "x0", "n2", "bad", "n3"};
    const char *pos[] = {"p/1", "raw-events/0/0", "p/2", "p/3", "p/4"};
    claim_t out[5];
    assert_int_not_equal(store_event_claim_batch(f->s, ids, pos, 5, out), HR_OK);
    ev_exec(f, "DROP TRIGGER boom");
    assert_int_equal(claim(f->s, "n1", "p/1"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "n2", "p/9"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "bad", "p/3"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "x0", "raw-events/0/0"), CLAIM_SAME);
}

/* A dedupe database of the old format (one table, events) is turned into
 * generations at open; claims older than the window are left out. */
static void test_old_format(void **state)
{
    cf_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    unlink(f->ev);
    char sql[4096];
    int l = snprintf(sql, sizeof(sql),
                     "CREATE TABLE events (event_id TEXT PRIMARY KEY, position TEXT NOT NULL,"
                     " first_seen_ms INTEGER NOT NULL); INSERT INTO events VALUES"
                     " ('ancient', 'raw-events/0/1', %lld)",
                     (long long)(T0 - 2 * WINDOW_MS));
    for (int i = 0; i < 10; i++)
        l += snprintf(sql + l, sizeof(sql) - (size_t)l, ", ('old%d', 'raw-events/1/%d', %lld)", i, i,
                      (long long)(T0 - 1000 + i));
    snprintf(sql + l, sizeof(sql) - (size_t)l, ";");
    ev_exec(f, sql);
    f->s = open_store(f);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE name = 'events'"), 0);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0"), 3);
    assert_int_equal(ev_int(f, "SELECT sum(claims) FROM claim_gens"), 10);
    for (int i = 0; i < 10; i++) {
        char id[16], pos[32];
        snprintf(id, sizeof(id), "old%d", i);
        snprintf(pos, sizeof(pos), "raw-events/1/%d", i);
        assert_int_equal(claim(f->s, id, pos), CLAIM_SAME);
    }
    assert_int_equal(claim(f->s, "old3", "raw-events/2/3"), CLAIM_DUP);
    assert_int_equal(claim(f->s, "ancient", "raw-events/0/1"), CLAIM_NEW);
    reopen(f);
    assert_int_equal(claim(f->s, "old9", "raw-events/1/9"), CLAIM_SAME);
}

/* Two stores on one database (two processes): whichever claims first gets
 * NEW, across the generations either of them seals. */
static void test_two_stores(void **state)
{
    cf_t *f = *state;
    store_t *b = open_store(f);
    claim_range(f->s, "s", 0, 6);
    assert_int_equal(claim(b, "s1", "raw-events/0/1"), CLAIM_SAME);
    assert_int_equal(claim(b, "s5", "raw-events/0/9"), CLAIM_DUP);
    claim_range(b, "t", 0, 9); /* b seals what a wrote to */
    claim_range(f->s, "u", 0, 3);
    for (int i = 0; i < 9; i++) {
        char id[16], pos[32];
        snprintf(id, sizeof(id), "t%d", i);
        snprintf(pos, sizeof(pos), "raw-events/0/%d", i);
        assert_int_equal(claim(f->s, id, pos), CLAIM_SAME);
    }
    for (int i = 0; i < 6; i++) {
        char id[16], pos[32];
        snprintf(id, sizeof(id), "s%d", i);
        snprintf(pos, sizeof(pos), "raw-events/0/%d", i);
        assert_int_equal(claim(b, id, pos), CLAIM_SAME);
    }
    assert_int_equal(claim(b, "u2", "raw-events/3/3"), CLAIM_DUP);
    assert_int_equal(store_event_release(b, "s2"), HR_OK);
    assert_int_equal(claim(f->s, "s2", "raw-events/7/7"), CLAIM_NEW);
    store_close(b);
}

/* A claim released in the current generation leaves its row (emptied):
 * were it deleted, another process's next claim could take its seq, which
 * this one would not read when catching up (it reads the rows after the
 * last seq it knows). */
static void test_release_then_other_store(void **state)
{
    cf_t *f = *state;
    store_t *b = open_store(f);
    assert_int_equal(claim(f->s, "q0", "p/0"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "q1", "p/1"), CLAIM_NEW);
    assert_int_equal(store_event_release(f->s, "q1"), HR_OK);
    assert_int_equal(claim(b, "q2", "p/2"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "q2", "p/2"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "q1", "p/1"), CLAIM_NEW);
    assert_int_equal(claim(b, "q1", "p/1"), CLAIM_SAME);
    store_close(b);
}

/* Claims n ids "<prefix><i>" at "raw-events/0/<i>" in batches, checking
 * every answer is want. */
static void claim_many(store_t *s, const char *prefix, int n, claim_t want, int pos_base)
{
    enum { B = 64 };
    char idb[B][32], posb[B][32];
    const char *ids[B], *pos[B];
    claim_t out[B];
    for (int i = 0; i < n; i += B) {
        int k = n - i < B ? n - i : B;
        for (int j = 0; j < k; j++) {
            snprintf(idb[j], sizeof(idb[j]), "%s%d", prefix, i + j);
            snprintf(posb[j], sizeof(posb[j]), "raw-events/0/%d", pos_base + i + j);
            ids[j] = idb[j];
            pos[j] = posb[j];
        }
        assert_int_equal(store_event_claim_batch(s, ids, pos, k, out), HR_OK);
        for (int j = 0; j < k; j++) assert_int_equal(out[j], want);
    }
}

/* Sealing writes a generation's hash index as sorted (h, seq) pairs in
 * chunks, no SQL index; a store opened again reads it (not the table),
 * in a generation of many chunks; release deletes through it; a damaged
 * chunk is read round (the table then). */
static void test_sealed_chunks(void **state)
{
    cf_t *f = *state;
    store_close(f->s);
    f->s = open_store_gen(f, 1000); /* ~9 chunks of 120 pairs per generation */
    claim_many(f->s, "c", 2500, CLAIM_NEW, 0);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claim_gens WHERE last_ms > 0"), 2);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                               " AND name LIKE 'claims%'"), 0);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'claims^_%^_by^_h'"
                               " ESCAPE '^'"), 2);
    assert_true(ev_int(f, "SELECT count(*) FROM claims_1_by_h") > 1);
    /* every claim of a sealed generation has its pair (16 bytes) */
    assert_int_equal(ev_int(f, "SELECT sum(length(pairs)) / 16 FROM claims_1_by_h"),
                     ev_int(f, "SELECT claims FROM claim_gens WHERE gen = 1"));
    store_close(f->s);
    f->s = open_store_gen(f, 1000);
    claim_many(f->s, "c", 2500, CLAIM_SAME, 0);
    claim_many(f->s, "c", 2500, CLAIM_DUP, 10000);
    claim_many(f->s, "d", 300, CLAIM_NEW, 0);
    /* release in a sealed generation: the row goes, its pair names none */
    assert_int_equal(store_event_release(f->s, "c7"), HR_OK);
    assert_int_equal(store_event_release(f->s, "c1500"), HR_OK);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claims_1 WHERE event_id = 'c7'"), 0);
    assert_int_equal(claim(f->s, "c7", "raw-events/3/7"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "c1500", "raw-events/3/8"), CLAIM_NEW);
    assert_int_equal(claim(f->s, "c8", "raw-events/0/8"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "c7", "raw-events/3/7"), CLAIM_SAME);
    /* damaged chunks: the claims still answer */
    store_close(f->s);
    ev_exec(f, "UPDATE claims_1_by_h SET pairs = x'00112233'");
    f->s = open_store_gen(f, 1000);
    assert_int_equal(claim(f->s, "c0", "raw-events/0/0"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "c999", "raw-events/0/5"), CLAIM_DUP);
    assert_int_equal(claim(f->s, "c1", "raw-events/0/1"), CLAIM_SAME);
}

/* A dedupe database of the layout before the chunks: sealed generations
 * with an SQL index on h (claims_<gen>_h) still answer, release and drop
 * with the window, beside generations sealed now. */
static void test_index_layout(void **state)
{
    cf_t *f = *state;
    claim_range(f->s, "o", 0, 10); /* two sealed, the third current */
    store_close(f->s);
    for (int g = 1; g <= 2; g++) { /* what a store of that layout had sealed */
        char sql[256];
        snprintf(sql, sizeof(sql), "DROP TABLE claims_%d_by_h; CREATE INDEX claims_%d_h ON claims_%d (h)",
                 g, g, g);
        ev_exec(f, sql);
    }
    f->s = open_store(f);
    for (int i = 0; i < 10; i++) {
        char id[16], pos[32];
        snprintf(id, sizeof(id), "o%d", i);
        snprintf(pos, sizeof(pos), "raw-events/0/%d", i);
        assert_int_equal(claim(f->s, id, pos), CLAIM_SAME);
    }
    assert_int_equal(claim(f->s, "o2", "raw-events/4/4"), CLAIM_DUP);
    assert_int_equal(store_event_release(f->s, "o1"), HR_OK);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM claims_1 WHERE event_id = 'o1'"), 0);
    assert_int_equal(claim(f->s, "o1", "raw-events/4/1"), CLAIM_NEW);
    claim_range(f->s, "n", 0, 8); /* seals more, in chunks */
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE name = 'claims_3_by_h'"), 1);
    assert_int_equal(claim(f->s, "o5", "raw-events/0/5"), CLAIM_SAME);
    assert_int_equal(claim(f->s, "n1", "raw-events/0/1"), CLAIM_SAME);
    /* past the window both kinds are dropped whole */
    hclock_set_fake(T0 + 2 * WINDOW_MS);
    assert_int_equal(claim(f->s, "o5", "raw-events/0/5"), CLAIM_NEW);
    assert_int_equal(ev_int(f, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'claims^_1%' ESCAPE '^'"
                               " OR name LIKE 'claims^_3%' ESCAPE '^'"), 0);
}

/* A batch of more claims than one INSERT statement takes (store_sqlite_claims.c
 * inserts them CLAIM_ROWS = 32 to a statement, with seqs the batch gives
 * them): an id repeated within the batch is found whether its first claim
 * was inserted already or still waits, with its position compared; a
 * batch that fails leaves nothing, and its seqs are taken again by the
 * next; the rows, their seqs and the answers hold for another store and
 * after reopening. */
#define BIG 100
static void big_batch(const char *prefix, const char **ids, const char **pos, char (*idb)[16],
                      char (*posb)[32])
{
    for (int i = 0; i < BIG; i++) {
        /* every 10th repeats the id 7 before (the same position when i is
         * a multiple of 20, else another); 7 apart straddles the 32-row
         * statements' boundaries at 32, 64, 96 */
        int j = i % 10 == 9 ? i - 7 : i;
        snprintf(idb[i], sizeof(idb[i]), "%s%d", prefix, j);
        snprintf(posb[i], sizeof(posb[i]), "raw-events/1/%d", i % 20 == 19 ? j : i);
        ids[i] = idb[i];
        pos[i] = posb[i];
    }
}

static void check_big(const char **ids, const char **pos, const claim_t *out)
{
    int news = 0;
    for (int i = 0; i < BIG; i++) {
        claim_t want = i % 10 != 9 ? CLAIM_NEW : i % 20 == 19 ? CLAIM_SAME : CLAIM_DUP;
        if (out[i] != want) fail_msg("claim %d (%s at %s): %d, want %d", i, ids[i], pos[i], out[i], want);
        news += out[i] == CLAIM_NEW;
    }
    assert_int_equal(news, 90);
}

static void test_big_batch(void **state)
{
    cf_t *f = *state;
    store_close(f->s);
    f->s = open_store_gen(f, 1000); /* one generation holds the batches */
    claim_range(f->s, "a", 0, 3);
    const char *ids[BIG], *pos[BIG];
    char idb[BIG][16], posb[BIG][32];
    claim_t out[BIG];

    /* a batch that fails at its 70th claim (after two statements of 32) */
    int64_t cur = refuse_id(f, "b70");
    big_batch("b", ids, pos, idb, posb);
    assert_int_not_equal(store_event_claim_batch(f->s, ids, pos, BIG, out), HR_OK);
    ev_exec(f, "DROP TRIGGER boom");
    char q[128];
    snprintf(q, sizeof(q), "SELECT count(*) FROM claims_%lld", (long long)cur);
    assert_int_equal(ev_int(f, q), 3);

    /* again, without the trigger: 90 new, the repeats answered */
    assert_int_equal(store_event_claim_batch(f->s, ids, pos, BIG, out), HR_OK);
    check_big(ids, pos, out);
    assert_int_equal(ev_int(f, q), 93);
    snprintf(q, sizeof(q), "SELECT max(seq) FROM claims_%lld", (long long)cur);
    assert_int_equal(ev_int(f, q), 93); /* the seqs follow the rows before */
    snprintf(q, sizeof(q), "SELECT count(*) FROM claims_%lld WHERE event_id = 'b12' AND position = 'raw-events/1/12'",
             (long long)cur);
    assert_int_equal(ev_int(f, q), 1);

    /* another store sees them and appends after them */
    store_t *b = open_store_gen(f, 1000);
    assert_int_equal(claim(b, "b2", "raw-events/1/2"), CLAIM_SAME);
    assert_int_equal(claim(b, "b95", "raw-events/1/0"), CLAIM_DUP);
    big_batch("c", ids, pos, idb, posb);
    assert_int_equal(store_event_claim_batch(b, ids, pos, BIG, out), HR_OK);
    check_big(ids, pos, out);
    store_close(b);
    /* this store catches up with them, then its next batch follows on */
    assert_int_equal(claim(f->s, "c40", "raw-events/1/40"), CLAIM_SAME);
    big_batch("d", ids, pos, idb, posb);
    assert_int_equal(store_event_claim_batch(f->s, ids, pos, BIG, out), HR_OK);
    check_big(ids, pos, out);

    store_close(f->s);
    f->s = open_store_gen(f, 1000);
    for (int i = 0; i < BIG; i += 7) {
        char id[16], p2[32];
        snprintf(id, sizeof(id), "d%d", i);
        snprintf(p2, sizeof(p2), "raw-events/1/%d", i);
        assert_int_equal(claim(f->s, id, p2), i % 10 == 9 ? CLAIM_NEW : CLAIM_SAME);
        snprintf(id, sizeof(id), "b%d", i);
        assert_int_equal(claim(f->s, id, "elsewhere"), i % 10 == 9 ? CLAIM_NEW : CLAIM_DUP);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_answers_across_generations),
        T(test_release_in_old_and_current),
        T(test_reopen_midway),
        T(test_window_expiry),
        T(test_batch_all_or_nothing),
        T(test_old_format),
        T(test_two_stores),
        T(test_release_then_other_store),
        T(test_sealed_chunks),
        T(test_index_layout),
        T(test_big_batch),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
