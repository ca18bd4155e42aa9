/* Unit tests for src/model/status_rec.c: the compact status record ('S') on
 * notification-status, with and without the content, read by notif_decode
 * beside the 'N' records already on the bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/notif.h"

#include <stdlib.h>
#include <string.h>

static bool hstr_eq(hstr_t a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

/* A sent status as dispatch makes it from a notification. */
static notif_t sent_status(void)
{
    notif_t n;
    memset(&n, 0, sizeof(n));
    n.kind = REC_STATUS;
    n.channel = CH_PUSH;
    n.priority = PRIO_HIGH;
    n.status = ST_SENT;
    n.attempt = 1;
    n.created_at_ms = 1764500000123;
    n.due_at_ms = 0;
    n.status_at_ms = 1764500000456;
    n.accepted_at_us = 1764500000001000;
    n.notification_id = HSTR("019ad4c1c2a3f00112233445566778899");
    n.notification_id.n = 32;
    n.event_id = HSTR("evt-000123");
    n.user_id = HSTR("u0001234");
    n.category = HSTR("social");
    n.title = HSTR("Ada liked your post");
    n.body = HSTR("Ada and 3 others liked \"hello\"");
    n.address = HSTR("fcm:tok-abcdef");
    n.platform = HSTR("fcm");
    n.channel_msg_id = HSTR("sandbox-42");
    n.timezone = HSTR("Europe/Lisbon");
    n.quiet_start_min = 1320;
    n.quiet_end_min = 420;
    n.traceparent = HSTR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    return n;
}

static void check_common(const notif_t *in, const notif_t *out)
{
    assert_int_equal(out->kind, REC_STATUS);
    assert_int_equal(out->channel, in->channel);
    assert_int_equal(out->status, in->status);
    assert_int_equal(out->attempt, in->attempt);
    assert_int_equal(out->created_at_ms, in->created_at_ms);
    assert_int_equal(out->status_at_ms, in->status_at_ms);
    assert_true(out->notification_id.n == in->notification_id.n &&
                memcmp(out->notification_id.p, in->notification_id.p, in->notification_id.n) == 0);
    assert_true(out->user_id.n == in->user_id.n && memcmp(out->user_id.p, in->user_id.p, in->user_id.n) == 0);
    assert_true(out->channel_msg_id.n == in->channel_msg_id.n &&
                (in->channel_msg_id.n == 0 ||
                 memcmp(out->channel_msg_id.p, in->channel_msg_id.p, in->channel_msg_id.n) == 0));
    assert_true(out->error.n == in->error.n &&
                (in->error.n == 0 || memcmp(out->error.p, in->error.p, in->error.n) == 0));
    /* what only dispatch reads is not carried */
    assert_int_equal(out->priority, PRIO_NORMAL);
    assert_int_equal(out->due_at_ms, 0);
    assert_int_equal(out->accepted_at_us, 0);
    assert_int_equal(out->quiet_start_min, NOTIF_QUIET_NONE);
    assert_int_equal(out->quiet_end_min, NOTIF_QUIET_NONE);
    assert_int_equal(out->platform.n, 0);
    assert_int_equal(out->timezone.n, 0);
}

static void test_with_content(void **state)
{
    (void)state;
    notif_t in = sent_status();
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode_status(&in, true, &b), HR_OK);
    assert_int_equal((unsigned char)b.data[0], STATUS_REC_MAGIC);
    assert_int_equal((unsigned char)b.data[1], STATUS_REC_VERSION);
    notif_t out;
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    check_common(&in, &out);
    assert_false(out.no_content);
    assert_true(hstr_eq(out.event_id, "evt-000123"));
    assert_true(hstr_eq(out.category, "social"));
    assert_true(hstr_eq(out.title, "Ada liked your post"));
    assert_true(hstr_eq(out.body, "Ada and 3 others liked \"hello\""));
    assert_true(hstr_eq(out.address, "fcm:tok-abcdef"));
    assert_true(hstr_eq(out.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));

    /* smaller than the notification record it came from */
    buf_t full;
    buf_init(&full, 0);
    assert_int_equal(notif_encode(&in, &full), HR_OK);
    assert_true(b.len + 80 < full.len); /* 44-byte header and 13 u32 lengths, platform, zone */
    buf_release(&full);
    buf_release(&b);
}

static void test_without_content(void **state)
{
    (void)state;
    notif_t in = sent_status();
    in.traceparent = (hstr_t){NULL, 0};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode_status(&in, false, &b), HR_OK);
    /* 5 header bytes, attempt, two times, the id, the user and the message id */
    assert_true(b.len <= 5 + 1 + 6 + 2 + 1 + 32 + 1 + 8 + 1 + 10);
    notif_t out;
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    check_common(&in, &out);
    assert_true(out.no_content);
    assert_int_equal(out.event_id.n, 0);
    assert_int_equal(out.title.n, 0);
    assert_int_equal(out.body.n, 0);
    assert_int_equal(out.address.n, 0);
    assert_int_equal(out.traceparent.n, 0);

    /* a failure: the error instead of a message id, a later attempt */
    in.status = ST_FAILED;
    in.attempt = 3;
    in.channel_msg_id = (hstr_t){NULL, 0};
    in.error = HSTR("provider said 503");
    in.metadata = HSTR("{\"a\":1}");
    buf_reset(&b);
    assert_int_equal(notif_encode_status(&in, false, &b), HR_OK);
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    check_common(&in, &out);
    assert_true(hstr_eq(out.metadata, "{\"a\":1}"));
    buf_release(&b);
}

