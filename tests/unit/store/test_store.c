/*
 * test_store.c - the store contract (store.h), run against one backend.
 *
 * Choosing the backend: HERALD_TEST_STORE=<backend> (default "sqlite").
 * SQLite gets a fresh database file in a temporary directory per test;
 * other backends take their DSN from HERALD_TEST_STORE_DSN, which must name
 * an empty database (store_fixture.c). For example:
 *
 *   HERALD_TEST_STORE=postgres HERALD_TEST_STORE_DSN=postgresql:///herald_test \
 *       build/test_store
 *
 * Backend-specific tests live beside this file (test_store_sqlite.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model/lifecycle.h"
#include "store/store.h"
#ifdef HERALD_HAVE_PG
#include "store/store_pg.h"
#endif
#include "store_fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void collect_ids(void *arg, const char *id)
{
    char *seen = arg;
    size_t n = strlen(seen);
    snprintf(seen + n, 64 - n, "%s ", id);
}

static void collect_none(void *arg, const char *id)
{
    (void)arg;
    (void)id;
}

/* ---- registry, schema ---- */

static void test_open_unknown_backend(void **state)
{
    (void)state;
    store_t *s = (store_t *)1;
    assert_int_equal(store_open("no-such-backend", "x", &s), HR_INVALID);
    assert_null(s);
}

static void test_schema_version(void **state)
{
    fx_t *f = *state;
    /* PostgreSQL has its own schema track (src/store/schema/pg/) */
#ifdef HERALD_HAVE_PG
    int want = strcmp(f->backend, "postgres") == 0 ? store_pg_schema_version() : STORE_SCHEMA_VERSION;
#else
    int want = STORE_SCHEMA_VERSION;
#endif
    assert_int_equal(store_schema_version(f->s), want);
    fx_reopen(f);
    assert_int_equal(store_schema_version(f->s), want);
}

/* ---- users ---- */

static void test_user_put_get_replace(void **state)
{
    fx_t *f = *state;
    user_t u = {
        .user_id = "u1",
        .email = "u1@example.com",
        .phone = "+15550001",
        .locale = "pt-BR",
        .timezone = "America/Sao_Paulo",
        .quiet_start = "22:00",
        .quiet_end = "07:00",
        .webhook_url = "https://example.com/hook",
        .ndevices = 2,
        .devices = {{"apns", "tok-a"}, {"fcm", "tok-b"}},
        .updated_at_ms = 1700000000000,
    };
    assert_int_equal(store_user_put(f->s, &u), HR_OK);

    user_t g;
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_OK);
    assert_string_equal(g.user_id, "u1");
    assert_string_equal(g.email, "u1@example.com");
    assert_string_equal(g.phone, "+15550001");
    assert_string_equal(g.locale, "pt-BR");
    assert_string_equal(g.timezone, "America/Sao_Paulo");
    assert_string_equal(g.quiet_start, "22:00");
    assert_string_equal(g.quiet_end, "07:00");
    assert_string_equal(g.webhook_url, "https://example.com/hook");
    assert_int_equal(g.updated_at_ms, 1700000000000);
    assert_int_equal(g.ndevices, 2);
    assert_string_equal(g.devices[0].platform, "apns");
    assert_string_equal(g.devices[0].token, "tok-a");
    assert_string_equal(g.devices[1].platform, "fcm");
    assert_string_equal(g.devices[1].token, "tok-b");
    user_clear(&g);

    /* replace: fewer fields, one device; defaults for locale / timezone */
    user_t u2 = {.user_id = "u1", .phone = "+15550002", .ndevices = 1,
                 .devices = {{"fcm", "tok-c"}}};
    assert_int_equal(store_user_put(f->s, &u2), HR_OK);
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_OK);
    assert_null(g.email);
    assert_null(g.webhook_url);
    assert_null(g.quiet_start);
    assert_string_equal(g.phone, "+15550002");
    assert_string_equal(g.locale, "en");
    assert_string_equal(g.timezone, "UTC");
    assert_true(g.updated_at_ms > 0);
    assert_int_equal(g.ndevices, 1);
    assert_string_equal(g.devices[0].token, "tok-c");
    user_clear(&g);

    /* devices removed as a whole */
    u2.ndevices = 0;
    assert_int_equal(store_user_put(f->s, &u2), HR_OK);
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_OK);
    assert_int_equal(g.ndevices, 0);
    user_clear(&g);

    assert_int_equal(store_user_get(f->s, "nobody", &g), HR_NOTFOUND);
    assert_null(g.user_id);
    user_clear(&g);
}

static void test_user_invalid(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "u1", .ndevices = STORE_MAX_DEVICES + 1};
    assert_int_equal(store_user_put(f->s, &u), HR_INVALID);
    u.ndevices = 1; /* device without a token */
    u.devices[0].platform = "apns";
    assert_int_equal(store_user_put(f->s, &u), HR_INVALID);
    user_t v = {.user_id = ""};
    assert_int_equal(store_user_put(f->s, &v), HR_INVALID);
    user_t g;
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_NOTFOUND);
}

/* ---- preferences ---- */

static void test_prefs_replace_get(void **state)
{
    fx_t *f = *state;
    pref_t in[] = {
        {"", CH_SMS, false},
        {"social", CH_PUSH, true},
        {"social", CH_EMAIL, false},
    };
    assert_int_equal(store_prefs_replace(f->s, "u1", in, 3), HR_OK);
    pref_t *p = NULL;
    int n = 0;
    assert_int_equal(store_prefs_get(f->s, "u1", &p, &n), HR_OK);
    assert_int_equal(n, 3);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(p[i].category, "") == 0 && p[i].channel == CH_SMS && !p[i].enabled) seen |= 1;
        if (strcmp(p[i].category, "social") == 0 && p[i].channel == CH_PUSH && p[i].enabled)
            seen |= 2;
        if (strcmp(p[i].category, "social") == 0 && p[i].channel == CH_EMAIL && !p[i].enabled)
            seen |= 4;
    }
    assert_int_equal(seen, 7);
    prefs_free(p, n);

    /* replace drops what is not repeated */
    pref_t in2[] = {{"promo", CH_EMAIL, false}};
    assert_int_equal(store_prefs_replace(f->s, "u1", in2, 1), HR_OK);
    assert_int_equal(store_prefs_get(f->s, "u1", &p, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].category, "promo");
    assert_int_equal(p[0].channel, CH_EMAIL);
    assert_false(p[0].enabled);
    prefs_free(p, n);

    assert_int_equal(store_prefs_replace(f->s, "u1", NULL, 0), HR_OK);
    assert_int_equal(store_prefs_get(f->s, "u1", &p, &n), HR_OK);
    assert_int_equal(n, 0);
    prefs_free(p, n);

    /* other users untouched; unknown users have none */
    assert_int_equal(store_prefs_replace(f->s, "u2", in, 3), HR_OK);
    assert_int_equal(store_prefs_get(f->s, "u3", &p, &n), HR_OK);
    assert_int_equal(n, 0);
    prefs_free(p, n);

    pref_t bad[] = {{"", CH__COUNT, true}};
    assert_int_equal(store_prefs_replace(f->s, "u2", bad, 1), HR_INVALID);
    assert_int_equal(store_prefs_get(f->s, "u2", &p, &n), HR_OK);
    assert_int_equal(n, 3);
    prefs_free(p, n);
}

