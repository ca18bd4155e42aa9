/*
 * http.h - the libcurl multi engine HTTP providers share, and the plain
 * request / response structs their pure builders and classifiers use.
 *
 * One engine per dispatcher thread: a curl multi handle with HTTP/2
 * multiplexing (CURLPIPE_MULTIPLEX; easy handles set PIPEWAIT so new
 * requests wait for a stream on an existing connection instead of opening
 * another), connections reused across requests, and a timeout per request.
 * One thread drives hundreds of streams by calling http_engine_run().
 *
 * A provider owns its transfers (http_xfer_t, one per in-flight slot, kept
 * and reused so steady state allocates nothing per request but curl's
 * header list), and starts them on the engine; when a transfer ends the
 * engine calls the transfer's done callback with the response, from inside
 * http_engine_run(), on the engine's thread.
 *
 * Threads: everything here runs on the one thread that owns the engine.
 */
#ifndef HERALD_PROVIDER_HTTP_H
#define HERALD_PROVIDER_HTTP_H

#include "core/buf.h"
#include "core/common.h"

typedef struct http_engine http_engine_t;

/* What a builder produces: pure data, no curl. */
typedef struct prov_http_req {
    const char *method;         /* "POST" */
    buf_t url;                  /* NUL-terminated */
    buf_t headers;              /* "Name: value\n" lines */
    buf_t body;
    long timeout_ms;            /* whole request, 0 = engine default */
    /* TLS, each borrowed (config values) and NULL for curl's default:
     * the CA bundle that verifies the server (a test CA), and a client
     * certificate + key in PEM (APNs certificate auth). */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
} prov_http_req_t;

void prov_http_req_init(prov_http_req_t *r);
void prov_http_req_reset(prov_http_req_t *r);
void prov_http_req_release(prov_http_req_t *r);

/* How a transfer ended, before any HTTP status. */
typedef enum prov_http_xfer_result {
    HTTP_DONE = 0,              /* a response arrived; status is set */
    HTTP_TIMEOUT,               /* no (whole) response within the timeout */
    HTTP_CONNECT,               /* could not connect / resolve / TLS handshake */
    HTTP_SHUTDOWN,              /* cancelled: the engine is closing */
    HTTP_FAILED,                /* anything else (connection dropped mid-way, ...) */
} prov_http_xfer_result_t;

/* What a classifier sees: pure data. */
typedef struct prov_http_resp {
    prov_http_xfer_result_t result;
    const char *error;          /* transport error text when result != HTTP_DONE */
    /* HTTP status; 0 without a response. SMTP transfers: the last reply
     * code the server sent, whatever the result (a refused RCPT ends the
     * transfer as HTTP_FAILED with status 550). */
    int status;
    int curl_code;              /* libcurl's CURLcode (0 = CURLE_OK), for the detail */
    const char *reason;         /* status line reason ("" on HTTP/2) */
    const char *headers;        /* the response's header lines as received */
    size_t headers_len;
    const char *body;
    size_t body_len;
    int64_t now_ms;             /* wall clock when it ended (for Retry-After dates) */
} prov_http_resp_t;

/* Finds header `name` (case-insensitive) in r's header lines; the value,
 * trimmed, is (*v, *n). False when absent. */
bool prov_http_header(const prov_http_resp_t *r, const char *name, const char **v, size_t *n);

/* Retry-After (RFC 9110 §10.2.3) as milliseconds from now_ms: delta-seconds
 * or an HTTP-date; 0 when absent, unparseable or in the past. Capped at
 * one day. */
int64_t http_retry_after_ms(const char *v, size_t n, int64_t now_ms);

/* What an SMTP builder produces (smtp.h): one message to one recipient,
 * pure data. The engine turns it into a MIME message (curl_mime): the
 * header lines, then a multipart/alternative body of the parts, each
 * quoted-printable. */
#define PROV_SMTP_PARTS_MAX 2

typedef enum prov_smtp_tls {
    PROV_SMTP_TLS_TRY = 0,      /* STARTTLS when the server offers it */
    PROV_SMTP_TLS_REQUIRE,      /* STARTTLS or fail (smtps:// URLs are TLS from the start) */
    PROV_SMTP_TLS_NONE,         /* never STARTTLS */
} prov_smtp_tls_t;

typedef struct prov_smtp_part {
    const char *type;           /* "text/plain; charset=UTF-8" (static) */
    buf_t data;                 /* CRLF line ends */
} prov_smtp_part_t;

typedef struct prov_smtp_req {
    buf_t url;                  /* "smtp://host:port" (NUL-terminated) */
    buf_t mail_from;            /* envelope sender "<a@example.com>" (NUL-terminated) */
    buf_t rcpt;                 /* envelope recipient "<b@example.com>" (NUL-terminated) */
    /* Header lines "Name: value\n"; a line starting with a space continues
     * (folds) the previous one. No CR or LF inside a value. */
    buf_t headers;
    prov_smtp_part_t parts[PROV_SMTP_PARTS_MAX];
    int nparts;
    long timeout_ms;            /* whole transfer, 0 = engine default */
    prov_smtp_tls_t tls;
    /* Borrowed (config values), NULL for none / curl's default. */
    const char *username;
    const char *password;
    const char *ca_file;
} prov_smtp_req_t;

void prov_smtp_req_init(prov_smtp_req_t *r);
void prov_smtp_req_reset(prov_smtp_req_t *r);
void prov_smtp_req_release(prov_smtp_req_t *r);

/* ----------------------------------------------------------- engine */

hr_t http_engine_new(http_engine_t **out);
/* Cancels what is still running (each transfer completes with
 * HTTP_SHUTDOWN first) and frees the engine. */
void http_engine_free(http_engine_t *e);
/* Transfers started and not yet completed. */
int http_engine_active(const http_engine_t *e);
/* Counters since the engine started: transfers completed, and new
 * connections they opened (CURLINFO_NUM_CONNECTS summed: with HTTP/2
 * multiplexing, far fewer than transfers). */
void http_engine_stats(const http_engine_t *e, int64_t *transfers, int64_t *connects);
/* Drives transfers: waits up to timeout_ms for network activity, then
 * completes every transfer that ended. Returns how many completed. */
int http_engine_run(http_engine_t *e, int timeout_ms);

/* One transfer slot, owned by a provider and reused. */
typedef struct http_xfer http_xfer_t;
typedef void (*http_done_fn)(void *ud, http_xfer_t *x, const prov_http_resp_t *resp);

http_xfer_t *http_xfer_new(void);
/* Cancels x first if it is running. */
void http_xfer_free(http_xfer_t *x);
/* Stops x if it is running; its done callback runs with HTTP_SHUTDOWN. */
void http_xfer_cancel(http_xfer_t *x);
/* Starts req on e (req is copied where curl needs it; it may be reset
 * after the call). done(ud, x, resp) runs exactly once when it ends, from
 * http_engine_run() or http_engine_free(). HR_ERR if curl refuses it (then
 * no callback). */
hr_t http_xfer_start(http_engine_t *e, http_xfer_t *x, const prov_http_req_t *req, http_done_fn done,
                     void *ud);
/* The same for one SMTP message (libcurl's SMTP: EHLO, STARTTLS as
 * req->tls says, AUTH when a username is set, MAIL FROM, RCPT TO, DATA).
 * SMTP cannot carry several messages at once on a connection: each
 * running transfer holds one, and curl reuses connections from one
 * message to the next. resp->status is the last SMTP reply code. */
hr_t http_xfer_start_smtp(http_engine_t *e, http_xfer_t *x, const prov_smtp_req_t *req,
                          http_done_fn done, void *ud);

#endif
