/*
 * store_sqlite_int.h - what the SQLite backend's files share: the
 * connection and store structs, the statement ids, and the helpers that
 * run statements and bind or read columns.
 *
 *   store_sqlite.c        open/close, pragmas, WAL, checkpointer, schema,
 *                         the statement table, the helpers below
 *   store_sqlite_users.c  users, preferences, subscriptions, follows,
 *                         templates
 *   store_sqlite_notif.c  notification write/read/list/sent, purge
 *   store_sqlite_runs.c   the per-user listing's sorted runs (blocks of
 *                         keys): write, merge, read, erase, purge
 *   store_sqlite_claims.c the event dedupe claims, in generations
 *   store_sqlite_inbox.c  the in-app inbox
 *   store_sqlite_flow.c   dispatch policy: scheduled (deferred)
 *                         notifications, invalid addresses, redriven DLQ
 *                         entries
 *
 * The DESIGN note is atop store_sqlite.c. Conventions for every function
 * here: "c->mu held" means the caller locked the connection; a statement is
 * reset before its connection's mutex is released.
 */
#ifndef HERALD_STORE_SQLITE_INT_H
#define HERALD_STORE_SQLITE_INT_H

#include "core/hex.h"
#include "store/store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#define SQ_LOG "store"

/* Notifications per purge transaction. */
#define SQ_PURGE_CHUNK 5000
/* Status log rows per purge transaction. */
#define SQ_PURGE_LOG_CHUNK 20000
/* Runs of one level merged into one run of the next (user_chunks). Each
 * key is rewritten about log_FANIN(rows / batch) times and a listing reads
 * at most FANIN - 1 runs per level (a seek each). 32 rather than 16: the
 * merges were ~31 % of the status sink's thread in the pipeline; `herald
 * bench sink --rows 6000000` (batches of 8,192, two pairs alternated) 3.52 /
 * 3.87 -> 3.27 / 3.62 CPU-us a row; a listing reads at most 31 runs a level
 * (~1,200 batches of 8,192, 10M rows: 11 runs in all, 20 with 16). */
#define SQ_RUN_FANIN 32
/* Notifications (and, separately, followers) per erase transaction: keeps
 * each one to tens of milliseconds (store_user_erase). */
#define SQ_ERASE_CHUNK 1000

typedef enum stmt_id {
    S_BEGIN,
    S_BEGIN_IMMEDIATE,
    S_COMMIT,
    S_ROLLBACK,
    S_VERSION_GET,
    S_USER_PUT,
    S_CHG_ADD,
    S_CHG_PRUNE,
    S_USER_GET,
    S_DEV_DEL,
    S_DEV_ADD,
    S_DEV_GET,
    S_PREF_DEL,
    S_PREF_ADD,
    S_PREF_GET,
    S_USER_SCAN,
    S_DEV_SCAN,
    S_PREF_SCAN,
    S_SUB_ADD,
    S_SUB_DEL,
    S_SUB_PAGE,
    S_FOLLOW_ADD,
    S_FOLLOW_PAGE,
    S_TPL_PUT,
    S_TPL_GET,
    S_TPL_CHANNELS,
    S_LOG_ADD,
    S_LOG_HAS,
    S_LOG_MAX,
    S_RUN_ADD,
    S_RUN_LIST_ADD,
    S_RUN_MAX,
    S_NOTIF_GET,
    S_RUN_LIVE,
    S_RUN_SEEK,
    S_NOTIF_STATUS,
    S_PURGE_PICK,
    S_PURGE_RUNS,
    S_PURGE_RUN_LIST,
    S_RUN_FULL_LEVEL,
    S_RUN_MERGE,
    S_RUN_MERGE_MAX,
    S_RUN_DROP,
    S_RUN_LIST_DROP,
    S_ERASE_LOG,
    S_ERASE_RUNS,
    S_SCHED_PUT,
    S_SCHED_DUE,
    S_SCHED_NEXT,
    S_SCHED_DEL,
    S_ADDR_BAD_ADD,
    S_ADDR_BAD_GET,
    S_DLQ_MARK,
    S_DLQ_GET,
    S_KEY_PUT,
    S_KEY_GET,
    S_KEY_LIST,
    S_KEY_REVOKE,
    S_ERASE_FOLLOWERS,
    S_ERASE_USER,
    S_ERASE_PREFS,
    S_ERASE_SUBS,
    S_ERASE_FOLLOWING,
    S_ERASE_ADDR,
    S_ERASE_SCHED,
    S_FOLLOW_DEL,
    S_FOLLOWING_PAGE,
    S_USER_TOPICS_PAGE,
    S_ERASE_INBOX,
    S_INBOX_PUT,
    S_INBOX_LIST,
    S_INBOX_COUNTS,
    S_INBOX_MARK,
    S_INBOX_DEL,
    S_PURGE_INBOX,
    S_USER_FULL,
    S_LOG_ADD_N,                /* SQ_LOG_ADD_ROWS rows of S_LOG_ADD at once */
    S__COUNT
} stmt_id_t;

