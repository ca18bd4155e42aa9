/*
 * test_scratch.c - a thread gets back the spare it gave, of its kind and
 * capacity, once; other threads and kinds do not see it; spares over
 * SCRATCH_MAX are freed; a thread's spares are freed when it ends (the
 * sanitizer build's leak check would report them otherwise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "core/scratch.h"

static void test_take_gives_back_once(void **st)
{
    (void)st;
    size_t cap = 99;
    assert_null(scratch_take(SCRATCH_HTTP_BODY, &cap));
    assert_int_equal(cap, 0);
    char *p = malloc(1000);
    memset(p, 'x', 1000);
    scratch_give(SCRATCH_HTTP_BODY, p, 1000);
    assert_null(scratch_take(SCRATCH_EVENT_STRINGS, &cap)); /* another kind */
    char *q = scratch_take(SCRATCH_HTTP_BODY, &cap);
    assert_ptr_equal(q, p);
    assert_int_equal(cap, 1000);
    assert_int_equal(q[999], 'x');
    assert_null(scratch_take(SCRATCH_HTTP_BODY, &cap)); /* taken */
    assert_int_equal(cap, 0);
    free(q);
}

static void test_one_spare_a_kind(void **st)
{
    (void)st;
    char *a = malloc(64), *b = malloc(128);
    scratch_give(SCRATCH_EVENT_STRINGS, a, 64);
    scratch_give(SCRATCH_EVENT_STRINGS, b, 128); /* one held: b is freed */
    scratch_give(SCRATCH_EVENT_STRINGS, NULL, 0); /* nothing */
    size_t cap;
    assert_ptr_equal(scratch_take(SCRATCH_EVENT_STRINGS, &cap), a);
    assert_int_equal(cap, 64);
    free(a);
    char *big = malloc(SCRATCH_MAX + 1);
    scratch_give(SCRATCH_EVENT_STRINGS, big, SCRATCH_MAX + 1); /* too big to keep */
    assert_null(scratch_take(SCRATCH_EVENT_STRINGS, &cap));
    char *max = malloc(SCRATCH_MAX);
    scratch_give(SCRATCH_EVENT_STRINGS, max, SCRATCH_MAX);
    assert_ptr_equal(scratch_take(SCRATCH_EVENT_STRINGS, &cap), max);
    assert_int_equal(cap, SCRATCH_MAX);
    free(max);
}

static void *other_thread(void *arg)
{
    size_t cap = 1;
    void *seen = scratch_take(SCRATCH_HTTP_BODY, &cap); /* not the main thread's */
    *(int *)arg = seen == NULL && cap == 0;
    scratch_give(SCRATCH_HTTP_BODY, malloc(100), 100); /* freed when this thread ends */
    scratch_give(SCRATCH_EVENT_STRINGS, malloc(200), 200);
    return NULL;
}

static void test_threads_have_their_own(void **st)
{
    (void)st;
    char *mine = malloc(10);
    scratch_give(SCRATCH_HTTP_BODY, mine, 10);
    int ok = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &ok), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(ok);
    size_t cap;
    assert_ptr_equal(scratch_take(SCRATCH_HTTP_BODY, &cap), mine);
    free(mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_gives_back_once),
        cmocka_unit_test(test_one_spare_a_kind),
        cmocka_unit_test(test_threads_have_their_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
