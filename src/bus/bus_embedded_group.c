/*
 * bus_embedded_group.c - consumer groups of the embedded bus: committed
 * offsets files, range assignment over members, handing partitions over
 * (revoke, commit, release, take), offline reset and lag.
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
#include <unistd.h>

#define LOGC "bus"

/* ---- offsets and membership ---- */

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
    o->off = o->saved = -1;
    return o;
}

static int64_t group_committed(group_t *g, const char *topic, int32_t part)
{
    goff_t *o = goff_find(g, topic, part);
    return o ? o->off : -1;
}

/* What a restart would start from: retention keeps what this needs. */
static int64_t group_saved(group_t *g, const char *topic, int32_t part)
{
    goff_t *o = goff_find(g, topic, part);
    return o ? o->saved : -1;
}

/* ---- the offsets file: a journal ----
 *
 * groups/<group>.offsets comes in two formats, told apart by its first line:
 *
 *   v1 (and a file without that header): "<topic> <partition> <next-offset>"
 *      a line, always written whole (temporary file, fsync, rename, fsync of
 *      the directory). Written by older versions; still read.
 *   v2, a journal: the header OFFSETS_V2, then lines
 *      "<topic> <partition> <next-offset> <crc>", crc being the CRC-32C of
 *      the text before its space, 8 hex digits. A save appends one line per
 *      partition whose offset changed, with one write() and one fdatasync;
 *      the last valid line of a partition wins.
 *
 * Why a journal: rewriting the file took a new inode, two fsyncs and a
 * rename per group per round, and with a dozen stage workers committing
 * every 100 ms that was the largest share of the bus's own CPU (29 % at 30k
 * notifications/s); an append takes one write and one fdatasync, and the
 * committer runs at most one round per COMMIT_ROUND_MS.
 *
 * A line that fails its CRC, or the last one without its newline (an append
 * torn by a crash, a power loss or a failed write), is ignored: its
 * partition keeps the offset of its previous line, so a crash only ever
 * replays, never skips. The next save after loading a v1 file or one with
 * a bad line, after a failed append, or once the journal passed
 * OFFSETS_COMPACT_BYTES, writes the file whole again (v2, one line per
 * partition, the old atomic way): that upgrades old files in place and
 * compacts the journal. An older herald reading a v2 file takes the first
 * three fields of each line, the last line of a partition winning. */
#define OFFSETS_V2 "# herald group offsets v2: topic partition next-offset crc32c; the last line of a partition wins\n"
#define OFFSETS_V2_TAG "# herald group offsets v2"

static size_t offsets_line(char *out, size_t cap, const char *topic, int32_t part, int64_t off)
{
    int n = snprintf(out, cap, "%s %d %" PRId64, topic, (int)part, off);
    if (n < 0 || (size_t)n + 10 >= cap) return 0;
    uint32_t crc = crc32c(0, out, (size_t)n);
    n += snprintf(out + n, cap - (size_t)n, " %08x\n", crc);
    return (size_t)n;
}

/* One line of the file (without its newline); false when it is not a valid
 * entry of the format. */
static bool offsets_parse(const char *line, size_t len, bool v2, char *topic, int *part, long long *off)
{
    char buf[512];
    if (len == 0 || len >= sizeof(buf) || line[0] == '#') return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (!v2) return sscanf(buf, "%127s %d %lld", topic, part, off) == 3;
    const char *sp = memrchr(buf, ' ', len);
    if (!sp || buf + len - (sp + 1) != 8) return false;
    uint32_t crc = 0;
    for (const char *q = sp + 1; q < buf + len; q++) {
        int d = *q >= '0' && *q <= '9' ? *q - '0' : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
        if (d < 0) return false;
        crc = crc << 4 | (uint32_t)d;
    }
    size_t body = (size_t)(sp - buf);
    if (crc32c(0, buf, body) != crc) return false;
    int used = -1;
    buf[body] = '\0';
    return sscanf(buf, "%127s %d %lld%n", topic, part, off, &used) == 3 && (size_t)used == body;
}

/* Reads the group's offsets file (either format); notes whether the next
 * save must write it whole. */