/* Status log rows per INSERT statement of the sink (S_LOG_ADD_N). */
#define SQ_LOG_ADD_ROWS 64

/* One SQLite connection with its statement cache. Invariant: every cached
 * statement is reset whenever mu is not held. */
/* A buffer kept from one call to the next, grown when too small. The
 * sink's batch buffers (~8 MB for 16,384 rows) were malloc'd and freed per
 * batch: each above glibc's mmap threshold or trimmed off the arena's top,
 * so every batch faulted its pages in again, zeroed by the kernel - 8-10 %
 * of the status thread's samples at 200k rows/s (bench/notes.md, round
 * 27). Kept, they cost their size in RSS while the store is open. */
typedef struct sq_buf {
    void *p;
    size_t cap;
} sq_buf_t;
/* At least n bytes of b; its contents are not kept. */
void *sq_buf(sq_buf_t *b, size_t n);
/* At least n bytes of b, its contents kept (a realloc). */
void *sq_buf_grow(sq_buf_t *b, size_t n);
void sq_buf_free(sq_buf_t *b);
/* The sink's batch buffers (sq_store_t.wb). */
enum { SQB_KEYS, SQB_KBIN, SQB_ORD, SQB_FRESH, SQB_SCRATCH, SQB_SORT_REF, SQB_SORT_OUT, SQB__COUNT };
_Static_assert(SQB_SORT_OUT == SQB_SORT_REF + 1, "sq_run_keys_sort takes the two as an array");

typedef struct conn {
    sqlite3 *db;
    pthread_mutex_t mu;
    _Atomic int waiters;        /* short writes waiting for mu (writer only) */
    sqlite3_stmt *st[S__COUNT];
} conn_t;

typedef enum conn_role { ROLE_WRITER, ROLE_READER, ROLE_CHECKPOINT, ROLE_DEDUPE } conn_role_t;

/* Ascending ranges of rowids [lo, hi]. */
typedef struct sq_seq_range {
    int64_t lo, hi;
} sq_seq_range_t;
typedef struct sq_seq_ranges {
    sq_seq_range_t *v;
    int n, cap;
} sq_seq_ranges_t;

