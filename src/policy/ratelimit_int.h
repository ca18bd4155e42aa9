/*
 * ratelimit_int.h - the rate limiter's backend interface (private to
 * src/policy/ratelimit*.c). Backend structs put ratelimit_t first.
 */
#ifndef HERALD_POLICY_RATELIMIT_INT_H
#define HERALD_POLICY_RATELIMIT_INT_H

#include "policy/ratelimit.h"

typedef struct ratelimit_ops {
    const char *name;
    hr_t (*open)(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len);
    /* Sets reqs[i].allowed for each; n >= 1; limit > 0. */
    void (*check)(ratelimit_t *rl, ratelimit_req_t *reqs, int n, int64_t now_ms);
    void (*assigned)(ratelimit_t *rl, int32_t partition, int64_t now_ms);
    void (*revoked)(ratelimit_t *rl, int32_t partition, int64_t now_ms);
    void (*tick)(ratelimit_t *rl, int64_t now_ms);
    void (*close)(ratelimit_t *rl);
} ratelimit_ops_t;

struct ratelimit {
    const ratelimit_ops_t *ops;
    channel_t ch;
    int limit;
    int64_t window_ms;
};

extern const ratelimit_ops_t ratelimit_local_ops;
extern const ratelimit_ops_t ratelimit_redis_ops;

/* Makes a local limiter's table slots hold whole pointers, as it does by
 * itself when malloc returns an address beyond the slots' 48 bits (tests;
 * a no-op for other backends). */
void ratelimit_local_whole_pointers(ratelimit_t *rl);

/* A local limiter's partition writes its journal block as soon as the
 * records of the sends since its last write reach this many bytes, without
 * waiting for the tick: they stay below 256 KiB (and one record) a
 * partition whatever the load, as the list of dirty users did before. */
#define RL_JOURNAL_MAX ((size_t)256 << 10)
/* The largest limit the local backend holds (an entry's ring head and count
 * are 20-bit fields); config.c allows up to 1,000,000. */
#define RL_LIMIT_MAX ((1 << 20) - 1)

/* What a local limiter's users take (for tests and measurements; all 0 for
 * other backends): its entries; the pool's chunks and the bytes of the
 * entries in them (the rest is on the free lists or not carved yet; the
 * few rings too big for the pool come from malloc and are in neither); the
 * tables' slots. */
typedef struct ratelimit_local_mem {
    size_t entries, pool_bytes, pool_live, table_bytes;
} ratelimit_local_mem_t;
void ratelimit_local_memory(ratelimit_t *rl, ratelimit_local_mem_t *m);

/* A local limiter's resolution: send times are held rounded up to this
 * many ms (1 for windows up to 43.7 s; 83 for an hour), so a send leaves
 * the window up to that much less 1 ms late, never early (0 for other
 * backends). */
int64_t ratelimit_local_unit(ratelimit_t *rl);

/* The bytes of the records of a local limiter's partition waiting for the
 * next journal write (for tests; 0 when the partition is not held). */
size_t ratelimit_local_pending(ratelimit_t *rl, int32_t partition);

#endif
