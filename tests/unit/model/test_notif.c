/* Unit tests for src/model/notif.c: names, binary codec (versions 1, 2 and 3),
 * JSON form, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/notif.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic xorshift64* so failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static bool hstr_eq(hstr_t a, const void *p, size_t n)
{
    return a.n == n && (n == 0 || memcmp(a.p, p, n) == 0);
}

static const char binary_body[] = {'a', '\0', '\xff', '\x01', '"', '\\', 'z'};

static notif_t sample(void)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = 1;
    n.channel = CH_EMAIL;
    n.priority = PRIO_CRITICAL;
    n.status = ST_RATE_LIMITED;
    n.attempt = 65535;
    n.created_at_ms = 1714564800123;
    n.due_at_ms = -1;
    n.status_at_ms = INT64_MAX;
    n.accepted_at_us = INT64_MIN;
    n.notification_id = HSTR("0123456789abcdef0123456789abcdef");
    n.event_id = HSTR("evt-1");
    n.user_id = HSTR("user-42");
    n.category = HSTR("social");
    n.title = HSTR("Kylie posted");
    n.body = (hstr_t){binary_body, sizeof(binary_body)};
    n.address = HSTR("kylie@example.com");
    n.platform = HSTR("");
    n.channel_msg_id = HSTR("msg-9");
    n.error = HSTR("none");
    n.metadata = HSTR("{\"k\":1}");
    n.timezone = HSTR("Europe/Paris");
    n.quiet_start_min = 22 * 60;
    n.quiet_end_min = 7 * 60 + 30;
    n.traceparent = HSTR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    return n;
}

static void assert_same(const notif_t *a, const notif_t *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->channel, b->channel);
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->attempt, b->attempt);
    assert_true(a->created_at_ms == b->created_at_ms);
    assert_true(a->due_at_ms == b->due_at_ms);
    assert_true(a->status_at_ms == b->status_at_ms);
    assert_true(a->accepted_at_us == b->accepted_at_us);
    assert_int_equal(a->quiet_start_min, b->quiet_start_min);
    assert_int_equal(a->quiet_end_min, b->quiet_end_min);
#define SAME_STR(f) assert_true(hstr_eq(a->f, b->f.p, b->f.n));
    NOTIF_STRINGS(SAME_STR)
#undef SAME_STR
}

static void test_names(void **state)
{
    (void)state;
    for (int c = 0; c < CH__COUNT; c++) {
        const char *s = channel_name((channel_t)c);
        assert_int_equal(channel_parse(s, strlen(s)), c);
    }
    for (int p = PRIO_LOW; p <= PRIO_CRITICAL; p++) {
        const char *s = priority_name((priority_t)p);
        assert_int_equal(priority_parse(s, strlen(s)), p);
    }
    for (int s = 0; s < ST__COUNT; s++) {
        const char *name = status_name((notif_status_t)s);
        assert_int_equal(status_parse(name, strlen(name)), s);
    }
    assert_string_equal(channel_name(CH_INAPP), "inapp");
    assert_string_equal(priority_name(PRIO_HIGH), "high");
    assert_string_equal(status_name(ST_RATE_LIMITED), "rate_limited");
    assert_string_equal(channel_name(CH__COUNT), "unknown");
    assert_string_equal(status_name(ST__COUNT), "unknown");
    /* Length-delimited: a prefix of a longer buffer parses; near misses do not. */
    assert_int_equal(channel_parse("pushy", 4), CH_PUSH);
    assert_int_equal(channel_parse("pushy", 5), -1);
    assert_int_equal(channel_parse("pus", 3), -1);
    assert_int_equal(channel_parse("PUSH", 4), -1);
    assert_int_equal(channel_parse(NULL, 0), -1);
    assert_int_equal(priority_parse("urgent", 6), -1);
    assert_int_equal(status_parse("", 0), -1);
}

