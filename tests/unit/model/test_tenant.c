/*
 * Tenant-qualified ids (model/tenant.h): qualify, unqualify, ownership;
 * the default tenant keeps its ids and notification ids; ids with control
 * characters (the separator among them) are refused in events; the
 * notification JSON never shows the separator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/text.h"
#include "model/event.h"
#include "model/notif.h"
#include "model/tenant.h"

static void test_qualify_and_back(void **st)
{
    (void)st;
    char *q = tenant_qualify("acme", "u1");
    assert_string_equal(q, "acme\x1fu1");
    assert_string_equal(tenant_unqualify(q), "u1");
    assert_true(tenant_owns("acme", q));
    assert_false(tenant_owns("beta", q));
    assert_false(tenant_owns("default", q));
    assert_false(tenant_owns("acm", q)); /* a prefix of the name is not the tenant */
    assert_false(tenant_owns("acme\x1fu", q));
    free(q);

    /* the default tenant: unqualified, and owns only ids without a separator */
    q = tenant_qualify("default", "u1");
    assert_string_equal(q, "u1");
    free(q);
    q = tenant_qualify(NULL, "u1");
    assert_string_equal(q, "u1");
    free(q);
    assert_true(tenant_owns("default", "u1"));
    assert_true(tenant_owns(NULL, "u1"));
    assert_false(tenant_owns("default", "acme\x1fu1"));
    assert_false(tenant_owns("default", "\x1fu1"));
    assert_string_equal(tenant_unqualify("u1"), "u1");

    char buf[TENANT_QID_MAX + 1];
    const char *id = "e-7";
    assert_ptr_equal(tenant_qualify_to("default", id, buf), id); /* no copy */
    assert_string_equal(tenant_qualify_to("beta", id, buf), "beta\x1f" "e-7");
    char longid[TENANT_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_null(tenant_qualify_to("beta", longid, buf));
    longid[TENANT_ID_MAX] = '\0'; /* the longest id fits with the longest tenant */
    char tn[TENANT_NAME_MAX + 1];
    memset(tn, 'a', TENANT_NAME_MAX);
    tn[TENANT_NAME_MAX] = '\0';
    assert_true(tenant_name_valid(tn));
    assert_non_null(tenant_qualify_to(tn, longid, buf));
    assert_int_equal(strlen(buf), TENANT_QID_MAX);

    hstr_t t, i;
    tenant_split(HSTR("acme\x1fu\x1f" "2"), &t, &i); /* split at the first separator */
    assert_int_equal(t.n, 4);
    assert_memory_equal(t.p, "acme", 4);
    assert_int_equal(i.n, 3);
    tenant_split(HSTR("plain"), &t, &i);
    assert_int_equal(t.n, 0);
    assert_int_equal(i.n, 5);
}

static void test_tenant_names(void **st)
{
    (void)st;
    assert_true(tenant_name_valid("acme"));
    assert_true(tenant_name_valid("a-b_2"));
    assert_false(tenant_name_valid(""));
    assert_false(tenant_name_valid(NULL));
    assert_false(tenant_name_valid("-a"));
    assert_false(tenant_name_valid("Acme"));
    assert_false(tenant_name_valid("a\x1f"));
    assert_true(tenant_is_default(NULL));
    assert_true(tenant_is_default(""));
    assert_true(tenant_is_default("default"));
    assert_false(tenant_is_default("acme"));
}

/* The default tenant's notification ids hash the ids as given, and
 * two tenants' same event and user ids make different ones. */
