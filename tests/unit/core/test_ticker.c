/*
 * test_ticker.c - core/ticker.h: the first delay, the waits the function
 * asks for, niceness, and a stop that ends a long sleep at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ticker.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HOUR_MS (3600 * 1000)

typedef struct calls {
    atomic_int n;
    int quick;      /* calls that ask for no wait (alternately 0 and -5) */
    int nice_seen;
    char name[16];
    sem_t done;     /* posted by the call that asks for an hour */
} calls_t;

static int64_t count_fn(void *arg)
{
    calls_t *c = arg;
    int n = atomic_fetch_add(&c->n, 1) + 1;
    if (n == 1) {
        errno = 0;
        c->nice_seen = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
        pthread_getname_np(pthread_self(), c->name, sizeof(c->name));
    }
    if (n <= c->quick) return n % 2 ? 0 : -5;
    sem_post(&c->done);
    return HOUR_MS;
}

static void test_calls_until_asked_to_wait(void **st)
{
    (void)st;
    calls_t c = {.quick = 6};
    sem_init(&c.done, 0, 0);
    ticker_t *t = NULL;
    assert_int_equal(ticker_start("tick-test", 7, 0, count_fn, &c, &t), HR_OK);
    assert_non_null(t);
    assert_int_equal(sem_wait(&c.done), 0);
    /* the seventh call asked for an hour: the stop ends that sleep, and
     * nothing is called after it */
    ticker_stop(t);
    assert_int_equal(atomic_load(&c.n), 7);
    assert_int_equal(c.nice_seen, 7);
    assert_string_equal(c.name, "tick-test");
    sem_destroy(&c.done);
}

static void test_stop_during_first_delay(void **st)
{
    (void)st;
    calls_t c = {.quick = 0};
    sem_init(&c.done, 0, 0);
    ticker_t *t = NULL;
    assert_int_equal(ticker_start("tick-late", 0, HOUR_MS, count_fn, &c, &t), HR_OK);
    ticker_stop(t);
    assert_int_equal(atomic_load(&c.n), 0);
    ticker_stop(NULL);
    sem_destroy(&c.done);
}

static void test_long_name_is_cut(void **st)
{
    (void)st;
    calls_t c = {.quick = 0};
    sem_init(&c.done, 0, 0);
    ticker_t *t = NULL;
    assert_int_equal(ticker_start("a-name-longer-than-fifteen", 0, 0, count_fn, &c, &t), HR_OK);
    assert_int_equal(sem_wait(&c.done), 0);
    ticker_stop(t);
    assert_string_equal(c.name, "a-name-longer-t");
    assert_int_equal(atomic_load(&c.n), 1);
    sem_destroy(&c.done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_until_asked_to_wait),
        cmocka_unit_test(test_stop_during_first_delay),
        cmocka_unit_test(test_long_name_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
