/*
 * The dispatch policy chain (src/stage/dispatch.c, docs/internals/policy.md)
 * at the dispatcher: real dispatchers on a real embedded bus and SQLite
 * store, the webhook provider against the scripted local server (its
 * answer is scripted by the notification's title), a fake clock.
 *  - per-recipient rate limit: 15 pushes to one user -> 10 sent, 5
 *    rate_limited, another user unaffected; the same with the Redis
 *    backend against a real redis-server;
 *  - quiet hours: Europe/Paris 22:00-07:00, an event at 23:00 local is
 *    deferred and comes back from the scheduler at 07:00, not earlier;
 *    critical goes at once;
 *  - the incident, in compressed time: the push provider fails half its
 *    requests for "thirty minutes" while email stays healthy; figures are
 *    printed.
 * The stage loop is emulated by the test (process() is called without a
 * stage context): a batch answered HR_LATER is offered again on the next
 * tick, and while the push breaker is half-open the test offers one record
 * per batch, as the real loop's rewind does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_http.h"

#include "app.h"
#include "app_env.h"
#include "model/notif.h"
#include "policy/breaker.h"
#include "stage/scheduler.h"
#include "stage/stage.h"
#include "stage/topics.h"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXN 20000

typedef struct dfx {
    char dir[64];
    config_t cfg;
    app_t app;
    fake_http_t *srv;           /* the push provider */
    fake_http_t *esrv;          /* the email provider */
    stage_def_t def[CH__COUNT];
    void *state[CH__COUNT];
    int status[MAXN];           /* last status per notification number, -1 = none */
    bus_consumer_t *st;         /* TOPIC_STATUS */
} dfx_t;

static void dfx_open(dfx_t *f, const char *const *kv)
{
    memset(f, 0, sizeof(*f));
    env_mkdir(f->dir, "pol");
    f->srv = fake_http_start();
    f->esrv = fake_http_start();
    assert_non_null(f->srv);
    assert_non_null(f->esrv);
    char purl[256], eurl[256];
    snprintf(purl, sizeof(purl), "%s", fake_http_url(f->srv, "/push"));
    snprintf(eurl, sizeof(eurl), "%s", fake_http_url(f->esrv, "/email"));
    env_config(&f->cfg, f->dir,
               (const char *[]){"bus.partitions", "1", "bus.fsync", "never",
                                "channel.push.providers", "fcmfake", "provider.fcmfake.type", "webhook",
                                "provider.fcmfake.url", purl, "provider.fcmfake.max_in_flight", "8",
                                "channel.email.providers", "sesfake", "provider.sesfake.type", "webhook",
                                "provider.sesfake.url", eurl, "provider.sesfake.max_in_flight", "8", NULL});
    for (int i = 0; kv && kv[i]; i += 2) env_set(&f->cfg, kv[i], kv[i + 1]);
    f->app.cfg = &f->cfg;
    env_open(&f->app, f->dir, 0);
    channel_t chs[] = {CH_PUSH, CH_EMAIL};
    for (size_t i = 0; i < ARRAY_LEN(chs); i++) {
        dispatch_stage_def(chs[i], &f->def[chs[i]]);
        f->state[chs[i]] = f->def[chs[i]].state_new(&f->app, &f->def[chs[i]], 0);
        assert_non_null(f->state[chs[i]]);
    }
    for (int i = 0; i < MAXN; i++) f->status[i] = -1;
    const char *topics[] = {TOPIC_STATUS};
    assert_int_equal(bus_consumer_new(f->app.bus, "t-status", topics, 1, NULL, &f->st), HR_OK);
}

static void dfx_close(dfx_t *f)
{
    bus_consumer_close(f->st);
    for (int c = 0; c < CH__COUNT; c++)
        if (f->state[c]) f->def[c].state_free(f->state[c]);
    env_close(&f->app);
    fake_http_stop(f->srv);
    fake_http_stop(f->esrv);
    env_rmdir(f->dir);
    config_release(&f->cfg);
    hclock_set_fake(0);
}

/* Notification number k ("p-<k>") of channel ch to user. */
static void encode(buf_t *enc, int k, channel_t ch, const char *user, const char *title, priority_t prio,
                   const char *tz, int qs, int qe)
{
    char id[32];
    snprintf(id, sizeof(id), "p-%d", k);
    notif_t x;
    memset(&x, 0, sizeof(x));
    x.kind = REC_NOTIFICATION;
    x.channel = ch;
    x.priority = prio;
    x.notification_id = HSTR(id);
    x.event_id = HSTR("ev");
    x.user_id = HSTR(user);
    x.title = HSTR(title);
    x.address = HSTR("https://example.com/hook");
    x.timezone = HSTR(tz);
    x.quiet_start_min = (int16_t)qs;
    x.quiet_end_min = (int16_t)qe;
    assert_int_equal(notif_encode(&x, enc), HR_OK);
}