static void group_load(group_t *g)
{
    g->fd = -1;
    g->flen = 0;
    g->rewrite = true;
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    size_t cap = 64 << 10, len = 0;
    char *text = xmalloc(cap);
    for (;;) {
        if (len == cap) text = xrealloc(text, cap *= 2);
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    size_t tag = strlen(OFFSETS_V2_TAG);
    bool v2 = len >= tag && memcmp(text, OFFSETS_V2_TAG, tag) == 0, bad = false;
    char topic[NAME_MAX_LEN + 1];
    int part;
    long long off;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        bool ok = (nl || !v2) && offsets_parse(text + pos, end - pos, v2, topic, &part, &off) &&
                  emb_name_ok(topic) && part >= 0 && off >= 0;
        if (ok) {
            goff_t *o = goff_get(g, topic, part);
            o->off = o->saved = off;
        } else if (v2 && text[pos] != '#') {
            bad = true;
        }
        pos = end + 1;
    }
    free(text);
    if (bad) log_warn(LOGC, "%s: ignored damaged or torn lines (the file is rewritten at the next commit)", g->path);
    g->flen = (int64_t)len;
    g->rewrite = !v2 || bad;
}

/* Writes the group's committed offsets to its file unless it holds them
 * already: appends the changed ones to the journal, or writes the file whole
 * (g->rewrite, or compaction). Neither g->mu nor save_mu held: the offsets
 * are copied under mu, and the file (with its fsyncs) is written outside it,
 * so that members committing meanwhile do not wait for the disk. */
static hr_t group_save(emb_bus_t *b, group_t *g)
{
    pthread_mutex_lock(&g->save_mu);
    pthread_mutex_lock(&g->mu);
    if (g->ver == g->saved_ver) {
        pthread_mutex_unlock(&g->mu);
        pthread_mutex_unlock(&g->save_mu);
        return HR_OK;
    }
    bool whole = g->rewrite || g->flen > OFFSETS_COMPACT_BYTES;
    uint64_t ver = g->ver;
    size_t n = g->noffs;
    int64_t *snap = xmalloc((n ? n : 1) * sizeof(*snap));
    size_t cap = sizeof(OFFSETS_V2) + n * (NAME_MAX_LEN + 48), len = 0;
    char *text = xmalloc(cap);
    if (whole) {
        memcpy(text, OFFSETS_V2, sizeof(OFFSETS_V2) - 1);
        len = sizeof(OFFSETS_V2) - 1;
    }
    for (size_t i = 0; i < n; i++) {
        snap[i] = g->offs[i].off;
        if (g->offs[i].off < 0 || (!whole && g->offs[i].off == g->offs[i].saved)) continue;
        len += offsets_line(text + len, cap - len, g->offs[i].topic, g->offs[i].part, g->offs[i].off);
    }
    pthread_mutex_unlock(&g->mu);

    hr_t r = HR_OK;
    if (whole) {
        char *gdir = xasprintf("%s/groups", b->dir);
        r = emb_write_file_atomic(gdir, g->path, text, len);
        free(gdir);
        if (r == HR_OK) {
            if (g->fd >= 0) close(g->fd);
            g->fd = open(g->path, O_WRONLY | O_APPEND | O_CLOEXEC);
            g->flen = (int64_t)len;
            g->rewrite = g->fd < 0;
        }
    } else if (len > 0) {
        if (g->fd < 0) g->fd = open(g->path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (g->fd < 0 || emb_write_all(g->fd, text, len) != HR_OK || fdatasync(g->fd) != 0) {
            log_error(LOGC, "append to %s: %s", g->path, strerror(errno));
            /* a partial line may be left: cut it off, and write the file whole next time */
            if (g->fd >= 0 && ftruncate(g->fd, g->flen) != 0)
                log_warn(LOGC, "truncate %s: %s", g->path, strerror(errno));
            g->rewrite = true;
            r = HR_ERR;
        } else {
            g->flen += (int64_t)len;
        }
    }
    free(text);
    if (r == HR_OK) {
        /* entries are only ever appended: the first n are the ones copied */
        pthread_mutex_lock(&g->mu);
        for (size_t i = 0; i < n; i++) g->offs[i].saved = snap[i];
        g->saved_ver = ver;
        pthread_mutex_unlock(&g->mu);
    }
    free(snap);
    pthread_mutex_unlock(&g->save_mu);
    return r;
}

/* b->mu held. */
group_t *emb_group_get(emb_bus_t *b, const char *name)
{
    for (size_t i = 0; i < b->ngroups; i++)
        if (strcmp(b->groups[i]->name, name) == 0) return b->groups[i];
    group_t *g = xcalloc(1, sizeof(*g));
    g->name = xstrdup(name);
    g->path = xasprintf("%s/groups/%s.offsets", b->dir, name);
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->save_mu, NULL);
    group_load(g);
    if (b->ngroups == b->cgroups) {
        b->cgroups = b->cgroups ? b->cgroups * 2 : 8;
        b->groups = xrealloc(b->groups, b->cgroups * sizeof(*b->groups));
    }
    b->groups[b->ngroups++] = g;
    return g;
}

