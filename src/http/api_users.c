/*
 * api_users.c - /v1/users/{user_id}: profiles, preferences and follows.
 */
#include "http/api_int.h"

#include "model/validate.h"
#include "provider/webhook.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define CATEGORY_MAX 128
#define CATEGORIES_MAX 256
#define TOKEN_MAX 4096
#define DEVICE_PLATFORM_MAX 8 /* "apns" | "fcm" */
#define WEBHOOK_SECRET_MAX 256 /* "whsec_" + base64 of a 128-byte key is 178 */

static json_t *user_json(const user_t *u)
{
    json_t *devs = json_array();
    for (int i = 0; i < u->ndevices; i++)
        json_array_append_new(devs,
                              json_pack("{s:o,s:o}", "platform",
                                        api_json_str_or_null(u->devices[i].platform), "token",
                                        api_json_str_or_null(u->devices[i].token)));
    json_t *qh = (u->quiet_start && u->quiet_end)
                     ? json_pack("{s:s,s:s}", "start", u->quiet_start, "end", u->quiet_end)
                     : json_null();
    /* webhook_secret is write-only: whether one is set, never its value */
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o}", "user_id",
                     api_json_str_or_null(u->user_id ? tenant_unqualify(u->user_id) : NULL), "email", api_json_str_or_null(u->email),
                     "phone", api_json_str_or_null(u->phone), "locale",
                     api_json_str_or_null(u->locale), "timezone",
                     api_json_str_or_null(u->timezone), "quiet_hours",
                     qh ? qh : json_null(), "devices", devs, "webhook_url",
                     api_json_str_or_null(u->webhook_url), "webhook_secret_set",
                     u->webhook_secret != NULL, "updated_at",
                     api_json_time(u->updated_at_ms));
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

/* Validates a user body into u. u owns copies of its strings whatever the
 * outcome (a user_t may reach user_clear() or the store only that way):
 * the caller frees them with user_clear(). webhook_secret: absent keeps
 * the stored one (u->webhook_secret NULL), null removes it (""), a string
 * replaces it; webhook_secret_set (what GET answers) is accepted and
 * ignored so that a GET body can be PUT back. */
