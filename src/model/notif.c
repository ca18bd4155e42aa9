/*
 * notif.c - names of channels, priorities and statuses; the binary record
 * codec; the JSON form; deterministic notification ids.
 *
 * DESIGN. The binary codec runs once per record per hop, so it is written
 * for speed: encode computes the exact size, reserves once and writes in
 * place; decode is zero-copy (strings point into the input), allocates
 * nothing, and checks every length against the bytes that remain before
 * touching them. Integers are assembled byte by byte, which is
 * endian-independent; compilers fold it into single loads and stores.
 *
 * The JSON form is written with core/json_write.h (the one escaper, shared
 * with the sandbox provider): a single pass, valid JSON for any input.
 */
#include "model/notif.h"
#include "model/tenant.h"

#include "core/sha256.h"

#include "core/endian.h"
#include "core/text.h"

#include "core/json_write.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- names */

static const char *const channel_names[CH__COUNT] = {
    [CH_PUSH] = "push",   [CH_SMS] = "sms",         [CH_EMAIL] = "email",
    [CH_INAPP] = "inapp", [CH_WEBHOOK] = "webhook",
};

static const char *const priority_names[] = {
    [PRIO_LOW] = "low",
    [PRIO_NORMAL] = "normal",
    [PRIO_HIGH] = "high",
    [PRIO_CRITICAL] = "critical",
};

static const char *const status_names[ST__COUNT] = {
    [ST_PENDING] = "pending",     [ST_SENT] = "sent",
    [ST_DELIVERED] = "delivered", [ST_FAILED] = "failed",
    [ST_SUPPRESSED] = "suppressed", [ST_RATE_LIMITED] = "rate_limited",
    [ST_DEFERRED] = "deferred",   [ST_DEAD] = "dead",
    [ST_UNDELIVERED] = "undelivered", [ST_BOUNCED] = "bounced",
    [ST_DIGESTED] = "digested",
};

/* Exact, case-sensitive lookup of (s, n) in a name table; -1 if absent. */
static int name_lookup(const char *const *names, int count, const char *s, size_t n)
{
    if (!s) return -1;
    for (int i = 0; i < count; i++) {
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return i;
    }
    return -1;
}

const char *channel_name(channel_t c)
{
    return (unsigned)c < CH__COUNT ? channel_names[c] : "unknown";
}

int channel_parse(const char *s, size_t n)
{
    return name_lookup(channel_names, CH__COUNT, s, n);
}

const char *priority_name(priority_t p)
{
    return (unsigned)p < ARRAY_LEN(priority_names) ? priority_names[p] : "unknown";
}

int priority_parse(const char *s, size_t n)
{
    return name_lookup(priority_names, (int)ARRAY_LEN(priority_names), s, n);
}

const char *status_name(notif_status_t s)
{
    return (unsigned)s < ST__COUNT ? status_names[s] : "unknown";
}

int status_parse(const char *s, size_t n)
{
    return name_lookup(status_names, ST__COUNT, s, n);
}

/* ---------------------------------------------------------------- codec */

/* magic, version, kind, channel, priority, status (u8 each), attempt (u16),
 * four i64 timestamps; version 2 adds two i16 (quiet hours). */
#define NOTIF_HEADER_V1_LEN 40
#define NOTIF_HEADER_LEN 44
#define NOTIF_COUNT_ONE(f) +1
#define NOTIF_STRING_V1_COUNT (0 NOTIF_STRINGS_V1(NOTIF_COUNT_ONE))
#define NOTIF_MIN_V1_LEN (NOTIF_HEADER_V1_LEN + 4 * NOTIF_STRING_V1_COUNT)


static bool notif_enums_valid(unsigned kind, unsigned ch, unsigned prio, unsigned st)
{
    return (kind == REC_NOTIFICATION || kind == REC_STATUS) && ch < CH__COUNT && prio <= PRIO_CRITICAL && st < ST__COUNT;
}

