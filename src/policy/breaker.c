/*
 * breaker.c - circuit breaker (breaker.h). Hand-written: a few counters
 * and a three-state machine driven by an injected clock; the libraries
 * that offer one own threads or timers, which the dispatcher must not.
 */
#include "policy/breaker.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    int64_t epoch;      /* now_ms / width when the slot was last reset */
    int ok, fail;
} slot_t;

struct breaker {
    breaker_opts_t o;
    char *name;
    breaker_state_t state;
    int64_t width_ms;   /* one slot */
    slot_t *slots;
    int64_t open_until; /* open: when half-open begins */
    int probes_out;     /* half-open: allowed, result not recorded yet */
    int probes_ok;      /* half-open: successes */
    int64_t transitions;
    /* what breaker_list reads from other threads; written by the owner */
    _Atomic int pub_state;
    _Atomic int64_t pub_open_until;
    _Atomic int64_t pub_transitions;
    struct breaker *reg_prev, *reg_next; /* the registry (exported only; reg_mu) */
};

/* The registry of exported breakers (breaker_list). */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static breaker_t *reg_head;

/* Breakers per channel and state, behind the herald_breaker_state gauge. */
static _Atomic int live[CH__COUNT][3];

static const char *const state_names[] = {"closed", "half-open", "open"};

const char *breaker_state_name(breaker_state_t s)
{
    return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "?";
}

void breaker_opts_default(breaker_opts_t *o)
{
    *o = (breaker_opts_t){
        .name = "provider",
        .channel = -1,
        .window_ms = 10000,
        .buckets = 10,
        .min_requests = 20,
        .error_pct = 20,
        .cooldown_ms = 30000,
        .probes = 3,
    };
}

static bool exported(const breaker_t *b)
{
    return b->o.channel >= 0 && b->o.channel < CH__COUNT;
}

breaker_t *breaker_new(const breaker_opts_t *o)
{
    breaker_t *b = xcalloc(1, sizeof(*b));
    b->o = *o;
    b->name = xstrdup(o->name ? o->name : "provider");
    b->o.name = b->name;
    if (b->o.buckets < 1) b->o.buckets = 1;
    if (b->o.buckets > 1000) b->o.buckets = 1000;
    if (b->o.window_ms < b->o.buckets) b->o.window_ms = b->o.buckets;
    if (b->o.probes < 1) b->o.probes = 1;
    if (b->o.error_pct < 1) b->o.error_pct = 1;
    if (b->o.error_pct > 100) b->o.error_pct = 100;
    if (b->o.min_requests < 1) b->o.min_requests = 1;
    if (b->o.cooldown_ms < 0) b->o.cooldown_ms = 0;
    b->width_ms = b->o.window_ms / b->o.buckets;
    b->slots = xcalloc((size_t)b->o.buckets, sizeof(*b->slots));
    for (int i = 0; i < b->o.buckets; i++) b->slots[i].epoch = INT64_MIN;
    b->state = BREAKER_CLOSED;
    atomic_init(&b->pub_state, BREAKER_CLOSED);
    atomic_init(&b->pub_open_until, 0);
    atomic_init(&b->pub_transitions, 0);
    if (exported(b)) {
        atomic_fetch_add(&live[b->o.channel][BREAKER_CLOSED], 1);
        pthread_mutex_lock(&reg_mu);
        b->reg_next = reg_head;
        if (reg_head) reg_head->reg_prev = b;
        reg_head = b;
        pthread_mutex_unlock(&reg_mu);
    }
    return b;
}

void breaker_free(breaker_t *b)
{
    if (!b) return;
    if (exported(b)) {
        atomic_fetch_sub(&live[b->o.channel][b->state], 1);
        pthread_mutex_lock(&reg_mu);
        if (b->reg_prev) b->reg_prev->reg_next = b->reg_next;
        else reg_head = b->reg_next;
        if (b->reg_next) b->reg_next->reg_prev = b->reg_prev;
        pthread_mutex_unlock(&reg_mu);
    }
    free(b->slots);
    free(b->name);
    free(b);
}

breaker_state_t breaker_channel_state(int channel)
{
    if (channel < 0 || channel >= CH__COUNT) return BREAKER_CLOSED;
    if (atomic_load(&live[channel][BREAKER_OPEN]) > 0) return BREAKER_OPEN;
    if (atomic_load(&live[channel][BREAKER_HALF_OPEN]) > 0) return BREAKER_HALF_OPEN;
    return BREAKER_CLOSED;
}

static int info_cmp(const void *a, const void *b)
{
    const breaker_info_t *x = a, *y = b;
    if (x->channel != y->channel) return x->channel < y->channel ? -1 : 1;
    return strcmp(x->name, y->name);
}

