/*
 * bus_embedded_log.c - the embedded bus's files: segment files and their
 * sparse index, the record scanner that verifies every record read from
 * disk, loading a partition (skipping damaged records, cutting off a torn
 * tail, refusing missing segments), topic metadata, retention and the bus's
 * health. See bus_embedded.c for the design.
 *
 * Damage versus a torn tail: a write the process did not finish (a crash)
 * can only leave bad bytes at the very end of the active segment, after the
 * last record it acknowledged; they are cut off. Bad bytes followed by a
 * valid record, or anywhere in a sealed segment, are damage: the scanner
 * resynchronises on the next valid record, so the damage costs only the
 * records it hit, and the loss is logged, counted and reported by
 * bus_health(). Offsets that are missing between two segments (a deleted
 * file) stop bus_open unless bus.embedded.accept_loss is set.
 */
#include "bus/bus_embedded_int.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGC "bus"

/* ---- small helpers ---- */

bool emb_name_ok(const char *s)
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

hr_t emb_write_all(int fd, const char *data, size_t len)
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

void emb_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    if (fsync(fd) != 0) log_warn(LOGC, "fsync %s: %s", dir, strerror(errno));
    close(fd);
}

/* Writes path atomically: tmp file, fsync, rename, fsync of the directory. */
hr_t emb_write_file_atomic(const char *dir, const char *path, const char *data, size_t len)
{
    hr_t r = HR_ERR;
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(LOGC, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (emb_write_all(fd, data, len) != HR_OK || fsync(fd) != 0) {
        log_error(LOGC, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        log_error(LOGC, "rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    emb_fsync_dir(dir);
    r = HR_OK;
out:
    if (fd >= 0) close(fd);
    if (r != HR_OK) unlink(tmp);
    free(tmp);
    return r;
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
    free(s->holes);
    free(s->idx);
    free(s->path);
    free(s);
}

/* seg_mu held. A sealed segment that only the list refers to needs no open
 * descriptor once synced. (A dead one's last reference is a reader's.) */
void emb_seg_maybe_close(seg_t *s)
{
    if (s->sealed && !s->dead && s->refs == 1 && s->fd >= 0 && s->synced >= s->size) {
        close(s->fd);
        s->fd = -1;
    }
}

void emb_seg_unref(seg_t *s)
{
    if (--s->refs == 0)
        seg_free(s);
    else
        emb_seg_maybe_close(s);
}

/* seg_mu held. */
hr_t emb_seg_open_fd(seg_t *s)
{
    if (s->fd >= 0) return HR_OK;
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        log_error(LOGC, "open %s: %s", s->path, strerror(errno));
        return HR_ERR;
    }
    return HR_OK;
}

void emb_idx_push(idx_ent_t **v, size_t *n, size_t *cap, int64_t off, int64_t pos)
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
int64_t emb_seg_lookup(const seg_t *s, int64_t off)
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

/* ---- scanner ---- */

void emb_scan_init(scan_t *sc, int fd, int64_t limit, int64_t base)
{
    memset(sc, 0, sizeof(*sc));
    sc->fd = fd;
    sc->limit = limit;
    sc->prev = base - 1;
    sc->cap = SCAN_CHUNK;
    sc->buf = xmalloc(sc->cap);
}

void emb_scan_release(scan_t *sc) { free(sc->buf); }

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
int emb_scan_next(scan_t *sc, const char **rec, uint32_t *len)
{
    if (sc->pos >= sc->limit) return 0;
    if (scan_need(sc, REC_HDR) != HR_OK) return -1;
    const char *r = sc->buf + (sc->pos - sc->bpos);
    uint32_t n = le_get32(r);
    if (n < REC_HDR || n > REC_MAX) return -1;
    if (scan_need(sc, n) != HR_OK) return -1;
    r = sc->buf + (sc->pos - sc->bpos);
    if (rec_klen(r, n) < 0) return -1;
    if (rec_crc(r, n) != le_get32(r + 4)) return -1;
    int64_t off = le_get64(r + 8);
    if (off <= sc->prev) return -1;
    sc->prev = off;
    *rec = r;
    *len = n;
    return 1;
}

int emb_scan_resync(scan_t *sc)
{
    int64_t from = sc->pos;
    int64_t max_off = sc->prev + (sc->limit - from) / REC_HDR + RESYNC_GAP;
    /* Cheap tests first (length, offset window), the CRC last: random bytes
     * almost never get that far. */
    for (int64_t q = from + 1; q + REC_HDR <= sc->limit; q++) {
        sc->pos = q;
        if (scan_need(sc, REC_HDR) != HR_OK) break;
        const char *r = sc->buf + (q - sc->bpos);
        uint32_t n = le_get32(r);
        if (n < REC_HDR || n > REC_MAX || q + (int64_t)n > sc->limit) continue;
        int64_t off = le_get64(r + 8);
        if (off <= sc->prev || off > max_off || rec_klen(r, n) < 0) continue;
        if (scan_need(sc, n) != HR_OK) continue;
        r = sc->buf + (q - sc->bpos);
        if (rec_crc(r, n) == le_get32(r + 4)) return 1;
    }
    sc->pos = from;
    return 0;
}

/* ---- segment scan and index ---- */

static void hole_push(hole_t **v, size_t *n, size_t *cap, int64_t pos, int64_t end, int64_t first,
                      int64_t recs)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[*n].pos = pos;
    (*v)[*n].end = end;
    (*v)[*n].first = first;
    (*v)[*n].recs = recs;
    (*n)++;
}

const hole_t *emb_seg_hole_at(const seg_t *s, int64_t pos)
{
    for (size_t i = 0; i < s->nholes; i++)
        if (s->holes[i].pos <= pos && pos < s->holes[i].end) return &s->holes[i];
    return NULL;
}

void emb_seg_scan(int fd, int64_t size, int64_t base, seg_info_t *si)
{
    scan_t sc;
    const char *rec;
    uint32_t len;
    memset(si, 0, sizeof(*si));
    si->end = base;
    emb_scan_init(&sc, fd, size, base);
    for (;;) {
        int k = emb_scan_next(&sc, &rec, &len);
        if (k == 0) break;
        if (k < 0) {
            int64_t bad = sc.pos, prev = sc.prev;
            if (!emb_scan_resync(&sc)) break; /* nothing valid follows: a torn tail */
            int64_t next = le_get64(sc.buf + (sc.pos - sc.bpos) + 8);
            hole_push(&si->holes, &si->nholes, &si->choles, bad, sc.pos, prev + 1, next - prev - 1);
            continue;
        }
        if (sc.pos >= si->idx_next) {
            emb_idx_push(&si->idx, &si->nidx, &si->cidx, le_get64(rec + 8), sc.pos);
            si->idx_next = sc.pos + IDX_STEP;
        }
        si->end = le_get64(rec + 8) + 1;
        int64_t ts = le_get64(rec + 16);
        if (ts > si->max_ts) si->max_ts = ts;
        sc.pos += len;
    }
    si->valid = sc.pos;
    emb_scan_release(&sc);
}

/* seg_mu held on entry and exit; drops it while reading. s is referenced. */
void emb_seg_ensure_index(part_t *p, seg_t *s)
{
    if (s->indexed) return;
    if (emb_seg_open_fd(s) != HR_OK) return;
    int fd = s->fd;
    int64_t size = s->size;
    seg_info_t si;
    pthread_mutex_unlock(&p->seg_mu);
    emb_seg_scan(fd, size, s->base, &si);
    pthread_mutex_lock(&p->seg_mu);
    if (s->indexed) {
        free(si.idx);
        free(si.holes);
        return;
    }
    for (size_t i = 0; i < si.nholes; i++)
        if (!emb_seg_hole_at(s, si.holes[i].pos)) emb_note_damage(p->t->bus, p, s, &si.holes[i]);
    free(si.holes);
    if (si.valid < size) {
        /* a sealed segment was complete: a bad tail is damage */
        hole_t h = {si.valid, size, si.end, 0};
        for (size_t k = 0; k + 1 < p->nsegs; k++)
            if (p->segs[k] == s && p->segs[k + 1]->base > si.end) h.recs = p->segs[k + 1]->base - si.end;
        if (!emb_seg_hole_at(s, si.valid)) emb_note_damage(p->t->bus, p, s, &h);
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

/* ---- partitions and topics: loading, recovery of a torn tail ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void emb_segs_push(part_t *p, seg_t *s)
{
    if (p->nsegs == p->csegs) {
        p->csegs = p->csegs ? p->csegs * 2 : 8;
        p->segs = xrealloc(p->segs, p->csegs * sizeof(*p->segs));
    }
    p->segs[p->nsegs++] = s;
}

/* Opens the active segment at `base` for appending (creating it). */
hr_t emb_seg_create_active(emb_bus_t *b, part_t *p, int64_t base, seg_t **out)
{
    char *path = seg_path(p->dir, base);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(LOGC, "create %s: %s", path, strerror(errno));
        free(path);
        return HR_ERR;
    }
    if (b->fsync_mode != FSYNC_NEVER) emb_fsync_dir(p->dir);
    seg_t *s = seg_new(path, base);
    s->fd = fd;
    s->indexed = true;
    *out = s;
    return HR_OK;
}

/* Verifies one segment file at load (seg_mu not needed: single-threaded
 * open). The active segment's bad tail is cut off (a torn write); damage
 * elsewhere becomes holes. */
static hr_t seg_load(emb_bus_t *b, part_t *p, seg_t *s, bool active, int64_t next_base)
{
    int fd = open(s->path, active ? O_RDWR | O_APPEND | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error(LOGC, "open %s: %s", s->path, strerror(errno));
        return HR_ERR;
    }
    seg_info_t si;
    emb_seg_scan(fd, s->size, s->base, &si);
    for (size_t i = 0; i < si.nholes; i++) emb_note_damage(b, p, s, &si.holes[i]);
    free(si.holes);
    if (si.valid < s->size && active) {
        log_warn(LOGC, "%s: torn tail at byte %" PRId64 " (an unacknowledged write), dropping %" PRId64
                       " bytes",
                 s->path, si.valid, s->size - si.valid);
        if (ftruncate(fd, si.valid) != 0) {
            log_error(LOGC, "truncate %s: %s", s->path, strerror(errno));
            free(si.idx);
            close(fd);
            return HR_ERR;
        }
        if (b->fsync_mode != FSYNC_NEVER) (void)fdatasync(fd);
    } else if (si.valid < s->size) {
        hole_t h = {si.valid, s->size, si.end, next_base > si.end ? next_base - si.end : 0};
        emb_note_damage(b, p, s, &h);
    }
    p->total_bytes -= s->size - si.valid;
    s->size = si.valid;
    s->synced = si.valid;
    s->idx = si.idx;
    s->nidx = si.nidx;
    s->cidx = si.cidx;
    s->end = si.end;
    s->idx_next = si.idx_next;
    if (si.nidx) s->max_ts = si.max_ts;
    s->indexed = true;
    if (active)
        s->fd = fd;
    else
        close(fd);
    return HR_OK;
}

/* Loads a partition's segments and verifies every record: damaged records
 * are skipped (holes), the active segment's torn tail is cut off, and
 * offsets missing between segments (a lost file) refuse the load unless
 * accept_loss. */
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
        s->sealed = i + 1 < nb;
        emb_segs_push(p, s);
        p->total_bytes += s->size;
    }

    if (p->nsegs == 0) {
        seg_t *s;
        if (emb_seg_create_active(b, p, 0, &s) != HR_OK) goto out;
        emb_segs_push(p, s);
    }
    for (size_t i = 0; i < nb; i++) {
        seg_t *s = p->segs[i];
        bool active = i + 1 == nb;
        if (seg_load(b, p, s, active, active ? -1 : p->segs[i + 1]->base) != HR_OK) goto out;
        if (i == 0) continue;
        seg_t *prev = p->segs[i - 1];
        bool tail_hole = prev->nholes && prev->holes[prev->nholes - 1].end >= prev->size &&
                         prev->holes[prev->nholes - 1].pos == prev->size;
        if (prev->end == s->base || tail_hole) continue;
        /* Offsets between two segments are missing: a segment file was
         * deleted or lost (or the files do not belong together). */
        int64_t lo = prev->end, hi = s->base;
        log_error(LOGC,
                  "%s/%d: offsets %" PRId64 "..%" PRId64 " are missing between %s (ends at %" PRId64
                  ") and %s: a segment file was deleted or lost",
                  p->t->name, (int)p->id, lo, hi - 1, prev->path, prev->end, s->path);
        if (!b->accept_loss) {
            log_error(LOGC, "refusing to open the bus at %s with acknowledged records missing; "
                            "restore the file, or set bus.embedded.accept_loss=true to start without "
                            "them",
                      b->dir);
            goto out;
        }
        if (hi > lo) METRIC_ADD(bus_records_missing, (uint64_t)(hi - lo));
        log_warn(LOGC, "%s/%d: bus.embedded.accept_loss is set: starting without %" PRId64 " records",
                 p->t->name, (int)p->id, hi > lo ? hi - lo : 0);
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
    free(p->wcons);
    free(p->dir);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->seg_mu);
}

void emb_topic_free(topic_t *t)
{
    if (!t) return;
    if (t->parts)
        for (int32_t i = 0; i < t->nparts; i++) part_free(&t->parts[i]);
    free(t->parts);
    free(t->name);
    free(t->dir);
    free(t);
}

/* b->mu held (or single-threaded open). Publishes a fully built topic. */
void emb_topic_publish(emb_bus_t *b, topic_t *t)
{
    uint64_t h = fnv1a64(t->name, t->name_len);
    for (size_t i = 0; i < TOPIC_SLOTS; i++) {
        size_t slot = (h + i) & (TOPIC_SLOTS - 1);
        if (atomic_load_explicit(&b->slots[slot], memory_order_relaxed) == NULL) {
            size_t n = atomic_load(&b->ntopics);
            t->tix = n;
            b->tlist[n] = t;
            atomic_store_explicit(&b->ntopics, n + 1, memory_order_release);
            atomic_store_explicit(&b->slots[slot], t, memory_order_release);
            return;
        }
    }
}

char *emb_topic_meta_text(const topic_t *t)
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

topic_t *emb_topic_alloc(emb_bus_t *b, const char *name)
{
    topic_t *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->name_len = strlen(name);
    t->dir = xasprintf("%s/topics/%s", b->dir, name);
    t->bus = b;
    return t;
}

hr_t emb_topic_open_parts(emb_bus_t *b, topic_t *t)
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

hr_t emb_load_topics(emb_bus_t *b)
{
    char *tdir = xasprintf("%s/topics", b->dir);
    hr_t r = HR_OK;
    DIR *d = opendir(tdir);
    if (!d) goto out;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!emb_name_ok(de->d_name)) continue;
        topic_t *t = emb_topic_alloc(b, de->d_name);
        char *meta = xasprintf("%s/meta", t->dir);
        hr_t m = topic_parse_meta(meta, t);
        free(meta);
        if (m == HR_NOTFOUND) {
            emb_topic_free(t);
            continue;
        }
        if (m != HR_OK || atomic_load(&b->ntopics) >= MAX_TOPICS || emb_topic_open_parts(b, t) != HR_OK) {
            emb_topic_free(t);
            r = HR_ERR;
            break;
        }
        emb_topic_publish(b, t);
    }
    closedir(d);
