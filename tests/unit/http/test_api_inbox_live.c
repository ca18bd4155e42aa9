/*
 * HTTP API tests: the inbox live stream (GET .../inbox/stream, Server-Sent
 * Events) read with libcurl on a thread of its own, and user tokens
 * (POST .../inbox/token; Authorization: Bearer or ?token=). A new item
 * stored and announced as the inapp provider does reaches the open stream;
 * Last-Event-ID replays exactly what was missed; heartbeats come when idle;
 * a mark through the API is announced; the per-user limit answers 429. A
 * token opens its own user's inbox routes only: 403 for another user or
 * any other route, 401 when expired, forged or malformed. The inbox page's
 * files are served without a key. Real server,
 * bus and store (api_fixture.h) plus a hub and a token key.
 */
#include "api_fixture.h"

#include "auth/user_token.h"
#include "http/inbox_hub.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEARTBEAT_MS 100
#define WAIT_MS 5000

/* ------------------------------------------------ an SSE client on a thread */

typedef struct sse {
    pthread_t t;
    char url[1024];
    char hdr[2][1200];
    int nhdr;
    pthread_mutex_t mu;
    char *buf;
    size_t len;
    long status;
    atomic_bool stop;
    atomic_bool done;
} sse_t;

static size_t sse_body(char *p, size_t sz, size_t n, void *ud)
{
    sse_t *s = ud;
    pthread_mutex_lock(&s->mu);
    s->buf = realloc(s->buf, s->len + sz * n + 1);
    memcpy(s->buf + s->len, p, sz * n);
    s->len += sz * n;
    s->buf[s->len] = '\0';
    pthread_mutex_unlock(&s->mu);
    return atomic_load(&s->stop) ? 0 : sz * n;
}

static int sse_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    return atomic_load(&((sse_t *)ud)->stop) ? 1 : 0;
}

static void *sse_main(void *arg)
{
    sse_t *s = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (int i = 0; i < s->nhdr; i++) h = curl_slist_append(h, s->hdr[i]);
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    atomic_store(&s->done, true);
    return NULL;
}

/* Opens GET path (query included) with the fixture's key unless bearer
 * says otherwise ("" = none), and Last-Event-ID when given. */
static void sse_open(sse_t *s, const char *path, const char *last_id, const char *bearer)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d%s", F.port, path);
    if (!bearer) bearer = F.key;
    if (*bearer) snprintf(s->hdr[s->nhdr++], sizeof(s->hdr[0]), "Authorization: Bearer %s", bearer);
    if (last_id) snprintf(s->hdr[s->nhdr++], sizeof(s->hdr[0]), "Last-Event-ID: %s", last_id);
    assert_int_equal(pthread_create(&s->t, NULL, sse_main, s), 0);
}

/* Waits until the stream has shown needle (after offset from); returns where
 * it ends, or fails the test. */
static size_t sse_wait(sse_t *s, const char *needle, size_t from)
{
    int64_t end = hclock_mono_ns() + (int64_t)WAIT_MS * 1000000;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        const char *hit = s->len > from ? strstr(s->buf + from, needle) : NULL;
        size_t at = hit ? (size_t)(hit - s->buf) + strlen(needle) : 0;
        pthread_mutex_unlock(&s->mu);
        if (hit) return at;
        if (hclock_mono_ns() > end || atomic_load(&s->done))
            fail_msg("stream never showed \"%s\"; got: %s", needle, s->buf ? s->buf : "");
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void sse_close(sse_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->t, NULL);
    free(s->buf);
    pthread_mutex_destroy(&s->mu);
}

/* ------------------------------------------------------------ helpers */

/* Stores an item of user (client id, tenant default) and announces it as
 * the inapp provider does. */
static void new_item(const char *user, const char *nid, int64_t ms)
{
    char quser[256];
    snprintf(quser, sizeof(quser), "%s", user); /* tenant default: stored as given */
    inbox_item_t it = {.user_id = quser, .notification_id = (char *)nid, .title = "t",
                       .body = "b", .created_at_ms = ms};
    bool created = false;
    assert_int_equal(store_inbox_put(F.app.store, &it, &created), HR_OK);
    assert_true(created);
    inbox_hub_new_item(F.app.inbox_hub, F.app.store, &it);
}

static int setup(void **state)
{
    if (api_setup(state) != 0) return -1;
    inbox_hub_opts_t o = {.max_streams = 50, .max_per_user = 3, .queue_max = 64,
                          .heartbeat_ms = HEARTBEAT_MS, .thread = true};
    F.app.inbox_hub = inbox_hub_new(&o);
    static const char secret[] = "0123456789abcdef0123456789abcdef-test";
    F.app.user_tokens = user_token_key_new(secret, sizeof(secret) - 1);
    return F.app.inbox_hub && F.app.user_tokens ? 0 : -1;
}

