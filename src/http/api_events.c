/*
 * api_events.c - POST /v1/events: validate a batch of events (herald or
 * CloudEvents shape) and publish it to raw-events.
 *
 * Fail early: an event that fan-out could only dead-letter - its type has
 * no template on any channel and it carries no inline content - is refused
 * with 422 naming `type` (`channels` when its content has no per-channel
 * part and nothing else chooses a channel). Which channels have templates
 * is cached per type (type_channels), so a batch costs no store read while
 * templates stay unchanged: entries are keyed by the store's templates
 * epoch (any template written through this process invalidates them) and
 * live TYPES_TTL_MS (a template written by another process sharing the
 * store is seen within that).
 *
 * Tenants (DESIGN §10): an event belongs to the caller's key's tenant. One
 * naming another tenant is refused (403 naming tenant); a tenant other
 * than the default one is written into the event's "tenant" member, which
 * fan-out qualifies every id with. The template check looks at the
 * tenant's own templates.
 * Tracing: a `traceparent` header (W3C Trace Context) applies to every
 * event of the request that carries no `traceparent` of its own (the
 * event's own value is the more specific context, as a CloudEvent's
 * distributed tracing attribute is meant to be). A malformed header, or
 * more than one, is refused with 400 naming `traceparent` before the body
 * is read; a malformed field is a 422 naming it like any bad member.
 *
 * Cost: the body is the only JSON parsed on an event's way (ingest writes
 * binary event records, model/event.h). jansson allocates every node, key
 * and string of it with malloc, ~20 per event, and frees each again when
 * the request ends: the allocator was a fifth of the HTTP thread's time.
 * The body is therefore parsed into a per-thread arena (body_arena below)
 * and dropped at once; the answer is written without building JSON values.
 */
#include "http/api_int.h"

#include "core/hash.h"
#include "core/scratch.h"
#include "stage/ingest.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_BATCH_MAX 1000
#define TYPES_CACHE 256         /* slots, direct-mapped by the type's hash */
#define TYPES_TTL_MS 2000
#define TYPES_NAME_MAX (TENANT_QID_MAX + 1) /* longer type names are not cached */

typedef struct type_slot {
    const store_t *store;
    uint64_t epoch;
    int64_t at_ms;
    unsigned mask;
    char type[TYPES_NAME_MAX];
} type_slot_t;

static pthread_mutex_t types_mu = PTHREAD_MUTEX_INITIALIZER;
static type_slot_t types[TYPES_CACHE];

/* ---- the body's arena ----
 * jansson has one pair of allocation functions per process
 * (json_set_alloc_funcs), so they are replaced once by a pair that uses the
 * calling thread's arena while it is open and malloc/free otherwise.
 * Freeing a pointer of the thread's arena is a no-op; any other goes to
 * free(), so values made before the switch or on other threads are freed
 * as before. The arena is open only while the body is parsed (nothing of
 * jansson's that is handed out to be free()d - json_dumps' text - is
 * made then) and released after the document's last reference is gone,
 * on the same thread, at the end of the request. Chunks double, so a
 * large body makes few of them; the first (ARENA_FIRST) stays for the
 * thread's next request (freed when the thread ends). Hand-written:
 * jansson takes nothing else, and the alternative is a second JSON parser. */
#define ARENA_FIRST (64u * 1024u)
#define ARENA_ALIGN 16u

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} arena_chunk_t;

typedef struct body_arena {
    arena_chunk_t *head; /* newest (largest) first */
    bool open;
} body_arena_t;

static _Thread_local body_arena_t body_arena;
static pthread_key_t arena_key; /* its destructor frees a thread's chunks when it ends */