static void test_notification_ids(void **st)
{
    (void)st;
    char a[33], b[33], d[33], q[TENANT_QID_MAX + 1], q2[TENANT_QID_MAX + 1];
    /* the time part (0 here), then lowercase hex of
     * SHA-256("e1\0u1\0push")[0..10), computed outside herald */
    notif_make_id(0, HSTR(tenant_qualify_to("default", "e1", q)),
                  HSTR(tenant_qualify_to("default", "u1", q2)), CH_PUSH, d);
    assert_string_equal(d, "000000000000" "5ff9f7356b0027362b2f");
    notif_make_id(0, HSTR(tenant_qualify_to("acme", "e1", q)),
                  HSTR(tenant_qualify_to("acme", "u1", q2)), CH_PUSH, a);
    assert_string_equal(a, "000000000000" "32bfea242756672d9173"); /* of "acme\x1f" "e1\0acme\x1f" "u1\0push" */
    notif_make_id(0, HSTR(tenant_qualify_to("beta", "e1", q)),
                  HSTR(tenant_qualify_to("beta", "u1", q2)), CH_PUSH, b);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, d);
}

static void test_event_ids_refuse_controls(void **st)
{
    (void)st;
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"event_id\":\"e\\u001f1\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]}}", "event_id"},
        {"{\"event_id\":\"e\",\"type\":\"t\\u0001\",\"audience\":{\"users\":[\"u\"]}}", "type"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\",\"acme\\u001fu\"]}}",
         "audience.users[1]"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\\u007f\"}}", "audience.topic"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"followers_of\":\"a\\u0085\"}}",
         "audience.followers_of"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"actor\":\"a\\n\",\"audience\":{\"users\":[\"u\"]}}", "actor"},
        {"{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"subject\":\"a\\u001f\","
         "\"audience\":{\"users\":[\"u\"]}}", "subject"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"tenant\":\"Acme\",\"audience\":{\"users\":[\"u\"]}}", "tenant"},
        {"{\"event_id\":\"e\",\"type\":\"t\",\"tenant\":\"\",\"audience\":{\"users\":[\"u\"]}}", "tenant"},
        {"{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"s\",\"type\":\"t\",\"data\":{\"tenant\":\"a b\","
         "\"audience\":{\"users\":[\"u\"]}}}", "data.tenant"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        event_t ev;
        problem_t pb;
        memset(&pb, 0, sizeof(pb));
        if (event_parse(bad[i].json, strlen(bad[i].json), &ev, &pb) != HR_INVALID)
            fail_msg("case %zu accepted", i);
        assert_string_equal(pb.field, bad[i].field);
    }
    event_t ev;
    problem_t pb;
    const char *ok = "{\"event_id\":\"e\",\"type\":\"t\",\"tenant\":\"acme\",\"actor\":\"Zoë\","
                     "\"audience\":{\"users\":[\"u\"]}}";
    assert_int_equal(event_parse(ok, strlen(ok), &ev, &pb), HR_OK);
    assert_string_equal(ev.tenant, "acme");
    event_clear(&ev);
    assert_false(utf8_printable("a\x1f", 2));
    assert_true(utf8_printable("Zo\xc3\xab", 4));
}

/* What leaves herald shows ids as the tenant named them, and the tenant. */
static void test_notif_json_unqualified(void **st)
{
    (void)st;
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_WEBHOOK, .status = ST_PENDING, .attempt = 1,
                 .notification_id = HSTR("0123"), .event_id = HSTR("acme\x1f" "e1"),
                 .user_id = HSTR("acme\x1fu1"), .title = HSTR("t"), .body = HSTR("b")};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    assert_null(memchr(b.data, 0x1f, b.len));
    assert_null(strstr(b.data, "\\u001f"));
    json_t *o = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "user_id")), "u1");
    assert_string_equal(json_string_value(json_object_get(o, "event_id")), "e1");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
    json_decref(o);

    /* the default tenant: no tenant member, ids as they are */
    n.event_id = HSTR("e1");
    n.user_id = HSTR("u1");
    buf_reset(&b);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    o = json_loadb(b.data, b.len, 0, NULL);
    assert_null(json_object_get(o, "tenant"));
    assert_string_equal(json_string_value(json_object_get(o, "user_id")), "u1");
    json_decref(o);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qualify_and_back),
        cmocka_unit_test(test_tenant_names),
        cmocka_unit_test(test_notification_ids),
        cmocka_unit_test(test_event_ids_refuse_controls),
        cmocka_unit_test(test_notif_json_unqualified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
