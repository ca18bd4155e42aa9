/*
 * bus_embedded_int.h - what the files of the embedded bus share (private to
 * src/bus/bus_embedded*.c and the segment scanner's fuzz target).
 *
 *   bus_embedded.c        open/close, topics, produce, consumers and poll
 *   bus_embedded_log.c    files: segments, the record scanner, recovery (torn
 *                         tail, damage, missing segments), topic metadata,
 *                         retention, health
 *   bus_embedded_group.c  consumer groups: offsets files, assignment,
 *                         rebalance, commit, offline reset and lag
 *   bus_embedded_flush.c  the flusher (writes, acks), the fsync policy (syncer)
 *
 * The design and invariants are described atop bus_embedded.c and above each
 * struct below.
 */
#ifndef HERALD_BUS_EMBEDDED_INT_H
#define HERALD_BUS_EMBEDDED_INT_H

#include "bus/bus_int.h"
#include "core/cond.h"
#include "core/crc32c.h"
#include "core/endian.h"
#include "core/hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zlib.h>

/* Record: u32 len (whole record), u32 crc (of bytes 8..len), i64 offset,
 * i64 append time ms, u32 key field, key, value. Little-endian. The key
 * field holds the key length in its low 24 bits (a record is at most 16 MiB)
 * and attribute bits above: REC_ATTR_CRC32C says the crc is CRC-32C; without
 * it the crc is zlib's CRC-32, as every record written before CRC-32C was
 * (those segments stay readable, record by record: an active segment may
 * hold both). Other attribute bits set make the record invalid. */
#define REC_HDR 28
#define REC_KLEN_MASK 0x00FFFFFFu
#define REC_ATTR_CRC32C 0x80000000u
#define REC_MAX ((size_t)16 << 20)
/* One sparse index entry (16 bytes, kept in memory for as long as the
 * segment lives) per 64 KiB of log: 1/4096 of the retained log, where one
 * per 4 KiB held 1/256 (4 MB in the 1M-user benchmark's burst, ~400 MB per
 * 100 GB retained). The index only places a reader that starts in the
 * middle of a segment (takeover, reset); it then skips at most 64 KiB of
 * records, a quarter of its first READ_CHUNK read. */
#define IDX_STEP ((int64_t)64 << 10)
#define URGENT_BYTES ((size_t)256 << 10)
#define READ_CHUNK ((size_t)256 << 10)
#define SCAN_CHUNK ((size_t)1 << 20)
/* A partition's pending buffer (and so its spare) stays below this: past it
 * producers get HR_AGAIN and wait for the flusher. 64 MiB let a burst's
 * buffers grow to 2-4 MiB each (~45 MB of herald's peak RSS with 1M users);
 * the flusher is woken at URGENT_BYTES, a quarter of this. */
#define DEF_MAX_PENDING ((int64_t)1 << 20)
#define DEF_SEGMENT_BYTES ((int64_t)64 << 20)
#define MIN_SEGMENT_BYTES ((int64_t)1024)
#define SHRINK_BYTES ((size_t)4 << 20)
/* The flusher reserves the active segment's blocks this far ahead of the
 * writes (fallocate, keeping the size): appending into reserved blocks
 * costs the kernel less than allocating them write by write. */
#define PREALLOC_STEP ((int64_t)4 << 20)
#define TOPIC_SLOTS 4096              /* power of two */
#define MAX_TOPICS 2048
#define MAX_PARTITIONS 1024
#define NAME_MAX_LEN 127
#define AUTOCOMMIT_MS 1000
/* The committer writes the offsets files at most once per this many ms
 * (commits in between are folded into the next round). */
#define COMMIT_ROUND_MS 100
/* An offsets journal longer than this is rewritten whole (compacted). */
#define OFFSETS_COMPACT_BYTES ((int64_t)1 << 20)
#define HOUSEKEEP_MS 1000
/* Resynchronising after damage accepts a record whose offset is at most this
 * far past what the skipped bytes could hold (failed writes leave gaps). */
#define RESYNC_GAP ((int64_t)1 << 24)

enum { FSYNC_NEVER, FSYNC_INTERVAL, FSYNC_ALWAYS };

/* ---- types ---- */

typedef struct idx_ent {
    int64_t off;
    int64_t pos;
} idx_ent_t;

/* Damaged bytes [pos, end) of a segment file, skipped by readers; recs is
 * how many offsets went missing with them (counted once, when found). */
