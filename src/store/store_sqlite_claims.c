/*
 * store_sqlite_claims.c - the SQLite backend's event dedupe claims
 * (store_event_claim(_batch), store_event_release, and their part of
 * store_notif_purge), in the dedupe database ("herald.events.db").
 *
 * DESIGN
 * Fan-out claims every event by its producer's event id, a random key. One
 * table keyed by it (what herald had before) grew forever and every claim
 * dirtied a random leaf page of it: once the table outgrew the page cache
 * each claim read pages from the kernel, and fan-out's cost per
 * notification rose ~5x after ~1.2M claims (`herald bench claims`: 19 ->
 * 27 CPU-us per claim by 1M claims, 4-8 KB written per claim). Here the
 * claims live in generations, each a table of its own:
 *
 *   claims_<gen> (seq INTEGER PRIMARY KEY, h, event_id, position,
 *                 first_seen_ms): h = a 64-bit hash of the id
 *   claim_gens   one row per generation: first_ms (opened), last_ms (sealed
 *                at; 0 while current), claims, filter (at seal)
 *   claims_<gen>_by_h (lo INTEGER PRIMARY KEY, pairs BLOB): a sealed
 *                generation's hash index, its (h, seq) pairs sorted by h,
 *                CHUNK_PAIRS to a row keyed by the row's first h
 *
 * - New claims are appended to the current generation (rowid order: a
 *   commit writes the table's right-hand edge, ~100 bytes per claim, not a
 *   random page). Its index is in memory: an open-addressing table
 *   h -> seq (2 x 16 bytes per claim), each hit checked against its row.
 *   It is sealed when it holds gen_claims claims (DEFAULT_GEN_CLAIMS) or
 *   is older than 1/16 of the window; sealing writes the hash index from
 *   the one in memory (a sort of its pairs, ~550 rows: 11-24 ms of CPU
 *   in the claiming call, where an SQL CREATE INDEX on h took 50-115, see
 *   gen_write_chunks) and stores the filter. A generation sealed before
 *   the hash index existed has an SQL index claims_<gen>_h instead and is
 *   read by it (gen_layout).
 * - Every generation has a Bloom filter in memory; a sealed one's is
 *   persisted in claim_gens, so opening reads it instead of the table. A
 *   new event id is checked against the sealed generations' filters
 *   without disk reads; only a filter hit (the event, or a false positive)
 *   looks the hash up in that table's index, and the
 *   id itself is compared, so a hash collision never drops a distinct
 *   event.
 * - A sealed generation whose seal time is older than the window
 *   (dedupe.window_ms) is dropped whole (DROP TABLE): the database's size
 *   is bounded by the claims of one window. A producer retry later than the
 *   window is delivered again.
 * - The filters are one matrix of 64-bit words, [block][slot]: one slot
 *   (column) per generation, and a probe reads one row - the words of all
 *   generations for the id's block, adjacent in memory - instead of one
 *   cache line per generation. Each filter sets k = 8 bits of a 128-bit
 *   block picked by the id's hash (a blocked Bloom filter), 32 bits per
 *   claim at a full generation (4 bytes per claim in the window): ~0.01 %
 *   false positives per generation. (16 bits in one 64-bit word gave
 *   ~0.4 %, and with 120 generations 40 % of new claims read a sealed
 *   table's index: 3.9 -> 10.6 CPU-us per claim from 1M to 8M claims.)
 *   At most MAX_SLOTS generations: past that (more than MAX_SLOTS x
 *   gen_claims = 16.7M claims in one window) the oldest is dropped early,
 *   logged.
 *
 * Semantics are those of the single table: an id is in at most one
 * generation (a claim looks in the sealed ones before it inserts into the
 * current one), so CLAIM_NEW / CLAIM_SAME / CLAIM_DUP are exact; a batch
 * is one transaction (all or nothing); release deletes the id from every
 * sealed generation whose filter has it (a stale filter bit or index
 * pair costs a lookup, never a wrong answer) and empties its row in the
 * current one (see sq_event_release).
 *
 * Two processes may share the database (tests/unit/store: two stores): the
 * catalogue in memory is re-read whenever PRAGMA data_version says another
 * connection wrote, inside the write transaction, so a claim always goes to
 * the generation that is current in the database; a generation another
 * process also wrote to has its filter rebuilt from its table when sealed.
 *
 * What a store from before kept in the table `events` (of this database, or
 * of the main one: store_sqlite.c moves those here first) is turned into
 * sealed generations at open, oldest first, dropping claims already older
 * than the window; the table is then dropped.
 *
 * Threads: everything runs under ev.mu (the dedupe connection's mutex).
 */
#include "store/store_sqlite_int.h"

#include "core/bigmem.h"
#include "core/hash.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOG SQ_LOG
#define DEFAULT_WINDOW_MS INT64_C(86400000)
/* Claims per generation: its index in memory is 2 MiB, the seal's sort
 * takes a few milliseconds; 10M claims are 153 generations, whose
 * filters a probe reads as 153 adjacent words. */
#define DEFAULT_GEN_CLAIMS 65536
#define FILTER_BITS_PER_CLAIM 32
#define FILTER_K 8
#define CELL 2                   /* 64-bit words per filter block (128 bits) */
#define MAX_SLOTS 256
#define SLOT_STEP 16             /* the matrix grows by this many slots */
#define TIME_SEAL_PARTS 16       /* the current generation is sealed at window / this */
/* (h, seq) pairs per row of claims_<gen>_by_h: 16 bytes each, 1920 bytes
 * a row, two rows to a 4 KiB page. */
#define CHUNK_PAIRS 120
#define CLAIM_GROUP 16           /* claims whose first reads claims_prefetch starts together */
/* New claims are inserted CLAIM_ROWS to a statement (the rest of a batch
 * one by one), with the seqs the batch gives them: an INSERT statement's
 * own work (its set-up, the table's seek, the cursor's close) was most of
 * a claim's cost in fan-out, one statement per claim. */
#define CLAIM_ROWS 32

typedef struct gen {
    int64_t id;
    int slot;                   /* filter column; -1: none (always looked up) */
    int64_t first_ms, last_ms;  /* last_ms: sealed at; 0 = the current one */
    int64_t claims;             /* current: counted; sealed: at seal */
    bool seen;                  /* sync: still in the catalogue */
    bool foreign;               /* current: another connection wrote to it */
    int layout;                 /* sealed: LAYOUT_* (0: not looked at yet) */
    sqlite3_stmt *get;          /* sealed: the rows of a hash, or a row by seq (lazy) */
    sqlite3_stmt *chunk;        /* sealed, LAYOUT_CHUNKS: the chunk of a hash (lazy) */
} gen_t;

/* How a sealed generation finds the rows of a hash. */
enum {
    LAYOUT_CHUNKS = 1,          /* claims_<gen>_by_h: sorted (h, seq) pairs in chunks */
    LAYOUT_INDEX,               /* the index claims_<gen>_h (sealed before the chunks) */
};

/* The current generation's index in memory: hash -> seq (its row). An
 * open-addressing table; seq 0 = empty. Entries of rows gone (a release, a
 * rolled-back batch) stay: every hit is checked against the row. */