out:
    free(tdir);
    return r;
}

/* ---- damage and health ---- */

void emb_note_damage(emb_bus_t *b, part_t *p, seg_t *s, const hole_t *h)
{
    hole_push(&s->holes, &s->nholes, &s->choles, h->pos, h->end, h->first, h->recs);
    if (h->first >= 0 && h->recs > 0)
        log_error(LOGC,
                  "%s/%d: damaged bytes %" PRId64 "..%" PRId64 " of %s: skipped %" PRId64
                  " record(s), offsets %" PRId64 "..%" PRId64,
                  p->t->name, (int)p->id, h->pos, h->end - 1, s->path, h->recs, h->first,
                  h->first + h->recs - 1);
    else
        log_error(LOGC, "%s/%d: damaged bytes %" PRId64 "..%" PRId64 " of %s: skipped %" PRId64
                        " record(s)",
                  p->t->name, (int)p->id, h->pos, h->end - 1, s->path, h->recs);
    METRIC_ADD(bus_records_skipped, (uint64_t)(h->recs > 0 ? h->recs : 0));
    METRIC_ADD(bus_corrupt_bytes, (uint64_t)(h->end - h->pos));
    if (b->accept_loss) return;
    pthread_mutex_lock(&b->health_mu);
    if (!b->loss_why[0])
        snprintf(b->loss_why, sizeof(b->loss_why),
                 "damaged records skipped in %s (see the log; bus.embedded.accept_loss=true accepts "
                 "the loss)",
                 s->path);
    pthread_mutex_unlock(&b->health_mu);
}

