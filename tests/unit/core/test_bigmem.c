/*
 * test_bigmem.c - large arrays are mapped in whole 2 MiB pages, aligned,
 * zeroed and writable; small ones come from calloc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/bigmem.h"

static void test_small_from_calloc(void **st)
{
    (void)st;
    size_t map = 99;
    unsigned char *p = bigmem_alloc(1000, &map);
    assert_non_null(p);
    assert_int_equal(map, 0);
    for (int i = 0; i < 1000; i++) assert_int_equal(p[i], 0);
    bigmem_free(p, map);
    p = bigmem_alloc(BIGMEM_MIN - 1, &map);
    assert_int_equal(map, 0);
    bigmem_free(p, map);
    bigmem_free(NULL, 0);
}

static void test_large_mapped(void **st)
{
    (void)st;
    static const size_t lens[] = {BIGMEM_MIN, BIGMEM_MIN + 1, 3 * BIGMEM_MIN - 5, 4 * BIGMEM_MIN};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t map = 0;
        unsigned char *p = bigmem_alloc(lens[i], &map);
        assert_non_null(p);
        assert_true(map >= lens[i] && map < lens[i] + BIGMEM_MIN);
        assert_int_equal(map % BIGMEM_MIN, 0);
        assert_int_equal((uintptr_t)p % BIGMEM_MIN, 0);
        for (size_t j = 0; j < lens[i]; j += 4093) assert_int_equal(p[j], 0);
        assert_int_equal(p[lens[i] - 1], 0);
        memset(p, 0xab, lens[i]);
        assert_int_equal(p[lens[i] - 1], 0xab);
        bigmem_free(p, map);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_from_calloc),
        cmocka_unit_test(test_large_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