/* ---- subscriptions and follows ---- */

/* Walks every page of size `limit`; returns the total, checking the ids are
 * strictly increasing across pages. */
typedef hr_t (*page_fn)(store_t *, const char *, const char *, int, char ***, int *);

static int walk_pages(store_t *s, page_fn fn, const char *key, int limit, int *pages)
{
    char *after = NULL;
    int total = 0;
    *pages = 0;
    for (;;) {
        char **ids = NULL;
        int n = -1;
        assert_int_equal(fn(s, key, after, limit, &ids, &n), HR_OK);
        assert_true(n >= 0 && n <= limit);
        for (int i = 0; i < n; i++) {
            if (i > 0) assert_true(strcmp(ids[i - 1], ids[i]) < 0);
            if (i == 0 && after) assert_true(strcmp(after, ids[0]) < 0);
        }
        total += n;
        (*pages)++;
        free(after);
        after = n ? xstrdup(ids[n - 1]) : NULL;
        ids_free(ids, n);
        if (n < limit) break;
    }
    free(after);
    return total;
}

static void test_subscriptions(void **state)
{
    fx_t *f = *state;
    char id[32];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "user-%03d", (i * 7) % 25); /* out of order */
        assert_int_equal(store_sub_add(f->s, "product:iphone15", id, NULL), HR_OK);
    }
    assert_int_equal(store_sub_add(f->s, "product:iphone15", "user-003", NULL), HR_OK); /* dup */
    assert_int_equal(store_sub_add(f->s, "product:other", "user-900", NULL), HR_OK);
    assert_int_equal(store_sub_add(f->s, "", "user-1", NULL), HR_INVALID);

    int pages = 0;
    assert_int_equal(walk_pages(f->s, store_subs_page, "product:iphone15", 10, &pages), 25);
    assert_int_equal(pages, 3);

    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_subs_page(f->s, "product:iphone15", NULL, 3, &ids, &n), HR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ids[0], "user-000");
    assert_string_equal(ids[2], "user-002");
    ids_free(ids, n);
    assert_int_equal(store_subs_page(f->s, "product:iphone15", "user-022", 10, &ids, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "user-023");
    assert_string_equal(ids[1], "user-024");
    ids_free(ids, n);

    assert_int_equal(store_sub_del(f->s, "product:iphone15", "user-010"), HR_OK);
    assert_int_equal(store_sub_del(f->s, "product:iphone15", "user-010"), HR_NOTFOUND);
    assert_int_equal(store_sub_del(f->s, "product:nothing", "user-001"), HR_NOTFOUND);
    assert_int_equal(walk_pages(f->s, store_subs_page, "product:iphone15", 10, &pages), 24);
    assert_int_equal(store_subs_page(f->s, "product:iphone15", "user-009", 1, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "user-011");
    ids_free(ids, n);

    assert_int_equal(store_subs_page(f->s, "product:none", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 0);
    ids_free(ids, n);
    assert_int_equal(store_subs_page(f->s, "product:iphone15", NULL, 0, &ids, &n), HR_INVALID);
}

static void test_follows(void **state)
{
    fx_t *f = *state;
    char id[32];
    for (int i = 0; i < 120; i++) {
        snprintf(id, sizeof(id), "fan%04d", 119 - i);
        assert_int_equal(store_follow_add(f->s, id, "kylie", NULL), HR_OK);
    }
    assert_int_equal(store_follow_add(f->s, "fan0001", "kylie", NULL), HR_OK); /* dup */
    assert_int_equal(store_follow_add(f->s, "kylie", "fan0001", NULL), HR_OK); /* other direction */
    int pages = 0;
    assert_int_equal(walk_pages(f->s, store_followers_page, "kylie", 50, &pages), 120);
    assert_int_equal(pages, 3);
    assert_int_equal(walk_pages(f->s, store_followers_page, "kylie", 120, &pages), 120);
    assert_int_equal(pages, 2); /* a full page, then an empty one */
    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_followers_page(f->s, "fan0001", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "kylie");
    ids_free(ids, n);
}

/* The created flags answer "was this row new?" whatever order the backend
 * sorts ids in (the API's 201 vs 200 rests on them). */
static void test_created_flags(void **state)
{
    fx_t *f = *state;
    static const char *const ids[] = {"zed", "Zed", "abc", "\xc3\xbc-user", "a", "ab"};
    bool created = true;
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        assert_int_equal(store_sub_add(f->s, "t", ids[i], &created), HR_OK);
        assert_true(created);
    }
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        created = true;
        assert_int_equal(store_sub_add(f->s, "t", ids[i], &created), HR_OK);
        assert_false(created);
    }
    assert_int_equal(store_sub_add(f->s, "t2", "zed", &created), HR_OK); /* another topic */
    assert_true(created);
    assert_int_equal(store_sub_del(f->s, "t", "abc"), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t", "abc", &created), HR_OK); /* again after delete */
    assert_true(created);
    created = true;
    assert_int_equal(store_sub_add(f->s, "", "abc", &created), HR_INVALID);
    assert_false(created);

    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        assert_int_equal(store_follow_add(f->s, ids[i], "kylie", &created), HR_OK);
        assert_true(created);
        created = true;
        assert_int_equal(store_follow_add(f->s, ids[i], "kylie", &created), HR_OK);
        assert_false(created);
    }
    assert_int_equal(store_follow_add(f->s, "kylie", "zed", &created), HR_OK); /* reverse */
    assert_true(created);
    created = true;
    assert_int_equal(store_follow_add(f->s, "kylie", NULL, &created), HR_INVALID);
    assert_false(created);
}

/* ---- templates ---- */

static void put_tpl(store_t *s, const char *type, channel_t ch, const char *locale,
                    const char *title)
{
    template_rec_t t = {.event_type = (char *)type, .channel = ch, .locale = (char *)locale,
                        .title = (char *)title, .body = "body"};
    assert_int_equal(store_template_put(s, &t), HR_OK);
}

static void expect_tpl(store_t *s, const char *type, channel_t ch, const char *locale,
                       const char *title, const char *found_locale)
{
    template_rec_t t;
    assert_int_equal(store_template_get(s, type, ch, locale, &t), HR_OK);
    assert_string_equal(t.title, title);
    assert_string_equal(t.body, "body");
    assert_string_equal(t.event_type, type);
    assert_int_equal(t.channel, ch);
    assert_string_equal(t.locale, found_locale);
    template_rec_clear(&t);
}

