/*
 * HTTP API tests: the status page (/ui and its files) and the summary it
 * reads (GET /v1/ops/summary). Real server, bus and store (api_fixture.h).
 * The page's behaviour in a browser is tests/integration/ui_status.sh.
 */
#include "api_fixture.h"

#include "metrics/metrics.h"
#include "policy/breaker.h"
#include "stage/stage.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a GET that keeps every response header ---- */

typedef struct page {
    long status;
    char *headers;
    size_t hlen;
    hresp_t body;       /* body only */
} page_t;

static size_t on_hdr(char *p, size_t sz, size_t n, void *ud)
{
    page_t *pg = ud;
    pg->headers = realloc(pg->headers, pg->hlen + sz * n + 1);
    memcpy(pg->headers + pg->hlen, p, sz * n);
    pg->hlen += sz * n;
    pg->headers[pg->hlen] = '\0';
    return sz * n;
}

static void get_page(page_t *pg, const char *path, bool with_key)
{
    char url[256];
    memset(pg, 0, sizeof(*pg));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F.port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = with_key ? auth_header(NULL) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_hdr);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, pg);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &pg->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void page_clear(page_t *pg)
{
    free(pg->headers);
    hresp_clear(&pg->body);
}

/* The value of a response header (case-insensitive name), or NULL. */
static const char *header(const page_t *pg, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *l = pg->headers; l && *l;) {
        const char *e = strstr(l, "\r\n");
        if (!e) break;
        if ((size_t)(e - l) > n && strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ') v++;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return out;
        }
        l = e + 2;
    }
    return NULL;
}

static void assert_safe_headers(const page_t *pg, const char *ctype)
{
    char v[512];
    assert_non_null(header(pg, "Content-Type", v, sizeof(v)));
    assert_non_null(strstr(v, ctype));
    assert_non_null(header(pg, "Content-Security-Policy", v, sizeof(v)));
    assert_non_null(strstr(v, "default-src 'self'"));
    assert_non_null(strstr(v, "frame-ancestors 'none'"));
    assert_null(strstr(v, "unsafe-inline"));
    assert_null(strstr(v, "unsafe-eval"));
    assert_non_null(header(pg, "X-Content-Type-Options", v, sizeof(v)));
    assert_string_equal(v, "nosniff");
    assert_non_null(header(pg, "X-Frame-Options", v, sizeof(v)));
    assert_string_equal(v, "DENY");
    assert_non_null(header(pg, "Referrer-Policy", v, sizeof(v)));
    assert_string_equal(v, "no-referrer");
    assert_non_null(header(pg, "Cache-Control", v, sizeof(v)));
    assert_string_equal(v, "no-store");
}

/* The page and its files: no key needed, safe headers, and nothing the CSP
 * would refuse (inline script, event handler attributes, inline styles). */
static void test_page_files(void **state)
{
    page_t pg;
    get_page(&pg, "/ui", false);
    assert_int_equal(pg.status, 200);
    assert_safe_headers(&pg, "text/html");
    const char *html = pg.body.body;
    assert_non_null(strstr(html, "<script src=\"/ui/app.js\" defer></script>"));
    assert_non_null(strstr(html, "href=\"/ui/style.css\""));
    for (const char *p = html; (p = strstr(p, "<script")); p++) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        assert_non_null(memmem(p, (size_t)(end - p), " src=", 5)); /* no inline script */
    }
    assert_null(strstr(html, "style="));
    for (const char *p = html; (p = strstr(p, " on")); p++) { /* no onclick= etc. */
        const char *q = p + 3;
        while (isalpha((unsigned char)*q)) q++;
        assert_false(*q == '=' && q > p + 3);
    }
    page_clear(&pg);

    get_page(&pg, "/ui/app.js", false);
    assert_int_equal(pg.status, 200);
    assert_safe_headers(&pg, "text/javascript");
    assert_non_null(strstr(pg.body.body, "/v1/ops/summary"));
    assert_non_null(strstr(pg.body.body, "'Bearer '"));
    assert_null(strstr(pg.body.body, "innerHTML")); /* data reaches the DOM as text only */
    assert_null(strstr(pg.body.body, "eval("));
    page_clear(&pg);

    get_page(&pg, "/ui/style.css", false);
    assert_int_equal(pg.status, 200);
    assert_safe_headers(&pg, "text/css");
    page_clear(&pg);

    get_page(&pg, "/ui/nothing.js", false);
    assert_int_equal(pg.status, 404);
    page_clear(&pg);

    hresp_t r;
    hreq(&r, "HEAD", "/ui", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    hresp_clear(&r);
    hreq(&r, "POST", "/ui", "{}");
    assert_int_equal(r.status, 405);
    hresp_clear(&r);
}

