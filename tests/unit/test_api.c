/*
 * Tests for src/http/: the real server on an ephemeral port, over real HTTP
 * (libcurl, plus a raw socket where the exact bytes on the wire matter),
 * backed by a real embedded bus and a real SQLite store in a temporary
 * directory. Checks answers, problem+json bodies and their "field", and
 * what reached the raw-events topic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "app.h"
#include "http/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BODY (64 * 1024)
#define RAW_PARTITIONS 3

typedef struct fixture {
    char dir[64];
    config_t cfg;
    app_t app;
    http_server_t *srv;
    bus_consumer_t *raw;    /* group "api-test" on raw-events */
    int assigned;
    int port;
} fixture_t;

static fixture_t F;

/* ------------------------------------------------------------ HTTP client */

typedef struct hresp {
    long status;
    char ctype[128];
    char allow[128];
    char retry_after[32];
    char location[512];
    char *body;
    size_t len;
    json_t *json;
} hresp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    hresp_t *r = ud;
    r->body = realloc(r->body, r->len + sz * n + 1);
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static void copy_header(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':') return;
    const char *v = line + k + 1;
    size_t vl = n - k - 1;
    while (vl && (*v == ' ')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
    snprintf(out, cap, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    hresp_t *r = ud;
    copy_header(p, sz * n, "Content-Type", r->ctype, sizeof(r->ctype));
    copy_header(p, sz * n, "Allow", r->allow, sizeof(r->allow));
    copy_header(p, sz * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    copy_header(p, sz * n, "Location", r->location, sizeof(r->location));
    return sz * n;
}

static void hresp_clear(hresp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* Sends one request; body NULL = none. ctype NULL with a body = JSON. */
static void hreq_ct(hresp_t *r, const char *method, const char *path, const char *ctype,
                    const char *body)
{
    char url[1024];
    struct curl_slist *hdrs = NULL;
    char cth[160];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F.port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        snprintf(cth, sizeof(cth), "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, cth);
        hdrs = curl_slist_append(hdrs, "Expect:");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (r->body && r->len) r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void hreq(hresp_t *r, const char *method, const char *path, const char *body)
{
    hreq_ct(r, method, path, NULL, body);
}

/* Asserts an RFC 9457 problem with this status and (if given) field. */
static void assert_problem(const hresp_t *r, long status, const char *field)
{
    if (r->status != status) fail_msg("want %ld, got %ld: %s", status, r->status, r->body);
    assert_non_null(strstr(r->ctype, "application/problem+json"));
    assert_non_null(r->json);
    assert_int_equal(json_integer_value(json_object_get(r->json, "status")), status);
    assert_true(json_is_string(json_object_get(r->json, "type")));
    assert_true(json_is_string(json_object_get(r->json, "title")));
    assert_true(json_is_string(json_object_get(r->json, "detail")));
    if (field) {
        const char *f = json_string_value(json_object_get(r->json, "field"));
        if (!f || strcmp(f, field) != 0)
            fail_msg("want field \"%s\", got \"%s\" (%s)", field, f ? f : "(none)", r->body);
    }
}

static void assert_ok_json(const hresp_t *r, long status)
{
    if (r->status != status) fail_msg("want %ld, got %ld: %s", status, r->status, r->body);
    assert_non_null(strstr(r->ctype, "application/json"));
    assert_non_null(r->json);
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Sends raw bytes and returns what came back before the server closed or
 * went quiet for timeout_ms (caller frees). */
static char *raw_exchange(const char *req, size_t len, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)F.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t cap = 8192, n = 0;
    char *out = calloc(1, cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        ssize_t k = recv(fd, out + n, cap - n - 1, 0);
        if (k <= 0) break;
        n += (size_t)k;
        if (n + 1 >= cap) break;
    }
    out[n] = '\0';
    close(fd);
    return out;
}

/* ------------------------------------------------------------ bus helpers */

static void on_assigned(void *opaque, const char *topic, int32_t partition)
{
    ((fixture_t *)opaque)->assigned++;
}

static void on_revoked(void *opaque, const char *topic, int32_t partition)
{
    ((fixture_t *)opaque)->assigned--;
}

/* Reads raw-events until `want` records arrived (then a little longer, to
 * see any extra); returns the event_ids seen as a JSON array. */
static json_t *drain_raw(int want, int extra_ms)
{
    json_t *ids = json_array();
    bus_msg_t msgs[64];
    int64_t deadline = hclock_mono_ns() + 10 * 1000000000LL;
    int64_t settle = 0;
    for (;;) {
        int64_t now = hclock_mono_ns();
        if ((int)json_array_size(ids) >= want && !settle) settle = now + extra_ms * 1000000LL;
        if ((settle && now >= settle) || now >= deadline) break;
        int k = bus_poll(F.raw, msgs, 64, 50);
        assert_true(k >= 0);
        for (int i = 0; i < k; i++) {
            json_t *v = json_loadb(msgs[i].value, msgs[i].value_len, 0, NULL);
            assert_non_null(v);
            assert_true(json_is_integer(json_object_get(v, "_accepted_at_us")));
            const char *id = jstr(v, "event_id") ? jstr(v, "event_id") : jstr(v, "id");
            assert_non_null(id);
            assert_int_equal(msgs[i].key_len, strlen(id));
            assert_memory_equal(msgs[i].key, id, msgs[i].key_len);
            json_array_append_new(ids, json_string(id));
            json_decref(v);
            bus_store_offset(F.raw, msgs[i].topic, msgs[i].partition, msgs[i].offset + 1);
        }
    }
    return ids;
}

static bool ids_has(json_t *ids, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (strcmp(json_string_value(v), id) == 0) return true;
    return false;
}

/* ------------------------------------------------------------ fixture */

static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

static int setup(void **state)
{
    char path[256];
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/herald-api-XXXXXX");
    if (!mkdtemp(F.dir)) return -1;
    config_init(&F.cfg);
    F.cfg.http_max_body = MAX_BODY;
    F.cfg.http_threads = 2;
    F.app.cfg = &F.cfg;

    snprintf(path, sizeof(path), "%s/bus", F.dir);
    bus_opts_t bo = {.backend = "embedded", .dir = path, .fsync = "never"};
    if (bus_open(&bo, &F.app.bus) != HR_OK) return -1;
    bus_topic_opts_t to = {.partitions = RAW_PARTITIONS, .replication = 1, .min_insync = 1,
                           .retention_ms = -1, .retention_bytes = -1};
    if (bus_topic_ensure(F.app.bus, TOPIC_RAW, &to) != HR_OK) return -1;

    snprintf(path, sizeof(path), "%s/herald.db", F.dir);
    if (store_open("sqlite", path, &F.app.store) != HR_OK) return -1;

    /* join the group before anything is published, so the test sees every
     * record whatever the backend's starting position for a new group */
    const char *topics[] = {TOPIC_RAW};
    bus_rebalance_t rb = {.assigned = on_assigned, .revoked = on_revoked, .opaque = &F};
    if (bus_consumer_new(F.app.bus, "api-test", topics, 1, &rb, &F.raw) != HR_OK) return -1;
    bus_msg_t m[8];
    for (int i = 0; i < 100 && F.assigned < RAW_PARTITIONS; i++)
        if (bus_poll(F.raw, m, 8, 50) > 0) return -1; /* the topic starts empty */
    if (F.assigned != RAW_PARTITIONS) return -1;

    if (http_start(&F.app, "127.0.0.1:0", &F.srv) != HR_OK) return -1;
    F.port = http_port(F.srv);
    if (F.port <= 0) return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    *state = &F;
    return 0;
}

static int teardown(void **state)
{
    http_stop(F.srv);
    if (F.raw) bus_consumer_close(F.raw);
    store_close(F.app.store);
    bus_close(F.app.bus);
    config_release(&F.cfg);
    curl_global_cleanup();
    rm_tree(F.dir);
    return 0;
}

/* ------------------------------------------------------------ operations */

static void test_health(void **state)
{
    hresp_t r;
    hreq(&r, "GET", "/healthz", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "ok");
    hresp_clear(&r);

    hreq(&r, "HEAD", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    hresp_clear(&r);

    hreq(&r, "GET", "/readyz", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "status"), "ready");
    assert_string_equal(jstr(json_object_get(r.json, "checks"), "bus"), "ok");
    assert_string_equal(jstr(json_object_get(r.json, "checks"), "store"), "ok");
    hresp_clear(&r);

    /* draining: not ready, answered as a problem */
    atomic_store(&F.app.stopping, 1);
    hreq(&r, "GET", "/readyz", NULL);
    atomic_store(&F.app.stopping, 0);
    assert_problem(&r, 503, NULL);
    assert_string_equal(r.retry_after, "1");
    hresp_clear(&r);
}

/* Listen strings are checked, and a taken port is an error, not a share. */
static void test_listen(void **state)
{
    http_server_t *s = NULL;
    static const char *const bad[] = {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                                       "127.0.0.1:65536", "[::1", "[::1]8080"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(http_start(&F.app, bad[i], &s), HR_INVALID);
        assert_null(s);
    }
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", F.port);
    assert_int_equal(http_start(&F.app, taken, &s), HR_ERR);
    assert_null(s);

    /* a second server on another ephemeral port runs beside the first */
    assert_int_equal(http_start(&F.app, ":0", &s), HR_OK);
    assert_true(http_port(s) > 0);
    assert_int_not_equal(http_port(s), F.port);
    http_stop(s);
}

static void test_routing_errors(void **state)
{
    hresp_t r;
    hreq(&r, "GET", "/v1/nothing-here", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u1/unknown", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "DELETE", "/v1/users/u1", NULL);
    assert_problem(&r, 405, NULL);
    assert_non_null(strstr(r.allow, "GET"));
    assert_non_null(strstr(r.allow, "PUT"));
    assert_null(strstr(r.allow, "DELETE"));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/events", NULL);
    assert_problem(&r, 405, NULL);
    assert_non_null(strstr(r.allow, "POST"));
    hresp_clear(&r);

    hreq(&r, "OPTIONS", "/v1/topics/t/subscribers", NULL);
    assert_int_equal(r.status, 204);
    assert_non_null(strstr(r.allow, "POST"));
    assert_non_null(strstr(r.allow, "GET"));
    hresp_clear(&r);

    /* bad path parameters: malformed escape, control character, too long */
    hreq(&r, "GET", "/v1/users/%zz", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/a%01b", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/bad%FFutf8", NULL);
    assert_problem(&r, 400, "user_id");
    hresp_clear(&r);
    char path[400] = "/v1/notifications/";
    memset(path + strlen(path), 'n', 201);
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 400, "notification_id");
    hresp_clear(&r);
    path[strlen("/v1/notifications/") + 200] = '\0'; /* 200 bytes is fine */
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* ------------------------------------------------------------ events */

static const char good_batch[] =
    "[{\"event_id\":\"ev-good-1\",\"type\":\"comment\",\"actor\":\"kylie\","
    "\"audience\":{\"users\":[\"u1\",\"u2\"]},\"data\":{\"text\":\"hi\"}},"
    " {\"event_id\":\"ev-good-2\",\"type\":\"restock\",\"audience\":{\"topic\":\"product:iphone15\"},"
    "\"priority\":\"high\"},"
    " {\"event_id\":\"ev-good-3\",\"type\":\"post\",\"actor\":\"kylie\","
    "\"audience\":{\"followers_of\":\"kylie\"},\"channels\":[\"push\",\"inapp\"]}]";

static void test_events(void **state)
{
    hresp_t r;

    /* a batch with one bad event publishes nothing */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-bad-0\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-bad-1\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-bad-2\",\"type\":\"t\"},"
         " {\"event_id\":\"ev-bad-3\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}]");
    assert_problem(&r, 422, "[2].audience");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-bad-4\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\",7]}}]");
    assert_problem(&r, 422, "[0].audience.users[1]");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "[{\"event_id\":\"ev-bad-5\",\"type\":\"t\","
                                   "\"audience\":{\"users\":[\"u1\"]}}, 42]");
    assert_problem(&r, 422, "[1]");
    hresp_clear(&r);

    /* a good batch of 3 */
    hreq(&r, "POST", "/v1/events", good_batch);
    assert_ok_json(&r, 202);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 3);
    json_t *ids = json_object_get(r.json, "event_ids");
    assert_int_equal(json_array_size(ids), 3);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "ev-good-1");
    assert_string_equal(json_string_value(json_array_get(ids, 2)), "ev-good-3");
    hresp_clear(&r);

    json_t *seen = drain_raw(3, 300);
    assert_int_equal(json_array_size(seen), 3);
    assert_true(ids_has(seen, "ev-good-1"));
    assert_true(ids_has(seen, "ev-good-2"));
    assert_true(ids_has(seen, "ev-good-3"));
    json_decref(seen);

    /* one object */
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"ev-one\",\"type\":\"comment\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_ok_json(&r, 202);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 1);
    hresp_clear(&r);

    /* CloudEvents, structured and batch; a charset parameter is fine */
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents+json; charset=utf-8",
            "{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"type\":\"com.shop.restock\","
            "\"source\":\"/shop\",\"time\":\"2024-05-01T12:00:00Z\",\"subject\":\"shop\","
            "\"data\":{\"audience\":{\"topic\":\"product:iphone15\"},\"sku\":\"iphone15\"}}");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents-batch+json",
            "[{\"specversion\":\"1.0\",\"id\":\"ce-2\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents-batch+json",
            "{\"specversion\":\"1.0\",\"id\":\"ce-bad\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq_ct(&r, "POST", "/v1/events", "application/cloudevents+json",
            "{\"specversion\":\"1.0\",\"type\":\"t\",\"source\":\"/s\","
            "\"audience\":{\"users\":[\"u9\"]}}");
    assert_problem(&r, 422, "id");
    hresp_clear(&r);

    seen = drain_raw(3, 300);
    assert_int_equal(json_array_size(seen), 3);
    assert_true(ids_has(seen, "ev-one"));
    assert_true(ids_has(seen, "ce-1"));
    assert_true(ids_has(seen, "ce-2"));
    json_decref(seen);

    /* bad input of every kind; none of it may reach the bus */
    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-x\",\"type\":");
    assert_problem(&r, 400, "body");
    assert_true(json_is_integer(json_object_get(r.json, "line")));
    assert_true(json_is_integer(json_object_get(r.json, "column")));
    assert_non_null(strstr(jstr(r.json, "detail"), "line 1"));
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "");
    assert_problem(&r, 400, "body");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"a\",\"event_id\":\"b\"}");
    assert_problem(&r, 400, "body"); /* duplicate keys are refused */
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":42,\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-p\",\"type\":\"t\",\"priority\":5,"
                                   "\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 422, "priority");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/events", "[]");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);

    hreq_ct(&r, "POST", "/v1/events", "text/plain",
            "{\"event_id\":\"ev-ct\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    assert_problem(&r, 415, "Content-Type");
    hresp_clear(&r);

    /* 1001 events: over the batch limit (and under the byte limit) */
    {
        buf_t b;
        buf_init(&b, 0);
        buf_append_str(&b, "[");
        for (int i = 0; i < 1001; i++) buf_printf(&b, "%s{}", i ? "," : "");
        buf_append_str(&b, "]");
        hreq(&r, "POST", "/v1/events", buf_cstr(&b));
        assert_problem(&r, 422, "body");
        hresp_clear(&r);
        buf_release(&b);
    }

    seen = drain_raw(0, 500);
    assert_int_equal(json_array_size(seen), 0);
    json_decref(seen);

    assert_true(METRIC_VALUE(events_accepted) >= 6);
    assert_true(METRIC_VALUE(events_rejected) >= 10);
}