static void test_roundtrip_all_fields(void **state)
{
    (void)state;
    notif_t in = sample(), out;
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "prefix"); /* encode appends */
    assert_int_equal(notif_encode(&in, &b), HR_OK);
    assert_memory_equal(b.data, "prefix", 6);
    assert_int_equal(b.data[6], NOTIF_MAGIC);
    assert_int_equal(b.data[7], NOTIF_VERSION);

    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(notif_decode(b.data + 6, b.len - 6, &out), HR_OK);
    assert_same(&out, &in);
    /* Zero-copy: decoded strings live inside the input. */
    assert_true(out.body.p > b.data && out.body.p + out.body.n <= b.data + b.len);

    /* Encoding the decoded record gives the same bytes. */
    buf_t b2;
    buf_init(&b2, 0);
    assert_int_equal(notif_encode(&out, &b2), HR_OK);
    assert_int_equal(b2.len, b.len - 6);
    assert_memory_equal(b2.data, b.data + 6, b2.len);
    buf_release(&b2);
    buf_release(&b);
}

static void test_roundtrip_empty_strings(void **state)
{
    (void)state;
    notif_t in, out;
    memset(&in, 0, sizeof(in));
    in.kind = 2;
    in.status = ST_DEAD;
    in.title = HSTR(NULL); /* NULL with length 0 is an empty string */
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&in, &b), HR_OK);
    assert_int_equal(b.len, 44 + 13 * 4); /* header plus thirteen empty strings */
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    assert_int_equal(out.kind, 2);
    assert_int_equal(out.status, ST_DEAD);
    assert_int_equal(out.channel, CH_PUSH);
#define EMPTY(f) assert_int_equal(out.f.n, 0);
    NOTIF_STRINGS(EMPTY)
#undef EMPTY
    buf_release(&b);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    notif_t n = sample();
    n.channel = CH__COUNT;
    assert_int_equal(notif_encode(&n, &b), HR_INVALID);
    n = sample();
    n.kind = 3;
    assert_int_equal(notif_encode(&n, &b), HR_INVALID);
    n = sample();
    n.status = ST__COUNT;
    assert_int_equal(notif_encode(&n, &b), HR_INVALID);
    /* quiet hours: minutes of a day, or both "none" */
    static const int16_t bad_quiet[][2] = {
        {1440, 0}, {0, 1440}, {-2, 0}, {NOTIF_QUIET_NONE, 60}, {60, NOTIF_QUIET_NONE},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad_quiet); i++) {
        n = sample();
        n.quiet_start_min = bad_quiet[i][0];
        n.quiet_end_min = bad_quiet[i][1];
        assert_int_equal(notif_encode(&n, &b), HR_INVALID);
    }
    assert_int_equal(b.len, 0);
    buf_release(&b);

    /* A buffer limit is honoured and the buffer is left unchanged. */
    buf_init(&b, 50);
    buf_append_str(&b, "abc");
    n = sample();
    assert_int_equal(notif_encode(&n, &b), HR_AGAIN);
    assert_int_equal(b.len, 3);
    buf_release(&b);
}

/* Copies into an exact-size heap block so ASan catches any overread. */
static hr_t decode_exact(const void *p, size_t len, notif_t *n)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, p, len);
    hr_t r = notif_decode(len ? copy : NULL, len, n);
    if (r == HR_OK) {
        /* Every string lies inside the input. */
#define INSIDE(f) \
    assert_true((const unsigned char *)n->f.p >= copy && \
                (const unsigned char *)n->f.p + n->f.n <= copy + len);
        NOTIF_STRINGS(INSIDE)
#undef INSIDE
    }
    free(copy);
    return r;
}

