/*
 * redis_link.c - one hiredis connection with the failure rule of the Redis
 * rate limiter and the provider budgets (redis_link.h).
 */
#include "policy/redis_link.h"

#include "core/log.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_INTERVAL_MS 10000

hr_t redis_link_init(redis_link_t *l, const char *addr, const char *cfg_key, int timeout_ms,
                     int64_t retry_ms, const char *script, const char *mod, const char *what,
                     const char *fallback, char *why, size_t why_len)
{
    memset(l, 0, sizeof(*l));
    const char *a = addr && strncmp(addr, "unix:", 5) == 0 ? addr + 5 : addr;
    if (!a || !*a) {
        snprintf(why, why_len, "%s: empty", cfg_key);
        return HR_INVALID;
    }
    if (a[0] == '/') {
        l->path = xstrdup(a);
    } else {
        const char *colon = strrchr(a, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == a || !end || *end || port < 1 || port > 65535) {
            snprintf(why, why_len, "%s: '%s' is not host:port or a socket path", cfg_key, a);
            return HR_INVALID;
        }
        l->host = xstrndup(a, (size_t)(colon - a));
        l->port = (int)port;
    }
    l->addr = xstrdup(a);
    int ms = timeout_ms > 0 ? timeout_ms : 100;
    l->timeout = (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    l->retry_ms = retry_ms > 0 ? retry_ms : 1000;
    l->script = script;
    l->mod = mod;
    l->what = xstrdup(what);
    l->fallback = fallback;
    errlog_init(&l->log, LOG_INTERVAL_MS);
    return HR_OK;
}

void redis_link_fail(redis_link_t *l, int64_t now_ms, const char *what)
{
    const char *err = l->c && l->c->errstr[0] ? l->c->errstr : what;
    int64_t more = errlog_admit(&l->log);
    if (more >= 0)
        log_warn(l->mod, "redis %s (%s): %s; %s (fail open) (%" PRId64 " more in the last %d s)",
                 l->addr, l->what, err, l->fallback, more, errlog_interval_s(&l->log));
    if (l->c) redisFree(l->c);
    l->c = NULL;
    l->sha[0] = 0;
    l->down_until = now_ms + l->retry_ms;
}

bool redis_link_load(redis_link_t *l)
{
    redisReply *y = redisCommand(l->c, "SCRIPT LOAD %s", l->script);
    bool ok = y && y->type == REDIS_REPLY_STRING && y->len == 40;
    if (ok) memcpy(l->sha, y->str, 41);
    if (y) freeReplyObject(y);
    return ok;
}

bool redis_link_connect(redis_link_t *l, int64_t now_ms)
{
    if (l->c) return true;
    if (now_ms < l->down_until) return false;
    l->c = l->path ? redisConnectUnixWithTimeout(l->path, l->timeout)
                   : redisConnectWithTimeout(l->host, l->port, l->timeout);
    if (!l->c || l->c->err || redisSetTimeout(l->c, l->timeout) != REDIS_OK || !redis_link_load(l)) {
        redis_link_fail(l, now_ms, "cannot connect");
        return false;
    }
    log_info(l->mod, "%s in redis %s", l->what, l->addr);
    return true;
}

bool redis_link_noscript(const redisReply *y)
{
    return y && y->type == REDIS_REPLY_ERROR && strncmp(y->str, "NOSCRIPT", 8) == 0;
}

void redis_link_bad_reply(redis_link_t *l, const redisReply *y)
{
    int64_t more = errlog_admit(&l->log);
    if (more >= 0)
        log_warn(l->mod, "redis %s answered %s (%s); %s (%" PRId64 " more in the last %d s)", l->addr,
                 y && y->type == REDIS_REPLY_ERROR ? y->str : "an unexpected reply", l->what,
                 l->fallback, more, errlog_interval_s(&l->log));
}

void redis_link_release(redis_link_t *l)
{
    if (l->c) redisFree(l->c);
    l->c = NULL;
    if (l->addr) errlog_release(&l->log);
    free(l->host);
    free(l->path);
    free(l->addr);
    free(l->what);
    memset(l, 0, sizeof(*l));
}
