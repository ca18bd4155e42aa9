/*
 * server.c - the libmicrohttpd glue: daemon options, the request lifecycle,
 * body limits, and the response and problem helpers handlers use.
 *
 * DESIGN: libmicrohttpd calls the access handler several times per request:
 * once when the headers are in, once per piece of body, once more at the
 * end. Everything that can be decided from the headers is decided on the
 * first call - route (404/405), path parameters (400), Content-Length over
 * the limit (413), Content-Type (415) - and answered before a byte of body
 * is read, so a client sending "Expect: 100-continue" never uploads it.
 * A body without Content-Length (chunked) is buffered up to the limit and
 * then discarded while counting; far past the limit the connection is
 * dropped. The handler runs once, on the final call, with the whole body.
 *
 * Streamed bodies: a route with a body stream (http_body_stream_t; the
 * bulk import) is not buffered. Its consumer gets each piece as
 * libmicrohttpd hands it over (at most the connection's buffer, 128 KiB)
 * and does its work there, on the connection's thread, so the client is
 * held back by TCP while the store writes: memory stays bounded whatever
 * the body's size. The limit is the stream's own (a config key), checked
 * against Content-Length first. The body deadline would cut a large upload
 * short, so it is renewed each time another HTTP_STREAM_PROGRESS bytes
 * have arrived; the consumer's own time does not count against the client.
 * A trickle below that rate still meets the deadline.
 *
 * Streaming responses (resp_stream) are read by libmicrohttpd through a
 * content reader callback from a bounded byte queue the producer fills from
 * its own thread. With the queue empty the reader suspends the connection
 * (libmicrohttpd would otherwise call it again at once, a busy loop) and the
 * next write or the close resumes it. libmicrohttpd must not be stopped with
 * a suspended connection, so the server keeps its open streams in a list
 * and http_stop() ends and resumes each one first.
 *
 * Request framing: a space, control character or NUL in the request
 * target, "%00" in a query value, and Content-Length given twice or beside
 * Transfer-Encoding are answered 400 problem+json (on_target,
 * target_refused, early_checks, req_query). What libmicrohttpd refuses
 * while parsing, before the access handler runs - a malformed request line
 * or header, a request head over the connection memory, an unsupported HTTP
 * version, broken chunked framing - it answers itself with a fixed HTML
 * page: libmicrohttpd 0.9.75 offers no hook to replace those bodies.
 *
 * Connection deadlines: libmicrohttpd's own timeout is an idle timeout, so
 * a client sending a byte every few seconds keeps a half-sent request open
 * for ever, and a thousand such connections take every slot. The server
 * therefore tracks each connection (MHD_OPTION_NOTIFY_CONNECTION) with a
 * deadline for its current phase: the request line and headers must arrive
 * within http.header_timeout_ms of the connection opening or of the
 * previous answer on it, the body within http.body_timeout_ms of the
 * headers; while a handler runs or a response streams there is none. A
 * watchdog thread shuts down (shutdown(2), not close: libmicrohttpd owns the
 * descriptor) the socket of every connection past its deadline; the
 * connection's thread then sees the end of the stream and closes it.
 * libmicrohttpd reports a connection closed before it closes the socket,
 * and the watchdog only touches tracked sockets under conns_mu, so it never
 * shuts down a reused descriptor. Per-client limits
 * (http.per_client_connections) keep one address from holding every slot
 * in the meantime.
 *
 * Threads: every callback runs on one of the pool's threads; a request is
 * only ever touched by the thread that owns its connection. A stream is
 * shared by its connection's thread and its producer, under st->mu; the
 * server's list of streams is under streams_mu (never taken inside st->mu).
 */
#include "http/http_int.h"

#include "auth/user_token.h"

#include "core/cond.h"
#include "core/file.h"
#include "core/log.h"
#include "core/scratch.h"

#include <microhttpd.h>
#include <openssl/crypto.h>

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_CONN_TIMEOUT_S 30u     /* idle connection timeout */
#define HTTP_CONN_MEMORY (128u * 1024u) /* per-connection read/write buffer */
#define HTTP_BACKLOG 1024u
/* A chunked body is drained up to this multiple of the limit before the
 * connection is dropped instead of answered. */
#define HTTP_DISCARD_FACTOR 4
/* Largest piece a streaming response hands libmicrohttpd at once. */
#define HTTP_STREAM_BLOCK 4096u
/* A streamed request body renews its deadline after this many bytes. */
#define HTTP_STREAM_PROGRESS (64u * 1024u)

/* ---------------------------------------------------------------- helpers */

void *req_keep(http_req_t *rq, void *p)
{
    if (rq->nowned == rq->capowned) {
        rq->capowned = rq->capowned ? rq->capowned * 2 : 8;
        rq->owned = xrealloc(rq->owned, (size_t)rq->capowned * sizeof(*rq->owned));
    }
    rq->owned[rq->nowned++] = p;
    return p;
}

const char *req_query(http_req_t *rq, const char *name, bool *bad)
{
    const char *raw = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
    char *v = NULL;
    size_t n = 0;
    *bad = false;
    if (!raw) return NULL;
    if (!http_pct_decode(raw, strlen(raw), true, &v, &n)) {
        *bad = true;
        return NULL;
    }
    /* "%00" would cut the value short; no value of this API holds controls */
    if (!http_text_printable(v, n)) {
        free(v);
        *bad = true;
        return NULL;
    }
    return req_keep(rq, v);
}

