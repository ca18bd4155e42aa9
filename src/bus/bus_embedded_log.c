/*
 * bus_embedded_log.c - the embedded bus's files: segment files and their
 * sparse index, the record scanner that verifies every record read from
 * disk, loading a partition (cutting off a torn or corrupt tail), topic
 * metadata and retention. See bus_embedded.c for the design.
 */
#include "bus/bus_embedded_int.h"

#include "core/log.h"

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
    if (le_get32(r + 24) > n - REC_HDR) return -1;
    if (rec_crc(r, n) != le_get32(r + 4)) return -1;
    int64_t off = le_get64(r + 8);
    if (off <= sc->prev) return -1;
    sc->prev = off;
    *rec = r;
    *len = n;
    return 1;
}

/* ---- segment scan and index ---- */

void emb_seg_scan(int fd, int64_t size, int64_t base, seg_info_t *si)
{
    scan_t sc;
    const char *rec;
    uint32_t len;
    memset(si, 0, sizeof(*si));
    si->end = base;
    emb_scan_init(&sc, fd, size, base);
    while (emb_scan_next(&sc, &rec, &len) == 1) {
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
        emb_segs_push(p, s);
        p->total_bytes += s->size;
    }

    if (p->nsegs == 0) {
        seg_t *s;
        if (emb_seg_create_active(b, p, 0, &s) != HR_OK) goto out;
        emb_segs_push(p, s);
    } else {
        seg_t *s = p->segs[p->nsegs - 1];
        s->sealed = false;
        s->fd = open(s->path, O_RDWR | O_APPEND | O_CLOEXEC);
        if (s->fd < 0) {
            log_error(LOGC, "open %s: %s", s->path, strerror(errno));
            goto out;
        }
        seg_info_t si;
        emb_seg_scan(s->fd, s->size, s->base, &si);
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

/* ---- retention ---- */

void emb_retention(part_t *p, int64_t now_ms)
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
        emb_seg_unref(s);
    }
    pthread_mutex_unlock(&p->seg_mu);
}