typedef struct sq_store {
    store_t base;               /* first: store_t* <-> sq_store_t* */
    conn_t w;                   /* writer: every write, the schema */
    conn_t r;                   /* reader (unused for in-memory databases) */
    conn_t *rd;                 /* &r, or &w when the database is in memory */
    conn_t ev;                  /* the dedupe database (events), its own file and writer */
    conn_t ck;                  /* checkpointer (file databases) */
    conn_t ev_ck;               /* checkpointer of the dedupe database */
    _Atomic int ev_frames;      /* frames in the dedupe WAL after its last commit */
    pthread_t ck_thread;
    bool ck_started;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    bool ck_stop;
    _Atomic int wal_frames;     /* frames in the WAL after the last commit */
    /* The change feed across processes (sqlite.sql's change_log), read by
     * the checkpointer thread: the last row announced, when the next read
     * is due, whether it runs (a file database with a checkpointer) and
     * whether store.c's feed exists yet (sq_opened). */
    int64_t chg_seq;
    int64_t chg_next_ns;
    bool chg_on;
    _Atomic bool feed_ready;
    /* The log rows this process wrote (sq_change_note), which the reader
     * skips (store.c announced them at commit): ranges of seq in the open
     * transaction (under w.mu), then committed ones (chg_mu). */
    sq_seq_ranges_t chg_pend;
    sq_seq_ranges_t chg_own;
    pthread_mutex_t chg_mu;
    char damage[512];           /* what the checks at open found; "" = nothing */
    /* The per-user runs (store_sqlite_runs.c), under w.mu: the next run's
     * number (above every run in user_chunks, so a run is appended) and
     * the purge's last horizon (a merge drops older rows). */
    int64_t next_run;
    int64_t purged_before;
    uint64_t corrupt_at_open;   /* sq_corrupt_reports() when opened */
    struct sq_claims *claims;   /* the dedupe generations (store_sqlite_claims.c), under ev.mu */
    struct sq_seen *seen;       /* ids the sink stored lately (store_sqlite_notif.c), under w.mu */
    struct sq_merge *merge;     /* the per-user runs' merge under way (store_sqlite_runs.c), under w.mu */
    /* The status sink's batch buffers, kept from one batch to the next
     * (sq_buf_t), under wb_mu (taken before w.mu). */
    pthread_mutex_t wb_mu;
    sq_buf_t wb[SQB__COUNT];
} sq_store_t;

static inline sq_store_t *sq(store_t *s) { return (sq_store_t *)s; }

/* store_sqlite.c: notes in change_log (sqlite.sql) that the user (kind
 * SQ_CHG_USER, id) or the templates (SQ_CHG_TEMPLATES, id NULL) changed, in
 * the writer's open transaction (c is q->w, its mu held). */
enum { SQ_CHG_USER = 0, SQ_CHG_TEMPLATES = 1 };
hr_t sq_change_note(sq_store_t *q, conn_t *c, int kind, const char *id);

/* ---- damage (store_sqlite_check.c) ---- */

/* Routes SQLite's error log to herald's log (rate-limited). Call before
 * the first connection of the process; later calls do nothing. */
void sq_log_install(void);
/* Corruption reports SQLite logged so far in this process. */
uint64_t sq_corrupt_reports(void);
/* Does this WAL image (len bytes) hold committed frames that SQLite's
 * recovery would drop (a damaged frame before them, or a damaged header)?
 * why says what. Pure: for tests. */
bool sq_wal_damaged(const unsigned char *wal, size_t len, char *why, size_t why_len);
/* Checks <db_path>-wal before SQLite reads it. HR_ERR when damaged (why
 * filled; the WAL is copied to <db_path>-wal.damaged-<unix time>); HR_OK
 * when sound or absent. */
hr_t sq_wal_check(const char *db_path, char *why, size_t why_len);
/* PRAGMA quick_check, stopped after time_ms (0: skipped; a check cut
 * short is logged and counts as passed). HR_ERR with why when damaged. */
hr_t sq_quick_check(sqlite3 *db, const char *path, int time_ms, char *why, size_t why_len);

/* ---- running statements (store_sqlite.c) ---- */

/* Locks the writer for a short write, asking a running batch to let it in
 * (see the DESIGN note in store_sqlite.c). */
void sq_writer_lock(conn_t *c);
/* Maps a failed SQLite call to a result: busy/locked -> HR_AGAIN,
 * constraint -> HR_CONFLICT, else HR_ERR; logs it. */
hr_t sq_err(conn_t *c, int rc, const char *what);
/* The connection's cached statement; prepared on first use. NULL (logged)
 * if preparing fails. c->mu held; reset it before unlocking. */
sqlite3_stmt *sq_stmt(conn_t *c, stmt_id_t id);
/* Steps a statement that returns no rows, then resets it. */
hr_t sq_step_done(conn_t *c, sqlite3_stmt *st, const char *what);
/* BEGIN (read) or BEGIN IMMEDIATE (write). */
hr_t sq_tx_begin(conn_t *c, bool write);
/* Ends a transaction begun with sq_tx_begin: commits if r is HR_OK,
 * otherwise rolls back. Returns the outcome. */
