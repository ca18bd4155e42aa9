/*
 * http.c - the libcurl multi engine (see http.h) and the request/response
 * helpers HTTP providers share.
 *
 * DESIGN. The engine is a thin driver: a multi handle plus a list of the
 * transfers it runs. Transfers belong to providers, which keep one per
 * in-flight slot, so the easy handle (its connection cache entry, TLS
 * session and DNS cache live in the multi handle), the body buffer and the
 * response buffers are reused from one request to the next. A transfer's
 * end is reported exactly once: from http_engine_run() when curl says it is
 * done, or with HTTP_SHUTDOWN from http_xfer_cancel()/http_engine_free().
 *
 * SMTP transfers (http_xfer_start_smtp) run on the same multi handle and
 * report through the same callback; only the setup differs. A transfer
 * remembers which kind it last ran and resets its easy handle when the
 * kind changes, so the HTTP path sets exactly the options it always did.
 */
#include "provider/http.h"

#include "core/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESP_HEADERS_MAX (16 * 1024)
#define RESP_BODY_MAX (64 * 1024)
#define DEFAULT_TIMEOUT_MS 10000L
#define CONNECT_TIMEOUT_MS 5000L

struct http_engine {
    CURLM *multi;
    http_xfer_t *running;       /* list of started transfers */
    int active;
    int64_t transfers, connects;
};

typedef enum xfer_kind { XK_NONE = 0, XK_HTTP, XK_SMTP } xfer_kind_t;

struct http_xfer {
    CURL *easy;
    xfer_kind_t kind;           /* what the easy handle was last set up for */
    struct curl_slist *hdrs;
    struct curl_slist *rcpt;    /* SMTP: the envelope recipients */
    curl_mime *mime;            /* SMTP: the message body */
    buf_t body;                 /* request body (curl reads it in place) */
    buf_t url;
    buf_t resp_headers;
    buf_t resp_body;
    char reason[96];
    char errbuf[CURL_ERROR_SIZE];
    http_engine_t *engine;      /* non-NULL while running */
    http_xfer_t *prev, *next;
    http_done_fn done;
    void *ud;
};

/* ------------------------------------------------------------ requests */

void prov_http_req_init(prov_http_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->method = "POST";
    buf_init(&r->url, 0);
    buf_init(&r->headers, 0);
    buf_init(&r->body, 0);
}

void prov_http_req_reset(prov_http_req_t *r)
{
    r->method = "POST";
    r->timeout_ms = 0;
    r->ca_file = r->cert_file = r->key_file = NULL;
    buf_reset(&r->url);
    buf_reset(&r->headers);
    buf_reset(&r->body);
}

void prov_http_req_release(prov_http_req_t *r)
{
    buf_release(&r->url);
    buf_release(&r->headers);
    buf_release(&r->body);
}

void prov_smtp_req_init(prov_smtp_req_t *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->url, 0);
    buf_init(&r->mail_from, 0);
    buf_init(&r->rcpt, 0);
    buf_init(&r->headers, 0);
    for (int i = 0; i < PROV_SMTP_PARTS_MAX; i++) buf_init(&r->parts[i].data, 0);
}

void prov_smtp_req_reset(prov_smtp_req_t *r)
{
    buf_reset(&r->url);
    buf_reset(&r->mail_from);
    buf_reset(&r->rcpt);
    buf_reset(&r->headers);
    for (int i = 0; i < PROV_SMTP_PARTS_MAX; i++) {
        buf_reset(&r->parts[i].data);
        r->parts[i].type = NULL;
    }
    r->nparts = 0;
    r->timeout_ms = 0;
    r->tls = PROV_SMTP_TLS_TRY;
    r->username = r->password = r->ca_file = NULL;
}

void prov_smtp_req_release(prov_smtp_req_t *r)
{
    buf_release(&r->url);
    buf_release(&r->mail_from);
    buf_release(&r->rcpt);
    buf_release(&r->headers);
    for (int i = 0; i < PROV_SMTP_PARTS_MAX; i++) buf_release(&r->parts[i].data);
}

bool prov_http_header(const prov_http_resp_t *r, const char *name, const char **v, size_t *n)
{
    size_t nl = strlen(name);
    const char *p = r->headers, *end = r->headers ? r->headers + r->headers_len : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *a = p + nl + 1, *b = le;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == '\r' || b[-1] == ' ' || b[-1] == '\t')) b--;
            *v = a;
            *n = (size_t)(b - a);
            return true;
        }
        p = eol ? eol + 1 : end;
    }
    return false;
}

