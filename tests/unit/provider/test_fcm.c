/* Unit tests for the FCM HTTP v1 provider (src/provider/fcm.c): the exact
 * send and token requests, the class of each documented error body
 * (fixtures/fcm/), the RS256 assertion verified with the public half of a
 * key generated here, the access token fetched once and reused until it
 * is due (fake clock) against a local token endpoint and send API
 * (fake_http.c), and credentials files that must not open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/base64.h"
#include "fake_http.h"
#include "prov_fixture.h"
#include "provider/fcm.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* 2026-11-30T00:00:00Z */
#define NOW_MS INT64_C(1795996800000)
#define SEND_PATH "/v1/projects/demo-project/messages:send"

static fake_http_t *srv;
static EVP_PKEY *key;           /* the service account's key, made once */
static char *key_pem;
static char sa_path[64];        /* a service-account file naming it */
static char token_url[128];

/* ------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    b[n] = '\0';
    if (len) *len = (size_t)n;
    return b;
}

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/fcm/%s", FIXTURE_DIR, name);
    return slurp(path, len);
}

/* A service-account file at a new temp path (written to path). */
static void write_sa(char *path, size_t cap, const char *pem, const char *project, const char *uri)
{
    snprintf(path, cap, "/tmp/herald-fcm-sa-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "service_account", "private_key_id",
                          "kid-0123456789", "private_key", pem, "client_email",
                          "herald@demo-project.iam.gserviceaccount.com", "client_id", "1234567890");
    if (project) json_object_set_new(j, "project_id", json_string(project));
    if (uri) json_object_set_new(j, "token_uri", json_string(uri));
    assert_int_equal(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
}

static int setup(void **st)
{
    srv = fake_http_start();
    if (!srv) return -1;
    snprintf(token_url, sizeof(token_url), "%s", fake_http_url(srv, "/token"));
    key = EVP_RSA_gen(2048);
    if (!key) return -1;
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    key_pem = strndup(p, (size_t)n);
    BIO_free(b);
    write_sa(sa_path, sizeof(sa_path), key_pem, "demo-project", "https://oauth2.googleapis.com/token");
    return 0;
}

static int teardown(void **st)
{
    unlink(sa_path);
    free(key_pem);
    EVP_PKEY_free(key);
    fake_http_stop(srv);
    hclock_set_fake(0);
    return 0;
}

/* "METHOD URL\nheaders\nbody\n", the form of the .request fixtures. */
static char *render(const prov_http_req_t *req)
{
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(buf_printf(&b, "%s %.*s\n%.*s\n%.*s\n", req->method, (int)req->url.len,
                                req->url.data, (int)req->headers.len, req->headers.data,
                                (int)req->body.len, req->body.data),
                     HR_OK);
    char *s = strdup(buf_cstr(&b));
    buf_release(&b);
    return s;
}

/* Verifies jwt's RS256 signature with key; returns its decoded header and
 * claims (caller frees). */
static void verify_jwt(const char *jwt, size_t len, char **header, char **claims)
{
    const char *d1 = memchr(jwt, '.', len);
    assert_non_null(d1);
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt));
    assert_non_null(d2);
    size_t sl;
    *header = base64url_decode(jwt, (size_t)(d1 - jwt), NULL);
    *claims = base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), NULL);
    char *sig = base64url_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), &sl);
    assert_non_null(*header);
    assert_non_null(*claims);
    assert_non_null(sig);
    assert_int_equal(sl, 256);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig, sl, (const unsigned char *)jwt,
                                      (size_t)(d2 - jwt)),
                     1);
    /* Another message must not verify with that signature. */
    char *bad = strndup(jwt, (size_t)(d2 - jwt));
    bad[5] ^= 1;
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_not_equal(EVP_DigestVerify(md, (unsigned char *)sig, sl, (unsigned char *)bad, strlen(bad)), 1);
    free(bad);
    EVP_MD_CTX_free(md);
    free(sig);
}

/* --------------------------------------------------------- pure parts */

