/* Unit tests for src/model/event.c: herald and CloudEvents shapes, problems
 * that name the field, RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static hr_t parse(const char *text, event_t *ev, problem_t *pb)
{
    memset(pb, 0, sizeof(*pb));
    return event_parse(text, strlen(text), ev, pb);
}

static void test_herald_full(void **state)
{
    (void)state;
    const char *text =
        "{\"event_id\":\"evt-1\",\"type\":\"post.created\",\"source\":\"/social\","
        "\"time\":\"2024-05-01T12:00:00.250Z\",\"actor\":\"kylie\",\"tenant\":\"acme\","
        "\"audience\":{\"users\":[\"u1\",\"u2\",\"u3\"]},\"data\":{\"text\":\"hi\"},"
        "\"category\":\"social\",\"priority\":\"critical\",\"channels\":[\"push\",\"email\"],"
        "\"_accepted_at_us\":1714564800250000}";
    event_t ev;
    problem_t pb;
    assert_int_equal(parse(text, &ev, &pb), HR_OK);
    assert_non_null(ev.doc);
    assert_string_equal(ev.event_id, "evt-1");
    assert_string_equal(ev.type, "post.created");
    assert_string_equal(ev.source, "/social");
    assert_string_equal(ev.actor, "kylie");
    assert_string_equal(ev.tenant, "acme");
    assert_string_equal(ev.category, "social");
    assert_true(ev.time_ms == 1714564800250);
    assert_int_equal(ev.priority, PRIO_CRITICAL);
    assert_int_equal(ev.audience, AUD_USERS);
    assert_int_equal(json_array_size(ev.audience_users), 3);
    assert_string_equal(json_string_value(json_array_get(ev.audience_users, 2)), "u3");
    assert_string_equal(json_string_value(json_object_get(ev.data, "text")), "hi");
    assert_int_equal(ev.channels_mask, (1u << CH_PUSH) | (1u << CH_EMAIL));
    assert_true(ev.accepted_at_us == 1714564800250000);
    /* The event holds the only reference; clear drops it. */
    assert_int_equal(ev.doc->refcount, 1);
    event_clear(&ev);
    assert_null(ev.doc);
}

static void test_herald_defaults(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"product:iphone15\"},"
                           "\"priority\":null,\"data\":null,\"actor\":null}",
                           &ev, &pb),
                     HR_OK);
    assert_int_equal(ev.audience, AUD_TOPIC);
    assert_string_equal(ev.audience_topic, "product:iphone15");
    assert_int_equal(ev.priority, PRIO_NORMAL);
    assert_string_equal(ev.category, "default");
    assert_null(ev.actor);
    assert_null(ev.source);
    assert_null(ev.tenant);
    assert_null(ev.data);
    assert_true(ev.time_ms == 0);
    assert_int_equal(ev.channels_mask, 0);
    assert_true(ev.accepted_at_us == 0);
    event_clear(&ev);

    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"followers_of\":\"kylie\"},"
                           "\"unknown_field\":[1,2,3]}",
                           &ev, &pb),
                     HR_OK);
    assert_int_equal(ev.audience, AUD_FOLLOWERS);
    assert_string_equal(ev.audience_followers_of, "kylie");
    event_clear(&ev);
}

