/*
 * store_sqlite_notif.c - the SQLite backend's ops for the notification
 * records: the status sink's appends to the status log (the hot path),
 * reads, listing, the "already sent" checks, the per-user runs and the
 * purge (the dedupe claims are store_sqlite_claims.c's)
 * (store_sqlite_int.h lists the files of the backend; the DESIGN note is
 * atop store_sqlite.c).
 *
 * Arguments arrive validated by store.c (store_int.h). Threads: any.
 */
#include "store/store_sqlite_int.h"

#include "core/log.h"
#include "core/varint.h"
#include "model/lifecycle.h"
#include "model/trace.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define LOG SQ_LOG
#define YIELD_SPINS 1000         /* sched_yield()s at most while letting them in */

/* ---- the status log's row record (schema version 8) ----
 *
 * A row's content is one blob, decoded on read: fewer columns to bind and
 * store than the ~14 of version 7 and no column headers for the absent
 * ones. Layout (version 1), integers as LEB128 varints, signed ones
 * zigzag-coded:
 *
 *   u8 version (1) | u8 flags | varint attempt | zvarint at_ms
 *   | [LR_MSGID] str channel_msg_id | [LR_ERROR] str error
 *   | [LR_META] str metadata | [LR_TRACE] str traceparent
 *   | [LR_CONTENT] zvarint (at_ms - created_at) | u8 channel
 *                  | str event_id, user_id, category, title, body, address
 *
 * str = varint length + bytes. An optional string is absent when empty
 * (it reads back as NULL, as the NULL columns of version 7 did); the
 * content's strings are always there (empty reads back as ""). This is
 * the store's own format, not the bus record's (model/status_rec.c), so
 * that either can change without the other.
 */
enum { LR_MSGID = 1, LR_ERROR = 2, LR_META = 4, LR_TRACE = 8, LR_CONTENT = 16, LR_ALL = 31 };
#define LR_VERSION 1

typedef struct log_rec {
    int attempt;
    int64_t at_ms;
    hstr_t msgid, error, meta, trace;
    bool content;
    channel_t channel;
    int64_t created;
    hstr_t event_id, user_id, category, title, body, address;
} log_rec_t;

static bool lr_str_get(const unsigned char *p, size_t len, size_t *off, hstr_t *s)
{
    return varint_span_get(p, len, off, &s->p, &s->n);
}

static size_t lr_str_put(unsigned char *p, hstr_t s) { return varint_span_put(p, s.p, s.n); }

static size_t lr_size_max(const log_rec_t *r)
{
    size_t n = 2 + 4 * VARINT_MAX + 1;
    n += r->msgid.n + r->error.n + r->meta.n + r->trace.n + 4 * VARINT_MAX;
    if (r->content)
        n += r->event_id.n + r->user_id.n + r->category.n + r->title.n + r->body.n + r->address.n +
             6 * VARINT_MAX;
    return n;
}

/* Writes r into out (lr_size_max bytes); answers the length. */
static size_t lr_encode(const log_rec_t *r, unsigned char *out)
{
    unsigned flags = (r->msgid.n ? LR_MSGID : 0) | (r->error.n ? LR_ERROR : 0) |
                     (r->meta.n ? LR_META : 0) | (r->trace.n ? LR_TRACE : 0) |
                     (r->content ? LR_CONTENT : 0);
    size_t i = 0;
    out[i++] = LR_VERSION;
    out[i++] = (unsigned char)flags;
    i += varint_put(out + i, (uint64_t)(r->attempt < 0 ? 0 : r->attempt));
    i += varint_put(out + i, zigzag(r->at_ms));
    if (flags & LR_MSGID) i += lr_str_put(out + i, r->msgid);
    if (flags & LR_ERROR) i += lr_str_put(out + i, r->error);
    if (flags & LR_META) i += lr_str_put(out + i, r->meta);
    if (flags & LR_TRACE) i += lr_str_put(out + i, r->trace);
    if (flags & LR_CONTENT) {
        i += varint_put(out + i, zigzag(r->at_ms - r->created));
        out[i++] = (unsigned char)r->channel;
        i += lr_str_put(out + i, r->event_id);
        i += lr_str_put(out + i, r->user_id);
        i += lr_str_put(out + i, r->category);
        i += lr_str_put(out + i, r->title);
        i += lr_str_put(out + i, r->body);
        i += lr_str_put(out + i, r->address);
    }
    return i;
}

/* Reads a row record; its strings point into p. false when malformed. */
static bool lr_decode(const void *data, size_t len, log_rec_t *r)
{
    const unsigned char *p = data;
    memset(r, 0, sizeof(*r));
    if (!p || len < 2 || p[0] != LR_VERSION || (p[1] & ~LR_ALL)) return false;
    unsigned flags = p[1];
    size_t off = 2;
    uint64_t v;
    if (!varint_get(p, len, &off, &v) || v > INT_MAX) return false;
    r->attempt = (int)v;
    if (!varint_get(p, len, &off, &v)) return false;
    r->at_ms = unzigzag(v);
    if ((flags & LR_MSGID) && !lr_str_get(p, len, &off, &r->msgid)) return false;
    if ((flags & LR_ERROR) && !lr_str_get(p, len, &off, &r->error)) return false;
    if ((flags & LR_META) && !lr_str_get(p, len, &off, &r->meta)) return false;
    if ((flags & LR_TRACE) && !lr_str_get(p, len, &off, &r->trace)) return false;
    if (flags & LR_CONTENT) {
        r->content = true;
        if (!varint_get(p, len, &off, &v)) return false;
        r->created = r->at_ms - unzigzag(v);
        if (off >= len || p[off] >= CH__COUNT) return false;
        r->channel = (channel_t)p[off++];
        hstr_t *strs[] = {&r->event_id, &r->user_id, &r->category, &r->title, &r->body, &r->address};
        for (size_t k = 0; k < ARRAY_LEN(strs); k++)
            if (!lr_str_get(p, len, &off, strs[k])) return false;
    }
    return off == len;
}

