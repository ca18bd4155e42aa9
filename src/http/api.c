/*
 * api.c - the handlers of herald's HTTP API and its route table.
 * docs/openapi.yaml is the contract; keep the two in step.
 *
 * DESIGN: every handler reads its whole input first - path parameters
 * (already decoded and checked by the router), query parameters, the JSON
 * body - and validates all of it into local structs that borrow from the
 * parsed document. Only then does it write to the store or the bus, so a
 * rejected request never leaves anything half-written. Validation stops at
 * the first problem and names the field the way event.c does
 * ("devices[1].platform", "[3].audience" for the third event of a batch).
 *
 * Status codes: 400 the request cannot be read (malformed JSON, bad path or
 * query parameter); 422 the body is JSON but a field is invalid; 404 unknown
 * resource; 503 with Retry-After when the bus or store says "try later".
 *
 * Handlers run on the server's pool threads and may block on the store and
 * on bus acknowledgements.
 */
#include "http/http_int.h"

#include "core/log.h"
#include "model/template.h"
#include "stage/ingest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_BATCH_MAX 1000
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 200
#define CATEGORY_MAX 128
#define CATEGORIES_MAX 256
#define EMAIL_MAX 254
#define URL_MAX 2048
#define TOKEN_MAX 4096
#define TEMPLATE_TITLE_MAX 1024
#define TEMPLATE_BODY_MAX (64 * 1024)
#define CURSOR_MAX 512
#define RETRY_AFTER_S 1

/* ============================================================ helpers */

/* Fills pb; always returns false so validators can `return bad(...)`. */
static bool bad(problem_t *pb, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool bad(problem_t *pb, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(pb->field, sizeof(pb->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(pb->detail, sizeof(pb->detail), fmt, ap);
    va_end(ap);
    return false;
}

static void fieldf(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fieldf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

static void answer_invalid(http_resp_t *rs, const problem_t *pb)
{
    resp_problem(rs, 422, PROBLEM_VALIDATION, pb->field, "%s %s", pb->field, pb->detail);
}

/* Parses the request body as a JSON object or array. On failure answers
 * 400 naming "body" with jansson's position and returns NULL. */
static json_t *body_json(http_req_t *rq, http_resp_t *rs)
{
    json_error_t err;
    json_t *doc = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                             JSON_REJECT_DUPLICATES, &err);
    if (doc) return doc;
    json_t *ext = json_pack("{s:i,s:i,s:i}", "line", err.line, "column", err.column, "position",
                            err.position);
    resp_problem_ext(rs, 400, PROBLEM_MALFORMED, "body", ext,
                     "the body is not valid JSON: %s at line %d, column %d (byte %d)", err.text,
                     err.line, err.column, err.position);
    return NULL;
}

static json_t *body_object(http_req_t *rq, http_resp_t *rs)
{
    json_t *doc = body_json(rq, rs);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* Refuses members not in keys (a typo would otherwise be silently dropped). */
static bool only_keys(json_t *obj, const char *const *keys, const char *prefix, problem_t *pb)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool known = false;
        for (const char *const *p = keys; *p && !known; p++) known = strcmp(*p, k) == 0;
        if (!known) {
            char f[128];
            fieldf(f, sizeof(f), "%s%s", prefix, k);
            return bad(pb, f, "is not a known field");
        }
    }
    return true;
}

/* An optional string member: absent or null -> *out NULL. */
static bool opt_string(json_t *obj, const char *key, const char *field, size_t max,
                       const char **out, problem_t *pb)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return bad(pb, field, "must be a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0) return bad(pb, field, "must not be empty");
    if (n > max) return bad(pb, field, "must be at most %zu bytes", max);
    if (!text_printable(s, n)) return bad(pb, field, "must not contain control characters");
    *out = s;
    return true;
}

static bool req_string(json_t *obj, const char *key, const char *field, size_t max,
                       const char **out, problem_t *pb)
{
    if (!opt_string(obj, key, field, max, out, pb)) return false;
    if (!*out) return bad(pb, field, "is required");
    return true;
}

static bool valid_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@')) return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\t') return false;
    const char *dot = strchr(at + 1, '.');
    return dot && dot != at + 1 && dot[1];
}

/* E.164: '+' and 7 to 15 digits, the first not 0. */
static bool valid_phone(const char *s)
{
    if (s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9') return false;
    return n >= 7 && n <= 15;
}

static bool valid_hhmm(const char *s)
{
    if (strlen(s) != 5 || s[2] != ':') return false;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9')) return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60;
}

/* BCP 47-ish: letters, digits, '-' and '_'; starts with a letter. */
static bool valid_locale(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 35) return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* IANA zone names: "UTC", "Europe/Paris", "America/Argentina/Buenos_Aires",
 * "Etc/GMT+5". Existence is checked where quiet hours are evaluated. */
static bool valid_timezone(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '/' || s[n - 1] == '/') return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '/' || *p == '_' || *p == '-' || *p == '+'))
            return false;
    return true;
}

static bool valid_url(const char *s)
{
    const char *rest;
    if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return false;
    if (!*rest || *rest == '/') return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ') return false;
    return true;
}

/* RFC 3339 UTC with milliseconds; null for 0 (never). */
static json_t *json_time(int64_t ms)
{
    if (ms <= 0) return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[96]; /* room for any int the compiler can imagine */
    if (!gmtime_r(&t, &tm)) return json_null();
    snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(s);
}

/* A string that may be NULL; invalid UTF-8 from a store row becomes null
 * rather than failing the whole answer. */
static json_t *json_str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

