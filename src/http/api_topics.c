/*
 * api_topics.c - /v1/topics/{topic}/subscribers: subscribe, unsubscribe,
 * list (pages with an opaque cursor). Topics and user ids are the caller's
 * tenant's (api_int.h); a cursor holds the id as the tenant named it.
 */
#include "http/api_int.h"

#include "core/base64.h"

#include <stdlib.h>
#include <string.h>

void api_sub_post(http_req_t *rq, http_resp_t *rs)
{
    static const char *const keys[] = {"user_id", NULL};
    const char *topic = rq->params[0], *user_id;
    problem_t pb;
    json_t *doc = api_body_object(rq, rs);
    if (!doc) return;
    if (!api_only_keys(doc, keys, "", &pb) || !api_body_id(doc, "user_id", &user_id, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    bool created = false;
    char *qtopic = api_qualify(rq, topic), *quser = api_qualify(rq, user_id);
    hr_t r = store_sub_add(rq->app->store, qtopic, quser, &created);
    free(qtopic);
    free(quser);
    bool existed = !created;
    if (r == HR_CONFLICT) { /* a store that reports duplicates */
        r = HR_OK;
        existed = true;
    }
    if (r != HR_OK) {
        api_answer_backend(rs, r, "subscribing");
        goto out;
    }
    if (!existed) {
        buf_t loc;
        buf_init(&loc, 0);
        buf_append_str(&loc, "/v1/topics/");
        http_pct_encode(&loc, topic);
        buf_append_str(&loc, "/subscribers/");
        http_pct_encode(&loc, user_id);
        if (loc.len < sizeof(rs->hdr[0].value)) resp_header(rs, "Location", "%s", buf_cstr(&loc));
        buf_release(&loc);
    }
    resp_json(rs, existed ? 200 : 201,
              json_pack("{s:s,s:s,s:b}", "topic", topic, "user_id", user_id, "created",
                        !existed));
out:
    json_decref(doc);
}

void api_sub_delete(http_req_t *rq, http_resp_t *rs)
{
    char *qtopic = api_qualify(rq, rq->params[0]), *quser = api_qualify(rq, rq->params[1]);
    hr_t r = store_sub_del(rq->app->store, qtopic, quser);
    free(qtopic);
    free(quser);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "subscription");
        return;
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

void api_sub_list(http_req_t *rq, http_resp_t *rs)
{
    int limit;
    const char *cursor;
    char *after = NULL, **ids = NULL;
    int n = 0;
    if (!api_query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!api_query_cursor(rq, rs, &cursor)) return;
    size_t after_len = 0;
    if (cursor && (!(after = base64url_decode(cursor, strlen(cursor), &after_len)) ||
                   !http_id_valid(after, after_len))) {
        free(after);
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    /* one extra row tells whether another page exists */
    char *qtopic = api_qualify(rq, rq->params[0]), *qafter = after ? api_qualify(rq, after) : NULL;
    hr_t r = store_subs_page(rq->app->store, qtopic, qafter, limit + 1, &ids, &n);
    free(after);
    free(qtopic);
    free(qafter);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "listing subscribers");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(items, api_json_str_or_null(tenant_unqualify(ids[i])));
    json_t *next = json_null();
    if (n > limit) {
        const char *last = tenant_unqualify(ids[limit - 1]);
        char *c = base64url_encode(last, strlen(last));
        json_decref(next);
        next = json_string(c);
        free(c);
    }
    ids_free(ids, n);
    resp_json(rs, 200, json_pack("{s:s,s:o,s:o}", "topic", rq->params[0], "items", items,
                                 "next_cursor", next));
}
