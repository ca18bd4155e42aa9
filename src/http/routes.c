/*
 * routes.c - the API's route table: method, path pattern, handler, flags.
 * Every route names the API key scopes it accepts (RT_NEED; auth.h), or
 * RT_OPEN; one that names neither is admin only.
 * docs/openapi.yaml lists the same paths.
 */
#include "http/api_int.h"

const http_route_t http_routes[] = {
    {HM_POST, "/v1/events", api_events_post, RT_BODY | RT_EVENTS | RT_BUS | RT_NEED(SCOPE_PUBLISH), NULL},
    {HM_GET, "/v1/users", api_users_list, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    /* NDJSON, streamed: bounded by api.import_max_bytes, not http.max_body */
    {HM_POST, "/v1/users/import", api_users_import, RT_STORE | RT_NEED(SCOPE_MANAGE),
     &api_users_import_body},
    {HM_DELETE, "/v1/users/{user_id}", api_user_delete, RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/users/{user_id}/follows", api_following_list,
     RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_DELETE, "/v1/users/{user_id}/follows/{actor}", api_follow_delete,
     RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/users/{user_id}/subscriptions", api_user_topics,
     RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_PUT, "/v1/users/{user_id}", api_user_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/users/{user_id}", api_user_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_PUT, "/v1/users/{user_id}/preferences", api_prefs_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/users/{user_id}/preferences", api_prefs_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_POST, "/v1/users/{user_id}/follows", api_follow_post, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/users/{user_id}/notifications", api_user_notifs, RT_STORE | RT_NEED(SCOPE_READ), NULL},
    /* the in-app inbox (api_inbox.c) */
    {HM_GET, "/v1/users/{user_id}/inbox", api_inbox_list, RT_STORE | RT_USER | RT_NEED(SCOPE_READ), NULL},
    {HM_GET, "/v1/users/{user_id}/inbox/counts", api_inbox_counts, RT_STORE | RT_USER | RT_NEED(SCOPE_READ), NULL},
    {HM_POST, "/v1/users/{user_id}/inbox/read-all", api_inbox_read_all, RT_STORE | RT_USER | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_POST, "/v1/users/{user_id}/inbox/seen-all", api_inbox_seen_all, RT_STORE | RT_USER | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_POST, "/v1/users/{user_id}/inbox/archive-all", api_inbox_archive_all, RT_STORE | RT_USER | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_POST, "/v1/users/{user_id}/inbox/{notification_id}/{action}", api_inbox_mark, RT_STORE | RT_USER | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_DELETE, "/v1/users/{user_id}/inbox/{notification_id}", api_inbox_delete, RT_STORE | RT_USER | RT_NEED(SCOPE_MANAGE), NULL},
    /* the inbox live (api_inbox_stream.c) and user tokens for browsers (RT_USER) */
    {HM_GET, "/v1/users/{user_id}/inbox/stream", api_inbox_stream, RT_STORE | RT_USER | RT_NEED(SCOPE_READ), NULL},
    {HM_POST, "/v1/users/{user_id}/inbox/token", api_inbox_token, RT_SMALL | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_POST, "/v1/topics/{topic}/subscribers", api_sub_post, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/topics/{topic}/subscribers", api_sub_list, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_DELETE, "/v1/topics/{topic}/subscribers/{user_id}", api_sub_delete, RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_PUT, "/v1/templates/{event_type}/{channel}", api_template_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/templates/{event_type}/{channel}", api_template_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE), NULL},
    {HM_GET, "/v1/notifications/{notification_id}", api_notif_get, RT_STORE | RT_NEED(SCOPE_READ), NULL},
    {HM_GET, "/v1/dlq", api_dlq_list, RT_STORE | RT_BUS | RT_NEED(SCOPE_ADMIN), NULL},
    {HM_POST, "/v1/dlq/redrive", api_dlq_redrive, RT_BODY | RT_STORE | RT_BUS | RT_NEED(SCOPE_ADMIN), NULL},
    /* delivery callbacks: no API key (providers cannot send one); signed */
    {HM_POST, "/v1/callbacks/twilio/{provider}", api_cb_twilio, RT_SMALL | RT_STORE | RT_BUS | RT_OPEN, NULL},
    {HM_POST, "/v1/callbacks/sendgrid/{provider}", api_cb_sendgrid, RT_BODY | RT_STORE | RT_BUS | RT_OPEN, NULL},
    {HM_GET, "/healthz", api_healthz, RT_OPS | RT_OPEN, NULL},
    {HM_GET, "/readyz", api_readyz, RT_OPS | RT_OPEN, NULL},
    {HM_GET, "/metrics", api_metrics_get, RT_OPS | RT_METRICS | RT_NEED(SCOPE_ADMIN), NULL},
    {HM_GET, "/v1/ops/summary", api_ops_summary, RT_OPS | RT_NEED(SCOPE_ADMIN), NULL},
    /* the status page: static files, no data, no key (its data calls send one) */
    {HM_GET, "/ui", api_ui_page, RT_OPS | RT_OPEN, NULL},
    {HM_GET, "/ui/app.js", api_ui_js, RT_OPS | RT_OPEN, NULL},
    {HM_GET, "/ui/style.css", api_ui_css, RT_OPS | RT_OPEN, NULL},
    /* the embeddable inbox page (web/inbox/): static files; its calls send a user token */
    {HM_GET, "/inbox", api_inbox_page, RT_OPEN, NULL},
    {HM_GET, "/inbox/inbox.js", api_inbox_page_js, RT_OPEN, NULL},
    {HM_GET, "/inbox/inbox.css", api_inbox_page_css, RT_OPEN, NULL},
};
const size_t http_nroutes = ARRAY_LEN(http_routes);