/* A copy of s; NULL when absent (optional strings). */
static char *lr_dup_opt(hstr_t s) { return s.n ? xstrndup(s.p, s.n) : NULL; }
static char *lr_dup(hstr_t s) { return xstrndup(s.p ? s.p : "", s.n); }

static hstr_t lr_val(sqlite3_value *v)
{
    const unsigned char *t = sqlite3_value_text(v);
    return t ? (hstr_t){(const char *)t, (size_t)sqlite3_value_bytes(v)} : (hstr_t){NULL, 0};
}

/* herald_log_rec(attempt, at_ms, channel_msg_id, error, metadata,
 * traceparent, event_id, user_id, channel, category, title, body, address,
 * created_at): a version 7 row as a row record, the content when event_id
 * is not NULL (the migration to version 8). */
static void lr_sql_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    if (argc != 14) {
        sqlite3_result_error(cx, "herald_log_rec: 14 arguments", -1);
        return;
    }
    log_rec_t r = {
        .attempt = sqlite3_value_int(argv[0]), .at_ms = sqlite3_value_int64(argv[1]),
        .content = sqlite3_value_type(argv[6]) != SQLITE_NULL,
    };
    r.msgid = lr_val(argv[2]);
    r.error = lr_val(argv[3]);
    r.meta = lr_val(argv[4]);
    r.trace = lr_val(argv[5]);
    if (r.content) {
        int ch = sqlite3_value_int(argv[8]);
        r.channel = ch >= 0 && ch < CH__COUNT ? (channel_t)ch : CH_PUSH;
        r.created = sqlite3_value_int64(argv[13]);
        r.event_id = lr_val(argv[6]);
        r.user_id = lr_val(argv[7]);
        r.category = lr_val(argv[9]);
        r.title = lr_val(argv[10]);
        r.body = lr_val(argv[11]);
        r.address = lr_val(argv[12]);
    }
    unsigned char *out = sqlite3_malloc64(lr_size_max(&r));
    if (!out) {
        sqlite3_result_error_nomem(cx);
        return;
    }
    size_t n = lr_encode(&r, out);
    sqlite3_result_blob64(cx, out, n, sqlite3_free);
}

/* herald_id(notification_id): the id as status_log stores it since
 * version 10 (a 16-byte blob for 32 lowercase hex digits, else as it
 * is; the migration to version 10). */
static void id_sql_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    unsigned char bin[SQ_ID_BIN];
    if (argc == 1 && sqlite3_value_type(argv[0]) == SQLITE_TEXT && sq_id_to_bin(lr_val(argv[0]), bin))
        sqlite3_result_blob(cx, bin, SQ_ID_BIN, SQLITE_TRANSIENT);
    else if (argc == 1)
        sqlite3_result_value(cx, argv[0]);
    else
        sqlite3_result_error(cx, "herald_id: 1 argument", -1);
}

hr_t sq_log_rec_register(sqlite3 *db)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY;
    int rc = sqlite3_create_function_v2(db, "herald_log_rec", 14, flags, NULL, lr_sql_fn, NULL,
                                        NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "herald_id", 1, flags, NULL, id_sql_fn, NULL, NULL, NULL);
    return rc == SQLITE_OK ? HR_OK : HR_ERR;
}

/* ---- notifications ----
 *
 * DESIGN (schema versions 6, 8 and 10, sqlite.sql). A status record becomes
 * one row appended to status_log (seq, id, status, content flag and the row
 * record above as one blob); nothing is updated in place. The pipeline's
 * ids (32 hex digits) are stored as 16-byte blobs since version 10 (bind_id,
 * ord_bind): half the key bytes and shorter compares in the key index. The key index
 * (notification_id, status, content) is the only index the log has, and
 * ids start with the event's accepted time, so the index grows at its
 * right-hand edge like the log itself; a batch is written in id order, so
 * its new ids are appended in order. A record whose id is above every id
 * in the log (read once per transaction) and not earlier in the batch is a
 * new notification, and so is one the writer knows it has not stored (the
 * ids stored lately, below); any other takes one probe of that index
 * (pages the batch just visited): when no row holds the content yet, this
 * row carries it and the notification joins this transaction's run. Rows
 * go SQ_LOG_ADD_ROWS to an INSERT statement (log_flush).
 *
 * What GET shows is the fold of the id's rows in arrival order by the rank
 * rule (row_fold: lifecycle_may_replace), the same as the upsert of version
 * 5 computed at write time; the rows themselves are the history. "Already
 * sent?" is one probe for a row with a status that counts as sent.
 *
 * The per-user listing is a small LSM tree (store_sqlite_runs.c): each
 * write transaction appends one run holding the notifications it created,
 * sorted in memory and stored as blocks of keys (schema version 9); when a
 * level has SQ_RUN_FANIN runs they are merged into one run of the next
 * level in one transaction, so each notification is rewritten about
 * log_FANIN(rows / batch) times and a listing reads at most SQ_RUN_FANIN - 1
 * runs per level, one seek each.
 */