static void test_templates(void **state)
{
    fx_t *f = *state;
    put_tpl(f->s, "comment", CH_PUSH, "en", "EN");
    put_tpl(f->s, "comment", CH_PUSH, "pt", "PT");
    put_tpl(f->s, "comment", CH_PUSH, "pt-BR", "PT-BR");
    put_tpl(f->s, "comment", CH_EMAIL, "en", "EN mail");
    put_tpl(f->s, "comment", CH_INAPP, "de", "DE inapp");

    expect_tpl(f->s, "comment", CH_PUSH, "pt-BR", "PT-BR", "pt-BR");
    expect_tpl(f->s, "comment", CH_PUSH, "pt-br", "PT-BR", "pt-BR"); /* case-insensitive */
    expect_tpl(f->s, "comment", CH_PUSH, "pt-PT", "PT", "pt");
    expect_tpl(f->s, "comment", CH_PUSH, "pt_AO", "PT", "pt");
    expect_tpl(f->s, "comment", CH_PUSH, "pt", "PT", "pt");
    expect_tpl(f->s, "comment", CH_PUSH, "fr-CA", "EN", "en");
    expect_tpl(f->s, "comment", CH_PUSH, NULL, "EN", "en");
    expect_tpl(f->s, "comment", CH_EMAIL, "pt-BR", "EN mail", "en");
    expect_tpl(f->s, "comment", CH_INAPP, "de-AT", "DE inapp", "de");

    template_rec_t t;
    assert_int_equal(store_template_get(f->s, "comment", CH_INAPP, "fr", &t), HR_NOTFOUND);
    assert_int_equal(store_template_get(f->s, "comment", CH_SMS, "en", &t), HR_NOTFOUND);
    assert_int_equal(store_template_get(f->s, "nope", CH_PUSH, "en", &t), HR_NOTFOUND);

    /* put replaces */
    put_tpl(f->s, "comment", CH_PUSH, "pt", "PT v2");
    expect_tpl(f->s, "comment", CH_PUSH, "pt-PT", "PT v2", "pt");

    unsigned mask = 99;
    assert_int_equal(store_template_channels(f->s, "comment", &mask), HR_OK);
    assert_int_equal(mask, (1u << CH_PUSH) | (1u << CH_EMAIL) | (1u << CH_INAPP));
    assert_int_equal(store_template_channels(f->s, "nope", &mask), HR_OK);
    assert_int_equal(mask, 0);

    template_rec_t bad = {.event_type = "x", .channel = CH__COUNT};
    assert_int_equal(store_template_put(f->s, &bad), HR_INVALID);
}

/* ---- event dedupe ---- */