/* Both NOTIF_QUIET_NONE, or both minutes of a day. */
static bool notif_quiet_valid(int start, int end)
{
    if (start == NOTIF_QUIET_NONE || end == NOTIF_QUIET_NONE) return start == end;
    return start >= 0 && start < 1440 && end >= 0 && end < 1440;
}

hr_t notif_encode(const notif_t *n, buf_t *out)
{
    if (!notif_enums_valid(n->kind, (unsigned)n->channel, (unsigned)n->priority,
                           (unsigned)n->status) ||
        !notif_quiet_valid(n->quiet_start_min, n->quiet_end_min))
        return HR_INVALID;

    size_t total = NOTIF_HEADER_LEN;
#define NOTIF_SIZE_ONE(f)                                                     \
    if (n->f.n > UINT32_MAX || n->f.n > SIZE_MAX - total - 4) return HR_INVALID; \
    total += 4 + n->f.n;
    NOTIF_STRINGS(NOTIF_SIZE_ONE)
#undef NOTIF_SIZE_ONE

    hr_t r = buf_reserve(out, total);
    if (r != HR_OK) return r;

    unsigned char *p = (unsigned char *)out->data + out->len;
    p[0] = NOTIF_MAGIC;
    p[1] = NOTIF_VERSION;
    p[2] = n->kind;
    p[3] = (unsigned char)n->channel;
    p[4] = (unsigned char)n->priority;
    p[5] = (unsigned char)n->status;
    le_put16(p + 6, n->attempt);
    le_put64(p + 8, n->created_at_ms);
    le_put64(p + 16, n->due_at_ms);
    le_put64(p + 24, n->status_at_ms);
    le_put64(p + 32, n->accepted_at_us);
    le_put16(p + 40, (uint16_t)n->quiet_start_min);
    le_put16(p + 42, (uint16_t)n->quiet_end_min);
    p += NOTIF_HEADER_LEN;
#define NOTIF_WRITE_ONE(f)                                                    \
    le_put32(p, (uint32_t)n->f.n);                                             \
    p += 4;                                                                   \
    if (n->f.n) memcpy(p, n->f.p, n->f.n);                                    \
    p += n->f.n;
    NOTIF_STRINGS(NOTIF_WRITE_ONE)
#undef NOTIF_WRITE_ONE

    out->len += total;
    out->data[out->len] = '\0';
    return HR_OK;
}

hr_t notif_decode(const void *data, size_t len, notif_t *n)
{
    if (data && len > 0 && *(const unsigned char *)data == STATUS_REC_MAGIC)
        return notif_decode_status(data, len, n);
    if (!data || len < NOTIF_MIN_V1_LEN) return HR_INVALID;
    const unsigned char *p = data;
    unsigned version = p[1];
    if (p[0] != NOTIF_MAGIC || version < 1 || version > NOTIF_VERSION) return HR_INVALID;
    if (!notif_enums_valid(p[2], p[3], p[4], p[5])) return HR_INVALID;

    notif_t t;
    t.no_content = false;
    t.kind = p[2];
    t.channel = (channel_t)p[3];
    t.priority = (priority_t)p[4];
    t.status = (notif_status_t)p[5];
    t.attempt = le_get16(p + 6);
    t.created_at_ms = le_get64(p + 8);
    t.due_at_ms = le_get64(p + 16);
    t.status_at_ms = le_get64(p + 24);
    t.accepted_at_us = le_get64(p + 32);
    size_t off = NOTIF_HEADER_V1_LEN;
    t.quiet_start_min = t.quiet_end_min = NOTIF_QUIET_NONE;
    if (version >= 2) {
        if (len - off < 4) return HR_INVALID;
        t.quiet_start_min = (int16_t)le_get16(p + 40);
        t.quiet_end_min = (int16_t)le_get16(p + 42);
        if (!notif_quiet_valid(t.quiet_start_min, t.quiet_end_min)) return HR_INVALID;
        off = NOTIF_HEADER_LEN;
    }

    /* Invariant: off <= len before each step; lengths are compared with
     * what remains, so no sum can overflow and no byte past len is read. */
#define NOTIF_READ_ONE(f)                                                     \
    {                                                                         \
        if (len - off < 4) return HR_INVALID;                                 \
        size_t sl = le_get32(p + off);                                         \
        off += 4;                                                             \
        if (sl > len - off) return HR_INVALID;                                \
        t.f.p = (const char *)p + off;                                        \
        t.f.n = sl;                                                           \
        off += sl;                                                            \
    }
#define NOTIF_EMPTY_ONE(f) t.f = (hstr_t){(const char *)p + off, 0}; /* empty, inside the input */
    NOTIF_STRINGS_V1(NOTIF_READ_ONE)
    if (version >= 2) {
        NOTIF_STRINGS_V2(NOTIF_READ_ONE)
    } else {
        NOTIF_STRINGS_V2(NOTIF_EMPTY_ONE)
    }
    if (version >= 3) {
        NOTIF_STRINGS_V3(NOTIF_READ_ONE)
    } else {
        NOTIF_STRINGS_V3(NOTIF_EMPTY_ONE)
    }
#undef NOTIF_EMPTY_ONE
#undef NOTIF_READ_ONE
    if (off != len) return HR_INVALID; /* trailing bytes: not a record of this version */

    *n = t;
    return HR_OK;
}

