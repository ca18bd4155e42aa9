/*
 * bus_embedded.c - the embedded bus backend: a partitioned commit log kept in
 * the data directory, with in-process consumer groups.
 *
 * DESIGN
 *  Layout (see docs/internals/bus.md):
 *    <dir>/LOCK                                   flock: one process per dir
 *    <dir>/topics/<topic>/meta                    partitions, retention
 *    <dir>/topics/<topic>/<p>/<20-digit base>.log segment files
 *    <dir>/groups/<group>.offsets                 committed offsets
 *
 *  Produce path (any thread): look the topic up in a lock-free table, lock the
 *  partition, encode the record into the partition's pending buffer, remember
 *  the batch for its ack, unlock. No syscall, no allocation per record (the
 *  buffer grows geometrically and is reused). The CRC is filled in later by
 *  the flusher, off the producer's critical path.
 *
 *  Flusher thread: every flush_interval_us (sooner when a buffer passes
 *  URGENT_BYTES or someone waits in bus_flush) it swaps each partition's
 *  pending buffer with a spare, fills in CRCs, splits at segment boundaries,
 *  writes each piece with one write(), fdatasyncs first if fsync=always,
 *  publishes the new end to readers and then acks the batches. It also runs
 *  retention. With fsync=interval a syncer thread fdatasyncs dirty segments
 *  every fsync_interval_ms, so the flusher never blocks on the disk.
 *
 *  Consumers read only published (written) bytes with pread() into their own
 *  buffer, verify each record's CRC and hand out pointers into that buffer.
 *
 *  Groups: one coordinator object per (bus, group) decides a target owner for
 *  every partition (range assignment over members in join order). An owner
 *  gives a partition up inside its own bus_poll (revoked callback, commit,
 *  release); only then can the target take it (assigned callback). So a
 *  partition never has two owners.
 */
#include "bus/bus.h"
#include "core/hash.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define LOGC "bus"

/* Record: u32 len (whole record), u32 crc32 (of bytes 8..len), i64 offset,
 * i64 append time ms, u32 key length, key, value. Little-endian. */
#define REC_HDR 28
#define REC_MAX ((size_t)16 << 20)
#define IDX_STEP 4096                 /* one sparse index entry per 4 KiB */
#define URGENT_BYTES ((size_t)256 << 10)
#define READ_CHUNK ((size_t)256 << 10)
#define SCAN_CHUNK ((size_t)1 << 20)
#define DEF_MAX_PENDING ((int64_t)64 << 20)
#define DEF_SEGMENT_BYTES ((int64_t)64 << 20)
#define MIN_SEGMENT_BYTES ((int64_t)1024)
#define SHRINK_BYTES ((size_t)4 << 20)
#define TOPIC_SLOTS 4096              /* power of two */
#define MAX_TOPICS 2048
#define MAX_PARTITIONS 1024
#define NAME_MAX_LEN 127
#define AUTOCOMMIT_MS 1000
#define HOUSEKEEP_MS 1000

enum { FSYNC_NEVER, FSYNC_INTERVAL, FSYNC_ALWAYS };

/* ---- types ---- */

typedef struct idx_ent {
    int64_t off;
    int64_t pos;
} idx_ent_t;

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
    int fd;
    int refs;
    bool sealed;
    bool indexed;
    bool dead;          /* deleted by retention */
    idx_ent_t *idx;
    size_t nidx, cidx;
    char *path;
} seg_t;

typedef struct ack_run {
    bus_batch_t *b;
    int64_t n;
} ack_run_t;

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
} part_t;

struct topic {
    char *name;
    size_t name_len;
    char *dir;
    int32_t nparts;
    int64_t retention_ms;
    int64_t retention_bytes;
    part_t *parts;
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
    int64_t off;
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
    bool dirty;               /* offs differ from the file */
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

    pthread_mutex_t data_mu;
    pthread_cond_t data_cv;
    _Atomic uint64_t data_seq;
} emb_bus_t;

/* ---- small helpers ---- */

static inline void put32(char *p, uint32_t v)
{
    unsigned char *q = (unsigned char *)p;
    q[0] = (unsigned char)v;
    q[1] = (unsigned char)(v >> 8);
    q[2] = (unsigned char)(v >> 16);
    q[3] = (unsigned char)(v >> 24);
}

static inline uint32_t get32(const char *p)
{
    const unsigned char *q = (const unsigned char *)p;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

static inline void put64(char *p, int64_t v)
{
    put32(p, (uint32_t)((uint64_t)v & 0xffffffffu));
    put32(p + 4, (uint32_t)((uint64_t)v >> 32));
}

static inline int64_t get64(const char *p)
{
    return (int64_t)((uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32));
}

static inline uint32_t rec_crc(const char *rec, uint32_t len)
{
    return (uint32_t)crc32(0L, (const Bytef *)rec + 8, (uInt)(len - 8));
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on a CLOCK_MONOTONIC condition until deadline_ns; ETIMEDOUT after. */
static int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX) return pthread_cond_wait(cv, mu);
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
    return pthread_cond_timedwait(cv, mu, &ts);
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_LEN) return false;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

static hr_t write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return HR_ERR;
        }
        data += w;
        len -= (size_t)w;
    }
    return HR_OK;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    if (fsync(fd) != 0) log_warn(LOGC, "fsync %s: %s", dir, strerror(errno));
    close(fd);
}

/* Writes path atomically: tmp file, fsync, rename, fsync of the directory. */
static hr_t write_file_atomic(const char *dir, const char *path, const char *data, size_t len)
{
    hr_t r = HR_ERR;
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(LOGC, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, data, len) != HR_OK || fsync(fd) != 0) {
        log_error(LOGC, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        log_error(LOGC, "rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    fsync_dir(dir);
    r = HR_OK;
out:
    if (fd >= 0) close(fd);
    if (r != HR_OK) unlink(tmp);
    free(tmp);
    return r;
}

static void wake_consumers(emb_bus_t *b)
{
    atomic_fetch_add(&b->data_seq, 1);
    pthread_mutex_lock(&b->data_mu);
    pthread_cond_broadcast(&b->data_cv);
    pthread_mutex_unlock(&b->data_mu);
}

/* Asks the flusher to write now instead of waiting for the interval. */
static void kick_flusher(emb_bus_t *b)
{
    pthread_mutex_lock(&b->fl_mu);
    b->fl_urgent = true;
    pthread_cond_signal(&b->fl_cv);
    pthread_mutex_unlock(&b->fl_mu);
}

static void batch_ack_n(bus_batch_t *bt, int64_t n, hr_t result)
{
    /* Same bookkeeping as bus_batch_ack(), for a run of n records. */
    pthread_mutex_lock(&bt->mu);
    bt->pending -= n;
    if (result != HR_OK) {
        bt->failed += n;
        bt->last_error = result;
    }
    bool reap = bt->pending == 0 && bt->abandoned;
    if (bt->pending == 0) pthread_cond_broadcast(&bt->cv);
    pthread_mutex_unlock(&bt->mu);
    if (reap) bus_batch_free(bt); /* its waiter gave up (bus_batch_abandon): the last ack frees it */
}

/* ---- segments ---- */

static char *seg_path(const char *dir, int64_t base)
{
    return xasprintf("%s/%020" PRId64 ".log", dir, base);
}

static seg_t *seg_new(char *path, int64_t base)
{
    seg_t *s = xcalloc(1, sizeof(*s));
    s->path = path;
    s->base = base;
    s->end = base;
    s->fd = -1;
    s->refs = 1;
    return s;
}

static void seg_free(seg_t *s)
{
    if (s->fd >= 0) close(s->fd);
    free(s->idx);
    free(s->path);
    free(s);
}

/* seg_mu held. A sealed segment that only the list refers to needs no open
 * descriptor once synced. (A dead one's last reference is a reader's.) */
static void seg_maybe_close(seg_t *s)
{
    if (s->sealed && !s->dead && s->refs == 1 && s->fd >= 0 && s->synced >= s->size) {
        close(s->fd);
        s->fd = -1;
    }
}

static void seg_unref(seg_t *s)
{
    if (--s->refs == 0)
        seg_free(s);
    else
        seg_maybe_close(s);
}

/* seg_mu held. */
static hr_t seg_open_fd(seg_t *s)
{
    if (s->fd >= 0) return HR_OK;
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        log_error(LOGC, "open %s: %s", s->path, strerror(errno));
        return HR_ERR;
    }
    return HR_OK;
}

static void idx_push(idx_ent_t **v, size_t *n, size_t *cap, int64_t off, int64_t pos)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[*n].off = off;
    (*v)[*n].pos = pos;
    (*n)++;
}

