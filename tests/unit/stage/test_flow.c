/*
 * Dispatch policy flow tests: retry tiers, deferred notifications and the
 * scheduler, permanent errors that invalidate an address, and the DLQ's
 * list and redrive - the real stages on a real embedded bus and a real
 * SQLite store, in-process. The sandbox provider fails addresses that
 * contain "sandbox-fail-retry" (RETRY) or "sandbox-fail-permanent"
 * (PERMANENT, address invalid).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "app_env.h"
#include "core/buf.h"
#include "model/event.h"
#include "stage/dlq.h"
#include "stage/ingest.h"
#include "stage/scheduler.h"
#include "stage/stage.h"
#include "stage/topics.h"

typedef struct fx {
    char dir[64];
    config_t cfg;
    app_t app;
    pipeline_t *pipe;
    scheduler_t *sched;
} fx_t;

static void open_app(fx_t *f)
{
    env_open(&f->app, f->dir, 0);
}

static void stop_app(fx_t *f)
{
    pipeline_stop(f->pipe);
    f->pipe = NULL;
    scheduler_stop(f->sched);
    f->sched = NULL;
    env_close(&f->app);
    atomic_store(&f->app.stopping, 0);
}

static void put_user(fx_t *f, const char *id, const char *token, const char *email)
{
    user_t u = {.user_id = (char *)id, .locale = "en", .timezone = "UTC", .email = (char *)email,
                .ndevices = token ? 1 : 0};
    u.devices[0].platform = "fcm";
    u.devices[0].token = (char *)token;
    assert_int_equal(store_user_put(f->app.store, &u), HR_OK);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "flow");
    env_config(&f->cfg, f->dir, (const char *[]){"bus.partitions", "2", "bus.fsync", "never", "retry.delays_ms", "30,30,30", NULL});
    f->app.cfg = &f->cfg;
    open_app(f);
    put_user(f, "ann", "tok-ann", "ann@example.com");
    put_user(f, "ben", "tok-ben", NULL);
    put_user(f, "rita", "sandbox-fail-retry", NULL);
    put_user(f, "pam", "sandbox-fail-permanent", "pam@example.com");
    template_rec_t t1 = {.event_type = "posted", .channel = CH_PUSH, .locale = "en",
                         .title = "{{actor}} posted", .body = "hi"};
    template_rec_t t2 = {.event_type = "posted", .channel = CH_EMAIL, .locale = "en",
                         .title = "post", .body = "hi"};
    assert_int_equal(store_template_put(f->app.store, &t1), HR_OK);
    assert_int_equal(store_template_put(f->app.store, &t2), HR_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    stop_app(f);
    hclock_set_fake(0);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static void start(fx_t *f)
{
    assert_int_equal(pipeline_start(&f->app, &f->pipe), HR_OK);
    assert_int_equal(scheduler_start(&f->app, &f->sched), HR_OK);
}

static void produce(fx_t *f, const char *topic, int32_t part, const char *key, const void *v,
                    size_t len)
{
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(f->app.bus, topic, part, key, strlen(key), v, len, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

static void produce_event(fx_t *f, const char *id, const char *type, const char *user,
                          const char *channels)
{
    char *ev = xasprintf("{\"event_id\":\"%s\",\"type\":\"%s\",\"actor\":\"x\",\"audience\":"
                         "{\"users\":[\"%s\"]}%s%s,\"data\":{}}",
                         id, type, user, channels ? ",\"channels\":" : "", channels ? channels : "");
    produce(f, TOPIC_RAW, -1, id, ev, strlen(ev));
    free(ev);
}

/* The id fan-out gave (event, user, channel): ids start with the event's
 * accepted time (model/notif.h), which only events that came through
 * ingest have, so look the user's rows up and recompute the id from each
 * one's time part; the id of an event without the stamp (time part 0)
 * when there is none yet. */
static void find_id(fx_t *f, const char *ev, const char *user, channel_t ch, char id[33])
{
    notif_make_id(0, HSTR(ev), HSTR(user), ch, id);
    notif_row_t *rows = NULL;
    int n = 0;
    char *next = NULL;
    if (store_notif_list_user(f->app.store, user, NULL, 1000, &rows, &n, &next) != HR_OK) return;
    for (int i = 0; i < n; i++) {
        char want[33];
        int64_t ms = notif_id_time_ms(HSTR(rows[i].notification_id));
        if (ms < 0 || rows[i].channel != ch) continue;
        notif_make_id(ms * 1000, HSTR(ev), HSTR(user), ch, want);
        if (strcmp(want, rows[i].notification_id) == 0) memcpy(id, want, sizeof(want));
    }
    notif_rows_free(rows, n);
    free(next);
}

