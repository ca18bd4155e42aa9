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
 * header value).
 */
#ifndef HERALD_PROVIDER_WEBHOOK_H
#define HERALD_PROVIDER_WEBHOOK_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/provider.h"

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