/* Answers a store or bus failure. */
static void answer_backend(http_resp_t *rs, hr_t r, const char *what)
{
    switch (r) {
    case HR_NOTFOUND:
        resp_problem(rs, 404, NULL, NULL, "%s not found", what);
        return;
    case HR_AGAIN:
    case HR_TIMEOUT:
    case HR_CLOSED:
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "%s: %s, try again later", what,
                     hr_str(r));
        return;
    default:
        log_warn("http", "%s: %s", what, hr_str(r));
        resp_problem(rs, 500, NULL, NULL, "%s failed: %s", what, hr_str(r));
        return;
    }
}

/* limit: digits only, lo..hi; absent -> def. false after answering 400. */
static bool query_limit(http_req_t *rq, http_resp_t *rs, int def, int hi, int *out)
{
    bool malformed;
    const char *v = req_query(rq, "limit", &malformed);
    *out = def;
    if (malformed) {
        resp_problem(rs, 400, PROBLEM_PARAM, "limit", "malformed percent-encoding");
        return false;
    }
    if (!v) return true;
    long n = 0;
    bool ok = *v && strlen(v) <= 6;
    for (const char *p = v; ok && *p; p++) {
        if (*p < '0' || *p > '9') ok = false;
        n = n * 10 + (*p - '0');
    }
    if (!ok || n < 1 || n > hi) {
        resp_problem(rs, 400, PROBLEM_PARAM, "limit", "must be an integer from 1 to %d", hi);
        return false;
    }
    *out = (int)n;
    return true;
}

/* cursor: opaque printable text, absent -> NULL. false after answering 400. */
static bool query_cursor(http_req_t *rq, http_resp_t *rs, const char **out)
{
    bool malformed;
    const char *v = req_query(rq, "cursor", &malformed);
    *out = NULL;
    if (malformed || (v && (!*v || strlen(v) > CURSOR_MAX || !text_printable(v, strlen(v))))) {
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return false;
    }
    *out = v;
    return true;
}

/* base64url without padding, for cursors that carry an id. */
static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64u_encode(const char *s)
{
    size_t n = strlen(s);
    char *o = xmalloc(n / 3 * 4 + 5);
    size_t j = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        o[j++] = b64u[(v >> 18) & 63];
        o[j++] = b64u[(v >> 12) & 63];
        if (i + 1 < n) o[j++] = b64u[(v >> 6) & 63];
        if (i + 2 < n) o[j++] = b64u[v & 63];
    }
    o[j] = '\0';
    return o;
}

static char *b64u_decode(const char *s)
{
    size_t n = strlen(s);
    if (n % 4 == 1) return NULL;
    char *o = xmalloc(n / 4 * 3 + 3);
    size_t j = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(b64u, s[i]); /* s[i] is never NUL here */
        if (!c) {
            free(o);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)(c - b64u);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[j] = '\0';
    return o;
}

/* ============================================================ events */

static void h_events_post(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    event_t *evs = NULL;
    int n = 0, ok = 0;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));

    json_t *doc = body_json(rq, rs);
    if (!doc) {
        atomic_fetch_add(&app->events_rejected, 1);
        return;
    }
    bool is_array = json_is_array(doc);
    if (rq->media == MEDIA_CE_BATCH && !is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents-batch+json needs an array of CloudEvents");
        goto rejected;
    }
    if (rq->media == MEDIA_CE && is_array) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "application/cloudevents+json carries one event; send arrays as "
                     "application/cloudevents-batch+json");
        goto rejected;
    }
    n = is_array ? (int)json_array_size(doc) : 1;
    if (is_array && n == 0) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body", "the batch is empty");
        goto rejected;
    }
    if (n > EVENTS_BATCH_MAX) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body",
                     "the batch has %d events; at most %d are allowed", n, EVENTS_BATCH_MAX);
        goto rejected;
    }

    /* validate every event before publishing any */
    evs = xcalloc((size_t)n, sizeof(*evs));
    for (ok = 0; ok < n; ok++) {
        json_t *e = is_array ? json_array_get(doc, (size_t)ok) : doc;
        if (event_from_json(e, &evs[ok], &pb) == HR_OK) continue;
        char f[160];
        if (is_array)
            fieldf(f, sizeof(f), pb.field[0] ? "[%d].%s" : "[%d]%s", ok, pb.field);
        else
            fieldf(f, sizeof(f), "%s", pb.field[0] ? pb.field : "body");
        resp_problem(rs, 422, PROBLEM_VALIDATION, f, "%s%s%s", pb.field[0] ? pb.field : "",
                     pb.field[0] ? " " : "", pb.detail);
        goto rejected;
    }

    hr_t r = ingest_publish(app, evs, n);
    if (r != HR_OK) {
        /* Full, slow or failing: some events may have gone out, so the
         * client retries the whole request; fan-out dedupes by event_id. */
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL,
                     "the bus did not take the events (%s); retry the whole request "
                     "(event_id makes it idempotent)", hr_str(r));
        goto out;
    }
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(ids, json_string(evs[i].event_id));
    resp_json(rs, 202, json_pack("{s:i,s:o}", "accepted", n, "event_ids", ids));
    goto out;

rejected:
    atomic_fetch_add(&app->events_rejected, n > 0 ? n : 1);
out:
    for (int i = 0; i < ok && evs; i++) event_clear(&evs[i]);
    free(evs);
    json_decref(doc);
}

/* ============================================================ users */