typedef struct cur_ent {
    uint64_t h;
    int64_t seq;
} cur_ent_t;

/* A claim of the batch under way not inserted yet (its seq: pend_seq +
 * its index); the strings are the caller's. */
typedef struct pend {
    const char *id, *position;
    uint64_t h;
} pend_t;

struct sq_claims {
    int64_t window_ms;
    int64_t gen_claims;
    gen_t *gens;                /* ascending id */
    int ngens, capgens;
    int cur;                    /* index of the current generation; -1 none */
    sqlite3_stmt *ins;          /* insert one claim into the current generation (lazy) */
    sqlite3_stmt *ins_n;        /* insert CLAIM_ROWS claims (lazy) */
    sqlite3_stmt *top;          /* the current generation's largest seq (lazy) */
    pend_t pend[CLAIM_ROWS];    /* the batch's claims waiting for their INSERT */
    int npend;
    int64_t pend_seq;           /* seq of pend[0]; the batch's claims take seqs from here on */
    sqlite3_stmt *row;          /* a row of the current generation by seq (lazy) */
    cur_ent_t *tab;             /* the current generation's index */
    size_t tab_map;             /* bigmem_free's length for tab (0: calloc'd) */
    int64_t tab_cap, tab_n;     /* cap: a power of two */
    int64_t max_seq;            /* the largest seq of the current generation seen */
    sqlite3_stmt *dv;           /* PRAGMA data_version */
    int64_t data_version;       /* -1: the catalogue must be read */
    /* the filter matrix: words[block * slots + slot]. It and tab are
     * probed at random, a TLB miss a probe on 4 KiB pages: both are
     * bigmem (huge pages) once they reach 2 MiB. */
    uint64_t *words;
    size_t words_map;           /* bigmem_free's length for words */
    int64_t blocks;             /* power of two */
    int slots;
    int64_t *slot_gen;          /* generation id per slot, 0 = free */
    int64_t early_drops;
};

/* ---- hashing and the filter ---- */

/* FNV-1a spread by a 64-bit finaliser (the filter needs every bit mixed). */
static uint64_t claim_hash(const char *id)
{
    uint64_t h = fnv1a64(id, strlen(id));
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

/* k bits of the 128-bit block, from a second mix of the hash (the block
 * number uses the hash's low bits). */
static void filter_mask(uint64_t h, uint64_t m[CELL])
{
    uint64_t x = (h ^ (h >> 29)) * UINT64_C(0xbf58476d1ce4e5b9);
    m[0] = m[1] = 0;
    for (int i = 0; i < FILTER_K; i++) {
        unsigned b = (unsigned)(x >> (64 - 7 * (i + 1))) & 127;
        m[b >> 6] |= UINT64_C(1) << (b & 63);
    }
}

/* The blocks of every slot for hash h: slot s's at row[s * CELL]. */
static uint64_t *filter_row(sq_claims_t *cl, uint64_t h)
{
    return cl->words + (size_t)(h & (uint64_t)(cl->blocks - 1)) * (size_t)cl->slots * CELL;
}

static bool filter_has(const uint64_t *row, int slot, const uint64_t m[CELL])
{
    const uint64_t *w = row + (size_t)slot * CELL;
    return (w[0] & m[0]) == m[0] && (w[1] & m[1]) == m[1];
}

static void filter_add(sq_claims_t *cl, int slot, uint64_t h)
{
    if (slot < 0) return;
    uint64_t m[CELL];
    filter_mask(h, m);
    uint64_t *w = filter_row(cl, h) + (size_t)slot * CELL;
    w[0] |= m[0];
    w[1] |= m[1];
}

/* Word j of slot's block b. */
static uint64_t *filter_word(sq_claims_t *cl, int64_t b, int slot, int j)
{
    return cl->words + ((size_t)b * (size_t)cl->slots + (size_t)slot) * CELL + (size_t)j;
}

static void slot_clear(sq_claims_t *cl, int slot)
{
    for (int64_t b = 0; b < cl->blocks; b++)
        for (int j = 0; j < CELL; j++) *filter_word(cl, b, slot, j) = 0;
}

/* A free slot for generation id, growing the matrix; -1 when MAX_SLOTS are
 * taken. */
static int slot_take(sq_claims_t *cl, int64_t id)
{
    for (int s = 0; s < cl->slots; s++)
        if (cl->slot_gen[s] == 0) {
            cl->slot_gen[s] = id;
            slot_clear(cl, s);
            return s;
        }
    if (cl->slots >= MAX_SLOTS) return -1;
    int ns = cl->slots + SLOT_STEP;
    size_t map;
    uint64_t *w = bigmem_alloc((size_t)cl->blocks * (size_t)ns * CELL * sizeof(*w), &map);
    for (int64_t b = 0; b < cl->blocks; b++)
        memcpy(w + (size_t)b * (size_t)ns * CELL, cl->words + (size_t)b * (size_t)cl->slots * CELL,
               (size_t)cl->slots * CELL * sizeof(*w));
    bigmem_free(cl->words, cl->words_map);
    cl->words = w;
    cl->words_map = map;
    cl->slot_gen = xrealloc(cl->slot_gen, (size_t)ns * sizeof(*cl->slot_gen));
    for (int s = cl->slots; s < ns; s++) cl->slot_gen[s] = 0;
    int s = cl->slots;
    cl->slots = ns;
    cl->slot_gen[s] = id;
    return s;
}

/* ---- the current generation's index ---- */

static void tab_put(sq_claims_t *cl, uint64_t h, int64_t seq);

/* An empty index for cap claims. The memory of one the size of the last is
 * cleared and kept: a fresh calloc of 2 MiB at every generation (every
 * 65536 claims) is mapped anew, and its first touches - a lookup maps the
 * zero page, the insert after it copies it - were page faults on every
 * page, 2.9 % of fan-out's CPU. */
static void tab_reset(sq_claims_t *cl, int64_t cap)
{
    int64_t want = 1024;
    while (want < cap) want *= 2;
    if (cl->tab && want == cl->tab_cap) {
        memset(cl->tab, 0, (size_t)want * sizeof(*cl->tab));
    } else {
        bigmem_free(cl->tab, cl->tab_map);
        cl->tab = bigmem_alloc((size_t)want * sizeof(*cl->tab), &cl->tab_map);
        cl->tab_cap = want;
    }
    cl->tab_n = 0;
    cl->max_seq = 0;
}

static void tab_put(sq_claims_t *cl, uint64_t h, int64_t seq)
{
    if ((cl->tab_n + 1) * 2 > cl->tab_cap) { /* more than planned (other processes): grow */
        cur_ent_t *old = cl->tab;
        size_t old_map = cl->tab_map;
        int64_t n = cl->tab_cap, max = cl->max_seq;
        cl->tab = NULL;
        cl->tab_map = 0;
        tab_reset(cl, n * 2);
        for (int64_t i = 0; i < n; i++)
            if (old[i].seq) tab_put(cl, old[i].h, old[i].seq);
        bigmem_free(old, old_map);
        cl->max_seq = max;
    }
    uint64_t mask = (uint64_t)cl->tab_cap - 1;
    for (uint64_t i = h & mask;; i = (i + 1) & mask)
        if (!cl->tab[i].seq) {
            cl->tab[i] = (cur_ent_t){h, seq};
            break;
        }
    cl->tab_n++;
    if (seq > cl->max_seq) cl->max_seq = seq;
}

/* ---- a sealed generation's hash index ---- */

static int pair_cmp(const void *x, const void *y)
{
    int64_t a = (int64_t)((const cur_ent_t *)x)->h, b = (int64_t)((const cur_ent_t *)y)->h;
    return (a > b) - (a < b);
}

/* Sorts n pairs by h read as a signed integer (the order of the key of
 * claims_<gen>_by_h). The hashes are uniform: one pass places each pair in
 * the bucket of its top bits (about one pair each), then an insertion sort
 * per bucket; a bucket larger than it should be is sorted by qsort, so no
 * choice of ids makes this quadratic. (65,536 pairs on a loaded 2-core
 * machine: qsort 12 ms, an 8-pass radix sort ~4, this 2.7.) */
static void pairs_sort(cur_ent_t *a, int64_t n)
{
    const uint64_t sign = UINT64_C(1) << 63; /* signed order as unsigned */
    int bits = 1;
    while (bits < 20 && (INT64_C(1) << bits) < n) bits++;
    size_t nb = (size_t)1 << bits;
    uint32_t *at = xcalloc(nb + 1, sizeof(*at));
    cur_ent_t *tmp = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(*tmp));
    for (int64_t i = 0; i < n; i++) at[((a[i].h ^ sign) >> (64 - bits)) + 1]++;
    for (size_t d = 0; d < nb; d++) at[d + 1] += at[d];
    for (int64_t i = 0; i < n; i++) tmp[at[(a[i].h ^ sign) >> (64 - bits)]++] = a[i];
    /* at[d] is now where bucket d ends */
    for (size_t d = 0, from = 0; d < nb; from = at[d++]) {
        size_t len = at[d] - from;
        cur_ent_t *p = tmp + from;
        if (len > 16) {
            qsort(p, len, sizeof(*p), pair_cmp);
            continue;
        }
        for (size_t i = 1; i < len; i++) {
            cur_ent_t e = p[i];
            size_t j = i;
            for (; j > 0 && (int64_t)p[j - 1].h > (int64_t)e.h; j--) p[j] = p[j - 1];
            p[j] = e;
        }
    }
    memcpy(a, tmp, (size_t)n * sizeof(*a));
    free(tmp);
    free(at);
}

