/*
 * gen.c - the load generator: events as JSON batches to POST /v1/events over
 * keep-alive HTTP/1.1 connections, one request in flight per connection.
 *
 * Two ways to offer load:
 *  - fixed rate: request k leaves at t0 + k * batch / rate (open loop). When
 *    every connection is busy the schedule slips; the largest slip is
 *    reported, so an overloaded run is visible as such.
 *  - closed loop (rate 0): a request leaves whenever the notifications
 *    accepted but not yet settled (sent, failed or suppressed, read from
 *    /metrics ten times a second) are fewer than `window`. This finds the
 *    highest rate the pipeline sustains with a bounded backlog.
 *
 * Runs in the bench driver's process, never in the measured one.
 */
#include "bench/bench_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 64

enum { C_IDLE, C_SEND, C_RECV };

typedef struct gconn {
    int fd;
    int state;
    buf_t req;
    size_t sent;
    buf_t in;
    int events, notifs;
    int chan_notifs[CH__COUNT];
    int resends;                /* times the current request was sent again */
} gconn_t;

typedef struct scraper {
    int port;
    _Atomic int64_t done;
    atomic_bool stop;
    pthread_t th;
} scraper_t;

static void *scraper_main(void *arg)
{
    scraper_t *s = arg;
    while (!atomic_load(&s->stop)) {
        metrics_t m;
        if (metrics_scrape(s->port, &m) == HR_OK) atomic_store(&s->done, metrics_done(&m));
        usleep(100000);
    }
    return NULL;
}

static int conn_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Builds the next request on c: `batch` events from the workload. */
static void conn_fill(gconn_t *c, workload_t *wl, int batch, buf_t *body)
{
    buf_reset(body);
    buf_append(body, "[", 1);
    c->events = batch;
    c->notifs = 0;
    memset(c->chan_notifs, 0, sizeof(c->chan_notifs));
    for (int i = 0; i < batch; i++) {
        if (i) buf_append(body, ",", 1);
        int ch;
        int n = workload_next(wl, body, &ch);
        c->notifs += n;
        c->chan_notifs[ch] += n;
    }
    buf_append(body, "]", 1);
    buf_reset(&c->req);
    buf_printf(&c->req,
               "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n",
               bench_api_key, body->len);
    buf_append(&c->req, body->data, body->len);
    c->sent = 0;
    buf_reset(&c->in);
    c->resends = 0;
    c->state = C_SEND;
}

/* 1 when a whole response is in c->in (status in *status), 0 when more is
 * needed, -1 when it cannot be parsed. */
static int response_done(gconn_t *c, int *status)
{
    buf_cstr(&c->in);
    const char *h = c->in.data;
    const char *end = strstr(h, "\r\n\r\n");
    if (!end) return 0;
    if (sscanf(h, "HTTP/1.%*d %d", status) != 1) return -1;
    size_t clen = 0;
    for (const char *p = h; p && p < end; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0) clen = (size_t)strtoull(p + 15, NULL, 10);
    }
    size_t have = c->in.len - (size_t)(end + 4 - h);
    return have >= clen ? 1 : 0;
}

/* Replaces c's connection with a new one; false when herald cannot be
 * reached. */
static bool reconnect(gconn_t *c, int port, gen_result_t *res)
{
    close(c->fd);
    c->fd = conn_open(port);
    res->reconnects++;
    if (c->fd >= 0) return true;
    log_error("bench", "cannot reconnect to herald on port %d", port);
    return false;
}

