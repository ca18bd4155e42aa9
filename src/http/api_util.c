/*
 * api_util.c - validation and answer helpers shared by the API handlers
 * (api_int.h).
 */
#include "http/api_int.h"

#include "model/tenant.h"

#include "core/base64.h"

#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool api_bad(problem_t *pb, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(pb->field, sizeof(pb->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(pb->detail, sizeof(pb->detail), fmt, ap);
    va_end(ap);
    return false;
}

void api_fieldf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

void api_answer_invalid(http_resp_t *rs, const problem_t *pb)
{
    resp_problem(rs, 422, PROBLEM_VALIDATION, pb->field, "%s %s", pb->field, pb->detail);
}

/* Parses the request body as a JSON object or array. On failure answers
 * 400 naming "body" with jansson's position and returns NULL. */
json_t *api_body_json(http_req_t *rq, http_resp_t *rs)
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

json_t *api_body_object(http_req_t *rq, http_resp_t *rs)
{
    json_t *doc = api_body_json(rq, rs);
    if (doc && !json_is_object(doc)) {
        json_decref(doc);
        resp_problem(rs, 422, PROBLEM_VALIDATION, "body", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* Refuses members not in keys (a typo would otherwise be silently dropped). */
bool api_only_keys(json_t *obj, const char *const *keys, const char *prefix, problem_t *pb)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool known = false;
        for (const char *const *p = keys; *p && !known; p++) known = strcmp(*p, k) == 0;
        if (!known) {
            char f[128];
            api_fieldf(f, sizeof(f), "%s%s", prefix, k);
            return api_bad(pb, f, "is not a known field");
        }
    }
    return true;
}

/* An optional string member: absent or null -> *out NULL. */
bool api_opt_string(json_t *obj, const char *key, const char *field, size_t max,
                    const char **out, problem_t *pb)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return api_bad(pb, field, "must be a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0) return api_bad(pb, field, "must not be empty");
    if (n > max) return api_bad(pb, field, "must be at most %zu bytes", max);
    if (!http_text_printable(s, n)) return api_bad(pb, field, "must not contain control characters");
    *out = s;
    return true;
}

bool api_req_string(json_t *obj, const char *key, const char *field, size_t max,
                    const char **out, problem_t *pb)
{
    if (!api_opt_string(obj, key, field, max, out, pb)) return false;
    if (!*out) return api_bad(pb, field, "is required");
    return true;
}

char *api_qualify(const http_req_t *rq, const char *id)
{
    return tenant_qualify(rq->who.tenant, id);
}

/* RFC 3339 UTC with milliseconds; null for 0 (never). */
json_t *api_json_time(int64_t ms)
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
json_t *api_json_str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

void api_answer_nospace(http_resp_t *rs, const char *what, const char *where)
{
    resp_header(rs, "Retry-After", "%d", RETRY_NOSPACE_S);
    resp_problem(rs, 507, PROBLEM_NO_SPACE, NULL,
                 "%s: %s has no disk space left; retry once space is freed",
                 what, where);
}

/* Answers a store or bus failure. */
void api_answer_backend(http_resp_t *rs, hr_t r, const char *what)
{
    api_answer_backend_ext(rs, r, what, NULL);
}

void api_answer_backend_ext(http_resp_t *rs, hr_t r, const char *what, json_t *ext)
{
    switch (r) {
    case HR_NOTFOUND:
        resp_problem_ext(rs, 404, NULL, NULL, ext, "%s not found", what);
        return;
    case HR_AGAIN:
    case HR_TIMEOUT:
    case HR_CLOSED:
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem_ext(rs, 503, PROBLEM_UNAVAILABLE, NULL, ext, "%s: %s, try again later", what,
                         hr_str(r));
        return;
    case HR_NOSPACE:
        resp_header(rs, "Retry-After", "%d", RETRY_NOSPACE_S);
        resp_problem_ext(rs, 507, PROBLEM_NO_SPACE, NULL, ext,
                         "%s: the store has no disk space left; retry once space is freed", what);
        return;
    default:
        log_warn("http", "%s: %s", what, hr_str(r));
        resp_problem_ext(rs, 500, NULL, NULL, ext, "%s failed: %s", what, hr_str(r));
        return;
    }
}

/* limit: digits only, lo..hi; absent -> def. false after answering 400. */
bool api_query_limit(http_req_t *rq, http_resp_t *rs, int def, int hi, int *out)
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
bool api_query_cursor(http_req_t *rq, http_resp_t *rs, const char **out)
{
    bool malformed;
    const char *v = req_query(rq, "cursor", &malformed);
    *out = NULL;
    if (malformed || (v && (!*v || strlen(v) > CURSOR_MAX || !http_text_printable(v, strlen(v))))) {
        resp_problem(rs, 400, PROBLEM_PARAM, "cursor",
                     "is not a cursor this API returned (use next_cursor as given)");
        return false;
    }
    *out = v;
    return true;
}

bool api_body_id(json_t *doc, const char *key, const char **out, problem_t *pb)
{
    json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v)) return api_bad(pb, key, "is required");
    if (!json_is_string(v)) return api_bad(pb, key, "must be a string");
    if (!http_id_valid(json_string_value(v), json_string_length(v)))
        return api_bad(pb, key, "must be 1 to %d bytes of printable UTF-8", HTTP_ID_MAX);
    *out = json_string_value(v);
    return true;
}

/* ---- ids from paths and bodies ---- */

/* The caller's tenant's stored form of id (model/tenant.h), kept until the
 * request ends. */
static const char *qualified(http_req_t *rq, const char *id)
{
    if (!id || tenant_is_default(rq->who.tenant)) return id;
    return req_keep(rq, tenant_qualify(rq->who.tenant, id));
}

const char *api_user_ref(http_req_t *rq, const char *id) { return qualified(rq, id); }

const char *api_actor_ref(http_req_t *rq, const char *id) { return qualified(rq, id); }

const char *api_topic_ref(http_req_t *rq, const char *id) { return qualified(rq, id); }

const char *api_id_public(http_req_t *rq, const char *stored)
{
    (void)rq;
    return stored ? tenant_unqualify(stored) : stored;
}

/* ---- pages of ids ---- */

bool api_page_query(http_req_t *rq, http_resp_t *rs, int *limit, const char **after)
{
    const char *cursor, *name = "cursor";
    bool malformed = false;
    *after = NULL;
    if (!api_query_limit(rq, rs, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, limit)) return false;
    if (!api_query_cursor(rq, rs, &cursor)) return false;
    if (!cursor) {
        /* "after" is another name of "cursor" */
        const char *v = req_query(rq, "after", &malformed);
        if (malformed || (v && (!*v || strlen(v) > CURSOR_MAX))) {
            resp_problem(rs, 400, PROBLEM_PARAM, "after",
                         "is not a cursor this API returned (use next_cursor as given)");
            return false;
        }
        cursor = v;
        name = "after";
    }
    if (!cursor) return true;
    size_t n = 0;
    char *id = base64url_decode(cursor, strlen(cursor), &n);
    if (!id || !http_id_valid(id, n)) {
        free(id);
        resp_problem(rs, 400, PROBLEM_PARAM, name,
                     "is not a cursor this API returned (use next_cursor as given)");
        return false;
    }
    *after = req_keep(rq, id);
    return true;
}

json_t *api_page_next(const char *last)
{
    if (!last) return json_null();
    char *c = base64url_encode(last, strlen(last));
    json_t *v = json_string(c);
    free(c);
    return v ? v : json_null();
}
