/* Unit tests for the APNs provider (src/provider/apns.c): the exact
 * requests for fixture notifications (fixtures/apns/request_*.txt), the
 * class of each response Apple documents (fixtures/apns/responses/), the
 * ES256 provider token (verified with the public half of a key generated
 * here; reused until token_ttl_s, renewed after it and after
 * ExpiredProviderToken, on a fake clock), open() errors, and the provider
 * end to end against a small scripted APNs stand-in (libmicrohttpd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/base64.h"
#include "provider/apns.h"
#include "provider/provider_int.h"
#include "prov_fixture.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURES HERALD_TEST_DIR "/fixtures/apns"
#define T0 INT64_C(1795996800) /* 2026-11-30T00:00:00Z */
#define TOKEN64 "a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f"
#define BEARER "eyJhbGciOiJFUzI1NiIsImtpZCI6IktFWTEyMzQ1NjcifQ.eyJpc3MiOiJURUFNMTIzNDU2In0.c2ln"

/* ------------------------------------------------------------ helpers */

/* A whole file, NUL-terminated; caller frees. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > cap) buf = realloc(buf, cap = cap ? cap * 2 : 1024);
        buf[n++] = (char)c;
    }
    fclose(f);
    if (!buf) buf = malloc(1);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* The request as the fixture files write it: "METHOD URL", the header
 * lines, a blank line, the body, a newline. */
static char *render(const prov_http_req_t *req)
{
    size_t cap = req->url.len + req->headers.len + req->body.len + 64;
    char *s = malloc(cap);
    snprintf(s, cap, "%s %.*s\n%.*s\n%.*s\n", req->method, (int)req->url.len, req->url.data,
             (int)req->headers.len, req->headers.data ? req->headers.data : "", (int)req->body.len,
             req->body.data ? req->body.data : "");
    return s;
}

static notif_t notif(const char *id, priority_t prio, const char *title, const char *body,
                     const char *token, const char *metadata)
{
    notif_t n = {
        .kind = REC_NOTIFICATION,
        .channel = CH_PUSH,
        .priority = prio,
        .notification_id = HSTR(id),
        .event_id = HSTR("ev-1"),
        .user_id = HSTR("alice"),
        .title = HSTR(title),
        .body = HSTR(body),
        .address = HSTR(token),
        .platform = HSTR("apns"),
        .metadata = HSTR(metadata),
    };
    return n;
}

static apns_conf_t conf(void)
{
    apns_conf_t c = {
        .url = APNS_DEFAULT_URL,
        .topic = "com.example.herald",
        .push_type = "alert",
        .expiration_s = 86400,
        .timeout_ms = 10000,
    };
    return c;
}

/* ------------------------------------------------------------ builder */

static void expect_request(const apns_conf_t *c, const char *bearer, const notif_t *n, const char *fixture)
{
    prov_http_req_t req;
    prov_http_req_init(&req);
    send_result_t res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(apns_build(c, bearer, T0, n, &req, &res), HR_OK);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", FIXTURES, fixture);
    char *want = slurp(path, NULL);
    char *got = render(&req);
    if (strcmp(want, got) != 0) fail_msg("%s differs; built:\n%s", fixture, got);
    assert_int_equal(req.timeout_ms, c->timeout_ms);
    assert_ptr_equal(req.ca_file, c->ca_file);
    assert_ptr_equal(req.cert_file, c->cert_file);
    assert_ptr_equal(req.key_file, c->cert_key_file);
    free(want);
    free(got);
    prov_http_req_release(&req);
}

/* The exact request for four notifications: an alert with every extra,
 * a background push (certificate auth, no apns-id for a non-hex id,
 * expiration 0), a voip push (topic suffix, UTF-8 title) and a bare one. */
static void test_build_requests(void **st)
{
    apns_conf_t c = conf();
    notif_t n = notif("0123456789abcdef0123456789abcdef", PRIO_HIGH, "Your order shipped", "Arrives Tuesday",
                      TOKEN64,
                      "{\"badge\":3,\"sound\":\"default\",\"thread_id\":\"orders\",\"collapse_id\":\"order-42\","
                      "\"data\":{\"order_id\":42,\"deep_link\":\"herald://orders/42\"},\"unrelated\":[1]}");
    expect_request(&c, BEARER, &n, "request_alert.txt");

    apns_conf_t cc = conf();
    cc.expiration_s = 0;
    cc.cert_file = "/etc/herald/apns-cert.pem";
    cc.cert_key_file = "/etc/herald/apns-key.pem";
    cc.ca_file = "/etc/herald/ca.pem";
    n = notif("n-7", PRIO_CRITICAL, "ignored", "ignored", TOKEN64,
              "{\"push_type\":\"background\",\"badge\":1,\"sound\":\"x\",\"thread_id\":\"sync\","
              "\"data\":{\"sync\":{\"since\":1795990000}}}");
    expect_request(&cc, NULL, &n, "request_background.txt");

    apns_conf_t cv = conf();
    cv.push_type = "voip";
    n = notif("fedcba9876543210fedcba9876543210", PRIO_NORMAL, "Anruf von J\xc3\xb6rg", "", TOKEN64,
              "{\"mutable_content\":true,\"content_available\":false}");
    expect_request(&cv, BEARER, &n, "request_voip.txt");
    cv.topic = "com.example.herald.voip"; /* already suffixed: not twice */
    expect_request(&cv, BEARER, &n, "request_voip.txt");

    apns_conf_t cm = conf();
    cm.url = "https://api.sandbox.push.apple.com";
    cm.expiration_s = 60;
    n = notif("0000000000000000000000000000002a", PRIO_LOW, "", "", "ABCDEF0123456789", "");
    expect_request(&cm, NULL, &n, "request_minimal.txt");
}

