/*
 * store_sqlite_runs.c - the SQLite backend's per-user listing: the sorted
 * runs of (user, created, notification id) keys, written in blocks
 * (schema version 9), merged, read, erased and purged
 * (store_sqlite_int.h lists the files of the backend).
 *
 * DESIGN (schema version 9, sqlite.sql). Each write transaction of the
 * status sink adds one run holding the notifications it created, sorted by
 * (user, created, id); when a level has SQ_RUN_FANIN runs they are merged
 * into one run of the next level (a small LSM tree; user_run_list says
 * which runs are live). Version 6 to 8 stored a run as one row per key
 * (user_runs): every key cost an INSERT with its B-tree descent and cell,
 * and every merge an INSERT ... SELECT ... ORDER BY through SQLite's
 * sorter, ~40 % of the sink's CPU. Since version 9 a run is a sequence of
 * blocks (user_chunks): up to RUN_BLOCK_KEYS keys, RUN_BLOCK_BYTES bytes
 * encoded, one row each, keyed (run, last_user, pos) - the user of the
 * block's last key and the block's position in the run - so a user's keys
 * start in the first block whose last_user >= the user (one seek per run).
 * A merge is a k-way merge in C over one decoded block per input run; the
 * old runs' blocks go with one DELETE (a block per ~40 keys).
 *
 * Block (version 1), integers LEB128 varints, signed ones zigzag-coded:
 *
 *   u8 version (1) | varint count | count x key
 *   key = varint shared (bytes of the previous key's user it starts with)
 *       | varint n + n bytes (the rest of the user)
 *       | zvarint created - the previous key's created (0 for the first)
 *       | varint id length + bytes; length 0: 16 bytes, an id of 32
 *         lowercase hex digits (model/notif.h makes those) in binary
 *
 * Threads: any; every function here runs with c->mu held (the writer's,
 * or the reader's for sq_runs_user).
 */
#include "store/store_sqlite_int.h"

#include "core/log.h"
#include "core/varint.h"

#include <stdlib.h>
#include <string.h>

#define LOG SQ_LOG
#define RUN_BLOCK_KEYS 64        /* keys per block at most */
/* Encoded bytes after which a block is closed: with the key columns it stays
 * inside a WITHOUT ROWID page's local payload (~1000 bytes with 4 KiB pages,
 * ~2000 with 8 KiB), no overflow pages. */
#define RUN_BLOCK_BYTES 880
#define BLOCK_VERSION 1
#define RUN_AHEAD 8              /* keys prefetched ahead while a run is written */
#define ID_BIN SQ_ID_BIN         /* a 32-hex-digit id in binary */

/* 8 bytes as a big-endian integer: compares as the bytes do. */
static inline uint64_t load_be64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* SQLite's BINARY order of two texts: bytes, then the shorter first.
 * Compared 8 bytes at a time inline: the keys' users are short and a
 * memcmp call per comparison was ~6 % of the status sink's samples (the
 * runs' sorts and merges compare users all the time). */
static int hstr_cmp(hstr_t a, hstr_t b)
{
    size_t n = a.n < b.n ? a.n : b.n, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = load_be64(a.p + i), y = load_be64(b.p + i);
        if (x != y) return x < y ? -1 : 1;
    }
    for (; i < n; i++)
        if (a.p[i] != b.p[i]) return (unsigned char)a.p[i] < (unsigned char)b.p[i] ? -1 : 1;
    return a.n < b.n ? -1 : a.n > b.n;
}

int sq_run_key_cmp(const void *x, const void *y)
{
    const run_key_t *a = x, *b = y;
    int c = hstr_cmp(a->user, b->user);
    if (c) return c;
    if (a->created != b->created) return a->created < b->created ? -1 : 1;
    return hstr_cmp(a->id, b->id);
}

/* The first 8 bytes of a user (zero padded) as an integer: two users
 * whose prefixes differ compare as these do. */
static inline uint64_t user_pre(hstr_t user)
{
    char b[8] = {0};
    if (user.n) memcpy(b, user.p, user.n < 8 ? user.n : 8);
    return load_be64(b);
}

/* A run key while a run is sorted: the first 8 bytes of its user (zero
 * padded) as an integer, so that most comparisons are one integer
 * compare; equal ones compare the keys. 16 bytes moved per step instead
 * of a key's 40. */
typedef struct key_ref {
    uint64_t pre;
    const run_key_t *k;
} key_ref_t;

static inline bool ref_less(const key_ref_t *a, const key_ref_t *b)
{
    if (a->pre != b->pre) return a->pre < b->pre;
    return sq_run_key_cmp(a->k, b->k) < 0;
}

SQ_DEFINE_SORT(ref_sort, key_ref_t, ref_less)

/* Sorts keys[0..n) by sq_run_key_cmp: a stable LSD radix sort of
 * references by their 8-byte user prefix (a pass per byte, skipped when
 * every key has the same byte there: a common prefix of the users costs
 * nothing), then each stretch of equal prefixes by the whole key (the
 * merge sort). The merge sort alone, ~13 passes of compares that
 * mispredict on random users, was 4.4 % of `herald bench sink`'s
 * samples. */
