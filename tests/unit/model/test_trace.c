/* Unit tests for src/model/trace.c: W3C traceparent parsing (version 00
 * strictly, higher versions per the spec's rules) and the version 00 form
 * herald writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/trace.h"

#include <string.h>

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static hr_t parse(const char *s, trace_ctx_t *t, const char **why)
{
    return trace_parse(s, strlen(s), t, why);
}

static void test_valid_v00(void **state)
{
    (void)state;
    trace_ctx_t t;
    const char *why = NULL;
    assert_int_equal(parse(TP, &t, &why), HR_OK);
    assert_int_equal(t.version, 0);
    assert_int_equal(t.trace_id[0], 0x4b);
    assert_int_equal(t.trace_id[15], 0x36);
    assert_int_equal(t.parent_id[0], 0x00);
    assert_int_equal(t.parent_id[7], 0xb7);
    assert_int_equal(t.flags, 0x01);
    char out[TRACEPARENT_LEN + 1];
    trace_format(&t, out);
    assert_string_equal(out, TP);
    assert_true(trace_is_v00(TP, strlen(TP)));

    /* flags other than sampled are kept in version 00 */
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t, NULL), HR_OK);
    assert_int_equal(t.flags, 0);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", &t, NULL), HR_OK);
    trace_format(&t, out);
    assert_string_equal(out + 53, "ff");
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0",
        "00",
        /* uppercase hex anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* all-zero ids */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* version ff is invalid */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* version 00 must be exactly 55 characters */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        /* separators */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        /* non-hex, spaces, header injection */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\n",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: y",
        /* a higher version: too short, or not followed by a dash */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like",
        "01-00000000000000000000000000000000-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        trace_ctx_t t;
        const char *why = NULL;
        if (parse(bad[i], &t, &why) != HR_INVALID) fail_msg("accepted: '%s'", bad[i]);
        assert_non_null(why);
        assert_false(trace_is_v00(bad[i], strlen(bad[i])));
    }
    /* NUL inside the value, with its length */
    char nul[] = TP;
    nul[10] = '\0';
    trace_ctx_t t;
    assert_int_equal(trace_parse(nul, sizeof(nul) - 1, &t, NULL), HR_INVALID);
    assert_int_equal(trace_parse(NULL, 0, &t, NULL), HR_INVALID);
}

/* A version herald does not know is read with version 00's fields and
 * written back as version 00, keeping only the sampled flag. */
static void test_future_version(void **state)
{
    (void)state;
    char out[TRACEPARENT_LEN + 1];
    const char *why = NULL;
    assert_int_equal(trace_normalize("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-will-be",
                                     strlen("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-will-be"),
                                     out, &why),
                     HR_OK);
    assert_string_equal(out, TP);
    assert_int_equal(trace_normalize("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                                     TRACEPARENT_LEN, out, &why),
                     HR_OK);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    /* not version 00 as given: a record never carries it so */
    assert_false(trace_is_v00("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", TRACEPARENT_LEN));

    /* malformed: out is empty */
    strcpy(out, "x");
    assert_int_equal(trace_normalize("garbage", 7, out, &why), HR_INVALID);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_v00),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_future_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
