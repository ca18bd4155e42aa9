/*
 * test_store_inbox.c - the in-app inbox table: put is idempotent and keeps
 * the state of an item already there, listings by filter newest first with
 * cursor paging, counts, marks (one and all; read implies seen, archive
 * implies both), delete, one user never sees another's items, erasure
 * removes them, retention purges them by age, and bad arguments are
 * HR_INVALID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store.h"
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(store_t *s, const char *user, const char *id, int64_t at, bool want_new)
{
    char title[64];
    snprintf(title, sizeof(title), "title %s", id);
    inbox_item_t it = {.user_id = (char *)user, .notification_id = (char *)id,
                       .event_id = "ev1", .category = "social", .title = title,
                       .body = "body", .created_at_ms = at};
    bool created = !want_new;
    assert_int_equal(store_inbox_put(s, &it, &created), HR_OK);
    assert_int_equal(created, want_new);
}

/* ids of a listing, comma-joined, into out */
static void list_ids(store_t *s, const char *user, inbox_filter_t f, const char *cursor, int limit,
                     char *out, size_t cap, char **next)
{
    inbox_item_t *v = NULL;
    int n = -1;
    char *nx = NULL;
    assert_int_equal(store_inbox_list(s, user, f, cursor, limit, &v, &n, &nx), HR_OK);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        assert_string_equal(v[i].user_id, user);
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "," : "", v[i].notification_id);
    }
    inbox_items_free(v, n);
    if (next) *next = nx;
    else free(nx);
}

static void counts(store_t *s, const char *user, int64_t unread, int64_t unseen)
{
    int64_t a = -1, b = -1;
    assert_int_equal(store_inbox_counts(s, user, &a, &b), HR_OK);
    assert_int_equal(a, unread);
    assert_int_equal(b, unseen);
}

static void test_inbox_put_list_fields(void **state)
{
    fx_t *f = *state;
    put(f->s, "u1", "n1", 1000, true);
    put(f->s, "u1", "n1", 5000, false); /* a redelivery: kept as it was */
    inbox_item_t *v = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_inbox_list(f->s, "u1", INBOX_ACTIVE, NULL, 10, &v, &n, &next), HR_OK);
    assert_int_equal(n, 1);
    assert_null(next);
    assert_string_equal(v[0].notification_id, "n1");
    assert_string_equal(v[0].event_id, "ev1");
    assert_string_equal(v[0].category, "social");
    assert_string_equal(v[0].title, "title n1");
    assert_string_equal(v[0].body, "body");
    assert_int_equal(v[0].created_at_ms, 1000);
    assert_int_equal(v[0].seen_at_ms, 0);
    assert_int_equal(v[0].read_at_ms, 0);
    assert_int_equal(v[0].archived_at_ms, 0);
    inbox_items_free(v, n);
    /* the item survives a reopen */
    fx_reopen(f);
    counts(f->s, "u1", 1, 1);
}

static void test_inbox_paging_newest_first(void **state)
{
    fx_t *f = *state;
    char ids[256], *next = NULL;
    /* n3 and n4 share a time: ordered by id, descending */
    put(f->s, "u1", "n1", 1000, true);
    put(f->s, "u1", "n2", 2000, true);
    put(f->s, "u1", "n3", 3000, true);
    put(f->s, "u1", "n4", 3000, true);
    put(f->s, "u1", "n5", 4000, true);
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 2, ids, sizeof(ids), &next);
    assert_string_equal(ids, "n5,n4");
    assert_non_null(next);
    char *c2 = next;
    list_ids(f->s, "u1", INBOX_ACTIVE, c2, 2, ids, sizeof(ids), &next);
    assert_string_equal(ids, "n3,n2");
    free(c2);
    assert_non_null(next);
    char *c3 = next;
    list_ids(f->s, "u1", INBOX_ACTIVE, c3, 2, ids, sizeof(ids), &next);
    assert_string_equal(ids, "n1");
    assert_null(next);
    free(c3);
    /* exactly a full last page: no cursor */
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 5, ids, sizeof(ids), &next);
    assert_string_equal(ids, "n5,n4,n3,n2,n1");
    assert_null(next);
}

