/*
 * event.c - validation of the events producers publish (DESIGN §4, §6).
 *
 * DESIGN. An event is a jansson object; event_t borrows strings and
 * sub-objects from it and holds one reference to the whole document, so
 * parsing copies nothing. Validation stops at the first problem and names
 * the field JSON-pointer style ("audience.users[3]", "data.priority") so the
 * HTTP API can answer with problem+json and the fan-out stage can put the
 * reason on the DLQ record. A field set to null counts as absent. Unknown
 * top-level fields are ignored (producers may carry their own); unknown
 * keys inside "audience" are refused, since a misspelt audience kind would
 * otherwise silently notify nobody.
 *
 * Two shapes are accepted:
 *   herald:      {"event_id","type","audience",...}
 *   CloudEvents: {"specversion":"1.0","id","type","source","time","subject",
 *                 "data":{...}}, with herald's attributes (audience, actor,
 *                 category, priority, channels, tenant, send_at,
 *                 content) as top-level
 *                 extension attributes or inside data; the top level wins.
 *                 subject stands in for actor when actor is absent.
 * Both shapes take "traceparent" at the top level only (in CloudEvents it
 * is the distributed tracing extension's attribute, never part of data);
 * a malformed one is refused like any bad field (model/trace.h).
 */
#include "model/event.h"
#include "model/template.h"
#include "model/tenant.h"

#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* every id fits a tenant-qualified id (tenant.h) */
_Static_assert(EVENT_ID_MAX <= TENANT_ID_MAX && EVENT_TYPE_MAX <= TENANT_ID_MAX, "ids qualify");

static hr_t fail(problem_t *pb, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static hr_t fail(problem_t *pb, const char *field, const char *fmt, ...)
{
    if (pb) {
        snprintf(pb->field, sizeof(pb->field), "%s", field);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pb->detail, sizeof(pb->detail), fmt, ap);
        va_end(ap);
    }
    return HR_INVALID;
}

