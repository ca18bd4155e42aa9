/*
 * test_metrics.c - per-thread counters (sums across threads, also after
 * they exit), the exposition read back by the parser the benchmark uses,
 * and the process metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "http/http.h"
#include "metrics/metrics.h"

#include <curl/curl.h>

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ counters */

#define THREADS 4
#define PER_THREAD 200000

typedef struct worker {
    pthread_barrier_t *counted;  /* every worker has counted */
    pthread_barrier_t *release;  /* the main thread has checked the live sums */
} worker_t;

static void *count_then_wait(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        METRIC_INC(notifs_sent);
        METRIC_ADD_AT(http_responses, 2, 3);
    }
    METRIC_ADD(status_rows_written, 7);
    pthread_barrier_wait(w->counted);
    pthread_barrier_wait(w->release);
    return NULL;   /* the thread ends: its counts move to the retired total */
}

typedef struct reader {
    atomic_int stop;
    int64_t last;
    bool went_back;
} reader_t;

/* Reads while the workers count: a counter never goes backwards. */
static void *read_while_counting(void *arg)
{
    reader_t *r = arg;
    while (!atomic_load(&r->stop)) {
        int64_t v = METRIC_VALUE(notifs_sent);
        if (v < r->last) r->went_back = true;
        r->last = v;
    }
    return NULL;
}

static void test_threads_sum(void **state)
{
    (void)state;
    int64_t sent0 = METRIC_VALUE(notifs_sent);
    int64_t ok0 = METRIC_VALUE_AT(http_responses, 2);
    int64_t other0 = METRIC_VALUE_AT(http_responses, 4);
    int64_t rows0 = METRIC_VALUE(status_rows_written);

    pthread_barrier_t counted, release;
    pthread_barrier_init(&counted, NULL, THREADS + 1);
    pthread_barrier_init(&release, NULL, THREADS + 1);
    worker_t w = {&counted, &release};
    reader_t rd = {.last = sent0};
    pthread_t t[THREADS], reader;
    assert_int_equal(pthread_create(&reader, NULL, read_while_counting, &rd), 0);
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, count_then_wait, &w), 0);

    /* all counted, all still alive: the sum of the live blocks */
    pthread_barrier_wait(&counted);
    int64_t want = (int64_t)THREADS * PER_THREAD;
    assert_int_equal(METRIC_VALUE(notifs_sent) - sent0, want);
    assert_int_equal(METRIC_VALUE_AT(http_responses, 2) - ok0, 3 * want);
    assert_int_equal(METRIC_VALUE_AT(http_responses, 4) - other0, 0);
    assert_int_equal(METRIC_VALUE(status_rows_written) - rows0, 7 * THREADS);

    /* all gone: the same sums from the retired total */
    pthread_barrier_wait(&release);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    atomic_store(&rd.stop, 1);
    pthread_join(reader, NULL);
    assert_false(rd.went_back);
    assert_int_equal(METRIC_VALUE(notifs_sent) - sent0, want);
    assert_int_equal(METRIC_VALUE_AT(http_responses, 2) - ok0, 3 * want);
    assert_int_equal(METRIC_VALUE(status_rows_written) - rows0, 7 * THREADS);

    /* and the snapshot agrees with the single reads */
    metrics_snap_t *s = malloc(sizeof(*s));
    metrics_snapshot(s);
    assert_int_equal(s->notifs_sent, METRIC_VALUE(notifs_sent));
    assert_int_equal(s->http_responses[2], METRIC_VALUE_AT(http_responses, 2));
    assert_true(isnan(s->process_cpu_seconds));
    free(s);
    pthread_barrier_destroy(&counted);
    pthread_barrier_destroy(&release);
}

/* ------------------------------------------------------------ exposition */

