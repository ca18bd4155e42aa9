/*
 * test_api_lifecycle.c - the user lifecycle routes: DELETE /v1/users/{id}
 * (erasure), GET /v1/users (pages), POST /v1/users/import (NDJSON,
 * streamed, per-line report), unfollow, a user's follows and subscriptions;
 * bad input answered 400/413/415 problem+json naming the field, scopes.
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_user(const char *id, const char *body)
{
    char path[256];
    hresp_t r;
    snprintf(path, sizeof(path), "/v1/users/%s", id);
    hreq(&r, "PUT", path, body ? body : "{\"email\":\"x@example.com\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);
}

static long status_of(const char *method, const char *path, const char *body)
{
    hresp_t r;
    hreq(&r, method, path, body);
    long s = r.status;
    hresp_clear(&r);
    return s;
}

/* ---- erasure ---- */

static void test_delete_user(void **state)
{
    (void)state;
    put_user("del-a", "{\"email\":\"a@example.com\",\"webhook_secret\":"
                      "\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\","
                      "\"devices\":[{\"platform\":\"fcm\",\"token\":\"t1\"}]}");
    put_user("del-b", NULL);
    assert_int_equal(status_of("PUT", "/v1/users/del-a/preferences", "{\"channels\":{\"sms\":false}}"), 200);
    assert_int_equal(status_of("POST", "/v1/users/del-a/follows", "{\"actor\":\"del-b\"}"), 201);
    assert_int_equal(status_of("POST", "/v1/users/del-b/follows", "{\"actor\":\"del-a\"}"), 201);
    assert_int_equal(status_of("POST", "/v1/topics/del-t/subscribers", "{\"user_id\":\"del-a\"}"), 201);
    assert_int_equal(status_of("POST", "/v1/topics/del-t/subscribers", "{\"user_id\":\"del-b\"}"), 201);

    hresp_t r;
    hreq(&r, "DELETE", "/v1/users/del-a", NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/del-a", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/del-a/subscriptions", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);
    /* the other user keeps everything but the follow of the erased one */
    hreq(&r, "GET", "/v1/topics/del-t/subscribers", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "del-b");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/del-b/follows", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/del-b", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    /* nothing left to erase: 404 */
    hreq(&r, "DELETE", "/v1/users/del-a", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "DELETE", "/v1/users/never-existed", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    /* a bad id is 400 naming it */
    hreq(&r, "DELETE", "/v1/users/a%01b", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
}

/* ---- listing users ---- */

static void test_list_users(void **state)
{
    (void)state;
    /* ids after every other test's ("zz" sorts last) */
    const char *ids[] = {"zz-list-3", "zz-list-1", "zz-list-5", "zz-list-2", "zz-list-4"};
    for (int i = 0; i < 5; i++) put_user(ids[i], "{\"locale\":\"fr\",\"quiet_hours\":"
                                                 "{\"start\":\"22:00\",\"end\":\"07:00\"}}");
    hresp_t r;
    hreq(&r, "GET", "/v1/users?limit=200", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    size_t n = json_array_size(items);
    assert_true(n >= 5);
    /* stable order: by id */
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(jstr(json_array_get(items, i - 1), "user_id"),
                           jstr(json_array_get(items, i), "user_id")) < 0);
    hresp_clear(&r);

    /* pages of 2 from just before our users */
    char path[512], cursor[256] = "";
    int seen = 0, pages = 0;
    hreq(&r, "GET", "/v1/users?limit=200", NULL);
    items = json_object_get(r.json, "items");
    /* the cursor of a page ending just before zz-list-1 */
    size_t first = 0;
    while (first < json_array_size(items) &&
           strcmp(jstr(json_array_get(items, first), "user_id"), "zz-list-1") != 0)
        first++;
    assert_true(first < json_array_size(items));
    if (first > 0) {
        char q[64];
        snprintf(q, sizeof(q), "/v1/users?limit=%zu", first);
        hresp_t p;
        hreq(&p, "GET", q, NULL);
        assert_ok_json(&p, 200);
        snprintf(cursor, sizeof(cursor), "%s", jstr(p.json, "next_cursor"));
        hresp_clear(&p);
    }
    hresp_clear(&r);
    for (;;) {
        if (cursor[0])
            snprintf(path, sizeof(path), "/v1/users?limit=2&cursor=%s", cursor);
        else
            snprintf(path, sizeof(path), "/v1/users?limit=2");
        hreq(&r, "GET", path, NULL);
        assert_ok_json(&r, 200);
        items = json_object_get(r.json, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *u = json_array_get(items, i);
            char want[32];
            snprintf(want, sizeof(want), "zz-list-%d", ++seen);
            assert_string_equal(jstr(u, "user_id"), want);
            /* the fields GET /v1/users/{id} answers */
            assert_string_equal(jstr(u, "locale"), "fr");
            assert_string_equal(jstr(json_object_get(u, "quiet_hours"), "start"), "22:00");
            assert_true(json_is_array(json_object_get(u, "devices")));
            assert_non_null(json_object_get(u, "webhook_secret_set"));
        }
        pages++;
        const char *next = jstr(r.json, "next_cursor");
        if (!next) {
            hresp_clear(&r);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", next);
        hresp_clear(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 3);

    /* "after" is the same as "cursor" */
    hreq(&r, "GET", "/v1/users?limit=1", NULL);
    snprintf(cursor, sizeof(cursor), "%s", jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    snprintf(path, sizeof(path), "/v1/users?limit=1&after=%s", cursor);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users?limit=0", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users?limit=201", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users?cursor=***", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users?after=%00", NULL);
    assert_problem(&r, 400, "after");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users?after=not-a-cursor!", NULL);
    assert_problem(&r, 400, "after");
    hresp_clear(&r);
}

/* ---- follows and subscriptions ---- */

static void test_follows_and_subscriptions(void **state)
{
    (void)state;
    put_user("fol-u", NULL);
    const char *actors[] = {"act-c", "act-a", "act-b"};
    char body[64];
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body), "{\"actor\":\"%s\"}", actors[i]);
        assert_int_equal(status_of("POST", "/v1/users/fol-u/follows", body), 201);
    }
    hresp_t r;
    hreq(&r, "GET", "/v1/users/fol-u/follows?limit=2", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "fol-u");
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "act-a");
    assert_string_equal(json_string_value(json_array_get(items, 1)), "act-b");
    char path[256];
    snprintf(path, sizeof(path), "/v1/users/fol-u/follows?limit=2&cursor=%s", jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "act-c");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    /* unfollow: 204, then 404 */
    assert_int_equal(status_of("DELETE", "/v1/users/fol-u/follows/act-b", NULL), 204);
    hreq(&r, "DELETE", "/v1/users/fol-u/follows/act-b", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "DELETE", "/v1/users/fol-u/follows/bad%00actor", NULL);
    assert_problem(&r, 400, "actor");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/fol-u/follows", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/fol-u/follows?cursor=%ZZ", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);

    /* subscriptions: the user's topics, paged */
    const char *topics[] = {"top-2", "top-1", "top-3"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/v1/topics/%s/subscribers", topics[i]);
        assert_int_equal(status_of("POST", path, "{\"user_id\":\"fol-u\"}"), 201);
    }
    hreq(&r, "GET", "/v1/users/fol-u/subscriptions?limit=2", NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "top-1");
    assert_string_equal(json_string_value(json_array_get(items, 1)), "top-2");
    assert_true(json_is_string(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/fol-u/subscriptions?limit=x", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/%01/subscriptions", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
}

/* ---- import ---- */

typedef struct upload {
    const char *p;
    size_t len, off, piece;
} upload_t;

static size_t on_read(char *out, size_t sz, size_t n, void *ud)
{
    upload_t *u = ud;
    size_t k = sz * n;
    if (k > u->piece) k = u->piece;
    if (k > u->len - u->off) k = u->len - u->off;
    memcpy(out, u->p + u->off, k);
    u->off += k;
    return k;
}

/* POST /v1/users/import; chunked: Transfer-Encoding chunked in pieces of
 * `piece` bytes, else with Content-Length. */
static void import_req(hresp_t *r, const char *ctype, const char *body, size_t len, bool chunked)
{
    char url[128], cth[160];
    struct curl_slist *h = NULL;
    memset(r, 0, sizeof(*r));
    upload_t up = {body, len, 0, 7777};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/users/import", F.port);
    snprintf(cth, sizeof(cth), "Content-Type: %s", ctype);
    h = curl_slist_append(h, cth);
    h = curl_slist_append(h, "Expect:");
    if (chunked) h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = auth_header(h);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (chunked) {
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) fail_msg("import: %s", curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r->body && r->len) r->json = json_loadb(r->body, r->len, 0, NULL);
}

/* the error of the report for line `line`, or NULL */
static json_t *error_at(json_t *report, long line)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(report, "errors"), i, e)
        if (json_integer_value(json_object_get(e, "line")) == line) return e;
    return NULL;
}

