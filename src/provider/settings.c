/*
 * settings.c - provider settings outside open() and secrets from files
 * (settings.h).
 */
#include "provider/settings.h"

#include "provider/provider_int.h"

#include "core/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *provider_setting(const config_t *cfg, const char *instance, const char *key)
{
    char full[256];
    int w = snprintf(full, sizeof(full), "provider.%s.%s", instance, key);
    if (w < 0 || (size_t)w >= sizeof(full)) return NULL;
    for (const char *const *kv = config_provider_kv(cfg); kv[0]; kv += 2)
        if (strcmp(kv[0], full) == 0) return kv[1];
    return NULL;
}

const char *provider_instance_type(const config_t *cfg, const char *instance)
{
    const char *t = provider_setting(cfg, instance, "type");
    return t ? t : instance;
}

const char *provider_env_get(const void *env, const char *key)
{
    return provider_conf(env, key, NULL);
}

void provider_secret_free(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = '\0';
    free(s);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

hr_t provider_secret(provider_get_fn get, const void *ctx, const char *name, const char *file_key,
                     const char *value_key, char **out, char *why, size_t why_len)
{
    *out = NULL;
    const char *path = file_key ? get(ctx, file_key) : NULL;
    if (!path || !*path) {
        const char *v = value_key ? get(ctx, value_key) : NULL;
        if (v && *v) *out = xstrdup(v);
        return HR_OK;
    }
    char *b = NULL;
    size_t n = 0;
    char inner[200];
    hr_t fr = file_read_small(path, PROVIDER_SECRET_MAX, &b, &n, inner, sizeof(inner));
    if (fr != HR_OK) {
        snprintf(why, why_len, "provider.%s.%s: cannot read %s", name, file_key, inner);
        return HR_INVALID;
    }
    size_t len = n;
    const char *what = NULL;
    size_t s = 0;
    while (n && is_space(b[n - 1])) n--;
    while (s < n && is_space(b[s])) s++;
    if (s == n) what = "is empty";
    else if (memchr(b + s, '\0', n - s)) what = "holds a NUL byte";
    if (what) {
        file_secret_free(b, len);
        snprintf(why, why_len, "provider.%s.%s: %s %s", name, file_key, path, what);
        return HR_INVALID;
    }
    memmove(b, b + s, n - s);
    b[n - s] = '\0';
    *out = b;
    return HR_OK;
}
