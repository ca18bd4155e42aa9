/*
 * test_crc32c.c - CRC-32C against the RFC 3720 (iSCSI) vectors, the hardware
 * and the portable implementation agreeing on every length and alignment,
 * and chaining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/crc32c.h"

static void check_all(const void *data, size_t len, uint32_t want)
{
    assert_int_equal(crc32c(0, data, len), want);
    assert_int_equal(crc32c_portable(0, data, len), want);
    crc32c_fn hw = crc32c_hardware();
    if (hw) assert_int_equal(hw(0, data, len), want);
}

static void test_vectors(void **state)
{
    (void)state;
    check_all("123456789", 9, 0xE3069283u);
    check_all("", 0, 0);
    unsigned char b[32];
    memset(b, 0, sizeof(b));
    check_all(b, sizeof(b), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    check_all(b, sizeof(b), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    check_all(b, sizeof(b), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    check_all(b, sizeof(b), 0x113FDB5Cu);
}

static void test_hw_matches_portable(void **state)
{
    (void)state;
    crc32c_fn hw = crc32c_hardware();
    unsigned char buf[2100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof(buf); len += len < 40 ? 1 : 37) {
            uint32_t want = crc32c_portable(0, buf + off, len);
            assert_int_equal(crc32c(0, buf + off, len), want);
            if (hw) assert_int_equal(hw(0, buf + off, len), want);
        }
    assert_true(strcmp(crc32c_impl(), hw ? "sse4.2" : "table") == 0);
}

static void test_chaining(void **state)
{
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    uint32_t whole = crc32c(0, s, n);
    assert_int_equal(whole, 0x22620404u);
    for (size_t k = 0; k <= n; k++) {
        assert_int_equal(crc32c(crc32c(0, s, k), s + k, n - k), whole);
        assert_int_equal(crc32c_portable(crc32c_portable(0, s, k), s + k, n - k), whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hw_matches_portable),
        cmocka_unit_test(test_chaining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
