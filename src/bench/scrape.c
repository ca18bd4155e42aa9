/*
 * scrape.c - a minimal blocking HTTP/1.1 GET against 127.0.0.1 and the
 * benchmark's reading of herald's /metrics text: metrics_snap_parse (the
 * parser generated from src/metrics/metrics.def) plus the sums the
 * benchmark wants (lag per stage).
 */
#include "bench/bench_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int wait_fd(int fd, short ev, int64_t deadline_ns)
{
    for (;;) {
        int64_t left = (deadline_ns - hclock_mono_ns()) / 1000000;
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

char bench_api_key[128];

/* One request on a fresh connection (Connection: close); the body of the
 * answer into out. HR_OK on a 2xx answer. */
static hr_t http_call(int port, const char *method, const char *path, const char *body, buf_t *out,
                      int timeout_ms)
{
    hr_t r = HR_ERR;
    int64_t deadline = hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return HR_ERR;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    buf_t req;
    buf_init(&req, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) goto out;
    buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, path);
    if (bench_api_key[0]) buf_printf(&req, "Authorization: Bearer %s\r\n", bench_api_key);
    if (body)
        buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        buf_append_str(&req, "\r\n");
    for (size_t sent = 0; sent < req.len;) {
        ssize_t w = write(fd, req.data + sent, req.len - sent);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto out;
        sent += (size_t)w;
    }
    buf_reset(out);
    buf_t in;
    buf_init(&in, 0);
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline) <= 0) {
            r = HR_TIMEOUT;
            break;
        }
        buf_reserve(&in, 65536);
        ssize_t got = read(fd, in.data + in.len, in.cap - in.len - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        if (got == 0) {
            /* Connection: close - the body ends with the connection */
            buf_cstr(&in);
            const char *end = strstr(in.data ? in.data : "", "\r\n\r\n");
            int status = 0;
            if (!end || sscanf(in.data, "HTTP/1.%*d %d", &status) != 1) break;
            buf_append(out, end + 4, in.len - (size_t)(end + 4 - in.data));
            buf_cstr(out);
            r = status >= 200 && status < 300 ? HR_OK : HR_ERR;
            break;
        }
        in.len += (size_t)got;
    }
    buf_release(&in);
out:
    buf_release(&req);
    close(fd);
    return r;
}

hr_t http_get(int port, const char *path, buf_t *out, int timeout_ms)
{
    return http_call(port, "GET", path, NULL, out, timeout_ms);
}

hr_t http_post(int port, const char *path, const char *body, buf_t *out, int timeout_ms)
{
    return http_call(port, "POST", path, body, out, timeout_ms);
}

hr_t metrics_parse(const char *text, metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    hr_t r = metrics_snap_parse(text, &m->v);
    for (int ch = 0; ch < CH__COUNT; ch++) {
        double mx = m->v.delivery_latency_max[ch];
        if (mx > 0) m->v.delivery_latency[ch].max = (uint64_t)(mx * 1e6 + 0.5);
    }
    for (int i = 0; i < METRIC_N_BUS_GROUP; i++) {
        double lag = m->v.bus_lag[i];
        if (isnan(lag)) continue;
        m->has_lag = true;
        if (i == METRIC_BUS_FANOUT) m->lag_fanout += (int64_t)lag;
        else if (i == METRIC_BUS_STATUS) m->lag_status += (int64_t)lag;
        else m->lag_dispatch += (int64_t)lag;
    }
    if (!m->has_lag) m->lag_fanout = m->lag_dispatch = m->lag_status = -1;
    return r;
}

hr_t metrics_scrape(int port, metrics_t *m)
{
    buf_t b;
    buf_init(&b, 0);
    hr_t r = http_get(port, "/metrics?buckets=fine", &b, 10000);
    if (r == HR_OK) r = metrics_parse(b.data ? b.data : "", m);
    buf_release(&b);
    return r;
}
