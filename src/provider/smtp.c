/*
 * smtp.c - the e-mail provider: each notification is one message to one
 * recipient, sent with libcurl's SMTP on the dispatcher thread's engine
 * (http.h). A pure builder and a pure classifier (smtp.h) around a small
 * slot table.
 *
 * DESIGN. SMTP carries one message per connection at a time, so the
 * instance keeps max_in_flight slots (default 4), each with its reused
 * transfer; curl keeps the connections in the engine's cache and reuses
 * them for the next message to the same server, so a steady stream pays
 * EHLO / STARTTLS / AUTH once per connection, not per message. submit()
 * builds and starts; the engine's done callback classifies and completes.
 * A message that cannot be built or started completes from the next poll,
 * never inside submit(). The password (password or password_file) lives
 * only in the instance and curl's handle: no log line or error names it.
 */
#include "provider/smtp.h"

#include "core/log.h"
#include "core/text.h"
#include "provider/http_provider.h"
#include "provider/settings.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SMTP_DEFAULT_IN_FLIGHT 4
#define SUBJECT_PLAIN_MAX 900     /* an ASCII subject longer than this is folded as encoded words */
#define EW_CHUNK 45               /* bytes per encoded word: 60 base64 chars, 72 with the frame */

/* ----------------------------------------------------------- pure part */

static bool is_msgid_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-' || ch == '+' || ch == '=';
}

size_t smtp_message_id(const smtp_conf_t *c, const notif_t *n, char *out, size_t out_len)
{
    const unsigned char *id = (const unsigned char *)n->notification_id.p;
    size_t idn = n->notification_id.n;
    bool plain = idn > 0 && id[0] != '.' && id[idn - 1] != '.';
    for (size_t i = 0; i < idn && plain; i++) plain = is_msgid_char(id[i]);
    buf_t b;
    buf_init(&b, 0);
    if (plain) buf_append(&b, id, idn);
    else
        for (size_t i = 0; i < idn; i++) {
            char h[2] = {hex_lower[id[i] >> 4], hex_lower[id[i] & 15]};
            buf_append(&b, h, 2);
        }
    if (!idn) buf_append_str(&b, "none");
    int w = snprintf(out, out_len, "%.*s@%s", (int)b.len, b.data ? b.data : "", c->message_id_domain);
    buf_release(&b);
    if (w < 0) return 0;
    return (size_t)w < out_len ? (size_t)w : out_len ? out_len - 1 : 0;
}

/* One plain address: printable ASCII, no spaces, no characters that would
 * end it inside a header or an SMTP command, exactly one '@'. */
static bool plain_address(const char *p, size_t n)
{
    if (n == 0 || n > 254) return false;
    size_t at = 0, ats = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("<>()[]\\,;:\"", ch)) return false;
        if (ch == '@') {
            ats++;
            at = i;
        }
    }
    return ats == 1 && at > 0 && at + 1 < n;
}

/* Appends s[0..n) with every line end (CRLF, LF or CR) as CRLF. */
static hr_t append_crlf(buf_t *b, const char *s, size_t n)
{
    hr_t r = HR_OK;
    size_t start = 0;
    for (size_t i = 0; i < n && r == HR_OK; i++) {
        if (s[i] != '\n' && s[i] != '\r') continue;
        r = buf_append(b, s + start, i - start);
        if (r == HR_OK) r = buf_append(b, "\r\n", 2);
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') i++;
        start = i + 1;
    }
    if (r == HR_OK) r = buf_append(b, s + start, n - start);
    return r;
}

/* The body as HTML: & < > " ' escaped, line ends as <br>. */
static hr_t append_html_escaped(buf_t *b, const char *s, size_t n)
{
    hr_t r = HR_OK;
    for (size_t i = 0; i < n && r == HR_OK; i++) {
        switch (s[i]) {
        case '&': r = buf_append_str(b, "&amp;"); break;
        case '<': r = buf_append_str(b, "&lt;"); break;
        case '>': r = buf_append_str(b, "&gt;"); break;
        case '"': r = buf_append_str(b, "&quot;"); break;
        case '\'': r = buf_append_str(b, "&#39;"); break;
        case '\r':
            if (i + 1 < n && s[i + 1] == '\n') i++;
            /* fall through */
        case '\n': r = buf_append_str(b, "<br>\r\n"); break;
        default: r = buf_append(b, s + i, 1);
        }
    }
    return r;
}