/* The stored status of (event, user, channel), ST__COUNT when unknown;
 * *nhist = history entries. */
static notif_status_t status_of(fx_t *f, const char *ev, const char *user, channel_t ch, int *nhist,
                                status_hist_t **hist)
{
    char id[33];
    find_id(f, ev, user, ch, id);
    notif_row_t row;
    status_hist_t *h = NULL;
    int nh = 0;
    *nhist = 0;
    if (store_notif_get(f->app.store, id, &row, &h, &nh) != HR_OK) return ST__COUNT;
    notif_status_t st = row.status;
    notif_row_clear(&row);
    *nhist = nh;
    if (hist) *hist = h;
    else status_hist_free(h, nh);
    return st;
}

/* Waits (up to 10 s) until the status is `want`. */
static bool wait_for(fx_t *f, const char *ev, const char *user, channel_t ch, notif_status_t want)
{
    int nh;
    for (int i = 0; i < 500; i++) {
        if (status_of(f, ev, user, ch, &nh, NULL) == want) return true;
        usleep(20000);
    }
    return false;
}

static int sandbox_count(fx_t *f, const char *channel, const char *user)
{
    char *path = xasprintf("%s/sandbox/%s.jsonl", f->dir, channel);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return 0;
    char line[8192], want[128];
    snprintf(want, sizeof(want), "\"user_id\":\"%s\"", user);
    int n = 0;
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, want)) n++;
    fclose(fp);
    return n;
}

/* The stored row's traceparent for (event, user, channel); "" when the row
 * has none, "?" when there is no row. Into out (56 bytes). */
static const char *trace_of(fx_t *f, const char *ev, const char *user, channel_t ch, char out[56])
{
    char id[33];
    find_id(f, ev, user, ch, id);
    notif_row_t row;
    if (store_notif_get(f->app.store, id, &row, NULL, NULL) != HR_OK) return "?";
    snprintf(out, 56, "%s", row.traceparent ? row.traceparent : "");
    notif_row_clear(&row);
    return out;
}

/* ---- tracing ---- */

#define TP_API "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_KAFKA "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define TP_OWN "00-11111111111111111111111111111111-2222222222222222-00"

/* The trace context an event came with reaches the stored notification
 * row through every hop: ingest (the API's publishing path, the header
 * already applied) -> raw-events -> fan-out -> notifications-push ->
 * dispatch -> notification-status -> the status sink; also through the
 * retry tiers to dead + DLQ, and for fan-out's own status records
 * (suppressed: no address). A Kafka record's traceparent header is used
 * when the event has none of its own (fed to fan-out as the Kafka backend
 * hands it over: the embedded bus has no headers), and loses to the
 * event's own. An event without any leaves the row without one. */
