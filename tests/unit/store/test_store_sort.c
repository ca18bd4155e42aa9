/*
 * test_store_sort.c - SQ_DEFINE_SORT (store_sqlite_int.h), the merge sort
 * the SQLite backend sorts the status sink's batches and runs with:
 * ordered and stable on random, sorted, reversed, nearly sorted and
 * repetitive input of every small length and a few large ones; and
 * sq_run_keys_sort (the per-user runs' keys: a radix pass per byte of the
 * users' first 8, then the merge sort) against qsort by sq_run_key_cmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct item {
    int key;
    int pos;                    /* the position before sorting */
} item_t;

static inline bool item_less(const item_t *a, const item_t *b) { return a->key < b->key; }

SQ_DEFINE_SORT(item_sort, item_t, item_less)

static uint32_t rnd_state = 12345;

static int rnd(int n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (int)((rnd_state >> 8) % (uint32_t)n);
}

enum { K_RANDOM, K_SORTED, K_REVERSED, K_NEARLY, K_FEW, K__COUNT };

static void fill(item_t *a, int n, int kind)
{
    for (int i = 0; i < n; i++) {
        int k = 0;
        switch (kind) {
        case K_RANDOM: k = rnd(1 << 20); break;
        case K_SORTED: k = i; break;
        case K_REVERSED: k = n - i; break;
        case K_NEARLY: k = (i / 5) * 5 + rnd(5); break; /* sorted groups, shuffled within */
        default: k = rnd(3); break;                     /* many equal keys */
        }
        a[i] = (item_t){k, i};
    }
}

static void check(const item_t *a, const item_t *before, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        assert_true(a[i - 1].key <= a[i].key);
        if (a[i - 1].key == a[i].key) assert_true(a[i - 1].pos < a[i].pos); /* stable */
    }
    /* a permutation of the input */
    int *seen = xcalloc(n + 1, sizeof(*seen));
    for (size_t i = 0; i < n; i++) {
        assert_in_range(a[i].pos, 0, (int)n - 1);
        assert_int_equal(a[i].key, before[a[i].pos].key);
        seen[a[i].pos]++;
    }
    for (size_t i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    free(seen);
}

static void run(int n, int kind)
{
    item_t *a = malloc((size_t)(n ? n : 1) * sizeof(*a));
    item_t *before = malloc((size_t)(n ? n : 1) * sizeof(*a));
    item_t *tmp = malloc((size_t)(n ? n : 1) * sizeof(*a));
    fill(a, n, kind);
    if (n) memcpy(before, a, (size_t)n * sizeof(*a));
    item_sort(a, n, tmp);
    check(a, before, (size_t)n);
    free(a);
    free(before);
    free(tmp);
}

/* sq_run_key_cmp, then input order (the keys' texts lie in input order) */
static int key_pos_cmp(const void *x, const void *y)
{
    int c = sq_run_key_cmp(x, y);
    if (c) return c;
    const run_key_t *a = x, *b = y;
    return a->user.p < b->user.p ? -1 : a->user.p > b->user.p;
}

static void test_small(void **state)
{
    (void)state;
    for (int n = 0; n <= 70; n++)
        for (int kind = 0; kind < K__COUNT; kind++)
            for (int rep = 0; rep < 3; rep++) run(n, kind);
}

static void test_large(void **state)
{
    (void)state;
    static const int sizes[] = {1000, 8192, 10007};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        for (int kind = 0; kind < K__COUNT; kind++) run(sizes[s], kind);
}

/* Run keys whose users share prefixes (none, all 8 bytes, longer), are
 * shorter than 8 bytes, empty, or repeat; every key's strings are its own
 * copies, so that where a key went is seen by its pointers. */
enum { U_RANDOM, U_PREFIX, U_LONG_PREFIX, U_FEW, U__COUNT };

static void keys_run(int n, int kind)
{
    static const char digits[] = "0123456789abcdef";
    run_key_t *k = malloc((size_t)(n ? n : 1) * sizeof(*k));
    run_key_t *want = malloc((size_t)(n ? n : 1) * sizeof(*k));
    char *text = malloc((size_t)(n ? n : 1) * 64);
    for (int i = 0; i < n; i++) {
        char *u = text + (size_t)i * 64, *id = u + 24;
        size_t un;
        switch (kind) {
        case U_RANDOM: un = (size_t)rnd(13); break;
        case U_PREFIX: un = 8; break;
        case U_LONG_PREFIX: un = 12 + (size_t)rnd(4); break;
        default: un = 3; break;
        }
        for (size_t j = 0; j < un; j++) u[j] = (char)('a' + rnd(kind == U_FEW ? 2 : 26));
        if (kind == U_PREFIX) memcpy(u, "user", 4);           /* 4 bytes the same */
        if (kind == U_LONG_PREFIX) memcpy(u, "user-0000", 9); /* more than 8 the same */
        size_t idn = rnd(4) ? 32 : 5;
        for (size_t j = 0; j < idn; j++) id[j] = digits[rnd(kind == U_FEW ? 2 : 16)];
        k[i] = (run_key_t){{u, un}, (int64_t)rnd(kind == U_FEW ? 3 : 1000) - 500, {id, idn}, NULL};
    }
    if (n) memcpy(want, k, (size_t)n * sizeof(*k));
    /* qsort is not stable: the text's address breaks ties, which is input order */
    qsort(want, (size_t)n, sizeof(*want), key_pos_cmp);
    sq_run_keys_sort(k, n, NULL);
    for (int i = 0; i < n; i++) {
        assert_ptr_equal(k[i].user.p, want[i].user.p);
        assert_ptr_equal(k[i].id.p, want[i].id.p);
    }
    free(k);
    free(want);
    free(text);
}

static void test_run_keys(void **state)
{
    (void)state;
    static const int sizes[] = {0, 1, 2, 3, 17, 100, 1000, 8192};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        for (int kind = 0; kind < U__COUNT; kind++)
            for (int rep = 0; rep < 3; rep++) keys_run(sizes[s], kind);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_run_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