static void test_inbox_marks_filters_counts(void **state)
{
    fx_t *f = *state;
    char ids[256];
    for (int i = 1; i <= 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "n%d", i);
        put(f->s, "u1", id, 1000 * i, true);
    }
    counts(f->s, "u1", 4, 4);
    assert_int_equal(store_inbox_mark(f->s, "u1", "n1", INBOX_MARK_SEEN, 50), HR_OK);
    assert_int_equal(store_inbox_mark(f->s, "u1", "n2", INBOX_MARK_READ, 60), HR_OK);
    assert_int_equal(store_inbox_mark(f->s, "u1", "n3", INBOX_MARK_ARCHIVED, 70), HR_OK);
    /* unread: n1, n4; unseen: n4 (n2 was read, so seen; n3 archived
     * counts in neither) */
    counts(f->s, "u1", 2, 1);
    list_ids(f->s, "u1", INBOX_UNREAD, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n4,n1");
    list_ids(f->s, "u1", INBOX_READ, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n2");
    list_ids(f->s, "u1", INBOX_SEEN, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n2,n1");
    list_ids(f->s, "u1", INBOX_ARCHIVED, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n3");
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n4,n2,n1");

    /* a state keeps its first time; marking again still finds the item */
    assert_int_equal(store_inbox_mark(f->s, "u1", "n2", INBOX_MARK_READ, 999), HR_OK);
    inbox_item_t *v = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_inbox_list(f->s, "u1", INBOX_READ, NULL, 10, &v, &n, &next), HR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].read_at_ms, 60);
    assert_int_equal(v[0].seen_at_ms, 60);
    inbox_items_free(v, n);

    assert_int_equal(store_inbox_mark(f->s, "u1", "nope", INBOX_MARK_READ, 1), HR_NOTFOUND);
    assert_int_equal(store_inbox_mark(f->s, "u2", "n1", INBOX_MARK_READ, 1), HR_NOTFOUND);

    /* mark-all counts only the items that changed */
    int64_t changed = -1;
    assert_int_equal(store_inbox_mark_all(f->s, "u1", INBOX_MARK_SEEN, 80, &changed), HR_OK);
    assert_int_equal(changed, 1); /* n4; n1, n2 seen already, n3 archived and seen */
    counts(f->s, "u1", 2, 0);
    assert_int_equal(store_inbox_mark_all(f->s, "u1", INBOX_MARK_READ, 90, &changed), HR_OK);
    assert_int_equal(changed, 2); /* n1, n4 */
    counts(f->s, "u1", 0, 0);
    assert_int_equal(store_inbox_mark_all(f->s, "u1", INBOX_MARK_READ, 95, &changed), HR_OK);
    assert_int_equal(changed, 0);
}

static void test_inbox_delete_users_apart_erase(void **state)
{
    fx_t *f = *state;
    char ids[256];
    put(f->s, "u1", "n1", 1000, true);
    put(f->s, "u1", "n2", 2000, true);
    put(f->s, "u2", "n1", 1500, true); /* same notification id, another user */
    list_ids(f->s, "u2", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n1");
    assert_int_equal(store_inbox_mark_all(f->s, "u2", INBOX_MARK_READ, 5, NULL), HR_OK);
    counts(f->s, "u1", 2, 2);
    counts(f->s, "u2", 0, 0);

    assert_int_equal(store_inbox_del(f->s, "u1", "n1"), HR_OK);
    assert_int_equal(store_inbox_del(f->s, "u1", "n1"), HR_NOTFOUND);
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n2");
    list_ids(f->s, "u2", INBOX_READ, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n1");

    /* erasure takes the user's inbox with it, and only theirs */
    store_erase_t st;
    assert_int_equal(store_user_erase(f->s, "u1", &st), HR_OK);
    assert_true(st.rows >= 1);
    counts(f->s, "u1", 0, 0);
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "");
    list_ids(f->s, "u2", INBOX_READ, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "n1");
}

static void test_inbox_purge_by_age(void **state)
{
    fx_t *f = *state;
    char ids[256];
    put(f->s, "u1", "old1", 1000, true);
    put(f->s, "u2", "old2", 1999, true);
    put(f->s, "u1", "new1", 2000, true);
    int64_t deleted = -1;
    assert_int_equal(store_notif_purge(f->s, 2000, &deleted), HR_OK);
    assert_int_equal(deleted, 0); /* no notification rows; items are not counted there */
    list_ids(f->s, "u1", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "new1");
    list_ids(f->s, "u2", INBOX_ACTIVE, NULL, 10, ids, sizeof(ids), NULL);
    assert_string_equal(ids, "");
    counts(f->s, "u1", 1, 1);
}

static void test_inbox_invalid(void **state)
{
    fx_t *f = *state;
    inbox_item_t it = {.user_id = "u1", .notification_id = "", .created_at_ms = 1};
    assert_int_equal(store_inbox_put(f->s, &it, NULL), HR_INVALID);
    it.notification_id = "n1";
    it.created_at_ms = 0;
    assert_int_equal(store_inbox_put(f->s, &it, NULL), HR_INVALID);
    it.created_at_ms = 1;
    it.user_id = NULL;
    assert_int_equal(store_inbox_put(f->s, &it, NULL), HR_INVALID);

    inbox_item_t *v = (inbox_item_t *)1;
    int n = -1;
    char *next = (char *)1;
    assert_int_equal(store_inbox_list(f->s, "u1", INBOX_ACTIVE, "garbage", 10, &v, &n, &next),
                     HR_INVALID);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_null(next);
    assert_int_equal(store_inbox_list(f->s, "u1", INBOX_FILTER__COUNT, NULL, 10, &v, &n, &next),
                     HR_INVALID);
    assert_int_equal(store_inbox_list(f->s, "u1", INBOX_ACTIVE, NULL, 0, &v, &n, &next),
                     HR_INVALID);
    assert_int_equal(store_inbox_list(f->s, "", INBOX_ACTIVE, NULL, 10, &v, &n, &next), HR_INVALID);
    assert_int_equal(store_inbox_mark(f->s, "u1", "n1", (inbox_mark_t)7, 1), HR_INVALID);
    assert_int_equal(store_inbox_mark(f->s, "u1", "n1", INBOX_MARK_READ, 0), HR_INVALID);
    assert_int_equal(store_inbox_mark_all(f->s, "", INBOX_MARK_READ, 1, NULL), HR_INVALID);
    assert_int_equal(store_inbox_del(f->s, "u1", ""), HR_INVALID);
    int64_t a = -1, b = -1;
    assert_int_equal(store_inbox_counts(f->s, "", &a, &b), HR_INVALID);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_inbox_put_list_fields),
        T(test_inbox_paging_newest_first),
        T(test_inbox_marks_filters_counts),
        T(test_inbox_delete_users_apart_erase),
        T(test_inbox_purge_by_age),
        T(test_inbox_invalid),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
