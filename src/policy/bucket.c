/*
 * bucket.c - provider token buckets (bucket.h). Written here rather than
 * taken from a library: the whole algorithm is a refill and a comparison,
 * and herald needs it on an injected clock with exact integer arithmetic.
 * The cluster-wide budget is the same bucket kept in Redis (hiredis, one
 * Lua script), over the same connection code and failure rule as the
 * Redis rate limiter (redis_link.c).
 */
#include "policy/bucket.h"
#include "policy/redis_link.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
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
    b->shared = NULL;
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

static int64_t shared_take(bucket_t *b, int64_t now_ms, int n);
static int64_t shared_available(bucket_t *b, int64_t now_ms);

int64_t bucket_take(bucket_t *b, int64_t now_ms, int n)
{
    if (b->shared) return shared_take(b, now_ms, n < 1 ? 1 : n);
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

void bucket_refund(bucket_t *b, int n);

int64_t bucket_available(bucket_t *b, int64_t now_ms)
{
    if (b->shared) return shared_available(b, now_ms);
    if (b->rate == 0) return INT64_MAX;
    refill(b, now_ms);
    return b->tokens_m > 0 ? b->tokens_m / 1000 : 0;
}

static void shared_refund(bucket_t *b, int n);

void bucket_refund(bucket_t *b, int n)
{
    if (b->shared && n >= 1) {
        shared_refund(b, n);
        return;
    }
    if (b->rate == 0 || n < 1) return;
    b->tokens_m += (int64_t)n * 1000;
    if (b->tokens_m > b->cap_m) b->tokens_m = b->cap_m;
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

/* ---- the cluster-wide budget in Redis ---- */

/* KEYS[1] the instance's hash {t: tokens in thousandths, l: last refill
 * ms}; ARGV: now_ms, rate/s, burst in thousandths, want, min. Refills,
 * then takes between min and want whole tokens (as many as there are),
 * or nothing. Returns {taken, 0}, or {0, ms until min tokens}; with min 0
 * it only reports {whole tokens available, 0}. A take of more than the
 * burst is granted once it is full and leaves debt (as bucket_take). */
static const char SCRIPT[] =
    "local now = tonumber(ARGV[1])\n"
    "local rate = tonumber(ARGV[2])\n"
    "local cap = tonumber(ARGV[3])\n"
    "local want = tonumber(ARGV[4])\n"
    "local min = tonumber(ARGV[5])\n"
    "local v = redis.call('HMGET', KEYS[1], 't', 'l')\n"
    "local t = tonumber(v[1])\n"
    "local l = tonumber(v[2])\n"
    "if not t or not l then t = cap; l = now end\n"
    "if now > l then\n"
    "  t = t + (now - l) * rate\n"
    "  if t > cap then t = cap end\n"
    "  l = now\n"
    "end\n"
    "if min <= 0 then\n"
    "  if t < 0 then return {0, 0} end\n"
    "  return {math.floor(t / 1000), 0}\n"
    "end\n"
    "local need = min * 1000\n"
    "if need > cap then need = cap end\n"
    "if t < need then return {0, math.ceil((need - t) / rate)} end\n"
    "local got = min\n"
    "local extra = math.floor((t - min * 1000) / 1000)\n"
    "if extra > want - min then extra = want - min end\n"
    "if extra > 0 then got = min + extra end\n"
    "t = t - got * 1000\n"
    "redis.call('HSET', KEYS[1], 't', t, 'l', l)\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 60000)\n"
    "return {got, 0}\n";

#define REDIS_RETRY_MS 1000

/* Invariant: lease is tokens granted by Redis and not spent yet. */
struct bucket_redis {
    redis_link_t link;
    char *key;                  /* herald:bucket:<name> */
    int64_t rate, cap_m;        /* the whole cluster's */
    int64_t lease;
};

/* One script call. true with *got / *wait set when Redis answered. */
static bool redis_take(bucket_redis_t *r, int64_t now_ms, int64_t want, int64_t min, int64_t *got,
                       int64_t *wait)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!redis_link_connect(&r->link, now_ms)) {
            METRIC_INC(bucket_redis_errors); /* a failed connect was logged */
            return false;
        }
        char now[24], rate[24], cap[24], w[24], m[24];
        snprintf(now, sizeof(now), "%" PRId64, now_ms);
        snprintf(rate, sizeof(rate), "%" PRId64, r->rate);
        snprintf(cap, sizeof(cap), "%" PRId64, r->cap_m);
        snprintf(w, sizeof(w), "%" PRId64, want);
        snprintf(m, sizeof(m), "%" PRId64, min);
        redisReply *y = redisCommand(r->link.c, "EVALSHA %s 1 %s %s %s %s %s %s", r->link.sha, r->key,
                                     now, rate, cap, w, m);
        if (!y) {
            METRIC_INC(bucket_redis_errors);
            redis_link_fail(&r->link, now_ms, "no answer");
            return false;
        }
        bool noscript = redis_link_noscript(y);
        bool ok = y->type == REDIS_REPLY_ARRAY && y->elements == 2 &&
                  y->element[0]->type == REDIS_REPLY_INTEGER &&
                  y->element[1]->type == REDIS_REPLY_INTEGER;
        if (ok) {
            *got = y->element[0]->integer;
            *wait = y->element[1]->integer;
        } else if (!noscript) {
            redis_link_bad_reply(&r->link, y);
            METRIC_INC(bucket_redis_errors);
        }
        freeReplyObject(y);
        if (ok) return true;
        if (!noscript) return false;
        /* the script cache was flushed (a restart): load it again */
        if (!redis_link_load(&r->link)) {
            METRIC_INC(bucket_redis_errors);
            redis_link_fail(&r->link, now_ms, "cannot load the script");
            return false;
        }
    }
    return false;
}