static void test_summary_needs_admin(void **state)
{
    hresp_t r;
    F.use_key = NULL;
    hreq(&r, "GET", "/v1/ops/summary", NULL);
    assert_problem(&r, 401, "Authorization");
    hresp_clear(&r);
    char readkey[APIKEY_LEN + 1];
    assert_int_equal(apikey_create(F.app.store, "default", SCOPE_READ, "ui", readkey, NULL), HR_OK);
    F.use_key = readkey;
    hreq(&r, "GET", "/v1/ops/summary", NULL);
    assert_problem(&r, 403, NULL);
    hresp_clear(&r);
    F.use_key = F.key;
    hreq(&r, "GET", "/v1/ops/summary", NULL);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
}

static json_t *summary(void)
{
    hresp_t r;
    hreq(&r, "GET", "/v1/ops/summary", NULL);
    assert_ok_json(&r, 200);
    json_t *doc = json_incref(r.json);
    hresp_clear(&r);
    return doc;
}

static json_int_t counter(json_t *doc, const char *name)
{
    json_t *v = json_object_get(json_object_get(doc, "counters"), name);
    if (!json_is_integer(v)) fail_msg("no counter %s", name);
    return json_integer_value(v);
}

static json_t *row_named(json_t *arr, const char *key, const char *value, const char *key2,
                         const char *value2)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (strcmp(jstr(o, key) ? jstr(o, key) : "", value) == 0 &&
            (!key2 || strcmp(jstr(o, key2) ? jstr(o, key2) : "", value2) == 0))
            return o;
    }
    return NULL;
}

/* Counters move with the traffic; lag per group is there. */
static void test_summary_counters_and_lag(void **state)
{
    json_t *a = summary();
    assert_string_equal(jstr(a, "bus"), "embedded");
    assert_string_equal(jstr(a, "version"), HERALD_VERSION);
    json_int_t acc0 = counter(a, "events_accepted"), rej0 = counter(a, "events_rejected");
    int64_t t0 = json_integer_value(json_object_get(a, "at_ms"));
    counter(a, "notifications_sent");
    counter(a, "dlq_records");
    assert_int_equal(json_array_size(json_object_get(a, "errors")), 0);

    hresp_t r;
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-ui-1\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-ui-2\",\"type\":\"t\",\"audience\":{\"users\":[\"u2\"]}}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-ui-3\",\"type\":\"t\"}");
    assert_problem(&r, 422, "audience");
    hresp_clear(&r);

    json_t *b = summary();
    assert_int_equal(counter(b, "events_accepted"), acc0 + 2);
    assert_int_equal(counter(b, "events_rejected"), rej0 + 1);
    assert_true(json_integer_value(json_object_get(b, "at_ms")) >= t0);
    /* nobody consumes raw-events in the fixture but its test reader ("api-test"):
     * fan-out's group is behind by every event produced */
    json_t *lag = json_object_get(b, "lag");
    json_t *fan = row_named(lag, "group", "fanout", NULL, NULL);
    assert_non_null(fan);
    assert_string_equal(jstr(fan, "topic"), TOPIC_RAW);
    assert_true(json_integer_value(json_object_get(fan, "records")) >= 2);
    assert_int_equal(json_integer_value(json_object_get(fan, "partitions")), RAW_PARTITIONS);
    json_decref(a);
    json_decref(b);
    json_decref(drain_raw(2, 0));
}

/* One row per provider: the worst state of its breakers. */
static void test_summary_breakers(void **state)
{
    breaker_opts_t o;
    breaker_opts_default(&o);
    o.name = "ui-test";
    o.channel = CH_SMS;
    o.min_requests = 1;
    o.cooldown_ms = 60000;
    breaker_t *b1 = breaker_new(&o), *b2 = breaker_new(&o);
    o.channel = -1; /* not exported: not listed */
    o.name = "ui-hidden";
    breaker_t *b3 = breaker_new(&o);

    json_t *s = summary();
    json_t *row = row_named(json_object_get(s, "breakers"), "provider", "ui-test", "channel", "sms");
    assert_non_null(row);
    assert_string_equal(jstr(row, "state"), "closed");
    assert_int_equal(json_integer_value(json_object_get(row, "breakers")), 2);
    assert_true(json_is_null(json_object_get(row, "open_until")));
    assert_null(row_named(json_object_get(s, "breakers"), "provider", "ui-hidden", NULL, NULL));
    json_decref(s);

    int64_t now = hclock_now_ms();
    assert_true(breaker_allow(b2, now));
    breaker_record(b2, now, false);
    assert_int_equal(breaker_state(b2, now), BREAKER_OPEN);
    s = summary();
    row = row_named(json_object_get(s, "breakers"), "provider", "ui-test", "channel", "sms");
    assert_non_null(row);
    assert_string_equal(jstr(row, "state"), "open");
    assert_int_equal(json_integer_value(json_object_get(row, "open")), 1);
    assert_int_equal(json_integer_value(json_object_get(row, "half_open")), 0);
    assert_int_equal(json_integer_value(json_object_get(row, "transitions")), 1);
    assert_true(json_is_string(json_object_get(row, "open_until")));
    json_decref(s);

    breaker_free(b1);
    breaker_free(b2);
    breaker_free(b3);
    s = summary();
    assert_null(row_named(json_object_get(s, "breakers"), "provider", "ui-test", NULL, NULL));
    json_decref(s);
}

