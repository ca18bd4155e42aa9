/*
 * HTTP API tests: GET /v1/dlq and POST /v1/dlq/redrive.
 * Real server, bus and store (api_fixture.h); DLQ records are produced
 * as stage_dead_letter writes them.
 */
#include "api_fixture.h"

#include "stage/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A dead-lettered event, as fan-out writes it (through stage_dead_letter). */
static void dead_event(const char *event_id, const char *reason)
{
    char *ev = xasprintf("{\"event_id\":\"%s\",\"type\":\"welcome\",\"audience\":{\"users\":[\"u\"]},"
                         "\"_accepted_at_us\":1}",
                         event_id);
    bus_msg_t m = {.topic = TOPIC_RAW, .partition = 0, .offset = 7, .key = event_id,
                   .key_len = strlen(event_id), .value = ev, .value_len = strlen(ev)};
    bus_batch_t b;
    bus_batch_init(&b);
    /* key given: the DLQ partition follows it; the fixture's DLQ has one */
    assert_int_equal(stage_dead_letter(&F.app, &m, "fanout", reason, &b), HR_OK);
    assert_int_equal(bus_batch_wait(F.app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    free(ev);
}

static void test_list_and_redrive(void **state)
{
    UNUSED(state);
    bus_topic_opts_t to = {.partitions = 1, .replication = 1, .min_insync = 1, .retention_ms = -1,
                           .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(F.app.bus, TOPIC_DLQ, &to), HR_OK);
    dead_event("dl-1", "no templates for event type 'welcome'");
    dead_event("dl-2", "invalid event: type: missing");
    dead_event("dl-3", "no templates for event type 'welcome'");
    /* dl-1 was claimed by fan-out before it was dead-lettered */
    claim_t c;
    assert_int_equal(store_event_claim(F.app.store, "dl-1", "raw-events/0/7", &c), HR_OK);

    hresp_t r;
    hreq(&r, "GET", "/v1/dlq", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 3);
    json_t *first = json_array_get(items, 0);
    assert_string_equal(jstr(first, "id"), "0-0");
    assert_string_equal(jstr(first, "topic"), TOPIC_RAW);
    assert_string_equal(jstr(first, "stage"), "fanout");
    assert_non_null(strstr(jstr(first, "payload"), "dl-1"));
    assert_true(json_is_false(json_object_get(first, "redriven")));
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    /* filter and pages */
    hreq(&r, "GET", "/v1/dlq?reason=no%20templates&limit=1", NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(jstr(json_array_get(items, 0), "id"), "0-0");
    char path[512];
    snprintf(path, sizeof(path), "/v1/dlq?reason=no%%20templates&limit=1&cursor=%s", jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(jstr(json_array_get(items, 0), "id"), "0-2");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/dlq?since=1h", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/dlq?since=4000000000000", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/dlq?since=yesterday", NULL);
    assert_problem(&r, 400, "since");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/dlq?cursor=abc", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);

    /* one by id: back on raw-events, its claim released */
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"id\":\"0-0\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    json_t *ids = drain_raw(1, 100);
    assert_true(ids_has(ids, "dl-1"));
    json_decref(ids);
    assert_int_equal(store_event_claim(F.app.store, "dl-1", "raw-events/0/8", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);

    /* the rest by reason; then nothing is left to redrive */
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"all\":true,\"reason\":\"no templates\"}");
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "redriven")), 1);
    hresp_clear(&r);
    ids = drain_raw(1, 100);
    assert_true(ids_has(ids, "dl-3"));
    json_decref(ids);
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"all\":true}");
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "redriven")), 1); /* dl-2 */
    hresp_clear(&r);
    json_decref(drain_raw(1, 50));
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"all\":true}");
    assert_ok_json(&r, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "redriven")), 0);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/dlq", NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    for (size_t i = 0; i < json_array_size(items); i++)
        assert_true(json_is_true(json_object_get(json_array_get(items, i), "redriven")));
    hresp_clear(&r);

    /* bad requests */
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"id\":\"0-99\"}");
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"id\":\"zero\"}");
    assert_problem(&r, 422, "id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"id\":\"0-1\",\"all\":true}");
    assert_problem(&r, 422, "id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/dlq/redrive", "{}");
    assert_problem(&r, 422, "all");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/dlq/redrive", "{\"all\":true,\"extra\":1}");
    assert_problem(&r, 422, "extra");
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_redrive),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
