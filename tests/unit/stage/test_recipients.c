/*
 * test_recipients.c - fan-out's recipient cache: what a recipient looks
 * like, that changes made through the store are seen from the next batch on,
 * that the byte budget holds, and that readers on several threads agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "app_env.h"
#include "policy/prefs.h"
#include "stage/recipients.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fx {
    char dir[64];
    store_t *s;
} fx_t;

static void put_user(store_t *s, const char *id, const char *email, const char *token)
{
    user_t u = {.user_id = (char *)id, .email = (char *)email, .phone = "+15550100", .locale = "de"};
    if (token) {
        u.ndevices = 1;
        u.devices[0].platform = "apns";
        u.devices[0].token = (char *)token;
    }
    assert_int_equal(store_user_put(s, &u), HR_OK);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "recip");
    char *db = xasprintf("%s/herald.db", f->dir);
    hr_t r = store_open("sqlite", db, &f->s);
    free(db);
    if (r != HR_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    env_rmdir(f->dir);
    free(f);
    return 0;
}

static void test_view_and_changes(void **state)
{
    fx_t *f = *state;
    put_user(f->s, "ann", "ann@example.com", "tok-ann");
    put_user(f->s, "ben", NULL, NULL);
    pref_t p = {.category = "social", .channel = CH_EMAIL, .enabled = false};
    assert_int_equal(store_prefs_replace(f->s, "ann", &p, 1), HR_OK);

    recip_cache_t *c = recip_cache_new(f->s, 1 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    assert_int_equal(loaded, 2);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    const recipient_t *a = recip_get(r, "ann", &err);
    assert_non_null(a);
    assert_true(a->known);
    assert_string_equal(a->user_id, "ann");
    assert_string_equal(a->locale, "de");
    assert_int_equal(a->addr_len[CH_PUSH], strlen("apns:tok-ann"));
    assert_memory_equal(a->addr[CH_PUSH], "apns:tok-ann", a->addr_len[CH_PUSH]);
    assert_memory_equal(a->addr[CH_EMAIL], "ann@example.com", a->addr_len[CH_EMAIL]);
    assert_string_equal(a->addr[CH_SMS], "+15550100"); /* 4 bits a character, odd length */
    assert_memory_equal(a->addr[CH_INAPP], "ann", a->addr_len[CH_INAPP]);
    assert_int_equal(a->addr_len[CH_WEBHOOK], 0);
    assert_string_equal(a->platform, "apns");
    assert_int_equal(a->nprefs, 1);
    assert_false(prefs_allowed(a->prefs, a->nprefs, "social", CH_EMAIL));
    assert_true(prefs_allowed(a->prefs, a->nprefs, "social", CH_PUSH));

    const recipient_t *b = recip_get(r, "ben", &err);
    assert_non_null(b);
    assert_int_equal(b->addr_len[CH_PUSH], 0);
    assert_int_equal(b->addr_len[CH_EMAIL], 0);
    const recipient_t *z = recip_get(r, "zed", &err);
    assert_non_null(z);
    assert_false(z->known);

    /* changes through the store are seen after the next sync */
    put_user(f->s, "ann", "new@example.com", "tok-2");
    assert_int_equal(store_prefs_replace(f->s, "ann", NULL, 0), HR_OK);
    put_user(f->s, "zed", "zed@example.com", NULL);
    recip_sync(r);
    a = recip_get(r, "ann", &err);
    assert_memory_equal(a->addr[CH_EMAIL], "new@example.com", a->addr_len[CH_EMAIL]);
    assert_memory_equal(a->addr[CH_PUSH], "apns:tok-2", a->addr_len[CH_PUSH]);
    assert_int_equal(a->nprefs, 0);
    z = recip_get(r, "zed", &err);
    assert_true(z->known);

    const char *ids[] = {"ann", "ben", "zed", "nobody", ""};
    assert_int_equal(recip_prefetch(r, ids, 5), HR_OK);
    recip_stats_t st;
    recip_reader_free(r);
    recip_cache_stats(c, &st);
    assert_true(st.entries >= 3);
    assert_int_equal(st.lookups, 5);
    recip_cache_free(c);
}