static json_t *user_json(const user_t *u)
{
    json_t *devs = json_array();
    for (int i = 0; i < u->ndevices; i++)
        json_array_append_new(devs, json_pack("{s:o,s:o}", "platform",
                                              json_str_or_null(u->devices[i].platform), "token",
                                              json_str_or_null(u->devices[i].token)));
    json_t *qh = (u->quiet_start && u->quiet_end)
                     ? json_pack("{s:s,s:s}", "start", u->quiet_start, "end", u->quiet_end)
                     : json_null();
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "user_id",
                     json_str_or_null(u->user_id), "email", json_str_or_null(u->email), "phone",
                     json_str_or_null(u->phone), "locale", json_str_or_null(u->locale),
                     "timezone", json_str_or_null(u->timezone), "quiet_hours",
                     qh ? qh : json_null(), "devices", devs, "webhook_url",
                     json_str_or_null(u->webhook_url), "updated_at",
                     json_time(u->updated_at_ms));
}

/* Validates a user body into u (strings borrowed from doc). */
static bool user_from_json(json_t *doc, const char *user_id, user_t *u, problem_t *pb)
{
    static const char *const keys[] = {"user_id", "email",   "phone",       "locale",
                                       "timezone", "quiet_hours", "devices", "webhook_url",
                                       "updated_at", NULL};
    const char *s;
    json_t *v;

    memset(u, 0, sizeof(*u));
    u->user_id = (char *)user_id;
    if (!only_keys(doc, keys, "", pb)) return false;
    if (!opt_string(doc, "user_id", "user_id", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, user_id) != 0) return bad(pb, "user_id", "does not match the path");

    if (!opt_string(doc, "email", "email", EMAIL_MAX, &s, pb)) return false;
    if (s && !valid_email(s)) return bad(pb, "email", "is not an email address");
    u->email = (char *)s;

    if (!opt_string(doc, "phone", "phone", 16, &s, pb)) return false;
    if (s && !valid_phone(s))
        return bad(pb, "phone", "must be an E.164 number: '+' then 7 to 15 digits");
    u->phone = (char *)s;

    if (!opt_string(doc, "locale", "locale", 35, &s, pb)) return false;
    if (s && !valid_locale(s)) return bad(pb, "locale", "must be a language tag like en or pt-BR");
    u->locale = (char *)(s ? s : "en");

    if (!opt_string(doc, "timezone", "timezone", 64, &s, pb)) return false;
    if (s && !valid_timezone(s))
        return bad(pb, "timezone", "must be an IANA time zone name like Europe/Paris");
    u->timezone = (char *)(s ? s : "UTC");

    v = json_object_get(doc, "quiet_hours");
    if (v && !json_is_null(v)) {
        static const char *const qkeys[] = {"start", "end", NULL};
        if (!json_is_object(v))
            return bad(pb, "quiet_hours", "must be an object {\"start\":\"HH:MM\",\"end\":\"HH:MM\"}");
        if (!only_keys(v, qkeys, "quiet_hours.", pb)) return false;
        if (!req_string(v, "start", "quiet_hours.start", 5, &s, pb)) return false;
        if (!valid_hhmm(s)) return bad(pb, "quiet_hours.start", "must be HH:MM (00:00 to 23:59)");
        u->quiet_start = (char *)s;
        if (!req_string(v, "end", "quiet_hours.end", 5, &s, pb)) return false;
        if (!valid_hhmm(s)) return bad(pb, "quiet_hours.end", "must be HH:MM (00:00 to 23:59)");
        u->quiet_end = (char *)s;
    }

    v = json_object_get(doc, "devices");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) return bad(pb, "devices", "must be an array");
        if (json_array_size(v) > STORE_MAX_DEVICES)
            return bad(pb, "devices", "has %zu devices; at most %d are allowed",
                       json_array_size(v), STORE_MAX_DEVICES);
        size_t i;
        json_t *d;
        json_array_foreach(v, i, d) {
            static const char *const dkeys[] = {"platform", "token", NULL};
            char f[64], pfx[64];
            fieldf(f, sizeof(f), "devices[%zu]", i);
            fieldf(pfx, sizeof(pfx), "devices[%zu].", i);
            if (!json_is_object(d)) return bad(pb, f, "must be an object {platform, token}");
            if (!only_keys(d, dkeys, pfx, pb)) return false;
            fieldf(f, sizeof(f), "devices[%zu].platform", i);
            if (!req_string(d, "platform", f, 8, &s, pb)) return false;
            if (strcmp(s, "apns") != 0 && strcmp(s, "fcm") != 0)
                return bad(pb, f, "must be apns or fcm");
            u->devices[i].platform = (char *)s;
            fieldf(f, sizeof(f), "devices[%zu].token", i);
            if (!req_string(d, "token", f, TOKEN_MAX, &s, pb)) return false;
            u->devices[i].token = (char *)s;
            u->ndevices = (int)i + 1;
        }
    }

    if (!opt_string(doc, "webhook_url", "webhook_url", URL_MAX, &s, pb)) return false;
    if (s && !valid_url(s)) return bad(pb, "webhook_url", "must be an http:// or https:// URL");
    u->webhook_url = (char *)s;
    return true;
}

static void h_user_put(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = rq->params[0];
    problem_t pb;
    user_t u, got;
    json_t *doc = body_object(rq, rs);
    if (!doc) return;
    if (!user_from_json(doc, user_id, &u, &pb)) {
        answer_invalid(rs, &pb);
        goto out;
    }
    hr_t r = store_user_put(rq->app->store, &u);
    if (r == HR_OK) r = store_user_get(rq->app->store, user_id, &got);
    if (r != HR_OK) {
        answer_backend(rs, r, "storing the user");
        goto out;
    }
    resp_json(rs, 200, user_json(&got));
    user_clear(&got);
out:
    json_decref(doc);
}