/* seg_mu held. File position of the last indexed record at or before off. */
static int64_t seg_lookup(const seg_t *s, int64_t off)
{
    size_t lo = 0, hi = s->nidx;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->idx[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}

/* Sequential reader over a segment file, verifying every record. */
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

static void scan_init(scan_t *sc, int fd, int64_t limit, int64_t base)
{
    memset(sc, 0, sizeof(*sc));
    sc->fd = fd;
    sc->limit = limit;
    sc->prev = base - 1;
    sc->cap = SCAN_CHUNK;
    sc->buf = xmalloc(sc->cap);
}

static void scan_release(scan_t *sc) { free(sc->buf); }

/* Makes [pos, pos+need) available in the buffer. */
static hr_t scan_need(scan_t *sc, size_t need)
{
    if (sc->pos >= sc->bpos && sc->pos + (int64_t)need <= sc->bpos + (int64_t)sc->blen) return HR_OK;
    if (sc->pos + (int64_t)need > sc->limit) return HR_NOTFOUND;
    if (need > sc->cap) {
        sc->cap = need;
        sc->buf = xrealloc(sc->buf, sc->cap);
    }
    size_t want = sc->cap;
    if ((int64_t)want > sc->limit - sc->pos) want = (size_t)(sc->limit - sc->pos);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(sc->fd, sc->buf + got, want - got, sc->pos + (int64_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    sc->bpos = sc->pos;
    sc->blen = got;
    return got >= need ? HR_OK : HR_ERR;
}

/* 1 with *rec at the next valid record, 0 at the clean end, -1 if the bytes
 * at sc->pos are not a valid record (torn, corrupt or out of order). */
static int scan_next(scan_t *sc, const char **rec, uint32_t *len)
{
    if (sc->pos >= sc->limit) return 0;
    if (scan_need(sc, REC_HDR) != HR_OK) return -1;
    const char *r = sc->buf + (sc->pos - sc->bpos);
    uint32_t n = get32(r);
    if (n < REC_HDR || n > REC_MAX) return -1;
    if (scan_need(sc, n) != HR_OK) return -1;
    r = sc->buf + (sc->pos - sc->bpos);
    if (get32(r + 24) > n - REC_HDR) return -1;
    if (rec_crc(r, n) != get32(r + 4)) return -1;
    int64_t off = get64(r + 8);
    if (off <= sc->prev) return -1;
    sc->prev = off;
    *rec = r;
    *len = n;
    return 1;
}

/* Walks a whole segment: builds its sparse index, end and max_ts and returns
 * the length of the valid prefix. Runs without locks on a private result. */
typedef struct seg_info {
    idx_ent_t *idx;
    size_t nidx, cidx;
    int64_t end, max_ts, valid, idx_next;
} seg_info_t;

static void seg_scan(int fd, int64_t size, int64_t base, seg_info_t *si)
{
    scan_t sc;
    const char *rec;
    uint32_t len;
    memset(si, 0, sizeof(*si));
    si->end = base;
    scan_init(&sc, fd, size, base);
    while (scan_next(&sc, &rec, &len) == 1) {
        if (sc.pos >= si->idx_next) {
            idx_push(&si->idx, &si->nidx, &si->cidx, get64(rec + 8), sc.pos);
            si->idx_next = sc.pos + IDX_STEP;
        }
        si->end = get64(rec + 8) + 1;
        int64_t ts = get64(rec + 16);
        if (ts > si->max_ts) si->max_ts = ts;
        sc.pos += len;
    }
    si->valid = sc.pos;
    scan_release(&sc);
}

/* seg_mu held on entry and exit; drops it while reading. s is referenced. */
static void seg_ensure_index(part_t *p, seg_t *s)
{
    if (s->indexed) return;
    if (seg_open_fd(s) != HR_OK) return;
    int fd = s->fd;
    int64_t size = s->size;
    seg_info_t si;
    pthread_mutex_unlock(&p->seg_mu);
    seg_scan(fd, size, s->base, &si);
    pthread_mutex_lock(&p->seg_mu);
    if (s->indexed) {
        free(si.idx);
        return;
    }
    if (si.valid < size) {
        log_error(LOGC, "%s: corrupt record at byte %" PRId64 "; the rest of the segment is skipped",
                  s->path, si.valid);
        p->total_bytes -= size - si.valid;
        s->size = si.valid;
    }
    free(s->idx);
    s->idx = si.idx;
    s->nidx = si.nidx;
    s->cidx = si.cidx;
    s->end = si.end;
    if (si.nidx) s->max_ts = si.max_ts;
    s->indexed = true;
}

/* ---- partitions and topics ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void segs_push(part_t *p, seg_t *s)
{
    if (p->nsegs == p->csegs) {
        p->csegs = p->csegs ? p->csegs * 2 : 8;
        p->segs = xrealloc(p->segs, p->csegs * sizeof(*p->segs));
    }
    p->segs[p->nsegs++] = s;
}

/* Opens the active segment at `base` for appending (creating it). */
static hr_t seg_create_active(emb_bus_t *b, part_t *p, int64_t base, seg_t **out)
{
    char *path = seg_path(p->dir, base);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(LOGC, "create %s: %s", path, strerror(errno));
        free(path);
        return HR_ERR;
    }
    if (b->fsync_mode != FSYNC_NEVER) fsync_dir(p->dir);
    seg_t *s = seg_new(path, base);
    s->fd = fd;
    s->indexed = true;
    *out = s;
    return HR_OK;
}

/* Loads a partition's segments; verifies the last one record by record and
 * cuts off a torn or corrupt tail. */
static hr_t part_load(emb_bus_t *b, part_t *p)
{
    hr_t r = HR_ERR;
    int64_t *bases = NULL;
    size_t nb = 0, cb = 0;
    DIR *d = NULL;

    if (mkdir_p(p->dir, 0755) != HR_OK) {
        log_error(LOGC, "mkdir %s: %s", p->dir, strerror(errno));
        goto out;
    }
    d = opendir(p->dir);
    if (!d) {
        log_error(LOGC, "opendir %s: %s", p->dir, strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strlen(n) != 24 || strcmp(n + 20, ".log") != 0) continue;
        bool digits = true;
        for (int i = 0; i < 20; i++) digits = digits && n[i] >= '0' && n[i] <= '9';
        if (!digits) continue;
        if (nb == cb) {
            cb = cb ? cb * 2 : 16;
            bases = xrealloc(bases, cb * sizeof(*bases));
        }
        bases[nb++] = strtoll(n, NULL, 10);
    }
    if (nb > 1) qsort(bases, nb, sizeof(*bases), cmp_i64);

    for (size_t i = 0; i < nb; i++) {
        seg_t *s = seg_new(seg_path(p->dir, bases[i]), bases[i]);
        struct stat st;
        if (stat(s->path, &st) != 0) {
            log_error(LOGC, "stat %s: %s", s->path, strerror(errno));
            seg_free(s);
            goto out;
        }
        s->size = st.st_size;
        s->synced = st.st_size;
        s->max_ts = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        s->sealed = true;
        segs_push(p, s);
        p->total_bytes += s->size;
    }

    if (p->nsegs == 0) {
        seg_t *s;
        if (seg_create_active(b, p, 0, &s) != HR_OK) goto out;
        segs_push(p, s);
    } else {
        seg_t *s = p->segs[p->nsegs - 1];
        s->sealed = false;
        s->fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC);
        if (s->fd < 0) {
            log_error(LOGC, "open %s: %s", s->path, strerror(errno));
            goto out;
        }
        seg_info_t si;
        seg_scan(s->fd, s->size, s->base, &si);
        if (si.valid < s->size) {
            log_warn(LOGC, "%s: torn or corrupt tail at byte %" PRId64 ", dropping %" PRId64 " bytes",
                     s->path, si.valid, s->size - si.valid);
            if (ftruncate(s->fd, si.valid) != 0) {
                log_error(LOGC, "truncate %s: %s", s->path, strerror(errno));
                free(si.idx);
                goto out;
            }
            if (b->fsync_mode != FSYNC_NEVER) (void)fdatasync(s->fd);
            p->total_bytes -= s->size - si.valid;
            s->size = si.valid;
            s->synced = si.valid;
        }
        s->idx = si.idx;
        s->nidx = si.nidx;
        s->cidx = si.cidx;
        s->end = si.end;
        s->idx_next = si.idx_next;
        if (si.nidx) s->max_ts = si.max_ts;
        s->indexed = true;
    }
    seg_t *last = p->segs[p->nsegs - 1];
    p->next_off = last->end;
    p->last_ts = last->nidx ? last->max_ts : 0;
    p->log_start = p->segs[0]->base;
    atomic_store(&p->hw, p->next_off);
    atomic_store(&p->acked, p->next_off);
    r = HR_OK;
out:
    if (d) closedir(d);
    free(bases);
    return r;
}

static void part_free(part_t *p)
{
    for (size_t i = 0; i < p->nsegs; i++) seg_free(p->segs[i]);
    free(p->segs);
    free(p->pend);
    free(p->acks);
    free(p->fbuf);
    free(p->facks);
    free(p->fidx);
    free(p->dir);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->seg_mu);
}