static void test_truncated_and_malformed(void **state)
{
    (void)state;
    notif_t in = sample(), out;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&in, &b), HR_OK);
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(decode_exact(b.data, len, &out), HR_INVALID);
    assert_int_equal(decode_exact(b.data, b.len, &out), HR_OK);

    /* One trailing byte too many. */
    buf_t longer;
    buf_init(&longer, 0);
    buf_append(&longer, b.data, b.len);
    buf_append(&longer, "x", 1);
    assert_int_equal(decode_exact(longer.data, longer.len, &out), HR_INVALID);
    buf_release(&longer);

    /* Header fields out of range. */
    static const struct {
        size_t off;
        unsigned char val;
    } bad[] = {
        {0, 'X'}, {1, 0}, {1, 4}, {2, 0}, {2, 3}, {3, CH__COUNT}, {4, 4}, {5, ST__COUNT}, {5, 0xff},
        /* sample(): quiet 22:00 (0x0528) to 07:30 (0x01c2) */
        {40, 0xa0}, {41, 0x06},     /* quiet start 1440, 1576 */
        {43, 0x06}, {43, 0xff},     /* quiet end 1730, -62 */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char saved = b.data[bad[i].off];
        b.data[bad[i].off] = (char)bad[i].val;
        assert_int_equal(decode_exact(b.data, b.len, &out), HR_INVALID);
        b.data[bad[i].off] = saved;
    }

    /* "No quiet hours" at one end only. */
    b.data[42] = b.data[43] = (char)0xff;
    assert_int_equal(decode_exact(b.data, b.len, &out), HR_INVALID);
    b.data[42] = (char)0xc2;
    b.data[43] = 0x01;
    assert_int_equal(decode_exact(b.data, b.len, &out), HR_OK);

    /* A version 3 record is not a version 1 or 2 record (nor the reverse),
     * and version 4 is not known yet. */
    for (int v = 1; v <= 4; v++) {
        if (v == NOTIF_VERSION) continue;
        b.data[1] = (char)v;
        assert_int_equal(decode_exact(b.data, b.len, &out), HR_INVALID);
    }
    b.data[1] = NOTIF_VERSION;

    /* A string length that points past the end (first string's length). */
    b.data[44] = (char)0xff;
    b.data[47] = (char)0xff;
    assert_int_equal(decode_exact(b.data, b.len, &out), HR_INVALID);
    buf_release(&b);
}

static void test_random_garbage(void **state)
{
    (void)state;
    unsigned char in[400];
    notif_t out;
    notif_t tmpl = sample();
    buf_t valid;
    buf_init(&valid, 0);
    assert_int_equal(notif_encode(&tmpl, &valid), HR_OK);
    assert_true(valid.len <= sizeof(in));

    int decoded = 0, mutated_ok = 0;
    for (int iter = 0; iter < 100000; iter++) {
        size_t len;
        int mode = iter % 3;
        if (mode == 0) {
            /* Pure noise. */
            len = rng() % sizeof(in);
            for (size_t i = 0; i < len; i++) in[i] = (unsigned char)rng();
        } else if (mode == 1) {
            /* A plausible header followed by noise, with small string lengths
             * so the string walk is exercised. */
            unsigned version = 1 + (unsigned)(rng() % 2);
            size_t hdr = version == 1 ? 40 : 44;
            len = hdr + rng() % (sizeof(in) - hdr);
            for (size_t i = 0; i < len; i++) in[i] = (unsigned char)rng();
            in[0] = NOTIF_MAGIC;
            in[1] = (unsigned char)version;
            in[2] = (unsigned char)(1 + rng() % 2);
            in[3] = (unsigned char)(rng() % CH__COUNT);
            in[4] = (unsigned char)(rng() % 4);
            in[5] = (unsigned char)(rng() % ST__COUNT);
            if (version == 2 && rng() % 4 != 0) { /* mostly valid quiet hours */
                unsigned q = (unsigned)(rng() % 1440), e = (unsigned)(rng() % 1440);
                in[40] = (unsigned char)q;
                in[41] = (unsigned char)(q >> 8);
                in[42] = (unsigned char)e;
                in[43] = (unsigned char)(e >> 8);
            }
            for (size_t i = hdr; i + 4 <= len; i += 4 + in[i]) {
                in[i] = (unsigned char)(rng() % 24);
                in[i + 1] = in[i + 2] = in[i + 3] = 0;
                if (rng() % 16 == 0) in[i + 3] = (unsigned char)rng(); /* huge length */
            }
        } else {
            /* A valid record with a few bytes flipped, maybe truncated or extended. */
            len = valid.len;
            memcpy(in, valid.data, len);
            int flips = 1 + (int)(rng() % 3);
            for (int f = 0; f < flips; f++) in[rng() % len] ^= (unsigned char)(1 + rng() % 255);
            if (rng() % 4 == 0) len = rng() % (len + 1);
        }
        hr_t r = decode_exact(in, len, &out);
        assert_true(r == HR_OK || r == HR_INVALID);
        if (r == HR_OK) {
            decoded++;
            if (mode == 2) mutated_ok++;
            assert_true(out.channel < CH__COUNT);
            assert_true(out.status < ST__COUNT);
            assert_true(out.kind == 1 || out.kind == 2);
            bool none = out.quiet_start_min == NOTIF_QUIET_NONE;
            assert_true(none == (out.quiet_end_min == NOTIF_QUIET_NONE));
            assert_true(none || (out.quiet_start_min >= 0 && out.quiet_start_min < 1440 &&
                                 out.quiet_end_min >= 0 && out.quiet_end_min < 1440));
        }
    }
    /* Flips inside string contents or timestamps still decode: the loop
     * really reached the string walk. */
    assert_true(mutated_ok > 0);
    assert_true(decoded >= mutated_ok);
    buf_release(&valid);
}

