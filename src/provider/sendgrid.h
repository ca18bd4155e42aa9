/*
 * sendgrid.h - the SendGrid e-mail provider's pure parts (sendgrid.c): the
 * request builder, the response classifier, and the verification of
 * SendGrid's signed event webhook (src/http/api_callbacks.c receives the
 * events). Pure functions of their inputs, tested against fixture files
 * (tests/unit/provider/test_sendgrid.c, fixtures/sendgrid/).
 *
 * The request (SendGrid v3 Mail Send):
 *   POST {url}/v3/mail/send
 *   Authorization: Bearer <api key>
 *   Content-Type: application/json
 *   {"personalizations":[{"to":[{"email":<address>}]}],
 *    "from":{"email":<from>[,"name":<from_name>]},
 *    "subject":<title>,
 *    "content":[{"type":"text/plain","value":<body>},
 *               {"type":"text/html","value":<html>}],
 *    "custom_args":{"herald_notification_id":<id>}}
 * html is the metadata's "html" string when the notification carries one,
 * else the body HTML-escaped with its line breaks as <br>. Without a title
 * the subject is the body's first line (cut to 78 bytes); without a body
 * the text is the title. custom_args come back in every event, so an event
 * maps to its notification without a lookup by SendGrid's message id.
 *
 * Config (provider.<name>.*): api_key_file or api_key (required; the file
 * wins; never logged), from (required), from_name, url (default
 * https://api.sendgrid.com), event_public_key (the signed event webhook's
 * verification key; used by the callback endpoint), timeout_ms (10000),
 * ca_file, max_in_flight (100).
 */
#ifndef HERALD_PROVIDER_SENDGRID_H
#define HERALD_PROVIDER_SENDGRID_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/provider.h"

#define SENDGRID_DEFAULT_URL "https://api.sendgrid.com"
/* The custom argument that carries the notification id. */
#define SENDGRID_ID_ARG "herald_notification_id"

typedef struct sendgrid_conf {
    const char *url;            /* base URL */
    const char *api_key;        /* secret */
    const char *from;
    const char *from_name;      /* NULL = none */
    const char *ca_file;        /* NULL = curl's default */
    long timeout_ms;
} sendgrid_conf_t;

/* Fills req (reset first) with the request for n. HR_OK; HR_INVALID when n
 * has no address; or the buffer error. */
hr_t sendgrid_build(const sendgrid_conf_t *c, const notif_t *n, prov_http_req_t *req);

/* Classes a response:
 *   202 (any 2xx) -> OK, msg_id = the X-Message-Id header
 *   400, 413 and other 4xx -> PERMANENT (the first "errors" message in
 *     the error text)
 *   401, 403, 404 (the key or URL is wrong: every request would fail the
 *     same) -> FATAL
 *   429 -> THROTTLED, retry_after_ms from Retry-After, else from
 *     X-RateLimit-Reset (epoch seconds)
 *   408, 5xx, transport failures -> RETRY (Retry-After when given) */
void sendgrid_classify(const prov_http_resp_t *r, send_result_t *res);

/* Verifies a signed event webhook request: the ECDSA P-256 / SHA-256
 * signature sig_b64 (base64 DER, the X-Twilio-Email-Event-Webhook-Signature
 * header) over timestamp (X-Twilio-Email-Event-Webhook-Timestamp) followed
 * by the raw body, with public_key_b64 (base64 DER SubjectPublicKeyInfo,
 * as SendGrid shows it). HR_OK when it verifies; HR_INVALID when the
 * signature is missing, malformed or wrong; HR_DECLINED when the key
 * itself is unusable (our configuration). */
hr_t sendgrid_event_verify(const char *public_key_b64, const char *timestamp, const char *body,
                           size_t body_len, const char *sig_b64);

#endif
