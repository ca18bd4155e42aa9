/*
 * test_store_digest.c - the digest state machine of the store (store.h
 * "digests"), with the clock passed in: a window opens with its first
 * member and its flush token, members join while the window lasts and
 * count once, the flush closes it, later members open the next one, a
 * member after the window's end closes the old one itself; erasure and
 * reopening. Backends without digests (HR_DECLINED) skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model/digest.h"
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 600000 /* 10 minutes */
#define T0 1764500000000LL

typedef struct member {
    char id[33];
    char meta[512];
    buf_t rec;
} member_t;

/* A member notification of kim on e-mail for post `post` by `actor`. */
static void member_make(member_t *m, int k, const char *post, const char *actor)
{
    char ev[32];
    snprintf(ev, sizeof(ev), "like-%d", k);
    notif_make_id(0, HSTR(ev), HSTR("kim"), CH_EMAIL, m->id);
    char dkey[64];
    snprintf(dkey, sizeof(dkey), "liked\x1f%s", post);
    digest_meta_t dm = {.kind = DIGEST_MEMBER, .window_ms = W, .dkey = dkey, .actor = (char *)actor,
                        .title = {.n = 1, .v = {{0, strlen(actor), TMPL_DV_FIRST}}}};
    buf_t meta;
    buf_init(&meta, 0);
    assert_int_equal(digest_meta_write(&dm, &meta), HR_OK);
    snprintf(m->meta, sizeof(m->meta), "%.*s", (int)meta.len, meta.data);
    buf_release(&meta);
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_EMAIL, .status = ST_PENDING, .attempt = 1,
                 .notification_id = HSTR(m->id), .event_id = HSTR(ev), .user_id = HSTR("kim"),
                 .title = HSTR(actor), .body = HSTR("liked"), .address = HSTR("kim@example.com"),
                 .metadata = HSTR(m->meta), .quiet_start_min = NOTIF_QUIET_NONE,
                 .quiet_end_min = NOTIF_QUIET_NONE};
    buf_init(&m->rec, 0);
    assert_int_equal(notif_encode(&n, &m->rec), HR_OK);
}

static digest_add_t add_of(const member_t *m, const char *post, const char *actor, char *dkey_buf)
{
    sprintf(dkey_buf, "liked\x1f%s", post);
    return (digest_add_t){.user_id = HSTR("kim"), .channel = CH_EMAIL, .dkey = HSTR(dkey_buf),
                          .window_ms = W, .notification_id = HSTR(m->id), .actor = HSTR(actor),
                          .rec = m->rec.data, .rec_len = m->rec.len};
}

static bool supported(fx_t *f)
{
    if (store_digest_add_batch(f->s, 0, NULL, 0) == HR_DECLINED) {
        print_message("store backend %s keeps no digests: skipped\n", f->backend);
        return false;
    }
    return true;
}

