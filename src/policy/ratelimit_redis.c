/*
 * ratelimit_redis.c - the Redis rate-limit backend (ratelimit.h): one ZSET
 * per (channel, user) holding the send times in the window, checked and
 * updated atomically by a Lua script (EVALSHA), a batch of checks
 * pipelined in one round trip.
 *
 * Failure: when Redis cannot be reached (connect, timeout, I/O or an
 * error reply) the affected checks are allowed (fail open: deliver rather
 * than drop), each is counted in herald_ratelimit_redis_errors_total, one
 * warning per 10 s is logged, and no reconnect is tried for
 * redis_retry_ms, so an outage costs at most one connect timeout per
 * interval, not one per batch.
 *
 * Time is the caller's now_ms (not Redis TIME): the dispatcher's clock,
 * injectable in tests; hosts sharing a Redis should keep their clocks in
 * sync (NTP), as for every other time herald stamps.
 */
#include "policy/ratelimit_int.h"
#include "policy/redis_link.h"

#include "core/log.h"
#include "metrics/metrics.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* KEYS[1] the user's ZSET; ARGV: now, window, limit, a unique member.
 * Returns 1 (allowed, counted) or 0. */
static const char SCRIPT[] =
    "local now = tonumber(ARGV[1])\n"
    "local window = tonumber(ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
    "if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then\n"
    "  redis.call('ZADD', KEYS[1], now, ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[1], window)\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

typedef struct rredis {
    ratelimit_t base;
    redis_link_t link;
    char *prefix;
    uint64_t nonce, seq;        /* unique members */
    char *key;                  /* scratch */
    size_t key_cap;
} rredis_t;

static const char *key_of(rredis_t *r, const ratelimit_req_t *q, size_t *len)
{
    size_t pl = strlen(r->prefix), cl = strlen(channel_name(r->base.ch));
    size_t need = pl + cl + 1 + q->user_len;
    if (need > r->key_cap) r->key = xrealloc(r->key, r->key_cap = need * 2);
    memcpy(r->key, r->prefix, pl);
    memcpy(r->key + pl, channel_name(r->base.ch), cl);
    r->key[pl + cl] = ':';
    memcpy(r->key + pl + cl + 1, q->user, q->user_len);
    *len = need;
    return r->key;
}

static void append(rredis_t *r, const ratelimit_req_t *q, int64_t now_ms)
{
    char now[24], win[24], lim[16], member[64];
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(win, sizeof(win), "%" PRId64, r->base.window_ms);
    snprintf(lim, sizeof(lim), "%d", r->base.limit);
    snprintf(member, sizeof(member), "%" PRId64 ":%016" PRIx64 ":%" PRIu64, now_ms, r->nonce, ++r->seq);
    size_t kl;
    const char *key = key_of(r, q, &kl);
    redisAppendCommand(r->link.c, "EVALSHA %s 1 %b %s %s %s %s", r->link.sha, key, kl, now, win, lim, member);
}

/* Runs reqs[i] for each i with todo[i]; clears todo[i] of each answered.
 * Returns how many came back NOSCRIPT (to run again after a reload), or
 * -1 after an I/O failure (the rest are left todo). */
static int round_trip(rredis_t *r, ratelimit_req_t *reqs, bool *todo, int n, int64_t now_ms)
{
    for (int i = 0; i < n; i++)
        if (todo[i]) append(r, &reqs[i], now_ms);
    int noscript = 0;
    for (int i = 0; i < n; i++) {
        if (!todo[i]) continue;
        redisReply *y = NULL;
        if (redisGetReply(r->link.c, (void **)&y) != REDIS_OK || !y) return -1;
        if (y->type == REDIS_REPLY_INTEGER) {
            reqs[i].allowed = y->integer != 0;
            todo[i] = false;
        } else if (redis_link_noscript(y)) {
            noscript++; /* the script cache was flushed (a restart): stays todo */
        } else {
            /* an error reply (OOM, a key of another type): this one fails open */
            METRIC_INC(ratelimit_redis_errors);
            redis_link_bad_reply(&r->link, y);
            reqs[i].allowed = true;
            todo[i] = false;
        }
        freeReplyObject(y);
    }
    return noscript;
}

static void redis_check(ratelimit_t *rl, ratelimit_req_t *reqs, int n, int64_t now_ms)
{
    rredis_t *r = (rredis_t *)rl;
    bool stack[64];
    bool *todo = n <= 64 ? stack : xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        todo[i] = true;
        reqs[i].allowed = true; /* fail open unless answered */
    }
    int left = n;
    for (int attempt = 0; attempt < 2 && left > 0; attempt++) {
        if (!redis_link_connect(&r->link, now_ms)) break;
        int k = round_trip(r, reqs, todo, n, now_ms);
        if (k < 0) break;
        left = k;
        if (k > 0 && !redis_link_load(&r->link)) break;
    }
    left = 0;
    for (int i = 0; i < n; i++) left += todo[i];
    if (left > 0) {
        METRIC_ADD(ratelimit_redis_errors, left); /* a failed connect was logged */
        if (r->link.c) redis_link_fail(&r->link, now_ms, "no answer");
    }
    if (todo != stack) free(todo);
}

static void redis_close(ratelimit_t *rl)
{
    rredis_t *r = (rredis_t *)rl;
    redis_link_release(&r->link);
    free(r->prefix);
    free(r->key);
    free(r);
}

static hr_t redis_open(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len)
{
    const char *a = o->redis && *o->redis ? o->redis : "127.0.0.1:6379";
    rredis_t *r = xcalloc(1, sizeof(*r));
    hr_t h = redis_link_init(&r->link, a, "ratelimit.redis", o->redis_timeout_ms, o->redis_retry_ms,
                             SCRIPT, "ratelimit", "rate limits", "allowing", why, why_len);
    if (h != HR_OK) {
        free(r);
        return h;
    }
    r->prefix = xstrdup(o->redis_prefix ? o->redis_prefix : "herald:rl:");
    if (getrandom(&r->nonce, sizeof(r->nonce), 0) != sizeof(r->nonce)) r->nonce = (uint64_t)hclock_mono_ns();
    *out = &r->base;
    return HR_OK;
}

const ratelimit_ops_t ratelimit_redis_ops = {
    .name = "redis",
    .open = redis_open,
    .check = redis_check,
    .close = redis_close,
};
