/*
 * router.c - matches request paths against the route table (routes.c) and
 * decodes path parameters.
 *
 * DESIGN: patterns are "/"-separated literal segments and "{name}"
 * captures. The path arrives undecoded (server.c installs an identity
 * unescape callback) so that "%2F" inside an id never splits a segment;
 * each captured segment is percent-decoded on its own and must be a valid
 * id. Matching first finds every route with the path's shape, then picks the
 * one with the method: a shape without the method is a 405 with Allow, no
 * shape at all a 404. The table is a few dozen entries; a linear scan per
 * request costs less than parsing the body.
 */
#include "http/http_int.h"

#include "core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool http_pct_decode(const char *s, size_t n, bool plus_space, char **out, size_t *out_len)
{
    char *d = xmalloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(d);
                return false;
            }
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus_space && s[i] == '+') {
            d[j++] = ' ';
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    if (out_len) *out_len = j;
    return true;
}

void http_pct_encode(buf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            char ch = (char)c;
            buf_append(b, &ch, 1);
        } else {
            char esc[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
            buf_append(b, esc, 3);
        }
    }
}

bool http_text_printable(const char *s, size_t n)
{
    return utf8_printable(s, n);
}

bool http_id_valid(const char *s, size_t n)
{
    return n >= 1 && n <= HTTP_ID_MAX && http_text_printable(s, n);
}

/* Splits the next segment off *p (which points just past a '/'). */
static bool next_seg(const char **p, const char **seg, size_t *len)
{
    if (!*p) return false;
    const char *s = *p;
    const char *slash = strchr(s, '/');
    *seg = s;
    if (slash) {
        *len = (size_t)(slash - s);
        *p = slash + 1;
    } else {
        *len = strlen(s);
        *p = NULL;
    }
    return true;
}

/* Does path have the shape of pattern? Does not decode. */
static bool shape_matches(const char *pattern, const char *path)
{
    if (path[0] != '/' || pattern[0] != '/') return false;
    const char *pp = pattern + 1, *qp = path + 1;
    const char *ps, *qs;
    size_t pl, ql;
    for (;;) {
        bool hp = next_seg(&pp, &ps, &pl);
        bool hq = next_seg(&qp, &qs, &ql);
        if (!hp || !hq) return hp == hq;
        if (pl >= 2 && ps[0] == '{') continue; /* a capture takes any segment */
        if (pl != ql || memcmp(ps, qs, pl) != 0) return false;
    }
}

static hr_t capture(http_req_t *rq, const char *pattern, problem_t *pb)
{
    const char *pp = pattern + 1, *qp = rq->path + 1;
    const char *ps, *qs;
    size_t pl, ql;
    while (next_seg(&pp, &ps, &pl) && next_seg(&qp, &qs, &ql)) {
        if (!(pl >= 2 && ps[0] == '{')) continue;
        int nlen = (int)(pl - 2);
        char *v = NULL;
        size_t vlen = 0;
        if (!http_pct_decode(qs, ql, false, &v, &vlen)) {
            snprintf(pb->field, sizeof(pb->field), "%.*s", nlen, ps + 1);
            snprintf(pb->detail, sizeof(pb->detail), "malformed percent-encoding");
            return HR_INVALID;
        }
        if (!http_id_valid(v, vlen)) {
            free(v);
            snprintf(pb->field, sizeof(pb->field), "%.*s", nlen, ps + 1);
            snprintf(pb->detail, sizeof(pb->detail),
                     "must be 1 to %d bytes of printable UTF-8 once percent-decoded",
                     HTTP_ID_MAX);
            return HR_INVALID;
        }
        if (rq->nparams == HTTP_MAX_PARAMS) {
            free(v);
            return HR_ERR;
        }
        rq->params[rq->nparams++] = v;
    }
    return HR_OK;
}

hr_t router_match(http_req_t *rq, unsigned *allow, problem_t *pb)
{
    unsigned want = rq->method == HM_HEAD ? HM_GET : rq->method;
    const http_route_t *hit = NULL;
    *allow = 0;
    for (size_t i = 0; i < rq->srv->nroutes; i++) {
        const http_route_t *r = &rq->srv->routes[i];
        if (!shape_matches(r->pattern, rq->path)) continue;
        *allow |= r->method;
        if (r->method == HM_GET) *allow |= HM_HEAD;
        if (!hit && r->method == want) hit = r;
    }
    if (!*allow) return HR_NOTFOUND;
    if (!hit) return HR_DECLINED;
    rq->route = hit;
    return capture(rq, hit->pattern, pb);
}

void router_allow_str(unsigned allow, char *out, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{HM_GET, "GET"},       {HM_HEAD, "HEAD"},     {HM_POST, "POST"},
                 {HM_PUT, "PUT"},       {HM_DELETE, "DELETE"}, {HM_OPTIONS, "OPTIONS"}};
    size_t used = 0;
    out[0] = '\0';
    allow |= HM_OPTIONS;
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (!(allow & names[i].bit)) continue;
        int w = snprintf(out + used, len - used, "%s%s", used ? ", " : "", names[i].name);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
}