/* Little-endian helpers for building records by hand. */
static void put_le(buf_t *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        char c = (char)(v >> (8 * i));
        buf_append(b, &c, 1);
    }
}

static void put_str(buf_t *b, const char *s)
{
    put_le(b, strlen(s), 4);
    buf_append(b, s, strlen(s));
}

/* A version 1 record, written byte by byte as herald 1 wrote it, still
 * decodes: the fields version 2 added come out empty / none. Encoding it
 * again writes version 2 with the same values. */
static void test_decode_version_1(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "N", 1);
    put_le(&b, 1, 1);                    /* version */
    put_le(&b, REC_NOTIFICATION, 1);
    put_le(&b, CH_SMS, 1);
    put_le(&b, PRIO_HIGH, 1);
    put_le(&b, ST_PENDING, 1);
    put_le(&b, 3, 2);                    /* attempt */
    put_le(&b, 1714564800123, 8);        /* created_at_ms */
    put_le(&b, 1714564900000, 8);        /* due_at_ms */
    put_le(&b, 0, 8);                    /* status_at_ms */
    put_le(&b, (uint64_t)-5, 8);         /* accepted_at_us */
    const char *strs[] = {"0123456789abcdef0123456789abcdef", "evt-1", "user-42", "social",
                          "Title", "Body", "+15550001", "", "", "", "{}"};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++) put_str(&b, strs[i]);

    notif_t n;
    memset(&n, 0xa5, sizeof(n));
    assert_int_equal(decode_exact(b.data, b.len, &n), HR_OK);
    assert_int_equal(notif_decode(b.data, b.len, &n), HR_OK);
    assert_int_equal(n.kind, REC_NOTIFICATION);
    assert_int_equal(n.channel, CH_SMS);
    assert_int_equal(n.priority, PRIO_HIGH);
    assert_int_equal(n.status, ST_PENDING);
    assert_int_equal(n.attempt, 3);
    assert_true(n.created_at_ms == 1714564800123);
    assert_true(n.due_at_ms == 1714564900000);
    assert_true(n.status_at_ms == 0);
    assert_true(n.accepted_at_us == -5);
    assert_true(hstr_eq(n.notification_id, strs[0], strlen(strs[0])));
    assert_true(hstr_eq(n.user_id, "user-42", 7));
    assert_true(hstr_eq(n.address, "+15550001", 9));
    assert_true(hstr_eq(n.metadata, "{}", 2));
    assert_int_equal(n.timezone.n, 0);
    assert_int_equal(n.quiet_start_min, NOTIF_QUIET_NONE);
    assert_int_equal(n.quiet_end_min, NOTIF_QUIET_NONE);

    /* truncated anywhere, or one byte longer: malformed */
    for (size_t len = 0; len < b.len; len++) {
        notif_t t;
        assert_int_equal(decode_exact(b.data, len, &t), HR_INVALID);
    }
    buf_append(&b, "", 1);
    notif_t t;
    assert_int_equal(decode_exact(b.data, b.len, &t), HR_INVALID);
    b.len--;

    assert_int_equal(n.traceparent.n, 0);

    buf_t v2;
    buf_init(&v2, 0);
    assert_int_equal(notif_encode(&n, &v2), HR_OK);
    assert_int_equal(v2.data[1], NOTIF_VERSION);
    /* quiet hours, the empty time zone (v2) and the empty traceparent (v3) */
    assert_int_equal(v2.len, b.len + 4 + 4 + 4);
    notif_t again;
    assert_int_equal(notif_decode(v2.data, v2.len, &again), HR_OK);
    assert_same(&again, &n);
    buf_release(&v2);
    buf_release(&b);
}

