/*
 * api_users_life.c - a user's lifecycle beyond its profile: erasure
 * (DELETE /v1/users/{user_id}), the user list (GET /v1/users), unfollow and
 * the lists of a user's follows and subscriptions.
 *
 * Every id taken from the path goes through api_user_ref / api_actor_ref
 * (api_util.c) and every id answered through api_id_public: the one place
 * where ids are mapped between the client's and the store's.
 *
 * Lists are pages in id order with an opaque cursor (base64url of the last
 * id of the page, api_page_query / api_page_next), read one row past the
 * page to know whether another follows.
 */
#include "http/api_int.h"

#include <stdlib.h>
#include <string.h>

/* Right to erasure: every row of the user in the store, in one transaction
 * or in bounded chunks (store_user_erase). Records already on the bus may
 * still be delivered (docs/openapi.yaml says so). */
void api_user_delete(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = api_user_ref(rq, rq->params[0]);
    store_erase_t st;
    hr_t r = store_user_erase(rq->app->store, user_id, &st);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "user");
        return;
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

void api_users_list(http_req_t *rq, http_resp_t *rs)
{
    int limit, n = 0;
    const char *after;
    user_t *users = NULL;
    if (!api_page_query(rq, rs, &limit, &after)) return;
    hr_t r = store_users_page(rq->app->store, after, limit + 1, &users, &n);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "listing users");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(items, api_user_json(rq, &users[i]));
    json_t *next = api_page_next(n > limit ? users[limit - 1].user_id : NULL);
    store_users_free(users, n);
    resp_json(rs, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

void api_follow_delete(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = api_user_ref(rq, rq->params[0]);
    const char *actor = api_actor_ref(rq, rq->params[1]);
    hr_t r = store_follow_del(rq->app->store, user_id, actor);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "follow");
        return;
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

typedef hr_t (*id_page_fn)(store_t *s, const char *key, const char *after, int limit, char ***ids,
                           int *n);

/* One page of ids under the user: {"user_id","items":[...],"next_cursor"}. */
static void answer_id_page(http_req_t *rq, http_resp_t *rs, id_page_fn page, const char *what)
{
    int limit, n = 0;
    const char *after;
    char **ids = NULL;
    if (!api_page_query(rq, rs, &limit, &after)) return;
    const char *user_id = api_user_ref(rq, rq->params[0]);
    hr_t r = page(rq->app->store, user_id, after, limit + 1, &ids, &n);
    if (r != HR_OK) {
        api_answer_backend(rs, r, what);
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(items, api_json_str_or_null(api_id_public(rq, ids[i])));
    json_t *next = api_page_next(n > limit ? ids[limit - 1] : NULL);
    ids_free(ids, n);
    resp_json(rs, 200, json_pack("{s:s,s:o,s:o}", "user_id", rq->params[0], "items", items,
                                 "next_cursor", next));
}

void api_following_list(http_req_t *rq, http_resp_t *rs)
{
    answer_id_page(rq, rs, store_following_page, "listing follows");
}

void api_user_topics(http_req_t *rq, http_resp_t *rs)
{
    answer_id_page(rq, rs, store_user_topics_page, "listing subscriptions");
}