static void test_build_exact_requests(void **st)
{
    fcm_conf_t c = {.url = "https://fcm.googleapis.com/", .project_id = "demo-project", .timeout_ms = 7000};
    static const struct {
        const char *address, *title, *body, *metadata, *fixture;
        priority_t prio;
    } cases[] = {
        {"fcm-token-1", "Hello", "World", "", "send_basic.request", PRIO_NORMAL},
        {"fcm-token-2", "Say \"hi\" \xc3\xbcn\xc3\xaf", "",
         "{\"data\":{\"order\":\"A-1\",\"count\":3,\"flag\":true,\"nested\":{\"a\":[1,2]},\"none\":null},"
         "\"collapse_key\":\"orders\",\"ttl\":3600,\"other\":\"ignored\"}",
         "send_data.request", PRIO_HIGH},
        {"fcm-token-3", "", "", "{\"data\":{\"k\":\"v\"}}", "send_data_only.request", PRIO_CRITICAL},
    };
    prov_http_req_t req;
    prov_http_req_init(&req);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        notif_t n = {
            .channel = CH_PUSH,
            .priority = cases[i].prio,
            .notification_id = HSTR("n-1"),
            .address = HSTR(cases[i].address),
            .title = HSTR(cases[i].title),
            .body = HSTR(cases[i].body),
            .metadata = HSTR(cases[i].metadata),
            .platform = HSTR("fcm"),
        };
        char why[128] = "";
        assert_int_equal(fcm_build(&c, "ya29.test-token", &n, &req, why, sizeof(why)), HR_OK);
        assert_int_equal(req.timeout_ms, 7000);
        assert_null(req.ca_file);
        char *got = render(&req), *want = fixture(cases[i].fixture, NULL);
        assert_string_equal(got, want);
        /* And the body is JSON FCM takes: data values are strings. */
        json_t *j = json_loadb(req.body.data, req.body.len, 0, NULL);
        assert_non_null(j);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(json_object_get(j, "message"), "data"), k, v)
            assert_true(json_is_string(v));
        json_decref(j);
        free(got);
        free(want);
    }
    prov_http_req_release(&req);
}

static void test_build_refuses(void **st)
{
    fcm_conf_t c = {.url = FCM_DEFAULT_URL, .project_id = "demo-project", .timeout_ms = 1000};
    static const struct {
        const char *address, *metadata, *why;
    } cases[] = {
        {"", "", "no device token"},
        {"t", "{\"data\":[1]}", "metadata.data is not an object"},
        {"t", "{\"ttl\":-1}", "metadata.ttl"},
        {"t", "{\"ttl\":\"1h\"}", "metadata.ttl"},
        {"t", "{\"collapse_key\":7}", "metadata.collapse_key is not a string"},
    };
    prov_http_req_t req;
    prov_http_req_init(&req);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        notif_t n = {.address = HSTR(cases[i].address), .metadata = HSTR(cases[i].metadata)};
        char why[128] = "";
        assert_int_equal(fcm_build(&c, "tok", &n, &req, why, sizeof(why)), HR_INVALID);
        assert_non_null(strstr(why, cases[i].why));
    }
    /* Metadata that is not a JSON object is not for us: sent without it. */
    static const char *const ignored[] = {"not json", "[1,2]", "\"s\""};
    for (size_t i = 0; i < ARRAY_LEN(ignored); i++) {
        notif_t n = {.address = HSTR("t"), .title = HSTR("x"), .metadata = HSTR(ignored[i])};
        char why[128] = "";
        assert_int_equal(fcm_build(&c, "tok", &n, &req, why, sizeof(why)), HR_OK);
        assert_string_equal(buf_cstr(&req.body),
                            "{\"message\":{\"token\":\"t\",\"notification\":{\"title\":\"x\"},"
                            "\"android\":{\"priority\":\"NORMAL\"}}}");
    }
    prov_http_req_release(&req);
}

static prov_http_resp_t resp_of(int status, const char *headers, const char *body)
{
    prov_http_resp_t r = {
        .result = HTTP_DONE,
        .error = "",
        .status = status,
        .reason = "",
        .headers = headers,
        .headers_len = strlen(headers),
        .body = body,
        .body_len = strlen(body),
        .now_ms = NOW_MS,
    };
    return r;
}

