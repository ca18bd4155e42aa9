/*
 * HTTP API tests: a full disk under the embedded bus. POST /v1/events
 * answers 503 with Retry-After and the reason, /readyz says the bus is
 * degraded, and both recover once there is space again. The bus lives on a
 * 1 MiB tmpfs the test mounts (skipped, with the reason, where mounting is
 * not allowed); a second server of its own, so the fixture's is untouched.
 */
#include "api_fixture.h"

#include "core/log.h"
#include "model/names.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static bool mounted;

/* Unmounts even when an assertion ended the test early. */
static int unmount(void **state)
{
    if (mounted && umount2(dir, MNT_DETACH) != 0) fprintf(stderr, "umount %s: %s\n", dir, strerror(errno));
    mounted = false;
    return 0;
}

static void test_disk_full(void **state)
{
    snprintf(dir, sizeof(dir), "%s/tmpfs", F.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    mounted = mount("tmpfs", dir, "tmpfs", 0, "size=1m") == 0;
    if (!mounted) {
        fprintf(stderr, "cannot mount a tmpfs (%s): the disk-full test is skipped\n", strerror(errno));
        skip();
    }
    hresp_t r;
    config_t cfg = F.cfg;
    cfg.ingest_max_backlog = 0;
    bus_opts_t bo = {.backend = "embedded", .dir = dir, .fsync = "never"};
    app_t app = {.cfg = &cfg, .store = F.app.store};
    assert_int_equal(bus_open(&bo, &app.bus), HR_OK);
    bus_topic_opts_t to = {.partitions = 1, .retention_ms = -1, .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(app.bus, TOPIC_RAW, &to), HR_OK);
    http_server_t *srv = NULL;
    assert_int_equal(http_start(&app, "127.0.0.1:0", &srv), HR_OK);
    int port = http_port(srv);
    /* 40 events of ~300 bytes: more than the free part of a page */
    char ev[16384];
    size_t len = 0;
    len += (size_t)snprintf(ev + len, sizeof(ev) - len, "[");
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(ev + len, sizeof(ev) - len,
                                "%s{\"event_id\":\"ev-full-%d\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]},"
                                "\"channels\":[\"push\"],\"content\":{\"title\":\"hi\",\"body\":\"b\"},"
                                "\"data\":{\"pad\":\"%0200d\"}}",
                                i ? "," : "", i, 0);
    snprintf(ev + len, sizeof(ev) - len, "]");

    hreq_at(port, &r, "POST", "/v1/events", NULL, ev);
    assert_int_equal(r.status, 202);
    hresp_clear(&r);

    /* fill the disk */
    char ballast[512];
    snprintf(ballast, sizeof(ballast), "%s/ballast", dir);
    int fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char chunk[4096];
    memset(chunk, 'b', sizeof(chunk));
    while (write(fd, chunk, sizeof(chunk)) > 0) {
    }
    close(fd);

    hlog_set_level(HLOG_OFF);
    /* Every answer is a 503; under load the first may be an acknowledgement
     * timeout, before the flusher has reported the full disk, but the
     * answer soon names it. */
    bool named = false;
    for (int i = 0; i < 50 && !named; i++) {
        hreq_at(port, &r, "POST", "/v1/events", NULL, ev);
        assert_problem(&r, 503, NULL);
        assert_string_equal(r.retry_after, "1");
        named = strstr(jstr(r.json, "detail"), strerror(ENOSPC)) != NULL;
        hresp_clear(&r);
        if (!named) usleep(100000);
    }
    assert_true(named);
    hreq_at(port, &r, "GET", "/readyz", NULL, NULL);
    assert_problem(&r, 503, NULL);
    assert_non_null(strstr(jstr(json_object_get(r.json, "checks"), "bus"), "degraded"));
    hresp_clear(&r);

    /* space again */
    assert_int_equal(unlink(ballast), 0);
    hreq_at(port, &r, "POST", "/v1/events", NULL, ev);
    hlog_set_level(HLOG_WARN);
    assert_int_equal(r.status, 202);
    hresp_clear(&r);
    hreq_at(port, &r, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);

    http_stop(srv);
    bus_close(app.bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_disk_full, unmount),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