/* RFC 2047 encoded words for s[0..n) (UTF-8, B encoding), each on its own
 * folded line after the first; a multi-byte character is never split. */
static hr_t append_encoded_words(buf_t *b, const char *s, size_t n)
{
    hr_t r = HR_OK;
    size_t i = 0;
    bool first = true;
    while (i < n && r == HR_OK) {
        size_t end = i;
        while (end < n) {
            size_t l = utf8_seq_len((const unsigned char *)s + end, n - end);
            if (l == 0) l = 1; /* ill-formed: carried as a byte */
            if (end + l - i > EW_CHUNK) break;
            end += l;
        }
        unsigned char enc[4 * ((EW_CHUNK + 2) / 3) + 1];
        int el = EVP_EncodeBlock(enc, (const unsigned char *)s + i, (int)(end - i));
        r = buf_printf(b, "%s=?UTF-8?B?%.*s?=", first ? "" : "\n ", el, (const char *)enc);
        first = false;
        i = end;
    }
    return r;
}

/* Does s[0..n) need encoded words in a header (not printable ASCII)? */
static bool needs_encoding(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) return true;
    return false;
}

/* The header's text form of a title: control characters (CR, LF, TAB, ...)
 * become spaces, so nothing in it can end the header line. */
static char *header_text(const char *s, size_t n)
{
    char *t = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        t[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    t[n] = '\0';
    return t;
}

static hr_t append_date(buf_t *b, int64_t now_ms)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return HR_INVALID;
    return buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\n", wd[tm.tm_wday], tm.tm_mday,
                      mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The "html" string of the metadata object, or NULL (caller frees). */
static char *metadata_html(const notif_t *n, size_t *len)
{
    if (!n->metadata.n) return NULL;
    json_t *doc = json_loadb(n->metadata.p, n->metadata.n, 0, NULL);
    json_t *h = json_is_object(doc) ? json_object_get(doc, "html") : NULL;
    char *out = NULL;
    if (json_is_string(h)) {
        *len = json_string_length(h);
        out = xmalloc(*len + 1);
        memcpy(out, json_string_value(h), *len + 1);
    }
    json_decref(doc);
    return out;
}

hr_t smtp_build(const smtp_conf_t *c, const notif_t *n, int64_t now_ms, prov_smtp_req_t *req,
                char *why, size_t why_len)
{
    prov_smtp_req_reset(req);
    if (!plain_address(n->address.p, n->address.n)) {
        snprintf(why, why_len, "the address is not one plain e-mail address");
        return HR_INVALID;
    }
    req->timeout_ms = c->timeout_ms;
    req->tls = c->tls;
    req->username = c->username;
    req->password = c->password;
    req->ca_file = c->ca_file;
    char msgid[256];
    smtp_message_id(c, n, msgid, sizeof(msgid));
    char *subject = NULL, *html = NULL;
    hr_t r = buf_append_str(&req->url, c->url);
    if (r == HR_OK) r = buf_printf(&req->mail_from, "<%s>", c->from);
    if (r == HR_OK) r = buf_printf(&req->rcpt, "<%.*s>", (int)n->address.n, n->address.p);

    /* header */
    buf_t *h = &req->headers;
    if (r == HR_OK) r = buf_append_str(h, "From: ");
    if (r == HR_OK && c->from_name && *c->from_name) {
        size_t fl = strlen(c->from_name);
        if (needs_encoding(c->from_name, fl)) r = append_encoded_words(h, c->from_name, fl);
        else {
            r = buf_append(h, "\"", 1);
            for (size_t i = 0; i < fl && r == HR_OK; i++) {
                if (c->from_name[i] == '"' || c->from_name[i] == '\\') r = buf_append(h, "\\", 1);
                if (r == HR_OK) r = buf_append(h, c->from_name + i, 1);
            }
            if (r == HR_OK) r = buf_append(h, "\"", 1);
        }
        if (r == HR_OK) r = buf_printf(h, " <%s>\n", c->from);
    } else if (r == HR_OK) {
        r = buf_printf(h, "%s\n", c->from);
    }
    if (r == HR_OK) r = buf_printf(h, "To: %.*s\n", (int)n->address.n, n->address.p);
    if (r == HR_OK && n->title.n) {
        subject = header_text(n->title.p, n->title.n);
        r = buf_append_str(h, "Subject: ");
        if (r == HR_OK) {
            if (needs_encoding(subject, n->title.n) || n->title.n > SUBJECT_PLAIN_MAX)
                r = append_encoded_words(h, subject, n->title.n);
            else r = buf_append(h, subject, n->title.n);
        }
        if (r == HR_OK) r = buf_append(h, "\n", 1);
    }
    if (r == HR_OK) r = append_date(h, now_ms);
    if (r == HR_OK) r = buf_printf(h, "Message-ID: <%s>\n", msgid);

    /* body */
    if (r == HR_OK) {
        prov_smtp_part_t *t = &req->parts[req->nparts++];
        t->type = "text/plain; charset=UTF-8";
        r = append_crlf(&t->data, n->body.p ? n->body.p : "", n->body.n);
    }
    if (r == HR_OK) {
        prov_smtp_part_t *t = &req->parts[req->nparts++];
        t->type = "text/html; charset=UTF-8";
        size_t hl = 0;
        if ((html = metadata_html(n, &hl))) r = append_crlf(&t->data, html, hl);
        else r = append_html_escaped(&t->data, n->body.p ? n->body.p : "", n->body.n);
    }
    if (r == HR_OK) {
        buf_cstr(&req->url);
        buf_cstr(&req->mail_from);
        buf_cstr(&req->rcpt);
    }
    free(subject);
    free(html);
    if (r != HR_OK) snprintf(why, why_len, "cannot build the message: %s", hr_str(r));
    return r;
}

/* The last reply line the server sent with code `code` (trimmed; curl
 * may have said QUIT after it), or an empty one. */
static void reply_line(const prov_http_resp_t *r, int code, const char **p, size_t *n)
{
    const char *s = r->headers ? r->headers : "", *end = s + r->headers_len;
    char want[8];
    snprintf(want, sizeof(want), "%d", code);
    *p = "";
    *n = 0;
    while (end > s && code > 0) {
        while (end > s && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
        const char *b = end;
        while (b > s && b[-1] != '\n') b--;
        if (end - b >= 3 && memcmp(b, want, 3) == 0) {
            *p = b;
            *n = (size_t)(end - b);
            return;
        }
        end = b;
    }
}

void smtp_classify(const prov_http_resp_t *r, const char *message_id, send_result_t *res)
{
    if (r->result == HTTP_TIMEOUT || r->result == HTTP_CONNECT || r->result == HTTP_SHUTDOWN) {
        hprov_classify_transport(r, res);
        return;
    }
    int s = r->status;
    const char *line;
    size_t ln;
    reply_line(r, s, &line, &ln);
    /* "SMTP 550 5.1.1 no such user (RCPT failed: 550)"; the reply text is
     * the server's, never ours (no credentials in it). */
    char text[sizeof(res->error)];
    if (ln >= 3)
        snprintf(text, sizeof(text), "SMTP %.*s", (int)(ln > 120 ? 120 : ln), line);
    else snprintf(text, sizeof(text), "SMTP %d", s);
    const char *err = r->error && *r->error ? r->error : "";
    send_class_t cls;
    bool addr = false;
    if (r->curl_code == CURLE_USE_SSL_FAILED) {
        send_result_set(res, SEND_FATAL, s, "STARTTLS is required (tls=require) and the server does not offer it");
        return;
    }
    if (r->curl_code == CURLE_PEER_FAILED_VERIFICATION || r->curl_code == CURLE_SSL_CACERT_BADFILE) {
        send_result_set(res, SEND_FATAL, s, "TLS: %s", err);
        return;
    }
    if (r->result == HTTP_DONE && s >= 200 && s < 300) {
        send_result_set(res, SEND_OK, s, "%s", "");
        snprintf(res->msg_id, sizeof(res->msg_id), "%s", message_id ? message_id : "");
        return;
    }
    if (r->curl_code == CURLE_LOGIN_DENIED || s == 530 || s == 534 || s == 535) cls = SEND_FATAL;
    else if (s >= 500 && s < 600 && strncmp(err, "MAIL failed", 11) == 0) cls = SEND_FATAL;
    else if (s == 550 || s == 551 || s == 553) {
        cls = SEND_PERMANENT;
        addr = strncmp(err, "DATA", 4) != 0; /* refused at RCPT (or unsaid): the mailbox */
    } else if (s >= 500 && s < 600) cls = SEND_PERMANENT;
    else if (s >= 400 && s < 500) cls = SEND_RETRY;
    else cls = SEND_RETRY; /* dropped mid-way, or a reply we did not expect */
    if (s >= 400 && s < 600) send_result_set(res, cls, s, "%s%s%s%s", text, *err ? " (" : "", err, *err ? ")" : "");
    else send_result_set(res, cls, s, "transfer: %s", *err ? err : text);
    res->address_invalid = addr;
}

/* ------------------------------------------------------------ provider */

typedef struct smtp_prov smtp_prov_t;

typedef struct smtp_slot {
    http_xfer_t *x;
    send_result_t *res;
    void *cookie;
    char msgid[160];
    bool failed;                /* could not start: complete on the next poll */
    smtp_prov_t *sp;
} smtp_slot_t;

struct smtp_prov {
    provider_t base;            /* first */
    http_engine_t *engine;
    smtp_conf_t conf;
    char *password;             /* owned copy (password_file); NULL when none */
    char *domain;               /* owned default message_id_domain */
    prov_smtp_req_t req;        /* scratch for the builder */
    smtp_slot_t *slots;
    int *free_slots;
    int nfree, cap, nfailed;
    bool refusing;              /* the last verdict was FATAL */
};

static void slot_release(smtp_prov_t *sp, smtp_slot_t *s)
{
    sp->free_slots[sp->nfree++] = (int)(s - sp->slots);
}

static void on_done(void *ud, http_xfer_t *x, const prov_http_resp_t *resp)
{
    (void)x;
    smtp_slot_t *s = ud;
    smtp_prov_t *sp = s->sp;
    smtp_classify(resp, s->msgid, s->res);
    /* One line when the server starts refusing us and one when it stops. */
    if (s->res->cls == SEND_FATAL && !sp->refusing)
        log_error(sp->base.name, "%s: %s (check provider.%s settings)", sp->conf.url, s->res->error,
                  sp->base.name);
    else if (s->res->cls == SEND_OK && sp->refusing)
        log_info(sp->base.name, "%s accepts messages again", sp->conf.url);
    if (s->res->cls == SEND_FATAL) sp->refusing = true;
    else if (s->res->cls == SEND_OK) sp->refusing = false;
    send_result_t *res = s->res;
    void *cookie = s->cookie;
    slot_release(sp, s);
    provider_complete(&sp->base, res, cookie);
}

static hr_t smtp_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie)
{
    smtp_prov_t *sp = (smtp_prov_t *)p;
    smtp_slot_t *s = &sp->slots[sp->free_slots[--sp->nfree]]; /* the registry bounds in_flight */
    s->res = res;
    s->cookie = cookie;
    s->failed = false;
    smtp_message_id(&sp->conf, n, s->msgid, sizeof(s->msgid));
    if (!s->x) s->x = http_xfer_new();
    char why[128];
    hr_t r = smtp_build(&sp->conf, n, hclock_now_ms(), &sp->req, why, sizeof(why));
    if (r != HR_OK) send_result_set(res, SEND_PERMANENT, 0, "%s", why);
    else if ((r = http_xfer_start_smtp(sp->engine, s->x, &sp->req, on_done, s)) != HR_OK)
        send_result_set(res, SEND_RETRY, 0, "cannot start the transfer");
    if (r != HR_OK) {
        s->failed = true;
        sp->nfailed++;
    }
    return HR_OK;
}

static int smtp_poll(provider_t *p)
{
    smtp_prov_t *sp = (smtp_prov_t *)p;
    int n = 0;
    for (int i = 0; i < sp->cap && sp->nfailed > 0; i++) {
        smtp_slot_t *s = &sp->slots[i];
        if (!s->failed) continue;
        s->failed = false;
        sp->nfailed--;
        slot_release(sp, s);
        provider_complete(p, s->res, s->cookie);
        n++;
    }
    return n;
}

static void smtp_free(smtp_prov_t *sp)
{
    prov_smtp_req_release(&sp->req);
    if (sp->password) {
        OPENSSL_cleanse(sp->password, strlen(sp->password));
        free(sp->password);
    }
    free(sp->domain);
    free(sp->slots);
    free(sp->free_slots);
    free(sp);
}

static void smtp_close(provider_t *p)
{
    smtp_prov_t *sp = (smtp_prov_t *)p;
    smtp_poll(p);
    for (int i = 0; i < sp->cap; i++) http_xfer_free(sp->slots[i].x); /* cancels: RETRY */
    smtp_free(sp);
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) return false;
    return true;
}