static void test_window(void **state)
{
    fx_t *f = *state;
    if (!supported(f)) return;
    member_t m[6];
    char k[6][64];
    const char *actors[] = {"Kylie", "Ben", "Cat", "Dan", "Eve", "Fay"};
    for (int i = 0; i < 6; i++) member_make(&m[i], i, "p1", actors[i]);

    /* the first member opens the digest and keeps its flush token */
    digest_add_t v[3] = {add_of(&m[0], "p1", "Kylie", k[0]), add_of(&m[1], "p1", "Ben", k[1]),
                         add_of(&m[0], "p1", "Kylie", k[2])}; /* m0 twice in one batch */
    assert_int_equal(store_digest_add_batch(f->s, T0, v, 3), HR_OK);
    char id[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR(k[0]), T0, id);
    assert_string_equal(v[0].digest_id, id);
    assert_true(v[0].added && v[0].opened);
    assert_string_equal(v[1].digest_id, id);
    assert_true(v[1].added && !v[1].opened);
    assert_string_equal(v[2].digest_id, id);
    assert_false(v[2].added); /* counted once */
    int64_t due = 0;
    assert_int_equal(store_sched_next(f->s, &due), HR_OK);
    assert_int_equal(due, T0 + W);
    sched_row_t *rows = NULL;
    int n = 0;
    assert_int_equal(store_sched_due(f->s, T0 + W - 1, 10, &rows, &n), HR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_sched_due(f->s, T0 + W, 10, &rows, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].notification_id, id);
    notif_t tok;
    assert_int_equal(notif_decode(rows[0].rec, rows[0].rec_len, &tok), HR_OK);
    digest_meta_t dm;
    assert_int_equal(digest_meta_read(tok.metadata, &dm), HR_OK);
    assert_int_equal(dm.kind, DIGEST_FLUSH);
    assert_int_equal(tok.due_at_ms, T0 + W);
    digest_meta_clear(&dm);
    store_sched_rows_free(rows, n);

    /* a member offered again later (a replay) changes nothing */
    digest_add_t again = add_of(&m[1], "p1", "Ben", k[3]);
    assert_int_equal(store_digest_add_batch(f->s, T0 + 1000, &again, 1), HR_OK);
    assert_false(again.added);
    assert_string_equal(again.digest_id, id);
    /* another post is another digest */
    member_t other;
    member_make(&other, 100, "p2", "Zoe");
    char ko[64];
    digest_add_t vo = add_of(&other, "p2", "Zoe", ko);
    assert_int_equal(store_digest_add_batch(f->s, T0 + 2000, &vo, 1), HR_OK);
    assert_true(vo.opened);
    assert_string_not_equal(vo.digest_id, id);
    /* a third like inside the window */
    digest_add_t v2 = add_of(&m[2], "p1", "Cat", k[4]);
    assert_int_equal(store_digest_add_batch(f->s, T0 + W - 1, &v2, 1), HR_OK);
    assert_true(v2.added && !v2.opened);

    /* the flush closes it: 3 members, first Kylie, last Cat */
    digest_info_t di;
    assert_int_equal(store_digest_close(f->s, id, &di), HR_OK);
    assert_int_equal(di.count, 3);
    assert_string_equal(di.first_actor, "Kylie");
    assert_string_equal(di.last_actor, "Cat");
    assert_int_equal(di.opened_at_ms, T0);
    assert_int_equal(di.due_at_ms, T0 + W);
    digest_info_clear(&di);
    /* a flush repeated after a crash reads the same */
    fx_reopen(f);
    assert_int_equal(store_digest_close(f->s, id, &di), HR_OK);
    assert_int_equal(di.count, 3);
    assert_string_equal(di.last_actor, "Cat");
    digest_info_clear(&di);

    /* after it, a like opens the next digest */
    digest_add_t v3 = add_of(&m[3], "p1", "Dan", k[5]);
    assert_int_equal(store_digest_add_batch(f->s, T0 + W + 5, &v3, 1), HR_OK);
    assert_true(v3.added && v3.opened);
    char id2[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR(k[5]), T0 + W + 5, id2);
    assert_string_equal(v3.digest_id, id2);
    /* the closed digest kept its count */
    assert_int_equal(store_digest_close(f->s, id, &di), HR_OK);
    assert_int_equal(di.count, 3);
    digest_info_clear(&di);

    /* a member after the window's end whose flush has not come yet closes
     * the old digest (its token delivers it) and opens a new one */
    char k6[64], k7[64];
    digest_add_t v4 = add_of(&m[4], "p1", "Eve", k6);
    assert_int_equal(store_digest_add_batch(f->s, T0 + W + 5 + W, &v4, 1), HR_OK);
    assert_true(v4.opened);
    assert_string_not_equal(v4.digest_id, id2);
    digest_add_t v5 = add_of(&m[5], "p1", "Fay", k7);
    assert_int_equal(store_digest_add_batch(f->s, T0 + W + 5 + W + 1, &v5, 1), HR_OK);
    assert_string_equal(v5.digest_id, v4.digest_id);
    assert_int_equal(store_digest_close(f->s, id2, &di), HR_OK);
    assert_int_equal(di.count, 1);
    assert_string_equal(di.first_actor, "Dan");
    assert_string_equal(di.last_actor, "Dan");
    digest_info_clear(&di);
    assert_int_equal(store_digest_close(f->s, v4.digest_id, &di), HR_OK);
    assert_int_equal(di.count, 2);
    assert_string_equal(di.first_actor, "Eve");
    assert_string_equal(di.last_actor, "Fay");
    digest_info_clear(&di);

    /* unknown, and invalid arguments */
    assert_int_equal(store_digest_close(f->s, "00000000000000000000000000000000", &di), HR_NOTFOUND);
    assert_int_equal(store_digest_close(f->s, "", &di), HR_INVALID);
    digest_add_t bad = add_of(&m[5], "p1", "Fay", k7);
    bad.window_ms = 0;
    assert_int_equal(store_digest_add_batch(f->s, T0, &bad, 1), HR_INVALID);
    bad = add_of(&m[5], "p1", "Fay", k7);
    bad.rec = "junk";
    bad.rec_len = 4;
    bad.notification_id = HSTR("fresh-member");
    assert_int_equal(store_digest_add_batch(f->s, T0 + 10 * W, &bad, 1), HR_INVALID);

    for (int i = 0; i < 6; i++) buf_release(&m[i].rec);
    buf_release(&other.rec);
}

/* Erasing the user removes its digests, members and flush tokens. */
static void test_erase(void **state)
{
    fx_t *f = *state;
    if (!supported(f)) return;
    user_t u = {.user_id = "kim", .email = "kim@example.com"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    member_t m;
    member_make(&m, 1, "p1", "Kylie");
    char k[64];
    digest_add_t v = add_of(&m, "p1", "Kylie", k);
    assert_int_equal(store_digest_add_batch(f->s, T0, &v, 1), HR_OK);
    assert_int_equal(store_user_erase(f->s, "kim", NULL), HR_OK);
    digest_info_t di;
    assert_int_equal(store_digest_close(f->s, v.digest_id, &di), HR_NOTFOUND);
    int64_t due = 0;
    assert_int_equal(store_sched_next(f->s, &due), HR_OK);
    assert_true(due == INT64_MAX); /* the token went with the user */
    /* the member is forgotten too: it counts again in a new digest */
    assert_int_equal(store_digest_add_batch(f->s, T0 + 1, &v, 1), HR_OK);
    assert_true(v.added && v.opened);
    buf_release(&m.rec);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_window),
        T(test_erase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
