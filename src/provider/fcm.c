/*
 * fcm.c - the Firebase Cloud Messaging HTTP v1 provider: the pure parts
 * (fcm.h) and the provider on the shared HTTP provider part
 * (http_provider.h).
 *
 * DESIGN. Each send is POST {url}/v1/projects/{project}/messages:send with
 * an OAuth2 access token obtained through the service-account flow: an
 * RS256 JWT assertion (jwt.h) exchanged at the token endpoint. The token
 * is cached per instance and reused for every send until 5 minutes before
 * it expires (halfway through a short life); a 401 from the send API drops
 * it so the next send fetches a new one.
 *
 * Getting a token. Renewal runs on the dispatcher thread's engine like a
 * send: the first build after the token is due starts the token request
 * and goes on sending with the current token, which is still good for 5
 * minutes; the answer replaces it when it arrives. Only when there is no
 * usable token at all (the first send, after a 401, after a renewal that
 * kept failing until expiry) does the builder fetch one with a blocking
 * libcurl easy request (same TLS options): the shared HTTP provider part
 * builds synchronously and has no state in which a notification could
 * wait for credentials, so the alternatives were parking slots in every
 * HTTP provider or failing the whole first batch as RETRY. A failed
 * request starts a back-off (2 s doubling to 60 s) during which none is
 * tried, so a dead token endpoint costs one timeout per back-off step
 * rather than one per submit; meanwhile notifications without a token
 * complete RETRY "no access token: ..." (FATAL when the endpoint refused
 * the credentials: invalid_grant, 400/401/403).
 *
 * A 401 drops the token only when it arrived at least timeout_ms ago:
 * requests sent with the previous token all answer within timeout_ms of
 * their start, so their 401s cannot drop the token that replaced it (a
 * thousand requests in flight would otherwise fetch a thousand tokens).
 *
 * Secrets: the private key lives only in the jwt_key_t (the PEM text is
 * wiped once loaded); the assertion and the token answer are wiped after
 * a blocking fetch (a renewal's copies stay in its transfer's buffers
 * until the next renewal reuses them); the access token appears only in
 * the Authorization header; no error text or log line carries any of
 * them.
 *
 * Clock: hclock_now_ms() (tests set it with hclock_set_fake()).
 * Threads: one dispatcher thread, like every provider.
 */
#include "provider/fcm.h"

#include "core/file.h"

#include "core/json_write.h"
#include "core/log.h"
#include "provider/http_provider.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CREDS_MAX (64 * 1024)   /* a service-account file is ~2.4 KB */
#define TOKEN_ANSWER_MAX (64 * 1024)
#define TOKEN_MAX (16 * 1024)
#define TTL_MAX_S 2419200       /* FCM's longest android.ttl: 28 days */
#define BACKOFF_MIN_MS 2000
#define BACKOFF_MAX_MS 60000

/* ------------------------------------------------------- credentials */

