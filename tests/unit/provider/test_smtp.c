/* Unit tests for the smtp provider's pure parts (src/provider/smtp.c): the
 * message builder stated as data (envelope, header lines, parts), header
 * injection, the Message-ID, and the classifier's table of SMTP replies
 * and libcurl results; config checks at open. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "prov_fixture.h"
#include "provider/smtp.h"

#include <curl/curl.h>
#include <string.h>

/* 2026-11-30T00:00:00Z, a Monday */
#define NOW_MS INT64_C(1795996800000)

static const smtp_conf_t conf = {
    .url = "smtp://mail.example.com:587",
    .from = "herald@example.com",
    .from_name = "Herald \"Ops\"",
    .message_id_domain = "mail.example.com",
    .tls = PROV_SMTP_TLS_REQUIRE,
    .username = "mailer",
    .password = "pw",
    .ca_file = "/etc/ca.pem",
    .timeout_ms = 7000,
};

static notif_t notif(const char *id, const char *addr, const char *title, const char *body)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_NOTIFICATION;
    n.channel = CH_EMAIL;
    n.notification_id = HSTR(id);
    n.address = HSTR(addr);
    n.title = HSTR(title);
    n.body = HSTR(body);
    return n;
}

static const char *part(prov_smtp_req_t *r, int i) { return buf_cstr(&r->parts[i].data); }

