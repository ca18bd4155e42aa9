/* Unit tests for src/core/json_write.c: the one JSON string escaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/json_write.h"

#include <jansson.h>
#include <string.h>

static char *str_json(const char *s, size_t n, buf_t *b)
{
    buf_reset(b);
    jw_t w = JW_INIT(b);
    jw_str(&w, s, n);
    assert_int_equal(w.r, HR_OK);
    return b->data;
}

static void test_escapes(void **st)
{
    buf_t b;
    buf_init(&b, 0);
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"", 0, "\"\""},
        {"plain", 5, "\"plain\""},
        {"q\"b\\", 4, "\"q\\\"b\\\\\""},
        {"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"nul\0x", 5, "\"nul\\u0000x\""},
        {"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\""},
        {"\xff", 1, "\"\\ufffd\""},
        {"a\xc3", 2, "\"a\\ufffd\""},                  /* truncated */
        {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},         /* overlong */
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\x7f", 1, "\"\x7f\""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        assert_string_equal(str_json(cases[i].in, cases[i].n, &b), cases[i].out);
    buf_release(&b);
}

/* Any bytes give a string jansson parses. */
static void test_any_bytes_parse(void **st)
{
    buf_t b;
    buf_init(&b, 0);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 2000; round++) {
        unsigned char in[48];
        size_t n = (size_t)(round % 48);
        for (size_t i = 0; i < n; i++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            in[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
        }
        buf_reset(&b);
        jw_t w = JW_INIT(&b);
        jw_lit(&w, "[");
        jw_str(&w, (const char *)in, n);
        jw_lit(&w, "]");
        json_error_t err;
        json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &err); /* \u0000 is valid JSON */
        if (!j) fail_msg("not JSON (%s): %s", err.text, b.data);
        json_decref(j);
    }
    buf_release(&b);
}

static void test_keys_ints_and_limit(void **st)
{
    buf_t b;
    buf_init(&b, 0);
    jw_t w = JW_INIT(&b);
    jw_lit(&w, "{");
    jw_key_str(&w, JW_KEY0("a"), "x", 1);
    jw_key_int(&w, JW_KEY("n"), INT64_MIN);
    jw_key_int(&w, JW_KEY("z"), 0);
    jw_lit(&w, "}");
    assert_int_equal(w.r, HR_OK);
    assert_string_equal(b.data, "{\"a\":\"x\",\"n\":-9223372036854775808,\"z\":0}");
    buf_release(&b);

    /* Past the buffer's limit the writer stops and remembers it. */
    buf_init(&b, 8);
    w = JW_INIT(&b);
    jw_str(&w, "0123456789", 10);
    assert_int_equal(w.r, HR_AGAIN);
    jw_lit(&w, "x");
    assert_int_equal(w.r, HR_AGAIN);
    assert_true(b.len <= 8);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_any_bytes_parse),
        cmocka_unit_test(test_keys_ints_and_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