static void test_traceparent_every_hop(void **state)
{
    fx_t *f = *state;
    start(f);
    char buf[56];

    /* through the API's path: the event with its (header-given) context */
    static const char *const texts[] = {
        "{\"event_id\":\"t-api\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\",\"email\"],"
        "\"audience\":{\"users\":[\"ann\",\"ben\",\"rita\"]},\"traceparent\":\"" TP_API "\"}",
        "{\"event_id\":\"t-none\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}",
    };
    event_t evs[2];
    problem_t pb;
    for (int i = 0; i < 2; i++) assert_int_equal(event_parse(texts[i], strlen(texts[i]), &evs[i], &pb), HR_OK);
    assert_int_equal(ingest_publish(&f->app, evs, 2), HR_OK);
    for (int i = 0; i < 2; i++) event_clear(&evs[i]);

    assert_true(wait_for(f, "t-api", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "t-api", "ann", CH_EMAIL, ST_SENT));
    assert_true(wait_for(f, "t-api", "ben", CH_EMAIL, ST_SUPPRESSED)); /* fan-out's own record */
    assert_true(wait_for(f, "t-api", "rita", CH_PUSH, ST_DEAD));      /* retry tiers, DLQ */
    assert_true(wait_for(f, "t-none", "ann", CH_PUSH, ST_SENT));
    assert_string_equal(trace_of(f, "t-api", "ann", CH_PUSH, buf), TP_API);
    assert_string_equal(trace_of(f, "t-api", "ann", CH_EMAIL, buf), TP_API);
    assert_string_equal(trace_of(f, "t-api", "ben", CH_PUSH, buf), TP_API);
    assert_string_equal(trace_of(f, "t-api", "ben", CH_EMAIL, buf), TP_API);
    assert_string_equal(trace_of(f, "t-api", "rita", CH_PUSH, buf), TP_API);
    assert_string_equal(trace_of(f, "t-none", "ann", CH_PUSH, buf), "");
    /* the dead-lettered record carries it too (the binary record, in hex) */
    dlq_filter_t fl = {.reason = "retries exhausted"};
    dlq_entry_t *e = NULL;
    int n = 0;
    bool more = false;
    assert_int_equal(dlq_list(&f->app, &fl, &e, &n, &more), HR_OK);
    assert_int_equal(n, 1);
    const char *hex = json_string_value(json_object_get(e[0].rec, "payload_hex"));
    assert_non_null(hex);
    char want[2 * sizeof(TP_API)];
    for (size_t i = 0; i < sizeof(TP_API) - 1; i++) snprintf(want + 2 * i, 3, "%02x", (unsigned char)TP_API[i]);
    assert_non_null(strstr(hex, want));
    dlq_entries_free(e, n);

    /* Records as a Kafka consumer hands them over: a traceparent header */
    static const char *const raw[] = {
        "{\"event_id\":\"t-kafka\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}",
        "{\"event_id\":\"t-own\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]},\"traceparent\":\"" TP_OWN "\"}",
        "{\"event_id\":\"t-badhdr\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}",
    };
    static const char *const hdr[] = {TP_KAFKA, TP_KAFKA, "00-NOT-A-TRACE"};
    bus_msg_t msgs[3];
    for (int i = 0; i < 3; i++)
        msgs[i] = (bus_msg_t){.topic = TOPIC_RAW, .partition = 0, .offset = 1000 + i, .key = "k",
                              .key_len = 1, .value = raw[i], .value_len = strlen(raw[i]),
                              .traceparent = hdr[i], .traceparent_len = strlen(hdr[i])};
    void *st = fanout_stage.state_new(&f->app, &fanout_stage, 9);
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(fanout_stage.process(st, NULL, msgs, 3, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    fanout_stage.state_free(st);
    assert_true(wait_for(f, "t-kafka", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "t-own", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "t-badhdr", "ann", CH_PUSH, ST_SENT)); /* a bad header costs nothing */
    assert_string_equal(trace_of(f, "t-kafka", "ann", CH_PUSH, buf), TP_KAFKA);
    assert_string_equal(trace_of(f, "t-own", "ann", CH_PUSH, buf), TP_OWN);
    assert_string_equal(trace_of(f, "t-badhdr", "ann", CH_PUSH, buf), "");
}

/* ---- the two forms of raw-events ---- */

/* Waits (up to 10 s) for a DLQ entry whose reason contains `reason`;
 * returns how many there are. */
static int dlq_wait(fx_t *f, const char *reason, dlq_entry_t **e)
{
    dlq_filter_t fl = {.reason = reason};
    int n = 0;
    bool more;
    *e = NULL;
    for (int i = 0; i < 500 && n == 0; i++) {
        dlq_entries_free(*e, n);
        assert_int_equal(dlq_list(&f->app, &fl, e, &n, &more), HR_OK);
        if (n == 0) usleep(20000);
    }
    return n;
}

/* raw-events carries the API's binary event records and outside
 * producers' JSON side by side: both fan out; an event id seen in one form
 * is a duplicate in the other; a damaged record goes to the DLQ with the
 * decoder's reason while its partition moves on; an API event fan-out
 * cannot deliver is dead-lettered as its JSON rendition, which reads
 * (event_id, type, audience) and redrives like any event. */
static void test_record_and_json_events_fan_out(void **state)
{
    fx_t *f = *state;
    start(f);
    static const char api_text[] =
        "{\"event_id\":\"api-1\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\",\"ben\"]},\"data\":{\"k\":1}}";
    event_t ev;
    problem_t pb;
    assert_int_equal(event_parse(api_text, strlen(api_text), &ev, &pb), HR_OK);
    assert_int_equal(ingest_publish(&f->app, &ev, 1), HR_OK);
    assert_true(ev.accepted_at_us > 0);
    event_clear(&ev);
    produce_event(f, "json-1", "posted", "ann", "[\"push\"]");
    assert_true(wait_for(f, "api-1", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "api-1", "ben", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "json-1", "ann", CH_PUSH, ST_SENT));

    /* the API's id again as JSON, and the JSON one again through the API:
     * duplicates; then a marker on each one's partition (same key) */
    produce(f, TOPIC_RAW, -1, "api-1", api_text, strlen(api_text));
    static const char json_again[] =
        "{\"event_id\":\"json-1\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}";
    assert_int_equal(event_parse(json_again, strlen(json_again), &ev, &pb), HR_OK);
    assert_int_equal(ingest_publish(&f->app, &ev, 1), HR_OK);
    event_clear(&ev);

    /* a damaged record (cut short) on the marker's partition */
    static const char bad_text[] =
        "{\"event_id\":\"bad-1\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}";
    assert_int_equal(event_parse(bad_text, strlen(bad_text), &ev, &pb), HR_OK);
    buf_t rec;
    buf_init(&rec, 0);
    assert_int_equal(event_encode(&ev, &rec), HR_OK);
    event_clear(&ev);
    produce(f, TOPIC_RAW, -1, "api-1", rec.data, rec.len - 3);
    buf_release(&rec);
    static const char mark[] =
        "{\"event_id\":\"mark-1\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}";
    produce(f, TOPIC_RAW, -1, "api-1", mark, strlen(mark));
    static const char mark2[] =
        "{\"event_id\":\"mark-2\",\"type\":\"posted\",\"actor\":\"x\",\"channels\":[\"push\"],"
        "\"audience\":{\"users\":[\"ann\"]}}";
    produce(f, TOPIC_RAW, -1, "json-1", mark2, strlen(mark2));
    /* ann's pushes are dispatched in order (one partition): once both
     * markers are sent, whatever came before them on either raw-events
     * partition has been fanned out and delivered */
    assert_true(wait_for(f, "mark-1", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "mark-2", "ann", CH_PUSH, ST_SENT));
    dlq_entry_t *e;
    assert_int_equal(dlq_wait(f, "event record: truncated", &e), 1);
    assert_string_equal(json_string_value(json_object_get(e[0].rec, "topic")), TOPIC_RAW);
    assert_non_null(json_object_get(e[0].rec, "payload_hex")); /* the bytes as they were */
    dlq_entries_free(e, 1);
    assert_int_equal(sandbox_count(f, "push", "ann"), 4); /* api-1, json-1, mark-1, mark-2 */
    assert_int_equal(sandbox_count(f, "push", "ben"), 1);

    /* an API event of a type without templates: dead-lettered as JSON */
    static const char w_text[] =
        "{\"event_id\":\"api-w\",\"type\":\"welcome\",\"actor\":\"x\","
        "\"audience\":{\"users\":[\"ann\"]},\"data\":{\"n\":7}}";
    assert_int_equal(event_parse(w_text, strlen(w_text), &ev, &pb), HR_OK);
    assert_int_equal(ingest_publish(&f->app, &ev, 1), HR_OK);
    event_clear(&ev);
    assert_int_equal(dlq_wait(f, "no templates", &e), 1);
    const char *payload = json_string_value(json_object_get(e[0].rec, "payload"));
    assert_non_null(payload);
    json_t *j = json_loads(payload, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "event_id")), "api-w");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "welcome");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "n")), 7);
    assert_true(json_is_integer(json_object_get(j, "_accepted_at_us")));
    json_decref(j);
    dlq_entries_free(e, 1);
    template_rec_t t = {.event_type = "welcome", .channel = CH_PUSH, .locale = "en",
                        .title = "welcome", .body = "n={{data.n}}"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    int done = 0, skipped = 0;
    assert_int_equal(dlq_redrive_all(&f->app, "no templates", &done, &skipped), HR_OK);
    assert_int_equal(done, 1);
    assert_true(wait_for(f, "api-w", "ann", CH_PUSH, ST_SENT));
}

