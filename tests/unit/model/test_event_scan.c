/*
 * test_event_scan.c - the fast path for event bodies (event_scan_batch):
 * what it takes gives the records jansson + event_from_json give
 * (../../fuzz/event_scan_diff.h), and what it does not follow - every
 * invalid body among it - is left to jansson.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../fuzz/event_scan_diff.h"
#include "core/buf.h"
#include "model/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS "\"audience\":{\"users\":[\"u1\",\"u2\"]}"

static void taken(const char *body)
{
    bool took;
    const char *why = scan_diff(body, strlen(body), &took);
    if (why) fail_msg("%s: %s", why, body);
    if (!took) fail_msg("the fast path declined: %s", body);
}

static void declined(const char *body)
{
    bool took;
    const char *why = scan_diff(body, strlen(body), &took);
    if (why) fail_msg("%s: %s", why, body);
    if (took) fail_msg("the fast path took: %s", body);
}

static void test_common_shapes_taken(void **st)
{
    (void)st;
    taken("{\"event_id\":\"e1\",\"type\":\"posted\"," USERS "}");
    taken("[{\"event_id\":\"e1\",\"type\":\"posted\",\"actor\":\"a\",\"category\":\"social\","
          "\"channels\":[\"push\"],\"audience\":{\"users\":[\"u00000001\",\"u00000002\"]},"
          "\"data\":{\"text\":\"hello there\",\"n\":12}},"
          "{\"event_id\":\"e2\",\"type\":\"posted\",\"audience\":{\"topic\":\"news\"}}]");
    /* every member the fast path follows, whitespace everywhere */
    taken(" [ { \"event_id\" : \"e3\" , \"type\" : \"t\" , \"source\" : \"\" , \"time\" : "
          "\"2024-05-01T12:00:00.250Z\" , \"actor\" : \"ann\" , \"tenant\" : \"acme\" , "
          "\"category\" : \"\" , \"priority\" : \"high\" , \"channels\" : [ \"push\" , \"email\" , "
          "\"push\" ] , \"audience\" : { \"followers_of\" : \"kim\" } , \"send_at\" : "
          "\"1969-01-01T00:00:00Z\" , \"traceparent\" : "
          "\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\" , \"data\" : { \"a\" : [ 1 , "
          "-2 , 0 , true , false , null , { } , [ ] ] , \"b\" : { \"c\" : \"\xc3\xa9\" } } } ] \n");
    taken("{\"data\":{\"k\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"big\":999999999999999999,"
          "\"neg\":-999999999999999999},\"event_id\":\"\xc3\xa9v\",\"type\":\"t\"," USERS "}");
}

static void test_declined_shapes(void **st)
{
    (void)st;
    /* valid, but not followed: jansson takes them */
    declined("{\"event_id\":\"e\\u0031\",\"type\":\"t\"," USERS "}");      /* an escape */
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"x\":1.5}}"); /* a real */
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"x\":1e3}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"x\":-0}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"x\":1234567890123456789}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"extra\":1}");  /* unknown member */
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"actor\":null}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"content\":{\"title\":\"x\"}}");
    declined("{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"t\",\"source\":\"s\","
             "\"data\":{" USERS "}}");
    char deep[200] = "{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"x\":";
    for (int i = 0; i < 33; i++) strcat(deep, "[");
    for (int i = 0; i < 33; i++) strcat(deep, "]");
    strcat(deep, "}}");
    declined(deep);
    /* invalid: jansson or event_from_json names the problem */
    declined("");
    declined("[]");
    declined("[{\"event_id\":\"e\",\"type\":\"t\"," USERS "},]");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS "} x");
    declined("{\"event_id\":\"e\",\"event_id\":\"f\",\"type\":\"t\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"a\":1,\"a\":2}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":{\"a\":01}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"," USERS ",\"data\":[1]}");
    declined("{\"event_id\":\"\xc3\",\"type\":\"t\"," USERS "}");           /* cut UTF-8 */
    declined("{\"event_id\":\"\xed\xa0\x80\",\"type\":\"t\"," USERS "}");   /* a surrogate */
    declined("{\"event_id\":\"e\x01\",\"type\":\"t\"," USERS "}");
    declined("{\"event_id\":\"e\x7f\",\"type\":\"t\"," USERS "}");          /* DEL in an id */
    declined("{\"event_id\":\"\",\"type\":\"t\"," USERS "}");
    declined("{\"type\":\"t\"," USERS "}");
    declined("{\"event_id\":\"e\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\"}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"actor\":\"\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"tenant\":\"Acme\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"priority\":\"urgent\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"channels\":[]," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"channels\":[\"fax\"]," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"time\":\"yesterday\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"send_at\":\"2999-01-01T00:00:00Z\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"traceparent\":\"00-0\"," USERS "}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[]}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"a\"],\"topic\":\"b\"}}");
    declined("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"group\":\"b\"}}");
}

