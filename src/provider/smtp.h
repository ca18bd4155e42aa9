/*
 * smtp.h - the e-mail provider's pure parts: the message builder and the
 * reply classifier (smtp.c). Both are pure functions of their inputs, so
 * tests state the exact message and the class of each reply
 * (tests/unit/provider/test_smtp.c); the provider itself sends through
 * libcurl's SMTP on the dispatcher thread's engine (http.h).
 *
 * The message: From = from (with from_name), To = the notification's
 * address, Subject = its title (RFC 2047 encoded words when not plain
 * ASCII), Date, Message-ID = <notification id>@message_id_domain (a retry
 * carries the same id), and a multipart/alternative body: text/plain (the
 * body) and text/html (the metadata object's "html" string, else the body
 * HTML-escaped with <br> line breaks), UTF-8, quoted-printable.
 *
 * Header injection: no CR or LF from a notification reaches a header line.
 * An address that is not one plain address is refused (PERMANENT); control
 * characters in the title become spaces; the configured from / from_name
 * are checked when the provider opens.
 *
 * Config (provider.<name>.*): url (required: smtp://host:port, or smtps://
 * for TLS from the start), from (required), from_name, message_id_domain
 * (default: the domain of from), tls = try | require | none (STARTTLS;
 * default try), username, password or password_file (never logged),
 * ca_file, timeout_ms (default 30000), max_in_flight (default 4: one
 * message per connection at a time).
 */
#ifndef HERALD_PROVIDER_SMTP_H
#define HERALD_PROVIDER_SMTP_H

#include "model/notif.h"
#include "provider/http.h"
#include "provider/provider.h"

typedef struct smtp_conf {
    const char *url;
    const char *from;               /* the sender address */
    const char *from_name;          /* display name; NULL = none */
    const char *message_id_domain;  /* right side of Message-ID */
    prov_smtp_tls_t tls;
    const char *username;           /* NULL = no AUTH */
    const char *password;
    const char *ca_file;
    long timeout_ms;
} smtp_conf_t;

/* The Message-ID of n without angle brackets: "<id>@<domain>", the id as
 * it is when it is made of letters, digits and ._-+= only, else in hex.
 * Returns the length written (truncated to fit out, NUL-terminated). */
size_t smtp_message_id(const smtp_conf_t *c, const notif_t *n, char *out, size_t out_len);

/* Fills req (reset first) with the message for n, dated now_ms (wall
 * clock, ms). HR_INVALID with why filled when n cannot be sent as mail (an
 * address that is not one plain address): the caller completes it as
 * PERMANENT. */
hr_t smtp_build(const smtp_conf_t *c, const notif_t *n, int64_t now_ms, prov_smtp_req_t *req,
                char *why, size_t why_len);

/* Classes the end of a transfer (r->status = the last SMTP reply code,
 * r->curl_code = libcurl's result, r->headers = the server's reply lines):
 *   2xx                                  -> OK, msg_id = message_id
 *   550, 551, 553 refusing the recipient -> PERMANENT, address_invalid
 *   530, 534, 535 (auth), login denied    -> FATAL
 *   5xx refusing our sender (MAIL FROM)   -> FATAL
 *   other 5xx                            -> PERMANENT
 *   4xx (421, 450, 451, 452, ...)        -> RETRY
 *   STARTTLS required but not offered,
 *   a server certificate that does not verify -> FATAL
 *   timeout, connection, shutdown, a connection dropped -> RETRY
 * code is the reply code (0 without one); error is "SMTP <reply line>"
 * with curl's reason. */
void smtp_classify(const prov_http_resp_t *r, const char *message_id, send_result_t *res);

#endif