static void test_classify_documented_errors(void **st)
{
    static const struct {
        const char *fixture; /* NULL: body is the text after it */
        const char *body;
        int status;
        const char *headers;
        send_class_t cls;
        bool addr, renew;
        int64_t after;
        const char *error;
    } cases[] = {
        {"unregistered.json", NULL, 404, "", SEND_PERMANENT, true, false, 0,
         "HTTP 404 UNREGISTERED: Requested entity was not found."},
        {"invalid_argument_token_field.json", NULL, 400, "", SEND_PERMANENT, true, false, 0,
         "HTTP 400 INVALID_ARGUMENT: Invalid value at 'message.token'"},
        {"invalid_argument_token_message.json", NULL, 400, "", SEND_PERMANENT, true, false, 0,
         "HTTP 400 INVALID_ARGUMENT: The registration token is not a valid FCM registration token"},
        {"invalid_argument_payload.json", NULL, 400, "", SEND_PERMANENT, false, false, 0,
         "HTTP 400 INVALID_ARGUMENT: Invalid JSON payload"},
        {"sender_id_mismatch.json", NULL, 403, "", SEND_PERMANENT, true, false, 0,
         "HTTP 403 SENDER_ID_MISMATCH: SenderId mismatch"},
        {"third_party_auth_error.json", NULL, 401, "", SEND_FATAL, false, false, 0,
         "HTTP 401 THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service"},
        {"unauthenticated.json", NULL, 401, "", SEND_RETRY, false, true, 0,
         "HTTP 401 UNAUTHENTICATED: Request had invalid authentication credentials."},
        {"permission_denied.json", NULL, 403, "", SEND_FATAL, false, false, 0,
         "HTTP 403 PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied"},
        {"quota_exceeded.json", NULL, 429, "Retry-After: 60\r\n", SEND_THROTTLED, false, false, 60000,
         "HTTP 429 QUOTA_EXCEEDED: Quota exceeded"},
        {"unavailable.json", NULL, 503, "retry-after: 12\r\n", SEND_RETRY, false, false, 12000,
         "HTTP 503 UNAVAILABLE: The service is currently unavailable."},
        {"internal.json", NULL, 500, "", SEND_RETRY, false, false, 0,
         "HTTP 500 INTERNAL: Internal error encountered."},
        {"not_found.json", NULL, 404, "", SEND_PERMANENT, false, false, 0,
         "HTTP 404 NOT_FOUND: Requested entity was not found."},
        /* No FCM body: the HTTP status decides. */
        {NULL, "", 401, "", SEND_RETRY, false, true, 0, "HTTP 401"},
        {NULL, "<html>denied</html>", 403, "", SEND_FATAL, false, false, 0, "HTTP 403"},
        {NULL, "", 429, "Retry-After: 30\r\n", SEND_THROTTLED, false, false, 30000, "HTTP 429"},
        {NULL, "", 502, "Retry-After: 5\r\n", SEND_RETRY, false, false, 5000, "HTTP 502"},
        {NULL, "{\"error\":7}", 400, "Retry-After: 5\r\n", SEND_PERMANENT, false, false, 0, "HTTP 400"},
        {NULL, "", 302, "", SEND_RETRY, false, false, 0, "HTTP 302"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *body = cases[i].fixture ? fixture(cases[i].fixture, NULL) : strdup(cases[i].body);
        prov_http_resp_t r = resp_of(cases[i].status, cases[i].headers, body);
        send_result_t res;
        memset(&res, 0x5a, sizeof(res)); /* everything must be set */
        bool renew = !cases[i].renew;
        fcm_classify(&r, &res, &renew);
        if (res.cls != cases[i].cls) fail_msg("case %zu (%s): class %d", i, cases[i].fixture, res.cls);
        assert_int_equal(res.code, cases[i].status);
        assert_int_equal(res.address_invalid, cases[i].addr);
        assert_int_equal(renew, cases[i].renew);
        assert_int_equal(res.retry_after_ms, cases[i].after);
        assert_string_equal(res.msg_id, "");
        if (strncmp(res.error, cases[i].error, strlen(cases[i].error)) != 0)
            fail_msg("case %zu: error '%s'", i, res.error);
        free(body);
    }
}

static void test_classify_ok_and_transport(void **st)
{
    char *body = fixture("ok.json", NULL);
    prov_http_resp_t r = resp_of(200, "", body);
    send_result_t res;
    memset(&res, 0x5a, sizeof(res));
    bool renew = true;
    fcm_classify(&r, &res, &renew);
    assert_int_equal(res.cls, SEND_OK);
    assert_int_equal(res.code, 200);
    assert_false(renew);
    assert_false(res.address_invalid);
    assert_string_equal(res.error, "");
    assert_string_equal(res.msg_id, "projects/demo-project/messages/0:1500415314455276%31bd1c9631bd1c96");
    free(body);

    r = resp_of(200, "", "not json");
    fcm_classify(&r, &res, &renew);
    assert_int_equal(res.cls, SEND_OK);
    assert_string_equal(res.msg_id, ""); /* the provider part puts the notification id */

    static const prov_http_xfer_result_t tr[] = {HTTP_TIMEOUT, HTTP_CONNECT, HTTP_SHUTDOWN, HTTP_FAILED};
    for (size_t i = 0; i < ARRAY_LEN(tr); i++) {
        r = resp_of(0, "", "");
        r.result = tr[i];
        r.error = "boom";
        memset(&res, 0x5a, sizeof(res));
        fcm_classify(&r, &res, &renew);
        assert_int_equal(res.cls, SEND_RETRY);
        assert_int_equal(res.code, 0);
        assert_false(renew);
        assert_non_null(strstr(res.error, "boom"));
    }
}

/* The service-account assertion verifies with the public key and carries
 * the claims Google's token endpoint checks; the token request is the
 * jwt-bearer grant. */
static void test_assertion_verifies(void **st)
{
    fcm_creds_t c;
    char why[256] = "";
    assert_int_equal(fcm_creds_load(sa_path, &c, why, sizeof(why)), HR_OK);
    assert_string_equal(c.client_email, "herald@demo-project.iam.gserviceaccount.com");
    assert_string_equal(c.private_key_id, "kid-0123456789");
    assert_string_equal(c.project_id, "demo-project");
    assert_string_equal(c.token_uri, "https://oauth2.googleapis.com/token");

    buf_t jwt;
    buf_init(&jwt, 0);
    assert_int_equal(fcm_assertion(&c, c.token_uri, NOW_MS / 1000, &jwt), HR_OK);
    char *h, *cl;
    verify_jwt(jwt.data, jwt.len, &h, &cl);
    assert_string_equal(h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"kid-0123456789\"}");
    assert_string_equal(cl, "{\"iss\":\"herald@demo-project.iam.gserviceaccount.com\","
                            "\"scope\":\"https://www.googleapis.com/auth/firebase.messaging\","
                            "\"aud\":\"https://oauth2.googleapis.com/token\","
                            "\"iat\":1795996800,\"exp\":1796000400}");
    free(h);
    free(cl);

    prov_http_req_t req;
    prov_http_req_init(&req);
    assert_int_equal(fcm_token_build("https://oauth2.googleapis.com/token", buf_cstr(&jwt), "/ca.pem", 3000, &req),
                     HR_OK);
    char *got = render(&req);
    char *want = NULL;
    assert_true(asprintf(&want,
                         "POST https://oauth2.googleapis.com/token\n"
                         "Content-Type: application/x-www-form-urlencoded\n\n"
                         "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s\n",
                         jwt.data) > 0);
    assert_string_equal(got, want);
    assert_string_equal(req.ca_file, "/ca.pem");
    assert_int_equal(req.timeout_ms, 3000);
    free(got);
    free(want);
    prov_http_req_release(&req);
    buf_release(&jwt);
    fcm_creds_release(&c);
}

static void test_token_answers(void **st)
{
    buf_t tok;
    buf_init(&tok, 0);
    int64_t ex;
    char why[160];
    char *ok = fixture("token_ok.json", NULL), *bad = fixture("token_invalid_grant.json", NULL);

    prov_http_resp_t r = resp_of(200, "", ok);
    assert_int_equal(fcm_token_parse(&r, &tok, &ex, why, sizeof(why)), SEND_OK);
    assert_string_equal(buf_cstr(&tok), "ya29.c.b0AXv0zTOfakeFakeFake-only_for_tests");
    assert_int_equal(ex, 3599);

    static const struct {
        int status;
        const char *body;
        send_class_t cls;
        const char *why;
    } cases[] = {
        {400, NULL, SEND_FATAL, "token endpoint: HTTP 400 invalid_grant: Invalid JWT Signature."},
        {401, "{\"error\":\"unauthorized_client\"}", SEND_FATAL, "token endpoint: HTTP 401 unauthorized_client"},
        {403, "", SEND_FATAL, "token endpoint: HTTP 403"},
        {503, "", SEND_RETRY, "token endpoint: HTTP 503"},
        {429, "", SEND_RETRY, "token endpoint: HTTP 429"},
        {200, "{\"expires_in\":3600}", SEND_RETRY, "token endpoint: HTTP 200 without a usable access_token"},
        {200, "{\"access_token\":\"a\\r\\nX-Evil: 1\"}", SEND_RETRY, "without a usable access_token"},
        {200, "{\"access_token\":\"\"}", SEND_RETRY, "without a usable access_token"},
        {200, "<html>", SEND_RETRY, "without a usable access_token"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        r = resp_of(cases[i].status, "", cases[i].body ? cases[i].body : bad);
        why[0] = '\0';
        assert_int_equal(fcm_token_parse(&r, &tok, &ex, why, sizeof(why)), cases[i].cls);
        assert_int_equal(tok.len, 0);
        if (strncmp(why, cases[i].why, strlen(cases[i].why)) != 0 && !strstr(why, cases[i].why))
            fail_msg("case %zu: why '%s'", i, why);
    }
    /* An answer without expires_in lives the usual hour. */
    r = resp_of(200, "", "{\"access_token\":\"t-1\"}");
    assert_int_equal(fcm_token_parse(&r, &tok, &ex, why, sizeof(why)), SEND_OK);
    assert_int_equal(ex, 3600);
    r = resp_of(0, "", "");
    r.result = HTTP_CONNECT;
    r.error = "Connection refused";
    assert_int_equal(fcm_token_parse(&r, &tok, &ex, why, sizeof(why)), SEND_RETRY);
    assert_string_equal(why, "token endpoint: connect: Connection refused");

    /* Renewal: 5 minutes early, or halfway through a short life. */
    assert_int_equal(fcm_token_renew_at(NOW_MS, 3600), NOW_MS + 3300 * 1000);
    assert_int_equal(fcm_token_renew_at(NOW_MS, 600), NOW_MS + 300 * 1000);
    assert_int_equal(fcm_token_renew_at(NOW_MS, 60), NOW_MS + 30 * 1000);
    free(ok);
    free(bad);
    buf_release(&tok);
}

/* -------------------------------------------------- provider, fake HTTP */

static provider_set_t *open_fcm(fx_t *f, const char *creds, const char *turl, const char *timeout_ms)
{
    char base[128];
    snprintf(base, sizeof(base), "%s", fake_http_url(srv, ""));
    fx_init(f, "channel.push.providers", "fcm", "provider.fcm.credentials_file", creds,
            "provider.fcm.token_url", turl, "provider.fcm.url", base, "provider.fcm.timeout_ms",
            timeout_ms, "provider.fcm.max_in_flight", "8", NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f->cfg, NULL, CH_PUSH, fx_done, f, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    return s;
}

/* Delivers `count` push notifications titled title (a fake_http script). */
static void deliver(fx_t *f, provider_set_t *s, int count, const char *title)
{
    memset(f->completions, 0, sizeof(f->completions));
    for (int i = 0; i < count; i++) fx_notif(f, i, CH_PUSH, title, "fcm");
    fx_deliver(f, s, count, 8);
}

/* Lets a token renewal running on the engine end (it is no notification:
 * fx_deliver does not wait for it). */
static void settle(provider_set_t *s)
{
    for (int i = 0; i < 20; i++) provider_set_poll(s, 10);
}

static int token_requests(void)
{
    return fake_http_path_count(srv, "/token");
}

/* One token for many sends until it is due for renewal, then a new one;
 * the token request is the jwt-bearer grant with a valid assertion. */
static void test_token_reused_until_due(void **st)
{
    static fx_t f;
    fake_http_token(srv, "/token", 3600, 200);
    int t0 = token_requests(), sends0 = fake_http_path_count(srv, SEND_PATH);
    hclock_set_fake(NOW_MS);
    provider_set_t *s = open_fcm(&f, sa_path, token_url, "5000");
    assert_int_equal(token_requests(), t0); /* nothing fetched at open */

    deliver(&f, s, 20, "msgid=projects/demo-project/messages/0:77");
    assert_int_equal(token_requests(), t0 + 1);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        assert_string_equal(f.res[i].msg_id, "projects/demo-project/messages/0:77");
    }
    char tok1[32];
    snprintf(tok1, sizeof(tok1), "Bearer tok-%d", t0 + 1);
    assert_int_equal(fake_http_auth_count(srv, tok1), 20);

    /* The grant the endpoint saw. */
    char form[8192], ctype[128];
    fake_http_token_last(srv, form, sizeof(form), ctype, sizeof(ctype));
    assert_string_equal(ctype, "application/x-www-form-urlencoded");
    const char *pre = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    assert_int_equal(strncmp(form, pre, strlen(pre)), 0);
    char *h, *cl;
    verify_jwt(form + strlen(pre), strlen(form + strlen(pre)), &h, &cl);
    json_t *claims = json_loads(cl, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(claims, "aud")), token_url);
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), NOW_MS / 1000);
    json_decref(claims);
    free(h);
    free(cl);

    /* Just before renewal is due (5 min before the hour): same token. */
    hclock_set_fake(NOW_MS + 3299 * 1000);
    deliver(&f, s, 20, "");
    assert_int_equal(token_requests(), t0 + 1);
    assert_int_equal(fake_http_auth_count(srv, tok1), 40);
    for (int i = 0; i < 20; i++) assert_int_equal(f.res[i].cls, SEND_OK);

    /* Due: renewed on the engine while the current token keeps sending
     * (the first send after it was due did not wait), then the new one. */
    hclock_set_fake(NOW_MS + 3301 * 1000);
    deliver(&f, s, 20, "");
    settle(s);
    assert_int_equal(token_requests(), t0 + 2);
    char tok2[32];
    snprintf(tok2, sizeof(tok2), "Bearer tok-%d", t0 + 2);
    int old = fake_http_auth_count(srv, tok1) - 40, fresh = fake_http_auth_count(srv, tok2);
    assert_true(old >= 1);
    assert_int_equal(old + fresh, 20);
    deliver(&f, s, 20, "");
    assert_int_equal(token_requests(), t0 + 2);
    assert_int_equal(fake_http_auth_count(srv, tok2), fresh + 20);
    assert_int_equal(fake_http_path_count(srv, SEND_PATH) - sends0, 80);
    provider_set_close(s);
    fx_release(&f);
    hclock_set_fake(0);
}