int64_t http_retry_after_ms(const char *v, size_t n, int64_t now_ms)
{
    const int64_t cap = INT64_C(86400000);
    char tmp[64];
    if (!v || n == 0 || n >= sizeof(tmp)) return 0;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    bool digits = true;
    for (size_t i = 0; i < n; i++) digits = digits && tmp[i] >= '0' && tmp[i] <= '9';
    if (digits) {
        if (n > 6) return cap; /* over 11 days of seconds */
        int64_t ms = strtoll(tmp, NULL, 10) * 1000;
        return ms > cap ? cap : ms;
    }
    /* An HTTP-date; curl_getdate parses the three formats RFC 9110 allows
     * (and has no state: it is a pure function of its input). */
    time_t t = curl_getdate(tmp, NULL);
    if (t < 0) return 0;
    int64_t ms = (int64_t)t * 1000 - now_ms;
    if (ms <= 0) return 0;
    return ms > cap ? cap : ms;
}

/* -------------------------------------------------------------- engine */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

hr_t http_engine_new(http_engine_t **out)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        log_error("http", "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
        return HR_ERR;
    }
    http_engine_t *e = xcalloc(1, sizeof(*e));
    e->multi = curl_multi_init();
    if (!e->multi) {
        free(e);
        return HR_ERR;
    }
    /* HTTP/2: many streams over one connection per host. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
    *out = e;
    return HR_OK;
}

int http_engine_active(const http_engine_t *e) { return e->active; }

void http_engine_stats(const http_engine_t *e, int64_t *transfers, int64_t *connects)
{
    *transfers = e->transfers;
    *connects = e->connects;
}

static prov_http_xfer_result_t map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return HTTP_DONE;
    case CURLE_OPERATION_TIMEDOUT: return HTTP_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: return HTTP_CONNECT;
    default: return HTTP_FAILED;
    }
}

static void unlink_xfer(http_xfer_t *x)
{
    http_engine_t *e = x->engine;
    curl_multi_remove_handle(e->multi, x->easy);
    if (x->prev) x->prev->next = x->next;
    else e->running = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->engine = NULL;
    e->active--;
}

/* Reports the end of x (already unlinked) to its owner. */
static void finish(http_xfer_t *x, prov_http_xfer_result_t result, CURLcode rc, const char *error)
{
    long status = 0;
    /* SMTP: the reply that refused us is the classifier's input. */
    if (result == HTTP_DONE || x->kind == XK_SMTP)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    prov_http_resp_t resp = {
        .result = result,
        .error = error ? error : "",
        .status = (int)status,
        .curl_code = (int)rc,
        .reason = x->reason,
        .headers = x->resp_headers.data ? x->resp_headers.data : "",
        .headers_len = x->resp_headers.len,
        .body = x->resp_body.data ? x->resp_body.data : "",
        .body_len = x->resp_body.len,
        .now_ms = hclock_now_ms(),
    };
    http_done_fn done = x->done;
    x->done = NULL;
    done(x->ud, x, &resp);
}

static int reap(http_engine_t *e)
{
    int n = 0, left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        http_xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result; /* m is invalid after remove_handle */
        long nconn = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_NUM_CONNECTS, &nconn);
        e->transfers++;
        e->connects += nconn;
        unlink_xfer(x);
        const char *err = rc == CURLE_OK ? "" : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        finish(x, map_curl(rc), rc, err);
        n++;
    }
    return n;
}

int http_engine_run(http_engine_t *e, int timeout_ms)
{
    int still;
    curl_multi_perform(e->multi, &still);
    int n = reap(e);
    if (n > 0 || e->active == 0) return n;
    curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(e->multi, &still);
    return reap(e);
}

void http_engine_free(http_engine_t *e)
{
    if (!e) return;
    int left = 0;
    while (e->running) {
        http_xfer_cancel(e->running);
        left++;
    }
    if (left) log_warn("http", "%d requests still running at close; cancelled", left);
    curl_multi_cleanup(e->multi);
    free(e);
}

/* ----------------------------------------------------------- transfers */

static hr_t xfer_add(http_engine_t *e, http_xfer_t *x, http_done_fn done, void *ud);

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, say): keep only the last. */
        buf_reset(&x->resp_headers);
        x->reason[0] = '\0';
        const char *end = p + n;
        const char *sp = memchr(p, ' ', n);                 /* before the status */
        const char *r = sp ? memchr(sp + 1, ' ', (size_t)(end - sp - 1)) : NULL;
        if (r) {
            r++;
            while (end > r && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
            size_t rl = (size_t)(end - r);
            if (rl >= sizeof(x->reason)) rl = sizeof(x->reason) - 1;
            memcpy(x->reason, r, rl);
            x->reason[rl] = '\0';
        }
        return n;
    }
    buf_append(&x->resp_headers, p, n); /* past the limit: dropped, not an error */
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    http_xfer_t *x = ud;
    size_t n = size * nmemb;
    buf_append(&x->resp_body, p, n); /* past the limit: dropped, not an error */
    return n;
}

