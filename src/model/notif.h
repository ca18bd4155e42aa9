/*
 * notif.h - the notification and status records that travel on internal
 * topics, and their codec.
 *
 * Internal topics carry a compact, versioned binary record (JSON costs ~6 us
 * per record per hop, see DESIGN §9). The JSON form exists for the DLQ, the
 * API and debugging. Decoding is zero-copy: the decoded struct's strings
 * point into the input bytes and are NOT NUL-terminated; each string is a
 * (ptr, len) pair (hstr_t).
 *
 * Binary layout (little-endian), version 3 (what notif_encode writes):
 *   u8 magic 'N' | u8 version (3) | u8 kind (record_kind_t)
 *   | u8 channel | u8 priority | u8 status | u16 attempt
 *   | i64 created_at_ms | i64 due_at_ms | i64 status_at_ms | i64 accepted_at_us
 *   | i16 quiet_start_min | i16 quiet_end_min
 *   | then strings, each u32 length + bytes, in the order of NOTIF_STRINGS
 *     (NOTIF_STRINGS_V1, then NOTIF_STRINGS_V2, then NOTIF_STRINGS_V3).
 * Version 1 (still decoded) lacks the two quiet-hours fields and the
 * NOTIF_STRINGS_V2 strings; decoding it leaves them empty and -1.
 * Version 2 (still decoded) lacks the NOTIF_STRINGS_V3 strings (the W3C
 * traceparent); decoding it leaves them empty.
 *
 * A new version adds fields at the end of the fixed part or of the string
 * list, never in between, so that decoding an older version is "read less,
 * default the rest".
 */
#ifndef HERALD_NOTIF_H
#define HERALD_NOTIF_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>

#include <string.h>

typedef struct hstr {
    const char *p;
    size_t n;
} hstr_t;

static inline hstr_t hstr_of(const char *s)
{
    hstr_t h = {s, s ? strlen(s) : 0};
    return h;
}
#define HSTR(s) hstr_of(s)

typedef enum channel {
    CH_PUSH = 0,
    CH_SMS,
    CH_EMAIL,
    CH_INAPP,
    CH_WEBHOOK,
    CH__COUNT
} channel_t;

const char *channel_name(channel_t c);
int channel_parse(const char *s, size_t n); /* -1 if unknown */

typedef enum priority { PRIO_LOW = 0, PRIO_NORMAL, PRIO_HIGH, PRIO_CRITICAL } priority_t;
const char *priority_name(priority_t p);
int priority_parse(const char *s, size_t n);

typedef enum notif_status {
    ST_PENDING = 0,
    ST_SENT,
    ST_DELIVERED,
    ST_FAILED,
    ST_SUPPRESSED,
    ST_RATE_LIMITED,
    ST_DEFERRED,
    ST_DEAD,
    /* Set by delivery callbacks (after sent). Appended: the number is
     * stored (binary record, store), so old values never move. */
    ST_UNDELIVERED,             /* the provider reports a final failure */
    ST_BOUNCED,                 /* the recipient's server refused it (e-mail hard bounce) */
    /* Appended likewise: collapsed into a digest (model/digest.h); the
     * status's error says "into <digest id>", the delivered one's id. */
    ST_DIGESTED,
    ST__COUNT
} notif_status_t;
const char *status_name(notif_status_t s);
int status_parse(const char *s, size_t n);

/* What a record on an internal topic is. */
typedef enum record_kind {
    REC_NOTIFICATION = 1,       /* to be dispatched (notifications-<channel>) */
    REC_STATUS = 2,             /* a status change (notification-status) */
} record_kind_t;

/* One notification: one (event, recipient, channel). Also used as the status
 * record (REC_STATUS) with status / status_at / channel_msg_id / error set;
 * see model/lifecycle.h for the one function that makes that change. */
typedef struct notif {
    uint8_t kind;               /* record_kind_t */
    channel_t channel;
    priority_t priority;
    notif_status_t status;
    uint16_t attempt;
    int64_t created_at_ms;
    int64_t due_at_ms;
    int64_t status_at_ms;
    int64_t accepted_at_us;     /* when ingest accepted the event (latency) */
    hstr_t notification_id;
    hstr_t event_id;
    hstr_t user_id;
    hstr_t category;
    hstr_t title;
    hstr_t body;
    hstr_t address;             /* device token / phone / email / url */
    hstr_t platform;            /* apns | fcm for push; empty otherwise */
    hstr_t channel_msg_id;      /* provider's message id (status) */
    hstr_t error;               /* reason (status failed/dead/suppressed) */
    hstr_t metadata;            /* JSON object text, may be empty */
    /* Version 2: what the dispatch policy needs about the recipient. */
    hstr_t timezone;            /* IANA name; empty = unknown (UTC) */
    int16_t quiet_start_min;    /* quiet hours, minutes after local midnight, */
    int16_t quiet_end_min;      /* 0..1439 each, or both NOTIF_QUIET_NONE */
    /* Version 3: the W3C trace context of the event (model/trace.h), as
     * ingest or fan-out accepted it (version 00 form, 55 characters); empty
     * when the event came without one. The codec carries the bytes as they
     * are: whoever puts it on a wire checks it (trace_is_v00). */
    hstr_t traceparent;
    /* A status record ('S', below) that came without the content (event_id,
     * category, title, body, address): the notification's earlier row holds
     * it. False for every 'N' record and for records made in memory. */
    bool no_content;
} notif_t;

