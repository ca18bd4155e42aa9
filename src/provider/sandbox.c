/*
 * sandbox.c - the provider used when no real one is configured: "delivers"
 * by appending one JSON line per notification to <dir>/<channel>.jsonl.
 * A batch is one write(2) on an O_APPEND descriptor, so lines from several
 * threads never interleave and a delivered line survives kill -9.
 */
#include "provider/provider.h"

#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct sandbox {
    provider_t base;
    int fd;                     /* -1 in null mode */
    channel_t ch;
    buf_t out;
} sandbox_t;

static void json_str(buf_t *b, const char *key, hstr_t s)
{
    buf_printf(b, "\"%s\":\"", key);
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20)
                buf_printf(b, "\\u%04x", c);
            else
                buf_append(b, &s.p[i], 1);
        }
    }
    buf_append(b, "\"", 1);
}

static hr_t sandbox_send(provider_t *p, const notif_t *const *n, int count, send_result_t *res)
{
    sandbox_t *s = (sandbox_t *)p;
    buf_reset(&s->out);
    for (int i = 0; i < count; i++) {
        const notif_t *x = n[i];
        res[i].cls = SEND_OK;
        res[i].error[0] = '\0';
        snprintf(res[i].msg_id, sizeof(res[i].msg_id), "sandbox-%.*s", (int)x->notification_id.n,
                 x->notification_id.p);
        if (s->fd < 0) continue;
        buf_append(&s->out, "{", 1);
        json_str(&s->out, "notification_id", x->notification_id);
        buf_append(&s->out, ",", 1);
        json_str(&s->out, "event_id", x->event_id);
        buf_append(&s->out, ",", 1);
        json_str(&s->out, "user_id", x->user_id);
        buf_printf(&s->out, ",\"channel\":\"%s\",", channel_name(x->channel));
        json_str(&s->out, "address", x->address);
        buf_append(&s->out, ",", 1);
        json_str(&s->out, "title", x->title);
        buf_append(&s->out, ",", 1);
        json_str(&s->out, "body", x->body);
        buf_printf(&s->out, ",\"attempt\":%u,\"accepted_at_us\":%lld,\"delivered_at_us\":%lld}\n",
                   (unsigned)x->attempt, (long long)x->accepted_at_us,
                   (long long)hclock_now_us());
    }
    size_t off = 0;
    while (s->fd >= 0 && off < s->out.len) {
        ssize_t w = write(s->fd, s->out.data + off, s->out.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            log_error("sandbox", "write %s.jsonl: %s", channel_name(s->ch), strerror(errno));
            for (int i = 0; i < count; i++) {
                res[i].cls = SEND_RETRY;
                snprintf(res[i].error, sizeof(res[i].error), "sandbox write: %s", strerror(errno));
            }
            return HR_ERR;
        }
        off += (size_t)w;
    }
    return HR_OK;
}

static void sandbox_free(provider_t *p)
{
    sandbox_t *s = (sandbox_t *)p;
    if (s->fd >= 0) close(s->fd);
    buf_release(&s->out);
    free(s);
}

static const provider_ops_t sandbox_ops = {"sandbox", sandbox_send, sandbox_free};

hr_t sandbox_provider_new(const char *dir, channel_t ch, bool null_mode, provider_t **out)
{
    sandbox_t *s = xcalloc(1, sizeof(*s));
    s->base.ops = &sandbox_ops;
    s->ch = ch;
    s->fd = -1;
    buf_init(&s->out, 0);
    if (!null_mode) {
        if (mkdir_p(dir, 0755) != HR_OK) {
            log_error("sandbox", "cannot create %s", dir);
            sandbox_free(&s->base);
            return HR_ERR;
        }
        char *path = xasprintf("%s/%s.jsonl", dir, channel_name(ch));
        s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            log_error("sandbox", "open %s: %s", path, strerror(errno));
            free(path);
            sandbox_free(&s->base);
            return HR_ERR;
        }
        free(path);
    }
    *out = &s->base;
    return HR_OK;
}
