/*
 * template.c - rendering "{{actor}} commented: {{data.text}}".
 *
 * DESIGN. Rendering runs once per notification, so it allocates nothing
 * besides growth of the output buffer: the template is scanned in place,
 * data paths are walked with json_object_getn() on the key's bytes, and
 * numbers are formatted on the stack.
 *
 * Syntax. "{{" name "}}" with optional spaces or tabs around the name. A
 * name is a run of bytes other than whitespace and braces. A run of three or
 * more '{' and a "{{" that does not open a well-formed variable are copied
 * literally. Variables: event_id type actor category source tenant priority
 * user_id user.locale and data.<path>, where path segments are object keys
 * or array indexes ("data.items.0.name"). Strings render as they are,
 * numbers and booleans as text; a missing variable, null, an object or an
 * array renders as empty. No escaping is applied: the output is plain text.
 * digest.count, digest.others, digest.first_actor and digest.last_actor
 * render as a digest of one (1, 0, actor, actor); ctx->spans records where
 * (template.h).
 *
 * Limit. When out's limit is reached the rendering is cut there (never
 * inside a UTF-8 sequence) and HR_AGAIN is returned: a too-long title
 * arrives shortened rather than empty.
 */
#include "model/template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends what fits: all of it (HR_OK), or the longest prefix within the
 * limit that does not split a UTF-8 sequence (HR_AGAIN). */
static hr_t out_put(buf_t *out, const char *p, size_t n)
{
    hr_t r = buf_append(out, p, n);
    if (r != HR_AGAIN) return r;
    size_t room = out->limit > out->len ? out->limit - out->len : 0;
    if (room >= n) return r;
    while (room > 0 && ((unsigned char)p[room] & 0xC0) == 0x80) room--;
    if (room) buf_append(out, p, room);
    return HR_AGAIN;
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static bool is_name_char(char c)
{
    return (unsigned char)c > ' ' && c != '{' && c != '}' && c != 0x7f;
}

/* s points at "{{". If a variable follows, sets its name and returns the
 * position just past its "}}"; otherwise returns NULL. */
static const char *scan_var(const char *s, const char **name, size_t *name_len)
{
    const char *p = s + 2;
    while (is_space(*p)) p++;
    const char *b = p;
    while (is_name_char(*p)) p++;
    const char *e = p;
    while (is_space(*p)) p++;
    if (e == b || p[0] != '}' || p[1] != '}') return NULL;
    *name = b;
    *name_len = (size_t)(e - b);
    return p + 2;
}

static size_t brace_run(const char *s)
{
    size_t n = 0;
    while (s[n] == '{') n++;
    return n;
}

static bool name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(name, lit, n) == 0;
}

/* Walks data.<path> from the event's data; NULL if any step is missing. */
static json_t *data_lookup(json_t *cur, const char *path, size_t n)
{
    const char *end = path + n;
    while (cur && path <= end) {
        const char *dot = memchr(path, '.', (size_t)(end - path));
        const char *seg_end = dot ? dot : end;
        size_t sl = (size_t)(seg_end - path);
        if (sl == 0) return NULL;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, path, sl);
        } else if (json_is_array(cur)) {
            size_t idx = 0;
            for (const char *q = path; q < seg_end; q++) {
                if (*q < '0' || *q > '9' || idx > 1000000) return NULL;
                idx = idx * 10 + (size_t)(*q - '0');
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        if (!dot) return cur;
        path = dot + 1;
    }
    return NULL;
}

static hr_t render_json(buf_t *out, json_t *v)
{
    char num[40];
    int n;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return out_put(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return out_put(out, num, (size_t)n);
    case JSON_REAL: {
        double d = json_real_value(v);
        /* Shortest of %.15g / %.17g that reads back as the same double. */
        n = snprintf(num, sizeof(num), "%.15g", d);
        if (strtod(num, NULL) != d) n = snprintf(num, sizeof(num), "%.17g", d);
        return out_put(out, num, (size_t)n);
    }
    case JSON_TRUE:
        return out_put(out, "true", 4);
    case JSON_FALSE:
        return out_put(out, "false", 5);
    default:
        return HR_OK; /* null, object, array: empty */
    }
}