static bool user_from_json(json_t *doc, const char *user_id, user_t *u, problem_t *pb)
{
    static const char *const keys[] = {"user_id",     "email",          "phone",
                                       "locale",      "timezone",       "quiet_hours",
                                       "devices",     "webhook_url",    "webhook_secret",
                                       "webhook_secret_set", "updated_at", NULL};
    const char *s;
    json_t *v;

    memset(u, 0, sizeof(*u));
    u->user_id = xstrdup(user_id);
    if (!api_only_keys(doc, keys, "", pb)) return false;
    if (!api_opt_string(doc, "user_id", "user_id", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, user_id) != 0) return api_bad(pb, "user_id", "does not match the path");

    if (!api_opt_string(doc, "email", "email", VALID_EMAIL_MAX, &s, pb)) return false;
    if (s && !valid_email(s)) return api_bad(pb, "email", "is not an email address");
    u->email = dup_or_null(s);

    if (!api_opt_string(doc, "phone", "phone", VALID_PHONE_MAX, &s, pb)) return false;
    if (s && !valid_phone(s))
        return api_bad(pb, "phone", "must be an E.164 number: '+' then 7 to 15 digits");
    u->phone = dup_or_null(s);

    if (!api_opt_string(doc, "locale", "locale", VALID_LOCALE_MAX, &s, pb)) return false;
    if (s && !valid_locale(s))
        return api_bad(pb, "locale", "must be a language tag like en or pt-BR");
    u->locale = xstrdup(s ? s : "en");

    if (!api_opt_string(doc, "timezone", "timezone", VALID_TIMEZONE_MAX, &s, pb)) return false;
    if (s && !valid_timezone(s))
        return api_bad(pb, "timezone", "must be an IANA time zone name like Europe/Paris");
    u->timezone = xstrdup(s ? s : "UTC");

    v = json_object_get(doc, "quiet_hours");
    if (v && !json_is_null(v)) {
        static const char *const qkeys[] = {"start", "end", NULL};
        if (!json_is_object(v))
            return api_bad(pb, "quiet_hours",
                           "must be an object {\"start\":\"HH:MM\",\"end\":\"HH:MM\"}");
        if (!api_only_keys(v, qkeys, "quiet_hours.", pb)) return false;
        if (!api_req_string(v, "start", "quiet_hours.start", VALID_HHMM_LEN, &s, pb)) return false;
        if (!valid_hhmm(s, NULL))
            return api_bad(pb, "quiet_hours.start", "must be HH:MM (00:00 to 23:59)");
        u->quiet_start = dup_or_null(s);
        if (!api_req_string(v, "end", "quiet_hours.end", VALID_HHMM_LEN, &s, pb)) return false;
        if (!valid_hhmm(s, NULL))
            return api_bad(pb, "quiet_hours.end", "must be HH:MM (00:00 to 23:59)");
        u->quiet_end = dup_or_null(s);
    }

    v = json_object_get(doc, "devices");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) return api_bad(pb, "devices", "must be an array");
        if (json_array_size(v) > STORE_MAX_DEVICES)
            return api_bad(pb, "devices", "has %zu devices; at most %d are allowed",
                           json_array_size(v), STORE_MAX_DEVICES);
        size_t i;
        json_t *d;
        json_array_foreach(v, i, d) {
            static const char *const dkeys[] = {"platform", "token", NULL};
            char f[64], pfx[64];
            api_fieldf(f, sizeof(f), "devices[%zu]", i);
            api_fieldf(pfx, sizeof(pfx), "devices[%zu].", i);
            if (!json_is_object(d)) return api_bad(pb, f, "must be an object {platform, token}");
            if (!api_only_keys(d, dkeys, pfx, pb)) return false;
            api_fieldf(f, sizeof(f), "devices[%zu].platform", i);
            if (!api_req_string(d, "platform", f, DEVICE_PLATFORM_MAX, &s, pb)) return false;
            if (strcmp(s, "apns") != 0 && strcmp(s, "fcm") != 0)
                return api_bad(pb, f, "must be apns or fcm");
            u->ndevices = (int)i + 1;
            u->devices[i].platform = xstrdup(s);
            api_fieldf(f, sizeof(f), "devices[%zu].token", i);
            if (!api_req_string(d, "token", f, TOKEN_MAX, &s, pb)) return false;
            u->devices[i].token = xstrdup(s);
        }
    }

    if (!api_opt_string(doc, "webhook_url", "webhook_url", VALID_URL_MAX, &s, pb)) return false;
    if (s && !valid_url(s)) return api_bad(pb, "webhook_url", "must be an http:// or https:// URL");
    u->webhook_url = dup_or_null(s);

    v = json_object_get(doc, "webhook_secret");
    if (v && json_is_null(v)) {
        u->webhook_secret = xstrdup(""); /* remove */
    } else if (v) {
        webhook_key_t key;
        /* the messages never repeat the value */
        if (!api_opt_string(doc, "webhook_secret", "webhook_secret", WEBHOOK_SECRET_MAX, &s, pb))
            return false;
        if (webhook_secret_parse(s, &key) != HR_OK)
            return api_bad(pb, "webhook_secret",
                           "must be whsec_ followed by the base64 of a %d to %d byte key, or %d to %d "
                           "printable ASCII characters",
                           WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX, WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX);
        OPENSSL_cleanse(&key, sizeof(key));
        u->webhook_secret = xstrdup(s);
    }
    return true;
}