static void h_user_get(http_req_t *rq, http_resp_t *rs)
{
    user_t u;
    hr_t r = store_user_get(rq->app->store, rq->params[0], &u);
    if (r != HR_OK) {
        answer_backend(rs, r, "user");
        return;
    }
    resp_json(rs, 200, user_json(&u));
    user_clear(&u);
}

/* 404 unless the user has a profile; true when it does. */
static bool user_must_exist(http_req_t *rq, http_resp_t *rs, const char *user_id)
{
    user_t u;
    hr_t r = store_user_get(rq->app->store, user_id, &u);
    if (r == HR_OK) {
        user_clear(&u);
        return true;
    }
    answer_backend(rs, r, "user");
    return false;
}

/* ============================================================ preferences */

static json_t *prefs_json(const pref_t *p, int n)
{
    json_t *chans = json_object(), *cats = json_object();
    for (int i = 0; i < n; i++) {
        const char *ch = channel_name(p[i].channel);
        if (!ch) continue;
        if (!p[i].category || !*p[i].category) {
            json_object_set_new(chans, ch, json_boolean(p[i].enabled));
            continue;
        }
        json_t *c = json_object_get(cats, p[i].category);
        if (!c) {
            c = json_object();
            if (json_object_set_new(cats, p[i].category, c) != 0) continue;
        }
        json_object_set_new(c, ch, json_boolean(p[i].enabled));
    }
    return json_pack("{s:o,s:o}", "channels", chans, "categories", cats);
}

/* One {"push":true,...} map into prefs (category borrowed). */
static bool channel_map(json_t *m, const char *category, const char *prefix, pref_t *out, int *n,
                        problem_t *pb)
{
    const char *k;
    json_t *v;
    char f[200];
    if (!json_is_object(m))
        return bad(pb, prefix, "must be an object of channel name to true/false");
    json_object_foreach(m, k, v) {
        fieldf(f, sizeof(f), "%s.%s", prefix, k);
        int ch = channel_parse(k, strlen(k));
        if (ch < 0) return bad(pb, f, "is not a channel (push, sms, email, inapp, webhook)");
        if (!json_is_boolean(v)) return bad(pb, f, "must be true or false");
        out[*n].category = (char *)category;
        out[*n].channel = (channel_t)ch;
        out[*n].enabled = json_is_true(v);
        (*n)++;
    }
    return true;
}

/* Validates a preferences body into *out (allocated; categories borrowed
 * from doc). */
static bool prefs_from_json(json_t *doc, const char *user_id, pref_t **out, int *n,
                            problem_t *pb)
{
    static const char *const keys[] = {"channels", "categories", "user_id", NULL};
    json_t *chans = json_object_get(doc, "channels");
    json_t *cats = json_object_get(doc, "categories");
    size_t ncats = cats && json_is_object(cats) ? json_object_size(cats) : 0;
    pref_t *p = NULL;
    const char *s;

    *out = NULL;
    *n = 0;
    if (!only_keys(doc, keys, "", pb)) return false;
    if (!opt_string(doc, "user_id", "user_id", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, user_id) != 0) return bad(pb, "user_id", "does not match the path");
    if (cats && !json_is_null(cats) && !json_is_object(cats))
        return bad(pb, "categories", "must be an object of category to channel map");
    if (ncats > CATEGORIES_MAX)
        return bad(pb, "categories", "has %zu categories; at most %d are allowed", ncats,
                   CATEGORIES_MAX);
    p = xcalloc((ncats + 1) * CH__COUNT, sizeof(*p));
    if (chans && !json_is_null(chans) && !channel_map(chans, "", "channels", p, n, pb)) goto fail;
    if (ncats) {
        const char *k;
        json_t *v;
        json_object_foreach(cats, k, v) {
            char f[200];
            fieldf(f, sizeof(f), "categories.%s", k);
            if (!*k || strlen(k) > CATEGORY_MAX || !text_printable(k, strlen(k))) {
                bad(pb, f, "category names are 1 to %d printable bytes", CATEGORY_MAX);
                goto fail;
            }
            if (!channel_map(v, k, f, p, n, pb)) goto fail;
        }
    }
    *out = p;
    return true;
fail:
    free(p);
    *n = 0;
    return false;
}

static void answer_prefs(http_req_t *rq, http_resp_t *rs, const char *user_id)
{
    pref_t *p = NULL;
    int n = 0;
    hr_t r = store_prefs_get(rq->app->store, user_id, &p, &n);
    if (r == HR_NOTFOUND) {
        r = HR_OK;
        n = 0;
    }
    if (r != HR_OK) {
        answer_backend(rs, r, "reading preferences");
        return;
    }
    json_t *doc = prefs_json(p, n);
    json_object_set_new(doc, "user_id", json_string(user_id));
    resp_json(rs, 200, doc);
    prefs_free(p, n);
}

static void h_prefs_put(http_req_t *rq, http_resp_t *rs)
{
    const char *user_id = rq->params[0];
    problem_t pb;
    pref_t *p = NULL;
    int n = 0;
    json_t *doc = body_object(rq, rs);
    if (!doc) return;
    if (!prefs_from_json(doc, user_id, &p, &n, &pb)) {
        answer_invalid(rs, &pb);
        goto out;
    }
    if (!user_must_exist(rq, rs, user_id)) goto out;
    hr_t r = store_prefs_replace(rq->app->store, user_id, p, n);
    if (r != HR_OK) {
        answer_backend(rs, r, "storing preferences");
        goto out;
    }
    answer_prefs(rq, rs, user_id);
out:
    free(p);
    json_decref(doc);
}

