/* Unit tests for src/model/digest.c (and the {{digest.*}} variables of
 * template.c): windows, key templates, ids, the member/token metadata, the
 * splice of the delivered text, the flush token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_window_parse(void **state)
{
    (void)state;
    int64_t ms;
    char why[128];
    assert_int_equal(digest_window_parse("10m", &ms, why, sizeof(why)), HR_OK);
    assert_int_equal(ms, 600000);
    assert_int_equal(digest_window_parse("90s", &ms, why, sizeof(why)), HR_OK);
    assert_int_equal(ms, 90000);
    assert_int_equal(digest_window_parse("2h", &ms, why, sizeof(why)), HR_OK);
    assert_int_equal(ms, 7200000);
    assert_int_equal(digest_window_parse("7d", &ms, why, sizeof(why)), HR_OK);
    assert_int_equal(ms, 7LL * 24 * 3600 * 1000);
    assert_int_equal(digest_window_parse("1500ms", &ms, why, sizeof(why)), HR_OK);
    assert_int_equal(ms, 1500);
    const char *bad[] = {"", "10", "m", "10 m", "-5m", "10min", "999ms", "8d", "0s",
                         "99999999999999999999999h", "1.5h", "10m ", "10M"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(digest_window_parse(bad[i], &ms, why, sizeof(why)), HR_INVALID);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(digest_window_parse(NULL, &ms, why, sizeof(why)), HR_INVALID);
    char out[24];
    digest_window_format(600000, out, sizeof(out));
    assert_string_equal(out, "10m");
    digest_window_format(90000, out, sizeof(out));
    assert_string_equal(out, "90s");
    digest_window_format(1500, out, sizeof(out));
    assert_string_equal(out, "1500ms");
    digest_window_format(86400000, out, sizeof(out));
    assert_string_equal(out, "1d");
}

static void test_key_check(void **state)
{
    (void)state;
    char why[200];
    assert_int_equal(digest_key_check("{{data.post_id}}", why, sizeof(why)), HR_OK);
    assert_int_equal(digest_key_check("post-{{data.post_id}}/{{actor}}", why, sizeof(why)), HR_OK);
    assert_int_equal(digest_key_check("{{data.post_id", why, sizeof(why)), HR_INVALID);
    assert_int_equal(digest_key_check("{{nope}}", why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "unknown variable"));
    assert_int_equal(digest_key_check("{{digest.count}}", why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "digest"));
    assert_int_equal(digest_key_check("", why, sizeof(why)), HR_INVALID);
    char big[DIGEST_KEY_TMPL_MAX + 2];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(digest_key_check(big, why, sizeof(why)), HR_INVALID);
}

static void test_make_id(void **state)
{
    (void)state;
    char a[33], b[33], c[33], d[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp1"), 1764500000000LL, a);
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp1"), 1764500000000LL, b);
    assert_string_equal(a, b); /* the same state, the same id */
    assert_int_equal(strlen(a), 32);
    assert_int_equal(notif_id_time_ms(HSTR(a)), 1764500000000LL); /* sorts by the window's start */
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp2"), 1764500000000LL, c);
    assert_string_not_equal(a, c);
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR("liked\x1fp1"), 1764500000001LL, d);
    assert_string_not_equal(a, d);
    digest_make_id(HSTR("kim"), CH_PUSH, HSTR("liked\x1fp1"), 1764500000000LL, d);
    assert_string_not_equal(a, d);
}