/* Builds a field name; long names are cut (problem_t holds 128 bytes). */
static void field_name(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void field_name(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* Checks that v is a string of 1..max bytes without NUL (max 0: no limit;
 * allow_empty: 0 bytes allowed) and borrows it. */
static hr_t take_string(json_t *v, const char *field, size_t max, bool allow_empty,
                        const char **out, problem_t *pb)
{
    if (!json_is_string(v)) return fail(pb, field, "must be a string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty) return fail(pb, field, "must not be empty");
    if (max && n > max) return fail(pb, field, "must be at most %zu bytes", max);
    if (strlen(s) != n) return fail(pb, field, "must not contain NUL characters");
    *out = s;
    return HR_OK;
}

/* An id (event id, type, user, topic, actor): take_string, and no
 * control characters at all - the tenant separator (tenant.h) among them. */
static hr_t take_id(json_t *v, const char *field, size_t max, const char **out, problem_t *pb)
{
    hr_t r = take_string(v, field, max, false, out, pb);
    if (r == HR_OK && !utf8_printable(*out, strlen(*out)))
        return fail(pb, field, "must not contain control characters");
    return r;
}

/* A top-level member; null counts as absent. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

/* A herald attribute: the top-level member, or in CloudEvents form the
 * member of data. Writes the field's name for problems into name. */
static json_t *attribute(json_t *obj, json_t *data, bool ce, const char *key, char *name,
                         size_t name_len)
{
    json_t *v = member(obj, key);
    if (!v && ce && data) {
        v = member(data, key);
        if (v) {
            field_name(name, name_len, "data.%s", key);
            return v;
        }
    }
    size_t kl = strlen(key); /* keys are short literals */
    if (kl < name_len) memcpy(name, key, kl + 1);
    else name[0] = '\0';
    return v;
}

static hr_t parse_users(json_t *users, const char *field, event_t *ev, problem_t *pb)
{
    char name[128];
    if (!json_is_array(users)) return fail(pb, field, "must be an array of user ids");
    size_t count = json_array_size(users);
    if (count == 0) return fail(pb, field, "must not be empty");
    if (count > AUDIENCE_USERS_MAX)
        return fail(pb, field, "has %zu users; at most %d are allowed in one event", count,
                    AUDIENCE_USERS_MAX);
    for (size_t i = 0; i < count; i++) {
        const char *s;
        /* the field's name is made only for a problem (this runs per user) */
        if (take_id(json_array_get(users, i), field, EVENT_ID_MAX, &s, NULL) == HR_OK) continue;
        field_name(name, sizeof(name), "%s[%zu]", field, i);
        return take_id(json_array_get(users, i), name, EVENT_ID_MAX, &s, pb);
    }
    ev->audience = AUD_USERS;
    ev->audience_users = users;
    ev->audience_n = count;
    return HR_OK;
}

static hr_t parse_audience(json_t *aud, const char *field, event_t *ev, problem_t *pb)
{
    char name[128];
    const char *key;
    json_t *v;
    int kinds = 0;

    if (!aud) return fail(pb, field, "is required: {\"users\":[...]}, {\"topic\":...} or {\"followers_of\":...}");
    if (!json_is_object(aud)) return fail(pb, field, "must be an object");

    json_object_foreach(aud, key, v) {
        hr_t r;
        field_name(name, sizeof(name), "%s.%s", field, key);
        if (strcmp(key, "users") == 0) {
            r = parse_users(v, name, ev, pb);
        } else if (strcmp(key, "topic") == 0) {
            ev->audience = AUD_TOPIC;
            r = take_id(v, name, EVENT_ID_MAX, &ev->audience_topic, pb);
        } else if (strcmp(key, "followers_of") == 0) {
            ev->audience = AUD_FOLLOWERS;
            r = take_id(v, name, EVENT_ID_MAX, &ev->audience_followers_of, pb);
        } else {
            return fail(pb, name, "unknown audience kind (want users, topic or followers_of)");
        }
        if (r != HR_OK) return r;
        kinds++;
    }
    if (kinds == 0)
        return fail(pb, field, "must have one of users, topic, followers_of");
    if (kinds > 1)
        return fail(pb, field, "must have exactly one of users, topic, followers_of");
    return HR_OK;
}

static hr_t parse_channels(json_t *chs, const char *field, event_t *ev, problem_t *pb)
{
    char name[128];
    if (!json_is_array(chs)) return fail(pb, field, "must be an array of channel names");
    if (json_array_size(chs) == 0)
        return fail(pb, field, "must not be empty (leave it out to use the template's channels)");
    unsigned mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(chs, i, v) {
        int c = json_is_string(v) ? channel_parse(json_string_value(v), json_string_length(v)) : -1;
        if (c >= 0) {
            mask |= 1u << c;
            continue;
        }
        field_name(name, sizeof(name), "%s[%zu]", field, i);
        if (!json_is_string(v)) return fail(pb, name, "must be a string");
        return fail(pb, name, "unknown channel (want push, sms, email, inapp or webhook)");
    }
    ev->channels_mask = mask;
    return HR_OK;
}

/* One content object: only "title" and "body" (strings, template syntax),
 * at least one of them; or, at the top level (top), channel names too. */
static hr_t parse_content_obj(json_t *obj, const char *field, bool top, event_t *ev, problem_t *pb)
{
    char name[128], why[200];
    const char *key;
    json_t *v;
    int texts = 0;
    if (!json_is_object(obj)) return fail(pb, field, "must be an object with title and/or body");
    json_object_foreach(obj, key, v) {
        field_name(name, sizeof(name), "%s.%s", field, key);
        bool title = strcmp(key, "title") == 0;
        if (title || strcmp(key, "body") == 0) {
            const char *s;
            hr_t r = take_string(v, name, title ? EVENT_CONTENT_TITLE_MAX : EVENT_CONTENT_BODY_MAX,
                                 true, &s, pb);
            if (r != HR_OK) return r;
            if (tmpl_check(s, why, sizeof(why)) != HR_OK) return fail(pb, name, "%s", why);
            texts++;
            continue;
        }
        int ch = top ? channel_parse(key, strlen(key)) : -1;
        if (ch < 0)
            return fail(pb, name, top ? "unknown key (want title, body or a channel name)"
                                      : "unknown key (want title or body)");
        hr_t r = parse_content_obj(v, name, false, ev, pb);
        if (r != HR_OK) return r;
        ev->content_mask |= 1u << ch;
    }
    if (top) {
        ev->content_default = texts > 0;
        if (!texts && !ev->content_mask)
            return fail(pb, field, "must have title and/or body, or content per channel");
    } else if (!texts) {
        return fail(pb, field, "must have title and/or body");
    }
    return HR_OK;
}

bool event_content_for(const event_t *ev, channel_t ch, const char **title, const char **body)
{
    json_t *obj = NULL;
    if (!ev->content) return false;
    if (ev->content_mask & (1u << ch)) obj = json_object_get(ev->content, channel_name(ch));
    else if (ev->content_default) obj = ev->content;
    if (!obj) return false;
    json_t *t = json_object_get(obj, "title"), *b = json_object_get(obj, "body");
    *title = json_is_string(t) ? json_string_value(t) : "";
    *body = json_is_string(b) ? json_string_value(b) : "";
    return true;
}

static hr_t optional_string(json_t *v, const char *field, const char **out, problem_t *pb)
{
    if (!v) return HR_OK;
    return take_string(v, field, 0, true, out, pb);
}

hr_t event_from_json(json_t *obj, event_t *ev, problem_t *pb)
{
    char name[128];
    hr_t r = HR_OK;
    json_t *v;
    event_t e;

    memset(&e, 0, sizeof(e));
    memset(ev, 0, sizeof(*ev));
    if (!json_is_object(obj)) return fail(pb, "", "the event must be a JSON object");

    bool ce = false;
    if ((v = member(obj, "specversion"))) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "1.0") != 0)
            return fail(pb, "specversion", "unsupported CloudEvents specversion (want \"1.0\")");
        ce = true;
    }

    /* data comes first: in CloudEvents form it may hold herald's fields. */
    if ((v = member(obj, "data"))) {
        if (!json_is_object(v)) return fail(pb, "data", "must be an object");
        e.data = v;
    }

    const char *id_key = ce ? "id" : "event_id";
    if (!(v = member(obj, id_key))) return fail(pb, id_key, "is required");
    if ((r = take_id(v, id_key, EVENT_ID_MAX, &e.event_id, pb)) != HR_OK) return r;

    if (!(v = member(obj, "type"))) return fail(pb, "type", "is required");
    if ((r = take_id(v, "type", EVENT_TYPE_MAX, &e.type, pb)) != HR_OK) return r;

    /* CloudEvents 1.0 makes source REQUIRED and non-empty */
    if (ce && !(v = member(obj, "source"))) return fail(pb, "source", "is required");
    if (ce && (r = take_string(v, "source", 0, false, &e.source, pb)) != HR_OK) return r;
    if (!ce && (r = optional_string(member(obj, "source"), "source", &e.source, pb)) != HR_OK)
        return r;

    if ((v = member(obj, "time"))) {
        if (!json_is_string(v)) return fail(pb, "time", "must be an RFC 3339 string");
        if (parse_rfc3339_ms(json_string_value(v), &e.time_ms) != HR_OK)
            return fail(pb, "time", "is not an RFC 3339 time like 2024-05-01T12:00:00Z");
    }

    v = attribute(obj, e.data, ce, "actor", name, sizeof(name));
    if (v && (r = take_id(v, name, 0, &e.actor, pb)) != HR_OK) return r;
    if (!e.actor && ce && (v = member(obj, "subject")) &&
        (r = take_id(v, "subject", 0, &e.actor, pb)) != HR_OK)
        return r;

    /* whose event it is (tenant.h): fan-out qualifies every id with it */
    v = attribute(obj, e.data, ce, "tenant", name, sizeof(name));
    if ((r = optional_string(v, name, &e.tenant, pb)) != HR_OK) return r;
    if (e.tenant && !tenant_name_valid(e.tenant))
        return fail(pb, name, "must be a tenant name: 1 to %d of a-z, 0-9, '-' and '_', "
                    "starting with a letter or digit", TENANT_NAME_MAX);

    v = attribute(obj, e.data, ce, "category", name, sizeof(name));
    if ((r = optional_string(v, name, &e.category, pb)) != HR_OK) return r;
    if (!e.category || !*e.category) e.category = "default";

    e.priority = PRIO_NORMAL;
    if ((v = attribute(obj, e.data, ce, "priority", name, sizeof(name)))) {
        int p = json_is_string(v) ? priority_parse(json_string_value(v), json_string_length(v)) : -1;
        if (p < 0) return fail(pb, name, "must be one of low, normal, high, critical");
        e.priority = (priority_t)p;
    }

    if ((v = attribute(obj, e.data, ce, "channels", name, sizeof(name))) &&
        (r = parse_channels(v, name, &e, pb)) != HR_OK)
        return r;

    v = attribute(obj, e.data, ce, "audience", name, sizeof(name));
    if ((r = parse_audience(v, name, &e, pb)) != HR_OK) return r;

    v = attribute(obj, e.data, ce, "send_at", name, sizeof(name));
    if (v) {
        if (!json_is_string(v) || parse_rfc3339_ms(json_string_value(v), &e.send_at_ms) != HR_OK)
            return fail(pb, name, "is not an RFC 3339 time like 2024-05-01T12:00:00Z");
        if (e.send_at_ms > hclock_now_ms() + EVENT_SEND_AT_MAX_AHEAD_MS)
            return fail(pb, name, "is more than a year ahead");
        if (e.send_at_ms <= 0) e.send_at_ms = 0; /* 1970 or before: now */
    }

    v = attribute(obj, e.data, ce, "content", name, sizeof(name));
    if (v) {
        if ((r = parse_content_obj(v, name, true, &e, pb)) != HR_OK) return r;
        e.content = v;
    }

    if ((v = member(obj, "traceparent"))) {
        const char *why = "must be a string";
        if (!json_is_string(v) ||
            trace_normalize(json_string_value(v), json_string_length(v), e.traceparent, &why) != HR_OK)
            return fail(pb, "traceparent", "%s (want W3C 00-<32 hex>-<16 hex>-<2 hex>)", why);
    }

    if ((v = member(obj, "_accepted_at_us"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return fail(pb, "_accepted_at_us", "must be a non-negative integer");
        e.accepted_at_us = json_integer_value(v);
    }

    e.doc = json_incref(obj);
    *ev = e;
    return HR_OK;
}

hr_t event_parse(const char *text, size_t len, event_t *ev, problem_t *pb)
{
    json_error_t err;
    memset(ev, 0, sizeof(*ev));
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc)
        return fail(pb, "", "invalid JSON at line %d, column %d: %s", err.line, err.column,
                    err.text);
    hr_t r = event_from_json(doc, ev, pb);
    json_decref(doc);
    return r;
}

void event_clear(event_t *ev)
{
    json_decref(ev->doc);
    if (ev->rec) { /* a record owns its parsed data and content */
        json_decref(ev->data);
        json_decref(ev->content);
    }
    memset(ev, 0, sizeof(*ev));
}

/* --------------------------------------------------- audience and data */

void event_users_begin(const event_t *ev, event_users_t *it)
{
    it->ev = ev;
    it->i = 0;
    it->p = ev->rec_users;
}

const char *event_users_next(event_users_t *it)
{
    const event_t *ev = it->ev;
    if (ev->audience != AUD_USERS || it->i >= ev->audience_n) return NULL;
    it->i++;
    if (!ev->rec) return json_string_value(json_array_get(ev->audience_users, it->i - 1));
    uint16_t n;
    memcpy(&n, it->p, 2); /* checked by event_decode */
    const char *u = it->p + 2;
    it->p = u + n + 1;
    return u;
}

json_t *event_data(const event_t *ev)
{
    if (!ev->rec || ev->data_tried || !ev->data_text) return ev->data;
    event_t *m = (event_t *)ev; /* parsed once, on first use (event.h) */
    m->data_tried = true;
    json_t *d = json_loadb(ev->data_text, ev->data_len, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d); /* checked by event_decode: cannot be */
        d = NULL;
    }
    m->data = d;
    return d;
}

