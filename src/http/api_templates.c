/*
 * api_templates.c - /v1/templates/{event_type}/{channel}: store and read
 * per-locale templates (syntax checked by tmpl_check). Event types are the
 * caller's tenant's (api_int.h).
 */
#include "http/api_int.h"

#include "model/digest.h"
#include "model/template.h"
#include "model/validate.h"

#include <string.h>

#define TEMPLATE_TITLE_MAX 1024
#define TEMPLATE_BODY_MAX (64 * 1024)
#define CHANNEL_NAME_MAX 16

/* {"window":"10m","key":"{{data.post_id}}"|null}, or null without a digest. */
static json_t *digest_json(const template_rec_t *t)
{
    if (t->digest_window_ms <= 0) return json_null();
    char w[32];
    digest_window_format(t->digest_window_ms, w, sizeof(w));
    return json_pack("{s:s,s:o}", "window", w, "key", api_json_str_or_null(t->digest_key));
}

static json_t *template_json(const template_rec_t *t)
{
    return json_pack("{s:o,s:s,s:o,s:o,s:o,s:o}", "event_type",
                     api_json_str_or_null(t->event_type ? tenant_unqualify(t->event_type) : NULL),
                     "channel", channel_name(t->channel),
                     "locale", api_json_str_or_null(t->locale), "title",
                     api_json_str_or_null(t->title), "body", api_json_str_or_null(t->body),
                     "digest", digest_json(t));
}

/* The optional digest member: {"window":"10m","key":"{{data.post_id}}"};
 * absent or null = none; key absent or null = the event type. */
static bool digest_from_json(json_t *doc, template_rec_t *t, problem_t *pb)
{
    static const char *const keys[] = {"window", "key", NULL};
    json_t *d = json_object_get(doc, "digest");
    const char *s;
    char why[200];
    if (!d || json_is_null(d)) return true;
    if (!json_is_object(d))
        return api_bad(pb, "digest", "must be an object like {\"window\":\"10m\",\"key\":\"{{data.post_id}}\"}");
    if (!api_only_keys(d, keys, "digest.", pb)) return false;
    json_t *w = json_object_get(d, "window");
    if (!w || !json_is_string(w)) return api_bad(pb, "digest.window", "is required: a duration like 10m, 90s or 2h");
    if (digest_window_parse(json_string_value(w), &t->digest_window_ms, why, sizeof(why)) != HR_OK)
        return api_bad(pb, "digest.window", "%s", why);
    if (!api_opt_string(d, "key", "digest.key", DIGEST_KEY_TMPL_MAX, &s, pb)) return false;
    if (s && digest_key_check(s, why, sizeof(why)) != HR_OK) return api_bad(pb, "digest.key", "%s", why);
    t->digest_key = s ? xstrdup(s) : NULL;
    return true;
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
    if (!json_is_string(v)) return api_bad(pb, key, "must be a string");
    if (json_string_length(v) > max) return api_bad(pb, key, "must be at most %zu bytes", max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return api_bad(pb, key, "must not contain NUL characters");
    *out = json_string_value(v);
    return true;
}

/* Validates a template body into t (event_type, unqualified, and channel
 * already set).
 * t's strings are copies it owns whatever the outcome: the caller frees
 * them with template_rec_clear(). */
static bool template_from_json(json_t *doc, template_rec_t *t, problem_t *pb)
{
    static const char *const keys[] = {"locale", "title", "body", "event_type", "channel", "digest", NULL};
    const char *s;
    char why[200];

    if (!api_only_keys(doc, keys, "", pb)) return false;
    /* event_type and channel may repeat the path */
    if (!api_opt_string(doc, "event_type", "event_type", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, t->event_type) != 0)
        return api_bad(pb, "event_type", "does not match the path");
    if (!api_opt_string(doc, "channel", "channel", CHANNEL_NAME_MAX, &s, pb)) return false;
    if (s && strcmp(s, channel_name(t->channel)) != 0)
        return api_bad(pb, "channel", "does not match the path");

    if (!api_opt_string(doc, "locale", "locale", VALID_LOCALE_MAX, &s, pb)) return false;
    if (s && !valid_locale(s))
        return api_bad(pb, "locale", "must be a language tag like en or pt-BR");
    t->locale = xstrdup(s ? s : "en");

    if (!tmpl_string(doc, "title", TEMPLATE_TITLE_MAX, &s, pb)) return false;
    if (s && tmpl_check(s, why, sizeof(why)) != HR_OK) return api_bad(pb, "title", "%s", why);
    t->title = xstrdup(s ? s : "");

    if (!tmpl_string(doc, "body", TEMPLATE_BODY_MAX, &s, pb)) return false;
    if (!s || !*s) return api_bad(pb, "body", "is required (a non-empty template)");
    if (tmpl_check(s, why, sizeof(why)) != HR_OK) return api_bad(pb, "body", "%s", why);
    t->body = xstrdup(s);
    return digest_from_json(doc, t, pb);
}

void api_template_put(http_req_t *rq, http_resp_t *rs)
{
    template_rec_t t, got;
    problem_t pb;
    json_t *doc = NULL;

    memset(&t, 0, sizeof(t));
    memset(&got, 0, sizeof(got));
    if (!path_channel(rq, rs, &t.channel)) return;
    if (!(doc = api_body_object(rq, rs))) return;
    t.event_type = xstrdup(rq->params[0]);
    if (!template_from_json(doc, &t, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    free(t.event_type);
    t.event_type = api_qualify(rq, rq->params[0]);
    hr_t r = store_template_put(rq->app->store, &t);
    if (r == HR_OK) r = store_template_get(rq->app->store, t.event_type, t.channel, t.locale, &got);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "storing the template");
        goto out;
    }
    resp_json(rs, 200, template_json(&got));
    template_rec_clear(&got);
out:
    template_rec_clear(&t);
    json_decref(doc);
}

void api_template_get(http_req_t *rq, http_resp_t *rs)
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
    char *type = api_qualify(rq, rq->params[0]);
    hr_t r = store_template_get(rq->app->store, type, ch, locale ? locale : "en", &t);
    free(type);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "template");
        return;
    }
    resp_json(rs, 200, template_json(&t));
    template_rec_clear(&t);
}
