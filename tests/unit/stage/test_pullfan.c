/*
 * Pull fan-out for the in-app channel (stage/pullfan.h) through the real
 * stages, embedded bus and SQLite store: an event to an actor with 6,000
 * followers (pull threshold 5,000, chunk threshold 1,000) stores its in-app
 * item once; every follower's inbox view has it exactly once (the first
 * 1,000 as their own inbox items, the rest pulled), respecting
 * preferences; marks make per-follower state; e-mail still reaches every
 * follower eagerly through the chunks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "http/inbox_hub.h"
#include "stage/chunks.h"
#include "stage/pullfan.h"
#include "stage/stage.h"
#include "stage/topics.h"

#define FOLLOWERS 6000

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    pipeline_t *pipe;
} fx_t;

static void open_app(fx_t *f)
{
    f->app.cfg = &f->cfg;
    atomic_store(&f->app.stopping, 0);
    env_open(&f->app, f->dir, 0);
}

static void close_app(fx_t *f)
{
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    env_close(&f->app);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "pull");
    config_init(&f->cfg);
    env_set(&f->cfg, "data_dir", f->dir);
    env_set(&f->cfg, "bus.partitions", "4");
    env_set(&f->cfg, "bus.fsync", "never");
    env_set(&f->cfg, "pipeline.workers", "2");
    env_set(&f->cfg, "fanout.chunk_threshold", "1000");
    env_set(&f->cfg, "fanout.chunk_size", "1500");
    env_set(&f->cfg, "fanout.pull_threshold", "5000");
    env_set(&f->cfg, "ratelimit.inapp", "0");
    env_set(&f->cfg, "ratelimit.email", "0");
    open_app(f);

    /* the audience, written straight into the database in one transaction */
    char *db = xasprintf("%s/herald.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    free(db);
    char *sql = xasprintf(
        "BEGIN;"
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO users (user_id, email, locale, timezone, updated_at)"
        " SELECT printf('f%%06d', i), printf('f%%06d@example.com', i), 'en', 'UTC', 0 FROM n;"
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO follows (actor, follower, created_at) SELECT 'kylie', printf('f%%06d', i), 0 FROM n;"
        "COMMIT;",
        FOLLOWERS - 1, FOLLOWERS - 1);
    char *err = NULL;
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, &err), SQLITE_OK);
    free(sql);
    sqlite3_close(h);
    template_rec_t t = {.event_type = "posted", .channel = CH_EMAIL, .locale = "en",
                        .title = "{{actor}} posted", .body = "Hi {{user_id}}"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    template_rec_t t2 = {.event_type = "posted", .channel = CH_INAPP, .locale = "en",
                         .title = "{{actor}} posted", .body = "{{data.text}}"};
    assert_int_equal(store_template_put(f->app.store, &t2), HR_OK);
    /* f005000 wants no in-app "default" notifications */
    pref_t off = {.category = "default", .channel = CH_INAPP, .enabled = false};
    assert_int_equal(store_prefs_replace(f->app.store, "f005000", &off, 1), HR_OK);
    /* a user who follows nobody */
    user_t lone = {.user_id = "lone", .locale = "en", .timezone = "UTC"};
    assert_int_equal(store_user_put(f->app.store, &lone), HR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    close_app(f);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void produce_raw(fx_t *f, const char *key, const char *value)
{
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(f->app.bus, TOPIC_RAW, -1, key, strlen(key), value,
                                 strlen(value), &b),
                     HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

static int64_t lag_of(fx_t *f, const char *group, const char *topic, int *parts_with_records)
{
    bus_lag_t *l = NULL;
    int n = 0;
    assert_int_equal(bus_lag(f->app.bus, group, topic, &l, &n), HR_OK);
    int64_t sum = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        sum += l[i].lag;
        if (l[i].end_offset > 0) used++;
    }
    free(l);
    if (parts_with_records) *parts_with_records = used;
    return sum;
}

/* Counts the sandbox's email lines per follower; returns lines. */
static int count_lines(fx_t *f, unsigned char *per_user)
{
    char *path = xasprintf("%s/sandbox/email.jsonl", f->dir);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return 0;
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof(line), fp)) {
        if (!strchr(line, '\n')) break; /* being written */
        lines++;
        if (!per_user) continue;
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        const char *u = json_string_value(json_object_get(o, "user_id"));
        assert_non_null(u);
        assert_true(u[0] == 'f');
        int i = (int)strtol(u + 1, NULL, 10);
        assert_true(i >= 0 && i < FOLLOWERS);
        if (per_user[i] < 255) per_user[i]++;
        json_decref(o);
    }
    fclose(fp);
    return lines;
}