/* A dead-lettered event, as fan-out writes it, at a given time. */
static void dead_event(int n, int64_t at_ms)
{
    char id[32], reason[64];
    snprintf(id, sizeof(id), "ui-dl-%d", n);
    snprintf(reason, sizeof(reason), "reason <%d>", n);
    char *ev = xasprintf("{\"event_id\":\"%s\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]}}", id);
    bus_msg_t m = {.topic = TOPIC_RAW, .partition = 0, .offset = n, .key = id, .key_len = strlen(id),
                   .value = ev, .value_len = strlen(ev)};
    bus_batch_t b;
    bus_batch_init(&b);
    hclock_set_fake(at_ms);
    assert_int_equal(stage_dead_letter(&F.app, &m, "fanout", reason, &b), HR_OK);
    assert_int_equal(bus_batch_wait(F.app.bus, &b, 10000), HR_OK);
    bus_batch_release(&b);
    free(ev);
}

/* DLQ size at once; the newest five with their reasons, read again once
 * the topic grew and the last read is 5 s old. */
static void test_summary_dlq(void **state)
{
    int64_t base = hclock_now_ms();
    hclock_set_fake(base);
    json_t *s = summary();
    json_t *q = json_object_get(s, "dlq");
    assert_int_equal(json_integer_value(json_object_get(q, "size")), 0);
    assert_int_equal(json_array_size(json_object_get(q, "latest")), 0);
    json_decref(s);

    bus_topic_opts_t to = {.partitions = 2, .replication = 1, .min_insync = 1, .retention_ms = -1,
                           .retention_bytes = -1};
    assert_int_equal(bus_topic_ensure(F.app.bus, TOPIC_DLQ, &to), HR_OK);
    /* 25 records, times out of order (n * 7 mod 25 is a permutation): the
     * scan keeps the newest while it reads */
    for (int n = 0; n < 25; n++) dead_event(n, base + 1000 + (n * 7) % 25);
    hclock_set_fake(base + 10000);
    s = summary();
    q = json_object_get(s, "dlq");
    assert_int_equal(json_integer_value(json_object_get(q, "size")), 25);
    json_t *latest = json_object_get(q, "latest");
    assert_int_equal(json_array_size(latest), 5);
    /* newest first: n*7%25 = 24, 23, 22, 21, 20, so n = 7, 14, 21, 3, 10 */
    static const int want[5] = {7, 14, 21, 3, 10};
    for (int i = 0; i < 5; i++) {
        json_t *e = json_array_get(latest, (size_t)i);
        char reason[64];
        snprintf(reason, sizeof(reason), "reason <%d>", want[i]);
        assert_string_equal(jstr(e, "reason"), reason);
        assert_string_equal(jstr(e, "stage"), "fanout");
        assert_string_equal(jstr(e, "topic"), TOPIC_RAW);
        assert_true(json_is_false(json_object_get(e, "redriven")));
        assert_null(json_object_get(e, "payload")); /* GET /v1/dlq has those */
    }
    char *latest_at = xstrdup(jstr(q, "latest_at"));
    json_decref(s);

    /* one more: the size follows at once, the list within 5 s */
    dead_event(99, base + 20000);
    hclock_set_fake(base + 11000);
    s = summary();
    q = json_object_get(s, "dlq");
    assert_int_equal(json_integer_value(json_object_get(q, "size")), 26);
    assert_string_equal(jstr(json_array_get(json_object_get(q, "latest"), 0), "reason"), "reason <7>");
    assert_string_equal(jstr(q, "latest_at"), latest_at);
    json_decref(s);
    hclock_set_fake(base + 15000);
    s = summary();
    q = json_object_get(s, "dlq");
    assert_string_equal(jstr(json_array_get(json_object_get(q, "latest"), 0), "reason"), "reason <99>");
    assert_string_not_equal(jstr(q, "latest_at"), latest_at);
    assert_int_equal(json_array_size(json_object_get(q, "latest")), 5);
    json_decref(s);
    free(latest_at);
    hclock_set_fake(0);
}

/* The fixture, plus a push template for the events the tests send. */
static int setup(void **state)
{
    int r = api_setup(state);
    template_rec_t t = {.event_type = "t", .channel = CH_PUSH, .locale = "en", .title = "t", .body = "b"};
    if (r == 0 && store_template_put(F.app.store, &t) != HR_OK) r = -1;
    return r;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_files),
        cmocka_unit_test(test_summary_needs_admin),
        cmocka_unit_test(test_summary_counters_and_lag),
        cmocka_unit_test(test_summary_breakers),
        cmocka_unit_test(test_summary_dlq),
    };
    return cmocka_run_group_tests(tests, setup, api_teardown);
}