static void h_prefs_get(http_req_t *rq, http_resp_t *rs)
{
    if (!user_must_exist(rq, rs, rq->params[0])) return;
    answer_prefs(rq, rs, rq->params[0]);
}

/* ============================================================ topics & follows */

static bool body_id(json_t *doc, const char *key, const char **out, problem_t *pb)
{
    json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v)) return bad(pb, key, "is required");
    if (!json_is_string(v)) return bad(pb, key, "must be a string");
    if (!id_valid(json_string_value(v), json_string_length(v)))
        return bad(pb, key, "must be 1 to %d bytes of printable UTF-8", HTTP_ID_MAX);
    *out = json_string_value(v);
    return true;
}

/* Is member already in the set? The store's pages list members strictly
 * after a bound, so ask for the first member after the greatest string
 * below `member` that no id can fall between: member with its last byte
 * decremented and padded with 0xff bytes, which never occur in UTF-8 ids.
 * Exact for bytewise ordering (SQLite); a store that sorts otherwise makes
 * this answer false, so the API says 201 instead of 200 - never wrong data.
 * Only decides the status code: the write that follows is idempotent. */
typedef hr_t (*page_fn)(store_t *s, const char *key, const char *after, int limit, char ***ids,
                        int *n);
static bool set_contains(store_t *st, page_fn page, const char *key, const char *member)
{
    size_t n = strlen(member);
    char bound[HTTP_ID_MAX + 8];
    char **ids = NULL;
    int got = 0;
    if (n == 0 || n > HTTP_ID_MAX) return false;
    memcpy(bound, member, n);
    bound[n - 1] = (char)((unsigned char)bound[n - 1] - 1); /* ids hold no byte 0x00 */
    memset(bound + n, 0xff, 4);
    bound[n + 4] = '\0';
    bool found = page(st, key, bound, 1, &ids, &got) == HR_OK && got == 1 &&
                 strcmp(ids[0], member) == 0;
    ids_free(ids, got);
    return found;
}

static void h_sub_post(http_req_t *rq, http_resp_t *rs)
{
    static const char *const keys[] = {"user_id", NULL};
    const char *topic = rq->params[0], *user_id;
    problem_t pb;
    json_t *doc = body_object(rq, rs);
    if (!doc) return;
    if (!only_keys(doc, keys, "", &pb) || !body_id(doc, "user_id", &user_id, &pb)) {
        answer_invalid(rs, &pb);
        goto out;
    }
    bool existed = set_contains(rq->app->store, store_subs_page, topic, user_id);
    hr_t r = store_sub_add(rq->app->store, topic, user_id);
    if (r == HR_CONFLICT) { /* a store that reports duplicates */
        r = HR_OK;
        existed = true;
    }
    if (r != HR_OK) {
        answer_backend(rs, r, "subscribing");
        goto out;
    }
    if (!existed) {
        buf_t loc;
        buf_init(&loc, 0);
        buf_append_str(&loc, "/v1/topics/");
        pct_encode(&loc, topic);
        buf_append_str(&loc, "/subscribers/");
        pct_encode(&loc, user_id);
        if (loc.len < sizeof(rs->hdr[0].value)) resp_header(rs, "Location", "%s", buf_cstr(&loc));
        buf_release(&loc);
    }
    resp_json(rs, existed ? 200 : 201,
              json_pack("{s:s,s:s,s:b}", "topic", topic, "user_id", user_id, "created",
                        !existed));
out:
    json_decref(doc);
}