typedef struct hole {
    int64_t pos, end;
    int64_t first, recs; /* first missing offset (-1 unknown), how many */
} hole_t;

/* One segment file. Guarded by its partition's seg_mu, except that the
 * flusher alone writes the active (last, unsealed) segment's file.
 * Invariants: records in [0, size) are written and verified; base <= every
 * offset in the file; the list holds one reference, readers one each; fd is
 * closed when the segment is sealed, synced and only the list refers to it. */
typedef struct seg {
    int64_t base;
    int64_t end;        /* offset after the last record (when indexed) */
    int64_t size;       /* readable bytes */
    int64_t synced;     /* bytes known to be on disk (or not needing sync) */
    int64_t max_ts;     /* newest append time (mtime for unindexed segments) */
    int64_t idx_next;   /* flusher: file position of the next index entry */
    int64_t prealloc;   /* flusher: blocks are reserved (fallocate) up to here */
    int fd;
    int refs;
    bool sealed;
    bool indexed;
    bool dead;          /* deleted by retention */
    idx_ent_t *idx;
    size_t nidx, cidx;
    hole_t *holes;      /* damaged ranges found so far, by position */
    size_t nholes, choles;
    char *path;
} seg_t;

typedef struct ack_run {
    bus_batch_t *b;
    int64_t n;
} ack_run_t;

/* One batch's acknowledgements in one flush (all its partitions). */
typedef struct ack_out {
    bus_batch_t *b;
    int64_t ok, err;
} ack_out_t;

typedef struct topic topic_t;

typedef struct part {
    topic_t *t;
    int32_t id;
    char *dir;

    /* producer side, under mu */
    pthread_mutex_t mu;
    char *pend;
    size_t plen, pcap;
    ack_run_t *acks;
    size_t nacks, cacks;
    int64_t next_off;
    int64_t last_ts;
    /* pend holds records: set (sequentially consistent) by the append that
     * finds pend empty, cleared by the flusher's swap, both under mu; the
     * flusher skips a partition without it without taking mu (most of a
     * bus's partitions get nothing in a given millisecond) */
    _Atomic bool has_data;

    /* flusher only */
    char *fbuf;
    size_t fcap;
    ack_run_t *facks;
    size_t cfacks;
    idx_ent_t *fidx;
    size_t nfidx, cfidx;

    /* segments, under seg_mu */
    pthread_mutex_t seg_mu;
    seg_t **segs;
    size_t nsegs, csegs;
    int64_t log_start;
    int64_t total_bytes;
    _Atomic int64_t hw;    /* offset after the last readable record */
    _Atomic int64_t acked; /* every record below this offset has been acked */
    int64_t fl_end;        /* flusher: acked becomes this after the flush's acks */
    /* the consumers owning this partition (one per group reading it), for
     * the flusher's wake-ups; under the bus's cons_mu (emb_cons_set_parts) */
    struct emb_consumer **wcons;
    size_t nwcons, cwcons;
} part_t;

struct topic {
    char *name;
    size_t name_len;
    char *dir;
    size_t tix;               /* position in the bus's tlist */
    int32_t nparts;
    int64_t retention_ms;
    int64_t retention_bytes;
    part_t *parts;
    struct emb_bus *bus;
};

typedef struct emb_consumer emb_consumer_t;

/* Ownership of one partition inside a group: `owner` holds it now, `target`
 * should hold it. owner changes only owner -> NULL (release, by the owner)
 * and NULL -> target (take, by the target). */
typedef struct own {
    topic_t *t;
    int32_t part;
    emb_consumer_t *owner;
    emb_consumer_t *target;
} own_t;

typedef struct goff {
    char *topic;
    int32_t part;
    int64_t off;      /* committed (what a new owner starts from) */
    int64_t saved;    /* in the offsets file (what a restart starts from) */
} goff_t;

typedef struct group {
    char *name;
    char *path;
    pthread_mutex_t mu;
    emb_consumer_t **members; /* join order */
    size_t nmembers, cmembers;
    uint64_t next_id;
    _Atomic uint64_t gen;     /* bumped on every ownership change */
    own_t *own;
    size_t nown, cown;
    goff_t *offs;             /* committed offsets */
    size_t noffs, coffs;
    uint64_t ver;             /* bumped when offs change (under mu) */
    /* The offsets file: one writer at a time (save_mu, taken before mu);
     * saved_ver is the ver it holds. The file is a journal (bus_embedded_group.c):
     * fd appends to it (-1: not open), flen is its length known good,
     * rewrite says the next save writes it whole (missing, the old format,
     * a bad line, a failed append, or grown past OFFSETS_COMPACT_BYTES).
     * All three under save_mu. */
    pthread_mutex_t save_mu;
    uint64_t saved_ver;
    int fd;
    int64_t flen;
    bool rewrite;
} group_t;