/* Pair k of a chunk (the blob is not aligned). */
static cur_ent_t chunk_pair(const unsigned char *b, size_t k)
{
    cur_ent_t e;
    memcpy(&e, b + k * sizeof(e), sizeof(e));
    return e;
}

/* ---- generations in memory ---- */

static gen_t *gen_find(sq_claims_t *cl, int64_t id)
{
    for (int i = 0; i < cl->ngens; i++)
        if (cl->gens[i].id == id) return &cl->gens[i];
    return NULL;
}

/* Finalizes the statements on the current generation's table. */
static void cur_stmts_drop(sq_claims_t *cl)
{
    sqlite3_finalize(cl->ins);
    sqlite3_finalize(cl->ins_n);
    sqlite3_finalize(cl->top);
    sqlite3_finalize(cl->row);
    cl->ins = cl->ins_n = cl->top = cl->row = NULL;
}

static void gen_forget(sq_claims_t *cl, int i)
{
    gen_t *g = &cl->gens[i];
    sqlite3_finalize(g->get);
    sqlite3_finalize(g->chunk);
    if (g->slot >= 0) cl->slot_gen[g->slot] = 0;
    if (i == cl->cur) {
        cur_stmts_drop(cl);
        cl->cur = -1;
    } else if (cl->cur > i) {
        cl->cur--;
    }
    memmove(cl->gens + i, cl->gens + i + 1, (size_t)(cl->ngens - i - 1) * sizeof(*g));
    cl->ngens--;
}

/* Finalizes the cached statements (before and after changing the schema:
 * a statement prepared before would log SQLITE_SCHEMA and prepare again). */
static void stmts_drop(sq_claims_t *cl)
{
    for (int i = 0; i < cl->ngens; i++) {
        sqlite3_finalize(cl->gens[i].get);
        sqlite3_finalize(cl->gens[i].chunk);
        cl->gens[i].get = cl->gens[i].chunk = NULL;
    }
    cur_stmts_drop(cl);
    sqlite3_finalize(cl->dv);
    cl->dv = NULL;
}

/* Forgets everything in memory: the next sync reads the catalogue again. */
static void claims_reset(sq_claims_t *cl)
{
    while (cl->ngens) gen_forget(cl, cl->ngens - 1);
    cl->data_version = -1;
}

static sqlite3_stmt *prep(conn_t *c, const char *fmt, int64_t id)
{
    char *sql = sqlite3_mprintf(fmt, (long long)id);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error(LOG, "dedupe: prepare: %s", sqlite3_errmsg(c->db));
        st = NULL;
    }
    sqlite3_free(sql);
    return st;
}

/* Reads a generation's hashes into its filter (and counts them); index:
 * into the current generation's index too (from scratch). */
static hr_t gen_scan(conn_t *c, sq_claims_t *cl, gen_t *g, bool index)
{
    sqlite3_stmt *st = prep(c, "SELECT seq, h FROM claims_%lld", g->id);
    if (!st) return HR_ERR;
    if (g->slot >= 0) slot_clear(cl, g->slot);
    if (index) tab_reset(cl, cl->gen_claims * 2);
    int rc;
    g->claims = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
        filter_add(cl, g->slot, h);
        if (index) tab_put(cl, h, sqlite3_column_int64(st, 0));
        g->claims++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "dedupe: reading a generation");
}

/* The rows another connection appended to the current generation since we
 * last looked: into its filter and index. */
static hr_t cur_catch_up(conn_t *c, sq_claims_t *cl, gen_t *g)
{
    sqlite3_stmt *st = prep(c, "SELECT seq, h FROM claims_%lld WHERE seq > ?1", g->id);
    if (!st) return HR_ERR;
    sqlite3_bind_int64(st, 1, cl->max_seq);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t h = (uint64_t)sqlite3_column_int64(st, 1);
        filter_add(cl, g->slot, h);
        tab_put(cl, h, sqlite3_column_int64(st, 0));
        g->claims++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "dedupe: catching up");
}

/* A sealed generation's filter from the catalogue; read from its table
 * when absent or of another size. */
