/* Unit tests for the sandbox provider and the provider registry / config
 * checks (src/provider/sandbox.c, provider.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "prov_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup(void **st)
{
    snprintf(dir, sizeof(dir), "/tmp/herald-sandbox-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/sandbox/email.jsonl", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/sandbox", dir);
    rmdir(path);
    rmdir(dir);
    return 0;
}

/* Reads the email sandbox file: one JSON object per line, all parsed. */
static json_t *read_lines(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/sandbox/email.jsonl", dir);
    FILE *fp = fopen(path, "r");
    json_t *arr = json_array();
    if (!fp) return arr;
    char line[8192];
    while (fgets(line, sizeof(line), fp)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) fail_msg("line is not JSON (%s): %s", err.text, line);
        json_array_append_new(arr, o);
    }
    fclose(fp);
    return arr;
}

/* Regression: the sandbox had its own escaper that let invalid UTF-8
 * through, so such a line was not JSON. Now every line parses, and the bad
 * bytes read as U+FFFD. Each notification completes once, as OK. */
static void test_lines_are_json_even_for_invalid_utf8(void **st)
{
    static fx_t f;
    fx_init(&f, "data_dir", dir, "sandbox.mode", "file", NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    fx_notif(&f, 0, CH_EMAIL, "bad \xff\xfe title \xc3", "");
    fx_notif(&f, 1, CH_EMAIL, "ctl \x01 \"q\" \\ \xe2\x9c\x93", "");
    f.n[1].body = HSTR("overlong \xc0\xaf surrogate \xed\xa0\x80");
    fx_deliver(&f, s, 2, 1024);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f.res[i].cls, SEND_OK);
        char want[64];
        snprintf(want, sizeof(want), "sandbox-%s", f.ids[i]);
        assert_string_equal(f.res[i].msg_id, want);
    }
    json_t *lines = read_lines();
    assert_int_equal(json_array_size(lines), 2);
    json_t *a = json_array_get(lines, 0), *b = json_array_get(lines, 1);
    assert_string_equal(json_string_value(json_object_get(a, "title")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd title \xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(a, "notification_id")), "n-0");
    assert_string_equal(json_string_value(json_object_get(a, "channel")), "email");
    assert_string_equal(json_string_value(json_object_get(b, "title")), "ctl \x01 \"q\" \\ \xe2\x9c\x93");
    assert_string_equal(json_string_value(json_object_get(b, "body")),
                        "overlong \xef\xbf\xbd\xef\xbf\xbd surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_true(json_is_integer(json_object_get(b, "delivered_at_us")));
    json_decref(lines);
    provider_set_close(s);
    fx_release(&f);
}

/* A torn last line (a process killed in the middle of a write) is cut at
 * open, so the next line does not glue onto it: every line stays JSON. */
static void test_torn_line_cut_at_open(void **st)
{
    static fx_t f;
    char sub[96], path[160];
    snprintf(sub, sizeof(sub), "%s/torn", dir);
    snprintf(path, sizeof(path), "%s/sandbox", sub);
    assert_int_equal(mkdir_p(path, 0700), HR_OK);
    snprintf(path, sizeof(path), "%s/sandbox/email.jsonl", sub);
    FILE *fp = fopen(path, "w");
    fputs("{\"notification_id\":\"whole\"}\n{\"notification_id\":\"to", fp);
    fclose(fp);
    fx_init(&f, "data_dir", sub, "sandbox.mode", "file", NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    fx_notif(&f, 0, CH_EMAIL, "after", "");
    fx_deliver(&f, s, 1, 1024);
    provider_set_close(s);
    fp = fopen(path, "r");
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), fp)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) fail_msg("line %d is not JSON (%s): %s", n + 1, err.text, line);
        const char *id = json_string_value(json_object_get(o, "notification_id"));
        assert_string_equal(id, n == 0 ? "whole" : "n-0");
        json_decref(o);
        n++;
    }
    fclose(fp);
    assert_int_equal(n, 2);
    fx_release(&f);
}

/* The test hooks in the address: "sandbox-fail-retry" anywhere answers
 * RETRY, "sandbox-fail-permanent" PERMANENT (retry wins when both are
 * there); anything else, near misses included, is delivered. */
