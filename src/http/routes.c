/*
 * routes.c - the API's route table: method, path pattern, handler, flags.
 * docs/openapi.yaml lists the same paths.
 */
#include "http/api_int.h"

const http_route_t http_routes[] = {
    {HM_POST, "/v1/events", api_events_post, RT_BODY | RT_EVENTS | RT_BUS},
    {HM_PUT, "/v1/users/{user_id}", api_user_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}", api_user_get, RT_STORE},
    {HM_PUT, "/v1/users/{user_id}/preferences", api_prefs_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}/preferences", api_prefs_get, RT_STORE},
    {HM_POST, "/v1/users/{user_id}/follows", api_follow_post, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}/notifications", api_user_notifs, RT_STORE},
    {HM_POST, "/v1/topics/{topic}/subscribers", api_sub_post, RT_BODY | RT_STORE},
    {HM_GET, "/v1/topics/{topic}/subscribers", api_sub_list, RT_STORE},
    {HM_DELETE, "/v1/topics/{topic}/subscribers/{user_id}", api_sub_delete, RT_STORE},
    {HM_PUT, "/v1/templates/{event_type}/{channel}", api_template_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/templates/{event_type}/{channel}", api_template_get, RT_STORE},
    {HM_GET, "/v1/notifications/{notification_id}", api_notif_get, RT_STORE},
    {HM_GET, "/v1/dlq", api_dlq_list, RT_STORE | RT_BUS},
    {HM_POST, "/v1/dlq/redrive", api_dlq_redrive, RT_BODY | RT_STORE | RT_BUS},
    /* delivery callbacks: no API key (providers cannot send one); signed */
    {HM_POST, "/v1/callbacks/twilio/{provider}", api_cb_twilio, RT_SMALL | RT_STORE | RT_BUS},
    {HM_POST, "/v1/callbacks/sendgrid/{provider}", api_cb_sendgrid, RT_BODY | RT_STORE | RT_BUS},
    {HM_GET, "/healthz", api_healthz, RT_OPS},
    {HM_GET, "/readyz", api_readyz, RT_OPS},
    {HM_GET, "/metrics", api_metrics_get, RT_OPS},
};
const size_t http_nroutes = ARRAY_LEN(http_routes);
