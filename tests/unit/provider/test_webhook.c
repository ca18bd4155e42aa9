/* Unit tests for the webhook provider over the libcurl multi engine
 * (src/provider/webhook.c, http.c, provider.c), against a local scripted
 * HTTP server (fake_http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_http.h"
#include "prov_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static provider_set_t *open_hook(fx_t *f, const char *max_in_flight, const char *timeout_ms)
{
    fx_init(f, "channel.webhook.providers", "hook", "provider.hook.type", "webhook",
            "provider.hook.url", fake_http_url(srv, "/hook"), "provider.hook.max_in_flight",
            max_in_flight, "provider.hook.timeout_ms", timeout_ms, NULL);
    provider_set_t *s = NULL;
    char why[256] = "";
    if (provider_set_open(&f->cfg, NULL, CH_WEBHOOK, fx_done, f, &s, why, sizeof(why)) != HR_OK)
        fail_msg("%s", why);
    return s;
}

/* 64 notifications on one thread, at most 8 in flight: the server sees 8
 * at once (it holds answers until it does) and never more; each
 * notification is requested once and completed once. */
static void test_many_in_flight_bounded(void **st)
{
    static fx_t f;
    provider_set_t *s = open_hook(&f, "8", "5000");
    int before = fake_http_requests(srv);
    fake_http_hold(srv, 8, before + 64);
    for (int i = 0; i < 64; i++) fx_notif(&f, i, CH_WEBHOOK, "", "");
    fx_deliver(&f, s, 64, 8);
    fake_http_hold(srv, 0, 0);
    assert_int_equal(fake_http_requests(srv) - before, 64);
    assert_int_equal(fake_http_max_concurrent(srv), 8);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        assert_int_equal(f.res[i].code, 200);
        assert_string_equal(f.res[i].msg_id, f.ids[i]); /* no X-Message-Id: our id */
        assert_int_equal(fake_http_key_count(srv, f.ids[i]), 1);
    }
    provider_set_close(s);
    fx_release(&f);
}

/* The notification's trace context reaches the receiver as a traceparent
 * header; a notification without one sends none. */
static void test_traceparent_forwarded(void **st)
{
    static fx_t f;
    static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    provider_set_t *s = open_hook(&f, "4", "5000");
    int before = fake_http_trace_count(srv, tp), none = fake_http_trace_count(srv, "");
    fx_notif(&f, 0, CH_WEBHOOK, "", "")->traceparent = HSTR(tp);
    fx_notif(&f, 1, CH_WEBHOOK, "", "");
    fx_deliver(&f, s, 2, 4);
    assert_int_equal(f.res[0].cls, SEND_OK);
    assert_int_equal(f.res[1].cls, SEND_OK);
    assert_int_equal(fake_http_trace_count(srv, tp) - before, 1);
    assert_int_equal(fake_http_trace_count(srv, "") - none, 1);
    provider_set_close(s);
    fx_release(&f);
}

/* Every class from real responses, Retry-After parsed. */
static void test_classes(void **st)
{
    static fx_t f;
    provider_set_t *s = open_hook(&f, "16", "5000");
    static const struct {
        const char *script;
        send_class_t cls;
        int code;
        int64_t after_ms;
        const char *error;
    } cases[] = {
        {"status=200 msgid=m-1", SEND_OK, 200, 0, ""},
        {"status=202", SEND_OK, 202, 0, ""},
        {"status=429 retry-after=7", SEND_THROTTLED, 429, 7000, "HTTP 429 Too Many Requests"},
        {"status=503 retry-after=2", SEND_RETRY, 503, 2000, "HTTP 503 Service Unavailable"},
        {"status=500", SEND_RETRY, 500, 0, "HTTP 500 Internal Server Error"},
        {"status=408", SEND_RETRY, 408, 0, "HTTP 408 Request Timeout"},
        {"status=400", SEND_PERMANENT, 400, 0, "HTTP 400 Bad Request"},
        {"status=404", SEND_PERMANENT, 404, 0, "HTTP 404 Not Found"},
        {"status=401", SEND_FATAL, 401, 0, "HTTP 401 Unauthorized"},
        {"status=403", SEND_FATAL, 403, 0, "HTTP 403 Forbidden"},
    };
    int n = (int)ARRAY_LEN(cases);
    for (int i = 0; i < n; i++) fx_notif(&f, i, CH_WEBHOOK, cases[i].script, "");
    fx_deliver(&f, s, n, 16);
    for (int i = 0; i < n; i++) {
        const send_result_t *r = &f.res[i];
        assert_int_equal(r->cls, cases[i].cls);
        assert_int_equal(r->code, cases[i].code);
        assert_int_equal(r->retry_after_ms, cases[i].after_ms);
        assert_string_equal(r->error, cases[i].error);
        assert_false(r->address_invalid);
    }
    assert_string_equal(f.res[0].msg_id, "m-1");
    provider_set_close(s);
    fx_release(&f);
}

