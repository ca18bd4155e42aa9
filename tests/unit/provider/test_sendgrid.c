/*
 * Tests for the SendGrid e-mail provider (src/provider/sendgrid.c): the
 * exact request against the .http files of fixtures/sendgrid, the class of
 * each documented error (its .json files), the signed event webhook check
 * with a P-256 key generated here, config errors, and the provider end to
 * end over the libcurl engine against the scripted local server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/base64.h"
#include "fake_http.h"
#include "fixture_file.h"
#include "prov_fixture.h"
#include "provider/sendgrid.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS INT64_C(1795996800000) /* 2026-11-30T00:00:00Z */

static char *render(const prov_http_req_t *req)
{
    size_t cap = req->url.len + req->headers.len + req->body.len + 64;
    char *s = malloc(cap);
    snprintf(s, cap, "%s %.*s\n%.*s\n%.*s\n", req->method, (int)req->url.len, req->url.data,
             (int)req->headers.len, req->headers.data ? req->headers.data : "", (int)req->body.len,
             req->body.data ? req->body.data : "");
    return s;
}

static void test_build_exact(void **st)
{
    (void)st;
    sendgrid_conf_t c = {.url = SENDGRID_DEFAULT_URL, .api_key = "SG.test-key-1",
                         .from = "noreply@shop.example", .from_name = "Shop \xc3\x9c", .timeout_ms = 7000};
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.channel = CH_EMAIL;
    n.notification_id = HSTR("0123456789abcdef0123456789abcdef");
    n.address = HSTR("kylie@example.com");
    n.title = HSTR("Your order shipped");
    n.body = HSTR("Hi Kylie,\nyour parcel <#42> ships today & arrives \"Tuesday\".\nThanks");
    prov_http_req_t req;
    prov_http_req_init(&req);
    assert_int_equal(sendgrid_build(&c, &n, &req), HR_OK);
    char *got = render(&req), *want = fixture_load("sendgrid/send_request.http", NULL);
    assert_string_equal(got, want);
    assert_int_equal(req.timeout_ms, 7000);
    free(got);
    free(want);

    /* no title: the body's first line, cut to 78 bytes; html from the
     * metadata; no from_name */
    c.url = "http://127.0.0.1:9/";
    c.from_name = NULL;
    n.title = HSTR("");
    n.body = HSTR("Weekly digest: 3 new posts from people you follow and one very long line that goes on\n"
                  "second line");
    n.metadata = HSTR("{\"html\":\"<p>Weekly <b>digest</b></p>\",\"other\":1}");
    assert_int_equal(sendgrid_build(&c, &n, &req), HR_OK);
    got = render(&req);
    want = fixture_load("sendgrid/send_request_meta_html.http", NULL);
    assert_string_equal(got, want);
    free(got);
    free(want);

    /* a subject cut never splits a UTF-8 sequence: 77 ASCII bytes + "é" */
    char longline[100];
    memset(longline, 'a', 77);
    memcpy(longline + 77, "\xc3\xa9 tail", 8);
    n.body = HSTR(longline);
    n.metadata = HSTR("not json");
    assert_int_equal(sendgrid_build(&c, &n, &req), HR_OK);
    json_t *doc = json_loadb(req.body.data, req.body.len, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(strlen(json_string_value(json_object_get(doc, "subject"))), 77);
    /* metadata without html: the escaped body */
    json_t *html = json_array_get(json_object_get(doc, "content"), 1);
    assert_string_equal(json_string_value(json_object_get(html, "type")), "text/html");
    assert_non_null(strstr(json_string_value(json_object_get(html, "value")), "\xc3\xa9 tail"));
    json_decref(doc);

    /* refused: no address; invalid UTF-8 */
    n.body = HSTR("bad \xff byte");
    assert_int_equal(sendgrid_build(&c, &n, &req), HR_INVALID);
    n.body = HSTR("fine");
    n.address = HSTR("");
    assert_int_equal(sendgrid_build(&c, &n, &req), HR_INVALID);
    prov_http_req_release(&req);
}

static void test_classify_fixtures(void **st)
{
    (void)st;
    static const struct {
        int status;
        const char *reason, *headers, *file;
        send_class_t cls;
        int64_t after;
        const char *error, *msg_id;
    } cases[] = {
        {202, "Accepted", "X-Message-Id: 14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0\r\n", NULL,
         SEND_OK, 0, "", "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
        {200, "OK", "", NULL, SEND_OK, 0, "", ""},
        {400, "Bad Request", "", "error_400_from.json", SEND_PERMANENT, 0,
         "HTTP 400: SendGrid: from.email: The from object must be provided", ""},
        {401, "Unauthorized", "", "error_401.json", SEND_FATAL, 0,
         "HTTP 401: SendGrid: The provided authorization grant is invalid", ""},
        {403, "Forbidden", "", "error_403.json", SEND_FATAL, 0, "HTTP 403: SendGrid: access forbidden", ""},
        {404, "Not Found", "", NULL, SEND_FATAL, 0, "HTTP 404 Not Found", ""},
        {413, "Payload Too Large", "", "error_413.json", SEND_PERMANENT, 0,
         "HTTP 413: SendGrid: The JSON payload", ""},
        {429, "Too Many Requests", "Retry-After: 4\r\n", "error_429.json", SEND_THROTTLED, 4000,
         "HTTP 429: SendGrid: too many requests", ""},
        /* no Retry-After: X-RateLimit-Reset, epoch seconds 30 s ahead */
        {429, "Too Many Requests", "X-RateLimit-Limit: 600\r\nX-RateLimit-Reset: 1795996830\r\n",
         "error_429.json", SEND_THROTTLED, 30000, "HTTP 429", ""},
        {429, "Too Many Requests", "X-RateLimit-Reset: 1795996000\r\n", NULL, SEND_THROTTLED, 0,
         "HTTP 429", ""}, /* in the past */
        {500, "Internal Server Error", "", "error_500.json", SEND_RETRY, 0,
         "HTTP 500: SendGrid: An internal server error occurred.", ""},
        {503, "Service Unavailable", "Retry-After: 1\r\n", NULL, SEND_RETRY, 1000, "HTTP 503 Service Unavailable", ""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char path[128];
        char *body = NULL;
        size_t blen = 0;
        if (cases[i].file) {
            snprintf(path, sizeof(path), "sendgrid/%s", cases[i].file);
            body = fixture_load(path, &blen);
        }
        prov_http_resp_t r = {.result = HTTP_DONE, .status = cases[i].status, .reason = cases[i].reason,
                              .headers = cases[i].headers, .headers_len = strlen(cases[i].headers),
                              .body = body, .body_len = blen, .now_ms = NOW_MS};
        send_result_t res;
        memset(&res, 0x5a, sizeof(res));
        sendgrid_classify(&r, &res);
        if (res.cls != cases[i].cls) fail_msg("case %zu: class %d, want %d", i, res.cls, cases[i].cls);
        assert_int_equal(res.code, cases[i].status);
        assert_false(res.address_invalid);
        assert_int_equal(res.retry_after_ms, cases[i].after);
        if (strncmp(res.error, cases[i].error, strlen(cases[i].error)) != 0)
            fail_msg("case %zu: error \"%s\", want \"%s...\"", i, res.error, cases[i].error);
        if (!*cases[i].error) assert_string_equal(res.error, "");
        assert_string_equal(res.msg_id, cases[i].msg_id);
        free(body);
    }
    prov_http_resp_t t = {.result = HTTP_FAILED, .error = "connection reset", .now_ms = NOW_MS};
    send_result_t res;
    sendgrid_classify(&t, &res);
    assert_int_equal(res.cls, SEND_RETRY);
}

/* A P-256 key made here: its public half as SendGrid shows it (base64
 * DER), and signatures over timestamp + body. */
static EVP_PKEY *gen_key(char **pub_b64)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_true(n > 0);
    *pub_b64 = base64_encode(der, (size_t)n);
    OPENSSL_free(der);
    return k;
}

static char *sign(EVP_PKEY *k, const char *ts, const char *body)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sl = 0;
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSignUpdate(md, ts, strlen(ts)), 1);
    assert_int_equal(EVP_DigestSignUpdate(md, body, strlen(body)), 1);
    assert_int_equal(EVP_DigestSignFinal(md, NULL, &sl), 1);
    unsigned char *sig = malloc(sl);
    assert_int_equal(EVP_DigestSignFinal(md, sig, &sl), 1);
    EVP_MD_CTX_free(md);
    char *b = base64_encode(sig, sl);
    free(sig);
    return b;
}