static void test_cloudevents(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    /* herald attributes inside data; subject stands in for actor. */
    const char *inside =
        "{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"type\":\"com.shop.restock\",\"source\":\"/shop\","
        "\"time\":\"2024-05-01T14:00:00+02:00\",\"subject\":\"shop-bot\","
        "\"data\":{\"audience\":{\"topic\":\"product:iphone15\"},\"priority\":\"high\","
        "\"category\":\"stock\",\"channels\":[\"sms\"],\"name\":\"iPhone 15\"}}";
    assert_int_equal(parse(inside, &ev, &pb), HR_OK);
    assert_string_equal(ev.event_id, "ce-1");
    assert_string_equal(ev.type, "com.shop.restock");
    assert_string_equal(ev.source, "/shop");
    assert_string_equal(ev.actor, "shop-bot");
    assert_true(ev.time_ms == 1714564800000);
    assert_int_equal(ev.audience, AUD_TOPIC);
    assert_string_equal(ev.audience_topic, "product:iphone15");
    assert_int_equal(ev.priority, PRIO_HIGH);
    assert_string_equal(ev.category, "stock");
    assert_int_equal(ev.channels_mask, 1u << CH_SMS);
    assert_string_equal(json_string_value(json_object_get(ev.data, "name")), "iPhone 15");
    event_clear(&ev);

    /* Extension attributes at the top level win over data; actor beats subject. */
    const char *ext =
        "{\"specversion\":\"1.0\",\"id\":\"ce-2\",\"type\":\"t\",\"source\":\"/s\",\"subject\":\"sub\","
        "\"actor\":\"act\",\"audience\":{\"users\":[\"u1\"]},\"priority\":\"low\","
        "\"data\":{\"priority\":\"critical\",\"audience\":{\"topic\":\"x\"}}}";
    assert_int_equal(parse(ext, &ev, &pb), HR_OK);
    assert_string_equal(ev.actor, "act");
    assert_int_equal(ev.priority, PRIO_LOW);
    assert_int_equal(ev.audience, AUD_USERS);
    event_clear(&ev);

    /* event_from_json takes its own reference. */
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "specversion", "1.0", "id", "ce-3",
                            "type", "t", "source", "/s", "audience", "followers_of", "kylie");
    assert_non_null(obj);
    assert_int_equal(event_from_json(obj, &ev, &pb), HR_OK);
    assert_int_equal(obj->refcount, 2);
    assert_string_equal(ev.event_id, "ce-3");
    event_clear(&ev);
    assert_int_equal(obj->refcount, 1);
    json_decref(obj);
}

/* Each bad input and the field the problem must name. */
static const struct bad_case {
    const char *json;
    const char *field;
    const char *detail; /* substring of the detail */
} bad_cases[] = {
    {"{\"event_id\":", "", "invalid JSON"},
    {"[1,2]", "", "JSON object"},
    {"{\"event_id\":\"a\",\"event_id\":\"b\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", "",
     "duplicate"},
    {"{\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", "event_id", "required"},
    {"{\"event_id\":\"\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", "event_id", "empty"},
    {"{\"event_id\":7,\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", "event_id", "string"},
    {"{\"event_id\":\"e\",\"audience\":{\"topic\":\"x\"}}", "type", "required"},
    {"{\"event_id\":\"e\",\"type\":[],\"audience\":{\"topic\":\"x\"}}", "type", "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\"}", "audience", "required"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":\"everyone\"}", "audience", "object"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{}}", "audience", "one of"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[]}}", "audience.users", "empty"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":\"u1\"}}", "audience.users", "array"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"a\",\"b\",\"c\",4]}}",
     "audience.users[3]", "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"a\",\"\"]}}", "audience.users[1]",
     "empty"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"a\"],\"topic\":\"x\"}}", "audience",
     "exactly one"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"follower_of\":\"k\"}}", "audience.follower_of",
     "unknown"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":5}}", "audience.topic", "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"channels\":[\"push\",\"fax\"]}",
     "channels[1]", "unknown channel"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"channels\":\"push\"}", "channels",
     "array"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"channels\":[]}", "channels",
     "empty"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"priority\":\"urgent\"}",
     "priority", "low, normal"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"priority\":3}", "priority",
     "low, normal"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"time\":\"yesterday\"}", "time",
     "RFC 3339"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"time\":1714564800}", "time",
     "RFC 3339"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"data\":[1]}", "data", "object"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"actor\":{}}", "actor", "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"category\":1}", "category",
     "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"tenant\":true}", "tenant",
     "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"source\":1.5}", "source",
     "string"},
    {"{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"},\"_accepted_at_us\":\"now\"}",
     "_accepted_at_us", "integer"},
    /* CloudEvents */
    {"{\"specversion\":\"0.3\",\"id\":\"c\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", "specversion",
     "1.0"},
    {"{\"specversion\":\"1.0\",\"type\":\"t\",\"source\":\"/s\",\"data\":{\"audience\":{\"topic\":\"x\"}}}",
     "id", "required"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"/s\",\"data\":{\"audience\":{\"users\":[1]}}}",
     "data.audience.users[0]", "string"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"/s\",\"data\":{\"audience\":{\"topic\":\"x\"},"
     "\"priority\":\"meh\"}}",
     "data.priority", "low, normal"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"/s\",\"subject\":9,"
     "\"data\":{\"audience\":{\"topic\":\"x\"}}}",
     "subject", "string"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"data\":{\"audience\":{\"topic\":\"x\"}}}",
     "source", "required"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"\","
     "\"data\":{\"audience\":{\"topic\":\"x\"}}}",
     "source", "empty"},
    {"{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":null,"
     "\"data\":{\"audience\":{\"topic\":\"x\"}}}",
     "source", "required"},
};

