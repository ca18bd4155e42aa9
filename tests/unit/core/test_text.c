/*
 * Tests for src/core/text.c: UTF-8 well-formedness (Unicode Table 3-7
 * boundaries) and hex digits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/text.h"

#include <string.h>

#define U(s) (const unsigned char *)(s), sizeof(s) - 1

static void test_seq_len_boundaries(void **state)
{
    /* ASCII, including NUL and controls: one byte */
    assert_int_equal(utf8_seq_len(U("a")), 1);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\0", 1), 1);
    assert_int_equal(utf8_seq_len(U("\x7f")), 1);
    /* smallest and largest of each length */
    assert_int_equal(utf8_seq_len(U("\xc2\x80")), 2);         /* U+0080 */
    assert_int_equal(utf8_seq_len(U("\xdf\xbf")), 2);         /* U+07FF */
    assert_int_equal(utf8_seq_len(U("\xe0\xa0\x80")), 3);     /* U+0800 */
    assert_int_equal(utf8_seq_len(U("\xed\x9f\xbf")), 3);     /* U+D7FF */
    assert_int_equal(utf8_seq_len(U("\xee\x80\x80")), 3);     /* U+E000 */
    assert_int_equal(utf8_seq_len(U("\xef\xbf\xbf")), 3);     /* U+FFFF */
    assert_int_equal(utf8_seq_len(U("\xf0\x90\x80\x80")), 4); /* U+10000 */
    assert_int_equal(utf8_seq_len(U("\xf4\x8f\xbf\xbf")), 4); /* U+10FFFF */
    /* ill-formed */
    assert_int_equal(utf8_seq_len(U("\x80")), 0);             /* lone continuation */
    assert_int_equal(utf8_seq_len(U("\xc0\xaf")), 0);         /* overlong '/' */
    assert_int_equal(utf8_seq_len(U("\xc1\xbf")), 0);         /* overlong */
    assert_int_equal(utf8_seq_len(U("\xe0\x9f\xbf")), 0);     /* overlong 3-byte */
    assert_int_equal(utf8_seq_len(U("\xed\xa0\x80")), 0);     /* surrogate U+D800 */
    assert_int_equal(utf8_seq_len(U("\xed\xbf\xbf")), 0);     /* surrogate U+DFFF */
    assert_int_equal(utf8_seq_len(U("\xf0\x8f\xbf\xbf")), 0); /* overlong 4-byte */
    assert_int_equal(utf8_seq_len(U("\xf4\x90\x80\x80")), 0); /* U+110000 */
    assert_int_equal(utf8_seq_len(U("\xf5\x80\x80\x80")), 0);
    assert_int_equal(utf8_seq_len(U("\xff")), 0);
    assert_int_equal(utf8_seq_len(U("\xc3\x28")), 0);         /* bad continuation */
    /* cut short by n */
    assert_int_equal(utf8_seq_len(U("\xc3")), 0);
    assert_int_equal(utf8_seq_len(U("\xe2\x82")), 0);
    assert_int_equal(utf8_seq_len(U("\xf0\x9f\x98")), 0);
}

static void test_valid(void **state)
{
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain ascii", 11));
    assert_true(utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_true(utf8_valid("a\0b", 3));
    assert_false(utf8_valid("caf\xc3", 4));
    assert_false(utf8_valid("a\xed\xa0\x80z", 5));
    assert_false(utf8_valid("\xe2\x82\xac\x80", 4));
    /* n bounds the check: a cut at a sequence boundary is fine */
    assert_true(utf8_valid("\xe2\x82\xac\xe2\x82\xac", 3));
    assert_false(utf8_valid("\xe2\x82\xac\xe2\x82\xac", 4));
}

/* Every 1- and 2-byte input agrees with a decoder written from the
 * definition (code point ranges, not byte ranges). */
static void test_exhaustive_two_bytes(void **state)
{
    for (unsigned a = 0; a < 256; a++) {
        unsigned char s1[1] = {(unsigned char)a};
        assert_int_equal(utf8_valid((const char *)s1, 1), a < 0x80);
        for (unsigned b = 0; b < 256; b++) {
            unsigned char s[2] = {(unsigned char)a, (unsigned char)b};
            bool want;
            if (a < 0x80)
                want = b < 0x80;
            else if ((a & 0xe0) == 0xc0 && (b & 0xc0) == 0x80)
                want = (((a & 0x1f) << 6) | (b & 0x3f)) >= 0x80;
            else
                want = false;
            assert_int_equal(utf8_valid((const char *)s, 2), want);
        }
    }
}

/* utf8_printable: well-formed and no control character (C0, DEL, C1),
 * every 1- and 2-byte input against the definition, and longer ones with
 * the character to refuse after an ASCII run. */
static void test_printable_exhaustive(void **state)
{
    for (unsigned a = 0; a < 256; a++) {
        unsigned char s1[1] = {(unsigned char)a};
        assert_int_equal(utf8_printable((const char *)s1, 1), a >= 0x20 && a < 0x7f);
        for (unsigned b = 0; b < 256; b++) {
            unsigned char s[2] = {(unsigned char)a, (unsigned char)b};
            bool want;
            if (a < 0x80) {
                want = a >= 0x20 && a != 0x7f && b >= 0x20 && b < 0x7f;
            } else if ((a & 0xe0) == 0xc0 && (b & 0xc0) == 0x80) {
                unsigned cp = ((a & 0x1f) << 6) | (b & 0x3f);
                want = cp >= 0xa0; /* below 0x80 overlong, 0x80..0x9f C1 */
            } else {
                want = false;
            }
            assert_int_equal(utf8_printable((const char *)s, 2), want);
        }
    }
    assert_true(utf8_printable("user-0001@example.com", 21));
    assert_false(utf8_printable("user-0001\x7f", 10));
    assert_false(utf8_printable("user-0001\n", 10));
    assert_false(utf8_printable("user-0001\xc2\x85", 11));
    assert_false(utf8_printable("user-0001\xc3", 10));
    assert_true(utf8_printable("user-0001\xc3\xa9", 11));
    assert_true(utf8_printable("user-0001\n", 9)); /* n bounds the check */
}

static void test_hex(void **state)
{
    assert_int_equal(strlen(hex_lower), 16);
    assert_int_equal(strlen(hex_upper), 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(hex_value(hex_lower[i]), i);
        assert_int_equal(hex_value(hex_upper[i]), i);
    }
    static const char not_hex[] = "gGzZ /:@`\x7f";
    for (const char *p = not_hex; *p; p++) assert_int_equal(hex_value(*p), -1);
    assert_int_equal(hex_value(0), -1);
    assert_int_equal(hex_value(0xe9), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_len_boundaries),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_exhaustive_two_bytes),
        cmocka_unit_test(test_printable_exhaustive),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
