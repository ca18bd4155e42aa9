/*
 * scrape.c - a minimal blocking HTTP/1.1 GET against 127.0.0.1 and the
 * parser of herald's /metrics text (the counters, the latency histograms
 * and the lag gauges the benchmark reads).
 */
#include "bench/bench_int.h"

#include <arpa/inet.h>
#include <errno.h>
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

static bool starts(const char *line, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(line, prefix, n) != 0) return false;
    *rest = line + n;
    return true;
}

static int channel_of(const char *s)
{
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *name = channel_name((channel_t)ch);
        size_t n = strlen(name);
        if (strncmp(s, name, n) == 0 && s[n] == '"') return ch;
    }
    return -1;
}

hr_t metrics_parse(const char *text, metrics_t *m)
{
    static const struct {
        const char *name;
        size_t off;
    } counters[] = {
        {"herald_events_accepted_total ", offsetof(metrics_t, events_accepted)},
        {"herald_events_rejected_total ", offsetof(metrics_t, events_rejected)},
        {"herald_notifications_fanned_out_total ", offsetof(metrics_t, notifs_fanned_out)},
        {"herald_notifications_sent_total ", offsetof(metrics_t, notifs_sent)},
        {"herald_notifications_failed_total ", offsetof(metrics_t, notifs_failed)},
        {"herald_notifications_suppressed_total ", offsetof(metrics_t, notifs_suppressed)},
        {"herald_dlq_records_total ", offsetof(metrics_t, dlq_records)},
        {"herald_status_rows_written_total ", offsetof(metrics_t, status_rows_written)},
    };
    memset(m, 0, sizeof(*m));
    uint64_t cum_prev[CH__COUNT] = {0};
    bool any = false;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        const char *rest;
        if (line[0] != '#') {
            for (size_t i = 0; i < ARRAY_LEN(counters); i++)
                if (starts(line, counters[i].name, &rest)) {
                    *(int64_t *)((char *)m + counters[i].off) = strtoll(rest, NULL, 10);
                    any = true;
                }
            if (starts(line, "herald_delivery_latency_seconds_bucket{channel=\"", &rest)) {
                int ch = channel_of(rest);
                const char *le = strstr(rest, "le=\"");
                const char *val = strstr(rest, "} ");
                if (ch >= 0 && le && val) {
                    uint64_t cum = strtoull(val + 2, NULL, 10);
                    int idx;
                    if (strncmp(le + 4, "+Inf", 4) == 0) {
                        idx = HIST_BUCKETS - 1;
                    } else {
                        double s = strtod(le + 4, NULL);
                        uint64_t us = (uint64_t)(s * 1e6 + 0.5);
                        idx = hist_index(us ? us - 1 : 0);
                    }
                    m->latency[ch].count[idx] += cum >= cum_prev[ch] ? cum - cum_prev[ch] : 0;
                    m->latency[ch].total = cum;
                    cum_prev[ch] = cum;
                }
            } else if (starts(line, "herald_delivery_latency_seconds_sum{channel=\"", &rest)) {
                int ch = channel_of(rest);
                const char *val = strstr(rest, "} ");
                if (ch >= 0 && val) m->latency[ch].sum = (uint64_t)(strtod(val + 2, NULL) * 1e6);
            } else if (starts(line, "herald_delivery_latency_max_seconds{channel=\"", &rest)) {
                int ch = channel_of(rest);
                const char *val = strstr(rest, "} ");
                if (ch >= 0 && val) m->latency[ch].max = (uint64_t)(strtod(val + 2, NULL) * 1e6 + 0.5);
            } else if (starts(line, "herald_bus_lag_records{group=\"", &rest)) {
                const char *val = strstr(rest, "} ");
                int64_t v = val ? strtoll(val + 2, NULL, 10) : 0;
                m->has_lag = true;
                if (strncmp(rest, "fanout\"", 7) == 0) m->lag_fanout += v;
                else if (strncmp(rest, "dispatch-", 9) == 0) m->lag_dispatch += v;
                else if (strncmp(rest, "status\"", 7) == 0) m->lag_status += v;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!m->has_lag) m->lag_fanout = m->lag_dispatch = m->lag_status = -1;
    return any ? HR_OK : HR_INVALID;
}

hr_t metrics_scrape(int port, metrics_t *m)
{
    buf_t b;
    buf_init(&b, 0);
    hr_t r = http_get(port, "/metrics", &b, 10000);
    if (r == HR_OK) r = metrics_parse(b.data ? b.data : "", m);
    buf_release(&b);
    return r;
}