static void topic_free(topic_t *t)
{
    if (!t) return;
    if (t->parts)
        for (int32_t i = 0; i < t->nparts; i++) part_free(&t->parts[i]);
    free(t->parts);
    free(t->name);
    free(t->dir);
    free(t);
}

static topic_t *topic_find(emb_bus_t *b, const char *name)
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

/* b->mu held (or single-threaded open). Publishes a fully built topic. */
static void topic_publish(emb_bus_t *b, topic_t *t)
{
    uint64_t h = fnv1a64(t->name, t->name_len);
    for (size_t i = 0; i < TOPIC_SLOTS; i++) {
        size_t slot = (h + i) & (TOPIC_SLOTS - 1);
        if (atomic_load_explicit(&b->slots[slot], memory_order_relaxed) == NULL) {
            size_t n = atomic_load(&b->ntopics);
            b->tlist[n] = t;
            atomic_store_explicit(&b->ntopics, n + 1, memory_order_release);
            atomic_store_explicit(&b->slots[slot], t, memory_order_release);
            return;
        }
    }
}

static char *topic_meta_text(const topic_t *t)
{
    return xasprintf("format=1\npartitions=%d\nretention_ms=%" PRId64 "\nretention_bytes=%" PRId64 "\n",
                     (int)t->nparts, t->retention_ms, t->retention_bytes);
}

static hr_t topic_parse_meta(const char *path, topic_t *t)
{
    FILE *f = fopen(path, "re");
    if (!f) return HR_NOTFOUND;
    char line[256];
    int format = 0;
    long long v;
    t->nparts = 0;
    t->retention_ms = -1;
    t->retention_bytes = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "format=%lld", &v) == 1) format = (int)v;
        else if (sscanf(line, "partitions=%lld", &v) == 1) t->nparts = (int32_t)v;
        else if (sscanf(line, "retention_ms=%lld", &v) == 1) t->retention_ms = v;
        else if (sscanf(line, "retention_bytes=%lld", &v) == 1) t->retention_bytes = v;
    }
    fclose(f);
    if (format != 1 || t->nparts < 1 || t->nparts > MAX_PARTITIONS) {
        log_error(LOGC, "%s: unsupported or damaged topic meta", path);
        return HR_INVALID;
    }
    return HR_OK;
}

static topic_t *topic_alloc(emb_bus_t *b, const char *name)
{
    topic_t *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->name_len = strlen(name);
    t->dir = xasprintf("%s/topics/%s", b->dir, name);
    return t;
}

static hr_t topic_open_parts(emb_bus_t *b, topic_t *t)
{
    t->parts = xcalloc((size_t)t->nparts, sizeof(*t->parts));
    for (int32_t i = 0; i < t->nparts; i++) {
        part_t *p = &t->parts[i];
        p->t = t;
        p->id = i;
        p->dir = xasprintf("%s/%d", t->dir, (int)i);
        pthread_mutex_init(&p->mu, NULL);
        pthread_mutex_init(&p->seg_mu, NULL);
    }
    for (int32_t i = 0; i < t->nparts; i++)
        if (part_load(b, &t->parts[i]) != HR_OK) return HR_ERR;
    return HR_OK;
}

static hr_t load_topics(emb_bus_t *b)
{
    char *tdir = xasprintf("%s/topics", b->dir);
    hr_t r = HR_OK;
    DIR *d = opendir(tdir);
    if (!d) goto out;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!name_ok(de->d_name)) continue;
        topic_t *t = topic_alloc(b, de->d_name);
        char *meta = xasprintf("%s/meta", t->dir);
        hr_t m = topic_parse_meta(meta, t);
        free(meta);
        if (m == HR_NOTFOUND) {
            topic_free(t);
            continue;
        }
        if (m != HR_OK || atomic_load(&b->ntopics) >= MAX_TOPICS || topic_open_parts(b, t) != HR_OK) {
            topic_free(t);
            r = HR_ERR;
            break;
        }
        topic_publish(b, t);
    }
    closedir(d);
out:
    free(tdir);
    return r;
}

/* ---- groups ---- */

static goff_t *goff_find(group_t *g, const char *topic, int32_t part)
{
    for (size_t i = 0; i < g->noffs; i++)
        if (g->offs[i].part == part && strcmp(g->offs[i].topic, topic) == 0) return &g->offs[i];
    return NULL;
}

static goff_t *goff_get(group_t *g, const char *topic, int32_t part)
{
    goff_t *o = goff_find(g, topic, part);
    if (o) return o;
    if (g->noffs == g->coffs) {
        g->coffs = g->coffs ? g->coffs * 2 : 16;
        g->offs = xrealloc(g->offs, g->coffs * sizeof(*g->offs));
    }
    o = &g->offs[g->noffs++];
    o->topic = xstrdup(topic);
    o->part = part;
    o->off = -1;
    return o;
}

static int64_t group_committed(group_t *g, const char *topic, int32_t part)
{
    goff_t *o = goff_find(g, topic, part);
    return o ? o->off : -1;
}

static void group_load(group_t *g)
{
    FILE *f = fopen(g->path, "re");
    if (!f) return;
    char line[512], topic[NAME_MAX_LEN + 1];
    int part;
    long long off;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#') continue;
        if (sscanf(line, "%127s %d %lld", topic, &part, &off) != 3) continue;
        if (!name_ok(topic) || part < 0 || off < 0) continue;
        goff_get(g, topic, part)->off = off;
    }
    fclose(f);
}

/* g->mu held. */
static hr_t group_save(emb_bus_t *b, group_t *g)
{
    if (!g->dirty) return HR_OK;
    size_t cap = 64 + g->noffs * (NAME_MAX_LEN + 48), len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text, cap, "# herald group offsets v1: topic partition next-offset\n");
    for (size_t i = 0; i < g->noffs; i++) {
        if (g->offs[i].off < 0) continue;
        len += (size_t)snprintf(text + len, cap - len, "%s %d %" PRId64 "\n", g->offs[i].topic,
                                (int)g->offs[i].part, g->offs[i].off);
    }
    char *gdir = xasprintf("%s/groups", b->dir);
    hr_t r = write_file_atomic(gdir, g->path, text, len);
    free(gdir);
    free(text);
    if (r == HR_OK) g->dirty = false;
    return r;
}

/* b->mu held. */
static group_t *group_get(emb_bus_t *b, const char *name)
{
    for (size_t i = 0; i < b->ngroups; i++)
        if (strcmp(b->groups[i]->name, name) == 0) return b->groups[i];
    group_t *g = xcalloc(1, sizeof(*g));
    g->name = xstrdup(name);
    g->path = xasprintf("%s/groups/%s.offsets", b->dir, name);
    pthread_mutex_init(&g->mu, NULL);
    group_load(g);
    if (b->ngroups == b->cgroups) {
        b->cgroups = b->cgroups ? b->cgroups * 2 : 8;
        b->groups = xrealloc(b->groups, b->cgroups * sizeof(*b->groups));
    }
    b->groups[b->ngroups++] = g;
    return g;
}