/* ---- retry tiers ---- */

static void test_retry_tiers_then_dlq(void **state)
{
    fx_t *f = *state;
#define PUSH_OUTCOME(res) METRIC_VALUE_AT(delivery_attempts, METRIC_CHANNEL_RESULT(CH_PUSH, METRIC_RESULT_##res))
    int64_t sent0 = PUSH_OUTCOME(SENT), failed0 = PUSH_OUTCOME(FAILED), dead0 = PUSH_OUTCOME(DEAD);
    uint64_t writes0 = atomic_load(&METRIC_HIST(status_write, 0)->total);
    start(f);
    produce_event(f, "e-retry", "posted", "rita", "[\"push\"]");
    produce_event(f, "e-ok", "posted", "ann", "[\"push\"]");
    assert_true(wait_for(f, "e-ok", "ann", CH_PUSH, ST_SENT));
    assert_true(wait_for(f, "e-retry", "rita", CH_PUSH, ST_DEAD));
    status_hist_t *h = NULL;
    int nh = 0;
    assert_int_equal(status_of(f, "e-retry", "rita", CH_PUSH, &nh, &h), ST_DEAD);
    /* pending? no: fan-out records nothing for a sent-on notification; the
     * dispatcher records one failed per attempt, then dead */
    assert_int_equal(nh, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h[i].status, ST_FAILED);
        assert_int_equal(h[i].attempt, i + 1);
    }
    assert_int_equal(h[3].status, ST_DEAD);
    assert_int_equal(h[3].attempt, 4);
    assert_non_null(strstr(h[3].detail, "retries exhausted after 4 attempts"));
    status_hist_free(h, nh);
    /* the outcomes per channel count the same story: ann sent, rita failed
     * three times, then dead */
    assert_int_equal(PUSH_OUTCOME(SENT) - sent0, 1);
    assert_int_equal(PUSH_OUTCOME(FAILED) - failed0, 3);
    assert_int_equal(PUSH_OUTCOME(DEAD) - dead0, 1);
