/*
 * Chunk planning (stage/chunks.h) over a fake audience, and the chunk task
 * record (model/chunk.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage/chunks.h"

/* The audience: ids "u000000".."u<N-1>", ascending. */
static int aud_n;
static int max_limit;           /* the largest page asked for */
static int pages;

static hr_t fake_page(store_t *s, const char *key, const char *after, int limit, char ***ids,
                      int *n)
{
    (void)s;
    assert_string_equal(key, "actor");
    if (limit > max_limit) max_limit = limit;
    pages++;
    int from = 0;
    if (after) from = (int)strtol(after + 1, NULL, 10) + 1;
    int k = 0;
    char **v = xcalloc((size_t)limit + 1, sizeof(*v));
    for (int i = from; i < aud_n && k < limit; i++) v[k++] = xasprintf("u%06d", i);
    *ids = v;
    *n = k;
    return HR_OK;
}

typedef struct plan {
    int n;
    char after[64][16], until[64][16];
    uint32_t index[64];
} plan_t;

static hr_t emit(void *arg, uint32_t index, const char *after, const char *until)
{
    plan_t *p = arg;
    assert_true(p->n < 64);
    p->index[p->n] = index;
    snprintf(p->after[p->n], 16, "%s", after);
    snprintf(p->until[p->n], 16, "%s", until);
    p->n++;
    return HR_OK;
}

static void walk(int n, const char *after, int chunk, int page, plan_t *p)
{
    aud_n = n;
    max_limit = 0;
    pages = 0;
    memset(p, 0, sizeof(*p));
    uint32_t got = 99;
    assert_int_equal(chunk_plan_walk(fake_page, NULL, "actor", after, chunk, page, emit, p, &got),
                     HR_OK);
    assert_int_equal((int)got, p->n);
}

static void test_boundaries_are_every_chunk_size_ids(void **state)
{
    (void)state;
    plan_t p;
    walk(10007, NULL, 1000, 300, &p);
    assert_int_equal(p.n, 11);
    for (int i = 0; i < p.n; i++) {
        char want[16];
        assert_int_equal(p.index[i], (uint32_t)i);
        if (i == 0) assert_string_equal(p.after[i], "");
        else {
            snprintf(want, sizeof(want), "u%06d", i * 1000 - 1);
            assert_string_equal(p.after[i], want);
            assert_string_equal(p.until[i - 1], want); /* contiguous, no gap, no overlap */
        }
    }
    assert_string_equal(p.until[10], ""); /* the last is open-ended */
    /* bounded memory: never a page larger than page_size */
    assert_int_equal(max_limit, 300);

    /* deterministic: the same audience gives the same plan */
    plan_t q;
    walk(10007, NULL, 1000, 300, &q);
    assert_memory_equal(&p, &q, sizeof(p));
}

static void test_exact_multiple_leaves_last_open(void **state)
{
    (void)state;
    plan_t p;
    walk(10000, NULL, 1000, 1000, &p);
    assert_int_equal(p.n, 10);
    assert_string_equal(p.until[8], "u008999");
    assert_string_equal(p.after[9], "u008999");
    assert_string_equal(p.until[9], "");
}

static void test_after_and_small_chunks(void **state)
{
    (void)state;
    plan_t p;
    /* the first 2000 were fanned out directly; chunks of 250 read in pages of at most 1000 */
    walk(3000, "u001999", 250, 1000, &p);
    assert_int_equal(p.n, 4);
    assert_string_equal(p.after[0], "u001999");
    assert_string_equal(p.until[0], "u002249");
    assert_string_equal(p.until[2], "u002749");
    assert_string_equal(p.until[3], "");
    assert_true(max_limit <= 250);
    /* nothing after: no chunk */
    walk(3000, "u002999", 250, 1000, &p);
    assert_int_equal(p.n, 0);
    walk(0, NULL, 250, 1000, &p);
    assert_int_equal(p.n, 0);
    /* bad sizes */
    assert_int_equal(chunk_plan_walk(fake_page, NULL, "actor", NULL, 0, 10, emit, &p, NULL), HR_INVALID);
}

static void test_record_round_trip_and_garbage(void **state)
{
    (void)state;
    const char *ev = "{\"event_id\":\"e1\",\"type\":\"posted\"}";
    chunk_t c = {.kind = CHUNK_TOPIC, .flags = CHUNK_F_PULL, .index = 7, .event_id = "acme:e1",
                 .key = "acme:news", .after = "u1", .until = "", .traceparent = NULL,
                 .event = (char *)ev, .event_len = strlen(ev)};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(chunk_encode(&c, &b), HR_OK);
    chunk_t d;
    assert_int_equal(chunk_decode(b.data, b.len, &d), HR_OK);
    assert_int_equal(d.kind, CHUNK_TOPIC);
    assert_int_equal(d.flags, CHUNK_F_PULL);
    assert_int_equal(d.index, 7);
    assert_string_equal(d.event_id, "acme:e1");
    assert_string_equal(d.key, "acme:news");
    assert_string_equal(d.after, "u1");
    assert_string_equal(d.until, "");
    assert_string_equal(d.traceparent, "");
    assert_string_equal(d.event, ev);
    assert_int_equal(d.event_len, strlen(ev));
    char id[128];
    chunk_claim_id(&d, id, sizeof(id));
    assert_string_equal(id, "acme:e1#chunk-7");
    char *ids[] = {"u0", "u1", "u2"};
    assert_int_equal(chunk_in_range(&d, ids, 3), 3);
    free(d.until);
    d.until = xstrdup("u1");
    assert_int_equal(chunk_in_range(&d, ids, 3), 2);
    chunk_clear(&d);
    /* every truncation and a flipped byte are refused, never read past the end */
    for (size_t n = 0; n < b.len; n++) assert_int_equal(chunk_decode(b.data, n, &d), HR_INVALID);
    ((unsigned char *)b.data)[3] = 9;
    assert_int_equal(chunk_decode(b.data, b.len, &d), HR_INVALID);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundaries_are_every_chunk_size_ids),
        cmocka_unit_test(test_exact_multiple_leaves_last_open),
        cmocka_unit_test(test_after_and_small_chunks),
        cmocka_unit_test(test_record_round_trip_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
