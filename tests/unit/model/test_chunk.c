/* Unit tests for src/model/chunk.c: the chunk task record round-trips,
 * carries the event as it came on raw-events (JSON, or the binary event
 * record the API writes, NUL bytes included), and refuses damaged records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/chunk.h"
#include "model/event.h"

#include <stdlib.h>
#include <string.h>

static const char *EVENT_JSON =
    "{\"event_id\":\"big1\",\"type\":\"posted\",\"actor\":\"kylie\","
    "\"audience\":{\"followers_of\":\"kylie\"},\"channels\":[\"push\",\"inapp\"],"
    "\"data\":{\"n\":1},\"_accepted_at_us\":1714564800250000}";

static void encode(const chunk_t *c, buf_t *out)
{
    buf_init(out, 0);
    assert_int_equal(chunk_encode(c, out), HR_OK);
}

static void test_round_trip_json_event(void **state)
{
    (void)state;
    chunk_t c = {.kind = CHUNK_FOLLOWERS, .flags = CHUNK_F_PULL, .index = 7, .event_id = "big1",
                 .key = "kylie", .after = "f0010000", .until = "f0015000", .traceparent = "",
                 .event = (char *)EVENT_JSON, .event_len = strlen(EVENT_JSON)};
    buf_t b;
    encode(&c, &b);
    chunk_t d;
    assert_int_equal(chunk_decode(b.data, b.len, &d), HR_OK);
    assert_int_equal(d.kind, CHUNK_FOLLOWERS);
    assert_int_equal(d.flags, CHUNK_F_PULL);
    assert_int_equal(d.index, 7);
    assert_string_equal(d.event_id, "big1");
    assert_string_equal(d.key, "kylie");
    assert_string_equal(d.after, "f0010000");
    assert_string_equal(d.until, "f0015000");
    assert_int_equal(d.event_len, strlen(EVENT_JSON));
    assert_string_equal(d.event, EVENT_JSON);
    char id[64];
    chunk_claim_id(&d, id, sizeof(id));
    assert_string_equal(id, "big1#chunk-7");
    chunk_clear(&d);
    buf_release(&b);
}

/* The API writes events to raw-events as binary records (NUL bytes inside):
 * a chunk task planned from one carries it whole and it decodes again. */
static void test_binary_event_record_survives(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));
    assert_int_equal(event_parse(EVENT_JSON, strlen(EVENT_JSON), &ev, &pb), HR_OK);
    buf_t rec;
    buf_init(&rec, 0);
    assert_int_equal(event_encode(&ev, &rec), HR_OK);
    event_clear(&ev);
    assert_true(event_is_record(rec.data, rec.len));
    assert_non_null(memchr(rec.data, '\0', rec.len));

    chunk_t c = {.kind = CHUNK_FOLLOWERS, .index = 0, .event_id = "big1", .key = "kylie",
                 .event = (char *)rec.data, .event_len = rec.len};
    buf_t b;
    encode(&c, &b);
    chunk_t d;
    assert_int_equal(chunk_decode(b.data, b.len, &d), HR_OK);
    assert_int_equal(d.event_len, rec.len);
    assert_memory_equal(d.event, rec.data, rec.len);
    assert_int_equal(d.event[d.event_len], '\0');
    assert_string_equal(d.after, "");
    assert_string_equal(d.until, "");
    event_t back;
    assert_int_equal(event_decode(d.event, d.event_len, &back, &pb), HR_OK);
    assert_string_equal(back.event_id, "big1");
    assert_int_equal(back.audience, AUD_FOLLOWERS);
    assert_string_equal(back.audience_followers_of, "kylie");
    event_clear(&back);
    chunk_clear(&d);
    buf_release(&b);
    buf_release(&rec);
}

static void test_damaged_records_refused(void **state)
{
    (void)state;
    chunk_t c = {.kind = CHUNK_TOPIC, .index = 1, .event_id = "e", .key = "news",
                 .event = (char *)EVENT_JSON, .event_len = strlen(EVENT_JSON)};
    buf_t b;
    encode(&c, &b);
    chunk_t d;
    for (size_t cut = 0; cut < b.len; cut++) /* every truncation */
        assert_int_equal(chunk_decode(b.data, cut, &d), HR_INVALID);
    unsigned char *copy = malloc(b.len);
    memcpy(copy, b.data, b.len);
    copy[3] = 99; /* unknown version */
    assert_int_equal(chunk_decode(copy, b.len, &d), HR_INVALID);
    memcpy(copy, b.data, b.len);
    copy[4] = 9; /* unknown kind */
    assert_int_equal(chunk_decode(copy, b.len, &d), HR_INVALID);
    memcpy(copy, b.data, b.len);
    copy[14] = '\0'; /* a NUL inside the event id */
    assert_int_equal(chunk_decode(copy, b.len, &d), HR_INVALID);
    free(copy);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_json_event),
        cmocka_unit_test(test_binary_event_record_survives),
        cmocka_unit_test(test_damaged_records_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