#undef PUSH_OUTCOME
    /* the status rows read above were written in timed store transactions */
    assert_true(atomic_load(&METRIC_HIST(status_write, 0)->total) > writes0);

    dlq_filter_t fl = {.reason = "retries exhausted"};
    dlq_entry_t *e = NULL;
    int n = 0;
    bool more = true;
    assert_int_equal(dlq_list(&f->app, &fl, &e, &n, &more), HR_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(json_string_value(json_object_get(e[0].rec, "topic")), "notifications-push");
    dlq_entries_free(e, n);
    assert_int_equal(sandbox_count(f, "push", "rita"), 0);
}

static void test_retry_waits_until_due(void **state)
{
    fx_t *f = *state;
    char why[256];
    assert_int_equal(config_set(&f->cfg, "retry.delays_ms", "60000,60000,60000", why, sizeof(why)), HR_OK);
    int64_t t0 = 1800000000000;
    hclock_set_fake(t0);
    start(f);
    produce_event(f, "e-wait", "posted", "rita", "[\"push\"]");
    int nh = 0;
    for (int i = 0; i < 500 && nh < 1; i++) {
        status_of(f, "e-wait", "rita", CH_PUSH, &nh, NULL);
        usleep(10000);
    }
    assert_int_equal(nh, 1);
    /* not due: the tier's partition is paused, nothing comes back */
    hclock_set_fake(t0 + 59000);
    usleep(400000);
    assert_int_equal(status_of(f, "e-wait", "rita", CH_PUSH, &nh, NULL), ST_FAILED);
    assert_int_equal(nh, 1);
    /* due: the second attempt follows within a poll */
    hclock_set_fake(t0 + 60001);
    for (int i = 0; i < 500 && nh < 2; i++) {
        status_of(f, "e-wait", "rita", CH_PUSH, &nh, NULL);
        usleep(10000);
    }
    assert_int_equal(nh, 2);
}

/* ---- deferred notifications ---- */

static void produce_due(fx_t *f, const char *ev, const char *user, int64_t due)
{
    char id[33], addr[64];
    notif_make_id(0, HSTR(ev), HSTR(user), CH_PUSH, id);
    snprintf(addr, sizeof(addr), "fcm:tok-%s", user);
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_PUSH, .priority = PRIO_NORMAL,
                 .status = ST_PENDING, .attempt = 1, .created_at_ms = hclock_now_ms(),
                 .due_at_ms = due, .notification_id = HSTR(id), .event_id = HSTR(ev),
                 .user_id = HSTR(user), .category = HSTR("news"), .title = HSTR("t"),
                 .body = HSTR("b"), .address = HSTR(addr), .platform = HSTR("fcm"),
                 .quiet_start_min = NOTIF_QUIET_NONE, .quiet_end_min = NOTIF_QUIET_NONE};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&n, &b), HR_OK);
    produce(f, "notifications-push", 0, user, b.data, b.len); /* one partition, A before B */
    buf_release(&b);
}