static hr_t append_cstr(buf_t *out, const char *s)
{
    return s ? out_put(out, s, strlen(s)) : HR_OK;
}

/* The known variables other than data.<path>. */
static const char *const plain_vars[] = {
    "event_id", "type", "actor", "category", "source", "tenant", "priority",
    "user_id", "user.locale",
    "digest.count", "digest.others", "digest.first_actor", "digest.last_actor",
};

/* {{digest.*}}: its tmpl_dvar_t, or -1. */
static int digest_var(const char *name, size_t n)
{
    if (n < 8 || memcmp(name, "digest.", 7) != 0) return -1;
    if (name_is(name, n, "digest.count")) return TMPL_DV_COUNT;
    if (name_is(name, n, "digest.others")) return TMPL_DV_OTHERS;
    if (name_is(name, n, "digest.first_actor")) return TMPL_DV_FIRST;
    if (name_is(name, n, "digest.last_actor")) return TMPL_DV_LAST;
    return -1;
}

/* A digest variable as a digest of one, its span recorded. */
static hr_t render_digest_var(int dv, const tmpl_ctx_t *ctx, buf_t *out)
{
    size_t at = out->len;
    hr_t r;
    if (dv == TMPL_DV_COUNT) r = out_put(out, "1", 1);
    else if (dv == TMPL_DV_OTHERS) r = out_put(out, "0", 1);
    else r = append_cstr(out, ctx->ev ? ctx->ev->actor : NULL);
    tmpl_spans_t *sp = ctx->spans;
    if (r == HR_OK && sp && sp->n >= 0) {
        if (sp->n == TMPL_SPANS_MAX) {
            sp->n = -1;
        } else {
            sp->v[sp->n].at = (uint32_t)at;
            sp->v[sp->n].len = (uint32_t)(out->len - at);
            sp->v[sp->n++].var = (uint8_t)dv;
        }
    }
    return r;
}

/* pre: record the recipient's variables as holes there instead. */
static hr_t render_var(const char *name, size_t n, const tmpl_ctx_t *ctx, buf_t *out, tmpl_pre_t *pre)
{
    const event_t *ev = ctx->ev;
    if (pre && (name_is(name, n, "user_id") || name_is(name, n, "user.locale"))) {
        if (pre->nholes < 0 || pre->nholes == TMPL_PRE_HOLES) {
            pre->nholes = -1;
            return HR_OK;
        }
        pre->holes[pre->nholes].at = (uint32_t)out->len;
        pre->holes[pre->nholes++].var = name_is(name, n, "user_id") ? 0 : 1;
        return HR_OK;
    }
    if (n > 5 && memcmp(name, "data.", 5) == 0) {
        event_value_t tv;
        if (ev && event_data_find(ev, name + 5, n - 5, &tv)) { /* no JSON tree */
            if (!tv.found) return HR_OK;
            switch (tv.kind) {
            case EV_STRING:
            case EV_INTEGER: return out_put(out, tv.text, tv.len); /* as render_json writes them */
            case EV_TRUE: return out_put(out, "true", 4);
            case EV_FALSE: return out_put(out, "false", 5);
            default: return HR_OK;
            }
        }
        json_t *v = ev ? data_lookup(event_data(ev), name + 5, n - 5) : NULL;
        return v ? render_json(out, v) : HR_OK;
    }
    if (name_is(name, n, "user_id")) return append_cstr(out, ctx->user_id);
    if (name_is(name, n, "user.locale")) return append_cstr(out, ctx->locale);
    int dv = digest_var(name, n);
    if (dv >= 0) return render_digest_var(dv, ctx, out);
    if (!ev) return HR_OK;
    if (name_is(name, n, "event_id")) return append_cstr(out, ev->event_id);
    if (name_is(name, n, "type")) return append_cstr(out, ev->type);
    if (name_is(name, n, "actor")) return append_cstr(out, ev->actor);
    if (name_is(name, n, "category"))
        return append_cstr(out, ev->category ? ev->category : "default");
    if (name_is(name, n, "source")) return append_cstr(out, ev->source);
    if (name_is(name, n, "tenant")) return append_cstr(out, ev->tenant);
    if (name_is(name, n, "priority")) return append_cstr(out, priority_name(ev->priority));
    return HR_OK;
}

