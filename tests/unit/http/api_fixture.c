/*
 * api_fixture.c - the shared fixture of the HTTP tests (api_fixture.h): a
 * real server on an ephemeral port backed by a real embedded bus and a real
 * SQLite store in a temporary directory, a libcurl client, a raw-socket
 * client, and a reader of the raw-events topic.
 */
#include "api_fixture.h"
#include "model/event.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

fixture_t F;

/* ------------------------------------------------------------ HTTP client */

size_t on_body(char *p, size_t sz, size_t n, void *ud)
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

void hresp_clear(hresp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

struct curl_slist *auth_header(struct curl_slist *h)
{
    char auth[160];
    if (!F.use_key) return h;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", F.use_key);
    return curl_slist_append(h, auth);
}

void hreq_at(int port, hresp_t *r, const char *method, const char *path, const char *ctype,
             const char *body)
{
    char url[1024];
    struct curl_slist *hdrs = NULL;
    char cth[160];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
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
    hdrs = auth_header(hdrs);
    for (int i = 0; i < 4 && F.extra_headers[i]; i++) hdrs = curl_slist_append(hdrs, F.extra_headers[i]);
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

void hreq_ct(hresp_t *r, const char *method, const char *path, const char *ctype,
             const char *body)
{
    hreq_at(F.port, r, method, path, ctype, body);
}

void hreq(hresp_t *r, const char *method, const char *path, const char *body)
{
    hreq_ct(r, method, path, NULL, body);
}

void assert_problem(const hresp_t *r, long status, const char *field)
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

void assert_ok_json(const hresp_t *r, long status)
{
    if (r->status != status) fail_msg("want %ld, got %ld: %s", status, r->status, r->body);
    assert_non_null(strstr(r->ctype, "application/json"));
    assert_non_null(r->json);
}

const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

char *raw_exchange(const char *req, size_t len, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)F.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    /* The key goes right after the request line, so what the test wrote
     * about the rest of the request stays as it wrote it. */
    const char *eol = memmem(req, len, "\r\n", 2);
    if (F.use_key && eol) {
        size_t head = (size_t)(eol - req) + 2;
        char auth[160];
        int an = snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", F.use_key);
        assert_int_equal(send(fd, req, head, MSG_NOSIGNAL), (ssize_t)head);
        assert_int_equal(send(fd, auth, (size_t)an, MSG_NOSIGNAL), (ssize_t)an);
        req += head;
        len -= head;
    }
    if (len) assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
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

/* drain_raw and drain_raw_docs: docs = the records, else their ids. */
static json_t *drain(int want, int extra_ms, bool docs)
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
            /* the API writes binary event records (model/event.h); read as JSON */
            json_t *v = NULL;
            if (event_is_record(msgs[i].value, msgs[i].value_len)) {
                event_t ev;
                problem_t pb;
                assert_int_equal(event_decode(msgs[i].value, msgs[i].value_len, &ev, &pb), HR_OK);
                v = event_to_json(&ev);
                event_clear(&ev);
            } else {
                v = json_loadb(msgs[i].value, msgs[i].value_len, 0, NULL);
            }
            assert_non_null(v);
            assert_true(json_is_integer(json_object_get(v, "_accepted_at_us")));
            const char *id = jstr(v, "event_id") ? jstr(v, "event_id") : jstr(v, "id");
            assert_non_null(id);
            assert_int_equal(msgs[i].key_len, strlen(id));
            assert_memory_equal(msgs[i].key, id, msgs[i].key_len);
            json_array_append_new(ids, docs ? json_incref(v) : json_string(id));
            json_decref(v);
            bus_store_offset(F.raw, msgs[i].topic, msgs[i].partition, msgs[i].offset + 1);
        }
    }
    return ids;
}

json_t *drain_raw(int want, int extra_ms) { return drain(want, extra_ms, false); }

json_t *drain_raw_docs(int want, int extra_ms) { return drain(want, extra_ms, true); }

bool ids_has(json_t *ids, const char *id)
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

int api_setup(void **state)
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
    /* Real key checks, as herald serves; every request sends an admin key
     * unless a test says otherwise (test_api_auth.c). */
    F.app.auth = auth_new(F.app.store, 5000, NULL);
    if (apikey_create(F.app.store, TENANT_DEFAULT, SCOPE_ADMIN, "fixture", F.key, NULL) != HR_OK)
        return -1;
    F.use_key = F.key;

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

int api_teardown(void **state)
{
    http_stop(F.srv);
    if (F.raw) bus_consumer_close(F.raw);
    auth_free(F.app.auth);
    store_close(F.app.store);
    bus_close(F.app.bus);
    config_release(&F.cfg);
    curl_global_cleanup();
    rm_tree(F.dir);
    return 0;
}