/* The exact message for a fixture notification. */
static void test_build_exact(void **st)
{
    prov_smtp_req_t r;
    prov_smtp_req_init(&r);
    notif_t n = notif("0123abcd", "bob@example.org", "Your order shipped", "Hi Bob,\nit's <on> the way & soon.\r\nBye");
    char why[128];
    assert_int_equal(smtp_build(&conf, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
    assert_string_equal(r.url.data, "smtp://mail.example.com:587");
    assert_string_equal(r.mail_from.data, "<herald@example.com>");
    assert_string_equal(r.rcpt.data, "<bob@example.org>");
    assert_string_equal(buf_cstr(&r.headers), "From: \"Herald \\\"Ops\\\"\" <herald@example.com>\n"
                                              "To: bob@example.org\n"
                                              "Subject: Your order shipped\n"
                                              "Date: Mon, 30 Nov 2026 00:00:00 +0000\n"
                                              "Message-ID: <0123abcd@mail.example.com>\n");
    assert_int_equal(r.nparts, 2);
    assert_string_equal(r.parts[0].type, "text/plain; charset=UTF-8");
    assert_string_equal(part(&r, 0), "Hi Bob,\r\nit's <on> the way & soon.\r\nBye");
    assert_string_equal(r.parts[1].type, "text/html; charset=UTF-8");
    assert_string_equal(part(&r, 1), "Hi Bob,<br>\r\nit&#39;s &lt;on&gt; the way &amp; soon.<br>\r\nBye");
    assert_int_equal(r.tls, PROV_SMTP_TLS_REQUIRE);
    assert_int_equal(r.timeout_ms, 7000);
    assert_string_equal(r.username, "mailer");
    assert_string_equal(r.password, "pw");
    assert_string_equal(r.ca_file, "/etc/ca.pem");
    prov_smtp_req_release(&r);
}

/* Non-ASCII subjects and names become RFC 2047 encoded words, folded so
 * that no word passes 75 characters and no character is split. */
static void test_build_encoded_words(void **st)
{
    prov_smtp_req_t r;
    prov_smtp_req_init(&r);
    smtp_conf_t c = conf;
    c.from_name = "Hérald";
    notif_t n = notif("id-1", "a@example.org", "Café ☕", "b");
    char why[128];
    assert_int_equal(smtp_build(&c, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
    const char *h = buf_cstr(&r.headers);
    assert_non_null(strstr(h, "From: =?UTF-8?B?SMOpcmFsZA==?= <herald@example.com>\n"));
    assert_non_null(strstr(h, "Subject: =?UTF-8?B?Q2Fmw6kg4piV?=\n"));

    /* 40 two-byte characters: 80 bytes over two words, split between characters */
    char title[200] = "";
    for (int i = 0; i < 40; i++) strcat(title, "é");
    n.title = HSTR(title);
    assert_int_equal(smtp_build(&c, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
    h = buf_cstr(&r.headers);
    const char *s = strstr(h, "Subject: ");
    assert_non_null(s);
    const char *e1 = strstr(s, "?=\n =?UTF-8?B?");
    assert_non_null(e1); /* folded */
    /* 44 bytes (22 characters) fit the first word: 60 base64 characters */
    assert_int_equal((int)(e1 - (s + strlen("Subject: =?UTF-8?B?"))), 60);
    prov_smtp_req_release(&r);
}

/* CR/LF cannot split a header: an address with one is refused, a title
 * with one loses it (control characters become spaces, then the
 * non-printable rule encodes nothing: the subject is plain again). */
static void test_header_injection(void **st)
{
    prov_smtp_req_t r;
    prov_smtp_req_init(&r);
    char why[128] = "";
    static const char *const bad[] = {
        "a@example.org\r\nBcc: x@example.net", "a@example.org\nX: y", "a@example.org>", "<a@example.org",
        "a b@example.org", "", "no-at-sign", "a@b@c", "a@example.org, c@example.org", "a@",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        notif_t n = notif("id", bad[i], "t", "b");
        assert_int_equal(smtp_build(&conf, &n, NOW_MS, &r, why, sizeof(why)), HR_INVALID);
        assert_non_null(strstr(why, "address"));
    }
    notif_t n = notif("id", "a@example.org", "Hi\r\nBcc: x@example.net\r\n\r\nbody", "b");
    assert_int_equal(smtp_build(&conf, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
    const char *h = buf_cstr(&r.headers);
    assert_non_null(strstr(h, "Subject: Hi  Bcc: x@example.net    body\n"));
    assert_null(strstr(h, "\nBcc"));
    assert_null(strchr(h, '\r'));
    /* every line is a header of ours or a fold */
    int lines = 0;
    for (const char *p = h; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 5);
    prov_smtp_req_release(&r);
}

/* The html value of the metadata object is the HTML part; anything else
 * in metadata (not an object, no html string) falls back to the body. */
static void test_build_metadata_html(void **st)
{
    prov_smtp_req_t r;
    prov_smtp_req_init(&r);
    char why[128];
    notif_t n = notif("id", "a@example.org", "t", "a & b");
    n.metadata = HSTR("{\"html\":\"<h1>Hi</h1>\\n<p>x</p>\",\"other\":1}");
    assert_int_equal(smtp_build(&conf, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
    assert_string_equal(part(&r, 1), "<h1>Hi</h1>\r\n<p>x</p>");
    assert_string_equal(part(&r, 0), "a & b");
    static const char *const others[] = {"[1]", "{\"html\":5}", "not json", "{\"x\":\"<p>\"}"};
    for (size_t i = 0; i < ARRAY_LEN(others); i++) {
        n.metadata = HSTR(others[i]);
        assert_int_equal(smtp_build(&conf, &n, NOW_MS, &r, why, sizeof(why)), HR_OK);
        assert_string_equal(part(&r, 1), "a &amp; b");
    }
    prov_smtp_req_release(&r);
}

/* The Message-ID is a function of the notification id: a retry carries
 * the same one; ids with other characters are hex-encoded. */
static void test_message_id(void **st)
{
    char a[128], b[128];
    notif_t n = notif("abc-1.x_y", "a@example.org", "", "");
    smtp_message_id(&conf, &n, a, sizeof(a));
    assert_string_equal(a, "abc-1.x_y@mail.example.com");
    n.attempt = 3;
    smtp_message_id(&conf, &n, b, sizeof(b));
    assert_string_equal(a, b);
    n = notif("a b<c>@", "a@example.org", "", "");
    smtp_message_id(&conf, &n, a, sizeof(a));
    assert_string_equal(a, "6120623c633e40@mail.example.com");
    char small[8];
    assert_int_equal(smtp_message_id(&conf, &n, small, sizeof(small)), 7);
    assert_string_equal(small, "6120623");
}

static prov_http_resp_t reply(prov_http_xfer_result_t res, int code, int curl_code, const char *error,
                              const char *lines)
{
    prov_http_resp_t r = {
        .result = res,
        .error = error,
        .status = code,
        .curl_code = curl_code,
        .reason = "",
        .headers = lines,
        .headers_len = strlen(lines),
        .body = "",
        .now_ms = NOW_MS,
    };
    return r;
}

static void test_classify_table(void **st)
{
    static const char *const session = "220 mx ESMTP\r\n250-mx\r\n250 AUTH PLAIN\r\n";
    static const struct {
        prov_http_xfer_result_t res;
        int code, curl;
        const char *error, *lines;
        send_class_t cls;
        bool addr;
        const char *text;
    } cases[] = {
        {HTTP_DONE, 250, CURLE_OK, "", "250 2.0.0 OK queued\r\n", SEND_OK, false, ""},
        {HTTP_FAILED, 550, CURLE_SEND_ERROR, "RCPT failed: 550",
         "250 OK\r\n550 5.1.1 <x@y>: no such user\r\n221 Bye\r\n", SEND_PERMANENT, true,
         "SMTP 550 5.1.1 <x@y>: no such user (RCPT failed: 550)"},
        {HTTP_FAILED, 551, CURLE_SEND_ERROR, "RCPT failed: 551", "", SEND_PERMANENT, true,
         "SMTP 551 (RCPT failed: 551)"},
        {HTTP_FAILED, 553, CURLE_SEND_ERROR, "RCPT failed: 553", "553 bad mailbox\r\n", SEND_PERMANENT,
         true, "SMTP 553 bad mailbox (RCPT failed: 553)"},
        {HTTP_FAILED, 554, CURLE_WEIRD_SERVER_REPLY, "DATA failed", "554 5.7.1 spam\r\n", SEND_PERMANENT,
         false, "SMTP 554 5.7.1 spam (DATA failed)"},
        {HTTP_FAILED, 552, CURLE_SEND_ERROR, "RCPT failed: 552", "552 over quota\r\n", SEND_PERMANENT,
         false, "SMTP 552 over quota (RCPT failed: 552)"},
        {HTTP_FAILED, 550, CURLE_SEND_ERROR, "MAIL failed: 550", "550 sender rejected\r\n", SEND_FATAL,
         false, "SMTP 550 sender rejected (MAIL failed: 550)"},
        {HTTP_FAILED, 535, CURLE_LOGIN_DENIED, "Login denied", "535 5.7.8 bad credentials\r\n", SEND_FATAL,
         false, "SMTP 535 5.7.8 bad credentials (Login denied)"},
        {HTTP_FAILED, 530, CURLE_SEND_ERROR, "MAIL failed: 530", "530 5.7.0 auth required\r\n", SEND_FATAL,
         false, "SMTP 530 5.7.0 auth required (MAIL failed: 530)"},
        {HTTP_FAILED, 421, CURLE_WEIRD_SERVER_REPLY, "Got unexpected smtp-server response: 421",
         "421 busy\r\n", SEND_RETRY, false, "SMTP 421 busy (Got unexpected smtp-server response: 421)"},
        {HTTP_FAILED, 450, CURLE_SEND_ERROR, "RCPT failed: 450", "450 mailbox busy\r\n", SEND_RETRY, false,
         "SMTP 450 mailbox busy (RCPT failed: 450)"},
        {HTTP_FAILED, 451, CURLE_SEND_ERROR, "RCPT failed: 451", "451 4.3.0 later\r\n", SEND_RETRY, false,
         "SMTP 451 4.3.0 later (RCPT failed: 451)"},
        {HTTP_FAILED, 452, CURLE_SEND_ERROR, "RCPT failed: 452", "452 full\r\n", SEND_RETRY, false,
         "SMTP 452 full (RCPT failed: 452)"},
        {HTTP_TIMEOUT, 250, CURLE_OPERATION_TIMEDOUT, "Operation timed out", session, SEND_RETRY, false,
         "timeout: Operation timed out"},
        {HTTP_CONNECT, 0, CURLE_COULDNT_CONNECT, "Connection refused", "", SEND_RETRY, false,
         "connect: Connection refused"},
        {HTTP_SHUTDOWN, 0, CURLE_ABORTED_BY_CALLBACK, "cancelled at shutdown", "", SEND_RETRY, false,
         "shutdown: cancelled at shutdown"},
        {HTTP_FAILED, 250, CURLE_RECV_ERROR, "Connection reset", session, SEND_RETRY, false,
         "transfer: Connection reset"},
        {HTTP_FAILED, 250, CURLE_USE_SSL_FAILED, "STARTTLS not supported.", session, SEND_FATAL, false,
         "STARTTLS is required (tls=require) and the server does not offer it"},
        {HTTP_FAILED, 220, CURLE_PEER_FAILED_VERIFICATION, "self-signed certificate", "", SEND_FATAL,
         false, "TLS: self-signed certificate"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        prov_http_resp_t r = reply(cases[i].res, cases[i].code, cases[i].curl, cases[i].error, cases[i].lines);
        send_result_t res;
        memset(&res, 0xab, sizeof(res));
        smtp_classify(&r, "id-9@mail.example.com", &res);
        if (res.cls != cases[i].cls || res.address_invalid != cases[i].addr ||
            strcmp(res.error, cases[i].text) != 0)
            fail_msg("case %zu: class %s addr %d error '%s'", i, send_class_name(res.cls),
                     res.address_invalid, res.error);
        assert_int_equal(res.retry_after_ms, 0);
        if (res.cls == SEND_OK) assert_string_equal(res.msg_id, "id-9@mail.example.com");
        else assert_string_equal(res.msg_id, "");
        if (cases[i].res == HTTP_FAILED && cases[i].code >= 400) assert_int_equal(res.code, cases[i].code);
    }
}

/* Opens provider "mail" with a valid url and from, then k = v (may
 * override them); the open's answer, why filled. */
static hr_t try_open(const char *k, const char *v, char *why, size_t wl)
{
    static fx_t f;
    char key[64];
    snprintf(key, sizeof(key), "provider.mail.%s", k);
    fx_init(&f, "channel.email.providers", "mail", "provider.mail.type", "smtp", "provider.mail.url",
            "smtp://127.0.0.1:1", "provider.mail.from", "a@example.com", key, v, NULL);
    provider_set_t *s = NULL;
    hr_t r = provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, wl);
    provider_set_close(s);
    fx_release(&f);
    return r;
}

/* Config checks at open name the key and never print a password. */
static void test_open_checks(void **st)
{
    char why[256];
    static const struct {
        const char *k, *v;
    } bad[] = {
        {"url", "http://x"}, {"url", "smtp://x\r\nX"}, {"from", "a@example.com\r\nX: y"},
        {"from", "nobody"}, {"from_name", "A\nB"}, {"tls", "maybe"}, {"password_file", "/nonexistent/pw"},
        {"secret", "x"}, {"message_id_domain", "a b"}, {"timeout_ms", "0"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        why[0] = '\0';
        assert_int_equal(try_open(bad[i].k, bad[i].v, why, sizeof(why)), HR_INVALID);
        char key[64];
        snprintf(key, sizeof(key), "provider.mail.%s", bad[i].k);
        if (!strstr(why, key)) fail_msg("case %zu: '%s' does not name %s", i, why, key);
    }
    assert_int_equal(try_open("password", "hunter2", why, sizeof(why)), HR_OK);
    assert_int_equal(try_open("tls", "none", why, sizeof(why)), HR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_exact),
        cmocka_unit_test(test_build_encoded_words),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_build_metadata_html),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_open_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
