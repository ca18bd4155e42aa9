/*
 * HTTP API tests: the server itself: listen strings, routing (404, 405, OPTIONS, path
 * parameters) and body limits.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Listen strings are checked, and a taken port is an error, not a share. */
static void test_listen(void **state)
{
    http_server_t *s = NULL;
    static const char *const bad[] = {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                                       "127.0.0.1:65536", "[::1", "[::1]8080"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(http_start(&F.app, bad[i], &s), HR_INVALID);
        assert_null(s);
    }
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", F.port);
    assert_int_equal(http_start(&F.app, taken, &s), HR_ERR);
    assert_null(s);

    /* a second server on another ephemeral port runs beside the first */
    assert_int_equal(http_start(&F.app, ":0", &s), HR_OK);
    assert_true(http_port(s) > 0);
    assert_int_not_equal(http_port(s), F.port);
    http_stop(s);
}

static void test_routing_errors(void **state)
{
    hresp_t r;
    hreq(&r, "GET", "/v1/nothing-here", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u1/unknown", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/users/u1", NULL);
    assert_problem(&r, 405, NULL);
    assert_non_null(strstr(r.allow, "GET"));
    assert_non_null(strstr(r.allow, "PUT"));
    assert_non_null(strstr(r.allow, "DELETE"));
    assert_null(strstr(r.allow, "POST"));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/events", NULL);
    assert_problem(&r, 405, NULL);
    assert_non_null(strstr(r.allow, "POST"));
    hresp_clear(&r);

    hreq(&r, "OPTIONS", "/v1/topics/t/subscribers", NULL);
    assert_int_equal(r.status, 204);
    assert_non_null(strstr(r.allow, "POST"));
    assert_non_null(strstr(r.allow, "GET"));
    hresp_clear(&r);

    /* bad path parameters: malformed escape, control character, too long */
    hreq(&r, "GET", "/v1/users/%zz", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/a%01b", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad%FFutf8", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    char path[400] = "/v1/notifications/";
    memset(path + strlen(path), 'n', 201);
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 400, "notification_id");
    hresp_clear(&r);
    path[strlen("/v1/notifications/") + 200] = '\0'; /* 200 bytes is fine */
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* A body over the limit is refused from its Content-Length before it is
 * sent; one without Content-Length (chunked) once it passes the limit. */
static void test_body_limit(void **state)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n",
                     MAX_BODY * 4);
    char *out = raw_exchange(req, (size_t)n, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_null(strstr(out, "100 Continue"));
    assert_non_null(strstr(out, "application/problem+json"));
    assert_non_null(strstr(out, "\"field\":\"body\""));
    free(out);

    /* same without Expect: still answered without reading the body */
    n = snprintf(req, sizeof(req),
                 "PUT /v1/users/u-big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n{\"email\":",
                 MAX_BODY + 1);
    out = raw_exchange(req, (size_t)n, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    free(out);

    /* chunked: the server drains to the end and answers 413 */
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    char chunk[8192];
    memset(chunk, ' ', sizeof(chunk));
    for (int i = 0; i < (MAX_BODY / (int)sizeof(chunk)) + 2; i++) {
        buf_printf(&b, "%zx\r\n", sizeof(chunk));
        buf_append(&b, chunk, sizeof(chunk));
        buf_append_str(&b, "\r\n");
    }
    buf_append_str(&b, "0\r\n\r\n");
    out = raw_exchange(b.data, b.len, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_non_null(strstr(out, "\"field\":\"body\""));
    free(out);
    buf_release(&b);

    /* just under the limit is read (and then judged on its content) */
    buf_init(&b, 0);
    buf_append_str(&b, "{\"pad\":\"");
    while (b.len < MAX_BODY - 100) buf_append_str(&b, "xxxxxxxxxxxxxxxx");
    buf_append_str(&b, "\"}");
    hresp_t r;
    hreq(&r, "POST", "/v1/events", buf_cstr(&b));
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);
    buf_release(&b);

    /* the server still works */
    hreq(&r, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
}

/* Raw bytes the request line must not carry, smuggling-prone framing and
 * "%00" in a query value: 400 problem+json, never a truncated id. */
static void test_request_framing(void **state)
{
    static const struct {
        const char *req;
        size_t len;
        const char *field;
    } cases[] = {
#define C(s, f) {s, sizeof(s) - 1, f}
        C("GET /v1/users/a\0b HTTP/1.1\r\nHost: x\r\n\r\n", "\"field\":\"target\""),
        C("GET /v1/users/a b HTTP/1.1\r\nHost: x\r\n\r\n", "\"field\":\"target\""),
        C("GET /v1/users/a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", "\"field\":\"target\""),
        C("GET /v1/users/u1/notifications?limit=5%00x HTTP/1.1\r\nHost: x\r\n\r\n",
          "\"field\":\"limit\""),
        C("GET /v1/users/u1/notifications?cursor=ab%00cd HTTP/1.1\r\nHost: x\r\n\r\n",
          "\"field\":\"cursor\""),
        C("PUT /v1/users/u1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}",
          "\"field\":\"Content-Length\""),
        C("PUT /v1/users/u1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
          "\"field\":\"Content-Length\""),
#undef C
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *out = raw_exchange(cases[i].req, cases[i].len, 5000);
        if (!strstr(out, "HTTP/1.1 400") || !strstr(out, "application/problem+json") ||
            !strstr(out, cases[i].field))
            fail_msg("case %zu: %s", i, out);
        free(out);
    }
    /* none of them created the user the truncated or spaced id would name */
    hresp_t r;
    hreq(&r, "GET", "/v1/users/a", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u1", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    /* a plain request on a fresh connection still works */
    hreq(&r, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_request_framing),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