const char *req_header(http_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

typedef struct header_count {
    const char *name;
    int n;
} header_count_t;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    header_count_t *c = cls;
    if (strcasecmp(key, c->name) == 0) c->n++;
    return MHD_YES;
}

int req_header_count(http_req_t *rq, const char *name)
{
    header_count_t c = {name, 0};
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_header, &c);
    return c.n;
}

void resp_text(http_resp_t *rs, int status, const char *content_type, char *body, size_t len)
{
    free(rs->body);
    rs->status = status;
    rs->content_type = content_type;
    rs->body = body;
    rs->len = len;
}

void resp_json(http_resp_t *rs, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) {
        /* only on allocation failure or invalid UTF-8 in a string */
        text = xstrdup("{\"type\":\"about:blank\",\"title\":\"Internal Server Error\","
                       "\"status\":500}");
        status = 500;
        resp_text(rs, status, "application/problem+json", text, strlen(text));
        return;
    }
    resp_text(rs, status, "application/json", text, strlen(text));
}

void resp_header(http_resp_t *rs, const char *name, const char *fmt, ...)
{
    int i;
    for (i = 0; i < rs->nhdr; i++)
        if (strcasecmp(rs->hdr[i].name, name) == 0) break;
    if (i == HTTP_MAX_HEADERS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->hdr[i].value, sizeof(rs->hdr[i].value), fmt, ap);
    va_end(ap);
    rs->hdr[i].name = name;
    if (i == rs->nhdr) rs->nhdr++;
}

static const char *status_title(int status)
{
    const char *t = MHD_get_reason_phrase_for((unsigned)status);
    return t && *t ? t : "Error";
}

static void vproblem(http_resp_t *rs, int status, const char *type, const char *field,
                     json_t *ext, const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string(type ? type : "about:blank"));
    json_object_set_new(p, "title", json_string(status_title(status)));
    json_object_set_new(p, "status", json_integer(status));
    /* detail may quote client input: keep it valid UTF-8 for the encoder */
    json_t *d = json_string(detail);
    json_object_set_new(p, "detail", d ? d : json_string("(detail not printable)"));
    if (field) {
        json_t *f = json_string(field);
        json_object_set_new(p, "field", f ? f : json_string("(field not printable)"));
    }
    if (ext) {
        json_object_update_missing(p, ext);
        json_decref(ext);
    }
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    if (!text) text = xstrdup("{\"type\":\"about:blank\",\"status\":500}");
    resp_text(rs, status, "application/problem+json", text, strlen(text));
}

void resp_problem(http_resp_t *rs, int status, const char *type, const char *field,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(rs, status, type, field, NULL, fmt, ap);
    va_end(ap);
}

void resp_problem_ext(http_resp_t *rs, int status, const char *type, const char *field,
                      json_t *ext, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(rs, status, type, field, ext, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------- streaming */

struct http_stream {
    pthread_mutex_t mu;
    int refs;                   /* the producer's and the connection's */
    struct MHD_Connection *conn;
    http_server_t *srv;         /* NULL once unlinked from srv->streams */
    char *q;                    /* queued bytes: q[head .. head + len) */
    size_t head, len, cap;
    bool ended;                 /* the producer closed: end after the queue */
    bool gone;                  /* the connection ended or the server stops */
    bool suspended;             /* the reader parked the connection */
    http_stream_t *prev, *next; /* srv->streams */
};

static void stream_unref(http_stream_t *st)
{
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left) return;
    pthread_mutex_destroy(&st->mu);
    free(st->q);
    free(st);
}

/* st->mu held. Wakes a parked connection. */
static void stream_wake(http_stream_t *st)
{
    if (!st->suspended) return;
    st->suspended = false;
    MHD_resume_connection(st->conn);
}

/* libmicrohttpd's content reader: the connection's thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    http_stream_t *st = cls;
    ssize_t n;
    pthread_mutex_lock(&st->mu);
    if (st->len) {
        size_t k = st->len < max ? st->len : max;
        memcpy(out, st->q + st->head, k);
        st->head += k;
        st->len -= k;
        if (!st->len) st->head = 0;
        n = (ssize_t)k;
    } else if (st->ended || st->gone) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        st->suspended = true;
        MHD_suspend_connection(st->conn);
        n = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* libmicrohttpd is done with the response: the connection has ended (or
 * the response was never sent). */
static void stream_done(void *cls)
{
    http_stream_t *st = cls;
    http_server_t *srv;
    pthread_mutex_lock(&st->mu);
    st->gone = true;
    st->conn = NULL;
    srv = st->srv;
    pthread_mutex_unlock(&st->mu);
    if (srv) {
        pthread_mutex_lock(&srv->streams_mu);
        if (st->prev) st->prev->next = st->next;
        else srv->streams = st->next;
        if (st->next) st->next->prev = st->prev;
        st->srv = NULL;
        pthread_mutex_unlock(&srv->streams_mu);
    }
    stream_unref(st);
}

http_stream_t *resp_stream(http_req_t *rq, http_resp_t *rs, int status, const char *content_type,
                           size_t queue_max)
{
    assert(!rs->stream && queue_max > 0);
    http_stream_t *st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->mu, NULL);
    st->refs = 2;
    st->conn = rq->conn;
    st->cap = queue_max;
    st->q = xmalloc(queue_max);
    http_server_t *srv = rq->srv;
    pthread_mutex_lock(&srv->streams_mu);
    if (srv->stopping) {
        st->gone = true;
    } else {
        st->srv = srv;
        st->next = srv->streams;
        if (st->next) st->next->prev = st;
        srv->streams = st;
    }
    pthread_mutex_unlock(&srv->streams_mu);
    resp_text(rs, status, content_type, NULL, 0);
    rs->stream = st;
    return st;
}

