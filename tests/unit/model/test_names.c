#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "model/names.h"

static void test_channel_names(void **st)
{
    (void)st;
    const channel_names_t *n = names_for_channel(CH_PUSH);
    assert_non_null(n);
    assert_string_equal(n->topic, "notifications-push");
    assert_string_equal(n->group, "dispatch-push");
    assert_string_equal(n->stage, "dispatch:push");
    assert_string_equal(n->retry_topic[0], "push-retry-30s");
    assert_string_equal(n->retry_topic[1], "push-retry-5m");
    assert_string_equal(n->retry_topic[2], "push-retry-30m");
    assert_int_equal(retry_tier_delay_ms[0], 30000);
    assert_int_equal(retry_tier_delay_ms[2], 30 * 60000);
    assert_string_equal(topic_for_channel(CH_WEBHOOK), "notifications-webhook");
    assert_null(names_for_channel(-1));
    assert_null(names_for_channel(CH__COUNT));
    assert_null(topic_for_channel(CH__COUNT));
    /* every channel's names carry its channel name */
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *c = channel_name((channel_t)ch);
        n = names_for_channel(ch);
        assert_non_null(strstr(n->topic, c));
        assert_non_null(strstr(n->group, c));
        assert_non_null(strstr(n->stage, c));
        for (int t = 0; t < RETRY_TIERS; t++) assert_int_equal(strncmp(n->retry_topic[t], c, strlen(c)), 0);
    }
}

static void test_group_topic(void **st)
{
    (void)st;
    assert_string_equal(names_group_topic("fanout"), TOPIC_RAW);
    assert_string_equal(names_group_topic("status"), TOPIC_STATUS);
    assert_string_equal(names_group_topic("dispatch-sms"), "notifications-sms");
    assert_null(names_group_topic("dispatch-"));
    assert_null(names_group_topic("dispatch-fax"));
    assert_null(names_group_topic("ingest"));
}

static void test_roles(void **st)
{
    (void)st;
    roles_t r;
    char why[256];
    assert_int_equal(roles_parse("all", &r, why, sizeof(why)), HR_OK);
    assert_true(r.ingest && r.fanout && r.status && r.dispatch[CH_PUSH] && r.dispatch[CH_WEBHOOK]);

    assert_int_equal(roles_parse("ingest, dispatch:sms,status", &r, why, sizeof(why)), HR_OK);
    assert_true(r.ingest && r.status && r.dispatch[CH_SMS]);
    assert_false(r.fanout || r.dispatch[CH_PUSH]);
    assert_true(roles_has_stage(&r, "dispatch:sms"));
    assert_false(roles_has_stage(&r, "dispatch:push"));
    assert_true(roles_has_stage(&r, "status"));
    assert_false(roles_has_stage(&r, "fanout"));
    assert_false(roles_has_stage(&r, "ingest")); /* not a stage */

    assert_int_equal(roles_parse("dispatch", &r, why, sizeof(why)), HR_OK);
    for (int ch = 0; ch < CH__COUNT; ch++) assert_true(r.dispatch[ch]);
    assert_false(r.ingest || r.fanout || r.status);

    assert_int_equal(roles_parse("fanout,dispatch:fax", &r, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "'dispatch:fax'"));
    assert_int_equal(roles_parse("fanout,,status", &r, why, sizeof(why)), HR_INVALID);
    assert_int_equal(roles_parse("all,fanout", &r, why, sizeof(why)), HR_INVALID);
    assert_int_equal(roles_parse("", &r, why, sizeof(why)), HR_INVALID);
    assert_int_equal(roles_parse("noingest", &r, why, sizeof(why)), HR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_names),
        cmocka_unit_test(test_group_topic),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