void emb_set_write_failed(emb_bus_t *b, const char *path, int err)
{
    pthread_mutex_lock(&b->health_mu);
    snprintf(b->write_why, sizeof(b->write_why), "writing %s failed: %s", path, strerror(err));
    pthread_mutex_unlock(&b->health_mu);
    atomic_store(&b->write_failing, true);
}

/* ---- consistency of metadata, files and offsets ---- */

hr_t emb_check_consistency(emb_bus_t *b)
{
    bool bad = false;
    size_t nt = atomic_load(&b->ntopics);
    /* partition directories the meta file does not know */
    for (size_t i = 0; i < nt; i++) {
        topic_t *t = b->tlist[i];
        DIR *d = opendir(t->dir);
        if (!d) continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char *end;
            long v = strtol(de->d_name, &end, 10);
            if (end == de->d_name || *end || v < t->nparts) continue;
            log_error(LOGC, "%s/meta says %d partitions but the partition directory %s/%s exists: "
                            "the metadata does not match the data",
                      t->dir, (int)t->nparts, t->dir, de->d_name);
            bad = true;
        }
        closedir(d);
    }
    /* committed offsets the log cannot hold */
    for (size_t gi = 0; gi < b->ngroups; gi++) {
        group_t *g = b->groups[gi];
        for (size_t k = 0; k < g->noffs; k++) {
            goff_t *o = &g->offs[k];
            topic_t *t = topic_find(b, o->topic);
            if (!t || o->off < 0) continue;
            if (o->part >= t->nparts) {
                log_error(LOGC, "%s has an offset for partition %d of %s, whose meta (%s/meta) says "
                                "%d partitions",
                          g->path, (int)o->part, t->name, t->dir, (int)t->nparts);
                bad = true;
                continue;
            }
            part_t *p = &t->parts[o->part];
            if (o->off > p->next_off) {
                log_error(LOGC, "%s committed offset %" PRId64 " of %s/%d but the log in %s ends at %" PRId64
                                ": acknowledged records are missing",
                          g->path, o->off, t->name, (int)o->part, p->dir, p->next_off);
                bad = true;
                if (b->accept_loss) {
                    /* new records must not reuse offsets the group believes it has read */
                    METRIC_ADD(bus_records_missing, (uint64_t)(o->off - p->next_off));
                    p->next_off = o->off;
                    atomic_store(&p->hw, p->next_off);
                    atomic_store(&p->acked, p->next_off);
                }
            }
        }
    }
    if (!bad) return HR_OK;
    if (!b->accept_loss) {
        log_error(LOGC, "refusing to open the bus at %s: its files are inconsistent (see above); "
                        "set bus.embedded.accept_loss=true to start anyway",
                  b->dir);
        return HR_ERR;
    }
    log_warn(LOGC, "bus.embedded.accept_loss is set: starting the bus at %s despite the above", b->dir);
    return HR_OK;
}