/* A prefetch records each id's entry (hits, misses, repeated ids, unknown
 * users), and recip_get() answers from that record - in order, skipping
 * ids, with a nested prefetch between - without reading the id again. The
 * cache is given no room, so every answer not taken from the record would
 * be a store read (counted in loads); a batch (recip_sync) ends the record. */
static void test_prefetch_records(void **state)
{
    fx_t *f = *state;
    put_user(f->s, "ann", "ann@example.com", "tok-ann");
    put_user(f->s, "ben", "ben@example.com", NULL);
    put_user(f->s, "cat", "cat@example.com", "tok-cat");
    recip_cache_t *c = recip_cache_new(f->s, 1, 60000);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    recip_stats_t st;
    const char *ids[] = {"ann", "ben", "ben", "nobody", "cat", "ben", "ann"};
    assert_int_equal(recip_prefetch(r, ids, 7), HR_OK);
    static const char *const want[] = {"ann", "ben", "ben", "nobody", "cat", "ben", "ann"};
    for (int i = 0; i < 7; i++) {
        if (i == 2) continue; /* an event fan-out dropped */
        const recipient_t *x = recip_get(r, want[i], &err);
        assert_non_null(x);
        assert_string_equal(x->user_id, want[i]);
        assert_int_equal(x->known, strcmp(want[i], "nobody") != 0);
        if (x->known) {
            char mail[64];
            snprintf(mail, sizeof(mail), "%s@example.com", want[i]);
            assert_memory_equal(x->addr[CH_EMAIL], mail, x->addr_len[CH_EMAIL]);
        }
        if (i == 3) { /* a nested prefetch (an audience page) and back */
            const char *page[] = {"cat", "zed"};
            assert_int_equal(recip_prefetch(r, page, 2), HR_OK);
            assert_string_equal(recip_get(r, "cat", &err)->user_id, "cat");
            assert_false(recip_get(r, "zed", &err)->known);
        }
    }
    /* ann, ben, nobody, cat, and the page's cat and zed: nothing read twice
     * (the repeated ben and ann came from the record) */
    recip_sync(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, 4 + 2);
    assert_int_equal(st.lookups, 6 + 2);
    /* after recip_sync the record is gone: a plain read */
    assert_string_equal(recip_get(r, "ben", &err)->addr[CH_EMAIL], "ben@example.com");
    recip_sync(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, 4 + 2 + 1);
    recip_reader_free(r);
    recip_cache_free(c);
}

/* A tiny budget: nothing fits, every answer still comes from the store. */
static void test_budget(void **state)
{
    fx_t *f = *state;
    put_user(f->s, "ann", "ann@example.com", "tok-ann");
    recip_cache_t *c = recip_cache_new(f->s, 1, 60000);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    for (int i = 0; i < 3; i++) {
        const recipient_t *a = recip_get(r, "ann", &err);
        assert_non_null(a);
        assert_memory_equal(a->addr[CH_EMAIL], "ann@example.com", a->addr_len[CH_EMAIL]);
    }
    recip_stats_t st;
    recip_reader_free(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.loads, 3);
    recip_cache_free(c);
}

typedef struct worker {
    recip_cache_t *c;
    int errors;
} worker_t;

static void *reader_main(void *arg)
{
    worker_t *w = arg;
    recip_reader_t *r = recip_reader_new(w->c);
    char id[16], want[32];
    for (int i = 0; i < 20000; i++) {
        int k = (i * 7919) % 500;
        snprintf(id, sizeof(id), "u%03d", k);
        snprintf(want, sizeof(want), "%s@example.com", id);
        hr_t err;
        const recipient_t *x = recip_get(r, id, &err);
        if (!x || x->addr_len[CH_EMAIL] != strlen(want) || memcmp(x->addr[CH_EMAIL], want, strlen(want)) != 0)
            w->errors++;
    }
    recip_reader_free(r);
    return NULL;
}

/* Readers on four threads share a cache smaller than the users: entries
 * are replaced under them all the time, and every answer stays right. */
