/*
 * HTTP API tests: tenant isolation (DESIGN §10, model/tenant.h).
 *
 * 1. Tenant acme fills users, preferences, follows, subscriptions, a
 *    template, a notification and a DLQ entry; then every route of the
 *    route table is called with tenant beta's admin key, on acme's ids.
 *    Nothing of acme's shows (404 or empty lists, no marker of acme's data,
 *    never the separator byte), and beta's writes land in beta: acme's
 *    data is unchanged afterwards.
 * 2. End to end with the real pipeline: acme and beta both have user u1,
 *    topic news and a template for type ev; an event from acme's key
 *    reaches acme's u1 with acme's template only, the same event id from
 *    beta is not a duplicate and makes another notification id, each
 *    tenant's GET shows only its own; a record produced straight to
 *    raw-events naming tenant beta is fanned out in beta only; the default
 *    tenant keeps its unqualified ids (its notification id is the one
 *    computed before tenants existed).
 * Real server, bus, store and stages (api_fixture.h).
 */
#include "api_fixture.h"

#include "auth/user_token.h"

#include "http/http_int.h"
#include "model/tenant.h"
#include "stage/stage.h"
#include "stage/topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char key_a[APIKEY_LEN + 1], key_b[APIKEY_LEN + 1];
static char nid_a0[33]; /* acme's stored notification (test 1) */

static const char *method_name(unsigned m)
{
    return m == HM_GET ? "GET" : m == HM_POST ? "POST" : m == HM_PUT ? "PUT" : "DELETE";
}

/* One request with key; fails the test on a transport error. */
static void as(const char *key, hresp_t *r, const char *method, const char *path, const char *body)
{
    F.use_key = key;
    hreq(r, method, path, body);
    F.use_key = F.key;
}

static void must(const char *key, long want, const char *method, const char *path, const char *body)
{
    hresp_t r;
    as(key, &r, method, path, body);
    if (r.status != want) fail_msg("%s %s: want %ld, got %ld: %s", method, path, want, r.status, r.body);
    hresp_clear(&r);
}

static int setup(void **state)
{
    if (api_setup(state) != 0) return -1;
    char why[256];
    if (config_set(&F.cfg, "data_dir", F.dir, why, sizeof(why)) != HR_OK) return -1;
    if (topics_create_all(&F.app) != HR_OK) return -1;
    if (apikey_create(F.app.store, "acme", SCOPE_ADMIN, "a", key_a, NULL) != HR_OK) return -1;
    if (apikey_create(F.app.store, "beta", SCOPE_ADMIN, "b", key_b, NULL) != HR_OK) return -1;
    static const char secret[] = "tenants-test-secret-of-32-bytes-or-more";
    F.app.user_tokens = user_token_key_new(secret, sizeof(secret) - 1); /* inbox/token */
    return F.app.user_tokens ? 0 : -1;
}

static int teardown(void **state)
{
    user_token_key_t *k = F.app.user_tokens;
    api_teardown(state);
    user_token_key_free(k);
    return 0;
}

/* ---- 1. every route with another tenant's key ---- */

/* Texts only acme's data holds: none may appear in an answer to beta. */
static const char *const acme_marks[] = {"a-secret@acme.example", "a-only", "A-TEMPLATE",
                                         "A-NOTIF-TITLE", "acme-dlq-marker", "A-INBOX-TITLE", "acme"};

