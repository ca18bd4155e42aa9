/*
 * bus_embedded.c - the embedded bus backend: a partitioned commit log kept in
 * the data directory, with in-process consumer groups.
 *
 * DESIGN
 *  Layout (see docs/internals/bus.md):
 *    <dir>/LOCK                                   flock: one process per dir
 *    <dir>/topics/<topic>/meta                    partitions, retention
 *    <dir>/topics/<topic>/<p>/<20-digit base>.log segment files
 *    <dir>/groups/<group>.offsets                 committed offsets (a journal)
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
 *
 *  Files: this one (open/close, topics, produce, consumers and poll),
 *  bus_embedded_log.c (segments, scanner, recovery, retention),
 *  bus_embedded_group.c (groups, offsets), bus_embedded_flush.c (flusher,
 *  fsync policy); the shared types are in bus_embedded_int.h.
 */
#include "bus/bus_embedded_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOGC "bus"

/* ---- bus open/close ---- */

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
        if (strcmp(opts->kv[i], "max_pending_bytes") != 0 && strcmp(opts->kv[i], "accept_loss") != 0 &&
            strcmp(opts->kv[i], "max_disk_bytes") != 0)
            log_warn(LOGC, "ignoring unknown embedded bus setting %s", opts->kv[i]);
    int64_t mp = kv_int(opts->kv, "max_pending_bytes", DEF_MAX_PENDING);
    b->max_pending = (size_t)(mp >= 4096 ? mp : 4096);
    b->accept_loss = kv_int(opts->kv, "accept_loss", 0) != 0;
    b->max_disk_bytes = kv_int(opts->kv, "max_disk_bytes", 0);
    pthread_mutex_init(&b->health_mu, NULL);
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->fl_mu, NULL);
    cond_init_mono(&b->fl_cv);
    cond_init_mono(&b->sy_cv);
    pthread_mutex_init(&b->data_mu, NULL);
    cond_init_mono(&b->data_cv);
    pthread_mutex_init(&b->cons_mu, NULL);

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
    if (emb_load_topics(b) != HR_OK) goto out;
    emb_groups_load(b);
    if (emb_check_consistency(b) != HR_OK) goto out;

    if (emb_committer_start(b) != HR_OK) goto out;
    if (pthread_create(&b->flusher, NULL, emb_flusher_main, b) != 0) goto out;
    b->flusher_started = true;
    if (b->fsync_mode == FSYNC_INTERVAL) {
        if (pthread_create(&b->syncer, NULL, emb_syncer_main, b) != 0) goto out;
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
    if (b->fsync_mode != FSYNC_NEVER) emb_sync_all(b);
    emb_committer_stop(b);
    for (size_t i = 0; i < b->ngroups; i++) {
        if (b->groups[i]->nmembers)
            log_error(LOGC, "closing the bus with %zu live members in group %s", b->groups[i]->nmembers,
                      b->groups[i]->name);
        emb_group_free(b->groups[i]);
    }
    free(b->groups);
    size_t nt = atomic_load(&b->ntopics);
    for (size_t i = 0; i < nt; i++) emb_topic_free(b->tlist[i]);
    if (b->lock_fd >= 0) close(b->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->fl_mu);
    pthread_cond_destroy(&b->fl_cv);
    pthread_cond_destroy(&b->sy_cv);
    pthread_mutex_destroy(&b->data_mu);
    pthread_cond_destroy(&b->data_cv);
    pthread_mutex_destroy(&b->cons_mu);
    free(b->cons);
    free(b->fl_out);
    free(b->fl_parts);
    pthread_mutex_destroy(&b->health_mu);
    free(b->dir);
    free(b);
}

/* Degraded while segment writes fail (until one succeeds) and after damage
 * that accept_loss did not accept. */
static bus_health_t emb_health(bus_t *bb, char *why, size_t why_len)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    bus_health_t h = BUS_HEALTH_OK;
    pthread_mutex_lock(&b->health_mu);
    if (atomic_load(&b->write_failing)) {
        snprintf(why, why_len, "%s", b->write_why);
        h = BUS_HEALTH_DEGRADED;
    } else if (b->loss_why[0]) {
        snprintf(why, why_len, "%s", b->loss_why);
        h = BUS_HEALTH_DEGRADED;
    }
    pthread_mutex_unlock(&b->health_mu);
    return h;
}