hr_t http_stream_write(http_stream_t *st, const void *data, size_t len)
{
    hr_t r = HR_OK;
    pthread_mutex_lock(&st->mu);
    if (st->gone || st->ended) {
        r = HR_CLOSED;
    } else if (len > st->cap) {
        r = HR_INVALID;
    } else if (len > st->cap - st->len) {
        r = HR_AGAIN;
    } else {
        if (st->head + st->len + len > st->cap) {
            memmove(st->q, st->q + st->head, st->len);
            st->head = 0;
        }
        memcpy(st->q + st->head + st->len, data, len);
        st->len += len;
        stream_wake(st);
    }
    pthread_mutex_unlock(&st->mu);
    return r;
}

size_t http_stream_queued(http_stream_t *st)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->len;
    pthread_mutex_unlock(&st->mu);
    return n;
}

bool http_stream_gone(http_stream_t *st)
{
    pthread_mutex_lock(&st->mu);
    bool gone = st->gone;
    pthread_mutex_unlock(&st->mu);
    return gone;
}

void http_stream_close(http_stream_t *st)
{
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    if (!st->gone) stream_wake(st);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

/* http_stop(): ends every open stream and resumes the parked ones, so that
 * no connection is suspended when the daemon stops. */
static void streams_stop(http_server_t *srv)
{
    pthread_mutex_lock(&srv->streams_mu);
    srv->stopping = true;
    for (http_stream_t *st = srv->streams; st; st = st->next) {
        pthread_mutex_lock(&st->mu);
        st->gone = true;
        stream_wake(st);
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&srv->streams_mu);
}

/* ---------------------------------------------------- connection deadlines */

enum { CT_HEAD, CT_BODY, CT_BUSY };

struct conn_track {
    conn_track_t *prev, *next; /* srv->conns */
    int fd;
    int phase;                 /* CT_*: what the connection is waiting for */
    int64_t deadline_ns;       /* hclock_mono_ns() bound of the phase; 0 = none */
    bool cut;                  /* the watchdog shut its socket down */
};

/* Any thread: moves ct to phase (deadline from now; CT_BUSY has none). */
static void track_phase(http_server_t *srv, conn_track_t *ct, int phase)
{
    if (!ct) return;
    int64_t now = hclock_mono_ns();
    pthread_mutex_lock(&srv->conns_mu);
    ct->phase = phase;
    ct->deadline_ns = phase == CT_HEAD   ? now + srv->header_ns
                      : phase == CT_BODY ? now + srv->body_ns
                                         : 0;
    pthread_mutex_unlock(&srv->conns_mu);
}

/* Any thread: ct is busy (no deadline); returns how much of its body
 * deadline was left, for track_resume. */
static int64_t track_pause(http_server_t *srv, conn_track_t *ct)
{
    if (!ct) return 0;
    int64_t now = hclock_mono_ns();
    pthread_mutex_lock(&srv->conns_mu);
    int64_t left = ct->deadline_ns ? ct->deadline_ns - now : srv->body_ns;
    ct->phase = CT_BUSY;
    ct->deadline_ns = 0;
    pthread_mutex_unlock(&srv->conns_mu);
    return left;
}

/* Back to waiting for body with `left` of the deadline remaining. */
static void track_resume(http_server_t *srv, conn_track_t *ct, int64_t left)
{
    if (!ct) return;
    int64_t now = hclock_mono_ns();
    pthread_mutex_lock(&srv->conns_mu);
    ct->phase = CT_BODY;
    ct->deadline_ns = now + (left > 0 ? left : 1);
    pthread_mutex_unlock(&srv->conns_mu);
}

static conn_track_t *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd: a connection opened or closed (before its socket is). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server_t *srv = cls;
    conn_track_t *ct = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) return;
        ct = xcalloc(1, sizeof(*ct));
        ct->fd = ci->connect_fd;
        pthread_mutex_lock(&srv->conns_mu);
        ct->phase = CT_HEAD;
        ct->deadline_ns = hclock_mono_ns() + srv->header_ns;
        ct->next = srv->conns;
        if (ct->next) ct->next->prev = ct;
        srv->conns = ct;
        pthread_mutex_unlock(&srv->conns_mu);
        *socket_context = ct;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && ct) {
        pthread_mutex_lock(&srv->conns_mu);
        if (ct->prev) ct->prev->next = ct->next;
        else srv->conns = ct->next;
        if (ct->next) ct->next->prev = ct->prev;
        pthread_mutex_unlock(&srv->conns_mu);
        free(ct);
        *socket_context = NULL;
    }
}

/* The watchdog's period: a quarter of the shorter deadline, 10..250 ms. */
static int64_t watchdog_tick_ns(const http_server_t *srv)
{
    int64_t t = (srv->header_ns < srv->body_ns ? srv->header_ns : srv->body_ns) / 4;
    if (t < 10 * 1000000LL) t = 10 * 1000000LL;
    if (t > 250 * 1000000LL) t = 250 * 1000000LL;
    return t;
}