/* type names templates: 128 bytes at most, and the refusal names it. */
static void test_type_length(void **state)
{
    (void)state;
    char type[130];
    char json[400];
    event_t ev;
    problem_t pb;
    memset(type, 't', sizeof(type));
    type[128] = '\0';
    snprintf(json, sizeof(json), "{\"event_id\":\"e\",\"type\":\"%s\",\"audience\":{\"topic\":\"x\"}}",
             type);
    assert_int_equal(parse(json, &ev, &pb), HR_OK);
    event_clear(&ev);
    type[128] = 't';
    type[129] = '\0';
    snprintf(json, sizeof(json), "{\"event_id\":\"e\",\"type\":\"%s\",\"audience\":{\"topic\":\"x\"}}",
             type);
    assert_int_equal(parse(json, &ev, &pb), HR_INVALID);
    assert_string_equal(pb.field, "type");
    assert_non_null(strstr(pb.detail, "at most 128 bytes"));
}

static void test_bad_inputs_name_the_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        event_t ev;
        problem_t pb;
        hr_t r = parse(bad_cases[i].json, &ev, &pb);
        if (r != HR_INVALID || strcmp(pb.field, bad_cases[i].field) != 0 ||
            !strstr(pb.detail, bad_cases[i].detail))
            fail_msg("case %zu %s: got %s field=\"%s\" detail=\"%s\"; want field \"%s\" (\"%s\")", i,
                     bad_cases[i].json, hr_str(r), pb.field, pb.detail, bad_cases[i].field,
                     bad_cases[i].detail);
        /* A failed parse leaves nothing to free. */
        assert_null(ev.doc);
        assert_null(ev.event_id);
    }
}

/* traceparent: the herald shape's field and the CloudEvents distributed
 * tracing extension attribute; strict, written back in version 00 form. */
static void test_traceparent(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    const char *herald = "{\"event_id\":\"e1\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                         "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}";
    assert_int_equal(parse(herald, &ev, &pb), HR_OK);
    assert_string_equal(ev.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    event_clear(&ev);

    const char *ce = "{\"specversion\":\"1.0\",\"id\":\"c1\",\"type\":\"t\",\"source\":\"/s\","
                     "\"traceparent\":\"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-more\","
                     "\"data\":{\"audience\":{\"users\":[\"u\"]}}}";
    assert_int_equal(parse(ce, &ev, &pb), HR_OK);
    /* a later version: read as 00, only the sampled flag kept */
    assert_string_equal(ev.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    event_clear(&ev);

    /* absent or null: empty */
    const char *none = "{\"event_id\":\"e1\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                       "\"traceparent\":null}";
    assert_int_equal(parse(none, &ev, &pb), HR_OK);
    assert_string_equal(ev.traceparent, "");
    event_clear(&ev);

    /* inside CloudEvents data it is the producer's own data, not the attribute */
    const char *in_data = "{\"specversion\":\"1.0\",\"id\":\"c1\",\"type\":\"t\",\"source\":\"/s\","
                          "\"data\":{\"traceparent\":\"junk\",\"audience\":{\"users\":[\"u\"]}}}";
    assert_int_equal(parse(in_data, &ev, &pb), HR_OK);
    assert_string_equal(ev.traceparent, "");
    event_clear(&ev);

    static const char *const bad[] = {
        "\"00-00000000000000000000000000000000-00f067aa0ba902b7-01\"",
        "\"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\"",
        "\"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"",
        "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\"",
        "42",
        "\"\"",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"event_id\":\"e1\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                 "\"traceparent\":%s}", bad[i]);
        assert_int_equal(parse(text, &ev, &pb), HR_INVALID);
        assert_string_equal(pb.field, "traceparent");
        assert_null(ev.doc);
    }
}