/* ------------------------------------------------------- binary record */

_Static_assert(CH__COUNT <= 8, "a channel mask fits a byte");

enum { RS_EVENT_ID, RS_TYPE, RS_SOURCE, RS_ACTOR, RS_CATEGORY, RS_TENANT, RS_TRACEPARENT,
       RS_AUD_KEY, RS_DATA, RS_CONTENT, RS__N };
#define REC_HEADER 32

static void put_u32(buf_t *b, uint32_t v) { buf_append(b, &v, 4); }
static void put_i64(buf_t *b, int64_t v) { buf_append(b, &v, 8); }

static void put_str(buf_t *b, const char *s, size_t n)
{
    if (!s) {
        put_u32(b, 0);
        return;
    }
    put_u32(b, (uint32_t)n + 1);
    buf_append(b, s, n);
    buf_append(b, "", 1);
}

static void put_cstr(buf_t *b, const char *s) { put_str(b, s, s ? strlen(s) : 0); }

/* v's compact JSON text as a string of the record (absent when v is). */
static hr_t put_json(buf_t *b, json_t *v)
{
    if (!v) {
        put_u32(b, 0);
        return HR_OK;
    }
    size_t at = b->len;
    put_u32(b, 0);
    size_t room = b->cap - b->len;
    size_t need = json_dumpb(v, b->data + b->len, room, JSON_COMPACT);
    if (need == 0) return HR_ERR;
    if (need > room) {
        if (buf_reserve(b, need) != HR_OK) return HR_ERR;
        json_dumpb(v, b->data + b->len, need, JSON_COMPACT);
    }
    b->len += need;
    uint32_t n1 = (uint32_t)need + 1;
    memcpy(b->data + at, &n1, 4);
    buf_append(b, "", 1);
    return HR_OK;
}

