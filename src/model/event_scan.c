/*
 * event_scan.c - the fast path for POST /v1/events bodies (event.h,
 * event_scan_batch).
 *
 * WHY HAND-WRITTEN
 *  jansson builds a tree of the whole body (a node and a hash table per
 *  object, a copy per string), event_from_json walks it, and event_encode
 *  dumps data back to text: measured on the benchmark's events (252 bytes,
 *  ~5 users each), 11.6 + 3.2 + 3.3 + 2.2 (free) CPU-µs per event, about
 *  4 µs per notification, i.e. all of ingest's cost. Events in the common
 *  shape need none of that: this scanner reads the text once and writes
 *  the event's strings where event_encode will copy them from.
 *
 * WHAT IT TAKES, AND WHY IT NEVER DECIDES ALONE
 *  Only what it can check completely: herald-shape members (event_id, type,
 *  source, time, actor, tenant, category, priority, channels, audience,
 *  send_at, traceparent, data), strings without escapes, integers of at most
 *  18 digits, nesting up to SC_DEPTH, at most SC_KEYS keys per object.
 *  Anything else - null members, content, CloudEvents, unknown members,
 *  reals, escapes, and every invalid input - answers HR_AGAIN and the caller
 *  parses with jansson, which accepts it or names the problem. So the fast
 *  path accepts a subset of what jansson + event_from_json accept, and for
 *  that subset gives the same events; event_encode writes the same bytes
 *  (data's text is written compact, as jansson's JSON_COMPACT dump of it
 *  reads). tests/unit/model/test_event_scan.c and tests/fuzz/
 *  fuzz_event_scan.c compare the two paths record for record.
 */
#include "model/event.h"

#include "core/text.h"
#include "model/tenant.h"

#include <stdlib.h>
#include <string.h>

#define SC_DEPTH 32   /* data nesting the fast path follows (jansson: 2048) */
#define SC_KEYS 64    /* keys per data object it checks for duplicates */
#define SC_DIGITS 18  /* an integer of at most this many digits fits int64 */


typedef struct sc {
    const unsigned char *p, *end;
    buf_t *st;                  /* where the events' strings go; never grows
                                 * (NULL: only check, as event_data_find does) */
} sc_t;

static void ws(sc_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool lit(sc_t *s, char c)
{
    ws(s);
    if (s->p >= s->end || *s->p != (unsigned char)c) return false;
    s->p++;
    return true;
}

/* After an item of a list closed by `close`: 1 when a ',' says another
 * follows, 0 when `close` ends the list, -1 for anything else. */
static int more(sc_t *s, char close)
{
    ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        return 1;
    }
    return lit(s, close) ? 0 : -1;
}

/* A string without escapes or control characters, well-formed UTF-8:
 * *at, *n = its bytes (in the text). */
static bool str(sc_t *s, const char **at, size_t *n)
{
    ws(s);
    if (s->p >= s->end || *s->p != '"') return false;
    const unsigned char *b = ++s->p, *q = b;
    unsigned char high = 0;
    while (q < s->end && *q != '"' && *q != '\\' && *q >= 0x20) high |= *q++;
    if (q >= s->end || *q != '"') return false;
    if ((high & 0x80) && !utf8_valid((const char *)b, (size_t)(q - b))) return false;
    *at = (const char *)b;
    *n = (size_t)(q - b);
    s->p = q + 1;
    return true;
}

/* Room left in the strings' buffer (reserved once: pointers into it stay). */
static bool room(sc_t *s, size_t n) { return s->st->cap - s->st->len > n; /* and buf's NUL */ }

/* Copies n bytes and a NUL to the strings' buffer; NULL without room. */
static const char *keep(sc_t *s, const char *p, size_t n)
{
    if (!room(s, n + 1)) return NULL;
    char *d = s->st->data + s->st->len;
    memcpy(d, p, n);
    d[n] = '\0';
    s->st->len += n + 1;
    return d;
}

static bool put(sc_t *s, const void *p, size_t n)
{
    if (!s->st) return true;
    if (!room(s, n)) return false;
    memcpy(s->st->data + s->st->len, p, n);
    s->st->len += n;
    return true;
}

/* An id as take_id() wants it: 1..max bytes (max 0: any), printable. */
static bool id_ok(const char *p, size_t n, size_t max)
{
    return n > 0 && (!max || n <= max) && utf8_printable(p, n);
}

/* A string member kept as a C string. */
static bool str_kept(sc_t *s, const char **out, size_t *n)
{
    const char *p;
    if (!str(s, &p, n)) return false;
    return (*out = keep(s, p, *n)) != NULL;
}