/* The device token out of the address forms fan-out writes. */
static void test_device_token(void **st)
{
    static const struct {
        const char *address, *token;
        bool found;
    } cases[] = {
        {TOKEN64, TOKEN64, true},
        {"apns:" TOKEN64, TOKEN64, true},
        {"fcm:f00d,apns:abcd,apns:ef01", "abcd", true},
        {"fcm:f00d,bare01", "bare01", true},
        {"apns:", "", true},
        {"fcm:f00d", "", false},
        {"fcm:f00d,", "", false}, /* a trailing comma is no entry */
        {"", "", false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        hstr_t t = {"junk", 4};
        assert_int_equal(apns_device_token(HSTR(cases[i].address), &t), cases[i].found);
        if (t.n != strlen(cases[i].token) || memcmp(t.p, cases[i].token, t.n) != 0)
            fail_msg("case %zu: '%.*s'", i, (int)t.n, t.p);
    }
    /* "apns:<token>" builds the same request as the bare token. */
    apns_conf_t c = conf();
    notif_t n = notif("0123456789abcdef0123456789abcdef", PRIO_HIGH, "Your order shipped", "Arrives Tuesday",
                      "fcm:f00d,apns:" TOKEN64,
                      "{\"badge\":3,\"sound\":\"default\",\"thread_id\":\"orders\",\"collapse_id\":\"order-42\","
                      "\"data\":{\"order_id\":42,\"deep_link\":\"herald://orders/42\"}}");
    expect_request(&c, BEARER, &n, "request_alert.txt");
}

/* Notifications that cannot be sent are PERMANENT results, never
 * requests; a bad device token says address_invalid. */
static void test_build_refusals(void **st)
{
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char long_collapse[128];
    snprintf(long_collapse, sizeof(long_collapse), "{\"collapse_id\":\"%065d\"}", 0);
    static const char *const bad_utf8 = "caf\xc3";
    const struct {
        const char *token, *title, *metadata;
        bool address_invalid;
        const char *error;
    } cases[] = {
        {"", "t", "", true, "no device token"},
        {"apns:", "t", "", true, "no device token"},
        {"fcm:f00d", "t", "", false, "no APNs device in the address"},
        {"apns:xyz0,fcm:f00d", "t", "", true, "device token is not hex"},
        {"xyz0", "t", "", true, "device token is not hex"},
        {"abc", "t", "", true, "device token is not hex"},
        {"a0b1 c2d3", "t", "", true, "device token is not hex"},
        {TOKEN64, "t", "[1,2]", false, "metadata is not a JSON object"},
        {TOKEN64, "t", "{\"badge\":", false, "metadata is not a JSON object"},
        {TOKEN64, "t", "{\"a\":1,\"a\":2}", false, "metadata is not a JSON object"},
        {TOKEN64, "t", "{\"badge\":-1}", false, "metadata.badge is not an integer >= 0"},
        {TOKEN64, "t", "{\"badge\":\"3\"}", false, "metadata.badge is not an integer >= 0"},
        {TOKEN64, "t", "{\"sound\":1}", false, "metadata.sound is not a string"},
        {TOKEN64, "t", "{\"thread_id\":null}", false, "metadata.thread_id is not a string"},
        {TOKEN64, "t", "{\"content_available\":1}", false, "metadata.content_available is not a boolean"},
        {TOKEN64, "t", "{\"mutable_content\":\"yes\"}", false, "metadata.mutable_content is not a boolean"},
        {TOKEN64, "t", long_collapse, false, "metadata.collapse_id is not a string of at most 64 bytes"},
        {TOKEN64, "t", "{\"collapse_id\":\"a\\nb\"}", false, "metadata.collapse_id is not a string of at most 64 bytes"},
        {TOKEN64, "t", "{\"push_type\":\"banner\"}", false, "metadata.push_type is not an APNs push type"},
        {TOKEN64, "t", "{\"data\":[1]}", false, "metadata.data is not an object without \"aps\""},
        {TOKEN64, "t", "{\"data\":{\"aps\":{}}}", false, "metadata.data is not an object without \"aps\""},
        {TOKEN64, bad_utf8, "", false, "title or body is not UTF-8"},
        {TOKEN64, big, "", false, "payload of 5029 bytes is over APNs' limit of 4096"},
    };
    apns_conf_t c = conf();
    prov_http_req_t req;
    prov_http_req_init(&req);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        notif_t n = notif("0123456789abcdef0123456789abcdef", PRIO_NORMAL, cases[i].title, "",
                          cases[i].token, cases[i].metadata);
        send_result_t res;
        memset(&res, 0x5a, sizeof(res));
        if (apns_build(&c, BEARER, T0, &n, &req, &res) != HR_INVALID) fail_msg("case %zu was built", i);
        assert_int_equal(res.cls, SEND_PERMANENT);
        assert_int_equal(res.code, 0);
        assert_int_equal(res.address_invalid, cases[i].address_invalid);
        assert_string_equal(res.error, cases[i].error);
    }
    /* A configuration open() would refuse: a result, not a crash. */
    apns_conf_t bad = conf();
    bad.push_type = "banner";
    notif_t nb = notif("0123456789abcdef0123456789abcdef", PRIO_NORMAL, "t", "", TOKEN64, "{\"badge\":1}");
    send_result_t rb;
    assert_int_equal(apns_build(&bad, NULL, T0, &nb, &req, &rb), HR_INVALID);
    assert_int_equal(rb.cls, SEND_PERMANENT);

    /* VoIP pushes may be 5120 bytes. */
    char mid[4500];
    memset(mid, 'y', sizeof(mid) - 1);
    mid[sizeof(mid) - 1] = '\0';
    notif_t n = notif("0123456789abcdef0123456789abcdef", PRIO_NORMAL, mid, "", TOKEN64, "{\"push_type\":\"voip\"}");
    send_result_t res;
    assert_int_equal(apns_build(&c, NULL, T0, &n, &req, &res), HR_OK);
    n.metadata = HSTR("");
    assert_int_equal(apns_build(&c, NULL, T0, &n, &req, &res), HR_INVALID);
    assert_string_equal(res.error, "payload of 4529 bytes is over APNs' limit of 4096");
    prov_http_req_release(&req);
}

