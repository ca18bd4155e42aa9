/*
 * test_store_hex.c - sq_hex16, sq_id_to_u128 and sq_id_to_bin
 * (store_sqlite_int.h), the SQLite backend's reading of the pipeline's
 * ids (32 lowercase hex digits) as 16 bytes: every byte value at every
 * position against a digit-by-digit reference, random ids, and the ids
 * that must stay text (upper case, other lengths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_sqlite_int.h"

#include <string.h>

/* The reference: one digit at a time. */
static bool ref_hex(const char *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return false;
        x = x << 4 | d;
    }
    *v = x;
    return true;
}

static uint32_t rnd_state = 777;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void random_id(char *id)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) id[i] = digits[rnd(16)];
    id[32] = '\0';
}

/* Every byte value at every position of a valid id: accepted exactly when
 * the byte is a lowercase hex digit, with the reference's value. */
static void test_every_byte(void **state)
{
    (void)state;
    char id[33];
    for (int pos = 0; pos < 32; pos++) {
        random_id(id);
        for (int b = 0; b < 256; b++) {
            id[pos] = (char)b;
            uint64_t want_hi = 0, want_lo = 0, hi = 0, lo = 0;
            bool ok = ref_hex(id, 16, &want_hi) && ref_hex(id + 16, 16, &want_lo);
            assert_int_equal(sq_id_to_u128((hstr_t){id, 32}, &hi, &lo), ok);
            unsigned char bin[SQ_ID_BIN];
            assert_int_equal(sq_id_to_bin((hstr_t){id, 32}, bin), ok);
            if (!ok) continue;
            assert_true(hi == want_hi && lo == want_lo);
            for (int k = 0; k < 8; k++) {
                assert_int_equal(bin[k], (unsigned char)(want_hi >> (56 - 8 * k)));
                assert_int_equal(bin[8 + k], (unsigned char)(want_lo >> (56 - 8 * k)));
            }
        }
    }
}

/* Random ids, at every alignment; sq_hex16 alone on both halves. */
static void test_random(void **state)
{
    (void)state;
    char buf[48];
    for (int t = 0; t < 20000; t++) {
        int off = (int)rnd(8);
        random_id(buf + off);
        uint64_t want, got;
        assert_true(ref_hex(buf + off, 16, &want));
        assert_true(sq_hex16(buf + off, &got));
        assert_true(got == want);
        assert_true(ref_hex(buf + off + 16, 16, &want));
        assert_true(sq_hex16(buf + off + 16, &got));
        assert_true(got == want);
    }
}

static void test_not_hex_ids(void **state)
{
    (void)state;
    uint64_t hi, lo;
    unsigned char bin[SQ_ID_BIN];
    const char *upper = "0123456789ABCDEF0123456789abcdef";
    assert_false(sq_id_to_u128((hstr_t){upper, 32}, &hi, &lo));
    assert_false(sq_id_to_bin((hstr_t){upper, 32}, bin));
    const char *ok = "0123456789abcdef0123456789abcdef0";
    assert_false(sq_id_to_u128((hstr_t){ok, 31}, &hi, &lo));
    assert_false(sq_id_to_u128((hstr_t){ok, 33}, &hi, &lo));
    assert_false(sq_id_to_bin((hstr_t){ok, 0}, bin));
    assert_true(sq_id_to_u128((hstr_t){ok, 32}, &hi, &lo));
    assert_true(hi == 0x0123456789abcdefull && lo == 0x0123456789abcdefull);
    /* the bytes just around the digits' ranges */
    const char edges[] = {'/', ':', '`', 'g', 'A', 'F', (char)0xb0, (char)0xe1, (char)0xff, '\0'};
    for (size_t e = 0; e < sizeof(edges); e++) {
        char id[33];
        memcpy(id, "ffffffffffffffff0000000000000000", 33);
        id[e % 32] = edges[e];
        assert_false(sq_id_to_u128((hstr_t){id, 32}, &hi, &lo));
    }
    assert_true(sq_id_to_u128((hstr_t){"ffffffffffffffff0000000000000000", 32}, &hi, &lo));
    assert_true(hi == UINT64_MAX && lo == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_not_hex_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