hr_t sq_tx_end(conn_t *c, hr_t r);

/* Reads the current row of st into elem (zeroed) for sq_collect. */
typedef void (*sq_row_fn)(sqlite3_stmt *st, void *elem);

/* A growing array that sq_collect fills; v is owned by the caller. */
typedef struct sq_rows {
    void *v;
    int n, cap;
} sq_rows_t;

/* Steps st (already bound) through its rows, appending each to rows (as
 * elements of `size` bytes read by `read`), at most max rows; *more (may
 * be NULL) tells whether a row follows the last one taken. Resets st. On
 * error the rows read so far stay in rows for the caller to free. */
hr_t sq_collect(conn_t *c, sqlite3_stmt *st, size_t size, int max, sq_row_fn read,
                sq_rows_t *rows, bool *more, const char *what);

/* ---- binding and reading (inline: the status sink binds per row) ---- */

/* NULL binds SQL NULL. */
static inline void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* hstr_t is not NUL-terminated: always bind with its length. */
static inline void bind_hstr(sqlite3_stmt *st, int i, hstr_t h)
{
    sqlite3_bind_text(st, i, h.p ? h.p : "", (int)h.n, SQLITE_STATIC);
}

/* Empty binds SQL NULL. */
static inline void bind_hstr_opt(sqlite3_stmt *st, int i, hstr_t h)
{
    if (h.n)
        sqlite3_bind_text(st, i, h.p, (int)h.n, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* A copy of a text column; NULL for SQL NULL. */
static inline char *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return NULL;
    return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

static inline bool nonempty(const char *s) { return s && s[0]; }

/* ---- notification ids in status_log (schema version 10) ----
 *
 * An id of 32 lowercase hex digits (model/notif.h makes those) is stored
 * as a 16-byte blob, which sorts as its text does; any other id as its
 * text. SQLite orders every text below every blob, and a text never
 * equals a blob, so the two kinds never meet. */
#define SQ_ID_BIN 16
/* The value of 16 lowercase hex digits at p (any alignment); false when
 * one is not such a digit (core/hex.h). */
static inline bool sq_hex16(const char *p, uint64_t *v) { return hex16_value(p, v, false); }

/* The value of a 32-lowercase-hex-digit id as two integers (hi: the first
 * 16 digits); false for any other id. */
static inline bool sq_id_to_u128(hstr_t id, uint64_t *hi, uint64_t *lo)
{
    if (id.n != 2 * SQ_ID_BIN) return false;
    bool a = sq_hex16(id.p, hi), b = sq_hex16(id.p + 16, lo);
    return a && b;
}

/* The 16 bytes of a 32-lowercase-hex-digit id into out; false (out
 * undefined) for any other id (store_sqlite_runs.c). */
bool sq_id_to_bin(hstr_t id, unsigned char out[SQ_ID_BIN]);
/* Binds an id as status_log stores it; buf holds the bytes until the
 * statement has run (bound SQLITE_STATIC, as the text is). */
static inline void bind_id(sqlite3_stmt *st, int i, hstr_t id, unsigned char buf[SQ_ID_BIN])
{
    if (sq_id_to_bin(id, buf))
        sqlite3_bind_blob(st, i, buf, SQ_ID_BIN, SQLITE_STATIC);
    else
        bind_hstr(st, i, id);
}
/* A copy of an id column of status_log as text (a blob back in hex);
 * NULL for SQL NULL. */
char *sq_col_id(sqlite3_stmt *st, int i);

/* ---- the ops, by file ---- */

/* store_sqlite_users.c */
hr_t sq_user_put(store_t *s, const user_t *u);
hr_t sq_user_put_batch(store_t *s, const user_t *users, int n);
hr_t sq_user_get(store_t *s, const char *user_id, user_t *out);
hr_t sq_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                        pref_t **prefs, int *nprefs);
hr_t sq_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                   int *nprefs, int *n);
hr_t sq_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n);
hr_t sq_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n);
hr_t sq_sub_add(store_t *s, const char *topic, const char *user_id, bool *created);
hr_t sq_sub_del(store_t *s, const char *topic, const char *user_id);
hr_t sq_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                  int *n);
hr_t sq_follow_add(store_t *s, const char *follower, const char *actor, bool *created);
hr_t sq_followers_page(store_t *s, const char *actor, const char *after, int limit, char ***ids,
                       int *n);