http_xfer_t *http_xfer_new(void)
{
    http_xfer_t *x = xcalloc(1, sizeof(*x));
    buf_init(&x->body, 0);
    buf_init(&x->url, 0);
    buf_init(&x->resp_headers, RESP_HEADERS_MAX);
    buf_init(&x->resp_body, RESP_BODY_MAX);
    return x;
}

void http_xfer_free(http_xfer_t *x)
{
    if (!x) return;
    if (x->engine) http_xfer_cancel(x);
    curl_mime_free(x->mime); /* first: it unbinds itself from the easy handle */
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    curl_slist_free_all(x->rcpt);
    buf_release(&x->body);
    buf_release(&x->url);
    buf_release(&x->resp_headers);
    buf_release(&x->resp_body);
    free(x);
}

void http_xfer_cancel(http_xfer_t *x)
{
    if (!x->engine) return;
    unlink_xfer(x);
    finish(x, HTTP_SHUTDOWN, CURLE_ABORTED_BY_CALLBACK, "cancelled at shutdown");
}

hr_t http_xfer_start(http_engine_t *e, http_xfer_t *x, const prov_http_req_t *req, http_done_fn done,
                     void *ud)
{
    if (!x->easy && !(x->easy = curl_easy_init())) return HR_ERR;
    if (x->kind != XK_HTTP) {
        curl_mime_free(x->mime);
        x->mime = NULL;
        if (x->kind != XK_NONE) curl_easy_reset(x->easy);
        x->kind = XK_HTTP;
    }
    CURL *c = x->easy;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    buf_reset(&x->url);
    buf_reset(&x->body);
    buf_reset(&x->resp_headers);
    buf_reset(&x->resp_body);
    x->reason[0] = '\0';
    x->errbuf[0] = '\0';
    if (buf_append(&x->url, req->url.data ? req->url.data : "", req->url.len) != HR_OK ||
        buf_append(&x->body, req->body.data ? req->body.data : "", req->body.len) != HR_OK)
        return HR_ERR;
    buf_cstr(&x->url);

    /* Header lines, plus "Expect:" so curl never waits for 100 Continue. */
    const char *p = req->headers.data, *end = p ? p + req->headers.len : NULL;
    char line[1024];
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);
        if (n && n < sizeof(line)) {
            memcpy(line, p, n);
            line[n] = '\0';
            struct curl_slist *h = curl_slist_append(x->hdrs, line);
            if (!h) return HR_ERR;
            x->hdrs = h;
        }
        p = eol ? eol + 1 : end;
    }
    struct curl_slist *h = curl_slist_append(x->hdrs, "Expect:");
    if (!h) return HR_ERR;
    x->hdrs = h;

    long timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(c, CURLOPT_URL, x->url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data ? x->body.data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Over TLS, ALPN says at the handshake whether the connection can carry
     * more streams: wait for it rather than open another connection. Plain
     * http is HTTP/1.1 here, where waiting would serialise the requests. */
    curl_easy_setopt(c, CURLOPT_PIPEWAIT, strncasecmp(x->url.data, "https:", 6) == 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
    curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    curl_easy_setopt(c, CURLOPT_SSLCERT, req->cert_file);
    curl_easy_setopt(c, CURLOPT_SSLKEY, req->key_file);

    return xfer_add(e, x, done, ud);
}

/* Hands the set-up transfer x to e's multi handle. */
static hr_t xfer_add(http_engine_t *e, http_xfer_t *x, http_done_fn done, void *ud)
{
    if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) return HR_ERR;
    x->engine = e;
    x->done = done;
    x->ud = ud;
    x->prev = NULL;
    x->next = e->running;
    if (e->running) e->running->prev = x;
    e->running = x;
    e->active++;
    return HR_OK;
}

/* ---------------------------------------------------------------- SMTP */

/* The header lines of req as curl's list; a line starting with a space or
 * a tab folds into the previous one ("\r\n" + line). */