/* --------------------------------------------------------- classifier */

static prov_http_resp_t response(int status, const char *headers, const char *body)
{
    prov_http_resp_t r = {
        .result = HTTP_DONE,
        .error = "",
        .status = status,
        .reason = "", /* HTTP/2 has no reason phrase */
        .headers = headers,
        .headers_len = strlen(headers),
        .body = body,
        .body_len = strlen(body),
        .now_ms = T0 * 1000,
    };
    return r;
}

/* Each documented APNs response, with its body from the fixture files. */
static void test_classify_documented(void **st)
{
    static const struct {
        int status;
        const char *reason;     /* fixture file responses/<reason>.json */
        const char *headers;
        send_class_t cls;
        bool address_invalid, expired;
        int64_t after_ms;
    } cases[] = {
        {400, "BadCollapseId", "", SEND_PERMANENT, false, false, 0},
        {400, "BadDeviceToken", "", SEND_PERMANENT, true, false, 0},
        {400, "BadExpirationDate", "", SEND_PERMANENT, false, false, 0},
        {400, "BadMessageId", "", SEND_PERMANENT, false, false, 0},
        {400, "BadPriority", "", SEND_PERMANENT, false, false, 0},
        {400, "BadTopic", "", SEND_PERMANENT, false, false, 0},
        {400, "DeviceTokenNotForTopic", "", SEND_PERMANENT, true, false, 0},
        {400, "DuplicateHeaders", "", SEND_PERMANENT, false, false, 0},
        {400, "IdleTimeout", "", SEND_PERMANENT, false, false, 0},
        {400, "InvalidPushType", "", SEND_PERMANENT, false, false, 0},
        {400, "MissingDeviceToken", "", SEND_PERMANENT, false, false, 0},
        {400, "MissingTopic", "", SEND_PERMANENT, false, false, 0},
        {400, "PayloadEmpty", "", SEND_PERMANENT, false, false, 0},
        {400, "TopicDisallowed", "Retry-After: 9\r\n", SEND_PERMANENT, false, false, 0},
        {403, "BadCertificate", "", SEND_FATAL, false, false, 0},
        {403, "BadCertificateEnvironment", "", SEND_FATAL, false, false, 0},
        {403, "ExpiredProviderToken", "", SEND_RETRY, false, true, 0},
        {403, "Forbidden", "", SEND_FATAL, false, false, 0},
        {403, "InvalidProviderToken", "", SEND_FATAL, false, false, 0},
        {403, "MissingProviderToken", "", SEND_FATAL, false, false, 0},
        {404, "BadPath", "", SEND_FATAL, false, false, 0},
        {405, "MethodNotAllowed", "", SEND_FATAL, false, false, 0},
        {410, "ExpiredToken", "", SEND_PERMANENT, true, false, 0},
        {410, "Unregistered", "", SEND_PERMANENT, true, false, 0},
        {413, "PayloadTooLarge", "", SEND_PERMANENT, false, false, 0},
        {429, "TooManyProviderTokenUpdates", "", SEND_THROTTLED, false, false, 0},
        {429, "TooManyRequests", "retry-after: 30\r\n", SEND_THROTTLED, false, false, 30000},
        {500, "InternalServerError", "", SEND_RETRY, false, false, 0},
        {503, "ServiceUnavailable", "Retry-After: 5\r\n", SEND_RETRY, false, false, 5000},
        {503, "Shutdown", "", SEND_RETRY, false, false, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char path[512], want[128];
        snprintf(path, sizeof(path), "%s/responses/%s.json", FIXTURES, cases[i].reason);
        char *body = slurp(path, NULL);
        prov_http_resp_t r = response(cases[i].status, cases[i].headers, body);
        send_result_t res;
        memset(&res, 0x5a, sizeof(res)); /* everything must be set */
        bool expired = apns_classify(&r, &res);
        snprintf(want, sizeof(want), "HTTP %d %s", cases[i].status, cases[i].reason);
        if (res.cls != cases[i].cls) fail_msg("%s: class %s", cases[i].reason, send_class_name(res.cls));
        assert_int_equal(res.address_invalid, cases[i].address_invalid);
        assert_int_equal(expired, cases[i].expired);
        assert_int_equal(res.code, cases[i].status);
        assert_int_equal(res.retry_after_ms, cases[i].after_ms);
        assert_string_equal(res.error, want);
        assert_string_equal(res.msg_id, "");
        free(body);
    }
}

static void test_classify_ok_and_odd(void **st)
{
    send_result_t res;
    prov_http_resp_t r = response(200, "apns-id: 01234567-89ab-cdef-0123-456789abcdef\r\n", "");
    memset(&res, 0x5a, sizeof(res));
    assert_false(apns_classify(&r, &res));
    assert_int_equal(res.cls, SEND_OK);
    assert_int_equal(res.code, 200);
    assert_string_equal(res.msg_id, "01234567-89ab-cdef-0123-456789abcdef");
    assert_string_equal(res.error, "");

    r = response(200, "apns-unique-id: 9f2c0d1e-0000-4000-8000-000000000001\r\n", "");
    apns_classify(&r, &res);
    assert_string_equal(res.msg_id, "9f2c0d1e-0000-4000-8000-000000000001");
    r = response(200, "", "");
    apns_classify(&r, &res);
    assert_int_equal(res.cls, SEND_OK);
    assert_string_equal(res.msg_id, ""); /* the shared part fills in our id */

    /* Bodies that are not Apple's: the class follows the status. */
    static const struct {
        int status;
        const char *body, *headers;
        send_class_t cls;
        const char *error;
    } odd[] = {
        {403, "<html>forbidden</html>", "", SEND_FATAL, "HTTP 403"},
        {403, "{\"reason\":42}", "", SEND_FATAL, "HTTP 403"},
        {400, "{\"reason\":\"Bad\\u0001\\nThing\"}", "", SEND_PERMANENT, "HTTP 400 Bad??Thing"},
        {502, "", "Retry-After: 2\r\n", SEND_RETRY, "HTTP 502"},
        {429, "", "", SEND_THROTTLED, "HTTP 429"},
        {401, "", "", SEND_FATAL, "HTTP 401"},
        {418, "{}", "", SEND_PERMANENT, "HTTP 418"},
        {301, "", "", SEND_RETRY, "HTTP 301"},
    };
    for (size_t i = 0; i < ARRAY_LEN(odd); i++) {
        r = response(odd[i].status, odd[i].headers, odd[i].body);
        memset(&res, 0x5a, sizeof(res));
        assert_false(apns_classify(&r, &res));
        assert_int_equal(res.cls, odd[i].cls);
        assert_string_equal(res.error, odd[i].error);
        assert_false(res.address_invalid);
    }
    r = response(502, "Retry-After: 2\r\n", "");
    apns_classify(&r, &res);
    assert_int_equal(res.retry_after_ms, 2000);

    /* Transport failures: RETRY with the reason. */
    const prov_http_xfer_result_t tr[] = {HTTP_TIMEOUT, HTTP_CONNECT, HTTP_SHUTDOWN, HTTP_FAILED};
    const char *const prefix[] = {"timeout: ", "connect: ", "shutdown: ", "transfer: "};
    for (size_t i = 0; i < ARRAY_LEN(tr); i++) {
        prov_http_resp_t t = {.result = tr[i], .error = "boom", .headers = "", .body = ""};
        memset(&res, 0x5a, sizeof(res));
        assert_false(apns_classify(&t, &res));
        assert_int_equal(res.cls, SEND_RETRY);
        assert_int_equal(res.code, 0);
        assert_int_equal(res.retry_after_ms, 0);
        assert_int_equal(strncmp(res.error, prefix[i], strlen(prefix[i])), 0);
    }
}

/* ----------------------------------------------------- provider token */

static EVP_PKEY *gen_key(const char *curve)
{
    EVP_PKEY *k = curve ? EVP_EC_gen(curve) : EVP_RSA_gen(2048);
    assert_non_null(k);
    return k;
}

/* Writes k as PKCS#8 PEM (an APNs .p8) to a new temp file; returns its
 * path (static per slot). */
static const char *write_p8(EVP_PKEY *k, int slot)
{
    static char paths[4][64];
    char *p = paths[slot];
    snprintf(p, sizeof(paths[slot]), "/tmp/herald-apns-key-XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(PEM_write_PKCS8PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    return p;
}

static const char *write_text(const char *text, int slot)
{
    static char paths[4][64];
    char *p = paths[slot];
    snprintf(p, sizeof(paths[slot]), "/tmp/herald-apns-txt-XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

/* Verifies token's ES256 signature with k's public half (r||s converted to
 * DER) and its header and claims; returns the iat claim. */
static int64_t verify_token(EVP_PKEY *k, const char *token)
{
    const char *d1 = strchr(token, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    size_t hl, cl, sl;
    char *h = base64url_decode(token, (size_t)(d1 - token), &hl);
    char *c = base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    unsigned char *s = (unsigned char *)base64url_decode(d2 + 1, strlen(d2 + 1), &sl);
    assert_non_null(h);
    assert_non_null(c);
    assert_non_null(s);
    assert_string_equal(h, "{\"alg\":\"ES256\",\"kid\":\"KEY1234567\"}");
    json_t *claims = json_loads(c, 0, NULL);
    assert_non_null(claims);
    assert_int_equal(json_object_size(claims), 2);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), "TEAM123456");
    assert_true(json_is_integer(json_object_get(claims, "iat")));
    int64_t iat = json_integer_value(json_object_get(claims, "iat"));
    json_decref(claims);

    assert_int_equal(sl, 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(s, 32, NULL), BN_bin2bn(s + 32, 32, NULL));
    unsigned char der[80], *p = der;
    int dl = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    assert_true(dl > 0);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)token, (size_t)(d2 - token)), 1);
    EVP_MD_CTX_free(md);
    free(h);
    free(c);
    free(s);
    return iat;
}