static void group_free(group_t *g)
{
    for (size_t i = 0; i < g->noffs; i++) free(g->offs[i].topic);
    free(g->offs);
    free(g->own);
    free(g->members);
    free(g->name);
    free(g->path);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static own_t *own_find(group_t *g, const topic_t *t, int32_t part)
{
    for (size_t i = 0; i < g->nown; i++)
        if (g->own[i].t == t && g->own[i].part == part) return &g->own[i];
    return NULL;
}

static own_t *own_get(group_t *g, topic_t *t, int32_t part)
{
    own_t *e = own_find(g, t, part);
    if (e) return e;
    if (g->nown == g->cown) {
        g->cown = g->cown ? g->cown * 2 : 16;
        g->own = xrealloc(g->own, g->cown * sizeof(*g->own));
    }
    e = &g->own[g->nown++];
    memset(e, 0, sizeof(*e));
    e->t = t;
    e->part = part;
    return e;
}

static bool member_subscribes(const emb_consumer_t *c, const char *topic)
{
    for (int i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i], topic) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* g->mu held. Recomputes target owners: for each subscribed topic (by name),
 * range assignment over its subscribers in join order. */
static void group_assign(emb_bus_t *b, group_t *g)
{
    for (size_t i = 0; i < g->nown; i++) g->own[i].target = NULL;

    size_t nt = 0, ct = 0;
    const char **names = NULL;
    for (size_t m = 0; m < g->nmembers; m++)
        for (int k = 0; k < g->members[m]->ntopics; k++) {
            if (nt == ct) {
                ct = ct ? ct * 2 : 8;
                names = xrealloc(names, ct * sizeof(*names));
            }
            names[nt++] = g->members[m]->topics[k];
        }
    if (nt > 1) qsort(names, nt, sizeof(*names), cmp_str);

    emb_consumer_t **subs = xcalloc(g->nmembers ? g->nmembers : 1, sizeof(*subs));
    for (size_t i = 0; i < nt; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) continue;
        topic_t *t = topic_find(b, names[i]);
        if (!t) continue;
        size_t ns = 0;
        for (size_t m = 0; m < g->nmembers; m++)
            if (member_subscribes(g->members[m], names[i])) subs[ns++] = g->members[m];
        int32_t q = t->nparts / (int32_t)ns, rem = t->nparts % (int32_t)ns, p = 0;
        for (size_t s = 0; s < ns; s++) {
            int32_t cnt = q + ((int32_t)s < rem ? 1 : 0);
            for (int32_t k = 0; k < cnt; k++, p++) own_get(g, t, p)->target = subs[s];
        }
    }
    free(subs);
    free(names);

    size_t w = 0;
    for (size_t i = 0; i < g->nown; i++)
        if (g->own[i].owner || g->own[i].target) g->own[w++] = g->own[i];
    g->nown = w;
    atomic_fetch_add(&g->gen, 1);
}

/* ---- bus open/close ---- */

static void *flusher_main(void *arg);
static void *syncer_main(void *arg);
static void sync_all(emb_bus_t *b);

static int64_t kv_int(const char *const *kv, const char *key, int64_t dflt)
{
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
        if (strcmp(kv[i], key) == 0) {
            char *end;
            long long v = strtoll(kv[i + 1], &end, 10);
            if (end != kv[i + 1] && *end == '\0') return v;
            log_warn(LOGC, "ignoring %s=%s: not an integer", kv[i], kv[i + 1]);
        }
    return dflt;
}

static void emb_close(bus_t *bb);

static hr_t emb_open(const bus_opts_t *opts, bus_t **out)
{
    hr_t r = HR_ERR;
    emb_bus_t *b = NULL;
    *out = NULL;
    if (!opts->dir || !*opts->dir) return HR_INVALID;

    int mode = FSYNC_INTERVAL;
    if (opts->fsync && strcmp(opts->fsync, "never") == 0) mode = FSYNC_NEVER;
    else if (opts->fsync && strcmp(opts->fsync, "always") == 0) mode = FSYNC_ALWAYS;
    else if (opts->fsync && strcmp(opts->fsync, "interval") != 0) {
        log_error(LOGC, "fsync must be never, interval or always, not \"%s\"", opts->fsync);
        return HR_INVALID;
    }

    b = xcalloc(1, sizeof(*b));
    b->base.ops = &bus_embedded_ops;
    b->dir = xstrdup(opts->dir);
    b->lock_fd = -1;
    b->fsync_mode = mode;
    b->fsync_interval_ms = opts->fsync_interval_ms > 0 ? opts->fsync_interval_ms : 1000;
    b->segment_bytes = opts->segment_bytes > 0 ? opts->segment_bytes : DEF_SEGMENT_BYTES;
    if (b->segment_bytes < MIN_SEGMENT_BYTES) b->segment_bytes = MIN_SEGMENT_BYTES;
    b->flush_interval_us = opts->flush_interval_us > 0 ? opts->flush_interval_us : 1000;
    for (size_t i = 0; opts->kv && opts->kv[i] && opts->kv[i + 1]; i += 2)
        if (strcmp(opts->kv[i], "max_pending_bytes") != 0)
            log_warn(LOGC, "ignoring unknown embedded bus setting %s", opts->kv[i]);
    int64_t mp = kv_int(opts->kv, "max_pending_bytes", DEF_MAX_PENDING);
    b->max_pending = (size_t)(mp >= 4096 ? mp : 4096);
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->fl_mu, NULL);
    cond_init_mono(&b->fl_cv);
    cond_init_mono(&b->sy_cv);
    pthread_mutex_init(&b->data_mu, NULL);
    cond_init_mono(&b->data_cv);

    char *path = xasprintf("%s/groups", b->dir);
    hr_t m = mkdir_p(path, 0755);
    free(path);
    path = xasprintf("%s/topics", b->dir);
    if (m == HR_OK) m = mkdir_p(path, 0755);
    free(path);
    if (m != HR_OK) {
        log_error(LOGC, "cannot create %s: %s", b->dir, strerror(errno));
        goto out;
    }
    path = xasprintf("%s/LOCK", b->dir);
    b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(path);
    if (b->lock_fd < 0) {
        log_error(LOGC, "open %s/LOCK: %s", b->dir, strerror(errno));
        goto out;
    }
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error(LOGC, "%s is in use by another bus", b->dir);
        r = errno == EWOULDBLOCK ? HR_CONFLICT : HR_ERR;
        goto out;
    }
    if (load_topics(b) != HR_OK) goto out;

    if (pthread_create(&b->flusher, NULL, flusher_main, b) != 0) goto out;
    b->flusher_started = true;
    if (b->fsync_mode == FSYNC_INTERVAL) {
        if (pthread_create(&b->syncer, NULL, syncer_main, b) != 0) goto out;
        b->syncer_started = true;
    }
    log_info(LOGC, "embedded bus at %s: %zu topics, fsync %s", b->dir, atomic_load(&b->ntopics),
             mode == FSYNC_NEVER ? "never" : mode == FSYNC_ALWAYS ? "always" : "interval");
    *out = &b->base;
    r = HR_OK;
out:
    if (r != HR_OK && b) emb_close(&b->base);
    return r;
}

static void emb_close(bus_t *bb)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    if (b->flusher_started) {
        pthread_mutex_lock(&b->fl_mu);
        b->fl_stop = true; /* the flusher writes everything accepted before it exits */
        atomic_store(&b->closing, true);
        pthread_cond_signal(&b->fl_cv);
        pthread_mutex_unlock(&b->fl_mu);
        pthread_join(b->flusher, NULL);
    }
    if (b->syncer_started) {
        pthread_mutex_lock(&b->fl_mu);
        b->sy_stop = true;
        pthread_cond_signal(&b->sy_cv);
        pthread_mutex_unlock(&b->fl_mu);
        pthread_join(b->syncer, NULL);
    }
    if (b->fsync_mode != FSYNC_NEVER) sync_all(b);
    for (size_t i = 0; i < b->ngroups; i++) {
        if (b->groups[i]->nmembers)
            log_error(LOGC, "closing the bus with %zu live members in group %s", b->groups[i]->nmembers,
                      b->groups[i]->name);
        group_free(b->groups[i]);
    }
    free(b->groups);
    size_t nt = atomic_load(&b->ntopics);
    for (size_t i = 0; i < nt; i++) topic_free(b->tlist[i]);
    if (b->lock_fd >= 0) close(b->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->fl_mu);
    pthread_cond_destroy(&b->fl_cv);
    pthread_cond_destroy(&b->sy_cv);
    pthread_mutex_destroy(&b->data_mu);
    pthread_cond_destroy(&b->data_cv);
    free(b->dir);
    free(b);
}

/* ---- topics ---- */

static hr_t emb_topic_ensure(bus_t *bb, const char *name, const bus_topic_opts_t *o)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    hr_t r = HR_OK;
    topic_t *t = NULL;
    if (!name_ok(name) || !o || o->partitions < 1 || o->partitions > MAX_PARTITIONS) return HR_INVALID;

    pthread_mutex_lock(&b->mu);
    if (topic_find(b, name)) goto out;
    if (atomic_load(&b->ntopics) >= MAX_TOPICS) {
        log_error(LOGC, "too many topics (%d)", MAX_TOPICS);
        r = HR_ERR;
        goto out;
    }
    t = topic_alloc(b, name);
    t->nparts = o->partitions;
    t->retention_ms = o->retention_ms >= 0 ? o->retention_ms : -1;
    t->retention_bytes = o->retention_bytes >= 0 ? o->retention_bytes : -1;
    r = HR_ERR;
    if (mkdir_p(t->dir, 0755) != HR_OK) {
        log_error(LOGC, "mkdir %s: %s", t->dir, strerror(errno));
        goto out;
    }
    char *meta = xasprintf("%s/meta", t->dir);
    char *text = topic_meta_text(t);
    r = write_file_atomic(t->dir, meta, text, strlen(text));
    free(meta);
    free(text);
    if (r != HR_OK) goto out;
    char *tdir = xasprintf("%s/topics", b->dir);
    fsync_dir(tdir);
    free(tdir);
    if ((r = topic_open_parts(b, t)) != HR_OK) goto out;
    topic_publish(b, t);
    log_info(LOGC, "created topic %s with %d partitions", name, (int)t->nparts);
    t = NULL;

    /* Members may already be waiting for this topic. */
    for (size_t i = 0; i < b->ngroups; i++) {
        group_t *g = b->groups[i];
        pthread_mutex_lock(&g->mu);
        bool wanted = false;
        for (size_t m = 0; m < g->nmembers && !wanted; m++) wanted = member_subscribes(g->members[m], name);
        if (wanted) group_assign(b, g);
        pthread_mutex_unlock(&g->mu);
    }
    wake_consumers(b);