hr_t sq_user_erase(store_t *s, const char *user_id, store_erase_t *st);
hr_t sq_follow_del(store_t *s, const char *follower, const char *actor);
hr_t sq_following_page(store_t *s, const char *follower, const char *after, int limit,
                       char ***ids, int *n);
hr_t sq_user_topics_page(store_t *s, const char *user_id, const char *after, int limit,
                         char ***topics, int *n);
hr_t sq_template_put(store_t *s, const template_rec_t *t);
hr_t sq_template_get(store_t *s, const char *event_type, channel_t ch,
                     const char *const chain[STORE_LOCALE_CHAIN], template_rec_t *out);
hr_t sq_template_channels(store_t *s, const char *event_type, unsigned *mask);

/* store_sqlite_claims.c (the dedupe claims; DESIGN note there) */
typedef struct sq_claims sq_claims_t;
/* Reads the generations of the dedupe database (q->ev, schema made),
 * moving a table of an older store into them. window_ms, gen_claims: 0 =
 * the defaults. q->claims is set even on failure (sq_claims_close frees). */
hr_t sq_claims_open(sq_store_t *q, int64_t window_ms, int gen_claims);
void sq_claims_close(sq_store_t *q);
/* Retention: drops the generations sealed before before_ms. */
hr_t sq_claims_purge(store_t *s, int64_t before_ms);
hr_t sq_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out);
hr_t sq_event_claim_batch(store_t *s, const char *const *ids, const char *const *positions,
                          int n, claim_t *out);
hr_t sq_event_release(store_t *s, const char *event_id);

/* store_sqlite_notif.c */
hr_t sq_notif_write_batch(store_t *s, const notif_t *const *recs, int n);
hr_t sq_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                  status_hist_t **hist, int *nhist);
hr_t sq_notif_list_user(store_t *s, const char *user_id, int64_t after_ms, const char *after_id,
                        int limit, notif_row_t **rows, int *n, bool *more);
hr_t sq_notif_sent(store_t *s, const char *notification_id, bool *sent);
hr_t sq_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent);
hr_t sq_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted);
/* Registers herald_log_rec() on a connection: a version 7 status log row
 * as the row record of version 8 (the migration, sqlite_migrate_8.sql);
 * and herald_id(): a text id as status_log stores it since version 10
 * (sqlite_migrate_10.sql). */
hr_t sq_log_rec_register(sqlite3 *db);
/* Frees q->seen (store_sqlite_notif.c). */
void sq_seen_free(sq_store_t *q);

/* SQ_DEFINE_SORT(name, type, less): defines
 *   static void name(type *a, int n, type *tmp)
 * a stable natural merge sort of a[0..n) by less(const type *, const
 * type *) (tmp: room for n elements). Written out rather than qsort: the
 * comparison is inlined instead of called through a pointer, and input
 * that is already in order or made of sorted stretches (a status batch
 * arrives roughly in id order) costs a pass or a few: qsort of the sink's
 * batch and of its run's keys was ~11 % of `herald bench sink`'s store
 * CPU. Stretches are first made at least 16 long by insertion. */