/* ---- retention ---- */

/* seg_mu held. */
void emb_seg_delete_first(part_t *p)
{
    seg_t *s = p->segs[0];
    memmove(p->segs, p->segs + 1, (p->nsegs - 1) * sizeof(*p->segs));
    p->nsegs--;
    p->total_bytes -= s->size;
    p->log_start = p->segs[0]->base;
    s->dead = true;
    if (unlink(s->path) != 0) log_warn(LOGC, "unlink %s: %s", s->path, strerror(errno));
    emb_seg_unref(s);
}

/* seg_mu held. Whether the first segment is past the topic's retention. */
static const char *retention_due(const part_t *p, int64_t now_ms)
{
    const topic_t *t = p->t;
    if (p->nsegs < 2 || !p->segs[0]->sealed) return NULL;
    const seg_t *s = p->segs[0];
    if (t->retention_bytes >= 0 && p->total_bytes - s->size >= t->retention_bytes) return "size";
    if (t->retention_ms >= 0 && now_ms - s->max_ts > t->retention_ms) return "age";
    return NULL;
}

void emb_retention(emb_bus_t *b, part_t *p, int64_t now_ms)
{
    const topic_t *t = p->t;
    if (t->retention_ms < 0 && t->retention_bytes < 0) return;
    pthread_mutex_lock(&p->seg_mu);
    bool due = retention_due(p, now_ms) != NULL;
    int64_t start = p->log_start;
    pthread_mutex_unlock(&p->seg_mu);
    if (!due) return;
    /* Only now (rarely) look at the groups: a segment goes only when every
     * registered group has committed past it. */
    char who[NAME_MAX_LEN + 1] = "";
    int64_t floor = emb_group_floor(b, t, p->id, start, who, sizeof(who));
    pthread_mutex_lock(&p->seg_mu);
    const char *why;
    while ((why = retention_due(p, now_ms)) != NULL) {
        seg_t *s = p->segs[0];
        int64_t next = p->segs[1]->base;
        if (next > floor) {
            log_debug(LOGC, "%s/%d: retention keeps segment %" PRId64 ": group %s has not read past %" PRId64,
                      t->name, (int)p->id, s->base, who, floor);
            break;
        }
        log_info(LOGC, "%s/%d: retention (%s) deleted segment %" PRId64 " (%" PRId64 " bytes)", t->name,
                 (int)p->id, why, s->base, s->size);
        emb_seg_delete_first(p);
    }
    pthread_mutex_unlock(&p->seg_mu);
}