/* A 401 from the send API drops the token, unless the token is younger
 * than timeout_ms (then the 401 answered a request sent with an older
 * one): the next send fetches a new token. */
static void test_unauthenticated_renews(void **st)
{
    static fx_t f;
    fake_http_token(srv, "/token", 3600, 200);
    int t0 = token_requests();
    hclock_set_fake(NOW_MS);
    provider_set_t *s = open_fcm(&f, sa_path, token_url, "5000");
    deliver(&f, s, 4, "status=401");
    assert_int_equal(token_requests(), t0 + 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f.res[i].cls, SEND_RETRY);
        assert_int_equal(f.res[i].code, 401);
    }
    deliver(&f, s, 2, ""); /* the token was fresh: kept */
    assert_int_equal(token_requests(), t0 + 1);
    assert_int_equal(f.res[0].cls, SEND_OK);

    hclock_set_fake(NOW_MS + 6000);
    deliver(&f, s, 3, "status=401");
    assert_int_equal(token_requests(), t0 + 1);
    deliver(&f, s, 5, "");
    assert_int_equal(token_requests(), t0 + 2); /* renewed once, not per 401 */
    char tok2[32];
    snprintf(tok2, sizeof(tok2), "Bearer tok-%d", t0 + 2);
    assert_int_equal(fake_http_auth_count(srv, tok2), 5);
    for (int i = 0; i < 5; i++) assert_int_equal(f.res[i].cls, SEND_OK);
    provider_set_close(s);
    fx_release(&f);
    hclock_set_fake(0);
}