hr_t event_encode(const event_t *ev, buf_t *out)
{
    unsigned char h[8] = {EVENT_REC_MAGIC, 'E', EVENT_REC_VERSION, ev->content_default ? 1 : 0,
                          (unsigned char)ev->priority, (unsigned char)ev->audience,
                          (unsigned char)ev->channels_mask, (unsigned char)ev->content_mask};
    if (buf_reserve(out, 256) != HR_OK) return HR_ERR;
    buf_append(out, h, sizeof(h));
    put_i64(out, ev->accepted_at_us);
    put_i64(out, ev->send_at_ms);
    put_i64(out, ev->time_ms);
    put_cstr(out, ev->event_id);
    put_cstr(out, ev->type);
    put_cstr(out, ev->source);
    put_cstr(out, ev->actor);
    put_cstr(out, ev->category);
    put_cstr(out, ev->tenant);
    put_cstr(out, ev->traceparent[0] ? ev->traceparent : NULL);
    put_cstr(out, ev->audience == AUD_TOPIC       ? ev->audience_topic
                  : ev->audience == AUD_FOLLOWERS ? ev->audience_followers_of
                                                  : NULL);
    hr_t r = HR_OK;
    if (ev->rec && ev->data_compact) put_str(out, ev->data_text, ev->data_len);
    else r = put_json(out, event_data(ev));
    if (r == HR_OK) r = put_json(out, ev->content);
    if (r != HR_OK) return r;
    put_u32(out, (uint32_t)(ev->audience == AUD_USERS ? ev->audience_n : 0));
    event_users_t it;
    event_users_begin(ev, &it);
    for (const char *u; (u = event_users_next(&it));) {
        uint16_t n = (uint16_t)strlen(u); /* ids are at most EVENT_ID_MAX bytes */
        buf_append(out, &n, 2);
        buf_append(out, u, (size_t)n + 1);
    }
    return out->len > 0 ? HR_OK : HR_ERR;
}