static void test_deferred_survives_restart_and_does_not_block(void **state)
{
    fx_t *f = *state;
    int64_t t0 = 1800000000000;
    hclock_set_fake(t0);
    start(f);
    produce_due(f, "s1", "ann", t0 + 8 * 3600000LL); /* eight hours */
    produce_due(f, "s1", "ben", t0 + 60000);         /* one minute, behind it */
    assert_true(wait_for(f, "s1", "ann", CH_PUSH, ST_DEFERRED));
    assert_true(wait_for(f, "s1", "ben", CH_PUSH, ST_DEFERRED));
    int64_t due = 0;
    assert_int_equal(store_sched_next(f->app.store, &due), HR_OK);
    assert_true(due == t0 + 60000);
    /* not early */
    hclock_set_fake(t0 + 59000);
    usleep(300000);
    assert_int_equal(sandbox_count(f, "push", "ben"), 0);
    /* B's minute is up: B goes, A's eight hours do not hold it back */
    hclock_set_fake(t0 + 60000);
    assert_true(wait_for(f, "s1", "ben", CH_PUSH, ST_SENT));
    assert_int_equal(sandbox_count(f, "push", "ben"), 1);
    int nh;
    assert_int_equal(status_of(f, "s1", "ann", CH_PUSH, &nh, NULL), ST_DEFERRED);
    assert_int_equal(sandbox_count(f, "push", "ann"), 0);

    /* a restart keeps A's deferral */
    stop_app(f);
    open_app(f);
    start(f);
    hclock_set_fake(t0 + 4 * 3600000LL);
    usleep(300000);
    assert_int_equal(sandbox_count(f, "push", "ann"), 0);
    hclock_set_fake(t0 + 8 * 3600000LL + 1);
    assert_true(wait_for(f, "s1", "ann", CH_PUSH, ST_SENT));
    assert_int_equal(sandbox_count(f, "push", "ann"), 1);
    assert_int_equal(sandbox_count(f, "push", "ben"), 1);
    assert_int_equal(store_sched_next(f->app.store, &due), HR_OK);
    assert_true(due == INT64_MAX);
}

/* ---- permanent errors ---- */

static void test_permanent_invalidates_address(void **state)
{
    fx_t *f = *state;
    start(f);
    produce_event(f, "e-p1", "posted", "pam", "[\"push\",\"email\"]");
    assert_true(wait_for(f, "e-p1", "pam", CH_PUSH, ST_DEAD));
    assert_true(wait_for(f, "e-p1", "pam", CH_EMAIL, ST_SENT));
    bool bad = false;
    assert_int_equal(store_address_is_invalid(f->app.store, "pam", CH_PUSH, "fcm:sandbox-fail-permanent", &bad),
                     HR_OK);
    assert_true(bad);
    user_t u;
    assert_int_equal(store_user_get(f->app.store, "pam", &u), HR_OK);
    assert_int_equal(u.ndevices, 0);
    assert_string_equal(u.email, "pam@example.com");
    store_user_clear(&u);
    dlq_filter_t fl = {.reason = "address invalid"};
    dlq_entry_t *e = NULL;
    int n = 0;
    bool more;
    assert_int_equal(dlq_list(&f->app, &fl, &e, &n, &more), HR_OK);
    assert_int_equal(n, 1);
    dlq_entries_free(e, n);
    int64_t sent_before = METRIC_VALUE(notifs_sent);
    /* a later event does not attempt the dead address */
    produce_event(f, "e-p2", "posted", "pam", "[\"push\",\"email\"]");
    assert_true(wait_for(f, "e-p2", "pam", CH_PUSH, ST_SUPPRESSED));
    assert_true(wait_for(f, "e-p2", "pam", CH_EMAIL, ST_SENT));
    assert_int_equal(METRIC_VALUE(notifs_sent) - sent_before, 1);
}

/* A user with three devices gets one push notification per device, each
 * to its own platform, and a dead token takes only itself off the user. */
