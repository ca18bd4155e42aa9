/*
 * Tests for the Twilio SMS provider (src/provider/twilio.c): the exact
 * request against the .http files of fixtures/twilio, the class of each documented
 * error body (its .json files), the status callback signature
 * against Twilio's documented example, config errors that name the key
 * and never the token, and the provider end to end over the libcurl engine
 * against the scripted local server (fake_http.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_http.h"
#include "fixture_file.h"
#include "prov_fixture.h"
#include "provider/twilio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW_MS INT64_C(1795996800000)

/* "METHOD URL\nheaders\nbody" of a built request, as the .http fixtures
 * spell it. */
static char *render(const prov_http_req_t *req)
{
    size_t cap = req->url.len + req->headers.len + req->body.len + 64;
    char *s = malloc(cap);
    snprintf(s, cap, "%s %.*s\n%.*s\n%.*s\n", req->method, (int)req->url.len, req->url.data,
             (int)req->headers.len, req->headers.data ? req->headers.data : "", (int)req->body.len,
             req->body.data ? req->body.data : "");
    return s;
}

static notif_t sample(void)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_NOTIFICATION;
    n.channel = CH_SMS;
    n.notification_id = HSTR("0123456789abcdef0123456789abcdef");
    n.user_id = HSTR("alice");
    n.address = HSTR("+15558675310");
    n.title = HSTR("Your order shipped");
    n.body = HSTR("Parcel 42 arrives Tuesday & is insured: 100% (ok?)");
    return n;
}

static twilio_conf_t conf(void)
{
    twilio_conf_t c = {
        .url = TWILIO_DEFAULT_URL,
        .account_sid = "AC00000000000000000000000000000001",
        .auth_token = "tok-secret-1",
        .from = "+15005550006",
        .status_callback_url = "https://herald.example.com/",
        .instance = "sms-a",
        .timeout_ms = 5000,
    };
    return c;
}

static void test_build_exact(void **st)
{
    (void)st;
    twilio_conf_t c = conf();
    notif_t n = sample();
    prov_http_req_t req;
    prov_http_req_init(&req);
    assert_int_equal(twilio_build(&c, &n, &req), HR_OK);
    char *got = render(&req);
    char *want = fixture_load("twilio/send_request.http", NULL);
    assert_string_equal(got, want);
    assert_int_equal(req.timeout_ms, 5000);
    free(got);
    free(want);

    /* a messaging service instead of From, no callback URL, a body that
     * repeats the title is sent alone, a base URL with a trailing slash */
    c.url = "http://127.0.0.1:9/";
    c.from = NULL;
    c.messaging_service_sid = "MG00000000000000000000000000000009";
    c.status_callback_url = NULL;
    n.title = HSTR("Parcel 42");
    n.body = HSTR("Parcel 42 arrives Tuesday");
    assert_int_equal(twilio_build(&c, &n, &req), HR_OK);
    got = render(&req);
    want = fixture_load("twilio/send_request_service.http", NULL);
    assert_string_equal(got, want);
    free(got);
    free(want);

    /* title only, body only */
    n.title = HSTR("Code 123456");
    n.body = HSTR("");
    assert_int_equal(twilio_build(&c, &n, &req), HR_OK);
    assert_non_null(strstr(buf_cstr(&req.body), "&Body=Code%20123456"));
    n.title = HSTR("");
    n.body = HSTR("only body");
    assert_int_equal(twilio_build(&c, &n, &req), HR_OK);
    assert_non_null(strstr(buf_cstr(&req.body), "&Body=only%20body"));

    /* no number: the builder refuses */
    n.address = HSTR("");
    assert_int_equal(twilio_build(&c, &n, &req), HR_INVALID);
    prov_http_req_release(&req);
}