static void test_limits(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    char id[256];
    buf_t b;

    /* event_id: 200 bytes pass, 201 fail. */
    for (int len = 200; len <= 201; len++) {
        memset(id, 'i', (size_t)len);
        id[len] = '\0';
        buf_init(&b, 0);
        buf_printf(&b, "{\"event_id\":\"%s\",\"type\":\"t\",\"audience\":{\"topic\":\"x\"}}", id);
        hr_t r = parse(buf_cstr(&b), &ev, &pb);
        if (len == 200) {
            assert_int_equal(r, HR_OK);
            assert_int_equal(strlen(ev.event_id), 200);
            event_clear(&ev);
        } else {
            assert_int_equal(r, HR_INVALID);
            assert_string_equal(pb.field, "event_id");
        }
        buf_release(&b);
    }

    /* audience.users: 10000 pass, 10001 fail. */
    for (int count = 10000; count <= 10001; count++) {
        buf_init(&b, 0);
        buf_append_str(&b, "{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[");
        for (int i = 0; i < count; i++) buf_printf(&b, "%s\"u%d\"", i ? "," : "", i);
        buf_append_str(&b, "]}}");
        hr_t r = event_parse(b.data, b.len, &ev, &pb);
        if (count == 10000) {
            assert_int_equal(r, HR_OK);
            assert_int_equal(json_array_size(ev.audience_users), 10000);
            event_clear(&ev);
        } else {
            assert_int_equal(r, HR_INVALID);
            assert_string_equal(pb.field, "audience.users");
        }
        buf_release(&b);
    }

    /* An embedded NUL (built with jansson, which allows it) is refused. */
    json_t *obj = json_pack("{s:s#, s:s, s:{s:s}}", "event_id", "a\0b", (size_t)3, "type", "t",
                            "audience", "topic", "x");
    assert_non_null(obj);
    assert_int_equal(event_from_json(obj, &ev, &pb), HR_INVALID);
    assert_string_equal(pb.field, "event_id");
    assert_int_equal(obj->refcount, 1);
    json_decref(obj);

    /* A NULL problem pointer is allowed. */
    assert_int_equal(event_parse("{}", 2, &ev, NULL), HR_INVALID);
}

/* Every prefix and many byte-mutations of a valid event: each answer is a
 * clean OK or a problem with a detail, never a crash or a leak. */
static void test_truncated_and_mutated(void **state)
{
    (void)state;
    const char *text =
        "{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"type\":\"t\",\"source\":\"/s\","
        "\"time\":\"2024-05-01T14:00:00+02:00\",\"subject\":\"bot\",\"channels\":[\"sms\"],"
        "\"data\":{\"audience\":{\"users\":[\"a\",\"b\"]},\"priority\":\"high\"}}";
    size_t len = strlen(text);
    event_t ev;
    problem_t pb;
    for (size_t n = 0; n < len; n++) {
        pb.detail[0] = '\0';
        assert_int_equal(event_parse(text, n, &ev, &pb), HR_INVALID);
        assert_true(pb.detail[0] != '\0');
    }
    char copy[512];
    uint64_t seed = 12345;
    int ok = 0, invalid = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, text, len);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        /* One byte replaced by JSON punctuation, a letter, or NUL (index 13). */
        copy[(seed >> 33) % len] = " \"{}[],:0a\\-."[(seed >> 20) % 14];
        pb.detail[0] = '\0';
        hr_t r = event_parse(copy, len, &ev, &pb);
        if (r == HR_OK) {
            ok++;
            assert_non_null(ev.event_id);
            event_clear(&ev);
        } else {
            invalid++;
            assert_int_equal(r, HR_INVALID);
            assert_true(pb.detail[0] != '\0');
        }
    }
    assert_true(ok > 0 && invalid > 0);
}