static void test_event_claim(void **state)
{
    fx_t *f = *state;
    claim_t c = (claim_t)-1;
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/3/1042", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/3/1042", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/1/7", &c), HR_OK);
    assert_int_equal(c, CLAIM_DUP);
    assert_int_equal(store_event_claim(f->s, "ev2", "raw-events/1/7", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);
    /* the first position stays the reference */
    assert_int_equal(store_event_claim(f->s, "ev1", "raw-events/3/1042", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    assert_int_equal(store_event_claim(f->s, "", "p", &c), HR_INVALID);
}

static void test_event_claim_batch(void **state)
{
    fx_t *f = *state;
    claim_t c;
    assert_int_equal(store_event_claim(f->s, "old", "raw-events/0/1", &c), HR_OK);
    const char *ids[] = {"a", "b", "a", "old", "old", "c"};
    const char *pos[] = {"raw-events/0/5", "raw-events/0/6", "raw-events/1/2", "raw-events/0/1",
                         "raw-events/0/9", "raw-events/0/7"};
    claim_t out[6];
    assert_int_equal(store_event_claim_batch(f->s, ids, pos, 6, out), HR_OK);
    assert_int_equal(out[0], CLAIM_NEW);
    assert_int_equal(out[1], CLAIM_NEW);
    assert_int_equal(out[2], CLAIM_DUP);  /* same id later in the batch, elsewhere */
    assert_int_equal(out[3], CLAIM_SAME); /* re-processing */
    assert_int_equal(out[4], CLAIM_DUP);
    assert_int_equal(out[5], CLAIM_NEW);
    /* the batch's claims are there for single claims too */
    assert_int_equal(store_event_claim(f->s, "b", "raw-events/0/6", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    assert_int_equal(store_event_claim_batch(f->s, ids, pos, 0, out), HR_OK);
    const char *bad[] = {"x", ""};
    assert_int_equal(store_event_claim_batch(f->s, bad, pos, 2, out), HR_INVALID);
    /* nothing of a refused batch was recorded */
    assert_int_equal(store_event_claim(f->s, "x", "p", &c), HR_OK);
    assert_int_equal(c, CLAIM_NEW);
}

/* ---- bulk user reads and writes, the change feed ---- */

static void test_users_batch_and_scan(void **state)
{
    fx_t *f = *state;
    user_t us[3] = {
        {.user_id = "u1", .email = "u1@example.com", .ndevices = 1,
         .devices = {{.platform = "apns", .token = "t1"}}},
        {.user_id = "u2", .phone = "+15550001", .locale = "fr"},
        {.user_id = "u3", .ndevices = 2,
         .devices = {{.platform = "fcm", .token = "a"}, {.platform = "apns", .token = "b"}}},
    };
    uint64_t e0 = store_users_epoch(f->s);
    assert_int_equal(store_user_put_batch(f->s, us, 3), HR_OK);
    pref_t p = {.category = "social", .channel = CH_EMAIL, .enabled = false};
    assert_int_equal(store_prefs_replace(f->s, "u3", &p, 1), HR_OK);

    const char *ids[] = {"u3", "nobody", "u1"};
    user_t out[3];
    hr_t found[3];
    pref_t *prefs[3];
    int np[3];
    assert_int_equal(store_users_get_batch(f->s, ids, 3, out, found, prefs, np), HR_OK);
    assert_int_equal(found[0], HR_OK);
    assert_int_equal(found[1], HR_NOTFOUND);
    assert_int_equal(found[2], HR_OK);
    assert_int_equal(out[0].ndevices, 2);
    assert_string_equal(out[0].devices[1].token, "b");
    assert_int_equal(np[0], 1);
    assert_string_equal(prefs[0][0].category, "social");
    assert_string_equal(out[2].email, "u1@example.com");
    assert_int_equal(np[2], 0);
    for (int i = 0; i < 3; i++)
        if (found[i] == HR_OK) {
            user_clear(&out[i]);
            prefs_free(prefs[i], np[i]);
        }

    /* a scan in key order, page by page, devices and preferences merged in */
    user_t page[2];
    int n = 0;
    assert_int_equal(store_users_scan(f->s, NULL, 2, page, prefs, np, &n), HR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(page[0].user_id, "u1");
    assert_string_equal(page[1].user_id, "u2");
    assert_string_equal(page[1].locale, "fr");
    assert_int_equal(page[0].ndevices, 1);
    for (int i = 0; i < n; i++) {
        user_clear(&page[i]);
        prefs_free(prefs[i], np[i]);
    }
    assert_int_equal(store_users_scan(f->s, "u2", 2, page, prefs, np, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].user_id, "u3");
    assert_int_equal(page[0].ndevices, 2);
    assert_int_equal(np[0], 1);
    user_clear(&page[0]);
    prefs_free(prefs[0], np[0]);

    /* every change was announced: three puts and a preference change */
    assert_int_equal(store_users_epoch(f->s), e0 + 4);
    char seen[64] = "";
    uint64_t now = 0;
    assert_int_equal(store_users_changed(f->s, e0 + 1, &now, collect_ids, seen), HR_OK);
    assert_int_equal(now, e0 + 4);
    assert_string_equal(seen, "u2 u3 u3 ");
    uint64_t t0 = store_templates_epoch(f->s);
    template_rec_t t = {.event_type = "x", .channel = CH_PUSH, .locale = "en", .title = "t", .body = "b"};
    assert_int_equal(store_template_put(f->s, &t), HR_OK);
    assert_int_equal(store_templates_epoch(f->s), t0 + 1);
}

/* The feed remembers a bounded number of changes; older epochs get
 * HR_AGAIN ("drop everything"). */
static void test_change_feed_overflow(void **state)
{
    fx_t *f = *state;
    uint64_t e0 = store_users_epoch(f->s);
    enum { N = 5000 };
    user_t *us = xcalloc(N, sizeof(*us));
    char (*ids)[16] = xcalloc(N, sizeof(*ids));
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "u%05d", i);
        us[i].user_id = ids[i];
    }
    assert_int_equal(store_user_put_batch(f->s, us, N), HR_OK);
    uint64_t now = 0;
    char seen[64] = "";
    assert_int_equal(store_users_changed(f->s, e0, &now, collect_none, seen), HR_AGAIN);
    assert_int_equal(now, e0 + N);
    assert_int_equal(store_users_changed(f->s, now, &now, collect_none, seen), HR_OK);
    free(us);
    free(ids);
}

/* ---- notifications ---- */

static notif_t mk(const char *id, const char *user, notif_status_t st, int attempt,
                  int64_t created, int64_t at)
{
    notif_t n = {
        .kind = 2,
        .channel = CH_PUSH,
        .priority = PRIO_NORMAL,
        .status = st,
        .attempt = (uint16_t)attempt,
        .created_at_ms = created,
        .status_at_ms = at,
        .notification_id = HSTR(id),
        .event_id = HSTR("ev-1"),
        .user_id = HSTR(user),
        .category = HSTR("social"),
        .title = HSTR("Kylie posted"),
        .body = HSTR("Look at this"),
        .address = HSTR("tok-a"),
    };
    return n;
}

static hr_t write1(store_t *s, notif_t n)
{
    const notif_t *p = &n;
    return store_notif_write_batch(s, &p, 1);
}

static notif_status_t status_of(store_t *s, const char *id)
{
    notif_row_t r;
    assert_int_equal(store_notif_get(s, id, &r, NULL, NULL), HR_OK);
    notif_status_t st = r.status;
    notif_row_clear(&r);
    return st;
}

static void test_notif_upsert_final_state(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_PENDING, 1, t0, t0)), HR_OK);

    notif_row_t r;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "n1", &r, &h, &nh), HR_OK);
    assert_string_equal(r.notification_id, "n1");
    assert_string_equal(r.event_id, "ev-1");
    assert_string_equal(r.user_id, "u1");
    assert_int_equal(r.channel, CH_PUSH);
    assert_string_equal(r.category, "social");
    assert_string_equal(r.title, "Kylie posted");
    assert_string_equal(r.body, "Look at this");
    assert_string_equal(r.address, "tok-a");
    assert_int_equal(r.status, ST_PENDING);
    assert_int_equal(r.attempt, 1);
    assert_null(r.channel_msg_id);
    assert_null(r.error);
    assert_int_equal(r.created_at_ms, t0);
    assert_int_equal(r.updated_at_ms, t0);
    assert_int_equal(r.delivered_at_ms, 0);
    assert_int_equal(nh, 1);
    assert_int_equal(h[0].status, ST_PENDING);
    assert_null(h[0].detail);
    notif_row_clear(&r);
    status_hist_free(h, nh);
    bool sent = true;
    assert_int_equal(store_notif_sent(f->s, "n1", &sent), HR_OK);
    assert_false(sent);

    /* failed, then sent: both in one batch */
    notif_t fail = mk("n1", "u1", ST_FAILED, 1, t0, t0 + 10);
    fail.error = HSTR("timeout");
    notif_t ok = mk("n1", "u1", ST_SENT, 2, t0, t0 + 20);
    ok.channel_msg_id = HSTR("apns-123");
    const notif_t *batch[] = {&fail, &ok};
    assert_int_equal(store_notif_write_batch(f->s, batch, 2), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n1", &r, NULL, NULL), HR_OK);
    assert_int_equal(r.status, ST_SENT);
    assert_int_equal(r.attempt, 2);
    assert_string_equal(r.channel_msg_id, "apns-123");
    assert_null(r.error);
    assert_int_equal(r.updated_at_ms, t0 + 20);
    assert_int_equal(r.delivered_at_ms, t0 + 20);
    notif_row_clear(&r);
    assert_int_equal(store_notif_sent(f->s, "n1", &sent), HR_OK);
    assert_true(sent);

    /* late non-final records do not move it back */
    notif_t late_fail = mk("n1", "u1", ST_FAILED, 1, t0, t0 + 30);
    late_fail.error = HSTR("late");
    assert_int_equal(write1(f->s, late_fail), HR_OK);
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_PENDING, 1, t0, t0 + 31)), HR_OK);
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_DEAD, 3, t0, t0 + 32)), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n1", &r, NULL, NULL), HR_OK);
    assert_int_equal(r.status, ST_SENT);
    assert_int_equal(r.attempt, 2);
    assert_null(r.error);
    assert_int_equal(r.updated_at_ms, t0 + 20);
    notif_row_clear(&r);

    /* delivered after sent does move it; sent after delivered does not */
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_DELIVERED, 2, t0, t0 + 40)), HR_OK);
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_SENT, 2, t0, t0 + 50)), HR_OK);
    assert_int_equal(store_notif_get(f->s, "n1", &r, &h, &nh), HR_OK);
    assert_int_equal(r.status, ST_DELIVERED);
    assert_string_equal(r.channel_msg_id, "apns-123"); /* kept: the receipt had none */
    assert_int_equal(r.delivered_at_ms, t0 + 40);
    assert_int_equal(store_notif_sent(f->s, "n1", &sent), HR_OK);
    assert_true(sent);

    /* every record is history, in arrival order */
    static const notif_status_t want[] = {ST_PENDING, ST_FAILED,    ST_SENT, ST_FAILED,
                                          ST_PENDING, ST_DEAD,      ST_DELIVERED, ST_SENT};
    assert_int_equal(nh, (int)ARRAY_LEN(want));
    for (int i = 0; i < nh; i++) assert_int_equal(h[i].status, want[i]);
    assert_string_equal(h[1].detail, "timeout");
    assert_string_equal(h[2].detail, "apns-123");
    assert_int_equal(h[2].attempt, 2);
    assert_int_equal(h[2].at_ms, t0 + 20);
    assert_string_equal(h[3].detail, "late");
    notif_row_clear(&r);
    status_hist_free(h, nh);

    assert_int_equal(store_notif_get(f->s, "missing", &r, &h, &nh), HR_NOTFOUND);
    assert_null(h);
    assert_int_equal(nh, 0);
    assert_int_equal(store_notif_sent(f->s, "missing", &sent), HR_OK);
    assert_false(sent);
}