static void *watchdog_main(void *arg)
{
    http_server_t *srv = arg;
    int64_t tick = watchdog_tick_ns(srv);
    pthread_mutex_lock(&srv->conns_mu);
    while (!srv->wd_stop) {
        int64_t now = hclock_mono_ns();
        int cut_head = 0, cut_body = 0;
        for (conn_track_t *ct = srv->conns; ct; ct = ct->next) {
            if (ct->cut || !ct->deadline_ns || now < ct->deadline_ns) continue;
            ct->cut = true;
            shutdown(ct->fd, SHUT_RDWR);
            if (ct->phase == CT_HEAD) cut_head++;
            else cut_body++;
        }
        if (cut_head + cut_body) {
            METRIC_ADD(http_deadline_closed, cut_head + cut_body);
            log_info("http",
                     "closed %d connection(s) whose request headers and %d whose body missed "
                     "the deadline",
                     cut_head, cut_body);
        }
        cond_wait_until(&srv->wd_cv, &srv->conns_mu, hclock_mono_ns() + tick);
    }
    pthread_mutex_unlock(&srv->conns_mu);
    return NULL;
}

static hr_t watchdog_start(http_server_t *srv)
{
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) != 0) return HR_ERR;
    srv->wd_started = true;
    return HR_OK;
}

static void watchdog_stop(http_server_t *srv)
{
    if (!srv->wd_started) return;
    pthread_mutex_lock(&srv->conns_mu);
    srv->wd_stop = true;
    pthread_cond_signal(&srv->wd_cv);
    pthread_mutex_unlock(&srv->conns_mu);
    pthread_join(srv->watchdog, NULL);
    srv->wd_started = false;
}

/* ---------------------------------------------------------- request cycle */

static unsigned method_bit(const char *m)
{
    static const struct {
        const char *name;
        unsigned bit;
    } tab[] = {{"GET", HM_GET},       {"HEAD", HM_HEAD},     {"POST", HM_POST},
               {"PUT", HM_PUT},       {"DELETE", HM_DELETE}, {"OPTIONS", HM_OPTIONS}};
    for (size_t i = 0; i < ARRAY_LEN(tab); i++)
        if (strcmp(tab[i].name, m) == 0) return tab[i].bit;
    return HM_OTHER;
}

/* The media type of the request body (parameters ignored), case-insensitive. */
static int media_of(struct MHD_Connection *conn)
{
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return MEDIA_NONE;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    static const struct {
        const char *name;
        int media;
    } tab[] = {{"application/json", MEDIA_JSON},
               {"application/cloudevents+json", MEDIA_CE},
               {"application/cloudevents-batch+json", MEDIA_CE_BATCH}};
    for (size_t i = 0; i < ARRAY_LEN(tab); i++)
        if (strlen(tab[i].name) == n && strncasecmp(ct, tab[i].name, n) == 0) return tab[i].media;
    return -1;
}

/* Is the request's Content-Type (parameters ignored) this one? */
static bool media_is(struct MHD_Connection *conn, const char *want)
{
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    return strlen(want) == n && strncasecmp(ct, want, n) == 0;
}

/* A response reading from rs->stream; the stream's connection reference
 * passes to it (dropped by stream_done, also when this fails). */
static struct MHD_Response *stream_response(http_resp_t *rs)
{
    http_stream_t *st = rs->stream;
    rs->stream = NULL;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK,
                                                               stream_read, st, stream_done);
    if (!r) stream_done(st);
    return r;
}

static enum MHD_Result send_resp(http_req_t *rq, http_resp_t *rs)
{
    struct MHD_Response *r;
    bool streaming = rs->stream != NULL;
    if (streaming) {
        free(rs->body);
        rs->body = NULL;
        if (!(r = stream_response(rs))) return MHD_NO;
    } else {
        if (!rs->body) {
            rs->body = xstrdup("");
            rs->len = 0;
        }
        r = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(rs->body);
            rs->body = NULL;
            return MHD_NO;
        }
        rs->body = NULL; /* the response owns it now */
    }
    if (rs->content_type && (rs->len || streaming))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (int i = 0; i < rs->nhdr; i++) MHD_add_response_header(r, rs->hdr[i].name, rs->hdr[i].value);
    enum MHD_Result ok = MHD_queue_response(rq->conn, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    rq->responded = true;
    rq->status = rs->status;
    return ok;
}

static void req_free(http_req_t *rq)
{
    if (rq->sink && rq->route && rq->route->stream) rq->route->stream->release(rq->sink);
    for (int i = 0; i < rq->nparams; i++) free(rq->params[i]);
    for (int i = 0; i < rq->nowned; i++) free(rq->owned[i]);
    free(rq->owned);
    scratch_give(SCRATCH_HTTP_BODY, rq->body.data, rq->body.cap); /* the thread's next body */
    free(rq);
}

/* libmicrohttpd's URI log callback: the request target as it arrived,
 * before the query is split off. Creates the request (*con_cls of the
 * access handler; on_completed frees it, also when libmicrohttpd refuses the
 * request before the handler sees it). */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_req_t *rq = xcalloc(1, sizeof(*rq));
    rq->target = uri;
    rq->target_len = strlen(uri);
    rq->target_copy = req_keep(rq, xstrdup(uri));
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) rq->target_bad = true;
    return rq;
}