static hr_t gen_load_filter(conn_t *c, sq_claims_t *cl, gen_t *g)
{
    if (g->slot < 0) return HR_OK;
    sqlite3_stmt *st = prep(c, "SELECT filter FROM claim_gens WHERE gen = %lld", g->id);
    if (!st) return HR_ERR;
    int rc = sqlite3_step(st);
    bool done = false;
    if (rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == (size_t)cl->blocks * CELL * 8) {
        const unsigned char *b = sqlite3_column_blob(st, 0);
        for (int64_t k = 0; k < cl->blocks; k++)
            for (int j = 0; j < CELL; j++) memcpy(filter_word(cl, k, g->slot, j), b + (k * CELL + j) * 8, 8);
        done = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(c, rc, "dedupe: reading a filter");
    return done ? HR_OK : gen_scan(c, cl, g, false);
}

/* Brings the generations in memory in line with the catalogue when another
 * connection wrote since the last look (or force). Inside a transaction,
 * c->mu held. Only reads: what it learns was committed by others. */
static hr_t claims_sync(conn_t *c, sq_claims_t *cl, bool force)
{
    if (!cl->dv && !(cl->dv = prep(c, "PRAGMA data_version", 0))) return HR_ERR;
    int rc = sqlite3_step(cl->dv);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(cl->dv, 0) : -1;
    sqlite3_reset(cl->dv);
    if (rc != SQLITE_ROW) return sq_err(c, rc, "dedupe: data_version");
    bool changed = v != cl->data_version;
    if (!changed && !force) return HR_OK;
    if (changed && cl->data_version >= 0 && cl->cur >= 0) cl->gens[cl->cur].foreign = true;
    cl->data_version = v;
    sqlite3_stmt *st = prep(c, "SELECT gen, first_ms, last_ms FROM claim_gens ORDER BY gen", 0);
    if (!st) return HR_ERR;
    for (int i = 0; i < cl->ngens; i++) cl->gens[i].seen = false;
    hr_t r = HR_OK;
    int64_t cur_id = -1;
    while (r == HR_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), first = sqlite3_column_int64(st, 1),
                last = sqlite3_column_int64(st, 2);
        gen_t *g = gen_find(cl, id);
        if (!g) {
            if (cl->ngens == cl->capgens) {
                cl->capgens = cl->capgens ? cl->capgens * 2 : 16;
                cl->gens = xrealloc(cl->gens, (size_t)cl->capgens * sizeof(*cl->gens));
            }
            int at = cl->ngens; /* ascending id: the catalogue is read in order */
            while (at > 0 && cl->gens[at - 1].id > id) at--;
            memmove(cl->gens + at + 1, cl->gens + at, (size_t)(cl->ngens - at) * sizeof(*g));
            if (cl->cur >= at) cl->cur++;
            cl->ngens++;
            g = &cl->gens[at];
            *g = (gen_t){.id = id, .first_ms = first, .last_ms = last};
            g->slot = slot_take(cl, id);
            if (g->slot < 0) log_warn(LOG, "dedupe: no filter for generation %lld (%d in memory)",
                                      (long long)id, MAX_SLOTS);
            r = last ? gen_load_filter(c, cl, g) : gen_scan(c, cl, g, true);
        } else if (g->last_ms == 0 && last != 0) {
            /* sealed by another connection: its filter is the exact one */
            g->last_ms = last;
            if (g->foreign) r = gen_load_filter(c, cl, g);
        }
        g->first_ms = first;
        g->last_ms = last;
        g->seen = true;
        if (last == 0) cur_id = id; /* the newest unsealed one is current */
    }
    sqlite3_finalize(st);
    if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "dedupe: reading the generations");
    if (r != HR_OK) {
        claims_reset(cl);
        return r;
    }
    for (int i = cl->ngens - 1; i >= 0; i--)
        if (!cl->gens[i].seen) gen_forget(cl, i);
    int cur = -1;
    for (int i = 0; i < cl->ngens; i++)
        if (cl->gens[i].id == cur_id) cur = i;
    if (cur != cl->cur) {
        cur_stmts_drop(cl);
        cl->cur = cur;
        /* a generation added above was read with its index; one we knew
         * as sealed cannot become current again */
    } else if (cur >= 0 && changed) {
        r = cur_catch_up(c, cl, &cl->gens[cur]);
        if (r != HR_OK) claims_reset(cl);
    }
    return r;
}

/* ---- changes to the catalogue (each in a transaction of its own) ---- */

static hr_t exec_fmt(conn_t *c, const char *fmt, int64_t id, const char *what)
{
    char *sql = sqlite3_mprintf(fmt, (long long)id, (long long)id, (long long)id);
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    sqlite3_free(sql);
    if (rc == SQLITE_OK) return HR_OK;
    log_error(LOG, "dedupe: %s: %s", what, msg ? msg : "?");
    sqlite3_free(msg);
    return sq_err(c, rc, what);
}

/* Creates generation id (opened at first_ms). In the caller's transaction. */
static hr_t gen_create(conn_t *c, int64_t id, int64_t first_ms)
{
    hr_t r = exec_fmt(c, "CREATE TABLE claims_%lld (seq INTEGER PRIMARY KEY, h INTEGER NOT NULL,"
                         " event_id TEXT NOT NULL, position TEXT NOT NULL,"
                         " first_seen_ms INTEGER NOT NULL)",
                      id, "creating a generation");
    if (r != HR_OK) return r;
    sqlite3_stmt *st = prep(c, "INSERT INTO claim_gens (gen, first_ms, last_ms, claims)"
                               " VALUES (%lld, ?1, 0, 0)", id);
    if (!st) return HR_ERR;
    sqlite3_bind_int64(st, 1, first_ms);
    r = sq_step_done(c, st, "creating a generation");
    sqlite3_finalize(st);
    return r;
}

/* Writes generation g's hash index, claims_<gen>_by_h, from cl->tab (which
 * indexes g's rows): its (h, seq) pairs sorted by h, CHUNK_PAIRS to a row
 * keyed by the chunk's first h (the pairs of one h never split across two
 * rows, so the chunk of h is the row with the largest key <= h). In the
 * caller's transaction. The pairs of rows gone since (a release, a
 * rolled-back batch) cost a look at a row, never a wrong answer.
 *
 * Why not an SQLite index on h: CREATE INDEX at the seal reads the table
 * back and sorts it, 50-115 ms of CPU per 65,536 claims (herald bench
 * claims, load 5-9), inside fan-out's claiming transaction and under
 * ev.mu; built by another connection it holds the database's one write
 * lock as long (measured: claim commits meanwhile waited up to 147 ms);
 * and kept from the generation's creation, each claim dirties a random
 * page of it (2 KB written per claim, 4.5 -> 9.9 CPU-us per claim in
 * batches of 256, 21 in batches of 16). The pairs are in memory already:
 * sorting them takes ~3 ms, writing the rows ~4. */
