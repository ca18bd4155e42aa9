/*
 * routes.c - the API's route table: method, path pattern, handler, flags.
 * Every route names the API key scopes it accepts (RT_NEED; auth.h), or
 * RT_OPEN; one that names neither is admin only.
 * docs/openapi.yaml lists the same paths.
 */
#include "http/api_int.h"

const http_route_t http_routes[] = {
    {HM_POST, "/v1/events", api_events_post, RT_BODY | RT_EVENTS | RT_BUS | RT_NEED(SCOPE_PUBLISH)},
    {HM_PUT, "/v1/users/{user_id}", api_user_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_GET, "/v1/users/{user_id}", api_user_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE)},
    {HM_PUT, "/v1/users/{user_id}/preferences", api_prefs_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_GET, "/v1/users/{user_id}/preferences", api_prefs_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE)},
    {HM_POST, "/v1/users/{user_id}/follows", api_follow_post, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_GET, "/v1/users/{user_id}/notifications", api_user_notifs, RT_STORE | RT_NEED(SCOPE_READ)},
    {HM_POST, "/v1/topics/{topic}/subscribers", api_sub_post, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_GET, "/v1/topics/{topic}/subscribers", api_sub_list, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE)},
    {HM_DELETE, "/v1/topics/{topic}/subscribers/{user_id}", api_sub_delete, RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_PUT, "/v1/templates/{event_type}/{channel}", api_template_put, RT_BODY | RT_STORE | RT_NEED(SCOPE_MANAGE)},
    {HM_GET, "/v1/templates/{event_type}/{channel}", api_template_get, RT_STORE | RT_NEED(SCOPE_READ | SCOPE_MANAGE)},
    {HM_GET, "/v1/notifications/{notification_id}", api_notif_get, RT_STORE | RT_NEED(SCOPE_READ)},
    {HM_GET, "/v1/dlq", api_dlq_list, RT_STORE | RT_BUS | RT_NEED(SCOPE_ADMIN)},
    {HM_POST, "/v1/dlq/redrive", api_dlq_redrive, RT_BODY | RT_STORE | RT_BUS | RT_NEED(SCOPE_ADMIN)},
    /* delivery callbacks: no API key (providers cannot send one); signed */
    {HM_POST, "/v1/callbacks/twilio/{provider}", api_cb_twilio, RT_SMALL | RT_STORE | RT_BUS | RT_OPEN},
    {HM_POST, "/v1/callbacks/sendgrid/{provider}", api_cb_sendgrid, RT_BODY | RT_STORE | RT_BUS | RT_OPEN},
    {HM_GET, "/healthz", api_healthz, RT_OPS | RT_OPEN},
    {HM_GET, "/readyz", api_readyz, RT_OPS | RT_OPEN},
    {HM_GET, "/metrics", api_metrics_get, RT_OPS | RT_METRICS | RT_NEED(SCOPE_ADMIN)},
    {HM_GET, "/v1/ops/summary", api_ops_summary, RT_OPS | RT_NEED(SCOPE_ADMIN)},
    /* the status page: static files, no data, no key (its data calls send one) */
    {HM_GET, "/ui", api_ui_page, RT_OPS | RT_OPEN},
    {HM_GET, "/ui/app.js", api_ui_js, RT_OPS | RT_OPEN},
    {HM_GET, "/ui/style.css", api_ui_css, RT_OPS | RT_OPEN},
};
const size_t http_nroutes = ARRAY_LEN(http_routes);
