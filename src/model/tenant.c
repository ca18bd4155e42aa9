/*
 * tenant.c - tenant-qualified ids (tenant.h).
 */
#include "model/tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool tenant_name_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > TENANT_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '-' || c == '_'));
        if (!ok) return false;
    }
    return true;
}

bool tenant_is_default(const char *t)
{
    return !t || !*t || strcmp(t, TENANT_DEFAULT_NAME) == 0;
}

char *tenant_qualify(const char *tenant, const char *id)
{
    if (tenant_is_default(tenant)) return xstrdup(id);
    return xasprintf("%s%c%s", tenant, TENANT_SEP, id);
}

const char *tenant_qualify_to(const char *tenant, const char *id, char buf[TENANT_QID_MAX + 1])
{
    if (tenant_is_default(tenant)) return id;
    size_t tl = strlen(tenant), il = strlen(id);
    if (tl > TENANT_NAME_MAX || il > TENANT_ID_MAX) return NULL;
    memcpy(buf, tenant, tl);
    buf[tl] = TENANT_SEP;
    memcpy(buf + tl + 1, id, il + 1);
    return buf;
}

const char *tenant_unqualify(const char *stored)
{
    const char *sep = strchr(stored, TENANT_SEP);
    return sep ? sep + 1 : stored;
}

void tenant_split(hstr_t stored, hstr_t *tenant, hstr_t *id)
{
    const char *sep = stored.n ? memchr(stored.p, TENANT_SEP, stored.n) : NULL;
    if (!sep) {
        *tenant = (hstr_t){stored.p, 0};
        *id = stored;
        return;
    }
    size_t tl = (size_t)(sep - stored.p);
    *tenant = (hstr_t){stored.p, tl};
    *id = (hstr_t){sep + 1, stored.n - tl - 1};
}

bool tenant_owns_n(const char *tenant, hstr_t stored)
{
    hstr_t t, id;
    tenant_split(stored, &t, &id);
    if (tenant_is_default(tenant)) return t.n == 0 && id.p == stored.p;
    size_t tl = strlen(tenant);
    return t.n == tl && id.p != stored.p && memcmp(t.p, tenant, tl) == 0;
}

bool tenant_owns(const char *tenant, const char *stored)
{
    return tenant_owns_n(tenant, (hstr_t){stored, strlen(stored)});
}