static hr_t gen_write_chunks(conn_t *c, sq_claims_t *cl, gen_t *g)
{
    hr_t r = exec_fmt(c, "CREATE TABLE claims_%lld_by_h (lo INTEGER PRIMARY KEY, pairs BLOB NOT NULL)",
                      g->id, "indexing a generation");
    if (r != HR_OK) return r;
    sqlite3_stmt *st = prep(c, "INSERT INTO claims_%lld_by_h (lo, pairs) VALUES (?1, ?2)", g->id);
    if (!st) return HR_ERR;
    cur_ent_t *p = xmalloc((size_t)(cl->tab_n > 0 ? cl->tab_n : 1) * sizeof(*p));
    int64_t n = 0;
    for (int64_t i = 0; i < cl->tab_cap && n < cl->tab_n; i++)
        if (cl->tab[i].seq) p[n++] = cl->tab[i];
    pairs_sort(p, n);
    for (int64_t i = 0, j; i < n && r == HR_OK; i = j) {
        j = i + CHUNK_PAIRS < n ? i + CHUNK_PAIRS : n;
        while (j < n && p[j].h == p[j - 1].h) j++;
        sqlite3_bind_int64(st, 1, (int64_t)p[i].h);
        sqlite3_bind_blob64(st, 2, p + i, (sqlite3_uint64)(j - i) * sizeof(*p), SQLITE_STATIC);
        r = sq_step_done(c, st, "indexing a generation");
    }
    sqlite3_finalize(st);
    free(p);
    if (r == HR_OK) g->layout = LAYOUT_CHUNKS;
    return r;
}

/* Seals generation g at last_ms with its filter and its hash index; g is
 * the generation cl->tab indexes. In the caller's transaction. */
static hr_t gen_seal(conn_t *c, sq_claims_t *cl, gen_t *g, int64_t last_ms)
{
    hr_t r = HR_OK;
    if (g->foreign) r = gen_scan(c, cl, g, true); /* others wrote to it too */
    if (r == HR_OK) r = gen_write_chunks(c, cl, g);
    if (r != HR_OK) return r;
    log_debug(LOG, "dedupe: sealing generation %lld (%lld claims)", (long long)g->id, (long long)g->claims);
    sqlite3_stmt *st = prep(c, "UPDATE claim_gens SET last_ms = ?1, claims = ?2, filter = ?3"
                               " WHERE gen = %lld", g->id);
    if (!st) return HR_ERR;
    unsigned char *blob = NULL;
    sqlite3_bind_int64(st, 1, last_ms);
    sqlite3_bind_int64(st, 2, g->claims);
    if (g->slot >= 0) {
        blob = xmalloc((size_t)cl->blocks * CELL * 8);
        for (int64_t k = 0; k < cl->blocks; k++)
            for (int j = 0; j < CELL; j++) memcpy(blob + (k * CELL + j) * 8, filter_word(cl, k, g->slot, j), 8);
        sqlite3_bind_blob64(st, 3, blob, (sqlite3_uint64)cl->blocks * CELL * 8, SQLITE_STATIC);
    }
    r = sq_step_done(c, st, "sealing a generation");
    sqlite3_finalize(st);
    free(blob);
    return r;
}

static hr_t gen_drop_sql(conn_t *c, int64_t id)
{
    log_debug(LOG, "dedupe: dropping generation %lld", (long long)id);
    return exec_fmt(c, "DROP TABLE IF EXISTS claims_%lld; DROP TABLE IF EXISTS claims_%lld_by_h;"
                       " DELETE FROM claim_gens WHERE gen = %lld",
                    id, "dropping a generation");
}

/* Drops sealed generations sealed before before_ms; early: at most the
 * oldest one, to free a filter slot. Each in its own transaction. */
static hr_t claims_drop(conn_t *c, sq_claims_t *cl, int64_t before_ms, bool early)
{
    hr_t r = HR_OK;
    for (;;) {
        int64_t id = 0;
        for (int i = 0; i < cl->ngens && !id; i++)
            if (i != cl->cur && cl->gens[i].last_ms > 0 && (early || cl->gens[i].last_ms < before_ms))
                id = cl->gens[i].id;
        if (!id) return HR_OK;
        gen_t *g = gen_find(cl, id);
        stmts_drop(cl);
        if ((r = sq_tx_begin(c, true)) != HR_OK) return r;
        r = gen_drop_sql(c, id);
        r = sq_tx_end(c, r);
        stmts_drop(cl);
        if (r != HR_OK) {
            claims_reset(cl);
            return r;
        }
        int i = (int)(g - cl->gens);
        gen_forget(cl, i);
        if (early) {
            cl->early_drops++;
            log_warn(LOG, "dedupe: generation %lld dropped before the window passed: more than %d"
                     " generations of %lld claims in dedupe.window_ms (%lld dropped early so far)",
                     (long long)id, MAX_SLOTS, (long long)cl->gen_claims, (long long)cl->early_drops);
            return HR_OK;
        }
    }
}

/* Before a batch: seals the current generation when full or old (opening
 * the next), drops what the window has passed, makes sure a current
 * generation exists. Cheap when nothing is due. */
static hr_t claims_maintain(conn_t *c, sq_claims_t *cl, int64_t now)
{
    hr_t r = HR_OK;
    int64_t cut = now - cl->window_ms;
    bool expired = false;
    for (int i = 0; i < cl->ngens && !expired; i++)
        expired = i != cl->cur && cl->gens[i].last_ms > 0 && cl->gens[i].last_ms < cut;
    if (expired && (r = claims_drop(c, cl, cut, false)) != HR_OK) return r;
    gen_t *g = cl->cur >= 0 ? &cl->gens[cl->cur] : NULL;
    bool due = !g || g->claims >= cl->gen_claims ||
               (g->claims > 0 && g->first_ms < now - cl->window_ms / TIME_SEAL_PARTS);
    if (!due) return HR_OK;
    if (cl->ngens >= MAX_SLOTS && (r = claims_drop(c, cl, cut, true)) != HR_OK) return r;
    stmts_drop(cl);
    if ((r = sq_tx_begin(c, true)) != HR_OK) return r;
    r = claims_sync(c, cl, false);
    g = cl->cur >= 0 ? &cl->gens[cl->cur] : NULL;
    int64_t next = cl->ngens ? cl->gens[cl->ngens - 1].id + 1 : 1;
    if (r == HR_OK && g) r = gen_seal(c, cl, g, now > g->first_ms ? now : g->first_ms + 1);
    if (r == HR_OK) r = gen_create(c, next, now);
    r = sq_tx_end(c, r);
    stmts_drop(cl);
    if (r != HR_OK) {
        claims_reset(cl);
        return r;
    }
    /* our own commit leaves data_version as it is: read the catalogue */
    if ((r = sq_tx_begin(c, false)) != HR_OK) return r;
    r = claims_sync(c, cl, true);
    return sq_tx_end(c, r);
}

/* Turns the table of a store from before (events) into sealed
 * generations, oldest first, leaving out claims older than the window.
 * One transaction. */
