/*
 * sandbox.c - the provider used when no real one is configured: "delivers"
 * by appending one JSON line per notification to
 * <data_dir>/sandbox/<channel>.jsonl (notification_id, event_id, user_id,
 * channel, address, title, body, attempt, accepted_at_us,
 * delivered_at_us). sandbox.mode=null records nothing (benchmarks).
 *
 * DESIGN. submit() formats the line into a buffer and remembers the
 * completion; poll() writes everything submitted since the last poll with
 * one write(2) on an O_APPEND descriptor and only then completes those
 * notifications. So a batch is one write, lines from several threads never
 * interleave, and a line is on disk before its notification counts as
 * sent. A write that fails part-way (a full disk) is undone: the file is
 * truncated back to its size before the batch and every notification of it
 * is RETRY, so the file only ever holds whole lines, each written once. The
 * write and the undo happen under flock(2), so another writer of the file
 * (a thread or process delivering the same channel) cannot append between
 * them and lose its line to the truncation. In null mode submit/poll touch
 * no memory but the pending array and
 * make no system calls. Strings go through core/json_write, so a line is
 * valid JSON whatever bytes a title holds.
 *
 * Test hook: an address containing "sandbox-fail-retry" fails with RETRY,
 * one containing "sandbox-fail-permanent" with PERMANENT and
 * address_invalid (an unregistered token); neither is written. One memmem
 * per notification; no real address contains these words.
 *
 * Config: provider.sandbox.max_in_flight (notifications per write).
 */
#include "provider/provider_int.h"

#include "core/buf.h"
#include "core/json_write.h"
#include "core/log.h"
#include "model/tenant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct pending {
    const notif_t *n;
    send_result_t *res;
    void *cookie;
    send_class_t fail;          /* test hook: SEND_OK or the class to answer */
} pending_t;

#define FAIL_RETRY "sandbox-fail-retry"
#define FAIL_PERMANENT "sandbox-fail-permanent"

#define FAIL_PREFIX "sandbox-fail-"

/* Called for every notification the sandbox takes: a vectorised memchr
 * for the markers' first byte, and a compare only where it is found (two
 * memmem calls over every address were 4 % of a push dispatcher's CPU;
 * a push token, being hex, holds no 's'). A retry marker anywhere wins
 * over a permanent one, as it always did. */
static send_class_t test_failure(const notif_t *n)
{
    const char *p = n->address.p, *end = p + n->address.n;
    bool permanent = false;
    while (end - p >= (ptrdiff_t)sizeof(FAIL_RETRY) - 1) {
        const char *m = memchr(p, 's', (size_t)(end - p) - (sizeof(FAIL_RETRY) - 2));
        if (!m) break;
        size_t left = (size_t)(end - m);
        if (memcmp(m, FAIL_PREFIX, sizeof(FAIL_PREFIX) - 1) == 0) {
            if (memcmp(m, FAIL_RETRY, sizeof(FAIL_RETRY) - 1) == 0) return SEND_RETRY;
            if (left >= sizeof(FAIL_PERMANENT) - 1 && memcmp(m, FAIL_PERMANENT, sizeof(FAIL_PERMANENT) - 1) == 0)
                permanent = true;
        }
        p = m + 1;
    }
    return permanent ? SEND_PERMANENT : SEND_OK;
}

typedef struct sandbox {
    provider_t base;
    int fd;                     /* -1 in null mode */
    channel_t ch;
    buf_t out;
    pending_t *pending;         /* submitted since the last poll */
    int npending, cap;
} sandbox_t;

static void sandbox_line(buf_t *b, const notif_t *x)
{
    jw_t w = JW_INIT(b);
    jw_lit(&w, "{");
    jw_key_str(&w, JW_KEY0("notification_id"), x->notification_id.p, x->notification_id.n);
    /* ids as their tenant named them (tenant.h) */
    hstr_t tenant, uid, etenant, eid;
    tenant_split(x->user_id, &tenant, &uid);
    tenant_split(x->event_id, &etenant, &eid);
    jw_key_str(&w, JW_KEY("event_id"), eid.p, eid.n);
    jw_key_str(&w, JW_KEY("user_id"), uid.p, uid.n);
    if (tenant.n) jw_key_str(&w, JW_KEY("tenant"), tenant.p, tenant.n);
    const char *cn = channel_name(x->channel);
    jw_key_str(&w, JW_KEY("channel"), cn, strlen(cn));
    jw_key_str(&w, JW_KEY("address"), x->address.p, x->address.n);
    jw_key_str(&w, JW_KEY("title"), x->title.p, x->title.n);
    jw_key_str(&w, JW_KEY("body"), x->body.p, x->body.n);
    jw_key_int(&w, JW_KEY("attempt"), x->attempt);
    jw_key_int(&w, JW_KEY("accepted_at_us"), x->accepted_at_us);
    jw_key_int(&w, JW_KEY("delivered_at_us"), hclock_now_us());
    jw_lit(&w, "}\n");
}

/* A process killed in the middle of a write (kill -9) can leave a torn
 * last line, and the next line appended to it would be unreadable for
 * every reader of the file. Its notifications were never completed, so
 * they are delivered again: cut the torn tail back to the last newline.
 * Under the file's lock, like every write. */
static void sandbox_repair(int fd, const char *path)
{
    struct stat st;
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) return;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[4096];
        off_t end = st.st_size, keep = -1;
        while (rfd >= 0 && end > 0 && keep < 0) {
            off_t from = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
            ssize_t n = pread(rfd, buf, (size_t)(end - from), from);
            if (n <= 0) break;
            for (ssize_t i = n - 1; i >= 0; i--)
                if (buf[i] == '\n') {
                    keep = from + i + 1;
                    break;
                }
            if (keep < 0 && from == 0) keep = 0;
            end = from;
        }
        if (rfd >= 0) close(rfd);
        if (keep >= 0 && keep < st.st_size) {
            if (ftruncate(fd, keep) == 0)
                log_warn("sandbox", "%s: cut a torn last line of %lld bytes (a write cut short)",
                         path, (long long)(st.st_size - keep));
            else
                log_error("sandbox", "%s: cannot cut a torn last line: %s", path, strerror(errno));
        }
    }
    flock(fd, LOCK_UN);
}

