/*
 * HTTP API tests: /v1/users/{user_id}: profiles, preferences, follows.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_users(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-alice",
         "{\"email\":\"alice@example.com\",\"phone\":\"+14155550100\",\"locale\":\"pt-BR\","
         "\"timezone\":\"America/Sao_Paulo\",\"quiet_hours\":{\"start\":\"22:00\",\"end\":\"07:00\"},"
         "\"devices\":[{\"platform\":\"apns\",\"token\":\"tok-a\"},{\"platform\":\"fcm\",\"token\":\"tok-f\"}],"
         "\"webhook_url\":\"https://hooks.example.com/alice\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "u-alice");
    assert_string_equal(jstr(r.json, "email"), "alice@example.com");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-alice", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "phone"), "+14155550100");
    assert_string_equal(jstr(r.json, "locale"), "pt-BR");
    assert_string_equal(jstr(r.json, "timezone"), "America/Sao_Paulo");
    assert_string_equal(jstr(json_object_get(r.json, "quiet_hours"), "start"), "22:00");
    assert_string_equal(jstr(json_object_get(r.json, "quiet_hours"), "end"), "07:00");
    json_t *devs = json_object_get(r.json, "devices");
    assert_int_equal(json_array_size(devs), 2);
    assert_string_equal(jstr(json_array_get(devs, 1), "platform"), "fcm");
    assert_string_equal(jstr(json_array_get(devs, 1), "token"), "tok-f");
    assert_string_equal(jstr(r.json, "webhook_url"), "https://hooks.example.com/alice");
    assert_true(json_is_string(json_object_get(r.json, "updated_at")));
    hresp_clear(&r);

    /* PUT replaces: absent fields go back to defaults */
    hreq(&r, "PUT", "/v1/users/u-alice", "{\"email\":\"alice@example.org\"}");
    assert_ok_json(&r, 200);
    assert_true(json_is_null(json_object_get(r.json, "phone")));
    assert_string_equal(jstr(r.json, "locale"), "en");
    assert_string_equal(jstr(r.json, "timezone"), "UTC");
    assert_true(json_is_null(json_object_get(r.json, "quiet_hours")));
    assert_int_equal(json_array_size(json_object_get(r.json, "devices")), 0);
    hresp_clear(&r);

    /* ids are percent-decoded */
    hreq(&r, "PUT", "/v1/users/team%2Fbob%20b", "{\"email\":\"bob@example.com\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "team/bob b");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/team%2Fbob%20b", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "email"), "bob@example.com");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/nobody", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"email\":\"not-an-address\"}", "email"},
        {"{\"email\":5}", "email"},
        {"{\"phone\":\"4155550100\"}", "phone"},
        {"{\"phone\":\"+1415abc0100\"}", "phone"},
        {"{\"locale\":\"\"}", "locale"},
        {"{\"timezone\":\"\"}", "timezone"},
        {"{\"timezone\":7}", "timezone"},
        {"{\"timezone\":\"Mars/Olympus\"}", "timezone"},    /* not in the tz database */
        {"{\"timezone\":\"../etc/passwd\"}", "timezone"},
        {"{\"timezone\":\"Europe/Paris\",\"email\":\"x\"}", "email"}, /* Paris is fine */
        {"{\"quiet_hours\":{\"start\":\"25:00\",\"end\":\"07:00\"}}", "quiet_hours.start"},
        {"{\"quiet_hours\":{\"start\":\"22:00\"}}", "quiet_hours.end"},
        {"{\"quiet_hours\":\"22-07\"}", "quiet_hours"},
        {"{\"devices\":[{\"platform\":\"apns\",\"token\":\"t\"},{\"platform\":\"bb\",\"token\":\"t\"}]}",
         "devices[1].platform"},
        {"{\"devices\":[{\"platform\":\"fcm\"}]}", "devices[0].token"},
        {"{\"devices\":{}}", "devices"},
        {"{\"webhook_url\":\"ftp://x\"}", "webhook_url"},
        {"{\"webhook_url\":\"http://169.254.169.254/latest/meta-data\"}", "webhook_url"},
        {"{\"webhook_url\":\"http://localhost:8080/admin\"}", "webhook_url"},
        {"{\"webhook_url\":\"http://[::1]/x\"}", "webhook_url"},
        {"{\"webhook_url\":\"https://10.0.0.7/hook\"}", "webhook_url"},
        {"{\"emial\":\"typo@example.com\"}", "emial"},
        {"{\"user_id\":\"someone-else\"}", "user_id"},
        {"[1,2]", "body"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        hreq(&r, "PUT", "/v1/users/u-bad", bad[i].body);
        assert_problem(&r, 422, bad[i].field);
        hresp_clear(&r);
    }
    /* api.allow_private_webhook_urls lets an operator point webhooks inside */
    F.cfg.api_allow_private_webhook_urls = 1;
    hreq(&r, "PUT", "/v1/users/u-inside", "{\"webhook_url\":\"http://10.0.0.7/hook\"}");
    F.cfg.api_allow_private_webhook_urls = 0;
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "webhook_url"), "http://10.0.0.7/hook");
    hresp_clear(&r);
    /* 17 devices */
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"devices\":[");
    for (int i = 0; i <= STORE_MAX_DEVICES; i++)
        buf_printf(&b, "%s{\"platform\":\"fcm\",\"token\":\"t%d\"}", i ? "," : "", i);
    buf_append_str(&b, "]}");
    hreq(&r, "PUT", "/v1/users/u-bad", buf_cstr(&b));
    assert_problem(&r, 422, "devices");
    hresp_clear(&r);
    buf_release(&b);

    hreq(&r, "PUT", "/v1/users/u-bad", "{\"email\":");
    assert_problem(&r, 400, "body");
    hresp_clear(&r);

    /* nothing was written by the refused requests */
    hreq(&r, "GET", "/v1/users/u-bad", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

static void test_preferences(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-prefs", "{\"email\":\"p@example.com\"}");
    assert_int_equal(r.status, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_object_size(json_object_get(r.json, "channels")), 0);
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/u-prefs/preferences",
         "{\"channels\":{\"sms\":false},\"categories\":{\"social\":{\"push\":true,\"email\":false}}}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    json_t *ch = json_object_get(r.json, "channels");
    assert_int_equal(json_object_size(ch), 1);
    assert_true(json_is_false(json_object_get(ch, "sms")));
    json_t *social = json_object_get(json_object_get(r.json, "categories"), "social");
    assert_true(json_is_true(json_object_get(social, "push")));
    assert_true(json_is_false(json_object_get(social, "email")));
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/u-prefs/preferences", "{\"channels\":{\"fax\":false}}");
    assert_problem(&r, 422, "channels.fax");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-prefs/preferences",
         "{\"categories\":{\"social\":{\"push\":\"yes\"}}}");
    assert_problem(&r, 422, "categories.social.push");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-prefs/preferences", "{\"categories\":[]}");
    assert_problem(&r, 422, "categories");
    hresp_clear(&r);

    /* the refused bodies changed nothing */
    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    assert_true(json_is_false(json_object_get(json_object_get(r.json, "channels"), "sms")));
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/nobody/preferences", "{\"channels\":{\"sms\":false}}");
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/nobody/preferences", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq_ct(&r, "PUT", "/v1/users/u-prefs/preferences", "application/xml", "<prefs/>");
    assert_problem(&r, 415, "Content-Type");
    hresp_clear(&r);
}

