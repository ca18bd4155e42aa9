/*
 * event.h - the event producers publish (DESIGN §4, §6), parsed from JSON.
 *
 * event_parse() validates and returns a problem naming the field on bad
 * input. The parsed event owns a jansson reference to the document; free it
 * with event_clear().
 */
#ifndef HERALD_EVENT_H
#define HERALD_EVENT_H

#include "core/buf.h"
#include "core/common.h"
#include "model/notif.h"
#include "model/trace.h"

#include <jansson.h>

/* A validation failure: which field and why. Static strings or owned by
 * the problem (free with problem_clear). */
typedef struct problem {
    char field[128];
    char detail[256];
} problem_t;

#define EVENT_ID_MAX 200   /* bytes; also the limit for user ids and topics */
#define AUDIENCE_USERS_MAX 10000
#define EVENT_TYPE_MAX 128 /* bytes; a type names templates, it is not a payload */

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
    json_t *audience_users;     /* borrowed: array of strings (AUD_USERS, JSON form only);
                                 * read the users with event_users_next() */
    size_t audience_n;          /* AUD_USERS: how many */
    const char *audience_topic;       /* AUD_TOPIC */
    const char *audience_followers_of; /* AUD_FOLLOWERS */
    json_t *data;               /* borrowed: object, may be NULL; a record's is parsed
                                 * on first use: read it with event_data() */
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
    /* Decoded from a binary event record (event_decode): the strings point
     * into the record, which must outlive the event. */
    bool rec;
    bool data_tried;            /* rec: data parsed (or found unparsable) */
    const char *rec_users;      /* rec, AUD_USERS: the first user entry */
    const char *data_text;      /* rec: data's JSON text, NULL when absent */
    size_t data_len;
    bool data_compact;          /* data_text is as jansson's compact dump writes it
                                 * (event_scan_batch): encoded as it is */
    bool data_checked, data_simple; /* event_data_find: data_text read in place */
} event_t;

/* The audience's users (AUD_USERS) in order, in either form:
 *   event_users_t it; event_users_begin(ev, &it);
 *   for (const char *u; (u = event_users_next(&it));) ... */
typedef struct event_users {
    const event_t *ev;
    size_t i;
    const char *p;
} event_users_t;
void event_users_begin(const event_t *ev, event_users_t *it);
const char *event_users_next(event_users_t *it);

/* The event's data object (NULL when absent). A record's data is parsed on
 * the first call (not thread-safe: an event belongs to one thread). */
json_t *event_data(const event_t *ev);

/* The binary event record: what ingest writes to raw-events for events that
 * came through the API, so that fan-out neither re-serialises nor parses
 * JSON per event. Outside producers keep publishing JSON: a record starts
 * with the byte 0xFF, which no JSON text (UTF-8) contains, then 'E' and a
 * version byte. Layout (version 1, integers little-endian):
 *   0xFF 'E' version flags(bit 0: content_default)
 *   u8 priority, u8 audience kind, u8 channels_mask, u8 content_mask
 *   i64 accepted_at_us, i64 send_at_ms, i64 time_ms
 *   ten strings, each u32 (length + 1; 0 = absent), the bytes, a NUL:
 *     event_id type source actor category tenant traceparent
 *     audience key (topic / followers_of) data (JSON text) content (JSON text)
 *   u32 user count, then per user: u16 length, the bytes, a NUL
 * Decoding checks everything event_from_json() checks of the same fields
 * (a record may come from anyone who can write to the topic). */
#define EVENT_REC_MAGIC 0xFF
#define EVENT_REC_VERSION 1
static inline bool event_is_record(const void *p, size_t n)
{
    return n > 0 && ((const unsigned char *)p)[0] == EVENT_REC_MAGIC;
}
/* Appends ev (valid, from event_from_json) as a record to out. */
hr_t event_encode(const event_t *ev, buf_t *out);
/* Decodes a record of n bytes at p into ev, without copying: ev borrows p.
 * HR_INVALID with pb filled on a malformed record. Free with event_clear. */
hr_t event_decode(const void *p, size_t n, event_t *ev, problem_t *pb);
/* The event as a herald-shape JSON object equivalent to it (what goes to
 * the dead-letter queue for a record, so that it can be read and redriven
 * like any event). New reference. */
json_t *event_to_json(const event_t *ev);

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


/* Parses and validates one event object. Accepts the herald shape and
 * CloudEvents 1.0 (id, type, source, time, subject, data; herald fields may
 * sit inside data or as extension attributes). Takes a new reference to obj. */
hr_t event_from_json(json_t *obj, event_t *ev, problem_t *pb);
/* The fast path for a POST /v1/events body in the common herald shape: the
 * events straight from the text, without a JSON tree (event_scan.c says
 * what it takes). HR_OK: *evs (xmalloc'd, *n of them; free each with
 * event_clear, then the array) are record-form events (rec) whose strings
 * live in strings, which must outlive them; they are the events
 * event_from_json would make of the same text and encode to the same
 * bytes. HR_AGAIN: not for the fast path - more than max events, a shape
 * or value it does not follow, or an invalid body: parse it with jansson,
 * which accepts it or names the problem. *is_array: the body was an array. */
hr_t event_scan_batch(const char *text, size_t len, int max, buf_t *strings, event_t **evs, int *n,
                      bool *is_array);
/* A value of the event's data found by event_data_find. */
typedef enum { EV_STRING = 1, EV_INTEGER, EV_TRUE, EV_FALSE, EV_OTHER } event_value_kind_t;
typedef struct event_value {
    bool found;
    event_value_kind_t kind;
    const char *text;           /* EV_STRING: the string's bytes; EV_INTEGER: its digits */
    size_t len;
} event_value_t;
/* data.<path> (segments split at '.', array elements by index, as
 * template.c's data_lookup walks them) read on a record's data text in
 * place, without a JSON tree. true with *out filled (found false when a
 * step is missing) when the text is in the subset event_scan.c reads in
 * place; false otherwise: use event_data() and walk the tree. */
bool event_data_find(const event_t *ev, const char *path, size_t n, event_value_t *out);
/* Parses bytes (one object). */
hr_t event_parse(const char *text, size_t len, event_t *ev, problem_t *pb);
void event_clear(event_t *ev);

/* Parses RFC 3339 time into ms since epoch; HR_INVALID if malformed. */
hr_t parse_rfc3339_ms(const char *s, int64_t *out_ms);

#endif
