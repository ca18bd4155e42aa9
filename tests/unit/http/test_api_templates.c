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

/* A template's digest: stored, answered back, and refused with the field
 * named when bad (model/digest.h). */
static void test_template_digest(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/templates/liked/inapp",
         "{\"title\":\"{{digest.first_actor}} and {{digest.others}} others liked your post\","
         "\"body\":\"{{digest.count}} likes\",\"digest\":{\"window\":\"10m\",\"key\":\"{{data.post_id}}\"}}");
    assert_ok_json(&r, 200);
    json_t *d = json_object_get(r.json, "digest");
    assert_true(json_is_object(d));
    assert_string_equal(jstr(d, "window"), "10m");
    assert_string_equal(jstr(d, "key"), "{{data.post_id}}");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/templates/liked/inapp", NULL);
    assert_ok_json(&r, 200);
    d = json_object_get(r.json, "digest");
    assert_string_equal(jstr(d, "window"), "10m");
    hresp_clear(&r);
    /* without a key: the event type alone */
    hreq(&r, "PUT", "/v1/templates/liked/email", "{\"body\":\"x\",\"digest\":{\"window\":\"90s\"}}");
    assert_ok_json(&r, 200);
    d = json_object_get(r.json, "digest");
    assert_string_equal(jstr(d, "window"), "90s");
    assert_true(json_is_null(json_object_get(d, "key")));
    hresp_clear(&r);
    /* digest null takes it away; a template without one answers null */
    hreq(&r, "PUT", "/v1/templates/liked/email", "{\"body\":\"x\",\"digest\":null}");
    assert_ok_json(&r, 200);
    assert_true(json_is_null(json_object_get(r.json, "digest")));
    hresp_clear(&r);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"body\":\"x\",\"digest\":\"10m\"}", "digest"},
        {"{\"body\":\"x\",\"digest\":{}}", "digest.window"},
        {"{\"body\":\"x\",\"digest\":{\"window\":10}}", "digest.window"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"ten minutes\"}}", "digest.window"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"500ms\"}}", "digest.window"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"30d\"}}", "digest.window"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"10m\",\"key\":\"{{nope}}\"}}", "digest.key"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"10m\",\"key\":\"{{digest.count}}\"}}", "digest.key"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"10m\",\"key\":\"\"}}", "digest.key"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"10m\",\"key\":7}}", "digest.key"},
        {"{\"body\":\"x\",\"digest\":{\"window\":\"10m\",\"size\":3}}", "digest.size"},
        {"{\"body\":\"{{digest.nope}}\"}", "body"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hreq(&r, "PUT", "/v1/templates/liked/sms", bad[i].body);
        assert_problem(&r, 422, bad[i].field);
        hresp_clear(&r);
    }
    /* nothing was written by the refused ones */
    hreq(&r, "GET", "/v1/templates/liked/sms", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_template_digest),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