/* A body over the limit is refused from its Content-Length before it is
 * sent; one without Content-Length (chunked) once it passes the limit. */
static void test_body_limit(void **state)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n",
                     MAX_BODY * 4);
    char *out = raw_exchange(req, (size_t)n, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_null(strstr(out, "100 Continue"));
    assert_non_null(strstr(out, "application/problem+json"));
    assert_non_null(strstr(out, "\"field\":\"body\""));
    free(out);

    /* same without Expect: still answered without reading the body */
    n = snprintf(req, sizeof(req),
                 "PUT /v1/users/u-big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n{\"email\":",
                 MAX_BODY + 1);
    out = raw_exchange(req, (size_t)n, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    free(out);

    /* chunked: the server drains to the end and answers 413 */
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    char chunk[8192];
    memset(chunk, ' ', sizeof(chunk));
    for (int i = 0; i < (MAX_BODY / (int)sizeof(chunk)) + 2; i++) {
        buf_printf(&b, "%zx\r\n", sizeof(chunk));
        buf_append(&b, chunk, sizeof(chunk));
        buf_append_str(&b, "\r\n");
    }
    buf_append_str(&b, "0\r\n\r\n");
    out = raw_exchange(b.data, b.len, 5000);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_non_null(strstr(out, "\"field\":\"body\""));
    free(out);
    buf_release(&b);

    /* just under the limit is read (and then judged on its content) */
    buf_init(&b, 0);
    buf_append_str(&b, "{\"pad\":\"");
    while (b.len < MAX_BODY - 100) buf_append_str(&b, "xxxxxxxxxxxxxxxx");
    buf_append_str(&b, "\"}");
    hresp_t r;
    hreq(&r, "POST", "/v1/events", buf_cstr(&b));
    assert_problem(&r, 422, "event_id");
    hresp_clear(&r);
    buf_release(&b);

    /* the server still works */
    hreq(&r, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
}

/* ------------------------------------------------------------ users */

static void test_users(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-alice",
         "{\"email\":\"alice@example.com\",\"phone\":\"+14155550100\",\"locale\":\"pt-BR\","
         "\"timezone\":\"America/Sao_Paulo\",\"quiet_hours\":{\"start\":\"22:00\",\"end\":\"07:00\"},"
         "\"devices\":[{\"platform\":\"apns\",\"token\":\"tok-a\"},{\"platform\":\"fcm\",\"token\":\"tok-f\"}],"
         "\"webhook_url\":\"https://hooks.example.com/alice\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "u-alice");
    assert_string_equal(jstr(r.json, "email"), "alice@example.com");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-alice", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "phone"), "+14155550100");
    assert_string_equal(jstr(r.json, "locale"), "pt-BR");
    assert_string_equal(jstr(r.json, "timezone"), "America/Sao_Paulo");
    assert_string_equal(jstr(json_object_get(r.json, "quiet_hours"), "start"), "22:00");
    assert_string_equal(jstr(json_object_get(r.json, "quiet_hours"), "end"), "07:00");
    json_t *devs = json_object_get(r.json, "devices");
    assert_int_equal(json_array_size(devs), 2);
    assert_string_equal(jstr(json_array_get(devs, 1), "platform"), "fcm");
    assert_string_equal(jstr(json_array_get(devs, 1), "token"), "tok-f");
    assert_string_equal(jstr(r.json, "webhook_url"), "https://hooks.example.com/alice");
    assert_true(json_is_string(json_object_get(r.json, "updated_at")));
    hresp_clear(&r);

    /* PUT replaces: absent fields go back to defaults */
    hreq(&r, "PUT", "/v1/users/u-alice", "{\"email\":\"alice@example.org\"}");
    assert_ok_json(&r, 200);
    assert_true(json_is_null(json_object_get(r.json, "phone")));
    assert_string_equal(jstr(r.json, "locale"), "en");
    assert_string_equal(jstr(r.json, "timezone"), "UTC");
    assert_true(json_is_null(json_object_get(r.json, "quiet_hours")));
    assert_int_equal(json_array_size(json_object_get(r.json, "devices")), 0);
    hresp_clear(&r);

    /* ids are percent-decoded */
    hreq(&r, "PUT", "/v1/users/team%2Fbob%20b", "{\"email\":\"bob@example.com\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "user_id"), "team/bob b");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/team%2Fbob%20b", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "email"), "bob@example.com");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/nobody", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{\"email\":\"not-an-address\"}", "email"},
        {"{\"email\":5}", "email"},
        {"{\"phone\":\"4155550100\"}", "phone"},
        {"{\"phone\":\"+1415abc0100\"}", "phone"},
        {"{\"locale\":\"\"}", "locale"},
        {"{\"timezone\":\"\"}", "timezone"},
        {"{\"timezone\":7}", "timezone"},
        {"{\"quiet_hours\":{\"start\":\"25:00\",\"end\":\"07:00\"}}", "quiet_hours.start"},
        {"{\"quiet_hours\":{\"start\":\"22:00\"}}", "quiet_hours.end"},
        {"{\"quiet_hours\":\"22-07\"}", "quiet_hours"},
        {"{\"devices\":[{\"platform\":\"apns\",\"token\":\"t\"},{\"platform\":\"bb\",\"token\":\"t\"}]}",
         "devices[1].platform"},
        {"{\"devices\":[{\"platform\":\"fcm\"}]}", "devices[0].token"},
        {"{\"devices\":{}}", "devices"},
        {"{\"webhook_url\":\"ftp://x\"}", "webhook_url"},
        {"{\"emial\":\"typo@example.com\"}", "emial"},
        {"{\"user_id\":\"someone-else\"}", "user_id"},
        {"[1,2]", "body"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        hreq(&r, "PUT", "/v1/users/u-bad", bad[i].body);
        assert_problem(&r, 422, bad[i].field);
        hresp_clear(&r);
    }
    /* 17 devices */
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"devices\":[");
    for (int i = 0; i <= STORE_MAX_DEVICES; i++)
        buf_printf(&b, "%s{\"platform\":\"fcm\",\"token\":\"t%d\"}", i ? "," : "", i);
    buf_append_str(&b, "]}");
    hreq(&r, "PUT", "/v1/users/u-bad", buf_cstr(&b));
    assert_problem(&r, 422, "devices");
    hresp_clear(&r);
    buf_release(&b);

    hreq(&r, "PUT", "/v1/users/u-bad", "{\"email\":");
    assert_problem(&r, 400, "body");
    hresp_clear(&r);

    /* nothing was written by the refused requests */
    hreq(&r, "GET", "/v1/users/u-bad", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

static void test_preferences(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-prefs", "{\"email\":\"p@example.com\"}");
    assert_int_equal(r.status, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_object_size(json_object_get(r.json, "channels")), 0);
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/u-prefs/preferences",
         "{\"channels\":{\"sms\":false},\"categories\":{\"social\":{\"push\":true,\"email\":false}}}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    json_t *ch = json_object_get(r.json, "channels");
    assert_int_equal(json_object_size(ch), 1);
    assert_true(json_is_false(json_object_get(ch, "sms")));
    json_t *social = json_object_get(json_object_get(r.json, "categories"), "social");
    assert_true(json_is_true(json_object_get(social, "push")));
    assert_true(json_is_false(json_object_get(social, "email")));
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/u-prefs/preferences", "{\"channels\":{\"fax\":false}}");
    assert_problem(&r, 422, "channels.fax");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-prefs/preferences",
         "{\"categories\":{\"social\":{\"push\":\"yes\"}}}");
    assert_problem(&r, 422, "categories.social.push");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/users/u-prefs/preferences", "{\"categories\":[]}");
    assert_problem(&r, 422, "categories");
    hresp_clear(&r);

    /* the refused bodies changed nothing */
    hreq(&r, "GET", "/v1/users/u-prefs/preferences", NULL);
    assert_ok_json(&r, 200);
    assert_true(json_is_false(json_object_get(json_object_get(r.json, "channels"), "sms")));
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/users/nobody/preferences", "{\"channels\":{\"sms\":false}}");
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/nobody/preferences", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq_ct(&r, "PUT", "/v1/users/u-prefs/preferences", "application/xml", "<prefs/>");
    assert_problem(&r, 415, "Content-Type");
    hresp_clear(&r);
}