void emb_disk_bound(emb_bus_t *b)
{
    if (b->max_disk_bytes <= 0) return;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    for (;;) {
        int64_t total = 0, oldest_ts = INT64_MAX;
        part_t *victim = NULL;
        for (size_t i = 0; i < nt; i++)
            for (int32_t j = 0; j < b->tlist[i]->nparts; j++) {
                part_t *p = &b->tlist[i]->parts[j];
                pthread_mutex_lock(&p->seg_mu);
                total += p->total_bytes;
                if (p->nsegs > 1 && p->segs[0]->sealed && p->segs[0]->max_ts < oldest_ts) {
                    oldest_ts = p->segs[0]->max_ts;
                    victim = p;
                }
                pthread_mutex_unlock(&p->seg_mu);
            }
        if (total <= b->max_disk_bytes || !victim) return;
        part_t *p = victim;
        pthread_mutex_lock(&p->seg_mu);
        int64_t start = p->log_start;
        pthread_mutex_unlock(&p->seg_mu);
        char who[NAME_MAX_LEN + 1] = "";
        int64_t floor = emb_group_floor(b, p->t, p->id, start, who, sizeof(who));
        pthread_mutex_lock(&p->seg_mu);
        if (p->nsegs > 1 && p->segs[0]->sealed) {
            seg_t *s = p->segs[0];
            int64_t base = s->base, next = p->segs[1]->base, size = s->size;
            emb_seg_delete_first(p);
            pthread_mutex_unlock(&p->seg_mu);
            if (floor < next) {
                int64_t from = floor > base ? floor : base;
                log_error(LOGC, "%s/%d: the bus is over bus.embedded.max_disk_bytes (%" PRId64
                                " > %" PRId64 "): deleted segment %" PRId64 " (%" PRId64
                                " bytes) with %" PRId64 " record(s) group %s had not read, offsets %" PRId64
                                "..%" PRId64,
                          p->t->name, (int)p->id, total, b->max_disk_bytes, base, size, next - from, who,
                          from, next - 1);
                METRIC_ADD(bus_records_dropped, (uint64_t)(next - from));
            } else {
                log_warn(LOGC, "%s/%d: the bus is over bus.embedded.max_disk_bytes: deleted segment %" PRId64
                               " (%" PRId64 " bytes, read by every group)",
                         p->t->name, (int)p->id, base, size);
            }
        } else {
            pthread_mutex_unlock(&p->seg_mu);
        }
    }
}