/* ---- topics ---- */

static hr_t emb_topic_ensure(bus_t *bb, const char *name, const bus_topic_opts_t *o)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    hr_t r = HR_OK;
    topic_t *t = NULL;
    if (!emb_name_ok(name) || !o || o->partitions < 1 || o->partitions > MAX_PARTITIONS) return HR_INVALID;

    pthread_mutex_lock(&b->mu);
    if (topic_find(b, name)) goto out;
    if (atomic_load(&b->ntopics) >= MAX_TOPICS) {
        log_error(LOGC, "too many topics (%d)", MAX_TOPICS);
        r = HR_ERR;
        goto out;
    }
    t = emb_topic_alloc(b, name);
    t->nparts = o->partitions;
    t->retention_ms = o->retention_ms >= 0 ? o->retention_ms : -1;
    t->retention_bytes = o->retention_bytes >= 0 ? o->retention_bytes : -1;
    r = HR_ERR;
    if (mkdir_p(t->dir, 0755) != HR_OK) {
        log_error(LOGC, "mkdir %s: %s", t->dir, strerror(errno));
        goto out;
    }
    char *meta = xasprintf("%s/meta", t->dir);
    char *text = emb_topic_meta_text(t);
    r = emb_write_file_atomic(t->dir, meta, text, strlen(text));
    free(meta);
    free(text);
    if (r != HR_OK) goto out;
    char *tdir = xasprintf("%s/topics", b->dir);
    emb_fsync_dir(tdir);
    free(tdir);
    if ((r = emb_topic_open_parts(b, t)) != HR_OK) goto out;
    emb_topic_publish(b, t);
    log_info(LOGC, "created topic %s with %d partitions", name, (int)t->nparts);
    t = NULL;

    /* Members may already be waiting for this topic. */
    for (size_t i = 0; i < b->ngroups; i++) {
        group_t *g = b->groups[i];
        pthread_mutex_lock(&g->mu);
        bool wanted = false;
        for (size_t m = 0; m < g->nmembers && !wanted; m++) wanted = emb_member_subscribes(g->members[m], name);
        if (wanted) emb_group_assign(b, g);
        pthread_mutex_unlock(&g->mu);
    }
    emb_wake_consumers(b);
out:
    pthread_mutex_unlock(&b->mu);
    emb_topic_free(t);
    return r;
}

static int32_t emb_partitions(bus_t *bb, const char *name)
{
    topic_t *t = topic_find((emb_bus_t *)bb, name);
    return t ? t->nparts : -1;
}

/* ---- produce ---- */

/* p->mu held, room checked. Encodes one record into the partition's
 * pending buffer and counts it for the batch's ack. Returns true when the
 * buffer just passed URGENT_BYTES. */
static bool part_append(part_t *p, const void *key, size_t key_len, const void *value, size_t value_len,
                        int64_t now, bus_batch_t *batch)
{
    size_t len = REC_HDR + key_len + value_len;
    if (p->plen + len > p->pcap) {
        size_t cap = p->pcap ? p->pcap : (size_t)64 << 10;
        while (cap < p->plen + len) cap *= 2;
        p->pend = xrealloc(p->pend, cap);
        p->pcap = cap;
    }
    if (now < p->last_ts) now = p->last_ts; /* append times never go back within a partition */
    p->last_ts = now;
    char *rec = p->pend + p->plen;
    le_put32(rec, (uint32_t)len);
    le_put32(rec + 4, 0); /* the flusher fills in the CRC */
    le_put64(rec + 8, p->next_off++);
    le_put64(rec + 16, now);
    le_put32(rec + 24, (uint32_t)key_len | REC_ATTR_CRC32C);
    if (key_len) memcpy(rec + REC_HDR, key, key_len);
    if (value_len) memcpy(rec + REC_HDR + key_len, value, value_len);
    bool urgent = p->plen < URGENT_BYTES && p->plen + len >= URGENT_BYTES;
    if (p->plen == 0) atomic_store(&p->has_data, true);
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
    return urgent;
}