static void test_follows(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-fan", "{}");
    assert_int_equal(r.status, 200);
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"kylie\"}");
    assert_ok_json(&r, 201);
    assert_string_equal(jstr(r.json, "actor"), "kylie");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"kylie\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_followers_page(F.app.store, "kylie", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "u-fan");
    ids_free(ids, n);

    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"user\":\"kylie\"}");
    assert_problem(&r, 422, "user");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{}");
    assert_problem(&r, 422, "actor");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"u-fan\"}");
    assert_problem(&r, 422, "actor");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/nobody/follows", "{\"actor\":\"kylie\"}");
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* webhook_secret is write-only: stored and used, never answered (GET and
 * PUT say webhook_secret_set), kept by a PUT that does not name it,
 * removed by null, validated without echoing the value. */
static void test_webhook_secret(void **state)
{
    static const char secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; /* 24-byte key */
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-sig", "{\"webhook_url\":\"https://hooks.example.com/s\","
                                       "\"webhook_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}");
    assert_ok_json(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "webhook_secret_set")));
    assert_null(json_object_get(r.json, "webhook_secret"));
    assert_null(strstr(r.body, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-sig", NULL);
    assert_ok_json(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "webhook_secret_set")));
    assert_null(json_object_get(r.json, "webhook_secret"));
    assert_null(strstr(r.body, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    /* the GET body PUT back as it is keeps the secret */
    char *again = json_dumps(r.json, 0);
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-sig", again);
    free(again);
    assert_ok_json(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "webhook_secret_set")));
    hresp_clear(&r);

    user_t u;
    assert_int_equal(store_user_get(F.app.store, "u-sig", &u), HR_OK);
    assert_string_equal(u.webhook_secret, secret);
    user_clear(&u);

    /* a PUT without it keeps it; null removes it; raw text is accepted */
    hreq(&r, "PUT", "/v1/users/u-sig", "{\"email\":\"sig@example.com\"}");
    assert_true(json_is_true(json_object_get(r.json, "webhook_secret_set")));
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-sig", "{\"webhook_secret\":null}");
    assert_ok_json(&r, 200);
    assert_true(json_is_false(json_object_get(r.json, "webhook_secret_set")));
    hresp_clear(&r);
    assert_int_equal(store_user_get(F.app.store, "u-sig", &u), HR_OK);
    assert_null(u.webhook_secret);
    user_clear(&u);
    hreq(&r, "PUT", "/v1/users/u-sig", "{\"webhook_secret\":\"a plain secret of 24+ chars!\"}");
    assert_ok_json(&r, 200);
    assert_true(json_is_true(json_object_get(r.json, "webhook_secret_set")));
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-nosig", "{}");
    assert_true(json_is_false(json_object_get(r.json, "webhook_secret_set")));
    hresp_clear(&r);

    static const char *const bad[] = {
        "{\"webhook_secret\":\"too-short-secret-23char\"}",          /* 24 is the least: 23 */
        "{\"webhook_secret\":\"whsec_c2hvcnQ=\"}",                   /* a 5-byte key */
        "{\"webhook_secret\":\"whsec_not*base64*at*all*but*long*enough\"}",
        "{\"webhook_secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w\"}", /* base64url alphabet */
        "{\"webhook_secret\":\"a secret with a tab\\there, long enough\"}",
        "{\"webhook_secret\":\"\"}",
        "{\"webhook_secret\":42}",
        "{\"webhook_secret\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", /* 150 */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        hreq(&r, "PUT", "/v1/users/u-sig", bad[i]);
        assert_problem(&r, 422, "webhook_secret");
        assert_null(strstr(r.body, "c2hvcnQ"));
        assert_null(strstr(r.body, "too-short"));
        assert_null(strstr(r.body, "not*base64"));
        hresp_clear(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_preferences),
        cmocka_unit_test(test_follows),
        cmocka_unit_test(test_webhook_secret),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