static void h_sub_delete(http_req_t *rq, http_resp_t *rs)
{
    hr_t r = store_sub_del(rq->app->store, rq->params[0], rq->params[1]);
    if (r != HR_OK) {
        answer_backend(rs, r, "subscription");
        return;
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

static void h_sub_list(http_req_t *rq, http_resp_t *rs)
{
    int limit;
    const char *cursor;
    char *after = NULL, **ids = NULL;
    int n = 0;
    if (!query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!query_cursor(rq, rs, &cursor)) return;
    if (cursor && (!(after = b64u_decode(cursor)) || !id_valid(after, strlen(after)))) {
        free(after);
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    /* one extra row tells whether another page exists */
    hr_t r = store_subs_page(rq->app->store, rq->params[0], after, limit + 1, &ids, &n);
    free(after);
    if (r != HR_OK) {
        answer_backend(rs, r, "listing subscribers");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(items, json_str_or_null(ids[i]));
    json_t *next = json_null();
    if (n > limit) {
        char *c = b64u_encode(ids[limit - 1]);
        json_decref(next);
        next = json_string(c);
        free(c);
    }
    ids_free(ids, n);
    resp_json(rs, 200, json_pack("{s:s,s:o,s:o}", "topic", rq->params[0], "items", items,
                                 "next_cursor", next));
}

static void h_follow_post(http_req_t *rq, http_resp_t *rs)
{
    static const char *const keys[] = {"actor", NULL};
    const char *user_id = rq->params[0], *actor;
    problem_t pb;
    json_t *doc = body_object(rq, rs);
    if (!doc) return;
    if (!only_keys(doc, keys, "", &pb) || !body_id(doc, "actor", &actor, &pb)) {
        answer_invalid(rs, &pb);
        goto out;
    }
    if (strcmp(actor, user_id) == 0) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "actor", "actor: a user cannot follow themselves");
        goto out;
    }
    if (!user_must_exist(rq, rs, user_id)) goto out;
    bool existed = set_contains(rq->app->store, store_followers_page, actor, user_id);
    hr_t r = store_follow_add(rq->app->store, user_id, actor);
    if (r == HR_CONFLICT) { /* a store that reports duplicates */
        r = HR_OK;
        existed = true;
    }
    if (r != HR_OK) {
        answer_backend(rs, r, "following");
        goto out;
    }
    resp_json(rs, existed ? 200 : 201,
              json_pack("{s:s,s:s,s:b}", "user_id", user_id, "actor", actor, "created",
                        !existed));
out:
    json_decref(doc);
}

/* ============================================================ templates */

static json_t *template_json(const template_rec_t *t)
{
    return json_pack("{s:o,s:s,s:o,s:o,s:o}", "event_type", json_str_or_null(t->event_type),
                     "channel", channel_name(t->channel), "locale", json_str_or_null(t->locale),
                     "title", json_str_or_null(t->title), "body", json_str_or_null(t->body));
}

/* The {channel} path parameter; false after answering 400. */
static bool path_channel(http_req_t *rq, http_resp_t *rs, channel_t *out)
{
    int ch = channel_parse(rq->params[1], strlen(rq->params[1]));
    if (ch < 0) {
        resp_problem(rs, 400, PROBLEM_PARAM, "channel",
                     "unknown channel '%s' (want push, sms, email, inapp or webhook)",
                     rq->params[1]);
        return false;
    }
    *out = (channel_t)ch;
    return true;
}

/* A template string member: a string of at most max bytes without NUL;
 * absent or null -> *out NULL. The template syntax is checked by tmpl_check. */
static bool tmpl_string(json_t *doc, const char *key, size_t max, const char **out,
                        problem_t *pb)
{
    json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return bad(pb, key, "must be a string");
    if (json_string_length(v) > max) return bad(pb, key, "must be at most %zu bytes", max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(pb, key, "must not contain NUL characters");
    *out = json_string_value(v);
    return true;
}

/* Validates a template body into t (strings borrowed from doc). */
static bool template_from_json(json_t *doc, template_rec_t *t, problem_t *pb)
{
    static const char *const keys[] = {"locale", "title", "body", "event_type", "channel", NULL};
    const char *s;
    char why[200];

    if (!only_keys(doc, keys, "", pb)) return false;
    /* event_type and channel may repeat the path */
    if (!opt_string(doc, "event_type", "event_type", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, t->event_type) != 0) return bad(pb, "event_type", "does not match the path");
    if (!opt_string(doc, "channel", "channel", 16, &s, pb)) return false;
    if (s && strcmp(s, channel_name(t->channel)) != 0)
        return bad(pb, "channel", "does not match the path");

    if (!opt_string(doc, "locale", "locale", 35, &s, pb)) return false;
    if (s && !valid_locale(s)) return bad(pb, "locale", "must be a language tag like en or pt-BR");
    t->locale = (char *)(s ? s : "en");

    if (!tmpl_string(doc, "title", TEMPLATE_TITLE_MAX, &s, pb)) return false;
    if (s && tmpl_check(s, why, sizeof(why)) != HR_OK) return bad(pb, "title", "%s", why);
    t->title = (char *)(s ? s : "");

    if (!tmpl_string(doc, "body", TEMPLATE_BODY_MAX, &s, pb)) return false;
    if (!s || !*s) return bad(pb, "body", "is required (a non-empty template)");
    if (tmpl_check(s, why, sizeof(why)) != HR_OK) return bad(pb, "body", "%s", why);
    t->body = (char *)s;
    return true;
}

static void h_template_put(http_req_t *rq, http_resp_t *rs)
{
    template_rec_t t, got;
    problem_t pb;
    json_t *doc = NULL;

    memset(&t, 0, sizeof(t));
    memset(&got, 0, sizeof(got));
    t.event_type = rq->params[0];
    if (!path_channel(rq, rs, &t.channel)) return;
    if (!(doc = body_object(rq, rs))) return;
    if (!template_from_json(doc, &t, &pb)) {
        answer_invalid(rs, &pb);
        goto out;
    }
    hr_t r = store_template_put(rq->app->store, &t);
    if (r == HR_OK) r = store_template_get(rq->app->store, t.event_type, t.channel, t.locale, &got);
    if (r != HR_OK) {
        answer_backend(rs, r, "storing the template");
        goto out;
    }
    resp_json(rs, 200, template_json(&got));
    template_rec_clear(&got);
out:
    json_decref(doc);
}

static void h_template_get(http_req_t *rq, http_resp_t *rs)
{
    template_rec_t t;
    channel_t ch;
    bool malformed;
    if (!path_channel(rq, rs, &ch)) return;
    const char *locale = req_query(rq, "locale", &malformed);
    if (malformed || (locale && !valid_locale(locale))) {
        resp_problem(rs, 400, PROBLEM_PARAM, "locale", "must be a language tag like en or pt-BR");
        return;
    }
    memset(&t, 0, sizeof(t));
    hr_t r = store_template_get(rq->app->store, rq->params[0], ch, locale ? locale : "en", &t);
    if (r != HR_OK) {
        answer_backend(rs, r, "template");
        return;
    }
    resp_json(rs, 200, template_json(&t));
    template_rec_clear(&t);
}

/* ============================================================ notifications */

static json_t *notif_row_json(const notif_row_t *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "notification_id", json_str_or_null(n->notification_id));
    json_object_set_new(o, "event_id", json_str_or_null(n->event_id));
    json_object_set_new(o, "user_id", json_str_or_null(n->user_id));
    json_object_set_new(o, "channel", json_str_or_null(channel_name(n->channel)));
    json_object_set_new(o, "category", json_str_or_null(n->category));
    json_object_set_new(o, "title", json_str_or_null(n->title));
    json_object_set_new(o, "body", json_str_or_null(n->body));
    json_object_set_new(o, "address", json_str_or_null(n->address));
    json_object_set_new(o, "status", json_str_or_null(status_name(n->status)));
    json_object_set_new(o, "attempt", json_integer(n->attempt));
    json_object_set_new(o, "channel_msg_id", json_str_or_null(n->channel_msg_id));
    json_object_set_new(o, "error", json_str_or_null(n->error));
    json_object_set_new(o, "created_at", json_time(n->created_at_ms));
    json_object_set_new(o, "updated_at", json_time(n->updated_at_ms));
    json_object_set_new(o, "delivered_at", json_time(n->delivered_at_ms));
    return o;
}

static void h_notif_get(http_req_t *rq, http_resp_t *rs)
{
    notif_row_t row;
    status_hist_t *hist = NULL;
    int nhist = 0;
    memset(&row, 0, sizeof(row));
    hr_t r = store_notif_get(rq->app->store, rq->params[0], &row, &hist, &nhist);
    if (r != HR_OK) {
        answer_backend(rs, r, "notification");
        return;
    }
    json_t *o = notif_row_json(&row);
    json_t *h = json_array();
    for (int i = 0; i < nhist; i++)
        json_array_append_new(
            h, json_pack("{s:o,s:i,s:o,s:o}", "status", json_str_or_null(status_name(hist[i].status)),
                         "attempt", hist[i].attempt, "at", json_time(hist[i].at_ms), "detail",
                         json_str_or_null(hist[i].detail)));
    json_object_set_new(o, "history", h);
    resp_json(rs, 200, o);
    notif_row_clear(&row);
    status_hist_free(hist, nhist);
}

static void h_user_notifs(http_req_t *rq, http_resp_t *rs)
{
    int limit, n = 0;
    const char *cursor;
    notif_row_t *rows = NULL;
    char *next = NULL;
    if (!query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit)) return;
    if (!query_cursor(rq, rs, &cursor)) return;
    hr_t r = store_notif_list_user(rq->app->store, rq->params[0], cursor, limit, &rows, &n, &next);
    if (r == HR_INVALID) {
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return;
    }
    if (r != HR_OK) {
        answer_backend(rs, r, "listing notifications");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(items, notif_row_json(&rows[i]));
    json_t *doc = json_pack("{s:s,s:o,s:o}", "user_id", rq->params[0], "items", items,
                            "next_cursor", json_str_or_null(next));
    free(next);
    notif_rows_free(rows, n);
    resp_json(rs, 200, doc);
}

/* ============================================================ operations */

static void h_healthz(http_req_t *rq, http_resp_t *rs)
{
    resp_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    bool store_ok = app->store && store_schema_version(app->store) > 0;
    bool bus_ok = app->bus && bus_partitions(app->bus, TOPIC_RAW) > 0;
    bool stopping = atomic_load(&app->stopping) != 0;
    json_t *checks = json_pack("{s:s,s:s}", "store", store_ok ? "ok" : "unavailable", "bus",
                               bus_ok ? "ok" : "unavailable");
    if (store_ok && bus_ok && !stopping) {
        resp_json(rs, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", checks));
        return;
    }
    resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
    resp_problem_ext(rs, 503, PROBLEM_UNAVAILABLE, NULL, json_pack("{s:o}", "checks", checks),
                     "not ready:%s%s%s", store_ok ? "" : " store unreachable",
                     bus_ok ? "" : " bus unreachable (no raw-events topic)",
                     stopping ? " shutting down" : "");
}

/* Every app counter, declared once: field, metric name, help. */
#define APP_COUNTERS(X)                                                                           \
    X(events_accepted, "herald_events_accepted_total",                                            \
      "Events accepted by ingest and acknowledged by the bus.")                                   \
    X(events_rejected, "herald_events_rejected_total",                                            \
      "Events refused at ingest (invalid or unreadable).")                                        \
    X(events_duplicate, "herald_events_duplicate_total",                                          \
      "Events dropped by fan-out as duplicates of an earlier event_id.")                          \
    X(notifs_fanned_out, "herald_notifications_fanned_out_total",                                 \
      "Notifications produced by fan-out.")                                                       \
    X(notifs_suppressed, "herald_notifications_suppressed_total",                                 \
      "Notifications suppressed by preferences.")                                                 \
    X(notifs_sent, "herald_notifications_sent_total", "Notifications sent to a provider.")        \
    X(notifs_failed, "herald_notifications_failed_total", "Notification attempts that failed.")   \
    X(dlq_records, "herald_dlq_records_total", "Records written to the dead-letter topic.")       \
    X(status_rows_written, "herald_status_rows_written_total",                                    \
      "Notification status rows written to the store.")

/* Exposed buckets: upper bounds from 16 us to 2^27 us (134 s), 8 per power
 * of two, then +Inf. Values are whole microseconds, so the bucket of values
 * [lo, hi] has le = hi + 1 us. */
#define LAT_FIRST_BUCKET (HIST_LINEAR - 1)
#define LAT_LAST_BUCKET (HIST_LINEAR + (27 - HIST_SUB_BITS - 1) * HIST_SUB - 1)

static void delivery_latency_metrics(app_t *app, buf_t *out)
{
    buf_append_str(out, "# HELP herald_delivery_latency_seconds End-to-end latency per channel: "
                        "event accepted by ingest to the provider call that delivered it.\n"
                        "# TYPE herald_delivery_latency_seconds histogram\n");
    hist_snap_t s;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *name = channel_name((channel_t)ch);
        hist_read(&app->delivery_latency[ch], &s);
        uint64_t cum = 0;
        for (int i = 0; i <= LAT_LAST_BUCKET; i++) {
            cum += s.count[i];
            if (i < LAT_FIRST_BUCKET) continue;
            buf_printf(out, "herald_delivery_latency_seconds_bucket{channel=\"%s\",le=\"%.9g\"} %llu\n",
                       name, (double)(hist_bucket_hi(i) + 1) / 1e6, (unsigned long long)cum);
        }
        buf_printf(out,
                   "herald_delivery_latency_seconds_bucket{channel=\"%s\",le=\"+Inf\"} %llu\n"
                   "herald_delivery_latency_seconds_sum{channel=\"%s\"} %.6f\n"
                   "herald_delivery_latency_seconds_count{channel=\"%s\"} %llu\n",
                   name, (unsigned long long)s.total, name, (double)s.sum / 1e6, name,
                   (unsigned long long)s.total);
    }
    buf_append_str(out, "# HELP herald_delivery_latency_max_seconds Largest end-to-end latency "
                        "seen per channel since start.\n"
                        "# TYPE herald_delivery_latency_max_seconds gauge\n");
    for (int ch = 0; ch < CH__COUNT; ch++)
        buf_printf(out, "herald_delivery_latency_max_seconds{channel=\"%s\"} %.6f\n",
                   channel_name((channel_t)ch),
                   (double)atomic_load(&app->delivery_latency[ch].max) / 1e6);
}

/* Records each stage's consumer group has still to process (summed over
 * partitions). Embedded bus only: there the figures are in memory; on
 * Kafka every query is a broker round trip per group, so use the broker's
 * tools (kafka-consumer-groups.sh --describe) instead. */
static void bus_lag_metrics(app_t *app, buf_t *out)
{
    if (!app->bus || strcmp(bus_backend_name(app->bus), "embedded") != 0) return;
    buf_append_str(out, "# HELP herald_bus_lag_records Records a consumer group has not "
                        "processed yet (embedded bus).\n"
                        "# TYPE herald_bus_lag_records gauge\n");
    const char *groups[2 + CH__COUNT], *topics[2 + CH__COUNT];
    int n = 0;
    groups[n] = GROUP_FANOUT;
    topics[n++] = TOPIC_RAW;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        groups[n] = names_for_channel(ch)->group;
        topics[n++] = names_for_channel(ch)->topic;
    }
    groups[n] = GROUP_STATUS;
    topics[n++] = TOPIC_STATUS;
    for (int i = 0; i < n; i++) {
        bus_lag_t *lags = NULL;
        int nl = 0;
        if (bus_lag(app->bus, groups[i], topics[i], &lags, &nl) != HR_OK) continue;
        long long sum = 0;
        for (int k = 0; k < nl; k++) sum += lags[k].lag;
        free(lags);
        buf_printf(out, "herald_bus_lag_records{group=\"%s\",topic=\"%s\"} %lld\n", groups[i],
                   topics[i], sum);
    }
}

void api_metrics(http_server_t *srv, buf_t *out)
{
    app_t *app = srv->app;
#define EMIT(field, name, help)                                                                   \
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name,         \
               (long long)atomic_load(&app->field));
    APP_COUNTERS(EMIT)
#undef EMIT
    buf_append_str(out, "# HELP herald_http_responses_total HTTP responses by status class "
                        "(aborted: the connection ended first).\n"
                        "# TYPE herald_http_responses_total counter\n");
    static const char *const classes[] = {"aborted", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++)
        buf_printf(out, "herald_http_responses_total{class=\"%s\"} %lld\n", classes[i],
                   (long long)atomic_load(&srv->responses[i]));
    delivery_latency_metrics(app, out);
    bus_lag_metrics(app, out);
    buf_printf(out, "# HELP herald_build_info Build information.\n"
                    "# TYPE herald_build_info gauge\n"
                    "herald_build_info{version=\"%s\",bus=\"%s\"} 1\n",
               HERALD_VERSION, app->bus ? bus_backend_name(app->bus) : "none");
}