/* SQLite's BINARY order of two texts: bytes, then the shorter first. */
static int hstr_cmp(hstr_t a, hstr_t b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

/* A record of the batch in write order: by id as status_log_key orders
 * it (ids stored as text first, then the binary ones), then arrival (the
 * rows of one notification keep their order, which is what the fold
 * reads). */
typedef struct ord {
    const notif_t *m;
    int i;
    bool hex;                   /* the id is 32 lowercase hex digits, stored */
    uint64_t hi, lo;            /* as 16 bytes (schema 10): their value */
} ord_t;

static int u64_cmp(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

/* Two ids in status_log_key's order: a text below a blob. */
static int ord_id_cmp(const ord_t *a, const ord_t *b)
{
    if (a->hex != b->hex) return a->hex ? 1 : -1;
    if (!a->hex) return hstr_cmp(a->m->notification_id, b->m->notification_id);
    int c = u64_cmp(a->hi, b->hi);
    return c ? c : u64_cmp(a->lo, b->lo);
}

static int ord_cmp(const void *x, const void *y)
{
    const ord_t *a = x, *b = y;
    int c = ord_id_cmp(a, b);
    if (c) return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

static inline bool ord_less(const ord_t *a, const ord_t *b)
{
    if (a->hex && b->hex) { /* the pipeline's ids: two integers, then arrival */
        if (a->hi != b->hi) return a->hi < b->hi;
        if (a->lo != b->lo) return a->lo < b->lo;
        return a->i < b->i;
    }
    return ord_cmp(a, b) < 0;
}

SQ_DEFINE_SORT(ord_sort, ord_t, ord_less)

/* The 16 bytes of a hex id (big-endian: they sort as the text does). */
static void ord_bin(const ord_t *o, unsigned char out[SQ_ID_BIN])
{
    for (int k = 0; k < 8; k++) {
        out[k] = (unsigned char)(o->hi >> (56 - 8 * k));
        out[8 + k] = (unsigned char)(o->lo >> (56 - 8 * k));
    }
}

/* Binds the record's id as status_log stores it; buf holds the bytes. */
static void ord_bind(const ord_t *o, sqlite3_stmt *st, int i, unsigned char buf[SQ_ID_BIN])
{
    if (o->hex) {
        ord_bin(o, buf);
        sqlite3_bind_blob(st, i, buf, SQ_ID_BIN, SQLITE_STATIC);
    } else {
        bind_hstr(st, i, o->m->notification_id);
    }
}

/* The sort key of a record: the pipeline's ids (model/notif.h) compare as
 * two integers instead of a memcmp of 32 bytes sharing a long prefix. */
static ord_t ord_make(const notif_t *m, int i)
{
    ord_t o = {m, i, false, 0, 0};
    o.hex = sq_id_to_u128(m->notification_id, &o.hi, &o.lo);
    if (!o.hex) o.hi = o.lo = 0;
    return o;
}

/* The largest notification id in the log, as stored. */
typedef struct log_max {
    bool have;                  /* false: the log is empty */
    ord_t o;                    /* the id as a record's sort key... */
    notif_t m;                  /* ...whose text (non-hex ids) is here */
    char *text;
} log_max_t;

/* The largest notification id in the log (one seek at the index's right
 * edge) into *max. c->mu held, inside the write transaction. */
static hr_t log_max_id(conn_t *c, log_max_t *max)
{
    free(max->text);
    memset(max, 0, sizeof(*max));
    sqlite3_stmt *st = sq_stmt(c, S_LOG_MAX);
    if (!st) return HR_ERR;
    int rc = sqlite3_step(st);
    int type = rc == SQLITE_ROW ? sqlite3_column_type(st, 0) : SQLITE_NULL;
    const unsigned char *b = type != SQLITE_NULL ? sqlite3_column_blob(st, 0) : NULL;
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    if (type == SQLITE_BLOB && len == SQ_ID_BIN) {
        max->have = max->o.hex = true;
        for (int k = 0; k < 8; k++) {
            max->o.hi = max->o.hi << 8 | b[k];
            max->o.lo = max->o.lo << 8 | b[8 + k];
        }
    } else if (type == SQLITE_BLOB) {
        /* not a blob this herald writes: above every record, all probed */
        max->have = max->o.hex = true;
        max->o.hi = max->o.lo = UINT64_MAX;
    } else if (type != SQLITE_NULL) {
        max->have = true;
        max->text = xmalloc(len + 1);
        if (len) memcpy(max->text, b, len);
        max->text[len] = '\0';
        max->m.notification_id = (hstr_t){max->text, len};
        max->o.m = &max->m;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? HR_OK : sq_err(c, rc, "status log max");
}

/* ---- the ids the sink stored lately ----
 *
 * A record whose id is not above the log's largest id costs the sink a
 * probe of status_log_key ("has content?"). In the pipeline that is most
 * records: batches interleave statuses of several channels and
 * partitions, so a batch's ids often lie below ids stored a moment ago,
 * and the probe (a statement and an index descent, almost always finding
 * nothing) was as dear as the insert. The sink therefore remembers the
 * pipeline (hex) ids it stored lately, exactly: every such id above a
 * floor that this process stored is in the table. An id above the floor
 * and not in the table has no row (this process is the log's only
 * writer): no probe. An id in the table (maybe erased or purged since, or
 * its batch rolled back) or below the floor is probed as before. The
 * floor starts at the log's largest id when the first batch is written.
 * Two generations of SEEN_SLOTS slots: ids go into the current one; when
 * it is 3/4 full the other is emptied, the floor raised to the largest id
 * it held, and it becomes the current one (sorting the table to drop its
 * older half cost 9 % of the sink's CPU in the pipeline; this is a
 * memset). A slot holds a 32-bit fingerprint of the id, not the id: a
 * fingerprint found means "maybe stored" (a probe), which is all the
 * answer needs, and the tables stay small (2 x SEEN_SLOTS x 4 bytes,
 * 1 MiB) for the cache misses that are most of their cost. A batch's
 * ids are looked up, then added, in two tight passes before it is written,
 * each prefetching the slots of the records SEEN_AHEAD ahead, so that the
 * misses overlap. */
#define SEEN_SLOTS (1u << 17)
#define SEEN_FULL (SEEN_SLOTS / 4 * 3)
#define SEEN_AHEAD 16            /* records prefetched ahead */
/* Records prefetched ahead while rows are made, in two stages: the notif_t
 * at 2 x WRITE_AHEAD (its ~300 bytes, 5 lines: the sort left the records
 * in id order, not memory order), then at WRITE_AHEAD the content its
 * fields point at (in the bus's batch), whose addresses need the first
 * stage's lines. With one stage (the struct's first line and the title and
 * body at 4 ahead), reading a->title.p waited for the struct's miss:
 * ~31 % of this function's own samples at 100k notifications/s. */
#define WRITE_AHEAD 4
#define ORD_AHEAD 8              /* ids prefetched ahead while the sort keys are made */
/* Keys of the per-user runs merged after a batch at most (sq_runs_merge):
 * a merge used to run whole after the batch that filled a level (3.78M
 * keys in 999 ms at level 1, the sink stalled meanwhile, i.e. ~0.26 us a
 * key); now slices of this size: ~21 ms after a 16,384-row batch at that
 * pace (derived, not timed slice by slice). */
#define MERGE_BUDGET_MIN 16384
#define MERGE_BUDGET_PER_ROW 4

typedef struct seen_gen {
    uint32_t *f;                /* SEEN_SLOTS fingerprints; 0 = empty */
    size_t n;
    bool any;                   /* n > 0: (mhi, mlo) is its largest id */
    uint64_t mhi, mlo;
} seen_gen_t;

typedef struct sq_seen {
    bool floor_none;            /* every hex id is above the floor */
    uint64_t fhi, flo;          /* else the floor */
    seen_gen_t g[2];
    int cur;                    /* the generation ids go into */
} seen_t;

static size_t seen_slot(uint64_t hi, uint64_t lo)
{
    return (size_t)(((hi ^ lo) * 0x9E3779B97F4A7C15ull) >> 47) & (SEEN_SLOTS - 1);
}

/* Other bits of the id than the slot's; never 0. */
static uint32_t seen_fp(uint64_t hi, uint64_t lo)
{
    uint32_t f = (uint32_t)(((hi ^ lo) * 0xC2B2AE3D27D4EB4Full) >> 32);
    return f ? f : 1;
}

static bool gen_has(const seen_gen_t *g, uint64_t hi, uint64_t lo)
{
    uint32_t f = seen_fp(hi, lo);
    for (size_t i = seen_slot(hi, lo);; i = (i + 1) & (SEEN_SLOTS - 1)) {
        if (g->f[i] == f) return true;
        if (!g->f[i]) return false;
    }
}

static bool u128_above(uint64_t hi, uint64_t lo, uint64_t than_hi, uint64_t than_lo)
{
    return hi != than_hi ? hi > than_hi : lo > than_lo;
}

static void gen_put(seen_gen_t *g, uint64_t hi, uint64_t lo)
{
    if (!g->any || u128_above(hi, lo, g->mhi, g->mlo)) {
        g->mhi = hi;
        g->mlo = lo;
        g->any = true;
    }
    uint32_t f = seen_fp(hi, lo);
    for (size_t i = seen_slot(hi, lo);; i = (i + 1) & (SEEN_SLOTS - 1)) {
        if (g->f[i] == f) return; /* in, or another id of that print: probed */
        if (!g->f[i]) {
            g->f[i] = f;
            g->n++;
            return;
        }
    }
}

/* The current generation is full: the other one's ids are forgotten (the
 * floor goes up to the largest of them) and it takes the new ids. */
static void seen_turn(seen_t *s)
{
    seen_gen_t *old = &s->g[1 - s->cur];
    if (old->any && (s->floor_none || u128_above(old->mhi, old->mlo, s->fhi, s->flo))) {
        s->fhi = old->mhi;
        s->flo = old->mlo;
        s->floor_none = false;
    }
    memset(old->f, 0, (size_t)SEEN_SLOTS * sizeof(*old->f));
    old->n = 0;
    old->any = false;
    s->cur = 1 - s->cur;
}

/* The writer's table, made at the first batch with the log's largest id
 * then (max) as its floor. w.mu held. */
static seen_t *seen_get(sq_store_t *q, const log_max_t *max)
{
    if (q->seen) return q->seen;
    seen_t *s = xcalloc(1, sizeof(*s));
    for (int i = 0; i < 2; i++) s->g[i].f = xcalloc(SEEN_SLOTS, sizeof(uint32_t));
    /* no blob in the log (empty, or text ids only: they sort below): all
     * hex ids are new to it */
    s->floor_none = !max->have || !max->o.hex;
    s->fhi = max->o.hi;
    s->flo = max->o.lo;
    q->seen = s;
    return s;
}

/* Is the hex id o known to have no row in the log? */
static bool seen_new(const seen_t *s, const ord_t *o)
{
    if (!s->floor_none && !u128_above(o->hi, o->lo, s->fhi, s->flo)) return false;
    return !gen_has(&s->g[0], o->hi, o->lo) && !gen_has(&s->g[1], o->hi, o->lo);
}

/* Brings o's slots into the cache for a coming seen_new / seen_add.
 * always_inline: GCC finds a function that only prefetches free of side
 * effects ("const") and deletes the calls to it (the binary had none of
 * these prefetches); inlined first, the prefetches stay. */
static inline __attribute__((always_inline)) void seen_prefetch(const seen_t *s, const ord_t *o)
{
    size_t i = seen_slot(o->hi, o->lo);
    __builtin_prefetch(&s->g[0].f[i]);
    __builtin_prefetch(&s->g[1].f[i]);
}

static void seen_add(seen_t *s, const ord_t *o)
{
    if (s->g[s->cur].n + 1 > SEEN_FULL) seen_turn(s);
    gen_put(&s->g[s->cur], o->hi, o->lo);
}

void sq_seen_free(sq_store_t *q)
{
    if (!q->seen) return;
    for (int i = 0; i < 2; i++) free(q->seen->g[i].f);
    free(q->seen);
    q->seen = NULL;
}

/* A row of the batch waiting for its multi-row INSERT: its record is
 * scratch[off, off + len), its id idb (hex ids) or its text. */
typedef struct pend {
    const ord_t *o;
    int status;
    bool first;
    size_t off, len;
    unsigned char idb[SQ_ID_BIN];
} pend_t;

/* Inserts the k pending rows: S_LOG_ADD_N for SQ_LOG_ADD_ROWS of them
 * (one statement instead of SQ_LOG_ADD_ROWS: SQLite's cost per statement -
 * halting the VM, opening cursors, its allocations - was a quarter of the
 * sink's), S_LOG_ADD one by one for fewer. In order: seq keeps arrival. */
static hr_t log_flush(conn_t *c, pend_t *p, int k, const unsigned char *scratch)
{
    sqlite3_stmt *st = sq_stmt(c, k == SQ_LOG_ADD_ROWS ? S_LOG_ADD_N : S_LOG_ADD);
    if (!st) return HR_ERR;
    int per = k == SQ_LOG_ADD_ROWS ? k : 1;
    hr_t r = HR_OK;
    for (int j = 0; j < k && r == HR_OK; j += per) {
        for (int t = 0; t < per; t++) {
            const pend_t *e = &p[j + t];
            int b = 4 * t;
            if (e->o->hex) sqlite3_bind_blob(st, b + 1, e->idb, SQ_ID_BIN, SQLITE_STATIC);
            else bind_hstr(st, b + 1, e->o->m->notification_id);
            sqlite3_bind_int(st, b + 2, e->status);
            sqlite3_bind_int(st, b + 3, e->first);
            sqlite3_bind_blob(st, b + 4, scratch + e->off, (int)e->len, SQLITE_STATIC);
        }
        r = sq_step_done(c, st, "status log add");
    }
    sqlite3_clear_bindings(st); /* the bound pointers are the caller's */
    return r;
}

/* The hot path of the status sink: one transaction (committed early when a
 * short write waits for the writer, see DESIGN atop store_sqlite.c), cached
 * statements, strings bound in place (no copies; the order, the run's keys
 * and the row records in buffers kept from batch to batch, sq_store_t.wb). The batch is written in id order: a notification that is new
 * (its id above every id in the log when the transaction began, and not
 * seen earlier in the batch) needs no probe, and the id index is appended
 * to at its right-hand edge. Rows go in SQ_LOG_ADD_ROWS to a statement
 * (log_flush). A probe only asks about rows stored before the batch (an
 * id's earlier rows in the batch are its neighbours in the order), so the
 * rows still pending never change its answer. */
hr_t sq_notif_write_batch(store_t *s, const notif_t *const *recs, int n)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->w;
    pthread_mutex_lock(&q->wb_mu); /* the batch buffers, kept from batch to batch (sq_buf_t) */
    sq_buf_t *wb = q->wb;
    run_key_t *keys = sq_buf(&wb[SQB_KEYS], (size_t)n * sizeof(*keys));
    unsigned char *kbin = sq_buf(&wb[SQB_KBIN], (size_t)n * SQ_ID_BIN); /* the keys' binary ids */
    ord_t *ord = sq_buf(&wb[SQB_ORD], (size_t)n * 2 * sizeof(*ord)); /* the second half: the sort's room */
    bool *fresh = sq_buf(&wb[SQB_FRESH], (size_t)n);
    pend_t pend[SQ_LOG_ADD_ROWS];
    int np = 0, nkeys = 0;
    size_t cap = wb[SQB_SCRATCH].cap > 16384 ? wb[SQB_SCRATCH].cap : 16384, used = 0;
    unsigned char *scratch = sq_buf_grow(&wb[SQB_SCRATCH], cap);
    unsigned char idbuf[SQ_ID_BIN];
    log_max_t max = {0};
    /* the ids' text is in the bus's batch, decoded long enough ago (the
     * batch is MBs) to have left the cache: fetched ORD_AHEAD records on
     * (its first load was ~22 % of this function's samples without) */
    for (int i = 0; i < n; i++) {
        if (i + ORD_AHEAD < n) __builtin_prefetch(recs[i + ORD_AHEAD]->notification_id.p);
        ord[i] = ord_make(recs[i], i);
    }
    ord_sort(ord, n, ord + n);
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *has = sq_stmt(c, S_LOG_HAS);
    hr_t r = has ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) r = log_max_id(c, &max);
    if (r != HR_OK) goto out;
    seen_t *seen = seen_get(q, &max);
    /* which ids are known to be new (before the batch's own are added);
     * asked only of ids not above the log's largest (those above are new
     * without asking: the batch is sorted, so they are its last ones) */
    int below = n;
    if (!max.have) below = 0;
    else
        while (below > 0 && ord_id_cmp(&ord[below - 1], &max.o) > 0) below--;
    for (int i = 0; i < n; i++) {
        if (i + SEEN_AHEAD < below && ord[i + SEEN_AHEAD].hex) seen_prefetch(seen, &ord[i + SEEN_AHEAD]);
        fresh[i] = i < below && ord[i].hex && seen_new(seen, &ord[i]);
    }
    for (int i = 0; i < n; i++) {
        if (i + SEEN_AHEAD < n && ord[i + SEEN_AHEAD].hex) seen_prefetch(seen, &ord[i + SEEN_AHEAD]);
        if (ord[i].hex) seen_add(seen, &ord[i]);
    }
    int64_t now = hclock_now_ms();
    bool prev_content = false;  /* the previous record's id has a content row */
    for (int i = 0; i < n && r == HR_OK; i++) {
        if (i + 2 * WRITE_AHEAD < n) { /* two ahead: the record's own lines */
            const char *b = (const char *)ord[i + 2 * WRITE_AHEAD].m;
            for (size_t o = 0; o < sizeof(notif_t); o += 64) __builtin_prefetch(b + o);
        }
        if (i + WRITE_AHEAD < n) { /* one ahead: the content its fields point at */
            const notif_t *a = ord[i + WRITE_AHEAD].m;
            __builtin_prefetch(a->event_id.p);
            __builtin_prefetch(a->user_id.p);
            __builtin_prefetch(a->title.p);
            __builtin_prefetch(a->body.p);
            __builtin_prefetch(a->address.p);
            if (a->address.n > 1) __builtin_prefetch(a->address.p + a->address.n - 1);
        }
        const notif_t *m = ord[i].m; /* valid: store.c dropped the others */
        int64_t at = m->status_at_ms ? m->status_at_ms : now;
        int64_t created = m->created_at_ms ? m->created_at_ms : at;
        bool has_content;
        if (i > 0 && ord_id_cmp(&ord[i], &ord[i - 1]) == 0) {
            has_content = prev_content;
        } else if (max.have && ord_id_cmp(&ord[i], &max.o) <= 0 &&
                   !fresh[i]) {
            /* maybe stored before: one probe of the id index */
            ord_bind(&ord[i], has, 1, idbuf);
            int rc = sqlite3_step(has);
            sqlite3_reset(has);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                r = sq_err(c, rc, "status log probe");
                break;
            }
            has_content = rc == SQLITE_ROW;
        } else {
            has_content = false; /* above every stored id: new */
        }
        /* the first row of the notification carries its content; a status
         * record without content (a compact 'S' record of a later status)
         * never does */
        bool first = !m->no_content && !has_content;
        prev_content = has_content || first;
        log_rec_t lr = {
            .attempt = m->attempt, .at_ms = at, .msgid = m->channel_msg_id, .error = m->error,
            .meta = m->metadata, .content = first, .channel = m->channel, .created = created,
            .event_id = m->event_id, .user_id = m->user_id, .category = m->category,
            .title = m->title, .body = m->body, .address = m->address,
        };
        /* only a well-formed trace context is kept (the API shows it) */
        if (trace_is_v00(m->traceparent.p, m->traceparent.n)) lr.trace = m->traceparent;
        size_t need = lr_size_max(&lr);
        if (used + need > cap) { /* nothing is bound yet: log_flush binds */
            while (used + need > cap) cap *= 2;
            scratch = sq_buf_grow(&wb[SQB_SCRATCH], cap);
        }
        pend_t *e = &pend[np++];
        e->o = &ord[i];
        e->status = (int)m->status;
        e->first = first;
        e->off = used;
        e->len = lr_encode(&lr, scratch + used);
        used += e->len;
        if (ord[i].hex) ord_bin(&ord[i], e->idb);
        if (first) {
            unsigned char *kb = NULL;
            if (ord[i].hex) ord_bin(&ord[i], kb = kbin + (size_t)nkeys * SQ_ID_BIN);
            keys[nkeys++] = (run_key_t){m->user_id, created, m->notification_id, kb};
        }
        if (np < SQ_LOG_ADD_ROWS && i + 1 < n) continue;
        r = log_flush(c, pend, np, scratch);
        np = 0;
        used = 0;
        if (r == HR_OK && i + 1 < n && atomic_load(&c->waiters) > 0) {
            /* a short write is waiting: commit, let it in, go on */
            r = sq_run_write(q, c, keys, nkeys); /* store_sqlite_runs.c */
            nkeys = 0;
            if ((r = sq_tx_end(c, r)) != HR_OK) break;
            pthread_mutex_unlock(&c->mu);
            for (int k = 0; k < YIELD_SPINS && atomic_load(&c->waiters) > 0; k++) sched_yield();
            pthread_mutex_lock(&c->mu);
            r = sq_tx_begin(c, true);
            if (r == HR_OK) r = log_max_id(c, &max);
        }
    }
    if (r == HR_OK) r = sq_run_write(q, c, keys, nkeys);
    /* the bound pointers belong to the caller: drop them */
    sqlite3_clear_bindings(has);
    if (sqlite3_get_autocommit(c->db) == 0) r = sq_tx_end(c, r);
    /* the batch is stored: a merge that fails is tried again after the next */
    /* merge work in proportion to the batch: each key is merged once per
     * level it climbs (log_FANIN of the keys over a batch's), so a few times
     * the batch keeps the merges level with the writes */
    if (r == HR_OK && sq_runs_merge(q, c, MERGE_BUDGET_MIN + MERGE_BUDGET_PER_ROW * (int64_t)n) != HR_OK)
        log_warn(LOG, "merging the per-user runs failed");
out:
    if (r != HR_OK && sqlite3_get_autocommit(c->db) == 0) sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&q->wb_mu);
    free(max.text);
    return r;
}

