/*
 * HTTP API tests: a user's in-app inbox (api_inbox.c). Items are put in
 * the store as the inapp provider puts them; the tests list them (every
 * state filter, cursor paging), read the counts, mark one and all (read,
 * seen, archive), delete, and send bad input (400 naming the field, 404
 * for an unknown item or action). Tenant isolation of these routes is in
 * test_api_tenants.c. Real server and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_item(const char *user, const char *id, int64_t at)
{
    char title[64];
    snprintf(title, sizeof(title), "Title %s", id);
    inbox_item_t it = {.user_id = (char *)user, .notification_id = (char *)id, .event_id = "ev-1",
                       .category = "social", .title = title, .body = "Body", .created_at_ms = at};
    assert_int_equal(store_inbox_put(F.app.store, &it, NULL), HR_OK);
}

/* GET path; the item ids of the answer, comma-joined, into out; the
 * next_cursor (or "") into next. */
static void list(const char *path, char *out, size_t cap, char *next, size_t ncap)
{
    hresp_t r;
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_true(json_is_array(items));
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(items); i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", jstr(json_array_get(items, i), "notification_id"));
    }
    if (next) snprintf(next, ncap, "%s", jstr(r.json, "next_cursor") ? jstr(r.json, "next_cursor") : "");
    hresp_clear(&r);
}

static void counts(const char *user, long unread, long unseen)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/users/%s/inbox/counts", user);
    hresp_t r;
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), user);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unread")), unread);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unseen")), unseen);
    hresp_clear(&r);
}

static void test_inbox_list_item_and_paging(void **state)
{
    (void)state;
    put_item("pager", "p1", 1000);
    put_item("pager", "p2", 2000);
    put_item("pager", "p3", 3000);
    hresp_t r;
    hreq(&r, "GET", "/v1/users/pager/inbox?limit=1", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "pager");
    assert_string_equal(jstr(r.json, "state"), "all");
    json_t *it = json_array_get(json_object_get(r.json, "items"), 0);
    assert_string_equal(jstr(it, "notification_id"), "p3");
    assert_string_equal(jstr(it, "user_id"), "pager");
    assert_string_equal(jstr(it, "event_id"), "ev-1");
    assert_string_equal(jstr(it, "category"), "social");
    assert_string_equal(jstr(it, "title"), "Title p3");
    assert_string_equal(jstr(it, "body"), "Body");
    assert_string_equal(jstr(it, "created_at"), "1970-01-01T00:00:03.000Z");
    assert_true(json_is_null(json_object_get(it, "seen_at")));
    assert_true(json_is_null(json_object_get(it, "read_at")));
    assert_true(json_is_null(json_object_get(it, "archived_at")));
    hresp_clear(&r);

    char ids[256], next[256], path[512];
    list("/v1/users/pager/inbox?limit=2", ids, sizeof(ids), next, sizeof(next));
    assert_string_equal(ids, "p3,p2");
    assert_true(next[0]);
    snprintf(path, sizeof(path), "/v1/users/pager/inbox?limit=2&cursor=%s", next);
    list(path, ids, sizeof(ids), next, sizeof(next));
    assert_string_equal(ids, "p1");
    assert_string_equal(next, "");
    /* an unknown user has an empty inbox */
    list("/v1/users/nobody/inbox", ids, sizeof(ids), next, sizeof(next));
    assert_string_equal(ids, "");
    counts("nobody", 0, 0);
}

static void test_inbox_marks_filters_counts(void **state)
{
    (void)state;
    for (int i = 1; i <= 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "m%d", i);
        put_item("marker", id, 1000 * i);
    }
    counts("marker", 4, 4);
    hresp_t r;
    hreq(&r, "POST", "/v1/users/marker/inbox/m1/seen", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unread")), 4);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unseen")), 3);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/marker/inbox/m2/read", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unread")), 3);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unseen")), 2);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/marker/inbox/m3/archive", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/marker/inbox/m2/read", NULL); /* again: still 200 */
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    counts("marker", 2, 1);

    char ids[256];
    list("/v1/users/marker/inbox?state=unread", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m4,m1");
    list("/v1/users/marker/inbox?state=read", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m2");
    list("/v1/users/marker/inbox?state=seen", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m2,m1");
    list("/v1/users/marker/inbox?state=archived", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m3");
    list("/v1/users/marker/inbox", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m4,m2,m1");

    /* the read item carries its times */
    hreq(&r, "GET", "/v1/users/marker/inbox?state=read", NULL);
    assert_ok_json(&r, 200);
    json_t *it = json_array_get(json_object_get(r.json, "items"), 0);
    assert_true(json_is_string(json_object_get(it, "read_at")));
    assert_true(json_is_string(json_object_get(it, "seen_at")));
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/users/marker/inbox/read-all", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "changed")), 2);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unread")), 0);
    assert_int_equal(json_integer_value(json_object_get(r.json, "unseen")), 0);
    hresp_clear(&r);
    list("/v1/users/marker/inbox?state=unread", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "");

    hreq(&r, "POST", "/v1/users/marker/inbox/archive-all", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "changed")), 3);
    hresp_clear(&r);
    list("/v1/users/marker/inbox", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "");
    list("/v1/users/marker/inbox?state=archived", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "m4,m3,m2,m1");
}

static void test_inbox_delete(void **state)
{
    (void)state;
    put_item("deleter", "d1", 1000);
    put_item("deleter", "d2", 2000);
    hresp_t r;
    hreq(&r, "DELETE", "/v1/users/deleter/inbox/d1", NULL);
    assert_int_equal(r.status, 204);
    hresp_clear(&r);
    hreq(&r, "DELETE", "/v1/users/deleter/inbox/d1", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    char ids[64];
    list("/v1/users/deleter/inbox", ids, sizeof(ids), NULL, 0);
    assert_string_equal(ids, "d2");
    counts("deleter", 1, 1);
}

static void test_inbox_bad_input(void **state)
{
    (void)state;
    put_item("bad", "b1", 1000);
    hresp_t r;
    hreq(&r, "GET", "/v1/users/bad/inbox?state=new", NULL);
    assert_problem(&r, 400, "state");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad/inbox?state=", NULL);
    assert_problem(&r, 400, "state");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad/inbox?limit=0", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad/inbox?limit=x", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad/inbox?cursor=not-a-cursor", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/bad/inbox/b1/explode", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/bad/inbox/nope/read", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    /* nothing changed */
    counts("bad", 1, 1);
    /* a read-only key lists but cannot change */
    char ro[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_READ, "ro", ro, NULL), HR_OK);
    F.use_key = ro;
    hreq(&r, "GET", "/v1/users/bad/inbox", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/bad/inbox/b1/read", NULL);
    F.use_key = F.key;
    assert_problem(&r, 403, NULL);
    hresp_clear(&r);
    counts("bad", 1, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbox_list_item_and_paging),
        cmocka_unit_test(test_inbox_marks_filters_counts),
        cmocka_unit_test(test_inbox_delete),
        cmocka_unit_test(test_inbox_bad_input),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