/* ------------------------------------------------------------ topics, follows */

static void test_subscriptions(void **state)
{
    hresp_t r;
    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-b\"}");
    assert_ok_json(&r, 201);
    assert_string_equal(jstr(r.json, "topic"), "product:iphone15");
    assert_string_equal(r.location, "/v1/topics/product%3Aiphone15/subscribers/u-b");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-b\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-a\"}");
    assert_ok_json(&r, 201);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/product%3Aiphone15/subscribers", "{\"user_id\":\"u-c\"}");
    assert_ok_json(&r, 201);
    hresp_clear(&r);

    /* pages of 2: u-a u-b, then u-c */
    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?limit=2", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "u-a");
    assert_string_equal(json_string_value(json_array_get(items, 1)), "u-b");
    char path[512];
    snprintf(path, sizeof(path), "/v1/topics/product%%3Aiphone15/subscribers?limit=2&cursor=%s",
             jstr(r.json, "next_cursor"));
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_array_get(items, 0)), "u-c");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?limit=0", NULL);
    assert_problem(&r, 400, "limit");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers?cursor=%%%", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{\"user_id\":[\"u\"]}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/topics/t1/subscribers", "{\"user_id\":\"\"}");
    assert_problem(&r, 422, "user_id");
    hresp_clear(&r);

    hreq(&r, "DELETE", "/v1/topics/product%3Aiphone15/subscribers/u-b", NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    hresp_clear(&r);
    hreq(&r, "DELETE", "/v1/topics/product%3Aiphone15/subscribers/u-b", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/topics/product%3Aiphone15/subscribers", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 2);
    hresp_clear(&r);
}

static void test_follows(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/users/u-fan", "{}");
    assert_int_equal(r.status, 200);
    hresp_clear(&r);

    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"kylie\"}");
    assert_ok_json(&r, 201);
    assert_string_equal(jstr(r.json, "actor"), "kylie");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"kylie\"}");
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    char **ids = NULL;
    int n = 0;
    assert_int_equal(store_followers_page(F.app.store, "kylie", NULL, 10, &ids, &n), HR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "u-fan");
    ids_free(ids, n);

    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"user\":\"kylie\"}");
    assert_problem(&r, 422, "user");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{}");
    assert_problem(&r, 422, "actor");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/u-fan/follows", "{\"actor\":\"u-fan\"}");
    assert_problem(&r, 422, "actor");
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/users/nobody/follows", "{\"actor\":\"kylie\"}");
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* ------------------------------------------------------------ templates */