static void test_event_signature(void **st)
{
    (void)st;
    char *pub = NULL, *pub2 = NULL;
    EVP_PKEY *k = gen_key(&pub), *k2 = gen_key(&pub2);
    const char *body = "[{\"email\":\"a@example.com\",\"event\":\"delivered\"}]\r\n";
    const char *ts = "1795996800";
    char *sig = sign(k, ts, body);
    assert_int_equal(sendgrid_event_verify(pub, ts, body, strlen(body), sig), HR_OK);
    /* another key, another timestamp, one byte of body, a cut signature */
    assert_int_equal(sendgrid_event_verify(pub2, ts, body, strlen(body), sig), HR_INVALID);
    assert_int_equal(sendgrid_event_verify(pub, "1795996801", body, strlen(body), sig), HR_INVALID);
    assert_int_equal(sendgrid_event_verify(pub, ts, body, strlen(body) - 1, sig), HR_INVALID);
    char cut[16];
    snprintf(cut, sizeof(cut), "%.12s", sig);
    assert_int_equal(sendgrid_event_verify(pub, ts, body, strlen(body), cut), HR_INVALID);
    assert_int_equal(sendgrid_event_verify(pub, ts, body, strlen(body), "not base64!"), HR_INVALID);
    assert_int_equal(sendgrid_event_verify(pub, ts, body, strlen(body), NULL), HR_INVALID);
    assert_int_equal(sendgrid_event_verify(pub, NULL, body, strlen(body), sig), HR_INVALID);
    /* an unusable key is our configuration, not the sender's fault */
    assert_int_equal(sendgrid_event_verify("AAAA", ts, body, strlen(body), sig), HR_DECLINED);
    assert_int_equal(sendgrid_event_verify("", ts, body, strlen(body), sig), HR_DECLINED);
    free(sig);
    free(pub);
    free(pub2);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

/* ------------------------------------------------------ the provider */

static fake_http_t *srv;

static int setup(void **st)
{
    srv = fake_http_start();
    return srv ? 0 : -1;
}

static int teardown(void **st)
{
    fake_http_stop(srv);
    return 0;
}

static void test_provider_end_to_end(void **st)
{
    (void)st;
    static fx_t f;
    fx_init(&f, "channel.email.providers", "mail", "provider.mail.type", "sendgrid",
            "provider.mail.url", fake_http_url(srv, ""), "provider.mail.api_key", "SG.k",
            "provider.mail.from", "noreply@shop.example", "provider.mail.max_in_flight", "3", NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    int before = fake_http_path_count(srv, "/v3/mail/send");
    for (int i = 0; i < 9; i++) fx_notif(&f, i, CH_EMAIL, "subject", "");
    fx_deliver(&f, s, 9, 3);
    for (int i = 0; i < 9; i++) assert_int_equal(f.res[i].cls, SEND_OK);
    assert_int_equal(fake_http_path_count(srv, "/v3/mail/send") - before, 9);
    provider_set_close(s);
    fx_release(&f);

    /* config errors name the key, never the api key */
    fx_init(&f, "channel.email.providers", "mail", "provider.mail.type", "sendgrid",
            "provider.mail.api_key", "SG.secret-value", NULL);
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)),
                     HR_INVALID);
    assert_non_null(strstr(why, "provider.mail.from"));
    assert_null(strstr(why, "SG.secret-value"));
    fx_release(&f);
    fx_init(&f, "channel.email.providers", "mail", "provider.mail.type", "sendgrid",
            "provider.mail.from", "a@b.example", NULL);
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)),
                     HR_INVALID);
    assert_non_null(strstr(why, "api_key"));
    fx_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_exact),
        cmocka_unit_test(test_classify_fixtures),
        cmocka_unit_test(test_event_signature),
        cmocka_unit_test(test_provider_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