/* A partition owned by a consumer. */
typedef struct cpart {
    topic_t *t;
    part_t *p;
    int32_t part;
    int64_t pos;      /* next offset to hand out */
    int64_t stored;   /* -1 = nothing stored */
    bool paused;
    seg_t *seg;       /* referenced segment holding pos, or NULL */
    int64_t fpos;     /* file position in seg of the first record not yet parsed */
} cpart_t;

struct emb_consumer {
    bus_consumer_t base;
    struct emb_bus *eb;
    group_t *g;
    uint64_t id;
    char **topics;
    int ntopics;
    bus_rebalance_t rb;
    bool has_rb;
    cpart_t **parts;
    size_t nparts, cparts;
    size_t rr;
    uint64_t seen_gen;
    /* read buffer: bytes [rdone, rlen) are unparsed data of rpart */
    char *rbuf;
    size_t rcap, rlen, rdone;
    cpart_t *rpart;
    int64_t rlimit;   /* readable end of rpart's segment when the buffer was filled */
    int64_t last_commit_ns;
    /* wake-ups: the flusher bumps wseq when a partition the consumer owns
     * got data (and every waker on a rebalance) and futex-wakes the
     * consumer when it sleeps; wparts are the partitions it owns, as the
     * flusher sees them (under cons_mu; set by the polling thread after
     * each ownership change, emb_cons_set_parts) */
    _Atomic uint32_t wseq;
    _Atomic int sleeping;
    part_t **wparts;
    size_t nwparts, cwparts;
    uint64_t woke_seq; /* flusher, under cons_mu: the last flush that woke it */
};

typedef struct emb_bus {
    bus_t base;
    char *dir;
    int lock_fd;
    int fsync_mode;
    int fsync_interval_ms;
    int64_t segment_bytes;
    int flush_interval_us;
    size_t max_pending;

    pthread_mutex_t mu; /* topic creation, group list */
    _Atomic(topic_t *) slots[TOPIC_SLOTS];
    topic_t *tlist[MAX_TOPICS];
    _Atomic size_t ntopics;
    group_t **groups;
    size_t ngroups, cgroups;

    pthread_mutex_t fl_mu;
    pthread_cond_t fl_cv;
    bool fl_stop;
    bool fl_urgent;
    _Atomic int dirty;
    _Atomic bool closing;
    pthread_t flusher;
    bool flusher_started;
    pthread_t syncer;
    bool syncer_started;
    bool sy_stop;
    pthread_cond_t sy_cv;

    /* bus_flush waiters: data_seq is bumped after every flush; data_cv is
     * broadcast only when someone waits (flush_waiters) */
    pthread_mutex_t data_mu;
    pthread_cond_t data_cv;
    _Atomic uint64_t data_seq;
    _Atomic int flush_waiters;

    /* consumers, for targeted wake-ups (bus_embedded_flush.c) */
    pthread_mutex_t cons_mu;
    emb_consumer_t **cons;
    size_t ncons, ccons;

    /* flusher only: what one flush acknowledges, folded per batch */
    struct ack_out *fl_out;
    size_t nfl_out, cfl_out;
    part_t **fl_parts;        /* partitions flushed, whose acked moves after the acks */
    size_t nfl_parts, cfl_parts;
    uint64_t fl_seq;          /* flushes so far (emb_consumer_t.woke_seq) */

    /* the committer (bus_embedded_group.c): writes the offsets files of
     * asynchronous commits, so that no polling thread waits for an fsync */
    pthread_t committer;
    bool committer_started;
    pthread_mutex_t cm_mu;
    pthread_cond_t cm_cv;
    bool cm_stop, cm_due;

    /* damage and health (bus_embedded_log.c) */
    bool accept_loss;           /* start despite missing data; damage does not degrade */
    int64_t max_disk_bytes;     /* hard bound for retention; 0 = none */
    _Atomic bool write_failing; /* the last segment write failed (flusher sets/clears) */
    pthread_mutex_t health_mu;
    char write_why[200];        /* under health_mu */
    char loss_why[256];         /* under health_mu; "" = no unaccepted loss */
} emb_bus_t;