out:
    pthread_mutex_unlock(&b->mu);
    topic_free(t);
    return r;
}

static int32_t emb_partitions(bus_t *bb, const char *name)
{
    topic_t *t = topic_find((emb_bus_t *)bb, name);
    return t ? t->nparts : -1;
}

/* ---- produce ---- */

static hr_t emb_produce(bus_t *bb, const char *topic, int32_t partition, const void *key,
                        size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    if (partition < 0) {
        if (!key) return HR_INVALID;
        partition = murmur2_partition(key, key_len, t->nparts);
    } else if (partition >= t->nparts) {
        return HR_INVALID;
    }
    if (key_len > REC_MAX || value_len > REC_MAX) return HR_INVALID;
    size_t len = REC_HDR + key_len + value_len;
    if (len > REC_MAX || len > b->max_pending) return HR_INVALID;

    part_t *p = &t->parts[partition];
    int64_t now = hclock_now_ms();
    bool urgent = false;

    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&b->closing, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->mu);
        return HR_CLOSED;
    }
    if (p->plen + len > b->max_pending) {
        pthread_mutex_unlock(&p->mu);
        kick_flusher(b);
        return HR_AGAIN;
    }
    if (p->plen + len > p->pcap) {
        size_t cap = p->pcap ? p->pcap : (size_t)64 << 10;
        while (cap < p->plen + len) cap *= 2;
        p->pend = xrealloc(p->pend, cap);
        p->pcap = cap;
    }
    if (now < p->last_ts) now = p->last_ts; /* append times never go back within a partition */
    p->last_ts = now;
    char *rec = p->pend + p->plen;
    put32(rec, (uint32_t)len);
    put32(rec + 4, 0); /* the flusher fills in the CRC */
    put64(rec + 8, p->next_off++);
    put64(rec + 16, now);
    put32(rec + 24, (uint32_t)key_len);
    if (key_len) memcpy(rec + REC_HDR, key, key_len);
    if (value_len) memcpy(rec + REC_HDR + key_len, value, value_len);
    urgent = p->plen < URGENT_BYTES && p->plen + len >= URGENT_BYTES;
    p->plen += len;
    if (p->nacks && p->acks[p->nacks - 1].b == batch) {
        p->acks[p->nacks - 1].n++;
    } else {
        if (p->nacks == p->cacks) {
            p->cacks = p->cacks ? p->cacks * 2 : 64;
            p->acks = xrealloc(p->acks, p->cacks * sizeof(*p->acks));
        }
        p->acks[p->nacks].b = batch;
        p->acks[p->nacks].n = 1;
        p->nacks++;
    }
    pthread_mutex_unlock(&p->mu);

    if (urgent) {
        atomic_store(&b->dirty, 1);
        kick_flusher(b);
    } else if (!atomic_load_explicit(&b->dirty, memory_order_relaxed) && !atomic_exchange(&b->dirty, 1)) {
        pthread_mutex_lock(&b->fl_mu);
        pthread_cond_signal(&b->fl_cv);
        pthread_mutex_unlock(&b->fl_mu);
    }
    return HR_OK;
}

/* Records below each partition's end that are not acknowledged yet. */
static int64_t emb_outstanding(bus_t *bb)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    int64_t n = 0;
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) {
            part_t *p = &b->tlist[i]->parts[j];
            pthread_mutex_lock(&p->mu);
            int64_t end = p->next_off;
            pthread_mutex_unlock(&p->mu);
            int64_t acked = atomic_load(&p->acked);
            if (end > acked) n += end - acked;
        }
    return n;
}

static hr_t emb_flush(bus_t *bb, int timeout_ms)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    size_t np = 0;
    for (size_t i = 0; i < nt; i++) np += (size_t)b->tlist[i]->nparts;
    int64_t *want = xmalloc((np ? np : 1) * sizeof(*want));
    size_t k = 0;
    bool any = false;
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) {
            part_t *p = &b->tlist[i]->parts[j];
            pthread_mutex_lock(&p->mu);
            want[k] = p->next_off;
            pthread_mutex_unlock(&p->mu);
            any = any || atomic_load(&p->acked) < want[k];
            k++;
        }
    hr_t r = HR_OK;
    if (any) kick_flusher(b);
    for (;;) {
        uint64_t seq = atomic_load(&b->data_seq);
        bool done = true;
        k = 0;
        for (size_t i = 0; i < nt && done; i++)
            for (int32_t j = 0; j < b->tlist[i]->nparts; j++, k++)
                if (atomic_load(&b->tlist[i]->parts[j].acked) < want[k]) {
                    done = false;
                    break;
                }
        if (done) break;
        if (hclock_mono_ns() >= deadline) {
            r = HR_TIMEOUT;
            break;
        }
        pthread_mutex_lock(&b->data_mu);
        while (atomic_load(&b->data_seq) == seq)
            if (cond_wait_until(&b->data_cv, &b->data_mu, deadline) == ETIMEDOUT) break;
        pthread_mutex_unlock(&b->data_mu);
    }
    free(want);
    return r;
}

/* ---- flusher ---- */

static void retention(part_t *p, int64_t now_ms)
{
    const topic_t *t = p->t;
    if (t->retention_ms < 0 && t->retention_bytes < 0) return;
    pthread_mutex_lock(&p->seg_mu);
    while (p->nsegs > 1 && p->segs[0]->sealed) {
        seg_t *s = p->segs[0];
        bool by_size = t->retention_bytes >= 0 && p->total_bytes - s->size >= t->retention_bytes;
        bool by_age = t->retention_ms >= 0 && now_ms - s->max_ts > t->retention_ms;
        if (!by_size && !by_age) break;
        memmove(p->segs, p->segs + 1, (p->nsegs - 1) * sizeof(*p->segs));
        p->nsegs--;
        p->total_bytes -= s->size;
        p->log_start = p->segs[0]->base;
        s->dead = true;
        if (unlink(s->path) != 0) log_warn(LOGC, "unlink %s: %s", s->path, strerror(errno));
        log_info(LOGC, "%s/%d: retention (%s) deleted segment %" PRId64 " (%" PRId64 " bytes)", t->name,
                 (int)p->id, by_size ? "size" : "age", s->base, s->size);
        seg_unref(s);
    }
    pthread_mutex_unlock(&p->seg_mu);
}

/* Writes one piece of the flush buffer to the active segment and publishes
 * it to readers. */
static hr_t write_piece(emb_bus_t *b, part_t *p, seg_t *s, const char *data, size_t len,
                        int64_t last_off, int64_t max_ts)
{
    if (write_all(s->fd, data, len) != HR_OK ||
        (b->fsync_mode == FSYNC_ALWAYS && fdatasync(s->fd) != 0)) {
        log_error(LOGC, "write %s: %s", s->path, strerror(errno));
        if (ftruncate(s->fd, s->size) != 0)
            log_error(LOGC, "truncate %s: %s", s->path, strerror(errno));
        s->idx_next = s->nidx ? s->idx[s->nidx - 1].pos + IDX_STEP : 0;
        p->nfidx = 0;
        return HR_ERR;
    }
    pthread_mutex_lock(&p->seg_mu);
    s->size += (int64_t)len;
    if (b->fsync_mode != FSYNC_INTERVAL) s->synced = s->size;
    s->end = last_off + 1;
    if (max_ts > s->max_ts) s->max_ts = max_ts;
    for (size_t i = 0; i < p->nfidx; i++) idx_push(&s->idx, &s->nidx, &s->cidx, p->fidx[i].off, p->fidx[i].pos);
    p->nfidx = 0;
    p->total_bytes += (int64_t)len;
    atomic_store(&p->hw, last_off + 1);
    pthread_mutex_unlock(&p->seg_mu);
    return HR_OK;
}