/* Version 2 carries the time zone and quiet hours, "none" included. */
static void test_version_2_fields(void **state)
{
    (void)state;
    static const int16_t quiet[][2] = {
        {22 * 60, 7 * 60}, {0, 1439}, {0, 0}, {NOTIF_QUIET_NONE, NOTIF_QUIET_NONE},
    };
    for (size_t i = 0; i < ARRAY_LEN(quiet); i++) {
        notif_t in = sample(), out;
        in.timezone = i % 2 ? HSTR("America/Sao_Paulo") : HSTR("");
        in.quiet_start_min = quiet[i][0];
        in.quiet_end_min = quiet[i][1];
        buf_t b;
        buf_init(&b, 0);
        assert_int_equal(notif_encode(&in, &b), HR_OK);
        assert_int_equal(b.data[1], NOTIF_VERSION);
        assert_int_equal(decode_exact(b.data, b.len, &out), HR_OK);
        assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
        assert_same(&out, &in);
        buf_release(&b);
    }
}

/* A version 2 record, written byte by byte as herald wrote it before
 * version 3, still decodes: the traceparent comes out empty. Encoding it
 * again writes version 3 with the same values. */
static void test_decode_version_2(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "N", 1);
    put_le(&b, 2, 1);                    /* version */
    put_le(&b, REC_STATUS, 1);
    put_le(&b, CH_WEBHOOK, 1);
    put_le(&b, PRIO_NORMAL, 1);
    put_le(&b, ST_SENT, 1);
    put_le(&b, 1, 2);                    /* attempt */
    put_le(&b, 1714564800123, 8);        /* created_at_ms */
    put_le(&b, 0, 8);                    /* due_at_ms */
    put_le(&b, 1714564800500, 8);        /* status_at_ms */
    put_le(&b, 1714564800000000, 8);     /* accepted_at_us */
    put_le(&b, 22 * 60, 2);              /* quiet start */
    put_le(&b, 7 * 60, 2);               /* quiet end */
    const char *strs[] = {"0123456789abcdef0123456789abcdef", "evt-2", "user-7", "default",
                          "T", "B", "https://example.com/hook", "", "msg-1", "", "",
                          "Europe/Paris"};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++) put_str(&b, strs[i]);

    notif_t n;
    memset(&n, 0xa5, sizeof(n));
    assert_int_equal(decode_exact(b.data, b.len, &n), HR_OK);
    assert_int_equal(notif_decode(b.data, b.len, &n), HR_OK);
    assert_int_equal(n.kind, REC_STATUS);
    assert_int_equal(n.channel, CH_WEBHOOK);
    assert_int_equal(n.status, ST_SENT);
    assert_true(n.status_at_ms == 1714564800500);
    assert_true(hstr_eq(n.event_id, "evt-2", 5));
    assert_true(hstr_eq(n.channel_msg_id, "msg-1", 5));
    assert_true(hstr_eq(n.timezone, "Europe/Paris", 12));
    assert_int_equal(n.quiet_start_min, 22 * 60);
    assert_int_equal(n.quiet_end_min, 7 * 60);
    assert_int_equal(n.traceparent.n, 0);
    assert_non_null(n.traceparent.p); /* empty, inside the input */

    for (size_t len = 0; len < b.len; len++) {
        notif_t t;
        assert_int_equal(decode_exact(b.data, len, &t), HR_INVALID);
    }

    buf_t v3;
    buf_init(&v3, 0);
    assert_int_equal(notif_encode(&n, &v3), HR_OK);
    assert_int_equal(v3.data[1], 3);
    assert_int_equal(v3.len, b.len + 4); /* the empty traceparent */
    notif_t again;
    assert_int_equal(notif_decode(v3.data, v3.len, &again), HR_OK);
    assert_same(&again, &n);
    buf_release(&v3);
    buf_release(&b);
}

/* Version 3 carries the traceparent as the last string; the JSON form
 * shows it only when there is one. */