/* The limits of ids and counts, on both sides of each. */
static void test_limits(void **st)
{
    (void)st;
    buf_t b;
    buf_init(&b, 0);
    char id[202];
    memset(id, 'i', sizeof(id));
    id[200] = '\0'; /* 200 bytes: taken */
    buf_printf(&b, "{\"event_id\":\"%s\",\"type\":\"t\",\"audience\":{\"users\":[\"%s\"]}}", id, id);
    taken(b.data);
    id[200] = 'i';
    id[201] = '\0'; /* 201 bytes: not */
    buf_reset(&b);
    buf_printf(&b, "{\"event_id\":\"%s\",\"type\":\"t\"," USERS "}", id);
    declined(b.data);
    buf_reset(&b);
    buf_printf(&b, "{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"%s\"]}}", id);
    declined(b.data);
    char type[130];
    memset(type, 't', sizeof(type));
    type[128] = '\0';
    buf_reset(&b);
    buf_printf(&b, "{\"event_id\":\"e\",\"type\":\"%s\"," USERS "}", type);
    taken(b.data);
    type[128] = 't';
    type[129] = '\0';
    buf_reset(&b);
    buf_printf(&b, "{\"event_id\":\"e\",\"type\":\"%s\"," USERS "}", type);
    declined(b.data);
    /* 10,000 users taken, 10,001 not */
    for (int extra = 0; extra < 2; extra++) {
        buf_reset(&b);
        buf_printf(&b, "{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[");
        for (int i = 0; i < 10000 + extra; i++) buf_printf(&b, "%s\"u%d\"", i ? "," : "", i);
        buf_printf(&b, "]}}");
        if (extra) declined(b.data);
        else taken(b.data);
    }
    /* 1,000 events in a body taken, 1,001 not */
    for (int extra = 0; extra < 2; extra++) {
        buf_reset(&b);
        buf_printf(&b, "[");
        for (int i = 0; i < 1000 + extra; i++)
            buf_printf(&b, "%s{\"event_id\":\"e%d\",\"type\":\"t\"," USERS "}", i ? "," : "", i);
        buf_printf(&b, "]");
        bool took;
        buf_t s;
        buf_init(&s, 0);
        event_t *evs = NULL;
        int n = 0;
        bool arr;
        took = event_scan_batch(b.data, b.len, 1000, &s, &evs, &n, &arr) == HR_OK;
        assert_int_equal(took, !extra);
        assert_int_equal(n, extra ? 0 : 1000);
        for (int i = 0; i < n; i++) event_clear(&evs[i]);
        free(evs);
        buf_release(&s);
    }
    buf_release(&b);
}

/* What the events look like: strings, users, data's compact text. */
static void test_event_fields(void **st)
{
    (void)st;
    const char *body = "{\"event_id\":\"e9\",\"type\":\"liked\",\"actor\":\"ann\",\"tenant\":\"acme\","
                       "\"audience\":{\"users\":[\"u1\",\"u22\"]},\"data\":{ \"post\" : [1, 2] }}";
    buf_t s;
    buf_init(&s, 0);
    event_t *evs = NULL;
    int n = 0;
    bool arr = true;
    assert_int_equal(event_scan_batch(body, strlen(body), 10, &s, &evs, &n, &arr), HR_OK);
    assert_int_equal(n, 1);
    assert_false(arr);
    assert_true(evs[0].rec);
    assert_string_equal(evs[0].event_id, "e9");
    assert_string_equal(evs[0].type, "liked");
    assert_string_equal(evs[0].actor, "ann");
    assert_string_equal(evs[0].tenant, "acme");
    assert_string_equal(evs[0].category, "default");
    assert_int_equal(evs[0].priority, PRIO_NORMAL);
    assert_int_equal(evs[0].audience, AUD_USERS);
    event_users_t it;
    event_users_begin(&evs[0], &it);
    assert_string_equal(event_users_next(&it), "u1");
    assert_string_equal(event_users_next(&it), "u22");
    assert_null(event_users_next(&it));
    assert_string_equal(evs[0].data_text, "{\"post\":[1,2]}");
    json_t *d = event_data(&evs[0]);
    assert_non_null(d);
    assert_int_equal(json_array_size(json_object_get(d, "post")), 2);
    event_clear(&evs[0]);
    free(evs);
    buf_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_shapes_taken),
        cmocka_unit_test(test_declined_shapes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_event_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
