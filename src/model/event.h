/*
 * event.h - the event producers publish (DESIGN §4, §6), parsed from JSON.
 *
 * event_parse() validates and returns a problem naming the field on bad
 * input. The parsed event owns a jansson reference to the document; free it
 * with event_clear().
 */
#ifndef HERALD_EVENT_H
#define HERALD_EVENT_H

#include "core/common.h"
#include "model/notif.h"
#include "model/trace.h"

#include <jansson.h>

typedef enum audience_kind { AUD_USERS = 1, AUD_TOPIC, AUD_FOLLOWERS } audience_kind_t;

typedef struct event {
    json_t *doc;                /* owned reference: the whole event object */
    const char *event_id;       /* strings below point into doc */
    const char *type;
    const char *source;         /* may be NULL */
    const char *actor;          /* may be NULL */
    const char *category;       /* may be NULL -> "default" */
    const char *tenant;         /* may be NULL (the default tenant); a tenant_name_valid() */
    int64_t time_ms;            /* 0 when absent */
    priority_t priority;
    audience_kind_t audience;
    json_t *audience_users;     /* borrowed: array of strings (AUD_USERS) */
    const char *audience_topic;       /* AUD_TOPIC */
    const char *audience_followers_of; /* AUD_FOLLOWERS */
    json_t *data;               /* borrowed: object, may be NULL */
    unsigned channels_mask;     /* bit per channel_t; 0 = template set */
    int64_t accepted_at_us;     /* set by ingest ("_accepted_at_us"), 0 if absent */
    int64_t send_at_ms;         /* "send_at": deliver no earlier than this (ms since
                                 * epoch); 0 when absent. A past time means now. */
    json_t *content;            /* borrowed: inline "content" object, NULL if absent */
    unsigned content_mask;      /* channels content names ({"push":{...}}) */
    bool content_default;       /* content has a title/body for every channel */
    /* "traceparent" (W3C Trace Context; in CloudEvents the distributed
     * tracing extension attribute): validated and written in version 00
     * form; "" when absent. Ingest and fan-out may fill it from the
     * transport (the HTTP header, the Kafka record header) when the event
     * carries none: the event's own value wins. */
    char traceparent[TRACEPARENT_LEN + 1];
} event_t;

/* Inline content (instead of a template), per channel or for all:
 *   "content": {"title": "...", "body": "...",            <- every channel
 *               "push": {"title": "...", "body": "..."},   <- push only
 *               "email": {...}}
 * A channel's own object wins over the top-level title/body. Each text is
 * rendered like a template ({{actor}}, {{data.x}}; text without {{ is sent
 * as is). An object needs title or body (a missing one is empty); other
 * keys are refused. Channels: `channels` when given, else the type's
 * templates plus the channels content names; top-level title/body alone
 * chooses no channel. */
#define EVENT_CONTENT_TITLE_MAX 1024
#define EVENT_CONTENT_BODY_MAX (64 * 1024)
/* send_at further ahead than this is refused (naming send_at). */
#define EVENT_SEND_AT_MAX_AHEAD_MS (366LL * 24 * 3600 * 1000)

/* The inline content for channel ch: true with *title and *body set
 * (borrowed from ev->doc; "" when the object lacks one) when the event
 * carries content for ch, false when ch uses a template. */
bool event_content_for(const event_t *ev, channel_t ch, const char **title, const char **body);

/* A validation failure: which field and why. Static strings or owned by
 * the problem (free with problem_clear). */
typedef struct problem {
    char field[128];
    char detail[256];
} problem_t;

/* Parses and validates one event object. Accepts the herald shape and
 * CloudEvents 1.0 (id, type, source, time, subject, data; herald fields may
 * sit inside data or as extension attributes). Takes a new reference to obj. */
hr_t event_from_json(json_t *obj, event_t *ev, problem_t *pb);
/* Parses bytes (one object). */
hr_t event_parse(const char *text, size_t len, event_t *ev, problem_t *pb);
void event_clear(event_t *ev);

/* Parses RFC 3339 time into ms since epoch; HR_INVALID if malformed. */
hr_t parse_rfc3339_ms(const char *s, int64_t *out_ms);

#endif