/* The member `name` of o as a string, or NULL. */
static const char *jstr(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static char *dup_or_null(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

/* The credentials file whole (core/file.h), at most CREDS_MAX bytes. */
static hr_t read_file(const char *path, char **out, size_t *len, char *why, size_t why_len)
{
    return file_read_small(path, CREDS_MAX, out, len, why, why_len);
}

hr_t fcm_creds_load(const char *path, fcm_creds_t *c, char *why, size_t why_len)
{
    memset(c, 0, sizeof(*c));
    char *text = NULL;
    size_t len = 0;
    json_t *j = NULL;
    hr_t r = read_file(path, &text, &len, why, why_len);
    if (r != HR_OK) return r;
    json_error_t err;
    j = json_loadb(text, len, 0, &err);
    r = HR_INVALID;
    if (!j || !json_is_object(j)) {
        /* Position only: json_error_t's text quotes the input near the error. */
        if (j) snprintf(why, why_len, "%s: not a JSON object", path);
        else snprintf(why, why_len, "%s: not JSON (line %d, column %d)", path, err.line, err.column);
        goto out;
    }
    const char *type = jstr(j, "type");
    if (type && strcmp(type, "service_account") != 0) {
        snprintf(why, why_len, "%s: \"type\" is \"%.40s\", not \"service_account\"", path, type);
        goto out;
    }
    const char *email = jstr(j, "client_email");
    if (!email || !*email) {
        snprintf(why, why_len, "%s: no \"client_email\" string", path);
        goto out;
    }
    json_t *pk = json_object_get(j, "private_key");
    if (!json_is_string(pk) || json_string_length(pk) == 0) {
        snprintf(why, why_len, "%s: no \"private_key\" string", path);
        goto out;
    }
    char inner[160];
    if (jwt_key_from_pem(json_string_value(pk), json_string_length(pk), &c->key, inner,
                         sizeof(inner)) != HR_OK) {
        snprintf(why, why_len, "%s: \"private_key\": %s", path, inner);
        goto out;
    }
    if (jwt_key_alg(c->key) != JWT_RS256) {
        snprintf(why, why_len, "%s: \"private_key\" is not an RSA key", path);
        goto out;
    }
    const char *uri = jstr(j, "token_uri");
    c->client_email = xstrdup(email);
    c->private_key_id = dup_or_null(jstr(j, "private_key_id"));
    c->project_id = dup_or_null(jstr(j, "project_id"));
    c->token_uri = xstrdup(uri && *uri ? uri : FCM_DEFAULT_TOKEN_URL);
    r = HR_OK;
out:
    /* The file and jansson's copy of the PEM held key material. */
    if (json_is_string(json_object_get(j, "private_key")))
        OPENSSL_cleanse((char *)json_string_value(json_object_get(j, "private_key")),
                        json_string_length(json_object_get(j, "private_key")));
    json_decref(j);
    OPENSSL_cleanse(text, len);
    free(text);
    if (r != HR_OK) fcm_creds_release(c);
    return r;
}

void fcm_creds_release(fcm_creds_t *c)
{
    jwt_key_free(c->key);
    free(c->client_email);
    free(c->private_key_id);
    free(c->project_id);
    free(c->token_uri);
    memset(c, 0, sizeof(*c));
}

hr_t fcm_assertion(const fcm_creds_t *c, const char *aud, int64_t now_s, buf_t *out)
{
    buf_t hdr, claims;
    buf_init(&hdr, 0);
    buf_init(&claims, 0);
    jw_t w = JW_INIT(&hdr);
    jw_lit(&w, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
    if (c->private_key_id) jw_key_str(&w, JW_KEY("kid"), c->private_key_id, strlen(c->private_key_id));
    jw_lit(&w, "}");
    hr_t r = w.r;
    w = JW_INIT(&claims);
    jw_lit(&w, "{");
    jw_key_str(&w, JW_KEY0("iss"), c->client_email, strlen(c->client_email));
    jw_key_str(&w, JW_KEY("scope"), FCM_SCOPE, strlen(FCM_SCOPE));
    jw_key_str(&w, JW_KEY("aud"), aud, strlen(aud));
    jw_key_int(&w, JW_KEY("iat"), now_s);
    jw_key_int(&w, JW_KEY("exp"), now_s + FCM_ASSERTION_LIFETIME_S);
    jw_lit(&w, "}");
    if (r == HR_OK) r = w.r;
    if (r == HR_OK) r = jwt_sign(c->key, buf_cstr(&hdr), buf_cstr(&claims), out);
    buf_release(&hdr);
    buf_release(&claims);
    return r;
}

/* --------------------------------------------------------- the token */

hr_t fcm_token_build(const char *token_url, const char *assertion, const char *ca_file,
                     long timeout_ms, prov_http_req_t *req)
{
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = timeout_ms;
    req->ca_file = ca_file;
    hr_t r = buf_append_str(&req->url, token_url);
    if (r == HR_OK)
        r = buf_append_str(&req->headers, "Content-Type: application/x-www-form-urlencoded\n");
    /* The assertion is base64url and dots: nothing to escape in a form. */
    if (r == HR_OK)
        r = buf_printf(&req->body,
                       "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                       "&assertion=%s",
                       assertion);
    if (r == HR_OK) buf_cstr(&req->url);
    return r;
}

/* A token goes into a header line: visible ASCII only. */
static bool token_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return false;
    return n > 0;
}

send_class_t fcm_token_parse(const prov_http_resp_t *r, buf_t *token, int64_t *expires_in_s,
                             char *why, size_t why_len)
{
    static const char *const what[] = {
        [HTTP_DONE] = "", [HTTP_TIMEOUT] = "timeout", [HTTP_CONNECT] = "connect",
        [HTTP_SHUTDOWN] = "shutdown", [HTTP_FAILED] = "transfer",
    };
    buf_reset(token);
    *expires_in_s = 0;
    if (r->result != HTTP_DONE) {
        snprintf(why, why_len, "token endpoint: %s: %s", what[r->result], r->error ? r->error : "");
        return SEND_RETRY;
    }
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    send_class_t cls;
    if (r->status == 200) {
        json_t *t = json_object_get(j, "access_token");
        json_t *e = json_object_get(j, "expires_in");
        if (!json_is_string(t) || !token_chars_ok(json_string_value(t), json_string_length(t))) {
            snprintf(why, why_len, "token endpoint: HTTP 200 without a usable access_token");
            cls = SEND_RETRY;
        } else {
            cls = buf_append(token, json_string_value(t), json_string_length(t)) == HR_OK ? SEND_OK
                                                                                          : SEND_RETRY;
            if (cls != SEND_OK) snprintf(why, why_len, "token endpoint: the token is too long");
            json_int_t ex = json_is_integer(e) ? json_integer_value(e) : 3600;
            *expires_in_s = ex > 0 && ex <= 86400 * 30 ? (int64_t)ex : 3600;
        }
    } else {
        /* {"error":"invalid_grant","error_description":"Invalid JWT Signature."} */
        const char *e = jstr(j, "error"), *d = jstr(j, "error_description");
        snprintf(why, why_len, "token endpoint: HTTP %d%s%.40s%s%.80s", r->status, e ? " " : "",
                 e ? e : "", d ? ": " : "", d ? d : "");
        cls = r->status == 400 || r->status == 401 || r->status == 403 ? SEND_FATAL : SEND_RETRY;
    }
    json_decref(j);
    return cls;
}

int64_t fcm_token_renew_at(int64_t now_ms, int64_t expires_in_s)
{
    int64_t life = expires_in_s * 1000, margin = 5 * 60 * 1000;
    if (margin > life / 2) margin = life / 2;
    return now_ms + life - margin;
}

/* ------------------------------------------------------- the message */

/* Writes the metadata's data, collapse_key and ttl members (fcm.h) as
 * their FCM form: data after `,"data":`, the android ones into android
 * (which the caller opened). HR_INVALID with why for a wrong type. */
static hr_t metadata_data(jw_t *w, json_t *md, char *why, size_t why_len)
{
    json_t *data = json_object_get(md, "data");
    if (!data) return HR_OK;
    if (!json_is_object(data)) {
        snprintf(why, why_len, "metadata.data is not an object");
        return HR_INVALID;
    }
    if (json_object_size(data) == 0) return HR_OK;
    jw_lit(w, ",\"data\":{");
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach(data, k, v) {
        if (!first) jw_lit(w, ",");
        first = false;
        jw_str(w, k, strlen(k));
        jw_lit(w, ":");
        if (json_is_string(v)) {
            jw_str(w, json_string_value(v), json_string_length(v));
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!s) {
                snprintf(why, why_len, "metadata.data.%.60s cannot be written", k);
                return HR_INVALID;
            }
            jw_str(w, s, strlen(s));
            free(s);
        }
    }
    jw_lit(w, "}");
    return HR_OK;
}

static hr_t metadata_android(jw_t *w, json_t *md, char *why, size_t why_len)
{
    json_t *ck = json_object_get(md, "collapse_key");
    json_t *ttl = json_object_get(md, "ttl");
    if (ck) {
        if (!json_is_string(ck)) {
            snprintf(why, why_len, "metadata.collapse_key is not a string");
            return HR_INVALID;
        }
        jw_key_str(w, JW_KEY("collapse_key"), json_string_value(ck), json_string_length(ck));
    }
    if (ttl) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 0 || json_integer_value(ttl) > TTL_MAX_S) {
            snprintf(why, why_len, "metadata.ttl is not an integer number of seconds in [0, %d]", TTL_MAX_S);
            return HR_INVALID;
        }
        char s[32];
        int n = snprintf(s, sizeof(s), "%llds", (long long)json_integer_value(ttl));
        jw_key_str(w, JW_KEY("ttl"), s, (size_t)n);
    }
    return HR_OK;
}