static void assert_line_error(json_t *report, long line, const char *field, const char *detail_has)
{
    json_t *e = error_at(report, line);
    if (!e) fail_msg("no error reported for line %ld", line);
    const char *f = jstr(e, "field");
    if (field) {
        if (!f || strcmp(f, field) != 0) fail_msg("line %ld: field %s, want %s", line, f ? f : "null", field);
    } else {
        assert_true(json_is_null(json_object_get(e, "field")));
    }
    if (detail_has && !strstr(jstr(e, "detail"), detail_has))
        fail_msg("line %ld: detail '%s' lacks '%s'", line, jstr(e, "detail"), detail_has);
}

/* 10,000 lines with bad ones scattered: the good ones land, each bad one
 * is reported with its line and field, the import goes on past them. */
static void test_import_ten_thousand(void **state)
{
    (void)state;
    enum { LINES = 10000 };
    buf_t b;
    buf_init(&b, 0);
    for (int i = 1; i <= LINES; i++) {
        switch (i) {
        case 5: buf_append_str(&b, "{\"user_id\":\"imp-5\",\"email\":\n"); break; /* cut JSON */
        case 10: buf_append_str(&b, "{\"email\":\"nobody@example.com\"}\n"); break;
        case 20: buf_append_str(&b, "{\"user_id\":\"imp-20\",\"email\":\"not-an-email\"}\n"); break;
        case 30:
            buf_append_str(&b, "{\"user_id\":\"imp-30\",\"devices\":[{\"platform\":\"apns\",\"token\":\"a\"},"
                               "{\"platform\":\"pager\",\"token\":\"b\"}]}\n");
            break;
        case 40: buf_append_str(&b, "   \r\n"); break; /* blank: skipped, still counted as a line number */
        case 50: buf_append_str(&b, "[1,2]\n"); break;
        case 60: buf_append_str(&b, "{\"user_id\":\"imp-60\",\"nickname\":\"x\"}\n"); break;
        case 70: buf_append_str(&b, "{\"user_id\":\"imp-70\",\"webhook_url\":\"http://127.0.0.1/x\"}\n"); break;
        case 9999: buf_append_str(&b, "{\"user_id\":\"\"}\r\n"); break;
        case LINES: /* the last line has no newline */
            buf_printf(&b, "{\"user_id\":\"imp-%d\",\"phone\":\"+15550000000\"}", i);
            break;
        default:
            buf_printf(&b, "{\"user_id\":\"imp-%d\",\"email\":\"u%d@example.com\",\"locale\":\"de\","
                           "\"devices\":[{\"platform\":\"fcm\",\"token\":\"tok-%d\"}]}\r\n",
                       i, i, i);
        }
    }
    assert_true(b.len > MAX_BODY * 4); /* far over http.max_body: streamed, not buffered */
    hresp_t r;
    import_req(&r, "application/x-ndjson", b.data, b.len, true);
    assert_ok_json(&r, 200);
    json_t *rep = r.json;
    assert_int_equal(json_integer_value(json_object_get(rep, "lines")), LINES - 1);
    assert_int_equal(json_integer_value(json_object_get(rep, "failed")), 8);
    assert_int_equal(json_integer_value(json_object_get(rep, "imported")), LINES - 1 - 8);
    assert_int_equal(json_array_size(json_object_get(rep, "errors")), 8);
    assert_false(json_is_true(json_object_get(rep, "errors_truncated")));
    assert_line_error(rep, 5, NULL, "not JSON");
    assert_line_error(rep, 10, "user_id", "required");
    assert_string_equal(jstr(error_at(rep, 20), "user_id"), "imp-20");
    assert_line_error(rep, 20, "email", NULL);
    assert_line_error(rep, 30, "devices[1].platform", NULL);
    assert_line_error(rep, 50, NULL, "object");
    assert_line_error(rep, 60, "nickname", NULL);
    assert_line_error(rep, 70, "webhook_url", NULL);
    assert_line_error(rep, 9999, "user_id", NULL);
    assert_null(error_at(rep, 40));
    hresp_clear(&r);

    /* the good lines are users now, with their devices; the bad ones are not */
    hreq(&r, "GET", "/v1/users/imp-4321", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "email"), "u4321@example.com");
    assert_string_equal(jstr(r.json, "locale"), "de");
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "devices"), 0), "token"), "tok-4321");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/imp-10000", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "phone"), "+15550000000");
    hresp_clear(&r);
    assert_int_equal(status_of("GET", "/v1/users/imp-20", NULL), 404);
    assert_int_equal(status_of("GET", "/v1/users/imp-30", NULL), 404);
    buf_release(&b);
}