#define NOTIF_MAGIC 'N'
#define NOTIF_VERSION 3         /* written; 1, 2 and 3 are read */
#define NOTIF_QUIET_NONE (-1)   /* no quiet hours */

/* The string fields in wire order (X-macro: X(field) per notif_t member):
 * those of version 1, then those versions 2 and 3 added. */
#define NOTIF_STRINGS_V1(X)                                                  \
    X(notification_id) X(event_id) X(user_id) X(category) X(title) X(body)   \
    X(address) X(platform) X(channel_msg_id) X(error) X(metadata)
#define NOTIF_STRINGS_V2(X) X(timezone)
#define NOTIF_STRINGS_V3(X) X(traceparent)
#define NOTIF_STRINGS(X) NOTIF_STRINGS_V1(X) NOTIF_STRINGS_V2(X) NOTIF_STRINGS_V3(X)

/* Appends the binary encoding (version 3) to out. HR_INVALID for
 * out-of-range enums or quiet hours (each 0..1439, or both
 * NOTIF_QUIET_NONE). A zeroed notif_t has quiet hours 00:00-00:00, an empty
 * window; set both to NOTIF_QUIET_NONE to say "none". */
hr_t notif_encode(const notif_t *n, buf_t *out);
/* Decodes version 1, 2 or 3, and status records in the compact form (magic
 * 'S', notif_decode_status below); n's strings point into data. HR_INVALID on a
 * malformed record. */
hr_t notif_decode(const void *data, size_t len, notif_t *n);
/* JSON form (for DLQ, API, sandbox lines and debugging). event_id and
 * user_id are shown as their tenant named them, with a "tenant" member
 * when it is not the default one (tenant.h): the separator never leaves
 * herald. */
hr_t notif_to_json(const notif_t *n, buf_t *out);

/* The status record on notification-status (model/status_rec.c): magic 'S',
 * varint integers, only what the store and dispatch read back - id, user,
 * channel, status, attempt, status and created times, the provider's
 * message id and the error when present, metadata and traceparent when
 * set - and, when `content` is true, the content the store keeps from the
 * notification's first row (event_id, category, title, body, address).
 * Without content it is ~60 bytes plus the ids. Give the content in every
 * status that may be a notification's first (fan-out's, dispatch's for
 * attempt 1); leave it out only where an earlier status carried it (a
 * retry's attempt > 1, a delivery report, which starts from the stored
 * row). notif_decode reads both forms ('N' records of kind REC_STATUS
 * still on disk or in Kafka, and 'S'); an 'S' record decodes as kind
 * REC_STATUS, priority normal, no quiet hours, no_content = !content. */
#define STATUS_REC_MAGIC 'S'
#define STATUS_REC_VERSION 1
hr_t notif_encode_status(const notif_t *n, bool content, buf_t *out);
hr_t notif_decode_status(const void *data, size_t len, notif_t *n);

/* Notification ids: 32 lowercase hex digits (16 bytes), time-ordered and
 * deterministic:
 *
 *   bytes 0..5   the event's accepted time in ms (accepted_at_us / 1000,
 *                big-endian 48 bits: until the year 10889)
 *   bytes 6..15  the first 10 bytes (80 bits) of
 *                SHA-256(event_id '\0' user_id '\0' channel_name)
 *
 * The same event record gives the same ids however often it is processed
 * (accepted_at_us travels in the record: ingest stamps it, "_accepted_at_us"
 * in the raw JSON, and every notification record carries it). Ids sort by
 * accepted time, so the store's id index grows at its right-hand edge and
 * retention deletes a range at its left (store/store_sqlite.c).
 *
 * accepted_at_us <= 0 (raw JSON from an outside producer without the
 * stamp): the time part is 0, so the id depends on the ids and channel
 * only and stays deterministic across re-processing and redrives (the
 * bus offset or arrival time would not). Such ids sort before every
 * stamped one; the store then pays a random index insert for them, as it
 * did for every id before (retention goes by the rows' own times, not by
 * the ids). Fan-out passes the tenant-qualified ids (tenant.h), so two
 * tenants' same event and user ids make different notifications. out must
 * hold 33 bytes. */
void notif_make_id(int64_t accepted_at_us, hstr_t event_id, hstr_t user_id, channel_t ch,
                   char out[33]);
/* A push notification per device: a user's first device keeps
 * notif_make_id's id; each further device ("platform:token") gets the same
 * time part and 80 bits of SHA-256(event_id '\0' user_id '\0' channel_name
 * '\0' device). device empty = notif_make_id. */
void notif_make_device_id(int64_t accepted_at_us, hstr_t event_id, hstr_t user_id, channel_t ch,
                          hstr_t device, char out[33]);
/* The time part (ms) of a notification id; -1 when id is not 32 hex digits. */
int64_t notif_id_time_ms(hstr_t id);
/* The smallest id with time part at_ms (clamped to 0 .. 2^48 - 1): every
 * id of an earlier time sorts before it (a range bound). out must hold 33
 * bytes. */
void notif_id_bound(int64_t at_ms, char out[33]);
#define NOTIF_ID_TIME_MAX ((INT64_C(1) << 48) - 1)

#endif
