/*
 * api_events.c - POST /v1/events: validate a batch of events (herald or
 * CloudEvents shape) and publish it to raw-events.
 */
#include "http/api_int.h"

#include "stage/ingest.h"

#include <stdlib.h>
#include <string.h>

#define EVENTS_BATCH_MAX 1000

/* Why ingest_publish() failed, for the 503's detail. */
static const char *publish_reason(hr_t r)
{
    switch (r) {
    case HR_AGAIN: return "it is full (backpressure)";
    case HR_TIMEOUT: return "it did not acknowledge them within ingest.ack_timeout_ms";
    case HR_CLOSED: return "the server is shutting down";
    default: return "it failed to write them (the server log says why)";
    }
}

void api_events_post(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    event_t *evs = NULL;
    int n = 0, ok = 0;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));

    json_t *doc = api_body_json(rq, rs);
    if (!doc) {
        METRIC_INC(events_rejected);
        return;
    }
    bool is_array = json_is_array(doc);
    if (rq->media == MEDIA_CE_BATCH && !is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents-batch+json needs an array of CloudEvents");
        goto rejected;
    }
    if (rq->media == MEDIA_CE && is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents+json carries one event; send arrays as "
                     "application/cloudevents-batch+json");
        goto rejected;
    }
    n = is_array ? (int)json_array_size(doc) : 1;
    if (is_array && n == 0) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body", "the batch is empty");
        goto rejected;
    }
    if (n > EVENTS_BATCH_MAX) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "the batch has %d events; at most %d are allowed", n, EVENTS_BATCH_MAX);
        goto rejected;
    }

    /* validate every event before publishing any */
    evs = xcalloc((size_t)n, sizeof(*evs));
    for (ok = 0; ok < n; ok++) {
        json_t *e = is_array ? json_array_get(doc, (size_t)ok) : doc;
        if (event_from_json(e, &evs[ok], &pb) == HR_OK) continue;
        char f[160];
        if (is_array)
            api_fieldf(f, sizeof(f), pb.field[0] ? "[%d].%s" : "[%d]%s", ok, pb.field);
        else
            api_fieldf(f, sizeof(f), "%s", pb.field[0] ? pb.field : "body");
        resp_problem(rs, 422, PROBLEM_VALIDATION, f, "%s%s%s", pb.field[0] ? pb.field : "",
                     pb.field[0] ? " " : "", pb.detail);
        goto rejected;
    }

    hr_t r = ingest_publish(app, evs, n);
    if (r == HR_NOSPACE) {
        api_answer_nospace(rs, "events", "the bus");
        goto out;
    }
    if (r != HR_OK) {
        /* Full, slow or failing: some events may have gone out, so the
         * client retries the whole request; fan-out dedupes by event_id. */
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL,
                     "the bus did not take the events: %s; retry the whole request "
                     "(event_id makes it idempotent)", publish_reason(r));
        goto out;
    }
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(ids, json_string(evs[i].event_id));
    resp_json(rs, 202, json_pack("{s:i,s:o}", "accepted", n, "event_ids", ids));
    goto out;

rejected:
    METRIC_ADD(events_rejected, n > 0 ? n : 1);
out:
    for (int i = 0; i < ok && evs; i++) event_clear(&evs[i]);
    free(evs);
    json_decref(doc);
}