/* The token verifies; it is reused until token_ttl_s and renewed then;
 * ExpiredProviderToken drops it unless it is newer than the request. */
static void test_token_cache(void **st)
{
    EVP_PKEY *k = gen_key("P-256");
    const char *path = write_p8(k, 0);
    jwt_key_t *key = NULL;
    char why[256];
    assert_int_equal(jwt_key_load(path, &key, why, sizeof(why)), HR_OK);
    apns_token_t t;
    apns_token_init(&t, key, "KEY1234567", "TEAM123456", 3000);

    char first[512], second[512];
    snprintf(first, sizeof(first), "%s", apns_token_get(&t, T0));
    assert_int_equal(verify_token(k, first), T0);
    assert_int_equal(t.signed_count, 1);
    assert_string_equal(apns_token_get(&t, T0 + 1), first);
    assert_string_equal(apns_token_get(&t, T0 + 2999), first);
    assert_int_equal(t.signed_count, 1);

    snprintf(second, sizeof(second), "%s", apns_token_get(&t, T0 + 3000));
    assert_string_not_equal(second, first);
    assert_int_equal(verify_token(k, second), T0 + 3000);
    assert_int_equal(t.signed_count, 2);

    /* A clock that went back: the token would be from the future. */
    const char *back = apns_token_get(&t, T0 + 2000);
    assert_int_equal(verify_token(k, back), T0 + 2000);
    assert_int_equal(t.signed_count, 3);

    /* ExpiredProviderToken for a request that may have carried an older
     * token (ours is younger than the request's max age): kept. */
    assert_false(apns_token_expired(&t, T0 + 2005, 11));
    assert_int_equal(apns_token_get(&t, T0 + 2005) != NULL, 1);
    assert_int_equal(t.signed_count, 3);
    /* Older than that: dropped at once, long before token_ttl_s. */
    assert_true(apns_token_expired(&t, T0 + 2100, 11));
    assert_false(apns_token_expired(&t, T0 + 2100, 11)); /* nothing left to drop */
    assert_int_equal(verify_token(k, apns_token_get(&t, T0 + 2100)), T0 + 2100);
    assert_int_equal(t.signed_count, 4);

    apns_token_release(&t);
    unlink(path);
    EVP_PKEY_free(k);
}

