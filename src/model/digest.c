/*
 * digest.c - windows, ids, the record metadata of digests and the splice
 * of the delivered text (digest.h).
 *
 * Metadata (the record's JSON object, written only here):
 *   member: {"digest":{"w":<window ms>,"k":"<dkey>","a":"<actor>",
 *             "t":[[at,len,var],...],"b":[[at,len,var],...]}}
 *   token:  {"digest_flush":{...the same...}}
 * Members are a small share of the records and are read once, by the
 * dispatcher, so jansson reads them; a record without metadata costs a
 * length check.
 */
#include "model/digest.h"

#include "core/json_write.h"
#include "core/sha256.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexd[] = "0123456789abcdef";

static hr_t fail(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static hr_t fail(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return HR_INVALID;
}

hr_t digest_window_parse(const char *s, int64_t *ms, char *why, size_t why_len)
{
    *ms = 0;
    if (!s || !*s) return fail(why, why_len, "must be a duration like 10m, 90s or 2h");
    int64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > DIGEST_WINDOW_MAX_MS) break;
        v = v * 10 + (*p++ - '0');
    }
    if (p == s) return fail(why, why_len, "must be a duration like 10m, 90s or 2h");
    int64_t unit;
    if (strcmp(p, "ms") == 0) unit = 1;
    else if (strcmp(p, "s") == 0) unit = 1000;
    else if (strcmp(p, "m") == 0) unit = 60 * 1000;
    else if (strcmp(p, "h") == 0) unit = 3600 * 1000;
    else if (strcmp(p, "d") == 0) unit = 24 * 3600 * 1000;
    else return fail(why, why_len, "must be a duration like 10m, 90s or 2h (units ms, s, m, h, d)");
    if (v > DIGEST_WINDOW_MAX_MS || v * unit > DIGEST_WINDOW_MAX_MS || v * unit < DIGEST_WINDOW_MIN_MS)
        return fail(why, why_len, "must be between 1s and 7d");
    *ms = v * unit;
    if (why && why_len) why[0] = '\0';
    return HR_OK;
}