static void test_rfc3339(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-05-01T12:00:00Z", 1714564800000},
        {"2024-05-01T12:00:00.5Z", 1714564800500},
        {"2024-05-01T12:00:00.123456789Z", 1714564800123},
        {"2024-05-01t12:00:00z", 1714564800000},
        {"2024-05-01 12:00:00Z", 1714564800000},
        {"2024-05-01T14:30:00+02:30", 1714564800000},
        {"2024-05-01T09:00:00-03:00", 1714564800000},
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2000-02-29T23:59:59.999Z", 951868799999},
        {"1969-12-31T23:59:59Z", -1000},
        {"1900-03-01T00:00:00Z", -2203891200000},
        {"2016-12-31T23:59:60Z", 1483228800000}, /* leap second rolls into the next minute */
        {"0000-01-01T00:00:00Z", -62167219200000},
        {"9999-12-31T23:59:59.999Z", 253402300799999},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int64_t ms = 42;
        if (parse_rfc3339_ms(good[i].in, &ms) != HR_OK || ms != good[i].ms)
            fail_msg("%s: got %lld want %lld", good[i].in, (long long)ms, (long long)good[i].ms);
    }
    static const char *const bad[] = {
        "", "2024", "2024-05-01", "2024-05-01T12:00:00", "2024-05-01T12:00Z",
        "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z", "2024-05-01T12:00:61Z", "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00+2:00", "2024-05-01T12:00:00+02", "2024-05-01T12:00:00+24:00",
        "2024-05-01T12:00:00Zjunk", "2024-05-01X12:00:00Z", "24-05-01T12:00:00Z",
        "2024-5-01T12:00:00Z", " 2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00 ",
        /* an offset would move these out of four-digit years */
        "9999-12-31T23:59:59-00:01", "0000-01-01T00:00:00+00:01",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ms = 42;
        if (parse_rfc3339_ms(bad[i], &ms) != HR_INVALID) fail_msg("accepted \"%s\"", bad[i]);
        assert_true(ms == 42);
    }
    int64_t ms;
    assert_int_equal(parse_rfc3339_ms(NULL, &ms), HR_INVALID);
}

/* event_to_json writes every time event_parse accepts so that it parses
 * back to the same instant: four-digit years before 1000, milliseconds
 * before 1970 (fuzz_event found "0176-05-01T12:00:00.250Z" written as
 * "176-05-01..." and refused on the way back). */
static void test_time_round_trip(void **state)
{
    (void)state;
    static const char *const times[] = {
        "0176-05-01T12:00:00.250Z", "1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z", "2024-05-01T12:00:00.001Z",
    };
    for (size_t i = 0; i < ARRAY_LEN(times); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc), "{\"event_id\":\"e\",\"type\":\"t\",\"time\":\"%s\","
                 "\"audience\":{\"users\":[\"u\"]}}", times[i]);
        event_t ev, back;
        problem_t pb;
        assert_int_equal(event_parse(doc, strlen(doc), &ev, &pb), HR_OK);
        json_t *j = event_to_json(&ev);
        assert_string_equal(json_string_value(json_object_get(j, "time")), times[i]);
        assert_int_equal(event_from_json(j, &back, &pb), HR_OK);
        assert_int_equal(back.time_ms, ev.time_ms);
        event_clear(&back);
        json_decref(j);
        event_clear(&ev);
    }
}