/* ----------------------------------------------------------------- JSON */

/* The JSON writer and string escaper live in core/json_write.c. */
#define KEY(name) JW_KEY(name)

static inline void jw_key_s(jw_t *w, const char *key, size_t kn, hstr_t v)
{
    jw_key_str(w, key, kn, v.p, v.n);
}

/* metadata is JSON object text: embedded as an object when it parses as
 * one (re-serialized compactly when it spans lines, so the output stays one
 * line); as a string when it does not; left out when empty. */
static void jw_metadata(jw_t *w, hstr_t md)
{
    if (md.n == 0) return;
    json_t *obj = json_loadb(md.p, md.n, 0, NULL);
    if (!json_is_object(obj)) {
        jw_key_str(w, KEY("metadata"), md.p, md.n);
    } else if (!memchr(md.p, '\n', md.n) && !memchr(md.p, '\r', md.n)) {
        jw_raw(w, KEY("metadata"));
        jw_raw(w, md.p, md.n);
    } else {
        char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        jw_raw(w, KEY("metadata"));
        if (text) jw_raw(w, text, strlen(text));
        else jw_lit(w, "{}");
        free(text);
    }
    json_decref(obj);
}

hr_t notif_to_json(const notif_t *n, buf_t *out)
{
    jw_t w = JW_INIT(out);
    size_t start = out->len;

    jw_lit(&w, "{\"kind\":");
    if (n->kind == REC_STATUS) jw_lit(&w, "\"status\"");
    else jw_lit(&w, "\"notification\"");
    jw_key_s(&w, KEY("notification_id"), n->notification_id);
    /* ids as the tenant named them (tenant.h), and the tenant when it is
     * not the default one */
    hstr_t tenant, uid, etenant, eid;
    tenant_split(n->user_id, &tenant, &uid);
    tenant_split(n->event_id, &etenant, &eid);
    if (!tenant.n) tenant = etenant;
    jw_key_s(&w, KEY("event_id"), eid);
    jw_key_s(&w, KEY("user_id"), uid);
    if (tenant.n) jw_key_s(&w, KEY("tenant"), tenant);
    jw_key_s(&w, KEY("channel"), HSTR(channel_name(n->channel)));
    jw_key_s(&w, KEY("priority"), HSTR(priority_name(n->priority)));
    jw_key_s(&w, KEY("status"), HSTR(status_name(n->status)));
    jw_key_int(&w, KEY("attempt"), n->attempt);
    jw_key_s(&w, KEY("category"), n->category);
    jw_key_s(&w, KEY("title"), n->title);
    jw_key_s(&w, KEY("body"), n->body);
    jw_key_s(&w, KEY("address"), n->address);
    jw_key_s(&w, KEY("platform"), n->platform);
    jw_key_int(&w, KEY("created_at_ms"), n->created_at_ms);
    jw_key_int(&w, KEY("due_at_ms"), n->due_at_ms);
    jw_key_int(&w, KEY("status_at_ms"), n->status_at_ms);
    jw_key_int(&w, KEY("accepted_at_us"), n->accepted_at_us);
    jw_key_s(&w, KEY("channel_msg_id"), n->channel_msg_id);
    jw_key_s(&w, KEY("error"), n->error);
    if (n->traceparent.n) jw_key_s(&w, KEY("traceparent"), n->traceparent);
    jw_metadata(&w, n->metadata);
    jw_lit(&w, "}");

    if (w.r != HR_OK) {
        out->len = start; /* leave the buffer as it was */
        if (out->data) out->data[start] = '\0';
    }
    return w.r;
}

