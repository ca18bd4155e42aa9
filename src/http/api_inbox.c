/*
 * api_inbox.c - a user's in-app inbox (store.h "in-app inbox"):
 *
 *   GET    /v1/users/{user_id}/inbox?state=&cursor=&limit=   list, newest first
 *   GET    /v1/users/{user_id}/inbox/counts                  {"unread","unseen"}
 *   POST   /v1/users/{user_id}/inbox/{notification_id}/read  (and /seen, /archive)
 *   POST   /v1/users/{user_id}/inbox/read-all                (and seen-all, archive-all)
 *   (the marks answer the counts after the change, for the bell)
 *   DELETE /v1/users/{user_id}/inbox/{notification_id}
 *
 * The user id passes api_user_ref (tenant isolation): a key of another
 * tenant reaches another inbox, never this one. Item ids are the
 * notification ids herald made (not tenant-qualified; the item is found
 * under the qualified user). Marks keep a state's first time; marking an
 * item already in that state is 200 too.
 */
#include "http/api_int.h"
#include "stage/pullfan.h" /* the inbox merges pulled feed items */

#include <stdlib.h>
#include <string.h>

static const char *const state_names[INBOX_FILTER__COUNT] = {
    [INBOX_ACTIVE] = "all",     [INBOX_UNREAD] = "unread", [INBOX_READ] = "read",
    [INBOX_SEEN] = "seen",      [INBOX_ARCHIVED] = "archived",
};

static json_t *item_json(http_req_t *rq, const inbox_item_t *it)
{
    json_t *o = json_object();
    json_object_set_new(o, "notification_id", api_json_str_or_null(it->notification_id));
    json_object_set_new(o, "user_id", api_json_str_or_null(api_id_public(rq, it->user_id)));
    json_object_set_new(o, "event_id",
                        it->event_id ? api_json_str_or_null(api_id_public(rq, it->event_id))
                                     : json_null());
    json_object_set_new(o, "category", api_json_str_or_null(it->category));
    json_object_set_new(o, "title", api_json_str_or_null(it->title));
    json_object_set_new(o, "body", api_json_str_or_null(it->body));
    json_object_set_new(o, "created_at", api_json_time(it->created_at_ms));
    json_object_set_new(o, "seen_at", api_json_time(it->seen_at_ms));
    json_object_set_new(o, "read_at", api_json_time(it->read_at_ms));
    json_object_set_new(o, "archived_at", api_json_time(it->archived_at_ms));
    return o;
}

/* state: absent = "all"; else one of state_names. false after answering 400. */
static bool query_state(http_req_t *rq, http_resp_t *rs, inbox_filter_t *out)
{
    bool malformed;
    const char *v = req_query(rq, "state", &malformed);
    *out = INBOX_ACTIVE;
    if (!malformed && !v) return true;
    for (int i = 0; !malformed && i < INBOX_FILTER__COUNT; i++)
        if (strcmp(v, state_names[i]) == 0) {
            *out = (inbox_filter_t)i;
            return true;
        }
    resp_problem(rs, 400, PROBLEM_PARAM, "state",
                 "must be one of all, unread, read, seen, archived");
    return false;
}

void api_inbox_list(http_req_t *rq, http_resp_t *rs)
{
    int limit, n = 0;
    const char *cursor;
    inbox_filter_t f;
    inbox_item_t *items = NULL;
    char *next = NULL;
    if (!query_state(rq, rs, &f)) return;
    if (!api_query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!api_query_cursor(rq, rs, &cursor)) return;
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_list(rq->app, user_id, f, cursor, limit, &items, &n, &next);
    if (r == HR_INVALID) {
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    if (r != HR_OK) {
        api_answer_backend(rs, r, "listing the inbox");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, item_json(rq, &items[i]));
    json_t *doc = json_pack("{s:s,s:s,s:o,s:o}", "user_id", rq->params[0], "state",
                            state_names[f], "items", arr, "next_cursor",
                            api_json_str_or_null(next));
    free(next);
    inbox_items_free(items, n);
    resp_json(rs, 200, doc);
}

/* The mark an action word names ("read", "seen", "archive"); 0 if none. */
static inbox_mark_t mark_of(const char *action)
{
    if (strcmp(action, "read") == 0) return INBOX_MARK_READ;
    if (strcmp(action, "seen") == 0) return INBOX_MARK_SEEN;
    if (strcmp(action, "archive") == 0) return INBOX_MARK_ARCHIVED;
    return (inbox_mark_t)0;
}

/* The user's counts after a change: {"user_id","unread","unseen"}. */
static void answer_counts(http_req_t *rq, http_resp_t *rs, const char *user_id, json_t *extra)
{
    int64_t unread = 0, unseen = 0;
    hr_t r = pull_inbox_counts(rq->app, user_id, &unread, &unseen);
    if (r != HR_OK) {
        json_decref(extra);
        api_answer_backend(rs, r, "inbox counts");
        return;
    }
    json_t *doc = json_pack("{s:s,s:I,s:I}", "user_id", rq->params[0], "unread",
                            (json_int_t)unread, "unseen", (json_int_t)unseen);
    if (extra) json_object_update_new(doc, extra);
    resp_json(rs, 200, doc);
}

void api_inbox_counts(http_req_t *rq, http_resp_t *rs)
{
    answer_counts(rq, rs, api_user_ref(rq, rq->params[0]), NULL);
}

/* POST .../inbox/{notification_id}/{action}: answers the counts after it;
 * an item already in that state is 200 as well (the first time stays). */
void api_inbox_mark(http_req_t *rq, http_resp_t *rs)
{
    inbox_mark_t m = mark_of(rq->params[2]);
    if (!m) {
        resp_problem(rs, 404, NULL, NULL, "no inbox action '%s' (read, seen, archive)",
                     rq->params[2]);
        return;
    }
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_mark(rq->app, user_id, rq->params[1], m, hclock_now_ms());
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox item");
        return;
    }
    answer_counts(rq, rs, user_id, NULL);
}

/* POST .../inbox/{read,seen,archive}-all: the counts after it and
 * "changed", the items it changed. */
static void mark_all(http_req_t *rq, http_resp_t *rs, inbox_mark_t m)
{
    int64_t changed = 0;
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_mark_all(rq->app, user_id, m, hclock_now_ms(), &changed);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox");
        return;
    }
    answer_counts(rq, rs, user_id, json_pack("{s:I}", "changed", (json_int_t)changed));
}

void api_inbox_read_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_READ); }
void api_inbox_seen_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_SEEN); }
void api_inbox_archive_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_ARCHIVED); }

void api_inbox_delete(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_del(rq->app, user_id, rq->params[1]);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox item");
        return;
    }
    resp_text(rs, 204, NULL, NULL, 0);
}