static void test_notif_dead_rules(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    notif_t d = mk("n2", "u1", ST_DEAD, 4, t0, t0 + 1);
    d.error = HSTR("invalid token");
    assert_int_equal(write1(f->s, d), HR_OK);
    assert_int_equal(write1(f->s, mk("n2", "u1", ST_FAILED, 3, t0, t0 + 2)), HR_OK);
    assert_int_equal(write1(f->s, mk("n2", "u1", ST_RATE_LIMITED, 3, t0, t0 + 2)), HR_OK);
    assert_int_equal(status_of(f->s, "n2"), ST_DEAD);
    /* a redriven notification that then succeeds becomes sent */
    assert_int_equal(write1(f->s, mk("n2", "u1", ST_SENT, 5, t0, t0 + 3)), HR_OK);
    assert_int_equal(status_of(f->s, "n2"), ST_SENT);

    /* non-final states replace each other freely */
    assert_int_equal(write1(f->s, mk("n3", "u1", ST_DEFERRED, 1, t0, t0)), HR_OK);
    assert_int_equal(write1(f->s, mk("n3", "u1", ST_SUPPRESSED, 1, t0, t0 + 1)), HR_OK);
    assert_int_equal(status_of(f->s, "n3"), ST_SUPPRESSED);
}

/* The rank rule of model/lifecycle.h, driven through the store: for every
 * (stored, incoming) pair the row ends as lifecycle_may_replace says (a
 * refused record leaves the row as it was), and the history keeps every
 * record. */
static void test_notif_rank_rule_pairs(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    for (int a = 0; a < ST__COUNT; a++)
        for (int b = 0; b < ST__COUNT; b++) {
            char id[16];
            snprintf(id, sizeof(id), "r%d-%d", a, b);
            assert_int_equal(write1(f->s, mk(id, "u1", (notif_status_t)a, 1, t0, t0)), HR_OK);
            assert_int_equal(write1(f->s, mk(id, "u1", (notif_status_t)b, 2, t0, t0 + 1)), HR_OK);
            bool replaced = lifecycle_may_replace((notif_status_t)a, (notif_status_t)b);
            notif_status_t want = replaced ? (notif_status_t)b : (notif_status_t)a;
            notif_row_t r;
            status_hist_t *h = NULL;
            int nh = 0;
            assert_int_equal(store_notif_get(f->s, id, &r, &h, &nh), HR_OK);
            if (r.status != want) fail_msg("%s: stored %d, want %d", id, (int)r.status, (int)want);
            assert_int_equal(r.attempt, replaced ? 2 : 1); /* a refused record changes nothing */
            assert_int_equal(nh, 2);
            notif_row_clear(&r);
            store_status_hist_free(h, nh);
        }
}

/* Out-of-order arrival: every order of a notification's statuses, written
 * one record per batch and all in one batch, ends at the highest rank, and
 * the stored rank never goes down on the way. */
static void test_notif_rank_rule_out_of_order(void **state)
{
    fx_t *f = *state;
    static const notif_status_t seqs[][3] = {
        {ST_PENDING, ST_SENT, ST_DELIVERED},
        {ST_FAILED, ST_DEAD, ST_SENT},
        {ST_DEFERRED, ST_RATE_LIMITED, ST_DEAD},
    };
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const int64_t t0 = 1700000000000;
    for (size_t q = 0; q < ARRAY_LEN(seqs); q++) {
        notif_status_t top = seqs[q][0];
        for (int k = 1; k < 3; k++)
            if (lifecycle_rank(seqs[q][k]) > lifecycle_rank(top)) top = seqs[q][k];
        for (int p = 0; p < 6; p++) {
            char one[16], all[16];
            snprintf(one, sizeof(one), "o%zu-%d", q, p);
            snprintf(all, sizeof(all), "b%zu-%d", q, p);
            notif_t batch[3];
            const notif_t *ptrs[3];
            int rank = 0;
            for (int k = 0; k < 3; k++) {
                notif_status_t st = seqs[q][perms[p][k]];
                assert_int_equal(write1(f->s, mk(one, "u1", st, k + 1, t0, t0 + k)), HR_OK);
                notif_status_t now = status_of(f->s, one);
                if (rank > 0) assert_true(lifecycle_rank(now) >= rank);
                rank = lifecycle_rank(now);
                batch[k] = mk(all, "u1", st, k + 1, t0, t0 + k);
                ptrs[k] = &batch[k];
            }
            assert_int_equal(status_of(f->s, one), top);
            assert_int_equal(store_notif_write_batch(f->s, ptrs, 3), HR_OK);
            assert_int_equal(status_of(f->s, all), top);
        }
    }
}

/* The batch "already sent" check agrees with store_notif_sent id by id;
 * ids are (ptr, len), not NUL-terminated. */
static void test_notif_sent_batch(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    assert_int_equal(write1(f->s, mk("s1", "u1", ST_SENT, 1, t0, t0)), HR_OK);
    assert_int_equal(write1(f->s, mk("s2", "u1", ST_PENDING, 1, t0, t0)), HR_OK);
    assert_int_equal(write1(f->s, mk("s3", "u1", ST_DELIVERED, 1, t0, t0)), HR_OK);
    assert_int_equal(write1(f->s, mk("s4", "u1", ST_DEAD, 1, t0, t0)), HR_OK);
    assert_int_equal(write1(f->s, mk("s5", "u1", ST_FAILED, 1, t0, t0)), HR_OK);
    const char raw[] = "s1s2s3s4s5s6s1";
    hstr_t ids[7];
    for (int i = 0; i < 7; i++) ids[i] = (hstr_t){raw + 2 * i, 2};
    bool sent[7];
    memset(sent, 1, sizeof(sent));
    assert_int_equal(store_notif_sent_batch(f->s, ids, 7, sent), HR_OK);
    static const bool want[7] = {true, false, true, false, false, false, true};
    for (int i = 0; i < 7; i++) {
        char id[3] = {raw[2 * i], raw[2 * i + 1], 0};
        bool one = !want[i];
        assert_int_equal(store_notif_sent(f->s, id, &one), HR_OK);
        assert_int_equal(one, want[i]);
        assert_int_equal(sent[i], want[i]);
    }
    /* a later sent moves the answer */
    assert_int_equal(write1(f->s, mk("s4", "u1", ST_SENT, 2, t0, t0 + 1)), HR_OK);
    assert_int_equal(store_notif_sent_batch(f->s, &ids[3], 1, sent), HR_OK);
    assert_true(sent[0]);

    assert_int_equal(store_notif_sent_batch(f->s, NULL, 0, NULL), HR_OK);
    hstr_t bad[2] = {ids[0], {raw, 0}};
    sent[0] = true;
    assert_int_equal(store_notif_sent_batch(f->s, bad, 2, sent), HR_INVALID);
    assert_false(sent[0]);

    /* ids with quotes, backslashes, commas and braces are ids like others */
    assert_int_equal(write1(f->s, mk("q\"\\,{}", "u1", ST_SENT, 1, t0, t0)), HR_OK);
    hstr_t odd[2] = {hstr_of("q\"\\,{}"), hstr_of("q\"")};
    assert_int_equal(store_notif_sent_batch(f->s, odd, 2, sent), HR_OK);
    assert_true(sent[0]);
    assert_false(sent[1]);
}