/* A snapshot with a distinct value everywhere. */
static void fill(metrics_snap_t *s)
{
    metrics_collect(NULL, s);   /* process values; no bus: no lag */
    s->events_accepted = 1;
    s->events_rejected = 2;
    s->events_duplicate = 3;
    s->notifs_fanned_out = 4000000000000LL;
    s->notifs_suppressed = 5;
    s->notifs_sent = 6;
    s->notifs_failed = 7;
    s->dlq_records = 8;
    s->status_rows_written = 9;
    for (int i = 0; i < METRIC_N_HTTP_CLASS; i++) s->http_responses[i] = 100 + i;
    for (int i = 0; i < METRIC_N_CHANNEL_RESULT; i++) s->delivery_attempts[i] = 200 + i;
    for (int i = 0; i < METRIC_N_BUS_GROUP; i++) s->bus_lag[i] = i == 3 ? NAN : 10.0 * i;
    static hist_t h[CH__COUNT];
    memset(h, 0, sizeof(h));
    for (int ch = 0; ch < CH__COUNT; ch++) {
        hist_local_t l;
        hist_local_init(&l);
        /* 16 us .. 100 s, the range the fine exposition covers */
        for (uint64_t v = 16 + (uint64_t)ch; v < 100000000; v = v * 3 / 2 + 1)
            for (int k = 0; k <= ch; k++) hist_record(&l, v);
        hist_merge(&h[ch], &l);
        hist_read(&h[ch], &s->delivery_latency[ch]);
        s->delivery_latency_max[ch] = (double)s->delivery_latency[ch].max / 1e6;
    }
    static hist_t w;
    memset(&w, 0, sizeof(w));
    hist_local_t l;
    hist_local_init(&l);
    for (uint64_t v = 100; v < 5000000; v = v * 2 + 7) hist_record(&l, v);
    hist_merge(&w, &l);
    hist_read(&w, &s->status_write);
}

static void assert_same_values(const metrics_snap_t *a, const metrics_snap_t *b, bool fine)
{
    for (size_t k = 0; k < metric_ndefs; k++) {
        const metric_def_t *d = &metric_defs[k];
        const char *fa = (const char *)a + d->off, *fb = (const char *)b + d->off;
        for (int i = 0; i < d->n; i++) {
            if (d->kind == MK_COUNTER) {
                assert_int_equal(((const int64_t *)fa)[i], ((const int64_t *)fb)[i]);
            } else if (d->kind == MK_READ) {
                double x = ((const double *)fa)[i], y = ((const double *)fb)[i];
                if (isnan(x) || isnan(y)) assert_true(isnan(x) && isnan(y));
                else if (x != y) fail_msg("%s[%d]: %.17g != %.17g", d->name, i, x, y);
            } else {
                const hist_snap_t *x = (const hist_snap_t *)fa + i, *y = (const hist_snap_t *)fb + i;
                assert_int_equal(x->total, y->total);
                assert_int_equal(x->sum, y->sum);
                if (fine) assert_memory_equal(x->count, y->count, sizeof(x->count));
                else assert_memory_equal(x->coarse, y->coarse, sizeof(x->coarse));
            }
        }
    }
}

/* Structure a scraper checks: cumulative buckets never fall, bounds rise,
 * +Inf equals _count; every sample follows a TYPE line of its family. */
static void assert_well_formed(const char *text)
{
    char family[128] = "";
    double last_le = -1;
    unsigned long long last_cum = 0, inf = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "# TYPE ", 7) == 0) {
            snprintf(family, sizeof(family), "%.*s", (int)strcspn(l + 7, " "), l + 7);
            last_le = -1;
            continue;
        }
        if (l[0] == '#') continue;
        assert_true(family[0] && strncmp(l, family, strlen(family)) == 0);
        const char *le = strstr(l, "le=\"");
        unsigned long long v = strtoull(strrchr(l, ' ') + 1, NULL, 10);
        if (le) {
            double b = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
            if (last_le >= 0 && b > last_le) assert_true(v >= last_cum);
            last_le = b;
            last_cum = v;
            if (isinf(b)) inf = v, last_le = -1;
        } else if (strstr(l, "_count")) {
            assert_int_equal(v, inf);
        }
    }
    free(copy);
}

static void round_trip(bool fine)
{
    metrics_snap_t *s = malloc(sizeof(*s)), *p = malloc(sizeof(*p));
    fill(s);
    buf_t text, again;
    buf_init(&text, 0);
    buf_init(&again, 0);
    metrics_snap_format(s, fine ? METRICS_FINE : 0, &text);
    buf_cstr(&text);
    assert_well_formed(text.data);
    assert_int_equal(metrics_snap_parse(text.data, p), HR_OK);
    assert_same_values(s, p, fine);
    /* and written again, the same text */
    metrics_snap_format(p, fine ? METRICS_FINE : 0, &again);
    buf_cstr(&again);
    assert_string_equal(again.data, text.data);
    buf_release(&text);
    buf_release(&again);
    free(s);
    free(p);
}

static void test_round_trip_coarse(void **state)
{
    (void)state;
    round_trip(false);
}

static void test_round_trip_fine(void **state)
{
    (void)state;
    round_trip(true);
}

