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
#include <stdlib.h>
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

/* ---- the table: 4-byte entries (a tag of the hash's top bits, the ring index) ---- */

/* A key whose hash (sent_key_hash) is h: distinct j give distinct keys
 * with the same hash, so the same home slot and the same tag. */
static sent_key_t key_with_hash(uint64_t h, uint64_t j)
{
    return (sent_key_t){.hi = j, .lo = h ^ (j * 0x9E3779B97F4A7C15ull)};
}

/* A plain FIFO of up to max keys: what the set must answer. */
typedef struct model {
    sent_key_t *k;
    size_t n, max;
} model_t;

static bool model_has(const model_t *m, const sent_key_t *k)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->k[i].hi == k->hi && m->k[i].lo == k->lo) return true;
    return false;
}

static void model_add(model_t *m, const sent_key_t *k)
{
    if (m->max == 0 || model_has(m, k)) return;
    if (m->n == m->max) {
        memmove(m->k, m->k + 1, (m->n - 1) * sizeof(*m->k));
        m->n--;
    }
    m->k[m->n++] = *k;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Keys that share a hash (home and tag: only the ring tells them apart),
 * homes at the table's end (runs that wrap around), repeats and random
 * keys, through growth, FIFO eviction (backward shifts over mixed runs)
 * and clears, for bounds around the index widths: the set answers as the
 * FIFO model does, every step. */
static void test_against_model(void **st)
{
    (void)st;
    static const size_t maxes[] = {1, 2, 3, 7, 8, 9, 100, 1023, 1024, 1025, 2100};
    for (size_t mi = 0; mi < sizeof(maxes) / sizeof(maxes[0]); mi++) {
        size_t max = maxes[mi];
        sent_ids_t s;
        sent_ids_init(&s, max);
        model_t m = {.k = calloc(max, sizeof(sent_key_t)), .max = max};
        uint64_t x = 0x12345678u + max, shared[4] = {5, ~UINT64_C(0), 0x8000000000000000ull | 1023, 0};
        sent_key_t recent[64];
        size_t nrecent = 0;
        for (int step = 0; step < 12000; step++) {
            uint64_t r = rnd(&x);
            sent_key_t k;
            switch (r % 4) {
            case 0: /* one of four shared hashes (the second has the top tag and the last home) */
                k = key_with_hash(shared[(r >> 8) % 4], (r >> 16) % 50);
                break;
            case 1: /* again, an id seen lately */
                k = nrecent ? recent[(r >> 8) % nrecent] : key_with_hash(rnd(&x), 1);
                break;
            default:
                k = (sent_key_t){.hi = rnd(&x), .lo = rnd(&x)};
            }
            if (r % 7 == 0) {
                assert_int_equal(sent_ids_has_key(&s, &k), model_has(&m, &k));
                continue;
            }
            assert_true(sent_ids_add_key(&s, &k));
            model_add(&m, &k);
            recent[nrecent < 64 ? nrecent++ : (r >> 24) % 64] = k;
            assert_int_equal(sent_ids_count(&s), m.n);
            /* everything the model holds is found; a few others are not */
            if (step % 97 == 0 || max <= 9)
                for (size_t i = 0; i < m.n; i++) assert_true(sent_ids_has_key(&s, &m.k[i]));
            for (size_t i = 0; i < nrecent; i += 5)
                assert_int_equal(sent_ids_has_key(&s, &recent[i]), model_has(&m, &recent[i]));
            if (step % 5003 == 5002) {
                sent_ids_clear(&s);
                m.n = 0;
            }
        }
        for (size_t i = 0; i < m.n; i++) assert_true(sent_ids_has_key(&s, &m.k[i]));
        assert_true(s.tmask + 1 >= 2 * s.cap);
        assert_true((((size_t)1 << s.ibits) - 1) >= max); /* every ring index + 1 fits */
        free(m.k);
        sent_ids_release(&s);
    }
}

/* The batch calls (sent_ids_has_keys, _add_keys) answer and keep what the
 * FIFO model does: batches of 0 to 70 keys (more than a group, with
 * duplicates inside a batch, keys that share a hash, ids seen lately),
 * through growth and eviction (evicting adds prefetch the oldest ids'
 * slots), for small and odd bounds. */
static void test_batches_against_model(void **st)
{
    (void)st;
    static const size_t maxes[] = {1, 3, 16, 17, 100, 1025, 3000};
    for (size_t mi = 0; mi < sizeof(maxes) / sizeof(maxes[0]); mi++) {
        size_t max = maxes[mi];
        sent_ids_t s;
        sent_ids_init(&s, max);
        model_t m = {.k = calloc(max, sizeof(sent_key_t)), .max = max};
        uint64_t x = 0xabcdefu + max;
        sent_key_t batch[70], recent[64];
        bool found[70];
        size_t nrecent = 0;
        for (int round = 0; round < 600; round++) {
            size_t n = (size_t)(rnd(&x) % 71);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rnd(&x);
                switch (r % 5) {
                case 0: batch[i] = key_with_hash(0x77, (r >> 8) % 20); break;
                case 1: batch[i] = nrecent ? recent[(r >> 8) % nrecent] : key_with_hash(r, 2); break;
                case 2: batch[i] = i ? batch[(r >> 8) % i] : key_with_hash(r, 3); break; /* twice in a batch */
                default: batch[i] = (sent_key_t){.hi = rnd(&x), .lo = rnd(&x)};
                }
            }
            sent_ids_has_keys(&s, batch, n, found);
            for (size_t i = 0; i < n; i++) assert_int_equal(found[i], model_has(&m, &batch[i]));
            if (round % 3 == 0) continue; /* looked up only */
            sent_ids_add_keys(&s, batch, n);
            for (size_t i = 0; i < n; i++) {
                model_add(&m, &batch[i]);
                recent[nrecent < 64 ? nrecent++ : rnd(&x) % 64] = batch[i];
            }
            assert_int_equal(sent_ids_count(&s), m.n);
            for (size_t i = 0; i < m.n; i++) assert_true(sent_ids_has_key(&s, &m.k[i]));
            for (size_t i = 0; i < nrecent; i++)
                assert_int_equal(sent_ids_has_key(&s, &recent[i]), model_has(&m, &recent[i]));
        }
        free(m.k);
        sent_ids_release(&s);
    }
    /* max 0 keeps nothing, and an empty set finds nothing */
    sent_ids_t z;
    sent_ids_init(&z, 0);
    sent_key_t k = {1, 2};
    bool f = true;
    sent_ids_add_keys(&z, &k, 1);
    sent_ids_has_keys(&z, &k, 1, &f);
    assert_false(f);
    assert_int_equal(sent_ids_count(&z), 0);
    sent_ids_release(&z);
}