/* Seals the active segment and starts a new one at `base`. */
static hr_t roll(emb_bus_t *b, part_t *p, int64_t base, seg_t **active)
{
    seg_t *s;
    if (seg_create_active(b, p, base, &s) != HR_OK) return HR_ERR;
    pthread_mutex_lock(&p->seg_mu);
    seg_t *old = p->segs[p->nsegs - 1];
    old->sealed = true;
    seg_maybe_close(old);
    segs_push(p, s);
    pthread_mutex_unlock(&p->seg_mu);
    *active = s;
    retention(p, hclock_now_ms());
    return HR_OK;
}

static void ack_runs(ack_run_t *runs, size_t nruns, int64_t nok)
{
    for (size_t i = 0; i < nruns; i++) {
        int64_t n = runs[i].n, ok = n < nok ? n : nok;
        nok -= ok;
        if (!runs[i].b) continue;
        if (ok) batch_ack_n(runs[i].b, ok, HR_OK);
        if (n - ok) batch_ack_n(runs[i].b, n - ok, HR_ERR);
    }
}

/* Flusher thread. Returns true if anything was acked. */
static bool part_flush(emb_bus_t *b, part_t *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->plen == 0) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    char *buf = p->pend;
    size_t n = p->plen, cap = p->pcap;
    p->pend = p->fbuf;
    p->pcap = p->fcap;
    p->plen = 0;
    p->fbuf = buf;
    p->fcap = cap;
    ack_run_t *runs = p->acks;
    size_t nruns = p->nacks, cruns = p->cacks;
    p->acks = p->facks;
    p->cacks = p->cfacks;
    p->nacks = 0;
    p->facks = runs;
    p->cfacks = cruns;
    int64_t end_off = p->next_off;
    pthread_mutex_unlock(&p->mu);

    seg_t *s = p->segs[p->nsegs - 1]; /* only this thread changes the list's tail */
    int64_t fsize = s->size, nok = 0, piece_recs = 0, last_off = -1, max_ts = 0;
    size_t i = 0, piece = 0;
    hr_t r = HR_OK;
    p->nfidx = 0;
    while (i < n) {
        char *rec = buf + i;
        uint32_t len = get32(rec);
        int64_t off = get64(rec + 8);
        int64_t at = fsize + (int64_t)(i - piece);
        if (at > 0 && at + (int64_t)len > b->segment_bytes) {
            if (i > piece) {
                if ((r = write_piece(b, p, s, buf + piece, i - piece, last_off, max_ts)) != HR_OK) break;
                nok += piece_recs;
            }
            if ((r = roll(b, p, off, &s)) != HR_OK) break;
            fsize = 0;
            piece = i;
            piece_recs = 0;
            at = 0;
        }
        if (at >= s->idx_next) {
            idx_push(&p->fidx, &p->nfidx, &p->cfidx, off, at);
            s->idx_next = at + IDX_STEP;
        }
        put32(rec + 4, rec_crc(rec, len));
        int64_t ts = get64(rec + 16);
        if (ts > max_ts) max_ts = ts;
        last_off = off;
        piece_recs++;
        i += len;
    }
    if (r == HR_OK && i > piece && write_piece(b, p, s, buf + piece, i - piece, last_off, max_ts) == HR_OK)
        nok += piece_recs;
    ack_runs(runs, nruns, nok);
    atomic_store(&p->acked, end_off);

    if (p->fcap > SHRINK_BYTES && n < p->fcap / 4) {
        free(p->fbuf);
        p->fbuf = NULL;
        p->fcap = 0;
    }
    return true;
}

static bool flush_all(emb_bus_t *b)
{
    bool any = false;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) any |= part_flush(b, &b->tlist[i]->parts[j]);
    return any;
}

static void housekeeping(emb_bus_t *b)
{
    int64_t now = hclock_now_ms();
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) retention(&b->tlist[i]->parts[j], now);
}

static void *flusher_main(void *arg)
{
    emb_bus_t *b = arg;
    int64_t next_house = hclock_mono_ns() + (int64_t)HOUSEKEEP_MS * 1000000;
    for (;;) {
        pthread_mutex_lock(&b->fl_mu);
        while (!b->fl_stop && !b->fl_urgent && !atomic_load(&b->dirty))
            if (cond_wait_until(&b->fl_cv, &b->fl_mu, next_house) == ETIMEDOUT) break;
        if (!b->fl_stop && !b->fl_urgent && atomic_load(&b->dirty)) {
            /* batching window: let more records gather */
            int64_t until = hclock_mono_ns() + (int64_t)b->flush_interval_us * 1000;
            while (!b->fl_stop && !b->fl_urgent)
                if (cond_wait_until(&b->fl_cv, &b->fl_mu, until) == ETIMEDOUT) break;
        }
        bool stop = b->fl_stop;
        b->fl_urgent = false;
        pthread_mutex_unlock(&b->fl_mu);

        atomic_store(&b->dirty, 0);
        if (flush_all(b)) wake_consumers(b);
        if (hclock_mono_ns() >= next_house) {
            housekeeping(b);
            next_house = hclock_mono_ns() + (int64_t)HOUSEKEEP_MS * 1000000;
        }
        if (stop) break;
    }
    return NULL;
}

/* fdatasyncs every segment with written but unsynced bytes. */
static void sync_all(emb_bus_t *b)
{
    seg_t **v = NULL;
    int64_t *sz = NULL;
    size_t cap = 0;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) {
            part_t *p = &b->tlist[i]->parts[j];
            size_t n = 0;
            pthread_mutex_lock(&p->seg_mu);
            for (size_t k = 0; k < p->nsegs; k++) {
                seg_t *s = p->segs[k];
                if (s->synced >= s->size || s->fd < 0) continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    v = xrealloc(v, cap * sizeof(*v));
                    sz = xrealloc(sz, cap * sizeof(*sz));
                }
                s->refs++;
                v[n] = s;
                sz[n++] = s->size;
            }
            pthread_mutex_unlock(&p->seg_mu);
            for (size_t k = 0; k < n; k++) {
                bool ok = fdatasync(v[k]->fd) == 0;
                if (!ok) log_error(LOGC, "fdatasync %s: %s", v[k]->path, strerror(errno));
                pthread_mutex_lock(&p->seg_mu);
                if (ok && sz[k] > v[k]->synced) v[k]->synced = sz[k];
                seg_unref(v[k]);
                pthread_mutex_unlock(&p->seg_mu);
            }
        }
    free(v);
    free(sz);
}

static void *syncer_main(void *arg)
{
    emb_bus_t *b = arg;
    for (;;) {
        int64_t until = hclock_mono_ns() + (int64_t)b->fsync_interval_ms * 1000000;
        pthread_mutex_lock(&b->fl_mu);
        while (!b->sy_stop)
            if (cond_wait_until(&b->sy_cv, &b->fl_mu, until) == ETIMEDOUT) break;
        bool stop = b->sy_stop;
        pthread_mutex_unlock(&b->fl_mu);
        if (stop) break;
        sync_all(b);
    }
    return NULL;
}

/* ---- consumers ---- */

static cpart_t *cpart_find(emb_consumer_t *c, const char *topic, int32_t part)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->part == part && strcmp(c->parts[i]->t->name, topic) == 0) return c->parts[i];
    return NULL;
}

static void drop_buffer(emb_consumer_t *c)
{
    c->rpart = NULL;
    c->rlen = c->rdone = 0;
}

static void cpart_drop_seg(cpart_t *cp)
{
    if (!cp->seg) return;
    pthread_mutex_lock(&cp->p->seg_mu);
    seg_unref(cp->seg);
    pthread_mutex_unlock(&cp->p->seg_mu);
    cp->seg = NULL;
}

/* Clamps an offset to [log start, end]. */
static int64_t clamp_offset(part_t *p, int64_t off)
{
    pthread_mutex_lock(&p->seg_mu);
    int64_t lo = p->log_start, hi = atomic_load(&p->hw);
    pthread_mutex_unlock(&p->seg_mu);
    if (off < lo) off = lo;
    if (off > hi) off = hi;
    return off;
}

static hr_t emb_commit(bus_consumer_t *bc)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    group_t *g = c->g;
    hr_t r = HR_OK;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < c->nparts; i++) {
        cpart_t *cp = c->parts[i];
        if (cp->stored < 0) continue;
        goff_t *o = goff_get(g, cp->t->name, cp->part);
        if (o->off != cp->stored) {
            o->off = cp->stored;
            g->dirty = true;
        }
    }
    r = group_save(c->eb, g);
    pthread_mutex_unlock(&g->mu);
    c->last_commit_ns = hclock_mono_ns();
    return r;
}

/* Gives up every owned partition the group wants elsewhere (all of them when
 * `all`): revoked callbacks, one synchronous commit, then release. */