static void test_templates(void **state)
{
    hresp_t r;
    hreq(&r, "PUT", "/v1/templates/comment/push",
         "{\"locale\":\"en\",\"title\":\"{{actor}} commented\",\"body\":\"{{data.text}}\"}");
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "event_type"), "comment");
    assert_string_equal(jstr(r.json, "channel"), "push");
    assert_string_equal(jstr(r.json, "title"), "{{actor}} commented");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/templates/comment/push?locale=en", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "body"), "{{data.text}}");
    hresp_clear(&r);

    hreq(&r, "PUT", "/v1/templates/comment/fax", "{\"body\":\"x\"}");
    assert_problem(&r, 400, "channel");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"body\":\"{{nope}}\"}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/push", "{\"title\":\"{{ }}\",\"body\":\"ok\"}");
    assert_problem(&r, 422, "title");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"title\":\"t\"}");
    assert_problem(&r, 422, "body");
    hresp_clear(&r);
    hreq(&r, "PUT", "/v1/templates/comment/sms", "{\"body\":\"x\",\"locale\":\"e n\"}");
    assert_problem(&r, 422, "locale");
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/templates/comment/sms", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);
}

/* ------------------------------------------------------------ notifications */

static void put_status(const char *id, const char *user, int64_t created, notif_status_t st,
                       int attempt, const char *msg_id)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = 2;
    n.channel = CH_PUSH;
    n.priority = PRIO_NORMAL;
    n.status = st;
    n.attempt = (uint16_t)attempt;
    n.created_at_ms = created;
    n.status_at_ms = created + attempt * 1000;
    n.notification_id = HSTR(id);
    n.event_id = HSTR("ev-good-1");
    n.user_id = HSTR(user);
    n.category = HSTR("social");
    n.title = HSTR("kylie commented");
    n.body = HSTR("hi");
    n.address = HSTR("tok-a");
    n.channel_msg_id = HSTR(msg_id);
    const notif_t *one = &n;
    assert_int_equal(store_notif_write_batch(F.app.store, &one, 1), HR_OK);
}

