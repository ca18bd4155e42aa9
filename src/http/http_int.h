/*
 * http_int.h - what the HTTP server (server.c), the router (router.c) and
 * the API (api_*.c, routes.c) share. Not for use outside src/http/.
 *
 * A request lives from the first libmicrohttpd callback to the completion
 * callback. Everything it owns (decoded path parameters, query values, the
 * body) is freed then; handlers borrow it and never free it.
 */
#ifndef HERALD_HTTP_INT_H
#define HERALD_HTTP_INT_H

#include "auth/auth.h"
#include "core/buf.h"
#include "http/http.h"
#include "model/event.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* Methods as bits, so a route table can say which it allows. */
enum http_method {
    HM_GET = 1u << 0,
    HM_HEAD = 1u << 1,
    HM_POST = 1u << 2,
    HM_PUT = 1u << 3,
    HM_DELETE = 1u << 4,
    HM_OPTIONS = 1u << 5,
    HM_OTHER = 1u << 6,
};

/* Media types a request body may carry. */
enum http_media {
    MEDIA_NONE = 0,
    MEDIA_JSON,
    MEDIA_CE,           /* application/cloudevents+json: one structured CloudEvent */
    MEDIA_CE_BATCH,     /* application/cloudevents-batch+json: an array */
};

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_HEADERS 6
#define HTTP_ID_MAX 200           /* bytes of a decoded id (path or body) */

typedef struct http_req http_req_t;
typedef struct http_resp http_resp_t;
typedef struct http_stream http_stream_t;
typedef void (*http_handler_fn)(http_req_t *rq, http_resp_t *rs);

/* Route flags. */
#define RT_BODY 1u      /* takes a JSON body (Content-Type checked, 415 otherwise) */
#define RT_EVENTS 2u    /* also accepts the CloudEvents media types */
#define RT_STORE 4u     /* needs app->store (503 without it) */
#define RT_BUS 8u       /* needs app->bus */
#define RT_OPS 16u      /* operations (health, metrics): served whatever the roles */
#define RT_OPEN 32u     /* no API key needed (health; provider callbacks, which sign) */
#define RT_METRICS 64u  /* open when auth.metrics_open = true, else as RT_NEED says */
/* The scopes (auth.h SCOPE_*) a route accepts, any of them; admin passes. */
#define RT_NEED(scopes) ((unsigned)(scopes) << 8)
#define RT_NEED_OF(flags) (((flags) >> 8) & 0xffu)
#define RT_SMALL 128u   /* body bounded by HTTP_SMALL_BODY, not http.max_body (413 above) */
/* Also opens to a user token (auth/user_token.h) for the path's {user_id}
 * (the first parameter): the in-app inbox routes. */
#define RT_USER (1u << 16)

#define HTTP_SMALL_BODY (16 * 1024)

/* A request body consumed while it arrives instead of buffered whole
 * (server.c, "streamed bodies"): for bodies far larger than http.max_body,
 * such as a bulk import. The route's handler still runs once at the end
 * and answers; it finds the consumer's state in rq->sink. Every function
 * runs on the request's connection thread. */
typedef struct http_body_stream {
    const char *media;          /* the one Content-Type accepted (415 otherwise) */
    /* Body bytes accepted: 413 before a byte is read when Content-Length
     * says more; a chunked body past it is no longer fed (rq->too_large is
     * set and the handler answers). */
    int64_t (*limit)(const config_t *cfg);
    /* Once the request passed every check on its headers, before the
     * first byte of body: the consumer's state (rq->sink). */
    void *(*start)(http_req_t *rq);
    /* The next piece of the body (pieces split anywhere, lines included).
     * false stops the feeding: the rest is read and dropped. */
    bool (*feed)(http_req_t *rq, void *state, const char *data, size_t n);
    /* Frees the state when the request ends (handler run or not). */
    void (*release)(void *state);
} http_body_stream_t;

/* One route: a method and a pattern of literal and "{name}" segments. The
 * names become problem "field" values when a parameter is invalid. */
typedef struct http_route {
    unsigned method;
    const char *pattern;
    http_handler_fn fn;
    unsigned flags;
    const http_body_stream_t *stream; /* NULL: the body (RT_BODY) is buffered whole */
} http_route_t;

/* The API's routes (routes.c): what http_start() serves. */
extern const http_route_t http_routes[];
extern const size_t http_nroutes;

