/*
 * Tests for streaming responses (resp_stream, server.c): a server of its
 * own with a one-route table whose handler hands its stream to the test,
 * which then plays the producer while a raw socket plays the client.
 * Checks incremental delivery, the bounded queue against a client that
 * does not read, clean-up after the client goes away, and http_stop() with
 * a parked stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http/http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 4096
#define DEADLINE_NS (10 * 1000000000LL)

static config_t cfg;
static app_t app;
static http_server_t *srv;
static _Atomic(http_stream_t *) handed; /* the handler's stream, for the test */

static void h_stream(http_req_t *rq, http_resp_t *rs)
{
    http_stream_t *st = resp_stream(rq, rs, 200, "text/event-stream", QUEUE_MAX);
    atomic_store(&handed, st);
}

static const http_route_t routes[] = {
    {HM_GET, "/stream", h_stream, 0, NULL},
};

static int setup(void **state)
{
    config_init(&cfg);
    cfg.http_threads = 2;
    memset(&app, 0, sizeof(app));
    app.cfg = &cfg;
    atomic_store(&handed, NULL);
    return http_start_routes(&app, "127.0.0.1:0", routes, ARRAY_LEN(routes), &srv) == HR_OK ? 0
                                                                                              : -1;
}

static int teardown(void **state)
{
    http_stop(srv);
    srv = NULL;
    config_release(&cfg);
    return 0;
}

static void nap(void)
{
    struct timespec ts = {0, 1000000}; /* 1 ms between polls of a condition */
    nanosleep(&ts, NULL);
}

/* Connects and sends GET /stream; rcvbuf > 0 shrinks the socket's receive
 * buffer first (a client that reads slowly fills it sooner). */
static int open_stream(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)http_port(srv));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    static const char req[] = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    return fd;
}

/* The stream the handler created for the request just sent. */
static http_stream_t *take_stream(void)
{
    int64_t end = hclock_mono_ns() + DEADLINE_NS;
    http_stream_t *st;
    while (!(st = atomic_exchange(&handed, NULL))) {
        if (hclock_mono_ns() > end) fail_msg("the handler never ran");
        nap();
    }
    return st;
}

/* Reads into b until it holds want (true) or the deadline passes or the
 * server closes (false). */
static bool read_until(int fd, buf_t *b, const char *want)
{
    int64_t end = hclock_mono_ns() + DEADLINE_NS;
    char tmp[4096];
    while (!strstr(buf_cstr(b), want)) {
        int left = (int)((end - hclock_mono_ns()) / 1000000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) return false;
        ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
        if (k <= 0) return false;
        buf_append(b, tmp, (size_t)k);
    }
    return true;
}

/* Writes until the stream says HR_CLOSED (the server noticed the client
 * left); HR_AGAIN only means "queue full for now". */
static void write_until_closed(http_stream_t *st)
{
    int64_t end = hclock_mono_ns() + DEADLINE_NS;
    static const char ping[] = ": ping\n\n";
    hr_t r;
    while ((r = http_stream_write(st, ping, sizeof(ping) - 1)) != HR_CLOSED) {
        assert_true(r == HR_OK || r == HR_AGAIN);
        if (hclock_mono_ns() > end) fail_msg("the server never noticed the client left");
        nap();
    }
}

/* Chunks reach the client as they are written, before the stream ends,
 * and the body ends when the producer closes. */
static void test_stream_chunks(void **state)
{
    int fd = open_stream(0);
    http_stream_t *st = take_stream();
    buf_t b;
    buf_init(&b, 0);

    assert_int_equal(http_stream_write(st, "data: one\n\n", 11), HR_OK);
    assert_true(read_until(fd, &b, "data: one\n\n"));
    assert_non_null(strstr(b.data, "HTTP/1.1 200"));
    assert_non_null(strstr(b.data, "Content-Type: text/event-stream"));
    assert_non_null(strstr(b.data, "Transfer-Encoding: chunked"));

    assert_int_equal(http_stream_write(st, "data: two\n\n", 11), HR_OK);
    assert_int_equal(http_stream_write(st, "data: three\n\n", 13), HR_OK);
    http_stream_close(st);
    assert_true(read_until(fd, &b, "\r\n0\r\n\r\n")); /* the last chunk */
    const char *one = strstr(b.data, "data: one"), *two = strstr(b.data, "data: two"),
               *three = strstr(b.data, "data: three");
    assert_true(one && two && three && one < two && two < three);
    buf_release(&b);
    close(fd);
}

/* A client that does not read: the queue fills to its limit and no
 * further; once the client goes, the stream says so. */
static void test_slow_client_bounded(void **state)
{
    int fd = open_stream(4096);
    http_stream_t *st = take_stream();
    char block[1024];
    memset(block, 'x', sizeof(block));
    assert_int_equal(http_stream_write(st, block, QUEUE_MAX + 1), HR_INVALID);

    /* the kernel's socket buffers take a few MiB before the queue fills */
    int64_t end = hclock_mono_ns() + DEADLINE_NS;
    hr_t r;
    size_t sent = 0;
    while ((r = http_stream_write(st, block, sizeof(block))) == HR_OK) {
        sent += sizeof(block);
        if (hclock_mono_ns() > end) fail_msg("the queue never filled (%zu bytes taken)", sent);
    }
    assert_int_equal(r, HR_AGAIN);
    assert_true(http_stream_queued(st) <= QUEUE_MAX);
    assert_true(http_stream_queued(st) > QUEUE_MAX - sizeof(block));

    close(fd); /* with unread data: the server's next send fails */
    write_until_closed(st);
    http_stream_close(st);
}

/* A client that leaves while the stream is idle (its connection parked):
 * the next writes wake the connection, the server finds the socket closed
 * and cleans up. */
static void test_closed_client(void **state)
{
    int fd = open_stream(0);
    http_stream_t *st = take_stream();
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(http_stream_write(st, "data: hi\n\n", 10), HR_OK);
    assert_true(read_until(fd, &b, "data: hi\n\n"));
    buf_release(&b);
    close(fd);
    write_until_closed(st);
    assert_int_equal(http_stream_write(st, "x", 1), HR_CLOSED);
    http_stream_close(st);
}

/* http_stop() with an idle stream open: the stream ends (writes say
 * HR_CLOSED), the client sees the connection close, nothing hangs. */
static void test_stop_with_open_stream(void **state)
{
    int fd = open_stream(0);
    http_stream_t *st = take_stream();
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(http_stream_write(st, "data: hi\n\n", 10), HR_OK);
    assert_true(read_until(fd, &b, "data: hi\n\n"));

    http_stop(srv);
    srv = NULL;
    assert_int_equal(http_stream_write(st, "x", 1), HR_CLOSED);
    http_stream_close(st);
    int64_t t0 = hclock_mono_ns();
    assert_false(read_until(fd, &b, "never sent"));
    assert_true(hclock_mono_ns() - t0 < DEADLINE_NS / 2); /* EOF, not the deadline */
    buf_release(&b);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_open_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
