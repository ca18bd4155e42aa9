/* Unit tests for src/model/template.c: rendering and syntax checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/template.h"

#include <stdio.h>
#include <string.h>

static event_t ev;

static int setup(void **state)
{
    (void)state;
    const char *text =
        "{\"event_id\":\"evt-7\",\"type\":\"comment.created\",\"actor\":\"Kylie\",\"source\":\"/social\","
        "\"tenant\":\"acme\",\"priority\":\"high\",\"audience\":{\"users\":[\"u1\"]},"
        "\"data\":{\"text\":\"nice pic\",\"n\":42,\"neg\":-7,\"price\":19.99,\"ratio\":0.1,"
        "\"whole\":3.0,\"yes\":true,\"no\":false,\"nothing\":null,\"obj\":{\"a\":{\"b\":\"deep\"}},"
        "\"items\":[{\"name\":\"first\"},{\"name\":\"second\"}],\"dotted\":{\"\":\"empty-key\"},"
        "\"uni\":\"caf\\u00e9\"}}";
    problem_t pb;
    if (event_parse(text, strlen(text), &ev, &pb) != HR_OK) {
        fprintf(stderr, "fixture: %s: %s\n", pb.field, pb.detail);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    event_clear(&ev);
    return 0;
}

static void expect(const char *tmpl, const char *want)
{
    tmpl_ctx_t ctx = {.ev = &ev, .user_id = "u1", .locale = "de-CH"};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(tmpl_render(tmpl, &ctx, &b), HR_OK);
    const char *got = buf_cstr(&b);
    if (strcmp(got, want) != 0) fail_msg("template \"%s\": got \"%s\", want \"%s\"", tmpl, got, want);
    buf_release(&b);
}

static void test_variables(void **state)
{
    (void)state;
    expect("{{actor}} commented: {{data.text}}", "Kylie commented: nice pic");
    expect("{{event_id}}|{{type}}|{{category}}|{{user_id}}|{{user.locale}}",
           "evt-7|comment.created|default|u1|de-CH");
    expect("{{source}} {{tenant}} {{priority}}", "/social acme high");
    expect("{{ data.text }}/{{\tactor\t}}", "nice pic/Kylie");
    expect("", "");
    expect("no variables at all", "no variables at all");
    expect("{{actor}}{{actor}}", "KylieKylie");
    expect("{{data.uni}}", "caf\xc3\xa9");
}

static void test_value_types(void **state)
{
    (void)state;
    expect("{{data.n}} {{data.neg}}", "42 -7");
    expect("{{data.price}} {{data.ratio}} {{data.whole}}", "19.99 0.1 3");
    expect("{{data.yes}}/{{data.no}}", "true/false");
    expect("[{{data.nothing}}][{{data.obj}}][{{data.items}}]", "[][][]");
    expect("{{data.obj.a.b}}", "deep");
    expect("{{data.items.1.name}}", "second");
}

static void test_missing_renders_empty(void **state)
{
    (void)state;
    expect("[{{data.missing}}]", "[]");
    expect("[{{data.obj.a.b.c}}]", "[]");
    expect("[{{data.text.x}}]", "[]");
    expect("[{{data.items.9.name}}]", "[]");
    expect("[{{data.items.x}}]", "[]");
    expect("[{{data.items.99999999999999999999}}]", "[]");
    expect("[{{data.obj..a}}]", "[]");
    expect("[{{data.obj.}}]", "[]");
    expect("[{{data.dotted.}}]", "[]");
    expect("[{{nosuch}}]", "[]");
    expect("[{{data}}]", "[]");

    /* No event, no user: everything is empty. */
    tmpl_ctx_t ctx = {0};
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(tmpl_render("a{{actor}}b{{user_id}}c{{data.x}}d{{user.locale}}", &ctx, &b), HR_OK);
    assert_string_equal(buf_cstr(&b), "abcd");
    buf_release(&b);
}

static void test_literal_braces(void **state)
{
    (void)state;
    expect("{{{actor}}}", "{{{actor}}}");
    expect("{{{{actor}}", "{{{{actor}}");
    expect("{{actor", "{{actor");
    expect("{{actor}", "{{actor}");
    expect("a {{ b", "a {{ b");
    expect("{{}}", "{{}}");
    expect("{{ }}", "{{ }}");
    expect("{{a b}}", "{{a b}}");
    expect("{{actor}}}", "Kylie}");
    expect("}} {actor} {", "}} {actor} {");
    expect("{{a{{actor}}", "{{aKylie");
    expect("{{", "{{");
    expect("{", "{");
}