/* A failing token endpoint: notifications complete RETRY (FATAL when the
 * grant is refused) without a send, and the endpoint is asked again only
 * after the back-off. A renewal that fails keeps the current token until
 * it expires. */
static void test_token_endpoint_failures(void **st)
{
    static fx_t f;
    fake_http_token(srv, "/token", 3600, 503);
    int t0 = token_requests(), sends0 = fake_http_path_count(srv, SEND_PATH);
    hclock_set_fake(NOW_MS);
    provider_set_t *s = open_fcm(&f, sa_path, token_url, "5000");
    deliver(&f, s, 5, "");
    assert_int_equal(token_requests(), t0 + 1); /* one attempt, not five */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f.res[i].cls, SEND_RETRY);
        assert_string_equal(f.res[i].error, "no access token: token endpoint: HTTP 503");
        assert_int_equal(f.res[i].retry_after_ms, 2000);
    }
    hclock_set_fake(NOW_MS + 1999);
    deliver(&f, s, 2, "");
    assert_int_equal(token_requests(), t0 + 1);
    assert_int_equal(f.res[0].retry_after_ms, 1);
    hclock_set_fake(NOW_MS + 2000);
    deliver(&f, s, 2, "");
    assert_int_equal(token_requests(), t0 + 2);
    assert_int_equal(f.res[0].retry_after_ms, 4000); /* doubled */

    /* The grant refused: FATAL, nothing will pass until the config changes. */
    fake_http_token(srv, "/token", 3600, 400);
    hclock_set_fake(NOW_MS + 6000);
    deliver(&f, s, 2, "");
    assert_int_equal(token_requests(), t0 + 3);
    assert_int_equal(f.res[0].cls, SEND_FATAL);
    assert_string_equal(f.res[0].error,
                        "no access token: token endpoint: HTTP 400 invalid_grant: Invalid JWT Signature.");
    assert_int_equal(fake_http_path_count(srv, SEND_PATH), sends0);

    /* Back: a token; then a failed renewal keeps it until it expires. */
    fake_http_token(srv, "/token", 3600, 200);
    int64_t t1 = NOW_MS + 60000;
    hclock_set_fake(t1);
    deliver(&f, s, 2, "");
    assert_int_equal(token_requests(), t0 + 4);
    assert_int_equal(f.res[0].cls, SEND_OK);
    fake_http_token(srv, "/token", 3600, 503);
    hclock_set_fake(t1 + 3400 * 1000); /* due for renewal, not expired */
    deliver(&f, s, 2, "");
    settle(s);
    assert_int_equal(token_requests(), t0 + 5);
    assert_int_equal(f.res[0].cls, SEND_OK);
    assert_int_equal(f.res[1].cls, SEND_OK);
    hclock_set_fake(t1 + 3590 * 1000); /* expired (30 s slack): no token */
    deliver(&f, s, 2, "");
    assert_int_equal(token_requests(), t0 + 6);
    assert_int_equal(f.res[0].cls, SEND_RETRY);
    assert_int_equal(fake_http_path_count(srv, SEND_PATH), sends0 + 4);
    provider_set_close(s);
    fx_release(&f);
    hclock_set_fake(0);
}

