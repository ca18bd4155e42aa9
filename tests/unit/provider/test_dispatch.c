/*
 * Dispatch (src/stage/dispatch.c) through a real provider: the webhook
 * provider against the scripted local server, on a real embedded bus and
 * SQLite store. Checks how result classes become statuses and DLQ records,
 * and that a FATAL result holds the batch back without dead-lettering.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_http.h"

#include "app.h"
#include "app_env.h"
#include "model/notif.h"
#include "stage/stage.h"
#include "stage/topics.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dfx {
    char dir[64];
    config_t cfg;
    app_t app;
    fake_http_t *srv;
    stage_def_t def;
    void *state;
} dfx_t;

static int setup(void **st)
{
    dfx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "disp");
    f->srv = fake_http_start();
    assert_non_null(f->srv);
    env_config(&f->cfg, f->dir,
               (const char *[]){"bus.partitions", "1", "bus.fsync", "never", "channel.webhook.providers", "hook",
                                "provider.hook.type", "webhook", "provider.hook.url",
                                fake_http_url(f->srv, "/hook"), "provider.hook.max_in_flight", "4", NULL});
    f->app.cfg = &f->cfg;
    env_open(&f->app, f->dir, 0);
    dispatch_stage_def(CH_WEBHOOK, &f->def);
    f->state = f->def.state_new(&f->app, &f->def, 0);
    assert_non_null(f->state);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    dfx_t *f = *st;
    f->def.state_free(f->state);
    env_close(&f->app);
    fake_http_stop(f->srv);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

/* Encodes notifications with ids <prefix>-<i> and the given titles (the
 * server's script) into messages; NULL title = an undecodable record. */
static int make_msgs(const char *prefix, const char *const *titles, int n, buf_t *enc,
                     bus_msg_t *msgs, char ids[][32])
{
    size_t at[16];
    for (int i = 0; i < n; i++) {
        at[i] = enc->len;
        if (!titles[i]) {
            buf_append_str(enc, "garbage");
            continue;
        }
        snprintf(ids[i], 32, "%s-%d", prefix, i);
        notif_t x;
        memset(&x, 0, sizeof(x));
        x.kind = REC_NOTIFICATION;
        x.channel = CH_WEBHOOK;
        x.notification_id = HSTR(ids[i]);
        x.event_id = HSTR("ev");
        x.user_id = HSTR("ann");
        x.title = HSTR(titles[i]);
        x.address = HSTR("https://example.com/hook");
        assert_int_equal(notif_encode(&x, enc), HR_OK);
    }
    for (int i = 0; i < n; i++) {
        size_t end = i + 1 < n ? at[i + 1] : enc->len;
        msgs[i] = (bus_msg_t){.topic = topic_for_channel(CH_WEBHOOK), .partition = 0, .offset = i,
                              .key = "ann", .key_len = 3, .value = enc->data + at[i],
                              .value_len = end - at[i]};
    }
    return n;
}

/* Runs process on msgs and waits for its outputs. */
static hr_t process(dfx_t *f, bus_msg_t *msgs, int n)
{
    bus_batch_t b;
    bus_batch_init(&b);
    hr_t r = f->def.process(f->state, NULL, msgs, n, &b);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    return r;
}

