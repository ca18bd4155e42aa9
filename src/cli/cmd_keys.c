/*
 * cmd_keys.c - `herald keys create | list | revoke`: API keys (auth/auth.h)
 * in the store herald serves from (data_dir / store.dsn). The key is
 * printed once, by create; the store keeps only its hash.
 */
#include "cli/cli.h"

#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: herald keys create --scopes S[,S...] [--tenant T] [--name NAME]\n"
    "       herald keys list\n"
    "       herald keys revoke KEY_ID\n"
    "Scopes: publish (POST /v1/events), manage (users, preferences, topics,\n"
    "follows, templates), read (notifications, users, templates, topics),\n"
    "admin (everything, the DLQ, /metrics). Tenant: default 'default'; 1-64\n"
    "characters of a-z, 0-9, '-' and '_'. create prints the key once: keep\n"
    "it; herald stores only its hash. A revoked key stops working within\n"
    "auth.cache_ms on every running herald.\n";

static void iso(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int create(cli_t *c, store_t *s)
{
    unsigned scopes;
    char why[160];
    if (!c->scopes || scopes_parse(c->scopes, &scopes, why, sizeof(why)) != HR_OK) {
        fprintf(stderr, "herald: --scopes: %s\n", c->scopes ? why : "required");
        return 2;
    }
    const char *tenant = c->tenant ? c->tenant : TENANT_DEFAULT;
    if (!tenant_valid(tenant)) {
        fprintf(stderr, "herald: --tenant: '%s' is not 1-64 of a-z, 0-9, '-', '_'\n", tenant);
        return 2;
    }
    if (c->name && strlen(c->name) > STORE_KEY_NAME_MAX) {
        fprintf(stderr, "herald: --name: at most %d bytes\n", STORE_KEY_NAME_MAX);
        return 2;
    }
    char key[APIKEY_LEN + 1];
    api_key_rec_t rec;
    hr_t r = apikey_create(s, tenant, scopes, c->name, key, &rec);
    if (r != HR_OK) {
        fprintf(stderr, "herald: cannot create the key: %s\n", hr_str(r));
        return 1;
    }
    char sc[64];
    fprintf(stderr, "created key %s (tenant %s, scopes %s); it is shown only now:\n", rec.key_id,
            rec.tenant, scopes_format(rec.scopes, sc, sizeof(sc)));
    printf("%s\n", key);
    memset(key, 0, sizeof(key));
    return 0;
}

static int list(store_t *s)
{
    api_key_rec_t *keys = NULL;
    int n = 0;
    hr_t r = store_key_list(s, &keys, &n);
    if (r != HR_OK) {
        fprintf(stderr, "herald: cannot list the keys: %s\n", hr_str(r));
        return 1;
    }
    printf("%-16s  %-16s  %-26s  %-20s  %-20s  %s\n", "KEY_ID", "TENANT", "SCOPES", "CREATED",
           "REVOKED", "NAME");
    for (int i = 0; i < n; i++) {
        char sc[64], cr[32], rv[32];
        iso(keys[i].created_at_ms, cr, sizeof(cr));
        iso(keys[i].revoked_at_ms, rv, sizeof(rv));
        printf("%-16s  %-16s  %-26s  %-20s  %-20s  %s\n", keys[i].key_id, keys[i].tenant,
               scopes_format(keys[i].scopes, sc, sizeof(sc)), cr, rv, keys[i].name);
    }
    free(keys);
    return 0;
}

static int revoke(store_t *s, const char *id)
{
    hr_t r = store_key_revoke(s, id, hclock_now_ms());
    if (r == HR_NOTFOUND) {
        fprintf(stderr, "herald: no key %s (herald keys list shows them)\n", id);
        return 1;
    }
    if (r != HR_OK) {
        fprintf(stderr, "herald: cannot revoke %s: %s\n", id, hr_str(r));
        return 1;
    }
    fprintf(stderr, "revoked %s; running servers refuse it within auth.cache_ms\n", id);
    return 0;
}

int cmd_keys(int argc, char **argv)
{
    cli_t c;
    int rc = cli_begin(&c, argc, argv, usage);
    if (rc >= 0) return rc;
    const char *sub = c.argi < argc ? argv[c.argi] : "";
    int npos = argc - c.argi;
    bool ok = (strcmp(sub, "create") == 0 && npos == 1) || (strcmp(sub, "list") == 0 && npos == 1) ||
              (strcmp(sub, "revoke") == 0 && npos == 2);
    if (!ok) {
        fputs(usage, stderr);
        return cli_end(&c, 2);
    }
    /* The store alone: the keys live there, whatever the bus. */
    store_t *s = NULL;
    char why[256];
    if (store_open_cfg(&c.cfg, &s, why, sizeof(why)) != HR_OK) {
        fprintf(stderr, "herald: %s\n", why);
        return cli_end(&c, 1);
    }
    if (strcmp(sub, "create") == 0) rc = create(&c, s);
    else if (strcmp(sub, "list") == 0) rc = list(s);
    else rc = revoke(s, argv[c.argi + 1]);
    store_close(s);
    return cli_end(&c, rc);
}