/* Waits until FOLLOWERS lines are written and nothing is left to process. */
static void wait_all(fx_t *f)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 1200; i++) {
        if (count_lines(f, NULL) >= FOLLOWERS && lag_of(f, GROUP_CHUNKS, TOPIC_CHUNKS, NULL) == 0 &&
            lag_of(f, GROUP_FANOUT, TOPIC_RAW, NULL) == 0 &&
            lag_of(f, "dispatch-email", "notifications-email", NULL) == 0 &&
            lag_of(f, "dispatch-inapp", "notifications-inapp", NULL) == 0 &&
            lag_of(f, GROUP_STATUS, TOPIC_STATUS, NULL) == 0)
            return;
        nanosleep(&ts, NULL);
    }
    fail_msg("not every follower got the notification: %d lines", count_lines(f, NULL));
}

static void check_exactly_once(fx_t *f)
{
    unsigned char *per = calloc(FOLLOWERS, 1);
    assert_int_equal(count_lines(f, per), FOLLOWERS);
    for (int i = 0; i < FOLLOWERS; i++)
        if (per[i] != 1) fail_msg("follower f%06d got %d notifications", i, per[i]);
    free(per);
}

static const char *EVENT = "{\"event_id\":\"star1\",\"type\":\"posted\",\"actor\":\"kylie\","
                           "\"audience\":{\"followers_of\":\"kylie\"},\"channels\":[\"email\",\"inapp\"],"
                           "\"data\":{\"text\":\"hello all\"}}";

/* The user's inbox view: items of event star1 (0 or 1 expected) and counts. */
static int view(fx_t *f, const char *user, int64_t *unread, char *nid_out)
{
    inbox_item_t *it = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(pull_inbox_list(&f->app, user, INBOX_ACTIVE, NULL, 50, &it, &n, &next), HR_OK);
    int found = 0;
    for (int i = 0; i < n; i++)
        if (it[i].event_id && strcmp(it[i].event_id, "star1") == 0) {
            found++;
            assert_string_equal(it[i].title, "kylie posted");
            assert_string_equal(it[i].body, "hello all");
            if (nid_out) snprintf(nid_out, 33, "%s", it[i].notification_id);
        }
    inbox_items_free(it, n);
    free(next);
    int64_t unseen = 0;
    assert_int_equal(pull_inbox_counts(&f->app, user, unread, &unseen), HR_OK);
    return found;
}

static void test_celebrity_inapp_is_stored_once_and_pulled(void **state)
{
    fx_t *f = *state;
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
    produce_raw(f, "star1", EVENT);
    wait_all(f);
    check_exactly_once(f); /* e-mail: eager, every follower once */

    /* in-app: 1,000 inbox rows (fanned out before the chunks), not 6,000 */
    char *db = xasprintf("%s/herald.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    free(db);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT (SELECT count(*) FROM inbox),"
                                           " (SELECT count(*) FROM actor_feed)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1000);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(h);

    /* every follower's view holds it exactly once (but the one opted out) */
    for (int i = 0; i < FOLLOWERS; i++) {
        char u[16];
        snprintf(u, sizeof(u), "f%06d", i);
        int64_t unread = 0;
        int want = i == 5000 ? 0 : 1;
        if (view(f, u, &unread, NULL) != want) fail_msg("%s sees the item %d times", u, view(f, u, &unread, NULL));
        assert_int_equal(unread, want);
    }
    int64_t unread = 0;
    assert_int_equal(view(f, "lone", &unread, NULL), 0);

    /* a pulled item's state is the follower's own */
    char nid[33];
    assert_int_equal(view(f, "f004000", &unread, nid), 1);
    assert_int_equal(pull_inbox_mark(&f->app, "f004000", nid, INBOX_MARK_READ, 1000), HR_OK);
    assert_int_equal(view(f, "f004000", &unread, NULL), 1);
    assert_int_equal(unread, 0);
    assert_int_equal(view(f, "f004001", &unread, NULL), 1);
    assert_int_equal(unread, 1);
    inbox_item_t *it = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(pull_inbox_list(&f->app, "f004000", INBOX_READ, NULL, 10, &it, &n, &next), HR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].read_at_ms, 1000);
    inbox_items_free(it, n);
    assert_int_equal(pull_inbox_list(&f->app, "f004000", INBOX_UNREAD, NULL, 10, &it, &n, &next), HR_OK);
    assert_int_equal(n, 0);
    inbox_items_free(it, n);
    /* not followed: not found; archive-all and delete */
    assert_int_equal(pull_inbox_mark(&f->app, "lone", nid, INBOX_MARK_READ, 1000), HR_NOTFOUND);
    int64_t changed = 0;
    assert_int_equal(pull_inbox_mark_all(&f->app, "f004001", INBOX_MARK_ARCHIVED, 2000, &changed), HR_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(view(f, "f004001", &unread, NULL), 0);
    assert_int_equal(pull_inbox_del(&f->app, "f004002", nid), HR_OK);
    assert_int_equal(view(f, "f004002", &unread, NULL), 0);
    assert_int_equal(pull_inbox_del(&f->app, "f004002", nid), HR_NOTFOUND);
    assert_int_equal(view(f, "f004003", &unread, NULL), 1);
}

/* Paging merges both sources in one order with the inbox's cursors. */
static void test_paging_merges_inbox_and_feed(void **state)
{
    fx_t *f = *state;
    store_t *s = f->app.store;
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof(id), "own%d", i);
        inbox_item_t own = {.user_id = "f004500", .notification_id = id, .title = "t", .body = "b",
                            .created_at_ms = 100 + 20 * i};
        assert_int_equal(store_inbox_put(s, &own, NULL), HR_OK);
        snprintf(id, sizeof(id), "pull%d", i);
        inbox_item_t fi = {.notification_id = id, .category = "default", .title = "t", .body = "b",
                           .created_at_ms = 110 + 20 * i};
        assert_int_equal(store_feed_put(s, "kylie", "f001000", PRIO_NORMAL, &fi, NULL), HR_OK);
    }
    /* f000010 is at or before after_key: it sees no feed item */
    inbox_item_t *it = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(pull_inbox_list(&f->app, "f000010", INBOX_ACTIVE, NULL, 10, &it, &n, &next), HR_OK);
    assert_int_equal(n, 0);
    inbox_items_free(it, n);
    const char *want[] = {"pull4", "own4", "pull3", "own3", "pull2", "own2", "pull1", "own1", "pull0", "own0"};
    char *cursor = NULL;
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        assert_int_equal(pull_inbox_list(&f->app, "f004500", INBOX_ACTIVE, cursor, 3, &it, &n, &next), HR_OK);
        for (int i = 0; i < n; i++) assert_string_equal(it[i].notification_id, want[seen++]);
        inbox_items_free(it, n);
        free(cursor);
        cursor = next;
        if (!cursor) break;
    }
    assert_int_equal(seen, 10);
    assert_null(cursor);
    int64_t unread = 0, unseen = 0;
    assert_int_equal(pull_inbox_counts(&f->app, "f004500", &unread, &unseen), HR_OK);
    assert_int_equal(unread, 10);
    assert_int_equal(unseen, 10);
}