/* A record's reader: bytes left, and where it stands. */
typedef struct rd {
    const unsigned char *p, *end;
} rd_t;

static bool rd_take(rd_t *r, size_t n, const unsigned char **at)
{
    if ((size_t)(r->end - r->p) < n) return false;
    *at = r->p;
    r->p += n;
    return true;
}

/* A string of the record: NULL when absent; false when malformed. */
static bool rd_str(rd_t *r, const char **s, size_t *len)
{
    const unsigned char *q;
    uint32_t n1;
    if (!rd_take(r, 4, &q)) return false;
    memcpy(&n1, q, 4);
    *s = NULL;
    *len = 0;
    if (n1 == 0) return true;
    if (!rd_take(r, n1, &q) || q[n1 - 1] != '\0') return false;
    *s = (const char *)q;
    *len = n1 - 1;
    return true;
}

/* A record's id: what take_id() asks of a JSON one. */
static hr_t rec_id(const char *s, size_t n, const char *field, size_t max, problem_t *pb)
{
    if (!s) return fail(pb, field, "is required");
    if (n == 0) return fail(pb, field, "must not be empty");
    if (max && n > max) return fail(pb, field, "must be at most %zu bytes", max);
    if (memchr(s, '\0', n)) return fail(pb, field, "must not contain NUL characters");
    if (!utf8_printable(s, n)) return fail(pb, field, "must not contain control characters");
    return HR_OK;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

/* A time (ms since the epoch) that RFC 3339 writes with four-digit years,
 * i.e. one parse_rfc3339_ms gives: a record's times must survive its JSON
 * rendition (event_to_json), or a dead-lettered record could not be
 * redriven (found by fuzz_event). */
static bool time_writable(int64_t ms)
{
    int64_t lo = days_from_civil(0, 1, 1) * 86400 * 1000;
    int64_t hi = days_from_civil(10000, 1, 1) * 86400 * 1000;
    return ms >= lo && ms < hi;
}

hr_t event_decode(const void *p, size_t n, event_t *ev, problem_t *pb)
{
    event_t e;
    memset(&e, 0, sizeof(e));
    memset(ev, 0, sizeof(*ev));
    rd_t r = {p, (const unsigned char *)p + n};
    const unsigned char *h;
    hr_t res = HR_INVALID;
    if (!rd_take(&r, REC_HEADER, &h) || h[0] != EVENT_REC_MAGIC || h[1] != 'E')
        return fail(pb, "", "not an event record");
    if (h[2] != EVENT_REC_VERSION)
        return fail(pb, "", "event record version %u is not supported (want %d)", h[2], EVENT_REC_VERSION);
    unsigned all = (1u << CH__COUNT) - 1;
    if (h[3] > 1) return fail(pb, "", "event record: unknown flags");
    if (h[4] > PRIO_CRITICAL) return fail(pb, "priority", "must be one of low, normal, high, critical");
    if (h[5] < AUD_USERS || h[5] > AUD_FOLLOWERS) return fail(pb, "audience", "unknown audience kind");
    if ((h[6] & ~all) || (h[7] & ~all)) return fail(pb, "channels", "unknown channel");
    e.rec = true;
    e.content_default = h[3] & 1;
    e.priority = (priority_t)h[4];
    e.audience = (audience_kind_t)h[5];
    e.channels_mask = h[6];
    memcpy(&e.accepted_at_us, h + 8, 8);
    memcpy(&e.send_at_ms, h + 16, 8);
    memcpy(&e.time_ms, h + 24, 8);
    if (e.accepted_at_us < 0) return fail(pb, "_accepted_at_us", "must be a non-negative integer");
    if (e.send_at_ms < 0 || !time_writable(e.send_at_ms))
        return fail(pb, "send_at", "is not an RFC 3339 time like 2024-05-01T12:00:00Z");
    if (e.send_at_ms > hclock_now_ms() + EVENT_SEND_AT_MAX_AHEAD_MS)
        return fail(pb, "send_at", "is more than a year ahead");
    if (!time_writable(e.time_ms))
        return fail(pb, "time", "is not an RFC 3339 time like 2024-05-01T12:00:00Z");
    const char *s[RS__N];
    size_t len[RS__N];
    for (int i = 0; i < RS__N; i++)
        if (!rd_str(&r, &s[i], &len[i])) return fail(pb, "", "event record: truncated");
    if (rec_id(s[RS_EVENT_ID], len[RS_EVENT_ID], "event_id", EVENT_ID_MAX, pb) != HR_OK ||
        rec_id(s[RS_TYPE], len[RS_TYPE], "type", EVENT_TYPE_MAX, pb) != HR_OK ||
        (s[RS_ACTOR] && rec_id(s[RS_ACTOR], len[RS_ACTOR], "actor", 0, pb) != HR_OK))
        return HR_INVALID;
    for (int i = RS_SOURCE; i <= RS_TENANT; i++) {
        if (s[i] && memchr(s[i], '\0', len[i])) return fail(pb, "", "event record: NUL in a string");
        /* JSON strings are UTF-8: the rendition must keep them (fuzz_event) */
        if (s[i] && !utf8_valid(s[i], len[i])) {
            static const char *const names[] = {"source", "actor", "category", "tenant"};
            _Static_assert(RS_TENANT - RS_SOURCE == 3, "the strings between source and tenant");
            return fail(pb, names[i - RS_SOURCE], "must be UTF-8");
        }
    }
    e.event_id = s[RS_EVENT_ID];
    e.type = s[RS_TYPE];
    e.source = s[RS_SOURCE];
    e.actor = s[RS_ACTOR];
    e.category = s[RS_CATEGORY] && len[RS_CATEGORY] ? s[RS_CATEGORY] : "default";
    e.tenant = s[RS_TENANT];
    if (e.tenant && !tenant_name_valid(e.tenant))
        return fail(pb, "tenant", "must be a tenant name: 1 to %d of a-z, 0-9, '-' and '_', "
                    "starting with a letter or digit", TENANT_NAME_MAX);
    if (s[RS_TRACEPARENT] &&
        trace_normalize(s[RS_TRACEPARENT], len[RS_TRACEPARENT], e.traceparent, NULL) != HR_OK)
        return fail(pb, "traceparent", "is not a W3C traceparent");
    if (e.audience == AUD_USERS) {
        const unsigned char *q;
        uint32_t nu;
        if (s[RS_AUD_KEY] || !rd_take(&r, 4, &q)) return fail(pb, "audience", "event record: malformed");
        memcpy(&nu, q, 4);
        if (nu == 0) return fail(pb, "audience.users", "must not be empty");
        if (nu > AUDIENCE_USERS_MAX)
            return fail(pb, "audience.users", "has %u users; at most %d are allowed in one event",
                        nu, AUDIENCE_USERS_MAX);
        e.rec_users = (const char *)r.p;
        e.audience_n = nu;
        for (uint32_t i = 0; i < nu; i++) {
            uint16_t ul;
            if (!rd_take(&r, 2, &q)) return fail(pb, "audience.users", "event record: truncated");
            memcpy(&ul, q, 2);
            if (!rd_take(&r, (size_t)ul + 1, &q) || q[ul] != '\0')
                return fail(pb, "audience.users", "event record: truncated");
            if (rec_id((const char *)q, ul, "audience.users", EVENT_ID_MAX, NULL) != HR_OK) {
                char name[128];
                field_name(name, sizeof(name), "audience.users[%u]", i);
                return rec_id((const char *)q, ul, name, EVENT_ID_MAX, pb);
            }
        }
    } else {
        const unsigned char *q;
        uint32_t nu;
        const char *field = e.audience == AUD_TOPIC ? "audience.topic" : "audience.followers_of";
        if (!rd_take(&r, 4, &q)) return fail(pb, "audience", "event record: truncated");
        memcpy(&nu, q, 4);
        if (nu != 0) return fail(pb, "audience", "event record: malformed");
        if (rec_id(s[RS_AUD_KEY], len[RS_AUD_KEY], field, EVENT_ID_MAX, pb) != HR_OK) return HR_INVALID;
        if (e.audience == AUD_TOPIC) e.audience_topic = s[RS_AUD_KEY];
        else e.audience_followers_of = s[RS_AUD_KEY];
    }
    if (r.p != r.end) return fail(pb, "", "event record: trailing bytes");
    if (s[RS_DATA]) {
        /* parsed when a template first reads it; its shape is checked here
         * cheaply: a JSON object's text starts with '{' */
        if (len[RS_DATA] < 2 || s[RS_DATA][0] != '{') return fail(pb, "data", "must be an object");
        e.data_text = s[RS_DATA];
        e.data_len = len[RS_DATA];
    }
    if (s[RS_CONTENT]) { /* rare: parsed and checked now, like a JSON event's */
        json_t *c = json_loadb(s[RS_CONTENT], len[RS_CONTENT], JSON_REJECT_DUPLICATES, NULL);
        if (!c) return fail(pb, "content", "event record: invalid JSON");
        event_t k;
        memset(&k, 0, sizeof(k));
        res = parse_content_obj(c, "content", true, &k, pb);
        if (res != HR_OK) {
            json_decref(c);
            return res;
        }
        e.content = c;
        e.content_mask = k.content_mask;
        e.content_default = k.content_default;
    } else if (h[7] || e.content_default) {
        return fail(pb, "content", "event record: content mask without content");
    }
    *ev = e;
    return HR_OK;
}

/* RFC 3339 UTC with milliseconds, for event_to_json. */
static json_t *time_json(int64_t ms)
{
    /* floor division: times before 1970 keep their milliseconds */
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) sec--, frac += 1000;
    time_t t = (time_t)sec;
    struct tm tm;
    char s[64];
    if (!gmtime_r(&t, &tm)) return json_null();
    /* four-digit years always (strftime's %Y gives "176" for year 176,
     * which parse_rfc3339_ms rightly refuses) */
    snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return json_string(s);
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v) json_object_set_new(o, k, json_string(v));
}