static void arena_drop(void *v)
{
    body_arena_t *a = v;
    for (arena_chunk_t *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

static void *arena_malloc(size_t n)
{
    if (!body_arena.open) return malloc(n);
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    arena_chunk_t *c = body_arena.head;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : ARENA_FIRST;
        while (cap < n) cap *= 2;
        arena_chunk_t *nc = malloc(sizeof(*nc) + cap);
        if (!nc) return NULL; /* jansson reports it as a parse error */
        nc->next = c;
        nc->cap = cap;
        nc->used = 0;
        if (!c) pthread_setspecific(arena_key, &body_arena); /* the thread's first */
        body_arena.head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void arena_free(void *p)
{
    if (!p) return;
    for (arena_chunk_t *c = body_arena.head; c; c = c->next)
        if ((unsigned char *)p >= c->data && (unsigned char *)p < c->data + c->cap) return;
    free(p);
}

static void arena_install(void)
{
    if (pthread_key_create(&arena_key, arena_drop) != 0) abort();
    json_set_alloc_funcs(arena_malloc, arena_free);
}

/* Empties the thread's arena: every value parsed into it must be gone. */
static void arena_reset(void)
{
    arena_chunk_t *c = body_arena.head;
    while (c && c->next) { /* keep the first, smallest chunk */
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    body_arena.head = c;
    if (c) c->used = 0;
}

/* The body parsed into the arena; NULL with the 400 answered (by
 * api_body_json, on the heap) when it is not JSON. */
static json_t *body_json(http_req_t *rq, http_resp_t *rs)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, arena_install);
    body_arena.open = true;
    json_t *doc = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                             JSON_REJECT_DUPLICATES, NULL);
    body_arena.open = false;
    if (doc) return doc;
    arena_reset();
    return api_body_json(rq, rs); /* the same parse fails the same way, naming where */
}

/* 202 {"accepted":n,"event_ids":[...]}, written directly (a JSON value per
 * id cost two allocations and a dump per event). Ids are validated
 * printable UTF-8 without NUL: only '"' and '\\' need escaping; control
 * characters are escaped all the same. */
static void answer_accepted(http_resp_t *rs, const event_t *evs, int n)
{
    buf_t b;
    buf_init(&b, 0);
    buf_printf(&b, "{\"accepted\":%d,\"event_ids\":[", n);
    for (int i = 0; i < n; i++) {
        const char *id = evs[i].event_id;
        buf_append(&b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *p = id;;) {
            const char *q = p;
            while (*q && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
            buf_append(&b, p, (size_t)(q - p));
            if (!*q) break;
            if (*q == '"' || *q == '\\') {
                char esc[2] = {'\\', *q};
                buf_append(&b, esc, 2);
            } else {
                buf_printf(&b, "\\u%04x", (unsigned)(unsigned char)*q);
            }
            p = q + 1;
        }
        buf_append(&b, "\"", 1);
    }
    buf_append(&b, "]}", 2);
    resp_text(rs, 202, "application/json", b.data, b.len); /* takes the text */
}

/* The channels having a template for type: from the cache, or the store.
 * Any HTTP thread. */
static hr_t type_channels(store_t *s, const char *type, unsigned *mask)
{
    size_t n = strlen(type);
    bool cacheable = n < TYPES_NAME_MAX;
    type_slot_t *slot = &types[fnv1a64(type, n) % TYPES_CACHE];
    uint64_t epoch = store_templates_epoch(s);
    int64_t now = hclock_now_ms();
    if (cacheable) {
        pthread_mutex_lock(&types_mu);
        bool hit = slot->store == s && slot->epoch == epoch && now - slot->at_ms < TYPES_TTL_MS &&
                   strcmp(slot->type, type) == 0;
        if (hit) *mask = slot->mask;
        pthread_mutex_unlock(&types_mu);
        if (hit) return HR_OK;
    }
    hr_t r = store_template_channels(s, type, mask);
    if (r == HR_OK && cacheable) {
        pthread_mutex_lock(&types_mu);
        slot->store = s;
        slot->epoch = epoch; /* read before the query: a change during it is a miss next time */
        slot->at_ms = now;
        slot->mask = *mask;
        memcpy(slot->type, type, n + 1);
        pthread_mutex_unlock(&types_mu);
    }
    return r;
}

/* Can fan-out make a notification of ev (of the caller's tenant) at all?
 * HR_INVALID with pb filled when not; a store error otherwise. */
static hr_t check_deliverable(store_t *s, const event_t *ev, const char **last_type,
                              unsigned *last_mask, problem_t *pb)
{
    unsigned mask = 0;
    if (*last_type && strcmp(*last_type, ev->type) == 0) {
        mask = *last_mask; /* a batch mostly repeats one type: one look-up per run */
    } else {
        char qbuf[TENANT_QID_MAX + 1];
        const char *qtype = tenant_qualify_to(ev->tenant, ev->type, qbuf);
        hr_t r = qtype ? type_channels(s, qtype, &mask) : HR_OK;
        if (r != HR_OK) return r;
        *last_type = ev->type;
        *last_mask = mask;
    }
    /* what fan-out can render per channel: a template, or inline content
     * (a top-level title/body covers every channel) */
    unsigned can = mask | (ev->content ? (ev->content_default ? ~0u : ev->content_mask) : 0);
    /* the channels fan-out will use: the event's own list, or else those */
    unsigned want = ev->channels_mask ? ev->channels_mask
                                      : mask | (ev->content ? ev->content_mask : 0);
    if (want & can) return HR_OK;
    if (ev->channels_mask && (mask || ev->content)) {
        api_bad(pb, "channels", "names no channel with a template for type %s or inline content",
                ev->type);
        return HR_INVALID;
    }
    if (!ev->content)
        api_bad(pb, "type", "has no template on any channel (PUT /v1/templates/%s/{channel}) "
                "and the event carries no inline content", ev->type);
    else
        api_bad(pb, "channels", "is needed: the type has no template and content has no "
                "per-channel part, so nothing says where to send it");
    return HR_INVALID;
}

/* Makes ev the caller's tenant's: false when it names another tenant. */
static bool stamp_tenant(event_t *ev, const char *tenant)
{
    bool both_default = tenant_is_default(ev->tenant) && tenant_is_default(tenant);
    if (ev->tenant && !both_default && strcmp(ev->tenant, tenant) != 0) return false;
    if (!tenant_is_default(tenant)) {
        if (!ev->doc) { /* the fast path's (rec): tenant outlives the request's events */
            ev->tenant = tenant;
            return true;
        }
        json_object_set_new(ev->doc, "tenant", json_string(tenant));
        ev->tenant = json_string_value(json_object_get(ev->doc, "tenant"));
    }
    return true;
}

/* Why ingest_publish() failed, for the 503's detail. */
static const char *publish_reason(hr_t r)
{
    switch (r) {
    case HR_AGAIN: return "it is full (backpressure)";
    case HR_TIMEOUT: return "it did not acknowledge them within ingest.ack_timeout_ms";
    case HR_CLOSED: return "the server is shutting down";
    default: return "it failed to write them (the server log says why)";
    }
}

void api_events_post(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    event_t *evs = NULL;
    int n = 0, ok = 0;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));

    /* Admission control, before any work: fan-out is too far behind. */
    int64_t backlog;
    if (ingest_admit(app, &backlog) == HR_AGAIN) {
        METRIC_INC(ingest_refused_backlog);
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 429, PROBLEM_UNAVAILABLE, NULL,
                     "fan-out is %lld records behind (ingest.max_backlog_records is %lld); retry "
                     "later",
                     (long long)backlog, (long long)app->cfg->ingest_max_backlog);
        return;
    }

    /* The request's trace context (see the top), checked before the body. */
    char tp[TRACEPARENT_LEN + 1] = "";
    const char *tph = req_header(rq, "traceparent");
    if (tph) {
        const char *why = NULL;
        if (req_header_count(rq, "traceparent") > 1) {
            resp_problem(rs, 400, PROBLEM_PARAM, "traceparent", "traceparent is given more than once");
            METRIC_INC(events_rejected);
            return;
        }
        if (trace_normalize(tph, strlen(tph), tp, &why) != HR_OK) {
            resp_problem(rs, 400, PROBLEM_PARAM, "traceparent",
                         "traceparent %s (want W3C Trace Context: 00-<32 hex>-<16 hex>-<2 hex>, "
                         "lowercase, ids not all zero)", why);
            METRIC_INC(events_rejected);
            return;
        }
    }

    /* the common shape without a JSON tree (event_scan_batch); anything
     * else, and every invalid body, through jansson */
    buf_t strings;
    buf_init(&strings, 0);
    strings.data = scratch_take(SCRATCH_EVENT_STRINGS, &strings.cap);
    json_t *doc = NULL;
    bool is_array = false;
    if (rq->media == MEDIA_JSON && rq->body.data &&
        event_scan_batch(rq->body.data, rq->body.len, EVENTS_BATCH_MAX, &strings, &evs, &n, &is_array) == HR_OK) {
        METRIC_INC(events_fast_bodies);
        goto checks;
    }
    doc = body_json(rq, rs);
    if (!doc) {
        METRIC_INC(events_rejected);
        scratch_give(SCRATCH_EVENT_STRINGS, strings.data, strings.cap);
        return;
    }
    is_array = json_is_array(doc);
    if (rq->media == MEDIA_CE_BATCH && !is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents-batch+json needs an array of CloudEvents");
        goto rejected;
    }
    if (rq->media == MEDIA_CE && is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents+json carries one event; send arrays as "
                     "application/cloudevents-batch+json");
        goto rejected;
    }
    n = is_array ? (int)json_array_size(doc) : 1;
    if (is_array && n == 0) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body", "the batch is empty");
        goto rejected;
    }
    if (n > EVENTS_BATCH_MAX) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "the batch has %d events; at most %d are allowed", n, EVENTS_BATCH_MAX);
        goto rejected;
    }

    /* validate every event before publishing any */
    evs = xcalloc((size_t)n, sizeof(*evs));