/* A live stream's sink: the text written to it. */
typedef struct sink {
    buf_t text;
    int closed;
} sink_t;

static hr_t sink_write(void *p, const void *data, size_t len)
{
    buf_append(&((sink_t *)p)->text, data, len);
    return HR_OK;
}
static void sink_close(void *p) { ((sink_t *)p)->closed++; }
static const inbox_sink_ops_t sink_ops = {sink_write, NULL, sink_close};

static hr_t counts_of(void *ctx, const char *user, int64_t *unread, int64_t *unseen)
{
    return pull_inbox_counts(ctx, user, unread, unseen);
}

/* A pulled item is live too: a follower watching its inbox gets the item
 * and counts that include it; a follower who opted out of the category and
 * a user who follows nobody get nothing. */
static void test_pulled_item_reaches_live_streams(void **state)
{
    fx_t *f = *state;
    inbox_hub_opts_t ho = {.max_streams = 8, .max_per_user = 2, .queue_max = 16,
                           .heartbeat_ms = 3600000, .thread = false, .counts = counts_of,
                           .counts_ctx = &f->app};
    f->app.inbox_hub = inbox_hub_new(&ho);
    const char *who[] = {"f004500", "f005000", "lone"};
    sink_t sk[3];
    for (int i = 0; i < 3; i++) {
        memset(&sk[i], 0, sizeof(sk[i]));
        buf_init(&sk[i].text, 0);
        inbox_sub_t *sub = NULL;
        bool per_user = false;
        assert_int_equal(inbox_hub_join(f->app.inbox_hub, who[i], &sink_ops, &sk[i], &per_user, &sub),
                         HR_OK);
        inbox_hub_release(f->app.inbox_hub, sub, 0, "", "0");
    }
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
    produce_raw(f, "star1", EVENT);
    wait_all(f);
    inbox_hub_pump(f->app.inbox_hub);
    char nid[33];
    int64_t unread = 0;
    assert_int_equal(view(f, "f004500", &unread, nid), 1); /* pulled, not its own row */
    const char *t = buf_cstr(&sk[0].text);
    char want[96];
    snprintf(want, sizeof(want), "event: item\ndata: {");
    if (!strstr(t, want) || !strstr(t, nid)) fail_msg("f004500's stream: %s", t);
    if (!strstr(t, "event: counts\ndata: {\"unread\":1,")) fail_msg("f004500's counts: %s", t);
    for (int i = 1; i < 3; i++)
        if (strstr(buf_cstr(&sk[i].text), "event: item")) fail_msg("%s got %s", who[i], buf_cstr(&sk[i].text));
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    inbox_hub_free(f->app.inbox_hub);
    f->app.inbox_hub = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sk[i].closed, 1);
        buf_release(&sk[i].text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_celebrity_inapp_is_stored_once_and_pulled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_merges_inbox_and_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pulled_item_reaches_live_streams, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