hr_t fcm_build(const fcm_conf_t *c, const char *access_token, const notif_t *n,
               prov_http_req_t *req, char *why, size_t why_len)
{
    prov_http_req_reset(req);
    req->method = "POST";
    req->timeout_ms = c->timeout_ms;
    req->ca_file = c->ca_file;
    /* Fan-out addresses a device as "fcm:<token>" (FCM tokens hold ':'
     * themselves, so only that exact prefix is taken off). */
    hstr_t tok = n->address;
    if (tok.n > 4 && memcmp(tok.p, "fcm:", 4) == 0) {
        tok.p += 4;
        tok.n -= 4;
    }
    if (tok.n == 0) {
        snprintf(why, why_len, "no device token");
        return HR_INVALID;
    }
    json_t *md = NULL;
    if (n->metadata.n) {
        md = json_loadb(n->metadata.p, n->metadata.n, 0, NULL);
        if (md && !json_is_object(md)) {
            json_decref(md);
            md = NULL; /* free-form metadata: not for us */
        }
    }
    size_t ul = strlen(c->url);
    while (ul && c->url[ul - 1] == '/') ul--;
    hr_t r = buf_printf(&req->url, "%.*s/v1/projects/%s/messages:send", (int)ul, c->url, c->project_id);
    if (r == HR_OK)
        r = buf_printf(&req->headers,
                       "Authorization: Bearer %s\nContent-Type: application/json; charset=UTF-8\n",
                       access_token);
    if (r != HR_OK) {
        snprintf(why, why_len, "%s", hr_str(r));
        goto out;
    }
    jw_t w = JW_INIT(&req->body);
    jw_lit(&w, "{\"message\":{");
    jw_key_str(&w, JW_KEY0("token"), tok.p, tok.n);
    if (n->title.n || n->body.n) {
        jw_lit(&w, ",\"notification\":{");
        if (n->title.n) jw_key_str(&w, JW_KEY0("title"), n->title.p, n->title.n);
        if (n->body.n) {
            if (n->title.n) jw_key_str(&w, JW_KEY("body"), n->body.p, n->body.n);
            else jw_key_str(&w, JW_KEY0("body"), n->body.p, n->body.n);
        }
        jw_lit(&w, "}");
    }
    if ((r = metadata_data(&w, md, why, why_len)) != HR_OK) goto out;
    bool high = n->priority == PRIO_HIGH || n->priority == PRIO_CRITICAL;
    jw_lit(&w, ",\"android\":{\"priority\":");
    if (high) jw_lit(&w, "\"HIGH\"");
    else jw_lit(&w, "\"NORMAL\"");
    if ((r = metadata_android(&w, md, why, why_len)) != HR_OK) goto out;
    jw_lit(&w, "}}}");
    r = w.r;
    if (r != HR_OK) snprintf(why, why_len, "%s", hr_str(r));
    else buf_cstr(&req->url);
out:
    json_decref(md);
    return r;
}

