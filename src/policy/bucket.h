/*
 * bucket.h - provider token buckets: a provider (or a provider account)
 * accepts at most `rate` requests per second on average, and up to `burst`
 * at once after a quiet spell.
 *
 *     int64_t wait = bucket_take(&b, now_ms, 1);
 *     if (wait > 0) -> not now: come back in `wait` ms (pause, do not spin)
 *
 * Exact integer arithmetic: tokens are counted in thousandths, and a rate of
 * R per second refills R thousandths per millisecond, so nothing drifts.
 *
 * Defaults per provider type (bucket_default_rate): fcm 500/s, apns 1000/s,
 * ses 100/s, sns 200/s, twilio 100/s per account (one provider instance per
 * account: an SMS pool of several accounts has a bucket each); other types
 * (sandbox, webhook) are not limited unless configured. Configuration:
 * provider.<name>.rate and provider.<name>.burst (config_provider_kv).
 *
 * Threads: a bucket_t belongs to one thread (the dispatcher that owns the
 * provider set); no locking. With pipeline.workers > 1 each worker has its
 * own provider set, so give each bucket rate / workers (bucket_conf's
 * `share` argument does that division).
 *
 * Cluster-wide budgets (budget.redis set, bucket_share_config): N herald
 * processes together respect one provider instance's limit instead of N
 * times it. The bucket then lives in Redis, one hash per provider instance
 * (herald:bucket:<name>), with the whole cluster's rate and burst, and is
 * refilled and taken by one Lua script (atomic, exact in thousandths, like
 * the local one). So that every notification does not cost a round trip,
 * a take asks for a lease of up to rate/20 tokens (50 ms worth, at least
 * n) and spends it locally; a process holds at most that much unspent.
 * When Redis cannot be reached (connect, timeout, an error reply) takes are
 * granted (fail open: deliver rather than stall), counted in
 * herald_bucket_redis_errors_total, logged once per 10 s, and no reconnect
 * is tried for a second. Time is the caller's clock, as for the local
 * bucket (hosts keep their clocks in sync).
 */
#ifndef HERALD_POLICY_BUCKET_H
#define HERALD_POLICY_BUCKET_H

#include "config/config.h"

#include <stdint.h>

typedef struct bucket_redis bucket_redis_t;

typedef struct bucket {
    int64_t rate;       /* tokens per second; 0 = unlimited */
    int64_t cap_m;      /* burst, in thousandths of a token */
    int64_t tokens_m;   /* thousandths; may go below 0 after an oversized take */
    int64_t last_ms;    /* when tokens_m was last brought up to date */
    /* cluster-wide budget in Redis (bucket_share), else NULL */
    bucket_redis_t *shared;
} bucket_t;

/* A full bucket at now_ms. rate: tokens per second (0 = unlimited, every
 * take is granted); burst: the most tokens the bucket holds (< 1 = rate,
 * i.e. one second's worth, at least 1). */
void bucket_init(bucket_t *b, int64_t rate, int64_t burst, int64_t now_ms);

/* Takes n tokens (n >= 1). Returns 0 when granted (the tokens are taken),
 * or the milliseconds until n tokens will be there (>= 1; nothing taken:
 * ask again then). A take of more than the burst is granted once the
 * bucket is full and leaves it in debt, so the average rate still holds.
 * Time going backwards is treated as no time passing. */
int64_t bucket_take(bucket_t *b, int64_t now_ms, int n);

/* Gives back n tokens taken by a bucket_take whose request was not made
 * after all (a later policy step refused it), up to the burst. */
void bucket_refund(bucket_t *b, int n);

/* Tokens available at now_ms (whole tokens, rounded down; for tests and
 * logs). */
int64_t bucket_available(bucket_t *b, int64_t now_ms);

/* Makes b draw from the cluster-wide budget of provider instance `name`
 * in the Redis at addr ("HOST:PORT", a socket path or "unix:PATH"), with
 * the whole cluster's rate and burst (not divided among workers or
 * processes). timeout_ms: connect and command timeout. HR_INVALID with why
 * when addr is malformed. Redis is reached lazily, by the first take. */
hr_t bucket_share(bucket_t *b, const char *addr, const char *name, int64_t rate, int64_t burst,
                  int timeout_ms, char *why, size_t why_len);
/* bucket_share from the configuration: budget.redis (empty: the bucket
 * stays local, HR_OK) and the instance's undivided rate and burst (a rate
 * of 0 stays local: unlimited). */
hr_t bucket_share_config(bucket_t *b, const config_t *cfg, const char *name, const char *type,
                         char *why, size_t why_len);
/* Frees what bucket_share made (a local bucket has nothing). */
void bucket_release(bucket_t *b);

/* The default rate of a provider type ("fcm", "apns", "ses", "sns",
 * "twilio"); 0 (unlimited) for any other type. */
int64_t bucket_default_rate(const char *type);

/* The rate and burst of provider instance `name` of type `type`:
 * provider.<name>.rate / provider.<name>.burst from the configuration's
 * provider pairs, else the type's default (burst defaults to the rate).
 * Both are divided by share (>= 1: the workers that each hold a bucket for
 * the same account), rounding up. HR_INVALID with why naming the key when
 * a value is not a non-negative integer. */
hr_t bucket_conf(const config_t *cfg, const char *name, const char *type, int share,
                 int64_t *rate, int64_t *burst, char *why, size_t why_len);

#endif