static hr_t smtp_headers(http_xfer_t *x, const buf_t *hb)
{
    const char *p = hb->data, *end = p ? p + hb->len : NULL;
    buf_t line;
    buf_init(&line, 0);
    hr_t r = HR_OK;
    while (p && p < end && r == HR_OK) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);
        const char *next = eol ? eol + 1 : end;
        if (n) {
            r = buf_append(&line, p, n);
            /* continuation lines that follow */
            while (r == HR_OK && next < end && (*next == ' ' || *next == '\t')) {
                const char *e2 = memchr(next, '\n', (size_t)(end - next));
                size_t n2 = (size_t)((e2 ? e2 : end) - next);
                r = buf_append(&line, "\r\n", 2);
                if (r == HR_OK) r = buf_append(&line, next, n2);
                next = e2 ? e2 + 1 : end;
            }
            if (r == HR_OK) {
                struct curl_slist *h = curl_slist_append(x->hdrs, buf_cstr(&line));
                if (!h) r = HR_ERR;
                else x->hdrs = h;
            }
            buf_reset(&line);
        }
        p = next;
    }
    buf_release(&line);
    return r;
}

/* The body: a multipart/alternative part holding req's parts, each
 * quoted-printable, inside the message curl builds (curl makes the top
 * level multipart/mixed and adds MIME-Version). */
static hr_t smtp_mime(http_xfer_t *x, const prov_smtp_req_t *req)
{
    curl_mime_free(x->mime);
    x->mime = curl_mime_init(x->easy);
    curl_mime *alt = curl_mime_init(x->easy);
    if (!x->mime || !alt) goto fail;
    for (int i = 0; i < req->nparts; i++) {
        const prov_smtp_part_t *pt = &req->parts[i];
        curl_mimepart *mp = curl_mime_addpart(alt);
        if (!mp || curl_mime_data(mp, pt->data.data ? pt->data.data : "", pt->data.len) != CURLE_OK ||
            curl_mime_type(mp, pt->type) != CURLE_OK ||
            curl_mime_encoder(mp, "quoted-printable") != CURLE_OK)
            goto fail;
    }
    curl_mimepart *top = curl_mime_addpart(x->mime);
    if (!top || curl_mime_subparts(top, alt) != CURLE_OK) goto fail;
    alt = NULL; /* top owns it */
    if (curl_mime_type(top, "multipart/alternative") != CURLE_OK) return HR_ERR;
    struct curl_slist *inl = curl_slist_append(NULL, "Content-Disposition: inline");
    if (!inl) return HR_ERR;
    if (curl_mime_headers(top, inl, 1) != CURLE_OK) {
        curl_slist_free_all(inl);
        return HR_ERR;
    }
    return HR_OK;
fail:
    curl_mime_free(alt);
    return HR_ERR;
}

hr_t http_xfer_start_smtp(http_engine_t *e, http_xfer_t *x, const prov_smtp_req_t *req,
                          http_done_fn done, void *ud)
{
    if (!x->easy && !(x->easy = curl_easy_init())) return HR_ERR;
    if (x->kind != XK_SMTP) {
        if (x->kind != XK_NONE) curl_easy_reset(x->easy);
        x->kind = XK_SMTP;
    }
    CURL *c = x->easy;
    curl_slist_free_all(x->hdrs);
    curl_slist_free_all(x->rcpt);
    x->hdrs = x->rcpt = NULL;
    buf_reset(&x->url);
    buf_reset(&x->resp_headers);
    buf_reset(&x->resp_body);
    x->reason[0] = '\0';
    x->errbuf[0] = '\0';
    if (buf_append(&x->url, req->url.data ? req->url.data : "", req->url.len) != HR_OK) return HR_ERR;
    buf_cstr(&x->url);
    struct curl_slist *rc = curl_slist_append(NULL, req->rcpt.data ? req->rcpt.data : "");
    if (!rc) return HR_ERR;
    x->rcpt = rc;
    if (smtp_headers(x, &req->headers) != HR_OK || smtp_mime(x, req) != HR_OK) return HR_ERR;

    static const long use_ssl[] = {
        [PROV_SMTP_TLS_TRY] = CURLUSESSL_TRY,
        [PROV_SMTP_TLS_REQUIRE] = CURLUSESSL_ALL,
        [PROV_SMTP_TLS_NONE] = CURLUSESSL_NONE,
    };
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(c, CURLOPT_URL, x->url.data);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, req->mail_from.data ? req->mail_from.data : "<>");
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, x->rcpt);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs); /* SMTP: the message's header */
    curl_easy_setopt(c, CURLOPT_MIMEPOST, x->mime);
    curl_easy_setopt(c, CURLOPT_USE_SSL, use_ssl[req->tls]);
    curl_easy_setopt(c, CURLOPT_USERNAME, req->username);
    curl_easy_setopt(c, CURLOPT_PASSWORD, req->password);
    curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* The server's replies arrive as "header" lines: the classifier reads
     * the text of the last one. */
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    return xfer_add(e, x, done, ud);
}