void api_user_put(http_req_t *rq, http_resp_t *rs)
{
    problem_t pb;
    user_t u, got;
    json_t *doc = api_body_object(rq, rs);
    char *user_id = api_qualify(rq, rq->params[0]);
    if (!doc) goto out0;
    if (!user_from_json(doc, rq->params[0], &u, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    free(u.user_id);
    u.user_id = xstrdup(user_id);
    /* the server would call it: no reaching into its own network */
    if (u.webhook_url && !rq->app->cfg->api_allow_private_webhook_urls &&
        url_host_private(u.webhook_url)) {
        api_bad(&pb, "webhook_url",
                "must not point at localhost or a private, link-local or loopback address "
                "(set api.allow_private_webhook_urls to allow it)");
        api_answer_invalid(rs, &pb);
        goto out;
    }
    hr_t r = store_user_put(rq->app->store, &u);
    if (r == HR_OK) r = store_user_get(rq->app->store, user_id, &got);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "storing the user");
        goto out;
    }
    resp_json(rs, 200, user_json(&got));
    user_clear(&got);
out:
    user_clear(&u);
    json_decref(doc);
out0:
    free(user_id);
}

void api_user_get(http_req_t *rq, http_resp_t *rs)
{
    user_t u;
    char *user_id = api_qualify(rq, rq->params[0]);
    hr_t r = store_user_get(rq->app->store, user_id, &u);
    free(user_id);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "user");
        return;
    }
    resp_json(rs, 200, user_json(&u));
    user_clear(&u);
}

/* 404 unless the user (qualified) has a profile; true when it does. */
static bool user_must_exist(http_req_t *rq, http_resp_t *rs, const char *user_id)
{
    user_t u;
    hr_t r = store_user_get(rq->app->store, user_id, &u);
    if (r == HR_OK) {
        user_clear(&u);
        return true;
    }
    api_answer_backend(rs, r, "user");
    return false;
}

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

/* One {"push":true,...} map into prefs (category copied). */
static bool channel_map(json_t *m, const char *category, const char *prefix, pref_t *out, int *n,
                        problem_t *pb)
{
    const char *k;
    json_t *v;
    char f[200];
    if (!json_is_object(m))
        return api_bad(pb, prefix, "must be an object of channel name to true/false");
    json_object_foreach(m, k, v) {
        api_fieldf(f, sizeof(f), "%s.%s", prefix, k);
        int ch = channel_parse(k, strlen(k));
        if (ch < 0) return api_bad(pb, f, "is not a channel (push, sms, email, inapp, webhook)");
        if (!json_is_boolean(v)) return api_bad(pb, f, "must be true or false");
        out[*n].category = xstrdup(category);
        out[*n].channel = (channel_t)ch;
        out[*n].enabled = json_is_true(v);
        (*n)++;
    }
    return true;
}

/* Validates a preferences body into *out (allocated, with copies of the
 * categories; free with prefs_free). */
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
    if (!api_only_keys(doc, keys, "", pb)) return false;
    if (!api_opt_string(doc, "user_id", "user_id", HTTP_ID_MAX, &s, pb)) return false;
    if (s && strcmp(s, user_id) != 0) return api_bad(pb, "user_id", "does not match the path");
    if (cats && !json_is_null(cats) && !json_is_object(cats))
        return api_bad(pb, "categories", "must be an object of category to channel map");
    if (ncats > CATEGORIES_MAX)
        return api_bad(pb, "categories", "has %zu categories; at most %d are allowed", ncats,
                       CATEGORIES_MAX);
    p = xcalloc((ncats + 1) * CH__COUNT, sizeof(*p));
    if (chans && !json_is_null(chans) && !channel_map(chans, "", "channels", p, n, pb)) goto fail;
    if (ncats) {
        const char *k;
        json_t *v;
        json_object_foreach(cats, k, v) {
            char f[200];
            api_fieldf(f, sizeof(f), "categories.%s", k);
            if (!*k || strlen(k) > CATEGORY_MAX || !http_text_printable(k, strlen(k))) {
                api_bad(pb, f, "category names are 1 to %d printable bytes", CATEGORY_MAX);
                goto fail;
            }
            if (!channel_map(v, k, f, p, n, pb)) goto fail;
        }
    }
    *out = p;
    return true;
