/*
 * chunks.c - chunked fan-out (chunks.h): planning the chunk tasks of a big
 * audience, and the stage that expands them.
 */
#include "stage/chunks.h"

#include "core/buf.h"
#include "core/log.h"
#include "stage/pullfan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_PAGE 1000
/* Users a chunk worker expands per process() call at most (whole chunks,
 * at least one): the rest of the batch is rewound, so that one poll of
 * chunk tasks does not hold millions of notifications in flight and a
 * failure repeats little. */
#define EXPAND_BUDGET 20000
/* A chunk worker logs its share (tasks and users expanded) at most this
 * often, and once more when it stops. */
#define CHUNK_REPORT_MS 10000

hr_t chunk_plan_walk(chunk_page_fn page, store_t *s, const char *key, const char *after,
                     int chunk_size, int page_size, chunk_emit_fn emit, void *arg,
                     uint32_t *nchunks)
{
    if (chunk_size < 1 || page_size < 1) return HR_INVALID;
    char *cur = after ? xstrdup(after) : NULL;   /* the last id read */
    char *start = xstrdup(after ? after : "");   /* the open chunk's lower bound */
    int in_chunk = 0;
    uint32_t idx = 0;
    hr_t r = HR_OK;
    for (;;) {
        /* A full chunk is closed (until = its last id) only once a next id
         * exists; the last chunk stays open-ended, so that users added after
         * the plan are in it. */
        int room = in_chunk == chunk_size ? chunk_size : chunk_size - in_chunk;
        int want = room < page_size ? room : page_size;
        char **ids = NULL;
        int n = 0;
        if ((r = page(s, key, cur, want, &ids, &n)) != HR_OK) break;
        if (n > 0 && in_chunk == chunk_size) {
            if ((r = emit(arg, idx++, start, cur)) != HR_OK) {
                ids_free(ids, n);
                break;
            }
            free(start);
            start = xstrdup(cur);
            in_chunk = 0;
        }
        if (n > 0) {
            free(cur);
            cur = xstrdup(ids[n - 1]);
        }
        in_chunk += n;
        ids_free(ids, n);
        if (n < want) {
            if (in_chunk > 0) r = emit(arg, idx++, start, "");
            break;
        }
    }
    free(cur);
    free(start);
    if (nchunks) *nchunks = idx;
    return r;
}

bool chunks_due(const app_t *app, int64_t done)
{
    int64_t t = app->cfg->fanout_chunk_threshold;
    return t > 0 && done >= t;
}

typedef struct plan_ctx {
    app_t *app;
    chunk_t c;
    buf_t enc;
    bus_batch_t *batch;
} plan_ctx_t;

static hr_t plan_emit(void *arg, uint32_t index, const char *after, const char *until)
{
    plan_ctx_t *p = arg;
    p->c.index = index;
    p->c.after = (char *)after;
    p->c.until = (char *)until;
    buf_reset(&p->enc);
    hr_t r = chunk_encode(&p->c, &p->enc);
    if (r != HR_OK) return r;
    char key[300];
    int kl = snprintf(key, sizeof(key), "%s/%u", p->c.event_id, (unsigned)index);
    if (kl < 0 || kl >= (int)sizeof(key)) kl = (int)sizeof(key) - 1;
    r = stage_produce(p->app, TOPIC_CHUNKS, -1, key, (size_t)kl, p->enc.data, p->enc.len, p->batch);
    if (r == HR_OK) METRIC_INC(fanout_chunks_planned);
    return r;
}

hr_t chunks_plan(app_t *app, const bus_msg_t *m, const event_t *ev, const char *event_id,
                 const char *type, unsigned mask, chunk_kind_t kind, const char *key,
                 const char *after, bus_batch_t *batch)
{
    unsigned flags = 0;
    if (kind == CHUNK_FOLLOWERS && (mask & (1u << CH_INAPP))) {
        bool pull = false;
        hr_t r = pull_fan_event(app, ev, event_id, type, key, after, &pull);
        if (r != HR_OK) return r;
        if (pull) flags |= CHUNK_F_PULL;
        if (pull && !(mask & ~(1u << CH_INAPP))) return HR_OK; /* nothing else to fan out */
    }
    plan_ctx_t p = {
        .app = app,
        .c = {.kind = kind, .flags = flags, .event_id = (char *)event_id, .key = (char *)key,
              .traceparent = (char *)ev->traceparent,
              .event = (char *)m->value, .event_len = m->value_len},
        .batch = batch,
    };
    buf_init(&p.enc, 0);
    uint32_t n = 0;
    int64_t t0 = hclock_mono_ns();
    hr_t r = chunk_plan_walk(kind == CHUNK_TOPIC ? store_subs_page : store_followers_page,
                             app->store, key, after, (int)app->cfg->fanout_chunk_size, PLAN_PAGE,
                             plan_emit, &p, &n);
    buf_release(&p.enc);
    if (r == HR_OK)
        log_debug("fanout", "event %s: %u chunk task(s) of %lld users planned in %.1f ms", event_id,
                  (unsigned)n, (long long)app->cfg->fanout_chunk_size,
                  (double)(hclock_mono_ns() - t0) / 1e6);
    return r;
}

/* ---- the stage ---- */