static void test_notif_batch_invalid_and_empty(void **state)
{
    fx_t *f = *state;
    assert_int_equal(store_notif_write_batch(f->s, NULL, 0), HR_OK);
    notif_t good = mk("n4", "u1", ST_PENDING, 1, 5, 5);
    notif_t noid = mk("", "u1", ST_PENDING, 1, 5, 5);
    notif_t badst = mk("n5", "u1", ST__COUNT, 1, 5, 5);
    const notif_t *b[] = {&noid, &good, &badst};
    /* invalid records are skipped, never block the batch */
    assert_int_equal(store_notif_write_batch(f->s, b, 3), HR_OK);
    assert_int_equal(status_of(f->s, "n4"), ST_PENDING);
    notif_row_t r;
    assert_int_equal(store_notif_get(f->s, "n5", &r, NULL, NULL), HR_NOTFOUND);
}

/* Strings of a notif_t are (ptr, len), not NUL-terminated: bind by length. */
static void test_notif_hstr_not_terminated(void **state)
{
    fx_t *f = *state;
    const char raw[] = "n6XXu9YYTitleZZ";
    notif_t n = mk("x", "x", ST_PENDING, 1, 7, 7);
    n.notification_id = (hstr_t){raw, 2};
    n.user_id = (hstr_t){raw + 4, 2};
    n.title = (hstr_t){raw + 8, 5};
    n.metadata = (hstr_t){"{\"k\":1}", 7};
    assert_int_equal(write1(f->s, n), HR_OK);
    notif_row_t r;
    assert_int_equal(store_notif_get(f->s, "n6", &r, NULL, NULL), HR_OK);
    assert_string_equal(r.user_id, "u9");
    assert_string_equal(r.title, "Title");
    notif_row_clear(&r);
}

/* A large batch is written as it would be one record at a time: new and
 * stored notifications, several statuses of one id in the batch (some
 * across the writer's multi-row statements), a later status without
 * content, pipeline (hex) ids and other ids, in shuffled order. */
static void test_notif_big_batch(void **state)
{
    fx_t *f = *state;
    enum { OLD = 50, NEW = 100, TWICE = 25, TXT = 25, N = OLD + NEW + TWICE + TXT };
    char oldid[OLD][33], newid[NEW][33], txt[TXT][8];
    notif_t recs[N];
    const notif_t *ptrs[N];
    for (int k = 0; k < OLD; k++) {
        snprintf(oldid[k], sizeof(oldid[k]), "%016x%016x", 0x100u, (unsigned)k);
        recs[k] = mk(oldid[k], "ub", ST_PENDING, 1, 1000 + k, 1000 + k);
        recs[k].title = HSTR("old");
        ptrs[k] = &recs[k];
    }
    assert_int_equal(store_notif_write_batch(f->s, ptrs, OLD), HR_OK);
    int n = 0;
    for (int k = 0; k < NEW; k++) {
        snprintf(newid[k], sizeof(newid[k]), "%016x%016x", 0x200u, (unsigned)k);
        recs[n++] = mk(newid[k], "ub", ST_SENT, 1, 2000 + k, 2000 + k);
    }
    for (int k = 0; k < OLD; k++) { /* a later status: no content */
        recs[n] = mk(oldid[k], "ub", ST_DELIVERED, 1, 1000 + k, 3000 + k);
        recs[n].no_content = true;
        n++;
    }
    for (int k = 0; k < TWICE; k++) recs[n++] = mk(newid[k * 3], "ub", ST_DELIVERED, 1, 2000 + k * 3, 4000);
    for (int k = 0; k < TXT; k++) {
        snprintf(txt[k], sizeof(txt[k]), "t%02d", k);
        recs[n++] = mk(txt[k], "ub", ST_SENT, 2, 5000 + k, 5000 + k);
    }
    assert_int_equal(n, N);
    /* shuffled, but each id's records in their order: the delivered ones
     * of the new ids after their sent ones */
    int order[N];
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = 0; i < NEW + OLD; i++) { /* only among the first statuses */
        int j = (i * 37 + 11) % (NEW + OLD);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N; i++) ptrs[i] = &recs[order[i]];
    assert_int_equal(store_notif_write_batch(f->s, ptrs, N), HR_OK);

    notif_row_t r;
    status_hist_t *h = NULL;
    int nh = 0;
    for (int k = 0; k < OLD; k++) {
        assert_int_equal(store_notif_get(f->s, oldid[k], &r, &h, &nh), HR_OK);
        assert_int_equal(r.status, ST_DELIVERED);
        assert_string_equal(r.title, "old");
        assert_int_equal(r.created_at_ms, 1000 + k);
        assert_int_equal(nh, 2);
        assert_int_equal(h[0].status, ST_PENDING);
        assert_int_equal(h[1].at_ms, 3000 + k);
        notif_row_clear(&r);
        status_hist_free(h, nh);
    }
    for (int k = 0; k < NEW; k++) {
        bool twice = k % 3 == 0 && k / 3 < TWICE;
        assert_int_equal(store_notif_get(f->s, newid[k], &r, &h, &nh), HR_OK);
        assert_int_equal(r.status, twice ? ST_DELIVERED : ST_SENT);
        assert_string_equal(r.title, "Kylie posted");
        assert_int_equal(nh, twice ? 2 : 1);
        assert_int_equal(h[0].status, ST_SENT);
        assert_int_equal(h[0].at_ms, 2000 + k);
        notif_row_clear(&r);
        status_hist_free(h, nh);
        bool sent = false;
        assert_int_equal(store_notif_sent(f->s, newid[k], &sent), HR_OK);
        assert_true(sent);
    }
    for (int k = 0; k < TXT; k++) {
        assert_int_equal(store_notif_get(f->s, txt[k], &r, &h, &nh), HR_OK);
        assert_int_equal(r.status, ST_SENT);
        assert_int_equal(r.attempt, 2);
        assert_int_equal(nh, 1);
        notif_row_clear(&r);
        status_hist_free(h, nh);
    }
    /* each notification listed once */
    notif_row_t *rows = NULL;
    char *next = NULL;
    int got = 0;
    assert_int_equal(store_notif_list_user(f->s, "ub", NULL, 500, &rows, &got, &next), HR_OK);
    assert_int_equal(got, OLD + NEW + TXT);
    assert_null(next);
    notif_rows_free(rows, got);
}

