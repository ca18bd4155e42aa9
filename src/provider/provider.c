/*
 * provider.c - the registry of provider types, config checks, and the
 * provider set one dispatcher thread delivers through.
 *
 * DESIGN. Configuration: an instance <name> is configured by the keys
 * provider.<name>.<key>; its type is provider.<name>.type, or <name>
 * itself (so "provider.webhook.url = ..." needs no type line, and two
 * webhook instances can be "hooks-a" and "hooks-b" of type webhook).
 * channel.<channel>.providers lists the instances a channel uses, default
 * "sandbox" ("inapp" for the in-app channel: its inbox). The set counts requests in flight per provider and returns
 * HR_AGAIN at the provider's bound, so no provider sees more than
 * max_in_flight at once and every provider gets the bound for free.
 */
#include "provider/provider_int.h"

#include "core/hash.h"

#include "core/log.h"
#include "policy/breaker.h"
#include "policy/bucket.h"
#include "provider/http.h"
#include "provider/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry: one line per provider type. */
static const provider_ops_t *const registry[] = {
    &sandbox_provider_ops,
    &webhook_provider_ops,
    &fcm_provider_ops,
    &apns_provider_ops,
    &twilio_provider_ops,
    &sendgrid_provider_ops,
    &smtp_provider_ops,
    &inapp_provider_ops,
};

#define SET_MAX 8               /* providers one channel may list */
#define IN_FLIGHT_MAX 100000

static const char *const class_names[SEND__COUNT] = {
    [SEND_OK] = "ok",
    [SEND_RETRY] = "retry",
    [SEND_THROTTLED] = "throttled",
    [SEND_PERMANENT] = "permanent",
    [SEND_FATAL] = "fatal",
};

const char *send_class_name(send_class_t c)
{
    return (unsigned)c < SEND__COUNT ? class_names[c] : "unknown";
}