/* The variables render as a digest of one and say where they went. */
static void test_template_spans(void **state)
{
    (void)state;
    event_t ev;
    problem_t pb;
    const char *text = "{\"event_id\":\"e1\",\"type\":\"liked\",\"actor\":\"Kylie\","
                       "\"audience\":{\"users\":[\"kim\"]},\"data\":{\"post_id\":\"p1\"}}";
    assert_int_equal(event_parse(text, strlen(text), &ev, &pb), HR_OK);
    char why[128];
    const char *tmpl = "{{digest.first_actor}} and {{digest.others}} others liked {{data.post_id}}"
                       " ({{digest.count}}, last {{ digest.last_actor }})";
    assert_int_equal(tmpl_check(tmpl, why, sizeof(why)), HR_OK);
    assert_int_equal(tmpl_check("{{digest.nope}}", why, sizeof(why)), HR_INVALID);
    tmpl_spans_t sp = {0};
    tmpl_ctx_t ctx = {.ev = &ev, .user_id = "kim", .locale = "en", .spans = &sp};
    buf_t out;
    buf_init(&out, 0);
    assert_int_equal(tmpl_render(tmpl, &ctx, &out), HR_OK);
    assert_int_equal(out.len, strlen("Kylie and 0 others liked p1 (1, last Kylie)"));
    assert_memory_equal(out.data, "Kylie and 0 others liked p1 (1, last Kylie)", out.len);
    assert_int_equal(sp.n, 4);
    assert_int_equal(sp.v[0].at, 0);
    assert_int_equal(sp.v[0].len, 5);
    assert_int_equal(sp.v[0].var, TMPL_DV_FIRST);
    assert_int_equal(sp.v[1].at, 10);
    assert_int_equal(sp.v[1].var, TMPL_DV_OTHERS);
    assert_int_equal(sp.v[2].var, TMPL_DV_COUNT);
    assert_int_equal(sp.v[3].var, TMPL_DV_LAST);

    /* spliced: 20 members */
    digest_vals_t v = {.count = 20, .first_actor = "Kylie", .last_actor = "Zed"};
    buf_t spl;
    buf_init(&spl, 0);
    assert_int_equal(digest_splice((hstr_t){out.data, out.len}, &sp, &v, &spl), HR_OK);
    assert_int_equal(spl.len, strlen("Kylie and 19 others liked p1 (20, last Zed)"));
    assert_memory_equal(spl.data, "Kylie and 19 others liked p1 (20, last Zed)", spl.len);

    /* a rendering cut at its limit: spans past the end stay as they are */
    buf_t cut;
    buf_init(&cut, 12);
    tmpl_spans_t sp2 = {0};
    ctx.spans = &sp2;
    assert_int_equal(tmpl_render(tmpl, &ctx, &cut), HR_AGAIN);
    buf_reset(&spl);
    assert_int_equal(digest_splice((hstr_t){cut.data, cut.len}, &sp2, &v, &spl), HR_OK);
    assert_int_equal(spl.len, strlen("Kylie and 19 ")); /* "Kylie and 0 " cut at 12 bytes */
    assert_memory_equal(spl.data, "Kylie and 19 ", spl.len);

    /* more spans than fit: marked, never written out of bounds */
    buf_t many;
    buf_init(&many, 0);
    tmpl_spans_t sp3 = {0};
    ctx.spans = &sp3;
    char big[TMPL_SPANS_MAX * 20 + 40] = "";
    for (int i = 0; i <= TMPL_SPANS_MAX; i++) strcat(big, "{{digest.count}} ");
    assert_int_equal(tmpl_render(big, &ctx, &many), HR_OK);
    assert_int_equal(sp3.n, -1);

    /* the prerendered path (no spans) renders the same text */
    tmpl_pre_t pre;
    tmpl_pre_init(&pre);
    tmpl_prerender(tmpl, &ev, &pre);
    buf_t fin;
    buf_init(&fin, 0);
    assert_int_equal(tmpl_finish(&pre, "kim", "en", &fin), HR_OK);
    assert_int_equal(fin.len, out.len);
    assert_memory_equal(fin.data, out.data, out.len);
    tmpl_pre_release(&pre);
    buf_release(&fin);
    buf_release(&many);
    buf_release(&cut);
    buf_release(&spl);
    buf_release(&out);
    event_clear(&ev);
}