static hr_t claims_migrate(conn_t *c, sq_claims_t *cl, int64_t now)
{
    sqlite3_stmt *st = NULL, *ins = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_err(c, sqlite3_errcode(c->db), "dedupe: looking for the old table");
    bool old = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    st = NULL;
    if (!old) return HR_OK;
    hr_t r = sq_tx_begin(c, true);
    if (r != HR_OK) return r;
    if ((r = claims_sync(c, cl, true)) != HR_OK) goto out;
    int64_t next = cl->ngens ? cl->gens[cl->ngens - 1].id + 1 : 1, moved = 0, last = 0;
    gen_t g = {.slot = -1};
    if (sqlite3_prepare_v2(c->db, "SELECT event_id, position, first_seen_ms FROM events"
                                  " WHERE first_seen_ms >= ?1 ORDER BY first_seen_ms",
                           -1, &st, NULL) != SQLITE_OK) {
        r = sq_err(c, sqlite3_errcode(c->db), "dedupe: reading the old table");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now - cl->window_ms);
    int rc = SQLITE_DONE;
    while (r == HR_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ms = sqlite3_column_int64(st, 2);
        if (!ins) { /* a new generation opened at its first claim */
            g = (gen_t){.id = next++, .claims = 0};
            g.slot = slot_take(cl, g.id);
            tab_reset(cl, cl->gen_claims * 2); /* its hash index, for the seal */
            if ((r = gen_create(c, g.id, ms)) != HR_OK) break;
            if (!(ins = prep(c, "INSERT INTO claims_%lld (event_id, position, first_seen_ms, h)"
                                " VALUES (?1, ?2, ?3, ?4)", g.id))) {
                r = HR_ERR;
                break;
            }
        }
        const char *id = (const char *)sqlite3_column_text(st, 0);
        uint64_t h = claim_hash(id ? id : "");
        sqlite3_bind_value(ins, 1, sqlite3_column_value(st, 0));
        sqlite3_bind_value(ins, 2, sqlite3_column_value(st, 1));
        sqlite3_bind_int64(ins, 3, ms);
        sqlite3_bind_int64(ins, 4, (int64_t)h);
        if ((r = sq_step_done(c, ins, "dedupe: moving a claim")) != HR_OK) break;
        tab_put(cl, h, sqlite3_last_insert_rowid(c->db));
        filter_add(cl, g.slot, h);
        g.claims++;
        moved++;
        last = ms;
        if (g.claims >= cl->gen_claims) {
            r = gen_seal(c, cl, &g, last + 1);
            if (g.slot >= 0) cl->slot_gen[g.slot] = 0; /* the sync below takes it again */
            sqlite3_finalize(ins);
            ins = NULL;
        }
    }
    if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "dedupe: reading the old table");
    if (r == HR_OK && ins) r = gen_seal(c, cl, &g, last + 1);
    if (ins && g.slot >= 0) cl->slot_gen[g.slot] = 0;
    sqlite3_finalize(ins);
    sqlite3_finalize(st);
    st = NULL;
    stmts_drop(cl);
    if (r == HR_OK) r = exec_fmt(c, "DROP TABLE events", 0, "dropping the old table");
    if (r == HR_OK) log_info(LOG, "dedupe: %lld claim(s) of the old table moved into generations",
                             (long long)moved);
out:
    sqlite3_finalize(st);
    r = sq_tx_end(c, r);
    stmts_drop(cl);
    claims_reset(cl); /* read again, with the generations made here */
    return r;
}

/* ---- open / close ---- */

hr_t sq_claims_open(sq_store_t *q, int64_t window_ms, int gen_claims)
{
    conn_t *c = &q->ev;
    sq_claims_t *cl = xcalloc(1, sizeof(*cl));
    q->claims = cl;
    cl->window_ms = window_ms > 0 ? window_ms : DEFAULT_WINDOW_MS;
    cl->gen_claims = gen_claims > 0 ? gen_claims : DEFAULT_GEN_CLAIMS;
    cl->cur = -1;
    cl->data_version = -1;
    cl->blocks = 64;
    while (cl->blocks * 64 * CELL < cl->gen_claims * FILTER_BITS_PER_CLAIM) cl->blocks *= 2;
    cl->slots = 4; /* 1 MiB to start with */
    cl->words = bigmem_alloc((size_t)cl->blocks * (size_t)cl->slots * CELL * sizeof(*cl->words),
                             &cl->words_map);
    cl->slot_gen = xcalloc((size_t)cl->slots, sizeof(*cl->slot_gen));
    tab_reset(cl, cl->gen_claims * 2);
    int64_t now = hclock_now_ms();
    pthread_mutex_lock(&c->mu);
    hr_t r = claims_migrate(c, cl, now);
    if (r == HR_OK) r = sq_tx_begin(c, false);
    if (r == HR_OK) r = sq_tx_end(c, claims_sync(c, cl, true));
    if (r == HR_OK) r = claims_maintain(c, cl, now);
    pthread_mutex_unlock(&c->mu);
    return r;
}

void sq_claims_close(sq_store_t *q)
{
    sq_claims_t *cl = q->claims;
    if (!cl) return;
    claims_reset(cl);
    sqlite3_finalize(cl->dv);
    free(cl->gens);
    bigmem_free(cl->words, cl->words_map);
    free(cl->slot_gen);
    bigmem_free(cl->tab, cl->tab_map);
    free(cl);
    q->claims = NULL;
}

/* ---- claims ---- */

/* Compares the row st stands on (event_id, position) with the claim. */
static void row_match(sqlite3_stmt *st, const char *id, const char *position, bool *found,
                      bool *same)
{
    const char *rid = (const char *)sqlite3_column_text(st, 0);
    if (!rid || strcmp(rid, id) != 0) return; /* another id of the same hash */
    const char *pos = (const char *)sqlite3_column_text(st, 1);
    *found = true;
    *same = pos && strcmp(pos, position) == 0;
}

/* Looks id up among the rows of hash h that st (bound to h) returns:
 * event_id, position, seq. *seq: the row found. */
static hr_t rows_get(conn_t *c, sqlite3_stmt *st, const char *id, const char *position, bool *found,
                     bool *same, int64_t *seq)
{
    int rc = SQLITE_DONE;
    while (!*found && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_match(st, id, position, found, same);
        if (*found) *seq = sqlite3_column_int64(st, 2);
    }
    if (!*found && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return sq_err(c, rc, "dedupe: claim lookup");
    }
    sqlite3_reset(st);
    return HR_OK;
}

/* Which hash index sealed generation g has. */
static hr_t gen_layout(conn_t *c, gen_t *g)
{
    sqlite3_stmt *st = prep(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                               " AND name = 'claims_%lld_by_h'", g->id);
    if (!st) return HR_ERR;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) g->layout = sqlite3_column_int(st, 0) ? LAYOUT_CHUNKS : LAYOUT_INDEX;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? HR_OK : sq_err(c, rc, "dedupe: a generation's layout");
}

/* Looks id up in sealed generation g of LAYOUT_INDEX by the SQL index on
 * h; also the way round a damaged chunk (a scan of the table then). */
static hr_t index_get(conn_t *c, gen_t *g, sqlite3_stmt **st, uint64_t h, const char *id,
                      const char *position, bool *found, bool *same, int64_t *seq)
{
    if (!*st && !(*st = prep(c, "SELECT event_id, position, seq FROM claims_%lld WHERE h = ?1", g->id)))
        return HR_ERR;
    sqlite3_bind_int64(*st, 1, (int64_t)h);
    return rows_get(c, *st, id, position, found, same, seq);
}

/* Looks id up in sealed generation g of LAYOUT_CHUNKS: the chunk of h,
 * the pairs of h in it (a binary search), their rows. */