static int teardown(void **state)
{
    inbox_hub_t *h = F.app.inbox_hub;
    user_token_key_t *k = F.app.user_tokens;
    api_teardown(state);
    inbox_hub_free(h);
    user_token_key_free(k);
    return 0;
}

/* ------------------------------------------------------------ the stream */

static void test_new_item_reaches_stream(void **state)
{
    (void)state;
    sse_t s;
    new_item("live1", "n-old", 1000);
    sse_open(&s, "/v1/users/live1/inbox/stream", NULL, NULL);
    /* first the counts, at the newest position; no replay without Last-Event-ID */
    size_t at = sse_wait(&s, "id: 1000:n-old\nevent: counts\ndata: {\"unread\":1,\"unseen\":1}\n\n", 0);
    assert_null(strstr(s.buf, "event: item"));
    new_item("live1", "n-new", 2000);
    at = sse_wait(&s, "id: 2000:n-new\nevent: item\ndata: {", at);
    at = sse_wait(&s, "\"notification_id\":\"n-new\"", at - 20);
    sse_wait(&s, "event: counts\ndata: {\"unread\":2,\"unseen\":2}", at);
    /* another user's item does not show */
    new_item("live1-other", "n-x", 3000);
    /* a mark through the API is announced, with the counts after it */
    hresp_t r;
    hreq(&r, "POST", "/v1/users/live1/inbox/n-new/read", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    at = sse_wait(&s, "event: mark\ndata: {\"notification_id\":\"n-new\",\"mark\":\"read\"}", at);
    sse_wait(&s, "event: counts\ndata: {\"unread\":1,\"unseen\":1}", at);
    assert_null(strstr(s.buf, "n-x"));
    pthread_mutex_lock(&s.mu);
    assert_non_null(strstr(s.buf, "retry: 1000\n"));
    pthread_mutex_unlock(&s.mu);
    sse_close(&s);
    assert_int_equal(s.status, 200);
}

static void test_resume_replays_missed(void **state)
{
    (void)state;
    new_item("live2", "a1", 1000);
    new_item("live2", "a2", 2000);
    /* the client saw a1; a2, a3 and a4 arrived while it was away */
    new_item("live2", "a3", 3000);
    new_item("live2", "a4", 3000);
    sse_t s;
    sse_open(&s, "/v1/users/live2/inbox/stream", "1000:a1", NULL);
    size_t at = sse_wait(&s, "id: 2000:a2\nevent: item\n", 0);
    at = sse_wait(&s, "id: 3000:a3\nevent: item\n", at);
    at = sse_wait(&s, "id: 3000:a4\nevent: item\n", at);
    at = sse_wait(&s, "id: 3000:a4\nevent: counts\n", at);
    assert_null(strstr(s.buf, "a1\"")); /* nothing at or before its position */
    /* and then live, without repeating the replay */
    new_item("live2", "a5", 4000);
    sse_wait(&s, "id: 4000:a5\nevent: item\n", at);
    pthread_mutex_lock(&s.mu);
    const char *first = strstr(s.buf, "id: 3000:a4\nevent: item");
    assert_null(strstr(first + 1, "id: 3000:a4\nevent: item"));
    pthread_mutex_unlock(&s.mu);
    sse_close(&s);

    /* the newest position: nothing replayed */
    sse_open(&s, "/v1/users/live2/inbox/stream", "4000:a5", NULL);
    sse_wait(&s, "id: 4000:a5\nevent: counts\n", 0);
    assert_null(strstr(s.buf, "event: item"));
    sse_close(&s);

    /* a malformed id is a 400 naming the header */
    F.extra_headers[0] = "Last-Event-ID: nonsense";
    hresp_t r;
    hreq(&r, "GET", "/v1/users/live2/inbox/stream", NULL);
    F.extra_headers[0] = NULL;
    assert_problem(&r, 400, "Last-Event-ID");
    hresp_clear(&r);
}

static void test_resume_beyond_replay_resets(void **state)
{
    (void)state;
    /* more missed than inbox.stream_replay (50 by default) */
    char nid[32];
    for (int i = 1; i <= 60; i++) {
        snprintf(nid, sizeof(nid), "r%02d", i);
        new_item("live3", nid, 1000 + i);
    }
    sse_t s;
    sse_open(&s, "/v1/users/live3/inbox/stream", "1000:r00", NULL);
    size_t at = sse_wait(&s, "id: 1060:r60\nevent: reset\n", 0);
    sse_wait(&s, "id: 1060:r60\nevent: counts\n", at);
    assert_null(strstr(s.buf, "event: item"));
    sse_close(&s);
}

static void test_heartbeat(void **state)
{
    (void)state;
    sse_t s;
    sse_open(&s, "/v1/users/live4/inbox/stream", NULL, NULL);
    size_t at = sse_wait(&s, "event: counts", 0);
    at = sse_wait(&s, "\n: heartbeat\n\n", at);
    sse_wait(&s, "\n: heartbeat\n\n", at); /* and again */
    sse_close(&s);
}

static void test_per_user_limit(void **state)
{
    (void)state;
    sse_t s[3];
    for (int i = 0; i < 3; i++) {
        sse_open(&s[i], "/v1/users/live5/inbox/stream", NULL, NULL);
        sse_wait(&s[i], "event: counts", 0);
    }
    hresp_t r;
    hreq(&r, "GET", "/v1/users/live5/inbox/stream", NULL);
    assert_problem(&r, 429, NULL);
    hresp_clear(&r);
    for (int i = 0; i < 3; i++) sse_close(&s[i]);
    /* the hub notices the closed clients on its next pass */
    int64_t end = hclock_mono_ns() + (int64_t)WAIT_MS * 1000000;
    while (inbox_hub_streams(F.app.inbox_hub) > 0 && hclock_mono_ns() < end) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(inbox_hub_streams(F.app.inbox_hub), 0);
}

/* ------------------------------------------------------------ user tokens */

static char *issue(const char *user, const char *body, long want)
{
    hresp_t r;
    char path[256];
    snprintf(path, sizeof(path), "/v1/users/%s/inbox/token", user);
    hreq(&r, "POST", path, body);
    if (r.status != want) fail_msg("token: want %ld, got %ld: %s", want, r.status, r.body);
    char *tok = NULL;
    if (want == 201) {
        assert_string_equal(jstr(r.json, "user_id"), user);
        assert_non_null(jstr(r.json, "expires_at"));
        tok = strdup(jstr(r.json, "token"));
        assert_true(strncmp(tok, USER_TOKEN_PREFIX, strlen(USER_TOKEN_PREFIX)) == 0);
        for (const char *p = tok; *p; p++) /* URL-safe */
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_.", *p));
    }
    hresp_clear(&r);
    return tok;
}

static long as_token(const char *tok, const char *method, const char *path, hresp_t *r)
{
    F.use_key = tok;
    hreq(r, method, path, NULL);
    F.use_key = F.key;
    return r->status;
}

static void test_token_opens_own_inbox_only(void **state)
{
    (void)state;
    new_item("alice", "al-1", 1000);
    new_item("bob", "bo-1", 1000);
    char *tok = issue("alice", NULL, 201);
    hresp_t r;
    /* every inbox route of alice */
    assert_int_equal(as_token(tok, "GET", "/v1/users/alice/inbox", &r), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "items"), 0),
                             "notification_id"), "al-1");
    hresp_clear(&r);
    assert_int_equal(as_token(tok, "GET", "/v1/users/alice/inbox/counts", &r), 200);
    hresp_clear(&r);
    assert_int_equal(as_token(tok, "POST", "/v1/users/alice/inbox/al-1/read", &r), 200);
    hresp_clear(&r);
    assert_int_equal(as_token(tok, "POST", "/v1/users/alice/inbox/read-all", &r), 200);
    hresp_clear(&r);
    /* bob's inbox: 403, every route */
    const char *bob[][2] = {{"GET", "/v1/users/bob/inbox"},
                            {"GET", "/v1/users/bob/inbox/counts"},
                            {"GET", "/v1/users/bob/inbox/stream"},
                            {"POST", "/v1/users/bob/inbox/bo-1/read"},
                            {"POST", "/v1/users/bob/inbox/read-all"},
                            {"DELETE", "/v1/users/bob/inbox/bo-1"}};
    for (size_t i = 0; i < ARRAY_LEN(bob); i++) {
        as_token(tok, bob[i][0], bob[i][1], &r);
        assert_problem(&r, 403, NULL);
        hresp_clear(&r);
    }
    /* every route that is not alice's inbox: 403 */
    const char *other[][2] = {{"GET", "/v1/users/alice"},
                              {"GET", "/v1/users/alice/notifications"},
                              {"GET", "/v1/users/alice/preferences"},
                              {"POST", "/v1/users/alice/inbox/token"},
                              {"GET", "/v1/users"},
                              {"GET", "/v1/ops/summary"},
                              {"GET", "/metrics"}};
    for (size_t i = 0; i < ARRAY_LEN(other); i++) {
        as_token(tok, other[i][0], other[i][1], &r);
        assert_problem(&r, 403, NULL);
        hresp_clear(&r);
    }
    /* the stream through ?token= (EventSource cannot send headers) */
    sse_t s;
    char path[1200];
    snprintf(path, sizeof(path), "/v1/users/alice/inbox/stream?token=%s", tok);
    sse_open(&s, path, NULL, "");
    size_t at = sse_wait(&s, "event: counts\ndata: {\"unread\":0,", 0);
    new_item("alice", "al-2", 2000);
    sse_wait(&s, "id: 2000:al-2\nevent: item", at);
    sse_close(&s);
    assert_int_equal(s.status, 200);
    /* and ?token= for bob: 403 */
    snprintf(path, sizeof(path), "/v1/users/bob/inbox?token=%s", tok);
    F.use_key = NULL;
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 403, NULL);
    hresp_clear(&r);
    /* an API key in ?token= is not taken */
    snprintf(path, sizeof(path), "/v1/users/alice/inbox?token=%s", F.key);
    hreq(&r, "GET", path, NULL);
    assert_problem(&r, 401, "token");
    hresp_clear(&r);
    F.use_key = F.key;
    /* the delete, last */
    assert_int_equal(as_token(tok, "DELETE", "/v1/users/alice/inbox/al-1", &r), 204);
    hresp_clear(&r);
    free(tok);
}