/* The table takes 4 bytes a slot, at most half full, and the ring 8 bytes
 * an id: with the default bound, 16 bytes an id (it was 24 with the whole
 * 16-byte key in the ring), the 2 MiB ring and the 2 MiB table in one huge
 * page each. */
static void test_bytes_per_id(void **st)
{
    (void)st;
    enum { MAX = 262144 };
    sent_ids_t s;
    sent_ids_init(&s, MAX);
    uint64_t x = 99;
    for (int i = 0; i < MAX + 1000; i++) {
        sent_key_t k = {.hi = rnd(&x), .lo = rnd(&x)};
        assert_true(sent_ids_add_key(&s, &k));
    }
    assert_int_equal(sent_ids_count(&s), MAX);
    assert_int_equal(s.cap, MAX);
    size_t bytes = s.cap * sizeof(*s.ring) + (s.tmask + 1) * sizeof(*s.tab);
    assert_int_equal(bytes / MAX, 16);
    /* the 2 MiB ring and 2 MiB table are mapped (huge pages), exactly */
    assert_int_equal(s.ring_map, (size_t)MAX * sizeof(*s.ring));
    assert_int_equal(s.tab_map, (s.tmask + 1) * sizeof(*s.tab));
    /* the newest MAX ids survived the growths from calloc'd to mapped arrays */
    x = 99;
    for (int i = 0; i < MAX + 1000; i++) {
        sent_key_t k = {.hi = rnd(&x), .lo = rnd(&x)};
        assert_int_equal(sent_ids_has_key(&s, &k), i >= 1000);
    }
    sent_ids_release(&s);
}

/* Keys the ring cannot tell apart are still told apart: ids that differ
 * in one half only never share a ring key (sent_key_hash), and two keys
 * made to share it (differing in both halves) differ in the table entry's
 * tag, which comes from another mix of the whole key; both stay exact
 * through the growths, evictions and the shifts of deletions. */
static void test_ring_key_collisions(void **st)
{
    (void)st;
    enum { MAX = 4096, N = 3000 };
    sent_ids_t s;
    sent_ids_init(&s, MAX);
    uint64_t x = 7;
    sent_key_t a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (sent_key_t){.hi = rnd(&x), .lo = rnd(&x)};
        /* the same ring key: lo ^ hi * C equal, hi different */
        uint64_t hi = a[i].hi + 1 + (uint64_t)i;
        b[i] = (sent_key_t){.hi = hi, .lo = a[i].lo ^ a[i].hi * 0x9E3779B97F4A7C15ull ^ hi * 0x9E3779B97F4A7C15ull};
        assert_int_equal(sent_key_hash(&a[i]), sent_key_hash(&b[i]));
    }
    int told = 0;
    for (int i = 0; i < N; i++) {
        assert_true(sent_ids_add_key(&s, &a[i]));
        told += !sent_ids_has_key(&s, &b[i]);
        sent_key_t h = {.hi = a[i].hi ^ 1, .lo = a[i].lo}, l = {.hi = a[i].hi, .lo = a[i].lo ^ 1};
        assert_false(sent_ids_has_key(&s, &h)); /* one half differs: never the same */
        assert_false(sent_ids_has_key(&s, &l));
    }
    /* the tag has 32 - 13 - 4 = 15 bits here: a shared tag is 1 in 32768 */
    assert_true(told >= N - 2);
    for (int i = 0; i < N; i++) assert_true(sent_ids_has_key(&s, &a[i]));
    /* past the bound: the oldest go, the newest stay, with their tags */
    for (int i = 0; i < N; i++) assert_true(sent_ids_add_key(&s, &b[i]));
    for (int i = 0; i < N; i++) {
        assert_true(sent_ids_has_key(&s, &b[i]));
        assert_int_equal(sent_ids_has_key(&s, &a[i]), i >= 2 * N - MAX);
    }
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
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_batches_against_model),
        cmocka_unit_test(test_bytes_per_id),
        cmocka_unit_test(test_ring_key_collisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