/* What an FCM error body says. Strings point into j. */
typedef struct fcm_err {
    const char *status;         /* "NOT_FOUND" */
    const char *message;
    const char *fcm_code;       /* details[FcmError].errorCode: "UNREGISTERED" */
    bool token_violation;       /* details[BadRequest].fieldViolations[].field == "message.token" */
} fcm_err_t;

static void parse_error(json_t *j, fcm_err_t *e)
{
    memset(e, 0, sizeof(*e));
    json_t *err = json_object_get(j, "error");
    e->status = jstr(err, "status");
    e->message = jstr(err, "message");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(err, "details"), i, d) {
        const char *type = jstr(d, "@type");
        if (!type) continue;
        if (strcmp(type, "type.googleapis.com/google.firebase.fcm.v1.FcmError") == 0) {
            if (!e->fcm_code) e->fcm_code = jstr(d, "errorCode");
        } else if (strcmp(type, "type.googleapis.com/google.rpc.BadRequest") == 0) {
            size_t k;
            json_t *v;
            json_array_foreach(json_object_get(d, "fieldViolations"), k, v) {
                const char *field = jstr(v, "field");
                if (field && strcmp(field, "message.token") == 0) e->token_violation = true;
            }
        }
    }
}

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

void fcm_classify(const prov_http_resp_t *r, send_result_t *res, bool *renew_token)
{
    *renew_token = false;
    if (hprov_classify_transport(r, res)) return;
    int s = r->status;
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (s >= 200 && s < 300) {
        send_result_set(res, SEND_OK, s, "%s", "");
        const char *name = jstr(j, "name");
        if (name) snprintf(res->msg_id, sizeof(res->msg_id), "%s", name);
        json_decref(j);
        return;
    }
    fcm_err_t e;
    parse_error(j, &e);
    const char *code = e.fcm_code ? e.fcm_code : e.status;
    send_class_t cls;
    bool addr = false;
    if (is(code, "UNREGISTERED") || is(code, "SENDER_ID_MISMATCH")) {
        cls = SEND_PERMANENT;
        addr = true;
    } else if (is(code, "INVALID_ARGUMENT")) {
        cls = SEND_PERMANENT;
        addr = e.token_violation ||
               (e.message && strcasestr(e.message, "registration token") && strcasestr(e.message, "not a valid"));
    } else if (is(code, "THIRD_PARTY_AUTH_ERROR") || is(code, "APNS_AUTH_ERROR") ||
               is(code, "PERMISSION_DENIED")) {
        cls = SEND_FATAL;
    } else if (is(code, "UNAUTHENTICATED")) {
        cls = SEND_RETRY;
        *renew_token = true;
    } else if (is(code, "QUOTA_EXCEEDED") || is(code, "RESOURCE_EXHAUSTED")) {
        cls = SEND_THROTTLED;
    } else if (is(code, "UNAVAILABLE") || is(code, "INTERNAL")) {
        cls = SEND_RETRY;
    } else if (s == 401) { /* no (known) error body: the HTTP status decides */
        cls = SEND_RETRY;
        *renew_token = true;
    } else if (s == 403) {
        cls = SEND_FATAL;
    } else if (s == 429) {
        cls = SEND_THROTTLED;
    } else if (s == 408 || (s >= 500 && s < 600)) {
        cls = SEND_RETRY;
    } else if (s >= 400 && s < 500) {
        cls = SEND_PERMANENT;
    } else {
        cls = SEND_RETRY;
    }
    /* "HTTP 404 UNREGISTERED: Requested entity was not found." */
    const char *reason = r->reason ? r->reason : "";
    if (code)
        send_result_set(res, cls, s, "HTTP %d %s%s%s", s, code, e.message ? ": " : "",
                        e.message ? e.message : "");
    else
        send_result_set(res, cls, s, "HTTP %d%s%s", s, *reason ? " " : "", reason);
    res->address_invalid = addr;
    if (cls == SEND_RETRY || cls == SEND_THROTTLED) res->retry_after_ms = hprov_retry_after(r);
    json_decref(j);
}