/* -------------------------------------------------------------- open */

static hr_t open_apns(char *why, size_t why_len, ...)
{
    static fx_t f;
    memset(&f, 0, sizeof(f));
    config_init(&f.cfg);
    va_list ap;
    va_start(ap, why_len);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        char w[256];
        if (config_set(&f.cfg, k, v, w, sizeof(w)) != HR_OK) fail_msg("%s", w);
    }
    va_end(ap);
    config_set(&f.cfg, "channel.push.providers", "apns", why, why_len);
    provider_set_t *s = NULL;
    why[0] = '\0';
    hr_t r = provider_config_check(&f.cfg, why, why_len);
    if (r == HR_OK) r = provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, why_len);
    if (s) provider_set_close(s);
    fx_release(&f);
    return r;
}

/* No line of the PEM's base64 may appear in text. */
static void assert_no_key_material(const char *text, const char *pem_path)
{
    char *pem = slurp(pem_path, NULL);
    for (char *save = NULL, *line = strtok_r(pem, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '-' || strlen(line) < 8) continue;
        char chunk[9];
        for (size_t i = 0; i + 8 <= strlen(line); i += 8) {
            memcpy(chunk, line + i, 8);
            chunk[8] = '\0';
            if (strstr(text, chunk)) fail_msg("key material in \"%s\"", text);
        }
    }
    free(pem);
}