json_t *event_to_json(const event_t *ev)
{
    json_t *o = json_object();
    set_str(o, "event_id", ev->event_id);
    set_str(o, "type", ev->type);
    set_str(o, "source", ev->source);
    set_str(o, "actor", ev->actor);
    set_str(o, "category", ev->category);
    set_str(o, "tenant", ev->tenant);
    if (ev->time_ms) json_object_set_new(o, "time", time_json(ev->time_ms));
    json_object_set_new(o, "priority", json_string(priority_name(ev->priority)));
    if (ev->channels_mask) {
        json_t *a = json_array();
        for (int c = 0; c < CH__COUNT; c++)
            if (ev->channels_mask & (1u << c)) json_array_append_new(a, json_string(channel_name((channel_t)c)));
        json_object_set_new(o, "channels", a);
    }
    json_t *aud = json_object();
    if (ev->audience == AUD_USERS) {
        json_t *a = json_array();
        event_users_t it;
        event_users_begin(ev, &it);
        for (const char *u; (u = event_users_next(&it));) json_array_append_new(a, json_string(u));
        json_object_set_new(aud, "users", a);
    } else if (ev->audience == AUD_TOPIC) {
        set_str(aud, "topic", ev->audience_topic);
    } else if (ev->audience == AUD_FOLLOWERS) {
        set_str(aud, "followers_of", ev->audience_followers_of);
    }
    json_object_set_new(o, "audience", aud);
    if (ev->send_at_ms) json_object_set_new(o, "send_at", time_json(ev->send_at_ms));
    json_t *d = event_data(ev);
    if (d) json_object_set(o, "data", d);
    if (ev->content) json_object_set(o, "content", ev->content);
    if (ev->traceparent[0]) set_str(o, "traceparent", ev->traceparent);
    if (ev->accepted_at_us) json_object_set_new(o, "_accepted_at_us", json_integer(ev->accepted_at_us));
    return o;
}