/* After records were appended: wakes the flusher (at once when a buffer
 * passed URGENT_BYTES, else only if it does not know yet). The load of
 * dirty is sequentially consistent, like the store of part_t.has_data
 * before it and the flusher's clearing of dirty before it reads has_data:
 * a producer that saw dirty still set finds its records taken by that
 * flush (a plain load on x86). */
static void produced(emb_bus_t *b, bool urgent)
{
    if (urgent) {
        atomic_store(&b->dirty, 1);
        emb_kick_flusher(b);
    } else if (!atomic_load(&b->dirty) && !atomic_exchange(&b->dirty, 1)) {
        pthread_mutex_lock(&b->fl_mu);
        pthread_cond_signal(&b->fl_cv);
        pthread_mutex_unlock(&b->fl_mu);
    }
}

/* Whether a record of len bytes may join a partition's pending buffer that
 * holds plen: within max_pending, or alone (a record bigger than the bound,
 * up to REC_MAX, goes into an empty buffer). */
static inline bool pending_fits(const emb_bus_t *b, size_t plen, size_t len)
{
    return plen == 0 || plen + len <= b->max_pending;
}

/* The partition of a record, or -1 when invalid (no key and no partition,
 * partition out of range, too big). */
static int32_t rec_partition(const topic_t *t, int32_t partition, const void *key,
                             size_t key_len, size_t value_len)
{
    if (partition < 0) {
        if (!key) return -1;
        partition = murmur2_partition(key, key_len, t->nparts);
    } else if (partition >= t->nparts) {
        return -1;
    }
    if (key_len > REC_MAX || value_len > REC_MAX) return -1;
    size_t len = REC_HDR + key_len + value_len;
    if (len > REC_MAX) return -1;
    return partition;
}

static hr_t emb_produce(bus_t *bb, const char *topic, int32_t partition, const void *key,
                        size_t key_len, const void *value, size_t value_len, bus_batch_t *batch)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    partition = rec_partition(t, partition, key, key_len, value_len);
    if (partition < 0) return HR_INVALID;
    size_t len = REC_HDR + key_len + value_len;
    part_t *p = &t->parts[partition];
    int64_t now = hclock_now_ms();

    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&b->closing, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->mu);
        return HR_CLOSED;
    }
    if (!pending_fits(b, p->plen, len)) {
        pthread_mutex_unlock(&p->mu);
        emb_kick_flusher(b);
        return HR_AGAIN;
    }
    bool urgent = part_append(p, key, key_len, value, value_len, now, batch);
    pthread_mutex_unlock(&p->mu);
    produced(b, urgent);
    return HR_OK;
}

#define CHUNK_RECS 256

/* Up to CHUNK_RECS records: locks each partition they go to once (in
 * partition order, so two batch producers cannot deadlock), finds the
 * longest prefix that fits, appends it, unlocks. */