#define SQ_DEFINE_SORT(name, type, less)                                                     \
    static void name(type *a, int n, type *tmp)                                              \
    {                                                                                        \
        enum { MIN_RUN = 16 };                                                               \
        if (n < 2) return;                                                                   \
        for (int lo = 0; lo < n;) { /* stretches of at least MIN_RUN, in order */            \
            int hi = lo + 1;                                                                 \
            while (hi < n && !less(&a[hi], &a[hi - 1])) hi++;                                \
            int end = hi - lo < MIN_RUN ? (lo + MIN_RUN < n ? lo + MIN_RUN : n) : hi;        \
            for (int i = hi; i < end; i++) {                                                 \
                type v = a[i];                                                               \
                int j = i;                                                                   \
                for (; j > lo && less(&v, &a[j - 1]); j--) a[j] = a[j - 1];                  \
                a[j] = v;                                                                    \
            }                                                                                \
            lo = end;                                                                        \
        }                                                                                    \
        type *src = a, *dst = tmp;                                                           \
        for (;;) { /* merge neighbouring stretches until one is left */                      \
            int merged = 0;                                                                  \
            for (int lo = 0; lo < n; merged++) {                                             \
                int mid = lo + 1;                                                            \
                while (mid < n && !less(&src[mid], &src[mid - 1])) mid++;                    \
                int hi = mid;                                                                \
                if (hi < n) hi++;                                                            \
                while (hi < n && !less(&src[hi], &src[hi - 1])) hi++;                        \
                int i = lo, j = mid, k = lo;                                                 \
                while (i < mid && j < hi) dst[k++] = less(&src[j], &src[i]) ? src[j++] : src[i++]; \
                while (i < mid) dst[k++] = src[i++];                                         \
                while (j < hi) dst[k++] = src[j++];                                          \
                lo = hi;                                                                     \
            }                                                                                \
            type *t = src;                                                                   \
            src = dst;                                                                       \
            dst = t;                                                                         \
            if (merged == 1) break;                                                          \
        }                                                                                    \
        if (src != a) memcpy(a, src, (size_t)n * sizeof(*a));                                \
    }

/* store_sqlite_runs.c: the per-user listing (schema version 9). A key of
 * a run; the strings belong to the caller. */
typedef struct run_key {
    hstr_t user;
    int64_t created;
    hstr_t id;
    /* id's 16 bytes (sq_id_to_bin) when the key's maker has them at hand
     * (the sink's batch, a decoded block), so that a block is written
     * without reading the text again; NULL: from id */
    const unsigned char *bin;
} run_key_t;
/* Order of run keys: user, created, id (SQLite's BINARY order). */
int sq_run_key_cmp(const void *a, const void *b);
/* Sorts keys[0..n) by sq_run_key_cmp (stable). room: two buffers it may
 * keep (sq_buf_t), or NULL for its own, freed before it returns. */
void sq_run_keys_sort(run_key_t *keys, int n, sq_buf_t room[2]);
/* Appends keys[0..n) (sorted here) as one level-0 run with its
 * user_run_list row. c->mu held, inside the write transaction. */
hr_t sq_run_write(sq_store_t *q, conn_t *c, run_key_t *keys, int n);
/* Merge work: the merge under way goes on, and one starts when a level
 * has SQ_RUN_FANIN runs, until budget keys were merged or nothing is
 * left; a transaction per slice. c->mu held, outside a transaction. */
hr_t sq_runs_merge(sq_store_t *q, conn_t *c, int64_t budget);
/* Abandons the merge under way, if any: its output blocks go (inside the
 * caller's transaction, or on their own). c->mu held. */
void sq_runs_merge_abort(sq_store_t *q, conn_t *c);
/* The user's keys in the live runs, unsorted, possibly repeated: created
 * times and ids (owned by the caller, each id and both arrays). c->mu
 * held, inside a read transaction. */
hr_t sq_runs_user(conn_t *c, const char *user_id, int64_t **created, char ***ids, int *n);
/* Takes up to max of the user's keys out of the live runs; their ids into
 * *ids (owned by the caller). c->mu held, inside the write transaction. */
hr_t sq_runs_erase_user(sq_store_t *q, conn_t *c, const char *user_id, int max, char ***ids, int *n);
/* Retention: the runs whose every key is older than before_ms go whole;
 * merges drop older keys from then on. c->mu held, outside a transaction. */
hr_t sq_runs_purge(sq_store_t *q, conn_t *c, int64_t before_ms);
/* q->next_run from the database, and the blocks of a merge a crash cut
 * short deleted (at open, w.mu held or not yet shared). */