/* Status records whose id starts with prefix: status per index. */
static void read_statuses(dfx_t *f, const char *group, const char *prefix, int want, int *status,
                          char msg_ids[][64])
{
    const char *topics[] = {TOPIC_STATUS};
    bus_consumer_t *c;
    assert_int_equal(bus_consumer_new(f->app.bus, group, topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[32];
    int got = 0;
    for (int tries = 0; tries < 40 && got < want; tries++) {
        int n = bus_poll(c, m, 32, 50);
        for (int i = 0; i < n; i++) {
            notif_t x;
            assert_int_equal(notif_decode(m[i].value, m[i].value_len, &x), HR_OK);
            size_t pl = strlen(prefix);
            if (x.notification_id.n <= pl + 1 || memcmp(x.notification_id.p, prefix, pl) != 0) continue;
            int idx = atoi(x.notification_id.p + pl + 1);
            assert_int_equal(status[idx], -1); /* one status each */
            status[idx] = (int)x.status;
            snprintf(msg_ids[idx], 64, "%.*s", (int)x.channel_msg_id.n, x.channel_msg_id.p);
            got++;
        }
    }
    bus_consumer_close(c);
    assert_int_equal(got, want);
}

static int dlq_count(dfx_t *f, const char *group, json_t **last)
{
    const char *topics[] = {TOPIC_DLQ};
    bus_consumer_t *c;
    assert_int_equal(bus_consumer_new(f->app.bus, group, topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[32];
    int total = 0;
    for (int tries = 0; tries < 10; tries++) {
        int n = bus_poll(c, m, 32, 30);
        for (int i = 0; i < n; i++) {
            json_error_t err;
            json_t *o = json_loadb(m[i].value, m[i].value_len, JSON_ALLOW_NUL, &err);
            if (!o) fail_msg("DLQ record is not JSON (%s): %.*s", err.text, (int)m[i].value_len, (const char *)m[i].value);
            json_array_append_new(*last, o);
            total++;
        }
    }
    bus_consumer_close(c);
    return total;
}

static void test_classes_to_statuses(void **st)
{
    dfx_t *f = *st;
    const char *titles[] = {"status=200 msgid=prov-0", "status=503", "status=429 retry-after=3",
                            "status=400", NULL, "status=200"};
    int n = (int)ARRAY_LEN(titles);
    buf_t enc;
    buf_init(&enc, 0);
    bus_msg_t msgs[8];
    char ids[8][32];
    make_msgs("a", titles, n, &enc, msgs, ids);
    assert_int_equal(process(f, msgs, n), HR_OK);

    int status[8];
    char msg_ids[8][64];
    for (int i = 0; i < 8; i++) status[i] = -1;
    read_statuses(f, "t-status-a", "a", 5, status, msg_ids);
    assert_int_equal(status[0], ST_SENT);
    assert_string_equal(msg_ids[0], "prov-0");
    assert_int_equal(status[1], ST_FAILED);
    assert_string_equal(msg_ids[1], "");
    assert_int_equal(status[2], ST_FAILED);
    assert_int_equal(status[3], ST_DEAD);
    assert_int_equal(status[4], -1); /* undecodable: DLQ only */
    assert_int_equal(status[5], ST_SENT);
    assert_string_equal(msg_ids[5], "a-5");

    json_t *dlq = json_array();
    assert_int_equal(dlq_count(f, "t-dlq-a", &dlq), 2);
    int undecodable = 0, bad_request = 0;
    for (size_t i = 0; i < json_array_size(dlq); i++) {
        const char *reason = json_string_value(json_object_get(json_array_get(dlq, i), "reason"));
        undecodable += strcmp(reason, "undecodable notification") == 0;
        bad_request += strcmp(reason, "HTTP 400 Bad Request") == 0;
    }
    assert_int_equal(undecodable, 1);
    assert_int_equal(bad_request, 1);
    json_decref(dlq);
    buf_release(&enc);
}

/* FATAL: the batch is offered again later (HR_LATER), only the delivered
 * notification gets a status, nothing is dead-lettered. */
static void test_fatal_holds_batch(void **st)
{
    dfx_t *f = *st;
    const char *titles[] = {"status=200", "status=401", "status=503", "status=404"};
    int n = (int)ARRAY_LEN(titles);
    buf_t enc;
    buf_init(&enc, 0);
    bus_msg_t msgs[8];
    char ids[8][32];
    make_msgs("b", titles, n, &enc, msgs, ids);
    json_t *dlq = json_array();
    int dlq_before = dlq_count(f, "t-dlq-b0", &dlq);
    assert_int_equal(process(f, msgs, n), HR_LATER);

    int status[8];
    char msg_ids[8][64];
    for (int i = 0; i < 8; i++) status[i] = -1;
    read_statuses(f, "t-status-b", "b", 1, status, msg_ids);
    assert_int_equal(status[0], ST_SENT);
    for (int i = 1; i < n; i++) assert_int_equal(status[i], -1);
    assert_int_equal(dlq_count(f, "t-dlq-b1", &dlq), dlq_before);
    json_decref(dlq);
    buf_release(&enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classes_to_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_holds_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