static hr_t produce_chunk(emb_bus_t *b, topic_t *t, const bus_rec_t *recs, int n, bus_batch_t *batch,
                          int64_t now, int *done, bool *urgent)
{
    int32_t pid[CHUNK_RECS], uniq[CHUNK_RECS];
    size_t need[CHUNK_RECS];
    int nu = 0, k = 0;
    hr_t r = HR_OK;
    *done = 0;
    for (; k < n; k++) {
        const bus_rec_t *x = &recs[k];
        pid[k] = rec_partition(t, x->partition, x->key, x->key_len, x->value_len);
        if (pid[k] < 0) {
            r = HR_INVALID;
            break;
        }
        /* the distinct partitions in order, by insertion: few (at most
         * the topic's partitions), where a qsort of every record's was
         * 3 % of fan-out's CPU */
        int lo = 0, hi = nu;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (uniq[mid] < pid[k]) lo = mid + 1;
            else hi = mid;
        }
        if (lo < nu && uniq[lo] == pid[k]) continue;
        memmove(&uniq[lo + 1], &uniq[lo], (size_t)(nu - lo) * sizeof(*uniq));
        uniq[lo] = pid[k];
        nu++;
    }
    n = k; /* the valid prefix */
    if (n == 0) return r;
    for (int i = 0; i < nu; i++) pthread_mutex_lock(&t->parts[uniq[i]].mu);
    if (atomic_load_explicit(&b->closing, memory_order_relaxed)) {
        r = HR_CLOSED;
        n = 0;
    }
    /* the longest prefix that fits every partition's pending buffer */
    for (int i = 0; i < nu; i++) need[i] = t->parts[uniq[i]].plen;
    for (k = 0; k < n; k++) {
        const bus_rec_t *x = &recs[k];
        size_t len = REC_HDR + x->key_len + x->value_len;
        int lo = 0, hi = nu - 1;
        while (uniq[(lo + hi) / 2] != pid[k]) {
            if (uniq[(lo + hi) / 2] < pid[k])
                lo = (lo + hi) / 2 + 1;
            else
                hi = (lo + hi) / 2 - 1;
        }
        size_t *q = &need[(lo + hi) / 2];
        if (!pending_fits(b, *q, len)) {
            r = HR_AGAIN;
            break;
        }
        *q += len;
    }
    n = k;
    for (k = 0; k < n; k++) {
        const bus_rec_t *x = &recs[k];
        *urgent |= part_append(&t->parts[pid[k]], x->key, x->key_len, x->value, x->value_len, now, batch);
    }
    for (int i = nu - 1; i >= 0; i--) pthread_mutex_unlock(&t->parts[uniq[i]].mu);
    *done = n;
    return r;
}

static hr_t emb_produce_batch(bus_t *bb, const char *topic, const bus_rec_t *recs, int n, bus_batch_t *batch,
                              int *done)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    *done = 0;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    int64_t now = hclock_now_ms();
    bool urgent = false;
    hr_t r = HR_OK;
    while (*done < n && r == HR_OK) {
        int m = n - *done < CHUNK_RECS ? n - *done : CHUNK_RECS, got;
        r = produce_chunk(b, t, recs + *done, m, batch, now, &got, &urgent);
        *done += got;
    }
    if (*done) produced(b, urgent);
    if (r == HR_AGAIN) emb_kick_flusher(b);
    return r;
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

/* ---- consumers ---- */

static cpart_t *cpart_find(emb_consumer_t *c, const char *topic, int32_t part)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->part == part && strcmp(c->parts[i]->t->name, topic) == 0) return c->parts[i];
    return NULL;
}

void emb_cpart_drop_seg(cpart_t *cp)
{
    if (!cp->seg) return;
    pthread_mutex_lock(&cp->p->seg_mu);
    emb_seg_unref(cp->seg);
    pthread_mutex_unlock(&cp->p->seg_mu);
    cp->seg = NULL;
}

/* Clamps an offset to [log start, end]. */
int64_t emb_clamp_offset(part_t *p, int64_t off)
{
    pthread_mutex_lock(&p->seg_mu);
    int64_t lo = p->log_start, hi = atomic_load(&p->hw);
    pthread_mutex_unlock(&p->seg_mu);
    if (off < lo) off = lo;
    if (off > hi) off = hi;
    return off;
}

static hr_t emb_consumer_new(bus_t *bb, const char *group, const char *const *topics, int ntopics,
                             const bus_rebalance_t *rb, bus_consumer_t **out)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    *out = NULL;
    if (!emb_name_ok(group) || ntopics < 1 || !topics) return HR_INVALID;
    for (int i = 0; i < ntopics; i++)
        if (!emb_name_ok(topics[i])) return HR_INVALID;

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
    emb_cons_add(b, c);

    pthread_mutex_lock(&b->mu);
    group_t *g = emb_group_get(b, group);
    c->g = g;
    pthread_mutex_lock(&g->mu);
    c->id = g->next_id++;
    if (g->nmembers == g->cmembers) {
        g->cmembers = g->cmembers ? g->cmembers * 2 : 4;
        g->members = xrealloc(g->members, g->cmembers * sizeof(*g->members));
    }
    g->members[g->nmembers++] = c;
    emb_group_assign(b, g);
    c->seen_gen = 0;
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    emb_wake_consumers(b);
    *out = &c->base;
    return HR_OK;
}

