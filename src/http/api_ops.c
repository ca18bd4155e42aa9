/*
 * api_ops.c - operations endpoints: /healthz, /readyz, /metrics.
 */
#include "http/api_int.h"

#include "metrics/metrics.h"
#include "stage/ingest.h"

#include <string.h>

/* readyz says "no space" this long after the store last refused a write
 * for want of disk space (a later failure renews it). */
#define NOSPACE_NOT_READY_MS 10000

void api_healthz(http_req_t *rq, http_resp_t *rs)
{
    resp_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

/* Ready = the store answers and is sound (no damage found, disk not full), the bus has raw-events and is not degraded
 * (bus_health: writes failing, unaccepted damage), ingest is not refusing
 * events for backlog (ingest.max_backlog_records: a load balancer should
 * stop sending while POST /v1/events answers 429), and no shutdown. */
void api_readyz(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    bool store_ok = app->store && store_schema_version(app->store) > 0;
    char damage[512] = "";
    bool store_sound = !app->store || store_health(app->store, damage, sizeof(damage)) == HR_OK;
    int64_t nospace = store_nospace_at_ms();
    bool store_full = nospace > 0 && hclock_now_ms() - nospace < NOSPACE_NOT_READY_MS;
    bool bus_ok = app->bus && bus_partitions(app->bus, TOPIC_RAW) > 0;
    bool stopping = atomic_load(&app->stopping) != 0;
    char why[256] = "", bus_txt[300], backlog_txt[128] = "";
    bool degraded = app->bus && bus_health(app->bus, why, sizeof(why)) != BUS_HEALTH_OK;
    int64_t backlog = -1;
    bool backlog_ok = !bus_ok || ingest_admit(app, &backlog) == HR_OK;
    snprintf(bus_txt, sizeof(bus_txt), "%s%s", !bus_ok ? "unavailable" : degraded ? "degraded: " : "ok",
             bus_ok && degraded ? why : "");
    json_t *checks = json_pack("{s:s,s:s}", "store",
                               !store_ok ? "unavailable" : !store_sound ? "damaged"
                               : store_full ? "no space" : "ok", "bus", bus_txt);
    if (!store_sound) {
        json_object_set_new(checks, "store_damage", json_string(damage));
        store_ok = false;
    }
    if (app->cfg->ingest_max_backlog > 0 && backlog >= 0) {
        snprintf(backlog_txt, sizeof(backlog_txt), "%s: fan-out is %lld records behind (bound %lld)",
                 backlog_ok ? "ok" : "over", (long long)backlog, (long long)app->cfg->ingest_max_backlog);
        json_object_set_new(checks, "backlog", json_string(backlog_txt));
    }
    if (store_ok && !store_full && bus_ok && !degraded && backlog_ok && !stopping) {
        resp_json(rs, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", checks));
        return;
    }
    resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
    resp_problem_ext(rs, 503, PROBLEM_UNAVAILABLE, NULL, json_pack("{s:o}", "checks", checks),
                     "not ready:%s%s%s%s%s%s%s%s%s%s", store_ok || !store_sound ? "" : " store unreachable",
                     store_sound ? "" : " store damaged: ", store_sound ? "" : damage,
                     store_ok && store_full ? " store out of disk space" : "",
                     bus_ok ? "" : " bus unreachable (no raw-events topic)",
                     bus_ok && degraded ? " bus degraded: " : "", bus_ok && degraded ? why : "",
                     backlog_ok ? "" : " ingest refuses events, backlog ", backlog_ok ? "" : backlog_txt,
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
