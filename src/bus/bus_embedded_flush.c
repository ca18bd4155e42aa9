/*
 * bus_embedded_flush.c - the embedded bus's flusher thread (swaps each
 * partition's pending buffer, fills in CRCs, writes, publishes, acks the
 * batches, runs retention) and the fsync policy (never / interval: a syncer
 * thread / always: fdatasync before the ack).
 */
#include "bus/bus_embedded_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOGC "bus"

/* ---- wake-ups ----
 *
 * Each consumer sleeps on its own futex word (wseq), so that a flush wakes
 * only the consumers owning a partition that got data (a channel's
 * dispatcher whose partitions got nothing sleeps on, so do the other
 * members of a group), and a busy consumer (not asleep) costs the flusher
 * one atomic add, no syscall. The sleeper publishes `sleeping` and re-reads
 * wseq; the waker bumps wseq and then reads `sleeping` (both sequentially
 * consistent): one of the two sees the other, so no wake-up is lost.
 *
 * Ownership changes: a consumer publishes the partitions it owns (wparts,
 * under cons_mu) after taking or releasing some, before it reads them. A
 * flush whose wake-ups ran before that publication had published its
 * records' end (hw) before, so the consumer's read finds them; one after
 * it sees the new owner. Rebalances wake every consumer.
 * bus_flush waiters use data_cv, which is broadcast only when one waits. */

static void futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void cons_wake(emb_consumer_t *c)
{
    atomic_fetch_add(&c->wseq, 1);
    if (atomic_load(&c->sleeping)) futex_wake_all(&c->wseq);
}

void emb_cons_sleep(emb_consumer_t *c, uint32_t seq, int64_t deadline_ns)
{
    atomic_store(&c->sleeping, 1);
    if (atomic_load(&c->wseq) == seq) {
        struct timespec ts, *tp = NULL;
        if (deadline_ns != INT64_MAX) {
            int64_t left = deadline_ns - hclock_mono_ns();
            if (left < 0) left = 0;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tp = &ts;
        }
        syscall(SYS_futex, (uint32_t *)&c->wseq, FUTEX_WAIT_PRIVATE, seq, tp, NULL, 0);
    }
    atomic_store(&c->sleeping, 0);
}

void emb_cons_add(emb_bus_t *b, emb_consumer_t *c)
{
    pthread_mutex_lock(&b->cons_mu);
    if (b->ncons == b->ccons) {
        b->ccons = b->ccons ? b->ccons * 2 : 16;
        b->cons = xrealloc(b->cons, b->ccons * sizeof(*b->cons));
    }
    b->cons[b->ncons++] = c;
    pthread_mutex_unlock(&b->cons_mu);
}

/* cons_mu held. Drops c from the wake lists of the partitions it owned. */
static void wparts_unlink(emb_consumer_t *c)
{
    for (size_t k = 0; k < c->nwparts; k++) {
        part_t *p = c->wparts[k];
        for (size_t i = 0; i < p->nwcons; i++)
            if (p->wcons[i] == c) {
                p->wcons[i] = p->wcons[--p->nwcons];
                break;
            }
    }
    c->nwparts = 0;
}

void emb_cons_remove(emb_bus_t *b, emb_consumer_t *c)
{
    pthread_mutex_lock(&b->cons_mu);
    wparts_unlink(c);
    for (size_t i = 0; i < b->ncons; i++)
        if (b->cons[i] == c) {
            b->cons[i] = b->cons[--b->ncons];
            break;
        }
    pthread_mutex_unlock(&b->cons_mu);
}

static void wake_flush_waiters(emb_bus_t *b)
{
    atomic_fetch_add(&b->data_seq, 1);
    if (!atomic_load(&b->flush_waiters)) return;
    pthread_mutex_lock(&b->data_mu);
    pthread_cond_broadcast(&b->data_cv);
    pthread_mutex_unlock(&b->data_mu);
}