typedef struct chunk_worker {
    void *fan;                  /* fanout_stage's state */
    app_t *app;
    int cap;
    chunk_t *cs;
    bool *ok;
    const char **ids;
    const char **positions;
    claim_t *claims;
    char (*idbuf)[320];
    char (*posbuf)[160];
    int worker;                 /* the stage's worker index */
    int64_t rep_tasks, rep_users; /* expanded since the last report */
    int64_t rep_since_ms;       /* when the first of them started; 0 = none */
    int64_t rep_last_ms;        /* when the last of them was done */
} chunk_worker_t;

/* Logs what the worker expanded since its last line (chunks.h). */
static void chunks_report(chunk_worker_t *w)
{
    if (!w->rep_tasks) return;
    log_info("fanout", "fanout-chunks worker %d: %lld chunk task(s), %lld users in %.1f s", w->worker,
             (long long)w->rep_tasks, (long long)w->rep_users,
             (double)(w->rep_last_ms - w->rep_since_ms) / 1000.0);
    w->rep_tasks = w->rep_users = 0;
    w->rep_since_ms = 0;
}

static void *chunks_new(app_t *app, const stage_def_t *def, int worker)
{
    chunk_worker_t *w = xcalloc(1, sizeof(*w));
    w->app = app;
    w->worker = worker;
    w->fan = fanout_stage.state_new(app, def, worker);
    w->cap = app->cfg->batch_max;
    w->cs = xcalloc((size_t)w->cap, sizeof(*w->cs));
    w->ok = xcalloc((size_t)w->cap, sizeof(*w->ok));
    w->ids = xcalloc((size_t)w->cap, sizeof(*w->ids));
    w->positions = xcalloc((size_t)w->cap, sizeof(*w->positions));
    w->claims = xcalloc((size_t)w->cap, sizeof(*w->claims));
    w->idbuf = xcalloc((size_t)w->cap, sizeof(*w->idbuf));
    w->posbuf = xcalloc((size_t)w->cap, sizeof(*w->posbuf));
    return w;
}

static void chunks_free(void *state)
{
    chunk_worker_t *w = state;
    chunks_report(w);
    fanout_stage.state_free(w->fan);
    free(w->cs);
    free(w->ok);
    free(w->ids);
    free(w->positions);
    free(w->claims);
    free(w->idbuf);
    free(w->posbuf);
    free(w);
}

static hr_t chunks_process(void *state, stage_ctx_t *cx, const bus_msg_t *msgs, int n,
                           bus_batch_t *batch)
{
    chunk_worker_t *w = state;
    app_t *app = w->app;
    hr_t r = HR_OK;
    if (n > w->cap) return HR_INVALID;
    /* whole chunks up to the budget; the rest is delivered again */
    int64_t chunk_size = app->cfg->fanout_chunk_size;
    int take = (int)(EXPAND_BUDGET / (chunk_size > 0 ? chunk_size : 1));
    if (take < 1) take = 1;
    if (take > n) take = n;
    for (int i = take; i < n; i++) { /* the first left of each partition */
        bool seen = false;
        for (int j = take; j < i && !seen; j++)
            seen = msgs[j].partition == msgs[i].partition && strcmp(msgs[j].topic, msgs[i].topic) == 0;
        if (!seen && (r = stage_rewind(cx, msgs[i].topic, msgs[i].partition, msgs[i].offset)) != HR_OK)
            return r;
    }
    int64_t t0 = hclock_now_ms();
    int nv = 0;
    for (int i = 0; i < take && r == HR_OK; i++) {
        w->ok[i] = chunk_decode(msgs[i].value, msgs[i].value_len, &w->cs[i]) == HR_OK;
        if (!w->ok[i]) {
            r = stage_dead_letter(app, &msgs[i], "fanout", "invalid chunk task", batch);
            continue;
        }
        chunk_claim_id(&w->cs[i], w->idbuf[i], sizeof(w->idbuf[i]));
        snprintf(w->posbuf[i], sizeof(w->posbuf[i]), "%s/%d/%lld", msgs[i].topic,
                 msgs[i].partition, (long long)msgs[i].offset);
        w->ids[nv] = w->idbuf[i];
        w->positions[nv] = w->posbuf[i];
        nv++;
    }
    if (r == HR_OK && nv) r = store_event_claim_batch(app->store, w->ids, w->positions, nv, w->claims);
    for (int i = 0, k = 0; i < take && r == HR_OK; i++) {
        if (!w->ok[i]) continue;
        claim_t c = w->claims[k++];
        if (c == CLAIM_DUP) { /* a second copy: the event was planned again */
            METRIC_INC(fanout_chunks_duplicate);
            continue;
        }
        int64_t users = 0;
        r = fanout_chunk_expand(w->fan, &msgs[i], &w->cs[i], c == CLAIM_SAME, batch, &users);
        if (r != HR_OK) break;
        METRIC_INC(fanout_chunks_expanded);
        if (!w->rep_since_ms) w->rep_since_ms = t0;
        w->rep_tasks++;
        w->rep_users += users;
    }
    for (int i = 0; i < take; i++)
        if (w->ok[i]) chunk_clear(&w->cs[i]);
    if (w->rep_since_ms) {
        w->rep_last_ms = hclock_now_ms();
        if (w->rep_last_ms - w->rep_since_ms >= CHUNK_REPORT_MS) chunks_report(w);
    }
    return r;
}

void chunks_stage_def(stage_def_t *out)
{
    *out = (stage_def_t){
        .name = STAGE_CHUNKS,
        .group = GROUP_CHUNKS,
        .topic = TOPIC_CHUNKS,
        .state_new = chunks_new,
        .state_free = chunks_free,
        .process = chunks_process,
    };
}