/* Folds the rows of one notification (S_NOTIF_GET, bound: status, c,
 * rec in seq order) into *out by the rank rule, in arrival order, as the
 * upsert of schema version 5 did at write time; appends each row to hist
 * when not NULL. HR_NOTFOUND when no row holds the content (unknown, or
 * purged). Resets st. */
static hr_t row_fold(conn_t *c, sqlite3_stmt *st, const char *id, notif_row_t *out,
                     sq_rows_t *hist)
{
    int rc, nrows = 0;
    bool content = false, bad = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        notif_status_t status = (notif_status_t)sqlite3_column_int(st, 0);
        log_rec_t lr;
        if (!lr_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &lr)) {
            bad = true; /* damaged: passed over, said once */
            continue;
        }
        int64_t at = lr.at_ms;
        bool msgid = lr.msgid.n > 0, err = lr.error.n > 0;
        if (hist) {
            if (hist->n == hist->cap) {
                hist->cap = hist->cap ? hist->cap * 2 : 8;
                hist->v = xrealloc(hist->v, (size_t)hist->cap * sizeof(status_hist_t));
            }
            status_hist_t *h = &((status_hist_t *)hist->v)[hist->n++];
            h->status = status;
            h->attempt = lr.attempt;
            h->at_ms = at;
            h->detail = lr_dup_opt(err ? lr.error : lr.msgid); /* the error, else the message id */
        }
        if (!content && lr.content) {
            content = true;
            out->event_id = lr_dup(lr.event_id);
            out->user_id = lr_dup(lr.user_id);
            out->channel = lr.channel;
            out->category = lr_dup(lr.category);
            out->title = lr_dup(lr.title);
            out->body = lr_dup(lr.body);
            out->address = lr_dup(lr.address);
            out->created_at_ms = lr.created;
        }
        int64_t delivered = store_status_sent(status) ? at : 0;
        if (nrows++ == 0) { /* the insert */
            out->status = status;
            out->attempt = lr.attempt;
            out->channel_msg_id = lr_dup_opt(lr.msgid);
            out->error = lr_dup_opt(lr.error);
            out->traceparent = lr_dup_opt(lr.trace);
            out->updated_at_ms = at;
            out->delivered_at_ms = delivered;
            continue;
        }
        if (!lifecycle_may_replace(out->status, status)) continue; /* refused: history only */
        out->status = status;
        out->attempt = lr.attempt;
        if (msgid) {
            free(out->channel_msg_id);
            out->channel_msg_id = lr_dup_opt(lr.msgid);
        }
        free(out->error);
        out->error = lr_dup_opt(lr.error);
        if (lr.trace.n) {
            free(out->traceparent);
            out->traceparent = lr_dup_opt(lr.trace);
        }
        out->updated_at_ms = at;
        if (status == ST_DELIVERED) out->delivered_at_ms = delivered ? delivered : out->delivered_at_ms;
        else if (!out->delivered_at_ms) out->delivered_at_ms = delivered;
    }
    sqlite3_reset(st);
    if (bad) log_error(LOG, "notification %s: a status log row does not decode", id);
    if (rc != SQLITE_DONE) return sq_err(c, rc, "notification get");
    if (!content) return HR_NOTFOUND;
    out->notification_id = xstrdup(id);
    return HR_OK;
}