static void test_meta_and_token(void **state)
{
    (void)state;
    digest_meta_t m = {.kind = DIGEST_MEMBER, .window_ms = 600000, .dkey = "liked\x1fp\"1",
                       .actor = "Kylie", .title = {.n = 1, .v = {{0, 5, TMPL_DV_FIRST}}},
                       .body = {.n = 2, .v = {{3, 1, TMPL_DV_COUNT}, {9, 2, TMPL_DV_LAST}}}};
    buf_t meta;
    buf_init(&meta, 0);
    assert_int_equal(digest_meta_write(&m, &meta), HR_OK);
    digest_meta_t back;
    assert_int_equal(digest_meta_read((hstr_t){meta.data, meta.len}, &back), HR_OK);
    assert_int_equal(back.kind, DIGEST_MEMBER);
    assert_int_equal(back.window_ms, 600000);
    assert_string_equal(back.dkey, "liked\x1fp\"1");
    assert_string_equal(back.actor, "Kylie");
    assert_int_equal(back.title.n, 1);
    assert_int_equal(back.body.n, 2);
    assert_int_equal(back.body.v[1].at, 9);
    assert_int_equal(back.body.v[1].var, TMPL_DV_LAST);
    digest_meta_clear(&back);

    /* not a digest's, or malformed */
    assert_int_equal(digest_meta_read(HSTR(""), &back), HR_NOTFOUND);
    assert_int_equal(digest_meta_read(HSTR("{\"other\":1}"), &back), HR_NOTFOUND);
    digest_meta_clear(&back);
    assert_int_equal(digest_meta_read(HSTR("{\"digest\":{\"w\":5}}"), &back), HR_INVALID);
    digest_meta_clear(&back);
    assert_int_equal(digest_meta_read(HSTR("{\"digest\":{\"w\":600000,\"k\":\"x\",\"t\":[[0,1,9]]}}"), &back),
                     HR_INVALID);
    digest_meta_clear(&back);
    assert_int_equal(digest_meta_read(HSTR("{\"digest\":{\"w\":600000,\"k\":\"x\",\"t\":[[-1,1,0]]}}"), &back),
                     HR_INVALID);
    digest_meta_clear(&back);
    assert_int_equal(digest_meta_read(HSTR("{\"digest\":nonsense"), &back), HR_INVALID);
    digest_meta_clear(&back);

    /* the flush token: the member's record under the digest's id */
    notif_t n = {.kind = REC_NOTIFICATION, .channel = CH_EMAIL, .status = ST_PENDING, .attempt = 3,
                 .created_at_ms = 5, .notification_id = HSTR("00000000000a1111111111111111111a"),
                 .event_id = HSTR("e1"), .user_id = HSTR("kim"), .title = HSTR("Kylie liked"),
                 .body = HSTR("1 like"), .address = HSTR("kim@example.com"),
                 .metadata = {meta.data, meta.len}, .quiet_start_min = NOTIF_QUIET_NONE,
                 .quiet_end_min = NOTIF_QUIET_NONE};
    buf_t rec, tok;
    buf_init(&rec, 0);
    buf_init(&tok, 0);
    assert_int_equal(notif_encode(&n, &rec), HR_OK);
    char id[33];
    digest_make_id(HSTR("kim"), CH_EMAIL, HSTR(m.dkey), 1000, id);
    assert_int_equal(digest_token_make(rec.data, rec.len, id, 601000, &tok), HR_OK);
    notif_t t;
    assert_int_equal(notif_decode(tok.data, tok.len, &t), HR_OK);
    assert_int_equal(t.kind, REC_NOTIFICATION);
    assert_int_equal(t.attempt, 1);
    assert_int_equal(t.due_at_ms, 601000);
    assert_int_equal(t.notification_id.n, 32);
    assert_memory_equal(t.notification_id.p, id, 32);
    assert_int_equal(t.title.n, strlen("Kylie liked"));
    assert_memory_equal(t.address.p, "kim@example.com", t.address.n);
    assert_int_equal(digest_meta_read(t.metadata, &back), HR_OK);
    assert_int_equal(back.kind, DIGEST_FLUSH);
    assert_int_equal(back.body.n, 2);
    digest_meta_clear(&back);
    /* a record that is not a member's makes no token */
    buf_t plain;
    buf_init(&plain, 0);
    n.metadata = (hstr_t){NULL, 0};
    assert_int_equal(notif_encode(&n, &plain), HR_OK);
    buf_reset(&tok);
    assert_int_equal(digest_token_make(plain.data, plain.len, id, 601000, &tok), HR_INVALID);
    assert_int_equal(digest_token_make("junk", 4, id, 601000, &tok), HR_INVALID);
    buf_release(&plain);
    buf_release(&rec);
    buf_release(&tok);
    buf_release(&meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_parse),
        cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_make_id),
        cmocka_unit_test(test_template_spans),
        cmocka_unit_test(test_meta_and_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