static void test_import_bad_requests(void **state)
{
    (void)state;
    hresp_t r;
    const char *one = "{\"user_id\":\"imp-one\"}\n";
    /* media type */
    import_req(&r, "application/json", one, strlen(one), false);
    assert_problem(&r, 415, "Content-Type");
    hresp_clear(&r);
    /* with Content-Length: one line */
    import_req(&r, "application/x-ndjson", one, strlen(one), false);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "imported")), 1);
    hresp_clear(&r);
    /* empty body: nothing, no error */
    import_req(&r, "application/x-ndjson", "", 0, false);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "lines")), 0);
    hresp_clear(&r);

    /* over api.import_max_bytes: 413 before reading (Content-Length) */
    int64_t saved = F.cfg.api_import_max_bytes;
    F.cfg.api_import_max_bytes = 2048;
    buf_t b;
    buf_init(&b, 0);
    for (int i = 0; i < 200; i++) buf_printf(&b, "{\"user_id\":\"imp-big-%d\"}\n", i);
    import_req(&r, "application/x-ndjson", b.data, b.len, false);
    assert_problem(&r, 413, "body");
    hresp_clear(&r);
    assert_int_equal(status_of("GET", "/v1/users/imp-big-0", NULL), 404);
    /* chunked: the lines before the limit are imported and the report says so */
    import_req(&r, "application/x-ndjson", b.data, b.len, true);
    assert_problem(&r, 413, "body");
    long imported = (long)json_integer_value(json_object_get(r.json, "imported"));
    assert_true(imported > 0 && imported < 200);
    hresp_clear(&r);
    assert_int_equal(status_of("GET", "/v1/users/imp-big-0", NULL), 200);
    F.cfg.api_import_max_bytes = saved;
    buf_release(&b);

    /* a line over the line limit is one error; the next line still counts */
    buf_init(&b, 0);
    buf_append_str(&b, "{\"user_id\":\"imp-long\",\"email\":\"");
    for (int i = 0; i < 300 * 1024; i++) buf_append(&b, "a", 1);
    buf_append_str(&b, "@example.com\"}\n{\"user_id\":\"imp-after-long\"}\n");
    import_req(&r, "application/x-ndjson", b.data, b.len, true);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(r.json, "imported")), 1);
    assert_line_error(r.json, 1, NULL, "longer than");
    hresp_clear(&r);
    buf_release(&b);
    assert_int_equal(status_of("GET", "/v1/users/imp-after-long", NULL), 200);
}

