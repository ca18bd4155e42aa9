/*
 * names.h - every name herald gives to a topic, a consumer group, a stage
 * and a role, in one table. Topics and groups are part of the deployment
 * (operators create, monitor and replay them by name), so they are written
 * once, here, and everything else (ingest, the stages, the API's lag
 * metrics, `herald replay`, `herald topics`) asks this table.
 *
 *   topic                    group              stage / role
 *   raw-events               fanout             fanout
 *   notifications-<channel>  dispatch-<channel> dispatch:<channel>
 *   notification-status      status             status
 *   notifications-dlq        -                  -
 *   (HTTP API)               -                  ingest
 *
 * Each channel also has retry-tier topics, <channel>-retry-30s, -5m and
 * -30m, each read by its retry stage (stage/retry.c) in the consumer group
 * of the same name, "retry:<channel>:<tier>" in logs. The names stay when
 * retry.delays_ms changes the delays.
 *
 * Roles: the `roles` setting is "all" or a comma list of role names; the
 * role "dispatch" stands for every dispatch:<channel>.
 *
 * Threads: the tables are constant; every function is pure.
 */
#ifndef HERALD_NAMES_H
#define HERALD_NAMES_H

#include "core/common.h"
#include "model/notif.h"

#include <stdbool.h>

/* Fixed topics (DESIGN §1). */
#define TOPIC_RAW "raw-events"
#define TOPIC_STATUS "notification-status"
#define TOPIC_DLQ "notifications-dlq"

/* Consumer groups and stage (role) names of the fixed stages. */
#define GROUP_FANOUT "fanout"
#define GROUP_STATUS "status"
#define STAGE_FANOUT "fanout"
#define STAGE_STATUS "status"
#define ROLE_INGEST "ingest"
#define ROLE_DISPATCH "dispatch"  /* every dispatch:<channel> */
#define ROLE_ALL "all"

/* Chunked fan-out (stage/chunks.h): chunk tasks of big audiences, read by
 * the fan-out role's workers in their own group. */
#define TOPIC_CHUNKS "fanout-chunks"
#define GROUP_CHUNKS "fanout-chunks"
#define STAGE_CHUNKS "fanout-chunks"

/* Retry tiers: default delays after a retriable failure, shortest first
 * (retry.delays_ms overrides them). */
enum { RETRY_TIERS = 3 };
extern const int64_t retry_tier_delay_ms[RETRY_TIERS];

/* The names derived from one channel. Static strings. */
typedef struct channel_names {
    const char *topic;                      /* "notifications-push" */
    const char *group;                      /* "dispatch-push" */
    const char *stage;                      /* "dispatch:push", also its role name */
    const char *retry_topic[RETRY_TIERS];   /* "push-retry-30s", "-5m", "-30m"; also their groups */
    const char *retry_stage[RETRY_TIERS];   /* "retry:push:30s", ... (thread and log names) */
} channel_names_t;

/* The channel's names; NULL when channel is out of range. */
const channel_names_t *names_for_channel(int channel);
/* "notifications-push" etc.; NULL when channel is out of range. */
const char *topic_for_channel(int channel);
/* The topic a consumer group reads (the default for `herald replay`):
 * fanout -> raw-events, dispatch-<channel> -> notifications-<channel>,
 * status -> notification-status, a retry tier group -> its topic. NULL for a
 * group herald does not run. */
const char *names_group_topic(const char *group);

/* ---- roles ---- */

/* The parts one process runs, from the `roles` setting. */
typedef struct roles {
    bool ingest;                /* the HTTP API (ingest and the rest of it) */
    bool fanout;
    bool dispatch[CH__COUNT];
    bool status;
} roles_t;

/* Parses "all" or a comma list of ingest, fanout, dispatch, dispatch:<channel>,
 * status (spaces around names are allowed). HR_INVALID with why naming the
 * bad role for an unknown or empty name. */
hr_t roles_parse(const char *text, roles_t *out, char *why, size_t why_len);
/* Does roles include the stage with this name ("fanout", "dispatch:sms",
 * "status")? false for names that are no stage. */
bool roles_has_stage(const roles_t *r, const char *stage);

#endif