/* ------------------------------------------------------------ provider */

typedef struct fcm {
    hprov_t hp;                 /* first: the shared HTTP provider part */
    fcm_conf_t conf;            /* strings borrowed from the config, but project_id */
    char *project_id;
    fcm_creds_t creds;
    const char *token_url;      /* config token_url, else creds.token_uri */
    /* The access token and its schedule. Empty token: none. */
    buf_t token;
    int64_t fetched_ms;         /* when it arrived (the 401 rule) */
    int64_t renew_at_ms;        /* fetch a new one from here on */
    int64_t expires_at_ms;      /* unusable from here on */
    /* After a failed fetch: no attempt before retry_at_ms. */
    int64_t retry_at_ms, backoff_ms;
    send_class_t fail_cls;
    char fail[160];
    /* The renewal on the engine (a token is still good meanwhile). */
    http_xfer_t *tx;
    bool refreshing;
    int64_t refresh_asked_ms;
    /* The blocking token request. */
    CURL *easy;
    prov_http_req_t treq;
    buf_t scratch;              /* the assertion, then the answer */
    char why[160];
} fcm_t;

/* Slack before the real expiry: a request must reach FCM in time. */
#define EXPIRY_SLACK_MS 30000

static size_t on_token_body(char *p, size_t size, size_t nmemb, void *ud)
{
    buf_append(ud, p, size * nmemb); /* past the limit: dropped, the parse fails */
    return size * nmemb;
}