/* A request slower than timeout_ms completes as RETRY "timeout". */
static void test_timeout_is_retry(void **st)
{
    static fx_t f;
    provider_set_t *s = open_hook(&f, "4", "200");
    fx_notif(&f, 0, CH_WEBHOOK, "delay=1500", "");
    fx_notif(&f, 1, CH_WEBHOOK, "", "");
    fx_deliver(&f, s, 2, 4);
    assert_int_equal(f.res[0].cls, SEND_RETRY);
    assert_int_equal(f.res[0].code, 0);
    assert_non_null(strstr(f.res[0].error, "timeout"));
    assert_int_equal(f.res[1].cls, SEND_OK);
    provider_set_close(s);
    fx_release(&f);
}

/* Nobody listening: RETRY "connect". */
static void test_connection_refused_is_retry(void **st)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd); /* the port is now closed */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));

    static fx_t f;
    fx_init(&f, "channel.webhook.providers", "webhook", "provider.webhook.url", url, NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_WEBHOOK, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    fx_notif(&f, 0, CH_WEBHOOK, "", "");
    fx_deliver(&f, s, 1, 100);
    assert_int_equal(f.res[0].cls, SEND_RETRY);
    assert_non_null(strstr(f.res[0].error, "connect"));
    provider_set_close(s);
    fx_release(&f);
}

/* Closing with requests in flight completes each once, as RETRY. */
static void test_close_completes_in_flight(void **st)
{
    static fx_t f;
    provider_set_t *s = open_hook(&f, "8", "10000");
    for (int i = 0; i < 4; i++) {
        fx_notif(&f, i, CH_WEBHOOK, "delay=800", "");
        assert_int_equal(provider_set_submit(s, &f.n[i], &f.res[i], (void *)(intptr_t)i), HR_OK);
    }
    provider_set_poll(s, 50); /* the requests go out */
    assert_int_equal(provider_set_in_flight(s), 4);
    assert_int_equal(f.done, 0);
    provider_set_close(s);
    assert_int_equal(f.done, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f.completions[i], 1);
        assert_int_equal(f.res[i].cls, SEND_RETRY);
        assert_non_null(strstr(f.res[i].error, "shutdown"));
    }
    fx_release(&f);
}

/* Push routes by the device's platform; anything else to the first. */
static void test_route_by_platform(void **st)
{
    static fx_t f;
    char apns[128], fcm[128];
    snprintf(apns, sizeof(apns), "%s", fake_http_url(srv, "/apns"));
    snprintf(fcm, sizeof(fcm), "%s", fake_http_url(srv, "/fcm"));
    fx_init(&f, "channel.push.providers", "apns, fcm", "provider.apns.type", "webhook",
            "provider.apns.url", apns, "provider.fcm.type", "webhook", "provider.fcm.url", fcm, NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_PUSH, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    fx_notif(&f, 0, CH_PUSH, "", "apns");
    fx_notif(&f, 1, CH_PUSH, "", "fcm");
    fx_notif(&f, 2, CH_PUSH, "", "fcm");
    fx_notif(&f, 3, CH_PUSH, "", "");
    fx_deliver(&f, s, 4, 100);
    assert_int_equal(fake_http_path_count(srv, "/apns"), 2);
    assert_int_equal(fake_http_path_count(srv, "/fcm"), 2);
    provider_set_close(s);
    fx_release(&f);
}

/* Other channels with several instances are a pool of accounts: each user
 * sticks to one instance, and users spread over all of them. */
static void test_route_pool_by_user(void **st)
{
    static fx_t f;
    fx_init(&f, "channel.sms.providers", "sms_a, sms_b", "provider.sms_a.type", "sandbox",
            "provider.sms_b.type", "sandbox", NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_SMS, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    assert_int_equal(provider_set_count(s), 2);
    int used[2] = {0, 0};
    for (int u = 0; u < 200; u++) {
        char id[16];
        snprintf(id, sizeof(id), "user-%d", u);
        notif_t n = {.channel = CH_SMS, .user_id = HSTR(id)};
        int i = provider_set_route(s, &n);
        assert_in_range(i, 0, 1);
        assert_int_equal(provider_set_route(s, &n), i); /* a user keeps one account */
        used[i]++;
    }
    assert_true(used[0] > 50 && used[1] > 50);
    provider_set_close(s);
    fx_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_in_flight_bounded),
        cmocka_unit_test(test_traceparent_forwarded),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_timeout_is_retry),
        cmocka_unit_test(test_connection_refused_is_retry),
        cmocka_unit_test(test_close_completes_in_flight),
        cmocka_unit_test(test_route_by_platform),
        cmocka_unit_test(test_route_pool_by_user),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