/* Sequential reader over a segment file (bus_embedded_log.c). */
typedef struct scan {
    int fd;
    int64_t limit;   /* bytes of the file to consider */
    int64_t pos;     /* file position of the next record */
    int64_t prev;    /* offset of the previous record (base - 1 at start) */
    char *buf;
    size_t cap;
    int64_t bpos;    /* file position of buf[0] */
    size_t blen;
} scan_t;

/* What emb_seg_scan() learns about a segment. */
typedef struct seg_info {
    idx_ent_t *idx;
    size_t nidx, cidx;
    hole_t *holes;      /* damaged ranges followed by valid records */
    size_t nholes, choles;
    int64_t end, max_ts, valid, idx_next;
} seg_info_t;

/* ---- small helpers (inline: the produce and read paths use them) ---- */

/* The CRC a record of len bytes should carry, by its attribute bit. */
static inline uint32_t rec_crc(const char *rec, uint32_t len)
{
    if (le_get32(rec + 24) & REC_ATTR_CRC32C) return crc32c(0, rec + 8, len - 8);
    return (uint32_t)crc32(0L, (const Bytef *)rec + 8, (uInt)(len - 8));
}

/* The key length of a record of len bytes, or -1 when the key field is
 * invalid (unknown attribute bits, or a key longer than the record). */
static inline int64_t rec_klen(const char *rec, uint32_t len)
{
    uint32_t f = le_get32(rec + 24);
    if (f & ~(REC_KLEN_MASK | REC_ATTR_CRC32C)) return -1;
    f &= REC_KLEN_MASK;
    return f > len - REC_HDR ? -1 : (int64_t)f;
}

static inline topic_t *topic_find(emb_bus_t *b, const char *name)
{
    size_t len = strlen(name);
    uint64_t h = fnv1a64(name, len);
    for (size_t i = 0; i < TOPIC_SLOTS; i++) {
        topic_t *t = atomic_load_explicit(&b->slots[(h + i) & (TOPIC_SLOTS - 1)], memory_order_acquire);
        if (!t) return NULL;
        if (t->name_len == len && memcmp(t->name, name, len) == 0) return t;
    }
    return NULL;
}

static inline void drop_buffer(emb_consumer_t *c)
{
    c->rpart = NULL;
    c->rlen = c->rdone = 0;
}

/* ---- bus_embedded_log.c ---- */
bool emb_name_ok(const char *s);
hr_t emb_write_all(int fd, const char *data, size_t len);
void emb_fsync_dir(const char *dir);
hr_t emb_write_file_atomic(const char *dir, const char *path, const char *data, size_t len);
void emb_seg_maybe_close(seg_t *s);
void emb_seg_unref(seg_t *s);
hr_t emb_seg_open_fd(seg_t *s);
void emb_idx_push(idx_ent_t **v, size_t *n, size_t *cap, int64_t off, int64_t pos);
int64_t emb_seg_lookup(const seg_t *s, int64_t off);
void emb_scan_init(scan_t *sc, int fd, int64_t limit, int64_t base);
void emb_scan_release(scan_t *sc);
int emb_scan_next(scan_t *sc, const char **rec, uint32_t *len);
/* After emb_scan_next() returned -1 at sc->pos: finds the next position in
 * the file where a valid record begins (length, key length, CRC, and an
 * offset after sc->prev and no further than the skipped bytes could hold
 * plus RESYNC_GAP). 1 with sc->pos there, 0 when there is none (sc->pos
 * unchanged: the rest is a torn tail). */
int emb_scan_resync(scan_t *sc);
/* Records damage found in segment s (seg_mu held): logs it once, counts it
 * (metrics) and, unless accept_loss, marks the bus degraded. */