static void test_classify_fixtures(void **st)
{
    (void)st;
    static const struct {
        int status;
        const char *headers, *file;
        send_class_t cls;
        bool dead;
        int64_t after;
        const char *error, *msg_id;
    } cases[] = {
        {201, "", "created_201.json", SEND_OK, false, 0, "", "SM1f0e8ae6ade43cb3c0ce4525424e404f"},
        {200, "", "created_201.json", SEND_OK, false, 0, "", "SM1f0e8ae6ade43cb3c0ce4525424e404f"},
        {400, "", "error_21211_invalid_to.json", SEND_PERMANENT, true, 0,
         "HTTP 400: Twilio 21211 The 'To' number", ""},
        {400, "", "error_21614_not_mobile.json", SEND_PERMANENT, true, 0, "HTTP 400: Twilio 21614", ""},
        {400, "", "error_21610_unsubscribed.json", SEND_PERMANENT, true, 0,
         "HTTP 400: Twilio 21610 Attempt to send to unsubscribed recipient", ""},
        {400, "", "error_21602_no_body.json", SEND_PERMANENT, false, 0,
         "HTTP 400: Twilio 21602 Message body is required.", ""},
        {401, "", "error_20003_auth.json", SEND_FATAL, false, 0, "HTTP 401: Twilio 20003 Authenticate", ""},
        {403, "", NULL, SEND_FATAL, false, 0, "HTTP 403 Forbidden", ""},
        {404, "", "error_20404_not_found.json", SEND_FATAL, false, 0, "HTTP 404: Twilio 20404", ""},
        {429, "Retry-After: 3\r\n", "error_20429_throttled.json", SEND_THROTTLED, false, 3000,
         "HTTP 429: Twilio 20429 Too Many Requests", ""},
        {500, "", "error_20500_internal.json", SEND_RETRY, false, 0, "HTTP 500: Twilio 20500", ""},
        {503, "Retry-After: 2\r\n", NULL, SEND_RETRY, false, 2000, "HTTP 503 Service Unavailable", ""},
        {502, "", "", SEND_RETRY, false, 0, "HTTP 502 Bad Gateway", ""}, /* an HTML page: not JSON */
        {413, "", NULL, SEND_PERMANENT, false, 0, "HTTP 413", ""},
    };
    static const char *reasons[] = {[200] = "OK", [201] = "Created", [400] = "Bad Request",
                                    [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
                                    [413] = "Payload Too Large", [429] = "Too Many Requests",
                                    [500] = "Internal Server Error", [502] = "Bad Gateway",
                                    [503] = "Service Unavailable"};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char path[128];
        char *body = NULL;
        size_t blen = 0;
        if (cases[i].file && *cases[i].file) {
            snprintf(path, sizeof(path), "twilio/%s", cases[i].file);
            body = fixture_load(path, &blen);
        } else if (cases[i].file) {
            body = strdup("<html>bad gateway</html>");
            blen = strlen(body);
        }
        prov_http_resp_t r = {.result = HTTP_DONE, .status = cases[i].status,
                              .reason = reasons[cases[i].status], .headers = cases[i].headers,
                              .headers_len = strlen(cases[i].headers), .body = body,
                              .body_len = blen, .now_ms = NOW_MS};
        send_result_t res;
        memset(&res, 0x5a, sizeof(res));
        twilio_classify(&r, &res);
        if (res.cls != cases[i].cls) fail_msg("case %zu: class %d, want %d", i, res.cls, cases[i].cls);
        assert_int_equal(res.code, cases[i].status);
        assert_int_equal(res.address_invalid, cases[i].dead);
        assert_int_equal(res.retry_after_ms, cases[i].after);
        if (strncmp(res.error, cases[i].error, strlen(cases[i].error)) != 0)
            fail_msg("case %zu: error \"%s\", want \"%s...\"", i, res.error, cases[i].error);
        if (!*cases[i].error) assert_string_equal(res.error, "");
        assert_string_equal(res.msg_id, cases[i].msg_id);
        free(body);
    }
    /* transport failures: RETRY */
    prov_http_resp_t t = {.result = HTTP_TIMEOUT, .error = "timed out", .now_ms = NOW_MS};
    send_result_t res;
    twilio_classify(&t, &res);
    assert_int_equal(res.cls, SEND_RETRY);
    assert_int_equal(res.code, 0);
    t.result = HTTP_CONNECT;
    twilio_classify(&t, &res);
    assert_int_equal(res.cls, SEND_RETRY);
}

