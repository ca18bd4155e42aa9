/*
 * api_metrics.c - the Prometheus text behind /metrics.
 */
#include "http/api_int.h"

#include <stdlib.h>
#include <string.h>

/* Every app counter, declared once: field, metric name, help. */
#define APP_COUNTERS(X)                                                                           \
    X(events_accepted, "herald_events_accepted_total",                                            \
      "Events accepted by ingest and acknowledged by the bus.")                                   \
    X(events_rejected, "herald_events_rejected_total",                                            \
      "Events refused at ingest (invalid or unreadable).")                                        \
    X(events_duplicate, "herald_events_duplicate_total",                                          \
      "Events dropped by fan-out as duplicates of an earlier event_id.")                          \
    X(notifs_fanned_out, "herald_notifications_fanned_out_total",                                 \
      "Notifications produced by fan-out.")                                                       \
    X(notifs_suppressed, "herald_notifications_suppressed_total",                                 \
      "Notifications suppressed by preferences.")                                                 \
    X(notifs_sent, "herald_notifications_sent_total", "Notifications sent to a provider.")        \
    X(notifs_failed, "herald_notifications_failed_total", "Notification attempts that failed.")   \
    X(dlq_records, "herald_dlq_records_total", "Records written to the dead-letter topic.")       \
    X(status_rows_written, "herald_status_rows_written_total",                                    \
      "Notification status rows written to the store.")

/* Exposed buckets: upper bounds from 16 us to 2^27 us (134 s), 8 per power
 * of two, then +Inf. Values are whole microseconds, so the bucket of values
 * [lo, hi] has le = hi + 1 us. */
#define LAT_FIRST_BUCKET (HIST_LINEAR - 1)
#define LAT_LAST_BUCKET (HIST_LINEAR + (27 - HIST_SUB_BITS - 1) * HIST_SUB - 1)

static void delivery_latency_metrics(app_t *app, buf_t *out)
{
    buf_append_str(out, "# HELP herald_delivery_latency_seconds End-to-end latency per channel: "
                        "event accepted by ingest to the provider call that delivered it.\n"
                        "# TYPE herald_delivery_latency_seconds histogram\n");
    hist_snap_t s;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *name = channel_name((channel_t)ch);
        hist_read(&app->delivery_latency[ch], &s);
        uint64_t cum = 0;
        for (int i = 0; i <= LAT_LAST_BUCKET; i++) {
            cum += s.count[i];
            if (i < LAT_FIRST_BUCKET) continue;
            buf_printf(out, "herald_delivery_latency_seconds_bucket{channel=\"%s\",le=\"%.9g\"} %llu\n",
                       name, (double)(hist_bucket_hi(i) + 1) / 1e6, (unsigned long long)cum);
        }
        buf_printf(out,
                   "herald_delivery_latency_seconds_bucket{channel=\"%s\",le=\"+Inf\"} %llu\n"
                   "herald_delivery_latency_seconds_sum{channel=\"%s\"} %.6f\n"
                   "herald_delivery_latency_seconds_count{channel=\"%s\"} %llu\n",
                   name, (unsigned long long)s.total, name, (double)s.sum / 1e6, name,
                   (unsigned long long)s.total);
    }
    buf_append_str(out, "# HELP herald_delivery_latency_max_seconds Largest end-to-end latency "
                        "seen per channel since start.\n"
                        "# TYPE herald_delivery_latency_max_seconds gauge\n");
    for (int ch = 0; ch < CH__COUNT; ch++)
        buf_printf(out, "herald_delivery_latency_max_seconds{channel=\"%s\"} %.6f\n",
                   channel_name((channel_t)ch),
                   (double)atomic_load(&app->delivery_latency[ch].max) / 1e6);
}

/* Records each stage's consumer group has still to process (summed over
 * partitions). Embedded bus only: there the figures are in memory; on
 * Kafka every query is a broker round trip per group, so use the broker's
 * tools (kafka-consumer-groups.sh --describe) instead. */
static void bus_lag_metrics(app_t *app, buf_t *out)
{
    if (!app->bus || strcmp(bus_backend_name(app->bus), "embedded") != 0) return;
    buf_append_str(out, "# HELP herald_bus_lag_records Records a consumer group has not "
                        "processed yet (embedded bus).\n"
                        "# TYPE herald_bus_lag_records gauge\n");
    const char *groups[2 + CH__COUNT], *topics[2 + CH__COUNT];
    static const char *const dgroups[CH__COUNT] = {
        [CH_PUSH] = "dispatch-push",   [CH_SMS] = "dispatch-sms",
        [CH_EMAIL] = "dispatch-email", [CH_INAPP] = "dispatch-inapp",
        [CH_WEBHOOK] = "dispatch-webhook",
    };
    int n = 0;
    groups[n] = "fanout";
    topics[n++] = TOPIC_RAW;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        groups[n] = dgroups[ch];
        topics[n++] = topic_for_channel(ch);
    }
    groups[n] = "status";
    topics[n++] = TOPIC_STATUS;
    for (int i = 0; i < n; i++) {
        bus_lag_t *lags = NULL;
        int nl = 0;
        if (bus_lag(app->bus, groups[i], topics[i], &lags, &nl) != HR_OK) continue;
        long long sum = 0;
        for (int k = 0; k < nl; k++) sum += lags[k].lag;
        free(lags);
        buf_printf(out, "herald_bus_lag_records{group=\"%s\",topic=\"%s\"} %lld\n", groups[i],
                   topics[i], sum);
    }
}

void api_metrics(http_server_t *srv, buf_t *out)
{
    app_t *app = srv->app;
#define EMIT(field, name, help)                                                                   \
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name,         \
               (long long)atomic_load(&app->field));
    APP_COUNTERS(EMIT)
#undef EMIT
    buf_append_str(out, "# HELP herald_http_responses_total HTTP responses by status class "
                        "(aborted: the connection ended first).\n"
                        "# TYPE herald_http_responses_total counter\n");
    static const char *const classes[] = {"aborted", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++)
        buf_printf(out, "herald_http_responses_total{class=\"%s\"} %lld\n", classes[i],
                   (long long)atomic_load(&srv->responses[i]));
    delivery_latency_metrics(app, out);
    bus_lag_metrics(app, out);
    buf_printf(out, "# HELP herald_build_info Build information.\n"
                    "# TYPE herald_build_info gauge\n"
                    "herald_build_info{version=\"%s\",bus=\"%s\"} 1\n",
               HERALD_VERSION, app->bus ? bus_backend_name(app->bus) : "none");
}