hr_t sq_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                  status_hist_t **hist, int *nhist)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t h = {0};
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_GET);
    unsigned char idbuf[SQ_ID_BIN];
    hr_t r = st ? sq_tx_begin(c, false) : HR_ERR; /* one snapshot */
    if (r != HR_OK) goto out;
    bind_id(st, 1, HSTR(notification_id), idbuf);
    r = row_fold(c, st, notification_id, out, hist ? &h : NULL);
    r = sq_tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        notif_row_clear(out);
        store_status_hist_free(h.v, h.n);
        return r;
    }
    if (hist) {
        *hist = h.v;
        *nhist = h.n;
    }
    return HR_OK;
}

/* A candidate of a listing: a key of the user's runs. */
typedef struct cand {
    int64_t created;
    const char *id;
} cand_t;

/* Newest first: created, then id, descending. */
static int cand_cmp(const void *x, const void *y)
{
    const cand_t *a = x, *b = y;
    if (a->created != b->created) return a->created > b->created ? -1 : 1;
    return -strcmp(a->id, b->id);
}

/* The user's notification ids from the runs, newest first, each folded
 * from the log; ids whose rows were purged are passed over. The runs'
 * keys of the user are gathered (one seek per run), sorted and deduped
 * here. */
hr_t sq_notif_list_user(store_t *s, const char *user_id, int64_t after_ms, const char *after_id,
                        int limit, notif_row_t **rows, int *n, bool *more)
{
    conn_t *c = sq(s)->rd;
    sq_rows_t v = {0};
    int64_t *created = NULL;
    char **ids = NULL;
    cand_t *cand = NULL;
    int nk = 0;
    *more = false;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *get = sq_stmt(c, S_NOTIF_GET);
    hr_t r = get ? sq_tx_begin(c, false) : HR_ERR; /* one snapshot */
    if (r != HR_OK) goto out;
    r = sq_runs_user(c, user_id, &created, &ids, &nk); /* store_sqlite_runs.c */
    cand = xmalloc((size_t)(nk ? nk : 1) * sizeof(*cand));
    for (int i = 0; i < nk; i++) cand[i] = (cand_t){created[i], ids[i]};
    qsort(cand, (size_t)nk, sizeof(*cand), cand_cmp);
    for (int i = 0; i < nk && r == HR_OK; i++) {
        if (i > 0 && cand_cmp(&cand[i], &cand[i - 1]) == 0) continue; /* in two runs */
        if (after_id && (cand[i].created > after_ms ||
                         (cand[i].created == after_ms && strcmp(cand[i].id, after_id) >= 0)))
            continue;
        if (v.n >= limit) {
            *more = true;
            break;
        }
        if (v.n == v.cap) {
            v.cap = v.cap ? v.cap * 2 : (limit < 16 ? limit : 16);
            v.v = xrealloc(v.v, (size_t)v.cap * sizeof(notif_row_t));
        }
        notif_row_t *row = &((notif_row_t *)v.v)[v.n];
        memset(row, 0, sizeof(*row));
        unsigned char idbuf[SQ_ID_BIN];
        bind_id(get, 1, HSTR(cand[i].id), idbuf);
        r = row_fold(c, get, cand[i].id, row, NULL);
        if (r == HR_OK) {
            v.n++;
        } else {
            notif_row_clear(row);
            if (r == HR_NOTFOUND) r = HR_OK; /* purged: not listed */
        }
    }
    sqlite3_clear_bindings(get);
    r = sq_tx_end(c, r);
out:
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < nk; i++) free(ids[i]);
    free(ids);
    free(created);
    free(cand);
    if (r != HR_OK) {
        notif_rows_free(v.v, v.n);
        *more = false;
        return r;
    }
    *rows = v.v;
    *n = v.n;
    return HR_OK;
}

