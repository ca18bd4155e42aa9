/*
 * api_int.h - what the API handler files (api_*.c) and the route table
 * (routes.c) share. Not for use outside src/http/.
 *
 * One file per resource of docs/openapi.yaml, which is the contract; keep
 * the two in step:
 *   api_events.c         POST /v1/events
 *   api_users.c          /v1/users/{user_id}, .../preferences, .../follows
 *   api_users_life.c     DELETE /v1/users/{user_id} (erasure), GET /v1/users,
 *                        .../follows (list, unfollow), .../subscriptions
 *   api_users_import.c   POST /v1/users/import (NDJSON, streamed)
 *   api_topics.c         /v1/topics/{topic}/subscribers[/{user_id}]
 *   api_templates.c      /v1/templates/{event_type}/{channel}
 *   api_notifications.c  /v1/notifications/{id}, /v1/users/{user_id}/notifications
 *   api_ops.c            /healthz, /readyz, /metrics (text from src/metrics/)
 *   api_dlq.c            /v1/dlq, /v1/dlq/redrive
 *   api_callbacks.c      /v1/callbacks/twilio/{provider}, /v1/callbacks/sendgrid/{provider}
 *   api_summary.c        /v1/ops/summary (what the status page shows)
 *   api_inbox.c          /v1/users/{user_id}/inbox... (list, counts, marks, token)
 *   api_inbox_stream.c   /v1/users/{user_id}/inbox/stream (Server-Sent Events)
 *   api_inbox_page.c     /inbox, /inbox/inbox.js, /inbox/inbox.css (web/inbox/)
 *   api_ui.c             /ui, /ui/app.js, /ui/style.css (the status page, src/http/ui/)
 *   api_util.c           the helpers below
 *
 * DESIGN: every handler reads its whole input first - path parameters
 * (already decoded and checked by the router), query parameters, the JSON
 * body - and validates all of it into local structs. Structs of store.h
 * types (user_t, pref_t, template_rec_t) own their strings, so they are
 * filled with copies and freed with user_clear, prefs_free and
 * template_rec_clear; other values borrow from the parsed document. Only
 * then does it write to the store or the bus, so a rejected request never
 * leaves anything half-written. Validation stops at the first problem and
 * names the field the way event.c does ("devices[1].platform",
 * "[3].audience" for the third event of a batch).
 *
 * Tenants (DESIGN §10, model/tenant.h): the store and the pipeline know
 * no tenants. Every handler qualifies each id it receives (path, query,
 * body, cursor) with the caller's tenant (rq->who.tenant, api_qualify)
 * before it touches the store, and unqualifies each id it answers
 * (tenant_unqualify); a row of another tenant is answered 404, never 403,
 * so that its existence is not confirmed.
 *
 * Status codes: 400 the request cannot be read (malformed JSON, bad path or
 * query parameter); 422 the body is JSON but a field is invalid; 404 unknown
 * resource; 503 with Retry-After when the bus or store says "try later".
 *
 * Handlers run on the server's pool threads and may block on the store and
 * on bus acknowledgements.
 */
#ifndef HERALD_API_INT_H
#define HERALD_API_INT_H

#include "http/http_int.h"
#include "model/tenant.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 200
#define CURSOR_MAX 512
#define RETRY_AFTER_S 1
#define RETRY_NOSPACE_S 30      /* Retry-After when a disk is full: an operator must act */

/* ---- handlers (one group per api_*.c) ---- */

void api_events_post(http_req_t *rq, http_resp_t *rs);

void api_user_put(http_req_t *rq, http_resp_t *rs);
void api_user_delete(http_req_t *rq, http_resp_t *rs);
void api_users_list(http_req_t *rq, http_resp_t *rs);
void api_users_import(http_req_t *rq, http_resp_t *rs);
extern const http_body_stream_t api_users_import_body;
void api_follow_delete(http_req_t *rq, http_resp_t *rs);
void api_following_list(http_req_t *rq, http_resp_t *rs);
void api_user_topics(http_req_t *rq, http_resp_t *rs);
void api_user_get(http_req_t *rq, http_resp_t *rs);
void api_prefs_put(http_req_t *rq, http_resp_t *rs);
void api_prefs_get(http_req_t *rq, http_resp_t *rs);
void api_follow_post(http_req_t *rq, http_resp_t *rs);

void api_sub_post(http_req_t *rq, http_resp_t *rs);
void api_sub_delete(http_req_t *rq, http_resp_t *rs);
void api_sub_list(http_req_t *rq, http_resp_t *rs);

void api_template_put(http_req_t *rq, http_resp_t *rs);
void api_template_get(http_req_t *rq, http_resp_t *rs);

void api_notif_get(http_req_t *rq, http_resp_t *rs);
void api_user_notifs(http_req_t *rq, http_resp_t *rs);
/* api_inbox.c */
void api_inbox_list(http_req_t *rq, http_resp_t *rs);
void api_inbox_counts(http_req_t *rq, http_resp_t *rs);
void api_inbox_mark(http_req_t *rq, http_resp_t *rs);
void api_inbox_read_all(http_req_t *rq, http_resp_t *rs);
void api_inbox_seen_all(http_req_t *rq, http_resp_t *rs);
void api_inbox_archive_all(http_req_t *rq, http_resp_t *rs);
void api_inbox_delete(http_req_t *rq, http_resp_t *rs);
void api_inbox_token(http_req_t *rq, http_resp_t *rs);
/* an item as the inbox API and its live stream show it */
json_t *inbox_item_json(const inbox_item_t *it);
/* api_inbox_stream.c */
void api_inbox_stream(http_req_t *rq, http_resp_t *rs);

