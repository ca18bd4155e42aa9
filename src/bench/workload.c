/*
 * workload.c - the benchmark's event stream (see workload.h).
 */
#include "bench/workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double wl_channel_share[CH__COUNT] = {
    [CH_PUSH] = 0.70, [CH_INAPP] = 0.20, [CH_EMAIL] = 0.08, [CH_SMS] = 0.02, [CH_WEBHOOK] = 0.0,
};

const double wl_push_only[CH__COUNT] = {[CH_PUSH] = 1.0};

const char wl_template_title[] = "{{actor}} posted something new";
const char wl_template_body[] = "Hi {{user_id}}, {{actor}} wrote: {{data.text}}";

static const char *const texts[] = {
    "Back in stock: the blue one you asked about, in your size.",
    "Your order #4711 has shipped and arrives on Thursday.",
    "Kylie commented on the photo you shared this morning.",
    "Price drop on an item in your wish list: now 20% off.",
    "Reminder: your appointment is tomorrow at 10:30.",
    "New sign-in to your account from a new device.",
};

/* splitmix64: small, fast, and good enough for a workload. */
static uint64_t next_u64(workload_t *w)
{
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t workload_rand(workload_t *w, uint64_t n)
{
    return n ? next_u64(w) % n : 0;
}

static double next_unit(workload_t *w)
{
    return (double)(next_u64(w) >> 11) * (1.0 / 9007199254740992.0);
}

/* Knuth's method; fine for a small mean. */
static int poisson(workload_t *w, double lambda)
{
    double l = exp(-lambda), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= next_unit(w);
    } while (p > l);
    return k - 1;
}

void workload_user_id(int64_t i, char *out)
{
    uint64_t v = (uint64_t)(i % 10000000);
    out[0] = 'u';
    for (int k = WL_USER_ID_LEN - 1; k >= 1; k--) {
        out[k] = (char)('0' + v % 10);
        v /= 10;
    }
    out[WL_USER_ID_LEN] = '\0';
}

void workload_init(workload_t *w, uint64_t seed, int64_t users, const char *run)
{
    memset(w, 0, sizeof(*w));
    w->rng = seed;
    w->users = users > 0 ? users : 1;
    w->share = wl_channel_share;
    /* mean = (1 - p) (1 + lambda) + p * burst = 5 */
    double p = 1.0 / WL_BURST_EVERY;
    w->lambda = (WL_MEAN_AUDIENCE - p * WL_BURST_SIZE) / (1.0 - p) - 1.0;
    snprintf(w->run, sizeof(w->run), "%s", run);
    w->pick = xcalloc(WL_BURST_SIZE, sizeof(*w->pick));
}

void workload_release(workload_t *w)
{
    free(w->pick);
    w->pick = NULL;
}

static int pick_channel(workload_t *w, int n)
{
    int best = CH_PUSH;
    double best_gap = -1e300;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        if (w->share[ch] <= 0) continue;
        double gap = w->share[ch] * (double)(w->notifs + n) - (double)w->chan_notifs[ch];
        if (gap > best_gap) {
            best_gap = gap;
            best = ch;
        }
    }
    return best;
}

int workload_next(workload_t *w, buf_t *out, int *channel)
{
    int n;
    if (workload_rand(w, WL_BURST_EVERY) == 0)
        n = WL_BURST_SIZE;
    else
        n = 1 + poisson(w, w->lambda);
    if (n > WL_BURST_SIZE) n = WL_BURST_SIZE;
    if (n > w->users) n = (int)w->users;
    for (int i = 0; i < n; i++) {
        int32_t u;
        bool dup;
        do {
            u = (int32_t)workload_rand(w, (uint64_t)w->users);
            dup = false;
            for (int k = 0; k < i && !dup; k++) dup = w->pick[k] == u;
        } while (dup);
        w->pick[i] = u;
    }
    int ch = pick_channel(w, n);
    char id[WL_USER_ID_LEN + 1];
    workload_user_id((int64_t)workload_rand(w, (uint64_t)w->users), id);
    const char *text = texts[workload_rand(w, ARRAY_LEN(texts))];
    buf_printf(out,
               "{\"event_id\":\"%s-%lld\",\"type\":\"" WL_EVENT_TYPE "\",\"actor\":\"%s\","
               "\"category\":\"social\",\"channels\":[\"%s\"],\"audience\":{\"users\":[",
               w->run, (long long)w->events, id, channel_name((channel_t)ch));
    buf_reserve(out, (size_t)n * (WL_USER_ID_LEN + 3));
    for (int i = 0; i < n; i++) {
        char *p = out->data + out->len;
        if (i) *p++ = ',';
        *p++ = '"';
        workload_user_id(w->pick[i], p);
        p += WL_USER_ID_LEN;
        *p++ = '"';
        out->len = (size_t)(p - out->data);
    }
    out->data[out->len] = '\0';
    buf_printf(out, "]},\"data\":{\"text\":\"%s\",\"n\":%lld}}", text, (long long)w->events);
    w->events++;
    w->notifs += n;
    w->chan_notifs[ch] += n;
    *channel = ch;
    return n;
}