/* Twilio's documented example (auth token 12345) and the same with one
 * byte changed anywhere. */
static void test_signature(void **st)
{
    (void)st;
    twilio_param_t p[] = {
        {"To", "+18005551212"},     {"From", "+12349013030"},   {"Digits", "1234"},
        {"CallSid", "CA1234567890ABCDE"}, {"Caller", "+12349013030"},
    };
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    char sig[29];
    twilio_signature("12345", url, p, 5, sig);
    assert_string_equal(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert_true(twilio_signature_ok("12345", url, p, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok("12346", url, p, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", p, 5,
                                     "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok("12345", url, p, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"));
    assert_false(twilio_signature_ok("12345", url, p, 5, NULL));
    p[2].value = "1235";
    assert_false(twilio_signature_ok("12345", url, p, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
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

static hr_t open_sms(fx_t *f, const char *extra_key, const char *extra_val, provider_set_t **s,
                     char *why, size_t why_len)
{
    fx_init(f, "channel.sms.providers", "sms-a", "provider.sms-a.type", "twilio",
            "provider.sms-a.url", fake_http_url(srv, ""), "provider.sms-a.account_sid", "AC42",
            "provider.sms-a.from", "+15005550006", "provider.sms-a.max_in_flight", "4", extra_key,
            extra_val, NULL);
    return provider_set_open(&f->cfg, NULL, CH_SMS, fx_done, f, s, why, why_len);
}

/* The token from a file (trimmed), every notification posted once to the
 * account's Messages.json and completed once. */
static void test_provider_end_to_end(void **st)
{
    (void)st;
    char tok[] = "/tmp/herald-twilio-tok-XXXXXX";
    int fd = mkstemp(tok);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "  s3cret-token\n", 15), 15);
    close(fd);
    static fx_t f;
    provider_set_t *s = NULL;
    char why[256] = "";
    if (open_sms(&f, "provider.sms-a.auth_token_file", tok, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    int before = fake_http_path_count(srv, "/2010-04-01/Accounts/AC42/Messages.json");
    for (int i = 0; i < 12; i++) fx_notif(&f, i, CH_SMS, "t", "");
    fx_deliver(&f, s, 12, 4);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        assert_string_equal(f.res[i].msg_id, f.ids[i]); /* no sid in the answer: our id */
    }
    assert_int_equal(fake_http_path_count(srv, "/2010-04-01/Accounts/AC42/Messages.json") - before, 12);
    provider_set_close(s);
    fx_release(&f);
    unlink(tok);
}

/* Config errors name the key; the token never appears in them. */
static void test_config_errors(void **st)
{
    (void)st;
    static fx_t f;
    provider_set_t *s = NULL;
    char why[256] = "";
    assert_int_equal(open_sms(&f, "provider.sms-a.timeout_ms", "5", &s, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "auth_token"));
    fx_release(&f);
    assert_int_equal(open_sms(&f, "provider.sms-a.auth_token_file", "/nonexistent/tok", &s, why,
                              sizeof(why)),
                     HR_INVALID);
    assert_non_null(strstr(why, "provider.sms-a.auth_token_file"));
    assert_non_null(strstr(why, "/nonexistent/tok"));
    fx_release(&f);
    fx_init(&f, "channel.sms.providers", "sms-a", "provider.sms-a.type", "twilio",
            "provider.sms-a.account_sid", "AC42", "provider.sms-a.auth_token", "hush-hush", NULL);
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_SMS, fx_done, &f, &s, why, sizeof(why)),
                     HR_INVALID);
    assert_non_null(strstr(why, "provider.sms-a.from"));
    assert_null(strstr(why, "hush-hush"));
    fx_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_exact),
        cmocka_unit_test(test_classify_fixtures),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_provider_end_to_end),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
