/*
 * api_dlq.c - /v1/dlq: list the dead-letter topic's entries and redrive
 * them (stage/dlq.h does the work; `herald dlq` is the same over the
 * command line).
 *
 *   GET  /v1/dlq?since=&reason=&limit=&cursor=
 *        -> 200 {"items": [entry...], "next_cursor": "..." | null}
 *   POST /v1/dlq/redrive {"id": "<partition>-<offset>"}
 *        -> 200 {"id": ..., "redriven": 1}; 404 unknown id; 422 not redrivable
 *   POST /v1/dlq/redrive {"all": true, "reason": "..."}
 *        -> 200 {"redriven": n, "skipped": m} (entries not redriven before)
 *
 * An admin key sees and redrives only its tenant's entries (dlq.h).
 */
#include "http/api_int.h"

#include "core/base64.h"
#include "stage/dlq.h"

#include <stdlib.h>
#include <string.h>

void api_dlq_list(http_req_t *rq, http_resp_t *rs)
{
    int limit;
    const char *cursor, *since, *reason;
    bool bad = false, bad2 = false;
    char *after = NULL;
    if (!api_query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!api_query_cursor(rq, rs, &cursor)) return;
    since = req_query(rq, "since", &bad);
    reason = req_query(rq, "reason", &bad2);
    if (bad || bad2) {
        resp_problem(rs, 400, PROBLEM_PARAM, bad ? "since" : "reason", "malformed percent-encoding");
        return;
    }
    dlq_filter_t f = {.reason = reason, .limit = limit, .tenant = rq->who.tenant};
    if (since && !dlq_since_parse(since, hclock_now_ms(), &f.since_ms)) {
        resp_problem(rs, 400, PROBLEM_PARAM, "since",
                     "must be milliseconds since the epoch, an RFC 3339 time or an age (90s, 15m, 2h, 7d)");
        return;
    }
    size_t alen = 0;
    int32_t p;
    int64_t o;
    if (cursor && (!(after = base64url_decode(cursor, strlen(cursor), &alen)) ||
                   strlen(after) != alen || !dlq_id_parse(after, &p, &o))) {
        free(after);
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    f.after = after;
    dlq_entry_t *e = NULL;
    int n = 0;
    bool more = false;
    hr_t r = dlq_list(rq->app, &f, &e, &n, &more);
    free(after);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "reading the DLQ");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(items, dlq_entry_json(&e[i]));
    json_t *next = json_null();
    if (more && n > 0) {
        char *c = base64url_encode(e[n - 1].id, strlen(e[n - 1].id));
        json_decref(next);
        next = json_string(c);
        free(c);
    }
    dlq_entries_free(e, n);
    resp_json(rs, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

void api_dlq_redrive(http_req_t *rq, http_resp_t *rs)
{
    static const char *const keys[] = {"id", "all", "reason", NULL};
    problem_t pb;
    const char *id = NULL, *reason = NULL;
    json_t *doc = api_body_object(rq, rs);
    if (!doc) return;
    json_t *all = json_object_get(doc, "all");
    if (!api_only_keys(doc, keys, "", &pb) || !api_opt_string(doc, "id", "id", 64, &id, &pb) ||
        !api_opt_string(doc, "reason", "reason", 512, &reason, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    if (all && !json_is_boolean(all)) {
        api_bad(&pb, "all", "must be true or false");
        api_answer_invalid(rs, &pb);
        goto out;
    }
    bool every = json_is_true(all);
    if (every == (id != NULL) || (reason && !every)) {
        api_bad(&pb, id ? "id" : "all", "give either \"id\" or \"all\": true (with an optional \"reason\")");
        api_answer_invalid(rs, &pb);
        goto out;
    }
    hr_t r;
    if (id) {
        char why[256];
        r = dlq_redrive_id_of(rq->app, rq->who.tenant, id, why, sizeof(why));
        if (r == HR_OK)
            resp_json(rs, 200, json_pack("{s:s,s:i}", "id", id, "redriven", 1));
        else if (r == HR_INVALID) {
            api_bad(&pb, "id", "%s", why);
            api_answer_invalid(rs, &pb);
        } else
            api_answer_backend(rs, r, r == HR_NOTFOUND ? "DLQ entry" : "redriving the DLQ entry");
        goto out;
    }
    int done = 0, skipped = 0;
    r = dlq_redrive_all_of(rq->app, rq->who.tenant, reason, &done, &skipped);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "redriving the DLQ");
        goto out;
    }
    resp_json(rs, 200, json_pack("{s:i,s:i}", "redriven", done, "skipped", skipped));
out:
    json_decref(doc);
}
