/*
 * fake_http.h - a tiny scripted HTTP server for provider tests (libmicrohttpd,
 * one thread per connection, on 127.0.0.1 with a free port).
 *
 * Each request's answer is scripted by the request body: a JSON object
 * whose "title" (or, for FCM bodies, "message.notification.title") holds
 * space-separated words
 *   status=NNN  retry-after=TEXT (underscores become spaces)
 *   msgid=ID (an X-Message-Id header and the body {"name":"ID"})
 *   delay=MS (sleep before answering)
 * Anything missing: 200 with no extra headers.
 *
 * An OAuth2 token endpoint (fake_http_token) answers its path instead:
 * {"access_token":"tok-<n>","expires_in":E} for the n-th token it hands
 * out, or the status set with an invalid_grant error (400) or "{}".
 *
 * The server counts requests, the most answered at once, and the
 * Idempotency-Key values and paths it saw. fake_http_hold() makes requests
 * wait until `k` are being answered at once (or every expected request
 * has arrived, or 5 s passed), which proves k were in flight together.
 */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fake_http fake_http_t;

fake_http_t *fake_http_start(void);
void fake_http_stop(fake_http_t *f);
/* "http://127.0.0.1:<port><path>"; static buffer per server. */
const char *fake_http_url(fake_http_t *f, const char *path);
void fake_http_hold(fake_http_t *f, int k, int expected_total);
int fake_http_requests(fake_http_t *f);
int fake_http_max_concurrent(fake_http_t *f);
/* How many requests carried this Idempotency-Key / went to this path. */
int fake_http_key_count(fake_http_t *f, const char *key);
int fake_http_path_count(fake_http_t *f, const char *path);
/* Requests to path answer as a token endpoint: status 200 hands out
 * tokens living expires_in seconds; 400 is invalid_grant. */
void fake_http_token(fake_http_t *f, const char *path, int expires_in, int status);
/* How many requests carried this Authorization header value. */
int fake_http_auth_count(fake_http_t *f, const char *auth);
/* How many requests carried this traceparent header value ("" = none). */
int fake_http_trace_count(fake_http_t *f, const char *traceparent);
/* The body and Content-Type of the last token request ("" if none). */
void fake_http_token_last(fake_http_t *f, char *body, size_t body_cap, char *ctype, size_t ctype_cap);
/* The webhook-id, webhook-timestamp and webhook-signature headers ("" when
 * absent) and the body of the last request with this Idempotency-Key,
 * each copied into a buffer of cap bytes. False when there was none. */
bool fake_http_signed(fake_http_t *f, const char *key, char *id, char *ts, char *sig, char *body,
                      size_t cap);

#endif
