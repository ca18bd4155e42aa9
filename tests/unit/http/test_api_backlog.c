/*
 * HTTP API tests: admission control. POST /v1/events answers 429 with
 * Retry-After while fan-out's backlog on raw-events is above
 * ingest.max_backlog_records, /readyz says so (503 with a "backlog" check),
 * and both recover once fan-out's group commits. A second server with a bus
 * of its own, so the fixture's server is untouched.
 */
#include "api_fixture.h"

#include "model/names.h"
#include "stage/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const EVENT =
    "{\"event_id\":\"ev-backlog\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]},\"channels\":[\"push\"],\"content\":{\"title\":\"hi\",\"body\":\"b\"}}";

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Posts until the answer has this status (the backlog is cached for
 * INGEST_BACKLOG_REFRESH_MS) or 5 s pass. */
static void post_until(int port, hresp_t *r, long status)
{
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
        hreq_at(port, r, "POST", "/v1/events", NULL, EVENT);
        if (r->status == status || mono_ms() > deadline) return;
        hresp_clear(r);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void test_backlog_admission(void **state)
{
    hresp_t r;
    config_t cfg = F.cfg;
    cfg.ingest_max_backlog = 5;
    char path[256];
    snprintf(path, sizeof(path), "%s/bus-backlog", F.dir);
    bus_opts_t bo = {.backend = "embedded", .dir = path, .fsync = "never"};
    app_t app = {.cfg = &cfg, .store = F.app.store};
    assert_int_equal(bus_open(&bo, &app.bus), HR_OK);
    bus_topic_opts_t to = {.partitions = 1, .retention_ms = -1, .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(app.bus, TOPIC_RAW, &to), HR_OK);
    http_server_t *srv = NULL;
    assert_int_equal(http_start(&app, "127.0.0.1:0", &srv), HR_OK);
    int port = http_port(srv);

    /* below the bound: accepted */
    hreq_at(port, &r, "POST", "/v1/events", NULL, EVENT);
    assert_int_equal(r.status, 202);
    hresp_clear(&r);

    /* fan-out has not read anything: 10 records behind > 5 */
    bus_batch_t batch;
    bus_batch_init(&batch);
    for (int i = 0; i < 9; i++) assert_int_equal(bus_produce(app.bus, TOPIC_RAW, 0, NULL, 0, "{}", 2, &batch), HR_OK);
    assert_int_equal(bus_batch_wait(app.bus, &batch, 10000), HR_OK);
    bus_batch_release(&batch);
    int64_t refused = METRIC_VALUE(ingest_refused_backlog);
    post_until(port, &r, 429);
    assert_problem(&r, 429, NULL);
    assert_string_equal(r.retry_after, "1");
    hresp_clear(&r);
    assert_true(METRIC_VALUE(ingest_refused_backlog) > refused);

    hreq_at(port, &r, "GET", "/readyz", NULL, NULL);
    assert_problem(&r, 503, NULL);
    const char *b = jstr(json_object_get(r.json, "checks"), "backlog");
    assert_non_null(b);
    assert_true(strncmp(b, "over", 4) == 0);
    hresp_clear(&r);

    /* fan-out catches up (commits past everything): accepted again */
    const char *topics[] = {TOPIC_RAW};
    bus_consumer_t *c = NULL;
    assert_int_equal(bus_consumer_new(app.bus, GROUP_FANOUT, topics, 1, NULL, &c), HR_OK);
    bus_msg_t msgs[16];
    int got = 0;
    int64_t next = 0, deadline = mono_ms() + 5000;
    for (;;) { /* everything (posts accepted before the cache saw the backlog too) */
        int n = bus_poll(c, msgs, 16, 200);
        assert_true(n >= 0);
        if (n == 0 && got >= 10) break;
        got += n;
        if (n) next = msgs[n - 1].offset + 1;
        assert_true(mono_ms() < deadline);
    }
    assert_int_equal(bus_store_offset(c, TOPIC_RAW, 0, next), HR_OK);
    assert_int_equal(bus_commit(c), HR_OK);
    bus_consumer_close(c);
    post_until(port, &r, 202);
    assert_int_equal(r.status, 202);
    hresp_clear(&r);
    hreq_at(port, &r, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 200);
    b = jstr(json_object_get(r.json, "checks"), "backlog");
    assert_non_null(b);
    assert_true(strncmp(b, "ok", 2) == 0);
    hresp_clear(&r);

    http_stop(srv);
    bus_close(app.bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backlog_admission),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