/* http_start() serving another route table (borrowed until http_stop()):
 * for tests of the server itself. */
hr_t http_start_routes(app_t *app, const char *listen, const http_route_t *routes,
                       size_t nroutes, http_server_t **out);

typedef struct conn_track conn_track_t;

struct http_server {
    app_t *app;
    const http_route_t *routes;
    size_t nroutes;
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t streams_mu; /* guards streams and stopping */
    http_stream_t *streams;     /* streaming responses whose connection is open */
    bool stopping;              /* http_stop() has begun: new streams start ended */
    bool api;                   /* the process runs the ingest role: every route, not only RT_OPS */
    /* request deadlines (server.c, "connection deadlines") */
    pthread_mutex_t conns_mu;   /* guards conns, every track's fields, wd_stop */
    pthread_cond_t wd_cv;       /* wakes the watchdog to stop */
    conn_track_t *conns;        /* every open connection */
    pthread_t watchdog;
    bool wd_started, wd_stop;
    int64_t header_ns, body_ns; /* cfg http.header_timeout_ms, http.body_timeout_ms */
    char *tls_cert, *tls_key;   /* PEM text (libmicrohttpd keeps pointers); NULL = plain */
    /* GET /v1/ops/summary's cache of the DLQ's latest entries (api_summary.c):
     * rescanned only when the DLQ grew, at most every SUMMARY_DLQ_RESCAN_MS */
    pthread_mutex_t sum_mu;     /* guards the three below (held briefly) */
    pthread_mutex_t sum_scan_mu;/* held by the one request reading the DLQ (trylock) */
    int64_t sum_dlq_stamp;      /* dlq_size()'s stamp when sum_dlq_latest was read */
    int64_t sum_dlq_at_ms;      /* when it was read; 0 = never */
    json_t *sum_dlq_latest;     /* JSON array of entries, newest first; NULL = never read */
};

struct http_req {
    http_server_t *srv;
    app_t *app;
    struct MHD_Connection *conn;
    unsigned method;
    const char *method_name;
    const char *path;           /* raw (not decoded), owned by libmicrohttpd */
    const http_route_t *route;
    char *params[HTTP_MAX_PARAMS]; /* decoded path parameters, in pattern order */
    int nparams;
    int media;
    buf_t body;                 /* limited to cfg->http_max_body */
    bool too_large;
    size_t discarded;
    bool responded;
    int status;
    int64_t start_ns;
    conn_track_t *track;        /* the connection's deadline track (NULL if none) */
    bool started;               /* the access handler has seen the request */
    const char *target;         /* the raw request target as first seen (on_target) */
    size_t target_len;          /* its strlen() then */
    bool target_bad;            /* it holds a space or control character */
    const char *target_copy;    /* a copy of the target as first seen, query included (the
                                 * server splits and unescapes its buffer in place later) */
    char **owned;               /* freed with the request (req_keep) */
    int nowned, capowned;
    auth_ctx_t who;             /* the caller: its key's tenant and scopes (set before the
                                 * handler runs; tenant "default", every scope without auth) */
    bool user_token;            /* the caller is a user token for params[0] (RT_USER), not a key */
    /* streamed bodies (route->stream) */
    void *sink;                 /* the consumer's state (route->stream->start) */
    bool sink_stopped;          /* feed said stop: the rest is dropped */
    uint64_t streamed;          /* body bytes received */
    uint64_t progress;          /* bytes since the body deadline was last renewed */
};

struct http_resp {
    int status;
    char *body;                 /* malloc'd; handed to libmicrohttpd */
    size_t len;
    const char *content_type;
    int nhdr;
    struct {
        const char *name;
        char value[160];
    } hdr[HTTP_MAX_HEADERS];
    http_stream_t *stream;      /* set by resp_stream(): the body comes from it */
};

/* ---- router.c ---- */

/* Matches a raw path against the server's route table.
 * HR_OK: *route set, params decoded into rq->params.
 * HR_NOTFOUND: no route has this path.
 * HR_DECLINED: the path exists but not with this method; *allow = method bits.
 * HR_INVALID: a path parameter is not a valid id; pb names it. */
hr_t router_match(http_req_t *rq, unsigned *allow, problem_t *pb);
/* "GET, HEAD, PUT" for a method bit set. */
void router_allow_str(unsigned allow, char *out, size_t len);