static void test_limit(void **state)
{
    (void)state;
    tmpl_ctx_t ctx = {.ev = &ev, .user_id = "u1"};
    buf_t b;

    /* Cut at the limit: a long title arrives shortened, not empty. */
    buf_init(&b, 10);
    buf_append_str(&b, "ab");
    assert_int_equal(tmpl_render("{{actor}} commented: {{data.text}}", &ctx, &b), HR_AGAIN);
    assert_int_equal(b.len, 10);
    assert_string_equal(buf_cstr(&b), "abKylie co");
    buf_release(&b);

    /* Exactly at the limit is fine. */
    buf_init(&b, 5);
    assert_int_equal(tmpl_render("{{actor}}", &ctx, &b), HR_OK);
    assert_string_equal(buf_cstr(&b), "Kylie");
    assert_int_equal(tmpl_render("", &ctx, &b), HR_OK);
    assert_int_equal(tmpl_render("x", &ctx, &b), HR_AGAIN);
    assert_string_equal(buf_cstr(&b), "Kylie");
    buf_release(&b);

    /* Never cut inside a UTF-8 sequence: "caf\xc3\xa9" at 4 bytes is "caf". */
    buf_init(&b, 4);
    assert_int_equal(tmpl_render("{{data.uni}}", &ctx, &b), HR_AGAIN);
    assert_string_equal(buf_cstr(&b), "caf");
    buf_release(&b);
}

static void test_check(void **state)
{
    (void)state;
    char why[128];
    static const char *const ok[] = {
        "", "plain", "{{actor}} commented: {{data.text}}", "{{ user.locale }} {{user_id}}",
        "{{event_id}}{{type}}{{category}}{{source}}{{tenant}}{{priority}}",
        "{{data.items.0.name}}", "{{{literal}}}", "a } b }} c",
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        why[0] = 'x';
        why[1] = '\0';
        if (tmpl_check(ok[i], why, sizeof(why)) != HR_OK) fail_msg("\"%s\": %s", ok[i], why);
        assert_string_equal(why, "");
    }
    static const struct {
        const char *tmpl;
        const char *why;
    } bad[] = {
        {"hello {{actor", "offset 6"},
        {"{{}}", "offset 0"},
        {"x {{a b}}", "offset 2"},
        {"{{actr}}", "unknown variable \"actr\""},
        {"{{data}}", "unknown variable \"data\""},
        {"{{data.a..b}}", "unknown variable \"data.a..b\""},
        {"{{data.a.}}", "unknown variable"},
        {"{{user.name}}", "unknown variable"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        why[0] = '\0';
        if (tmpl_check(bad[i].tmpl, why, sizeof(why)) != HR_INVALID || !strstr(why, bad[i].why))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].tmpl, why, bad[i].why);
    }
    assert_int_equal(tmpl_check(NULL, why, sizeof(why)), HR_INVALID);
    assert_int_equal(tmpl_check("{{nope}}", NULL, 0), HR_INVALID);
}

/* A template prerendered for the event and finished per recipient is
 * exactly tmpl_render()'s output, at every output limit (the cut and its
 * HR_AGAIN included), with many holes (the fallback) too. */
static void test_prerender(void **state)
{
    (void)state;
    static const char *const tmpls[] = {
        "Hi {{user_id}}, {{actor}} wrote: {{data.text}}",
        "{{actor}} posted",
        "{{user_id}}{{user.locale}}{{user_id}} {{data.uni}} {{ user_id }}!",
        "{{{user_id}}} {{user_id",
        "",
        "{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}"
        "{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}{{user_id}}"
        "{{user_id}} {{actor}}",
    };
    tmpl_pre_t pre;
    tmpl_pre_init(&pre);
    for (size_t t = 0; t < sizeof(tmpls) / sizeof(tmpls[0]); t++) {
        tmpl_prerender(tmpls[t], &ev, &pre);
        for (size_t limit = 0; limit < 90; limit++) {
            tmpl_ctx_t ctx = {.ev = &ev, .user_id = "usr-\xc3\xa9", .locale = "de-CH"};
            buf_t a, b;
            buf_init(&a, limit);
            buf_init(&b, limit);
            hr_t ra = tmpl_render(tmpls[t], &ctx, &a);
            hr_t rb = tmpl_finish(&pre, ctx.user_id, ctx.locale, &b);
            assert_int_equal(ra, rb);
            assert_int_equal(a.len, b.len);
            if (a.len) assert_memory_equal(a.data, b.data, a.len);
            buf_release(&a);
            buf_release(&b);
        }
    }
    tmpl_pre_release(&pre);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_missing_renders_empty),
        cmocka_unit_test(test_literal_braces),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_prerender),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