hr_t sq_runs_init(sq_store_t *q);
/* Schema migration to version 9: user_runs (a row per key) becomes blocks
 * of user_chunks; *keys = keys moved. Inside the schema transaction. */
hr_t sq_runs_migrate_9(conn_t *c, int64_t *keys);
/* Keys of user in a block (-1: it does not decode). For tests. */
int sq_block_count_user(const void *data, size_t len, const char *user);

/* store_sqlite_flow.c */
hr_t sq_sched_put(store_t *s, const char *notification_id, hstr_t user_id, channel_t ch,
                  int64_t due_at_ms, const void *rec, size_t rec_len);
/* Schema migration to version 3: fills scheduled.user_id of the rows that
 * lack it from their records. c->mu held, inside the schema transaction. */
hr_t sq_sched_fill_users(conn_t *c, int64_t *filled);
hr_t sq_sched_due(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n);
hr_t sq_sched_next(store_t *s, int64_t *due);
hr_t sq_sched_del(store_t *s, const char *notification_id, int64_t due_at_ms);
hr_t sq_address_invalid_add(store_t *s, const char *user_id, channel_t ch, const char *address,
                            const char *reason, int64_t at_ms);
hr_t sq_address_invalid_get(store_t *s, const char *user_id, channel_t ch, const char *address,
                            bool *invalid);
hr_t sq_dlq_mark(store_t *s, const char *dlq_id, int64_t at_ms, bool *first);
/* store_sqlite_keys.c */
hr_t sq_key_put(store_t *s, const api_key_rec_t *k);
hr_t sq_key_get(store_t *s, const char *key_id, api_key_rec_t *out);
hr_t sq_key_list(store_t *s, api_key_rec_t **out, int *n);
hr_t sq_key_revoke(store_t *s, const char *key_id, int64_t at_ms);
hr_t sq_dlq_get(store_t *s, const char *dlq_id, bool *done);
/* store_sqlite_inbox.c */
hr_t sq_inbox_put(store_t *s, const inbox_item_t *it, bool *created);
hr_t sq_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                   const char *after_id, int limit, inbox_item_t **items, int *n, bool *more);
hr_t sq_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen);
hr_t sq_inbox_mark(store_t *s, const char *user_id, const char *notification_id, inbox_mark_t m,
                   int64_t at_ms, int64_t *changed);
hr_t sq_inbox_del(store_t *s, const char *user_id, const char *notification_id);

/* store_sqlite_feed.c (pull fan-out's actor feed) */
hr_t sq_feed_put(store_t *s, const char *actor, const char *after_key, int priority,
                 const inbox_item_t *it, bool *created);
hr_t sq_followers_count(store_t *s, const char *actor, int64_t limit, int64_t *n);
hr_t sq_feed_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                  const char *after_id, int limit, inbox_item_t **items, int **prio, int *n,
                  bool *more);
hr_t sq_feed_mark(store_t *s, const char *user_id, const char *notification_id, inbox_mark_t m,
                  int64_t at_ms, int64_t *changed);
hr_t sq_feed_del(store_t *s, const char *user_id, const char *notification_id);
/* Erasing a user (c->mu held, inside the caller's transaction): its feed
 * states and, as an actor, its feed items. *count += rows deleted. */
hr_t sq_feed_erase(conn_t *c, const char *user_id, int64_t *count);

/* store_sqlite_digest.c (digests) */
hr_t sq_digest_add_batch(store_t *s, int64_t now_ms, digest_add_t *v, int n);
hr_t sq_digest_close(store_t *s, const char *digest_id, digest_info_t *out);
/* Erasing a user (c->mu held, inside the caller's transaction): its
 * digests and members. *count += rows deleted. */
hr_t sq_digest_erase(conn_t *c, const char *user_id, int64_t *count);
/* Retention (c->mu held): closed digests due before before_ms and members
 * added before it. *count += rows deleted. */
hr_t sq_digest_purge(conn_t *c, int64_t before_ms, int64_t *count);

#endif