static void test_exposition_text(void **state)
{
    (void)state;
    metrics_snap_t *s = malloc(sizeof(*s));
    fill(s);
    buf_t b;
    buf_init(&b, 0);
    metrics_snap_format(s, 0, &b);
    buf_cstr(&b);
    /* names and labels as dashboards know them */
    assert_non_null(strstr(b.data, "# TYPE herald_events_accepted_total counter\nherald_events_accepted_total 1\n"));
    assert_non_null(strstr(b.data, "\nherald_notifications_fanned_out_total 4000000000000\n"));
    assert_non_null(strstr(b.data, "\nherald_http_responses_total{class=\"aborted\"} 100\n"));
    assert_non_null(strstr(b.data, "\nherald_http_responses_total{class=\"5xx\"} 105\n"));
    assert_non_null(strstr(b.data, "\nherald_delivery_latency_seconds_bucket{channel=\"sms\",le=\"0.5\"} "));
    /* outcomes per channel: channel-major, sent, failed, dead */
    assert_non_null(strstr(b.data, "\nherald_delivery_attempts_total{channel=\"push\",result=\"sent\"} 200\n"));
    assert_non_null(strstr(b.data, "\nherald_delivery_attempts_total{channel=\"push\",result=\"dead\"} 202\n"));
    assert_non_null(strstr(b.data, "\nherald_delivery_attempts_total{channel=\"sms\",result=\"failed\"} 204\n"));
    assert_int_equal(METRIC_CHANNEL_RESULT(CH_SMS, METRIC_RESULT_FAILED), 4);
    /* an unlabelled histogram: le is its only label */
    assert_non_null(strstr(b.data, "\nherald_status_write_seconds_bucket{le=\"0.001\"} "));
    assert_non_null(strstr(b.data, "\nherald_status_write_seconds_count "));
    assert_non_null(strstr(b.data, "\nherald_bus_lag_records{group=\"fanout\",topic=\"raw-events\"} 0\n"));
    assert_non_null(strstr(b.data, "\nherald_bus_lag_records{group=\"dispatch-push\",topic=\"notifications-push\"} 10\n"));
    assert_null(strstr(b.data, "group=\"dispatch-email\""));     /* NaN: not exposed */
    assert_non_null(strstr(b.data, "\nherald_build_info{version=\"" HERALD_VERSION "\",bus=\"none\"} 1\n"));
    assert_non_null(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    /* about 30 buckets per channel, against 186 fine ones */
    int n = 0;
    for (const char *p = b.data; (p = strstr(p, "_bucket{channel=\"push\"")); p++) n++;
    assert_int_equal(n, HIST_COARSE + 1);
    /* a gauge that is absent everywhere is left out with its HELP */
    for (int i = 0; i < METRIC_N_BUS_GROUP; i++) s->bus_lag[i] = NAN;
    buf_reset(&b);
    metrics_snap_format(s, 0, &b);
    buf_cstr(&b);
    assert_null(strstr(b.data, "herald_bus_lag_records"));
    buf_release(&b);
    free(s);
}

/* A coarse value is counted in the bucket under its round bound. */
static void test_coarse_counts(void **state)
{
    (void)state;
    hist_t h;
    memset(&h, 0, sizeof(h));
    hist_local_t l;
    hist_local_init(&l);
    hist_record(&l, 499999);   /* < 0.5 s */
    hist_record(&l, 500000);   /* = 0.5 s: the next bucket (a value of v us is [v, v+1) us) */
    hist_merge(&h, &l);
    metrics_snap_t *s = malloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    hist_read(&h, &s->delivery_latency[CH_EMAIL]);
    buf_t b;
    buf_init(&b, 0);
    metrics_snap_format(s, 0, &b);
    buf_cstr(&b);
    assert_non_null(strstr(b.data, "_bucket{channel=\"email\",le=\"0.3\"} 0\n"));
    assert_non_null(strstr(b.data, "_bucket{channel=\"email\",le=\"0.5\"} 1\n"));
    assert_non_null(strstr(b.data, "_bucket{channel=\"email\",le=\"0.7\"} 2\n"));
    assert_non_null(strstr(b.data, "_sum{channel=\"email\"} 0.999999\n"));
    assert_non_null(strstr(b.data, "_count{channel=\"email\"} 2\n"));
    buf_release(&b);
    free(s);
}

static void test_parse_rejects_foreign_text(void **state)
{
    (void)state;
    metrics_snap_t *s = malloc(sizeof(*s));
    assert_int_equal(metrics_snap_parse("", s), HR_INVALID);
    assert_int_equal(metrics_snap_parse("# HELP x y\nother_metric 3\n{broken\n} 1\n", s), HR_INVALID);
    assert_int_equal(metrics_snap_parse("junk\nherald_dlq_records_total 42\n", s), HR_OK);
    assert_int_equal(s->dlq_records, 42);
    assert_true(isnan(s->process_open_fds));
    free(s);
}

/* The live exposition reads back with the counters' current values. */
static void test_render_parse(void **state)
{
    (void)state;
    METRIC_ADD(dlq_records, 5);
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(metrics_render(NULL, 0, &b), HR_OK);
    buf_cstr(&b);
    metrics_snap_t *s = malloc(sizeof(*s));
    assert_int_equal(metrics_snap_parse(b.data, s), HR_OK);
    assert_int_equal(s->dlq_records, METRIC_VALUE(dlq_records));
    assert_true(s->dlq_records >= 5);
    assert_true(isnan(s->bus_lag[0]));
    buf_release(&b);
    free(s);
}

/* ------------------------------------------------------------ process */

static void test_process(void **state)
{
    (void)state;
    metrics_snap_t *s = malloc(sizeof(*s));
    /* CPU time advances in clock ticks: spend one or two */
    volatile uint64_t x = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++) x += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 30000000L);
    metrics_collect(NULL, s);
    assert_true(s->process_cpu_seconds > 0);
    assert_true(s->process_cpu_seconds < 3600);
    assert_true(s->process_resident_memory > 1 << 20);
    assert_true(s->process_virtual_memory >= s->process_resident_memory);
    assert_true(s->process_open_fds >= 3);   /* stdin, stdout, stderr */
    assert_true(s->process_max_fds >= s->process_open_fds);
    double now = (double)time(NULL);
    assert_true(s->process_start_time <= now + 1 && s->process_start_time > now - 3600);

    /* one more descriptor open, one more counted */
    double fds = s->process_open_fds;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    metrics_collect(NULL, s);
    assert_true(s->process_open_fds == fds + 1);
    close(fd);
    free(s);
}