static void test_notifications(void **state)
{
    hresp_t r;
    put_status("n-1", "u-inbox", 1714564800000, ST_PENDING, 0, NULL);
    put_status("n-1", "u-inbox", 1714564800000, ST_SENT, 1, "apns-123");
    put_status("n-2", "u-inbox", 1714564801000, ST_PENDING, 0, NULL);
    put_status("n-3", "u-inbox", 1714564802000, ST_PENDING, 0, NULL);

    hreq(&r, "GET", "/v1/notifications/n-1", NULL);
    assert_ok_json(&r, 200);
    assert_string_equal(jstr(r.json, "notification_id"), "n-1");
    assert_string_equal(jstr(r.json, "status"), "sent");
    assert_string_equal(jstr(r.json, "channel"), "push");
    assert_string_equal(jstr(r.json, "user_id"), "u-inbox");
    assert_string_equal(jstr(r.json, "created_at"), "2024-05-01T12:00:00.000Z");
    json_t *h = json_object_get(r.json, "history");
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(jstr(json_array_get(h, 0), "status"), "pending");
    assert_string_equal(jstr(json_array_get(h, 1), "status"), "sent");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 1), "attempt")), 1);
    assert_string_equal(jstr(json_array_get(h, 1), "detail"), "apns-123");
    assert_true(json_is_string(json_object_get(json_array_get(h, 1), "at")));
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/notifications/n-none", NULL);
    assert_problem(&r, 404, NULL);
    hresp_clear(&r);

    /* newest first, pages of 2 */
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?limit=2", NULL);
    assert_ok_json(&r, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(jstr(json_array_get(items, 0), "notification_id"), "n-3");
    assert_string_equal(jstr(json_array_get(items, 1), "notification_id"), "n-2");
    const char *cur = jstr(r.json, "next_cursor");
    assert_non_null(cur);
    char path[512], enc[256];
    size_t j = 0;
    for (const char *p = cur; *p && j + 4 < sizeof(enc); p++) {
        if (*p == ':' || *p == '+' || *p == '&' || *p == '%')
            j += (size_t)snprintf(enc + j, sizeof(enc) - j, "%%%02X", (unsigned char)*p);
        else
            enc[j++] = *p;
    }
    enc[j] = '\0';
    snprintf(path, sizeof(path), "/v1/users/u-inbox/notifications?limit=2&cursor=%s", enc);
    hresp_clear(&r);
    hreq(&r, "GET", path, NULL);
    assert_ok_json(&r, 200);
    items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(jstr(json_array_get(items, 0), "notification_id"), "n-1");
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    hresp_clear(&r);

    /* default limit; a user with nothing has an empty list */
    hreq(&r, "GET", "/v1/users/u-inbox/notifications", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 3);
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u-quiet/notifications", NULL);
    assert_ok_json(&r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);

    static const char *const bad_limit[] = {"0", "201", "-1", "abc", "10x", ""};
    for (size_t i = 0; i < ARRAY_LEN(bad_limit); i++) {
        snprintf(path, sizeof(path), "/v1/users/u-inbox/notifications?limit=%s", bad_limit[i]);
        hreq(&r, "GET", path, NULL);
        assert_problem(&r, 400, "limit");
        hresp_clear(&r);
    }
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?limit=200", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    hreq(&r, "GET", "/v1/users/u-inbox/notifications?cursor=garbage", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
    hreq(&r, "GET", "/v1/users/u-inbox/notifications?cursor=%01", NULL);
    assert_problem(&r, 400, "cursor");
    hresp_clear(&r);
}