static void test_push_per_device(void **state)
{
    fx_t *f = *state;
    user_t u = {.user_id = "dev3", .locale = "en", .timezone = "UTC", .ndevices = 3};
    u.devices[0] = (device_t){"apns", "aa11"};
    u.devices[1] = (device_t){"fcm", "sandbox-fail-permanent"};
    u.devices[2] = (device_t){"fcm", "proj:tok-3"};
    assert_int_equal(store_user_put(f->app.store, &u), HR_OK);
    start(f);
    produce_event(f, "e-d1", "posted", "dev3", "[\"push\"]");
    /* the first device keeps the (event, user, channel) id */
    assert_true(wait_for(f, "e-d1", "dev3", CH_PUSH, ST_SENT));
    char id1[33], id2[33];
    notif_make_device_id(0, HSTR("e-d1"), HSTR("dev3"), CH_PUSH, HSTR("fcm:sandbox-fail-permanent"), id1);
    notif_make_device_id(0, HSTR("e-d1"), HSTR("dev3"), CH_PUSH, HSTR("fcm:proj:tok-3"), id2);
    notif_row_t row;
    notif_status_t st1 = ST__COUNT, st2 = ST__COUNT;
    for (int i = 0; i < 500 && (st1 != ST_DEAD || st2 != ST_SENT); i++) {
        usleep(20000);
        if (store_notif_get(f->app.store, id1, &row, NULL, NULL) == HR_OK) {
            st1 = row.status;
            notif_row_clear(&row);
        }
        if (store_notif_get(f->app.store, id2, &row, NULL, NULL) == HR_OK) {
            st2 = row.status;
            assert_string_equal(row.address, "fcm:proj:tok-3");
            notif_row_clear(&row);
        }
    }
    assert_int_equal(st1, ST_DEAD);
    assert_int_equal(st2, ST_SENT);
    assert_int_equal(sandbox_count(f, "push", "dev3"), 2);
    /* only the dead device left the user */
    user_t back;
    assert_int_equal(store_user_get(f->app.store, "dev3", &back), HR_OK);
    assert_int_equal(back.ndevices, 2);
    assert_string_equal(back.devices[0].token, "aa11");
    assert_string_equal(back.devices[1].token, "proj:tok-3");
    store_user_clear(&back);
}

/* ---- the in-app inbox ---- */

/* An event with an in-app template lands in the user's inbox through the
 * default in-app provider (inapp), completes as sent, and writes no
 * sandbox line; a user the event does not name gets nothing. */
static void test_inapp_lands_in_inbox(void **state)
{
    fx_t *f = *state;
    template_rec_t t = {.event_type = "liked", .channel = CH_INAPP, .locale = "en",
                        .title = "{{actor}} liked your post", .body = "see it"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    start(f);
    produce_event(f, "e-in1", "liked", "ann", "[\"inapp\"]");
    assert_true(wait_for(f, "e-in1", "ann", CH_INAPP, ST_SENT));
    char id[33];
    find_id(f, "e-in1", "ann", CH_INAPP, id);
    notif_row_t row;
    assert_int_equal(store_notif_get(f->app.store, id, &row, NULL, NULL), HR_OK);
    char msg[64];
    snprintf(msg, sizeof(msg), "inapp-%s", id);
    assert_string_equal(row.channel_msg_id, msg);
    notif_row_clear(&row);

    inbox_item_t *items = NULL;
    int n = 0;
    char *next = NULL;
    assert_int_equal(store_inbox_list(f->app.store, "ann", INBOX_ACTIVE, NULL, 10, &items, &n, &next),
                     HR_OK);
    assert_int_equal(n, 1);
    assert_null(next);
    assert_string_equal(items[0].notification_id, id);
    assert_string_equal(items[0].user_id, "ann");
    assert_string_equal(items[0].event_id, "e-in1");
    assert_string_equal(items[0].title, "x liked your post");
    assert_string_equal(items[0].body, "see it");
    assert_true(items[0].created_at_ms > 0);
    assert_int_equal(items[0].read_at_ms, 0);
    inbox_items_free(items, n);
    int64_t unread = 0, unseen = 0;
    assert_int_equal(store_inbox_counts(f->app.store, "ann", &unread, &unseen), HR_OK);
    assert_int_equal(unread, 1);
    assert_int_equal(unseen, 1);
    assert_int_equal(store_inbox_counts(f->app.store, "ben", &unread, &unseen), HR_OK);
    assert_int_equal(unread, 0);
    assert_int_equal(sandbox_count(f, "inapp", "ann"), 0);
}

/* A push record from before one-notification-per-device lists every
 * device; a dead token in it must not take the user's devices away. */
static void test_legacy_device_list_not_invalidated(void **state)
{
    fx_t *f = *state;
    start(f);
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_PUSH, .status = ST_PENDING, .attempt = 1,
                 .created_at_ms = hclock_now_ms(), .notification_id = HSTR("legacy-1"),
                 .event_id = HSTR("e-legacy"), .user_id = HSTR("pam"), .category = HSTR("default"),
                 .title = HSTR("t"), .body = HSTR("b"),
                 .address = HSTR("fcm:sandbox-fail-permanent,fcm:other-device"),
                 .platform = HSTR("fcm"), .quiet_start_min = NOTIF_QUIET_NONE,
                 .quiet_end_min = NOTIF_QUIET_NONE};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&n, &b), HR_OK);
    produce(f, topic_for_channel(CH_PUSH), -1, "pam", b.data, b.len);
    buf_release(&b);
    notif_row_t row;
    bool dead = false;
    for (int i = 0; i < 500 && !dead; i++) {
        usleep(20000);
        if (store_notif_get(f->app.store, "legacy-1", &row, NULL, NULL) == HR_OK) {
            dead = row.status == ST_DEAD;
            notif_row_clear(&row);
        }
    }
    assert_true(dead);
    user_t u;
    assert_int_equal(store_user_get(f->app.store, "pam", &u), HR_OK);
    assert_int_equal(u.ndevices, 1); /* still there */
    store_user_clear(&u);
}