/* A raw space, control character or NUL in the request target: libmicrohttpd
 * would hand on the target cut at the NUL, or with the space inside an id.
 * The NUL shows as a gap: libmicrohttpd splits the request line in place,
 * so the version follows the target's end, one separator later. */
static bool target_refused(http_req_t *rq, const char *version, http_resp_t *rs)
{
    bool nul = false;
    if (rq->target && version && *version && version > rq->target &&
        (size_t)(version - rq->target) <= HTTP_CONN_MEMORY)
        nul = (size_t)(version - rq->target) - 1 != rq->target_len;
    if (!rq->target_bad && !nul) return false;
    resp_header(rs, MHD_HTTP_HEADER_CONNECTION, "close");
    resp_problem(rs, 400, PROBLEM_PARAM, "target",
                 "the request target holds a %s; percent-encode it",
                 nul ? "NUL byte" : "space or control character");
    return true;
}

/* Counts the request's Content-Length and Transfer-Encoding headers. */
static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    int *n = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) n[0]++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) n[1]++;
    return MHD_YES;
}

/* The API key of the request: "Authorization: Bearer <key>" or
 * "X-API-Key: <key>". NULL when neither is there. */
static const char *request_key(struct MHD_Connection *conn, size_t *n)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (v && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7;
        while (*v == ' ') v++;
    } else {
        v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
    }
    *n = v ? strlen(v) : 0;
    return v;
}

/* A user token (auth/user_token.h) in place of an API key: it opens the
 * RT_USER routes of its own user (the path's first parameter) in its
 * tenant, nothing else. 401 when it is malformed, forged or expired, 403
 * on another route or for another user. */
static bool authorize_user(http_req_t *rq, http_resp_t *rs, const char *tok, size_t n)
{
    user_token_t t;
    hr_t r = rq->app->user_tokens
                 ? user_token_verify(rq->app->user_tokens, tok, n, hclock_now_ms() / 1000, &t)
                 : HR_INVALID;
    if (r != HR_OK) {
        resp_header(rs, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                    "Bearer realm=\"herald\", error=\"invalid_token\"");
        resp_problem(rs, 401, PROBLEM_UNAUTHENTICATED, "Authorization", "%s",
                     r == HR_TIMEOUT ? "the user token has expired"
                                     : "the user token is not valid (malformed or not signed here)");
        return false;
    }
    if (!(rq->route->flags & RT_USER)) {
        resp_problem(rs, 403, PROBLEM_FORBIDDEN, NULL,
                     "a user token opens its user's inbox only; this needs an API key");
        return false;
    }
    if (rq->nparams < 1 || strcmp(rq->params[0], t.user_id) != 0) {
        resp_problem(rs, 403, PROBLEM_FORBIDDEN, NULL, "this user token is for another user");
        return false;
    }
    memset(&rq->who, 0, sizeof(rq->who));
    snprintf(rq->who.tenant, sizeof(rq->who.tenant), "%s", t.tenant);
    rq->user_token = true;
    return true;
}

/* The key check (auth.h) for routes that need one; true to go on, false
 * when rs holds the 401, 403 or 503. */
static bool authorize(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    unsigned flags = rq->route->flags;
    if (!app->auth) {
        snprintf(rq->who.tenant, sizeof(rq->who.tenant), "%s", TENANT_DEFAULT);
        rq->who.scopes = SCOPE__ALL;
        return true;
    }
    if ((flags & RT_OPEN) ||
        ((flags & RT_METRICS) && strcmp(app->cfg->auth_metrics_open, "true") == 0))
        return true;
    size_t n;
    const char *key = request_key(rq->conn, &n);
    bool in_query = false;
    if (!key && (key = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "token"))) {
        n = strlen(key); /* EventSource cannot send headers; never logged */
        in_query = true;
    }
    if (user_token_like(key, n)) return authorize_user(rq, rs, key, n);
    if (in_query) {
        resp_problem(rs, 401, PROBLEM_UNAUTHENTICATED, "token",
                     "?token= takes a user token only; send API keys in Authorization");
        return false;
    }
    char need[64];
    switch (auth_check(app->auth, key, n, RT_NEED_OF(flags), &rq->who)) {
    case AUTH_OK:
        return true;
    case AUTH_MISSING:
        resp_header(rs, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"herald\"");
        resp_problem(rs, 401, PROBLEM_UNAUTHENTICATED, "Authorization",
                     "an API key is required: Authorization: Bearer <key> (herald keys create)");
        return false;
    case AUTH_INVALID:
        resp_header(rs, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                    "Bearer realm=\"herald\", error=\"invalid_token\"");
        resp_problem(rs, 401, PROBLEM_UNAUTHENTICATED, "Authorization",
                     "the API key is not valid (malformed, unknown or revoked)");
        return false;
    case AUTH_FORBIDDEN:
        resp_problem(rs, 403, PROBLEM_FORBIDDEN, NULL, "API key %s lacks the scope this needs (%s)",
                     rq->who.key_id, scopes_format(RT_NEED_OF(flags), need, sizeof(need)));
        return false;
    case AUTH_UNAVAILABLE:
    default:
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "the API key cannot be checked now");
        return false;
    }
}

/* First callback: everything decidable from the request line and headers.
 * Returns true when a response was produced in rs. */
