/*
 * HTTP API tests: /v1/topics/{topic}/subscribers.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_subscriptions(void **state)
{
    hresp_t r;
    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-b\"}");
    assert_ok_json(&r, 201);
    assert_string_equal(jstr(r.json, "topic"), "product:iphone15");
    assert_string_equal(r.location, "/v1/topics/product%3Aiphone15/subscribers/u-b");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-b\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-a\"}");
    assert_ok_json(&r, 201);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-c\"}");
    assert_ok_json(&r, 201);
    hresp_clear(&r);

    /* pages of 2: u-a u-b, then u-c */
    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?limit=2", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "u-a");
    assert_string_equal(json_string_value(json_array_get(items, 1)), "u-b");
    char path[512];
    snprintf(path, sizeof(path), "/v1/topics/product%%3Aiphone15/subscribers?limit=2&cursor=%s",
             jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "u-c");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?limit=0", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?cursor=%%%", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{\"user_id\":[\"u\"]}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{\"user_id\":\"\"}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);

    hreq(&r, "DELETE", "/v1/topics/product%3Aiphone15/subscribers/u-b", NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    hresp_clear(&r);
    hreq(&r, "DELETE", "/v1/topics/product%3Aiphone15/subscribers/u-b", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscriptions),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