/* Unknown ids are not sent: HR_OK with *sent = false. */
hr_t sq_notif_sent(store_t *s, const char *notification_id, bool *sent)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_STATUS);
    if (st) {
        unsigned char idbuf[SQ_ID_BIN];
        bind_id(st, 1, HSTR(notification_id), idbuf);
        int rc = sqlite3_step(st);
        *sent = rc == SQLITE_ROW;
        sqlite3_reset(st);
        r = rc == SQLITE_ROW || rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "notification sent");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Dispatch's replay check for a batch: one read snapshot, one cached
 * statement, one lock acquisition. */
hr_t sq_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *st = sq_stmt(c, S_NOTIF_STATUS);
    hr_t r = st ? sq_tx_begin(c, false) : HR_ERR;
    unsigned char idbuf[SQ_ID_BIN];
    for (int i = 0; i < n && r == HR_OK; i++) {
        bind_id(st, 1, ids[i], idbuf);
        int rc = sqlite3_step(st);
        sent[i] = rc == SQLITE_ROW;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "notification sent batch");
    }
    if (st) sqlite3_clear_bindings(st); /* the ids belong to the caller */
    r = sq_tx_end(c, r);
    pthread_mutex_unlock(&c->mu);
    return r;
}

typedef struct purge_row {
    int64_t seq, created;
    char *id;                   /* a notification's first row: its id; else NULL */
} purge_row_t;