static hr_t render(const char *tmpl, const tmpl_ctx_t *ctx, buf_t *out, tmpl_pre_t *pre)
{
    hr_t r = HR_OK;
    const char *p = tmpl ? tmpl : "";

    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            r = out_put(out, p, strlen(p));
            break;
        }
        size_t run = brace_run(open);
        const char *name = NULL;
        size_t name_len = 0;
        const char *after = run == 2 ? scan_var(open, &name, &name_len) : NULL;
        if (!after) {
            /* Literal: the whole brace run ("{{{..."), or a stray "{{". */
            after = open + (run > 2 ? run : 2);
            if ((r = out_put(out, p, (size_t)(after - p))) != HR_OK) break;
        } else {
            if ((r = out_put(out, p, (size_t)(open - p))) != HR_OK) break;
            if ((r = render_var(name, name_len, ctx, out, pre)) != HR_OK) break;
        }
        p = after;
    }

    return r;
}

hr_t tmpl_render(const char *tmpl, const tmpl_ctx_t *ctx, buf_t *out)
{
    return render(tmpl, ctx, out, NULL);
}

void tmpl_pre_init(tmpl_pre_t *pre)
{
    memset(pre, 0, sizeof(*pre));
    buf_init(&pre->text, 0);
}

void tmpl_pre_release(tmpl_pre_t *pre) { buf_release(&pre->text); }

void tmpl_prerender(const char *tmpl, const event_t *ev, tmpl_pre_t *pre)
{
    buf_reset(&pre->text);
    pre->nholes = 0;
    pre->tmpl = tmpl;
    pre->ev = ev;
    tmpl_ctx_t ctx = {.ev = ev};
    if (render(tmpl, &ctx, &pre->text, pre) != HR_OK) pre->nholes = -1; /* out of memory: the slow way */
}

hr_t tmpl_finish(const tmpl_pre_t *pre, const char *user_id, const char *locale, buf_t *out)
{
    if (pre->nholes < 0) {
        tmpl_ctx_t ctx = {.ev = pre->ev, .user_id = user_id, .locale = locale};
        return render(pre->tmpl, &ctx, out, NULL);
    }
    const char *t = pre->text.data ? pre->text.data : "";
    size_t at = 0;
    hr_t r = HR_OK;
    for (int i = 0; i < pre->nholes && r == HR_OK; i++) {
        if ((r = out_put(out, t + at, pre->holes[i].at - at)) != HR_OK) break;
        at = pre->holes[i].at;
        r = append_cstr(out, pre->holes[i].var == 0 ? user_id : locale);
    }
    if (r == HR_OK) r = out_put(out, t + at, pre->text.len - at);
    return r;
}

static hr_t check_fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static hr_t check_fail(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return HR_INVALID;
}

static bool known_var(const char *name, size_t n)
{
    if (n > 5 && memcmp(name, "data.", 5) == 0) {
        /* Every segment must be non-empty: "data.a..b" or "data.a." never match. */
        for (size_t i = 4; i < n; i++) {
            if (name[i] == '.' && (i + 1 == n || name[i + 1] == '.')) return false;
        }
        return true;
    }
    for (size_t i = 0; i < ARRAY_LEN(plain_vars); i++) {
        if (name_is(name, n, plain_vars[i])) return true;
    }
    return false;
}

hr_t tmpl_check(const char *tmpl, char *why, size_t why_len)
{
    if (!tmpl) return check_fail(why, why_len, "template is missing");
    const char *p = tmpl;
    const char *open;
    while ((open = strstr(p, "{{"))) {
        size_t run = brace_run(open);
        size_t at = (size_t)(open - tmpl);
        if (run > 2) {
            p = open + run; /* literal */
            continue;
        }
        const char *name;
        size_t name_len;
        const char *after = scan_var(open, &name, &name_len);
        if (!after)
            return check_fail(why, why_len,
                              "\"{{\" at offset %zu does not open a variable like {{actor}}", at);
        if (!known_var(name, name_len))
            return check_fail(why, why_len, "unknown variable \"%.*s\" at offset %zu",
                              (int)(name_len > 64 ? 64 : name_len), name, at);
        p = after;
    }
    if (why && why_len) why[0] = '\0';
    return HR_OK;
}