static void revoke_parts(emb_consumer_t *c, bool all)
{
    group_t *g = c->g;
    size_t n = 0;
    cpart_t **gone = xcalloc(c->nparts ? c->nparts : 1, sizeof(*gone));
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < c->nparts; i++) {
        own_t *e = own_find(g, c->parts[i]->t, c->parts[i]->part);
        if (all || !e || e->target != c) gone[n++] = c->parts[i];
    }
    pthread_mutex_unlock(&g->mu);
    if (n == 0) {
        free(gone);
        return;
    }
    if (c->has_rb && c->rb.revoked)
        for (size_t i = 0; i < n; i++) c->rb.revoked(c->rb.opaque, gone[i]->t->name, gone[i]->part);
    if (emb_commit(&c->base) != HR_OK) log_error(LOGC, "group %s: commit on revoke failed", g->name);

    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < n; i++) {
        own_t *e = own_find(g, gone[i]->t, gone[i]->part);
        if (e && e->owner == c) e->owner = NULL;
    }
    atomic_fetch_add(&g->gen, 1);
    pthread_mutex_unlock(&g->mu);

    size_t w = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        bool drop = false;
        for (size_t k = 0; k < n && !drop; k++) drop = c->parts[i] == gone[k];
        if (!drop) {
            c->parts[w++] = c->parts[i];
            continue;
        }
        if (c->rpart == c->parts[i]) drop_buffer(c);
        cpart_drop_seg(c->parts[i]);
        free(c->parts[i]);
    }
    c->nparts = w;
    c->rr = 0;
    free(gone);
    wake_consumers(c->eb);
}

/* Applies ownership changes of the group; runs on the polling thread. */
static void rebalance(emb_consumer_t *c)
{
    group_t *g = c->g;
    uint64_t gen = atomic_load(&g->gen);
    if (gen == c->seen_gen) return;
    c->seen_gen = gen;
    revoke_parts(c, false);

    size_t first = c->nparts;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nown; i++) {
        own_t *e = &g->own[i];
        if (e->target != c || e->owner) continue;
        e->owner = c;
        cpart_t *cp = xcalloc(1, sizeof(*cp));
        cp->t = e->t;
        cp->part = e->part;
        cp->p = &e->t->parts[e->part];
        cp->stored = -1;
        cp->pos = group_committed(g, e->t->name, e->part);
        if (c->nparts == c->cparts) {
            c->cparts = c->cparts ? c->cparts * 2 : 16;
            c->parts = xrealloc(c->parts, c->cparts * sizeof(*c->parts));
        }
        c->parts[c->nparts++] = cp;
    }
    pthread_mutex_unlock(&g->mu);
    for (size_t i = first; i < c->nparts; i++) {
        cpart_t *cp = c->parts[i];
        cp->pos = clamp_offset(cp->p, cp->pos < 0 ? 0 : cp->pos);
        log_debug(LOGC, "group %s: member %" PRIu64 " takes %s/%d at %" PRId64, g->name, c->id, cp->t->name,
                  (int)cp->part, cp->pos);
    }
    for (size_t i = first; i < c->nparts; i++)
        if (c->has_rb && c->rb.assigned) c->rb.assigned(c->rb.opaque, c->parts[i]->t->name, c->parts[i]->part);
}

static hr_t emb_consumer_new(bus_t *bb, const char *group, const char *const *topics, int ntopics,
                             const bus_rebalance_t *rb, bus_consumer_t **out)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    *out = NULL;
    if (!name_ok(group) || ntopics < 1 || !topics) return HR_INVALID;
    for (int i = 0; i < ntopics; i++)
        if (!name_ok(topics[i])) return HR_INVALID;

    emb_consumer_t *c = xcalloc(1, sizeof(*c));
    c->base.ops = &bus_embedded_ops;
    c->base.bus = bb;
    c->eb = b;
    c->topics = xcalloc((size_t)ntopics, sizeof(*c->topics));
    c->ntopics = ntopics;
    for (int i = 0; i < ntopics; i++) c->topics[i] = xstrdup(topics[i]);
    if (rb) {
        c->rb = *rb;
        c->has_rb = true;
    }
    c->rcap = READ_CHUNK;
    c->rbuf = xmalloc(c->rcap);
    c->last_commit_ns = hclock_mono_ns();

    pthread_mutex_lock(&b->mu);
    group_t *g = group_get(b, group);
    c->g = g;
    pthread_mutex_lock(&g->mu);
    c->id = g->next_id++;
    if (g->nmembers == g->cmembers) {
        g->cmembers = g->cmembers ? g->cmembers * 2 : 4;
        g->members = xrealloc(g->members, g->cmembers * sizeof(*g->members));
    }
    g->members[g->nmembers++] = c;
    group_assign(b, g);
    c->seen_gen = 0;
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    wake_consumers(b);
    *out = &c->base;
    return HR_OK;
}

static void emb_consumer_close(bus_consumer_t *bc)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    emb_bus_t *b = c->eb;
    group_t *g = c->g;
    revoke_parts(c, true);
    if (emb_commit(bc) != HR_OK) log_error(LOGC, "group %s: commit on close failed", g->name);

    pthread_mutex_lock(&b->mu);
    pthread_mutex_lock(&g->mu);
    size_t w = 0;
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i] != c) g->members[w++] = g->members[i];
    g->nmembers = w;
    for (size_t i = 0; i < g->nown; i++)
        if (g->own[i].owner == c) g->own[i].owner = NULL;
    group_assign(b, g);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    wake_consumers(b);

    for (int i = 0; i < c->ntopics; i++) free(c->topics[i]);
    free(c->topics);
    free(c->parts);
    free(c->rbuf);
    free(c);
}

/* Positions cp->seg/fpos at the data for cp->pos and reports the readable
 * limit. false when there is nothing to read now. */
static bool cursor_prepare(cpart_t *cp, int *fd, int64_t *limit)
{
    part_t *p = cp->p;
    bool ok = false;
    pthread_mutex_lock(&p->seg_mu);
    if (cp->pos < p->log_start) {
        cp->pos = p->log_start;
        if (cp->seg) seg_unref(cp->seg);
        cp->seg = NULL;
    }
    if (cp->seg && cp->seg->dead) {
        seg_unref(cp->seg);
        cp->seg = NULL;
    }
    if (cp->seg && cp->seg->sealed && cp->fpos >= cp->seg->size) {
        size_t lo = 0, hi = p->nsegs; /* the segment after cp->seg */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p->segs[mid]->base <= cp->seg->base)
                lo = mid + 1;
            else
                hi = mid;
        }
        seg_unref(cp->seg);
        cp->seg = NULL;
        if (lo < p->nsegs) {
            cp->seg = p->segs[lo];
            cp->seg->refs++;
            cp->fpos = 0;
        }
    }
    if (!cp->seg) {
        size_t lo = 0, hi = p->nsegs; /* last segment with base <= pos */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p->segs[mid]->base <= cp->pos)
                lo = mid + 1;
            else
                hi = mid;
        }
        seg_t *s = p->segs[lo ? lo - 1 : 0];
        s->refs++;
        cp->seg = s;
        cp->fpos = 0;
        if (cp->pos > s->base) {
            seg_ensure_index(p, s);
            cp->fpos = seg_lookup(s, cp->pos);
        }
    }
    if (cp->seg->dead || seg_open_fd(cp->seg) != HR_OK) goto out;
    *fd = cp->seg->fd;
    *limit = cp->seg->size;
    ok = cp->fpos < *limit;
out:
    pthread_mutex_unlock(&p->seg_mu);
    return ok;
}

/* Hands out parsed records of the read buffer (which holds rpart's data). */
static int take_records(emb_consumer_t *c, bus_msg_t *msgs, int max, int64_t limit)
{
    cpart_t *cp = c->rpart;
    int n = 0;
    while (n < max && c->rlen - c->rdone >= REC_HDR) {
        const char *r = c->rbuf + c->rdone;
        uint32_t len = get32(r);
        bool bad = len < REC_HDR || len > REC_MAX;
        if (!bad && len > c->rlen - c->rdone) break;
        if (!bad) bad = get32(r + 24) > len - REC_HDR || rec_crc(r, len) != get32(r + 4);
        if (bad) {
            log_error(LOGC, "%s/%d: corrupt record at byte %" PRId64 " of %s; skipping to byte %" PRId64,
                      cp->t->name, (int)cp->part, cp->fpos, cp->seg->path, limit);
            cp->fpos = limit;
            drop_buffer(c);
            break;
        }
        int64_t off = get64(r + 8);
        c->rdone += len;
        cp->fpos += len;
        if (off < cp->pos) continue;
        uint32_t klen = get32(r + 24);
        bus_msg_t *m = &msgs[n++];
        m->topic = cp->t->name;
        m->partition = cp->part;
        m->offset = off;
        m->timestamp_ms = get64(r + 16);
        m->key = r + REC_HDR;
        m->key_len = klen;
        m->value = r + REC_HDR + klen;
        m->value_len = len - REC_HDR - klen;
        cp->pos = off + 1;
    }
    return n;
}