static void test_version_3_traceparent(void **state)
{
    (void)state;
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    notif_t in = sample(), out;
    in.traceparent = HSTR(tp);
    in.body = HSTR("text"); /* sample()'s has a NUL, which jansson's reader refuses */
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&in, &b), HR_OK);
    assert_int_equal(b.data[1], 3);
    /* the record ends with u32 55 and the 55 characters */
    assert_true(b.len > 59);
    assert_memory_equal(b.data + b.len - 55, tp, 55);
    assert_int_equal((unsigned char)b.data[b.len - 59], 55);
    assert_int_equal(decode_exact(b.data, b.len, &out), HR_OK);
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    assert_same(&out, &in);
    assert_true(hstr_eq(out.traceparent, tp, 55));

    buf_t j;
    buf_init(&j, 0);
    assert_int_equal(notif_to_json(&out, &j), HR_OK);
    json_t *doc = json_loads(j.data, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "traceparent")), tp);
    json_decref(doc);

    in.traceparent = HSTR("");
    buf_reset(&j);
    assert_int_equal(notif_to_json(&in, &j), HR_OK);
    assert_null(strstr(j.data, "traceparent"));
    buf_release(&j);
    buf_release(&b);
}

static void test_make_id(void **state)
{
    (void)state;
    char a[33], b[33];
    const int64_t T = 1700000000123456; /* accepted at, us: 1700000000123 ms = 0x018bcfe5687b */
    notif_make_id(T, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, a);
    /* Pinned: the ms time in 12 hex digits, then the first 10 bytes of
     * SHA-256("evt-1\0user-42\0push") (computed outside herald). */
    assert_string_equal(a, "018bcfe5687b" "04ee3bc8b7f8e6ac58f8");
    notif_make_id(T, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, b);
    assert_string_equal(a, b);
    /* the same ms: the same id; microseconds do not count */
    notif_make_id(T + 543, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, b);
    assert_string_equal(a, b);
    assert_int_equal(notif_id_time_ms(HSTR(a)), 1700000000123);

    for (int c = 1; c < CH__COUNT; c++) {
        notif_make_id(T, HSTR("evt-1"), HSTR("user-42"), (channel_t)c, b);
        assert_string_not_equal(a, b);
    }
    notif_make_id(T, HSTR("evt-1"), HSTR("user-43"), CH_PUSH, b);
    assert_string_not_equal(a, b);
    notif_make_id(T, HSTR("evt-2"), HSTR("user-42"), CH_PUSH, b);
    assert_string_not_equal(a, b);
    /* The separator keeps ("ab","c") apart from ("a","bc"). */
    notif_make_id(T, HSTR("ab"), HSTR("c"), CH_SMS, a);
    notif_make_id(T, HSTR("a"), HSTR("bc"), CH_SMS, b);
    assert_string_not_equal(a, b);
    /* Only the given lengths count, not what follows in memory. */
    notif_make_id(T, (hstr_t){"evt-1XYZ", 5}, (hstr_t){"user-42!", 7}, CH_PUSH, a);
    assert_string_equal(a, "018bcfe5687b04ee3bc8b7f8e6ac58f8");

    /* Without an accepted time (raw JSON without the stamp) the time part
     * is 0: still deterministic. Negative times count as 0. */
    notif_make_id(0, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, a);
    assert_string_equal(a, "000000000000" "04ee3bc8b7f8e6ac58f8");
    notif_make_id(-5, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, b);
    assert_string_equal(a, b);
    assert_int_equal(notif_id_time_ms(HSTR(a)), 0);
    /* Beyond 48 bits the time is clamped, never wrapped. */
    notif_make_id(INT64_MAX, HSTR("e"), HSTR("u"), CH_PUSH, a);
    assert_memory_equal(a, "ffffffffffff", 12);
    assert_int_equal(notif_id_time_ms(HSTR(a)), NOTIF_ID_TIME_MAX);

    /* Long inputs take the heap path and hash the same way. */
    char big[1000];
    memset(big, 'x', sizeof(big));
    notif_make_id(T, (hstr_t){big, sizeof(big)}, HSTR("u"), CH_EMAIL, a);
    assert_string_equal(a, "018bcfe5687b" "da07d6ccf5b681dc90bd");
    for (int i = 0; i < 32; i++) assert_true(strchr("0123456789abcdef", a[i]) != NULL);
}