void emb_cons_set_parts(emb_consumer_t *c)
{
    emb_bus_t *b = c->eb;
    pthread_mutex_lock(&b->cons_mu);
    if (c->cwparts < c->nparts) {
        c->cwparts = c->nparts;
        c->wparts = xrealloc(c->wparts, c->cwparts * sizeof(*c->wparts));
    }
    wparts_unlink(c);
    for (size_t i = 0; i < c->nparts; i++) {
        part_t *p = c->parts[i]->p;
        c->wparts[i] = p;
        if (p->nwcons == p->cwcons) {
            p->cwcons = p->cwcons ? p->cwcons * 2 : 4;
            p->wcons = xrealloc(p->wcons, p->cwcons * sizeof(*p->wcons));
        }
        p->wcons[p->nwcons++] = c;
    }
    c->nwparts = c->nparts;
    pthread_mutex_unlock(&b->cons_mu);
}

void emb_wake_consumers(emb_bus_t *b)
{
    pthread_mutex_lock(&b->cons_mu);
    for (size_t i = 0; i < b->ncons; i++) cons_wake(b->cons[i]);
    pthread_mutex_unlock(&b->cons_mu);
    wake_flush_waiters(b);
}

/* After a flush: wakes the consumers owning a partition it wrote to, each
 * once. Walks the flushed partitions' owners (part_t.wcons) rather than
 * every consumer's partitions: that walk touched every owned partition of
 * the bus per flush and was a third of the flusher's own time. */
static void wake_readers(emb_bus_t *b)
{
    pthread_mutex_lock(&b->cons_mu);
    for (size_t i = 0; i < b->nfl_parts; i++) {
        part_t *p = b->fl_parts[i];
        for (size_t k = 0; k < p->nwcons; k++) {
            emb_consumer_t *c = p->wcons[k];
            if (c->woke_seq == b->fl_seq) continue;
            c->woke_seq = b->fl_seq;
            cons_wake(c);
        }
    }
    pthread_mutex_unlock(&b->cons_mu);
}

/* Asks the flusher to write now instead of waiting for the interval. */
void emb_kick_flusher(emb_bus_t *b)
{
    pthread_mutex_lock(&b->fl_mu);
    b->fl_urgent = true;
    pthread_cond_signal(&b->fl_cv);
    pthread_mutex_unlock(&b->fl_mu);
}

/* ---- waiting for acks ---- */

hr_t emb_flush(bus_t *bb, int timeout_ms)
{
    emb_bus_t *b = (emb_bus_t *)bb;
    if (timeout_ms == 0) { /* "write now", waiting for nothing (dispatch between slices) */
        if (!atomic_load(&b->dirty)) return HR_OK;
        emb_kick_flusher(b);
        return HR_TIMEOUT;
    }
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
    if (any) emb_kick_flusher(b);
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
        atomic_fetch_add(&b->flush_waiters, 1);
        while (atomic_load(&b->data_seq) == seq)
            if (cond_wait_until(&b->data_cv, &b->data_mu, deadline) == ETIMEDOUT) break;
        atomic_fetch_sub(&b->flush_waiters, 1);
        pthread_mutex_unlock(&b->data_mu);
    }
    free(want);
    return r;
}

/* ---- flusher ---- */

/* Writes one piece of the flush buffer to the active segment and publishes
 * it to readers. */
/* Reserves the active segment's blocks ahead of a write of len bytes
 * (FALLOC_FL_KEEP_SIZE: the file's size, and so what recovery reads, does
 * not change; the reserve past the end is released when the segment is
 * sealed). Best effort: a file system without fallocate just appends. */
static void prealloc(emb_bus_t *b, seg_t *s, size_t len)
{
    int64_t need = s->size + (int64_t)len;
    if (need <= s->prealloc) return;
    int64_t upto = need + PREALLOC_STEP;
    if (upto > b->segment_bytes) upto = need > b->segment_bytes ? need : b->segment_bytes;
    int64_t from = s->prealloc > s->size ? s->prealloc : s->size;
    if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, from, upto - from) == 0)
        s->prealloc = upto;
    else
        s->prealloc = INT64_MAX; /* unsupported or full: stop trying on this segment */
}