/* ---- DLQ ---- */

static void test_dlq_redrive_event_after_template_added(void **state)
{
    fx_t *f = *state;
    start(f);
    produce_event(f, "e-w", "welcome", "ann", NULL); /* no channels: the type's templates decide */
    dlq_entry_t *e = NULL;
    int n = 0;
    bool more;
    dlq_filter_t fl = {.reason = "no templates"};
    for (int i = 0; i < 200 && n == 0; i++) {
        dlq_entries_free(e, n);
        assert_int_equal(dlq_list(&f->app, &fl, &e, &n, &more), HR_OK);
        if (n == 0) usleep(20000);
    }
    assert_int_equal(n, 1);
    assert_false(e[0].redriven);
    char id[48];
    snprintf(id, sizeof(id), "%s", e[0].id);
    dlq_entries_free(e, n);

    template_rec_t t = {.event_type = "welcome", .channel = CH_PUSH, .locale = "en",
                        .title = "welcome", .body = "hello"};
    assert_int_equal(store_template_put(f->app.store, &t), HR_OK);
    int done = 0, skipped = 0;
    assert_int_equal(dlq_redrive_all(&f->app, "no templates", &done, &skipped), HR_OK);
    assert_int_equal(done, 1);
    assert_int_equal(skipped, 0);
    assert_true(wait_for(f, "e-w", "ann", CH_PUSH, ST_SENT));
    assert_int_equal(sandbox_count(f, "push", "ann"), 1);
    /* --all does not redrive it twice; the entry says it was redriven */
    assert_int_equal(dlq_redrive_all(&f->app, NULL, &done, &skipped), HR_OK);
    assert_int_equal(done, 0);
    dlq_filter_t all = {0};
    assert_int_equal(dlq_list(&f->app, &all, &e, &n, &more), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].id, id);
    assert_true(e[0].redriven);
    dlq_entries_free(e, n);
    /* an explicit id is redriven again; the dispatcher does not send twice */
    char why[256];
    assert_int_equal(dlq_redrive_id(&f->app, id, why, sizeof(why)), HR_OK);
    assert_int_equal(dlq_redrive_id(&f->app, "0-999", why, sizeof(why)), HR_NOTFOUND);
    assert_int_equal(dlq_redrive_id(&f->app, "x", why, sizeof(why)), HR_INVALID);
    usleep(500000);
    assert_int_equal(sandbox_count(f, "push", "ann"), 1);
}

static void test_dlq_since_parse(void **state)
{
    UNUSED(state);
    int64_t t;
    assert_true(dlq_since_parse("1700000000000", 0, &t));
    assert_true(t == 1700000000000);
    assert_true(dlq_since_parse("2h", 10000000, &t));
    assert_true(t == 10000000 - 7200000);
    assert_true(dlq_since_parse("2026-11-30T02:00:00Z", 0, &t));
    assert_true(t == 1796004000000);
    assert_false(dlq_since_parse("2x", 0, &t));
    assert_false(dlq_since_parse("", 0, &t));
    int32_t p;
    int64_t o;
    assert_true(dlq_id_parse("3-42", &p, &o));
    assert_int_equal(p, 3);
    assert_true(o == 42);
    assert_false(dlq_id_parse("3-", &p, &o));
    assert_false(dlq_id_parse("-1-2", &p, &o));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_tiers_then_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traceparent_every_hop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_and_json_events_fan_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_waits_until_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_survives_restart_and_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_per_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_device_list_not_invalidated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inapp_lands_in_inbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_invalidates_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_redrive_event_after_template_added, setup, teardown),
        cmocka_unit_test(test_dlq_since_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
