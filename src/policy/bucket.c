/*
 * bucket.c - provider token buckets (bucket.h). Written here rather than
 * taken from a library: the whole algorithm is a refill and a comparison,
 * and herald needs it on an injected clock with exact integer arithmetic.
 */
#include "policy/bucket.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *type;
    int64_t rate;
} defaults[] = {
    {"fcm", 500}, {"apns", 1000}, {"ses", 100}, {"sns", 200},
    /* Twilio limits per account and sender; 100/s is its API concurrency
     * ceiling for one account. Long codes send far less: configure. */
    {"twilio", 100},
};

int64_t bucket_default_rate(const char *type)
{
    for (size_t i = 0; type && i < ARRAY_LEN(defaults); i++)
        if (strcmp(defaults[i].type, type) == 0) return defaults[i].rate;
    return 0;
}

void bucket_init(bucket_t *b, int64_t rate, int64_t burst, int64_t now_ms)
{
    if (rate < 0) rate = 0;
    if (burst < 1) burst = rate > 0 ? rate : 1;
    b->rate = rate;
    b->cap_m = burst * 1000;
    b->tokens_m = b->cap_m;
    b->last_ms = now_ms;
}

static void refill(bucket_t *b, int64_t now_ms)
{
    if (now_ms <= b->last_ms) return;
    int64_t dt = now_ms - b->last_ms;
    b->last_ms = now_ms;
    /* dt * rate may overflow after a very long idle spell: cap first. */
    int64_t room = b->cap_m - b->tokens_m;
    if (room <= 0) return;
    if (dt >= room / b->rate + 1) b->tokens_m = b->cap_m;
    else b->tokens_m += dt * b->rate;
    if (b->tokens_m > b->cap_m) b->tokens_m = b->cap_m;
}

int64_t bucket_take(bucket_t *b, int64_t now_ms, int n)
{
    if (b->rate == 0) return 0;
    if (n < 1) n = 1;
    refill(b, now_ms);
    int64_t need = (int64_t)n * 1000;
    if (need > b->cap_m) need = b->cap_m; /* oversized: wait for a full bucket, then go into debt */
    if (b->tokens_m >= need) {
        b->tokens_m -= (int64_t)n * 1000;
        return 0;
    }
    int64_t missing = need - b->tokens_m;
    return (missing + b->rate - 1) / b->rate;
}

void bucket_refund(bucket_t *b, int n)
{
    if (b->rate == 0 || n < 1) return;
    b->tokens_m += (int64_t)n * 1000;
    if (b->tokens_m > b->cap_m) b->tokens_m = b->cap_m;
}

int64_t bucket_available(bucket_t *b, int64_t now_ms)
{
    if (b->rate == 0) return INT64_MAX;
    refill(b, now_ms);
    return b->tokens_m > 0 ? b->tokens_m / 1000 : 0;
}

static const char *kv_get(const config_t *cfg, const char *key)
{
    const char *v = NULL;
    for (const char *const *kv = config_provider_kv(cfg); kv[0]; kv += 2)
        if (strcmp(kv[0], key) == 0) v = kv[1]; /* the last one set wins */
    return v;
}

static hr_t kv_int(const config_t *cfg, const char *name, const char *k, int64_t *out, char *why,
                   size_t why_len)
{
    char key[256];
    snprintf(key, sizeof(key), "provider.%s.%s", name, k);
    const char *v = kv_get(cfg, key);
    if (!v) return HR_NOTFOUND;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < 0 || x > INT64_C(1000000000)) {
        snprintf(why, why_len, "%s: '%s' is not an integer in [0, 1000000000]", key, v);
        return HR_INVALID;
    }
    *out = x;
    return HR_OK;
}

hr_t bucket_conf(const config_t *cfg, const char *name, const char *type, int share,
                 int64_t *rate, int64_t *burst, char *why, size_t why_len)
{
    int64_t r = bucket_default_rate(type), b = -1;
    hr_t e = kv_int(cfg, name, "rate", &r, why, why_len);
    if (e == HR_INVALID) return e;
    e = kv_int(cfg, name, "burst", &b, why, why_len);
    if (e == HR_INVALID) return e;
    if (b < 0) b = r;
    if (share < 1) share = 1;
    *rate = (r + share - 1) / share;
    *burst = (b + share - 1) / share;
    return HR_OK;
}