static void test_notif_list_paging(void **state)
{
    fx_t *f = *state;
    /* 25 rows for u1: created_at in groups of 3 equal stamps (ties ordered
     * by id), written out of order; plus rows for u2 */
    enum { N = 25 };
    notif_t recs[N + 3];
    char ids[N + 3][16];
    const notif_t *ptrs[N + 3];
    for (int i = 0; i < N; i++) {
        int k = (i * 11) % N;
        snprintf(ids[i], sizeof(ids[i]), "id%02d", k);
        recs[i] = mk(ids[i], "u1", ST_PENDING, 1, 1000 + (k / 3) * 10, 1000);
        ptrs[i] = &recs[i];
    }
    for (int i = N; i < N + 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "other%d", i);
        recs[i] = mk(ids[i], "u2", ST_PENDING, 1, 5000, 5000);
        ptrs[i] = &recs[i];
    }
    assert_int_equal(store_notif_write_batch(f->s, ptrs, N + 3), HR_OK);

    char *cursor = NULL;
    int got = 0, pages = 0;
    int64_t last_ms = INT64_MAX;
    char last_id[16] = "~";
    for (;;) {
        notif_row_t *rows = NULL;
        int n = -1;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(f->s, "u1", cursor, 10, &rows, &n, &next), HR_OK);
        pages++;
        for (int i = 0; i < n; i++) {
            assert_string_equal(rows[i].user_id, "u1");
            /* strictly older, or same time and smaller id */
            assert_true(rows[i].created_at_ms < last_ms ||
                        (rows[i].created_at_ms == last_ms &&
                         strcmp(rows[i].notification_id, last_id) < 0));
            last_ms = rows[i].created_at_ms;
            snprintf(last_id, sizeof(last_id), "%s", rows[i].notification_id);
            /* ids were numbered so newest-first order is descending id */
            char want[16];
            snprintf(want, sizeof(want), "id%02d", N - 1 - got - i);
            assert_string_equal(rows[i].notification_id, want);
        }
        got += n;
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
        if (!next) break;
        assert_int_equal(n, 10);
    }
    assert_int_equal(got, N);
    assert_int_equal(pages, 3);

    /* exactly one page: no cursor */
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = (char *)"x";
    assert_int_equal(store_notif_list_user(f->s, "u2", NULL, 3, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 3);
    assert_null(next);
    notif_rows_free(rows, n);
    assert_int_equal(store_notif_list_user(f->s, "nobody", NULL, 3, &rows, &n, &next), HR_OK);
    assert_int_equal(n, 0);
    assert_null(next);
    notif_rows_free(rows, n);

    static const char *const bad[] = {"garbage", "123", "123:", ":id", "12x:id", " 12:id",
                                      "99999999999999999999999:id"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        rows = (notif_row_t *)1;
        assert_int_equal(store_notif_list_user(f->s, "u1", bad[i], 10, &rows, &n, &next),
                         HR_INVALID);
        assert_null(rows);
    }
    assert_int_equal(store_notif_list_user(f->s, "u1", NULL, 0, &rows, &n, &next), HR_INVALID);
}

static void test_persists_across_reopen(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "u1", .email = "a@b.c"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t", "u1", NULL), HR_OK);
    assert_int_equal(write1(f->s, mk("n1", "u1", ST_SENT, 1, 10, 10)), HR_OK);
    claim_t c;
    assert_int_equal(store_event_claim(f->s, "ev1", "p/0/1", &c), HR_OK);
    fx_reopen(f);
    user_t g;
    assert_int_equal(store_user_get(f->s, "u1", &g), HR_OK);
    assert_string_equal(g.email, "a@b.c");
    user_clear(&g);
    bool sent = false;
    assert_int_equal(store_notif_sent(f->s, "n1", &sent), HR_OK);
    assert_true(sent);
    assert_int_equal(store_event_claim(f->s, "ev1", "p/0/1", &c), HR_OK);
    assert_int_equal(c, CLAIM_SAME);
    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_subs_page(f->s, "t", NULL, 5, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    ids_free(ids, n);
}

static void test_purge(void **state)
{
    fx_t *f = *state;
    enum { N = 12000 }; /* more than one purge chunk */
    notif_t *recs = xcalloc(N, sizeof(*recs));
    const notif_t **ptrs = xcalloc(N, sizeof(*ptrs));
    char (*ids)[16] = xcalloc(N, sizeof(*ids));
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "p%05d", i);
        /* mostly old, with a few new ones in between */
        int64_t created = i % 100 == 0 ? 9000 : 1000 + i % 7;
        recs[i] = mk(ids[i], "u1", ST_PENDING, 1, created, created);
        ptrs[i] = &recs[i];
    }
    assert_int_equal(store_notif_write_batch(f->s, ptrs, N), HR_OK);
    assert_int_equal(write1(f->s, mk("p00001", "u1", ST_SENT, 1, 1001, 9500)), HR_OK);
    int64_t deleted = -1;
    assert_int_equal(store_notif_purge(f->s, 5000, &deleted), HR_OK);
    assert_int_equal(deleted, N - N / 100);
    notif_row_t r;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "p00001", &r, NULL, NULL), HR_NOTFOUND);
    assert_int_equal(store_notif_get(f->s, "p00100", &r, &h, &nh), HR_OK);
    assert_int_equal(nh, 1);
    notif_row_clear(&r);
    status_hist_free(h, nh);
    /* the re-inserted id starts a fresh history */
    assert_int_equal(write1(f->s, mk("p00001", "u1", ST_PENDING, 1, 9001, 9001)), HR_OK);
    assert_int_equal(store_notif_get(f->s, "p00001", &r, &h, &nh), HR_OK);
    assert_int_equal(nh, 1);
    notif_row_clear(&r);
    status_hist_free(h, nh);
    assert_int_equal(store_notif_purge(f->s, 5000, &deleted), HR_OK);
    assert_int_equal(deleted, 0);
    free(ids);
    free(ptrs);
    free(recs);
}

/* ---- concurrency: the sink writes while API threads read ---- */

enum { CW_BATCHES = 40, CW_BATCH = 250 };

typedef struct conc {
    store_t *s;
    _Atomic int writer_done;
    _Atomic int errors;
    _Atomic int reads;
} conc_t;

static void *conc_writer(void *arg)
{
    conc_t *c = arg;
    notif_t *recs = xcalloc(CW_BATCH, sizeof(*recs));
    const notif_t **ptrs = xcalloc(CW_BATCH, sizeof(*ptrs));
    char (*ids)[24] = xcalloc(CW_BATCH, sizeof(*ids));
    for (int b = 0; b < CW_BATCHES; b++) {
        for (int i = 0; i < CW_BATCH; i++) {
            snprintf(ids[i], sizeof(ids[i]), "c%03d-%04d", b, i);
            recs[i] = mk(ids[i], i % 2 ? "ua" : "ub", ST_PENDING, 1, 1000 + b, 1000 + b);
            ptrs[i] = &recs[i];
        }
        if (store_notif_write_batch(c->s, ptrs, CW_BATCH) != HR_OK) c->errors++;
        /* and upgrade the previous batch to sent */
        for (int i = 0; i < CW_BATCH; i++) recs[i].status = ST_SENT;
        if (store_notif_write_batch(c->s, ptrs, CW_BATCH) != HR_OK) c->errors++;
        claim_t cl;
        if (store_event_claim(c->s, ids[0], "p", &cl) != HR_OK || cl != CLAIM_NEW) c->errors++;
    }
    free(ids);
    free(ptrs);
    free(recs);
    c->writer_done = 1;
    return NULL;
}