void emb_note_damage(emb_bus_t *b, part_t *p, seg_t *s, const hole_t *h);
/* seg_mu held. The hole of s containing pos, or NULL. */
const hole_t *emb_seg_hole_at(const seg_t *s, int64_t pos);
/* Deletes the partition's first segment (seg_mu held; not the active one). */
void emb_seg_delete_first(part_t *p);
void emb_set_write_failed(emb_bus_t *b, const char *path, int err);
static inline void emb_set_write_ok(emb_bus_t *b)
{
    if (atomic_load_explicit(&b->write_failing, memory_order_relaxed))
        atomic_store(&b->write_failing, false);
}
void emb_seg_ensure_index(part_t *p, seg_t *s);
void emb_segs_push(part_t *p, seg_t *s);
hr_t emb_seg_create_active(emb_bus_t *b, part_t *p, int64_t base, seg_t **out);
void emb_topic_free(topic_t *t);
void emb_topic_publish(emb_bus_t *b, topic_t *t);
char *emb_topic_meta_text(const topic_t *t);
topic_t *emb_topic_alloc(emb_bus_t *b, const char *name);
hr_t emb_topic_open_parts(emb_bus_t *b, topic_t *t);
hr_t emb_load_topics(emb_bus_t *b);
/* Retention of one partition: deletes whole sealed segments that are past
 * the topic's retention and that every registered group has read. */
void emb_retention(emb_bus_t *b, part_t *p, int64_t now_ms);
/* The hard disk bound (max_disk_bytes): deletes the oldest sealed segments
 * of the bus, read or not, until it fits; logs and counts unread records. */
void emb_disk_bound(emb_bus_t *b);
/* Checks loaded topics against the groups' committed offsets (after
 * emb_load_topics and emb_groups_load). */
hr_t emb_check_consistency(emb_bus_t *b);
/* Walks a whole segment file of `size` bytes whose first offset is `base`:
 * builds its sparse index, end and max_ts and returns the length of the
 * valid prefix in si->valid (the caller frees si->idx). Bytes after the
 * first invalid record (torn, corrupt or out of order) are not trusted.
 * Reads the file with pread() only; no locks, no bus needed. */
void emb_seg_scan(int fd, int64_t size, int64_t base, seg_info_t *si);

/* ---- bus_embedded_group.c ---- */
group_t *emb_group_get(emb_bus_t *b, const char *name);
void emb_group_free(group_t *g);
bool emb_member_subscribes(const emb_consumer_t *c, const char *topic);
void emb_group_assign(emb_bus_t *b, group_t *g);
/* Commits the consumer's stored offsets and writes the group's offsets
 * file before returning. */
hr_t emb_commit(bus_consumer_t *bc);
/* Commits the stored offsets (a new owner starts from them at once) and
 * leaves the file to the committer thread. */
hr_t emb_commit_async(bus_consumer_t *bc);
/* Starts / stops the committer; stopping writes every pending file. */
hr_t emb_committer_start(emb_bus_t *b);
void emb_committer_stop(emb_bus_t *b);
void emb_revoke_parts(emb_consumer_t *c, bool all);
void emb_rebalance(emb_consumer_t *c);
hr_t emb_group_reset(bus_t *bb, const char *group, const char *topic, int64_t to_time_ms);
hr_t emb_lag(bus_t *bb, const char *group, const char *topic, bus_lag_t **out, int *n);
/* Loads every group that has an offsets file (so retention knows them). */
void emb_groups_load(emb_bus_t *b);
/* The lowest offset a registered group still needs on the partition: its
 * committed offset, or `start` for a group with a live member on the topic
 * and nothing committed; INT64_MAX when no group reads it. Names that
 * group in who. Takes b->mu and the groups' locks (no seg_mu held). */
int64_t emb_group_floor(emb_bus_t *b, const topic_t *t, int32_t part, int64_t start, char *who,
                        size_t who_len);

/* ---- bus_embedded_flush.c ---- */
/* Wakes every consumer and bus_flush waiter (rebalances, new topics). */
void emb_wake_consumers(emb_bus_t *b);
/* Registers / unregisters a consumer for wake-ups. */
void emb_cons_add(emb_bus_t *b, emb_consumer_t *c);
void emb_cons_remove(emb_bus_t *b, emb_consumer_t *c);
/* Publishes the partitions c owns now to the flusher's wake-ups (the
 * polling thread, after an ownership change). */
void emb_cons_set_parts(emb_consumer_t *c);
/* The polling thread sleeps until woken (wseq differs from seq) or deadline. */
void emb_cons_sleep(emb_consumer_t *c, uint32_t seq, int64_t deadline_ns);
void emb_kick_flusher(emb_bus_t *b);
hr_t emb_flush(bus_t *bb, int timeout_ms);
void *emb_flusher_main(void *arg);
void emb_sync_all(emb_bus_t *b);
void *emb_syncer_main(void *arg);

/* ---- bus_embedded.c ---- */
void emb_cpart_drop_seg(cpart_t *cp);
int64_t emb_clamp_offset(part_t *p, int64_t off);

#endif
