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

#include "core/errlog.h"
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
    char *host;                 /* NULL for a unix socket */
    int port;
    char *path;                 /* unix socket */
    char *prefix;
    char *addr;                 /* for logs */
    struct timeval timeout;
    int64_t retry_ms;
    redisContext *c;            /* NULL = not connected */
    char sha[41];               /* the script's, once loaded on this connection */
    int64_t down_until;         /* no reconnect before (now_ms) */
    uint64_t nonce, seq;        /* unique members */
    errlog_t log;
    char *key;                  /* scratch */
    size_t key_cap;
} rredis_t;

static void fail(rredis_t *r, int64_t now_ms, int count, const char *what)
{
    METRIC_ADD(ratelimit_redis_errors, count);
    const char *err = r->c && r->c->errstr[0] ? r->c->errstr : what;
    int64_t more = errlog_admit(&r->log);
    if (more >= 0)
            log_warn("ratelimit", "redis %s: %s; allowing (fail open) (%" PRId64 " more in the last %d s)",
                 r->addr, err, more, errlog_interval_s(&r->log));
    if (r->c) redisFree(r->c);
    r->c = NULL;
    r->sha[0] = 0;
    r->down_until = now_ms + r->retry_ms;
}

static bool load_script(rredis_t *r)
{
    redisReply *y = redisCommand(r->c, "SCRIPT LOAD %s", SCRIPT);
    bool ok = y && y->type == REDIS_REPLY_STRING && y->len == 40;
    if (ok) memcpy(r->sha, y->str, 41);
    if (y) freeReplyObject(y);
    return ok;
}

static bool connect_now(rredis_t *r, int64_t now_ms)
{
    if (r->c) return true;
    if (now_ms < r->down_until) return false;
    r->c = r->path ? redisConnectUnixWithTimeout(r->path, r->timeout)
                   : redisConnectWithTimeout(r->host, r->port, r->timeout);
    if (!r->c || r->c->err || redisSetTimeout(r->c, r->timeout) != REDIS_OK || !load_script(r)) {
        fail(r, now_ms, 0, "cannot connect");
        return false;
    }
    log_info("ratelimit", "connected to redis %s", r->addr);
    return true;
}

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
    redisAppendCommand(r->c, "EVALSHA %s 1 %b %s %s %s %s", r->sha, key, kl, now, win, lim, member);
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
        if (redisGetReply(r->c, (void **)&y) != REDIS_OK || !y) return -1;
        if (y->type == REDIS_REPLY_INTEGER) {
            reqs[i].allowed = y->integer != 0;
            todo[i] = false;
        } else if (y->type == REDIS_REPLY_ERROR && strncmp(y->str, "NOSCRIPT", 8) == 0) {
            noscript++; /* the script cache was flushed (a restart): stays todo */
        } else {
            /* an error reply (OOM, a key of another type): this one fails open */
            METRIC_INC(ratelimit_redis_errors);
            int64_t more = errlog_admit(&r->log);
            if (more >= 0)
                log_warn("ratelimit", "redis answered %s; allowing (%" PRId64 " more in the last %d s)",
                         y->type == REDIS_REPLY_ERROR ? y->str : "an unexpected reply", more,
                         errlog_interval_s(&r->log));
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
        if (!connect_now(r, now_ms)) break;
        int k = round_trip(r, reqs, todo, n, now_ms);
        if (k < 0) break;
        left = k;
        if (k > 0 && !load_script(r)) break;
    }
    left = 0;
    for (int i = 0; i < n; i++) left += todo[i];
    if (left > 0) {
        if (r->c) fail(r, now_ms, left, "no answer");
        else METRIC_ADD(ratelimit_redis_errors, left); /* down: counted, logged at the failure */
    }
    if (todo != stack) free(todo);
}

static void redis_close(ratelimit_t *rl)
{
    rredis_t *r = (rredis_t *)rl;
    if (r->c) redisFree(r->c);
    errlog_release(&r->log);
    free(r->host);
    free(r->path);
    free(r->prefix);
    free(r->addr);
    free(r->key);
    free(r);
}

static hr_t redis_open(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len)
{
    const char *a = o->redis && *o->redis ? o->redis : "127.0.0.1:6379";
    rredis_t *r = xcalloc(1, sizeof(*r));
    if (strncmp(a, "unix:", 5) == 0) a += 5;
    if (a[0] == '/') {
        r->path = xstrdup(a);
    } else {
        const char *colon = strrchr(a, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == a || !end || *end || port < 1 || port > 65535) {
            snprintf(why, why_len, "ratelimit.redis: '%s' is not host:port or a socket path", a);
            free(r);
            return HR_INVALID;
        }
        r->host = xstrndup(a, (size_t)(colon - a));
        r->port = (int)port;
    }
    r->addr = xstrdup(a);
    int ms = o->redis_timeout_ms > 0 ? o->redis_timeout_ms : 100;
    r->timeout = (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    r->retry_ms = o->redis_retry_ms > 0 ? o->redis_retry_ms : 1000;
    r->prefix = xstrdup(o->redis_prefix ? o->redis_prefix : "herald:rl:");
    if (getrandom(&r->nonce, sizeof(r->nonce), 0) != sizeof(r->nonce)) r->nonce = (uint64_t)hclock_mono_ns();
    errlog_init(&r->log, 10000);
    *out = &r->base;
    return HR_OK;
}

const ratelimit_ops_t ratelimit_redis_ops = {
    .name = "redis",
    .open = redis_open,
    .check = redis_check,
    .close = redis_close,
};