static prov_http_xfer_result_t curl_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return HTTP_DONE;
    case CURLE_OPERATION_TIMEDOUT: return HTTP_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: return HTTP_CONNECT;
    default: return HTTP_FAILED;
    }
}

static void token_drop(fcm_t *f)
{
    if (f->token.data) OPENSSL_cleanse(f->token.data, f->token.len);
    buf_reset(&f->token);
    f->renew_at_ms = f->expires_at_ms = 0;
}

/* Turns the headers of req into a curl list (NULL on failure). */
static struct curl_slist *header_list(const prov_http_req_t *req)
{
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    const char *p = req->headers.data, *end = p ? p + req->headers.len : NULL;
    while (hdrs && p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        char *line = xstrndup(p, (size_t)((eol ? eol : end) - p));
        struct curl_slist *h = curl_slist_append(hdrs, line);
        free(line);
        if (!h) {
            curl_slist_free_all(hdrs);
            return NULL;
        }
        hdrs = h;
        p = eol ? eol + 1 : end;
    }
    return hdrs;
}

/* Performs req blocking on f's easy handle; the answer goes to f->scratch.
 * Fills resp (its strings live until the next request). */
static void perform(fcm_t *f, const prov_http_req_t *req, char *errbuf, int64_t now_ms,
                    prov_http_resp_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->reason = resp->headers = resp->body = "";
    resp->now_ms = now_ms;
    struct curl_slist *hdrs = NULL;
    if ((!f->easy && !(f->easy = curl_easy_init())) || !(hdrs = header_list(req))) {
        resp->result = HTTP_FAILED;
        resp->error = "cannot set up the request";
        return;
    }
    CURL *c = f->easy;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : 10000L;
    buf_reset(&f->scratch);
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, req->url.data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body.data ? req->body.data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000L ? timeout : 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_token_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->scratch);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
    curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    resp->result = curl_result(rc);
    resp->error = rc == CURLE_OK ? "" : (errbuf[0] ? errbuf : curl_easy_strerror(rc));
    resp->status = (int)status;
    resp->body = f->scratch.data ? f->scratch.data : "";
    resp->body_len = f->scratch.len;
}

/* Signs a new assertion and builds the token request into f->treq. */
static hr_t token_request(fcm_t *f, int64_t now_ms)
{
    buf_reset(&f->scratch);
    hr_t r = fcm_assertion(&f->creds, f->token_url, now_ms / 1000, &f->scratch);
    if (r == HR_OK)
        r = fcm_token_build(f->token_url, buf_cstr(&f->scratch), f->conf.ca_file, f->conf.timeout_ms,
                            &f->treq);
    if (f->scratch.data) OPENSSL_cleanse(f->scratch.data, f->scratch.len);
    buf_reset(&f->scratch);
    if (r != HR_OK) snprintf(f->why, sizeof(f->why), "cannot sign the assertion");
    return r;
}

/* Takes the outcome of a token request made at asked_ms: the new token
 * (fresh is taken over), or the back-off (the current token, if any,
 * stays until it expires). */