static void emb_consumer_close(bus_consumer_t *bc)
{
    emb_consumer_t *c = (emb_consumer_t *)bc;
    emb_bus_t *b = c->eb;
    group_t *g = c->g;
    emb_revoke_parts(c, true);
    if (emb_commit(bc) != HR_OK) log_error(LOGC, "group %s: commit on close failed", g->name);

    pthread_mutex_lock(&b->mu);
    pthread_mutex_lock(&g->mu);
    size_t w = 0;
    for (size_t i = 0; i < g->nmembers; i++)
        if (g->members[i] != c) g->members[w++] = g->members[i];
    g->nmembers = w;
    for (size_t i = 0; i < g->nown; i++)
        if (g->own[i].owner == c) g->own[i].owner = NULL;
    emb_group_assign(b, g);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_unlock(&b->mu);
    emb_cons_remove(b, c);
    emb_wake_consumers(b);

    for (int i = 0; i < c->ntopics; i++) free(c->topics[i]);
    free(c->topics);
    free(c->wparts);
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
        if (cp->seg) emb_seg_unref(cp->seg);
        cp->seg = NULL;
    }
    if (cp->seg && cp->seg->dead) {
        emb_seg_unref(cp->seg);
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
        emb_seg_unref(cp->seg);
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
            emb_seg_ensure_index(p, s);
            cp->fpos = emb_seg_lookup(s, cp->pos);
        }
    }
    if (cp->seg->dead || emb_seg_open_fd(cp->seg) != HR_OK) goto out;
    *fd = cp->seg->fd;
    *limit = cp->seg->size;
    ok = cp->fpos < *limit;
out:
    pthread_mutex_unlock(&p->seg_mu);
    return ok;
}

/* The bytes at cp->fpos of cp->seg are not a valid record (damage found
 * while running, or a hole found at load): returns the file position of
 * the next valid record, or `limit` when none follows. Counts new damage
 * once (it is remembered in the segment for every reader). */
static int64_t skip_damage(emb_bus_t *b, cpart_t *cp, int64_t limit)
{
    part_t *p = cp->p;
    seg_t *s = cp->seg;
    pthread_mutex_lock(&p->seg_mu);
    const hole_t *h = emb_seg_hole_at(s, cp->fpos);
    int64_t to = h ? h->end : -1, next_base = -1;
    int fd = s->fd;
    for (size_t k = 0; k + 1 < p->nsegs; k++)
        if (p->segs[k] == s) next_base = p->segs[k + 1]->base;
    pthread_mutex_unlock(&p->seg_mu);
    if (to >= 0) return to < limit ? to : limit;

    scan_t sc;
    emb_scan_init(&sc, fd, limit, s->base);
    sc.pos = cp->fpos;
    sc.prev = cp->pos - 1 > s->base - 1 ? cp->pos - 1 : s->base - 1;
    hole_t nh = {cp->fpos, limit, cp->pos, 0};
    if (emb_scan_resync(&sc)) {
        nh.end = sc.pos;
        int64_t next = le_get64(sc.buf + (sc.pos - sc.bpos) + 8);
        nh.recs = next > cp->pos ? next - cp->pos : 0;
    } else if (next_base > cp->pos) {
        nh.recs = next_base - cp->pos;
    }
    emb_scan_release(&sc);
    pthread_mutex_lock(&p->seg_mu);
    if (!emb_seg_hole_at(s, nh.pos)) emb_note_damage(b, p, s, &nh);
    pthread_mutex_unlock(&p->seg_mu);
    return nh.end;
}

