/*
 * HTTP server tests: connection abuse. A flood of idle half-sent
 * connections from one client is capped per client and does not keep
 * /healthz from answering; a request whose headers or body trickle in is
 * closed at its deadline however often bytes arrive; stopping the server
 * with such connections open is immediate.
 * Real server, bus and store (api_fixture.h); the servers under test are
 * started beside the fixture's with their own limits.
 */
#include "api_fixture.h"

#include "core/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOD 200
#define PER_CLIENT 16

static double now_ms(void) { return (double)hclock_mono_ns() / 1e6; }

/* A connection to 127.0.0.1:port from the loopback address src
 * ("127.0.0.1", "127.0.0.2": every 127/8 address is local on Linux). */
static int dial(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Has the server closed fd (end of stream or reset)? Drains what is there. */
static bool closed_by_server(int fd)
{
    char b[512];
    for (;;) {
        ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (k == 0) return true;
        if (k < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    }
}

/* Waits up to ms for the server to close fd. */
static bool wait_closed(int fd, int ms)
{
    double end = now_ms() + ms;
    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 20);
        if (closed_by_server(fd)) return true;
    }
    return false;
}

/* GET /healthz from src; returns the status (0: no answer) and the time. */
static int healthz(int port, const char *src, double *ms)
{
    double t0 = now_ms();
    int fd = dial(port, src);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    char out[2048];
    size_t n = 0;
    while (n + 1 < sizeof(out)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t k = recv(fd, out + n, sizeof(out) - n - 1, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    out[n] = '\0';
    close(fd);
    *ms = now_ms() - t0;
    int status = 0;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1) status = 0;
    return status;
}

static http_server_t *start_with(int per_client, int header_ms, int body_ms)
{
    config_t saved = F.cfg;
    F.cfg.http_per_client_connections = per_client;
    F.cfg.http_header_timeout_ms = header_ms;
    F.cfg.http_body_timeout_ms = body_ms;
    http_server_t *s = NULL;
    hr_t r = http_start(&F.app, "127.0.0.1:0", &s);
    F.cfg = saved; /* the server keeps what it read at start */
    assert_int_equal(r, HR_OK);
    return s;
}

/* FLOOD idle half-sent connections from one address: the server holds at
 * most PER_CLIENT of them, /healthz from another address answers at once,
 * and stopping the server with them open takes well under a second. */
static void test_flood(void **state)
{
    http_server_t *s = start_with(PER_CLIENT, 10000, 10000);
    int port = http_port(s);
    static const char half[] = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Le";
    int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = dial(port, "127.0.0.1");
        send(fds[i], half, sizeof(half) - 1, MSG_NOSIGNAL);
    }
    /* the server refuses the surplus at accept; wait until it has */
    int held = FLOOD;
    double end = now_ms() + 3000;
    bool gone[FLOOD] = {false};
    while (held > PER_CLIENT && now_ms() < end) {
        held = 0;
        for (int i = 0; i < FLOOD; i++) {
            if (!gone[i] && closed_by_server(fds[i])) gone[i] = true;
            held += !gone[i];
        }
        if (held > PER_CLIENT) usleep(10000);
    }
    print_message("flood: %d connections opened, %d held by the server\n", FLOOD, held);
    assert_true(held <= PER_CLIENT);
    assert_true(held > 0);

    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double ms;
        assert_int_equal(healthz(port, "127.0.0.2", &ms), 200);
        if (ms > worst) worst = ms;
    }
    print_message("flood: /healthz from another client, worst of 5: %.1f ms\n", worst);
    assert_true(worst < 1000);

    /* the held connections are still open (their deadline is 10 s away) */
    int still = 0;
    for (int i = 0; i < FLOOD; i++) still += !gone[i] && !closed_by_server(fds[i]);
    assert_int_equal(still, held);

    double t0 = now_ms();
    http_stop(s);
    double stop_ms = now_ms() - t0;
    print_message("flood: http_stop with %d half-sent connections open: %.1f ms\n", held,
                  stop_ms);
    assert_true(stop_ms < 1000);
    for (int i = 0; i < FLOOD; i++) {
        if (!gone[i]) assert_true(wait_closed(fds[i], 1000));
        close(fds[i]);
    }
}

/* Headers sent a byte at a time, faster than any idle timeout: the
 * connection is closed at the header deadline. */
static void test_header_trickle(void **state)
{
    http_server_t *s = start_with(PER_CLIENT, 300, 300);
    int port = http_port(s);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int fd = dial(port, "127.0.0.1");
    double t0 = now_ms();
    bool cut = false;
    for (size_t i = 0; i < sizeof(req) - 1 && !cut; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 40);
        cut = closed_by_server(fd);
    }
    double ms = now_ms() - t0;
    print_message("header trickle: closed after %.0f ms (deadline 300 ms)\n", ms);
    assert_true(cut);
    assert_true(ms >= 250 && ms < 1500);
    close(fd);

    /* a prompt request on the same server is served */
    double hms;
    assert_int_equal(healthz(port, "127.0.0.1", &hms), 200);
    http_stop(s);
}

/* A body sent a byte at a time: closed at the body deadline. */
static void test_body_trickle(void **state)
{
    http_server_t *s = start_with(PER_CLIENT, 300, 400);
    int port = http_port(s);
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "PUT /v1/users/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                      F.key);
    int fd = dial(port, "127.0.0.1");
    assert_int_equal(send(fd, head, (size_t)hn, MSG_NOSIGNAL), (ssize_t)hn);
    double t0 = now_ms();
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        if (send(fd, " ", 1, MSG_NOSIGNAL) != 1) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 40);
        cut = closed_by_server(fd);
    }
    double ms = now_ms() - t0;
    print_message("body trickle: closed after %.0f ms (deadline 400 ms)\n", ms);
    assert_true(cut);
    assert_true(ms >= 300 && ms < 1600);
    close(fd);
    http_stop(s);
}

/* An idle keep-alive connection after a complete answer is closed at the
 * header deadline too, and the stop does not wait for it. */
static void test_keepalive_idle(void **state)
{
    http_server_t *s = start_with(PER_CLIENT, 300, 300);
    int port = http_port(s);
    int fd = dial(port, "127.0.0.1");
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
    char out[1024];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t k = recv(fd, out, sizeof(out) - 1, 0);
    assert_true(k > 0);
    out[k] = '\0';
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    double t0 = now_ms();
    assert_true(wait_closed(fd, 2000));
    double ms = now_ms() - t0;
    print_message("keep-alive idle: closed after %.0f ms (deadline 300 ms)\n", ms);
    assert_true(ms < 1500);
    close(fd);
    http_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood),
        cmocka_unit_test(test_header_trickle),
        cmocka_unit_test(test_body_trickle),
        cmocka_unit_test(test_keepalive_idle),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
