/*
 * HTTP API tests: /v1/templates/{event_type}/{channel}.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_templates(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/templates/comment/push",
         "{\"locale\":\"en\",\"title\":\"{{actor}} commented\",\"body\":\"{{data.text}}\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "event_type"), "comment");
    assert_string_equal(jstr(r.json, "channel"), "push");
    assert_string_equal(jstr(r.json, "title"), "{{actor}} commented");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/templates/comment/push?locale=en", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "body"), "{{data.text}}");
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/templates/comment/fax", "{\"body\":\"x\"}");
    assert_problem(&r, 400, "channel");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"body\":\"{{nope}}\"}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/push", "{\"title\":\"{{ }}\",\"body\":\"ok\"}");
    assert_problem(&r, 422, "title");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"title\":\"t\"}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"body\":\"x\",\"locale\":\"e n\"}");
    assert_problem(&r, 422, "locale");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/templates/comment/sms", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