/* One JSON value of data, copied compact (no whitespace) to the buffer. */
static bool value(sc_t *s, int depth)
{
    ws(s);
    if (s->p >= s->end) return false;
    unsigned char c = *s->p;
    if (c == '"') {
        const char *p;
        size_t n;
        return str(s, &p, &n) && put(s, "\"", 1) && put(s, p, n) && put(s, "\"", 1);
    }
    if (c == '{' || c == '[') {
        if (depth >= SC_DEPTH) return false;
        bool obj = c == '{';
        char close = obj ? '}' : ']';
        s->p++;
        if (!put(s, &c, 1)) return false;
        ws(s);
        if (s->p < s->end && *s->p == (unsigned char)close) {
            s->p++;
            return put(s, &close, 1);
        }
        const char *keys[SC_KEYS];
        size_t klen[SC_KEYS];
        int nk = 0;
        for (;;) {
            if (obj) {
                const char *k;
                size_t kn;
                if (nk == SC_KEYS || !str(s, &k, &kn)) return false;
                for (int i = 0; i < nk; i++) /* jansson: JSON_REJECT_DUPLICATES */
                    if (klen[i] == kn && memcmp(keys[i], k, kn) == 0) return false;
                keys[nk] = k;
                klen[nk++] = kn;
                if (!put(s, "\"", 1) || !put(s, k, kn) || !put(s, "\":", 2) || !lit(s, ':')) return false;
            }
            if (!value(s, depth + 1)) return false;
            int m = more(s, close);
            if (m < 0 || !put(s, m ? "," : &close, 1)) return false;
            if (m == 0) return true;
        }
    }
    if (c == 't' || c == 'f' || c == 'n') {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(w);
        if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return false;
        s->p += n;
        return put(s, w, n);
    }
    /* an integer: -?(0|[1-9][0-9]*), no fraction or exponent (jansson
     * writes reals back in its own form), not -0 (it writes 0) */
    const unsigned char *b = s->p, *q = b;
    if (*q == '-') q++;
    if (q >= s->end || *q < '0' || *q > '9') return false;
    const unsigned char *d = q;
    if (*q == '0') q++;
    else
        while (q < s->end && *q >= '0' && *q <= '9') q++;
    if (q - d > SC_DIGITS || (b != d && *d == '0')) return false;
    if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9'))) return false;
    s->p = q;
    return put(s, b, (size_t)(q - b));
}

/* "users": [ids], written as a record's user list (event.h). */
static bool users(sc_t *s, event_t *e)
{
    if (!lit(s, '[')) return false;
    e->rec_users = s->st->data + s->st->len;
    size_t count = 0;
    for (;;) {
        const char *p;
        size_t n;
        if (!str(s, &p, &n) || !id_ok(p, n, EVENT_ID_MAX) || ++count > AUDIENCE_USERS_MAX) return false;
        uint16_t n16 = (uint16_t)n;
        if (!put(s, &n16, 2) || !keep(s, p, n)) return false;
        int m = more(s, ']');
        if (m < 0) return false;
        if (m == 0) break;
    }
    e->audience = AUD_USERS;
    e->audience_n = count;
    return true;
}

/* "audience": exactly one of users, topic, followers_of. */
static bool audience(sc_t *s, event_t *e)
{
    const char *k;
    size_t kn;
    if (!lit(s, '{') || !str(s, &k, &kn) || !lit(s, ':')) return false;
    if (kn == 5 && memcmp(k, "users", 5) == 0) {
        if (!users(s, e)) return false;
    } else {
        bool topic = kn == 5 && memcmp(k, "topic", 5) == 0;
        if (!topic && !(kn == 12 && memcmp(k, "followers_of", 12) == 0)) return false;
        const char *v;
        size_t n;
        if (!str_kept(s, &v, &n) || !id_ok(v, n, EVENT_ID_MAX)) return false;
        e->audience = topic ? AUD_TOPIC : AUD_FOLLOWERS;
        if (topic) e->audience_topic = v;
        else e->audience_followers_of = v;
    }
    return lit(s, '}'); /* a second kind (or the same twice) goes to jansson */
}

/* "channels": a non-empty array of channel names. */
static bool channels(sc_t *s, event_t *e)
{
    if (!lit(s, '[')) return false;
    unsigned mask = 0;
    for (;;) {
        const char *p;
        size_t n;
        if (!str(s, &p, &n)) return false;
        int c = channel_parse(p, n);
        if (c < 0) return false;
        mask |= 1u << c;
        int m = more(s, ']');
        if (m < 0) return false;
        if (m == 0) break;
    }
    e->channels_mask = mask;
    return true;
}