static void purge_row(sqlite3_stmt *st, void *elem)
{
    purge_row_t *p = elem;
    p->seq = sqlite3_column_int64(st, 0);
    log_rec_t lr;
    if (sqlite3_column_int(st, 1) &&
        lr_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &lr) && lr.content) {
        p->created = lr.created;
        p->id = sq_col_id(st, 3); /* bound again as stored (bind_id) */
    }
}

/* One purge transaction over the next SQ_PURGE_LOG_CHUNK log rows after
 * seq *last, oldest first: each notification whose first row is among
 * them and that was created before before_ms goes with all its rows (one
 * probe of the id index, near its left-hand edge). Sets *done when the
 * chunk had none (the log is in arrival order, so the old notifications
 * are behind us) or the log ended. c->mu held. */
static hr_t purge_chunk(conn_t *c, int64_t before_ms, int64_t *last, int64_t *deleted,
                        bool *done)
{
    sq_rows_t rows = {0};
    sqlite3_stmt *pick = sq_stmt(c, S_PURGE_PICK);
    sqlite3_stmt *del = sq_stmt(c, S_ERASE_LOG);
    hr_t r = pick && del ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) {
        sqlite3_bind_int64(pick, 1, *last);
        sqlite3_bind_int(pick, 2, SQ_PURGE_LOG_CHUNK);
        r = sq_collect(c, pick, sizeof(purge_row_t), SQ_PURGE_LOG_CHUNK, purge_row, &rows, NULL,
                       "purge scan");
    }
    purge_row_t *p = rows.v;
    int64_t old = 0;
    unsigned char idbuf[SQ_ID_BIN];
    for (int i = 0; i < rows.n && r == HR_OK; i++) {
        if (!p[i].id || p[i].created >= before_ms) continue;
        bind_id(del, 1, HSTR(p[i].id), idbuf);
        r = sq_step_done(c, del, "purge log");
        old++;
    }
    r = sq_tx_end(c, r);
    if (r == HR_OK) {
        *deleted += old;
        if (rows.n) *last = p[rows.n - 1].seq;
        *done = old == 0 || rows.n < SQ_PURGE_LOG_CHUNK;
    }
    for (int i = 0; i < rows.n; i++) free(p[i].id);
    free(rows.v);
    return r;
}