static void test_token_expired_forged_refused(void **state)
{
    (void)state;
    hresp_t r;
    int64_t now = hclock_now_ms() / 1000;
    char *expired = user_token_sign(F.app.user_tokens, "default", "carol", now - 1);
    as_token(expired, "GET", "/v1/users/carol/inbox", &r);
    assert_problem(&r, 401, "Authorization");
    assert_non_null(strstr(jstr(r.json, "detail"), "expired"));
    hresp_clear(&r);
    free(expired);

    /* another secret's token, and a tampered one */
    static const char other_secret[] = "another-secret-another-secret-another";
    user_token_key_t *other = user_token_key_new(other_secret, sizeof(other_secret) - 1);
    char *forged = user_token_sign(other, "default", "carol", now + 600);
    user_token_key_free(other);
    as_token(forged, "GET", "/v1/users/carol/inbox", &r);
    assert_problem(&r, 401, "Authorization");
    hresp_clear(&r);
    free(forged);
    char *good = user_token_sign(F.app.user_tokens, "default", "carol", now + 600);
    assert_int_equal(as_token(good, "GET", "/v1/users/carol/inbox", &r), 200);
    hresp_clear(&r);
    /* swap the payload for one naming dave, keep the MAC */
    char *dave = user_token_sign(F.app.user_tokens, "default", "dave", now + 600);
    char *mac = strrchr(good, '.');
    char *dmac = strrchr(dave, '.');
    char spliced[1200];
    snprintf(spliced, sizeof(spliced), "%.*s%s", (int)(dmac - dave), dave, mac);
    as_token(spliced, "GET", "/v1/users/dave/inbox", &r);
    assert_problem(&r, 401, "Authorization");
    hresp_clear(&r);
    as_token("hu1.garbage", "GET", "/v1/users/dave/inbox", &r);
    assert_problem(&r, 401, "Authorization");
    hresp_clear(&r);
    free(good);
    free(dave);

    /* another tenant's token reaches that tenant's carol, not ours */
    char *t2 = user_token_sign(F.app.user_tokens, "acme", "carol", now + 600);
    new_item("carol", "c-1", 1000);
    assert_int_equal(as_token(t2, "GET", "/v1/users/carol/inbox", &r), 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    hresp_clear(&r);
    free(t2);
}

static void test_token_issue_validation(void **state)
{
    (void)state;
    char *tok = issue("erin", "{\"ttl_s\":60}", 201);
    free(tok);
    issue("erin", "{\"ttl_s\":5}", 422);
    issue("erin", "{\"ttl_s\":999999999}", 422);
    issue("erin", "{\"ttl\":60}", 422);
    issue("erin", "[1", 400);
    /* the manage scope: a read key cannot issue */
    char rkey[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_READ, "r", rkey, NULL), HR_OK);
    F.use_key = rkey;
    issue("erin", NULL, 403);
    F.use_key = F.key;
}

/* ------------------------------------------------------------ the page */

static void test_inbox_page_files(void **state)
{
    (void)state;
    hresp_t r;
    F.use_key = NULL; /* static files: no key */
    hreq(&r, "GET", "/inbox", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/html"));
    assert_non_null(strstr(r.body, "/inbox/inbox.js"));
    hresp_clear(&r);
    hreq(&r, "GET", "/inbox/inbox.js", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/javascript"));
    assert_non_null(strstr(r.body, "EventSource"));
    hresp_clear(&r);
    hreq(&r, "GET", "/inbox/inbox.css", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/css"));
    hresp_clear(&r);
    F.use_key = F.key;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_item_reaches_stream),
        cmocka_unit_test(test_resume_replays_missed),
        cmocka_unit_test(test_resume_beyond_replay_resets),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_per_user_limit),
        cmocka_unit_test(test_token_opens_own_inbox_only),
        cmocka_unit_test(test_token_expired_forged_refused),
        cmocka_unit_test(test_token_issue_validation),
        cmocka_unit_test(test_inbox_page_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