/* Ids sort by accepted time (as text and as bytes), whatever the hash. */
static void test_make_id_time_ordered(void **state)
{
    (void)state;
    char prev[33] = "", cur[33], bound[33];
    for (int i = 0; i < 200; i++) {
        char ev[16];
        snprintf(ev, sizeof(ev), "e%d", 199 - i); /* hashes in no order */
        notif_make_id(1700000000000000 + (int64_t)i * 1000, HSTR(ev), HSTR("u"), CH_PUSH, cur);
        assert_true(strcmp(prev, cur) < 0);
        notif_id_bound(1700000000000 + i, bound);
        assert_true(strcmp(prev, bound) < 0);
        assert_true(strcmp(bound, cur) <= 0);
        memcpy(prev, cur, sizeof(cur));
    }
    notif_id_bound(1700000000123, bound);
    assert_string_equal(bound, "018bcfe5687b" "00000000000000000000");
    notif_id_bound(-1, bound);
    assert_string_equal(bound, "00000000000000000000000000000000");
}

/* Further devices share the time part and differ in the hash; an empty
 * device is the user's first id. */
static void test_make_device_id(void **state)
{
    (void)state;
    const int64_t T = 1700000000123456;
    char a[33], b[33];
    notif_make_device_id(T, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, HSTR("fcm:tok"), a);
    /* SHA-256("evt-1\0user-42\0push\0fcm:tok"), first 10 bytes */
    assert_string_equal(a, "018bcfe5687b" "ae418606e800ce20c7af");
    notif_make_device_id(T, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, (hstr_t){NULL, 0}, a);
    notif_make_id(T, HSTR("evt-1"), HSTR("user-42"), CH_PUSH, b);
    assert_string_equal(a, b);
}

static void test_id_time_of_bad_ids(void **state)
{
    (void)state;
    assert_int_equal(notif_id_time_ms(HSTR("")), -1);
    assert_int_equal(notif_id_time_ms(HSTR("018bcfe5687b04ee3bc8b7f8e6ac58f")), -1);
    assert_int_equal(notif_id_time_ms(HSTR("018bcfe5687b04ee3bc8b7f8e6ac58fg")), -1);
    assert_int_equal(notif_id_time_ms((hstr_t){NULL, 32}), -1);
}

/* NUL bytes come out as \u0000, valid JSON that jansson reads only with
 * JSON_ALLOW_NUL. */
static json_t *parse_json(buf_t *b)
{
    json_error_t err;
    json_t *doc = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &err);
    if (!doc) fail_msg("invalid JSON (%s): %.*s", err.text, (int)b->len, b->data);
    assert_true(json_is_object(doc));
    return doc;
}

static const char *jstr(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_to_json_fields(void **state)
{
    (void)state;
    notif_t n = sample();
    n.body = HSTR("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"); /* valid UTF-8 stays as is */
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    assert_null(memchr(b.data, '\n', b.len));
    json_t *strict = json_loadb(b.data, b.len, 0, NULL); /* no NUL: default flags read it */
    assert_non_null(strict);
    json_decref(strict);
    json_t *doc = parse_json(&b);
    assert_string_equal(jstr(doc, "kind"), "notification");
    assert_string_equal(jstr(doc, "notification_id"), "0123456789abcdef0123456789abcdef");
    assert_string_equal(jstr(doc, "event_id"), "evt-1");
    assert_string_equal(jstr(doc, "user_id"), "user-42");
    assert_string_equal(jstr(doc, "channel"), "email");
    assert_string_equal(jstr(doc, "priority"), "critical");
    assert_string_equal(jstr(doc, "status"), "rate_limited");
    assert_string_equal(jstr(doc, "title"), "Kylie posted");
    assert_string_equal(jstr(doc, "body"), "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80");
    assert_string_equal(jstr(doc, "address"), "kylie@example.com");
    assert_string_equal(jstr(doc, "platform"), "");
    assert_int_equal(json_integer_value(json_object_get(doc, "attempt")), 65535);
    assert_true(json_integer_value(json_object_get(doc, "created_at_ms")) == 1714564800123);
    assert_true(json_integer_value(json_object_get(doc, "status_at_ms")) == INT64_MAX);
    assert_true(json_integer_value(json_object_get(doc, "accepted_at_us")) == INT64_MIN);
    json_t *md = json_object_get(doc, "metadata");
    assert_true(json_is_object(md));
    assert_int_equal(json_integer_value(json_object_get(md, "k")), 1);
    json_decref(doc);
    buf_release(&b);
}

static void test_to_json_escaping(void **state)
{
    (void)state;
    /* Every control character, quotes, backslashes, DEL. */
    char ctl[40];
    size_t k = 0;
    for (int c = 1; c < 0x20; c++) ctl[k++] = (char)c;
    ctl[k++] = '"';
    ctl[k++] = '\\';
    ctl[k++] = '/';
    ctl[k++] = 0x7f;
    notif_t n = sample();
    n.title = (hstr_t){ctl, k};
    n.body = (hstr_t){"a\0b", 3};
    n.kind = 2;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    json_t *doc = parse_json(&b);
    assert_string_equal(jstr(doc, "kind"), "status");
    json_t *t = json_object_get(doc, "title");
    assert_int_equal(json_string_length(t), k);
    assert_memory_equal(json_string_value(t), ctl, k);
    t = json_object_get(doc, "body");
    assert_int_equal(json_string_length(t), 3);
    assert_memory_equal(json_string_value(t), "a\0b", 3);
    json_decref(doc);
    buf_release(&b);
}

static void test_to_json_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"\xff", "\xef\xbf\xbd"},                          /* never valid */
        {"a\xc3", "a\xef\xbf\xbd"},                        /* truncated sequence */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},          /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80x", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx"}, /* > U+10FFFF */
        {"\xe2\x82\xac", "\xe2\x82\xac"},                  /* valid euro sign */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        notif_t n = sample();
        n.error = HSTR(cases[i].in);
        buf_t b;
        buf_init(&b, 0);
        assert_int_equal(notif_to_json(&n, &b), HR_OK);
        json_t *doc = parse_json(&b);
        assert_string_equal(jstr(doc, "error"), cases[i].want);
        json_decref(doc);
        buf_release(&b);
    }

    /* Any bytes at all yield valid JSON. */
    char junk[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng() % sizeof(junk);
        for (size_t i = 0; i < len; i++) junk[i] = (char)rng();
        notif_t n = sample();
        n.body = (hstr_t){junk, len};
        n.metadata = (hstr_t){junk, len};
        buf_t b;
        buf_init(&b, 0);
        assert_int_equal(notif_to_json(&n, &b), HR_OK);
        json_t *doc = parse_json(&b);
        json_decref(doc);
        buf_release(&b);
    }
}