static void seed_acme(void)
{
    must(key_a, 200, "PUT", "/v1/users/u1", "{\"email\":\"a-secret@acme.example\"}");
    must(key_a, 200, "PUT", "/v1/users/a-only", "{\"email\":\"a-only@acme.example\"}");
    must(key_a, 200, "PUT", "/v1/users/u1/preferences", "{\"channels\":{\"email\":false}}");
    must(key_a, 201, "POST", "/v1/users/u1/follows", "{\"actor\":\"star\"}");
    must(key_a, 201, "POST", "/v1/topics/t/subscribers", "{\"user_id\":\"u1\"}");
    must(key_a, 201, "POST", "/v1/topics/t/subscribers", "{\"user_id\":\"a-only\"}");
    must(key_a, 200, "PUT", "/v1/templates/ev/push", "{\"body\":\"A-TEMPLATE\"}");

    /* a notification of acme's, as fan-out and the sink store it */
    char eid[TENANT_QID_MAX + 1], uid[TENANT_QID_MAX + 1];
    tenant_qualify_to("acme", "e0", eid);
    tenant_qualify_to("acme", "a-only", uid);
    notif_make_id(1000000, HSTR(eid), HSTR(uid), CH_EMAIL, nid_a0);
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_EMAIL, .status = ST_PENDING, .attempt = 1,
                 .created_at_ms = 1000, .notification_id = {nid_a0, 32}, .event_id = HSTR(eid),
                 .user_id = HSTR(uid), .category = HSTR("default"), .title = HSTR("A-NOTIF-TITLE"),
                 .body = HSTR("b"), .address = HSTR("a-only@acme.example")};
    const notif_t *recs[] = {&n};
    assert_int_equal(store_notif_write_batch(F.app.store, recs, 1), HR_OK);

    /* an in-app inbox item of acme's u1, as the inapp provider stores it */
    char uid1[TENANT_QID_MAX + 1];
    tenant_qualify_to("acme", "u1", uid1);
    inbox_item_t it = {.user_id = uid1, .notification_id = nid_a0, .event_id = eid,
                       .title = "A-INBOX-TITLE", .body = "b", .created_at_ms = 1000};
    assert_int_equal(store_inbox_put(F.app.store, &it, NULL), HR_OK);

    /* a dead-lettered event of acme's */
    const char *dl =
        "{\"reason\":\"acme-dlq-marker\",\"stage\":\"fanout\",\"topic\":\"raw-events\",\"partition\":0,"
        "\"offset\":1,\"at_ms\":1000,\"payload\":\"{\\\"event_id\\\":\\\"e9\\\",\\\"type\\\":\\\"nope\\\","
        "\\\"tenant\\\":\\\"acme\\\",\\\"audience\\\":{\\\"users\\\":[\\\"u1\\\"]}}\"}";
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(F.app.bus, TOPIC_DLQ, 0, "e9", 2, dl, strlen(dl), &b), HR_OK);
    assert_int_equal(bus_batch_wait(F.app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

/* A concrete path on acme's ids for a route pattern. */
static void concrete(const char *pattern, char *out, size_t cap)
{
    static const struct { const char *name, *value; } params[] = {
        {"{user_id}", "u1"}, {"{topic}", "t"}, {"{event_type}", "ev"}, {"{channel}", "push"},
        {"{notification_id}", nid_a0}, {"{provider}", "sandbox"}, {"{action}", "read"},
    };
    size_t k = 0;
    for (const char *p = pattern; *p && k + 40 < cap;) {
        if (*p != '{') {
            out[k++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        const char *v = "u1"; /* a parameter a later route adds */
        for (size_t i = 0; i < ARRAY_LEN(params); i++)
            if (strncmp(p, params[i].name, strlen(params[i].name)) == 0) v = params[i].value;
        k += (size_t)snprintf(out + k, cap - k, "%s", v);
        p = end ? end + 1 : p + strlen(p);
    }
    out[k] = '\0';
}

/* What beta sends to a route that takes a body. */
static const char *body_for(const http_route_t *rt)
{
    static const struct { unsigned method; const char *pattern, *body; } bodies[] = {
        {HM_PUT, "/v1/users/{user_id}", "{\"email\":\"b@beta.example\"}"},
        {HM_PUT, "/v1/users/{user_id}/preferences", "{\"channels\":{\"sms\":false}}"},
        {HM_POST, "/v1/users/{user_id}/follows", "{\"actor\":\"star\"}"},
        {HM_POST, "/v1/topics/{topic}/subscribers", "{\"user_id\":\"u1\"}"},
        {HM_PUT, "/v1/templates/{event_type}/{channel}", "{\"body\":\"B-TEMPLATE\"}"},
        /* naming acme's tenant: refused */
        {HM_POST, "/v1/events",
         "{\"event_id\":\"x1\",\"type\":\"ev\",\"tenant\":\"acme\",\"audience\":{\"users\":[\"u1\"]}}"},
        {HM_POST, "/v1/dlq/redrive", "{\"all\":true}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bodies); i++)
        if (bodies[i].method == rt->method && strcmp(bodies[i].pattern, rt->pattern) == 0)
            return bodies[i].body;
    return "{}";
}

static size_t items_of(const hresp_t *r)
{
    return json_array_size(json_object_get(r->json, "items"));
}

static void test_every_route_with_another_tenants_key(void **state)
{
    (void)state;
    seed_acme();
    hresp_t r;
    /* acme sees its DLQ entry; the default tenant and beta do not */
    as(key_a, &r, "GET", "/v1/dlq", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(items_of(&r), 1);
    char dlq_id[48];
    snprintf(dlq_id, sizeof(dlq_id), "%s", jstr(json_array_get(json_object_get(r.json, "items"), 0), "id"));
    hresp_clear(&r);
    as(F.key, &r, "GET", "/v1/dlq", NULL);
    assert_int_equal(items_of(&r), 0);
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/ops/summary", NULL); /* the status page's latest entries: acme's */
    assert_ok_json(&r, 200);
    assert_non_null(strstr(r.body, "acme-dlq-marker"));
    assert_null(strstr(r.body, "_tenant"));
    hresp_clear(&r);

    int walked = 0;
    for (size_t i = 0; i < http_nroutes; i++) {
        const http_route_t *rt = &http_routes[i];
        if (rt->flags & RT_OPEN) continue; /* no key, no tenant: health, the page, provider callbacks */
        /* a live stream never ends (test_api_inbox_live.c: a token's tenant) */
        if (strcmp(rt->pattern, "/v1/users/{user_id}/inbox/stream") == 0) continue;
        char path[512];
        concrete(rt->pattern, path, sizeof(path));
        const char *m = method_name(rt->method);
        as(key_b, &r, m, path, (rt->flags & RT_BODY) ? body_for(rt) : NULL);
        if (r.status >= 500 || r.status == 401)
            fail_msg("%s %s: %ld %s", m, rt->pattern, r.status, r.body);
        for (size_t k = 0; k < ARRAY_LEN(acme_marks); k++)
            if (r.body && strstr(r.body, acme_marks[k]))
                fail_msg("%s %s shows acme's '%s': %s", m, rt->pattern, acme_marks[k], r.body);
        if (r.body && (memchr(r.body, TENANT_SEP, r.len) || strstr(r.body, "\\u001f")))
            fail_msg("%s %s shows the tenant separator", m, rt->pattern);

        if (rt->method == HM_GET && strcmp(rt->pattern, "/v1/notifications/{notification_id}") == 0)
            assert_problem(&r, 404, NULL); /* never 403: its existence is not confirmed */
        if (rt->method == HM_GET && strcmp(rt->pattern, "/v1/users/{user_id}/notifications") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(items_of(&r), 0);
        }
        if (rt->method == HM_GET && strcmp(rt->pattern, "/v1/dlq") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(items_of(&r), 0);
        }
        /* acme's inbox item: absent for beta, whatever the route does */
        if (rt->method == HM_GET && strcmp(rt->pattern, "/v1/users/{user_id}/inbox") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(items_of(&r), 0);
        }
        if (rt->method == HM_GET && strcmp(rt->pattern, "/v1/users/{user_id}/inbox/counts") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(json_integer_value(json_object_get(r.json, "unread")), 0);
        }
        if (strcmp(rt->pattern, "/v1/users/{user_id}/inbox/{notification_id}/{action}") == 0 ||
            strcmp(rt->pattern, "/v1/users/{user_id}/inbox/{notification_id}") == 0)
            assert_problem(&r, 404, NULL);
        if (rt->method == HM_POST && strcmp(rt->pattern, "/v1/users/{user_id}/inbox/read-all") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(json_integer_value(json_object_get(r.json, "changed")), 0);
        }
        if (rt->method == HM_POST && strcmp(rt->pattern, "/v1/dlq/redrive") == 0) {
            assert_int_equal(r.status, 200);
            assert_int_equal(json_integer_value(json_object_get(r.json, "redriven")), 0);
        }
        if (rt->method == HM_POST && strcmp(rt->pattern, "/v1/events") == 0)
            assert_problem(&r, 403, "tenant");
        if (rt->method == HM_DELETE && strcmp(rt->pattern, "/v1/topics/{topic}/subscribers/{user_id}") == 0)
            assert_true(r.status == 204 || r.status == 404); /* beta's own subscription, if any */
        hresp_clear(&r);
        walked++;
    }
    assert_true(walked >= 14);

    /* beta cannot redrive acme's entry by its id either */
    char body[128];
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", dlq_id);
    as(key_b, &r, "POST", "/v1/dlq/redrive", body);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    /* acme's data is as it was */
    as(key_a, &r, "GET", "/v1/users/u1/inbox", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(items_of(&r), 1);
    json_t *item = json_array_get(json_object_get(r.json, "items"), 0);
    assert_string_equal(jstr(item, "title"), "A-INBOX-TITLE");
    assert_string_equal(jstr(item, "user_id"), "u1");
    assert_string_equal(jstr(item, "event_id"), "e0");
    assert_true(json_is_null(json_object_get(item, "read_at")));
    assert_true(json_is_null(json_object_get(item, "archived_at")));
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/users/u1", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "email"), "a-secret@acme.example");
    assert_string_equal(jstr(r.json, "user_id"), "u1");
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/users/u1/preferences", NULL);
    assert_ok_json(&r, 200);
    json_t *ch = json_object_get(r.json, "channels");
    assert_true(json_is_false(json_object_get(ch, "email")));
    assert_null(json_object_get(ch, "sms"));
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/templates/ev/push", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "body"), "A-TEMPLATE");
    assert_string_equal(jstr(r.json, "event_type"), "ev");
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/topics/t/subscribers?limit=1", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(items_of(&r), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "items"), 0)), "a-only");
    char next[256];
    snprintf(next, sizeof(next), "/v1/topics/t/subscribers?limit=1&cursor=%s", jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    as(key_a, &r, "GET", next, NULL); /* the cursor holds the unqualified id and pages on */
    assert_ok_json(&r, 200);
    assert_int_equal(items_of(&r), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "items"), 0)), "u1");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);
    char p[128];
    snprintf(p, sizeof(p), "/v1/notifications/%s", nid_a0);
    as(key_a, &r, "GET", p, NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "title"), "A-NOTIF-TITLE");
    assert_string_equal(jstr(r.json, "user_id"), "a-only");
    assert_string_equal(jstr(r.json, "event_id"), "e0");
    hresp_clear(&r);
    as(F.key, &r, "GET", p, NULL); /* the default tenant does not see it either */
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/users/a-only/notifications", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(items_of(&r), 1);
    hresp_clear(&r);
    as(key_a, &r, "GET", "/v1/dlq", NULL);
    assert_int_equal(items_of(&r), 1);
    assert_false(json_is_true(json_object_get(json_array_get(json_object_get(r.json, "items"), 0), "redriven")));
    hresp_clear(&r);

    /* beta's writes landed in beta */
    as(key_b, &r, "GET", "/v1/users/u1", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "email"), "b@beta.example");
    hresp_clear(&r);
    as(key_b, &r, "GET", "/v1/templates/ev/push", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "body"), "B-TEMPLATE");
    hresp_clear(&r);
    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_followers_page(F.app.store, "acme\x1fstar", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "acme\x1fu1");
    ids_free(ids, n);
    assert_int_equal(store_followers_page(F.app.store, "beta\x1fstar", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "beta\x1fu1");
    ids_free(ids, n);
    /* nothing reached the default tenant */
    as(F.key, &r, "GET", "/v1/users/u1", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* ---- 2. end to end through the pipeline ---- */

/* Polls GET /v1/notifications/{nid} with key until its status is sent;
 * returns the answer (caller clears). */
static void wait_sent(const char *key, const char *nid, hresp_t *r)
{
    char p[128];
    snprintf(p, sizeof(p), "/v1/notifications/%s", nid);
    for (int i = 0; i < 500; i++) {
        as(key, r, "GET", p, NULL);
        if (r->status == 200 && jstr(r->json, "status") && strcmp(jstr(r->json, "status"), "sent") == 0)
            return;
        hresp_clear(r);
        usleep(20000);
    }
    fail_msg("notification %s never became sent", nid);
}

/* The id of (event, user, channel) of tenant for an event without an
 * accepted time (straight to raw-events): time part 0 (model/notif.h). Its
 * last 20 hex digits (the hash part) are those of the event's id whatever
 * its accepted time. */
static void nid_of(const char *tenant, const char *ev, const char *user, channel_t ch, char out[33])
{
    char e[TENANT_QID_MAX + 1], u[TENANT_QID_MAX + 1];
    notif_make_id(0, HSTR(tenant_qualify_to(tenant, ev, e)), HSTR(tenant_qualify_to(tenant, user, u)), ch,
                  out);
}

/* Events that came through the API have ids starting with their accepted
 * time: finds the id in user's listing (with key) whose hash part is
 * that of want (nid_of), waiting up to 10 s for it; copies it to want. */
static void nid_find(const char *key, const char *user, char want[33])
{
    char p[128];
    snprintf(p, sizeof(p), "/v1/users/%s/notifications?limit=100", user);
    for (int i = 0; i < 500; i++) {
        hresp_t r;
        as(key, &r, "GET", p, NULL);
        json_t *items = r.status == 200 ? json_object_get(r.json, "items") : NULL;
        for (size_t k = 0; k < json_array_size(items); k++) {
            const char *id = jstr(json_array_get(items, k), "notification_id");
            if (id && strlen(id) == 32 && strcmp(id + 12, want + 12) == 0) {
                memcpy(want, id, 33);
                hresp_clear(&r);
                return;
            }
        }
        hresp_clear(&r);
        usleep(20000);
    }
    fail_msg("no notification ending in %s for %s", want + 12, user);
}

static void setup_tenant(const char *key, const char *email, const char *tmpl)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\"}", email);
    must(key, 200, "PUT", "/v1/users/u1", body);
    must(key, 200, "PUT", "/v1/users/u1/preferences", "{}");
    hresp_t r;
    as(key, &r, "POST", "/v1/topics/news/subscribers", "{\"user_id\":\"u1\"}");
    assert_true(r.status == 200 || r.status == 201);
    hresp_clear(&r);
    snprintf(body, sizeof(body), "{\"title\":\"t\",\"body\":\"%s\"}", tmpl);
    must(key, 200, "PUT", "/v1/templates/ev/email", body);
}

static void test_two_tenants_end_to_end(void **state)
{
    (void)state;
    pipeline_t *pipe = NULL;
    setup_tenant(key_a, "u1@acme.example", "A says {{user_id}} of {{tenant}}");
    setup_tenant(key_b, "u1@beta.example", "B says {{user_id}}");
    assert_int_equal(pipeline_start(&F.app, &pipe), HR_OK);

    const char *ev = "{\"event_id\":\"e1\",\"type\":\"ev\",\"audience\":{\"topic\":\"news\"},"
                     "\"channels\":[\"email\"],\"data\":{}}";
    /* a key cannot publish for another tenant */
    must(key_a, 403, "POST", "/v1/events",
         "{\"event_id\":\"e1\",\"type\":\"ev\",\"tenant\":\"beta\",\"audience\":{\"topic\":\"news\"}}");
    must(key_a, 202, "POST", "/v1/events", ev);
    char nid_a[33], nid_b[33];
    nid_of("acme", "e1", "u1", CH_EMAIL, nid_a);
    nid_of("beta", "e1", "u1", CH_EMAIL, nid_b);
    assert_string_not_equal(nid_a, nid_b);
    hresp_t r;
    nid_find(key_a, "u1", nid_a);
    wait_sent(key_a, nid_a, &r);
    assert_string_equal(jstr(r.json, "body"), "A says u1 of acme"); /* acme's template, ids unqualified */
    assert_string_equal(jstr(r.json, "user_id"), "u1");
    assert_string_equal(jstr(r.json, "event_id"), "e1");
    assert_string_equal(jstr(r.json, "address"), "u1@acme.example");
    hresp_clear(&r);
    char p[128];
    snprintf(p, sizeof(p), "/v1/notifications/%s", nid_a);
    as(key_b, &r, "GET", p, NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    as(key_b, &r, "GET", "/v1/users/u1/notifications", NULL);
    assert_int_equal(items_of(&r), 0); /* beta's u1 got nothing from acme's event */
    hresp_clear(&r);

    /* beta publishes the same event id: not a duplicate of acme's */
    must(key_b, 202, "POST", "/v1/events", ev);
    nid_find(key_b, "u1", nid_b);
    wait_sent(key_b, nid_b, &r);
    assert_string_equal(jstr(r.json, "body"), "B says u1");
    assert_string_equal(jstr(r.json, "address"), "u1@beta.example");
    hresp_clear(&r);

    /* straight to raw-events (a Kafka producer): the record's tenant decides */
    const char *raw = "{\"event_id\":\"k1\",\"type\":\"ev\",\"tenant\":\"beta\",\"channels\":[\"email\"],"
                      "\"audience\":{\"users\":[\"u1\"]}}";
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(F.app.bus, TOPIC_RAW, -1, "k1", 2, raw, strlen(raw), &b), HR_OK);
    assert_int_equal(bus_batch_wait(F.app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    char nid_k[33], nid_k_a[33], nid_k_d[33];
    nid_of("beta", "k1", "u1", CH_EMAIL, nid_k);
    nid_of("acme", "k1", "u1", CH_EMAIL, nid_k_a);
    nid_of("default", "k1", "u1", CH_EMAIL, nid_k_d);
    wait_sent(key_b, nid_k, &r);
    hresp_clear(&r);
    notif_row_t row;
    assert_int_equal(store_notif_get(F.app.store, nid_k_a, &row, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_get(F.app.store, nid_k_d, &row, NULL, NULL), HR_NOTFOUND);

    /* each tenant's list shows its own */
    as(key_a, &r, "GET", "/v1/users/u1/notifications", NULL);
    assert_int_equal(items_of(&r), 1);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "items"), 0), "notification_id"), nid_a);
    hresp_clear(&r);
    as(key_b, &r, "GET", "/v1/users/u1/notifications", NULL);
    assert_int_equal(items_of(&r), 2);
    hresp_clear(&r);

    /* the default tenant hashes the ids as given: the id's hash part is
     * SHA-256("e1\0u1\0email")[0..10) (from outside herald), after the
     * accepted time */
    must(F.key, 200, "PUT", "/v1/users/u1", "{\"email\":\"u1@default.example\"}");
    must(F.key, 200, "PUT", "/v1/templates/ev/email", "{\"body\":\"D says {{user_id}}\"}");
    must(F.key, 202, "POST", "/v1/events",
         "{\"event_id\":\"e1\",\"type\":\"ev\",\"tenant\":\"default\",\"channels\":[\"email\"],"
         "\"audience\":{\"users\":[\"u1\"]}}");
    char nid_d[33] = "000000000000" "e446411104d77168dcdb";
    nid_find(F.key, "u1", nid_d);
    assert_int_not_equal(notif_id_time_ms(HSTR(nid_d)), 0);
    wait_sent(F.key, nid_d, &r);
    assert_string_equal(jstr(r.json, "body"), "D says u1");
    hresp_clear(&r);
    pipeline_stop(pipe);

    /* what left herald (sandbox lines) never shows the separator; beta's
     * lines name their tenant, the default tenant's name none */
    char *path = xasprintf("%s/sandbox/email.jsonl", F.dir);
    FILE *fp = fopen(path, "r");
    free(path);
    assert_non_null(fp);
    char line[8192];
    int beta = 0, dflt = 0, lines = 0;
    while (fgets(line, sizeof(line), fp)) {
        lines++;
        assert_null(strchr(line, TENANT_SEP));
        assert_null(strstr(line, "\\u001f"));
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_string_equal(jstr(o, "user_id"), "u1");
        const char *t = jstr(o, "tenant");
        if (t && strcmp(t, "beta") == 0) beta++;
        if (!t) dflt++;
        json_decref(o);
    }
    fclose(fp);
    assert_int_equal(lines, 4);
    assert_int_equal(beta, 2);
    assert_int_equal(dflt, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_with_another_tenants_key),
        cmocka_unit_test(test_two_tenants_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