static hr_t write_piece(emb_bus_t *b, part_t *p, seg_t *s, const char *data, size_t len,
                        int64_t last_off, int64_t max_ts)
{
    prealloc(b, s, len);
    if (emb_write_all(s->fd, data, len) != HR_OK ||
        (b->fsync_mode == FSYNC_ALWAYS && fdatasync(s->fd) != 0)) {
        int err = errno;
        log_error(LOGC, "write %s: %s", s->path, strerror(err));
        emb_set_write_failed(b, s->path, err);
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
    for (size_t i = 0; i < p->nfidx; i++) emb_idx_push(&s->idx, &s->nidx, &s->cidx, p->fidx[i].off, p->fidx[i].pos);
    p->nfidx = 0;
    p->total_bytes += (int64_t)len;
    atomic_store(&p->hw, last_off + 1);
    pthread_mutex_unlock(&p->seg_mu);
    emb_set_write_ok(b);
    return HR_OK;
}

/* Seals the active segment and starts a new one. Its base is where the old
 * one ends (not the first offset written to it: a failed write may leave a
 * gap), so that consecutive segments always join and a gap between them
 * means a lost file. */
static hr_t roll(emb_bus_t *b, part_t *p, int64_t first, seg_t **active)
{
    seg_t *s;
    seg_t *old = p->segs[p->nsegs - 1]; /* only this thread changes the list's tail */
    int64_t base = old->end > old->base ? old->end : first;
    if (emb_seg_create_active(b, p, base, &s) != HR_OK) {
        emb_set_write_failed(b, p->dir, errno);
        return HR_ERR;
    }
    if (old->prealloc > old->size && old->fd >= 0 && ftruncate(old->fd, old->size) != 0)
        log_warn(LOGC, "releasing the reserve of %s: %s", old->path, strerror(errno));
    pthread_mutex_lock(&p->seg_mu);
    old->sealed = true;
    emb_seg_maybe_close(old);
    emb_segs_push(p, s);
    pthread_mutex_unlock(&p->seg_mu);
    *active = s;
    emb_retention(b, p, hclock_now_ms());
    emb_disk_bound(b);
    return HR_OK;
}

/* Adds one partition's ack runs to the flush's acknowledgements: the first
 * nok records succeeded, the rest failed. */
static void ack_collect(emb_bus_t *b, const ack_run_t *runs, size_t nruns, int64_t nok)
{
    for (size_t i = 0; i < nruns; i++) {
        int64_t n = runs[i].n, ok = n < nok ? n : nok;
        nok -= ok;
        if (!runs[i].b) continue;
        if (b->nfl_out && b->fl_out[b->nfl_out - 1].b == runs[i].b) {
            b->fl_out[b->nfl_out - 1].ok += ok;
            b->fl_out[b->nfl_out - 1].err += n - ok;
            continue;
        }
        if (b->nfl_out == b->cfl_out) {
            b->cfl_out = b->cfl_out ? b->cfl_out * 2 : 256;
            b->fl_out = xrealloc(b->fl_out, b->cfl_out * sizeof(*b->fl_out));
        }
        b->fl_out[b->nfl_out++] = (ack_out_t){runs[i].b, ok, n - ok};
    }
}

static int cmp_ack_out(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)((const ack_out_t *)x)->b, c = (uintptr_t)((const ack_out_t *)y)->b;
    return a < c ? -1 : a > c;
}

/* Acknowledges what the flush collected: one bus_batch_ack_n per batch and
 * result (a batch whose records went to many partitions is woken once),
 * then moves each flushed partition's acked offset. */