static void test_to_json_metadata(void **state)
{
    (void)state;
    buf_t b;
    json_t *doc;
    notif_t n = sample();

    /* Multi-line object: embedded, and the output stays on one line. */
    n.metadata = HSTR("{\n  \"a\": [1, 2],\n  \"b\": \"x\"\n}");
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    assert_null(memchr(b.data, '\n', b.len));
    doc = parse_json(&b);
    assert_int_equal(json_array_size(json_object_get(json_object_get(doc, "metadata"), "a")), 2);
    json_decref(doc);
    buf_release(&b);

    /* Not an object: kept as a string. */
    n.metadata = HSTR("[1,2");
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    doc = parse_json(&b);
    assert_string_equal(jstr(doc, "metadata"), "[1,2");
    json_decref(doc);
    buf_release(&b);

    /* Empty: left out. */
    n.metadata = HSTR("");
    buf_init(&b, 0);
    assert_int_equal(notif_to_json(&n, &b), HR_OK);
    doc = parse_json(&b);
    assert_null(json_object_get(doc, "metadata"));
    json_decref(doc);
    buf_release(&b);
}

static void test_to_json_limit(void **state)
{
    (void)state;
    notif_t n = sample();
    buf_t b;
    buf_init(&b, 100);
    buf_append_str(&b, "keep");
    assert_int_equal(notif_to_json(&n, &b), HR_AGAIN);
    assert_int_equal(b.len, 4);
    assert_string_equal(buf_cstr(&b), "keep");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_roundtrip_all_fields),
        cmocka_unit_test(test_roundtrip_empty_strings),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_truncated_and_malformed),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_decode_version_1),
        cmocka_unit_test(test_version_2_fields),
        cmocka_unit_test(test_decode_version_2),
        cmocka_unit_test(test_version_3_traceparent),
        cmocka_unit_test(test_make_id),
        cmocka_unit_test(test_make_id_time_ordered),
        cmocka_unit_test(test_make_device_id),
        cmocka_unit_test(test_id_time_of_bad_ids),
        cmocka_unit_test(test_to_json_fields),
        cmocka_unit_test(test_to_json_escaping),
        cmocka_unit_test(test_to_json_invalid_utf8),
        cmocka_unit_test(test_to_json_metadata),
        cmocka_unit_test(test_to_json_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