/* Formats ms since the epoch as RFC 3339 (UTC, whole seconds). */
static void rfc3339(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void test_send_at(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    char text[512], when[32];
    /* absent: 0 (now) */
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]}}",
                           &ev, &pb), HR_OK);
    assert_true(ev.send_at_ms == 0);
    event_clear(&ev);
    /* in the past: kept (fan-out takes now) */
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"send_at\":\"2024-05-01T12:00:00Z\","
                           "\"audience\":{\"users\":[\"u\"]}}", &ev, &pb), HR_OK);
    assert_true(ev.send_at_ms == 1714564800000);
    event_clear(&ev);
    /* a day ahead: fine; in CloudEvents form inside data too */
    int64_t day = hclock_now_ms() / 1000 * 1000 + 86400000;
    rfc3339(day, when, sizeof(when));
    snprintf(text, sizeof(text), "{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"/s\","
             "\"data\":{\"send_at\":\"%s\",\"audience\":{\"users\":[\"u\"]}}}", when);
    assert_int_equal(parse(text, &ev, &pb), HR_OK);
    assert_true(ev.send_at_ms == day);
    event_clear(&ev);
    /* more than a year ahead: refused, naming the field */
    rfc3339(hclock_now_ms() + EVENT_SEND_AT_MAX_AHEAD_MS + 86400000, when, sizeof(when));
    snprintf(text, sizeof(text), "{\"event_id\":\"e\",\"type\":\"t\",\"send_at\":\"%s\","
             "\"audience\":{\"users\":[\"u\"]}}", when);
    assert_int_equal(parse(text, &ev, &pb), HR_INVALID);
    assert_string_equal(pb.field, "send_at");
    assert_non_null(strstr(pb.detail, "year"));
    snprintf(text, sizeof(text), "{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"source\":\"/s\","
             "\"data\":{\"send_at\":\"%s\",\"audience\":{\"users\":[\"u\"]}}}", when);
    assert_int_equal(parse(text, &ev, &pb), HR_INVALID);
    assert_string_equal(pb.field, "data.send_at");
    /* malformed */
    static const char *const bad[] = {"\"tomorrow\"", "1714564800", "\"2024-05-01\"", "{}"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "{\"event_id\":\"e\",\"type\":\"t\",\"send_at\":%s,"
                 "\"audience\":{\"users\":[\"u\"]}}", bad[i]);
        assert_int_equal(parse(text, &ev, &pb), HR_INVALID);
        assert_string_equal(pb.field, "send_at");
    }
}

static void test_inline_content(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    const char *title, *body;
    /* per channel and a default for the others */
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                           "\"content\":{\"title\":\"T\",\"body\":\"B {{data.x}}\","
                           "\"push\":{\"title\":\"P\"},\"sms\":{\"body\":\"S\"}}}",
                           &ev, &pb), HR_OK);
    assert_int_equal(ev.content_mask, (1u << CH_PUSH) | (1u << CH_SMS));
    assert_true(ev.content_default);
    assert_true(event_content_for(&ev, CH_PUSH, &title, &body));
    assert_string_equal(title, "P");
    assert_string_equal(body, ""); /* the channel's object wins whole */
    assert_true(event_content_for(&ev, CH_SMS, &title, &body));
    assert_string_equal(title, "");
    assert_string_equal(body, "S");
    assert_true(event_content_for(&ev, CH_EMAIL, &title, &body));
    assert_string_equal(title, "T");
    assert_string_equal(body, "B {{data.x}}");
    event_clear(&ev);
    /* per channel only: other channels use templates */
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                           "\"content\":{\"email\":{\"title\":\"E\",\"body\":\"e\"}}}", &ev, &pb),
                     HR_OK);
    assert_int_equal(ev.content_mask, 1u << CH_EMAIL);
    assert_false(ev.content_default);
    assert_false(event_content_for(&ev, CH_PUSH, &title, &body));
    event_clear(&ev);
    /* none */
    assert_int_equal(parse("{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                           "\"content\":null}", &ev, &pb), HR_OK);
    assert_null(ev.content);
    assert_false(event_content_for(&ev, CH_PUSH, &title, &body));
    event_clear(&ev);
    /* bad shapes name the field */
    static const struct {
        const char *content;
        const char *field;
    } bad[] = {
        {"\"hi\"", "content"},
        {"{}", "content"},
        {"{\"titel\":\"x\"}", "content.titel"},
        {"{\"title\":5}", "content.title"},
        {"{\"pager\":{\"body\":\"x\"}}", "content.pager"},
        {"{\"push\":\"x\"}", "content.push"},
        {"{\"push\":{}}", "content.push"},
        {"{\"push\":{\"body\":\"x\",\"email\":{}}}", "content.push.email"},
        {"{\"push\":{\"body\":\"{{data.x\"}}", "content.push.body"},
    };
    char text[512];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                 "\"content\":%s}", bad[i].content);
        if (parse(text, &ev, &pb) != HR_INVALID) fail_msg("accepted %s", bad[i].content);
        if (strcmp(pb.field, bad[i].field) != 0)
            fail_msg("%s: field %s, want %s", bad[i].content, pb.field, bad[i].field);
    }
    /* too long a title */
    buf_t b;
    buf_init(&b, 0);
    buf_append_str(&b, "{\"event_id\":\"e\",\"type\":\"t\",\"audience\":{\"users\":[\"u\"]},"
                       "\"content\":{\"title\":\"");
    for (int i = 0; i <= EVENT_CONTENT_TITLE_MAX; i++) buf_append_str(&b, "x");
    buf_append_str(&b, "\"}}");
    assert_int_equal(parse(buf_cstr(&b), &ev, &pb), HR_INVALID);
    assert_string_equal(pb.field, "content.title");
    buf_release(&b);
}


