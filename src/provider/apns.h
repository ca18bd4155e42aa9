/*
 * apns.h - the Apple Push Notification service provider's pure parts
 * (apns.c): the request builder, the response classifier and the provider
 * token (JWT) cache. Tests state the exact request and the class of each
 * documented response (tests/unit/provider/test_apns.c).
 *
 * The request: POST {url}/3/device/{device token} over HTTP/2 (the token
 * from the notification's address, apns_device_token()) with
 *   apns-id          the notification id (32 lowercase hex) as a UUID
 *                    8-4-4-4-12; omitted for other ids (APNs makes one)
 *   apns-topic       the topic setting (the app's bundle id), with the
 *                    suffix Apple requires for some push types appended
 *                    when missing (location: ".location-query", voip:
 *                    ".voip", complication:
 *                    ".complication", fileprovider: ".pushkit.fileprovider",
 *                    liveactivity: ".push-type.liveactivity", pushtotalk:
 *                    ".voip-ptt")
 *   apns-push-type   push_type setting (default alert), or metadata
 *   apns-priority    10 for priority high / critical, 5 otherwise (always 5
 *                    for background pushes: Apple refuses 10 there)
 *   apns-expiration  now + expiration_s (default 86400); expiration_s = 0
 *                    sends 0: deliver once, never stored
 *   apns-collapse-id metadata collapse_id, when given
 *   authorization    "bearer <JWT>" under token auth (none under
 *                    certificate auth: the TLS client certificate is it)
 * and the body {"aps":{"alert":{"title":..,"body":..},"badge":..,
 * "sound":..,"thread-id":..}, <data>}, at most 4096 bytes (5120 for voip).
 *
 * Per-notification extras come from the notification's metadata, a JSON
 * object (empty = none). Keys read, all optional, others ignored:
 *   badge             integer >= 0        -> aps.badge
 *   sound             string              -> aps.sound
 *   thread_id         string              -> aps.thread-id
 *   content_available true                -> aps.content-available: 1
 *   mutable_content   true                -> aps.mutable-content: 1
 *   collapse_id       string <= 64 bytes  -> apns-collapse-id header
 *   push_type         a push type below   -> apns-push-type (and topic suffix)
 *   data              object              -> its members at the top level of
 *                                            the payload ("aps" not allowed)
 * A background push carries no alert, badge or sound: aps is
 * {"content-available":1} plus thread-id. Metadata of the wrong shape, a
 * payload over the limit, or a device token that is empty or not hex is a
 * PERMANENT result (the last with address_invalid), never a request.
 *
 * An address listing several devices is sent to its first APNs device;
 * a dead token there is PERMANENT without address_invalid (the shared HTTP
 * provider part drops it: invalidating the list would remove all the
 * user's devices).
 */
#ifndef HERALD_PROVIDER_APNS_H
#define HERALD_PROVIDER_APNS_H

#include "core/buf.h"
#include "model/notif.h"
#include "provider/http.h"
#include "provider/jwt.h"
#include "provider/provider.h"

#define APNS_DEFAULT_URL "https://api.push.apple.com"
#define APNS_PAYLOAD_MAX 4096
#define APNS_VOIP_PAYLOAD_MAX 5120
#define APNS_COLLAPSE_ID_MAX 64

typedef struct apns_conf {
    const char *url;            /* base URL, no trailing '/' */
    const char *topic;          /* required */
    const char *push_type;      /* default push type ("alert") */
    int64_t expiration_s;       /* 0 = deliver once */
    long timeout_ms;
    /* TLS (borrowed config values, NULL = curl's default): the CA that
     * verifies the server, and under certificate auth the client
     * certificate and its key (PEM). */
    const char *ca_file;
    const char *cert_file;
    const char *cert_key_file;
} apns_conf_t;

/* Is s a push type APNs knows (alert, background, location, voip,
 * complication, fileprovider, mdm, liveactivity, pushtotalk)? */
bool apns_push_type_valid(const char *s, size_t n);

/* The device token in a push address: the address itself when it is a
 * bare token, else the token of its first "apns:<token>" entry (fan-out
 * writes a user's devices as "platform:token", comma separated). False
 * (token empty) when there is none. */
bool apns_device_token(hstr_t address, hstr_t *token);

/* Fills req (reset first) with the request for n at wall-clock time now_s.
 * bearer is the provider token for "authorization: bearer ..." (NULL under
 * certificate auth). HR_OK, or HR_INVALID with res filled (PERMANENT;
 * address_invalid for a bad device token). Pure: no I/O, no clock. */
hr_t apns_build(const apns_conf_t *c, const char *bearer, int64_t now_s, const notif_t *n,
                prov_http_req_t *req, send_result_t *res);

/* Classes a response (Apple's status + {"reason":"..."} body):
 *   2xx (APNs: 200)                         -> OK, msg_id = apns-id header
 *                                              (else apns-unique-id)
 *   410, 400 BadDeviceToken / DeviceTokenNotForTopic
 *                                           -> PERMANENT, address_invalid
 *   other 400, 413                          -> PERMANENT
 *   403 ExpiredProviderToken                -> RETRY (renew the token)
 *   401, other 403, 404 BadPath, 405        -> FATAL (nothing would pass)
 *   429 (TooManyRequests, TooManyProviderTokenUpdates)
 *                                           -> THROTTLED with Retry-After
 *   500, 503, other 5xx, transport failures -> RETRY with Retry-After
 *   other 4xx -> PERMANENT; anything else -> RETRY
 * code is the HTTP status (0 without one), error "HTTP <status> <reason>".
 * Returns true when the response says our provider token expired: renew it
 * before the next request. */
bool apns_classify(const prov_http_resp_t *r, send_result_t *res);

/* ------------------------------------------------------ provider token */

/* The ES256 provider token (header {"alg":"ES256","kid":<key_id>}, claims
 * {"iss":<team_id>,"iat":<now>}), signed with the .p8 key and reused until
 * it is ttl_s old: Apple refuses tokens older than an hour and answers
 * TooManyProviderTokenUpdates to renewals more often than every 20 minutes.
 * The caller passes the clock, so tests prove reuse and renewal. */
typedef struct apns_token {
    jwt_key_t *key;             /* owned */
    char *key_id, *team_id;     /* owned */
    int64_t ttl_s;
    buf_t jwt;                  /* the current token, NUL-terminated; empty = none */
    int64_t issued_s;           /* its iat */
    int64_t signed_count;       /* tokens signed so far */
} apns_token_t;

/* Takes ownership of key; copies the strings. */
void apns_token_init(apns_token_t *t, jwt_key_t *key, const char *key_id, const char *team_id,
                     int64_t ttl_s);
void apns_token_release(apns_token_t *t);
/* The token to send at now_s: the cached one while it is younger than
 * ttl_s (and not from the future), else a newly signed one. The pointer is
 * valid until the next call. NULL if signing fails. */
const char *apns_token_get(apns_token_t *t, int64_t now_s);
/* APNs answered ExpiredProviderToken at now_s to a request sent at most
 * max_age_s ago. Drops the current token unless it was signed within that
 * window (then the request carried its predecessor, and the many requests
 * in flight with an old token renew it once, not once each). True when it
 * dropped the token. */
bool apns_token_expired(apns_token_t *t, int64_t now_s, int64_t max_age_s);

#endif
