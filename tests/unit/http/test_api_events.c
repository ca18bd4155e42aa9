/*
 * HTTP API tests: POST /v1/events: validation, publishing to raw-events, 503 when
 * the bus cannot take them, many clients at once.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char good_batch[] =
    "[{\"event_id\":\"ev-good-1\",\"type\":\"comment\",\"actor\":\"kylie\","
    "\"audience\":{\"users\":[\"u1\",\"u2\"]},\"data\":{\"text\":\"hi\"}},"
    " {\"event_id\":\"ev-good-2\",\"type\":\"restock\",\"audience\":{\"topic\":\"product:iphone15\"},"
    "\"priority\":\"high\"},"
    " {\"event_id\":\"ev-good-3\",\"type\":\"post\",\"actor\":\"kylie\","
    "\"audience\":{\"followers_of\":\"kylie\"},\"channels\":[\"push\",\"inapp\"]}]";

static void test_events(void **state)
{
    hresp_t r;

    /* a batch with one bad event publishes nothing */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-bad-0\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-bad-1\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-bad-2\",\"type\":\"t\"},"
         " {\"event_id\":\"ev-bad-3\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}]");
    assert_problem(&r, 422, "[2].audience");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-bad-4\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\",7]}}]");
    assert_problem(&r, 422, "[0].audience.users[1]");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "[{\"event_id\":\"ev-bad-5\",\"type\":\"t\","
                                   "\"audience\":{\"users\":[\"u1\"]}}, 42]");
    assert_problem(&r, 422, "[1]");
    hresp_clear(&r);

    /* a good batch of 3 */
    hreq(&r, "POST", "/v1/events", good_batch);
    assert_ok_json(&r, 202);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 3);
    json_t *ids = json_object_get(r.json, "event_ids");
    assert_int_equal(json_array_size(ids), 3);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "ev-good-1");
    assert_string_equal(json_string_value(json_array_get(ids, 2)), "ev-good-3");
    hresp_clear(&r);

    json_t *seen = drain_raw(3, 300);
    assert_int_equal(json_array_size(seen), 3);
    assert_true(ids_has(seen, "ev-good-1"));
    assert_true(ids_has(seen, "ev-good-2"));
    assert_true(ids_has(seen, "ev-good-3"));
    json_decref(seen);

    /* one object */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"ev-one\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_ok_json(&r, 202);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 1);
    hresp_clear(&r);

    /* CloudEvents, structured and batch; a charset parameter is fine */
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents+json; charset=utf-8",
            "{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"type\":\"com.shop.restock\","
            "\"source\":\"/shop\",\"time\":\"2024-05-01T12:00:00Z\",\"subject\":\"shop\","
            "\"data\":{\"audience\":{\"topic\":\"product:iphone15\"},\"sku\":\"iphone15\"}}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents-batch+json",
            "[{\"specversion\":\"1.0\",\"id\":\"ce-2\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents-batch+json",
            "{\"specversion\":\"1.0\",\"id\":\"ce-bad\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents+json",
            "{\"specversion\":\"1.0\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}");
    assert_problem(&r, 422, "id");
    hresp_clear(&r);

    seen = drain_raw(3, 300);
    assert_int_equal(json_array_size(seen), 3);
    assert_true(ids_has(seen, "ev-one"));
    assert_true(ids_has(seen, "ce-1"));
    assert_true(ids_has(seen, "ce-2"));
    json_decref(seen);

    /* bad input of every kind; none of it may reach the bus */
    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-x\",\"type\":");
    assert_problem(&r, 400, "body");
    assert_true(json_is_integer(json_object_get(r.json, "line")));
    assert_true(json_is_integer(json_object_get(r.json, "column")));
    assert_non_null(strstr(jstr(r.json, "detail"), "line 1"));
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "");
    assert_problem(&r, 400, "body");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"a\",\"event_id\":\"b\"}");
    assert_problem(&r, 400, "body"); /* duplicate keys are refused */
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":42,\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-p\",\"type\":\"t\",\"priority\":5,"
                                   "\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "priority");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "[]");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);

    hreq_ct(&r, "POST", "/v1/events", "text/plain",
            "{\"event_id\":\"ev-ct\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 415, "Content-Type");
    hresp_clear(&r);

    /* 1001 events: over the batch limit (and under the byte limit) */
    {
        buf_t b;
        buf_init(&b, 0);
        buf_append_str(&b, "[");
        for (int i = 0; i < 1001; i++) buf_printf(&b, "%s{}", i ? "," : "");
        buf_append_str(&b, "]");
        hreq(&r, "POST", "/v1/events", buf_cstr(&b));
        assert_problem(&r, 422, "body");
        hresp_clear(&r);
        buf_release(&b);
    }

    seen = drain_raw(0, 500);
    assert_int_equal(json_array_size(seen), 0);
    json_decref(seen);

    assert_true(METRIC_VALUE(events_accepted) >= 6);
    assert_true(METRIC_VALUE(events_rejected) >= 10);
}

