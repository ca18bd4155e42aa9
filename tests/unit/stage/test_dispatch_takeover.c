/*
 * Dispatch's "already sent?" knowledge after a takeover (src/stage/
 * dispatch.c): a notification whose status record is on notification-status
 * but not in the store yet (the sink lags) is not sent again; neither is a
 * copy fan-out produced again, nor an id twice in one batch. Real embedded
 * bus, SQLite store and the sandbox provider (file mode): what went out is
 * what <data_dir>/sandbox/push.jsonl holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "app.h"
#include "app_env.h"
#include "model/notif.h"
#include "stage/stage.h"
#include "stage/topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tfx {
    char dir[64];
    config_t cfg;
    app_t app;
    stage_def_t def;
    void *state;
    buf_t enc;
} tfx_t;

/* *st may point to the partition count of notification-status (the other
 * topics get 1); NULL = 1. */
static int setup(void **st)
{
    int status_partitions = *st ? *(const int *)*st : 1;
    tfx_t *f = calloc(1, sizeof(*f));
    env_mkdir(f->dir, "takeover");
    env_config(&f->cfg, f->dir, (const char *[]){"bus.partitions", "1", NULL});
    f->app.cfg = &f->cfg;
    env_open(&f->app, f->dir, status_partitions);
    buf_init(&f->enc, 0);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    tfx_t *f = *st;
    if (f->state) f->def.state_free(f->state);
    buf_release(&f->enc);
    env_close(&f->app);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    free(f);
    return 0;
}

static notif_t make(const char *ev, channel_t ch, char id[33])
{
    notif_make_id(0, HSTR(ev), HSTR("ann"), ch, id);
    notif_t x;
    memset(&x, 0, sizeof(x));
    x.kind = REC_NOTIFICATION;
    x.channel = ch;
    x.notification_id = (hstr_t){id, 32};
    x.event_id = HSTR(ev);
    x.user_id = HSTR("ann");
    x.title = HSTR("hi");
    x.address = HSTR("tok");
    x.platform = HSTR("fcm");
    x.quiet_start_min = x.quiet_end_min = NOTIF_QUIET_NONE;
    return x;
}

/* A status record "sent" for the notification, produced (and written) to
 * notification-status as a dispatcher before a crash would have. */
static void put_status(tfx_t *f, const char *ev, channel_t ch, notif_status_t st)
{
    char id[33];
    notif_t x = make(ev, ch, id);
    x.kind = REC_STATUS;
    x.status = st;
    buf_reset(&f->enc);
    assert_int_equal(notif_encode(&x, &f->enc), HR_OK);
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(bus_produce(f->app.bus, TOPIC_STATUS, -1, "ann", 3, f->enc.data, f->enc.len, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
}

/* Runs dispatch on notifications for the events evs[0..n) at offsets
 * first.. of notifications-push/0 and waits for its outputs. */
static void run(tfx_t *f, const char *const *evs, int n, int64_t first)
{
    buf_t enc;
    buf_init(&enc, 0);
    size_t at[16];
    char ids[16][33];
    for (int i = 0; i < n; i++) {
        at[i] = enc.len;
        notif_t x = make(evs[i], CH_PUSH, ids[i]);
        assert_int_equal(notif_encode(&x, &enc), HR_OK);
    }
    bus_msg_t msgs[16];
    for (int i = 0; i < n; i++) {
        size_t end = i + 1 < n ? at[i + 1] : enc.len;
        msgs[i] = (bus_msg_t){.topic = topic_for_channel(CH_PUSH), .partition = 0, .offset = first + i,
                              .key = "ann", .key_len = 3, .value = enc.data + at[i],
                              .value_len = end - at[i]};
    }
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(f->def.process(f->state, NULL, msgs, n, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    buf_release(&enc);
}

/* Lines of the sandbox file holding the notification of event ev. */
static int delivered(tfx_t *f, const char *ev)
{
    char id[33];
    notif_make_id(0, HSTR(ev), HSTR("ann"), CH_PUSH, id);
    char *path = xasprintf("%s/sandbox/push.jsonl", f->dir);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), fp)) n += strstr(line, id) != NULL;
    fclose(fp);
    return n;
}

static void test_status_tail_skips(void **st)
{
    tfx_t *f = *st;
    /* Before the takeover: e1 was sent (its status is on the bus, the sink
     * has not written it), e2 failed, e4 was sent on another channel. */
    put_status(f, "e1", CH_PUSH, ST_SENT);
    put_status(f, "e2", CH_PUSH, ST_FAILED);
    put_status(f, "e4", CH_EMAIL, ST_SENT);
    bool sent = true;
    char id[33];
    notif_make_id(0, HSTR("e1"), HSTR("ann"), CH_PUSH, id);
    assert_int_equal(store_notif_sent(f->app.store, id, &sent), HR_OK);
    assert_false(sent); /* the store does not know */

    dispatch_stage_def(CH_PUSH, &f->def);
    f->state = f->def.state_new(&f->app, &f->def, 0);
    f->def.partition_changed(f->state, topic_for_channel(CH_PUSH), 0, true);
    /* e3 twice in one batch (fan-out ran the event twice) */
    const char *evs[] = {"e1", "e2", "e3", "e4", "e3"};
    run(f, evs, 5, 0);
    assert_int_equal(delivered(f, "e1"), 0);
    assert_int_equal(delivered(f, "e2"), 1); /* failed: tried again */
    assert_int_equal(delivered(f, "e3"), 1);
    assert_int_equal(delivered(f, "e4"), 1); /* sent on email, not on push */

    /* A copy arriving later (appended after the takeover, so the store is
     * not asked): known from this worker's own deliveries. */
    const char *again[] = {"e3", "e4", "e5"};
    run(f, again, 3, 100);
    assert_int_equal(delivered(f, "e3"), 1);
    assert_int_equal(delivered(f, "e4"), 1);
    assert_int_equal(delivered(f, "e5"), 1);
}

/* A new worker (after a crash) learns the previous one's deliveries from
 * notification-status, which the previous worker wrote. */
static void test_next_owner_learns(void **st)
{
    tfx_t *f = *st;
    dispatch_stage_def(CH_PUSH, &f->def);
    f->state = f->def.state_new(&f->app, &f->def, 0);
    const char *evs[] = {"a1", "a2"};
    run(f, evs, 2, 0);
    f->def.state_free(f->state);
    f->state = f->def.state_new(&f->app, &f->def, 0);
    f->def.partition_changed(f->state, topic_for_channel(CH_PUSH), 0, true);
    const char *again[] = {"a1", "a2", "a3"};
    run(f, again, 3, 0);
    assert_int_equal(delivered(f, "a1"), 1);
    assert_int_equal(delivered(f, "a2"), 1);
    assert_int_equal(delivered(f, "a3"), 1);
}

int main(void)
{
    static const int three = 3; /* status partitions differ: every one is read */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_tail_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_owner_learns, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(test_status_tail_skips, setup, teardown, (void *)&three),
        cmocka_unit_test_prestate_setup_teardown(test_next_owner_learns, setup, teardown, (void *)&three),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
