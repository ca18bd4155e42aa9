/*
 * The bounded set of sent notification ids (src/stage/sent_ids.c): exact
 * membership, FIFO eviction at the bound (lookups of the survivors still
 * work after the table shifts entries back), ids it does not keep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/notif.h"
#include "stage/sent_ids.h"

#include <stdio.h>
#include <string.h>

static hstr_t id_of(int i, char buf[33])
{
    char ev[32];
    snprintf(ev, sizeof(ev), "ev-%d", i);
    notif_make_id(1700000000000000 + (int64_t)i * 1000, HSTR(ev), HSTR("ann"), CH_PUSH, buf);
    return (hstr_t){buf, 32};
}

static void test_membership(void **st)
{
    (void)st;
    sent_ids_t s;
    sent_ids_init(&s, 100);
    char a[33], b[33];
    assert_false(sent_ids_has(&s, id_of(1, a)));
    assert_true(sent_ids_add(&s, id_of(1, a)));
    assert_true(sent_ids_has(&s, id_of(1, a)));
    assert_false(sent_ids_has(&s, id_of(2, b)));
    assert_true(sent_ids_add(&s, id_of(1, a))); /* again: still one */
    assert_int_equal(sent_ids_count(&s), 1);
    /* upper-case hex is the same id */
    char up[33];
    for (int i = 0; i < 32; i++) up[i] = (char)(a[i] >= 'a' ? a[i] - 32 : a[i]);
    assert_true(sent_ids_has(&s, (hstr_t){up, 32}));
    /* ids that are not 32 hex digits are not kept */
    assert_false(sent_ids_add(&s, HSTR("n-1")));
    assert_false(sent_ids_has(&s, HSTR("n-1")));
    char bad[33];
    memcpy(bad, a, 33);
    bad[5] = 'x';
    assert_false(sent_ids_add(&s, (hstr_t){bad, 32}));
    sent_ids_clear(&s);
    assert_false(sent_ids_has(&s, id_of(1, a)));
    assert_int_equal(sent_ids_count(&s), 0);
    sent_ids_release(&s);
}

/* At the bound the oldest ids go, in order; every survivor is found. */
static void test_fifo_bound(void **st)
{
    (void)st;
    enum { MAX = 3000, N = 10000 };
    sent_ids_t s;
    sent_ids_init(&s, MAX);
    char buf[33];
    for (int i = 0; i < N; i++) {
        assert_true(sent_ids_add(&s, id_of(i, buf)));
        assert_true(sent_ids_count(&s) <= MAX);
    }
    assert_int_equal(sent_ids_count(&s), MAX);
    for (int i = 0; i < N; i++) {
        bool want = i >= N - MAX;
        if (sent_ids_has(&s, id_of(i, buf)) != want) fail_msg("id %d: found=%d, wanted %d", i, !want, want);
    }
    sent_ids_release(&s);
}

static void test_zero_keeps_nothing(void **st)
{
    (void)st;
    sent_ids_t s;
    sent_ids_init(&s, 0);
    char buf[33];
    assert_false(sent_ids_add(&s, id_of(1, buf)));
    assert_false(sent_ids_has(&s, id_of(1, buf)));
    sent_ids_release(&s);
}

/* A parsed key finds what the text finds, and the parse rejects what the
 * set does not keep. */
static void test_keys(void **st)
{
    (void)st;
    sent_ids_t s;
    sent_ids_init(&s, 100);
    char a[33], b[33];
    sent_key_t ka, kb, kup;
    assert_true(sent_key_parse(id_of(1, a), &ka));
    assert_true(sent_key_parse(id_of(2, b), &kb));
    assert_true(sent_ids_add_key(&s, &ka));
    assert_true(sent_ids_has(&s, id_of(1, a)));
    assert_true(sent_ids_has_key(&s, &ka));
    assert_false(sent_ids_has_key(&s, &kb));
    assert_true(sent_ids_add(&s, id_of(2, b)));
    assert_true(sent_ids_has_key(&s, &kb));
    char up[33];
    for (int i = 0; i < 32; i++) up[i] = (char)(a[i] >= 'a' ? a[i] - 32 : a[i]);
    assert_true(sent_key_parse((hstr_t){up, 32}, &kup));
    assert_memory_equal(&kup, &ka, sizeof(ka));
    assert_false(sent_key_parse(HSTR("n-1"), &kup));
    char bad[33];
    memcpy(bad, a, 33);
    for (int c = 0; c < 256; c++) { /* every non-digit byte, anywhere */
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) continue;
        bad[(c * 7) % 32] = (char)c;
        assert_false(sent_key_parse((hstr_t){bad, 32}, &kup));
        bad[(c * 7) % 32] = a[(c * 7) % 32];
    }
    sent_ids_release(&s);
}

/* The per-batch use: add a few, clear, again and again; and a clear after
 * evictions. Nothing survives a clear and everything added since is found. */
static void test_clear_cycles(void **st)
{
    (void)st;
    enum { MAX = 512 };
    sent_ids_t s;
    sent_ids_init(&s, MAX);
    char buf[33];
    for (int round = 0; round < 200; round++) {
        int n = 1 + (round * 37) % 60;
        for (int i = 0; i < n; i++) assert_true(sent_ids_add(&s, id_of(round * 100 + i, buf)));
        assert_int_equal(sent_ids_count(&s), n);
        for (int i = 0; i < n; i++) assert_true(sent_ids_has(&s, id_of(round * 100 + i, buf)));
        sent_ids_clear(&s);
        assert_int_equal(sent_ids_count(&s), 0);
        for (int i = 0; i < n; i++) assert_false(sent_ids_has(&s, id_of(round * 100 + i, buf)));
        for (size_t t = 0; t <= s.tmask; t++) assert_int_equal(s.tab[t], 0);
    }
    for (int i = 0; i < 3 * MAX; i++) assert_true(sent_ids_add(&s, id_of(100000 + i, buf))); /* evicts */
    sent_ids_clear(&s);
    for (size_t t = 0; t <= s.tmask; t++) assert_int_equal(s.tab[t], 0);
    assert_true(sent_ids_add(&s, id_of(7, buf)));
    assert_true(sent_ids_has(&s, id_of(7, buf)));
    assert_false(sent_ids_has(&s, id_of(100000 + 3 * MAX - 1, buf)));
    sent_ids_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_membership),
        cmocka_unit_test(test_fifo_bound),
        cmocka_unit_test(test_zero_keeps_nothing),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_clear_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
