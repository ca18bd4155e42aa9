/*
 * api_ui.c - the status page: GET /ui, /ui/app.js, /ui/style.css.
 *
 * Plain HTML, JavaScript and CSS from src/http/ui/, compiled into the
 * binary (cmake/embed.cmake), so `herald serve` needs no files on disk.
 * The files hold no data and are served without an API key; the page asks
 * for a key and sends it on its own calls (GET /v1/ops/summary,
 * GET /v1/notifications/{id}). README "Status page".
 *
 * Every answer carries a Content-Security-Policy that allows scripts,
 * styles and fetches from this origin only (no inline script or style,
 * no framing), nosniff, and no Referer.
 */
#include "http/api_int.h"

#include <string.h>

extern const char ui_index_html[];
extern const char ui_app_js[];
extern const char ui_style_css[];

#define UI_CSP "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; " \
               "form-action 'none'; object-src 'none'"

static void ui_answer(http_resp_t *rs, const char *content_type, const char *text)
{
    resp_header(rs, "Content-Security-Policy", "%s", UI_CSP);
    resp_header(rs, "X-Content-Type-Options", "nosniff");
    resp_header(rs, "X-Frame-Options", "DENY");
    resp_header(rs, "Referrer-Policy", "no-referrer");
    size_t n = strlen(text);
    resp_text(rs, 200, content_type, xstrdup(text), n);
}

void api_ui_page(http_req_t *rq, http_resp_t *rs)
{
    ui_answer(rs, "text/html; charset=utf-8", ui_index_html);
}

void api_ui_js(http_req_t *rq, http_resp_t *rs)
{
    ui_answer(rs, "text/javascript; charset=utf-8", ui_app_js);
}

void api_ui_css(http_req_t *rq, http_resp_t *rs)
{
    ui_answer(rs, "text/css; charset=utf-8", ui_style_css);
}