/* Runs channel ch's process on the records in enc (byte positions at[0..n)),
 * as the next records of partition 0: offsets go on from call to call, as
 * on a bus, so a dispatcher sees new records, not the same ones again. */
static hr_t process(dfx_t *f, channel_t ch, const buf_t *enc, const size_t *at, int n)
{
    static int64_t next_offset;
    bus_msg_t *msgs = calloc((size_t)n, sizeof(*msgs));
    for (int i = 0; i < n; i++) {
        size_t end = i + 1 < n ? at[i + 1] : enc->len;
        msgs[i] = (bus_msg_t){.topic = topic_for_channel(ch), .partition = 0, .offset = next_offset++, .key = "k",
                              .key_len = 1, .value = enc->data + at[i], .value_len = end - at[i]};
    }
    bus_batch_t b;
    bus_batch_init(&b);
    hr_t r = f->def[ch].process(f->state[ch], NULL, msgs, n, &b);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    free(msgs);
    return r;
}

/* Reads the status records produced so far: last status per number. */
static void read_statuses(dfx_t *f)
{
    bus_msg_t m[256];
    int n;
    while ((n = bus_poll(f->st, m, 256, 20)) > 0) {
        for (int i = 0; i < n; i++) {
            notif_t x;
            assert_int_equal(notif_decode(m[i].value, m[i].value_len, &x), HR_OK);
            int k = atoi(x.notification_id.p + 2);
            assert_true(k >= 0 && k < MAXN);
            f->status[k] = (int)x.status;
        }
    }
}

static int count_status(dfx_t *f, int from, int to, notif_status_t st)
{
    int c = 0;
    for (int k = from; k < to; k++) c += f->status[k] == (int)st;
    return c;
}

/* ------------------------------------------------------------ rate limit */

static void rate_limit_case(const char *backend, const char *redis)
{
    dfx_t *f = calloc(1, sizeof(*f));
    const char *kv[] = {"ratelimit.backend", backend, "ratelimit.redis", redis ? redis : "127.0.0.1:6379", NULL};
    dfx_open(f, kv);
    hclock_set_fake(INT64_C(1767225600000)); /* 2026-01-01 00:00 UTC */
    buf_t enc;
    buf_init(&enc, 0);
    size_t at[32];
    int n = 0;
    for (int i = 0; i < 15; i++) { /* ann: 15 within the window, in two batches */
        at[n++] = enc.len;
        encode(&enc, i, CH_PUSH, "ann", "status=200", PRIO_NORMAL, "", NOTIF_QUIET_NONE, NOTIF_QUIET_NONE);
    }
    for (int i = 15; i < 18; i++) { /* bob: 3 */
        at[n++] = enc.len;
        encode(&enc, i, CH_PUSH, "bob", "status=200", PRIO_NORMAL, "", NOTIF_QUIET_NONE, NOTIF_QUIET_NONE);
    }
    buf_t e2;
    buf_init(&e2, 0);
    buf_append(&e2, enc.data, at[8]);
    assert_int_equal(process(f, CH_PUSH, &e2, at, 8), HR_OK); /* ann 0..7 */
    hclock_set_fake(INT64_C(1767225600000) + 60000);          /* a minute later, still in the hour */
    size_t at2[32];
    for (int i = 8; i < n; i++) at2[i - 8] = at[i] - at[8];
    buf_t e3;
    buf_init(&e3, 0);
    buf_append(&e3, enc.data + at[8], enc.len - at[8]);
    assert_int_equal(process(f, CH_PUSH, &e3, at2, n - 8), HR_OK);
    read_statuses(f);
    assert_int_equal(count_status(f, 0, 15, ST_SENT), 10);
    assert_int_equal(count_status(f, 0, 15, ST_RATE_LIMITED), 5);
    for (int i = 10; i < 15; i++) assert_int_equal(f->status[i], ST_RATE_LIMITED); /* the last five */
    assert_int_equal(count_status(f, 15, 18, ST_SENT), 3);                        /* bob unaffected */
    assert_int_equal(fake_http_requests(f->srv), 13);                  /* the limited were not sent */
    buf_release(&enc);
    buf_release(&e2);
    buf_release(&e3);
    dfx_close(f);
    free(f);
}