/* ------------------------------------------------------------ HTTP */

static size_t collect_body(char *p, size_t size, size_t n, void *ud)
{
    buf_append((buf_t *)ud, p, size * n);
    return size * n;
}

/* Status of a request to the server on port; the body into body. */
static long call(int port, const char *method, const char *path, buf_t *body)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    buf_reset(body);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (strcmp(method, "POST") == 0) curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    buf_cstr(body);
    return status;
}

/* A process without the ingest role still answers health and metrics
 * requests, and only those. */
static void test_ops_whatever_the_roles(void **state)
{
    (void)state;
    config_t cfg;
    config_init(&cfg);
    char why[256];
    assert_int_equal(config_set(&cfg, "roles", "fanout,status", why, sizeof(why)), HR_OK);
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg = &cfg;
    http_server_t *srv = NULL;
    assert_int_equal(http_start(&app, "127.0.0.1:0", &srv), HR_OK);
    int port = http_port(srv);
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(call(port, "GET", "/healthz", &b), 200);
    int64_t ok0 = METRIC_VALUE_AT(http_responses, 2);
    assert_int_equal(call(port, "GET", "/metrics", &b), 200);
    metrics_snap_t *s = malloc(sizeof(*s));
    assert_int_equal(metrics_snap_parse(b.data, s), HR_OK);
    /* the scrape saw /healthz's response and at most what was counted since */
    assert_true(s->http_responses[2] >= ok0);
    assert_true(s->http_responses[2] <= METRIC_VALUE_AT(http_responses, 2));
    assert_true(s->process_resident_memory > 0);
    /* the fine buckets on request */
    assert_int_equal(call(port, "GET", "/metrics?buckets=fine", &b), 200);
    assert_non_null(strstr(b.data, "_bucket{channel=\"push\",le=\"1.6e-05\"} "));
    int64_t bad0 = METRIC_VALUE_AT(http_responses, 4);
    assert_int_equal(call(port, "GET", "/metrics?buckets=many", &b), 400);
    /* the API is not served */
    assert_int_equal(call(port, "POST", "/v1/events", &b), 404);
    assert_non_null(strstr(b.data, "ingest role"));
    assert_int_equal(call(port, "GET", "/v1/users/ann", &b), 404);
    http_stop(srv);
    /* each answer counted once by class, also once the server's threads
     * have ended */
    assert_int_equal(METRIC_VALUE_AT(http_responses, 4) - bad0, 3);
    buf_release(&b);
    free(s);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_sum),
        cmocka_unit_test(test_round_trip_coarse),
        cmocka_unit_test(test_round_trip_fine),
        cmocka_unit_test(test_exposition_text),
        cmocka_unit_test(test_coarse_counts),
        cmocka_unit_test(test_parse_rejects_foreign_text),
        cmocka_unit_test(test_render_parse),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_ops_whatever_the_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