hr_t gen_run(workload_t *wl, const gen_opts_t *o, gen_result_t *res)
{
    memset(res, 0, sizeof(*res));
    signal(SIGPIPE, SIG_IGN);   /* a write to a connection herald closed fails with EPIPE */
    int nc = o->conns < 1 ? 1 : o->conns > MAX_CONNS ? MAX_CONNS : o->conns;
    gconn_t conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS];
    buf_t body;
    buf_init(&body, 0);
    hr_t r = HR_OK;
    scraper_t sc = {.port = o->port};
    atomic_store(&sc.done, 0);
    atomic_store(&sc.stop, false);
    bool closed_loop = o->rate <= 0 && o->window > 0;

    for (int i = 0; i < nc; i++) {
        memset(&conns[i], 0, sizeof(conns[i]));
        buf_init(&conns[i].req, 0);
        buf_init(&conns[i].in, 0);
        conns[i].fd = conn_open(o->port);
        if (conns[i].fd < 0) r = HR_ERR;
    }
    if (r != HR_OK) goto out;
    if (closed_loop) {
        metrics_t m;
        if (metrics_scrape(o->port, &m) == HR_OK) atomic_store(&sc.done, metrics_done(&m));
        if (pthread_create(&sc.th, NULL, scraper_main, &sc) != 0) {
            r = HR_ERR;
            goto out;
        }
    }

    double cpu0 = self_cpu_s();
    double t0 = now_s(), t_end = t0 + o->duration_s;
    int64_t scheduled = 0;          /* requests started (fixed rate) */
    int64_t inflight_notifs = 0;
    for (;;) {
        double now = now_s();
        bool sending = now < t_end;
        int busy = 0;
        double wait_s = 0.005;
        for (int i = 0; i < nc; i++) {
            gconn_t *c = &conns[i];
            if (c->state == C_IDLE && sending) {
                bool go;
                if (o->rate > 0) {
                    double due = t0 + (double)scheduled * o->batch / o->rate;
                    go = now >= due;
                    if (go && now - due > res->max_behind_s) res->max_behind_s = now - due;
                    if (!go && due - now < wait_s) wait_s = due - now;
                } else if (closed_loop) {
                    int64_t offered = o->offered_base + res->notifs + inflight_notifs;
                    go = offered - atomic_load(&sc.done) < o->window;
                } else {
                    go = true;
                }
                if (go) {
                    conn_fill(c, wl, o->batch, &body);
                    scheduled++;
                    inflight_notifs += c->notifs;
                    res->requests++;
                }
            }
            if (c->state != C_IDLE) busy++;
            pfd[i].fd = c->fd;
            pfd[i].events = c->state == C_SEND ? POLLOUT : c->state == C_RECV ? POLLIN : 0;
            pfd[i].revents = 0;
        }
        if (!sending && busy == 0) break;
        if (!sending && now > t_end + 60) {
            log_warn("bench", "%d request(s) unanswered 60 s after the run; giving up", busy);
            break;
        }
        int ms = (int)(wait_s * 1000);
        if (poll(pfd, (nfds_t)nc, ms < 1 ? 1 : ms) < 0 && errno != EINTR) {
            r = HR_ERR;
            break;
        }
        for (int i = 0; i < nc; i++) {
            gconn_t *c = &conns[i];
            if (!pfd[i].revents) continue;
            bool fail = false;
            if (c->state == C_SEND) {
                ssize_t w = write(c->fd, c->req.data + c->sent, c->req.len - c->sent);
                if (w < 0 && errno != EINTR && errno != EAGAIN) fail = true;
                if (w > 0) {
                    c->sent += (size_t)w;
                    res->sent_bytes += (double)w;
                    if (c->sent == c->req.len) c->state = C_RECV;
                }
            } else if (c->state == C_RECV) {
                buf_reserve(&c->in, 4096);
                ssize_t got = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
                if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) fail = true;
                if (got > 0) {
                    c->in.len += (size_t)got;
                    int status = 0;
                    int d = response_done(c, &status);
                    if (d < 0) fail = true;
                    if (d > 0) {
                        inflight_notifs -= c->notifs;
                        if (status == 202) {
                            res->events += c->events;
                            res->notifs += c->notifs;
                            for (int ch = 0; ch < CH__COUNT; ch++) res->chan_notifs[ch] += c->chan_notifs[ch];
                        } else {
                            res->rejected++;
                            if (res->rejected <= 3)
                                log_warn("bench", "POST /v1/events answered %d: %.200s", status,
                                         c->in.data);
                        }
                        c->state = C_IDLE;
                    }
                }
            }
            /* An idle keep-alive connection the server closed: reconnect
             * before it is used (no request lost). */
            if (c->state == C_IDLE && (pfd[i].revents & (POLLHUP | POLLERR))) {
                if (!reconnect(c, o->port, res)) {
                    r = HR_ERR;
                    goto stop;
                }
                continue;
            }
            /* The connection failed before any byte of the answer came:
             * the server closed it as the request went out (keep-alive
             * race). The same request goes once more on a new connection;
             * its events carry their ids, so one that did arrive is a
             * duplicate the server drops. A second failure is an error. */
            if (fail && c->in.len == 0 && c->resends == 0 && c->state != C_IDLE) {
                if (!reconnect(c, o->port, res)) {
                    r = HR_ERR;
                    goto stop;
                }
                c->resends++;
                c->sent = 0;
                c->state = C_SEND;
                continue;
            }
            if (fail) {
                res->errors++;
                if (c->state != C_IDLE) inflight_notifs -= c->notifs;
                close(c->fd);
                c->state = C_IDLE;
                c->fd = conn_open(o->port);
                if (c->fd < 0) {
                    log_error("bench", "cannot reconnect to herald on port %d", o->port);
                    r = HR_ERR;
                    goto stop;
                }
            }
        }
    }
stop:
    res->elapsed_s = now_s() - t0;
    res->cpu_s = self_cpu_s() - cpu0;
    if (closed_loop) {
        atomic_store(&sc.stop, true);
        pthread_join(sc.th, NULL);
    }
out:
    for (int i = 0; i < nc; i++) {
        if (conns[i].fd >= 0) close(conns[i].fd);
        buf_release(&conns[i].req);
        buf_release(&conns[i].in);
    }
    buf_release(&body);
    return r;
}