static bool early_checks(http_req_t *rq, http_resp_t *rs)
{
    app_t *app = rq->app;
    unsigned allow = 0;
    problem_t pb = {{0}, {0}};
    char allow_s[80];

    if (rq->method == HM_OPTIONS && strcmp(rq->path, "*") == 0) {
        resp_header(rs, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        resp_text(rs, 204, NULL, NULL, 0);
        return true;
    }
    hr_t r = router_match(rq, &allow, &pb);
    switch (r) {
    case HR_OK:
        break;
    case HR_NOTFOUND:
        resp_problem(rs, 404, NULL, NULL, "no resource at this path");
        return true;
    case HR_DECLINED:
        router_allow_str(allow, allow_s, sizeof(allow_s));
        resp_header(rs, MHD_HTTP_HEADER_ALLOW, "%s", allow_s);
        if (rq->method == HM_OPTIONS) {
            resp_text(rs, 204, NULL, NULL, 0);
            return true;
        }
        resp_problem(rs, 405, NULL, NULL, "%s is not allowed here; allowed: %s",
                     rq->method_name, allow_s);
        return true;
    case HR_INVALID:
        resp_problem(rs, 400, PROBLEM_PARAM, pb.field, "%s", pb.detail);
        return true;
    default:
        resp_problem(rs, 500, NULL, NULL, "routing failed");
        return true;
    }

    if ((rq->route->flags & RT_SMALL) && rq->body.limit > HTTP_SMALL_BODY)
        rq->body.limit = HTTP_SMALL_BODY;
    if (rq->route->stream) rq->body.limit = (size_t)rq->route->stream->limit(app->cfg);
    if (!rq->srv->api && !(rq->route->flags & RT_OPS)) {
        resp_problem(rs, 404, NULL, NULL,
                     "this process does not run the ingest role: it serves /healthz, /readyz and "
                     "/metrics only");
        return true;
    }
    if (!authorize(rq, rs)) return true;
    /* two lengths, or a length beside chunked framing, let a proxy and this
     * server disagree about where the body ends (request smuggling) */
    int framing[2] = {0, 0};
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, count_framing, framing);
    if (framing[0] > 1 || (framing[0] && framing[1])) {
        resp_header(rs, MHD_HTTP_HEADER_CONNECTION, "close");
        resp_problem(rs, 400, NULL, "Content-Length", "%s",
                     framing[1] ? "Content-Length and Transfer-Encoding are both given"
                                : "Content-Length is given more than once");
        return true;
    }
    const char *cl =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end != cl && (errno == ERANGE || v > (unsigned long long)rq->body.limit)) {
            resp_problem(rs, 413, NULL, "body", "the body is %llu bytes; the limit is %zu", v,
                         rq->body.limit);
            return true;
        }
    }
    if (rq->route->stream) {
        const http_body_stream_t *bs = rq->route->stream;
        if (!media_is(rq->conn, bs->media)) {
            resp_header(rs, "Accept", "%s", bs->media);
            resp_problem(rs, 415, NULL, "Content-Type", "Content-Type must be %s", bs->media);
            return true;
        }
    } else if (rq->route->flags & RT_BODY) {
        int m = media_of(rq->conn);
        bool ok = m == MEDIA_JSON || ((rq->route->flags & RT_EVENTS) && m > MEDIA_JSON);
        if (!ok) {
            const char *types = (rq->route->flags & RT_EVENTS)
                                    ? "application/json, application/cloudevents+json, "
                                      "application/cloudevents-batch+json"
                                    : "application/json";
            resp_header(rs, "Accept", "%s", types);
            resp_problem(rs, 415, NULL, "Content-Type", "Content-Type must be %s", types);
            return true;
        }
        rq->media = m;
    }
    if (((rq->route->flags & RT_STORE) && !app->store) ||
        ((rq->route->flags & RT_BUS) && !app->bus)) {
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL,
                     "this process does not run the part that serves this path");
        return true;
    }
    return false;
}

/* A piece of a streamed body: fed to the route's consumer while under the
 * limit and not stopped, else counted and dropped. */
static enum MHD_Result stream_piece(http_req_t *rq, const char *data, size_t n)
{
    http_server_t *srv = rq->srv;
    size_t room = rq->streamed < rq->body.limit ? rq->body.limit - rq->streamed : 0;
    rq->streamed += n;
    if (!rq->too_large && rq->streamed > rq->body.limit) {
        /* the consumer gets the body up to the limit; the handler says the rest was not taken */
        if (room && !rq->sink_stopped && !rq->route->stream->feed(rq, rq->sink, data, room))
            rq->sink_stopped = true;
        rq->too_large = true;
        rq->discarded = 0;
    }
    if (rq->too_large || rq->sink_stopped) {
        rq->discarded += n;
        if (rq->too_large && rq->discarded > rq->body.limit * HTTP_DISCARD_FACTOR) {
            log_info("http", "%s %s: body far over the limit, dropping the connection",
                     rq->method_name, rq->path);
            return MHD_NO;
        }
        return MHD_YES;
    }
    int64_t left = track_pause(srv, rq->track);
    if (!rq->route->stream->feed(rq, rq->sink, data, n)) rq->sink_stopped = true;
    rq->progress += n;
    if (rq->progress >= HTTP_STREAM_PROGRESS) {
        rq->progress = 0;
        left = srv->body_ns;
    }
    track_resume(srv, rq->track, left);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_server_t *srv = cls;
    http_req_t *rq = *con_cls;
    http_resp_t rs;

