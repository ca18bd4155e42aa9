/*
 * provider_int.h - what a provider implements (provider_ops_t), the base
 * struct it starts with, the helpers it may use, and the registry table.
 * Only src/provider/ and provider tests include this; see provider.h for
 * the contract and docs/internals/provider.md for how to add a provider.
 */
#ifndef HERALD_PROVIDER_INT_H
#define HERALD_PROVIDER_INT_H

#include "provider/provider.h"

typedef struct http_engine http_engine_t;
typedef struct provider provider_t;

/* What a provider gets when opened. All borrowed; valid until its close. */
typedef struct provider_env {
    const char *name;           /* instance name: "sandbox", "webhook", "acme-hooks" */
    channel_t channel;
    const char *data_dir;       /* data_dir setting */
    struct app *app;            /* the process's services; NULL in tests */
    bool null_mode;             /* sandbox.mode=null (benchmarks) */
    /* The instance's section provider.<name>.<key>: NULL-terminated key,
     * value pairs with keys stripped to <key>. Read with provider_conf(). */
    const char *const *kv;
    http_engine_t *engine;      /* the dispatcher thread's engine (NULL unless uses_http) */
    provider_done_fn done;
    void *done_ud;
} provider_env_t;

typedef struct provider_ops {
    const char *name;           /* registry name (provider.<name>.type) */
    /* Keys of its section it accepts besides type and max_in_flight
     * (NULL-terminated); config checks name anything else. */
    const char *const *keys;
    int default_max_in_flight;
    bool uses_http;             /* needs env->engine (the set starts one only then) */
    /* Opens an instance; on failure fills why (naming the key) and returns
     * an error. The base fields are set by the registry after it returns. */
    hr_t (*open)(const provider_env_t *env, provider_t **out, char *why, size_t why_len);
    /* Starts one delivery (the contract above; the registry has already
     * checked the in-flight bound). HR_OK only: per-notification failures
     * are completions. */
    hr_t (*submit)(provider_t *p, const notif_t *n, send_result_t *res, void *cookie);
    /* Completes what is ready without waiting (e.g. the sandbox's write);
     * returns how many. NULL when completions come from the engine. */
    int (*poll)(provider_t *p);
    /* Completes everything still in flight, then frees: what it can finish
     * without waiting as it would have (the sandbox writes its lines), the
     * rest with SEND_RETRY ("shutdown"). */
    void (*close)(provider_t *p);
} provider_ops_t;

/* The base every provider struct starts with. */
struct provider {
    const provider_ops_t *ops;
    const char *name;           /* instance name (owned by the set) */
    provider_done_fn done;
    void *done_ud;
    int in_flight;              /* accepted, not yet completed */
    int max_in_flight;          /* provider.<name>.max_in_flight */
};

/* For providers: delivers the completion of one submit (res filled). */
static inline void provider_complete(provider_t *p, send_result_t *res, void *cookie)
{
    p->in_flight--;
    p->done(p->done_ud, res, cookie);
}

/* For providers: value of key in env's section, or def. */
const char *provider_conf(const provider_env_t *env, const char *key, const char *def);
/* For providers: integer value of key within [min, max], or def; HR_INVALID
 * with why naming provider.<name>.<key> otherwise. */
hr_t provider_conf_int(const provider_env_t *env, const char *key, int64_t def, int64_t min,
                       int64_t max, int64_t *out, char *why, size_t why_len);

/* The provider types, one line each in registry.c. */
extern const provider_ops_t sandbox_provider_ops;
extern const provider_ops_t webhook_provider_ops;
extern const provider_ops_t fcm_provider_ops;
extern const provider_ops_t apns_provider_ops;
extern const provider_ops_t twilio_provider_ops;
extern const provider_ops_t sendgrid_provider_ops;
extern const provider_ops_t smtp_provider_ops;
extern const provider_ops_t inapp_provider_ops;

/* The registry: the type named `type`, or NULL. */
const provider_ops_t *provider_lookup(const char *type);

#endif