void send_result_set(send_result_t *res, send_class_t cls, int code, const char *fmt, ...)
{
    res->cls = cls;
    res->code = code;
    res->address_invalid = false;
    res->retry_after_ms = 0;
    res->msg_id[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

const provider_ops_t *provider_lookup(const char *type)
{
    for (size_t i = 0; i < ARRAY_LEN(registry); i++)
        if (strcmp(registry[i]->name, type) == 0) return registry[i];
    return NULL;
}

const char *provider_conf(const provider_env_t *env, const char *key, const char *def)
{
    for (const char *const *kv = env->kv; kv && kv[0]; kv += 2)
        if (strcmp(kv[0], key) == 0) return kv[1];
    return def;
}

hr_t provider_conf_int(const provider_env_t *env, const char *key, int64_t def, int64_t min,
                       int64_t max, int64_t *out, char *why, size_t why_len)
{
    const char *v = provider_conf(env, key, NULL);
    if (!v) {
        *out = def;
        return HR_OK;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < min || x > max) {
        snprintf(why, why_len, "provider.%s.%s: '%s' is not an integer in [%lld, %lld]", env->name,
                 key, v, (long long)min, (long long)max);
        return HR_INVALID;
    }
    *out = x;
    return HR_OK;
}

/* ------------------------------------------------------------- config */

/* Value of the whole key `key` in the passthrough list, or NULL. */
static const char *kv_get(const config_t *cfg, const char *key)
{
    for (const char *const *kv = config_provider_kv(cfg); kv[0]; kv += 2)
        if (strcmp(kv[0], key) == 0) return kv[1];
    return NULL;
}

/* The provider instance a channel uses when channel.<ch>.providers is not
 * set: the in-app channel stores its notifications in the inbox (inapp.c),
 * every other channel writes the sandbox file. sandbox.mode=null
 * (benchmarks: record nothing) keeps the in-app channel on the sandbox. */
static const char *channel_default_provider(const config_t *cfg, channel_t ch)
{
    bool null_mode = cfg->provider_mode && strcmp(cfg->provider_mode, "null") == 0;
    return ch == CH_INAPP && !null_mode ? "inapp" : "sandbox";
}

/* Splits channel ch's provider list into names[] (each NUL-terminated in
 * store); returns the count, or -1 when malformed. */
static int route_names(const config_t *cfg, channel_t ch, char *store, size_t cap,
                       const char *names[SET_MAX])
{
    char key[64];
    snprintf(key, sizeof(key), "channel.%s.providers", channel_name(ch));
    const char *list = kv_get(cfg, key);
    snprintf(store, cap, "%s", list ? list : channel_default_provider(cfg, ch));
    int n = 0;
    for (char *save = NULL, *t = strtok_r(store, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (n == SET_MAX) return -1;
        names[n++] = t;
    }
    return n > 0 ? n : -1;
}

hr_t provider_config_check(const config_t *cfg, char *why, size_t why_len)
{
    for (const char *const *kv = config_provider_kv(cfg); kv[0]; kv += 2) {
        const char *key = kv[0];
        if (strncmp(key, "channel.", 8) == 0) {
            const char *ch = key + 8, *dot = strchr(ch, '.');
            if (channel_parse(ch, (size_t)(dot - ch)) < 0) {
                snprintf(why, why_len, "%s: unknown channel", key);
                return HR_INVALID;
            }
            if (strcmp(dot + 1, "providers") != 0) {
                snprintf(why, why_len, "unknown configuration key '%s'", key);
                return HR_INVALID;
            }
            continue;
        }
        /* provider.<name>.<key> */
        const char *name = key + 9, *dot = strchr(name, '.');
        char inst[128];
        snprintf(inst, sizeof(inst), "%.*s", (int)(dot - name), name);
        const char *type = provider_instance_type(cfg, inst);
        const provider_ops_t *ops = provider_lookup(type);
        if (!ops) {
            snprintf(why, why_len, "provider.%s: unknown provider type '%s'", inst, type);
            return HR_INVALID;
        }
        const char *k = dot + 1;
        bool known = strcmp(k, "type") == 0 || strcmp(k, "max_in_flight") == 0 ||
                     strcmp(k, "rate") == 0 || strcmp(k, "burst") == 0 || /* policy/bucket.h */
                     strcmp(k, "breaker_window_ms") == 0 || strcmp(k, "breaker_min_requests") == 0 ||
                     strcmp(k, "breaker_error_pct") == 0 || strcmp(k, "breaker_cooldown_ms") == 0 ||
                     strcmp(k, "breaker_probes") == 0; /* policy/breaker.h, ranges checked at open */
        for (const char *const *a = ops->keys; a && *a && !known; a++) known = strcmp(*a, k) == 0;
        if (!known) {
            snprintf(why, why_len, "unknown configuration key '%s' (provider type %s)", key, type);
            return HR_INVALID;
        }
        if (strcmp(k, "max_in_flight") == 0) {
            char *end;
            long long v = strtoll(kv[1], &end, 10);
            if (end == kv[1] || *end || v < 1 || v > IN_FLIGHT_MAX) {
                snprintf(why, why_len, "%s: '%s' is not an integer in [1, %d]", key, kv[1], IN_FLIGHT_MAX);
                return HR_INVALID;
            }
        }
    }
    for (int c = 0; c < CH__COUNT; c++) {
        char store[512];
        const char *names[SET_MAX];
        int n = route_names(cfg, (channel_t)c, store, sizeof(store), names);
        if (n < 0) {
            snprintf(why, why_len, "channel.%s.providers: expected 1 to %d provider names",
                     channel_name((channel_t)c), SET_MAX);
            return HR_INVALID;
        }
        for (int i = 0; i < n; i++) {
            const char *type = provider_instance_type(cfg, names[i]);
            if (!provider_lookup(type)) {
                snprintf(why, why_len, "channel.%s.providers: '%s' is not a provider type (set provider.%s.type)",
                         channel_name((channel_t)c), names[i], names[i]);
                return HR_INVALID;
            }
        }
    }
    return HR_OK;
}

/* ---------------------------------------------------------------- set */

struct provider_set {
    channel_t ch;
    http_engine_t *engine;      /* NULL until a provider that speaks HTTP opens */
    int n;
    provider_t *p[SET_MAX];
    char *names[SET_MAX];
    const char **kv[SET_MAX];   /* each instance's section, keys stripped */
    bucket_t bucket[SET_MAX];   /* per instance: provider.<name>.rate/burst */
    breaker_t *breaker[SET_MAX];/* per instance: provider.<name>.breaker_* */
};

/* The breaker of one instance from provider.<name>.breaker_window_ms,
 * _min_requests, _error_pct, _cooldown_ms, _probes (defaults:
 * policy/breaker.h). */
static hr_t breaker_of(const provider_env_t *env, channel_t ch, breaker_t **out, char *why,
                       size_t why_len)
{
    breaker_opts_t o;
    breaker_opts_default(&o);
    o.name = env->name;
    o.channel = (int)ch;
    int64_t win, minr, pct, cool, probes;
    hr_t r = provider_conf_int(env, "breaker_window_ms", o.window_ms, 10, INT64_C(86400000), &win, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "breaker_min_requests", o.min_requests, 1, 1000000, &minr, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "breaker_error_pct", o.error_pct, 1, 100, &pct, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "breaker_cooldown_ms", o.cooldown_ms, 1, INT64_C(86400000), &cool, why, why_len);
    if (r == HR_OK) r = provider_conf_int(env, "breaker_probes", o.probes, 1, 1000, &probes, why, why_len);
    if (r != HR_OK) return r;
    o.window_ms = win;
    o.min_requests = (int)minr;
    o.error_pct = (int)pct;
    o.cooldown_ms = cool;
    o.probes = (int)probes;
    *out = breaker_new(&o);
    return HR_OK;
}

/* The pairs of provider.<name>.*, keys stripped; borrowed from cfg. */
static const char **section_of(const config_t *cfg, const char *name)
{
    size_t pl = strlen("provider.") + strlen(name) + 1, n = 0;
    const char *const *all = config_provider_kv(cfg);
    for (const char *const *kv = all; kv[0]; kv += 2) n++;
    const char **out = xcalloc(2 * n + 1, sizeof(*out));
    size_t k = 0;
    for (const char *const *kv = all; kv[0]; kv += 2) {
        if (strncmp(kv[0], "provider.", 9) == 0 && strncmp(kv[0] + 9, name, pl - 10) == 0 &&
            kv[0][pl - 1] == '.') {
            out[k++] = kv[0] + pl;
            out[k++] = kv[1];
        }
    }
    out[k] = NULL;
    return out;
}

hr_t provider_set_open(const config_t *cfg, struct app *app, channel_t ch, provider_done_fn done,
                       void *ud, provider_set_t **out, char *why, size_t why_len)
{
    hr_t r = provider_config_check(cfg, why, why_len);
    if (r != HR_OK) return r;
    provider_set_t *s = xcalloc(1, sizeof(*s));
    s->ch = ch;
    char store[512];
    const char *names[SET_MAX];
    int n = route_names(cfg, ch, store, sizeof(store), names);
    for (int i = 0; i < n; i++) {
        const provider_ops_t *ops = provider_lookup(provider_instance_type(cfg, names[i]));
        /* The engine (and libcurl) only when a provider speaks HTTP. */
        if (ops->uses_http && !s->engine && (r = http_engine_new(&s->engine)) != HR_OK) {
            snprintf(why, why_len, "cannot start the HTTP engine");
            goto out;
        }
        s->names[i] = xstrdup(names[i]);
        s->kv[i] = section_of(cfg, names[i]);
        provider_env_t env = {
            .name = s->names[i],
            .channel = ch,
            .data_dir = cfg->data_dir,
            .app = app,
            .null_mode = cfg->provider_mode && strcmp(cfg->provider_mode, "null") == 0,
            .kv = s->kv[i],
            .engine = s->engine,
            .done = done,
            .done_ud = ud,
        };
        int64_t max;
        r = provider_conf_int(&env, "max_in_flight", ops->default_max_in_flight, 1, IN_FLIGHT_MAX,
                              &max, why, why_len);
        int64_t rate = 0, burst = 0;
        if (r == HR_OK)
            r = bucket_conf(cfg, names[i], provider_instance_type(cfg, names[i]), cfg->workers_per_stage, &rate,
                            &burst, why, why_len);
        if (r == HR_OK) r = breaker_of(&env, ch, &s->breaker[i], why, why_len);
        if (r == HR_OK) r = ops->open(&env, &s->p[i], why, why_len);
        if (r != HR_OK) {
            breaker_free(s->breaker[i]);
            s->breaker[i] = NULL;
            goto out;
        }
        bucket_init(&s->bucket[i], rate, burst, hclock_now_ms());
        s->n = i + 1;
        provider_t *p = s->p[i];
        p->ops = ops;
        p->name = s->names[i];
        p->done = done;
        p->done_ud = ud;
        p->in_flight = 0;
        p->max_in_flight = (int)max;
        /* budget.redis: one budget for every process (policy/bucket.h) */
        r = bucket_share_config(&s->bucket[i], cfg, names[i], provider_instance_type(cfg, names[i]), why,
                                why_len);
        if (r != HR_OK) goto out;
    }
out:
    if (r != HR_OK) {
        for (int i = n - 1; i >= 0; i--) {
            if (i < s->n) s->p[i]->ops->close(s->p[i]);
            if (i < s->n) breaker_free(s->breaker[i]);
            if (i < s->n) bucket_release(&s->bucket[i]);
            free(s->names[i]);
            free(s->kv[i]);
        }
        s->n = 0;
        http_engine_free(s->engine);
        free(s);
        return r;
    }
    *out = s;
    return HR_OK;
}

/* Push: the instance named like the device's platform (apns, fcm), else
 * the first. Other channels with several instances form a pool of
 * accounts (SMS over several Twilio accounts): a hash of the user id picks
 * one, so a user's notifications keep one account and their order. */
int provider_set_route(const provider_set_t *s, const notif_t *n)
{
    if (s->n <= 1) return 0;
    if (n->platform.n) {
        for (int i = 0; i < s->n; i++)
            if (strlen(s->names[i]) == n->platform.n &&
                memcmp(s->names[i], n->platform.p, n->platform.n) == 0)
                return i;
    }
    if (n->channel == CH_PUSH || !n->user_id.n) return 0;
    return (int)(fnv1a64(n->user_id.p, n->user_id.n) % (uint64_t)s->n);
}

static provider_t *route(provider_set_t *s, const notif_t *n)
{
    return s->p[provider_set_route(s, n)];
}

int provider_set_count(const provider_set_t *s)
{
    return s->n;
}

bucket_t *provider_set_bucket(provider_set_t *s, int i)
{
    return &s->bucket[i];
}

breaker_t *provider_set_breaker(provider_set_t *s, int i)
{
    return s->breaker[i];
}

hr_t provider_set_submit(provider_set_t *s, const notif_t *n, send_result_t *res, void *cookie)
{
    provider_t *p = route(s, n);
    if (p->in_flight >= p->max_in_flight) return HR_AGAIN;
    p->in_flight++;
    hr_t r = p->ops->submit(p, n, res, cookie);
    if (r != HR_OK) p->in_flight--; /* not accepted: no completion */
    return r;
}

int provider_set_poll(provider_set_t *s, int timeout_ms)
{
    int got = 0;
    for (int i = 0; i < s->n; i++)
        if (s->p[i]->ops->poll) got += s->p[i]->ops->poll(s->p[i]);
    if (s->engine && http_engine_active(s->engine) > 0)
        got += http_engine_run(s->engine, got ? 0 : timeout_ms);
    return got;
}

int provider_set_in_flight(const provider_set_t *s)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) n += s->p[i]->in_flight;
    return n;
}

void provider_set_close(provider_set_t *s)
{
    if (!s) return;
    int left = provider_set_in_flight(s);
    if (left)
        log_warn("provider", "%s: %d requests still in flight at close; completing them",
                 channel_name(s->ch), left);
    for (int i = s->n - 1; i >= 0; i--) {
        s->p[i]->ops->close(s->p[i]);
        breaker_free(s->breaker[i]);
        bucket_release(&s->bucket[i]);
        free(s->names[i]);
        free(s->kv[i]);
    }
    http_engine_free(s->engine);
    free(s);
}
