/*
 * api_inbox_page.c - the embeddable inbox page: GET /inbox, /inbox/inbox.js,
 * /inbox/inbox.css.
 *
 * Plain HTML, JavaScript and CSS from web/inbox/, compiled into the binary
 * (cmake/embed.cmake) like the status page. The files hold no data and are
 * served without a key; the page reads its user token from the URL
 * fragment (/inbox#token=...) and sends it on its own calls (the inbox
 * routes and the live stream). README "In-app inbox".
 *
 * The Content-Security-Policy allows scripts, styles and fetches from this
 * origin only and no inline script; unlike the status page it may be framed
 * by any site, since embedding it in an app is its purpose (a proxy can
 * narrow frame-ancestors). No Referer leaves it.
 */
#include "http/api_int.h"

#include <string.h>

extern const char inbox_index_html[];
extern const char inbox_inbox_js[];
extern const char inbox_inbox_css[];

#define INBOX_CSP "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " \
                  "object-src 'none'"

static void page_answer(http_resp_t *rs, const char *content_type, const char *text)
{
    resp_header(rs, "Content-Security-Policy", "%s", INBOX_CSP);
    resp_header(rs, "X-Content-Type-Options", "nosniff");
    resp_header(rs, "Referrer-Policy", "no-referrer");
    resp_text(rs, 200, content_type, xstrdup(text), strlen(text));
}

void api_inbox_page(http_req_t *rq, http_resp_t *rs)
{
    (void)rq;
    page_answer(rs, "text/html; charset=utf-8", inbox_index_html);
}

void api_inbox_page_js(http_req_t *rq, http_resp_t *rs)
{
    (void)rq;
    page_answer(rs, "text/javascript; charset=utf-8", inbox_inbox_js);
}

void api_inbox_page_css(http_req_t *rq, http_resp_t *rs)
{
    (void)rq;
    page_answer(rs, "text/css; charset=utf-8", inbox_inbox_css);
}