static void test_rate_limit_local(void **st)
{
    (void)st;
    rate_limit_case("local", NULL);
}

static bool have_redis(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *d = strtok(buf, ":"); d; d = strtok(NULL, ":")) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/redis-server", d);
        if (access(p, X_OK) == 0) return true;
    }
    return false;
}

static void test_rate_limit_redis(void **st)
{
    (void)st;
    if (!have_redis()) {
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) fail_msg("redis-server is not installed (scripts/deps.sh --test)");
        print_message("skipped: redis-server is not installed (scripts/deps.sh --test installs it)\n");
        skip();
    }
    char dir[64];
    env_mkdir(dir, "polr");
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/r.sock", dir);
    char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
                    "--loglevel", "warning", "--dir", dir, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    assert_int_equal(posix_spawnp(&pid, "redis-server", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 1000 && access(sock, F_OK) != 0; i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_int_equal(access(sock, F_OK), 0);
    nanosleep(&(struct timespec){0, 50000000}, NULL); /* accepting once the socket exists */
    rate_limit_case("redis", sock);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    env_rmdir(dir);
}

/* ------------------------------------------------------------ quiet hours */

static void test_quiet_hours_defer_then_deliver(void **st)
{
    (void)st;
    dfx_t *f = calloc(1, sizeof(*f));
    dfx_open(f, NULL);
    /* 2026-01-15 22:00 UTC = 23:00 in Paris (CET); quiet 22:00-07:00 ends
     * 2026-01-16 07:00 CET = 06:00 UTC */
    const int64_t t23 = INT64_C(1768514400000), end = INT64_C(1768543200000);
    hclock_set_fake(t23);
    buf_t enc;
    buf_init(&enc, 0);
    size_t at[2];
    at[0] = enc.len;
    encode(&enc, 0, CH_PUSH, "ann", "status=200", PRIO_NORMAL, "Europe/Paris", 22 * 60, 7 * 60);
    at[1] = enc.len;
    encode(&enc, 1, CH_PUSH, "ann", "status=200", PRIO_CRITICAL, "Europe/Paris", 22 * 60, 7 * 60);
    assert_int_equal(process(f, CH_PUSH, &enc, at, 2), HR_OK);
    read_statuses(f);
    assert_int_equal(f->status[0], ST_DEFERRED);
    assert_int_equal(f->status[1], ST_SENT); /* critical: at once */
    assert_int_equal(fake_http_requests(f->srv), 1);

    /* 06:59 local: still nothing due */
    int moved = -1;
    assert_int_equal(scheduler_run_once(&f->app, end - 60000, &moved), HR_OK);
    assert_int_equal(moved, 0);
    /* 07:00 local: back on notifications-push, then sent */
    hclock_set_fake(end);
    assert_int_equal(scheduler_run_once(&f->app, end, &moved), HR_OK);
    assert_int_equal(moved, 1);
    const char *topics[] = {topic_for_channel(CH_PUSH)};
    bus_consumer_t *c;
    assert_int_equal(bus_consumer_new(f->app.bus, "t-push", topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[8];
    int n = 0;
    for (int tries = 0; tries < 50 && n == 0; tries++) n = bus_poll(c, m, 8, 20);
    assert_int_equal(n, 1);
    bus_batch_t b;
    bus_batch_init(&b);
    assert_int_equal(f->def[CH_PUSH].process(f->state[CH_PUSH], NULL, m, n, &b), HR_OK);
    assert_int_equal(bus_batch_wait(f->app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    bus_consumer_close(c);
    read_statuses(f);
    assert_int_equal(f->status[0], ST_SENT);
    assert_int_equal(fake_http_requests(f->srv), 2);
    buf_release(&enc);
    dfx_close(f);
    free(f);
}

/* ------------------------------------------------------------ the incident */

/* A channel's input in the emulated stage loop: encoded records not yet
 * handled, in order. */
typedef struct queue {
    buf_t data[MAXN];
    int head, tail;
} queue_t;

static void q_push(queue_t *q, const void *p, size_t n)
{
    buf_init(&q->data[q->tail], 0);
    buf_append(&q->data[q->tail++], p, n);
}

/* Offers up to max records of q to channel ch (titles rewritten for the
 * push provider's scripted health); drops them unless HR_LATER. */
static void offer(dfx_t *f, channel_t ch, queue_t *q, int max, bool outage, int *flip)
{
    int n = q->tail - q->head < max ? q->tail - q->head : max;
    if (n == 0) return;
    buf_t enc;
    buf_init(&enc, 0);
    size_t at[64] = {0};
    for (int i = 0; i < n; i++) {
        at[i] = enc.len;
        notif_t x;
        assert_int_equal(notif_decode(q->data[q->head + i].data, q->data[q->head + i].len, &x), HR_OK);
        /* the provider's answer at this moment: during the outage every
         * other request fails (503) */
        x.title = HSTR(ch == CH_PUSH && outage && ((*flip)++ & 1) == 0 ? "status=503" : "status=200");
        assert_int_equal(notif_encode(&x, &enc), HR_OK);
    }
    hr_t r = process(f, ch, &enc, at, n);
    buf_release(&enc);
    if (r == HR_LATER) return;
    assert_int_equal(r, HR_OK);
    for (int i = 0; i < n; i++) buf_release(&q->data[q->head + i]);
    q->head += n;
}

/* What the retry consumers do: records of the push retry tiers wait in w
 * until due, then go back into q. */
static void retry_tiers(bus_consumer_t **tiers, queue_t *w, queue_t *q, int64_t now)
{
    for (int t = 0; t < RETRY_TIERS; t++) {
        bus_msg_t m[256];
        int n;
        while ((n = bus_poll(tiers[t], m, 256, 0)) > 0)
            for (int i = 0; i < n; i++) q_push(w, m[i].value, m[i].value_len);
    }
    int keep = w->head;
    for (int j = w->head; j < w->tail; j++) {
        notif_t x;
        assert_int_equal(notif_decode(w->data[j].data, w->data[j].len, &x), HR_OK);
        if (x.due_at_ms <= now) {
            q_push(q, w->data[j].data, w->data[j].len);
            buf_release(&w->data[j]);
        } else {
            w->data[keep++] = w->data[j];
        }
    }
    w->tail = keep;
}

static int dlq_with_reason(dfx_t *f)
{
    const char *topics[] = {TOPIC_DLQ};
    bus_consumer_t *c;
    assert_int_equal(bus_consumer_new(f->app.bus, "t-dlq", topics, 1, NULL, &c), HR_OK);
    bus_msg_t m[256];
    int total = 0, n;
    for (int tries = 0; tries < 5; tries++)
        while ((n = bus_poll(c, m, 256, 20)) > 0)
            for (int i = 0; i < n; i++) {
                json_error_t err;
                json_t *o = json_loadb(m[i].value, m[i].value_len, 0, &err);
                assert_non_null(o);
                const char *reason = json_string_value(json_object_get(o, "reason"));
                total += reason && strncmp(reason, "retries exhausted", 17) == 0;
                json_decref(o);
            }
    bus_consumer_close(c);
    return total;
}

static void test_incident_breaker(void **st)
{
    (void)st;
    dfx_t *f = calloc(1, sizeof(*f));
    /* compressed time: one "minute" = 1000 ms of the fake clock, a tick =
     * 100 ms; the breaker's window 2 s, cool-down 3 s */
    const char *kv[] = {"ratelimit.push", "0", "ratelimit.email", "0", "retry.delays_ms", "100,200,300",
                        "provider.fcmfake.breaker_window_ms", "2000", "provider.fcmfake.breaker_cooldown_ms",
                        "3000", NULL};
    dfx_open(f, kv);
    static queue_t qp, qe, qw;
    memset(&qp, 0, sizeof(qp));
    memset(&qe, 0, sizeof(qe));
    memset(&qw, 0, sizeof(qw));
    const char *rt[RETRY_TIERS];
    bus_consumer_t *tiers[RETRY_TIERS];
    for (int t = 0; t < RETRY_TIERS; t++) {
        rt[t] = names_for_channel(CH_PUSH)->retry_topic[t];
        assert_int_equal(bus_consumer_new(f->app.bus, "t-retry", &rt[t], 1, NULL, &tiers[t]), HR_OK);
    }
    const int64_t t0 = INT64_C(1767225600000), minute = 1000, tick = 100;
    const int before = 5, outage = 30, after = 20; /* minutes */
    int per_tick = 10, k = 0, flip = 0;
    int push_req_min[64] = {0}, email_req_min[64] = {0};
    int npush = 0, nemail = 0;
    int64_t drained_at = -1;
    int total_min = before + outage + after;
    for (int64_t now = t0; now < t0 + total_min * minute; now += tick) {
        hclock_set_fake(now);
        int min = (int)((now - t0) / minute);
        bool in_outage = min >= before && min < before + outage;
        int p0 = fake_http_requests(f->srv), e0 = fake_http_requests(f->esrv);
        if (min < before + outage) { /* new traffic until the outage ends */
            buf_t b;
            buf_init(&b, 0);
            for (int i = 0; i < per_tick; i++) {
                char user[32];
                snprintf(user, sizeof(user), "u%d", k);
                buf_reset(&b);
                encode(&b, k++, CH_PUSH, user, "status=200", PRIO_NORMAL, "", NOTIF_QUIET_NONE, NOTIF_QUIET_NONE);
                q_push(&qp, b.data, b.len);
                npush++;
                buf_reset(&b);
                encode(&b, k++, CH_EMAIL, user, "status=200", PRIO_NORMAL, "", NOTIF_QUIET_NONE, NOTIF_QUIET_NONE);
                q_push(&qe, b.data, b.len);
                nemail++;
            }
            buf_release(&b);
        }
        retry_tiers(tiers, &qw, &qp, now);
        /* not closed: one record per batch (the real loop rewinds what the
         * half-open breaker does not let through) */
        bool closed = breaker_channel_state(CH_PUSH) == BREAKER_CLOSED;
        offer(f, CH_PUSH, &qp, closed ? 50 : 1, in_outage, &flip);
        offer(f, CH_EMAIL, &qe, 50, false, &flip);
        push_req_min[min] += fake_http_requests(f->srv) - p0;
        email_req_min[min] += fake_http_requests(f->esrv) - e0;
        if (!in_outage && min >= before + outage && drained_at < 0 && qp.head == qp.tail && qw.head == qw.tail) {
            read_statuses(f);
            bool pending = false;
            for (int j = 0; j < k && !pending; j++) pending = f->status[j] == ST_FAILED;
            if (!pending) drained_at = now;
        }
    }
    read_statuses(f);
    int sent = count_status(f, 0, k, ST_SENT), dead = count_status(f, 0, k, ST_DEAD);
    int limited = count_status(f, 0, k, ST_RATE_LIMITED), deferred = count_status(f, 0, k, ST_DEFERRED);
    int lost = k - sent - dead - limited - deferred;
    int bmax = 0, omax = 0, emin = 1 << 30, emax = 0;
    for (int m = 0; m < before; m++) bmax = push_req_min[m] > bmax ? push_req_min[m] : bmax;
    for (int m = before + 1; m < before + outage; m++) omax = push_req_min[m] > omax ? push_req_min[m] : omax;
    for (int m = 0; m < before + outage; m++) {
        emin = email_req_min[m] < emin ? email_req_min[m] : emin;
        emax = email_req_min[m] > emax ? email_req_min[m] : emax;
    }
    printf("incident (compressed: 1 min = %lld ms fake time, %d push + %d email per tick of %lld ms)\n",
           (long long)minute, per_tick, per_tick, (long long)tick);
    printf("  push requests per minute: before %d, during the outage at most %d (first minute %d)\n", bmax, omax,
           push_req_min[before]);
    printf("  email requests per minute: %d..%d throughout\n", emin, emax);
    printf("  push lag drained %lld ms (%.1f min) after recovery\n",
           (long long)(drained_at < 0 ? -1 : drained_at - (t0 + (before + outage) * minute)),
           drained_at < 0 ? -1.0 : (double)(drained_at - (t0 + (before + outage) * minute)) / (double)minute);
    printf("  notifications %d (push %d, email %d): sent %d, rate_limited %d, deferred %d, dead %d, lost %d\n", k,
           npush, nemail, sent, limited, deferred, dead, lost);
    assert_int_equal(lost, 0);
    assert_int_equal(limited + deferred, 0);
    assert_true(drained_at > 0);
    assert_true(omax < bmax / 4);                 /* bounded: no retry storm */
    assert_int_equal(emin, per_tick * 10);        /* email at full speed every minute */
    assert_int_equal(count_status(f, 0, k, ST_SENT) + dead, k);
    int dlq = dlq_with_reason(f);
    printf("  DLQ records with a reason: %d (dead %d)\n", dlq, dead);
    assert_int_equal(dlq, dead);
    for (int t = 0; t < RETRY_TIERS; t++) bus_consumer_close(tiers[t]);
    for (int j = qp.head; j < qp.tail; j++) buf_release(&qp.data[j]);
    for (int j = qe.head; j < qe.tail; j++) buf_release(&qe.data[j]);
    dfx_close(f);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_limit_local),
        cmocka_unit_test(test_rate_limit_redis),
        cmocka_unit_test(test_quiet_hours_defer_then_deliver),
        cmocka_unit_test(test_incident_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