void api_dlq_list(http_req_t *rq, http_resp_t *rs);
void api_dlq_redrive(http_req_t *rq, http_resp_t *rs);

void api_cb_twilio(http_req_t *rq, http_resp_t *rs);
void api_cb_sendgrid(http_req_t *rq, http_resp_t *rs);

void api_healthz(http_req_t *rq, http_resp_t *rs);
void api_readyz(http_req_t *rq, http_resp_t *rs);
void api_metrics_get(http_req_t *rq, http_resp_t *rs);
void api_ops_summary(http_req_t *rq, http_resp_t *rs);

void api_ui_page(http_req_t *rq, http_resp_t *rs);
void api_ui_js(http_req_t *rq, http_resp_t *rs);
void api_ui_css(http_req_t *rq, http_resp_t *rs);
/* api_inbox_page.c: the embeddable inbox page (web/inbox/) */
void api_inbox_page(http_req_t *rq, http_resp_t *rs);
void api_inbox_page_js(http_req_t *rq, http_resp_t *rs);
void api_inbox_page_css(http_req_t *rq, http_resp_t *rs);

/* ---- api_util.c: validation and answers shared by the handlers ---- */

/* Fills pb; always returns false so validators can `return api_bad(...)`. */
bool api_bad(problem_t *pb, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* snprintf for field names. */
void api_fieldf(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answers 422 naming pb->field. */
void api_answer_invalid(http_resp_t *rs, const problem_t *pb);
/* Answers a store or bus failure: 404, 503 with Retry-After, 507 with
 * Retry-After for HR_NOSPACE, or 500. */
void api_answer_backend(http_resp_t *rs, hr_t r, const char *what);
/* The same with extension members (reference stolen; may be NULL). */
void api_answer_backend_ext(http_resp_t *rs, hr_t r, const char *what, json_t *ext);
/* Answers 507 Insufficient Storage with Retry-After: where ("the store",
 * "the bus") is out of disk space. */
void api_answer_nospace(http_resp_t *rs, const char *what, const char *where);

/* Parses the request body as a JSON object or array. On failure answers
 * 400 naming "body" with jansson's position and returns NULL. */
json_t *api_body_json(http_req_t *rq, http_resp_t *rs);
/* The same, and 422 unless the body is an object. */
json_t *api_body_object(http_req_t *rq, http_resp_t *rs);
/* Refuses members not in keys (a typo would otherwise be silently dropped). */
bool api_only_keys(json_t *obj, const char *const *keys, const char *prefix, problem_t *pb);
/* An optional string member of 1..max printable bytes: absent or null ->
 * *out NULL. *out borrows from obj. */
bool api_opt_string(json_t *obj, const char *key, const char *field, size_t max,
                    const char **out, problem_t *pb);
/* The same, required. */
bool api_req_string(json_t *obj, const char *key, const char *field, size_t max,
                    const char **out, problem_t *pb);
/* A required id member (1..HTTP_ID_MAX printable bytes), borrowed from doc. */
bool api_body_id(json_t *doc, const char *key, const char **out, problem_t *pb);

/* id as the store keeps it for the caller's tenant (tenant.h): malloc'd,
 * free(). */
char *api_qualify(const http_req_t *rq, const char *id);

/* RFC 3339 UTC with milliseconds; null for 0 (never). */
json_t *api_json_time(int64_t ms);
/* A string that may be NULL; invalid UTF-8 from a store row becomes null
 * rather than failing the whole answer. */
json_t *api_json_str_or_null(const char *s);

/* limit: digits only, 1..hi; absent -> def. false after answering 400. */
bool api_query_limit(http_req_t *rq, http_resp_t *rs, int def, int hi, int *out);
/* cursor: opaque printable text, absent -> NULL. false after answering 400. */
bool api_query_cursor(http_req_t *rq, http_resp_t *rs, const char **out);

/* ---- api_users.c: the user body, shared with the import ---- */

/* Validates a user body (PUT /v1/users/{user_id}, one import line) into u,
 * which owns copies of its strings whatever the outcome (free with
 * user_clear). A user_id member must equal user_id. */
bool api_user_from_json(json_t *doc, const char *user_id, user_t *u, problem_t *pb);
/* false (pb names webhook_url) when u's webhook URL names a private
 * address and the configuration does not allow that. */
bool api_user_webhook_ok(http_req_t *rq, const user_t *u, problem_t *pb);
/* The user as GET /v1/users/{user_id} answers it (id as the client knows it). */
json_t *api_user_json(http_req_t *rq, const user_t *u);

/* ---- ids: the one place each kind of id from a path or body passes ----
 * The store's id for an id a client gave: today the same string; tenant
 * isolation qualifies it here. api_id_public is the inverse, for ids the
 * store returns (user, actor or topic). Results live as long as rq. */
const char *api_user_ref(http_req_t *rq, const char *id);
const char *api_actor_ref(http_req_t *rq, const char *id);
const char *api_topic_ref(http_req_t *rq, const char *id);
const char *api_id_public(http_req_t *rq, const char *stored);

/* ---- pages of ids (GET /v1/users, a user's follows and subscriptions) ---- */

/* limit (1..LIST_LIMIT_MAX, default LIST_LIMIT_DEFAULT) and the cursor
 * ("cursor", or its other name "after"): *after is the last id of the
 * previous page, NULL for the first. false after answering 400. */
bool api_page_query(http_req_t *rq, http_resp_t *rs, int *limit, const char **after);
/* next_cursor for a page that ended at id last (NULL: the end: null). */
json_t *api_page_next(const char *last);

#endif