void emb_group_free(group_t *g)
{
    for (size_t i = 0; i < g->noffs; i++) free(g->offs[i].topic);
    free(g->offs);
    free(g->own);
    free(g->members);
    free(g->name);
    free(g->path);
    if (g->fd >= 0) close(g->fd);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->save_mu);
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

bool emb_member_subscribes(const emb_consumer_t *c, const char *topic)
{
    for (int i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i], topic) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- assignment ---- */

/* g->mu held. Recomputes target owners: for each subscribed topic (by name),
 * range assignment over its subscribers in join order. */
void emb_group_assign(emb_bus_t *b, group_t *g)
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
            if (emb_member_subscribes(g->members[m], names[i])) subs[ns++] = g->members[m];
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

/* ---- commit and rebalance (on the polling thread) ---- */

/* Moves the consumer's stored offsets into the group's committed ones. */
static void commit_stored(emb_consumer_t *c)
{
    group_t *g = c->g;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < c->nparts; i++) {
        cpart_t *cp = c->parts[i];
        if (cp->stored < 0) continue;
        goff_t *o = goff_get(g, cp->t->name, cp->part);
        if (o->off != cp->stored) {
            o->off = cp->stored;
            g->ver++;
        }
    }
    pthread_mutex_unlock(&g->mu);
    c->last_commit_ns = hclock_mono_ns();
}

hr_t emb_commit(bus_consumer_t *bc)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    commit_stored(c);
    return group_save(c->eb, c->g);
}

/* Why asynchronous: writing the offsets file takes two fsyncs, and while
 * the status store writes heavily on the same disk one of them can take
 * hundreds of milliseconds (ext4 commits its journal for it); a stage
 * that waited for them stopped delivering for that long every
 * commit interval. A crash loses at most the commits not yet written:
 * that work is processed again, as with any uncommitted offset. */
hr_t emb_commit_async(bus_consumer_t *bc)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    emb_bus_t *b = c->eb;
    commit_stored(c);
    if (!b->committer_started) return group_save(b, c->g);
    pthread_mutex_lock(&b->cm_mu);
    if (!b->cm_due) { /* already due: the committer knows */
        b->cm_due = true;
        pthread_cond_signal(&b->cm_cv);
    }
    pthread_mutex_unlock(&b->cm_mu);
    return HR_OK;
}

/* Writes the file of every group whose offsets changed since. */
static void save_all(emb_bus_t *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->ngroups;
    if (n == 0) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    group_t **gs = xmalloc(n * sizeof(*gs));
    memcpy(gs, b->groups, n * sizeof(*gs));
    pthread_mutex_unlock(&b->mu);
    for (size_t i = 0; i < n; i++)
        if (group_save(b, gs[i]) != HR_OK) log_error(LOGC, "group %s: cannot write its offsets", gs[i]->name);
    free(gs);
}

/* At most one round of saves per COMMIT_ROUND_MS: the stages' workers
 * commit every pipeline.commit_interval_ms each, and a round per commit ran
 * the committer back to back; the commits of one round's wait are folded
 * into the next (a crash loses at most those: their work is replayed). */
static void *committer_main(void *arg)
{
    emb_bus_t *b = arg;
    int64_t next_round = 0;
    pthread_mutex_lock(&b->cm_mu);
    for (;;) {
        while (!b->cm_due && !b->cm_stop) pthread_cond_wait(&b->cm_cv, &b->cm_mu);
        if (!b->cm_due) break;
        while (!b->cm_stop && hclock_mono_ns() < next_round)
            if (cond_wait_until(&b->cm_cv, &b->cm_mu, next_round) == ETIMEDOUT) break;
        next_round = hclock_mono_ns() + (int64_t)COMMIT_ROUND_MS * 1000000;
        b->cm_due = false;
        pthread_mutex_unlock(&b->cm_mu);
        save_all(b);
        pthread_mutex_lock(&b->cm_mu);
    }
    pthread_mutex_unlock(&b->cm_mu);
    return NULL;
}

hr_t emb_committer_start(emb_bus_t *b)
{
    pthread_mutex_init(&b->cm_mu, NULL);
    cond_init_mono(&b->cm_cv);
    if (pthread_create(&b->committer, NULL, committer_main, b) != 0) return HR_ERR;
    b->committer_started = true;
    return HR_OK;
}

void emb_committer_stop(emb_bus_t *b)
{
    if (!b->committer_started) return;
    pthread_mutex_lock(&b->cm_mu);
    b->cm_stop = true;
    pthread_cond_signal(&b->cm_cv);
    pthread_mutex_unlock(&b->cm_mu);
    pthread_join(b->committer, NULL);
    b->committer_started = false;
    save_all(b);
    pthread_mutex_destroy(&b->cm_mu);
    pthread_cond_destroy(&b->cm_cv);
}