/* A bus that cannot take the events turns into 503 with Retry-After. The
 * broken bus belongs to a second server of its own, so nothing changes
 * under the fixture's running server. */
static void test_events_unavailable(void **state)
{
    hresp_t r;
    /* a bus without raw-events makes the publish fail */
    char path[256];
    snprintf(path, sizeof(path), "%s/bus-empty", F.dir);
    bus_opts_t bo = {.backend = "embedded", .dir = path, .fsync = "never"};
    app_t app = {.cfg = &F.cfg, .store = F.app.store};
    assert_int_equal(bus_open(&bo, &app.bus), HR_OK);
    http_server_t *srv = NULL;
    assert_int_equal(http_start(&app, "127.0.0.1:0", &srv), HR_OK);

    hreq_at(http_port(srv), &r, "POST", "/v1/events", NULL,
            "{\"event_id\":\"ev-nobus\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 503, NULL);
    assert_string_equal(r.retry_after, "1");
    hresp_clear(&r);
    hreq_at(http_port(srv), &r, "GET", "/readyz", NULL, NULL);
    assert_problem(&r, 503, NULL);
    hresp_clear(&r);

    http_stop(srv);
    bus_close(app.bus);

    /* the fixture's server was never touched */
    hreq(&r, "GET", "/readyz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
}

/* Many clients at once: every batch is acknowledged and every event lands
 * on raw-events exactly once. */
static void test_concurrent_publish(void **state)
{
    enum { CLIENTS = 40, PER_BATCH = 5 };
    CURLM *m = curl_multi_init();
    CURL *easy[CLIENTS];
    hresp_t resp[CLIENTS];
    char *bodies[CLIENTS];
    struct curl_slist *hdrs = auth_header(curl_slist_append(NULL, "Content-Type: application/json"));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/events", F.port);
    for (int c = 0; c < CLIENTS; c++) {
        buf_t b;
        buf_init(&b, 0);
        buf_append_str(&b, "[");
        for (int i = 0; i < PER_BATCH; i++)
            buf_printf(&b, "%s{\"event_id\":\"ev-c%d-%d\",\"type\":\"t\","
                           "\"audience\":{\"users\":[\"u%d\"]}}",
                       i ? "," : "", c, i, i);
        buf_append_str(&b, "]");
        bodies[c] = (char *)buf_cstr(&b); /* freed below */
        memset(&resp[c], 0, sizeof(resp[c]));
        easy[c] = curl_easy_init();
        curl_easy_setopt(easy[c], CURLOPT_URL, url);
        curl_easy_setopt(easy[c], CURLOPT_POSTFIELDS, bodies[c]);
        curl_easy_setopt(easy[c], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy[c], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy[c], CURLOPT_WRITEDATA, &resp[c]);
        curl_easy_setopt(easy[c], CURLOPT_TIMEOUT, 60L);
        curl_multi_add_handle(m, easy[c]);
    }
    int running = 1;
    while (running) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int c = 0; c < CLIENTS; c++) {
        curl_easy_getinfo(easy[c], CURLINFO_RESPONSE_CODE, &resp[c].status);
        if (resp[c].status != 202) fail_msg("client %d: %ld %s", c, resp[c].status, resp[c].body);
        curl_multi_remove_handle(m, easy[c]);
        curl_easy_cleanup(easy[c]);
        hresp_clear(&resp[c]);
        free(bodies[c]);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(m);

    json_t *seen = drain_raw(CLIENTS * PER_BATCH, 300);
    assert_int_equal(json_array_size(seen), CLIENTS * PER_BATCH);
    char id[64];
    for (int c = 0; c < CLIENTS; c++)
        for (int i = 0; i < PER_BATCH; i++) {
            snprintf(id, sizeof(id), "ev-c%d-%d", c, i);
            assert_true(ids_has(seen, id));
        }
    json_decref(seen);
}

/* Fail early: an event fan-out could only dead-letter is refused. */
static void test_fail_early_without_template(void **state)
{
    (void)state;
    hresp_t r;
    /* no template for the type, no content: 422 naming type */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-1\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "type");
    assert_non_null(strstr(r.body, "untemplated"));
    hresp_clear(&r);
    /* in a batch the field carries the index; nothing of the batch is published */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"fe-2\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"fe-3\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"channels\":[\"push\"]}]");
    assert_problem(&r, 422, "[1].type");
    hresp_clear(&r);
    /* top-level content alone names no channel */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-4\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"content\":{\"title\":\"Hi\"}}");
    assert_problem(&r, 422, "channels");
    hresp_clear(&r);
    /* bad content is named */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-5\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"content\":{\"pager\":{\"body\":\"x\"}}}");
    assert_problem(&r, 422, "content.pager");
    hresp_clear(&r);
    /* inline content: accepted (per channel, or for all with channels) */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"fe-6\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"content\":{\"push\":{\"title\":\"Hi\",\"body\":\"there\"}}},"
         " {\"event_id\":\"fe-7\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"channels\":[\"email\"],\"content\":{\"title\":\"Hi\",\"body\":\"there\"}}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    json_t *seen = drain_raw(2, 100);
    assert_true(ids_has(seen, "fe-6"));
    assert_true(ids_has(seen, "fe-7"));
    assert_false(ids_has(seen, "fe-2"));
    json_decref(seen);
    /* once a template exists, the same event is accepted (the cached answer
     * goes with the template change) */
    template_rec_t t = {.event_type = "untemplated", .channel = CH_SMS, .locale = "en",
                        .title = "", .body = "b"};
    assert_int_equal(store_template_put(F.app.store, &t), HR_OK);
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-1\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    seen = drain_raw(1, 100);
    assert_true(ids_has(seen, "fe-1"));
    json_decref(seen);
    /* the event's own channels must include one fan-out can render: the type
     * has an sms template only, so push alone is refused, push + sms is not */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-8\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"channels\":[\"push\"]}");
    assert_problem(&r, 422, "channels");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"fe-9\",\"type\":\"untemplated\",\"audience\":{\"users\":[\"u1\"]},"
         "\"channels\":[\"push\",\"sms\"]}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    seen = drain_raw(1, 100);
    assert_true(ids_has(seen, "fe-9"));
    assert_false(ids_has(seen, "fe-8"));
    json_decref(seen);
}

