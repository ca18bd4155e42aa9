/*
 * ratelimit.h - per-recipient sliding-window rate limits per channel: at
 * most `limit` notifications to one user on one channel in any window of
 * window_ms (defaults per hour: push 10, email 3, sms 2, inapp 20,
 * webhook 60; config keys ratelimit.<channel>, ratelimit.window_ms).
 *
 * One interface, two backends (ratelimit.backend):
 *  - local (ratelimit_local.c): the state lives with the dispatcher that
 *    owns the input partition, which sees all of one user's sends,
 *    because notifications are keyed by recipient, so all of one user's
 *    notifications of a channel arrive on one partition and thus at one
 *    owner. Conservative to a unit: a send time is held rounded up to
 *    ratelimit_local_unit() ms (1 for windows up to 43.7 s, 83 for an
 *    hour), so it counts up to that much less 1 ms longer, never shorter
 *    (never more than `limit` in any window). Kept across restarts and
 *    rebalances per (channel, partition) as a base file plus a journal:
 *    every ratelimit.snapshot_ms the users that sent since the last write
 *    are appended to the journal; the base is rewritten (compacted) when
 *    the journal outgrows it, on revoke and on close; both are read on
 *    assign. A crash loses at most snapshot_ms of sends.
 *  - redis (ratelimit_redis.c): an atomic Lua sliding window per user (a
 *    ZSET of send times) through hiredis; shared by every process. When
 *    Redis cannot be reached the check fails open (allowed), counts
 *    herald_ratelimit_redis_errors_total and logs once per 10 s.
 *
 * A check that allows also counts the send (the slot is taken); a denied
 * check takes nothing. The caller gives a denied notification the status
 * rate_limited. Denials count herald_ratelimit_limited_total{channel}.
 *
 * The window: a send at time t counts against checks at now while
 * t > now - window_ms (the local backend: while t' > now - window_ms, t'
 * being t rounded up to its unit).
 *
 * The Redis backend writes to a socket that may break: the process must
 * ignore SIGPIPE (herald serve does).
 *
 * Threads: a ratelimit_t belongs to one thread (the dispatcher's; a
 * dispatcher worker opens its own). The Redis backend blocks that thread for
 * at most ratelimit.redis_timeout_ms per round trip (one per batch).
 */
#ifndef HERALD_POLICY_RATELIMIT_H
#define HERALD_POLICY_RATELIMIT_H

#include "config/config.h"
#include "model/notif.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit ratelimit_t;

typedef struct ratelimit_opts {
    channel_t channel;
    int limit;                  /* per window; 0 = unlimited */
    int64_t window_ms;
    const char *backend;        /* "local" or "redis" */
    /* local */
    const char *state_dir;      /* snapshot directory (created); NULL = state not kept */
    int64_t snapshot_ms;        /* ratelimit_tick writes snapshots this often; 0 = only on revoke/close */
    /* redis */
    const char *redis;          /* "host:port", "/path/to.sock" or "unix:/path/to.sock" */
    int redis_timeout_ms;       /* connect and command timeout */
    int64_t redis_retry_ms;     /* after a failure, no reconnect before this (0 = 1000) */
    const char *redis_prefix;   /* key prefix; NULL = "herald:rl:" */
} ratelimit_opts_t;

/* One check of a batch. */
typedef struct ratelimit_req {
    int32_t partition;          /* the input partition of the record (local backend's owner key) */
    const char *user;           /* recipient id, user_len bytes */
    size_t user_len;
    bool allowed;               /* out */
} ratelimit_req_t;

/* The options of channel ch from the configuration. Strings point into
 * cfg, except state_dir, which is written into dir (dir_len bytes):
 * <data_dir>/ratelimit. */
void ratelimit_opts_from_config(const config_t *cfg, channel_t ch, ratelimit_opts_t *o, char *dir,
                                size_t dir_len);

/* Opens the limiter of one channel. HR_INVALID (why filled) for an
 * unknown backend or a bad Redis address. A Redis server that is down at
 * open is not an error (fail open until it comes up). */
hr_t ratelimit_open(const config_t *cfg, channel_t ch, ratelimit_t **out, char *why, size_t why_len);
hr_t ratelimit_open_opts(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len);
/* Writes the local snapshots of every partition it holds, then frees. */
void ratelimit_close(ratelimit_t *rl);

/* Checks (and on success counts) one send to user at now_ms. HR_OK with
 * *allowed; never fails for an outage (fail open). */
hr_t ratelimit_check(ratelimit_t *rl, int32_t partition, const char *user, size_t user_len,
                     int64_t now_ms, bool *allowed);
/* Checks reqs[0..n) in order (one Redis round trip for all); sets each
 * .allowed. Two requests for one user in a batch count like two checks. */
hr_t ratelimit_check_batch(ratelimit_t *rl, ratelimit_req_t *reqs, int n, int64_t now_ms);

/* Partition ownership (stage_def_t.partition_changed). Local backend:
 * assigned loads the partition's snapshot (replacing what was held);
 * revoked writes it and forgets the partition's users. A partition checked
 * without an assign is loaded on first use. Redis: no-ops. */
void ratelimit_partition_assigned(ratelimit_t *rl, int32_t partition, int64_t now_ms);
void ratelimit_partition_revoked(ratelimit_t *rl, int32_t partition, int64_t now_ms);
/* Call once per batch: the local backend appends the users that sent to
 * the journal (or compacts) every snapshot_ms, and forgets users with
 * nothing in the window every max(snapshot_ms, window_ms / 8). */
void ratelimit_tick(ratelimit_t *rl, int64_t now_ms);

const char *ratelimit_backend_name(const ratelimit_t *rl);
int ratelimit_limit(const ratelimit_t *rl);

#endif
