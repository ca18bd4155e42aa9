/*
 * settings.h - a provider instance's settings read outside its open() (the
 * delivery callbacks of src/http/api_callbacks.c verify with the instance's
 * auth token or public key), and secrets read from a file or a value.
 *
 * Secrets (auth tokens, API keys) never appear in logs or error texts: the
 * errors here name the key and the file, never the content.
 *
 * Threads: any; config_t is read only.
 */
#ifndef HERALD_PROVIDER_SETTINGS_H
#define HERALD_PROVIDER_SETTINGS_H

#include "config/config.h"
#include "core/common.h"

/* provider.<instance>.<key>, or NULL. Borrowed from cfg. */
const char *provider_setting(const config_t *cfg, const char *instance, const char *key);
/* The instance's type: provider.<instance>.type, else the instance name
 * itself (provider.c's rule). Borrowed from cfg or instance. */
const char *provider_instance_type(const config_t *cfg, const char *instance);

/* Largest secret file read. */
#define PROVIDER_SECRET_MAX 65536

/* The secret of an instance from its `<file_key>` setting (the file's
 * content, surrounding white space trimmed) or else its `<value_key>`
 * setting: *out malloc'd (free() it; clear it first if you like), NULL
 * when neither is set. HR_INVALID with why naming the key and path when the
 * file cannot be read, is empty or is over PROVIDER_SECRET_MAX. `get`
 * reads a setting (provider_conf for an open provider, a closure over
 * provider_setting for the callbacks). */
typedef const char *(*provider_get_fn)(const void *ctx, const char *key);
hr_t provider_secret(provider_get_fn get, const void *ctx, const char *name, const char *file_key,
                     const char *value_key, char **out, char *why, size_t why_len);

/* The provider_get_fn of an open provider: ctx is its provider_env_t. */
const char *provider_env_get(const void *env, const char *key);

/* Overwrites a secret's bytes and frees it; NULL is a no-op. */
void provider_secret_free(char *s);

#endif
