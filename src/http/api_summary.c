/*
 * api_summary.c - GET /v1/ops/summary: what the status page (/ui) shows,
 * in one JSON document read by one request.
 *
 *   {"at_ms": 1767225600000, "version": "0.1.0", "bus": "embedded",
 *    "counters": {"events_accepted": 12, "notifications_sent": 30, ...},
 *    "lag": [{"group": "fanout", "topic": "raw-events", "records": 0,
 *             "partitions": 8}, ...],
 *    "breakers": [{"provider": "sandbox-push", "channel": "push",
 *                  "state": "closed", "breakers": 2, "open": 0,
 *                  "half_open": 0, "open_until": null, "transitions": 0}],
 *    "dlq": {"size": 1, "latest": [{"id": "0-0", "at": "...",
 *            "reason": "...", "stage": "fanout", "topic": "raw-events",
 *            "redriven": false}], "latest_at": "..."}}
 *
 * counters: every unlabelled counter of metrics.def, named without
 * "herald_" and "_total"; totals since the process started. Rates are the
 * reader's business: two samples and their at_ms.
 * lag: records each stage's consumer group has not processed yet (bus_lag,
 * summed over partitions; on Kafka this asks the brokers).
 * breakers: the circuit breakers of this process's dispatchers, one row per
 * provider (policy/breaker.h breaker_list).
 * dlq: records on the dead-letter topic now, and the newest few with their
 * reasons. Listing them means scanning the topic, so the list is kept and
 * read again only when the topic grew and the last read is at least
 * SUMMARY_DLQ_RESCAN_MS old; latest_at says when it was read. Payloads are
 * left out (GET /v1/dlq has them).
 *
 * A part that cannot be read (no bus in this process, a broker down) is
 * null, with the reason in "errors"; the rest is still answered.
 */
#include "http/api_int.h"

#include "metrics/metrics.h"
#include "model/names.h"
#include "policy/breaker.h"
#include "stage/dlq.h"

#include <stdlib.h>
#include <string.h>

#define SUMMARY_DLQ_LATEST 5
#define SUMMARY_DLQ_RESCAN_MS 5000

static json_t *summary_counters(void)
{
    metrics_snap_t *s = xcalloc(1, sizeof(*s));
    metrics_snapshot(s);
    json_t *o = json_object();
    for (size_t i = 0; i < metric_ndefs; i++) {
        const metric_def_t *d = &metric_defs[i];
        if (d->kind != MK_COUNTER || d->labels != ML_NONE) continue;
        const char *name = d->name;
        if (strncmp(name, "herald_", 7) == 0) name += 7;
        size_t n = strlen(name);
        if (n > 6 && strcmp(name + n - 6, "_total") == 0) n -= 6;
        char key[96];
        snprintf(key, sizeof(key), "%.*s", (int)n, name);
        int64_t v;
        memcpy(&v, (const char *)s + d->off, sizeof(v));
        json_object_set_new(o, key, json_integer(v));
    }
    free(s);
    return o;
}

static json_t *lag_row(bus_t *bus, const char *group, const char *topic, hr_t *err)
{
    bus_lag_t *lags = NULL;
    int n = 0;
    hr_t r = bus_lag(bus, group, topic, &lags, &n);
    if (r == HR_NOTFOUND) return NULL; /* a topic this process has not created */
    if (r != HR_OK) {
        *err = r;
        return NULL;
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++) sum += lags[i].lag;
    free(lags);
    return json_pack("{s:s,s:s,s:I,s:i}", "group", group, "topic", topic, "records", (json_int_t)sum,
                     "partitions", n);
}

static json_t *summary_lag(app_t *app, json_t *errors)
{
    if (!app->bus) {
        json_array_append_new(errors, json_string("lag: this process has no bus"));
        return json_null();
    }
    json_t *a = json_array();
    hr_t err = HR_OK;
    json_t *row = lag_row(app->bus, GROUP_FANOUT, TOPIC_RAW, &err);
    if (row) json_array_append_new(a, row);
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const channel_names_t *nm = names_for_channel(ch);
        if ((row = lag_row(app->bus, nm->group, nm->topic, &err))) json_array_append_new(a, row);
    }
    if ((row = lag_row(app->bus, GROUP_STATUS, TOPIC_STATUS, &err))) json_array_append_new(a, row);
    if (err != HR_OK)
        json_array_append_new(errors, json_sprintf("lag: the bus did not answer for every group (%s)",
                                                   hr_str(err)));
    return a;
}