static void test_threads(void **state)
{
    fx_t *f = *state;
    char id[16], email[32];
    for (int k = 0; k < 500; k++) {
        snprintf(id, sizeof(id), "u%03d", k);
        snprintf(email, sizeof(email), "%s@example.com", id);
        put_user(f->s, id, email, "t");
    }
    recip_cache_t *c = recip_cache_new(f->s, 40000, 60000);
    worker_t w[4] = {{c, 0}, {c, 0}, {c, 0}, {c, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, reader_main, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    recip_stats_t st;
    recip_cache_stats(c, &st);
    assert_true(st.bytes <= 40000);
    recip_cache_free(c);
}

/* Time zone and quiet hours travel through the cache (interned zones, two
 * int16), for cached entries, store misses and changed users alike. */
static void test_zone_and_quiet_hours(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "paris", .locale = "fr", .timezone = "Europe/Paris",
                .quiet_start = "22:00", .quiet_end = "07:00"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    user_t u2 = {.user_id = "paris2", .locale = "fr", .timezone = "Europe/Paris"};
    assert_int_equal(store_user_put(f->s, &u2), HR_OK);
    put_user(f->s, "plain", NULL, NULL); /* no zone given: the store's UTC */

    recip_cache_t *c = recip_cache_new(f->s, 1 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    const recipient_t *a = recip_get(r, "paris", &err);
    assert_non_null(a);
    assert_string_equal(a->timezone, "Europe/Paris");
    assert_int_equal(a->quiet_start_min, 22 * 60);
    assert_int_equal(a->quiet_end_min, 7 * 60);
    const char *zone = a->timezone;
    a = recip_get(r, "paris2", &err);
    assert_ptr_equal(a->timezone, zone); /* interned: one copy of the name */
    assert_int_equal(a->quiet_start_min, NOTIF_QUIET_NONE);
    assert_int_equal(a->quiet_end_min, NOTIF_QUIET_NONE);
    a = recip_get(r, "plain", &err);
    assert_string_equal(a->timezone, "UTC");
    a = recip_get(r, "nobody", &err); /* unknown: no zone, no quiet hours */
    assert_non_null(a);
    assert_false(a->known);
    assert_string_equal(a->timezone, "");
    assert_int_equal(a->quiet_start_min, NOTIF_QUIET_NONE);

    /* a change is seen from the next batch on */
    user_t u3 = {.user_id = "paris", .locale = "fr", .timezone = "America/New_York",
                 .quiet_start = "23:30", .quiet_end = "06:15"};
    assert_int_equal(store_user_put(f->s, &u3), HR_OK);
    recip_sync(r);
    a = recip_get(r, "paris", &err);
    assert_string_equal(a->timezone, "America/New_York");
    assert_int_equal(a->quiet_start_min, 23 * 60 + 30);
    assert_int_equal(a->quiet_end_min, 6 * 60 + 15);
    recip_reader_free(r);
    recip_cache_free(c);
}

/* Every field survives the packed form: several devices on different
 * platforms, webhook, quiet hours, preferences, an address without an '@',
 * locale and zone; for a primed entry, a store miss and a prefetch alike. */
static void check_full(const recipient_t *a)
{
    assert_non_null(a);
    assert_true(a->known);
    assert_string_equal(a->user_id, "full");
    assert_string_equal(a->locale, "pt-BR");
    assert_string_equal(a->timezone, "America/Sao_Paulo");
    assert_int_equal(a->quiet_start_min, 21 * 60 + 30);
    assert_int_equal(a->quiet_end_min, 8 * 60);
    /* packed 6 bits a character, raw (':', '/', '='), raw (short) */
    const char *push = "apns:0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_,"
                       "fcm:APA91b:x/y=z,apns:cc";
    assert_int_equal(a->addr_len[CH_PUSH], strlen(push));
    assert_memory_equal(a->addr[CH_PUSH], push, strlen(push));
    assert_string_equal(a->platform, "apns");
    assert_string_equal(a->addr[CH_SMS], "+4915112345678");
    assert_int_equal(a->addr_len[CH_SMS], strlen("+4915112345678"));
    assert_string_equal(a->addr[CH_EMAIL], "first.last+tag@mail.example.org");
    assert_int_equal(a->addr_len[CH_EMAIL], strlen("first.last+tag@mail.example.org"));
    assert_string_equal(a->addr[CH_WEBHOOK], "https://hooks.example.net/h/1");
    assert_int_equal(a->addr_len[CH_WEBHOOK], strlen("https://hooks.example.net/h/1"));
    assert_memory_equal(a->addr[CH_INAPP], "full", a->addr_len[CH_INAPP]);
    assert_int_equal(a->nprefs, 3);
    assert_false(prefs_allowed(a->prefs, a->nprefs, "marketing", CH_EMAIL));
    assert_true(prefs_allowed(a->prefs, a->nprefs, "marketing", CH_PUSH));
    assert_false(prefs_allowed(a->prefs, a->nprefs, "social", CH_SMS));
    assert_true(prefs_allowed(a->prefs, a->nprefs, "", CH_SMS));
}

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "full", .email = "first.last+tag@mail.example.org", .phone = "+4915112345678",
                .locale = "pt-BR", .timezone = "America/Sao_Paulo", .quiet_start = "21:30",
                .quiet_end = "08:00", .webhook_url = "https://hooks.example.net/h/1", .ndevices = 3};
    u.devices[0] = (device_t){"apns", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"};
    u.devices[1] = (device_t){"fcm", "APA91b:x/y=z"};
    u.devices[2] = (device_t){"apns", "cc"};
    assert_int_equal(store_user_put(f->s, &u), HR_OK);
    pref_t p[3] = {{.category = "marketing", .channel = CH_EMAIL, .enabled = false},
                   {.category = "social", .channel = CH_SMS, .enabled = false},
                   {.category = "", .channel = CH_SMS, .enabled = true}};
    assert_int_equal(store_prefs_replace(f->s, "full", p, 3), HR_OK);
    user_t v = {.user_id = "local", .email = "nodomain", .phone = "(555) 010-0199 x"};
    assert_int_equal(store_user_put(f->s, &v), HR_OK);

    recip_cache_t *c = recip_cache_new(f->s, 1 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    check_full(recip_get(r, "full", &err));
    /* only the channels asked for */
    const recipient_t *a = recip_get_for(r, "full", 1u << CH_SMS, &err);
    assert_non_null(a);
    assert_string_equal(a->addr[CH_SMS], "+4915112345678");
    assert_int_equal(a->addr_len[CH_SMS], 14);
    assert_string_equal(a->addr[CH_PUSH], "");
    assert_int_equal(a->addr_len[CH_PUSH], 0);
    assert_string_equal(a->addr[CH_EMAIL], "");
    assert_int_equal(a->addr_len[CH_WEBHOOK], 0);
    assert_string_equal(a->platform, "apns");
    assert_string_equal(a->locale, "pt-BR");
    assert_int_equal(a->nprefs, 3);
    a = recip_get_for(r, "full", 1u << CH_PUSH | 1u << CH_EMAIL, &err);
    assert_string_equal(a->addr[CH_EMAIL], "first.last+tag@mail.example.org");
    assert_int_equal(a->addr_len[CH_SMS], 0);
    assert_int_equal(strncmp(a->addr[CH_PUSH], "apns:0123", 9), 0);
    check_full(recip_get(r, "full", &err));
    const recipient_t *b = recip_get(r, "local", &err);
    assert_non_null(b);
    assert_string_equal(b->addr[CH_EMAIL], "nodomain"); /* packed 6 bits */
    assert_string_equal(b->addr[CH_SMS], "(555) 010-0199 x"); /* raw: the 'x' */
    assert_int_equal(b->addr_len[CH_PUSH], 0);
    assert_string_equal(b->platform, "");
    assert_string_equal(b->locale, "en");
    assert_int_equal(b->quiet_start_min, NOTIF_QUIET_NONE);
    recip_reader_free(r);
    recip_cache_free(c);

    /* no room: read from the store on every use, and through a prefetch */
    c = recip_cache_new(f->s, 1, 60000);
    r = recip_reader_new(c);
    check_full(recip_get(r, "full", &err));
    const char *ids[] = {"local", "full"};
    assert_int_equal(recip_prefetch(r, ids, 2), HR_OK);
    assert_string_equal(recip_get(r, "local", &err)->addr[CH_EMAIL], "nodomain");
    check_full(recip_get(r, "full", &err));
    recip_reader_free(r);
    recip_cache_free(c);
}

/* The refresh: syncs of a busy reader read the cached users again, page by
 * page, before they age out, so that none is read one by one on use. */
static void test_refresh(void **state)
{
    fx_t *f = *state;
    enum { N = 600 };
    user_t *us = calloc(N, sizeof(*us));
    char (*ids)[16] = calloc(N, sizeof(*ids));
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%04d", i);
        us[i] = (user_t){.user_id = ids[i], .locale = "en", .timezone = "UTC"};
    }
    assert_int_equal(store_user_put_batch(f->s, us, N), HR_OK);
    const int64_t t0 = 1700000000000;
    hclock_set_fake(t0);
    recip_cache_t *c = recip_cache_new(f->s, 1 << 22, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_reader_t *r = recip_reader_new(c);
    /* a batch a second for 70 s: pages of 256 every 45 s * 256 / 600 (19.2 s);
     * the first (at 1 s) finds its entries young and leaves them */
    for (int t = 1; t <= 70; t++) {
        hclock_set_fake(t0 + t * 1000);
        recip_sync(r);
    }
    recip_stats_t st;
    recip_cache_stats(c, &st);
    assert_int_equal(st.refreshed, N); /* at 20 s 256, at 39 s 344, at 58 s the first 256 */
    int64_t loads = st.loads;
    for (int i = 0; i < N; i++) {
        hr_t err;
        const recipient_t *x = recip_get(r, ids[i], &err);
        assert_non_null(x);
        assert_true(x->known);
    }
    recip_sync(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, loads); /* 70 s after the prime, none had aged out */
    /* without syncs the entries age out and are read on use, as before */
    hclock_set_fake(t0 + 200 * 1000);
    hr_t err;
    assert_non_null(recip_get(r, ids[0], &err));
    recip_sync(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, loads + 1);
    recip_reader_free(r);
    recip_cache_free(c);
    hclock_set_fake(0);
    free(us);
    free(ids);
}

/* The refresh reads what another process changed (a second store on the
 * same database: its changes reach this one's feed never): a changed user's
 * entry is replaced by what the store has now, an unchanged one's kept,
 * and neither is read on use afterwards. */
static void test_refresh_sees_other_writer(void **state)
{
    fx_t *f = *state;
    enum { N = 600 };
    for (int i = 0; i < N; i++) {
        char id[16], em[32];
        snprintf(id, sizeof(id), "r%04d", i);
        snprintf(em, sizeof(em), "%s@old.example", id);
        put_user(f->s, id, em, "tok0123456789");
    }
    const int64_t t0 = 1700000000000;
    hclock_set_fake(t0);
    recip_cache_t *c = recip_cache_new(f->s, 1 << 22, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    assert_string_equal(recip_get(r, "r0300", &err)->addr[CH_EMAIL], "r0300@old.example");

    store_t *other = NULL;
    char *db = xasprintf("%s/herald.db", f->dir);
    assert_int_equal(store_open("sqlite", db, &other), HR_OK);
    free(db);
    hclock_set_fake(t0 + 10 * 1000);
    put_user(other, "r0300", "r0300@new.example", "tokNEW");
    store_close(other);
    /* still the cached entry: the change is not in this store's feed */
    recip_sync(r);
    assert_string_equal(recip_get(r, "r0300", &err)->addr[CH_EMAIL], "r0300@old.example");

    /* pages every 19.2 s: the first (at 10 s) found its entries young, the
     * second (due at 29.2 s) reads r0256..r0511 again */
    for (int t = 11; t <= 30; t++) {
        hclock_set_fake(t0 + t * 1000);
        recip_sync(r);
    }
    recip_stats_t st;
    recip_cache_stats(c, &st);
    assert_int_equal(st.refreshed, 256);
    int64_t loads = st.loads;
    const recipient_t *x = recip_get(r, "r0300", &err);
    assert_string_equal(x->addr[CH_EMAIL], "r0300@new.example");
    assert_string_equal(x->addr[CH_PUSH], "apns:tokNEW");
    x = recip_get(r, "r0301", &err);
    assert_string_equal(x->addr[CH_EMAIL], "r0301@old.example");
    assert_string_equal(x->addr[CH_PUSH], "apns:tok0123456789");
    assert_string_equal(x->locale, "de");
    /* both refreshed at 30 s: fresh at 75 s, none read on use */
    hclock_set_fake(t0 + 75 * 1000);
    assert_string_equal(recip_get(r, "r0300", &err)->addr[CH_EMAIL], "r0300@new.example");
    assert_string_equal(recip_get(r, "r0301", &err)->addr[CH_EMAIL], "r0301@old.example");
    recip_sync(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, loads);
    recip_reader_free(r);
    recip_cache_free(c);
    hclock_set_fake(0);
}

/* Packed strings of every length modulo the packing's groups (4 six-bit
 * characters in 3 bytes, 2 nibbles in a byte) read back exactly. */
static void test_packed_lengths(void **state)
{
    fx_t *f = *state;
    static const char six[] = "aZ09-_xYqW3";
    static const char nib[] = "+1 (555) 0-.9";
    enum { N = 11 };
    char ids[N][8], toks[N][16], phones[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "p%d", i);
        snprintf(toks[i], sizeof(toks[i]), "%.*s", i + 1, six);
        snprintf(phones[i], sizeof(phones[i]), "%.*s", i + 1, nib);
        user_t u = {.user_id = ids[i], .phone = phones[i], .email = toks[i], .ndevices = 1};
        u.devices[0] = (device_t){"fcm", toks[i]};
        assert_int_equal(store_user_put(f->s, &u), HR_OK);
    }
    recip_cache_t *c = recip_cache_new(f->s, 1 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_reader_t *r = recip_reader_new(c);
    for (int i = 0; i < N; i++) {
        hr_t err;
        const recipient_t *x = recip_get(r, ids[i], &err);
        assert_non_null(x);
        char push[256];
        snprintf(push, sizeof(push), "fcm:%s", toks[i]);
        assert_string_equal(x->addr[CH_PUSH], push);
        assert_string_equal(x->addr[CH_SMS], phones[i]);
        assert_string_equal(x->addr[CH_EMAIL], toks[i]);
    }
    recip_reader_free(r);
    recip_cache_free(c);
}

/* Push tokens with a hex tail (PS_HEX in recipients.c) read back exactly:
 * every tail length, either case, prefixes of hex-looking letters of the
 * other case, a tail too short to pay, a prefix too long for the form;
 * and asked without the push channel (the tail is then not unpacked). */
static void test_hex_tails(void **state)
{
    fx_t *f = *state;
    static const char *const pre[] = {"", "fcm-", "abc:", "ABC:", "x", "q9"};
    static const char lo[] = "0123456789abcdef0f1e2d3c", up[] = "0123456789ABCDEF0F1E2D3C";
    enum { NPRE = 6, NLEN = 24, N = NPRE * NLEN * 2 + 2 };
    static char ids[N][16], toks[N][200];
    int n = 0;
    for (int p = 0; p < NPRE; p++)
        for (int len = 1; len <= NLEN; len++)
            for (int c = 0; c < 2; c++, n++) {
                snprintf(ids[n], sizeof(ids[n]), "h%d", n);
                snprintf(toks[n], sizeof(toks[n]), "%s%.*s", pre[p], len, c ? up : lo);
            }
    snprintf(ids[n], sizeof(ids[n]), "h%d", n);
    memset(toks[n], 'z', 127);
    snprintf(toks[n] + 127, sizeof(toks[n]) - 127, "%s", lo); /* the longest prefix */
    n++;
    snprintf(ids[n], sizeof(ids[n]), "h%d", n);
    memset(toks[n], 'z', 128);
    snprintf(toks[n] + 128, sizeof(toks[n]) - 128, "%s", lo); /* one more: stored otherwise */
    n++;
    for (int i = 0; i < n; i++) {
        user_t u = {.user_id = ids[i], .phone = "+15550001", .ndevices = 1};
        u.devices[0] = (device_t){"apns", toks[i]};
        assert_int_equal(store_user_put(f->s, &u), HR_OK);
    }
    recip_cache_t *c = recip_cache_new(f->s, 1 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    assert_int_equal(loaded, n);
    recip_reader_t *r = recip_reader_new(c);
    for (int i = 0; i < n; i++) {
        hr_t err;
        const recipient_t *x = recip_get(r, ids[i], &err);
        assert_non_null(x);
        char push[256];
        snprintf(push, sizeof(push), "apns:%.200s", toks[i]);
        assert_string_equal(x->addr[CH_PUSH], push);
        assert_string_equal(x->addr[CH_SMS], "+15550001");
        x = recip_get_for(r, ids[i], 1u << CH_SMS, &err);
        assert_non_null(x);
        assert_string_equal(x->addr[CH_PUSH], "");
        assert_string_equal(x->addr[CH_SMS], "+15550001");
    }
    recip_stats_t st;
    recip_reader_free(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, 0); /* all answered from the cache */
    recip_cache_free(c);
}

/* More distinct e-mail domains than the atom table holds: the later ones
 * are stored inline, and every address still reads back. */
static void test_many_domains(void **state)
{
    fx_t *f = *state;
    enum { N = 17000 };
    user_t *us = calloc(N, sizeof(*us));
    char (*ids)[16] = calloc(N, sizeof(*ids));
    char (*mails)[48] = calloc(N, sizeof(*mails));
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "d%05d", i);
        snprintf(mails[i], sizeof(mails[i]), "x@host%05d.example", i);
        us[i].user_id = ids[i];
        us[i].email = mails[i];
    }
    assert_int_equal(store_user_put_batch(f->s, us, N), HR_OK);
    recip_cache_t *c = recip_cache_new(f->s, 16 << 20, 60000);
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    assert_int_equal(loaded, N);
    recip_reader_t *r = recip_reader_new(c);
    hr_t err;
    for (int i = 0; i < N; i++) {
        const recipient_t *x = recip_get(r, ids[i], &err);
        assert_non_null(x);
        assert_string_equal(x->addr[CH_EMAIL], mails[i]);
    }
    recip_stats_t st;
    recip_reader_free(r);
    recip_cache_stats(c, &st);
    assert_int_equal(st.loads, 0); /* all answered from the cache */
    recip_cache_free(c);
    free(us);
    free(ids);
    free(mails);
}

/* What an entry costs: a user like the benchmark's (8-byte id, e-mail at a
 * shared domain, phone, one 52-byte push token of a prefix and 48 hex
 * digits, locale and zone) takes at most 72 bytes of the budget (88 with
 * the token stored six bits a character), and a cache sized for it holds
 * all of them:
 * with two sets to choose from (recipients.c), none is left out by a full
 * set at 61 % of the slots taken (with one set ~2-3 % were). */
static void test_entry_bytes(void **state)
{
    fx_t *f = *state;
    enum { N = 20000 };
    user_t *us = calloc(N, sizeof(*us));
    char (*ids)[16] = calloc(N, sizeof(*ids));
    char (*mails)[48] = calloc(N, sizeof(*mails));
    char (*phones)[32] = calloc(N, sizeof(*phones));
    char (*toks)[80] = calloc(N, sizeof(*toks));
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "u%07d", i);
        snprintf(mails[i], sizeof(mails[i]), "%s@example.com", ids[i]);
        snprintf(phones[i], sizeof(phones[i]), "+1555%07d", i);
        snprintf(toks[i], sizeof(toks[i]), "fcm-%016llx%016llx%016llx", (unsigned long long)i * 7919u,
                 (unsigned long long)i * 104729u, (unsigned long long)i);
        us[i] = (user_t){.user_id = ids[i], .email = mails[i], .phone = phones[i], .locale = "en",
                         .timezone = "UTC", .ndevices = 1};
        us[i].devices[0] = (device_t){"fcm", toks[i]};
    }
    assert_int_equal(store_user_put_batch(f->s, us, N), HR_OK);
    recip_cache_t *c = recip_cache_new(f->s, (size_t)N * (72 + 16) * 11 / 10, 60000);
    recip_stats_t st0, st;
    recip_cache_stats(c, &st0); /* the set array */
    int64_t loaded = 0;
    assert_int_equal(recip_cache_prime(c, &loaded), HR_OK);
    recip_cache_stats(c, &st);
    double per = (double)(st.bytes - st0.bytes) / (double)st.entries;
    print_message("%lld of %d users cached, %.1f bytes per entry, %.1f with the sets\n",
                  (long long)st.entries, N, per, (double)st.bytes / (double)st.entries);
    assert_true(per <= 72.0);
    assert_int_equal(st.entries, N);
    recip_cache_free(c);
    free(us);
    free(ids);
    free(mails);
    free(phones);
    free(toks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_view_and_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zone_and_quiet_hours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hex_tails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_sees_other_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