static hr_t chunk_get(conn_t *c, gen_t *g, uint64_t h, const char *id, const char *position,
                      bool *found, bool *same, int64_t *seq)
{
    if (!g->chunk && !(g->chunk = prep(c, "SELECT pairs FROM claims_%lld_by_h WHERE lo <= ?1"
                                          " ORDER BY lo DESC LIMIT 1", g->id)))
        return HR_ERR;
    if (!g->get && !(g->get = prep(c, "SELECT event_id, position, seq FROM claims_%lld WHERE seq = ?1", g->id)))
        return HR_ERR;
    sqlite3_bind_int64(g->chunk, 1, (int64_t)h);
    int rc = sqlite3_step(g->chunk);
    hr_t r = HR_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(g->chunk, 0);
        size_t bytes = (size_t)sqlite3_column_bytes(g->chunk, 0), n = bytes / sizeof(cur_ent_t);
        if (bytes % sizeof(cur_ent_t) || !b) {
            log_warn(LOG, "dedupe: generation %lld: a damaged chunk of its index (%zu bytes):"
                     " looking in its table", (long long)g->id, bytes);
            sqlite3_reset(g->chunk);
            sqlite3_stmt *st = NULL;
            r = index_get(c, g, &st, h, id, position, found, same, seq);
            sqlite3_finalize(st);
            return r;
        }
        size_t lo = 0, hi = n; /* the first pair whose h >= h (signed order) */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if ((int64_t)chunk_pair(b, mid).h < (int64_t)h) lo = mid + 1;
            else hi = mid;
        }
        for (size_t k = lo; k < n && !*found && r == HR_OK; k++) {
            cur_ent_t e = chunk_pair(b, k);
            if (e.h != h) break;
            sqlite3_bind_int64(g->get, 1, e.seq);
            r = rows_get(c, g->get, id, position, found, same, seq);
        }
    } else if (rc != SQLITE_DONE) {
        r = sq_err(c, rc, "dedupe: claim lookup");
    }
    sqlite3_reset(g->chunk);
    return r;
}

/* Looks id up in sealed generation g (by its hash index). *seq: the row
 * found. */
static hr_t gen_get(conn_t *c, gen_t *g, uint64_t h, const char *id, const char *position,
                    bool *found, bool *same, int64_t *seq)
{
    hr_t r = g->layout ? HR_OK : gen_layout(c, g);
    if (r != HR_OK) return r;
    return g->layout == LAYOUT_CHUNKS ? chunk_get(c, g, h, id, position, found, same, seq)
                                      : index_get(c, g, &g->get, h, id, position, found, same, seq);
}

/* Looks id up in the current generation: its index in memory, then the
 * rows it names. *seq: the row found. */
static hr_t cur_get(conn_t *c, sq_claims_t *cl, gen_t *g, uint64_t h, const char *id,
                    const char *position, bool *found, bool *same, int64_t *seq)
{
    uint64_t mask = (uint64_t)cl->tab_cap - 1;
    for (uint64_t i = h & mask; cl->tab[i].seq && !*found; i = (i + 1) & mask) {
        if (cl->tab[i].h != h) continue;
        int64_t k = cl->tab[i].seq - cl->pend_seq;
        if (cl->pend_seq && k >= 0) {
            /* a claim of this batch not inserted yet; beyond them, a seq
             * a rolled-back batch had taken (no row: not this id) */
            if (k < cl->npend && strcmp(cl->pend[k].id, id) == 0) {
                *found = true;
                *same = strcmp(cl->pend[k].position, position) == 0;
                if (seq) *seq = cl->tab[i].seq;
            }
            continue;
        }
        if (!cl->row &&
            !(cl->row = prep(c, "SELECT event_id, position FROM claims_%lld WHERE seq = ?1", g->id)))
            return HR_ERR;
        sqlite3_bind_int64(cl->row, 1, cl->tab[i].seq);
        int rc = sqlite3_step(cl->row);
        if (rc == SQLITE_ROW) row_match(cl->row, id, position, found, same);
        sqlite3_reset(cl->row);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(c, rc, "dedupe: claim lookup");
        if (*found && seq) *seq = cl->tab[i].seq;
    }
    return HR_OK;
}

/* The hashes of a group of n ids into hs, with a prefetch of what their
 * claims read first: the current generation's index slot and the filter
 * row. Both are far larger than the caches (2 MiB and 1-4 MiB) and were a
 * cache and TLB miss per claim, one after another; this way a group's
 * misses overlap. A prefetch is only a hint (it never faults), so the
 * index growing meanwhile does no harm. */
static void claims_prefetch(sq_claims_t *cl, const char *const *ids, int n, uint64_t *hs)
{
    uint64_t mask = (uint64_t)cl->tab_cap - 1;
    size_t row_bytes = (size_t)cl->slots * CELL * sizeof(uint64_t);
    for (int k = 0; k < n; k++) {
        hs[k] = claim_hash(ids[k]);
        __builtin_prefetch(&cl->tab[hs[k] & mask]);
        const char *row = (const char *)filter_row(cl, hs[k]);
        for (size_t b = 0; b < row_bytes && b < 4 * 64; b += 64) __builtin_prefetch(row + b);
    }
}

/* Inserts the batch's pending claims into the current generation: one
 * statement when they are CLAIM_ROWS, else one each. OR FAIL: with the
 * default ABORT a statement of several rows keeps a statement journal to
 * undo itself; a failure rolls the batch's transaction back anyway. */
static hr_t pend_flush(conn_t *c, sq_claims_t *cl, int64_t now)
{
    int64_t gen = cl->gens[cl->cur].id;
    hr_t r = HR_OK;
    if (cl->npend == CLAIM_ROWS) {
        if (!cl->ins_n) {
            char sql[64 + CLAIM_ROWS * 16];
            int len = snprintf(sql, sizeof(sql),
                               "INSERT OR FAIL INTO claims_%%lld (seq, h, event_id, position, first_seen_ms) VALUES");
            for (int k = 0; k < CLAIM_ROWS; k++)
                len += snprintf(sql + len, sizeof(sql) - (size_t)len, "%s(?,?,?,?,?)", k ? "," : " ");
            if (!(cl->ins_n = prep(c, sql, gen))) return HR_ERR;
        }
        for (int k = 0; k < CLAIM_ROWS; k++) {
            sqlite3_bind_int64(cl->ins_n, 5 * k + 1, cl->pend_seq + k);
            sqlite3_bind_int64(cl->ins_n, 5 * k + 2, (int64_t)cl->pend[k].h);
            bind_str(cl->ins_n, 5 * k + 3, cl->pend[k].id);
            bind_str(cl->ins_n, 5 * k + 4, cl->pend[k].position);
            sqlite3_bind_int64(cl->ins_n, 5 * k + 5, now);
        }
        r = sq_step_done(c, cl->ins_n, "dedupe: claim");
    } else {
        if (!cl->ins && !(cl->ins = prep(c, "INSERT OR FAIL INTO claims_%lld (seq, h, event_id, position,"
                                            " first_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)", gen)))
            return HR_ERR;
        for (int k = 0; k < cl->npend && r == HR_OK; k++) {
            sqlite3_bind_int64(cl->ins, 1, cl->pend_seq + k);
            sqlite3_bind_int64(cl->ins, 2, (int64_t)cl->pend[k].h);
            bind_str(cl->ins, 3, cl->pend[k].id);
            bind_str(cl->ins, 4, cl->pend[k].position);
            sqlite3_bind_int64(cl->ins, 5, now);
            r = sq_step_done(c, cl->ins, "dedupe: claim");
        }
    }
    if (r == HR_OK) {
        cl->pend_seq += cl->npend;
        cl->npend = 0;
    }
    return r;
}

