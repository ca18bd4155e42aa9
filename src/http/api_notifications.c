/*
 * api_notifications.c - /v1/notifications/{notification_id} and a user's
 * notification list (/v1/users/{user_id}/notifications). A notification
 * belongs to its user's tenant (api_int.h): another tenant's is not found.
 */
#include "http/api_int.h"

#include <stdlib.h>
#include <string.h>

static json_t *notif_row_json(const notif_row_t *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "notification_id", api_json_str_or_null(n->notification_id));
    json_object_set_new(o, "event_id",
                        api_json_str_or_null(n->event_id ? tenant_unqualify(n->event_id) : NULL));
    json_object_set_new(o, "user_id",
                        api_json_str_or_null(n->user_id ? tenant_unqualify(n->user_id) : NULL));
    json_object_set_new(o, "channel", api_json_str_or_null(channel_name(n->channel)));
    json_object_set_new(o, "category", api_json_str_or_null(n->category));
    json_object_set_new(o, "title", api_json_str_or_null(n->title));
    json_object_set_new(o, "body", api_json_str_or_null(n->body));
    json_object_set_new(o, "address", api_json_str_or_null(n->address));
    json_object_set_new(o, "status", api_json_str_or_null(status_name(n->status)));
    json_object_set_new(o, "attempt", json_integer(n->attempt));
    json_object_set_new(o, "channel_msg_id", api_json_str_or_null(n->channel_msg_id));
    json_object_set_new(o, "error", api_json_str_or_null(n->error));
    json_object_set_new(o, "created_at", api_json_time(n->created_at_ms));
    json_object_set_new(o, "updated_at", api_json_time(n->updated_at_ms));
    json_object_set_new(o, "delivered_at", api_json_time(n->delivered_at_ms));
    json_object_set_new(o, "traceparent", api_json_str_or_null(n->traceparent));
    return o;
}

void api_notif_get(http_req_t *rq, http_resp_t *rs)
{
    notif_row_t row;
    status_hist_t *hist = NULL;
    int nhist = 0;
    memset(&row, 0, sizeof(row));
    hr_t r = store_notif_get(rq->app->store, rq->params[0], &row, &hist, &nhist);
    if (r == HR_OK && !tenant_owns(rq->who.tenant, row.user_id ? row.user_id : "")) {
        /* another tenant's: not found, as if it did not exist */
        notif_row_clear(&row);
        status_hist_free(hist, nhist);
        r = HR_NOTFOUND;
    }
    if (r != HR_OK) {
        api_answer_backend(rs, r, "notification");
        return;
    }
    json_t *o = notif_row_json(&row);
    json_t *h = json_array();
    for (int i = 0; i < nhist; i++)
        json_array_append_new(
            h, json_pack("{s:o,s:i,s:o,s:o}", "status",
                         api_json_str_or_null(status_name(hist[i].status)), "attempt",
                         hist[i].attempt, "at", api_json_time(hist[i].at_ms), "detail",
                         api_json_str_or_null(hist[i].detail)));
    json_object_set_new(o, "history", h);
    resp_json(rs, 200, o);
    notif_row_clear(&row);
    status_hist_free(hist, nhist);
}

void api_user_notifs(http_req_t *rq, http_resp_t *rs)
{
    int limit, n = 0;
    const char *cursor;
    notif_row_t *rows = NULL;
    char *next = NULL;
    if (!api_query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!api_query_cursor(rq, rs, &cursor)) return;
    char *user_id = api_qualify(rq, rq->params[0]);
    hr_t r = store_notif_list_user(rq->app->store, user_id, cursor, limit, &rows, &n, &next);
    free(user_id);
    if (r == HR_INVALID) {
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    if (r != HR_OK) {
        api_answer_backend(rs, r, "listing notifications");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(items, notif_row_json(&rows[i]));
    json_t *doc = json_pack("{s:s,s:o,s:o}", "user_id", rq->params[0], "items", items,
                            "next_cursor", api_json_str_or_null(next));
    free(next);
    notif_rows_free(rows, n);
    resp_json(rs, 200, doc);
}