static void ack_flush(emb_bus_t *b)
{
    if (b->nfl_out > 1) qsort(b->fl_out, b->nfl_out, sizeof(*b->fl_out), cmp_ack_out);
    for (size_t i = 0; i < b->nfl_out;) {
        ack_out_t a = b->fl_out[i++];
        while (i < b->nfl_out && b->fl_out[i].b == a.b) {
            a.ok += b->fl_out[i].ok;
            a.err += b->fl_out[i].err;
            i++;
        }
        if (a.ok) bus_batch_ack_n(a.b, a.ok, HR_OK);
        if (a.err) bus_batch_ack_n(a.b, a.err, HR_ERR);
    }
    b->nfl_out = 0;
    for (size_t i = 0; i < b->nfl_parts; i++) atomic_store(&b->fl_parts[i]->acked, b->fl_parts[i]->fl_end);
    b->nfl_parts = 0;
}

/* Flusher thread. Returns true if anything was acked. */
static bool part_flush(emb_bus_t *b, part_t *p)
{
    if (!atomic_load(&p->has_data)) return false; /* see produced() in bus_embedded.c */
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->has_data, false, memory_order_relaxed);
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
        uint32_t len = le_get32(rec);
        int64_t off = le_get64(rec + 8);
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
            emb_idx_push(&p->fidx, &p->nfidx, &p->cfidx, off, at);
            s->idx_next = at + IDX_STEP;
        }
        le_put32(rec + 4, rec_crc(rec, len));
        int64_t ts = le_get64(rec + 16);
        if (ts > max_ts) max_ts = ts;
        last_off = off;
        piece_recs++;
        i += len;
    }
    if (r == HR_OK && i > piece && write_piece(b, p, s, buf + piece, i - piece, last_off, max_ts) == HR_OK)
        nok += piece_recs;
    ack_collect(b, runs, nruns, nok);
    p->fl_end = end_off;
    if (b->nfl_parts == b->cfl_parts) {
        b->cfl_parts = b->cfl_parts ? b->cfl_parts * 2 : 64;
        b->fl_parts = xrealloc(b->fl_parts, b->cfl_parts * sizeof(*b->fl_parts));
    }
    b->fl_parts[b->nfl_parts++] = p;

    if (p->fcap > SHRINK_BYTES && n < p->fcap / 4) {
        free(p->fbuf);
        p->fbuf = NULL;
        p->fcap = 0;
    }
    return true;
}

/* Flushes every partition, wakes the consumers of the topics that got data,
 * then acknowledges. */
static void flush_all(emb_bus_t *b)
{
    bool any = false;
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    b->fl_seq++;
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) any |= part_flush(b, &b->tlist[i]->parts[j]);
    if (!any) return;
    wake_readers(b);
    ack_flush(b);
    wake_flush_waiters(b); /* acked moved */
}

static void housekeeping(emb_bus_t *b)
{
    int64_t now = hclock_now_ms();
    size_t nt = atomic_load_explicit(&b->ntopics, memory_order_acquire);
    for (size_t i = 0; i < nt; i++)
        for (int32_t j = 0; j < b->tlist[i]->nparts; j++) emb_retention(b, &b->tlist[i]->parts[j], now);
    emb_disk_bound(b);
}

void *emb_flusher_main(void *arg)
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
        flush_all(b);
        if (hclock_mono_ns() >= next_house) {
            housekeeping(b);
            next_house = hclock_mono_ns() + (int64_t)HOUSEKEEP_MS * 1000000;
        }
        if (stop) break;
    }
    return NULL;
}

/* ---- fsync policy: the syncer (fsync=interval) ---- */

/* fdatasyncs every segment with written but unsynced bytes. */
void emb_sync_all(emb_bus_t *b)
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
                emb_seg_unref(v[k]);
                pthread_mutex_unlock(&p->seg_mu);
            }
        }
    free(v);
    free(sz);
}

void *emb_syncer_main(void *arg)
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
        emb_sync_all(b);
    }
    return NULL;
}