void sq_run_keys_sort(run_key_t *keys, int n, sq_buf_t room[2])
{
    if (n < 2) return;
    sq_buf_t own[2] = {{NULL, 0}, {NULL, 0}};
    sq_buf_t *bufs = room ? room : own;
    key_ref_t *ref = sq_buf(&bufs[0], (size_t)n * 2 * sizeof(*ref)); /* the second half: the passes' room */
    uint32_t cnt[8][256];
    memset(cnt, 0, sizeof(cnt));
    for (int i = 0; i < n; i++) {
        if (i + RUN_AHEAD < n) __builtin_prefetch(keys[i + RUN_AHEAD].user.p); /* each a miss */
        uint64_t pre = user_pre(keys[i].user);
        ref[i] = (key_ref_t){pre, &keys[i]};
        for (int d = 0; d < 8; d++) cnt[d][(pre >> (8 * d)) & 255]++;
    }
    key_ref_t *src = ref, *dst = ref + n;
    for (int d = 0; d < 8; d++) {
        unsigned shift = 8u * (unsigned)d;
        if (cnt[d][(src[0].pre >> shift) & 255] == (uint32_t)n) continue; /* one value: in order */
        uint32_t at[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            at[v] = sum;
            sum += cnt[d][v];
        }
        for (int i = 0; i < n; i++) dst[at[(src[i].pre >> shift) & 255]++] = src[i];
        key_ref_t *t = src;
        src = dst;
        dst = t;
    }
    /* equal prefixes: by the whole key (dst: room) */
    for (int lo = 0; lo < n;) {
        int hi = lo + 1;
        while (hi < n && src[hi].pre == src[lo].pre) hi++;
        if (hi - lo > 1) ref_sort(src + lo, hi - lo, dst + lo);
        lo = hi;
    }
    run_key_t *out = sq_buf(&bufs[1], (size_t)n * sizeof(*out));
    for (int i = 0; i < n; i++) out[i] = *src[i].k;
    memcpy(keys, out, (size_t)n * sizeof(*keys));
    sq_buf_free(&own[0]);
    sq_buf_free(&own[1]);
}

void *sq_buf(sq_buf_t *b, size_t n)
{
    if (n > b->cap) {
        free(b->p);
        b->p = xmalloc(n);
        b->cap = n;
    }
    return b->p;
}

void *sq_buf_grow(sq_buf_t *b, size_t n)
{
    if (n > b->cap) {
        b->p = xrealloc(b->p, n);
        b->cap = n;
    }
    return b->p;
}