fail:
    prefs_free(p, *n);
    *n = 0;
    return false;
}

/* user_id: qualified. */
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
        api_answer_backend(rs, r, "reading preferences");
        return;
    }
    json_t *doc = prefs_json(p, n);
    json_object_set_new(doc, "user_id", json_string(tenant_unqualify(user_id)));
    resp_json(rs, 200, doc);
    prefs_free(p, n);
}

void api_prefs_put(http_req_t *rq, http_resp_t *rs)
{
    problem_t pb;
    pref_t *p = NULL;
    int n = 0;
    json_t *doc = api_body_object(rq, rs);
    if (!doc) return;
    char *user_id = api_qualify(rq, rq->params[0]);
    if (!prefs_from_json(doc, rq->params[0], &p, &n, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    if (!user_must_exist(rq, rs, user_id)) goto out;
    hr_t r = store_prefs_replace(rq->app->store, user_id, p, n);
    if (r != HR_OK) {
        api_answer_backend(rs, r, "storing preferences");
        goto out;
    }
    answer_prefs(rq, rs, user_id);
out:
    prefs_free(p, n);
    json_decref(doc);
    free(user_id);
}

void api_prefs_get(http_req_t *rq, http_resp_t *rs)
{
    char *user_id = api_qualify(rq, rq->params[0]);
    if (user_must_exist(rq, rs, user_id)) answer_prefs(rq, rs, user_id);
    free(user_id);
}

void api_follow_post(http_req_t *rq, http_resp_t *rs)
{
    static const char *const keys[] = {"actor", NULL};
    const char *user_id = rq->params[0], *actor;
    problem_t pb;
    json_t *doc = api_body_object(rq, rs);
    if (!doc) return;
    if (!api_only_keys(doc, keys, "", &pb) || !api_body_id(doc, "actor", &actor, &pb)) {
        api_answer_invalid(rs, &pb);
        goto out;
    }
    if (strcmp(actor, user_id) == 0) {
        resp_problem(rs, 422, PROBLEM_VALIDATION, "actor", "actor: a user cannot follow themselves");
        goto out;
    }
    char *quser = api_qualify(rq, user_id), *qactor = api_qualify(rq, actor);
    bool created = false, exists = user_must_exist(rq, rs, quser);
    hr_t r = exists ? store_follow_add(rq->app->store, quser, qactor, &created) : HR_OK;
    free(quser);
    free(qactor);
    if (!exists) goto out; /* answered 404 */
    bool existed = !created;
    if (r == HR_CONFLICT) { /* a store that reports duplicates */
        r = HR_OK;
        existed = true;
    }
    if (r != HR_OK) {
        api_answer_backend(rs, r, "following");
        goto out;
    }
    resp_json(rs, existed ? 200 : 201,
              json_pack("{s:s,s:s,s:b}", "user_id", user_id, "actor", actor, "created",
                        !existed));
out:
    json_decref(doc);
}

/* ---- shared with api_users_life.c and api_users_import.c ---- */

bool api_user_from_json(json_t *doc, const char *user_id, user_t *u, problem_t *pb)
{
    return user_from_json(doc, user_id, u, pb);
}

bool api_user_webhook_ok(http_req_t *rq, const user_t *u, problem_t *pb)
{
    if (!u->webhook_url || rq->app->cfg->api_allow_private_webhook_urls ||
        !url_host_private(u->webhook_url))
        return true;
    return api_bad(pb, "webhook_url",
                   "must not point at localhost or a private, link-local or loopback address "
                   "(set api.allow_private_webhook_urls to allow it)");
}

json_t *api_user_json(http_req_t *rq, const user_t *u)
{
    json_t *doc = user_json(u);
    json_object_set_new(doc, "user_id", api_json_str_or_null(api_id_public(rq, u->user_id)));
    return doc;
}