enum { K_EVENT_ID, K_TYPE, K_SOURCE, K_TIME, K_ACTOR, K_TENANT, K_CATEGORY, K_PRIORITY, K_CHANNELS,
       K_AUDIENCE, K_SEND_AT, K_TRACEPARENT, K_DATA, K__N };
static const char *const members[K__N] = {"event_id", "type",     "source",   "time",     "actor",
                                          "tenant",   "category", "priority", "channels", "audience",
                                          "send_at",  "traceparent", "data"};

/* One event object; false = not for the fast path. */
static bool event(sc_t *s, event_t *e, int64_t now_ms)
{
    memset(e, 0, sizeof(*e));
    e->rec = true;
    e->priority = PRIO_NORMAL;
    e->category = "default";
    if (!lit(s, '{')) return false;
    unsigned seen = 0;
    for (;;) {
        const char *k, *v;
        size_t kn, n;
        if (!str(s, &k, &kn) || !lit(s, ':')) return false;
        int m = 0;
        while (m < K__N && !(strlen(members[m]) == kn && memcmp(members[m], k, kn) == 0)) m++;
        if (m == K__N || (seen & (1u << m))) return false;
        seen |= 1u << m;
        switch (m) {
        case K_EVENT_ID:
            if (!str_kept(s, &e->event_id, &n) || !id_ok(e->event_id, n, EVENT_ID_MAX)) return false;
            break;
        case K_TYPE:
            if (!str_kept(s, &e->type, &n) || !id_ok(e->type, n, EVENT_TYPE_MAX)) return false;
            break;
        case K_SOURCE:
            if (!str_kept(s, &e->source, &n)) return false;
            break;
        case K_TIME:
            if (!str_kept(s, &v, &n) || parse_rfc3339_ms(v, &e->time_ms) != HR_OK) return false;
            break;
        case K_ACTOR:
            if (!str_kept(s, &e->actor, &n) || !id_ok(e->actor, n, 0)) return false;
            break;
        case K_TENANT:
            if (!str_kept(s, &e->tenant, &n) || !tenant_name_valid(e->tenant)) return false;
            break;
        case K_CATEGORY:
            if (!str_kept(s, &v, &n)) return false;
            if (n) e->category = v;
            break;
        case K_PRIORITY: {
            if (!str(s, &v, &n)) return false;
            int p = priority_parse(v, n);
            if (p < 0) return false;
            e->priority = (priority_t)p;
            break;
        }
        case K_CHANNELS:
            if (!channels(s, e)) return false;
            break;
        case K_AUDIENCE:
            if (!audience(s, e)) return false;
            break;
        case K_SEND_AT:
            if (!str_kept(s, &v, &n) || parse_rfc3339_ms(v, &e->send_at_ms) != HR_OK ||
                e->send_at_ms > now_ms + EVENT_SEND_AT_MAX_AHEAD_MS)
                return false;
            if (e->send_at_ms <= 0) e->send_at_ms = 0;
            break;
        case K_TRACEPARENT:
            if (!str(s, &v, &n) || trace_normalize(v, n, e->traceparent, NULL) != HR_OK) return false;
            break;
        case K_DATA: {
            ws(s);
            if (s->p >= s->end || *s->p != '{') return false;
            size_t at = s->st->len;
            if (!value(s, 0) || !put(s, "", 1)) return false;
            e->data_text = s->st->data + at;
            e->data_len = s->st->len - at - 1;
            e->data_compact = true;
            break;
        }
        }
        int more_members = more(s, '}');
        if (more_members < 0) return false;
        if (more_members == 0) break;
    }
    return (seen & (1u << K_EVENT_ID)) && (seen & (1u << K_TYPE)) && (seen & (1u << K_AUDIENCE));
}

hr_t event_scan_batch(const char *text, size_t len, int max, buf_t *strings, event_t **out, int *n,
                      bool *is_array)
{
    *out = NULL;
    *n = 0;
    *is_array = false;
    int cap = 0;
    event_t *evs = NULL;
    /* every string, user entry and data byte comes from the text, each
     * with at most 3 bytes more than its quotes and separators took */
    buf_reset(strings);
    if (buf_reserve(strings, len + 64) != HR_OK) return HR_AGAIN;
    sc_t s = {(const unsigned char *)text, (const unsigned char *)text + len, strings};
    int64_t now_ms = hclock_now_ms();
    ws(&s);
    bool array = s.p < s.end && *s.p == '[';
    if (array) s.p++;
    int count = 0;
    for (;;) {
        if (count == max) goto fallback;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            evs = xrealloc(evs, (size_t)cap * sizeof(*evs));
        }
        if (!event(&s, &evs[count], now_ms)) {
            count++; /* partly filled: cleared below */
            goto fallback;
        }
        count++;
        if (!array) break;
        int m = more(&s, ']');
        if (m < 0) goto fallback;
        if (m == 0) break;
    }
    ws(&s);
    if (s.p != s.end) goto fallback;
    *out = evs;
    *n = count;
    *is_array = array;
    return HR_OK;