void sq_buf_free(sq_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* ---- the block codec ---- */

bool sq_id_to_bin(hstr_t id, unsigned char out[SQ_ID_BIN])
{
    uint64_t hi, lo;
    if (!sq_id_to_u128(id, &hi, &lo)) return false;
    for (int k = 0; k < 8; k++) { /* big-endian: the bytes sort as the text does */
        out[k] = (unsigned char)(hi >> (56 - 8 * k));
        out[8 + k] = (unsigned char)(lo >> (56 - 8 * k));
    }
    return true;
}

char *sq_col_id(sqlite3_stmt *st, int i)
{
    static const char hex[] = "0123456789abcdef";
    if (sqlite3_column_type(st, i) != SQLITE_BLOB) return col_str(st, i);
    const unsigned char *b = sqlite3_column_blob(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    char *s = xmalloc(2 * n + 1);
    for (size_t j = 0; j < n; j++) {
        s[2 * j] = hex[b[j] >> 4];
        s[2 * j + 1] = hex[b[j] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

/* A block being written: keys appended in order. */
typedef struct block_enc {
    unsigned char *buf;          /* the body (keys), after room for the header */
    size_t len, cap;
    int count;
    char *prev_user;             /* a copy of the last key's user */
    size_t prev_n, prev_cap;
    int64_t prev_created;
} block_enc_t;

#define BLOCK_HDR (1 + VARINT_MAX)

static void enc_reset(block_enc_t *e)
{
    e->len = BLOCK_HDR;
    e->count = 0;
    e->prev_n = 0;
    e->prev_created = 0;
}

static void enc_init(block_enc_t *e)
{
    memset(e, 0, sizeof(*e));
    e->cap = RUN_BLOCK_BYTES + 1024;
    e->buf = xmalloc(e->cap);
    enc_reset(e);
}

static void enc_release(block_enc_t *e)
{
    free(e->buf);
    free(e->prev_user);
    memset(e, 0, sizeof(*e));
}

static void enc_add(block_enc_t *e, const run_key_t *k)
{
    size_t need = e->len + 4 * VARINT_MAX + k->user.n + k->id.n;
    if (need > e->cap) {
        e->cap = need * 2;
        e->buf = xrealloc(e->buf, e->cap);
    }
    size_t shared = 0;
    while (shared < e->prev_n && shared < k->user.n && e->prev_user[shared] == k->user.p[shared])
        shared++;
    unsigned char *p = e->buf;
    size_t i = e->len;
    i += varint_put(p + i, shared);
    i += varint_span_put(p + i, k->user.p + shared, k->user.n - shared);
    i += varint_put(p + i, zigzag(e->count ? k->created - e->prev_created : k->created));
    if (k->bin) {
        p[i] = 0;
        memcpy(p + i + 1, k->bin, ID_BIN);
        i += 1 + ID_BIN;
    } else if (sq_id_to_bin(k->id, p + i + 1)) {
        p[i] = 0;
        i += 1 + ID_BIN;
    } else {
        i += varint_span_put(p + i, k->id.p, k->id.n);
    }
    e->len = i;
    e->count++;
    if (k->user.n > e->prev_cap) {
        e->prev_cap = k->user.n * 2;
        e->prev_user = xrealloc(e->prev_user, e->prev_cap);
    }
    if (k->user.n - shared) memcpy(e->prev_user + shared, k->user.p + shared, k->user.n - shared);
    e->prev_n = k->user.n;
    e->prev_created = k->created;
}

static bool enc_full(const block_enc_t *e)
{
    return e->count >= RUN_BLOCK_KEYS || e->len - BLOCK_HDR >= RUN_BLOCK_BYTES;
}

/* The block's bytes (header in front of the body); *len set. */
static const unsigned char *enc_finish(block_enc_t *e, size_t *len)
{
    unsigned char hdr[BLOCK_HDR];
    size_t h = 0;
    hdr[h++] = BLOCK_VERSION;
    h += varint_put(hdr + h, (uint64_t)e->count);
    unsigned char *start = e->buf + BLOCK_HDR - h;
    memcpy(start, hdr, h);
    *len = e->len - (BLOCK_HDR - h);
    return start;
}

/* A decoded block: keys whose strings point into arena. */
typedef struct block {
    run_key_t *k;
    int n, cap;
    char *arena;
    size_t acap;
} block_t;

static void block_release(block_t *b)
{
    free(b->k);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}

/* Decodes a block into b (its previous keys are dropped). false when
 * malformed. */
static bool block_decode(const void *data, size_t len, block_t *b)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    b->n = 0;
    if (!p || len < 2 || p[0] != BLOCK_VERSION) return false;
    size_t off = 1;
    uint64_t count, v;
    if (!varint_get(p, len, &off, &count) || count > len) return false;
    if ((int)count > b->cap) {
        b->cap = (int)count;
        b->k = xrealloc(b->k, (size_t)b->cap * sizeof(*b->k));
    }
    /* every decoded byte comes from the block, but for a shared prefix
     * (at most the previous user) and a binary id (its 16 bytes and 32
     * digits for 17): bounded */
    size_t need = len * 2 + (size_t)count * 3 * ID_BIN + 1;
    if (need > b->acap) {
        b->acap = need;
        free(b->arena);
        b->arena = xmalloc(b->acap);
    }
    size_t a = 0;
    int64_t created = 0;
    const char *prev = NULL;
    size_t prev_n = 0;
    for (uint64_t j = 0; j < count; j++) {
        uint64_t shared;
        const char *rest;
        size_t rest_n;
        if (!varint_get(p, len, &off, &shared) || shared > prev_n) return false;
        if (!varint_span_get(p, len, &off, &rest, &rest_n)) return false;
        if (a + shared + rest_n > b->acap) return false;
        char *user = b->arena + a;
        if (shared) memcpy(user, prev, shared);
        if (rest_n) memcpy(user + shared, rest, rest_n);
        a += shared + rest_n;
        if (!varint_get(p, len, &off, &v)) return false;
        created = j ? created + unzigzag(v) : unzigzag(v);
        hstr_t id;
        const unsigned char *bin = NULL;
        if (off < len && p[off] == 0) {
            off++;
            if (len - off < ID_BIN || a + 3 * ID_BIN > b->acap) return false;
            bin = (const unsigned char *)memcpy(b->arena + a, p + off, ID_BIN);
            a += ID_BIN;
            char *s = b->arena + a;
            for (size_t i = 0; i < ID_BIN; i++) {
                s[2 * i] = hex[p[off + i] >> 4];
                s[2 * i + 1] = hex[p[off + i] & 15];
            }
            off += ID_BIN;
            a += 2 * ID_BIN;
            id = (hstr_t){s, 2 * ID_BIN};
        } else {
            const char *ip;
            size_t in;
            if (!varint_span_get(p, len, &off, &ip, &in) || a + in > b->acap) return false;
            if (in) memcpy(b->arena + a, ip, in);
            id = (hstr_t){b->arena + a, in};
            a += in;
        }
        b->k[j] = (run_key_t){{user, shared + rest_n}, created, id, bin};
        prev = user;
        prev_n = shared + rest_n;
    }
    b->n = (int)count;
    return off == len;
}

int sq_block_count_user(const void *data, size_t len, const char *user)
{
    block_t b = {0};
    int n = -1;
    if (block_decode(data, len, &b)) {
        n = 0;
        hstr_t u = HSTR(user);
        for (int i = 0; i < b.n; i++) n += hstr_cmp(b.k[i].user, u) == 0;
    }
    block_release(&b);
    return n;
}

/* ---- writing a run ---- */

/* A run being written: blocks appended at pos 0, 1, ... */
typedef struct run_out {
    conn_t *c;
    sqlite3_stmt *add;
    int64_t run, pos, rows, max_created;
    block_enc_t e;
} run_out_t;

static hr_t out_init(run_out_t *o, conn_t *c, int64_t run)
{
    memset(o, 0, sizeof(*o));
    o->c = c;
    o->run = run;
    if (!(o->add = sq_stmt(c, S_RUN_ADD))) return HR_ERR;
    enc_init(&o->e);
    return HR_OK;
}

static hr_t out_flush(run_out_t *o)
{
    if (o->e.count == 0) return HR_OK;
    size_t len;
    const unsigned char *blob = enc_finish(&o->e, &len);
    sqlite3_bind_int64(o->add, 1, o->run);
    sqlite3_bind_text(o->add, 2, o->e.prev_user ? o->e.prev_user : "", (int)o->e.prev_n,
                      SQLITE_STATIC);
    sqlite3_bind_int64(o->add, 3, o->pos++);
    sqlite3_bind_blob(o->add, 4, blob, (int)len, SQLITE_STATIC);
    hr_t r = sq_step_done(o->c, o->add, "user run block add");
    sqlite3_clear_bindings(o->add);
    enc_reset(&o->e);
    return r;
}

static hr_t out_add(run_out_t *o, const run_key_t *k)
{
    enc_add(&o->e, k);
    o->rows++;
    if (k->created > o->max_created) o->max_created = k->created;
    return enc_full(&o->e) ? out_flush(o) : HR_OK;
}

/* Flushes the last block and lists the run (it is visible from now on). */
static hr_t out_end(run_out_t *o, int level)
{
    hr_t r = out_flush(o);
    sqlite3_stmt *list = r == HR_OK ? sq_stmt(o->c, S_RUN_LIST_ADD) : NULL;
    if (r == HR_OK && !list) r = HR_ERR;
    if (r == HR_OK && o->rows) {
        sqlite3_bind_int64(list, 1, o->run);
        sqlite3_bind_int(list, 2, level);
        sqlite3_bind_int64(list, 3, o->rows);
        sqlite3_bind_int64(list, 4, o->max_created);
        r = sq_step_done(o->c, list, "user run list add");
    }
    enc_release(&o->e);
    return r;
}

hr_t sq_run_write(sq_store_t *q, conn_t *c, run_key_t *keys, int n)
{
    if (n == 0) return HR_OK;
    sq_run_keys_sort(keys, n, &q->wb[SQB_SORT_REF]); /* SQB_SORT_REF, SQB_SORT_OUT */
    run_out_t o;
    hr_t r = out_init(&o, c, q->next_run++);
    for (int i = 0; i < n && r == HR_OK; i++) {
        /* sorted by user, the keys' strings are scattered over the batch:
         * bring those of a key a few ahead into the cache (each a miss) */
        if (i + RUN_AHEAD < n) {
            __builtin_prefetch(keys[i + RUN_AHEAD].user.p);
            if (!keys[i + RUN_AHEAD].bin) __builtin_prefetch(keys[i + RUN_AHEAD].id.p);
        }
        if (i > 0 && sq_run_key_cmp(&keys[i], &keys[i - 1]) == 0) continue;
        r = out_add(&o, &keys[i]);
    }
    hr_t e = out_end(&o, 0);
    return r == HR_OK ? e : r;
}

/* ---- reading runs block by block ---- */

/* One run read in key order (its own statement: a merge reads several at
 * once). */
typedef struct run_in {
    sqlite3_stmt *st;
    block_t b;
    int i;                       /* the next key of b */
    bool done;
    uint64_t pre;                /* its user's first 8 bytes (user_pre): the heap compares these first */
    int64_t run;
    char *last_user;             /* (last_user, pos) of the last block read; NULL: none yet */
    size_t last_n, last_cap;
    int64_t last_pos;
} run_in_t;

/* The current key; NULL at the end. Loads the next block when needed. */
static hr_t in_peek(conn_t *c, run_in_t *in, const run_key_t **k)
{
    *k = NULL;
    while (!in->done && in->i >= in->b.n) {
        int rc = sqlite3_step(in->st);
        if (rc == SQLITE_DONE) {
            in->done = true;
            break;
        }
        if (rc != SQLITE_ROW) return sq_err(c, rc, "user run read");
        in->i = 0;
        size_t un = (size_t)sqlite3_column_bytes(in->st, 1);
        const unsigned char *u = sqlite3_column_text(in->st, 1);
        if (un + 1 > in->last_cap || !in->last_user) {
            in->last_cap = un + 1 > 32 ? un + 1 : 32;
            in->last_user = xrealloc(in->last_user, in->last_cap);
        }
        if (un) memcpy(in->last_user, u, un);
        in->last_user[un] = '\0';
        in->last_n = un;
        in->last_pos = sqlite3_column_int64(in->st, 2);
        if (!block_decode(sqlite3_column_blob(in->st, 0), (size_t)sqlite3_column_bytes(in->st, 0),
                          &in->b)) {
            log_error(LOG, "a block of the per-user runs does not decode: passed over");
            in->b.n = 0;
        }
    }
    if (!in->done) {
        *k = &in->b.k[in->i];
        in->pre = user_pre((*k)->user);
    }
    return HR_OK;
}

/* The heap of a merge: input indexes, the smallest current key on top. */
static bool in_less(const run_in_t *in, int a, int b)
{
    if (in[a].pre != in[b].pre) return in[a].pre < in[b].pre;
    return sq_run_key_cmp(&in[a].b.k[in[a].i], &in[b].b.k[in[b].i]) < 0;
}

static void heap_down(const run_in_t *in, int *heap, int nh, int at)
{
    for (;;) {
        int l = 2 * at + 1, m = at;
        if (l < nh && in_less(in, heap[l], heap[m])) m = l;
        if (l + 1 < nh && in_less(in, heap[l + 1], heap[m])) m = l + 1;
        if (m == at) return;
        int t = heap[at];
        heap[at] = heap[m];
        heap[m] = t;
        at = m;
    }
}

static void heap_push(const run_in_t *in, int *heap, int *nh, int i)
{
    int at = (*nh)++;
    heap[at] = i;
    while (at > 0 && in_less(in, heap[at], heap[(at - 1) / 2])) {
        int up = (at - 1) / 2, t = heap[at];
        heap[at] = heap[up];
        heap[up] = t;
        at = up;
    }
}

/* ---- merging, a slice at a time ----
 *
 * A merge used to run whole inside the status sink's call, one
 * transaction per full level: 16 level-1 runs (3.78M keys in `herald
 * bench sink`) took 999 ms, during which no status row was written, and
 * the level above would take ~16 s (bench/notes.md, round 27). Now a
 * merge goes on across the sink's calls, at most `budget` keys a call,
 * each slice a transaction of its own: the inputs stay listed (the
 * listing reads them) until the slice that takes their last key drops
 * them and lists the output, which until then is blocks no listing
 * reads. Between slices an input is its current decoded block and
 * where its next block starts ((last_user, pos) of the last block read);
 * each slice opens its statements again from there. A purge or an erase
 * that comes meanwhile could change inputs whose keys were already
 * copied: both abandon the merge first (its output blocks go; it starts
 * again later). A crash in the middle leaves output blocks that no
 * user_run_list row names: sq_runs_init deletes them at the next open. */
struct sq_merge {
    int level;
    int nin;
    run_in_t in[SQ_RUN_FANIN * 2];
    run_out_t o;
    run_key_t last;              /* the last key taken (a key twice is taken once) */
    char *lastbuf;
    size_t lastcap;
    bool have_last;
};

static void merge_free(struct sq_merge *m)
{
    for (int i = 0; i < m->nin; i++) {
        if (m->in[i].st) sqlite3_finalize(m->in[i].st);
        block_release(&m->in[i].b);
        free(m->in[i].last_user);
    }
    enc_release(&m->o.e);
    free(m->lastbuf);
    free(m);
}

void sq_runs_merge_abort(sq_store_t *q, conn_t *c)
{
    struct sq_merge *m = q->merge;
    if (!m) return;
    q->merge = NULL;
    sqlite3_stmt *del = sq_stmt(c, S_RUN_DROP);
    if (del) {
        sqlite3_bind_int64(del, 1, m->o.run);
        if (sq_step_done(c, del, "dropping a merge's blocks") != HR_OK)
            log_warn(LOG, "the blocks of run %lld stay until the next open", (long long)m->o.run);
    }
    log_debug(LOG, "merge of level %d into run %lld abandoned", m->level, (long long)m->o.run);
    merge_free(m);
}

/* Picks the inputs of a new merge (a full level, its oldest runs first);
 * *m NULL when no level is full. Inside a transaction. */
static hr_t merge_begin(sq_store_t *q, conn_t *c, struct sq_merge **out)
{
    *out = NULL;
    sqlite3_stmt *full = sq_stmt(c, S_RUN_FULL_LEVEL);
    sqlite3_stmt *pick = sq_stmt(c, S_RUN_MERGE);
    if (!full || !pick) return HR_ERR;
    sqlite3_bind_int(full, 1, SQ_RUN_FANIN);
    int rc = sqlite3_step(full);
    int level = rc == SQLITE_ROW ? sqlite3_column_int(full, 0) : -1;
    sqlite3_reset(full);
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "user runs");
    struct sq_merge *m = xcalloc(1, sizeof(*m));
    m->level = level;
    sqlite3_bind_int(pick, 1, level);
    while (m->nin < (int)ARRAY_LEN(m->in) && (rc = sqlite3_step(pick)) == SQLITE_ROW)
        m->in[m->nin++].run = sqlite3_column_int64(pick, 0);
    sqlite3_reset(pick);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        merge_free(m);
        return sq_err(c, rc, "user runs");
    }
    hr_t r = out_init(&m->o, c, q->next_run++);
    if (r != HR_OK) {
        merge_free(m);
        return r;
    }
    *out = m;
    return HR_OK;
}

/* Opens the statement of an input from where it stopped. */
static hr_t in_open(conn_t *c, run_in_t *in)
{
    const char *sql = in->last_user ? "SELECT keys, last_user, pos FROM user_chunks WHERE run = ?1"
                                      " AND (last_user, pos) > (?2, ?3) ORDER BY last_user, pos"
                                    : "SELECT keys, last_user, pos FROM user_chunks WHERE run = ?1"
                                      " ORDER BY last_user, pos";
    if (sqlite3_prepare_v2(c->db, sql, -1, &in->st, NULL) != SQLITE_OK)
        return sq_err(c, sqlite3_errcode(c->db), "user runs merge");
    sqlite3_bind_int64(in->st, 1, in->run);
    if (in->last_user) {
        sqlite3_bind_text(in->st, 2, in->last_user, (int)in->last_n, SQLITE_STATIC);
        sqlite3_bind_int64(in->st, 3, in->last_pos);
    }
    return HR_OK;
}

/* One slice of the merge: up to *budget keys (spent from it), in one
 * transaction; the last one drops the inputs and lists the output. */
static hr_t merge_slice(sq_store_t *q, conn_t *c, struct sq_merge *m, int64_t *budget, bool *finished)
{
    *finished = false;
    hr_t r = HR_OK;
    for (int i = 0; i < m->nin && r == HR_OK; i++)
        if (!m->in[i].done) r = in_open(c, &m->in[i]);
    int heap[ARRAY_LEN(m->in)], nh = 0;
    for (int i = 0; i < m->nin && r == HR_OK; i++) {
        const run_key_t *k;
        if ((r = in_peek(c, &m->in[i], &k)) == HR_OK && k) heap_push(m->in, heap, &nh, i);
    }
    while (r == HR_OK && nh > 0 && *budget > 0) {
        int at = heap[0];
        run_in_t *in = m->in;
        const run_key_t *min = &in[at].b.k[in[at].i];
        /* rows purged meanwhile go; a key twice (a replayed batch) once */
        bool take = min->created >= q->purged_before &&
                    !(m->have_last && sq_run_key_cmp(min, &m->last) == 0);
        if (take) {
            if ((r = out_add(&m->o, min)) != HR_OK) break;
            size_t need = min->user.n + min->id.n;
            if (need > m->lastcap) {
                m->lastcap = need * 2;
                m->lastbuf = xrealloc(m->lastbuf, m->lastcap);
            }
            memcpy(m->lastbuf, min->user.p, min->user.n);
            memcpy(m->lastbuf + min->user.n, min->id.p, min->id.n);
            m->last = (run_key_t){{m->lastbuf, min->user.n}, min->created,
                                  {m->lastbuf + min->user.n, min->id.n}, NULL};
            m->have_last = true;
        }
        (*budget)--;
        /* the next key of that input (min is stale from here) */
        in[at].i++;
        const run_key_t *k;
        if ((r = in_peek(c, &in[at], &k)) != HR_OK) break;
        if (!k) heap[0] = heap[--nh];
        heap_down(in, heap, nh, 0);
    }
    for (int i = 0; i < m->nin; i++) {
        if (m->in[i].st) sqlite3_finalize(m->in[i].st);
        m->in[i].st = NULL;
    }
    if (r != HR_OK || nh > 0) return r;
    /* every input read: they go, the output is listed */
    sqlite3_stmt *drop = sq_stmt(c, S_RUN_DROP), *unlist = sq_stmt(c, S_RUN_LIST_DROP);
    if (!drop || !unlist) r = HR_ERR;
    for (int i = 0; i < m->nin && r == HR_OK; i++) {
        sqlite3_bind_int64(drop, 1, m->in[i].run);
        r = sq_step_done(c, drop, "user runs drop");
        if (r != HR_OK) break;
        sqlite3_bind_int64(unlist, 1, m->in[i].run);
        r = sq_step_done(c, unlist, "user runs drop");
    }
    if (r == HR_OK) r = out_end(&m->o, m->level + 1); /* after the drops: its list row is new */
    if (r == HR_OK) *finished = true;
    return r;
}

/* Merge work after a sink batch: slices of the merge under way, a new one
 * when a level is full, until budget keys were merged or nothing is left.
 * c->mu held, outside a transaction. */
hr_t sq_runs_merge(sq_store_t *q, conn_t *c, int64_t budget)
{
    while (budget > 0) {
        int64_t t0 = hclock_mono_ns();
        hr_t r = sq_tx_begin(c, true);
        if (r != HR_OK) return r;
        if (!q->merge && (r = merge_begin(q, c, &q->merge)) == HR_OK && !q->merge) return sq_tx_end(c, r);
        struct sq_merge *m = q->merge;
        bool finished = false;
        int64_t before = budget;
        if (r == HR_OK) r = merge_slice(q, c, m, &budget, &finished);
        if ((r = sq_tx_end(c, r)) != HR_OK) {
            /* the slice is rolled back: the merge starts again later */
            sq_runs_merge_abort(q, c);
            return r;
        }
        /* a slice is ~20 ms; one of a second or more holds the sink up */
        int64_t ms = (hclock_mono_ns() - t0) / 1000000;
        hlog(ms >= 1000 ? HLOG_INFO : HLOG_DEBUG, LOG, "merge of level %d into run %lld: %lld keys in %lld ms%s",
             m->level, (long long)m->o.run, (long long)(before - budget), (long long)ms,
             finished ? ", done" : "");
        if (finished) {
            q->merge = NULL;
            merge_free(m);
        }
    }
    return HR_OK;
}

/* ---- a user's keys ---- */

hr_t sq_runs_user(conn_t *c, const char *user_id, int64_t **created, char ***ids, int *n)
{
    sqlite3_stmt *live = sq_stmt(c, S_RUN_LIVE);
    sqlite3_stmt *seek = sq_stmt(c, S_RUN_SEEK);
    *created = NULL;
    *ids = NULL;
    *n = 0;
    if (!live || !seek) return HR_ERR;
    hstr_t u = HSTR(user_id);
    block_t b = {0};
    int cap = 0, rc;
    hr_t r = HR_OK;
    while (r == HR_OK && (rc = sqlite3_step(live)) == SQLITE_ROW) {
        sqlite3_bind_int64(seek, 1, sqlite3_column_int64(live, 0));
        bind_str(seek, 2, user_id);
        bool past = false;
        while (!past && (rc = sqlite3_step(seek)) == SQLITE_ROW) {
            if (!block_decode(sqlite3_column_blob(seek, 0), (size_t)sqlite3_column_bytes(seek, 0), &b)) {
                log_error(LOG, "a block of the per-user runs does not decode: passed over");
                continue;
            }
            for (int i = 0; i < b.n && !past; i++) {
                int cmp = hstr_cmp(b.k[i].user, u);
                if (cmp > 0) past = true;
                if (cmp != 0) continue;
                if (*n == cap) {
                    cap = cap ? cap * 2 : 16;
                    *created = xrealloc(*created, (size_t)cap * sizeof(**created));
                    *ids = xrealloc(*ids, (size_t)cap * sizeof(**ids));
                }
                (*created)[*n] = b.k[i].created;
                (*ids)[(*n)++] = xstrndup(b.k[i].id.p, b.k[i].id.n);
            }
        }
        sqlite3_reset(seek);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs seek");
    }
    if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs");
    sqlite3_reset(live);
    block_release(&b);
    return r;
}

/* A block of a run holding keys of the user being erased. */
typedef struct hit {
    int64_t run, pos;
    char *last_user;
    void *blob;
    size_t len;
} hit_t;

hr_t sq_runs_erase_user(sq_store_t *q, conn_t *c, const char *user_id, int max, char ***ids, int *n)
{
    sq_runs_merge_abort(q, c); /* it may have copied the user's keys already */
    sqlite3_stmt *live = sq_stmt(c, S_RUN_LIVE);
    sqlite3_stmt *seek = sq_stmt(c, S_RUN_SEEK);
    sqlite3_stmt *del = sq_stmt(c, S_ERASE_RUNS);
    sqlite3_stmt *add = sq_stmt(c, S_RUN_ADD);
    *ids = NULL;
    *n = 0;
    if (!live || !seek || !del || !add) return HR_ERR;
    hstr_t u = HSTR(user_id);
    hit_t *hits = NULL;
    int nhits = 0, hcap = 0, rc;
    hr_t r = HR_OK;
    block_t b = {0};
    /* the blocks first (statements reset before any change) */
    while (r == HR_OK && (rc = sqlite3_step(live)) == SQLITE_ROW) {
        int64_t run = sqlite3_column_int64(live, 0);
        sqlite3_bind_int64(seek, 1, run);
        bind_str(seek, 2, user_id);
        while ((rc = sqlite3_step(seek)) == SQLITE_ROW) {
            const void *blob = sqlite3_column_blob(seek, 0);
            size_t len = (size_t)sqlite3_column_bytes(seek, 0);
            if (!block_decode(blob, len, &b)) continue;
            bool mine = false, past = b.n == 0;
            for (int i = 0; i < b.n; i++) {
                int cmp = hstr_cmp(b.k[i].user, u);
                mine |= cmp == 0;
                past |= cmp > 0;
            }
            if (mine) {
                if (nhits == hcap) {
                    hcap = hcap ? hcap * 2 : 16;
                    hits = xrealloc(hits, (size_t)hcap * sizeof(*hits));
                }
                hit_t *h = &hits[nhits++];
                h->run = run;
                h->last_user = col_str(seek, 1);
                h->pos = sqlite3_column_int64(seek, 2);
                h->blob = xmalloc(len);
                memcpy(h->blob, blob, len);
                h->len = len;
            }
            if (past) break;
        }
        sqlite3_reset(seek);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs seek");
    }
    if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs");
    sqlite3_reset(live);
    /* then each block without the user's keys, up to max of them */
    int cap = 0;
    block_enc_t e;
    enc_init(&e);
    for (int h = 0; h < nhits && r == HR_OK && *n < max; h++) {
        if (!block_decode(hits[h].blob, hits[h].len, &b)) continue;
        enc_reset(&e);
        for (int i = 0; i < b.n; i++) {
            if (*n < max && hstr_cmp(b.k[i].user, u) == 0) {
                if (*n == cap) {
                    cap = cap ? cap * 2 : 16;
                    *ids = xrealloc(*ids, (size_t)cap * sizeof(**ids));
                }
                (*ids)[(*n)++] = xstrndup(b.k[i].id.p, b.k[i].id.n);
                continue;
            }
            enc_add(&e, &b.k[i]);
        }
        sqlite3_bind_int64(del, 1, hits[h].run);
        bind_str(del, 2, hits[h].last_user);
        sqlite3_bind_int64(del, 3, hits[h].pos);
        r = sq_step_done(c, del, "erase user runs");
        if (r == HR_OK && e.count) { /* its new last user keeps it in order */
            size_t len;
            const unsigned char *blob = enc_finish(&e, &len);
            sqlite3_bind_int64(add, 1, hits[h].run);
            sqlite3_bind_text(add, 2, e.prev_user, (int)e.prev_n, SQLITE_STATIC);
            sqlite3_bind_int64(add, 3, hits[h].pos);
            sqlite3_bind_blob(add, 4, blob, (int)len, SQLITE_STATIC);
            r = sq_step_done(c, add, "erase user runs");
            sqlite3_clear_bindings(add);
        }
    }
    sqlite3_clear_bindings(seek);
    sqlite3_clear_bindings(del);
    enc_release(&e);
    block_release(&b);
    for (int h = 0; h < nhits; h++) {
        free(hits[h].last_user);
        free(hits[h].blob);
    }
    free(hits);
    return r;
}

hr_t sq_runs_purge(sq_store_t *q, conn_t *c, int64_t before_ms)
{
    sqlite3_stmt *a = sq_stmt(c, S_PURGE_RUNS);
    sqlite3_stmt *b = sq_stmt(c, S_PURGE_RUN_LIST);
    hr_t r = a && b ? sq_tx_begin(c, true) : HR_ERR;
    if (r == HR_OK) sq_runs_merge_abort(q, c); /* its output holds keys older than before_ms */
    if (r == HR_OK) {
        sqlite3_bind_int64(a, 1, before_ms);
        r = sq_step_done(c, a, "purge runs");
    }
    if (r == HR_OK) {
        sqlite3_bind_int64(b, 1, before_ms);
        r = sq_step_done(c, b, "purge run list");
    }
    r = sq_tx_end(c, r);
    if (r == HR_OK && before_ms > q->purged_before) q->purged_before = before_ms;
    return r;
}

hr_t sq_runs_init(sq_store_t *q)
{
    conn_t *c = &q->w;
    sqlite3_stmt *st = sq_stmt(c, S_RUN_MAX);
    if (!st) return HR_ERR;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) q->next_run = sqlite3_column_int64(st, 0) + 1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return sq_err(c, rc, "user runs");
    /* runs with blocks and no user_run_list row: a merge's output that a
     * crash cut short (one index seek per run number) */
    sqlite3_stmt *next = NULL, *listed = NULL, *del = NULL;
    hr_t r = HR_OK;
    if (sqlite3_prepare_v2(c->db, "SELECT run FROM user_chunks WHERE run > ?1 ORDER BY run LIMIT 1", -1, &next,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "SELECT 1 FROM user_run_list WHERE run = ?1", -1, &listed, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "DELETE FROM user_chunks WHERE run = ?1", -1, &del, NULL) != SQLITE_OK)
        r = sq_err(c, sqlite3_errcode(c->db), "user runs check");
    int64_t run = INT64_MIN;
    while (r == HR_OK) {
        sqlite3_bind_int64(next, 1, run);
        rc = sqlite3_step(next);
        if (rc != SQLITE_ROW) {
            if (rc != SQLITE_DONE) r = sq_err(c, rc, "user runs check");
            break;
        }
        run = sqlite3_column_int64(next, 0);
        sqlite3_reset(next);
        sqlite3_bind_int64(listed, 1, run);
        rc = sqlite3_step(listed);
        sqlite3_reset(listed);
        if (rc == SQLITE_DONE) {
            sqlite3_bind_int64(del, 1, run);
            r = sq_step_done(c, del, "user runs check");
            if (r == HR_OK)
                log_info(LOG, "deleted the blocks of run %lld: a merge cut short by a stop", (long long)run);
        } else if (rc != SQLITE_ROW) {
            r = sq_err(c, rc, "user runs check");
        }
    }
    sqlite3_finalize(next);
    sqlite3_finalize(listed);
    sqlite3_finalize(del);
    return r;
}

/* Version 8 -> 9: every live run of user_runs (a row per key) becomes
 * blocks of user_chunks under the same run number; user_runs goes. */
hr_t sq_runs_migrate_9(conn_t *c, int64_t *keys)
{
    sqlite3_stmt *runs = NULL, *rows = NULL;
    hr_t r = HR_OK;
    *keys = 0;
    /* a version 6 to 8 database has user_runs; nothing to move otherwise */
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name ="
                                  " 'user_runs'", -1, &runs, NULL) != SQLITE_OK) {
        r = sq_err(c, sqlite3_errcode(c->db), "user runs migration");
        goto out;
    }
    bool present = sqlite3_step(runs) == SQLITE_ROW;
    sqlite3_finalize(runs);
    runs = NULL;
    if (!present) goto out;
    if (sqlite3_prepare_v2(c->db, "SELECT run FROM user_run_list ORDER BY run", -1, &runs, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "SELECT user_id, created_at, notification_id FROM user_runs"
                                  " WHERE run = ?1 ORDER BY user_id, created_at, notification_id",
                           -1, &rows, NULL) != SQLITE_OK) {
        r = sq_err(c, sqlite3_errcode(c->db), "user runs migration");
        goto out;
    }
    int rc;
    while (r == HR_OK && (rc = sqlite3_step(runs)) == SQLITE_ROW) {
        run_out_t o;
        if ((r = out_init(&o, c, sqlite3_column_int64(runs, 0))) != HR_OK) break;
        sqlite3_bind_int64(rows, 1, o.run);
        while (r == HR_OK && (rc = sqlite3_step(rows)) == SQLITE_ROW) {
            const char *u = (const char *)sqlite3_column_text(rows, 0);
            size_t un = (size_t)sqlite3_column_bytes(rows, 0);
            int64_t cr = sqlite3_column_int64(rows, 1);
            const char *id = (const char *)sqlite3_column_text(rows, 2);
            size_t idn = (size_t)sqlite3_column_bytes(rows, 2);
            run_key_t k = {{u ? u : "", un}, cr, {id ? id : "", idn}, NULL};
            r = out_add(&o, &k);
        }
        if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs migration");
        sqlite3_reset(rows);
        hr_t e = out_flush(&o); /* the run keeps its user_run_list row */
        if (r == HR_OK) r = e;
        *keys += o.rows;
        enc_release(&o.e);
    }
    if (r == HR_OK && rc != SQLITE_DONE) r = sq_err(c, rc, "user runs migration");
    if (r == HR_OK && sqlite3_exec(c->db, "DROP TABLE user_runs", NULL, NULL, NULL) != SQLITE_OK)
        r = sq_err(c, sqlite3_errcode(c->db), "user runs migration");
out:
    sqlite3_finalize(runs);
    sqlite3_finalize(rows);
    return r;
}
