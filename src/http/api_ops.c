/*
 * api_ops.c - operations endpoints: /healthz, /readyz, /metrics.
 */
#include "http/api_int.h"

#include "metrics/metrics.h"

#include <string.h>

/* readyz says "no space" this long after the store last refused a write
 * for want of disk space (a later failure renews it). */
#define NOSPACE_NOT_READY_MS 10000

void api_healthz(http_req_t *rq, http_resp_t *rs)
{
    resp_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

void api_readyz(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    bool store_ok = app->store && store_schema_version(app->store) > 0;
    int64_t nospace = store_nospace_at_ms();
    bool store_full = nospace > 0 && hclock_now_ms() - nospace < NOSPACE_NOT_READY_MS;
    bool bus_ok = app->bus && bus_partitions(app->bus, TOPIC_RAW) > 0;
    bool stopping = atomic_load(&app->stopping) != 0;
    json_t *checks = json_pack("{s:s,s:s}", "store",
                               !store_ok ? "unavailable" : store_full ? "no space" : "ok", "bus",
                               bus_ok ? "ok" : "unavailable");
    if (store_ok && !store_full && bus_ok && !stopping) {
        resp_json(rs, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", checks));
        return;
    }
    resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
    resp_problem_ext(rs, 503, PROBLEM_UNAVAILABLE, NULL, json_pack("{s:o}", "checks", checks),
                     "not ready:%s%s%s%s", store_ok ? "" : " store unreachable",
                     store_ok && store_full ? " store out of disk space" : "",
                     bus_ok ? "" : " bus unreachable (no raw-events topic)",
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