static json_t *summary_breakers(void)
{
    breaker_info_t *v = NULL;
    int n = 0;
    breaker_list(&v, &n);
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:o,s:o,s:s,s:i,s:i,s:i,s:o,s:I}", "provider", api_json_str_or_null(v[i].name),
                         "channel", api_json_str_or_null(channel_name((channel_t)v[i].channel)), "state",
                         breaker_state_name(v[i].state), "breakers", v[i].breakers, "open", v[i].open,
                         "half_open", v[i].half_open, "open_until", api_json_time(v[i].open_until_ms),
                         "transitions", (json_int_t)v[i].transitions));
    free(v);
    return a;
}

/* The entries as the page shows them: no payload. */
static json_t *dlq_latest_json(const dlq_entry_t *e, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *rec = e[i].rec;
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(e[i].id));
        json_object_set_new(o, "at", api_json_time(json_integer_value(json_object_get(rec, "at_ms"))));
        static const char *const keys[] = {"reason", "stage", "topic"};
        for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
            json_t *v = json_object_get(rec, keys[k]);
            json_object_set_new(o, keys[k], json_is_string(v) ? json_incref(v) : json_null());
        }
        json_object_set_new(o, "redriven", json_boolean(e[i].redriven));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *summary_dlq(http_req_t *rq, json_t *errors)
{
    app_t *app = rq->app;
    http_server_t *srv = rq->srv;
    if (!app->bus) {
        json_array_append_new(errors, json_string("dlq: this process has no bus"));
        return json_null();
    }
    int64_t size = 0, stamp = 0, now = hclock_now_ms();
    hr_t r = dlq_size(app, &size, &stamp);
    if (r != HR_OK) {
        json_array_append_new(errors, json_sprintf("dlq: the bus did not answer (%s)", hr_str(r)));
        return json_null();
    }
    pthread_mutex_lock(&srv->sum_mu);
    bool fresh = srv->sum_dlq_latest && srv->sum_dlq_stamp == stamp;
    bool due = !srv->sum_dlq_latest || now - srv->sum_dlq_at_ms >= SUMMARY_DLQ_RESCAN_MS;
    pthread_mutex_unlock(&srv->sum_mu);
    /* One reader at a time; the others answer with what was read last. */
    if (!fresh && due && pthread_mutex_trylock(&srv->sum_scan_mu) == 0) {
        json_t *got = NULL;
        if (size == 0) {
            got = json_array();
        } else if (app->store) {
            dlq_entry_t *e = NULL;
            int n = 0;
            r = dlq_latest(app, SUMMARY_DLQ_LATEST, &e, &n);
            if (r == HR_OK) got = dlq_latest_json(e, n);
            else json_array_append_new(errors, json_sprintf("dlq: reading the latest entries failed (%s)",
                                                            hr_str(r)));
            dlq_entries_free(e, n);
        }
        pthread_mutex_lock(&srv->sum_mu);
        if (got) {
            json_decref(srv->sum_dlq_latest);
            srv->sum_dlq_latest = got;
            srv->sum_dlq_stamp = stamp;
        }
        srv->sum_dlq_at_ms = now; /* also after a failure: not again before the interval */
        pthread_mutex_unlock(&srv->sum_mu);
        pthread_mutex_unlock(&srv->sum_scan_mu);
    }
    pthread_mutex_lock(&srv->sum_mu);
    json_t *latest = srv->sum_dlq_latest ? json_deep_copy(srv->sum_dlq_latest) : NULL;
    int64_t latest_at = srv->sum_dlq_latest ? srv->sum_dlq_at_ms : 0;
    pthread_mutex_unlock(&srv->sum_mu);
    return json_pack("{s:I,s:o,s:o}", "size", (json_int_t)size, "latest", latest ? latest : json_null(),
                     "latest_at", api_json_time(latest_at));
}

void api_ops_summary(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    json_t *errors = json_array();
    json_t *doc = json_object();
    int64_t now = hclock_now_ms();
    json_object_set_new(doc, "at_ms", json_integer(now));
    json_object_set_new(doc, "version", json_string(HERALD_VERSION));
    json_object_set_new(doc, "bus", app->bus ? json_string(bus_backend_name(app->bus)) : json_null());
    json_object_set_new(doc, "counters", summary_counters());
    json_object_set_new(doc, "lag", summary_lag(app, errors));
    json_object_set_new(doc, "breakers", summary_breakers());
    json_object_set_new(doc, "dlq", summary_dlq(rq, errors));
    json_object_set_new(doc, "errors", errors);
    resp_json(rs, 200, doc);
}
