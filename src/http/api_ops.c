/*
 * api_ops.c - operations endpoints: /healthz, /readyz, /metrics.
 */
#include "http/api_int.h"

#include "metrics/metrics.h"

#include <string.h>

void api_healthz(http_req_t *rq, http_resp_t *rs)
{
    resp_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

void api_readyz(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    bool store_ok = app->store && store_schema_version(app->store) > 0;
    char damage[512] = "";
    bool store_sound = !app->store || store_health(app->store, damage, sizeof(damage)) == HR_OK;
    bool bus_ok = app->bus && bus_partitions(app->bus, TOPIC_RAW) > 0;
    bool stopping = atomic_load(&app->stopping) != 0;
    json_t *checks = json_pack("{s:s,s:s}", "store", !store_ok ? "unavailable" : store_sound ? "ok" : "damaged",
                               "bus", bus_ok ? "ok" : "unavailable");
    if (!store_sound) {
        json_object_set_new(checks, "store_damage", json_string(damage));
        store_ok = false;
    }
    if (store_ok && bus_ok && !stopping) {
        resp_json(rs, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", checks));
        return;
    }
    resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
    resp_problem_ext(rs, 503, PROBLEM_UNAVAILABLE, NULL, json_pack("{s:o}", "checks", checks),
                     "not ready:%s%s%s%s%s", store_ok || !store_sound ? "" : " store unreachable",
                     store_sound ? "" : " store damaged: ",
                     store_sound ? "" : damage, bus_ok ? "" : " bus unreachable (no raw-events topic)",
                     stopping ? " shutting down" : "");
}

/* Prometheus text (src/metrics/). ?buckets=fine exposes every fine
 * histogram bucket, for quantiles (herald bench). */
void api_metrics_get(http_req_t *rq, http_resp_t *rs)
{
    bool malformed = false;
    const char *buckets = req_query(rq, "buckets", &malformed);
    if (malformed || (buckets && strcmp(buckets, "fine") != 0 && strcmp(buckets, "coarse") != 0)) {
        resp_problem(rs, 400, PROBLEM_PARAM, "buckets", "buckets must be fine or coarse");
        return;
    }
    buf_t b;
    buf_init(&b, 0);
    metrics_render(rq->app, buckets && strcmp(buckets, "fine") == 0 ? METRICS_FINE : 0, &b);
    buf_cstr(&b);
    resp_text(rs, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}
