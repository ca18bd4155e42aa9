/*
 * fcm.h - the Firebase Cloud Messaging HTTP v1 provider's pure parts: the
 * service-account credentials, the OAuth2 assertion and token exchange,
 * the send request builder and the response classifier (fcm.c). Each is a
 * function of its inputs (no clock, no I/O but fcm_creds_load's file
 * read), so tests state the exact requests and the class of each answer
 * (tests/unit/provider/test_fcm.c, fixtures under fixtures/fcm/).
 *
 * Config (provider.<name>.*):
 *   credentials_file  a Google service-account JSON file (required)
 *   project_id        overrides the file's project_id
 *   token_url         overrides the file's token_uri (the OAuth2 endpoint)
 *   url               API base, default https://fcm.googleapis.com
 *   timeout_ms        per request, token requests too (default 10000)
 *   ca_file           CA bundle that verifies both servers (default: curl's)
 *   max_in_flight     default 500
 *
 * The notification's metadata (a JSON object, optional) may carry:
 *   "data":         object -> message.data; string values as they are,
 *                   other values as their compact JSON text (FCM takes
 *                   strings only)
 *   "collapse_key": string -> message.android.collapse_key
 *   "ttl":          integer seconds >= 0 -> message.android.ttl ("<n>s")
 * Other members are ignored; metadata that is not a JSON object is
 * ignored; one of these three with the wrong type makes the notification
 * PERMANENT. Priority high and critical send android.priority HIGH, the
 * others NORMAL.
 */
#ifndef HERALD_PROVIDER_FCM_H
#define HERALD_PROVIDER_FCM_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/jwt.h"
#include "provider/provider.h"

#define FCM_DEFAULT_URL "https://fcm.googleapis.com"
#define FCM_DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_ASSERTION_LIFETIME_S 3600

/* ------------------------------------------------------- credentials */

/* A service account, as read from its JSON file. Strings are owned
 * (malloc'd); release with fcm_creds_release. */
typedef struct fcm_creds {
    char *client_email;
    char *private_key_id;       /* NULL when the file has none: no "kid" */
    char *project_id;           /* NULL when the file has none */
    char *token_uri;            /* the file's, else FCM_DEFAULT_TOKEN_URL */
    jwt_key_t *key;             /* RSA */
} fcm_creds_t;

/* Reads the service-account file at path. HR_INVALID (or HR_NOTFOUND for
 * a missing file) with why naming the path and the bad member
 * ("private_key"), never the key material nor the file's text; the PEM
 * text is wiped from memory once the key is loaded. */
hr_t fcm_creds_load(const char *path, fcm_creds_t *c, char *why, size_t why_len);
void fcm_creds_release(fcm_creds_t *c);

/* Appends the signed RS256 JWT assertion of the OAuth2 service-account
 * flow (RFC 7523) to out: header {"alg":"RS256","typ":"JWT","kid":...},
 * claims {"iss":client_email,"scope":FCM_SCOPE,"aud":aud,"iat":now_s,
 * "exp":now_s + FCM_ASSERTION_LIFETIME_S}. */
hr_t fcm_assertion(const fcm_creds_t *c, const char *aud, int64_t now_s, buf_t *out);

/* --------------------------------------------------------- the token */

/* Fills req (reset first) with the token request: POST token_url,
 * form-encoded grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and
 * assertion. ca_file and timeout_ms are copied as they are. */
hr_t fcm_token_build(const char *token_url, const char *assertion, const char *ca_file,
                     long timeout_ms, prov_http_req_t *req);

/* Classes the token endpoint's answer: SEND_OK with the access token
 * appended to token (reset first) and its lifetime in *expires_in_s;
 * SEND_FATAL when the credentials are refused (400 / 401 / 403, e.g.
 * invalid_grant: nothing will pass until the configuration changes);
 * SEND_RETRY otherwise (transport failures, 5xx, 429, an answer without
 * a token). why gets the reason (the endpoint's error and description,
 * never a token). */
send_class_t fcm_token_parse(const prov_http_resp_t *r, buf_t *token, int64_t *expires_in_s,
                             char *why, size_t why_len);

/* When a token that lives expires_in_s from now_ms should be replaced:
 * 5 minutes before it expires, or halfway through a life of 10 minutes
 * or less. */
int64_t fcm_token_renew_at(int64_t now_ms, int64_t expires_in_s);

/* ------------------------------------------------------- the message */

typedef struct fcm_conf {
    const char *url;            /* API base, no trailing slash needed */
    const char *project_id;
    const char *ca_file;        /* NULL: curl's default */
    long timeout_ms;
} fcm_conf_t;

/* Fills req (reset first) with POST {url}/v1/projects/{project}/messages:send
 * for n, authorised with access_token. HR_INVALID with why (the
 * notification cannot be expressed: no device token, bad metadata). */
hr_t fcm_build(const fcm_conf_t *c, const char *access_token, const notif_t *n,
               prov_http_req_t *req, char *why, size_t why_len);

/* Classes an FCM v1 answer. The FCM errorCode (details[] of type
 * google.firebase.fcm.v1.FcmError) decides first, then the error status,
 * then the HTTP status:
 *   2xx                          -> OK, msg_id = the answer's "name"
 *   UNREGISTERED                 -> PERMANENT, address_invalid
 *   SENDER_ID_MISMATCH           -> PERMANENT, address_invalid
 *   INVALID_ARGUMENT (400)       -> PERMANENT; address_invalid when it is
 *                                   about the token (a fieldViolation on
 *                                   message.token, or the message says the
 *                                   registration token is not valid)
 *   THIRD_PARTY_AUTH_ERROR, APNS_AUTH_ERROR -> FATAL
 *   UNAUTHENTICATED (401)        -> RETRY, and *renew_token = true
 *   PERMISSION_DENIED (403)      -> FATAL
 *   QUOTA_EXCEEDED, RESOURCE_EXHAUSTED (429) -> THROTTLED, Retry-After
 *   UNAVAILABLE (503), INTERNAL (500), other 5xx, 408 -> RETRY, Retry-After
 *   NOT_FOUND (404) without UNREGISTERED, other 4xx -> PERMANENT
 *   transport failures, anything else -> RETRY
 * code is the HTTP status; error says status, FCM code and message. */
void fcm_classify(const prov_http_resp_t *r, send_result_t *res, bool *renew_token);

#endif