/* Hands out parsed records of the read buffer (which holds rpart's data). */
static int take_records(emb_consumer_t *c, bus_msg_t *msgs, int max, int64_t limit)
{
    cpart_t *cp = c->rpart;
    int n = 0;
    while (n < max && c->rlen - c->rdone >= REC_HDR) {
        const char *r = c->rbuf + c->rdone;
        uint32_t len = le_get32(r);
        bool bad = len < REC_HDR || len > REC_MAX;
        if (!bad && len > c->rlen - c->rdone) break;
        if (!bad) bad = rec_klen(r, len) < 0 || rec_crc(r, len) != le_get32(r + 4);
        if (bad) {
            cp->fpos = skip_damage(c->eb, cp, limit);
            drop_buffer(c);
            break;
        }
        int64_t off = le_get64(r + 8);
        c->rdone += len;
        cp->fpos += len;
        if (off < cp->pos) continue;
        size_t klen = (size_t)rec_klen(r, len);
        bus_msg_t *m = &msgs[n++];
        m->topic = cp->t->name;
        m->partition = cp->part;
        m->offset = off;
        m->timestamp_ms = le_get64(r + 16);
        m->key = r + REC_HDR;
        m->key_len = klen;
        m->value = r + REC_HDR + klen;
        m->value_len = len - REC_HDR - klen;
        m->traceparent = NULL; /* no record headers in segment files (bus.h) */
        m->traceparent_len = 0;
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
            uint32_t len = c->rlen >= 4 ? le_get32(c->rbuf) : 0;
            if (len <= c->rcap || len > REC_MAX) {
                cp->fpos = skip_damage(c->eb, cp, limit);
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
    (void)b;
    for (;;) {
        uint32_t seq = atomic_load(&c->wseq);
        emb_rebalance(c);
        if (hclock_mono_ns() - c->last_commit_ns >= (int64_t)AUTOCOMMIT_MS * 1000000) emb_commit_async(bc);
        int n = fill(c, msgs, max);
        if (n != 0) return n;
        if (hclock_mono_ns() >= deadline) return 0;
        emb_cons_sleep(c, seq, deadline);
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
    emb_cpart_drop_seg(cp);
    cp->pos = emb_clamp_offset(cp->p, offset);
    return HR_OK;
}

/* bus_read_range: a private cursor over the partition, the same reader a
 * consumer uses, but in no group (nothing to commit or hand over). */
static hr_t emb_read_range(bus_t *bb, const char *topic, int32_t partition, int64_t from,
                           int64_t to, bus_read_fn fn, void *ud)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    topic_t *t = topic_find(b, topic);
    if (!t) return HR_NOTFOUND;
    if (partition >= t->nparts) return HR_INVALID;
    emb_consumer_t c;
    memset(&c, 0, sizeof(c));
    c.base.ops = &bus_embedded_ops;
    c.base.bus = bb;
    c.eb = b;
    c.rcap = READ_CHUNK;
    c.rbuf = xmalloc(c.rcap);
    cpart_t cp = {.t = t, .p = &t->parts[partition], .part = partition, .stored = -1};
    cp.pos = emb_clamp_offset(cp.p, from);
    bus_msg_t msgs[256];
    hr_t r = HR_OK;
    bool more = true;
    while (more && cp.pos < to) {
        int n = read_part(&c, &cp, msgs, (int)ARRAY_LEN(msgs));
        if (n < 0) r = (hr_t)n;
        if (n <= 0) break;
        for (int i = 0; i < n && more; i++) more = msgs[i].offset < to && fn(ud, &msgs[i]);
    }
    emb_cpart_drop_seg(&cp);
    free(c.rbuf);
    return r;
}

const bus_ops_t bus_embedded_ops = {
    .name = "embedded",
    .open = emb_open,
    .close = emb_close,
    .topic_ensure = emb_topic_ensure,
    .partitions = emb_partitions,
    .produce = emb_produce,
    .produce_batch = emb_produce_batch,
    .flush = emb_flush,
    .consumer_new = emb_consumer_new,
    .poll = emb_poll,
    .store_offset = emb_store_offset,
    .commit = emb_commit,
    .commit_async = emb_commit_async,
    .pause = emb_pause,
    .resume = emb_resume,
    .seek = emb_seek,
    .consumer_close = emb_consumer_close,
    .group_reset = emb_group_reset,
    .lag = emb_lag,
    .outstanding = emb_outstanding,
    .health = emb_health,
    .read_range = emb_read_range,
};