static void token_result(fcm_t *f, send_class_t cls, buf_t *fresh, int64_t expires_in, int64_t asked_ms)
{
    if (f->treq.body.data) OPENSSL_cleanse(f->treq.body.data, f->treq.body.len); /* the assertion */
    if (cls == SEND_OK) {
        if (f->backoff_ms) log_info(f->hp.base.name, "%s: access token obtained again", f->token_url);
        token_drop(f);
        buf_release(&f->token);
        f->token = *fresh;
        f->fetched_ms = hclock_now_ms(); /* sends from here on carry it */
        f->renew_at_ms = fcm_token_renew_at(asked_ms, expires_in);
        f->expires_at_ms = asked_ms + expires_in * 1000 - EXPIRY_SLACK_MS;
        if (f->expires_at_ms < f->renew_at_ms) f->expires_at_ms = f->renew_at_ms;
        f->backoff_ms = 0;
        f->retry_at_ms = 0;
        return;
    }
    if (fresh->data) OPENSSL_cleanse(fresh->data, fresh->len);
    buf_release(fresh);
    f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (f->backoff_ms > BACKOFF_MAX_MS) f->backoff_ms = BACKOFF_MAX_MS;
    f->retry_at_ms = asked_ms + f->backoff_ms;
    f->fail_cls = cls;
    snprintf(f->fail, sizeof(f->fail), "%s", f->why);
    log_warn(f->hp.base.name, "no access token: %s (next attempt in %lld ms)", f->fail,
             (long long)f->backoff_ms);
}

/* The blocking fetch, when there is no token to send with (see DESIGN). */
static void token_fetch(fcm_t *f, int64_t now_ms)
{
    char errbuf[CURL_ERROR_SIZE];
    int64_t expires_in = 0;
    buf_t fresh;
    buf_init(&fresh, TOKEN_MAX);
    send_class_t cls = SEND_FATAL;
    if (token_request(f, now_ms) == HR_OK) {
        prov_http_resp_t resp;
        perform(f, &f->treq, errbuf, now_ms, &resp);
        cls = fcm_token_parse(&resp, &fresh, &expires_in, f->why, sizeof(f->why));
        if (f->scratch.data) OPENSSL_cleanse(f->scratch.data, f->scratch.len); /* the answer */
        buf_reset(&f->scratch);
    }
    token_result(f, cls, &fresh, expires_in, now_ms);
}

/* The end of the renewal on the engine. */
static void on_refresh_done(void *ud, http_xfer_t *x, const prov_http_resp_t *resp)
{
    (void)x;
    fcm_t *f = ud;
    f->refreshing = false;
    if (resp->result == HTTP_SHUTDOWN) return; /* closing */
    int64_t expires_in = 0;
    buf_t fresh;
    buf_init(&fresh, TOKEN_MAX);
    send_class_t cls = fcm_token_parse(resp, &fresh, &expires_in, f->why, sizeof(f->why));
    token_result(f, cls, &fresh, expires_in, f->refresh_asked_ms);
}

/* Renews a token that is still good on the engine, without waiting (see
 * DESIGN); blocking if the request cannot start. */
static void token_refresh(fcm_t *f, int64_t now_ms)
{
    if (token_request(f, now_ms) != HR_OK) {
        buf_t none;
        buf_init(&none, 0);
        token_result(f, SEND_FATAL, &none, 0, now_ms);
        return;
    }
    if (!f->tx) f->tx = http_xfer_new();
    f->refresh_asked_ms = now_ms;
    if (http_xfer_start(f->hp.engine, f->tx, &f->treq, on_refresh_done, f) == HR_OK) f->refreshing = true;
    else token_fetch(f, now_ms);
}

static hr_t fcm_hbuild(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res)
{
    fcm_t *f = (fcm_t *)hp;
    int64_t now = hclock_now_ms();
    if (f->token.len && now >= f->expires_at_ms) token_drop(f);
    if (now >= f->retry_at_ms) {
        if (!f->token.len) token_fetch(f, now); /* nothing to send with: wait for one */
        else if (now >= f->renew_at_ms && !f->refreshing) token_refresh(f, now);
    }
    if (!f->token.len) {
        send_result_set(res, f->fail_cls, 0, "no access token: %s", f->fail);
        if (f->fail_cls == SEND_RETRY) res->retry_after_ms = f->retry_at_ms > now ? f->retry_at_ms - now : 0;
        return HR_ERR;
    }
    char why[128];
    hr_t r = fcm_build(&f->conf, buf_cstr(&f->token), n, req, why, sizeof(why));
    if (r != HR_OK) {
        send_result_set(res, SEND_PERMANENT, 0, "cannot build the request: %s", why);
        res->address_invalid = n->address.n == 0;
    }
    return r;
}

