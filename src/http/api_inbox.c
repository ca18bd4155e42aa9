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

#include "auth/user_token.h"
#include "core/file.h"
#include "http/inbox_hub.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[INBOX_FILTER__COUNT] = {
    [INBOX_ACTIVE] = "all",     [INBOX_UNREAD] = "unread", [INBOX_READ] = "read",
    [INBOX_SEEN] = "seen",      [INBOX_ARCHIVED] = "archived",
};

json_t *inbox_item_json(const inbox_item_t *it)
{
    json_t *o = json_object();
    json_object_set_new(o, "notification_id", api_json_str_or_null(it->notification_id));
    json_object_set_new(o, "user_id", api_json_str_or_null(it->user_id ? tenant_unqualify(it->user_id) : NULL));
    json_object_set_new(o, "event_id",
                        it->event_id ? api_json_str_or_null(tenant_unqualify(it->event_id))
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
    for (int i = 0; i < n; i++) json_array_append_new(arr, inbox_item_json(&items[i]));
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
    if (rq->app->inbox_hub) inbox_hub_counts(rq->app->inbox_hub, user_id, unread, unseen);
    json_t *doc = json_pack("{s:s,s:I,s:I}", "user_id", rq->params[0], "unread",
                            (json_int_t)unread, "unseen", (json_int_t)unseen);
    if (extra) json_object_update_new(doc, extra);
    resp_json(rs, 200, doc);
}

void api_inbox_counts(http_req_t *rq, http_resp_t *rs)
{
    int64_t unread = 0, unseen = 0;
    /* with the feed items of followed actors (pull fan-out), as the listing */
    hr_t r = pull_inbox_counts(rq->app, api_user_ref(rq, rq->params[0]), &unread, &unseen);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox counts");
        return;
    }
    resp_json(rs, 200, json_pack("{s:s,s:I,s:I}", "user_id", rq->params[0], "unread",
                                 (json_int_t)unread, "unseen", (json_int_t)unseen));
}

/* Tells the user's live streams (inbox_hub.h) what changed: a "mark" or
 * "delete" event; the counts follow from answer_counts. nid NULL = all. */
static void publish_change(http_req_t *rq, const char *user_id, const char *event,
                           const char *nid, const char *mark)
{
    inbox_hub_t *hub = rq->app->inbox_hub;
    if (!hub || !inbox_hub_watched(hub, user_id)) return;
    json_t *doc = json_pack("{s:o}", "notification_id", api_json_str_or_null(nid));
    if (mark) json_object_set_new(doc, "mark", json_string(mark));
    char *data = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (data) inbox_hub_publish(hub, user_id, event, data, 0, NULL);
    free(data);
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
    publish_change(rq, user_id, "mark", rq->params[1], rq->params[2]);
    answer_counts(rq, rs, user_id, NULL);
}

/* POST .../inbox/{read,seen,archive}-all: the counts after it and
 * "changed", the items it changed. */
static void mark_all(http_req_t *rq, http_resp_t *rs, inbox_mark_t m, const char *word)
{
    int64_t changed = 0;
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_mark_all(rq->app, user_id, m, hclock_now_ms(), &changed);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox");
        return;
    }
    if (changed) publish_change(rq, user_id, "mark", NULL, word);
    answer_counts(rq, rs, user_id, json_pack("{s:I}", "changed", (json_int_t)changed));
}

void api_inbox_read_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_READ, "read"); }
void api_inbox_seen_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_SEEN, "seen"); }
void api_inbox_archive_all(http_req_t *rq, http_resp_t *rs) { mark_all(rq, rs, INBOX_MARK_ARCHIVED, "archive"); }

void api_inbox_delete(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = pull_inbox_del(rq->app, user_id, rq->params[1]);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "inbox item");
        return;
    }
    inbox_hub_t *hub = rq->app->inbox_hub;
    if (hub && inbox_hub_watched(hub, user_id)) {
        int64_t unread = 0, unseen = 0;
        publish_change(rq, user_id, "delete", rq->params[1], NULL);
        if (pull_inbox_counts(rq->app, user_id, &unread, &unseen) == HR_OK)
            inbox_hub_counts(hub, user_id, unread, unseen);
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

/* POST /v1/users/{user_id}/inbox/token {"ttl_s"?}: a user token for this
 * user of the caller's tenant (auth/user_token.h), for a browser to read
 * and change this inbox and open its stream. Manage scope. */
void api_inbox_token(http_req_t *rq, http_resp_t *rs)
{
    user_token_key_t *k = rq->app->user_tokens;
    const config_t *cfg = rq->app->cfg;
    if (!k) {
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "this process signs no user tokens");
        return;
    }
    int64_t ttl = cfg->inbox_token_ttl_s;
    if (rq->body.len) {
        json_t *doc = api_body_object(rq, rs);
        if (!doc) return;
        static const char *const keys[] = {"ttl_s", NULL};
        problem_t pb = {{0}, {0}};
        json_t *t = json_object_get(doc, "ttl_s");
        bool ok = api_only_keys(doc, keys, "", &pb);
        if (ok && t && !json_is_null(t)) {
            if (!json_is_integer(t) || json_integer_value(t) < 10 ||
                json_integer_value(t) > cfg->inbox_token_max_ttl_s)
                ok = api_bad(&pb, "ttl_s", "must be an integer from 10 to %d (inbox.token_max_ttl_s)",
                             cfg->inbox_token_max_ttl_s);
            else
                ttl = json_integer_value(t);
        }
        json_decref(doc);
        if (!ok) {
            api_answer_invalid(rs, &pb);
            return;
        }
    }
    int64_t exp = hclock_now_ms() / 1000 + ttl;
    char *tok = user_token_sign(k, rq->who.tenant, rq->params[0], exp);
    json_t *out = json_pack("{s:s,s:s,s:o,s:I}", "user_id", rq->params[0], "token", tok,
                            "expires_at", api_json_time(exp * 1000), "expires_in", (json_int_t)ttl);
    file_secret_free(tok, strlen(tok));
    resp_json(rs, 201, out);
}
