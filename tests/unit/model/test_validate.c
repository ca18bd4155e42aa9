/*
 * Tests for src/model/validate.c: each validator at its edges, limits
 * included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/validate.h"

#include <string.h>

/* A string of n copies of c after prefix and before suffix. */
static char *fill(char *out, const char *prefix, char c, size_t n, const char *suffix)
{
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    memset(out + p, c, n);
    memcpy(out + p + n, suffix, strlen(suffix) + 1);
    return out;
}

static void test_email(void **state)
{
    static const char *const good[] = {"a@b.c", "alice@example.com", "a.b+tag@sub.example.org",
                                       "x@y.z.w"};
    static const char *const bad[] = {"",          "alice",      "@example.com", "alice@",
                                      "a@@b.c",    "a@b@c.d",    "a@example",    "a@.com",
                                      "a@b.",      "al ice@b.c", "a\t@b.c",      "a@b c.d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) assert_true(valid_email(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid_email(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
    char s[VALID_EMAIL_MAX + 16];
    fill(s, "a@", 'b', VALID_EMAIL_MAX - 6, ".com"); /* exactly the limit */
    assert_int_equal(strlen(s), VALID_EMAIL_MAX);
    assert_true(valid_email(s));
    fill(s, "a@", 'b', VALID_EMAIL_MAX - 5, ".com");
    assert_false(valid_email(s));
}

static void test_phone(void **state)
{
    assert_true(valid_phone("+14155550100"));
    assert_true(valid_phone("+1234567"));         /* 7 digits */
    assert_true(valid_phone("+123456789012345")); /* 15 digits */
    assert_int_equal(strlen("+123456789012345"), VALID_PHONE_MAX);
    assert_false(valid_phone("+123456"));          /* 6 */
    assert_false(valid_phone("+1234567890123456")); /* 16 */
    assert_false(valid_phone("14155550100"));
    assert_false(valid_phone("+04155550100"));
    assert_false(valid_phone("+1415abc0100"));
    assert_false(valid_phone("+1 415 555 0100"));
    assert_false(valid_phone("+"));
    assert_false(valid_phone(""));
}

static void test_hhmm(void **state)
{
    int m = -1;
    assert_true(valid_hhmm("00:00", &m));
    assert_int_equal(m, 0);
    assert_true(valid_hhmm("23:59", &m));
    assert_int_equal(m, 23 * 60 + 59);
    assert_true(valid_hhmm("07:05", &m));
    assert_int_equal(m, 425);
    assert_true(valid_hhmm("12:30", NULL));
    static const char *const bad[] = {"24:00", "12:60", "7:00", "07:0", "07-00", "0700",
                                      "07:000", " 7:00", "ab:cd", "", "99:99", "-1:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = -1;
        if (valid_hhmm(bad[i], &m)) fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(m, -1); /* untouched when invalid */
    }
}

static void test_locale(void **state)
{
    static const char *const good[] = {"en", "pt-BR", "zh_Hant_TW", "sr-Latn-RS", "de1"};
    static const char *const bad[] = {"", "e", "1en", "-en", "e n", "en.UTF-8", "fr@euro"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) assert_true(valid_locale(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid_locale(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
    char s[VALID_LOCALE_MAX + 4];
    assert_true(valid_locale(fill(s, "", 'a', VALID_LOCALE_MAX, "")));
    assert_false(valid_locale(fill(s, "", 'a', VALID_LOCALE_MAX + 1, "")));
}

static void test_timezone(void **state)
{
    static const char *const good[] = {"UTC", "Europe/Paris", "America/Argentina/Buenos_Aires",
                                       "Etc/GMT+5", "Etc/GMT-14", "America/Port-au-Prince"};
    static const char *const bad[] = {"", "/Europe", "Europe/", "Europe Paris", "Europe\\Paris",
                                      "UTC;", "Europe/Paris\n", "Mars/Olympus", "../etc/passwd",
                                      "Europe/../UTC", "GMT+05:00", "Europe/Pariss"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(valid_timezone(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid_timezone(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
    char s[VALID_TIMEZONE_MAX + 4];
    /* the right syntax and length, but no such zone in the tz database */
    assert_false(valid_timezone(fill(s, "", 'Z', VALID_TIMEZONE_MAX, "")));
    assert_false(valid_timezone(fill(s, "", 'Z', VALID_TIMEZONE_MAX + 1, "")));
    assert_true(valid_timezone("America/New_York"));
    assert_true(valid_timezone("US/Eastern")); /* a link */
}

static void test_url(void **state)
{
    static const char *const good[] = {"https://hooks.example.com/alice", "http://localhost:8080",
                                       "https://x", "http://10.0.0.1/a?b=c"};
    static const char *const bad[] = {"",         "ftp://x",       "https://",
                                      "http:///x", "https//x",      "https://a b",
                                      "HTTPS://x", "mailto:a@b.c", "//x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) assert_true(valid_url(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid_url(bad[i])) fail_msg("accepted \"%s\"", bad[i]);
    char s[VALID_URL_MAX + 16];
    fill(s, "https://", 'h', VALID_URL_MAX - 8, "");
    assert_true(valid_url(s));
    fill(s, "https://", 'h', VALID_URL_MAX - 7, "");
    assert_false(valid_url(s));
}

/* Hosts inside the network are told apart from the internet, in every
 * spelling a resolver or libcurl would take. */
static void test_url_host_private(void **state)
{
    (void)state;
    static const char *const inside[] = {
        "http://localhost/h", "https://LOCALHOST:8443/h", "http://localhost./h",
        "http://api.localhost/h", "http://127.0.0.1/h", "http://127.1/h", "http://0x7f.0.0.1/h",
        "http://2130706433/h", "http://017700000001/h", "http://0.0.0.0:80/h", "http://10.1.2.3/h",
        "http://172.16.0.1/h", "http://172.31.255.255/h", "http://192.168.1.1/h",
        "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/h", "http://224.0.0.1/h",
        "http://255.255.255.255/h", "http://user:pw@10.0.0.1/h", "http://good.com@127.0.0.1/h",
        "http://[::1]/h", "http://[::]/h", "http://[fe80::1%25eth0]/h", "http://[fe80::1]/h",
        "http://[fd00::1]:8080/h", "http://[::ffff:127.0.0.1]/h", "http://[::ffff:a9fe:a9fe]/h",
        "http://[ff02::1]/h", "http://%31%32%37.0.0.1/h", "http://[::1/h", "http:///h",
    };
    static const char *const outside[] = {
        "https://example.com/hook", "http://hooks.example.com:8080/a?b=c", "http://8.8.8.8/h",
        "http://172.32.0.1/h", "http://192.169.0.1/h", "http://100.128.0.1/h",
        "http://[2001:db8::1]/h", "http://[2606:4700::1111]/h", "https://localhost.example.com/h",
        "http://10.example.com/h", "http://u@example.com/h",
    };
    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
        if (!url_host_private(inside[i])) fail_msg("\"%s\" not seen as private", inside[i]);
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
        if (url_host_private(outside[i])) fail_msg("\"%s\" seen as private", outside[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),    cmocka_unit_test(test_phone),
        cmocka_unit_test(test_hhmm),     cmocka_unit_test(test_locale),
        cmocka_unit_test(test_timezone), cmocka_unit_test(test_url),
        cmocka_unit_test(test_url_host_private),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
