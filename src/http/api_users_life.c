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
#include "model/tenant.h"

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

/* A tenant's users are the stored ids it owns (model/tenant.h): for a named
 * tenant one contiguous range (its prefix), for the default tenant the ids
 * without a tenant, spread among the others' ranges. Pages are filled by
 * reading the store in runs and keeping what the caller's tenant owns; a
 * page may come back short (with a cursor) after USERS_SCAN_MAX runs. */
#define USERS_SCAN_MAX 32

void api_users_list(http_req_t *rq, http_resp_t *rs)
{
    int limit;
    const char *after;
    if (!api_page_query(rq, rs, &limit, &after)) return;
    const char *tenant = rq->who.tenant;
    bool named = !tenant_is_default(tenant);
    char *prefix = named ? tenant_qualify(tenant, "") : NULL; /* "<tenant>\x1f" */
    char *from = xstrdup(after ? after : "");
    if (named && strcmp(from, prefix) < 0) {
        free(from);
        from = xstrdup(prefix);
    }
    json_t *items = json_array();
    int got = 0;
    bool more = false, end = false;
    char *last = NULL;
    for (int run = 0; run < USERS_SCAN_MAX && got < limit && !end; run++) {
        user_t *users = NULL;
        int n = 0;
        hr_t r = store_users_page(rq->app->store, from[0] ? from : NULL, limit + 1, &users, &n);
        if (r != HR_OK) {
            api_answer_backend(rs, r, "listing users");
            json_decref(items);
            free(prefix);
            free(from);
            free(last);
            return;
        }
        if (n <= limit) end = true;
        for (int i = 0; i < n; i++) {
            const char *id = users[i].user_id;
            free(from);
            from = xstrdup(id);
            if (named && strncmp(id, prefix, strlen(prefix)) != 0) { /* past the range */
                end = true;
                break;
            }
            if (!tenant_owns(tenant, id)) continue;
            if (got == limit) { /* one more of ours exists */
                more = true;
                end = true;
                break;
            }
            json_array_append_new(items, api_user_json(rq, &users[i]));
            free(last);
            last = xstrdup(id);
            got++;
        }
        store_users_free(users, n);
    }
    /* Stopped before the end (a full page, or the scan bound): the caller
     * goes on after the last id kept, or after the last one read when the
     * page came back short. */
    if (!end) {
        more = true;
        if (got < limit) {
            free(last);
            last = xstrdup(from);
        }
    }
    json_t *next = api_page_next(more ? last : NULL);
    free(prefix);
    free(from);
    free(last);
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