/* The seq the current generation's next row takes: above its largest row
 * (in the transaction: what every process committed) and every seq this
 * process saw. */
static hr_t next_seq(conn_t *c, sq_claims_t *cl, int64_t *out)
{
    if (!cl->top && !(cl->top = prep(c, "SELECT max(seq) FROM claims_%lld", cl->gens[cl->cur].id)))
        return HR_ERR;
    int rc = sqlite3_step(cl->top);
    int64_t top = rc == SQLITE_ROW ? sqlite3_column_int64(cl->top, 0) : 0;
    sqlite3_reset(cl->top);
    if (rc != SQLITE_ROW) return sq_err(c, rc, "dedupe: the largest claim");
    *out = (top > cl->max_seq ? top : cl->max_seq) + 1;
    return HR_OK;
}

/* One claim of id, of hash h (c->mu held, in the batch's transaction; a
 * new claim waits in cl->pend for its INSERT, pend_flush). */
static hr_t claim_one(conn_t *c, sq_claims_t *cl, const char *id, uint64_t h, const char *position,
                      int64_t now, claim_t *out)
{
    uint64_t m[CELL];
    filter_mask(h, m);
    const uint64_t *row = filter_row(cl, h);
    gen_t *cur = &cl->gens[cl->cur];
    bool found = false, same = false;
    int64_t seq = 0;
    hr_t r = cur_get(c, cl, cur, h, id, position, &found, &same, NULL);
    /* sealed generations whose filter has the id (or that have none) */
    for (int i = cl->ngens - 1; i >= 0 && r == HR_OK && !found; i--) {
        gen_t *g = &cl->gens[i];
        if (i == cl->cur || (g->slot >= 0 && !filter_has(row, g->slot, m))) continue;
        r = gen_get(c, g, h, id, position, &found, &same, &seq);
    }
    if (r != HR_OK) return r;
    if (found) {
        *out = same ? CLAIM_SAME : CLAIM_DUP;
        return HR_OK;
    }
    if (cl->npend == CLAIM_ROWS && (r = pend_flush(c, cl, now)) != HR_OK) return r;
    int64_t seq_new = cl->pend_seq + cl->npend;
    cl->pend[cl->npend++] = (pend_t){id, position, h};
    tab_put(cl, h, seq_new);
    filter_add(cl, cur->slot, h);
    cur->claims++;
    *out = CLAIM_NEW;
    return HR_OK;
}

/* One write transaction for the whole batch: fan-out claims every event of
 * a polled batch at once instead of committing once per event. */
hr_t sq_event_claim_batch(store_t *s, const char *const *ids, const char *const *positions,
                          int n, claim_t *out)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->ev;
    sq_claims_t *cl = q->claims;
    int64_t now = hclock_now_ms();
    pthread_mutex_lock(&c->mu);
    hr_t r = claims_maintain(c, cl, now);
    if (r == HR_OK) r = sq_tx_begin(c, true);
    if (r == HR_OK) {
        r = claims_sync(c, cl, false);
        if (r == HR_OK && cl->cur < 0) {
            log_error(LOG, "dedupe: no current generation");
            r = HR_ERR;
        }
        int64_t before = r == HR_OK ? cl->gens[cl->cur].claims : 0;
        int64_t cur_id = r == HR_OK ? cl->gens[cl->cur].id : 0, max_seq = cl->max_seq;
        if (r == HR_OK) r = next_seq(c, cl, &cl->pend_seq);
        cl->npend = 0;
        uint64_t hs[CLAIM_GROUP];
        for (int i = 0; i < n && r == HR_OK; i++) {
            if (i % CLAIM_GROUP == 0) claims_prefetch(cl, ids + i, n - i < CLAIM_GROUP ? n - i : CLAIM_GROUP, hs);
            r = claim_one(c, cl, ids[i], hs[i % CLAIM_GROUP], positions[i] ? positions[i] : "", now, &out[i]);
        }
        if (r == HR_OK && cl->npend) r = pend_flush(c, cl, now);
        cl->npend = 0;
        cl->pend_seq = 0; /* no claims pending: lookups read the rows */
        r = sq_tx_end(c, r);
        gen_t *g = cur_id ? gen_find(cl, cur_id) : NULL;
        if (r != HR_OK && g && g == &cl->gens[cl->cur]) {
            /* the filter and the index keep what the batch added (every
             * hit is checked against a row: harmless), but the seqs it
             * took are free again, and another process may take them: the
             * catch-up must read from the last one committed */
            g->claims = before;
            cl->max_seq = max_seq;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out)
{
    const char *ids[1] = {event_id}, *pos[1] = {position};
    return sq_event_claim_batch(s, ids, pos, 1, out);
}

hr_t sq_event_release(store_t *s, const char *event_id)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->ev;
    sq_claims_t *cl = q->claims;
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, true);
    if (r == HR_OK) r = claims_sync(c, cl, false);
    uint64_t h = claim_hash(event_id), m[CELL];
    filter_mask(h, m);
    for (int i = 0; i < cl->ngens && r == HR_OK; i++) {
        gen_t *g = &cl->gens[i];
        if (i != cl->cur && g->slot >= 0 && !filter_has(filter_row(cl, h), g->slot, m)) continue;
        int64_t seq = 0;
        bool found = false, same = false;
        r = i == cl->cur ? cur_get(c, cl, g, h, event_id, "", &found, &same, &seq)
                         : gen_get(c, g, h, event_id, "", &found, &same, &seq);
        if (r != HR_OK) break;
        if (!found) continue;
        /* the row the hash index named: sealed, deleted (its pair stays in
         * the chunk, naming no row); current, emptied rather than deleted,
         * so that its seq is never taken again (another process reads the
         * rows appended after the last seq it knows; a claim's id is never
         * empty) */
        sqlite3_stmt *st = prep(c, i == cl->cur ? "UPDATE claims_%lld SET event_id = '', h = 0"
                                                  " WHERE seq = ?1 AND event_id = ?2"
                                                : "DELETE FROM claims_%lld WHERE seq = ?1 AND event_id = ?2",
                                g->id);
        if (!st) {
            r = HR_ERR;
            break;
        }
        sqlite3_bind_int64(st, 1, seq);
        bind_str(st, 2, event_id);
        r = sq_step_done(c, st, "dedupe: release");
        sqlite3_finalize(st);
    }
    r = sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_claims_purge(store_t *s, int64_t before_ms)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->ev;
    pthread_mutex_lock(&c->mu);
    hr_t r = sq_tx_begin(c, false);
    if (r == HR_OK) r = sq_tx_end(c, claims_sync(c, q->claims, false));
    if (r == HR_OK) r = claims_drop(c, q->claims, before_ms, false);
    pthread_mutex_unlock(&c->mu);
    return r;
}