static void test_failure_markers(void **st)
{
    static const struct {
        const char *address;
        send_class_t want;
    } cases[] = {
        {"0123456789abcdef0123456789abcdef", SEND_OK},
        {"sandbox-fail-retry", SEND_RETRY},
        {"x+sandbox-fail-retry@example.com", SEND_RETRY},
        {"ssandbox-fail-permanent", SEND_PERMANENT},
        {"sandbox-fail-permanent sandbox-fail-retry", SEND_RETRY},
        {"sandbox-fail-retr", SEND_OK},
        {"sandbox-fail-permanen", SEND_OK},
        {"sandbox-fail-other sandbox-fail-permanent", SEND_PERMANENT},
        {"sasandbox-fail-retrysandbox", SEND_RETRY},
        {"", SEND_OK},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    static fx_t f;
    fx_init(&f, "data_dir", dir, "sandbox.mode", "null", NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    for (int i = 0; i < N; i++) fx_notif(&f, i, CH_EMAIL, "t", "")->address = HSTR(cases[i].address);
    fx_deliver(&f, s, N, 1024);
    for (int i = 0; i < N; i++)
        if (f.res[i].cls != cases[i].want)
            fail_msg("address \"%s\": class %d, want %d", cases[i].address, (int)f.res[i].cls, (int)cases[i].want);
    provider_set_close(s);
    fx_release(&f);
}

/* The bound: with max_in_flight 4 the fifth submit is "full" until a
 * poll completes the first four; null mode writes nothing. */
static void test_bound_and_null_mode(void **st)
{
    static fx_t f;
    char sub[96];
    snprintf(sub, sizeof(sub), "%s/null", dir);
    fx_init(&f, "data_dir", sub, "sandbox.mode", "null", "provider.sandbox.max_in_flight", "4", NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)), HR_OK);
    for (int i = 0; i < 5; i++) fx_notif(&f, i, CH_EMAIL, "t", "");
    for (int i = 0; i < 4; i++)
        assert_int_equal(provider_set_submit(s, &f.n[i], &f.res[i], (void *)(intptr_t)i), HR_OK);
    assert_int_equal(provider_set_submit(s, &f.n[4], &f.res[4], (void *)(intptr_t)4), HR_AGAIN);
    assert_int_equal(f.done, 0); /* never from inside submit */
    assert_int_equal(provider_set_poll(s, 0), 4);
    assert_int_equal(f.done, 4);
    assert_int_equal(provider_set_submit(s, &f.n[4], &f.res[4], (void *)(intptr_t)4), HR_OK);
    provider_set_close(s); /* completes what is left */
    assert_int_equal(f.done, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f.completions[i], 1);
        assert_int_equal(f.res[i].cls, SEND_OK);
    }
    assert_int_equal(access(sub, F_OK), -1); /* null mode: nothing created */
    fx_release(&f);
}

static void expect_bad(const char *key, const char *value, const char *why_has)
{
    config_t c;
    char why[256] = "";
    config_init(&c);
    assert_int_equal(config_set(&c, key, value, why, sizeof(why)), HR_OK);
    assert_int_equal(provider_config_check(&c, why, sizeof(why)), HR_INVALID);
    if (!strstr(why, why_has)) fail_msg("'%s' does not name '%s'", why, why_has);
    provider_set_t *s = NULL;
    assert_int_not_equal(provider_set_open(&c, NULL, CH_PUSH, fx_done, NULL, &s, why, sizeof(why)), HR_OK);
    config_release(&c);
}

static void test_config_check(void **st)
{
    config_t c;
    char why[256] = "";
    config_init(&c);
    assert_int_equal(provider_config_check(&c, why, sizeof(why)), HR_OK); /* defaults: sandbox */
    assert_int_equal(config_set(&c, "provider.hooks.type", "webhook", why, sizeof(why)), HR_OK);
    assert_int_equal(config_set(&c, "provider.hooks.url", "http://x/", why, sizeof(why)), HR_OK);
    assert_int_equal(config_set(&c, "channel.webhook.providers", "hooks", why, sizeof(why)), HR_OK);
    assert_int_equal(provider_config_check(&c, why, sizeof(why)), HR_OK);
    config_release(&c);

    expect_bad("provider.hooks.type", "smoke-signals", "unknown provider type 'smoke-signals'");
    expect_bad("provider.webhook.ulr", "http://x/", "provider.webhook.ulr");
    expect_bad("channel.pigeon.providers", "sandbox", "channel.pigeon.providers");
    expect_bad("channel.push.provider", "sandbox", "channel.push.provider");
    expect_bad("channel.push.providers", "pigeon", "'pigeon' is not a provider type");
    expect_bad("channel.push.providers", " , ", "channel.push.providers");
    expect_bad("provider.sandbox.max_in_flight", "0", "provider.sandbox.max_in_flight");

    /* A webhook without a url is caught when it opens. */
    config_init(&c);
    assert_int_equal(config_set(&c, "channel.push.providers", "webhook", why, sizeof(why)), HR_OK);
    provider_set_t *s = NULL;
    assert_int_equal(provider_set_open(&c, NULL, CH_PUSH, fx_done, NULL, &s, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "provider.webhook.url"));
    config_release(&c);

    /* Environment: HERALD_PROVIDER_<NAME>_<KEY>, HERALD_CHANNEL_<CH>_<KEY>. */
    config_init(&c);
    setenv("HERALD_PROVIDER_HOOKS_MAX_IN_FLIGHT", "7", 1);
    setenv("HERALD_CHANNEL_SMS_PROVIDERS", "hooks", 1);
    assert_int_equal(config_load_env(&c, why, sizeof(why)), HR_OK);
    unsetenv("HERALD_PROVIDER_HOOKS_MAX_IN_FLIGHT");
    unsetenv("HERALD_CHANNEL_SMS_PROVIDERS");
    const char *const *kv = config_provider_kv(&c);
    int found = 0;
    for (; kv[0]; kv += 2) {
        if (strcmp(kv[0], "provider.hooks.max_in_flight") == 0 && strcmp(kv[1], "7") == 0) found++;
        if (strcmp(kv[0], "channel.sms.providers") == 0 && strcmp(kv[1], "hooks") == 0) found++;
    }
    assert_int_equal(found, 2);
    config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_are_json_even_for_invalid_utf8),
        cmocka_unit_test(test_failure_markers),
        cmocka_unit_test(test_bound_and_null_mode),
        cmocka_unit_test(test_torn_line_cut_at_open),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
