/*
 * ratelimit.c - the rate limiter's registry and thin wrappers
 * (ratelimit.h); the backends are ratelimit_local.c and ratelimit_redis.c.
 */
#include "policy/ratelimit_int.h"

#include "metrics/metrics.h"

#include <stdio.h>
#include <string.h>

static const ratelimit_ops_t *const backends[] = {&ratelimit_local_ops, &ratelimit_redis_ops};

static int limit_of(const config_t *cfg, channel_t ch)
{
    switch (ch) {
    case CH_PUSH: return cfg->ratelimit_push;
    case CH_SMS: return cfg->ratelimit_sms;
    case CH_EMAIL: return cfg->ratelimit_email;
    case CH_INAPP: return cfg->ratelimit_inapp;
    case CH_WEBHOOK: return cfg->ratelimit_webhook;
    case CH__COUNT: break;
    }
    return 0;
}

void ratelimit_opts_from_config(const config_t *cfg, channel_t ch, ratelimit_opts_t *o, char *dir,
                                size_t dir_len)
{
    snprintf(dir, dir_len, "%s/ratelimit", cfg->data_dir);
    *o = (ratelimit_opts_t){
        .channel = ch,
        .limit = limit_of(cfg, ch),
        .window_ms = cfg->ratelimit_window_ms,
        .backend = cfg->ratelimit_backend,
        .state_dir = dir,
        .snapshot_ms = cfg->ratelimit_snapshot_ms,
        .redis = cfg->ratelimit_redis,
        .redis_timeout_ms = cfg->ratelimit_redis_timeout_ms,
    };
}

hr_t ratelimit_open_opts(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len)
{
    *out = NULL;
    if (o->limit < 0 || o->window_ms < 1 || (unsigned)o->channel >= CH__COUNT) {
        snprintf(why, why_len, "ratelimit: limit %d per %lld ms is not a limit", o->limit,
                 (long long)o->window_ms);
        return HR_INVALID;
    }
    const char *name = o->backend && *o->backend ? o->backend : "local";
    for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
        if (strcmp(backends[i]->name, name) != 0) continue;
        ratelimit_t *rl = NULL;
        hr_t r = backends[i]->open(o, &rl, why, why_len);
        if (r != HR_OK) return r;
        rl->ops = backends[i];
        rl->ch = o->channel;
        rl->limit = o->limit;
        rl->window_ms = o->window_ms;
        *out = rl;
        return HR_OK;
    }
    snprintf(why, why_len, "ratelimit.backend: unknown backend '%s' (local or redis)", name);
    return HR_INVALID;
}

hr_t ratelimit_open(const config_t *cfg, channel_t ch, ratelimit_t **out, char *why, size_t why_len)
{
    ratelimit_opts_t o;
    char dir[4096];
    ratelimit_opts_from_config(cfg, ch, &o, dir, sizeof(dir));
    return ratelimit_open_opts(&o, out, why, why_len);
}

void ratelimit_close(ratelimit_t *rl)
{
    if (rl) rl->ops->close(rl);
}

hr_t ratelimit_check_batch(ratelimit_t *rl, ratelimit_req_t *reqs, int n, int64_t now_ms)
{
    if (n <= 0) return HR_OK;
    if (rl->limit == 0) {
        for (int i = 0; i < n; i++) reqs[i].allowed = true;
        return HR_OK;
    }
    rl->ops->check(rl, reqs, n, now_ms);
    int denied = 0;
    for (int i = 0; i < n; i++) denied += !reqs[i].allowed;
    if (denied) METRIC_ADD_AT(ratelimit_limited, rl->ch, denied);
    return HR_OK;
}

hr_t ratelimit_check(ratelimit_t *rl, int32_t partition, const char *user, size_t user_len,
                     int64_t now_ms, bool *allowed)
{
    ratelimit_req_t q = {.partition = partition, .user = user, .user_len = user_len};
    hr_t r = ratelimit_check_batch(rl, &q, 1, now_ms);
    *allowed = q.allowed;
    return r;
}

void ratelimit_partition_assigned(ratelimit_t *rl, int32_t partition, int64_t now_ms)
{
    if (rl->ops->assigned) rl->ops->assigned(rl, partition, now_ms);
}

void ratelimit_partition_revoked(ratelimit_t *rl, int32_t partition, int64_t now_ms)
{
    if (rl->ops->revoked) rl->ops->revoked(rl, partition, now_ms);
}

void ratelimit_tick(ratelimit_t *rl, int64_t now_ms)
{
    if (rl->ops->tick) rl->ops->tick(rl, now_ms);
}

const char *ratelimit_backend_name(const ratelimit_t *rl)
{
    return rl->ops->name;
}

int ratelimit_limit(const ratelimit_t *rl)
{
    return rl->limit;
}