static void test_open_errors(void **st)
{
    EVP_PKEY *good = gen_key("P-256"), *p384 = gen_key("P-384"), *rsa = gen_key(NULL);
    const char *p8 = write_p8(good, 0), *p384_path = write_p8(p384, 1), *rsa_path = write_p8(rsa, 2);
    const char *junk = write_text("-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n", 3);
    char why[512];

    /* Token auth and certificate auth both open. */
    assert_int_equal(open_apns(why, sizeof(why), "provider.apns.topic", "com.example.herald", "provider.apns.key_file",
                               p8, "provider.apns.key_id", "KEY1234567", "provider.apns.team_id", "TEAM123456", NULL),
                     HR_OK);
    assert_int_equal(open_apns(why, sizeof(why), "provider.apns.topic", "com.example.herald", "provider.apns.cert_file",
                               junk, "provider.apns.cert_key_file", junk, "provider.apns.ca_file", junk, NULL),
                     HR_OK);

    const struct {
        const char *k1, *v1, *k2, *v2, *k3, *v3, *k4, *v4;
        const char *want; /* what why must contain */
    } cases[] = {
        {"provider.apns.key_file", p8, "provider.apns.key_id", "KEY1234567", "provider.apns.team_id", "TEAM123456",
         NULL, NULL, "provider.apns.topic is required"},
        {"provider.apns.topic", "t", NULL, NULL, NULL, NULL, NULL, NULL, "provider.apns.key_file is required"},
        {"provider.apns.topic", "t", "provider.apns.key_file", p8, "provider.apns.cert_file", junk, NULL, NULL,
         "provider.apns.cert_file and key_file both set"},
        {"provider.apns.topic", "t", "provider.apns.key_file", p8, "provider.apns.team_id", "TEAM123456", NULL, NULL,
         "provider.apns.key_id is required"},
        {"provider.apns.topic", "t", "provider.apns.key_file", p8, "provider.apns.key_id", "KEY1234567", NULL, NULL,
         "provider.apns.team_id is required"},
        {"provider.apns.topic", "t", "provider.apns.key_file", p8, "provider.apns.key_id", "KEY 1234567",
         "provider.apns.team_id", "TEAM123456", "provider.apns.key_id is required"},
        {"provider.apns.topic", "t", "provider.apns.key_file", "/nonexistent/AuthKey.p8", "provider.apns.key_id",
         "KEY1234567", "provider.apns.team_id", "TEAM123456", "provider.apns.key_file: "},
        {"provider.apns.topic", "t", "provider.apns.key_file", junk, "provider.apns.key_id", "KEY1234567",
         "provider.apns.team_id", "TEAM123456", "provider.apns.key_file: "},
        {"provider.apns.topic", "t", "provider.apns.key_file", p384_path, "provider.apns.key_id", "KEY1234567",
         "provider.apns.team_id", "TEAM123456", "provider.apns.key_file: "},
        {"provider.apns.topic", "t", "provider.apns.key_file", rsa_path, "provider.apns.key_id", "KEY1234567",
         "provider.apns.team_id", "TEAM123456", "is not an EC P-256 key"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", "/nonexistent/cert.pem", NULL, NULL, NULL, NULL,
         "provider.apns.cert_file: cannot read /nonexistent/cert.pem"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.cert_key_file", "/nonexistent/k",
         NULL, NULL, "provider.apns.cert_key_file: cannot read"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.ca_file", "/nonexistent/ca",
         NULL, NULL, "provider.apns.ca_file: cannot read"},
        {"provider.apns.topic", "t", "provider.apns.cert_key_file", junk, NULL, NULL, NULL, NULL,
         "provider.apns.cert_key_file needs cert_file"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.push_type", "banner", NULL, NULL,
         "provider.apns.push_type is not an APNs push type"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.token_ttl_s", "3600", NULL, NULL,
         "provider.apns.token_ttl_s"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.expiration_s", "-1", NULL, NULL,
         "provider.apns.expiration_s"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.url", "ftp://x", NULL, NULL,
         "provider.apns.url is not an http(s) URL"},
        {"provider.apns.topic", "t", "provider.apns.cert_file", junk, "provider.apns.kid", "x", NULL, NULL,
         "provider.apns.kid"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        hr_t r = open_apns(why, sizeof(why), cases[i].k1, cases[i].v1, cases[i].k2, cases[i].v2, cases[i].k3,
                           cases[i].v3, cases[i].k4, cases[i].v4, NULL);
        if (r == HR_OK || !strstr(why, cases[i].want))
            fail_msg("case %zu: %s; want \"%s\" in \"%s\"", i, hr_str(r), cases[i].want, why);
        assert_null(strstr(why, "SECRET"));
        assert_no_key_material(why, p8);
        assert_no_key_material(why, p384_path);
        assert_no_key_material(why, rsa_path);
    }
    unlink(p8);
    unlink(p384_path);
    unlink(rsa_path);
    unlink(junk);
    EVP_PKEY_free(good);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
}

/* ------------------------------------------- end to end, fake APNs */

/* A stand-in for APNs on plain HTTP/1.1 (the engine speaks HTTP/2 only
 * over TLS): it answers by the device token's first four digits from the
 * table below with the fixture bodies, echoes apns-id on 200, and records
 * what each request carried. */
static const struct {
    const char *prefix;
    int status;
    const char *reason;
    const char *retry_after;
} script[] = {
    {"0400", 400, "BadDeviceToken", NULL},
    {"0401", 400, "BadTopic", NULL},
    {"0403", 403, "ExpiredProviderToken", NULL},
    {"0404", 403, "InvalidProviderToken", NULL},
    {"0410", 410, "Unregistered", NULL},
    {"0429", 429, "TooManyRequests", "3"},
    {"0503", 503, "ServiceUnavailable", "5"},
};

#define SEEN_MAX 64

static struct {
    struct MHD_Daemon *d;
    char url[64];
    pthread_mutex_t mu;
    int n;
    struct {
        char path[160], auth[512], apns_id[64], topic[96], push_type[32], priority[8], expiration[24];
        char body[1024];
    } seen[SEEN_MAX];
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct {
    char body[4096];
    size_t len;
} fk_conn_t;

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result fk_req(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    fk_conn_t *k = *con_cls;
    if (!k) {
        *con_cls = calloc(1, sizeof(fk_conn_t));
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size < sizeof(k->body) - 1 - k->len ? *upload_size : sizeof(k->body) - 1 - k->len;
        memcpy(k->body + k->len, upload, n);
        k->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&fk.mu);
    if (fk.n < SEEN_MAX) {
        snprintf(fk.seen[fk.n].path, sizeof(fk.seen[fk.n].path), "%s", url);
        copy_hdr(c, "authorization", fk.seen[fk.n].auth, sizeof(fk.seen[fk.n].auth));
        copy_hdr(c, "apns-id", fk.seen[fk.n].apns_id, sizeof(fk.seen[fk.n].apns_id));
        copy_hdr(c, "apns-topic", fk.seen[fk.n].topic, sizeof(fk.seen[fk.n].topic));
        copy_hdr(c, "apns-push-type", fk.seen[fk.n].push_type, sizeof(fk.seen[fk.n].push_type));
        copy_hdr(c, "apns-priority", fk.seen[fk.n].priority, sizeof(fk.seen[fk.n].priority));
        copy_hdr(c, "apns-expiration", fk.seen[fk.n].expiration, sizeof(fk.seen[fk.n].expiration));
        snprintf(fk.seen[fk.n].body, sizeof(fk.seen[fk.n].body), "%.*s", (int)k->len, k->body);
        fk.n++;
    }
    pthread_mutex_unlock(&fk.mu);

    const char *token = strncmp(url, "/3/device/", 10) == 0 ? url + 10 : "";
    int status = 200;
    char *body = NULL;
    const char *retry_after = NULL;
    for (size_t i = 0; i < ARRAY_LEN(script); i++) {
        if (strncmp(token, script[i].prefix, 4) != 0) continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/responses/%s.json", FIXTURES, script[i].reason);
        body = slurp(path, NULL);
        status = script[i].status;
        retry_after = script[i].retry_after;
    }
    size_t blen = body ? strlen(body) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(blen, body ? body : (void *)"", MHD_RESPMEM_MUST_COPY);
    free(body);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (status == 200) {
        const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "apns-id");
        MHD_add_response_header(r, "apns-id", id ? id : "77777777-0000-4000-8000-000000000000");
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void fk_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    free(*con_cls);
    *con_cls = NULL;
}

static int fk_start(void **st)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fk.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, fk_req,
                            NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, fk_done,
                            NULL, MHD_OPTION_END);
    if (!fk.d) return -1;
    snprintf(fk.url, sizeof(fk.url), "http://127.0.0.1:%d/", MHD_get_daemon_info(fk.d, MHD_DAEMON_INFO_BIND_PORT)->port);
    return 0;
}

static int fk_stop(void **st)
{
    MHD_stop_daemon(fk.d);
    return 0;
}

static int fk_count(void)
{
    pthread_mutex_lock(&fk.mu);
    int n = fk.n;
    pthread_mutex_unlock(&fk.mu);
    return n;
}

/* Notification i of f to a token starting with prefix, id 32 hex. */
static char e2e_ids[FX_MAX][33], e2e_tokens[FX_MAX][65];