static void *conc_reader(void *arg)
{
    conc_t *c = arg;
    bool seen_sent = false;
    while (!c->writer_done) {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        if (store_notif_list_user(c->s, "ua", NULL, 20, &rows, &n, &next) != HR_OK) c->errors++;
        for (int i = 1; i < n; i++)
            if (rows[i].created_at_ms > rows[i - 1].created_at_ms) c->errors++;
        notif_rows_free(rows, n);
        free(next);
        user_t u;
        if (store_user_get(c->s, "reader-user", &u) != HR_OK) c->errors++;
        user_clear(&u);
        /* once a reader has seen a commit, later reads see it too */
        bool sent = false;
        if (store_notif_sent(c->s, "c000-0000", &sent) != HR_OK || (seen_sent && !sent))
            c->errors++;
        seen_sent = seen_sent || sent;
        char **ids = NULL;
        int ni = 0;
        if (store_subs_page(c->s, "t", NULL, 10, &ids, &ni) != HR_OK || ni != 1) c->errors++;
        ids_free(ids, ni);
        c->reads++;
    }
    return NULL;
}

static void test_concurrent_write_read(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "reader-user"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    assert_int_equal(store_sub_add(f->s, "t", "reader-user", NULL), HR_OK);
    conc_t c = {.s = f->s};
    pthread_t w, r1, r2;
    assert_int_equal(pthread_create(&r1, NULL, conc_reader, &c), 0);
    assert_int_equal(pthread_create(&r2, NULL, conc_reader, &c), 0);
    assert_int_equal(pthread_create(&w, NULL, conc_writer, &c), 0);
    pthread_join(w, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    assert_int_equal(c.errors, 0);
    assert_true(c.reads > 0);

    /* everything landed, newest first, all sent */
    int total = 0;
    char *cursor = NULL;
    do {
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        assert_int_equal(store_notif_list_user(f->s, "ua", cursor, 1000, &rows, &n, &next),
                         HR_OK);
        for (int i = 0; i < n; i++) assert_int_equal(rows[i].status, ST_SENT);
        total += n;
        notif_rows_free(rows, n);
        free(cursor);
        cursor = next;
    } while (cursor);
    assert_int_equal(total, CW_BATCHES * CW_BATCH / 2);
    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(store_notif_get(f->s, "c039-0001", &row, &h, &nh), HR_OK);
    assert_int_equal(nh, 2);
    notif_row_clear(&row);
    status_hist_free(h, nh);
}

/* API keys: insert once, read back byte for byte, list, revoke keeps its
 * first time. */
static void test_api_keys(void **state)
{
    fx_t *f = *state;
    api_key_rec_t k = {.key_id = "k1", .tenant = "acme", .scopes = 5, .name = "ci",
                       .created_at_ms = 1000};
    for (int i = 0; i < 32; i++) k.secret_hash[i] = (unsigned char)(i * 37 + 200);
    assert_int_equal(store_key_put(f->s, &k), HR_OK);
    assert_int_equal(store_key_put(f->s, &k), HR_CONFLICT);
    api_key_rec_t g;
    assert_int_equal(store_key_get(f->s, "k1", &g), HR_OK);
    assert_memory_equal(g.secret_hash, k.secret_hash, 32);
    assert_string_equal(g.tenant, "acme");
    assert_string_equal(g.name, "ci");
    assert_int_equal(g.scopes, 5);
    assert_int_equal(g.created_at_ms, 1000);
    assert_int_equal(g.revoked_at_ms, 0);
    assert_int_equal(store_key_get(f->s, "nope", &g), HR_NOTFOUND);
    assert_int_equal(store_key_revoke(f->s, "k1", 2000), HR_OK);
    assert_int_equal(store_key_revoke(f->s, "k1", 3000), HR_OK);
    assert_int_equal(store_key_revoke(f->s, "nope", 3000), HR_NOTFOUND);
    api_key_rec_t *all = NULL;
    int n = 0;
    assert_int_equal(store_key_list(f->s, &all, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(all[0].key_id, "k1");
    assert_int_equal(all[0].revoked_at_ms, 2000);
    free(all);
}

/* Two stores on one database (two herald processes sharing it): an event
 * is new to exactly one of them, whichever claims first, and a user one
 * writes the other reads. */
static void test_two_stores_share(void **state)
{
    fx_t *f = *state;
    store_t *b = NULL;
    assert_int_equal(store_open(f->backend, f->dsn, &b), HR_OK);
    claim_t c1, c2;
    assert_int_equal(store_event_claim(f->s, "shared-1", "p/1", &c1), HR_OK);
    assert_int_equal(store_event_claim(b, "shared-1", "p/1", &c2), HR_OK);
    assert_int_equal(c1, CLAIM_NEW);
    assert_int_equal(c2, CLAIM_SAME);
    assert_int_equal(store_event_claim(b, "shared-2", "p/2", &c2), HR_OK);
    assert_int_equal(store_event_claim(f->s, "shared-2", "p/9", &c1), HR_OK);
    assert_int_equal(c2, CLAIM_NEW);
    assert_int_equal(c1, CLAIM_DUP);
    user_t u = {.user_id = "shared-user", .email = "s@example.com"};
    assert_int_equal(store_user_put(b, &u), HR_OK);
    user_t g;
    assert_int_equal(store_user_get(f->s, "shared-user", &g), HR_OK);
    assert_string_equal(g.email, "s@example.com");
    user_clear(&g);
    store_close(b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_unknown_backend),
        T(test_schema_version),
        T(test_user_put_get_replace),
        T(test_user_invalid),
        T(test_prefs_replace_get),
        T(test_subscriptions),
        T(test_follows),
        T(test_created_flags),
        T(test_templates),
        T(test_event_claim),
        T(test_event_claim_batch),
        T(test_users_batch_and_scan),
        T(test_change_feed_overflow),
        T(test_notif_upsert_final_state),
        T(test_notif_dead_rules),
        T(test_notif_rank_rule_pairs),
        T(test_notif_rank_rule_out_of_order),
        T(test_notif_sent_batch),
        T(test_notif_batch_invalid_and_empty),
        T(test_notif_hstr_not_terminated),
        T(test_notif_list_paging),
        T(test_notif_big_batch),
        T(test_persists_across_reopen),
        T(test_purge),
        T(test_concurrent_write_read), T(test_api_keys), T(test_two_stores_share),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