static void h_metrics(http_req_t *rq, http_resp_t *rs)
{
    buf_t b;
    buf_init(&b, 0);
    api_metrics(rq->srv, &b);
    buf_cstr(&b);
    resp_text(rs, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

/* ============================================================ routes */

const http_route_t http_routes[] = {
    {HM_POST, "/v1/events", h_events_post, RT_BODY | RT_EVENTS | RT_BUS},
    {HM_PUT, "/v1/users/{user_id}", h_user_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}", h_user_get, RT_STORE},
    {HM_PUT, "/v1/users/{user_id}/preferences", h_prefs_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}/preferences", h_prefs_get, RT_STORE},
    {HM_POST, "/v1/users/{user_id}/follows", h_follow_post, RT_BODY | RT_STORE},
    {HM_GET, "/v1/users/{user_id}/notifications", h_user_notifs, RT_STORE},
    {HM_POST, "/v1/topics/{topic}/subscribers", h_sub_post, RT_BODY | RT_STORE},
    {HM_GET, "/v1/topics/{topic}/subscribers", h_sub_list, RT_STORE},
    {HM_DELETE, "/v1/topics/{topic}/subscribers/{user_id}", h_sub_delete, RT_STORE},
    {HM_PUT, "/v1/templates/{event_type}/{channel}", h_template_put, RT_BODY | RT_STORE},
    {HM_GET, "/v1/templates/{event_type}/{channel}", h_template_get, RT_STORE},
    {HM_GET, "/v1/notifications/{notification_id}", h_notif_get, RT_STORE},
    {HM_GET, "/healthz", h_healthz, 0},
    {HM_GET, "/readyz", h_readyz, 0},
    {HM_GET, "/metrics", h_metrics, 0},
};
const size_t http_nroutes = ARRAY_LEN(http_routes);
