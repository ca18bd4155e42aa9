/*
 * redis_link.h - one hiredis connection to a Redis server, shared by the
 * Redis rate limiter (ratelimit_redis.c) and the cluster-wide provider
 * budget (bucket.c): the address ("host:port", "/path" or "unix:/path"),
 * connect with a timeout, a Lua script loaded on every new connection
 * (EVALSHA needs its sha), and the failure rule both follow: on any
 * failure the connection is dropped, one warning per 10 s is logged, and
 * no reconnect is tried for retry_ms, so an outage costs at most one
 * connect timeout per interval. The callers fail open and count the
 * failures in their own metrics.
 *
 * Threads: one at a time (the owner's lock or its thread).
 */
#ifndef HERALD_REDIS_LINK_H
#define HERALD_REDIS_LINK_H

#include "core/common.h"
#include "core/errlog.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

struct redisContext;
struct redisReply;

typedef struct redis_link {
    char *host;                 /* NULL for a unix socket */
    int port;
    char *path;                 /* unix socket */
    char *addr;                 /* for logs */
    struct timeval timeout;
    int64_t retry_ms;
    const char *script;         /* static storage */
    char sha[41];               /* the script's, once loaded on this connection */
    struct redisContext *c;     /* NULL = not connected */
    int64_t down_until;         /* no reconnect before (now_ms) */
    errlog_t log;
    const char *mod;            /* log module */
    char *what;                 /* what the link serves, for logs */
    const char *fallback;       /* what the caller does meanwhile ("allowing") */
} redis_link_t;

/* Parses addr (config key cfg_key names it in *why when it is not an
 * address) and sets the link up unconnected. timeout_ms <= 0: 100;
 * retry_ms <= 0: 1000. */
hr_t redis_link_init(redis_link_t *l, const char *addr, const char *cfg_key, int timeout_ms,
                     int64_t retry_ms, const char *script, const char *mod, const char *what,
                     const char *fallback, char *why, size_t why_len);
/* Connected with the script loaded: true. false while down (retry_ms after
 * a failure) or when the connect fails (logged, then down). */
bool redis_link_connect(redis_link_t *l, int64_t now_ms);
/* (Re)loads the script on the current connection (after NOSCRIPT: the
 * server restarted or its script cache was flushed). */
bool redis_link_load(redis_link_t *l);
/* A failure of the connection: logged (rate limited), dropped, down for
 * retry_ms. */
void redis_link_fail(redis_link_t *l, int64_t now_ms, const char *what);
/* An answer that is neither the expected one nor NOSCRIPT: logged (rate
 * limited); the connection stays. */
void redis_link_bad_reply(redis_link_t *l, const struct redisReply *y);
/* NOSCRIPT error reply? */
bool redis_link_noscript(const struct redisReply *y);
void redis_link_release(redis_link_t *l);

#endif
