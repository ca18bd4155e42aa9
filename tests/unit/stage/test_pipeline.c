/*
 * Fan-out and pipeline tests: the real stages on a real embedded bus and a
 * real SQLite store, in-process. Records are produced straight into
 * raw-events (as a Kafka producer would), so bad records reach the stage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <sys/resource.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "stage/stage.h"
#include "stage/topics.h"

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    pipeline_t *pipe;
} fx_t;

/* *state may point to the partition count of notification-status (the
 * other topics get 2); NULL = 2. */
static int setup(void **state)
{
    int status_partitions = *state ? *(const int *)*state : 2;
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "pipe");
    env_config(&f->cfg, f->dir, (const char *[]){"bus.partitions", "2", "bus.fsync", "never", NULL});
    f->app.cfg = &f->cfg;
    env_open(&f->app, f->dir, status_partitions);

    store_t *s = f->app.store;
    const char *names[] = {"ann", "ben", "cat", "dan"};
    for (int i = 0; i < 4; i++) {
        user_t u = {.user_id = (char *)names[i], .locale = (char *)(i == 1 ? "fr-CA" : "en"),
                    .timezone = "UTC", .ndevices = 1};
        char email[64], tok[32];
        snprintf(email, sizeof(email), "%s@example.com", names[i]);
        snprintf(tok, sizeof(tok), "tok-%s", names[i]);
        u.email = email;
        u.devices[0].platform = "fcm";
        u.devices[0].token = tok;
        assert_int_equal(store_user_put(s, &u), HR_OK);
    }
    template_rec_t t1 = {.event_type = "posted", .channel = CH_PUSH, .locale = "en",
                         .title = "{{actor}} posted", .body = "{{data.text}}"};
    template_rec_t t2 = {.event_type = "posted", .channel = CH_PUSH, .locale = "fr",
                         .title = "{{actor}} a publié", .body = "{{data.text}}"};
    template_rec_t t3 = {.event_type = "posted", .channel = CH_EMAIL, .locale = "en",
                         .title = "New post by {{actor}}", .body = "Hi {{user_id}}"};
    assert_int_equal(store_template_put(s, &t1), HR_OK);
    assert_int_equal(store_template_put(s, &t2), HR_OK);
    assert_int_equal(store_template_put(s, &t3), HR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    pipeline_stop(f->pipe);
    env_close(&f->app);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void start(fx_t *f)
{
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
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

/* Reads the sandbox lines of a channel into a jansson array. */
static json_t *sandbox_lines(fx_t *f, const char *channel)
{
    json_t *arr = json_array();
    char *path = xasprintf("%s/sandbox/%s.jsonl", f->dir, channel);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return arr;
    char line[8192];
    while (fgets(line, sizeof(line), fp)) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_array_append_new(arr, o);
    }
    fclose(fp);
    return arr;
}

static notif_status_t wait_status(fx_t *f, const char *ev, const char *user, channel_t ch)
{
    char id[33];
    notif_make_id(0, HSTR(ev), HSTR(user), ch, id);
    for (int i = 0; i < 400; i++) {
        notif_row_t row;
        status_hist_t *h = NULL;
        int nh = 0;
        if (store_notif_get(f->app.store, id, &row, &h, &nh) == HR_OK) {
            notif_status_t st = row.status;
            notif_row_clear(&row);
            status_hist_free(h, nh);
            return st;
        }
        usleep(20000);
    }
    return ST__COUNT;
}

/* Reads every record of the DLQ with a fresh group. */
static json_t *dlq_records(fx_t *f, int want)
{
    json_t *arr = json_array();
    const char *topics[] = {TOPIC_DLQ};
    bus_consumer_t *c;
    assert_int_equal(bus_consumer_new(f->app.bus, "test-dlq-reader", topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[16];
    for (int tries = 0; tries < 100 && (int)json_array_size(arr) < want; tries++) {
        int n = bus_poll(c, m, 16, 50);
        for (int i = 0; i < n; i++) {
            json_t *o = json_loadb(m[i].value, m[i].value_len, 0, NULL);
            assert_non_null(o);
            json_array_append_new(arr, o);
        }
    }
    bus_consumer_close(c);
    return arr;
}

/* pipeline.workers applies to every stage but the status sink, which on
 * SQLite keeps one worker (its transactions take turns on the store's one
 * writer: stage_def_t.max_workers). */
static void test_status_sink_keeps_one_worker(void **state)
{
    fx_t *f = *state;
    f->cfg.workers_per_stage = 2;
    start(f);
    assert_int_equal(pipeline_stage_workers(f->pipe, STAGE_FANOUT), 2);
    assert_int_equal(pipeline_stage_workers(f->pipe, STAGE_STATUS), 1);
    assert_int_equal(pipeline_stage_workers(f->pipe, "no-such-stage"), 0);
}

/* The nice value of this process's thread named comm (/proc/self/task),
 * polled until it is there and not nice0 (the worker sets it as it
 * starts); INT_MIN when no such thread showed up. */
static int thread_nice(const char *comm, int nice0)
{
    int found = INT_MIN;
    for (int tries = 0; tries < 200; tries++) {
        DIR *d = opendir("/proc/self/task");
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[320], name[32] = "", stat[1024];
            snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
            FILE *fp = fopen(path, "r");
            if (!fp) continue;
            if (!fgets(name, sizeof(name), fp)) name[0] = '\0';
            fclose(fp);
            name[strcspn(name, "\n")] = '\0';
            if (strcmp(name, comm) != 0) continue;
            snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
            fp = fopen(path, "r");
            if (!fp) continue;
            size_t got = fread(stat, 1, sizeof(stat) - 1, fp);
            fclose(fp);
            stat[got] = '\0';
            /* after "(comm)": state is field 3, nice field 19 */
            const char *p = strrchr(stat, ')');
            int field = 2, nice = 0;
            for (; p && *p; p++)
                if (*p == ' ' && ++field == 19) {
                    nice = atoi(p + 1);
                    break;
                }
            found = nice;
        }
        closedir(d);
        if (found != INT_MIN && found != nice0) return found;
        usleep(10000);
    }
    return found;
}

/* status.nice sets the sink thread's scheduling priority; the delivery
 * stages keep the process's. */
static void test_status_sink_nice(void **state)
{
    fx_t *f = *state;
    int nice0 = getpriority(PRIO_PROCESS, 0);
    if (nice0 > 13) skip(); /* cannot go below the process's without privileges */
    assert_int_equal(f->cfg.status_nice, 10); /* the default */
    f->cfg.status_nice = 13;
    start(f);
    assert_int_equal(thread_nice(STAGE_STATUS, nice0), 13);
    assert_int_equal(thread_nice(STAGE_FANOUT, INT_MIN), nice0);
}

static void test_topic_audience_locale_and_optout(void **state)
{
    fx_t *f = *state;
    store_t *s = f->app.store;
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_sub_add(s, "product:x", (const char *[]){"ann", "ben", "cat"}[i], NULL), HR_OK);
    /* cat turned email off for the "social" category only */
    pref_t p = {.category = "social", .channel = CH_EMAIL, .enabled = false};
    assert_int_equal(store_prefs_replace(s, "cat", &p, 1), HR_OK);
    start(f);
    produce_raw(f, "e1", "{\"event_id\":\"e1\",\"type\":\"posted\",\"actor\":\"Kylie\",\"category\":"
                         "\"social\",\"audience\":{\"topic\":\"product:x\"},\"data\":{\"text\":\"hi\"}}");
    assert_int_equal(wait_status(f, "e1", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e1", "ben", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e1", "cat", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e1", "ann", CH_EMAIL), ST_SENT);
    assert_int_equal(wait_status(f, "e1", "ben", CH_EMAIL), ST_SENT); /* its line is written */
    assert_int_equal(wait_status(f, "e1", "cat", CH_EMAIL), ST_SUPPRESSED);
    json_t *push = sandbox_lines(f, "push");
    assert_int_equal(json_array_size(push), 3);
    int french = 0;
    size_t i;
    json_t *v;
    json_array_foreach(push, i, v)
    {
        const char *user = json_string_value(json_object_get(v, "user_id"));
        const char *title = json_string_value(json_object_get(v, "title"));
        if (strcmp(user, "ben") == 0) {
            assert_string_equal(title, "Kylie a publié"); /* fr-CA falls back to fr */
            french++;
        } else {
            assert_string_equal(title, "Kylie posted");
        }
        assert_string_equal(json_string_value(json_object_get(v, "body")), "hi");
    }
    assert_int_equal(french, 1);
    json_decref(push);
    json_t *email = sandbox_lines(f, "email");
    assert_int_equal(json_array_size(email), 2);
    json_decref(email);
}

static void test_followers_and_channels_override(void **state)
{
    fx_t *f = *state;
    store_t *s = f->app.store;
    assert_int_equal(store_follow_add(s, "dan", "Kylie", NULL), HR_OK);
    assert_int_equal(store_follow_add(s, "ann", "Kylie", NULL), HR_OK);
    start(f);
    produce_raw(f, "e2", "{\"event_id\":\"e2\",\"type\":\"posted\",\"actor\":\"Kylie\","
                         "\"audience\":{\"followers_of\":\"Kylie\"},\"channels\":[\"push\"],"
                         "\"data\":{\"text\":\"new\"}}");
    /* End marker: an email-only event for the same users, behind e2 on the
     * same raw-events partition (same key), so its emails queue behind any
     * e2 produced on each user's partition. Once they are sent, e2 can have
     * nothing left in flight. */
    produce_raw(f, "e2", "{\"event_id\":\"e2-end\",\"type\":\"posted\",\"actor\":\"Kylie\","
                         "\"audience\":{\"users\":[\"dan\",\"ann\"]},\"channels\":[\"email\"],"
                         "\"data\":{\"text\":\"end\"}}");
    assert_int_equal(wait_status(f, "e2", "dan", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e2", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e2-end", "dan", CH_EMAIL), ST_SENT);
    assert_int_equal(wait_status(f, "e2-end", "ann", CH_EMAIL), ST_SENT);
    json_t *email = sandbox_lines(f, "email");
    assert_int_equal(json_array_size(email), 2); /* channels override: e2 went to push only */
    size_t i;
    json_t *v;
    json_array_foreach(email, i, v)
        assert_string_equal(json_string_value(json_object_get(v, "event_id")), "e2-end");
    json_decref(email);
}

/* critical overrides preferences only for a required category
 * (policy.required_categories, default "security,otp"); a required
 * category's own opt-out is ignored at any priority. */
static void test_critical_overrides_only_required_categories(void **state)
{
    fx_t *f = *state;
    /* ann: push off altogether, and no "promo" push, and no "security" push */
    pref_t pa[] = {{.category = "", .channel = CH_PUSH, .enabled = false},
                   {.category = "promo", .channel = CH_PUSH, .enabled = false},
                   {.category = "security", .channel = CH_PUSH, .enabled = false}};
    assert_int_equal(store_prefs_replace(f->app.store, "ann", pa, 3), HR_OK);
    /* ben: no "promo" push, no "security" push (the push switch is on) */
    pref_t pb[] = {{.category = "promo", .channel = CH_PUSH, .enabled = false},
                   {.category = "security", .channel = CH_PUSH, .enabled = false}};
    assert_int_equal(store_prefs_replace(f->app.store, "ben", pb, 2), HR_OK);
    start(f);
    produce_raw(f, "e3", "{\"event_id\":\"e3\",\"type\":\"posted\",\"audience\":{\"users\":"
                         "[\"ann\"]},\"channels\":[\"push\"],\"data\":{}}");
    /* critical, not a required category: the opt-outs hold */
    produce_raw(f, "e4", "{\"event_id\":\"e4\",\"type\":\"posted\",\"priority\":\"critical\","
                         "\"category\":\"promo\",\"audience\":{\"users\":[\"ann\",\"ben\"]},"
                         "\"channels\":[\"push\"],\"data\":{}}");
    /* critical, required: delivered whatever the preferences say */
    produce_raw(f, "e5", "{\"event_id\":\"e5\",\"type\":\"posted\",\"priority\":\"critical\","
                         "\"category\":\"security\",\"audience\":{\"users\":[\"ann\",\"ben\"]},"
                         "\"channels\":[\"push\"],\"data\":{}}");
    /* normal, required: the category opt-out is ignored, the push switch is not */
    produce_raw(f, "e6", "{\"event_id\":\"e6\",\"type\":\"posted\",\"category\":\"security\","
                         "\"audience\":{\"users\":[\"ann\",\"ben\"]},\"channels\":[\"push\"],"
                         "\"data\":{}}");
    assert_int_equal(wait_status(f, "e3", "ann", CH_PUSH), ST_SUPPRESSED);
    assert_int_equal(wait_status(f, "e4", "ann", CH_PUSH), ST_SUPPRESSED);
    assert_int_equal(wait_status(f, "e4", "ben", CH_PUSH), ST_SUPPRESSED);
    assert_int_equal(wait_status(f, "e5", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e5", "ben", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "e6", "ann", CH_PUSH), ST_SUPPRESSED);
    assert_int_equal(wait_status(f, "e6", "ben", CH_PUSH), ST_SENT);
}

/* Reads n records of a notifications topic with a fresh group, decoded;
 * *bufs keeps their bytes (free each and the array). */
static int channel_records(fx_t *f, channel_t ch, notif_t *out, int want, char ***bufs)
{
    const char *topics[] = {topic_for_channel(ch)};
    bus_consumer_t *c;
    char group[64];
    snprintf(group, sizeof(group), "test-reader-%s", channel_name(ch));
    assert_int_equal(bus_consumer_new(f->app.bus, group, topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[16];
    int got = 0;
    *bufs = calloc((size_t)want, sizeof(char *));
    for (int tries = 0; tries < 100 && got < want; tries++) {
        int n = bus_poll(c, m, 16, 50);
        for (int i = 0; i < n && got < want; i++) {
            (*bufs)[got] = malloc(m[i].value_len);
            memcpy((*bufs)[got], m[i].value, m[i].value_len);
            assert_int_equal(notif_decode((*bufs)[got], m[i].value_len, &out[got]), HR_OK);
            got++;
        }
    }
    bus_consumer_close(c);
    return got;
}

static bool hstr_is(hstr_t h, const char *s) { return h.n == strlen(s) && memcmp(h.p, s, h.n) == 0; }

/* The notification record carries what the dispatch policy needs: the
 * recipient's time zone and quiet hours (from the recipient cache, no store
 * read at dispatch), the priority, and due_at from the event's send_at. */
static void test_record_carries_zone_quiet_hours_and_send_at(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "eve", .locale = "en", .timezone = "Europe/Paris",
                .quiet_start = "22:00", .quiet_end = "07:00", .ndevices = 1};
    u.devices[0].platform = "fcm";
    u.devices[0].token = "tok-eve";
    assert_int_equal(store_user_put(f->app.store, &u), HR_OK);
    start(f);
    /* eve is read before the pipeline starts (cache prime); fay after */
    user_t u2 = {.user_id = "fay", .locale = "en", .timezone = "America/New_York",
                 .quiet_start = "23:30", .quiet_end = "06:15", .ndevices = 1};
    u2.devices[0].platform = "fcm";
    u2.devices[0].token = "tok-fay";
    assert_int_equal(store_user_put(f->app.store, &u2), HR_OK);
    int64_t t0 = hclock_now_ms();
    /* an hour ahead, whole seconds */
    time_t later = (time_t)(t0 / 1000 + 3600);
    struct tm tm;
    char when[32], ev[512];
    gmtime_r(&later, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    produce_raw(f, "q1", "{\"event_id\":\"q1\",\"type\":\"posted\",\"priority\":\"high\","
                         "\"audience\":{\"users\":[\"eve\",\"ann\",\"fay\"]},"
                         "\"channels\":[\"push\"],\"data\":{}}");
    snprintf(ev, sizeof(ev), "{\"event_id\":\"q2\",\"type\":\"posted\",\"send_at\":\"%s\","
             "\"audience\":{\"users\":[\"eve\"]},\"channels\":[\"push\"],\"data\":{}}", when);
    produce_raw(f, "q2", ev);
    /* a send_at in the past means now */
    produce_raw(f, "q3", "{\"event_id\":\"q3\",\"type\":\"posted\",\"send_at\":"
                         "\"2001-01-01T00:00:00Z\",\"audience\":{\"users\":[\"fay\"]},"
                         "\"channels\":[\"push\"],\"data\":{}}");
    notif_t n[5];
    char **bufs;
    assert_int_equal(channel_records(f, CH_PUSH, n, 5, &bufs), 5);
    int seen = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(n[i].kind, REC_NOTIFICATION);
        bool q1 = hstr_is(n[i].event_id, "q1"), q2 = hstr_is(n[i].event_id, "q2");
        if (q1) assert_int_equal(n[i].priority, PRIO_HIGH);
        if (q2) {
            assert_int_equal(n[i].due_at_ms, (int64_t)later * 1000);
            assert_int_equal(n[i].priority, PRIO_NORMAL);
        } else {
            assert_int_equal(n[i].due_at_ms, 0); /* now: not scheduled */
        }
        if (hstr_is(n[i].user_id, "eve")) {
            assert_true(hstr_is(n[i].timezone, "Europe/Paris"));
            assert_int_equal(n[i].quiet_start_min, 22 * 60);
            assert_int_equal(n[i].quiet_end_min, 7 * 60);
            seen |= q1 ? 1 : 2;
        } else if (hstr_is(n[i].user_id, "fay")) {
            assert_true(hstr_is(n[i].timezone, "America/New_York"));
            assert_int_equal(n[i].quiet_start_min, 23 * 60 + 30);
            assert_int_equal(n[i].quiet_end_min, 6 * 60 + 15);
            seen |= q1 ? 4 : 8;
        } else {
            assert_true(hstr_is(n[i].user_id, "ann"));
            assert_true(hstr_is(n[i].timezone, "UTC"));
            assert_int_equal(n[i].quiet_start_min, NOTIF_QUIET_NONE);
            assert_int_equal(n[i].quiet_end_min, NOTIF_QUIET_NONE);
            seen |= 16;
        }
        free(bufs[i]);
    }
    free(bufs);
    assert_int_equal(seen, 31);
}

/* An event of a type without templates, carrying its own content: fanned
 * out on the channels content names (or `channels`), rendered like a
 * template. */
static void test_inline_content(void **state)
{
    fx_t *f = *state;
    start(f);
    /* per channel only: push, which has no "oneoff" template */
    produce_raw(f, "c1", "{\"event_id\":\"c1\",\"type\":\"oneoff\",\"actor\":\"Kylie\","
                         "\"audience\":{\"users\":[\"ann\"]},\"data\":{\"code\":\"123\"},"
                         "\"content\":{\"push\":{\"title\":\"Code from {{actor}}\","
                         "\"body\":\"{{data.code}}\"}}}");
    /* for all channels, with an email override, and a channel list */
    produce_raw(f, "c2", "{\"event_id\":\"c2\",\"type\":\"oneoff\",\"audience\":{\"users\":"
                         "[\"ben\"]},\"channels\":[\"push\",\"email\"],\"content\":{"
                         "\"title\":\"Hello\",\"body\":\"as is\","
                         "\"email\":{\"title\":\"Mail\",\"body\":\"for {{user_id}}\"}}}");
    /* inline content beats the template of a templated type */
    produce_raw(f, "c3", "{\"event_id\":\"c3\",\"type\":\"posted\",\"audience\":{\"users\":"
                         "[\"cat\"]},\"channels\":[\"push\"],\"content\":{\"body\":\"mine\"}}");
    assert_int_equal(wait_status(f, "c1", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "c2", "ben", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "c2", "ben", CH_EMAIL), ST_SENT);
    assert_int_equal(wait_status(f, "c3", "cat", CH_PUSH), ST_SENT);
    json_t *push = sandbox_lines(f, "push");
    assert_int_equal(json_array_size(push), 3);
    size_t i;
    json_t *v;
    json_array_foreach(push, i, v)
    {
        const char *ev = json_string_value(json_object_get(v, "event_id"));
        const char *title = json_string_value(json_object_get(v, "title"));
        const char *body = json_string_value(json_object_get(v, "body"));
        if (strcmp(ev, "c1") == 0) {
            assert_string_equal(title, "Code from Kylie");
            assert_string_equal(body, "123");
        } else if (strcmp(ev, "c2") == 0) {
            assert_string_equal(title, "Hello");
            assert_string_equal(body, "as is");
        } else {
            assert_string_equal(ev, "c3");
            assert_string_equal(title, "");
            assert_string_equal(body, "mine");
        }
    }
    json_decref(push);
    json_t *email = sandbox_lines(f, "email");
    assert_int_equal(json_array_size(email), 1); /* c1 went to push only */
    assert_string_equal(json_string_value(json_object_get(json_array_get(email, 0), "title")), "Mail");
    assert_string_equal(json_string_value(json_object_get(json_array_get(email, 0), "body")), "for ben");
    json_decref(email);
}

static void test_bad_records_go_to_dlq_and_partition_moves_on(void **state)
{
    fx_t *f = *state;
    start(f);
    /* All with the same key: same partition, so the good one is behind the bad ones. */
    produce_raw(f, "k", "this is not json");
    produce_raw(f, "k", "{\"event_id\":\"bad1\",\"audience\":{\"users\":[\"ann\"]}}");
    produce_raw(f, "k", "{\"event_id\":\"bad2\",\"type\":\"posted\",\"audience\":{\"users\":\"ann\"}}");
    produce_raw(f, "k", "{\"event_id\":\"bad3\",\"type\":\"nobody_templated\",\"audience\":{\"users\":[\"ann\"]}}");
    produce_raw(f, "k", "{\"event_id\":\"good\",\"type\":\"posted\",\"audience\":{\"users\":[\"ann\"]},"
                        "\"channels\":[\"push\"],\"data\":{\"text\":\"ok\"}}");
    assert_int_equal(wait_status(f, "good", "ann", CH_PUSH), ST_SENT);
    json_t *dlq = dlq_records(f, 4);
    assert_int_equal(json_array_size(dlq), 4);
    const char *want[] = {"invalid event: ", "type", "audience.users",
                          "no templates for event type 'nobody_templated' and no inline content"};
    for (size_t i = 0; i < 4; i++) {
        json_t *r = json_array_get(dlq, i);
        const char *reason = json_string_value(json_object_get(r, "reason"));
        assert_non_null(reason);
        assert_non_null(strstr(reason, want[i]));
        assert_string_equal(json_string_value(json_object_get(r, "topic")), TOPIC_RAW);
        assert_non_null(json_object_get(r, "payload"));
    }
    json_decref(dlq);
}

static void test_unknown_user_and_duplicates(void **state)
{
    fx_t *f = *state;
    start(f);
    const char *ev = "{\"event_id\":\"d1\",\"type\":\"posted\",\"audience\":{\"users\":[\"ann\",\"ghost\"]},"
                     "\"channels\":[\"push\"],\"data\":{}}";
    int64_t dup0 = METRIC_VALUE(events_duplicate);
    produce_raw(f, "d1", ev);
    produce_raw(f, "d1", ev); /* published twice: delivered once */
    assert_int_equal(wait_status(f, "d1", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "d1", "ghost", CH_PUSH), ST_FAILED);
    for (int i = 0; i < 100 && METRIC_VALUE(events_duplicate) - dup0 < 1; i++) usleep(20000);
    assert_int_equal(METRIC_VALUE(events_duplicate) - dup0, 1);
    json_t *push = sandbox_lines(f, "push");
    assert_int_equal(json_array_size(push), 1);
    json_decref(push);
}

static void test_replay_redelivers_nothing_twice(void **state)
{
    fx_t *f = *state;
    start(f);
    produce_raw(f, "r1", "{\"event_id\":\"r1\",\"type\":\"posted\",\"audience\":{\"users\":[\"ann\",\"ben\"]},"
                         "\"channels\":[\"push\"],\"data\":{}}");
    assert_int_equal(wait_status(f, "r1", "ann", CH_PUSH), ST_SENT);
    assert_int_equal(wait_status(f, "r1", "ben", CH_PUSH), ST_SENT);
    /* Replay the dispatcher from earliest: the ids are known as sent, so no re-delivery. */
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    atomic_store(&f->app.stopping, 0);
    assert_int_equal(bus_group_reset(f->app.bus, "dispatch-push", topic_for_channel(CH_PUSH), 0), HR_OK);
    start(f);
    bool drained = false;
    for (int i = 0; i < 100 && !drained; i++) {
        bus_lag_t *lag = NULL;
        int n = 0, total = 0;
        assert_int_equal(bus_lag(f->app.bus, "dispatch-push", topic_for_channel(CH_PUSH), &lag, &n), HR_OK);
        for (int j = 0; j < n; j++) total += (int)lag[j].lag;
        free(lag);
        drained = total == 0; /* the replayed records were consumed again */
        if (!drained) usleep(50000);
    }
    assert_true(drained); /* committed: processed, so any re-delivery is already written */
    json_t *push = sandbox_lines(f, "push");
    assert_int_equal(json_array_size(push), 2);
    json_decref(push);
}

static const int many_partitions = 300;

/* The status sink gathers records of many partitions into one batch (up to
 * 8,192): a batch spanning more partitions than any fixed table in the stage
 * loop would hold must still be processed, not abort the process. */
static void test_batch_spanning_300_partitions(void **state)
{
    fx_t *f = *state;
    assert_int_equal(bus_partitions(f->app.bus, TOPIC_STATUS), 300);
    bus_batch_t b;
    buf_t enc;
    bus_batch_init(&b);
    buf_init(&enc, 0);
    for (int p = 0; p < 300; p++) {
        char ev[16], id[33];
        snprintf(ev, sizeof(ev), "m%d", p);
        notif_make_id(0, HSTR(ev), HSTR("ann"), CH_PUSH, id);
        notif_t n = {.kind = 2, .channel = CH_PUSH, .status = ST_SENT, .attempt = 1,
                     .created_at_ms = hclock_now_ms(), .status_at_ms = hclock_now_ms(),
                     .notification_id = HSTR(id), .event_id = HSTR(ev), .user_id = HSTR("ann"),
                     .category = HSTR("default"), .title = HSTR("t"), .body = HSTR("b"),
                     .address = HSTR("fcm:tok-ann"), .channel_msg_id = HSTR("x")};
        buf_reset(&enc);
        assert_int_equal(notif_encode(&n, &enc), HR_OK);
        assert_int_equal(bus_produce(f->app.bus, TOPIC_STATUS, p, "ann", 3, enc.data, enc.len, &b),
                         HR_OK);
    }
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    buf_release(&enc);
    start(f); /* everything is already there: the sink gathers all 300 partitions at once */
    for (int p = 0; p < 300; p++) {
        char ev[16];
        snprintf(ev, sizeof(ev), "m%d", p);
        assert_int_equal(wait_status(f, ev, "ann", CH_PUSH), ST_SENT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_topic_audience_locale_and_optout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_followers_and_channels_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_critical_overrides_only_required_categories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_carries_zone_quiet_hours_and_send_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records_go_to_dlq_and_partition_moves_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_sink_keeps_one_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_sink_nice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_redelivers_nothing_twice, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(test_batch_spanning_300_partitions, setup, teardown,
                                                 (void *)&many_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