/* ------------------------------------------------------------ metrics */

static void test_metrics(void **state)
{
    hresp_t r;
    hreq(&r, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    assert_non_null(strstr(r.body, "# HELP herald_events_accepted_total "));
    assert_non_null(strstr(r.body, "# TYPE herald_events_accepted_total counter\n"));
    assert_non_null(strstr(r.body, "# TYPE herald_dlq_records_total counter\n"));
    const char *line = strstr(r.body, "\nherald_events_accepted_total ");
    assert_non_null(line);
    long long v = atoll(line + strlen("\nherald_events_accepted_total "));
    assert_int_equal(v, METRIC_VALUE(events_accepted));
    assert_true(v >= 6);
    assert_non_null(strstr(r.body, "herald_http_responses_total{class=\"4xx\"} "));
    /* every sample line belongs to a declared metric */
    char *save = NULL, *copy = strdup(r.body);
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#') continue;
        char name[128], decl[160];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(l, "{ "), l);
        snprintf(decl, sizeof(decl), "# TYPE %s ", name);
        if (strstr(r.body, decl)) continue;
        /* a histogram's samples are <name>_bucket, _sum and _count */
        static const char *const sfx[] = {"_bucket", "_sum", "_count"};
        bool ok = false;
        for (size_t k = 0; k < ARRAY_LEN(sfx) && !ok; k++) {
            size_t nl = strlen(name), sl = strlen(sfx[k]);
            if (nl <= sl || strcmp(name + nl - sl, sfx[k]) != 0) continue;
            snprintf(decl, sizeof(decl), "# TYPE %.*s histogram\n", (int)(nl - sl), name);
            ok = strstr(r.body, decl) != NULL;
        }
        if (!ok) fail_msg("undeclared metric %s", name);
    }
    free(copy);
    /* the latency histogram: cumulative buckets up to +Inf, which equals _count */
    assert_non_null(strstr(r.body, "# TYPE herald_delivery_latency_seconds histogram\n"));
    assert_non_null(strstr(r.body, "herald_delivery_latency_seconds_bucket{channel=\"push\",le=\"5e-05\"} "));
    assert_non_null(strstr(r.body, "herald_delivery_latency_seconds_bucket{channel=\"push\",le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(r.body, "herald_delivery_latency_seconds_count{channel=\"push\"} 0\n"));
    hresp_clear(&r);
}

