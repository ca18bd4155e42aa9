/* Unit tests for the pure parts of HTTP providers: the webhook request
 * builder and response classifier, Retry-After and header parsing
 * (src/provider/webhook.c, http.c). No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "provider/webhook.h"

#include <jansson.h>
#include <string.h>

/* 2026-11-30T00:00:00Z */
#define NOW_MS INT64_C(1795996800000)

static prov_http_resp_t resp(int status, const char *reason, const char *headers)
{
    prov_http_resp_t r = {
        .result = HTTP_DONE,
        .error = "",
        .status = status,
        .reason = reason,
        .headers = headers,
        .headers_len = strlen(headers),
        .body = "",
        .now_ms = NOW_MS,
    };
    return r;
}

static void test_classify_table(void **st)
{
    static const struct {
        int status;
        const char *reason, *headers;
        send_class_t cls;
        int64_t after;
        const char *error, *msg_id;
    } cases[] = {
        {200, "OK", "", SEND_OK, 0, "", ""},
        {204, "No Content", "X-Message-Id: abc-1\r\n", SEND_OK, 0, "", "abc-1"},
        {299, "", "x-message-id:   spaced  \r\n", SEND_OK, 0, "", "spaced"},
        {429, "Too Many Requests", "Retry-After: 30\r\n", SEND_THROTTLED, 30000, "HTTP 429 Too Many Requests", ""},
        {429, "", "", SEND_THROTTLED, 0, "HTTP 429", ""},
        {500, "Internal Server Error", "", SEND_RETRY, 0, "HTTP 500 Internal Server Error", ""},
        {503, "Service Unavailable", "Content-Type: text/plain\r\nretry-after: 5\r\n", SEND_RETRY, 5000,
         "HTTP 503 Service Unavailable", ""},
        {502, "Bad Gateway", "", SEND_RETRY, 0, "HTTP 502 Bad Gateway", ""},
        {408, "Request Timeout", "", SEND_RETRY, 0, "HTTP 408 Request Timeout", ""},
        {400, "Bad Request", "Retry-After: 9\r\n", SEND_PERMANENT, 0, "HTTP 400 Bad Request", ""},
        {404, "Not Found", "", SEND_PERMANENT, 0, "HTTP 404 Not Found", ""},
        {422, "Unprocessable Entity", "", SEND_PERMANENT, 0, "HTTP 422 Unprocessable Entity", ""},
        {401, "Unauthorized", "", SEND_FATAL, 0, "HTTP 401 Unauthorized", ""},
        {403, "Forbidden", "", SEND_FATAL, 0, "HTTP 403 Forbidden", ""},
        {301, "Moved Permanently", "", SEND_RETRY, 0, "HTTP 301 Moved Permanently", ""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        prov_http_resp_t r = resp(cases[i].status, cases[i].reason, cases[i].headers);
        send_result_t res;
        memset(&res, 0x5a, sizeof(res)); /* everything must be set */
        webhook_classify(&r, &res);
        assert_int_equal(res.cls, cases[i].cls);
        assert_int_equal(res.code, cases[i].status);
        assert_int_equal(res.retry_after_ms, cases[i].after);
        assert_string_equal(res.error, cases[i].error);
        assert_string_equal(res.msg_id, cases[i].msg_id);
        assert_false(res.address_invalid);
    }
}

static void test_classify_transport(void **st)
{
    static const struct {
        prov_http_xfer_result_t result;
        const char *prefix;
    } cases[] = {
        {HTTP_TIMEOUT, "timeout: "},
        {HTTP_CONNECT, "connect: "},
        {HTTP_SHUTDOWN, "shutdown: "},
        {HTTP_FAILED, "transfer: "},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        prov_http_resp_t r = resp(0, "", "");
        r.result = cases[i].result;
        r.error = "boom";
        send_result_t res;
        webhook_classify(&r, &res);
        assert_int_equal(res.cls, SEND_RETRY);
        assert_int_equal(res.code, 0);
        assert_int_equal(strncmp(res.error, cases[i].prefix, strlen(cases[i].prefix)), 0);
        assert_non_null(strstr(res.error, "boom"));
    }
}

static void test_retry_after(void **st)
{
#define RA(s) http_retry_after_ms((s), strlen(s), NOW_MS)
    assert_int_equal(RA("120"), 120000);
    assert_int_equal(RA("0"), 0);
    assert_int_equal(RA(""), 0);
    assert_int_equal(RA("soon"), 0);
    assert_int_equal(RA("-5"), 0);
    assert_int_equal(RA("99999999"), 86400000); /* capped at a day */
    assert_int_equal(RA("Mon, 30 Nov 2026 00:01:30 GMT"), 90000); /* IMF-fixdate */
    assert_int_equal(RA("Monday, 30-Nov-26 00:00:10 GMT"), 10000); /* RFC 850 */
    assert_int_equal(RA("Mon Nov 30 00:00:05 2026"), 5000); /* asctime */
    assert_int_equal(RA("Sun, 29 Nov 2026 23:00:00 GMT"), 0); /* in the past */
    assert_int_equal(http_retry_after_ms("7xyz", 1, NOW_MS), 7000); /* length counts, not NUL */
#undef RA
}

static void test_header_lookup(void **st)
{
    prov_http_resp_t r = resp(200, "OK", "Content-Type: a\r\nRetry-After:\t3 \r\napns-id: X\r\n");
    const char *v;
    size_t n;
    assert_true(prov_http_header(&r, "retry-after", &v, &n));
    assert_int_equal(n, 1);
    assert_memory_equal(v, "3", 1);
    assert_true(prov_http_header(&r, "APNS-ID", &v, &n));
    assert_int_equal(n, 1);
    assert_false(prov_http_header(&r, "Retry", &v, &n)); /* a prefix is not the name */
    assert_false(prov_http_header(&r, "missing", &v, &n));
}

static void test_build_request(void **st)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_NOTIFICATION;
    n.channel = CH_WEBHOOK;
    n.notification_id = HSTR("0123abcd");
    n.event_id = HSTR("ev-1");
    n.user_id = HSTR("bob");
    n.title = HSTR("T\xff\"itle");
    webhook_conf_t c = {.url = "https://hooks.example/n", .authorization = "Bearer s3cret", .timeout_ms = 1234};
    prov_http_req_t req;
    prov_http_req_init(&req);
    assert_int_equal(webhook_build(&c, &n, &req), HR_OK);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url.data, "https://hooks.example/n");
    assert_int_equal(req.timeout_ms, 1234);
    assert_string_equal(buf_cstr(&req.headers), "Content-Type: application/json\n"
                                                "Idempotency-Key: 0123abcd\n"
                                                "Authorization: Bearer s3cret\n");
    json_error_t err;
    json_t *j = json_loadb(req.body.data, req.body.len, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "notification_id")), "0123abcd");
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "webhook");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "T\xef\xbf\xbd\"itle");
    json_decref(j);

    /* Rebuilding resets: no headers left over, no Authorization without one. */
    c.authorization = NULL;
    assert_int_equal(webhook_build(&c, &n, &req), HR_OK);
    assert_string_equal(buf_cstr(&req.headers), "Content-Type: application/json\n"
                                                "Idempotency-Key: 0123abcd\n");

    /* The trace context goes on as a traceparent header, and in the body. */
    n.traceparent = HSTR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal(webhook_build(&c, &n, &req), HR_OK);
    assert_string_equal(buf_cstr(&req.headers),
                        "Content-Type: application/json\n"
                        "Idempotency-Key: 0123abcd\n"
                        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n");
    j = json_loadb(req.body.data, req.body.len, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "traceparent")),
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    json_decref(j);
    /* anything else a record may carry is not put on the wire */
    static const char *const bad[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Evil: 1",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "junk",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        n.traceparent = HSTR(bad[i]);
        assert_int_equal(webhook_build(&c, &n, &req), HR_OK);
        assert_string_equal(buf_cstr(&req.headers), "Content-Type: application/json\n"
                                                    "Idempotency-Key: 0123abcd\n");
    }
    prov_http_req_release(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_transport),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_build_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
