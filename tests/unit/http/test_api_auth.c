/*
 * HTTP API tests: API keys. Every route of the route table is walked
 * without a key, with a malformed, an unknown and a revoked key, and with a
 * key of each scope: only the scopes the route names (and admin) pass.
 * /healthz and /readyz need no key; /metrics needs admin unless
 * auth.metrics_open. A revoked key fails once the cache time has passed
 * (injected clock). Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t fake_now = 1000000;
static int64_t now_fn(void) { return fake_now; }

/* A concrete path for a route pattern: each {param} becomes "p1". */
static void concrete(const char *pattern, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = pattern; *p && k + 3 < cap; p++) {
        if (*p == '{') {
            while (*p && *p != '}') p++;
            out[k++] = 'p';
            out[k++] = '1';
            continue;
        }
        out[k++] = *p;
    }
    out[k] = '\0';
}

static const char *method_name(unsigned m)
{
    return m == HM_GET ? "GET" : m == HM_POST ? "POST" : m == HM_PUT ? "PUT" : "DELETE";
}

static long call(const http_route_t *rt, const char *key, hresp_t *r)
{
    char path[256];
    concrete(rt->pattern, path, sizeof(path));
    F.use_key = key;
    hreq(r, method_name(rt->method), path, (rt->flags & RT_BODY) ? "{}" : NULL);
    F.use_key = F.key;
    return r->status;
}

static void test_every_route_needs_its_scope(void **state)
{
    (void)state;
    char keys[4][APIKEY_LEN + 1];
    const unsigned scopes[4] = {SCOPE_PUBLISH, SCOPE_MANAGE, SCOPE_READ, SCOPE_ADMIN};
    for (int i = 0; i < 4; i++)
        assert_int_equal(apikey_create(F.app.store, "default", scopes[i], "t", keys[i], NULL), HR_OK);
    char unknown[APIKEY_LEN + 1];
    memcpy(unknown, keys[0], sizeof(unknown));
    unknown[APIKEY_LEN - 1] = unknown[APIKEY_LEN - 1] == 'A' ? 'B' : 'A'; /* secret differs */

    int checked = 0;
    for (size_t i = 0; i < http_nroutes; i++) {
        const http_route_t *rt = &http_routes[i];
        hresp_t r;
        if (rt->flags & RT_OPEN) {
            assert_int_not_equal(call(rt, NULL, &r), 401);
            hresp_clear(&r);
            continue;
        }
        /* no key, a malformed key, a wrong secret: 401 naming Authorization */
        const char *bad[] = {NULL, "nonsense", unknown};
        for (size_t b = 0; b < ARRAY_LEN(bad); b++) {
            call(rt, bad[b], &r);
            if (r.status != 401)
                fail_msg("%s %s with key %zu: %ld", method_name(rt->method), rt->pattern, b,
                         r.status);
            assert_problem(&r, 401, "Authorization");
            hresp_clear(&r);
        }
        for (int s = 0; s < 4; s++) {
            bool allowed = scopes[s] == SCOPE_ADMIN || (RT_NEED_OF(rt->flags) & scopes[s]);
            long st = call(rt, keys[s], &r);
            if (allowed && (st == 401 || st == 403))
                fail_msg("%s %s: scope %u refused (%ld)", method_name(rt->method), rt->pattern,
                         scopes[s], st);
            if (!allowed) {
                if (st != 403)
                    fail_msg("%s %s: scope %u got %ld, want 403", method_name(rt->method),
                             rt->pattern, scopes[s], st);
                assert_problem(&r, 403, NULL);
            }
            hresp_clear(&r);
        }
        checked++;
    }
    assert_true(checked >= 15); /* every non-open route of the table was walked */
}

static void test_key_headers_and_metrics(void **state)
{
    (void)state;
    char pub[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_READ, "hdr", pub, NULL), HR_OK);
    /* X-API-Key works as well as the bearer token */
    hresp_t r;
    F.use_key = NULL;
    hreq(&r, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
    hreq(&r, "GET", "/readyz", NULL);
    assert_int_not_equal(r.status, 401);
    hresp_clear(&r);
    hreq(&r, "GET", "/metrics", NULL);
    assert_problem(&r, 401, "Authorization");
    hresp_clear(&r);
    free(F.cfg.auth_metrics_open);
    F.cfg.auth_metrics_open = strdup("true");
    hreq(&r, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
    free(F.cfg.auth_metrics_open);
    F.cfg.auth_metrics_open = strdup("false");
    F.use_key = F.key;

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/users/nobody", F.port);
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "X-API-Key: %s", pub);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, hdr);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    hresp_t rr;
    memset(&rr, 0, sizeof(rr));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rr);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    assert_int_equal(st, 404); /* authenticated; the user does not exist */
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(rr.body);
}