fallback:
    for (int i = 0; i < count; i++) event_clear(&evs[i]);
    free(evs);
    buf_reset(strings);
    return HR_AGAIN;
}

/* ---- data's text read in place (templates' {{data.x}}) ----
 * A record's data arrives as text; jansson made a tree of it for every
 * event that a template reads it for (20 % of fan-out's CPU in the
 * benchmark). When the text is in the fast path's subset (checked once per
 * event, with the same value() the scanner uses: no escapes, reals, -0,
 * duplicate keys), a path is walked on the text itself; any other text
 * goes to jansson as before. */

/* Skips one value (known good: checked by event_data_simple). */
static void skip(sc_t *s)
{
    ws(s);
    unsigned char c = *s->p;
    if (c == '"') {
        s->p++;
        while (*s->p != '"') s->p++;
        s->p++;
    } else if (c == '{' || c == '[') {
        int depth = 0;
        do { /* strings hold no escapes: a quote always ends one */
            c = *s->p++;
            if (c == '"') {
                while (*s->p != '"') s->p++;
                s->p++;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                depth--;
            }
        } while (depth > 0);
    } else {
        while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' &&
               *s->p != '\t' && *s->p != '\n' && *s->p != '\r')
            s->p++;
    }
}

/* Skips a list item (known good) and the ',' after it, if any. */
static void skip_item(sc_t *s)
{
    skip(s);
    ws(s);
    if (*s->p == ',') s->p++;
    ws(s);
}

/* Is the event's data text in the subset read in place? Once per event. */
static bool data_simple(const event_t *ev)
{
    event_t *m = (event_t *)ev; /* decided once, on first use (like event_data) */
    if (!m->data_checked) {
        m->data_checked = true;
        sc_t s = {(const unsigned char *)ev->data_text, (const unsigned char *)ev->data_text + ev->data_len,
                  NULL};
        ws(&s);
        m->data_simple = s.p < s.end && *s.p == '{' && value(&s, 0);
        if (m->data_simple) {
            ws(&s);
            m->data_simple = s.p == s.end;
        }
    }
    return m->data_simple;
}

bool event_data_find(const event_t *ev, const char *path, size_t n, event_value_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!ev->rec || !ev->data_text || !data_simple(ev)) return false;
    sc_t s = {(const unsigned char *)ev->data_text, (const unsigned char *)ev->data_text + ev->data_len,
              NULL};
    const char *end = path + n;
    ws(&s);
    for (;;) {
        const char *dot = memchr(path, '.', (size_t)(end - path));
        const char *seg_end = dot ? dot : end;
        size_t sl = (size_t)(seg_end - path);
        if (sl == 0) return true; /* missing */
        unsigned char c = *s.p;
        bool found = false;
        if (c == '{') {
            s.p++;
            ws(&s);
            while (*s.p != '}') {
                const char *k;
                size_t kn;
                (void)str(&s, &k, &kn);
                lit(&s, ':');
                ws(&s);
                if (kn == sl && memcmp(k, path, sl) == 0) { /* keys are unique (checked) */
                    found = true;
                    break;
                }
                skip_item(&s);
            }
        } else if (c == '[') {
            size_t idx = 0; /* data_lookup's rule: digits only, at most 1000000 */
            for (const char *q = path; q < seg_end; q++) {
                if (*q < '0' || *q > '9' || idx > 1000000) return true;
                idx = idx * 10 + (size_t)(*q - '0');
            }
            s.p++;
            ws(&s);
            for (size_t i = 0; *s.p != ']'; i++) {
                if (i == idx) {
                    found = true;
                    break;
                }
                skip_item(&s);
            }
        }
        if (!found) return true;
        if (!dot) break;
        path = dot + 1;
    }
    unsigned char c = *s.p;
    out->found = true;
    if (c == '"') {
        const char *v;
        size_t vn;
        (void)str(&s, &v, &vn);
        out->kind = EV_STRING;
        out->text = v;
        out->len = vn;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const unsigned char *b = s.p;
        skip(&s);
        out->kind = EV_INTEGER;
        out->text = (const char *)b;
        out->len = (size_t)(s.p - b);
    } else if (c == 't' || c == 'f') {
        out->kind = c == 't' ? EV_TRUE : EV_FALSE;
    } else {
        out->kind = EV_OTHER; /* null, object, array */
    }
    return true;
}