/* ------------------------------------------------------------------- id */

static int64_t id_time_ms(int64_t accepted_at_us)
{
    if (accepted_at_us <= 0) return 0;
    int64_t ms = accepted_at_us / 1000;
    return ms > NOTIF_ID_TIME_MAX ? NOTIF_ID_TIME_MAX : ms;
}

/* The 12 hex digits of the time part. */
static void id_put_time(int64_t ms, char out[12])
{
    for (int i = 11; i >= 0; i--) {
        out[i] = hex_lower[ms & 15];
        ms >>= 4;
    }
}

void notif_id_bound(int64_t at_ms, char out[33])
{
    id_put_time(at_ms < 0 ? 0 : at_ms > NOTIF_ID_TIME_MAX ? NOTIF_ID_TIME_MAX : at_ms, out);
    memset(out + 12, '0', 20);
    out[32] = '\0';
}

int64_t notif_id_time_ms(hstr_t id)
{
    if (id.n != 32 || !id.p) return -1;
    int64_t ms = 0;
    for (size_t i = 0; i < 32; i++) {
        int v = hex_value((unsigned char)id.p[i]);
        if (v < 0) return -1;
        if (i < 12) ms = ms << 4 | v;
    }
    return ms;
}

void notif_make_id(int64_t accepted_at_us, hstr_t event_id, hstr_t user_id, channel_t ch,
                   char out[33])
{
    notif_make_device_id(accepted_at_us, event_id, user_id, ch, (hstr_t){NULL, 0}, out);
}

void notif_make_device_id(int64_t accepted_at_us, hstr_t event_id, hstr_t user_id, channel_t ch,
                          hstr_t device, char out[33])
{
    const char *cn = channel_name(ch);
    size_t cl = strlen(cn);
    size_t total = event_id.n + 1 + user_id.n + 1 + cl + (device.n ? 1 + device.n : 0);
    unsigned char stack[512];
    unsigned char *m = total <= sizeof(stack) ? stack : xmalloc(total);
    unsigned char *p = m;

    if (event_id.n) memcpy(p, event_id.p, event_id.n);
    p += event_id.n;
    *p++ = '\0';
    if (user_id.n) memcpy(p, user_id.p, user_id.n);
    p += user_id.n;
    *p++ = '\0';
    memcpy(p, cn, cl);
    p += cl;
    if (device.n) {
        *p++ = '\0';
        memcpy(p, device.p, device.n);
    }

    unsigned char md[SHA256_DIGEST_LENGTH];
    sha256(m, total, md);
    if (m != stack) free(m);

    id_put_time(id_time_ms(accepted_at_us), out);
    for (int i = 0; i < 10; i++) {
        out[12 + 2 * i] = hex_lower[md[i] >> 4];
        out[12 + 2 * i + 1] = hex_lower[md[i] & 15];
    }
    out[32] = '\0';
}