static void fcm_hclassify(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res)
{
    fcm_t *f = (fcm_t *)hp;
    bool renew;
    fcm_classify(resp, res, &renew);
    if (renew && f->token.len && hclock_now_ms() - f->fetched_ms >= f->conf.timeout_ms) {
        log_info(hp->base.name, "the access token was refused (%s); fetching a new one", res->error);
        token_drop(f);
    }
}

static void fcm_destroy(hprov_t *hp)
{
    fcm_t *f = (fcm_t *)hp;
    http_xfer_free(f->tx); /* a renewal still running ends as SHUTDOWN: ignored */
    token_drop(f);
    buf_release(&f->token);
    buf_release(&f->scratch);
    prov_http_req_release(&f->treq);
    if (f->easy) curl_easy_cleanup(f->easy);
    fcm_creds_release(&f->creds);
    free(f->project_id);
}

static const hprov_ops_t fcm_hops = {.build = fcm_hbuild, .classify = fcm_hclassify, .destroy = fcm_destroy};

#define FCM_DEFAULT_IN_FLIGHT 500

/* Project ids are letters, digits, '-' (and "domain.com:" before them). */
static bool project_id_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.' || *p == ':' || *p == '_'))
            return false;
    return *s != '\0';
}

static hr_t fcm_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout;
    int cap;
    hr_t r = provider_conf_int(env, "timeout_ms", 10000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK) r = hprov_conf_cap(env, FCM_DEFAULT_IN_FLIGHT, &cap, why, why_len);
    if (r != HR_OK) return r;
    const char *path = provider_conf(env, "credentials_file", NULL);
    if (!path || !*path) {
        snprintf(why, why_len, "provider.%s.credentials_file is required (a service-account JSON file)",
                 env->name);
        return HR_INVALID;
    }
    fcm_t *f = xcalloc(1, sizeof(*f));
    char inner[256];
    if ((r = fcm_creds_load(path, &f->creds, inner, sizeof(inner))) != HR_OK) {
        snprintf(why, why_len, "provider.%s.credentials_file: %s", env->name, inner);
        free(f);
        return r;
    }
    const char *project = provider_conf(env, "project_id", f->creds.project_id);
    if (!project || !project_id_ok(project)) {
        if (project)
            snprintf(why, why_len, "provider.%s.project_id: '%.60s' is not a project id", env->name, project);
        else
            snprintf(why, why_len, "provider.%s.project_id: not set, and %s has none", env->name, path);
        fcm_creds_release(&f->creds);
        free(f);
        return HR_INVALID;
    }
    f->project_id = xstrdup(project);
    f->conf.project_id = f->project_id;
    f->conf.url = provider_conf(env, "url", FCM_DEFAULT_URL);
    f->conf.ca_file = provider_conf(env, "ca_file", NULL);
    f->conf.timeout_ms = (long)timeout;
    f->token_url = provider_conf(env, "token_url", f->creds.token_uri);
    buf_init(&f->token, TOKEN_MAX);
    buf_init(&f->scratch, TOKEN_ANSWER_MAX);
    prov_http_req_init(&f->treq);
    f->fail_cls = SEND_RETRY;
    snprintf(f->fail, sizeof(f->fail), "not fetched yet");
    hprov_init(&f->hp, env, &fcm_hops, f->conf.url, cap);
    *out = &f->hp.base;
    return HR_OK;
}

static const char *const fcm_keys[] = {"credentials_file", "project_id", "token_url", "url",
                                       "timeout_ms", "ca_file", NULL};

const provider_ops_t fcm_provider_ops = {
    .name = "fcm",
    .keys = fcm_keys,
    .default_max_in_flight = FCM_DEFAULT_IN_FLIGHT,
    .uses_http = true,
    .open = fcm_open,
    .submit = hprov_submit,
    .poll = hprov_poll,
    .close = hprov_close,
};