/* Times far apart, zero and negative survive the varints. */
static void test_times(void **state)
{
    (void)state;
    static const int64_t times[][2] = {
        {0, 0}, {0, 1764500000456}, {1764500000456, 0}, {-5, 7}, {INT64_MAX, INT64_MIN}, {INT64_MIN, INT64_MAX},
    };
    buf_t b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        notif_t in = sent_status();
        in.created_at_ms = times[i][0];
        in.status_at_ms = times[i][1];
        in.attempt = (uint16_t)(i * 20000);
        buf_reset(&b);
        assert_int_equal(notif_encode_status(&in, i % 2 == 0, &b), HR_OK);
        notif_t out;
        assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
        assert_int_equal(out.created_at_ms, in.created_at_ms);
        assert_int_equal(out.status_at_ms, in.status_at_ms);
        assert_int_equal(out.attempt, in.attempt);
    }
    buf_release(&b);
}

/* Every cut of a record, a byte more, an unknown flag or version, bad
 * enums: refused, never read past the end (ASan watches the copies). */
static void test_malformed(void **state)
{
    (void)state;
    notif_t in = sent_status();
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode_status(&in, true, &b), HR_OK);
    notif_t out;
    for (size_t len = 0; len < b.len; len++) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, b.data, len);
        assert_int_equal(notif_decode(len ? copy : NULL, len, &out), HR_INVALID);
        assert_int_equal(notif_decode_status(copy, len, &out), HR_INVALID);
        free(copy);
    }
    char *more = malloc(b.len + 1);
    memcpy(more, b.data, b.len);
    more[b.len] = 0;
    assert_int_equal(notif_decode(more, b.len + 1, &out), HR_INVALID);
    more[1] = STATUS_REC_VERSION + 1;
    assert_int_equal(notif_decode(more, b.len, &out), HR_INVALID);
    more[1] = STATUS_REC_VERSION;
    more[2] = (char)0x40; /* unknown flag */
    assert_int_equal(notif_decode(more, b.len, &out), HR_INVALID);
    memcpy(more, b.data, b.len);
    more[3] = CH__COUNT;
    assert_int_equal(notif_decode(more, b.len, &out), HR_INVALID);
    memcpy(more, b.data, b.len);
    more[4] = ST__COUNT;
    assert_int_equal(notif_decode(more, b.len, &out), HR_INVALID);
    /* a byte changed inside a string: still a record (no checksum here: the bus has its own) */
    memcpy(more, b.data, b.len);
    more[b.len - 1] = 'x';
    assert_int_equal(notif_decode(more, b.len, &out), HR_OK);
    free(more);

    in.channel = CH__COUNT;
    assert_int_equal(notif_encode_status(&in, true, &b), HR_INVALID);
    in.channel = CH_SMS;
    in.status = ST__COUNT;
    assert_int_equal(notif_encode_status(&in, false, &b), HR_INVALID);
    buf_release(&b);
}

/* Random bytes after the magic: refused or decoded, never a crash. */
static void test_random(void **state)
{
    (void)state;
    uint64_t s = 0x9E3779B97F4A7C15ull;
    unsigned char rec[64];
    notif_t out;
    for (int i = 0; i < 20000; i++) {
        size_t len = 1 + (size_t)(i % 63);
        for (size_t k = 0; k < len; k++) {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            rec[k] = (unsigned char)((s * 0x2545F4914F6CDD1Dull) >> 56);
        }
        rec[0] = STATUS_REC_MAGIC;
        if (len > 1) rec[1] = STATUS_REC_VERSION;
        if (len > 2) rec[2] &= 31;
        if (notif_decode(rec, len, &out) == HR_OK) {
            assert_int_equal(out.kind, REC_STATUS);
            assert_true(out.notification_id.n <= len && out.user_id.n <= len);
        }
    }
}

/* The 'N' form of a status (what the bus and Kafka may still hold) reads
 * as before, with the content. */
static void test_old_form(void **state)
{
    (void)state;
    notif_t in = sent_status();
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(notif_encode(&in, &b), HR_OK);
    notif_t out;
    memset(&out, 0xff, sizeof(out));
    assert_int_equal(notif_decode(b.data, b.len, &out), HR_OK);
    assert_int_equal(out.kind, REC_STATUS);
    assert_false(out.no_content);
    assert_true(hstr_eq(out.title, "Ada liked your post"));
    assert_int_equal(out.priority, PRIO_HIGH);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_content),
        cmocka_unit_test(test_without_content),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_old_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