/* The fixture, plus a push template for each event type the tests send:
 * an event of a type without any template is refused (see
 * test_fail_early_without_template). */
static int setup(void **state)
{
    int r = api_setup(state);
    static const char *const types[] = {"t", "comment", "restock", "post", "com.shop.restock"};
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(types); i++) {
        template_rec_t t = {.event_type = (char *)types[i], .channel = CH_PUSH, .locale = "en",
                            .title = "t", .body = "b"};
        if (store_template_put(F.app.store, &t) != HR_OK) r = -1;
    }
    return r;
}

#define TP_H "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_E "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

/* The published record of event id among docs, or NULL. */
static json_t *doc_of(json_t *docs, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(docs, i, v)
    {
        const char *e = jstr(v, "event_id") ? jstr(v, "event_id") : jstr(v, "id");
        if (e && strcmp(e, id) == 0) return v;
    }
    return NULL;
}

/* The traceparent header: refused with 400 naming it when malformed or
 * repeated (nothing published); applied to the events of a batch without
 * their own; an event's own wins and is written in version 00 form. */
static void test_traceparent(void **state)
{
    (void)state;
    hresp_t r;
    static const char one[] =
        "{\"event_id\":\"tp-0\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}";
    static const char *const bad[] = {
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "traceparent: nonsense",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        F.extra_headers[0] = bad[i];
        hreq(&r, "POST", "/v1/events", one);
        assert_problem(&r, 400, "traceparent");
        hresp_clear(&r);
    }
    /* twice, even when both are valid */
    F.extra_headers[0] = "traceparent: " TP_H;
    F.extra_headers[1] = "traceparent: " TP_E;
    hreq(&r, "POST", "/v1/events", one);
    assert_problem(&r, 400, "traceparent");
    hresp_clear(&r);
    F.extra_headers[1] = NULL;
    json_t *none = drain_raw(1, 100);
    assert_int_equal(json_array_size(none), 0); /* nothing was published */
    json_decref(none);

    /* a malformed field is a 422 naming it, with its index */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"tp-x\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"tp-y\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]},"
         "\"traceparent\":\"00-xyz\"}]");
    assert_problem(&r, 422, "[1].traceparent");
    hresp_clear(&r);

    /* the header goes to each event without its own */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"tp-1\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"tp-2\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]},"
         "\"traceparent\":\"" TP_E "\"},"
         " {\"event_id\":\"tp-3\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]},"
         "\"traceparent\":\"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future\"}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    F.extra_headers[0] = NULL;
    /* a CloudEvent's distributed tracing attribute, without a header */
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents+json",
            "{\"specversion\":\"1.0\",\"id\":\"tp-ce\",\"type\":\"comment\",\"source\":\"/s\","
            "\"traceparent\":\"" TP_H "\",\"data\":{\"audience\":{\"users\":[\"u1\"]}}}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    /* no header, no field: none */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"tp-4\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);

    json_t *docs = drain_raw_docs(5, 100);
    assert_int_equal(json_array_size(docs), 5);
    assert_string_equal(jstr(doc_of(docs, "tp-1"), "traceparent"), TP_H);
    assert_string_equal(jstr(doc_of(docs, "tp-2"), "traceparent"), TP_E);
    assert_string_equal(jstr(doc_of(docs, "tp-3"), "traceparent"),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_string_equal(jstr(doc_of(docs, "tp-ce"), "traceparent"), TP_H);
    assert_non_null(doc_of(docs, "tp-4"));
    assert_null(json_object_get(doc_of(docs, "tp-4"), "traceparent"));
    json_decref(docs);
}