/* The binary event record: an event through event_encode and event_decode
 * is the same event (users, data read lazily, content, trace context);
 * every cut and every flipped byte of a record is refused or decodes to a
 * valid event, never crashes; a bad id inside a record is refused naming it
 * like the JSON form; an unknown version is refused. */
static void test_record(void **state)
{
    (void)state;
    const char *text =
        "{\"event_id\":\"e-1\",\"type\":\"comment\",\"actor\":\"ann\",\"tenant\":\"acme\","
        "\"category\":\"social\",\"priority\":\"high\",\"channels\":[\"push\",\"email\"],"
        "\"audience\":{\"users\":[\"u1\",\"u2\",\"u3\"]},\"data\":{\"text\":\"hi\",\"n\":3},"
        "\"content\":{\"push\":{\"title\":\"T {{actor}}\"}},\"time\":\"2024-05-01T12:00:00Z\","
        "\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}";
    event_t ev, d;
    problem_t pb;
    assert_int_equal(event_parse(text, strlen(text), &ev, &pb), HR_OK);
    ev.accepted_at_us = 1234567;
    buf_t rec;
    buf_init(&rec, 0);
    assert_int_equal(event_encode(&ev, &rec), HR_OK);
    assert_true(event_is_record(rec.data, rec.len));
    assert_false(event_is_record(text, strlen(text)));
    assert_int_equal(event_decode(rec.data, rec.len, &d, &pb), HR_OK);
    assert_true(d.rec);
    assert_string_equal(d.event_id, "e-1");
    assert_string_equal(d.type, "comment");
    assert_string_equal(d.actor, "ann");
    assert_string_equal(d.tenant, "acme");
    assert_string_equal(d.category, "social");
    assert_int_equal(d.priority, PRIO_HIGH);
    assert_int_equal(d.channels_mask, (1u << CH_PUSH) | (1u << CH_EMAIL));
    assert_int_equal(d.content_mask, 1u << CH_PUSH);
    assert_int_equal(d.accepted_at_us, 1234567);
    assert_int_equal(d.time_ms, ev.time_ms);
    assert_string_equal(d.traceparent, ev.traceparent);
    assert_int_equal(d.audience, AUD_USERS);
    assert_int_equal(d.audience_n, 3);
    event_users_t it;
    event_users_begin(&d, &it);
    assert_string_equal(event_users_next(&it), "u1");
    assert_string_equal(event_users_next(&it), "u2");
    assert_string_equal(event_users_next(&it), "u3");
    assert_null(event_users_next(&it));
    assert_null(d.data); /* not parsed until read */
    assert_int_equal(json_integer_value(json_object_get(event_data(&d), "n")), 3);
    const char *title, *body;
    assert_true(event_content_for(&d, CH_PUSH, &title, &body));
    assert_string_equal(title, "T {{actor}}");
    assert_false(event_content_for(&d, CH_EMAIL, &title, &body));
    /* its JSON rendition (the DLQ's) parses to the same event */
    json_t *j = event_to_json(&d);
    event_t back;
    assert_int_equal(event_from_json(j, &back, &pb), HR_OK);
    assert_string_equal(back.event_id, "e-1");
    assert_int_equal(back.audience_n, 3);
    assert_int_equal(back.accepted_at_us, 1234567);
    assert_int_equal(back.time_ms, ev.time_ms);
    assert_int_equal(back.content_mask, 1u << CH_PUSH);
    event_clear(&back);
    json_decref(j);
    event_clear(&d);

    /* every cut and every flipped byte: refused or valid, never a crash */
    char *m = malloc(rec.len);
    for (size_t n = 0; n < rec.len; n++) {
        if (event_decode(rec.data, n, &d, &pb) == HR_OK) fail_msg("a record cut at %zu decoded", n);
        memcpy(m, rec.data, rec.len);
        m[n] ^= 0x5a;
        if (event_decode(m, rec.len, &d, &pb) == HR_OK) {
            event_users_begin(&d, &it);
            while (event_users_next(&it)) {}
            json_decref(event_to_json(&d));
            event_clear(&d);
        }
    }
    /* an id with a control character is refused naming it */
    memcpy(m, rec.data, rec.len);
    char *u2 = memmem(m, rec.len, "u2", 3);
    assert_non_null(u2);
    u2[1] = '\x01';
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_string_equal(pb.field, "audience.users[1]");
    /* another version */
    memcpy(m, rec.data, rec.len);
    m[2] = 2;
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_non_null(strstr(pb.detail, "version 2"));
    /* the magic's second byte is not 'E': not a record of ours */
    memcpy(m, rec.data, rec.len);
    m[1] = 'X';
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_string_equal(pb.detail, "not an event record");
    /* what its JSON rendition could not carry is refused (the DLQ shows a
     * dead-lettered record as JSON and redrives that): a time past year
     * 9999, send_at more than a year ahead, a category that is not UTF-8 */
    int64_t far = INT64_C(253402300800000); /* 10000-01-01 */
    memcpy(m, rec.data, rec.len);
    memcpy(m + 24, &far, 8);
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_string_equal(pb.field, "time");
    far -= 1;                               /* 9999-12-31T23:59:59.999Z */
    memcpy(m + 24, &far, 8);
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_OK);
    json_t *fj = event_to_json(&d);
    assert_string_equal(json_string_value(json_object_get(fj, "time")), "9999-12-31T23:59:59.999Z");
    json_decref(fj);
    event_clear(&d);
    int64_t ahead = hclock_now_ms() + EVENT_SEND_AT_MAX_AHEAD_MS + 60000;
    memcpy(m, rec.data, rec.len);
    memcpy(m + 16, &ahead, 8);
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_string_equal(pb.field, "send_at");
    memcpy(m, rec.data, rec.len);
    char *social = memmem(m, rec.len, "social", 7);
    assert_non_null(social);
    social[2] = '\xff';
    assert_int_equal(event_decode(m, rec.len, &d, &pb), HR_INVALID);
    assert_string_equal(pb.field, "category");
    /* a JSON text is never taken for a record: no JSON text starts with 0xFF */
    assert_false(event_is_record(" \xff", 2));
    assert_false(event_is_record("", 0));
    free(m);
    buf_release(&rec);
    event_clear(&ev);

    /* a topic audience and no data */
    text = "{\"event_id\":\"e-2\",\"type\":\"t\",\"audience\":{\"topic\":\"news\"}}";
    assert_int_equal(event_parse(text, strlen(text), &ev, &pb), HR_OK);
    buf_init(&rec, 0);
    assert_int_equal(event_encode(&ev, &rec), HR_OK);
    assert_int_equal(event_decode(rec.data, rec.len, &d, &pb), HR_OK);
    assert_int_equal(d.audience, AUD_TOPIC);
    assert_string_equal(d.audience_topic, "news");
    assert_null(event_data(&d));
    assert_null(d.tenant);
    assert_string_equal(d.category, "default");
    event_clear(&d);
    event_clear(&ev);
    buf_release(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_herald_full),
        cmocka_unit_test(test_herald_defaults),
        cmocka_unit_test(test_cloudevents),
        cmocka_unit_test(test_bad_inputs_name_the_field),
        cmocka_unit_test(test_type_length),
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated_and_mutated),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_send_at),
        cmocka_unit_test(test_inline_content),
        cmocka_unit_test(test_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