    memset(&rs, 0, sizeof(rs));
    if (!rq || !rq->started) {
        if (!rq) rq = xcalloc(1, sizeof(*rq));
        rq->started = true;
        rq->srv = srv;
        rq->app = srv->app;
        rq->conn = conn;
        rq->method = method_bit(method);
        rq->method_name = method;
        rq->path = url;
        rq->start_ns = hclock_mono_ns();
        rq->track = track_of(conn);
        track_phase(srv, rq->track, CT_BODY);
        buf_init(&rq->body, (size_t)srv->app->cfg->http_max_body);
        rq->body.data = scratch_take(SCRATCH_HTTP_BODY, &rq->body.cap);
        *con_cls = rq;
        if (target_refused(rq, version, &rs) || early_checks(rq, &rs)) return send_resp(rq, &rs);
        if (rq->route->stream) rq->sink = rq->route->stream->start(rq);
        return MHD_YES;
    }
    if (*upload_data_size && rq->route && rq->route->stream && !rq->responded) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return stream_piece(rq, upload_data, n);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->responded) return MHD_YES;
        if (!rq->too_large && buf_append(&rq->body, upload_data, n) != HR_OK) {
            rq->too_large = true;
            buf_release(&rq->body);
        }
        if (rq->too_large) {
            rq->discarded += n;
            if (rq->discarded > rq->body.limit * HTTP_DISCARD_FACTOR) {
                log_info("http", "%s %s: body far over the limit, dropping the connection",
                         method, url);
                return MHD_NO;
            }
        }
        return MHD_YES;
    }
    if (rq->responded) return MHD_YES;
    if (rq->route->stream) { /* its handler answers, also for a body over the limit */
        track_phase(srv, rq->track, CT_BUSY);
        rq->route->fn(rq, &rs);
        if (!rs.status) resp_problem(&rs, 500, NULL, NULL, "the handler gave no answer");
    } else if (rq->too_large) {
        resp_problem(&rs, 413, NULL, "body", "the body is over the limit of %zu bytes",
                     rq->body.limit);
    } else {
        buf_cstr(&rq->body);
        track_phase(srv, rq->track, CT_BUSY); /* the handler and the answer take their time */
        rq->route->fn(rq, &rs);
        if (!rs.status) resp_problem(&rs, 500, NULL, NULL, "the handler gave no answer");
    }
    return send_resp(rq, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server_t *srv = cls;
    http_req_t *rq = *con_cls;
    if (!rq) return;
    if (!rq->started) { /* libmicrohttpd refused it before the handler saw it */
        req_free(rq);
        *con_cls = NULL;
        return;
    }
    /* the next request on this connection starts its header deadline now */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) track_phase(srv, track_of(conn), CT_HEAD);
    int cls_idx = (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->status >= 100 &&
                   rq->status < 600)
                      ? rq->status / 100
                      : 0;
    METRIC_ADD_AT(http_responses, cls_idx, 1);
    log_debug("http", "%s %s -> %d (%.3f ms)%s", rq->method_name, rq->path, rq->status,
              (double)(hclock_mono_ns() - rq->start_ns) / 1e6,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
    req_free(rq);
    *con_cls = NULL;
}

/* Keeps the path and query undecoded: router.c decodes each segment and
 * req_query() each value, so "%2F" in an id stays inside its segment. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* libmicrohttpd's messages, at most MHD_LOG_BURST a second: a flood of
 * refused connections would otherwise write a line for each. */
#define MHD_LOG_BURST 5
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window_ns;
    static int lines;
    static long suppressed;
    int64_t now = hclock_mono_ns();
    long dropped = 0;
    pthread_mutex_lock(&mu);
    if (now - window_ns >= 1000000000LL) {
        dropped = suppressed;
        suppressed = 0;
        lines = 0;
        window_ns = now;
    }
    bool show = lines < MHD_LOG_BURST;
    if (show) lines++;
    else suppressed++;
    pthread_mutex_unlock(&mu);
    if (dropped) log_warn("http", "%ld more libmicrohttpd messages in the last second", dropped);
    if (!show) return;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    log_warn("http", "%s", line);
}

/* ------------------------------------------------------------- lifecycle */

