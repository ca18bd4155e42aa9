/*
 * webhook.h - the generic HTTP provider's pure parts: the request builder
 * and the response classifier (webhook.c). Both are pure functions of
 * their inputs, so tests state the exact request and the class of each
 * response (tests/unit/provider/test_webhook.c).
 *
 * The provider POSTs the notification's JSON form (notif_to_json) to the
 * configured URL with Idempotency-Key: <notification_id>.
 * Config (provider.<name>.*): url (required), timeout_ms (default 10000),
 * max_in_flight (default 100), authorization (optional Authorization
 * header value), secret or secret_file (optional signing secret).
 *
 * Signing (Standard Webhooks): with a secret, each request carries
 *   webhook-id: <notification_id>
 *   webhook-timestamp: <unix seconds>
 *   webhook-signature: v1,<base64(HMAC-SHA256(key, id "." timestamp "." body))>
 * The secret is "whsec_<base64 of the key>" or, without the prefix, the
 * key's bytes as they are. The user's own secret (user.webhook_secret in
 * the store) wins over the instance's; with neither, no signature headers.
 * The user's secret is read from the store at send time, never carried in
 * the notification record (records travel on topics and land in the DLQ).
 */
#ifndef HERALD_PROVIDER_WEBHOOK_H
#define HERALD_PROVIDER_WEBHOOK_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/provider.h"

/* A signing key: the secret's decoded bytes. */
#define WEBHOOK_KEY_MIN 24
#define WEBHOOK_KEY_MAX 128
typedef struct webhook_key {
    size_t n;
    unsigned char k[WEBHOOK_KEY_MAX];
} webhook_key_t;

/* Parses a secret: "whsec_" + standard base64 ('=' padding optional) of
 * a WEBHOOK_KEY_MIN..MAX-byte key, or else WEBHOOK_KEY_MIN..MAX printable
 * ASCII characters used as the key's bytes. HR_INVALID otherwise (out
 * untouched). Pure; never logs. */
hr_t webhook_secret_parse(const char *s, webhook_key_t *out);

/* Appends the three signature header lines ("webhook-id: ...\n",
 * "webhook-timestamp: ...\n", "webhook-signature: v1,...\n") for body,
 * signed with key at unix time ts_s. Pure. */
hr_t webhook_sign(const webhook_key_t *key, hstr_t id, int64_t ts_s, const char *body, size_t body_len,
                  buf_t *headers);

typedef struct webhook_conf {
    const char *url;
    const char *authorization;  /* NULL = none */
    long timeout_ms;
} webhook_conf_t;

/* Fills req (reset first) with the request for n. HR_OK, or the buffer
 * error. */
hr_t webhook_build(const webhook_conf_t *c, const notif_t *n, prov_http_req_t *req);

/* Classes a response:
 *   2xx -> OK (msg_id: the X-Message-Id header, else empty)
 *   429 -> THROTTLED, retry_after_ms from Retry-After
 *   401, 403 -> FATAL (our credentials or URL are wrong: nothing will pass)
 *   408, 5xx, timeouts, connection failures, shutdown -> RETRY
 *            (retry_after_ms from Retry-After when present)
 *   other 4xx -> PERMANENT
 *   anything else (1xx, 3xx: redirects are not followed) -> RETRY
 * code is the HTTP status (0 without one); error says status and reason. */
void webhook_classify(const prov_http_resp_t *r, send_result_t *res);

#endif