static void e2e_notif(fx_t *f, int i, const char *prefix, priority_t prio)
{
    fx_notif(f, i, CH_PUSH, "Hello", "apns");
    snprintf(e2e_ids[i], sizeof(e2e_ids[i]), "%032x", 0xa000 + i);
    snprintf(e2e_tokens[i], sizeof(e2e_tokens[i]), "%s%060d", prefix, i);
    snprintf(f->ids[i], sizeof(f->ids[i]), "%s", e2e_ids[i]);
    f->n[i].notification_id = HSTR(e2e_ids[i]);
    f->n[i].address = HSTR(e2e_tokens[i]);
    f->n[i].priority = prio;
}

/* fx_deliver for f's notifications 0..count), which may have been
 * delivered before: each must complete once more. */
static void e2e_deliver(fx_t *f, provider_set_t *s, int count, int max_in_flight)
{
    memset(f->completions, 0, sizeof(f->completions));
    fx_deliver(f, s, count, max_in_flight);
}

static provider_set_t *e2e_open(fx_t *f, const char *p8)
{
    fx_init(f, "channel.push.providers", "apns", "provider.apns.url", fk.url, "provider.apns.topic",
            "com.example.herald", "provider.apns.key_file", p8, "provider.apns.key_id", "KEY1234567",
            "provider.apns.team_id", "TEAM123456", "provider.apns.max_in_flight", "8", NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f->cfg, NULL, CH_PUSH, fx_done, f, &s, why, sizeof(why)) != HR_OK) fail_msg("%s", why);
    return s;
}

/* Through provider_set against the stand-in: each class from Apple's
 * answers, msg_id = the echoed apns-id, the headers on the wire, one
 * token for every request until token_ttl_s, a new one after it, and a
 * single renewal at once after a burst of ExpiredProviderToken. */
