/* Signed webhooks (src/provider/webhook.c): secret parsing, the exact
 * signed request for a fixed clock (the signature computed here again
 * with OpenSSL's HMAC), the Standard Webhooks test vector, and the
 * provider end to end against fake_http.c: the instance secret, a user's
 * secret from a real store winning over it, a changed user secret used at
 * once, and no signature without secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "app.h"
#include "fake_http.h"
#include "prov_fixture.h"
#include "provider/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

/* The Standard Webhooks reference secret (a 24-byte key). */
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define USER_SECRET "a per-user secret of plain text"
#define NOW_S INT64_C(1795996800)

/* "v1," + base64(HMAC-SHA256(key, id.ts.body)), computed independently. */
static void expect_sig(const void *key, size_t kl, const char *id, const char *ts, const char *body,
                       char *out, size_t cap)
{
    char msg[8192];
    int ml = snprintf(msg, sizeof(msg), "%s.%s.%s", id, ts, body);
    unsigned char mac[32];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)kl, (unsigned char *)msg, (size_t)ml, mac, &maclen));
    assert_int_equal(maclen, 32);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, mac, 32);
    snprintf(out, cap, "v1,%s", b64);
}

static void test_secret_parse(void **st)
{
    webhook_key_t k;
    static const unsigned char ref[] = {0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
                                        0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};
    assert_int_equal(webhook_secret_parse(SECRET, &k), HR_OK);
    assert_int_equal(k.n, 24);
    assert_memory_equal(k.k, ref, 24);
    /* padding is optional; raw text is the key's bytes */
    assert_int_equal(webhook_secret_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=", &k), HR_OK);
    assert_int_equal(k.n, 26);
    assert_int_equal(k.k[25], 25);
    assert_int_equal(webhook_secret_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk", &k), HR_OK);
    assert_int_equal(k.n, 26);
    assert_int_equal(webhook_secret_parse(USER_SECRET, &k), HR_OK);
    assert_int_equal(k.n, strlen(USER_SECRET));
    assert_memory_equal(k.k, USER_SECRET, k.n);
    static const char *const bad[] = {
        "", "short", "23-characters-is-too-sh", "whsec_", "whsec_c2hvcnQ=", "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa_w", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw===",
        "a secret with a newline\n in it", "tab\there-and-long-enough-anyway",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "x", /* 129 */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (webhook_secret_parse(bad[i], &k) != HR_INVALID) fail_msg("case %zu accepted", i);
}

/* The Standard Webhooks reference vector. */
static void test_sign_vector(void **st)
{
    webhook_key_t k;
    assert_int_equal(webhook_secret_parse(SECRET, &k), HR_OK);
    buf_t h;
    buf_init(&h, 0);
    static const char body[] = "{\"test\": 2432232314}";
    assert_int_equal(webhook_sign(&k, HSTR("msg_p5jXN8AQM9LWM0D4loKWxJek"), 1614265330, body, strlen(body), &h),
                     HR_OK);
    assert_string_equal(buf_cstr(&h), "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n"
                                      "webhook-timestamp: 1614265330\n"
                                      "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n");
    buf_release(&h);
}

/* The exact request a signed webhook sends at a fixed time. */
static void test_signed_request_exact(void **st)
{
    webhook_conf_t c = {.url = "https://hooks.example.com/in", .timeout_ms = 5000};
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_NOTIFICATION;
    n.channel = CH_WEBHOOK;
    n.notification_id = HSTR("7f3a9c");
    n.user_id = HSTR("alice");
    n.title = HSTR("Hi");
    n.body = HSTR("there");
    prov_http_req_t req;
    prov_http_req_init(&req);
    assert_int_equal(webhook_build(&c, &n, &req), HR_OK);
    webhook_key_t k;
    assert_int_equal(webhook_secret_parse(SECRET, &k), HR_OK);
    assert_int_equal(webhook_sign(&k, n.notification_id, NOW_S, req.body.data, req.body.len, &req.headers), HR_OK);
    char sig[128], want[1024];
    const char *body = buf_cstr(&req.body);
    expect_sig(k.k, k.n, "7f3a9c", "1795996800", body, sig, sizeof(sig));
    snprintf(want, sizeof(want),
             "Content-Type: application/json\n"
             "Idempotency-Key: 7f3a9c\n"
             "webhook-id: 7f3a9c\n"
             "webhook-timestamp: 1795996800\n"
             "webhook-signature: %s\n",
             sig);
    assert_string_equal(buf_cstr(&req.headers), want);
    assert_string_equal(req.url.data, "https://hooks.example.com/in");
    prov_http_req_release(&req);
}

static fake_http_t *srv;

static int setup(void **st)
{
    srv = fake_http_start();
    return srv ? 0 : -1;
}

static int teardown(void **st)
{
    fake_http_stop(srv);
    hclock_set_fake(0);
    return 0;
}

/* Asserts the request of notification i was signed with key (NULL: not
 * signed) at the fake clock. */
static void assert_signed(fx_t *f, int i, const webhook_key_t *key)
{
    static char id[128], ts[64], sig[128], body[4096];
    assert_true(fake_http_signed(srv, f->ids[i], id, ts, sig, body, sizeof(body)));
    if (!key) {
        assert_string_equal(id, "");
        assert_string_equal(sig, "");
        return;
    }
    assert_string_equal(id, f->ids[i]);
    assert_string_equal(ts, "1795996800");
    char want[128];
    expect_sig(key->k, key->n, id, ts, body, want, sizeof(want));
    assert_string_equal(sig, want);
}

/* The provider: alice has her own secret (it wins), bob has none (the
 * instance's), a user changed through the store is signed with the new
 * secret at once (the change feed), a removed secret falls back. */
static void test_provider_signs(void **st)
{
    hclock_set_fake(NOW_S * 1000 + 250);
    store_t *store = NULL;
    assert_int_equal(store_open("sqlite", ":memory:", &store), HR_OK);
    user_t u = {.user_id = "alice", .webhook_url = "https://x.example.com", .webhook_secret = USER_SECRET};
    assert_int_equal(store_user_put(store, &u), HR_OK);
    user_t b = {.user_id = "bob"};
    assert_int_equal(store_user_put(store, &b), HR_OK);
    app_t app = {.store = store};

    static fx_t f;
    fx_init(&f, "channel.webhook.providers", "hook", "provider.hook.type", "webhook", "provider.hook.url",
            fake_http_url(srv, "/signed"), "provider.hook.secret", SECRET, NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f.cfg, &app, CH_WEBHOOK, fx_done, &f, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    webhook_key_t inst, user;
    assert_int_equal(webhook_secret_parse(SECRET, &inst), HR_OK);
    assert_int_equal(webhook_secret_parse(USER_SECRET, &user), HR_OK);

    fx_notif(&f, 0, CH_WEBHOOK, "", "")->user_id = HSTR("alice");
    fx_notif(&f, 1, CH_WEBHOOK, "", "")->user_id = HSTR("bob");
    fx_notif(&f, 2, CH_WEBHOOK, "", "")->user_id = HSTR("nobody-stored");
    fx_notif(&f, 3, CH_WEBHOOK, "", "")->user_id = HSTR("alice"); /* from the cache */
    fx_deliver(&f, s, 4, 100);
    for (int i = 0; i < 4; i++) assert_int_equal(f.res[i].cls, SEND_OK);
    assert_signed(&f, 0, &user);
    assert_signed(&f, 1, &inst);
    assert_signed(&f, 2, &inst);
    assert_signed(&f, 3, &user);

    /* bob gets a secret, alice loses hers: the next requests show it */
    b.webhook_secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk=";
    assert_int_equal(store_user_put(store, &b), HR_OK);
    u.webhook_secret = "";
    assert_int_equal(store_user_put(store, &u), HR_OK);
    webhook_key_t bobk;
    assert_int_equal(webhook_secret_parse(b.webhook_secret, &bobk), HR_OK);
    fx_notif(&f, 4, CH_WEBHOOK, "", "")->user_id = HSTR("bob");
    fx_notif(&f, 5, CH_WEBHOOK, "", "")->user_id = HSTR("alice");
    /* fx_deliver submits from 0: resubmit under new ids at 0 and 1 */
    f.n[0] = f.n[4];
    f.n[1] = f.n[5];
    snprintf(f.ids[0], sizeof(f.ids[0]), "n-4b");
    snprintf(f.ids[1], sizeof(f.ids[1]), "n-5b");
    f.n[0].notification_id = HSTR(f.ids[0]);
    f.n[1].notification_id = HSTR(f.ids[1]);
    memset(f.completions, 0, sizeof(f.completions));
    fx_deliver(&f, s, 2, 100);
    assert_signed(&f, 0, &bobk);
    assert_signed(&f, 1, &inst);
    provider_set_close(s);
    fx_release(&f);
    store_close(store);
}

/* No secrets anywhere: no signature headers, as before. */
static void test_provider_unsigned(void **st)
{
    static fx_t f;
    fx_init(&f, "channel.webhook.providers", "hook", "provider.hook.type", "webhook", "provider.hook.url",
            fake_http_url(srv, "/plain"), NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f.cfg, NULL, CH_WEBHOOK, fx_done, &f, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    fx_notif(&f, 0, CH_WEBHOOK, "", "");
    snprintf(f.ids[0], sizeof(f.ids[0]), "n-plain");
    f.n[0].notification_id = HSTR(f.ids[0]);
    fx_deliver(&f, s, 1, 100);
    assert_int_equal(f.res[0].cls, SEND_OK);
    assert_signed(&f, 0, NULL);
    provider_set_close(s);
    fx_release(&f);
}

/* A bad instance secret stops the open, naming the key, never the value. */
static void test_bad_instance_secret(void **st)
{
    static fx_t f;
    fx_init(&f, "channel.webhook.providers", "hook", "provider.hook.type", "webhook", "provider.hook.url",
            "http://127.0.0.1:1/", "provider.hook.secret", "whsec_tooshort", NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_WEBHOOK, fx_done, &f, &s, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "provider.hook.secret"));
    assert_null(strstr(why, "tooshort"));
    fx_release(&f);
    fx_init(&f, "channel.webhook.providers", "hook", "provider.hook.type", "webhook", "provider.hook.url",
            "http://127.0.0.1:1/", "provider.hook.secret_file", "/nonexistent/secret", NULL);
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_WEBHOOK, fx_done, &f, &s, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "provider.hook.secret_file"));
    fx_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_parse),
        cmocka_unit_test(test_sign_vector),
        cmocka_unit_test(test_signed_request_exact),
        cmocka_unit_test(test_provider_signs),
        cmocka_unit_test(test_provider_unsigned),
        cmocka_unit_test(test_bad_instance_secret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