/* "HOST:PORT", "[V6]:PORT", ":PORT", "*:PORT" -> socket address. */
static hr_t parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
    char host[256];
    const char *port_s;
    if (!listen || !*listen) return HR_INVALID;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - listen - 1) >= sizeof(host)) return HR_INVALID;
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        port_s = rb + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof(host)) return HR_INVALID;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port_s = colon + 1;
    }
    char *end = NULL;
    errno = 0;
    long port = strtol(port_s, &end, 10);
    if (errno || end == port_s || *end || port < 0 || port > 65535) return HR_INVALID;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    const char *node = (host[0] == '\0' || strcmp(host, "*") == 0) ? NULL : host;
    if (!node) hints.ai_family = AF_INET;
    int gai = getaddrinfo(node, "0", &hints, &res); /* port set below */
    if (gai != 0 || !res) {
        log_error("http", "cannot resolve listen host '%s': %s", host, gai_strerror(gai));
        return HR_INVALID;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    *v6 = ss->ss_family == AF_INET6;
    if (*v6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    return HR_OK;
}

static void server_free(http_server_t *s)
{
    if (s->tls_key) {
        OPENSSL_cleanse(s->tls_key, strlen(s->tls_key));
        free(s->tls_key);
    }
    free(s->tls_cert);
    pthread_mutex_destroy(&s->streams_mu);
    pthread_mutex_destroy(&s->conns_mu);
    pthread_mutex_destroy(&s->sum_mu);
    pthread_mutex_destroy(&s->sum_scan_mu);
    json_decref(s->sum_dlq_latest);
    pthread_cond_destroy(&s->wd_cv);
    free(s);
}

/* Reads a PEM file for TLS into a NUL-terminated string (libmicrohttpd
 * takes the certificate and key as text). NULL with a log line naming the
 * setting (never the content) when it cannot. */
static char *read_pem(const char *key, const char *path)
{
    char *p = NULL, why[256];
    size_t n = 0;
    if (file_read_small(path, 1 << 20, &p, &n, why, sizeof(why)) != HR_OK) {
        log_error("http", "%s: %s", key, why);
        return NULL;
    }
    if (n == 0 || memchr(p, '\0', n) || !memmem(p, n, "-----BEGIN ", 11)) {
        log_error("http", "%s: %s is not a PEM file of at most 1 MiB", key, path);
        file_secret_free(p, n);
        return NULL;
    }
    return p;
}

/* Loads http.tls_cert_file and http.tls_key_file into s: HR_OK when both are
 * empty (plain HTTP) or both load; HR_INVALID when only one is set or a file
 * cannot be read. */
static hr_t tls_load(http_server_t *s, const config_t *cfg)
{
    const char *cert = cfg->http_tls_cert_file, *key = cfg->http_tls_key_file;
    bool has_cert = cert && *cert, has_key = key && *key;
    if (!has_cert && !has_key) return HR_OK;
    if (has_cert != has_key) {
        log_error("http", "http.tls_cert_file and http.tls_key_file must be set together");
        return HR_INVALID;
    }
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        log_error("http", "http.tls_cert_file: this libmicrohttpd has no TLS support");
        return HR_INVALID;
    }
    s->tls_cert = read_pem("http.tls_cert_file", cert);
    s->tls_key = s->tls_cert ? read_pem("http.tls_key_file", key) : NULL;
    return s->tls_key ? HR_OK : HR_INVALID;
}

hr_t http_start(app_t *app, const char *listen, http_server_t **out)
{
    return http_start_routes(app, listen, http_routes, http_nroutes, out);
}

hr_t http_start_routes(app_t *app, const char *listen, const http_route_t *routes,
                       size_t nroutes, http_server_t **out)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    hr_t r = parse_listen(listen, &ss, &v6);
    *out = NULL;
    if (r != HR_OK) {
        log_error("http", "bad listen address '%s' (want HOST:PORT)", listen ? listen : "");
        return r;
    }

    http_server_t *s = xcalloc(1, sizeof(*s));
    s->app = app;
    s->routes = routes;
    s->nroutes = nroutes;
    pthread_mutex_init(&s->streams_mu, NULL);
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_mutex_init(&s->sum_mu, NULL);
    pthread_mutex_init(&s->sum_scan_mu, NULL);
    cond_init_mono(&s->wd_cv);
    s->header_ns = (int64_t)app->cfg->http_header_timeout_ms * 1000000;
    s->body_ns = (int64_t)app->cfg->http_body_timeout_ms * 1000000;
    /* the rule main.c applied to start the server at all */
    s->api = strcmp(app->cfg->roles, "all") == 0 || strstr(app->cfg->roles, "ingest") != NULL;
    if ((r = tls_load(s, app->cfg)) != HR_OK) {
        server_free(s);
        return r;
    }
    /* suspend/resume parks streaming responses with nothing to send */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (v6) flags |= MHD_USE_IPv6;
    if (s->tls_cert) flags |= MHD_USE_TLS;
    /* TLS 1.2 and 1.3 only, GnuTLS's default ciphers for them. */
    struct MHD_OptionItem tls[] = {
        {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned threads = app->cfg->http_threads > 1 ? (unsigned)app->cfg->http_threads : 1;
    struct MHD_OptionItem pool[] = {
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    uint16_t port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, /* first, so it sees every message */
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
        MHD_OPTION_ARRAY, pool, /* a pool only for more than one thread */
        MHD_OPTION_ARRAY, tls,  /* only with a certificate */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)app->cfg->http_connection_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)app->cfg->http_per_client_connections,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, HTTP_BACKLOG,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_target, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_END);
    if (!s->daemon || watchdog_start(s) != HR_OK) {
        log_error("http", "cannot listen on %s", listen);
        if (s->daemon) MHD_stop_daemon(s->daemon);
        server_free(s);
        return HR_ERR;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    log_info("http", "listening on %s (port %d, %u threads%s)", listen, s->port, threads,
             s->tls_cert ? ", TLS" : "");
    *out = s;
    return HR_OK;
}

int http_port(http_server_t *s) { return s->port; }

void http_stop(http_server_t *s)
{
    if (!s) return;
    /* stop accepting first, so nothing new arrives while connections close */
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    streams_stop(s);
    watchdog_stop(s);
    MHD_stop_daemon(s->daemon); /* closes idle and half-sent connections at once */
    /* The quiesced listen socket is ours, but only after the daemon has
     * stopped: its polling thread removes it from its epoll set on its next
     * turn, and closing it first made that fail ("Failed to remove listen FD
     * from epoll set", a fatal error in libmicrohttpd 0.9.75). */
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    assert(!s->streams);        /* every stream's connection has ended */
    assert(!s->conns);
    server_free(s);
}
