/*
 * twilio.h - the Twilio SMS provider's pure parts (twilio.c): the request
 * builder, the response classifier, and the X-Twilio-Signature of the
 * status callbacks Twilio sends back (src/http/api_callbacks.c verifies
 * them). Pure functions of their inputs, tested against fixture files
 * (tests/unit/provider/test_twilio.c, fixtures/twilio/).
 *
 * The request (Twilio's Programmable Messaging API):
 *   POST {url}/2010-04-01/Accounts/{account_sid}/Messages.json
 *   Authorization: Basic base64(account_sid:auth_token)
 *   Content-Type: application/x-www-form-urlencoded
 *   To=<address>&From=<from> | MessagingServiceSid=<sid>&Body=<text>
 *   [&StatusCallback=<status_callback_url>/v1/callbacks/twilio/<instance>?nid=<id>]
 * Body is the title and the body on two lines ("title\nbody"); only one of
 * them when the other is empty or when the body already starts with the
 * title.
 *
 * Config (provider.<name>.*): account_sid (required), auth_token_file or
 * auth_token (required; the file wins; never logged), from or
 * messaging_service_sid (one required; the service wins), url (default
 * https://api.twilio.com), status_callback_url (herald's public base URL;
 * unset = no status callbacks), timeout_ms (10000), ca_file,
 * max_in_flight (100).
 */
#ifndef HERALD_PROVIDER_TWILIO_H
#define HERALD_PROVIDER_TWILIO_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/provider.h"

#define TWILIO_DEFAULT_URL "https://api.twilio.com"

typedef struct twilio_conf {
    const char *url;                    /* base URL, no trailing '/' needed */
    const char *account_sid;
    const char *auth_token;             /* secret */
    const char *from;                   /* NULL when messaging_service_sid is used */
    const char *messaging_service_sid;  /* NULL = use from */
    const char *status_callback_url;    /* herald's public base URL; NULL = none */
    const char *instance;               /* the instance name (callback path) */
    const char *ca_file;                /* NULL = curl's default */
    long timeout_ms;
} twilio_conf_t;

/* Fills req (reset first) with the request for n. HR_OK, or the buffer
 * error. */
hr_t twilio_build(const twilio_conf_t *c, const notif_t *n, prov_http_req_t *req);

/* Classes a response from Twilio's status and error JSON
 * ({"code":21211,"message":"...","status":400}):
 *   200, 201 (any 2xx) -> OK, msg_id = the message's "sid"
 *   code 21211 (invalid To), 21614 (not a mobile number), 21610 (the
 *     recipient replied STOP) -> PERMANENT + address_invalid
 *   401, 403, code 20003 (authentication) and 404 (the account or URL is
 *     wrong: every request would fail the same) -> FATAL
 *   429, code 20429 -> THROTTLED with Retry-After
 *   408, 5xx, transport failures -> RETRY (Retry-After when given)
 *   other 4xx -> PERMANENT
 * error: "HTTP <status>: Twilio <code> <message>" (cut to fit). */
void twilio_classify(const prov_http_resp_t *r, send_result_t *res);

/* One POST parameter of a status callback, decoded (borrowed). */
typedef struct twilio_param {
    const char *name;
    const char *value;
} twilio_param_t;

/* X-Twilio-Signature of a request: base64(HMAC-SHA1(auth_token, url +
 * name1 + value1 + name2 + value2 ...)) with the POST parameters sorted by
 * name (then value), byte order. url is the full URL as Twilio called it
 * (scheme, host, path and query). params is sorted in place. out gets the
 * 28 characters and a NUL. */
void twilio_signature(const char *auth_token, const char *url, twilio_param_t *params, int n,
                      char out[29]);
/* Compares a received signature with the expected one in constant time. */
bool twilio_signature_ok(const char *auth_token, const char *url, twilio_param_t *params, int n,
                         const char *received);

#endif