static void test_revoked_key_fails_after_cache(void **state)
{
    (void)state;
    /* A checker of its own with the injected clock, on the fixture's store. */
    auth_t *a = auth_new(F.app.store, 5000, now_fn);
    char key[APIKEY_LEN + 1];
    api_key_rec_t rec;
    assert_int_equal(apikey_create(F.app.store, "acme", SCOPE_PUBLISH, "rev", key, &rec), HR_OK);
    auth_ctx_t who;
    assert_int_equal(auth_check(a, key, strlen(key), SCOPE_PUBLISH, &who), AUTH_OK);
    assert_string_equal(who.tenant, "acme");
    assert_string_equal(who.key_id, rec.key_id);
    assert_int_equal(auth_check(a, key, strlen(key), SCOPE_READ, &who), AUTH_FORBIDDEN);
    assert_int_equal(store_key_revoke(F.app.store, rec.key_id, 5), HR_OK);
    /* Within the cache time the verified key is still trusted... */
    fake_now += 4000;
    assert_int_equal(auth_check(a, key, strlen(key), SCOPE_PUBLISH, &who), AUTH_OK);
    /* ...after it, the store says revoked. */
    fake_now += 2000;
    assert_int_equal(auth_check(a, key, strlen(key), SCOPE_PUBLISH, &who), AUTH_INVALID);
    /* auth_forget drops the cache at once. */
    char key2[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "acme", SCOPE_PUBLISH, "rev2", key2, &rec), HR_OK);
    assert_int_equal(auth_check(a, key2, strlen(key2), SCOPE_PUBLISH, &who), AUTH_OK);
    assert_int_equal(store_key_revoke(F.app.store, rec.key_id, 6), HR_OK);
    auth_forget(a);
    assert_int_equal(auth_check(a, key2, strlen(key2), SCOPE_PUBLISH, &who), AUTH_INVALID);
    assert_int_equal(store_key_revoke(F.app.store, "0000000000000000", 7), HR_NOTFOUND);
    auth_free(a);
}

static void test_key_records(void **state)
{
    (void)state;
    char key[APIKEY_LEN + 1], why[128];
    unsigned sc;
    assert_int_equal(scopes_parse("publish, read", &sc, why, sizeof(why)), HR_OK);
    assert_int_equal(sc, SCOPE_PUBLISH | SCOPE_READ);
    char txt[64];
    assert_string_equal(scopes_format(sc, txt, sizeof(txt)), "publish,read");
    assert_int_equal(scopes_parse("publish,root", &sc, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "root"));
    assert_int_equal(scopes_parse("", &sc, why, sizeof(why)), HR_INVALID);
    assert_int_equal(apikey_create(F.app.store, "Bad Tenant", SCOPE_READ, "", key, NULL), HR_INVALID);
    assert_int_equal(apikey_create(F.app.store, "", SCOPE_READ, "", key, NULL), HR_INVALID);
    assert_int_equal(apikey_create(F.app.store, "t1", 0, "", key, NULL), HR_INVALID);

    api_key_rec_t rec;
    assert_int_equal(apikey_create(F.app.store, "t1", SCOPE_MANAGE, "ci", key, &rec), HR_OK);
    assert_int_equal(strlen(key), APIKEY_LEN);
    assert_memory_equal(key, "hk_", 3);
    /* the store never holds the key, only the secret's hash */
    api_key_rec_t *all = NULL;
    int n = 0;
    assert_int_equal(store_key_list(F.app.store, &all, &n), HR_OK);
    bool found = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(all[i].key_id, rec.key_id) != 0) continue;
        found = true;
        assert_string_equal(all[i].tenant, "t1");
        assert_int_equal(all[i].scopes, SCOPE_MANAGE);
        assert_string_equal(all[i].name, "ci");
        assert_int_equal(all[i].revoked_at_ms, 0);
        assert_null(memmem(all[i].secret_hash, 32, key + 20, 8));
    }
    free(all);
    assert_true(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_needs_its_scope),
        cmocka_unit_test(test_key_headers_and_metrics),
        cmocka_unit_test(test_revoked_key_fails_after_cache),
        cmocka_unit_test(test_key_records),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