void digest_window_format(int64_t ms, char *out, size_t cap)
{
    static const struct {
        int64_t unit;
        const char *name;
    } units[] = {{24 * 3600 * 1000, "d"}, {3600 * 1000, "h"}, {60 * 1000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (ms > 0 && ms % units[i].unit == 0) {
            snprintf(out, cap, "%lld%s", (long long)(ms / units[i].unit), units[i].name);
            return;
        }
    }
    snprintf(out, cap, "%lldms", (long long)ms);
}

hr_t digest_key_check(const char *tmpl, char *why, size_t why_len)
{
    if (!tmpl || !*tmpl) return fail(why, why_len, "must be a non-empty template like {{data.post_id}}");
    if (strlen(tmpl) > DIGEST_KEY_TMPL_MAX)
        return fail(why, why_len, "must be at most %d bytes", DIGEST_KEY_TMPL_MAX);
    if (tmpl_check(tmpl, why, why_len) != HR_OK) return HR_INVALID;
    tmpl_spans_t sp = {0};
    buf_t b;
    buf_init(&b, 0);
    tmpl_ctx_t ctx = {.spans = &sp};
    tmpl_render(tmpl, &ctx, &b);
    buf_release(&b);
    if (sp.n != 0) return fail(why, why_len, "cannot use {{digest.*}} variables");
    return HR_OK;
}

void digest_make_id(hstr_t user_id, channel_t ch, hstr_t dkey, int64_t opened_at_ms, char out[33])
{
    const char *cn = channel_name(ch);
    size_t cl = strlen(cn);
    char at[24];
    int al = snprintf(at, sizeof(at), "%lld", (long long)opened_at_ms);
    size_t total = 7 + user_id.n + 1 + cl + 1 + dkey.n + 1 + (size_t)al;
    unsigned char *m = xmalloc(total), *p = m;
    memcpy(p, "digest", 7); /* with its NUL */
    p += 7;
    if (user_id.n) memcpy(p, user_id.p, user_id.n);
    p += user_id.n;
    *p++ = '\0';
    memcpy(p, cn, cl);
    p += cl;
    *p++ = '\0';
    if (dkey.n) memcpy(p, dkey.p, dkey.n);
    p += dkey.n;
    *p++ = '\0';
    memcpy(p, at, (size_t)al);
    unsigned char md[32];
    sha256(m, total, md);
    free(m);
    int64_t t = opened_at_ms < 0 ? 0 : opened_at_ms > 0xffffffffffffLL ? 0xffffffffffffLL : opened_at_ms;
    for (int i = 11; i >= 0; i--) {
        out[i] = hexd[t & 15];
        t >>= 4;
    }
    for (int i = 0; i < 10; i++) {
        out[12 + 2 * i] = hexd[md[i] >> 4];
        out[12 + 2 * i + 1] = hexd[md[i] & 15];
    }
    out[32] = '\0';
}

/* ---- metadata ---- */

static void spans_write(jw_t *w, const char *key, size_t kn, const tmpl_spans_t *sp)
{
    jw_raw(w, key, kn);
    jw_lit(w, "[");
    for (int i = 0; i < sp->n; i++) {
        char t[64];
        int n = snprintf(t, sizeof(t), "%s[%u,%u,%u]", i ? "," : "", sp->v[i].at, sp->v[i].len,
                         (unsigned)sp->v[i].var);
        jw_raw(w, t, (size_t)n);
    }
    jw_lit(w, "]");
}

hr_t digest_meta_write(const digest_meta_t *m, buf_t *out)
{
    if (m->kind != DIGEST_MEMBER && m->kind != DIGEST_FLUSH) return HR_INVALID;
    jw_t w = JW_INIT(out);
    if (m->kind == DIGEST_MEMBER) jw_lit(&w, "{\"digest\":{");
    else jw_lit(&w, "{\"digest_flush\":{");
    jw_key_int(&w, JW_KEY0("w"), m->window_ms);
    jw_key_str(&w, JW_KEY("k"), m->dkey ? m->dkey : "", m->dkey ? strlen(m->dkey) : 0);
    jw_key_str(&w, JW_KEY("a"), m->actor ? m->actor : "", m->actor ? strlen(m->actor) : 0);
    spans_write(&w, JW_KEY("t"), &m->title);
    spans_write(&w, JW_KEY("b"), &m->body);
    jw_lit(&w, "}}");
    return w.r;
}

static bool spans_read(json_t *a, tmpl_spans_t *sp)
{
    sp->n = 0;
    if (!a) return true;
    if (!json_is_array(a) || json_array_size(a) > TMPL_SPANS_MAX) return false;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        json_t *x = json_array_get(e, 0), *y = json_array_get(e, 1), *z = json_array_get(e, 2);
        if (!json_is_integer(x) || !json_is_integer(y) || !json_is_integer(z)) return false;
        json_int_t at = json_integer_value(x), len = json_integer_value(y), var = json_integer_value(z);
        if (at < 0 || at > UINT32_MAX || len < 0 || len > UINT32_MAX || var < 0 || var >= TMPL_DV__COUNT)
            return false;
        sp->v[sp->n].at = (uint32_t)at;
        sp->v[sp->n].len = (uint32_t)len;
        sp->v[sp->n++].var = (uint8_t)var;
    }
    return true;
}