/* The 202 names the accepted ids, escaped as JSON; a batch whose parsed
 * document outgrows the HTTP thread's first arena chunk (280 events with
 * ~100 bytes of data each, just under the fixture's body limit) is published whole, its data intact; after it a
 * body that is not JSON, or repeats a key, is refused the same as ever
 * (400 naming body and where), and the next request is served. */
static void test_accepted_answer_and_big_batch(void **state)
{
    (void)state;
    hresp_t r;
    /* escapes are jansson's to read (event_scan_batch leaves them) */
    uint64_t fast0 = METRIC_VALUE(events_fast_bodies);
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"q\\\"uo\\\\te/\\u00e9\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_int_equal(r.status, 202);
    assert_string_equal(r.ctype, "application/json");
    assert_string_equal(r.body, "{\"accepted\":1,\"event_ids\":[\"q\\\"uo\\\\te/\xc3\xa9\"]}");
    hresp_clear(&r);
    json_t *seen = drain_raw(1, 200);
    assert_true(ids_has(seen, "q\"uo\\te/\xc3\xa9"));
    json_decref(seen);

    buf_t b;
    buf_init(&b, 0);
    char pad[101];
    memset(pad, 'x', 100);
    pad[100] = '\0';
    buf_append_str(&b, "[");
    for (int i = 0; i < 280; i++)
        buf_printf(&b, "%s{\"event_id\":\"big-%d\",\"type\":\"comment\",\"audience\":{\"users\":"
                       "[\"u%d\",\"v%d\"]},\"data\":{\"i\":%d,\"pad\":\"%s\",\"k\":[1,{\"z\":null}]}}",
                   i ? "," : "", i, i, i, i, pad);
    buf_append_str(&b, "]");
    assert_true(b.len < MAX_BODY);
    assert_int_equal(METRIC_VALUE(events_fast_bodies), fast0);
    hreq(&r, "POST", "/v1/events", buf_cstr(&b));
    assert_int_equal(r.status, 202);
    /* the common shape: read without a JSON tree, the same records */
    assert_int_equal(METRIC_VALUE(events_fast_bodies), fast0 + 1);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 280);
    assert_int_equal(json_array_size(json_object_get(r.json, "event_ids")), 280);
    hresp_clear(&r);
    buf_release(&b);
    json_t *docs = drain_raw_docs(280, 300);
    assert_int_equal(json_array_size(docs), 280);
    size_t i;
    json_t *d;
    int found = 0;
    json_array_foreach(docs, i, d) {
        int n = -1;
        assert_int_equal(sscanf(jstr(d, "event_id"), "big-%d", &n), 1);
        json_t *data = json_object_get(d, "data");
        assert_int_equal(json_integer_value(json_object_get(data, "i")), n);
        assert_string_equal(jstr(data, "pad"), pad);
        assert_int_equal(json_array_size(json_object_get(data, "k")), 2);
        assert_int_equal(json_array_size(json_object_get(json_object_get(d, "audience"), "users")), 2);
        found++;
    }
    assert_int_equal(found, 280);
    json_decref(docs);

    hreq(&r, "POST", "/v1/events", "[{\"event_id\":\"cut\",\"type\":");
    assert_problem(&r, 400, "body");
    assert_true(json_is_integer(json_object_get(r.json, "position")));
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"dup\",\"event_id\":\"dup2\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 400, "body");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"after\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_int_equal(r.status, 202);
    hresp_clear(&r);
    seen = drain_raw(1, 200);
    assert_int_equal(json_array_size(seen), 1);
    assert_true(ids_has(seen, "after"));
    json_decref(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_accepted_answer_and_big_batch),
        cmocka_unit_test(test_concurrent_publish),
        cmocka_unit_test(test_events_unavailable),
        cmocka_unit_test(test_fail_early_without_template),
        cmocka_unit_test(test_traceparent),
    };
    return cmocka_run_group_tests(tests, setup, api_teardown);
}