/* --------------------------------------------------------------- time */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits; stops at the first non-digit (so never past a
 * terminating NUL). */
static bool read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

hr_t parse_rfc3339_ms(const char *s, int64_t *out_ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, ms = 0;

    if (!s) return HR_INVALID;
    if (!read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !read_digits(s + 8, 2, &d))
        return HR_INVALID;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return HR_INVALID;
    if (!read_digits(s + 11, 2, &h) || s[13] != ':' || !read_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !read_digits(s + 17, 2, &sec))
        return HR_INVALID;

    const char *p = s + 19;
    if (*p == '.') {
        int nd = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nd++) {
            if (nd < 3) ms = ms * 10 + (*p - '0');
        }
        if (nd == 0) return HR_INVALID;
        for (; nd < 3; nd++) ms *= 10;
    }

    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if (!read_digits(p + 1, 2, &oh) || p[3] != ':' || !read_digits(p + 4, 2, &om))
            return HR_INVALID;
        p += 6;
    } else {
        return HR_INVALID;
    }
    if (*p != '\0') return HR_INVALID;

    if (mo < 1 || mo > 12 || d < 1) return HR_INVALID;
    int dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
    if (d > dim || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59) return HR_INVALID;

    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    secs -= (int64_t)sign * (oh * 3600 + om * 60);
    /* an offset can move 0000-01-01 or 9999-12-31 out of the four-digit
     * years; such a time could not be written back, so it is refused */
    if (secs < days_from_civil(0, 1, 1) * 86400 || secs >= days_from_civil(10000, 1, 1) * 86400)
        return HR_INVALID;
    *out_ms = secs * 1000 + ms;
    return HR_OK;
}