void breaker_list(breaker_info_t **out, int *n)
{
    breaker_info_t *v = NULL;
    int nv = 0, cap = 0;
    pthread_mutex_lock(&reg_mu);
    for (breaker_t *b = reg_head; b; b = b->reg_next) {
        int i = 0;
        while (i < nv && !(v[i].channel == b->o.channel && strncmp(v[i].name, b->name, sizeof(v[i].name) - 1) == 0))
            i++;
        if (i == nv) {
            if (nv == cap) {
                cap = cap ? cap * 2 : 8;
                v = xrealloc(v, (size_t)cap * sizeof(*v));
            }
            v[nv] = (breaker_info_t){.channel = b->o.channel, .state = BREAKER_CLOSED};
            snprintf(v[nv].name, sizeof(v[nv].name), "%s", b->name);
            nv++;
        }
        breaker_info_t *x = &v[i];
        breaker_state_t st = (breaker_state_t)atomic_load(&b->pub_state);
        x->breakers++;
        if (st == BREAKER_OPEN) {
            x->open++;
            int64_t until = atomic_load(&b->pub_open_until);
            if (until > x->open_until_ms) x->open_until_ms = until;
        } else if (st == BREAKER_HALF_OPEN) {
            x->half_open++;
        }
        if (st > x->state) x->state = st;
        x->transitions += atomic_load(&b->pub_transitions);
    }
    pthread_mutex_unlock(&reg_mu);
    if (nv > 1) qsort(v, (size_t)nv, sizeof(*v), info_cmp);
    *out = v;
    *n = nv;
}

static void window_clear(breaker_t *b)
{
    for (int i = 0; i < b->o.buckets; i++) b->slots[i] = (slot_t){.epoch = INT64_MIN};
}

/* The one place the state changes. */
static void set_state(breaker_t *b, breaker_state_t to, int64_t now_ms, const char *why)
{
    breaker_state_t from = b->state;
    if (from == to) return;
    b->state = to;
    b->transitions++;
    switch (to) {
    case BREAKER_OPEN:
        b->open_until = now_ms + b->o.cooldown_ms;
        b->probes_out = b->probes_ok = 0;
        break;
    case BREAKER_HALF_OPEN:
        b->probes_out = b->probes_ok = 0;
        break;
    case BREAKER_CLOSED:
        window_clear(b);
        b->open_until = 0;
        break;
    }
    atomic_store(&b->pub_open_until, to == BREAKER_OPEN ? b->open_until : 0);
    atomic_store(&b->pub_transitions, b->transitions);
    atomic_store(&b->pub_state, (int)to);
    if (exported(b)) {
        atomic_fetch_sub(&live[b->o.channel][from], 1);
        atomic_fetch_add(&live[b->o.channel][to], 1);
        METRIC_ADD_AT(breaker_transitions, b->o.channel, 1);
    }
    if (to == BREAKER_OPEN)
        log_warn("breaker", "%s: %s -> open for %" PRId64 " ms (%s)", b->name, breaker_state_name(from),
                 b->o.cooldown_ms, why);
    else
        log_info("breaker", "%s: %s -> %s (%s)", b->name, breaker_state_name(from), breaker_state_name(to),
                 why);
    if (b->o.on_change) b->o.on_change(b->o.ud, b->name, from, to, now_ms);
}

static void tick(breaker_t *b, int64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms >= b->open_until)
        set_state(b, BREAKER_HALF_OPEN, now_ms, "cool-down over");
}

breaker_state_t breaker_state(breaker_t *b, int64_t now_ms)
{
    tick(b, now_ms);
    return b->state;
}

bool breaker_allow(breaker_t *b, int64_t now_ms)
{
    tick(b, now_ms);
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        break;
    case BREAKER_HALF_OPEN:
        if (b->probes_ok + b->probes_out < b->o.probes) {
            b->probes_out++;
            return true;
        }
        break;
    }
    if (exported(b)) METRIC_ADD_AT(breaker_rejected, b->o.channel, 1);
    return false;
}

int64_t breaker_retry_at(breaker_t *b, int64_t now_ms)
{
    tick(b, now_ms);
    return b->state == BREAKER_OPEN ? b->open_until : now_ms;
}

void breaker_cancel(breaker_t *b, int n)
{
    if (b->state != BREAKER_HALF_OPEN || n < 1) return;
    b->probes_out = b->probes_out > n ? b->probes_out - n : 0;
}

int64_t breaker_transitions(const breaker_t *b)
{
    return b->transitions;
}

void breaker_record(breaker_t *b, int64_t now_ms, bool ok)
{
    tick(b, now_ms);
    if (b->state == BREAKER_OPEN) return; /* sent before it opened */
    if (b->state == BREAKER_HALF_OPEN) {
        if (b->probes_out > 0) b->probes_out--;
        if (!ok) {
            set_state(b, BREAKER_OPEN, now_ms, "a probe failed");
            return;
        }
        if (++b->probes_ok >= b->o.probes) set_state(b, BREAKER_CLOSED, now_ms, "probes succeeded");
        return;
    }
    int64_t epoch = now_ms >= 0 ? now_ms / b->width_ms : -1;
    slot_t *s = &b->slots[(uint64_t)epoch % (uint64_t)b->o.buckets];
    if (s->epoch != epoch) *s = (slot_t){.epoch = epoch};
    if (ok) s->ok++;
    else s->fail++;
    if (ok) return;
    int64_t total = 0, fail = 0;
    for (int i = 0; i < b->o.buckets; i++) {
        const slot_t *x = &b->slots[i];
        if (x->epoch > epoch - b->o.buckets && x->epoch <= epoch) {
            total += x->ok + x->fail;
            fail += x->fail;
        }
    }
    if (total >= b->o.min_requests && fail * 100 >= (int64_t)b->o.error_pct * total) {
        char why[96];
        snprintf(why, sizeof(why), "%" PRId64 " of %" PRId64 " failed in %" PRId64 " ms", fail, total,
                 b->o.window_ms);
        set_state(b, BREAKER_OPEN, now_ms, why);
    }
}