static hr_t sandbox_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie)
{
    sandbox_t *s = (sandbox_t *)p;
    /* The registry bounds in_flight by max_in_flight == cap. */
    send_class_t fail = test_failure(n);
    s->pending[s->npending++] = (pending_t){n, res, cookie, fail};
    if (s->fd >= 0 && fail == SEND_OK) sandbox_line(&s->out, n);
    return HR_OK;
}

/* Appends s->out whole or not at all; 0 or the errno that stopped it. */
static int sandbox_write(sandbox_t *s)
{
    int err = 0;
    size_t off = 0;
    struct stat st;
    while (flock(s->fd, LOCK_EX) != 0)
        if (errno != EINTR) return errno;
    if (fstat(s->fd, &st) != 0) err = errno;
    while (!err && off < s->out.len) {
        ssize_t w = write(s->fd, s->out.data + off, s->out.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) err = errno;
        else if (w == 0) err = EIO;
        else off += (size_t)w;
    }
    if (err) {
        /* a torn last line would be read as a delivery by nobody and break
         * every reader of the file: take the batch back */
        if (off && ftruncate(s->fd, st.st_size) != 0)
            log_error("sandbox", "%s.jsonl: cannot undo a partial write of %zu bytes: %s",
                      channel_name(s->ch), off, strerror(errno));
        log_error("sandbox", "write %s.jsonl: %s; the batch will be retried",
                  channel_name(s->ch), strerror(err));
    }
    flock(s->fd, LOCK_UN);
    return err;
}

static int sandbox_poll(provider_t *p)
{
    sandbox_t *s = (sandbox_t *)p;
    int n = s->npending;
    if (n == 0) return 0;
    int err = s->fd >= 0 ? sandbox_write(s) : 0;
    buf_reset(&s->out);
    s->npending = 0;
    for (int i = 0; i < n; i++) {
        pending_t *q = &s->pending[i];
        send_result_t *res = q->res;
        if (err) {
            send_result_set(res, SEND_RETRY, 0, "sandbox write: %s", strerror(err));
        } else if (q->fail != SEND_OK) {
            send_result_set(res, q->fail, q->fail == SEND_RETRY ? 503 : 404, "sandbox: injected %s",
                            q->fail == SEND_RETRY ? "failure" : "unregistered address");
            res->address_invalid = q->fail == SEND_PERMANENT;
        } else {
            res->cls = SEND_OK;
            res->code = 0;
            res->address_invalid = false;
            res->retry_after_ms = 0;
            res->error[0] = '\0';
            /* "sandbox-<id>"; memcpy, not snprintf: this runs per
             * notification in benchmarks, where snprintf was most of the cost. */
            hstr_t id = q->n->notification_id;
            size_t l = id.n < sizeof(res->msg_id) - 9 ? id.n : sizeof(res->msg_id) - 9;
            memcpy(res->msg_id, "sandbox-", 8);
            if (l) memcpy(res->msg_id + 8, id.p, l);
            res->msg_id[8 + l] = '\0';
        }
        provider_complete(p, res, q->cookie);
    }
    return n;
}

static void sandbox_close(provider_t *p)
{
    sandbox_t *s = (sandbox_t *)p;
    /* What was submitted is formatted already: write it and complete it. */
    sandbox_poll(p);
    if (s->fd >= 0) close(s->fd);
    buf_release(&s->out);
    free(s->pending);
    free(s);
}

/* The pending array is sized from max_in_flight, which the registry reads
 * the same way. */
#define SANDBOX_DEFAULT_IN_FLIGHT 1024

static hr_t sandbox_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t cap;
    hr_t r = provider_conf_int(env, "max_in_flight", SANDBOX_DEFAULT_IN_FLIGHT, 1, 100000, &cap,
                               why, why_len);
    if (r != HR_OK) return r;
    sandbox_t *s = xcalloc(1, sizeof(*s));
    s->ch = env->channel;
    s->fd = -1;
    s->cap = (int)cap;
    s->pending = xcalloc((size_t)cap, sizeof(*s->pending));
    buf_init(&s->out, 0);
    char *dir = NULL, *path = NULL;
    if (!env->null_mode) {
        dir = xasprintf("%s/sandbox", env->data_dir);
        if (mkdir_p(dir, 0700) != HR_OK) {
            snprintf(why, why_len, "sandbox: cannot create %s", dir);
            r = HR_ERR;
            goto out;
        }
        path = xasprintf("%s/%s.jsonl", dir, channel_name(s->ch));
        s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (s->fd < 0) {
            snprintf(why, why_len, "sandbox: open %s: %s", path, strerror(errno));
            r = HR_ERR;
            goto out;
        }
        sandbox_repair(s->fd, path);
    }
out:
    free(dir);
    free(path);
    if (r != HR_OK) {
        sandbox_close(&s->base);
        return r;
    }
    *out = &s->base;
    return HR_OK;
}

const provider_ops_t sandbox_provider_ops = {
    .name = "sandbox",
    .keys = NULL,
    .default_max_in_flight = SANDBOX_DEFAULT_IN_FLIGHT,
    .uses_http = false,
    .open = sandbox_open,
    .submit = sandbox_submit,
    .poll = sandbox_poll,
    .close = sandbox_close,
};
