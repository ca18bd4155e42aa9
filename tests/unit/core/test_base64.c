/*
 * Tests for src/core/base64.c: RFC 4648 test vectors in the url alphabet
 * without padding, round trips of every byte value, and refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/base64.h"

#include <stdlib.h>
#include <string.h>

static void test_rfc4648_vectors(void **state)
{
    /* RFC 4648 section 10, padding removed */
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""},          {"f", "Zg"},        {"fo", "Zm8"},        {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *e = base64url_encode(v[i].plain, strlen(v[i].plain));
        assert_string_equal(e, v[i].enc);
        free(e);
        size_t n = 99;
        char *d = base64url_decode(v[i].enc, strlen(v[i].enc), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(v[i].plain));
        assert_string_equal(d, v[i].plain);
        free(d);
    }
}

/* The two characters that differ from standard base64. */
static void test_url_alphabet(void **state)
{
    static const unsigned char b[] = {0xfb, 0xff, 0xbf};
    char *e = base64url_encode(b, sizeof(b));
    assert_string_equal(e, "-_-_");
    size_t n = 0;
    char *d = base64url_decode(e, strlen(e), &n);
    assert_int_equal(n, sizeof(b));
    assert_memory_equal(d, b, sizeof(b));
    free(d);
    free(e);
}

static void test_round_trip_all_bytes(void **state)
{
    unsigned char b[256];
    for (int i = 0; i < 256; i++) b[i] = (unsigned char)i;
    for (size_t len = 0; len <= sizeof(b); len += (len < 8 ? 1 : 37)) {
        char *e = base64url_encode(b, len);
        assert_int_equal(strlen(e), (len * 4 + 2) / 3);
        assert_null(strpbrk(e, "+/="));
        size_t n = 0;
        char *d = base64url_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, len);
        assert_memory_equal(d, b, len);
        assert_int_equal(d[n], '\0');
        free(d);
        free(e);
    }
}

static void test_refusals(void **state)
{
    static const char *const bad[] = {"Z",      "Zm9vY",  "Zg==", "Zm9v+g", "Zm9v/g",
                                      " Zm9v",  "Zm9v ",  "Zm\n9v", "Zm9v=",  "Zm.v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (base64url_decode(bad[i], strlen(bad[i]), NULL))
            fail_msg("accepted \"%s\"", bad[i]);
    /* a NUL inside the given length is not part of the alphabet */
    assert_null(base64url_decode("Zm\0v", 4, NULL));
}

/* Standard padded base64 (RFC 4648 section 4): the vectors, the '+' '/'
 * alphabet, and strict refusals. */
static void test_standard(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "+/8="}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *e = base64_encode(v[i].plain, strlen(v[i].plain));
        assert_string_equal(e, v[i].enc);
        free(e);
        size_t n = 99;
        unsigned char *d = base64_decode(v[i].enc, strlen(v[i].enc), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(v[i].plain));
        assert_memory_equal(d, v[i].plain, n);
        free(d);
    }
    const char *bad[] = {"Zg=", "Zg", "Z===", "Zm9v-_8=", "Zg==Zg==", "Zm 9", "=Zm9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(base64_decode(bad[i], strlen(bad[i]), NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_round_trip_all_bytes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_standard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
