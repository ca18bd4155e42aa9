/*
 * HTTP API tests: operations: /healthz, /readyz, /metrics.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The value of an unlabelled sample in Prometheus text; fails when absent. */
static long long sample(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *line = strstr(text, key);
    if (!line) fail_msg("no sample %s", name);
    return strtoll(line + strlen(key), NULL, 10);
}

static void test_metrics(void **state)
{
    hresp_t r;
    hreq(&r, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    long long accepted0 = sample(r.body, "herald_events_accepted_total");
    long long rejected0 = sample(r.body, "herald_events_rejected_total");
    hresp_clear(&r);

    /* this test's own traffic: 2 events accepted, 1 refused */
    hreq(&r, "POST", "/v1/events",
         "[{\"event_id\":\"ev-m-1\",\"type\":\"t\",\"audience\":{\"users\":[\"u1\"]}},"
         " {\"event_id\":\"ev-m-2\",\"type\":\"t\",\"audience\":{\"users\":[\"u2\"]}}]");
    assert_ok_json(&r, 202);
    hresp_clear(&r);
    hreq(&r, "POST", "/v1/events", "{\"event_id\":\"ev-m-3\",\"type\":\"t\"}");
    assert_problem(&r, 422, "audience");
    hresp_clear(&r);

    hreq(&r, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    assert_non_null(strstr(r.body, "# HELP herald_events_accepted_total "));
    assert_non_null(strstr(r.body, "# TYPE herald_events_accepted_total counter\n"));
    assert_non_null(strstr(r.body, "# TYPE herald_dlq_records_total counter\n"));
    long long v = sample(r.body, "herald_events_accepted_total");
    assert_int_equal(v, accepted0 + 2);
    assert_int_equal(v, METRIC_VALUE(events_accepted));
    assert_int_equal(sample(r.body, "herald_events_rejected_total"), rejected0 + 1);
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

/* The fixture, plus a push template for each event type the tests send:
 * an event of a type without any template is refused (see
 * test_fail_early_without_template). */
static int setup(void **state)
{
    int r = api_setup(state);
    static const char *const types[] = {"t"};
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(types); i++) {
        template_rec_t t = {.event_type = (char *)types[i], .channel = CH_PUSH, .locale = "en",
                            .title = "t", .body = "b"};
        if (store_template_put(F.app.store, &t) != HR_OK) r = -1;
    }
    return r;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, setup, api_teardown);
}