/* Percent-decodes s[0..n) into a new NUL-terminated string (plus_space:
 * '+' means ' ', as in query strings). false on a malformed escape. */
bool http_pct_decode(const char *s, size_t n, bool plus_space, char **out, size_t *out_len);
/* Percent-encodes everything but unreserved characters (RFC 3986). */
void http_pct_encode(buf_t *b, const char *s);
/* An id: 1..HTTP_ID_MAX bytes of valid UTF-8 without control characters. */
bool http_id_valid(const char *s, size_t n);
/* Valid UTF-8 without control characters (any length). */
bool http_text_printable(const char *s, size_t n);

/* ---- server.c: request and response helpers for handlers ---- */

/* Keeps p until the request ends; returns p. */
void *req_keep(http_req_t *rq, void *p);
/* A query parameter, percent-decoded; NULL when absent. *bad set when the
 * value has a malformed escape or decodes to a control character such as
 * "%00" (the caller answers 400 naming it). */
const char *req_query(http_req_t *rq, const char *name, bool *bad);

/* A request header's value (case-insensitive name), NULL when absent.
 * Owned by libmicrohttpd; valid until the request ends. */
const char *req_header(http_req_t *rq, const char *name);
/* How many times the request carries header `name` (case-insensitive). */
int req_header_count(http_req_t *rq, const char *name);

/* Answers doc (reference stolen) as application/json. */
void resp_json(http_resp_t *rs, int status, json_t *doc);
/* Answers an RFC 9457 problem. field may be NULL. type NULL = about:blank. */
void resp_problem(http_resp_t *rs, int status, const char *type, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Same with extension members (reference stolen; may be NULL). */
void resp_problem_ext(http_resp_t *rs, int status, const char *type, const char *field,
                      json_t *ext, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void resp_text(http_resp_t *rs, int status, const char *content_type, char *body, size_t len);
void resp_header(http_resp_t *rs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- server.c: streaming responses ----
 *
 * A handler whose body is produced over time (Server-Sent Events) answers
 * with resp_stream(); the server sends the status and headers, then what a
 * producer writes to the stream, chunked, as it arrives, until the producer
 * closes the stream or the client goes away.
 *
 * Bounded: at most queue_max bytes wait per connection. A write that does
 * not fit queues nothing and returns HR_AGAIN; the producer decides whether
 * to retry later, drop the data, or close the stream (a slow client).
 * While the queue is empty the connection is parked (suspended), costing no
 * polling; a write wakes it.
 *
 * Ownership: resp_stream() returns the producer's reference; the producer
 * must call http_stream_close() exactly once, also after a write said
 * HR_CLOSED. The connection holds the other reference and drops it when it
 * ends. Threads: write and close from any one thread at a time; the
 * connection side runs on the server's threads. http_stop() ends every open
 * stream (writes then say HR_CLOSED); the producer still closes its own. */

/* Makes rs a streaming answer (status, content_type; no body). Returns the
 * producer's reference. Called from a handler, at most once per request. */
http_stream_t *resp_stream(http_req_t *rq, http_resp_t *rs, int status, const char *content_type,
                           size_t queue_max);
/* Queues data for the client. HR_OK; HR_AGAIN when it does not fit in the
 * queue now (nothing queued); HR_CLOSED when the client has gone or the
 * server is stopping; HR_INVALID when len exceeds queue_max (it never will
 * fit). */
hr_t http_stream_write(http_stream_t *st, const void *data, size_t len);
/* Bytes queued and not yet handed to the connection. */
size_t http_stream_queued(http_stream_t *st);
/* Has the client gone (or the server begun to stop)? Writes then say HR_CLOSED. */
bool http_stream_gone(http_stream_t *st);
/* Ends the body once the queued bytes are sent, and drops the producer's
 * reference: st must not be used after. */
void http_stream_close(http_stream_t *st);

/* Problem type URIs. */
#define PROBLEM_MALFORMED "urn:herald:problem:malformed-body"
#define PROBLEM_PARAM "urn:herald:problem:invalid-parameter"
#define PROBLEM_VALIDATION "urn:herald:problem:validation"
#define PROBLEM_UNAVAILABLE "urn:herald:problem:unavailable"
#define PROBLEM_UNAUTHENTICATED "urn:herald:problem:unauthenticated"
#define PROBLEM_FORBIDDEN "urn:herald:problem:forbidden"
#define PROBLEM_NO_SPACE "urn:herald:problem:no-space"

#endif