/* A bus that cannot take the events turns into 503 with Retry-After. */
static void test_events_unavailable(void **state)
{
    hresp_t r;
    /* a bus without raw-events makes the publish fail */
    bus_t *real = F.app.bus;
    char path[256];
    snprintf(path, sizeof(path), "%s/bus-empty", F.dir);
    bus_opts_t bo = {.backend = "embedded", .dir = path, .fsync = "never"};
    bus_t *empty = NULL;
    assert_int_equal(bus_open(&bo, &empty), HR_OK);
    F.app.bus = empty;
    hreq(&r, "POST", "/v1/events",
         "{\"event_id\":\"ev-nobus\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}}");
    F.app.bus = real;
    assert_problem(&r, 503, NULL);
    assert_string_equal(r.retry_after, "1");
    hresp_clear(&r);
    bus_close(empty);

    hreq(&r, "GET", "/readyz", NULL);
    assert_int_equal(r.status, 200);
    hresp_clear(&r);
}

/* Many clients at once: every batch is acknowledged and every event lands
 * on raw-events exactly once. */
static void test_concurrent_publish(void **state)
{
    enum { CLIENTS = 40, PER_BATCH = 5 };
    CURLM *m = curl_multi_init();
    CURL *easy[CLIENTS];
    hresp_t resp[CLIENTS];
    char *bodies[CLIENTS];
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/events", F.port);
    for (int c = 0; c < CLIENTS; c++) {
        buf_t b;
        buf_init(&b, 0);
        buf_append_str(&b, "[");
        for (int i = 0; i < PER_BATCH; i++)
            buf_printf(&b, "%s{\"event_id\":\"ev-c%d-%d\",\"type\":\"t\","
                           "\"audience\":{\"users\":[\"u%d\"]}}",
                       i ? "," : "", c, i, i);
        buf_append_str(&b, "]");
        bodies[c] = (char *)buf_cstr(&b); /* freed below */
        memset(&resp[c], 0, sizeof(resp[c]));
        easy[c] = curl_easy_init();
        curl_easy_setopt(easy[c], CURLOPT_URL, url);
        curl_easy_setopt(easy[c], CURLOPT_POSTFIELDS, bodies[c]);
        curl_easy_setopt(easy[c], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy[c], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy[c], CURLOPT_WRITEDATA, &resp[c]);
        curl_easy_setopt(easy[c], CURLOPT_TIMEOUT, 60L);
        curl_multi_add_handle(m, easy[c]);
    }
    int running = 1;
    while (running) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int c = 0; c < CLIENTS; c++) {
        curl_easy_getinfo(easy[c], CURLINFO_RESPONSE_CODE, &resp[c].status);
        if (resp[c].status != 202) fail_msg("client %d: %ld %s", c, resp[c].status, resp[c].body);
        curl_multi_remove_handle(m, easy[c]);
        curl_easy_cleanup(easy[c]);
        hresp_clear(&resp[c]);
        free(bodies[c]);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(m);

    json_t *seen = drain_raw(CLIENTS * PER_BATCH, 300);
    assert_int_equal(json_array_size(seen), CLIENTS * PER_BATCH);
    char id[64];
    for (int c = 0; c < CLIENTS; c++)
        for (int i = 0; i < PER_BATCH; i++) {
            snprintf(id, sizeof(id), "ev-c%d-%d", c, i);
            assert_true(ids_has(seen, id));
        }
    json_decref(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_concurrent_publish),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_preferences),
        cmocka_unit_test(test_subscriptions),
        cmocka_unit_test(test_follows),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_events_unavailable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