checks:;
    char f[160];
    const char *last_type = NULL; /* the type checked last (owned by evs) and its template mask */
    unsigned last_mask = 0;
    for (ok = 0; ok < n; ok++) {
        json_t *e = doc ? (is_array ? json_array_get(doc, (size_t)ok) : doc) : NULL;
        if (!doc || event_from_json(e, &evs[ok], &pb) == HR_OK) {
            if (!stamp_tenant(&evs[ok], rq->who.tenant)) {
                ok++; /* parsed: freed below */
                if (is_array) api_fieldf(f, sizeof(f), "[%d].tenant", ok - 1);
                else api_fieldf(f, sizeof(f), "tenant");
                resp_problem(rs, 403, PROBLEM_FORBIDDEN, f,
                             "tenant: the event names a tenant other than the API key's (%s)",
                             rq->who.tenant);
                goto rejected;
            }
            /* without a store (a process that only ingests), fan-out decides */
            hr_t r = app->store && app->cfg->api_refuse_undeliverable
                         ? check_deliverable(app->store, &evs[ok], &last_type, &last_mask, &pb)
                         : HR_OK;
            if (r == HR_OK) continue;
            ok++; /* parsed: freed below */
            if (r != HR_INVALID) {
                api_answer_backend(rs, r, "templates");
                goto rejected;
            }
            if (is_array)
                api_fieldf(f, sizeof(f), "[%d].%s", ok - 1, pb.field);
            else
                api_fieldf(f, sizeof(f), "%s", pb.field);
            resp_problem(rs, 422, PROBLEM_VALIDATION, f, "%s %s", pb.field, pb.detail);
            goto rejected;
        }
        if (is_array)
            api_fieldf(f, sizeof(f), pb.field[0] ? "[%d].%s" : "[%d]%s", ok, pb.field);
        else
            api_fieldf(f, sizeof(f), "%s", pb.field[0] ? pb.field : "body");
        resp_problem(rs, 422, PROBLEM_VALIDATION, f, "%s%s%s", pb.field[0] ? pb.field : "",
                     pb.field[0] ? " " : "", pb.detail);
        goto rejected;
    }

    for (int i = 0; i < n && tp[0]; i++)
        if (!evs[i].traceparent[0]) memcpy(evs[i].traceparent, tp, sizeof(tp));

    hr_t r = ingest_publish(app, evs, n);
    if (r == HR_NOSPACE) {
        api_answer_nospace(rs, "events", "the bus");
        goto out;
    }
    if (r != HR_OK) {
        /* Full, slow or failing: some events may have gone out, so the
         * client retries the whole request; fan-out dedupes by event_id. */
        char why[256];
        bool degraded = bus_health(app->bus, why, sizeof(why)) != BUS_HEALTH_OK;
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL,
                     "the bus did not take the events: %s%s%s; retry the whole request "
                     "(event_id makes it idempotent)",
                     publish_reason(r), degraded ? ": " : "", degraded ? why : "");
        goto out;
    }
    answer_accepted(rs, evs, n);
    goto out;

rejected:
    METRIC_ADD(events_rejected, n > 0 ? n : 1);
out:
    /* the fast path's events were all made; jansson's up to the first bad one */
    for (int i = 0; i < (doc ? ok : n) && evs; i++) event_clear(&evs[i]);
    free(evs);
    scratch_give(SCRATCH_EVENT_STRINGS, strings.data, strings.cap);
    if (doc) {
        json_decref(doc); /* its last reference: the arena can go */
        arena_reset();
    }
}