static void test_end_to_end(void **st)
{
    EVP_PKEY *k = gen_key("P-256");
    const char *p8 = write_p8(k, 0);
    hclock_set_fake(T0 * 1000);
    static fx_t f;
    provider_set_t *s = e2e_open(&f, p8);
    int base = fk_count();

    static const struct {
        const char *prefix;
        send_class_t cls;
        int code;
        bool dead;
        int64_t after_ms;
        const char *error;
    } cases[] = {
        {"0200", SEND_OK, 200, false, 0, ""},
        {"0400", SEND_PERMANENT, 400, true, 0, "HTTP 400 BadDeviceToken"},
        {"0401", SEND_PERMANENT, 400, false, 0, "HTTP 400 BadTopic"},
        {"0404", SEND_FATAL, 403, false, 0, "HTTP 403 InvalidProviderToken"},
        {"0410", SEND_PERMANENT, 410, true, 0, "HTTP 410 Unregistered"},
        {"0429", SEND_THROTTLED, 429, false, 3000, "HTTP 429 TooManyRequests"},
        {"0503", SEND_RETRY, 503, false, 5000, "HTTP 503 ServiceUnavailable"},
        {"0200", SEND_OK, 200, false, 0, ""},
    };
    int n = (int)ARRAY_LEN(cases);
    for (int i = 0; i < n; i++) e2e_notif(&f, i, cases[i].prefix, i == 0 ? PRIO_HIGH : PRIO_NORMAL);
    e2e_deliver(&f, s, n, 8);
    for (int i = 0; i < n; i++) {
        const send_result_t *r = &f.res[i];
        if (r->cls != cases[i].cls) fail_msg("case %d: %s %s", i, send_class_name(r->cls), r->error);
        assert_int_equal(r->code, cases[i].code);
        assert_int_equal(r->address_invalid, cases[i].dead);
        assert_int_equal(r->retry_after_ms, cases[i].after_ms);
        assert_string_equal(r->error, cases[i].error);
    }
    char uuid[40];
    snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-%012x", 0xa000);
    assert_string_equal(f.res[0].msg_id, uuid); /* APNs echoes our apns-id */

    /* What went over the wire. */
    assert_int_equal(fk_count() - base, n);
    char first_auth[512];
    snprintf(first_auth, sizeof(first_auth), "%s", fk.seen[base].auth);
    assert_int_equal(strncmp(first_auth, "bearer ", 7), 0);
    assert_int_equal(verify_token(k, first_auth + 7), T0);
    bool saw_high = false;
    for (int i = base; i < base + n; i++) {
        assert_string_equal(fk.seen[i].auth, first_auth); /* one token for all */
        assert_string_equal(fk.seen[i].topic, "com.example.herald");
        assert_string_equal(fk.seen[i].push_type, "alert");
        assert_string_equal(fk.seen[i].expiration, "1796083200");
        assert_int_equal(strncmp(fk.seen[i].path, "/3/device/", 10), 0);
        assert_int_equal(strlen(fk.seen[i].apns_id), 36);
        assert_string_equal(fk.seen[i].body, "{\"aps\":{\"alert\":{\"title\":\"Hello\",\"body\":\"body\"}}}");
        if (strcmp(fk.seen[i].apns_id, uuid) == 0) {
            saw_high = true;
            assert_string_equal(fk.seen[i].priority, "10");
        } else {
            assert_string_equal(fk.seen[i].priority, "5");
        }
    }
    assert_true(saw_high);

    /* Just before token_ttl_s (3000 s): the same token. */
    hclock_set_fake((T0 + 2999) * 1000);
    e2e_notif(&f, 0, "0200", PRIO_NORMAL);
    e2e_deliver(&f, s, 1, 8);
    assert_int_equal(f.res[0].cls, SEND_OK);
    assert_string_equal(fk.seen[fk_count() - 1].auth, first_auth);

    /* At token_ttl_s: a new one. */
    hclock_set_fake((T0 + 3000) * 1000);
    e2e_deliver(&f, s, 1, 8);
    char second_auth[512];
    snprintf(second_auth, sizeof(second_auth), "%s", fk.seen[fk_count() - 1].auth);
    assert_string_not_equal(second_auth, first_auth);
    assert_int_equal(verify_token(k, second_auth + 7), T0 + 3000);

    /* 100 s later, four requests in flight together are refused with
     * ExpiredProviderToken: each is a RETRY without delay, and the next
     * request carries a new token (one renewal, not four). */
    hclock_set_fake((T0 + 3100) * 1000);
    for (int i = 0; i < 4; i++) e2e_notif(&f, i, "0403", PRIO_NORMAL);
    e2e_notif(&f, 4, "0200", PRIO_NORMAL);
    e2e_deliver(&f, s, 4, 8);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f.res[i].cls, SEND_RETRY);
        assert_int_equal(f.res[i].code, 403);
        assert_int_equal(f.res[i].retry_after_ms, 0);
        assert_string_equal(f.res[i].error, "HTTP 403 ExpiredProviderToken");
        assert_string_equal(fk.seen[fk_count() - 1 - i].auth, second_auth);
    }
    f.n[0] = f.n[4];
    e2e_deliver(&f, s, 1, 8);
    assert_int_equal(f.res[0].cls, SEND_OK);
    char third_auth[512];
    snprintf(third_auth, sizeof(third_auth), "%s", fk.seen[fk_count() - 1].auth);
    assert_string_not_equal(third_auth, second_auth);
    assert_int_equal(verify_token(k, third_auth + 7), T0 + 3100);

    /* ExpiredProviderToken again right away: the answer may be to a token
     * older than ours, so ours stays. */
    e2e_notif(&f, 0, "0403", PRIO_NORMAL);
    e2e_deliver(&f, s, 1, 8);
    assert_int_equal(f.res[0].cls, SEND_RETRY);
    e2e_notif(&f, 0, "0200", PRIO_NORMAL);
    e2e_deliver(&f, s, 1, 8);
    assert_string_equal(fk.seen[fk_count() - 1].auth, third_auth);

    int before;
    /* Fan-out's address forms: "apns:<token>" alone is invalidated when
     * dead; in a list of the user's devices it is not (that would remove
     * the others too), nor is a bad token in such a list. */
    before = fk_count();
    e2e_notif(&f, 0, "0410", PRIO_NORMAL);
    e2e_notif(&f, 1, "0410", PRIO_NORMAL);
    e2e_notif(&f, 2, "xxxx", PRIO_NORMAL);
    static char one[80], several[96], bad_several[96];
    snprintf(one, sizeof(one), "apns:%s", e2e_tokens[0]);
    snprintf(several, sizeof(several), "apns:%s,fcm:f00d", e2e_tokens[1]);
    snprintf(bad_several, sizeof(bad_several), "fcm:f00d,apns:%s", e2e_tokens[2]);
    f.n[0].address = HSTR(one);
    f.n[1].address = HSTR(several);
    f.n[2].address = HSTR(bad_several);
    e2e_deliver(&f, s, 3, 8);
    assert_int_equal(fk_count() - before, 2);
    for (int i = 0; i < 2; i++) { /* to the bare token, in either order */
        const char *a = fk.seen[before].path + 10, *b = fk.seen[before + 1].path + 10;
        assert_true(strcmp(a, e2e_tokens[i]) == 0 || strcmp(b, e2e_tokens[i]) == 0);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(f.res[i].cls, SEND_PERMANENT);
    assert_string_equal(f.res[0].error, "HTTP 410 Unregistered");
    assert_true(f.res[0].address_invalid);
    /* The token is dead whatever the address lists; dispatch decides what
     * to invalidate (a legacy multi-device address: nothing). */
    assert_string_equal(f.res[1].error, "HTTP 410 Unregistered");
    assert_true(f.res[1].address_invalid);
    assert_string_equal(f.res[2].error, "device token is not hex");
    assert_true(f.res[2].address_invalid);

    /* A token that is not hex never reaches the server. */
    before = fk_count();
    fx_notif(&f, 0, CH_PUSH, "Hello", "apns");
    f.n[0].address = HSTR("not-a-token");
    e2e_deliver(&f, s, 1, 8);
    assert_int_equal(f.res[0].cls, SEND_PERMANENT);
    assert_true(f.res[0].address_invalid);
    assert_int_equal(fk_count(), before);

    provider_set_close(s);
    fx_release(&f);
    hclock_set_fake(0);
    unlink(p8);
    EVP_PKEY_free(k);
}

/* Certificate auth sends no authorization header. */
static void test_end_to_end_cert_auth(void **st)
{
    const char *pem = write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", 0);
    static fx_t f;
    fx_init(&f, "channel.push.providers", "ios", "provider.ios.type", "apns", "provider.ios.url", fk.url,
            "provider.ios.topic", "com.example.herald", "provider.ios.cert_file", pem, "provider.ios.push_type",
            "background", "provider.ios.expiration_s", "0", NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)) != HR_OK) fail_msg("%s", why);
    e2e_notif(&f, 0, "0200", PRIO_HIGH);
    e2e_deliver(&f, s, 1, 500);
    assert_int_equal(f.res[0].cls, SEND_OK);
    int last = fk_count() - 1;
    assert_string_equal(fk.seen[last].auth, "");
    assert_string_equal(fk.seen[last].push_type, "background");
    assert_string_equal(fk.seen[last].priority, "5");
    assert_string_equal(fk.seen[last].expiration, "0");
    assert_string_equal(fk.seen[last].body, "{\"aps\":{\"content-available\":1}}");
    provider_set_close(s);
    fx_release(&f);
    unlink(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_requests),
        cmocka_unit_test(test_device_token),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_classify_documented),
        cmocka_unit_test(test_classify_ok_and_odd),
        cmocka_unit_test(test_token_cache),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_end_to_end),
        cmocka_unit_test(test_end_to_end_cert_auth),
    };
    return cmocka_run_group_tests(tests, fk_start, fk_stop);
}