static int read_part(emb_consumer_t *c, cpart_t *cp, bus_msg_t *msgs, int max)
{
    for (int round = 0; round < 1024; round++) {
        int fd;
        int64_t limit;
        if (!cursor_prepare(cp, &fd, &limit)) return 0;
        size_t want = c->rcap;
        if ((int64_t)want > limit - cp->fpos) want = (size_t)(limit - cp->fpos);
        ssize_t got = pread(fd, c->rbuf, want, cp->fpos);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            log_error(LOGC, "read %s: %s", cp->seg->path, got < 0 ? strerror(errno) : "short file");
            return HR_ERR;
        }
        c->rpart = cp;
        c->rlen = (size_t)got;
        c->rdone = 0;
        c->rlimit = limit;
        int n = take_records(c, msgs, max, limit);
        if (n > 0) return n;
        if (c->rpart && c->rdone == 0) {
            /* not even one whole record: it is bigger than the buffer */
            uint32_t len = c->rlen >= 4 ? get32(c->rbuf) : 0;
            if (len <= c->rcap || len > REC_MAX) {
                log_error(LOGC, "%s/%d: unreadable data at byte %" PRId64 " of %s", cp->t->name,
                          (int)cp->part, cp->fpos, cp->seg->path);
                cp->fpos = limit;
                drop_buffer(c);
                continue;
            }
            c->rcap = len;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
    }
    return 0;
}

static int fill(emb_consumer_t *c, bus_msg_t *msgs, int max)
{
    if (c->rpart && c->rdone < c->rlen && !c->rpart->paused) {
        int n = take_records(c, msgs, max, c->rlimit);
        if (n > 0) return n;
    }
    drop_buffer(c);
    size_t np = c->nparts;
    for (size_t k = 0; k < np; k++) {
        size_t i = (c->rr + k) % np;
        cpart_t *cp = c->parts[i];
        if (cp->paused || cp->pos >= atomic_load(&cp->p->hw)) continue;
        int n = read_part(c, cp, msgs, max);
        if (n != 0) {
            c->rr = (i + 1) % np;
            return n;
        }
    }
    return 0;
}

static int emb_poll(bus_consumer_t *bc, bus_msg_t *msgs, int max, int timeout_ms)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    emb_bus_t *b = c->eb;
    if (max <= 0 || !msgs) return HR_INVALID;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        uint64_t seq = atomic_load(&b->data_seq);
        rebalance(c);
        if (hclock_mono_ns() - c->last_commit_ns >= (int64_t)AUTOCOMMIT_MS * 1000000) emb_commit(bc);
        int n = fill(c, msgs, max);
        if (n != 0) return n;
        if (hclock_mono_ns() >= deadline) return 0;
        pthread_mutex_lock(&b->data_mu);
        while (atomic_load(&b->data_seq) == seq)
            if (cond_wait_until(&b->data_cv, &b->data_mu, deadline) == ETIMEDOUT) break;
        pthread_mutex_unlock(&b->data_mu);
    }
}

static hr_t emb_store_offset(bus_consumer_t *bc, const char *topic, int32_t partition, int64_t next)
{
    cpart_t *cp = cpart_find((emb_consumer_t *)bc, topic, partition);
    if (!cp) return HR_DECLINED;
    if (next < 0) return HR_INVALID;
    cp->stored = next;
    return HR_OK;
}

static hr_t emb_pause(bus_consumer_t *bc, const char *topic, int32_t partition)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    cpart_t *cp = cpart_find(c, topic, partition);
    if (!cp) return HR_DECLINED;
    cp->paused = true;
    if (c->rpart == cp) drop_buffer(c);
    return HR_OK;
}

static hr_t emb_resume(bus_consumer_t *bc, const char *topic, int32_t partition)
{
    cpart_t *cp = cpart_find((emb_consumer_t *)bc, topic, partition);
    if (!cp) return HR_DECLINED;
    cp->paused = false;
    return HR_OK;
}

static hr_t emb_seek(bus_consumer_t *bc, const char *topic, int32_t partition, int64_t offset)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    cpart_t *cp = cpart_find(c, topic, partition);
    if (!cp) return HR_DECLINED;
    if (offset < 0) return HR_INVALID;
    if (c->rpart == cp) drop_buffer(c);
    cpart_drop_seg(cp);
    cp->pos = clamp_offset(cp->p, offset);
    return HR_OK;
}

/* ---- offline group tools ---- */

/* First offset whose append time is >= ts, or the end of the partition. */
static int64_t offset_for_time(part_t *p, int64_t ts)
{
    int64_t found = -1;
    pthread_mutex_lock(&p->seg_mu);
    for (size_t k = 0; k < p->nsegs && found < 0; k++) {
        seg_t *s = p->segs[k];
        /* max_ts is exact for indexed segments and an upper bound (file
         * mtime) otherwise, so skipping on it is safe. */
        if (s->size == 0 || s->max_ts < ts || seg_open_fd(s) != HR_OK) continue;
        s->refs++;
        int fd = s->fd;
        int64_t size = s->size;
        pthread_mutex_unlock(&p->seg_mu);
        scan_t sc;
        const char *rec;
        uint32_t len;
        scan_init(&sc, fd, size, s->base);
        while (scan_next(&sc, &rec, &len) == 1) {
            if (get64(rec + 16) >= ts) {
                found = get64(rec + 8);
                break;
            }
            sc.pos += len;
        }
        scan_release(&sc);
        pthread_mutex_lock(&p->seg_mu);
        seg_unref(s);
    }
    pthread_mutex_unlock(&p->seg_mu);
    return found >= 0 ? found : atomic_load(&p->hw);
}

static hr_t emb_group_reset(bus_t *bb, const char *group, const char *topic, int64_t to_time_ms)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    if (!name_ok(group)) return HR_INVALID;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    hr_t r;
    pthread_mutex_lock(&b->mu);
    group_t *g = group_get(b, group);
    pthread_mutex_lock(&g->mu);
    if (g->nmembers) {
        r = HR_CONFLICT;
        goto out;
    }
    for (int32_t i = 0; i < t->nparts; i++) {
        part_t *p = &t->parts[i];
        int64_t off;
        if (to_time_ms <= 0) {
            pthread_mutex_lock(&p->seg_mu);
            off = p->log_start;
            pthread_mutex_unlock(&p->seg_mu);
        } else {
            off = offset_for_time(p, to_time_ms);
        }
        goff_get(g, t->name, i)->off = off;
    }
    g->dirty = true;
    r = group_save(b, g);
    log_info(LOGC, "group %s: offsets of %s reset to time %" PRId64, group, topic, to_time_ms);
out:
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    return r;
}

static hr_t emb_lag(bus_t *bb, const char *group, const char *topic, bus_lag_t **out, int *n)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    *out = NULL;
    *n = 0;
    if (!name_ok(group)) return HR_INVALID;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    bus_lag_t *v = xcalloc((size_t)t->nparts, sizeof(*v));
    pthread_mutex_lock(&b->mu);
    group_t *g = group_get(b, group);
    pthread_mutex_lock(&g->mu);
    for (int32_t i = 0; i < t->nparts; i++) {
        part_t *p = &t->parts[i];
        snprintf(v[i].topic, sizeof(v[i].topic), "%s", t->name);
        v[i].partition = i;
        v[i].committed = group_committed(g, t->name, i);
        pthread_mutex_lock(&p->seg_mu);
        int64_t start = p->log_start;
        v[i].end_offset = atomic_load(&p->hw);
        pthread_mutex_unlock(&p->seg_mu);
        int64_t from = v[i].committed >= 0 ? v[i].committed : start;
        if (from < start) from = start;
        v[i].lag = v[i].end_offset > from ? v[i].end_offset - from : 0;
    }
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    *out = v;
    *n = t->nparts;
    return HR_OK;
}

const bus_ops_t bus_embedded_ops = {
    .name = "embedded",
    .open = emb_open,
    .close = emb_close,
    .topic_ensure = emb_topic_ensure,
    .partitions = emb_partitions,
    .produce = emb_produce,
    .flush = emb_flush,
    .serve = NULL,
    .consumer_new = emb_consumer_new,
    .poll = emb_poll,
    .store_offset = emb_store_offset,
    .commit = emb_commit,
    .pause = emb_pause,
    .resume = emb_resume,
    .seek = emb_seek,
    .consumer_close = emb_consumer_close,
    .group_reset = emb_group_reset,
    .lag = emb_lag,
    .outstanding = emb_outstanding,
};