hr_t sq_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted)
{
    sq_store_t *q = sq(s);
    conn_t *c = &q->w;
    int64_t total = 0, last = 0;
    bool done = false;
    hr_t r = HR_OK;
    /* the writer lock is released between chunks so the sink interleaves */
    while (!done && r == HR_OK) {
        pthread_mutex_lock(&c->mu);
        r = purge_chunk(c, before_ms, &last, &total, &done);
        pthread_mutex_unlock(&c->mu);
    }
    if (r == HR_OK) {
        pthread_mutex_lock(&c->mu);
        r = sq_runs_purge(q, c, before_ms); /* store_sqlite_runs.c */
        pthread_mutex_unlock(&c->mu);
    }
    /* inbox items of the same age, in chunks as well */
    int changed = SQ_PURGE_CHUNK;
    int64_t items = 0;
    while (r == HR_OK && changed == SQ_PURGE_CHUNK) {
        pthread_mutex_lock(&c->mu);
        sqlite3_stmt *st = sq_stmt(c, S_PURGE_INBOX);
        if (st) {
            sqlite3_bind_int64(st, 1, before_ms);
            sqlite3_bind_int(st, 2, SQ_PURGE_CHUNK);
            r = sq_step_done(c, st, "purge inbox");
            changed = sqlite3_changes(c->db);
            items += changed;
        } else {
            r = HR_ERR;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (items) log_info(LOG, "purged %lld inbox item(s) created before %lld", (long long)items,
                        (long long)before_ms);
    if (r == HR_OK) { /* digests closed and due before the cut, members added before it */
        int64_t drows = 0;
        pthread_mutex_lock(&c->mu);
        r = sq_digest_purge(c, before_ms, &drows); /* store_sqlite_digest.c */
        pthread_mutex_unlock(&c->mu);
        if (drows) log_info(LOG, "purged %lld digest row(s) before %lld", (long long)drows, (long long)before_ms);
    }
    if (r == HR_OK) r = sq_claims_purge(s, before_ms); /* store_sqlite_claims.c */
    *deleted = total;
    if (total) log_info(LOG, "purged %lld notification(s) created before %lld", (long long)total,
                        (long long)before_ms);
    return r;
}