static int64_t shared_take(bucket_t *b, int64_t now_ms, int n)
{
    bucket_redis_t *r = b->shared;
    if (r->lease >= n) {
        r->lease -= n;
        return 0;
    }
    int64_t min = n - r->lease, chunk = r->rate / 20;
    int64_t want = chunk > min ? chunk : min;
    int64_t got = 0, wait = 0;
    if (!redis_take(r, now_ms, want, min, &got, &wait)) return 0; /* fail open */
    if (got >= min) {
        r->lease += got - n;
        return 0;
    }
    return wait > 0 ? wait : 1;
}

static void shared_refund(bucket_t *b, int n)
{
    b->shared->lease += n; /* spent by the next takes */
}

static int64_t shared_available(bucket_t *b, int64_t now_ms)
{
    bucket_redis_t *r = b->shared;
    int64_t got = 0, wait = 0;
    if (!redis_take(r, now_ms, 0, 0, &got, &wait)) return INT64_MAX;
    return got + r->lease;
}

hr_t bucket_share(bucket_t *b, const char *addr, const char *name, int64_t rate, int64_t burst,
                  int timeout_ms, char *why, size_t why_len)
{
    if (rate <= 0) return HR_OK; /* unlimited: nothing to share */
    bucket_redis_t *r = xcalloc(1, sizeof(*r));
    size_t kl = strlen("herald:bucket:") + strlen(name) + 1;
    r->key = xmalloc(kl);
    snprintf(r->key, kl, "herald:bucket:%s", name);
    char what[160];
    snprintf(what, sizeof(what), "provider budget %s", r->key);
    hr_t h = redis_link_init(&r->link, addr, "budget.redis", timeout_ms, REDIS_RETRY_MS, SCRIPT, "bucket",
                             what, "granting", why, why_len);
    if (h != HR_OK) {
        free(r->key);
        free(r);
        return h;
    }
    if (burst < 1) burst = rate;
    r->rate = rate;
    r->cap_m = burst * 1000;
    bucket_release(b);
    b->shared = r;
    return HR_OK;
}

hr_t bucket_share_config(bucket_t *b, const config_t *cfg, const char *name, const char *type,
                         char *why, size_t why_len)
{
    if (!cfg->budget_redis || !*cfg->budget_redis) return HR_OK;
    int64_t rate = 0, burst = 0;
    hr_t r = bucket_conf(cfg, name, type, 1, &rate, &burst, why, why_len);
    if (r != HR_OK) return r;
    return bucket_share(b, cfg->budget_redis, name, rate, burst, cfg->ratelimit_redis_timeout_ms, why,
                        why_len);
}

void bucket_release(bucket_t *b)
{
    bucket_redis_t *r = b->shared;
    if (!r) return;
    redis_link_release(&r->link);
    free(r->key);
    free(r);
    b->shared = NULL;
}