/* A notification that cannot be expressed completes PERMANENT without a
 * send; without a device token its address is invalid. */
static void test_unbuildable_is_permanent(void **st)
{
    static fx_t f;
    fake_http_token(srv, "/token", 3600, 200);
    int sends0 = fake_http_path_count(srv, SEND_PATH);
    provider_set_t *s = open_fcm(&f, sa_path, token_url, "5000");
    memset(f.completions, 0, sizeof(f.completions));
    fx_notif(&f, 0, CH_PUSH, "", "fcm")->address = HSTR("");
    fx_notif(&f, 1, CH_PUSH, "", "fcm")->metadata = HSTR("{\"ttl\":\"soon\"}");
    fx_notif(&f, 2, CH_PUSH, "", "fcm");
    fx_deliver(&f, s, 3, 8);
    assert_int_equal(f.res[0].cls, SEND_PERMANENT);
    assert_true(f.res[0].address_invalid);
    assert_string_equal(f.res[0].error, "cannot build the request: no device token");
    assert_int_equal(f.res[1].cls, SEND_PERMANENT);
    assert_false(f.res[1].address_invalid);
    assert_non_null(strstr(f.res[1].error, "metadata.ttl"));
    assert_int_equal(f.res[2].cls, SEND_OK);
    assert_string_equal(f.res[2].msg_id, "n-2"); /* no name in the answer: our id */
    assert_int_equal(fake_http_path_count(srv, SEND_PATH) - sends0, 1);
    provider_set_close(s);
    fx_release(&f);
}