hr_t digest_meta_read(hstr_t metadata, digest_meta_t *out)
{
    memset(out, 0, sizeof(*out));
    static const char pm[] = "{\"digest\":", pf[] = "{\"digest_flush\":";
    digest_kind_t kind;
    if (metadata.n > sizeof(pm) - 1 && memcmp(metadata.p, pm, sizeof(pm) - 1) == 0) kind = DIGEST_MEMBER;
    else if (metadata.n > sizeof(pf) - 1 && memcmp(metadata.p, pf, sizeof(pf) - 1) == 0) kind = DIGEST_FLUSH;
    else return HR_NOTFOUND;
    json_t *doc = json_loadb(metadata.p, metadata.n, 0, NULL);
    json_t *d = doc ? json_object_get(doc, kind == DIGEST_MEMBER ? "digest" : "digest_flush") : NULL;
    hr_t r = HR_INVALID;
    json_t *w = json_object_get(d, "w"), *k = json_object_get(d, "k"), *a = json_object_get(d, "a");
    if (json_is_integer(w) && json_is_string(k) && (!a || json_is_string(a)) &&
        json_integer_value(w) >= DIGEST_WINDOW_MIN_MS && json_integer_value(w) <= DIGEST_WINDOW_MAX_MS &&
        spans_read(json_object_get(d, "t"), &out->title) && spans_read(json_object_get(d, "b"), &out->body)) {
        out->kind = kind;
        out->window_ms = json_integer_value(w);
        out->dkey = xstrndup(json_string_value(k), json_string_length(k));
        out->actor = a ? xstrndup(json_string_value(a), json_string_length(a)) : xstrdup("");
        r = HR_OK;
    }
    json_decref(doc);
    return r;
}

void digest_meta_clear(digest_meta_t *m)
{
    if (!m) return;
    free(m->dkey);
    free(m->actor);
    memset(m, 0, sizeof(*m));
}

/* ---- the delivered text ---- */

/* Appends what fits, cut before a UTF-8 continuation byte (template.c's rule). */
static hr_t put(buf_t *out, const char *p, size_t n)
{
    hr_t r = buf_append(out, p, n);
    if (r != HR_AGAIN) return r;
    size_t room = out->limit > out->len ? out->limit - out->len : 0;
    if (room >= n) return r;
    while (room > 0 && ((unsigned char)p[room] & 0xC0) == 0x80) room--;
    if (room) buf_append(out, p, room);
    return HR_AGAIN;
}

hr_t digest_splice(hstr_t text, const tmpl_spans_t *sp, const digest_vals_t *v, buf_t *out)
{
    size_t at = 0;
    hr_t r = HR_OK;
    const char *t = text.p ? text.p : "";
    for (int i = 0; sp && i < sp->n && r == HR_OK; i++) {
        size_t s = sp->v[i].at, e = s + sp->v[i].len;
        if (s < at || e > text.n) continue; /* cut off, or not in order: left as rendered */
        if ((r = put(out, t + at, s - at)) != HR_OK) break;
        char num[24];
        const char *val;
        switch (sp->v[i].var) {
        case TMPL_DV_COUNT:
            snprintf(num, sizeof(num), "%lld", (long long)v->count);
            val = num;
            break;
        case TMPL_DV_OTHERS:
            snprintf(num, sizeof(num), "%lld", (long long)(v->count > 0 ? v->count - 1 : 0));
            val = num;
            break;
        case TMPL_DV_FIRST: val = v->first_actor ? v->first_actor : ""; break;
        default: val = v->last_actor ? v->last_actor : ""; break;
        }
        r = put(out, val, strlen(val));
        at = e;
    }
    if (r == HR_OK) r = put(out, t + at, text.n - at);
    return r;
}

hr_t digest_token_make(const void *rec, size_t rec_len, const char *digest_id, int64_t due_at_ms,
                       buf_t *out)
{
    notif_t n;
    digest_meta_t m;
    if (notif_decode(rec, rec_len, &n) != HR_OK || n.kind != REC_NOTIFICATION) return HR_INVALID;
    hr_t r = digest_meta_read(n.metadata, &m);
    if (r != HR_OK || m.kind != DIGEST_MEMBER) {
        digest_meta_clear(&m);
        return HR_INVALID;
    }
    m.kind = DIGEST_FLUSH;
    buf_t meta;
    buf_init(&meta, 0);
    r = digest_meta_write(&m, &meta);
    if (r == HR_OK) {
        n.notification_id = HSTR(digest_id);
        n.attempt = 1;
        n.due_at_ms = due_at_ms;
        n.metadata = (hstr_t){meta.data, meta.len};
        r = notif_encode(&n, out);
    }
    buf_release(&meta);
    digest_meta_clear(&m);
    return r;
}
