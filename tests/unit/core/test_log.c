/*
 * log.c: one call writes exactly one line, whatever the message holds:
 * control characters a client chose (a newline in an event type) are
 * escaped, so they can never forge a line of their own. With log.format
 * json the line is one JSON object (ts, level, component, msg) that parses
 * whatever the message holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs one log call with stderr sent to a file; returns what it wrote. */
static char *captured(const char *type)
{
    char path[] = "/tmp/herald-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    log_warn("ingest", "event %s refused", type);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    static char out[16384];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_forged_line(void **state)
{
    char *out = captured("x\n2026-01-01T00:00:00.000Z error   admin    forged");
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "event x\\n2026-01-01T00:00:00.000Z error"));
    assert_non_null(strstr(out, " refused\n"));
}

static void test_controls_escaped(void **state)
{
    char *out = captured("a\rb\tc\x01\x1b[31md\x7f");
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "a\\rb\\tc\\x01\\x1b[31md\\x7f refused"));
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\x1b'));
}

static void test_utf8_kept(void **state)
{
    char *out = captured("caf\xc3\xa9");
    assert_non_null(strstr(out, "event caf\xc3\xa9 refused\n"));
}

static void test_long_line_whole(void **state)
{
    char big[5000];
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *out = captured(big);
    assert_int_equal(lines(out), 1);
    assert_true(strlen(out) <= 2048);
    assert_int_equal(out[strlen(out) - 1], '\n');
}

/* ---- log.format = json ---- */

/* The one JSON object of a captured line (the caller json_decref's it). */
static json_t *json_line(const char *type)
{
    hlog_set_format(HLOG_JSON);
    char *out = captured(type);
    hlog_set_format(HLOG_TEXT);
    assert_int_equal(lines(out), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    json_error_t err;
    json_t *o = json_loads(out, JSON_REJECT_DUPLICATES, &err);
    if (!o) fail_msg("not JSON (%s): %s", err.text, out);
    assert_true(json_is_object(o));
    assert_int_equal(json_object_size(o), 4);
    return o;
}

static const char *field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_json_fields(void **state)
{
    json_t *o = json_line("order.shipped");
    assert_string_equal(field(o, "level"), "warn");
    assert_string_equal(field(o, "component"), "ingest");
    assert_string_equal(field(o, "msg"), "event order.shipped refused");
    const char *ts = field(o, "ts");
    /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    json_decref(o);
}

static void test_json_hostile_message(void **state)
{
    /* a forged line, quotes, a backslash, controls and a broken UTF-8 byte:
     * still one object, and the text comes back (the bad byte as U+FFFD) */
    json_t *o = json_line("x\n{\"level\":\"error\"} \\ \x01\x1b caf\xc3\xa9 \xff");
    assert_string_equal(field(o, "msg"),
                        "event x\n{\"level\":\"error\"} \\ \x01\x1b caf\xc3\xa9 \xef\xbf\xbd refused");
    assert_string_equal(field(o, "level"), "warn");
    json_decref(o);
}

static void test_json_long_message(void **state)
{
    char big[5000];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_t *o = json_line(big);
    /* cut like a text line, but whole and valid JSON */
    size_t n = strlen(field(o, "msg"));
    assert_true(n > 1000 && n < 2048);
    json_decref(o);
}

static void test_format_names(void **state)
{
    assert_int_equal(hlog_parse_format("text"), HLOG_TEXT);
    assert_int_equal(hlog_parse_format("json"), HLOG_JSON);
    assert_int_equal(hlog_parse_format("JSON"), -1);
    assert_int_equal(hlog_parse_format(""), -1);
    /* back to text: the plain line again */
    char *out = captured("t");
    assert_non_null(strstr(out, " warn  ingest   event t refused\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_line),
        cmocka_unit_test(test_controls_escaped),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_long_line_whole),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_hostile_message),
        cmocka_unit_test(test_json_long_message),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