static bool domain_ok(const char *s)
{
    if (!*s || strlen(s) > 200) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-'))
            return false;
    return true;
}

static hr_t smtp_open(const provider_env_t *env, provider_t **out, char *why, size_t why_len)
{
    int64_t timeout, cap;
    hr_t r = provider_conf_int(env, "timeout_ms", 30000, 1, 600000, &timeout, why, why_len);
    if (r == HR_OK)
        r = provider_conf_int(env, "max_in_flight", SMTP_DEFAULT_IN_FLIGHT, 1, 100000, &cap, why, why_len);
    if (r != HR_OK) return r;
    const char *url = provider_conf(env, "url", NULL);
    const char *from = provider_conf(env, "from", NULL);
    const char *from_name = provider_conf(env, "from_name", NULL);
    const char *tls = provider_conf(env, "tls", "try");
    const char *mid = provider_conf(env, "message_id_domain", NULL);
    const char *pw = provider_conf(env, "password", NULL);
    const char *pwf = provider_conf(env, "password_file", NULL);
    if (!url || (strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0) ||
        !header_safe(url)) {
        snprintf(why, why_len, "provider.%s.url: an smtp:// or smtps:// URL is required", env->name);
        return HR_INVALID;
    }
    if (!from || !plain_address(from, strlen(from))) {
        snprintf(why, why_len, "provider.%s.from: one plain e-mail address is required", env->name);
        return HR_INVALID;
    }
    if (from_name && !header_safe(from_name)) {
        snprintf(why, why_len, "provider.%s.from_name: control characters (CR, LF) are not allowed",
                 env->name);
        return HR_INVALID;
    }
    prov_smtp_tls_t t;
    if (strcmp(tls, "try") == 0) t = PROV_SMTP_TLS_TRY;
    else if (strcmp(tls, "require") == 0) t = PROV_SMTP_TLS_REQUIRE;
    else if (strcmp(tls, "none") == 0) t = PROV_SMTP_TLS_NONE;
    else {
        snprintf(why, why_len, "provider.%s.tls: '%s' is not one of try, require, none", env->name, tls);
        return HR_INVALID;
    }
    if (pw && pwf) {
        snprintf(why, why_len, "provider.%s: set password or password_file, not both", env->name);
        return HR_INVALID;
    }
    if (mid && !domain_ok(mid)) {
        snprintf(why, why_len, "provider.%s.message_id_domain: '%s' is not a domain name", env->name, mid);
        return HR_INVALID;
    }
    smtp_prov_t *sp = xcalloc(1, sizeof(*sp));
    if (pwf && (r = provider_secret(provider_env_get, env, env->name, "password_file", NULL,
                                    &sp->password, why, why_len)) != HR_OK) {
        free(sp);
        return r;
    }
    if (!mid) {
        sp->domain = xstrdup(strchr(from, '@') + 1);
        mid = sp->domain;
    }
    sp->engine = env->engine;
    sp->conf = (smtp_conf_t){
        .url = url,
        .from = from,
        .from_name = from_name,
        .message_id_domain = mid,
        .tls = t,
        .username = provider_conf(env, "username", NULL),
        .password = sp->password ? sp->password : pw,
        .ca_file = provider_conf(env, "ca_file", NULL),
        .timeout_ms = (long)timeout,
    };
    sp->cap = (int)cap;
    sp->slots = xcalloc((size_t)cap, sizeof(*sp->slots));
    sp->free_slots = xcalloc((size_t)cap, sizeof(*sp->free_slots));
    for (int i = 0; i < sp->cap; i++) {
        sp->slots[i].sp = sp;
        sp->free_slots[sp->nfree++] = sp->cap - 1 - i;
    }
    prov_smtp_req_init(&sp->req);
    *out = &sp->base;
    return HR_OK;
}

static const char *const smtp_keys[] = {"url", "from", "from_name", "message_id_domain", "tls",
                                        "username", "password", "password_file", "ca_file",
                                        "timeout_ms", NULL};

const provider_ops_t smtp_provider_ops = {
    .name = "smtp",
    .keys = smtp_keys,
    .default_max_in_flight = SMTP_DEFAULT_IN_FLIGHT,
    .uses_http = true, /* libcurl's SMTP on the thread's engine */
    .open = smtp_open,
    .submit = smtp_submit,
    .poll = smtp_poll,
    .close = smtp_close,
};