/* Nobody listening at the token URL: RETRY naming the connection. */
static void test_token_endpoint_unreachable(void **st)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/token", ntohs(sa.sin_port));
    static fx_t f;
    provider_set_t *s = open_fcm(&f, sa_path, url, "2000");
    deliver(&f, s, 1, "");
    assert_int_equal(f.res[0].cls, SEND_RETRY);
    assert_non_null(strstr(f.res[0].error, "no access token: token endpoint: connect: "));
    provider_set_close(s);
    fx_release(&f);
}

/* Credentials files that must not open: the reason names the key and the
 * member, never key material. */
static void test_bad_credentials(void **st)
{
    char nokey_project[64], ec_path[64];
    write_sa(nokey_project, sizeof(nokey_project), key_pem, NULL, NULL);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *ec_pem = strndup(p, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(ec);
    write_sa(ec_path, sizeof(ec_path), ec_pem, "demo-project", NULL);

    char fx_dir[512];
    snprintf(fx_dir, sizeof(fx_dir), "%s/fcm/", FIXTURE_DIR);
    static const struct {
        const char *file; /* under fixtures/fcm/, or a full path */
        const char *want;
    } cases[] = {
        {"/nonexistent/sa.json", "No such file or directory"},
        {"sa_not_json.json", "not JSON (line 5"},
        {"sa_no_private_key.json", "no \"private_key\" string"},
        {"sa_bad_pem.json", "\"private_key\": not a PEM private key"},
        {"sa_authorized_user.json", "\"type\" is \"authorized_user\", not \"service_account\""},
        {NULL, "\"private_key\" is not an RSA key"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char path[600];
        if (!cases[i].file) snprintf(path, sizeof(path), "%s", ec_path);
        else if (cases[i].file[0] == '/') snprintf(path, sizeof(path), "%s", cases[i].file);
        else snprintf(path, sizeof(path), "%s%s", fx_dir, cases[i].file);
        static fx_t f;
        fx_init(&f, "channel.push.providers", "fcm", "provider.fcm.credentials_file", path, NULL);
        provider_set_t *s = NULL;
        char why[512] = "";
        assert_int_not_equal(provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)), HR_OK);
        assert_null(s);
        if (!strstr(why, "provider.fcm.credentials_file: ") || !strstr(why, path) || !strstr(why, cases[i].want))
            fail_msg("case %zu: '%s'", i, why);
        assert_null(strstr(why, "SECRET"));
        assert_null(strstr(why, "MII"));
        assert_null(strstr(why, "BEGIN"));
        fx_release(&f);
    }

    const struct {
        const char *k1, *v1;
        const char *want;
    } conf[] = {
        {"provider.fcm.url", "https://x", "provider.fcm.credentials_file is required"},
        {"provider.fcm.credentials_file", nokey_project, "provider.fcm.project_id: not set"},
    };
    for (size_t i = 0; i < ARRAY_LEN(conf); i++) {
        static fx_t f;
        fx_init(&f, "channel.push.providers", "fcm", conf[i].k1, conf[i].v1, NULL);
        provider_set_t *s = NULL;
        char why[512] = "";
        assert_int_not_equal(provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)), HR_OK);
        if (!strstr(why, conf[i].want)) fail_msg("conf %zu: '%s'", i, why);
        fx_release(&f);
    }
    /* project_id from the config makes that file usable; a bad one is named. */
    static fx_t f;
    fx_init(&f, "channel.push.providers", "fcm", "provider.fcm.credentials_file", nokey_project,
            "provider.fcm.project_id", "other-project", NULL);
    provider_set_t *s = NULL;
    char why[512] = "";
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    provider_set_close(s);
    fx_release(&f);
    fx_init(&f, "channel.push.providers", "fcm", "provider.fcm.credentials_file", nokey_project,
            "provider.fcm.project_id", "a/b?c", NULL);
    assert_int_not_equal(provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    assert_non_null(strstr(why, "provider.fcm.project_id: 'a/b?c' is not a project id"));
    fx_release(&f);
    unlink(nokey_project);
    unlink(ec_path);
    free(ec_pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_exact_requests),
        cmocka_unit_test(test_build_refuses),
        cmocka_unit_test(test_classify_documented_errors),
        cmocka_unit_test(test_classify_ok_and_transport),
        cmocka_unit_test(test_assertion_verifies),
        cmocka_unit_test(test_token_answers),
        cmocka_unit_test(test_token_reused_until_due),
        cmocka_unit_test(test_unauthenticated_renews),
        cmocka_unit_test(test_token_endpoint_failures),
        cmocka_unit_test(test_unbuildable_is_permanent),
        cmocka_unit_test(test_token_endpoint_unreachable),
        cmocka_unit_test(test_bad_credentials),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