/* Gives up every owned partition the group wants elsewhere (all of them when
 * `all`): revoked callbacks, one synchronous commit, then release. */
void emb_revoke_parts(emb_consumer_t *c, bool all)
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
        emb_cpart_drop_seg(c->parts[i]);
        free(c->parts[i]);
    }
    c->nparts = w;
    c->rr = 0;
    free(gone);
    emb_cons_set_parts(c);
    emb_wake_consumers(c->eb);
}

/* Applies ownership changes of the group; runs on the polling thread. */
void emb_rebalance(emb_consumer_t *c)
{
    group_t *g = c->g;
    uint64_t gen = atomic_load(&g->gen);
    if (gen == c->seen_gen) return;
    c->seen_gen = gen;
    emb_revoke_parts(c, false);

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
        cp->pos = emb_clamp_offset(cp->p, cp->pos < 0 ? 0 : cp->pos);
        log_debug(LOGC, "group %s: member %" PRIu64 " takes %s/%d at %" PRId64, g->name, c->id, cp->t->name,
                  (int)cp->part, cp->pos);
    }
    if (c->nparts > first) emb_cons_set_parts(c);
    for (size_t i = first; i < c->nparts; i++)
        if (c->has_rb && c->rb.assigned) c->rb.assigned(c->rb.opaque, c->parts[i]->t->name, c->parts[i]->part);
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
        if (s->size == 0 || s->max_ts < ts || emb_seg_open_fd(s) != HR_OK) continue;
        s->refs++;
        int fd = s->fd;
        int64_t size = s->size;
        pthread_mutex_unlock(&p->seg_mu);
        scan_t sc;
        const char *rec;
        uint32_t len;
        emb_scan_init(&sc, fd, size, s->base);
        while (emb_scan_next(&sc, &rec, &len) == 1) {
            if (le_get64(rec + 16) >= ts) {
                found = le_get64(rec + 8);
                break;
            }
            sc.pos += len;
        }
        emb_scan_release(&sc);
        pthread_mutex_lock(&p->seg_mu);
        emb_seg_unref(s);
    }
    pthread_mutex_unlock(&p->seg_mu);
    return found >= 0 ? found : atomic_load(&p->hw);
}

hr_t emb_group_reset(bus_t *bb, const char *group, const char *topic, int64_t to_time_ms)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    if (!emb_name_ok(group)) return HR_INVALID;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    hr_t r;
    pthread_mutex_lock(&b->mu);
    group_t *g = emb_group_get(b, group);
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
    g->ver++;
    pthread_mutex_unlock(&g->mu);
    r = group_save(b, g);
    log_info(LOGC, "group %s: offsets of %s reset to time %" PRId64, group, topic, to_time_ms);
    pthread_mutex_unlock(&b->mu);
    return r;
out:
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    return r;
}

hr_t emb_lag(bus_t *bb, const char *group, const char *topic, bus_lag_t **out, int *n)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    *out = NULL;
    *n = 0;
    if (!emb_name_ok(group)) return HR_INVALID;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    bus_lag_t *v = xcalloc((size_t)t->nparts, sizeof(*v));
    pthread_mutex_lock(&b->mu);
    group_t *g = emb_group_get(b, group);
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

/* ---- registered groups (retention) ---- */

void emb_groups_load(emb_bus_t *b)
{
    char *gdir = xasprintf("%s/groups", b->dir);
    DIR *d = opendir(gdir);
    free(gdir);
    if (!d) return;
    struct dirent *de;
    pthread_mutex_lock(&b->mu);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 8 || strcmp(de->d_name + n - 8, ".offsets") != 0 || n - 8 > NAME_MAX_LEN) continue;
        char name[NAME_MAX_LEN + 1];
        memcpy(name, de->d_name, n - 8);
        name[n - 8] = '\0';
        if (emb_name_ok(name)) (void)emb_group_get(b, name);
    }
    pthread_mutex_unlock(&b->mu);
    closedir(d);
}

int64_t emb_group_floor(emb_bus_t *b, const topic_t *t, int32_t part, int64_t start, char *who,
                        size_t who_len)
{
    int64_t floor = INT64_MAX;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->ngroups; i++) {
        group_t *g = b->groups[i];
        pthread_mutex_lock(&g->mu);
        int64_t need = group_saved(g, t->name, part);
        if (need < 0)
            for (size_t m = 0; m < g->nmembers && need < 0; m++)
                if (emb_member_subscribes(g->members[m], t->name)) need = start;
        if (need >= 0 && need < floor) {
            floor = need;
            snprintf(who, who_len, "%s", g->name);
        }
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return floor;
}