/* writes need manage, reads read or manage */
static void test_scopes(void **state)
{
    (void)state;
    char rd[APIKEY_LEN + 1], pub[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_READ, "r", rd, NULL), HR_OK);
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_PUBLISH, "p", pub, NULL), HR_OK);
    put_user("scope-u", NULL);
    F.use_key = rd;
    assert_int_equal(status_of("DELETE", "/v1/users/scope-u", NULL), 403);
    assert_int_equal(status_of("DELETE", "/v1/users/scope-u/follows/x", NULL), 403);
    assert_int_equal(status_of("GET", "/v1/users", NULL), 200);
    assert_int_equal(status_of("GET", "/v1/users/scope-u/follows", NULL), 200);
    assert_int_equal(status_of("GET", "/v1/users/scope-u/subscriptions", NULL), 200);
    hresp_t r;
    import_req(&r, "application/x-ndjson", "{\"user_id\":\"scope-x\"}\n", 22, false);
    assert_problem(&r, 403, NULL);
    hresp_clear(&r);
    F.use_key = pub;
    assert_int_equal(status_of("GET", "/v1/users", NULL), 403);
    F.use_key = NULL;
    assert_int_equal(status_of("DELETE", "/v1/users/scope-u", NULL), 401);
    F.use_key = F.key;
    assert_int_equal(status_of("GET", "/v1/users/scope-u", NULL), 200);
    assert_int_equal(status_of("GET", "/v1/users/scope-x", NULL), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_user),
        cmocka_unit_test(test_list_users),
        cmocka_unit_test(test_follows_and_subscriptions),
        cmocka_unit_test(test_import_ten_thousand),
        cmocka_unit_test(test_import_bad_requests),
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
