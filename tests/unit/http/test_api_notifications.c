/*
 * HTTP API tests: /v1/notifications/{id} and a user's notification list.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_status(const char *id, const char *user, int64_t created, notif_status_t st,
                       int attempt, const char *msg_id)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = 2;
    n.channel = CH_PUSH;
    n.priority = PRIO_NORMAL;
    n.status = st;
    n.attempt = (uint16_t)attempt;
    n.created_at_ms = created;
    n.status_at_ms = created + attempt * 1000;
    n.notification_id = HSTR(id);
    n.event_id = HSTR("ev-good-1");
    n.user_id = HSTR(user);
    n.category = HSTR("social");
    n.title = HSTR("kylie commented");
    n.body = HSTR("hi");
    n.address = HSTR("tok-a");
    n.channel_msg_id = HSTR(msg_id);
    const notif_t *one = &n;
    assert_int_equal(store_notif_write_batch(F.app.store, &one, 1), HR_OK);
}

static void test_notifications(void **state)
{
    hresp_t r;
    put_status("n-1", "u-inbox", 1714564800000, ST_PENDING, 0, NULL);
    put_status("n-1", "u-inbox", 1714564800000, ST_SENT, 1, "apns-123");
    put_status("n-2", "u-inbox", 1714564801000, ST_PENDING, 0, NULL);
    put_status("n-3", "u-inbox", 1714564802000, ST_PENDING, 0, NULL);

    hreq(&r, "GET", "/v1/notifications/n-1", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "notification_id"), "n-1");
    assert_string_equal(jstr(r.json, "status"), "sent");
    assert_string_equal(jstr(r.json, "channel"), "push");
    assert_string_equal(jstr(r.json, "user_id"), "u-inbox");
    assert_string_equal(jstr(r.json, "created_at"), "2024-05-01T12:00:00.000Z");
    json_t *h = json_object_get(r.json, "history");
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(jstr(json_array_get(h, 0), "status"), "pending");
    assert_string_equal(jstr(json_array_get(h, 1), "status"), "sent");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 1), "attempt")), 1);
    assert_string_equal(jstr(json_array_get(h, 1), "detail"), "apns-123");
    assert_true(json_is_string(json_object_get(json_array_get(h, 1), "at")));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/notifications/n-none", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    /* newest first, pages of 2 */
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?limit=2", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(jstr(json_array_get(items, 0), "notification_id"), "n-3");
    assert_string_equal(jstr(json_array_get(items, 1), "notification_id"), "n-2");
    const char *cur = jstr(r.json, "next_cursor");
    assert_non_null(cur);
    char path[512], enc[256];
    size_t j = 0;
    for (const char *p = cur; *p && j + 4 < sizeof(enc); p++) {
        if (*p == ':' || *p == '+' || *p == '&' || *p == '%')
            j += (size_t)snprintf(enc + j, sizeof(enc) - j, "%%%02X", (unsigned char)*p);
        else
            enc[j++] = *p;
    }
    enc[j] = '\0';
    snprintf(path, sizeof(path), "/v1/users/u-inbox/notifications?limit=2&cursor=%s", enc);
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(jstr(json_array_get(items, 0), "notification_id"), "n-1");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    /* default limit; a user with nothing has an empty list */
    hreq(&r, "GET", "/v1/users/u-inbox/notifications", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u-quiet/notifications", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);

    static const char *const bad_limit[] = {"0", "201", "-1", "abc", "10x", ""};
    for (size_t i = 0; i < ARRAY_LEN(bad_limit); i++) {
        snprintf(path, sizeof(path), "/v1/users/u-inbox/notifications?limit=%s", bad_limit[i]);
        hreq(&r, "GET", path, NULL);
        assert_problem(&r, 400, "limit");
        hresp_clear(&r);
    }
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?limit=200", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-inbox/notifications?cursor=garbage", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?cursor=%01", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
}

/* The trace context the notification's records carried is part of the
 * row the API shows; null when they carried none. */
static void test_notification_traceparent(void **state)
{
    (void)state;
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_STATUS;
    n.channel = CH_WEBHOOK;
    n.status = ST_SENT;
    n.attempt = 1;
    n.created_at_ms = n.status_at_ms = 1714564800000;
    n.notification_id = HSTR("n-traced");
    n.event_id = HSTR("ev-traced");
    n.user_id = HSTR("u-traced");
    n.category = HSTR("default");
    n.title = HSTR("t");
    n.body = HSTR("b");
    n.address = HSTR("https://example.com/h");
    n.quiet_start_min = n.quiet_end_min = NOTIF_QUIET_NONE;
    n.traceparent = HSTR(tp);
    const notif_t *one = &n;
    assert_int_equal(store_notif_write_batch(F.app.store, &one, 1), HR_OK);
    n.notification_id = HSTR("n-untraced");
    n.traceparent = HSTR("");
    assert_int_equal(store_notif_write_batch(F.app.store, &one, 1), HR_OK);

    hresp_t r;
    hreq(&r, "GET", "/v1/notifications/n-traced", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "traceparent"), tp);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/notifications/n-untraced", NULL);
    assert_ok_json(&r, 200);
    assert_true(json_is_null(json_object_get(r.json, "traceparent")));
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u-traced/notifications", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    int traced = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *v = jstr(json_array_get(items, i), "traceparent");
        if (v && strcmp(v, tp) == 0) traced++;
    }
    assert_int_equal(traced, 1);
    hresp_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_notification_traceparent),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
